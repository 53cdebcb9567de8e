//! The one task that owns all sending state: connections (active and draining) with their
//! in-flight windows, the ready queue, delayed retries, reconnect backoff and shutdown.
//! Every accepted [`Job`] ends in exactly one completion of its reply channel.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::{Instant, sleep_until};
use tracing::{debug, info, warn};

use crate::backoff;
use crate::config::Config;
use crate::connection::{self, ConnEvent, Connector, Link, Outbound};
use crate::error::{ConnectError, SendError};
use crate::events::{ConnId, Event};
use crate::response::{Ack, Control, Inbound, Nack, NackCode, StanzaError};
use crate::stats::Stats;
use crate::window::InFlight;

/// How often timeouts, liveness and due retries are checked.
const TICK: Duration = Duration::from_millis(200);
/// Connection events handled per wake-up before the loop looks at other work.
const EVENT_BATCH: usize = 256;
/// How long a graceful close waits for the server's `</stream:stream>`.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The outcome a caller waits for.
pub(crate) type Outcome = Result<Ack, SendError>;

/// What the driver reports for a finished job.
#[derive(Debug)]
pub struct Completion {
    /// The ack, or why the message failed.
    pub result: Result<Ack, SendError>,
    /// How many times the message was written to the wire (0 if it never was).
    pub attempts: u32,
}

/// One accepted message on its way to an outcome.
pub(crate) struct Job {
    pub id: Arc<str>,
    pub target: Arc<str>,
    /// The complete, escaped `<message>` stanza, encoded once at submission.
    pub stanza: Bytes,
    /// Sends so far.
    pub attempts: u32,
    pub submitted_at: Instant,
    pub reply: oneshot::Sender<Completion>,
}

/// Requests from client handles.
pub(crate) enum Command {
    Close { done: oneshot::Sender<()> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    Active,
    Draining { since: Instant },
}

struct Conn {
    state: ConnState,
    window: InFlight<Job>,
    link: Link,
    last_ping: Instant,
}

/// A retry waiting for its backoff to elapse; ordered by due time, then arrival.
struct Delayed {
    due: Instant,
    seq: u64,
    job: Job,
}

impl PartialEq for Delayed {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Delayed {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(o.due, o.seq))
    }
}

/// Channels a driver is built from.
pub(crate) struct Wiring {
    pub intake: mpsc::Receiver<Job>,
    pub commands: mpsc::UnboundedReceiver<Command>,
    pub conn_tx: mpsc::UnboundedSender<ConnEvent>,
    pub conn_rx: mpsc::UnboundedReceiver<ConnEvent>,
    pub app: broadcast::Sender<Event>,
    pub stats: Arc<Stats>,
}

struct Closing {
    deadline: Instant,
    done: Vec<oneshot::Sender<()>>,
}

/// Why no connection is usable, and since when.
struct Outage {
    since: Instant,
    error: ConnectError,
}

pub(crate) struct Driver {
    cfg: Arc<Config>,
    connector: Arc<dyn Connector>,
    w: Wiring,
    conns: HashMap<ConnId, Conn>,
    connecting: usize,
    next_conn: ConnId,
    ready: VecDeque<Job>,
    delayed: BinaryHeap<Reverse<Delayed>>,
    delayed_seq: u64,
    /// Targets cooling down after a rate-limit nack.
    cooldown: HashMap<Arc<str>, Instant>,
    intake_open: bool,
    commands_open: bool,
    connect_failures: u32,
    /// Connections lost or draining that a new connection has not replaced yet.
    replacements_owed: usize,
    outage: Option<Outage>,
    closing: Option<Closing>,
}

impl Driver {
    /// A driver, owning its first connection (id 1) when the caller already established it.
    pub fn new(
        cfg: Arc<Config>,
        connector: Arc<dyn Connector>,
        w: Wiring,
        first: Option<Link>,
    ) -> Self {
        let mut d = Driver {
            cfg,
            connector,
            w,
            conns: HashMap::new(),
            connecting: 0,
            next_conn: 1,
            ready: VecDeque::new(),
            delayed: BinaryHeap::new(),
            delayed_seq: 0,
            cooldown: HashMap::new(),
            intake_open: true,
            commands_open: true,
            connect_failures: 0,
            replacements_owed: 0,
            outage: None,
            closing: None,
        };
        if let Some(link) = first {
            d.next_conn = 2;
            d.add_conn(1, link);
        }
        d
    }

