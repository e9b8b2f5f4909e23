//! `make bench`: Envoy CPU per request for plain Envoy, Envoy's native MCP filter + RBAC, each of our
//! filters alone and the full chain, side by side in one run.
//!
//! A tiny upstream inside this process serves precomputed MCP responses (picked by the `x-bench`
//! header that `bench/mcp.lua` sets), `wrk` drives load, and the Envoy process's CPU time
//! (utime+stime from `/proc/<pid>/stat`) over the measured window is divided by the completed
//! requests. Configurations run interleaved per workload and concurrency, so the ratio to plain
//! Envoy compares cells that saw the same background load on this shared box.
//!
//! The bench is also the authorization server of `mcp_scopes` (an RSA key per run, its JWK Set
//! served to the configs' `jwks` clusters, RS256 bearer tokens on every request), and checks
//! before measuring that mcp_scopes accepts the token and that mcp_pii redacts exactly the PII
//! planted in the `call-11k-pii10-*` results.
//!
//! `bench [--out PATH] [--duration SECS] [--quick] [--only SUBSTR]... [--workload SUBSTR]...
//! [--conc 1,32] [--reps N] [--header "name: value"]... [--pin CPU | --no-pin]`

use anyhow::{anyhow, bail, Context as _, Result};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jwt_simple::prelude::{Claims, RS256KeyPair, RSAKeyPairLike as _};
use mcp_integration::scopes_support::{jwks_of, Extra, JwksServer};
use mcp_integration::token_exchange_support;
use mcp_integration::{paths, Envoy, EnvoyConfig, EnvoyOptions};
use serde_json::json;
use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Command;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: bench [--out PATH] [--duration SECS] [--quick] [--only SUBSTR]... \
[--workload SUBSTR]... [--conc 1,32] [--reps N] [--header \"name: value\"]... [--pin CPU | --no-pin]";

/// The tool the anchor config's RBAC policy denies; the bench checks the denial once.
const DENIED_TOOL: &str = "delete_repo";
/// JSON-RPC ids of the fixed requests; canned responses echo them so id-correlating filters match.
const CALL_ID: u64 = 42;
const LIST_ID: u64 = 7;

#[derive(Debug, Clone)]
struct Args {
    out: Option<PathBuf>,
    duration: u64,
    warmup: Duration,
    quick: bool,
    only: Vec<String>,
    workloads: Vec<String>,
    concurrencies: Vec<u32>,
    reps: usize,
    headers: Vec<String>,
    pin: Option<u32>,
}

fn parse_args(argv: impl IntoIterator<Item = String>) -> Result<Args> {
    let mut a = Args {
        out: None,
        duration: 5,
        warmup: Duration::from_millis(500),
        quick: false,
        only: Vec::new(),
        workloads: Vec::new(),
        concurrencies: vec![1, 32],
        reps: 1,
        headers: Vec::new(),
        // Default: everything on the last CPU (see pin_process); `--no-pin` lets the scheduler
        // place things.
        pin: cpu_count()
            .checked_sub(1)
            .and_then(|c| u32::try_from(c).ok())
            .filter(|_| cpu_count() > 1),
    };
    let mut duration = None;
    let mut conc = None;
    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| anyhow!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--out" => a.out = Some(PathBuf::from(val()?)),
            "--duration" => duration = Some(val()?.parse::<u64>().context("--duration SECS")?),
            "--quick" => a.quick = true,
            "--only" => a.only.push(val()?),
            "--workload" => a.workloads.push(val()?),
            "--conc" => {
                let v = val()?;
                let list = v
                    .split(',')
                    .map(|c| c.trim().parse::<u32>())
                    .collect::<Result<Vec<_>, _>>()
                    .context("--conc 1,32")?;
                conc = Some(list);
            }
            "--reps" => a.reps = val()?.parse::<usize>().context("--reps N")?.max(1),
            "--header" => a.headers.push(val()?),
            "--pin" => a.pin = Some(val()?.parse::<u32>().context("--pin CPU")?),
            "--no-pin" => a.pin = None,
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if a.quick {
        a.duration = 2;
        a.concurrencies = vec![1];
    }
    if let Some(d) = duration {
        a.duration = d.max(1);
    }
    if let Some(c) = conc {
        a.concurrencies = c.into_iter().filter(|c| *c > 0).collect();
    }
    if a.concurrencies.is_empty() {
        bail!("--conc: no concurrency left\n{USAGE}");
    }
    Ok(a)
}

// ---------------------------------------------------------------------------------------------
// Workloads: request bodies and the canned upstream responses.

#[derive(Debug, Clone)]
struct Workload {
    /// `x-bench` header value, also the workload's id in the results.
    key: String,
    title: String,
    request: String,
    response: Bytes,
    sse: bool,
    /// Raw PII values planted in `response`: a config with mcp_pii must deliver each one
    /// redacted (checked once before the run, see `check_pii`).
    planted: &'static [&'static str],
}

const VERBS: [&str; 10] = [
    "search",
    "get",
    "list",
    "create",
    "update",
    "delete",
    "summarize",
    "export",
    "sync",
    "audit",
];
const NOUNS: [&str; 10] = [
    "docs", "issues", "invoices", "tickets", "users", "repos", "reports", "alerts", "orders",
    "notes",
];

/// One tool of a generated `tools/list` result: ~220 bytes of name, description and a small
/// `inputSchema`, the shape real servers return.
fn tool(i: usize) -> serde_json::Value {
    let verb = VERBS.get(i % VERBS.len()).copied().unwrap_or("get");
    let noun = NOUNS
        .get((i / VERBS.len()) % NOUNS.len())
        .copied()
        .unwrap_or("docs");
    json!({
        "name": format!("{verb}_{noun}_{i:03}"),
        "description": format!("{verb} {noun} matching a query (by date)."),
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "limit": {"type": "integer", "minimum": 1}
            },
            "required": ["query"]
        }
    })
}

fn tools_list_response(n: usize) -> String {
    let tools: Vec<_> = (0..n).map(tool).collect();
    json!({"jsonrpc": "2.0", "id": LIST_ID, "result": {"tools": tools}}).to_string()
}

/// The shipped `mcp_tools` policy plus a pin for each of the first `n` bench tools.
fn pinned_tools_config(n: usize) -> Result<String> {
    let mut pins = serde_json::Map::new();
    for i in 0..n {
        let t = tool(i);
        let fp = mcp_core::pinning::fingerprint(t.to_string().as_bytes())
            .map_err(|e| anyhow!("fingerprint of bench tool {i}: {e}"))?;
        let name = t
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_owned();
        pins.insert(name, fp.into());
    }
    Ok(json!({"deny": ["get-env", "admin_*", "*_admin"], "pinning": {"pins": pins}}).to_string())
}

