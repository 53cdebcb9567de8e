//! Byte-level splitting of a stream into top-level items, so the XML parser only ever runs
//! over complete ones, synchronously.
//!
//! A top-level item is a whole element (`<message>…</message>`, `<iq/>`), a stream header
//! (an open tag named `stream`, which stays open), a closing tag at the top (`</stream:stream>`),
//! a comment, processing instruction, CDATA section or markup declaration, or the first byte
//! of top-level character data (an error in any case). The splitter only finds where each ends (quotes, comments, CDATA and
//! declaration brackets respected); the parser checks everything else. The scan resumes where
//! it stopped, so every byte is looked at once however the data is chunked.

use std::collections::VecDeque;

use memchr::memmem;

use crate::wire::error::WireError;

/// What the scanner is in the middle of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between items: whitespace is skipped.
    Between,
    /// Character data inside an element.
    Content,
    /// A `<` at `tag`, not classified yet.
    Lt { tag: usize },
    /// Inside a start tag that began at `tag`; `quote` is the open quote, or 0.
    StartTag { tag: usize, quote: u8 },
    /// Inside an end tag.
    EndTag,
    /// Inside a comment, PI or CDATA section, up to `end`.
    Until { end: &'static [u8] },
    /// Inside `<!DOCTYPE` or another `<!` declaration.
    Declaration { brackets: usize, quote: u8 },
}

/// Finds the ends of top-level items; see the module docs.
#[derive(Debug)]
pub(super) struct Splitter {
    /// The next byte to look at.
    at: usize,
    /// Everything before this is complete items and whitespace between them.
    ready: usize,
    /// Where each complete item not yet handed over ends.
    ends: VecDeque<usize>,
    /// Where the current incomplete item began.
    item: Option<usize>,
    /// Open elements inside the current item.
    depth: usize,
    state: State,
    max_item: usize,
    max_depth: usize,
}

impl Splitter {
    /// A splitter failing items longer than `max_item` bytes or nested deeper than
    /// `max_depth` elements.
    pub(super) fn new(max_item: usize, max_depth: usize) -> Self {
        Splitter {
            at: 0,
            ready: 0,
            ends: VecDeque::new(),
            item: None,
            depth: 0,
            state: State::Between,
            max_item,
            max_depth,
        }
    }

    /// The end of the complete items found so far.
    pub(super) fn ready(&self) -> usize {
        self.ready
    }

    /// The end of the first complete item that ends after `pos`, forgetting those before.
    pub(super) fn item_end_after(&mut self, pos: usize) -> Option<usize> {
        while self.ends.front().is_some_and(|&end| end <= pos) {
            self.ends.pop_front();
        }
        self.ends.front().copied()
    }

    /// The end of the first complete item not yet forgotten.
    pub(super) fn first_end(&self) -> Option<usize> {
        self.ends.front().copied()
    }

    /// An item has begun and is not complete yet.
    pub(super) fn mid_item(&self) -> bool {
        self.item.is_some()
    }

    /// The buffer dropped its first `n` bytes (all before `ready`).
    pub(super) fn shift(&mut self, n: usize) {
        self.at -= n;
        self.ready -= n;
        self.ends.retain_mut(|end| match end.checked_sub(n) {
            Some(shifted) => {
                *end = shifted;
                true
            }
            None => false,
        });
        if let Some(item) = &mut self.item {
            *item -= n;
        }
        match &mut self.state {
            State::Lt { tag } | State::StartTag { tag, .. } => *tag -= n,
            _ => {}
        }
    }

    /// Scans `data` (the whole buffer, of which the bytes up to the previous call's end were
    /// already seen) and advances [`ready`](Self::ready) past every item it completes. Fails
    /// once the current item is known to break a limit; the items before it stay ready.
    pub(super) fn scan(&mut self, data: &[u8]) -> Result<(), WireError> {
        loop {
            let end = match self.item {
                Some(start) => data.len().min(start.saturating_add(self.max_item)),
                None => data.len(),
            };
            // Stopped short of the data (at `end`, or before it needing more): over the cap.
            let stuck = self.at >= end || !self.step(&data[..end])?;
            if stuck {
                if self.item.is_some() && end < data.len() {
                    return Err(WireError::TooLarge {
                        limit: self.max_item,
                    });
                }
                return Ok(());
            }
        }
    }

