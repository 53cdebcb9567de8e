//! Errors of connecting and of sending, shared by every transport. All are `Clone` so one
//! failure can reach many waiters.

use std::sync::Arc;
use std::time::Duration;

use crate::http::error::HttpError;
use crate::inbound::{Nack, NackCode, StanzaError};
use crate::message::ValidationError;
use crate::wire::WireError;

/// Establishing an authenticated CCS session failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    /// TCP connect or DNS failure.
    #[error("cannot reach {endpoint}: {source}")]
    Io {
        /// `host:port` that was dialled.
        endpoint: String,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The TLS handshake failed for another reason than the certificate (reset, the server
    /// does not speak TLS, an alert…).
    #[error("TLS handshake with {endpoint} failed: {reason}")]
    Tls {
        /// `host:port` of the server.
        endpoint: String,
        /// What rustls reported.
        reason: String,
    },
    /// The server's certificate is not acceptable: not trusted, expired or not yet valid, or
    /// for another name. Retrying cannot fix it.
    #[error("TLS handshake with {endpoint} failed: {reason}")]
    Certificate {
        /// `host:port` of the server.
        endpoint: String,
        /// Why the certificate was refused, as rustls says it.
        reason: String,
    },
    /// SASL authentication was refused: wrong sender id or server key. A configuration error.
    #[error(
        "authentication failed for sender {sender_id} ({condition}): check the sender id and server key"
    )]
    Auth {
        /// The sender id that was refused.
        sender_id: String,
        /// The SASL failure condition, normally `not-authorized`.
        condition: String,
    },
    /// The server violated the protocol during the handshake.
    #[error("protocol error during handshake: {0}")]
    Protocol(String),
    /// The server closed the stream with a `<stream:error>`.
    #[error("server sent stream error `{condition}`{}", text.as_deref().map(|t| format!(": {t}")).unwrap_or_default())]
    StreamError {
        /// The RFC 6120 condition, e.g. `invalid-xml`.
        condition: String,
        /// The server's explanation, if any.
        text: Option<String>,
    },
    /// A handshake step did not complete in time.
    #[error("timed out after {after:?} waiting for {stage}")]
    Timeout {
        /// What was awaited.
        stage: &'static str,
        /// How long.
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

    /// Whether another attempt may succeed: false for what only a change of configuration
    /// fixes (credentials refused, a certificate not accepted, an invalid configuration).
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            ConnectError::Auth { .. } | ConnectError::Certificate { .. } | ConnectError::Config(_)
        )
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
    /// The push service did not accept a Web Push (404/410 `SubscriptionGone`, …).
    #[cfg(feature = "webpush")]
    #[error(transparent)]
    WebPush(#[from] crate::webpush::WebPushError),
}

impl SendError {
    /// A short upper-case name of the kind, for machine-readable output (`TIMEOUT`,
    /// `CONNECTION_LOST`, a Web Push outcome such as `SUBSCRIPTION_GONE`, …). A nack's own
    /// code is in [`nack_code`](Self::nack_code).
    pub fn code(&self) -> &'static str {
        match self {
            SendError::Invalid(v) => v.code(),
            SendError::Nacked(_) => "NACKED",
            SendError::StanzaError(_) => "STANZA_ERROR",
            SendError::ConnectionLost(_) => "CONNECTION_LOST",
            SendError::Unavailable(_) => "UNAVAILABLE",
            SendError::Timeout(_) => "TIMEOUT",
            SendError::Closed => "CLOSED",
            SendError::Http(HttpError::Unauthorized(_)) => "UNAUTHORIZED",
            SendError::Http(_) => "HTTP_ERROR",
            #[cfg(feature = "webpush")]
            SendError::WebPush(e) => e.code(),
        }
    }

    /// Whether the server refused the server key (CCS authentication, HTTP 401): not an
    /// outcome of this message — every other message would fail the same way.
    pub fn is_auth_refused(&self) -> bool {
        matches!(
            self,
            SendError::Unavailable(ConnectError::Auth { .. })
                | SendError::Http(HttpError::Unauthorized(_))
        )
    }

    /// The NACK code, when the server rejected the message.
    pub fn nack_code(&self) -> Option<&NackCode> {
        match self {
            SendError::Nacked(n) => Some(&n.code),
            _ => None,
        }
    }
}
