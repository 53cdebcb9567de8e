//! Inbound messages from CCS, typed: acks, nacks, stanza errors, control, receipts, upstream.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::message::json_type;
use crate::wire::MessageStanza;

/// The server accepted a downstream message for delivery (not: the device got it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The id of the acknowledged message.
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
    /// The target the message was sent to, as echoed by the server.
    pub from: Option<String>,
    /// Why, in the server's vocabulary.
    pub code: NackCode,
    /// The server's explanation (`error_description`).
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
    /// Any other code, kept verbatim (empty when a nack had no `error`); treated like
    /// `INTERNAL_SERVER_ERROR` (retryable).
    Other(String),
}

/// A stanza error (§8.3): the server could not extract a usable message from our stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaError {
    /// The stanza `id` echoed back (we set it to the message_id), or failing that the
    /// `message_id` of the echoed JSON.
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

/// A delivery receipt (§8.5); its ack carries the full `dr2:` id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The receipt's own id, `dr2:` + original message id.
    pub message_id: String,
    /// The receipt's `from` (normally `gcm.googleapis.com`).
    pub from: String,
    /// The app's package name.
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

/// An upstream message from a device (§8.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The id the device gave it: with `from`, the key to de-duplicate redeliveries on.
    pub message_id: String,
    /// Registration token of the sending app instance.
    pub from: String,
    /// The app's package name.
    pub category: Option<String>,
    /// How long CCS keeps it for us, in seconds.
    pub time_to_live: Option<u64>,
    /// The app's payload.
    pub data: Map<String, Value>,
}

/// One classified inbound `<message>`.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A downstream message was accepted.
    Ack(Ack),
    /// A downstream message was refused.
    Nack(Nack),
    /// A stanza of ours could not be used.
    StanzaError(StanzaError),
    /// A control message (draining).
    Control(Control),
    /// A delivery receipt.
    Receipt(Receipt),
    /// An upstream message.
    Upstream(Upstream),
    /// Ignored by the forward-compatibility rule, and so never acked: unknown `message_type`
    /// (or one that is not a string, `null` included), or a message without a usable `<gcm>`
    /// payload. The string says why.
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

    /// Maps an HTTP per-result error (http-legacy §6) to the same vocabulary. Unknown codes
    /// become `Other(raw)`; the HTTP layer keeps the raw string as the description. Note that
    /// http-legacy §6 treats unknown codes as non-retryable, unlike [`NackCode::is_retryable`].
    pub fn from_http_error(code: &str) -> NackCode {
        match code {
            "NotRegistered" => NackCode::DeviceUnregistered,
            "InvalidRegistration" | "MismatchSenderId" => NackCode::BadRegistration,
            "Unavailable" => NackCode::ServiceUnavailable,
            "InternalServerError" => NackCode::InternalServerError,
            // `QuotaExceeded` / `DeviceQuotaExceeded` are the obsolete names of the rate limit.
            "DeviceMessageRateExceeded" | "QuotaExceeded" | "DeviceQuotaExceeded" => {
                NackCode::DeviceMessageRateExceeded
            }
            "TopicsMessageRateExceeded" => NackCode::TopicsMessageRateExceeded,
            "InvalidApnsCredential" => NackCode::InvalidApnsCredential,
            "MissingRegistration"
            | "InvalidParameters"
            | "MessageTooBig"
            | "InvalidDataKey"
            | "InvalidTtl"
            | "InvalidPackageName"
            | "MissingCollapseKey" => NackCode::InvalidJson,
            other => NackCode::Other(other.to_owned()),
        }
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
        match self.as_str() {
            "" => f.write_str("(no error code)"),
            code => f.write_str(code),
        }
    }
}

/// Classifies one inbound `<message>` (client role). A stanza with an `<error>` child or
/// `type="error"` is a stanza error; everything else is dispatched on the JSON `message_type`,
/// never on the stanza `type` attribute (spec §6.3).
pub fn classify(stanza: &MessageStanza) -> Inbound {
    if stanza.error.is_some() || stanza.kind.as_deref() == Some("error") {
        return Inbound::StanzaError(stanza_error(stanza));
    }
    match stanza.gcm.as_deref() {
        Some(json) => classify_json(json),
        None => Inbound::Ignored("message stanza without a <gcm> payload".to_owned()),
    }
}

