//! What the application can observe: connection lifecycle, upstream messages and receipts.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::error::ConnectError;
use crate::response::{Receipt, Upstream};

/// Identifies one connection of a client for the lifetime of the process.
pub type ConnId = u64;

/// Something that happened on the client's connections.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A connection authenticated and was bound; `reconnect` is true when it replaces one.
    Connected {
        conn: ConnId,
        jid: String,
        reconnect: bool,
    },
    /// The server announced `CONNECTION_DRAINING`; new traffic moves to other connections.
    Draining { conn: ConnId },
    /// A connection ended; `in_flight` messages from it are being resent elsewhere.
    Lost {
        conn: ConnId,
        reason: String,
        in_flight: usize,
    },
    /// Establishing a connection failed; the next attempt is in `retry_in`.
    ConnectFailed {
        error: ConnectError,
        retry_in: Duration,
    },
    /// The server refused our credentials (a configuration error); retried only slowly.
    AuthFailed {
        error: ConnectError,
        retry_in: Duration,
    },
    /// An upstream message from a device (already acked to the server).
    Upstream {
        conn: ConnId,
        message: Arc<Upstream>,
    },
    /// A delivery receipt (already acked to the server with its full `dr2:` id).
    Receipt { conn: ConnId, receipt: Arc<Receipt> },
    /// This subscriber fell behind and missed `n` events.
    Lagged(u64),
}

/// A subscription to a client's events. Events are delivered whether or not anyone listens;
/// acking upstream messages never depends on a subscriber.
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
