//! # gcm-ccs
//!
//! A client for Google Cloud Messaging's XMPP Cloud Connection Server (CCS, later FCM's
//! "legacy XMPP"), with the legacy HTTP API as a fallback and a local TLS emulator.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use gcm_ccs::{Client, Config, Credentials, Message};
//!
//! let (client, _incoming) =
//!     Client::connect(Config::new(Credentials::new("123456789012", "AIza…"))).await?;
//! let msg = Message::to("device-token").data("score", "3x1").time_to_live(600).build()?;
//! let ack = client.send(msg).await?;
//! if let Some(token) = ack.registration_id {
//!     println!("store the canonical token {token}");
//! }
//! client.close().await;
//! # Ok(()) }
//! ```
//!
//! Layers, bottom up: `wire` (XML framing for both roles), [`message`] (downstream
//! messages and their validation), `inbound` (what servers send us, typed), `error`; one
//! folder per transport: `xmpp` (the stream: session, connection I/O, the pool machine and
//! its shell, [`Client`] and [`Incoming`]), [`http`] and [`webpush`] (browsers' push
//! subscriptions, RFC 8030 / 8291 / 8292); [`Sender`] routing over them;
//! [`emulator`] on the server role of the same code.

#![deny(missing_docs)]

mod backoff;
mod config;
mod error;
pub mod http;
mod inbound;
pub mod message;
mod outgoing;
mod record;
mod sender;
mod tls;
// The server-role writers of the wire codec are only used by the emulator.
#[cfg(feature = "webpush")]
pub mod webpush;
#[cfg_attr(not(any(feature = "emulator", feature = "unstable")), allow(dead_code))]
mod wire;
mod xmpp;

#[cfg(feature = "relay")]
mod metrics;
#[cfg(feature = "relay")]
pub mod relay;

#[cfg(feature = "emulator")]
pub mod emulator;

pub use config::{RetryPolicy, ServerKey, Trust};
pub use error::{ConnectError, SendError};
pub use http::{HttpConfig, HttpError, HttpSender};
pub use inbound::{Ack, Control, Nack, NackCode, Receipt, StanzaError, Upstream};
pub use message::{Message, MessageBuilder, Notification, Priority, Target, ValidationError};
#[cfg(feature = "webpush")]
pub use outgoing::WebPush;
pub use outgoing::{Outgoing, Sent};
pub use record::{Outcome, Record};
pub use sender::{Finished, InFlight, Route, Sender, SenderBuilder};
pub use wire::{Limits, WireError};
pub use xmpp::config::{GCM_DOMAIN, MAX_CONNECTIONS, MAX_WINDOW};
pub use xmpp::{
    Batch, Client, Completion, CompletionQueue, Completions, Config, ConnId, Credentials, Delivery,
    Direction, Endpoint, Event, Events, Incoming, IncomingMessage, PendingAck, ReconnectPolicy,
    StatsSnapshot, Transcript,
};

/// Internals for the fuzz targets, benchmarks and tests (feature `unstable`): the wire codec
/// of both roles and the classification of inbound stanzas. No stability promise.
#[cfg(feature = "unstable")]
pub mod unstable {
    pub use crate::inbound::{Inbound, classify, classify_general, classify_json};
    pub use crate::wire::*;

    /// A downstream line read member by member (`None`: the value reading decides).
    pub fn read_direct(line: &str) -> Option<crate::Message> {
        crate::message::read_direct(line)
    }

    /// The client's stanza of `m`, as [`Client::submit`](crate::Client::submit) writes it.
    pub fn message_stanza(out: &mut Vec<u8>, m: &crate::Message) -> Result<(), WireError> {
        m.write_stanza(out)
    }
}

/// The README's Rust examples, compiled by `cargo test` so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
