use std::io::Cursor;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::wire::frame::*;
use crate::wire::testing::{Chunks, frames_of, read_until_error};

const SERVER_HEADER: &str = r#"<stream:stream from="gcm.googleapis.com" id="9F2C44A1B07D3E65" version="1.0" xmlns:stream="http://etherx.jabber.org/streams" xmlns="jabber:client">"#;
const CLIENT_HEADER: &str = r#"<stream:stream to="gcm.googleapis.com" version="1.0" xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">"#;

/// The server side of spec §11, plus a stanza error (§8.3), escapes and non-ASCII text.
const SERVER_TRANSCRIPT: &str = concat!(
    r#"<stream:stream from="gcm.googleapis.com" id="9F2C44A1B07D3E65" version="1.0" xmlns:stream="http://etherx.jabber.org/streams" xmlns="jabber:client">"#,
    r#"<stream:features><mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>X-OAUTH2</mechanism><mechanism>X-GOOGLE-TOKEN</mechanism><mechanism>PLAIN</mechanism></mechanisms></stream:features>"#,
    r#"<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/>"#,
    r#"<stream:stream from="gcm.googleapis.com" id="03BC71E2F5A9D418" version="1.0" xmlns:stream="http://etherx.jabber.org/streams" xmlns="jabber:client">"#,
    r#"<stream:features><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/><session xmlns="urn:ietf:params:xml:ns:xmpp-session"/></stream:features>"#,
    r#"<iq type="result" id="b1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><jid>123456789012@gcm.googleapis.com/w1D00C5E11</jid></bind></iq>"#,
    r#"<iq type="result" id="s1"/>"#,
    " ",
    r#"<message><data:gcm xmlns:data="google:mobile:data">{"message_type":"nack","message_id":"m-2","from":"tokB","error":"INVALID_JSON","error_description":"InvalidJson: INVALID_TTL : Invalid value (-1) for \"time_to_live\": must be between 0 and \"2419200\"\n"}</data:gcm></message>"#,
    r#"<message><data:gcm xmlns:data="google:mobile:data">{"message_type":"ack","message_id":"m-1","from":"tokA","registration_id":"tokA2"}</data:gcm></message>"#,
    "  \n ",
    r#"<message to="123456789012@gcm.googleapis.com" from="devices@gcm.googleapis.com" type="normal"><gcm xmlns="google:mobile:data">{"category":"com.example.chat","data":{"text":"Tom &amp; Jerry &lt;3 h&#xE9;llo ✓ 😀 &quot;q&quot;"},"message_id":"u-9","from":"tokA2","time_to_live":86400}</gcm></message>"#,
    r#"<iq type="result" id="p1" from="gcm.googleapis.com"/>"#,
    "<message id=\"m-0003\" type=\"error\" to=\"123456789012@gcm.googleapis.com/node-a7C41E09B\">\n",
    "  <gcm xmlns=\"google:mobile:data\">{\"random\": \"text\"}</gcm>\n",
    "  <error code=\"400\" type=\"modify\">\n",
    "    <bad-request xmlns=\"urn:ietf:params:xml:ns:xmpp-stanzas\"/>\n",
    "    <text xmlns=\"urn:ietf:params:xml:ns:xmpp-stanzas\">InvalidJson: JSON_PARSING_ERROR : Missing Required Field: message_id\\n</text>\n",
    "  </error>\n",
    "</message>",
    " ",
    r#"<message><data:gcm xmlns:data="google:mobile:data">{"message_type":"control","control_type":"CONNECTION_DRAINING"}</data:gcm></message>"#,
    "</stream:stream>",
);

fn el(ns: &str, name: &str) -> Element {
    Element {
        ns: ns.into(),
        name: name.into(),
        ..Element::default()
    }
}

fn with_attrs(mut e: Element, attrs: &[(&str, &str)]) -> Element {
    e.attrs = attrs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    e
}

fn with_text(mut e: Element, text: &str) -> Element {
    e.text = text.into();
    e
}

fn with_children(mut e: Element, children: Vec<Element>) -> Element {
    e.children = children;
    e
}

fn server_header(id: &str) -> Frame {
    Frame::StreamOpen(StreamHeader {
        from: Some("gcm.googleapis.com".into()),
        to: None,
        id: Some(id.into()),
        version: Some("1.0".into()),
    })
}

fn client_header() -> Frame {
    Frame::StreamOpen(StreamHeader {
        to: Some("gcm.googleapis.com".into()),
        version: Some("1.0".into()),
        ..StreamHeader::default()
    })
}

fn server_message(json: &str) -> Frame {
    Frame::Message(MessageStanza {
        gcm: Some(json.into()),
        ..MessageStanza::default()
    })
}

fn iq(attrs: &[(&str, &str)], children: Vec<Element>) -> Frame {
    Frame::Element(with_children(
        with_attrs(el(NS_CLIENT, "iq"), attrs),
        children,
    ))
}

