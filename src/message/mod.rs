//! Downstream messages (app server → CCS, spec §7): building, validation and JSON.
//!
//! [`MessageBuilder::build`] and [`Message::from_json`] share one validation, so a
//! [`Message`] that exists is one CCS should not reject for its shape.

use std::collections::BTreeMap;
use std::str::FromStr;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

mod builder;
mod encode;
mod error;
mod json;
mod validate;

#[cfg(test)]
mod tests;

pub use builder::MessageBuilder;
pub use error::ValidationError;
pub(crate) use json::{json_type, read_direct};
use validate::{invalid, map_payload_size};

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
    /// Delivered when the device is awake.
    Normal,
    /// Wakes a sleeping device.
    High,
}

impl Priority {
    /// `"normal"` or `"high"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }
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
    /// Title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Body text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Icon name (Android).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    /// Sound to play, or `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sound: Option<String>,
    /// iOS badge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub badge: Option<String>,
    /// Replaces an earlier notification with the same tag (Android).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// `#rrggbb`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// Action (Android intent filter, iOS category) on tap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub click_action: Option<String>,
    /// Localization key of the body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_loc_key: Option<String>,
    /// Arguments of `body_loc_key`, a JSON array in a string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_loc_args: Option<String>,
    /// Localization key of the title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title_loc_key: Option<String>,
    /// Arguments of `title_loc_key`, a JSON array in a string.
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
    /// Boxed: it is large and rare, and messages and builders move often.
    #[serde(skip_serializing_if = "Option::is_none")]
    notification: Option<Box<Notification>>,
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
        if let Some(message) = read_direct(line) {
            return Ok(message);
        }
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

    /// The id acks and nacks are matched by (generated when not given).
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// Where the message goes.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The `to` or `condition` value (for per-target rate limits and output).
    pub fn target_str(&self) -> &str {
        self.target.as_str()
    }

    /// Messages with the same key replace each other while the device is offline.
    pub fn collapse_key(&self) -> Option<&str> {
        self.options.collapse_key.as_deref()
    }

    /// The explicit priority; `None` leaves the server default (high for notification
    /// messages, normal for data messages).
    pub fn priority(&self) -> Option<Priority> {
        self.options.priority
    }

    /// Wakes an iOS app in the background.
    pub fn content_available(&self) -> bool {
        self.options.content_available
    }

    /// Lets an iOS notification service extension change the notification.
    pub fn mutable_content(&self) -> bool {
        self.options.mutable_content
    }

    /// Seconds the server keeps the message for an offline device; `None` = server default
    /// (28 days), `Some(0)` = deliver now or drop.
    pub fn time_to_live(&self) -> Option<u32> {
        self.options.time_to_live
    }

    /// Held until the device is active (deprecated by FCM, still accepted).
    pub fn delay_while_idle(&self) -> bool {
        self.options.delay_while_idle
    }

    /// Whether a delivery receipt (spec §8.5) was asked for.
    pub fn delivery_receipt_requested(&self) -> bool {
        self.options.delivery_receipt_requested
    }

    /// Validated by the server but not delivered.
    pub fn dry_run(&self) -> bool {
        self.options.dry_run
    }

    /// The app's key/value payload.
    pub fn data(&self) -> Option<&Map<String, Value>> {
        self.options.data.as_ref()
    }

    /// The display notification.
    pub fn notification(&self) -> Option<&Notification> {
        self.options.notification.as_deref()
    }

    /// Bytes counted against [`MAX_PAYLOAD_BYTES`]: for every `data` and `notification`
    /// entry, the key's bytes plus the value's (a string's UTF-8 bytes, any other value's
    /// JSON text).
    pub fn payload_size(&self) -> usize {
        self.payload_size
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

fn to_value(v: &impl Serialize) -> Value {
    serde_json::to_value(v).expect("string keys and finite numbers always serialize")
}
