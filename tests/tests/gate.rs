//! The shared request gate, through the real Envoy with the shipped gateway (`envoy/mcp-gateway.yaml`:
//! the `mcp_gateway` module with every policy) in front of the in-repo test MCP server. Every refusal is checked
//! against the server's record: a refused request must never reach the upstream.
// Test helpers outside #[test] fns are not covered by clippy.toml's in-test allowances.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use mcp_integration::client::{self, ACCEPT_BOTH};
use mcp_integration::{Envoy, EnvoyConfig, ServerOptions, TestServer};
use serde_json::Value;

const GATEWAY: &str = "mcp-gateway.yaml";

fn chain(server: &TestServer) -> Envoy {
    Envoy::start(
        EnvoyConfig::load(GATEWAY)
            .unwrap()
            .upstream("mcp_upstream", server.addr()),
    )
    .unwrap()
}

/// The shipped module configuration's sections, with `extra` common keys.
fn module_config(extra: &str) -> String {
    format!(
        r#"{{{extra}, "telemetry": {{"route_headers": true, "max_tool_labels": 50}}, "scopes": {{}},
            "tools": {{"deny": ["get-env", "admin_*", "*_admin"]}}, "pii": {{}}}}"#
    )
}

fn server() -> TestServer {
    TestServer::start(ServerOptions::json().require_session(false)).unwrap()
}

fn post(envoy: &Envoy, body: &[u8], extra: &[(&str, &str)]) -> client::Resp {
    let mut headers = vec![
        ("content-type", "application/json"),
        ("accept", ACCEPT_BOTH),
    ];
    headers.extend_from_slice(extra);
    client::request("POST", &envoy.url("/mcp"), &headers, Some(body)).unwrap()
}

/// Asserts a JSON-RPC error reply and returns it.
fn rpc_error(resp: &client::Resp, status: u16, code: i64) -> Value {
    assert_eq!(resp.status, status, "body: {}", resp.text());
    assert_eq!(resp.content_type(), Some("application/json"));
    let v = resp.json().unwrap();
    assert_eq!(v["jsonrpc"], "2.0");
    assert_eq!(v["error"]["code"], code, "{v}");
    v
}

