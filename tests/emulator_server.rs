//! The emulator as a server facing misbehaving clients: garbage, stalled handshakes, idle
//! connections beyond its limit, oversize stanzas and invalid XML never crash it or grow it
//! without bound; and raw-wire checks of replies the well-behaved client never provokes
//! (stanza errors, INVALID_JSON nacks for what local validation would refuse, BAD_ACK).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use gcm_ccs::emulator::{Emulator, EmulatorConfig};
use gcm_ccs::unstable::{self as wire, Frame, FrameReader, Inbound, Limits, MessageStanza};
use gcm_ccs::{Client, Message, NackCode, WireError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn start(tweak: impl FnOnce(&mut EmulatorConfig)) -> Emulator {
    let mut cfg = EmulatorConfig::new(SENDER, KEY);
    tweak(&mut cfg);
    Emulator::start(cfg).await.unwrap()
}

/// TCP + TLS to the emulator, trusting its CA, as any client would.
async fn tls(emu: &Emulator) -> Tls {
    tls_to(emu.addr(), emu.ca_pem()).await
}

/// Copies everything read into a shared buffer, to check raw byte shapes.
struct Tee<R> {
    inner: R,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Tee<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let new = buf.filled()[before..].to_vec();
        self.seen.lock().unwrap().extend_from_slice(&new);
        poll
    }
}

/// A hand-driven client session: frames in through the library's reader, bytes out raw.
struct Raw {
    frames: FrameReader<Tee<ReadHalf<Tls>>>,
    out: WriteHalf<Tls>,
    seen: Arc<Mutex<Vec<u8>>>,
    jid: String,
}

impl Raw {
    /// Opens TLS without negotiating anything.
    async fn open(emu: &Emulator) -> Raw {
        let (r, w) = tokio::io::split(tls(emu).await);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let tee = Tee {
            inner: r,
            seen: seen.clone(),
        };
        Raw {
            frames: FrameReader::new(tee, Limits::default()),
            out: w,
            seen,
            jid: String::new(),
        }
    }

    /// Opens TLS and negotiates a bound session (spec §3).
    async fn session(emu: &Emulator) -> Raw {
        Raw::session_as(emu, &format!("{SENDER}@gcm.googleapis.com")).await
    }

    /// Opens TLS and authenticates with `authcid`; returns the SASL outcome's element name.
    async fn authenticate(emu: &Emulator, authcid: &str) -> (Raw, String) {
        let mut raw = Raw::open(emu).await;
        let mut buf = Vec::new();
        wire::write::client_stream_header(&mut buf, "gcm.googleapis.com");
        raw.send(&buf).await;
        assert!(matches!(raw.frame().await, Frame::StreamOpen(_)));
        raw.frame().await; // features
        buf.clear();
        wire::write::auth_plain(&mut buf, authcid, KEY);
        raw.send(&buf).await;
        let Frame::Element(outcome) = raw.frame().await else {
            panic!("a SASL outcome expected");
        };
        (raw, outcome.name)
    }

    /// [`Raw::session`] with `authcid` as the SASL PLAIN username.
    async fn session_as(emu: &Emulator, authcid: &str) -> Raw {
        let (mut raw, outcome) = Raw::authenticate(emu, authcid).await;
        assert_eq!(outcome, "success", "{authcid}");
        let mut buf = Vec::new();
        wire::write::client_stream_header(&mut buf, "gcm.googleapis.com");
        wire::write::iq_bind(&mut buf, "b1", None);
        raw.send(&buf).await;
        assert!(matches!(raw.frame().await, Frame::StreamOpen(_)));
        raw.frame().await; // features
        let Frame::Element(bound) = raw.frame().await else {
            panic!("bind result expected")
        };
        raw.jid = bound.children[0].children[0].text.clone();
        raw.seen.lock().unwrap().clear();
        raw
    }

