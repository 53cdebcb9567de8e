//! Micro-benchmarks of the per-message hot path, so regressions show where they come from:
//! `cargo bench --bench micro` (`webpush::` too with the `webpush` feature).

use divan::{Bencher, black_box};
use gcm_ccs::Message;
use gcm_ccs::unstable::{FrameReader, Inbound, Limits, classify_json, write};

fn main() {
    divan::main();
}

const TEXT: &str = "Tom & Jerry <3 — a realistic payload of a couple of hundred bytes, \
    with some XML specials (& < >) and non-ASCII (ünïcödé) to escape, repeated to size: \
    lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.";

const ACK: &str = r#"{"message_type":"ack","message_id":"m-0123456789abcdef0123456789abcdef","from":"tok-0000000001"}"#;

fn message() -> Message {
    Message::to("tok-0000000001")
        .data("text", TEXT)
        .time_to_live(3600)
        .build()
        .expect("valid")
}

/// Builder + validation of a typical message.
#[divan::bench]
fn message_build() -> Message {
    message()
}

/// Validation of one NDJSON line (the CLI's and the emulator's path).
#[divan::bench]
fn message_from_json(b: Bencher) {
    let line = message().to_json();
    b.bench(|| Message::from_json(black_box(&line)))
}

/// JSON serialization, then XML escaping into a stanza (two passes).
#[divan::bench]
fn stanza_encode_two_pass(b: Bencher) {
    let msg = message();
    let mut out = Vec::with_capacity(1024);
    b.bench_local(|| {
        out.clear();
        write::gcm_message(&mut out, msg.message_id(), &msg.to_json()).expect("encode");
        out.len()
    })
}

/// The same in one pass, escaping as serde_json writes (what `Client::submit` does).
#[divan::bench]
fn stanza_encode(b: Bencher) {
    let msg = message();
    let mut out = Vec::with_capacity(1024);
    b.bench_local(|| {
        out.clear();
        write::gcm_message_of(&mut out, msg.message_id(), &msg).expect("encode");
        out.len()
    })
}

/// Classifying an ack's JSON.
#[divan::bench]
fn ack_classify() -> Inbound {
    classify_json(black_box(ACK))
}

/// Decoding 1000 ack stanzas from one buffer into frames.
#[divan::bench]
fn frame_decode_1000_acks(b: Bencher) {
    let mut input = Vec::new();
    write::server_stream_header(&mut input, "gcm.googleapis.com", "0123456789ABCDEF");
    for _ in 0..1000 {
        write::gcm_server_message(&mut input, ACK).expect("encode");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    b.bench_local(|| {
        rt.block_on(async {
            let mut reader = FrameReader::new(&input[..], Limits::default());
            for _ in 0..1001 {
                black_box(reader.next_frame().await.expect("frame"));
            }
        })
    })
}

/// Web Push: encryption and signing per message.
#[cfg(feature = "webpush")]
mod webpush {
    use divan::{Bencher, black_box};
    use gcm_ccs::webpush::{Subscription, VapidKey, VapidSigner, encrypt};

    use super::TEXT;

    /// A subscription (the RFC 8291 §5 user agent's keys).
    fn subscription() -> Subscription {
        Subscription::new(
            "https://fcm.googleapis.com/fcm/send/bench",
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
            "BTBZMqHH6r4Tts7J_aSIgg",
        )
        .expect("valid subscription")
    }

    /// RFC 8291 encryption of a typical payload: a fresh sender key pair, ECDH, HKDF, AES-GCM.
    #[divan::bench]
    fn encrypt_payload(b: Bencher) {
        let sub = subscription();
        b.bench_local(|| encrypt(&sub, black_box(TEXT.as_bytes())))
    }

    /// A fresh VAPID JWT (ES256 signature), as for the first push to an origin.
    #[divan::bench]
    fn vapid_sign(b: Bencher) {
        let key = VapidKey::generate();
        let now = std::time::SystemTime::now();
        b.bench_local(|| {
            VapidSigner::new(key.clone(), "mailto:bench@example.com")
                .expect("subject")
                .authorization(black_box("https://fcm.googleapis.com"), now)
        })
    }

    /// The VAPID header from the per-origin cache, as for every later push to it.
    #[divan::bench]
    fn vapid_cached(b: Bencher) {
        let signer =
            VapidSigner::new(VapidKey::generate(), "mailto:bench@example.com").expect("subject");
        let now = std::time::SystemTime::now();
        b.bench_local(|| signer.authorization(black_box("https://fcm.googleapis.com"), now))
    }
}
