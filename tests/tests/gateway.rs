//! What Envoy itself does for MCP traffic in the shipped `envoy/mcp-gateway.yaml`, through the
//! real Envoy: TLS with HTTP/1.1 and HTTP/2 (curl as the client), session affinity across two
//! replicas (envelope stateful session, strict), per-tool routing on the `x-mcp-tool` header
//! mcp_telemetry sets, a per-tool rate limit answered as a JSON-RPC error (also through the
//! PyPI `mcp` clients), and upstream credential injection with the client's token stripped.
//! Every test renders the shipped file, changed only in ports, endpoints and test secrets.

// Helpers fail the test by panicking; clippy's allow-*-in-tests covers only `#[test]` fns.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use base64::Engine as _;
use jwt_simple::prelude::{Claims, ECDSAP256KeyPairLike as _, ES256KeyPair};
use mcp_integration::client::{self, Curl, HttpVersion, Session, Stateless, ACCEPT_BOTH};
use mcp_integration::pypi_client::{self, python};
use mcp_integration::scopes_support::{self, Extra};
use mcp_integration::server::Recorded;
use mcp_integration::telemetry_support::{access_log, access_log_for};
use mcp_integration::{paths, Envoy, EnvoyConfig, ServerOptions, TestServer};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const GATEWAY: &str = "mcp-gateway.yaml";
/// Nothing listens here: span export fails quietly instead of reaching a stray collector.
const NO_ZIPKIN: &str = "127.0.0.1:1";

/// The shipped gateway with `replicas` behind `mcp_upstream` and `deploy` behind `mcp_deploy`.
fn gateway(replicas: &[SocketAddr], deploy: SocketAddr) -> EnvoyConfig {
    EnvoyConfig::load(GATEWAY)
        .unwrap()
        .upstreams("mcp_upstream", replicas)
        .upstream("mcp_deploy", deploy)
        .upstream("zipkin", NO_ZIPKIN.parse().unwrap())
}

/// A backend for a single tool: no sessions (it never saw the initialize).
fn sessionless() -> TestServer {
    TestServer::start(ServerOptions::json().require_session(false)).unwrap()
}

fn text_of(resp: &Value) -> &str {
    resp["result"]["content"][0]["text"].as_str().unwrap()
}

/// The server-side session id hidden in an envelope value `base64(host);UV:base64(id)`, and the
/// host it names.
fn unwrap_envelope(client_value: &str) -> (String, String) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let (host, rest) = client_value
        .split_once(';')
        .unwrap_or_else(|| panic!("not an envelope: {client_value}"));
    let id = rest.strip_prefix("UV:").unwrap();
    (
        String::from_utf8(b64.decode(host).unwrap()).unwrap(),
        String::from_utf8(b64.decode(id).unwrap()).unwrap(),
    )
}

/// The requests a server received carrying session id `sid`.
fn of_session(server: &TestServer, sid: &str) -> Vec<Recorded> {
    server
        .record()
        .into_iter()
        .filter(|r| r.header("mcp-session-id") == Some(sid))
        .collect()
}

fn initializes(server: &TestServer) -> usize {
    server.received("initialize")
}

// ---------------------------------------------------------------------------------------------
// TLS

fn curl_post(url: &str, v: HttpVersion, body: &Value, extra: &[(&str, &str)]) -> client::CurlResp {
    let ca = paths::dev_ca_cert();
    let mut headers = vec![("accept", ACCEPT_BOTH)];
    headers.extend_from_slice(extra);
    let text = body.to_string();
    Curl {
        method: "POST",
        url,
        headers: &headers,
        body: Some(&text),
        version: v,
        ca: Some(&ca),
    }
    .send()
    .unwrap()
}

