//! One sending handle over either transport: the XMPP stream, the HTTP API, or `auto` — the
//! stream, falling back to HTTP for messages that cannot go out because no stream can be
//! established, and back to the stream once it recovers.

use std::fmt;

use crate::error::{ConnectError, SendError};
use crate::http::{HttpConfig, HttpSender};
use crate::inbound::Ack;
use crate::message::Message;
use crate::xmpp::{Client, Config, Incoming};

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
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use gcm_ccs::{Config, Credentials, HttpConfig, Message, Sender};
///
/// let key = std::env::var("GCM_API_KEY")?;
/// let (sender, incoming) = Sender::builder()
///     .xmpp(Config::new(Credentials::new("123456789012", key.clone())))
///     .http(HttpConfig::new(key))
///     .build()
///     .await?;
/// sender.send(Message::to("device-token").data("k", "v").build()?).await?;
/// # drop(incoming);
/// # Ok(()) }
/// ```
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

/// Chooses the transports of a [`Sender`].
#[derive(Debug, Default)]
#[must_use]
pub struct SenderBuilder {
    xmpp: Option<Config>,
    http: Option<HttpConfig>,
}

impl SenderBuilder {
    /// Sends over the XMPP stream with `cfg`.
    pub fn xmpp(mut self, cfg: Config) -> Self {
        self.xmpp = Some(cfg);
        self
    }

    /// Sends over the legacy HTTP API with `cfg` (with the stream too: as its fallback).
    pub fn http(mut self, cfg: HttpConfig) -> Self {
        self.http = Some(cfg);
        self
    }

    /// Builds the sender and the [`Incoming`] half of its stream (one that never yields for
    /// HTTP alone). The stream alone waits for its first connection like
    /// [`Client::connect`], so TLS and auth errors surface here; with HTTP as a fallback it
    /// starts in the background like [`Client::start`] and never fails for being unreachable.
    pub async fn build(self) -> Result<(Sender, Incoming), ConnectError> {
        let http = self.http.map(HttpSender::new).transpose()?;
        let (stream, incoming) = match (self.xmpp, &http) {
            (Some(cfg), None) => {
                let (client, incoming) = Client::connect(cfg).await?;
                (Some(client), incoming)
            }
            (Some(cfg), Some(_)) => {
                let (client, incoming) = Client::start(cfg)?;
                (Some(client), incoming)
            }
            (None, Some(_)) => (None, Incoming::none()),
            (None, None) => {
                return Err(ConnectError::Config(
                    "a sender needs a transport: the XMPP stream, the HTTP API or both".into(),
                ));
            }
        };
        Ok((Sender { stream, http }, incoming))
    }
}

impl Sender {
    /// Chooses the transports.
    pub fn builder() -> SenderBuilder {
        SenderBuilder::default()
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
