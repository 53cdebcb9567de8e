//! What the client subcommands share: connection options, the server key and payload
//! options, failures with their exit codes, and interrupt handling.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gcm_ccs::{Config, ConnectError, Credentials, Endpoint, HttpConfig, HttpError, Trust};
use serde_json::{Map, Value};

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

impl From<HttpError> for Failure {
    fn from(e: HttpError) -> Self {
        let code = match e {
            HttpError::Unauthorized(_) => exit::AUTH,
            _ => exit::FAILED,
        };
        Failure {
            code,
            message: e.to_string(),
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
            ConnectError::Certificate { .. } => (
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

/// The server key and the trusted CAs: shared by `send`, `stream` and `http`.
#[derive(Debug, clap::Args)]
pub struct AuthArgs {
    /// Read the server key from FILE instead of the GCM_API_KEY environment variable.
    #[arg(long, value_name = "FILE", env = "GCM_CCS_API_KEY_FILE")]
    api_key_file: Option<PathBuf>,
    /// Also trust the CA certificate(s) in this PEM file (e.g. the one `gcm-ccs emulate` writes).
    #[arg(long, value_name = "PEM", env = "GCM_CCS_CA_FILE")]
    ca_file: Option<PathBuf>,
}

impl AuthArgs {
    /// The server key, from `--api-key-file` or the environment, trimmed.
    pub fn server_key(&self) -> Result<String, Failure> {
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

    /// Whether a server key is given at all (a file, or the environment variable).
    pub fn names_a_key(&self) -> bool {
        self.api_key_file.is_some() || std::env::var_os(KEY_ENV).is_some()
    }

    /// The default roots plus `--ca-file`.
    pub fn trust(&self) -> Result<Trust, Failure> {
        trust(self.ca_file.as_deref())
    }

    /// An HTTP sender configuration for `url` (`None`: FCM's legacy endpoint).
    pub fn http_config(&self, url: Option<&str>) -> Result<HttpConfig, Failure> {
        let mut cfg = HttpConfig::new(self.server_key()?);
        if let Some(url) = url {
            url.clone_into(&mut cfg.url);
        }
        cfg.trust = self.trust()?;
        Ok(cfg)
    }
}

/// Where CCS is and who we are there: shared by `send` and `stream`.
#[derive(Debug, clap::Args)]
pub struct XmppArgs {
    /// Sender id: the numeric project number (needed for XMPP).
    #[arg(long, value_name = "ID", env = "GCM_CCS_SENDER_ID")]
    sender_id: Option<String>,
    /// CCS endpoint [default: fcm-xmpp.googleapis.com:5235].
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_endpoint, env = "GCM_CCS_ENDPOINT")]
    endpoint: Option<Endpoint>,
    /// Use the test endpoint, fcm-xmpp.googleapis.com:5236.
    #[arg(long, conflicts_with = "endpoint", env = "GCM_CCS_TEST_ENDPOINT")]
    test_endpoint: bool,
    /// TLS name to verify [default: the endpoint host].
    #[arg(long, value_name = "NAME", env = "GCM_CCS_SERVER_NAME")]
    server_name: Option<String>,
    /// Limit for the TCP connect plus TLS handshake, and for each XMPP negotiation step.
    #[arg(long, value_name = "SECS", default_value_t = 10, env = "GCM_CCS_CONNECT_TIMEOUT",
          value_parser = clap::value_parser!(u64).range(1..))]
    connect_timeout: u64,
    /// How long the first connection is retried after failures that may pass (refused, reset,
    /// timed out, not TLS, protocol errors); a refused key or certificate ends the run at once
    /// [default: --unavailable-after].
    #[arg(long, value_name = "SECS", env = "GCM_CCS_START_BUDGET")]
    start_budget: Option<u64>,
    /// With no connection up for this long, messages waiting for the stream fail (with
    /// --via auto: go over HTTP instead).
    #[arg(long, value_name = "SECS", default_value_t = 30, env = "GCM_CCS_UNAVAILABLE_AFTER",
          value_parser = clap::value_parser!(u64).range(1..))]
    unavailable_after: u64,
    #[command(flatten)]
    pub auth: AuthArgs,
}

fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    Endpoint::parse(s).map_err(|e| e.to_string())
}

impl XmppArgs {
    /// Whether the options name a CCS sender: a sender id or a server key.
    pub fn names_a_sender(&self) -> bool {
        self.sender_id.is_some() || self.auth.names_a_key()
    }

    /// A client configuration from the options, the key and the CA file.
    pub fn config(&self) -> Result<Config, Failure> {
        let sender_id = self.sender_id.as_deref().ok_or_else(|| {
            Failure::usage("--sender-id ID is required for XMPP (the numeric project number)")
        })?;
        let mut cfg = Config::new(Credentials::new(sender_id, self.auth.server_key()?));
        cfg.endpoint = match (&self.endpoint, self.test_endpoint) {
            (Some(e), _) => e.clone(),
            (None, true) => Endpoint::Test,
            (None, false) => Endpoint::Production,
        };
        cfg.server_name.clone_from(&self.server_name);
        cfg.trust = self.auth.trust()?;
        cfg.connect_timeout = Duration::from_secs(self.connect_timeout);
        cfg.handshake_timeout = cfg.connect_timeout;
        cfg.start_budget = self.start_budget.map(Duration::from_secs);
        cfg.reconnect.unavailable_after = Duration::from_secs(self.unavailable_after);
        cfg.validate()?;
        Ok(cfg)
    }
}

/// The default roots plus the CA certificate(s) of `--ca-file`, if given.
pub fn trust(ca_file: Option<&Path>) -> Result<Trust, Failure> {
    let mut trust = Trust::default();
    if let Some(path) = ca_file {
        trust
            .add_pem(&read_file(path, "--ca-file")?)
            .map_err(|e| Failure::usage(format!("--ca-file {}: {e}", path.display())))?;
    }
    Ok(trust)
}

/// The `data` and `notification` members given as JSON texts on the command line.
pub fn payload(
    data: Option<&str>,
    notification: Option<&str>,
) -> Result<Map<String, Value>, Failure> {
    let mut fields = Map::new();
    for (name, json) in [("data", data), ("notification", notification)] {
        if let Some(json) = json {
            let value = serde_json::from_str(json)
                .map_err(|e| Failure::usage(format!("--{name} is not JSON: {e}")))?;
            fields.insert(name.into(), value);
        }
    }
    Ok(fields)
}

/// Reads a whole file named by option `option`, with an error that says which.
pub fn read_file(path: &Path, option: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path)
        .map_err(|e| Failure::usage(format!("cannot read {option} {}: {e}", path.display())))
}

/// The bytes of a file named by option `option`, or of stdin for `-`.
pub async fn read_input(path: &Path, option: &str) -> Result<Vec<u8>, Failure> {
    if !is_dash(path) {
        return read_file(path, option);
    }
    let mut bytes = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut bytes)
        .await
        .map_err(|e| Failure::usage(format!("cannot read stdin for {option}: {e}")))?;
    Ok(bytes)
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
