//! JSON-RPC / MCP message inspection: spec examples, shape rules and hardening cases.
// Test helpers outside #[test] fns are not covered by clippy.toml's in-test allowances.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::borrow::Cow;

use mcp_core::json::{JsonError, Kind, Limits};
use mcp_core::jsonrpc::{
    self, error_response, parse_body, Body, Id, IdOwned, Message, Outcome, RpcError,
    INVALID_REQUEST, PARSE_ERROR,
};

fn lim() -> Limits {
    Limits::default()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/jsonrpc/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn single(input: &[u8]) -> Message<'_> {
    match parse_body(input, &lim()).unwrap() {
        Body::Single(m) => m,
        Body::Batch(_) => panic!("expected a single message"),
    }
}

fn request(input: &[u8]) -> jsonrpc::Request<'_> {
    match single(input) {
        Message::Request(r) => r,
        Message::Response(_) => panic!("expected a request"),
    }
}

fn err(input: &[u8]) -> RpcError {
    parse_body(input, &lim()).unwrap_err()
}

#[test]
fn spec_tools_list_request_is_a_request_with_a_cursor() {
    let input = fixture("tools_list__request.json");
    let r = request(&input);
    assert_eq!(r.id, Some(Id::Number("1")));
    assert_eq!(r.method, "tools/list");
    assert_eq!(
        r.params.unwrap().get("cursor").unwrap().as_str().unwrap(),
        "optional-cursor-value"
    );
    assert_eq!(r.name, None);
    assert_eq!(r.span, 0..input.len() - 1);
}

#[test]
fn spec_tools_call_request_exposes_name_arguments_and_progress_token() {
    let input = fixture("tools_call__request.json");
    let r = request(&input);
    assert_eq!(r.id, Some(Id::Number("2")));
    assert_eq!(r.method, "tools/call");
    assert_eq!(r.name.as_deref(), Some("get_weather"));
    assert!(matches!(r.name, Some(Cow::Borrowed(_))));
    let args = r.params.unwrap().get("arguments").unwrap();
    assert_eq!(args.get("location").unwrap().as_str().unwrap(), "New York");
    assert_eq!(r.meta.progress_token.unwrap().as_str().unwrap(), "abc123");
    assert_eq!(r.meta.protocol_version, None);
}

#[test]
fn stateless_request_exposes_trace_context_and_protocol_version_from_meta() {
    let input = fixture("tools_call__stateless_request.json");
    let r = request(&input);
    assert_eq!(r.id, Some(Id::String("req-7".into())));
    assert_eq!(r.meta.protocol_version.as_deref(), Some("2026-07-28"));
    assert_eq!(
        r.meta.traceparent.as_deref(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
    assert_eq!(r.meta.tracestate.as_deref(), Some("vendor=1"));
    assert_eq!(r.meta.baggage.as_deref(), Some("k=v"));
}

#[test]
fn spec_error_response_is_parsed_with_code_and_message() {
    let input = fixture("error__unknown_tool.json");
    match single(&input) {
        Message::Response(r) => {
            assert_eq!(r.id, Some(Id::Number("3")));
            match r.outcome {
                Outcome::Error {
                    code,
                    message,
                    data,
                } => {
                    assert_eq!(code, -32602);
                    assert_eq!(message, "Unknown tool: invalid_tool_name");
                    assert!(data.is_none());
                }
                Outcome::Result(_) => panic!("expected an error"),
            }
        }
        Message::Request(_) => panic!("expected a response"),
    }
}

#[test]
fn spec_progress_notification_has_no_id() {
    let input = fixture("notifications_progress.json");
    let r = request(&input);
    assert_eq!(r.id, None);
    assert_eq!(r.method, "notifications/progress");
    let p = r.params.unwrap();
    assert_eq!(p.get("progress").unwrap().as_i64(), Some(50));
    let input = fixture("notifications_tools_list_changed.json");
    let r = request(&input);
    assert_eq!(r.id, None);
    assert!(r.params.is_none());
}

#[test]
fn result_response_keeps_the_result_value_span() {
    let input = br#"{"jsonrpc":"2.0","id":"x","result":{"tools":[]}}"#;
    match single(input) {
        Message::Response(r) => {
            assert_eq!(r.id, Some(Id::String("x".into())));
            let Outcome::Result(v) = r.outcome else {
                panic!()
            };
            assert_eq!(&input[v.span()], br#"{"tools":[]}"#);
        }
        Message::Request(_) => panic!(),
    }
}

#[test]
fn ids_of_every_allowed_form_are_kept_as_exact_text() {
    for (text, expected) in [
        ("1", Id::Number("1")),
        ("-5", Id::Number("-5")),
        ("-0", Id::Number("-0")),
        ("1.0", Id::Number("1.0")),
        ("1e3", Id::Number("1e3")),
        ("100e-2", Id::Number("100e-2")),
        (
            "12345678901234567890123",
            Id::Number("12345678901234567890123"),
        ),
        ("\"1\"", Id::String("1".into())),
        ("\"\"", Id::String("".into())),
        ("\"a\\\"b\\u00e9\"", Id::String("a\"bé".into())),
    ] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{text},"method":"ping"}}"#);
        let r = request(body.as_bytes());
        assert_eq!(r.id.as_ref(), Some(&expected), "{text}");
    }
}

