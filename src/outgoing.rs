//! What a [`Sender`](crate::Sender) sends: a CCS message, or a push to a browser's
//! subscription; and the one JSON line schema that `gcm-ccs send` and the relay read for both.

use serde_json::{Map, Value};

use crate::http::subscription::{GCM_PUSH_ENDPOINT, registration_id_from_endpoint};
use crate::inbound::Ack;
use crate::message::{Message, Priority, ValidationError};
#[cfg(feature = "webpush")]
use crate::webpush::{Accepted, Push, PushError, Subscription, SubscriptionError, Urgency};

/// One thing to send, routed by its target.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A downstream CCS message: to a registration token, topic or condition (GCM-era Chrome
    /// subscriptions, `https://android.googleapis.com/gcm/send/<id>`, become one of these).
    Message(Message),
    /// A push to a browser's subscription over Web Push (boxed: it is twice the size of a
    /// message, and lines move from the reader to a sender).
    #[cfg(feature = "webpush")]
    WebPush(Box<WebPush>),
}

/// A Web Push message: where, what, and an id of ours for records (the push service assigns
/// its own, in [`Accepted::location`]).
#[cfg(feature = "webpush")]
#[derive(Debug, Clone)]
pub struct WebPush {
    /// Ours: given in the line, or generated like a CCS message id.
    pub id: String,
    /// The browser's subscription.
    pub subscription: Subscription,
    /// The payload and the RFC 8030 headers.
    pub push: Push,
}

/// What the transport accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// CCS (or the HTTP API) accepted the message.
    Ack(Ack),
    /// The push service accepted the push.
    #[cfg(feature = "webpush")]
    Accepted(Accepted),
}

impl From<Message> for Outgoing {
    fn from(msg: Message) -> Self {
        Outgoing::Message(msg)
    }
}

/// The members of a subscription line.
const PUSH_FIELDS: &[&str] = &[
    "subscription",
    "payload",
    "ttl",
    "urgency",
    "topic",
    "message_id",
];

impl Outgoing {
    /// Reads one line of `gcm-ccs send` input: a downstream CCS message object (see
    /// [`Message::from_json`]), or `{"subscription": {…}, "payload": "text", "ttl": 60,
    /// "urgency": "high", "topic": "t"}` for a browser (`message_id` optional in both).
    /// Every error names the field.
    pub fn from_json(line: &str) -> Result<Outgoing, ValidationError> {
        if let Some(message) = crate::message::read_direct(line) {
            return Ok(Outgoing::Message(message));
        }
        let value: Value =
            serde_json::from_str(line).map_err(|e| ValidationError::Json(e.to_string()))?;
        Outgoing::from_json_value(value)
    }

    /// [`from_json`](Self::from_json) of an already parsed value.
    pub fn from_json_value(value: Value) -> Result<Outgoing, ValidationError> {
        match value {
            Value::Object(fields) if fields.contains_key("subscription") => push_line(fields),
            other => Message::from_json_value(other).map(Outgoing::Message),
        }
    }

    /// The id outcomes are recorded under.
    pub fn id(&self) -> &str {
        match self {
            Outgoing::Message(m) => m.message_id(),
            #[cfg(feature = "webpush")]
            Outgoing::WebPush(w) => &w.id,
        }
    }

    /// Where it goes: the `to` or `condition`, or the subscription's endpoint.
    pub fn target(&self) -> &str {
        match self {
            Outgoing::Message(m) => m.target_str(),
            #[cfg(feature = "webpush")]
            Outgoing::WebPush(w) => w.subscription.endpoint(),
        }
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> ValidationError {
    ValidationError::InvalidField {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The string member `key`, if present.
fn string(fields: &Map<String, Value>, key: &str) -> Result<Option<String>, ValidationError> {
    match fields.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(key, "must be a string")),
    }
}

fn push_line(fields: Map<String, Value>) -> Result<Outgoing, ValidationError> {
    if let Some(key) = fields.keys().find(|k| !PUSH_FIELDS.contains(&k.as_str())) {
        return Err(invalid(key, "unknown field in a Web Push line"));
    }
    let subscription = match &fields["subscription"] {
        Value::Object(s) => s,
        _ => return Err(invalid("subscription", "must be a PushSubscription object")),
    };
    let endpoint = match subscription.get("endpoint") {
        Some(Value::String(e)) => e.as_str(),
        _ => return Err(invalid("subscription.endpoint", "must be a string")),
    };
    let ttl = match fields.get("ttl") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|t| u32::try_from(t).ok())
                .ok_or_else(|| invalid("ttl", "must be a whole number of seconds"))?,
        ),
    };
    let id = string(&fields, "message_id")?;
    if endpoint.starts_with(GCM_PUSH_ENDPOINT) {
        return gcm_era(subscription, endpoint, &fields, ttl, id);
    }
    web_push(&fields, ttl, id)
}

