//! Per-target outcomes from the script, and the response bodies of http-legacy §5.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::emulator::script::{Reply, Script};

/// What the emulator answers for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    Sent { registration_id: Option<String> },
    Error(String),
}

/// Applies the script to the targets of one request, collecting the delay it asks for.
pub(super) struct Planner<'a> {
    script: &'a Script,
    /// Requests seen per target, for `nack_first`.
    copies: &'a mut HashMap<String, u32>,
    /// Longest `delay` among the targets.
    pub delay: Duration,
    /// Some target is `silent`: never answer.
    pub hang: bool,
}

impl<'a> Planner<'a> {
    pub fn new(script: &'a Script, copies: &'a mut HashMap<String, u32>) -> Self {
        Planner {
            script,
            copies,
            delay: Duration::ZERO,
            hang: false,
        }
    }

    /// The outcome for `target`; `too_big` payloads fail with `MessageTooBig` first.
    pub fn outcome(&mut self, target: &str, too_big: bool) -> Outcome {
        if too_big {
            return Outcome::Error("MessageTooBig".into());
        }
        let copy = self.copies.entry(target.to_owned()).or_default();
        *copy += 1;
        match self.script.reply_for(target, *copy) {
            Reply::Ack => Outcome::Sent {
                registration_id: None,
            },
            Reply::Canonical { registration_id } => Outcome::Sent {
                registration_id: Some(registration_id),
            },
            Reply::Nack { code, .. } | Reply::NackFirst { code, .. } => {
                Outcome::Error(http_error(&code).to_owned())
            }
            Reply::Delay { ms } => {
                self.delay = self.delay.max(Duration::from_millis(ms));
                Outcome::Sent {
                    registration_id: None,
                }
            }
            Reply::Silent => {
                self.hang = true;
                Outcome::Sent {
                    registration_id: None,
                }
            }
        }
    }
}

/// The HTTP name of a scripted nack code; codes without an XMPP counterpart (and HTTP names
/// themselves) pass through.
fn http_error(code: &str) -> &str {
    match code {
        "DEVICE_UNREGISTERED" => "NotRegistered",
        "BAD_REGISTRATION" => "InvalidRegistration",
        "SERVICE_UNAVAILABLE" => "Unavailable",
        "INTERNAL_SERVER_ERROR" => "InternalServerError",
        "DEVICE_MESSAGE_RATE_EXCEEDED" => "DeviceMessageRateExceeded",
        "TOPICS_MESSAGE_RATE_EXCEEDED" => "TopicsMessageRateExceeded",
        "INVALID_APNS_CREDENTIAL" => "InvalidApnsCredential",
        "INVALID_JSON" => "InvalidParameters",
        other => other,
    }
}

/// A fresh 64-bit id above 2^53 (so clients that go through `f64` get it wrong), or the
/// dry-run id.
pub(super) fn int64_id(dry_run: bool) -> i64 {
    if dry_run {
        -1
    } else {
        rand::random_range((1i64 << 60)..=i64::MAX)
    }
}

/// A token message id in the server's shape, or the dry-run id.
fn message_id(dry_run: bool) -> String {
    if dry_run {
        return "fake_message_id".into();
    }
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    format!("0:{micros}%{:016x}", rand::random::<u64>())
}

/// The token-shape body (§5.2) for `outcomes`, in request order.
pub(super) fn tokens_body(multicast_id: i64, outcomes: &[Outcome], dry_run: bool) -> Value {
    let results: Vec<Value> = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Sent {
                registration_id: None,
            } => json!({"message_id": message_id(dry_run)}),
            Outcome::Sent {
                registration_id: Some(id),
            } => json!({"message_id": message_id(dry_run), "registration_id": id}),
            Outcome::Error(code) => json!({"error": code}),
        })
        .collect();
    let failure = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Error(_)))
        .count();
    let canonical = outcomes
        .iter()
        .filter(|o| {
            matches!(
                o,
                Outcome::Sent {
                    registration_id: Some(_)
                }
            )
        })
        .count();
    json!({
        "multicast_id": multicast_id,
        "success": outcomes.len() - failure,
        "failure": failure,
        "canonical_ids": canonical,
        "results": results,
    })
}

/// The topic / condition body (§5.3).
pub(super) fn topic_body(outcome: &Outcome, message_id: i64) -> Value {
    match outcome {
        Outcome::Sent { .. } => json!({"message_id": message_id}),
        Outcome::Error(code) => json!({"error": code}),
    }
}

