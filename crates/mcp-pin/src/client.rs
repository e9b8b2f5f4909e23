//! A blocking MCP client over Streamable HTTP that lists a server's tools, in either era:
//!
//! - **2026-07-28 (stateless)**: `server/discover`, then `tools/list` pages, every request with
//!   `MCP-Protocol-Version`, `Mcp-Method` and the `_meta` keys the era requires.
//! - **2025 (legacy)**: `initialize`, `notifications/initialized`, `tools/list` pages with
//!   `Mcp-Session-Id` and the negotiated `MCP-Protocol-Version`, then `DELETE` of the session.
//!
//! Responses may be `application/json` or `text/event-stream` (read event by event with the
//! filter's own SSE parser, and left as soon as the answer arrived). Each listed tool is kept as
//! the exact bytes the server sent, which is what the filter fingerprints.

use mcp_core::json::{self, Kind, Limits};
use mcp_core::sse::{EventAction, SseStream};
use serde_json::{json, Value};
use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The stateless protocol version.
pub const MODERN_VERSION: &str = "2026-07-28";
/// The legacy version asked for on `initialize` (the server may answer an older one).
pub const LEGACY_VERSION: &str = "2025-11-25";
/// `Accept` on every POST.
const ACCEPT_BOTH: &str = "application/json, text/event-stream";
/// Largest response body or single SSE event read.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Most `tools/list` pages followed.
const MAX_PAGES: usize = 10_000;
/// Nesting accepted in a response (tool schemas nest).
const MAX_DEPTH: usize = mcp_core::config::MAX_MAX_JSON_DEPTH;

/// Which MCP era to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EraChoice {
    /// Try 2026-07-28 `server/discover`; fall back to a legacy `initialize`.
    Auto,
    /// Legacy session (`initialize`).
    Legacy,
    /// Stateless 2026-07-28.
    Modern,
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The MCP endpoint (`http://host:port/mcp`, `https://...`).
    pub url: String,
    /// Extra request headers sent on every request (`Authorization`, ...).
    pub headers: Vec<(String, String)>,
    /// PEM file of the CA certificates to trust for https (instead of the Mozilla roots).
    pub cacert: Option<PathBuf>,
    /// Per-request timeout (connect, send and read).
    pub timeout: Duration,
    /// Which era.
    pub era: EraChoice,
}

/// Why the tools could not be listed (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError(pub String);

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClientError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ClientError> {
    Err(ClientError(msg.into()))
}

/// One listed tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTool {
    /// Its `name`.
    pub name: String,
    /// The exact bytes of the element of `result.tools`.
    pub raw: Vec<u8>,
}

/// What the server listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The protocol version spoken (`2026-07-28`, or the one `initialize` negotiated).
    pub protocol_version: String,
    /// Whether the stateless era was used.
    pub stateless: bool,
    /// `serverInfo.name`, `serverInfo.version` when the server sent them.
    pub server: Option<String>,
    /// Every tool of every page, in listing order.
    pub tools: Vec<ListedTool>,
    /// Number of `tools/list` pages read.
    pub pages: usize,
}

/// An HTTP response read far enough: status, headers and the JSON-RPC messages of the body.
#[derive(Debug)]
struct Reply {
    status: u16,
    session_id: Option<String>,
    content_type: String,
    /// Each message as its own JSON text (JSON arrays are split into their elements).
    messages: Vec<Vec<u8>>,
}

struct Conn {
    opts: ClientOptions,
    agent: ureq::Agent,
    next_id: u64,
}

/// Lists the server's tools (every page), in the era asked for.
pub fn list_tools(opts: &ClientOptions) -> Result<Listing, ClientError> {
    let mut conn = Conn::new(opts.clone())?;
    match opts.era {
        EraChoice::Modern => conn.modern(),
        EraChoice::Legacy => conn.legacy(),
        EraChoice::Auto => match conn.discover() {
            Ok(server) => conn.modern_list(server),
            // Any refusal of `server/discover` (HTTP 400/404/405, a JSON-RPC error, no
            // 2026-07-28 among the versions): a legacy server. Unreachable is final.
            Err(Discover::NotModern(_)) => conn.legacy(),
            Err(Discover::Fatal(e)) => Err(e),
        },
    }
}

enum Discover {
    NotModern(ClientError),
    Fatal(ClientError),
}

