//! The async shell around the [`Pool`] machine: it owns the channels, the connections' tasks
//! and one timer, feeds everything that happens into the pool with the time, and carries out
//! the pool's actions. No policy lives here.

use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use super::completion::{Outbox, Reply};
use super::config::Config;
use super::connector::{self, Connector};
use super::events::{ConnId, Event};
use super::io::{ConnEvent, Link, Routes};
use super::pool::{Action, Job, Pool};
use crate::error::ConnectError;

/// Connection events handled per wake-up before the loop looks at other work.
const EVENT_BATCH: usize = 256;
/// How long shutdown waits for closing connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Requests from client handles.
pub(crate) enum Command {
    Close { done: oneshot::Sender<()> },
}

/// How the start of the pool is going, for [`Client::connect`](crate::Client::connect).
#[derive(Debug, Clone)]
pub(crate) enum Startup {
    /// No connection yet; the last failure, if any.
    Waiting(Option<ConnectError>),
    /// The first connection is up with this JID.
    Up(String),
    /// A failure that retrying cannot fix, before any connection was up.
    Refused(ConnectError),
}

/// Channels a shell is built from.
pub(crate) struct Wiring {
    pub intake: mpsc::Receiver<Job<Reply>>,
    pub commands: mpsc::UnboundedReceiver<Command>,
    pub app: broadcast::Sender<Event>,
    pub routes: Routes,
    pub conn_rx: mpsc::Receiver<ConnEvent>,
    pub startup: watch::Sender<Startup>,
}

pub(crate) struct Shell {
    pool: Pool<Reply>,
    cfg: Arc<Config>,
    connector: Arc<dyn Connector>,
    w: Wiring,
    links: FxHashMap<ConnId, Link>,
    /// Connections being closed, for shutdown to wait on.
    closing: Vec<JoinHandle<()>>,
    intake_open: bool,
    commands_open: bool,
    close_waiters: Vec<oneshot::Sender<()>>,
    /// Outcomes for completion queues, sent before the shell waits again.
    outbox: Outbox,
}

impl Shell {
    pub fn new(cfg: Arc<Config>, connector: Arc<dyn Connector>, w: Wiring) -> Self {
        let pool = Pool::new(
            cfg.clone(),
            w.routes.stats.clone(),
            rand::random(),
            Instant::now(),
        );
        Shell {
            pool,
            cfg,
            connector,
            w,
            links: FxHashMap::default(),
            closing: Vec::new(),
            intake_open: true,
            commands_open: true,
            close_waiters: Vec::new(),
            outbox: Outbox::default(),
        }
    }

    /// Runs until the client is closed (explicitly or by dropping every handle) and every
    /// accepted message has its outcome.
    pub async fn run(mut self) {
        let timer = sleep_until(Instant::now());
        tokio::pin!(timer);
        loop {
            // Timers first, whatever the rate of everything else.
            let now = Instant::now();
            if self.pool.next_deadline().is_some_and(|due| due <= now) {
                let links = &self.links;
                self.pool
                    .on_tick(now, |conn| links.get(&conn).map(Link::last_read));
            }
            self.execute();
            if self.pool.is_finished() {
                break;
            }
            let deadline = self.pool.next_deadline();
            if let Some(due) = deadline
                && due != timer.deadline()
            {
                timer.as_mut().reset(due);
            }
            let take_jobs = self.intake_open && self.pool.wants_jobs(now);
            self.outbox.flush();
            tokio::select! {
                () = &mut timer, if deadline.is_some() => {}
                Some(ev) = self.w.conn_rx.recv() => self.on_conn_events(ev),
                job = self.w.intake.recv(), if take_jobs => match job {
                    Some(job) => self.accept(job),
                    None => {
                        self.intake_open = false;
                        self.pool.on_intake_closed();
                    }
                },
                cmd = self.w.commands.recv(), if self.commands_open => match cmd {
                    Some(Command::Close { done }) => self.begin_close(Some(done)),
                    None => {
                        // Every client handle is gone: finish what was accepted, then stop.
                        self.commands_open = false;
                        self.begin_close(None);
                    }
                },
            }
        }
        self.shutdown().await;
    }

