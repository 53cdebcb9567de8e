//! The outcome record of one message: a line of `gcm-ccs send`'s output and, with the entry
//! id and the consumer added, an entry of the relay's results stream.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::SendError;
use crate::message::ValidationError;
use crate::outgoing::Sent;

/// How a message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Accepted: acked by CCS or the HTTP API, or taken by the push service (201).
    Acked,
    /// Refused by CCS with a nack; [`Record::code`] has its code.
    Nacked,
    /// Not sent, or no answer: retries exhausted, the subscription gone, ….
    Failed,
    /// Refused before sending: not a valid message.
    Invalid,
}

/// The outcome of one message. Every field is serialized (`null` when it does not apply), so
/// the schema is the same for every line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 1-based input line number (`gcm-ccs send`; `null` elsewhere).
    pub line: Option<u64>,
    /// The message id (ours for a Web Push).
    pub message_id: Option<String>,
    /// The `to` or `condition` of a CCS message, the endpoint of a subscription.
    pub to: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// The nack code, or a short upper-case reason for `failed` and `invalid`.
    pub code: Option<String>,
    /// The server's description, or the error.
    pub description: Option<String>,
    /// A canonical registration id returned with an ack.
    pub canonical_registration_id: Option<String>,
    /// Times the message was written to a connection, or requests made for a Web Push
    /// (`null` over the HTTP API, which retries inside).
    pub attempts: Option<u32>,
    /// From submission to outcome.
    pub latency_ms: Option<f64>,
}

impl Record {
    /// The record of a message that was handed to a sender. `attempts` is the stream's
    /// count; a Web Push brings its own.
    pub fn sent(
        message_id: String,
        to: String,
        result: Result<Sent, SendError>,
        attempts: Option<u32>,
        latency: Duration,
    ) -> Record {
        let (outcome, code, description, canonical, attempts) = match result {
            Ok(Sent::Ack(ack)) => (Outcome::Acked, None, None, ack.registration_id, attempts),
            #[cfg(feature = "webpush")]
            Ok(Sent::Accepted(accepted)) => {
                (Outcome::Acked, None, None, None, Some(accepted.attempts))
            }
            Err(SendError::Nacked(nack)) => (
                Outcome::Nacked,
                Some(nack.code.as_str().to_owned()),
                nack.description,
                None,
                attempts,
            ),
            Err(e) => {
                let outcome = match &e {
                    SendError::Invalid(_) => Outcome::Invalid,
                    _ => Outcome::Failed,
                };
                let code = Some(e.code().to_owned());
                (outcome, code, Some(e.to_string()), None, attempts)
            }
        };
        Record {
            line: None,
            message_id: Some(message_id),
            to: Some(to),
            outcome,
            code,
            description,
            canonical_registration_id: canonical,
            attempts,
            latency_ms: Some((latency.as_secs_f64() * 1e6).round() / 1e3),
        }
    }

    /// The record of input refused before sending: `code` and `description` say why,
    /// `message_id` and `to` are what could be read of it.
    pub fn invalid(
        code: &str,
        description: String,
        message_id: Option<String>,
        to: Option<String>,
    ) -> Record {
        Record {
            line: None,
            message_id,
            to,
            outcome: Outcome::Invalid,
            code: Some(code.to_owned()),
            description: Some(description),
            canonical_registration_id: None,
            attempts: Some(0),
            latency_ms: None,
        }
    }

    /// The record of JSON text that is not a valid message, keeping its `message_id` and
    /// target (`to`, `condition` or `subscription.endpoint`) when the text has them.
    pub fn rejected(text: &str, e: &ValidationError) -> Record {
        let value: Option<serde_json::Value> = serde_json::from_str(text).ok();
        let field = |pointers: &[&str]| {
            let value = value.as_ref()?;
            pointers
                .iter()
                .find_map(|p| value.pointer(p)?.as_str().map(str::to_owned))
        };
        Record::invalid(
            e.code(),
            e.to_string(),
            field(&["/message_id"]),
            field(&["/to", "/condition", "/subscription/endpoint"]),
        )
    }

    /// This record with its input line number.
    pub fn at_line(mut self, line: u64) -> Record {
        self.line = Some(line);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::{Nack, NackCode};

    #[test]
    fn records_carry_every_field() {
        let nack = Nack {
            message_id: Some("m1".into()),
            from: Some("t".into()),
            code: NackCode::DeviceUnregistered,
            description: Some("gone".into()),
        };
        let r = Record::sent(
            "m1".into(),
            "t".into(),
            Err(SendError::Nacked(nack)),
            Some(1),
            Duration::from_micros(1500),
        )
        .at_line(3);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["line"], 3);
        assert_eq!(json["outcome"], "nacked");
        assert_eq!(json["code"], "DEVICE_UNREGISTERED");
        assert_eq!(json["description"], "gone");
        assert_eq!(json["latency_ms"], 1.5);
        assert!(json["canonical_registration_id"].is_null());
        assert_eq!(json.as_object().unwrap().len(), 9);
        let back: Record = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);

        let timeout = Record::sent(
            "m2".into(),
            "t".into(),
            Err(SendError::Timeout(Duration::from_secs(60))),
            None,
            Duration::ZERO,
        );
        assert_eq!(timeout.outcome, Outcome::Failed);
        assert_eq!(timeout.code.as_deref(), Some("TIMEOUT"));
        let json = serde_json::to_value(&timeout).unwrap();
        assert!(json["attempts"].is_null() && json["line"].is_null());
    }

    #[test]
    fn rejected_keeps_id_and_target() {
        let text = r#"{"to":"tok","message_id":"m9","data":{"from":"x"}}"#;
        let r = Record::rejected(text, &ValidationError::ReservedDataKey("from".into()));
        assert_eq!(r.outcome, Outcome::Invalid);
        assert_eq!(r.code.as_deref(), Some("INVALID_DATA_KEY"));
        assert_eq!(
            (r.message_id.as_deref(), r.to.as_deref()),
            (Some("m9"), Some("tok"))
        );
        let text = r#"{"subscription":{"endpoint":"http://x"},"payload":"p"}"#;
        let r = Record::rejected(text, &ValidationError::MissingTarget);
        assert_eq!(r.to.as_deref(), Some("http://x"));
    }
}
