//! RFC 8291 message encryption in the RFC 8188 `aes128gcm` content coding (webpush spec §4):
//! one record of at most 4096 bytes, a fresh salt and sender key pair per message. The
//! emulator decrypts with the same key schedule ([`decrypt`]), so the two cannot drift apart.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes128Gcm, Key, Nonce};
use hkdf::Hkdf;
use p256::elliptic_curve::Generate;
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::{PublicKey, SecretKey};
use sha2::Sha256;

use super::error::PushError;
use super::subscription::{AUTH_SECRET_LEN, POINT_LEN, Subscription};

/// The largest plaintext one push may carry: a 4096-byte record minus the 86-byte header, the
/// 16-byte tag and the 1-byte padding delimiter (webpush spec §3).
pub const MAX_PLAINTEXT: usize = 3993;
/// The record size written in the header (RFC 8291 §4: one record, at most 4096 bytes).
const RECORD_SIZE: u32 = 4096;
const SALT_LEN: usize = 16;
/// salt, rs, idlen, keyid (the sender's public key).
const HEADER_LEN: usize = SALT_LEN + 4 + 1 + POINT_LEN;
const TAG_LEN: usize = 16;
/// The padding delimiter of the last (here: only) record.
const LAST_RECORD: u8 = 0x02;

/// Encrypts `plaintext` for `subscription`: the `aes128gcm` body of a push. Plaintexts over
/// [`MAX_PLAINTEXT`] bytes are refused. [`WebPushSender`](super::WebPushSender) does this
/// for you; it is public for callers who post with their own HTTP client.
pub fn encrypt(subscription: &Subscription, plaintext: &[u8]) -> Result<Vec<u8>, PushError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(PushError::PayloadTooLarge {
            size: plaintext.len(),
            limit: MAX_PLAINTEXT,
        });
    }
    Ok(seal(
        SenderKeys::fresh(),
        subscription.p256dh(),
        subscription.auth(),
        plaintext,
    ))
}

/// The sender's secrets for one message.
struct SenderKeys {
    salt: [u8; SALT_LEN],
    secret: SecretKey,
}

impl SenderKeys {
    /// A fresh random salt and ECDH key pair.
    fn fresh() -> SenderKeys {
        SenderKeys {
            salt: rand::random(),
            secret: SecretKey::generate(),
        }
    }
}

/// The body for `plaintext` (at most [`MAX_PLAINTEXT`] bytes) with the given sender secrets.
fn seal(
    keys: SenderKeys,
    ua_public: &PublicKey,
    auth: &[u8; AUTH_SECRET_LEN],
    plaintext: &[u8],
) -> Vec<u8> {
    let as_public = keys.secret.public_key().to_sec1_point(false);
    let shared = keys.secret.diffie_hellman(ua_public);
    let (cek, nonce) = derive(
        shared.raw_secret_bytes(),
        auth,
        ua_public.to_sec1_point(false).as_bytes(),
        as_public.as_bytes(),
        &keys.salt,
    );
    let mut body = Vec::with_capacity(HEADER_LEN + plaintext.len() + 1 + TAG_LEN);
    body.extend_from_slice(&keys.salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(POINT_LEN as u8);
    body.extend_from_slice(as_public.as_bytes());
    body.extend_from_slice(plaintext);
    body.push(LAST_RECORD);
    let tag = cipher(&cek)
        .encrypt_inout_detached(&nonce, b"", (&mut body[HEADER_LEN..]).into())
        .expect("a 4 KiB record is far below AES-GCM's length limit");
    body.extend_from_slice(&tag);
    body
}

/// The content-encryption key and nonce (RFC 8291 §3.3–3.4, RFC 8188 §2.2–2.3).
fn derive(
    ecdh_secret: &[u8],
    auth: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
    salt: &[u8],
) -> (Key<Aes128Gcm>, Nonce<aes_gcm::aead::consts::U12>) {
    const LENGTHS: &str = "16, 12 and 32 bytes are valid HKDF-SHA-256 output lengths";
    let mut key_info = Vec::with_capacity(14 + 2 * POINT_LEN);
    key_info.extend_from_slice(b"WebPush: info\0");
    key_info.extend_from_slice(ua_public);
    key_info.extend_from_slice(as_public);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth), ecdh_secret)
        .expand(&key_info, &mut ikm)
        .expect(LENGTHS);
    let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let mut cek = [0u8; 16];
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .expect(LENGTHS);
    let mut nonce = [0u8; 12];
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
        .expect(LENGTHS);
    (cek.into(), nonce.into())
}

