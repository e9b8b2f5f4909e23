//! `mcp_telemetry` through the real Envoy with `envoy/mcp_telemetry.yaml`: span tags exported
//! to a Zipkin collector the test runs, the JSON access log, `/stats/prometheus` labels, the
//! routing headers with the per-tool `local_ratelimit` example, `_meta` trace context, label
//! bounds and configuration refusal.

// Helpers fail the test by panicking; clippy's allow-*-in-tests covers only `#[test]` fns.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mcp_integration::client::{self, Session, Stateless, ACCEPT_BOTH};
use mcp_integration::telemetry_support::{
    access_log, access_log_for, prometheus, prometheus_value, start_envoy, telemetry_config, Span,
    ZipkinCollector,
};
use mcp_integration::{Envoy, ServerOptions, TestServer};
use serde_json::{json, Value};
use std::time::Duration;

const REQUESTS: &str = "mcp_telemetry_requests_total";
const DURATION_COUNT: &str = "mcp_telemetry_request_duration_ms_count";

struct Rig {
    server: TestServer,
    zipkin: ZipkinCollector,
    envoy: Envoy,
}

fn rig(opts: ServerOptions, plugin: Option<&str>) -> Rig {
    let server = TestServer::start(opts).unwrap();
    let zipkin = ZipkinCollector::start().unwrap();
    let envoy = start_envoy(&server, &zipkin, plugin).unwrap();
    Rig {
        server,
        zipkin,
        envoy,
    }
}

fn span(r: &Rig, method: &str, id: u64) -> Span {
    r.zipkin
        .span_for(method, &id.to_string())
        .unwrap_or_else(|| panic!("no span for {method} #{id}: {:#?}", r.zipkin.spans()))
}

fn log_line(r: &Rig, method: &str, id: u64) -> Value {
    access_log_for(&r.envoy, method, &id.to_string()).unwrap_or_else(|| {
        panic!(
            "no access log line for {method} #{id}: {:#?}",
            access_log(&r.envoy)
        )
    })
}

/// Polls `f` for up to 5 s (stats and logs are flushed on timers).
fn eventually<T>(f: impl Fn() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let v = f();
        if v.is_some() || std::time::Instant::now() >= deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn requests(r: &Rig, labels: &[(&str, &str)]) -> Option<f64> {
    prometheus_value(&r.envoy, REQUESTS, labels)
}

#[test]
fn a_legacy_tool_call_is_tagged_on_its_span_logged_and_counted() {
    let r = rig(ServerOptions::json(), None);
    let s = Session::initialize_with(&r.envoy.url("/mcp"), "2025-06-18", &[]).unwrap();
    let sid = s.session_id.clone().unwrap();
    let (id, resp) = s
        .request(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "hi"}}),
            &[],
        )
        .unwrap();
    assert_eq!(resp.status, 200);

    let sp = span(&r, "tools/call", id);
    assert_eq!(sp.kind, "SERVER");
    assert_eq!(sp.tag("gen_ai.tool.name"), Some("echo"));
    assert_eq!(sp.tag("gen_ai.operation.name"), Some("execute_tool"));
    assert_eq!(sp.tag("mcp.session.id"), Some(sid.as_str()));
    assert_eq!(sp.tag("mcp.protocol.version"), Some("2025-06-18"));
    assert_eq!(sp.tag("error.type"), None, "{sp:#?}");
    assert_eq!(sp.tag("rpc.response.status_code"), None);
    assert_eq!(sp.tag("gen_ai.prompt.name"), None);

    let line = log_line(&r, "tools/call", id);
    assert_eq!(line["gen_ai.tool.name"], "echo");
    assert_eq!(line["mcp.session.id"], sid.as_str());
    assert_eq!(line["status"], 200);
    assert!(line.get("error.type").is_none(), "{line}");
    assert_eq!(
        line["trace_id"].as_str(),
        Some(sp.trace_id.as_str()),
        "the log line and the span share the trace"
    );

    let ok = [
        ("mcp_method_name", "tools/call"),
        ("gen_ai_tool_name", "echo"),
        ("mcp_outcome", "ok"),
    ];
    assert_eq!(requests(&r, &ok), Some(1.0));
    let duration = [
        ("mcp_method_name", "tools/call"),
        ("gen_ai_tool_name", "echo"),
    ];
    let count =
        eventually(|| prometheus_value(&r.envoy, DURATION_COUNT, &duration).filter(|v| *v >= 1.0));
    assert_eq!(count, Some(1.0), "one duration sample");
    // The initialize exchange: the negotiated version, and the notification counted as ok.
    let init = span(&r, "initialize", 1);
    assert_eq!(init.tag("mcp.protocol.version"), Some("2025-06-18"));
    assert_eq!(
        requests(
            &r,
            &[
                ("mcp_method_name", "notifications/initialized"),
                ("mcp_outcome", "ok")
            ]
        ),
        Some(1.0)
    );
}

