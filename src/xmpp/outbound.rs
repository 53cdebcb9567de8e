//! What a connection's writer task is asked to put on the wire.

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

/// A complete stanza, encoded once and shared by every (re)send of it.
pub(crate) type Stanza = Arc<[u8]>;

/// One item for the writer; the writer is the only task that writes, so stanzas never
/// interleave.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// One complete stanza (a downstream message or a ping).
    Stanza(Stanza),
    /// A reply of ours (an ack of an upstream message, an iq answer); its permit returns to
    /// the reader once it is written, which bounds the replies a server that does not read
    /// can make us queue.
    Reply(Vec<u8>, OwnedSemaphorePermit),
    /// `</stream:stream>`: we are closing.
    Close,
}
