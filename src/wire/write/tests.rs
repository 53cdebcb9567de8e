use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::wire::frame::*;
use crate::wire::testing::frames_of;

/// Parses `stanza` inside a server stream and returns its frame.
async fn parse_one(stanza: &[u8]) -> Frame {
    let mut header = Vec::new();
    server_stream_header(&mut header, "gcm.googleapis.com", "ID");
    header.extend_from_slice(stanza);
    let (frames, error) = frames_of(&header).await;
    assert!(
        matches!(error, WireError::Eof { mid_stanza: false }),
        "{error:?}"
    );
    match <[Frame; 2]>::try_from(frames) {
        Ok([_, frame]) => frame,
        Err(frames) => panic!("{frames:?}"),
    }
}

async fn parse_element(stanza: &[u8]) -> Element {
    match parse_one(stanza).await {
        Frame::Element(element) => element,
        other => panic!("{other:?}"),
    }
}

async fn parse_message(stanza: &[u8]) -> MessageStanza {
    match parse_one(stanza).await {
        Frame::Message(message) => message,
        other => panic!("{other:?}"),
    }
}

fn written(write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out);
    out
}

fn text(out: &[u8]) -> &str {
    std::str::from_utf8(out).unwrap()
}

#[test]
fn exact_shapes() {
    assert_eq!(
        text(&written(|o| client_stream_header(o, "gcm.googleapis.com"))),
        r#"<stream:stream to="gcm.googleapis.com" version="1.0" xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">"#
    );
    assert_eq!(
        text(&written(|o| server_stream_header(
            o,
            "gcm.googleapis.com",
            "4A61B2C3D4E5F607"
        ))),
        r#"<stream:stream from="gcm.googleapis.com" id="4A61B2C3D4E5F607" version="1.0" xmlns:stream="http://etherx.jabber.org/streams" xmlns="jabber:client">"#
    );
    assert_eq!(
        text(&written(|o| sasl_features(
            o,
            &["X-OAUTH2", "X-GOOGLE-TOKEN", "PLAIN"]
        ))),
        r#"<stream:features><mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>X-OAUTH2</mechanism><mechanism>X-GOOGLE-TOKEN</mechanism><mechanism>PLAIN</mechanism></mechanisms></stream:features>"#
    );
    assert_eq!(
        text(&written(bind_session_features)),
        r#"<stream:features><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/><session xmlns="urn:ietf:params:xml:ns:xmpp-session"/></stream:features>"#
    );
    assert_eq!(
        text(&written(|o| auth_plain(
            o,
            "123456789012@gcm.googleapis.com",
            "AIzaSyExampleServerKey_0123456789abcd"
        ))),
        r#"<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">ADEyMzQ1Njc4OTAxMkBnY20uZ29vZ2xlYXBpcy5jb20AQUl6YVN5RXhhbXBsZVNlcnZlcktleV8wMTIzNDU2Nzg5YWJjZA==</auth>"#
    );
    assert_eq!(
        text(&written(sasl_success)),
        r#"<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/>"#
    );
    assert_eq!(
        text(&written(|o| sasl_failure(o, "not-authorized"))),
        r#"<failure xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><not-authorized/></failure>"#
    );
    assert_eq!(
        text(&written(|o| iq_ping(o, "ping-17", "gcm.googleapis.com"))),
        r#"<iq type="get" id="ping-17" to="gcm.googleapis.com"><ping xmlns="urn:xmpp:ping"/></iq>"#
    );
    assert_eq!(
        text(&written(|o| iq_result(
            o,
            Some("p1"),
            Some("gcm.googleapis.com")
        ))),
        r#"<iq type="result" id="p1" from="gcm.googleapis.com"/>"#
    );
    assert_eq!(
        text(&written(|o| stream_error(o, "invalid-xml", None))),
        r#"<stream:error><invalid-xml xmlns="urn:ietf:params:xml:ns:xmpp-streams"/></stream:error>"#
    );
    let mut out = Vec::new();
    gcm_server_message(&mut out, r#"{"message_type":"ack"}"#).unwrap();
    assert_eq!(
        text(&out),
        r#"<message><data:gcm xmlns:data="google:mobile:data">{"message_type":"ack"}</data:gcm></message>"#
    );
    let mut out = Vec::new();
    gcm_upstream(&mut out, "1@gcm.googleapis.com", "{}").unwrap();
    assert_eq!(
        text(&out),
        r#"<message to="1@gcm.googleapis.com" from="devices@gcm.googleapis.com" type="normal"><gcm xmlns="google:mobile:data">{}</gcm></message>"#
    );
}

#[tokio::test]
async fn stream_headers_parse_back() {
    let mut out = Vec::new();
    client_stream_header(&mut out, "gcm.googleapis.com");
    out.extend_from_slice(STREAM_CLOSE);
    let (frames, _) = frames_of(&out).await;
    assert_eq!(
        frames,
        [
            Frame::StreamOpen(StreamHeader {
                to: Some("gcm.googleapis.com".into()),
                version: Some("1.0".into()),
                ..StreamHeader::default()
            }),
            Frame::StreamClose
        ]
    );
    let out = written(|o| server_stream_header(o, "a&b", "0123"));
    let (frames, _) = frames_of(&out).await;
    assert_eq!(
        frames,
        [Frame::StreamOpen(StreamHeader {
            from: Some("a&b".into()),
            id: Some("0123".into()),
            version: Some("1.0".into()),
            to: None,
        })]
    );
}

#[tokio::test]
async fn features_and_sasl_parse_back() {
    let features = parse_element(&written(|o| sasl_features(o, &["PLAIN", "X<&>"]))).await;
    assert!(features.is(NS_STREAMS, "features"));
    let mechanisms = features.child(NS_SASL, "mechanisms").unwrap();
    let names: Vec<_> = mechanisms
        .children
        .iter()
        .map(|m| m.text.as_str())
        .collect();
    assert_eq!(names, ["PLAIN", "X<&>"]);

    let features = parse_element(&written(bind_session_features)).await;
    assert!(features.child(NS_BIND, "bind").is_some());
    assert!(features.child(NS_SESSION, "session").is_some());

    let auth = parse_element(&written(|o| auth_plain(o, "1@gcm.googleapis.com", "k&y"))).await;
    assert!(auth.is(NS_SASL, "auth"));
    assert_eq!(auth.attr("mechanism"), Some("PLAIN"));
    let creds = crate::wire::sasl::decode_plain(&auth.text).unwrap();
    assert_eq!(
        (creds.authcid.as_str(), creds.password.as_str()),
        ("1@gcm.googleapis.com", "k&y")
    );

    assert!(
        parse_element(&written(sasl_success))
            .await
            .is(NS_SASL, "success")
    );
    let failure = parse_element(&written(|o| sasl_failure(o, "not-authorized"))).await;
    assert!(failure.child(NS_SASL, "not-authorized").is_some());
}

#[tokio::test]
async fn iqs_parse_back() {
    let bind = parse_element(&written(|o| iq_bind(o, "b1", Some("w1")))).await;
    assert_eq!(
        (bind.attr("type"), bind.attr("id")),
        (Some("set"), Some("b1"))
    );
    let resource = bind
        .child(NS_BIND, "bind")
        .and_then(|b| b.child(NS_BIND, "resource"));
    assert_eq!(resource.map(|r| r.text.as_str()), Some("w1"));
    let bind = parse_element(&written(|o| iq_bind(o, "b2", None))).await;
    assert!(
        bind.child(NS_BIND, "bind")
            .is_some_and(|b| b.children.is_empty())
    );

    let session = parse_element(&written(|o| iq_session(o, "s1"))).await;
    assert_eq!(session.attr("id"), Some("s1"));
    assert!(session.child(NS_SESSION, "session").is_some());

    let ping = parse_element(&written(|o| iq_ping(o, "p\"1", "gcm.googleapis.com"))).await;
    assert_eq!(
        (ping.attr("type"), ping.attr("id")),
        (Some("get"), Some("p\"1"))
    );
    assert!(ping.child(NS_PING, "ping").is_some());

    let result = parse_element(&written(|o| {
        iq_bind_result(o, None, "1@gcm.googleapis.com/w1AB")
    }))
    .await;
    assert_eq!(
        (result.attr("type"), result.attr("id")),
        (Some("result"), None)
    );
    let jid = result
        .child(NS_BIND, "bind")
        .and_then(|b| b.child(NS_BIND, "jid"));
    assert_eq!(
        jid.map(|j| j.text.as_str()),
        Some("1@gcm.googleapis.com/w1AB")
    );

    let result = parse_element(&written(|o| iq_result(o, None, None))).await;
    assert_eq!(result.attrs, [("type".to_owned(), "result".to_owned())]);

    let error = parse_element(&written(|o| {
        iq_error(o, Some("r1"), "cancel", "service-unavailable")
    }))
    .await;
    assert_eq!(
        (error.attr("type"), error.attr("id")),
        (Some("error"), Some("r1"))
    );
    let inner = error.child(NS_CLIENT, "error").unwrap();
    assert_eq!(inner.attr("type"), Some("cancel"));
    assert!(
        inner
            .child(NS_STANZA_ERRORS, "service-unavailable")
            .is_some()
    );
}

#[tokio::test]
async fn messages_parse_back() {
    let json = r#"{"to":"t","message_id":"m-1","data":{"x":"Tom & Jerry <3 ]]> \"q\" é"}}"#;
    let mut out = Vec::new();
    gcm_message(&mut out, "m-1", json).unwrap();
    let message = parse_message(&out).await;
    assert_eq!(message.id.as_deref(), Some("m-1"));
    assert_eq!(message.gcm.as_deref(), Some(json));

    let mut out = Vec::new();
    gcm_server_message(&mut out, json).unwrap();
    let message = parse_message(&out).await;
    assert_eq!(
        (message.id, message.kind, message.gcm.as_deref()),
        (None, None, Some(json))
    );

    let mut out = Vec::new();
    gcm_upstream(&mut out, "1@gcm.googleapis.com", json).unwrap();
    assert_eq!(
        parse_message(&out).await,
        MessageStanza {
            kind: Some("normal".into()),
            from: Some("devices@gcm.googleapis.com".into()),
            to: Some("1@gcm.googleapis.com".into()),
            gcm: Some(json.into()),
            ..MessageStanza::default()
        }
    );
}

#[tokio::test]
async fn stanza_error_parses_back() {
    let mut out = Vec::new();
    stanza_error(
        &mut out,
        Some("m-3"),
        "1@gcm.googleapis.com/r",
        r#"{"random": "<text>"}"#,
        400,
        "modify",
        "bad-request",
        "InvalidJson: JSON_PARSING_ERROR : Missing Required Field: message_id\n",
    )
    .unwrap();
    assert_eq!(
        parse_message(&out).await,
        MessageStanza {
            id: Some("m-3".into()),
            kind: Some("error".into()),
            to: Some("1@gcm.googleapis.com/r".into()),
            from: None,
            gcm: Some(r#"{"random": "<text>"}"#.into()),
            error: Some(StanzaErrorInfo {
                code: Some(400),
                kind: Some("modify".into()),
                condition: Some("bad-request".into()),
                text: Some(
                    "InvalidJson: JSON_PARSING_ERROR : Missing Required Field: message_id\n".into()
                ),
            }),
        }
    );
    let mut out = Vec::new();
    stanza_error(&mut out, None, "x", "{}", 400, "modify", "bad-request", "").unwrap();
    let error = parse_message(&out).await.error.unwrap();
    assert_eq!(error.text, None);
}

#[tokio::test]
async fn stream_error_parses_back() {
    let error = parse_element(&written(|o| {
        stream_error(o, "invalid-xml", Some("bad <xml>"))
    }))
    .await;
    assert!(error.is(NS_STREAMS, "error"));
    assert!(error.child(NS_STREAM_ERRORS, "invalid-xml").is_some());
    assert_eq!(
        error
            .child(NS_STREAM_ERRORS, "text")
            .map(|t| t.text.as_str()),
        Some("bad <xml>")
    );
}

#[test]
fn escaping() {
    let mut out = Vec::new();
    gcm_message(&mut out, "a\"b'c<d>&\t\n\r", "x&y<z>w]]>v\"'\t\n\r").unwrap();
    assert_eq!(
        text(&out),
        r#"<message id="a&quot;b&apos;c&lt;d&gt;&amp;&#9;&#10;&#13;"><gcm xmlns="google:mobile:data">x&amp;y&lt;z&gt;w]]&gt;v"'"#.to_owned()
            + "\t\n\r</gcm></message>"
    );
}

#[test]
fn characters_xml_cannot_carry() {
    let mut out = b"kept".to_vec();
    assert!(matches!(
        gcm_message(&mut out, "id", "a\u{1}b"),
        Err(WireError::InvalidChar(1))
    ));
    assert!(matches!(
        gcm_server_message(&mut out, "\0"),
        Err(WireError::InvalidChar(0))
    ));
    assert_eq!(out, b"kept", "nothing is appended on error");

    gcm_server_message(&mut out, "[\"\u{FFFE}\u{FFFF}\u{FFFD}\u{FFBF}\"]").unwrap();
    assert!(text(&out).contains(r#"["\ufffe\uffff"#));

    let mut out = Vec::new();
    assert!(matches!(
        stanza_error(
            &mut out,
            None,
            "t",
            "{}",
            400,
            "modify",
            "bad-request",
            "\u{FFFE}"
        ),
        Err(WireError::InvalidChar(0xFFFE))
    ));
    assert!(out.is_empty());

    iq_result(&mut out, Some("a\u{1}\u{FFFF}b"), None);
    assert_eq!(
        text(&out),
        "<iq type=\"result\" id=\"a\u{FFFD}\u{FFFD}b\"/>"
    );
}

#[test]
fn bad_condition_names_become_undefined_condition() {
    for bad in ["", "a b", "<x>", "1abc", "-x", "é"] {
        let out = written(|o| stream_error(o, bad, None));
        assert!(text(&out).contains("<undefined-condition "), "{bad}");
    }
}

#[test]
fn redact_hides_the_key() {
    const KEY: &str = "AIzaSyExampleServerKey_0123456789abcd";
    let mut auth = Vec::new();
    auth_plain(&mut auth, "123456789012@gcm.googleapis.com", KEY);
    let b64 = crate::wire::sasl::encode_plain("123456789012@gcm.googleapis.com", KEY);

    let shown = redact(&auth);
    assert_eq!(
        shown,
        r#"<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">***</auth>"#
    );

    let mut chunk = written(|o| client_stream_header(o, "gcm.googleapis.com"));
    chunk.extend_from_slice(&auth);
    chunk.extend_from_slice(b"<iq/>");
    let shown = redact(&chunk);
    assert!(
        !shown.contains(&b64) && shown.contains(">***</auth><iq/>"),
        "{shown}"
    );

    for at in 0..auth.len() {
        let (head, tail) = auth.split_at(at);
        for part in [head, tail] {
            let shown = redact(part);
            let sample = &b64[b64.len() / 2..b64.len() / 2 + 8];
            assert!(!shown.contains(sample), "split at {at}: {shown}");
        }
    }
    assert_eq!(
        redact(b"<authority>x</authority>"),
        "<authority>x</authority>"
    );
    assert_eq!(redact(b"<auth/><iq/>"), "<auth/><iq/>");
}

fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[&<>\\]\"'\u{FFFE}\u{FFFF}\u{0}\u{1}\u{1F}\t\n\r aé✓😀\u{FFBF}\u{F8FF}]{0,16}",
        Just("]]>".to_owned()),
        Just("&amp;&lt;<![CDATA[x]]>".to_owned()),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        json_string().prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((json_string(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// serde_json → gcm_message → FrameReader → serde_json gives back the same value.
    #[test]
    fn json_round_trips_through_the_wire(value in json_value(), id in json_string()) {
        let json = serde_json::to_string(&value).unwrap();
        let mut out = Vec::new();
        gcm_message(&mut out, &id, &json).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let message = runtime.block_on(parse_message(&out));
        let parsed: Value = serde_json::from_str(message.gcm.as_deref().unwrap()).unwrap();
        prop_assert_eq!(parsed, value);
    }

    /// Serializing while escaping gives exactly the bytes of serialize-then-escape.
    #[test]
    fn serializing_in_one_pass_matches_two(value in json_value(), id in json_string()) {
        let mut two = Vec::new();
        gcm_message(&mut two, &id, &serde_json::to_string(&value).unwrap()).unwrap();
        let mut one = b"kept".to_vec();
        gcm_message_of(&mut one, &id, &value).unwrap();
        prop_assert_eq!(&one[..4], b"kept");
        prop_assert_eq!(&one[4..], &two[..]);
        let mut two = Vec::new();
        gcm_server_message(&mut two, &serde_json::to_string(&value).unwrap()).unwrap();
        let mut one = Vec::new();
        gcm_server_message_of(&mut one, &value).unwrap();
        prop_assert_eq!(one, two);
    }
}
