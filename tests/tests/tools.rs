//! `mcp_tools` through the real Envoy: hidden tools vanish from `tools/list` (JSON and SSE, both
//! MCP eras, 5/50/500 tools, pages, chunk-split events) with every other byte kept, and calls to
//! hidden tools are answered by the filter — the test server's record proves they never arrived.
// Test helpers outside #[test] fns are not covered by clippy.toml's in-test allowances.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use mcp_integration::client::{self, Session, Stateless, ACCEPT_BOTH};
use mcp_integration::jwt_authn::{self, token};
use mcp_integration::tools_support::{list_request, names, post, response};
use mcp_integration::{Envoy, EnvoyConfig, ServerOptions, TestServer};
use serde_json::{json, Value};
use std::time::Duration;

const CONFIG: &str = "mcp_tools.yaml";

fn envoy(server: &TestServer, plugin: &str) -> Envoy {
    Envoy::start(
        EnvoyConfig::load(CONFIG)
            .unwrap()
            .upstream("mcp_upstream", server.addr())
            .plugin_config("mcp_tools", plugin),
    )
    .unwrap()
}

/// Removes hidden tools from a direct response, for comparison with the filtered one.
fn without(mut resp: Value, hidden: impl Fn(&str) -> bool) -> Value {
    let tools = resp["result"]["tools"].as_array_mut().unwrap();
    tools.retain(|t| !hidden(t["name"].as_str().unwrap()));
    resp
}

