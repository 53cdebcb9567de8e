//! One sending handle over every transport: CCS messages over the XMPP stream, the HTTP API,
//! or `auto` — the stream, falling back to HTTP for messages that cannot go out because no
//! stream can be established, and back to the stream once it recovers; and pushes to browser
//! subscriptions over Web Push.

use std::fmt;
use std::pin::Pin;

use crate::error::{ConnectError, SendError};
use crate::http::{HttpConfig, HttpSender};
use crate::inbound::Ack;
use crate::message::Message;
use crate::outgoing::{Outgoing, Sent};
#[cfg(feature = "webpush")]
use crate::webpush::{Accepted, Push, Subscription, WebPushConfig, WebPushSender};
use crate::xmpp::{Client, Completion, CompletionQueue, Config, Incoming, PendingAck};

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
    #[cfg(feature = "webpush")]
    webpush: Option<WebPushSender>,
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
    #[cfg(feature = "webpush")]
    webpush: Option<WebPushConfig>,
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

    /// Sends pushes to browser subscriptions with `cfg` (VAPID key and subject).
    #[cfg(feature = "webpush")]
    pub fn webpush(mut self, cfg: WebPushConfig) -> Self {
        self.webpush = Some(cfg);
        self
    }

    /// Builds the sender and the [`Incoming`] half of its stream (one that never yields
    /// without the stream). The stream alone waits for its first connection like
    /// [`Client::connect`], so TLS and auth errors surface here; with HTTP as a fallback it
    /// starts in the background like [`Client::start`] and never fails for being unreachable.
    pub async fn build(self) -> Result<(Sender, Incoming), ConnectError> {
        #[cfg(feature = "webpush")]
        let webpush = self
            .webpush
            .map(WebPushSender::new)
            .transpose()
            .map_err(|e| ConnectError::Config(e.to_string()))?;
        #[cfg(feature = "webpush")]
        let has_webpush = webpush.is_some();
        #[cfg(not(feature = "webpush"))]
        let has_webpush = false;
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
            (None, None) if has_webpush => (None, Incoming::none()),
            (None, None) => {
                return Err(ConnectError::Config(
                    "a sender needs a transport: the XMPP stream, the HTTP API, Web Push".into(),
                ));
            }
        };
        let sender = Sender {
            stream,
            http,
            #[cfg(feature = "webpush")]
            webpush,
        };
        Ok((sender, incoming))
    }
}

impl Sender {
    /// Chooses the transports.
    pub fn builder() -> SenderBuilder {
        SenderBuilder::default()
    }

    /// The route CCS messages take.
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

