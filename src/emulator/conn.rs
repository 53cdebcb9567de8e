//! One emulated CCS connection: TLS accept, server-role negotiation, then downstream
//! handling (validate, script, reply), client acks, iqs, drains and drops.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_rustls::TlsAcceptor;

use super::script::{OverLimit, Reply};
use super::{ConnCtl, ConnState, Out, Shared};
use crate::message::Message;
use crate::wire::WireError;
use crate::wire::{self, Element, Frame, FrameReader, MessageStanza, write};
use crate::xmpp::config::GCM_DOMAIN;

type Tx = mpsc::UnboundedSender<Out>;

/// Serves one TCP connection until it ends.
pub(crate) async fn serve(shared: Arc<Shared>, acceptor: TlsAcceptor, tcp: TcpStream) {
    shared.rec.connections_accepted.fetch_add(1, Relaxed);
    let tls = match tokio::time::timeout(shared.handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        _ => return,
    };
    serve_stream(shared, tls).await;
}

/// Serves one already-secured byte stream (TLS, or an in-memory pipe) until it ends.
pub(crate) async fn serve_stream<S>(shared: Arc<Shared>, stream: S)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (r, w) = tokio::io::split(stream);
    let (tx, rx) = mpsc::unbounded_channel();
    let id = shared.next_id.fetch_add(1, Relaxed);
    let state = Arc::new(ConnState::default());
    let reader = FrameReader::new(r, shared.limits);
    let keepalive = shared.script().faults.keepalive();
    let read_task = tokio::spawn(read_side(shared.clone(), id, reader, tx, state.clone()));
    write_side(w, rx, read_task.abort_handle(), keepalive, &state).await;
    read_task.abort();
    if shared.conns().remove(&id).is_some() {
        shared.rec.connections_open.fetch_sub(1, Relaxed);
    }
}

async fn write_side<W: AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::UnboundedReceiver<Out>,
    reader: AbortHandle,
    keepalive: Option<Duration>,
    state: &ConnState,
) {
    let period = keepalive.unwrap_or(Duration::from_secs(3600));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        let item = tokio::select! {
            item = rx.recv() => item,
            _ = tick.tick(), if keepalive.is_some() => Some(Out::Bytes(write::WHITESPACE_KEEPALIVE.to_vec())),
        };
        let Some(first) = item else { break };
        let mut end = collect(&mut buf, first);
        while end.is_none() && buf.len() < 64 * 1024 {
            match rx.try_recv() {
                Ok(more) => end = collect(&mut buf, more),
                Err(_) => break,
            }
        }
        if matches!(end, Some(Out::Drop)) {
            reader.abort();
            return;
        }
        if state.muted.load(Relaxed) {
            buf.clear();
        }
        if w.write_all(&buf).await.is_err() || w.flush().await.is_err() {
            reader.abort();
            return;
        }
        buf.clear();
        match end {
            Some(Out::Mute) => state.muted.store(true, Relaxed),
            Some(_) => break,
            None => {}
        }
    }
    let _ = w.shutdown().await;
}

/// Appends bytes to the batch; returns the item if it ends the batch (a mute) or the
/// connection.
fn collect(buf: &mut Vec<u8>, item: Out) -> Option<Out> {
    match item {
        Out::Bytes(b) => {
            buf.extend_from_slice(&b);
            None
        }
        Out::Close => {
            buf.extend_from_slice(write::STREAM_CLOSE);
            Some(Out::Close)
        }
        end => Some(end),
    }
}

fn send(tx: &Tx, build: impl FnOnce(&mut Vec<u8>)) {
    let mut buf = Vec::with_capacity(256);
    build(&mut buf);
    let _ = tx.send(Out::Bytes(buf));
}

/// Why the negotiation ended without a bound session.
enum HandshakeEnd {
    /// The stream is finished; the writer has been told how to end it.
    Closed,
}

