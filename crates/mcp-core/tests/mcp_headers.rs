//! Protocol eras, effective versions and the 2026-07-28 header/body checks.
// Test helpers outside #[test] fns are not covered by clippy.toml's in-test allowances.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mcp_core::json::Limits;
use mcp_core::jsonrpc::{parse_body, Body, Message, Request, HEADER_MISMATCH};
use mcp_core::mcp::{
    check_stateless_headers, decode_header_value, detect_era, effective_version,
    is_stateless_version, Era, HeaderValueError, RequestHeaders, LEGACY_VERSIONS,
    STATELESS_VERSION,
};

fn req(body: &str) -> Request<'_> {
    match parse_body(body.as_bytes(), &Limits::default()).unwrap() {
        Body::Single(Message::Request(r)) => r,
        _ => panic!("not a request"),
    }
}

const CALL_2026: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
const CALL_LEGACY: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather"}}"#;

fn h<'a>(v: Option<&'a str>, m: Option<&'a str>, n: Option<&'a str>) -> RequestHeaders<'a> {
    RequestHeaders {
        protocol_version: v,
        method: m,
        name: n,
    }
}

#[test]
fn era_is_stateless_for_2026_header_meta_or_server_discover() {
    let legacy = req(CALL_LEGACY);
    assert_eq!(detect_era(None, &legacy), Era::Legacy);
    for v in LEGACY_VERSIONS {
        assert_eq!(detect_era(Some(v), &legacy), Era::Legacy);
    }
    assert_eq!(detect_era(Some(STATELESS_VERSION), &legacy), Era::Stateless);
    assert_eq!(detect_era(Some("2027-01-01"), &legacy), Era::Stateless);
    assert_eq!(detect_era(Some("2026-07-27"), &legacy), Era::Legacy);
    assert_eq!(detect_era(Some("garbage"), &legacy), Era::Legacy);
    assert_eq!(detect_era(Some("2026-7-28"), &legacy), Era::Legacy);
    assert_eq!(detect_era(None, &req(CALL_2026)), Era::Stateless);
    assert_eq!(
        detect_era(
            None,
            &req(r#"{"jsonrpc":"2.0","id":1,"method":"server/discover"}"#)
        ),
        Era::Stateless
    );
    assert!(is_stateless_version("2099-12-31"));
    assert!(!is_stateless_version("2099-12-31x"));
}

#[test]
fn effective_version_prefers_header_then_initialize_then_meta_then_default() {
    let init = req(
        r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}"#,
    );
    assert_eq!(effective_version(Some("2025-11-25"), &init), "2025-11-25");
    assert_eq!(effective_version(None, &init), "2025-06-18");
    assert_eq!(effective_version(None, &req(CALL_2026)), "2026-07-28");
    assert_eq!(effective_version(None, &req(CALL_LEGACY)), "2025-03-26");
    // protocolVersion in params only counts for initialize.
    let other = req(
        r#"{"jsonrpc":"2.0","id":0,"method":"ping","params":{"protocolVersion":"2025-06-18"}}"#,
    );
    assert_eq!(effective_version(None, &other), "2025-03-26");
}

#[test]
fn matching_stateless_headers_pass() {
    let r = req(CALL_2026);
    assert_eq!(
        check_stateless_headers(
            &h(Some("2026-07-28"), Some("tools/call"), Some("get_weather")),
            &r
        ),
        Ok(())
    );
}

#[test]
fn mcp_name_mismatch_reports_both_values() {
    let r = req(CALL_2026);
    let e = check_stateless_headers(&h(Some("2026-07-28"), Some("tools/call"), Some("foo")), &r)
        .unwrap_err();
    assert_eq!(
        e.message,
        "Header mismatch: Mcp-Name header value 'foo' does not match body value 'get_weather'"
    );
    assert_eq!(e.code(), HEADER_MISMATCH);
    let reply: serde_json::Value =
        serde_json::from_slice(&e.to_response_bytes(r.id.as_ref())).unwrap();
    assert_eq!(reply["id"], 1);
    assert_eq!(reply["error"]["code"], -32020);
}