/// A GCM-era Chrome subscription: its registration id goes to CCS (or the HTTP API), as it
/// did then; those pushes carried no payload.
fn gcm_era(
    subscription: &Map<String, Value>,
    endpoint: &str,
    fields: &Map<String, Value>,
    ttl: Option<u32>,
    id: Option<String>,
) -> Result<Outgoing, ValidationError> {
    if fields.contains_key("payload") {
        return Err(invalid(
            "payload",
            "a GCM-era subscription (android.googleapis.com/gcm/send) takes no payload",
        ));
    }
    let subscription_id = subscription.get("subscriptionId").and_then(Value::as_str);
    let token = registration_id_from_endpoint(endpoint, subscription_id)
        .map_err(|e| invalid("subscription.endpoint", e.to_string()))?;
    let mut builder = Message::to(token);
    if let Some(ttl) = ttl {
        builder = builder.time_to_live(ttl);
    }
    if let Some(topic) = string(fields, "topic")? {
        builder = builder.collapse_key(topic);
    }
    match string(fields, "urgency")?.as_deref() {
        None => {}
        Some("high") => builder = builder.priority(Priority::High),
        Some("very-low" | "low" | "normal") => builder = builder.priority(Priority::Normal),
        Some(other) => return Err(invalid("urgency", format!("{other:?} is not an urgency"))),
    }
    if let Some(id) = id {
        builder = builder.message_id(id);
    }
    builder.build().map(Outgoing::Message)
}

#[cfg(feature = "webpush")]
fn web_push(
    fields: &Map<String, Value>,
    ttl: Option<u32>,
    id: Option<String>,
) -> Result<Outgoing, ValidationError> {
    let subscription = Subscription::from_json(&fields["subscription"].to_string())?;
    let mut push = Push::builder();
    if let Some(payload) = string(fields, "payload")? {
        push = push.payload(payload);
    }
    if let Some(ttl) = ttl {
        push = push.ttl(ttl);
    }
    if let Some(urgency) = string(fields, "urgency")? {
        let urgency: Urgency = urgency.parse().map_err(|e: String| invalid("urgency", e))?;
        push = push.urgency(urgency);
    }
    if let Some(topic) = string(fields, "topic")? {
        push = push.topic(topic);
    }
    let push = push.build().map_err(|e| match e {
        PushError::PayloadTooLarge { size, limit } => {
            ValidationError::PayloadTooLarge { size, limit }
        }
        PushError::InvalidTopic { reason, .. } => invalid("topic", reason),
    })?;
    Ok(Outgoing::WebPush(Box::new(WebPush {
        id: id.unwrap_or_else(crate::message::generate_message_id),
        subscription,
        push,
    })))
}

#[cfg(not(feature = "webpush"))]
fn web_push(
    _: &Map<String, Value>,
    _: Option<u32>,
    _: Option<String>,
) -> Result<Outgoing, ValidationError> {
    Err(invalid(
        "subscription",
        "Web Push needs the `webpush` feature of gcm-ccs",
    ))
}

#[cfg(feature = "webpush")]
impl From<SubscriptionError> for ValidationError {
    fn from(e: SubscriptionError) -> Self {
        match e {
            SubscriptionError::Json(reason) => invalid("subscription", reason),
            SubscriptionError::InvalidField { field, reason } => {
                invalid(&format!("subscription.{field}"), reason)
            }
        }
    }
}