async fn read_side<R: AsyncRead + Unpin>(
    shared: Arc<Shared>,
    id: u64,
    mut reader: FrameReader<R>,
    tx: Tx,
    state: Arc<ConnState>,
) {
    let mut opened = false;
    let negotiated = tokio::time::timeout(
        shared.handshake_timeout,
        negotiate(&shared, &mut reader, &tx, &mut opened),
    )
    .await;
    let (slot, jid) = match negotiated {
        Ok(Ok(bound)) => bound,
        Ok(Err(HandshakeEnd::Closed)) => return,
        Err(_) => {
            if opened {
                fail(&tx, "connection-timeout");
            } else {
                fail_unopened(&tx, "connection-timeout");
            }
            return;
        }
    };
    let bound = shared.rec.connections_authenticated.fetch_add(1, Relaxed);
    shared.rec.connections_open.fetch_add(1, Relaxed);
    let ctl = ConnCtl {
        sender_id: slot.sender_id.clone(),
        out: tx,
        state,
    };
    shared.conns().insert(id, ctl.clone());
    spawn_timed_faults(&shared, &ctl);
    // Observed: one whitespace keepalive right after binding.
    let _ = ctl
        .out
        .send(Out::Bytes(write::WHITESPACE_KEEPALIVE.to_vec()));
    let faults = shared.script().faults.clone();
    let ctx = Ctx {
        shared,
        ctl,
        jid,
        conn: id,
        mute_after_session: Cell::new(bound < u64::from(faults.mute_first)),
        burst_after_session: Cell::new(!faults.upstream_before_session),
        seen: RefCell::new(HashSet::new()),
    };
    if faults.upstream_before_session {
        ctx.upstream_burst();
    }
    loop {
        match reader.next_frame().await {
            Ok(Frame::Message(m)) => ctx.on_message(m),
            Ok(Frame::Element(e)) if e.is(wire::NS_CLIENT, "iq") => ctx.on_iq(&e),
            Ok(Frame::Element(_)) => {} // presence and anything else: ignored (§3.8)
            Ok(Frame::StreamClose) => {
                let _ = ctx.ctl.out.send(Out::Close);
                return;
            }
            Ok(Frame::StreamOpen(_)) => return ctx.stream_error("invalid-xml"),
            Err(e) => return ctx.read_error(&e),
        }
    }
}

/// Server side of §3; returns the sender's session slot and the bound JID. `opened` tells
/// whether our stream header for the current stream (the first one, or the one after the SASL
/// restart) has been sent, for an error that ends the negotiation early.
async fn negotiate<R: AsyncRead + Unpin>(
    shared: &Arc<Shared>,
    reader: &mut FrameReader<R>,
    tx: &Tx,
    opened: &mut bool,
) -> Result<(SessionSlot, String), HandshakeEnd> {
    let header = expect_open(reader, tx).await?;
    send(tx, |b| {
        write::server_stream_header(b, header.to.as_deref().unwrap_or(GCM_DOMAIN), &stream_id());
        write::sasl_features(b, &["X-OAUTH2", "X-GOOGLE-TOKEN", "PLAIN"]);
    });
    *opened = true;
    let auth = expect_element(reader, tx).await?;
    let sender_id = match authenticate(shared, &auth) {
        Ok(sid) => sid,
        Err(reply) => {
            shared.rec.auth_failures.fetch_add(1, Relaxed);
            let _ = tx.send(Out::Bytes(reply));
            let _ = tx.send(Out::Close);
            return Err(HandshakeEnd::Closed);
        }
    };
    let Some(slot) = SessionSlot::reserve(shared, sender_id) else {
        send(tx, |b| {
            write::stream_error(
                b,
                "policy-violation",
                Some("too many connections for this sender"),
            )
        });
        let _ = tx.send(Out::Close);
        return Err(HandshakeEnd::Closed);
    };
    send(tx, write::sasl_success);
    *opened = false; // the client restarts the stream (§3.4); a new header of ours is due
    let header = expect_open(reader, tx).await?;
    send(tx, |b| {
        write::server_stream_header(b, header.to.as_deref().unwrap_or(GCM_DOMAIN), &stream_id());
        write::bind_session_features(b);
    });
    *opened = true;
    loop {
        let iq = expect_element(reader, tx).await?;
        if let Some(bind) = iq.child(wire::NS_BIND, "bind") {
            let resource = bind
                .child(wire::NS_BIND, "resource")
                .map_or("", |r| r.text.trim());
            let jid = format!(
                "{}@{GCM_DOMAIN}/{resource}{:08X}",
                slot.sender_id,
                rand::random::<u32>()
            );
            send(tx, |b| write::iq_bind_result(b, iq.attr("id"), &jid));
            return Ok((slot, jid));
        }
        answer_iq(tx, &iq);
    }
}

