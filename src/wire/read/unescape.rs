//! Entity and character references, attribute-value normalisation.

use std::borrow::Cow;

use crate::wire::error::WireError;

/// One piece of unescaped character data.
pub(super) enum TextPiece<'a> {
    /// A run of text (line ends already normalised).
    Str(Cow<'a, str>),
    /// The character an entity or character reference stands for.
    Char(char),
}

impl TextPiece<'_> {
    pub(super) fn push_to(&self, out: &mut String) {
        match self {
            TextPiece::Str(s) => out.push_str(s),
            TextPiece::Char(c) => out.push(*c),
        }
    }
}

/// Resolves the reference `&name;`: the five predefined entities and character references.
/// Anything else would need a DTD, which XMPP forbids.
pub(super) fn resolve_ref(name: &str) -> Result<char, WireError> {
    match name {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        _ => match name.strip_prefix('#') {
            Some(number) => char_ref(number),
            None => Err(WireError::Forbidden(format!(
                "undefined entity reference `&{};`",
                snippet(name)
            ))),
        },
    }
}

/// `&#NNN;` / `&#xHHH;`, which must name a character XML 1.0 allows.
fn char_ref(number: &str) -> Result<char, WireError> {
    let (digits, radix) = match number.strip_prefix('x') {
        Some(hex) => (hex, 16),
        None => (number, 10),
    };
    let valid_digits = !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix));
    valid_digits
        .then(|| u32::from_str_radix(digits, radix).ok())
        .flatten()
        .and_then(char::from_u32)
        .filter(|&c| is_xml_char(c))
        .ok_or_else(|| {
            WireError::Malformed(format!(
                "character reference `&#{};` is not an XML character",
                snippet(number)
            ))
        })
}

/// The XML 1.0 `Char` production.
fn is_xml_char(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// An attribute value as XML 1.0 defines it: references resolved, each literal tab, line feed,
/// carriage return or CR LF pair turned into one space; a literal `<` is an error. Borrows when
/// nothing needs doing.
pub(super) fn attr_value(raw: &str) -> Result<Cow<'_, str>, WireError> {
    const SPECIAL: [char; 5] = ['&', '<', '\t', '\n', '\r'];
    if !raw.contains(SPECIAL) {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find(SPECIAL) {
        let (plain, tail) = rest.split_at(at);
        out.push_str(plain);
        if tail.starts_with('<') {
            return Err(WireError::Malformed("`<` in an attribute value".into()));
        }
        rest = match tail.strip_prefix('&') {
            Some(reference) => {
                let (name, after) = reference.split_once(';').ok_or_else(|| {
                    WireError::Malformed("unterminated reference in attribute value".into())
                })?;
                out.push(resolve_ref(name)?);
                after
            }
            None => {
                out.push(' ');
                let skip = if tail.starts_with("\r\n") { 2 } else { 1 };
                tail.get(skip..).unwrap_or_default()
            }
        };
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// A short prefix of peer-supplied text, for error messages.
pub(super) fn snippet(s: &str) -> &str {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((end, _)) => s.get(..end).unwrap_or(s),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predefined_and_character_references() {
        for (name, c) in [
            ("lt", '<'),
            ("gt", '>'),
            ("amp", '&'),
            ("apos", '\''),
            ("quot", '"'),
            ("#10", '\n'),
            ("#x41", 'A'),
            ("#x1F600", '😀'),
            ("#65533", '\u{FFFD}'),
        ] {
            assert_eq!(resolve_ref(name).ok(), Some(c), "{name}");
        }
    }

    #[test]
    fn forbidden_and_invalid_references() {
        assert!(matches!(resolve_ref("nbsp"), Err(WireError::Forbidden(_))));
        assert!(matches!(resolve_ref("xxe"), Err(WireError::Forbidden(_))));
        for bad in [
            "#0",
            "#x0",
            "#1",
            "#x1F",
            "#xFFFE",
            "#xFFFF",
            "#xD800",
            "#x110000",
            "#",
            "#x",
            "#X41",
            "#x+41",
            "#+65",
            "#-1",
            "#12a",
            "#99999999999999999999",
        ] {
            assert!(
                matches!(resolve_ref(bad), Err(WireError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn attribute_values_are_normalised() {
        assert!(matches!(attr_value("plain"), Ok(Cow::Borrowed("plain"))));
        assert_eq!(
            attr_value("a&amp;b&lt;&#x41;\t\r\nc\rd\ne&#10;")
                .ok()
                .as_deref(),
            Some("a&b<A  c d e\n")
        );
        assert!(matches!(attr_value("a&b"), Err(WireError::Malformed(_))));
        assert!(matches!(attr_value("a<b"), Err(WireError::Malformed(_))));
        assert!(matches!(attr_value("&foo;"), Err(WireError::Forbidden(_))));
    }

    #[test]
    fn snippet_cuts_on_char_boundary() {
        let long = "é".repeat(100);
        assert_eq!(snippet(&long).chars().count(), 40);
        assert_eq!(snippet("short"), "short");
    }
}
