//! Web Push errors in the push service's vocabulary (webpush spec §3). `Clone`, so one
//! failure can reach every waiter.

use std::time::Duration;

/// A push refused before anything was encrypted or sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The plaintext does not fit one 4096-byte record.
    #[error("payload is {size} bytes: a push carries at most {limit} bytes of plaintext")]
    PayloadTooLarge {
        /// The plaintext's size.
        size: usize,
        /// [`MAX_PLAINTEXT`](super::MAX_PLAINTEXT).
        limit: usize,
    },
    /// The `Topic` is empty, too long or not base64url.
    #[error("topic `{topic}`: {reason}")]
    InvalidTopic {
        /// The topic given.
        topic: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// A push that the push service did not accept. Texts carry the service's own answer,
/// reduced to one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebPushError {
    /// The push was refused before sending.
    #[error("invalid push: {0}")]
    Invalid(#[from] PushError),
    /// 404 or 410: the subscription expired or was unsubscribed. Permanent: delete it.
    #[error("subscription gone (HTTP {status}): {reason}")]
    SubscriptionGone {
        /// 404 or 410.
        status: u16,
        /// The push service's text.
        reason: String,
    },
    /// 413: the body is larger than the push service takes. Permanent.
    #[error("push too large for the push service (HTTP 413): {reason}")]
    PayloadTooLarge {
        /// The push service's text.
        reason: String,
    },
    /// 400: a header (TTL, Urgency, Topic, encoding) was refused. Permanent.
    #[error("push refused as malformed (HTTP 400): {reason}")]
    BadRequest {
        /// The push service's text.
        reason: String,
    },
    /// 401 or 403: the VAPID authorization was refused (signature, `aud`, `exp`, or a key
    /// other than the subscription's `applicationServerKey`). A configuration error.
    #[error(
        "VAPID authorization refused (HTTP {status}): {reason} (check the VAPID key the subscription was made with, and the subject)"
    )]
    VapidRefused {
        /// 401 or 403.
        status: u16,
        /// The push service's text.
        reason: String,
    },
    /// 429 until the retries ran out, or with a `Retry-After` beyond the retry policy.
    #[error("rate limited by the push service (HTTP 429{}): {reason}", retry_text(*.retry_after))]
    RateLimited {
        /// The last `Retry-After`.
        retry_after: Option<Duration>,
        /// The push service's text.
        reason: String,
    },
    /// A 5xx status until the retries ran out.
    #[error("push service unavailable (HTTP {status}{}): {reason}", retry_text(*.retry_after))]
    Unavailable {
        /// The last status.
        status: u16,
        /// The last `Retry-After`.
        retry_after: Option<Duration>,
        /// The push service's text.
        reason: String,
    },
    /// Any other status (a redirect, an undocumented 4xx). Permanent.
    #[error("unexpected HTTP {status} from the push service: {reason}")]
    Status {
        /// The status.
        status: u16,
        /// The push service's text.
        reason: String,
    },
    /// Connecting or the exchange failed (retried until the policy gave up).
    #[error("Web Push transport error: {0}")]
    Transport(String),
    /// The TLS handshake failed: an untrusted or wrong certificate. Not retried.
    #[error(
        "TLS handshake with the push service failed: {0} (a private CA needs --ca-file / Trust)"
    )]
    Tls(String),
    /// No answer within the request timeout (retried until the policy gave up).
    #[error("no answer from the push service within {0:?}")]
    Timeout(Duration),
    /// The sender's configuration is unusable.
    #[error("invalid Web Push configuration: {0}")]
    Config(String),
}

fn retry_text(retry_after: Option<Duration>) -> String {
    retry_after
        .map(|d| format!(", Retry-After {} s", d.as_secs()))
        .unwrap_or_default()
}

impl WebPushError {
    /// True when the same push may succeed later: 429, 5xx, transport failures and timeouts.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            WebPushError::RateLimited { .. }
                | WebPushError::Unavailable { .. }
                | WebPushError::Transport(_)
                | WebPushError::Timeout(_)
        )
    }

    /// True for 404 / 410: the application must delete the subscription.
    pub fn is_subscription_gone(&self) -> bool {
        matches!(self, WebPushError::SubscriptionGone { .. })
    }

    /// The HTTP status the push service answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            WebPushError::SubscriptionGone { status, .. }
            | WebPushError::VapidRefused { status, .. }
            | WebPushError::Unavailable { status, .. }
            | WebPushError::Status { status, .. } => Some(*status),
            WebPushError::PayloadTooLarge { .. } => Some(413),
            WebPushError::BadRequest { .. } => Some(400),
            WebPushError::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// A short upper-case name of the kind, for machine-readable output
    /// (`SUBSCRIPTION_GONE`, `VAPID_REFUSED`, `RATE_LIMITED`, …).
    pub fn code(&self) -> &'static str {
        match self {
            WebPushError::Invalid(PushError::PayloadTooLarge { .. }) => "MESSAGE_TOO_BIG",
            WebPushError::Invalid(PushError::InvalidTopic { .. }) => "INVALID_TOPIC",
            WebPushError::SubscriptionGone { .. } => "SUBSCRIPTION_GONE",
            WebPushError::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            WebPushError::BadRequest { .. } => "BAD_REQUEST",
            WebPushError::VapidRefused { .. } => "VAPID_REFUSED",
            WebPushError::RateLimited { .. } => "RATE_LIMITED",
            WebPushError::Unavailable { .. } => "UNAVAILABLE",
            WebPushError::Status { .. } => "HTTP_ERROR",
            WebPushError::Transport(_) => "TRANSPORT",
            WebPushError::Tls(_) => "TLS",
            WebPushError::Timeout(_) => "TIMEOUT",
            WebPushError::Config(_) => "CONFIG",
        }
    }
}
