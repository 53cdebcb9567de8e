//! The emulator's legacy HTTP endpoint (http-legacy §9): `POST /gcm/send` and `/fcm/send` over
//! TLS (HTTP/1.1 and HTTP/2 by ALPN), key check, JSON and form bodies, scripted per-target
//! outcomes, status bursts, and a record of every request.

mod reply;
mod request;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;

use super::https::{Handler, Listener};
use super::stats::lock;
use super::{EmulatorError, Identity, Shared};
use reply::{Outcome, Planner};
use request::{Dest, Options};

/// Largest request body accepted (1000 tokens and a full payload fit easily).
const MAX_BODY: usize = 1 << 20;

/// One request the HTTP endpoint received (the `Authorization` header is not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequestRecord {
    /// `POST`, `GET`, …
    pub method: String,
    /// The request path, e.g. `/fcm/send`.
    pub path: String,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// `Content-Type` header.
    pub content_type: Option<String>,
    /// The body as text (lossy UTF-8).
    pub body: String,
    /// The status answered.
    pub status: u16,
    /// The `multicast_id` answered to a token send.
    pub multicast_id: Option<i64>,
    /// Targets the message was accepted for (0 for dry runs).
    pub delivered: usize,
}

/// What to answer to one request.
struct Answer {
    status: u16,
    content_type: &'static str,
    body: String,
    retry_after: Option<String>,
    delay: Duration,
    hang: bool,
    multicast_id: Option<i64>,
    delivered: usize,
}

impl Answer {
    fn new(status: u16, content_type: &'static str, body: String) -> Answer {
        Answer {
            status,
            content_type,
            body,
            retry_after: None,
            delay: Duration::ZERO,
            hang: false,
            multicast_id: None,
            delivered: 0,
        }
    }

    /// An HTML error page like Google's front ends serve.
    fn html(status: u16) -> Answer {
        let reason = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        let body = format!(
            "<HTML>\n<HEAD>\n<TITLE>{reason}</TITLE>\n</HEAD>\n<BODY BGCOLOR=\"#FFFFFF\" TEXT=\"#000000\">\n<H1>{reason}</H1>\n<H2>Error {status}</H2>\n</BODY>\n</HTML>\n"
        );
        Answer::new(status, "text/html; charset=UTF-8", body)
    }

    fn json(body: &Value) -> Answer {
        Answer::new(200, "application/json; charset=UTF-8", body.to_string())
    }

    fn text(status: u16, body: String) -> Answer {
        Answer::new(status, "text/plain; charset=UTF-8", body)
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(self.body)));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        if let Some(value) = self.retry_after.and_then(|v| HeaderValue::try_from(v).ok()) {
            headers.insert(RETRY_AFTER, value);
        }
        response
    }
}

/// State of the HTTP endpoint; the script and credentials are the XMPP side's.
pub(crate) struct HttpState {
    shared: Arc<Shared>,
    /// Authorized requests counted against the script's status burst.
    burst_seen: AtomicU32,
    copies: Mutex<HashMap<String, u32>>,
    requests: Mutex<Vec<HttpRequestRecord>>,
}

impl Handler for HttpState {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        self.serve_request(req).await
    }
}

impl HttpState {
    /// Every request so far.
    pub fn requests(&self) -> Vec<HttpRequestRecord> {
        lock(&self.requests).clone()
    }

    /// Restarts the status burst (the script changed).
    pub fn reset_burst(&self) {
        self.burst_seen.store(0, Relaxed);
    }

    async fn serve_request(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let answer = match Limited::new(body, MAX_BODY).collect().await {
            Ok(body) => {
                let body = body.to_bytes();
                let answer = self.handle(&parts, &body);
                self.record(&parts, &body, &answer);
                answer
            }
            Err(e) => Answer::text(413, format!("Request body unreadable: {e}\n")),
        };
        if answer.hang {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(answer.delay).await;
        answer.into_response()
    }

    fn record(&self, parts: &Parts, body: &[u8], answer: &Answer) {
        lock(&self.requests).push(HttpRequestRecord {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            version: format!("{:?}", parts.version),
            content_type: content_type(parts).map(str::to_owned),
            body: String::from_utf8_lossy(body).into_owned(),
            status: answer.status,
            multicast_id: answer.multicast_id,
            delivered: answer.delivered,
        });
    }

    fn handle(&self, parts: &Parts, body: &[u8]) -> Answer {
        if !matches!(parts.uri.path(), "/gcm/send" | "/fcm/send") {
            return Answer::html(404);
        }
        if parts.method != Method::POST {
            return Answer::html(405);
        }
        if !self.authorized(parts) {
            return Answer::html(401);
        }
        let script = self.shared.script();
        if let Some(burst) = &script.http.status_burst
            && self.burst_seen.fetch_add(1, Relaxed) < burst.times
        {
            let mut answer = match &burst.body {
                Some(text) => Answer::text(burst.status, text.clone()),
                None => Answer::html(burst.status),
            };
            answer.retry_after.clone_from(&burst.retry_after);
            return answer;
        }
        let mut copies = lock(&self.copies);
        let mut plan = Planner::new(&script, &mut copies);
        let is_json = content_type(parts).is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
        let mut answer = if is_json {
            match request::json(body) {
                Ok((dest, options)) => json_answer(&mut plan, &script.http.groups, dest, options),
                Err(text) => Answer::text(400, text + "\n"),
            }
        } else {
            match request::form(body) {
                Ok((token, options)) => form_answer(&mut plan, &token, options),
                Err(code) => Answer::text(200, format!("Error={code}\n")),
            }
        };
        answer.delay = plan.delay;
        answer.hang = plan.hang;
        answer
    }

    /// `Authorization: key=<KEY>` with one of the configured server keys.
    fn authorized(&self, parts: &Parts) -> bool {
        let Some(key) = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("key="))
        else {
            return false;
        };
        self.shared
            .credentials
            .iter()
            .any(|c| c.server_key.expose() == key)
    }
}

