//! Response bodies of the legacy send API (http-legacy §5): the three JSON shapes of a 200,
//! and readable one-line texts for the plain-text 400 and the HTML 401 / 5xx pages, which
//! are never parsed as JSON.
//!
//! [`HttpSender`](super::HttpSender) reads every response through [`Reply::from_response`]
//! and, for token targets, [`Reply::token_results`]; both are public for callers that post
//! to `/gcm/send` with their own HTTP client.

use serde::Deserialize;

use super::error::{GroupOutcome, HttpError};

/// Longest server text kept in an error.
const MAX_TEXT: usize = 300;

/// The outcome for one registration token of a token send (§5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenResult {
    /// Accepted; `registration_id` is the canonical token when the device has a newer one.
    Sent {
        /// The server-assigned id, e.g. `0:1516…%7a…`.
        message_id: String,
        /// The canonical token, when the device has a newer one.
        registration_id: Option<String>,
    },
    /// Refused with this error code (§6), verbatim.
    Failed(String),
}

/// A parsed 200 body, one variant per documented shape.
///
/// ```
/// use gcm_ccs::http::{Reply, TokenResult};
///
/// let body = br#"{"multicast_id":9121580178438514214,"success":1,"failure":1,"canonical_ids":0,
///                 "results":[{"message_id":"0:1%ab"},{"error":"NotRegistered"}]}"#;
/// let (multicast_id, results) = Reply::from_response(200, body)?.token_results(2)?;
/// assert_eq!(multicast_id, 9_121_580_178_438_514_214);
/// assert_eq!(results[1], TokenResult::Failed("NotRegistered".into()));
/// # Ok::<(), gcm_ccs::HttpError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Token target(s): one result per token, in request order.
    Tokens {
        /// The request's 64-bit id.
        multicast_id: i64,
        /// One result per token, in request order.
        results: Vec<TokenResult>,
    },
    /// Topic or condition target: the numeric message id, or an error code.
    Topic(Result<i64, String>),
    /// Device-group target.
    Group(GroupOutcome),
}

/// Every member any shape may have. Integers are read as `i64`/`u64` directly, never through
/// `f64`; unknown members (`success`, `canonical_ids`, … of §5.2) are ignored.
#[derive(Deserialize)]
struct Body {
    multicast_id: Option<i64>,
    results: Option<Vec<ResultBody>>,
    message_id: Option<i64>,
    error: Option<String>,
    success: Option<u64>,
    failure: Option<u64>,
    failed_registration_ids: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct ResultBody {
    message_id: Option<String>,
    registration_id: Option<String>,
    error: Option<String>,
}

impl Reply {
    /// Reads a whole response: the body of a 200 is parsed ([`Reply::parse`]); any other
    /// status is an error with the body as one readable line, never parsed as JSON
    /// ([`HttpError::BadRequest`] for 400, [`HttpError::Unauthorized`] for 401,
    /// [`HttpError::Status`] otherwise).
    pub fn from_response(status: u16, body: &[u8]) -> Result<Reply, HttpError> {
        match status {
            200 => Reply::parse(body),
            _ => Err(status_error(status, body)),
        }
    }

