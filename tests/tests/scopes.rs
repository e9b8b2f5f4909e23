//! `mcp_scopes` through the real Envoy (`envoy/mcp_scopes.yaml`): tokens minted here with keys
//! generated per run (RS256, ES256, EdDSA), JWKS served by a local HTTP server behind the `jwks`
//! cluster, every rejection, alg `none` and alg confusion, step-up, the metadata documents, tool
//! hiding and key rotation. Every refusal is checked against the test server's record.
// Test helpers outside #[test] fns are not covered by clippy.toml's in-test allowances.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use jwt_simple::prelude::*;
use mcp_integration::client::{self, ACCEPT_BOTH};
use mcp_integration::scopes_support::{
    config, forged, jwks_of, remote_jwks, Issuer, JwksServer, Signer, ISSUER, METADATA_URL,
    RESOURCE,
};
use mcp_integration::{Envoy, EnvoyConfig, ServerOptions, TestServer};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration as StdDuration, Instant};

const CALL_ECHO: &str = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#;
const CALL_DELETE: &str = r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"delete_repo","arguments":{"repo":"r"}}}"#;

fn server() -> TestServer {
    TestServer::start(ServerOptions::json().require_session(false)).unwrap()
}

/// Envoy with `mcp_scopes` configured by `json`, upstream `s`, JWKS at `jwks`, and an access log
/// of the published filter state in `log`.
fn envoy(s: &TestServer, jwks: &JwksServer, json: &str, log: Option<&Path>) -> Envoy {
    let mut cfg = EnvoyConfig::load("mcp_scopes.yaml")
        .unwrap()
        .upstream("mcp_upstream", s.addr())
        .upstream("jwks", jwks.addr())
        .plugin_config("mcp_scopes", json);
    if let Some(path) = log {
        cfg = cfg
            .file_access_log(
                path,
                r#"
text_format_source:
  inline_string: "%FILTER_STATE(wasm.mcp.auth.sub:PLAIN)%|%FILTER_STATE(wasm.mcp.auth.scopes:PLAIN)%|%FILTER_STATE(wasm.mcp.auth.claims:PLAIN)%|%RESPONSE_CODE_DETAILS%\n"
"#,
            )
            .unwrap();
    }
    Envoy::start(cfg).unwrap()
}

fn inline(issuer: &Issuer) -> Value {
    json!({ "inline": issuer.jwks() })
}

fn post(e: &Envoy, body: &str, token: Option<&str>) -> client::Resp {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("content-type", "application/json"),
        ("accept", ACCEPT_BOTH),
    ];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    client::request("POST", &e.url("/mcp"), &headers, Some(body.as_bytes())).unwrap()
}

/// Polls until the remote JWKS is loaded (the first fetch happens on the first timer tick).
fn wait_for_keys(e: &Envoy, token: &str) {
    let deadline = Instant::now() + StdDuration::from_secs(15);
    loop {
        let r = post(
            e,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            Some(token),
        );
        if r.status != 503 {
            assert_eq!(r.status, 200, "{}", r.text());
            return;
        }
        assert!(Instant::now() < deadline, "JWKS never loaded: {}", e.log());
        std::thread::sleep(StdDuration::from_millis(200));
    }
}

fn www(r: &client::Resp) -> String {
    r.header("www-authenticate").unwrap_or("").to_string()
}

/// The TypeScript client's extraction rule: `name="value"` after a leading `Bearer `.
fn param(h: &str, name: &str) -> Option<String> {
    assert!(h.starts_with("Bearer "), "{h}");
    let key = format!("{name}=\"");
    let at = h.find(&key)?;
    let rest = &h[at + key.len()..];
    Some(rest[..rest.find('"')?].to_string())
}

