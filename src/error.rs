//! Errors, one type per operation. All are `Clone` so one failure can reach many waiters.

use std::sync::Arc;
use std::time::Duration;

use crate::response::{Nack, NackCode, StanzaError};

/// A message was refused before anything touched the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// Neither `to` nor `condition` was given.
    #[error("message has no target: set `to` (token, topic or notification key) or `condition`")]
    MissingTarget,
    /// Both `to` and `condition` were given.
    #[error("message has both `to` and `condition`: use exactly one")]
    ConflictingTargets,
    /// `time_to_live` outside `0..=2419200`. Values beyond `i64` are reported as `i64::MAX`.
    #[error("`time_to_live` is {0} s: it must be between 0 and 2419200 (28 days)")]
    TtlOutOfRange(i64),
    /// The payload (keys and values of `data` and `notification`) is too large.
    #[error(
        "payload is {size} bytes (keys + values of `data` and `notification`): the limit is {limit} bytes"
    )]
    PayloadTooLarge { size: usize, limit: usize },
    /// A reserved key was used in `data`.
    #[error(
        "`data` key `{0}` is reserved: `from` and keys starting with `google` or `gcm` are not allowed"
    )]
    ReservedDataKey(String),
    /// A field of the HTTP API that CCS (XMPP) does not accept.
    #[error("`{field}` is not valid over XMPP: {hint}")]
    HttpOnlyField {
        field: &'static str,
        hint: &'static str,
    },
    /// A field has the wrong type or an unacceptable value, or is unknown.
    #[error("field `{field}`: {reason}")]
    InvalidField { field: String, reason: String },
    /// The input is not a JSON object, or not JSON at all.
    #[error("invalid JSON: {0}")]
    Json(String),
}

/// A wire-level (XML framing) failure. Fatal for the connection it happened on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WireError {
    /// The peer sent XML that is not well-formed or not a valid XMPP stream.
    #[error("malformed XML from peer: {0}")]
    Malformed(String),
    /// A DOCTYPE / entity declaration or an undefined entity reference was sent.
    #[error("forbidden XML construct from peer: {0}")]
    Forbidden(String),
    /// One stanza exceeded the configured size cap.
    #[error("stanza exceeds the {limit}-byte limit")]
    TooLarge { limit: usize },
    /// Stanza nesting exceeded the depth limit.
    #[error("stanza nesting exceeds depth {limit}")]
    TooDeep { limit: usize },
    /// The peer closed the byte stream (EOF) while the XMPP stream was still open.
    #[error("connection closed by peer{}", if *.mid_stanza { " in the middle of a stanza" } else { "" })]
    Eof { mid_stanza: bool },
    /// Text that XML 1.0 cannot carry was given to the writer.
    #[error("text contains a character XML 1.0 cannot carry: U+{0:04X}")]
    InvalidChar(u32),
    /// Transport error.
    #[error("I/O error: {0}")]
    Io(Arc<std::io::Error>),
}

impl From<std::io::Error> for WireError {
    fn from(e: std::io::Error) -> Self {
        WireError::Io(Arc::new(e))
    }
}

/// Establishing an authenticated CCS session failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    /// TCP connect or DNS failure.
    #[error("cannot reach {endpoint}: {source}")]
    Io {
        endpoint: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The TLS handshake failed (certificate not trusted, wrong host name, expired, not TLS…).
    #[error("TLS handshake with {endpoint} failed: {reason}")]
    Tls { endpoint: String, reason: String },
    /// SASL authentication was refused: wrong sender id or server key. A configuration error.
    #[error(
        "authentication failed for sender {sender_id} ({condition}): check the sender id and server key"
    )]
    Auth {
        sender_id: String,
        condition: String,
    },
    /// The server violated the protocol during the handshake.
    #[error("protocol error during handshake: {0}")]
    Protocol(String),
    /// The server closed the stream with a `<stream:error>`.
    #[error("server sent stream error `{condition}`{}", text.as_deref().map(|t| format!(": {t}")).unwrap_or_default())]
    StreamError {
        condition: String,
        text: Option<String>,
    },
    /// A handshake step did not complete in time.
    #[error("timed out after {after:?} waiting for {stage}")]
    Timeout {
        stage: &'static str,
        after: Duration,
    },
    /// Framing failure while negotiating.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Invalid client configuration (e.g. unusable TLS server name or CA file).
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl ConnectError {
    /// True for authentication failures, which are configuration errors and must not be
    /// retried in a tight loop.
    pub fn is_auth(&self) -> bool {
        matches!(self, ConnectError::Auth { .. })
    }
}

/// Sending one message did not end in an ack.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// The message was refused by local validation.
    #[error("invalid message: {0}")]
    Invalid(#[from] ValidationError),
    /// The server rejected the message with a NACK.
    #[error("{0}")]
    Nacked(Nack),
    /// The server could not even parse the stanza (stanza error, §8.3).
    #[error("{0}")]
    StanzaError(StanzaError),
    /// The connection carrying the message was lost before an ack or nack arrived
    /// and no retry was possible.
    #[error("connection lost before the server answered: {0}")]
    ConnectionLost(String),
    /// No connection could be established in time to send the message.
    #[error("no connection available: {0}")]
    Unavailable(ConnectError),
    /// No ack or nack arrived within the ack timeout, and retries were exhausted.
    #[error("no answer from the server within {0:?}")]
    Timeout(Duration),
    /// The client was closed before the message completed.
    #[error("client closed before the message completed")]
    Closed,
    /// The HTTP send API refused the request as a whole, or could not be reached.
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// A failure of a whole HTTP request (per-token errors are [`SendError::Nacked`]). Texts are
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
    Status { status: u16, body: String },
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
    GroupPartialFailure(crate::http::GroupOutcome),
}

impl SendError {
    /// The NACK code, when the server rejected the message.
    pub fn nack_code(&self) -> Option<&NackCode> {
        match self {
            SendError::Nacked(n) => Some(&n.code),
            _ => None,
        }
    }
}