fn stream_id() -> String {
    format!("{:016X}", rand::random::<u64>())
}

/// The client's stream header. Anything else is a stream error, sent after a header of ours:
/// ours is not out yet when the client's is awaited.
async fn expect_open<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    tx: &Tx,
) -> Result<wire::StreamHeader, HandshakeEnd> {
    match reader.next_frame().await {
        Ok(Frame::StreamOpen(h)) => Ok(h),
        Ok(_) => Err(fail_unopened(tx, "invalid-xml")),
        Err(e) => Err(fail_unopened(tx, condition_for(&e))),
    }
}

async fn expect_element<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    tx: &Tx,
) -> Result<Element, HandshakeEnd> {
    match reader.next_frame().await {
        Ok(Frame::Element(e)) => Ok(e),
        Ok(Frame::StreamClose) => {
            let _ = tx.send(Out::Close);
            Err(HandshakeEnd::Closed)
        }
        Ok(_) => Err(fail(tx, "not-authorized")),
        Err(e) => Err(fail(tx, condition_for(&e))),
    }
}

fn condition_for(e: &WireError) -> &'static str {
    match e {
        WireError::TooLarge { .. } | WireError::TooDeep { .. } => "policy-violation",
        WireError::Eof { .. } | WireError::Io(_) => "",
        _ => "invalid-xml",
    }
}

/// Sends a stream error (unless the peer is simply gone) and ends the stream.
fn fail(tx: &Tx, condition: &str) -> HandshakeEnd {
    if condition.is_empty() {
        let _ = tx.send(Out::Finish);
    } else {
        send(tx, |b| write::stream_error(b, condition, None));
        let _ = tx.send(Out::Close);
    }
    HandshakeEnd::Closed
}

/// [`fail`] while our header for the current stream is not out yet (the client's header is
/// bad or missing): RFC 6120 §4.9.1.1 has the receiving entity open its stream first, so the
/// error goes inside a stream header of ours (from the default domain: the client's `to` is
/// unknown), then the close tag.
fn fail_unopened(tx: &Tx, condition: &str) -> HandshakeEnd {
    if !condition.is_empty() {
        send(tx, |b| {
            write::server_stream_header(b, GCM_DOMAIN, &stream_id())
        });
    }
    fail(tx, condition)
}

/// Checks a SASL `<auth>`; on refusal returns the bytes to send.
fn authenticate(shared: &Shared, auth: &Element) -> Result<String, Vec<u8>> {
    let failure = |condition: &str| {
        let mut b = Vec::new();
        write::sasl_failure(&mut b, condition);
        b
    };
    if !auth.is(wire::NS_SASL, "auth") {
        return Err(failure("not-authorized"));
    }
    if auth.attr("mechanism") != Some("PLAIN") {
        return Err(failure("invalid-mechanism"));
    }
    let creds =
        wire::sasl::decode_plain(auth.text.trim()).map_err(|_| failure("incorrect-encoding"))?;
    // `SENDER_ID@gcm.googleapis.com`, `@fcm.googleapis.com`, or the bare sender id that
    // clients built on XMPP libraries send (the JID's localpart, spec §3.4).
    let (sender_id, domain_ok) = match creds.authcid.split_once('@') {
        Some((id, domain)) => (id, domain == GCM_DOMAIN || domain == "fcm.googleapis.com"),
        None => (creds.authcid.as_str(), true),
    };
    let authzid_ok = creds.authzid.is_empty() || creds.authzid == creds.authcid;
    let known = shared
        .credentials
        .iter()
        .any(|c| c.sender_id == sender_id && c.server_key.expose() == creds.password);
    if !(domain_ok && authzid_ok && known) {
        return Err(failure("not-authorized"));
    }
    let rejected = shared
        .auth_rejections
        .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
        .is_ok();
    if rejected {
        return Err(failure("not-authorized"));
    }
    Ok(sender_id.to_owned())
}