#[test]
fn metadata_documents_are_served_without_a_token_at_both_well_known_paths() {
    let (s, issuer) = (server(), Issuer::shared().unwrap());
    let jwks = JwksServer::start(&issuer.jwks()).unwrap();
    let e = envoy(&s, &jwks, &config(inline(issuer), json!({})), None);
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let r = client::get(&e.url(path), &[]).unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.content_type(), Some("application/json"));
        assert_eq!(
            r.json().unwrap(),
            json!({
                "resource": RESOURCE,
                "authorization_servers": [ISSUER],
                "scopes_supported": ["mcp:tools"],
                "bearer_methods_supported": ["header"]
            })
        );
    }
    let r = client::get(&e.url("/.well-known/oauth-protected-resource/other"), &[]).unwrap();
    assert_eq!(r.status, 401, "other paths are protected");
    assert!(s.record().is_empty(), "nothing reached the server");
    assert_eq!(e.stat("wasmcustom.mcp_scopes.metadata_served"), Some(2));
}

#[test]
fn requests_without_a_token_get_401_pointing_at_the_metadata() {
    let (s, issuer) = (server(), Issuer::shared().unwrap());
    let jwks = JwksServer::start(&issuer.jwks()).unwrap();
    let e = envoy(&s, &jwks, &config(inline(issuer), json!({})), None);
    let expected = format!("Bearer resource_metadata=\"{METADATA_URL}\", scope=\"mcp:tools\"");
    let r = post(&e, CALL_ECHO, None);
    assert_eq!(r.status, 401);
    assert_eq!(www(&r), expected);
    let v = r.json().unwrap();
    assert_eq!(v["jsonrpc"], "2.0");
    assert_eq!(v["error"]["code"], -32001);
    // Every request needs the token: notifications, the GET listen stream, DELETE, other schemes.
    let r = post(
        &e,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        None,
    );
    assert_eq!((r.status, www(&r)), (401, expected.clone()));
    for method in ["GET", "DELETE"] {
        let r = client::request(method, &e.url("/mcp"), &[("accept", ACCEPT_BOTH)], None).unwrap();
        assert_eq!((r.status, www(&r)), (401, expected.clone()), "{method}");
    }
    let r = client::request(
        "POST",
        &e.url("/mcp"),
        &[
            ("content-type", "application/json"),
            ("authorization", "Basic dXNlcjpwYXNz"),
        ],
        Some(CALL_ECHO.as_bytes()),
    )
    .unwrap();
    assert_eq!((r.status, www(&r)), (401, expected));
    assert!(s.record().is_empty(), "nothing reached the server");
    assert_eq!(e.stat("wasmcustom.mcp_scopes.no_token"), Some(5));
}

#[test]
fn rs256_es256_and_eddsa_tokens_from_a_remote_jwks_are_accepted_and_published() {
    let (s, issuer) = (server(), Issuer::shared().unwrap());
    let jwks = JwksServer::start(&issuer.jwks()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let cfg = config(
        remote_jwks(),
        json!({"strip_authorization": true, "publish_claims": ["tenant"]}),
    );
    let e = envoy(&s, &jwks, &cfg, Some(&log));
    wait_for_keys(&e, &issuer.token("alice", "mcp:tools"));
    assert!(jwks.hits() >= 1);
    for signer in [Signer::Rs256, Signer::Es256, Signer::EdDsa] {
        let mut claims = issuer.claims("alice", "mcp:tools files:read");
        claims.custom.tenant = Some("t-1".into());
        let t = issuer.sign(signer, claims).unwrap();
        let r = post(&e, CALL_ECHO, Some(&t));
        assert_eq!(r.status, 200, "{signer:?}: {}", r.text());
        assert_eq!(r.json().unwrap()["id"], 5);
    }
    assert_eq!(s.tool_calls(), vec!["echo"; 3]);
    for rec in s.record() {
        assert_eq!(rec.header("authorization"), None, "strip_authorization");
    }
    // scp (array) is read as well as scope.
    let mut claims = issuer.claims("bob", "");
    claims.custom.scope = None;
    claims.custom.scp = Some(json!(["mcp:tools"]));
    let r = post(
        &e,
        CALL_ECHO,
        Some(&issuer.sign(Signer::EdDsa, claims).unwrap()),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    // Envoy flushes file access logs about every second.
    let deadline = Instant::now() + StdDuration::from_secs(10);
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.contains("files:read")) {
            break l.to_string();
        }
        assert!(Instant::now() < deadline, "no access log line: {text}");
        std::thread::sleep(StdDuration::from_millis(200));
    };
    let parts: Vec<&str> = line.splitn(4, '|').collect();
    assert_eq!(parts[0], "alice");
    assert_eq!(parts[1], "mcp:tools files:read");
    let claims: Value = serde_json::from_str(parts[2]).unwrap();
    assert_eq!(
        claims,
        json!({"sub":"alice","iss":ISSUER,"scope":"mcp:tools files:read","tenant":"t-1"})
    );
}

