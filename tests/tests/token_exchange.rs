//! `mcp_scopes` `upstream_token` (OAuth 2.0 Token Exchange, RFC 8693) through the real Envoy:
//! the caller's token is verified, the call authorized, then exchanged at a strict token
//! endpoint behind the Envoy cluster `idp` (`token_exchange_support::TokenEndpoint`), and the
//! upstream receives only the issued token. Per-user tokens, the cache, expiry, per-tool
//! audiences, every refusal, two workers. Runs standalone and as `mcp_gateway`
//! (`MCP_UNDER_TEST=module`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use mcp_integration::client::{self, ACCEPT_BOTH};
use mcp_integration::pypi_client::{self, python};
use mcp_integration::scopes_support::{config, Issuer, METADATA_URL};
use mcp_integration::token_exchange_support::{upstream_token, Forced, TokenEndpoint};
use mcp_integration::{free_port, Envoy, EnvoyConfig, EnvoyOptions, ServerOptions, TestServer};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

fn call(id: u32, tool: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": {"text": "hi", "service": "s"}}})
    .to_string()
}

fn server() -> TestServer {
    TestServer::start(ServerOptions::json().require_session(false)).unwrap()
}

/// Envoy with `mcp_scopes` (inline keys) plus `upstream_token` (`extra` merged into the
/// section), the token endpoint at `idp`, and an access log of response code details.
fn envoy_at(
    s: &TestServer,
    idp: SocketAddr,
    extra: Value,
    log: Option<&Path>,
    concurrency: u32,
) -> Envoy {
    let issuer = Issuer::shared().unwrap();
    let json = config(
        json!({"inline": issuer.jwks()}),
        json!({"upstream_token": upstream_token(extra)}),
    );
    let mut cfg = EnvoyConfig::load("mcp_scopes.yaml")
        .unwrap()
        .modify(|doc| {
            let clusters = doc["static_resources"]["clusters"]
                .as_sequence_mut()
                .unwrap();
            let mut idp = clusters
                .iter()
                .find(|c| c["name"].as_str() == Some("jwks"))
                .unwrap()
                .clone();
            idp["name"] = "idp".into();
            clusters.push(idp);
        })
        .upstream("mcp_upstream", s.addr())
        .upstream("idp", idp)
        .plugin_config("mcp_scopes", &json);
    if let Some(path) = log {
        cfg = cfg
            .file_access_log(
                path,
                r#"
text_format_source:
  inline_string: "%RESPONSE_CODE%|%RESPONSE_CODE_DETAILS%\n"
"#,
            )
            .unwrap();
    }
    Envoy::start_with(cfg, EnvoyOptions::default().concurrency(concurrency)).unwrap()
}

fn envoy(s: &TestServer, idp: &TokenEndpoint, extra: Value) -> Envoy {
    envoy_at(s, idp.addr(), extra, None, 1)
}

fn post(e: &Envoy, body: &str, token: &str) -> client::Resp {
    let auth = format!("Bearer {token}");
    let headers = [
        ("content-type", "application/json"),
        ("accept", ACCEPT_BOTH),
        ("authorization", auth.as_str()),
    ];
    client::request("POST", &e.url("/mcp"), &headers, Some(body.as_bytes())).unwrap()
}

fn token(sub: &str) -> String {
    Issuer::shared().unwrap().token(sub, "mcp:tools")
}

/// The `Authorization` values the MCP server received, in order.
fn upstream_auth(s: &TestServer) -> Vec<String> {
    s.record()
        .iter()
        .map(|r| r.header("authorization").unwrap_or("").to_string())
        .collect()
}

fn stat(e: &Envoy, name: &str) -> u64 {
    e.stat(&format!("wasmcustom.mcp_scopes.{name}"))
        .unwrap_or(0)
}

