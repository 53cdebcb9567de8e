//! Writers for every stanza either role emits.
//!
//! Each writer appends exactly one whole stanza to `out` (or, on error, nothing), so a single
//! writer task can send each buffer in one write and stanzas never interleave.
//!
//! Attribute values and short texts (ids, JIDs, mechanism names) cannot fail: a character
//! XML 1.0 cannot carry is replaced by U+FFFD. A defined-condition name that is not a plain XML
//! name is written as `undefined-condition`.

use std::convert::Infallible;
use std::io;

use serde::Serialize;

use super::frame::{
    NS_BIND, NS_CLIENT, NS_PING, NS_SASL, NS_SESSION, NS_STANZA_ERRORS, NS_STREAM_ERRORS,
    NS_STREAMS,
};
use super::sasl::encode_plain;
use crate::wire::error::WireError;

/// Closes our stream.
pub const STREAM_CLOSE: &[u8] = b"</stream:stream>";
/// A whitespace keepalive (RFC 6120 §4.6.1).
pub const WHITESPACE_KEEPALIVE: &[u8] = b" ";

/// The `from` of upstream messages and receipts.
const DEVICES: &str = "devices@gcm.googleapis.com";
/// Open and close tags of the payload element: unprefixed (client messages, upstream, receipts,
/// stanza errors) and `data:`-prefixed (acks, nacks, control), as CCS writes them.
const GCM_PLAIN: (&str, &str) = ("<gcm xmlns=\"google:mobile:data\">", "</gcm>");
const GCM_PREFIXED: (&str, &str) = (
    "<data:gcm xmlns:data=\"google:mobile:data\">",
    "</data:gcm>",
);

/// The client's stream header (§3.1), an open tag.
pub fn client_stream_header(out: &mut Vec<u8>, to: &str) {
    raw(out, "<stream:stream");
    attr(out, "to", to);
    attr(out, "version", "1.0");
    attr(out, "xmlns", NS_CLIENT);
    attr(out, "xmlns:stream", NS_STREAMS);
    raw(out, ">");
}

/// The server's stream header (§3.2), an open tag.
pub fn server_stream_header(out: &mut Vec<u8>, from: &str, id: &str) {
    raw(out, "<stream:stream");
    attr(out, "from", from);
    attr(out, "id", id);
    attr(out, "version", "1.0");
    attr(out, "xmlns:stream", NS_STREAMS);
    attr(out, "xmlns", NS_CLIENT);
    raw(out, ">");
}

/// Pre-authentication features listing the SASL `mechanisms` (§3.3).
pub fn sasl_features(out: &mut Vec<u8>, mechanisms: &[&str]) {
    raw(out, "<stream:features>");
    open_ns(out, "mechanisms", NS_SASL);
    for mechanism in mechanisms {
        raw(out, "<mechanism>");
        lossy_text(out, mechanism);
        raw(out, "</mechanism>");
    }
    raw(out, "</mechanisms></stream:features>");
}

/// Post-authentication features: bind and session (§3.5).
pub fn bind_session_features(out: &mut Vec<u8>) {
    raw(out, "<stream:features>");
    empty_ns(out, "bind", NS_BIND);
    empty_ns(out, "session", NS_SESSION);
    raw(out, "</stream:features>");
}

/// SASL PLAIN authentication with an empty authzid (§3.4).
pub fn auth_plain(out: &mut Vec<u8>, authcid: &str, password: &str) {
    raw(out, "<auth");
    attr(out, "xmlns", NS_SASL);
    attr(out, "mechanism", "PLAIN");
    raw(out, ">");
    raw(out, &encode_plain(authcid, password));
    raw(out, "</auth>");
}

/// `<success/>` in the SASL namespace.
pub fn sasl_success(out: &mut Vec<u8>) {
    empty_ns(out, "success", NS_SASL);
}

/// `<failure>` with the SASL `condition`, e.g. `not-authorized`.
pub fn sasl_failure(out: &mut Vec<u8>, condition: &str) {
    open_ns(out, "failure", NS_SASL);
    raw(out, "<");
    raw(out, condition_name(condition));
    raw(out, "/></failure>");
}

