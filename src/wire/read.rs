//! Incremental framing of an XMPP byte stream into [`Frame`]s, for both roles.
//!
//! The `<stream:stream>` root stays open for the whole connection; each of its children is one
//! frame. A `<stream:stream>` open tag where a child is expected is a stream restart (after
//! SASL) and yields another [`Frame::StreamOpen`].

mod build;
mod input;
mod unescape;

#[cfg(test)]
mod tests;

use quick_xml::NsReader;
use quick_xml::errors::{Error as XmlError, SyntaxError};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use tokio::io::AsyncRead;

use self::build::{
    ElementBuilder, MessageBuilder, StanzaBuilder, check_attributes, is_client_ns, stream_header,
};
use self::input::BoundedInput;
use self::unescape::{TextPiece, resolve_ref, snippet};
use crate::error::WireError;
use crate::wire::frame::{Frame, NS_STREAMS, StreamHeader};

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
    xml: NsReader<BoundedInput<R>>,
    /// Event buffer, reused for every event.
    buf: Vec<u8>,
    limits: Limits,
    /// Element depth below the current stream root.
    depth: usize,
    /// Stream headers seen so far.
    headers: usize,
    /// `</stream:stream>` was read.
    closed: bool,
    /// The first error; every later call returns it again.
    failed: Option<WireError>,
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
    Text {
        depth: usize,
        piece: TextPiece<'a>,
    },
    /// The element at `depth` ended.
    Close {
        depth: usize,
    },
    /// The stream root ended.
    StreamEnd,
    /// A comment, processing instruction or XML declaration.
    Ignored,
    Eof,
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
        let mut xml = NsReader::from_reader(BoundedInput::new(inner, limits.max_stanza_bytes));
        let config = xml.config_mut();
        config.expand_empty_elements = true;
        config.check_end_names = true;
        xml.resolver_mut()
            .set_max_namespace_bindings(limits.max_attributes);
        FrameReader {
            xml,
            buf: Vec::new(),
            limits,
            depth: 0,
            headers: 0,
            closed: false,
            failed: None,
        }
    }

    /// Reads the next frame. Whitespace keepalives are consumed silently.
    ///
    /// Any error is fatal: it is returned again by every later call. After `</stream:stream>`
    /// the next call returns `Eof { mid_stanza: false }` once the peer closes the connection.
    ///
    /// **Not cancel-safe**: dropping the future mid-read corrupts the parse. Run the reader in a
    /// task of its own and hand frames over a channel; never use it inside `select!`.
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
    pub fn bytes_read(&self) -> u64 {
        self.xml.get_ref().bytes_read()
    }

    async fn read_frame(&mut self) -> Result<Frame, WireError> {
        loop {
            let frame = self.read_top_level().await?;
            self.xml.get_mut().item_done();
            if let Some(frame) = frame {
                return Ok(frame);
            }
        }
    }

    /// Reads one top-level item: a whole element, the stream end, or something ignorable.
    async fn read_top_level(&mut self) -> Result<Option<Frame>, WireError> {
        let closed = self.closed;
        let top = match self.next_node().await? {
            Node::Ignored => return Ok(None),
            Node::Eof => return Err(WireError::Eof { mid_stanza: false }),
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
                Node::Eof => return Err(WireError::Eof { mid_stanza: true }),
                Node::StreamEnd => {
                    return Err(WireError::Malformed("stream ended inside a stanza".into()));
                }
            }
        }
    }

    /// Reads and digests one parser event, enforcing the depth and attribute limits.
    async fn next_node(&mut self) -> Result<Node<'_>, WireError> {
        self.buf.clear();
        let event = match self.xml.read_event_into_async(&mut self.buf).await {
            Ok(event) => event,
            Err(error) => return Err(wire_error(self.xml.get_ref(), error)),
        };
        Ok(match event {
            Event::Start(start) => {
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
                Node::Open {
                    depth: self.depth,
                    ns,
                    start,
                }
            }
            Event::End(_) if self.depth == 0 => Node::StreamEnd,
            Event::End(_) => {
                self.depth -= 1;
                Node::Close {
                    depth: self.depth + 1,
                }
            }
            Event::Text(text) => Node::Text {
                depth: self.depth,
                piece: TextPiece::Str(text.xml10_content()),
            },
            Event::CData(data) => Node::Text {
                depth: self.depth,
                piece: TextPiece::Str(data.into_inner()),
            },
            Event::GeneralRef(reference) => Node::Text {
                depth: self.depth,
                piece: TextPiece::Char(resolve_ref(&reference)?),
            },
            Event::Comment(_) | Event::PI(_) | Event::Decl(_) => Node::Ignored,
            Event::DocType(_) => {
                return Err(WireError::Forbidden("DOCTYPE declaration".into()));
            }
            Event::Eof => Node::Eof,
            // Not produced: `expand_empty_elements` turns `<a/>` into Start + End.
            Event::Empty(_) => {
                return Err(WireError::Malformed(
                    "unexpected empty-element event".into(),
                ));
            }
        })
    }
}

/// Classifies a top-level start tag and extracts what is needed from it.
fn top_level(ns: &str, start: &BytesStart<'_>) -> Result<TopLevel, WireError> {
    let name = start.local_name();
    Ok(match name.into_inner() {
        "stream" if ns == NS_STREAMS => TopLevel::Header(stream_header(start)?),
        "message" if is_client_ns(ns) => TopLevel::Message(MessageBuilder::new(start)?),
        _ => TopLevel::Element(ElementBuilder::new(ns, start)?),
    })
}

/// Maps a parser error, preferring what the input layer knows about its cause.
fn wire_error<R>(input: &BoundedInput<R>, error: XmlError) -> WireError {
    if let Some(failure) = input.failure() {
        return failure.clone();
    }
    if input.at_eof() {
        return WireError::Eof { mid_stanza: true };
    }
    match error {
        XmlError::Io(io) => WireError::Io(io),
        XmlError::Syntax(SyntaxError::InvalidBangMarkup) => {
            WireError::Forbidden("markup declaration (`<!…>`) outside comments and CDATA".into())
        }
        other => WireError::Malformed(other.to_string()),
    }
}
