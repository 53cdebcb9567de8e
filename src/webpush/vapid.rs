//! RFC 8292 VAPID (webpush spec §5): the application server's P-256 key, the ES256 JWT that
//! proves a push comes from it, a per-origin cache of those JWTs, and (for the emulator) the
//! verification a push service performs.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use p256::SecretKey;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::Generate;
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::pkcs8::{EncodePrivateKey, LineEnding};

use super::{b64_decode, b64_encode};

/// How long a signed JWT is valid (RFC 8292 allows at most 24 h).
const JWT_VALIDITY: Duration = Duration::from_secs(12 * 3600);
/// A cached JWT is replaced once less than this is left of its validity.
const RENEW_BEFORE: Duration = Duration::from_secs(3600);
/// Origins whose JWTs are cached before expired ones are swept.
const CACHE_SWEEP_AT: usize = 1024;
/// The base64url of `{"typ":"JWT","alg":"ES256"}`.
const JWT_HEADER: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9";

/// A VAPID key or subject that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VapidError {
    /// The private key text is not a P-256 key in a supported form.
    #[error("VAPID private key: {0}")]
    Key(String),
    /// The subject is neither `mailto:…` nor `https://…`.
    #[error("VAPID subject `{0}`: expected mailto:you@example.com or an https:// URL")]
    Subject(String),
}

/// An application server's VAPID key pair (P-256). The private half is a secret: `Debug`
/// prints `***` for it.
#[derive(Clone)]
pub struct VapidKey {
    signing: SigningKey,
    public: String,
}

impl fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VapidKey")
            .field("public_key", &self.public)
            .field("private_key", &format_args!("***"))
            .finish()
    }
}

impl VapidKey {
    /// A fresh random key pair.
    pub fn generate() -> VapidKey {
        VapidKey::from_secret(SecretKey::generate())
    }

    /// A key from the text of a key file: PKCS#8 PEM (`BEGIN PRIVATE KEY`), SEC1 PEM
    /// (`BEGIN EC PRIVATE KEY`, with or without an `EC PARAMETERS` block before it), or the
    /// base64url 32-byte private scalar of the web-push libraries (`VAPID_PRIVATE_KEY`).
    pub fn parse(text: &str) -> Result<VapidKey, VapidError> {
        let text = text.trim_start_matches('\u{feff}').trim();
        if !text.starts_with("-----BEGIN") {
            return VapidKey::from_base64url(text);
        }
        let key_err = |e: &dyn fmt::Display| VapidError::Key(e.to_string());
        for label in ["PRIVATE KEY", "EC PRIVATE KEY"] {
            if let Some(block) = pem_block(text, label) {
                return SecretKey::from_pem(block)
                    .map(VapidKey::from_secret)
                    .map_err(|e| key_err(&format_args!("{label} PEM: {e}")));
            }
        }
        if pem_block(text, "ENCRYPTED PRIVATE KEY").is_some() {
            return Err(VapidError::Key(
                "the PEM key is encrypted: decrypt it first (openssl pkcs8 -in KEY -out PLAIN)"
                    .into(),
            ));
        }
        Err(VapidError::Key(
            "no `PRIVATE KEY` or `EC PRIVATE KEY` PEM block found".into(),
        ))
    }

    /// A key from its 32-byte private scalar in base64url (padded or not).
    pub fn from_base64url(text: &str) -> Result<VapidKey, VapidError> {
        let bytes = b64_decode(text).map_err(|e| VapidError::Key(format!("raw key: {e}")))?;
        if bytes.len() != 32 {
            return Err(VapidError::Key(format!(
                "raw key: {} bytes, expected the 32-byte P-256 private scalar",
                bytes.len()
            )));
        }
        SecretKey::from_slice(&bytes)
            .map(VapidKey::from_secret)
            .map_err(|_| VapidError::Key("raw key: not a valid P-256 private scalar".into()))
    }

