//! A test bench for the pool machine: a clock, jobs numbered from 0, and a record of every
//! action — what each connection has been sent and not answered *as the server counts it*,
//! completions per job, connects and closes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Action, ConnId, Job, Pool};
use crate::error::{ConnectError, SendError};
use crate::inbound::{Ack, Control, Inbound, Nack, NackCode};
use crate::xmpp::completion::Completion;
use crate::xmpp::config::{Config, Credentials};
use crate::xmpp::events::Event;
use crate::xmpp::outbound::Stanza;
use crate::xmpp::stats::Stats;

/// The test configuration: 2 connections, window 3, short clocks.
pub fn config() -> Config {
    let mut cfg = Config::new(Credentials::new("123", "key"));
    cfg.connections = 2;
    cfg.window = 3;
    cfg.ack_timeout = Duration::from_secs(60);
    cfg.ping_interval = Duration::from_secs(20);
    cfg.close_timeout = Duration::from_secs(10);
    cfg
}

pub struct Harness {
    pub pool: Pool<u64>,
    pub now: Instant,
    start: Instant,
    next_job: u64,
    /// Connects asked for and not answered yet.
    pub connects: Vec<ConnId>,
    /// Connections the pool holds (connected and not closed by either side).
    pub live: BTreeSet<ConnId>,
    /// Per connection: message ids written and not answered, as the server sees them.
    pub pending: BTreeMap<ConnId, BTreeSet<String>>,
    /// Every write per connection, pings included, in order.
    pub written: HashMap<ConnId, Vec<String>>,
    /// Completions per job.
    pub done: BTreeMap<u64, Vec<Completion>>,
    pub closed_by_pool: Vec<ConnId>,
    pub events: Vec<Event>,
}

impl Harness {
    pub fn new(cfg: Config) -> Self {
        let now = Instant::now();
        let pool = Pool::new(Arc::new(cfg), Arc::new(Stats::default()), 7, now);
        let mut h = Harness {
            pool,
            now,
            start: now,
            next_job: 0,
            connects: Vec::new(),
            live: BTreeSet::new(),
            pending: BTreeMap::new(),
            written: HashMap::new(),
            done: BTreeMap::new(),
            closed_by_pool: Vec::new(),
            events: Vec::new(),
        };
        h.drain_actions();
        h
    }

    /// A pool with every initial connection established.
    pub fn connected(cfg: Config) -> Self {
        let mut h = Harness::new(cfg);
        while let Some(conn) = h.connects.first().copied() {
            h.connect(conn);
        }
        h
    }

    pub fn drain_actions(&mut self) {
        while let Some(action) = self.pool.poll_action() {
            match action {
                Action::Connect(conn) => self.connects.push(conn),
                Action::Write(conn, bytes) => {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    assert!(
                        self.live.contains(&conn),
                        "write on {conn}, not live: {text}"
                    );
                    if !text.starts_with("<iq") {
                        let fresh = self.pending.entry(conn).or_default().insert(text.clone());
                        assert!(fresh, "{text} written twice on connection {conn}");
                    }
                    self.written.entry(conn).or_default().push(text);
                }
                Action::Close(conn) => {
                    assert!(self.live.remove(&conn), "close of {conn}, not live");
                    self.pending.remove(&conn);
                    self.closed_by_pool.push(conn);
                }
                Action::Complete(job, completion) => {
                    self.done.entry(job).or_default().push(completion)
                }
                Action::Event(event) => self.events.push(event),
            }
        }
    }

    /// Time since the harness started.
    pub fn elapsed(&self) -> Duration {
        self.now.duration_since(self.start)
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.tick_with(|_| None);
    }

    /// Runs `on_tick` at the current time with this byte clock.
    pub fn tick_with(&mut self, last_read: impl Fn(ConnId) -> Option<Instant>) {
        let now = self.now;
        self.pool.on_tick(now, last_read);
        self.drain_actions();
        if let Some(next) = self.pool.next_deadline() {
            assert!(next > now, "a timer due at {now:?} did not fire");
        }
    }

    /// Submits a job; its stanza (and id) is `m<n>`.
    pub fn submit(&mut self) -> u64 {
        self.submit_to("tok")
    }

    pub fn submit_to(&mut self, target: &str) -> u64 {
        let n = self.next_job;
        self.next_job += 1;
        let id = format!("m{n}");
        let job = Job {
            id: Arc::from(id.as_str()),
            target: Arc::from(target),
            stanza: Stanza::from(id.as_bytes()),
            attempts: 0,
            submitted_at: self.now,
            reply: n,
        };
        self.pool.on_job(self.now, job);
        self.drain_actions();
        n
    }

    pub fn connect(&mut self, conn: ConnId) {
        self.connects.retain(|c| *c != conn);
        self.live.insert(conn);
        self.pool
            .on_connected(self.now, conn, format!("123@gcm.googleapis.com/{conn}"));
        self.drain_actions();
    }

    pub fn fail_connect(&mut self, conn: ConnId, error: ConnectError) {
        self.connects.retain(|c| *c != conn);
        self.pool.on_connect_failed(self.now, conn, error);
        self.drain_actions();
    }

    /// The server closes (or the network cuts) `conn`.
    pub fn server_closes(&mut self, conn: ConnId) {
        self.live.remove(&conn);
        self.pending.remove(&conn);
        self.pool.on_closed(self.now, conn, "gone".into());
        self.drain_actions();
    }

    /// The server answers `id` on `conn`.
    pub fn answer(&mut self, conn: ConnId, id: &str, inbound: Inbound) {
        if let Some(p) = self.pending.get_mut(&conn) {
            p.remove(id);
        }
        self.pool.on_inbound(self.now, conn, inbound);
        self.drain_actions();
    }

    pub fn ack(&mut self, conn: ConnId, id: &str) {
        let ack = Inbound::Ack(Ack {
            message_id: id.into(),
            from: None,
            registration_id: None,
        });
        self.answer(conn, id, ack);
    }

    pub fn nack(&mut self, conn: ConnId, id: &str, code: NackCode) {
        let nack = Inbound::Nack(Nack {
            message_id: Some(id.into()),
            from: None,
            code,
            description: None,
        });
        self.answer(conn, id, nack);
    }

    pub fn drain(&mut self, conn: ConnId) {
        self.pool.on_inbound(
            self.now,
            conn,
            Inbound::Control(Control::ConnectionDraining),
        );
        self.drain_actions();
    }

    /// Acks everything pending on every live connection.
    pub fn ack_all(&mut self) {
        let pending: Vec<(ConnId, String)> = self
            .pending
            .iter()
            .flat_map(|(c, ids)| ids.iter().map(move |id| (*c, id.clone())))
            .collect();
        for (conn, id) in pending {
            self.ack(conn, &id);
        }
    }

    /// Where `m<job>` is pending now.
    pub fn pending_on(&self, job: u64) -> Vec<ConnId> {
        let id = format!("m{job}");
        let mut on: Vec<ConnId> = self
            .pending
            .iter()
            .filter(|(_, ids)| ids.contains(&id))
            .map(|(c, _)| *c)
            .collect();
        on.sort();
        on
    }

    /// The one outcome of `job`.
    pub fn outcome(&self, job: u64) -> &Result<Ack, SendError> {
        let done = &self.done[&job];
        assert_eq!(done.len(), 1, "job {job} completed {} times", done.len());
        &done[0].result
    }
}