impl Conn {
    fn new(opts: ClientOptions) -> Result<Self, ClientError> {
        let mut b = ureq::AgentBuilder::new()
            .timeout(opts.timeout)
            .redirects(0)
            .user_agent(concat!("mcp-pin/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &opts.cacert {
            b = b.tls_config(Arc::new(tls_config(path)?));
        }
        Ok(Conn {
            opts,
            agent: b.build(),
            next_id: 1,
        })
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends one request; `Err` only when no HTTP response came back.
    fn send(
        &self,
        method: &str,
        headers: &[(&str, String)],
        body: Option<&Value>,
        want_id: Option<u64>,
    ) -> Result<Reply, ClientError> {
        let mut req = self.agent.request(method, &self.opts.url);
        for (k, v) in &self.opts.headers {
            req = req.set(k, v);
        }
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let result = match body {
            Some(b) => req
                .set("content-type", "application/json")
                .send_bytes(b.to_string().as_bytes()),
            None => req.call(),
        };
        let resp = match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(t)) => {
                let what = body
                    .and_then(|b| b.get("method"))
                    .and_then(Value::as_str)
                    .unwrap_or(method);
                return err(format!("{what} failed: {t}"));
            }
        };
        read_reply(resp, want_id)
    }

    // ---- 2026-07-28 -------------------------------------------------------------------

    fn modern_request(
        &mut self,
        method: &str,
        mut params: serde_json::Map<String, Value>,
    ) -> Result<(u64, Reply), ClientError> {
        let id = self.id();
        params.insert(
            "_meta".into(),
            json!({
                "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": client_info(),
            }),
        );
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let headers = [
            ("accept", ACCEPT_BOTH.to_owned()),
            ("mcp-protocol-version", MODERN_VERSION.to_owned()),
            ("mcp-method", method.to_owned()),
        ];
        let reply = self.send("POST", &headers, Some(&body), Some(id))?;
        Ok((id, reply))
    }

    fn discover(&mut self) -> Result<Option<String>, Discover> {
        let (id, reply) = self
            .modern_request("server/discover", serde_json::Map::new())
            .map_err(Discover::Fatal)?;
        let result = match response_result("server/discover", id, &reply) {
            Ok(r) => r,
            Err(e) => return Err(Discover::NotModern(e)),
        };
        let supported = result
            .get("supportedVersions")
            .and_then(Value::as_array)
            .is_some_and(|v| v.iter().any(|s| s.as_str() == Some(MODERN_VERSION)));
        if !supported {
            return Err(Discover::NotModern(ClientError(format!(
                "server/discover: {MODERN_VERSION} is not among the supported versions"
            ))));
        }
        Ok(server_name(&result))
    }

    fn modern(&mut self) -> Result<Listing, ClientError> {
        let server = self.discover().map_err(|e| match e {
            Discover::NotModern(e) | Discover::Fatal(e) => e,
        })?;
        self.modern_list(server)
    }

    fn modern_list(&mut self, server: Option<String>) -> Result<Listing, ClientError> {
        let (tools, pages) =
            self.pages(|conn, params| conn.modern_request("tools/list", params))?;
        Ok(Listing {
            protocol_version: MODERN_VERSION.to_owned(),
            stateless: true,
            server,
            tools,
            pages,
        })
    }

    // ---- legacy ------------------------------------------------------------------------

    fn legacy(&mut self) -> Result<Listing, ClientError> {
        let id = self.id();
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
            "protocolVersion": LEGACY_VERSION,
            "capabilities": {},
            "clientInfo": client_info(),
        }});
        let reply = self.send(
            "POST",
            &[("accept", ACCEPT_BOTH.to_owned())],
            Some(&body),
            Some(id),
        )?;
        let result = response_result("initialize", id, &reply)?;
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or(LEGACY_VERSION)
            .to_owned();
        let server = server_name(&result);
        let mut session = Session {
            version,
            session_id: reply.session_id,
        };
        let listed = self.legacy_session(&mut session);
        // End the session whatever happened (a server may answer 405: sessions it ends itself).
        if session.session_id.is_some() {
            let _ = self.send("DELETE", &session.headers(), None, None);
        }
        let (tools, pages) = listed?;
        Ok(Listing {
            protocol_version: session.version,
            stateless: false,
            server,
            tools,
            pages,
        })
    }

    fn legacy_session(&mut self, s: &mut Session) -> Result<(Vec<ListedTool>, usize), ClientError> {
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let ack = self.send("POST", &s.headers(), Some(&note), None)?;
        if !(200..300).contains(&ack.status) {
            return err(format!(
                "notifications/initialized: HTTP {} from {}",
                ack.status, self.opts.url
            ));
        }
        let headers = s.headers();
        self.pages(|conn, params| {
            let id = conn.id();
            let body =
                json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": params});
            let reply = conn.send("POST", &headers, Some(&body), Some(id))?;
            Ok((id, reply))
        })
    }

    // ---- pages -------------------------------------------------------------------------

    /// Follows `nextCursor` until the last page.
    fn pages(
        &mut self,
        mut request: impl FnMut(
            &mut Self,
            serde_json::Map<String, Value>,
        ) -> Result<(u64, Reply), ClientError>,
    ) -> Result<(Vec<ListedTool>, usize), ClientError> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen = std::collections::BTreeSet::new();
        for page in 1..=MAX_PAGES {
            let mut params = serde_json::Map::new();
            if let Some(c) = &cursor {
                params.insert("cursor".into(), c.clone().into());
            }
            let (id, reply) = request(self, params)?;
            let next = page_tools(id, &reply, &mut tools)?;
            match next {
                None => return Ok((tools, page)),
                Some(c) => {
                    if !seen.insert(c.clone()) {
                        return err(format!(
                            "tools/list: the server repeated the cursor {c:?} (a paging loop)"
                        ));
                    }
                    cursor = Some(c);
                }
            }
        }
        err(format!("tools/list: more than {MAX_PAGES} pages"))
    }
}

