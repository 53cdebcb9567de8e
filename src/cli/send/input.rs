//! Reading NDJSON input: bounded line reads, and turning each line into a message or a reason.

use std::io::Read;
use std::path::Path;

use gcm_ccs::{Outgoing, Record};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Longest line accepted, in bytes. A valid message is far smaller (its payload is at most
/// 4 KiB); longer lines are skipped without being held in memory.
pub const MAX_LINE: usize = 64 * 1024;

const BOM: &[u8] = "\u{feff}".as_bytes();

/// Reads lines of at most [`MAX_LINE`] bytes, whatever the input holds.
pub struct Lines<R> {
    inner: R,
    buf: Vec<u8>,
    number: u64,
}

/// One input line: its 1-based number, its first [`MAX_LINE`] bytes (without the `\n`), and
/// its full length.
pub struct RawLine<'a> {
    pub number: u64,
    pub bytes: &'a [u8],
    pub len: usize,
}

impl<R: AsyncBufRead + Unpin> Lines<R> {
    pub fn new(inner: R) -> Self {
        Lines {
            inner,
            buf: Vec::new(),
            number: 0,
        }
    }

    /// The next line; `None` at the end of the input.
    pub async fn next(&mut self) -> std::io::Result<Option<RawLine<'_>>> {
        self.buf.clear();
        let mut len = 0;
        loop {
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                if len == 0 && self.buf.is_empty() {
                    return Ok(None);
                }
                break;
            }
            let newline = chunk.iter().position(|&b| b == b'\n');
            let part = &chunk[..newline.unwrap_or(chunk.len())];
            let room = MAX_LINE.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&part[..part.len().min(room)]);
            len += part.len();
            let used = newline.map_or(part.len(), |n| n + 1);
            self.inner.consume(used);
            if newline.is_some() {
                break;
            }
        }
        self.number += 1;
        Ok(Some(RawLine {
            number: self.number,
            bytes: &self.buf,
            len,
        }))
    }
}

impl RawLine<'_> {
    /// The CCS message or Web Push on this line, or why there is none. A trailing `\r` is
    /// ignored, and so is a UTF-8 byte order mark at the start of the first line.
    pub fn parse(&self) -> Result<Outgoing, Box<Record>> {
        let text = self.text()?;
        Outgoing::from_json(text).map_err(|e| Box::new(Record::rejected(text, &e)))
    }

    /// The line as text: within the length limit, UTF-8 and not blank. A trailing `\r` is
    /// ignored, and so is a UTF-8 byte order mark at the start of the first line.
    pub fn text(&self) -> Result<&str, Box<Record>> {
        if self.len > MAX_LINE {
            return Err(rejected(
                "LINE_TOO_LONG",
                format!("line is {} bytes: the limit is {MAX_LINE}", self.len),
            ));
        }
        let mut bytes = self.bytes.strip_suffix(b"\r").unwrap_or(self.bytes);
        if self.number == 1 {
            bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            rejected(
                "NOT_UTF8",
                format!("not UTF-8 text (bad byte at offset {})", e.valid_up_to()),
            )
        })?;
        if text.trim().is_empty() {
            return Err(rejected(
                "BLANK_LINE",
                "blank line: expected one JSON message object",
            ));
        }
        Ok(text)
    }
}

/// The record of a line that is not JSON text at all.
fn rejected(code: &str, description: impl Into<String>) -> Box<Record> {
    Box::new(Record::invalid(code, description.into(), None, None))
}

/// Lines in a file, a last line without `\n` included; read in chunks, for the progress total.
pub fn count_lines(path: &Path) -> std::io::Result<u64> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0; 256 * 1024];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(lines + u64::from(last != b'\n'));
        }
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        last = buf[n - 1];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse_all(input: &[u8]) -> Vec<(u64, Result<String, String>)> {
        let mut lines = Lines::new(input);
        let mut out = Vec::new();
        while let Some(line) = lines.next().await.unwrap() {
            let parsed = line.parse().map(|m| m.target().to_owned());
            out.push((line.number, parsed.map_err(|r| r.code.unwrap_or_default())));
        }
        out
    }

    #[tokio::test]
    async fn every_kind_of_line() {
        let long = format!("{{\"to\":\"{}\"}}", "x".repeat(MAX_LINE));
        let input = [
            "\u{feff}{\"to\":\"a\"}\r",
            "",
            "   ",
            "{\"to\":\"b\"",
            "[1,2]",
            "{\"data\":{\"k\":\"v\"}}",
            "{\"to\":\"c\",\"data\":{\"google.x\":\"v\"}}",
            &long,
            "{\"condition\":\"'a' in topics\"}",
        ]
        .join("\n");
        let mut bytes = input.into_bytes();
        bytes.extend_from_slice(b"\n\xff\xfe garbage\n{\"to\":\"last\"}");
        let got = parse_all(&bytes).await;
        let want: Vec<(u64, Result<String, String>)> = vec![
            (1, Ok("a".into())),
            (2, Err("BLANK_LINE".into())),
            (3, Err("BLANK_LINE".into())),
            (4, Err("INVALID_JSON".into())),
            (5, Err("INVALID_JSON".into())),
            (6, Err("MISSING_TARGET".into())),
            (7, Err("INVALID_DATA_KEY".into())),
            (8, Err("LINE_TOO_LONG".into())),
            (9, Ok("'a' in topics".into())),
            (10, Err("NOT_UTF8".into())),
            (11, Ok("last".into())),
        ];
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn bom_only_counts_on_the_first_line_and_final_newline_adds_no_line() {
        let got = parse_all("{\"to\":\"a\"}\n\u{feff}{\"to\":\"b\"}\n".as_bytes()).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].1, Err("INVALID_JSON".into()));
    }

    #[test]
    fn counting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in");
        for (text, n) in [("", 0), ("a", 1), ("a\n", 1), ("a\n\nb", 3)] {
            std::fs::write(&path, text).unwrap();
            assert_eq!(count_lines(&path).unwrap(), n, "{text:?}");
        }
    }
}
