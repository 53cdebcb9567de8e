//! Connection lifecycle as the application can observe it (lossy: a slow subscriber misses
//! events, and nothing depends on anyone listening). Upstream messages and receipts are data
//! and travel on [`Incoming`](crate::Incoming) instead.

use std::time::Duration;

use tokio::sync::broadcast;

use crate::error::ConnectError;

/// Identifies one connection of a client for the lifetime of the process.
pub type ConnId = u64;

/// Something that happened on the client's connections.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A connection authenticated and was bound.
    Connected {
        /// The connection.
        conn: ConnId,
        /// The full JID the server bound.
        jid: String,
        /// True when it replaces a connection that was lost or drained.
        reconnect: bool,
    },
    /// The server announced `CONNECTION_DRAINING`; new traffic moves to other connections.
    Draining {
        /// The draining connection.
        conn: ConnId,
    },
    /// A connection ended; its messages in flight are being resent elsewhere.
    Lost {
        /// The connection.
        conn: ConnId,
        /// Why it ended.
        reason: String,
        /// Messages that were waiting for an answer on it.
        in_flight: usize,
    },
    /// Establishing a connection failed; the next attempt is in `retry_in`.
    ConnectFailed {
        /// What failed.
        error: ConnectError,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
    /// The server refused our credentials (a configuration error); retried only slowly.
    AuthFailed {
        /// The refusal.
        error: ConnectError,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
    /// This subscriber fell behind and missed this many events.
    Lagged(u64),
}

/// A subscription to a client's lifecycle events, from the moment of subscribing.
pub struct Events {
    rx: broadcast::Receiver<Event>,
}

impl Events {
    pub(crate) fn new(rx: broadcast::Receiver<Event>) -> Self {
        Events { rx }
    }

    /// The next event; `None` once the client is gone.
    pub async fn recv(&mut self) -> Option<Event> {
        match self.rx.recv().await {
            Ok(e) => Some(e),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(Event::Lagged(n)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}
