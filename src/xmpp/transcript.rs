//! An optional tap on the raw bytes of every connection (`Config::transcript`), for debugging
//! tools such as `gcm-ccs stream --transcript`. The SASL credential is always redacted.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use crate::wire::write::redact;

/// Which way a chunk went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Read from the server.
    In,
    /// Written to the server.
    Out,
}

/// Receives every chunk a connection writes (whole stanzas or batches of them) and reads (as
/// the socket delivers it), as text with the content of `<auth>` replaced by `***`.
#[derive(Clone)]
pub struct Transcript(Arc<Sink>);

type Sink = dyn Fn(Direction, &str) + Send + Sync;

impl Transcript {
    /// A transcript calling `sink` for each chunk, from the connection tasks: keep it quick.
    pub fn new(sink: impl Fn(Direction, &str) + Send + Sync + 'static) -> Self {
        Transcript(Arc::new(sink))
    }

    pub(crate) fn record(&self, direction: Direction, raw: &[u8]) {
        (self.0)(direction, &redact(raw));
    }
}

impl fmt::Debug for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Transcript(..)")
    }
}

/// Reports everything read through it to a [`Transcript`].
pub(crate) struct TeeRead<R> {
    pub inner: R,
    pub transcript: Transcript,
}

impl<R: AsyncRead + Unpin> AsyncRead for TeeRead<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && buf.filled().len() > before
        {
            self.transcript
                .record(Direction::In, &buf.filled()[before..]);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn tee_reports_reads_and_redacts() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let transcript =
            Transcript::new(move |d, text| log.lock().unwrap().push((d, text.to_owned())));
        let raw: &[u8] = b"<auth mechanism='PLAIN'>c2VjcmV0</auth><success/>";
        let mut tee = TeeRead {
            inner: raw,
            transcript,
        };
        let mut out = Vec::new();
        tee.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, raw);
        let seen = seen.lock().unwrap();
        let text: String = seen.iter().map(|(_, t)| t.as_str()).collect();
        assert!(seen.iter().all(|(d, _)| *d == Direction::In));
        assert!(!text.contains("c2VjcmV0"), "{text}");
        assert!(text.contains("<success/>"));
    }

    #[cfg(feature = "emulator")]
    #[tokio::test]
    async fn handshake_and_traffic_are_recorded_without_the_key() {
        use crate::emulator::{Emulator, EmulatorConfig};
        let key = "AIzaTranscriptSecret";
        let emu = Emulator::start(EmulatorConfig::new("123", key))
            .await
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let mut cfg = emu.client_config("123", key);
        cfg.transcript = Some(Transcript::new(move |d, text| {
            log.lock().unwrap().push((d, text.to_owned()))
        }));
        let (client, _incoming) = emu.connect_in_memory(cfg).await.unwrap();
        client
            .send(crate::Message::to("tok").data("k", "v").build().unwrap())
            .await
            .unwrap();
        client.close().await;
        let seen = seen.lock().unwrap();
        let all = |d: Direction| -> String {
            seen.iter()
                .filter(|(x, _)| *x == d)
                .map(|(_, t)| t.as_str())
                .collect()
        };
        let (out, inb) = (all(Direction::Out), all(Direction::In));
        let secret = crate::wire::sasl::encode_plain("123@gcm.googleapis.com", key);
        assert!(out.contains("<auth") && out.contains("***"), "{out}");
        assert!(!out.contains(key) && !out.contains(&secret), "{out}");
        assert!(
            out.contains("&quot;k&quot;") || out.contains(r#""k""#),
            "{out}"
        );
        assert!(
            inb.contains("<success") && inb.contains("\"message_type\":\"ack\""),
            "{inb}"
        );
    }
}
