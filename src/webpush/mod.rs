//! Web Push (feature `webpush`): RFC 8030 delivery to a browser's push service, RFC 8291
//! `aes128gcm` payload encryption and RFC 8292 VAPID, the protocol every browser's push
//! service speaks (Chrome and Edge through FCM's web endpoints, Firefox's autopush, Safari).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use gcm_ccs::webpush::{Push, Subscription, Urgency, VapidKey, WebPushConfig, WebPushSender};
//!
//! let key = VapidKey::parse(&std::fs::read_to_string("vapid.pem")?)?;
//! println!("applicationServerKey: {}", key.public_key());
//! let sender = WebPushSender::new(WebPushConfig::new(key, "mailto:ops@example.com"))?;
//! let subscription = Subscription::from_json(&std::fs::read_to_string("subscription.json")?)?;
//! let push = Push::builder().payload("3x1").ttl(600).urgency(Urgency::High).build()?;
//! match sender.send(&subscription, &push).await {
//!     Ok(accepted) => println!("accepted: {:?}", accepted.location),
//!     Err(e) if e.is_subscription_gone() => println!("delete the subscription"),
//!     Err(e) => eprintln!("failed: {e}"),
//! }
//! # Ok(()) }
//! ```

mod config;
mod encrypt;
mod error;
mod outcome;
mod request;
mod sender;
mod subscription;
mod vapid;

pub use config::WebPushConfig;
pub use encrypt::{MAX_PLAINTEXT, encrypt};
pub use error::{PushError, WebPushError};
pub use outcome::Accepted;
pub use request::{DEFAULT_TTL, MAX_TOPIC_LEN, Push, PushBuilder, Urgency};
pub use sender::WebPushSender;
pub use subscription::{AUTH_SECRET_LEN, Subscription, SubscriptionError};
pub use vapid::{VapidError, VapidKey, VapidSigner};

#[cfg(feature = "emulator")]
pub(crate) use encrypt::{UserAgentKeys, decrypt};
#[cfg(feature = "emulator")]
pub(crate) use request::check_topic;
#[cfg(feature = "emulator")]
pub(crate) use vapid::{VerifiedVapid, verify_authorization};

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};

/// base64url that takes input with or without `=` padding.
const URL_SAFE_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// base64url without padding, as Web Push writes every key and JWT part.
pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url, padded or not, with a readable error.
pub(crate) fn b64_decode(text: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_ANY_PAD
        .decode(text.trim())
        .map_err(|e| format!("not base64url: {e}"))
}
