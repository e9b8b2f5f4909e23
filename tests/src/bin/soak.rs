//! `make soak`: mixed MCP traffic through the shipped full chain (`envoy/mcp-gateway.yaml`: the
//! `mcp_gateway` module with every policy, its `scopes` policy verifying tokens against a remote
//! JWKS) in front of the test MCP server, at a fixed concurrency for `--seconds N`, with a JWKS key rotation half-way.
//!
//! It reports requests sent and answered, answers by HTTP status and cause (the client's view:
//! JSON-RPC error code; Envoy's: `%RESPONSE_CODE_DETAILS%` from the access log), lost requests
//! (every request that should reach the server is in its record, and no refused one is), Envoy's
//! RSS, heap and wasm linear memory sampled every second, and wasm VM restarts. It exits non-zero
//! unless nothing was lost, no answer was unexpected, no VM restarted and memory stayed flat
//! (see [`FLAT`]).
//!
//! `soak [--seconds 60] [--concurrency 32] [--envoy-concurrency 2] [--json <report.json>]`

// Indexing a serde_json::Value returns Null for a missing key; it never panics.
#![allow(clippy::indexing_slicing)]

use anyhow::{anyhow, bail, Context as _, Result};
use jwt_simple::prelude::*;
use mcp_integration::client::{self, Stateless, ACCEPT_BOTH};
use mcp_integration::scopes_support::{self, jwks_of, Extra, JwksServer, ISSUER, RESOURCE};
use mcp_integration::server::demo_tools;
use mcp_integration::server::tools::{CUSTOMER_CARD, CUSTOMER_EMAIL};
use mcp_integration::{Envoy, EnvoyConfig, EnvoyOptions, ServerOptions, TestServer, ToolSpec};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

/// The wasm filter of `envoy/mcp-gateway.yaml` that runs every MCP policy.
const GATEWAY_FILTER: &str = "mcp_gateway";

const USAGE: &str =
    "usage: soak [--seconds 60] [--concurrency 32] [--envoy-concurrency 2] [--json <report.json>]";

/// Marks each request; the server records it, which is how a request is found in the record.
const SEQ_HEADER: &str = "x-soak-seq";
/// Fake PII sent in tool arguments: must never reach the server.
const ARG_EMAIL: &str = "mary.major@example.org";
const ARG_CARD: &str = "5500 0000 0000 0004";
/// Every raw PII value of the run: none may reach the server (arguments) or a client (results).
const RAW_PII: [&str; 4] = [ARG_EMAIL, ARG_CARD, CUSTOMER_EMAIL, CUSTOMER_CARD];

/// What "flat memory" means: judged on the samples after warm-up, split in thirds, comparing
/// the last third with the first (about 2/3 of the judged time apart).
struct Flat {
    /// The first part of the run is not judged: connection pools, caches, stats and the wasm
    /// heaps grow to their working size.
    warm_up_fraction: f64,
    /// Envoy's RSS: the last third's mean may exceed the first third's by this fraction.
    rss_growth: f64,
    /// The wasm linear memory of all VMs together, mapped and resident: the last third's
    /// maximum may exceed the first third's maximum by this many bytes (each).
    wasm_growth_bytes: u64,
}

/// Measured on the 2-core box (60 s, 32 clients, ~1500 requests/s through the `mcp_gateway`
/// module, 4 VMs): Envoy's RSS (~144 MiB) moves by < 0.1% between the thirds; the wasm linear
/// memory (5.1 MiB over the 4 VMs) grows by at most one 64 KiB page after warm-up (around the
/// key rotation), its resident part by ~20 KiB.
///
/// * RSS +3%: ~4.3 MiB over the ~30 s between the thirds' means, so a leak of >= ~100 bytes per
///   request anywhere in Envoy fails the run, while 30x the measured drift passes.
/// * wasm +1 MiB (16 pages; a grow never shrinks): the policies allocate per request inside
///   their VMs, so a leak there shows here first; 1 MiB over the ~45k requests between the
///   thirds is ~25 bytes per request, and 16x the one page seen.
const FLAT: Flat = Flat {
    warm_up_fraction: 0.2,
    rss_growth: 0.03,
    wasm_growth_bytes: 1 << 20,
};

#[derive(Debug)]
struct Args {
    seconds: u64,
    concurrency: usize,
    envoy_concurrency: u32,
    json: Option<String>,
}

