//! Live counters of a `send` run and their display on stderr: an indicatif bar on a terminal,
//! a plain line every few seconds otherwise.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use gcm_ccs::Outcome;

use super::input;

/// Counters shared by the reading loop, the message tasks and the writer.
#[derive(Debug, Default)]
pub struct Progress {
    /// Lines with an outcome, earlier runs (`--resume`) included.
    pub done: AtomicU64,
    pub submitted: AtomicU64,
    /// Outcomes of submitted messages.
    pub completed: AtomicU64,
    pub acked: AtomicU64,
    pub nacked: AtomicU64,
    pub failed: AtomicU64,
    pub invalid: AtomicU64,
    /// Messages refused because the server refused the key (left without an outcome).
    pub refused: AtomicU64,
}

impl Progress {
    /// Counts one written record.
    pub fn record(&self, outcome: Outcome, submitted: bool) {
        self.done.fetch_add(1, Relaxed);
        self.completed.fetch_add(u64::from(submitted), Relaxed);
        let counter = match outcome {
            Outcome::Acked => &self.acked,
            Outcome::Nacked => &self.nacked,
            Outcome::Failed => &self.failed,
            Outcome::Invalid => &self.invalid,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Counts a message refused with the key: it ends without an outcome.
    pub fn refused(&self) {
        self.completed.fetch_add(1, Relaxed);
        self.refused.fetch_add(1, Relaxed);
    }

    /// Submitted messages without an outcome yet.
    pub fn in_flight(&self) -> u64 {
        self.submitted
            .load(Relaxed)
            .saturating_sub(self.completed.load(Relaxed))
    }

    /// `12.3k/s · acked 1 nacked 2 failed 0 invalid 3 · in flight 100`
    fn counts(&self, rate: f64) -> String {
        format!(
            "{rate:.0} lines/s · acked {} nacked {} failed {} invalid {} · in flight {}",
            self.acked.load(Relaxed),
            self.nacked.load(Relaxed),
            self.failed.load(Relaxed),
            self.invalid.load(Relaxed),
            self.in_flight()
        )
    }
}

/// Shows progress until [`Reporter::finish`].
pub struct Reporter {
    task: JoinHandle<()>,
    bar: Option<ProgressBar>,
}

impl Reporter {
    /// Starts showing `progress` of the lines in `input` (a file, when it is one). A
    /// terminal's bar counts them at once; the plain lines only when the first is due, so a
    /// short run never reads its input twice.
    pub fn start(progress: Arc<Progress>, input: Option<PathBuf>) -> Reporter {
        let started = Instant::now();
        let first = progress.done.load(Relaxed);
        let rate = move |p: &Progress| {
            p.done.load(Relaxed).saturating_sub(first) as f64
                / started.elapsed().as_secs_f64().max(1e-3)
        };
        if !std::io::stderr().is_terminal() {
            let task = tokio::spawn(async move {
                let period = Duration::from_secs(5);
                let mut tick = tokio::time::interval_at(Instant::now() + period, period);
                // A slow count must not be followed by a burst of lines.
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                let total = match input {
                    Some(path) => tokio::task::spawn_blocking(move || count_lines(&path))
                        .await
                        .ok()
                        .flatten(),
                    None => None,
                };
                loop {
                    let done = progress.done.load(Relaxed);
                    let of = total.map(|t| format!("/{t}")).unwrap_or_default();
                    eprintln!(
                        "progress: {done}{of} lines · {}",
                        progress.counts(rate(&progress))
                    );
                    tick.tick().await;
                }
            });
            return Reporter { task, bar: None };
        }
        let total = input.as_deref().and_then(count_lines);
        let (bar, template) = match total {
            Some(t) => (ProgressBar::new(t), "{bar:30} {pos}/{len} {msg}"),
            None => (ProgressBar::new_spinner(), "{spinner} {pos} lines {msg}"),
        };
        bar.set_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let shown = bar.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                shown.set_position(progress.done.load(Relaxed));
                shown.set_message(progress.counts(rate(&progress)));
            }
        });
        Reporter {
            task,
            bar: Some(bar),
        }
    }

    /// Prints a line on stderr without garbling the bar.
    pub fn note(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    /// Stops and removes the display.
    pub fn finish(self) {
        self.task.abort();
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The line count of `path`, if it can be read (else the display goes without a total).
fn count_lines(path: &Path) -> Option<u64> {
    input::count_lines(path).ok()
}
