//! One push request, checked in the order a push service does (webpush spec §2–§5): the
//! subscription, VAPID, the script, the RFC 8030 headers, the size, then decryption.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

use hyper::Method;
use hyper::header::{AUTHORIZATION, CONTENT_ENCODING};
use hyper::http::request::Parts;

use super::script::WebPushReply;
use super::{Answer, MAX_VERIFIED, ReceivedPush, WebPushState};
use crate::emulator::stats::lock;
use crate::webpush::{
    Urgency, VerifiedVapid, b64_decode, check_topic, decrypt, verify_authorization,
};

/// The answer to a push to subscription `id`, delivering it when everything checks out.
pub(super) async fn handle(state: &WebPushState, id: &str, parts: &Parts, body: &[u8]) -> Answer {
    if parts.method != Method::POST {
        return Answer::text(405, "pushes are POSTed".into());
    }
    let vapid = match authorize(state, id, parts) {
        Ok(vapid) => vapid,
        Err(answer) => return answer,
    };
    let script = state.shared.script();
    let script = &script.webpush;
    if let Some(burst) = &script.status_burst
        && state.burst_seen.fetch_add(1, Relaxed) < burst.times
    {
        let mut answer = Answer::status(burst.status, burst.body.as_deref());
        answer.retry_after.clone_from(&burst.retry_after);
        return answer;
    }
    let delay = match script.reply_for(id) {
        WebPushReply::Deliver => Duration::ZERO,
        WebPushReply::Delay { ms } => Duration::from_millis(*ms),
        WebPushReply::Status {
            status,
            retry_after,
            body,
        } => {
            let mut answer = Answer::status(*status, body.as_deref());
            answer.retry_after.clone_from(retry_after);
            return answer;
        }
    };
    let headers = match Headers::read(parts) {
        Ok(h) => h,
        Err(reason) => return Answer::text(400, reason),
    };
    if body.len() > script.max_body {
        return Answer::text(
            413,
            format!(
                "{} bytes: this service takes at most {}",
                body.len(),
                script.max_body
            ),
        );
    }
    let (endpoint, payload) = {
        let subscriptions = lock(&state.subscriptions);
        let Some(minted) = subscriptions.get(id) else {
            return Answer::text(404, "no such subscription".into());
        };
        let payload = if body.is_empty() {
            None
        } else if !headers.aes128gcm {
            return Answer::text(400, "a body needs Content-Encoding: aes128gcm".into());
        } else {
            // A real service forwards what it cannot read and the browser drops it; the
            // emulator says so at once.
            match decrypt(&minted.keys, body) {
                Ok(plain) => Some(plain),
                Err(e) => return Answer::text(400, format!("cannot decrypt the body: {e}")),
            }
        };
        (minted.endpoint.clone(), payload)
    };
    tokio::time::sleep(delay).await;
    if state.shared.track_ids {
        lock(&state.received).push(ReceivedPush {
            endpoint,
            payload,
            ttl: headers.ttl,
            urgency: headers.urgency,
            topic: headers.topic,
            subject: vapid.subject,
            version: format!("{:?}", parts.version),
        });
    }
    let n = state.next_message.fetch_add(1, Relaxed);
    Answer {
        location: Some(format!("{}/message/{n}", state.origin)),
        ttl: Some(headers.ttl),
        ..Answer::text(201, String::new())
    }
}

/// The subscription exists and the VAPID header is valid for it: 404, 401 or 403 otherwise.
fn authorize(state: &WebPushState, id: &str, parts: &Parts) -> Result<VerifiedVapid, Answer> {
    let required_key = {
        let subscriptions = lock(&state.subscriptions);
        let minted = subscriptions
            .get(id)
            .ok_or_else(|| Answer::text(404, "no such subscription".into()))?;
        minted.application_server_key.clone()
    };
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Answer::text(401, "missing Authorization: vapid t=…, k=…".into()))?;
    let now = SystemTime::now();
    let cached = lock(&state.verified)
        .get(header)
        .filter(|v| v.exp > unix_now(now))
        .cloned();
    let vapid = match cached {
        Some(v) => v,
        None => {
            let v = verify_authorization(header, &state.origin, now)
                .map_err(|reason| Answer::text(401, reason))?;
            let mut verified = lock(&state.verified);
            if verified.len() >= MAX_VERIFIED {
                verified.clear();
            }
            verified.insert(header.to_owned(), v.clone());
            v
        }
    };
    if let Some(required) = required_key
        && b64_decode(&vapid.key).ok() != Some(required)
    {
        return Err(Answer::text(
            403,
            "k is not the applicationServerKey this subscription was made with".into(),
        ));
    }
    Ok(vapid)
}

fn unix_now(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The RFC 8030 headers of a push.
struct Headers {
    ttl: u32,
    urgency: Option<Urgency>,
    topic: Option<String>,
    aes128gcm: bool,
}

impl Headers {
    /// The headers, or the 400 text.
    fn read(parts: &Parts) -> Result<Headers, String> {
        let text = |name: &str| -> Result<Option<&str>, String> {
            match parts.headers.get(name) {
                None => Ok(None),
                Some(v) => v
                    .to_str()
                    .map(|v| Some(v.trim()))
                    .map_err(|_| format!("{name}: not ASCII")),
            }
        };
        let ttl = text("ttl")?.ok_or("the TTL header is required")?;
        let ttl = ttl
            .parse()
            .map_err(|_| format!("TTL `{ttl}`: not a number of seconds"))?;
        let urgency = text("urgency")?
            .map(str::parse)
            .transpose()
            .map_err(|e: String| format!("Urgency: {e}"))?;
        let topic = text("topic")?.map(str::to_owned);
        if let Some(topic) = &topic {
            check_topic(topic).map_err(|e| format!("Topic: {e}"))?;
        }
        let aes128gcm =
            text(CONTENT_ENCODING.as_str())?.is_some_and(|v| v.eq_ignore_ascii_case("aes128gcm"));
        Ok(Headers {
            ttl,
            urgency,
            topic,
            aes128gcm,
        })
    }
}
