//! `make demo`: the real Envoy with the shipped gateway (`envoy/mcp-gateway.yaml`: the
//! `mcp_gateway` module, every policy in one VM) in front of the demo MCP server, a short scripted
//! session showing what each policy did, then Envoy stays up on
//! http://localhost:10000/mcp until Ctrl-C so any MCP client can be pointed at it.
// Indexing a serde_json::Value returns Null for a missing key; it never panics.
#![allow(clippy::indexing_slicing)]

use anyhow::{Context, Result};
use mcp_integration::client::{self, ACCEPT_BOTH};
use mcp_integration::{Envoy, EnvoyConfig, EnvoyOptions, ServerOptions, TestServer};
use serde_json::Value;

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
    let cfg = EnvoyConfig::load("mcp-gateway.yaml")?.upstream("mcp_upstream", server.addr());
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
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello through Envoy"}}}"#,
    )?;
    step.show(&call, &first_text(&call));

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

struct Step {
    url: String,
    session: Option<String>,
}

impl Step {
    fn new(url: &str) -> Self {
        Step {
            url: url.to_string(),
            session: None,
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
