//! Downstream messages (app server → CCS, spec §7): building, validation and JSON.
//!
//! [`MessageBuilder::build`] and [`Message::from_json`] share one validation, so a
//! [`Message`] that exists is one CCS should not reject for its shape.

use std::collections::BTreeMap;
use std::str::FromStr;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ValidationError;

/// Largest accepted `time_to_live`, in seconds (28 days).
pub const MAX_TTL: u32 = 2_419_200;
/// Largest payload in bytes: keys + values of `data` and `notification`.
pub const MAX_PAYLOAD_BYTES: usize = 4096;
/// Longest accepted `message_id`, in bytes. CCS's own limit is unconfirmed (spec §7), so
/// ids are held to the advised bound: 1 to 100 printable ASCII characters, no whitespace.
pub const MAX_MESSAGE_ID_LEN: usize = 100;
/// Longest accepted `to`, `condition` and `collapse_key`, in bytes. CCS's own limits are
/// unconfirmed; tokens and notification keys are a few hundred bytes. The bound keeps the
/// stanza of any valid message far below the 64 KiB a stream reader accepts, so that no
/// message can get the connections it is sent on closed (and be resent to close the next).
pub const MAX_FIELD_BYTES: usize = 1024;

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// A registration token, a topic `/topics/<name>`, or a device-group notification key.
    To(String),
    /// An FCM topic condition such as `'news' in topics && 'eu' in topics`.
    Condition(String),
}

impl Target {
    /// The `to` or `condition` value.
    pub fn as_str(&self) -> &str {
        match self {
            Target::To(s) | Target::Condition(s) => s,
        }
    }
}

/// Delivery priority, `"normal"` or `"high"` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Normal,
    High,
}

impl FromStr for Priority {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, ValidationError> {
        match s {
            "normal" => Ok(Priority::Normal),
            "high" => Ok(Priority::High),
            other => Err(invalid(
                "priority",
                format!("must be \"normal\" or \"high\", got {other:?}"),
            )),
        }
    }
}

/// A display notification (spec §7). All values are strings; the `*_loc_args` are a JSON
/// array serialized into a string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sound: Option<String>,
    /// iOS badge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub badge: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// `#rrggbb`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub click_action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_loc_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_loc_args: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title_loc_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title_loc_args: Option<String>,
    /// Android O+ notification channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub android_channel_id: Option<String>,
    /// iOS subtitle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtitle: Option<String>,
    /// Other string-valued keys (FCM added more over time), kept verbatim. Must not repeat
    /// the named fields above.
    #[serde(flatten)]
    pub extra: BTreeMap<String, String>,
}

impl Notification {
    /// Bytes of keys + values, as counted against [`MAX_PAYLOAD_BYTES`].
    fn payload_size(&self) -> usize {
        match to_value(self) {
            Value::Object(fields) => map_payload_size(&fields),
            _ => 0,
        }
    }
}

/// Everything but the target and the id; shared by the builder and the message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
struct Options {
    #[serde(skip_serializing_if = "Option::is_none")]
    collapse_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<Priority>,
    #[serde(skip_serializing_if = "is_false")]
    content_available: bool,
    #[serde(skip_serializing_if = "is_false")]
    mutable_content: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_to_live: Option<u32>,
    #[serde(skip_serializing_if = "is_false")]
    delay_while_idle: bool,
    #[serde(skip_serializing_if = "is_false")]
    delivery_receipt_requested: bool,
    #[serde(skip_serializing_if = "is_false")]
    dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notification: Option<Notification>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A validated downstream message. Serializes to the JSON object of spec §7; boolean
/// options are written only when true (false is the server default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    #[serde(flatten)]
    target: Target,
    message_id: String,
    #[serde(flatten)]
    options: Options,
    /// [`Message::payload_size`], computed once when the message is built.
    #[serde(skip)]
    payload_size: usize,
}

impl Message {
    /// An empty builder.
    pub fn builder() -> MessageBuilder {
        MessageBuilder::default()
    }

    /// A builder addressed to a token, topic (`/topics/<name>`) or notification key.
    pub fn to(to: impl Into<String>) -> MessageBuilder {
        Self::builder().to(to)
    }

    /// Parses one downstream JSON object (e.g. an NDJSON line). `message_id` is optional:
    /// a fresh one is generated when absent.
    pub fn from_json(line: &str) -> Result<Message, ValidationError> {
        let value = serde_json::from_str(line).map_err(|e| ValidationError::Json(e.to_string()))?;
        Self::from_json_value(value)
    }