    /// Advances by one token within `data`; false if it needs more data to do so.
    fn step(&mut self, data: &[u8]) -> Result<bool, WireError> {
        let at = self.at;
        match self.state {
            State::Between => {
                let skip = data[at..]
                    .iter()
                    .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
                let Some(skip) = skip else {
                    self.at = data.len();
                    self.ready = self.at;
                    return Ok(true);
                };
                let start = at + skip;
                self.at = start;
                self.ready = start;
                self.item = Some(start);
                if data[start] == b'<' {
                    self.state = State::Lt { tag: start };
                } else {
                    // Character data at the top level is an error the parser reports; its
                    // first byte is enough, and an item that short cannot depend on reads.
                    self.at = start + 1;
                    self.complete();
                }
            }
            State::Content => match memchr::memchr(b'<', &data[at..]) {
                Some(i) => self.state = State::Lt { tag: at + i },
                None => self.at = data.len(),
            },
            State::Lt { tag } => return Ok(self.classify(data, tag)),
            State::StartTag { tag, quote } => return self.start_tag(data, tag, quote),
            State::EndTag => {
                let Some(i) = memchr::memchr(b'>', &data[at..]) else {
                    self.at = data.len();
                    return Ok(true);
                };
                self.at = at + i + 1;
                self.depth = self.depth.saturating_sub(1);
                self.element_done();
            }
            State::Until { end } => match memmem::find(&data[at..], end) {
                Some(i) => {
                    self.at = at + i + end.len();
                    self.element_done();
                }
                None => {
                    // Keep a possible partial terminator for the next scan.
                    self.at = data.len().saturating_sub(end.len() - 1).max(at);
                    return Ok(false);
                }
            },
            State::Declaration { brackets, quote } => self.declaration(data, brackets, quote),
        }
        Ok(true)
    }

    /// Decides what the markup at `data[tag] == b'<'` is.
    fn classify(&mut self, data: &[u8], tag: usize) -> bool {
        const SPECIAL: [(&[u8], State); 3] = [
            (b"<!--", State::Until { end: b"-->" }),
            (b"<![CDATA[", State::Until { end: b"]]>" }),
            (
                b"<!DOCTYPE",
                State::Declaration {
                    brackets: 0,
                    quote: 0,
                },
            ),
        ];
        let rest = &data[tag..];
        let Some(&second) = rest.get(1) else {
            return false;
        };
        let (state, skip) = match second {
            b'/' => (State::EndTag, 2),
            b'?' => (State::Until { end: b"?>" }, 2),
            b'!' => {
                let matched = SPECIAL.iter().find(|(open, _)| rest.starts_with(open));
                match matched {
                    Some((open, state)) => (*state, open.len()),
                    None if SPECIAL.iter().any(|(open, _)| open.starts_with(rest)) => {
                        return false;
                    }
                    None => (
                        State::Declaration {
                            brackets: 0,
                            quote: 0,
                        },
                        2,
                    ),
                }
            }
            _ => (State::StartTag { tag, quote: 0 }, 1),
        };
        self.state = state;
        self.at = tag + skip;
        true
    }

    fn start_tag(&mut self, data: &[u8], tag: usize, quote: u8) -> Result<bool, WireError> {
        let at = self.at;
        if quote != 0 {
            match memchr::memchr(quote, &data[at..]) {
                Some(i) => {
                    self.at = at + i + 1;
                    self.state = State::StartTag { tag, quote: 0 };
                }
                None => self.at = data.len(),
            }
            return Ok(true);
        }
        let Some(i) = memchr::memchr3(b'>', b'"', b'\'', &data[at..]) else {
            self.at = data.len();
            return Ok(true);
        };
        let found = at + i;
        self.at = found + 1;
        if data[found] != b'>' {
            self.state = State::StartTag {
                tag,
                quote: data[found],
            };
            return Ok(true);
        }
        if self.depth == 0 && is_stream_header(&data[tag + 1..found]) {
            self.complete();
            return Ok(true);
        }
        if self.depth >= self.max_depth {
            return Err(WireError::TooDeep {
                limit: self.max_depth,
            });
        }
        let empty = data[found - 1] == b'/';
        if !empty {
            self.depth += 1;
        }
        self.element_done();
        Ok(true)
    }

    fn declaration(&mut self, data: &[u8], mut brackets: usize, mut quote: u8) {
        for (i, &b) in data[self.at..].iter().enumerate() {
            match b {
                _ if quote != 0 && b == quote => quote = 0,
                _ if quote != 0 => {}
                b'"' | b'\'' => quote = b,
                b'[' => brackets += 1,
                b']' => brackets = brackets.saturating_sub(1),
                b'>' if brackets == 0 => {
                    self.at += i + 1;
                    self.element_done();
                    return;
                }
                _ => {}
            }
        }
        self.at = data.len();
        self.state = State::Declaration { brackets, quote };
    }

    /// A tag or other markup ended at `at`: the item is complete if no element is open.
    fn element_done(&mut self) {
        if self.depth == 0 {
            self.complete();
        } else {
            self.state = State::Content;
        }
    }

