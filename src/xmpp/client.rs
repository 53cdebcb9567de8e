//! The [`Client`] facade: submit messages, await their [`PendingAck`], read the counters,
//! close. Its [`Incoming`] half carries upstream messages and receipts.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

use super::completion::{Completion, CompletionQueue, Reply};
use super::config::Config;
use super::connector::{Connector, TlsConnector};
use super::events::{Event, Events};
use super::incoming::Incoming;
use super::io::Routes;
use super::outbound::Stanza;
use super::pool::Job;
use super::shell::{Command, Shell, Startup, Wiring};
use super::stats::{Stats, StatsSnapshot};
use crate::error::{ConnectError, SendError};
use crate::inbound::Ack;
use crate::message::Message;
use crate::message::ValidationError;

/// Connection events queued for the shell before readers wait.
const CONN_EVENTS: usize = 1024;

thread_local! {
    /// Where [`Client::submit`] writes each stanza before copying it out.
    static STANZA: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A CCS client: a pool of XMPP connections for one sender id. Clone it freely; all clones
/// share the same connections. Dropping every clone closes the client gracefully.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    intake: mpsc::Sender<Job<Reply>>,
    commands: mpsc::UnboundedSender<Command>,
    app: broadcast::Sender<Event>,
    stats: Arc<Stats>,
    jid: OnceLock<String>,
}

impl Client {
    /// Starts the pool and waits for its first connection, retrying failures that may pass
    /// (refused or reset connections, timeouts, a server that does not speak TLS or breaks the
    /// protocol) with the reconnect backoff for up to [`Config::start_budget`], then fails
    /// with the last error (a budget of zero: the first attempt's). Fails at once
    /// on what retrying cannot fix: credentials refused ([`ConnectError::Auth`]), a
    /// certificate not accepted ([`ConnectError::Certificate`]), bad configuration.
    ///
    /// The [`Incoming`] half receives upstream messages and receipts from the first
    /// connection on; see [`Incoming`] for why it must be read (or dropped).
    pub async fn connect(cfg: Config) -> Result<(Client, Incoming), ConnectError> {
        let tls = crate::tls::client_config(&cfg.trust)?;
        Client::connect_with(cfg, Arc::new(TlsConnector { tls })).await
    }

    /// Starts the pool without waiting for a first connection: only configuration errors are
    /// returned; connect and auth failures show up as [`Event`]s, and messages fail with
    /// [`SendError::Unavailable`] while no connection can be established.
    pub fn start(cfg: Config) -> Result<(Client, Incoming), ConnectError> {
        let tls = crate::tls::client_config(&cfg.trust)?;
        let (client, incoming, _) = Client::spawn(cfg, Arc::new(TlsConnector { tls }))?;
        Ok((client, incoming))
    }

    /// [`Client::connect`] with another way of opening connections.
    pub(crate) async fn connect_with(
        cfg: Config,
        connector: Arc<dyn Connector>,
    ) -> Result<(Client, Incoming), ConnectError> {
        let budget = cfg.startup_budget();
        let (client, incoming, mut startup) = Client::spawn(cfg, connector)?;
        let deadline = Instant::now() + budget;
        let outcome = loop {
            let state = startup.borrow_and_update().clone();
            let last = match state {
                Startup::Up(jid) => break Ok(jid),
                Startup::Refused(error) => break Err(error),
                Startup::Waiting(last) => last,
            };
            // The first attempt is always waited for (each is bounded by the connect and
            // handshake timeouts); after a failure, retries only within the budget.
            let changed = match &last {
                None => Ok(startup.changed().await),
                Some(_) => tokio::time::timeout_at(deadline, startup.changed()).await,
            };
            match (changed, last) {
                (Ok(Ok(())), _) => {}
                (_, Some(error)) => break Err(error),
                (_, None) => {
                    break Err(ConnectError::Config(
                        "the client stopped while starting".into(),
                    ));
                }
            }
        };
        match outcome {
            Ok(jid) => {
                let _ = client.inner.jid.set(jid);
                Ok((client, incoming))
            }
            Err(error) => {
                client.close().await;
                Err(error)
            }
        }
    }

