//! What the client subcommands share: connection options and the server key, failures with
//! their exit codes, and interrupt handling.

use std::path::{Path, PathBuf};

use gcm_ccs::{Config, ConnectError, Credentials, Endpoint};

use super::exit;

/// Where the server key is read from when `--api-key-file` is not given.
pub const KEY_ENV: &str = "GCM_API_KEY";

/// A failure that ends a subcommand: what to tell the user, and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    /// A usage, configuration or file error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: exit::USAGE,
            message: message.into(),
        }
    }

    /// Anything else that stops the run (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        Failure {
            code: exit::FAILED,
            message: message.into(),
        }
    }
}

impl From<ConnectError> for Failure {
    fn from(e: ConnectError) -> Self {
        let (code, hint) = match &e {
            ConnectError::Auth { .. } => (
                exit::AUTH,
                " (the key is read from GCM_API_KEY or --api-key-file)",
            ),
            ConnectError::Config(_) => (exit::USAGE, ""),
            ConnectError::Tls { .. } => (
                exit::FAILED,
                " (a private CA needs --ca-file PEM; a name other than the host needs --server-name)",
            ),
            _ => (exit::FAILED, ""),
        };
        Failure {
            code,
            message: format!("{e}{hint}"),
        }
    }
}

/// How to reach and authenticate to CCS; shared by `send`, `stream` and `http`.
#[derive(Debug, clap::Args)]
pub struct ConnectArgs {
    /// Sender id: the numeric project number.
    #[arg(long, value_name = "ID")]
    sender_id: String,
    /// Read the server key from FILE instead of the GCM_API_KEY environment variable.
    #[arg(long, value_name = "FILE")]
    api_key_file: Option<PathBuf>,
    /// CCS endpoint [default: fcm-xmpp.googleapis.com:5235].
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_endpoint)]
    endpoint: Option<Endpoint>,
    /// Use the test endpoint, fcm-xmpp.googleapis.com:5236.
    #[arg(long, conflicts_with = "endpoint")]
    test_endpoint: bool,
    /// TLS name to verify [default: the endpoint host].
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
    /// Also trust the CA certificate(s) in this PEM file (e.g. the one `gcm-ccs emulate` writes).
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
}

fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    Endpoint::parse(s).map_err(|e| e.to_string())
}

impl ConnectArgs {
    /// A client configuration from the options, the key file or environment, and the CA file.
    pub fn config(&self) -> Result<Config, Failure> {
        let mut cfg = Config::new(Credentials::new(&self.sender_id, self.server_key()?));
        cfg.endpoint = match (&self.endpoint, self.test_endpoint) {
            (Some(e), _) => e.clone(),
            (None, true) => Endpoint::Test,
            (None, false) => Endpoint::Production,
        };
        cfg.server_name.clone_from(&self.server_name);
        if let Some(path) = &self.ca_file {
            let pem = read_file(path, "--ca-file")?;
            cfg.trust
                .add_pem(&pem)
                .map_err(|e| Failure::usage(format!("--ca-file {}: {e}", path.display())))?;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn server_key(&self) -> Result<String, Failure> {
        let key = match &self.api_key_file {
            Some(path) => String::from_utf8(read_file(path, "--api-key-file")?)
                .map_err(|_| Failure::usage(format!("{} is not text", path.display())))?,
            None => std::env::var(KEY_ENV).map_err(|_| {
                Failure::usage(format!(
                    "no server key: set {KEY_ENV} or pass --api-key-file FILE"
                ))
            })?,
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(Failure::usage("the server key is empty"));
        }
        Ok(key.to_owned())
    }
}

/// Reads a whole file named by option `option`, with an error that says which.
pub fn read_file(path: &Path, option: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path)
        .map_err(|e| Failure::usage(format!("cannot read {option} {}: {e}", path.display())))
}

/// True for the `-` that means stdin or stdout.
pub fn is_dash(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// SIGINT (Ctrl-C) and, on Unix, SIGTERM; each [`Interrupts::recv`] waits for the next one.
pub struct Interrupts {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Interrupts {
    /// Starts listening; from now on these signals no longer kill the process.
    pub fn new() -> Result<Self, Failure> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen = |kind| {
                signal(kind).map_err(|e| Failure::failed(format!("cannot handle signals: {e}")))
            };
            Ok(Interrupts {
                int: listen(SignalKind::interrupt())?,
                term: listen(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Interrupts {})
    }

    /// Waits for the next interrupt.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
