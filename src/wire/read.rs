//! Incremental framing of an XMPP byte stream into [`Frame`]s, for both roles.
//!
//! The `<stream:stream>` root stays open for the whole connection; each of its children is one
//! frame. A `<stream:stream>` open tag where a child is expected is a stream restart (after
//! SASL) and yields another [`Frame::StreamOpen`].

mod build;
mod input;
mod split;
mod unescape;

#[cfg(test)]
mod tests;

use quick_xml::NsReader;
use quick_xml::errors::{Error as XmlError, SyntaxError};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{QName, ResolveResult};
use tokio::io::AsyncRead;

use self::build::{
    ElementBuilder, MessageBuilder, StanzaBuilder, check_attributes, is_client_ns, stream_header,
};
use self::input::Input;
use self::unescape::{TextPiece, resolve_ref, snippet};
use crate::wire::error::WireError;
use crate::wire::frame::{Frame, MessageStanza, NS_STREAMS, StreamHeader};

pub use self::input::Activity;

/// Stream headers allowed on one connection (the initial one plus restarts). Each restart nests
/// one level deeper in the parser, so this bounds the state a peer can make us keep.
const MAX_STREAM_HEADERS: usize = 4;

/// Resource limits applied to what the peer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum size of one top-level element (stanza or stream header), in bytes, from its `<`
    /// to its end.
    pub max_stanza_bytes: usize,
    /// Maximum element nesting inside a stanza (the stanza itself is depth 1).
    pub max_depth: usize,
    /// Maximum attributes per element, namespace declarations included; also the maximum
    /// number of namespace declarations in scope at once.
    pub max_attributes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stanza_bytes: 64 * 1024,
            max_depth: 16,
            max_attributes: 64,
        }
    }
}

/// Reads [`Frame`]s from an XMPP byte stream.
pub struct FrameReader<R> {
    xml: NsReader<Input<R>>,
    /// Event buffer, reused for every event.
    buf: Vec<u8>,
    limits: Limits,
    /// Element depth below the current stream root.
    depth: usize,
    /// The last event was an empty element (`<a/>`): its close is due next.
    close_due: bool,
    /// Stream headers seen so far.
    headers: usize,
    /// `</stream:stream>` was read.
    closed: bool,
    /// The first error; every later call returns it again.
    failed: Option<WireError>,
    /// Take CCS's fixed-shape acks, nacks and control messages without the XML parser
    /// ([`fast_message`]); off only to compare against the parser.
    fast: bool,
}

/// One parser event, digested.
enum Node<'a> {
    /// A start tag; `depth` is its depth (1 for a top-level element).
    Open {
        depth: usize,
        ns: &'a str,
        start: BytesStart<'a>,
    },
    /// Character data inside the element at `depth`.
    Text { depth: usize, piece: TextPiece<'a> },
    /// The element at `depth` ended.
    Close { depth: usize },
    /// The stream root ended.
    StreamEnd,
    /// A comment, processing instruction or XML declaration.
    Ignored,
}

/// What a top-level start tag turns into.
enum TopLevel {
    Header(StreamHeader),
    Message(MessageBuilder),
    Element(ElementBuilder),
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads from `inner` (a TLS or TCP stream, unbuffered: the reader buffers itself).
    pub fn new(inner: R, limits: Limits) -> Self {
        let mut xml = NsReader::from_reader(Input::new(inner, &limits));
        let config = xml.config_mut();
        config.expand_empty_elements = false;
        config.check_end_names = true;
        xml.resolver_mut()
            .set_max_namespace_bindings(limits.max_attributes);
        FrameReader {
            xml,
            buf: Vec::new(),
            limits,
            depth: 0,
            close_due: false,
            headers: 0,
            closed: false,
            failed: None,
            fast: true,
        }
    }

    /// Turns the fixed-shape fast path off (or on again): the frames must be the same either
    /// way, which the tests and the `frame_reader` fuzz target check.
    #[cfg(any(test, feature = "unstable"))]
    pub fn set_fast_path(&mut self, on: bool) {
        self.fast = on;
    }