#[test]
fn null_fractional_and_structured_ids_are_invalid_requests() {
    for text in ["null", "1.5", "1e-1", "1e400", "true", "{}", "[1]"] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{text},"method":"ping"}}"#);
        let e = err(body.as_bytes());
        assert_eq!(e.code, INVALID_REQUEST, "{text}");
        assert_eq!(e.id, None);
    }
}

#[test]
fn numeric_id_attribute_and_echo_are_the_exact_text() {
    let id = Id::Number("1e3");
    assert_eq!(id.to_attr_string(), "1e3");
    assert_eq!(&*id.raw_json(), b"1e3");
    let id = Id::String("x\"\u{2028}".into());
    assert_eq!(id.to_attr_string(), "x\"\u{2028}");
    assert_eq!(&*id.raw_json(), b"\"x\\\"\\u2028\"");
    assert_eq!(id.to_owned_id(), IdOwned::String("x\"\u{2028}".into()));
    assert_eq!(id.to_owned_id().as_id(), id);
}

#[test]
fn escaped_string_ids_round_trip_through_error_response() {
    for raw in [
        r#""plain""#,
        r#""q\"uote""#,
        r#""\u0041\u00e9\ud83d\ude00""#,
        r#""tab\there\u2028""#,
        r#""\/slash""#,
        "12",
        "-0",
        "1e3",
    ] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{raw},"method":"tools/call"}}"#);
        let r = request(body.as_bytes());
        let reply = error_response(r.id.as_ref(), -32602, "Unknown tool: x", None);
        let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
        let original: serde_json::Value = serde_json::from_str(raw).unwrap();
        assert_eq!(reply["id"], original, "{raw}");
        if original.is_number() {
            // Numbers are echoed byte for byte.
            let reply = error_response(r.id.as_ref(), 1, "m", None);
            assert!(String::from_utf8(reply)
                .unwrap()
                .contains(&format!("\"id\":{raw},")));
        }
    }
}

#[test]
fn error_response_has_the_jsonrpc_shape_with_optional_data() {
    let out = error_response(None, PARSE_ERROR, "Parse error", None);
    assert_eq!(
        out,
        br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#
    );
    let id = Id::Number("7");
    let out = error_response(Some(&id), -32602, "bad \"x\"", Some(br#"{"uri":"a"}"#));
    assert_eq!(
        out,
        br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"bad \"x\"","data":{"uri":"a"}}}"#
    );
}

#[test]
fn non_json_bodies_are_parse_errors_with_null_id() {
    for input in [
        &b""[..],
        b"   ",
        b"{",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"} x",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\xffng\"}",
        b"\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\\ud800\"}",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\xff:1}",
    ] {
        let e = err(input);
        assert_eq!(e.code, PARSE_ERROR, "{:?}", String::from_utf8_lossy(input));
        assert_eq!(e.id, None);
        assert!(e.cause.is_some());
        assert_eq!(
            e.to_response_bytes(),
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#
        );
    }
}

#[test]
fn too_deep_bodies_are_parse_errors() {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"arguments":{}1{}}}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let e = err(body.as_bytes());
    assert_eq!(e.code, PARSE_ERROR);
    assert!(matches!(
        e.cause,
        Some(JsonError::TooDeep { limit: 64, .. })
    ));
}

