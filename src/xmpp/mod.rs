//! The CCS stream transport: TLS connect and negotiation, the reader and writer of each
//! connection, the in-flight window, the sans-IO pool machine and the async shell that runs
//! it, and the [`Client`] facade with its [`Incoming`] half.
//!
//! Layers, bottom up: `window` (in-flight bookkeeping) and `pool` (the policy, no I/O);
//! `session` (negotiation), `io` (reader/writer tasks) and `connector` (opening one
//! connection); `shell` (owns channels, tasks and one timer, executes the pool's actions);
//! `client` (the facade).

mod client;
mod completion;
pub mod config;
mod connector;
mod events;
mod incoming;
mod io;
mod outbound;
mod pool;
mod session;
mod shell;
mod stats;
mod transcript;
mod window;

pub use client::{Client, PendingAck};
pub use completion::{Batch, Completion, CompletionQueue, Completions};
pub use config::{Config, Credentials, Endpoint, ReconnectPolicy};
pub use events::{ConnId, Event, Events};
pub use incoming::{Delivery, Incoming, IncomingMessage};
pub use stats::StatsSnapshot;
pub use transcript::{Direction, Transcript};

#[cfg(feature = "emulator")]
pub(crate) use connector::{Connecting, Connector, negotiate_stream};
