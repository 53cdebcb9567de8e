//! Shared helpers for integration tests: an emulator on loopback TLS and clients for it.
#![allow(dead_code)] // each test binary uses a different subset

pub mod bin;
pub mod pki;
pub mod raw_server;
#[cfg(feature = "relay")]
pub mod redis_server;

use std::time::Duration;

use gcm_ccs::emulator::{Emulator, EmulatorConfig, Reply, Rule, Script};
use gcm_ccs::{Client, Config, Event, Events};

pub const SENDER: &str = "123456789012";
pub const KEY: &str = "AIzaSyTestServerKey_do_not_leak_0123";

/// Starts an emulator with `script` on 127.0.0.1:0.
pub async fn emulator(script: Script) -> Emulator {
    let mut cfg = EmulatorConfig::new(SENDER, KEY);
    cfg.script = script;
    Emulator::start(cfg).await.expect("emulator starts")
}

/// A client config for `emu` with test-friendly defaults.
pub fn config(emu: &Emulator) -> Config {
    emu.client_config(SENDER, KEY)
}

/// A client for `emu` that leaves upstream messages and receipts with the server (its
/// `Incoming` is dropped); tests of upstream traffic call [`Client::connect`] themselves.
pub async fn client(emu: &Emulator) -> Client {
    Client::connect(config(emu))
        .await
        .expect("client connects")
        .0
}

pub fn rule(prefix: &str, reply: Reply) -> Rule {
    Rule {
        prefix: prefix.into(),
        reply,
    }
}

pub fn nack(code: &str) -> Reply {
    Reply::Nack {
        code: code.into(),
        description: None,
    }
}

/// An ack carrying the canonical registration id `token`.
pub fn canonical(token: &str) -> Reply {
    Reply::Canonical {
        registration_id: token.into(),
    }
}

pub fn script(rules: Vec<Rule>) -> Script {
    Script {
        rules,
        ..Script::default()
    }
}

/// Waits (bounded: 120 s, virtual under paused time) for the first event matching `pick`.
pub async fn next_event<T>(events: &mut Events, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let ev = events.recv().await.expect("client alive");
            if let Some(t) = pick(ev) {
                return t;
            }
        }
    })
    .await
    .expect("event arrives in time")
}

/// Polls `cond` until true (bounded: 5 s).
pub async fn eventually(what: &str, cond: impl FnMut() -> bool) {
    within(5, what, cond).await
}

/// Polls `cond` every 20 ms until true, for at most `secs` seconds.
pub async fn within(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..secs * 50 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out after {secs} s waiting for {what}");
}

/// A scratch directory with the emulator's CA in it (`ca.pem`).
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new(emu: &Emulator) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), emu.ca_pem()).unwrap();
        Scratch { dir }
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

/// Runs `fut`, failing the test if it takes longer than `secs` seconds: nothing may hang.
pub async fn bounded<T>(secs: u64, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .expect("bounded: the operation must finish in time")
}

/// A bare TLS connection to `addr` (name `localhost`) trusting only `ca_pem`, for tests that
/// speak the wire protocol by hand.
pub async fn tls_to(
    addr: std::net::SocketAddr,
    ca_pem: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap()
}

/// A copy of `json` with the member at `path` (object keys, outermost first) set to `value`.
pub fn replaced(
    json: &serde_json::Value,
    path: &[&str],
    value: serde_json::Value,
) -> serde_json::Value {
    let mut out = json.clone();
    let mut at = &mut out;
    for key in path {
        at = &mut at[*key];
    }
    *at = value;
    out
}
