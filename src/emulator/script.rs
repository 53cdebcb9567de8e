//! Scripted emulator behaviour as data: per-target reply rules and connection faults. Tests,
//! the CLI (`--script FILE`, JSON) and users drive the emulator through the same structure.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What the emulator does, beyond validating and acking.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Script {
    /// Reply rules, first match wins, matched against the message's `to` (or `condition`).
    pub rules: Vec<Rule>,
    /// Connection-level faults.
    pub faults: Faults,
    /// Behaviour of the HTTP endpoint beyond the per-target `rules`.
    pub http: HttpFaults,
    /// Behaviour of the Web Push service (its own rules, per subscription).
    #[cfg(feature = "webpush")]
    pub webpush: super::webpush::WebPushScript,
}

/// HTTP-only knobs. Per-token outcomes come from the same `rules` as XMPP (matched against each
/// registration id, topic or condition): `ack` → success, `canonical` → `registration_id`,
/// `nack` / `nack_first` → the error (XMPP codes such as `DEVICE_UNREGISTERED` are translated
/// to their HTTP names, other codes such as `MismatchSenderId` are used verbatim), `delay` →
/// a late response, `silent` → no response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpFaults {
    /// Answer the next requests with an HTTP status instead of processing them.
    pub status_burst: Option<StatusBurst>,
    /// Device groups: notification key → member tokens (each answered by the `rules`).
    pub groups: BTreeMap<String, Vec<String>>,
}

/// `times` authorized requests in a row are answered with `status` (e.g. 503).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusBurst {
    /// The status to answer with.
    pub status: u16,
    /// How many requests in a row.
    pub times: u32,
    /// `Retry-After` value to send: seconds (`"2"`) or an HTTP-date.
    #[serde(default)]
    pub retry_after: Option<String>,
    /// A plain-text body (e.g. a §3 400 text) instead of the HTML error page.
    #[serde(default)]
    pub body: Option<String>,
}

/// One reply rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Applies to targets starting with this prefix (empty: every target).
    pub prefix: String,
    /// What matching messages get.
    pub reply: Reply,
}

/// How the emulator answers a valid downstream message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Reply {
    /// Ack at once.
    Ack,
    /// Ack with a canonical `registration_id`.
    Canonical {
        /// The token the device has now.
        registration_id: String,
    },
    /// Nack with `code` (any string, e.g. `DEVICE_UNREGISTERED`).
    Nack {
        /// The nack code.
        code: String,
        /// `error_description` (default: `scripted nack`).
        #[serde(default)]
        description: Option<String>,
    },
    /// Nack the first `times` copies of each message id with `code`, then ack.
    NackFirst {
        /// The nack code.
        code: String,
        /// Copies nacked before the first ack.
        times: u32,
    },
    /// Ack after `ms` milliseconds (acks come back out of order).
    Delay {
        /// The delay.
        ms: u64,
    },
    /// Never answer.
    Silent,
}

/// What happens when a client exceeds 100 pending messages on one connection (§9.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverLimit {
    /// Process normally (the client's obligation; the statistics record it: `max_pending`,
    /// `over_limit`).
    #[default]
    Ignore,
    /// Nack the excess message with `SERVICE_UNAVAILABLE`.
    Nack,
    /// End the connection with a `policy-violation` stream error, as a strict server would;
    /// its pending messages get no answer.
    Close,
}

/// Connection-level faults and timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Send `CONNECTION_DRAINING` after this many downstream messages on a connection.
    pub drain_after: Option<u64>,
    /// Probability of starting a drain at each downstream message.
    pub drain_probability: f64,
    /// Send `CONNECTION_DRAINING` this many milliseconds after a connection is bound (0: never).
    pub drain_after_ms: u64,
    /// Close a draining connection this many milliseconds after announcing it, at the latest.
    pub drain_close_ms: u64,
    /// Close a draining connection as soon as every message it received has been answered
    /// (CCS "flushes the pipeline", then closes), rather than always waiting `drain_close_ms`.
    pub drain_close_when_flushed: bool,
    /// Drop the TCP connection abruptly (no reply, no close tag) at this message count.
    pub drop_after: Option<u64>,
    /// Probability of an abrupt drop at each downstream message.
    pub drop_probability: f64,
    /// Nack this fraction of valid messages with `nack_code` (chosen at random).
    pub nack_rate: f64,
    /// Code used with `nack_rate`.
    pub nack_code: String,
    /// Reject this many authentications (with valid credentials) before accepting again.
    pub reject_auth: u32,
    /// At most this many authenticated connections per sender id.
    pub max_connections_per_sender: Option<usize>,
    /// Whitespace keepalive interval in milliseconds (0: none).
    pub keepalive_ms: u64,
    /// Delay before a delivery receipt is sent for an acked message that asked for one.
    pub receipt_delay_ms: u64,
    /// Deliver an upstream message from an emulated device on each connection every this many
    /// milliseconds (0: never).
    pub upstream_every_ms: u64,
    /// Pending-limit policy.
    pub over_limit: OverLimit,
    /// The pending limit the policy applies to.
    pub pending_limit: usize,
    /// The first this many connections to bind go silent right after their session result:
    /// no replies, no pongs, no keepalives (a dead path that TCP does not notice).
    pub mute_first: u32,
    /// Send this many upstream messages and delivery receipts (alternately) on each connection
    /// right after binding.
    pub upstream_on_bind: u32,
    /// Send the `upstream_on_bind` burst before answering the session request (a server that
    /// treats the stream as ready once bound, spec §3.7) instead of after.
    pub upstream_before_session: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            drain_after: None,
            drain_probability: 0.0,
            drain_after_ms: 0,
            drain_close_ms: 2000,
            drain_close_when_flushed: true,
            drop_after: None,
            drop_probability: 0.0,
            nack_rate: 0.0,
            nack_code: "SERVICE_UNAVAILABLE".into(),
            reject_auth: 0,
            max_connections_per_sender: None,
            keepalive_ms: 30_000,
            receipt_delay_ms: 10,
            upstream_every_ms: 0,
            over_limit: OverLimit::Ignore,
            pending_limit: crate::xmpp::config::MAX_WINDOW,
            mute_first: 0,
            upstream_on_bind: 0,
            upstream_before_session: false,
        }
    }
}

