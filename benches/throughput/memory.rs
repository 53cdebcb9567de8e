//! Figure 5: peak RSS of the real `gcm-ccs send` on generated NDJSON inputs of several sizes,
//! against an in-process emulator that acks at once without per-id records.
//!
//! The peak is `ru_maxrss` from `wait4` on the CLI process (KiB on Linux). Linux folds into a
//! process's `ru_maxrss` the peak RSS of the address space it replaced at `exec`: std spawns
//! with `posix_spawn` (a `vfork`), so a child of the harness would report at least the
//! harness's own peak (emulator, earlier figures). The CLI is therefore started by a small
//! launcher, this bench binary re-executed with [`LAUNCHER`] set, which has done nothing
//! yet: its few MiB (reported as `launcher_rss_mib`) are the floor of the figure.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::stack;

/// The targets of the issue: peak RSS at the largest size, and largest / smallest.
pub const MAX_MIB: f64 = 48.0;
pub const MAX_RATIO: f64 = 1.15;

/// One `send` run.
pub struct Run {
    pub lines: usize,
    /// Peak resident set of the child, in KiB.
    pub peak_rss_kib: u64,
    /// The CLI's own rate (from its summary: reading to last outcome).
    pub msgs_per_s: f64,
    /// Wall time of the child, start-up and the line-counting pass included.
    pub wall: Duration,
    /// Peak RSS of the launcher when it started the CLI: the lowest figure it can report.
    pub launcher_rss_kib: u64,
}

impl Run {
    pub fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_kib as f64 / 1024.0
    }
}

/// The figure: one run per size, smallest first.
pub struct Figure {
    pub runs: Vec<Run>,
}

impl Figure {
    /// RSS of the largest run over RSS of the smallest.
    pub fn ratio(&self) -> f64 {
        match (self.runs.first(), self.runs.last()) {
            (Some(a), Some(b)) if a.peak_rss_kib > 0 => {
                b.peak_rss_kib as f64 / a.peak_rss_kib as f64
            }
            _ => 0.0,
        }
    }

    pub fn largest_mib(&self) -> f64 {
        self.runs.last().map_or(0.0, Run::peak_rss_mib)
    }

    pub fn met(&self) -> bool {
        self.largest_mib() <= MAX_MIB && self.ratio() <= MAX_RATIO
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "runs": self.runs.iter().map(|r| serde_json::json!({
                "lines": r.lines,
                "peak_rss_mib": r.peak_rss_mib(),
                "msgs_per_s": r.msgs_per_s,
                "wall_s": r.wall.as_secs_f64(),
                "launcher_rss_mib": r.launcher_rss_kib as f64 / 1024.0,
            })).collect::<Vec<_>>(),
            "ratio": self.ratio(),
            "target": { "max_mib": MAX_MIB, "max_ratio": MAX_RATIO },
            "met": self.met(),
        })
    }

    /// Lines for the printed table.
    pub fn print(&self) {
        for r in &self.runs {
            eprintln!(
                "memory, send {:>8} lines  peak RSS {:>6.1} MiB   {:>8.0} msgs/s ({:.1} s wall, \
                 launcher floor {:.1} MiB)",
                r.lines,
                r.peak_rss_mib(),
                r.msgs_per_s,
                r.wall.as_secs_f64(),
                r.launcher_rss_kib as f64 / 1024.0
            );
        }
        eprintln!(
            "memory, largest/smallest  {:.2}   (target ≤ {MAX_MIB} MiB and ≤ {MAX_RATIO}: {})",
            self.ratio(),
            if self.met() { "met" } else { "NOT met" }
        );
    }
}

/// Runs `gcm-ccs send` once per size in `sizes`, each against a fresh emulator.
pub async fn measure(sizes: &[usize]) -> Figure {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut runs = Vec::new();
    for &n in sizes {
        let input = dir.path().join(format!("in-{n}.ndjson"));
        write_input(&input, n).expect("write the input");
        runs.push(send(dir.path(), &input, n).await);
        std::fs::remove_file(&input).expect("remove the input");
    }
    Figure { runs }
}

/// `n` valid lines: a target, a 200–400-byte data payload and a TTL; ids left to the CLI.
fn write_input(path: &Path, n: usize) -> std::io::Result<()> {
    let texts = stack::payloads();
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    for i in 0..n {
        // The payloads are plain ASCII letters: no JSON escaping needed.
        writeln!(
            out,
            r#"{{"to":"tok-{i:010}","data":{{"text":"{}","seq":"{i}"}},"time_to_live":3600}}"#,
            texts[i % texts.len()]
        )?;
    }
    out.into_inner()?.sync_all()
}

/// What the check needs of the CLI's `--json` summary.
#[derive(Deserialize)]
struct Summary {
    lines: u64,
    invalid: u64,
    submitted: u64,
    acked: u64,
    nacked: u64,
    failed: u64,
    msgs_per_s: f64,
}

