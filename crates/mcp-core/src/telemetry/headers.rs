//! HTTP header values the filter writes: routing headers and W3C trace context.

use std::borrow::Cow;

/// Routing header carrying the JSON-RPC method.
pub const X_MCP_METHOD: &str = "x-mcp-method";
/// Routing header carrying the tool name of a `tools/call`.
pub const X_MCP_TOOL: &str = "x-mcp-tool";
/// W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";
/// W3C vendor trace state header.
pub const TRACESTATE: &str = "tracestate";

/// A value safe to put in a header as is: visible ASCII and inner spaces. Anything else
/// (controls, non-ASCII, leading/trailing white space) is sent in MCP's base64 sentinel form
/// `=?base64?…?=` (the 2026-07-28 `Mcp-Name` encoding), so a route can still match it exactly.
pub fn header_value(v: &str) -> Cow<'_, str> {
    let plain = !v.is_empty()
        && !v.starts_with(' ')
        && !v.ends_with(' ')
        && !v.starts_with("=?base64?")
        && v.bytes().all(|c| (0x20..0x7f).contains(&c));
    if plain {
        return Cow::Borrowed(v);
    }
    let mut out = String::from("=?base64?");
    crate::base64::encode_into(v.as_bytes(), &mut out);
    out.push_str("?=");
    Cow::Owned(out)
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// Whether `v` is a W3C Trace Context `traceparent` this filter may forward: version `00`
/// exactly (`00-<32 hex>-<16 hex>-<2 hex>`), or a later version (not `ff`) whose first 55
/// characters have that shape followed by nothing or `-`; lower-case hex; trace and parent
/// ids not all zeros.
pub fn valid_traceparent(v: &str) -> bool {
    let (head, rest) = match v.split_at_checked(55) {
        Some(p) => p,
        None => return false,
    };
    let mut parts = head.split('-');
    let (Some(version), Some(trace), Some(parent), Some(flags), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let shaped = version.len() == 2
        && trace.len() == 32
        && parent.len() == 16
        && flags.len() == 2
        && [version, trace, parent, flags]
            .iter()
            .all(|p| is_lower_hex(p));
    if !shaped || version == "ff" {
        return false;
    }
    if trace.bytes().all(|c| c == b'0') || parent.bytes().all(|c| c == b'0') {
        return false;
    }
    if version == "00" {
        rest.is_empty()
    } else {
        rest.is_empty() || rest.starts_with('-')
    }
}

/// Longest `tracestate` forwarded (W3C: 32 members of at most 256 characters; vendors must
/// propagate at least 512 characters).
pub const MAX_TRACESTATE: usize = 8192;

/// Whether `v` is a `tracestate` this filter may forward: non-empty, at most
/// [`MAX_TRACESTATE`] characters, printable ASCII, each non-empty list member `key=value`.
pub fn valid_tracestate(v: &str) -> bool {
    if v.is_empty() || v.len() > MAX_TRACESTATE || !v.bytes().all(|c| (0x20..0x7f).contains(&c)) {
        return false;
    }
    v.split(',')
        .map(|m| m.trim_matches([' ', '\t']))
        .filter(|m| !m.is_empty())
        .all(|m| matches!(m.split_once('='), Some((k, val)) if !k.is_empty() && !val.is_empty() && !k.contains(' ')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_sent_as_they_are() {
        assert_eq!(header_value("get_weather"), "get_weather");
        assert_eq!(header_value("file:///a b.txt"), "file:///a b.txt");
    }

    #[test]
    fn unsafe_names_use_the_base64_sentinel_and_decode_back() {
        for v in ["naïve", "a\nb", " lead", "", "=?base64?abc?="] {
            let h = header_value(v);
            assert!(h.starts_with("=?base64?"), "{h}");
            assert!(h.bytes().all(|c| (0x21..0x7f).contains(&c)), "{h}");
            assert_eq!(crate::mcp::decode_header_value(&h).unwrap(), v);
        }
        assert_eq!(header_value("naïve"), "=?base64?bmHDr3Zl?=");
    }

    #[test]
    fn traceparent_follows_the_w3c_grammar() {
        let good = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert!(valid_traceparent(good));
        assert!(valid_traceparent(
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future"
        ));
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
            "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01x",
            "00-0af7651916cd43dd8448eb211c80319cb7ad6b7169203331--01",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0\u{e9}",
        ] {
            assert!(!valid_traceparent(bad), "{bad}");
        }
    }

    #[test]
    fn tracestate_must_be_a_printable_key_value_list() {
        assert!(valid_tracestate("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
        assert!(valid_tracestate("a=1, b=2"));
        assert!(!valid_tracestate(""));
        assert!(!valid_tracestate("novalue"));
        assert!(!valid_tracestate("a=1\r\nx-evil: 1"));
        assert!(!valid_tracestate(&"a=b,".repeat(3000)));
    }
}
