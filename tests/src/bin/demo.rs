//! `make demo`: the real Envoy with the shipped gateway (`envoy/mcp-gateway.yaml`: the
//! `mcp_gateway` module, every policy in one VM) in front of the demo MCP server, a short scripted
//! session showing what each policy did, then Envoy stays up on
//! http://localhost:10000/mcp until Ctrl-C so any MCP client can be pointed at it.
// Indexing a serde_json::Value returns Null for a missing key; it never panics.
#![allow(clippy::indexing_slicing)]

use anyhow::{Context, Result};
use jwt_simple::prelude::*;
use mcp_integration::client::{self, ACCEPT_BOTH};
use mcp_integration::scopes_support::{jwks_of, Extra};
use mcp_integration::{Envoy, EnvoyConfig, EnvoyOptions, ServerOptions, TestServer};
use serde_json::{json, Value};

const LISTEN_PORT: u16 = 10000;
const ADMIN_PORT: u16 = 9901;
/// The module's policies in chain order; their counters keep the standalone filters' names.
const POLICIES: [&str; 4] = ["mcp_telemetry", "mcp_scopes", "mcp_tools", "mcp_pii"];
/// Where each set of counters comes from: the module's gate, then each policy.
const COUNTERS: [&str; 5] = [
    "mcp_gateway",
    "mcp_telemetry",
    "mcp_scopes",
    "mcp_tools",
    "mcp_pii",
];

