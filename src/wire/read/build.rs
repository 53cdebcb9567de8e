//! Turning parser events into frames: the `<message>` fast path and the generic element tree.

use std::borrow::Cow;
use std::mem;

use quick_xml::events::BytesStart;

use super::unescape::{TextPiece, attr_value, snippet};
use crate::wire::error::WireError;
use crate::wire::frame::{
    Element, Frame, MessageStanza, NS_CLIENT, NS_GCM, NS_STANZA_ERRORS, StanzaErrorInfo,
    StreamHeader,
};

/// Receives the content of one top-level element. Depths are relative to the stream root:
/// the top-level element itself is at depth 1.
pub(super) trait StanzaBuilder {
    /// A child element starts at `depth` (≥ 2).
    fn open(&mut self, depth: usize, ns: &str, start: &BytesStart<'_>) -> Result<(), WireError>;
    /// Character data directly inside the element at `depth`.
    fn text(&mut self, depth: usize, piece: &TextPiece<'_>);
    /// The element at `depth` ends (depth 1: the whole stanza).
    fn close(&mut self, depth: usize);
    fn finish(self) -> Frame;
}

/// Calls `f(qualified name, value)` for every attribute that is not a namespace declaration.
/// The attributes must have been validated by [`check_attributes`].
fn for_each_attr(
    start: &BytesStart<'_>,
    mut f: impl FnMut(&str, Cow<'_, str>),
) -> Result<(), WireError> {
    for attr in start.attributes().with_checks(false) {
        let attr = attr.map_err(|e| WireError::Malformed(e.to_string()))?;
        if attr.key.as_namespace_binding().is_none() {
            f(attr.key.into_inner(), attr_value(&attr.value)?);
        }
    }
    Ok(())
}

/// Rejects malformed or duplicate attributes and more than `max` of them (namespace
/// declarations included). The duplicate check (which allocates) only runs when there are at
/// least two.
pub(super) fn check_attributes(start: &BytesStart<'_>, max: usize) -> Result<(), WireError> {
    if count_attributes(start, max, false)? > 1 {
        count_attributes(start, max, true)?;
    }
    Ok(())
}

/// Counts the attributes of `start`, failing on a syntax error, on more than `max`, and, when
/// `check_duplicates`, on a repeated name.
fn count_attributes(
    start: &BytesStart<'_>,
    max: usize,
    check_duplicates: bool,
) -> Result<usize, WireError> {
    let mut attrs = start.attributes();
    attrs.with_checks(check_duplicates);
    let mut count = 0;
    for attr in attrs {
        attr.map_err(|e| WireError::Malformed(e.to_string()))?;
        count += 1;
        if count > max {
            return Err(WireError::Malformed(format!(
                "more than {max} attributes on <{}>",
                snippet(start.name().into_inner())
            )));
        }
    }
    Ok(count)
}

fn local_name<'a>(start: &'a BytesStart<'_>) -> &'a str {
    start.local_name().into_inner()
}

/// The attributes of a `<stream:stream>` open tag.
pub(super) fn stream_header(start: &BytesStart<'_>) -> Result<StreamHeader, WireError> {
    let mut header = StreamHeader::default();
    for_each_attr(start, |name, value| {
        let slot = match name {
            "from" => &mut header.from,
            "to" => &mut header.to,
            "id" => &mut header.id,
            "version" => &mut header.version,
            _ => return,
        };
        *slot = Some(value.into_owned());
    })?;
    Ok(header)
}

/// Whether `{ns}` is the stanza namespace (`jabber:client`, or none at all).
pub(super) fn is_client_ns(ns: &str) -> bool {
    ns == NS_CLIENT || ns.is_empty()
}

/// Where character data currently goes inside a `<message>`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Capture {
    Nothing,
    Gcm,
    Error,
    ErrorText,
}

/// Builds a [`MessageStanza`] straight from events.
pub(super) struct MessageBuilder {
    msg: MessageStanza,
    capture: Capture,
    gcm: String,
    error: StanzaErrorInfo,
    error_text: String,
}

impl MessageBuilder {
    pub(super) fn new(start: &BytesStart<'_>) -> Result<Self, WireError> {
        let mut msg = MessageStanza::default();
        for_each_attr(start, |name, value| {
            let slot = match name {
                "id" if value.is_empty() => return,
                "id" => &mut msg.id,
                "type" => &mut msg.kind,
                "from" => &mut msg.from,
                "to" => &mut msg.to,
                _ => return,
            };
            *slot = Some(value.into_owned());
        })?;
        Ok(MessageBuilder {
            msg,
            capture: Capture::Nothing,
            gcm: String::new(),
            error: StanzaErrorInfo::default(),
            error_text: String::new(),
        })
    }

    fn open_child(&mut self, ns: &str, start: &BytesStart<'_>) -> Result<(), WireError> {
        let name = local_name(start);
        if ns == NS_GCM && name == "gcm" && self.msg.gcm.is_none() {
            self.capture = Capture::Gcm;
        } else if is_client_ns(ns) && name == "error" && self.msg.error.is_none() {
            self.capture = Capture::Error;
            for_each_attr(start, |name, value| match name {
                "code" => self.error.code = value.trim().parse().ok(),
                "type" => self.error.kind = Some(value.into_owned()),
                _ => {}
            })?;
        }
        Ok(())
    }

    fn open_error_child(&mut self, ns: &str, start: &BytesStart<'_>) {
        let name = local_name(start);
        if ns != NS_STANZA_ERRORS {
            return;
        }
        if name == "text" {
            self.capture = Capture::ErrorText;
        } else if self.error.condition.is_none() {
            self.error.condition = Some(name.to_owned());
        }
    }
}

impl StanzaBuilder for MessageBuilder {
    fn open(&mut self, depth: usize, ns: &str, start: &BytesStart<'_>) -> Result<(), WireError> {
        match (self.capture, depth) {
            (Capture::Nothing, 2) => self.open_child(ns, start)?,
            (Capture::Error, 3) => self.open_error_child(ns, start),
            _ => {}
        }
        Ok(())
    }

    fn text(&mut self, depth: usize, piece: &TextPiece<'_>) {
        match (self.capture, depth) {
            (Capture::Gcm, 2) => piece.push_to(&mut self.gcm),
            (Capture::ErrorText, 3) => piece.push_to(&mut self.error_text),
            _ => {}
        }
    }

    fn close(&mut self, depth: usize) {
        match (self.capture, depth) {
            (Capture::Gcm, 2) => {
                self.msg.gcm = Some(trimmed(mem::take(&mut self.gcm)));
                self.capture = Capture::Nothing;
            }
            (Capture::ErrorText, 3) => {
                self.error.text = Some(mem::take(&mut self.error_text));
                self.capture = Capture::Error;
            }
            (Capture::Error, 2) => {
                self.msg.error = Some(mem::take(&mut self.error));
                self.capture = Capture::Nothing;
            }
            _ => {}
        }
    }

    fn finish(self) -> Frame {
        Frame::Message(self.msg)
    }
}

/// `s` without surrounding whitespace, reusing its allocation when nothing is trimmed.
fn trimmed(s: String) -> String {
    let t = s.trim();
    if t.len() == s.len() { s } else { t.to_owned() }
}

/// Builds a generic [`Element`] tree.
pub(super) struct ElementBuilder {
    root: Element,
    /// Open descendants of `root`, innermost last.
    open: Vec<Element>,
}

impl ElementBuilder {
    pub(super) fn new(ns: &str, start: &BytesStart<'_>) -> Result<Self, WireError> {
        Ok(ElementBuilder {
            root: element(ns, start)?,
            open: Vec::new(),
        })
    }

    fn current(&mut self) -> &mut Element {
        match self.open.last_mut() {
            Some(element) => element,
            None => &mut self.root,
        }
    }
}

fn element(ns: &str, start: &BytesStart<'_>) -> Result<Element, WireError> {
    let mut attrs = Vec::new();
    for_each_attr(start, |name, value| {
        let local = name.rsplit(':').next().unwrap_or(name);
        attrs.push((local.to_owned(), value.into_owned()));
    })?;
    Ok(Element {
        ns: ns.to_owned(),
        name: local_name(start).to_owned(),
        attrs,
        ..Element::default()
    })
}

impl StanzaBuilder for ElementBuilder {
    fn open(&mut self, _depth: usize, ns: &str, start: &BytesStart<'_>) -> Result<(), WireError> {
        self.open.push(element(ns, start)?);
        Ok(())
    }

    fn text(&mut self, _depth: usize, piece: &TextPiece<'_>) {
        piece.push_to(&mut self.current().text);
    }

    fn close(&mut self, _depth: usize) {
        if let Some(done) = self.open.pop() {
            self.current().children.push(done);
        }
    }

    fn finish(self) -> Frame {
        Frame::Element(self.root)
    }
}
