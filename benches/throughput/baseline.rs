//! The limit: pre-serialized stanzas over the same rustls loopback TLS, at most `window`
//! outstanding, acked by a server that finds `</message>` by byte scanning and answers with
//! a pre-built ack. No XML parsing, no JSON, no per-message futures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gcm_ccs::emulator::{DEFAULT_NAMES, Identity};
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::{TlsAcceptor, TlsConnector};

const END: &[u8] = b"</message>";
const ACK: &[u8] = br#"<message><data:gcm xmlns:data="google:mobile:data">{"message_type":"ack","message_id":"m-0123456789abcdef0123456789abcdef","from":"tok-0123456789"}</data:gcm></message>"#;

/// Counts complete `</message>` tags in `buf`, keeping a possibly split tag's prefix in `carry`.
fn count_ends(carry: &mut Vec<u8>, buf: &[u8]) -> usize {
    carry.extend_from_slice(buf);
    let mut n = 0;
    let mut i = 0;
    while let Some(pos) = carry[i..].windows(END.len()).position(|w| w == END) {
        n += 1;
        i += pos + END.len();
    }
    let keep = carry.len().saturating_sub(END.len() - 1).max(i);
    carry.drain(..keep);
    n
}

async fn serve(listener: TcpListener, acceptor: TlsAcceptor) {
    let Ok((tcp, _)) = listener.accept().await else {
        return;
    };
    let _ = tcp.set_nodelay(true);
    let Ok(tls) = acceptor.accept(tcp).await else {
        return;
    };
    let (mut r, mut w) = tokio::io::split(tls);
    let mut buf = vec![0u8; 64 * 1024];
    let mut carry = Vec::new();
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for _ in 0..count_ends(&mut carry, &buf[..n]) {
            out.extend_from_slice(ACK);
        }
        if !out.is_empty() {
            if w.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
}

pub async fn connect(
    ca_pem: &str,
    addr: std::net::SocketAddr,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let name = ServerName::try_from("localhost").expect("name");
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS")
}

/// A raw TLS client connected to the scanning server.
pub struct Raw {
    stream: tokio_rustls::client::TlsStream<TcpStream>,
}

impl Raw {
    /// Over a stream that is ready for stanzas (the floor client of figure 8 negotiates with
    /// the emulator first).
    pub fn over(stream: tokio_rustls::client::TlsStream<TcpStream>) -> Raw {
        Raw { stream }
    }

    pub async fn start() -> Raw {
        let identity = Identity::generate(DEFAULT_NAMES).expect("certs");
        let acceptor = TlsAcceptor::from(identity.server_config().expect("server config"));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(serve(listener, acceptor));
        Raw {
            stream: connect(&identity.ca_pem, addr).await,
        }
    }

    /// Sends `n` messages with at most `window` outstanding; returns the elapsed time.
    pub async fn throughput(self, stanzas: &[Vec<u8>], n: usize, window: usize) -> Duration {
        let (mut r, mut w) = tokio::io::split(self.stream);
        let credit = Arc::new(Semaphore::new(window));
        let reader_credit = credit.clone();
        let started = Instant::now();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut carry = Vec::new();
            let mut acked = 0;
            while acked < n {
                let got = r.read(&mut buf).await.expect("read");
                let k = count_ends(&mut carry, &buf[..got]);
                acked += k;
                reader_credit.add_permits(k);
            }
        });
        let mut batch = Vec::with_capacity(64 * 1024);
        let mut sent = 0;
        while sent < n {
            // Write whatever credit is available (at least one message) as one batch.
            let take = match credit.available_permits().min(n - sent) {
                0 => {
                    credit.acquire().await.expect("semaphore").forget();
                    1
                }
                k => {
                    credit.try_acquire_many(k as u32).expect("permits").forget();
                    k
                }
            };
            for i in sent..sent + take {
                batch.extend_from_slice(&stanzas[i % stanzas.len()]);
            }
            sent += take;
            w.write_all(&batch).await.expect("write");
            batch.clear();
        }
        w.flush().await.expect("flush");
        reader.await.expect("reader");
        started.elapsed()
    }

    /// One message at a time: the round trip of the raw path.
    pub async fn round_trips(self, stanza: &[u8], n: usize) -> Vec<Duration> {
        let (mut r, mut w) = tokio::io::split(self.stream);
        let mut buf = vec![0u8; 64 * 1024];
        let mut carry = Vec::new();
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            w.write_all(stanza).await.expect("write");
            loop {
                let got = r.read(&mut buf).await.expect("read");
                if count_ends(&mut carry, &buf[..got]) > 0 {
                    break;
                }
            }
            out.push(t.elapsed());
        }
        out
    }
}