fn call_request(tool_name: &str) -> String {
    json!({
        "jsonrpc": "2.0",
        "id": CALL_ID,
        "method": "tools/call",
        "params": {
            "name": tool_name,
            "arguments": {"query": "EMEA revenue report FY2025", "limit": 10, "include_snippets": true},
            "_meta": {
                "progressToken": "7f3c2a10-9b1e-4d6a-8c55-0e1f2a3b4c5d",
                "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            }
        }
    })
    .to_string()
}

fn call_response() -> String {
    json!({
        "jsonrpc": "2.0",
        "id": CALL_ID,
        "result": {
            "content": [{"type": "text", "text": "Found 3 documents for \"EMEA revenue report FY2025\": \
                Q1 summary (2025-04-02), Q2 summary (2025-07-03), FY forecast (2025-10-01)."}],
            "isError": false
        }
    })
    .to_string()
}

/// Ten PII values of seven detectors for the `call-11k-pii10-*` results, each valid for its
/// detector (the cards pass Luhn, the IBAN mod-97, the SSNs have valid area/group/serial, the
/// GitHub token has the entropy gitleaks asks for).
const PII10: [&str; 10] = [
    "jane.doe@acme-corp.com",
    "4111 1111 1111 1111",
    "536-22-8714",
    "+44 20 7946 0958",
    "DE89 3704 0044 0532 0130 00",
    "203.0.113.42",
    "m.rossi@example.org",
    "5555 5555 5555 4444",
    "412-55-0193",
    "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d",
];

/// About 11 KB of digit-heavy tool output (order numbers, timestamps, versions, UUIDs, hashes,
/// amounts: the look-alikes that make the PII detectors' triggers fire) in ~40 lines. With
/// `pii`, every fourth line names one of the values instead of "the usual address".
fn call_11k_text(pii: &[&str]) -> String {
    let mut s = String::with_capacity(11 * 1024);
    let mut planted = pii.iter();
    let mut i = 0u64;
    while s.len() < 10_900 {
        let contact = match i.is_multiple_of(4).then(|| planted.next()).flatten() {
            Some(v) => *v,
            None => "the usual address",
        };
        let _ = writeln!(
            s,
            "Order ORD-2025-{:06} shipped 2025-{:02}-{:02}T10:{:02}:00Z via UPS; client v2.{}.4 (build 4.0.0.{}) \
             reported {} items, total ${},{:03}.00, id 550e8400-e29b-41d4-a716-{:012x}, sha {:016x}{:016x}. \
             Notes: reach the customer at {contact} about delivery windows.",
            100_000 + i * 37,
            1 + i % 12,
            1 + i % 28,
            i % 60,
            i % 20,
            i,
            1 + i % 9,
            1 + i % 7,
            (i * 131) % 1000,
            0x4466_5544_0000 + i,
            0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(i + 1),
            0xc2b2_ae3d_27d4_eb4f_u64.wrapping_mul(i + 7),
        );
        i += 1;
    }
    s
}

/// A `tools/call` result of about 11 KB: one text block of [`call_11k_text`].
fn call_11k_response(pii: &[&str]) -> String {
    json!({
        "jsonrpc": "2.0",
        "id": CALL_ID,
        "result": {"content": [{"type": "text", "text": call_11k_text(pii)}], "isError": false}
    })
    .to_string()
}

fn sse_event(json: &str) -> String {
    format!("event: message\ndata: {json}\n\n")
}

fn workloads() -> Vec<Workload> {
    let list_request =
        json!({"jsonrpc": "2.0", "id": LIST_ID, "method": "tools/list", "params": {}}).to_string();
    let mut out = vec![Workload {
        key: "call".into(),
        title: "tools/call (JSON response)".into(),
        request: call_request("search_docs_000"),
        response: Bytes::from(call_response()),
        sse: false,
        planted: &[],
    }];
    for (key, title, planted) in [
        ("call-11k", "no PII", &[] as &'static [&'static str]),
        ("call-11k-pii10", "10 PII values", &PII10),
    ] {
        let body = call_11k_response(planted);
        let kb = (body.len() as f64 / 1000.0).round();
        for sse in [false, true] {
            let framing = if sse { "sse" } else { "json" };
            out.push(Workload {
                key: format!("{key}-{framing}"),
                title: format!(
                    "tools/call, ~{kb} KB text result, {title}, {}",
                    if sse { "SSE" } else { "JSON" }
                ),
                request: call_request("search_docs_000"),
                response: Bytes::from(if sse { sse_event(&body) } else { body.clone() }),
                sse,
                planted,
            });
        }
    }
    for n in [5usize, 50, 500] {
        let body = tools_list_response(n);
        let kb = (body.len() as f64 / 1000.0).round();
        out.push(Workload {
            key: format!("list-{n}-json"),
            title: format!("tools/list, {n} tools (~{kb} KB), JSON"),
            request: list_request.clone(),
            response: Bytes::from(body.clone()),
            sse: false,
            planted: &[],
        });
        out.push(Workload {
            key: format!("list-{n}-sse"),
            title: format!("tools/list, {n} tools (~{kb} KB), SSE"),
            request: list_request.clone(),
            response: Bytes::from(sse_event(&body)),
            sse: true,
            planted: &[],
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Upstream: current-thread hyper server answering canned bodies, never the bottleneck.

/// A body sent as one frame; with `sized` hyper sends `content-length`, without it chunked
/// transfer encoding (what streaming SSE servers produce).
struct OneShot {
    data: Option<Bytes>,
    sized: bool,
}

impl Body for OneShot {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.data.take().map(|d| Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.data, self.sized) {
            (Some(d), true) => SizeHint::with_exact(d.len() as u64),
            (None, _) => SizeHint::with_exact(0),
            (Some(_), false) => SizeHint::default(),
        }
    }
}

#[derive(Debug, Clone)]
struct Canned {
    body: Bytes,
    sse: bool,
}

async fn serve(
    req: Request<Incoming>,
    canned: Arc<HashMap<String, Canned>>,
) -> Result<Response<OneShot>, Infallible> {
    let key = req
        .headers()
        .get("x-bench")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // Drain the request so the connection stays reusable for keep-alive.
    let _ = req.into_body().collect().await;
    let Some(c) = canned.get(&key) else {
        let mut resp = Response::new(OneShot {
            data: Some(Bytes::from_static(b"unknown x-bench workload\n")),
            sized: true,
        });
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return Ok(resp);
    };
    let mut resp = Response::new(OneShot {
        data: Some(c.body.clone()),
        sized: !c.sse,
    });
    let h = resp.headers_mut();
    if c.sse {
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    } else {
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    Ok(resp)
}

/// Starts the upstream on its own thread; returns its address. The thread lives until exit.
fn start_upstream(canned: HashMap<String, Canned>) -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding upstream")?;
    listener
        .set_nonblocking(true)
        .context("upstream nonblocking")?;
    let addr = listener.local_addr().context("upstream address")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("building upstream runtime")?;
    let canned = Arc::new(canned);
    std::thread::Builder::new()
        .name("bench-upstream".into())
        .spawn(move || {
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    eprintln!("bench upstream: cannot register listener");
                    return;
                };
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let canned = Arc::clone(&canned);
                    tokio::spawn(async move {
                        let svc =
                            hyper::service::service_fn(move |req| serve(req, Arc::clone(&canned)));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        })
        .context("spawning upstream thread")?;
    Ok(addr)
}

// ---------------------------------------------------------------------------------------------
// Configurations and targets.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Direct,
    /// A shipped `envoy/*.yaml`.
    EnvoyDir(&'static str),
    /// A file under `bench/`.
    BenchDir(&'static str),
    /// `envoy/mcp_tools.yaml` with every tool of the 50-tool list pinned (issue 16: pinning
    /// costs at most 0.15x over the same policy without it).
    ToolsPinned,
    /// `envoy/mcp_scopes.yaml` plus `upstream_token` (issue 18: per-user upstream credentials by
    /// RFC 8693 token exchange; measured with the exchanged token cached, target at most 0.1x
    /// over the same config without it). The token endpoint is the tests' strict one.
    ScopesExchange,
}

#[derive(Debug, Clone, Copy)]
struct ConfigSpec {
    name: &'static str,
    source: Source,
}

const PLAIN: &str = "plain";

const CONFIGS: [ConfigSpec; 14] = [
    ConfigSpec {
        name: "direct",
        source: Source::Direct,
    },
    ConfigSpec {
        name: PLAIN,
        source: Source::EnvoyDir("plain.yaml"),
    },
    ConfigSpec {
        name: "native-mcp-rbac",
        source: Source::BenchDir("native-mcp-rbac.yaml"),
    },
    // The floor: the cheapest possible wasm filter (bench/floor), so every filter's ratio can be
    // read against what merely loading a wasm filter costs in this Envoy.
    ConfigSpec {
        name: "floor-noop",
        source: Source::BenchDir("floor-noop.yaml"),
    },
    ConfigSpec {
        name: "floor-body",
        source: Source::BenchDir("floor-body.yaml"),
    },
    ConfigSpec {
        name: "floor-both",
        source: Source::BenchDir("floor-both.yaml"),
    },
    ConfigSpec {
        name: "mcp_tools",
        source: Source::EnvoyDir("mcp_tools.yaml"),
    },
    ConfigSpec {
        name: "mcp_tools+pins",
        source: Source::ToolsPinned,
    },
    ConfigSpec {
        name: "mcp_scopes",
        source: Source::EnvoyDir("mcp_scopes.yaml"),
    },
    ConfigSpec {
        name: "mcp_scopes-exchange",
        source: Source::ScopesExchange,
    },
    ConfigSpec {
        name: "mcp_pii",
        source: Source::EnvoyDir("mcp_pii.yaml"),
    },
    ConfigSpec {
        name: "mcp_telemetry",
        source: Source::EnvoyDir("mcp_telemetry.yaml"),
    },
    // The shipped gateway: the mcp_gateway module, every policy in one VM.
    ConfigSpec {
        name: "mcp-gateway",
        source: Source::EnvoyDir("mcp-gateway.yaml"),
    },
    // The same policies as four separate filters (four VMs), for comparison.
    ConfigSpec {
        name: "four-filters",
        source: Source::EnvoyDir("mcp-four-filters.yaml"),
    },
];

/// The issues' CPU-per-request targets, as a maximum ratio to plain Envoy.
fn target(config: &str, workload: &str) -> Option<f64> {
    match (config, workload) {
        ("mcp_tools", "call") => Some(1.2),
        ("mcp_tools", "list-50-json" | "list-50-sse") => Some(1.5),
        ("mcp_tools", "list-500-json" | "list-500-sse") => Some(3.0),
        ("mcp_telemetry", "call") => Some(1.15),
        ("mcp_telemetry", "list-50-sse") => Some(1.3),
        ("mcp_scopes", "call") => Some(1.3),
        ("mcp_pii", "call-11k-json" | "call-11k-sse") => Some(1.6),
        ("mcp_pii", "call-11k-pii10-json" | "call-11k-pii10-sse") => Some(2.0),
        // Issue 15, c1 (c32: 2.2, 3.0, 3.0, 5.0).
        ("mcp-gateway", "call") => Some(1.8),
        ("mcp-gateway", "call-11k-pii10-json") => Some(2.2),
        ("mcp-gateway", "list-50-sse") => Some(2.2),
        ("mcp-gateway", "list-500-sse") => Some(4.0),
        _ => None,
    }
}

fn selected(spec: &ConfigSpec, only: &[String]) -> bool {
    // Ratios need plain Envoy, so it always runs.
    only.is_empty() || spec.name == PLAIN || only.iter().any(|o| spec.name.contains(o.as_str()))
}

fn load_config(spec: &ConfigSpec) -> Result<Option<EnvoyConfig>> {
    match spec.source {
        Source::Direct => Ok(None),
        Source::EnvoyDir(file) => EnvoyConfig::load(file).map(|c| Some(filters_only(c))),
        Source::ToolsPinned => {
            let cfg = EnvoyConfig::load("mcp_tools.yaml")?;
            Ok(Some(filters_only(
                cfg.plugin_config("mcp_tools", &pinned_tools_config(50)?),
            )))
        }
        Source::ScopesExchange => {
            let cfg = EnvoyConfig::load("mcp_scopes.yaml")?;
            let mut json = plugin_json(&cfg, "mcp_scopes")
                .ok_or_else(|| anyhow!("envoy/mcp_scopes.yaml: no mcp_scopes configuration"))?;
            let section = json!({"token_exchange": {
                "cluster": EXCHANGE_CLUSTER, "path": token_exchange_support::TOKEN_PATH,
                "authority": "idp.bench", "client_id": token_exchange_support::CLIENT_ID,
                "client_secret": token_exchange_support::CLIENT_SECRET,
                "audience": "https://api.bench", "scope": "repo:read", "timeout_ms": 2000}});
            json.as_object_mut()
                .ok_or_else(|| anyhow!("envoy/mcp_scopes.yaml: configuration is not an object"))?
                .insert("upstream_token".into(), section);
            let cfg = cfg
                .modify(|doc| {
                    let Some(clusters) = doc
                        .get_mut("static_resources")
                        .and_then(|s| s.get_mut("clusters"))
                        .and_then(|c| c.as_sequence_mut())
                    else {
                        return;
                    };
                    let jwks = clusters
                        .iter()
                        .find(|c| c.get("name").and_then(|n| n.as_str()) == Some("jwks"))
                        .cloned();
                    if let Some(mut idp) = jwks {
                        if let Some(m) = idp.as_mapping_mut() {
                            m.insert("name".into(), EXCHANGE_CLUSTER.into());
                        }
                        clusters.push(idp);
                    }
                })
                .plugin_config("mcp_scopes", &json.to_string());
            Ok(Some(filters_only(cfg)))
        }
        Source::BenchDir(file) => {
            let path = bench_dir().join(file);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            EnvoyConfig::from_yaml(&text).map(Some)
        }
    }
}

/// Strips what the shipped configs add around the filters (Zipkin tracing, access logs, rate
/// limits): plain Envoy has none of it, so leaving it in would charge Envoy's own tracer and
/// logger to the filter. Every cell then measures the same Envoy plus the wasm filters.
/// Envoy's own HTTP filters the shipped configs wrap around ours (rate limit, session affinity,
/// upstream credentials): plain Envoy has none of them, so they are removed before measuring.
const ENVOY_SIDE_FILTERS: [&str; 4] = [
    "envoy.filters.http.compressor",
    "envoy.filters.http.local_ratelimit",
    "envoy.filters.http.stateful_session",
    "envoy.filters.http.credential_injector",
];

fn filters_only(cfg: EnvoyConfig) -> EnvoyConfig {
    cfg.modify(|doc| {
        let Some(listeners) = doc
            .get_mut("static_resources")
            .and_then(|s| s.get_mut("listeners"))
            .and_then(|l| l.as_sequence_mut())
        else {
            return;
        };
        for l in listeners {
            let chains = l.get_mut("filter_chains").and_then(|c| c.as_sequence_mut());
            for chain in chains.into_iter().flatten() {
                let filters = chain.get_mut("filters").and_then(|f| f.as_sequence_mut());
                for f in filters.into_iter().flatten() {
                    let Some(hcm) = f.get_mut("typed_config").and_then(|t| t.as_mapping_mut())
                    else {
                        continue;
                    };
                    hcm.remove("tracing");
                    hcm.remove("access_log");
                    if let Some(http) = hcm
                        .get_mut("http_filters")
                        .and_then(|h| h.as_sequence_mut())
                    {
                        http.retain(|h| {
                            !h.get("name")
                                .and_then(|n| n.as_str())
                                .is_some_and(|n| ENVOY_SIDE_FILTERS.contains(&n))
                        });
                    }
                }
            }
        }
    })
}

/// The cluster of the bench's token endpoint (`mcp_scopes-exchange`).
const EXCHANGE_CLUSTER: &str = "token_idp";

/// The JSON configuration of wasm filter `name` in `cfg`.
fn plugin_json(cfg: &EnvoyConfig, name: &str) -> Option<serde_json::Value> {
    fn walk(v: &serde_yaml::Value, name: &str) -> Option<serde_json::Value> {
        match v {
            serde_yaml::Value::Mapping(m) => {
                let named = m
                    .get("name")
                    .and_then(serde_yaml::Value::as_str)
                    .is_some_and(|n| n == name);
                let value = m
                    .get("configuration")
                    .and_then(|c| c.get("value"))
                    .and_then(serde_yaml::Value::as_str)
                    .and_then(|j| serde_json::from_str(j).ok());
                match (named, value) {
                    (true, Some(v)) => Some(v),
                    _ => m.values().find_map(|v| walk(v, name)),
                }
            }
            serde_yaml::Value::Sequence(s) => s.iter().find_map(|v| walk(v, name)),
            _ => None,
        }
    }
    walk(cfg.doc(), name)
}

/// The token endpoint of `mcp_scopes-exchange`, started on first use.
fn bench_token_endpoint() -> Result<SocketAddr> {
    static ENDPOINT: std::sync::OnceLock<Option<token_exchange_support::TokenEndpoint>> =
        std::sync::OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            let e = token_exchange_support::TokenEndpoint::start().ok()?;
            e.set_expires_in(Some(3600));
            Some(e)
        })
        .as_ref()
        .map(token_exchange_support::TokenEndpoint::addr)
        .ok_or_else(|| anyhow!("cannot start the token endpoint"))
}

/// Whether the config runs `mcp_gateway` with a `pii` section (it scrubs like `mcp_pii`).
fn module_has_pii(cfg: &EnvoyConfig) -> bool {
    fn walk(v: &serde_yaml::Value) -> bool {
        match v {
            serde_yaml::Value::Mapping(m) => {
                let is_module = m
                    .get("root_id")
                    .and_then(serde_yaml::Value::as_str)
                    .is_some_and(|r| r == "mcp_gateway");
                let has_pii = m
                    .get("configuration")
                    .and_then(|c| c.get("value"))
                    .and_then(serde_yaml::Value::as_str)
                    .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
                    .is_some_and(|j| j.get("pii").is_some());
                (is_module && has_pii) || m.values().any(walk)
            }
            serde_yaml::Value::Sequence(s) => s.iter().any(walk),
            _ => false,
        }
    }
    walk(cfg.doc())
}

fn bench_dir() -> PathBuf {
    paths::repo_root().join("bench")
}

// ---------------------------------------------------------------------------------------------
// Bearer tokens for mcp_scopes: a local IdP whose JWK Set Envoy fetches, and RS256 tokens for it.

/// The tool every `tools/call` workload calls.
const CALL_TOOL: &str = "search_docs_000";

/// What an `mcp_scopes` filter with JWT verification (`jwt`, not `jwt_authn`) needs from a
/// bearer token, read from its plugin configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ScopesJwt {
    issuer: String,
    /// `jwt.audiences[0]`, else `resource` (the filter's default audience).
    audience: String,
    /// `jwt.jwks.cluster`: the Envoy cluster the filter fetches the JWK Set from.
    jwks_cluster: Option<String>,
    /// Every scope the rules require for `tools/call` of [`CALL_TOOL`].
    scopes: Vec<String>,
}

/// Every HTTP filter entry of every listener of a config.
fn http_filters(doc: &serde_yaml::Value) -> Vec<&serde_yaml::Value> {
    fn seq(v: Option<&serde_yaml::Value>) -> Vec<&serde_yaml::Value> {
        v.and_then(|v| v.as_sequence())
            .map(|s| s.iter().collect())
            .unwrap_or_default()
    }
    let mut out = Vec::new();
    for l in seq(doc.get("static_resources").and_then(|s| s.get("listeners"))) {
        for chain in seq(l.get("filter_chains")) {
            for f in seq(chain.get("filters")) {
                out.extend(seq(f
                    .get("typed_config")
                    .and_then(|t| t.get("http_filters"))));
            }
        }
    }
    out
}

/// `*` matches any run of characters (the rule globs of the shipped configs).
fn glob_matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for p in middle {
        match rest.find(p) {
            Some(at) => rest = rest.get(at + p.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// The JWT requirements of every `mcp_scopes` filter of `cfg` that verifies tokens itself.
fn scopes_jwt(cfg: &EnvoyConfig) -> Vec<ScopesJwt> {
    let mut out = Vec::new();
    for f in http_filters(cfg.doc()) {
        let Some(config) = f.get("typed_config").and_then(|t| t.get("config")) else {
            continue;
        };
        let is_scopes = config
            .get("vm_config")
            .and_then(|v| v.get("code"))
            .and_then(|c| c.get("local"))
            .and_then(|l| l.get("filename"))
            .and_then(|n| n.as_str())
            .is_some_and(|n| n.ends_with("mcp_scopes.wasm"));
        let Some(json) = config
            .get("configuration")
            .and_then(|c| c.get("value"))
            .and_then(|v| v.as_str())
            .filter(|_| is_scopes)
            .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
        else {
            continue;
        };
        let Some(jwt) = json.get("jwt") else {
            continue;
        };
        let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(String::from);
        let audience = jwt
            .get("audiences")
            .and_then(|a| a.get(0))
            .or_else(|| json.get("resource"));
        let (Some(issuer), Some(audience)) = (text(jwt.get("issuer")), text(audience)) else {
            continue;
        };
        let mut scopes: Vec<String> = Vec::new();
        for rule in json
            .get("rules")
            .and_then(|r| r.as_array())
            .into_iter()
            .flatten()
        {
            let matches = rule
                .get("tools")
                .and_then(|t| t.as_array())
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str())
                .any(|t| glob_matches(t, CALL_TOOL));
            let needed = rule.get("scopes").and_then(|s| s.as_array());
            for sc in needed.into_iter().flatten().filter_map(|s| s.as_str()) {
                if matches && !scopes.iter().any(|x| x == sc) {
                    scopes.push(sc.to_string());
                }
            }
        }
        out.push(ScopesJwt {
            issuer,
            audience,
            jwks_cluster: text(jwt.get("jwks").and_then(|j| j.get("cluster"))),
            scopes,
        });
    }
    out
}

/// The bench's authorization server: one RS256 key, its JWK Set served over HTTP (pointed to by
/// every `jwks` cluster of the configs under test), and tokens signed with it.
struct BenchIdp {
    key: RS256KeyPair,
    jwks: JwksServer,
}

impl BenchIdp {
    fn start() -> Result<BenchIdp> {
        let key = RS256KeyPair::generate(2048)
            .context("generating the bench RSA key")?
            .with_key_id("bench-rs256");
        let jwks = JwksServer::start(&jwks_of(&[key.public_key().to_jwk()]))
            .context("starting the bench JWKS server")?;
        Ok(BenchIdp { key, jwks })
    }

    /// A token the filter accepts for [`CALL_TOOL`], valid for two days (the filter caches the
    /// verified token until it expires, as it would for a real client's token).
    fn token(&self, req: &ScopesJwt) -> Result<String> {
        let claims = Claims::with_custom_claims(
            Extra {
                scope: Some(req.scopes.join(" ")),
                ..Extra::default()
            },
            jwt_simple::prelude::Duration::from_hours(48),
        )
        .with_issuer(&req.issuer)
        .with_audience(&req.audience)
        .with_subject("bench");
        self.key.sign(claims).context("signing the bench token")
    }
}

/// A configuration under test: where wrk sends traffic, and the Envoy (if any) being measured.
struct Target {
    spec: ConfigSpec,
    url: String,
    envoy: Option<Envoy>,
    /// Request headers for this target: `authorization` first (see `start_targets`), then the
    /// `--header` ones, one "name: value" per line.
    headers: String,
    /// Whether the config runs mcp_pii (its responses must come back redacted).
    scrubs_pii: bool,
    /// Whether an mcp_scopes filter of the config verifies the bearer token (JWKS via a cluster).
    verifies_jwt: bool,
}

// ---------------------------------------------------------------------------------------------
// Measuring.

#[derive(Debug, Clone, Default, PartialEq)]
struct WrkResult {
    requests: u64,
    secs: f64,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    non_2xx: u64,
    socket_errors: u64,
}

/// Parses a wrk duration such as `83.01us`, `1.56ms` or `2.00s` into microseconds.
fn parse_wrk_time_us(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at_checked(split)?;
    let v: f64 = num.parse().ok()?;
    let mult = match unit {
        "us" => 1.0,
        "ms" => 1_000.0,
        "s" => 1_000_000.0,
        "m" => 60_000_000.0,
        "h" => 3_600_000_000.0,
        _ => return None,
    };
    Some(v * mult)
}

/// Extracts what the bench needs from `wrk --latency` output.
fn parse_wrk(out: &str) -> Result<WrkResult> {
    let mut r = WrkResult::default();
    let mut saw_requests = false;
    for line in out.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("Requests/sec:") {
            r.rps = rest.trim().parse().unwrap_or(0.0);
        } else if let Some(rest) = t.strip_prefix("50%") {
            r.p50_us = parse_wrk_time_us(rest).unwrap_or(f64::NAN);
        } else if let Some(rest) = t.strip_prefix("99%") {
            r.p99_us = parse_wrk_time_us(rest).unwrap_or(f64::NAN);
        } else if let Some(rest) = t.strip_prefix("Non-2xx or 3xx responses:") {
            r.non_2xx = rest.trim().parse().unwrap_or(0);
        } else if let Some(rest) = t.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            r.socket_errors = rest
                .split(',')
                .filter_map(|kv| kv.split_whitespace().nth(1))
                .filter_map(|n| n.parse::<u64>().ok())
                .sum();
        } else if t.contains(" requests in ") {
            // "59063 requests in 5.10s, 66.54MB read"
            let mut words = t.split_whitespace();
            r.requests = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            r.secs = words
                .nth(2)
                .map(|d| d.trim_end_matches(','))
                .and_then(parse_wrk_time_us)
                .map_or(0.0, |us| us / 1e6);
            saw_requests = true;
        }
    }
    if !saw_requests {
        bail!("no request count in wrk output:\n{out}");
    }
    Ok(r)
}

/// utime+stime of a process (all its threads, live and exited), in clock ticks.
fn proc_cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    parse_stat_ticks(&stat).ok_or_else(|| anyhow!("unexpected /proc/{pid}/stat: {stat}"))
}

fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces; fields after its closing ')' start at 3
    // (state), so utime (14) and stime (15) are the 12th and 13th of the rest.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn proc_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn clock_ticks_per_sec() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// One wrk run of one configuration (a slice of a cell's measured window).
#[derive(Debug, Clone)]
struct Slice {
    wrk: WrkResult,
    /// Envoy utime+stime over the slice, in µs (None for the direct upstream).
    cpu_us: Option<f64>,
}

impl Slice {
    fn valid(&self) -> bool {
        self.wrk.non_2xx == 0 && self.wrk.socket_errors == 0 && self.wrk.requests > 0
    }

    fn cpu_us_per_req(&self) -> Option<f64> {
        let us = self.cpu_us?;
        (self.wrk.requests > 0).then(|| us / self.wrk.requests as f64)
    }
}

struct Runner {
    script: PathBuf,
    warmup: Duration,
    ticks_per_sec: u64,
    pin: Option<u32>,
}

impl Runner {
    fn wrk(&self, t: &Target, w: &Workload, conc: u32, secs: u64) -> Result<WrkResult> {
        let mut cmd = match self.pin {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg("wrk");
                c
            }
            None => Command::new("wrk"),
        };
        let out = cmd
            .arg("-t1")
            .arg(format!("-c{conc}"))
            .arg(format!("-d{secs}s"))
            .arg("--latency")
            .arg("--timeout")
            .arg("10s")
            .arg("-s")
            .arg(&self.script)
            .arg(&t.url)
            .env("BENCH_WORKLOAD", &w.key)
            .env("BENCH_BODY", &w.request)
            .env("BENCH_HEADERS", &t.headers)
            .output()
            .context("running wrk (apt-get install wrk)")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "wrk failed ({}): {}{}",
                out.status,
                stdout,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        parse_wrk(&stdout)
    }

    /// Sequential keep-alive requests for the warm-up time: lets V8 tier up the filters' hot code
    /// and fills Envoy's connection pool before the measured window.
    fn warm_up(&self, t: &Target, w: &Workload) {
        let agent = agent();
        let deadline = Instant::now() + self.warmup;
        while Instant::now() < deadline {
            if post(&agent, &t.url, w, &t.headers).is_err() {
                break;
            }
        }
    }

    fn slice(&self, t: &Target, w: &Workload, conc: u32, secs: u64) -> Result<Slice> {
        let pid = t.envoy.as_ref().map(Envoy::pid);
        let before = pid.map(proc_cpu_ticks).transpose()?;
        let wrk = self.wrk(t, w, conc, secs)?;
        let after = pid.map(proc_cpu_ticks).transpose()?;
        let cpu_us = match (before, after) {
            (Some(b), Some(a)) => {
                Some(a.saturating_sub(b) as f64 * 1e6 / self.ticks_per_sec as f64)
            }
            _ => None,
        };
        Ok(Slice { wrk, cpu_us })
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build()
}

/// One request like wrk's; returns the status and the body length.
fn post(
    agent: &ureq::Agent,
    url: &str,
    w: &Workload,
    headers: &str,
) -> Result<(u16, usize, String)> {
    post_body(agent, url, &w.key, &w.request, headers)
}

fn post_body(
    agent: &ureq::Agent,
    url: &str,
    key: &str,
    body: &str,
    headers: &str,
) -> Result<(u16, usize, String)> {
    let mut req = agent
        .post(url)
        .set("content-type", "application/json")
        .set("accept", "application/json, text/event-stream")
        .set("mcp-protocol-version", "2025-06-18")
        .set("x-bench", key);
    for line in headers.lines() {
        if let Some((k, v)) = line.split_once(':') {
            req = req.set(k.trim(), v.trim());
        }
    }
    let resp = match req.send_string(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(anyhow!("POST {url}: {e}")),
    };
    let status = resp.status();
    let text = resp.into_string().context("reading response")?;
    Ok((status, text.len(), text))
}

// ---------------------------------------------------------------------------------------------
// Reporting.

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

fn cmd_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| "?".to_string())
}

