//! Counters readable at any time while the client runs.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters, written by the pool and the connection readers, read by client handles.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    submitted: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    connections: AtomicU64,
    reconnects: AtomicU64,
    delivered: AtomicU64,
    /// Final nack outcomes by code; touched only on nacks, which are rare.
    nacked: Mutex<BTreeMap<String, u64>>,
}

/// A point-in-time copy of a client's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    /// Messages accepted by `submit`.
    pub submitted: u64,
    /// Messages that ended acked.
    pub acked: u64,
    /// Messages that ended with a final nack, by code.
    pub nacked: BTreeMap<String, u64>,
    /// Messages that ended with any other error (retries exhausted, timeout, closed…).
    pub failed: u64,
    /// Resends (after retryable nacks, lost connections, ack timeouts).
    pub retried: u64,
    /// Accepted messages without an outcome yet (queued, waiting to retry, or on the wire).
    pub in_flight: u64,
    /// Connections currently authenticated (active or draining).
    pub connections: u64,
    /// Connections established to replace one that ended.
    pub reconnects: u64,
    /// Upstream messages and receipts handed to [`Incoming`](crate::Incoming).
    pub delivered: u64,
}

impl StatsSnapshot {
    /// Total of final nacks over all codes.
    pub fn nacked_total(&self) -> u64 {
        self.nacked.values().sum()
    }
}

impl Stats {
    pub fn submitted(&self) {
        self.submitted.fetch_add(1, Relaxed);
    }
    pub fn acked(&self) {
        self.acked.fetch_add(1, Relaxed);
    }
    pub fn failed(&self) {
        self.failed.fetch_add(1, Relaxed);
    }
    pub fn retried(&self) {
        self.retried.fetch_add(1, Relaxed);
    }
    pub fn reconnected(&self) {
        self.reconnects.fetch_add(1, Relaxed);
    }
    pub fn delivered(&self) {
        self.delivered.fetch_add(1, Relaxed);
    }
    pub fn set_connections(&self, n: usize) {
        self.connections.store(n as u64, Relaxed);
    }
    pub fn nacked(&self, code: &str) {
        let mut map = self.nacked.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(code.to_owned()).or_default() += 1;
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let nacked = self
            .nacked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let submitted = self.submitted.load(Relaxed);
        let acked = self.acked.load(Relaxed);
        let failed = self.failed.load(Relaxed);
        let done = acked + failed + nacked.values().sum::<u64>();
        StatsSnapshot {
            submitted,
            acked,
            failed,
            retried: self.retried.load(Relaxed),
            in_flight: submitted.saturating_sub(done),
            connections: self.connections.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            nacked,
        }
    }
}