/// Resource binding request; the server picks the resource when `resource` is `None` (§3.6).
pub fn iq_bind(out: &mut Vec<u8>, id: &str, resource: Option<&str>) {
    iq_start(out, "set", Some(id));
    raw(out, ">");
    match resource {
        Some(resource) => {
            open_ns(out, "bind", NS_BIND);
            text_element(out, "resource", resource);
            raw(out, "</bind>");
        }
        None => empty_ns(out, "bind", NS_BIND),
    }
    raw(out, "</iq>");
}

/// Session establishment request (§3.7).
pub fn iq_session(out: &mut Vec<u8>, id: &str) {
    iq_start(out, "set", Some(id));
    raw(out, ">");
    empty_ns(out, "session", NS_SESSION);
    raw(out, "</iq>");
}

/// XEP-0199 ping (§3.9).
pub fn iq_ping(out: &mut Vec<u8>, id: &str, to: &str) {
    iq_start(out, "get", Some(id));
    attr(out, "to", to);
    raw(out, ">");
    empty_ns(out, "ping", NS_PING);
    raw(out, "</iq>");
}

/// The result of resource binding, carrying the full `jid` (§3.6).
pub fn iq_bind_result(out: &mut Vec<u8>, id: Option<&str>, jid: &str) {
    iq_start(out, "result", id);
    raw(out, ">");
    open_ns(out, "bind", NS_BIND);
    text_element(out, "jid", jid);
    raw(out, "</bind></iq>");
}

/// An empty IQ result (session, ping).
pub fn iq_result(out: &mut Vec<u8>, id: Option<&str>, from: Option<&str>) {
    iq_start(out, "result", id);
    opt_attr(out, "from", from);
    raw(out, "/>");
}

/// An IQ error, e.g. kind `cancel` with condition `service-unavailable`.
pub fn iq_error(out: &mut Vec<u8>, id: Option<&str>, kind: &str, condition: &str) {
    iq_start(out, "error", id);
    raw(out, "><error");
    attr(out, "type", kind);
    raw(out, ">");
    empty_ns(out, condition_name(condition), NS_STANZA_ERRORS);
    raw(out, "</error></iq>");
}

/// A client → server message: `<message id=".."><gcm xmlns="google:mobile:data">JSON</gcm></message>`.
pub fn gcm_message(out: &mut Vec<u8>, id: &str, json: &str) -> Result<(), WireError> {
    client_message(out, id, |out| escape(out, json, &TEXT, json_char))
}

/// Like [`gcm_message`] with `value` serialized to JSON and escaped in the same pass, without
/// an intermediate JSON string: the bytes of `gcm_message(out, id, &to_string(value))`.
pub fn gcm_message_of(
    out: &mut Vec<u8>,
    id: &str,
    value: &impl Serialize,
) -> Result<(), WireError> {
    client_message(out, id, |out| json_text(out, value))
}

/// `<message id=".."><gcm xmlns="google:mobile:data">` + `payload` + the closing tags.
fn client_message(
    out: &mut Vec<u8>,
    id: &str,
    payload: impl FnOnce(&mut Vec<u8>) -> Result<(), WireError>,
) -> Result<(), WireError> {
    all_or_nothing(out, |out| {
        raw(out, "<message");
        attr(out, "id", id);
        raw(out, ">");
        payload_element(out, GCM_PLAIN, payload)?;
        raw(out, "</message>");
        Ok(())
    })
}

/// A server → client ack, nack or control message, with the `data:gcm` prefix (§6.3).
pub fn gcm_server_message(out: &mut Vec<u8>, json: &str) -> Result<(), WireError> {
    server_message(out, |out| escape(out, json, &TEXT, json_char))
}

/// Like [`gcm_server_message`] with `value` serialized and escaped in one pass (see
/// [`gcm_message_of`]).
pub fn gcm_server_message_of(out: &mut Vec<u8>, value: &impl Serialize) -> Result<(), WireError> {
    server_message(out, |out| json_text(out, value))
}

fn server_message(
    out: &mut Vec<u8>,
    payload: impl FnOnce(&mut Vec<u8>) -> Result<(), WireError>,
) -> Result<(), WireError> {
    all_or_nothing(out, |out| {
        raw(out, "<message>");
        payload_element(out, GCM_PREFIXED, payload)?;
        raw(out, "</message>");
        Ok(())
    })
}