fn parse_args() -> Result<Args> {
    let mut out = Args {
        seconds: 60,
        concurrency: 32,
        envoy_concurrency: 2,
        json: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .ok_or_else(|| anyhow!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--seconds" => out.seconds = val()?.parse().context("--seconds")?,
            "--concurrency" => out.concurrency = val()?.parse().context("--concurrency")?,
            "--envoy-concurrency" => {
                out.envoy_concurrency = val()?.parse().context("--envoy-concurrency")?;
            }
            "--json" => out.json = Some(val()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if out.seconds < 10 || out.concurrency == 0 {
        bail!("--seconds must be >= 10 and --concurrency >= 1\n{USAGE}");
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The traffic

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    /// Stateless `tools/list`, JSON answer: the hidden tool is gone from it.
    ListJson,
    /// Stateless `tools/list`, SSE answer.
    ListSse,
    /// 2025-11-25 `tools/list` (no session: the server does not require one here), SSE.
    ListLegacy,
    /// `tools/call echo`, JSON.
    EchoJson,
    /// `tools/call add`, SSE with two progress and one log notification before the result.
    AddSse,
    /// `tools/call echo` with an email and a card number in the argument (JSON or SSE).
    PiiInArguments,
    /// `tools/call customer_record`, whose result carries an email and a card number (SSE).
    PiiInResult,
    /// `tools/call delete_repo` with the `repo:admin` token.
    AdminCall,
    /// `ping`.
    Ping,
    /// Refused by the tools policy: `admin_reset` is hidden by the shipped deny list.
    HiddenTool,
    /// Refused by the scopes policy: no token.
    NoToken,
    /// Refused by the scopes policy: `delete_repo` needs `repo:admin`, the token has `mcp:tools`.
    InsufficientScope,
    /// Refused by the request gate: not JSON.
    MalformedJson,
    /// Refused by the request gate: a JSON-RPC batch.
    Batch,
    /// Refused by the request gate: `Mcp-Name` disagrees with the body.
    HeaderMismatch,
}

/// One round of the mix (each worker walks it from its own offset): 3/4 of the requests reach
/// the server, 1/4 are refusals.
const MIX: [Kind; 20] = [
    Kind::ListJson,
    Kind::EchoJson,
    Kind::AddSse,
    Kind::PiiInArguments,
    Kind::HiddenTool,
    Kind::ListSse,
    Kind::PiiInResult,
    Kind::EchoJson,
    Kind::NoToken,
    Kind::AdminCall,
    Kind::ListLegacy,
    Kind::AddSse,
    Kind::MalformedJson,
    Kind::PiiInArguments,
    Kind::Ping,
    Kind::InsufficientScope,
    Kind::PiiInResult,
    Kind::Batch,
    Kind::EchoJson,
    Kind::HeaderMismatch,
];

impl Kind {
    /// Whether the gateway lets it through to the server.
    fn reaches_server(self) -> bool {
        !matches!(
            self,
            Kind::HiddenTool
                | Kind::NoToken
                | Kind::InsufficientScope
                | Kind::MalformedJson
                | Kind::Batch
                | Kind::HeaderMismatch
        )
    }

    /// For refusals: the HTTP status and JSON-RPC error code the client must get (None: any body).
    fn refusal(self) -> Option<(u16, Option<i64>)> {
        match self {
            Kind::HiddenTool => Some((200, Some(-32602))),
            Kind::NoToken => Some((401, None)),
            Kind::InsufficientScope => Some((403, None)),
            Kind::MalformedJson => Some((400, Some(-32700))),
            Kind::Batch => Some((400, Some(-32600))),
            Kind::HeaderMismatch => Some((400, Some(-32020))),
            _ => None,
        }
    }
}

/// The tokens of one signing key.
#[derive(Clone)]
struct Tokens {
    user: String,
    admin: String,
}

fn claims(sub: &str, scope: &str) -> JWTClaims<Extra> {
    Claims::with_custom_claims(
        Extra {
            scope: Some(scope.to_string()),
            ..Extra::default()
        },
        Duration::from_hours(2),
    )
    .with_issuer(ISSUER)
    .with_audience(RESOURCE)
    .with_subject(sub)
}

/// The issuer's keys: ES256 `ec-1` before the rotation, EdDSA `ed-1` after.
struct Keys {
    old: ES256KeyPair,
    new: Ed25519KeyPair,
}

impl Keys {
    fn generate() -> Self {
        Keys {
            old: ES256KeyPair::generate().with_key_id("ec-1"),
            new: Ed25519KeyPair::generate().with_key_id("ed-1"),
        }
    }

    fn old_tokens(&self) -> Result<Tokens> {
        Ok(Tokens {
            user: self.old.sign(claims("soak-user", "mcp:tools"))?,
            admin: self
                .old
                .sign(claims("soak-admin", "mcp:tools repo:admin"))?,
        })
    }

    fn new_tokens(&self) -> Result<Tokens> {
        Ok(Tokens {
            user: self.new.sign(claims("soak-user", "mcp:tools"))?,
            admin: self
                .new
                .sign(claims("soak-admin", "mcp:tools repo:admin"))?,
        })
    }

    fn jwks_old(&self) -> String {
        jwks_of(&[self.old.public_key().to_jwk()])
    }

    fn jwks_both(&self) -> String {
        jwks_of(&[
            self.old.public_key().to_jwk(),
            self.new.public_key().to_jwk(),
        ])
    }

    fn jwks_new(&self) -> String {
        jwks_of(&[self.new.public_key().to_jwk()])
    }
}

/// What every worker shares.
struct Ctx {
    url: String,
    old: Tokens,
    new: Tokens,
    /// Set at the rotation: clients switch to tokens of the new key.
    rotated: AtomicBool,
}

impl Ctx {
    fn tokens(&self) -> &Tokens {
        if self.rotated.load(Ordering::Relaxed) {
            &self.new
        } else {
            &self.old
        }
    }
}

/// One request as the client saw it.
#[derive(Debug)]
struct Sent {
    seq: String,
    kind: Kind,
    /// HTTP status, when an answer came.
    status: Option<u16>,
    /// The client's cause label (`200 ok`, `400 -32700`, `transport: ...`).
    cause: String,
    /// Why the answer was not the one this kind must get, if it was not.
    unexpected: Option<String>,
    /// When it was sent, seconds into the run.
    at: f64,
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// Builds the request for `kind`: (headers, body).
fn build(ctx: &Ctx, kind: Kind, seq: &str, n: u64) -> (Vec<(String, String)>, Vec<u8>) {
    let stateless = Stateless::new(&ctx.url);
    let tokens = ctx.tokens();
    let mut extra: Vec<(String, String)> = vec![(SEQ_HEADER.into(), seq.into())];
    let modern = |method: &str, params: Value, extra: &mut Vec<(String, String)>| {
        let body = stateless.body(n, method, params);
        let mut h = Stateless::headers_for(&body);
        h.retain(|(k, _)| !extra.iter().any(|(e, _)| e.eq_ignore_ascii_case(k)));
        h.append(extra);
        (h, body.to_string().into_bytes())
    };
    let call = |name: &str, arguments: Value| json!({"name": name, "arguments": arguments});
    let auth = |t: &str| ("authorization".to_string(), bearer(t));
    let sse = ("x-test-response".to_string(), "sse".to_string());
    let json_mode = ("x-test-response".to_string(), "json".to_string());
    match kind {
        Kind::ListJson => {
            extra.extend([auth(&tokens.user), json_mode]);
            modern("tools/list", json!({}), &mut extra)
        }
        Kind::ListSse => {
            extra.extend([auth(&tokens.user), sse]);
            modern("tools/list", json!({}), &mut extra)
        }
        Kind::ListLegacy => {
            extra.extend([
                auth(&tokens.user),
                sse,
                ("accept".into(), ACCEPT_BOTH.into()),
                ("content-type".into(), "application/json".into()),
                ("mcp-protocol-version".into(), "2025-11-25".into()),
            ]);
            let body = client::rpc_request(n, "tools/list", json!({}));
            (extra, body.to_string().into_bytes())
        }
        Kind::EchoJson => {
            extra.extend([auth(&tokens.user), json_mode]);
            modern(
                "tools/call",
                call("echo", json!({"text": format!("soak {seq}")})),
                &mut extra,
            )
        }
        Kind::AddSse => {
            extra.extend([
                auth(&tokens.user),
                sse,
                ("x-test-progress".into(), "2".into()),
                ("x-test-log".into(), "1".into()),
            ]);
            modern(
                "tools/call",
                call("add", json!({"a": n, "b": 2})),
                &mut extra,
            )
        }
        Kind::PiiInArguments => {
            let mode = if n.is_multiple_of(2) { sse } else { json_mode };
            extra.extend([auth(&tokens.user), mode]);
            let text = format!("{seq}: mail {ARG_EMAIL}, card {ARG_CARD}");
            modern(
                "tools/call",
                call("echo", json!({"text": text})),
                &mut extra,
            )
        }
        Kind::PiiInResult => {
            extra.extend([auth(&tokens.user), sse]);
            modern(
                "tools/call",
                call("customer_record", json!({"customer_id": seq})),
                &mut extra,
            )
        }
        Kind::AdminCall => {
            extra.extend([auth(&tokens.admin), json_mode]);
            modern(
                "tools/call",
                call("delete_repo", json!({"repo": format!("soak/{seq}")})),
                &mut extra,
            )
        }
        Kind::Ping => {
            extra.push(auth(&tokens.user));
            modern("ping", json!({}), &mut extra)
        }
        Kind::HiddenTool => {
            extra.push(auth(&tokens.user));
            modern("tools/call", call("admin_reset", json!({})), &mut extra)
        }
        Kind::NoToken => modern("tools/list", json!({}), &mut extra),
        Kind::InsufficientScope => {
            extra.push(auth(&tokens.user));
            modern(
                "tools/call",
                call("delete_repo", json!({"repo": "soak/denied"})),
                &mut extra,
            )
        }
        Kind::MalformedJson => {
            extra.extend([
                auth(&tokens.user),
                ("accept".into(), ACCEPT_BOTH.into()),
                ("content-type".into(), "application/json".into()),
            ]);
            (
                extra,
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/list""#.to_vec(),
            )
        }
        Kind::Batch => {
            extra.extend([
                auth(&tokens.user),
                ("accept".into(), ACCEPT_BOTH.into()),
                ("content-type".into(), "application/json".into()),
                ("mcp-protocol-version".into(), "2025-11-25".into()),
            ]);
            let body = json!([
                client::rpc_request(n, "ping", json!({})),
                client::rpc_request(n + 1, "tools/list", json!({})),
            ]);
            (extra, body.to_string().into_bytes())
        }
        Kind::HeaderMismatch => {
            extra.extend([auth(&tokens.user), ("mcp-name".into(), "add".into())]);
            modern(
                "tools/call",
                call("echo", json!({"text": "mismatch"})),
                &mut extra,
            )
        }
    }
}

/// Checks a successful answer of `kind` to request `id`; Err says what is wrong.
fn check_success(kind: Kind, seq: &str, n: u64, resp: &client::Resp) -> Result<(), String> {
    let text = resp.text();
    if let Some(raw) = RAW_PII.iter().find(|raw| text.contains(**raw)) {
        return Err(format!("raw PII {raw:?} reached the client"));
    }
    let messages = resp.messages().map_err(|e| e.to_string())?;
    let response = client::find_response(&messages, n)
        .ok_or_else(|| format!("no response to id {n} in {text:.300}"))?;
    if let Some(e) = response.get("error") {
        return Err(format!("JSON-RPC error {e}"));
    }
    let result = &response["result"];
    let first_text = result["content"][0]["text"].as_str().unwrap_or_default();
    let sse = resp
        .content_type()
        .is_some_and(|c| c.contains("text/event-stream"));
    match kind {
        Kind::ListJson | Kind::ListSse | Kind::ListLegacy => {
            let names: HashSet<&str> = result["tools"]
                .as_array()
                .map(|t| t.iter().filter_map(|t| t["name"].as_str()).collect())
                .unwrap_or_default();
            if !names.contains("echo") || !names.contains("customer_record") {
                return Err(format!(
                    "tools/list lacks echo or customer_record: {names:?}"
                ));
            }
            if names.contains("admin_reset") {
                return Err("tools/list shows the hidden admin_reset".into());
            }
            if (kind == Kind::ListJson) == sse {
                return Err(format!("wrong framing {:?}", resp.content_type()));
            }
        }
        Kind::AddSse => {
            let want = u64::try_from(u128::from(n) + 2).unwrap_or(u64::MAX);
            if result["structuredContent"]["sum"].as_f64() != Some(want as f64) {
                return Err(format!("add returned {result}"));
            }
            if !sse || messages.len() != 4 {
                return Err(format!(
                    "expected 2 progress + 1 log + the result on SSE, got {} messages",
                    messages.len()
                ));
            }
        }
        Kind::Ping if !result.is_object() => return Err(format!("ping returned {result}")),
        Kind::EchoJson | Kind::PiiInArguments | Kind::PiiInResult | Kind::AdminCall => {
            let want = match kind {
                Kind::EchoJson => format!("soak {seq}"),
                Kind::PiiInArguments => {
                    format!("{seq}: mail [REDACTED:email], card [REDACTED:credit_card]")
                }
                Kind::PiiInResult => format!(
                    "customer {seq}: Jane Doe, [REDACTED:email], card [REDACTED:credit_card]"
                ),
                _ => format!("Deleted repository soak/{seq}"),
            };
            if first_text != want {
                return Err(format!(
                    "{kind:?}: the tool returned {first_text:?}, not {want:?}"
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// The JSON-RPC error code of an answer, if its body is one JSON-RPC error.
fn error_code(resp: &client::Resp) -> Option<i64> {
    resp.messages()
        .ok()?
        .iter()
        .find_map(|m| m["error"]["code"].as_i64())
}

fn send_one(agent: &ureq::Agent, ctx: &Ctx, kind: Kind, seq: &str, n: u64, at: f64) -> Sent {
    let (headers, body) = build(ctx, kind, seq, n);
    let mut req = agent.post(&ctx.url);
    for (k, v) in &headers {
        req = req.set(k, v);
    }
    let answer = match req.send_bytes(&body) {
        Ok(r) | Err(ureq::Error::Status(_, r)) => read(r),
        Err(e) => Err(e.to_string()),
    };
    let mut sent = Sent {
        seq: seq.to_string(),
        kind,
        status: None,
        cause: String::new(),
        unexpected: None,
        at,
    };
    let resp = match answer {
        Ok(r) => r,
        Err(e) => {
            sent.cause = "transport error".into();
            sent.unexpected = Some(format!("transport: {e}"));
            return sent;
        }
    };
    let code = error_code(&resp);
    sent.status = Some(resp.status);
    sent.cause = match code {
        Some(c) => format!("{} jsonrpc {c}", resp.status),
        None => format!("{} ok", resp.status),
    };
    sent.unexpected = match kind.refusal() {
        Some((status, want_code)) => {
            let body_ok = want_code.is_none_or(|w| code == Some(w));
            (resp.status != status || !body_ok).then(|| {
                format!(
                    "expected {status} {want_code:?}, got {} {code:?}: {:.300}",
                    resp.status,
                    resp.text()
                )
            })
        }
        None if resp.status != 200 => Some(format!(
            "expected 200, got {}: {:.300}",
            resp.status,
            resp.text()
        )),
        None => check_success(kind, seq, n, &resp).err(),
    };
    sent
}

fn read(r: ureq::Response) -> Result<client::Resp, String> {
    client::into_resp(r).map_err(|e| format!("{e:#}"))
}

fn worker(ctx: &Ctx, index: usize, started: Instant, deadline: Instant) -> Vec<Sent> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(StdDuration::from_secs(5))
        .timeout(StdDuration::from_secs(30))
        .build();
    let mut out = Vec::new();
    let mut n: u64 = 0;
    while Instant::now() < deadline {
        let kind = MIX
            .get((index.wrapping_mul(7).wrapping_add(n as usize)) % MIX.len())
            .copied()
            .unwrap_or(Kind::Ping);
        let seq = format!("{index}-{n}");
        let at = started.elapsed().as_secs_f64();
        // Ids are per worker; the seq header is what identifies a request in the record.
        out.push(send_one(&agent, ctx, kind, &seq, n * 2 + 1, at));
        n += 1;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Envoy's memory and VMs

#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    at: f64,
    rss_kib: u64,
    /// tcmalloc `allocated` from admin `/memory`.
    heap_allocated: u64,
    /// The wasm linear memory of every VM, summed (bytes mapped read-write).
    wasm_linear: u64,
    /// How much of it is resident.
    wasm_resident_kib: u64,
    /// How many linear memories were found (one per VM).
    wasm_memories: usize,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The wasm linear memories of Envoy's V8 VMs, from `/proc/<pid>/smaps`. No Envoy statistic
/// exposes them. V8 (x86-64) reserves 8 GiB plus guard regions for each 32-bit wasm memory and
/// maps read-write only its current size (it grows by `memory.grow`, never shrinks): each
/// memory is a `rw-p` anonymous mapping immediately followed by the `---p` rest of its
/// reservation (>= 4 GiB). Returns (bytes mapped, KiB resident, how many).
fn wasm_linear_memory(pid: u32) -> (u64, u64, usize) {
    std::fs::read_to_string(format!("/proc/{pid}/smaps"))
        .map(|s| wasm_memories_in(&s))
        .unwrap_or((0, 0, 0))
}

/// [`wasm_linear_memory`] of an `smaps` text.
fn wasm_memories_in(smaps: &str) -> (u64, u64, usize) {
    struct Region {
        start: u64,
        end: u64,
        perms: String,
        anonymous: bool,
        rss_kib: u64,
    }
    let mut regions: Vec<Region> = Vec::new();
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                let perms = fields.next().unwrap_or_default().to_string();
                // offset, device, inode, then the path (absent for anonymous memory).
                let anonymous = fields.nth(3).is_none();
                regions.push(Region {
                    start,
                    end,
                    perms,
                    anonymous,
                    rss_kib: 0,
                });
                continue;
            }
        }
        if first == "Rss:" {
            if let (Some(r), Some(v)) = (regions.last_mut(), fields.next()) {
                r.rss_kib = v.parse().unwrap_or(0);
            }
        }
    }
    let mut total = (0, 0, 0);
    for pair in regions.windows(2) {
        let [mem, rest] = pair else { continue };
        let reservation = rest.perms == "---p" && rest.end - rest.start >= 1 << 32;
        if reservation && mem.end == rest.start && mem.perms == "rw-p" && mem.anonymous {
            total.0 += mem.end - mem.start;
            total.1 += mem.rss_kib;
            total.2 += 1;
        }
    }
    total
}

fn heap_allocated(envoy: &Envoy) -> u64 {
    envoy
        .admin("/memory")
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["allocated"].as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

fn sample(envoy: &Envoy, started: Instant) -> Sample {
    let pid = envoy.pid();
    let (wasm_linear, wasm_resident_kib, wasm_memories) = wasm_linear_memory(pid);
    Sample {
        at: started.elapsed().as_secs_f64(),
        rss_kib: rss_kib(pid),
        heap_allocated: heap_allocated(envoy),
        wasm_linear,
        wasm_resident_kib,
        wasm_memories,
    }
}

/// The VM statistics that move when a wasm VM fails or is replaced.
fn vm_stats(envoy: &Envoy) -> BTreeMap<String, u64> {
    let text = envoy.admin("/stats?filter=%5Ewasm%5C.").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(": ")?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .filter(|(k, _)| {
            k.starts_with("wasm.envoy.wasm.runtime.")
                || k.contains(".vm_reload")
                || k == "wasm.wasm_vm_count"
        })
        .collect()
}

/// The filters' `wasmcustom.*` counters (not telemetry's per-method series).
fn filter_counters(envoy: &Envoy) -> BTreeMap<String, u64> {
    let text = envoy
        .admin("/stats?filter=%5Ewasmcustom%5C.")
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(": ")?;
            Some((k.to_string(), v.trim().parse::<u64>().ok()?))
        })
        .filter(|(k, v)| *v > 0 && !k.contains(".method."))
        .collect()
}

/// Lines of Envoy's log that mean a VM trapped or panicked.
fn vm_failure_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("panicked")
                || l.contains("uncaught")
                || l.contains("wasm vm failed")
                || (l.contains("[wasm]") && l.contains("failed"))
        })
        .map(|l| l.chars().take(300).collect())
        .collect()
}

/// The gateway's JSON access log entries (on Envoy's stdout) for `/mcp`, in order.
fn access_log(log: &str) -> impl Iterator<Item = Value> + '_ {
    log.lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["path"] == "/mcp")
}

/// `(status, details)` counts of the access log entries after the first `skip`.
fn access_log_causes(log: &str, skip: usize) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for v in access_log(log).skip(skip) {
        let status = match &v["status"] {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => "?".into(),
        };
        let details = v["details"].as_str().unwrap_or("-").to_string();
        *out.entry((status, details)).or_insert(0) += 1;
    }
    out
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

struct MemoryVerdict {
    lines: Vec<String>,
    flat: bool,
}

fn judge_memory(samples: &[Sample], seconds: f64) -> MemoryVerdict {
    let judged: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= seconds * FLAT.warm_up_fraction)
        .collect();
    let third = judged.len() / 3;
    let mut lines = Vec::new();
    if third < 2 {
        return MemoryVerdict {
            lines: vec![format!("too few samples to judge ({})", judged.len())],
            flat: false,
        };
    }
    let (first, last) = (
        judged.get(..third).unwrap_or_default(),
        judged.get(judged.len() - third..).unwrap_or_default(),
    );
    let rss = |part: &[&Sample]| mean(&part.iter().map(|s| s.rss_kib as f64).collect::<Vec<_>>());
    let wasm_max = |part: &[&Sample]| part.iter().map(|s| s.wasm_linear).max().unwrap_or(0);
    let heap = |part: &[&Sample]| {
        mean(
            &part
                .iter()
                .map(|s| s.heap_allocated as f64)
                .collect::<Vec<_>>(),
        )
    };
    let (rss_first, rss_last) = (rss(first), rss(last));
    let rss_change = if rss_first > 0.0 {
        rss_last / rss_first - 1.0
    } else {
        f64::INFINITY
    };
    let rss_ok = rss_change <= FLAT.rss_growth;
    let (wasm_first, wasm_last) = (wasm_max(first), wasm_max(last));
    let resident_max = |part: &[&Sample]| {
        part.iter()
            .map(|s| s.wasm_resident_kib * 1024)
            .max()
            .unwrap_or(0)
    };
    let (resident_first, resident_last) = (resident_max(first), resident_max(last));
    let wasm_ok = wasm_last <= wasm_first + FLAT.wasm_growth_bytes
        && resident_last <= resident_first + FLAT.wasm_growth_bytes;
    let memories: BTreeSet<usize> = judged.iter().map(|s| s.wasm_memories).collect();
    let memories_ok = memories.len() == 1 && !memories.contains(&0);
    lines.push(format!(
        "judged {} samples after {:.0} s of warm-up, thirds of {third}",
        judged.len(),
        seconds * FLAT.warm_up_fraction
    ));
    lines.push(format!(
        "Envoy RSS mean: first third {:.1} MiB, last third {:.1} MiB ({:+.2}%, limit +{:.0}%): {}",
        rss_first / 1024.0,
        rss_last / 1024.0,
        rss_change * 100.0,
        FLAT.rss_growth * 100.0,
        if rss_ok { "flat" } else { "GROWING" }
    ));
    lines.push(format!(
        "Envoy heap (tcmalloc allocated) mean: first third {:.1} MiB, last third {:.1} MiB (reported, not judged)",
        heap(first) / 1_048_576.0,
        heap(last) / 1_048_576.0
    ));
    lines.push(format!(
        "wasm linear memory, all VMs, max: mapped {:.2} -> {:.2} MiB, resident {:.2} -> {:.2} MiB (first -> last third, limit +{} KiB each): {}",
        wasm_first as f64 / 1_048_576.0,
        wasm_last as f64 / 1_048_576.0,
        resident_first as f64 / 1_048_576.0,
        resident_last as f64 / 1_048_576.0,
        FLAT.wasm_growth_bytes / 1024,
        if wasm_ok { "flat" } else { "GROWING" }
    ));
    lines.push(format!(
        "wasm linear memories found per sample: {memories:?} (one per VM){}",
        if memories_ok { "" } else { ": CHANGED OR NONE" }
    ));
    MemoryVerdict {
        lines,
        flat: rss_ok && wasm_ok && memories_ok,
    }
}

// ---------------------------------------------------------------------------------------------

fn soak_tools() -> Vec<ToolSpec> {
    let mut tools = demo_tools();
    tools.push(ToolSpec::new(
        "customer_record",
        "Look up a customer (the result carries fake PII).",
        json!({"type": "object", "properties": {"customer_id": {"type": "string"}}}),
    ));
    tools
}

/// The configuration value of the wasm filter `name` in `cfg` (as shipped), parsed.
fn shipped_plugin_config(cfg: &EnvoyConfig, name: &str) -> Result<Value> {
    let listeners = cfg.doc()["static_resources"]["listeners"]
        .as_sequence()
        .context("no listeners")?;
    let text = listeners
        .iter()
        .flat_map(|l| l["filter_chains"].as_sequence().into_iter().flatten())
        .flat_map(|c| c["filters"].as_sequence().into_iter().flatten())
        .flat_map(|f| {
            f["typed_config"]["http_filters"]
                .as_sequence()
                .into_iter()
                .flatten()
        })
        .find(|f| f["name"].as_str() == Some(name))
        .and_then(|f| f["typed_config"]["config"]["configuration"]["value"].as_str())
        .with_context(|| format!("{}: no wasm filter {name}", cfg.name()))?;
    serde_json::from_str(text).with_context(|| format!("{name}'s configuration"))
}

/// The shipped full chain (the `mcp_gateway` module) with its `scopes` policy verifying tokens
/// against `jwks` (a `jwks` cluster added for it, as `envoy/mcp_scopes.yaml` has) and refreshing
/// the key set every 5 s; every other section as shipped.
fn gateway(server: &TestServer, jwks: &JwksServer) -> Result<EnvoyConfig> {
    let scopes = scopes_support::config(
        json!({"cluster": "jwks", "path": "/jwks.json", "authority": "idp.test", "refresh_seconds": 5}),
        json!({"strip_authorization": true}),
    );
    let cfg = EnvoyConfig::load("mcp-gateway.yaml")?;
    let mut module = shipped_plugin_config(&cfg, GATEWAY_FILTER)?;
    module["scopes"] = serde_json::from_str(&scopes)?;
    let jwks_addr = jwks.addr();
    Ok(cfg
        .modify(move |doc| {
            let cluster: serde_yaml::Value = serde_yaml::from_str(&format!(
                "name: jwks\ntype: STATIC\nconnect_timeout: 2s\nload_assignment:\n  cluster_name: jwks\n  endpoints:\n  - lb_endpoints:\n    - endpoint:\n        address:\n          socket_address: {{address: {}, port_value: {}}}\n",
                jwks_addr.ip(),
                jwks_addr.port()
            ))
            .unwrap_or(serde_yaml::Value::Null);
            if let Some(clusters) = doc["static_resources"]["clusters"].as_sequence_mut() {
                clusters.push(cluster);
            }
        })
        .upstream("mcp_upstream", server.addr())
        .plugin_config(GATEWAY_FILTER, &module.to_string()))
}

/// Polls until the first JWK Set is loaded (until then every request with a token gets 503).
fn wait_for_keys(url: &str, token: &str) -> Result<()> {
    let deadline = Instant::now() + StdDuration::from_secs(30);
    let c = Stateless::new(url).with_header("authorization", &bearer(token));
    loop {
        let (_, r) = c.request("ping", json!({}), &[])?;
        if r.status == 200 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("JWKS never loaded: last answer {} {}", r.status, r.text());
        }
        std::thread::sleep(StdDuration::from_millis(200));
    }
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let keys = Keys::generate();
    let jwks = JwksServer::start(&keys.jwks_old())?;
    let server = TestServer::start(
        ServerOptions::default()
            .tools(soak_tools())
            .require_session(false)
            .worker_threads(2),
    )?;
    let envoy = Envoy::start_with(
        gateway(&server, &jwks)?,
        EnvoyOptions::default().concurrency(args.envoy_concurrency),
    )
    .context("starting Envoy on envoy/mcp-gateway.yaml")?;
    let ctx = Arc::new(Ctx {
        url: envoy.url("/mcp"),
        old: keys.old_tokens()?,
        new: keys.new_tokens()?,
        rotated: AtomicBool::new(false),
    });
    wait_for_keys(&ctx.url, &ctx.old.user)?;
    server.clear_record();
    // Envoy writes an access log entry when a request ends: the probes above are all done.
    std::thread::sleep(StdDuration::from_millis(300));
    let access_before = access_log(&envoy.log()).count();
    let vm_before = vm_stats(&envoy);
    let counters_before = filter_counters(&envoy);
    println!(
        "soak: {} s, {} clients, Envoy --concurrency {} on envoy/mcp-gateway.yaml ({}), server {}",
        args.seconds,
        args.concurrency,
        args.envoy_concurrency,
        ctx.url,
        server.url("/mcp")
    );

    let started = Instant::now();
    let run = StdDuration::from_secs(args.seconds);
    let deadline = started + run;
    let samples = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut rotation_log = Vec::new();
    let sent: Vec<Sent> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..args.concurrency)
            .map(|i| {
                let ctx = Arc::clone(&ctx);
                scope.spawn(move || worker(&ctx, i, started, deadline))
            })
            .collect();
        let (samples_w, stop_w, envoy_r) = (Arc::clone(&samples), Arc::clone(&stop), &envoy);
        let sampler = scope.spawn(move || {
            while !stop_w.load(Ordering::Relaxed) {
                let s = sample(envoy_r, started);
                if let Ok(mut v) = samples_w.lock() {
                    v.push(s);
                }
                std::thread::sleep(StdDuration::from_secs(1));
            }
        });
        // The rotation: at 40% the issuer publishes the new key next to the old one and clients
        // switch to it (the first tokens with the unknown kid wait for the refresh they
        // trigger); at 70% the old key is retired (picked up by the periodic refresh).
        let at = |f: f64| started + run.mul_f64(f);
        std::thread::sleep(at(0.4).saturating_duration_since(Instant::now()));
        jwks.set(200, &keys.jwks_both());
        ctx.rotated.store(true, Ordering::Relaxed);
        rotation_log.push(format!(
            "{:.1} s: JWKS serves ec-1 + ed-1, clients sign with ed-1",
            started.elapsed().as_secs_f64()
        ));
        std::thread::sleep(at(0.7).saturating_duration_since(Instant::now()));
        jwks.set(200, &keys.jwks_new());
        rotation_log.push(format!(
            "{:.1} s: JWKS serves ed-1 only (ec-1 retired)",
            started.elapsed().as_secs_f64()
        ));
        let sent: Vec<Sent> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect();
        stop.store(true, Ordering::Relaxed);
        let _ = sampler.join();
        sent
    });
    let elapsed = started.elapsed().as_secs_f64();
    // Let the last access-log lines reach the file.
    std::thread::sleep(StdDuration::from_millis(1500));

    let vm_after = vm_stats(&envoy);
    let counters_after = filter_counters(&envoy);
    let record = server.record();
    let log = envoy.log();
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    report(&Report {
        args: &args,
        elapsed,
        sent: &sent,
        record: &record,
        log: &log,
        samples: &samples,
        vm_before: &vm_before,
        vm_after: &vm_after,
        counters_before: &counters_before,
        counters_after: &counters_after,
        rotation_log: &rotation_log,
        jwks_hits: jwks.hits(),
        access_before,
    })
}

