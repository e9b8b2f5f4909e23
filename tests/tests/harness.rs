//! The harness itself, through a real Envoy running the plain (filter-free) config: the test MCP
//! server, the client helpers and the config renderer must behave before filter tests can rely
//! on them.

// Helpers fail the test by panicking; clippy's allow-*-in-tests covers only `#[test]` fns.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mcp_integration::client::{self, Session, SseParser, Stateless};
use mcp_integration::server::{ResponseMode, ServerOptions, TestServer};
use mcp_integration::{paths, validate_config, Envoy, EnvoyConfig};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn plain_envoy(server: &TestServer) -> Envoy {
    let cfg = EnvoyConfig::load("plain.yaml")
        .unwrap()
        .upstream("mcp_upstream", server.addr());
    Envoy::start(cfg).unwrap()
}

fn text_of(resp: &Value) -> &str {
    resp["result"]["content"][0]["text"].as_str().unwrap()
}

#[test]
fn legacy_session_lists_and_calls_tools_through_envoy_in_json_and_sse_modes() {
    for mode in [ResponseMode::Json, ResponseMode::Sse] {
        let server = TestServer::start(ServerOptions::default().mode(mode)).unwrap();
        let envoy = plain_envoy(&server);
        let s = Session::initialize(&envoy.url("/mcp")).unwrap();
        assert!(s.session_id.as_deref().is_some_and(|id| !id.is_empty()));
        assert_eq!(s.protocol_version, "2025-11-25");
        assert_eq!(s.init_result["serverInfo"]["name"], "mcp-test-server");

        let (_, raw) = s.request("tools/list", json!({}), &[]).unwrap();
        let expected_ct = match mode {
            ResponseMode::Json => "application/json",
            ResponseMode::Sse => "text/event-stream",
        };
        assert_eq!(raw.status, 200);
        assert_eq!(raw.content_type(), Some(expected_ct), "{mode:?}");
        match mode {
            ResponseMode::Json => assert!(raw.header("content-length").is_some()),
            ResponseMode::Sse => assert!(raw.header("content-length").is_none()),
        }
        let tools = &raw.messages().unwrap()[0]["result"]["tools"];
        let names: Vec<&str> = tools
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "echo",
                "add",
                "get_weather",
                "delete_repo",
                "deploy_service",
                "admin_reset",
                "fail"
            ]
        );

        let echo = s.call_tool("echo", json!({"text": "hello there"})).unwrap();
        assert_eq!(text_of(&echo), "hello there");
        let add = s.call_tool("add", json!({"a": 2, "b": 40})).unwrap();
        assert_eq!(add["result"]["structuredContent"]["sum"], 42.0);
        let fail = s.call_tool("fail", json!({})).unwrap();
        assert_eq!(fail["result"]["isError"], true);
        let unknown = s.call_tool("nope", json!({})).unwrap();
        assert_eq!(unknown["error"]["code"], -32602);
        assert_eq!(unknown["error"]["message"], "Unknown tool: nope");
        assert_eq!(server.tool_calls(), ["echo", "add", "fail", "nope"]);
    }
}

#[test]
fn response_header_overrides_the_default_mode_per_request() {
    let server = TestServer::start(ServerOptions::json()).unwrap();
    let envoy = plain_envoy(&server);
    let s = Session::initialize(&envoy.url("/mcp")).unwrap();
    let (id, raw) = s
        .request("ping", json!({}), &[("x-test-response", "sse")])
        .unwrap();
    assert_eq!(raw.content_type(), Some("text/event-stream"));
    let events = raw.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, "message");
    assert!(events[0].id.is_some());
    let msg: Value = serde_json::from_str(&events[0].data).unwrap();
    assert_eq!(msg["id"], id);
    assert_eq!(msg["result"], json!({}));
}