    async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.out.write_all(bytes.as_ref()).await.unwrap();
        self.out.flush().await.unwrap();
    }

    /// Sends `json` as a client `<message>` with stanza id `id`.
    async fn send_json(&mut self, id: &str, json: &str) {
        let mut buf = Vec::new();
        wire::write::gcm_message(&mut buf, id, json).unwrap();
        self.send(&buf).await;
    }

    async fn frame(&mut self) -> Frame {
        bounded(5, self.frames.next_frame()).await.unwrap()
    }

    async fn message(&mut self) -> MessageStanza {
        match self.frame().await {
            Frame::Message(m) => m,
            other => panic!("expected a <message>, got {other:?}"),
        }
    }

    /// Reads until the emulator ends the stream; returns the stream error condition it sent
    /// first, if any, and checks that `</stream:stream>` and EOF follow.
    async fn stream_end(&mut self) -> Option<String> {
        let mut condition = None;
        loop {
            match bounded(5, self.frames.next_frame()).await {
                Ok(Frame::Element(e)) if e.is(wire::NS_STREAMS, "error") => {
                    condition = e.children.first().map(|c| c.name.clone());
                }
                Ok(Frame::StreamClose) => {
                    let eof = bounded(5, self.frames.next_frame()).await;
                    assert!(matches!(eof, Err(WireError::Eof { .. })), "{eof:?}");
                    return condition;
                }
                Ok(_) => {}
                Err(e) => panic!("the stream ended without </stream:stream>: {e}"),
            }
        }
    }

    fn seen(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }
}

/// Reads raw bytes until the peer closes (bounded); what arrived, lossily decoded.
async fn read_to_close(stream: &mut (impl AsyncRead + Unpin)) -> String {
    let mut all = Vec::new();
    let _ = bounded(5, stream.read_to_end(&mut all)).await;
    String::from_utf8_lossy(&all).into_owned()
}

/// The emulator still serves a well-behaved client.
async fn still_serves(emu: &Emulator) {
    let (client, _incoming) = bounded(10, Client::connect(config(emu))).await.unwrap();
    client
        .send(Message::to("tok").build().unwrap())
        .await
        .unwrap();
    client.close().await;
}

// ----- what real clients do -----------------------------------------------------------------

