//! Scripted behaviour of the emulated Web Push service, as data ([`Script::webpush`]).
//!
//! [`Script::webpush`]: crate::emulator::Script::webpush

use serde::{Deserialize, Serialize};

use crate::emulator::StatusBurst;

/// How the Web Push service answers, beyond checking and delivering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebPushScript {
    /// Per-subscription rules, first match wins, matched against the subscription id: the
    /// last path segment of its endpoint, which starts with the label given when it was
    /// made (`POST /subscribe {"label":"gone-"}`).
    pub rules: Vec<WebPushRule>,
    /// Answer the next pushes that pass the VAPID check with a status (429, 503…) instead
    /// of delivering them.
    pub status_burst: Option<StatusBurst>,
    /// Largest body accepted; a larger one gets 413 (RFC 8030 services take at least 4096).
    pub max_body: usize,
}

impl Default for WebPushScript {
    fn default() -> Self {
        WebPushScript {
            rules: Vec::new(),
            status_burst: None,
            max_body: 4096,
        }
    }
}

/// One rule of [`WebPushScript::rules`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebPushRule {
    /// Applies to subscription ids starting with this prefix (empty: every subscription).
    pub prefix: String,
    /// What to do with a valid push to them.
    pub reply: WebPushReply,
}

/// What the service does with a valid push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum WebPushReply {
    /// Deliver it and answer 201 (what happens without a rule).
    Deliver,
    /// Deliver it and answer 201 after `ms` milliseconds: a slow push service.
    Delay {
        /// The wait before answering.
        ms: u64,
    },
    /// Answer `status` without delivering: 410 for an unsubscribed browser, 429 with a
    /// `retry_after`, 500…
    Status {
        /// The HTTP status.
        status: u16,
        /// `Retry-After` to send: seconds (`"2"`) or an HTTP-date.
        #[serde(default)]
        retry_after: Option<String>,
        /// The body text (default: the status's reason phrase).
        #[serde(default)]
        body: Option<String>,
    },
}

impl WebPushScript {
    /// The reply for a valid push to subscription `id`.
    pub(crate) fn reply_for(&self, id: &str) -> &WebPushReply {
        self.rules
            .iter()
            .find(|r| id.starts_with(&r.prefix))
            .map_or(&WebPushReply::Deliver, |r| &r.reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::Script;

    #[test]
    fn parses_from_the_script_json() {
        let script = Script::from_json(
            r#"{"webpush":{"rules":[
                    {"prefix":"gone-","reply":{"status":{"status":410}}},
                    {"prefix":"slow-","reply":{"delay":{"ms":200}}}],
                "status_burst":{"status":503,"times":2,"retry_after":"1"},
                "max_body":5000}}"#,
        )
        .unwrap();
        let wp = &script.webpush;
        assert_eq!(
            wp.reply_for("gone-abc"),
            &WebPushReply::Status {
                status: 410,
                retry_after: None,
                body: None
            }
        );
        assert_eq!(wp.reply_for("slow-1"), &WebPushReply::Delay { ms: 200 });
        assert_eq!(wp.reply_for("other"), &WebPushReply::Deliver);
        assert_eq!(wp.status_burst.as_ref().map(|b| b.times), Some(2));
        assert_eq!(wp.max_body, 5000);
        assert_eq!(Script::default().webpush.max_body, 4096);
        assert!(Script::from_json(r#"{"webpush":{"max_bdy":1}}"#).is_err());
    }
}
