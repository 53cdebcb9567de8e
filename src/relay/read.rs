//! The reading side of a relay: this consumer's own pending entries first, then new ones,
//! and now and then the entries a dead consumer left; never more than there is room for.

use std::sync::Arc;
use std::time::Duration;

use redis::RedisResult;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tracing::warn;

use super::Judged;
use super::config::RelayConfig;
use super::entry::Entry;
use super::store::{Reads, Store, with_counts};

/// Most entries asked for in one read.
const MAX_READ: usize = 500;

/// Where the next read comes from.
enum Source {
    /// This consumer's own pending list, after this id: at start and after a failed read
    /// (entries delivered to a read that timed out are only returned this way).
    Own(String),
    /// Entries idle past `--claim-after` on any consumer, from this cursor.
    Claim(String),
    /// New entries (`>`).
    New,
}

/// Reads until the relay drops `tx` (or aborts this task). Each entry travels with the
/// permit that made room for it.
pub(super) async fn run(
    mut reads: Reads,
    mut store: Store,
    cfg: Arc<RelayConfig>,
    sends: super::Sends,
    permits: Arc<Semaphore>,
    tx: mpsc::Sender<Vec<(String, Judged, OwnedSemaphorePermit)>>,
) {
    let mut source = Source::Own("0-0".into());
    let mut next_claim = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        let Ok(first) = permits.clone().acquire_owned().await else {
            return;
        };
        let mut room = vec![first];
        while room.len() < MAX_READ {
            match permits.clone().try_acquire_owned() {
                Ok(p) => room.push(p),
                Err(_) => break,
            }
        }
        if matches!(source, Source::New) && Instant::now() >= next_claim {
            source = Source::Claim("0-0".into());
        }
        let read = read_once(&mut reads, &mut store, &cfg, &source, room.len()).await;
        let raw = match read {
            Ok(raw) => raw,
            Err(e) => {
                warn!(error = %e, "reading the outbox failed; reading this consumer's pending entries again");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                source = Source::Own("0-0".into());
                continue;
            }
        };
        delay = Duration::from_millis(100);
        let (raw, next) = raw;
        let fresh = matches!(source, Source::New);
        source = match source {
            Source::Own(_) if raw.is_empty() => Source::New,
            Source::Own(_) => Source::Own(raw.last().map_or_else(String::new, |r| r.id.clone())),
            Source::Claim(_) if next == "0-0" => {
                next_claim = Instant::now() + cfg.refresh_every();
                Source::New
            }
            Source::Claim(_) => Source::Claim(next),
            Source::New => Source::New,
        };
        let entries = match with_counts(&mut store, raw, fresh).await {
            Ok(entries) => entries,
            Err(e) => {
                // Left pending on this consumer: the next read of our own list finds them.
                warn!(error = %e, "cannot read delivery counts; reading pending entries again");
                source = Source::Own("0-0".into());
                continue;
            }
        };
        let batch: Vec<_> = entries
            .into_iter()
            .zip(room)
            .map(|(entry, permit)| (entry.id.clone(), super::judge(&cfg, sends, entry), permit))
            .collect();
        if !batch.is_empty() && tx.send(batch).await.is_err() {
            return;
        }
    }
}

/// One read from `source`: the entries, and the cursor to go on from (`0-0` when a claim
/// scan is complete; empty for other reads).
async fn read_once(
    reads: &mut Reads,
    store: &mut Store,
    cfg: &RelayConfig,
    source: &Source,
    count: usize,
) -> RedisResult<(Vec<Entry>, String)> {
    match source {
        Source::Own(after) => Ok((reads.read(after, count, cfg.block).await?, String::new())),
        Source::Claim(cursor) => {
            let (next, raw) = store.autoclaim(cfg.claim_after, cursor, count).await?;
            if !raw.is_empty() {
                warn!(
                    count = raw.len(),
                    "took over entries another consumer left idle"
                );
            }
            Ok((raw, next))
        }
        Source::New => Ok((reads.read(">", count, cfg.block).await?, String::new())),
    }
}