/// The device-group body (§5.4) for `(member, outcome)` pairs.
pub(super) fn group_body(members: &[(String, Outcome)]) -> Value {
    let failed: Vec<&str> = members
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Error(_)))
        .map(|(token, _)| token.as_str())
        .collect();
    let mut body = json!({"success": members.len() - failed.len(), "failure": failed.len()});
    if !failed.is_empty() {
        body["failed_registration_ids"] = json!(failed);
    }
    body
}

/// The plain-text body (§5.5) for a form request, or the status that replaces it: transient
/// errors are 503 / 500, never `Error=` lines (§5.1).
pub(super) fn form_text(outcome: &Outcome, dry_run: bool) -> Result<String, u16> {
    match outcome {
        Outcome::Sent { registration_id } => {
            let mut text = format!("id={}\n", message_id(dry_run));
            if let Some(id) = registration_id {
                text.push_str(&format!("registration_id={id}\n"));
            }
            Ok(text)
        }
        Outcome::Error(code) if code == "Unavailable" => Err(503),
        Outcome::Error(code) if code == "InternalServerError" => Err(500),
        Outcome::Error(code) => Ok(format!("Error={code}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::script::Rule;

    fn script(rules: &[(&str, Reply)]) -> Script {
        Script {
            rules: rules
                .iter()
                .map(|(prefix, reply)| Rule {
                    prefix: (*prefix).into(),
                    reply: reply.clone(),
                })
                .collect(),
            ..Script::default()
        }
    }

    #[test]
    fn script_replies_become_http_outcomes() {
        let s = script(&[
            (
                "gone-",
                Reply::Nack {
                    code: "DEVICE_UNREGISTERED".into(),
                    description: None,
                },
            ),
            (
                "sender-",
                Reply::Nack {
                    code: "MismatchSenderId".into(),
                    description: None,
                },
            ),
            (
                "busy-",
                Reply::NackFirst {
                    code: "SERVICE_UNAVAILABLE".into(),
                    times: 1,
                },
            ),
            (
                "canon-",
                Reply::Canonical {
                    registration_id: "new".into(),
                },
            ),
            ("slow-", Reply::Delay { ms: 30 }),
        ]);
        let mut copies = HashMap::new();
        let mut p = Planner::new(&s, &mut copies);
        let err = |c: &str| Outcome::Error(c.into());
        assert_eq!(p.outcome("gone-1", false), err("NotRegistered"));
        assert_eq!(p.outcome("sender-1", false), err("MismatchSenderId"));
        assert_eq!(p.outcome("busy-1", false), err("Unavailable"));
        assert_eq!(
            p.outcome("busy-1", false),
            Outcome::Sent {
                registration_id: None
            }
        );
        assert_eq!(
            p.outcome("canon-1", false),
            Outcome::Sent {
                registration_id: Some("new".into())
            }
        );
        assert_eq!(p.outcome("anything", true), err("MessageTooBig"));
        p.outcome("slow-1", false);
        assert_eq!(p.delay, Duration::from_millis(30));
        assert!(!p.hang);
    }

    #[test]
    fn bodies_have_the_documented_shapes() {
        let sent = Outcome::Sent {
            registration_id: None,
        };
        let canon = Outcome::Sent {
            registration_id: Some("new".into()),
        };
        let gone = Outcome::Error("NotRegistered".into());
        let body = tokens_body(-1, &[sent.clone(), gone.clone(), canon], true);
        assert_eq!(
            body,
            json!({"multicast_id": -1, "success": 2, "failure": 1, "canonical_ids": 1,
                   "results": [{"message_id": "fake_message_id"}, {"error": "NotRegistered"},
                               {"message_id": "fake_message_id", "registration_id": "new"}]})
        );
        assert_eq!(topic_body(&sent, 7), json!({"message_id": 7}));
        assert_eq!(
            group_body(&[("a".into(), sent.clone()), ("b".into(), gone.clone())]),
            json!({"success": 1, "failure": 1, "failed_registration_ids": ["b"]})
        );
        assert_eq!(form_text(&gone, false), Ok("Error=NotRegistered\n".into()));
        assert_eq!(
            form_text(&Outcome::Error("Unavailable".into()), false),
            Err(503)
        );
        assert!(int64_id(false) > 1 << 53);
    }
}