/// A server → client upstream message or receipt addressed `to` the sender's JID (§6.3).
pub fn gcm_upstream(out: &mut Vec<u8>, to: &str, json: &str) -> Result<(), WireError> {
    all_or_nothing(out, |out| {
        raw(out, "<message");
        attr(out, "to", to);
        attr(out, "from", DEVICES);
        attr(out, "type", "normal");
        raw(out, ">");
        gcm_payload(out, GCM_PLAIN, json)?;
        raw(out, "</message>");
        Ok(())
    })
}

/// A stanza error (§8.3): the offending payload echoed, then `<error>` with the numeric `code`,
/// the error `kind` (`modify`, `cancel`…), the defined `condition` and, unless empty, `text`.
#[allow(clippy::too_many_arguments)]
pub fn stanza_error(
    out: &mut Vec<u8>,
    id: Option<&str>,
    to: &str,
    echoed_json: &str,
    code: u16,
    kind: &str,
    condition: &str,
    text: &str,
) -> Result<(), WireError> {
    all_or_nothing(out, |out| {
        raw(out, "<message");
        opt_attr(out, "id", id);
        attr(out, "type", "error");
        attr(out, "to", to);
        raw(out, ">");
        gcm_payload(out, GCM_PLAIN, echoed_json)?;
        raw(out, "<error");
        attr(out, "code", &code.to_string());
        attr(out, "type", kind);
        raw(out, ">");
        empty_ns(out, condition_name(condition), NS_STANZA_ERRORS);
        if !text.is_empty() {
            open_ns(out, "text", NS_STANZA_ERRORS);
            escape(out, text, &TEXT, reject_char)?;
            raw(out, "</text>");
        }
        raw(out, "</error></message>");
        Ok(())
    })
}

/// A stream error (§5): `<stream:error><COND xmlns=".."/>[<text>..</text>]</stream:error>`.
pub fn stream_error(out: &mut Vec<u8>, condition: &str, text: Option<&str>) {
    raw(out, "<stream:error>");
    empty_ns(out, condition_name(condition), NS_STREAM_ERRORS);
    if let Some(text) = text {
        open_ns(out, "text", NS_STREAM_ERRORS);
        lossy_text(out, text);
        raw(out, "</text>");
    }
    raw(out, "</stream:error>");
}

/// A printable copy of a raw chunk for transcripts and logs, with the content of every
/// `<auth>` element (the SASL PLAIN credential) replaced by `***`. An element cut off by the end
/// of the chunk is redacted to the end; a chunk that starts inside one (a `</auth>` before any
/// `<auth>`) is redacted from its start. Pass whole stanzas: a chunk lying entirely inside the
/// credential cannot be recognised.
pub fn redact(raw: &[u8]) -> String {
    const START: &str = "<auth";
    const END: &str = "</auth";
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut rest: &str = &text;
    if let Some(end) = find_tag(rest, END)
        && find_tag(rest, START).is_none_or(|start| end < start)
    {
        rest = credential_skipped(&mut out, rest);
    }
    while let Some(start) = find_tag(rest, START) {
        let (before, tag_onwards) = rest.split_at(start);
        out.push_str(before);
        let Some(gt) = tag_onwards.find('>') else {
            rest = tag_onwards;
            break;
        };
        let (tag, content) = tag_onwards.split_at(gt + 1);
        out.push_str(tag);
        rest = if tag.ends_with("/>") {
            content
        } else {
            credential_skipped(&mut out, content)
        };
    }
    out.push_str(rest);
    out
}

/// Writes `***` for `content` up to its `</auth>`, and returns the rest from there.
fn credential_skipped<'a>(out: &mut String, content: &'a str) -> &'a str {
    out.push_str("***");
    find_tag(content, "</auth").map_or("", |end| content.split_at(end).1)
}

/// Position of the tag opening `open` (`<name` or `</name`, followed by whitespace, `>` or `/`)
/// in `s`.
fn find_tag(s: &str, open: &str) -> Option<usize> {
    s.match_indices(open).map(|(at, _)| at).find(|at| {
        matches!(
            s.as_bytes().get(at + open.len()),
            Some(b' ' | b'\t' | b'\n' | b'\r' | b'>' | b'/')
        )
    })
}

// ---- building blocks ----

