//! The emulator's Web Push service ([`EmulatorConfig::webpush_listen`]): it mints
//! subscriptions with real keys (`POST /subscribe`, or [`Emulator::webpush_subscribe`]),
//! checks each push as a push service does (VAPID signature, `aud`, `exp`, the key the
//! subscription was made with, `TTL`, `Urgency`, `Topic`, size), decrypts the body with the
//! subscription's private key using the crate's own decryption, records what the browser
//! would receive, and can be scripted ([`WebPushScript`]).
//!
//! [`EmulatorConfig::webpush_listen`]: super::EmulatorConfig::webpush_listen
//! [`Emulator::webpush_subscribe`]: super::Emulator::webpush_subscribe

mod push;
mod script;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, LOCATION, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

pub use script::{WebPushReply, WebPushRule, WebPushScript};

use super::https::{Handler, Listener};
use super::stats::lock;
use super::{EmulatorError, Identity, Shared};
use crate::webpush::{Subscription, Urgency, UserAgentKeys, VerifiedVapid, b64_decode, b64_encode};

/// Largest `POST /subscribe` or push body read; pushes over the script's `max_body` get 413.
const MAX_READ: usize = 64 * 1024;
/// Verified VAPID headers kept (a real service caches them too); cleared when full.
const MAX_VERIFIED: usize = 4096;

/// A push as the emulated browser received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedPush {
    /// The subscription's endpoint.
    pub endpoint: String,
    /// The decrypted payload; `None` for a push without a body.
    pub payload: Option<Vec<u8>>,
    /// The `TTL` header.
    pub ttl: u32,
    /// The `Urgency` header.
    pub urgency: Option<Urgency>,
    /// The `Topic` header.
    pub topic: Option<String>,
    /// The VAPID `sub` claim: who sent it.
    pub subject: String,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
}

/// Counters of the Web Push service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WebPushStats {
    /// TLS connections accepted.
    pub connections: u64,
    /// Subscriptions minted.
    pub subscriptions: u64,
    /// Push requests received (every attempt).
    pub requests: u64,
    /// Pushes delivered (answered 201).
    pub delivered: u64,
    /// Pushes answered with another status.
    pub refused: u64,
    /// The most push requests being answered at once.
    pub max_in_flight: u64,
}

/// One minted subscription, as the browser holds it.
struct Minted {
    keys: UserAgentKeys,
    endpoint: String,
    /// The `applicationServerKey` it was made with: pushes must be signed with it.
    application_server_key: Option<Vec<u8>>,
}

/// The `POST /subscribe` body (all optional).
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SubscribeRequest {
    application_server_key: Option<String>,
    label: Option<String>,
}

/// State of the Web Push service; the script and `track_ids` are the emulator's.
pub(crate) struct WebPushState {
    shared: Arc<Shared>,
    /// `https://<addr>`: the `aud` pushes must be signed for.
    origin: String,
    subscriptions: Mutex<HashMap<String, Minted>>,
    /// Pushes that passed the VAPID check, counted against the script's status burst.
    burst_seen: AtomicU32,
    verified: Mutex<HashMap<String, VerifiedVapid>>,
    received: Mutex<Vec<ReceivedPush>>,
    requests: AtomicU64,
    delivered: AtomicU64,
    refused: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    next_message: AtomicU64,
}

