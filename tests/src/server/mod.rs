//! A scriptable MCP server (Streamable HTTP, legacy and 2026-07-28 eras) for integration tests,
//! `make demo` and `make bench`.
//!
//! It mimics the wire behaviour of the reference TypeScript SDK server (SSE framing, status codes,
//! session errors, batch acceptance) and records every request it receives, so tests can assert
//! what the filters let through. Request headers `x-test-*` script the response shape.

mod body;
pub mod tools;

pub use tools::{demo_tools, generated_tools, ToolSpec};

use anyhow::{Context as _, Result};
use base64::Engine as _;
use body::{empty, full, RespBody};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::{BuildHasher as _, Hasher as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// The protocol version that switches the server to the stateless (modern) era.
pub const MODERN_VERSION: &str = "2026-07-28";
/// Legacy versions the server negotiates on `initialize`.
pub const LEGACY_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// The version answered when the client asks for an unknown one.
pub const LATEST_LEGACY_VERSION: &str = "2025-11-25";
/// `serverInfo.name`.
pub const SERVER_NAME: &str = "mcp-test-server";

/// How the server answers a JSON-RPC request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    /// `application/json`, one object (or an array for batches), with content-length.
    Json,
    /// `text/event-stream`, one `event: message` per JSON-RPC message.
    Sse,
}

impl ResponseMode {
    /// Parses `json` / `sse`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Some(Self::Json),
            "sse" => Some(Self::Sse),
            _ => None,
        }
    }
}

/// Configuration of a [`TestServer`].
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Default response mode (a request's `x-test-response` header overrides it).
    pub mode: ResponseMode,
    /// The tools of `tools/list` (a request's `x-test-tools: <n>` header overrides them).
    pub tools: Vec<ToolSpec>,
    /// Legacy era: reject requests without a valid `Mcp-Session-Id` (default true).
    pub require_session: bool,
    /// Address to bind; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Print one line per request to stdout (the demo binary).
    pub log_requests: bool,
    /// Tokio worker threads (1 = current-thread runtime).
    pub worker_threads: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            mode: ResponseMode::Sse,
            tools: demo_tools(),
            require_session: true,
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            log_requests: false,
            worker_threads: 1,
        }
    }
}

impl ServerOptions {
    /// Default options with `n` generated tools `tool_0000..` instead of the demo set.
    pub fn with_generated_tools(n: usize) -> Self {
        Self::default().tools(generated_tools(n))
    }

    /// Default options answering in JSON mode.
    pub fn json() -> Self {
        Self::default().mode(ResponseMode::Json)
    }

    /// Default options answering in SSE mode.
    pub fn sse() -> Self {
        Self::default().mode(ResponseMode::Sse)
    }

    /// Sets the default response mode.
    pub fn mode(mut self, mode: ResponseMode) -> Self {
        self.mode = mode;
        self
    }

    /// Replaces the tool set.
    pub fn tools(mut self, tools: Vec<ToolSpec>) -> Self {
        self.tools = tools;
        self
    }

    /// Turns the legacy-era session requirement on or off.
    pub fn require_session(mut self, on: bool) -> Self {
        self.require_session = on;
        self
    }

    /// Binds a fixed port on 127.0.0.1.
    pub fn port(mut self, port: u16) -> Self {
        self.bind.set_port(port);
        self
    }

    /// Binds a given address.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Logs one line per request to stdout.
    pub fn log_requests(mut self, on: bool) -> Self {
        self.log_requests = on;
        self
    }

    /// Sets the number of tokio worker threads.
    pub fn worker_threads(mut self, n: usize) -> Self {
        self.worker_threads = n.max(1);
        self
    }
}

/// Test-only: a canned HTTP response sent byte for byte (see [`TestServer::set_raw`]). Headers
/// are appended as given (repeats kept); without a `content-length` header the body is chunked.
#[derive(Debug, Clone)]
pub struct RawReply {
    /// HTTP status.
    pub status: u16,
    /// Response headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, sent as these pieces.
    pub chunks: Vec<Vec<u8>>,
    /// Pause between pieces.
    pub delay: Duration,
    /// Trailers after the body (then sent without pauses).
    pub trailers: Vec<(String, String)>,
}

