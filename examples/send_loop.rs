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
use gcm_ccs::{Client, Message, NackCode, SendError};
use tokio::task::JoinSet;

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

    let mut outcomes = JoinSet::new();
    for i in 0..1000 {
        let to = if i % 100 == 0 {
            format!("gone-{i}")
        } else {
            format!("token-{i}")
        };
        let msg = Message::to(to.clone()).data("n", i.to_string()).build()?;
        // Waits only while the queue is full (backpressure); the ack comes later.
        let pending = client.submit(msg).await?;
        outcomes.spawn(async move { (to, pending.await) });
    }
    let (mut acked, mut unregistered) = (0, Vec::new());
    while let Some(joined) = outcomes.join_next().await {
        match joined? {
            (_, Ok(ack)) => {
                acked += 1;
                if let Some(canonical) = ack.registration_id {
                    println!("store {canonical} in place of the old token");
                }
            }
            (to, Err(SendError::Nacked(n))) if n.code == NackCode::DeviceUnregistered => {
                unregistered.push(to)
            }
            (to, Err(e)) => eprintln!("{to}: {e}"),
        }
    }
    println!("acked {acked}, tokens to delete: {}", unregistered.len());
    client.close().await;
    Ok(())
}
