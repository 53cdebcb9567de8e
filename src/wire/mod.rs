//! The wire format, shared by the client and the emulator so the two cannot drift:
//! incremental framing of an XMPP stream into [`Frame`]s, and writers for every stanza we emit.

pub mod error;
pub mod frame;
pub mod read;
pub mod sasl;
pub mod write;

#[cfg(test)]
mod testing;

pub use error::WireError;
pub use frame::*;
pub use read::{Activity, FrameReader, Limits};
