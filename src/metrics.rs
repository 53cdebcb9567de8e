//! A relay's counters and histograms, served in the Prometheus text format (OpenMetrics) at
//! `/metrics`, with `/healthz` for orchestrators.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::record::{Outcome, Record};

type Labels = [(&'static str, String); 2];
type StateLabel = [(&'static str, &'static str); 1];

/// What a relay counts.
pub(crate) struct Metrics {
    registry: Registry,
    messages: Family<Labels, Counter>,
    in_flight: Gauge,
    retries: Counter,
    reconnects: Counter,
    connections: Family<StateLabel, Gauge>,
    lag: Gauge,
    pending: Gauge,
    upstream: Counter,
    latency: Histogram,
    /// Whether messages can go out (a connection is up, or the stream is not the only way):
    /// what `/healthz` answers.
    healthy: AtomicBool,
    /// The sender's cumulative figures last seen, to turn them into counter increments.
    seen: std::sync::Mutex<(u64, u64)>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("gcm_ccs_relay"),
            messages: Family::default(),
            in_flight: Gauge::default(),
            retries: Counter::default(),
            reconnects: Counter::default(),
            connections: Family::default(),
            lag: Gauge::default(),
            pending: Gauge::default(),
            upstream: Counter::default(),
            latency: Histogram::new(exponential_buckets(0.0005, 2.0, 18)),
            healthy: AtomicBool::new(false),
            seen: std::sync::Mutex::new((0, 0)),
        };
        let r = &mut m.registry;
        r.register(
            "messages",
            "Entries by final outcome and code (nack code, failure or invalid reason)",
            m.messages.clone(),
        );
        r.register(
            "in_flight",
            "Entries read and not yet recorded",
            m.in_flight.clone(),
        );
        r.register(
            "retries",
            "Messages written again after a lost connection or timeout",
            m.retries.clone(),
        );
        r.register("reconnects", "Connections replaced", m.reconnects.clone());
        r.register(
            "connections",
            "Stream connections by state",
            m.connections.clone(),
        );
        r.register(
            "stream_lag",
            "Entries of the outbox not yet read by the group",
            m.lag.clone(),
        );
        r.register(
            "stream_pending",
            "Entries of the group read and not yet acked",
            m.pending.clone(),
        );
        r.register(
            "upstream",
            "Upstream messages and receipts put on the inbox",
            m.upstream.clone(),
        );
        r.register(
            "send_latency_seconds",
            "From reading an entry to its final outcome",
            m.latency.clone(),
        );
        m
    }

    /// One entry's outcome (its latency from the record).
    pub fn record(&self, record: &Record) {
        let outcome = match record.outcome {
            Outcome::Acked => "acked",
            Outcome::Nacked => "nacked",
            Outcome::Failed => "failed",
            Outcome::Invalid => "invalid",
        };
        let code = record.code.clone().unwrap_or_default();
        self.messages
            .get_or_create(&[("outcome", outcome.to_owned()), ("code", code)])
            .inc();
        if let Some(ms) = record.latency_ms {
            self.latency.observe(ms / 1e3);
        }
    }

    pub fn set_in_flight(&self, n: usize) {
        self.in_flight.set(n as i64);
    }

    pub fn upstream(&self, n: usize) {
        self.upstream.inc_by(n as u64);
    }

    /// The sender's figures: cumulative retries and reconnects, connections up (when it has
    /// a stream), and whether it can send (what `/healthz` answers).
    pub fn sender(&self, retried: u64, reconnects: u64, up: Option<u64>, healthy: bool) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        self.retries.inc_by(retried.saturating_sub(seen.0));
        self.reconnects.inc_by(reconnects.saturating_sub(seen.1));
        *seen = (retried.max(seen.0), reconnects.max(seen.1));
        if let Some(up) = up {
            self.connections
                .get_or_create(&[("state", "up")])
                .set(up as i64);
        }
        self.healthy.store(healthy, Relaxed);
    }

    pub fn queue(&self, lag: Option<u64>, pending: u64) {
        self.lag.set(lag.map_or(-1, |l| l as i64));
        self.pending.set(pending as i64);
    }

    fn text(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// A running metrics listener; dropping it stops it.
pub(crate) struct Server {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `/metrics` and `/healthz` on `listen` (plain HTTP: metrics belong on a private
/// network).
pub(crate) async fn serve(listen: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<Server> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, Infallible>(answer(&req, &metrics)) }
                });
                let served = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
                if let Err(e) = served {
                    debug!(error = %e, "metrics connection ended");
                }
            });
        }
    });
    Ok(Server { addr, task })
}

fn answer<B>(req: &Request<B>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, kind, body) = match req.uri().path() {
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.text(),
        ),
        "/healthz" if metrics.healthy.load(Relaxed) => {
            (StatusCode::OK, "text/plain", "ok\n".to_owned())
        }
        "/healthz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "no connection is up, and the stream is the only way out\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = kind.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}
