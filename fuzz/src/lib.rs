//! The checks behind each fuzz target, shared with the regular test suite
//! (`tests/fuzz_regressions.rs` includes this file), which replays the seed corpora and every
//! saved crash in `fixtures/fuzz/` through them.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use std::time::{Duration, SystemTime};

use gcm_ccs::http::{Reply, TokenResult, retry_after};
use gcm_ccs::unstable::{
    Frame, FrameReader, Inbound, Limits, MessageStanza, classify, classify_general, classify_json,
    message_stanza, read_direct, write,
};
use gcm_ccs::{HttpError, Message, NackCode, WireError};
use tokio::io::{AsyncRead, ReadBuf};

/// A client stream header, to put in front of client-role stanzas.
pub const CLIENT_HEADER: &[u8] = br#"<stream:stream to="gcm.googleapis.com" version="1.0" xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">"#;

/// `frame_reader`: the frame reader on arbitrary bytes with arbitrary read boundaries never
/// panics or loops, fails only with the documented kinds, and gives the same frames and the
/// same error whatever the chunking, and with or without the fixed-shape fast path for CCS's
/// acks.
///
/// Input: byte 0 mod 8 = how many of the next bytes are read sizes (each + 1, cycled); the
/// rest is the stream. Small limits, so that the fuzzer reaches them.
pub fn check_frame_reader(data: &[u8]) {
    const LIMITS: Limits = Limits {
        max_stanza_bytes: 1024,
        max_depth: 8,
        max_attributes: 8,
    };
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 8).min(rest.len());
    let (sizes, input) = rest.split_at(n);
    let sizes: Vec<usize> = sizes.iter().map(|&b| usize::from(b) + 1).collect();

    let (whole, error) = frames(input, &[usize::MAX], LIMITS, true);
    let (parsed, parsed_error) = frames(input, &[usize::MAX], LIMITS, false);
    assert_eq!(whole, parsed, "the fast path and the parser disagree");
    assert_eq!(error.to_string(), parsed_error.to_string());
    assert!(
        !matches!(error, WireError::Io(_) | WireError::InvalidChar(_)),
        "{error:?}"
    );
    if !sizes.is_empty() {
        let (chunked, chunked_error) = frames(input, &sizes, LIMITS, true);
        assert_eq!(whole, chunked, "frames depend on read boundaries {sizes:?}");
        assert_eq!(error_kind(&error), error_kind(&chunked_error), "{sizes:?}");
    }
}

/// The error without parser-specific detail.
fn error_kind(e: &WireError) -> String {
    match e {
        WireError::Malformed(_) => "malformed".into(),
        WireError::Forbidden(_) => "forbidden".into(),
        other => other.to_string(),
    }
}

/// `classify_json`: classification of arbitrary text never panics and is the same with or
/// without the fast path for acks; upstream messages and
/// receipts yield an ack that names them and survives the wire (an ack that cannot be sent
/// makes the server redeliver forever); nack codes re-parse to themselves; a stanza of
/// `type="error"` is always a stanza error.
pub fn check_classify_json(data: &[u8]) {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let inbound = classify_json(json);
    assert_eq!(
        inbound,
        classify_general(json),
        "the ack fast path and serde disagree"
    );
    let ack = match &inbound {
        Inbound::Upstream(u) => Some((u.ack_json(), &u.message_id, &u.from)),
        Inbound::Receipt(r) => Some((r.ack_json(), &r.message_id, &r.from)),
        Inbound::Nack(n) => {
            assert_eq!(NackCode::parse(n.code.as_str()), n.code);
            None
        }
        _ => None,
    };
    if let Some((ack, id, to)) = ack {
        let v: serde_json::Value = serde_json::from_str(&ack).expect("the ack is JSON");
        assert_eq!(v["message_type"], "ack");
        assert_eq!(v["message_id"].as_str(), Some(id.as_str()));
        assert_eq!(v["to"].as_str(), Some(to.as_str()));
        let mut bytes = CLIENT_HEADER.to_vec();
        write::gcm_message(&mut bytes, "", &ack).expect("an ack always encodes");
        let limits = Limits {
            max_stanza_bytes: usize::MAX,
            ..Limits::default()
        };
        let (frames, _) = frames(&bytes, &[usize::MAX], limits, true);
        match frames.get(1) {
            Some(Frame::Message(m)) => {
                let sent = m.gcm.as_deref().expect("the ack has a payload");
                let sent: serde_json::Value = serde_json::from_str(sent).expect("JSON");
                assert_eq!(sent, v);
            }
            other => panic!("{other:?}"),
        }
    }
    let error = MessageStanza {
        kind: Some("error".into()),
        gcm: Some(json.to_owned()),
        ..MessageStanza::default()
    };
    assert!(matches!(classify(&error), Inbound::StanzaError(_)));
}

