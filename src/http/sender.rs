//! [`HttpSender`]: one POST per send over a pooled hyper client (HTTP/1.1 keep-alive, HTTP/2
//! when the server offers it via ALPN), with the retry rules of http-legacy §7.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Request, Uri};
use tokio::sync::Semaphore;
use tracing::debug;

use super::client::{self, HttpsClient, error_chain, is_tls_failure};
use super::config::HttpConfig;
use super::error::GroupOutcome;
use super::error::HttpError;
use super::response::{Reply, TokenResult};
use super::retry::Schedule;
use super::{request, retry_after};
use crate::error::{ConnectError, SendError};
use crate::inbound::{Ack, Nack, NackCode};
use crate::message::Message;

/// Largest response body read (1000 results take about 100 KiB).
const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// Sends messages through the legacy HTTP API (`Authorization: key=…`). Clone it freely: clones
/// share the connection pool and the concurrency bound.
///
/// Over HTTP, [`Ack::message_id`] is the id the server assigned (e.g. `0:1481311234567890%…`;
/// for topics and conditions the decimal text of the numeric id, empty for device groups),
/// not the message's own id, which HTTP does not carry. A per-token error becomes
/// [`SendError::Nacked`] with [`NackCode::from_http_error`] of the code and the code itself as
/// the description; [`Nack::message_id`] is `None` and [`Nack::from`] is the target.
#[derive(Clone)]
pub struct HttpSender {
    inner: Arc<Inner>,
}

struct Inner {
    config: HttpConfig,
    uri: Uri,
    authorization: HeaderValue,
    client: HttpsClient,
    permits: Semaphore,
}

impl std::fmt::Debug for HttpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSender")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// The typed outcome of [`HttpSender::send_detailed`], one variant per response shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A registration token: the ack and the request's 64-bit `multicast_id`.
    Token {
        /// The server's acceptance (its message id, a canonical token if any).
        ack: Ack,
        /// The request's id.
        multicast_id: i64,
    },
    /// A topic or condition: the 64-bit `message_id` of the accepted fan-out.
    Topic {
        /// The id of the fan-out.
        message_id: i64,
    },
    /// A device group (`to` = notification key).
    Group(GroupOutcome),
}

/// A failed attempt, and whether another may succeed.
pub(super) struct Failed {
    pub error: SendError,
    pub retryable: bool,
    /// The server's `Retry-After`, a floor for the next wait.
    pub retry_after: Option<Duration>,
}

impl Failed {
    pub(super) fn fatal(error: impl Into<SendError>) -> Failed {
        Failed {
            error: error.into(),
            retryable: false,
            retry_after: None,
        }
    }

    fn transient(error: impl Into<SendError>, retry_after: Option<Duration>) -> Failed {
        Failed {
            error: error.into(),
            retryable: true,
            retry_after,
        }
    }
}

impl HttpSender {
    /// Checks the configuration and builds the client; connects lazily, on the first send.
    pub fn new(config: HttpConfig) -> Result<HttpSender, ConnectError> {
        let bad = |m: String| Err(ConnectError::Config(m));
        let uri: Uri = match config.url.parse() {
            Ok(uri) => uri,
            Err(e) => return bad(format!("HTTP URL `{}`: {e}", config.url)),
        };
        if uri.scheme_str() != Some("https") || uri.host().is_none() {
            return bad(format!(
                "HTTP URL `{}` must be https://HOST/…: the server key must not travel in clear text",
                config.url
            ));
        }
        if config.max_concurrent_requests == 0 || config.retry.max_attempts == 0 {
            return bad("max_concurrent_requests and retry.max_attempts must be at least 1".into());
        }
        let Ok(mut authorization) =
            HeaderValue::try_from(format!("key={}", config.server_key.expose()))
        else {
            return bad("the server key contains characters an HTTP header cannot carry".into());
        };
        authorization.set_sensitive(true);

        let client = client::build(
            &config.trust,
            config.connect_timeout,
            config.pool_idle_timeout,
        )?;
        Ok(HttpSender {
            inner: Arc::new(Inner {
                permits: Semaphore::new(config.max_concurrent_requests),
                config,
                uri,
                authorization,
                client,
            }),
        })
    }

    /// The configuration this sender was built with.
    pub fn config(&self) -> &HttpConfig {
        &self.inner.config
    }

    /// Sends `msg` to its one target and waits for the outcome, retrying transient failures.
    /// The same shape as [`Client::send`](crate::Client::send); see the type's docs for what
    /// the [`Ack`] holds over HTTP. A device group with failed members is an error
    /// ([`HttpError::GroupPartialFailure`]); [`HttpSender::send_detailed`] has every shape.
    pub async fn send(&self, msg: &Message) -> Result<Ack, SendError> {
        let ack = |message_id: String| Ack {
            message_id,
            from: Some(msg.target_str().to_owned()),
            registration_id: None,
        };
        match self.send_detailed(msg).await? {
            Delivery::Token { ack, .. } => Ok(ack),
            Delivery::Topic { message_id } => Ok(ack(message_id.to_string())),
            Delivery::Group(g) if g.failure == 0 => Ok(ack(String::new())),
            Delivery::Group(g) => Err(HttpError::GroupPartialFailure(g).into()),
        }
    }

