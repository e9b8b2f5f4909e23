//! `mcp_pii` through the real Envoy (`envoy/mcp_pii.yaml`): both directions, JSON and SSE,
//! escapes, chunk-split events, every action, 2026-07-28 mirrored headers. The upstream's record
//! proves that scrubbed or blocked request values never arrived.
// Test helpers outside #[test] fns are not covered by clippy.toml's in-test allowances.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use base64::Engine as _;
use mcp_integration::client::{self, ACCEPT_BOTH};
use mcp_integration::pii_support::{Canned, CannedServer};
use mcp_integration::{Envoy, EnvoyConfig, ServerOptions, TestServer};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

fn envoy(upstream: SocketAddr, config: &str) -> Envoy {
    Envoy::start(
        EnvoyConfig::load("mcp_pii.yaml")
            .unwrap()
            .upstream("mcp_upstream", upstream)
            .plugin_config("mcp_pii", config),
    )
    .unwrap()
}

fn test_server(mode: ServerOptions) -> TestServer {
    TestServer::start(mode.require_session(false)).unwrap()
}

fn post(e: &Envoy, body: &Value, extra: &[(&str, &str)]) -> client::Resp {
    let mut headers = vec![
        ("content-type", "application/json"),
        ("accept", ACCEPT_BOTH),
    ];
    headers.extend_from_slice(extra);
    let bytes = body.to_string().into_bytes();
    client::request("POST", &e.url("/mcp"), &headers, Some(&bytes)).unwrap()
}

fn post_raw(e: &Envoy, body: &str, extra: &[(&str, &str)]) -> client::Resp {
    let mut headers = vec![
        ("content-type", "application/json"),
        ("accept", ACCEPT_BOTH),
    ];
    headers.extend_from_slice(extra);
    client::request("POST", &e.url("/mcp"), &headers, Some(body.as_bytes())).unwrap()
}

fn call(id: u64, tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}})
}

/// The final response of a JSON or SSE reply.
fn final_response(r: &client::Resp) -> Value {
    let msgs = r.messages().unwrap();
    msgs.into_iter()
        .find(|m| m.get("result").is_some() || m.get("error").is_some())
        .unwrap_or_else(|| panic!("no response in {}", r.text()))
}

fn first_text(v: &Value) -> String {
    v["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string()
}

const PII_TEXT: &str =
    "mail alice@example.com, card 4111 1111 1111 1111, ssn 219-09-9999, key AKIAUVW75EFR6EDT4SYW";

#[test]
fn request_arguments_are_redacted_before_they_reach_the_server() {
    let s = test_server(ServerOptions::json());
    let e = envoy(s.addr(), "{}");
    let r = post(&e, &call(1, "echo", json!({"text": PII_TEXT})), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().unwrap();
    assert_eq!(
        first_text(&v),
        "mail [REDACTED:email], card [REDACTED:credit_card], ssn [REDACTED:us_ssn], key [REDACTED:aws_access_key]"
    );
    let rec = s.record();
    assert_eq!(rec.len(), 1);
    let seen = rec[0].body_text();
    for secret in [
        "alice@example.com",
        "4111",
        "219-09-9999",
        "AKIAUVW75EFR6EDT4SYW",
    ] {
        assert!(
            !seen.contains(secret),
            "{secret} reached the server: {seen}"
        );
    }
    // Content-Length was fixed: the server parsed the rewritten body whole.
    assert_eq!(
        rec[0].header("content-length"),
        Some(rec[0].body.len().to_string().as_str())
    );
    for d in ["email", "credit_card", "us_ssn", "aws_access_key"] {
        assert_eq!(
            e.stat(&format!("wasmcustom.mcp_pii.request.{d}")),
            Some(1),
            "{d}"
        );
    }
    assert_eq!(
        e.stat("wasmcustom.mcp_pii.request.messages_scrubbed"),
        Some(1)
    );
}

#[test]
fn escaped_values_are_found_and_re_encoded() {
    let s = test_server(ServerOptions::json());
    let e = envoy(s.addr(), "{}");
    let body = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"to alice\u0040example.com \"quoted\" \u00e9"}}}"#;
    let v = post_raw(&e, body, &[]).json().unwrap();
    assert_eq!(first_text(&v), "to [REDACTED:email] \"quoted\" é");
    let seen = s.record()[0].body_text();
    assert!(!seen.contains("example.com"), "{seen}");
    assert!(!seen.contains("\\u0040"), "{seen}");
}

