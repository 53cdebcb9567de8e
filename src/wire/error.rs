//! Framing failures, for both roles.

use std::sync::Arc;

/// A wire-level (XML framing) failure. Fatal for the connection it happened on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WireError {
    /// The peer sent XML that is not well-formed or not a valid XMPP stream.
    #[error("malformed XML from peer: {0}")]
    Malformed(String),
    /// A DOCTYPE / entity declaration or an undefined entity reference was sent.
    #[error("forbidden XML construct from peer: {0}")]
    Forbidden(String),
    /// One stanza exceeded the configured size cap.
    #[error("stanza exceeds the {limit}-byte limit")]
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// Stanza nesting exceeded the depth limit.
    #[error("stanza nesting exceeds depth {limit}")]
    TooDeep {
        /// The most nesting allowed.
        limit: usize,
    },
    /// The peer closed the byte stream (EOF) while the XMPP stream was still open.
    #[error("connection closed by peer{}", if *.mid_stanza { " in the middle of a stanza" } else { "" })]
    Eof {
        /// The peer stopped inside a stanza.
        mid_stanza: bool,
    },
    /// Text that XML 1.0 cannot carry was given to the writer.
    #[error("text contains a character XML 1.0 cannot carry: U+{0:04X}")]
    InvalidChar(u32),
    /// Transport error.
    #[error("I/O error: {0}")]
    Io(Arc<std::io::Error>),
}

impl From<std::io::Error> for WireError {
    fn from(e: std::io::Error) -> Self {
        WireError::Io(Arc::new(e))
    }
}
