//! `gcm-ccs http`: one message through the legacy HTTP API, to one target or many tokens,
//! with per-target results, canonical ids and errors.

use std::path::{Path, PathBuf};

use gcm_ccs::http::{Delivery, HttpSender, MulticastReport, subscription};
use gcm_ccs::{Ack, HttpError, Message, SendError};
use serde::Serialize;
use serde_json::Value;

use super::common::{AuthArgs, Failure, payload, read_input};
use super::exit;

/// Send one message through the legacy HTTP API to one target or many tokens.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
#[command(group = clap::ArgGroup::new("target").required(true))]
pub struct HttpArgs {
    /// A registration token, a topic (/topics/NAME) or a device group's notification key.
    #[arg(long, value_name = "TOKEN", group = "target")]
    to: Option<String>,
    /// Tokens to multicast to, comma-separated.
    #[arg(long, value_name = "A,B,...", value_delimiter = ',', group = "target")]
    registration_ids: Option<Vec<String>>,
    /// Multicast to the tokens in FILE, one per line; blank lines and `#` comments are
    /// skipped (`-`: stdin).
    #[arg(long, value_name = "FILE", group = "target")]
    tokens_file: Option<PathBuf>,
    /// Send to the registration id of a Chrome PushSubscription: FILE holds its JSON or its
    /// endpoint URL.
    #[arg(long, value_name = "FILE", group = "target")]
    subscription: Option<PathBuf>,
    /// The `data` payload, a JSON object.
    #[arg(long, value_name = "JSON")]
    data: Option<String>,
    /// The `notification` payload, a JSON object.
    #[arg(long, value_name = "JSON")]
    notification: Option<String>,
    /// The send URL [default: https://fcm.googleapis.com/fcm/send].
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Have the server check the request without delivering it.
    #[arg(long)]
    dry_run: bool,
    /// Print one JSON object on stdout instead of a line per target.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    auth: AuthArgs,
}

const AFTER_HELP: &str = "\
Prints one line per target on stdout: `ok TARGET MESSAGE_ID [canonical id NEW]` or
`error TARGET CODE`; a canonical id means: store NEW in place of TARGET. Multicasts of more
than 1000 tokens are split into several requests. Exit code 0 when every target succeeded,
1 otherwise, 3 when the key is refused.

Examples:
  export GCM_API_KEY=emulator-key
  gcm-ccs http --url https://127.0.0.1:5236/fcm/send --ca-file emulator-ca.pem \\
      --to device-token --data '{\"score\":\"3x1\"}'
  gcm-ccs http ... --registration-ids tokA,tokB,tokC --dry-run
  gcm-ccs http ... --tokens-file tokens.txt --json | jq '.results[] | select(.outcome == \"error\")'
  gcm-ccs http ... --subscription subscription.json --data '{\"title\":\"hi\"}'";

/// The result for one target.
#[derive(Debug, Serialize)]
struct TargetResult {
    to: String,
    /// `ok` or `error`.
    outcome: &'static str,
    /// The id the server gave the message.
    message_id: Option<String>,
    canonical_registration_id: Option<String>,
    /// The server's error code (e.g. `NotRegistered`), or the kind of failure.
    error: Option<String>,
    description: Option<String>,
}

/// Everything the command prints.
#[derive(Debug, Default, Serialize)]
struct Report {
    results: Vec<TargetResult>,
    multicast_ids: Vec<i64>,
    success: usize,
    failure: usize,
    canonical_ids: usize,
}

pub async fn run(args: HttpArgs) -> Result<u8, Failure> {
    let cfg = args.auth.http_config(args.url.as_deref())?;
    let mut fields = payload(args.data.as_deref(), args.notification.as_deref())?;
    if args.dry_run {
        fields.insert("dry_run".into(), true.into());
    }
    let tokens = args.tokens().await?;
    fields.insert("to".into(), tokens[0].clone().into());
    let message = Message::from_json_value(Value::Object(fields))
        .map_err(|e| Failure::usage(format!("invalid message: {e}")))?;
    let sender = HttpSender::new(cfg)?;
    let mut report = if args.registration_ids.is_some() || args.tokens_file.is_some() {
        multicast(
            sender.send_multicast_report(&message, &tokens).await,
            &tokens,
        )
    } else {
        single(&tokens[0], sender.send_detailed(&message).await)
    };
    report.success = report.results.iter().filter(|r| r.outcome == "ok").count();
    report.failure = report.results.len() - report.success;
    report.canonical_ids = report
        .results
        .iter()
        .filter(|r| r.canonical_registration_id.is_some())
        .count();
    print(&report, args.json);
    if let Some(refused) = report
        .results
        .iter()
        .find(|r| r.error.as_deref() == Some("UNAUTHORIZED"))
    {
        return Err(Failure {
            code: exit::AUTH,
            message: refused.description.clone().unwrap_or_default(),
        });
    }
    Ok(if report.failure == 0 {
        exit::OK
    } else {
        exit::FAILED
    })
}

