//! One authenticated connection at run time: a reader task (frames → typed inbound, acks for
//! upstream and receipts, answers to server iqs) and a writer task (the only writer, so
//! stanzas never interleave; it coalesces queued stanzas into one write).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, trace, warn};

use crate::config::Config;
use crate::error::ConnectError;
use crate::events::{ConnId, Event};
use crate::response::{self, Inbound};
use crate::session::{self, Established, Negotiation};
use crate::transcript::{Direction, TeeRead, Transcript};
use crate::wire::{self, Activity, Element, Frame, FrameReader};

/// Type-erased halves of whatever byte stream a connection runs over.
pub(crate) type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
pub(crate) type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;
/// A negotiated session over an erased stream.
pub(crate) type Session = Established<BoxRead, BoxWrite>;
/// What a [`Connector`] returns.
pub(crate) type Connecting<'a> =
    Pin<Box<dyn Future<Output = Result<Session, ConnectError>> + Send + 'a>>;

/// Opens and negotiates one connection. The production connector speaks TLS to the
/// endpoint; the emulator offers an in-memory one for deterministic tests.
pub(crate) trait Connector: Send + Sync + 'static {
    fn connect<'a>(&'a self, cfg: &'a Config) -> Connecting<'a>;
}

/// TCP + TLS to `cfg.endpoint`, then XMPP negotiation.
pub(crate) struct TlsConnector {
    pub tls: Arc<rustls::ClientConfig>,
}

impl Connector for TlsConnector {
    fn connect<'a>(&'a self, cfg: &'a Config) -> Connecting<'a> {
        Box::pin(async move {
            let stream = crate::tls::connect(cfg, self.tls.clone()).await?;
            negotiate_stream(stream, cfg).await
        })
    }
}

/// Runs the client-role negotiation over any secured byte stream.
pub(crate) async fn negotiate_stream<S>(stream: S, cfg: &Config) -> Result<Session, ConnectError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (r, w) = tokio::io::split(stream);
    let r: BoxRead = match &cfg.transcript {
        Some(t) => Box::new(TeeRead {
            inner: r,
            transcript: t.clone(),
        }),
        None => Box::new(r),
    };
    let reader = FrameReader::new(r, cfg.limits);
    let negotiation = Negotiation {
        credentials: &cfg.credentials,
        stream_to: &cfg.stream_to,
        resource: cfg.resource.as_deref(),
        step_timeout: cfg.handshake_timeout,
        transcript: cfg.transcript.as_ref(),
    };
    session::negotiate(reader, Box::new(w) as BoxWrite, &negotiation).await
}

/// Largest batch the writer coalesces into one write.
const WRITE_BATCH: usize = 64 * 1024;

/// Replies the reader may have queued and not yet written (acks of upstream messages and
/// receipts, iq answers). Beyond that it waits for the writer, so a server that does not read
/// what we send cannot make us buffer without bound: we stop reading, and liveness ends it.
const REPLY_BACKLOG: usize = 1024;

/// What the writer task is asked to put on the wire.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// One complete stanza.
    Stanza(Bytes),
    /// A stanza the reader queued; its permit returns to the reader once it is written.
    Reply(Bytes, OwnedSemaphorePermit),
    /// `</stream:stream>`: we are closing.
    Close,
}

/// What connection tasks report to the driver.
pub(crate) enum ConnEvent {
    Established { conn: ConnId, link: Link },
    ConnectFailed { conn: ConnId, error: ConnectError },
    Inbound { conn: ConnId, inbound: Inbound },
    Closed { conn: ConnId, reason: String },
}

/// The driver's handle on a running connection. Dropping it stops the reader and lets the
/// writer flush and shut the stream down.
pub(crate) struct Link {
    pub tx: mpsc::UnboundedSender<Outbound>,
    pub activity: Activity,
    pub jid: String,
    reader: JoinHandle<()>,
    /// Lets the reader start; see [`Link::release_reader`].
    release: Option<oneshot::Sender<()>>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Link {
    /// Lets the reader task start reporting. The driver calls it once it has registered the
    /// connection, so nothing the server sends first (a drain, an upstream message) can reach
    /// the driver before the connection does.
    pub fn release_reader(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
    }

    /// Queues a stanza; false if the writer is gone (the close event is on its way).
    pub fn send(&self, stanza: Bytes) -> bool {
        self.tx.send(Outbound::Stanza(stanza)).is_ok()
    }
}

/// Spawns a task that waits `delay`, connects, and reports the outcome as a [`ConnEvent`].
pub(crate) fn spawn_connect(
    conn: ConnId,
    delay: std::time::Duration,
    cfg: Arc<Config>,
    connector: Arc<dyn Connector>,
    events: mpsc::UnboundedSender<ConnEvent>,
    app: broadcast::Sender<Event>,
) {
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let report = match connector.connect(&cfg).await {
            Ok(est) => ConnEvent::Established {
                conn,
                link: start(conn, est, &cfg, events.clone(), app),
            },
            Err(error) => ConnEvent::ConnectFailed { conn, error },
        };
        let _ = events.send(report);
    });
}

