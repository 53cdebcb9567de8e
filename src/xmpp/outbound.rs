//! What a connection's writer task is asked to put on the wire.

use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;

/// One item for the writer; the writer is the only task that writes, so stanzas never
/// interleave.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// One complete stanza (a downstream message or a ping).
    Stanza(Bytes),
    /// A reply of ours (an ack of an upstream message, an iq answer); its permit returns to
    /// the reader once it is written, which bounds the replies a server that does not read
    /// can make us queue.
    Reply(Bytes, OwnedSemaphorePermit),
    /// `</stream:stream>`: we are closing.
    Close,
}
