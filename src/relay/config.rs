//! What a relay reads, writes and waits for: the Redis server, the stream names, the limits.

use std::fmt;
use std::time::Duration;

use redis::IntoConnectionInfo;

use super::error::RelayError;

/// The Redis server: `redis://`, `rediss://` (TLS, verified against the system roots or
/// [`with_ca`](Self::with_ca)) or `unix://` URL, with the password from the URL or given
/// apart (`REDIS_PASSWORD` in the CLI). The password never appears in `Debug` or `Display`.
#[derive(Clone)]
pub struct RedisTarget {
    info: redis::ConnectionInfo,
    shown: String,
    /// PEM of the CA trusted for `rediss://` instead of the system roots.
    ca: Option<Vec<u8>>,
}

impl RedisTarget {
    /// Parses `url`; `password`, when given, replaces one in the URL.
    pub fn new(url: &str, password: Option<&str>) -> Result<RedisTarget, RelayError> {
        let shown = redact(url);
        let info = url.into_connection_info().map_err(|e| {
            RelayError::Config(format!(
                "--redis {shown}: {}",
                e.detail()
                    .unwrap_or("not a redis://, rediss:// or unix:// URL")
            ))
        })?;
        let info = match password {
            Some(p) if !p.is_empty() => {
                let settings = info.redis_settings().clone().set_password(p);
                info.set_redis_settings(settings)
            }
            _ => info,
        };
        Ok(RedisTarget {
            info,
            shown,
            ca: None,
        })
    }

    /// Trusts the CA certificate(s) in `pem` for a `rediss://` server, instead of the
    /// system roots (for a server with a private CA).
    pub fn with_ca(mut self, pem: Vec<u8>) -> Result<RedisTarget, RelayError> {
        if !matches!(self.info.addr(), redis::ConnectionAddr::TcpTls { .. }) {
            return Err(RelayError::Config(format!(
                "--redis {}: a CA file is for rediss:// URLs only",
                self.shown
            )));
        }
        self.ca = Some(pem);
        Ok(self)
    }

    pub(super) fn client(&self) -> Result<redis::Client, RelayError> {
        let client = match &self.ca {
            None => redis::Client::open(self.info.clone()),
            Some(pem) => redis::Client::build_with_tls(
                self.info.clone(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
        };
        client.map_err(|e| RelayError::Config(format!("--redis {}: {e}", self.shown)))
    }
}

impl fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RedisTarget").field(&self.shown).finish()
    }
}

/// The URL with any password in it replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or("", |(u, _)| u);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

/// How a relay runs. [`RelayConfig::new`] gives the documented defaults.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The Redis server.
    pub redis: RedisTarget,
    /// The stream producers append to (default `gcm:outbox`).
    pub stream: String,
    /// The consumer group (default `gcm-ccs`), created at ID `0` when missing.
    pub group: String,
    /// This process's consumer name: unique per process.
    pub consumer: String,
    /// One record per entry (default `gcm:results`).
    pub results: String,
    /// Approximate `MAXLEN` of the results stream (default 1 000 000).
    pub results_maxlen: usize,
    /// Poison and invalid entries, with the reason (default `gcm:dead`).
    pub dead: String,
    /// Upstream messages and receipts from CCS (default `gcm:inbox`).
    pub inbox: String,
    /// Entries idle this long on a consumer are taken over (default 120 s).
    pub claim_after: Duration,
    /// An entry delivered more often than this is dead-lettered (default 5).
    pub max_deliveries: u32,
    /// The `BLOCK` of each read (default 2 s).
    pub block: Duration,
    /// Entries between reading and recording at once (default 1000).
    pub capacity: usize,
    /// How long a stop waits for messages in flight (default 30 s).
    pub shutdown_timeout: Duration,
    /// How long Redis is retried at start before giving up (default 30 s).
    pub start_budget: Duration,
}

impl RelayConfig {
    /// The defaults, for `redis` and `consumer`.
    pub fn new(redis: RedisTarget, consumer: impl Into<String>) -> RelayConfig {
        RelayConfig {
            redis,
            stream: "gcm:outbox".into(),
            group: "gcm-ccs".into(),
            consumer: consumer.into(),
            results: "gcm:results".into(),
            results_maxlen: 1_000_000,
            dead: "gcm:dead".into(),
            inbox: "gcm:inbox".into(),
            claim_after: Duration::from_secs(120),
            max_deliveries: 5,
            block: Duration::from_secs(2),
            capacity: 1000,
            shutdown_timeout: Duration::from_secs(30),
            start_budget: Duration::from_secs(30),
        }
    }

    /// Refuses values the relay cannot work with.
    pub fn validate(&self) -> Result<(), RelayError> {
        let bad = |what: &str| Err(RelayError::Config(what.to_owned()));
        let names = [
            &self.stream,
            &self.group,
            &self.consumer,
            &self.results,
            &self.dead,
            &self.inbox,
        ];
        if names.iter().any(|n| n.is_empty()) {
            return bad("stream, group, consumer and result stream names must not be empty");
        }
        if self.stream == self.results || self.stream == self.dead || self.stream == self.inbox {
            return bad("the outbox stream must differ from the results, dead and inbox streams");
        }
        if self.claim_after < Duration::from_secs(1) {
            return bad("--claim-after must be at least 1 second");
        }
        if self.block.is_zero() || self.block >= self.claim_after {
            return bad("the read block time must be above 0 and below --claim-after");
        }
        if self.capacity == 0 || self.max_deliveries == 0 || self.results_maxlen == 0 {
            return bad("capacity, --max-deliveries and --results-maxlen must be at least 1");
        }
        Ok(())
    }

    /// How often a live consumer refreshes the idle time of the entries it holds: well
    /// inside the claim threshold.
    pub(super) fn refresh_every(&self) -> Duration {
        self.claim_after / 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_never_shown() {
        for url in [
            "redis://:s3cret@127.0.0.1:6379/0",
            "redis://user:s3cret@127.0.0.1:6379",
            "rediss://default:s3cret@host:6380",
        ] {
            let target = RedisTarget::new(url, None).unwrap();
            let shown = format!("{target} {target:?}");
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("***"), "{shown}");
        }
        let target = RedisTarget::new("unix:///tmp/r.sock", Some("s3cret")).unwrap();
        assert_eq!(target.info.redis_settings().password(), Some("s3cret"));
        assert!(!format!("{target:?}").contains("s3cret"));
        let bad = RedisTarget::new("http://:s3cret@x", None).unwrap_err();
        assert!(!bad.to_string().contains("s3cret"), "{bad}");
    }

    #[test]
    fn validation() {
        let target = RedisTarget::new("redis://127.0.0.1", None).unwrap();
        let mut cfg = RelayConfig::new(target, "c1");
        cfg.validate().unwrap();
        cfg.results = cfg.stream.clone();
        assert!(cfg.validate().is_err());
        let mut cfg = RelayConfig::new(cfg.redis.clone(), "c1");
        cfg.block = cfg.claim_after;
        assert!(cfg.validate().is_err());
        cfg.block = Duration::from_secs(1);
        cfg.consumer.clear();
        assert!(cfg.validate().is_err());
    }
}
