//! Memory stays bounded whatever a hostile server sends: the test binary counts every live heap
//! byte (a global allocator), so these tests measure rather than assume.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use common::raw_server::*;
use common::*;
use gcm_ccs::{Client, Event};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(live, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `scenario` on a runtime of its own, shut down before returning, and returns how far
/// live heap memory rose above where it started. The counters are process-wide, so the
/// scenarios run one after the other from a single test.
fn peak_growth<F: std::future::Future<Output = ()>>(scenario: impl FnOnce() -> F) -> usize {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    runtime.block_on(scenario());
    let growth = PEAK.load(Relaxed).saturating_sub(base);
    runtime.shutdown_timeout(Duration::from_secs(5));
    growth
}

const MB: usize = 1024 * 1024;

/// Connects to a server that negotiates and then plays `rest`; waits until the client drops
/// that connection and returns why.
async fn until_lost(rest: Vec<Step>, ping_interval: Duration) -> String {
    let options = Options {
        recv_buffer: Some(16 * 1024),
        ..Options::default()
    };
    let server = RawServer::start_opts(options, move |n| match n {
        0 => after_handshake(rest.clone()),
        _ => handshake(),
    })
    .await;
    let mut cfg = server.config();
    cfg.ping_interval = ping_interval;
    // Subscribed before the first connection exists: the server misbehaves at once.
    let (client, mut incoming) = Client::start(cfg).unwrap();
    let mut events = client.events();
    // An application that takes and acks every upstream message at once.
    tokio::spawn(async move {
        while let Some(delivery) = incoming.recv().await {
            delivery.ack();
        }
    });
    next_event(&mut events, |e| match e {
        Event::Lost { reason, .. } => Some(reason),
        _ => None,
    })
    .await
}

#[test]
fn hostile_peers_cannot_grow_the_heap() {
    endless_text_node_stays_within_the_stanza_cap();
    upstream_flood_to_a_client_whose_acks_are_not_read_stays_bounded();
    emulator_fed_an_endless_stanza_stays_within_the_cap();
}

fn endless_text_node_stays_within_the_stanza_cap() {
    let mut reason = String::new();
    let growth = peak_growth(|| async {
        reason = until_lost(
            vec![
                send(r#"<message><gcm xmlns="google:mobile:data">"#),
                Step::Repeat {
                    chunk: vec![b'x'; 16 * 1024],
                    times: usize::MAX,
                },
            ],
            Duration::from_secs(20),
        )
        .await;
    });
    assert!(reason.contains("65536-byte limit"), "{reason}");
    assert!(growth < 2 * MB, "heap grew by {growth} bytes");
}

fn upstream_flood_to_a_client_whose_acks_are_not_read_stays_bounded() {
    // The server pushes upstream messages and never reads the client's acks for them. Once the
    // socket buffers are full the client must stop reading rather than queue acks forever.
    // Long ids and senders: each ack echoes both, so acks are as large as what provokes them.
    let upstream = (0..100)
        .map(|i| {
            format!(
                r#"<message><gcm xmlns="google:mobile:data">{{"message_id":"up-{i:0>97}","from":"{}"}}</gcm></message>"#,
                "d".repeat(100)
            )
        })
        .collect::<String>();
    let times = 10 * MB / upstream.len();
    let mut reason = String::new();
    let growth = peak_growth(|| async {
        reason = until_lost(
            vec![Step::Repeat {
                chunk: upstream.into_bytes(),
                times,
            }],
            Duration::from_millis(300),
        )
        .await;
    });
    // Whichever is noticed first: the writer stalls, or the reader stops and the line goes quiet.
    assert!(
        reason.contains("write stalled") || reason.contains("no data from the server"),
        "{reason}"
    );
    assert!(growth < 4 * MB, "heap grew by {growth} bytes");
}

fn emulator_fed_an_endless_stanza_stays_within_the_cap() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut reply = Vec::new();
    let growth = peak_growth(|| async {
        let emu = emulator(Default::default()).await;
        let (mut r, mut w) = tokio::io::split(tls_to(emu.addr(), emu.ca_pem()).await);
        let writer = tokio::spawn(async move {
            let chunk = vec![b'x'; 16 * 1024];
            let header = br#"<stream:stream to="gcm.googleapis.com" version="1.0" xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams"><message><gcm xmlns="google:mobile:data">"#;
            let mut written = w.write_all(header).await;
            while written.is_ok() {
                written = w.write_all(&chunk).await;
            }
        });
        bounded(10, r.read_to_end(&mut reply)).await.unwrap();
        bounded(10, writer).await.unwrap();
    });
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.contains("policy-violation"), "{reply}");
    assert!(growth < 2 * MB, "heap grew by {growth} bytes");
}