#[test]
fn chunk_split_sse_arrives_intact_and_progressively() {
    let server = TestServer::start(ServerOptions::sse()).unwrap();
    let envoy = plain_envoy(&server);
    let s = Session::initialize(&envoy.url("/mcp")).unwrap();
    let stream = s
        .stream(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "split me"}, "_meta": {"progressToken": 7}}),
            &[
                ("x-test-progress", "3"),
                ("x-test-log", "1"),
                ("x-test-chunk", "16"),
                ("x-test-delay-ms", "10"),
            ],
        )
        .unwrap();
    assert_eq!(stream.status, 200);
    let events = stream.events().unwrap();
    let msgs: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(&e.event.data).unwrap())
        .collect();
    assert_eq!(msgs.len(), 5, "{msgs:?}");
    for (i, m) in msgs.iter().take(3).enumerate() {
        assert_eq!(m["method"], "notifications/progress");
        assert_eq!(m["params"]["progressToken"], 7);
        assert_eq!(m["params"]["progress"], i + 1);
    }
    assert_eq!(msgs[3]["method"], "notifications/message");
    assert_eq!(text_of(&msgs[4]), "split me");
    let (first, last) = (events[0].at, events[4].at);
    // ~600 bytes in 16-byte chunks 10 ms apart: the stream spans ~350 ms. A proxy that buffered
    // to end of stream would deliver all events in the same read.
    assert!(
        last >= first + Duration::from_millis(150),
        "first event at {first:?}, last at {last:?}: not progressive"
    );
}

#[test]
fn chunk_split_json_arrives_intact_with_its_content_length() {
    let server = TestServer::start(ServerOptions::json()).unwrap();
    let envoy = plain_envoy(&server);
    let s = Session::initialize(&envoy.url("/mcp")).unwrap();
    let (id, raw) = s
        .request(
            "tools/list",
            json!({}),
            &[
                ("x-test-chunk", "5"),
                ("x-test-delay-ms", "1"),
                ("x-test-tools", "5"),
            ],
        )
        .unwrap();
    assert_eq!(
        raw.header("content-length"),
        Some(raw.body.len().to_string().as_str())
    );
    let msg = raw.json().unwrap();
    assert_eq!(msg["id"], id);
    assert_eq!(msg["result"]["tools"].as_array().unwrap().len(), 5);
}

#[test]
fn stateless_discover_and_call_need_matching_mirrored_headers() {
    let server = TestServer::start(ServerOptions::json()).unwrap();
    let envoy = plain_envoy(&server);
    let c = Stateless::new(&envoy.url("/mcp"));

    let discover = c.call("server/discover", json!({})).unwrap();
    let result = &discover["result"];
    assert!(result["supportedVersions"]
        .as_array()
        .unwrap()
        .contains(&json!("2026-07-28")));
    assert_eq!(result["resultType"], "complete");
    assert_eq!(result["cacheScope"], "public");
    assert_eq!(result["ttlMs"], 60000);

    let list = c.call("tools/list", json!({})).unwrap();
    assert_eq!(list["result"]["resultType"], "complete");
    assert_eq!(list["result"]["cacheScope"], "public");

    let echo = c
        .call(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "hi"}}),
        )
        .unwrap();
    assert_eq!(text_of(&echo), "hi");
    assert_eq!(echo["result"]["resultType"], "complete");

    let sentinel = c
        .call_with(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "b64"}}),
            &[("mcp-name", "=?base64?ZWNobw==?=")],
        )
        .unwrap();
    assert_eq!(text_of(&sentinel), "b64");

    let (_, mismatch) = c
        .request(
            "tools/call",
            json!({"name": "echo", "arguments": {}}),
            &[("mcp-name", "delete_repo")],
        )
        .unwrap();
    assert_eq!(mismatch.status, 400);
    let err = mismatch.json().unwrap();
    assert_eq!(err["error"]["code"], -32020);
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Header mismatch"));

    let (_, wrong_method) = c
        .request("tools/list", json!({}), &[("mcp-method", "tools/call")])
        .unwrap();
    assert_eq!(wrong_method.status, 400);

    let get = client::get(
        &envoy.url("/mcp"),
        &[("mcp-protocol-version", "2026-07-28")],
    )
    .unwrap();
    assert_eq!(get.status, 405);
    // Refused requests are recorded too: the record is what arrived, not what succeeded.
    assert_eq!(server.tool_calls(), ["echo", "echo", "echo"]);
    assert_eq!(server.received("tools/list"), 2);
}

