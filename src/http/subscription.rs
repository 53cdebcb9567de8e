//! Registration ids from Chrome's GCM-era web-push subscriptions (http-legacy §11.2).

use serde::Deserialize;

/// The endpoint prefix of GCM-era Chrome push subscriptions.
pub const GCM_PUSH_ENDPOINT: &str = "https://android.googleapis.com/gcm/send";

/// Why no registration id could be taken from a subscription.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// The text looked like JSON but is not a usable `PushSubscription` object.
    #[error("not a PushSubscription JSON object: {0}")]
    Json(String),
    /// The subscription's endpoint belongs to a push service other than GCM.
    #[error(
        "endpoint `{0}` is not a GCM endpoint ({GCM_PUSH_ENDPOINT}/…): send to it with the Web Push protocol instead"
    )]
    NotGcm(String),
    /// A Chrome 42–43 endpoint without the separate `subscriptionId`.
    #[error("endpoint `{0}` carries no registration id and no `subscriptionId` was given")]
    MissingId(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PushSubscription {
    endpoint: String,
    subscription_id: Option<String>,
}

/// The registration id of a browser `PushSubscription`, given as its JSON (`endpoint` and,
/// from Chrome 42–43, `subscriptionId`) or as the bare endpoint URL.
///
/// `https://android.googleapis.com/gcm/send/<ID>` yields `<ID>`; Chrome 42–43's
/// `https://android.googleapis.com/gcm/send` plus `subscriptionId: <ID>` yields `<ID>` too.
/// Endpoints of other services (including VAPID ones at `fcm.googleapis.com`) are refused.
pub fn registration_id(subscription: &str) -> Result<String, SubscriptionError> {
    let text = subscription.trim();
    if !text.starts_with('{') {
        return registration_id_from_endpoint(text, None);
    }
    let sub: PushSubscription =
        serde_json::from_str(text).map_err(|e| SubscriptionError::Json(e.to_string()))?;
    registration_id_from_endpoint(&sub.endpoint, sub.subscription_id.as_deref())
}

/// The registration id from an `endpoint` and an optional Chrome 42–43 `subscription_id`:
/// the id is appended unless the endpoint already ends with it, then the last path segment
/// is taken.
pub fn registration_id_from_endpoint(
    endpoint: &str,
    subscription_id: Option<&str>,
) -> Result<String, SubscriptionError> {
    let rest = endpoint
        .strip_prefix(GCM_PUSH_ENDPOINT)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        .ok_or_else(|| SubscriptionError::NotGcm(endpoint.to_owned()))?;
    let id = match subscription_id.filter(|id| !id.is_empty()) {
        Some(id) if !rest.ends_with(id) => id,
        _ => rest.rsplit('/').next().unwrap_or_default(),
    };
    if id.is_empty() || id.contains(['/', '?', '#']) || id.chars().any(char::is_whitespace) {
        return Err(SubscriptionError::MissingId(endpoint.to_owned()));
    }
    Ok(id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "cJ3xQ9abcde:APA91bExampleToken_-0123";

    #[test]
    fn extraction_table() {
        use SubscriptionError::*;
        let chrome44 = format!("{GCM_PUSH_ENDPOINT}/{ID}");
        let cases: Vec<(String, Result<&str, SubscriptionError>)> = vec![
            // Chrome 44+: the id is the last path segment.
            (chrome44.clone(), Ok(ID)),
            (format!("  {chrome44}\n"), Ok(ID)),
            (
                format!(r#"{{"endpoint":"{chrome44}","keys":{{"p256dh":"B","auth":"a"}}}}"#),
                Ok(ID),
            ),
            // Chrome 42–43: the id is a separate property.
            (
                format!(r#"{{"endpoint":"{GCM_PUSH_ENDPOINT}","subscriptionId":"{ID}"}}"#),
                Ok(ID),
            ),
            // Both present and consistent: not appended twice.
            (
                format!(r#"{{"endpoint":"{chrome44}","subscriptionId":"{ID}"}}"#),
                Ok(ID),
            ),
            (
                GCM_PUSH_ENDPOINT.to_owned(),
                Err(MissingId(GCM_PUSH_ENDPOINT.into())),
            ),
            (
                format!("{GCM_PUSH_ENDPOINT}/"),
                Err(MissingId(format!("{GCM_PUSH_ENDPOINT}/"))),
            ),
            (
                format!(r#"{{"endpoint":"{GCM_PUSH_ENDPOINT}","subscriptionId":""}}"#),
                Err(MissingId(GCM_PUSH_ENDPOINT.into())),
            ),
            // Other services.
            (
                format!("https://fcm.googleapis.com/fcm/send/{ID}"),
                Err(NotGcm(format!("https://fcm.googleapis.com/fcm/send/{ID}"))),
            ),
            (
                "https://updates.push.services.mozilla.com/wpush/v2/gAAA".into(),
                Err(NotGcm(
                    "https://updates.push.services.mozilla.com/wpush/v2/gAAA".into(),
                )),
            ),
            (
                format!("http://android.googleapis.com/gcm/send/{ID}"),
                Err(NotGcm(format!(
                    "http://android.googleapis.com/gcm/send/{ID}"
                ))),
            ),
            (
                format!("{GCM_PUSH_ENDPOINT}er/{ID}"),
                Err(NotGcm(format!("{GCM_PUSH_ENDPOINT}er/{ID}"))),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(registration_id(&input), want.map(str::to_owned), "{input}");
        }
    }

    #[test]
    fn bad_json_is_a_clear_error() {
        for input in ["{", r#"{"keys":{}}"#, r#"{"endpoint":5}"#] {
            let e = registration_id(input).unwrap_err();
            assert!(matches!(e, SubscriptionError::Json(_)), "{input}: {e:?}");
        }
    }
}
