//! The stream client's configuration: endpoint, credentials, flow control, timeouts and the
//! reconnect policy in one place.

use std::fmt;
use std::time::Duration;

use super::transcript::Transcript;
use crate::config::{RetryPolicy, ServerKey, Trust};
use crate::error::ConnectError;
use crate::wire::Limits;

/// The domain of the SASL authcid and of bound JIDs, whatever host is connected to.
pub const GCM_DOMAIN: &str = "gcm.googleapis.com";
/// The most unacked downstream messages CCS allows per connection.
pub const MAX_WINDOW: usize = 100;
/// The most parallel connections CCS allows per sender id.
pub const MAX_CONNECTIONS: usize = 1000;

/// Sender id (numeric project number) and server key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The numeric project number.
    pub sender_id: String,
    /// The server key; never printed.
    pub server_key: ServerKey,
}

impl Credentials {
    /// Credentials for `sender_id` with `server_key`.
    pub fn new(sender_id: impl Into<String>, server_key: impl Into<String>) -> Self {
        Credentials {
            sender_id: sender_id.into(),
            server_key: ServerKey::new(server_key),
        }
    }

    /// The SASL PLAIN authcid: always `<SENDER_ID>@gcm.googleapis.com`, never derived from the
    /// connect host (that yields `not-authorized`).
    pub fn authcid(&self) -> String {
        format!("{}@{GCM_DOMAIN}", self.sender_id)
    }
}

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `fcm-xmpp.googleapis.com:5235`.
    Production,
    /// `fcm-xmpp.googleapis.com:5236`.
    Test,
    /// Any host and port, e.g. a local emulator.
    Custom {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
}

impl Endpoint {
    /// Host name to connect to.
    pub fn host(&self) -> &str {
        match self {
            Endpoint::Production | Endpoint::Test => "fcm-xmpp.googleapis.com",
            Endpoint::Custom { host, .. } => host,
        }
    }

    /// TCP port.
    pub fn port(&self) -> u16 {
        match self {
            Endpoint::Production => 5235,
            Endpoint::Test => 5236,
            Endpoint::Custom { port, .. } => *port,
        }
    }

    /// Parses `HOST:PORT` (IPv6 as `[::1]:5235`).
    pub fn parse(s: &str) -> Result<Endpoint, ConnectError> {
        let bad = || ConnectError::Config(format!("endpoint `{s}` is not HOST:PORT"));
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port = port.parse().map_err(|_| bad())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Endpoint::Custom {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host().contains(':') {
            write!(f, "[{}]:{}", self.host(), self.port())
        } else {
            write!(f, "{}:{}", self.host(), self.port())
        }
    }
}

/// How the pool re-establishes connections.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectPolicy {
    /// First backoff after a failed connect (TCP, TLS, handshake).
    pub initial_backoff: Duration,
    /// Cap of the connect backoff.
    pub max_backoff: Duration,
    /// Delay before retrying after `not-authorized` (a configuration error).
    pub auth_failure_delay: Duration,
    /// Random delay added before replacing a connection that was lost after authenticating.
    pub reconnect_jitter: Duration,
    /// With no usable connection for this long, queued messages fail with
    /// [`SendError::Unavailable`](crate::SendError::Unavailable) instead of waiting
    /// (an auth failure fails them at once).
    pub unavailable_after: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            auth_failure_delay: Duration::from_secs(60),
            reconnect_jitter: Duration::from_millis(250),
            unavailable_after: Duration::from_secs(30),
        }
    }
}

/// Everything a [`Client`](crate::Client) needs. Start from [`Config::new`] and adjust fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Sender id and server key.
    pub credentials: Credentials,
    /// Where to connect.
    pub endpoint: Endpoint,
    /// TLS server name to verify; defaults to the endpoint host.
    pub server_name: Option<String>,
    /// The `to` of our stream header (CCS expects `gcm.googleapis.com`).
    pub stream_to: String,
    /// Requested resource for binding (the server decorates it).
    pub resource: Option<String>,
    /// Which certificates to trust.
    pub trust: Trust,
    /// Connections kept open (1..=1000). With draining connections still open, at most twice
    /// this many are open at once.
    pub connections: usize,
    /// Unacked downstream messages per connection (1..=100).
    pub window: usize,
    /// Submissions accepted ahead of the window before `submit` waits (backpressure).
    pub queue_capacity: usize,
    /// TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// Each XMPP negotiation step (header, features, auth, bind, session).
    pub handshake_timeout: Duration,
    /// A message without ack or nack this long after it was written is retried (or failed).
    /// Also how long a draining connection may stay open before we close it ourselves.
    pub ack_timeout: Duration,
    /// XEP-0199 ping interval; a connection silent for two intervals is declared dead.
    pub ping_interval: Duration,
    /// Graceful close: how long to wait for outstanding acks.
    pub close_timeout: Duration,
    /// Per-message retries.
    pub retry: RetryPolicy,
    /// How connections are re-established.
    pub reconnect: ReconnectPolicy,
    /// Framing limits applied to everything the server sends.
    pub limits: Limits,
    /// Buffered lifecycle events per subscriber before the oldest are dropped.
    pub event_capacity: usize,
    /// Upstream messages and receipts waiting in [`Incoming`](crate::Incoming) before the
    /// connections that have more stop reading.
    pub incoming_capacity: usize,
    /// How long [`Client::connect`](crate::Client::connect) keeps retrying the first
    /// connection (`None`: [`ReconnectPolicy::unavailable_after`]).
    pub start_budget: Option<Duration>,
    /// Receives the raw traffic of every connection, credential redacted (`None`: no cost).
    pub transcript: Option<Transcript>,
}