/// Runs `write`; on error, removes whatever it appended.
fn all_or_nothing(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), WireError>,
) -> Result<(), WireError> {
    let start = out.len();
    write(out).inspect_err(|_| out.truncate(start))
}

fn raw(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
}

/// ` name="value"`.
fn attr(out: &mut Vec<u8>, name: &str, value: &str) {
    raw(out, " ");
    raw(out, name);
    raw(out, "=\"");
    let Ok(()) = escape(out, value, &ATTRIBUTE, replace_char);
    raw(out, "\"");
}

fn opt_attr(out: &mut Vec<u8>, name: &str, value: Option<&str>) {
    if let Some(value) = value {
        attr(out, name, value);
    }
}

/// `<name xmlns="ns">`.
fn open_ns(out: &mut Vec<u8>, name: &str, ns: &str) {
    raw(out, "<");
    raw(out, name);
    attr(out, "xmlns", ns);
    raw(out, ">");
}

/// `<name xmlns="ns"/>`.
fn empty_ns(out: &mut Vec<u8>, name: &str, ns: &str) {
    raw(out, "<");
    raw(out, name);
    attr(out, "xmlns", ns);
    raw(out, "/>");
}

/// `<iq type="kind" id="id"` (tag left open for more attributes).
fn iq_start(out: &mut Vec<u8>, kind: &str, id: Option<&str>) {
    raw(out, "<iq");
    attr(out, "type", kind);
    opt_attr(out, "id", id);
}

/// `<name>text</name>`.
fn text_element(out: &mut Vec<u8>, name: &str, text: &str) {
    raw(out, "<");
    raw(out, name);
    raw(out, ">");
    lossy_text(out, text);
    raw(out, "</");
    raw(out, name);
    raw(out, ">");
}

/// The payload element with the escaped JSON inside.
fn gcm_payload(out: &mut Vec<u8>, tags: (&str, &str), json: &str) -> Result<(), WireError> {
    payload_element(out, tags, |out| escape(out, json, &TEXT, json_char))
}

/// The payload element around whatever `payload` writes.
fn payload_element(
    out: &mut Vec<u8>,
    tags: (&str, &str),
    payload: impl FnOnce(&mut Vec<u8>) -> Result<(), WireError>,
) -> Result<(), WireError> {
    raw(out, tags.0);
    payload(out)?;
    raw(out, tags.1);
    Ok(())
}

/// `value` as JSON, escaped as XML character data while it is serialized.
fn json_text(out: &mut Vec<u8>, value: &impl Serialize) -> Result<(), WireError> {
    let mut json = serde_json::Serializer::with_formatter(out, XmlTextFormatter);
    value
        .serialize(&mut json)
        .map_err(|e| WireError::Malformed(format!("cannot encode the payload: {e}")))
}

fn lossy_text(out: &mut Vec<u8>, text: &str) {
    let Ok(()) = escape(out, text, &TEXT, replace_char);
}

/// `condition` if it is a plain XML name (ASCII letter, then letters, digits, `-`, `_`, `.`),
/// else `undefined-condition`.
fn condition_name(condition: &str) -> &str {
    let mut chars = condition.chars();
    let plain = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if plain {
        condition
    } else {
        "undefined-condition"
    }
}

// ---- escaping ----

/// Bytes the escaper stops at: markup characters, C0 controls and 0xEF, the first byte of
/// U+FFFE / U+FFFF. In attributes also quotes, and tab / LF / CR (kept as character references
/// so that attribute-value normalisation does not turn them into spaces).
const fn special_bytes(attribute: bool) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = attribute || !matches!(b, 0x09 | 0x0A | 0x0D);
        b += 1;
    }
    table[b'&' as usize] = true;
    table[b'<' as usize] = true;
    table[b'>' as usize] = true;
    table[0xEF] = true;
    if attribute {
        table[b'"' as usize] = true;
        table[b'\'' as usize] = true;
    }
    table
}

const TEXT: [bool; 256] = special_bytes(false);
const ATTRIBUTE: [bool; 256] = special_bytes(true);