fn main() -> Result<()> {
    let server = TestServer::start(ServerOptions::sse().port(3001).log_requests(false))
        .or_else(|_| TestServer::start(ServerOptions::sse()))
        .context("starting the demo MCP server")?;
    let idp = DemoIdp::new();
    // The shipped gateway, with the scopes policy switched on against the demo's authorization
    // server (the shipped file leaves it off: `"scopes": {}`).
    let cfg = EnvoyConfig::load("mcp-gateway.yaml")?
        .upstream("mcp_upstream", server.addr())
        .plugin_config("mcp_gateway", &idp.module_config());
    let envoy = Envoy::start_with(cfg, EnvoyOptions::default().ports(LISTEN_PORT, ADMIN_PORT))
        .with_context(|| {
            format!("starting Envoy on ports {LISTEN_PORT}/{ADMIN_PORT} (are they free?)")
        })?;
    let url = envoy.url("/mcp");
    println!(
        "Envoy 1.40 + mcp_gateway ({}) on {url}",
        POLICIES.join(" → ")
    );
    println!(
        "demo MCP server (SSE responses) on {}\n",
        server.url("/mcp")
    );

    let mut step = Step::new(&url);

    step.title("0. Authorization (scopes policy): no token → 401, a token, a step-up");
    let r = step.post(INITIALIZE)?;
    step.show(
        &r,
        &format!(
            "no token → WWW-Authenticate: {}",
            r.header("www-authenticate").unwrap_or("-")
        ),
    );
    let meta = client::get(&format!("{}{METADATA_PATH}", base(&url)), &[])?;
    println!("   → GET {METADATA_PATH}");
    step.show(
        &meta,
        &format!(
            "protected-resource metadata: authorization_servers {}",
            meta.json()
                .map(|v| v["authorization_servers"].to_string())
                .unwrap_or_default()
        ),
    );
    println!("     the demo authorization server ({ISSUER}) issues alice a token with scope \"mcp:tools\"");
    step.token = Some(idp.token("alice", "mcp:tools"));

    step.title("1. A 2025-era session: initialize, list tools, call a tool (SSE responses)");
    let init = step.post(
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"demo","version":"1"}}}"#,
    )?;
    let sid = init
        .header("mcp-session-id")
        .context("no Mcp-Session-Id from initialize")?
        .to_string();
    step.session = Some(sid.clone());
    step.show(&init, &format!("session {sid}"));
    let list = step.post(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#)?;
    let names: Vec<String> = list
        .messages()?
        .first()
        .and_then(|m| m["result"]["tools"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    step.show(&list, &format!("tools: {}", names.join(", ")));
    let all = server_tool_names(&server)?;
    let hidden: Vec<&String> = all.iter().filter(|n| !names.contains(n)).collect();
    println!(
        "     mcp_tools hid {hidden:?} (the server has {} tools)",
        all.len()
    );
    let call = step.post(
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello through Envoy, reply to bob@example.com"}}}"#,
    )?;
    step.show(&call, &first_text(&call));
    let received = server
        .record()
        .iter()
        .rev()
        .find_map(|r| {
            let v = r.body_json()?;
            (v["params"]["name"] == "echo").then(|| v["params"]["arguments"]["text"].clone())
        })
        .unwrap_or(Value::Null);
    println!("     the pii policy scrubbed the e-mail: the server received {received}");

    let denied = step.post(
        r#"{"jsonrpc":"2.0","id":"del-1","method":"tools/call","params":{"name":"delete_repo","arguments":{"repo":"demo/prod"}}}"#,
    )?;
    step.show(
        &denied,
        &format!(
            "delete_repo with scope mcp:tools → WWW-Authenticate: {}",
            denied.header("www-authenticate").unwrap_or("-")
        ),
    );
    println!("     step-up: the authorization server issues alice \"mcp:tools repo:admin\"");
    step.token = Some(idp.token("alice", "mcp:tools repo:admin"));
    let allowed = step.post(
        r#"{"jsonrpc":"2.0","id":"del-2","method":"tools/call","params":{"name":"delete_repo","arguments":{"repo":"demo/prod"}}}"#,
    )?;
    step.show(&allowed, &first_text(&allowed));

    let hidden_call = step.post(
        r#"{"jsonrpc":"2.0","id":"call-admin","method":"tools/call","params":{"name":"admin_reset","arguments":{}}}"#,
    )?;
    step.show(
        &hidden_call,
        &format!(
            "calling a hidden tool → {} (answered by mcp_tools)",
            error_text(&hidden_call)
        ),
    );

    step.title(
        "2. What the request gate refuses (every filter runs it; the first in the chain answers)",
    );
    for (what, body) in [
        (
            "duplicate `name` hidden by a \\u escape",
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","na\u006de":"delete_repo"}}"#,
        ),
        (
            "a JSON-RPC batch",
            r#"[{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"delete_repo"}}]"#,
        ),
        ("not JSON at all", "tools/call delete_repo"),
    ] {
        let r = step.post(body)?;
        step.show(&r, &format!("{what} → {}", error_text(&r)));
    }

    step.title("3. A 2026-07-28 (stateless) request whose Mcp-Name header disagrees with its body");
    step.session = None;
    let r = step.post_with(
        r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"delete_repo","arguments":{"repo":"prod"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#,
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ],
    )?;
    step.show(&r, &error_text(&r));

    step.title("4. What reached the MCP server, and what the gate and each policy counted");
    // The access log (stdout of Envoy) carries the OpenTelemetry MCP attributes of each call;
    // Envoy flushes it about once a second.
    let needle = "\"gen_ai.tool.name\":\"echo\"";
    envoy.wait_log(needle, std::time::Duration::from_secs(3));
    if let Some(line) = envoy.log().lines().rev().find(|l| l.contains(needle)) {
        println!("   the access-log line of the echo call (attributes the telemetry policy published):\n   {line}");
    }
    let calls = server.tool_calls();
    println!("   tools/call received by the server: {calls:?} (refused requests never arrived)");
    for f in COUNTERS {
        let stats = envoy.admin(&format!("/stats?filter=wasmcustom.{f}\\."))?;
        let nonzero: Vec<String> = stats
            .lines()
            // Zero counters and histograms with no samples in this Envoy's flush window say
            // nothing about what the filter did.
            .filter(|l| !l.ends_with(": 0") && !l.ends_with("No recorded values"))
            .map(|l| l.trim_start_matches("wasmcustom.").to_string())
            .collect();
        println!("   {f:<14} {}", nonzero.join("  "));
    }

    println!(
        "\nEnvoy keeps running: point an MCP client at {url}\n\
         (admin: http://localhost:{ADMIN_PORT}/stats?filter=wasmcustom). Ctrl-C to stop."
    );
    // Wait for Ctrl-C (or SIGTERM), then return so Envoy and the server are shut down by Drop.
    let (tx, rx) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .context("installing the Ctrl-C handler")?;
    let _ = rx.recv();
    println!("\nstopping Envoy and the demo server");
    drop(envoy);
    drop(server);
    Ok(())
}

const ISSUER: &str = "https://demo-idp.localhost";
const RESOURCE: &str = "http://localhost:10000/mcp";
const METADATA_PATH: &str = "/.well-known/oauth-protected-resource/mcp";
const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"demo","version":"1"}}}"#;

