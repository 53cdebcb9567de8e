//! [`MessageBuilder`]: every rule is checked in [`MessageBuilder::build`].

use serde_json::{Map, Value};

use super::validate::*;
use super::{
    Message, Notification, Options, Priority, Target, ValidationError, generate_message_id,
};

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

    /// Use this id instead of a generated one (see [`MAX_MESSAGE_ID_LEN`](super::MAX_MESSAGE_ID_LEN) for the rule).
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    /// Messages with the same key replace each other while the device is offline.
    pub fn collapse_key(mut self, key: impl Into<String>) -> Self {
        self.options.collapse_key = Some(key.into());
        self
    }

    /// `normal` or `high` (the server's default depends on the kind of message).
    pub fn priority(mut self, priority: Priority) -> Self {
        self.options.priority = Some(priority);
        self
    }

    /// Wakes an iOS app in the background.
    pub fn content_available(mut self, on: bool) -> Self {
        self.options.content_available = on;
        self
    }

    /// Lets an iOS notification service extension change the notification.
    pub fn mutable_content(mut self, on: bool) -> Self {
        self.options.mutable_content = on;
        self
    }

    /// Seconds to keep the message for an offline device, `0..=`[`MAX_TTL`](super::MAX_TTL).
    pub fn time_to_live(mut self, seconds: u32) -> Self {
        self.options.time_to_live = Some(seconds);
        self
    }

    /// Holds the message until the device is active.
    pub fn delay_while_idle(mut self, on: bool) -> Self {
        self.options.delay_while_idle = on;
        self
    }

    /// Ask for a delivery receipt (spec §8.5).
    pub fn delivery_receipt_requested(mut self, on: bool) -> Self {
        self.options.delivery_receipt_requested = on;
        self
    }

    /// Validated by the server but not delivered.
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
        match &mut self.options.data {
            Some(data) => data.extend(map),
            None => self.options.data = Some(map),
        }
        self
    }

    /// A display notification.
    pub fn notification(mut self, notification: Notification) -> Self {
        self.options.notification = Some(Box::new(notification));
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
            .as_deref()
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
}
