//! A small blocking MCP client for tests: raw requests, legacy sessions, stateless (2026-07-28)
//! calls, JSON-or-SSE response parsing and a timestamped streaming reader.

use anyhow::{anyhow, bail, Context as _, Result};
use base64::Engine as _;
use serde_json::{json, Value};
use std::io::Read as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The `Accept` header MCP clients must send on POST.
pub const ACCEPT_BOTH: &str = "application/json, text/event-stream";
/// Protocol version used by [`Session`] unless told otherwise.
pub const DEFAULT_LEGACY_VERSION: &str = "2025-11-25";
/// The stateless protocol version used by [`Stateless`].
pub const MODERN_VERSION: &str = "2026-07-28";

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// Headers (names lower-case).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Resp {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `content-type` header.
    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }

    /// Body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Body parsed as one JSON value.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("body is not JSON: {:?}", self.text()))
    }

    /// The JSON-RPC messages of the body, whether `application/json` or `text/event-stream`.
    pub fn messages(&self) -> Result<Vec<Value>> {
        parse_messages(self.content_type(), &self.body)
    }

    /// The SSE events of the body.
    pub fn events(&self) -> Vec<SseEvent> {
        parse_sse(&self.body)
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout_read(Duration::from_secs(30))
        .build()
}

fn has_header(headers: &[(&str, &str)], name: &str) -> bool {
    headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
}

/// A whole `ureq` response (every header value, the body read to its end).
pub fn into_resp(r: ureq::Response) -> Result<Resp> {
    let status = r.status();
    let headers = r
        .headers_names()
        .into_iter()
        .flat_map(|n| {
            r.all(&n)
                .into_iter()
                .map(|v| (n.to_ascii_lowercase(), v.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut body = Vec::new();
    r.into_reader()
        .read_to_end(&mut body)
        .context("reading response body")?;
    Ok(Resp {
        status,
        headers,
        body,
    })
}

fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<ureq::Response> {
    let mut req = agent.request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some(b) => {
            if !has_header(headers, "content-type") {
                req = req.set("content-type", "application/json");
            }
            req.send_bytes(b)
        }
        None => req.call(),
    };
    match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => Ok(r),
        Err(e) => Err(anyhow!("{method} {url}: {e}")),
    }
}

/// Sends any HTTP request and reads the whole response (any status is `Ok`).
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Resp> {
    into_resp(send(&agent(), method, url, headers, body)?)
}

/// The JSON-RPC response to request `id` in `resp` (JSON or SSE body).
fn response_to(method: &str, id: u64, resp: &Resp) -> Result<Value> {
    let messages = resp.messages()?;
    find_response(&messages, id).cloned().ok_or_else(|| {
        anyhow!(
            "no response to {method} (HTTP {}): {}",
            resp.status,
            resp.text()
        )
    })
}

/// Sends a request and returns the response as it streams in (chunks with arrival times).
pub fn stream(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Streaming> {
    Streaming::start(&agent(), method, url, headers, body)
}

/// POSTs `body` (JSON text) with `content-type: application/json` and the MCP `Accept` header
/// unless `headers` set them.
pub fn post(url: &str, body: &str, headers: &[(&str, &str)]) -> Result<Resp> {
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if !has_header(headers, "accept") {
        all.push(("accept", ACCEPT_BOTH));
    }
    request("POST", url, &all, Some(body.as_bytes()))
}

/// GET with headers.
pub fn get(url: &str, headers: &[(&str, &str)]) -> Result<Resp> {
    request("GET", url, headers, None)
}

/// DELETE with headers.
pub fn delete(url: &str, headers: &[(&str, &str)]) -> Result<Resp> {
    request("DELETE", url, headers, None)
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// `event:` field (empty when absent, meaning `message`).
    pub event: String,
    /// `id:` field, if any.
    pub id: Option<String>,
    /// `data:` lines joined with `\n`.
    pub data: String,
}

/// Incremental SSE parser (WHATWG rules: CRLF/LF/CR line ends, comments, multi-line data).
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    last_was_cr: bool,
    cur: SseEvent,
    has_data: bool,
    comments: usize,
}

impl SseParser {
    /// A fresh parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of comment lines (e.g. keep-alives) seen so far.
    pub fn comments(&self) -> usize {
        self.comments
    }

    /// Feeds bytes; returns the events completed by them.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.last_was_cr {
                self.last_was_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => {
                    self.last_was_cr = true;
                    self.end_line(&mut out);
                }
                b'\n' => self.end_line(&mut out),
                _ => self.line.push(b),
            }
        }
        out
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let line = String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
        if line.is_empty() {
            let ev = std::mem::take(&mut self.cur);
            if std::mem::take(&mut self.has_data) {
                out.push(ev);
            }
            return;
        }
        if line.starts_with(':') {
            self.comments += 1;
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f.to_string(), v.strip_prefix(' ').unwrap_or(v).to_string()),
            None => (line, String::new()),
        };
        match field.as_str() {
            "event" => self.cur.event = value,
            "id" => self.cur.id = Some(value),
            "data" => {
                if self.has_data {
                    self.cur.data.push('\n');
                }
                self.cur.data.push_str(&value);
                self.has_data = true;
            }
            _ => {}
        }
    }
}