/// What the check needs of one output record.
#[derive(Deserialize)]
struct Record {
    line: u64,
    outcome: String,
}

async fn send(dir: &Path, input: &Path, n: usize) -> Run {
    let emu = stack::emulator(Duration::ZERO).await;
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, emu.ca_pem()).expect("write the CA");
    let (output, summary, log) = (
        dir.join(format!("out-{n}.ndjson")),
        dir.join(format!("summary-{n}.json")),
        dir.join(format!("stderr-{n}.txt")),
    );
    let report = dir.join(format!("reaped-{n}.json"));
    let mut cmd = Command::new(std::env::current_exe().expect("bench binary"));
    cmd.env(LAUNCHER, &report)
        .arg(env!("CARGO_BIN_EXE_gcm-ccs"))
        .arg("send")
        .args(["--sender-id", stack::SENDER, "--endpoint"])
        .arg(emu.addr().to_string())
        .arg("--ca-file")
        .arg(&ca)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(&output)
        .arg("--json")
        .env("GCM_API_KEY", stack::KEY)
        .env_remove("GCM_CCS_LOG")
        .stdin(Stdio::null())
        .stdout(File::create(&summary).expect("summary file"))
        .stderr(File::create(&log).expect("stderr file"));

    // Off the runtime: the emulator keeps serving while this thread waits.
    let launched = tokio::task::spawn_blocking(move || cmd.status())
        .await
        .expect("waiting thread")
        .expect("the launcher runs");
    drop(emu);

    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let reaped: Reaped = std::fs::read(&report)
        .ok()
        .and_then(|r| serde_json::from_slice(&r).ok())
        .unwrap_or_else(|| panic!("launcher {launched}: {stderr}"));
    assert_eq!(reaped.code, Some(0), "gcm-ccs send on {n} lines: {stderr}");
    let text = std::fs::read_to_string(&summary).expect("summary");
    let s: Summary = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("summary JSON ({e}): {text}\n{stderr}"));
    let n64 = n as u64;
    assert_eq!(
        (s.lines, s.invalid, s.submitted, s.acked, s.nacked, s.failed),
        (n64, 0, n64, n64, 0, 0),
        "summary of {n} lines: {text}"
    );
    check_output(&output, n);
    std::fs::remove_file(&output).expect("remove the output");
    Run {
        lines: n,
        peak_rss_kib: reaped.max_rss_kib,
        msgs_per_s: s.msgs_per_s,
        wall: Duration::from_secs_f64(reaped.wall_s),
        launcher_rss_kib: reaped.launcher_rss_kib,
    }
}

/// Every input line has exactly one record in the output, and it is `acked`.
fn check_output(path: &Path, n: usize) {
    let mut seen = vec![false; n + 1];
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path).expect("output"));
    let (mut buf, mut count) = (Vec::new(), 0usize);
    while reader.read_until(b'\n', &mut buf).expect("read the output") > 0 {
        let r: Record = serde_json::from_slice(&buf).expect("each output line is a record");
        let line = r.line as usize;
        assert!((1..=n).contains(&line), "line {line} out of 1..={n}");
        assert!(!seen[line], "line {line} has two outcomes");
        assert_eq!(r.outcome, "acked", "line {line}");
        seen[line] = true;
        count += 1;
        buf.clear();
    }
    assert_eq!(count, n, "output records");
}

/// Set to a report path, the bench binary is a launcher: it runs the command in its
/// arguments with the same stdio, writes a [`Reaped`] there and exits with the command's code.
pub const LAUNCHER: &str = "GCM_CCS_BENCH_LAUNCHER";

/// What the launcher reports of the command it ran.
#[derive(Serialize, Deserialize)]
struct Reaped {
    /// Exit code (`None`: killed by a signal).
    code: Option<i32>,
    max_rss_kib: u64,
    launcher_rss_kib: u64,
    wall_s: f64,
}

/// Acts as the launcher when [`LAUNCHER`] is set (and then never returns). Called first thing
/// in `main`, before the runtime exists, so the launcher stays small.
pub fn launcher() {
    let Some(report) = std::env::var_os(LAUNCHER).map(PathBuf::from) else {
        return;
    };
    let mut args = std::env::args_os().skip(1);
    let mut cmd = Command::new(args.next().expect("a command to launch"));
    cmd.args(args).env_remove(LAUNCHER);
    let launcher_rss_kib = own_peak_rss_kib();
    let started = Instant::now();
    let exit = crate::cpu::wait(cmd.spawn().expect("the command runs"));
    let (code, max_rss_kib) = (exit.code, exit.max_rss_kib);
    let reaped = Reaped {
        code,
        max_rss_kib,
        launcher_rss_kib,
        wall_s: started.elapsed().as_secs_f64(),
    };
    std::fs::write(&report, serde_json::to_vec(&reaped).expect("encode"))
        .expect("write the launcher report");
    std::process::exit(code.unwrap_or(1));
}

/// `VmHWM` of this process (0 where there is no /proc).
fn own_peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