/// Appends `s` escaped, copying runs of ordinary bytes at once. Characters XML 1.0 cannot carry
/// (C0 controls other than tab / LF / CR, U+FFFE, U+FFFF) are handed to `invalid`.
fn escape<S: Sink + ?Sized, E>(
    out: &mut S,
    s: &str,
    special: &[bool; 256],
    mut invalid: impl FnMut(&mut S, char) -> Result<(), E>,
) -> Result<(), E> {
    let mut rest = s.as_bytes();
    while let Some(at) = rest.iter().position(|&b| special[usize::from(b)]) {
        let (run, tail) = rest.split_at(at);
        out.put(run);
        let used = match tail {
            [0xEF, 0xBF, last @ (0xBE | 0xBF), ..] => {
                invalid(
                    out,
                    if *last == 0xBE {
                        '\u{FFFE}'
                    } else {
                        '\u{FFFF}'
                    },
                )?;
                3
            }
            [b, ..] => {
                match reference(*b) {
                    Some(reference) => out.put(reference),
                    None if *b < 0x20 => invalid(out, char::from(*b))?,
                    None => out.put(&[*b]),
                }
                1
            }
            [] => break,
        };
        rest = tail.get(used..).unwrap_or_default();
    }
    out.put(rest);
    Ok(())
}

/// The reference that stands for a special ASCII byte.
fn reference(b: u8) -> Option<&'static [u8]> {
    Some(match b {
        b'&' => b"&amp;",
        b'<' => b"&lt;",
        b'>' => b"&gt;",
        b'"' => b"&quot;",
        b'\'' => b"&apos;",
        b'\t' => b"&#9;",
        b'\n' => b"&#10;",
        b'\r' => b"&#13;",
        _ => return None,
    })
}

/// In JSON, U+FFFE / U+FFFF can only occur inside strings: write them as JSON escapes, which
/// decode to the same string. Control characters are refused (serde_json never emits them raw).
fn json_char<S: Sink + ?Sized>(out: &mut S, c: char) -> Result<(), WireError> {
    match c {
        '\u{FFFE}' => out.put(br"\ufffe"),
        '\u{FFFF}' => out.put(br"\uffff"),
        _ => return Err(WireError::InvalidChar(u32::from(c))),
    }
    Ok(())
}

/// Where escaped bytes go: a buffer, or a writer while serde_json serializes.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A [`Sink`] over an `io::Write`, keeping the first error.
struct WriteSink<'a, W: ?Sized> {
    writer: &'a mut W,
    error: Option<io::Error>,
}

impl<W: io::Write + ?Sized> Sink for WriteSink<'_, W> {
    fn put(&mut self, bytes: &[u8]) {
        if self.error.is_none()
            && let Err(e) = self.writer.write_all(bytes)
        {
            self.error = Some(e);
        }
    }
}

/// serde_json's compact output with every string fragment escaped as XML character data as
/// it is written. Everything else serde_json writes (punctuation, numbers, `\n`-style escapes)
/// is plain ASCII that needs no escaping.
struct XmlTextFormatter;

impl serde_json::ser::Formatter for XmlTextFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // serde_json escapes control characters itself: what a fragment can hold that XML
        // text cannot is markup (`<`, `>`, `&`) and U+FFFE / U+FFFF (lead byte 0xEF). Most
        // payloads have none: found by a scan (vectorized for long fragments), written at once.
        let bytes = fragment.as_bytes();
        let plain = if bytes.len() < 64 {
            !bytes.iter().any(|b| matches!(b, b'<' | b'>' | b'&' | 0xEF))
        } else {
            memchr::memchr3(b'<', b'>', b'&', bytes).is_none()
                && memchr::memchr(0xEF, bytes).is_none()
        };
        if plain {
            return writer.write_all(bytes);
        }
        let mut sink = WriteSink {
            writer,
            error: None,
        };
        escape(&mut sink, fragment, &TEXT, json_char).map_err(io::Error::other)?;
        sink.error.map_or(Ok(()), Err)
    }
}

fn reject_char(_: &mut Vec<u8>, c: char) -> Result<(), WireError> {
    Err(WireError::InvalidChar(u32::from(c)))
}

fn replace_char(out: &mut Vec<u8>, _: char) -> Result<(), Infallible> {
    raw(out, "\u{FFFD}");
    Ok(())
}

mod json;

pub use json::{JsonObject, gcm_message_with};

#[cfg(test)]
mod tests;
