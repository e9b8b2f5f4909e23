//! The chain inside `mcp_gateway`, natively against the fake host: order, first refusal wins,
//! one parse for every policy, response messages passed from policy to policy, chain-of-one
//! naming. (The same code runs through the real Envoy in tests/tests/gate.rs and, as chains of
//! one, in every policy suite under `MCP_UNDER_TEST=module`.)

use filter_host::abi::fake;
use filter_host::McpRoot;
use mcp_gateway::Gateway;
use proxy_wasm::traits::{HttpContext, RootContext};
use proxy_wasm::types::Action;

fn root(config: &str) -> (McpRoot<Gateway>, bool) {
    fake::reset();
    fake::with(|h| h.plugin_configuration = config.as_bytes().to_vec());
    let mut r = McpRoot::<Gateway>::new();
    let ok = r.on_configure(config.len());
    (r, ok)
}

fn metric(name: &str) -> i64 {
    fake::with(|h| {
        h.metrics
            .iter()
            .find(|m| m.1 == name)
            .map(|m| m.2)
            .unwrap_or(-1)
    })
}

fn send(ctx: &mut dyn HttpContext, body: &[u8]) -> Action {
    fake::with(|h| h.stage_post(&[], body));
    assert_eq!(ctx.on_http_request_headers(3, false), Action::Pause);
    ctx.on_http_request_body(body.len(), true)
}

fn reply() -> Option<(u32, String, String)> {
    fake::with(|h| {
        h.local_reply.as_ref().map(|r| {
            (
                r.status,
                r.details.clone(),
                String::from_utf8_lossy(&r.body).into_owned(),
            )
        })
    })
}

const ALL: &str = r#"{"telemetry": {}, "scopes": {}, "tools": {"deny": ["admin_*"]}, "pii": {}}"#;

#[test]
fn a_configuration_error_names_the_section_path() {
    let (_r, ok) = root(r#"{"tools": {"deny": ["a", ""]}}"#);
    assert!(!ok);
    let logged = fake::with(|h| h.logs.iter().any(|(_, m)| m.contains("tools.deny[1]")));
    assert!(logged);
    let (_r, ok) = root(r#"{"failure_mode": "open", "tools": {}}"#);
    assert!(!ok, "open is refused where a request policy is enforced");
}

#[test]
fn the_first_refusal_wins_and_later_policies_never_see_the_request() {
    let (r, ok) = root(ALL);
    assert!(ok);
    let mut ctx = r.create_http_context(2).unwrap();
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_reset","arguments":{"to":"bob@example.com"}}}"#;
    assert_eq!(send(ctx.as_mut(), body), Action::Pause);
    let (status, details, text) = reply().unwrap();
    assert_eq!((status, details.as_str()), (200, "mcp_tools_hidden_tool"));
    assert!(text.contains("Unknown tool: admin_reset"), "{text}");
    // pii, after tools, never scanned it.
    assert_eq!(metric("mcp_pii.request.email"), 0);
    // One gate, one parse, counted once under the module's name.
    assert_eq!(metric("mcp_gateway.requests_inspected"), 1);
    assert_eq!(metric("mcp_tools.calls_refused"), 1);
}

#[test]
fn an_allowed_call_is_scrubbed_by_the_last_policy() {
    let (r, _) = root(ALL);
    let mut ctx = r.create_http_context(2).unwrap();
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"to":"bob@example.com"}}}"#;
    assert_eq!(send(ctx.as_mut(), body), Action::Continue);
    assert!(reply().is_none());
    let forwarded = fake::with(|h| String::from_utf8(h.request_body.clone()).unwrap());
    assert!(forwarded.contains("[REDACTED:email]"), "{forwarded}");
    assert_eq!(metric("mcp_pii.request.email"), 1);
}

#[test]
fn a_response_goes_through_every_policy_that_reads_it() {
    let (r, _) = root(ALL);
    let mut ctx = r.create_http_context(2).unwrap();
    let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#;
    assert_eq!(send(ctx.as_mut(), body), Action::Continue);
    let list = br#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"echo","description":"x"},{"name":"admin_reset","description":"y"}]}}"#;
    fake::with(|h| {
        h.response_headers = vec![
            (":status".into(), "200".into()),
            ("content-type".into(), "application/json".into()),
        ];
        h.response_body = list.to_vec();
    });
    assert_eq!(ctx.on_http_response_headers(2, false), Action::Pause);
    assert_eq!(
        ctx.on_http_response_body(list.len(), true),
        Action::Continue
    );
    let out = fake::with(|h| String::from_utf8(h.response_body.clone()).unwrap());
    assert!(
        out.contains("\"echo\"") && !out.contains("admin_reset"),
        "{out}"
    );
    assert_eq!(metric("mcp_tools.tools_hidden"), 1);
}