#[test]
fn tools_list_and_resources_read_get_their_attributes() {
    let r = rig(ServerOptions::sse(), None);
    let s = Session::initialize(&r.envoy.url("/mcp")).unwrap();
    let (list_id, resp) = s.request("tools/list", json!({}), &[]).unwrap();
    assert_eq!(resp.status, 200);
    let (read_id, resp) = s
        .request("resources/read", json!({"uri": "test://text/1"}), &[])
        .unwrap();
    assert_eq!(resp.status, 200);

    let list = span(&r, "tools/list", list_id);
    assert_eq!(list.tag("gen_ai.tool.name"), None);
    assert_eq!(list.tag("gen_ai.operation.name"), None);
    assert_eq!(list.tag("mcp.protocol.version"), Some("2025-11-25"));
    assert_eq!(list.tag("error.type"), None);
    let read = span(&r, "resources/read", read_id);
    assert_eq!(read.tag("mcp.resource.uri"), Some("test://text/1"));
    assert_eq!(read.tag("error.type"), None);
    assert_eq!(
        log_line(&r, "resources/read", read_id)["mcp.resource.uri"],
        "test://text/1"
    );
    assert_eq!(
        requests(
            &r,
            &[("mcp_method_name", "tools/list"), ("mcp_outcome", "ok")]
        ),
        Some(1.0)
    );
    assert_eq!(
        requests(
            &r,
            &[("mcp_method_name", "resources/read"), ("mcp_outcome", "ok")]
        ),
        Some(1.0)
    );
}

#[test]
fn a_json_rpc_error_sets_error_type_and_status_code() {
    let r = rig(ServerOptions::json(), None);
    let s = Session::initialize(&r.envoy.url("/mcp")).unwrap();
    let (id, resp) = s
        .request("tools/call", json!({"name": "no_such_tool"}), &[])
        .unwrap();
    assert_eq!(resp.json().unwrap()["error"]["code"], -32602);

    let sp = span(&r, "tools/call", id);
    assert_eq!(sp.tag("error.type"), Some("-32602"));
    assert_eq!(sp.tag("rpc.response.status_code"), Some("-32602"));
    assert_eq!(sp.tag("gen_ai.tool.name"), Some("no_such_tool"));
    let line = log_line(&r, "tools/call", id);
    assert_eq!(line["error.type"], "-32602");
    assert_eq!(line["rpc.response.status_code"], "-32602");
    assert_eq!(
        requests(
            &r,
            &[
                ("mcp_method_name", "tools/call"),
                ("gen_ai_tool_name", "no_such_tool"),
                ("mcp_outcome", "jsonrpc_error")
            ]
        ),
        Some(1.0)
    );
}

#[test]
fn a_tool_error_inside_an_sse_stream_is_found_behind_progress_events() {
    let r = rig(ServerOptions::sse(), None);
    let s = Session::initialize(&r.envoy.url("/mcp")).unwrap();
    let (id, resp) = s
        .request(
            "tools/call",
            json!({"name": "fail", "arguments": {}, "_meta": {"progressToken": "p1"}}),
            &[("x-test-progress", "3"), ("x-test-chunk", "7")],
        )
        .unwrap();
    assert_eq!(resp.content_type(), Some("text/event-stream"));
    let events = resp.events();
    assert_eq!(events.len(), 4, "3 progress events then the result");
    let last = client::find_response(&resp.messages().unwrap(), id)
        .cloned()
        .unwrap();
    assert_eq!(last["result"]["isError"], true);

    let sp = span(&r, "tools/call", id);
    assert_eq!(sp.tag("error.type"), Some("tool_error"));
    assert_eq!(sp.tag("rpc.response.status_code"), None);
    assert_eq!(log_line(&r, "tools/call", id)["error.type"], "tool_error");
    assert_eq!(
        requests(
            &r,
            &[
                ("mcp_method_name", "tools/call"),
                ("gen_ai_tool_name", "fail"),
                ("mcp_outcome", "tool_error")
            ]
        ),
        Some(1.0)
    );
}

