//! Native tests of the `mcp_scopes` glue against filter-host's fake host: host-call budgets of
//! the allowed path. (Every behaviour runs through the real Envoy in `tests/tests/scopes.rs`.)
// Helpers fail the test by panicking; clippy's allow-*-in-tests covers only `#[test]` fns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use filter_host::abi::fake;
use filter_host::McpRoot;
use jwt_simple::prelude::*;
use mcp_scopes::ScopesFilter;
use proxy_wasm::traits::{HttpContext, RootContext};
use proxy_wasm::types::Action;

const CALL: &str =
    r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;

fn now_nanos() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    u64::try_from(d.as_nanos()).unwrap()
}

/// A configured root with an inline ES256 key, and a token for `mcp:tools` signed with it.
fn setup(extra: &str) -> (McpRoot<ScopesFilter>, String) {
    let key = ES256KeyPair::generate().with_key_id("k1");
    let jwks = format!(r#"{{"keys":[{}]}}"#, key.public_key().to_jwk());
    let config = format!(
        r#"{{"resource": "https://mcp.example.com/mcp",
             "authorization_servers": ["https://idp.example.com"],
             "jwt": {{"issuer": "https://idp.example.com", "algorithms": ["ES256"],
                      "jwks": {{"inline": {}}}}},
             "rules": [{{"tools": ["*"], "scopes": ["mcp:tools"]}}]{extra}}}"#,
        serde_json::to_string(&jwks).unwrap()
    );
    fake::reset();
    fake::with(|h| {
        h.plugin_configuration = config.as_bytes().to_vec();
        h.now = now_nanos();
    });
    let mut r = McpRoot::<ScopesFilter>::new();
    assert!(r.on_configure(config.len()), "configuration accepted");
    // Scopes ride in `scope`, a claim jwt-simple has no field for.
    #[derive(Serialize, Deserialize)]
    struct Scope {
        scope: String,
    }
    let claims = Claims::with_custom_claims(
        Scope {
            scope: "mcp:tools".into(),
        },
        Duration::from_mins(5),
    )
    .with_issuer("https://idp.example.com")
    .with_audience("https://mcp.example.com/mcp")
    .with_subject("alice");
    (r, key.sign(claims).expect("signed"))
}

fn call(r: &McpRoot<ScopesFilter>, id: u32, token: &str) -> Box<dyn HttpContext> {
    let auth = format!("Bearer {token}");
    fake::with(|h| {
        h.stage_post(&[("authorization", auth.as_str())], CALL.as_bytes());
        h.reads.clear();
    });
    let mut ctx = r.create_http_context(id).unwrap();
    assert_eq!(ctx.on_http_request_headers(4, false), Action::Pause);
    assert_eq!(ctx.on_http_request_body(CALL.len(), true), Action::Continue);
    assert!(fake::with(|h| h.local_reply.is_none()), "allowed");
    ctx
}

#[test]
fn an_allowed_call_reads_headers_and_body_once_and_never_its_response() {
    let (r, token) = setup("");
    for id in [2, 3] {
        let mut ctx = call(&r, id, &token);
        fake::with(|h| {
            h.response_headers = vec![
                (":status".into(), "200".into()),
                ("content-type".into(), "application/json".into()),
            ];
            h.response_body = br#"{"jsonrpc":"2.0","id":9,"result":{}}"#.to_vec();
        });
        assert_eq!(ctx.on_http_response_headers(2, false), Action::Continue);
        assert_eq!(ctx.on_http_response_body(10, true), Action::Continue);
        assert_eq!(
            fake::with(|h| h.reads.clone()),
            ["proxy_get_header_map_pairs", "proxy_get_buffer_bytes"],
            "the token comes from the header map the gate read; the response is not looked at"
        );
    }
    let hits = fake::with(|h| {
        h.metrics
            .iter()
            .find(|m| m.1 == "mcp_scopes.token_cache_hits")
            .map(|m| m.2)
    });
    assert_eq!(hits, Some(1), "the second call verified from the cache");
}

#[test]
fn the_token_is_published_as_identity_and_stripped_when_asked() {
    let (r, token) = setup(r#", "strip_authorization": true"#);
    let _ctx = call(&r, 2, &token);
    let (sub, scopes, auth) = fake::with(|h| {
        (
            h.properties.get(&b"mcp.auth.sub"[..]).cloned(),
            h.properties.get(&b"mcp.auth.scopes"[..]).cloned(),
            h.request_headers.iter().any(|(k, _)| k == "authorization"),
        )
    });
    assert_eq!(sub.as_deref(), Some(&b"alice"[..]));
    assert_eq!(scopes.as_deref(), Some(&b"mcp:tools"[..]));
    assert!(!auth, "authorization removed before the upstream");
}

const EXCHANGE: &str = r#", "upstream_token": {"token_exchange": {"cluster": "idp", "path": "/oauth2/token",
    "client_id": "gw", "client_secret": "pw", "audience": "https://api.example.com"},
    "tools": [{"tools": ["deploy_*"], "audience": "https://deploy.example.com"}]}"#;