#[test]
fn tls_serves_http1_and_http2_with_json_and_sse_and_plaintext_keeps_working() {
    let server = TestServer::start(ServerOptions::sse()).unwrap();
    let deploy = sessionless();
    let envoy = Envoy::start(gateway(&[server.addr()], deploy.addr())).unwrap();
    let tls_port = envoy.listener_port("mcp_tls").unwrap();
    let url = format!("https://localhost:{tls_port}/mcp");

    for (v, expect) in [(HttpVersion::Http1, "1.1"), (HttpVersion::Http2, "2")] {
        let init = curl_post(
            &url,
            v,
            &client::rpc_request(
                1,
                "initialize",
                json!({"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "curl", "version": "1"}}),
            ),
            &[("x-test-response", "json")],
        );
        assert_eq!(
            init.http_version, expect,
            "ALPN picked the asked-for version"
        );
        assert_eq!(init.resp.status, 200, "{}", init.resp.text());
        assert_eq!(init.resp.content_type(), Some("application/json"));
        let sid = init.resp.header("mcp-session-id").unwrap().to_string();
        let session = [
            ("mcp-session-id", sid.as_str()),
            ("mcp-protocol-version", "2025-11-25"),
        ];
        let ack = curl_post(
            &url,
            v,
            &client::rpc_notification("notifications/initialized", json!({})),
            &session,
        );
        assert_eq!(ack.resp.status, 202);

        for mode in ["json", "sse"] {
            let mut h = session.to_vec();
            h.push(("x-test-response", mode));
            let list = curl_post(
                &url,
                v,
                &client::rpc_request(2, "tools/list", json!({})),
                &h,
            );
            assert_eq!(list.http_version, expect);
            assert_eq!(list.resp.status, 200);
            let ct = list.resp.content_type().unwrap().to_string();
            assert!(
                ct.starts_with(if mode == "json" {
                    "application/json"
                } else {
                    "text/event-stream"
                }),
                "{mode}: {ct}"
            );
            let msgs = list.resp.messages().unwrap();
            let tools = msgs[0]["result"]["tools"].as_array().unwrap();
            // mcp_tools' shipped deny list hides admin_reset over TLS as well.
            assert!(tools.iter().any(|t| t["name"] == "echo"));
            assert!(!tools.iter().any(|t| t["name"] == "admin_reset"));

            let call = curl_post(
                &url,
                v,
                &client::rpc_request(
                    3,
                    "tools/call",
                    json!({"name": "echo", "arguments": {"text": format!("over {expect} {mode}")}}),
                ),
                &h,
            );
            let msgs = call.resp.messages().unwrap();
            let resp = client::find_response(&msgs, 3).unwrap();
            assert_eq!(text_of(resp), format!("over {expect} {mode}"));
        }
    }
    assert_eq!(initializes(&server), 2);
    assert_eq!(server.tool_calls(), ["echo"; 4]);

    // The certificate is only trusted through the dev CA.
    let untrusted = Curl {
        method: "GET",
        url: &url,
        headers: &[],
        body: None,
        version: HttpVersion::Http2,
        ca: None,
    }
    .send()
    .unwrap_err()
    .to_string();
    assert!(untrusted.contains("certificate"), "{untrusted}");

    // The plaintext listener (first, as other tests and docker-compose use it) still works.
    let s = Session::initialize(&envoy.url("/mcp")).unwrap();
    assert_eq!(
        text_of(&s.call_tool("echo", json!({"text": "plain"})).unwrap()),
        "plain"
    );
}

// ---------------------------------------------------------------------------------------------
// Session affinity

/// Everything a 2025-era session does: initialize, list, calls (JSON and SSE), the GET stream,
/// DELETE. Returns the client-visible session id.
fn whole_session(url: &str) -> String {
    let s = Session::initialize(url).unwrap();
    let sid = s.session_id.clone().unwrap();
    let (_, list) = s.request("tools/list", json!({}), &[]).unwrap();
    assert_eq!(list.status, 200, "{}", list.text());
    let echo = s
        .call_with(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "a"}}),
            &[("x-test-response", "sse")],
        )
        .unwrap();
    assert_eq!(text_of(&echo), "a");
    let add = s.call_tool("add", json!({"a": 1, "b": 2})).unwrap();
    assert_eq!(add["result"]["structuredContent"]["sum"], 3.0);
    let mut stream = s.listen().unwrap();
    assert_eq!(stream.status, 200);
    let first = stream.next_chunk().unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first.bytes).contains("keepalive"));
    drop(stream);
    let del = s.delete().unwrap();
    assert_eq!(del.status, 200);
    sid
}