#[test]
fn a_valid_call_passes_every_filter_and_reaches_the_server() {
    let s = server();
    let e = chain(&s);
    let r = post(
        &e,
        br#"{"jsonrpc":"2.0","id":"c-1","method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#,
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().unwrap();
    assert_eq!(v["id"], "c-1");
    assert_eq!(s.tool_calls(), vec!["echo".to_string()]);
    // One module, one gate: the request was parsed and inspected once.
    assert_eq!(e.stat("wasmcustom.mcp_gateway.requests_inspected"), Some(1));
    assert_eq!(
        e.stat("wasmcustom.mcp_pii.request.messages_scrubbed"),
        Some(0)
    );
}

#[test]
fn duplicate_keys_are_refused_even_behind_unicode_escapes() {
    let s = server();
    let e = chain(&s);
    for body in [
        &br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","name":"delete_repo"}}"#[..],
        br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","na\u006de":"delete_repo"}}"#,
        br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","method":"ping","params":{"name":"echo"}}"#,
    ] {
        let v = rpc_error(&post(&e, body, &[]), 400, -32600);
        assert_eq!(v["id"], 7, "the original id is echoed: {v}");
    }
    assert!(s.record().is_empty(), "nothing reached the server");
    // The first filter in the chain refuses; the others never see it.
    assert_eq!(e.stat("wasmcustom.mcp_gateway.invalid_request"), Some(3));
}

#[test]
fn batches_are_refused_by_default() {
    let s = server();
    let e = chain(&s);
    let v = rpc_error(
        &post(
            &e,
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_repo"}},{"jsonrpc":"2.0","id":2,"method":"ping"}]"#,
            &[],
        ),
        400,
        -32600,
    );
    assert_eq!(v["id"], Value::Null);
    assert!(s.record().is_empty());
    assert_eq!(e.stat("wasmcustom.mcp_gateway.batch_rejected"), Some(1));
}

#[test]
fn non_json_non_utf8_and_nesting_bombs_get_parse_errors() {
    let s = server();
    let e = chain(&s);
    let bomb = "[".repeat(100_000);
    for body in [
        &b"this is not json"[..],
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"ec\xffho\"}}",
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\ud800"}}"#,
        bomb.as_bytes(),
    ] {
        let v = rpc_error(&post(&e, body, &[]), 400, -32700);
        assert_eq!(v["id"], Value::Null);
    }
    assert!(s.record().is_empty());
}

#[test]
fn methods_are_compared_exactly_not_case_folded() {
    let s = server();
    let e = chain(&s);
    // `Tools/Call` is a valid message with an unknown method: it is not a tool call, so no
    // policy may treat it as one; the server answers method-not-found.
    let r = post(
        &e,
        br#"{"jsonrpc":"2.0","id":3,"method":"Tools/Call","params":{"name":"delete_repo"}}"#,
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json().unwrap()["error"]["code"], -32601);
    assert!(s.tool_calls().is_empty());
}

#[test]
fn invalid_json_rpc_shapes_are_refused_with_the_id_when_readable() {
    let s = server();
    let e = chain(&s);
    for (body, id) in [
        (
            &br#"{"jsonrpc":"1.0","id":9,"method":"ping"}"#[..],
            Value::from(9),
        ),
        (
            br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            Value::Null,
        ),
        (
            br#"{"jsonrpc":"2.0","id":"x","method":"tools/call","params":[1]}"#,
            Value::from("x"),
        ),
        (br#""just a string""#, Value::Null),
    ] {
        let v = rpc_error(&post(&e, body, &[]), 400, -32600);
        assert_eq!(v["id"], id, "{v}");
    }
    assert!(s.record().is_empty());
}

#[test]
fn stateless_era_headers_must_match_the_body() {
    let s = server();
    let e = chain(&s);
    let body = br#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"delete_repo","arguments":{"repo":"x"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let v = rpc_error(
        &post(
            &e,
            body,
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "echo"),
            ],
        ),
        400,
        -32020,
    );
    assert_eq!(v["id"], 11);
    let v = rpc_error(
        &post(
            &e,
            body,
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-name", "delete_repo"),
            ],
        ),
        400,
        -32020,
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Mcp-Method"),
        "{v}"
    );
    assert!(s.record().is_empty(), "mismatches never reach the server");

    // Matching headers, one of them base64-encoded with the spec's sentinel, pass.
    let r = post(
        &e,
        body,
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?ZGVsZXRlX3JlcG8=?="),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.tool_calls(), vec!["delete_repo".to_string()]);
}

#[test]
fn a_body_over_max_body_bytes_is_refused_with_413() {
    let s = server();
    let cfg = EnvoyConfig::load(GATEWAY)
        .unwrap()
        .upstream("mcp_upstream", s.addr())
        .plugin_config("mcp_gateway", &module_config(r#""max_body_bytes": 1024"#));
    let e = Envoy::start(cfg).unwrap();
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{}"}}}}}}"#,
        "x".repeat(4000)
    );
    rpc_error(&post(&e, big.as_bytes(), &[]), 413, -32600);
    assert!(s.record().is_empty());
    assert_eq!(e.stat("wasmcustom.mcp_gateway.body_too_large"), Some(1));
}

#[test]
fn a_legacy_session_with_sse_responses_works_through_the_chain() {
    let s = TestServer::start(ServerOptions::sse()).unwrap();
    let e = chain(&s);
    let init = post(
        &e,
        br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"gate-test","version":"1"}}}"#,
        &[],
    );
    assert_eq!(init.status, 200, "{}", init.text());
    assert_eq!(init.content_type(), Some("text/event-stream"));
    let sid = init.header("mcp-session-id").unwrap().to_string();
    let hdrs = [
        ("mcp-session-id", sid.as_str()),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    let r = post(
        &e,
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        &hdrs,
    );
    let msgs = r.messages().unwrap();
    let tools = msgs[0]["result"]["tools"].as_array().unwrap();
    assert!(tools.iter().any(|t| t["name"] == "echo"));
    let r = post(
        &e,
        br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"sse"}}}"#,
        &[hdrs[0], hdrs[1], ("x-test-progress", "3"), ("x-test-chunk", "7")],
    );
    let msgs = r.messages().unwrap();
    assert_eq!(
        msgs.len(),
        4,
        "3 progress notifications and the result: {msgs:?}"
    );
    assert_eq!(msgs[3]["id"], 2);
    let d = client::delete(&e.url("/mcp"), &hdrs).unwrap();
    assert_eq!(d.status, 200);
    let gone = post(&e, br#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#, &hdrs);
    assert_eq!(
        gone.status, 404,
        "a deleted session is 404 so the client re-initializes"
    );
}

