//! rustls set-up (ring provider only), shared by every transport: the client's verifier, and
//! handshake failures split into "the certificate is not acceptable" and everything else.

use std::sync::Arc;

use rustls::RootCertStore;

use crate::config::Trust;
use crate::error::ConnectError;

/// The ring crypto provider; every rustls config in this crate is built with it explicitly.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client config verifying servers against `trust`.
pub(crate) fn client_config(trust: &Trust) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
    let mut roots = RootCertStore::empty();
    if trust.webpki_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    for cert in &trust.extra_roots {
        roots
            .add(cert.clone())
            .map_err(|e| ConnectError::Config(format!("unusable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(ConnectError::Config("no trusted root certificates".into()));
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Config(format!("TLS set-up: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Types a failed client handshake: a certificate we do not accept (unknown CA, expired,
/// wrong name) is [`ConnectError::Certificate`], which retrying cannot fix; anything else
/// (reset, garbage instead of TLS, an alert) is [`ConnectError::Tls`].
pub(crate) fn handshake_error(endpoint: &str, e: &std::io::Error) -> ConnectError {
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(_)) => ConnectError::Certificate {
            endpoint: endpoint.to_owned(),
            reason: e.to_string(),
        },
        _ => ConnectError::Tls {
            endpoint: endpoint.to_owned(),
            reason: e.to_string(),
        },
    }
}
