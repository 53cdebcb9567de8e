//! The Redis options shared by `relay` and `enqueue`.

use std::path::PathBuf;

use gcm_ccs::relay::{RedisTarget, RelayError};

use super::common::{Failure, read_file};
use super::exit;

/// Where the queue is.
#[derive(Debug, clap::Args)]
pub struct RedisArgs {
    /// The Redis server: redis://[user:password@]host:port[/db], rediss://… (TLS) or
    /// unix:///path/to/redis.sock. A password may also come from REDIS_PASSWORD.
    #[arg(
        long,
        value_name = "URL",
        env = "GCM_CCS_REDIS_URL",
        hide_env_values = true
    )]
    redis: String,
    /// For rediss://: trust the CA certificate(s) in this PEM file instead of the system roots.
    #[arg(long, value_name = "PEM", env = "GCM_CCS_REDIS_CA_FILE")]
    redis_ca_file: Option<PathBuf>,
    /// The outbox stream producers append to and relays read.
    #[arg(
        long,
        value_name = "KEY",
        default_value = "gcm:outbox",
        env = "GCM_CCS_STREAM"
    )]
    pub stream: String,
}

impl RedisArgs {
    /// The server, with `REDIS_PASSWORD` when it is set.
    pub fn target(&self) -> Result<RedisTarget, Failure> {
        let password = std::env::var("REDIS_PASSWORD").ok();
        let target = RedisTarget::new(&self.redis, password.as_deref())?;
        Ok(match &self.redis_ca_file {
            Some(path) => target.with_ca(read_file(path, "--redis-ca-file")?)?,
            None => target,
        })
    }
}

impl From<RelayError> for Failure {
    fn from(e: RelayError) -> Self {
        let code = match &e {
            RelayError::KeyRefused => exit::AUTH,
            _ => exit::USAGE,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}
