//! What a send request asks for: a JSON body (http-legacy §3) with the server's 400 texts, or
//! a form body (§4) with its per-result error codes. Payload options are checked by the
//! client's own [`Message`] validation, so client and emulator agree on the rules.

use serde_json::{Map, Value};

use crate::http::MAX_REGISTRATION_IDS as MAX_IDS;
use crate::message::ValidationError;
use crate::message::{Message, json_type};

const MISSING: &str = r#"Missing "registration_ids" field"#;

/// The target of a JSON request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Dest {
    /// `registration_ids`.
    Tokens(Vec<String>),
    /// `to`: a token, `/topics/…` or a notification key.
    To(String),
    Condition(String),
    /// The legacy `notification_key` member.
    NotificationKey(String),
}

/// What the options of a valid request change about the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Options {
    pub dry_run: bool,
    /// The payload is over the limit: every target gets `MessageTooBig`.
    pub too_big: bool,
}

/// A JSON body: its target and options, or the text of the 400 answer.
pub(super) fn json(body: &[u8]) -> Result<(Dest, Options), String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| parse_error(body, &e))?;
    let Value::Object(mut fields) = value else {
        let first = String::from_utf8_lossy(body).trim_start().chars().next();
        return Err(format!(
            "JSON_PARSING_ERROR: Unexpected character ({}) at position 0.",
            first.unwrap_or(' ')
        ));
    };
    let dest = json_dest(&mut fields)?;
    let options = options(fields, &dest).map_err(|e| match e {
        ValidationError::TtlOutOfRange(ttl) => format!(
            r#"Invalid value ({ttl}) for "time_to_live": must be between 0 and {}"#,
            crate::message::MAX_TTL
        ),
        ValidationError::ReservedDataKey(key) => {
            format!(r#""data" key "{key}" is a reserved keyword"#)
        }
        ValidationError::InvalidField { field, reason } => format!(r#"Field "{field}": {reason}"#),
        other => other.to_string(),
    })?;
    Ok((dest, options))
}

/// A form body: its one registration id and options, or the per-result error code.
pub(super) fn form(body: &[u8]) -> Result<(String, Options), &'static str> {
    let mut fields = Map::new();
    let mut data = Map::new();
    let mut token = None;
    for (key, value) in form_pairs(body) {
        match key.as_str() {
            "registration_id" => token = Some(value),
            "collapse_key" | "restricted_package_name" => {
                fields.insert(key, Value::String(value));
            }
            "time_to_live" => {
                let ttl: i64 = value.parse().map_err(|_| "InvalidTtl")?;
                fields.insert(key, ttl.into());
            }
            "dry_run" | "delay_while_idle" => {
                fields.insert(key, (value == "1" || value == "true").into());
            }
            _ => {
                if let Some(name) = key.strip_prefix("data.") {
                    data.insert(name.to_owned(), Value::String(value));
                }
            }
        }
    }
    if !data.is_empty() {
        fields.insert("data".into(), Value::Object(data));
    }
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or("MissingRegistration")?;
    let options = options(fields, &Dest::To(token.clone())).map_err(|e| match e {
        ValidationError::TtlOutOfRange(_) => "InvalidTtl",
        ValidationError::ReservedDataKey(_) => "InvalidDataKey",
        _ => "InvalidParameters",
    })?;
    Ok((token, options))
}