fn content_type(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// The answer to a valid JSON request, by target shape.
fn json_answer(
    plan: &mut Planner<'_>,
    groups: &BTreeMap<String, Vec<String>>,
    dest: Dest,
    options: Options,
) -> Answer {
    match dest {
        Dest::Condition(condition) => topic_answer(plan, &condition, options),
        Dest::To(to) if to.starts_with("/topics/") => topic_answer(plan, &to, options),
        Dest::NotificationKey(key) => group_answer(plan, groups.get(&key), options),
        Dest::To(to) if groups.contains_key(&to) => group_answer(plan, groups.get(&to), options),
        Dest::To(token) => tokens_answer(plan, &[token], options),
        Dest::Tokens(tokens) => tokens_answer(plan, &tokens, options),
    }
}

fn tokens_answer(plan: &mut Planner<'_>, tokens: &[String], options: Options) -> Answer {
    let outcomes: Vec<Outcome> = tokens
        .iter()
        .map(|t| plan.outcome(t, options.too_big))
        .collect();
    let multicast_id = reply::int64_id(options.dry_run);
    let mut answer = Answer::json(&reply::tokens_body(
        multicast_id,
        &outcomes,
        options.dry_run,
    ));
    answer.multicast_id = Some(multicast_id);
    answer.delivered = delivered(&outcomes, options);
    answer
}

fn topic_answer(plan: &mut Planner<'_>, target: &str, options: Options) -> Answer {
    let outcome = plan.outcome(target, options.too_big);
    let body = reply::topic_body(&outcome, reply::int64_id(options.dry_run));
    let mut answer = Answer::json(&body);
    answer.delivered = delivered([&outcome], options);
    answer
}

fn group_answer(plan: &mut Planner<'_>, members: Option<&Vec<String>>, options: Options) -> Answer {
    let members: Vec<(String, Outcome)> = members
        .into_iter()
        .flatten()
        .map(|m| (m.clone(), plan.outcome(m, options.too_big)))
        .collect();
    let mut answer = Answer::json(&reply::group_body(&members));
    answer.delivered = delivered(members.iter().map(|(_, o)| o), options);
    answer
}

fn form_answer(plan: &mut Planner<'_>, token: &str, options: Options) -> Answer {
    let outcome = plan.outcome(token, options.too_big);
    let mut answer = match reply::form_text(&outcome, options.dry_run) {
        Ok(text) => Answer::text(200, text),
        Err(status) => Answer::html(status),
    };
    answer.delivered = delivered([&outcome], options);
    answer
}

/// Targets the message was accepted for; none in a dry run.
fn delivered<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>, options: Options) -> usize {
    if options.dry_run {
        return 0;
    }
    outcomes
        .into_iter()
        .filter(|o| matches!(o, Outcome::Sent { .. }))
        .count()
}

/// The running endpoint; dropping it stops accepting and closes its connections.
pub(crate) struct HttpServer {
    pub addr: SocketAddr,
    pub state: Arc<HttpState>,
    listener: Listener,
}

impl HttpServer {
    /// Binds `listen` and serves with `identity`, offering `h2` and `http/1.1` by ALPN.
    pub async fn start(
        listen: SocketAddr,
        identity: &Identity,
        shared: Arc<Shared>,
    ) -> Result<HttpServer, EmulatorError> {
        let handshake_timeout = shared.handshake_timeout;
        let state = Arc::new(HttpState {
            shared,
            burst_seen: AtomicU32::new(0),
            copies: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
        });
        let bound = Listener::bind(listen).await?;
        let listener = Listener::serve(bound, identity, handshake_timeout, state.clone())?;
        Ok(HttpServer {
            addr: listener.addr,
            state,
            listener,
        })
    }

    /// Stops accepting and closes every connection.
    pub fn stop(&self) {
        self.listener.stop();
    }
}
