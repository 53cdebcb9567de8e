//! The public facade: a cheap, cloneable handle over the driver task.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use crate::config::Config;
use crate::connection::{self, Connector, TlsConnector};
use crate::driver::{Command, Completion, Driver, Job, Wiring};
use crate::error::{ConnectError, SendError, ValidationError};
use crate::events::Events;
use crate::message::Message;
use crate::response::Ack;
use crate::stats::{Stats, StatsSnapshot};
use crate::wire;

/// A CCS client: a pool of XMPP connections for one sender id. Clone it freely; all clones
/// share the same connections. Dropping every clone closes the client gracefully.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    intake: mpsc::Sender<Job>,
    commands: mpsc::UnboundedSender<Command>,
    app: broadcast::Sender<crate::events::Event>,
    stats: Arc<Stats>,
    jid: String,
}

impl Client {
    /// Connects, authenticates and binds the first connection (so configuration, TLS and
    /// authentication errors surface here), then opens the rest of the pool in the background.
    pub async fn connect(cfg: Config) -> Result<Client, ConnectError> {
        let tls = crate::tls::client_config(&cfg.trust)?;
        Client::connect_with(cfg, Arc::new(TlsConnector { tls })).await
    }

    /// Starts the pool without waiting for a first connection: only configuration errors are
    /// returned; connect and auth failures show up as [`Event`](crate::Event)s, and messages
    /// fail with [`SendError::Unavailable`] while no connection can be established.
    pub async fn start(cfg: Config) -> Result<Client, ConnectError> {
        let tls = crate::tls::client_config(&cfg.trust)?;
        cfg.validate()?;
        Ok(Client::spawn(
            Arc::new(cfg),
            Arc::new(TlsConnector { tls }),
            None,
        ))
    }

    /// [`Client::connect`] with another way of opening connections.
    pub(crate) async fn connect_with(
        cfg: Config,
        connector: Arc<dyn Connector>,
    ) -> Result<Client, ConnectError> {
        cfg.validate()?;
        let cfg = Arc::new(cfg);
        let first = connector.connect(&cfg).await?;
        Ok(Client::spawn(cfg, connector, Some(first)))
    }

    fn spawn(
        cfg: Arc<Config>,
        connector: Arc<dyn Connector>,
        first: Option<crate::connection::Session>,
    ) -> Client {
        let jid = first.as_ref().map(|s| s.jid.clone()).unwrap_or_default();

        let (intake_tx, intake) = mpsc::channel(cfg.queue_capacity);
        let (cmd_tx, commands) = mpsc::unbounded_channel();
        let (conn_tx, conn_rx) = mpsc::unbounded_channel();
        let (app, _) = broadcast::channel(cfg.event_capacity);
        let stats = Arc::new(Stats::default());
        let link = first.map(|s| connection::start(1, s, &cfg, conn_tx.clone(), app.clone()));
        let wiring = Wiring {
            intake,
            commands,
            conn_tx,
            conn_rx,
            app: app.clone(),
            stats: stats.clone(),
        };
        tokio::spawn(Driver::new(cfg, connector, wiring, link).run());
        Client {
            inner: Arc::new(Inner {
                intake: intake_tx,
                commands: cmd_tx,
                app,
                stats,
                jid,
            }),
        }
    }

    /// Queues `msg` and returns once it is accepted; the returned [`PendingAck`] resolves
    /// with its outcome. Waits while the queue is full (backpressure). Dropping the
    /// `PendingAck` does not cancel the send.
    pub async fn submit(&self, msg: Message) -> Result<PendingAck, SendError> {
        let mut stanza = Vec::with_capacity(msg.payload_size() + 256);
        wire::write::gcm_message_of(&mut stanza, msg.message_id(), &msg).map_err(|e| {
            ValidationError::InvalidField {
                field: "payload".into(),
                reason: e.to_string(),
            }
        })?;
        let id: Arc<str> = Arc::from(msg.message_id());
        let (reply, rx) = oneshot::channel();
        let job = Job {
            id: id.clone(),
            target: Arc::from(msg.target_str()),
            stanza: stanza.into(),
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
        Ok(PendingAck { id, rx })
    }

    /// Sends `msg` and waits for its outcome.
    pub async fn send(&self, msg: Message) -> Result<Ack, SendError> {
        self.submit(msg).await?.await
    }

    /// Subscribes to connection events, upstream messages and receipts from now on.
    pub fn events(&self) -> Events {
        Events::new(self.inner.app.subscribe())
    }

    /// The counters as of now.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// The JID bound by the first connection (empty for a client from [`Client::start`]).
    pub fn jid(&self) -> &str {
        &self.inner.jid
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