/// `message_roundtrip`: whatever `Message::from_json` accepts round-trips over the wire
/// (see [`assert_round_trip`]); refusals have a message.
pub fn check_message(data: &[u8]) {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    check_line(json);
}

/// `ndjson_line`: arbitrary bytes read the way a sender reads an NDJSON file (LF or CRLF, a
/// UTF-8 BOM at the start, blank lines skipped, invalid UTF-8 replaced), each line through
/// `Message::from_json` and, when accepted, round-tripped.
pub fn check_ndjson(data: &[u8]) {
    let data = data.strip_prefix("\u{FEFF}".as_bytes()).unwrap_or(data);
    for raw in data.split(|&b| b == b'\n') {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = String::from_utf8_lossy(raw);
        if line.trim().is_empty() {
            continue;
        }
        check_line(&line);
    }
}

/// One line through `Message::from_json`: accepted, it round-trips; refused, the error says
/// something; and the direct reading (member by member) either gives up or agrees with the
/// reading through a `serde_json::Value`.
fn check_line(line: &str) {
    match Message::from_json(line) {
        Ok(m) => assert_round_trip(&m),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    if let Some(direct) = read_direct(line) {
        let mut value: serde_json::Value = serde_json::from_str(line).expect("read directly: JSON");
        // The id generated for a line without one, so that both readings have the same.
        value
            .as_object_mut()
            .expect("read directly: an object")
            .entry("message_id")
            .or_insert_with(|| direct.message_id().into());
        assert_eq!(Message::from_json_value(value).as_ref(), Ok(&direct));
    }
}

/// A valid message goes on the wire and comes back the same: the stanza encodes (the client's
/// writer, byte for byte what serde's one pass and serializing then escaping give), the frame reader
/// (default limits) reads it, the id attribute is the message id, and the payload validates
/// into an equal message with the same JSON. (The payload text may differ from `to_json()`:
/// U+FFFE and U+FFFF, which XML cannot carry, travel as JSON escapes.)
pub fn assert_round_trip(m: &Message) {
    let json = m.to_json();
    let mut bytes = CLIENT_HEADER.to_vec();
    message_stanza(&mut bytes, m).expect("a valid message encodes");
    let mut serde = CLIENT_HEADER.to_vec();
    write::gcm_message_of(&mut serde, m.message_id(), m).expect("a valid message encodes");
    assert_eq!(bytes, serde, "the client's writer and serde differ");
    let mut two_pass = CLIENT_HEADER.to_vec();
    write::gcm_message(&mut two_pass, m.message_id(), &json).expect("a valid message encodes");
    assert_eq!(bytes, two_pass, "one pass and two passes differ");
    let (frames, error) = frames(&bytes, &[usize::MAX], Limits::default(), true);
    assert!(
        matches!(error, WireError::Eof { mid_stanza: false }),
        "{error:?} after {frames:?}"
    );
    let [Frame::StreamOpen(_), Frame::Message(stanza)] = &frames[..] else {
        panic!("{frames:?}")
    };
    assert_eq!(stanza.id.as_deref(), Some(m.message_id()));
    let payload = stanza.gcm.as_deref().expect("the stanza has a payload");
    let again = Message::from_json(payload).expect("what validated once validates again");
    assert_eq!(&again, m);
    assert_eq!(again.to_json(), json);
}

/// `http_response`: one response of the legacy HTTP API, read the way `HttpSender` reads it,
/// for a request to `n` registration ids.
///
/// Input: byte 0 = `n`; bytes 1–2 = the status (200 when the high bit of byte 1 is clear,
/// otherwise 100 + the big-endian value mod 500); then the `Retry-After` value up to the first
/// `\n`; the rest is the body.
///
/// Checks: nothing panics; a non-200 is the typed error of its status with the body reduced
/// to one readable line; a 200 body that parses is a JSON object whose members say exactly
/// what the parsed reply says (integers exact), and the reply re-encoded in its documented
/// shape parses back to itself; per-token results are exactly `n` or an `InvalidResponse`;
/// `Retry-After` delay-seconds are read exactly (saturating) and an HTTP-date gives the wait
/// to that date.
pub fn check_http_response(data: &[u8]) {
    let [n, s1, s2, rest @ ..] = data else {
        return;
    };
    let n = usize::from(*n);
    let status = if s1 & 0x80 == 0 {
        200
    } else {
        100 + u16::from_be_bytes([*s1, *s2]) % 500
    };
    let (header, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    if let Ok(header) = std::str::from_utf8(header) {
        check_retry_after(header);
    }

    let read = Reply::from_response(status, body);
    if status != 200 {
        let line = match read.clone().expect_err("only a 200 is read as a reply") {
            HttpError::BadRequest(line) if status == 400 => line,
            HttpError::Unauthorized(line) if status == 401 => line,
            HttpError::Status { status: s, body } if s == status && s != 400 && s != 401 => body,
            other => panic!("status {status} read as {other:?}"),
        };
        assert!(!line.is_empty() && line.len() <= 303, "{line:?}");
        assert_eq!(line.split_whitespace().collect::<Vec<_>>().join(" "), line);
    } else {
        assert_eq!(read, Reply::parse(body));
    }
    match read.clone().and_then(|reply| reply.token_results(n)) {
        Ok((_, results)) => assert_eq!(results.len(), n),
        Err(e) => assert!(
            status != 200 || matches!(e, HttpError::InvalidResponse(_)),
            "{e:?}"
        ),
    }
    let Ok(reply) = read else { return };
    let tokens = matches!(&reply, Reply::Tokens { results, .. } if results.len() == n);
    assert_eq!(reply.clone().token_results(n).is_ok(), tokens);

    let v: serde_json::Value = serde_json::from_slice(body).expect("a parsed body is JSON");
    assert!(v.is_object(), "a parsed body is a JSON object: {v}");
    assert_reply_says(&reply, &v);
    let again = Reply::parse(encode_reply(&reply).to_string().as_bytes());
    assert_eq!(
        again.as_ref(),
        Ok(&reply),
        "re-encoded as {}",
        encode_reply(&reply)
    );
}

/// The members of `v` (a body that parsed) say what `reply` says.
fn assert_reply_says(reply: &Reply, v: &serde_json::Value) {
    let absent = |key: &str| v.get(key).is_none_or(serde_json::Value::is_null);
    match reply {
        Reply::Tokens {
            multicast_id,
            results,
        } => {
            assert_eq!(v["multicast_id"].as_i64(), Some(*multicast_id));
            let listed = v["results"].as_array().expect("`results` is an array");
            assert_eq!(listed.len(), results.len());
            for (r, json) in results.iter().zip(listed) {
                match r {
                    TokenResult::Sent {
                        message_id,
                        registration_id,
                    } => {
                        assert_eq!(json["message_id"].as_str(), Some(message_id.as_str()));
                        assert_eq!(json["registration_id"].as_str(), registration_id.as_deref());
                    }
                    TokenResult::Failed(code) => {
                        assert!(json.get("message_id").is_none_or(|m| m.is_null()), "{json}");
                        assert_eq!(json["error"].as_str(), Some(code.as_str()));
                    }
                }
            }
        }
        Reply::Topic(result) => {
            assert!(absent("results"));
            match result {
                Ok(id) => assert_eq!(v["message_id"].as_i64(), Some(*id)),
                Err(code) => {
                    assert!(absent("message_id"));
                    assert_eq!(v["error"].as_str(), Some(code.as_str()));
                }
            }
        }
        Reply::Group(g) => {
            assert!(absent("results") && absent("message_id") && absent("error"));
            assert_eq!(v["success"].as_u64(), Some(g.success));
            assert_eq!(v["failure"].as_u64(), Some(g.failure));
            let listed: Vec<&str> = match v.get("failed_registration_ids") {
                None | Some(serde_json::Value::Null) => Vec::new(),
                Some(ids) => ids
                    .as_array()
                    .expect("an array")
                    .iter()
                    .map(|id| id.as_str().expect("strings"))
                    .collect(),
            };
            assert_eq!(listed, g.failed_registration_ids);
        }
    }
}

/// `reply` in the documented shape of its kind (§5.2–5.4), counts included.
fn encode_reply(reply: &Reply) -> serde_json::Value {
    use serde_json::json;
    match reply {
        Reply::Tokens {
            multicast_id,
            results,
        } => {
            let count = |f: fn(&TokenResult) -> bool| results.iter().filter(|r| f(r)).count();
            let listed: Vec<serde_json::Value> = results
                .iter()
                .map(|r| match r {
                    TokenResult::Sent {
                        message_id,
                        registration_id: None,
                    } => json!({ "message_id": message_id }),
                    TokenResult::Sent {
                        message_id,
                        registration_id: Some(canonical),
                    } => json!({ "message_id": message_id, "registration_id": canonical }),
                    TokenResult::Failed(code) => json!({ "error": code }),
                })
                .collect();
            json!({
                "multicast_id": multicast_id,
                "success": count(|r| matches!(r, TokenResult::Sent { .. })),
                "failure": count(|r| matches!(r, TokenResult::Failed(_))),
                "canonical_ids": count(|r| matches!(r, TokenResult::Sent { registration_id: Some(_), .. })),
                "results": listed,
            })
        }
        Reply::Topic(Ok(id)) => json!({ "message_id": id }),
        Reply::Topic(Err(code)) => json!({ "error": code }),
        Reply::Group(g) => json!({
            "success": g.success,
            "failure": g.failure,
            "failed_registration_ids": g.failed_registration_ids,
        }),
    }
}

/// `Retry-After: value` at a fixed "now": delay-seconds exactly (saturating at `u64::MAX`),
/// anything else only as an HTTP-date, whose wait is the time from now to that date.
fn check_retry_after(value: &str) {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let wait = retry_after::parse(value, now);
    let trimmed = value.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        let secs = trimmed.parse::<u64>().unwrap_or(u64::MAX);
        assert_eq!(wait, Some(Duration::from_secs(secs)));
        return;
    }
    let Some(wait) = wait else { return };
    let date = httpdate::parse_http_date(trimmed).expect("only a date gives a wait");
    match date.duration_since(now) {
        Ok(ahead) => assert_eq!(wait, ahead),
        Err(_) => assert_eq!(wait, Duration::ZERO),
    }
    if !wait.is_zero() {
        let again = httpdate::fmt_http_date(now + wait);
        assert_eq!(retry_after::parse(&again, now), Some(wait), "{again}");
    }
}

/// Serves `data` in reads of `sizes[0]`, `sizes[1]`, … bytes (cycled), then EOF.
struct Chunked<'a> {
    data: &'a [u8],
    sizes: &'a [usize],
    next: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let size = self.sizes[self.next % self.sizes.len()];
        self.next += 1;
        let n = size.min(self.data.len()).min(buf.remaining());
        let (head, tail) = self.data.split_at(n);
        buf.put_slice(head);
        self.data = tail;
        Poll::Ready(Ok(()))
    }
}

/// Runs a future that never has to wait (in-memory input is always ready).
fn now<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("an in-memory read waited"),
    }
}

/// Every frame of `data` read in `sizes` chunks (all > 0), and the error that ended it.
fn frames(data: &[u8], sizes: &[usize], limits: Limits, fast: bool) -> (Vec<Frame>, WireError) {
    let input = Chunked {
        data,
        sizes,
        next: 0,
    };
    let mut reader = FrameReader::new(input, limits);
    reader.set_fast_path(fast);
    now(async {
        let mut frames = Vec::new();
        // Each frame consumes at least one byte, and the end is reported as an error.
        for _ in 0..=data.len() + 1 {
            match reader.next_frame().await {
                Ok(frame) => frames.push(frame),
                Err(error) => return (frames, error),
            }
        }
        panic!("the reader yields frames without consuming input");
    })
}
