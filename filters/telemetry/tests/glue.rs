//! Native tests of the `mcp_telemetry` glue against filter-host's fake host: the callbacks are
//! driven the way Envoy drives them and the host calls that come out are checked. (The same
//! paths run through the real Envoy in `tests/tests/telemetry.rs`.)
// Helpers fail the test by panicking; clippy's allow-*-in-tests covers only `#[test]` fns.
#![allow(clippy::unwrap_used)]

use filter_host::abi::fake;
use filter_host::McpRoot;
use mcp_telemetry::TelemetryFilter;
use proxy_wasm::traits::{HttpContext, RootContext};
use proxy_wasm::types::Action;

fn root(config: &str) -> McpRoot<TelemetryFilter> {
    fake::reset();
    fake::with(|h| h.plugin_configuration = config.as_bytes().to_vec());
    let mut r = McpRoot::<TelemetryFilter>::new();
    assert!(r.on_configure(config.len()), "configuration accepted");
    r
}

fn request(
    r: &McpRoot<TelemetryFilter>,
    headers: &[(&str, &str)],
    body: &str,
) -> Box<dyn HttpContext> {
    fake::with(|h| {
        h.stage_post(headers, body.as_bytes());
        h.now = 1_000_000_000;
    });
    let mut ctx = r.create_http_context(2).unwrap();
    assert_eq!(ctx.on_http_request_headers(3, false), Action::Pause);
    assert_eq!(ctx.on_http_request_body(body.len(), true), Action::Continue);
    ctx
}

/// Drives a response (headers, then the body in one chunk) and the log phase.
fn respond(ctx: &mut dyn HttpContext, status: u32, content_type: &str, body: &str, details: &str) {
    fake::with(|h| {
        h.response_headers = vec![
            (":status".into(), status.to_string()),
            ("content-type".into(), content_type.into()),
        ];
        h.response_body = body.as_bytes().to_vec();
        h.now = 1_250_000_000;
        h.properties.insert(
            b"response\0code".to_vec(),
            i64::from(status).to_le_bytes().to_vec(),
        );
        h.properties.insert(
            b"response\0code_details".to_vec(),
            details.as_bytes().to_vec(),
        );
    });
    ctx.on_http_response_headers(2, false);
    ctx.on_http_response_body(body.len(), true);
    ctx.on_log();
}

/// The upstream answers the call (id 9) with an empty JSON result.
fn respond_result(ctx: &mut dyn HttpContext) {
    respond(
        ctx,
        200,
        "application/json",
        r#"{"jsonrpc":"2.0","id":9,"result":{}}"#,
        "via_upstream",
    );
}

fn state(key: &str) -> Option<String> {
    fake::with(|h| {
        h.properties
            .get(key.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    })
}

fn header(name: &str) -> Vec<String> {
    fake::with(|h| {
        h.request_headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    })
}

fn metric(name: &str) -> Option<i64> {
    fake::with(|h| h.metrics.iter().find(|m| m.1 == name).map(|m| m.2))
}

const CALL: &str = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"get_weather","arguments":{}}}"#;

