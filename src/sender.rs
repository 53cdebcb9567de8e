//! One sending handle over either transport: the XMPP stream, the HTTP API, or `auto` — the
//! stream, falling back to HTTP for messages that cannot go out because no stream can be
//! established, and back to the stream once it recovers.

use std::fmt;

use crate::client::Client;
use crate::config::Config;
use crate::error::{ConnectError, SendError};
use crate::http::{HttpConfig, HttpSender};
use crate::message::Message;
use crate::response::Ack;

/// How a [`Sender`] routes messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Only the XMPP stream.
    Xmpp,
    /// Only the legacy HTTP API.
    Http,
    /// The stream; a message that fails with [`SendError::Unavailable`] (auth refused, or no
    /// connection for `reconnect.unavailable_after`) is sent over HTTP instead.
    Auto,
}

impl std::str::FromStr for Route {
    type Err = String;

    fn from_str(s: &str) -> Result<Route, String> {
        match s {
            "xmpp" => Ok(Route::Xmpp),
            "http" => Ok(Route::Http),
            "auto" => Ok(Route::Auto),
            other => Err(format!("route `{other}`: expected xmpp, http or auto")),
        }
    }
}

/// A cloneable sender with the same `send` shape whatever the route.
#[derive(Clone)]
pub struct Sender {
    stream: Option<Client>,
    http: Option<HttpSender>,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("route", &self.route())
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// Only the stream; connects first, so TLS and auth errors surface here.
    pub async fn xmpp(cfg: Config) -> Result<Sender, ConnectError> {
        Ok(Sender {
            stream: Some(Client::connect(cfg).await?),
            http: None,
        })
    }

    /// Only HTTP.
    pub fn http(cfg: HttpConfig) -> Result<Sender, ConnectError> {
        Ok(Sender {
            stream: None,
            http: Some(HttpSender::new(cfg)?),
        })
    }

    /// The stream with HTTP fallback. Never fails because the stream is unreachable: the pool
    /// keeps trying in the background while messages go over HTTP.
    pub async fn auto(cfg: Config, http: HttpConfig) -> Result<Sender, ConnectError> {
        Ok(Sender {
            http: Some(HttpSender::new(http)?),
            stream: Some(Client::start(cfg).await?),
        })
    }

    /// The route this sender was built for.
    pub fn route(&self) -> Route {
        match (&self.stream, &self.http) {
            (Some(_), Some(_)) => Route::Auto,
            (None, _) => Route::Http,
            (Some(_), None) => Route::Xmpp,
        }
    }

    /// The stream client, unless the route is HTTP only.
    pub fn stream(&self) -> Option<&Client> {
        self.stream.as_ref()
    }

    /// Sends one message and waits for its outcome.
    pub async fn send(&self, msg: Message) -> Result<Ack, SendError> {
        match (&self.stream, &self.http) {
            (Some(stream), None) => stream.send(msg).await,
            (None, Some(http)) => http.send(&msg).await,
            (Some(stream), Some(http)) => match stream.send(msg.clone()).await {
                Err(SendError::Unavailable(e)) => {
                    tracing::debug!(error = %e, id = msg.message_id(), "stream unavailable, sending over HTTP");
                    http.send(&msg).await
                }
                other => other,
            },
            (None, None) => Err(SendError::Closed),
        }
    }

    /// Closes the stream client (if any) gracefully.
    pub async fn close(&self) {
        if let Some(stream) = &self.stream {
            stream.close().await;
        }
    }
}
