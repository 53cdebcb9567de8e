//! Run summaries: latency percentiles and the printed / JSON report of `demo` and `send`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// Outcome counts and timing of a sending run. The optional counts exist for one subcommand
/// only and are left out of the report when `None`.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Input lines read (`send`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<u64>,
    /// Input lines skipped because the output already had their outcome (`send --resume`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed: Option<u64>,
    /// Input lines refused before sending (`send`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid: Option<u64>,
    pub submitted: u64,
    pub acked: u64,
    /// Messages that ended with a final nack.
    pub nacked: u64,
    pub nacked_by_code: BTreeMap<String, u64>,
    pub failed: u64,
    pub retried: u64,
    pub reconnects: u64,
    pub canonical_ids: u64,
    /// Delivery receipts received (`demo`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipts: Option<u64>,
    pub elapsed_s: f64,
    pub msgs_per_s: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
}

/// Width of a latency bucket: each is 5 % wider than the previous one.
const GROWTH: f64 = 1.05;
/// Buckets from 1 µs up to about an hour.
const BUCKETS: usize = 460;

/// A latency histogram in constant memory: log-scale buckets, quantiles within 2.5 %.
#[derive(Debug)]
pub struct Latencies {
    counts: Vec<u64>,
    total: u64,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            counts: vec![0; BUCKETS],
            total: 0,
        }
    }
}

impl Latencies {
    pub fn record(&mut self, d: Duration) {
        let micros = d.as_secs_f64() * 1e6;
        let bucket = (micros.max(1.0).ln() / GROWTH.ln()) as usize;
        self.counts[bucket.min(BUCKETS - 1)] += 1;
        self.total += 1;
    }

    /// The `q` quantile (0..=1) in milliseconds (its bucket's geometric middle); 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((self.total as f64 * q.clamp(0.0, 1.0)).ceil() as u64).max(1);
        let mut seen = 0;
        let bucket = self
            .counts
            .iter()
            .position(|&n| {
                seen += n;
                seen >= rank
            })
            .unwrap_or(BUCKETS - 1);
        GROWTH.powf(bucket as f64 + 0.5) / 1000.0
    }
}

impl Summary {
    /// Human-readable report for stderr.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if let Some(lines) = self.lines {
            let _ = write!(s, "lines {lines}  ");
        }
        if let Some(resumed) = self.resumed.filter(|&n| n > 0) {
            let _ = write!(s, "already done {resumed}  ");
        }
        if let Some(invalid) = self.invalid {
            let _ = write!(s, "invalid {invalid}  ");
        }
        let _ = writeln!(
            s,
            "submitted {}  acked {}  nacked {}  failed {}",
            self.submitted, self.acked, self.nacked, self.failed
        );
        for (code, n) in &self.nacked_by_code {
            let _ = writeln!(s, "  nacked {code}: {n}");
        }
        let _ = write!(
            s,
            "retried {}  reconnects {}  canonical ids {}",
            self.retried, self.reconnects, self.canonical_ids
        );
        if let Some(receipts) = self.receipts {
            let _ = write!(s, "  receipts {receipts}");
        }
        let _ = write!(
            s,
            "\n{:.0} msgs/s over {:.2} s  ack latency p50 {:.1} ms  p99 {:.1} ms",
            self.msgs_per_s, self.elapsed_s, self.latency_ms_p50, self.latency_ms_p99
        );
        s
    }
}

/// Prints the summary: one JSON object on stdout with `json`, the text report on stderr otherwise.
pub fn print_summary(summary: &Summary, json: bool) {
    if json {
        match serde_json::to_string(summary) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("error: cannot encode the summary: {e}"),
        }
    } else {
        eprintln!("{}", summary.render());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_bucket_precision() {
        let mut l = Latencies::default();
        assert_eq!(l.quantile_ms(0.5), 0.0);
        for ms in 1..=100 {
            l.record(Duration::from_millis(ms));
        }
        let near = |got: f64, want: f64| (got / want - 1.0).abs() < 0.03;
        assert!(near(l.quantile_ms(0.5), 50.0), "{}", l.quantile_ms(0.5));
        assert!(near(l.quantile_ms(0.99), 99.0), "{}", l.quantile_ms(0.99));
        assert!(near(l.quantile_ms(1.0), 100.0), "{}", l.quantile_ms(1.0));
        l.record(Duration::ZERO);
        l.record(Duration::from_secs(1_000_000));
        assert!(l.quantile_ms(0.0) < 0.01);
        assert!(l.quantile_ms(1.0) > 3_000_000.0);
    }

    #[test]
    fn optional_counts_are_left_out() {
        let demo = Summary {
            receipts: Some(3),
            ..Summary::default()
        };
        let json = serde_json::to_value(&demo).unwrap();
        assert_eq!(json["receipts"], 3);
        assert!(json.get("lines").is_none() && json.get("invalid").is_none());
        assert!(demo.render().contains("receipts 3"));
        assert!(!demo.render().contains("lines"));
    }
}
