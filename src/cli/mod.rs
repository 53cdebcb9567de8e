//! Command-line front end: argument parsing, logging set-up and dispatch.

mod common;
mod demo;
mod emulate;
mod enqueue;
mod http;
mod redis_args;
mod relay;
mod send;
mod sender_args;
mod stream;
mod summary;
mod vapid;
mod webpush;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

/// Send push messages through Google Cloud Messaging's XMPP Cloud Connection Server (CCS),
/// its legacy HTTP API or Web Push, or run a local emulator of them.
#[derive(Debug, Parser)]
#[command(
    name = "gcm-ccs",
    version,
    propagate_version = true,
    after_help = "Try it locally:\n  gcm-ccs demo\n  gcm-ccs emulate --ca-out emulator-ca.pem --http-listen 127.0.0.1:5236 --webpush-listen 127.0.0.1:5237\n  # then the examples of `gcm-ccs send --help`, `stream --help`, `http --help` and `webpush --help`\n\nThe server key is read from GCM_API_KEY or --api-key-file, never from the command line.\nExit codes: 0 success, 1 some messages failed, 2 usage, configuration or file error,\n3 authentication (server key or VAPID) refused, 130 interrupted."
)]
struct Cli {
    /// More log output on stderr (-v: info, -vv: debug, -vvv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, display_order = 100)]
    verbose: u8,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, display_order = 100)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole client against an embedded emulator and print a summary.
    Demo(demo::DemoArgs),
    /// Send every message of an NDJSON file; write one outcome line per input line.
    Send(send::SendArgs),
    /// Connect, send test messages, and watch acks, upstream messages and receipts live.
    Stream(stream::StreamArgs),
    /// Send one message through the legacy HTTP API to one target or many tokens.
    Http(http::HttpArgs),
    /// Send one push to a browser's push subscription (Web Push).
    Webpush(webpush::WebPushArgs),
    /// Make VAPID keys for Web Push, or show the public key of one.
    Vapid(vapid::VapidArgs),
    /// Send what producers put on a Redis stream, as one of many relays (consumer group).
    Relay(Box<relay::RelayArgs>),
    /// Put the messages of an NDJSON file on the relay's Redis stream.
    Enqueue(enqueue::EnqueueArgs),
    /// Run the CCS emulator standalone until interrupted.
    Emulate(emulate::EmulateArgs),
}

/// Exit codes shared by every subcommand.
pub(crate) mod exit {
    /// Every message (or line) ended well.
    pub const OK: u8 = 0;
    /// Some messages failed, or the run could not complete.
    pub const FAILED: u8 = 1;
    /// Usage, configuration or file error (clap uses 2 for usage errors too).
    pub const USAGE: u8 = 2;
    /// The server refused the sender id / server key, or the push service the VAPID signature.
    pub const AUTH: u8 = 3;
    /// Stopped by SIGINT / SIGTERM before the work was done (128 + SIGINT).
    pub const INTERRUPTED: u8 = 130;
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Send(args) => send::run(args).await,
            Command::Stream(args) => stream::run(args).await,
            Command::Http(args) => http::run(args).await,
            Command::Webpush(args) => webpush::run(args).await,
            Command::Vapid(args) => vapid::run(args),
            Command::Relay(args) => relay::run(*args).await,
            Command::Enqueue(args) => enqueue::run(args).await,
            Command::Emulate(args) => emulate::run(args).await,
        }
    });
    // A read of stdin may still be blocked in a worker thread: do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn init_logging(verbose: u8, format: LogFormat) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("GCM_CCS_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
