//! Test helpers shared by the reader and writer tests.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use super::{Frame, FrameReader, Limits};
use crate::wire::error::WireError;

/// Serves one chunk per read, then EOF.
pub(crate) struct Chunks(VecDeque<Vec<u8>>);

impl Chunks {
    pub(crate) fn new<I, C>(chunks: I) -> Self
    where
        I: IntoIterator<Item = C>,
        C: AsRef<[u8]>,
    {
        let chunks = chunks.into_iter().map(|c| c.as_ref().to_vec());
        // An empty read would mean EOF.
        Chunks(chunks.filter(|c| !c.is_empty()).collect())
    }

    /// `bytes` one byte per read.
    pub(crate) fn bytewise(bytes: &[u8]) -> Self {
        Chunks::new(bytes.chunks(1))
    }
}

impl AsyncRead for Chunks {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(chunk) = self.0.front_mut() {
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..n]);
            chunk.drain(..n);
            if chunk.is_empty() {
                self.0.pop_front();
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// Reads frames until the first error, which is returned with them.
pub(crate) async fn read_until_error<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
) -> (Vec<Frame>, WireError) {
    let mut frames = Vec::new();
    loop {
        match reader.next_frame().await {
            Ok(frame) => frames.push(frame),
            Err(error) => return (frames, error),
        }
    }
}

/// All frames of `bytes` read in one chunk with default limits, and the final error.
pub(crate) async fn frames_of(bytes: &[u8]) -> (Vec<Frame>, WireError) {
    read_until_error(&mut FrameReader::new(
        Chunks::new([bytes]),
        Limits::default(),
    ))
    .await
}
