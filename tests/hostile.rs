//! Hostile and broken servers, scripted byte by byte (tests/common/raw_server.rs). Every case
//! ends in a typed error or is ignored as the spec says; none may panic or hang (every test is
//! bounded), and every submitted message gets exactly one outcome.

mod common;

use std::time::{Duration, Instant};

use common::raw_server::*;
use common::*;
use gcm_ccs::{Client, Config, ConnectError, Event, Message, NackCode, SendError, WireError};

const STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";

// ----- handshake: each failure surfaces from `Client::connect`, typed --------------------------

/// Connects to a server whose every connection plays `steps`; the connect must fail.
async fn connect_err(steps: Vec<Step>) -> ConnectError {
    connect_err_with(steps, |_| {}).await
}

async fn connect_err_with(steps: Vec<Step>, tweak: impl FnOnce(&mut Config)) -> ConnectError {
    let server = RawServer::start(move |_| steps.clone()).await;
    let mut cfg = server.config();
    // The first attempt's own error (retries are tested in tests/startup.rs).
    cfg.start_budget = Some(Duration::ZERO);
    tweak(&mut cfg);
    match bounded(10, Client::connect(cfg)).await {
        Ok(_) => panic!("the connect must fail"),
        Err(e) => e,
    }
}

/// The server header and SASL features, then `rest`.
fn sasl_stage(rest: &str) -> Vec<Step> {
    vec![
        Step::Expect(CLIENT_HEADER_END),
        send(format!("{HEADER}{rest}")),
    ]
}

/// A full negotiation up to the bind request, then `reply` instead of the bind result.
fn bind_stage(reply: &str) -> Vec<Step> {
    let mut steps = handshake();
    steps.truncate(7); // up to and including `Expect("</iq>")` of the bind request
    steps.push(send(reply));
    steps
}

#[tokio::test]
async fn truncated_xml_then_eof_is_a_protocol_error() {
    let mut steps = sasl_stage(
        r#"<stream:features><mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mech"#,
    );
    steps.push(Step::Close);
    let err = connect_err(steps).await;
    assert!(
        matches!(&err, ConnectError::Protocol(m) if m.contains("closed the connection while we waited for SASL features")),
        "{err:?}"
    );
    // EOF before anything at all.
    let err = connect_err(vec![Step::Close]).await;
    assert!(
        matches!(&err, ConnectError::Protocol(m) if m.contains("the server's stream header")),
        "{err:?}"
    );
}

