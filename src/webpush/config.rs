//! Configuration of the [`WebPushSender`](super::WebPushSender).

use std::time::Duration;

use super::vapid::VapidKey;
use crate::config::{RetryPolicy, Trust};

/// Everything a [`WebPushSender`](super::WebPushSender) needs. Start from
/// [`WebPushConfig::new`] and adjust fields. `Debug` never shows the private key.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WebPushConfig {
    /// The application server's key: subscriptions must have been made with its public key
    /// as `applicationServerKey`.
    pub vapid_key: VapidKey,
    /// The VAPID `sub` claim, how the push service can reach you: `mailto:…` or `https://…`.
    pub subject: String,
    /// Certificates trusted for the push services (the Mozilla roots by default).
    pub trust: Trust,
    /// TCP connect (the request timeout bounds the TLS handshake and everything after).
    pub connect_timeout: Duration,
    /// One request, from sending it to the last byte of the response.
    pub request_timeout: Duration,
    /// Retries of 429, 5xx, transport failures and timeouts: jittered exponential backoff
    /// with `Retry-After` as a floor; a `Retry-After` longer than the policy's longest
    /// backoff (the larger of its two caps) ends the retries at once.
    pub retry: RetryPolicy,
    /// Requests in flight at once to one push-service origin (over HTTP/2 these share one
    /// connection per origin).
    pub max_concurrent_per_origin: usize,
    /// Idle keep-alive connections are closed after this long.
    pub pool_idle_timeout: Duration,
}

impl WebPushConfig {
    /// Defaults for `vapid_key` and `subject`.
    pub fn new(vapid_key: VapidKey, subject: impl Into<String>) -> Self {
        WebPushConfig {
            vapid_key,
            subject: subject.into(),
            trust: Trust::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            max_concurrent_per_origin: 100,
            pool_idle_timeout: Duration::from_secs(90),
        }
    }
}