impl WebPushState {
    /// A new subscription; `label` starts its id (for script rules).
    pub fn subscribe(
        &self,
        label: &str,
        application_server_key: Option<&str>,
    ) -> Result<Subscription, String> {
        let application_server_key = match application_server_key {
            Some(key) => {
                let bytes = b64_decode(key).map_err(|e| format!("applicationServerKey: {e}"))?;
                if bytes.len() != 65 || bytes[0] != 0x04 {
                    return Err("applicationServerKey: not an uncompressed P-256 public key".into());
                }
                Some(bytes)
            }
            None => None,
        };
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("label `{label}`: only A-Z a-z 0-9 - _ are allowed"));
        }
        let id = format!("{label}{}", b64_encode(&rand::random::<[u8; 16]>()));
        let endpoint = format!("{}/push/{id}", self.origin);
        let keys = UserAgentKeys::generate();
        let subscription = keys
            .subscription(&endpoint)
            .map_err(|e| format!("minting a subscription: {e}"))?;
        lock(&self.subscriptions).insert(
            id,
            Minted {
                keys,
                endpoint,
                application_server_key,
            },
        );
        Ok(subscription)
    }

    /// Every push delivered so far (kept with `track_ids`).
    pub fn received(&self) -> Vec<ReceivedPush> {
        lock(&self.received).clone()
    }

    /// Restarts the status burst (the script changed).
    pub fn reset_burst(&self) {
        self.burst_seen.store(0, Relaxed);
    }

    fn stats(&self, connections: u64) -> WebPushStats {
        WebPushStats {
            connections,
            subscriptions: lock(&self.subscriptions).len() as u64,
            requests: self.requests.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            refused: self.refused.load(Relaxed),
            max_in_flight: self.max_in_flight.load(Relaxed),
        }
    }

    /// `POST /subscribe`: 201 with the browser-shaped subscription JSON.
    fn subscribe_answer(&self, body: &[u8]) -> Answer {
        let request: SubscribeRequest = if body.iter().all(u8::is_ascii_whitespace) {
            SubscribeRequest::default()
        } else {
            match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => return Answer::text(400, format!("subscribe body: {e}")),
            }
        };
        match self.subscribe(
            request.label.as_deref().unwrap_or(""),
            request.application_server_key.as_deref(),
        ) {
            Ok(sub) => Answer {
                content_type: "application/json",
                ..Answer::text(201, sub.to_json())
            },
            Err(reason) => Answer::text(400, reason),
        }
    }

    async fn serve(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, MAX_READ).collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => {
                return Answer::text(413, format!("body over {MAX_READ} bytes")).into_response();
            }
        };
        let path = parts.uri.path();
        if path == "/subscribe" && parts.method == Method::POST {
            return self.subscribe_answer(&body).into_response();
        }
        let Some(id) = path.strip_prefix("/push/") else {
            return Answer::text(404, "not a push endpoint".into()).into_response();
        };
        self.requests.fetch_add(1, Relaxed);
        let in_flight = InFlight::enter(&self.in_flight);
        self.max_in_flight.fetch_max(in_flight.now, Relaxed);
        let answer = push::handle(self, id, &parts, &body).await;
        drop(in_flight);
        if answer.status == 201 {
            self.delivered.fetch_add(1, Relaxed);
        } else {
            self.refused.fetch_add(1, Relaxed);
        }
        answer.into_response()
    }
}

impl Handler for WebPushState {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        self.serve(req).await
    }
}

/// One push being answered; leaving (also when the client gives up) counts it out.
struct InFlight<'a> {
    counter: &'a AtomicU64,
    /// Pushes being answered, this one included.
    now: u64,
}

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicU64) -> Self {
        let now = counter.fetch_add(1, Relaxed) + 1;
        InFlight { counter, now }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Relaxed);
    }
}

/// A response of the service.
pub(crate) struct Answer {
    status: u16,
    content_type: &'static str,
    body: String,
    location: Option<String>,
    ttl: Option<u32>,
    retry_after: Option<String>,
}

impl Answer {
    fn text(status: u16, body: String) -> Answer {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body,
            location: None,
            ttl: None,
            retry_after: None,
        }
    }

    /// `status` with the given body or its reason phrase.
    fn status(status: u16, body: Option<&str>) -> Answer {
        let reason = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        Answer::text(status, body.unwrap_or(reason).to_owned())
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(self.body)));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        let mut add = |name, value: Option<String>| {
            if let Some(value) = value.and_then(|v| HeaderValue::try_from(v).ok()) {
                headers.insert(name, value);
            }
        };
        add(LOCATION, self.location);
        add(RETRY_AFTER, self.retry_after);
        add(
            hyper::header::HeaderName::from_static("ttl"),
            self.ttl.map(|t| t.to_string()),
        );
        response
    }
}

/// The running service; dropping it stops accepting and closes its connections.
pub(crate) struct WebPushServer {
    pub state: Arc<WebPushState>,
    listener: Listener,
}

impl WebPushServer {
    /// Binds `listen` and serves with `identity`, offering `h2` and `http/1.1` by ALPN.
    pub async fn start(
        listen: SocketAddr,
        identity: &Identity,
        shared: Arc<Shared>,
    ) -> Result<WebPushServer, EmulatorError> {
        let bound = Listener::bind(listen).await?;
        let origin = match bound.1 {
            SocketAddr::V4(a) => format!("https://{a}"),
            SocketAddr::V6(a) => format!("https://[{}]:{}", a.ip(), a.port()),
        };
        let handshake_timeout = shared.handshake_timeout;
        let state = Arc::new(WebPushState {
            shared,
            origin,
            subscriptions: Mutex::new(HashMap::new()),
            burst_seen: AtomicU32::new(0),
            verified: Mutex::new(HashMap::new()),
            received: Mutex::new(Vec::new()),
            requests: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            next_message: AtomicU64::new(1),
        });
        let listener = Listener::serve(bound, identity, handshake_timeout, state.clone())?;
        Ok(WebPushServer { state, listener })
    }

    /// The service's origin, `https://<ip>:<port>`.
    pub fn origin(&self) -> &str {
        &self.state.origin
    }

    /// The counters.
    pub fn stats(&self) -> WebPushStats {
        self.state.stats(self.listener.connections.load(Relaxed))
    }

    /// Stops accepting and closes every connection.
    pub fn stop(&self) {
        self.listener.stop();
    }
}
