//! One established connection at run time: a reader task (frames → acks, nacks and control
//! for the pool; upstream messages and receipts handed to the application; answers to server
//! iqs) and a writer task (the only writer, so stanzas never interleave; it coalesces queued
//! stanzas into one write).

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, trace};

use super::config::Config;
use super::events::ConnId;
use super::incoming::{AckRoute, Delivery, IncomingMessage};
use super::outbound::{Outbound, Stanza};
use super::session::{self, Established};
use super::stats::Stats;
use super::transcript::{Direction, Transcript};
use crate::error::ConnectError;
use crate::inbound::{self, Inbound};
use crate::wire::{self, Activity, Element, Frame, FrameReader, MessageStanza};

/// Largest batch the writer coalesces into one write.
const WRITE_BATCH: usize = 64 * 1024;

/// Replies the reader may have queued and not yet written (acks of upstream messages and
/// receipts, iq answers), deliveries not yet acked included. Beyond that it waits, so a server
/// that does not read what we send cannot make us buffer without bound: we stop reading, and
/// liveness ends it.
const REPLY_BACKLOG: usize = 1024;

/// How long a closing connection waits for the server's `</stream:stream>`.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What connection tasks report to the shell.
pub(crate) enum ConnEvent {
    Established {
        conn: ConnId,
        link: Link,
    },
    ConnectFailed {
        conn: ConnId,
        error: ConnectError,
    },
    Inbound {
        conn: ConnId,
        inbound: Inbound,
    },
    /// The application does not take upstream messages: the reader waits.
    Paused {
        conn: ConnId,
    },
    Resumed {
        conn: ConnId,
    },
    Closed {
        conn: ConnId,
        reason: String,
    },
}

/// Where a connection's reader sends what it read.
#[derive(Clone)]
pub(crate) struct Routes {
    /// To the shell (bounded: a peer that floods us waits for the shell).
    pub events: mpsc::Sender<ConnEvent>,
    /// To the application (bounded: see [`Incoming`](crate::Incoming)).
    pub incoming: mpsc::Sender<Delivery>,
    pub stats: Arc<Stats>,
}

/// The shell's handle on a running connection. Dropping it stops the reader and lets the
/// writer flush and shut the stream down.
pub(crate) struct Link {
    tx: mpsc::UnboundedSender<Outbound>,
    activity: Activity,
    pub jid: String,
    reader: Option<JoinHandle<()>>,
    writer: Option<JoinHandle<()>>,
    /// Lets the reader start; see [`Link::release_reader`].
    release: Option<oneshot::Sender<()>>,
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(reader) = &self.reader {
            reader.abort();
        }
    }
}

impl Link {
    /// Lets the reader task start reporting. The shell calls it once the pool has registered
    /// the connection, so nothing the server sends first (a drain, an upstream message) can
    /// reach the pool before the connection does.
    pub fn release_reader(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
    }

    /// Queues a stanza; a dead writer has reported (or will report) the close.
    pub fn send(&self, stanza: Stanza) {
        let _ = self.tx.send(Outbound::Stanza(stanza));
    }

    /// When bytes last arrived (keepalives included).
    pub fn last_read(&self) -> Instant {
        self.activity.last()
    }

    /// Sends `</stream:stream>`, then gives the server [`CLOSE_GRACE`] to close its side. The
    /// returned task ends when the connection is fully shut.
    pub fn close(mut self) -> JoinHandle<()> {
        let _ = self.tx.send(Outbound::Close);
        let writer = self.writer.take();
        let reader = self.reader.take();
        tokio::spawn(async move {
            if let Some(writer) = writer {
                let _ = writer.await;
            }
            if let Some(mut reader) = reader
                && tokio::time::timeout(CLOSE_GRACE, &mut reader)
                    .await
                    .is_err()
            {
                reader.abort();
            }
        })
    }
}

