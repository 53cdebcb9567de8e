//! A scripted TLS server for hostile-server tests. Every connection plays a list of [`Step`]s,
//! so a test states exactly what the server sends, when, and what it waits for.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gcm_ccs::{Config, Credentials, Endpoint, Trust};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::pki::{ALWAYS_VALID, TestCa};
use super::{KEY, SENDER};

/// The server's stream header (spec §3.2).
pub const HEADER: &str = r#"<stream:stream from="gcm.googleapis.com" id="4A61B2C3D4E5F607" version="1.0" xmlns:stream="http://etherx.jabber.org/streams" xmlns="jabber:client">"#;
/// Pre-authentication features (§3.3).
pub const SASL_FEATURES: &str = r#"<stream:features><mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>X-OAUTH2</mechanism><mechanism>X-GOOGLE-TOKEN</mechanism><mechanism>PLAIN</mechanism></mechanisms></stream:features>"#;
pub const SUCCESS: &str = r#"<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/>"#;
pub const FAILURE: &str =
    r#"<failure xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><not-authorized/></failure>"#;
/// Post-authentication features (§3.5).
pub const BIND_FEATURES: &str = r#"<stream:features><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/><session xmlns="urn:ietf:params:xml:ns:xmpp-session"/></stream:features>"#;
pub const BIND_RESULT: &str = r#"<iq type="result" id="bind-1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><jid>123456789012@gcm.googleapis.com/raw0FAD177A</jid></bind></iq>"#;
pub const SESSION_RESULT: &str = r#"<iq type="result" id="sess-1"/>"#;
/// The end of the client's stream header, which it sends first and again after SASL.
pub const CLIENT_HEADER_END: &str = r#"xmlns:stream="http://etherx.jabber.org/streams">"#;

/// One thing a scripted connection does.
#[derive(Clone, Debug)]
pub enum Step {
    /// Write these bytes.
    Send(Vec<u8>),
    /// Write `chunk` `times` times (a large payload without a large buffer; `usize::MAX`:
    /// until the client goes away).
    Repeat { chunk: Vec<u8>, times: usize },
    /// Read until the client's bytes contain this text (consumed up to its end).
    Expect(&'static str),
    /// Read `n` downstream `<message>` stanzas (non-empty `id`), without answering.
    Swallow(usize),
    /// Read `n` downstream `<message>` stanzas and ack each as soon as it is read.
    Ack(usize),
    /// Ack every downstream message until the client goes away.
    AckForever,
    /// Pause.
    Wait(Duration),
    /// Close our side of the connection (TLS close_notify, then FIN) and stop.
    Close,
}

pub fn send(s: impl AsRef<[u8]>) -> Step {
    Step::Send(s.as_ref().to_vec())
}

/// The well-behaved negotiation of spec §3, up to a bound session.
pub fn handshake() -> Vec<Step> {
    vec![
        Step::Expect(CLIENT_HEADER_END),
        send(format!("{HEADER}{SASL_FEATURES}")),
        Step::Expect("</auth>"),
        send(SUCCESS),
        Step::Expect(CLIENT_HEADER_END),
        send(format!("{HEADER}{BIND_FEATURES}")),
        Step::Expect("</iq>"),
        send(BIND_RESULT),
        Step::Expect("</iq>"),
        send(SESSION_RESULT),
    ]
}

/// `handshake()` followed by `rest`.
pub fn after_handshake(rest: Vec<Step>) -> Vec<Step> {
    let mut steps = handshake();
    steps.extend(rest);
    steps
}

/// A server→client ack for downstream message `id` (spec §8.1 shape).
pub fn ack_stanza(id: &str) -> String {
    gcm_server(&format!(
        r#"{{"message_type":"ack","message_id":"{id}","from":"tok"}}"#
    ))
}

/// `json` in the `data:gcm` envelope CCS uses for acks, nacks and control.
pub fn gcm_server(json: &str) -> String {
    format!(r#"<message><data:gcm xmlns:data="google:mobile:data">{json}</data:gcm></message>"#)
}

/// What one connection did.
#[derive(Default)]
struct ConnLog {
    /// Everything the client sent.
    received: Vec<u8>,
    /// Downstream message ids read by `Swallow`/`Ack` steps, in order.
    messages: Vec<String>,
}

/// A scripted server on 127.0.0.1. Dropping it stops every connection.
pub struct RawServer {
    pub addr: std::net::SocketAddr,
    pub ca_pem: String,
    accepted: Arc<AtomicUsize>,
    logs: Arc<Mutex<Vec<Arc<Mutex<ConnLog>>>>>,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.tasks.lock().unwrap().abort_all();
    }
}

/// How a raw server talks on an accepted socket.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    #[default]
    Tls,
    /// No TLS at all: the script runs on the bare TCP stream.
    PlainTcp,
}