    fn from_secret(secret: SecretKey) -> VapidKey {
        let public = b64_encode(secret.public_key().to_sec1_point(false).as_bytes());
        VapidKey {
            signing: SigningKey::from(secret),
            public,
        }
    }

    /// The public key, an uncompressed point in base64url: the web app's
    /// `applicationServerKey` and the `k` of the `Authorization` header.
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The private key as a PKCS#8 PEM document. This is the secret itself: write it to a
    /// protected file, never to a log.
    pub fn to_pkcs8_pem(&self) -> String {
        SecretKey::from(&self.signing)
            .to_pkcs8_pem(LineEnding::LF)
            .expect("a P-256 key always encodes as PKCS#8")
            .to_string()
    }

    /// An ES256 JWS (raw 64-byte r‖s signature) over `signing_input`.
    fn sign(&self, signing_input: &[u8]) -> String {
        let signature: Signature = self.signing.sign(signing_input);
        b64_encode(&signature.to_bytes())
    }
}

/// The first PEM block labelled `label` in `text`, armour included.
fn pem_block<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = text[start..].find(&end)? + start + end.len();
    Some(&text[start..stop])
}

/// Signs VAPID JWTs for one key and subject, keeping one per push-service origin until it
/// is close to expiry (an hour before the end of its 12 h validity).
///
/// ```
/// use std::time::SystemTime;
/// use gcm_ccs::webpush::{VapidKey, VapidSigner};
///
/// let signer = VapidSigner::new(VapidKey::generate(), "mailto:ops@example.com")?;
/// let header = signer.authorization("https://fcm.googleapis.com", SystemTime::now());
/// assert!(header.starts_with("vapid t=") && header.ends_with(signer.key().public_key()));
/// # Ok::<(), gcm_ccs::webpush::VapidError>(())
/// ```
pub struct VapidSigner {
    key: VapidKey,
    subject: String,
    cache: Mutex<JwtCache>,
}

impl fmt::Debug for VapidSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VapidSigner")
            .field("key", &self.key)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl VapidSigner {
    /// A signer for `key` with contact `subject` (`mailto:…` or `https://…`).
    pub fn new(key: VapidKey, subject: impl Into<String>) -> Result<VapidSigner, VapidError> {
        let subject = subject.into();
        check_subject(&subject).map_err(|()| VapidError::Subject(subject.clone()))?;
        Ok(VapidSigner {
            key,
            subject,
            cache: Mutex::new(JwtCache::default()),
        })
    }

    /// The key this signer uses.
    pub fn key(&self) -> &VapidKey {
        &self.key
    }

    /// The `Authorization` value for a push to a service at `origin` (`https://host[:port]`,
    /// see [`Subscription::origin`](super::Subscription::origin)) as of `now`:
    /// `vapid t=<JWT>, k=<public key>`.
    pub fn authorization(&self, origin: &str, now: SystemTime) -> String {
        let now = unix_seconds(now);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(header) = cache.get(origin, now) {
            return header.to_owned();
        }
        let exp = now + JWT_VALIDITY.as_secs();
        let claims = serde_json::json!({ "aud": origin, "exp": exp, "sub": self.subject });
        let signing_input = format!("{JWT_HEADER}.{}", b64_encode(claims.to_string().as_bytes()));
        let signature = self.key.sign(signing_input.as_bytes());
        let header = format!("vapid t={signing_input}.{signature}, k={}", self.key.public);
        cache.put(origin, header.clone(), exp, now);
        header
    }
}