#[test]
fn each_user_gets_their_own_upstream_token_once_and_the_callers_token_never_goes_upstream() {
    let (s, idp) = (server(), TokenEndpoint::start().unwrap());
    let e = envoy(&s, &idp, json!({}));
    let (alice, bob) = (token("alice"), token("bob"));
    for (id, t) in [(1, &alice), (2, &bob), (3, &alice), (4, &bob)] {
        let r = post(&e, &call(id, "echo"), t);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json().unwrap()["id"], id);
    }
    let auth = upstream_auth(&s);
    assert_eq!(auth.len(), 4);
    assert!(
        auth[0].starts_with("Bearer up.alice.https---api-test."),
        "{auth:?}"
    );
    assert!(
        auth[1].starts_with("Bearer up.bob.https---api-test."),
        "{auth:?}"
    );
    assert_ne!(auth[0], auth[1], "two users, two upstream tokens");
    assert_eq!(auth[2], auth[0], "alice's second call reuses her token");
    assert_eq!(auth[3], auth[1], "bob's too");
    for r in s.record() {
        let all: Vec<_> = r
            .headers
            .iter()
            .filter(|(k, _)| k == "authorization")
            .collect();
        assert_eq!(all.len(), 1, "one credential upstream");
        let text = format!("{:?}", r.headers);
        assert!(
            !text.contains(&alice) && !text.contains(&bob),
            "the caller's token stayed"
        );
    }
    let reqs = idp.requests();
    assert_eq!(
        reqs.len(),
        2,
        "one exchange per user and audience: {reqs:?}"
    );
    for (req, sub, subject) in [(&reqs[0], "alice", &alice), (&reqs[1], "bob", &bob)] {
        assert!(req.valid, "strict RFC 8693 request: {}", req.problem);
        assert_eq!(req.sub, sub);
        assert_eq!(req.param("subject_token"), Some(subject.as_str()));
        assert_eq!(req.param("audience"), Some("https://api.test"));
        assert_eq!(req.param("scope"), Some("repo:read"));
        assert_eq!(
            req.param("requested_token_type"),
            Some("urn:ietf:params:oauth:token-type:access_token")
        );
    }
    assert_eq!(stat(&e, "exchanged"), 2);
    assert_eq!(stat(&e, "exchange_cache_hits"), 2);
    assert!(
        !e.log().contains(&alice[alice.len() - 20..]),
        "no token in Envoy's log"
    );
}

#[test]
fn a_tool_named_in_tools_gets_a_token_for_its_own_audience_and_scope() {
    let (s, idp) = (server(), TokenEndpoint::start().unwrap());
    let e = envoy(&s, &idp, json!({}));
    let alice = token("alice");
    for (id, tool) in [(1, "deploy_service"), (2, "echo"), (3, "deploy_service")] {
        let r = post(&e, &call(id, tool), &alice);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let auth = upstream_auth(&s);
    assert!(
        auth[0].starts_with("Bearer up.alice.https---deploy-test."),
        "{auth:?}"
    );
    assert!(
        auth[1].starts_with("Bearer up.alice.https---api-test."),
        "{auth:?}"
    );
    assert_eq!(auth[2], auth[0], "cached per audience");
    let reqs = idp.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0].param("audience"), Some("https://deploy.test"));
    assert_eq!(reqs[0].param("scope"), Some("deploy"));
    assert_eq!(reqs[1].param("audience"), Some("https://api.test"));
}

#[test]
fn an_expired_upstream_token_is_exchanged_again_and_one_without_expiry_is_never_cached() {
    let (s, idp) = (server(), TokenEndpoint::start().unwrap());
    idp.set_expires_in(Some(2));
    let e = envoy(&s, &idp, json!({"expiry_margin_seconds": 0}));
    let alice = token("alice");
    assert_eq!(post(&e, &call(1, "echo"), &alice).status, 200);
    assert_eq!(post(&e, &call(2, "echo"), &alice).status, 200);
    assert_eq!(idp.requests().len(), 1, "still valid: cached");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(post(&e, &call(3, "echo"), &alice).status, 200);
    assert_eq!(idp.requests().len(), 2, "expired: exchanged again");
    let auth = upstream_auth(&s);
    assert_eq!(auth[0], auth[1]);
    assert_ne!(auth[2], auth[0], "a new upstream token");

    idp.set_expires_in(None);
    let bob = token("bob");
    for id in 10..13 {
        assert_eq!(post(&e, &call(id, "echo"), &bob).status, 200);
    }
    assert_eq!(
        idp.requests().len(),
        5,
        "no expires_in: exchanged every time"
    );
    // A lifetime within the margin is not cached either.
    drop(e);
    idp.set_expires_in(Some(20));
    let e = envoy(&s, &idp, json!({}));
    assert_eq!(post(&e, &call(20, "echo"), &bob).status, 200);
    assert_eq!(post(&e, &call(21, "echo"), &bob).status, 200);
    assert_eq!(
        idp.requests().len(),
        7,
        "20 s minus the 30 s margin: not cached"
    );
}

fn assert_refused(r: &client::Resp, status: u16, id: u32, reason: &str) -> Value {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json().unwrap();
    assert_eq!(v["id"], id, "{v}");
    assert_eq!(v["error"]["data"]["reason"], reason, "{v}");
    v
}

