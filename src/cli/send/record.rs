//! The output of `send`: one record per input line, and reading them back for `--resume`.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use gcm_ccs::{Ack, SendError, ValidationError};
use serde::{Deserialize, Serialize};

use crate::cli::common::{Failure, error_code};

/// How a line ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Acked,
    Nacked,
    Failed,
    Invalid,
}

/// One output line. Every field is always present (`null` when it does not apply).
#[derive(Debug, Serialize)]
pub struct Record {
    /// 1-based input line number.
    pub line: u64,
    pub message_id: Option<String>,
    /// The `to` (or `condition`) of the message.
    pub to: Option<String>,
    pub outcome: Outcome,
    /// The nack code, or a short upper-case reason for `failed` and `invalid`.
    pub code: Option<String>,
    pub description: Option<String>,
    pub canonical_registration_id: Option<String>,
    /// Times the message was written to a connection (`null` over HTTP).
    pub attempts: Option<u32>,
    /// From submission to outcome.
    pub latency_ms: Option<f64>,
}

impl Record {
    /// The record of a message that was handed to the client.
    pub fn sent(
        line: u64,
        message_id: String,
        to: String,
        result: Result<Ack, SendError>,
        attempts: Option<u32>,
        latency: Duration,
    ) -> Record {
        let (outcome, code, description, canonical) = match result {
            Ok(ack) => (Outcome::Acked, None, None, ack.registration_id),
            Err(SendError::Nacked(nack)) => (
                Outcome::Nacked,
                Some(nack.code.as_str().to_owned()),
                nack.description,
                None,
            ),
            Err(e) => {
                let (outcome, code) = match &e {
                    SendError::Invalid(v) => (Outcome::Invalid, invalid_code(v)),
                    other => (Outcome::Failed, error_code(other)),
                };
                (outcome, Some(code.to_owned()), Some(e.to_string()), None)
            }
        };
        Record {
            line,
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

    /// The record of a line refused before sending.
    pub fn invalid(line: u64, rejected: Rejected) -> Record {
        Record {
            line,
            message_id: rejected.message_id,
            to: rejected.to,
            outcome: Outcome::Invalid,
            code: Some(rejected.code.to_owned()),
            description: Some(rejected.description),
            canonical_registration_id: None,
            attempts: Some(0),
            latency_ms: None,
        }
    }
}

/// Why an input line cannot be sent, with what could be read of it.
#[derive(Debug)]
pub struct Rejected {
    pub code: &'static str,
    pub description: String,
    pub message_id: Option<String>,
    pub to: Option<String>,
}

impl Rejected {
    pub fn new(code: &'static str, description: impl Into<String>) -> Self {
        Rejected {
            code,
            description: description.into(),
            message_id: None,
            to: None,
        }
    }

    /// A line that is text but not a valid message; keeps its `message_id` and target if the
    /// JSON has them.
    pub fn validation(text: &str, e: &ValidationError) -> Self {
        let value: Option<serde_json::Value> = serde_json::from_str(text).ok();
        let field = |names: &[&str]| {
            let value = value.as_ref()?;
            names
                .iter()
                .find_map(|n| value.get(n)?.as_str().map(str::to_owned))
        };
        Rejected {
            code: invalid_code(e),
            description: e.to_string(),
            message_id: field(&["message_id"]),
            to: field(&["to", "condition"]),
        }
    }
}

fn invalid_code(e: &ValidationError) -> &'static str {
    match e {
        ValidationError::MissingTarget => "MISSING_TARGET",
        ValidationError::ConflictingTargets => "CONFLICTING_TARGETS",
        ValidationError::TtlOutOfRange(_) => "INVALID_TTL",
        ValidationError::PayloadTooLarge { .. } => "MESSAGE_TOO_BIG",
        ValidationError::ReservedDataKey(_) => "INVALID_DATA_KEY",
        ValidationError::HttpOnlyField { .. } => "HTTP_ONLY_FIELD",
        ValidationError::InvalidField { .. } => "INVALID_FIELD",
        ValidationError::Json(_) => "INVALID_JSON",
    }
}

/// Input lines that already have an outcome in an earlier output (a bitset: one bit per line).
#[derive(Debug, Default)]
pub struct Done {
    bits: Vec<u64>,
    /// Lines with an outcome.
    pub count: u64,
    /// Of which `failed`.
    pub failed: u64,
}

impl Done {
    pub fn contains(&self, line: u64) -> bool {
        let (word, bit) = ((line / 64) as usize, line % 64);
        self.bits.get(word).is_some_and(|w| w & (1u64 << bit) != 0)
    }