/// An authenticated session counted against its sender's connection limit until dropped.
struct SessionSlot {
    shared: Arc<Shared>,
    sender_id: String,
}

impl SessionSlot {
    /// Takes a slot for `sender_id`, or `None` at the per-sender limit. Check and count happen
    /// under one lock, so concurrent handshakes cannot both take the last slot.
    fn reserve(shared: &Arc<Shared>, sender_id: String) -> Option<SessionSlot> {
        let max = shared.script().faults.max_connections_per_sender;
        let mut sessions = shared.sessions();
        let n = sessions.entry(sender_id.clone()).or_default();
        if max.is_some_and(|max| *n >= max) {
            return None;
        }
        *n += 1;
        Some(SessionSlot {
            shared: shared.clone(),
            sender_id,
        })
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut sessions = self.shared.sessions();
        if let Some(n) = sessions.get_mut(&self.sender_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                sessions.remove(&self.sender_id);
            }
        }
    }
}

/// Answers an iq: bind/session/ping get results, other gets/sets `service-unavailable`.
fn answer_iq(tx: &Tx, iq: &Element) {
    let id = iq.attr("id");
    match iq.attr("type") {
        Some("set") if iq.child(wire::NS_SESSION, "session").is_some() => {
            send(tx, |b| write::iq_result(b, id, None))
        }
        Some("get") if iq.child(wire::NS_PING, "ping").is_some() => {
            send(tx, |b| write::iq_result(b, id, Some(GCM_DOMAIN)))
        }
        Some("get" | "set") => send(tx, |b| {
            write::iq_error(b, id, "cancel", "service-unavailable")
        }),
        _ => {}
    }
}

/// Starts draining a connection: announce, nack new messages, close once every received
/// message is answered (if the script says so) or after `drain_close_ms` at the latest.
pub(crate) fn start_drain(shared: &Shared, ctl: &ConnCtl) {
    if ctl.state.draining.swap(true, Relaxed) {
        return;
    }
    let faults = &shared.script().faults;
    let close_after = Duration::from_millis(faults.drain_close_ms);
    let when_flushed = faults.drain_close_when_flushed;
    shared.rec.drains.fetch_add(1, Relaxed);
    send(&ctl.out, |b| {
        let _ = write::gcm_server_message(
            b,
            r#"{"message_type":"control","control_type":"CONNECTION_DRAINING"}"#,
        );
    });
    let (out, state) = (ctl.out.clone(), ctl.state.clone());
    tokio::spawn(async move {
        if when_flushed {
            let flushed = async {
                while state.in_flight.load(Relaxed) > 0 {
                    state.flushed.notified().await;
                }
            };
            let _ = tokio::time::timeout(close_after, flushed).await;
        } else {
            tokio::time::sleep(close_after).await;
        }
        let _ = out.send(Out::Close);
    });
}

