//! One push as RFC 8030 §5 defines it (webpush spec §2): an optional payload, the required
//! `TTL`, and optional `Urgency` and `Topic`, validated when built.

use std::fmt;
use std::str::FromStr;

use hyper::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};
use hyper::http::request::Builder;

use super::encrypt::MAX_PLAINTEXT;
use super::error::PushError;

/// The `TTL` when none is given: 28 days, the longest FCM keeps a message.
pub const DEFAULT_TTL: u32 = 2_419_200;
/// The longest `Topic` (RFC 8030 §5.4).
pub const MAX_TOPIC_LEN: usize = 32;

/// How soon the browser should be woken for a push (RFC 8030 §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Urgency {
    /// `very-low`: e.g. advertisements; delivered on power and Wi-Fi.
    VeryLow,
    /// `low`: e.g. topic updates.
    Low,
    /// `normal`: the default of push services.
    Normal,
    /// `high`: e.g. an incoming call; delivered at once, battery permitting.
    High,
}

impl Urgency {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::VeryLow => "very-low",
            Urgency::Low => "low",
            Urgency::Normal => "normal",
            Urgency::High => "high",
        }
    }
}

impl fmt::Display for Urgency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Urgency {
    type Err = String;

    fn from_str(s: &str) -> Result<Urgency, String> {
        match s {
            "very-low" => Ok(Urgency::VeryLow),
            "low" => Ok(Urgency::Low),
            "normal" => Ok(Urgency::Normal),
            "high" => Ok(Urgency::High),
            other => Err(format!(
                "urgency `{other}`: expected very-low, low, normal or high"
            )),
        }
    }
}

/// One push message, validated: start from [`Push::builder`].
///
/// ```
/// use gcm_ccs::webpush::{Push, PushError, Urgency};
///
/// let push = Push::builder().payload("3x1").ttl(60).urgency(Urgency::High).topic("score").build()?;
/// assert_eq!(push.ttl(), 60);
/// let too_big = Push::builder().payload(vec![0u8; 3994]).build();
/// assert!(matches!(too_big, Err(PushError::PayloadTooLarge { size: 3994, .. })));
/// # Ok::<(), PushError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Push {
    payload: Option<Vec<u8>>,
    ttl: u32,
    urgency: Option<Urgency>,
    topic: Option<String>,
}

impl fmt::Debug for Push {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The payload is the user's content: its size is enough for a log.
        f.debug_struct("Push")
            .field("payload_len", &self.payload.as_ref().map(Vec::len))
            .field("ttl", &self.ttl)
            .field("urgency", &self.urgency)
            .field("topic", &self.topic)
            .finish()
    }
}

/// Builds a [`Push`]; [`PushBuilder::build`] validates.
#[derive(Debug, Clone, Default)]
pub struct PushBuilder {
    payload: Option<Vec<u8>>,
    ttl: Option<u32>,
    urgency: Option<Urgency>,
    topic: Option<String>,
}

impl Push {
    /// A push without payload, [`DEFAULT_TTL`], no urgency and no topic, to adjust.
    pub fn builder() -> PushBuilder {
        PushBuilder::default()
    }

    /// The plaintext (`None`: a push without a body, which only wakes the service worker).
    pub fn payload(&self) -> Option<&[u8]> {
        self.payload.as_deref()
    }

    /// Seconds the push service keeps the message while the browser is unreachable.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// The `Urgency` header, if any.
    pub fn urgency(&self) -> Option<Urgency> {
        self.urgency
    }

    /// The `Topic` header, if any: a newer push with the same topic replaces a pending one.
    pub fn topic(&self) -> Option<&str> {
        self.topic.as_deref()
    }

    /// The RFC 8030 headers on `request`; with `encrypted`, those of an `aes128gcm` body.
    pub(super) fn headers(&self, mut request: Builder, encrypted: bool) -> Builder {
        request = request.header("ttl", HeaderValue::from(self.ttl));
        if let Some(urgency) = self.urgency {
            request = request.header("urgency", HeaderValue::from_static(urgency.as_str()));
        }
        if let Some(topic) = &self.topic {
            // Validated: base64url characters only, so always a valid header value.
            request = request.header("topic", topic.as_str());
        }
        if encrypted {
            request = request
                .header(CONTENT_ENCODING, HeaderValue::from_static("aes128gcm"))
                .header(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
        }
        request
    }
}

impl PushBuilder {
    /// The plaintext to encrypt (at most [`MAX_PLAINTEXT`] bytes; may be empty).
    pub fn payload(mut self, payload: impl Into<Vec<u8>>) -> Self {
        self.payload = Some(payload.into());
        self
    }

