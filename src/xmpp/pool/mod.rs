//! The pool's policy as a sans-IO state machine: connections (active and draining) with their
//! in-flight windows, the ready queue, retries with backoff, per-target cool-downs, liveness,
//! ack timeouts, drains, reconnects and the graceful close.
//!
//! Inputs carry the time (`on_job`, `on_inbound`, `on_closed`, `on_tick`, …); outputs are
//! [`Action`]s the shell carries out. Nothing here reads a clock, spawns a task or touches a
//! channel, so every interleaving can be driven directly by tests. Every accepted [`Job`]
//! ends in exactly one [`Action::Complete`].

mod conn;
mod placement;
mod timers;

#[cfg(test)]
mod harness;
#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rustc_hash::FxHashMap;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use self::conn::{Clocks, Conn, Due, Phase};
use self::placement::Placement;
use self::timers::{Timer, Timers};
use super::completion::Completion;
use super::config::Config;
use super::events::{ConnId, Event};
use super::outbound::Stanza;
use super::stats::Stats;
use super::window::InsertError;
use crate::backoff;
use crate::error::{ConnectError, SendError};
use crate::inbound::{Ack, Control, Inbound, Nack, NackCode, StanzaError};
use crate::message::ValidationError;

/// One accepted message on its way to an outcome; `reply` is the shell's way back to the
/// caller (a type parameter, so tests can use plain values).
pub(crate) struct Job<R> {
    pub id: Arc<str>,
    pub target: Arc<str>,
    /// The complete, escaped `<message>` stanza, encoded once at submission.
    pub stanza: Stanza,
    /// Sends so far.
    pub attempts: u32,
    pub submitted_at: Instant,
    pub reply: R,
}

/// What the shell must do.
pub(crate) enum Action<R> {
    /// Open connection `conn` (TLS, negotiation) and report `on_connected` or
    /// `on_connect_failed`.
    Connect(ConnId),
    /// Write these bytes on `conn`.
    Write(ConnId, Stanza),
    /// Send `</stream:stream>` on `conn` and let it go: the pool has forgotten it (its window
    /// was requeued), and ignores whatever it still reports.
    Close(ConnId),
    /// A job is finished.
    Complete(R, Completion),
    /// Something the application may want to know (lossy).
    Event(Event),
}

/// A retry waiting out its backoff; ordered by due time, then arrival.
struct Delayed<R> {
    due: Instant,
    seq: u64,
    job: Job<R>,
}

impl<R> PartialEq for Delayed<R> {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl<R> Eq for Delayed<R> {}
impl<R> PartialOrd for Delayed<R> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<R> Ord for Delayed<R> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(o.due, o.seq))
    }
}

/// Why no connection is usable, and since when.
struct Outage {
    since: Instant,
    error: ConnectError,
}

pub(crate) struct Pool<R> {
    cfg: Arc<Config>,
    clocks: Clocks,
    stats: Arc<Stats>,
    rng: SmallRng,
    conns: FxHashMap<ConnId, Conn<R>>,
    placement: Placement,
    /// Connections in `conns` that are `Active`.
    active: usize,
    /// Connects scheduled or under way.
    connecting: usize,
    next_conn: ConnId,
    connect_failures: u32,
    /// Connections lost or draining that a new connection has not replaced yet.
    replacements_owed: usize,
    ready: VecDeque<Job<R>>,
    delayed: BinaryHeap<Reverse<Delayed<R>>>,
    delayed_seq: u64,
    /// Targets cooling down after a rate-limit nack, until when.
    cooldown: FxHashMap<Arc<str>, Instant>,
    timers: Timers,
    /// Messages in some window.
    on_wire: usize,
    outage: Option<Outage>,
    /// The graceful close's deadline, once `close` was called.
    closing: Option<Instant>,
    intake_closed: bool,
    actions: VecDeque<Action<R>>,
}

