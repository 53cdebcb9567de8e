//! The final outcome of one accepted message.

use crate::error::SendError;
use crate::inbound::Ack;

/// What a [`PendingAck`](crate::PendingAck) resolves to, with the number of sends.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The ack, or why the message failed.
    pub result: Result<Ack, SendError>,
    /// How many times the message was written to the wire (0 if it never was).
    pub attempts: u32,
}