    /// Runs until the client is closed (explicitly or by dropping every handle) and every
    /// accepted message has its outcome.
    pub async fn run(mut self) {
        self.ensure_connections(Duration::ZERO);
        loop {
            self.pump();
            if self.is_finished() {
                break;
            }
            let wake = self.next_wakeup();
            let take_intake = self.intake_open && (self.failing_fast() || self.wants_work());
            tokio::select! {
                biased;
                Some(ev) = self.w.conn_rx.recv() => self.on_conn_events(ev),
                cmd = self.w.commands.recv(), if self.commands_open => match cmd {
                    Some(Command::Close { done }) => self.begin_close(Some(done)),
                    None => {
                        // Every client handle is gone: finish what was accepted, then stop.
                        self.commands_open = false;
                        self.begin_close(None);
                    }
                },
                job = self.w.intake.recv(), if take_intake => match job {
                    Some(job) => self.accept(job),
                    None => self.intake_open = false,
                },
                () = sleep_until(wake) => self.on_tick(),
            }
        }
        self.shutdown().await;
    }

    // ----- intake and dispatch -------------------------------------------------------------

    fn accept(&mut self, job: Job) {
        self.ready.push_back(job);
        // Take what is already queued in one go, up to the free window space.
        while self.ready.len() < self.room().max(1) {
            match self.w.intake.try_recv() {
                Ok(job) => self.ready.push_back(job),
                Err(_) => break,
            }
        }
    }

    fn room(&self) -> usize {
        self.conns
            .values()
            .filter(|c| c.state == ConnState::Active)
            .map(|c| c.window.room())
            .sum()
    }

    fn wants_work(&self) -> bool {
        self.ready.is_empty() && self.room() > 0
    }

    /// Moves ready jobs onto connections with window room.
    fn pump(&mut self) {
        if self.failing_fast() {
            let error = self.outage.as_ref().map(|o| o.error.clone());
            while let Some(job) = self.ready.pop_front() {
                let err = error
                    .clone()
                    .map_or(SendError::Closed, SendError::Unavailable);
                self.complete(job, Err(err));
            }
            return;
        }
        let now = Instant::now();
        while let Some(job) = self.ready.pop_front() {
            if let Some(&until) = self.cooldown.get(&job.target) {
                if until > now {
                    self.delay(job, until);
                    continue;
                }
                self.cooldown.remove(&job.target);
            }
            let Some(conn_id) = self.pick_conn() else {
                self.ready.push_front(job);
                break;
            };
            self.transmit(conn_id, job, now);
        }
    }

