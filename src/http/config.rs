//! Configuration of the [`HttpSender`](super::HttpSender).

use std::time::Duration;

use crate::config::{RetryPolicy, ServerKey, Trust};

/// FCM's legacy endpoint (2016+), the default.
pub const FCM_URL: &str = "https://fcm.googleapis.com/fcm/send";
/// GCM's endpoint as documented 2015–2016.
pub const GCM_HTTP_URL: &str = "https://gcm-http.googleapis.com/gcm/send";
/// The original GCM endpoint (2012–2015), also the base of Chrome 42–51 push endpoints.
pub const ANDROID_GCM_URL: &str = "https://android.googleapis.com/gcm/send";

/// Most `registration_ids` one request may carry (http-legacy §3).
pub const MAX_REGISTRATION_IDS: usize = 1000;

/// Everything an [`HttpSender`](super::HttpSender) needs. Start from [`HttpConfig::new`] and
/// adjust fields. `Debug` never shows the server key.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    /// The send URL (`https` only: the key must not travel in clear text). The TLS name
    /// verified is this URL's host.
    pub url: String,
    /// The server key, sent as `Authorization: key=…` and never printed.
    pub server_key: ServerKey,
    /// Which certificates to trust.
    pub trust: Trust,
    /// TCP connect (the request timeout bounds the TLS handshake and everything after).
    pub connect_timeout: Duration,
    /// One request, from sending it to the last byte of the response.
    pub request_timeout: Duration,
    /// Retries of 5xx responses, transport failures, timeouts and per-token `Unavailable` /
    /// `InternalServerError` results. `Retry-After` is a floor for the wait; the rate-limit
    /// fields are not used (rate-limit errors are returned, not retried).
    pub retry: RetryPolicy,
    /// Requests in flight at once over all calls on one sender (multicast chunks included).
    pub max_concurrent_requests: usize,
    /// Idle keep-alive connections are closed after this long.
    pub pool_idle_timeout: Duration,
}

impl HttpConfig {
    /// Defaults for [`FCM_URL`] with `server_key`.
    pub fn new(server_key: impl Into<String>) -> Self {
        HttpConfig {
            url: FCM_URL.to_owned(),
            server_key: ServerKey::new(server_key),
            trust: Trust::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            max_concurrent_requests: 16,
            pool_idle_timeout: Duration::from_secs(90),
        }
    }
}