/// Starts the reader and writer tasks of an established session.
pub(crate) fn start<R, W>(
    conn: ConnId,
    est: Established<R, W>,
    cfg: &Config,
    routes: Routes,
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
        events: routes.events.clone(),
    };
    let writer = tokio::spawn(writer.run(est.writer, rx));
    let (release, released) = oneshot::channel();
    let reader = Reader {
        conn,
        writer: tx.clone(),
        routes,
        backlog: Arc::new(Semaphore::new(REPLY_BACKLOG)),
        incoming_gone: false,
    };
    let (frames, early) = (est.reader, est.early);
    let reader = tokio::spawn(async move {
        if released.await.is_ok() {
            reader.run(frames, early).await;
        }
    });
    Link {
        tx,
        activity,
        jid: est.jid,
        reader: Some(reader),
        writer: Some(writer),
        release: Some(release),
    }
}

/// The writer task's settings.
struct Writer {
    conn: ConnId,
    transcript: Option<Transcript>,
    /// How long one batch may take to write before the connection counts as dead.
    stall_limit: Duration,
    events: mpsc::Sender<ConnEvent>,
}

impl Writer {
    async fn run<W: AsyncWrite + Unpin>(self, mut w: W, mut rx: mpsc::UnboundedReceiver<Outbound>) {
        let conn = self.conn;
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        let mut permits = Vec::new();
        let mut open = true;
        while open && let Some(first) = rx.recv().await {
            push(&mut batch, &mut permits, first, &mut open);
            while open && batch.len() < WRITE_BATCH {
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
            let reason = match within(self.stall_limit, written).await {
                Some(Ok(())) => None,
                Some(Err(e)) => Some(format!("write failed: {e}")),
                None => Some(format!(
                    "write stalled: the server took no data for {:?}",
                    self.stall_limit
                )),
            };
            if let Some(reason) = reason {
                let _ = self.events.send(ConnEvent::Closed { conn, reason }).await;
                return;
            }
            batch.clear();
            permits.clear();
        }
        let _ = tokio::time::timeout(self.stall_limit, w.shutdown()).await;
    }
}

/// `fut`'s output, or `None` if it takes longer than `limit`. A write that completes at once
/// (the socket had room: the usual case) costs no timer.
async fn within<T>(limit: Duration, fut: impl Future<Output = T>) -> Option<T> {
    let mut fut = std::pin::pin!(fut);
    let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(out) => Some(out),
        Poll::Pending => tokio::time::timeout(limit, fut).await.ok(),
    }
}