fn cipher(cek: &Key<Aes128Gcm>) -> Aes128Gcm {
    Aes128Gcm::new(cek)
}

/// A user agent's side of a subscription: its ECDH key pair and auth secret (the emulator
/// plays the browser with these).
#[cfg(any(test, feature = "emulator"))]
pub(crate) struct UserAgentKeys {
    secret: SecretKey,
    /// The public key, uncompressed (part of the key schedule of every message).
    public: [u8; POINT_LEN],
    auth: [u8; AUTH_SECRET_LEN],
}

/// Why a body could not be decrypted.
#[cfg(any(test, feature = "emulator"))]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecryptError {
    #[error("{0} bytes: shorter than the aes128gcm header, a delimiter and the tag")]
    Truncated(usize),
    #[error("record size {0}: below the minimum of 18")]
    RecordSize(u32),
    #[error("{0}-byte key id: expected the sender's 65-byte public key")]
    KeyIdLength(u8),
    #[error("the key id is not an uncompressed P-256 point")]
    SenderKey,
    #[error("the record is larger than the record size {0}: only one record is allowed")]
    MultipleRecords(u32),
    #[error("authentication failed: wrong keys or a corrupted body")]
    Authentication,
    #[error("no 0x02 delimiter after the padding: not the last record")]
    Delimiter,
}

#[cfg(any(test, feature = "emulator"))]
impl UserAgentKeys {
    /// A fresh key pair and auth secret, as a browser makes when subscribing.
    pub fn generate() -> UserAgentKeys {
        UserAgentKeys::new(SecretKey::generate(), rand::random())
    }

    fn new(secret: SecretKey, auth: [u8; AUTH_SECRET_LEN]) -> UserAgentKeys {
        let mut public = [0; POINT_LEN];
        public.copy_from_slice(secret.public_key().to_sec1_point(false).as_bytes());
        UserAgentKeys {
            secret,
            public,
            auth,
        }
    }

    /// The subscription a browser would hand out for these keys at `endpoint`.
    pub fn subscription(&self, endpoint: &str) -> Result<Subscription, super::SubscriptionError> {
        Subscription::new(
            endpoint,
            &super::b64_encode(&self.public),
            &super::b64_encode(&self.auth),
        )
    }
}