/// Socket-level options of a raw server.
#[derive(Clone, Copy, Default)]
pub struct Options {
    pub transport: Transport,
    /// `SO_RCVBUF` of accepted sockets: small values make a server that does not read push
    /// back on the client quickly.
    pub recv_buffer: Option<u32>,
    /// The first this many connections speak no TLS: their script runs on the bare TCP stream.
    pub plain_first: usize,
    /// Listen here instead of on a free port of 127.0.0.1.
    pub addr: Option<std::net::SocketAddr>,
}

/// What the client sent that a connection keeps (enough for any transcript assertion).
const LOG_LIMIT: usize = 256 * 1024;

impl RawServer {
    /// A TLS server where connection `n` (0-based, in accept order) plays `script(n)`.
    pub async fn start(script: impl Fn(usize) -> Vec<Step> + Send + Sync + 'static) -> RawServer {
        Self::start_with(Transport::Tls, script).await
    }

    pub async fn start_with(
        transport: Transport,
        script: impl Fn(usize) -> Vec<Step> + Send + Sync + 'static,
    ) -> RawServer {
        let options = Options {
            transport,
            ..Options::default()
        };
        Self::start_opts(options, script).await
    }

    pub async fn start_opts(
        options: Options,
        script: impl Fn(usize) -> Vec<Step> + Send + Sync + 'static,
    ) -> RawServer {
        Self::start_signed(&TestCa::new("raw server CA"), options, script).await
    }

    /// [`RawServer::start_opts`] with a certificate issued by `ca`.
    pub async fn start_signed(
        ca: &TestCa,
        options: Options,
        script: impl Fn(usize) -> Vec<Step> + Send + Sync + 'static,
    ) -> RawServer {
        let transport = options.transport;
        let leaf = ca.leaf(&["localhost", "127.0.0.1"], ALWAYS_VALID);
        let chain = CertificateDer::pem_slice_iter(leaf.chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let socket = TcpSocket::new_v4().unwrap();
        if let Some(size) = options.recv_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        socket.set_reuseaddr(true).unwrap();
        let addr = options
            .addr
            .unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
        socket.bind(addr).unwrap();
        let listener = socket.listen(1024).unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let logs: Arc<Mutex<Vec<Arc<Mutex<ConnLog>>>>> = Arc::default();
        let tasks = Arc::new(Mutex::new(JoinSet::new()));
        let script = Arc::new(script);
        {
            let (accepted, logs, tasks2) = (accepted.clone(), logs.clone(), tasks.clone());
            tasks.lock().unwrap().spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let n = accepted.fetch_add(1, Ordering::SeqCst);
                    let log = Arc::new(Mutex::new(ConnLog::default()));
                    logs.lock().unwrap().push(log.clone());
                    let steps = script(n);
                    let acceptor = acceptor.clone();
                    let plain = transport == Transport::PlainTcp || n < options.plain_first;
                    tasks2.lock().unwrap().spawn(async move {
                        match plain {
                            true => play(tcp, steps, log).await,
                            false => {
                                if let Ok(tls) = acceptor.accept(tcp).await {
                                    play(tls, steps, log).await;
                                }
                            }
                        }
                    });
                }
            });
        }
        RawServer {
            addr,
            ca_pem: ca.pem(),
            accepted,
            logs,
            tasks,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Everything the client sent on connection `n`, lossily decoded.
    pub fn received(&self, n: usize) -> String {
        let log = self.logs.lock().unwrap()[n].clone();
        let log = log.lock().unwrap();
        String::from_utf8_lossy(&log.received).into_owned()
    }

    /// Downstream message ids read on connection `n` by `Swallow`/`Ack` steps.
    pub fn messages(&self, n: usize) -> Vec<String> {
        let log = self.logs.lock().unwrap()[n].clone();
        log.lock().unwrap().messages.clone()
    }

    /// A client configuration for this server with short, test-friendly timings.
    pub fn config(&self) -> Config {
        let mut cfg = Config::new(Credentials::new(SENDER, KEY));
        cfg.endpoint = Endpoint::Custom {
            host: self.addr.ip().to_string(),
            port: self.addr.port(),
        };
        cfg.server_name = Some("localhost".into());
        cfg.trust = Trust::only_pem(self.ca_pem.as_bytes()).unwrap();
        cfg.connect_timeout = Duration::from_secs(2);
        cfg.handshake_timeout = Duration::from_secs(2);
        cfg.reconnect.reconnect_jitter = Duration::ZERO;
        cfg.reconnect.initial_backoff = Duration::from_millis(50);
        cfg.reconnect.max_backoff = Duration::from_millis(200);
        cfg
    }
}