struct Report<'a> {
    args: &'a Args,
    elapsed: f64,
    sent: &'a [Sent],
    record: &'a [mcp_integration::server::Recorded],
    log: &'a str,
    samples: &'a [Sample],
    vm_before: &'a BTreeMap<String, u64>,
    vm_after: &'a BTreeMap<String, u64>,
    counters_before: &'a BTreeMap<String, u64>,
    counters_after: &'a BTreeMap<String, u64>,
    rotation_log: &'a [String],
    jwks_hits: usize,
    /// Access log entries written before the run (the JWKS readiness probes).
    access_before: usize,
}

fn report(r: &Report<'_>) -> Result<()> {
    let sent = r.sent;
    let answered = sent.iter().filter(|s| s.status.is_some()).count();
    let by_kind: BTreeMap<Kind, usize> = sent.iter().fold(BTreeMap::new(), |mut m, s| {
        *m.entry(s.kind).or_insert(0) += 1;
        m
    });
    let causes: BTreeMap<&str, usize> = sent.iter().fold(BTreeMap::new(), |mut m, s| {
        *m.entry(s.cause.as_str()).or_insert(0) += 1;
        m
    });
    let unexpected: Vec<&Sent> = sent.iter().filter(|s| s.unexpected.is_some()).collect();

    // The server's record against what the client expects it to hold.
    let recorded: BTreeMap<&str, usize> = r
        .record
        .iter()
        .filter_map(|rec| rec.header(SEQ_HEADER))
        .fold(BTreeMap::new(), |mut m, s| {
            *m.entry(s).or_insert(0) += 1;
            m
        });
    let lost: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.kind.reaches_server() && !recorded.contains_key(s.seq.as_str()))
        .collect();
    let leaked: Vec<&Sent> = sent
        .iter()
        .filter(|s| !s.kind.reaches_server() && recorded.contains_key(s.seq.as_str()))
        .collect();
    let duplicated = recorded.values().filter(|n| **n > 1).count();
    let pii_at_server = r
        .record
        .iter()
        .filter(|rec| {
            let body = rec.body_text();
            RAW_PII.iter().any(|raw| body.contains(raw))
        })
        .count();
    let expected_at_server = sent.iter().filter(|s| s.kind.reaches_server()).count();

    let access = access_log_causes(r.log, r.access_before);
    let vm_failures = vm_failure_lines(r.log);
    let vm_changed: Vec<String> = r
        .vm_after
        .iter()
        .filter(|(k, v)| r.vm_before.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}: {} -> {v}", r.vm_before.get(k).copied().unwrap_or(0)))
        .collect();
    let restarts_ok = vm_changed.is_empty()
        && vm_failures.is_empty()
        && r.vm_after
            .iter()
            .filter(|(k, _)| k.contains(".vm_reload"))
            .all(|(_, v)| *v == 0);
    let memory = judge_memory(r.samples, r.elapsed);

    println!("\n== requests");
    println!(
        "sent {} in {:.1} s ({:.0}/s), answered {answered}, transport errors {}",
        sent.len(),
        r.elapsed,
        sent.len() as f64 / r.elapsed.max(0.001),
        sent.len() - answered
    );
    for (k, n) in &by_kind {
        println!(
            "  {k:?}: {n}{}",
            if k.reaches_server() { "" } else { " (refused)" }
        );
    }
    println!("== answers by status and JSON-RPC error (client)");
    for (c, n) in &causes {
        println!("  {c}: {n}");
    }
    println!("== answers by status and %RESPONSE_CODE_DETAILS% (Envoy access log, POST /mcp)");
    for ((status, details), n) in &access {
        let mark = if status.starts_with('2') {
            ""
        } else {
            "  non-2xx"
        };
        println!("  {status} {details}: {n}{mark}");
    }
    println!("== the server's record");
    println!(
        "expected at the server {expected_at_server}, recorded {} (distinct {}), lost {}, refused but recorded {}, recorded twice {duplicated}, bodies with raw PII {pii_at_server}",
        r.record.len(),
        recorded.len(),
        lost.len(),
        leaked.len()
    );
    for s in lost.iter().chain(leaked.iter()).take(10) {
        println!("  {} {:?} at {:.1} s: {}", s.seq, s.kind, s.at, s.cause);
    }
    println!("== unexpected answers: {}", unexpected.len());
    let mut shown: BTreeMap<Kind, usize> = BTreeMap::new();
    for s in &unexpected {
        let n = shown.entry(s.kind).or_insert(0);
        *n += 1;
        if *n <= 3 {
            println!(
                "  {} {:?} at {:.1} s: {}",
                s.seq,
                s.kind,
                s.at,
                s.unexpected.as_deref().unwrap_or_default()
            );
        }
    }
    println!("== JWKS rotation");
    for l in r.rotation_log {
        println!("  {l}");
    }
    println!("  JWKS fetches served: {}", r.jwks_hits);
    println!("== filter counters (run delta)");
    for (k, v) in r.counters_after {
        let before = r.counters_before.get(k).copied().unwrap_or(0);
        if *v > before {
            println!("  {k}: +{}", v - before);
        }
    }
    println!("== wasm VMs");
    for (k, v) in r.vm_after {
        println!("  {k}: {v}");
    }
    println!(
        "  changed during the run: {vm_changed:?}; VM failure lines in Envoy's log: {}",
        vm_failures.len()
    );
    for l in vm_failures.iter().take(5) {
        println!("    {l}");
    }
    println!("== memory (every 1 s: Envoy RSS, tcmalloc heap, wasm linear memory of all VMs)");
    for s in r.samples.iter().step_by((r.samples.len() / 12).max(1)) {
        println!(
            "  {:5.1} s  RSS {:7.1} MiB  heap {:6.1} MiB  wasm {:6.2} MiB mapped / {:6.2} MiB resident in {} memories",
            s.at,
            s.rss_kib as f64 / 1024.0,
            s.heap_allocated as f64 / 1_048_576.0,
            s.wasm_linear as f64 / 1_048_576.0,
            s.wasm_resident_kib as f64 / 1024.0,
            s.wasm_memories
        );
    }
    for l in &memory.lines {
        println!("  {l}");
    }

    let verdicts = [
        ("no request lost", lost.is_empty() && leaked.is_empty()),
        (
            "every answer as expected (status, JSON-RPC code, results, no raw PII)",
            unexpected.is_empty() && pii_at_server == 0,
        ),
        ("no wasm VM failed or restarted", restarts_ok),
        ("memory flat", memory.flat),
    ];
    println!("== verdict");
    for (what, ok) in verdicts {
        println!("  {}: {what}", if ok { "ok  " } else { "FAIL" });
    }
    if let Some(path) = &r.args.json {
        let doc = json!({
            "seconds": r.elapsed,
            "concurrency": r.args.concurrency,
            "envoy_concurrency": r.args.envoy_concurrency,
            "sent": sent.len(),
            "answered": answered,
            "by_kind": by_kind.iter().map(|(k, n)| (format!("{k:?}"), *n)).collect::<BTreeMap<_, _>>(),
            "client_causes": causes,
            "envoy_causes": access.iter().map(|((s, d), n)| (format!("{s} {d}"), *n)).collect::<BTreeMap<_, _>>(),
            "expected_at_server": expected_at_server,
            "lost": lost.len(),
            "refused_but_recorded": leaked.len(),
            "unexpected": unexpected.len(),
            "vm": r.vm_after,
            "vm_changed": vm_changed,
            "samples": r.samples.iter().map(|s| json!({
                "at": s.at, "rss_kib": s.rss_kib, "heap_allocated": s.heap_allocated,
                "wasm_linear": s.wasm_linear, "wasm_resident_kib": s.wasm_resident_kib,
                "wasm_memories": s.wasm_memories,
            })).collect::<Vec<_>>(),
            "verdicts": verdicts.iter().map(|(w, ok)| json!({"what": w, "ok": ok})).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {path}"))?;
    }
    if verdicts.iter().all(|(_, ok)| *ok) {
        println!("soak passed");
        Ok(())
    } else {
        // Keep the evidence: the tail of Envoy's log.
        eprintln!(
            "----- Envoy log (last 60 lines) -----\n{}\n-----",
            mcp_integration::envoy::tail(
                &r.log
                    .lines()
                    .filter(|l| !l.starts_with('{'))
                    .collect::<Vec<_>>()
                    .join("\n"),
                60
            )
        );
        bail!("soak failed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(rss: impl Fn(usize) -> u64, wasm: impl Fn(usize) -> u64) -> Vec<Sample> {
        (0..60)
            .map(|i| Sample {
                at: i as f64,
                rss_kib: rss(i),
                heap_allocated: 1,
                wasm_linear: wasm(i),
                wasm_resident_kib: 100,
                wasm_memories: 16,
            })
            .collect()
    }

    #[test]
    fn steady_memory_is_flat_and_growth_is_not() {
        let flat = samples(|i| 160_000 + (i as u64 % 3) * 50, |_| 18 << 20);
        assert!(judge_memory(&flat, 60.0).flat);
        // Growth during warm-up only is fine.
        let warm = samples(|i| 100_000 + 5_000 * (i.min(10) as u64), |_| 18 << 20);
        assert!(judge_memory(&warm, 60.0).flat);
        // 0.1 MiB/s of RSS on 160 MiB: ~+2% between the thirds' means: within 3%.
        let slow = samples(|i| 160_000 + 100 * i as u64, |_| 18 << 20);
        assert!(judge_memory(&slow, 60.0).flat);
        let leak = samples(|i| 160_000 + 300 * i as u64, |_| 18 << 20);
        assert!(!judge_memory(&leak, 60.0).flat);
        let wasm = samples(|_| 160_000, |i| (18 << 20) + (i as u64) * (64 << 10));
        assert!(!judge_memory(&wasm, 60.0).flat);
        assert!(!judge_memory(&flat[..5], 5.0).flat, "too few samples");
    }

    #[test]
    fn wasm_memories_are_rw_mappings_in_front_of_their_reservation() {
        let smaps = "\
7f0000000000-7f0000120000 rw-p 00000000 00:00 0 \n\
Rss:                 196 kB\n\
7f0000120000-7f0200000000 ---p 00000000 00:00 0 \n\
Rss:                   0 kB\n\
7f0300000000-7f0300010000 rw-p 00000000 00:00 0 \n\
Rss:                  64 kB\n\
7f0300010000-7f0300020000 ---p 00000000 00:00 0 \n\
Rss:                   0 kB\n\
7f0400000000-7f0400010000 rw-p 00000000 08:01 42    /usr/lib/x.so\n\
Rss:                  64 kB\n\
7f0400010000-7f0600000000 ---p 00000000 00:00 0 \n\
Rss:                   0 kB\n";
        // Only the first: the second's reservation is small, the third is a file mapping.
        assert_eq!(wasm_memories_in(smaps), (0x120000, 196, 1));
    }

    #[test]
    fn vm_failures_and_access_log_lines_are_recognised() {
        let log = "[2026-12-04][1][critical][wasm] [context.cc:1] wasm log mcp_pii: panicked at src/x.rs\n\
[2026-12-04][1][info][main] starting\n\
{\"path\":\"/mcp\",\"status\":\"400\",\"details\":\"mcp_telemetry_invalid_json\"}\n\
{\"path\":\"/mcp\",\"status\":200,\"details\":\"via_upstream\"}\n\
{\"path\":\"/other\",\"status\":200}\n";
        assert_eq!(vm_failure_lines(log).len(), 1);
        let causes = access_log_causes(log, 0);
        assert_eq!(causes.len(), 2);
        assert_eq!(
            causes.get(&("400".into(), "mcp_telemetry_invalid_json".into())),
            Some(&1)
        );
        assert_eq!(access_log_causes(log, 1).len(), 1);
    }
}
