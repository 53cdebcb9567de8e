//! Opening one connection: TCP + TLS to the endpoint (or the emulator's in-memory pipes),
//! then the XMPP negotiation, reported to the shell as a [`ConnEvent`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::config::Config;
use super::events::ConnId;
use super::io::{self, ConnEvent, Routes};
use super::session::{self, Established, Negotiation};
use super::transcript::TeeRead;
use crate::error::ConnectError;
use crate::wire::FrameReader;

/// Type-erased halves of whatever byte stream a connection runs over.
pub(crate) type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
pub(crate) type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;
/// A negotiated session over an erased stream.
pub(crate) type Session = Established<BoxRead, BoxWrite>;
/// What a [`Connector`] returns.
pub(crate) type Connecting<'a> =
    Pin<Box<dyn Future<Output = Result<Session, ConnectError>> + Send + 'a>>;

/// Opens and negotiates one connection. The production connector speaks TLS to the
/// endpoint; the emulator offers an in-memory one for deterministic tests.
pub(crate) trait Connector: Send + Sync + 'static {
    fn connect<'a>(&'a self, cfg: &'a Config) -> Connecting<'a>;
}

/// TCP + TLS to `cfg.endpoint`, then XMPP negotiation.
pub(crate) struct TlsConnector {
    pub tls: Arc<rustls::ClientConfig>,
}

impl Connector for TlsConnector {
    fn connect<'a>(&'a self, cfg: &'a Config) -> Connecting<'a> {
        Box::pin(async move {
            let stream = tls_connect(cfg, self.tls.clone()).await?;
            negotiate_stream(stream, cfg).await
        })
    }
}

/// Runs the client-role negotiation over any secured byte stream.
pub(crate) async fn negotiate_stream<S>(stream: S, cfg: &Config) -> Result<Session, ConnectError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (r, w) = tokio::io::split(stream);
    let r: BoxRead = match &cfg.transcript {
        Some(t) => Box::new(TeeRead {
            inner: r,
            transcript: t.clone(),
        }),
        None => Box::new(r),
    };
    let reader = FrameReader::new(r, cfg.limits);
    let negotiation = Negotiation {
        credentials: &cfg.credentials,
        stream_to: &cfg.stream_to,
        resource: cfg.resource.as_deref(),
        step_timeout: cfg.handshake_timeout,
        transcript: cfg.transcript.as_ref(),
    };
    session::negotiate(reader, Box::new(w) as BoxWrite, &negotiation).await
}

/// Spawns a task that opens connection `conn` and reports the outcome.
pub(crate) fn spawn_connect(
    conn: ConnId,
    cfg: Arc<Config>,
    connector: Arc<dyn Connector>,
    routes: Routes,
) {
    tokio::spawn(async move {
        let events = routes.events.clone();
        let report = match connector.connect(&cfg).await {
            Ok(est) => ConnEvent::Established {
                conn,
                link: io::start(conn, est, &cfg, routes),
            },
            Err(error) => ConnEvent::ConnectFailed { conn, error },
        };
        let _ = events.send(report).await;
    });
}

/// Opens TCP to the endpoint and performs the TLS handshake with SNI and verification.
async fn tls_connect(
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
        tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| crate::tls::handshake_error(&endpoint, &e))
    };
    tokio::time::timeout(cfg.connect_timeout, work)
        .await
        .map_err(|_| ConnectError::Timeout {
            stage: "TCP connect and TLS handshake",
            after: cfg.connect_timeout,
        })?
}
