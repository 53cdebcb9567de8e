//! SASL PLAIN (RFC 4616): `authzid NUL authcid NUL password`, base64-encoded.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::wire::error::WireError;

/// Decoded SASL PLAIN credentials. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainCredentials {
    /// Authorization identity; empty for CCS clients (the emulator also accepts `== authcid`).
    pub authzid: String,
    /// Authentication identity, `SENDER_ID@gcm.googleapis.com`.
    pub authcid: String,
    /// The server key.
    pub password: String,
}

impl fmt::Debug for PlainCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainCredentials")
            .field("authzid", &self.authzid)
            .field("authcid", &self.authcid)
            .field("password", &"***")
            .finish()
    }
}

/// The base64 PLAIN message for `authcid` / `password`, with an empty authzid.
pub fn encode_plain(authcid: &str, password: &str) -> String {
    let mut message = Vec::with_capacity(authcid.len() + password.len() + 2);
    message.push(0);
    message.extend_from_slice(authcid.as_bytes());
    message.push(0);
    message.extend_from_slice(password.as_bytes());
    STANDARD.encode(message)
}

/// Decodes a base64 PLAIN message (surrounding whitespace is ignored).
pub fn decode_plain(b64: &str) -> Result<PlainCredentials, WireError> {
    let invalid = |why: &str| WireError::Malformed(format!("invalid SASL PLAIN message: {why}"));
    let raw = STANDARD
        .decode(b64.trim_ascii())
        .map_err(|_| invalid("not base64"))?;
    let raw = String::from_utf8(raw).map_err(|_| invalid("not UTF-8"))?;
    let mut fields = raw.split('\0');
    match (fields.next(), fields.next(), fields.next(), fields.next()) {
        (Some(authzid), Some(authcid), Some(password), None) => Ok(PlainCredentials {
            authzid: authzid.to_owned(),
            authcid: authcid.to_owned(),
            password: password.to_owned(),
        }),
        _ => Err(invalid("expected exactly two NUL separators")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR: &str = "ADEyMzQ1Njc4OTAxMkBnY20uZ29vZ2xlYXBpcy5jb20AQUl6YVN5RXhhbXBsZVNlcnZlcktleV8wMTIzNDU2Nzg5YWJjZA==";
    const AUTHCID: &str = "123456789012@gcm.googleapis.com";
    const KEY: &str = "AIzaSyExampleServerKey_0123456789abcd";

    #[test]
    fn spec_vector_round_trips() {
        assert_eq!(encode_plain(AUTHCID, KEY), VECTOR);
        let creds = decode_plain(VECTOR).unwrap();
        assert_eq!(
            creds,
            PlainCredentials {
                authzid: String::new(),
                authcid: AUTHCID.into(),
                password: KEY.into(),
            }
        );
        assert_eq!(decode_plain(&format!(" {VECTOR}\n")).unwrap(), creds);
    }

    #[test]
    fn authzid_is_kept() {
        let b64 = STANDARD.encode(format!("{AUTHCID}\0{AUTHCID}\0{KEY}"));
        let creds = decode_plain(&b64).unwrap();
        assert_eq!(creds.authzid, AUTHCID);
        assert_eq!(creds.password, KEY);
    }

    #[test]
    fn bad_messages_are_rejected() {
        for bad in [
            "not base64!".to_owned(),
            STANDARD.encode("no separators"),
            STANDARD.encode("\0only one"),
            STANDARD.encode("\0a\0b\0c"),
            STANDARD.encode([0, b'a', 0, 0xFF]),
        ] {
            assert!(
                matches!(decode_plain(&bad), Err(WireError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let shown = format!("{:?}", decode_plain(VECTOR).unwrap());
        assert!(!shown.contains(KEY), "{shown}");
        assert!(shown.contains("***") && shown.contains(AUTHCID), "{shown}");
    }
}
