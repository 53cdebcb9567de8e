//! The browser's `PushSubscription` (webpush spec §1): parsed from its JSON and validated, so
//! that a bad subscription is refused before anything is encrypted or sent.

use std::fmt;

use hyper::Uri;
use p256::PublicKey;
use serde::{Deserialize, Serialize};

use super::{b64_decode, b64_encode};

/// Length of the `auth` secret (RFC 8291 §3.2).
pub const AUTH_SECRET_LEN: usize = 16;
/// Length of an uncompressed P-256 point, the form `p256dh` must have (RFC 8291 §3.1).
pub(crate) const POINT_LEN: usize = 65;

/// Why a subscription was refused. Texts name the JSON field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// The text is not a JSON object of the `PushSubscription` shape.
    #[error("not a PushSubscription JSON object: {0}")]
    Json(String),
    /// A field is missing or has an unusable value.
    #[error("subscription `{field}`: {reason}")]
    InvalidField {
        /// The field, e.g. `keys.p256dh`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> SubscriptionError {
    SubscriptionError::InvalidField {
        field,
        reason: reason.into(),
    }
}

/// A validated browser push subscription: where to post (`endpoint`) and the user agent's
/// keys to encrypt for (`p256dh`, `auth`).
///
/// It reads and writes the JSON of `PushSubscription.toJSON()` (base64url keys, padded or
/// not on input, unpadded on output):
///
/// ```
/// use gcm_ccs::webpush::Subscription;
///
/// let json = r#"{"endpoint":"https://updates.push.services.mozilla.com/wpush/v2/gAAAA",
///   "expirationTime":null,
///   "keys":{"p256dh":"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
///           "auth":"BTBZMqHH6r4Tts7J_aSIgg"}}"#;
/// let sub = Subscription::from_json(json)?;
/// assert_eq!(sub.origin(), "https://updates.push.services.mozilla.com");
/// # Ok::<(), gcm_ccs::webpush::SubscriptionError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawSubscription", into = "RawSubscription")]
pub struct Subscription {
    endpoint: String,
    uri: Uri,
    origin: String,
    p256dh: PublicKey,
    auth: [u8; AUTH_SECRET_LEN],
    expiration_time: Option<u64>,
}

/// The JSON shape, before validation.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSubscription {
    endpoint: String,
    #[serde(default)]
    expiration_time: Option<serde_json::Value>,
    keys: RawKeys,
}

#[derive(Serialize, Deserialize)]
struct RawKeys {
    p256dh: String,
    auth: String,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The keys are not secret, but long and of no use in a log line.
        f.debug_struct("Subscription")
            .field("endpoint", &self.endpoint)
            .field("expiration_time", &self.expiration_time)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// Parses and validates the JSON of a `PushSubscription`.
    pub fn from_json(text: &str) -> Result<Subscription, SubscriptionError> {
        let raw: RawSubscription = serde_json::from_str(text.trim_start_matches('\u{feff}'))
            .map_err(|e| SubscriptionError::Json(e.to_string()))?;
        raw.try_into()
    }

    /// A subscription from its parts: `p256dh` and `auth` in base64url (padded or not).
    pub fn new(
        endpoint: &str,
        p256dh: &str,
        auth: &str,
    ) -> Result<Subscription, SubscriptionError> {
        let (uri, origin) = endpoint_origin(endpoint)?;
        Ok(Subscription {
            endpoint: endpoint.to_owned(),
            uri,
            origin,
            p256dh: parse_point(p256dh)?,
            auth: parse_auth(auth)?,
            expiration_time: None,
        })
    }

    /// The push service URL to post to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The endpoint's origin (`https://host[:port]`): the VAPID `aud` and the connection key.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// When the subscription expires, in milliseconds since the Unix epoch, if the browser said.
    pub fn expiration_time(&self) -> Option<u64> {
        self.expiration_time
    }

    /// The JSON the browser gave (unpadded base64url keys).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a subscription always serializes")
    }

    pub(crate) fn uri(&self) -> &Uri {
        &self.uri
    }

    pub(crate) fn p256dh(&self) -> &PublicKey {
        &self.p256dh
    }

    pub(crate) fn auth(&self) -> &[u8; AUTH_SECRET_LEN] {
        &self.auth
    }
}

