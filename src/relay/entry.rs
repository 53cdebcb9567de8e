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
    /// An entry of an `XAUTOCLAIM` reply (delivery count 1 until known).
    pub fn claimed(mut raw: StreamId) -> Entry {
        let mut field = |key: &str| raw.map.remove(key).and_then(text);
        let (message, message_id) = (field("message"), field("message_id"));
        Entry {
            id: raw.id,
            deliveries: 1,
            message,
            message_id,
        }
    }

    /// The entries of an `XREADGROUP` reply of one stream (RESP2 arrays or RESP3 maps),
    /// taken straight from the reply: no map per entry is built, no string copied. An entry
    /// deleted while pending comes with no fields (and is then dead-lettered as such).
    pub fn read(reply: redis::Value) -> Result<Vec<Entry>, &'static str> {
        let streams = match reply {
            redis::Value::Nil => return Ok(Vec::new()),
            redis::Value::Array(streams) => streams
                .into_iter()
                .map(|s| pair(s).map(|(_, entries)| entries))
                .collect::<Option<Vec<_>>>(),
            redis::Value::Map(streams) => Some(streams.into_iter().map(|(_, e)| e).collect()),
            _ => None,
        }
        .ok_or("an XREADGROUP reply that is not a list of streams")?;
        let mut out = Vec::new();
        for entries in streams {
            let redis::Value::Array(entries) = entries else {
                return Err("an XREADGROUP stream without a list of entries");
            };
            out.reserve(entries.len());
            for entry in entries {
                let (id, fields) =
                    pair(entry).ok_or("an XREADGROUP entry that is not [id, fields]")?;
                let mut entry = Entry {
                    id: text(id).ok_or("an XREADGROUP entry id that is not text")?,
                    deliveries: 1,
                    message: None,
                    message_id: None,
                };
                for (key, value) in field_pairs(fields) {
                    match &key {
                        redis::Value::BulkString(k) if k == b"message" => {
                            entry.message = text(value)
                        }
                        redis::Value::BulkString(k) if k == b"message_id" => {
                            entry.message_id = text(value);
                        }
                        _ => {}
                    }
                }
                out.push(entry);
            }
        }
        Ok(out)
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

/// A string of a reply, if it is UTF-8 text.
fn text(value: redis::Value) -> Option<String> {
    match value {
        redis::Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        redis::Value::SimpleString(s) | redis::Value::VerbatimString { text: s, .. } => Some(s),
        _ => None,
    }
}

/// A two-element array's elements.
fn pair(value: redis::Value) -> Option<(redis::Value, redis::Value)> {
    match value {
        redis::Value::Array(items) if items.len() == 2 => {
            let mut items = items.into_iter();
            Some((items.next()?, items.next()?))
        }
        _ => None,
    }
}

/// An entry's fields: a flat key/value array (RESP2), a map (RESP3), or nil (deleted).
fn field_pairs(fields: redis::Value) -> Vec<(redis::Value, redis::Value)> {
    match fields {
        redis::Value::Map(pairs) => pairs,
        redis::Value::Array(flat) => {
            let mut flat = flat.into_iter();
            let mut pairs = Vec::with_capacity(flat.len() / 2);
            while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                pairs.push((k, v));
            }
            pairs
        }
        _ => Vec::new(),
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
        let bulk = |s: &str| redis::Value::BulkString(s.as_bytes().to_vec());
        let flat = fields
            .iter()
            .flat_map(|(k, v)| [bulk(k), bulk(v)])
            .collect();
        let entry = redis::Value::Array(vec![bulk("1700000000000-7"), redis::Value::Array(flat)]);
        let reply = redis::Value::Array(vec![redis::Value::Array(vec![
            bulk("gcm:outbox"),
            redis::Value::Array(vec![entry]),
        ])]);
        let [entry] = <[Entry; 1]>::try_from(Entry::read(reply).unwrap()).unwrap();
        entry
    }

    #[test]
    fn reads_of_every_shape() {
        let bulk = |s: &str| redis::Value::BulkString(s.as_bytes().to_vec());
        assert!(
            Entry::read(redis::Value::Nil).unwrap().is_empty(),
            "a read that timed out"
        );
        // RESP3: a map of streams, fields as a map; a deleted entry's fields are nil.
        let resp3 = redis::Value::Map(vec![(
            bulk("s"),
            redis::Value::Array(vec![
                redis::Value::Array(vec![
                    bulk("1-0"),
                    redis::Value::Map(vec![(bulk("message"), bulk("{}")), (bulk("x"), bulk("y"))]),
                ]),
                redis::Value::Array(vec![bulk("2-0"), redis::Value::Nil]),
            ]),
        )]);
        let got = Entry::read(resp3).unwrap();
        assert_eq!(
            (got[0].id.as_str(), got[0].message.as_deref()),
            ("1-0", Some("{}"))
        );
        assert_eq!(
            (got[1].id.as_str(), got[1].message.as_deref()),
            ("2-0", None)
        );
        // Not UTF-8: no message, so the entry is invalid (not an error of the read).
        let odd = redis::Value::Array(vec![redis::Value::Array(vec![
            bulk("s"),
            redis::Value::Array(vec![redis::Value::Array(vec![
                bulk("3-0"),
                redis::Value::Array(vec![bulk("message"), redis::Value::BulkString(vec![0xff])]),
            ])]),
        ])]);
        assert_eq!(Entry::read(odd).unwrap()[0].message, None);
        for garbage in [
            redis::Value::Int(1),
            redis::Value::Array(vec![bulk("s")]),
            redis::Value::Array(vec![redis::Value::Array(vec![bulk("s"), bulk("x")])]),
        ] {
            assert!(Entry::read(garbage).is_err());
        }
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
