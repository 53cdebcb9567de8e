//! Inbound messages from CCS, typed: acks, nacks, stanza errors, control, receipts, upstream.

use std::fmt;

use serde_json::{Map, Value};

/// The server accepted a downstream message for delivery (not: the device got it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub message_id: String,
    /// The registration token (or topic) the message was sent to, as echoed by the server.
    pub from: Option<String>,
    /// Canonical registration id: the device has a newer token; store this one from now on.
    pub registration_id: Option<String>,
}

/// The server rejected a downstream message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    /// Absent only on malformed nacks; such nacks cannot be correlated.
    pub message_id: Option<String>,
    pub from: Option<String>,
    pub code: NackCode,
    pub description: Option<String>,
}

/// NACK error codes (§8.2), in the server's vocabulary. HTTP per-result errors map here too.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NackCode {
    /// `INVALID_JSON` (also legacy `INVALID_TTL`, `JSON_TYPE_ERROR`).
    InvalidJson,
    /// `BAD_REGISTRATION`: malformed token or one of another sender.
    BadRegistration,
    /// `DEVICE_UNREGISTERED`: the token is no longer valid; delete it.
    DeviceUnregistered,
    /// `BAD_ACK`: an ack we sent was malformed.
    BadAck,
    /// `SERVICE_UNAVAILABLE`: retry with backoff.
    ServiceUnavailable,
    /// `INTERNAL_SERVER_ERROR`: retry with backoff.
    InternalServerError,
    /// `DEVICE_MESSAGE_RATE_EXCEEDED` (legacy `QUOTA_EXCEEDED`): slow down for that device.
    DeviceMessageRateExceeded,
    /// `TOPICS_MESSAGE_RATE_EXCEEDED`: slow down for that topic.
    TopicsMessageRateExceeded,
    /// `CONNECTION_DRAINING`: resend at once on another connection.
    ConnectionDraining,
    /// `INVALID_APNS_CREDENTIAL`: fix the project's APNs configuration.
    InvalidApnsCredential,
    /// Legacy `AUTHENTICATION_FAILED`.
    AuthenticationFailed,
    /// Any other code, kept verbatim; treated like `INTERNAL_SERVER_ERROR` (retryable).
    Other(String),
}

/// A stanza error (§8.3): the server could not extract a usable message from our stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaError {
    /// The stanza `id` echoed back (we set it to the message_id).
    pub id: Option<String>,
    /// The defined condition, e.g. `bad-request`.
    pub condition: String,
    /// The server's explanation, e.g. `InvalidJson: JSON_PARSING_ERROR : Missing Required Field: message_id`.
    pub text: Option<String>,
}

/// Control messages (§8.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// The server will close this connection soon; move new traffic elsewhere.
    ConnectionDraining,
    /// A control type this library does not know (ignored).
    Other(String),
}

/// A delivery receipt (§8.5). Acked automatically with its full `dr2:` id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The receipt's own id, `dr2:` + original message id.
    pub message_id: String,
    /// The receipt's `from` (normally `gcm.googleapis.com`).
    pub from: String,
    pub category: Option<String>,
    /// `data.original_message_id`.
    pub original_message_id: Option<String>,
    /// `data.device_registration_id`.
    pub device_registration_id: Option<String>,
    /// `data.message_status`, normally `MESSAGE_SENT_TO_DEVICE`.
    pub message_status: Option<String>,
    /// The whole `data` object.
    pub data: Map<String, Value>,
}

/// An upstream message from a device (§8.6). Acked automatically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub message_id: String,
    /// Registration token of the sending app instance.
    pub from: String,
    pub category: Option<String>,
    pub time_to_live: Option<u64>,
    pub data: Map<String, Value>,
}

/// One classified inbound `<message>`.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Ack(Ack),
    Nack(Nack),
    StanzaError(StanzaError),
    Control(Control),
    Receipt(Receipt),
    Upstream(Upstream),
    /// Ignored by the forward-compatibility rule: unknown `message_type`, or a message
    /// without a usable `<gcm>` payload. The string says why.
    Ignored(String),
}

