//! An upstream consumer: every upstream message and delivery receipt, from the first
//! connection on, stored before it is acked (at-least-once; de-duplicate on `from` and
//! `message_id`). Runs against the embedded emulator:
//!
//! ```sh
//! cargo run --example upstream_consumer
//! ```

use std::collections::HashSet;

use gcm_ccs::emulator::{Emulator, EmulatorConfig};
use gcm_ccs::{Client, IncomingMessage, Message};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut emu_cfg = EmulatorConfig::new("123456789012", "example-key");
    // An upstream message from an emulated device every 100 ms on each connection.
    emu_cfg.script.faults.upstream_every_ms = 100;
    let emulator = Emulator::start(emu_cfg).await?;
    let (client, mut incoming) =
        Client::connect(emulator.client_config("123456789012", "example-key")).await?;

    // A message that asks for a delivery receipt.
    let msg = Message::to("token-1")
        .delivery_receipt_requested(true)
        .build()?;
    client.send(msg).await?;

    let mut stored = HashSet::new();
    while stored.len() < 5 {
        let Some(delivery) = incoming.recv().await else {
            break;
        };
        let key = (
            delivery.message().from().to_owned(),
            delivery.message().message_id().to_owned(),
        );
        // "Store" it (a set here; a database in an application), then ack. A redelivery of
        // something already stored is acked again and not stored twice.
        if stored.insert(key) {
            match delivery.message() {
                IncomingMessage::Upstream(u) => {
                    println!("upstream {} from {}: {:?}", u.message_id, u.from, u.data)
                }
                IncomingMessage::Receipt(r) => println!(
                    "receipt for {}",
                    r.original_message_id.as_deref().unwrap_or("?")
                ),
            }
        }
        delivery.ack();
    }
    client.close().await;
    Ok(())
}
