//! The byte layer under the XML parser: bounded buffering, keepalive skipping, liveness.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};
use tokio::time::Instant;

use crate::error::WireError;

/// How many bytes are pulled from the transport at once.
const CHUNK: usize = 8 * 1024;

/// A shared "last bytes seen" clock, for liveness checks.
///
/// Clones share the clock. It runs on [`tokio::time::Instant`], so paused time in tests applies.
#[derive(Debug, Clone)]
pub struct Activity {
    base: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    /// A clock whose last activity is now.
    pub fn new() -> Self {
        Activity {
            base: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Records activity now.
    pub fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Time since the last activity (millisecond resolution).
    pub fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.base.elapsed().saturating_sub(last)
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

/// The parser's input: an [`AsyncBufRead`] over the transport that
///
/// * drops whitespace between top-level items (keepalives never reach the parser, so they cannot
///   pile up in its buffer),
/// * exposes at most `max_item` bytes per top-level item (stanza, header, comment…) and fails the
///   read once the parser wants more: this bounds the parser's buffer, whatever the peer sends,
/// * rejects the C0 control characters XML 1.0 forbids, and
/// * counts bytes and touches the [`Activity`] clock on every non-empty read.
///
/// The owner calls [`item_done`](Self::item_done) whenever a top-level item is complete.
pub(super) struct BoundedInput<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// Bytes consumed by the parser since the current top-level item began.
    used: usize,
    max_item: usize,
    /// A top-level item has begun (a non-whitespace byte was exposed) and is not done yet.
    in_item: bool,
    eof: bool,
    /// A forbidden control character ends the buffered data: the parser may consume what
    /// precedes it, and fails when it reaches it (whatever the read boundaries).
    bad_byte: Option<u8>,
    /// Why reading stopped, for errors the parser only sees as I/O failures.
    failure: Option<WireError>,
    bytes_read: u64,
    activity: Activity,
}

impl<R> BoundedInput<R> {
    pub(super) fn new(inner: R, max_item: usize) -> Self {
        BoundedInput {
            inner,
            buf: vec![0; CHUNK].into_boxed_slice(),
            pos: 0,
            end: 0,
            used: 0,
            max_item,
            in_item: false,
            eof: false,
            bad_byte: None,
            failure: None,
            bytes_read: 0,
            activity: Activity::new(),
        }
    }

    /// The current top-level item is complete: reset the size budget, skip whitespace again.
    pub(super) fn item_done(&mut self) {
        self.in_item = false;
        self.used = 0;
    }

    /// The error that made a read fail, if it was ours rather than the transport's.
    pub(super) fn failure(&self) -> Option<&WireError> {
        self.failure.as_ref()
    }

    /// The transport reported EOF.
    pub(super) fn at_eof(&self) -> bool {
        self.eof
    }

    pub(super) fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    pub(super) fn activity(&self) -> &Activity {
        &self.activity
    }

    fn skip_whitespace(&mut self) {
        let pending = self.buf.get(self.pos..self.end).unwrap_or_default();
        let skip = pending
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            .unwrap_or(pending.len());
        self.pos += skip;
    }

    fn fail(&mut self, error: WireError) -> io::Error {
        let message = error.to_string();
        self.failure = Some(error);
        io::Error::other(message)
    }
}

impl<R: AsyncRead + Unpin> BoundedInput<R> {
    /// Refills the (empty) buffer from the transport.
    fn poll_refill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut read_buf = ReadBuf::new(&mut self.buf);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut read_buf))?;
        let filled = read_buf.filled();
        let len = filled.len();
        let forbidden = filled
            .iter()
            .position(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'));
        self.bad_byte = forbidden.map(|at| filled[at]);
        self.pos = 0;
        self.end = forbidden.unwrap_or(len);
        if len == 0 {
            self.eof = true;
            return Poll::Ready(Ok(()));
        }
        self.bytes_read += len as u64;
        self.activity.touch();
        Poll::Ready(Ok(()))
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for BoundedInput<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let available = ready!(self.as_mut().poll_fill_buf(cx))?;
        let n = available.len().min(out.remaining());
        out.put_slice(available.get(..n).unwrap_or_default());
        self.consume(n);
        Poll::Ready(Ok(()))
    }
}

impl<R: AsyncRead + Unpin> AsyncBufRead for BoundedInput<R> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        loop {
            if let Some(failure) = &this.failure {
                return Poll::Ready(Err(io::Error::other(failure.to_string())));
            }
            if this.pos == this.end {
                if let Some(b) = this.bad_byte {
                    return Poll::Ready(Err(this.fail(WireError::Malformed(format!(
                        "control character U+{b:04X} is not allowed in XML"
                    )))));
                }
                if this.eof {
                    return Poll::Ready(Ok(&[]));
                }
                ready!(this.poll_refill(cx))?;
                continue;
            }
            if !this.in_item {
                this.skip_whitespace();
                if this.pos == this.end {
                    continue;
                }
                this.in_item = true;
            }
            let room = this.max_item.saturating_sub(this.used);
            if room == 0 {
                let limit = this.max_item;
                return Poll::Ready(Err(this.fail(WireError::TooLarge { limit })));
            }
            let end = this.end.min(this.pos.saturating_add(room));
            return Poll::Ready(Ok(this.buf.get(this.pos..end).unwrap_or_default()));
        }
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        let amt = amt.min(this.end - this.pos);
        this.pos += amt;
        this.used += amt;
    }
}
