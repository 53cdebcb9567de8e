//! The Redis commands of a relay (see `spec/relay.md`), on two connections: one for blocking
//! reads, one for everything else, so a blocked read never holds up a record.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamInfoGroupsReply, StreamPendingCountReply,
    StreamReadOptions,
};
use redis::{AsyncCommands, RedisResult};
use tokio::time::Instant;
use tracing::warn;

use super::config::RelayConfig;
use super::entry::{Entry, ResultRecord};
use super::error::{RelayError, is_auth};
use crate::record::Record;

/// Longest a command other than a blocking read may take.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// One entry's final outcome, to be recorded and acked.
#[derive(Debug)]
pub(super) struct Written {
    pub entry_id: String,
    /// When it was read: an entry younger than half the claim threshold cannot have been
    /// taken over, so its ownership need not be checked.
    pub read_at: Instant,
    pub record: Record,
    /// Set for poison and invalid entries: their copy in the dead-letter stream.
    pub dead: Option<Dead>,
}

/// Why an entry goes to the dead-letter stream, and what it held.
#[derive(Debug)]
pub(super) struct Dead {
    pub reason: String,
    pub message: Option<String>,
    pub deliveries: u64,
}

/// The connection for everything but blocking reads.
#[derive(Clone)]
pub(super) struct Store {
    conn: ConnectionManager,
    stream: String,
    group: String,
    consumer: String,
    results: String,
    results_maxlen: usize,
    dead: String,
    inbox: String,
    /// Most entries this consumer can have pending: what a `XPENDING` asks for.
    pel_limit: usize,
    /// Entries read longer ago than this may have been claimed by another consumer.
    trust_for: Duration,
}

/// The connection for blocking reads.
pub(super) struct Reads {
    conn: ConnectionManager,
    stream: String,
    group: String,
    consumer: String,
}