    /// Reads the next frame. Whitespace keepalives are consumed silently.
    ///
    /// Any error is fatal: it is returned again by every later call. After `</stream:stream>`
    /// the next call returns `Eof { mid_stanza: false }` once the peer closes the connection.
    ///
    /// Bytes are split into complete top-level items first; the XML parser then runs over each
    /// synchronously. Waiting for bytes is the only await, and it keeps its place, but prefer
    /// a task of its own that hands frames over a channel to using this inside `select!`.
    pub async fn next_frame(&mut self) -> Result<Frame, WireError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.read_frame().await;
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }

    /// The liveness clock, touched whenever bytes arrive (keepalives included).
    pub fn activity(&self) -> Activity {
        self.xml.get_ref().activity().clone()
    }

    /// Bytes read from the transport so far.
    #[cfg(test)]
    pub fn bytes_read(&self) -> u64 {
        self.xml.get_ref().bytes_read()
    }

    async fn read_frame(&mut self) -> Result<Frame, WireError> {
        // The fast shape nests two deep with one namespace declaration: within any limits the
        // parser would also accept it under.
        let fits = self.limits.max_depth >= 2 && self.limits.max_attributes >= 1;
        if self.fast
            && fits
            && self.headers > 0
            && self.depth == 0
            && !self.closed
            && !self.close_due
        {
            self.xml.get_mut().fill().await?;
            if let Some(frame) = self.fast_frame() {
                return Ok(frame);
            }
        }
        loop {
            let frame = self.read_top_level().await?;
            self.xml.get_mut().item_done();
            if let Some(frame) = frame {
                return Ok(frame);
            }
        }
    }

    /// The next item, if it is a `<message>` of the one shape CCS writes acks, nacks and
    /// control messages in and its text needs no unescaping; it is then consumed.
    fn fast_frame(&mut self) -> Option<Frame> {
        let client_ns = match self.xml.resolver().resolve_element(QName("message")).0 {
            ResolveResult::Bound(ns) => is_client_ns(ns.into_inner()),
            ResolveResult::Unbound => true,
            ResolveResult::Unknown(_) => false,
        };
        if !client_ns {
            return None;
        }
        let input = self.xml.get_mut();
        let item = input.whole_item()?;
        let (len, stanza) = (item.len(), fast_message(item)?);
        input.skip(len);
        input.item_done();
        Some(Frame::Message(stanza))
    }

    /// Reads one top-level item: a whole element, the stream end, or something ignorable.
    async fn read_top_level(&mut self) -> Result<Option<Frame>, WireError> {
        let closed = self.closed;
        let top = match self.next_node().await? {
            Node::Ignored => return Ok(None),
            _ if closed => {
                return Err(WireError::Malformed("data after </stream:stream>".into()));
            }
            Node::Open { ns, start, .. } => top_level(ns, &start)?,
            Node::StreamEnd => {
                self.closed = true;
                return Ok(Some(Frame::StreamClose));
            }
            Node::Text { .. } | Node::Close { .. } => {
                return Err(WireError::Malformed(
                    "character data between stanzas".into(),
                ));
            }
        };
        let frame = match top {
            TopLevel::Header(header) => self.stream_opened(header)?,
            _ if self.headers == 0 => {
                return Err(WireError::Malformed(
                    "expected a <stream:stream> header first".into(),
                ));
            }
            TopLevel::Message(builder) => self.read_stanza(builder).await?,
            TopLevel::Element(builder) => self.read_stanza(builder).await?,
        };
        Ok(Some(frame))
    }

    /// Accounts for a stream header: it is the new root, not a stanza.
    fn stream_opened(&mut self, header: StreamHeader) -> Result<Frame, WireError> {
        self.depth = 0;
        self.headers += 1;
        if self.headers > MAX_STREAM_HEADERS {
            return Err(WireError::Malformed(format!(
                "more than {MAX_STREAM_HEADERS} stream headers on one connection"
            )));
        }
        Ok(Frame::StreamOpen(header))
    }

    /// Feeds the rest of a top-level element (its start tag already read) to `builder`.
    async fn read_stanza<B: StanzaBuilder>(&mut self, mut builder: B) -> Result<Frame, WireError> {
        loop {
            match self.next_node().await? {
                Node::Open { depth, ns, start } => builder.open(depth, ns, &start)?,
                Node::Text { depth, piece } => builder.text(depth, &piece),
                Node::Close { depth } => {
                    builder.close(depth);
                    if depth == 1 {
                        return Ok(builder.finish());
                    }
                }
                Node::Ignored => {}
                Node::StreamEnd => {
                    return Err(WireError::Malformed("stream ended inside a stanza".into()));
                }
            }
        }
    }

    /// Reads and digests one parser event, enforcing the depth and attribute limits.
    async fn next_node(&mut self) -> Result<Node<'_>, WireError> {
        if std::mem::take(&mut self.close_due) {
            return Ok(closed_element(&mut self.depth));
        }
        if self.depth == 0 {
            // Between top-level items (or right after a stream header): wait for a whole one.
            self.xml.get_mut().fill().await?;
        }
        self.buf.clear();
        let event = self
            .xml
            .read_event_into(&mut self.buf)
            .map_err(wire_error)?;
        let start = match event {
            Event::Start(start) => start,
            Event::Empty(start) => {
                self.close_due = true;
                start
            }
            Event::End(_) => return Ok(closed_element(&mut self.depth)),
            Event::Text(text) => {
                return Ok(Node::Text {
                    depth: self.depth,
                    piece: TextPiece::Str(text.xml10_content()),
                });
            }
            Event::CData(data) => {
                return Ok(Node::Text {
                    depth: self.depth,
                    piece: TextPiece::Str(data.into_inner()),
                });
            }
            Event::GeneralRef(reference) => {
                return Ok(Node::Text {
                    depth: self.depth,
                    piece: TextPiece::Char(resolve_ref(&reference)?),
                });
            }
            Event::Comment(_) | Event::PI(_) | Event::Decl(_) => return Ok(Node::Ignored),
            Event::DocType(_) => {
                return Err(WireError::Forbidden("DOCTYPE declaration".into()));
            }
            // Within a complete item: the parser and the splitter disagree on where it ends.
            Event::Eof => {
                return Err(WireError::Malformed(
                    "element structure the reader does not accept".into(),
                ));
            }
        };
        check_attributes(&start, self.limits.max_attributes)?;
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(WireError::TooDeep {
                limit: self.limits.max_depth,
            });
        }
        let ns = match self.xml.resolver().resolve_element(start.name()).0 {
            ResolveResult::Bound(ns) => ns.into_inner(),
            ResolveResult::Unbound => "",
            ResolveResult::Unknown(prefix) => {
                return Err(WireError::Malformed(format!(
                    "undeclared namespace prefix `{}`",
                    snippet(&prefix)
                )));
            }
        };
        Ok(Node::Open {
            depth: self.depth,
            ns,
            start,
        })
    }
}

