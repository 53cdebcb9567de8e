//! What the emulator observed, for tests and the CLI to assert on.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// Live counters (atomics) plus the id-level records tests need.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    pub connections_accepted: AtomicU64,
    pub connections_authenticated: AtomicU64,
    pub connections_open: AtomicU64,
    pub auth_failures: AtomicU64,
    pub downstream: AtomicU64,
    pub acks_sent: AtomicU64,
    pub nacks_sent: AtomicU64,
    pub stanza_errors: AtomicU64,
    pub client_acks: AtomicU64,
    pub bad_acks: AtomicU64,
    pub max_pending: AtomicU64,
    pub over_limit: AtomicU64,
    pub resent_on_same_connection: AtomicU64,
    pub drains: AtomicU64,
    pub drops: AtomicU64,
    pub stream_errors: AtomicU64,
    /// Per downstream message id: copies received (duplicates on the wire) and the last JSON.
    pub copies: Mutex<HashMap<String, Seen>>,
    /// Upstream/receipt ids sent and not yet acked by the client.
    pub pending_upstream: Mutex<HashSet<String>>,
    /// Upstream/receipt ids the client acked, in order.
    pub acked_by_client: Mutex<Vec<String>>,
}

/// What the emulator kept of one downstream message id.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub copies: u32,
    /// Copies answered with an ack (accepted for delivery).
    pub accepted: u32,
    pub json: String,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Recorder {
    /// Counts one more copy of `id` with payload `json`; returns the copy number (1 for the first).
    pub fn copy_of(&self, id: &str, json: &str) -> u32 {
        let mut copies = lock(&self.copies);
        let seen = copies.entry(id.to_owned()).or_default();
        seen.copies += 1;
        json.clone_into(&mut seen.json);
        seen.copies
    }

    /// Records that a copy of `id` was accepted (acked).
    pub fn accepted(&self, id: &str) {
        if let Some(seen) = lock(&self.copies).get_mut(id) {
            seen.accepted += 1;
        }
    }

    pub fn pending_seen(&self, n: u64) {
        self.max_pending.fetch_max(n, Relaxed);
    }

    pub fn upstream_sent(&self, id: &str) {
        lock(&self.pending_upstream).insert(id.to_owned());
    }

    /// Records a client ack; false when the id was not pending (a bad ack).
    pub fn upstream_acked(&self, id: &str) -> bool {
        if !lock(&self.pending_upstream).remove(id) {
            return false;
        }
        self.client_acks.fetch_add(1, Relaxed);
        lock(&self.acked_by_client).push(id.to_owned());
        true
    }

    pub fn snapshot(&self) -> EmulatorStats {
        let copies = lock(&self.copies);
        EmulatorStats {
            connections_accepted: self.connections_accepted.load(Relaxed),
            connections_authenticated: self.connections_authenticated.load(Relaxed),
            connections_open: self.connections_open.load(Relaxed),
            auth_failures: self.auth_failures.load(Relaxed),
            downstream: self.downstream.load(Relaxed),
            unique_messages: copies.len() as u64,
            duplicates: copies
                .values()
                .map(|s| u64::from(s.accepted.saturating_sub(1)))
                .sum(),
            acks_sent: self.acks_sent.load(Relaxed),
            nacks_sent: self.nacks_sent.load(Relaxed),
            stanza_errors: self.stanza_errors.load(Relaxed),
            client_acks: self.client_acks.load(Relaxed),
            bad_acks: self.bad_acks.load(Relaxed),
            max_pending: self.max_pending.load(Relaxed),
            over_limit: self.over_limit.load(Relaxed),
            resent_on_same_connection: self.resent_on_same_connection.load(Relaxed),
            drains: self.drains.load(Relaxed),
            drops: self.drops.load(Relaxed),
            stream_errors: self.stream_errors.load(Relaxed),
        }
    }
}

/// A snapshot of the emulator's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EmulatorStats {
    /// TCP (or in-memory) connections accepted.
    pub connections_accepted: u64,
    /// Connections that authenticated and bound.
    pub connections_authenticated: u64,
    /// Bound connections open now.
    pub connections_open: u64,
    /// SASL refusals.
    pub auth_failures: u64,
    /// Downstream stanzas received, every copy counted.
    pub downstream: u64,
    /// Distinct downstream message ids received.
    pub unique_messages: u64,
    /// Duplicate deliveries: acks beyond the first, over all message ids (retries after
    /// nacks are not duplicates; resends of messages whose ack was lost are).
    pub duplicates: u64,
    /// Acks written.
    pub acks_sent: u64,
    /// Nacks written.
    pub nacks_sent: u64,
    /// Stanza errors written.
    pub stanza_errors: u64,
    /// Acks from the client for upstream messages and receipts.
    pub client_acks: u64,
    /// Acks from the client that were malformed or for unknown ids.
    pub bad_acks: u64,
    /// The most unanswered downstream messages seen on one connection at once (CCS allows
    /// 100: a client above that ignores the flow control of spec §9.1).
    pub max_pending: u64,
    /// Downstream messages that arrived while their connection already had `pending_limit`
    /// unanswered ones (whatever the `over_limit` policy did with them).
    pub over_limit: u64,
    /// Downstream copies of a message id that connection had already received (needs
    /// `track_ids`): a client must resend on another connection, never on the same one.
    pub resent_on_same_connection: u64,
    /// `CONNECTION_DRAINING` announcements.
    pub drains: u64,
    /// Connections cut abruptly.
    pub drops: u64,
    /// Stream errors written (the connection ended).
    pub stream_errors: u64,
}