/// Plays `steps` on `stream`; stops quietly when the client goes away. After the last step
/// the connection stays open (reading and logging) until the client closes it.
async fn play<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    steps: Vec<Step>,
    log: Arc<Mutex<ConnLog>>,
) {
    let mut pending = Vec::new();
    let closed_by_us = matches!(
        run_steps(&mut stream, steps, &log, &mut pending).await,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted
    );
    // Keep reading; answer the client's `</stream:stream>` with ours, like a real server.
    let close = |b: &[u8]| find(b, CLIENT_CLOSE).is_some();
    if fill_until(&mut stream, &mut pending, &log, |b| close(b).then_some(0))
        .await
        .is_ok()
        && !closed_by_us
    {
        let _ = stream.write_all(CLIENT_CLOSE).await;
        let _ = stream.shutdown().await;
    }
}

/// `</stream:stream>`, from either side.
const CLIENT_CLOSE: &[u8] = b"</stream:stream>";

async fn run_steps<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    steps: Vec<Step>,
    log: &Mutex<ConnLog>,
    pending: &mut Vec<u8>,
) -> std::io::Result<()> {
    for step in steps {
        match step {
            Step::Send(bytes) => {
                stream.write_all(&bytes).await?;
                stream.flush().await?;
            }
            Step::Repeat { chunk, times } => {
                for _ in 0..times {
                    stream.write_all(&chunk).await?;
                }
                stream.flush().await?;
            }
            Step::Expect(text) => {
                let at = fill_until(stream, pending, log, |b| find(b, text.as_bytes())).await?;
                pending.drain(..at + text.len());
            }
            Step::Swallow(n) => {
                for _ in 0..n {
                    next_message(stream, pending, log).await?;
                }
            }
            Step::Ack(n) => {
                for _ in 0..n {
                    let id = next_message(stream, pending, log).await?;
                    stream.write_all(ack_stanza(&id).as_bytes()).await?;
                    stream.flush().await?;
                }
            }
            Step::AckForever => loop {
                let id = next_message(stream, pending, log).await?;
                stream.write_all(ack_stanza(&id).as_bytes()).await?;
                stream.flush().await?;
            },
            Step::Wait(d) => tokio::time::sleep(d).await,
            Step::Close => {
                stream.shutdown().await?;
                return Err(std::io::ErrorKind::ConnectionAborted.into());
            }
        }
    }
    Ok(())
}

/// Reads until `done(pending)` gives a position; EOF is an error.
async fn fill_until<S: AsyncRead + Unpin>(
    stream: &mut S,
    pending: &mut Vec<u8>,
    log: &Mutex<ConnLog>,
    done: impl Fn(&[u8]) -> Option<usize>,
) -> std::io::Result<usize> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(at) = done(pending) {
            return Ok(at);
        }
        if find(pending, CLIENT_CLOSE).is_some() {
            // The client closed its stream: nothing more will come.
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        pending.extend_from_slice(&buf[..n]);
        let received = &mut log.lock().unwrap().received;
        let keep = n.min(LOG_LIMIT.saturating_sub(received.len()));
        received.extend_from_slice(&buf[..keep]);
    }
}

/// Reads the next client `<message>` with a non-empty `id` (downstream messages; upstream acks
/// have `id=""`) and returns that id.
async fn next_message<S: AsyncRead + Unpin>(
    stream: &mut S,
    pending: &mut Vec<u8>,
    log: &Mutex<ConnLog>,
) -> std::io::Result<String> {
    const END: &[u8] = b"</message>";
    loop {
        let end = fill_until(stream, pending, log, |b| find(b, END)).await?;
        let stanza: Vec<u8> = pending.drain(..end + END.len()).collect();
        let stanza = String::from_utf8_lossy(&stanza);
        let id = stanza
            .split_once("<message id=\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(id, _)| id.to_owned())
            .unwrap_or_default();
        if !id.is_empty() {
            log.lock().unwrap().messages.push(id.clone());
            return Ok(id);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