struct Session {
    version: String,
    session_id: Option<String>,
}

impl Session {
    fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("accept", ACCEPT_BOTH.to_owned()),
            ("mcp-protocol-version", self.version.clone()),
        ];
        if let Some(s) = &self.session_id {
            h.push(("mcp-session-id", s.clone()));
        }
        h
    }
}

fn client_info() -> Value {
    json!({"name": "mcp-pin", "version": env!("CARGO_PKG_VERSION")})
}

/// `serverInfo` of an `initialize` or `server/discover` result (2026-07-28 servers may carry it
/// in the result's `_meta` instead).
fn server_name(result: &Value) -> Option<String> {
    let info = result.get("serverInfo").or_else(|| {
        result
            .get("_meta")?
            .get("io.modelcontextprotocol/serverInfo")
    })?;
    let name = info.get("name")?.as_str()?;
    Some(match info.get("version").and_then(Value::as_str) {
        Some(v) => format!("{name} {v}"),
        None => name.to_owned(),
    })
}

/// The `result` of the response to request `id`, or an error naming what came back instead.
fn response_result(method: &str, id: u64, reply: &Reply) -> Result<Value, ClientError> {
    let msg = find_response(id, reply).map_err(|e| ClientError(format!("{method}: {e}")))?;
    let v: Value = serde_json::from_slice(msg)
        .map_err(|e| ClientError(format!("{method}: the response is not JSON: {e}")))?;
    if let Some(e) = v.get("error") {
        return err(format!(
            "{method}: HTTP {}, JSON-RPC error {e}",
            reply.status
        ));
    }
    match v.get("result") {
        Some(r) if r.is_object() => Ok(r.clone()),
        _ => err(format!("{method}: the response has no result object")),
    }
}

/// The JSON text of the response to request `id` among the reply's messages.
fn find_response(id: u64, reply: &Reply) -> Result<&[u8], String> {
    if let Some(m) = reply.messages.iter().rev().find(|m| is_response_to(m, id)) {
        return Ok(m);
    }
    let what = if reply.messages.is_empty() {
        format!(
            "HTTP {} ({}) without a JSON-RPC response: not an MCP endpoint?",
            reply.status,
            if reply.content_type.is_empty() {
                "no content-type"
            } else {
                reply.content_type.as_str()
            }
        )
    } else {
        format!(
            "HTTP {}: no JSON-RPC response to request {id} among {} message(s)",
            reply.status,
            reply.messages.len()
        )
    };
    Err(what)
}

/// Appends the tools of one `tools/list` response; returns its `nextCursor`.
fn page_tools(
    id: u64,
    reply: &Reply,
    out: &mut Vec<ListedTool>,
) -> Result<Option<String>, ClientError> {
    let msg = find_response(id, reply).map_err(|e| ClientError(format!("tools/list: {e}")))?;
    let root = json::validate(
        msg,
        &Limits {
            max_depth: MAX_DEPTH,
        },
    )
    .map_err(|e| ClientError(format!("tools/list: the response is not strict JSON: {e}")))?;
    if let Some(e) = root.get("error") {
        return err(format!(
            "tools/list: HTTP {}, JSON-RPC error {}",
            reply.status,
            String::from_utf8_lossy(e.raw())
        ));
    }
    let Some(result) = root.get("result").filter(|r| r.kind() == Kind::Object) else {
        return err("tools/list: the response has no result object");
    };
    let Some(tools) = result.get("tools").filter(|t| t.kind() == Kind::Array) else {
        return err("tools/list: the result has no tools array");
    };
    for t in tools.elements() {
        let name = t
            .get("name")
            .and_then(|n| n.as_str())
            .map(|n| n.into_owned());
        let Some(name) = name else {
            return err(format!(
                "tools/list: a listed tool has no string name: {}",
                String::from_utf8_lossy(t.raw())
            ));
        };
        out.push(ListedTool {
            name,
            raw: t.raw().to_vec(),
        });
    }
    Ok(result
        .get("nextCursor")
        .and_then(|c| c.as_str())
        .map(|c| c.into_owned())
        .filter(|c| !c.is_empty()))
}

