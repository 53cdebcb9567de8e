//! The emulator's HTTPS listeners (the legacy HTTP API, Web Push): TLS with the emulator's
//! identity, `h2` and `http/1.1` by ALPN, and connections owned by the accept task, so
//! stopping it closes them.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use super::{EmulatorError, Identity};

/// What answers the requests of one listener.
pub(crate) trait Handler: Send + Sync + 'static {
    /// The response to `req`.
    fn handle(&self, req: Request<Incoming>) -> impl Future<Output = Response<Full<Bytes>>> + Send;
}

/// A running listener; dropping it stops accepting and closes its connections.
pub(crate) struct Listener {
    pub addr: SocketAddr,
    /// TLS connections accepted so far.
    #[cfg_attr(not(feature = "webpush"), allow(dead_code))]
    pub connections: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Listener {
    /// Binds `listen` (the bound address is known before anything is served); then
    /// [`Listener::serve`].
    pub async fn bind(listen: SocketAddr) -> Result<(TcpListener, SocketAddr), EmulatorError> {
        let bind_error = |e| EmulatorError::Bind {
            addr: listen,
            source: Arc::new(e),
        };
        let tcp = TcpListener::bind(listen).await.map_err(bind_error)?;
        let addr = tcp.local_addr().map_err(bind_error)?;
        Ok((tcp, addr))
    }

    /// Serves `handler` with `identity` on a bound `listener`.
    pub fn serve<H: Handler>(
        (listener, addr): (TcpListener, SocketAddr),
        identity: &Identity,
        handshake_timeout: Duration,
        handler: Arc<H>,
    ) -> Result<Listener, EmulatorError> {
        let mut tls = (*identity.server_config()?).clone();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let connections = Arc::new(AtomicU64::new(0));
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let accept = tokio::spawn(accept_loop(
            listener,
            acceptor,
            handler,
            handshake_timeout,
            connections.clone(),
        ));
        Ok(Listener {
            addr,
            connections,
            accept,
        })
    }

    /// Stops accepting and closes every connection.
    pub fn stop(&self) {
        self.accept.abort();
    }
}

async fn accept_loop<H: Handler>(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handler: Arc<H>,
    handshake_timeout: Duration,
    accepted: Arc<AtomicU64>,
) {
    let mut connections = JoinSet::new();
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, peer)) => {
                debug!(%peer, "emulator https: connection");
                tcp
            }
            Err(e) => {
                warn!(error = %e, "emulator https: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(serve_connection(
            tcp,
            acceptor.clone(),
            handler.clone(),
            handshake_timeout,
            accepted.clone(),
        ));
    }
}

async fn serve_connection<H: Handler>(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    handler: Arc<H>,
    handshake_timeout: Duration,
    accepted: Arc<AtomicU64>,
) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return debug!(error = %e, "emulator https: TLS handshake failed"),
        Err(_) => return debug!("emulator https: TLS handshake timed out"),
    };
    accepted.fetch_add(1, Relaxed);
    let service = hyper::service::service_fn(move |req| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler.handle(req).await) }
    });
    if let Err(e) = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(tls), service)
        .await
    {
        debug!(error = %e, "emulator https: connection ended with an error");
    }
}
