//! The hyper client stack every HTTPS transport of the crate shares (legacy HTTP API, Web
//! Push): rustls with ring and the given [`Trust`], HTTP/1.1 keep-alive and HTTP/2 by ALPN,
//! connections pooled per origin; and what its errors mean.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::Trust;
use crate::error::ConnectError;

/// The pooled client type.
pub(crate) type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client verifying servers against `trust`; connects lazily.
pub(crate) fn build(
    trust: &Trust,
    connect_timeout: Duration,
    pool_idle_timeout: Duration,
) -> Result<HttpsClient, ConnectError> {
    let tls = crate::tls::client_config(trust)?;
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls).clone())
        .https_only()
        .enable_all_versions()
        .wrap_connector(tcp);
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(pool_idle_timeout)
        .build(https))
}

/// An error and its sources as one line.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A TLS failure (untrusted certificate, wrong name…) is configuration, not worth retrying.
/// tokio-rustls reports it as an `io::Error` wrapping a `rustls::Error`, which hyper-rustls
/// may wrap in another `io::Error` (whose `source()` skips the layer in between).
pub(crate) fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    fn is_rustls(e: &(dyn std::error::Error + 'static)) -> bool {
        if e.is::<rustls::Error>() {
            return true;
        }
        match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => is_rustls(inner),
            None => false,
        }
    }
    let mut source = Some(e);
    while let Some(s) = source {
        if is_rustls(s) {
            return true;
        }
        source = s.source();
    }
    false
}