#[test]
fn every_invalid_token_gets_401_invalid_token_and_never_reaches_the_server() {
    let (s, issuer) = (server(), Issuer::shared().unwrap());
    let jwks = JwksServer::start(&issuer.jwks()).unwrap();
    let e = envoy(&s, &jwks, &config(inline(issuer), json!({})), None);
    let now = Clock::now_since_epoch().as_secs();
    let sign = |c: JWTClaims<_>| issuer.sign(Signer::Rs256, c).unwrap();

    let mut expired = issuer.claims("a", "mcp:tools");
    expired.expires_at = Some(UnixTimeStamp::from_secs(now - 3600));
    expired.issued_at = Some(UnixTimeStamp::from_secs(now - 7200));
    let mut future = issuer.claims("a", "mcp:tools");
    future.invalid_before = Some(UnixTimeStamp::from_secs(now + 3600));
    let wrong_iss = issuer
        .claims("a", "mcp:tools")
        .with_issuer("https://evil.test");
    let wrong_aud = issuer
        .claims("a", "mcp:tools")
        .with_audience("https://other.test/mcp");
    let mut no_exp = issuer.claims("a", "mcp:tools");
    no_exp.expires_at = None;
    let other_key = RS256KeyPair::generate(2048).unwrap().with_key_id("rsa-1");
    let bad_sig = other_key.sign(issuer.claims("a", "mcp:tools")).unwrap();
    let payload = json!({"iss": ISSUER, "aud": RESOURCE, "sub": "a", "scope": "mcp:tools repo:admin",
                         "exp": now + 3600});
    let alg_none = forged(&json!({"alg": "none", "typ": "JWT"}), &payload, b"");
    let alg_none = format!("{}.", alg_none.trim_end_matches('.'));
    let alg_none_sig = forged(&json!({"alg": "none", "kid": "rsa-1"}), &payload, b"x");
    // Alg confusion: HS256 "signed" with the RSA public key (PEM and DER) as the HMAC secret.
    let pem = issuer.rsa.public_key().to_pem().unwrap();
    let der = issuer.rsa.public_key().to_der().unwrap();
    let hs_claims = || issuer.claims("a", "mcp:tools repo:admin");
    let confused_pem = HS256Key::from_bytes(pem.as_bytes())
        .with_key_id("rsa-1")
        .authenticate(hs_claims())
        .unwrap();
    let confused_der = HS256Key::from_bytes(&der)
        .authenticate(hs_claims())
        .unwrap();
    let rs384 = RS384KeyPair::from_pem(&issuer.rsa.to_pem().unwrap())
        .unwrap()
        .with_key_id("rsa-1")
        .sign(issuer.claims("a", "mcp:tools"))
        .unwrap();

    let cases: Vec<(&str, String)> = vec![
        ("expired", sign(expired)),
        ("not yet valid", sign(future)),
        ("wrong issuer", sign(wrong_iss)),
        ("wrong audience", sign(wrong_aud)),
        ("no exp", sign(no_exp)),
        ("bad signature", bad_sig),
        ("alg none", alg_none),
        ("alg none with signature", alg_none_sig),
        ("HS256 with the RSA PEM", confused_pem),
        ("HS256 with the RSA DER", confused_der),
        ("RS384 not allowed", rs384),
        ("garbage", "not-a-jwt".to_string()),
        ("two parts", "eyJhbGciOiJSUzI1NiJ9.e30".to_string()),
    ];
    for (what, t) in &cases {
        let r = post(&e, CALL_ECHO, Some(t));
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        let h = www(&r);
        assert_eq!(
            param(&h, "error").as_deref(),
            Some("invalid_token"),
            "{what}: {h}"
        );
        assert_eq!(
            param(&h, "resource_metadata").as_deref(),
            Some(METADATA_URL)
        );
        assert_eq!(h.matches("Bearer").count(), 1);
    }
    assert!(s.record().is_empty(), "nothing reached the server");
    assert_eq!(e.stat("wasmcustom.mcp_scopes.expired"), Some(1));
    assert_eq!(
        e.stat("wasmcustom.mcp_scopes.invalid"),
        Some(cases.len() as u64 - 1)
    );
    assert_eq!(e.stat("wasmcustom.mcp_scopes.allowed"), Some(0));
}