    fn insert(&mut self, line: u64, outcome: Outcome) {
        let (word, bit) = ((line / 64) as usize, line % 64);
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & (1u64 << bit) == 0 {
            self.bits[word] |= 1u64 << bit;
            self.count += 1;
            self.failed += u64::from(outcome == Outcome::Failed);
        }
    }
}

/// What `--resume` needs of a record.
#[derive(Deserialize)]
struct Seen {
    line: u64,
    outcome: Outcome,
}

/// Reads the records of an earlier output. A last line cut short by a crash is removed from
/// the file so that appending continues on a fresh line. A missing file means nothing is done.
pub fn read_done(path: &Path) -> Result<Done, Failure> {
    let cannot =
        |e: std::io::Error| Failure::usage(format!("cannot resume from {}: {e}", path.display()));
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Done::default()),
        Err(e) => return Err(cannot(e)),
    };
    let mut reader = BufReader::new(file);
    let (mut done, mut complete_len, mut unreadable) = (Done::default(), 0u64, 0u64);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(cannot)?;
        if n == 0 || buf.last() != Some(&b'\n') {
            break;
        }
        complete_len += n as u64;
        match serde_json::from_slice::<Seen>(&buf) {
            Ok(seen) if seen.line > 0 => done.insert(seen.line, seen.outcome),
            _ => unreadable += 1,
        }
    }
    if !buf.is_empty() {
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(complete_len))
            .map_err(cannot)?;
        tracing::warn!(
            "removed an incomplete last line from {}: its input line will be sent again",
            path.display()
        );
    }
    if unreadable > 0 {
        eprintln!(
            "warning: {unreadable} line(s) of {} are not outcome records; ignored",
            path.display()
        );
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gcm_ccs::{Nack, NackCode};

    #[test]
    fn records_carry_every_field() {
        let nack = Nack {
            message_id: Some("m1".into()),
            from: Some("t".into()),
            code: NackCode::DeviceUnregistered,
            description: Some("gone".into()),
        };
        let r = Record::sent(
            3,
            "m1".into(),
            "t".into(),
            Err(SendError::Nacked(nack)),
            Some(1),
            Duration::from_micros(1500),
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["outcome"], "nacked");
        assert_eq!(json["code"], "DEVICE_UNREGISTERED");
        assert_eq!(json["description"], "gone");
        assert_eq!(json["latency_ms"], 1.5);
        assert!(json["canonical_registration_id"].is_null());
        assert_eq!(json.as_object().unwrap().len(), 9);

        let timeout = Record::sent(
            4,
            "m2".into(),
            "t".into(),
            Err(SendError::Timeout(Duration::from_secs(60))),
            None,
            Duration::ZERO,
        );
        assert_eq!(timeout.outcome, Outcome::Failed);
        assert_eq!(timeout.code.as_deref(), Some("TIMEOUT"));
        assert!(serde_json::to_value(&timeout).unwrap()["attempts"].is_null());
    }

    #[test]
    fn rejected_keeps_id_and_target() {
        let text = r#"{"to":"tok","message_id":"m9","data":{"from":"x"}}"#;
        let r = Rejected::validation(text, &ValidationError::ReservedDataKey("from".into()));
        assert_eq!(r.code, "INVALID_DATA_KEY");
        assert_eq!(
            (r.message_id.as_deref(), r.to.as_deref()),
            (Some("m9"), Some("tok"))
        );
    }

    #[test]
    fn resume_reads_records_and_cuts_a_partial_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        std::fs::write(
            &path,
            "{\"line\":2,\"outcome\":\"acked\"}\n{\"line\":63,\"outcome\":\"invalid\"}\n{\"line\":70,\"outcome\":\"failed\"}\nnot json\n{\"line\":5,\"outc",
        )
        .unwrap();
        let done = read_done(&path).unwrap();
        assert_eq!((done.count, done.failed), (3, 1));
        assert!(done.contains(2) && done.contains(63) && done.contains(70));
        assert!(!done.contains(5) && !done.contains(1) && !done.contains(64));
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .ends_with("not json\n")
        );
        assert_eq!(read_done(&dir.path().join("none")).unwrap().count, 0);
    }
}