#[test]
fn duplicate_method_is_an_invalid_request_naming_the_key() {
    let e = err(br#"{"jsonrpc":"2.0","id":9,"method":"tools/call","method":"x"}"#);
    assert_eq!(e.code, INVALID_REQUEST);
    assert_eq!(e.message, "Invalid Request: duplicate key \"method\"");
    assert_eq!(e.id, Some(IdOwned::Number("9".into())));
    let reply: serde_json::Value = serde_json::from_slice(&e.to_response_bytes()).unwrap();
    assert_eq!(reply["id"], 9);
    assert_eq!(reply["error"]["code"], -32600);
}

#[test]
fn duplicate_keys_anywhere_are_invalid_requests() {
    for body in [
        &br#"{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"ping"}"#[..],
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","na\u006de":"b"}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"x":{"y":1,"y":2}}}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"progressToken":1,"progressToken":2}}}"#,
        br#"{"method":"tools/call","\u006dethod":"x","jsonrpc":"2.0","id":1}"#,
    ] {
        let e = err(body);
        assert_eq!(e.code, INVALID_REQUEST, "{}", String::from_utf8_lossy(body));
        assert!(e.message.starts_with("Invalid Request: duplicate key \""));
        assert_eq!(e.id, Some(IdOwned::Number("1".into())));
        assert!(matches!(e.cause, Some(JsonError::DuplicateKey { .. })));
    }
}

#[test]
fn a_duplicated_id_is_not_echoed() {
    let e = err(br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#);
    assert_eq!(e.code, INVALID_REQUEST);
    assert_eq!(e.id, None);
}

#[test]
fn methods_are_compared_exactly() {
    let r = request(br#"{"jsonrpc":"2.0","id":1,"method":"Tools/Call","params":{"name":"x"}}"#);
    assert_eq!(r.method, "Tools/Call");
    assert_ne!(r.method, mcp_core::mcp::methods::TOOLS_CALL);
    let r = request(br#"{"jsonrpc":"2.0","id":1,"method":"tools\/call"}"#);
    assert_eq!(r.method, mcp_core::mcp::methods::TOOLS_CALL);
}

#[test]
fn shape_errors_carry_the_id_when_it_is_readable() {
    let cases: &[(&[u8], Option<IdOwned>, &str)] = &[
        (
            br#"{"jsonrpc":"1.0","id":4,"method":"ping"}"#,
            Some(IdOwned::Number("4".into())),
            "jsonrpc",
        ),
        (
            br#"{"id":4,"method":"ping"}"#,
            Some(IdOwned::Number("4".into())),
            "jsonrpc",
        ),
        (
            br#"{"jsonrpc":2.0,"id":4,"method":"ping"}"#,
            Some(IdOwned::Number("4".into())),
            "jsonrpc",
        ),
        (
            br#"{"jsonrpc":"2.0","id":"s","method":7}"#,
            Some(IdOwned::String("s".into())),
            "method",
        ),
        (
            br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":["x"]}"#,
            Some(IdOwned::Number("4".into())),
            "params",
        ),
        (
            br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":null}"#,
            Some(IdOwned::Number("4".into())),
            "params",
        ),
        (
            br#"{"jsonrpc":"2.0","id":4,"method":"ping","result":{}}"#,
            Some(IdOwned::Number("4".into())),
            "request",
        ),
        (
            br#"{"jsonrpc":"2.0","id":4}"#,
            Some(IdOwned::Number("4".into())),
            "neither",
        ),
        (
            br#"{"jsonrpc":"2.0","id":4,"result":{},"error":{"code":1,"message":"m"}}"#,
            Some(IdOwned::Number("4".into())),
            "both",
        ),
        (
            br#"{"jsonrpc":"2.0","id":4,"error":{"code":"x","message":"m"}}"#,
            Some(IdOwned::Number("4".into())),
            "error",
        ),
        (
            br#"{"jsonrpc":"2.0","id":4,"error":{"message":"m"}}"#,
            Some(IdOwned::Number("4".into())),
            "error",
        ),
        (
            br#"{"jsonrpc":"2.0","id":4,"error":{"code":1.5,"message":"m"}}"#,
            Some(IdOwned::Number("4".into())),
            "error",
        ),
        (
            br#"{"jsonrpc":"2.0","id":4,"error":[]}"#,
            Some(IdOwned::Number("4".into())),
            "error",
        ),
        (br#"{"jsonrpc":"2.0","id":null,"result":{}}"#, None, "id"),
        (br#"{"jsonrpc":"2.0","result":{}}"#, None, "id"),
        (br#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#, None, "id"),
    ];
    for (body, id, needle) in cases {
        let e = err(body);
        assert_eq!(e.code, INVALID_REQUEST, "{}", String::from_utf8_lossy(body));
        assert_eq!(&e.id, id, "{}", String::from_utf8_lossy(body));
        assert!(
            e.message.contains(needle),
            "{} -> {}",
            String::from_utf8_lossy(body),
            e.message
        );
    }
}

#[test]
fn non_object_bodies_and_empty_batches_are_invalid_requests() {
    for body in [
        &b"\"x\""[..],
        b"1",
        b"null",
        b"true",
        b"[]",
        b"[1]",
        b"[[]]",
        b"[\"x\"]",
    ] {
        let e = err(body);
        assert_eq!(e.code, INVALID_REQUEST, "{}", String::from_utf8_lossy(body));
        assert_eq!(e.id, None);
    }
    assert_eq!(err(b"[ ]").message, "Invalid Request: empty batch");
}

#[test]
fn nested_arrays_inside_a_batch_are_refused() {
    let e = err(
        br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},[{"jsonrpc":"2.0","id":2,"method":"ping"}]]"#,
    );
    assert_eq!(e.code, INVALID_REQUEST);
}

#[test]
fn batches_keep_requests_notifications_and_responses_in_order() {
    let body = br#"[
        {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},
        {"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":0}},
        {"jsonrpc":"2.0","id":"r","result":{}}
    ]"#;
    let Body::Batch(msgs) = parse_body(body, &lim()).unwrap() else {
        panic!()
    };
    assert_eq!(msgs.len(), 3);
    assert!(matches!(&msgs[0], Message::Request(r) if r.name.as_deref() == Some("a")));
    assert!(matches!(&msgs[1], Message::Request(r) if r.id.is_none()));
    assert!(matches!(&msgs[2], Message::Response(r) if r.id == Some(Id::String("r".into()))));
    assert!(body[msgs[0].span()].starts_with(b"{\"jsonrpc\""));
    assert_eq!(msgs[2].id(), Some(&Id::String("r".into())));
    let Body::Batch(msgs) = parse_body(body, &lim()).unwrap() else {
        panic!()
    };
    assert_eq!(Body::Batch(msgs).messages().len(), 3);
}

#[test]
fn one_invalid_element_fails_the_whole_batch_with_its_id() {
    let e = err(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"x","params":[]}]"#);
    assert_eq!(e.code, INVALID_REQUEST);
    assert_eq!(e.id, Some(IdOwned::Number("2".into())));
}

#[test]
fn non_string_name_and_uri_are_left_to_the_policy_layer() {
    let r = request(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5,"uri":{"a":1}}}"#,
    );
    assert_eq!(r.name, None);
    assert_eq!(r.uri, None);
    assert_eq!(r.params.unwrap().get("name").unwrap().kind(), Kind::Number);
    let r = request(br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a\u0020b"}}"#);
    assert_eq!(r.uri.as_deref(), Some("file:///a b"));
}

#[test]
fn unknown_members_are_tolerated() {
    let r =
        request(br#"{"x-extra":{"a":[1,2]},"jsonrpc":"2.0","id":1,"method":"ping","zzz":null}"#);
    assert_eq!(r.method, "ping");
}

#[test]
fn error_responses_may_have_a_null_or_missing_id_and_data() {
    for body in [
        &br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#[..],
        br#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error","data":{"x":1}}}"#,
    ] {
        match single(body) {
            Message::Response(r) => {
                assert_eq!(r.id, None);
                assert!(matches!(r.outcome, Outcome::Error { code: -32700, .. }));
            }
            Message::Request(_) => panic!(),
        }
    }
}

#[test]
fn parse_message_value_works_on_a_value_from_validate() {
    let input = br#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#;
    let v = mcp_core::json::validate(input, &lim()).unwrap();
    let m = jsonrpc::parse_message_value(v).unwrap();
    assert!(matches!(m, Message::Request(r) if r.method == "notifications/message"));
}

#[test]
fn parse_message_value_refuses_duplicates_in_skimmed_input() {
    let input = br#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"x"}"#;
    let v = mcp_core::json::skim(input, &lim()).unwrap();
    let e = jsonrpc::parse_message_value(v).unwrap_err();
    assert_eq!(e.code, INVALID_REQUEST);
}

#[test]
fn rpc_error_display_includes_message_and_code() {
    let e = err(b"{");
    assert_eq!(e.to_string(), "Parse error (-32700)");
}