    /// Like [`Message::from_json`], from an already parsed value.
    pub fn from_json_value(v: Value) -> Result<Message, ValidationError> {
        let Value::Object(fields) = v else {
            return Err(ValidationError::Json(format!(
                "a message must be a JSON object, got {}",
                json_type(&v)
            )));
        };
        fields
            .into_iter()
            .try_fold(Self::builder(), |b, (key, value)| b.json_field(&key, value))?
            .build()
    }

    /// The downstream JSON object, `message_id` included.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a Message has string keys and finite numbers only")
    }

    /// The downstream JSON object as a value.
    pub fn to_json_value(&self) -> Value {
        to_value(self)
    }

    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The `to` or `condition` value (for per-target rate limits and output).
    pub fn target_str(&self) -> &str {
        self.target.as_str()
    }

    pub fn collapse_key(&self) -> Option<&str> {
        self.options.collapse_key.as_deref()
    }

    /// The explicit priority; `None` leaves the server default (high for notification
    /// messages, normal for data messages).
    pub fn priority(&self) -> Option<Priority> {
        self.options.priority
    }

    pub fn content_available(&self) -> bool {
        self.options.content_available
    }

    pub fn mutable_content(&self) -> bool {
        self.options.mutable_content
    }

    /// Seconds the server keeps the message for an offline device; `None` = server default
    /// (28 days), `Some(0)` = deliver now or drop.
    pub fn time_to_live(&self) -> Option<u32> {
        self.options.time_to_live
    }

    pub fn delay_while_idle(&self) -> bool {
        self.options.delay_while_idle
    }

    /// Whether a delivery receipt (spec §8.5) was asked for.
    pub fn delivery_receipt_requested(&self) -> bool {
        self.options.delivery_receipt_requested
    }

    pub fn dry_run(&self) -> bool {
        self.options.dry_run
    }

    pub fn data(&self) -> Option<&Map<String, Value>> {
        self.options.data.as_ref()
    }

    pub fn notification(&self) -> Option<&Notification> {
        self.options.notification.as_ref()
    }

    /// Bytes counted against [`MAX_PAYLOAD_BYTES`]: for every `data` and `notification`
    /// entry, the key's bytes plus the value's (a string's UTF-8 bytes, any other value's
    /// JSON text).
    pub fn payload_size(&self) -> usize {
        self.payload_size
    }
}

/// Builds a [`Message`]; every rule is checked in [`MessageBuilder::build`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct MessageBuilder {
    to: Option<String>,
    condition: Option<String>,
    message_id: Option<String>,
    options: Options,
}

impl MessageBuilder {
    /// Target a registration token, topic (`/topics/<name>`) or notification key.
    pub fn to(mut self, to: impl Into<String>) -> Self {
        self.to = Some(to.into());
        self
    }

    /// Target an FCM topic condition.
    pub fn condition(mut self, condition: impl Into<String>) -> Self {
        self.condition = Some(condition.into());
        self
    }

    /// Use this id instead of a generated one (see [`MAX_MESSAGE_ID_LEN`] for the rule).
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    pub fn collapse_key(mut self, key: impl Into<String>) -> Self {
        self.options.collapse_key = Some(key.into());
        self
    }

    pub fn priority(mut self, priority: Priority) -> Self {
        self.options.priority = Some(priority);
        self
    }

    pub fn content_available(mut self, on: bool) -> Self {
        self.options.content_available = on;
        self
    }

    pub fn mutable_content(mut self, on: bool) -> Self {
        self.options.mutable_content = on;
        self
    }

    /// Seconds to keep the message for an offline device, `0..=`[`MAX_TTL`].
    pub fn time_to_live(mut self, seconds: u32) -> Self {
        self.options.time_to_live = Some(seconds);
        self
    }

    pub fn delay_while_idle(mut self, on: bool) -> Self {
        self.options.delay_while_idle = on;
        self
    }

    /// Ask for a delivery receipt (spec §8.5).
    pub fn delivery_receipt_requested(mut self, on: bool) -> Self {
        self.options.delivery_receipt_requested = on;
        self
    }

    pub fn dry_run(mut self, on: bool) -> Self {
        self.options.dry_run = on;
        self
    }

    /// Adds one `data` entry (string values are recommended: GCM stringifies the rest).
    pub fn data(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.data_entries().insert(key.into(), value.into());
        self
    }

    /// Adds all entries of `map` to `data` (an empty map still yields `"data":{}`).
    pub fn data_map(mut self, map: Map<String, Value>) -> Self {
        self.data_entries().extend(map);
        self
    }