/// Classifies the JSON payload of a non-error `<message>`.
///
/// Required members (`message_id` of acks, receipts and upstream messages, their `from`,
/// `control_type`) must be strings, else the message is ignored with the reason. A nack
/// without `message_id` is kept (uncorrelatable). Optional members of the wrong type are
/// treated as absent.
pub fn classify_json(json: &str) -> Inbound {
    if let Some(ack) = fast_ack(json) {
        return Inbound::Ack(ack);
    }
    classify_general(json)
}

/// A JSON string at the start of `s` that needs no unescaping: its text and what follows.
fn plain_string(s: &str) -> Option<(&str, &str)> {
    let body = s.strip_prefix('"')?;
    let end = memchr::memchr(b'"', body.as_bytes())?;
    let text = &body[..end];
    if text.bytes().any(|b| b < 0x20 || b == b'\\') {
        return None;
    }
    Some((text, &body[end + 1..]))
}

/// [`classify_json`] without the fast path for acks (to check that both agree).
pub fn classify_general(json: &str) -> Inbound {
    Raw::parse(json)
        .and_then(Raw::classify)
        .unwrap_or_else(Inbound::Ignored)
}

/// CCS writes acks as flat objects of plain strings, `{"message_type":"ack","from":"…",
/// "message_id":"…"}`, sometimes with `registration_id`. Such an object — those keys only,
/// each once, no whitespace, strings without escapes or control characters — is read here
/// without serde, to the same [`Ack`] the general path gives; anything else is `None` and
/// takes the general path.
fn fast_ack(json: &str) -> Option<Ack> {
    let mut rest = json.strip_prefix('{')?.strip_suffix('}')?;
    let (mut kind, mut id, mut from, mut canonical) = (None, None, None, None);
    loop {
        let (key, after) = plain_string(rest)?;
        let (value, after) = plain_string(after.strip_prefix(':')?)?;
        let slot = match key {
            "message_type" => &mut kind,
            "message_id" => &mut id,
            "from" => &mut from,
            "registration_id" => &mut canonical,
            _ => return None,
        };
        if slot.replace(value).is_some() {
            return None;
        }
        match after.strip_prefix(',') {
            Some(more) => rest = more,
            None if after.is_empty() => break,
            None => return None,
        }
    }
    if kind? != "ack" {
        return None;
    }
    Some(Ack {
        message_id: id?.to_owned(),
        from: from.map(str::to_owned),
        registration_id: canonical.map(str::to_owned),
    })
}

/// The ack we send for an upstream message or a receipt (spec §8.5, §8.6).
pub fn upstream_ack_json(to: &str, message_id: &str) -> String {
    #[derive(Serialize)]
    struct AckOut<'a> {
        to: &'a str,
        message_id: &'a str,
        message_type: &'static str,
    }
    let ack = AckOut {
        to,
        message_id,
        message_type: "ack",
    };
    serde_json::to_string(&ack).expect("string members always serialize")
}

impl Upstream {
    /// The ack for this message: `to` is the sending device's token.
    pub fn ack_json(&self) -> String {
        upstream_ack_json(&self.from, &self.message_id)
    }
}

impl Receipt {
    /// The ack for this receipt: `to` is the receipt's `from`, the id keeps its `dr2:` prefix.
    pub fn ack_json(&self) -> String {
        upstream_ack_json(&self.from, &self.message_id)
    }
}

fn stanza_error(stanza: &MessageStanza) -> StanzaError {
    let info = stanza.error.as_ref();
    StanzaError {
        id: stanza
            .id
            .clone()
            .or_else(|| stanza.gcm.as_deref().and_then(echoed_message_id)),
        condition: info
            .and_then(|e| e.condition.clone())
            .unwrap_or_else(|| "undefined-condition".to_owned()),
        text: info.and_then(|e| e.text.clone()),
    }
}

