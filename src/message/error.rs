//! Why a message was refused before anything touched the wire.

/// A message was refused before anything touched the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// Neither `to` nor `condition` was given.
    #[error("message has no target: set `to` (token, topic or notification key) or `condition`")]
    MissingTarget,
    /// Both `to` and `condition` were given.
    #[error("message has both `to` and `condition`: use exactly one")]
    ConflictingTargets,
    /// `time_to_live` outside `0..=2419200`. Values beyond `i64` are reported as `i64::MAX`.
    #[error("`time_to_live` is {0} s: it must be between 0 and 2419200 (28 days)")]
    TtlOutOfRange(i64),
    /// The payload (keys and values of `data` and `notification`) is too large.
    #[error(
        "payload is {size} bytes (keys + values of `data` and `notification`): the limit is {limit} bytes"
    )]
    PayloadTooLarge {
        /// Bytes counted.
        size: usize,
        /// The most allowed.
        limit: usize,
    },
    /// A reserved key was used in `data`.
    #[error(
        "`data` key `{0}` is reserved: `from` and keys starting with `google` or `gcm` are not allowed"
    )]
    ReservedDataKey(String),
    /// A field of the HTTP API that CCS (XMPP) does not accept.
    #[error("`{field}` is not valid over XMPP: {hint}")]
    HttpOnlyField {
        /// The field.
        field: &'static str,
        /// What to do instead.
        hint: &'static str,
    },
    /// A field has the wrong type or an unacceptable value, or is unknown.
    #[error("field `{field}`: {reason}")]
    InvalidField {
        /// The field, dotted for nested ones (`notification.title`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The input is not a JSON object, or not JSON at all.
    #[error("invalid JSON: {0}")]
    Json(String),
}

impl ValidationError {
    /// A short upper-case name of the kind, for machine-readable output (`MISSING_TARGET`,
    /// `MESSAGE_TOO_BIG`, …).
    pub fn code(&self) -> &'static str {
        match self {
            ValidationError::MissingTarget => "MISSING_TARGET",
            ValidationError::ConflictingTargets => "CONFLICTING_TARGETS",
            ValidationError::TtlOutOfRange(_) => "INVALID_TTL",
            ValidationError::PayloadTooLarge { .. } => "MESSAGE_TOO_BIG",
            ValidationError::ReservedDataKey(_) => "INVALID_DATA_KEY",
            ValidationError::HttpOnlyField { .. } => "HTTP_ONLY_FIELD",
            ValidationError::InvalidField { .. } => "INVALID_FIELD",
            ValidationError::Json(_) => "INVALID_JSON",
        }
    }
}