#[test]
fn a_stateless_call_has_the_2026_version_and_no_session() {
    let r = rig(ServerOptions::sse(), None);
    let c = Stateless::new(&r.envoy.url("/mcp"));
    let (id, resp) = c
        .request(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "x"}}),
            &[("mcp-session-id", "not-a-2026-thing")],
        )
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let (fail_id, _) = c
        .request("tools/call", json!({"name": "fail", "arguments": {}}), &[])
        .unwrap();

    let sp = span(&r, "tools/call", id);
    assert_eq!(sp.tag("mcp.protocol.version"), Some("2026-07-28"));
    assert_eq!(sp.tag("mcp.session.id"), None, "{sp:#?}");
    assert_eq!(sp.tag("gen_ai.tool.name"), Some("echo"));
    assert_eq!(sp.tag("error.type"), None);
    assert_eq!(
        span(&r, "tools/call", fail_id).tag("error.type"),
        Some("tool_error")
    );
    let line = log_line(&r, "tools/call", id);
    assert_eq!(line["mcp.protocol.version"], "2026-07-28");
    assert!(line.get("mcp.session.id").is_none(), "{line}");
}

#[test]
fn a_stateless_unknown_method_is_an_http_error_with_its_json_rpc_code() {
    let r = rig(ServerOptions::json(), None);
    let c = Stateless::new(&r.envoy.url("/mcp"));
    let (id, resp) = c.request("no/such", json!({}), &[]).unwrap();
    assert_eq!(resp.status, 404);
    let sp = span(&r, "no/such", id);
    assert_eq!(sp.tag("error.type"), Some("-32601"));
    // The method is published as sent, but counted under a bounded label.
    assert_eq!(
        requests(
            &r,
            &[("mcp_method_name", "other"), ("mcp_outcome", "http_error")]
        ),
        Some(1.0)
    );
}

#[test]
fn route_headers_drive_a_per_tool_local_rate_limit_and_spoofed_ones_are_removed() {
    let r = rig(ServerOptions::json().require_session(false), None);
    let url = r.envoy.url("/mcp");
    let call = |id: u64, tool: &str, extra: &[(&str, &str)]| {
        let body = client::rpc_request(id, "tools/call", json!({"name": tool, "arguments": {}}));
        let mut h = vec![
            ("content-type", "application/json"),
            ("accept", ACCEPT_BOTH),
        ];
        h.extend_from_slice(extra);
        client::request("POST", &url, &h, Some(body.to_string().as_bytes())).unwrap()
    };
    // The shipped config allows 3 deploy_service calls a minute.
    for id in 1..=3 {
        assert_eq!(call(id, "deploy_service", &[]).status, 200);
    }
    let limited = call(4, "deploy_service", &[]);
    assert_eq!(limited.status, 429, "{}", limited.text());
    // Other tools are not limited, even with a forged header naming the limited tool...
    let forged = call(
        5,
        "echo",
        &[("x-mcp-tool", "deploy_service"), ("x-mcp-method", "ping")],
    );
    assert_eq!(forged.status, 200);
    assert_eq!(
        r.server.tool_calls(),
        vec!["deploy_service"; 3]
            .into_iter()
            .chain(["echo"])
            .collect::<Vec<_>>(),
        "the limited call never reached the server"
    );
    // ...and the upstream sees the filter's values, not the client's.
    let rec = r.server.record();
    let last = rec.last().unwrap();
    assert_eq!(last.header("x-mcp-tool"), Some("echo"));
    assert_eq!(last.header("x-mcp-method"), Some("tools/call"));
    assert_eq!(
        last.headers
            .iter()
            .filter(|(k, _)| k == "x-mcp-tool")
            .count(),
        1
    );

    let denied = span(&r, "tools/call", 4);
    assert_eq!(denied.tag("error.type"), Some("429"));
    assert_eq!(
        requests(
            &r,
            &[
                ("mcp_method_name", "tools/call"),
                ("gen_ai_tool_name", "deploy_service"),
                ("mcp_outcome", "denied")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        requests(
            &r,
            &[
                ("mcp_method_name", "tools/call"),
                ("gen_ai_tool_name", "deploy_service"),
                ("mcp_outcome", "ok")
            ]
        ),
        Some(3.0)
    );
}

#[test]
fn gate_refusals_are_counted_as_denied_and_never_reach_the_server() {
    let r = rig(ServerOptions::json(), None);
    let resp = client::post(
        &r.envoy.url("/mcp"),
        "{not json",
        &[("content-type", "application/json")],
    )
    .unwrap();
    assert_eq!(resp.status, 400);
    assert!(r.server.record().is_empty());
    let denied = [("mcp_method_name", "other"), ("mcp_outcome", "denied")];
    assert_eq!(eventually(|| requests(&r, &denied)), Some(1.0));
    let line = eventually(|| {
        access_log(&r.envoy)
            .into_iter()
            .find(|l| l["status"] == 400)
    })
    .expect("an access log line for the refusal");
    assert_eq!(line["details"], "mcp_telemetry_invalid_json");
    assert_eq!(line["error.type"], "400");
    assert!(line.get("mcp.method.name").is_none(), "{line}");
}

#[test]
fn meta_trace_context_is_copied_only_when_valid_and_absent() {
    let r = rig(
        ServerOptions::json().require_session(false),
        Some(r#"{"meta_trace_context": "if_absent"}"#),
    );
    let url = r.envoy.url("/mcp");
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let post = |id: u64, meta: Value, extra: &[(&str, &str)]| {
        let body = client::rpc_request(
            id,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "t"}, "_meta": meta}),
        );
        let mut h = vec![
            ("content-type", "application/json"),
            ("accept", ACCEPT_BOTH),
        ];
        h.extend_from_slice(extra);
        let resp = client::request("POST", &url, &h, Some(body.to_string().as_bytes())).unwrap();
        assert_eq!(resp.status, 200);
        r.server.record().last().cloned().unwrap()
    };
    let copied = post(
        1,
        json!({"traceparent": tp, "tracestate": "vendor=abc"}),
        &[],
    );
    assert_eq!(copied.header("traceparent"), Some(tp));
    assert_eq!(copied.header("tracestate"), Some("vendor=abc"));
    let invalid = post(
        2,
        json!({"traceparent": "00-zz-bad-01", "tracestate": "x=1"}),
        &[],
    );
    assert_eq!(invalid.header("traceparent"), None);
    assert_eq!(invalid.header("tracestate"), None);
    let own = "00-11111111111111111111111111111111-2222222222222222-01";
    let kept = post(3, json!({"traceparent": tp}), &[("traceparent", own)]);
    assert_eq!(kept.header("traceparent"), Some(own));
}