#[test]
fn missing_scopes_get_403_naming_every_scope_the_operation_needs() {
    let (s, issuer) = (server(), Issuer::shared().unwrap());
    let jwks = JwksServer::start(&issuer.jwks()).unwrap();
    let e = envoy(&s, &jwks, &config(inline(issuer), json!({})), None);
    let basic = issuer.token("alice", "mcp:tools");
    let r = post(&e, CALL_DELETE, Some(&basic));
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        www(&r),
        format!(
            "Bearer error=\"insufficient_scope\", scope=\"repo:admin mcp:tools\", resource_metadata=\"{METADATA_URL}\""
        )
    );
    let v = r.json().unwrap();
    assert_eq!(v["id"], 6, "the request id is echoed");
    // A token with no scope cannot call echo either, and resources/read needs files:read.
    let r = post(&e, CALL_ECHO, Some(&issuer.token("alice", "")));
    assert_eq!(param(&www(&r), "scope").as_deref(), Some("mcp:tools"));
    let read = r#"{"jsonrpc":"2.0","id":8,"method":"resources/read","params":{"uri":"file:///x"}}"#;
    let r = post(&e, read, Some(&basic));
    assert_eq!(
        (r.status, param(&www(&r), "scope")),
        (403, Some("files:read".into()))
    );
    assert!(
        s.record().is_empty(),
        "refused calls never reach the server"
    );

    // Lifecycle and listing need only a valid token; step-up succeeds.
    let r = post(
        &e,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        Some(&issuer.token("alice", "")),
    );
    assert_eq!(r.status, 200);
    let admin = issuer.token("alice", "mcp:tools repo:admin");
    let r = post(&e, CALL_DELETE, Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.tool_calls(), vec!["delete_repo"]);
    assert_eq!(e.stat("wasmcustom.mcp_scopes.insufficient_scope"), Some(3));
}

#[test]
fn methods_no_rule_names_are_refused_without_a_step_up_challenge() {
    let (s, issuer) = (server(), Issuer::shared().unwrap());
    let jwks = JwksServer::start(&issuer.jwks()).unwrap();
    let e = envoy(&s, &jwks, &config(inline(issuer), json!({})), None);
    let t = issuer.token("alice", "mcp:tools repo:admin files:read");
    let r = post(
        &e,
        r#"{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"p"}}"#,
        Some(&t),
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.header("www-authenticate"), None);
    assert_eq!(
        r.json().unwrap()["error"]["data"]["reason"],
        "not_permitted"
    );
    assert!(s.record().is_empty());
    assert_eq!(e.stat("wasmcustom.mcp_scopes.not_permitted"), Some(1));
}

