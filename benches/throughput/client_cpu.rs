//! Figure 8: CPU per message of the **client process alone**, with `gcm-ccs emulate` in a
//! process of its own, as a user measures it:
//!
//! - `send`: the real `gcm-ccs send` on an NDJSON file, results written (the whole process:
//!   start-up, the line count, TLS, everything);
//! - `library`: `Client::submit_to` of pre-built messages, every outcome read from a
//!   completion queue (the send phase
//!   only, measured by the child itself, which also counts its allocations there);
//! - `library, mimalloc`: the same on mimalloc (what the choice of allocator, which is the
//!   application's, is worth: `gcm-ccs` itself runs on it);
//! - `floor`: a minimal client on the same TLS stack and runtime that writes pre-serialized
//!   stanzas with at most 100 outstanding and finds acks by byte scanning (send phase only).
//!
//! Each run gets a fresh emulator, whose own CPU per message is reported too. The modes
//! alternate over the rounds; figures are medians.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{baseline, cpu, stack};

/// Set (to `library` or `floor`), the bench binary is a client of the emulator whose
/// address, CA file, message count and report path are its arguments.
pub const CLIENT_MODE: &str = "GCM_CCS_BENCH_CLIENT";
/// Set, the bench binary allocates with mimalloc instead of the system allocator.
pub const MIMALLOC: &std::ffi::CStr = c"GCM_CCS_BENCH_MIMALLOC";

/// The issue's targets, µs of client CPU per message, and the floor ratio of the library.
const SEND_TARGET_US: f64 = 4.0;
const LIBRARY_TARGET_US: f64 = 2.5;
const FLOOR_RATIO_TARGET: f64 = 2.5;
const ALLOCS_TARGET: f64 = 8.0;
const EMULATOR_TARGET_US: f64 = 3.0;

/// Allocations made by this process (the bench binary's global allocator counts them).
pub static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// What a client child reports of its send phase.
#[derive(Serialize, Deserialize)]
struct Phase {
    cpu_us_per_msg: f64,
    allocs_per_msg: f64,
    wall_s: f64,
}

/// One run of one mode.
pub(crate) struct Run {
    /// µs of client CPU per message.
    client_us: f64,
    /// µs of emulator CPU per message.
    emulator_us: f64,
    /// Allocations per message (library and floor), NaN for `send`.
    allocs: f64,
    pub msgs_per_s: f64,
}

/// The figure: medians per mode.
pub struct Figure {
    messages: usize,
    send: Vec<Run>,
    library: Vec<Run>,
    library_mimalloc: Vec<Run>,
    floor: Vec<Run>,
}

fn median(runs: &[Run], f: impl Fn(&Run) -> f64) -> f64 {
    let mut v: Vec<f64> = runs.iter().map(f).collect();
    crate::median(&mut v)
}

impl Figure {
    fn row(&self, runs: &[Run]) -> serde_json::Value {
        json!({
            "client_cpu_us_per_msg": median(runs, |r| r.client_us),
            "emulator_cpu_us_per_msg": median(runs, |r| r.emulator_us),
            "allocs_per_msg": median(runs, |r| r.allocs),
            "msgs_per_s": median(runs, |r| r.msgs_per_s),
            "runs": runs.iter().map(|r| r.client_us).collect::<Vec<_>>(),
        })
    }

    fn floor_us(&self) -> f64 {
        median(&self.floor, |r| r.client_us)
    }

    pub fn json(&self) -> serde_json::Value {
        let floor = self.floor_us();
        let (send, library, library_mimalloc) = (
            median(&self.send, |r| r.client_us),
            median(&self.library, |r| r.client_us),
            median(&self.library_mimalloc, |r| r.client_us),
        );
        json!({
            "messages": self.messages,
            "send": self.row(&self.send),
            "library": self.row(&self.library),
            "library_mimalloc": self.row(&self.library_mimalloc),
            "floor": self.row(&self.floor),
            "send_vs_floor": send / floor,
            "library_vs_floor": library / floor,
            "library_mimalloc_vs_floor": library_mimalloc / floor,
            "targets": { "send_us": SEND_TARGET_US, "library_us": LIBRARY_TARGET_US,
                "library_vs_floor": FLOOR_RATIO_TARGET, "allocs_per_msg": ALLOCS_TARGET,
                "emulator_us": EMULATOR_TARGET_US },
        })
    }