#[test]
fn invalid_grant_gets_the_401_invalid_token_challenge_and_nothing_goes_upstream() {
    let (s, idp) = (server(), TokenEndpoint::start().unwrap());
    idp.force_sub("mallory", Forced::Error("invalid_grant"));
    let e = envoy(&s, &idp, json!({}));
    let r = post(&e, &call(7, "echo"), &token("mallory"));
    assert_refused(&r, 401, 7, "exchange_invalid_grant");
    let h = r.header("www-authenticate").unwrap();
    assert!(h.starts_with("Bearer error=\"invalid_token\""), "{h}");
    assert!(
        h.contains(&format!("resource_metadata=\"{METADATA_URL}\"")),
        "{h}"
    );
    assert!(h.contains("scope=\"mcp:tools\""), "{h}");
    assert!(s.record().is_empty(), "nothing reached the server");
    assert_eq!(stat(&e, "exchange_invalid_grant"), 1);
    // Another user is unaffected.
    assert_eq!(post(&e, &call(8, "echo"), &token("alice")).status, 200);
}

#[test]
fn a_refused_audience_or_scope_gets_403_insufficient_scope_with_the_needed_scopes() {
    let (s, idp) = (server(), TokenEndpoint::start().unwrap());
    let e = envoy(&s, &idp, json!({}));
    for (i, code) in ["invalid_target", "invalid_scope", "unauthorized_client"]
        .into_iter()
        .enumerate()
    {
        idp.force_audience("https://deploy.test", Forced::Error(code));
        let id = 20 + u32::try_from(i).unwrap();
        let r = post(&e, &call(id, "deploy_service"), &token(&format!("u{i}")));
        let v = assert_refused(&r, 403, id, "exchange_rejected");
        assert_eq!(v["error"]["data"]["error"], code);
        assert_eq!(
            r.header("www-authenticate"),
            Some(
                format!(
                    "Bearer error=\"insufficient_scope\", scope=\"mcp:tools\", resource_metadata=\"{METADATA_URL}\""
                )
                .as_str()
            )
        );
    }
    assert!(s.record().is_empty());
    assert_eq!(stat(&e, "exchange_rejected"), 3);
    // The default audience still works for the same users.
    assert_eq!(post(&e, &call(30, "echo"), &token("u0")).status, 200);
}

#[test]
fn an_unavailable_token_endpoint_gets_503_with_the_id_and_its_own_details() {
    let (s, idp) = (server(), TokenEndpoint::start().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let e = envoy_at(&s, idp.addr(), json!({}), Some(&log), 1);
    let cases: [(Forced, &str); 5] = [
        (Forced::Raw(500, "{}".into()), "idp_unavailable"),
        (Forced::Raw(200, "not json".into()), "unparseable_response"),
        (
            Forced::Raw(
                200,
                r#"{"access_token":"a b","token_type":"Bearer"}"#.into(),
            ),
            "unparseable_response",
        ),
        (Forced::Error("invalid_request"), "idp_error"),
        (Forced::Delay(Duration::from_millis(2500)), "timeout"),
    ];
    for (i, (forced, cause)) in cases.into_iter().enumerate() {
        idp.force_all(Some(forced));
        let id = 40 + u32::try_from(i).unwrap();
        let r = post(&e, &call(id, "echo"), &token(&format!("u{i}")));
        let v = assert_refused(&r, 503, id, "exchange_unavailable");
        assert_eq!(v["error"]["data"]["cause"], cause, "{v}");
        assert_eq!(v["error"]["code"], -32603);
        assert_eq!(r.header("retry-after"), Some("1"));
        assert!(r.header("www-authenticate").is_none());
    }
    assert!(s.record().is_empty(), "nothing reached the server");
    assert_eq!(stat(&e, "exchange_unavailable"), 5);
    // Envoy flushes access logs every second.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let n = text
            .lines()
            .filter(|l| *l == "503|mcp_scopes_exchange_unavailable")
            .count();
        if n == 5 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_unreachable_token_endpoint_gets_503() {
    let s = server();
    let closed: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let e = envoy_at(&s, closed, json!({}), None, 1);
    let r = post(&e, &call(50, "echo"), &token("alice"));
    let v = assert_refused(&r, 503, 50, "exchange_unavailable");
    // Envoy answers the callout with its own 503 (connection refused).
    assert_eq!(v["error"]["data"]["cause"], "idp_unavailable");
    assert!(s.record().is_empty());
}

#[test]
fn a_bad_client_secret_is_the_gateways_problem_503_not_the_callers() {
    let (s, idp) = (server(), TokenEndpoint::start().unwrap());
    let mut ut = upstream_token(json!({}));
    ut["token_exchange"]["client_secret"] = "wrong".into();
    let e = envoy(
        &s,
        &idp,
        json!({"token_exchange": ut["token_exchange"].clone()}),
    );
    let r = post(&e, &call(60, "echo"), &token("alice"));
    let v = assert_refused(&r, 503, 60, "exchange_unavailable");
    assert_eq!(v["error"]["data"]["cause"], "invalid_client");
    let reqs = idp.requests();
    assert_eq!(reqs[0].problem, "invalid_client");
    assert!(s.record().is_empty());
}

#[test]
fn two_workers_both_exchange_and_forward_each_users_token() {
    let (s, idp) = (server(), TokenEndpoint::start().unwrap());
    let e = envoy_at(&s, idp.addr(), json!({}), None, 2);
    let (alice, bob) = (token("alice"), token("bob"));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (url, t) = (
                e.url("/mcp"),
                if i % 2 == 0 {
                    alice.clone()
                } else {
                    bob.clone()
                },
            );
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                for j in 0..5 {
                    let auth = format!("Bearer {t}");
                    let body = call(100 + i * 10 + j, "echo");
                    let headers = [
                        ("content-type", "application/json"),
                        ("accept", ACCEPT_BOTH),
                        ("authorization", auth.as_str()),
                    ];
                    let r = client::request("POST", &url, &headers, Some(body.as_bytes())).unwrap();
                    statuses.push(r.status);
                }
                statuses
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap().iter().all(|s| *s == 200));
    }
    let record = s.record();
    assert_eq!(record.len(), 40);
    for r in &record {
        let body = r.body_json().unwrap();
        let i = (body["id"].as_u64().unwrap() - 100) / 10;
        let auth = r.header("authorization").unwrap();
        let who = if i % 2 == 0 { "alice" } else { "bob" };
        assert!(auth.starts_with(&format!("Bearer up.{who}.")), "{auth}");
    }
    let n = idp.requests().len();
    assert!(
        (2..=40).contains(&n),
        "each worker exchanges per user, then caches: {n}"
    );
    let distinct: std::collections::HashSet<_> = record
        .iter()
        .map(|r| r.header("authorization").unwrap().to_string())
        .collect();
    assert!(distinct.len() <= n, "every upstream token was issued");
}