/// Removes and checks the target members.
fn json_dest(fields: &mut Map<String, Value>) -> Result<Dest, String> {
    let mut string = |name: &str| match fields.remove(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!(r#"Field "{name}" must be a JSON string: {other}"#)),
    };
    let to = string("to")?;
    let condition = string("condition")?;
    let key = string("notification_key")?;
    let ids = match fields.remove("registration_ids") {
        None => None,
        Some(Value::Array(ids)) => Some(
            ids.into_iter()
                .map(|id| match id {
                    Value::String(s) => Ok(s),
                    other => Err(format!(
                        r#"Field "registration_ids" must be a JSON array of strings: {other}"#
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err(r#""registration_ids" field is not a JSON array"#.into()),
    };
    match (to, ids, condition, key) {
        (None, None, None, None) => Err(MISSING.into()),
        (Some(_), Some(_), _, _) => {
            Err(r#"Must use either "registration_ids" field or "to", not both"#.into())
        }
        (None, Some(ids), None, None) if ids.is_empty() => Err(MISSING.into()),
        (None, Some(ids), None, None) if ids.len() > MAX_IDS => Err(format!(
            "Number of messages on bulk ({}) exceeds maximum allowed ({MAX_IDS})",
            ids.len()
        )),
        (None, Some(ids), None, None) => Ok(Dest::Tokens(ids)),
        (Some(to), None, None, None) => Ok(Dest::To(to)),
        (None, None, Some(condition), None) => Ok(Dest::Condition(condition)),
        (None, None, None, Some(key)) => Ok(Dest::NotificationKey(key)),
        _ => Err(
            r#"Must use only one of "to", "registration_ids", "condition" and "notification_key""#
                .into(),
        ),
    }
}

/// Checks the non-target members with [`Message`]'s rules. HTTP-only members are checked
/// here; `message_id` and `delivery_receipt_requested` (XMPP-only) are ignored.
fn options(mut fields: Map<String, Value>, dest: &Dest) -> Result<Options, ValidationError> {
    if let Some(name) = fields.remove("restricted_package_name")
        && !name.is_string()
    {
        return Err(ValidationError::InvalidField {
            field: "restricted_package_name".into(),
            reason: format!("must be a string, got {}", json_type(&name)),
        });
    }
    fields.remove("message_id");
    fields.remove("delivery_receipt_requested");
    let (member, target) = match dest {
        Dest::Condition(c) => ("condition", c.as_str()),
        Dest::To(t) | Dest::NotificationKey(t) => ("to", t.as_str()),
        Dest::Tokens(_) => ("to", "multicast"),
    };
    fields.insert(member.into(), Value::String(target.to_owned()));
    let dry_run = fields.get("dry_run").and_then(Value::as_bool) == Some(true);
    match Message::from_json_value(Value::Object(fields)) {
        Ok(_) => Ok(Options {
            dry_run,
            too_big: false,
        }),
        Err(ValidationError::PayloadTooLarge { .. }) => Ok(Options {
            dry_run,
            too_big: true,
        }),
        Err(e) => Err(e),
    }
}

/// The 400 text for unparseable JSON, in the server's wording.
fn parse_error(body: &[u8], e: &serde_json::Error) -> String {
    let text = String::from_utf8_lossy(body);
    if e.is_eof() {
        return format!(
            "JSON_PARSING_ERROR: Unexpected token END OF FILE at position {}.",
            text.chars().count()
        );
    }
    // serde_json reports a 1-based line and column (in characters) inside the bad token; the
    // server names the token's first character, so step back over a run of letters and digits.
    let chars: Vec<char> = text.chars().collect();
    let before: usize = text
        .split_inclusive('\n')
        .take(e.line().saturating_sub(1))
        .map(|l| l.chars().count())
        .sum();
    let mut position = (before + e.column().saturating_sub(1)).min(chars.len().saturating_sub(1));
    while position > 0 && chars[position].is_alphanumeric() && chars[position - 1].is_alphanumeric()
    {
        position -= 1;
    }
    let culprit = chars.get(position).copied().unwrap_or(' ');
    format!("JSON_PARSING_ERROR: Unexpected character ({culprit}) at position {position}.")
}

/// `key=value` pairs of an `application/x-www-form-urlencoded` body, decoded.
fn form_pairs(body: &[u8]) -> impl Iterator<Item = (String, String)> + '_ {
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            (percent_decode(key), percent_decode(value))
        })
}

fn percent_decode(raw: &[u8]) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                raw.get(i + 1).and_then(|&b| hex(b)),
                raw.get(i + 2).and_then(|&b| hex(b)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn rejected(body: &str) -> String {
        json(body.as_bytes()).expect_err(body)
    }

    #[test]
    fn json_validation_texts() {
        let ids = |n: usize| json!({"registration_ids": vec!["t"; n]}).to_string();
        let cases = [
            (
                "nope",
                "JSON_PARSING_ERROR: Unexpected character (n) at position 0.",
            ),
            (
                r#"{"registration_ids":["a"],"#,
                "JSON_PARSING_ERROR: Unexpected token END OF FILE at position 26.",
            ),
            (
                "[1]",
                "JSON_PARSING_ERROR: Unexpected character ([) at position 0.",
            ),
            (r#"{"data":{"a":"b"}}"#, MISSING),
            (r#"{"registration_ids":[]}"#, MISSING),
            (
                r#"{"to":"a","registration_ids":["b"]}"#,
                r#"Must use either "registration_ids" field or "to", not both"#,
            ),
            (
                &ids(1001),
                "Number of messages on bulk (1001) exceeds maximum allowed (1000)",
            ),
            (
                r#"{"to":"a","data":{"from":"x"}}"#,
                r#""data" key "from" is a reserved keyword"#,
            ),
            (
                r#"{"to":"a","time_to_live":2419201}"#,
                r#"Invalid value (2419201) for "time_to_live": must be between 0 and 2419200"#,
            ),
            (
                r#"{"registration_ids":"a"}"#,
                r#""registration_ids" field is not a JSON array"#,
            ),
            (r#"{"to":5}"#, r#"Field "to" must be a JSON string: 5"#),
            (
                r#"{"to":"a","time_to_live":"600"}"#,
                r#"Field "time_to_live": must be an integer number of seconds, got string"#,
            ),
        ];
        for (body, text) in cases {
            assert_eq!(rejected(body), text, "{body}");
        }
    }

    #[test]
    fn valid_json_targets_and_options() {
        let (dest, opts) = json(br#"{"registration_ids":["a","b"],"dry_run":true}"#).unwrap();
        assert_eq!(dest, Dest::Tokens(vec!["a".into(), "b".into()]));
        assert_eq!(
            opts,
            Options {
                dry_run: true,
                too_big: false
            }
        );
        let (dest, _) =
            json(br#"{"condition":"'a' in topics","restricted_package_name":"p"}"#).unwrap();
        assert_eq!(dest, Dest::Condition("'a' in topics".into()));
        let big = json!({"to": "a", "data": {"k": "x".repeat(5000)}}).to_string();
        assert!(json(big.as_bytes()).unwrap().1.too_big);
    }

    #[test]
    fn form_bodies() {
        let (token, opts) = form(
            b"registration_id=tok%3AA&collapse_key=score&time_to_live=600&data.score=3x1&dry_run=1",
        )
        .unwrap();
        assert_eq!(token, "tok:A");
        assert!(opts.dry_run && !opts.too_big);
        assert_eq!(form(b"data.score=1"), Err("MissingRegistration"));
        assert_eq!(form(b"registration_id=a&time_to_live=x"), Err("InvalidTtl"));
        assert_eq!(
            form(b"registration_id=a&time_to_live=-1"),
            Err("InvalidTtl")
        );
        assert_eq!(
            form(b"registration_id=a&data.google.x=1"),
            Err("InvalidDataKey")
        );
        assert_eq!(percent_decode(b"a+b%20c%zz%4"), "a b c%zz%4");
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = json(&body);
            let _ = form(&body);
        }

        #[test]
        fn json_like_bodies_never_panic(body in "[{}\\[\\]\":,.0-9a-z_ \n-]{0,80}") {
            let _ = json(body.as_bytes());
        }
    }
}
