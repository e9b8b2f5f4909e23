//! Reading what a response says about one request, without parsing the response.
//!
//! A response body (or one SSE event's `data`) is walked leniently at its top level only: the
//! `id`, `error.code`, `result.isError` and (for `initialize`) `result.protocolVersion` members
//! are read and every other value is skipped by bracket counting, so an 11 KB tool result costs
//! one linear byte pass with no allocation and no validation. Upstream bytes are not a security
//! input here (they only feed telemetry), so malformed input yields `NotAResponse` or a partial
//! answer rather than an error, and never a panic.

use crate::json::{key_matches, skip_ws, string_end, unescape, value_end};
use crate::jsonrpc::Id;
use std::borrow::Cow;
use std::ops::Range;

/// How a response ended the operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseKind {
    /// A `result`; `tool_error` when it is a `CallToolResult` with `isError: true`.
    Result {
        /// `result.isError` was `true` (only looked at when asked for).
        tool_error: bool,
    },
    /// An `error`, with its `code` as a string (`_OTHER` when it is not an integer).
    Error {
        /// `error.code` as written (`-32602`), or `_OTHER`.
        code: String,
    },
}

/// What a matching response told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseFacts<'a> {
    /// Result or error.
    pub kind: ResponseKind,
    /// `result.protocolVersion` (asked for on `initialize`: the negotiated version).
    pub protocol_version: Option<Cow<'a, str>>,
}

/// The answer for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan<'a> {
    /// A request, a notification, or not a JSON-RPC object at all.
    NotAResponse,
    /// A response to some other request.
    OtherId,
    /// The response to the expected request (or an error response with a `null` id, which a
    /// server sends when it could not read the request's id).
    Matched(ResponseFacts<'a>),
}

/// Which optional facts to read from a matching `result`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Want {
    /// Read `result.isError` (the request was `tools/call`).
    pub is_error: bool,
    /// Read `result.protocolVersion` (the request was `initialize`).
    pub protocol_version: bool,
}

/// One top-level member found by the lenient walk.
struct RawMember {
    key_start: usize,
    key_end: usize,
    key_escaped: bool,
    value: Range<usize>,
}

/// Lenient iterator over the members of the object whose `{` is at `open`.
struct Walk<'a> {
    b: &'a [u8],
    pos: Option<usize>,
}

impl<'a> Walk<'a> {
    fn object(b: &'a [u8], open: usize) -> Walk<'a> {
        let pos = (b.get(open) == Some(&b'{')).then_some(open + 1);
        Walk { b, pos }
    }
}

impl Iterator for Walk<'_> {
    type Item = RawMember;
    fn next(&mut self) -> Option<RawMember> {
        let b = self.b;
        let start = skip_ws(b, self.pos.take()?);
        if b.get(start) != Some(&b'"') {
            return None;
        }
        let (key_end, key_escaped) = string_end(b, start)?;
        let colon = skip_ws(b, key_end);
        if b.get(colon) != Some(&b':') {
            return None;
        }
        let v = skip_ws(b, colon + 1);
        let v_end = value_end(b, v)?;
        let after = skip_ws(b, v_end);
        if b.get(after) == Some(&b',') {
            self.pos = Some(after + 1);
        }
        Some(RawMember {
            key_start: start,
            key_end,
            key_escaped,
            value: v..v_end,
        })
    }
}

impl RawMember {
    fn is(&self, b: &[u8], key: &str) -> bool {
        key_matches(b, self.key_start, self.key_end, self.key_escaped, key)
    }
}

enum IdCheck {
    Same,
    Other,
    Null,
}

fn check_id(raw: &[u8], expected: &Id<'_>) -> IdCheck {
    match (raw.first(), expected) {
        (Some(b'n'), _) => IdCheck::Null,
        (Some(b'"'), Id::String(want)) => {
            let inner = raw.get(1..raw.len().saturating_sub(1)).unwrap_or_default();
            match unescape(inner) {
                Ok(got) if got == *want => IdCheck::Same,
                _ => IdCheck::Other,
            }
        }
        (Some(b'-' | b'0'..=b'9'), Id::Number(want)) => {
            if raw == want.as_bytes() {
                return IdCheck::Same;
            }
            // `1` and `1.0` are the same id to JavaScript and Python peers.
            let got = std::str::from_utf8(raw)
                .ok()
                .and_then(|s| s.parse::<f64>().ok());
            match (got, want.parse::<f64>().ok()) {
                (Some(g), Some(w)) if g == w => IdCheck::Same,
                _ => IdCheck::Other,
            }
        }
        // JSON-RPC ids are typed, but the TypeScript SDK finds a response's request by
        // `Number(id)`: `"7"` answers request `7` for that client, so it is recorded as the
        // answer (the outcome the client acts on), and the other way round.
        (Some(b'"'), Id::Number(want)) => {
            let inner = raw.get(1..raw.len().saturating_sub(1)).unwrap_or_default();
            match (
                unescape(inner).ok().and_then(|t| js_number(&t)),
                want.parse::<f64>(),
            ) {
                (Some(g), Ok(w)) if g == w => IdCheck::Same,
                _ => IdCheck::Other,
            }
        }
        (Some(b'-' | b'0'..=b'9'), Id::String(want)) => {
            let got = std::str::from_utf8(raw)
                .ok()
                .and_then(|s| s.parse::<f64>().ok());
            match (got, js_number(want)) {
                (Some(g), Some(w)) if g == w => IdCheck::Same,
                _ => IdCheck::Other,
            }
        }
        _ => IdCheck::Other,
    }
}