impl Config {
    /// Defaults for the production endpoint.
    pub fn new(credentials: Credentials) -> Self {
        Config {
            credentials,
            endpoint: Endpoint::Production,
            server_name: None,
            stream_to: GCM_DOMAIN.to_owned(),
            resource: None,
            trust: Trust::default(),
            connections: 1,
            window: MAX_WINDOW,
            queue_capacity: 1024,
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(60),
            ping_interval: Duration::from_secs(20),
            close_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            reconnect: ReconnectPolicy::default(),
            limits: Limits::default(),
            event_capacity: 1024,
            incoming_capacity: 1024,
            start_budget: None,
            transcript: None,
        }
    }

    /// The TLS name to verify.
    pub fn tls_server_name(&self) -> &str {
        self.server_name
            .as_deref()
            .unwrap_or_else(|| self.endpoint.host())
    }

    /// How long the first connection is retried: [`Config::start_budget`] or else
    /// `reconnect.unavailable_after`.
    pub fn startup_budget(&self) -> Duration {
        self.start_budget
            .unwrap_or(self.reconnect.unavailable_after)
    }

    /// Checks ranges; called by `Client::connect`.
    pub fn validate(&self) -> Result<(), ConnectError> {
        let bad = |m: String| Err(ConnectError::Config(m));
        if !(1..=MAX_WINDOW).contains(&self.window) {
            return bad(format!("window {} must be 1..={MAX_WINDOW}", self.window));
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.connections) {
            return bad(format!(
                "connections {} must be 1..={MAX_CONNECTIONS}",
                self.connections
            ));
        }
        if self.credentials.sender_id.is_empty()
            || !self
                .credentials
                .sender_id
                .bytes()
                .all(|b| b.is_ascii_digit())
        {
            return bad(format!(
                "sender id `{}` must be the numeric project number",
                self.credentials.sender_id
            ));
        }
        if self.retry.max_attempts == 0 {
            return bad("retry.max_attempts must be at least 1".into());
        }
        if self.queue_capacity == 0 || self.event_capacity == 0 || self.incoming_capacity == 0 {
            return bad(
                "queue_capacity, event_capacity and incoming_capacity must be at least 1".into(),
            );
        }
        for (name, value) in [
            ("ping_interval", self.ping_interval),
            ("ack_timeout", self.ack_timeout),
        ] {
            if value.is_zero() {
                return bad(format!("{name} must be longer than zero"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_never_formatted() {
        let cfg = Config::new(Credentials::new("123", "AIzaSecretKey"));
        let shown = format!(
            "{cfg:?} {} {:?}",
            cfg.credentials.server_key, cfg.credentials
        );
        assert!(!shown.contains("AIzaSecretKey"), "{shown}");
        assert!(shown.contains("***"));
    }

    #[test]
    fn authcid_domain_is_fixed() {
        let mut cfg = Config::new(Credentials::new("123456789012", "k"));
        cfg.endpoint = Endpoint::Test;
        assert_eq!(cfg.credentials.authcid(), "123456789012@gcm.googleapis.com");
    }

    #[test]
    fn endpoint_parsing() {
        assert_eq!(
            Endpoint::parse("127.0.0.1:5236").unwrap(),
            Endpoint::Custom {
                host: "127.0.0.1".into(),
                port: 5236
            }
        );
        assert_eq!(Endpoint::parse("[::1]:1").unwrap().host(), "::1");
        assert_eq!(Endpoint::parse("[::1]:1").unwrap().to_string(), "[::1]:1");
        assert!(Endpoint::parse("nohost").is_err());
        assert!(Endpoint::parse(":5235").is_err());
        assert!(Endpoint::parse("h:99999").is_err());
        assert_eq!(Endpoint::Test.to_string(), "fcm-xmpp.googleapis.com:5236");
    }

    #[test]
    fn validation_ranges() {
        let mut cfg = Config::new(Credentials::new("123", "k"));
        assert!(cfg.validate().is_ok());
        cfg.window = 101;
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("window 101")
        );
        cfg.window = 100;
        cfg.connections = 0;
        assert!(cfg.validate().is_err());
        cfg.connections = 1;
        cfg.credentials.sender_id = "abc".into();
        assert!(cfg.validate().unwrap_err().to_string().contains("numeric"));
        cfg.credentials.sender_id = "123".into();
        for zero in [
            |c: &mut Config| c.ping_interval = Duration::ZERO,
            |c: &mut Config| c.ack_timeout = Duration::ZERO,
        ] {
            let mut c = cfg.clone();
            zero(&mut c);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains("longer than zero"), "{err}");
        }
    }
}