#[test]
fn a_whole_session_stays_on_one_replica_and_stateless_requests_balance() {
    let a = TestServer::start(ServerOptions::json()).unwrap();
    let b = TestServer::start(ServerOptions::json()).unwrap();
    let deploy = sessionless();
    let envoy = Envoy::start(gateway(&[a.addr(), b.addr()], deploy.addr())).unwrap();
    let url = envoy.url("/mcp");

    let mut owners = Vec::new();
    for round in 0..2 {
        let before = (initializes(&a), initializes(&b));
        let client_sid = whole_session(&url);
        let (host, server_sid) = unwrap_envelope(&client_sid);
        assert_ne!(client_sid, server_sid, "the client sees the envelope");
        let (owner, other) = if initializes(&a) > before.0 {
            (&a, &b)
        } else {
            (&b, &a)
        };
        assert_eq!(host, owner.addr().to_string(), "envelope names the owner");
        // initialize carries no session id: count it separately.
        assert_eq!(
            (initializes(owner), initializes(other)),
            if std::ptr::eq(owner, &a) {
                (before.0 + 1, before.1)
            } else {
                (before.1 + 1, before.0)
            }
        );
        let on_owner = of_session(owner, &server_sid);
        let methods: Vec<String> = on_owner
            .iter()
            .map(|r| format!("{} {}", r.method, r.rpc_method.clone().unwrap_or_default()))
            .collect();
        assert_eq!(
            methods,
            [
                "POST notifications/initialized",
                "POST tools/list",
                "POST tools/call",
                "POST tools/call",
                "GET ",
                "DELETE "
            ],
            "round {round}: the whole session on one replica, the server's own id restored"
        );
        assert!(of_session(other, &server_sid).is_empty());
        assert!(
            of_session(owner, &client_sid).is_empty() && of_session(other, &client_sid).is_empty()
        );
        owners.push(owner.port());
    }
    // Round robin: the second session's initialize went to the other replica.
    assert_ne!(
        owners[0], owners[1],
        "a new session may land on the other replica"
    );

    // What mcp_telemetry records: the value the client sent (the envelope).
    let s = Session::initialize(&url).unwrap();
    let sid = s.session_id.clone().unwrap();
    let (id, _) = s.request("ping", json!({}), &[]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        if let Some(l) = access_log_for(&envoy, "ping", &id.to_string()) {
            break l;
        }
        assert!(Instant::now() < deadline, "{:#?}", access_log(&envoy));
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(line["mcp.session.id"], sid.as_str());

    // 2026-07-28: no session, so nothing pins a request: round robin over both.
    let (ca, cb) = (a.tool_calls().len(), b.tool_calls().len());
    let st = Stateless::new(&url);
    for i in 0..6 {
        let r = st
            .call(
                "tools/call",
                json!({"name": "echo", "arguments": {"text": format!("s{i}")}}),
            )
            .unwrap();
        assert_eq!(text_of(&r), format!("s{i}"));
    }
    assert_eq!(
        (a.tool_calls().len() - ca, b.tool_calls().len() - cb),
        (3, 3)
    );
}

fn unhealthy(envoy: &Envoy, addr: SocketAddr) -> bool {
    let clusters = envoy.admin("/clusters").unwrap_or_default();
    clusters.lines().any(|l| {
        l.starts_with(&format!("mcp_upstream::{addr}::health_flags::"))
            && l.contains("failed_active_hc")
    })
}

#[test]
fn a_replica_that_goes_away_answers_404_and_the_client_starts_over_on_the_other() {
    let a = TestServer::start(ServerOptions::json()).unwrap();
    let mut b = Some(TestServer::start(ServerOptions::json()).unwrap());
    let b_addr = b.as_ref().unwrap().addr();
    let deploy = sessionless();
    // Faster health checks than shipped (5 s x 2) so the test need not wait 10 s.
    let cfg = gateway(&[a.addr(), b_addr], deploy.addr()).modify(|d| {
        let c = d["static_resources"]["clusters"]
            .as_sequence_mut()
            .unwrap()
            .iter_mut()
            .find(|c| c["name"] == "mcp_upstream")
            .unwrap();
        c["health_checks"][0]["interval"] = "0.3s".into();
        c["health_checks"][0]["no_traffic_interval"] = "0.3s".into();
        c["health_checks"][0]["unhealthy_threshold"] = 1.into();
    });
    let envoy = Envoy::start(cfg).unwrap();
    let url = envoy.url("/mcp");

    // Open sessions until one lives on b.
    let on_b = (0..4)
        .map(|_| Session::initialize(&url).unwrap())
        .find(|s| unwrap_envelope(s.session_id.as_deref().unwrap()).0 == b_addr.to_string())
        .expect("round robin puts a session on b");
    let server_sid = unwrap_envelope(on_b.session_id.as_deref().unwrap()).1;
    assert_eq!(
        text_of(&on_b.call_tool("echo", json!({"text": "x"})).unwrap()),
        "x"
    );
    let a_calls = a.tool_calls().len();

    drop(b.take()); // the replica goes away

    // At once (connection refused) and after the health check noticed (no healthy host): the
    // spec's 404 for an unknown session, as JSON-RPC, never another replica.
    for phase in ["refused", "unhealthy"] {
        if phase == "unhealthy" {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !unhealthy(&envoy, b_addr) {
                assert!(
                    Instant::now() < deadline,
                    "b never marked unhealthy: {}",
                    envoy.admin("/clusters").unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let (_, resp) = on_b
            .request(
                "tools/call",
                json!({"name": "echo", "arguments": {"text": "y"}}),
                &[],
            )
            .unwrap();
        assert_eq!(resp.status, 404, "{phase}: {}", resp.text());
        assert_eq!(resp.content_type(), Some("application/json"));
        let body = resp.json().unwrap();
        assert_eq!(body["error"]["code"], -32001, "{phase}: {body}");
        assert_eq!(body["id"], Value::Null);
        let stream = on_b.listen().unwrap();
        assert_eq!(stream.status, 404, "{phase}: the GET stream too");
    }
    assert_eq!(a.tool_calls().len(), a_calls, "nothing switched to a");
    assert!(of_session(&a, &server_sid).is_empty());

    // The client starts a new session, which lands on the live replica.
    let fresh = Session::initialize(&url).unwrap();
    assert_eq!(
        unwrap_envelope(fresh.session_id.as_deref().unwrap()).0,
        a.addr().to_string()
    );
    assert_eq!(
        text_of(&fresh.call_tool("echo", json!({"text": "again"})).unwrap()),
        "again"
    );
}

// ---------------------------------------------------------------------------------------------
// Per-tool routing and rate limit

#[test]
fn deploy_service_calls_go_to_their_own_backend() {
    let main = TestServer::start(ServerOptions::sse()).unwrap();
    let deploy = sessionless();
    let envoy = Envoy::start(gateway(&[main.addr()], deploy.addr())).unwrap();
    let s = Session::initialize(&envoy.url("/mcp")).unwrap();

    let d = s
        .call_tool("deploy_service", json!({"service": "api"}))
        .unwrap();
    assert_eq!(text_of(&d), "Deployed service api");
    let e = s.call_tool("echo", json!({"text": "main"})).unwrap();
    assert_eq!(text_of(&e), "main");
    // A client cannot pick the route: its own x-mcp-tool is removed before routing.
    let forged = s
        .call_with(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "forged"}}),
            &[("x-mcp-tool", "deploy_service")],
        )
        .unwrap();
    assert_eq!(text_of(&forged), "forged");
    // Stateless requests route the same way.
    let st = Stateless::new(&envoy.url("/mcp"));
    let d2 = st
        .call(
            "tools/call",
            json!({"name": "deploy_service", "arguments": {"service": "web"}}),
        )
        .unwrap();
    assert_eq!(text_of(&d2), "Deployed service web");

    assert_eq!(deploy.tool_calls(), ["deploy_service", "deploy_service"]);
    assert_eq!(main.tool_calls(), ["echo", "echo"]);
    assert_eq!(deploy.received("initialize"), 0);
    assert!(deploy
        .record()
        .iter()
        .all(|r| r.header("x-mcp-tool") == Some("deploy_service")));
    // The session's non-tool traffic stays on the main server.
    assert_eq!(main.received("initialize"), 1);

    // The tool's backend failing is that call's failure, not a lost session (no 404).
    drop(deploy);
    let (_, down) = s
        .request(
            "tools/call",
            json!({"name": "deploy_service", "arguments": {"service": "x"}}),
            &[],
        )
        .unwrap();
    assert_eq!(down.status, 503, "{}", down.text());
    assert_eq!(
        text_of(&s.call_tool("echo", json!({"text": "alive"})).unwrap()),
        "alive"
    );
}

/// POSTs a tools/call of `tool` with a raw JSON id text.
fn call_with_raw_id(s: &Session, id_json: &str, tool: &str) -> client::Resp {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":{id_json},"method":"tools/call","params":{{"name":"{tool}","arguments":{{"service":"svc"}}}}}}"#
    );
    let sid = s.session_id.clone().unwrap();
    client::post(
        &s.url,
        &body,
        &[
            ("mcp-session-id", sid.as_str()),
            ("mcp-protocol-version", s.protocol_version.as_str()),
        ],
    )
    .unwrap()
}