fn held_call(r: &McpRoot<ScopesFilter>, id: u32, token: &str) -> Box<dyn HttpContext> {
    let auth = format!("Bearer {token}");
    fake::with(|h| h.stage_post(&[("authorization", auth.as_str())], CALL.as_bytes()));
    let mut ctx = r.create_http_context(id).unwrap();
    assert_eq!(ctx.on_http_request_headers(4, false), Action::Pause);
    ctx
}

fn answer(r: &mut McpRoot<ScopesFilter>, token: u32, status: &str, body: &str) {
    use proxy_wasm::traits::Context;
    fake::with(|h| {
        h.http_call_response_headers = vec![(":status".into(), status.into())];
        h.http_call_response_body = body.as_bytes().to_vec();
    });
    r.on_http_call_response(token, 1, body.len(), 0);
}

fn counter(name: &str) -> Option<i64> {
    fake::with(|h| h.metrics.iter().find(|m| m.1 == name).map(|m| m.2))
}

#[test]
fn the_callers_token_is_exchanged_once_and_only_the_issued_token_goes_upstream() {
    let (mut r, token) = setup(EXCHANGE);
    let mut ctx = held_call(&r, 2, &token);
    assert_eq!(
        ctx.on_http_request_body(CALL.len(), true),
        Action::Pause,
        "held for the exchange"
    );
    let (cluster, headers, body) = fake::with(|h| h.http_calls[0].clone());
    assert_eq!(cluster, "idp");
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header(":method"), Some("POST"));
    assert_eq!(header(":path"), Some("/oauth2/token"));
    assert_eq!(header(":authority"), Some("idp"));
    assert_eq!(header("authorization"), Some("Basic Z3c6cHc="));
    assert_eq!(
        header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let body = String::from_utf8(body).unwrap();
    assert!(body.starts_with(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token="
    ));
    assert!(body.contains(&format!("subject_token={token}&")), "{body}");
    assert!(
        body.ends_with("&audience=https%3A%2F%2Fapi.example.com"),
        "{body}"
    );
    answer(
        &mut r,
        1,
        "200",
        r#"{"access_token":"up-1","token_type":"Bearer","expires_in":300}"#,
    );
    fake::with(|h| {
        assert_eq!(h.continued, vec![false], "resumed");
        assert!(h.local_reply.is_none());
        let auth: Vec<_> = h
            .request_headers
            .iter()
            .filter(|(k, _)| k == "authorization")
            .collect();
        assert_eq!(
            auth,
            [&("authorization".to_string(), "Bearer up-1".to_string())]
        );
    });
    assert_eq!(counter("mcp_scopes.exchanged"), Some(1));
    // The same caller again: from the cache, not held, no new call.
    let mut ctx = held_call(&r, 3, &token);
    assert_eq!(ctx.on_http_request_body(CALL.len(), true), Action::Continue);
    assert_eq!(fake::with(|h| h.http_calls.len()), 1);
    assert_eq!(counter("mcp_scopes.exchange_cache_hits"), Some(1));
    assert!(fake::with(|h| h
        .request_headers
        .contains(&("authorization".into(), "Bearer up-1".into()))));
}

#[test]
fn a_failed_exchange_refuses_the_request_with_its_id() {
    for (status, body, code, details) in [
        (
            "400",
            r#"{"error":"invalid_grant"}"#,
            401,
            "mcp_scopes_exchange_invalid_grant",
        ),
        (
            "400",
            r#"{"error":"invalid_target"}"#,
            403,
            "mcp_scopes_exchange_rejected",
        ),
        ("500", "", 503, "mcp_scopes_exchange_unavailable"),
    ] {
        let (mut r, token) = setup(EXCHANGE);
        let mut ctx = held_call(&r, 2, &token);
        assert_eq!(ctx.on_http_request_body(CALL.len(), true), Action::Pause);
        answer(&mut r, 1, status, body);
        let reply = fake::with(|h| h.local_reply.clone()).expect("refused");
        assert_eq!((reply.status, reply.details.as_str()), (code, details));
        let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(v["id"], 9);
        assert!(fake::with(|h| h.continued.is_empty()), "never forwarded");
    }
}

#[test]
fn a_batch_whose_calls_need_different_upstream_tokens_is_refused() {
    let (r, token) = setup(&format!(r#"{EXCHANGE}, "batch": "each""#));
    let auth = format!("Bearer {token}");
    let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}},
                   {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"deploy_x"}}]"#;
    fake::with(|h| h.stage_post(&[("authorization", auth.as_str())], batch.as_bytes()));
    let mut ctx = r.create_http_context(2).unwrap();
    assert_eq!(ctx.on_http_request_headers(4, false), Action::Pause);
    assert_eq!(ctx.on_http_request_body(batch.len(), true), Action::Pause);
    let reply = fake::with(|h| h.local_reply.clone()).expect("refused");
    assert_eq!(
        (reply.status, reply.details.as_str()),
        (400, "mcp_scopes_exchange_batch_conflict")
    );
    assert!(fake::with(|h| h.http_calls.is_empty()), "no exchange");
}