/// Starts the scripted timers of a newly bound connection: a drain after `drain_after_ms`
/// and an upstream message every `upstream_every_ms`. They end with the connection.
fn spawn_timed_faults(shared: &Arc<Shared>, ctl: &ConnCtl) {
    let faults = &shared.script().faults;
    if let Some(after) = faults.drain_timer() {
        let (shared, ctl) = (shared.clone(), ctl.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = ctl.out.closed() => {}
                _ = tokio::time::sleep(after) => start_drain(&shared, &ctl),
            }
        });
    }
    if let Some(period) = faults.upstream_period() {
        let (shared, ctl) = (shared.clone(), ctl.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            for seq in 1u64.. {
                tokio::select! {
                    _ = ctl.out.closed() => return,
                    _ = tick.tick() => {}
                }
                let mut data = Map::new();
                data.insert("seq".into(), seq.to_string().into());
                inject_upstream(&shared, &ctl, "emulated-device", data);
            }
        });
    }
}

/// Delivers an upstream message from device `from` on this connection; returns its id.
pub(crate) fn inject_upstream(
    shared: &Shared,
    ctl: &ConnCtl,
    from: &str,
    data: Map<String, Value>,
) -> Option<String> {
    let id = format!("up-{}", crate::message::generate_message_id());
    let json = serde_json::json!({
        "category": "com.example.emulator",
        "data": data,
        "message_id": id,
        "from": from,
        "time_to_live": 86400,
    })
    .to_string();
    send_upstream(shared, ctl, &id, &json).then_some(id)
}

/// Sends an upstream-shaped message (upstream or receipt) and records it as pending.
pub(crate) fn send_upstream(shared: &Shared, ctl: &ConnCtl, id: &str, json: &str) -> bool {
    let to = format!("{}@{GCM_DOMAIN}", ctl.sender_id);
    let mut b = Vec::with_capacity(json.len() + 128);
    if write::gcm_upstream(&mut b, &to, json).is_err() {
        return false;
    }
    shared.rec.upstream_sent(id);
    ctl.out.send(Out::Bytes(b)).is_ok()
}

/// An ack or nack as CCS writes it, members in its order (spec §8.1, §8.2).
#[derive(Serialize)]
struct ReplyJson<'a> {
    message_type: &'a str,
    message_id: &'a str,
    from: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    registration_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'a str>,
}

struct Ctx {
    shared: Arc<Shared>,
    ctl: ConnCtl,
    jid: String,
    conn: u64,
    /// Go silent once the session result is out (`Faults::mute_first`).
    mute_after_session: Cell<bool>,
    /// Send the `upstream_on_bind` burst once the session result is out.
    burst_after_session: Cell<bool>,
    /// Downstream ids received on this connection (with `track_ids`).
    seen: RefCell<HashSet<String>>,
}

impl Ctx {
    fn stream_error(&self, condition: &str) {
        self.shared.rec.stream_errors.fetch_add(1, Relaxed);
        fail(&self.ctl.out, condition);
    }

    fn read_error(&self, e: &WireError) {
        let condition = condition_for(e);
        if !condition.is_empty() {
            self.shared.rec.stream_errors.fetch_add(1, Relaxed);
        }
        fail(&self.ctl.out, condition);
    }

    fn on_iq(&self, iq: &Element) {
        answer_iq(&self.ctl.out, iq);
        if iq.attr("type") == Some("set") && iq.child(wire::NS_SESSION, "session").is_some() {
            if self.burst_after_session.replace(false) {
                self.upstream_burst();
            }
            if self.mute_after_session.replace(false) {
                let _ = self.ctl.out.send(Out::Mute);
            }
        }
    }

    /// `Faults::upstream_on_bind`: upstream messages and receipts, alternately.
    fn upstream_burst(&self) {
        let count = self.shared.script().faults.upstream_on_bind;
        for i in 0..count {
            let id = format!("burst-{}-{i}", self.conn);
            let (id, json) = if i % 2 == 0 {
                let json = serde_json::json!({
                    "category": "com.example.emulator",
                    "data": {"seq": i.to_string()},
                    "message_id": id,
                    "from": "burst-device",
                });
                (id, json)
            } else {
                let receipt_id = format!("dr2:{id}");
                let json = serde_json::json!({
                    "message_type": "receipt",
                    "message_id": receipt_id,
                    "from": GCM_DOMAIN,
                    "data": {
                        "message_status": "MESSAGE_SENT_TO_DEVICE",
                        "original_message_id": id,
                        "device_registration_id": "burst-device",
                    }
                });
                (receipt_id, json)
            };
            send_upstream(&self.shared, &self.ctl, &id, &json.to_string());
        }
    }

