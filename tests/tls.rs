//! Certificate verification: an unknown CA, an expired or not-yet-valid certificate and one
//! for another host name are all refused by default with `ConnectError::Tls`; only explicit
//! configuration (a trusted root, the name to verify) changes the outcome. There is no option
//! that turns verification off.

mod common;

use common::pki::{ALWAYS_VALID, TestCa, Validity};
use common::*;
use gcm_ccs::emulator::{Emulator, EmulatorConfig, Identity};
use gcm_ccs::{Client, Config, ConnectError, Trust};

/// An emulator presenting a leaf for `names` with `validity`, signed by `ca`.
async fn emulator_with(ca: &TestCa, names: &[&str], validity: Validity) -> Emulator {
    let leaf = ca.leaf(names, validity);
    let identity = Identity::from_pem(
        leaf.chain_pem.as_bytes(),
        leaf.key_pem.as_bytes(),
        Some(ca.pem()),
    )
    .unwrap();
    let mut cfg = EmulatorConfig::new(SENDER, KEY);
    cfg.identity = Some(identity);
    Emulator::start(cfg).await.unwrap()
}

/// A client config for `emu` that trusts exactly `ca`.
fn trusting(emu: &Emulator, ca: &TestCa) -> Config {
    let mut cfg = config(emu);
    cfg.trust = Trust::only_pem(ca.pem().as_bytes()).unwrap();
    cfg
}

/// The certificate is refused, at once: retrying cannot fix it.
async fn tls_error(cfg: Config) -> String {
    match bounded(10, Client::connect(cfg)).await {
        Err(ConnectError::Certificate { endpoint, reason }) => {
            assert!(endpoint.starts_with("127.0.0.1:"), "{endpoint}");
            reason
        }
        Err(other) => panic!("expected a TLS error, got {other:?}"),
        Ok(_) => panic!("the certificate must be refused"),
    }
}

async fn connects(cfg: Config) {
    let (client, _incoming) = bounded(10, Client::connect(cfg)).await.unwrap();
    client.close().await;
}

#[tokio::test]
async fn unknown_ca_is_refused_unless_explicitly_trusted() {
    let emu = emulator(Default::default()).await;
    // The default trust: the public web roots only.
    let mut cfg = config(&emu);
    cfg.trust = Trust::default();
    let reason = tls_error(cfg.clone()).await;
    assert!(
        reason.contains("invalid peer certificate: UnknownIssuer"),
        "{reason}"
    );
    // Another CA.
    let other = TestCa::new("someone else");
    let mut wrong = cfg.clone();
    wrong.trust = Trust::only_pem(other.pem().as_bytes()).unwrap();
    assert!(tls_error(wrong).await.contains("UnknownIssuer"));
    // Adding the emulator's CA is what makes it work.
    cfg.trust.add_pem(emu.ca_pem().as_bytes()).unwrap();
    connects(cfg).await;
}

#[tokio::test]
async fn expired_or_not_yet_valid_certificates_are_refused() {
    let ca = TestCa::new("test CA");
    let expired = emulator_with(&ca, &["localhost"], ((2000, 1, 1), (2001, 1, 1))).await;
    let reason = tls_error(trusting(&expired, &ca)).await;
    assert!(reason.contains("certificate expired"), "{reason}");

    let future = emulator_with(&ca, &["localhost"], ((4000, 1, 1), (4001, 1, 1))).await;
    let reason = tls_error(trusting(&future, &ca)).await;
    assert!(reason.contains("certificate not valid yet"), "{reason}");

    // The same CA with a current leaf is fine: the refusals were about validity.
    let valid = emulator_with(&ca, &["localhost"], ALWAYS_VALID).await;
    connects(trusting(&valid, &ca)).await;
}

#[tokio::test]
async fn certificate_for_another_host_is_refused() {
    let ca = TestCa::new("test CA");
    let emu = emulator_with(&ca, &["other.example"], ALWAYS_VALID).await;
    let reason = tls_error(trusting(&emu, &ca)).await;
    assert!(
        reason.contains(r#"certificate not valid for name "localhost""#)
            && reason.contains("other.example"),
        "{reason}"
    );
    // Without an explicit server name the endpoint host (an IP address) is verified.
    let mut by_ip = trusting(&emu, &ca);
    by_ip.server_name = None;
    assert!(tls_error(by_ip).await.contains("127.0.0.1"));
    // Naming the host explicitly is what makes it work.
    let mut named = trusting(&emu, &ca);
    named.server_name = Some("other.example".into());
    connects(named).await;
}

#[tokio::test]
async fn emulator_default_identity_is_valid_for_loopback_names() {
    let emu = emulator(Default::default()).await;
    for name in ["localhost", "127.0.0.1"] {
        let mut cfg = config(&emu);
        cfg.server_name = Some(name.into());
        connects(cfg).await;
    }
}