/// JavaScript's `Number(text)` for the decimal forms an id can take (white space trimmed,
/// `""` is 0); `None` where JavaScript gives `NaN` (or for forms not handled here, such as
/// hexadecimal, which then match nothing).
fn js_number(text: &str) -> Option<f64> {
    let t = text.trim();
    if t.is_empty() {
        return Some(0.0);
    }
    let plain = t
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'));
    if !plain {
        return None;
    }
    t.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn error_code(b: &[u8], error: &Range<usize>) -> String {
    let code = Walk::object(b, error.start)
        .find(|m| m.is(b, "code"))
        .and_then(|m| b.get(m.value));
    match code {
        Some(raw) if is_integer_text(raw) => String::from_utf8_lossy(raw).into_owned(),
        _ => "_OTHER".to_owned(),
    }
}

fn is_integer_text(raw: &[u8]) -> bool {
    let digits = raw.strip_prefix(b"-").unwrap_or(raw);
    !digits.is_empty() && digits.len() <= 20 && digits.iter().all(u8::is_ascii_digit)
}

fn result_facts<'a>(b: &'a [u8], result: &Range<usize>, want: Want) -> ResponseFacts<'a> {
    let mut facts = ResponseFacts {
        kind: ResponseKind::Result { tool_error: false },
        protocol_version: None,
    };
    if !want.is_error && !want.protocol_version {
        return facts;
    }
    for m in Walk::object(b, result.start) {
        if want.is_error && m.is(b, "isError") {
            facts.kind = ResponseKind::Result {
                tool_error: b.get(m.value.clone()) == Some(b"true"),
            };
        } else if want.protocol_version && m.is(b, "protocolVersion") {
            facts.protocol_version = b
                .get(m.value.start + 1..m.value.end.saturating_sub(1))
                .filter(|_| b.get(m.value.start) == Some(&b'"'))
                .and_then(|inner| unescape(inner).ok());
        }
    }
    facts
}

