//! `gcm-ccs emulate`: the CCS emulator as a standalone server, until SIGINT / SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use gcm_ccs::Credentials;
use gcm_ccs::emulator::{
    Emulator, EmulatorConfig, EmulatorStats, Identity, ReceivedPush, Script, WebPushStats,
};

use super::common::{Failure, Interrupts, read_file};
use super::exit;

/// Run the CCS emulator standalone until interrupted.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct EmulateArgs {
    /// Address for XMPP over TLS (port 0: any free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5235")]
    listen: SocketAddr,
    /// Also serve the legacy HTTP send API, https://ADDR/fcm/send (port 0: any free port).
    #[arg(long, value_name = "ADDR")]
    http_listen: Option<SocketAddr>,
    /// Also run a Web Push service at https://ADDR (`POST /subscribe` mints a subscription);
    /// each push it receives is decrypted and printed on stdout.
    #[arg(long, value_name = "ADDR")]
    webpush_listen: Option<SocketAddr>,
    /// An accepted sender id and server key; repeat for more.
    #[arg(
        long,
        value_name = "ID:KEY",
        default_value = "123456789012:emulator-key",
        value_parser = parse_credentials
    )]
    credentials: Vec<Credentials>,
    /// Write the CA certificate clients must trust (`--ca-file` of the other subcommands)
    /// [default: gcm-ccs-emulator-ca.pem in the temporary directory].
    #[arg(long, value_name = "FILE")]
    ca_out: Option<PathBuf>,
    /// Present this certificate chain (PEM) instead of a generated one.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// Scripted replies and faults, JSON (example: fixtures/emulator-script.json).
    #[arg(long, value_name = "FILE")]
    script: Option<PathBuf>,
    /// Print the counters on stderr every SECS seconds when they changed (0: only at exit).
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    stats_every: u64,
    /// Keep no per-message records: flat memory on long runs, but no duplicate counting
    /// and no `nack_first` rules.
    #[arg(long)]
    no_track_ids: bool,
}

const AFTER_HELP: &str = "\
The addresses and the CA file are printed on stdout, live counters on stderr. With
--webpush-listen, every push the Web Push service delivers is printed on stdout too:
`push ENDPOINT ttl SECONDS [urgency U] [topic T] from SUBJECT: PAYLOAD`.

Examples:
  gcm-ccs emulate --ca-out emulator-ca.pem --http-listen 127.0.0.1:5236
  gcm-ccs emulate --ca-out emulator-ca.pem --webpush-listen 127.0.0.1:5237
  curl --cacert emulator-ca.pem -X POST https://127.0.0.1:5237/subscribe \
      -d '{\"applicationServerKey\":\"<gcm-ccs vapid generate output>\"}' > subscription.json
  gcm-ccs emulate --listen 127.0.0.1:0 --credentials 42:key-a --credentials 43:key-b
  gcm-ccs emulate --ca-out emulator-ca.pem --script fixtures/emulator-script.json --stats-every 1";

fn parse_credentials(s: &str) -> Result<Credentials, String> {
    match s.split_once(':') {
        Some((id, key))
            if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !key.is_empty() =>
        {
            Ok(Credentials::new(id, key))
        }
        _ => Err("expected SENDER_ID:KEY with a numeric sender id".into()),
    }
}

