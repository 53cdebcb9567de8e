//! Reading a downstream message from JSON: each top-level member with its JSON type checked.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::validate::{check_ttl, http_only, invalid};
use super::{Message, MessageBuilder, Notification, ValidationError};

/// The top-level members a downstream object may have, for [`read_direct`]'s check for repeats.
pub(super) const MEMBERS: [&str; 13] = [
    "to",
    "condition",
    "message_id",
    "collapse_key",
    "priority",
    "content_available",
    "mutable_content",
    "time_to_live",
    "delay_while_idle",
    "delivery_receipt_requested",
    "dry_run",
    "data",
    "notification",
];

/// `line` read member by member straight into a builder, without a map of the whole object
/// first. `None` for anything but a valid message without repeated members (not an object,
/// an unknown or repeated member, any error): reading it as a value then gives the answer
/// (the same for every valid message, and the error for the rest).
pub(crate) fn read_direct(line: &str) -> Option<Message> {
    serde_json::from_str::<Direct>(line).ok()?.0?.build().ok()
}

/// A builder, or `None` where [`read_direct`] gives up.
struct Direct(Option<MessageBuilder>);

impl<'de> Deserialize<'de> for Direct {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(DirectVisitor)
    }
}

struct DirectVisitor;

impl<'de> Visitor<'de> for DirectVisitor {
    type Value = Direct;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a downstream message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Direct, A::Error> {
        let (mut builder, mut seen) = (MessageBuilder::default(), 0u16);
        while let Some(key) = members.next_key::<Cow<'de, str>>()? {
            let Some(at) = MEMBERS.iter().position(|m| *m == key) else {
                return Ok(Direct(None));
            };
            if seen & (1 << at) != 0 {
                return Ok(Direct(None));
            }
            seen |= 1 << at;
            match builder.json_field(&key, members.next_value()?) {
                Ok(b) => builder = b,
                Err(_) => return Ok(Direct(None)),
            }
        }
        Ok(Direct(Some(builder)))
    }
}

impl MessageBuilder {
    /// Applies one top-level member of a downstream JSON object, checking its JSON type.
    pub(super) fn json_field(self, key: &str, value: Value) -> Result<Self, ValidationError> {
        Ok(match key {
            "to" => self.to(json_string(key, value)?),
            "condition" => self.condition(json_string(key, value)?),
            "message_id" => self.message_id(json_string(key, value)?),
            "collapse_key" => self.collapse_key(json_string(key, value)?),
            "priority" => self.priority(json_string(key, value)?.parse()?),
            "content_available" => self.content_available(json_bool(key, value)?),
            "mutable_content" => self.mutable_content(json_bool(key, value)?),
            "time_to_live" => self.time_to_live(json_ttl(value)?),
            "delay_while_idle" => self.delay_while_idle(json_bool(key, value)?),
            "delivery_receipt_requested" => self.delivery_receipt_requested(json_bool(key, value)?),
            "dry_run" => self.dry_run(json_bool(key, value)?),
            "data" => self.data_map(json_object(key, value)?),
            "notification" => self.notification(json_notification(value)?),
            "registration_ids" => {
                return Err(http_only(
                    "registration_ids",
                    "use the HTTP sender for multicast",
                ));
            }
            "notification_key" => {
                return Err(http_only(
                    "notification_key",
                    "put the notification key in `to`",
                ));
            }
            "restricted_package_name" => {
                return Err(http_only(
                    "restricted_package_name",
                    "it is documented for the HTTP API only",
                ));
            }
            "message_type" => {
                return Err(invalid(
                    key,
                    "not allowed in a downstream message (it marks acks and control messages)",
                ));
            }
            _ => return Err(invalid(key, "unknown field in a downstream message")),
        })
    }
}

/// The JSON type name of `v`, for error messages.
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn wrong_type(field: &str, expected: &str, got: &Value) -> ValidationError {
    invalid(field, format!("must be {expected}, got {}", json_type(got)))
}

fn json_string(field: &str, v: Value) -> Result<String, ValidationError> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(wrong_type(field, "a string", &other)),
    }
}

fn json_bool(field: &str, v: Value) -> Result<bool, ValidationError> {
    v.as_bool()
        .ok_or_else(|| wrong_type(field, "a boolean", &v))
}

fn json_object(field: &str, v: Value) -> Result<Map<String, Value>, ValidationError> {
    match v {
        Value::Object(map) => Ok(map),
        other => Err(wrong_type(field, "an object", &other)),
    }
}

/// `time_to_live` must be an integer JSON number (not `"600"`, not `600.5`) within range.
fn json_ttl(v: Value) -> Result<u32, ValidationError> {
    const FIELD: &str = "time_to_live";
    const EXPECTED: &str = "an integer number of seconds";
    let Value::Number(n) = &v else {
        return Err(wrong_type(FIELD, EXPECTED, &v));
    };
    let seconds = match (n.as_i64(), n.as_u64()) {
        (Some(s), _) => s,
        (None, Some(_)) => i64::MAX,
        (None, None) => return Err(invalid(FIELD, format!("must be {EXPECTED}, got {n}"))),
    };
    check_ttl(seconds)
}

fn json_notification(v: Value) -> Result<Notification, ValidationError> {
    let fields = json_object("notification", v)?;
    if let Some((key, value)) = fields.iter().find(|(_, value)| !value.is_string()) {
        return Err(wrong_type(
            &format!("notification.{key}"),
            "a string",
            value,
        ));
    }
    serde_json::from_value(Value::Object(fields))
        .map_err(|e| invalid("notification", e.to_string()))
}