/// Other work on the box shows here: our own load is at most ~2 (wrk + Envoy/upstream).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".to_string())
}

/// CPUs of the machine (not of our affinity mask, which `--pin` narrows to one).
fn cpu_count() -> usize {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| s.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "?".to_string())
}

fn fmt_opt(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => "—".to_string(),
    }
}

/// All repetitions of one cell.
type Key = (String, u32, &'static str);

/// All slices of one cell (workload, concurrency, configuration), over all repetitions.
#[derive(Debug, Default)]
struct Agg {
    slices: Vec<Slice>,
}

impl Agg {
    fn requests(&self) -> u64 {
        self.slices.iter().map(|c| c.wrk.requests).sum()
    }

    /// Total Envoy CPU over total requests: slices weigh by their request counts.
    fn cpu(&self) -> Option<f64> {
        let us: f64 = self.slices.iter().map(|c| c.cpu_us).sum::<Option<f64>>()?;
        let n = self.requests();
        (n > 0).then(|| us / n as f64)
    }

    /// Lowest and highest per-slice CPU/request: how much the background moved the number.
    fn cpu_range(&self) -> Option<(f64, f64)> {
        let v: Vec<f64> = self
            .slices
            .iter()
            .filter_map(Slice::cpu_us_per_req)
            .collect();
        let lo = v.iter().copied().reduce(f64::min)?;
        let hi = v.iter().copied().reduce(f64::max)?;
        Some((lo, hi))
    }

    fn rps(&self) -> Option<f64> {
        let secs: f64 = self.slices.iter().map(|c| c.wrk.secs).sum();
        (secs > 0.0).then(|| self.requests() as f64 / secs)
    }

    fn med(&self, f: impl Fn(&Slice) -> f64) -> Option<f64> {
        median(self.slices.iter().map(f).collect())
    }

    fn invalid_note(&self) -> Option<String> {
        if self.slices.iter().all(Slice::valid) && !self.slices.is_empty() {
            return None;
        }
        let non2xx: u64 = self.slices.iter().map(|c| c.wrk.non_2xx).sum();
        let sock: u64 = self.slices.iter().map(|c| c.wrk.socket_errors).sum();
        let mut parts = Vec::new();
        if non2xx > 0 {
            parts.push(format!("{non2xx} non-2xx"));
        }
        if sock > 0 {
            parts.push(format!("{sock} socket errors"));
        }
        if self.slices.iter().any(|c| c.wrk.requests == 0) {
            parts.push("no requests".to_string());
        }
        Some(format!("INVALID ({})", parts.join(", ")))
    }
}

struct Report<'a> {
    args: &'a Args,
    workloads: &'a [Workload],
    configs: Vec<ConfigSpec>,
    skipped: Vec<String>,
    results: HashMap<Key, Agg>,
    probes: HashMap<(String, &'static str), String>,
    rss_mb: Vec<(&'static str, f64)>,
    envoy_version: String,
    started: String,
    wall: Duration,
    /// Header rows proving the configs do what they claim (anchor, token and PII checks).
    checks: Vec<(&'static str, String)>,
    loadavg_start: String,
}

impl Report<'_> {
    fn ratio(&self, wk: &str, conc: u32, cfg: &str) -> Option<f64> {
        let base = self.results.get(&(wk.to_string(), conc, PLAIN))?;
        let this = self.results.get(&(wk.to_string(), conc, cfg))?;
        if base.invalid_note().is_some() || this.invalid_note().is_some() {
            return None;
        }
        let (b, t) = (base.cpu()?, this.cpu()?);
        (b > 0.0).then_some(t / b)
    }

    fn target_cell(&self, wk: &str, conc: u32, cfg: &str) -> String {
        let Some(max) = target(cfg, wk) else {
            return String::new();
        };
        match self.ratio(wk, conc, cfg) {
            Some(r) if r <= max => format!("≤{max:.2}x pass"),
            Some(_) => format!("≤{max:.2}x **FAIL**"),
            None => format!("≤{max:.2}x n/a"),
        }
    }

    fn workload_table(&self, w: &Workload) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| config | conc | Envoy CPU µs/req | slices min–max | × plain | target | p50 µs | p99 µs | req/s | requests | resp bytes | valid |"
        );
        let _ = writeln!(
            s,
            "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|"
        );
        for &conc in &self.args.concurrencies {
            for c in &self.configs {
                let Some(agg) = self.results.get(&(w.key.clone(), conc, c.name)) else {
                    continue;
                };
                let ratio = self.ratio(&w.key, conc, c.name).map(|r| format!("{r:.2}x"));
                let resp = self
                    .probes
                    .get(&(w.key.clone(), c.name))
                    .cloned()
                    .unwrap_or_default();
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    c.name,
                    conc,
                    fmt_opt(agg.cpu(), 1),
                    agg.cpu_range()
                        .map_or_else(|| "—".into(), |(lo, hi)| format!("{lo:.0}–{hi:.0}")),
                    ratio.unwrap_or_else(|| "—".into()),
                    self.target_cell(&w.key, conc, c.name),
                    fmt_opt(agg.med(|c| c.wrk.p50_us), 0),
                    fmt_opt(agg.med(|c| c.wrk.p99_us), 0),
                    fmt_opt(agg.rps(), 0),
                    agg.requests(),
                    resp,
                    agg.invalid_note().unwrap_or_else(|| "ok".into()),
                );
            }
        }
        s
    }

    fn targets_table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| filter | workload | conc | × plain | target | result |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---|");
        for c in &self.configs {
            for w in self.workloads {
                let Some(max) = target(c.name, &w.key) else {
                    continue;
                };
                for &conc in &self.args.concurrencies {
                    if !self.results.contains_key(&(w.key.clone(), conc, c.name)) {
                        continue;
                    }
                    let r = self.ratio(&w.key, conc, c.name);
                    let verdict = match r {
                        Some(r) if r <= max => "pass",
                        Some(_) => "**FAIL**",
                        None => "n/a (invalid cell)",
                    };
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} | ≤{max:.2}x | {verdict} |",
                        c.name,
                        w.key,
                        conc,
                        r.map_or_else(|| "—".into(), |r| format!("{r:.2}x")),
                    );
                }
            }
        }
        s
    }

    /// Ratios only, one row per config and one column per workload: the whole run at a glance.
    fn overview(&self) -> String {
        let workloads: Vec<&Workload> = self
            .workloads
            .iter()
            .filter(|w| self.results.keys().any(|k| k.0 == w.key))
            .collect();
        let concs = &self.args.concurrencies;
        let mut s = String::new();
        let conc_label = concs
            .iter()
            .map(|c| format!("c{c}"))
            .collect::<Vec<_>>()
            .join(" / ");
        let _ = write!(s, "| config ({conc_label}) |");
        for w in &workloads {
            let _ = write!(s, " {} |", w.key);
        }
        let _ = write!(s, "\n|---|");
        for _ in &workloads {
            s.push_str("---:|");
        }
        s.push('\n');
        for c in self.configs.iter().filter(|c| c.source != Source::Direct) {
            let _ = write!(s, "| {} |", c.name);
            for w in &workloads {
                let cells: Vec<String> = concs
                    .iter()
                    .map(|&conc| {
                        let r = self
                            .ratio(&w.key, conc, c.name)
                            .map_or_else(|| "—".to_string(), |r| format!("{r:.2}"));
                        match (target(c.name, &w.key), self.ratio(&w.key, conc, c.name)) {
                            (Some(max), Some(r)) if r > max => format!("**{r:.2}!**"),
                            _ => r,
                        }
                    })
                    .collect();
                let _ = write!(s, " {} |", cells.join(" / "));
            }
            s.push('\n');
        }
        s
    }

    fn tables(&self) -> String {
        let mut s = String::new();
        for w in self.workloads {
            if !self.results.keys().any(|k| k.0 == w.key) {
                continue;
            }
            let _ = writeln!(
                s,
                "### {} — `{}` (request {} B, upstream response {} B)\n",
                w.title,
                w.key,
                w.request.len(),
                w.response.len()
            );
            s.push_str(&self.workload_table(w));
            s.push('\n');
        }
        s
    }

    fn markdown(&self) -> String {
        let a = self.args;
        let mut s = String::new();
        let _ = writeln!(s, "# Benchmark results\n");
        let _ = writeln!(
            s,
            "Generated by `make bench` (`cargo run --release -p mcp-integration --bin bench`); \
             see bench/README.md for the method. Ratios compare Envoy CPU per request with plain \
             Envoy for the same workload and concurrency **in this run**.\n"
        );
        let _ = writeln!(s, "| | |\n|---|---|");
        let _ = writeln!(s, "| date | {} |", self.started);
        let _ = writeln!(
            s,
            "| machine | {} CPUs (nproc), {} |",
            cpu_count(),
            cpu_model()
        );
        let _ = writeln!(s, "| kernel | {} |", cmd_line("uname", &["-r"]));
        let _ = writeln!(s, "| Envoy | {} (`--concurrency 1`) |", self.envoy_version);
        let _ = writeln!(
            s,
            "| load | {} (`-t1`, keep-alive, closed loop) |",
            cmd_line("wrk", &["-v"])
                .split(" Copyright")
                .next()
                .unwrap_or_default()
        );
        let _ = writeln!(
            s,
            "| durations | {} s measured per cell ({} × 1 s wrk runs, round-robin over the configs) after {:.1} s warm-up, {} repetition(s), concurrency {}; whole run {:.0} s |",
            a.duration,
            a.duration,
            a.warmup.as_secs_f64(),
            a.reps,
            a.concurrencies.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            self.wall.as_secs_f64()
        );
        let _ = writeln!(
            s,
            "| pinning | {} |",
            a.pin.map_or_else(
                || "none (scheduler places wrk, upstream and Envoy)".to_string(),
                |c| format!("wrk, upstream and every Envoy on CPU {c} (`--pin {c}`)")
            )
        );
        let _ = writeln!(
            s,
            "| command | `bench {}` |",
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        );
        let _ = writeln!(
            s,
            "| load average (1/5/15 min) | {} at start, {} at end |",
            self.loadavg_start,
            loadavg()
        );
        for (what, line) in &self.checks {
            let _ = writeln!(s, "| {what} | {line} |");
        }
        if !self.rss_mb.is_empty() {
            let rss: Vec<String> = self
                .rss_mb
                .iter()
                .map(|(n, mb)| format!("{n} {mb:.0}"))
                .collect();
            let _ = writeln!(s, "| Envoy RSS MB after the run | {} |", rss.join(", "));
        }
        for sk in &self.skipped {
            let _ = writeln!(s, "| skipped | {sk} |");
        }
        let _ = writeln!(
            s,
            "\n## Overview: Envoy CPU per request ÷ plain Envoy\n\n`!` marks a cell over its target.\n"
        );
        s.push_str(&self.overview());
        let _ = writeln!(s, "\n## Targets\n");
        s.push_str(&self.targets_table());
        let _ = writeln!(s, "\n## Per workload\n");
        let _ = writeln!(
            s,
            "`resp bytes` is the body size a client received through that config (one probe request \
             before the run); `valid` is `INVALID` when wrk saw non-2xx responses or socket errors.\n"
        );
        s.push_str(&self.tables());
        s
    }
}