pub async fn run(args: EmulateArgs) -> Result<u8, Failure> {
    let mut cfg = EmulatorConfig::new("0", "");
    cfg.listen = args.listen;
    cfg.http_listen = args.http_listen;
    cfg.webpush_listen = args.webpush_listen;
    cfg.credentials.clone_from(&args.credentials);
    cfg.track_ids = !args.no_track_ids;
    if let Some(path) = &args.script {
        let text = String::from_utf8(read_file(path, "--script")?)
            .map_err(|_| Failure::usage(format!("--script {} is not text", path.display())))?;
        cfg.script = Script::from_json(&text)
            .map_err(|e| Failure::usage(format!("--script {}: {e}", path.display())))?;
    }
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        let identity =
            Identity::from_pem(&read_file(cert, "--cert")?, &read_file(key, "--key")?, None);
        cfg.identity = Some(identity.map_err(|e| Failure::usage(e.to_string()))?);
    }
    let emulator = Emulator::start(cfg)
        .await
        .map_err(|e| Failure::usage(e.to_string()))?;
    let ca_out = args
        .ca_out
        .unwrap_or_else(|| std::env::temp_dir().join("gcm-ccs-emulator-ca.pem"));
    std::fs::write(&ca_out, emulator.ca_pem())
        .map_err(|e| Failure::usage(format!("cannot write the CA to {}: {e}", ca_out.display())))?;
    let senders: Vec<&str> = args
        .credentials
        .iter()
        .map(|c| c.sender_id.as_str())
        .collect();
    println!("listening on {} (XMPP over TLS)", emulator.addr());
    if let Some(url) = emulator.http_url() {
        println!("HTTP send API at {url}");
    }
    if let Some(url) = emulator.webpush_url() {
        println!("Web Push service at {url} (POST {url}/subscribe for a subscription)");
    }
    println!("CA certificate written to {}", ca_out.display());
    println!("sender ids: {}", senders.join(", "));
    eprintln!("stop with Ctrl-C or SIGTERM");

    let mut interrupts = Interrupts::new()?;
    let mut shown = (EmulatorStats::default(), WebPushStats::default());
    let period = Duration::from_secs(args.stats_every.max(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut pushes = tokio::time::interval(Duration::from_millis(200));
    let mut pushes_shown = 0;
    loop {
        tokio::select! {
            _ = interrupts.recv() => break,
            _ = pushes.tick(), if args.webpush_listen.is_some() => {
                let received = emulator.webpush_received();
                for push in received.get(pushes_shown..).unwrap_or_default() {
                    println!("{}", push_line(push));
                }
                pushes_shown = received.len();
            }
            _ = tick.tick(), if args.stats_every > 0 => {
                let now = (emulator.stats(), emulator.webpush_stats());
                if now != shown {
                    eprintln!("{}", counters(&now.0, &now.1));
                    shown = now;
                }
            }
        }
    }
    emulator.shutdown();
    // Let the connections write their closing tags.
    tokio::time::sleep(Duration::from_millis(100)).await;
    eprintln!(
        "stopped: {}",
        counters(&emulator.stats(), &emulator.webpush_stats())
    );
    Ok(exit::OK)
}

/// One delivered push on one line, the payload as text (or its size when it is not UTF-8).
fn push_line(push: &ReceivedPush) -> String {
    let mut line = format!("push {} ttl {}", push.endpoint, push.ttl);
    if let Some(urgency) = push.urgency {
        line.push_str(&format!(" urgency {urgency}"));
    }
    if let Some(topic) = &push.topic {
        line.push_str(&format!(" topic {topic}"));
    }
    let payload = match push.payload.as_deref().map(std::str::from_utf8) {
        None => "(no payload)".to_owned(),
        Some(Ok(text)) => text.escape_debug().to_string(),
        Some(Err(_)) => format!(
            "({} bytes, not UTF-8)",
            push.payload.as_ref().map_or(0, Vec::len)
        ),
    };
    format!("{line} from {}: {payload}", push.subject)
}

/// The counters on one line.
fn counters(s: &EmulatorStats, w: &WebPushStats) -> String {
    let mut line = format!(
        "connections open {} (authenticated {}, auth failures {}) · downstream {} (acks {}, nacks {}, stanza errors {}) · max pending {} (over the limit {}) · duplicates {} (resent on the same connection {}) · upstream/receipts acked {} · drains {} drops {}",
        s.connections_open,
        s.connections_authenticated,
        s.auth_failures,
        s.downstream,
        s.acks_sent,
        s.nacks_sent,
        s.stanza_errors,
        s.max_pending,
        s.over_limit,
        s.duplicates,
        s.resent_on_same_connection,
        s.client_acks,
        s.drains,
        s.drops
    );
    if w.requests > 0 || w.subscriptions > 0 {
        line.push_str(&format!(
            " · web push: subscriptions {}, requests {}, delivered {}, refused {}",
            w.subscriptions, w.requests, w.delivered, w.refused
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_syntax() {
        let c = parse_credentials("123:k:with:colons").unwrap();
        assert_eq!(
            (c.sender_id.as_str(), c.server_key.expose()),
            ("123", "k:with:colons")
        );
        for bad in ["123", "abc:k", ":k", "123:"] {
            assert!(parse_credentials(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_example_script_parses() {
        let script = Script::from_json(include_str!("../../fixtures/emulator-script.json"));
        let script = script.unwrap();
        assert!(!script.rules.is_empty());
        assert!(script.faults.upstream_every_ms > 0);
    }
}
