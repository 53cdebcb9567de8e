//! TLS identity of the emulator: a generated CA and a leaf certificate for the loopback names,
//! or a certificate supplied by the user.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::EmulatorError;

/// Names the generated leaf certificate is valid for.
pub const DEFAULT_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1", "gcm.googleapis.com"];

/// A server certificate chain, its key, and the CA that clients should trust.
pub struct Identity {
    /// PEM of the CA certificate to hand to clients (`Trust::only_pem`, `--ca-file`).
    pub ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            ca_pem: self.ca_pem.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

fn gen_err(e: rcgen::Error) -> EmulatorError {
    EmulatorError::Tls(format!("certificate generation: {e}"))
}

impl Identity {
    /// A fresh CA and a leaf for `names` signed by it.
    pub fn generate(names: &[&str]) -> Result<Identity, EmulatorError> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "gcm-ccs emulator CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(gen_err)?)
            .map_err(gen_err)?;

        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut leaf_params = CertificateParams::new(names).map_err(gen_err)?;
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "gcm-ccs emulator");
        let leaf_key = KeyPair::generate().map_err(gen_err)?;
        let leaf = leaf_params.signed_by(&leaf_key, &ca).map_err(gen_err)?;
        Ok(Identity {
            ca_pem: ca.pem(),
            chain: vec![leaf.der().clone(), ca.der().clone()],
            key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()).into(),
        })
    }

    /// A user-supplied certificate chain and key (PEM). `ca_pem` is what clients should
    /// trust; it defaults to the last certificate of the chain.
    pub fn from_pem(
        chain_pem: &[u8],
        key_pem: &[u8],
        ca_pem: Option<String>,
    ) -> Result<Identity, EmulatorError> {
        let chain = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| EmulatorError::Tls(format!("certificate PEM: {e}")))?;
        let last = chain
            .last()
            .ok_or_else(|| EmulatorError::Tls("no certificate in the PEM file".into()))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| EmulatorError::Tls(format!("private key PEM: {e}")))?;
        let ca_pem = ca_pem.unwrap_or_else(|| pem_of(last));
        Ok(Identity { ca_pem, chain, key })
    }

    /// A rustls server config presenting this identity.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, EmulatorError> {
        let config = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| EmulatorError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| EmulatorError::Tls(format!("certificate/key: {e}")))?;
        Ok(Arc::new(config))
    }
}

fn pem_of(cert: &CertificateDer<'_>) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}