/// All complete events of an SSE body.
pub fn parse_sse(body: &[u8]) -> Vec<SseEvent> {
    SseParser::new().feed(body)
}

/// JSON-RPC messages of a body: SSE `data` payloads (empty ones skipped) when the content type
/// is `text/event-stream`, else the JSON value (arrays flattened).
pub fn parse_messages(content_type: Option<&str>, body: &[u8]) -> Result<Vec<Value>> {
    let is_sse = content_type.is_some_and(|c| c.contains("text/event-stream"));
    if is_sse {
        return parse_sse(body)
            .into_iter()
            .filter(|e| !e.data.trim().is_empty())
            .map(|e| {
                serde_json::from_str(&e.data)
                    .with_context(|| format!("SSE data is not JSON: {:?}", e.data))
            })
            .collect();
    }
    if body.is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_slice::<Value>(body)
        .with_context(|| format!("body is not JSON: {:?}", String::from_utf8_lossy(body)))?
    {
        Value::Array(items) => Ok(items),
        v => Ok(vec![v]),
    }
}

/// A JSON-RPC request object.
pub fn rpc_request(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A JSON-RPC notification object.
pub fn rpc_notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// The response to request `id` among `messages` (the last message whose `id` matches).
pub fn find_response(messages: &[Value], id: u64) -> Option<&Value> {
    messages.iter().rev().find(|m| {
        m.get("id").and_then(Value::as_u64) == Some(id)
            && (m.get("result").is_some() || m.get("error").is_some())
    })
}

/// A legacy-era (initialize + `Mcp-Session-Id`) client session.
#[derive(Debug)]
pub struct Session {
    /// The MCP endpoint URL.
    pub url: String,
    /// Session id assigned by the server, if any.
    pub session_id: Option<String>,
    /// Negotiated protocol version (sent as `MCP-Protocol-Version`).
    pub protocol_version: String,
    /// Headers added to every request (e.g. `authorization`).
    pub extra_headers: Vec<(String, String)>,
    /// The `initialize` result.
    pub init_result: Value,
    next_id: AtomicU64,
    agent: ureq::Agent,
}

impl Session {
    /// Initializes a session at `url` (version 2025-11-25) and sends `notifications/initialized`.
    pub fn initialize(url: &str) -> Result<Session> {
        Self::initialize_with(url, DEFAULT_LEGACY_VERSION, &[])
    }

    /// Initializes with a requested version and extra headers sent on every request.
    pub fn initialize_with(url: &str, version: &str, headers: &[(&str, &str)]) -> Result<Session> {
        let mut s = Session {
            url: url.to_string(),
            session_id: None,
            protocol_version: version.to_string(),
            extra_headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            init_result: Value::Null,
            next_id: AtomicU64::new(1),
            agent: agent(),
        };
        let params = json!({
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "mcp-integration", "version": env!("CARGO_PKG_VERSION")},
        });
        let id = s.next_id();
        let resp = s.post_value(&rpc_request(id, "initialize", params), false, &[])?;
        if resp.status != 200 {
            bail!("initialize failed: HTTP {} {}", resp.status, resp.text());
        }
        s.session_id = resp.header("mcp-session-id").map(str::to_string);
        let messages = resp.messages()?;
        let msg = find_response(&messages, id)
            .ok_or_else(|| anyhow!("no initialize response in {messages:?}"))?;
        let result = msg
            .get("result")
            .ok_or_else(|| anyhow!("initialize error: {msg}"))?;
        if let Some(v) = result.get("protocolVersion").and_then(Value::as_str) {
            s.protocol_version = v.to_string();
        }
        s.init_result = result.clone();
        let ack = s.notify("notifications/initialized", json!({}))?;
        if ack.status != 202 {
            bail!(
                "notifications/initialized: HTTP {} {}",
                ack.status,
                ack.text()
            );
        }
        Ok(s)
    }

    /// A fresh request id.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn headers<'a>(
        &'a self,
        with_version: bool,
        extra: &[(&'a str, &'a str)],
    ) -> Vec<(&'a str, &'a str)> {
        let mut h: Vec<(&str, &str)> = vec![("accept", ACCEPT_BOTH)];
        if with_version {
            h.push(("mcp-protocol-version", self.protocol_version.as_str()));
        }
        if let Some(sid) = &self.session_id {
            h.push(("mcp-session-id", sid.as_str()));
        }
        h.extend(
            self.extra_headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        h.extend_from_slice(extra);
        h
    }

    fn post_value(&self, body: &Value, with_version: bool, extra: &[(&str, &str)]) -> Result<Resp> {
        let headers = self.headers(with_version, extra);
        into_resp(send(
            &self.agent,
            "POST",
            &self.url,
            &headers,
            Some(body.to_string().as_bytes()),
        )?)
    }

    /// POSTs any JSON body with the session headers (plus `extra`).
    pub fn post_raw(&self, body: &Value, extra: &[(&str, &str)]) -> Result<Resp> {
        self.post_value(body, true, extra)
    }

    /// Sends request `method` and returns the raw HTTP response.
    pub fn request(
        &self,
        method: &str,
        params: Value,
        extra: &[(&str, &str)],
    ) -> Result<(u64, Resp)> {
        let id = self.next_id();
        let resp = self.post_value(&rpc_request(id, method, params), true, extra)?;
        Ok((id, resp))
    }

    /// Calls `method` and returns its JSON-RPC response message (`result` or `error`).
    pub fn call(&self, method: &str, params: Value) -> Result<Value> {
        self.call_with(method, params, &[])
    }

    /// [`Session::call`] with extra request headers (e.g. `x-test-response: json`).
    pub fn call_with(&self, method: &str, params: Value, extra: &[(&str, &str)]) -> Result<Value> {
        let (id, resp) = self.request(method, params, extra)?;
        response_to(method, id, &resp)
    }

    /// Calls tool `name` with `arguments`; returns the response message.
    pub fn call_tool(&self, name: &str, arguments: Value) -> Result<Value> {
        self.call("tools/call", json!({"name": name, "arguments": arguments}))
    }

    /// Sends a notification (expects 202).
    pub fn notify(&self, method: &str, params: Value) -> Result<Resp> {
        self.post_value(&rpc_notification(method, params), true, &[])
    }

    /// Streams the response of `method` as timed chunks.
    pub fn stream(&self, method: &str, params: Value, extra: &[(&str, &str)]) -> Result<Streaming> {
        let id = self.next_id();
        let headers = self.headers(true, extra);
        let body = rpc_request(id, method, params).to_string();
        Streaming::start(
            &self.agent,
            "POST",
            &self.url,
            &headers,
            Some(body.as_bytes()),
        )
    }

    /// Opens the legacy GET listen stream.
    pub fn listen(&self) -> Result<Streaming> {
        let mut headers = self.headers(true, &[]);
        if let Some(a) = headers.iter_mut().find(|(k, _)| *k == "accept") {
            a.1 = "text/event-stream";
        }
        Streaming::start(&self.agent, "GET", &self.url, &headers, None)
    }

    /// DELETEs the session.
    pub fn delete(&self) -> Result<Resp> {
        let headers = self.headers(true, &[]);
        into_resp(send(&self.agent, "DELETE", &self.url, &headers, None)?)
    }
}