    fn on_message(&self, m: MessageStanza) {
        let Some(json) = m.gcm.as_deref() else { return };
        let value: Value = match serde_json::from_str(json) {
            Ok(v) => v,
            Err(e) => {
                return self.stanza_error(
                    &m,
                    json,
                    &format!("InvalidJson: JSON_PARSING_ERROR : {e}"),
                );
            }
        };
        let Some(obj) = value.as_object() else {
            return self.stanza_error(&m, json, "InvalidJson: JSON_PARSING_ERROR : not an object");
        };
        let Some(message_id) = obj.get("message_id").and_then(Value::as_str) else {
            return self.stanza_error(
                &m,
                json,
                "InvalidJson: JSON_PARSING_ERROR : Missing Required Field: message_id",
            );
        };
        let message_id = message_id.to_owned();
        match obj.get("message_type").map(|t| t.as_str()) {
            None => self.on_downstream(message_id, json, value),
            Some(Some("ack")) => self.on_client_ack(&message_id),
            Some(_) => self.nack(
                &message_id,
                "",
                "BAD_ACK",
                "unsupported message_type from the app server",
                None,
            ),
        }
    }

    fn stanza_error(&self, m: &MessageStanza, json: &str, text: &str) {
        self.shared.rec.stanza_errors.fetch_add(1, Relaxed);
        send(&self.ctl.out, |b| {
            let _ = write::stanza_error(
                b,
                m.id.as_deref(),
                &self.jid,
                json,
                400,
                "modify",
                "bad-request",
                text,
            );
        });
    }

    fn on_client_ack(&self, id: &str) {
        if !self.shared.rec.upstream_acked(id) {
            self.shared.rec.bad_acks.fetch_add(1, Relaxed);
            self.nack(id, "", "BAD_ACK", "ack for an unknown message_id", None);
        }
    }