/// The `message_id` of the JSON a stanza error echoes back, if it has a usable one.
fn echoed_message_id(json: &str) -> Option<String> {
    Raw::parse(json).ok()?.message_id?.into_string()
}

/// The members of an inbound JSON object that classification looks at; others are skipped.
/// Strings without escapes are borrowed from the input.
#[derive(Deserialize)]
struct Raw<'a> {
    /// `None` only when the member is absent: a `null` is `Some(Member::Other("null"))`, an
    /// invalid type, not an upstream message (spec §6.3: only an *absent* `message_type`
    /// means upstream).
    #[serde(borrow, default, deserialize_with = "present")]
    message_type: Option<Member<'a>>,
    #[serde(borrow)]
    message_id: Option<Member<'a>>,
    #[serde(borrow)]
    from: Option<Member<'a>>,
    #[serde(borrow)]
    registration_id: Option<Member<'a>>,
    #[serde(borrow)]
    error: Option<Member<'a>>,
    #[serde(borrow)]
    error_description: Option<Member<'a>>,
    #[serde(borrow)]
    control_type: Option<Member<'a>>,
    #[serde(borrow)]
    category: Option<Member<'a>>,
    #[serde(borrow)]
    time_to_live: Option<Member<'a>>,
    data: Option<Value>,
}

impl<'a> Raw<'a> {
    fn parse(json: &'a str) -> Result<Self, String> {
        // A derived struct would also accept a JSON array, positionally.
        if !json.trim_start().starts_with('{') {
            return Err("payload is not a JSON object".to_owned());
        }
        serde_json::from_str(json).map_err(|e| format!("invalid JSON payload: {e}"))
    }

    fn classify(mut self) -> Result<Inbound, String> {
        let Some(kind) = self.message_type.take() else {
            return self.upstream();
        };
        match kind {
            Member::Str(kind) => match &*kind {
                "ack" => self.ack(),
                "nack" => self.nack(),
                "control" => self.control(),
                "receipt" => self.receipt(),
                other => Err(format!("unknown message_type {other:?}")),
            },
            other => Err(format!(
                "`message_type` must be a string, got {}",
                other.type_name()
            )),
        }
    }

    fn ack(self) -> Result<Inbound, String> {
        Ok(Inbound::Ack(Ack {
            message_id: required(self.message_id, "ack", "message_id")?,
            from: lenient(self.from),
            registration_id: lenient(self.registration_id),
        }))
    }

    fn nack(self) -> Result<Inbound, String> {
        let message_id = optional(self.message_id, "nack", "message_id")?;
        let raw_code = lenient(self.error);
        let code = raw_code
            .as_deref()
            .map_or_else(|| NackCode::Other(String::new()), NackCode::parse);
        // Keep a squashed (2013-style) or legacy `error` when it says more than the code.
        let description = lenient(self.error_description)
            .or_else(|| raw_code.filter(|raw| raw.trim() != code.as_str()));
        Ok(Inbound::Nack(Nack {
            message_id,
            from: lenient(self.from),
            code,
            description,
        }))
    }

    fn control(self) -> Result<Inbound, String> {
        let control_type = required(self.control_type, "control message", "control_type")?;
        Ok(Inbound::Control(match control_type.as_str() {
            "CONNECTION_DRAINING" => Control::ConnectionDraining,
            _ => Control::Other(control_type),
        }))
    }

    fn receipt(self) -> Result<Inbound, String> {
        const KIND: &str = "receipt";
        let message_id = required(self.message_id, KIND, "message_id")?;
        let from = required(self.from, KIND, "from")?;
        let data = data_object(self.data, KIND)?;
        let data_str = |key: &str| data.get(key).and_then(Value::as_str).map(str::to_owned);
        Ok(Inbound::Receipt(Receipt {
            message_id,
            from,
            category: lenient(self.category),
            original_message_id: data_str("original_message_id"),
            device_registration_id: data_str("device_registration_id"),
            message_status: data_str("message_status"),
            data,
        }))
    }