/// Encodes a header value for `Mcp-Name`/`Mcp-Param-*`, using the base64 sentinel when the
/// value is not plain visible ASCII (or has edge whitespace, or looks like the sentinel).
pub fn mcp_header_value(v: &str) -> String {
    let plain = v.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !v.starts_with(' ')
        && !v.ends_with(' ')
        && !v.starts_with("=?base64?");
    if plain {
        v.to_string()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(v)
        )
    }
}

/// A stateless (2026-07-28) client: every request carries the version header, `_meta`, and the
/// mirrored `Mcp-Method`/`Mcp-Name` headers.
#[derive(Debug)]
pub struct Stateless {
    /// The MCP endpoint URL.
    pub url: String,
    /// Headers added to every request.
    pub extra_headers: Vec<(String, String)>,
    next_id: AtomicU64,
    agent: ureq::Agent,
}

impl Stateless {
    /// A client for `url`.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            extra_headers: Vec::new(),
            next_id: AtomicU64::new(1),
            agent: agent(),
        }
    }

    /// Adds a header sent on every request.
    pub fn with_header(mut self, k: &str, v: &str) -> Self {
        self.extra_headers.push((k.to_string(), v.to_string()));
        self
    }

    /// The request body for `method`, with the required `_meta` keys merged into `params`.
    pub fn body(&self, id: u64, method: &str, params: Value) -> Value {
        let mut params = match params {
            Value::Object(o) => o,
            _ => serde_json::Map::new(),
        };
        let meta = params.entry("_meta").or_insert_with(|| json!({}));
        if let Some(m) = meta.as_object_mut() {
            m.insert(
                "io.modelcontextprotocol/protocolVersion".into(),
                MODERN_VERSION.into(),
            );
            m.entry("io.modelcontextprotocol/clientCapabilities")
                .or_insert_with(|| json!({}));
        }
        rpc_request(id, method, Value::Object(params))
    }

    /// The headers a compliant client sends for `body`.
    pub fn headers_for(body: &Value) -> Vec<(String, String)> {
        let mut h = vec![
            ("accept".to_string(), ACCEPT_BOTH.to_string()),
            (
                "mcp-protocol-version".to_string(),
                MODERN_VERSION.to_string(),
            ),
        ];
        if let Some(m) = body.get("method").and_then(Value::as_str) {
            h.push(("mcp-method".to_string(), m.to_string()));
        }
        let params = body.get("params");
        let name = params
            .and_then(|p| p.get("name").or_else(|| p.get("uri")))
            .and_then(Value::as_str);
        if let Some(n) = name {
            h.push(("mcp-name".to_string(), mcp_header_value(n)));
        }
        h
    }

    /// Sends `method` with compliant headers, overridden/extended by `extra`; raw response.
    pub fn request(
        &self,
        method: &str,
        params: Value,
        extra: &[(&str, &str)],
    ) -> Result<(u64, Resp)> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = self.body(id, method, params);
        let mut owned = Self::headers_for(&body);
        owned.retain(|(k, _)| !has_header(extra, k));
        owned.extend(self.extra_headers.iter().cloned());
        let mut headers: Vec<(&str, &str)> = owned
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        headers.extend_from_slice(extra);
        let resp = into_resp(send(
            &self.agent,
            "POST",
            &self.url,
            &headers,
            Some(body.to_string().as_bytes()),
        )?)?;
        Ok((id, resp))
    }

    /// Calls `method`; returns its JSON-RPC response message.
    pub fn call(&self, method: &str, params: Value) -> Result<Value> {
        self.call_with(method, params, &[])
    }

    /// [`Stateless::call`] with extra/overriding headers.
    pub fn call_with(&self, method: &str, params: Value, extra: &[(&str, &str)]) -> Result<Value> {
        let (id, resp) = self.request(method, params, extra)?;
        response_to(method, id, &resp)
    }
}