impl RawReply {
    /// A 200 with one `content-type` and `body` in one piece.
    pub fn new(content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), content_type.as_bytes().to_vec())],
            chunks: vec![body.into()],
            delay: Duration::ZERO,
            trailers: Vec::new(),
        }
    }

    /// Adds a trailer.
    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers.push((name.to_string(), value.to_string()));
        self
    }

    /// Adds a header (appended, so a name may repeat).
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Sets the status.
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Re-splits the body into pieces of `size` bytes, `delay` apart.
    pub fn chunked(mut self, size: usize, delay: Duration) -> Self {
        let all = self.chunks.concat();
        self.chunks = all.chunks(size.max(1)).map(<[u8]>::to_vec).collect();
        self.delay = delay;
        self
    }

    /// Sends the body as exactly these pieces, `delay` apart.
    pub fn pieces(mut self, pieces: Vec<Vec<u8>>, delay: Duration) -> Self {
        self.chunks = pieces;
        self.delay = delay;
        self
    }

    fn response(self) -> Response<RespBody> {
        let exact_len = self
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse().ok());
        let units = self.chunks.into_iter().map(Bytes::from).collect();
        let body = if self.trailers.is_empty() {
            body::stream_units(units, self.delay, exact_len)
        } else {
            let mut t = HeaderMap::new();
            for (k, v) in &self.trailers {
                if let (Ok(k), Ok(v)) = (
                    hyper::header::HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(v),
                ) {
                    t.append(k, v);
                }
            }
            body::with_trailers(units, t)
        };
        let mut r = Response::new(body);
        *r.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        for (k, v) in self.headers {
            if let (Ok(k), Ok(v)) = (
                hyper::header::HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_bytes(&v),
            ) {
                r.headers_mut().append(k, v);
            }
        }
        r
    }
}

/// Summary of one JSON-RPC message in a received body.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcSummary {
    /// `method` (absent for responses).
    pub method: Option<String>,
    /// `params.name` or `params.uri`, if any.
    pub name: Option<String>,
    /// `id` (absent for notifications).
    pub id: Option<Value>,
}

/// One HTTP request as the server received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lower-case, in arrival order.
    pub headers: Vec<(String, String)>,
    /// Raw body.
    pub body: Vec<u8>,
    /// JSON-RPC method of the (first) message, if the body parsed.
    pub rpc_method: Option<String>,
    /// `params.name` / `params.uri` of the (first) message.
    pub rpc_name: Option<String>,
    /// Every JSON-RPC message of the body (more than one for batches).
    pub messages: Vec<RpcSummary>,
    /// Whether the body was a JSON array.
    pub batch: bool,
}

impl Recorded {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    pub fn body_json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as (lossy) UTF-8 text.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// JSON form used by `GET /_test/record`.
    pub fn to_json(&self) -> Value {
        json!({
            "method": self.method,
            "path": self.path,
            "headers": self.headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "body": self.body_text(),
            "rpc_method": self.rpc_method,
            "rpc_name": self.rpc_name,
            "batch": self.batch,
            "messages": self.messages.iter().map(|m| json!({"method": m.method, "name": m.name, "id": m.id})).collect::<Vec<_>>(),
        })
    }