#[test]
fn tool_results_are_scrubbed_in_json_responses_when_only_responses_are_scanned() {
    let s = test_server(ServerOptions::json());
    let e = envoy(s.addr(), r#"{"request": false}"#);
    let r = post(&e, &call(3, "echo", json!({"text": PII_TEXT})), &[]);
    let v = r.json().unwrap();
    assert!(first_text(&v).starts_with("mail [REDACTED:email], card [REDACTED:credit_card]"));
    assert_eq!(v["id"], 3);
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    // The request went through untouched: the response side did the work.
    assert!(s.record()[0].body_text().contains("alice@example.com"));
    assert_eq!(e.stat("wasmcustom.mcp_pii.response.email"), Some(1));
    assert_eq!(e.stat("wasmcustom.mcp_pii.request.email"), Some(0));
}

#[test]
fn sse_results_split_across_chunks_are_scrubbed_event_by_event() {
    let s = test_server(ServerOptions::sse());
    let e = envoy(s.addr(), r#"{"request": false}"#);
    let r = post(
        &e,
        &call(4, "echo", json!({"text": PII_TEXT})),
        &[
            ("x-test-response", "sse"),
            ("x-test-chunk", "7"),
            ("x-test-progress", "2"),
        ],
    );
    assert_eq!(r.content_type(), Some("text/event-stream"));
    let msgs = r.messages().unwrap();
    assert_eq!(
        msgs.len(),
        3,
        "two progress events and the result: {}",
        r.text()
    );
    let v = final_response(&r);
    assert!(first_text(&v).contains("[REDACTED:credit_card]"), "{v}");
    assert!(!r.text().contains("alice@example.com"));
}

/// A FastMCP-like tool result: text copy of structuredContent, an image, progress with PII.
fn rich_stream() -> Vec<Value> {
    let structured = json!({"customer": {"email": "alice@example.com", "phone": "+1 415 555 0100"}, "orders": 3});
    vec![
        json!({"jsonrpc": "2.0", "method": "notifications/progress",
               "params": {"progressToken": "tok-alice@example.com", "progress": 1, "total": 2,
                          "message": "looking up alice@example.com"}}),
        json!({"jsonrpc": "2.0", "method": "notifications/message",
               "params": {"level": "info", "data": {"client_ip": "203.0.113.9"}}}),
        json!({"jsonrpc": "2.0", "id": 7, "result": {
            "content": [
                {"type": "text", "text": serde_json::to_string_pretty(&structured).unwrap()},
                {"type": "image", "data": "YWxpY2VAZXhhbXBsZS5jb20=", "mimeType": "image/png"}],
            "structuredContent": structured}}),
    ]
}

#[test]
fn structured_content_its_text_copy_progress_and_logs_are_scrubbed_over_a_split_sse_stream() {
    let up = CannedServer::start(Canned::sse(&rich_stream()).chunked(5, Duration::from_millis(2)))
        .unwrap();
    let e = envoy(up.addr(), "{}");
    let r = post(&e, &call(7, "lookup", json!({"q": "x"})), &[]);
    let msgs = r.messages().unwrap();
    assert_eq!(msgs.len(), 3, "{}", r.text());
    assert_eq!(msgs[0]["params"]["message"], "looking up [REDACTED:email]");
    assert_eq!(
        msgs[0]["params"]["progressToken"], "tok-alice@example.com",
        "tokens are never touched"
    );
    assert_eq!(msgs[1]["params"]["data"]["client_ip"], "[REDACTED:ipv4]");
    let result = &msgs[2]["result"];
    assert_eq!(
        result["structuredContent"]["customer"]["email"],
        "[REDACTED:email]"
    );
    assert_eq!(
        result["structuredContent"]["customer"]["phone"],
        "[REDACTED:phone]"
    );
    assert_eq!(
        result["structuredContent"]["orders"], 3,
        "numbers stay numbers"
    );
    let copy: Value = serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(
        copy, result["structuredContent"],
        "the text copy matches structuredContent"
    );
    assert_eq!(
        result["content"][1]["data"], "YWxpY2VAZXhhbXBsZS5jb20=",
        "base64 untouched"
    );
    assert_eq!(
        e.stat("wasmcustom.mcp_pii.response.messages_scrubbed"),
        Some(3)
    );
}

#[test]
fn a_json_response_delivered_in_chunks_is_scrubbed_whole() {
    let up =
        CannedServer::start(Canned::json(&rich_stream()[2]).chunked(9, Duration::from_millis(2)))
            .unwrap();
    let e = envoy(up.addr(), "{}");
    let r = post(&e, &call(7, "lookup", json!({})), &[]);
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    let v = r.json().unwrap();
    assert_eq!(
        v["result"]["structuredContent"]["customer"]["email"],
        "[REDACTED:email]"
    );
}

#[test]
fn mask_and_hash_actions_rewrite_values_in_both_directions() {
    let s = test_server(ServerOptions::json());
    let e = envoy(s.addr(), r#"{"action": "mask"}"#);
    let v = post(
        &e,
        &call(1, "echo", json!({"text": "card 4111-1111-1111-1111"})),
        &[],
    )
    .json()
    .unwrap();
    assert_eq!(first_text(&v), "card ***************1111");
    drop(e);

    let e = envoy(
        s.addr(),
        r#"{"action": "hash", "hash_key": "integration-test-key-0123"}"#,
    );
    let a = first_text(
        &post(
            &e,
            &call(2, "echo", json!({"text": "alice@example.com"})),
            &[],
        )
        .json()
        .unwrap(),
    );
    let b = first_text(
        &post(
            &e,
            &call(3, "echo", json!({"text": "alice@example.com"})),
            &[],
        )
        .json()
        .unwrap(),
    );
    assert!(a.starts_with("[HASH:email:") && a.ends_with(']'), "{a}");
    assert_eq!(a, b, "equal values map to equal tokens");
    // The server only ever saw the token.
    assert!(s.record().iter().all(|r| !r.body_text().contains("alice@")));
}

#[test]
fn block_refuses_the_request_with_its_id_and_nothing_reaches_the_server() {
    let s = test_server(ServerOptions::json());
    let e = envoy(s.addr(), r#"{"action": "block"}"#);
    let r = post(
        &e,
        &call(11, "echo", json!({"text": "ssn 219-09-9999"})),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().unwrap();
    assert_eq!(v["id"], 11);
    assert_eq!(v["error"]["code"], -32602);
    assert_eq!(v["error"]["data"]["detectors"], json!(["us_ssn"]));
    assert!(!r.text().contains("219-09"), "the value is never echoed");
    assert!(s.record().is_empty(), "nothing reached the server");
    assert_eq!(
        e.stat("wasmcustom.mcp_pii.request.messages_blocked"),
        Some(1)
    );
    // Clean calls still pass.
    let ok = post(&e, &call(12, "echo", json!({"text": "hello"})), &[])
        .json()
        .unwrap();
    assert_eq!(first_text(&ok), "hello");
}

#[test]
fn block_replaces_a_response_with_an_error_and_drops_a_notification() {
    let up = CannedServer::start(Canned::sse(&rich_stream())).unwrap();
    let e = envoy(up.addr(), r#"{"action": "block", "request": false}"#);
    let r = post(&e, &call(7, "lookup", json!({})), &[]);
    let msgs = r.messages().unwrap();
    // Progress (email) and log (ipv4) notifications dropped; the result replaced by an error.
    assert_eq!(msgs.len(), 1, "{}", r.text());
    assert_eq!(msgs[0]["id"], 7);
    assert_eq!(msgs[0]["error"]["code"], -32603);
    assert_eq!(
        msgs[0]["error"]["data"]["detectors"],
        json!(["email", "phone"])
    );
    assert!(!r.text().contains("alice"));
    assert_eq!(
        e.stat("wasmcustom.mcp_pii.response.messages_blocked"),
        Some(3)
    );
}

#[test]
fn mirrored_2026_param_headers_follow_the_scrubbed_argument() {
    let up = CannedServer::start(Canned::json(
        &json!({"jsonrpc": "2.0", "id": 5, "result": {"content": [], "resultType": "complete"}}),
    ))
    .unwrap();
    let e = envoy(up.addr(), "{}");
    let body = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "notify", "arguments": {"email": "alice@example.com", "region": "eu-west-1"},
                   "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}});
    let r = post(
        &e,
        &body,
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "notify"),
            ("mcp-param-email", "alice@example.com"),
            ("mcp-param-region", "eu-west-1"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = up.record();
    assert_eq!(rec.len(), 1);
    let got: Value = serde_json::from_slice(&rec[0].body).unwrap();
    assert_eq!(got["params"]["arguments"]["email"], "[REDACTED:email]");
    assert_eq!(rec[0].header("mcp-param-email"), Some("[REDACTED:email]"));
    assert_eq!(rec[0].header("mcp-param-region"), Some("eu-west-1"));
    assert_eq!(rec[0].header("mcp-name"), Some("notify"));
    assert_eq!(
        e.stat("wasmcustom.mcp_pii.request.headers_rewritten"),
        Some(1)
    );
}

#[test]
fn a_non_ascii_masked_header_uses_the_base64_sentinel() {
    let up = CannedServer::start(Canned::json(
        &json!({"jsonrpc": "2.0", "id": 6, "result": {"content": []}}),
    ))
    .unwrap();
    let e = envoy(up.addr(), r#"{"action": "mask"}"#);
    // Masking keeps the non-ASCII prefix, so the header needs the sentinel.
    let body = json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call",
        "params": {"name": "notify", "arguments": {"to": "☎ +44 20 7946 0958"},
                   "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}});
    let r = post(
        &e,
        &body,
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "notify"),
            (
                "mcp-param-to",
                &client::mcp_header_value("☎ +44 20 7946 0958"),
            ),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = up.record();
    let header = rec[0].header("mcp-param-to").unwrap().to_string();
    assert!(header.starts_with("=?base64?"), "{header}");
    let b64 = header
        .strip_prefix("=?base64?")
        .unwrap()
        .strip_suffix("?=")
        .unwrap();
    let decoded = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap();
    let got: Value = serde_json::from_slice(&rec[0].body).unwrap();
    assert_eq!(got["params"]["arguments"]["to"], decoded.as_str());
    assert!(
        decoded.ends_with("0958") && !decoded.contains("7946"),
        "{decoded}"
    );
}

#[test]
fn sampling_requests_from_the_server_and_the_clients_answer_are_both_scrubbed() {
    let sampling = json!({"jsonrpc": "2.0", "id": 90, "method": "sampling/createMessage",
        "params": {"messages": [{"role": "user", "content": {"type": "text", "text": "email bob@example.com"}}],
                   "systemPrompt": "IBAN DE89 3704 0044 0532 0130 00", "maxTokens": 5}});
    let final_msg = json!({"jsonrpc": "2.0", "id": 8, "result": {"content": [{"type": "text", "text": "done"}]}});
    let up = CannedServer::start(Canned::sse(&[sampling, final_msg])).unwrap();
    let e = envoy(up.addr(), "{}");
    let r = post(&e, &call(8, "ask", json!({})), &[]);
    let msgs = r.messages().unwrap();
    assert_eq!(
        msgs[0]["params"]["messages"][0]["content"]["text"],
        "email [REDACTED:email]"
    );
    assert_eq!(msgs[0]["params"]["systemPrompt"], "IBAN [REDACTED:iban]");
    // The client answers the sampling request (a JSON-RPC response POSTed back).
    up.set_reply(Canned::json(
        &json!({"jsonrpc": "2.0", "id": 0, "result": {}}),
    ));
    let answer = json!({"jsonrpc": "2.0", "id": 90, "result": {"role": "assistant",
        "content": {"type": "text", "text": "call me at 415-555-0132"}, "model": "m"}});
    post(&e, &answer, &[]);
    let rec = up.record();
    let got: Value = serde_json::from_slice(&rec.last().unwrap().body).unwrap();
    assert_eq!(
        got["result"]["content"]["text"],
        "call me at [REDACTED:phone]"
    );
}

#[test]
fn custom_patterns_allow_values_and_paths_apply_through_envoy() {
    let s = test_server(ServerOptions::json());
    let e = envoy(
        s.addr(),
        r#"{"custom": [{"name": "employee_id", "pattern": "EMP-[0-9]{6}"}],
            "allow_values": ["support@example.com"],
            "exclude_paths": ["$.params.arguments.internal"]}"#,
    );
    let v = post(
        &e,
        &call(
            1,
            "echo",
            json!({"text": "EMP-123456 via support@example.com", "internal": "alice@example.com"}),
        ),
        &[],
    )
    .json()
    .unwrap();
    assert_eq!(
        first_text(&v),
        "[REDACTED:employee_id] via support@example.com"
    );
    assert!(s.record()[0]
        .body_text()
        .contains(r#""internal":"alice@example.com""#));
    assert_eq!(e.stat("wasmcustom.mcp_pii.request.employee_id"), Some(1));
}

#[test]
fn a_bad_configuration_is_refused_by_envoy_with_the_key_path() {
    let cfg = EnvoyConfig::load("mcp_pii.yaml").unwrap().plugin_config(
        "mcp_pii",
        r#"{"custom": [{"name": "x", "pattern": "EMP-[0-9"}]}"#,
    );
    let yaml = cfg
        .render(mcp_integration::free_port(), mcp_integration::free_port())
        .unwrap();
    let err = mcp_integration::validate_config(&yaml)
        .unwrap_err()
        .to_string();
    assert!(err.contains("custom[0].pattern"), "{err}");
    let cfg = EnvoyConfig::load("mcp_pii.yaml")
        .unwrap()
        .plugin_config("mcp_pii", r#"{"action": "hash"}"#);
    let yaml = cfg
        .render(mcp_integration::free_port(), mcp_integration::free_port())
        .unwrap();
    let err = mcp_integration::validate_config(&yaml)
        .unwrap_err()
        .to_string();
    assert!(err.contains("hash_key"), "{err}");
}

#[test]
fn the_shipped_configuration_validates_and_scrubs() {
    let yaml = EnvoyConfig::load("mcp_pii.yaml")
        .unwrap()
        .render(mcp_integration::free_port(), mcp_integration::free_port())
        .unwrap();
    mcp_integration::validate_config(&yaml).unwrap();
    let s = test_server(ServerOptions::json());
    let e = Envoy::start(
        EnvoyConfig::load("mcp_pii.yaml")
            .unwrap()
            .upstream("mcp_upstream", s.addr()),
    )
    .unwrap();
    let v = post(
        &e,
        &call(
            1,
            "echo",
            json!({"text": "support@example.com or alice@example.com"}),
        ),
        &[],
    )
    .json()
    .unwrap();
    assert_eq!(first_text(&v), "support@example.com or [REDACTED:email]");
}
