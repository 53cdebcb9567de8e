//! JSON request bodies (http-legacy §3) from a [`Message`].

use bytes::Bytes;
use serde_json::{Map, Value};
use tracing::debug;

use crate::message::Message;

/// The message's JSON object without what the HTTP API does not take: our `message_id`
/// (HTTP has no client-side ids) and `delivery_receipt_requested` (XMPP only, dropped with a
/// debug log). With `multicast`, the `to` / `condition` target is removed too.
pub(crate) fn fields(msg: &Message, multicast: bool) -> Map<String, Value> {
    let Value::Object(mut fields) = msg.to_json_value() else {
        unreachable!("a Message serializes to a JSON object")
    };
    fields.remove("message_id");
    if fields.remove("delivery_receipt_requested").is_some() {
        debug!(
            message_id = msg.message_id(),
            "delivery_receipt_requested is XMPP-only: dropped for HTTP"
        );
    }
    if multicast {
        fields.remove("to");
        fields.remove("condition");
    }
    fields
}

/// `fields` with `registration_ids` set to `tokens`.
pub(crate) fn multicast<'a>(
    fields: &Map<String, Value>,
    tokens: impl IntoIterator<Item = &'a str>,
) -> Bytes {
    let mut body = fields.clone();
    let ids = tokens
        .into_iter()
        .map(|t| Value::String(t.to_owned()))
        .collect();
    body.insert("registration_ids".into(), Value::Array(ids));
    encode(&body)
}

/// The JSON text of `fields`.
pub(crate) fn encode(fields: &Map<String, Value>) -> Bytes {
    serde_json::to_vec(fields)
        .expect("a JSON map always serializes")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg() -> Message {
        Message::to("tokA")
            .data("score", "3x1")
            .time_to_live(0)
            .delivery_receipt_requested(true)
            .build()
            .unwrap()
    }

    #[test]
    fn single_body_drops_xmpp_only_fields_and_keeps_zero_ttl() {
        let body: Value = serde_json::from_slice(&encode(&fields(&msg(), false))).unwrap();
        assert_eq!(
            body,
            json!({"to": "tokA", "time_to_live": 0, "data": {"score": "3x1"}})
        );
    }

    #[test]
    fn multicast_body_replaces_the_target() {
        let body = multicast(&fields(&msg(), true), ["a", "b"]);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            json!({"registration_ids": ["a", "b"], "time_to_live": 0, "data": {"score": "3x1"}})
        );
    }
}
