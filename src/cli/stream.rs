//! `gcm-ccs stream`: the stream test mode. Connects showing each step, sends test messages,
//! prints their acks and nacks, then listens for upstream messages, receipts and drains.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use gcm_ccs::{
    Client, Direction, Event, Events, Incoming, IncomingMessage, Message, SendError, Transcript,
};
use serde_json::{Map, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::common::{Failure, Interrupts, XmppArgs, payload};
use super::exit;

/// Connect, send test messages and watch acks, upstream messages and receipts live.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct StreamArgs {
    #[command(flatten)]
    xmpp: XmppArgs,
    /// Registration token, topic (/topics/NAME) or notification key to send to.
    #[arg(long, value_name = "TOKEN", required_unless_present = "interactive")]
    to: Option<String>,
    /// The `data` payload, a JSON object.
    #[arg(long, value_name = "JSON")]
    data: Option<String>,
    /// The `notification` payload, a JSON object.
    #[arg(long, value_name = "JSON")]
    notification: Option<String>,
    /// Messages to send (0: only listen) [default: 1].
    #[arg(long, value_name = "N", conflicts_with = "interactive")]
    count: Option<u32>,
    /// Ask for delivery receipts.
    #[arg(long)]
    receipt: bool,
    /// Listen this many seconds once the messages are answered [default: until Ctrl-C].
    #[arg(long, value_name = "SECS")]
    wait: Option<u64>,
    /// Send each line of stdin: a JSON message object (its `to` defaults to --to), or text
    /// sent as `data.message`.
    #[arg(long)]
    interactive: bool,
    /// Print every raw stanza sent (C:) and received (S:), the credential redacted.
    #[arg(long)]
    transcript: bool,
}

const AFTER_HELP: &str = "\
Each line on stdout starts with what it reports: connecting, tls, auth, bound, ack, nack,
failed, upstream, receipt, draining, connected, lost, closed. Upstream messages and receipts
are acked to the server automatically. Exit code 0 when every message sent was acked.

Examples:
  export GCM_API_KEY=emulator-key
  gcm-ccs stream --sender-id 123456789012 --endpoint 127.0.0.1:5235 --ca-file emulator-ca.pem \\
      --to device-token --data '{\"score\":\"3x1\"}' --receipt --wait 5
  gcm-ccs stream ... --to device-token --count 10 --transcript --wait 1
  gcm-ccs stream ... --to device-token --interactive";

/// Prints one report line on stdout: a fixed-width tag, then the text.
fn say(tag: &str, text: impl std::fmt::Display) {
    println!("{tag:<10} {text}");
}

pub async fn run(args: StreamArgs) -> Result<u8, Failure> {
    let template = args.template()?;
    let mut cfg = args.xmpp.config()?;
    cfg.connections = 1;
    if args.transcript {
        cfg.transcript = Some(Transcript::new(print_raw));
    }
    say(
        "connecting",
        format!(
            "{} over TLS, verifying the certificate for {}",
            cfg.endpoint,
            cfg.tls_server_name()
        ),
    );
    let authcid = cfg.credentials.authcid();
    let started = Instant::now();
    let (client, incoming) = Client::connect(cfg).await?;
    say("tls", "handshake done, certificate verified");
    say("auth", format!("authenticated as {authcid}"));
    say(
        "bound",
        format!("{} in {} ms", client.jid(), started.elapsed().as_millis()),
    );
    let watcher = tokio::spawn(watch(client.events()));
    let reader = tokio::spawn(show_incoming(incoming));

    let not_acked = Arc::new(AtomicU64::new(0));
    let mut sends = JoinSet::new();
    let mut interrupts = Interrupts::new()?;
    let answered = async {
        if args.interactive {
            interactive(&client, &template, &not_acked, &mut sends).await;
        } else {
            for _ in 0..args.count.unwrap_or(1) {
                let message = Message::from_json_value(Value::Object(template.clone()))
                    .map_err(|e| Failure::usage(format!("invalid message: {e}")))?;
                sends.spawn(send(client.clone(), message, not_acked.clone()));
            }
        }
        while sends.join_next().await.is_some() {}
        Ok::<_, Failure>(())
    };
    let interrupted = tokio::select! {
        answered = answered => { answered?; false }
        _ = interrupts.recv() => true,
    };
    if !interrupted {
        match args.wait {
            Some(secs) => say("listening", format!("for {secs} s")),
            None => say("listening", "until Ctrl-C"),
        }
        let wait = args.wait.map(Duration::from_secs);
        tokio::select! {
            _ = async { tokio::time::sleep(wait?).await; Some(()) } => {}
            _ = interrupts.recv() => {}
        }
    }
    client.close().await;
    while sends.join_next().await.is_some() {}
    watcher.abort();
    reader.abort();
    say(
        "closed",
        format!("after {:.1} s", started.elapsed().as_secs_f64()),
    );
    Ok(if not_acked.load(Relaxed) == 0 {
        exit::OK
    } else {
        exit::FAILED
    })
}

impl StreamArgs {
    /// The message fields given by the options; checked by building one message.
    fn template(&self) -> Result<Map<String, Value>, Failure> {
        let mut fields = payload(self.data.as_deref(), self.notification.as_deref())?;
        if let Some(to) = &self.to {
            fields.insert("to".into(), to.clone().into());
        }
        if self.receipt {
            fields.insert("delivery_receipt_requested".into(), true.into());
        }
        if fields.contains_key("to") {
            Message::from_json_value(Value::Object(fields.clone()))
                .map_err(|e| Failure::usage(format!("invalid message: {e}")))?;
        }
        Ok(fields)
    }
}

