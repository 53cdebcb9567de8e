//! Reading the records of an earlier `send` output back, for `--resume`.

use gcm_ccs::Outcome;
use serde::Deserialize;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::cli::common::Failure;

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