/// Connects both connections and makes sure the group exists, retrying within the start-up
/// budget; refused credentials end it at once.
pub(super) async fn open(cfg: &RelayConfig) -> Result<(Store, Reads), RelayError> {
    let client = cfg.redis.client()?;
    let deadline = Instant::now() + cfg.start_budget;
    let mut delay = Duration::from_millis(100);
    loop {
        match try_open(cfg, &client).await {
            Ok(opened) => return Ok(opened),
            Err(e) if is_auth(&e) => {
                return Err(RelayError::Auth {
                    target: cfg.redis.to_string(),
                    reason: e.to_string(),
                });
            }
            Err(e) if Instant::now() + delay >= deadline => {
                return Err(RelayError::Unavailable {
                    target: cfg.redis.to_string(),
                    reason: e.to_string(),
                });
            }
            Err(e) => {
                warn!(redis = %cfg.redis, error = %e, "Redis is not available yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn try_open(cfg: &RelayConfig, client: &redis::Client) -> RedisResult<(Store, Reads)> {
    let manager = |response: Duration| {
        ConnectionManagerConfig::new()
            .set_response_timeout(Some(response))
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1))
    };
    let conn =
        ConnectionManager::new_with_config(client.clone(), manager(RESPONSE_TIMEOUT)).await?;
    // Above the BLOCK time: redis-rs's default 500 ms would cut every blocking read.
    let reads = manager(cfg.block + RESPONSE_TIMEOUT);
    let reads = ConnectionManager::new_with_config(client.clone(), reads).await?;
    let mut store = Store {
        conn,
        stream: cfg.stream.clone(),
        group: cfg.group.clone(),
        consumer: cfg.consumer.clone(),
        results: cfg.results.clone(),
        results_maxlen: cfg.results_maxlen,
        dead: cfg.dead.clone(),
        inbox: cfg.inbox.clone(),
        pel_limit: cfg.capacity * 2 + 100,
        trust_for: cfg.claim_after / 2,
    };
    store.create_group().await?;
    let reads = Reads {
        conn: reads,
        stream: cfg.stream.clone(),
        group: cfg.group.clone(),
        consumer: cfg.consumer.clone(),
    };
    Ok((store, reads))
}

impl Reads {
    /// `XREADGROUP … STREAMS <stream> <from>`: `>` for new entries (blocking), or an id for
    /// this consumer's own pending entries after it.
    pub async fn read(
        &mut self,
        from: &str,
        count: usize,
        block: Duration,
    ) -> RedisResult<Vec<Entry>> {
        let mut options = StreamReadOptions::default()
            .group(&self.group, &self.consumer)
            .count(count);
        if from == ">" {
            options = options.block(block.as_millis() as usize);
        }
        let reply: redis::Value = self
            .conn
            .xread_options(&[&self.stream], &[from], &options)
            .await?;
        Entry::read(reply)
            .map_err(|what| redis::RedisError::from((redis::ErrorKind::UnexpectedReturnType, what)))
    }
}

impl Store {
    /// `XGROUP CREATE … 0 MKSTREAM`: from ID `0`, so entries produced before the first relay
    /// started are sent too. `BUSYGROUP` means it exists.
    async fn create_group(&mut self) -> RedisResult<()> {
        let created: RedisResult<()> = self
            .conn
            .xgroup_create_mkstream(&self.stream, &self.group, "0")
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// `XAUTOCLAIM`: entries idle longer than `min_idle` on any consumer become ours.
    /// Returns the next cursor and the entries (entries deleted meanwhile are dropped from
    /// the pending list by Redis itself).
    pub async fn autoclaim(
        &mut self,
        min_idle: Duration,
        cursor: &str,
        count: usize,
    ) -> RedisResult<(String, Vec<Entry>)> {
        let reply: StreamAutoClaimReply = self
            .conn
            .xautoclaim_options(
                &self.stream,
                &self.group,
                &self.consumer,
                min_idle.as_millis() as u64,
                cursor,
                StreamAutoClaimOptions::default().count(count),
            )
            .await?;
        if !reply.deleted_ids.is_empty() {
            warn!(
                count = reply.deleted_ids.len(),
                "pending entries were deleted from the stream before they were sent"
            );
        }
        let claimed = reply.claimed.into_iter().map(Entry::claimed).collect();
        Ok((reply.next_stream_id, claimed))
    }

    /// Our own pending entries among `ids`, with their delivery counts: one `XPENDING` per
    /// id, pipelined (a range would return every entry in flight between them).
    pub async fn own_pending(&mut self, ids: &[&str]) -> RedisResult<HashMap<String, u64>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("XPENDING")
                .arg(&self.stream)
                .arg(&self.group)
                .arg(*id)
                .arg(*id)
                .arg(1)
                .arg(&self.consumer);
        }
        let replies: Vec<StreamPendingCountReply> = pipe.query_async(&mut self.conn).await?;
        Ok(replies
            .into_iter()
            .flat_map(|r| r.ids)
            .map(|p| (p.id, p.times_delivered as u64))
            .collect())
    }

    /// Records the outcomes and acks their entries in one `MULTI`/`EXEC`, for the entries
    /// still pending on this consumer (one another consumer took over is its to record).
    /// Ownership is checked (`XPENDING` per id) for entries read longer ago than half the
    /// claim threshold — younger ones cannot have been claimed by a relay with the same
    /// `--claim-after` — and for all of them when `doubt` (a retry after an error: the
    /// earlier attempt may have been applied). Returns, for each, whether it was recorded.
    pub async fn write(&mut self, batch: &[Written], doubt: bool) -> RedisResult<Vec<bool>> {
        let check: Vec<&str> = batch
            .iter()
            .filter(|w| doubt || w.read_at.elapsed() >= self.trust_for)
            .map(|w| w.entry_id.as_str())
            .collect();
        let pending = self.own_pending(&check).await?;
        let checked: std::collections::HashSet<&str> = check.into_iter().collect();
        let ours = |w: &Written| {
            pending.contains_key(&w.entry_id) || !checked.contains(w.entry_id.as_str())
        };
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut acked = Vec::with_capacity(batch.len());
        for written in batch.iter().filter(|w| ours(w)) {
            let result = ResultRecord {
                entry_id: &written.entry_id,
                consumer: &self.consumer,
                record: &written.record,
            };
            let json = serde_json::to_string(&result).unwrap_or_default();
            pipe.cmd("XADD")
                .arg(&self.results)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.results_maxlen)
                .arg("*")
                .arg("result")
                .arg(json)
                .ignore();
            if let Some(dead) = &written.dead {
                pipe.cmd("XADD")
                    .arg(&self.dead)
                    .arg("*")
                    .arg("entry_id")
                    .arg(&written.entry_id)
                    .arg("reason")
                    .arg(&dead.reason)
                    .arg("deliveries")
                    .arg(dead.deliveries)
                    .arg("consumer")
                    .arg(&self.consumer)
                    .arg("message")
                    .arg(dead.message.as_deref().unwrap_or(""))
                    .ignore();
            }
            acked.push(written.entry_id.as_str());
        }
        if !acked.is_empty() {
            pipe.cmd("XACK")
                .arg(&self.stream)
                .arg(&self.group)
                .arg(&acked)
                .ignore();
            pipe.query_async::<()>(&mut self.conn).await?;
        }
        Ok(batch.iter().map(ours).collect())
    }

    /// Resets the idle time of every entry pending on this consumer (`XCLAIM … 0 … JUSTID`
    /// to ourselves), so that entries we still work on are not claimed by another consumer.
    pub async fn refresh(&mut self) -> RedisResult<usize> {
        let reply: StreamPendingCountReply = self
            .conn
            .xpending_consumer_count(
                &self.stream,
                &self.group,
                "-",
                "+",
                self.pel_limit,
                &self.consumer,
            )
            .await?;
        if reply.ids.is_empty() {
            return Ok(0);
        }
        let ids: Vec<&str> = reply.ids.iter().map(|p| p.id.as_str()).collect();
        redis::cmd("XCLAIM")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(0)
            .arg(&ids)
            .arg("JUSTID")
            .query_async::<()>(&mut self.conn)
            .await?;
        Ok(ids.len())
    }

    /// Appends upstream messages and receipts to the inbox, in one round trip.
    pub async fn inbox(&mut self, entries: &[Vec<(&'static str, String)>]) -> RedisResult<()> {
        let mut pipe = redis::pipe();
        for fields in entries {
            pipe.cmd("XADD")
                .arg(&self.inbox)
                .arg("*")
                .arg(fields)
                .ignore();
        }
        pipe.query_async(&mut self.conn).await
    }

    /// The group's lag (entries not yet read by any consumer) and pending count.
    pub async fn queue_figures(&mut self) -> RedisResult<(Option<u64>, u64)> {
        let groups: StreamInfoGroupsReply = self.conn.xinfo_groups(&self.stream).await?;
        Ok(groups
            .groups
            .into_iter()
            .find(|g| g.name == self.group)
            .map_or((None, 0), |g| (g.lag.map(|l| l as u64), g.pending as u64)))
    }
}

/// The entries of a read with their delivery counts (1 for new ones; from `XPENDING` for
/// entries read again from a pending list).
pub(super) async fn with_counts(
    store: &mut Store,
    mut entries: Vec<Entry>,
    fresh: bool,
) -> RedisResult<Vec<Entry>> {
    if fresh {
        return Ok(entries);
    }
    let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    let counts = store.own_pending(&ids).await?;
    for entry in &mut entries {
        entry.deliveries = counts.get(&entry.id).copied().unwrap_or(1);
    }
    Ok(entries)
}