impl TryFrom<RawSubscription> for Subscription {
    type Error = SubscriptionError;

    fn try_from(raw: RawSubscription) -> Result<Subscription, SubscriptionError> {
        let mut sub = Subscription::new(&raw.endpoint, &raw.keys.p256dh, &raw.keys.auth)?;
        sub.expiration_time = parse_expiration(raw.expiration_time)?;
        Ok(sub)
    }
}

impl From<Subscription> for RawSubscription {
    fn from(sub: Subscription) -> RawSubscription {
        use p256::elliptic_curve::sec1::ToSec1Point;
        RawSubscription {
            endpoint: sub.endpoint,
            expiration_time: Some(sub.expiration_time.into()),
            keys: RawKeys {
                p256dh: b64_encode(sub.p256dh.to_sec1_point(false).as_bytes()),
                auth: b64_encode(&sub.auth),
            },
        }
    }
}

/// The parsed endpoint and its origin; only `https://host/…` URLs are push endpoints.
fn endpoint_origin(endpoint: &str) -> Result<(Uri, String), SubscriptionError> {
    let field = "endpoint";
    let uri: Uri = endpoint
        .parse()
        .map_err(|e| invalid(field, format!("`{endpoint}` is not a URL: {e}")))?;
    if uri.scheme_str() != Some("https") {
        return Err(invalid(
            field,
            format!(
                "`{endpoint}` is not an https:// URL (push services are only reached over TLS)"
            ),
        ));
    }
    let authority = uri
        .authority()
        .filter(|a| !a.host().is_empty())
        .ok_or_else(|| invalid(field, format!("`{endpoint}` has no host")))?;
    if authority.as_str().contains('@') {
        return Err(invalid(
            field,
            format!("`{endpoint}` carries user information"),
        ));
    }
    let origin = match authority.port_u16() {
        Some(443) | None => format!("https://{}", authority.host()),
        Some(port) => format!("https://{}:{port}", authority.host()),
    };
    Ok((uri, origin.to_ascii_lowercase()))
}

/// `p256dh`: an uncompressed point on P-256.
fn parse_point(text: &str) -> Result<PublicKey, SubscriptionError> {
    let field = "keys.p256dh";
    let bytes = b64_decode(text).map_err(|e| invalid(field, e))?;
    if bytes.len() != POINT_LEN || bytes[0] != 0x04 {
        return Err(invalid(
            field,
            format!(
                "{} bytes: expected an uncompressed P-256 point (65 bytes starting with 0x04)",
                bytes.len()
            ),
        ));
    }
    PublicKey::from_sec1_bytes(&bytes).map_err(|_| invalid(field, "not a point on the P-256 curve"))
}

/// `auth`: exactly 16 bytes.
fn parse_auth(text: &str) -> Result<[u8; AUTH_SECRET_LEN], SubscriptionError> {
    let field = "keys.auth";
    let bytes = b64_decode(text).map_err(|e| invalid(field, e))?;
    <[u8; AUTH_SECRET_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        invalid(
            field,
            format!(
                "{} bytes: the auth secret is {AUTH_SECRET_LEN} bytes",
                bytes.len()
            ),
        )
    })
}