/// The plaintext of an `aes128gcm` body sent to the holder of `keys`.
#[cfg(any(test, feature = "emulator"))]
pub(crate) fn decrypt(keys: &UserAgentKeys, body: &[u8]) -> Result<Vec<u8>, DecryptError> {
    if body.len() < HEADER_LEN + 1 + TAG_LEN {
        return Err(DecryptError::Truncated(body.len()));
    }
    let (header, record) = body.split_at(HEADER_LEN);
    let (salt, rest) = header.split_at(SALT_LEN);
    let rs = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    if rs < 18 {
        return Err(DecryptError::RecordSize(rs));
    }
    if usize::try_from(rs).is_ok_and(|rs| record.len() > rs) {
        return Err(DecryptError::MultipleRecords(rs));
    }
    if rest[4] as usize != POINT_LEN {
        return Err(DecryptError::KeyIdLength(rest[4]));
    }
    let as_public = &rest[5..];
    if as_public[0] != 0x04 {
        return Err(DecryptError::SenderKey);
    }
    let sender = PublicKey::from_sec1_bytes(as_public).map_err(|_| DecryptError::SenderKey)?;
    let shared = keys.secret.diffie_hellman(&sender);
    let (cek, nonce) = derive(
        shared.raw_secret_bytes(),
        &keys.auth,
        &keys.public,
        as_public,
        salt,
    );
    let (ciphertext, tag) = record.split_at(record.len() - TAG_LEN);
    let mut plain = ciphertext.to_vec();
    let tag = aes_gcm::Tag::<aes_gcm::aead::consts::U16>::try_from(tag)
        .map_err(|_| DecryptError::Authentication)?;
    cipher(&cek)
        .decrypt_inout_detached(&nonce, b"", plain.as_mut_slice().into(), &tag)
        .map_err(|_| DecryptError::Authentication)?;
    // Padding is zeros after the delimiter (RFC 8188 §2).
    let end = plain
        .iter()
        .rposition(|&b| b != 0)
        .ok_or(DecryptError::Delimiter)?;
    if plain[end] != LAST_RECORD {
        return Err(DecryptError::Delimiter);
    }
    plain.truncate(end);
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webpush::{b64_decode, b64_encode};
    use proptest::prelude::*;

    /// RFC 8291 §5 (webpush spec §4).
    const PLAINTEXT: &str = "V2hlbiBJIGdyb3cgdXAsIEkgd2FudCB0byBiZSBhIHdhdGVybWVsb24";
    const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    const UA_PUBLIC: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
    const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

    fn rfc_subscription() -> Subscription {
        Subscription::new(
            "https://push.example.net/push/JzLQ3raZJfFBR0aqvOMsLrt54w4rJUsV",
            UA_PUBLIC,
            AUTH,
        )
        .unwrap()
    }

    fn rfc_user_agent() -> UserAgentKeys {
        UserAgentKeys::new(
            SecretKey::from_slice(&b64_decode(UA_PRIVATE).unwrap()).unwrap(),
            b64_decode(AUTH).unwrap().try_into().unwrap(),
        )
    }

    #[test]
    fn rfc8291_vector_byte_for_byte() {
        let sub = rfc_subscription();
        let keys = SenderKeys {
            salt: b64_decode(SALT).unwrap().try_into().unwrap(),
            secret: SecretKey::from_slice(&b64_decode(AS_PRIVATE).unwrap()).unwrap(),
        };
        let body = seal(
            keys,
            sub.p256dh(),
            sub.auth(),
            &b64_decode(PLAINTEXT).unwrap(),
        );
        assert_eq!(body.len(), 144);
        assert_eq!(b64_encode(&body), BODY);
    }

    #[test]
    fn rfc8291_vector_decrypts() {
        let plain = decrypt(&rfc_user_agent(), &b64_decode(BODY).unwrap()).unwrap();
        assert_eq!(plain, b"When I grow up, I want to be a watermelon");
    }

    #[test]
    fn key_schedule_intermediates_match_the_rfc() {
        // CEK and NONCE of RFC 8291 §5, from the ECDH secret it lists.
        let (cek, nonce) = derive(
            &b64_decode("kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs").unwrap(),
            &b64_decode(AUTH).unwrap(),
            &b64_decode(UA_PUBLIC).unwrap(),
            &b64_decode("BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8").unwrap(),
            &b64_decode(SALT).unwrap(),
        );
        assert_eq!(b64_encode(&cek), "oIhVW04MRdy2XN9CiKLxTg");
        assert_eq!(b64_encode(&nonce), "4h_95klXJ5E_qnoN");
    }

    #[test]
    fn sizes_at_and_over_the_limit() {
        let ua = UserAgentKeys::generate();
        let sub = ua.subscription("https://push.example/x").unwrap();
        let body = encrypt(&sub, &[b'x'; MAX_PLAINTEXT]).unwrap();
        assert_eq!(
            body.len(),
            RECORD_SIZE as usize,
            "the largest plaintext fills the 4096-byte record"
        );
        assert_eq!(decrypt(&ua, &body).unwrap(), vec![b'x'; MAX_PLAINTEXT]);
        assert_eq!(
            encrypt(&sub, &[0; MAX_PLAINTEXT + 1]),
            Err(PushError::PayloadTooLarge {
                size: MAX_PLAINTEXT + 1,
                limit: MAX_PLAINTEXT
            })
        );
        let empty = encrypt(&sub, b"").unwrap();
        assert_eq!(empty.len(), HEADER_LEN + 1 + TAG_LEN);
        assert_eq!(decrypt(&ua, &empty).unwrap(), b"");
    }

    #[test]
    fn each_message_has_a_fresh_salt_and_sender_key() {
        let ua = UserAgentKeys::generate();
        let sub = ua.subscription("https://push.example/x").unwrap();
        let a = encrypt(&sub, b"same").unwrap();
        let b = encrypt(&sub, b"same").unwrap();
        assert_ne!(a[..SALT_LEN], b[..SALT_LEN]);
        assert_ne!(a[21..HEADER_LEN], b[21..HEADER_LEN]);
    }

    #[test]
    fn bad_bodies_are_refused_with_a_reason() {
        let ua = rfc_user_agent();
        let body = b64_decode(BODY).unwrap();
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = body.clone();
            f(&mut b);
            decrypt(&ua, &b)
        };
        assert_eq!(
            with(&|b| b.truncate(100)),
            Err(DecryptError::Truncated(100))
        );
        assert_eq!(
            with(&|b| b[16..20].copy_from_slice(&17u32.to_be_bytes())),
            Err(DecryptError::RecordSize(17))
        );
        assert_eq!(
            with(&|b| b[16..20].copy_from_slice(&40u32.to_be_bytes())),
            Err(DecryptError::MultipleRecords(40))
        );
        assert_eq!(with(&|b| b[20] = 64), Err(DecryptError::KeyIdLength(64)));
        assert_eq!(with(&|b| b[21] = 0x02), Err(DecryptError::SenderKey));
        assert_eq!(with(&|b| b[85] ^= 1), Err(DecryptError::SenderKey));
        assert_eq!(with(&|b| b[100] ^= 1), Err(DecryptError::Authentication));
        assert_eq!(with(&|b| b[0] ^= 1), Err(DecryptError::Authentication));
        let other = UserAgentKeys::generate();
        assert_eq!(decrypt(&other, &body), Err(DecryptError::Authentication));
    }

    #[test]
    fn padding_without_a_last_record_delimiter_is_refused() {
        // Build a record by hand whose delimiter is 0x01 (not the last record).
        let ua = UserAgentKeys::generate();
        let sub = ua.subscription("https://push.example/x").unwrap();
        let keys = SenderKeys::fresh();
        let salt = keys.salt;
        let as_public = keys.secret.public_key().to_sec1_point(false);
        let shared = keys.secret.diffie_hellman(sub.p256dh());
        let (cek, nonce) = derive(
            shared.raw_secret_bytes(),
            sub.auth(),
            sub.p256dh().to_sec1_point(false).as_bytes(),
            as_public.as_bytes(),
            &salt,
        );
        let mut body = salt.to_vec();
        body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
        body.push(65);
        body.extend_from_slice(as_public.as_bytes());
        body.extend_from_slice(b"hi\x01\0\0");
        let tag = cipher(&cek)
            .encrypt_inout_detached(&nonce, b"", (&mut body[HEADER_LEN..]).into())
            .unwrap();
        body.extend_from_slice(&tag);
        assert_eq!(decrypt(&ua, &body), Err(DecryptError::Delimiter));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn round_trips(plaintext in proptest::collection::vec(any::<u8>(), 0..=MAX_PLAINTEXT)) {
            let ua = UserAgentKeys::generate();
            let sub = ua.subscription("https://push.example/x").unwrap();
            let body = encrypt(&sub, &plaintext).unwrap();
            prop_assert_eq!(body.len(), HEADER_LEN + plaintext.len() + 1 + TAG_LEN);
            prop_assert_eq!(decrypt(&ua, &body).unwrap(), plaintext);
        }

        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decrypt(&rfc_user_agent(), &body);
        }
    }
}