#[test]
fn mcp_method_mismatch_and_case_difference_are_refused() {
    let r = req(CALL_2026);
    for m in ["tools/list", "Tools/Call", "tools/call "] {
        let e = check_stateless_headers(&h(Some("2026-07-28"), Some(m), Some("get_weather")), &r)
            .unwrap_err();
        assert!(
            e.message
                .starts_with("Header mismatch: Mcp-Method header value"),
            "{m}"
        );
    }
}

#[test]
fn missing_required_headers_in_the_stateless_era_are_refused() {
    let r = req(CALL_2026);
    let e =
        check_stateless_headers(&h(None, Some("tools/call"), Some("get_weather")), &r).unwrap_err();
    assert!(e.message.contains("missing required MCP-Protocol-Version"));
    let e =
        check_stateless_headers(&h(Some("2026-07-28"), None, Some("get_weather")), &r).unwrap_err();
    assert!(e.message.contains("missing required Mcp-Method"));
    let e =
        check_stateless_headers(&h(Some("2026-07-28"), Some("tools/call"), None), &r).unwrap_err();
    assert!(e.message.contains("missing required Mcp-Name"));
}

#[test]
fn mcp_name_is_required_only_for_named_methods() {
    let list = req(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
    );
    assert_eq!(
        check_stateless_headers(&h(Some("2026-07-28"), Some("tools/list"), None), &list),
        Ok(())
    );
    let read = req(
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a.txt"}}"#,
    );
    assert_eq!(
        check_stateless_headers(
            &h(
                Some("2026-07-28"),
                Some("resources/read"),
                Some("file:///a.txt")
            ),
            &read
        ),
        Ok(())
    );
    assert!(
        check_stateless_headers(&h(Some("2026-07-28"), Some("resources/read"), None), &read)
            .is_err()
    );
    let prompt = req(r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p"}}"#);
    assert!(check_stateless_headers(
        &h(Some("2026-07-28"), Some("prompts/get"), Some("q")),
        &prompt
    )
    .is_err());
}

#[test]
fn a_header_present_without_a_body_value_is_a_mismatch() {
    let r = req(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#);
    let e = check_stateless_headers(&h(Some("2026-07-28"), Some("tools/call"), Some("x")), &r)
        .unwrap_err();
    assert!(e.message.ends_with("does not match body value (absent)"));
}

#[test]
fn notifications_need_mcp_method_only_when_present() {
    let n = req(
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
    );
    assert_eq!(
        check_stateless_headers(&h(Some("2026-07-28"), None, None), &n),
        Ok(())
    );
    assert!(check_stateless_headers(&h(Some("2026-07-28"), Some("x"), None), &n).is_err());
}

#[test]
fn protocol_version_header_must_equal_meta() {
    let r = req(CALL_2026);
    let e = check_stateless_headers(
        &h(Some("2027-01-01"), Some("tools/call"), Some("get_weather")),
        &r,
    )
    .unwrap_err();
    assert_eq!(
        e.message,
        "Header mismatch: MCP-Protocol-Version header value '2027-01-01' does not match body value '2026-07-28'"
    );
    // A legacy header with a stateless _meta is still a disagreement.
    assert!(check_stateless_headers(
        &h(Some("2025-11-25"), Some("tools/call"), Some("get_weather")),
        &r
    )
    .is_err());
}

#[test]
fn legacy_requests_need_no_headers_but_present_ones_must_match() {
    let r = req(CALL_LEGACY);
    assert_eq!(check_stateless_headers(&h(None, None, None), &r), Ok(()));
    assert_eq!(
        check_stateless_headers(&h(Some("2025-06-18"), None, None), &r),
        Ok(())
    );
    assert_eq!(
        check_stateless_headers(
            &h(Some("2025-06-18"), Some("tools/call"), Some("get_weather")),
            &r
        ),
        Ok(())
    );
    assert!(check_stateless_headers(&h(None, Some("tools/list"), None), &r).is_err());
    assert!(check_stateless_headers(&h(None, None, Some("other_tool")), &r).is_err());
}

#[test]
fn base64_sentinel_names_are_decoded_before_comparing() {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"météo ☀","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
    let r = req(body);
    // base64("météo ☀") = bcOpdMOpbyDimIA=
    for header in ["=?base64?bcOpdMOpbyDimIA=?=", "=?base64?bcOpdMOpbyDimIA?="] {
        assert_eq!(
            check_stateless_headers(&h(Some("2026-07-28"), Some("tools/call"), Some(header)), &r),
            Ok(()),
            "{header}"
        );
    }
    // base64("get_weather") compared against a different body value.
    let r2 = req(CALL_2026);
    assert_eq!(
        check_stateless_headers(
            &h(
                Some("2026-07-28"),
                Some("tools/call"),
                Some("=?base64?Z2V0X3dlYXRoZXI=?=")
            ),
            &r2
        ),
        Ok(())
    );
    let e = check_stateless_headers(
        &h(
            Some("2026-07-28"),
            Some("tools/call"),
            Some("=?base64?ZXZpbA==?="),
        ),
        &r2,
    )
    .unwrap_err();
    assert!(e.message.contains("header value 'evil'"));
}

#[test]
fn sentinel_markers_are_case_sensitive() {
    assert_eq!(
        decode_header_value("=?BASE64?Zm9v?=").unwrap(),
        "=?BASE64?Zm9v?="
    );
    assert_eq!(decode_header_value("=?base64?Zm9v?=").unwrap(), "foo");
    assert_eq!(
        decode_header_value("=?base64?Zm9v").unwrap(),
        "=?base64?Zm9v"
    );
    assert_eq!(decode_header_value("=?base64??=").unwrap(), "");
}

#[test]
fn invalid_base64_and_non_utf8_payloads_are_mismatches() {
    for (v, e) in [
        ("=?base64?Zm9v!?=", HeaderValueError::InvalidBase64),
        ("=?base64?Z?=", HeaderValueError::InvalidBase64),
        ("=?base64?Zm 9v?=", HeaderValueError::InvalidBase64),
        ("=?base64?Zm9=v?=", HeaderValueError::InvalidBase64),
        ("=?base64?Zg=?=", HeaderValueError::InvalidBase64),
        ("=?base64?Zm9v-_?=", HeaderValueError::InvalidBase64),
        ("=?base64?/w==?=", HeaderValueError::InvalidUtf8),
    ] {
        assert_eq!(decode_header_value(v).unwrap_err(), e, "{v}");
    }
    let r = req(CALL_2026);
    let e = check_stateless_headers(
        &h(
            Some("2026-07-28"),
            Some("tools/call"),
            Some("=?base64?/w==?="),
        ),
        &r,
    )
    .unwrap_err();
    assert!(e.message.contains("is not decodable"));
}

#[test]
fn mismatch_messages_are_truncated_and_free_of_control_characters() {
    let long = format!("{}\u{1}\n", "a".repeat(500));
    let r = req(CALL_2026);
    let e = check_stateless_headers(&h(Some("2026-07-28"), Some("tools/call"), Some(&long)), &r)
        .unwrap_err();
    assert!(e.message.len() < 300);
    assert!(!e.message.chars().any(char::is_control));
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"x\n{}"}}}}"#,
        "b".repeat(300)
    );
    let r = req(&body);
    let e = check_stateless_headers(&h(None, None, Some("y")), &r).unwrap_err();
    assert!(!e.message.chars().any(char::is_control));
    assert!(e.message.len() < 330);
}
