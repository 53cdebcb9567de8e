//! Frames: the unit the stream reader yields, one per top-level child of `<stream:stream>`.

/// Namespace of the XMPP stream envelope (`stream:` prefix).
pub const NS_STREAMS: &str = "http://etherx.jabber.org/streams";
/// Default namespace of client streams.
pub const NS_CLIENT: &str = "jabber:client";
/// SASL negotiation namespace.
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// Resource binding namespace.
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// Session establishment namespace.
pub const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// Stream error condition namespace.
pub const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// Stanza error condition namespace.
pub const NS_STANZA_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// XEP-0199 ping namespace.
pub const NS_PING: &str = "urn:xmpp:ping";
/// The namespace of the `<gcm>` payload element.
pub const NS_GCM: &str = "google:mobile:data";

/// One top-level unit read from an XMPP stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A `<stream:stream>` open tag: the initial header or a restart after SASL.
    StreamOpen(StreamHeader),
    /// `</stream:stream>`: the peer closed its stream.
    StreamClose,
    /// A `<message>` stanza (jabber:client namespace), pre-digested because it is the hot path.
    Message(MessageStanza),
    /// Any other top-level element (features, auth, success, failure, iq, stream:error, presence…).
    Element(Element),
}

/// Attributes of a `<stream:stream>` open tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamHeader {
    /// `from`: who opens the stream (the server's domain).
    pub from: Option<String>,
    /// `to`: whom the stream is for (`gcm.googleapis.com`).
    pub to: Option<String>,
    /// The stream id the server issues.
    pub id: Option<String>,
    /// `version`, `1.0`.
    pub version: Option<String>,
}

/// A `<message>` stanza reduced to what CCS uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageStanza {
    /// `id` attribute (absent and empty are both `None`).
    pub id: Option<String>,
    /// `type` attribute; informational only — dispatch happens on the JSON `message_type`.
    pub kind: Option<String>,
    /// `from` attribute.
    pub from: Option<String>,
    /// `to` attribute.
    pub to: Option<String>,
    /// Unescaped, whitespace-trimmed text of the `{google:mobile:data}gcm` child, matched by
    /// namespace and local name regardless of prefix.
    pub gcm: Option<String>,
    /// The `<error>` child of a stanza error (`type="error"`).
    pub error: Option<StanzaErrorInfo>,
}

/// The `<error>` child of an error stanza (RFC 6120 §8.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StanzaErrorInfo {
    /// Legacy numeric `code` attribute, e.g. 400.
    pub code: Option<u16>,
    /// `type` attribute: `modify`, `cancel`, `auth`, `wait`, `continue`.
    pub kind: Option<String>,
    /// Local name of the defined condition element, e.g. `bad-request`.
    pub condition: Option<String>,
    /// Text of the `<text>` child.
    pub text: Option<String>,
}

/// A generic element tree for non-message frames (they are rare, so simplicity wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// Namespace URI (empty when none is in scope).
    pub ns: String,
    /// Local name, without prefix.
    pub name: String,
    /// Attributes as (local name, unescaped value); namespace declarations excluded.
    pub attrs: Vec<(String, String)>,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// Concatenated, unescaped character data directly inside this element.
    pub text: String,
}

impl Element {
    /// True when this element is `{ns}name`.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// The value of attribute `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first child that is `{ns}name`.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }
}
