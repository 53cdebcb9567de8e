//! A local CCS emulator (feature `emulator`): direct TLS, the exact negotiation of §3, the
//! inbound stanza shapes of §6.3, downstream validation with the client's own rules, scripted
//! replies and faults, and statistics to assert on. It reuses the crate's wire codec, so client and
//! server cannot disagree about framing. Optionally it also serves the legacy HTTP send API
//! ([`EmulatorConfig::http_listen`]) and, with the `webpush` feature, a Web Push service
//! (`EmulatorConfig::webpush_listen`).

mod certs;
mod conn;
mod http;
mod https;
mod script;
mod stats;
#[cfg(feature = "webpush")]
mod webpush;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

pub use certs::{DEFAULT_NAMES, Identity};
pub use http::HttpRequestRecord;
pub use script::{Faults, HttpFaults, OverLimit, Reply, Rule, Script, StatusBurst};
pub use stats::EmulatorStats;
#[cfg(feature = "webpush")]
pub use webpush::{ReceivedPush, WebPushReply, WebPushRule, WebPushScript, WebPushStats};

use crate::config::Trust;
use crate::error::ConnectError;
use crate::http::HttpConfig;
use crate::wire::Limits;
use crate::xmpp::config::{Config, Credentials, Endpoint};
use crate::xmpp::{Client, Connecting, Connector, Incoming, negotiate_stream};
use stats::Recorder;

/// Errors starting the emulator.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EmulatorError {
    /// The listening address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The certificate or key cannot be used.
    #[error("emulator TLS: {0}")]
    Tls(String),
}

/// How to run an emulator.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EmulatorConfig {
    /// Address to listen on; port 0 picks a free port (see [`Emulator::addr`]).
    pub listen: SocketAddr,
    /// Accepted (sender id, server key) pairs.
    pub credentials: Vec<Credentials>,
    /// Certificate to present; `None` generates a CA and a loopback leaf.
    pub identity: Option<Identity>,
    /// Scripted replies and faults.
    pub script: Script,
    /// Limit for a client to finish TLS and the XMPP negotiation.
    pub handshake_timeout: Duration,
    /// Simultaneous connections accepted (any state); more wait in the accept queue.
    pub max_connections: usize,
    /// Framing limits applied to clients.
    pub limits: Limits,
    /// Keep per-message-id records: copies (duplicate assertions, `Reply::NackFirst`) and the
    /// last payload. Costs memory per distinct id; benchmarks turn it off.
    pub track_ids: bool,
    /// Also serve the legacy HTTP send API on this address (port 0 picks a free port; see
    /// [`Emulator::http_url`]), with the same certificate, credentials and script.
    pub http_listen: Option<SocketAddr>,
    /// Also run a Web Push service on this address (port 0 picks a free port; see
    /// [`Emulator::webpush_url`]), with the same certificate and `track_ids`, scripted by
    /// [`Script::webpush`].
    #[cfg(feature = "webpush")]
    pub webpush_listen: Option<SocketAddr>,
}

impl EmulatorConfig {
    /// Loopback on a free port, one credential pair, defaults elsewhere.
    pub fn new(sender_id: &str, server_key: &str) -> Self {
        EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            credentials: vec![Credentials::new(sender_id, server_key)],
            identity: None,
            script: Script::default(),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            limits: Limits::default(),
            track_ids: true,
            http_listen: None,
            #[cfg(feature = "webpush")]
            webpush_listen: None,
        }
    }
}

/// Shared per-connection flags.
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    pub draining: AtomicBool,
    /// The connection writes nothing any more (a dead path: no replies, pongs or keepalives).
    pub muted: AtomicBool,
    /// Received downstream messages not answered yet.
    pub in_flight: AtomicU64,
    /// Signalled when `in_flight` drops to zero on a draining connection.
    pub flushed: Notify,
    pub received: AtomicU64,
}