    /// `TTL` in seconds (default [`DEFAULT_TTL`]; 0: deliver now or never).
    pub fn ttl(mut self, seconds: u32) -> Self {
        self.ttl = Some(seconds);
        self
    }

    /// `Urgency`.
    pub fn urgency(mut self, urgency: Urgency) -> Self {
        self.urgency = Some(urgency);
        self
    }

    /// `Topic`: 1 to 32 characters of the base64url alphabet.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Validates the payload size and the topic.
    pub fn build(self) -> Result<Push, PushError> {
        if let Some(payload) = &self.payload
            && payload.len() > MAX_PLAINTEXT
        {
            return Err(PushError::PayloadTooLarge {
                size: payload.len(),
                limit: MAX_PLAINTEXT,
            });
        }
        if let Some(topic) = &self.topic {
            check_topic(topic)?;
        }
        Ok(Push {
            payload: self.payload,
            ttl: self.ttl.unwrap_or(DEFAULT_TTL),
            urgency: self.urgency,
            topic: self.topic,
        })
    }
}

pub(crate) fn check_topic(topic: &str) -> Result<(), PushError> {
    let reason = if topic.is_empty() {
        "empty"
    } else if topic.len() > MAX_TOPIC_LEN {
        "longer than 32 characters"
    } else if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        "only the base64url characters A-Z a-z 0-9 - _ are allowed"
    } else {
        return Ok(());
    };
    Err(PushError::InvalidTopic {
        topic: topic.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_map(push: &Push, encrypted: bool) -> Vec<(String, String)> {
        let request = push
            .headers(hyper::Request::post("https://push.example/x"), encrypted)
            .body(())
            .unwrap();
        let mut headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        headers.sort();
        headers
    }

    #[test]
    fn headers_of_a_full_push_and_of_a_bare_one() {
        let push = Push::builder()
            .payload("hi")
            .ttl(60)
            .urgency(Urgency::VeryLow)
            .topic("a-B_9")
            .build()
            .unwrap();
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            header_map(&push, true),
            pairs(&[
                ("content-encoding", "aes128gcm"),
                ("content-type", "application/octet-stream"),
                ("topic", "a-B_9"),
                ("ttl", "60"),
                ("urgency", "very-low"),
            ])
        );
        let bare = Push::builder().build().unwrap();
        assert_eq!(bare.payload(), None);
        assert_eq!(header_map(&bare, false), pairs(&[("ttl", "2419200")]));
    }

    #[test]
    fn topics_and_sizes() {
        let topic = |t: &str| Push::builder().topic(t).build();
        assert!(topic(&"a".repeat(32)).is_ok());
        for bad in ["", &"a".repeat(33), "a b", "a=b", "ü", "a/b", "a+b"] {
            assert!(
                matches!(topic(bad), Err(PushError::InvalidTopic { .. })),
                "{bad:?}"
            );
        }
        assert!(
            Push::builder()
                .payload(vec![0; MAX_PLAINTEXT])
                .build()
                .is_ok()
        );
        assert_eq!(
            Push::builder().payload(vec![0; MAX_PLAINTEXT + 1]).build(),
            Err(PushError::PayloadTooLarge {
                size: MAX_PLAINTEXT + 1,
                limit: MAX_PLAINTEXT
            })
        );
        assert_eq!(
            Push::builder().payload("").build().unwrap().payload(),
            Some(&b""[..])
        );
    }

    #[test]
    fn urgency_names() {
        for u in [
            Urgency::VeryLow,
            Urgency::Low,
            Urgency::Normal,
            Urgency::High,
        ] {
            assert_eq!(u.as_str().parse::<Urgency>(), Ok(u));
        }
        assert!("urgent".parse::<Urgency>().is_err());
    }

    #[test]
    fn debug_shows_the_size_not_the_content() {
        let push = Push::builder().payload("secret text").build().unwrap();
        let text = format!("{push:?}");
        assert!(text.contains("11") && !text.contains("secret"), "{text}");
    }
}