/// HTTP version a [`curl`] request insists on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    /// `--http1.1`.
    Http1,
    /// `--http2` (over TLS: offered by ALPN, falls back to 1.1 if the server refuses).
    Http2,
}

/// One request made with the `curl` command-line tool (for TLS and HTTP/2, which the built-in
/// client does not speak), trusting `ca` and resolving `localhost` to 127.0.0.1.
#[derive(Debug, Clone)]
pub struct Curl<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// `https://localhost:<port>/mcp` (or http).
    pub url: &'a str,
    /// Request headers.
    pub headers: &'a [(&'a str, &'a str)],
    /// Request body.
    pub body: Option<&'a str>,
    /// HTTP version.
    pub version: HttpVersion,
    /// CA certificate to trust (`None`: the system store).
    pub ca: Option<&'a std::path::Path>,
}

/// What [`Curl::send`] got back: the response and the HTTP version curl used (`1.1`, `2`).
#[derive(Debug, Clone)]
pub struct CurlResp {
    /// The response (headers of the final response block).
    pub resp: Resp,
    /// `%{http_version}`: `1.1` or `2`.
    pub http_version: String,
}

impl Curl<'_> {
    /// Runs curl (at most 20 s); `Err` carries curl's exit status and message (e.g. a TLS
    /// verification failure).
    pub fn send(&self) -> Result<CurlResp> {
        let dir = tempfile::tempdir().context("temp dir for curl")?;
        let head = dir.path().join("head");
        let body = dir.path().join("body");
        let mut cmd = std::process::Command::new("curl");
        cmd.arg("-sS")
            .arg("--max-time")
            .arg("20")
            .arg(match self.version {
                HttpVersion::Http1 => "--http1.1",
                HttpVersion::Http2 => "--http2",
            })
            .arg("-X")
            .arg(self.method)
            .arg("-D")
            .arg(&head)
            .arg("-o")
            .arg(&body)
            .arg("-w")
            .arg("%{http_version}");
        if let Some(port) = self
            .url
            .strip_prefix("https://localhost:")
            .or_else(|| self.url.strip_prefix("http://localhost:"))
            .and_then(|r| r.split('/').next())
        {
            cmd.arg("--resolve")
                .arg(format!("localhost:{port}:127.0.0.1"));
        }
        if let Some(ca) = self.ca {
            cmd.arg("--cacert").arg(ca);
        }
        for (k, v) in self.headers {
            cmd.arg("-H").arg(format!("{k}: {v}"));
        }
        if let Some(b) = self.body {
            if !has_header(self.headers, "content-type") {
                cmd.arg("-H").arg("content-type: application/json");
            }
            cmd.arg("--data-binary").arg(b);
        }
        let out = cmd.arg(self.url).output().context("running curl")?;
        if !out.status.success() {
            bail!(
                "curl {} {} failed ({}): {}",
                self.method,
                self.url,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let head_text = std::fs::read_to_string(&head).context("reading curl headers")?;
        // The last header block is the final response (after any 1xx).
        let block = head_text
            .split("\r\n\r\n")
            .filter(|b| !b.trim().is_empty())
            .last()
            .unwrap_or_default();
        let mut lines = block.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| anyhow!("no status line in {head_text:?}"))?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Ok(CurlResp {
            resp: Resp {
                status,
                headers,
                body: std::fs::read(&body).unwrap_or_default(),
            },
            http_version: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        })
    }
}