    pub fn print(&self) {
        let floor = self.floor_us();
        for (name, runs, target) in [
            ("send", &self.send, Some(SEND_TARGET_US)),
            ("library", &self.library, Some(LIBRARY_TARGET_US)),
            (
                "library, mimalloc",
                &self.library_mimalloc,
                Some(LIBRARY_TARGET_US),
            ),
            ("floor", &self.floor, None),
        ] {
            let us = median(runs, |r| r.client_us);
            let allocs = median(runs, |r| r.allocs);
            eprintln!(
                "client CPU, {name:<17} {us:>6.2} µs/msg  {:>5.2}× floor  {:>8.0} msgs/s  emulator {:>5.2} µs/msg{}{}",
                us / floor,
                median(runs, |r| r.msgs_per_s),
                median(runs, |r| r.emulator_us),
                if allocs.is_nan() {
                    String::new()
                } else {
                    format!("  {allocs:.1} allocs/msg")
                },
                target.map_or(String::new(), |t| format!("  (target ≤ {t} µs)")),
            );
        }
    }
}

/// Runs every mode `rounds` times, alternating, `n` messages each.
pub async fn measure(n: usize, rounds: usize) -> Figure {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("in.ndjson");
    write_input(&input, n).expect("write the input");
    let mut figure = Figure {
        messages: n,
        send: Vec::new(),
        library: Vec::new(),
        library_mimalloc: Vec::new(),
        floor: Vec::new(),
    };
    for _ in 0..rounds {
        figure.send.push(run_send(dir.path(), &input, n).await);
        figure
            .library
            .push(run_child("library", dir.path(), n, false).await);
        figure
            .library_mimalloc
            .push(run_child("library", dir.path(), n, true).await);
        figure
            .floor
            .push(run_child("floor", dir.path(), n, false).await);
    }
    figure
}

/// `n` lines of the payloads the other figures use (plain ASCII: no JSON escaping).
pub(crate) fn write_input(path: &Path, n: usize) -> std::io::Result<()> {
    let texts = stack::payloads();
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    for i in 0..n {
        writeln!(
            out,
            r#"{{"to":"tok-{i:010}","data":{{"text":"{}"}},"time_to_live":3600}}"#,
            texts[i % texts.len()]
        )?;
    }
    out.flush()
}

/// `gcm-ccs emulate` in its own process, on a free port, without per-id records.
pub(crate) struct EmulatorProcess {
    child: Child,
    pub addr: SocketAddr,
    pub ca: PathBuf,
}

impl EmulatorProcess {
    pub(crate) fn start(dir: &Path) -> EmulatorProcess {
        EmulatorProcess::scripted(dir, None)
    }

    /// With the script in file `script`, if given.
    pub(crate) fn scripted(dir: &Path, script: Option<&Path>) -> EmulatorProcess {
        let ca = dir.join("emulator-ca.pem");
        let mut emulate = Command::new(env!("CARGO_BIN_EXE_gcm-ccs"));
        if let Some(script) = script {
            emulate.arg("emulate").arg("--script").arg(script);
        } else {
            emulate.arg("emulate");
        }
        let mut child = emulate
            .args(["--listen", "127.0.0.1:0", "--no-track-ids"])
            .args(["--stats-every", "0", "--credentials"])
            .arg(format!("{}:{}", stack::SENDER, stack::KEY))
            .arg("--ca-out")
            .arg(&ca)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("gcm-ccs emulate runs");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let addr = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| {
                l.strip_prefix("listening on ")
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|a| a.parse().ok())
            })
            .expect("the emulator says where it listens");
        // Its remaining output is not read: keep the pipe drained.
        std::thread::spawn(move || lines.for_each(drop));
        EmulatorProcess { child, addr, ca }
    }

    /// Stops it with SIGTERM; its CPU time over its whole life.
    pub(crate) fn stop(self) -> Duration {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: pid is our own live child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let exit = cpu::wait(self.child);
        assert_eq!(exit.code, Some(0), "gcm-ccs emulate stops cleanly");
        exit.cpu
    }
}