/// CCS's acks, nacks and control messages, byte for byte (spec §6.3).
const FAST_HEAD: &[u8] = br#"<message><data:gcm xmlns:data="google:mobile:data">"#;
const FAST_TAIL: &[u8] = b"</data:gcm></message>";

/// `item` as the parser would read it, if it is `FAST_HEAD` + text + `FAST_TAIL` and the text
/// holds nothing the parser would treat specially: no markup or references (`<`, `>`, `&`),
/// no CR (line-end normalization), no 0xEF (U+FFFE, U+FFFF), and valid UTF-8.
fn fast_message(item: &[u8]) -> Option<MessageStanza> {
    let text = item.strip_prefix(FAST_HEAD)?.strip_suffix(FAST_TAIL)?;
    if memchr::memchr3(b'<', b'>', b'&', text).is_some()
        || memchr::memchr2(b'\r', 0xEF, text).is_some()
    {
        return None;
    }
    let text = std::str::from_utf8(text).ok()?.trim();
    Some(MessageStanza {
        gcm: Some(text.to_owned()),
        ..MessageStanza::default()
    })
}

/// The innermost open element ended (at `depth` 0: the stream root).
fn closed_element(depth: &mut usize) -> Node<'static> {
    if *depth == 0 {
        return Node::StreamEnd;
    }
    *depth -= 1;
    Node::Close { depth: *depth + 1 }
}

/// Classifies a top-level start tag and extracts what is needed from it.
fn top_level(ns: &str, start: &BytesStart<'_>) -> Result<TopLevel, WireError> {
    let name = start.local_name();
    Ok(match name.into_inner() {
        "stream" if ns == NS_STREAMS => TopLevel::Header(stream_header(start)?),
        // The splitter takes any top-level `stream` open tag for a header (it stays open).
        "stream" => {
            return Err(WireError::Malformed(format!(
                "<stream> in namespace `{}` is not a stream header",
                snippet(ns)
            )));
        }
        "message" if is_client_ns(ns) => TopLevel::Message(MessageBuilder::new(start)?),
        _ => TopLevel::Element(ElementBuilder::new(ns, start)?),
    })
}

/// Maps a parser error. The parser only sees complete items, so running out of input is a
/// structure it does not accept rather than a truncation.
fn wire_error(error: XmlError) -> WireError {
    match error {
        XmlError::Io(io) => WireError::Io(io),
        XmlError::Syntax(SyntaxError::InvalidBangMarkup) => {
            WireError::Forbidden("markup declaration (`<!…>`) outside comments and CDATA".into())
        }
        other => WireError::Malformed(other.to_string()),
    }
}
