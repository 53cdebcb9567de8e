//! What one push service response means (webpush spec §3), decided from the status and
//! headers alone, so the policy is testable without a server.

use std::time::Duration;

use super::error::WebPushError;

/// A push the push service accepted (`201 Created`): it now holds the message and delivers it
/// when the browser is reachable, within the TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The status (201; another 2xx is taken as accepted too).
    pub status: u16,
    /// `Location`: the URL naming the message at the push service.
    pub location: Option<String>,
    /// The `TTL` the service keeps the message for, which may be lower than requested.
    pub ttl: Option<u32>,
    /// Requests made, the first included (more than 1 after 429 / 5xx retries).
    pub attempts: u32,
}

/// The parts of a response that decide its outcome.
pub(super) struct Response<'a> {
    pub status: u16,
    pub location: Option<&'a str>,
    pub ttl: Option<&'a str>,
    pub retry_after: Option<Duration>,
    /// The body as one readable line.
    pub reason: String,
}

/// The meaning of one response.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Answer {
    Accepted(Accepted),
    /// Worth another attempt, after at least the `Retry-After` if there was one.
    Retry(WebPushError, Option<Duration>),
    Final(WebPushError),
}

pub(super) fn classify(r: Response<'_>) -> Answer {
    let Response {
        status,
        reason,
        retry_after,
        ..
    } = r;
    let error = match status {
        200..=299 => {
            return Answer::Accepted(Accepted {
                status,
                location: r.location.map(str::to_owned),
                ttl: r.ttl.and_then(|t| t.trim().parse().ok()),
                attempts: 1,
            });
        }
        404 | 410 => WebPushError::SubscriptionGone { status, reason },
        413 => WebPushError::PayloadTooLarge { reason },
        400 => WebPushError::BadRequest { reason },
        401 | 403 => WebPushError::VapidRefused { status, reason },
        429 => {
            let error = WebPushError::RateLimited {
                retry_after,
                reason,
            };
            return Answer::Retry(error, retry_after);
        }
        500..=599 => {
            let error = WebPushError::Unavailable {
                status,
                retry_after,
                reason,
            };
            return Answer::Retry(error, retry_after);
        }
        _ => WebPushError::Status { status, reason },
    };
    Answer::Final(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, retry_after: Option<u64>) -> Answer {
        classify(Response {
            status,
            location: Some("https://push.example/m/1"),
            ttl: Some(" 60 "),
            retry_after: retry_after.map(Duration::from_secs),
            reason: "why".into(),
        })
    }

    #[test]
    fn each_status_class() {
        let Answer::Accepted(a) = answer(201, None) else {
            panic!("201 is accepted")
        };
        assert_eq!(
            a,
            Accepted {
                status: 201,
                location: Some("https://push.example/m/1".into()),
                ttl: Some(60),
                attempts: 1
            }
        );
        let final_code = |status| match answer(status, None) {
            Answer::Final(e) => (e.code(), e.is_retryable(), e.status()),
            other => panic!("{status}: {other:?}"),
        };
        assert_eq!(final_code(404), ("SUBSCRIPTION_GONE", false, Some(404)));
        assert_eq!(final_code(410), ("SUBSCRIPTION_GONE", false, Some(410)));
        assert_eq!(final_code(413), ("PAYLOAD_TOO_LARGE", false, Some(413)));
        assert_eq!(final_code(400), ("BAD_REQUEST", false, Some(400)));
        assert_eq!(final_code(401), ("VAPID_REFUSED", false, Some(401)));
        assert_eq!(final_code(403), ("VAPID_REFUSED", false, Some(403)));
        assert_eq!(final_code(302), ("HTTP_ERROR", false, Some(302)));
        assert_eq!(final_code(418), ("HTTP_ERROR", false, Some(418)));
        for (status, code) in [
            (429, "RATE_LIMITED"),
            (500, "UNAVAILABLE"),
            (503, "UNAVAILABLE"),
        ] {
            match answer(status, Some(7)) {
                Answer::Retry(e, after) => {
                    assert_eq!((e.code(), e.is_retryable()), (code, true));
                    assert_eq!(after, Some(Duration::from_secs(7)));
                    assert!(e.to_string().contains("Retry-After 7 s"), "{e}");
                }
                other => panic!("{status}: {other:?}"),
            }
        }
    }
}
