//! Figure 7: Web Push against the emulator's Web Push service, with the legacy HTTP path
//! against the emulator's HTTP endpoint as the same-run baseline. Both go through the
//! crate's hyper client over HTTP/2 on one connection per origin, with the same number of
//! requests in flight and the same payloads; a push also costs its encryption (a fresh
//! ECDH key pair, ECDH, HKDF, AES-GCM) and, at the emulator, its decryption.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gcm_ccs::Message;
use gcm_ccs::emulator::{Emulator, EmulatorConfig};
use gcm_ccs::http::HttpSender;
use gcm_ccs::webpush::{Push, VapidKey, WebPushSender};
use serde_json::{Value, json};

use super::cpu;
use super::stack::{KEY, SENDER};

/// Requests in flight at once, on either path.
pub const IN_FLIGHT: usize = 64;

pub struct Figure {
    pub pushes: usize,
    pub webpush_per_s: f64,
    pub http_per_s: f64,
    pub webpush_cpu_us: f64,
    pub http_cpu_us: f64,
    /// Connections the Web Push service accepted.
    pub connections: u64,
}

impl Figure {
    pub fn json(&self) -> Value {
        json!({
            "pushes": self.pushes, "in_flight": IN_FLIGHT,
            "webpush_msgs_per_s": self.webpush_per_s, "http_msgs_per_s": self.http_per_s,
            "webpush_vs_http": self.webpush_per_s / self.http_per_s,
            "cpu_us_per_msg": { "webpush": self.webpush_cpu_us, "http": self.http_cpu_us },
            "webpush_connections": self.connections,
        })
    }

    pub fn print(&self) {
        eprintln!(
            "web push, 1 conn      {:>10.0} msgs/s   {:.2} of legacy HTTP ({:.0} msgs/s)   CPU {:.1} µs/msg vs {:.1}   ({} connection(s))",
            self.webpush_per_s,
            self.webpush_per_s / self.http_per_s,
            self.http_per_s,
            self.webpush_cpu_us,
            self.http_cpu_us,
            self.connections
        );
    }
}

/// Sends `n` items with `IN_FLIGHT` workers, each calling `send(i)` in turn.
async fn drive<F, Fut>(n: usize, send: F) -> Duration
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let send = Arc::new(send);
    let started = Instant::now();
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|w| {
            let send = send.clone();
            tokio::spawn(async move {
                for i in (w..n).step_by(IN_FLIGHT) {
                    send(i).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    started.elapsed()
}

pub async fn measure(n: usize, texts: &[String]) -> Figure {
    let mut cfg = EmulatorConfig::new(SENDER, KEY);
    cfg.track_ids = false;
    cfg.http_listen = Some(([127, 0, 0, 1], 0).into());
    cfg.webpush_listen = Some(([127, 0, 0, 1], 0).into());
    let emu = Emulator::start(cfg).await.expect("emulator");
    let texts: Arc<Vec<String>> = Arc::new(texts.to_vec());

    let key = VapidKey::generate();
    let sub = emu
        .webpush_subscribe("bench-", Some(key.public_key()))
        .expect("subscription");
    let mut wp_cfg = emu.webpush_config(key, "mailto:bench@example.com");
    wp_cfg.max_concurrent_per_origin = IN_FLIGHT;
    let webpush = WebPushSender::new(wp_cfg).expect("web push sender");
    let pushes: Arc<Vec<Push>> = Arc::new(
        texts
            .iter()
            .map(|t| {
                Push::builder()
                    .payload(t.as_str())
                    .ttl(3600)
                    .build()
                    .expect("push")
            })
            .collect(),
    );
    // One warm-up each: connections, TLS and the VAPID JWT are not what is measured.
    webpush.send(&sub, &pushes[0]).await.expect("warm-up push");
    let (took, webpush_cpu_us) = cpu::per_message(
        n,
        drive(n, move |i| {
            let (webpush, sub, pushes) = (webpush.clone(), sub.clone(), pushes.clone());
            async move {
                webpush
                    .send(&sub, &pushes[i % pushes.len()])
                    .await
                    .expect("accepted");
            }
        }),
    )
    .await;
    let webpush_per_s = super::rate(n, took);

    let mut http_cfg = emu.http_config(KEY).expect("http endpoint");
    http_cfg.max_concurrent_requests = IN_FLIGHT;
    let http = HttpSender::new(http_cfg).expect("http sender");
    let message = |i: usize, texts: &[String]| {
        Message::to(format!("tok-{i:010}"))
            .data("text", texts[i % texts.len()].as_str())
            .time_to_live(3600)
            .build()
            .expect("message")
    };
    http.send(&message(0, &texts))
        .await
        .expect("warm-up message");
    let (took, http_cpu_us) = cpu::per_message(
        n,
        drive(n, move |i| {
            let (http, texts) = (http.clone(), texts.clone());
            async move {
                http.send(&message(i, &texts)).await.expect("acked");
            }
        }),
    )
    .await;
    Figure {
        pushes: n,
        webpush_per_s,
        http_per_s: super::rate(n, took),
        webpush_cpu_us,
        http_cpu_us,
        connections: emu.webpush_stats().connections,
    }
}