    pub fn notification(mut self, notification: Notification) -> Self {
        self.options.notification = Some(notification);
        self
    }

    /// Validates and builds; a missing message id is generated.
    pub fn build(self) -> Result<Message, ValidationError> {
        let target = match (self.to, self.condition) {
            (Some(to), None) => Target::To(check_to(to)?),
            (None, Some(condition)) => Target::Condition(check_length(
                "condition",
                check_non_empty("condition", condition)?,
            )?),
            (None, None) => return Err(ValidationError::MissingTarget),
            (Some(_), Some(_)) => return Err(ValidationError::ConflictingTargets),
        };
        let message_id = match self.message_id {
            Some(id) => check_message_id(id)?,
            None => generate_message_id(),
        };
        if let Some(key) = &self.options.collapse_key {
            check_length("collapse_key", key)?;
        }
        if let Some(ttl) = self.options.time_to_live {
            check_ttl(ttl.into())?;
        }
        if let Some(data) = &self.options.data {
            check_data_keys(data)?;
        }
        if let Some(notification) = &self.options.notification {
            check_notification_extra(notification)?;
        }
        let data = self.options.data.as_ref().map_or(0, map_payload_size);
        let notification = self
            .options
            .notification
            .as_ref()
            .map_or(0, Notification::payload_size);
        let payload_size = check_payload_size(data + notification)?;
        Ok(Message {
            target,
            message_id,
            options: self.options,
            payload_size,
        })
    }

    fn data_entries(&mut self) -> &mut Map<String, Value> {
        self.options.data.get_or_insert_with(Map::new)
    }

