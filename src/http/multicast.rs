//! Multicast: any number of tokens in requests of at most [`MAX_REGISTRATION_IDS`], sent
//! concurrently (bounded by the sender's request limit), retrying only the tokens whose
//! result is retryable, and merged back into the caller's order.

use serde_json::{Map, Value};
use tokio::task::JoinSet;
use tracing::debug;

use super::config::MAX_REGISTRATION_IDS;
use super::request;
use super::retry::Schedule;
use super::sender::{Failed, HttpSender, token_outcome};
use crate::error::SendError;
use crate::inbound::Ack;
use crate::message::Message;

/// Everything a multicast produced.
#[derive(Debug, Clone)]
pub struct MulticastReport {
    /// One outcome per token, in the order the tokens were given.
    pub results: Vec<Result<Ack, SendError>>,
    /// The 64-bit `multicast_id` of every request answered with results (retries included),
    /// grouped by chunk in token order.
    pub multicast_ids: Vec<i64>,
}

impl HttpSender {
    /// Sends `msg`'s payload and options to every token (its own `to` / `condition` is
    /// ignored). Returns one outcome per token, in the same order.
    pub async fn send_multicast(
        &self,
        msg: &Message,
        tokens: &[String],
    ) -> Vec<Result<Ack, SendError>> {
        self.send_multicast_report(msg, tokens).await.results
    }

    /// [`HttpSender::send_multicast`] with the requests' `multicast_id`s.
    pub async fn send_multicast_report(&self, msg: &Message, tokens: &[String]) -> MulticastReport {
        let fields = std::sync::Arc::new(request::fields(msg, true));
        let mut running = JoinSet::new();
        let chunks: Vec<&[String]> = tokens.chunks(MAX_REGISTRATION_IDS).collect();
        for (n, chunk) in chunks.iter().enumerate() {
            let (sender, fields, chunk) = (self.clone(), fields.clone(), chunk.to_vec());
            running.spawn(async move { (n, sender.send_chunk(&fields, &chunk).await) });
        }
        let mut done: Vec<Option<MulticastReport>> = chunks.iter().map(|_| None).collect();
        while let Some(joined) = running.join_next().await {
            match joined {
                Ok((n, report)) => done[n] = Some(report),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Cancelled: the runtime is shutting down; reported as `Closed` below.
                Err(_) => {}
            }
        }
        let mut merged = MulticastReport {
            results: Vec::with_capacity(tokens.len()),
            multicast_ids: Vec::new(),
        };
        for (report, chunk) in done.into_iter().zip(chunks) {
            let report = report.unwrap_or_else(|| MulticastReport {
                results: vec![Err(SendError::Closed); chunk.len()],
                multicast_ids: Vec::new(),
            });
            merged.results.extend(report.results);
            merged.multicast_ids.extend(report.multicast_ids);
        }
        merged
    }

    /// One chunk of at most [`MAX_REGISTRATION_IDS`] tokens, with its retries.
    async fn send_chunk(&self, fields: &Map<String, Value>, tokens: &[String]) -> MulticastReport {
        let mut outcomes: Vec<Option<Result<Ack, SendError>>> = vec![None; tokens.len()];
        let mut multicast_ids = Vec::new();
        let mut pending: Vec<usize> = (0..tokens.len()).collect();
        let mut schedule = Schedule::new(&self.config().retry);
        loop {
            let body = request::multicast(fields, pending.iter().map(|&i| tokens[i].as_str()));
            let mut floor = None;
            let mut retry = Vec::new();
            match self
                .post(body)
                .await
                .and_then(|reply| reply.token_results(pending.len()).map_err(Failed::fatal))
            {
                Ok((multicast_id, results)) => {
                    multicast_ids.push(multicast_id);
                    for (&i, result) in pending.iter().zip(results) {
                        outcomes[i] = Some(token_outcome(&tokens[i], result).map_err(|f| {
                            if f.retryable {
                                retry.push(i);
                            }
                            f.error
                        }));
                    }
                }
                Err(failed) => {
                    for &i in &pending {
                        outcomes[i] = Some(Err(failed.error.clone()));
                    }
                    if failed.retryable {
                        floor = failed.retry_after;
                        retry = pending;
                    }
                }
            }
            if retry.is_empty() {
                break;
            }
            let Some(delay) = schedule.next_delay(floor) else {
                break;
            };
            debug!(
                tokens = retry.len(),
                attempts = schedule.attempts(),
                ?delay,
                "HTTP multicast: retrying"
            );
            tokio::time::sleep(delay).await;
            pending = retry;
        }
        MulticastReport {
            results: outcomes
                .into_iter()
                .map(|o| o.expect("every token is answered by its first attempt"))
                .collect(),
            multicast_ids,
        }
    }
}