/// Clients built on XMPP libraries send the JID's localpart, the bare sender id, as the PLAIN
/// username; CCS accepted that, and both documented domains (spec §3.4). A domain derived from
/// the connect host is refused.
#[tokio::test]
async fn the_bare_sender_id_and_both_domains_authenticate() {
    let emu = emulator(Default::default()).await;
    for authcid in [
        SENDER.to_owned(),
        format!("{SENDER}@gcm.googleapis.com"),
        format!("{SENDER}@fcm.googleapis.com"),
    ] {
        let mut raw = Raw::session_as(&emu, &authcid).await;
        assert!(
            raw.jid
                .starts_with(&format!("{SENDER}@gcm.googleapis.com/")),
            "{}",
            raw.jid
        );
        raw.send_json("m-1", r#"{"to":"tok","message_id":"m-1"}"#)
            .await;
        let ack = raw.message().await;
        assert!(matches!(wire::classify(&ack), Inbound::Ack(_)), "{ack:?}");
    }
    let (_, outcome) = Raw::authenticate(&emu, &format!("{SENDER}@fcm-xmpp.googleapis.com")).await;
    assert_eq!(outcome, "failure");
}

/// A client that ignores the 100-pending window is visible in the statistics whatever the
/// policy, and a strict emulator (`over_limit: close`) ends its stream.
#[tokio::test]
async fn a_client_over_the_window_is_counted_and_a_strict_emulator_closes_it() {
    let silent = script(vec![rule("", gcm_ccs::emulator::Reply::Silent)]);
    let emu = emulator(silent.clone()).await;
    let mut raw = Raw::session(&emu).await;
    for i in 0..150 {
        let id = format!("m-{i}");
        raw.send_json(&id, &format!(r#"{{"to":"tok","message_id":"{id}"}}"#))
            .await;
    }
    eventually("150 received", || emu.stats().downstream == 150).await;
    let stats = emu.stats();
    assert_eq!(
        (stats.max_pending, stats.over_limit),
        (150, 50),
        "{stats:?}"
    );

    let mut strict = silent;
    strict.faults.over_limit = gcm_ccs::emulator::OverLimit::Close;
    let emu = emulator(strict).await;
    let mut raw = Raw::session(&emu).await;
    for i in 0..101 {
        let id = format!("m-{i}");
        raw.send_json(&id, &format!(r#"{{"to":"tok","message_id":"{id}"}}"#))
            .await;
    }
    assert_eq!(raw.stream_end().await.as_deref(), Some("policy-violation"));
    assert!(
        raw.seen().contains("more than 100 pending messages"),
        "{}",
        raw.seen()
    );
}

// ----- misbehaving clients --------------------------------------------------------------------

#[tokio::test]
async fn garbage_gets_invalid_xml_then_close() {
    let emu = emulator(Default::default()).await;
    let header = {
        let mut b = Vec::new();
        wire::write::client_stream_header(&mut b, "gcm.googleapis.com");
        b
    };
    for garbage in [
        &b"\x00\x01\x02binary\xFF\xFE"[..],
        b"</not-open>",
        b"hello, text between stanzas<presence/>",
        b"<message><gcm xmlns=\"google:mobile:data\">{\"a\":\"b & c\"}</gcm></message>",
        b"<message></iq>",
        b"<!DOCTYPE x [<!ENTITY a \"b\">]>",
        b"<undeclared:prefix/>",
    ] {
        let mut raw = Raw::open(&emu).await;
        raw.send(&header).await;
        assert!(matches!(raw.frame().await, Frame::StreamOpen(_)));
        raw.send(garbage).await;
        assert_eq!(
            raw.stream_end().await.as_deref(),
            Some("invalid-xml"),
            "{}",
            String::from_utf8_lossy(garbage)
        );
    }
    // The same after authentication.
    let mut raw = Raw::session(&emu).await;
    raw.send("<message><a></b></message>").await;
    assert_eq!(raw.stream_end().await.as_deref(), Some("invalid-xml"));
    assert_eq!(
        emu.stats().stream_errors,
        1,
        "counted after authentication only"
    );
    still_serves(&emu).await;
}

#[tokio::test]
async fn garbage_instead_of_a_stream_header_is_refused() {
    let emu = start(|cfg| cfg.handshake_timeout = Duration::from_millis(500)).await;
    // Markup that is not a stream header.
    let mut tls1 = tls(&emu).await;
    tls1.write_all(b"GET / HTTP/1.1\r\n\r\n<html>")
        .await
        .unwrap();
    let reply = read_to_close(&mut tls1).await;
    assert!(reply.contains("invalid-xml"), "{reply}");
    // Text that never ends in markup: refused as soon as it arrives, not at the timeout.
    let mut tls2 = tls(&emu).await;
    tls2.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let reply = read_to_close(&mut tls2).await;
    assert!(reply.contains("invalid-xml"), "{reply}");
    // Not even TLS.
    let mut tcp = TcpStream::connect(emu.addr()).await.unwrap();
    tcp.write_all(b"<stream:stream>").await.unwrap();
    read_to_close(&mut tcp).await;
    still_serves(&emu).await;
}

/// `seen` is exactly a server stream header (any 16-hex-digit id), the stream error
/// `condition` and the close tag: what RFC 6120 §4.9.1.1 asks of a server that refuses a
/// stream it has not opened yet.
fn assert_opened_then_refused(seen: &str, condition: &str) {
    let header = r#"<stream:stream from="gcm.googleapis.com" id=""#;
    let id = seen
        .strip_prefix(header)
        .and_then(|rest| rest.get(..16))
        .unwrap_or_else(|| panic!("no stream header first: {seen}"));
    assert!(
        id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F')),
        "{seen}"
    );
    assert_eq!(
        seen,
        format!(
            r#"{header}{id}" version="1.0" xmlns:stream="http://etherx.jabber.org/streams" xmlns="jabber:client"><stream:error><{condition} xmlns="urn:ietf:params:xml:ns:xmpp-streams"/></stream:error></stream:stream>"#
        )
    );
}

#[tokio::test]
async fn a_bad_stream_header_is_answered_inside_a_stream_of_the_emulator() {
    let emu = start(|cfg| {
        cfg.limits = Limits {
            max_stanza_bytes: 8 * 1024,
            ..Limits::default()
        };
        cfg.handshake_timeout = Duration::from_millis(300);
    })
    .await;
    for (bad, condition) in [
        // The stream element in the wrong namespace.
        (
            r#"<stream:stream to="gcm.googleapis.com" version="1.0" xmlns="jabber:client" xmlns:stream="urn:not-streams">"#.to_owned(),
            "invalid-xml",
        ),
        // A stanza before any header; an unquoted attribute; not XML at all.
        (r#"<message><body>hi</body></message>"#.to_owned(), "invalid-xml"),
        (
            r#"<stream:stream to=gcm.googleapis.com xmlns:stream="http://etherx.jabber.org/streams">"#.to_owned(),
            "invalid-xml",
        ),
        ("\x00\x01 not xml <".to_owned(), "invalid-xml"),
        // Larger than the stanza limit.
        (
            format!(
                r#"<stream:stream xmlns:stream="http://etherx.jabber.org/streams" to="{}">"#,
                "x".repeat(10_000)
            ),
            "policy-violation",
        ),
    ] {
        // Through the library's own reader, which needs the header to make sense of the rest.
        let mut raw = Raw::open(&emu).await;
        raw.send(&bad).await;
        assert_eq!(raw.stream_end().await.as_deref(), Some(condition), "{bad}");
        assert_opened_then_refused(&raw.seen(), condition);
    }

    // No header at all within the handshake timeout.
    let mut raw = Raw::open(&emu).await;
    assert_eq!(
        raw.stream_end().await.as_deref(),
        Some("connection-timeout")
    );
    assert_opened_then_refused(&raw.seen(), "connection-timeout");

    // A bad header where the restart after SASL success is due: the first stream was opened,
    // the restarted one was not.
    let mut raw = Raw::open(&emu).await;
    let mut buf = Vec::new();
    wire::write::client_stream_header(&mut buf, "gcm.googleapis.com");
    wire::write::auth_plain(&mut buf, &format!("{SENDER}@gcm.googleapis.com"), KEY);
    raw.send(&buf).await;
    assert!(matches!(raw.frame().await, Frame::StreamOpen(_)));
    raw.frame().await; // features
    assert!(matches!(raw.frame().await, Frame::Element(e) if e.name == "success"));
    raw.seen.lock().unwrap().clear();
    raw.send(r#"<iq type="set" id="b1"/>"#).await;
    assert_eq!(raw.stream_end().await.as_deref(), Some("invalid-xml"));
    assert_opened_then_refused(&raw.seen(), "invalid-xml");

    assert_eq!(
        emu.stats().stream_errors,
        0,
        "counted after authentication only"
    );
    still_serves(&emu).await;
}

#[tokio::test]
async fn stalled_handshakes_are_cut_off_at_the_handshake_timeout() {
    let timeout = Duration::from_millis(300);
    let emu = start(|cfg| cfg.handshake_timeout = timeout).await;
    let cut_off = |started: Instant| {
        let took = started.elapsed();
        assert!(took >= timeout && took < Duration::from_secs(3), "{took:?}");
    };

    // TLS up, then silence.
    let started = Instant::now();
    let mut tls_only = tls(&emu).await;
    let reply = read_to_close(&mut tls_only).await;
    assert!(reply.contains("connection-timeout"), "{reply}");
    cut_off(started);

    // TCP up, no TLS ClientHello.
    let started = Instant::now();
    let mut tcp = TcpStream::connect(emu.addr()).await.unwrap();
    assert_eq!(read_to_close(&mut tcp).await, "");
    cut_off(started);

    // Authenticated, but never binds.
    let started = Instant::now();
    let mut raw = Raw::open(&emu).await;
    let mut buf = Vec::new();
    wire::write::client_stream_header(&mut buf, "gcm.googleapis.com");
    wire::write::auth_plain(&mut buf, &format!("{SENDER}@gcm.googleapis.com"), KEY);
    raw.send(&buf).await;
    assert_eq!(
        raw.stream_end().await.as_deref(),
        Some("connection-timeout")
    );
    cut_off(started);

    // A slow trickle: the limit is for the whole handshake, not per byte.
    let started = Instant::now();
    let mut raw = Raw::open(&emu).await;
    let trickle = async {
        for b in buf.iter().cycle() {
            if raw.out.write_all(&[*b]).await.is_err() || raw.out.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    bounded(5, trickle).await;
    cut_off(started);
    still_serves(&emu).await;
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_slot() {
    let timeout = Duration::from_millis(300);
    let emu = start(|cfg| {
        cfg.max_connections = 4;
        cfg.handshake_timeout = timeout;
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(emu.addr()).await.unwrap());
    }
    // The next client is accepted only once an idle one is cut off.
    let started = Instant::now();
    let (client, _incoming) = bounded(10, Client::connect(config(&emu))).await.unwrap();
    assert!(
        started.elapsed() >= timeout * 9 / 10,
        "{:?}",
        started.elapsed()
    );
    client
        .send(Message::to("tok").build().unwrap())
        .await
        .unwrap();
    for mut tcp in idle {
        assert_eq!(
            read_to_close(&mut tcp).await,
            "",
            "idle connections are closed"
        );
    }
    client.close().await;
}

#[tokio::test]
async fn thousands_of_idle_connections_leave_the_emulator_serving() {
    const LIMIT: usize = 1000;
    const IDLE: usize = 2000;
    let emu = start(|cfg| cfg.max_connections = LIMIT).await;
    let (client, _incoming) = bounded(10, Client::connect(config(&emu))).await.unwrap();

    // Fill the emulator's slots (the client holds one), then open the rest all at once and
    // keep them open: the kernel queues a few, the others keep retrying their SYNs. They wait.
    let idle = Arc::new(Mutex::new(Vec::new()));
    for _ in 1..LIMIT {
        let tcp = TcpStream::connect(emu.addr()).await.unwrap();
        idle.lock().unwrap().push(tcp);
    }
    let mut opening = tokio::task::JoinSet::new();
    for _ in LIMIT..IDLE {
        let (addr, idle) = (emu.addr(), idle.clone());
        opening.spawn(async move {
            if let Ok(tcp) = TcpStream::connect(addr).await {
                idle.lock().unwrap().push(tcp);
            }
        });
    }
    // Up to its limit (the client holds one slot) and no more.
    eventually("all slots taken", || {
        emu.stats().connections_accepted == LIMIT as u64
    })
    .await;
    // Meanwhile the established connection is served as usual.
    for i in 0..200 {
        client
            .send(Message::to(format!("tok-{i}")).build().unwrap())
            .await
            .unwrap();
    }
    assert_eq!(emu.stats().connections_accepted, LIMIT as u64);
    assert!(
        idle.lock().unwrap().len() >= LIMIT,
        "the idle ones are connected"
    );

    // Once they go away, the slots free up and new clients get in.
    opening.abort_all();
    idle.lock().unwrap().clear();
    still_serves(&emu).await;
    client.close().await;
}

#[tokio::test]
async fn oversize_stanzas_get_policy_violation_then_close() {
    let emu = start(|cfg| {
        cfg.limits = Limits {
            max_stanza_bytes: 8 * 1024,
            ..Limits::default()
        }
    })
    .await;
    // After the handshake: one big message.
    let mut raw = Raw::session(&emu).await;
    let json = format!(
        r#"{{"to":"t","message_id":"m-1","data":{{"k":"{}"}}}}"#,
        "x".repeat(10_000)
    );
    raw.send_json("m-1", &json).await;
    assert_eq!(raw.stream_end().await.as_deref(), Some("policy-violation"));

    // An endless one, while the emulator answers and hangs up.
    let raw = Raw::session(&emu).await;
    let mut out = raw.out;
    let writer = tokio::spawn(async move {
        let chunk = vec![b'x'; 16 * 1024];
        let mut written = out
            .write_all(b"<message><gcm xmlns='google:mobile:data'>")
            .await;
        while written.is_ok() {
            written = out.write_all(&chunk).await;
        }
        written
    });
    let mut frames = raw.frames;
    let error = loop {
        match bounded(5, frames.next_frame()).await {
            Ok(Frame::Element(e)) if e.is(wire::NS_STREAMS, "error") => break e,
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(error.children[0].name, "policy-violation");
    // The emulator closed the connection: the endless write fails.
    assert!(bounded(5, writer).await.unwrap().is_err());

    // During the handshake: a huge stream header, and too deep a nesting.
    for bad in [
        format!(
            "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to='{}'>",
            "x".repeat(10_000)
        ),
        format!(
            "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>{}",
            "<a>".repeat(100)
        ),
    ] {
        let mut tls = tls(&emu).await;
        tls.write_all(bad.as_bytes()).await.unwrap();
        let reply = read_to_close(&mut tls).await;
        assert!(reply.contains("policy-violation"), "{reply}");
    }
    assert_eq!(
        emu.stats().stream_errors,
        2,
        "counted after authentication only"
    );
    still_serves(&emu).await;
}

// ----- raw-wire replies ----------------------------------------------------------------------

#[tokio::test]
async fn unparseable_json_and_missing_message_id_get_stanza_errors() {
    let emu = emulator(Default::default()).await;
    let mut raw = Raw::session(&emu).await;
    for (id, json, text) in [
        ("s-1", "{not json", "JSON_PARSING_ERROR"),
        ("s-2", r#"["to","t"]"#, "not an object"),
        (
            "s-3",
            r#"{"to":"tok"}"#,
            "Missing Required Field: message_id",
        ),
        (
            "s-4",
            r#"{"to":"tok","message_id":7}"#,
            "Missing Required Field: message_id",
        ),
    ] {
        raw.send_json(id, json).await;
        let m = raw.message().await;
        // §8.3: the stanza id echoed, type="error", addressed to our full JID, the payload
        // echoed in an unprefixed <gcm>, and <error code="400" type="modify"><bad-request/>.
        assert_eq!(m.id.as_deref(), Some(id));
        assert_eq!(m.kind.as_deref(), Some("error"));
        assert_eq!(m.to.as_deref(), Some(raw.jid.as_str()));
        assert_eq!(m.gcm.as_deref(), Some(json));
        let e = m.error.as_ref().unwrap();
        assert_eq!(
            (e.code, e.kind.as_deref(), e.condition.as_deref()),
            (Some(400), Some("modify"), Some("bad-request"))
        );
        let t = e.text.as_deref().unwrap();
        assert!(
            t.starts_with("InvalidJson: JSON_PARSING_ERROR") && t.contains(text),
            "{t}"
        );
        // And the client library reads it as a stanza error for that id.
        match wire::classify(&m) {
            Inbound::StanzaError(se) => assert_eq!(se.id.as_deref(), Some(id)),
            other => panic!("{other:?}"),
        }
    }
    let seen = raw.seen();
    assert!(
        seen.contains(r#"<message id="s-1" type="error" to=""#)
            && seen.contains(r#"<gcm xmlns="google:mobile:data">{not json</gcm><error code="400" type="modify"><bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>"#),
        "{seen}"
    );
    assert_eq!(emu.stats().stanza_errors, 4);
}

#[tokio::test]
async fn invalid_downstream_json_is_nacked_invalid_json() {
    let emu = emulator(Default::default()).await;
    let mut raw = Raw::session(&emu).await;
    let big = "x".repeat(5000);
    for (id, json, description) in [
        (
            "n-1",
            r#"{"to":"tok","message_id":"n-1","time_to_live":-1}"#.to_owned(),
            "time_to_live",
        ),
        (
            "n-2",
            r#"{"to":"tok","message_id":"n-2","data":{"from":"me"}}"#.to_owned(),
            "`from` is reserved",
        ),
        (
            "n-3",
            format!(r#"{{"to":"tok","message_id":"n-3","data":{{"k":"{big}"}}}}"#),
            "limit is 4096 bytes",
        ),
        (
            "n-4",
            r#"{"to":"tok","message_id":"n-4","time_to_live":"600"}"#.to_owned(),
            "time_to_live",
        ),
        ("n-5", r#"{"message_id":"n-5"}"#.to_owned(), "no target"),
    ] {
        raw.send_json(id, &json).await;
        let m = raw.message().await;
        match wire::classify(&m) {
            Inbound::Nack(n) => {
                assert_eq!(n.message_id.as_deref(), Some(id));
                assert_eq!(n.code, NackCode::InvalidJson);
                let d = n.description.unwrap_or_default();
                assert!(
                    d.starts_with("InvalidJson: ") && d.contains(description),
                    "{d}"
                );
            }
            other => panic!("{id}: {other:?}"),
        }
    }
    // Acks and nacks carry the `data:` prefix and no stanza type (§6.3).
    let seen = raw.seen();
    assert!(
        seen.contains(r#"<message><data:gcm xmlns:data="google:mobile:data">{"message_type":"nack","message_id":"n-1","from":"tok","error":"INVALID_JSON""#),
        "{seen}"
    );
    assert_eq!(emu.stats().nacks_sent, 5);
}

#[tokio::test]
async fn bad_client_acks_are_nacked_bad_ack() {
    let emu = emulator(Default::default()).await;
    let mut raw = Raw::session(&emu).await;
    for (id, json) in [
        // An ack for an upstream message that was never sent.
        (
            "nope",
            r#"{"to":"dev","message_id":"nope","message_type":"ack"}"#,
        ),
        // A message_type a client may not send.
        (
            "x-1",
            r#"{"to":"dev","message_id":"x-1","message_type":"nack"}"#,
        ),
        (
            "x-2",
            r#"{"to":"dev","message_id":"x-2","message_type":"receipt"}"#,
        ),
    ] {
        raw.send_json("", json).await;
        match wire::classify(&raw.message().await) {
            Inbound::Nack(n) => {
                assert_eq!(n.message_id.as_deref(), Some(id));
                assert_eq!(n.code, NackCode::BadAck);
            }
            other => panic!("{id}: {other:?}"),
        }
    }
    // A good ack after a bad one is still accepted, and acking twice is a bad ack.
    let up = emu
        .inject_upstream(SENDER, "dev", Default::default())
        .unwrap();
    let m = raw.message().await;
    assert_eq!(m.from.as_deref(), Some("devices@gcm.googleapis.com"));
    let ack = format!(r#"{{"to":"dev","message_id":"{up}","message_type":"ack"}}"#);
    raw.send_json("", &ack).await;
    eventually("ack recorded", || emu.acked_by_client() == vec![up.clone()]).await;
    raw.send_json("", &ack).await;
    match wire::classify(&raw.message().await) {
        Inbound::Nack(n) => assert_eq!(n.code, NackCode::BadAck),
        other => panic!("{other:?}"),
    }
    assert_eq!(emu.stats().bad_acks, 2);
}
