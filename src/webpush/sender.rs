//! [`WebPushSender`]: one POST per push to the subscription's endpoint, over the crate's
//! pooled hyper client (HTTP/2 where the push service offers it, so one connection per
//! origin carries every push to it), with a per-origin concurrency bound and the retry rules
//! of webpush spec §3.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper::header::{AUTHORIZATION, HeaderValue, LOCATION, RETRY_AFTER};
use tokio::sync::Semaphore;
use tracing::debug;

use super::config::WebPushConfig;
use super::encrypt::encrypt;
use super::error::WebPushError;
use super::outcome::{Accepted, Answer, Response, classify};
use super::request::Push;
use super::subscription::Subscription;
use super::vapid::VapidSigner;
use crate::http::client::{self, HttpsClient, error_chain, is_tls_failure};
use crate::http::retry::Schedule;
use crate::http::{body_text, retry_after};

/// Largest response body read; push services answer with a short text or JSON.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Sends pushes to browser subscriptions. Clone it freely: clones share the connections,
/// the VAPID JWT cache and the per-origin bounds.
#[derive(Clone)]
pub struct WebPushSender {
    inner: Arc<Inner>,
}

struct Inner {
    config: WebPushConfig,
    vapid: VapidSigner,
    client: HttpsClient,
    /// One bound per push-service origin (there are a handful of them).
    origins: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl std::fmt::Debug for WebPushSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebPushSender")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl WebPushSender {
    /// Checks the configuration (subject, limits, trusted roots) and builds the client;
    /// connects lazily, on the first push to each origin.
    pub fn new(config: WebPushConfig) -> Result<WebPushSender, WebPushError> {
        let vapid = VapidSigner::new(config.vapid_key.clone(), config.subject.clone())
            .map_err(|e| WebPushError::Config(e.to_string()))?;
        if config.max_concurrent_per_origin == 0 || config.retry.max_attempts == 0 {
            return Err(WebPushError::Config(
                "max_concurrent_per_origin and retry.max_attempts must be at least 1".into(),
            ));
        }
        let client = client::build(
            &config.trust,
            config.connect_timeout,
            config.pool_idle_timeout,
        )
        .map_err(|e| WebPushError::Config(e.to_string()))?;
        Ok(WebPushSender {
            inner: Arc::new(Inner {
                config,
                vapid,
                client,
                origins: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The configuration this sender was built with.
    pub fn config(&self) -> &WebPushConfig {
        &self.inner.config
    }

    /// Encrypts `push` for `subscription`, posts it, and waits for the push service's
    /// answer, retrying 429, 5xx, transport failures and timeouts per the retry policy.
    /// The body is encrypted once; retries resend the same bytes.
    pub async fn send(
        &self,
        subscription: &Subscription,
        push: &Push,
    ) -> Result<Accepted, WebPushError> {
        let body = match push.payload() {
            Some(plaintext) => Some(Bytes::from(encrypt(subscription, plaintext)?)),
            None => None,
        };
        let mut schedule = Schedule::new(&self.inner.config.retry);
        loop {
            let (error, floor) = match self.post(subscription, push, body.clone()).await {
                Answer::Accepted(accepted) => {
                    return Ok(Accepted {
                        attempts: schedule.attempts() + 1,
                        ..accepted
                    });
                }
                Answer::Final(error) => return Err(error),
                Answer::Retry(error, floor) => (error, floor),
            };
            match schedule.next_delay(floor) {
                Some(delay) => {
                    debug!(endpoint = subscription.endpoint(), attempts = schedule.attempts(), ?delay, %error, "web push: retrying");
                    tokio::time::sleep(delay).await;
                }
                None => return Err(error),
            }
        }
    }

    /// The concurrency bound of `origin`.
    fn permits(&self, origin: &str) -> Arc<Semaphore> {
        let mut origins = self.inner.origins.lock().unwrap_or_else(|p| p.into_inner());
        origins
            .entry(origin.to_owned())
            .or_insert_with(|| {
                Arc::new(Semaphore::new(self.inner.config.max_concurrent_per_origin))
            })
            .clone()
    }

    /// One POST, bounded by the request timeout and the origin's concurrency limit.
    async fn post(&self, subscription: &Subscription, push: &Push, body: Option<Bytes>) -> Answer {
        let inner = &*self.inner;
        let permits = self.permits(subscription.origin());
        let Ok(_permit) = permits.acquire().await else {
            unreachable!("the semaphore is never closed")
        };
        let authorization = inner
            .vapid
            .authorization(subscription.origin(), SystemTime::now());
        let Ok(mut authorization) = HeaderValue::try_from(authorization) else {
            unreachable!("base64url and ASCII punctuation are valid header characters")
        };
        authorization.set_sensitive(true);
        let request =
            Request::post(subscription.uri().clone()).header(AUTHORIZATION, authorization);
        let request = push
            .headers(request, body.is_some())
            .body(Full::new(body.unwrap_or_default()));
        let request = match request {
            Ok(request) => request,
            Err(e) => return Answer::Final(WebPushError::Transport(e.to_string())),
        };
        let exchange = async {
            let response = inner.client.request(request).await.map_err(|e| {
                let text = error_chain(&e);
                if is_tls_failure(&e) {
                    Answer::Final(WebPushError::Tls(text))
                } else {
                    Answer::Retry(WebPushError::Transport(text), None)
                }
            })?;
            let (parts, body) = response.into_parts();
            // A body that cannot be read fully still has a status worth acting on.
            let body = match Limited::new(body, MAX_RESPONSE_BYTES).collect().await {
                Ok(body) => body.to_bytes(),
                Err(e) => Bytes::from(format!("(body unreadable: {e})")),
            };
            let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
            Ok(classify(Response {
                status: parts.status.as_u16(),
                location: header(LOCATION.as_str()),
                ttl: header("ttl"),
                retry_after: header(RETRY_AFTER.as_str())
                    .and_then(|v| retry_after::parse(v, SystemTime::now())),
                reason: body_text(&body),
            }))
        };
        let timeout = inner.config.request_timeout;
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(answer) | Err(answer)) => answer,
            Err(_) => Answer::Retry(WebPushError::Timeout(timeout), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webpush::VapidKey;

    #[test]
    fn configuration_errors_are_clear() {
        let key = VapidKey::generate();
        let e = WebPushSender::new(WebPushConfig::new(key.clone(), "ops@example.com")).unwrap_err();
        assert!(
            matches!(&e, WebPushError::Config(t) if t.contains("mailto:")),
            "{e}"
        );
        let mut cfg = WebPushConfig::new(key, "mailto:ops@example.com");
        cfg.max_concurrent_per_origin = 0;
        assert!(matches!(
            WebPushSender::new(cfg),
            Err(WebPushError::Config(_))
        ));
    }
}