/// One piece of a streamed body and when it arrived (relative to the request being sent).
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Time since the request was sent.
    pub at: Duration,
    /// The bytes read.
    pub bytes: Vec<u8>,
}

/// An SSE event with the arrival time of the read that completed it.
#[derive(Debug, Clone)]
pub struct TimedEvent {
    /// Time since the request was sent.
    pub at: Duration,
    /// The event.
    pub event: SseEvent,
}

/// A response being read incrementally (for "arrives progressively" assertions).
pub struct Streaming {
    /// HTTP status.
    pub status: u16,
    /// Headers (names lower-case).
    pub headers: Vec<(String, String)>,
    start: Instant,
    reader: Box<dyn std::io::Read + Send + Sync>,
    done: bool,
}

impl std::fmt::Debug for Streaming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streaming")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl Streaming {
    fn start(
        agent: &ureq::Agent,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Self> {
        let start = Instant::now();
        let r = send(agent, method, url, headers, body)?;
        let status = r.status();
        let headers = r
            .headers_names()
            .into_iter()
            .filter_map(|n| {
                r.header(&n)
                    .map(|v| (n.to_ascii_lowercase(), v.to_string()))
            })
            .collect();
        Ok(Self {
            status,
            headers,
            start,
            reader: r.into_reader(),
            done: false,
        })
    }

    /// First value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Reads the next chunk as it arrives; `None` at end of body.
    pub fn next_chunk(&mut self) -> Option<Result<Chunk>> {
        if self.done {
            return None;
        }
        let mut buf = vec![0u8; 64 * 1024];
        match self.reader.read(&mut buf) {
            Ok(0) => {
                self.done = true;
                None
            }
            Ok(n) => {
                buf.truncate(n);
                Some(Ok(Chunk {
                    at: self.start.elapsed(),
                    bytes: buf,
                }))
            }
            Err(e) => {
                self.done = true;
                Some(Err(anyhow!("reading stream: {e}")))
            }
        }
    }

    /// Reads to the end, returning every chunk.
    pub fn chunks(mut self) -> Result<Vec<Chunk>> {
        let mut out = Vec::new();
        while let Some(c) = self.next_chunk() {
            out.push(c?);
        }
        Ok(out)
    }

    /// Reads to the end, returning the SSE events with their arrival times.
    pub fn events(self) -> Result<Vec<TimedEvent>> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in self.chunks()? {
            out.extend(
                p.feed(&c.bytes)
                    .into_iter()
                    .map(|event| TimedEvent { at: c.at, event }),
            );
        }
        Ok(out)
    }

    /// Reads until `n` SSE events arrived (or the stream ended).
    pub fn take_events(&mut self, n: usize) -> Result<Vec<TimedEvent>> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        while out.len() < n {
            let Some(c) = self.next_chunk() else { break };
            let c = c?;
            out.extend(
                p.feed(&c.bytes)
                    .into_iter()
                    .map(|event| TimedEvent { at: c.at, event }),
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_parser_joins_events_split_at_every_byte() {
        let body = b"event: message\r\nid: 1\r\ndata: {\"a\":1}\r\n\r\n: keepalive\n\ndata: x\ndata: y\n\n";
        let mut p = SseParser::new();
        let mut events = Vec::new();
        for b in body {
            events.extend(p.feed(std::slice::from_ref(b)));
        }
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].id.as_deref(), Some("1"));
        assert_eq!(events[0].data, "{\"a\":1}");
        assert_eq!(events[1].data, "x\ny");
        assert_eq!(p.comments(), 1);
    }

    #[test]
    fn parse_messages_handles_json_arrays_and_sse() {
        let json = parse_messages(Some("application/json"), br#"[{"id":1},{"id":2}]"#).unwrap();
        assert_eq!(json.len(), 2);
        let sse = parse_messages(
            Some("text/event-stream"),
            b"id: 0\ndata: \n\ndata: {\"id\":3}\n\n",
        )
        .unwrap();
        assert_eq!(sse, vec![json!({"id": 3})]);
    }

    #[test]
    fn non_ascii_header_values_use_the_base64_sentinel() {
        assert_eq!(mcp_header_value("echo"), "echo");
        assert_eq!(mcp_header_value("héllo"), "=?base64?aMOpbGxv?=");
        assert_eq!(mcp_header_value(" x"), "=?base64?IHg=?=");
    }
}