#[test]
fn a_chain_of_one_is_named_like_the_standalone_filter() {
    let (r, _) = root(r#"{"tools": {"deny": ["admin_*"]}}"#);
    let mut ctx = r.create_http_context(2).unwrap();
    assert_eq!(send(ctx.as_mut(), b"not json"), Action::Pause);
    let (status, details, _) = reply().unwrap();
    assert_eq!((status, details.as_str()), (400, "mcp_tools_invalid_json"));
    assert_eq!(metric("mcp_tools.invalid_json"), 1);
    // With more than one policy the gate is the module's.
    let (r, _) = root(ALL);
    let mut ctx = r.create_http_context(2).unwrap();
    assert_eq!(send(ctx.as_mut(), b"not json"), Action::Pause);
    assert_eq!(reply().unwrap().1, "mcp_gateway_invalid_json");
}

#[test]
fn no_section_still_runs_the_gate() {
    let (r, ok) = root("");
    assert!(ok);
    let mut ctx = r.create_http_context(2).unwrap();
    let body =
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","na\u006de":"b"}}"#;
    assert_eq!(send(ctx.as_mut(), body), Action::Pause);
    assert_eq!(reply().unwrap().0, 400);
}

#[test]
fn a_later_policys_local_reply_is_seen_by_the_earlier_ones_as_the_response() {
    let (r, _) = root(ALL);
    let mut ctx = r.create_http_context(2).unwrap();
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_reset"}}"#;
    assert_eq!(send(ctx.as_mut(), body), Action::Pause);
    ctx.on_log();
    // telemetry, before tools, recorded the JSON-RPC error of tools' reply, not "ok".
    assert_eq!(
        metric(
            "mcp_telemetry.requests_total.method.tools/call.tool.admin_reset.outcome.jsonrpc_error"
        ),
        1
    );
    assert_eq!(
        metric("mcp_telemetry.requests_total.method.tools/call.tool.admin_reset.outcome.ok"),
        -1
    );
}

#[test]
fn a_policy_holding_before_forwarding_gets_its_calls_answer_and_the_chain_resumes_from_it() {
    use proxy_wasm::traits::Context;
    let config = r#"{"telemetry": {}, "tools": {}, "pii": {},
        "scopes": {"resource": "https://m.example/mcp", "authorization_servers": ["https://idp.example"],
                   "jwt_authn": {"metadata_key": "p"}, "unmatched": "allow",
                   "upstream_token": {"token_exchange": {"cluster": "idp", "path": "/t",
                       "client_id": "gw", "client_secret": "pw", "audience": "https://api"}}}}"#;
    let (mut r, ok) = root(config);
    assert!(ok);
    fake::with(|h| {
        h.properties.insert(
            b"metadata\0filter_metadata\0envoy.filters.http.jwt_authn\0p\0sub".to_vec(),
            b"alice".to_vec(),
        );
    });
    let mut ctx = r.create_http_context(2).unwrap();
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"to":"bob@example.com"}}}"#;
    fake::with(|h| h.stage_post(&[("authorization", "Bearer caller-token")], body));
    assert_eq!(ctx.on_http_request_headers(3, false), Action::Pause);
    assert_eq!(
        ctx.on_http_request_body(body.len(), true),
        Action::Pause,
        "held by scopes after every policy allowed it"
    );
    assert_eq!(
        metric("mcp_pii.request.email"),
        1,
        "pii decided before the hold"
    );
    let calls = fake::with(|h| h.http_calls.clone());
    assert_eq!(calls.len(), 1);
    assert!(String::from_utf8_lossy(&calls[0].2).contains("subject_token=caller-token&"));
    fake::with(|h| {
        h.http_call_response_headers = vec![(":status".into(), "200".into())];
        h.http_call_response_body =
            br#"{"access_token":"issued","token_type":"Bearer","expires_in":600}"#.to_vec();
    });
    r.on_http_call_response(1, 1, 64, 0);
    fake::with(|h| {
        assert_eq!(h.continued, vec![false], "resumed");
        assert!(h.local_reply.is_none());
        assert!(h
            .request_headers
            .contains(&("authorization".into(), "Bearer issued".into())));
    });
    assert_eq!(metric("mcp_scopes.exchanged"), 1);
}