#[test]
fn over_the_tool_rate_limit_the_client_gets_a_json_rpc_error_with_its_id() {
    let main = TestServer::start(ServerOptions::json()).unwrap();
    let deploy = sessionless();
    let envoy = Envoy::start(gateway(&[main.addr()], deploy.addr())).unwrap();
    let s = Session::initialize(&envoy.url("/mcp")).unwrap();

    for i in 0..3 {
        let ok = call_with_raw_id(&s, &format!("{}", 100 + i), "deploy_service");
        assert_eq!(ok.status, 200);
        assert!(ok.json().unwrap().get("result").is_some(), "{}", ok.text());
    }
    // The id is echoed as the client wrote it: a number's text, a string with escapes.
    for id in ["7e2", r#""call-\"4\"-é""#] {
        let limited = call_with_raw_id(&s, id, "deploy_service");
        assert_eq!(limited.status, 200, "{}", limited.text());
        assert_eq!(limited.content_type(), Some("application/json"));
        let body = limited.json().unwrap();
        let expected_id: Value = serde_json::from_str(id).unwrap();
        assert_eq!(body["jsonrpc"], "2.0");
        assert_eq!(body["id"], expected_id, "{body}");
        assert_eq!(body["error"]["code"], -32000);
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Rate limit"));
        assert!(body.get("result").is_none());
    }
    assert_eq!(
        deploy.tool_calls().len(),
        3,
        "refused calls never left Envoy"
    );
    // Other tools are unaffected.
    for i in 0..5 {
        let r = s
            .call_tool("echo", json!({"text": format!("e{i}")}))
            .unwrap();
        assert_eq!(text_of(&r), format!("e{i}"));
    }
    // The access log still says what happened, and mcp_telemetry read the JSON-RPC error.
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        if let Some(l) = access_log_for(&envoy, "tools/call", "7e2") {
            break l;
        }
        assert!(Instant::now() < deadline, "{:#?}", access_log(&envoy));
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(line["details"], "local_rate_limited");
    assert_eq!(line["status"], 200);
    assert_eq!(line["gen_ai.tool.name"], "deploy_service");
    assert_eq!(line["error.type"], "-32000");
}

