//! The writing side of a relay: outcomes recorded and acked in batches, retried while Redis
//! is away; and the idle times of the entries this consumer holds kept fresh.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tracing::warn;

use super::Counts;
use super::store::{Store, Written};
use crate::metrics::Metrics;

/// Outcomes recorded in one transaction at most.
const BATCH: usize = 512;

/// Records until the relay drops its end of `rx`. After each batch, the entry ids go back
/// on `done` and the permits are released, making room for new reads.
pub(super) async fn run(
    mut store: Store,
    mut rx: mpsc::UnboundedReceiver<(Written, OwnedSemaphorePermit)>,
    done: mpsc::UnboundedSender<Vec<String>>,
    metrics: Arc<Metrics>,
    counts: Arc<Counts>,
    refresh_every: Duration,
) {
    let mut refresh = tokio::time::interval(refresh_every);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            biased;
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return;
                }
                let (written, permits): (Vec<Written>, Vec<OwnedSemaphorePermit>) =
                    batch.drain(..).unzip();
                let recorded = write(&mut store, &written).await;
                for (w, ours) in written.iter().zip(&recorded) {
                    if *ours {
                        metrics.record(&w.record);
                    }
                }
                let ours = recorded.iter().filter(|&&r| r).count() as u64;
                counts.recorded.fetch_add(ours, Relaxed);
                counts.not_pending.fetch_add(written.len() as u64 - ours, Relaxed);
                let _ = done.send(written.into_iter().map(|w| w.entry_id).collect());
                drop(permits);
            }
            _ = refresh.tick() => {
                if let Err(e) = store.refresh().await {
                    warn!(error = %e, "cannot refresh the idle time of entries in flight");
                }
            }
        }
    }
}

/// Writes one batch, retrying with backoff until Redis takes it. Which entries were
/// recorded by this write (the others were no longer pending on this consumer).
async fn write(store: &mut Store, batch: &[Written]) -> Vec<bool> {
    let mut delay = Duration::from_millis(50);
    let mut doubt = false;
    loop {
        match store.write(batch, doubt).await {
            Ok(recorded) => {
                let lost = recorded.iter().filter(|&&r| !r).count();
                if lost > 0 {
                    warn!(
                        lost,
                        "entries were taken over by another consumer before their outcome was recorded; it records them"
                    );
                }
                return recorded;
            }
            Err(e) => {
                warn!(error = %e, count = batch.len(), "cannot record outcomes; holding them until Redis answers");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
                doubt = true;
            }
        }
    }
}