    /// Parses the body of a 200 response. Integers are exact (`i64` / `u64`, never through
    /// `f64`); members not listed in §5 are ignored. A body that is none of the shapes of
    /// §5.2–5.4 is an [`HttpError::InvalidResponse`].
    pub fn parse(body: &[u8]) -> Result<Reply, HttpError> {
        let invalid = |why: String| HttpError::InvalidResponse(format!("{why}: {}", text(body)));
        // The typed read alone is not enough: serde skips unknown members without checking
        // their strings (invalid UTF-8, lone surrogate escapes), and a derived struct also
        // reads a JSON array positionally. So the whole body must first be a JSON object;
        // the typed read then takes the members, exact integers and duplicate checks.
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body)
            .map_err(|e| invalid(format!("not a JSON object ({e})")))?;
        let b: Body = serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
        if let Some(results) = b.results {
            let multicast_id = b
                .multicast_id
                .ok_or_else(|| invalid("`results` without `multicast_id`".into()))?;
            let results = results
                .into_iter()
                .map(|r| match (r.message_id, r.error) {
                    (Some(message_id), _) => Ok(TokenResult::Sent {
                        message_id,
                        registration_id: r.registration_id,
                    }),
                    (None, Some(error)) => Ok(TokenResult::Failed(error)),
                    (None, None) => Err(invalid(
                        "a result has neither `message_id` nor `error`".into(),
                    )),
                })
                .collect::<Result<_, _>>()?;
            return Ok(Reply::Tokens {
                multicast_id,
                results,
            });
        }
        match (b.message_id, b.error, b.success, b.failure) {
            (Some(id), _, _, _) => Ok(Reply::Topic(Ok(id))),
            (None, Some(error), _, _) => Ok(Reply::Topic(Err(error))),
            (None, None, Some(success), Some(failure)) => Ok(Reply::Group(GroupOutcome {
                success,
                failure,
                failed_registration_ids: b.failed_registration_ids.unwrap_or_default(),
            })),
            _ => Err(invalid("none of the documented response shapes".into())),
        }
    }

    /// The multicast id and the per-token results of the reply to a request for `sent`
    /// registration ids (`sent` = 1 for a `to` token): exactly one result per id, in request
    /// order, or an [`HttpError::InvalidResponse`] when the count differs or the reply has
    /// another shape, so results can never be matched to the wrong token.
    pub fn token_results(self, sent: usize) -> Result<(i64, Vec<TokenResult>), HttpError> {
        match self {
            Reply::Tokens {
                multicast_id,
                results,
            } if results.len() == sent => Ok((multicast_id, results)),
            Reply::Tokens { results, .. } => Err(HttpError::InvalidResponse(format!(
                "{} results for {sent} registration id(s)",
                results.len()
            ))),
            other => Err(HttpError::InvalidResponse(format!(
                "{other:?} instead of per-token results"
            ))),
        }
    }
}

/// The error for a non-200 status with `body`.
fn status_error(status: u16, body: &[u8]) -> HttpError {
    match status {
        400 => HttpError::BadRequest(text(body)),
        401 => HttpError::Unauthorized(text(body)),
        _ => HttpError::Status {
            status,
            body: text(body),
        },
    }
}

/// A server body as one readable line: an HTML page is reduced to the text of its `<body>`,
/// whitespace is collapsed, and long texts are cut.
pub(crate) fn text(body: &[u8]) -> String {
    let raw = String::from_utf8_lossy(body);
    let trimmed = raw.trim_start();
    let plain = if trimmed.starts_with('<') {
        strip_tags(after_head(trimmed))
    } else {
        raw.into_owned()
    };
    let mut line = plain.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return "(empty body)".to_owned();
    }
    if line.len() > MAX_TEXT {
        let mut cut = MAX_TEXT;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    line
}

