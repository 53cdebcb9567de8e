//! gcm-ccs: a Google Cloud Messaging CCS (XMPP) client with HTTP fallback and a local emulator.

pub mod error;
pub mod message;
pub mod response;
pub mod wire;