/// Sends each stdin line until the end of stdin.
async fn interactive(
    client: &Client,
    template: &Map<String, Value>,
    not_acked: &Arc<AtomicU64>,
    sends: &mut JoinSet<()>,
) {
    eprintln!("type a message per line: a JSON object, or text sent as data.message");
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => return,
            Err(e) => {
                eprintln!("error: cannot read stdin: {e}");
                return;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match interactive_message(&line, template) {
            Ok(message) => {
                sends.spawn(send(client.clone(), message, not_acked.clone()));
            }
            Err(e) => say("invalid", e),
        }
    }
}

/// A message from one interactive line.
fn interactive_message(line: &str, template: &Map<String, Value>) -> Result<Message, String> {
    let fields = if line.trim_start().starts_with('{') {
        let mut fields: Map<String, Value> =
            serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
        if !fields.contains_key("to")
            && !fields.contains_key("condition")
            && let Some(to) = template.get("to")
        {
            fields.insert("to".into(), to.clone());
        }
        fields
    } else {
        let mut fields = template.clone();
        let data = fields
            .entry("data")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(data) = data {
            data.insert("message".into(), line.into());
        }
        fields
    };
    Message::from_json_value(Value::Object(fields)).map_err(|e| e.to_string())
}

/// Sends one message and prints its outcome.
async fn send(client: Client, message: Message, not_acked: Arc<AtomicU64>) {
    let what = format!("{} to {}", message.message_id(), message.target_str());
    let started = Instant::now();
    let completion = match client.submit(message).await {
        Ok(pending) => pending.completion().await,
        Err(e) => {
            not_acked.fetch_add(1, Relaxed);
            return say("failed", format!("{what}: {e}"));
        }
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let retries = match completion.attempts {
        0 | 1 => String::new(),
        n => format!(" after {n} attempts"),
    };
    match completion.result {
        Ok(ack) => {
            let canonical = ack
                .registration_id
                .map(|id| format!(", canonical id {id}"))
                .unwrap_or_default();
            say("ack", format!("{what} in {ms:.1} ms{retries}{canonical}"));
        }
        Err(SendError::Nacked(nack)) => {
            not_acked.fetch_add(1, Relaxed);
            let description = nack
                .description
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            say(
                "nack",
                format!("{what}: {}{description} in {ms:.1} ms{retries}", nack.code),
            );
        }
        Err(e) => {
            not_acked.fetch_add(1, Relaxed);
            say("failed", format!("{what}: {e}{retries}"));
        }
    }
}

/// Prints every upstream message and receipt, from the first connection on, and acks each
/// once printed.
async fn show_incoming(mut incoming: Incoming) {
    while let Some(delivery) = incoming.recv().await {
        let line = match delivery.message() {
            IncomingMessage::Upstream(message) => (
                "upstream",
                format!(
                    "{} from {}: {}",
                    message.message_id,
                    message.from,
                    Value::Object(message.data.clone())
                ),
            ),
            IncomingMessage::Receipt(receipt) => (
                "receipt",
                format!(
                    "{} for {} on {}: {}",
                    receipt.message_id,
                    receipt.original_message_id.as_deref().unwrap_or("?"),
                    receipt.device_registration_id.as_deref().unwrap_or("?"),
                    receipt.message_status.as_deref().unwrap_or("?"),
                ),
            ),
        };
        let acked = if delivery.ack() {
            "acked"
        } else {
            "not acked: its connection ended"
        };
        say(line.0, format!("{} ({acked})", line.1));
    }
}

/// Prints connection events until the client is gone.
async fn watch(mut events: Events) {
    while let Some(event) = events.recv().await {
        match event {
            Event::Draining { conn } => say(
                "draining",
                format!("connection {conn}: new messages go to a fresh connection"),
            ),
            Event::Connected { conn, jid, .. } => {
                say("connected", format!("connection {conn} bound {jid}"))
            }
            Event::Lost {
                conn,
                reason,
                in_flight,
            } => say(
                "lost",
                format!("connection {conn}: {reason} ({in_flight} in flight, resent)"),
            ),
            Event::ConnectFailed { error, retry_in } | Event::AuthFailed { error, retry_in } => {
                say("retrying", format!("{error}; next attempt in {retry_in:?}"))
            }
            Event::Lagged(n) => eprintln!("warning: missed {n} events"),
            _ => {}
        }
    }
}

/// Prints a raw chunk of the transcript; whitespace keepalives are shown by name.
fn print_raw(direction: Direction, text: &str) {
    let side = match direction {
        Direction::Out => "C:",
        Direction::In => "S:",
    };
    if text.trim().is_empty() {
        say(side, "(whitespace keepalive)");
    } else {
        say(side, text.trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interactive_lines() {
        let mut template = Map::new();
        template.insert("to".into(), "tok".into());
        template.insert("data".into(), serde_json::json!({"k": "v"}));
        let text = interactive_message("hello <world>", &template).unwrap();
        assert_eq!(text.target_str(), "tok");
        assert_eq!(text.data().unwrap()["message"], "hello <world>");
        assert_eq!(text.data().unwrap()["k"], "v");
        let object = interactive_message(r#"{"data":{"a":"b"}}"#, &template).unwrap();
        assert_eq!(object.target_str(), "tok");
        assert!(object.data().unwrap().get("k").is_none());
        let topic = interactive_message(r#"{"condition":"'a' in topics"}"#, &template).unwrap();
        assert_eq!(topic.target_str(), "'a' in topics");
        assert!(interactive_message("{not json", &template).is_err());
        assert!(interactive_message("text", &Map::new()).is_err());
    }
}