fn expected_server_frames() -> Vec<Frame> {
    let mechanism = |m| with_text(el(NS_SASL, "mechanism"), m);
    vec![
        server_header("9F2C44A1B07D3E65"),
        Frame::Element(with_children(
            el(NS_STREAMS, "features"),
            vec![with_children(
                el(NS_SASL, "mechanisms"),
                vec![
                    mechanism("X-OAUTH2"),
                    mechanism("X-GOOGLE-TOKEN"),
                    mechanism("PLAIN"),
                ],
            )],
        )),
        Frame::Element(el(NS_SASL, "success")),
        server_header("03BC71E2F5A9D418"),
        Frame::Element(with_children(
            el(NS_STREAMS, "features"),
            vec![el(NS_BIND, "bind"), el(NS_SESSION, "session")],
        )),
        iq(
            &[("type", "result"), ("id", "b1")],
            vec![with_children(
                el(NS_BIND, "bind"),
                vec![with_text(
                    el(NS_BIND, "jid"),
                    "123456789012@gcm.googleapis.com/w1D00C5E11",
                )],
            )],
        ),
        iq(&[("type", "result"), ("id", "s1")], vec![]),
        server_message(
            r#"{"message_type":"nack","message_id":"m-2","from":"tokB","error":"INVALID_JSON","error_description":"InvalidJson: INVALID_TTL : Invalid value (-1) for \"time_to_live\": must be between 0 and \"2419200\"\n"}"#,
        ),
        server_message(
            r#"{"message_type":"ack","message_id":"m-1","from":"tokA","registration_id":"tokA2"}"#,
        ),
        Frame::Message(MessageStanza {
            kind: Some("normal".into()),
            from: Some("devices@gcm.googleapis.com".into()),
            to: Some("123456789012@gcm.googleapis.com".into()),
            gcm: Some(
                r#"{"category":"com.example.chat","data":{"text":"Tom & Jerry <3 héllo ✓ 😀 "q""},"message_id":"u-9","from":"tokA2","time_to_live":86400}"#
                    .into(),
            ),
            ..MessageStanza::default()
        }),
        iq(
            &[
                ("type", "result"),
                ("id", "p1"),
                ("from", "gcm.googleapis.com"),
            ],
            vec![],
        ),
        Frame::Message(MessageStanza {
            id: Some("m-0003".into()),
            kind: Some("error".into()),
            to: Some("123456789012@gcm.googleapis.com/node-a7C41E09B".into()),
            gcm: Some(r#"{"random": "text"}"#.into()),
            error: Some(StanzaErrorInfo {
                code: Some(400),
                kind: Some("modify".into()),
                condition: Some("bad-request".into()),
                text: Some(
                    r"InvalidJson: JSON_PARSING_ERROR : Missing Required Field: message_id\n"
                        .into(),
                ),
            }),
            ..MessageStanza::default()
        }),
        server_message(r#"{"message_type":"control","control_type":"CONNECTION_DRAINING"}"#),
        Frame::StreamClose,
    ]
}

fn assert_clean_eof(error: &WireError) {
    assert!(
        matches!(error, WireError::Eof { mid_stanza: false }),
        "{error:?}"
    );
}

async fn frames_from_chunks(chunks: Chunks) -> (Vec<Frame>, WireError) {
    read_until_error(&mut FrameReader::new(chunks, Limits::default())).await
}

#[tokio::test]
async fn server_transcript_in_one_read() {
    let (frames, error) = frames_of(SERVER_TRANSCRIPT.as_bytes()).await;
    assert_eq!(frames, expected_server_frames());
    assert_clean_eof(&error);
}

#[tokio::test]
async fn server_transcript_split_at_every_byte() {
    let bytes = SERVER_TRANSCRIPT.as_bytes();
    let expected = expected_server_frames();
    for at in 0..=bytes.len() {
        let (head, tail) = bytes.split_at(at);
        let (frames, error) = frames_from_chunks(Chunks::new([head, tail])).await;
        assert_eq!(frames, expected, "split at {at}");
        assert_clean_eof(&error);
    }
}

#[tokio::test]
async fn server_transcript_one_byte_per_read() {
    let (frames, error) = frames_from_chunks(Chunks::bytewise(SERVER_TRANSCRIPT.as_bytes())).await;
    assert_eq!(frames, expected_server_frames());
    assert_clean_eof(&error);
}

fn client_transcript(declaration: &str) -> String {
    [
        declaration,
        CLIENT_HEADER,
        r#"<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">ADEyMzQ1Njc4OTAxMkBnY20uZ29vZ2xlYXBpcy5jb20AQUl6YVN5RXhhbXBsZVNlcnZlcktleV8wMTIzNDU2Nzg5YWJjZA==</auth>"#,
        declaration,
        CLIENT_HEADER,
        r#"<iq type="set"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>"#,
        "<!-- a comment --><?pi ignored?>",
        r#"<iq type="set" id="s1"><session xmlns="urn:ietf:params:xml:ns:xmpp-session"/></iq>"#,
        r#"<message id="m-1"><gcm xmlns="google:mobile:data">{"to":"tokA","message_id":"m-1","data":{"n":"1"}}</gcm></message>"#,
        " ",
        r#"<message id=""><gcm xmlns="google:mobile:data">{"to":"tokA2","message_id":"u-9","message_type":"ack"}</gcm></message>"#,
        r#"<iq type="get" id="p1" to="gcm.googleapis.com"><ping xmlns="urn:xmpp:ping"/></iq>"#,
        "</stream:stream>",
    ]
    .concat()
}

fn expected_client_frames() -> Vec<Frame> {
    let message = |id: Option<&str>, json: &str| {
        Frame::Message(MessageStanza {
            id: id.map(Into::into),
            gcm: Some(json.into()),
            ..MessageStanza::default()
        })
    };
    vec![
        client_header(),
        Frame::Element(with_text(
            with_attrs(el(NS_SASL, "auth"), &[("mechanism", "PLAIN")]),
            "ADEyMzQ1Njc4OTAxMkBnY20uZ29vZ2xlYXBpcy5jb20AQUl6YVN5RXhhbXBsZVNlcnZlcktleV8wMTIzNDU2Nzg5YWJjZA==",
        )),
        client_header(),
        iq(&[("type", "set")], vec![el(NS_BIND, "bind")]),
        iq(
            &[("type", "set"), ("id", "s1")],
            vec![el(NS_SESSION, "session")],
        ),
        message(
            Some("m-1"),
            r#"{"to":"tokA","message_id":"m-1","data":{"n":"1"}}"#,
        ),
        message(
            None,
            r#"{"to":"tokA2","message_id":"u-9","message_type":"ack"}"#,
        ),
        iq(
            &[("type", "get"), ("id", "p1"), ("to", "gcm.googleapis.com")],
            vec![el(NS_PING, "ping")],
        ),
        Frame::StreamClose,
    ]
}

#[tokio::test]
async fn client_transcript_with_and_without_declaration() {
    for declaration in [
        "",
        r#"<?xml version="1.0"?>"#,
        "<?xml version='1.0' encoding='UTF-8'?>\n",
    ] {
        let bytes = client_transcript(declaration);
        let (frames, error) = frames_of(bytes.as_bytes()).await;
        assert_eq!(frames, expected_client_frames(), "{declaration:?}");
        assert_clean_eof(&error);
        let (frames, error) = frames_from_chunks(Chunks::bytewise(bytes.as_bytes())).await;
        assert_eq!(
            frames,
            expected_client_frames(),
            "{declaration:?}, bytewise"
        );
        assert_clean_eof(&error);
    }
}

#[tokio::test]
async fn several_stanzas_in_one_read_after_a_split_header() {
    let header = SERVER_HEADER.as_bytes();
    let (a, b) = header.split_at(10);
    let rest = format!(
        "{}{}{} ",
        r#"<iq type="result" id="s1"/>"#,
        r#"<message><data:gcm xmlns:data="google:mobile:data">{}</data:gcm></message>"#,
        r#"<iq type="result" id="s2"/>"#,
    );
    let (frames, error) = frames_from_chunks(Chunks::new([a, b, rest.as_bytes()])).await;
    assert_eq!(frames.len(), 4, "{frames:?}");
    assert_eq!(frames[2], server_message("{}"));
    assert_clean_eof(&error);
}

/// Found by the `frame_reader` fuzzer: a forbidden byte used to fail the whole read it arrived
/// in, so whether the frames before it were delivered depended on the read boundaries.
#[tokio::test]
async fn frames_before_a_control_character_do_not_depend_on_read_boundaries() {
    let input = format!("{SERVER_HEADER}<iq type='result' id='a'/> \u{0}<iq/>");
    let limits = Limits::default();
    let whole = read_until_error(&mut FrameReader::new(Chunks::new([&input]), limits)).await;
    let bytewise = read_until_error(&mut FrameReader::new(
        Chunks::bytewise(input.as_bytes()),
        limits,
    ))
    .await;
    for (frames, error) in [&whole, &bytewise] {
        assert_eq!(frames.len(), 2, "{frames:?}");
        assert!(
            matches!(error, WireError::Malformed(m) if m.contains("U+0000")),
            "{error:?}"
        );
    }
    assert_eq!(whole.0, bytewise.0);
}

/// Found replaying the `classify_json` fuzz seeds: a size limit of `usize::MAX` overflowed
/// (a panic in debug builds; in release an empty read, taken for EOF).
#[tokio::test]
async fn unlimited_stanza_size_is_allowed() {
    let limits = Limits {
        max_stanza_bytes: usize::MAX,
        ..Limits::default()
    };
    let input = format!("{SERVER_HEADER}<iq type='result' id='a'/>");
    let (frames, error) =
        read_until_error(&mut FrameReader::new(Chunks::new([&input]), limits)).await;
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_clean_eof(&error);
}

#[tokio::test]
async fn utf8_split_inside_characters() {
    let text = "héllo ✓ 😀 Ω";
    let bytes = format!(
        r#"{SERVER_HEADER}<message id="é✓"><gcm xmlns="google:mobile:data">{text}</gcm></message>"#
    );
    let bytes = bytes.as_bytes();
    let gcm_at = bytes.len() - text.len() - "</gcm></message>".len();
    for at in gcm_at..gcm_at + text.len() {
        let (frames, _) = frames_from_chunks(Chunks::new([&bytes[..at], &bytes[at..]])).await;
        let Frame::Message(msg) = &frames[1] else {
            panic!("{frames:?}")
        };
        assert_eq!(msg.gcm.as_deref(), Some(text), "split at {at}");
        assert_eq!(msg.id.as_deref(), Some("é✓"));
    }
}

async fn gcm_of(stanza: &str) -> Option<String> {
    let (frames, error) = frames_of(format!("{SERVER_HEADER}{stanza}").as_bytes()).await;
    assert_clean_eof(&error);
    match &frames[..] {
        [_, Frame::Message(msg)] => msg.gcm.clone(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn payload_is_matched_by_namespace_not_prefix() {
    for stanza in [
        r#"<message><data:gcm xmlns:data="google:mobile:data">{"a":1}</data:gcm></message>"#,
        r#"<message><gcm xmlns="google:mobile:data">{"a":1}</gcm></message>"#,
        r#"<message><foo:gcm xmlns:foo="google:mobile:data">{"a":1}</foo:gcm></message>"#,
        r#"<message xmlns:d="google:mobile:data"><d:gcm>{"a":1}</d:gcm></message>"#,
        "<message><gcm xmlns=\"google:mobile:data\">\n  {\"a\":1}\n</gcm></message>",
        r#"<message><gcm xmlns="other"/><x:gcm xmlns:x="google:mobile:data">{"a":1}<b>ignored</b></x:gcm><gcm xmlns="google:mobile:data">second</gcm></message>"#,
        r#"<message><gcm xmlns="google:mobile:data">{"a"<!-- c -->:<![CDATA[1]]>}</gcm></message>"#,
    ] {
        assert_eq!(
            gcm_of(stanza).await.as_deref(),
            Some(r#"{"a":1}"#),
            "{stanza}"
        );
    }
}

#[tokio::test]
async fn gcm_in_another_namespace_is_not_the_payload() {
    for stanza in [
        r#"<message><gcm xmlns="other">{"a":1}</gcm></message>"#,
        r#"<message><gcm>{"a":1}</gcm></message>"#,
        r#"<message><data:gcm xmlns:data="google:mobile:data:x">{"a":1}</data:gcm></message>"#,
        r#"<message><x xmlns="google:mobile:data"><gcm>{"a":1}</gcm></x></message>"#,
        "<message/>",
    ] {
        assert_eq!(gcm_of(stanza).await, None, "{stanza}");
    }
}

#[tokio::test]
async fn message_in_another_namespace_is_a_generic_element() {
    let (frames, _) = frames_of(
        format!(r#"{SERVER_HEADER}<message xmlns="urn:other"><gcm xmlns="google:mobile:data">x</gcm></message>"#)
            .as_bytes(),
    )
    .await;
    assert!(matches!(&frames[1], Frame::Element(e) if e.is("urn:other", "message")));
}

#[tokio::test(start_paused = true)]
async fn keepalives_touch_the_activity_clock() {
    let (mut peer, ours) = tokio::io::duplex(1024);
    let mut reader = FrameReader::new(ours, Limits::default());
    let activity = reader.activity();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(frame) = reader.next_frame().await {
            let _ = tx.send(frame);
        }
    });

    peer.write_all(SERVER_HEADER.as_bytes()).await.unwrap();
    assert!(matches!(rx.recv().await, Some(Frame::StreamOpen(_))));
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(activity.last().elapsed() >= Duration::from_secs(30));

    peer.write_all(b" ").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(
        activity.last().elapsed() <= Duration::from_millis(1),
        "{:?}",
        activity.last().elapsed()
    );
    assert!(rx.try_recv().is_err(), "a keepalive is not a frame");

    tokio::time::sleep(Duration::from_secs(5)).await;
    peer.write_all(br#"<iq type="result" id="x"/>"#)
        .await
        .unwrap();
    assert!(matches!(rx.recv().await, Some(Frame::Element(_))));
    assert!(activity.last().elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn bytes_read_counts_everything() {
    let bytes = format!("{SERVER_HEADER}   ");
    let mut reader = FrameReader::new(Chunks::new([bytes.as_bytes()]), Limits::default());
    let _ = read_until_error(&mut reader).await;
    assert_eq!(reader.bytes_read(), bytes.len() as u64);
}

// ---- limits ----

/// Reads `input` with a 1 KiB stanza cap; returns the error and the bytes read.
async fn read_capped<R: AsyncRead + Unpin>(input: R) -> (Vec<Frame>, WireError, u64) {
    let limits = Limits {
        max_stanza_bytes: 1024,
        ..Limits::default()
    };
    let mut reader = FrameReader::new(input, limits);
    let (frames, error) = read_until_error(&mut reader).await;
    (frames, error, reader.bytes_read())
}

fn assert_too_large(error: &WireError, bytes_read: u64) {
    assert!(
        matches!(error, WireError::TooLarge { limit: 1024 }),
        "{error:?}"
    );
    // The cap, the header and at most one transport read ahead.
    assert!(
        bytes_read <= (1024 + SERVER_HEADER.len() + 8 * 1024) as u64,
        "{bytes_read}"
    );
}

fn header_then(s: &str) -> Cursor<Vec<u8>> {
    Cursor::new(format!("{SERVER_HEADER}{s}").into_bytes())
}

#[tokio::test]
async fn ten_megabyte_stanza_is_too_large() {
    let input = header_then(r#"<message><gcm xmlns="google:mobile:data">"#)
        .chain(tokio::io::repeat(b'a').take(10 << 20))
        .chain(Cursor::new(b"</gcm></message>".to_vec()));
    let (frames, error, read) = read_capped(input).await;
    assert_eq!(frames.len(), 1);
    assert_too_large(&error, read);
}

#[tokio::test]
async fn endless_inputs_are_too_large() {
    for (prefix, fill) in [
        (r#"<message><gcm xmlns="google:mobile:data">"#, b'a'),
        (r#"<message id=""#, b'a'),
        ("<message", b' '),
        ("<message>", b' '),
        ("<!--", b'a'),
        ("<!DOCTYPE x [", b' '),
        ("<message><gcm>&", b'a'),
    ] {
        let (_, error, read) =
            read_capped(header_then(prefix).chain(tokio::io::repeat(fill))).await;
        assert_too_large(&error, read);
    }
    let (_, error, read) = read_capped(tokio::io::repeat(b'<')).await;
    assert!(
        matches!(error, WireError::TooLarge { .. } | WireError::Malformed(_)),
        "{error:?}"
    );
    assert!(read <= 16 * 1024, "{read}");
}

#[tokio::test]
async fn endless_unterminated_header_is_too_large() {
    let input = Cursor::new(b"<stream:stream from=\"".to_vec()).chain(tokio::io::repeat(b'a'));
    let (_, error, read) = read_capped(input).await;
    assert_too_large(&error, read);
}

#[tokio::test]
async fn whitespace_between_stanzas_is_unbounded() {
    let input = header_then("")
        .chain(tokio::io::repeat(b' ').take(1 << 20))
        .chain(Cursor::new(br#"<iq type="result" id="x"/>"#.to_vec()));
    let (frames, error, read) = read_capped(input).await;
    assert_eq!(frames.len(), 2, "{error:?}");
    assert_clean_eof(&error);
    assert!(read > 1 << 20);
}

#[tokio::test]
async fn stanzas_at_the_cap_pass_and_just_over_fail() {
    let stanza = |len: usize| {
        let open = r#"<message><gcm xmlns="google:mobile:data">"#;
        let close = "</gcm></message>";
        format!(
            "{open}{}{close}",
            "a".repeat(len - open.len() - close.len())
        )
    };
    let (frames, error, _) =
        read_capped(header_then(&format!("{} {}", stanza(1024), stanza(1024)))).await;
    assert_eq!(frames.len(), 3, "{error:?}");
    assert_clean_eof(&error);
    let (frames, error, _) = read_capped(header_then(&stanza(1025))).await;
    assert_eq!(frames.len(), 1);
    assert!(matches!(error, WireError::TooLarge { .. }), "{error:?}");
}

#[tokio::test]
async fn deep_nesting_is_too_deep() {
    let nested = |depth: usize| {
        format!(
            "{SERVER_HEADER}{}{}",
            "<a>".repeat(depth),
            "</a>".repeat(depth)
        )
    };
    let (frames, error) = frames_of(nested(16).as_bytes()).await;
    assert_eq!(frames.len(), 2);
    assert_clean_eof(&error);
    let (_, error) = frames_of(nested(17).as_bytes()).await;
    assert!(
        matches!(error, WireError::TooDeep { limit: 16 }),
        "{error:?}"
    );
    let (_, error) =
        frames_of(format!("{}<a/>", &nested(16)[..nested(16).len() - 4 * 16]).as_bytes()).await;
    assert!(
        matches!(error, WireError::TooDeep { limit: 16 }),
        "{error:?}"
    );
}

#[tokio::test]
async fn attribute_floods_are_rejected() {
    let attrs = |n: usize, prefix: &str| {
        (0..n)
            .map(|i| format!(r#" {prefix}{i}="v""#))
            .collect::<String>()
    };
    let (frames, error) =
        frames_of(format!("{SERVER_HEADER}<iq{}/>", attrs(64, "a")).as_bytes()).await;
    assert_eq!(frames.len(), 2, "{error:?}");
    for flood in [attrs(65, "a"), attrs(65, "xmlns:p"), attrs(5_000, "a")] {
        let (frames, error) = frames_of(format!("{SERVER_HEADER}<iq{flood}/>").as_bytes()).await;
        assert_eq!(frames.len(), 1);
        assert!(matches!(error, WireError::Malformed(_)), "{error:?}");
    }
    let (_, error) = frames_of(format!(r#"{SERVER_HEADER}<iq a="1" a="2"/>"#).as_bytes()).await;
    assert!(matches!(error, WireError::Malformed(_)), "{error:?}");
}

#[tokio::test]
async fn too_many_stream_restarts() {
    let (frames, error) = frames_of(SERVER_HEADER.repeat(5).as_bytes()).await;
    assert_eq!(frames.len(), 4);
    assert!(matches!(error, WireError::Malformed(_)), "{error:?}");
}

// ---- forbidden and malformed input ----

async fn error_of(input: &[u8]) -> WireError {
    frames_of(input).await.1
}

#[tokio::test]
async fn dtds_and_entity_declarations_are_forbidden() {
    for input in [
        format!(r#"<!DOCTYPE stream [<!ENTITY x "y">]>{SERVER_HEADER}"#),
        format!(
            r#"<?xml version="1.0"?><!DOCTYPE stream SYSTEM "http://evil/x.dtd">{SERVER_HEADER}"#
        ),
        format!(r#"{SERVER_HEADER}<!DOCTYPE x>"#),
        format!(r#"{SERVER_HEADER}<!ENTITY x "y">"#),
        format!(r#"{SERVER_HEADER}<message><!ENTITY x "y"></message>"#),
    ] {
        let error = error_of(input.as_bytes()).await;
        assert!(
            matches!(error, WireError::Forbidden(_)),
            "{input}: {error:?}"
        );
    }
}

#[tokio::test]
async fn undefined_entities_are_forbidden() {
    for stanza in [
        r#"<message><gcm xmlns="google:mobile:data">&xxe;</gcm></message>"#,
        r#"<message id="&xxe;"/>"#,
        r#"<iq type="&nbsp;"/>"#,
        r#"<iq>&lol;</iq>"#,
    ] {
        let error = error_of(format!("{SERVER_HEADER}{stanza}").as_bytes()).await;
        assert!(
            matches!(error, WireError::Forbidden(_)),
            "{stanza}: {error:?}"
        );
    }
}

#[tokio::test]
async fn malformed_input_is_rejected() {
    for (what, input) in [
        ("garbage", b"hello world".to_vec()),
        (
            "garbage after header",
            format!("{SERVER_HEADER}hello").into_bytes(),
        ),
        (
            "mismatched tags",
            format!("{SERVER_HEADER}<message></mesage>").into_bytes(),
        ),
        (
            "stray end tag",
            format!("{SERVER_HEADER}<iq/></iq>").into_bytes(),
        ),
        (
            "no header",
            br#"<message><gcm xmlns="google:mobile:data">{}</gcm></message>"#.to_vec(),
        ),
        (
            "invalid utf-8 in text",
            [format!("{SERVER_HEADER}<iq>").as_bytes(), b"\xFF\xFE</iq>"].concat(),
        ),
        (
            "invalid utf-8 in a name",
            [format!("{SERVER_HEADER}<i").as_bytes(), b"\xC3q/>"].concat(),
        ),
        (
            "control character",
            format!("{SERVER_HEADER}<iq>\u{1}</iq>").into_bytes(),
        ),
        ("NUL", format!("{SERVER_HEADER}<iq>\0</iq>").into_bytes()),
        (
            "bad char ref",
            format!("{SERVER_HEADER}<iq>&#1;</iq>").into_bytes(),
        ),
        (
            "lone ampersand",
            format!("{SERVER_HEADER}<iq>a & b</iq>").into_bytes(),
        ),
        (
            "lt in attribute",
            format!(r#"{SERVER_HEADER}<iq id="<"/>"#).into_bytes(),
        ),
        (
            "unquoted attribute",
            format!("{SERVER_HEADER}<iq id=x/>").into_bytes(),
        ),
        (
            "undeclared prefix",
            format!("{SERVER_HEADER}<foo:iq/>").into_bytes(),
        ),
        (
            "data after close",
            format!("{SERVER_HEADER}</stream:stream><iq/>").into_bytes(),
        ),
        (
            "text after close",
            format!("{SERVER_HEADER}</stream:stream>x").into_bytes(),
        ),
        (
            "cdata between stanzas",
            format!("{SERVER_HEADER}<![CDATA[x]]>").into_bytes(),
        ),
    ] {
        let error = error_of(&input).await;
        assert!(
            matches!(error, WireError::Malformed(_)),
            "{what}: {error:?}"
        );
    }
}

#[tokio::test]
async fn eof_inside_a_stanza_is_reported_as_such() {
    for input in [
        format!(r#"{SERVER_HEADER}<message><gcm xmlns="google:mobile:data">{{"a""#),
        format!(r#"{SERVER_HEADER}<message><gcm xmlns="google:mobile:data">"#),
        format!("{SERVER_HEADER}<mess"),
        format!("{SERVER_HEADER}<message id=\"x"),
        format!("{SERVER_HEADER}<!-- unfinished"),
        format!("{SERVER_HEADER}<iq>&am"),
        "<stream:stream".to_owned(),
    ] {
        let error = error_of(input.as_bytes()).await;
        assert!(
            matches!(error, WireError::Eof { mid_stanza: true }),
            "{input}: {error:?}"
        );
    }
}

#[tokio::test]
async fn clean_eofs() {
    for input in [
        String::new(),
        "  \n".to_owned(),
        SERVER_HEADER.to_owned(),
        format!("{SERVER_HEADER} <iq/> "),
        format!("{SERVER_HEADER}</stream:stream>  "),
    ] {
        let error = error_of(input.as_bytes()).await;
        assert_clean_eof(&error);
    }
}

#[tokio::test]
async fn errors_are_sticky() {
    let input = format!("{SERVER_HEADER}<message></mesage><iq/>");
    let mut reader = FrameReader::new(Chunks::new([input]), Limits::default());
    let (_, first) = read_until_error(&mut reader).await;
    let second = reader.next_frame().await.unwrap_err();
    assert_eq!(first.to_string(), second.to_string());
}

#[tokio::test]
async fn element_attributes_and_text() {
    let (frames, _) = frames_of(
        format!(
            r#"{SERVER_HEADER}<iq xmlns:x="urn:x" x:a="1" b="&lt;&#x41;&quot;" c="l1&#10;l2	tab">t1<x:y/>t&amp;2</iq>"#
        )
        .as_bytes(),
    )
    .await;
    let Frame::Element(iq) = &frames[1] else {
        panic!("{frames:?}")
    };
    assert_eq!(
        iq.attrs,
        [("a", "1"), ("b", "<A\""), ("c", "l1\nl2 tab")].map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    assert_eq!(iq.text, "t1t&2");
    assert!(iq.child("urn:x", "y").is_some());
}

#[tokio::test]
async fn self_closing_stream_header_opens_and_closes() {
    let (frames, error) =
        frames_of(br#"<stream:stream xmlns:stream="http://etherx.jabber.org/streams" to="x"/>"#)
            .await;
    assert!(
        matches!(&frames[..], [Frame::StreamOpen(_), Frame::StreamClose]),
        "{frames:?}"
    );
    assert_clean_eof(&error);
}

#[tokio::test]
async fn stanza_error_code_is_parsed_leniently() {
    for (attr, code) in [
        (r#" code=" 503 ""#, Some(503)),
        (r#" code="x""#, None),
        ("", None),
    ] {
        let (frames, _) = frames_of(
            format!(r#"{SERVER_HEADER}<message type="error"><error{attr} type="cancel"><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">t</text><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><other-condition xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></message>"#)
                .as_bytes(),
        )
        .await;
        let Frame::Message(msg) = &frames[1] else {
            panic!("{frames:?}")
        };
        let error = msg.error.as_ref().unwrap();
        assert_eq!(error.code, code);
        assert_eq!(error.condition.as_deref(), Some("service-unavailable"));
        assert_eq!(error.text.as_deref(), Some("t"));
        assert_eq!(msg.gcm, None);
    }
}

/// One edit of a valid transcript: replace, insert or delete a byte at a position.
fn mutation() -> impl proptest::strategy::Strategy<Value = (usize, u8, u8)> {
    use proptest::prelude::*;
    let byte = prop_oneof![
        proptest::sample::select(b"<>/&;#x\"'=: \t\n!?[]-a\x00\x01\xC3\xFF".to_vec()),
        any::<u8>(),
    ];
    (any::<usize>(), byte, 0u8..3)
}

fn mutate(bytes: &mut Vec<u8>, (at, byte, op): (usize, u8, u8)) {
    let at = at % (bytes.len() + 1);
    match op {
        0 if at < bytes.len() => bytes[at] = byte,
        1 if at < bytes.len() => {
            bytes.remove(at);
        }
        _ => bytes.insert(at, byte),
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Corrupted transcripts never panic the reader, whatever the read boundaries, and every
    /// error is one of the documented kinds.
    #[test]
    fn corrupted_input_never_panics(
        mutations in proptest::collection::vec(mutation(), 1..6),
        split in proptest::prelude::any::<usize>(),
        small_cap in proptest::prelude::any::<bool>(),
    ) {
        let mut input = SERVER_TRANSCRIPT.as_bytes().to_vec();
        for m in mutations {
            mutate(&mut input, m);
        }
        let split = split % (input.len() + 1);
        let limits = Limits {
            max_stanza_bytes: if small_cap { 200 } else { 64 * 1024 },
            max_depth: 4,
            max_attributes: 4,
        };
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (_, error) = runtime.block_on(async {
            let (head, tail) = input.split_at(split);
            read_until_error(&mut FrameReader::new(Chunks::new([head, tail]), limits)).await
        });
        proptest::prop_assert!(!matches!(error, WireError::Io(_) | WireError::InvalidChar(_)), "{:?}", error);
    }
}

/// Found by the `frame_reader` fuzzer after the reader began splitting items at the byte
/// level: a top-level `stream` element outside the streams namespace was read as an element
/// running to the end of whatever was buffered, so the outcome depended on read boundaries.
#[tokio::test]
async fn a_stream_element_in_another_namespace_is_refused_whatever_the_reads() {
    let input = format!(
        r#"{SERVER_HEADER}<x:stream xmlns:x="urn:other"><iq/></x:stream><iq type="result"/>"#
    );
    let whole = read_until_error(&mut FrameReader::new(
        Chunks::new([&input]),
        Limits::default(),
    ))
    .await;
    let bytewise = read_until_error(&mut FrameReader::new(
        Chunks::bytewise(input.as_bytes()),
        Limits::default(),
    ))
    .await;
    for (frames, error) in [&whole, &bytewise] {
        assert_eq!(frames.len(), 1, "{frames:?}");
        assert!(
            matches!(error, WireError::Malformed(m) if m.contains("not a stream header")),
            "{error:?}"
        );
    }
}

/// Frames and final error of `input` read with or without the fixed-shape fast path.
fn read_with_fast_path(input: &[u8], fast: bool, limits: Limits) -> (Vec<Frame>, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut reader = FrameReader::new(Chunks::new([input]), limits);
        reader.set_fast_path(fast);
        let (frames, error) = read_until_error(&mut reader).await;
        (frames, error.to_string())
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]

    /// The fast path reads exactly what the parser reads: for CCS's ack shape around any
    /// text (markup, references, CR, non-ASCII, U+FFFE, whitespace), in any stream.
    #[test]
    fn the_fast_path_agrees_with_the_parser(
        pieces in proptest::collection::vec(proptest::sample::select(vec![
            r#"{"message_type":"ack","message_id":"m-1","from":"t"}"#, "&amp;", "&lt;", "&#x41;", "<",
            ">", "&", "\r\n", " ", "\t", "é", "\u{FFFE}", "]]>", "\"", "x", "</data:gcm>", "<!--c-->",
        ]), 0..8),
        shape in 0u8..4,
        depth in 1usize..4,
    ) {
        let text: String = pieces.concat();
        let item = match shape {
            0 => format!(r#"<message><data:gcm xmlns:data="google:mobile:data">{text}</data:gcm></message>"#),
            1 => format!(r#"<message id="x"><data:gcm xmlns:data="google:mobile:data">{text}</data:gcm></message>"#),
            2 => format!(r#"<message><gcm xmlns="google:mobile:data">{text}</gcm></message>"#),
            _ => format!(r#"<message><data:gcm xmlns:data="google:mobile:data">{text}</data:gcm></message> <iq type="result"/>"#),
        };
        let header = if depth == 3 { SERVER_HEADER.replace(r#" xmlns="jabber:client""#, r#" xmlns="urn:other""#) } else { SERVER_HEADER.to_owned() };
        let input = format!("{header}{item}</stream:stream>");
        let limits = Limits { max_depth: depth, ..Limits::default() };
        let fast = read_with_fast_path(input.as_bytes(), true, limits);
        let parsed = read_with_fast_path(input.as_bytes(), false, limits);
        proptest::prop_assert_eq!(fast, parsed);
    }
}

#[test]
fn ccs_acks_take_the_fast_path_and_escaped_text_does_not() {
    let ack = br#"<message><data:gcm xmlns:data="google:mobile:data">{"message_type":"ack","message_id":"m-1","from":"t"}</data:gcm></message>"#;
    let stanza = fast_message(ack).expect("the fast shape");
    assert_eq!(
        stanza.gcm.as_deref(),
        Some(r#"{"message_type":"ack","message_id":"m-1","from":"t"}"#)
    );
    let escaped =
        br#"<message><data:gcm xmlns:data="google:mobile:data">{"a":"&amp;"}</data:gcm></message>"#;
    assert!(fast_message(escaped).is_none());
}
