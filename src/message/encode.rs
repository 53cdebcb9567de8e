//! A [`Message`] as the client stanza CCS receives, written without serde for the members a
//! message has (the notification, rare and many-membered, goes through serde).

use serde_json::Value;

use super::{Message, Target};
use crate::wire::WireError;
use crate::wire::write::{JsonObject, gcm_message_with};

impl Message {
    /// Appends `<message id=".."><gcm xmlns="google:mobile:data">JSON</gcm></message>`: the
    /// bytes of serializing the message with serde_json, escaped as XML text.
    pub(crate) fn write_stanza(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        gcm_message_with(out, &self.message_id, |o| self.members(o))
    }

    /// The members in the order of the derived `Serialize`.
    fn members(&self, o: &mut JsonObject<'_>) -> Result<(), WireError> {
        match &self.target {
            Target::To(to) => o.string("to", to)?,
            Target::Condition(condition) => o.string("condition", condition)?,
        }
        o.string("message_id", &self.message_id)?;
        let opts = &self.options;
        if let Some(key) = &opts.collapse_key {
            o.string("collapse_key", key)?;
        }
        if let Some(priority) = opts.priority {
            o.string("priority", priority.as_str())?;
        }
        let flags = [
            ("content_available", opts.content_available),
            ("mutable_content", opts.mutable_content),
        ];
        for (key, _) in flags.iter().filter(|(_, on)| *on) {
            o.yes(key)?;
        }
        if let Some(ttl) = opts.time_to_live {
            o.number("time_to_live", ttl)?;
        }
        let flags = [
            ("delay_while_idle", opts.delay_while_idle),
            (
                "delivery_receipt_requested",
                opts.delivery_receipt_requested,
            ),
            ("dry_run", opts.dry_run),
        ];
        for (key, _) in flags.iter().filter(|(_, on)| *on) {
            o.yes(key)?;
        }
        if let Some(data) = &opts.data {
            o.object("data", |d| {
                data.iter().try_for_each(|(key, value)| match value {
                    Value::String(s) => d.string(key, s),
                    other => d.value(key, other),
                })
            })?;
        }
        if let Some(notification) = &opts.notification {
            o.value("notification", notification)?;
        }
        Ok(())
    }
}
