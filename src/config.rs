//! Configuration shared by every transport: the server key (never printed), which
//! certificates to trust, and the per-message retry policy.

use std::fmt;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::ConnectError;

/// A server key (API key). `Debug` and `Display` print `***`; the value is only read by the
/// SASL and HTTP authorization code.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerKey(String);

impl ServerKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        ServerKey(key.into())
    }

    /// The secret itself. Never log or format the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKey(***)")
    }
}

impl fmt::Display for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Which certificates the client trusts.
#[derive(Debug, Clone)]
pub struct Trust {
    /// Trust the Mozilla root set shipped with `webpki-roots` (default: true).
    pub webpki_roots: bool,
    /// Extra trusted roots, e.g. the emulator's CA.
    pub extra_roots: Vec<CertificateDer<'static>>,
}

impl Default for Trust {
    fn default() -> Self {
        Trust {
            webpki_roots: true,
            extra_roots: Vec::new(),
        }
    }
}

impl Trust {
    /// Trust only the given PEM-encoded CA certificate(s), e.g. the emulator's.
    pub fn only_pem(pem: &[u8]) -> Result<Trust, ConnectError> {
        Ok(Trust {
            webpki_roots: false,
            extra_roots: certs_from_pem(pem)?,
        })
    }

    /// Adds PEM-encoded CA certificate(s) to the trusted set.
    pub fn add_pem(&mut self, pem: &[u8]) -> Result<(), ConnectError> {
        self.extra_roots.extend(certs_from_pem(pem)?);
        Ok(())
    }
}

fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ConnectError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConnectError::Config(format!("cannot read PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(ConnectError::Config(
            "no certificate found in the PEM data".into(),
        ));
    }
    Ok(certs)
}

/// Per-message retry policy for retryable nacks, lost connections and ack timeouts.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts per message, the first send included.
    pub max_attempts: u32,
    /// First backoff for `SERVICE_UNAVAILABLE`, `INTERNAL_SERVER_ERROR` and unknown codes.
    pub initial_backoff: Duration,
    /// Cap of that backoff.
    pub max_backoff: Duration,
    /// First backoff (and per-target cool-down) for the `*_RATE_EXCEEDED` codes.
    pub rate_limit_backoff: Duration,
    /// Cap of the rate-limit backoff.
    pub max_rate_limit_backoff: Duration,
    /// A message that has not completed this long after submission is failed instead of
    /// retried again (`None`: only `max_attempts` bounds it).
    pub deadline: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            rate_limit_backoff: Duration::from_secs(10),
            max_rate_limit_backoff: Duration::from_secs(300),
            deadline: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_never_formatted() {
        let key = ServerKey::new("AIzaSecretKey");
        let shown = format!("{key:?} {key}");
        assert!(!shown.contains("AIzaSecretKey"), "{shown}");
        assert!(shown.contains("***"));
    }

    #[test]
    fn bad_pem_is_a_config_error() {
        assert!(Trust::only_pem(b"not a pem").is_err());
    }
}