#[test]
fn hidden_tools_vanish_from_json_and_sse_lists_of_every_size() {
    let server = TestServer::start(ServerOptions::json().require_session(false)).unwrap();
    let e = envoy(&server, r#"{"deny": ["tool_00?7", "tool_01*"]}"#);
    let hidden = |n: &str| {
        (n.len() == 9 && n.starts_with("tool_00") && n.ends_with('7')) || n.starts_with("tool_01")
    };
    for n in ["5", "50", "500"] {
        for mode in ["json", "sse"] {
            let h = [("x-test-tools", n), ("x-test-response", mode)];
            let direct = post(&server.url("/mcp"), &list_request(1, None), &h);
            let via = post(&e.url("/mcp"), &list_request(1, None), &h);
            let (direct_v, via_v) = (response(&direct), response(&via));
            assert_eq!(
                via_v,
                without(direct_v.clone(), hidden),
                "{n} tools, {mode}"
            );
            assert!(names(&via_v).iter().all(|t| !hidden(t)));
            // Every kept tool is forwarded byte for byte.
            let direct_text = direct.text();
            for t in via_v["result"]["tools"].as_array().unwrap() {
                let name = t["name"].as_str().unwrap();
                let at = direct_text.find(&format!("\"name\":\"{name}\"")).unwrap();
                let start = direct_text[..at].rfind('{').unwrap();
                let end = start + direct_text[start..].find("}}").unwrap();
                assert!(
                    via.text().contains(&direct_text[start..end]),
                    "{name} kept verbatim"
                );
            }
            if mode == "json" {
                let cl: usize = via.header("content-length").unwrap().parse().unwrap();
                assert_eq!(
                    cl,
                    via.body.len(),
                    "Content-Length matches the rewritten body"
                );
            }
        }
    }
    assert_eq!(e.stat("wasmcustom.mcp_tools.lists_filtered"), Some(6));
    // 5 tools: tool_0000..4 → none hidden; 50: 5 + 10 per mode; 500: 10*? — counted exactly below.
    let expected: usize = [5, 50, 500]
        .iter()
        .map(|&n| (0..n).filter(|i| hidden(&format!("tool_{i:04}"))).count() * 2)
        .sum();
    assert_eq!(
        e.stat("wasmcustom.mcp_tools.tools_hidden"),
        Some(expected as u64)
    );
}

#[test]
fn pages_stay_pages_and_an_all_hidden_page_is_empty() {
    let server = TestServer::start(ServerOptions::json().require_session(false)).unwrap();
    let e = envoy(&server, r#"{"deny": ["tool_002*", "tool_003*"]}"#);
    let h = [("x-test-tools", "50"), ("x-test-page-size", "20")];
    let mut cursor: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let v = response(&post(
            &e.url("/mcp"),
            &list_request(1, cursor.as_deref()),
            &h,
        ));
        pages.push(names(&v));
        match v["result"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages.len(), 3, "the server's three pages stay three pages");
    assert_eq!(pages[0].len(), 20);
    assert!(
        pages[1].is_empty(),
        "page 2 (tools 20-39) is all hidden: {:?}",
        pages[1]
    );
    assert_eq!(pages[2].len(), 10);
}

#[test]
fn sse_list_split_across_chunks_is_filtered_and_other_events_pass_unchanged_and_early() {
    let server = TestServer::start(ServerOptions::sse().require_session(false)).unwrap();
    let e = envoy(&server, r#"{"deny": ["admin_*", "delete_*"]}"#);
    let h = [
        ("x-test-progress", "3"),
        ("x-test-log", "1"),
        ("x-test-chunk", "48"),
        ("x-test-delay-ms", "15"),
    ];
    let direct = post(&server.url("/mcp"), &list_request(9, None), &h);
    let headers: Vec<(&str, &str)> = [
        ("content-type", "application/json"),
        ("accept", ACCEPT_BOTH),
    ]
    .into_iter()
    .chain(h)
    .collect();
    let body = list_request(9, None).to_string();
    let stream = client::stream("POST", &e.url("/mcp"), &headers, Some(body.as_bytes())).unwrap();
    let events = stream.events().unwrap();
    let direct_events = direct.events();
    assert_eq!(events.len(), direct_events.len());
    for (via, d) in events.iter().zip(&direct_events).take(4) {
        assert_eq!(
            via.event.data, d.data,
            "notifications pass through unchanged"
        );
    }
    let last = serde_json::from_str::<Value>(&events.last().unwrap().event.data).unwrap();
    let names = names(&last);
    assert!(names.contains(&"echo".to_string()));
    assert!(!names
        .iter()
        .any(|n| n.starts_with("admin_") || n.starts_with("delete_")));
    // Not held to the end: the first notification arrived well before the list completed.
    let first = events.first().unwrap().at;
    let done = events.last().unwrap().at;
    assert!(
        done.saturating_sub(first) >= Duration::from_millis(100),
        "first event at {first:?}, last at {done:?}"
    );
}

#[test]
fn stateless_lists_are_marked_private_and_keep_ttl() {
    let server = TestServer::start(ServerOptions::json()).unwrap();
    let e = envoy(&server, r#"{"deny": ["admin_*"]}"#);
    let direct = Stateless::new(&server.url("/mcp"))
        .call("tools/list", json!({}))
        .unwrap();
    let via = Stateless::new(&e.url("/mcp"))
        .call("tools/list", json!({}))
        .unwrap();
    assert_eq!(direct["result"]["cacheScope"], "public");
    assert_eq!(via["result"]["cacheScope"], "private");
    assert_eq!(via["result"]["ttlMs"], direct["result"]["ttlMs"]);
    assert_eq!(via["result"]["resultType"], "complete");
    assert!(!names(&via).contains(&"admin_reset".to_string()));
    let mut expected = without(direct, |n| n.starts_with("admin_"));
    expected["result"]["cacheScope"] = json!("private");
    assert_eq!(via, expected);
    // Stateless SSE too.
    let via_sse = Stateless::new(&e.url("/mcp"))
        .call_with("tools/list", json!({}), &[("x-test-response", "sse")])
        .unwrap();
    assert_eq!(via_sse["result"]["cacheScope"], "private");
}

#[test]
fn legacy_session_lists_are_filtered_and_not_marked() {
    let server = TestServer::start(ServerOptions::sse()).unwrap();
    let e = envoy(&server, r#"{"deny": ["admin_*"]}"#);
    let s = Session::initialize(&e.url("/mcp")).unwrap();
    let v = s.call("tools/list", json!({})).unwrap();
    assert!(!names(&v).contains(&"admin_reset".to_string()));
    assert!(names(&v).contains(&"delete_repo".to_string()));
    assert!(
        v["result"].get("cacheScope").is_none(),
        "legacy results gain no fields"
    );
}

#[test]
fn calls_to_hidden_tools_get_unknown_tool_and_never_arrive() {
    let server = TestServer::start(ServerOptions::json().require_session(false)).unwrap();
    let e = envoy(&server, r#"{"deny": ["admin_*"]}"#);
    for id in [json!(7), json!("req-7"), json!(-1)] {
        let r = post(
            &e.url("/mcp"),
            &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "admin_reset", "arguments": {}}}),
            &[],
        );
        assert_eq!(r.status, 200);
        let v = r.json().unwrap();
        assert_eq!(v["id"], id, "original id, same type");
        assert_eq!(v["error"]["code"], -32602);
        assert_eq!(v["error"]["message"], "Unknown tool: admin_reset");
    }
    // The same error the server gives for a tool that does not exist.
    let missing = post(
        &server.url("/mcp"),
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "no_such_tool"}}),
        &[],
    )
    .json()
    .unwrap();
    assert_eq!(missing["error"]["code"], -32602);
    assert_eq!(missing["error"]["message"], "Unknown tool: no_such_tool");
    // Visible tools still work; only they reached the server.
    let ok = post(
        &e.url("/mcp"),
        &json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}}),
        &[],
    );
    assert!(ok.json().unwrap()["result"].is_object());
    assert_eq!(
        server.tool_calls(),
        vec!["no_such_tool".to_string(), "echo".to_string()],
        "the direct probe and echo; admin_reset never arrived"
    );
    assert_eq!(e.stat("wasmcustom.mcp_tools.calls_refused"), Some(3));
}