    /// The active connection with the most free window space.
    fn pick_conn(&self) -> Option<ConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| c.state == ConnState::Active && c.window.room() > 0)
            .max_by_key(|(id, c)| (c.window.room(), Reverse(**id)))
            .map(|(id, _)| *id)
    }

    fn transmit(&mut self, conn_id: ConnId, mut job: Job, now: Instant) {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            self.ready.push_front(job);
            return;
        };
        job.attempts += 1;
        let stanza = job.stanza.clone();
        let id = job.id.clone();
        match conn.window.insert(id, job, now) {
            Ok(()) => {
                // A dead writer reports Closed; the job is requeued from the window then.
                conn.link.send(stanza);
            }
            Err((_, job)) => {
                let err = SendError::Invalid(crate::error::ValidationError::InvalidField {
                    field: "message_id".into(),
                    reason: format!("`{}` is already in flight", job.id),
                });
                self.complete(job, Err(err));
            }
        }
    }

    // ----- outcomes ------------------------------------------------------------------------

    fn complete(&mut self, job: Job, outcome: Outcome) {
        match &outcome {
            Ok(_) => self.w.stats.acked(),
            Err(SendError::Nacked(n)) => self.w.stats.nacked(n.code.as_str()),
            Err(_) => self.w.stats.failed(),
        }
        // The caller may have dropped its PendingAck; the send still counted.
        let _ = job.reply.send(Completion {
            result: outcome,
            attempts: job.attempts,
        });
    }

    /// Sends `job` again after `delay`, unless its attempts or deadline are used up.
    fn retry(&mut self, job: Job, cause: SendError, delay: Duration) {
        let now = Instant::now();
        let out_of_time = self
            .cfg
            .retry
            .deadline
            .is_some_and(|d| now + delay > job.submitted_at + d);
        if job.attempts >= self.cfg.retry.max_attempts || out_of_time || self.closing_due(now) {
            self.complete(job, Err(cause));
            return;
        }
        self.w.stats.retried();
        if delay.is_zero() {
            self.ready.push_front(job);
        } else {
            self.delay(job, now + delay);
        }
    }

    fn delay(&mut self, job: Job, due: Instant) {
        self.delayed_seq += 1;
        self.delayed.push(Reverse(Delayed {
            due,
            seq: self.delayed_seq,
            job,
        }));
    }

    fn on_ack(&mut self, conn_id: ConnId, ack: Ack) {
        match self.take_in_flight(conn_id, &ack.message_id) {
            Some(job) => self.complete(job, Ok(ack)),
            None => debug!(conn = conn_id, id = %ack.message_id, "ack for a message not in flight"),
        }
    }

    fn on_nack(&mut self, conn_id: ConnId, nack: Nack) {
        let Some(id) = nack.message_id.as_deref() else {
            warn!(conn = conn_id, code = %nack.code, "nack without message_id cannot be correlated");
            return;
        };
        let Some(job) = self.take_in_flight(conn_id, id) else {
            debug!(conn = conn_id, id, "nack for a message not in flight");
            return;
        };
        let code = nack.code.clone();
        let retry = &self.cfg.retry;
        match code {
            NackCode::ConnectionDraining => {
                self.mark_draining(conn_id);
                self.retry(job, SendError::Nacked(nack), Duration::ZERO);
            }
            c if c.is_rate_limit() => {
                let d = backoff::jittered(
                    retry.rate_limit_backoff,
                    retry.max_rate_limit_backoff,
                    job.attempts,
                );
                self.cooldown.insert(job.target.clone(), Instant::now() + d);
                self.retry(job, SendError::Nacked(nack), d);
            }
            c if c.is_retryable() => {
                let d = backoff::jittered(retry.initial_backoff, retry.max_backoff, job.attempts);
                self.retry(job, SendError::Nacked(nack), d);
            }
            _ => self.complete(job, Err(SendError::Nacked(nack))),
        }
    }

    fn on_stanza_error(&mut self, conn_id: ConnId, err: StanzaError) {
        let job = err
            .id
            .as_deref()
            .and_then(|id| self.take_in_flight(conn_id, id));
        match job {
            Some(job) => self.complete(job, Err(SendError::StanzaError(err))),
            // Uncorrelatable: the ack timeout frees the slot.
            None => warn!(conn = conn_id, error = %err, "stanza error without a known id"),
        }
    }

    fn take_in_flight(&mut self, conn_id: ConnId, id: &str) -> Option<Job> {
        let conn = self.conns.get_mut(&conn_id)?;
        conn.window.remove(id).map(|s| s.item)
    }

    // ----- connections ---------------------------------------------------------------------

    fn add_conn(&mut self, id: ConnId, mut link: Link) {
        info!(conn = id, jid = %link.jid, "connected");
        let reconnect = self.replacements_owed > 0;
        if reconnect {
            self.replacements_owed -= 1;
            self.w.stats.reconnected();
        }
        let _ = self.w.app.send(Event::Connected {
            conn: id,
            jid: link.jid.clone(),
            reconnect,
        });
        // Registered before the reader reports anything (this task handles its reports).
        link.release_reader();
        self.conns.insert(
            id,
            Conn {
                state: ConnState::Active,
                window: InFlight::new(self.cfg.window),
                link,
                last_ping: Instant::now(),
            },
        );
        self.w.stats.set_connections(self.conns.len());
    }

    fn active(&self) -> usize {
        self.conns
            .values()
            .filter(|c| c.state == ConnState::Active)
            .count()
    }

    /// Opens connections until active + connecting reaches the configured count, with at most
    /// twice that many open or opening at once (draining ones included), so a server that
    /// drains connections without closing them cannot make us open more and more.
    fn ensure_connections(&mut self, delay: Duration) {
        if self.closing.is_some() && self.is_idle() {
            return;
        }
        while self.active() + self.connecting < self.cfg.connections
            && self.conns.len() + self.connecting < 2 * self.cfg.connections
        {
            self.spawn_connect(delay);
        }
    }

    fn spawn_connect(&mut self, delay: Duration) {
        let id = self.next_conn;
        self.next_conn += 1;
        self.connecting += 1;
        connection::spawn_connect(
            id,
            delay,
            self.cfg.clone(),
            self.connector.clone(),
            self.w.conn_tx.clone(),
            self.w.app.clone(),
        );
    }

    fn mark_draining(&mut self, conn_id: ConnId) {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        if conn.state != ConnState::Active {
            return;
        }
        info!(conn = conn_id, "connection draining");
        conn.state = ConnState::Draining {
            since: Instant::now(),
        };
        let _ = self.w.app.send(Event::Draining { conn: conn_id });
        self.replacements_owed += 1;
        self.ensure_connections(Duration::ZERO);
    }

    /// Handles `first` and whatever else is already queued (bounded), so a burst of acks
    /// costs one wake-up rather than one per ack.
    fn on_conn_events(&mut self, first: ConnEvent) {
        self.on_conn_event(first);
        for _ in 0..EVENT_BATCH {
            match self.w.conn_rx.try_recv() {
                Ok(ev) => self.on_conn_event(ev),
                Err(_) => break,
            }
        }
    }

    fn on_conn_event(&mut self, ev: ConnEvent) {
        match ev {
            ConnEvent::Established { conn, link } => {
                self.connecting -= 1;
                self.connect_failures = 0;
                self.outage = None;
                self.add_conn(conn, link);
            }
            ConnEvent::ConnectFailed { conn, error } => {
                self.connecting -= 1;
                self.on_connect_failed(conn, error);
            }
            ConnEvent::Inbound { conn, inbound } => match inbound {
                Inbound::Ack(a) => self.on_ack(conn, a),
                Inbound::Nack(n) => self.on_nack(conn, n),
                Inbound::StanzaError(e) => self.on_stanza_error(conn, e),
                Inbound::Control(Control::ConnectionDraining) => self.mark_draining(conn),
                other => debug!(conn, ?other, "ignoring inbound"),
            },
            ConnEvent::Closed { conn, reason } => self.on_closed(conn, reason),
        }
    }

    fn on_connect_failed(&mut self, conn: ConnId, error: ConnectError) {
        self.connect_failures += 1;
        let policy = &self.cfg.reconnect;
        let retry_in = if error.is_auth() {
            policy.auth_failure_delay
        } else {
            backoff::jittered(
                policy.initial_backoff,
                policy.max_backoff,
                self.connect_failures,
            )
        };
        warn!(conn, error = %error, ?retry_in, "connect failed");
        let event = if error.is_auth() {
            Event::AuthFailed {
                error: error.clone(),
                retry_in,
            }
        } else {
            Event::ConnectFailed {
                error: error.clone(),
                retry_in,
            }
        };
        let _ = self.w.app.send(event);
        if self.active() == 0 {
            let since = self.outage.as_ref().map_or_else(Instant::now, |o| o.since);
            self.outage = Some(Outage { since, error });
        }
        if self.closing.is_none() && self.active() + self.connecting < self.cfg.connections {
            self.spawn_connect(retry_in);
        }
    }

    fn on_closed(&mut self, conn_id: ConnId, reason: String) {
        let Some(mut conn) = self.conns.remove(&conn_id) else {
            return;
        };
        if conn.state == ConnState::Active {
            self.replacements_owed += 1;
        }
        self.w.stats.set_connections(self.conns.len());
        let jobs = conn.window.drain();
        info!(conn = conn_id, %reason, in_flight = jobs.len(), "connection ended");
        let _ = self.w.app.send(Event::Lost {
            conn: conn_id,
            reason: reason.clone(),
            in_flight: jobs.len(),
        });
        // Oldest first at the front of the queue.
        for job in jobs.into_iter().rev() {
            self.retry(
                job,
                SendError::ConnectionLost(reason.clone()),
                Duration::ZERO,
            );
        }
        let jitter = self
            .cfg
            .reconnect
            .reconnect_jitter
            .mul_f64(rand::random_range(0.0..1.0));
        self.ensure_connections(jitter);
    }

    /// True when queued work cannot be sent because no connection can be established.
    fn failing_fast(&self) -> bool {
        let Some(o) = &self.outage else { return false };
        self.active() == 0
            && (o.error.is_auth() || o.since.elapsed() >= self.cfg.reconnect.unavailable_after)
    }

    // ----- timers --------------------------------------------------------------------------

    fn next_wakeup(&self) -> Instant {
        let tick = Instant::now() + TICK;
        self.delayed
            .peek()
            .map_or(tick, |Reverse(d)| d.due.min(tick))
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        while self.delayed.peek().is_some_and(|Reverse(d)| d.due <= now) {
            if let Some(Reverse(d)) = self.delayed.pop() {
                self.ready.push_back(d.job);
            }
        }
        if self.failing_fast() {
            // Retries waiting out a backoff cannot succeed either.
            while let Some(Reverse(d)) = self.delayed.pop() {
                self.ready.push_back(d.job);
            }
        }
        self.check_ack_timeouts(now);
        self.check_liveness(now);
        if let Some(c) = &self.closing
            && now >= c.deadline
        {
            self.fail_everything(SendError::Closed);
        }
    }

    fn check_ack_timeouts(&mut self, now: Instant) {
        let timeout = self.cfg.ack_timeout;
        let Some(cutoff) = now.checked_sub(timeout) else {
            return;
        };
        let overdue: Vec<Job> = self
            .conns
            .values_mut()
            .flat_map(|c| c.window.take_sent_before(cutoff))
            .collect();
        for job in overdue {
            warn!(id = %job.id, ?timeout, "no ack or nack in time");
            self.retry(job, SendError::Timeout(timeout), Duration::ZERO);
        }
    }

    fn check_liveness(&mut self, now: Instant) {
        let interval = self.cfg.ping_interval;
        // Draining connections the server has not closed within the ack timeout (everything
        // sent on them has timed out by then) are closed by us.
        let drain_grace = self.cfg.ack_timeout;
        let mut dead = Vec::new();
        let mut drained = Vec::new();
        for (id, conn) in &mut self.conns {
            let idle = conn.link.activity.idle_for();
            if let ConnState::Draining { since } = conn.state
                && now.duration_since(since) >= drain_grace
            {
                let _ = conn.link.tx.send(Outbound::Close);
                drained.push(*id);
            } else if idle >= interval * 2 {
                dead.push(*id);
            } else if idle >= interval && now.duration_since(conn.last_ping) >= interval {
                conn.last_ping = now;
                let mut buf = Vec::new();
                crate::wire::write::iq_ping(&mut buf, &format!("ping-{id}"), &self.cfg.stream_to);
                conn.link.send(buf.into());
            }
        }
        for id in dead {
            self.on_closed(
                id,
                format!("no data from the server for {:?}", interval * 2),
            );
        }
        for id in drained {
            self.on_closed(
                id,
                format!("the server did not close the draining connection within {drain_grace:?}"),
            );
        }
    }

    // ----- shutdown ------------------------------------------------------------------------

    fn begin_close(&mut self, done: Option<oneshot::Sender<()>>) {
        self.w.intake.close();
        let deadline = Instant::now() + self.cfg.close_timeout;
        let closing = self.closing.get_or_insert(Closing {
            deadline,
            done: Vec::new(),
        });
        closing.done.extend(done);
    }

    fn closing_due(&self, now: Instant) -> bool {
        self.closing.as_ref().is_some_and(|c| now >= c.deadline)
    }

    /// No more submissions can arrive: every handle is gone, or the intake was closed and
    /// what it had buffered has been taken.
    fn intake_drained(&self) -> bool {
        !self.intake_open || (self.closing.is_some() && self.w.intake.is_empty())
    }

    /// Nothing accepted is still waiting for an outcome.
    fn is_idle(&self) -> bool {
        self.intake_drained()
            && self.ready.is_empty()
            && self.delayed.is_empty()
            && self.conns.values().all(|c| c.window.is_empty())
    }

    fn is_finished(&self) -> bool {
        self.closing.is_some() && self.is_idle()
    }

    fn fail_everything(&mut self, err: SendError) {
        let mut jobs: Vec<Job> = self.ready.drain(..).collect();
        jobs.extend(self.delayed.drain().map(|Reverse(d)| d.job));
        for conn in self.conns.values_mut() {
            jobs.extend(conn.window.drain());
        }
        while let Ok(job) = self.w.intake.try_recv() {
            jobs.push(job);
        }
        for job in jobs {
            self.complete(job, Err(err.clone()));
        }
    }

    /// Sends `</stream:stream>` on every connection and waits briefly for the server's.
    async fn shutdown(mut self) {
        for conn in self.conns.values() {
            let _ = conn.link.tx.send(Outbound::Close);
        }
        let grace = sleep_until(Instant::now() + CLOSE_GRACE);
        tokio::pin!(grace);
        while !self.conns.is_empty() {
            tokio::select! {
                ev = self.w.conn_rx.recv() => match ev {
                    Some(ConnEvent::Closed { conn, .. }) => { self.conns.remove(&conn); }
                    Some(ConnEvent::Established { .. } | ConnEvent::ConnectFailed { .. }) => {}
                    Some(ConnEvent::Inbound { .. }) => {}
                    None => break,
                },
                () = &mut grace => break,
            }
        }
        self.w.stats.set_connections(0);
        if let Some(c) = self.closing.take() {
            for done in c.done {
                let _ = done.send(());
            }
        }
    }
}