    fn spawn(
        cfg: Config,
        connector: Arc<dyn Connector>,
    ) -> Result<(Client, Incoming, watch::Receiver<Startup>), ConnectError> {
        cfg.validate()?;
        let cfg = Arc::new(cfg);
        let (intake_tx, intake) = mpsc::channel(cfg.queue_capacity);
        let (cmd_tx, commands) = mpsc::unbounded_channel();
        let (conn_tx, conn_rx) = mpsc::channel(CONN_EVENTS);
        let (incoming_tx, incoming_rx) = mpsc::channel(cfg.incoming_capacity);
        let (app, _) = broadcast::channel(cfg.event_capacity);
        let (startup_tx, startup_rx) = watch::channel(Startup::Waiting(None));
        let stats = Arc::new(Stats::default());
        let wiring = Wiring {
            intake,
            commands,
            app: app.clone(),
            routes: Routes {
                events: conn_tx,
                incoming: incoming_tx,
                stats: stats.clone(),
            },
            conn_rx,
            startup: startup_tx,
        };
        tokio::spawn(Shell::new(cfg, connector, wiring).run());
        let client = Client {
            inner: Arc::new(Inner {
                intake: intake_tx,
                commands: cmd_tx,
                app,
                stats,
                jid: OnceLock::new(),
            }),
        };
        Ok((client, Incoming::new(incoming_rx), startup_rx))
    }

    /// Queues `msg` and returns once it is accepted; the returned [`PendingAck`] resolves
    /// with its outcome. Waits while the queue is full (backpressure). Dropping the
    /// `PendingAck` does not cancel the send.
    pub async fn submit(&self, msg: Message) -> Result<PendingAck, SendError> {
        let (reply, rx) = oneshot::channel();
        let id = self.enqueue(&msg, Reply::Once(reply)).await?;
        Ok(PendingAck { id, rx })
    }

    /// Like [`submit`](Self::submit), with the outcome delivered to `queue` under `tag`
    /// instead of to a [`PendingAck`]: the cheaper way to keep many messages in flight.
    /// Every message accepted here gets exactly one entry in the queue's [`Completions`].
    ///
    /// [`Completions`]: crate::Completions
    pub async fn submit_to(
        &self,
        msg: Message,
        tag: u64,
        queue: &CompletionQueue,
    ) -> Result<(), SendError> {
        self.enqueue(&msg, Reply::Queued(tag, queue.clone()))
            .await
            .map(drop)
    }

    /// Encodes `msg` and queues it with `reply`; its id once accepted.
    async fn enqueue(&self, msg: &Message, reply: Reply) -> Result<Arc<str>, SendError> {
        let stanza = STANZA.with_borrow_mut(|buf| {
            buf.clear();
            msg.write_stanza(buf)
                .map_err(|e| ValidationError::InvalidField {
                    field: "payload".into(),
                    reason: e.to_string(),
                })?;
            // One allocation of the exact size; the buffer stays for the next message.
            Ok::<_, ValidationError>(Stanza::from(buf.as_slice()))
        })?;
        let id: Arc<str> = Arc::from(msg.message_id());
        let job = Job {
            id: id.clone(),
            target: Arc::from(msg.target_str()),
            stanza,
            attempts: 0,
            submitted_at: Instant::now(),
            reply,
        };
        self.inner
            .intake
            .send(job)
            .await
            .map_err(|_| SendError::Closed)?;
        self.inner.stats.submitted();
        Ok(id)
    }

    /// Sends `msg` and waits for its outcome.
    pub async fn send(&self, msg: Message) -> Result<Ack, SendError> {
        self.submit(msg).await?.await
    }

    /// Subscribes to connection lifecycle events from now on (lossy; see [`Events`]).
    pub fn events(&self) -> Events {
        Events::new(self.inner.app.subscribe())
    }

    /// The counters as of now.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// The JID bound by the first connection (empty for a client from [`Client::start`]).
    pub fn jid(&self) -> &str {
        self.inner.jid.get().map_or("", String::as_str)
    }

    /// Stops intake, waits (up to `close_timeout`) for outstanding messages, fails what
    /// remains with [`SendError::Closed`], and closes every stream. Idempotent.
    pub async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.inner.commands.send(Command::Close { done }).is_ok() {
            let _ = wait.await;
        }
    }
}

/// The outcome of one submitted message: resolves exactly once with the ack or the error.
#[must_use = "a PendingAck does nothing unless awaited; dropping it does not cancel the send"]
#[derive(Debug)]
pub struct PendingAck {
    id: Arc<str>,
    rx: oneshot::Receiver<Completion>,
}

impl PendingAck {
    /// The message id this outcome belongs to.
    pub fn message_id(&self) -> &str {
        &self.id
    }

    /// Waits for the outcome together with how many sends it took.
    pub async fn completion(self) -> Completion {
        self.rx.await.unwrap_or(Completion {
            result: Err(SendError::Closed),
            attempts: 0,
        })
    }
}

impl Future for PendingAck {
    type Output = Result<Ack, SendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|r| match r {
            Ok(c) => c.result,
            Err(_) => Err(SendError::Closed),
        })
    }
}
