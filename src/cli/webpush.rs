//! `gcm-ccs webpush`: one push to a browser subscription (RFC 8030, RFC 8291, RFC 8292).

use std::path::PathBuf;

use gcm_ccs::webpush::{
    Accepted, DEFAULT_TTL, Push, Subscription, Urgency, WebPushConfig, WebPushError, WebPushSender,
};
use serde_json::json;

use super::common::{self, Failure, is_dash, read_input};
use super::{exit, vapid};

/// Send one push to a browser's push subscription (Web Push).
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct WebPushArgs {
    /// The PushSubscription JSON the browser gave (`-`: stdin).
    #[arg(long, value_name = "FILE")]
    subscription: PathBuf,
    /// The VAPID private key: PKCS#8 or SEC1 PEM, or the raw base64url scalar.
    #[arg(long, value_name = "FILE")]
    vapid_key: PathBuf,
    /// How the push service can reach you (VAPID `sub`): mailto:you@example.com or https://….
    #[arg(long, value_name = "URI")]
    subject: String,
    /// The payload, as text (without --payload or --payload-file: a push without a body).
    #[arg(long, value_name = "TEXT", conflicts_with = "payload_file")]
    payload: Option<String>,
    /// The payload, read from FILE (`-`: stdin); at most 3993 bytes.
    #[arg(long, value_name = "FILE")]
    payload_file: Option<PathBuf>,
    /// Seconds the push service keeps the push while the browser is offline.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_TTL)]
    ttl: u32,
    /// very-low, low, normal or high.
    #[arg(long, value_name = "URGENCY", value_parser = str::parse::<Urgency>)]
    urgency: Option<Urgency>,
    /// Replaces a pending push with the same topic (1–32 characters of A-Z a-z 0-9 - _).
    #[arg(long, value_name = "TOPIC")]
    topic: Option<String>,
    /// Also trust the CA certificate(s) in this PEM file (e.g. the one `gcm-ccs emulate` writes).
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Print one JSON object on stdout instead of a line.
    #[arg(long)]
    json: bool,
}

const AFTER_HELP: &str = "\
Prints `accepted STATUS location URL ttl SECONDS` or `refused STATUS CODE: REASON` on stdout.
Exit code 0 when the push service accepted the push (201), 1 when it refused it (404/410:
delete the subscription; 413, 400, 429 or 5xx after the retries), 2 for bad input or
configuration (nothing is sent: an invalid subscription, an unreadable key, a payload over
3993 bytes), 3 when the push service refused the VAPID signature (401/403).

Examples:
  gcm-ccs webpush --subscription subscription.json --vapid-key vapid.pem \\
      --subject mailto:you@example.com --payload 'Hello' --ttl 60 --urgency high
  echo -n '{\"title\":\"hi\"}' | gcm-ccs webpush ... --payload-file - --topic greeting --json";

pub async fn run(args: WebPushArgs) -> Result<u8, Failure> {
    if is_dash(&args.subscription) && args.payload_file.as_deref().is_some_and(is_dash) {
        return Err(Failure::usage(
            "--subscription and --payload-file cannot both read stdin",
        ));
    }
    let text = String::from_utf8(read_input(&args.subscription, "--subscription").await?)
        .map_err(|_| Failure::usage("--subscription: not UTF-8 text"))?;
    let subscription = Subscription::from_json(&text).map_err(|e| {
        Failure::usage(format!(
            "--subscription {}: {e}",
            args.subscription.display()
        ))
    })?;
    let key = vapid::load_key(&args.vapid_key, "--vapid-key")?;
    let mut push = Push::builder().ttl(args.ttl);
    if let Some(text) = args.payload {
        push = push.payload(text);
    } else if let Some(path) = &args.payload_file {
        push = push.payload(read_input(path, "--payload-file").await?);
    }
    if let Some(urgency) = args.urgency {
        push = push.urgency(urgency);
    }
    if let Some(topic) = args.topic {
        push = push.topic(topic);
    }
    let push = push
        .build()
        .map_err(|e| Failure::usage(format!("nothing sent: {e}")))?;
    let mut cfg = WebPushConfig::new(key, args.subject);
    cfg.trust = common::trust(args.ca_file.as_deref())?;
    let sender = WebPushSender::new(cfg).map_err(|e| Failure::usage(e.to_string()))?;
    let outcome = sender.send(&subscription, &push).await;
    print(&outcome, args.json);
    Ok(match outcome {
        Ok(_) => exit::OK,
        Err(WebPushError::VapidRefused { .. }) => exit::AUTH,
        Err(WebPushError::Config(_)) => exit::USAGE,
        Err(_) => exit::FAILED,
    })
}

fn print(outcome: &Result<Accepted, WebPushError>, json: bool) {
    match (outcome, json) {
        (Ok(a), true) => println!(
            "{}",
            json!({"outcome": "accepted", "status": a.status, "location": a.location,
                   "ttl": a.ttl, "attempts": a.attempts})
        ),
        (Err(e), true) => println!(
            "{}",
            json!({"outcome": "refused", "status": e.status(), "code": e.code(),
                   "error": e.to_string()})
        ),
        (Ok(a), false) => {
            let mut line = format!("accepted {}", a.status);
            if let Some(location) = &a.location {
                line.push_str(&format!("  location {location}"));
            }
            if let Some(ttl) = a.ttl {
                line.push_str(&format!("  ttl {ttl}"));
            }
            if a.attempts > 1 {
                line.push_str(&format!("  after {} attempts", a.attempts));
            }
            println!("{line}");
        }
        (Err(e), false) => {
            let status = e.status().map_or_else(|| "-".to_owned(), |s| s.to_string());
            println!("refused  {status}  {}: {e}", e.code());
        }
    }
}