/// Reads one JSON-RPC message (a JSON body or an SSE event's data) and says whether it answers
/// the request with id `expected`.
pub fn scan_response<'a>(data: &'a [u8], expected: &Id<'_>, want: Want) -> Scan<'a> {
    let open = skip_ws(data, 0);
    if data.get(open) != Some(&b'{') {
        return Scan::NotAResponse;
    }
    let mut id: Option<IdCheck> = None;
    let mut result = None;
    let mut error = None;
    for m in Walk::object(data, open) {
        if m.is(data, "id") {
            let check = check_id(data.get(m.value.clone()).unwrap_or_default(), expected);
            if matches!(check, IdCheck::Other) {
                // Not ours: stop before skipping a possibly large result.
                return Scan::OtherId;
            }
            id = Some(check);
        } else if m.is(data, "result") {
            result = Some(m.value);
        } else if m.is(data, "error") {
            error = Some(m.value);
        } else if m.is(data, "method") {
            return Scan::NotAResponse;
        }
        if id.is_some() && (result.is_some() || error.is_some()) {
            break;
        }
    }
    match (id, result, error) {
        (Some(IdCheck::Same), Some(r), None) => Scan::Matched(result_facts(data, &r, want)),
        (Some(IdCheck::Same | IdCheck::Null) | None, None, Some(e)) => {
            Scan::Matched(ResponseFacts {
                kind: ResponseKind::Error {
                    code: error_code(data, &e),
                },
                protocol_version: None,
            })
        }
        (Some(_), _, _) => Scan::OtherId,
        _ => Scan::NotAResponse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOOL: Want = Want {
        is_error: true,
        protocol_version: false,
    };

    fn num(n: &str) -> Id<'_> {
        Id::Number(n)
    }

    fn s(v: &str) -> Id<'_> {
        Id::String(Cow::Borrowed(v))
    }

    fn kind(scan: Scan<'_>) -> Option<ResponseKind> {
        match scan {
            Scan::Matched(f) => Some(f.kind),
            _ => None,
        }
    }

    #[test]
    fn a_result_for_the_expected_id_matches() {
        let r = scan_response(br#"{"jsonrpc":"2.0","id":7,"result":{}}"#, &num("7"), TOOL);
        assert_eq!(kind(r), Some(ResponseKind::Result { tool_error: false }));
    }

    #[test]
    fn is_error_true_is_a_tool_error_only_at_the_top_of_the_result() {
        let yes = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"x"}],"isError":true}}"#;
        assert_eq!(
            kind(scan_response(yes, &num("1"), TOOL)),
            Some(ResponseKind::Result { tool_error: true })
        );
        let nested = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"isError":true,"text":"\"isError\":true"}],"isError":false}}"#;
        assert_eq!(
            kind(scan_response(nested, &num("1"), TOOL)),
            Some(ResponseKind::Result { tool_error: false })
        );
    }

    #[test]
    fn is_error_is_ignored_when_not_asked_for() {
        let yes = br#"{"jsonrpc":"2.0","id":1,"result":{"isError":true}}"#;
        assert_eq!(
            kind(scan_response(yes, &num("1"), Want::default())),
            Some(ResponseKind::Result { tool_error: false })
        );
    }

    #[test]
    fn an_error_carries_its_code_as_a_string() {
        let e =
            br#"{"jsonrpc":"2.0","id":"a","error":{"message":"Unknown tool: x","code":-32602}}"#;
        assert_eq!(
            kind(scan_response(e, &s("a"), TOOL)),
            Some(ResponseKind::Error {
                code: "-32602".into()
            })
        );
        let odd = br#"{"jsonrpc":"2.0","id":"a","error":{"code":"oops"}}"#;
        assert_eq!(
            kind(scan_response(odd, &s("a"), TOOL)),
            Some(ResponseKind::Error {
                code: "_OTHER".into()
            })
        );
    }

    #[test]
    fn an_error_with_a_null_or_missing_id_is_taken_as_the_answer() {
        for body in [
            &br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#[..],
            br#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request"}}"#,
        ] {
            assert!(matches!(
                kind(scan_response(body, &num("3"), TOOL)),
                Some(ResponseKind::Error { .. })
            ));
        }
        // ...but a result needs the right id.
        let r = br#"{"jsonrpc":"2.0","id":null,"result":{}}"#;
        assert_eq!(scan_response(r, &num("3"), TOOL), Scan::OtherId);
    }

    #[test]
    fn ids_match_as_the_most_lenient_client_matches_them() {
        let body = br#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
        assert!(matches!(
            scan_response(body, &s("1"), TOOL),
            Scan::Matched(_)
        ));
        assert!(matches!(
            scan_response(body, &s(" 1.0 "), TOOL),
            Scan::Matched(_)
        ));
        assert_eq!(scan_response(body, &s("one"), TOOL), Scan::OtherId);
        assert_eq!(scan_response(body, &num("2"), TOOL), Scan::OtherId);
        // The TypeScript SDK looks responses up by Number(id): "7" answers 7.
        for id in [r#""1""#, r#""1e0""#, r#""1""#] {
            let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#);
            assert!(
                matches!(
                    scan_response(body.as_bytes(), &num("1"), TOOL),
                    Scan::Matched(_)
                ),
                "{id}"
            );
        }
        let body = br#"{"jsonrpc":"2.0","id":"0x1","result":{}}"#;
        assert_eq!(scan_response(body, &num("1"), TOOL), Scan::OtherId);
        // Same number, other spelling; escaped string id.
        let body = br#"{"jsonrpc":"2.0","id":1.0,"result":{}}"#;
        assert!(matches!(
            scan_response(body, &num("1"), TOOL),
            Scan::Matched(_)
        ));
        let body = br#"{"jsonrpc":"2.0","id":"c\u002d1","result":{}}"#;
        assert!(matches!(
            scan_response(body, &s("c-1"), TOOL),
            Scan::Matched(_)
        ));
    }

    #[test]
    fn members_are_found_in_any_order_and_behind_escaped_keys() {
        let body = br#"{"result":{"isError":true,"content":[]},"jsonrpc":"2.0","\u0069d":5}"#;
        assert_eq!(
            kind(scan_response(body, &num("5"), TOOL)),
            Some(ResponseKind::Result { tool_error: true })
        );
    }

    #[test]
    fn requests_and_notifications_in_a_stream_are_not_responses() {
        for body in [
            &br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"method":"elicitation/create","params":{}}"#,
            b"[]",
            b"not json",
            b"",
            br#"{"jsonrpc":"2.0"}"#,
        ] {
            assert_eq!(
                scan_response(body, &num("1"), TOOL),
                Scan::NotAResponse,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn truncated_or_garbled_bodies_never_panic() {
        let full = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"a\"b"}],"isError":true}}"#;
        for end in 0..full.len() {
            let _ = scan_response(full.get(..end).unwrap(), &num("1"), TOOL);
        }
        let _ = scan_response(br#"{"id":1,"result":{"isError":tru"#, &num("1"), TOOL);
        let _ = scan_response(br#"{"id":1,"result":}}}]]"#, &num("1"), TOOL);
    }

    #[test]
    fn initialize_results_give_the_negotiated_version() {
        let body = br#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18","capabilities":{}}}"#;
        let Scan::Matched(f) = scan_response(
            body,
            &num("0"),
            Want {
                is_error: false,
                protocol_version: true,
            },
        ) else {
            panic!("no match");
        };
        assert_eq!(f.protocol_version.as_deref(), Some("2025-06-18"));
    }
}