    /// Applies one top-level member of a downstream JSON object, checking its JSON type.
    fn json_field(self, key: &str, value: Value) -> Result<Self, ValidationError> {
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

/// A fresh message id: `m-` + 32 lowercase hex digits of a random 128-bit value (thread-local,
/// OS-seeded CSPRNG), so ids are unique across connections and processes (spec §9.4).
pub fn generate_message_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let value = rand::rng().random::<u128>();
    let mut id = String::with_capacity(34);
    id.push_str("m-");
    id.extend((0..32).rev().map(|nibble| {
        let digit = (value >> (nibble * 4)) & 0xF;
        char::from(HEX[digit as usize])
    }));
    id
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

fn to_value(v: &impl Serialize) -> Value {
    serde_json::to_value(v).expect("string keys and finite numbers always serialize")
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ValidationError {
    ValidationError::InvalidField {
        field: field.into(),
        reason: reason.into(),
    }
}

fn http_only(field: &'static str, hint: &'static str) -> ValidationError {
    ValidationError::HttpOnlyField { field, hint }
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

fn check_non_empty(field: &str, value: String) -> Result<String, ValidationError> {
    if value.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    Ok(value)
}

/// At most [`MAX_FIELD_BYTES`] bytes.
fn check_length<S: AsRef<str>>(field: &str, value: S) -> Result<S, ValidationError> {
    let len = value.as_ref().len();
    if len > MAX_FIELD_BYTES {
        return Err(invalid(
            field,
            format!("is {len} bytes long: at most {MAX_FIELD_BYTES} are allowed"),
        ));
    }
    Ok(value)
}

/// Non-empty, at most [`MAX_FIELD_BYTES`]; a topic name must match `[a-zA-Z0-9-_.~%]+`.
fn check_to(to: String) -> Result<String, ValidationError> {
    let to = check_length("to", check_non_empty("to", to)?)?;
    if let Some(name) = to.strip_prefix("/topics/") {
        let valid = |c: char| c.is_ascii_alphanumeric() || "-_.~%".contains(c);
        if name.is_empty() || !name.chars().all(valid) {
            return Err(invalid(
                "to",
                format!("topic name {name:?} must match [a-zA-Z0-9-_.~%]+"),
            ));
        }
    }
    Ok(to)
}

/// 1 to [`MAX_MESSAGE_ID_LEN`] printable ASCII characters, no whitespace.
fn check_message_id(id: String) -> Result<String, ValidationError> {
    const FIELD: &str = "message_id";
    let id = check_non_empty(FIELD, id)?;
    if let Some(c) = id.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(invalid(
            FIELD,
            format!("contains {c:?}: only printable ASCII without whitespace is allowed"),
        ));
    }
    if id.len() > MAX_MESSAGE_ID_LEN {
        return Err(invalid(
            FIELD,
            format!(
                "is {} characters long: at most {MAX_MESSAGE_ID_LEN} are allowed",
                id.len()
            ),
        ));
    }
    Ok(id)
}

fn check_ttl(seconds: i64) -> Result<u32, ValidationError> {
    u32::try_from(seconds)
        .ok()
        .filter(|s| *s <= MAX_TTL)
        .ok_or(ValidationError::TtlOutOfRange(seconds))
}

/// `from` and keys starting with `google` or `gcm` are reserved.
fn check_data_keys(data: &Map<String, Value>) -> Result<(), ValidationError> {
    match data
        .keys()
        .find(|k| *k == "from" || k.starts_with("google") || k.starts_with("gcm"))
    {
        Some(key) => Err(ValidationError::ReservedDataKey(key.clone())),
        None => Ok(()),
    }
}

/// The named fields of [`Notification`], which its `extra` map must not repeat.
const NOTIFICATION_FIELDS: &[&str] = &[
    "title",
    "body",
    "icon",
    "sound",
    "badge",
    "tag",
    "color",
    "click_action",
    "body_loc_key",
    "body_loc_args",
    "title_loc_key",
    "title_loc_args",
    "android_channel_id",
    "subtitle",
];

/// An `extra` key naming a field would be written twice (or decode into the field instead).
fn check_notification_extra(notification: &Notification) -> Result<(), ValidationError> {
    match notification
        .extra
        .keys()
        .find(|k| NOTIFICATION_FIELDS.contains(&k.as_str()))
    {
        Some(key) => Err(invalid(
            format!("notification.{key}"),
            "is a named field of `Notification`: set it there, not in `extra`",
        )),
        None => Ok(()),
    }
}

fn check_payload_size(size: usize) -> Result<usize, ValidationError> {
    if size > MAX_PAYLOAD_BYTES {
        return Err(ValidationError::PayloadTooLarge {
            size,
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    Ok(size)
}

fn map_payload_size(map: &Map<String, Value>) -> usize {
    map.iter()
        .map(|(key, value)| {
            key.len()
                + match value {
                    Value::String(s) => s.len(),
                    other => other.to_string().len(),
                }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// What a validation case must produce.
    enum Want {
        Valid,
        /// Exactly this error.
        Is(ValidationError),
        /// `InvalidField` for this field.
        Field(&'static str),
    }

    fn inp(fields: Value) -> String {
        fields.to_string()
    }

    fn validation_cases() -> Vec<(String, Want, &'static str)> {
        use ValidationError::*;
        use Want::*;
        let long_id = "a".repeat(MAX_MESSAGE_ID_LEN);
        let too_long_id = "a".repeat(MAX_MESSAGE_ID_LEN + 1);
        let mut cases = vec![
            // Targets.
            (inp(json!({"to": "tok"})), Valid, ""),
            (inp(json!({"to": "/topics/news-1_a.b~c%20"})), Valid, ""),
            (
                inp(json!({"condition": "'a' in topics && 'b' in topics"})),
                Valid,
                "",
            ),
            (inp(json!({})), Is(MissingTarget), "`to`"),
            (
                inp(json!({"to": "a", "condition": "b"})),
                Is(ConflictingTargets),
                "`condition`",
            ),
            (inp(json!({"to": ""})), Field("to"), "must not be empty"),
            (inp(json!({"to": "t".repeat(MAX_FIELD_BYTES)})), Valid, ""),
            (
                inp(json!({"to": "t".repeat(MAX_FIELD_BYTES + 1)})),
                Field("to"),
                "is 1025 bytes long: at most 1024",
            ),
            (
                inp(json!({"condition": "c".repeat(MAX_FIELD_BYTES + 1)})),
                Field("condition"),
                "at most 1024",
            ),
            (
                inp(json!({"condition": ""})),
                Field("condition"),
                "must not be empty",
            ),
            (
                inp(json!({"to": 5})),
                Field("to"),
                "must be a string, got number",
            ),
            (inp(json!({"to": null})), Field("to"), "got null"),
            (
                inp(json!({"to": "/topics/"})),
                Field("to"),
                "[a-zA-Z0-9-_.~%]+",
            ),
            (
                inp(json!({"to": "/topics/a b"})),
                Field("to"),
                "topic name \"a b\"",
            ),
            (
                inp(json!({"condition": ["a"]})),
                Field("condition"),
                "got array",
            ),
            // message_id.
            (inp(json!({"to": "t", "message_id": "m-1:x/y"})), Valid, ""),
            (inp(json!({"to": "t", "message_id": long_id})), Valid, ""),
            (
                inp(json!({"to": "t", "message_id": too_long_id})),
                Field("message_id"),
                "at most 100",
            ),
            (
                inp(json!({"to": "t", "message_id": ""})),
                Field("message_id"),
                "must not be empty",
            ),
            (
                inp(json!({"to": "t", "message_id": "m 1"})),
                Field("message_id"),
                "printable ASCII",
            ),
            (
                inp(json!({"to": "t", "message_id": "m-é"})),
                Field("message_id"),
                "'é'",
            ),
            (
                inp(json!({"to": "t", "message_id": 7})),
                Field("message_id"),
                "must be a string",
            ),
            // time_to_live.
            (inp(json!({"to": "t", "time_to_live": 0})), Valid, ""),
            (
                inp(json!({"to": "t", "time_to_live": 2_419_200})),
                Valid,
                "",
            ),
            (
                inp(json!({"to": "t", "time_to_live": -1})),
                Is(TtlOutOfRange(-1)),
                "between 0 and 2419200",
            ),
            (
                inp(json!({"to": "t", "time_to_live": 2_419_201})),
                Is(TtlOutOfRange(2_419_201)),
                "2419200",
            ),
            (
                inp(json!({"to": "t", "time_to_live": u64::MAX})),
                Is(TtlOutOfRange(i64::MAX)),
                "2419200",
            ),
            (
                inp(json!({"to": "t", "time_to_live": "600"})),
                Field("time_to_live"),
                "integer number of seconds, got string",
            ),
            (
                inp(json!({"to": "t", "time_to_live": 600.5})),
                Field("time_to_live"),
                "got 600.5",
            ),
            (
                inp(json!({"to": "t", "time_to_live": null})),
                Field("time_to_live"),
                "got null",
            ),
            // collapse_key.
            (inp(json!({"to": "t", "collapse_key": "k"})), Valid, ""),
            (
                inp(json!({"to": "t", "collapse_key": "k".repeat(MAX_FIELD_BYTES + 1)})),
                Field("collapse_key"),
                "field `collapse_key`: is 1025 bytes long: at most 1024",
            ),
            (
                inp(json!({"to": "t", "collapse_key": 5})),
                Field("collapse_key"),
                "field `collapse_key`: must be a string, got number",
            ),
            // priority.
            (inp(json!({"to": "t", "priority": "normal"})), Valid, ""),
            (inp(json!({"to": "t", "priority": "high"})), Valid, ""),
            (
                inp(json!({"to": "t", "priority": "urgent"})),
                Field("priority"),
                "\"normal\" or \"high\"",
            ),
            (
                inp(json!({"to": "t", "priority": 10})),
                Field("priority"),
                "got number",
            ),
            // data.
            (inp(json!({"to": "t", "data": {}})), Valid, ""),
            (
                inp(json!({"to": "t", "data": {"k": "v", "n": 1, "o": {"x": [true]}}})),
                Valid,
                "",
            ),
            (
                inp(json!({"to": "t", "data": {"from_me": "ok", "my_gcm": "ok"}})),
                Valid,
                "",
            ),
            (
                inp(json!({"to": "t", "data": ["k"]})),
                Field("data"),
                "must be an object, got array",
            ),
            (
                inp(json!({"to": "t", "data": {"from": "x"}})),
                Is(ReservedDataKey("from".into())),
                "`from`",
            ),
            (
                inp(json!({"to": "t", "data": {"google.sent": "x"}})),
                Is(ReservedDataKey("google.sent".into())),
                "`google.sent`",
            ),
            (
                inp(json!({"to": "t", "data": {"gcm_x": "x"}})),
                Is(ReservedDataKey("gcm_x".into())),
                "`gcm_x`",
            ),
            // notification.
            (
                inp(json!({"to": "t", "notification": {"title": "T", "body": "B", "image": "u"}})),
                Valid,
                "",
            ),
            (
                inp(json!({"to": "t", "notification": "hi"})),
                Field("notification"),
                "must be an object",
            ),
            (
                inp(json!({"to": "t", "notification": {"title": 1}})),
                Field("notification.title"),
                "must be a string, got number",
            ),
            (
                inp(json!({"to": "t", "notification": {"image": null}})),
                Field("notification.image"),
                "got null",
            ),
            // Fields that do not belong in a downstream XMPP message.
            (
                inp(json!({"registration_ids": ["a"]})),
                Is(HttpOnlyField {
                    field: "registration_ids",
                    hint: "use the HTTP sender for multicast",
                }),
                "`registration_ids` is not valid over XMPP: use the HTTP sender",
            ),
            (
                inp(json!({"to": "t", "notification_key": "k"})),
                Is(HttpOnlyField {
                    field: "notification_key",
                    hint: "put the notification key in `to`",
                }),
                "`notification_key`",
            ),
            (
                inp(json!({"to": "t", "restricted_package_name": "p"})),
                Is(HttpOnlyField {
                    field: "restricted_package_name",
                    hint: "it is documented for the HTTP API only",
                }),
                "`restricted_package_name`",
            ),
            (
                inp(json!({"to": "t", "message_type": "ack"})),
                Field("message_type"),
                "not allowed",
            ),
            (
                inp(json!({"to": "t", "ttl": 60})),
                Field("ttl"),
                "field `ttl`: unknown field",
            ),
            // Not a JSON object.
            (
                "[1]".into(),
                Is(Json("a message must be a JSON object, got array".into())),
                "got array",
            ),
            (
                "\"to\"".into(),
                Is(Json("a message must be a JSON object, got string".into())),
                "got string",
            ),
            ("{\"to\":".into(), Field("-"), "invalid JSON"),
        ];
        for name in [
            "content_available",
            "mutable_content",
            "delay_while_idle",
            "delivery_receipt_requested",
            "dry_run",
        ] {
            cases.push((inp(json!({"to": "t", name: true})), Valid, ""));
            cases.push((
                inp(json!({"to": "t", name: "true"})),
                Field(name),
                "must be a boolean, got string",
            ));
        }
        cases
    }

    #[test]
    fn validation_table() {
        for (input, want, display) in validation_cases() {
            let got = Message::from_json(&input);
            match (&got, want) {
                (Ok(_), Want::Valid) => continue,
                (Err(e), Want::Is(expected)) => assert_eq!(e, &expected, "{input}"),
                (Err(ValidationError::InvalidField { field, .. }), Want::Field(f)) => {
                    assert_eq!(field, f, "{input}")
                }
                // Unparseable JSON: only the variant is ours, the text is serde_json's.
                (Err(ValidationError::Json(_)), Want::Field("-")) => {}
                (got, _) => panic!("{input}: unexpected {got:?}"),
            }
            let text = got.unwrap_err().to_string();
            assert!(
                text.contains(display),
                "{input}: {text:?} lacks {display:?}"
            );
        }
    }

    #[test]
    fn builder_applies_the_same_rules() {
        use ValidationError::*;
        assert_eq!(Message::builder().build(), Err(MissingTarget));
        assert_eq!(
            Message::to("a").condition("b").build(),
            Err(ConflictingTargets)
        );
        assert_eq!(
            Message::to("t").time_to_live(MAX_TTL + 1).build(),
            Err(TtlOutOfRange(2_419_201))
        );
        assert_eq!(
            Message::to("t").data("gcm.x", "1").build(),
            Err(ReservedDataKey("gcm.x".into()))
        );
        assert!(matches!(
            Message::to("t").message_id("has space").build(),
            Err(InvalidField { field, .. }) if field == "message_id"
        ));
        assert!(matches!(
            Message::to("/topics/bad!").build(),
            Err(InvalidField { field, .. }) if field == "to"
        ));
    }

    #[test]
    fn notification_extra_must_not_repeat_a_named_field() {
        // Every named field, as serde writes it, is in the list.
        let all = Notification {
            title: Some(String::new()),
            body: Some(String::new()),
            icon: Some(String::new()),
            sound: Some(String::new()),
            badge: Some(String::new()),
            tag: Some(String::new()),
            color: Some(String::new()),
            click_action: Some(String::new()),
            body_loc_key: Some(String::new()),
            body_loc_args: Some(String::new()),
            title_loc_key: Some(String::new()),
            title_loc_args: Some(String::new()),
            android_channel_id: Some(String::new()),
            subtitle: Some(String::new()),
            extra: BTreeMap::new(),
        };
        let Value::Object(named) = to_value(&all) else {
            panic!()
        };
        assert_eq!(
            named.keys().collect::<Vec<_>>().len(),
            NOTIFICATION_FIELDS.len()
        );
        assert!(
            named
                .keys()
                .all(|k| NOTIFICATION_FIELDS.contains(&k.as_str()))
        );

        for (title, key) in [(Some("a"), "title"), (None, "body")] {
            let notification = Notification {
                title: title.map(str::to_owned),
                extra: [(key.to_owned(), "b".to_owned())].into(),
                ..Notification::default()
            };
            let err = Message::to("t")
                .notification(notification)
                .build()
                .unwrap_err();
            assert!(
                matches!(&err, ValidationError::InvalidField { field, .. } if *field == format!("notification.{key}")),
                "{err:?}"
            );
            assert!(err.to_string().contains("not in `extra`"), "{err}");
        }
    }

    #[test]
    fn largest_valid_message_fits_a_stanza_cap_with_room_to_spare() {
        // Every length at its limit, filled with the characters that expand most: a control
        // character becomes `\u0001` (6 bytes) in JSON, `&` becomes `&amp;` (5) in XML.
        for c in ["\u{1}", "&"] {
            let m = Message::to(c.repeat(MAX_FIELD_BYTES))
                .message_id("m".repeat(MAX_MESSAGE_ID_LEN))
                .collapse_key(c.repeat(MAX_FIELD_BYTES))
                .data("k", c.repeat(MAX_PAYLOAD_BYTES - 1))
                .build()
                .unwrap();
            let mut stanza = Vec::new();
            crate::wire::write::gcm_message(&mut stanza, m.message_id(), &m.to_json()).unwrap();
            let cap = crate::wire::Limits::default().max_stanza_bytes;
            assert!(stanza.len() < cap * 3 / 4, "{} bytes", stanza.len());
        }
    }

    /// Found by the `message_roundtrip` fuzzer: without correctly rounded float parsing, a
    /// long number parsed to one `f64` and its printed form back to another.
    #[test]
    fn numbers_in_data_survive_a_round_trip() {
        let number = format!("{}3600", "2".repeat(74));
        let m = Message::from_json(&format!(r#"{{"to":"t","data":{{"n":{number}}}}}"#)).unwrap();
        assert_eq!(Message::from_json(&m.to_json()), Ok(m));
    }

    #[test]
    fn ttl_zero_is_serialized() {
        let m = Message::to("t")
            .message_id("m-1")
            .time_to_live(0)
            .build()
            .unwrap();
        assert_eq!(
            m.to_json(),
            r#"{"to":"t","message_id":"m-1","time_to_live":0}"#
        );
        assert_eq!(m.to_json_value()["time_to_live"], json!(0));
    }

    fn full_message() -> Message {
        Message::builder()
            .condition("'a' in topics")
            .message_id("m-42")
            .collapse_key("inbox")
            .priority(Priority::High)
            .content_available(true)
            .mutable_content(true)
            .time_to_live(3600)
            .delay_while_idle(true)
            .delivery_receipt_requested(true)
            .dry_run(true)
            .data("thread", "42")
            .data("count", 3)
            .notification(Notification {
                title: Some("Tom & Jerry <3".into()),
                body_loc_args: Some(r#"["a","b"]"#.into()),
                extra: [("image".to_owned(), "https://x/y.png".to_owned())].into(),
                ..Notification::default()
            })
            .build()
            .unwrap()
    }

    #[test]
    fn to_json_writes_every_set_field_in_order() {
        assert_eq!(
            full_message().to_json(),
            concat!(
                r#"{"condition":"'a' in topics","message_id":"m-42","collapse_key":"inbox","#,
                r#""priority":"high","content_available":true,"mutable_content":true,"#,
                r#""time_to_live":3600,"delay_while_idle":true,"delivery_receipt_requested":true,"#,
                r#""dry_run":true,"data":{"count":3,"thread":"42"},"#,
                r#""notification":{"title":"Tom & Jerry <3","body_loc_args":"[\"a\",\"b\"]","image":"https://x/y.png"}}"#
            )
        );
    }

    #[test]
    fn builder_round_trips_through_json() {
        let m = full_message();
        assert_eq!(Message::from_json(&m.to_json()), Ok(m.clone()));
        assert_eq!(Message::from_json_value(m.to_json_value()), Ok(m));
    }

    #[test]
    fn accessors_read_what_was_built() {
        let m = full_message();
        assert_eq!(m.target(), &Target::Condition("'a' in topics".into()));
        assert_eq!(m.target_str(), "'a' in topics");
        assert_eq!(m.message_id(), "m-42");
        assert_eq!(m.collapse_key(), Some("inbox"));
        assert_eq!(m.priority(), Some(Priority::High));
        assert_eq!(m.time_to_live(), Some(3600));
        assert!(m.content_available() && m.mutable_content() && m.delay_while_idle());
        assert!(m.delivery_receipt_requested() && m.dry_run());
        assert_eq!(m.data().unwrap()["count"], json!(3));
        assert_eq!(m.notification().unwrap().extra["image"], "https://x/y.png");
        let bare = Message::to("tok").build().unwrap();
        assert_eq!(
            bare.to_json(),
            format!(r#"{{"to":"tok","message_id":"{}"}}"#, bare.message_id())
        );
        assert_eq!(
            (bare.priority(), bare.time_to_live(), bare.data()),
            (None, None, None)
        );
    }

    #[test]
    fn missing_message_id_is_generated() {
        let m = Message::from_json(r#"{"to":"t"}"#).unwrap();
        assert!(m.message_id().starts_with("m-"));
    }

    #[test]
    fn generated_ids_are_unique_and_well_formed() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| generate_message_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in &ids {
            let hex = id.strip_prefix("m-").unwrap();
            assert_eq!(hex.len(), 32, "{id}");
            assert!(
                hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
                "{id}"
            );
            let value = u128::from_str_radix(hex, 16).unwrap();
            assert_eq!(format!("{value:032x}"), hex);
            assert_eq!(check_message_id(id.clone()).as_ref(), Ok(id));
        }
    }

    #[test]
    fn payload_limit_is_4096_bytes_of_keys_and_values() {
        let at_limit = Message::to("t")
            .data("k", "x".repeat(4095))
            .build()
            .unwrap();
        assert_eq!(at_limit.payload_size(), 4096);
        assert_eq!(
            Message::to("t").data("k", "x".repeat(4096)).build(),
            Err(ValidationError::PayloadTooLarge {
                size: 4097,
                limit: 4096
            })
        );
        let err = Message::to("t")
            .data("k", "x".repeat(4096))
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("4097 bytes") && err.to_string().contains("4096 bytes"));
        // Non-string values count as JSON text; notification entries count too.
        let notification = Notification {
            title: Some("é".into()),
            ..Notification::default()
        };
        let m = Message::to("t")
            .data("n", 12345)
            .data("o", json!({"a": "b"}))
            .notification(notification)
            .build()
            .unwrap();
        assert_eq!(m.payload_size(), (1 + 5) + (1 + 9) + (5 + 2));
        let over = Notification {
            body: Some("x".repeat(4093)),
            ..Notification::default()
        };
        assert!(matches!(
            Message::to("t").notification(over).build(),
            Err(ValidationError::PayloadTooLarge { size: 4097, .. })
        ));
    }

    #[test]
    fn priority_uses_lowercase_strings() {
        assert_eq!(
            serde_json::to_string(&Priority::Normal).unwrap(),
            r#""normal""#
        );
        assert_eq!(
            serde_json::from_str::<Priority>(r#""high""#).unwrap(),
            Priority::High
        );
        assert_eq!("high".parse::<Priority>(), Ok(Priority::High));
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (0u32..3_000_000).prop_map(Value::from),
            // Eighths print and parse back exactly.
            (-8000i32..8000).prop_map(|i| Value::from(f64::from(i) / 8.0)),
            "[a-zA-Z0-9/%~. &<é\"-]{0,12}".prop_map(Value::from),
            Just(Value::from("normal")),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_.]{1,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    const FIELDS: &[&str] = &[
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
        "message_type",
        "registration_ids",
    ];

    /// Objects with mostly known keys and a usually valid `to`, so that many validate.
    fn message_object() -> impl Strategy<Value = Value> {
        let key = prop_oneof![4 => prop::sample::select(FIELDS).prop_map(str::to_owned), 1 => "[a-z_]{1,8}"];
        let to = prop::option::weighted(0.9, "(/topics/)?[a-zA-Z0-9_:-]{1,20}");
        (to, prop::collection::btree_map(key, json_value(), 0..5)).prop_map(|(to, fields)| {
            let mut object: Map<String, Value> = fields.into_iter().collect();
            if let Some(to) = to {
                object.insert("to".into(), to.into());
            }
            Value::Object(object)
        })
    }

    proptest! {
        // About one generated object in six validates; check a few hundred of those.
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn from_json_never_panics(s in any::<String>()) {
            let _ = Message::from_json(&s);
        }

        #[test]
        fn from_json_never_panics_on_json_like_text(s in "[{}\\[\\]\":,.0-9a-z_ -]{0,60}") {
            let _ = Message::from_json(&s);
        }

        #[test]
        fn whatever_validates_round_trips(v in message_object()) {
            if let Ok(m) = Message::from_json_value(v) {
                let json = m.to_json();
                let again = Message::from_json(&json);
                prop_assert_eq!(again.as_ref().map(Message::to_json), Ok(json));
                prop_assert_eq!(again, Ok(m));
            }
        }
    }
}