// ---------------------------------------------------------------------------------------------

/// Request headers of a target: its bearer token first, then the `--header` ones (which can
/// override it).
fn target_headers(token: Option<&str>, extra: &str) -> String {
    match token {
        Some(t) => format!("authorization: Bearer {t}\n{extra}"),
        None => extra.to_string(),
    }
}

/// Starts every selected configuration. Each gets an RS256 bearer token from `idp`: minted for
/// its own `mcp_scopes` JWT settings (whose `jwks` cluster is pointed at the bench's JWKS
/// server), else the one for the shipped `envoy/mcp_scopes.yaml`, so every config sees the same
/// request headers and plain Envoy pays for the same bytes.
fn start_targets(
    args: &Args,
    upstream: SocketAddr,
    idp: &BenchIdp,
    skipped: &mut Vec<String>,
) -> Result<Vec<Target>> {
    let extra = args.headers.join("\n");
    let shipped = scopes_jwt(&EnvoyConfig::load("mcp_scopes.yaml")?);
    let default_token = shipped.first().map(|r| idp.token(r)).transpose()?;
    let mut out = Vec::new();
    for spec in CONFIGS.iter().filter(|s| selected(s, &args.only)) {
        let Some(cfg) = load_config(spec)? else {
            out.push(Target {
                spec: *spec,
                url: format!("http://{upstream}/mcp"),
                envoy: None,
                headers: target_headers(default_token.as_deref(), &extra),
                scrubs_pii: false,
                verifies_jwt: false,
            });
            continue;
        };
        let mut cfg = cfg.upstream("mcp_upstream", upstream);
        if spec.source == Source::ScopesExchange {
            cfg = cfg.upstream(EXCHANGE_CLUSTER, bench_token_endpoint()?);
        }
        let needs = scopes_jwt(&cfg);
        for cluster in needs.iter().filter_map(|r| r.jwks_cluster.as_deref()) {
            cfg = cfg.upstream(cluster, idp.jwks.addr());
        }
        let token = match needs.as_slice() {
            [] => default_token.clone(),
            [one] => Some(idp.token(one)?),
            _ => bail!(
                "{}: more than one mcp_scopes filter verifies JWTs; the bench mints one token per config",
                spec.name
            ),
        };
        let scrubs_pii = cfg
            .wasm_files()
            .iter()
            .any(|f| f.file_name().is_some_and(|n| n == "mcp_pii.wasm"))
            || module_has_pii(&cfg);
        let missing: Vec<String> = cfg
            .wasm_files()
            .into_iter()
            .filter(|f| !f.is_file())
            .map(|f| f.display().to_string())
            .collect();
        if !missing.is_empty() {
            let msg = format!(
                "{}: missing {} (run `make build`)",
                spec.name,
                missing.join(", ")
            );
            eprintln!("skipping {msg}");
            skipped.push(msg);
            continue;
        }
        let opts = EnvoyOptions::default().concurrency(1).log_level("warn");
        let envoy = match Envoy::start_with(cfg, opts) {
            Ok(e) => e,
            Err(e) => {
                // A config the current filters reject (e.g. dist/ older than envoy/) must not
                // cost the whole run; the report lists it.
                let why = format!("{e:#}");
                eprintln!("skipping {}: Envoy failed to start: {why}", spec.name);
                let line = why
                    .lines()
                    .find(|l| l.contains("critical") || l.contains("error"))
                    .unwrap_or_else(|| why.lines().next().unwrap_or_default());
                let line: String = line.trim().chars().take(300).collect();
                skipped.push(format!(
                    "{}: Envoy failed to start: `{}`",
                    spec.name,
                    line.replace('`', "'").replace('|', "\\|")
                ));
                continue;
            }
        };
        if let Some(cpu) = args.pin {
            pin_process(envoy.pid(), cpu)?;
        }
        eprintln!(
            "started {} (pid {}, port {})",
            spec.name,
            envoy.pid(),
            envoy.port
        );
        out.push(Target {
            spec: *spec,
            url: envoy.url("/mcp"),
            envoy: Some(envoy),
            headers: target_headers(token.as_deref(), &extra),
            scrubs_pii,
            verifies_jwt: !needs.is_empty(),
        });
    }
    Ok(out)
}