impl<R> Pool<R> {
    /// A pool that opens its connections at once; `seed` drives the jitter.
    pub fn new(cfg: Arc<Config>, stats: Arc<Stats>, seed: u64, now: Instant) -> Self {
        let clocks = Clocks {
            ack_timeout: cfg.ack_timeout,
            ping_interval: cfg.ping_interval,
            drain_grace: cfg.ack_timeout,
        };
        let mut pool = Pool {
            cfg,
            clocks,
            stats,
            rng: SmallRng::seed_from_u64(seed),
            conns: FxHashMap::default(),
            placement: Placement::default(),
            active: 0,
            connecting: 0,
            next_conn: 1,
            connect_failures: 0,
            replacements_owed: 0,
            ready: VecDeque::new(),
            delayed: BinaryHeap::new(),
            delayed_seq: 0,
            cooldown: FxHashMap::default(),
            timers: Timers::default(),
            on_wire: 0,
            outage: None,
            closing: None,
            intake_closed: false,
            actions: VecDeque::new(),
        };
        pool.ensure_connections(now, Duration::ZERO);
        pool
    }

    // ----- what the shell asks -------------------------------------------------------------

    /// The next thing to do, in order.
    pub fn poll_action(&mut self) -> Option<Action<R>> {
        self.actions.pop_front()
    }

    /// When `on_tick` must run next (it may find nothing to do then).
    pub fn next_deadline(&self) -> Option<Instant> {
        let retry = self.delayed.peek().map(|Reverse(d)| d.due);
        match (self.timers.next(), retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the shell should hand over more jobs: there is window room for them, they fail
    /// at once (no connection for too long), or the client is closing (the intake holds only
    /// what was accepted before, and it must all be accounted for).
    pub fn wants_jobs(&self, now: Instant) -> bool {
        self.ready.len() < self.placement.room() || self.failing_fast(now) || self.closing.is_some()
    }

    /// The close has finished: nothing accepted is waiting for an outcome.
    pub fn is_finished(&self) -> bool {
        self.closing.is_some() && self.is_idle()
    }

    // ----- inputs --------------------------------------------------------------------------

    /// A new message was accepted.
    pub fn on_job(&mut self, now: Instant, job: Job<R>) {
        if self.closing_due(now) {
            return self.complete(job, Err(SendError::Closed));
        }
        self.ready.push_back(job);
        self.pump(now);
    }

    /// Connection `conn` authenticated and bound `jid`.
    pub fn on_connected(&mut self, now: Instant, conn: ConnId, jid: String) {
        self.connecting -= 1;
        self.connect_failures = 0;
        self.outage = None;
        info!(conn, %jid, "connected");
        let reconnect = self.replacements_owed > 0;
        if reconnect {
            self.replacements_owed -= 1;
            self.stats.reconnected();
        }
        self.push_event(Event::Connected {
            conn,
            jid,
            reconnect,
        });
        self.conns.insert(conn, Conn::new(self.cfg.window, now));
        self.active += 1;
        self.stats.set_connections(self.conns.len());
        self.place(conn);
        self.rearm(conn);
        if self.closing.is_some() && self.is_idle() {
            self.forget(conn);
            self.actions.push_back(Action::Close(conn));
        }
        self.pump(now);
    }

    /// Opening connection `conn` failed.
    pub fn on_connect_failed(&mut self, now: Instant, conn: ConnId, error: ConnectError) {
        self.connecting -= 1;
        self.connect_failures += 1;
        let policy = &self.cfg.reconnect;
        let retry_in = if error.is_auth() {
            policy.auth_failure_delay
        } else {
            let jitter = self.rng.random_range(0.5..1.5);
            backoff::delay(
                policy.initial_backoff,
                policy.max_backoff,
                self.connect_failures,
                jitter,
            )
        };
        warn!(conn, attempt = self.connect_failures, error = %error, ?retry_in, "connect failed");
        if self.active == 0 {
            let since = self.outage.as_ref().map_or(now, |o| o.since);
            let fails_at = since + self.cfg.reconnect.unavailable_after;
            if !error.is_auth() && fails_at > now {
                self.timers.push(fails_at, Timer::Outage);
            }
            self.outage = Some(Outage {
                since,
                error: error.clone(),
            });
        }
        self.push_event(if error.is_auth() {
            Event::AuthFailed { error, retry_in }
        } else {
            Event::ConnectFailed { error, retry_in }
        });
        if self.closing.is_none() && self.active + self.connecting < self.cfg.connections {
            self.schedule_connect(now, retry_in);
        }
        self.pump(now);
    }

    /// Something `conn` received that the pool acts on: acks, nacks, stanza errors, control.
    pub fn on_inbound(&mut self, now: Instant, conn: ConnId, inbound: Inbound) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return; // a connection the pool has let go
        };
        c.last_seen = c.last_seen.max(now);
        match inbound {
            Inbound::Ack(ack) => self.on_ack(conn, ack),
            Inbound::Nack(nack) => self.on_nack(now, conn, nack),
            Inbound::StanzaError(e) => self.on_stanza_error(conn, e),
            Inbound::Control(Control::ConnectionDraining) => self.mark_draining(now, conn),
            other => debug!(conn, ?other, "ignoring inbound"),
        }
        self.pump(now);
    }