    fn upstream(self) -> Result<Inbound, String> {
        const KIND: &str = "upstream message";
        Ok(Inbound::Upstream(Upstream {
            message_id: required(self.message_id, KIND, "message_id")?,
            from: required(self.from, KIND, "from")?,
            category: lenient(self.category),
            time_to_live: match self.time_to_live {
                Some(Member::Uint(ttl)) => Some(ttl),
                _ => None,
            },
            data: data_object(self.data, KIND)?,
        }))
    }
}

/// A string member that must be present.
fn required(member: Option<Member<'_>>, kind: &str, name: &str) -> Result<String, String> {
    optional(member, kind, name)?.ok_or_else(|| format!("{kind} without `{name}`"))
}

/// A member that must be a string when present.
fn optional(member: Option<Member<'_>>, kind: &str, name: &str) -> Result<Option<String>, String> {
    match member {
        None => Ok(None),
        Some(Member::Str(s)) => Ok(Some(s.into_owned())),
        Some(other) => Err(format!(
            "{kind} `{name}` must be a string, got {}",
            other.type_name()
        )),
    }
}

/// A string member whose absence or wrong type is tolerated.
fn lenient(member: Option<Member<'_>>) -> Option<String> {
    member?.into_string()
}

/// `data` must be an object when present; absent means empty.
fn data_object(data: Option<Value>, kind: &str) -> Result<Map<String, Value>, String> {
    match data {
        None => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(other) => Err(format!(
            "{kind} `data` must be an object, got {}",
            json_type(&other)
        )),
    }
}

/// A member that is present, whatever its value, `null` included (a plain `Option` field would
/// read `null` as absent).
fn present<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Member<'a>>, D::Error> {
    Member::deserialize(d).map(Some)
}

/// One JSON member, read without failing on its type: strings (borrowed when unescaped)
/// and unsigned integers are kept, other values only named.
enum Member<'a> {
    Str(Cow<'a, str>),
    Uint(u64),
    Other(&'static str),
}

impl Member<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Member::Str(_) => "string",
            Member::Uint(_) => "number",
            Member::Other(name) => name,
        }
    }

    fn into_string(self) -> Option<String> {
        match self {
            Member::Str(s) => Some(s.into_owned()),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Member<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MemberVisitor(PhantomData))
    }
}

