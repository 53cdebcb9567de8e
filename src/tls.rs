//! rustls set-up (ring provider only): the client's verifier and the TCP + TLS connect.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::{Config, Trust};
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

/// Opens TCP to the endpoint and performs the TLS handshake with SNI and verification.
pub(crate) async fn connect(
    cfg: &Config,
    tls: Arc<rustls::ClientConfig>,
) -> Result<TlsStream<TcpStream>, ConnectError> {
    let endpoint = cfg.endpoint.to_string();
    let name = ServerName::try_from(cfg.tls_server_name().to_owned()).map_err(|e| {
        ConnectError::Config(format!("TLS server name `{}`: {e}", cfg.tls_server_name()))
    })?;
    let work = async {
        let tcp = TcpStream::connect((cfg.endpoint.host(), cfg.endpoint.port()))
            .await
            .map_err(|e| ConnectError::Io {
                endpoint: endpoint.clone(),
                source: Arc::new(e),
            })?;
        // Small stanzas must not wait for Nagle; we coalesce writes ourselves.
        let _ = tcp.set_nodelay(true);
        TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| ConnectError::Tls {
                endpoint: endpoint.clone(),
                reason: e.to_string(),
            })
    };
    tokio::time::timeout(cfg.connect_timeout, work)
        .await
        .map_err(|_| ConnectError::Timeout {
            stage: "TCP connect and TLS handshake",
            after: cfg.connect_timeout,
        })?
}
