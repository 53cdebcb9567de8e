//! One connection as the pool sees it: its phase, its in-flight window and the clocks its
//! checks run on. What is due when is computed here; acting on it is the pool's.

use std::time::Duration;

use tokio::time::Instant;

use super::Job;
use crate::xmpp::window::InFlight;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Takes new messages.
    Active,
    /// The server announced `CONNECTION_DRAINING` at `since`: no new messages, still read.
    Draining { since: Instant },
}

/// The timing settings every check uses.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clocks {
    pub ack_timeout: Duration,
    pub ping_interval: Duration,
    /// How long a draining connection may stay open.
    pub drain_grace: Duration,
}

/// What a connection's check found due.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Due {
    /// Nothing yet.
    Nothing,
    /// No bytes for one interval: send a ping.
    Ping,
    /// A message waited `ack_timeout` for its answer: the connection is suspect.
    AckTimeout,
    /// No bytes for two intervals.
    Silent,
    /// Draining for longer than the grace.
    DrainOverdue,
    /// The reader has waited for the application for two intervals (said once).
    Stalled,
}

pub(super) struct Conn<R> {
    pub phase: Phase,
    pub window: InFlight<Job<R>>,
    /// When bytes last arrived.
    pub last_seen: Instant,
    /// When we last pinged.
    pub last_ping: Option<Instant>,
    /// Since when the reader waits for the application to take upstream messages
    /// (backpressure): we are not reading, so the server's silence and missing acks are ours,
    /// not its.
    pub paused: Option<Instant>,
    /// The long pause was reported.
    pub stall_told: bool,
    /// Ack timeouts run from here at the earliest (the end of the last pause).
    pub ack_floor: Instant,
    /// The room this connection is registered with for placement.
    pub placed: Option<usize>,
    /// The due time of this connection's live timer entry.
    pub armed: Option<Instant>,
}

impl<R> Conn<R> {
    pub fn new(window: usize, now: Instant) -> Self {
        Conn {
            phase: Phase::Active,
            window: InFlight::new(window),
            last_seen: now,
            last_ping: None,
            paused: None,
            stall_told: false,
            ack_floor: now,
            placed: None,
            armed: None,
        }
    }

    /// Free room if the connection may take messages now.
    pub fn open_room(&self) -> Option<usize> {
        (self.phase == Phase::Active && self.paused.is_none()).then(|| self.window.room())
    }

    fn drain_deadline(&self, c: &Clocks) -> Option<Instant> {
        match self.phase {
            Phase::Draining { since } => Some(since + c.drain_grace),
            Phase::Active => None,
        }
    }

    fn ack_deadline(&self, c: &Clocks) -> Option<Instant> {
        let oldest = self.window.oldest_sent()?;
        Some(oldest.max(self.ack_floor) + c.ack_timeout)
    }

    fn ping_due(&self, c: &Clocks) -> Instant {
        self.last_seen.max(self.last_ping.unwrap_or(self.last_seen)) + c.ping_interval
    }

    fn silent_at(&self, c: &Clocks) -> Instant {
        self.last_seen + c.ping_interval * 2
    }

    /// When a pause has lasted long enough to be worth telling.
    fn stall_at(&self, c: &Clocks) -> Option<Instant> {
        let since = self.paused.filter(|_| !self.stall_told)?;
        Some(since + c.ping_interval * 2)
    }

    /// The most urgent thing due at `now`.
    pub fn due(&self, now: Instant, c: &Clocks) -> Due {
        if self.drain_deadline(c).is_some_and(|d| d <= now) {
            return Due::DrainOverdue;
        }
        if self.paused.is_some() {
            return match self.stall_at(c) {
                Some(at) if at <= now => Due::Stalled,
                _ => Due::Nothing,
            };
        }
        if self.ack_deadline(c).is_some_and(|d| d <= now) {
            Due::AckTimeout
        } else if self.silent_at(c) <= now {
            Due::Silent
        } else if self.ping_due(c) <= now {
            Due::Ping
        } else {
            Due::Nothing
        }
    }

    /// When the next check is due. While paused only the drain grace and the stall notice
    /// run.
    pub fn next_check(&self, c: &Clocks) -> Option<Instant> {
        let drain = self.drain_deadline(c);
        if self.paused.is_some() {
            return match (drain, self.stall_at(c)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let liveness = self.ping_due(c).min(self.silent_at(c));
        Some(
            [drain, self.ack_deadline(c)]
                .into_iter()
                .flatten()
                .fold(liveness, Instant::min),
        )
    }
}