struct MemberVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for MemberVisitor<'a> {
    type Value = Member<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Member<'a>, E> {
        Ok(Member::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Member<'a>, E> {
        Ok(Member::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Member<'a>, E> {
        Ok(Member::Other("boolean"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Member<'a>, E> {
        Ok(Member::Other("null"))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Member<'a>, E> {
        Ok(Member::Uint(v))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Member<'a>, E> {
        Ok(Member::Other("number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Member<'a>, E> {
        Ok(Member::Other("number"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Member<'a>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Member::Other("array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Member<'a>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Member::Other("object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::StanzaErrorInfo;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn nack_codes_parse_with_spec_retry_rules() {
        use NackCode::*;
        let squashed = "InvalidJson : INVALID_TTL : Invalid value (-1) for \"time_to_live\": must be between 0 and \"2419200\"\n";
        let cases: &[(&str, NackCode, bool)] = &[
            ("INVALID_JSON", InvalidJson, false),
            ("BAD_REGISTRATION", BadRegistration, false),
            ("DEVICE_UNREGISTERED", DeviceUnregistered, false),
            ("BAD_ACK", BadAck, false),
            ("SERVICE_UNAVAILABLE", ServiceUnavailable, true),
            ("INTERNAL_SERVER_ERROR", InternalServerError, true),
            (
                "DEVICE_MESSAGE_RATE_EXCEEDED",
                DeviceMessageRateExceeded,
                true,
            ),
            (
                "TOPICS_MESSAGE_RATE_EXCEEDED",
                TopicsMessageRateExceeded,
                true,
            ),
            ("CONNECTION_DRAINING", ConnectionDraining, true),
            ("INVALID_APNS_CREDENTIAL", InvalidApnsCredential, false),
            // 2013-era codes map to their modern equivalents.
            ("QUOTA_EXCEEDED", DeviceMessageRateExceeded, true),
            ("AUTHENTICATION_FAILED", AuthenticationFailed, false),
            ("INVALID_TTL", InvalidJson, false),
            ("JSON_TYPE_ERROR", InvalidJson, false),
            (squashed, InvalidJson, false),
            ("SERVICE_UNAVAILABLE : try later", ServiceUnavailable, true),
            // Unknown codes are treated like INTERNAL_SERVER_ERROR.
            ("BRAND_NEW_CODE", Other("BRAND_NEW_CODE".into()), true),
        ];
        for (raw, code, retryable) in cases {
            let parsed = NackCode::parse(raw);
            assert_eq!(&parsed, code, "{raw:?}");
            assert_eq!(parsed.is_retryable(), *retryable, "{raw:?}");
        }
        assert!(
            DeviceMessageRateExceeded.is_rate_limit() && TopicsMessageRateExceeded.is_rate_limit()
        );
    }

    #[test]
    fn http_errors_map_to_nack_codes() {
        use NackCode::*;
        let cases = [
            ("MissingRegistration", InvalidJson),
            ("InvalidRegistration", BadRegistration),
            ("NotRegistered", DeviceUnregistered),
            ("InvalidPackageName", InvalidJson),
            ("MismatchSenderId", BadRegistration),
            ("InvalidParameters", InvalidJson),
            ("MessageTooBig", InvalidJson),
            ("InvalidDataKey", InvalidJson),
            ("InvalidTtl", InvalidJson),
            ("Unavailable", ServiceUnavailable),
            ("InternalServerError", InternalServerError),
            ("DeviceMessageRateExceeded", DeviceMessageRateExceeded),
            ("TopicsMessageRateExceeded", TopicsMessageRateExceeded),
            ("InvalidApnsCredential", InvalidApnsCredential),
            ("QuotaExceeded", DeviceMessageRateExceeded),
            ("DeviceQuotaExceeded", DeviceMessageRateExceeded),
            ("MissingCollapseKey", InvalidJson),
            ("SomethingElse", Other("SomethingElse".into())),
        ];
        for (raw, code) in cases {
            assert_eq!(NackCode::from_http_error(raw), code, "{raw}");
        }
    }

    fn ignored(inbound: Inbound) -> String {
        match inbound {
            Inbound::Ignored(reason) => reason,
            other => panic!("expected Ignored, got {other:?}"),
        }
    }

    #[test]
    fn ccs_acks_take_the_fast_path() {
        for json in [
            r#"{"message_type":"ack","from":"tok","message_id":"m-1"}"#,
            r#"{"message_type":"ack","message_id":"m-1","from":"tok","registration_id":"new"}"#,
        ] {
            assert!(fast_ack(json).is_some(), "{json}");
        }
        assert!(fast_ack(r#"{"message_type":"ack","message_id":"m\"1"}"#).is_none());
        assert!(fast_ack(r#"{"message_type":"nack","message_id":"m-1"}"#).is_none());
    }

    #[test]
    fn classifies_acks() {
        let ack = r#"{"message_type":"ack","from":"cJ3xQ9:APA91bExampleToken","message_id":"m-7f1c2a90"}"#;
        assert_eq!(
            classify_json(ack),
            Inbound::Ack(Ack {
                message_id: "m-7f1c2a90".into(),
                from: Some("cJ3xQ9:APA91bExampleToken".into()),
                registration_id: None,
            })
        );
        let canonical =
            r#"{"message_type":"ack","from":"old","message_id":"m-\"1\"","registration_id":"new"}"#;
        assert_eq!(
            classify_json(canonical),
            Inbound::Ack(Ack {
                message_id: "m-\"1\"".into(),
                from: Some("old".into()),
                registration_id: Some("new".into()),
            })
        );
        // A wrongly typed optional member is dropped, not fatal.
        let Inbound::Ack(ack) =
            classify_json(r#"{"message_type":"ack","message_id":"m","from":5}"#)
        else {
            panic!("not an ack");
        };
        assert_eq!(ack.from, None);
    }

    #[test]
    fn classifies_nacks() {
        let nack = r#"{"message_type":"nack","message_id":"m-91","from":"bogus-token","error":"BAD_REGISTRATION","error_description":"Invalid token on 'to' field: bogus-token"}"#;
        assert_eq!(
            classify_json(nack),
            Inbound::Nack(Nack {
                message_id: Some("m-91".into()),
                from: Some("bogus-token".into()),
                code: NackCode::BadRegistration,
                description: Some("Invalid token on 'to' field: bogus-token".into()),
            })
        );
        let squashed = json!({"message_type": "nack", "message_id": "m-2", "error": "InvalidJson : INVALID_TTL : Invalid value (-1)\n"});
        let Inbound::Nack(n) = classify_json(&squashed.to_string()) else {
            panic!()
        };
        assert_eq!(
            (n.code, n.description.as_deref()),
            (
                NackCode::InvalidJson,
                Some("InvalidJson : INVALID_TTL : Invalid value (-1)\n")
            )
        );
        // A legacy spelling is kept as the description; a plain code adds nothing.
        let Inbound::Nack(n) =
            classify_json(r#"{"message_type":"nack","message_id":"m","error":"QUOTA_EXCEEDED"}"#)
        else {
            panic!()
        };
        assert_eq!(
            (n.code, n.description.as_deref()),
            (NackCode::DeviceMessageRateExceeded, Some("QUOTA_EXCEEDED"))
        );
        let Inbound::Nack(n) =
            classify_json(r#"{"message_type":"nack","message_id":"m","error":"BAD_ACK"}"#)
        else {
            panic!()
        };
        assert_eq!(n.description, None);
    }

    #[test]
    fn nack_without_id_or_code_is_still_typed() {
        assert_eq!(
            classify_json(r#"{"message_type":"nack","error":"SERVICE_UNAVAILABLE"}"#),
            Inbound::Nack(Nack {
                message_id: None,
                from: None,
                code: NackCode::ServiceUnavailable,
                description: None
            })
        );
        let Inbound::Nack(n) = classify_json(r#"{"message_type":"nack","message_id":"m"}"#) else {
            panic!()
        };
        assert_eq!(n.code, NackCode::Other(String::new()));
        assert!(n.code.is_retryable());
        assert_eq!(n.to_string(), "nacked with (no error code)");
    }

    #[test]
    fn classifies_control_messages() {
        assert_eq!(
            classify_json(r#"{"message_type":"control","control_type":"CONNECTION_DRAINING"}"#),
            Inbound::Control(Control::ConnectionDraining)
        );
        assert_eq!(
            classify_json(r#"{"message_type":"control","control_type":"SOMETHING_NEW"}"#),
            Inbound::Control(Control::Other("SOMETHING_NEW".into()))
        );
        assert!(ignored(classify_json(r#"{"message_type":"control"}"#)).contains("control_type"));
    }

    #[test]
    fn classifies_receipts_and_acks_them_with_the_full_id() {
        let receipt = r#"{"message_type":"receipt","message_id":"dr2:m-7f1c2a90","from":"gcm.googleapis.com","category":"com.example.chat","data":{"message_status":"MESSAGE_SENT_TO_DEVICE","original_message_id":"m-7f1c2a90","device_registration_id":"cJ3xQ9:APA91bExampleToken"}}"#;
        let Inbound::Receipt(r) = classify_json(receipt) else {
            panic!("not a receipt")
        };
        assert_eq!(r.message_id, "dr2:m-7f1c2a90");
        assert_eq!(r.from, "gcm.googleapis.com");
        assert_eq!(r.category.as_deref(), Some("com.example.chat"));
        assert_eq!(r.original_message_id.as_deref(), Some("m-7f1c2a90"));
        assert_eq!(
            r.device_registration_id.as_deref(),
            Some("cJ3xQ9:APA91bExampleToken")
        );
        assert_eq!(r.message_status.as_deref(), Some("MESSAGE_SENT_TO_DEVICE"));
        assert_eq!(r.data.len(), 3);
        assert_eq!(
            r.ack_json(),
            r#"{"to":"gcm.googleapis.com","message_id":"dr2:m-7f1c2a90","message_type":"ack"}"#
        );
    }

    #[test]
    fn classifies_upstream_messages_and_acks_them() {
        let upstream = r#"{"category":"com.example.chat","data":{"action":"ECHO","text":"hi"},"message_id":"up-17","from":"cJ3xQ9:APA91bExampleToken","time_to_live":86400}"#;
        let Inbound::Upstream(u) = classify_json(upstream) else {
            panic!("not upstream")
        };
        assert_eq!(
            u,
            Upstream {
                message_id: "up-17".into(),
                from: "cJ3xQ9:APA91bExampleToken".into(),
                category: Some("com.example.chat".into()),
                time_to_live: Some(86400),
                data: json!({"action": "ECHO", "text": "hi"})
                    .as_object()
                    .unwrap()
                    .clone(),
            }
        );
        assert_eq!(
            u.ack_json(),
            r#"{"to":"cJ3xQ9:APA91bExampleToken","message_id":"up-17","message_type":"ack"}"#
        );
        assert!(ignored(classify_json(r#"{"message_id":"up-1"}"#)).contains("without `from`"));
        assert!(ignored(classify_json(r#"{"from":"tok"}"#)).contains("without `message_id`"));
        assert!(
            ignored(classify_json(r#"{"from":"t","message_id":"u","data":"x"}"#))
                .contains("`data` must be an object, got string")
        );
    }

    #[test]
    fn a_null_or_non_string_message_type_is_not_upstream() {
        // Only an absent `message_type` makes an upstream message (spec §6.3); a present one
        // that is not a known string is ignored, so never acked, like an unknown type.
        let upstream = r#""message_id":"up-1","from":"tok","data":{"k":"v"}"#;
        assert!(matches!(
            classify_json(&format!("{{{upstream}}}")),
            Inbound::Upstream(_)
        ));
        for (value, kind) in [
            ("null", "null"),
            ("true", "boolean"),
            ("0", "number"),
            ("-1", "number"),
            ("1.5", "number"),
            (r#"["ack"]"#, "array"),
            (r#"{"type":"ack"}"#, "object"),
        ] {
            for json in [
                format!(r#"{{"message_type":{value},{upstream}}}"#),
                format!(r#"{{{upstream},"message_type":{value}}}"#),
            ] {
                assert_eq!(
                    ignored(classify_json(&json)),
                    format!("`message_type` must be a string, got {kind}"),
                    "{json}"
                );
            }
        }
        // Present twice is still a duplicate, null or not.
        let twice = format!(r#"{{"message_type":null,"message_type":null,{upstream}}}"#);
        assert!(ignored(classify_json(&twice)).contains("duplicate field"));
    }

    #[test]
    fn ack_json_escapes_its_strings() {
        assert_eq!(
            upstream_ack_json("a\"b", "c\\d"),
            r#"{"to":"a\"b","message_id":"c\\d","message_type":"ack"}"#
        );
    }

    #[test]
    fn unusable_json_is_ignored_with_a_reason() {
        let cases = [
            (
                r#"{"message_type":"ack","from":"t"}"#,
                "ack without `message_id`",
            ),
            (
                r#"{"message_type":"ack","message_id":7}"#,
                "ack `message_id` must be a string, got number",
            ),
            (
                r#"{"message_type":"nack","message_id":["m"]}"#,
                "nack `message_id` must be a string, got array",
            ),
            (
                r#"{"message_type":"receipt","message_id":"dr2:m"}"#,
                "receipt without `from`",
            ),
            (
                r#"{"message_type":"future","message_id":"m"}"#,
                "unknown message_type \"future\"",
            ),
            (
                r#"{"message_type":1}"#,
                "`message_type` must be a string, got number",
            ),
            ("[1,2]", "not a JSON object"),
            ("\"ack\"", "not a JSON object"),
            ("42", "not a JSON object"),
            ("", "not a JSON object"),
            (r#"{"message_type":"#, "invalid JSON"),
            (r#"{"message_id":"a","message_id":"b"}"#, "duplicate field"),
        ];
        for (json, reason) in cases {
            let got = ignored(classify_json(json));
            assert!(got.contains(reason), "{json}: {got:?}");
        }
    }

    fn error_stanza() -> MessageStanza {
        MessageStanza {
            id: Some("m-0003".into()),
            kind: Some("error".into()),
            to: Some("123456789012@gcm.googleapis.com/node-a7C41E09B".into()),
            gcm: Some(r#"{"random": "text"}"#.into()),
            error: Some(StanzaErrorInfo {
                code: Some(400),
                kind: Some("modify".into()),
                condition: Some("bad-request".into()),
                text: Some(
                    "InvalidJson: JSON_PARSING_ERROR : Missing Required Field: message_id\n".into(),
                ),
            }),
            ..MessageStanza::default()
        }
    }

    #[test]
    fn classifies_stanza_errors() {
        assert_eq!(
            classify(&error_stanza()),
            Inbound::StanzaError(StanzaError {
                id: Some("m-0003".into()),
                condition: "bad-request".into(),
                text: Some(
                    "InvalidJson: JSON_PARSING_ERROR : Missing Required Field: message_id\n".into()
                ),
            })
        );
        // Without a stanza id, the echoed JSON's message_id correlates.
        let echoed = MessageStanza {
            id: None,
            gcm: Some(r#"{"to":"t","message_id":"m-9","ttl":1}"#.into()),
            ..error_stanza()
        };
        let Inbound::StanzaError(e) = classify(&echoed) else {
            panic!()
        };
        assert_eq!(e.id.as_deref(), Some("m-9"));
        // type="error" without an <error> child, even over an ack-like payload.
        let bare = MessageStanza {
            kind: Some("error".into()),
            gcm: Some(r#"{"message_type":"ack","message_id":"m"}"#.into()),
            ..MessageStanza::default()
        };
        assert_eq!(
            classify(&bare),
            Inbound::StanzaError(StanzaError {
                id: Some("m".into()),
                condition: "undefined-condition".into(),
                text: None
            })
        );
    }

    #[test]
    fn dispatch_ignores_the_stanza_type_attribute() {
        for kind in [None, Some("normal"), Some("chat")] {
            let stanza = MessageStanza {
                kind: kind.map(str::to_owned),
                gcm: Some(r#"{"message_type":"ack","message_id":"m-1"}"#.into()),
                ..MessageStanza::default()
            };
            assert!(matches!(classify(&stanza), Inbound::Ack(_)), "{kind:?}");
        }
        assert!(ignored(classify(&MessageStanza::default())).contains("<gcm>"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// The ack fast path gives what the general path gives, whenever it answers at all.
        #[test]
        fn the_ack_fast_path_agrees_with_serde(
            members in proptest::collection::vec((
                proptest::sample::select(vec!["message_type", "message_id", "from", "registration_id", "error", "message\\_id"]),
                proptest::sample::select(vec!["ack", "nack", "m-1", "", "t\\\"q", "é", "a\u{1}b", " x "]),
            ), 0..6),
            spaced in any::<bool>(),
        ) {
            let sep = if spaced { ", " } else { "," };
            let body: Vec<String> = members.iter().map(|(k, v)| format!(r#""{k}":"{v}""#)).collect();
            let json = format!("{{{}}}", body.join(sep));
            if let Some(ack) = fast_ack(&json) {
                prop_assert_eq!(Inbound::Ack(ack), classify_general(&json), "{}", json);
            }
            prop_assert_eq!(classify_json(&json), classify_general(&json), "{}", json);
        }

        #[test]
        fn classify_json_never_panics(s in any::<String>()) {
            let _ = classify_json(&s);
        }

        #[test]
        fn classify_json_never_panics_on_json_like_text(s in "[{}\\[\\]\":,.0-9a-z_ -]{0,60}") {
            let _ = classify_json(&s);
        }
    }
}