#[test]
fn tool_labels_are_capped_and_the_rest_count_as_other() {
    let r = rig(
        ServerOptions::json().require_session(false),
        Some(r#"{"max_tool_labels": 1}"#),
    );
    for (id, tool) in [(1, "echo"), (2, "get_weather"), (3, "echo"), (4, "add")] {
        let body = client::rpc_request(
            id,
            "tools/call",
            json!({"name": tool, "arguments": {"text": "a", "city": "b", "a": 1, "b": 2}}),
        );
        let resp = client::post(
            &r.envoy.url("/mcp"),
            &body.to_string(),
            &[
                ("content-type", "application/json"),
                ("accept", ACCEPT_BOTH),
            ],
        )
        .unwrap();
        assert_eq!(resp.status, 200);
    }
    let lines = prometheus(&r.envoy, REQUESTS).unwrap();
    let tools: Vec<(&str, f64)> = lines
        .iter()
        .filter_map(|(l, v)| Some((l.get("gen_ai_tool_name")?.as_str(), *v)))
        .collect();
    assert!(tools.contains(&("echo", 2.0)), "{tools:?}");
    assert!(tools.contains(&("other", 2.0)), "{tools:?}");
    assert_eq!(tools.len(), 2, "{tools:?}");
    // Spans are not bounded: they carry the real name.
    assert_eq!(
        span(&r, "tools/call", 2).tag("gen_ai.tool.name"),
        Some("get_weather")
    );
}

#[test]
fn a_bad_configuration_key_refuses_to_load() {
    let server = TestServer::start(ServerOptions::json()).unwrap();
    let zipkin = ZipkinCollector::start().unwrap();
    for (cfg, needle) in [
        (r#"{"max_tool_labels": 5000}"#, "max_tool_labels"),
        (r#"{"route_header": true}"#, "route_header"),
        (r#"{"meta_trace_context": "always"}"#, "meta_trace_context"),
    ] {
        let err = Envoy::start(telemetry_config(&server, &zipkin, Some(cfg)).unwrap())
            .expect_err(cfg)
            .to_string();
        assert!(err.contains("invalid configuration"), "{err}");
        assert!(err.contains(needle), "{err}");
    }
}