/// `expirationTime`: `null` or a non-negative number of milliseconds since the epoch.
fn parse_expiration(value: Option<serde_json::Value>) -> Result<Option<u64>, SubscriptionError> {
    use serde_json::Value;
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(ms) = n.as_u64() {
                return Ok(Some(ms));
            }
            match n.as_f64() {
                // A DOMHighResTimeStamp may have a fraction; whole milliseconds are enough.
                Some(ms) if ms >= 0.0 && ms < u64::MAX as f64 => Ok(Some(ms as u64)),
                _ => Err(invalid(
                    "expirationTime",
                    format!("{n}: expected null or milliseconds since 1970"),
                )),
            }
        }
        Some(other) => Err(invalid(
            "expirationTime",
            format!("{other}: expected null or milliseconds since 1970"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P256DH: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

    fn json(endpoint: &str, p256dh: &str, auth: &str, exp: &str) -> String {
        format!(
            r#"{{"endpoint":"{endpoint}","expirationTime":{exp},"keys":{{"p256dh":"{p256dh}","auth":"{auth}"}}}}"#
        )
    }

    fn field_of(e: SubscriptionError) -> &'static str {
        match e {
            SubscriptionError::InvalidField { field, .. } => field,
            SubscriptionError::Json(text) => panic!("not a field error: {text}"),
        }
    }

    #[test]
    fn a_browser_subscription_round_trips() {
        let text = json(
            "https://fcm.googleapis.com/fcm/send/abc:def",
            P256DH,
            AUTH,
            "null",
        );
        let sub = Subscription::from_json(&text).unwrap();
        assert_eq!(sub.origin(), "https://fcm.googleapis.com");
        assert_eq!(sub.expiration_time(), None);
        let back: serde_json::Value = serde_json::from_str(&sub.to_json()).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(&text).unwrap()
        );
        assert_eq!(Subscription::from_json(&sub.to_json()).unwrap(), sub);
    }

    #[test]
    fn padded_keys_ports_and_expiration_times() {
        let text = json(
            "https://127.0.0.1:8443/push/x",
            &format!("{P256DH}="),
            &format!("{AUTH}=="),
            "1700000000000.5",
        );
        let sub = Subscription::from_json(&text).unwrap();
        assert_eq!(sub.origin(), "https://127.0.0.1:8443");
        assert_eq!(sub.expiration_time(), Some(1_700_000_000_000));
        let sub = Subscription::new("https://Push.Example:443/a", P256DH, AUTH).unwrap();
        assert_eq!(sub.origin(), "https://push.example");
    }

    #[test]
    fn each_bad_field_is_named() {
        let e = |endpoint: &str, p: &str, a: &str, exp: &str| {
            field_of(Subscription::from_json(&json(endpoint, p, a, exp)).unwrap_err())
        };
        let ok = "https://push.example/x";
        assert_eq!(e("http://push.example/x", P256DH, AUTH, "null"), "endpoint");
        assert_eq!(e("push.example/x", P256DH, AUTH, "null"), "endpoint");
        assert_eq!(
            e("https://u:p@push.example/x", P256DH, AUTH, "null"),
            "endpoint"
        );
        // A point with its last byte changed is off the curve.
        let mut off = b64_decode(P256DH).unwrap();
        off[64] ^= 1;
        assert_eq!(e(ok, &b64_encode(&off), AUTH, "null"), "keys.p256dh");
        // The compressed form of a valid point is refused: RFC 8291 wants it uncompressed.
        let compressed = {
            use p256::elliptic_curve::sec1::ToSec1Point;
            let key = parse_point(P256DH).unwrap();
            b64_encode(key.to_sec1_point(true).as_bytes())
        };
        assert_eq!(e(ok, &compressed, AUTH, "null"), "keys.p256dh");
        assert_eq!(e(ok, "not base64!", AUTH, "null"), "keys.p256dh");
        assert_eq!(e(ok, P256DH, &b64_encode(&[7; 15]), "null"), "keys.auth");
        assert_eq!(e(ok, P256DH, &b64_encode(&[7; 17]), "null"), "keys.auth");
        assert_eq!(e(ok, P256DH, AUTH, "\"tomorrow\""), "expirationTime");
        assert_eq!(e(ok, P256DH, AUTH, "-1"), "expirationTime");
        let text = Subscription::from_json(&json(ok, P256DH, &b64_encode(&[7; 15]), "null"))
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("keys.auth") && text.contains("15 bytes"),
            "{text}"
        );
    }

    #[test]
    fn malformed_json_is_a_json_error() {
        for text in [
            "",
            "{",
            "[]",
            r#"{"endpoint":"https://a/b"}"#,
            r#"{"endpoint":5,"keys":{}}"#,
        ] {
            assert!(
                matches!(
                    Subscription::from_json(text),
                    Err(SubscriptionError::Json(_))
                ),
                "{text}"
            );
        }
    }
}