/// What a connection's writer is asked to do.
#[derive(Debug)]
pub(crate) enum Out {
    /// Write these bytes (one or more whole stanzas).
    Bytes(Vec<u8>),
    /// Write `</stream:stream>`, flush, close.
    Close,
    /// Flush and close (the stream is already over).
    Finish,
    /// Cut the TCP connection without any goodbye.
    Drop,
    /// Write what came before, then nothing any more (the connection goes silent).
    Mute,
}

/// Control handle of an authenticated connection.
#[derive(Clone)]
pub(crate) struct ConnCtl {
    pub sender_id: String,
    pub out: mpsc::UnboundedSender<Out>,
    pub state: Arc<ConnState>,
}

pub(crate) struct Shared {
    pub credentials: Vec<Credentials>,
    pub script: RwLock<Arc<Script>>,
    pub rec: Recorder,
    pub conns: Mutex<HashMap<u64, ConnCtl>>,
    /// Authenticated sessions per sender id, for the per-sender connection limit.
    pub sessions: Mutex<HashMap<String, usize>>,
    pub next_id: AtomicU64,
    pub auth_rejections: AtomicU32,
    pub handshake_timeout: Duration,
    pub limits: Limits,
    pub track_ids: bool,
}

impl Shared {
    pub fn script(&self) -> Arc<Script> {
        self.script
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<u64, ConnCtl>> {
        stats::lock(&self.conns)
    }

    pub fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        stats::lock(&self.sessions)
    }
}

