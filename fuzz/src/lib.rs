//! The checks behind each fuzz target, shared with the regular test suite
//! (`tests/fuzz_regressions.rs` includes this file), which replays the seed corpora and every
//! saved crash in `fixtures/fuzz/` through them.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use gcm_ccs::response::{Inbound, classify, classify_json};
use gcm_ccs::wire::{Frame, FrameReader, Limits, MessageStanza, write};
use gcm_ccs::{Message, NackCode, WireError};
use tokio::io::{AsyncRead, ReadBuf};

/// A client stream header, to put in front of client-role stanzas.
pub const CLIENT_HEADER: &[u8] = br#"<stream:stream to="gcm.googleapis.com" version="1.0" xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">"#;

/// `frame_reader`: the frame reader on arbitrary bytes with arbitrary read boundaries never
/// panics or loops, fails only with the documented kinds, and gives the same frames and the
/// same error whatever the chunking.
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

    let (whole, error) = frames(input, &[usize::MAX], LIMITS);
    assert!(
        !matches!(error, WireError::Io(_) | WireError::InvalidChar(_)),
        "{error:?}"
    );
    if !sizes.is_empty() {
        let (chunked, chunked_error) = frames(input, &sizes, LIMITS);
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

/// `classify_json`: classification of arbitrary text never panics; upstream messages and
/// receipts yield an ack that names them and survives the wire (an ack that cannot be sent
/// makes the server redeliver forever); nack codes re-parse to themselves; a stanza of
/// `type="error"` is always a stanza error.
pub fn check_classify_json(data: &[u8]) {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let inbound = classify_json(json);
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
        let (frames, _) = frames(&bytes, &[usize::MAX], limits);
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
    match Message::from_json(json) {
        Ok(m) => assert_round_trip(&m),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
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
        match Message::from_json(&line) {
            Ok(m) => assert_round_trip(&m),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}

/// A valid message goes on the wire and comes back the same: the stanza encodes, the frame
/// reader (default limits) reads it, the id attribute is the message id, and the payload
/// validates into an equal message with the same JSON. (The payload text may differ from
/// `to_json()`: U+FFFE and U+FFFF, which XML cannot carry, travel as JSON escapes.)
pub fn assert_round_trip(m: &Message) {
    let json = m.to_json();
    let mut bytes = CLIENT_HEADER.to_vec();
    write::gcm_message(&mut bytes, m.message_id(), &json).expect("a valid message encodes");
    let (frames, error) = frames(&bytes, &[usize::MAX], Limits::default());
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
fn frames(data: &[u8], sizes: &[usize], limits: Limits) -> (Vec<Frame>, WireError) {
    let input = Chunked {
        data,
        sizes,
        next: 0,
    };
    let mut reader = FrameReader::new(input, limits);
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
