//! Why a relay could not start or had to stop.

/// A relay failed as a whole (single entries end in records, never in this).
#[derive(Debug, Clone, thiserror::Error)]
pub enum RelayError {
    /// A setting the relay cannot work with (also: a URL it cannot parse).
    #[error("relay configuration: {0}")]
    Config(String),
    /// Redis refused the credentials (`WRONGPASS`, `NOAUTH`): retrying cannot help.
    #[error("Redis at {target} refused the credentials: {reason}")]
    Auth {
        /// The server, password redacted.
        target: String,
        /// Redis's answer.
        reason: String,
    },
    /// Redis could not be reached or answered errors for the whole start-up budget.
    #[error("Redis at {target} is unavailable: {reason}")]
    Unavailable {
        /// The server, password redacted.
        target: String,
        /// The last error.
        reason: String,
    },
    /// CCS or the HTTP API refused the server key while the relay ran; the entries it was
    /// sending stay pending.
    #[error("the server refused the server key: the relay stopped, its entries stay pending")]
    KeyRefused,
    /// The metrics listener could not be bound.
    #[error("cannot serve metrics on {addr}: {reason}")]
    Metrics {
        /// The address asked for.
        addr: String,
        /// Why.
        reason: String,
    },
}

impl RelayError {
    /// Whether starting again later may succeed (Redis was down), as opposed to a setting or
    /// credential that must be fixed first.
    pub fn is_retryable(&self) -> bool {
        matches!(self, RelayError::Unavailable { .. })
    }
}

/// Whether Redis refused our credentials.
pub(super) fn is_auth(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"))
}
