//! The sending options `send` and `relay` share: how CCS messages go out (`--via`, the pool)
//! and the VAPID key for subscription lines.

use std::path::PathBuf;

use gcm_ccs::webpush::WebPushConfig;
use gcm_ccs::{Config, HttpConfig, Incoming, Sender, SenderBuilder};

use super::common::{Failure, XmppArgs};
use super::vapid;

/// Messages waiting for an HTTP request slot, beyond those in flight.
const HTTP_QUEUE: usize = 1024;

/// How messages go out.
#[derive(Debug, clap::Args)]
pub struct SenderArgs {
    #[command(flatten)]
    pub xmpp: XmppArgs,
    /// Connections in the pool (1..=1000).
    #[arg(long, default_value_t = 1, env = "GCM_CCS_CONNECTIONS",
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    connections: u16,
    /// Unacked messages per connection (1..=100).
    #[arg(long, default_value_t = 100, env = "GCM_CCS_WINDOW",
          value_parser = clap::value_parser!(u8).range(1..=100))]
    window: u8,
    /// CCS messages over the XMPP stream, the HTTP API, or the stream with HTTP fallback when
    /// it is unavailable.
    #[arg(long, value_enum, default_value_t = Via::Xmpp, env = "GCM_CCS_VIA")]
    via: Via,
    /// The HTTP send URL for --via http|auto [default: https://fcm.googleapis.com/fcm/send].
    #[arg(long, value_name = "URL", env = "GCM_CCS_HTTP_URL")]
    http_url: Option<String>,
    /// The VAPID private key for Web Push lines (`{"subscription": …}`): PKCS#8 or SEC1 PEM,
    /// or the raw base64url scalar (`gcm-ccs vapid generate` makes one).
    #[arg(
        long,
        value_name = "FILE",
        requires = "subject",
        env = "GCM_CCS_VAPID_KEY"
    )]
    vapid_key: Option<PathBuf>,
    /// How push services can reach you (VAPID `sub`): mailto:you@example.com or https://….
    #[arg(
        long,
        value_name = "URI",
        requires = "vapid_key",
        env = "GCM_CCS_SUBJECT"
    )]
    subject: Option<String>,
}

/// The routes of `--via`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Via {
    Xmpp,
    Http,
    Auto,
}

impl SenderArgs {
    /// How CCS messages will go out, with every CCS option checked.
    pub fn ccs(&self) -> Result<Plan, Failure> {
        let xmpp = || {
            let mut cfg = self.xmpp.config()?;
            cfg.connections = usize::from(self.connections);
            cfg.window = usize::from(self.window);
            Ok::<_, Failure>(Box::new(cfg))
        };
        let http = || {
            Ok::<_, Failure>(Box::new(
                self.xmpp.auth.http_config(self.http_url.as_deref())?,
            ))
        };
        Ok(match self.via {
            Via::Xmpp => Plan::Xmpp(xmpp()?),
            Via::Http => Plan::Http(http()?),
            Via::Auto => Plan::Auto(xmpp()?, http()?),
        })
    }

    /// The Web Push configuration, when `--vapid-key` is given (an unreadable or invalid key
    /// is an error here, before anything is sent).
    pub fn webpush(&self) -> Result<Option<WebPushConfig>, Failure> {
        let (Some(path), Some(subject)) = (&self.vapid_key, &self.subject) else {
            return Ok(None);
        };
        let key = vapid::load_key(path, "--vapid-key")?;
        let mut cfg = WebPushConfig::new(key, subject.clone());
        cfg.trust = self.xmpp.auth.trust()?;
        Ok(Some(cfg))
    }
}

/// How CCS messages will go out (boxed: the configurations are large).
pub enum Plan {
    Xmpp(Box<Config>),
    Http(Box<HttpConfig>),
    /// The stream, with HTTP for messages it cannot send.
    Auto(Box<Config>, Box<HttpConfig>),
}

impl Plan {
    /// Messages that may be between reading and their outcome at once: what the sender
    /// queues plus what it has in flight.
    pub fn capacity(&self) -> usize {
        match self {
            Plan::Xmpp(x) | Plan::Auto(x, _) => x.queue_capacity + x.window * x.connections,
            Plan::Http(h) => HTTP_QUEUE + h.max_concurrent_requests,
        }
    }

    /// Adds these transports to `builder`.
    pub fn add_to(self, builder: SenderBuilder) -> SenderBuilder {
        match self {
            Plan::Xmpp(x) => builder.xmpp(*x),
            Plan::Http(h) => builder.http(*h),
            Plan::Auto(x, h) => builder.xmpp(*x).http(*h),
        }
    }

    /// Builds a CCS sender; over XMPP only, connects first so a refused key ends here.
    pub async fn connect(self) -> Result<(Sender, Incoming), Failure> {
        Ok(self.add_to(Sender::builder()).build().await?)
    }
}

/// Messages that may be between reading and their outcome at once with these transports.
pub fn capacity(ccs: Option<&Plan>, webpush: Option<&WebPushConfig>) -> usize {
    let webpush = webpush.map_or(0, |cfg| HTTP_QUEUE + cfg.max_concurrent_per_origin);
    ccs.map_or(0, Plan::capacity).max(webpush)
}