/// Runs tests/peers/mcp_client.py (4 deploy_service calls, then echo) and returns its summary.
fn python_client(venv: &str, url: &str) -> Value {
    let mut args = Vec::new();
    for i in 0..4 {
        args.extend([
            "--call".to_owned(),
            "deploy_service".to_owned(),
            json!({"service": format!("s{i}")}).to_string(),
        ]);
    }
    args.extend(["--call", "echo", r#"{"text":"still here"}"#].map(str::to_owned));
    pypi_client::summary(venv, url, &args)
}

#[test]
fn pypi_mcp_clients_surface_the_rate_limit_as_one_failed_call() {
    let main = TestServer::start(ServerOptions::sse()).unwrap();
    let deploy = sessionless();
    for venv in [".venv-mcp1", ".venv-mcp2"] {
        assert!(
            python(venv).is_file(),
            "{venv} missing: run make peers-deps"
        );
        // A fresh Envoy (fresh bucket) per client.
        let envoy = Envoy::start(gateway(&[main.addr()], deploy.addr())).unwrap();
        let summary = python_client(venv, &envoy.url("/mcp"));
        assert_eq!(summary["error"], Value::Null, "{venv}: {summary:#}");
        let calls = summary["calls"].as_array().unwrap();
        assert_eq!(calls.len(), 5, "{venv}: {summary:#}");
        for c in &calls[..3] {
            assert_eq!(c["error"], Value::Null, "{venv}: {c}");
        }
        assert_eq!(calls[3]["error"]["code"], -32000, "{venv}: {summary:#}");
        assert!(calls[3]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Rate limit"));
        assert_eq!(
            calls[4]["text"],
            json!(["still here"]),
            "{venv}: the session goes on"
        );
    }

    // Why 200 and not 429: the 1.x client raises on a 429 and loses the whole session.
    let envoy = Envoy::start(gateway(&[main.addr()], deploy.addr()).modify(|d| {
        let hcm = &mut d["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            ["typed_config"];
        hcm["local_reply_config"]["mappers"][0]["status_code"] = 429.into();
    }))
    .unwrap();
    let summary = python_client(".venv-mcp1", &envoy.url("/mcp"));
    let calls = summary["calls"].as_array().unwrap();
    let lost =
        summary["error"] != Value::Null || calls.len() < 5 || calls[4]["error"] != Value::Null;
    assert!(lost, "mcp 1.x kept going after a 429: {summary:#}");
}

// ---------------------------------------------------------------------------------------------
// Upstream credentials

const CLIENT_TOKEN_MARK: &str = "client-token";

fn with_credential(cfg: EnvoyConfig, credential: &str) -> EnvoyConfig {
    let credential = credential.to_string();
    cfg.modify(move |d| {
        d["static_resources"]["secrets"][0]["generic_secret"]["secret"]["inline_string"] =
            credential.as_str().into();
    })
}

fn authorizations(server: &TestServer) -> Vec<Option<String>> {
    server
        .record()
        .iter()
        .map(|r| r.header("authorization").map(str::to_string))
        .collect()
}

#[test]
fn the_upstream_gets_the_injected_credential_never_the_clients_token() {
    let upstream_secret = format!("Bearer upstream-{}", std::process::id());

    // As shipped (mcp_scopes off): overwrite replaces whatever the client sent.
    let main = TestServer::start(ServerOptions::json()).unwrap();
    let deploy = sessionless();
    let envoy = Envoy::start(with_credential(
        gateway(&[main.addr()], deploy.addr()),
        &upstream_secret,
    ))
    .unwrap();
    let bearer = format!("Bearer {CLIENT_TOKEN_MARK}-shipped");
    let s = Session::initialize_with(
        &envoy.url("/mcp"),
        "2025-11-25",
        &[("authorization", &bearer)],
    )
    .unwrap();
    s.call_tool("echo", json!({"text": "x"})).unwrap();
    s.call_tool("deploy_service", json!({"service": "x"}))
        .unwrap();
    let seen: Vec<_> = authorizations(&main)
        .into_iter()
        .chain(authorizations(&deploy))
        .collect();
    assert_eq!(
        seen.len(),
        4,
        "initialize, initialized, echo on main; deploy"
    );
    assert!(
        seen.iter()
            .all(|a| a.as_deref() == Some(upstream_secret.as_str())),
        "{seen:?}"
    );
    drop(envoy);

    // With mcp_scopes verifying the caller's JWT (ES256: an RSA key takes seconds to make in a
    // debug build) and stripping it before the injector runs.
    let key = ES256KeyPair::generate().with_key_id("gw-1");
    let main = TestServer::start(ServerOptions::json()).unwrap();
    let scopes = scopes_support::config(
        json!({"inline": scopes_support::jwks_of(&[key.public_key().to_jwk()])}),
        json!({"strip_authorization": true}),
    );
    let envoy = Envoy::start(
        with_credential(gateway(&[main.addr()], deploy.addr()), &upstream_secret).plugin_config(
            "mcp_gateway",
            &json!({
                "telemetry": {"route_headers": true, "max_tool_labels": 50},
                "scopes": serde_json::from_str::<serde_json::Value>(&scopes).unwrap(),
                "tools": {"deny": ["get-env", "admin_*", "*_admin"]},
                "pii": {}
            })
            .to_string(),
        ),
    )
    .unwrap();
    let claims = Claims::with_custom_claims(
        Extra {
            scope: Some("mcp:tools".into()),
            ..Extra::default()
        },
        jwt_simple::prelude::Duration::from_hours(1),
    )
    .with_issuer(scopes_support::ISSUER)
    .with_audience(scopes_support::RESOURCE)
    .with_subject(CLIENT_TOKEN_MARK);
    let token = key.sign(claims).unwrap();
    let bearer = format!("Bearer {token}");
    let s = Session::initialize_with(
        &envoy.url("/mcp"),
        "2025-11-25",
        &[("authorization", &bearer)],
    )
    .unwrap();
    let r = s.call_tool("echo", json!({"text": "verified"})).unwrap();
    assert_eq!(text_of(&r), "verified");
    let seen = authorizations(&main);
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter()
            .all(|a| a.as_deref() == Some(upstream_secret.as_str())),
        "{seen:?}"
    );
    assert!(main
        .record()
        .iter()
        .all(|r| !r.headers.iter().any(|(_, v)| v.contains(&token))));
    // Without a token mcp_scopes refuses: the injected credential does not make a caller.
    let before = main.record().len();
    let anon = client::post(
        &envoy.url("/mcp"),
        &client::rpc_request(1, "initialize", json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}})).to_string(),
        &[],
    )
    .unwrap();
    assert_eq!(anon.status, 401, "{}", anon.text());
    assert_eq!(main.record().len(), before);
}
