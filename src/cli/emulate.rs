//! `gcm-ccs emulate`: the CCS emulator as a standalone server, until SIGINT / SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use gcm_ccs::Credentials;
use gcm_ccs::emulator::{Emulator, EmulatorConfig, EmulatorStats, Identity, Script};

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
The addresses and the CA file are printed on stdout, live counters on stderr.

Examples:
  gcm-ccs emulate --ca-out emulator-ca.pem --http-listen 127.0.0.1:5236
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
    println!("CA certificate written to {}", ca_out.display());
    println!("sender ids: {}", senders.join(", "));
    eprintln!("stop with Ctrl-C or SIGTERM");

    let mut interrupts = Interrupts::new()?;
    let mut shown = EmulatorStats::default();
    let period = Duration::from_secs(args.stats_every.max(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = interrupts.recv() => break,
            _ = tick.tick(), if args.stats_every > 0 => {
                let now = emulator.stats();
                if now != shown {
                    eprintln!("{}", counters(&now));
                    shown = now;
                }
            }
        }
    }
    emulator.shutdown();
    // Let the connections write their closing tags.
    tokio::time::sleep(Duration::from_millis(100)).await;
    eprintln!("stopped: {}", counters(&emulator.stats()));
    Ok(exit::OK)
}

/// The counters on one line.
fn counters(s: &EmulatorStats) -> String {
    format!(
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
    )
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