fn check_subject(subject: &str) -> Result<(), ()> {
    let ok = if let Some(address) = subject.strip_prefix("mailto:") {
        address.contains('@') && !address.starts_with('@') && !address.ends_with('@')
    } else if let Some(rest) = subject.strip_prefix("https://") {
        !rest.is_empty() && !rest.starts_with('/')
    } else {
        false
    };
    if ok && !subject.chars().any(char::is_whitespace) {
        Ok(())
    } else {
        Err(())
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Signed `Authorization` values per origin, with their `exp` (sans-IO: the time is passed in).
#[derive(Debug, Default)]
struct JwtCache {
    by_origin: HashMap<String, (String, u64)>,
}

impl JwtCache {
    /// The cached value for `origin` if it has more than [`RENEW_BEFORE`] left at `now`.
    fn get(&self, origin: &str, now: u64) -> Option<&str> {
        let (header, exp) = self.by_origin.get(origin)?;
        (now + RENEW_BEFORE.as_secs() < *exp).then_some(header.as_str())
    }

    fn put(&mut self, origin: &str, header: String, exp: u64, now: u64) {
        if self.by_origin.len() >= CACHE_SWEEP_AT {
            self.by_origin
                .retain(|_, (_, exp)| now + RENEW_BEFORE.as_secs() < *exp);
        }
        self.by_origin.insert(origin.to_owned(), (header, exp));
    }
}

/// What a push service learns from a valid VAPID header.
#[cfg(any(test, feature = "emulator"))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerifiedVapid {
    /// `k`: the application server's public key, base64url as sent.
    pub key: String,
    /// The `sub` claim.
    pub subject: String,
    /// The `exp` claim, seconds since the epoch.
    pub exp: u64,
}

/// Checks `Authorization: vapid t=…, k=…` as a push service does: the ES256 signature with
/// `k`, `aud` = `audience`, `exp` in the future and at most 24 h ahead of `now`, a
/// `mailto:`/`https:` `sub`. The error is the reason for the refusal.
#[cfg(any(test, feature = "emulator"))]
pub(crate) fn verify_authorization(
    header: &str,
    audience: &str,
    now: SystemTime,
) -> Result<VerifiedVapid, String> {
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Header {
        alg: String,
        typ: Option<String>,
    }
    #[derive(Deserialize)]
    struct Claims {
        aud: String,
        exp: u64,
        sub: Option<String>,
    }

    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("vapid") {
        return Err(format!(
            "authorization scheme `{scheme}`: expected `vapid t=<JWT>, k=<key>` (RFC 8292)"
        ));
    }
    let param = |name: &str| {
        params.split(',').find_map(|p| {
            let (n, v) = p.trim().split_once('=')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    };
    let (Some(token), Some(key)) = (param("t"), param("k")) else {
        return Err("the vapid authorization needs both t= and k=".into());
    };
    let key_bytes = b64_decode(key).map_err(|e| format!("k: {e}"))?;
    if key_bytes.len() != 65 || key_bytes[0] != 0x04 {
        return Err("k: not an uncompressed P-256 public key".into());
    }
    let verifying =
        VerifyingKey::from_sec1_bytes(&key_bytes).map_err(|_| "k: not a point on P-256")?;
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("t: a JWT has three dot-separated parts".into());
    };
    let json = |part: &str, what: &str| b64_decode(part).map_err(|e| format!("JWT {what}: {e}"));
    let head: Header =
        serde_json::from_slice(&json(h, "header")?).map_err(|e| format!("JWT header: {e}"))?;
    if head.alg != "ES256" || head.typ.as_deref().is_some_and(|t| t != "JWT") {
        return Err(format!(
            "JWT header: alg `{}` (expected ES256, typ JWT)",
            head.alg
        ));
    }
    let signature = Signature::from_slice(&json(s, "signature")?)
        .map_err(|_| "JWT signature: expected 64 bytes r‖s (not DER)".to_owned())?;
    verifying
        .verify(format!("{h}.{c}").as_bytes(), &signature)
        .map_err(|_| "JWT signature does not verify with k".to_owned())?;
    let claims: Claims =
        serde_json::from_slice(&json(c, "claims")?).map_err(|e| format!("JWT claims: {e}"))?;
    if claims.aud != audience {
        return Err(format!(
            "aud `{}`: this push service is {audience}",
            claims.aud
        ));
    }
    let now = unix_seconds(now);
    if claims.exp <= now {
        return Err(format!(
            "exp {}: the JWT expired {} s ago",
            claims.exp,
            now - claims.exp
        ));
    }
    if claims.exp > now + 24 * 3600 {
        return Err(format!("exp {}: more than 24 hours ahead", claims.exp));
    }
    let subject = claims.sub.unwrap_or_default();
    if check_subject(&subject).is_err() {
        return Err(format!("sub `{subject}`: expected mailto: or https:"));
    }
    Ok(VerifiedVapid {
        key: key.to_owned(),
        subject,
        exp: claims.exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const SUB: &str = "mailto:ops@example.com";
    const FCM: &str = "https://fcm.googleapis.com";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// The JWT's three parts, the first two as JSON.
    fn parts(header: &str) -> (Value, Value, Vec<u8>, String) {
        let rest = header.strip_prefix("vapid t=").unwrap();
        let (jwt, k) = rest.split_once(", k=").unwrap();
        let mut it = jwt.split('.');
        let h = serde_json::from_slice(&b64_decode(it.next().unwrap()).unwrap()).unwrap();
        let c = serde_json::from_slice(&b64_decode(it.next().unwrap()).unwrap()).unwrap();
        let s = b64_decode(it.next().unwrap()).unwrap();
        (h, c, s, k.to_owned())
    }

    #[test]
    fn jwt_header_claims_and_raw_signature() {
        let signer = VapidSigner::new(VapidKey::generate(), SUB).unwrap();
        let now = 1_700_000_000;
        let header = signer.authorization(FCM, at(now));
        let (h, c, s, k) = parts(&header);
        assert_eq!(h, serde_json::json!({"typ": "JWT", "alg": "ES256"}));
        assert_eq!(c["aud"], FCM);
        assert_eq!(c["sub"], SUB);
        let exp = c["exp"].as_u64().unwrap();
        assert!(exp > now && exp <= now + 24 * 3600, "{exp}");
        assert_eq!(s.len(), 64, "raw r‖s, not DER");
        assert_eq!(k, signer.key().public_key());
        let verified = verify_authorization(&header, FCM, at(now)).unwrap();
        assert_eq!(
            (verified.key.as_str(), verified.subject.as_str()),
            (k.as_str(), SUB)
        );
    }

    #[test]
    fn one_jwt_per_origin_until_near_expiry() {
        let signer = VapidSigner::new(VapidKey::generate(), SUB).unwrap();
        let t0 = 1_700_000_000;
        let first = signer.authorization(FCM, at(t0));
        assert_eq!(signer.authorization(FCM, at(t0 + 3600)), first, "cached");
        let moz = signer.authorization("https://updates.push.services.mozilla.com", at(t0));
        assert_ne!(moz, first);
        assert_eq!(
            parts(&moz).1["aud"],
            "https://updates.push.services.mozilla.com"
        );
        // Valid for 12 h; replaced once less than an hour is left.
        assert_eq!(signer.authorization(FCM, at(t0 + 11 * 3600 - 1)), first);
        let renewed = signer.authorization(FCM, at(t0 + 11 * 3600));
        assert_ne!(renewed, first);
        assert_eq!(parts(&renewed).1["exp"], t0 + 23 * 3600);
    }

    #[test]
    fn the_cache_sweeps_expired_origins() {
        let mut cache = JwtCache::default();
        for i in 0..CACHE_SWEEP_AT {
            cache.put(&format!("https://o{i}"), "h".into(), 100, 0);
        }
        cache.put("https://new", "h".into(), 100_000, 50_000);
        assert_eq!(cache.by_origin.len(), 1);
        assert_eq!(cache.get("https://new", 50_000), Some("h"));
    }

    #[test]
    fn verification_refuses_what_a_push_service_refuses() {
        let key = VapidKey::generate();
        let signer = VapidSigner::new(key.clone(), SUB).unwrap();
        let now = 1_700_000_000;
        let header = signer.authorization(FCM, at(now));
        let refused = |h: &str, aud: &str, t: u64| verify_authorization(h, aud, at(t)).unwrap_err();
        assert!(refused(&header, "https://other.example", now).contains("aud"));
        assert!(refused(&header, FCM, now + 12 * 3600).contains("expired"));
        assert!(refused(&header, FCM, now - 13 * 3600).contains("24 hours"));
        let other = VapidKey::generate();
        let swapped = header.replace(key.public_key(), other.public_key());
        assert!(refused(&swapped, FCM, now).contains("does not verify"));
        assert!(refused(&format!("WebPush {header}"), FCM, now).contains("scheme"));
        assert!(refused("vapid t=a.b", FCM, now).contains("both"));
        let no_k = header.split(", k=").next().unwrap().to_owned();
        assert!(refused(&no_k, FCM, now).contains("both"));
        // A DER signature is refused.
        let (jwt, k) = header
            .strip_prefix("vapid t=")
            .unwrap()
            .split_once(", k=")
            .unwrap();
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        let der = Signature::from_slice(&b64_decode(sig).unwrap())
            .unwrap()
            .to_der();
        let der_header = format!("vapid t={input}.{}, k={k}", b64_encode(der.as_bytes()));
        assert!(refused(&der_header, FCM, now).contains("64 bytes"));
    }

    #[test]
    fn subjects() {
        for ok in ["mailto:a@b.c", "https://example.com/contact"] {
            assert!(VapidSigner::new(VapidKey::generate(), ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a@b.c",
            "mailto:",
            "mailto:nobody",
            "http://example.com",
            "https://",
            "mailto:a b@c",
        ] {
            assert_eq!(
                VapidSigner::new(VapidKey::generate(), bad).unwrap_err(),
                VapidError::Subject(bad.into()),
                "{bad}"
            );
        }
    }

    #[test]
    fn key_forms_load_to_the_same_key() {
        let key = VapidKey::generate();
        let pkcs8 = key.to_pkcs8_pem();
        assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(
            VapidKey::parse(&pkcs8).unwrap().public_key(),
            key.public_key()
        );
        let secret = SecretKey::from(&key.signing);
        let sec1 = secret.to_sec1_pem(LineEnding::LF).unwrap();
        assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        // openssl ecparam -genkey writes an EC PARAMETERS block first.
        let with_params = format!(
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{}",
            &*sec1
        );
        assert_eq!(
            VapidKey::parse(&with_params).unwrap().public_key(),
            key.public_key()
        );
        let raw = b64_encode(&secret.to_bytes());
        assert_eq!(
            VapidKey::parse(&format!("{raw}\n")).unwrap().public_key(),
            key.public_key()
        );
        assert_eq!(
            VapidKey::parse(&format!("{raw}=")).unwrap().public_key(),
            key.public_key()
        );
    }

    #[test]
    fn rfc8292_example_public_key() {
        // The web-push libraries' raw form: the public key is derived, not stored.
        let key = VapidKey::from_base64url("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw").unwrap();
        assert_eq!(
            key.public_key(),
            "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
        );
    }

    #[test]
    fn bad_keys_are_clear_errors_without_the_secret() {
        let cases = [
            ("", "32-byte"),
            ("AAAA", "3 bytes"),
            (&b64_encode(&[0u8; 32]), "not a valid"),
            (&b64_encode(&[0xffu8; 32]), "not a valid"),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "PRIVATE KEY PEM",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "no `PRIVATE KEY`",
            ),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
                "encrypted",
            ),
        ];
        for (text, want) in cases {
            let e = VapidKey::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn debug_hides_the_private_key() {
        let key = VapidKey::generate();
        let raw = b64_encode(&SecretKey::from(&key.signing).to_bytes());
        let signer = VapidSigner::new(key.clone(), SUB).unwrap();
        for text in [format!("{key:?}"), format!("{signer:?}")] {
            assert!(
                text.contains("***") && text.contains(key.public_key()),
                "{text}"
            );
            assert!(!text.contains(&raw), "{text}");
        }
    }
}