impl HttpArgs {
    /// The targets: one for --to and --subscription, the list otherwise (never empty).
    async fn tokens(&self) -> Result<Vec<String>, Failure> {
        let tokens = if let Some(to) = &self.to {
            vec![to.clone()]
        } else if let Some(ids) = &self.registration_ids {
            ids.iter()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect()
        } else if let Some(path) = &self.tokens_file {
            read_text(path, "--tokens-file")
                .await?
                .lines()
                .map(str::trim)
                .filter(|t| !t.is_empty() && !t.starts_with('#'))
                .map(str::to_owned)
                .collect()
        } else if let Some(path) = &self.subscription {
            let text = read_text(path, "--subscription").await?;
            let id = subscription::registration_id(&text)
                .map_err(|e| Failure::usage(format!("--subscription {}: {e}", path.display())))?;
            vec![id]
        } else {
            Vec::new()
        };
        if tokens.is_empty() {
            return Err(Failure::usage("no target: the token list is empty"));
        }
        Ok(tokens)
    }
}

/// A file (or stdin for `-`) as text.
async fn read_text(path: &Path, option: &str) -> Result<String, Failure> {
    let bytes = read_input(path, option).await?;
    String::from_utf8(bytes).map_err(|_| Failure::usage(format!("{option}: not UTF-8 text")))
}

fn single(to: &str, outcome: Result<Delivery, SendError>) -> Report {
    let mut report = Report::default();
    let result = match outcome {
        Ok(Delivery::Token { ack, multicast_id }) => {
            report.multicast_ids.push(multicast_id);
            target_result(to, Ok(ack))
        }
        Ok(Delivery::Topic { message_id }) => TargetResult {
            message_id: Some(message_id.to_string()),
            ..ok(to)
        },
        Ok(Delivery::Group(group)) if group.failure == 0 => TargetResult {
            description: Some(format!("sent to {} member(s)", group.success)),
            ..ok(to)
        },
        Ok(Delivery::Group(group)) => target_result(
            to,
            Err(SendError::Http(HttpError::GroupPartialFailure(group))),
        ),
        Err(e) => target_result(to, Err(e)),
    };
    report.results.push(result);
    report
}

fn multicast(sent: MulticastReport, tokens: &[String]) -> Report {
    Report {
        results: tokens
            .iter()
            .zip(sent.results)
            .map(|(token, result)| target_result(token, result))
            .collect(),
        multicast_ids: sent.multicast_ids,
        ..Report::default()
    }
}

fn ok(to: &str) -> TargetResult {
    TargetResult {
        to: to.to_owned(),
        outcome: "ok",
        message_id: None,
        canonical_registration_id: None,
        error: None,
        description: None,
    }
}

fn target_result(to: &str, result: Result<Ack, SendError>) -> TargetResult {
    match result {
        Ok(ack) => TargetResult {
            message_id: Some(ack.message_id),
            canonical_registration_id: ack.registration_id,
            ..ok(to)
        },
        Err(SendError::Nacked(nack)) => TargetResult {
            outcome: "error",
            error: Some(
                nack.description
                    .unwrap_or_else(|| nack.code.as_str().to_owned()),
            ),
            ..ok(to)
        },
        Err(e) => TargetResult {
            outcome: "error",
            error: Some(e.code().to_owned()),
            description: Some(e.to_string()),
            ..ok(to)
        },
    }
}

fn print(report: &Report, json: bool) {
    if json {
        match serde_json::to_string(report) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("error: cannot encode the report: {e}"),
        }
        return;
    }
    for r in &report.results {
        let detail = match (&r.message_id, &r.canonical_registration_id, &r.error) {
            (_, _, Some(error)) => match r.description.as_deref() {
                Some(d) if d != error => format!("{error} ({d})"),
                _ => error.clone(),
            },
            (Some(id), Some(canonical), _) => format!("{id}  canonical id {canonical}"),
            (Some(id), None, _) => id.clone(),
            (None, _, _) => r.description.clone().unwrap_or_default(),
        };
        println!("{:<6} {}  {detail}", r.outcome, r.to);
    }
    let ids: Vec<String> = report.multicast_ids.iter().map(i64::to_string).collect();
    eprintln!(
        "{} target(s): {} ok, {} failed, {} canonical id(s){}",
        report.results.len(),
        report.success,
        report.failure,
        report.canonical_ids,
        if ids.is_empty() {
            String::new()
        } else {
            format!("; multicast_id {}", ids.join(", "))
        }
    );
}
