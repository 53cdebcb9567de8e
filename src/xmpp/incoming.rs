//! Upstream messages and delivery receipts on their way to the application: a bounded,
//! lossless route that exists from the moment the client is created.
//!
//! Each [`Delivery`] is acked to CCS only when the application calls [`Delivery::ack`], on
//! the connection that delivered it, so a message is never acked before the application has
//! it (at-least-once). A delivery dropped without `ack`, or one whose connection ended first,
//! stays unacked and CCS delivers it again later: de-duplicate on
//! ([`from`](IncomingMessage::from), [`message_id`](IncomingMessage::message_id)). While
//! [`Incoming`] is full, the connection that has more stops reading (backpressure) instead
//! of buffering; dropping [`Incoming`] leaves every later message unacked with CCS.

use std::fmt;

use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tracing::debug;

use super::events::ConnId;
use super::outbound::Outbound;
use crate::inbound::{Receipt, Upstream, upstream_ack_json};
use crate::wire;

/// What a device or CCS sent us.
#[derive(Debug, Clone, PartialEq)]
pub enum IncomingMessage {
    /// An upstream message from a device (spec §8.6).
    Upstream(Upstream),
    /// A delivery receipt for a message we sent with `delivery_receipt_requested` (§8.5).
    Receipt(Receipt),
}

impl IncomingMessage {
    /// The message's own id (a receipt's keeps its `dr2:` prefix).
    pub fn message_id(&self) -> &str {
        match self {
            IncomingMessage::Upstream(u) => &u.message_id,
            IncomingMessage::Receipt(r) => &r.message_id,
        }
    }

    /// Who sent it: the device's registration token, or `gcm.googleapis.com` for receipts.
    pub fn from(&self) -> &str {
        match self {
            IncomingMessage::Upstream(u) => &u.from,
            IncomingMessage::Receipt(r) => &r.from,
        }
    }
}

/// The stream of upstream messages and receipts of one client. Returned with the client, so
/// nothing that arrives before the application starts reading is lost.
#[derive(Debug)]
pub struct Incoming {
    rx: mpsc::Receiver<Delivery>,
}

impl Incoming {
    pub(crate) fn new(rx: mpsc::Receiver<Delivery>) -> Self {
        Incoming { rx }
    }

    /// An `Incoming` that never yields anything (a sender without a stream).
    pub(crate) fn none() -> Self {
        Incoming::new(mpsc::channel(1).1)
    }

    /// The next delivery; `None` once the client and all its connections are gone.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }
}

/// One upstream message or receipt, to be acked once the application has it safely.
pub struct Delivery {
    conn: ConnId,
    message: IncomingMessage,
    ack: AckRoute,
}

/// The way back to the connection that delivered a message.
pub(crate) struct AckRoute {
    pub writer: mpsc::UnboundedSender<Outbound>,
    pub permit: OwnedSemaphorePermit,
}

impl Delivery {
    pub(crate) fn new(conn: ConnId, message: IncomingMessage, ack: AckRoute) -> Self {
        Delivery { conn, message, ack }
    }

    /// The connection it arrived on.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// The message.
    pub fn message(&self) -> &IncomingMessage {
        &self.message
    }

    /// Acks it to CCS on the connection that delivered it (spec §8.6: only there is an ack
    /// valid). False when that connection has ended: CCS will deliver the message again.
    pub fn ack(self) -> bool {
        let json = upstream_ack_json(self.message.from(), self.message.message_id());
        let mut stanza = Vec::with_capacity(json.len() + 64);
        if let Err(e) = wire::write::gcm_message(&mut stanza, "", &json) {
            debug!(conn = self.conn, error = %e, "cannot encode an upstream ack");
            return false;
        }
        let AckRoute { writer, permit } = self.ack;
        writer.send(Outbound::Reply(stanza, permit)).is_ok()
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("conn", &self.conn)
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}