impl Faults {
    pub(crate) fn keepalive(&self) -> Option<Duration> {
        millis(self.keepalive_ms)
    }

    pub(crate) fn drain_timer(&self) -> Option<Duration> {
        millis(self.drain_after_ms)
    }

    pub(crate) fn upstream_period(&self) -> Option<Duration> {
        millis(self.upstream_every_ms)
    }
}

/// `ms` milliseconds, or `None` for 0.
fn millis(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

impl Script {
    /// The reply for a message to `target` that has now been received `copy` times (1-based).
    pub fn reply_for(&self, target: &str, copy: u32) -> Reply {
        let rule = self.rules.iter().find(|r| target.starts_with(&r.prefix));
        match rule.map(|r| &r.reply) {
            Some(Reply::NackFirst { code, times }) if copy <= *times => Reply::Nack {
                code: code.clone(),
                description: None,
            },
            Some(Reply::NackFirst { .. }) | None => self.random_nack().unwrap_or(Reply::Ack),
            Some(other) => other.clone(),
        }
    }

    fn random_nack(&self) -> Option<Reply> {
        (self.faults.nack_rate > 0.0 && rand::random_bool(self.faults.nack_rate.clamp(0.0, 1.0)))
            .then(|| Reply::Nack {
                code: self.faults.nack_code.clone(),
                description: None,
            })
    }

    /// Parses a script from JSON.
    pub fn from_json(text: &str) -> Result<Script, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_rule_wins_and_nack_first_turns_into_ack() {
        let script = Script::from_json(
            r#"{"rules":[
                {"prefix":"gone-","reply":{"nack":{"code":"DEVICE_UNREGISTERED"}}},
                {"prefix":"flaky-","reply":{"nack_first":{"code":"SERVICE_UNAVAILABLE","times":2}}},
                {"prefix":"","reply":{"delay":{"ms":5}}}
            ]}"#,
        )
        .unwrap();
        assert!(
            matches!(script.reply_for("gone-1", 1), Reply::Nack { code, .. } if code == "DEVICE_UNREGISTERED")
        );
        assert!(matches!(script.reply_for("flaky-1", 2), Reply::Nack { .. }));
        assert_eq!(script.reply_for("flaky-1", 3), Reply::Ack);
        assert_eq!(script.reply_for("other", 1), Reply::Delay { ms: 5 });
    }

    #[test]
    fn timed_faults_parse_and_zero_means_never() {
        let script =
            Script::from_json(r#"{"faults":{"drain_after_ms":1500,"upstream_every_ms":200}}"#)
                .unwrap();
        assert_eq!(
            script.faults.drain_timer(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            script.faults.upstream_period(),
            Some(Duration::from_millis(200))
        );
        assert_eq!(Faults::default().drain_timer(), None);
        assert_eq!(Faults::default().upstream_period(), None);
    }

    #[test]
    fn http_knobs_parse() {
        let script = Script::from_json(
            r#"{"http":{"status_burst":{"status":503,"times":2,"retry_after":"1"},
                        "groups":{"grp-1":["a","b"]}}}"#,
        )
        .unwrap();
        assert_eq!(
            script.http.status_burst,
            Some(StatusBurst {
                status: 503,
                times: 2,
                retry_after: Some("1".into()),
                body: None,
            })
        );
        assert_eq!(script.http.groups["grp-1"], vec!["a", "b"]);
        assert!(Script::from_json(r#"{"http":{"burst":{}}}"#).is_err());
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(Script::from_json(r#"{"rulez":[]}"#).is_err());
        assert!(Script::from_json(r#"{"faults":{"drain_afterr":3}}"#).is_err());
    }

    #[test]
    fn nack_rate_extremes() {
        let mut script = Script::default();
        script.faults.nack_rate = 1.0;
        assert!(matches!(script.reply_for("t", 1), Reply::Nack { .. }));
        script.faults.nack_rate = 0.0;
        assert_eq!(script.reply_for("t", 1), Reply::Ack);
    }
}