#[test]
fn a_bad_plugin_configuration_stops_envoy_with_the_key_path() {
    let s = server();
    let cfg = EnvoyConfig::load(GATEWAY)
        .unwrap()
        .upstream("mcp_upstream", s.addr())
        .plugin_config("mcp_gateway", &module_config(r#""max_body_bytes": 0"#));
    let err = match Envoy::start(cfg) {
        Ok(_) => panic!("Envoy must refuse the plugin"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("invalid configuration: max_body_bytes"),
        "{err}"
    );
    let cfg = EnvoyConfig::load(GATEWAY)
        .unwrap()
        .plugin_config("mcp_gateway", r#"{"pii": {"mystery": true}}"#);
    let err = match Envoy::start(cfg) {
        Ok(_) => panic!("Envoy must refuse the plugin"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("unknown field `mystery`"), "{err}");
    // ... and inside a section the path names it.
    let cfg = EnvoyConfig::load(GATEWAY)
        .unwrap()
        .plugin_config("mcp_gateway", r#"{"tools": {"deny": ["ok", ""]}}"#);
    let err = match Envoy::start(cfg) {
        Ok(_) => panic!("Envoy must refuse the plugin"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("tools.deny[1]"), "{err}");
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Issue 14 class 3: the filters read every response as identity (they ask the upstream for
/// it), while Envoy's compressor, first in the chain, still gzips for a client that asks.
#[test]
fn filters_read_identity_upstream_while_envoys_compressor_gzips_for_the_client() {
    let s = server();
    let e = chain(&s);
    for mode in ["json", "sse"] {
        s.clear_record();
        let r = post(
            &e,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            &[("accept-encoding", "gzip"), ("x-test-response", mode)],
        );
        assert_eq!(r.status, 200, "{mode}: {}", r.text());
        assert_eq!(r.header("content-encoding"), Some("gzip"), "{mode}");
        let plain = gunzip(&r.body);
        let messages = client::parse_messages(r.content_type(), &plain).unwrap();
        let list = client::find_response(&messages, 1).unwrap();
        let names: Vec<&str> = list["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert!(names.contains(&"echo"), "{mode}: {names:?}");
        assert!(
            !names.contains(&"admin_reset"),
            "{mode}: hidden tool leaked: {names:?}"
        );
        let rec = s.record();
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].header("accept-encoding"), Some("identity"), "{mode}");
    }
    // A client that does not ask gets identity.
    let r = post(
        &e,
        br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        &[],
    );
    assert_eq!(r.header("content-encoding"), None);
    assert!(r.json().is_ok());
}

/// Issue 14 class 1: JSON-RPC goes by POST only; a body on any other method never reaches the
/// server, while body-less GET and DELETE still do.
#[test]
fn a_body_on_any_method_but_post_is_refused_before_the_upstream() {
    let s = server();
    let e = chain(&s);
    let body = br#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"admin_reset"}}"#;
    for method in ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let r = client::request(
            method,
            &e.url("/mcp"),
            &[
                ("content-type", "application/json"),
                ("accept", ACCEPT_BOTH),
            ],
            Some(body),
        )
        .unwrap();
        assert_eq!(r.status, 405, "{method}: {}", r.text());
        assert_eq!(r.header("allow"), Some("GET, POST, DELETE"));
        let v = r.json().unwrap();
        assert_eq!(v["error"]["code"], -32600, "{method}");
    }
    assert!(s.record().is_empty(), "{:?}", s.record());
    assert_eq!(e.stat("wasmcustom.mcp_gateway.method_not_allowed"), Some(5));
}