#[cfg(all(test, feature = "webpush"))]
mod tests {
    use super::*;

    const P256DH: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";

    fn line(subscription: &str, rest: &str) -> String {
        format!(r#"{{"subscription":{subscription}{rest}}}"#)
    }

    fn browser(auth: &str) -> String {
        format!(
            r#"{{"endpoint":"https://push.example.net/wpush/abc","keys":{{"p256dh":"{P256DH}","auth":"{auth}"}}}}"#
        )
    }

    fn field_of(e: ValidationError) -> String {
        match e {
            ValidationError::InvalidField { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_browser_subscription_line_is_a_web_push() {
        let text = line(
            &browser("BTBZMqHH6r4Tts7J_aSIgg"),
            r#","payload":"hi","ttl":60,"urgency":"high","topic":"t","message_id":"w-1""#,
        );
        let Outgoing::WebPush(w) = Outgoing::from_json(&text).unwrap() else {
            panic!("not a web push");
        };
        assert_eq!(w.id, "w-1");
        assert_eq!(w.push.payload(), Some(&b"hi"[..]));
        assert_eq!(
            (w.push.ttl(), w.push.urgency(), w.push.topic()),
            (60, Some(Urgency::High), Some("t"))
        );
        assert_eq!(
            w.subscription.endpoint(),
            "https://push.example.net/wpush/abc"
        );
    }

    #[test]
    fn a_gcm_era_subscription_line_goes_to_ccs() {
        let gcm = r#"{"endpoint":"https://android.googleapis.com/gcm/send/APA91b-token"}"#;
        let Outgoing::Message(m) = Outgoing::from_json(&line(gcm, r#","ttl":30"#)).unwrap() else {
            panic!("not a CCS message");
        };
        assert_eq!(
            (m.target_str(), m.time_to_live()),
            ("APA91b-token", Some(30))
        );
        let err = Outgoing::from_json(&line(gcm, r#","payload":"x""#)).unwrap_err();
        assert_eq!(field_of(err), "payload");
    }

    #[test]
    fn bad_subscription_lines_name_the_field() {
        let cases = [
            (line(&browser("c2hvcnQ"), ""), "subscription"),
            (
                line(
                    r#"{"endpoint":"http://push.example.net/x","keys":{"p256dh":"x","auth":"y"}}"#,
                    "",
                ),
                "subscription",
            ),
            (line(r#""not an object""#, ""), "subscription"),
            (line(r#"{"keys":{}}"#, ""), "subscription.endpoint"),
            (
                line(&browser("BTBZMqHH6r4Tts7J_aSIgg"), r#","ttl":-1"#),
                "ttl",
            ),
            (
                line(&browser("BTBZMqHH6r4Tts7J_aSIgg"), r#","urgency":"now""#),
                "urgency",
            ),
            (
                line(
                    &browser("BTBZMqHH6r4Tts7J_aSIgg"),
                    r#","topic":"not base64url!""#,
                ),
                "topic",
            ),
            (
                line(&browser("BTBZMqHH6r4Tts7J_aSIgg"), r#","to":"x""#),
                "to",
            ),
        ];
        for (text, field) in cases {
            let err = Outgoing::from_json(&text).unwrap_err();
            assert!(err.to_string().contains(field), "{text}: {err}");
        }
        let big = format!(r#","payload":"{}""#, "x".repeat(3994));
        let err = Outgoing::from_json(&line(&browser("BTBZMqHH6r4Tts7J_aSIgg"), &big)).unwrap_err();
        assert!(
            matches!(
                err,
                ValidationError::PayloadTooLarge {
                    size: 3994,
                    limit: 3993
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn other_lines_are_ccs_messages() {
        let Outgoing::Message(m) =
            Outgoing::from_json(r#"{"to":"tok","message_id":"m-1"}"#).unwrap()
        else {
            panic!();
        };
        assert_eq!(m.message_id(), "m-1");
        assert!(Outgoing::from_json("[1]").is_err());
    }
}