    /// The reader of `conn` waits for the application to take upstream messages.
    pub fn on_paused(&mut self, now: Instant, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.paused = Some(now);
            self.place(conn);
            self.rearm(conn);
        }
    }

    /// The reader of `conn` reads again: its clocks restart now.
    pub fn on_resumed(&mut self, now: Instant, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.paused = None;
        c.stall_told = false;
        c.ack_floor = now;
        c.last_seen = c.last_seen.max(now);
        self.place(conn);
        self.rearm(conn);
        self.pump(now);
    }

    /// Connection `conn` ended (the peer closed it, or reading or writing failed).
    pub fn on_closed(&mut self, now: Instant, conn: ConnId, reason: String) {
        self.lose(now, conn, reason, false);
    }

    /// Runs everything due at `now`: retries, connection checks, connects, cool-down expiry,
    /// the outage and close deadlines. `last_read` tells when bytes last arrived on a
    /// connection (keepalives make no frames, so the shell's byte clock is asked).
    pub fn on_tick(&mut self, now: Instant, last_read: impl Fn(ConnId) -> Option<Instant>) {
        while self.delayed.peek().is_some_and(|Reverse(d)| d.due <= now) {
            if let Some(Reverse(d)) = self.delayed.pop() {
                self.ready.push_back(d.job);
            }
        }
        while let Some((due, timer)) = self.timers.pop_due(now) {
            match timer {
                Timer::Conn(id) => {
                    let Some(c) = self.conns.get_mut(&id) else {
                        continue;
                    };
                    if c.armed != Some(due) {
                        continue; // superseded by an earlier entry
                    }
                    c.armed = None;
                    if let Some(at) = last_read(id) {
                        c.last_seen = c.last_seen.max(at);
                    }
                    self.check_conn(now, id);
                }
                Timer::Connect(id) => {
                    if self.closing.is_some() && self.is_idle() {
                        self.connecting -= 1;
                    } else {
                        self.actions.push_back(Action::Connect(id));
                    }
                }
                Timer::Cooldown(target) => {
                    if self
                        .cooldown
                        .get(&target)
                        .is_some_and(|until| *until <= now)
                    {
                        self.cooldown.remove(&target);
                    }
                }
                Timer::Closing => {
                    if self.closing_due(now) {
                        self.fail_everything(SendError::Closed);
                    }
                }
                Timer::Outage => {} // `pump` below fails what waits, if the outage lasts
            }
        }
        if self.failing_fast(now) {
            // Retries waiting out a backoff cannot succeed either.
            while let Some(Reverse(d)) = self.delayed.pop() {
                self.ready.push_back(d.job);
            }
        }
        self.pump(now);
    }

    /// Starts the graceful close: what was accepted is still sent until `close_timeout`, then
    /// fails with [`SendError::Closed`].
    pub fn close(&mut self, now: Instant) {
        if self.closing.is_none() {
            let deadline = now + self.cfg.close_timeout;
            self.closing = Some(deadline);
            self.timers.push(deadline, Timer::Closing);
        }
    }

    /// No more jobs will arrive.
    pub fn on_intake_closed(&mut self) {
        self.intake_closed = true;
    }

    /// Closes every connection (once finished).
    pub fn shutdown(&mut self) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.forget(id);
            self.actions.push_back(Action::Close(id));
        }
    }

    // ----- sending -------------------------------------------------------------------------

    /// Moves ready jobs onto connections with window room.
    fn pump(&mut self, now: Instant) {
        if self.failing_fast(now) {
            let error = self.outage.as_ref().map(|o| o.error.clone());
            while let Some(job) = self.ready.pop_front() {
                let err = error
                    .clone()
                    .map_or(SendError::Closed, SendError::Unavailable);
                self.complete(job, Err(err));
            }
            return;
        }
        while let Some(job) = self.ready.pop_front() {
            if !self.cooldown.is_empty()
                && let Some(&until) = self.cooldown.get(&job.target)
                && until > now
            {
                self.delay(job, until);
                continue;
            }
            let Some(conn) = self.placement.best() else {
                self.ready.push_front(job);
                break;
            };
            self.transmit(now, conn, job);
        }
    }

    fn transmit(&mut self, now: Instant, conn_id: ConnId, mut job: Job<R>) {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            self.ready.push_front(job);
            return;
        };
        job.attempts += 1;
        let stanza = job.stanza.clone();
        match conn.window.insert(job.id.clone(), job, now) {
            Ok(()) => {
                self.on_wire += 1;
                self.actions.push_back(Action::Write(conn_id, stanza));
                self.place(conn_id);
                self.arm(conn_id, now + self.clocks.ack_timeout);
            }
            Err((InsertError::Duplicate, job)) => {
                let err = SendError::Invalid(ValidationError::InvalidField {
                    field: "message_id".into(),
                    reason: format!("`{}` is already in flight", job.id),
                });
                self.complete(job, Err(err));
            }
            Err((InsertError::Full, mut job)) => {
                // Placement only offers connections with room; keep the job regardless.
                job.attempts -= 1;
                self.ready.push_front(job);
            }
        }
    }

    fn complete(&mut self, job: Job<R>, result: Result<Ack, SendError>) {
        match &result {
            Ok(_) => self.stats.acked(),
            Err(SendError::Nacked(n)) => self.stats.nacked(n.code.as_str()),
            Err(_) => self.stats.failed(),
        }
        let completion = Completion {
            result,
            attempts: job.attempts,
        };
        self.actions
            .push_back(Action::Complete(job.reply, completion));
    }

    /// Sends `job` again after `delay`, unless its attempts or deadline are used up.
    fn retry(&mut self, now: Instant, job: Job<R>, cause: SendError, delay: Duration) {
        let out_of_time = self
            .cfg
            .retry
            .deadline
            .is_some_and(|d| now + delay > job.submitted_at + d);
        if job.attempts >= self.cfg.retry.max_attempts || out_of_time || self.closing_due(now) {
            return self.complete(job, Err(cause));
        }
        self.stats.retried();
        if delay.is_zero() {
            self.ready.push_front(job);
        } else {
            self.delay(job, now + delay);
        }
    }

    fn delay(&mut self, job: Job<R>, due: Instant) {
        self.delayed_seq += 1;
        self.delayed.push(Reverse(Delayed {
            due,
            seq: self.delayed_seq,
            job,
        }));
    }

    // ----- answers -------------------------------------------------------------------------

    fn on_ack(&mut self, conn: ConnId, ack: Ack) {
        match self.take_in_flight(conn, &ack.message_id) {
            Some(job) => self.complete(job, Ok(ack)),
            None => debug!(conn, id = %ack.message_id, "ack for a message not in flight"),
        }
    }

    fn on_nack(&mut self, now: Instant, conn: ConnId, nack: Nack) {
        let Some(id) = nack.message_id.as_deref() else {
            warn!(conn, code = %nack.code, "nack without message_id cannot be correlated");
            return;
        };
        let Some(job) = self.take_in_flight(conn, id) else {
            debug!(conn, id, "nack for a message not in flight");
            return;
        };
        let retry = &self.cfg.retry;
        let jitter = self.rng.random_range(0.5..1.5);
        match &nack.code {
            NackCode::ConnectionDraining => {
                self.mark_draining(now, conn);
                self.retry(now, job, SendError::Nacked(nack), Duration::ZERO);
            }
            code if code.is_rate_limit() => {
                let (initial, cap) = (retry.rate_limit_backoff, retry.max_rate_limit_backoff);
                let d = backoff::delay(initial, cap, job.attempts, jitter);
                self.cool_down(now, job.target.clone(), now + d);
                self.retry(now, job, SendError::Nacked(nack), d);
            }
            code if code.is_retryable() => {
                let d = backoff::delay(
                    retry.initial_backoff,
                    retry.max_backoff,
                    job.attempts,
                    jitter,
                );
                self.retry(now, job, SendError::Nacked(nack), d);
            }
            _ => self.complete(job, Err(SendError::Nacked(nack))),
        }
    }

    fn cool_down(&mut self, now: Instant, target: Arc<str>, until: Instant) {
        if until <= now {
            return;
        }
        let entry = self.cooldown.entry(target.clone()).or_insert(until);
        *entry = (*entry).max(until);
        self.timers.push(until, Timer::Cooldown(target));
    }

    fn on_stanza_error(&mut self, conn: ConnId, err: StanzaError) {
        let job = err
            .id
            .as_deref()
            .and_then(|id| self.take_in_flight(conn, id));
        match job {
            Some(job) => self.complete(job, Err(SendError::StanzaError(err))),
            // Uncorrelatable: the ack timeout will end the connection and resend its window.
            None => warn!(conn, error = %err, "stanza error without a known id"),
        }
    }

    fn take_in_flight(&mut self, conn: ConnId, id: &str) -> Option<Job<R>> {
        let slot = self.conns.get_mut(&conn)?.window.remove(id)?;
        self.on_wire -= 1;
        self.place(conn);
        Some(slot.item)
    }

    // ----- connections ---------------------------------------------------------------------

    /// Registers `conn`'s current room with the placement index.
    fn place(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.placed = self.placement.update(conn, c.placed, c.open_room());
        }
    }

    /// Makes sure `conn`'s checks run at `at` or earlier.
    fn arm(&mut self, conn: ConnId, at: Instant) {
        if let Some(c) = self.conns.get_mut(&conn)
            && c.armed.is_none_or(|armed| at < armed)
        {
            c.armed = Some(at);
            self.timers.push(at, Timer::Conn(conn));
        }
    }

    /// Arms `conn`'s next check, whatever is armed now.
    fn rearm(&mut self, conn: ConnId) {
        if let Some(next) = self
            .conns
            .get(&conn)
            .and_then(|c| c.next_check(&self.clocks))
        {
            self.arm(conn, next);
        }
    }

    fn check_conn(&mut self, now: Instant, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let interval = self.clocks.ping_interval;
        match conn.due(now, &self.clocks) {
            Due::DrainOverdue => {
                let grace = self.clocks.drain_grace;
                let reason =
                    format!("the server did not close the draining connection within {grace:?}");
                return self.lose(now, id, reason, true);
            }
            Due::AckTimeout => {
                let timeout = self.clocks.ack_timeout;
                let reason = format!(
                    "no ack or nack within {timeout:?}: the connection is closed and its messages resent elsewhere"
                );
                return self.lose(now, id, reason, true);
            }
            Due::Silent => {
                let reason = format!("no data from the server for {:?}", interval * 2);
                return self.lose(now, id, reason, true);
            }
            Due::Ping => {
                conn.last_ping = Some(now);
                let mut buf = Vec::new();
                crate::wire::write::iq_ping(&mut buf, &format!("ping-{id}"), &self.cfg.stream_to);
                self.actions.push_back(Action::Write(id, buf.into()));
            }
            Due::Stalled => {
                conn.stall_told = true;
                warn!(
                    conn = id,
                    "the application has not taken upstream messages for {:?}: this connection \
                     reads nothing and takes no new messages until Incoming is read (or dropped)",
                    interval * 2
                );
            }
            Due::Nothing => {}
        }
        self.rearm(id);
    }

    /// Removes `conn` from the pool's books (placement, counters).
    fn forget(&mut self, id: ConnId) -> Option<Conn<R>> {
        let conn = self.conns.remove(&id)?;
        self.placement.update(id, conn.placed, None);
        if conn.phase == Phase::Active {
            self.active -= 1;
        }
        self.stats.set_connections(self.conns.len());
        Some(conn)
    }

    /// `conn` is gone (or given up on, when `close`): its window is resent elsewhere, oldest
    /// first, and a replacement is opened.
    fn lose(&mut self, now: Instant, id: ConnId, reason: String, close: bool) {
        let Some(mut conn) = self.forget(id) else {
            return;
        };
        if close {
            self.actions.push_back(Action::Close(id));
        }
        if conn.phase == Phase::Active {
            self.replacements_owed += 1;
        }
        let slots = conn.window.drain();
        self.on_wire -= slots.len();
        info!(conn = id, %reason, in_flight = slots.len(), "connection ended");
        self.push_event(Event::Lost {
            conn: id,
            reason: reason.clone(),
            in_flight: slots.len(),
        });
        let timeout = self.clocks.ack_timeout;
        for slot in slots.into_iter().rev() {
            let cause = if slot.sent_at.max(conn.ack_floor) + timeout <= now {
                SendError::Timeout(timeout)
            } else {
                SendError::ConnectionLost(reason.clone())
            };
            self.retry(now, slot.item, cause, Duration::ZERO);
        }
        let jitter = self
            .cfg
            .reconnect
            .reconnect_jitter
            .mul_f64(self.rng.random_range(0.0..1.0));
        self.ensure_connections(now, jitter);
        self.pump(now);
    }

    fn mark_draining(&mut self, now: Instant, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.phase != Phase::Active {
            return;
        }
        info!(conn = id, "connection draining");
        conn.phase = Phase::Draining { since: now };
        self.active -= 1;
        self.place(id);
        self.rearm(id);
        self.push_event(Event::Draining { conn: id });
        self.replacements_owed += 1;
        self.ensure_connections(now, Duration::ZERO);
    }

    /// Opens connections until active + connecting reaches the configured count, with at most
    /// twice that many open or opening at once (draining ones included), so a server that
    /// drains connections without closing them cannot make us open more and more.
    fn ensure_connections(&mut self, now: Instant, delay: Duration) {
        if self.closing.is_some() && self.is_idle() {
            return;
        }
        while self.active + self.connecting < self.cfg.connections
            && self.conns.len() + self.connecting < 2 * self.cfg.connections
        {
            self.schedule_connect(now, delay);
        }
    }

    fn schedule_connect(&mut self, now: Instant, delay: Duration) {
        let id = self.next_conn;
        self.next_conn += 1;
        self.connecting += 1;
        if delay.is_zero() {
            self.actions.push_back(Action::Connect(id));
        } else {
            self.timers.push(now + delay, Timer::Connect(id));
        }
    }

    /// True when queued work cannot be sent because no connection can be established.
    fn failing_fast(&self, now: Instant) -> bool {
        let Some(o) = &self.outage else { return false };
        self.active == 0
            && (o.error.is_auth() || now >= o.since + self.cfg.reconnect.unavailable_after)
    }

    // ----- closing -------------------------------------------------------------------------

    fn closing_due(&self, now: Instant) -> bool {
        self.closing.is_some_and(|deadline| now >= deadline)
    }

    /// Nothing accepted is waiting for an outcome, and nothing more will be accepted.
    fn is_idle(&self) -> bool {
        self.intake_closed && self.ready.is_empty() && self.delayed.is_empty() && self.on_wire == 0
    }

    fn fail_everything(&mut self, err: SendError) {
        let mut jobs: Vec<Job<R>> = self.ready.drain(..).collect();
        jobs.extend(self.delayed.drain().map(|Reverse(d)| d.job));
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            if let Some(conn) = self.conns.get_mut(&id) {
                jobs.extend(conn.window.drain().into_iter().map(|s| s.item));
            }
            self.place(id);
        }
        self.on_wire = 0;
        for job in jobs {
            self.complete(job, Err(err.clone()));
        }
    }

    fn push_event(&mut self, event: Event) {
        self.actions.push_back(Action::Event(event));
    }
}