    /// Sends one CCS message and waits for its outcome.
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
            (None, None) => Err(no_transport(
                "CCS messages: the XMPP stream or the HTTP API",
            )),
        }
    }

    /// Sends one push to a browser subscription and waits for the push service's answer.
    #[cfg(feature = "webpush")]
    pub async fn push(
        &self,
        subscription: &Subscription,
        push: &Push,
    ) -> Result<Accepted, SendError> {
        let webpush = self
            .webpush
            .as_ref()
            .ok_or_else(|| no_transport("pushes to browser subscriptions: Web Push"))?;
        Ok(webpush.send(subscription, push).await?)
    }

    /// Sends a CCS message or a Web Push, by its target.
    pub async fn deliver(&self, outgoing: Outgoing) -> Result<Sent, SendError> {
        match outgoing {
            Outgoing::Message(msg) => self.send(msg).await.map(Sent::Ack),
            #[cfg(feature = "webpush")]
            Outgoing::WebPush(w) => self
                .push(&w.subscription, &w.push)
                .await
                .map(Sent::Accepted),
        }
    }

    /// Hands one message over and returns once it is on its way: queued on the stream
    /// (waiting while the queue is full), or started over HTTP or Web Push. Its outcome comes
    /// from [`InFlight::finish`]. Cancelled before it returns, nothing was queued. What the
    /// returned value holds while it waits is small: for the stream, only the pending ack.
    pub async fn start(&self, outgoing: Outgoing) -> InFlight {
        match (outgoing, &self.stream, &self.http) {
            (Outgoing::Message(msg), Some(stream), None) => {
                InFlight(Way::Stream(stream.submit(msg).await))
            }
            (outgoing, _, _) => {
                let sender = self.clone();
                InFlight(Way::Other(Box::pin(async move {
                    sender.deliver(outgoing).await
                })))
            }
        }
    }

    /// Like [`start`](Self::start), with the outcome of a message that the stream alone
    /// carries delivered to `queue` under `tag` (see [`Client::submit_to`]): `None` then.
    /// Anything else returns what to wait on, as `start` does, and never reaches the queue.
    pub async fn start_queued(
        &self,
        outgoing: Outgoing,
        tag: u64,
        queue: &CompletionQueue,
    ) -> Option<InFlight> {
        match (outgoing, &self.stream, &self.http) {
            (Outgoing::Message(msg), Some(stream), None) => {
                match stream.submit_to(msg, tag, queue).await {
                    Ok(()) => None,
                    Err(e) => Some(InFlight(Way::Stream(Err(e)))),
                }
            }
            (outgoing, _, _) => Some(self.start(outgoing).await),
        }
    }

    /// Whether CCS messages wait for the stream: it is their only transport (no HTTP
    /// fallback), so without a connection up they cannot go out.
    pub(crate) fn needs_stream(&self) -> bool {
        self.stream.is_some() && self.http.is_none()
    }

    /// Whether CCS messages have a transport (a sender for Web Push alone has none).
    pub fn sends_ccs(&self) -> bool {
        self.stream.is_some() || self.http.is_some()
    }

    /// Whether pushes to browser subscriptions have a transport.
    pub fn sends_webpush(&self) -> bool {
        #[cfg(feature = "webpush")]
        return self.webpush.is_some();
        #[cfg(not(feature = "webpush"))]
        false
    }

    /// Closes the stream client (if any) gracefully.
    pub async fn close(&self) {
        if let Some(stream) = &self.stream {
            stream.close().await;
        }
    }
}

/// The error for something this sender was not built to send.
fn no_transport(what: &str) -> SendError {
    SendError::Unavailable(ConnectError::Config(format!(
        "this sender has no transport for {what}"
    )))
}

/// A message handed over by [`Sender::start`], on its way to its outcome.
#[must_use = "an InFlight does nothing unless finished; dropping it does not cancel a stream send"]
pub struct InFlight(Way);

enum Way {
    /// Queued on the stream (or refused at the queue).
    Stream(Result<PendingAck, SendError>),
    /// Over HTTP, Web Push, or the stream with HTTP as its fallback.
    Other(Pin<Box<dyn Future<Output = Result<Sent, SendError>> + Send>>),
}

/// How a message handed over by [`Sender::start`] ended.
#[derive(Debug)]
pub struct Finished {
    /// What the transport accepted, or why not.
    pub result: Result<Sent, SendError>,
    /// Times the stream wrote it to a connection (`None` over HTTP, which retries inside,
    /// and for Web Push, whose acceptance counts its own requests).
    pub attempts: Option<u32>,
}

impl From<Completion> for Finished {
    /// The outcome of a message the stream carried.
    fn from(done: Completion) -> Finished {
        Finished {
            result: done.result.map(Sent::Ack),
            attempts: Some(done.attempts),
        }
    }
}

impl InFlight {
    /// Waits for the outcome.
    pub async fn finish(self) -> Finished {
        match self.0 {
            Way::Stream(Ok(pending)) => pending.completion().await.into(),
            Way::Stream(Err(e)) => Finished {
                result: Err(e),
                attempts: Some(0),
            },
            Way::Other(sending) => Finished {
                result: sending.await,
                attempts: None,
            },
        }
    }
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Way::Stream(pending) => f.debug_tuple("InFlight").field(pending).finish(),
            Way::Other(_) => f.write_str("InFlight(..)"),
        }
    }
}