/// Reads a response: a JSON body whole, an SSE body event by event until the response to
/// `want_id` arrived (a server may keep the stream open after it).
fn read_reply(resp: ureq::Response, want_id: Option<u64>) -> Result<Reply, ClientError> {
    let status = resp.status();
    let session_id = resp.header("mcp-session-id").map(str::to_owned);
    let content_type = resp
        .header("content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut reader = resp.into_reader().take(MAX_BODY_BYTES as u64 + 1);
    let messages = if content_type.starts_with("text/event-stream") {
        let mut sse = SseReader::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| ClientError(format!("reading the event stream: {e}")))?;
            let chunk = buf.get(..n).unwrap_or_default();
            sse.push(chunk, n == 0)
                .map_err(|e| ClientError(format!("reading the event stream: {e}")))?;
            if n == 0 || want_id.is_some_and(|id| sse.has_response(id)) {
                break;
            }
        }
        sse.messages
    } else {
        let mut body = Vec::new();
        reader
            .read_to_end(&mut body)
            .map_err(|e| ClientError(format!("reading the response: {e}")))?;
        if body.len() > MAX_BODY_BYTES {
            return err(format!(
                "the response is larger than {MAX_BODY_BYTES} bytes"
            ));
        }
        if content_type.starts_with("application/json") {
            json_messages(&body)
        } else {
            Vec::new()
        }
    };
    Ok(Reply {
        status,
        session_id,
        content_type,
        messages,
    })
}

/// The messages of an `application/json` body: the value, or the elements of an array.
pub fn json_messages(body: &[u8]) -> Vec<Vec<u8>> {
    let limits = Limits {
        max_depth: MAX_DEPTH,
    };
    match json::validate(body, &limits) {
        Ok(v) if v.kind() == Kind::Array => v.elements().map(|e| e.raw().to_vec()).collect(),
        Ok(v) => vec![v.raw().to_vec()],
        Err(_) => Vec::new(),
    }
}

/// The JSON-RPC messages of an SSE body, read incrementally with the filter's SSE parser.
#[derive(Debug)]
pub struct SseReader {
    stream: SseStream,
    /// The `data` of every event that has one (empty data skipped), in order.
    pub messages: Vec<Vec<u8>>,
}

impl Default for SseReader {
    fn default() -> Self {
        Self::new()
    }
}

impl SseReader {
    /// A reader for one stream.
    pub fn new() -> Self {
        SseReader {
            stream: SseStream::new(MAX_BODY_BYTES),
            messages: Vec::new(),
        }
    }

    /// Feeds a chunk (`eos` at the end of the body).
    pub fn push(&mut self, chunk: &[u8], eos: bool) -> Result<(), mcp_core::sse::SseError> {
        let messages = &mut self.messages;
        self.stream.push(chunk, eos, |ev| {
            if let Some(d) = &ev.data {
                if !d.trim().is_empty() {
                    messages.extend(json_messages(d.as_bytes()));
                }
            }
            EventAction::Keep
        })?;
        Ok(())
    }

    /// Whether the response to request `id` has arrived.
    pub fn has_response(&self, id: u64) -> bool {
        self.messages.iter().any(|m| is_response_to(m, id))
    }
}

/// Whether the JSON text `m` is the response (`result` or `error`) to request `id`.
fn is_response_to(m: &[u8], id: u64) -> bool {
    json::validate(
        m,
        &Limits {
            max_depth: MAX_DEPTH,
        },
    )
    .is_ok_and(|v| {
        v.get("id").and_then(|i| i.as_i64()) == i64::try_from(id).ok()
            && (v.get("result").is_some() || v.get("error").is_some())
    })
}

/// A rustls client configuration trusting only the CA certificates of the PEM file `path`.
fn tls_config(path: &std::path::Path) -> Result<rustls::ClientConfig, ClientError> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::CertificateDer;
    let shown = path.display();
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| ClientError(format!("--cacert {shown}: {e}")))?;
    for cert in certs {
        let cert = cert.map_err(|e| ClientError(format!("--cacert {shown}: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| ClientError(format!("--cacert {shown}: {e}")))?;
    }
    if roots.is_empty() {
        return err(format!("--cacert {shown}: no PEM certificate in the file"));
    }
    // The provider ureq's own TLS configuration uses (rustls with ring, no aws-lc build); rustls
    // 0.23.48 deprecates it for lacking post-quantum key exchange, as ureq 2 still relies on.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

#[cfg(test)]
mod tests;