/// The part of an HTML page after `</head>` (the title repeats the heading), if any.
fn after_head(html: &str) -> &str {
    let lower = html.to_ascii_lowercase();
    match lower.find("</head>") {
        // ASCII lowercasing keeps byte offsets, and `</head>` is ASCII.
        Some(i) => &html[i + "</head>".len()..],
        None => html,
    }
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn token_shape_keeps_order_and_exact_ids() {
        let body =
            br#"{"multicast_id":9121580178438514214,"success":3,"failure":2,"canonical_ids":1,
            "results":[{"message_id":"0:1500000000000001%abc"},
                       {"error":"Unavailable"},
                       {"error":"NotRegistered"},
                       {"message_id":"0:2%abc","registration_id":"tokC-new"}]}"#;
        let Reply::Tokens {
            multicast_id,
            results,
        } = Reply::parse(body).unwrap()
        else {
            panic!("not the token shape")
        };
        assert_eq!(multicast_id, 9_121_580_178_438_514_214);
        assert_eq!(
            results,
            vec![
                TokenResult::Sent {
                    message_id: "0:1500000000000001%abc".into(),
                    registration_id: None
                },
                TokenResult::Failed("Unavailable".into()),
                TokenResult::Failed("NotRegistered".into()),
                TokenResult::Sent {
                    message_id: "0:2%abc".into(),
                    registration_id: Some("tokC-new".into())
                },
            ]
        );
    }

    #[test]
    fn topic_and_group_shapes() {
        assert_eq!(
            Reply::parse(br#"{"message_id":5924381003857235119}"#).unwrap(),
            Reply::Topic(Ok(5_924_381_003_857_235_119))
        );
        assert_eq!(
            Reply::parse(br#"{"error":"TopicsMessageRateExceeded"}"#).unwrap(),
            Reply::Topic(Err("TopicsMessageRateExceeded".into()))
        );
        assert_eq!(
            Reply::parse(br#"{"success":1,"failure":2,"failed_registration_ids":["x","y"]}"#)
                .unwrap(),
            Reply::Group(GroupOutcome {
                success: 1,
                failure: 2,
                failed_registration_ids: vec!["x".into(), "y".into()]
            })
        );
        assert_eq!(
            Reply::parse(br#"{"success":2,"failure":0}"#).unwrap(),
            Reply::Group(GroupOutcome {
                success: 2,
                failure: 0,
                failed_registration_ids: vec![]
            })
        );
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        let cases: &[&[u8]] = &[
            b"",
            b"id=0:1",
            b"<HTML>oops</HTML>",
            br#"{"multicast_id":1.5,"results":[]}"#,
            br#"{"results":[]}"#,
            br#"{"multicast_id":1,"results":[{}]}"#,
            br#"{"message_id":"0:1"}"#,
            br#"{"message_id":1e30}"#,
            br#"{"success":1}"#,
            b"[]",
            &[0xff, 0xfe],
            // Positionally, a derived struct would read these as the token shape.
            br#"[1,[{"message_id":"a"}],null,null,null,null,null]"#,
            // Not JSON, though only inside members the parser otherwise skips (fuzzing).
            b"{\"success\":3,\"failure\":2,\"\":[{\"\":\"\xcf\"}]}",
            br#"{"success":3,"failure":2,"other":"\udc00"}"#,
        ];
        for body in cases {
            let e = Reply::parse(body).unwrap_err();
            assert!(
                matches!(e, HttpError::InvalidResponse(_)),
                "{body:?}: {e:?}"
            );
        }
    }

    #[test]
    fn error_bodies_become_readable_lines() {
        let html = b"<HTML>\n<HEAD>\n<TITLE>Unauthorized</TITLE>\n</HEAD>\n<BODY BGCOLOR=\"#FFFFFF\" TEXT=\"#000000\">\n<H1>Unauthorized</H1>\n<H2>Error 401</H2>\n</BODY>\n</HTML>\n";
        assert_eq!(
            status_error(401, html),
            HttpError::Unauthorized("Unauthorized Error 401".into())
        );
        assert_eq!(
            status_error(400, b"Missing \"registration_ids\" field\n"),
            HttpError::BadRequest("Missing \"registration_ids\" field".into())
        );
        // A plain text mentioning `<` is not mistaken for HTML.
        assert_eq!(
            text(b"JSON_PARSING_ERROR: Unexpected character (<) at position 0.\n"),
            "JSON_PARSING_ERROR: Unexpected character (<) at position 0."
        );
        assert_eq!(
            status_error(503, b""),
            HttpError::Status {
                status: 503,
                body: "(empty body)".into()
            }
        );
        let long = text("é".repeat(400).as_bytes());
        assert!(long.ends_with('…') && long.len() <= MAX_TEXT + '…'.len_utf8());
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Reply::parse(&body);
            let _ = text(&body);
        }

        #[test]
        fn html_like_bodies_never_panic(body in "[<>/a-zA-Zé \n]{0,400}") {
            let line = text(body.as_bytes());
            prop_assert!(line.len() <= MAX_TEXT + '…'.len_utf8());
        }
    }
}
