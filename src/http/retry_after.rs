//! The `Retry-After` header (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.

use std::time::{Duration, SystemTime};

/// How long `Retry-After: value` asks to wait, seen at `now`. A date in the past means no
/// wait; an unparseable value is ignored (`None`).
pub fn parse(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long digit strings saturate instead of being dropped.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn seconds_form() {
        let now = SystemTime::now();
        assert_eq!(parse("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn http_date_forms() {
        // Fri, 31 Dec 1999 23:59:59 GMT = 946684799.
        let date = 946_684_799;
        let now = at(date - 90);
        assert_eq!(
            parse("Fri, 31 Dec 1999 23:59:59 GMT", now),
            Some(Duration::from_secs(90))
        );
        // The obsolete RFC 850 and asctime forms are accepted too.
        assert_eq!(
            parse("Friday, 31-Dec-99 23:59:59 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse("Fri Dec 31 23:59:59 1999", now),
            Some(Duration::from_secs(90))
        );
        // In the past: retry at once.
        assert_eq!(
            parse("Fri, 31 Dec 1999 23:59:59 GMT", at(date + 5)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn garbage_is_ignored() {
        let now = SystemTime::now();
        for value in ["", "soon", "-5", "1.5", "Fri, 32 Dec 1999 23:59:59 GMT"] {
            assert_eq!(parse(value, now), None, "{value:?}");
        }
    }
}