#[test]
fn requests_without_or_with_a_deleted_session_are_refused() {
    let server = TestServer::start(ServerOptions::json()).unwrap();
    let envoy = plain_envoy(&server);
    let url = envoy.url("/mcp");

    let no_session = client::post(
        &url,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        &[],
    )
    .unwrap();
    assert_eq!(no_session.status, 400);
    assert_eq!(no_session.json().unwrap()["error"]["code"], -32000);

    let s = Session::initialize(&url).unwrap();
    assert_eq!(server.session_count(), 1);
    assert_eq!(s.call("ping", json!({})).unwrap()["result"], json!({}));
    assert_eq!(s.delete().unwrap().status, 200);
    assert_eq!(server.session_count(), 0);
    let (_, gone) = s.request("ping", json!({}), &[]).unwrap();
    assert_eq!(gone.status, 404);
    let err = gone.json().unwrap();
    assert_eq!(err["error"]["code"], -32001);
    assert_eq!(err["error"]["message"], "Session not found");
}

#[test]
fn get_listen_stream_sends_keepalives_until_the_session_is_deleted() {
    let server = TestServer::start(ServerOptions::json()).unwrap();
    let envoy = plain_envoy(&server);
    let s = Session::initialize(&envoy.url("/mcp")).unwrap();
    let mut stream = s.listen().unwrap();
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    let mut parser = SseParser::new();
    let started = Instant::now();
    while parser.comments() < 2 {
        let chunk = stream.next_chunk().unwrap().unwrap();
        assert!(
            parser.feed(&chunk.bytes).is_empty(),
            "keep-alives are comments, not events"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    assert_eq!(s.delete().unwrap().status, 200);
    let ended = Instant::now();
    while let Some(chunk) = stream.next_chunk() {
        chunk.unwrap();
        assert!(
            ended.elapsed() < Duration::from_secs(5),
            "stream did not end after DELETE"
        );
    }
}

#[test]
fn batches_pass_plain_envoy_and_are_answered_by_the_server() {
    let server = TestServer::start(ServerOptions::json()).unwrap();
    let envoy = plain_envoy(&server);
    let s = Session::initialize(&envoy.url("/mcp")).unwrap();
    let batch = json!([
        {"jsonrpc": "2.0", "id": 101, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 102, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "b"}}},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}},
    ]);
    let resp = s.post_raw(&batch, &[]).unwrap();
    assert_eq!(resp.status, 200);
    let body = resp.json().unwrap();
    let answers = body.as_array().expect("a batch is answered with an array");
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0]["id"], 101);
    assert_eq!(text_of(&answers[1]), "b");
    let rec = server.record();
    let last = rec.last().unwrap();
    assert!(last.batch);
    assert_eq!(last.messages.len(), 3);
    assert_eq!(server.tool_calls(), ["echo"]);
}

#[test]
fn the_record_shows_what_arrived_through_envoy() {
    let server = TestServer::start(ServerOptions::sse()).unwrap();
    let envoy = plain_envoy(&server);
    let s = Session::initialize_with(
        &envoy.url("/mcp"),
        "2025-06-18",
        &[("authorization", "Bearer t0k")],
    )
    .unwrap();
    assert_eq!(s.protocol_version, "2025-06-18");
    s.call_tool("get_weather", json!({"city": "Oslo"})).unwrap();

    let rec = server.record();
    let methods: Vec<Option<&str>> = rec.iter().map(|r| r.rpc_method.as_deref()).collect();
    assert_eq!(
        methods,
        [
            Some("initialize"),
            Some("notifications/initialized"),
            Some("tools/call")
        ]
    );
    let call = &rec[2];
    assert_eq!(call.method, "POST");
    assert_eq!(call.path, "/mcp");
    assert_eq!(call.rpc_name.as_deref(), Some("get_weather"));
    assert_eq!(call.header("authorization"), Some("Bearer t0k"));
    assert_eq!(call.header("mcp-session-id"), s.session_id.as_deref());
    assert_eq!(call.header("mcp-protocol-version"), Some("2025-06-18"));
    assert!(call.header("x-request-id").is_some(), "went through Envoy");
    assert_eq!(
        call.body_json().unwrap()["params"]["arguments"]["city"],
        "Oslo"
    );
    assert_eq!(server.received("tools/call"), 1);
    assert_eq!(server.received("initialize"), 1);

    // The same record over HTTP, for the binary and peer scripts.
    let over_http = client::get(&server.url("/_test/record"), &[]).unwrap();
    let arr = over_http.json().unwrap();
    assert_eq!(arr.as_array().unwrap().len(), 3);
    let parsed = mcp_integration::server::Recorded::from_json(&arr[2]).unwrap();
    assert_eq!(parsed, rec[2]);
    assert_eq!(
        client::delete(&server.url("/_test/record"), &[])
            .unwrap()
            .status,
        200
    );
    assert!(server.record().is_empty());
}