#[test]
fn requests_without_a_body_are_exchanged_too() {
    let (s, idp) = (server(), TokenEndpoint::start().unwrap());
    let e = envoy(&s, &idp, json!({}));
    let auth = format!("Bearer {}", token("alice"));
    let r = client::request(
        "DELETE",
        &e.url("/mcp"),
        &[("authorization", auth.as_str()), ("mcp-session-id", "s1")],
        None,
    )
    .unwrap();
    assert!(r.status < 500, "{}", r.text());
    let auth = upstream_auth(&s);
    assert_eq!(auth.len(), 1);
    assert!(
        auth[0].starts_with("Bearer up.alice.https---api-test."),
        "{auth:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// A real peer: the PyPI `mcp` clients (`make peers`; needs `make peers-deps`).

/// tests/peers/mcp_client.py as `token`'s holder: the handshake, `tools/list`, one `echo`.
fn python_client(venv: &str, url: &str, token: &str) -> Value {
    let args = [
        "--header".to_owned(),
        format!("Authorization:Bearer {token}"),
        "--call".to_owned(),
        "echo".to_owned(),
        r#"{"text":"as me"}"#.to_owned(),
    ];
    pypi_client::summary(venv, url, &args)
}

#[test]
fn pypi_mcp_clients_as_two_users_reach_the_server_with_their_own_exchanged_tokens() {
    let s = TestServer::start(ServerOptions::json()).unwrap();
    let idp = TokenEndpoint::start().unwrap();
    let e = envoy(&s, &idp, json!({}));
    // One token per user for both clients (a new caller token is a new cache key).
    let tokens = [("alice", token("alice")), ("bob", token("bob"))];
    for venv in [".venv-mcp1", ".venv-mcp2"] {
        assert!(
            python(venv).is_file(),
            "{venv} missing: run make peers-deps"
        );
        for (user, t) in &tokens {
            let before = s.record().len();
            let summary = python_client(venv, &e.url("/mcp"), t);
            assert_eq!(summary["error"], Value::Null, "{venv} {user}: {summary:#}");
            let calls = summary["calls"].as_array().unwrap();
            assert_eq!(calls[0]["error"], Value::Null, "{venv} {user}: {summary:#}");
            assert_eq!(
                calls[0]["text"],
                json!(["as me"]),
                "{venv} {user}: {summary:#}"
            );
            let record = s.record();
            let session = &record[before..];
            assert!(session.len() >= 3, "handshake, list, call: {session:?}");
            for r in session {
                let auth = r.header("authorization").unwrap_or("");
                assert!(
                    auth.starts_with(&format!("Bearer up.{user}.https---api-test.")),
                    "{venv} {user}: {} {:?} got {auth:?}",
                    r.method,
                    r.rpc_method
                );
            }
        }
    }
    // One exchange per user: every later request of both clients' sessions was cached.
    let subs: Vec<String> = idp.requests().into_iter().map(|r| r.sub).collect();
    assert_eq!(subs, ["alice", "bob"], "{subs:?}");
}