#[tokio::test]
async fn invalid_utf8_is_malformed_xml() {
    for bad in [
        &b"<stream:features><mechanisms xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\"><mechanism>PL\xFF\xFEAIN</mechanism></mechanisms></stream:features>"[..],
        b"<stream:features a=\"\xC3\x28\"/>",
        b"<stream:feat\xE2\x82ures/>",
        b"<stream:features>\xED\xA0\x80</stream:features>", // an encoded surrogate
    ] {
        let mut header = HEADER.as_bytes().to_vec();
        header.extend_from_slice(bad);
        let err = connect_err(vec![Step::Expect(CLIENT_HEADER_END), Step::Send(header)]).await;
        assert!(
            matches!(err, ConnectError::Wire(WireError::Malformed(_))),
            "{}: {err:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[tokio::test]
async fn ten_megabyte_stanza_trips_the_size_cap() {
    let mut steps = sasl_stage("<stream:features><mechanisms><mechanism>");
    steps.push(Step::Repeat {
        chunk: vec![b'A'; 64 * 1024],
        times: 160,
    });
    let err = connect_err(steps).await;
    assert!(
        matches!(
            err,
            ConnectError::Wire(WireError::TooLarge { limit: 65536 })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn dtd_and_entity_declarations_are_refused() {
    let cases = [
        // Before the stream header, as a document prologue.
        format!(r#"<!DOCTYPE stream:stream [<!ENTITY x "y">]>{HEADER}"#),
        // A billion-laughs prologue.
        format!(
            r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>{HEADER}<stream:features>&lol3;</stream:features>"#
        ),
        // An external entity (XXE).
        format!(
            r#"<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>{HEADER}<stream:features>&xxe;</stream:features>"#
        ),
        // Declarations inside the stream.
        format!(r#"{HEADER}<!ENTITY lol "lol">"#),
        format!(r#"{HEADER}<!DOCTYPE x>"#),
        // Undefined entity references, in text and in an attribute.
        format!(
            r#"{HEADER}<stream:features><mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>&lol3;</mechanism></mechanisms></stream:features>"#
        ),
        format!(r#"{HEADER}<stream:features a="&xxe;"/>"#),
    ];
    for case in cases {
        let err = connect_err(vec![Step::Expect(CLIENT_HEADER_END), send(&case)]).await;
        assert!(
            matches!(err, ConnectError::Wire(WireError::Forbidden(_))),
            "{case}: {err:?}"
        );
    }
}

#[tokio::test]
async fn deep_nesting_trips_the_depth_limit() {
    let mut steps = sasl_stage("");
    steps.push(Step::Repeat {
        chunk: b"<a>".to_vec(),
        times: 100_000,
    });
    let err = connect_err(steps).await;
    assert!(
        matches!(err, ConnectError::Wire(WireError::TooDeep { limit: 16 })),
        "{err:?}"
    );
}

#[tokio::test]
async fn attribute_floods_are_refused() {
    let plain: String = (0..1000).map(|i| format!(r#" a{i}="x""#)).collect();
    let namespaces: String = (0..1000)
        .map(|i| format!(r#" xmlns:p{i}="urn:{i}""#))
        .collect();
    for flood in [
        format!("<stream:features{plain}/>"),
        format!("<stream:features{namespaces}/>"),
        // Nested elements each declaring a few namespaces: the bindings in scope add up. (The
        // reader parses whole stanzas only; an unfinished one ends at the size cap or timeout.)
        "<x xmlns:a='urn:a' xmlns:b='urn:b' xmlns:c='urn:c' xmlns:d='urn:d' xmlns:e='urn:e'>"
            .repeat(14)
            + &"</x>".repeat(14),
        r#"<stream:features a="1" a="2"/>"#.to_owned(),
    ] {
        let err = connect_err(sasl_stage(&flood)).await;
        assert!(
            matches!(err, ConnectError::Wire(WireError::Malformed(_))),
            "{}: {err:?}",
            &flood[..60.min(flood.len())]
        );
    }
}

#[tokio::test]
async fn unknown_elements_and_namespaces_in_the_handshake_are_ignored() {
    // Everything the spec says to tolerate: an XML declaration, comments, processing
    // instructions, whitespace, unknown header attributes, a different prefix for the stream
    // namespace, unknown features, and extra attributes on the bind result (§3.3, §3.5, §3.6).
    let header = r#"<?xml version="1.0"?><!-- hi --><str:stream xmlns:str="http://etherx.jabber.org/streams" xmlns="jabber:client" from="gcm.googleapis.com" id="1" version="1.0" xml:lang="en" x-unknown="1">"#;
    let steps = vec![
        Step::Expect(CLIENT_HEADER_END),
        send(format!(
            r#"{header} <?pi data?><str:features><sm xmlns="urn:xmpp:sm:3"/><register xmlns="http://jabber.org/features/iq-register"/><mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl" x="y"><mechanism>X-OAUTH2</mechanism><unknown/><mechanism> PLAIN </mechanism></mechanisms></str:features>"#
        )),
        Step::Expect("</auth>"),
        send(format!("\n{SUCCESS}\t")),
        Step::Expect(CLIENT_HEADER_END),
        send(format!(
            r#"{HEADER}<stream:features><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/><c xmlns="http://jabber.org/protocol/caps" hash="sha-1"/><session xmlns="urn:ietf:params:xml:ns:xmpp-session"><optional/></session></stream:features>"#
        )),
        Step::Expect("</iq>"),
        send(
            r#"<iq type="result" id="bind-1" from="gcm.googleapis.com" to="x@y/z"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><jid> 123456789012@gcm.googleapis.com/odd </jid><extra xmlns="urn:x"/></bind></iq>"#,
        ),
        Step::Expect("</iq>"),
        send(r#"<iq type="result" id="sess-1" from="gcm.googleapis.com"/> "#),
    ];
    let server = RawServer::start(move |_| steps.clone()).await;
    let (client, _incoming) = bounded(10, Client::connect(server.config())).await.unwrap();
    assert_eq!(client.jid(), "123456789012@gcm.googleapis.com/odd");
    client.close().await;
}

#[tokio::test]
async fn stream_errors_during_the_handshake_are_typed() {
    let error = |condition: &str, text: Option<&str>| {
        let text = text
            .map(|t| format!(r#"<text xmlns="{STREAM_ERRORS}">{t}</text>"#))
            .unwrap_or_default();
        format!(
            r#"<stream:error><{condition} xmlns="{STREAM_ERRORS}"/>{text}</stream:error></stream:stream>"#
        )
    };
    let cases = [
        // Instead of the SASL features.
        (
            sasl_stage(&error("system-shutdown", Some("bye &amp; see you"))),
            "system-shutdown",
            Some("bye & see you"),
        ),
        (
            sasl_stage(&error("host-unknown", None)),
            "host-unknown",
            None,
        ),
        // Instead of the SASL outcome.
        (
            {
                let mut s = handshake();
                s.truncate(3);
                s.push(send(error("policy-violation", Some("too many"))));
                s
            },
            "policy-violation",
            Some("too many"),
        ),
        // Instead of the bind result.
        (bind_stage(&error("conflict", None)), "conflict", None),
        // No defined condition at all, or one in a foreign namespace only.
        (
            sasl_stage("<stream:error><made-up xmlns='urn:x'/></stream:error>"),
            "undefined-condition",
            None,
        ),
    ];
    for (steps, condition, text) in cases {
        let err = connect_err(steps).await;
        match &err {
            ConnectError::StreamError {
                condition: c,
                text: t,
            } => {
                assert_eq!(c, condition);
                assert_eq!(t.as_deref(), text);
            }
            other => panic!("{condition}: {other:?}"),
        }
        assert!(err.to_string().contains(condition), "{err}");
    }
}

#[tokio::test]
async fn sasl_out_of_order_or_without_plain_is_refused() {
    // <success/> where the features belong: the client never authenticated.
    let err = connect_err(sasl_stage(SUCCESS)).await;
    assert!(
        matches!(&err, ConnectError::Protocol(m) if m.contains("no SASL mechanisms")),
        "{err:?}"
    );
    // <success/> before the stream header.
    let err = connect_err(vec![
        Step::Expect(CLIENT_HEADER_END),
        send(format!("{SUCCESS}{HEADER}")),
    ])
    .await;
    assert!(
        matches!(&err, ConnectError::Wire(WireError::Malformed(m)) if m.contains("header first")),
        "{err:?}"
    );
    // No PLAIN on offer.
    let err = connect_err(sasl_stage(
        r#"<stream:features><mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>X-OAUTH2</mechanism></mechanisms></stream:features>"#,
    ))
    .await;
    assert!(
        matches!(&err, ConnectError::Protocol(m) if m.contains("does not offer SASL PLAIN")),
        "{err:?}"
    );
    // A failure condition other than not-authorized is still an auth error.
    let mut steps = handshake();
    steps.truncate(3);
    steps.push(send(
        r#"<failure xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><temporary-auth-failure/><text>later</text></failure>"#,
    ));
    let err = connect_err(steps).await;
    assert!(
        matches!(&err, ConnectError::Auth { condition, .. } if condition == "temporary-auth-failure"),
        "{err:?}"
    );
}

#[tokio::test]
async fn bad_bind_results_are_protocol_errors() {
    let bind_ns = "urn:ietf:params:xml:ns:xmpp-bind";
    let cases = [
        (r#"<iq type="result" id="bind-1"/>"#.to_owned(), "no JID"),
        (
            format!(r#"<iq type="result" id="bind-1"><bind xmlns="{bind_ns}"/></iq>"#),
            "no JID",
        ),
        (
            format!(r#"<iq type="result" id="bind-1"><bind xmlns="{bind_ns}"><jid> </jid></bind></iq>"#),
            "no JID",
        ),
        // A <jid> outside the bind namespace does not count.
        (
            r#"<iq type="result" id="bind-1"><bind><jid>a@b/c</jid></bind></iq>"#.to_owned(),
            "no JID",
        ),
        (
            r#"<iq type="error" id="bind-1"><error type="cancel"><conflict xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>"#.to_owned(),
            "refused bind: conflict",
        ),
        (
            format!(r#"<iq type="result" id="other"><bind xmlns="{bind_ns}"><jid>a@b/c</jid></bind></iq>"#),
            "unexpected id",
        ),
        (
            r#"<message><gcm xmlns="google:mobile:data">{}</gcm></message>"#.to_owned(),
            "got a <message>",
        ),
    ];
    for (reply, want) in cases {
        let err = connect_err(bind_stage(&reply)).await;
        assert!(
            matches!(&err, ConnectError::Protocol(m) if m.contains(want)),
            "{reply}: {err:?}"
        );
    }
    // Post-auth features without <bind/>.
    let mut steps = handshake();
    steps.truncate(5);
    steps.push(send(format!("{HEADER}<stream:features/>")));
    let err = connect_err(steps).await;
    assert!(
        matches!(&err, ConnectError::Protocol(m) if m.contains("resource binding")),
        "{err:?}"
    );
}

#[tokio::test]
async fn silent_or_trickling_server_hits_the_handshake_timeout() {
    let short = |cfg: &mut Config| cfg.handshake_timeout = Duration::from_millis(300);
    // Never answers the stream header.
    let started = Instant::now();
    let err = connect_err_with(vec![Step::Expect(CLIENT_HEADER_END)], short).await;
    assert!(
        matches!(err, ConnectError::Timeout { stage: "the server's stream header", after } if after == Duration::from_millis(300)),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    // Stalls after SASL success.
    let mut steps = handshake();
    steps.truncate(4);
    let err = connect_err_with(steps, short).await;
    assert!(
        matches!(
            err,
            ConnectError::Timeout {
                stage: "the restarted stream header",
                ..
            }
        ),
        "{err:?}"
    );
    // Trickles its features one byte every 50 ms: each step is bounded as a whole.
    let mut steps = vec![Step::Expect(CLIENT_HEADER_END), send(HEADER)];
    for b in SASL_FEATURES.bytes() {
        steps.push(Step::Send(vec![b]));
        steps.push(Step::Wait(Duration::from_millis(50)));
    }
    let err = connect_err_with(steps, short).await;
    assert!(
        matches!(
            err,
            ConnectError::Timeout {
                stage: "SASL features",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn tcp_without_tls_hits_the_connect_timeout() {
    let server = RawServer::start_with(Transport::PlainTcp, |_| vec![]).await;
    let mut cfg = server.config();
    cfg.connect_timeout = Duration::from_millis(300);
    cfg.start_budget = Some(Duration::ZERO);
    let started = Instant::now();
    let err = bounded(10, Client::connect(cfg)).await.err().unwrap();
    assert!(
        matches!(
            err,
            ConnectError::Timeout {
                stage: "TCP connect and TLS handshake",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn plaintext_xmpp_instead_of_tls_is_a_tls_error() {
    let server = RawServer::start_with(Transport::PlainTcp, |_| vec![send(HEADER)]).await;
    let mut cfg = server.config();
    cfg.start_budget = Some(Duration::ZERO);
    let err = bounded(10, Client::connect(cfg)).await.err().unwrap();
    assert!(matches!(err, ConnectError::Tls { .. }), "{err:?}");
}

// ----- after the handshake: misbehaviour with messages in flight ------------------------------

const N: usize = 5;

fn ids() -> Vec<String> {
    (1..=N).map(|i| format!("m-{i}")).collect()
}

/// Submits `m-1`…`m-N` and returns their pending outcomes.
async fn submit_all(client: &Client) -> Vec<gcm_ccs::PendingAck> {
    let mut pending = Vec::new();
    for id in ids() {
        let msg = Message::to("tok").message_id(id).build().unwrap();
        pending.push(client.submit(msg).await.unwrap());
    }
    pending
}

/// Connection 0 negotiates, reads all N messages, then plays `bad`; later connections ack
/// everything. Every message must be acked exactly once, after being resent on connection 1.
/// Returns why the client dropped connection 0.
async fn recovers_from(bad: Vec<Step>) -> String {
    recovers_from_with(bad, |_| {}).await
}

async fn recovers_from_with(bad: Vec<Step>, tweak: impl FnOnce(&mut Config)) -> String {
    let server = RawServer::start(move |n| match n {
        0 => after_handshake([vec![Step::Swallow(N)], bad.clone()].concat()),
        _ => after_handshake(vec![Step::AckForever]),
    })
    .await;
    let mut cfg = server.config();
    tweak(&mut cfg);
    let (client, _incoming) = bounded(10, Client::connect(cfg)).await.unwrap();
    let mut events = client.events();
    let pending = submit_all(&client).await;
    let reason = next_event(&mut events, |e| match e {
        Event::Lost {
            conn: 1,
            reason,
            in_flight,
        } => {
            assert_eq!(in_flight, N, "{reason}");
            Some(reason)
        }
        _ => None,
    })
    .await;
    for (p, id) in pending.into_iter().zip(ids()) {
        let ack = bounded(10, p).await.unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(ack.message_id, id);
    }
    let stats = client.stats();
    assert_eq!(
        (stats.submitted, stats.acked, stats.failed),
        (N as u64, N as u64, 0)
    );
    assert_eq!(
        sorted(server.messages(0)),
        ids(),
        "all were in flight on connection 0"
    );
    assert_eq!(
        sorted(server.messages(1)),
        ids(),
        "all were resent on connection 1"
    );
    client.close().await;
    reason
}

/// Resends go out in no particular order.
fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

fn assert_contains(reason: &str, want: &str) {
    assert!(reason.contains(want), "{reason:?} should contain {want:?}");
}

#[tokio::test]
async fn truncated_stanza_then_eof_resends_everything() {
    let reason = recovers_from(vec![
        send(r#"<message><data:gcm xmlns:data="google:mobile:data">{"message_type":"ack","mess"#),
        Step::Close,
    ])
    .await;
    assert_contains(&reason, "closed by peer in the middle of a stanza");
}

#[tokio::test]
async fn invalid_utf8_in_a_payload_resends_everything() {
    let mut bytes = br#"<message><data:gcm xmlns:data="google:mobile:data">{"message_type":"ack","message_id":"m-1"#.to_vec();
    bytes.extend_from_slice(b"\xFF\xFE\"}</data:gcm></message>");
    let reason = recovers_from(vec![Step::Send(bytes)]).await;
    assert_contains(&reason, "malformed XML");
}

#[tokio::test]
async fn endless_text_node_trips_the_size_cap() {
    // An unbounded reader would buffer forever; ours gives up at the cap.
    let reason = recovers_from(vec![
        send(r#"<message><gcm xmlns="google:mobile:data">{"message_type":"ack","x":""#),
        Step::Repeat {
            chunk: vec![b'x'; 8192],
            times: usize::MAX,
        },
    ])
    .await;
    assert_contains(&reason, "exceeds the 65536-byte limit");
}

#[tokio::test]
async fn ten_megabyte_message_trips_the_size_cap() {
    let reason = recovers_from(vec![
        send("<message>"),
        Step::Repeat {
            chunk: b"<body>0123456789abcdef</body>".repeat(2048),
            times: 10 * 1024 * 1024 / (29 * 2048),
        },
        send("</message>"),
    ])
    .await;
    assert_contains(&reason, "exceeds the 65536-byte limit");
}

#[tokio::test]
async fn entities_after_the_handshake_end_the_connection() {
    for bad in [
        r#"<message><gcm xmlns="google:mobile:data">&xxe;</gcm></message>"#,
        r#"<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>"#,
        r#"<!ENTITY lol "lol">"#,
    ] {
        let reason = recovers_from(vec![send(bad)]).await;
        assert_contains(&reason, "forbidden XML construct");
    }
}

#[tokio::test]
async fn nesting_and_attribute_floods_after_the_handshake_end_the_connection() {
    let reason = recovers_from(vec![Step::Repeat {
        chunk: b"<message>".to_vec(),
        times: 10_000,
    }])
    .await;
    assert_contains(&reason, "nesting exceeds depth 16");
    let flood: String = (0..500).map(|i| format!(r#" a{i}="x""#)).collect();
    let reason = recovers_from(vec![send(format!("<message{flood}/>"))]).await;
    assert_contains(&reason, "more than 64 attributes");
}

#[tokio::test]
async fn stream_errors_after_the_handshake_resend_everything() {
    for condition in ["system-shutdown", "conflict", "policy-violation", "reset"] {
        let reason = recovers_from(vec![send(format!(
            r#"<stream:error><{condition} xmlns="{STREAM_ERRORS}"/><text xmlns="{STREAM_ERRORS}">why</text></stream:error></stream:stream>"#
        ))])
        .await;
        assert_contains(
            &reason,
            &format!("server sent stream error `{condition}`: why"),
        );
    }
}

#[tokio::test]
async fn stream_close_or_restart_resends_everything() {
    let reason = recovers_from(vec![send("</stream:stream>"), Step::Close]).await;
    assert_contains(&reason, "the server closed the stream");
    let reason = recovers_from(vec![send(HEADER)]).await;
    assert_contains(&reason, "unexpected stream restart");
}

#[tokio::test]
async fn silent_server_is_declared_dead_and_replaced() {
    let reason = recovers_from_with(vec![], |cfg| {
        cfg.ping_interval = Duration::from_millis(150);
    })
    .await;
    assert_contains(&reason, "no data from the server");
}

#[tokio::test]
async fn confusing_acks_and_nacks_are_ignored() {
    // Each message's real answer comes last. Before it, the server sends everything the client
    // must ignore, much of it shaped like the *opposite* answer for the same id: had any of it
    // been taken for an answer, that message's outcome would differ.
    let ack = |json: &str| send(gcm_server(json));
    let noise = vec![
        // Acks and nacks for unknown ids.
        ack(r#"{"message_type":"ack","message_id":"m-unknown","from":"t"}"#),
        ack(r#"{"message_type":"nack","message_id":"m-unknown","error":"BAD_REGISTRATION"}"#),
        // A nack without message_id cannot be correlated.
        ack(r#"{"message_type":"nack","error":"DEVICE_UNREGISTERED"}"#),
        // Unknown or mistyped message_type (forward compatibility, §6.3 rule 4).
        ack(r#"{"message_type":"surprise","message_id":"m-1"}"#),
        ack(r#"{"message_type":7,"message_id":"m-2"}"#),
        // JSON that is not an object, or not JSON.
        ack(r#"["ack","m-1"]"#),
        ack(r#""m-1""#),
        ack("42"),
        ack("null"),
        ack(r#"{"message_type":"ack","message_id":"m-1""#),
        ack(""),
        // message_id of the wrong type.
        ack(r#"{"message_type":"ack","message_id":1}"#),
        ack(r#"{"message_type":"ack","message_id":["m-1"]}"#),
        ack(r#"{"message_type":"ack","message_id":{"id":"m-2"}}"#),
        ack(r#"{"message_type":"nack","message_id":5,"error":"BAD_REGISTRATION"}"#),
        // Duplicate keys.
        ack(r#"{"message_type":"ack","message_id":"m-1","message_id":"m-2"}"#),
        // Unknown control type.
        ack(r#"{"message_type":"control","control_type":"SOMETHING_NEW"}"#),
        // The payload element in a foreign namespace, or missing.
        send(
            r#"<message><gcm xmlns="urn:not-gcm">{"message_type":"ack","message_id":"m-1"}</gcm></message>"#,
        ),
        send("<message><body>hello</body></message>"),
        // Unknown top-level elements, an iq result for nothing, comments, whitespace.
        send(r#"<presence/><foo xmlns="urn:x:y"><bar a="b"/></foo><r xmlns="urn:xmpp:sm:3"/>"#),
        send(r#"<iq type="result" id="nobody"/>  <!-- comment --> <?pi x?>"#),
        // A server iq the client must refuse (RFC 6120), and a ping it must answer.
        send(r#"<iq type="get" id="q1"><query xmlns="jabber:iq:version"/></iq>"#),
        send(r#"<iq type="get" id="p1"><ping xmlns="urn:xmpp:ping"/></iq>"#),
        // A stanza error that names no known message.
        send(
            r#"<message type="error" id="m-unknown"><error type="modify"><bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></message>"#,
        ),
    ];
    let answers = vec![
        // m-1, m-2: nacked for real (noise above looked like acks).
        ack(
            r#"{"message_type":"nack","message_id":"m-1","from":"tok","error":"BAD_REGISTRATION"}"#,
        ),
        ack(r#"{"message_type":"nack","message_id":"m-2","error":"DEVICE_UNREGISTERED"}"#),
        // m-3: stanza error correlated by the stanza id; m-4: by the echoed JSON.
        send(
            r#"<message type="error" id="m-3"><gcm xmlns="google:mobile:data">{"message_id":"m-3"}</gcm><error code="400" type="modify"><bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></message>"#,
        ),
        send(
            r#"<message type="error"><gcm xmlns="google:mobile:data">{"to":"tok","message_id":"m-4"}</gcm><error type="modify"><bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></message>"#,
        ),
        // m-5: acked.
        send(ack_stanza("m-5")),
        // Duplicates after the fact change nothing.
        send(ack_stanza("m-1")),
        send(ack_stanza("m-5")),
        ack(r#"{"message_type":"nack","message_id":"m-5","error":"SERVICE_UNAVAILABLE"}"#),
    ];
    let script = after_handshake([vec![Step::Swallow(N)], noise, answers].concat());
    let server = RawServer::start(move |_| script.clone()).await;
    let (client, _incoming) = bounded(10, Client::connect(server.config())).await.unwrap();
    let pending = submit_all(&client).await;
    let mut outcomes = Vec::new();
    for p in pending {
        outcomes.push(bounded(10, p).await);
    }
    let nack_code =
        |o: &Result<gcm_ccs::Ack, SendError>| o.as_ref().err().and_then(|e| e.nack_code().cloned());
    assert_eq!(
        nack_code(&outcomes[0]),
        Some(NackCode::BadRegistration),
        "{outcomes:?}"
    );
    assert_eq!(
        nack_code(&outcomes[1]),
        Some(NackCode::DeviceUnregistered),
        "{outcomes:?}"
    );
    for i in [2, 3] {
        match &outcomes[i] {
            Err(SendError::StanzaError(e)) => {
                assert_eq!(e.id.as_deref(), Some(ids()[i].as_str()));
                assert_eq!(e.condition, "bad-request");
            }
            other => panic!("m-{}: {other:?}", i + 1),
        }
    }
    assert_eq!(outcomes[4].as_ref().unwrap().message_id, "m-5");

    // One connection throughout, each message sent once, each outcome counted once.
    let stats = client.stats();
    assert_eq!(server.connections(), 1);
    assert_eq!((stats.acked, stats.nacked_total(), stats.failed), (1, 2, 2));
    assert_eq!(stats.retried, 0);
    // The client answered the server's iqs: an error for the unknown query, a result for the ping.
    eventually("iq answers", || {
        let sent = server.received(0);
        sent.contains(r#"<iq type="error" id="q1">"#)
            && sent.contains(r#"<iq type="result" id="p1"/>"#)
    })
    .await;
    assert!(server.received(0).contains("service-unavailable"));
    client.close().await;
}

// ----- exactly one outcome when nothing recovers ----------------------------------------------

async fn outcomes_of(
    script: impl Fn(usize) -> Vec<Step> + Send + Sync + 'static,
    tweak: impl FnOnce(&mut Config),
) -> (RawServer, Vec<Result<gcm_ccs::Ack, SendError>>) {
    let server = RawServer::start(script).await;
    let mut cfg = server.config();
    tweak(&mut cfg);
    let (client, _incoming) = bounded(10, Client::connect(cfg)).await.unwrap();
    let pending = submit_all(&client).await;
    let mut outcomes = Vec::new();
    for p in pending {
        outcomes.push(bounded(10, p).await);
    }
    let stats = client.stats();
    assert_eq!(stats.failed + stats.acked + stats.nacked_total(), N as u64);
    (server, outcomes)
}

#[tokio::test]
async fn every_connection_dying_fails_each_message_once_retries_exhausted() {
    let (server, outcomes) = outcomes_of(
        |_| after_handshake(vec![Step::Swallow(N), Step::Close]),
        |cfg| cfg.retry.max_attempts = 2,
    )
    .await;
    for o in &outcomes {
        assert!(
            matches!(o, Err(SendError::ConnectionLost(r)) if r.contains("closed by peer")),
            "{o:?}"
        );
    }
    assert_eq!(sorted(server.messages(0)), ids());
    assert_eq!(sorted(server.messages(1)), ids(), "one retry each");
}

#[tokio::test]
async fn server_refusing_new_sessions_fails_queued_messages_as_unavailable() {
    let (_, outcomes) = outcomes_of(
        |n| match n {
            0 => after_handshake(vec![Step::Swallow(N), Step::Close]),
            _ => sasl_stage(&format!(
                r#"<stream:error><system-shutdown xmlns="{STREAM_ERRORS}"/></stream:error>"#
            )),
        },
        |cfg| cfg.reconnect.unavailable_after = Duration::from_millis(300),
    )
    .await;
    for o in &outcomes {
        assert!(
            matches!(o, Err(SendError::Unavailable(ConnectError::StreamError { condition, .. })) if condition == "system-shutdown"),
            "{o:?}"
        );
    }
}

#[tokio::test]
async fn unanswered_messages_time_out_once_retries_are_exhausted() {
    // An ack timeout makes the connection suspect: it is closed and the messages go out
    // again on a new connection, never twice on the same one.
    let (server, outcomes) = outcomes_of(
        |_| after_handshake(vec![Step::Swallow(N)]),
        |cfg| {
            cfg.ack_timeout = Duration::from_millis(300);
            cfg.retry.max_attempts = 2;
        },
    )
    .await;
    for o in &outcomes {
        assert!(
            matches!(o, Err(SendError::Timeout(t)) if *t == Duration::from_millis(300)),
            "{o:?}"
        );
    }
    assert!(server.connections() >= 2);
    for conn in 0..2 {
        let sent = server.received(conn);
        for id in ids() {
            assert_eq!(
                sent.matches(&format!(r#"<message id="{id}">"#)).count(),
                1,
                "{id} on connection {conn}"
            );
        }
    }
}

#[tokio::test]
async fn a_server_that_drains_without_closing_cannot_multiply_connections() {
    // Each connection is told CONNECTION_DRAINING right after binding and is never closed.
    // The client opens replacements, but keeps at most twice its pool size open, and closes
    // a draining connection itself once `ack_timeout` has passed.
    let drain = gcm_server(r#"{"message_type":"control","control_type":"CONNECTION_DRAINING"}"#);
    let server = RawServer::start(move |_| after_handshake(vec![send(&drain)])).await;
    let mut cfg = server.config();
    cfg.connections = 2;
    cfg.ack_timeout = Duration::from_millis(400);
    cfg.retry.max_attempts = 2;
    let (client, _incoming) = bounded(10, Client::connect(cfg)).await.unwrap();
    let mut events = client.events();
    let p = client
        .submit(Message::to("tok").message_id("m-1").build().unwrap())
        .await
        .unwrap();
    let mut most = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        most = most.max(client.stats().connections);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(most <= 4, "{most} connections open at once");
    let reason = next_event(&mut events, |e| match e {
        Event::Lost { reason, .. } => Some(reason),
        _ => None,
    })
    .await;
    assert_contains(&reason, "did not close the draining connection");
    // The message still ends, once: it never got an answer.
    let outcome = bounded(10, p).await;
    assert!(
        matches!(
            outcome,
            Err(SendError::Timeout(_) | SendError::ConnectionLost(_))
        ),
        "{outcome:?}"
    );
}

/// A connection that floods acks for ids we never sent neither starves the intake nor the
/// timers: messages keep flowing to the well-behaved connection, the flooding one's messages
/// time out, and it is closed and its messages resent.
#[tokio::test]
async fn a_flood_of_acks_for_unknown_ids_starves_neither_intake_nor_timers() {
    let flood: String = (0..100)
        .map(|i| ack_stanza(&format!("unknown-{i}")))
        .collect();
    let server = RawServer::start(move |n| match n {
        0 => after_handshake(vec![Step::Repeat {
            chunk: flood.clone().into_bytes(),
            times: usize::MAX,
        }]),
        _ => after_handshake(vec![Step::AckForever]),
    })
    .await;
    let mut cfg = server.config();
    cfg.connections = 2;
    cfg.ack_timeout = Duration::from_secs(2);
    let (client, _incoming) = bounded(10, Client::connect(cfg)).await.unwrap();
    eventually("both connections", || client.stats().connections == 2).await;
    let mut pending = Vec::new();
    for i in 0..500 {
        let msg = Message::to("tok")
            .message_id(format!("m-{i}"))
            .build()
            .unwrap();
        pending.push(client.submit(msg).await.unwrap());
    }
    for p in pending {
        bounded(20, p)
            .await
            .expect("acked, on the good connection or after a resend");
    }
    let stats = client.stats();
    assert!(
        stats.retried > 0,
        "the flooding connection's messages were resent: {stats:?}"
    );
    assert!(server.connections() >= 3, "and it was replaced");
    client.close().await;
}