/// A running emulator. Dropping it stops accepting; [`Emulator::shutdown`] also closes
/// the open connections.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    ca_pem: String,
    accept: JoinHandle<()>,
    http: Option<http::HttpServer>,
    #[cfg(feature = "webpush")]
    webpush: Option<webpush::WebPushServer>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Emulator {
    /// Binds, generates or loads the TLS identity, and starts accepting.
    pub async fn start(cfg: EmulatorConfig) -> Result<Emulator, EmulatorError> {
        let identity = match cfg.identity {
            Some(id) => id,
            None => Identity::generate(DEFAULT_NAMES)?,
        };
        let acceptor = TlsAcceptor::from(identity.server_config()?);
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| EmulatorError::Bind {
                addr: cfg.listen,
                source: Arc::new(e),
            })?;
        let addr = listener.local_addr().map_err(|e| EmulatorError::Bind {
            addr: cfg.listen,
            source: Arc::new(e),
        })?;
        let shared = Arc::new(Shared {
            credentials: cfg.credentials,
            auth_rejections: AtomicU32::new(cfg.script.faults.reject_auth),
            script: RwLock::new(Arc::new(cfg.script)),
            rec: Recorder::default(),
            conns: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            handshake_timeout: cfg.handshake_timeout,
            limits: cfg.limits,
            track_ids: cfg.track_ids,
        });
        let http = match cfg.http_listen {
            Some(listen) => Some(http::HttpServer::start(listen, &identity, shared.clone()).await?),
            None => None,
        };
        #[cfg(feature = "webpush")]
        let webpush = match cfg.webpush_listen {
            Some(listen) => {
                Some(webpush::WebPushServer::start(listen, &identity, shared.clone()).await?)
            }
            None => None,
        };
        let slots = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
        let accept = tokio::spawn(accept_loop(listener, acceptor, shared.clone(), slots));
        Ok(Emulator {
            shared,
            addr,
            ca_pem: identity.ca_pem,
            accept,
            http,
            #[cfg(feature = "webpush")]
            webpush,
        })
    }

    /// Trust in this emulator's CA only.
    fn trust(&self) -> Trust {
        Trust::only_pem(self.ca_pem.as_bytes())
            .unwrap_or_else(|_| unreachable!("the emulator's own CA PEM is well-formed"))
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// PEM of the CA clients must trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A client configuration pointing at this emulator and trusting only its CA.
    pub fn client_config(&self, sender_id: &str, server_key: &str) -> Config {
        let mut cfg = Config::new(Credentials::new(sender_id, server_key));
        cfg.endpoint = Endpoint::Custom {
            host: self.addr.ip().to_string(),
            port: self.addr.port(),
        };
        cfg.server_name = Some("localhost".into());
        cfg.trust = self.trust();
        cfg
    }

    /// The bound address of the HTTP endpoint, when [`EmulatorConfig::http_listen`] was set.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|h| h.addr)
    }

    /// The HTTP endpoint's send URL, `https://<ip>:<port>/fcm/send` (`/gcm/send` works too).
    pub fn http_url(&self) -> Option<String> {
        let addr = self.http_addr()?;
        Some(match addr {
            SocketAddr::V4(a) => format!("https://{a}/fcm/send"),
            SocketAddr::V6(a) => format!("https://[{}]:{}/fcm/send", a.ip(), a.port()),
        })
    }

    /// An [`HttpConfig`] for the HTTP endpoint, trusting only this emulator's CA.
    pub fn http_config(&self, server_key: &str) -> Option<HttpConfig> {
        let mut cfg = HttpConfig::new(server_key);
        cfg.url = self.http_url()?;
        cfg.trust = self.trust();
        Some(cfg)
    }

    /// Every request the HTTP endpoint received, in arrival order.
    pub fn http_requests(&self) -> Vec<HttpRequestRecord> {
        self.http
            .as_ref()
            .map(|h| h.state.requests())
            .unwrap_or_default()
    }

    /// The Web Push service's origin, `https://<ip>:<port>`, when
    /// [`EmulatorConfig::webpush_listen`] was set. `POST <url>/subscribe` mints a
    /// subscription (body, optional: `{"applicationServerKey": "<base64url>", "label":
    /// "gone-"}`) and answers with its browser-shaped JSON.
    #[cfg(feature = "webpush")]
    pub fn webpush_url(&self) -> Option<&str> {
        self.webpush.as_ref().map(|w| w.origin())
    }

    /// A new subscription of the Web Push service, as a browser's `pushManager.subscribe()`
    /// returns it; its id (the endpoint's last segment) starts with `label`, for
    /// [`WebPushScript::rules`]. With `application_server_key` (a VAPID public key,
    /// base64url), pushes signed with another key are refused with 403. `None` without
    /// [`EmulatorConfig::webpush_listen`] or for an unusable key or label.
    #[cfg(feature = "webpush")]
    pub fn webpush_subscribe(
        &self,
        label: &str,
        application_server_key: Option<&str>,
    ) -> Option<crate::webpush::Subscription> {
        self.webpush
            .as_ref()?
            .state
            .subscribe(label, application_server_key)
            .ok()
    }

    /// A [`WebPushConfig`](crate::webpush::WebPushConfig) for `key` and `subject`
    /// trusting only this emulator's CA.
    #[cfg(feature = "webpush")]
    pub fn webpush_config(
        &self,
        key: crate::webpush::VapidKey,
        subject: &str,
    ) -> crate::webpush::WebPushConfig {
        let mut cfg = crate::webpush::WebPushConfig::new(key, subject);
        cfg.trust = self.trust();
        cfg
    }

    /// Every push the Web Push service delivered, decrypted, in arrival order (kept with
    /// `track_ids`).
    #[cfg(feature = "webpush")]
    pub fn webpush_received(&self) -> Vec<ReceivedPush> {
        self.webpush
            .as_ref()
            .map(|w| w.state.received())
            .unwrap_or_default()
    }

    /// The Web Push service's counters (zero without it).
    #[cfg(feature = "webpush")]
    pub fn webpush_stats(&self) -> WebPushStats {
        self.webpush.as_ref().map(|w| w.stats()).unwrap_or_default()
    }

    /// A client whose connections are in-memory pipes served by this emulator — no TCP and
    /// no TLS, so tests can run it under tokio's paused time deterministically.
    pub async fn connect_in_memory(&self, cfg: Config) -> Result<(Client, Incoming), ConnectError> {
        let connector = MemoryConnector {
            shared: self.shared.clone(),
        };
        Client::connect_with(cfg, Arc::new(connector)).await
    }

    /// Counters as of now.
    pub fn stats(&self) -> EmulatorStats {
        self.shared.rec.snapshot()
    }

    /// How many copies of downstream message `id` arrived (needs `track_ids`).
    pub fn copies(&self, id: &str) -> u32 {
        stats::lock(&self.shared.rec.copies)
            .get(id)
            .map_or(0, |s| s.copies)
    }

    /// The JSON of the last copy of downstream message `id` received (needs `track_ids`).
    pub fn received(&self, id: &str) -> Option<Value> {
        let copies = stats::lock(&self.shared.rec.copies);
        serde_json::from_str(&copies.get(id)?.json).ok()
    }

    /// Upstream message and receipt ids the client acked, in order.
    pub fn acked_by_client(&self) -> Vec<String> {
        stats::lock(&self.shared.rec.acked_by_client).clone()
    }

    /// Replaces the script; applies to messages received from now on.
    pub fn set_script(&self, script: Script) {
        self.shared
            .auth_rejections
            .store(script.faults.reject_auth, Relaxed);
        *self
            .shared
            .script
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(script);
        if let Some(http) = &self.http {
            http.state.reset_burst();
        }
        #[cfg(feature = "webpush")]
        if let Some(webpush) = &self.webpush {
            webpush.state.reset_burst();
        }
    }

    /// Sends `CONNECTION_DRAINING` on every authenticated connection; returns how many.
    pub fn drain_all(&self) -> usize {
        let conns = self.shared.conns();
        for ctl in conns.values() {
            conn::start_drain(&self.shared, ctl);
        }
        conns.len()
    }

    /// Cuts every connection abruptly; returns how many.
    pub fn drop_all(&self) -> usize {
        let conns = self.shared.conns();
        for ctl in conns.values() {
            let _ = ctl.out.send(Out::Drop);
        }
        conns.len()
    }

    /// Delivers an upstream message from device `from` to one connection of `sender_id`.
    /// Returns its message id, or `None` when that sender has no usable connection.
    pub fn inject_upstream(
        &self,
        sender_id: &str,
        from: &str,
        data: Map<String, Value>,
    ) -> Option<String> {
        let conns = self.shared.conns();
        let ctl = conns
            .values()
            .filter(|c| c.sender_id == sender_id)
            .min_by_key(|c| c.state.draining.load(Relaxed))?;
        conn::inject_upstream(&self.shared, ctl, from, data)
    }

    /// Makes every current connection go silent without closing it: no replies, no pongs, no
    /// keepalives (a dead network path). Returns how many. New connections behave normally.
    pub fn mute_all(&self) -> usize {
        let conns = self.shared.conns();
        for ctl in conns.values() {
            ctl.state.muted.store(true, Relaxed);
        }
        conns.len()
    }

    /// Stops accepting and closes every connection with `</stream:stream>` (HTTP connections
    /// are closed at once).
    pub fn shutdown(&self) {
        self.accept.abort();
        if let Some(http) = &self.http {
            http.stop();
        }
        #[cfg(feature = "webpush")]
        if let Some(webpush) = &self.webpush {
            webpush.stop();
        }
        for ctl in self.shared.conns().values() {
            let _ = ctl.out.send(Out::Close);
        }
    }
}