fn push(
    batch: &mut Vec<u8>,
    permits: &mut Vec<OwnedSemaphorePermit>,
    item: Outbound,
    open: &mut bool,
) {
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

/// The reader task of one connection.
struct Reader {
    conn: ConnId,
    /// The connection's own writer, for acks and iq answers.
    writer: mpsc::UnboundedSender<Outbound>,
    routes: Routes,
    /// Room for replies; see [`REPLY_BACKLOG`].
    backlog: Arc<Semaphore>,
    /// The application dropped its [`Incoming`](crate::Incoming) (warned once).
    incoming_gone: bool,
}

impl Reader {
    async fn run<R: AsyncRead + Unpin>(
        mut self,
        mut frames: FrameReader<R>,
        early: Option<MessageStanza>,
    ) {
        let conn = self.conn;
        if let Some(m) = early
            && !self.on_message(&m).await
        {
            return;
        }
        let reason = loop {
            let frame = match frames.next_frame().await {
                Ok(f) => f,
                Err(e) => break e.to_string(),
            };
            match frame {
                Frame::Message(m) => {
                    if !self.on_message(&m).await {
                        return;
                    }
                }
                Frame::Element(e) if e.is(wire::NS_STREAMS, "error") => {
                    break session::stream_error(&e).to_string();
                }
                Frame::Element(e) if e.is(wire::NS_CLIENT, "iq") => {
                    let permit = self.reserve().await;
                    answer_iq(&e, &self.writer, permit);
                }
                Frame::Element(e) => debug!(conn, element = %e.name, "ignoring element"),
                Frame::StreamClose => {
                    let _ = self.writer.send(Outbound::Close);
                    break "the server closed the stream".to_owned();
                }
                Frame::StreamOpen(_) => break "unexpected stream restart".to_owned(),
            }
        };
        let _ = self
            .routes
            .events
            .send(ConnEvent::Closed { conn, reason })
            .await;
    }

    /// Handles one `<message>`; false once the shell is gone.
    async fn on_message(&mut self, m: &MessageStanza) -> bool {
        let message = match inbound::classify(m) {
            Inbound::Upstream(u) => IncomingMessage::Upstream(u),
            Inbound::Receipt(r) => IncomingMessage::Receipt(r),
            Inbound::Ignored(why) => {
                debug!(conn = self.conn, %why, "ignoring inbound message");
                return true;
            }
            other => {
                let event = ConnEvent::Inbound {
                    conn: self.conn,
                    inbound: other,
                };
                return self.routes.events.send(event).await.is_ok();
            }
        };
        self.deliver(message).await
    }

    /// Hands an upstream message or receipt to the application. While it cannot (the
    /// application holds [`REPLY_BACKLOG`] deliveries not acked yet, or
    /// [`Incoming`](crate::Incoming) is full) the reader waits, and tells the pool, which
    /// suspends this connection's clocks. Nothing is acked here: the application acks what
    /// it has.
    async fn deliver(&mut self, message: IncomingMessage) -> bool {
        let delivery = match self.backlog.clone().try_acquire_owned() {
            Ok(permit) => self.delivery(message, permit),
            Err(_) => {
                if !self.pause().await {
                    return false;
                }
                let permit = self.reserve().await;
                if !self.resume().await {
                    return false;
                }
                self.delivery(message, permit)
            }
        };
        let handed = match self.routes.incoming.try_send(delivery) {
            Ok(()) => true,
            Err(TrySendError::Full(delivery)) => {
                if !self.pause().await {
                    return false;
                }
                let handed = self.routes.incoming.send(delivery).await.is_ok();
                if !self.resume().await {
                    return false;
                }
                handed
            }
            Err(TrySendError::Closed(_)) => false,
        };
        if handed {
            self.routes.stats.delivered();
        } else {
            self.incoming_dropped();
        }
        true
    }

    fn delivery(&self, message: IncomingMessage, permit: OwnedSemaphorePermit) -> Delivery {
        let ack = AckRoute {
            writer: self.writer.clone(),
            permit,
        };
        Delivery::new(self.conn, message, ack)
    }

    /// Tells the pool this reader waits for the application; false once the shell is gone.
    async fn pause(&self) -> bool {
        let paused = ConnEvent::Paused { conn: self.conn };
        self.routes.events.send(paused).await.is_ok()
    }

    async fn resume(&self) -> bool {
        let resumed = ConnEvent::Resumed { conn: self.conn };
        self.routes.events.send(resumed).await.is_ok()
    }

    fn incoming_dropped(&mut self) {
        if !self.incoming_gone {
            self.incoming_gone = true;
            debug!(
                conn = self.conn,
                "Incoming was dropped: upstream messages and receipts stay unacked with CCS"
            );
        }
    }

    /// Waits until fewer than [`REPLY_BACKLOG`] replies are queued.
    async fn reserve(&self) -> OwnedSemaphorePermit {
        self.backlog
            .clone()
            .acquire_owned()
            .await
            .unwrap_or_else(|_| unreachable!("the backlog semaphore is never closed"))
    }
}

/// Answers server iqs: pings get a result, other gets/sets `service-unavailable` (RFC 6120).
fn answer_iq(iq: &Element, writer: &mpsc::UnboundedSender<Outbound>, permit: OwnedSemaphorePermit) {
    let mut buf = Vec::new();
    match iq.attr("type") {
        Some("get") if iq.child(wire::NS_PING, "ping").is_some() => {
            wire::write::iq_result(&mut buf, iq.attr("id"), None)
        }
        Some("get" | "set") => {
            wire::write::iq_error(&mut buf, iq.attr("id"), "cancel", "service-unavailable")
        }
        // Results (our pongs, a late session result) and errors need no answer.
        _ => return,
    }
    let _ = writer.send(Outbound::Reply(buf, permit));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::config::Credentials;

    fn routes() -> (Routes, mpsc::Receiver<ConnEvent>, mpsc::Receiver<Delivery>) {
        let (events, reports) = mpsc::channel(16);
        let (incoming, deliveries) = mpsc::channel(1);
        let routes = Routes {
            events,
            incoming,
            stats: Arc::default(),
        };
        (routes, reports, deliveries)
    }

    /// A peer that stops reading ends the connection after the stall limit instead of
    /// holding the writer (and its socket) forever.
    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_is_a_dead_connection() {
        let (ours, _peer) = tokio::io::duplex(64);
        let (routes, mut reports, _) = routes();
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            conn: 7,
            transcript: None,
            stall_limit: Duration::from_secs(60),
            events: routes.events,
        };
        let task = tokio::spawn(writer.run(ours, rx));
        tx.send(Outbound::Stanza(Stanza::from(vec![b' '; 1024])))
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

    /// An established session over an in-memory pipe whose server side has already written
    /// `server_bytes` after its stream header.
    async fn session(
        server_bytes: &[u8],
    ) -> (
        Established<
            impl AsyncRead + Unpin + Send + 'static,
            impl AsyncWrite + Unpin + Send + 'static,
        >,
        tokio::io::DuplexStream,
    ) {
        let (ours, mut server) = tokio::io::duplex(64 * 1024);
        let mut bytes = Vec::new();
        wire::write::server_stream_header(&mut bytes, "gcm.googleapis.com", "1");
        bytes.extend_from_slice(server_bytes);
        server.write_all(&bytes).await.unwrap();
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
            early: None,
        };
        (est, server)
    }

    /// What the server sends right after binding (here a drain) waits until the shell has
    /// registered the connection and released the reader.
    #[tokio::test(start_paused = true)]
    async fn the_reader_reports_nothing_before_it_is_released() {
        let mut drain = Vec::new();
        wire::write::gcm_server_message(
            &mut drain,
            r#"{"message_type":"control","control_type":"CONNECTION_DRAINING"}"#,
        )
        .unwrap();
        let (est, _server) = session(&drain).await;
        let cfg = Config::new(Credentials::new("123", "key"));
        let (routes, mut reports, _) = routes();
        let mut link = start(3, est, &cfg, routes);
        let early = tokio::time::timeout(Duration::from_secs(5), reports.recv()).await;
        assert!(early.is_err(), "a report before the release");
        link.release_reader();
        let Some(ConnEvent::Inbound { conn: 3, inbound }) = reports.recv().await else {
            panic!("the drain must be reported once released");
        };
        assert!(matches!(
            inbound,
            Inbound::Control(inbound::Control::ConnectionDraining)
        ));
    }

    /// With `Incoming` full the reader pauses (and says so), acks nothing by itself, and
    /// resumes once the application takes a delivery; the ack goes out only on `ack()`.
    #[tokio::test(start_paused = true)]
    async fn a_full_incoming_pauses_the_reader_and_nothing_is_acked_before_the_application() {
        let mut upstream = Vec::new();
        for i in 0..2 {
            let json = format!(r#"{{"message_id":"up-{i}","from":"dev","data":{{}}}}"#);
            wire::write::gcm_upstream(&mut upstream, "123@gcm.googleapis.com", &json).unwrap();
        }
        let (est, mut server) = session(&upstream).await;
        let cfg = Config::new(Credentials::new("123", "key"));
        let (routes, mut reports, mut deliveries) = routes();
        let mut link = start(5, est, &cfg, routes);
        link.release_reader();
        let Some(ConnEvent::Paused { conn: 5 }) = reports.recv().await else {
            panic!("the second message waits for room");
        };
        let first = deliveries.recv().await.unwrap();
        assert_eq!(first.message().message_id(), "up-0");
        let Some(ConnEvent::Resumed { conn: 5 }) = reports.recv().await else {
            panic!("the reader resumes once there is room");
        };
        let mut buf = [0u8; 4096];
        let nothing = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(&mut server, &mut buf),
        )
        .await;
        assert!(nothing.is_err(), "nothing is written before an ack");
        assert!(first.ack());
        let n = tokio::io::AsyncReadExt::read(&mut server, &mut buf)
            .await
            .unwrap();
        let written = String::from_utf8_lossy(&buf[..n]);
        assert!(
            written.contains(r#""message_id":"up-0","message_type":"ack""#),
            "{written}"
        );
        assert!(!written.contains("up-1"), "{written}");
    }
}