/// The anchor must really enforce its policy, or it would be a cheaper config than it claims.
fn check_anchor(targets: &[Target]) -> Result<String> {
    let Some(t) = targets.iter().find(|t| t.spec.name == "native-mcp-rbac") else {
        return Ok(String::new());
    };
    let agent = agent();
    let (denied, _, _) = post_body(
        &agent,
        &t.url,
        "call",
        &call_request(DENIED_TOOL),
        &t.headers,
    )?;
    let (allowed, _, _) = post_body(&agent, &t.url, "call", &call_request(CALL_TOOL), &t.headers)?;
    if denied != 403 || allowed != 200 {
        bail!("native-mcp-rbac anchor does not enforce its policy: tools/call {DENIED_TOOL} → {denied}, search_docs_000 → {allowed} (expected 403 / 200)");
    }
    Ok(format!(
        "native-mcp-rbac: tools/call `{DENIED_TOOL}` → 403, `search_docs_000` → 200"
    ))
}

/// Configs that verify JWTs fetch the JWK Set after start-up and refuse every token until it
/// arrives (503): waits for that, then checks the bench token is accepted (200) and that the
/// filter really enforces (no token → 401). A config that refuses the token is skipped (its cells
/// would only measure 401s).
fn check_tokens(targets: &mut Vec<Target>, skipped: &mut Vec<String>) -> Vec<String> {
    let agent = agent();
    let body = call_request(CALL_TOOL);
    let mut lines = Vec::new();
    let mut refused = Vec::new();
    for (i, t) in targets.iter().enumerate().filter(|(_, t)| t.verifies_jwt) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut status = 0;
        while Instant::now() < deadline {
            status = match post_body(&agent, &t.url, "call", &body, &t.headers) {
                Ok((s, _, _)) => s,
                Err(_) => 0,
            };
            if status != 503 && status != 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let anonymous = t
            .headers
            .lines()
            .filter(|l| !l.to_ascii_lowercase().starts_with("authorization:"))
            .collect::<Vec<_>>()
            .join("\n");
        let (without, _, _) =
            post_body(&agent, &t.url, "call", &body, &anonymous).unwrap_or((0, 0, String::new()));
        if status == 200 && without == 401 {
            // A second request with the same token must come from the per-worker token cache.
            let _ = post_body(&agent, &t.url, "call", &body, &t.headers);
            let hits = t
                .envoy
                .as_ref()
                .and_then(|e| e.stat("wasmcustom.mcp_scopes.token_cache_hits"))
                .map_or_else(|| "?".to_string(), |n| n.to_string());
            let stat = |n: &str| {
                t.envoy
                    .as_ref()
                    .and_then(|e| e.stat(&format!("wasmcustom.mcp_scopes.{n}")))
                    .unwrap_or(0)
            };
            let exchange = if t.spec.source == Source::ScopesExchange {
                // Measured with the issued token cached: one exchange, then cache hits.
                let (exchanged, cached) = (stat("exchanged"), stat("exchange_cache_hits"));
                if exchanged != 1 || cached == 0 {
                    let why = format!(
                        "{}: token exchange not cached (exchanged {exchanged}, exchange_cache_hits {cached})",
                        t.spec.name
                    );
                    eprintln!("skipping {why}");
                    skipped.push(why);
                    refused.push(i);
                    continue;
                }
                format!("; `exchanged` {exchanged}, `exchange_cache_hits` {cached}")
            } else {
                String::new()
            };
            lines.push(format!(
                "{}: RS256 bearer token (JWKS from the bench IdP) → tools/call `{CALL_TOOL}` 200; no token → 401; `token_cache_hits` {hits} after the checks{exchange}",
                t.spec.name
            ));
        } else {
            let why = format!(
                "{}: bench token not accepted: tools/call `{CALL_TOOL}` → HTTP {status} with the token, {without} without (expected 200 / 401)",
                t.spec.name
            );
            eprintln!("skipping {why}");
            skipped.push(why);
            refused.push(i);
        }
    }
    for i in refused.into_iter().rev() {
        targets.remove(i);
    }
    lines
}

