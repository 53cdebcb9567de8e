//! The legacy HTTP send API (`Authorization: key=…`, http-legacy spec): a fallback for when
//! the XMPP stream cannot be used, and the only way to multicast to a token list.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use gcm_ccs::Message;
//! use gcm_ccs::http::{HttpConfig, HttpSender};
//!
//! let sender = HttpSender::new(HttpConfig::new("AIza…"))?;
//! let msg = Message::to("device-token").data("score", "3x1").build()?;
//! let ack = sender.send(&msg).await?;
//! println!("accepted as {}", ack.message_id);
//!
//! let tokens = vec!["tokA".to_owned(), "tokB".to_owned()];
//! for (token, result) in tokens.iter().zip(sender.send_multicast(&msg, &tokens).await) {
//!     println!("{token}: {result:?}");
//! }
//! # Ok(()) }
//! ```

pub(crate) mod client;
mod config;
pub(crate) mod error;
mod multicast;
mod request;
mod response;
pub(crate) mod retry;
pub mod retry_after;
mod sender;
pub mod subscription;

#[cfg(feature = "webpush")]
pub(crate) use response::text as body_text;

pub use config::{ANDROID_GCM_URL, FCM_URL, GCM_HTTP_URL, HttpConfig, MAX_REGISTRATION_IDS};
pub use error::{GroupOutcome, HttpError};
pub use multicast::MulticastReport;
pub use response::{Reply, TokenResult};
pub use sender::{Delivery, HttpSender};