impl fmt::Display for Nack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nacked with {}", self.code)?;
        if let Some(d) = &self.description {
            write!(f, ": {}", d.trim_end())?;
        }
        Ok(())
    }
}

impl fmt::Display for StanzaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stanza error `{}`", self.condition)?;
        if let Some(t) = &self.text {
            write!(f, ": {}", t.trim_end())?;
        }
        Ok(())
    }
}

impl NackCode {
    /// Parses a NACK `error` value. Legacy codes map to their modern equivalents; a 2013-style
    /// value with the description squashed in (`"InvalidJson : INVALID_TTL : …"`) is reduced to
    /// its leading token.
    pub fn parse(raw: &str) -> NackCode {
        let raw = raw.trim();
        if let Some(code) = Self::known(raw) {
            return code;
        }
        let head = raw.split([' ', ':']).find(|s| !s.is_empty()).unwrap_or("");
        match Self::known(head) {
            Some(code) => code,
            // 2013-era `InvalidJson : …` used camel case for the leading token.
            None if head.eq_ignore_ascii_case("invalidjson") => NackCode::InvalidJson,
            None => NackCode::Other(raw.to_owned()),
        }
    }

    fn known(code: &str) -> Option<NackCode> {
        Some(match code {
            "INVALID_JSON" | "INVALID_TTL" | "JSON_TYPE_ERROR" => NackCode::InvalidJson,
            "BAD_REGISTRATION" => NackCode::BadRegistration,
            "DEVICE_UNREGISTERED" => NackCode::DeviceUnregistered,
            "BAD_ACK" => NackCode::BadAck,
            "SERVICE_UNAVAILABLE" => NackCode::ServiceUnavailable,
            "INTERNAL_SERVER_ERROR" => NackCode::InternalServerError,
            "DEVICE_MESSAGE_RATE_EXCEEDED" | "QUOTA_EXCEEDED" => {
                NackCode::DeviceMessageRateExceeded
            }
            "TOPICS_MESSAGE_RATE_EXCEEDED" => NackCode::TopicsMessageRateExceeded,
            "CONNECTION_DRAINING" => NackCode::ConnectionDraining,
            "INVALID_APNS_CREDENTIAL" => NackCode::InvalidApnsCredential,
            "AUTHENTICATION_FAILED" => NackCode::AuthenticationFailed,
            _ => return None,
        })
    }

    /// The wire spelling of the code.
    pub fn as_str(&self) -> &str {
        match self {
            NackCode::InvalidJson => "INVALID_JSON",
            NackCode::BadRegistration => "BAD_REGISTRATION",
            NackCode::DeviceUnregistered => "DEVICE_UNREGISTERED",
            NackCode::BadAck => "BAD_ACK",
            NackCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            NackCode::InternalServerError => "INTERNAL_SERVER_ERROR",
            NackCode::DeviceMessageRateExceeded => "DEVICE_MESSAGE_RATE_EXCEEDED",
            NackCode::TopicsMessageRateExceeded => "TOPICS_MESSAGE_RATE_EXCEEDED",
            NackCode::ConnectionDraining => "CONNECTION_DRAINING",
            NackCode::InvalidApnsCredential => "INVALID_APNS_CREDENTIAL",
            NackCode::AuthenticationFailed => "AUTHENTICATION_FAILED",
            NackCode::Other(s) => s,
        }
    }

    /// Whether the message may be sent again: transient server errors, rate limits (later),
    /// draining (elsewhere, at once) and unknown codes (treated like `INTERNAL_SERVER_ERROR`).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            NackCode::ServiceUnavailable
                | NackCode::InternalServerError
                | NackCode::DeviceMessageRateExceeded
                | NackCode::TopicsMessageRateExceeded
                | NackCode::ConnectionDraining
                | NackCode::Other(_)
        )
    }

    /// Rate-limit codes, which call for a longer, per-target cool-down.
    pub fn is_rate_limit(&self) -> bool {
        matches!(
            self,
            NackCode::DeviceMessageRateExceeded | NackCode::TopicsMessageRateExceeded
        )
    }
}

impl fmt::Display for NackCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
