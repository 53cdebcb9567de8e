//! The rules of a valid downstream message (spec §7), shared by the builder and JSON input.

use serde_json::{Map, Value};

use super::{
    MAX_FIELD_BYTES, MAX_MESSAGE_ID_LEN, MAX_PAYLOAD_BYTES, MAX_TTL, Notification, ValidationError,
};

pub(super) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ValidationError {
    ValidationError::InvalidField {
        field: field.into(),
        reason: reason.into(),
    }
}

pub(super) fn http_only(field: &'static str, hint: &'static str) -> ValidationError {
    ValidationError::HttpOnlyField { field, hint }
}

pub(super) fn check_non_empty(field: &str, value: String) -> Result<String, ValidationError> {
    if value.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    Ok(value)
}

/// At most [`MAX_FIELD_BYTES`] bytes.
pub(super) fn check_length<S: AsRef<str>>(field: &str, value: S) -> Result<S, ValidationError> {
    let len = value.as_ref().len();
    if len > MAX_FIELD_BYTES {
        return Err(invalid(
            field,
            format!("is {len} bytes long: at most {MAX_FIELD_BYTES} are allowed"),
        ));
    }
    Ok(value)
}

/// Non-empty, at most [`MAX_FIELD_BYTES`]; a topic name must match `[a-zA-Z0-9-_.~%]+`.
pub(super) fn check_to(to: String) -> Result<String, ValidationError> {
    let to = check_length("to", check_non_empty("to", to)?)?;
    if let Some(name) = to.strip_prefix("/topics/") {
        let valid = |c: char| c.is_ascii_alphanumeric() || "-_.~%".contains(c);
        if name.is_empty() || !name.chars().all(valid) {
            return Err(invalid(
                "to",
                format!("topic name {name:?} must match [a-zA-Z0-9-_.~%]+"),
            ));
        }
    }
    Ok(to)
}

/// 1 to [`MAX_MESSAGE_ID_LEN`] printable ASCII characters, no whitespace.
pub(super) fn check_message_id(id: String) -> Result<String, ValidationError> {
    const FIELD: &str = "message_id";
    let id = check_non_empty(FIELD, id)?;
    if let Some(c) = id.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(invalid(
            FIELD,
            format!("contains {c:?}: only printable ASCII without whitespace is allowed"),
        ));
    }
    if id.len() > MAX_MESSAGE_ID_LEN {
        return Err(invalid(
            FIELD,
            format!(
                "is {} characters long: at most {MAX_MESSAGE_ID_LEN} are allowed",
                id.len()
            ),
        ));
    }
    Ok(id)
}

pub(super) fn check_ttl(seconds: i64) -> Result<u32, ValidationError> {
    u32::try_from(seconds)
        .ok()
        .filter(|s| *s <= MAX_TTL)
        .ok_or(ValidationError::TtlOutOfRange(seconds))
}

/// `from` and keys starting with `google` or `gcm` are reserved.
pub(super) fn check_data_keys(data: &Map<String, Value>) -> Result<(), ValidationError> {
    match data
        .keys()
        .find(|k| *k == "from" || k.starts_with("google") || k.starts_with("gcm"))
    {
        Some(key) => Err(ValidationError::ReservedDataKey(key.clone())),
        None => Ok(()),
    }
}

/// The named fields of [`Notification`], which its `extra` map must not repeat.
pub(super) const NOTIFICATION_FIELDS: &[&str] = &[
    "title",
    "body",
    "icon",
    "sound",
    "badge",
    "tag",
    "color",
    "click_action",
    "body_loc_key",
    "body_loc_args",
    "title_loc_key",
    "title_loc_args",
    "android_channel_id",
    "subtitle",
];

/// An `extra` key naming a field would be written twice (or decode into the field instead).
pub(super) fn check_notification_extra(notification: &Notification) -> Result<(), ValidationError> {
    match notification
        .extra
        .keys()
        .find(|k| NOTIFICATION_FIELDS.contains(&k.as_str()))
    {
        Some(key) => Err(invalid(
            format!("notification.{key}"),
            "is a named field of `Notification`: set it there, not in `extra`",
        )),
        None => Ok(()),
    }
}

pub(super) fn check_payload_size(size: usize) -> Result<usize, ValidationError> {
    if size > MAX_PAYLOAD_BYTES {
        return Err(ValidationError::PayloadTooLarge {
            size,
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    Ok(size)
}

pub(super) fn map_payload_size(map: &Map<String, Value>) -> usize {
    map.iter()
        .map(|(key, value)| {
            key.len()
                + match value {
                    Value::String(s) => s.len(),
                    other => other.to_string().len(),
                }
        })
        .sum()
}
