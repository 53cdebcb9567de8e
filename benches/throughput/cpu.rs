//! CPU time of this process, to report the work per message next to the throughput: a
//! pipeline limited by its window shows a lower rate than its CPU cost alone explains.

use std::future::Future;
use std::time::Duration;

/// User + system CPU time of the whole process so far (`None` where not measured).
#[cfg(unix)]
fn process_time() -> Option<Duration> {
    // SAFETY: rusage is plain data; zeroed is a valid value that getrusage overwrites.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer is valid for writes.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return None;
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).ok()?)
            .checked_add(Duration::from_micros(u64::try_from(t.tv_usec).ok()?))
    };
    time(usage.ru_utime)?.checked_add(time(usage.ru_stime)?)
}

#[cfg(not(unix))]
fn process_time() -> Option<Duration> {
    None
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