    fn complete(&mut self) {
        self.ends.push_back(self.at);
        self.ready = self.at;
        self.item = None;
        self.state = State::Between;
    }
}

/// Whether a start tag's content (after `<`, before `>`) opens a stream: its name is
/// `stream` with any prefix. The parser checks the namespace.
fn is_stream_header(tag: &[u8]) -> bool {
    let name_end = tag
        .iter()
        .position(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'/'))
        .unwrap_or(tag.len());
    let name = &tag[..name_end];
    name == b"stream" || name.ends_with(b":stream")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_end_where_expected_whatever_the_chunking() {
        let header = r#"<stream:stream to='x' xmlns:stream="http://etherx.jabber.org/streams">"#;
        let items = [
            header,
            r#"<message id="a>b" x='"'><gcm xmlns="google:mobile:data">{"a":"&lt;&gt;"}</gcm></message>"#,
            "<iq/>",
            "<!-- <x> -- -->",
            "<?pi <a> ?>",
            "<message><![CDATA[</message>]]><a/></message>",
            r#"<!DOCTYPE x [<!ENTITY y "]>">]>"#,
            "</stream:stream>",
        ];
        let data = items.join(" \n");
        // Where `ready` may stand: at an item end or in the whitespace after it.
        let mut allowed = vec![0];
        let mut at = 0;
        for item in items {
            at += item.len();
            allowed.extend([at, at + 1, at + 2]);
            at += 2;
        }
        let ends: Vec<usize> = allowed.iter().copied().skip(1).step_by(3).collect();
        for chunk in [1, 2, 3, 7, 64, data.len()] {
            let mut s = Splitter::new(usize::MAX, 16);
            let mut seen = Vec::new();
            for len in (chunk..data.len() + chunk).step_by(chunk) {
                let len = len.min(data.len());
                s.scan(&data.as_bytes()[..len]).unwrap();
                assert!(allowed.contains(&s.ready()), "chunk {chunk}: {}", s.ready());
                seen.push(s.ready());
            }
            assert_eq!(s.ready(), data.len(), "chunk {chunk}");
            if chunk == 1 {
                assert!(ends.iter().all(|e| seen.contains(e)), "{seen:?}");
            }
        }
    }

    #[test]
    fn incomplete_items_are_not_ready() {
        for partial in [
            "<message><a/>",
            "<iq id='>'",
            "<!-- -",
            "<![CDATA[x]]",
            "<!DOCTYPE [>",
        ] {
            let mut s = Splitter::new(usize::MAX, 16);
            s.scan(partial.as_bytes()).unwrap();
            assert_eq!(s.ready(), 0, "{partial}");
            assert!(s.mid_item(), "{partial}");
        }
    }

    #[test]
    fn top_level_text_is_an_item_of_one_byte() {
        let mut s = Splitter::new(usize::MAX, 16);
        s.scan(b"  hello <iq/>").unwrap();
        assert_eq!(s.item_end_after(0), Some(3));
    }

    #[test]
    fn items_over_the_cap_fail_and_at_the_cap_pass() {
        let mut s = Splitter::new(5, 16);
        s.scan(b" <iq/>").unwrap();
        assert_eq!(s.ready(), 6);
        let mut s = Splitter::new(5, 16);
        assert!(matches!(
            s.scan(b"<iq  />"),
            Err(WireError::TooLarge { limit: 5 })
        ));
        // Exactly at the cap and incomplete: wait for more.
        let mut s = Splitter::new(5, 16);
        s.scan(b"<iq  ").unwrap();
        assert!(s.mid_item());
    }

    #[test]
    fn nesting_over_the_limit_fails_before_the_item_ends() {
        let mut s = Splitter::new(usize::MAX, 2);
        s.scan(b"<a><b/><b></b></a>").unwrap();
        assert_eq!(s.ready(), 18);
        let mut s = Splitter::new(usize::MAX, 2);
        assert!(matches!(s.scan(b"<a><b><c"), Ok(())));
        assert!(matches!(
            s.scan(b"<a><b><c>"),
            Err(WireError::TooDeep { limit: 2 })
        ));
    }

    #[test]
    fn shifting_keeps_positions_consistent() {
        let data = b"<a/><message><b>text";
        let mut s = Splitter::new(usize::MAX, 16);
        s.scan(data).unwrap();
        assert_eq!(s.ready(), 4);
        s.shift(4);
        let rest = [&data[4..], b"</b></message>".as_slice()].concat();
        s.scan(&rest).unwrap();
        assert_eq!(s.ready(), rest.len());
    }
}
