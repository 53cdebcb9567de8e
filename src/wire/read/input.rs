//! The byte layer under the XML parser: bounded buffering by complete items, keepalive
//! skipping, liveness.

use std::io::{self, BufRead, Read};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::Instant;

use super::Limits;
use super::split::Splitter;
use crate::wire::error::WireError;

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

    /// When bytes last arrived (millisecond resolution).
    pub fn last(&self) -> Instant {
        self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

/// The parser's input: a buffer over the transport that
///
/// * hands the parser only complete top-level items (see [`Splitter`]), so the parser runs
///   synchronously and never waits mid-item; [`fill`](Self::fill) is the only await,
/// * drops whitespace between top-level items (keepalives never reach the parser),
/// * holds at most `max_item` bytes of an incomplete item (plus one transport read) and fails
///   once an item is longer: this bounds memory, whatever the peer sends,
/// * rejects the C0 control characters XML 1.0 forbids: the items before one are delivered,
///   the item it appears in (or the next) fails, whatever the read boundaries, and
/// * counts bytes and touches the [`Activity`] clock on every non-empty read.
///
/// The owner calls [`item_done`](Self::item_done) whenever the parser completed an item.
pub(super) struct Input<R> {
    inner: R,
    /// Zero-initialised storage; `buf[..filled]` holds data.
    buf: Vec<u8>,
    filled: usize,
    /// The parser's read position.
    pos: usize,
    split: Splitter,
    /// The parser is inside a top-level item (whitespace is data, not a gap).
    in_item: bool,
    eof: bool,
    /// Why no more can be read: a limit or a forbidden byte. The items before it are still
    /// delivered; the error once they are used up.
    stopped: Option<WireError>,
    #[cfg(test)]
    bytes_read: u64,
    activity: Activity,
}

impl<R> Input<R> {
    pub(super) fn new(inner: R, limits: &Limits) -> Self {
        Input {
            inner,
            buf: vec![0; CHUNK],
            filled: 0,
            pos: 0,
            split: Splitter::new(limits.max_stanza_bytes, limits.max_depth),
            in_item: false,
            eof: false,
            stopped: None,
            #[cfg(test)]
            bytes_read: 0,
            activity: Activity::new(),
        }
    }

    /// The current top-level item is complete: whitespace is a gap again.
    pub(super) fn item_done(&mut self) {
        self.in_item = false;
    }

    #[cfg(test)]
    pub(super) fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    pub(super) fn activity(&self) -> &Activity {
        &self.activity
    }

    /// The complete top-level item at the read position, when one is buffered and the parser
    /// has not begun it: for a fast path that takes it whole and [`skip`](Self::skip)s it.
    pub(super) fn whole_item(&mut self) -> Option<&[u8]> {
        if self.in_item || !self.item_ready() {
            return None;
        }
        let end = self.split.item_end_after(self.pos)?;
        Some(&self.buf[self.pos..end])
    }

    /// Moves past `n` bytes of [`whole_item`](Self::whole_item).
    pub(super) fn skip(&mut self, n: usize) {
        self.pos += n;
    }

    /// Skips whitespace between items; true if a complete item is buffered.
    fn item_ready(&mut self) -> bool {
        if !self.in_item {
            let gap = &self.buf[self.pos..self.split.ready().max(self.pos)];
            let skip = gap
                .iter()
                .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(gap.len());
            self.pos += skip;
        }
        self.split.item_end_after(self.pos).is_some()
    }

    /// The end of the item the parser is in (ends before it were forgotten by `item_ready`
    /// when it began).
    fn item_end(&self) -> usize {
        match self.split.first_end() {
            Some(end) if self.in_item => end.max(self.pos),
            _ => self.pos,
        }
    }

    /// Drops consumed bytes and makes room for at least one more read.
    fn make_room(&mut self) {
        let consumed = self.pos;
        if consumed > 0 {
            self.buf.copy_within(consumed..self.filled, 0);
            self.filled -= consumed;
            self.pos = 0;
            self.split.shift(consumed);
        }
        if self.buf.len() - self.filled < CHUNK {
            self.buf.resize(self.filled + CHUNK, 0);
        }
    }
}

impl<R: AsyncRead + Unpin> Input<R> {
    /// Reads until a complete top-level item is buffered. Fails on EOF (`mid_stanza` if an
    /// item had begun), on an item over the size limit, on a forbidden control character and
    /// on transport errors.
    pub(super) async fn fill(&mut self) -> Result<(), WireError> {
        loop {
            if self.item_ready() {
                return Ok(());
            }
            if let Some(error) = &self.stopped {
                return Err(error.clone());
            }
            if self.eof {
                return Err(WireError::Eof {
                    mid_stanza: self.split.mid_item(),
                });
            }
            self.make_room();
            let n = std::future::poll_fn(|cx| self.poll_read_more(cx)).await?;
            if n == 0 {
                self.eof = true;
                continue;
            }
            let start = self.filled;
            self.filled += n;
            #[cfg(test)]
            {
                self.bytes_read += n as u64;
            }
            self.activity.touch();
            let forbidden = self.buf[start..self.filled]
                .iter()
                .position(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
                .map(|i| start + i);
            let end = forbidden.unwrap_or(self.filled);
            self.stopped = match (self.split.scan(&self.buf[..end]), forbidden) {
                (Err(error), _) => Some(error),
                (Ok(()), Some(at)) => Some(WireError::Malformed(format!(
                    "control character U+{:04X} is not allowed in XML",
                    self.buf[at]
                ))),
                (Ok(()), None) => None,
            };
        }
    }

    fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, WireError>> {
        let mut read_buf = ReadBuf::new(&mut self.buf[self.filled..self.filled + CHUNK]);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut read_buf)).map_err(WireError::from)?;
        Poll::Ready(Ok(read_buf.filled().len()))
    }
}

impl<R> Read for Input<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// What the parser sees: the current complete item and nothing after it, so where the parser
/// stops never depends on what else happens to be buffered. (An empty read, which it takes
/// for the end of input, only happens if it disagrees with the splitter about the item.)
impl<R> BufRead for Input<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if !self.in_item && self.item_ready() {
            self.in_item = true;
        }
        Ok(&self.buf[self.pos..self.item_end()])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.item_end());
    }
}
