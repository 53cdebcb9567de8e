//! Upstream messages and receipts from CCS into the inbox stream: each acked to CCS only
//! after its `XADD` succeeded, so none is lost (at-least-once; applications dedupe on
//! `from` + `message_id`).

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use serde_json::{Value, json};
use tracing::warn;

use super::store::Store;
use crate::metrics::Metrics;
use crate::xmpp::{Delivery, Incoming, IncomingMessage};

/// Deliveries written in one round trip at most.
const BATCH: usize = 256;

/// Moves deliveries to the inbox until `incoming` ends. While Redis is down the batch is
/// retried and nothing more is taken, so CCS's flow control holds the rest back.
pub(super) async fn run(mut incoming: Incoming, mut store: Store, metrics: Arc<Metrics>) {
    let mut batch: Vec<Delivery> = Vec::new();
    while let Some(first) = incoming.recv().await {
        batch.push(first);
        while batch.len() < BATCH {
            match incoming.recv().now_or_never() {
                Some(Some(next)) => batch.push(next),
                _ => break,
            }
        }
        let entries: Vec<_> = batch.iter().map(|d| fields(d.message())).collect();
        let mut delay = Duration::from_millis(50);
        while let Err(e) = store.inbox(&entries).await {
            warn!(error = %e, count = entries.len(), "cannot write upstream messages to the inbox; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
        metrics.upstream(batch.len());
        for delivery in batch.drain(..) {
            // False when its connection ended: CCS sends it again and the application's
            // dedupe on (from, message_id) drops the copy.
            delivery.ack();
        }
    }
}

/// The fields of an inbox entry: `kind`, `from`, `message_id`, and the whole message as JSON
/// in `message`.
fn fields(message: &IncomingMessage) -> Vec<(&'static str, String)> {
    let (kind, json) = match message {
        IncomingMessage::Upstream(u) => (
            "upstream",
            json!({
                "message_id": u.message_id,
                "from": u.from,
                "category": u.category,
                "time_to_live": u.time_to_live,
                "data": Value::Object(u.data.clone()),
            }),
        ),
        IncomingMessage::Receipt(r) => (
            "receipt",
            json!({
                "message_id": r.message_id,
                "from": r.from,
                "category": r.category,
                "original_message_id": r.original_message_id,
                "device_registration_id": r.device_registration_id,
                "message_status": r.message_status,
                "data": Value::Object(r.data.clone()),
            }),
        ),
    };
    vec![
        ("kind", kind.to_owned()),
        ("from", message.from().to_owned()),
        ("message_id", message.message_id().to_owned()),
        ("message", json.to_string()),
    ]
}
