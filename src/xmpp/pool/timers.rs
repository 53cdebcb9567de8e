//! The pool's timers in one heap: each entry names what to look at when it is due. Entries are
//! never removed early; the pool checks on `pop` whether an entry still applies (lazy
//! deletion), so arming costs O(log n) and nothing is ever scanned.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use tokio::time::Instant;

use super::ConnId;

/// What a due entry asks the pool to look at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    /// The checks of one connection: ack timeout, ping, silence, drain grace.
    Conn(ConnId),
    /// A scheduled connect is due.
    Connect(ConnId),
    /// The outage may have lasted `unavailable_after`: queued messages start to fail.
    Outage,
    /// The graceful close's deadline.
    Closing,
    /// A target's rate-limit cool-down may be over.
    Cooldown(Arc<str>),
}

/// A min-heap of `(due, insertion order, timer)`.
#[derive(Debug, Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64, Timer)>>,
    seq: u64,
}

impl Timers {
    pub fn push(&mut self, due: Instant, timer: Timer) {
        self.seq += 1;
        self.heap.push(Reverse((due, self.seq, timer)));
    }

    /// The earliest due time, stale entries included (they only make the shell wake early).
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((due, _, _))| *due)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, Timer)> {
        if self.next()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse((due, _, timer))| (due, timer))
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_in_due_order_and_only_when_due() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.push(t0 + Duration::from_secs(2), Timer::Outage);
        timers.push(t0 + Duration::from_secs(1), Timer::Conn(7));
        timers.push(t0 + Duration::from_secs(1), Timer::Closing);
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(timers.pop_due(t0), None);
        let due = t0 + Duration::from_secs(1);
        assert_eq!(timers.pop_due(due), Some((due, Timer::Conn(7))));
        assert_eq!(timers.pop_due(due), Some((due, Timer::Closing)));
        assert_eq!(timers.pop_due(due), None);
        assert_eq!(timers.len(), 1);
    }
}