#[test]
fn forged_routing_headers_are_replaced_by_the_filters() {
    let r = root(r#"{"route_headers": true}"#);
    let _ctx = request(
        &r,
        &[
            ("x-mcp-tool", "cheap_tool"),
            ("x-mcp-tool", "other"),
            ("x-mcp-method", "ping"),
        ],
        CALL,
    );
    assert_eq!(header("x-mcp-tool"), vec!["get_weather"]);
    assert_eq!(header("x-mcp-method"), vec!["tools/call"]);
    // Envoy clears the route cache itself when an ABI 0.2.1 module changes request headers
    // (proven through Envoy by tests/tests/gateway.rs, deploy_service_calls_go_to_their_own_backend).
    assert!(fake::with(|h| h.foreign_calls.is_empty()));
}

#[test]
fn forged_routing_headers_are_removed_even_when_route_headers_is_off() {
    let r = root("{}");
    let _ctx = request(&r, &[("x-mcp-tool", "cheap_tool")], CALL);
    assert!(header("x-mcp-tool").is_empty());
    assert!(header("x-mcp-method").is_empty());
}

#[test]
fn request_attributes_become_filter_state() {
    let r = root("{}");
    let _ctx = request(
        &r,
        &[
            ("mcp-protocol-version", "2025-06-18"),
            ("mcp-session-id", "sess-1"),
        ],
        CALL,
    );
    assert_eq!(state("mcp.method.name").as_deref(), Some("tools/call"));
    assert_eq!(state("gen_ai.tool.name").as_deref(), Some("get_weather"));
    assert_eq!(
        state("gen_ai.operation.name").as_deref(),
        Some("execute_tool")
    );
    assert_eq!(state("jsonrpc.request.id").as_deref(), Some("9"));
    assert_eq!(state("mcp.session.id").as_deref(), Some("sess-1"));
    assert_eq!(state("mcp.protocol.version").as_deref(), Some("2025-06-18"));
    assert_eq!(state("error.type"), None);
}

#[test]
fn a_tool_error_in_an_sse_event_is_published_and_counted_with_its_duration() {
    let r = root("{}");
    let mut ctx = request(&r, &[], CALL);
    let sse = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n\
               event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{\"content\":[],\"isError\":true}}\n\n";
    respond(ctx.as_mut(), 200, "text/event-stream", sse, "via_upstream");
    assert_eq!(state("error.type").as_deref(), Some("tool_error"));
    assert_eq!(state("rpc.response.status_code"), None);
    assert_eq!(
        metric(
            "mcp_telemetry.requests_total.method.tools/call.tool.get_weather.outcome.tool_error"
        ),
        Some(1)
    );
    assert_eq!(
        metric("mcp_telemetry.request_duration_ms.method.tools/call.tool.get_weather"),
        Some(250),
        "250 ms from request headers to the response event"
    );
}

#[test]
fn a_json_rpc_error_sets_the_code_and_a_rate_limit_is_denied() {
    let r = root("{}");
    let mut ctx = request(&r, &[], CALL);
    respond(
        ctx.as_mut(),
        200,
        "application/json",
        r#"{"jsonrpc":"2.0","id":9,"error":{"code":-32602,"message":"Unknown tool"}}"#,
        "via_upstream",
    );
    assert_eq!(state("error.type").as_deref(), Some("-32602"));
    assert_eq!(state("rpc.response.status_code").as_deref(), Some("-32602"));
    assert_eq!(
        metric(
            "mcp_telemetry.requests_total.method.tools/call.tool.get_weather.outcome.jsonrpc_error"
        ),
        Some(1)
    );

    let r = root("{}");
    let mut ctx = request(&r, &[], CALL);
    respond(
        ctx.as_mut(),
        429,
        "text/plain",
        "local_rate_limited",
        "local_rate_limited",
    );
    assert_eq!(state("error.type").as_deref(), Some("429"));
    assert_eq!(
        metric("mcp_telemetry.requests_total.method.tools/call.tool.get_weather.outcome.denied"),
        Some(1)
    );
}

#[test]
fn a_call_answered_2xx_costs_four_host_reads_and_its_metrics_resolve_once() {
    let r = root("{}");
    for _ in 0..2 {
        fake::with(|h| h.reads.clear());
        let mut ctx = request(&r, &[], CALL);
        respond_result(ctx.as_mut());
        // Request headers, body; response headers (one map read), body. No stream-info
        // property: a 2xx seen at the response headers is what the client got.
        assert_eq!(
            fake::with(|h| h.reads.clone()),
            [
                "proxy_get_header_map_pairs",
                "proxy_get_buffer_bytes",
                "proxy_get_header_map_pairs",
                "proxy_get_buffer_bytes",
            ]
        );
    }
    assert_eq!(
        metric("mcp_telemetry.requests_total.method.tools/call.tool.get_weather.outcome.ok"),
        Some(2)
    );
    let defined = fake::with(|h| {
        h.metrics
            .iter()
            .filter(|m| m.1.contains(".method."))
            .count()
    });
    assert_eq!(defined, 2, "one counter and one histogram, defined once");
}

#[test]
fn a_json_response_too_large_to_read_passes_and_counts_by_its_status() {
    let r = root(r#"{"max_body_bytes": 1024}"#);
    let mut ctx = request(&r, &[], CALL);
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":9,"result":{{"isError":true,"pad":"{}"}}}}"#,
        "x".repeat(2000)
    );
    respond(ctx.as_mut(), 200, "application/json", &big, "via_upstream");
    assert_eq!(
        fake::with(|h| h.response_body.len()),
        big.len(),
        "untouched"
    );
    assert_eq!(state("error.type"), None, "the body was never read");
    assert_eq!(
        metric("mcp_telemetry.requests_total.method.tools/call.tool.get_weather.outcome.ok"),
        Some(1)
    );
}

#[test]
fn metrics_off_defines_nothing_of_its_own() {
    let r = root(r#"{"metrics": false}"#);
    let mut ctx = request(&r, &[], CALL);
    respond_result(ctx.as_mut());
    let ours = fake::with(|h| {
        h.metrics
            .iter()
            .filter(|m| m.1.contains(".method."))
            .count()
    });
    assert_eq!(ours, 0);
}