#[test]
fn unauthorized_tools_are_hidden_from_json_and_sse_tool_lists() {
    let (s, issuer) = (server(), Issuer::shared().unwrap());
    let jwks = JwksServer::start(&issuer.jwks()).unwrap();
    let e = envoy(
        &s,
        &jwks,
        &config(inline(issuer), json!({"hide_unauthorized_tools": true})),
        None,
    );
    let t = issuer.token("alice", "mcp:tools");
    let list = r#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#;
    for mode in ["json", "sse"] {
        let r = client::request(
            "POST",
            &e.url("/mcp"),
            &[
                ("content-type", "application/json"),
                ("accept", ACCEPT_BOTH),
                ("authorization", &format!("Bearer {t}")),
                ("x-test-response", mode),
            ],
            Some(list.as_bytes()),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{mode}");
        let msgs = r.messages().unwrap();
        let res = client::find_response(&msgs, 4).unwrap();
        let names: Vec<&str> = res["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"echo"), "{mode}: {names:?}");
        assert!(
            !names.iter().any(|n| n.starts_with("delete_")),
            "{mode}: {names:?}"
        );
    }
    // An admin sees everything.
    let admin = issuer.token("root", "mcp:tools repo:admin");
    let r = post(&e, list, Some(&admin));
    let v = r.json().unwrap();
    let all: Vec<&str> = v["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(all.contains(&"delete_repo"), "{all:?}");
    assert!(e.stat("wasmcustom.mcp_scopes.tools_hidden").unwrap_or(0) >= 2);
}

#[test]
fn rotated_keys_are_fetched_on_an_unknown_kid() {
    let (s, issuer) = (server(), Issuer::shared().unwrap());
    let jwks = JwksServer::start(&jwks_of(&[issuer.rsa.public_key().to_jwk()])).unwrap();
    let e = envoy(&s, &jwks, &config(remote_jwks(), json!({})), None);
    wait_for_keys(&e, &issuer.token("alice", "mcp:tools"));
    let hits = jwks.hits();

    // The issuer rotates in its EdDSA key; the filter has never seen kid ed-1.
    let t = issuer
        .sign(Signer::EdDsa, issuer.claims("alice", "mcp:tools"))
        .unwrap();
    jwks.set(200, &issuer.jwks());
    // The request waits for the refresh its unknown kid triggers instead of failing.
    let started = Instant::now();
    let r = post(&e, CALL_ECHO, Some(&t));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        started.elapsed() < StdDuration::from_secs(5),
        "held for {:?}",
        started.elapsed()
    );
    assert_eq!(e.stat("wasmcustom.mcp_scopes.held_for_refresh"), Some(1));
    assert!(jwks.hits() > hits, "an on-demand fetch happened");
    assert_eq!(s.tool_calls(), vec!["echo"]);

    // A kid that stays unknown after the refresh is an invalid token (rate-limited refresh).
    let stranger = Ed25519KeyPair::generate().with_key_id("ed-2");
    let t = stranger
        .sign(issuer.claims("mallory", "mcp:tools"))
        .unwrap();
    let r = post(&e, CALL_ECHO, Some(&t));
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(param(&www(&r), "error").as_deref(), Some("invalid_token"));
}

#[test]
fn an_unreachable_jwks_fails_closed_with_503() {
    let (s, issuer) = (server(), Issuer::shared().unwrap());
    let jwks = JwksServer::start("{\"keys\":[]}").unwrap();
    jwks.set(500, "oops");
    let e = envoy(&s, &jwks, &config(remote_jwks(), json!({})), None);
    std::thread::sleep(StdDuration::from_millis(1500));
    let r = post(&e, CALL_ECHO, Some(&issuer.token("alice", "mcp:tools")));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("www-authenticate"), None);
    assert_eq!(
        r.json().unwrap()["error"]["data"]["reason"],
        "jwks_unavailable"
    );
    assert!(s.record().is_empty());
    assert!(
        e.stat("wasmcustom.mcp_scopes.jwks_fetch_failures")
            .unwrap_or(0)
            >= 1
    );
    assert_eq!(e.stat("wasmcustom.mcp_scopes.jwks_unavailable"), Some(1));
    // Once the JWKS is served, requests go through without restarting anything.
    jwks.set(200, &issuer.jwks());
    wait_for_keys(&e, &issuer.token("alice", "mcp:tools"));
}

/// `"jwt_authn": {"metadata_key": ...}`: Envoy's own jwt_authn verifies (as Istio
/// RequestAuthentication does) and mcp_scopes trusts its payload: scopes from a `scope` string or
/// an `scp` array, the same 401/403 challenges, and refusals that never reach the server.
#[test]
fn a_jwt_authn_payload_is_trusted_with_scope_strings_and_scp_arrays() {
    use mcp_integration::jwt_authn;
    let s = server();
    let mut c: Value = serde_json::from_str(&config(json!({"inline": "{}"}), json!({}))).unwrap();
    let obj = c.as_object_mut().unwrap();
    obj.remove("jwt");
    obj.insert(
        "jwt_authn".into(),
        json!({"metadata_key": jwt_authn::METADATA_KEY}),
    );
    let cfg = EnvoyConfig::load("mcp_scopes.yaml")
        .unwrap()
        .upstream("mcp_upstream", s.addr())
        .plugin_config("mcp_scopes", &c.to_string());
    let e = Envoy::start(jwt_authn::in_front(cfg)).unwrap();

    // jwt_authn lets a request without a token through (allow_missing); mcp_scopes challenges it.
    let r = post(&e, CALL_ECHO, None);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        param(&www(&r), "resource_metadata").as_deref(),
        Some(METADATA_URL)
    );

    // An `scp` array holding the needed scope.
    let scp = jwt_authn::token(json!({"sub": "carol", "scp": ["mcp:tools", "files:read"]}));
    let r = post(&e, CALL_ECHO, Some(&scp));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post(&e, CALL_DELETE, Some(&scp));
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        param(&www(&r), "error").as_deref(),
        Some("insufficient_scope")
    );
    assert_eq!(
        param(&www(&r), "scope").as_deref(),
        Some("repo:admin mcp:tools")
    );

    // A `scope` string with the admin scope.
    let admin = jwt_authn::token(json!({"sub": "dave", "scope": "mcp:tools repo:admin"}));
    let r = post(&e, CALL_DELETE, Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text());

    // A forged token is refused by jwt_authn itself.
    let forged = jwt_authn::forge(
        &admin,
        json!({"sub": "eve", "scope": "repo:admin mcp:tools"}),
    );
    assert_eq!(post(&e, CALL_DELETE, Some(&forged)).status, 401);

    assert_eq!(
        s.tool_calls(),
        vec!["echo", "delete_repo"],
        "only allowed calls arrived"
    );
}

#[test]
fn a_request_held_for_a_refresh_that_fails_gets_the_503() {
    let (s, issuer) = (server(), Issuer::shared().unwrap());
    let jwks = JwksServer::start(&jwks_of(&[issuer.rsa.public_key().to_jwk()])).unwrap();
    let e = envoy(&s, &jwks, &config(remote_jwks(), json!({})), None);
    wait_for_keys(&e, &issuer.token("alice", "mcp:tools"));

    // A new kid while the IdP is down: the refresh fails, so the key is unavailable (503, not
    // an invalid token), and nothing reaches the server.
    jwks.set(500, "{}");
    let t = issuer
        .sign(Signer::EdDsa, issuer.claims("alice", "mcp:tools"))
        .unwrap();
    let r = post(&e, CALL_ECHO, Some(&t));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(e.stat("wasmcustom.mcp_scopes.held_for_refresh"), Some(1));
    assert!(
        e.stat("wasmcustom.mcp_scopes.jwks_fetch_failures")
            .unwrap_or(0)
            >= 1
    );
    assert!(s.tool_calls().is_empty());
}