/// What a client of `t` must receive for workload `w` (`call*` workloads only: their responses
/// pass every config unchanged, except that mcp_pii redacts the planted values). `None` when
/// the body is as expected, else what is wrong.
fn pii_problem(t: &Target, w: &Workload, body: &str) -> Option<String> {
    let sent = std::str::from_utf8(&w.response).unwrap_or_default();
    if !t.scrubs_pii || w.planted.is_empty() {
        return (body != sent).then(|| {
            format!(
                "{} {}: body differs from the upstream's ({} vs {} bytes)",
                t.spec.name,
                w.key,
                body.len(),
                sent.len()
            )
        });
    }
    let leaked: Vec<&str> = w
        .planted
        .iter()
        .copied()
        .filter(|v| body.contains(v))
        .collect();
    let redacted = body.matches("[REDACTED:").count();
    (!leaked.is_empty() || redacted != w.planted.len()).then(|| {
        format!(
            "{} {}: {redacted} values redacted (expected {}), raw values delivered: {leaked:?}",
            t.spec.name,
            w.key,
            w.planted.len()
        )
    })
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let args = parse_args(std::env::args().skip(1))?;
    let started_at = Instant::now();
    let started = cmd_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let loadavg_start = loadavg();
    let script = bench_dir().join("mcp.lua");
    if !script.is_file() {
        bail!("{} not found", script.display());
    }
    if Command::new("wrk").arg("-v").output().is_err() {
        bail!("wrk not found: apt-get install wrk");
    }
    let envoy_bin = paths::envoy_bin()?;
    let envoy_version = cmd_line(&envoy_bin.to_string_lossy(), &["--version"])
        .rsplit("version: ")
        .next()
        .unwrap_or_default()
        .to_string();

    let all = workloads();
    let selected_workloads: Vec<Workload> = all
        .into_iter()
        .filter(|w| {
            args.workloads.is_empty()
                || args.workloads.iter().any(|s| match s.strip_prefix('=') {
                    Some(exact) => w.key == exact,
                    None => w.key.contains(s.as_str()),
                })
        })
        .collect();
    if selected_workloads.is_empty() {
        bail!("--workload matched nothing (workloads: call, call-11k-{{json,sse}}, call-11k-pii10-{{json,sse}}, list-{{5,50,500}}-{{json,sse}})");
    }
    println!("workloads (request bytes → upstream response bytes):");
    for w in &selected_workloads {
        println!(
            "  {:<19} {:>4} B → {:>7} B  {}",
            w.key,
            w.request.len(),
            w.response.len(),
            w.title
        );
    }
    // Every workload, not only the selected ones: the anchor and token checks use `call`.
    let canned: HashMap<String, Canned> = workloads()
        .iter()
        .map(|w| {
            (
                w.key.clone(),
                Canned {
                    body: w.response.clone(),
                    sse: w.sse,
                },
            )
        })
        .collect();
    let upstream = start_upstream(canned)?;
    if let Some(cpu) = args.pin {
        // After the upstream thread exists: `taskset -a` moves every thread of this process.
        pin_process(std::process::id(), cpu)?;
    }
    let idp = BenchIdp::start()?;

    let mut skipped = Vec::new();
    let mut targets = start_targets(&args, upstream, &idp, &mut skipped)?;
    let mut checks = Vec::new();
    for line in check_tokens(&mut targets, &mut skipped) {
        println!("{line}");
        checks.push(("token check", line));
    }
    let anchor_check = check_anchor(&targets)?;
    if !anchor_check.is_empty() {
        println!("{anchor_check}");
        checks.push(("anchor check", anchor_check));
    }

    // One probe per cell: response size through each config (filters may rewrite bodies), and
    // for the tools/call workloads proof that mcp_pii redacted what was planted and nothing else
    // changed a body.
    let agent = agent();
    let mut probes = HashMap::new();
    let mut pii_problems = Vec::new();
    let mut pii_verified = Vec::new();
    let mut call_bodies_checked = false;
    for w in &selected_workloads {
        for t in &targets {
            let text = match post(&agent, &t.url, w, &t.headers) {
                Ok((200, len, body)) => {
                    if w.key.starts_with("call") {
                        call_bodies_checked = true;
                        match pii_problem(t, w, &body) {
                            Some(p) => pii_problems.push(p),
                            None if t.scrubs_pii && !w.planted.is_empty() => {
                                pii_verified.push(format!("{} `{}`", t.spec.name, w.key))
                            }
                            None => {}
                        }
                    }
                    len.to_string()
                }
                Ok((status, len, body)) => {
                    eprintln!(
                        "probe {} {}: HTTP {status}: {}",
                        t.spec.name,
                        w.key,
                        body.chars().take(200).collect::<String>()
                    );
                    format!("{len} (HTTP {status})")
                }
                Err(e) => {
                    eprintln!("probe {} {}: {e:#}", t.spec.name, w.key);
                    "error".to_string()
                }
            };
            probes.insert((w.key.clone(), t.spec.name), text);
        }
    }
    if !pii_problems.is_empty() {
        bail!(
            "tools/call bodies not as expected (mcp_pii must redact exactly the planted values, nothing else may change a body):\n  {}",
            pii_problems.join("\n  ")
        );
    }
    if call_bodies_checked {
        let mut line = String::new();
        if !pii_verified.is_empty() {
            let _ = write!(
                line,
                "{} PII values planted per body, all delivered redacted (`[REDACTED:…]`, no raw value) by {}; ",
                PII10.len(),
                pii_verified.join(", ")
            );
        }
        line.push_str(
            "every other `call*` body byte-identical to the upstream's through every config",
        );
        println!("pii check: {line}");
        checks.push(("pii check", line));
    }

    let runner = Runner {
        script,
        warmup: args.warmup,
        ticks_per_sec: clock_ticks_per_sec(),
        pin: args.pin,
    };
    let cells = args.reps * selected_workloads.len() * args.concurrencies.len() * targets.len();
    // wrk start-up and connection set-up add ~0.05 s per 1 s slice.
    let per_cell = args.duration as f64 * 1.05 + args.warmup.as_secs_f64();
    println!(
        "{} configs × {} workloads × concurrency {:?} × {} rep(s) = {cells} cells, ~{:.0} s",
        targets.len(),
        selected_workloads.len(),
        args.concurrencies,
        args.reps,
        cells as f64 * per_cell
    );

    let mut results: HashMap<Key, Agg> = HashMap::new();
    let mut done = 0usize;
    for rep in 0..args.reps {
        for w in &selected_workloads {
            for &conc in &args.concurrencies {
                for t in &targets {
                    runner.warm_up(t, w);
                }
                // The measured window is cut into 1 s wrk runs, round-robin over the
                // configurations, so background load drifting during the ~minute a workload takes
                // hits every configuration alike and the ratios to plain Envoy stay comparable.
                for _ in 0..args.duration {
                    for t in &targets {
                        let slice = runner
                            .slice(t, w, conc, 1)
                            .with_context(|| format!("{} {} c{conc}", t.spec.name, w.key))?;
                        results
                            .entry((w.key.clone(), conc, t.spec.name))
                            .or_default()
                            .slices
                            .push(slice);
                    }
                }
                for t in &targets {
                    done += 1;
                    let Some(agg) = results.get(&(w.key.clone(), conc, t.spec.name)) else {
                        continue;
                    };
                    println!(
                        "[{done}/{cells}] rep {} {:<19} c{:<3} {:<16} cpu/req {:>8} µs  p50 {:>8} µs  p99 {:>8} µs  {:>8} req/s{}",
                        rep + 1,
                        w.key,
                        conc,
                        t.spec.name,
                        fmt_opt(agg.cpu(), 1),
                        fmt_opt(agg.med(|c| c.wrk.p50_us), 0),
                        fmt_opt(agg.med(|c| c.wrk.p99_us), 0),
                        fmt_opt(agg.rps(), 0),
                        agg.invalid_note().map(|n| format!("  {n}")).unwrap_or_default()
                    );
                }
            }
        }
    }

    let rss_mb = targets
        .iter()
        .filter_map(|t| {
            let pid = t.envoy.as_ref()?.pid();
            Some((t.spec.name, proc_rss_kb(pid)? as f64 / 1024.0))
        })
        .collect();
    let report = Report {
        args: &args,
        workloads: &selected_workloads,
        configs: targets.iter().map(|t| t.spec).collect(),
        skipped,
        results,
        probes,
        rss_mb,
        envoy_version,
        started,
        wall: started_at.elapsed(),
        checks,
        loadavg_start,
    };
    let md = report.markdown();
    println!("\n{md}");
    if let Some(out) = &args.out {
        write_out(out, &md)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

/// Pins every thread of `pid` to one CPU (`--pin`): with wrk, the upstream and a 1-worker Envoy
/// on one core there are no cross-CPU wake-ups, which otherwise make c=1 costs swing run to run.
fn pin_process(pid: u32, cpu: u32) -> Result<()> {
    let out = Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .output()
        .context("running taskset")?;
    if !out.status.success() {
        bail!(
            "taskset -a -p -c {cpu} {pid} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn write_out(out: &Path, md: &str) -> Result<()> {
    // Relative paths are relative to the repository, whatever directory cargo runs us from.
    let path = if out.is_relative() {
        paths::repo_root().join(out)
    } else {
        out.to_path_buf()
    };
    std::fs::write(&path, md).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK_OUT: &str = "Running 5s test @ http://127.0.0.1:10000/mcp
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.01ms  310.12us   12.56ms   95.12%
    Req/Sec    15.87k   550.23    16.56k    80.39%
  Latency Distribution
     50%    1.95ms
     75%    2.03ms
     90%    2.20ms
     99%  950.00us
  79063 requests in 5.10s, 66.54MB read
  Non-2xx or 3xx responses: 3
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:  15502.55
Transfer/sec:     13.05MB
";

    #[test]
    fn wrk_output_yields_counts_rate_percentiles_and_errors() {
        let r = parse_wrk(WRK_OUT).unwrap();
        assert_eq!(r.requests, 79063);
        assert!((r.secs - 5.10).abs() < 1e-9);
        assert!((r.rps - 15502.55).abs() < 1e-9);
        assert!((r.p50_us - 1950.0).abs() < 1e-9);
        assert!((r.p99_us - 950.0).abs() < 1e-9);
        assert_eq!(r.non_2xx, 3);
        assert_eq!(r.socket_errors, 3);
    }

    #[test]
    fn wrk_output_without_request_count_is_an_error() {
        assert!(parse_wrk("unable to connect to 127.0.0.1:1 Connection refused").is_err());
    }

    #[test]
    fn wrk_times_convert_to_microseconds() {
        assert_eq!(parse_wrk_time_us("83.00us"), Some(83.0));
        assert_eq!(parse_wrk_time_us(" 1.50ms"), Some(1500.0));
        assert_eq!(parse_wrk_time_us("2.00s"), Some(2_000_000.0));
        assert_eq!(parse_wrk_time_us("12"), None);
    }

    #[test]
    fn proc_stat_cpu_is_utime_plus_stime_even_with_spaces_in_the_name() {
        let stat =
            "1234 (envoy worker) S 1 1234 1234 0 -1 4194560 5000 0 0 0 150 25 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat_ticks(stat), Some(175));
    }

    #[test]
    fn generated_tool_lists_have_the_documented_sizes() {
        let sizes: Vec<usize> = [5, 50, 500]
            .iter()
            .map(|n| tools_list_response(*n).len())
            .collect();
        assert!((900..1400).contains(&sizes[0]), "{sizes:?}");
        assert!((10_000..12_500).contains(&sizes[1]), "{sizes:?}");
        assert!((100_000..120_000).contains(&sizes[2]), "{sizes:?}");
        let v: serde_json::Value = serde_json::from_str(&tools_list_response(50)).unwrap();
        assert_eq!(v["result"]["tools"].as_array().unwrap().len(), 50);
    }

    #[test]
    fn tools_call_request_is_about_300_bytes_and_names_the_tool() {
        let req = call_request("search_docs_000");
        assert!((250..350).contains(&req.len()), "{}", req.len());
        let v: serde_json::Value = serde_json::from_str(&req).unwrap();
        assert_eq!(v["params"]["name"], "search_docs_000");
    }

    #[test]
    fn sse_workloads_carry_one_message_event() {
        let sse: Vec<Workload> = workloads().into_iter().filter(|w| w.sse).collect();
        assert_eq!(sse.len(), 5);
        for w in sse {
            let text = std::str::from_utf8(&w.response).unwrap();
            assert!(text.starts_with("event: message\ndata: {"));
            assert!(text.ends_with("}\n\n"));
        }
    }

    #[test]
    fn targets_apply_only_to_the_issue_cells() {
        assert_eq!(target("mcp_tools", "list-500-sse"), Some(3.0));
        assert_eq!(target("mcp_telemetry", "list-50-sse"), Some(1.3));
        assert_eq!(target("mcp_telemetry", "list-50-json"), None);
        assert_eq!(target("plain", "call"), None);
        assert_eq!(target("mcp_pii", "call-11k-json"), Some(1.6));
        assert_eq!(target("mcp_pii", "call-11k-sse"), Some(1.6));
        assert_eq!(target("mcp_pii", "call-11k-pii10-json"), Some(2.0));
        assert_eq!(target("mcp_pii", "call-11k-pii10-sse"), Some(2.0));
        // tools/list is outside mcp_pii's scope: its targets are on tools/call results.
        assert_eq!(target("mcp_pii", "list-50-json"), None);
    }

    #[test]
    fn eleven_kb_call_results_plant_exactly_the_ten_pii_values() {
        let clean = call_11k_response(&[]);
        let dirty = call_11k_response(&PII10);
        for body in [&clean, &dirty] {
            assert!((10_500..12_000).contains(&body.len()), "{}", body.len());
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["id"], CALL_ID);
            assert!(v["result"]["content"][0]["text"].is_string());
        }
        for value in PII10 {
            assert_eq!(dirty.matches(value).count(), 1, "{value}");
            assert!(!clean.contains(value), "{value}");
        }
        let keys: Vec<String> = workloads()
            .into_iter()
            .filter(|w| !w.planted.is_empty())
            .map(|w| w.key)
            .collect();
        assert_eq!(keys, ["call-11k-pii10-json", "call-11k-pii10-sse"]);
    }

    fn target_for(name: &'static str, scrubs_pii: bool) -> Target {
        Target {
            spec: ConfigSpec {
                name,
                source: Source::Direct,
            },
            url: String::new(),
            envoy: None,
            headers: String::new(),
            scrubs_pii,
            verifies_jwt: false,
        }
    }

    #[test]
    fn pii_check_wants_every_planted_value_redacted_and_other_bodies_unchanged() {
        let all = workloads();
        let dirty = all.iter().find(|w| w.key == "call-11k-pii10-json").unwrap();
        let clean = all.iter().find(|w| w.key == "call-11k-json").unwrap();
        let sent = std::str::from_utf8(&dirty.response).unwrap().to_string();
        let mut scrubbed = sent.clone();
        for v in PII10 {
            scrubbed = scrubbed.replace(v, "[REDACTED:x]");
        }
        let pii = target_for("mcp_pii", true);
        let plain = target_for("plain", false);
        assert_eq!(pii_problem(&pii, dirty, &scrubbed), None);
        assert!(pii_problem(&pii, dirty, &sent).is_some(), "raw values");
        let one_left = sent.replacen(PII10[0], "[REDACTED:email]", 1);
        assert!(pii_problem(&pii, dirty, &one_left).is_some());
        assert_eq!(pii_problem(&plain, dirty, &sent), None);
        assert!(pii_problem(&plain, dirty, &scrubbed).is_some());
        let clean_body = std::str::from_utf8(&clean.response).unwrap();
        assert_eq!(pii_problem(&pii, clean, clean_body), None);
        assert!(pii_problem(&pii, clean, &clean_body.replace("UPS", "[REDACTED:x]")).is_some());
    }

    #[test]
    fn star_globs_match_tool_names() {
        assert!(glob_matches("*", "search_docs_000"));
        assert!(glob_matches("search_*", "search_docs_000"));
        assert!(glob_matches("*_000", "search_docs_000"));
        assert!(glob_matches("s*docs*0", "search_docs_000"));
        assert!(glob_matches("search_docs_000", "search_docs_000"));
        assert!(!glob_matches("delete_*", "search_docs_000"));
        assert!(!glob_matches("search", "search_docs_000"));
        assert!(!glob_matches("*_001", "search_docs_000"));
    }

    #[test]
    fn the_shipped_mcp_scopes_config_tells_what_the_bench_token_needs() {
        let cfg = EnvoyConfig::load("mcp_scopes.yaml").unwrap();
        assert_eq!(
            scopes_jwt(&cfg),
            [ScopesJwt {
                issuer: "http://localhost:3002".into(),
                audience: "http://localhost:10000/mcp".into(),
                jwks_cluster: Some("jwks".into()),
                scopes: vec!["mcp:tools".into()],
            }]
        );
        // A token is added in front of the user's headers, which can override it.
        assert_eq!(
            target_headers(Some("t"), "x-a: 1"),
            "authorization: Bearer t\nx-a: 1"
        );
        assert_eq!(target_headers(None, "x-a: 1"), "x-a: 1");
        assert!(scopes_jwt(&EnvoyConfig::load("plain.yaml").unwrap()).is_empty());
    }

    #[test]
    fn quick_mode_runs_concurrency_one_for_two_seconds() {
        let a = parse_args(["--quick".to_string()]).unwrap();
        assert_eq!(a.duration, 2);
        assert_eq!(a.concurrencies, vec![1]);
        let a =
            parse_args(["--conc", "1,8", "--duration", "3", "--no-pin"].map(String::from)).unwrap();
        assert_eq!(a.pin, None);
        assert_eq!(a.concurrencies, vec![1, 8]);
        assert_eq!(a.duration, 3);
    }

    #[test]
    fn only_keeps_plain_envoy_as_the_baseline() {
        let only = vec!["mcp_tools".to_string()];
        let names: Vec<&str> = CONFIGS
            .iter()
            .filter(|c| selected(c, &only))
            .map(|c| c.name)
            .collect();
        assert_eq!(names, vec!["plain", "mcp_tools", "mcp_tools+pins"]);
    }

    #[test]
    fn median_ignores_nan_and_picks_the_middle() {
        assert_eq!(median(vec![3.0, f64::NAN, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![]), None);
    }
}