/// Opens client connections as in-memory pipes to the emulator.
struct MemoryConnector {
    shared: Arc<Shared>,
}

impl Connector for MemoryConnector {
    fn connect<'a>(&'a self, cfg: &'a Config) -> Connecting<'a> {
        Box::pin(async move {
            self.shared.rec.connections_accepted.fetch_add(1, Relaxed);
            let (client_end, server_end) = tokio::io::duplex(64 * 1024);
            tokio::spawn(conn::serve_stream(self.shared.clone(), server_end));
            negotiate_stream(client_end, cfg).await
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
) {
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((tcp, peer)) => {
                debug!(%peer, "emulator: connection");
                let _ = tcp.set_nodelay(true);
                let shared = shared.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    conn::serve(shared, acceptor, tcp).await;
                    drop(permit);
                });
            }
            Err(e) => {
                warn!(error = %e, "emulator: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, IncomingMessage};

    /// An emulator for sender `123` and a client connected to it in memory.
    async fn with_client(cfg: EmulatorConfig) -> (Emulator, Client, Incoming) {
        let emu = Emulator::start(cfg).await.unwrap();
        let (client, incoming) = emu
            .connect_in_memory(emu.client_config("123", "key"))
            .await
            .unwrap();
        (emu, client, incoming)
    }

    #[tokio::test(start_paused = true)]
    async fn timed_upstream_and_drain() {
        let mut cfg = EmulatorConfig::new("123", "key");
        cfg.script.faults.upstream_every_ms = 1_000;
        cfg.script.faults.drain_after_ms = 2_500;
        cfg.script.faults.keepalive_ms = 0;
        let (emu, client, mut incoming) = with_client(cfg).await;
        let mut events = client.events();
        let mut upstream = 0;
        loop {
            tokio::select! {
                delivery = incoming.recv() => {
                    let delivery = delivery.unwrap();
                    let IncomingMessage::Upstream(message) = delivery.message() else {
                        panic!("{delivery:?}");
                    };
                    assert_eq!(message.data["seq"], (upstream + 1).to_string());
                    upstream += 1;
                    assert!(delivery.ack());
                }
                event = events.recv() => {
                    if let Event::Draining { .. } = event.unwrap() {
                        break;
                    }
                }
            }
        }
        assert_eq!(
            upstream, 2,
            "two upstream messages before the drain at 2.5 s"
        );
        assert_eq!(emu.stats().drains, 1);
        client.close().await;
    }

    /// Drains every connection once all its messages are in flight, and returns how long the
    /// draining connection stayed open and how many messages were acked.
    async fn drain_with_delayed_acks(when_flushed: bool) -> (Duration, u64) {
        let mut cfg = EmulatorConfig::new("123", "key");
        cfg.script.rules = vec![script::Rule {
            prefix: String::new(),
            reply: Reply::Delay { ms: 300 },
        }];
        cfg.script.faults.drain_close_ms = 2_000;
        cfg.script.faults.drain_close_when_flushed = when_flushed;
        let (emu, client, _incoming) = with_client(cfg).await;
        let mut events = client.events();
        let mut pending = Vec::new();
        for i in 0..5 {
            let msg = crate::Message::to(format!("tok-{i}")).build().unwrap();
            pending.push(client.submit(msg).await.unwrap());
        }
        while emu.stats().downstream < 5 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let started = tokio::time::Instant::now();
        assert_eq!(emu.drain_all(), 1);
        loop {
            match events.recv().await.unwrap() {
                Event::Lost { conn: 1, .. } => break,
                _ => continue,
            }
        }
        let open_for = started.elapsed();
        for p in pending {
            p.await.expect("acked before the close");
        }
        let acked = client.stats().acked;
        client.close().await;
        (open_for, acked)
    }

    #[tokio::test(start_paused = true)]
    async fn draining_connection_closes_once_flushed() {
        let (open_for, acked) = drain_with_delayed_acks(true).await;
        assert_eq!(acked, 5);
        assert!(
            open_for >= Duration::from_millis(290) && open_for < Duration::from_millis(400),
            "closed {open_for:?} after the drain: when the last delayed ack went out"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn draining_connection_can_wait_out_drain_close_ms() {
        let (open_for, acked) = drain_with_delayed_acks(false).await;
        assert_eq!(acked, 5);
        assert!(
            open_for >= Duration::from_millis(2_000),
            "closed {open_for:?} after the drain, before drain_close_ms"
        );
    }
}
