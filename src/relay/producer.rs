//! The producer side: appending messages to the outbox, pipelined.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisResult};

use super::config::RedisTarget;
use super::error::{RelayError, is_auth};

/// Appends messages to a relay's outbox stream.
pub struct Producer {
    conn: MultiplexedConnection,
    stream: String,
    target: String,
}

impl Producer {
    /// Connects to `target`; `stream` is the outbox (`gcm:outbox` by default in the relay).
    pub async fn connect(target: &RedisTarget, stream: &str) -> Result<Producer, RelayError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(30)));
        let conn = target
            .client()?
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| failure(target, &e))?;
        Ok(Producer {
            conn,
            stream: stream.to_owned(),
            target: target.to_string(),
        })
    }

    /// Appends one entry per message (field `message`: one line of the `gcm-ccs send` input
    /// schema) in one round trip; returns the entry ids in order.
    pub async fn enqueue<S: AsRef<str>>(
        &mut self,
        messages: &[S],
    ) -> Result<Vec<String>, RelayError> {
        let mut pipe = redis::pipe();
        for message in messages {
            pipe.cmd("XADD")
                .arg(&self.stream)
                .arg("*")
                .arg("message")
                .arg(message.as_ref());
        }
        let ids: RedisResult<Vec<String>> = pipe.query_async(&mut self.conn).await;
        ids.map_err(|e| RelayError::Unavailable {
            target: self.target.clone(),
            reason: e.to_string(),
        })
    }
}

fn failure(target: &RedisTarget, e: &redis::RedisError) -> RelayError {
    if is_auth(e) {
        RelayError::Auth {
            target: target.to_string(),
            reason: e.to_string(),
        }
    } else {
        RelayError::Unavailable {
            target: target.to_string(),
            reason: e.to_string(),
        }
    }
}