/// Starts the reader and writer tasks of an established session.
pub(crate) fn start<R, W>(
    conn: ConnId,
    est: Established<R, W>,
    cfg: &Config,
    events: mpsc::UnboundedSender<ConnEvent>,
    app: broadcast::Sender<Event>,
) -> Link
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let activity = est.reader.activity();
    let writer = Writer {
        conn,
        transcript: cfg.transcript.clone(),
        // A peer that takes none of our bytes for as long as a silent one is dead.
        stall_limit: cfg.ping_interval * 2,
        events: events.clone(),
    };
    tokio::spawn(writer.run(est.writer, rx));
    let tx_reader = tx.clone();
    let (release, released) = oneshot::channel();
    let reader = tokio::spawn(async move {
        if released.await.is_ok() {
            read_loop(conn, est.reader, tx_reader, events, app).await;
        }
    });
    Link {
        tx,
        activity,
        jid: est.jid,
        reader,
        release: Some(release),
    }
}

/// The writer task's settings.
struct Writer {
    conn: ConnId,
    transcript: Option<Transcript>,
    /// How long one batch may take to write before the connection counts as dead.
    stall_limit: Duration,
    events: mpsc::UnboundedSender<ConnEvent>,
}

impl Writer {
    async fn run<W: AsyncWrite + Unpin>(self, mut w: W, mut rx: mpsc::UnboundedReceiver<Outbound>) {
        let conn = self.conn;
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        let mut permits = Vec::new();
        let mut open = true;
        while let Some(first) = rx.recv().await {
            push(&mut batch, &mut permits, first, &mut open);
            while batch.len() < WRITE_BATCH {
                match rx.try_recv() {
                    Ok(more) => push(&mut batch, &mut permits, more, &mut open),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                continue;
            }
            trace!(conn, bytes = batch.len(), "write");
            if let Some(t) = &self.transcript {
                t.record(Direction::Out, &batch);
            }
            let written = async {
                w.write_all(&batch).await?;
                w.flush().await
            };
            let reason = match tokio::time::timeout(self.stall_limit, written).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("write failed: {e}")),
                Err(_) => Some(format!(
                    "write stalled: the server took no data for {:?}",
                    self.stall_limit
                )),
            };
            if let Some(reason) = reason {
                let _ = self.events.send(ConnEvent::Closed { conn, reason });
                return;
            }
            batch.clear();
            permits.clear();
        }
        let _ = tokio::time::timeout(self.stall_limit, w.shutdown()).await;
    }
}

