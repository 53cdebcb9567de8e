//! Failures of whole HTTP requests, in the legacy API's vocabulary.

/// A failure of a whole HTTP request (per-token errors are [`SendError::Nacked`](crate::SendError::Nacked)). Texts are
/// the server's own, reduced to one readable line; they never contain the server key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// HTTP 400: the server could not use the request (its plain-text explanation).
    #[error("request rejected by the server (HTTP 400): {0}")]
    BadRequest(String),
    /// HTTP 401: the server key was refused (the HTML page reduced to its text).
    #[error(
        "authentication failed (HTTP 401: {0}): check the server key, that the messaging API is enabled and that the key allows this caller"
    )]
    Unauthorized(String),
    /// Any other non-200 status; 5xx statuses are only reported once retries are exhausted.
    #[error("HTTP {status} from the server: {body}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The body, reduced to one readable line.
        body: String,
    },
    /// A 200 response whose body is not one of the documented JSON shapes.
    #[error("unexpected response from the server: {0}")]
    InvalidResponse(String),
    /// Connecting, the TLS handshake or the exchange itself failed.
    #[error("HTTP transport error: {0}")]
    Transport(String),
    /// A device-group send reached only some members; resend to the failed ones individually.
    #[error(
        "device group: sent to {} member(s), failed for {} (failed tokens: {:?})",
        .0.success, .0.failure, .0.failed_registration_ids
    )]
    GroupPartialFailure(GroupOutcome),
}

/// Outcome of a device-group send (`to` = notification key, §5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOutcome {
    /// Members the message was accepted for.
    pub success: u64,
    /// Members it could not be sent to.
    pub failure: u64,
    /// Those members' tokens, when the server lists them: resend to them individually.
    pub failed_registration_ids: Vec<String>,
}
