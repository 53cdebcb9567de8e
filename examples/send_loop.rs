//! A library send loop: a pool of connections, many messages in flight from one task, every
//! outcome handled. It runs against the embedded emulator, so it needs no network:
//!
//! ```sh
//! cargo run --example send_loop
//! ```
//!
//! Against real CCS, build the `Config` from your sender id and server key instead of
//! `emulator.client_config(..)`.

use gcm_ccs::emulator::{Emulator, EmulatorConfig, Reply, Rule};
use std::sync::Arc;

use gcm_ccs::{Client, CompletionQueue, Message, NackCode, SendError};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut emu_cfg = EmulatorConfig::new("123456789012", "example-key");
    emu_cfg.script.rules = vec![Rule {
        prefix: "gone-".into(),
        reply: Reply::Nack {
            code: "DEVICE_UNREGISTERED".into(),
            description: None,
        },
    }];
    let emulator = Emulator::start(emu_cfg).await?;

    let mut cfg = emulator.client_config("123456789012", "example-key");
    cfg.connections = 2;
    // This loop does not read upstream messages: dropping `Incoming` leaves them with CCS.
    let (client, _) = Client::connect(cfg).await?;

    // Outcomes come back in batches through a completion queue, under a tag of ours (here
    // the index of the token): no task and no channel per message.
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..1000)
            .map(|i| match i % 100 {
                0 => format!("gone-{i}"),
                _ => format!("token-{i}"),
            })
            .collect(),
    );
    let (queue, mut completions) = CompletionQueue::channel();
    let landing = tokio::spawn({
        let tokens = tokens.clone();
        async move {
            let (mut acked, mut unregistered) = (0, Vec::new());
            // Ends once the queue is dropped and every message has its outcome.
            while let Some(batch) = completions.recv().await {
                for (tag, done) in batch {
                    let to = &tokens[tag as usize];
                    match done.result {
                        Ok(ack) => {
                            acked += 1;
                            if let Some(canonical) = ack.registration_id {
                                println!("store {canonical} in place of {to}");
                            }
                        }
                        Err(SendError::Nacked(n)) if n.code == NackCode::DeviceUnregistered => {
                            unregistered.push(to.clone())
                        }
                        Err(e) => eprintln!("{to}: {e}"),
                    }
                }
            }
            (acked, unregistered)
        }
    });
    for (tag, to) in (0u64..).zip(tokens.iter()) {
        let msg = Message::to(to.as_str())
            .data("n", tag.to_string())
            .build()?;
        // Waits only while the queue is full (backpressure); the outcome comes later.
        client.submit_to(msg, tag, &queue).await?;
    }
    drop(queue);
    let (acked, unregistered) = landing.await?;
    println!("acked {acked}, tokens to delete: {}", unregistered.len());
    client.close().await;
    Ok(())
}