fn push(
    batch: &mut Vec<u8>,
    permits: &mut Vec<OwnedSemaphorePermit>,
    item: Outbound,
    open: &mut bool,
) {
    if !*open {
        return;
    }
    match item {
        Outbound::Stanza(s) => batch.extend_from_slice(&s),
        Outbound::Reply(s, permit) => {
            batch.extend_from_slice(&s);
            permits.push(permit);
        }
        Outbound::Close => {
            batch.extend_from_slice(wire::write::STREAM_CLOSE);
            *open = false;
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    conn: ConnId,
    mut reader: FrameReader<R>,
    tx: mpsc::UnboundedSender<Outbound>,
    events: mpsc::UnboundedSender<ConnEvent>,
    app: broadcast::Sender<Event>,
) {
    let backlog = Arc::new(Semaphore::new(REPLY_BACKLOG));
    let reason = loop {
        let frame = match reader.next_frame().await {
            Ok(f) => f,
            Err(e) => break e.to_string(),
        };
        match frame {
            Frame::Message(m) => {
                let inbound = response::classify(&m);
                // Only upstream messages and receipts need a reply (their ack).
                let replies = match &inbound {
                    Inbound::Upstream(_) | Inbound::Receipt(_) => {
                        Some(Replies::reserve(&tx, &backlog).await)
                    }
                    _ => None,
                };
                if let Some(inbound) = deliver_upstream(conn, inbound, replies, &app)
                    && events.send(ConnEvent::Inbound { conn, inbound }).is_err()
                {
                    return;
                }
            }
            Frame::Element(e) if e.is(wire::NS_STREAMS, "error") => {
                break session::stream_error(&e).to_string();
            }
            Frame::Element(e) if e.is(wire::NS_CLIENT, "iq") => {
                answer_iq(&e, Replies::reserve(&tx, &backlog).await);
            }
            Frame::Element(e) => debug!(conn, element = %e.name, "ignoring element"),
            Frame::StreamClose => {
                let _ = tx.send(Outbound::Close);
                break "the server closed the stream".to_owned();
            }
            Frame::StreamOpen(_) => break "unexpected stream restart".to_owned(),
        }
    };
    let _ = events.send(ConnEvent::Closed { conn, reason });
}

/// Room for one reply in the writer's queue (see [`REPLY_BACKLOG`]).
struct Replies<'a> {
    tx: &'a mpsc::UnboundedSender<Outbound>,
    permit: OwnedSemaphorePermit,
}

impl<'a> Replies<'a> {
    /// Waits until fewer than [`REPLY_BACKLOG`] replies are queued.
    async fn reserve(tx: &'a mpsc::UnboundedSender<Outbound>, backlog: &Arc<Semaphore>) -> Self {
        let permit = backlog
            .clone()
            .acquire_owned()
            .await
            .unwrap_or_else(|_| unreachable!("the backlog semaphore is never closed"));
        Replies { tx, permit }
    }

    fn send(self, stanza: Vec<u8>) {
        let _ = self.tx.send(Outbound::Reply(stanza.into(), self.permit));
    }
}

/// Acks upstream messages and receipts on this connection (with `replies`, reserved for
/// them) and publishes them; returns everything else for the driver.
fn deliver_upstream(
    conn: ConnId,
    inbound: Inbound,
    replies: Option<Replies<'_>>,
    app: &broadcast::Sender<Event>,
) -> Option<Inbound> {
    let (ack, event) = match inbound {
        Inbound::Upstream(u) => (
            u.ack_json(),
            Event::Upstream {
                conn,
                message: Arc::new(u),
            },
        ),
        Inbound::Receipt(r) => (
            r.ack_json(),
            Event::Receipt {
                conn,
                receipt: Arc::new(r),
            },
        ),
        Inbound::Ignored(why) => {
            debug!(conn, %why, "ignoring inbound message");
            return None;
        }
        other => return Some(other),
    };
    let mut buf = Vec::with_capacity(ack.len() + 64);
    match wire::write::gcm_message(&mut buf, "", &ack) {
        Ok(()) => {
            if let Some(replies) = replies {
                replies.send(buf);
            }
        }
        Err(e) => warn!(conn, error = %e, "cannot encode upstream ack"),
    }
    let _ = app.send(event);
    None
}

/// Answers server iqs: pings get a result, other gets/sets `service-unavailable` (RFC 6120).
fn answer_iq(iq: &Element, replies: Replies<'_>) {
    let mut buf = Vec::new();
    match iq.attr("type") {
        Some("get") if iq.child(wire::NS_PING, "ping").is_some() => {
            wire::write::iq_result(&mut buf, iq.attr("id"), None)
        }
        Some("get" | "set") => {
            wire::write::iq_error(&mut buf, iq.attr("id"), "cancel", "service-unavailable")
        }
        _ => return, // results (our pongs) and errors need no answer
    }
    replies.send(buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that stops reading ends the connection after the stall limit instead of
    /// holding the writer (and its socket) forever.
    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_is_a_dead_connection() {
        let (ours, _peer) = tokio::io::duplex(64);
        let (events, mut reports) = mpsc::unbounded_channel();
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            conn: 7,
            transcript: None,
            stall_limit: Duration::from_secs(60),
            events,
        };
        let task = tokio::spawn(writer.run(ours, rx));
        tx.send(Outbound::Stanza(Bytes::from(vec![b' '; 1024])))
            .unwrap();
        let started = tokio::time::Instant::now();
        let Some(ConnEvent::Closed { conn, reason }) = reports.recv().await else {
            panic!("the writer must report the stall");
        };
        assert_eq!(conn, 7);
        assert!(reason.contains("write stalled"), "{reason}");
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        task.await.unwrap();
    }

    /// What the server sends right after binding (here a drain) waits until the driver has
    /// registered the connection and released the reader.
    #[tokio::test(start_paused = true)]
    async fn the_reader_reports_nothing_before_it_is_released() {
        use tokio::io::AsyncWriteExt;

        let (ours, mut server) = tokio::io::duplex(4096);
        let mut header = Vec::new();
        wire::write::server_stream_header(&mut header, "gcm.googleapis.com", "1");
        wire::write::gcm_server_message(
            &mut header,
            r#"{"message_type":"control","control_type":"CONNECTION_DRAINING"}"#,
        )
        .unwrap();
        server.write_all(&header).await.unwrap();
        let (r, w) = tokio::io::split(ours);
        let mut reader = FrameReader::new(r, wire::Limits::default());
        assert!(matches!(
            reader.next_frame().await,
            Ok(Frame::StreamOpen(_))
        ));
        let est = Established {
            reader,
            writer: w,
            jid: "123@gcm.googleapis.com/r".into(),
        };
        let cfg = Config::new(crate::config::Credentials::new("123", "key"));
        let (events, mut reports) = mpsc::unbounded_channel();
        let (app, _) = broadcast::channel(8);
        let mut link = start(3, est, &cfg, events, app);
        let early = tokio::time::timeout(Duration::from_secs(5), reports.recv()).await;
        assert!(early.is_err(), "a report before the release");
        link.release_reader();
        let Some(ConnEvent::Inbound { conn: 3, inbound }) = reports.recv().await else {
            panic!("the drain must be reported once released");
        };
        assert!(matches!(
            inbound,
            Inbound::Control(response::Control::ConnectionDraining)
        ));
    }
}