fn base(url: &str) -> &str {
    url.strip_suffix("/mcp").unwrap_or(url)
}

/// The demo's authorization server: an ES256 key whose JWK Set the module trusts, signing the
/// tokens of this session (a real one runs OAuth flows; the gateway only verifies).
struct DemoIdp {
    key: ES256KeyPair,
}

impl DemoIdp {
    fn new() -> Self {
        DemoIdp {
            key: ES256KeyPair::generate().with_key_id("demo-1"),
        }
    }

    fn token(&self, sub: &str, scope: &str) -> String {
        let claims = Claims::with_custom_claims(
            Extra {
                scope: Some(scope.to_string()),
                ..Extra::default()
            },
            Duration::from_hours(1),
        )
        .with_issuer(ISSUER)
        .with_audience(RESOURCE)
        .with_subject(sub);
        self.key.sign(claims).unwrap_or_default()
    }

    /// The shipped module configuration with scopes verifying this server's tokens.
    fn module_config(&self) -> String {
        json!({
            "telemetry": {"route_headers": true, "max_tool_labels": 50},
            "scopes": {
                "resource": RESOURCE,
                "authorization_servers": [ISSUER],
                "jwt": {
                    "issuer": ISSUER,
                    "algorithms": ["ES256"],
                    "jwks": {"inline": jwks_of(&[self.key.public_key().to_jwk()])}
                },
                "rules": [
                    {"tools": ["delete_*"], "scopes": ["repo:admin"]},
                    {"tools": ["*"], "scopes": ["mcp:tools"]}
                ],
                "scopes_supported": ["mcp:tools", "repo:admin"]
            },
            "tools": {"deny": ["get-env", "admin_*", "*_admin"]},
            "pii": {}
        })
        .to_string()
    }
}

struct Step {
    url: String,
    session: Option<String>,
    token: Option<String>,
}

impl Step {
    fn new(url: &str) -> Self {
        Step {
            url: url.to_string(),
            session: None,
            token: None,
        }
    }

    fn title(&self, t: &str) {
        println!("\n{t}");
    }

    fn post(&self, body: &str) -> Result<client::Resp> {
        self.post_with(body, &[])
    }

    fn post_with(&self, body: &str, extra: &[(&str, &str)]) -> Result<client::Resp> {
        let mut h: Vec<(&str, &str)> = vec![
            ("content-type", "application/json"),
            ("accept", ACCEPT_BOTH),
        ];
        if let Some(s) = &self.session {
            h.push(("mcp-session-id", s));
            h.push(("mcp-protocol-version", "2025-11-25"));
        }
        let bearer = self.token.as_ref().map(|t| format!("Bearer {t}"));
        if let Some(b) = &bearer {
            h.push(("authorization", b));
        }
        h.extend_from_slice(extra);
        let short: String = body.chars().take(90).collect();
        println!(
            "   → POST {short}{}",
            if body.len() > 90 { "…" } else { "" }
        );
        client::request("POST", &self.url, &h, Some(body.as_bytes()))
    }

    fn show(&self, r: &client::Resp, summary: &str) {
        println!(
            "   ← {} {} {summary}",
            r.status,
            r.content_type().unwrap_or("-")
        );
    }
}

/// The tool names the server itself offers (asked directly, without Envoy).
fn server_tool_names(server: &TestServer) -> Result<Vec<String>> {
    let r = client::request(
        "POST",
        &server.url("/mcp"),
        &[
            ("content-type", "application/json"),
            ("accept", ACCEPT_BOTH),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/list"),
            ("x-test-response", "json"),
        ],
        Some(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#),
    )?;
    Ok(r.json()?["result"]["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

fn first_text(r: &client::Resp) -> String {
    r.messages()
        .ok()
        .and_then(|m| m.last().cloned())
        .and_then(|m| {
            m["result"]["content"][0]["text"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| r.text())
}

fn error_text(r: &client::Resp) -> String {
    match r.json() {
        Ok(v) => format!(
            "JSON-RPC {} \"{}\" (id {})",
            v["error"]["code"],
            v["error"]["message"].as_str().unwrap_or(""),
            match &v["id"] {
                Value::Null => "null".to_string(),
                id => id.to_string(),
            }
        ),
        Err(_) => r.text(),
    }
}