fn per_message_us(cpu: Duration, n: usize) -> f64 {
    cpu.as_secs_f64() * 1e6 / n.max(1) as f64
}

pub(crate) async fn run_send(dir: &Path, input: &Path, n: usize) -> Run {
    let emu = EmulatorProcess::start(dir);
    let output = dir.join("out.ndjson");
    let child = Command::new(env!("CARGO_BIN_EXE_gcm-ccs"))
        .args(["send", "--sender-id", stack::SENDER, "--endpoint"])
        .arg(emu.addr.to_string())
        .arg("--ca-file")
        .arg(&emu.ca)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(&output)
        .env("GCM_API_KEY", stack::KEY)
        .env_remove("GCM_CCS_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("send.log")).expect("log file"))
        .spawn()
        .expect("gcm-ccs send runs");
    let started = Instant::now();
    let exit = tokio::task::spawn_blocking(move || cpu::wait(child))
        .await
        .expect("waiting thread");
    let wall = started.elapsed();
    let emulator = emu.stop();
    let log = std::fs::read_to_string(dir.join("send.log")).unwrap_or_default();
    assert_eq!(exit.code, Some(0), "gcm-ccs send: {log}");
    let acked = std::fs::read_to_string(&output)
        .expect("output")
        .lines()
        .filter(|l| l.contains(r#""outcome":"acked""#))
        .count();
    assert_eq!(acked, n, "every line acked");
    std::fs::remove_file(&output).expect("remove the output");
    Run {
        client_us: per_message_us(exit.cpu, n),
        emulator_us: per_message_us(emulator, n),
        allocs: f64::NAN,
        msgs_per_s: crate::rate(n, wall),
    }
}

async fn run_child(mode: &str, dir: &Path, n: usize, mimalloc: bool) -> Run {
    let emu = EmulatorProcess::start(dir);
    let report = dir.join(format!("{mode}.json"));
    let mut child = Command::new(std::env::current_exe().expect("bench binary"));
    if mimalloc {
        child.env(MIMALLOC.to_str().expect("ASCII"), "1");
    }
    let child = child
        .env(CLIENT_MODE, mode)
        .arg(emu.addr.to_string())
        .arg(&emu.ca)
        .arg(n.to_string())
        .arg(&report)
        .stdin(Stdio::null())
        .spawn()
        .expect("the client runs");
    let exit = tokio::task::spawn_blocking(move || cpu::wait(child))
        .await
        .expect("waiting thread");
    let emulator = emu.stop();
    assert_eq!(exit.code, Some(0), "{mode} client");
    let phase: Phase =
        serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("report JSON");
    Run {
        client_us: phase.cpu_us_per_msg,
        emulator_us: per_message_us(emulator, n),
        allocs: phase.allocs_per_msg,
        msgs_per_s: n as f64 / phase.wall_s,
    }
}

/// Acts as a client when [`CLIENT_MODE`] is set (and then never returns).
pub fn child() {
    let Ok(mode) = std::env::var(CLIENT_MODE) else {
        return;
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, ca, n, report] = args.as_slice() else {
        panic!("usage: ADDR CA N REPORT");
    };
    let addr: SocketAddr = addr.parse().expect("ADDR");
    let ca = std::fs::read_to_string(ca).expect("CA");
    let n: usize = n.parse().expect("N");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let phase = runtime.block_on(async {
        match mode.as_str() {
            "library" => library(addr, &ca, n).await,
            "floor" => floor(addr, &ca, n).await,
            other => panic!("unknown client mode {other}"),
        }
    });
    std::fs::write(report, serde_json::to_vec(&phase).expect("encode")).expect("report");
    std::process::exit(0);
}

/// Measures `run` (which sends `n` messages): CPU and allocations of this process, wall time.
async fn phase(n: usize, run: impl std::future::Future<Output = ()>) -> Phase {
    let (cpu_before, allocs_before) = (cpu::process_time(), ALLOCATIONS.load(Relaxed));
    let started = Instant::now();
    run.await;
    let wall = started.elapsed();
    let cpu = cpu::process_time()
        .zip(cpu_before)
        .and_then(|(a, b)| a.checked_sub(b))
        .unwrap_or_default();
    Phase {
        cpu_us_per_msg: per_message_us(cpu, n),
        allocs_per_msg: (ALLOCATIONS.load(Relaxed) - allocs_before) as f64 / n.max(1) as f64,
        wall_s: wall.as_secs_f64(),
    }
}

async fn library(addr: SocketAddr, ca: &str, n: usize) -> Phase {
    let texts = stack::payloads();
    let messages: Vec<gcm_ccs::Message> = (0..n)
        .map(|i| stack::message(i, &texts[i % texts.len()]))
        .collect();
    let mut cfg = gcm_ccs::Config::new(gcm_ccs::Credentials::new(stack::SENDER, stack::KEY));
    cfg.endpoint = gcm_ccs::Endpoint::Custom {
        host: addr.ip().to_string(),
        port: addr.port(),
    };
    cfg.server_name = Some("localhost".into());
    cfg.trust = gcm_ccs::Trust::only_pem(ca.as_bytes()).expect("CA");
    let (client, _incoming) = gcm_ccs::Client::connect(cfg).await.expect("connect");
    let sent = phase(n, stack::submit_all(&client, messages)).await;
    client.close().await;
    sent
}

async fn floor(addr: SocketAddr, ca: &str, n: usize) -> Phase {
    let stanzas = stack::raw_stanzas();
    let mut stream = baseline::connect(ca, addr).await;
    negotiate(&mut stream).await;
    let raw = baseline::Raw::over(stream);
    let mut measured = None;
    let sent = phase(n, async {
        measured = Some(raw.throughput(&stanzas, n, crate::WINDOW).await);
    })
    .await;
    assert!(measured.is_some());
    sent
}

/// The minimal client-role negotiation: pre-built stanzas, answers found by scanning.
async fn negotiate(stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) {
    const HEADER: &[u8] = br#"<stream:stream to="gcm.googleapis.com" version="1.0" xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">"#;
    let auth = {
        use base64::Engine;
        let plain = format!("\0{}@gcm.googleapis.com\0{}", stack::SENDER, stack::KEY);
        let b64 = base64::engine::general_purpose::STANDARD.encode(plain);
        format!(r#"<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">{b64}</auth>"#)
    };
    const BIND: &[u8] =
        br#"<iq type="set" id="b"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>"#;
    let steps: [(&[u8], &str); 3] = [
        (HEADER, "</stream:features>"),
        (auth.as_bytes(), "<success"),
        (HEADER, "</stream:features>"),
    ];
    for (send, until) in steps {
        stream.write_all(send).await.expect("write");
        read_until(stream, until).await;
    }
    stream.write_all(BIND).await.expect("write");
    read_until(stream, "</iq>").await;
}

async fn read_until(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    end: &str,
) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(end.len()).any(|w| w == end.as_bytes()) {
        let got = stream.read(&mut buf).await.expect("read");
        assert!(got > 0, "the emulator closed during the negotiation");
        seen.extend_from_slice(&buf[..got]);
    }
}
