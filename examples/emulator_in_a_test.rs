//! The emulator in your own tests: script the server's replies, run your code against it
//! over real TLS on loopback, and assert on what the server saw. `cargo test` runs the test
//! below; `cargo run --example emulator_in_a_test` runs the same scenario.

use gcm_ccs::emulator::{Emulator, EmulatorConfig, Reply, Rule, Script};
use gcm_ccs::{Client, Message, NackCode, SendError};

/// The code under test: sends one message per token and returns the tokens to delete.
async fn notify_all(client: &Client, tokens: &[&str]) -> Vec<String> {
    let mut stale = Vec::new();
    for token in tokens {
        let msg = Message::to(*token)
            .data("kind", "hello")
            .build()
            .expect("valid");
        match client.send(msg).await {
            Err(SendError::Nacked(n)) if n.code == NackCode::DeviceUnregistered => {
                stale.push(token.to_string())
            }
            Err(e) => panic!("{token}: {e}"),
            Ok(_) => {}
        }
    }
    stale
}

/// An emulator that refuses tokens starting with `old-`, and a client for it.
async fn set_up() -> (Emulator, Client) {
    let mut cfg = EmulatorConfig::new("123456789012", "test-key");
    cfg.script = Script {
        rules: vec![Rule {
            prefix: "old-".into(),
            reply: Reply::Nack {
                code: "DEVICE_UNREGISTERED".into(),
                description: None,
            },
        }],
        ..Script::default()
    };
    let emulator = Emulator::start(cfg).await.expect("emulator starts");
    let (client, _) = Client::connect(emulator.client_config("123456789012", "test-key"))
        .await
        .expect("client connects");
    (emulator, client)
}

async fn scenario() {
    let (emulator, client) = set_up().await;
    let stale = notify_all(&client, &["new-1", "old-2", "new-3"]).await;
    assert_eq!(stale, vec!["old-2"]);
    let stats = emulator.stats();
    assert_eq!(
        (stats.downstream, stats.acks_sent, stats.nacks_sent),
        (3, 2, 1)
    );
    client.close().await;
    println!("ok: {stats:?}");
}

#[tokio::main]
async fn main() {
    scenario().await;
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn stale_tokens_are_reported() {
        super::scenario().await;
    }
}