#[test]
fn a_stateless_call_to_a_hidden_tool_is_refused_too() {
    let server = TestServer::start(ServerOptions::sse()).unwrap();
    let e = envoy(&server, r#"{"deny": ["delete_*"]}"#);
    let v = Stateless::new(&e.url("/mcp"))
        .call(
            "tools/call",
            json!({"name": "delete_repo", "arguments": {"repo": "prod"}}),
        )
        .unwrap();
    assert_eq!(v["error"]["message"], "Unknown tool: delete_repo");
    assert!(server.tool_calls().is_empty());
}

#[test]
fn smuggling_attempts_never_reach_a_hidden_tool() {
    let server = TestServer::start(ServerOptions::json().require_session(false)).unwrap();
    let e = envoy(&server, r#"{"deny": ["admin_*"], "batch": "each"}"#);
    let url = e.url("/mcp");
    // A \u escape spells the hidden name: compared after unescaping.
    let r = client::request(
        "POST",
        &url,
        &[("content-type", "application/json"), ("accept", ACCEPT_BOTH)],
        Some(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"adm\u0069n_reset"}}"#),
    )
    .unwrap();
    assert_eq!(
        r.json().unwrap()["error"]["message"],
        "Unknown tool: admin_reset"
    );
    // Two name keys: refused by the gate whichever one a server would read.
    let r = client::request(
        "POST",
        &url,
        &[("content-type", "application/json"), ("accept", ACCEPT_BOTH)],
        Some(br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","name":"admin_reset"}}"#),
    )
    .unwrap();
    assert_eq!(r.status, 400);
    // A batch hiding the call among harmless requests is refused whole (batch: each).
    let r = post(
        &url,
        &json!([
            {"jsonrpc": "2.0", "id": 3, "method": "ping"},
            {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "admin_reset"}}
        ]),
        &[],
    );
    assert_eq!(
        r.json().unwrap()["error"]["message"],
        "Unknown tool: admin_reset"
    );
    // A name that is not a string cannot be checked: refused.
    let r = post(
        &url,
        &json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": ["admin_reset"]}}),
        &[],
    );
    assert_eq!(r.json().unwrap()["error"]["code"], -32602);
    // Method case: `Tools/Call` is not a tool call; the server refuses the unknown method.
    let r = post(
        &url,
        &json!({"jsonrpc": "2.0", "id": 6, "method": "Tools/Call", "params": {"name": "admin_reset"}}),
        &[],
    );
    assert_eq!(r.json().unwrap()["error"]["code"], -32601);
    assert!(server.tool_calls().is_empty(), "no tool ever ran");
}

#[test]
fn hidden_prompts_vanish_and_cannot_be_fetched() {
    let server = TestServer::start(ServerOptions::json().require_session(false)).unwrap();
    let e = envoy(&server, r#"{"prompts": {"deny": ["greet"]}}"#);
    let direct = response(&post(
        &server.url("/mcp"),
        &json!({"jsonrpc": "2.0", "id": 1, "method": "prompts/list"}),
        &[],
    ));
    assert!(direct["result"]["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "greet"));
    let via = response(&post(
        &e.url("/mcp"),
        &json!({"jsonrpc": "2.0", "id": 1, "method": "prompts/list"}),
        &[],
    ));
    assert!(!via["result"]["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "greet"));
    let r = post(
        &e.url("/mcp"),
        &json!({"jsonrpc": "2.0", "id": 2, "method": "prompts/get", "params": {"name": "greet", "arguments": {"name": "x"}}}),
        &[],
    );
    assert_eq!(
        r.json().unwrap()["error"]["message"],
        "Unknown prompt: greet"
    );
    assert_eq!(server.received("prompts/get"), 0);
}

// --- grants, with identities verified by Envoy's own jwt_authn filter --------------------------

/// mcp_tools.yaml with Envoy's jwt_authn in front (tokens optional: no token = anonymous).
fn envoy_with_jwt_authn(server: &TestServer, plugin: &str) -> Envoy {
    let cfg = EnvoyConfig::load(CONFIG)
        .unwrap()
        .upstream("mcp_upstream", server.addr())
        .plugin_config("mcp_tools", plugin);
    Envoy::start(jwt_authn::in_front(cfg)).unwrap()
}

const GRANTS: &str = r#"{
    "deny": ["admin_*", "deploy_*"],
    "grants": [
        {"scopes": ["repo:admin"], "allow": ["admin_*"]},
        {"claims": {"groups": "sre"}, "allow": ["deploy_*"]}
    ],
    "identity": {"source": "jwt_authn"}
}"#;

fn list_as(e: &Envoy, bearer: Option<&str>) -> (Vec<String>, client::Resp) {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let mut h = vec![];
    if let Some(a) = &auth {
        h.push(("authorization", a.as_str()));
    }
    let r = post(&e.url("/mcp"), &list_request(1, None), &h);
    (names(&response(&r)), r)
}

#[test]
fn grants_open_denied_tools_by_scope_and_by_claim() {
    let server = TestServer::start(ServerOptions::sse().require_session(false)).unwrap();
    let e = envoy_with_jwt_authn(&server, GRANTS);

    let (anon, r) = list_as(&e, None);
    assert!(!anon.contains(&"admin_reset".to_string()));
    assert!(!anon.contains(&"deploy_service".to_string()));
    assert_eq!(
        r.header("cache-control"),
        Some("no-store"),
        "identity-dependent list"
    );

    let admin = token(json!({"sub": "alice", "scope": "mcp:tools repo:admin"}));
    let (names_admin, _) = list_as(&e, Some(&admin));
    assert!(
        names_admin.contains(&"admin_reset".to_string()),
        "{names_admin:?}"
    );
    assert!(!names_admin.contains(&"deploy_service".to_string()));

    // `groups` is a list claim in the token.
    let sre = token(json!({"sub": "bob", "scope": "mcp:tools", "groups": ["dev", "sre"]}));
    let (names_sre, _) = list_as(&e, Some(&sre));
    assert!(
        names_sre.contains(&"deploy_service".to_string()),
        "{names_sre:?}"
    );
    assert!(!names_sre.contains(&"admin_reset".to_string()));

    // A call follows the same decision.
    let call = |bearer: &str, tool: &str| {
        let auth = format!("Bearer {bearer}");
        post(
            &e.url("/mcp"),
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}}),
            &[("authorization", &auth), ("x-test-response", "json")],
        )
        .json()
        .unwrap()
    };
    assert!(call(&admin, "admin_reset")["result"].is_object());
    assert_eq!(call(&sre, "admin_reset")["error"]["code"], -32602);
    assert!(call(&sre, "deploy_service")["result"].is_object());
    assert_eq!(
        server.tool_calls(),
        vec!["admin_reset".to_string(), "deploy_service".to_string()]
    );
}

#[test]
fn a_forged_token_gets_no_grant() {
    let server = TestServer::start(ServerOptions::json().require_session(false)).unwrap();
    let e = envoy_with_jwt_authn(&server, GRANTS);
    let good = token(json!({"sub": "alice", "scope": "repo:admin"}));
    // Keep the signature, swap the payload: jwt_authn refuses it (401), so the request never
    // reaches mcp_tools or the server.
    let forged = jwt_authn::forge(
        &good,
        json!({"iss": jwt_authn::ISSUER, "aud": jwt_authn::AUDIENCE, "exp": 4_102_444_800u64,
               "scope": "repo:admin", "sub": "mallory"}),
    );
    let auth = format!("Bearer {forged}");
    let r = post(
        &e.url("/mcp"),
        &list_request(1, None),
        &[("authorization", &auth)],
    );
    assert_eq!(r.status, 401);
    assert!(server.record().is_empty());
}