    /// Hands `job` and whatever else is queued to the pool, as long as it wants them.
    fn accept(&mut self, job: Job<Reply>) {
        let now = Instant::now();
        self.pool.on_job(now, job);
        while self.pool.wants_jobs(now) {
            match self.w.intake.try_recv() {
                Ok(job) => self.pool.on_job(now, job),
                Err(_) => break,
            }
        }
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
        let now = Instant::now();
        match ev {
            ConnEvent::Established { conn, link } => {
                let jid = link.jid.clone();
                self.links.insert(conn, link);
                self.pool.on_connected(now, conn, jid);
                // Registered: the reader may report now.
                if let Some(link) = self.links.get_mut(&conn) {
                    link.release_reader();
                }
            }
            ConnEvent::ConnectFailed { conn, error } => {
                self.pool.on_connect_failed(now, conn, error)
            }
            ConnEvent::Inbound { conn, inbound } => self.pool.on_inbound(now, conn, inbound),
            ConnEvent::Paused { conn } => self.pool.on_paused(now, conn),
            ConnEvent::Resumed { conn } => self.pool.on_resumed(now, conn),
            ConnEvent::Closed { conn, reason } => {
                self.links.remove(&conn);
                self.pool.on_closed(now, conn, reason);
            }
        }
        self.execute();
    }

    /// Carries out what the pool asked for.
    fn execute(&mut self) {
        while let Some(action) = self.pool.poll_action() {
            match action {
                Action::Connect(conn) => connector::spawn_connect(
                    conn,
                    self.cfg.clone(),
                    self.connector.clone(),
                    self.w.routes.clone(),
                ),
                Action::Write(conn, stanza) => {
                    if let Some(link) = self.links.get(&conn) {
                        link.send(stanza);
                    }
                }
                Action::Close(conn) => {
                    if let Some(link) = self.links.remove(&conn) {
                        self.closing.retain(|task| !task.is_finished());
                        self.closing.push(link.close());
                    }
                }
                Action::Complete(reply, completion) => self.outbox.complete(reply, completion),
                Action::Event(event) => {
                    self.track_startup(&event);
                    let _ = self.w.app.send(event);
                }
            }
        }
    }

    fn track_startup(&self, event: &Event) {
        self.w.startup.send_if_modified(|startup| {
            if !matches!(startup, Startup::Waiting(_)) {
                return false;
            }
            *startup = match event {
                Event::Connected { jid, .. } => Startup::Up(jid.clone()),
                Event::ConnectFailed { error, .. } | Event::AuthFailed { error, .. } => {
                    if error.is_retryable() {
                        Startup::Waiting(Some(error.clone()))
                    } else {
                        Startup::Refused(error.clone())
                    }
                }
                _ => return false,
            };
            true
        });
    }

    fn begin_close(&mut self, done: Option<oneshot::Sender<()>>) {
        self.w.intake.close();
        self.pool.close(Instant::now());
        self.close_waiters.extend(done);
    }

    /// Sends `</stream:stream>` on every connection and waits briefly for them to end.
    async fn shutdown(mut self) {
        self.pool.shutdown();
        self.execute();
        self.outbox.flush();
        let closing = futures_join(std::mem::take(&mut self.closing));
        tokio::pin!(closing);
        let grace = sleep_until(Instant::now() + SHUTDOWN_GRACE);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                () = &mut closing => break,
                () = &mut grace => break,
                // Readers of closing connections may still report: keep them moving.
                Some(_) = self.w.conn_rx.recv() => {}
            }
        }
        self.w.routes.stats.set_connections(0);
        for done in self.close_waiters {
            let _ = done.send(());
        }
    }
}

/// Waits for every task.
async fn futures_join(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}
