//! CPU time of this process, to report the work per message next to the throughput: a
//! pipeline limited by its window shows a lower rate than its CPU cost alone explains.

use std::future::Future;
use std::time::Duration;

/// User + system CPU time of the whole process so far (`None` where not measured).
#[cfg(unix)]
pub fn process_time() -> Option<Duration> {
    // SAFETY: rusage is plain data; zeroed is a valid value that getrusage overwrites.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer is valid for writes.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return None;
    }
    cpu_of(&usage)
}

#[cfg(not(unix))]
pub fn process_time() -> Option<Duration> {
    None
}

/// User + system time of a `rusage`.
#[cfg(unix)]
fn cpu_of(usage: &libc::rusage) -> Option<Duration> {
    let time = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).ok()?)
            .checked_add(Duration::from_micros(u64::try_from(t.tv_usec).ok()?))
    };
    time(usage.ru_utime)?.checked_add(time(usage.ru_stime)?)
}

/// How a child process ended, and what it used.
pub struct Exit {
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Its user + system CPU time (zero where not measured).
    pub cpu: Duration,
    /// Its peak resident set, in KiB (0 where not measured).
    pub max_rss_kib: u64,
}

/// Reaps `child` (never waited on before) with `wait4`.
#[cfg(unix)]
pub fn wait(child: std::process::Child) -> Exit {
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    let mut status = 0;
    // SAFETY: rusage is plain data; zeroed is a valid value that wait4 overwrites.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our own child, not reaped yet (`child` is never waited on); both
        // pointers are valid for writes.
        let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if got == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(err.kind(), std::io::ErrorKind::Interrupted, "wait4: {err}");
    }
    let max_rss = u64::try_from(usage.ru_maxrss).unwrap_or(0);
    Exit {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        cpu: cpu_of(&usage).unwrap_or_default(),
        // Linux and the BSDs count KiB, macOS bytes.
        max_rss_kib: if cfg!(target_os = "macos") {
            max_rss / 1024
        } else {
            max_rss
        },
    }
}

/// Without wait4 nothing is measured.
#[cfg(not(unix))]
pub fn wait(mut child: std::process::Child) -> Exit {
    Exit {
        code: child.wait().expect("wait").code(),
        cpu: Duration::ZERO,
        max_rss_kib: 0,
    }
}

/// Runs `run` (which handles `n` messages); returns its output and the process CPU time it
/// took per message, in microseconds (0 where not measured).
pub async fn per_message<T>(n: usize, run: impl Future<Output = T>) -> (T, f64) {
    let before = process_time();
    let out = run.await;
    let used = process_time()
        .zip(before)
        .and_then(|(after, before)| after.checked_sub(before));
    let us = used.map_or(0.0, |d| d.as_secs_f64() * 1e6 / n.max(1) as f64);
    (out, us)
}
