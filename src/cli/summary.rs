//! Run summaries: latency percentiles and the printed / JSON report.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// Outcome counts and timing of a sending run.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub submitted: u64,
    pub acked: u64,
    /// Messages that ended with a final nack.
    pub nacked: u64,
    pub nacked_by_code: BTreeMap<String, u64>,
    pub failed: u64,
    pub retried: u64,
    pub reconnects: u64,
    pub canonical_ids: u64,
    pub receipts: u64,
    pub elapsed_s: f64,
    pub msgs_per_s: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
}

/// Collects per-message latencies.
#[derive(Debug, Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn record(&mut self, d: Duration) {
        self.0.push(d);
    }

    /// The `q` quantile (0..=1) in milliseconds; 0 when empty.
    pub fn quantile_ms(&mut self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_unstable();
        let idx = ((self.0.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
        self.0[idx.min(self.0.len() - 1)].as_secs_f64() * 1000.0
    }
}

impl Summary {
    /// Human-readable report for stderr.
    pub fn render(&self) -> String {
        let mut s = format!(
            "submitted {}  acked {}  nacked {}  failed {}\n",
            self.submitted, self.acked, self.nacked, self.failed
        );
        for (code, n) in &self.nacked_by_code {
            s.push_str(&format!("  nacked {code}: {n}\n"));
        }
        s.push_str(&format!(
            "retried {}  reconnects {}  canonical ids {}  receipts {}\n",
            self.retried, self.reconnects, self.canonical_ids, self.receipts
        ));
        s.push_str(&format!(
            "{:.0} msgs/s over {:.2} s  ack latency p50 {:.1} ms  p99 {:.1} ms",
            self.msgs_per_s, self.elapsed_s, self.latency_ms_p50, self.latency_ms_p99
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let mut l = Latencies::default();
        assert_eq!(l.quantile_ms(0.5), 0.0);
        for ms in 1..=100 {
            l.record(Duration::from_millis(ms));
        }
        assert_eq!(l.quantile_ms(0.5).round(), 51.0);
        assert_eq!(l.quantile_ms(0.99), 99.0);
        assert_eq!(l.quantile_ms(1.0), 100.0);
    }
}