    fn on_downstream(&self, id: String, json: &str, value: Value) {
        let rec = &self.shared.rec;
        rec.downstream.fetch_add(1, Relaxed);
        let copy = if self.shared.track_ids {
            rec.copy_of(&id, json)
        } else {
            1
        };
        if self.shared.track_ids && !self.seen.borrow_mut().insert(id.clone()) {
            rec.resent_on_same_connection.fetch_add(1, Relaxed);
        }
        let in_flight = self.ctl.state.in_flight.fetch_add(1, Relaxed) + 1;
        rec.pending_seen(in_flight);
        let count = self.ctl.state.received.fetch_add(1, Relaxed) + 1;
        let script = self.shared.script();
        let faults = &script.faults;
        let target = value
            .get("to")
            .or_else(|| value.get("condition"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();

        let drop_now = faults.drop_after == Some(count)
            || (faults.drop_probability > 0.0
                && rand::random_bool(faults.drop_probability.clamp(0.0, 1.0)));
        if drop_now {
            rec.drops.fetch_add(1, Relaxed);
            let _ = self.ctl.out.send(Out::Drop);
            return;
        }
        if self.ctl.state.draining.load(Relaxed) {
            return self.nack(
                &id,
                &target,
                "CONNECTION_DRAINING",
                "connection is draining",
                None,
            );
        }
        if in_flight > faults.pending_limit as u64 {
            rec.over_limit.fetch_add(1, Relaxed);
            match faults.over_limit {
                OverLimit::Ignore => {}
                OverLimit::Nack => {
                    return self.nack(
                        &id,
                        &target,
                        "SERVICE_UNAVAILABLE",
                        "too many pending messages",
                        None,
                    );
                }
                OverLimit::Close => {
                    self.shared.rec.stream_errors.fetch_add(1, Relaxed);
                    let text = format!("more than {} pending messages", faults.pending_limit);
                    send(&self.ctl.out, |b| {
                        write::stream_error(b, "policy-violation", Some(&text))
                    });
                    let _ = self.ctl.out.send(Out::Close);
                    return;
                }
            }
        }
        let drain_now = faults.drain_after == Some(count)
            || (faults.drain_probability > 0.0
                && rand::random_bool(faults.drain_probability.clamp(0.0, 1.0)));
        if drain_now {
            start_drain(&self.shared, &self.ctl);
        }
        let wants_receipt = value
            .get("delivery_receipt_requested")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if let Err(e) = Message::from_json_value(value) {
            return self.nack(
                &id,
                &target,
                "INVALID_JSON",
                &format!("InvalidJson: {e}"),
                None,
            );
        }
        match script.reply_for(&target, copy) {
            Reply::Ack => self.ack(&id, &target, None, None),
            Reply::Canonical { registration_id } => {
                self.ack(&id, &target, Some(&registration_id), None)
            }
            Reply::Nack { code, description } => {
                let d = description.as_deref().unwrap_or("scripted nack");
                self.nack(&id, &target, &code, d, None)
            }
            Reply::Delay { ms } => self.ack(&id, &target, None, Some(Duration::from_millis(ms))),
            Reply::NackFirst { .. } | Reply::Silent => return,
        }
        if wants_receipt {
            self.schedule_receipt(&id, &target, Duration::from_millis(faults.receipt_delay_ms));
        }
    }

    fn ack(&self, id: &str, to: &str, canonical: Option<&str>, delay: Option<Duration>) {
        if self.shared.track_ids {
            self.shared.rec.accepted(id);
        }
        self.shared.rec.acks_sent.fetch_add(1, Relaxed);
        let ack = ReplyJson {
            message_type: "ack",
            message_id: id,
            from: to,
            registration_id: canonical,
            error: None,
            error_description: None,
        };
        self.reply(&ack, delay);
    }

    fn nack(&self, id: &str, to: &str, code: &str, description: &str, delay: Option<Duration>) {
        self.shared.rec.nacks_sent.fetch_add(1, Relaxed);
        let nack = ReplyJson {
            message_type: "nack",
            message_id: id,
            from: to,
            registration_id: None,
            error: Some(code),
            error_description: Some(description),
        };
        self.reply(&nack, delay);
    }

    /// Writes an ack/nack now or after `delay`, releasing the message's pending slot.
    fn reply(&self, json: &ReplyJson<'_>, delay: Option<Duration>) {
        let mut b = Vec::with_capacity(256);
        if write::gcm_server_message_of(&mut b, json).is_err() {
            return;
        }
        let tx = self.ctl.out.clone();
        let state = self.ctl.state.clone();
        let deliver = move || {
            let _ = tx.send(Out::Bytes(b));
            if state.in_flight.fetch_sub(1, Relaxed) == 1 && state.draining.load(Relaxed) {
                state.flushed.notify_one();
            }
        };
        match delay {
            None => deliver(),
            Some(d) => {
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    deliver();
                });
            }
        }
    }

    fn schedule_receipt(&self, id: &str, token: &str, delay: Duration) {
        let receipt_id = format!("dr2:{id}");
        let json = serde_json::json!({
            "message_type": "receipt",
            "message_id": receipt_id,
            "from": GCM_DOMAIN,
            "category": "com.example.emulator",
            "data": {
                "message_status": "MESSAGE_SENT_TO_DEVICE",
                "original_message_id": id,
                "device_registration_id": token,
                "message_sent_timestamp": std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis())
                    .to_string(),
            }
        })
        .to_string();
        let shared = self.shared.clone();
        let ctl = self.ctl.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            send_upstream(&shared, &ctl, &receipt_id, &json);
        });
    }
}