    /// Like [`HttpSender::send`], with the outcome typed by response shape.
    pub async fn send_detailed(&self, msg: &Message) -> Result<Delivery, SendError> {
        let body = request::encode(&request::fields(msg, false));
        let target = msg.target_str();
        let mut schedule = Schedule::new(&self.inner.config.retry);
        loop {
            let failed = match self
                .post(body.clone())
                .await
                .and_then(|reply| delivery(target, reply))
            {
                Ok(delivery) => return Ok(delivery),
                Err(failed) if failed.retryable => failed,
                Err(failed) => return Err(failed.error),
            };
            match schedule.next_delay(failed.retry_after) {
                Some(delay) => {
                    debug!(to = target, attempts = schedule.attempts(), ?delay, error = %failed.error, "HTTP send: retrying");
                    tokio::time::sleep(delay).await;
                }
                None => return Err(failed.error),
            }
        }
    }

    /// One POST of a JSON `body`, bounded by the request timeout and the concurrency limit.
    pub(super) async fn post(&self, body: Bytes) -> Result<Reply, Failed> {
        let inner = &*self.inner;
        let Ok(_permit) = inner.permits.acquire().await else {
            unreachable!("the semaphore is never closed")
        };
        let request = Request::post(inner.uri.clone())
            .header(AUTHORIZATION, inner.authorization.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| Failed::fatal(HttpError::Transport(e.to_string())))?;
        let exchange = async {
            let response = inner.client.request(request).await.map_err(|e| {
                let error = HttpError::Transport(error_chain(&e));
                if is_tls_failure(&e) {
                    Failed::fatal(error)
                } else {
                    Failed::transient(error, None)
                }
            })?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after::parse(v, SystemTime::now()));
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<LengthLimitError>() {
                        Failed::fatal(HttpError::InvalidResponse(format!(
                            "response body larger than {MAX_RESPONSE_BYTES} bytes"
                        )))
                    } else {
                        Failed::transient(HttpError::Transport(error_chain(&*e)), None)
                    }
                })?
                .to_bytes();
            Ok((status, retry_after, body))
        };
        let timeout = inner.config.request_timeout;
        let (status, retry_after, body) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| Failed::transient(SendError::Timeout(timeout), None))??;
        Reply::from_response(status.as_u16(), &body).map_err(|e| {
            if status.is_server_error() {
                Failed::transient(e, retry_after)
            } else {
                Failed::fatal(e)
            }
        })
    }
}

/// The outcome of a single-target send from its reply.
fn delivery(target: &str, reply: Reply) -> Result<Delivery, Failed> {
    match reply {
        reply @ Reply::Tokens { .. } => {
            let (multicast_id, results) = reply.token_results(1).map_err(Failed::fatal)?;
            let [result] = <[TokenResult; 1]>::try_from(results).expect("one result");
            token_outcome(target, result).map(|ack| Delivery::Token { ack, multicast_id })
        }
        Reply::Topic(Ok(message_id)) => Ok(Delivery::Topic { message_id }),
        Reply::Topic(Err(code)) => Err(refused(target, code)),
        Reply::Group(outcome) => Ok(Delivery::Group(outcome)),
    }
}

/// The ack, or the refusal, for `token`'s result.
pub(super) fn token_outcome(token: &str, result: TokenResult) -> Result<Ack, Failed> {
    match result {
        TokenResult::Sent {
            message_id,
            registration_id,
        } => Ok(Ack {
            message_id,
            from: Some(token.to_owned()),
            registration_id,
        }),
        TokenResult::Failed(code) => Err(refused(token, code)),
    }
}

/// A per-target error `code`. Only `Unavailable` and `InternalServerError` are retried
/// (http-legacy §6: unknown codes are final, unlike unknown XMPP nack codes).
fn refused(target: &str, code: String) -> Failed {
    let retryable = matches!(code.as_str(), "Unavailable" | "InternalServerError");
    let error = SendError::Nacked(Nack {
        message_id: None,
        from: Some(target.to_owned()),
        code: NackCode::from_http_error(&code),
        description: Some(code),
    });
    Failed {
        error,
        retryable,
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_codes_are_retried() {
        for (code, retry) in [
            ("Unavailable", true),
            ("InternalServerError", true),
            ("NotRegistered", false),
            ("InvalidRegistration", false),
            ("MismatchSenderId", false),
            ("DeviceMessageRateExceeded", false),
            ("BrandNewCode", false),
        ] {
            let f = refused("tok", code.into());
            assert_eq!(f.retryable, retry, "{code}");
            let SendError::Nacked(n) = f.error else {
                panic!("{code}: not a nack")
            };
            assert_eq!(n.code, NackCode::from_http_error(code));
            assert_eq!(n.description.as_deref(), Some(code));
            assert_eq!(n.from.as_deref(), Some("tok"));
        }
    }

    #[test]
    fn config_errors_are_clear_and_never_show_the_key() {
        let key = "AIzaSecretKey0123456789";
        let mut cfg = HttpConfig::new(key);
        cfg.url = "http://fcm.googleapis.com/fcm/send".into();
        let e = HttpSender::new(cfg.clone()).unwrap_err().to_string();
        assert!(e.contains("https") && !e.contains(key), "{e}");
        cfg.url = super::super::FCM_URL.into();
        cfg.server_key = crate::config::ServerKey::new(format!("{key}\n"));
        let e = HttpSender::new(cfg).unwrap_err().to_string();
        assert!(e.contains("header") && !e.contains(key), "{e}");
    }
}
