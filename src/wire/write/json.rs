//! The JSON object of a client message written member by member, escaped as XML character
//! data in the same pass, without serde for the common shapes: the bytes are those of
//! serializing the same members with serde_json and escaping the text (which is what the
//! fallback for anything unusual does).

use serde::Serialize;

use super::{WireError, client_message, json_text};

/// A client message whose JSON object `members` writes (see [`JsonObject`]); the bytes of
/// [`gcm_message_of`](super::gcm_message_of) for a value with the same members.
pub fn gcm_message_with(
    out: &mut Vec<u8>,
    id: &str,
    members: impl FnOnce(&mut JsonObject<'_>) -> Result<(), WireError>,
) -> Result<(), WireError> {
    client_message(out, id, |out| JsonObject::write(out, members))
}

/// An open JSON object inside XML character data; members are appended in call order.
pub struct JsonObject<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl JsonObject<'_> {
    fn write(
        out: &mut Vec<u8>,
        members: impl FnOnce(&mut JsonObject<'_>) -> Result<(), WireError>,
    ) -> Result<(), WireError> {
        out.push(b'{');
        members(&mut JsonObject { out, empty: true })?;
        out.push(b'}');
        Ok(())
    }

    /// `"key":"value"`.
    pub fn string(&mut self, key: &str, value: &str) -> Result<(), WireError> {
        self.key(key)?;
        string(self.out, value)
    }

    /// `"key":true`.
    pub fn yes(&mut self, key: &str) -> Result<(), WireError> {
        self.key(key)?;
        self.out.extend_from_slice(b"true");
        Ok(())
    }

    /// `"key":n`.
    pub fn number(&mut self, key: &str, n: u32) -> Result<(), WireError> {
        self.key(key)?;
        self.out
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        Ok(())
    }

    /// `"key":` and `value` as serde_json writes it.
    pub fn value(&mut self, key: &str, value: &impl Serialize) -> Result<(), WireError> {
        self.key(key)?;
        json_text(self.out, value)
    }

    /// `"key":{…}` with the members `members` writes.
    pub fn object(
        &mut self,
        key: &str,
        members: impl FnOnce(&mut JsonObject<'_>) -> Result<(), WireError>,
    ) -> Result<(), WireError> {
        self.key(key)?;
        JsonObject::write(self.out, members)
    }

    fn key(&mut self, key: &str) -> Result<(), WireError> {
        if !std::mem::take(&mut self.empty) {
            self.out.push(b',');
        }
        string(self.out, key)?;
        self.out.push(b':');
        Ok(())
    }
}

/// A JSON string literal; copied as is when it needs neither JSON nor XML escaping.
fn string(out: &mut Vec<u8>, s: &str) -> Result<(), WireError> {
    if !plain(s.as_bytes()) {
        return json_text(out, &s);
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
    Ok(())
}

/// No byte that serde_json escapes (controls, `"`, `\`) or that XML text cannot carry as is
/// (`<`, `>`, `&`, and 0xEF, the lead byte of U+FFFE / U+FFFF). Without short-circuiting, so
/// the compiler can check many bytes per step.
fn plain(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |plain, &b| {
        plain
            & (b >= 0x20)
            & (b != b'"')
            & (b != b'\\')
            & (b != b'<')
            & (b != b'>')
            & (b != b'&')
            & (b != 0xEF)
    })
}