#[test]
fn generated_tool_lists_have_realistic_sizes_and_paginate() {
    let server = TestServer::start(ServerOptions::json()).unwrap();
    let envoy = plain_envoy(&server);
    let s = Session::initialize(&envoy.url("/mcp")).unwrap();
    for (n, lo, hi) in [
        (5usize, 1_000usize, 1_300usize),
        (50, 10_500, 11_500),
        (500, 105_000, 115_000),
    ] {
        let n_str = n.to_string();
        let (_, raw) = s
            .request("tools/list", json!({}), &[("x-test-tools", &n_str)])
            .unwrap();
        let size = raw.body.len();
        eprintln!("tools/list with {n} generated tools: {size} bytes");
        assert!((lo..=hi).contains(&size), "{n} tools: {size} bytes");
        assert_eq!(
            raw.json().unwrap()["result"]["tools"]
                .as_array()
                .unwrap()
                .len(),
            n
        );
    }

    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let params = cursor.as_ref().map_or(json!({}), |c| json!({"cursor": c}));
        let page = s
            .call_with(
                "tools/list",
                params,
                &[("x-test-tools", "50"), ("x-test-page-size", "20")],
            )
            .unwrap();
        pages += 1;
        for t in page["result"]["tools"].as_array().unwrap() {
            names.push(t["name"].as_str().unwrap().to_string());
        }
        match page["result"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 50);
    assert_eq!(names[49], "tool_0049");
    let generated = s
        .call_with(
            "tools/call",
            json!({"name": "tool_0003", "arguments": {"query": "q"}}),
            &[("x-test-tools", "5")],
        )
        .unwrap();
    assert!(text_of(&generated).starts_with("tool_0003 called with"));
}

#[test]
fn admin_stats_count_requests_through_the_listener() {
    let server = TestServer::start(ServerOptions::json().require_session(false)).unwrap();
    let envoy = plain_envoy(&server);
    for i in 0..3 {
        let body = json!({"jsonrpc": "2.0", "id": i, "method": "ping"}).to_string();
        assert_eq!(
            client::post(&envoy.url("/mcp"), &body, &[]).unwrap().status,
            200
        );
    }
    assert_eq!(envoy.stat("cluster.mcp_upstream.upstream_rq_200"), Some(3));
    assert!(envoy.stat("no.such.stat").is_none());
    assert!(envoy
        .admin("/stats?filter=http.mcp")
        .unwrap()
        .contains("http.mcp.downstream_rq_total"));
    assert!(envoy.pid() > 0);
    assert!(envoy.wait_log("starting main dispatch loop", Duration::from_secs(5)));
}

#[test]
fn envoy_that_fails_to_start_reports_its_log() {
    let cfg = EnvoyConfig::load("plain.yaml").unwrap().modify(|d| {
        d["static_resources"]["clusters"][0]["type"] = "NOT_A_TYPE".into();
    });
    let err = Envoy::start(cfg).unwrap_err().to_string();
    assert!(err.contains("NOT_A_TYPE"), "{err}");
    assert!(validate_config(
        &EnvoyConfig::load("plain.yaml")
            .unwrap()
            .modify(|d| d["static_resources"]["clusters"][0]["type"] = "NOT_A_TYPE".into())
            .render(1, 2)
            .unwrap()
    )
    .is_err());
}

#[test]
fn every_envoy_config_validates_when_its_wasm_files_exist() {
    let mut validated = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(paths::envoy_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let cfg = EnvoyConfig::load(&name).unwrap();
        let missing: Vec<_> = cfg
            .wasm_files()
            .into_iter()
            .filter(|w| !w.exists())
            .collect();
        if !missing.is_empty() {
            eprintln!("skipping validation of {name}: missing {missing:?} (run `make build`)");
            continue;
        }
        let rendered = cfg
            .render(mcp_integration::free_port(), mcp_integration::free_port())
            .unwrap();
        validate_config(&rendered).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        validated.push(name);
    }
    assert!(
        validated.contains(&"plain.yaml".to_string()),
        "{validated:?}"
    );
}
