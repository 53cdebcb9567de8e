//! One outbox entry: what to send, or why it cannot be sent; and the records written for it.

use redis::streams::StreamId;
use serde::Serialize;
use serde_json::Value;

use crate::outgoing::Outgoing;
use crate::record::Record;

/// An entry as read, with its delivery count when it came from a pending list.
#[derive(Debug)]
pub(super) struct Entry {
    pub id: String,
    /// Times Redis delivered it, this delivery included (1 for a fresh read).
    pub deliveries: u64,
    pub message: Option<String>,
    message_id: Option<String>,
}

impl Entry {
    pub fn new(raw: &StreamId, deliveries: u64) -> Entry {
        Entry {
            id: raw.id.clone(),
            deliveries,
            message: raw.get("message"),
            message_id: raw.get("message_id"),
        }
    }

    /// The message id of an entry without one of its own: derived from the stream and the
    /// entry id, so a redelivered entry is resent under the same id.
    fn derived_id(&self, stream: &str) -> String {
        format!("{stream}/{}", self.id)
    }

    /// The thing to send, or the `invalid` record of an entry that holds none.
    pub fn parse(&self, stream: &str) -> Result<Outgoing, Box<Record>> {
        let invalid = |code: &str, description: &str| {
            Box::new(Record::invalid(code, description.to_owned(), None, None))
        };
        let Some(text) = &self.message else {
            return Err(invalid(
                "MISSING_FIELD",
                "the entry has no `message` field (or it is not UTF-8 text)",
            ));
        };
        let mut value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let e = crate::message::ValidationError::Json(e.to_string());
                return Err(Box::new(Record::rejected(text, &e)));
            }
        };
        if let Value::Object(fields) = &mut value {
            match &self.message_id {
                Some(id) => {
                    fields.insert("message_id".into(), Value::String(id.clone()));
                }
                None if !fields.contains_key("message_id") => {
                    let id = self.derived_id(stream);
                    fields.insert("message_id".into(), Value::String(id));
                }
                None => {}
            }
        }
        Outgoing::from_json_value(value).map_err(|e| Box::new(Record::rejected(text, &e)))
    }
}

/// The record of a results entry: the `send` output record plus where it came from.
#[derive(Debug, Serialize)]
pub(super) struct ResultRecord<'a> {
    pub entry_id: &'a str,
    pub consumer: &'a str,
    #[serde(flatten)]
    pub record: &'a Record,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fields: &[(&str, &str)]) -> Entry {
        let mut raw = StreamId {
            id: "1700000000000-7".into(),
            ..StreamId::default()
        };
        for (k, v) in fields {
            raw.map
                .insert((*k).into(), redis::Value::BulkString(v.as_bytes().to_vec()));
        }
        Entry::new(&raw, 1)
    }

    #[test]
    fn message_ids_come_from_the_entry_the_message_or_the_entry_id() {
        let id = |fields: &[(&str, &str)]| {
            entry(fields)
                .parse("gcm:outbox")
                .map(|o| o.id().to_owned())
                .unwrap()
        };
        assert_eq!(
            id(&[("message", r#"{"to":"t"}"#)]),
            "gcm:outbox/1700000000000-7"
        );
        assert_eq!(id(&[("message", r#"{"to":"t","message_id":"m1"}"#)]), "m1");
        assert_eq!(
            id(&[
                ("message", r#"{"to":"t","message_id":"m1"}"#),
                ("message_id", "m2")
            ]),
            "m2"
        );
        let again = id(&[("message", r#"{"to":"t"}"#)]);
        assert_eq!(
            again, "gcm:outbox/1700000000000-7",
            "stable across deliveries"
        );
    }

    #[test]
    fn invalid_entries_say_why() {
        let code = |fields: &[(&str, &str)]| {
            entry(fields)
                .parse("s")
                .map(|_| ())
                .unwrap_err()
                .code
                .unwrap()
        };
        assert_eq!(code(&[]), "MISSING_FIELD");
        assert_eq!(code(&[("message", "{not json")]), "INVALID_JSON");
        assert_eq!(
            code(&[("message", r#"{"data":{"k":"v"}}"#)]),
            "MISSING_TARGET"
        );
        assert_eq!(
            code(&[("message", r#"{"to":"t","data":{"from":"x"}}"#)]),
            "INVALID_DATA_KEY"
        );
        let rejected = entry(&[(
            "message",
            r#"{"to":"tok","message_id":"m","data":{"gcm":1}}"#,
        )])
        .parse("s")
        .unwrap_err();
        assert_eq!(rejected.to.as_deref(), Some("tok"));
    }

    #[test]
    fn result_records_flatten_the_send_record() {
        let record = Record::invalid("X", "why".into(), Some("m".into()), None);
        let json = serde_json::to_value(ResultRecord {
            entry_id: "1-0",
            consumer: "c",
            record: &record,
        })
        .unwrap();
        assert_eq!(json["entry_id"], "1-0");
        assert_eq!(json["consumer"], "c");
        assert_eq!(json["outcome"], "invalid");
        assert_eq!(json.as_object().unwrap().len(), 11);
    }
}