    /// Parses the JSON form of [`Recorded::to_json`].
    pub fn from_json(v: &Value) -> Option<Self> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let headers = v
            .get("headers")?
            .as_array()?
            .iter()
            .filter_map(|p| {
                Some((
                    p.get(0)?.as_str()?.to_string(),
                    p.get(1)?.as_str()?.to_string(),
                ))
            })
            .collect();
        let messages = v
            .get("messages")
            .and_then(Value::as_array)
            .map(|ms| {
                ms.iter()
                    .map(|m| RpcSummary {
                        method: m.get("method").and_then(Value::as_str).map(str::to_string),
                        name: m.get("name").and_then(Value::as_str).map(str::to_string),
                        id: m.get("id").filter(|i| !i.is_null()).cloned(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            method: s("method")?,
            path: s("path")?,
            headers,
            body: s("body").unwrap_or_default().into_bytes(),
            rpc_method: s("rpc_method"),
            rpc_name: s("rpc_name"),
            messages,
            batch: v.get("batch").and_then(Value::as_bool).unwrap_or(false),
        })
    }
}

struct Shared {
    opts: ServerOptions,
    record: Mutex<Vec<Recorded>>,
    raw: Mutex<HashMap<String, RawReply>>,
    sessions: Mutex<HashMap<String, watch::Sender<bool>>>,
    event_id: AtomicU64,
    session_seq: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not wedge the server for the other tests.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running test MCP server on a background thread; stopped on drop.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Binds and starts the server; returns once it accepts connections.
    pub fn start(opts: ServerOptions) -> Result<TestServer> {
        let listener = std::net::TcpListener::bind(opts.bind)
            .with_context(|| format!("binding test MCP server on {}", opts.bind))?;
        listener.set_nonblocking(true).context("set_nonblocking")?;
        let addr = listener.local_addr().context("local_addr")?;
        let runtime = if opts.worker_threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(opts.worker_threads)
                .enable_all()
                .build()
        }
        .context("building tokio runtime")?;
        let shared = Arc::new(Shared {
            opts,
            record: Mutex::new(Vec::new()),
            raw: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            event_id: AtomicU64::new(0),
            session_seq: AtomicU64::new(0),
        });
        let (tx, rx) = oneshot::channel();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("mcp-test-server-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(serve(listener, thread_shared, rx));
                // Open GET streams and delayed bodies are cancelled here.
                runtime.shutdown_timeout(Duration::from_millis(100));
            })
            .context("spawning server thread")?;
        Ok(TestServer {
            addr,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Everything received so far (excluding `/_test/*`).
    pub fn record(&self) -> Vec<Recorded> {
        lock(&self.shared.record).clone()
    }

    /// Forgets everything received so far.
    pub fn clear_record(&self) {
        lock(&self.shared.record).clear();
    }

    /// How many JSON-RPC messages with this `method` arrived (batch members counted).
    pub fn received(&self, method: &str) -> usize {
        lock(&self.shared.record)
            .iter()
            .flat_map(|r| r.messages.iter())
            .filter(|m| m.method.as_deref() == Some(method))
            .count()
    }

    /// Names of the tools called (`tools/call` messages received), in order.
    pub fn tool_calls(&self) -> Vec<String> {
        lock(&self.shared.record)
            .iter()
            .flat_map(|r| r.messages.iter())
            .filter(|m| m.method.as_deref() == Some("tools/call"))
            .map(|m| m.name.clone().unwrap_or_default())
            .collect()
    }

    /// Test-only: registers a canned raw reply that a request selects with the header
    /// `x-test-raw: <name>` (the request is still recorded). Lets tests make the upstream
    /// misbehave byte for byte: encodings, odd media types, duplicate keys, odd ids.
    pub fn set_raw(&self, name: &str, reply: RawReply) {
        lock(&self.shared.raw).insert(name.to_string(), reply);
    }

    /// Number of live legacy sessions.
    pub fn session_count(&self) -> usize {
        lock(&self.shared.sessions).len()
    }

    /// Ends every legacy session (clients then get 404), closing their GET streams.
    pub fn drop_sessions(&self) {
        for (_, tx) in lock(&self.shared.sessions).drain() {
            let _ = tx.send(true);
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let svc = hyper::service::service_fn(move |req| handle(Arc::clone(&shared), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await;
                });
            }
        }
    }
}

/// Per-request scripting from `x-test-*` headers.
#[derive(Debug, Clone)]
struct Script {
    mode: ResponseMode,
    chunk: usize,
    delay: Duration,
    progress: usize,
    log: usize,
    tools: Option<usize>,
    page_size: Option<usize>,
}

impl Script {
    fn from_headers(h: &HeaderMap, default_mode: ResponseMode) -> Self {
        let num = |k: &str| -> Option<usize> { header(h, k)?.trim().parse().ok() };
        Script {
            mode: header(h, "x-test-response")
                .and_then(ResponseMode::parse)
                .unwrap_or(default_mode),
            chunk: num("x-test-chunk").unwrap_or(0),
            delay: Duration::from_millis(num("x-test-delay-ms").unwrap_or(0) as u64),
            progress: num("x-test-progress").unwrap_or(0),
            log: num("x-test-log").unwrap_or(0),
            tools: num("x-test-tools"),
            page_size: num("x-test-page-size").filter(|k| *k > 0),
        }
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Era {
    Legacy,
    Modern,
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
    if parts.uri.path() == "/_test/record" {
        return Ok(record_endpoint(&shared, &parts.method));
    }
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let rec = make_record(&parts.method, &path, &parts.headers, &body, parsed.as_ref());
    let log_line = shared.opts.log_requests.then(|| {
        let rpc = rec.messages.first().map_or(String::new(), |m| {
            format!(
                " {}{}",
                m.method.as_deref().unwrap_or("<response>"),
                m.name
                    .as_deref()
                    .map(|n| format!(" {n}"))
                    .unwrap_or_default()
            )
        });
        format!("{} {}{rpc}", parts.method, path)
    });
    lock(&shared.record).push(rec);
    let resp = if let Some(name) = header(&parts.headers, "x-test-raw") {
        let reply = lock(&shared.raw).get(name).cloned();
        reply.map_or_else(
            || {
                plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "unknown x-test-raw reply",
                )
            },
            RawReply::response,
        )
    } else if parts.uri.path() == "/mcp" {
        mcp(&shared, &parts.method, &parts.headers, parsed)
    } else {
        plain(StatusCode::NOT_FOUND, "not found")
    };
    if let Some(line) = log_line {
        println!("{line} -> {}", resp.status().as_u16());
    }
    Ok(resp)
}

fn record_endpoint(shared: &Shared, method: &Method) -> Response<RespBody> {
    if method == Method::DELETE {
        lock(&shared.record).clear();
        return json_response(StatusCode::OK, &json!({"cleared": true}), &[]);
    }
    let all: Vec<Value> = lock(&shared.record).iter().map(Recorded::to_json).collect();
    json_response(StatusCode::OK, &Value::Array(all), &[])
}

fn summarize(v: &Value) -> RpcSummary {
    let params = v.get("params");
    let name = params
        .and_then(|p| p.get("name").or_else(|| p.get("uri")))
        .and_then(Value::as_str)
        .map(str::to_string);
    RpcSummary {
        method: v.get("method").and_then(Value::as_str).map(str::to_string),
        name,
        id: v.get("id").cloned(),
    }
}

fn make_record(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    parsed: Option<&Value>,
) -> Recorded {
    let (messages, batch) = match parsed {
        Some(Value::Array(items)) => (items.iter().map(summarize).collect(), true),
        Some(v @ Value::Object(_)) => (vec![summarize(v)], false),
        _ => (Vec::new(), false),
    };
    let first = messages.first();
    Recorded {
        method: method.to_string(),
        path: path.to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
        rpc_method: first.and_then(|m| m.method.clone()),
        rpc_name: first.and_then(|m| m.name.clone()),
        batch,
        messages,
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<RespBody> {
    let mut r = Response::new(full(text));
    *r.status_mut() = status;
    r
}

fn json_response(
    status: StatusCode,
    v: &Value,
    extra: &[(&'static str, String)],
) -> Response<RespBody> {
    let bytes = v.to_string().into_bytes();
    let len = bytes.len();
    let mut r = Response::new(full(bytes));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    add_headers(h, extra);
    r
}

fn add_headers(h: &mut HeaderMap, extra: &[(&'static str, String)]) {
    for (k, v) in extra {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(*k, v);
        }
    }
}

fn rpc_error(id: Option<&Value>, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": {"code": code, "message": message}})
}

fn error_response(
    status: StatusCode,
    id: Option<&Value>,
    code: i64,
    msg: &str,
) -> Response<RespBody> {
    json_response(status, &rpc_error(id, code, msg), &[])
}

fn is_request(m: &Value) -> bool {
    m.get("method").is_some_and(Value::is_string) && m.get("id").is_some_and(|i| !i.is_null())
}

fn mcp(
    shared: &Shared,
    method: &Method,
    headers: &HeaderMap,
    parsed: Option<Value>,
) -> Response<RespBody> {
    let era = if header(headers, "mcp-protocol-version") == Some(MODERN_VERSION) {
        Era::Modern
    } else {
        Era::Legacy
    };
    let script = Script::from_headers(headers, shared.opts.mode);
    match (*method == Method::POST, era) {
        (true, _) => post(shared, headers, parsed, era, &script),
        // The stateless era has no GET stream and no sessions to delete.
        (false, Era::Modern) => plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        (false, Era::Legacy) if *method == Method::GET => get_stream(shared, headers),
        (false, Era::Legacy) if *method == Method::DELETE => delete_session(shared, headers),
        (false, Era::Legacy) => plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    }
}

enum SessionError {
    Missing,
    Unknown,
}

impl SessionError {
    // Status codes and messages as the TypeScript SDK's transport sends them.
    fn response(&self) -> Response<RespBody> {
        match self {
            SessionError::Missing => error_response(
                StatusCode::BAD_REQUEST,
                None,
                -32000,
                "Bad Request: Mcp-Session-Id header is required",
            ),
            SessionError::Unknown => {
                error_response(StatusCode::NOT_FOUND, None, -32001, "Session not found")
            }
        }
    }
}

/// Legacy-era session check.
fn check_session(shared: &Shared, headers: &HeaderMap) -> Result<Option<String>, SessionError> {
    let sid = header(headers, "mcp-session-id").map(str::to_string);
    if !shared.opts.require_session {
        return Ok(sid);
    }
    let Some(sid) = sid else {
        return Err(SessionError::Missing);
    };
    if !lock(&shared.sessions).contains_key(&sid) {
        return Err(SessionError::Unknown);
    }
    Ok(Some(sid))
}

fn delete_session(shared: &Shared, headers: &HeaderMap) -> Response<RespBody> {
    let sid = match check_session(shared, headers) {
        Ok(s) => s,
        Err(e) => return e.response(),
    };
    if let Some(tx) = sid.and_then(|s| lock(&shared.sessions).remove(&s)) {
        let _ = tx.send(true);
    }
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::OK;
    r
}

fn get_stream(shared: &Shared, headers: &HeaderMap) -> Response<RespBody> {
    if !header(headers, "accept").is_some_and(|a| a.contains("text/event-stream")) {
        return plain(
            StatusCode::NOT_ACCEPTABLE,
            "Not Acceptable: Client must accept text/event-stream",
        );
    }
    let sid = match check_session(shared, headers) {
        Ok(s) => s,
        Err(e) => return e.response(),
    };
    let mut ended = sid
        .as_ref()
        .and_then(|s| lock(&shared.sessions).get(s).map(watch::Sender::subscribe));
    let (tx, body) = body::channel(None);
    tokio::spawn(async move {
        loop {
            if tx
                .send(Bytes::from_static(b": keepalive\n\n"))
                .await
                .is_err()
            {
                break;
            }
            let tick = tokio::time::sleep(Duration::from_secs(1));
            match ended.as_mut() {
                Some(rx) => {
                    tokio::select! {
                        _ = tick => {}
                        changed = rx.changed() => {
                            if changed.is_err() || *rx.borrow() { break; }
                        }
                    }
                }
                None => tick.await,
            }
        }
    });
    let mut r = Response::new(body);
    sse_headers(r.headers_mut());
    add_headers(
        r.headers_mut(),
        &sid.map(|s| ("mcp-session-id", s))
            .into_iter()
            .collect::<Vec<_>>(),
    );
    r
}

fn sse_headers(h: &mut HeaderMap) {
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

fn new_session_id(shared: &Shared) -> String {
    let seq = shared.session_seq.fetch_add(1, Ordering::Relaxed);
    let mut out = String::with_capacity(32);
    for salt in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(seq);
        h.write_u64(salt);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// Decodes the `=?base64?…?=` sentinel of MCP request-metadata headers.
pub fn decode_header_value(v: &str) -> Option<String> {
    match v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok()),
        None => Some(v.to_string()),
    }
}

fn mismatch(name: &str, header_value: &str, body_value: &str) -> String {
    format!("Header mismatch: {name} header value '{header_value}' does not match body value '{body_value}'")
}

/// 2026-07-28 header/body consistency; `Err` carries the HeaderMismatch message.
fn check_mirrored_headers(headers: &HeaderMap, msg: &Value) -> Result<(), String> {
    let Some(method) = msg.get("method").and_then(Value::as_str) else {
        return Ok(());
    };
    let mirrored = header(headers, "mcp-method");
    if mirrored.is_none() {
        return Err("Header mismatch: Mcp-Method header is required".into());
    }
    if let Some(h) = mirrored.filter(|h| *h != method) {
        return Err(mismatch("Mcp-Method", h, method));
    }
    let field = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return Ok(()),
    };
    let body_value = msg
        .get("params")
        .and_then(|p| p.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(raw) = header(headers, "mcp-name") else {
        return Err("Header mismatch: Mcp-Name header is required".into());
    };
    let Some(decoded) = decode_header_value(raw) else {
        return Err(format!(
            "Header mismatch: Mcp-Name header value '{raw}' is not valid base64"
        ));
    };
    if decoded != body_value {
        return Err(mismatch("Mcp-Name", &decoded, body_value));
    }
    Ok(())
}

fn post(
    shared: &Shared,
    headers: &HeaderMap,
    parsed: Option<Value>,
    era: Era,
    script: &Script,
) -> Response<RespBody> {
    let Some(parsed) = parsed else {
        return error_response(
            StatusCode::BAD_REQUEST,
            None,
            -32700,
            "Parse error: Invalid JSON",
        );
    };
    let (messages, batch) = match parsed {
        Value::Array(items) => (items, true),
        v @ Value::Object(_) => (vec![v], false),
        _ => {
            return error_response(StatusCode::BAD_REQUEST, None, -32600, "Invalid Request");
        }
    };
    if messages.is_empty() || !messages.iter().all(Value::is_object) {
        return error_response(StatusCode::BAD_REQUEST, None, -32600, "Invalid Request");
    }
    let mut extra_headers: Vec<(&'static str, String)> = Vec::new();
    match era {
        Era::Modern => {
            if !batch {
                if let Some(m) = messages.first() {
                    if let Err(msg) = check_mirrored_headers(headers, m) {
                        return error_response(StatusCode::BAD_REQUEST, m.get("id"), -32020, &msg);
                    }
                }
            }
        }
        Era::Legacy => {
            if let Some(v) = header(headers, "mcp-protocol-version") {
                if !LEGACY_VERSIONS.contains(&v) {
                    return error_response(
                        StatusCode::BAD_REQUEST,
                        None,
                        -32000,
                        &format!("Bad Request: Unsupported protocol version: {v}"),
                    );
                }
            }
            let inits = messages
                .iter()
                .filter(|m| m.get("method").and_then(Value::as_str) == Some("initialize"))
                .count();
            if inits > 0 {
                if messages.len() > 1 {
                    return error_response(
                        StatusCode::BAD_REQUEST,
                        None,
                        -32600,
                        "Invalid Request: Only one initialization request is allowed",
                    );
                }
                let sid = new_session_id(shared);
                let (tx, _) = watch::channel(false);
                lock(&shared.sessions).insert(sid.clone(), tx);
                extra_headers.push(("mcp-session-id", sid));
            } else if let Err(e) = check_session(shared, headers) {
                return e.response();
            }
        }
    }
    if !messages.iter().any(is_request) {
        let mut r = Response::new(empty());
        *r.status_mut() = StatusCode::ACCEPTED;
        return r;
    }
    let outcomes: Vec<Outcome> = messages
        .iter()
        .filter(|m| is_request(m))
        .map(|m| dispatch(shared, m, era, script))
        .collect();
    // 2026-07-28: an unknown method is HTTP 404 (only meaningful for a single request).
    let status = match outcomes.as_slice() {
        [only] if !batch => only.status,
        _ => StatusCode::OK,
    };
    if script.mode == ResponseMode::Json || status != StatusCode::OK {
        let body = if batch {
            Value::Array(outcomes.into_iter().map(|o| o.response).collect())
        } else {
            outcomes
                .into_iter()
                .next()
                .map_or(Value::Null, |o| o.response)
        };
        let bytes = body.to_string().into_bytes();
        let len = bytes.len();
        let body = if script.chunk > 0 || !script.delay.is_zero() {
            body::stream_units(
                body::split_chunks(&bytes, script.chunk),
                script.delay,
                Some(len as u64),
            )
        } else {
            full(bytes)
        };
        let mut r = Response::new(body);
        *r.status_mut() = status;
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(CONTENT_LENGTH, HeaderValue::from(len));
        add_headers(h, &extra_headers);
        return r;
    }
    let mut events: Vec<Bytes> = Vec::new();
    for o in outcomes {
        for m in o.pre.iter().chain(std::iter::once(&o.response)) {
            let id = shared.event_id.fetch_add(1, Ordering::Relaxed) + 1;
            events.push(Bytes::from(format!(
                "event: message\nid: {id}\ndata: {m}\n\n"
            )));
        }
    }
    let units = if script.chunk > 0 {
        body::split_chunks(&events.concat(), script.chunk)
    } else {
        events
    };
    // Always a streamed body: SSE responses carry no content-length (chunked), like SDK servers.
    let mut r = Response::new(body::stream_units(units, script.delay, None));
    sse_headers(r.headers_mut());
    add_headers(r.headers_mut(), &extra_headers);
    r
}

struct Outcome {
    status: StatusCode,
    /// Notifications sent before the response (SSE only).
    pre: Vec<Value>,
    response: Value,
}

fn dispatch(shared: &Shared, msg: &Value, era: Era, script: &Script) -> Outcome {
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let method = msg
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let params = msg.get("params").cloned().unwrap_or_else(|| json!({}));
    let mut pre = Vec::new();
    let generated;
    let tools: &[ToolSpec] = match script.tools {
        Some(n) => {
            generated = generated_tools(n);
            &generated
        }
        None => &shared.opts.tools,
    };
    let result: Result<Value, (i64, String)> = match (method, era) {
        ("initialize", Era::Legacy) => {
            let requested = params.get("protocolVersion").and_then(Value::as_str);
            let version = requested
                .filter(|v| LEGACY_VERSIONS.contains(v))
                .unwrap_or(LATEST_LEGACY_VERSION);
            Ok(json!({
                "protocolVersion": version,
                "capabilities": capabilities(),
                "serverInfo": server_info(),
            }))
        }
        ("server/discover", Era::Modern) => {
            let mut all: Vec<&str> = LEGACY_VERSIONS.to_vec();
            all.push(MODERN_VERSION);
            Ok(json!({
                "supportedVersions": all,
                "capabilities": capabilities(),
                "serverInfo": server_info(),
            }))
        }
        ("ping", _) | ("logging/setLevel", _) => Ok(json!({})),
        ("tools/list", _) => {
            // Other events may precede a list result on its SSE stream; filters must pass them
            // through untouched.
            if script.mode == ResponseMode::Sse {
                pre = side_notifications(&params, "tools/list", script);
            }
            list_tools(tools, &params, script.page_size)
        }
        ("tools/call", _) => {
            let name = params
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match tools.iter().find(|t| t.name == name) {
                Some(tool) => {
                    if script.mode == ResponseMode::Sse {
                        pre = side_notifications(&params, name, script);
                    }
                    let args = params
                        .get("arguments")
                        .cloned()
                        .unwrap_or_else(|| json!({}));
                    Ok(tools::call_result(tool, &args))
                }
                None => Err((-32602, format!("Unknown tool: {name}"))),
            }
        }
        ("resources/list", _) => Ok(json!({"resources": tools::resources()})),
        ("resources/read", _) => {
            let uri = params
                .get("uri")
                .and_then(Value::as_str)
                .unwrap_or_default();
            tools::read_resource(uri).ok_or_else(|| {
                // Resource-not-found moved from -32002 to -32602 in 2026-07-28.
                let code = if era == Era::Modern { -32602 } else { -32002 };
                (code, format!("Resource not found: {uri}"))
            })
        }
        ("prompts/list", _) => Ok(json!({"prompts": tools::prompts()})),
        ("prompts/get", _) => {
            let name = params
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let args = params
                .get("arguments")
                .cloned()
                .unwrap_or_else(|| json!({}));
            tools::get_prompt(name, &args)
                .ok_or_else(|| (-32602, format!("Prompt {name} not found")))
        }
        _ => Err((-32601, format!("Method not found: {method}"))),
    };
    match result {
        Ok(mut r) => {
            if era == Era::Modern {
                if let Some(obj) = r.as_object_mut() {
                    obj.insert("resultType".into(), "complete".into());
                    let cacheable = matches!(
                        method,
                        "server/discover"
                            | "tools/list"
                            | "resources/list"
                            | "resources/read"
                            | "prompts/list"
                    );
                    if cacheable {
                        obj.insert("ttlMs".into(), 60_000.into());
                        obj.insert("cacheScope".into(), "public".into());
                    }
                }
            }
            Outcome {
                status: StatusCode::OK,
                pre,
                response: json!({"jsonrpc": "2.0", "id": id, "result": r}),
            }
        }
        Err((code, message)) => Outcome {
            status: if era == Era::Modern && code == -32601 {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::OK
            },
            pre,
            response: rpc_error(Some(&id), code, &message),
        },
    }
}

fn capabilities() -> Value {
    json!({"tools": {"listChanged": true}, "resources": {}, "prompts": {}, "logging": {}})
}

fn server_info() -> Value {
    json!({"name": SERVER_NAME, "version": env!("CARGO_PKG_VERSION")})
}

fn side_notifications(params: &Value, tool: &str, script: &Script) -> Vec<Value> {
    let token = params
        .get("_meta")
        .and_then(|m| m.get("progressToken"))
        .cloned()
        .unwrap_or_else(|| json!("p"));
    let mut out = Vec::new();
    for i in 1..=script.progress {
        out.push(json!({
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": token, "progress": i, "total": script.progress, "message": format!("step {i} of {}", script.progress)},
        }));
    }
    for i in 1..=script.log {
        out.push(json!({
            "jsonrpc": "2.0",
            "method": "notifications/message",
            "params": {"level": "info", "logger": SERVER_NAME, "data": format!("log {i} of {} from {tool}", script.log)},
        }));
    }
    out
}

const CURSOR_PREFIX: &str = "offset:";

fn encode_cursor(offset: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{CURSOR_PREFIX}{offset}"))
}

fn decode_cursor(c: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::STANDARD.decode(c).ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix(CURSOR_PREFIX)?
        .parse()
        .ok()
}

fn list_tools(
    tools: &[ToolSpec],
    params: &Value,
    page_size: Option<usize>,
) -> Result<Value, (i64, String)> {
    let offset = match params.get("cursor").and_then(Value::as_str) {
        Some(c) => decode_cursor(c)
            .filter(|o| *o <= tools.len())
            .ok_or((-32602, "Invalid cursor".to_string()))?,
        None => 0,
    };
    let end = page_size.map_or(tools.len(), |k| offset.saturating_add(k).min(tools.len()));
    let page: Vec<Value> = tools
        .get(offset..end)
        .unwrap_or_default()
        .iter()
        .map(ToolSpec::to_json)
        .collect();
    let mut result = json!({"tools": page});
    if end < tools.len() {
        if let Some(obj) = result.as_object_mut() {
            obj.insert("nextCursor".into(), encode_cursor(end).into());
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("not-base64!"), None);
    }

    #[test]
    fn base64_sentinel_header_values_are_decoded() {
        assert_eq!(
            decode_header_value("=?base64?ZWNobw==?=").as_deref(),
            Some("echo")
        );
        assert_eq!(decode_header_value("echo").as_deref(), Some("echo"));
        assert_eq!(decode_header_value("=?base64?***?="), None);
    }

    #[test]
    fn pagination_pages_through_all_tools_then_stops() {
        let tools = generated_tools(5);
        let p1 = list_tools(&tools, &json!({}), Some(2)).unwrap();
        assert_eq!(p1["tools"].as_array().unwrap().len(), 2);
        let c = p1["nextCursor"].as_str().unwrap();
        let p2 = list_tools(&tools, &json!({"cursor": c}), Some(2)).unwrap();
        assert_eq!(p2["tools"][0]["name"], "tool_0002");
        let c = p2["nextCursor"].as_str().unwrap();
        let p3 = list_tools(&tools, &json!({"cursor": c}), Some(2)).unwrap();
        assert_eq!(p3["tools"].as_array().unwrap().len(), 1);
        assert!(p3.get("nextCursor").is_none());
    }
}
