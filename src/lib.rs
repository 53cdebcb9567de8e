//! # gcm-ccs
//!
//! A client for Google Cloud Messaging's XMPP Cloud Connection Server (CCS, later FCM's
//! "legacy XMPP"), with a local TLS emulator.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use gcm_ccs::{Client, Config, Credentials, Message};
//!
//! let client = Client::connect(Config::new(Credentials::new("123456789012", "AIza…"))).await?;
//! let msg = Message::to("device-token").data("score", "3x1").time_to_live(600).build()?;
//! let ack = client.send(msg).await?;
//! if let Some(token) = ack.registration_id {
//!     println!("store the canonical token {token}");
//! }
//! client.close().await;
//! # Ok(()) }
//! ```
//!
//! Layers, bottom up: [`wire`] (XML framing for both roles), `session` (negotiation),
//! `window` (in-flight bookkeeping), `connection` (reader/writer tasks), `driver` (the one
//! task owning all state), [`Client`] (the facade), [`events`]. Beside the stream: [`http`]
//! (the legacy HTTP send API) and `webpush` (feature `webpush`: browsers' push
//! subscriptions over RFC 8030 / 8291 / 8292).

mod backoff;
mod client;
pub mod config;
mod connection;
mod driver;
pub mod error;
pub mod events;
pub mod http;
pub mod message;
pub mod response;
pub mod sender;
mod session;
mod stats;
mod tls;
mod transcript;
#[cfg(feature = "webpush")]
pub mod webpush;
mod window;
pub mod wire;

#[cfg(feature = "emulator")]
pub mod emulator;

pub use client::{Client, PendingAck};
pub use config::{Config, Credentials, Endpoint, ReconnectPolicy, RetryPolicy, ServerKey, Trust};
pub use driver::Completion;
pub use error::{ConnectError, HttpError, SendError, ValidationError, WireError};
pub use events::{ConnId, Event, Events};
pub use http::{HttpConfig, HttpSender};
pub use message::{Message, MessageBuilder, Notification, Priority, Target};
pub use response::{Ack, Control, Inbound, Nack, NackCode, Receipt, StanzaError, Upstream};
pub use sender::{Route, Sender};
pub use stats::StatsSnapshot;
pub use transcript::{Direction, Transcript};

/// The README's Rust examples, compiled by `cargo test` so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
