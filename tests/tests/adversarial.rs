//! Adversarial suite (issue 14): requests and upstream responses crafted so that the gateway
//! might decide on a different view of a message than the MCP server or the client: odd HTTP
//! methods, repeated singleton headers, encoded or mislabelled responses, duplicate keys, ids
//! spelled differently, PII in object keys, odd scope separators, future `iat`, mixed card
//! separators, and more of the same spirit (escapes, BOMs, SSE framing tricks, chunked bodies,
//! pipelining, HTTP/2).
//!
//! Every case runs through the real Envoy in front of the in-repo test MCP server, whose
//! `x-test-raw` canned replies make the upstream misbehave byte for byte. Each case proves from
//! the server's record that nothing forbidden arrived upstream (no `tools/call` of a hidden
//! tool, no PII value in any recorded body or header, decoded and decompressed), and from the
//! bytes the client received (decompressed when needed) that nothing forbidden came back. After
//! every case an allowed call must still succeed and no wasm VM may have failed or restarted
//! (`wasm.*` VM stats unchanged, no trap in Envoy's log).
//!
//! "No VM restart" is read from `/stats`: `wasm.envoy.wasm.runtime.v8.created` / `.active`,
//! `wasm.wasm_vm_count` and `wasm.<vm_id>.vm_reload{,_success,_failure,_backoff}` must not
//! change, and Envoy's log must show no trap (`Uncaught`, `panicked at`).
//!
//! Cases are tables of named [`Case`]s; one `#[test]` per Envoy configuration runs its whole
//! table and reports every failing case by name (`[class] name: LEAK: ... | shape ...`), so
//! Envoy starts a handful of times, not once per case:
//!
//! | test | Envoy | classes |
//! |---|---|---|
//! | `adversarial_gateway_module` | `envoy/mcp-gateway.yaml` (the `mcp_gateway` module) | the chain table: methods, repeated-headers, encoded, failure-mode (closed), dup-keys, ids, get-stream, keys, cards, attacker |
//! | `adversarial_four_filters` | `envoy/mcp-four-filters.yaml` | the same chain table |
//! | `adversarial_failure_mode_open` | four filters, telemetry and pii `open` | failure-mode |
//! | `adversarial_scopes` | `envoy/mcp_scopes.yaml`, ES256 JWKS, `hide_unauthorized_tools` | scopes |
//! | `adversarial_tools_batches_and_prompts` | `envoy/mcp_tools.yaml`, `batch: each`, prompts, upstream trailers | ids (batches, lists anywhere), repeated-headers |
//! | `adversarial_pii_responses_with_trailers` | `envoy/mcp_pii.yaml`, upstream trailers | trailers |
//! | `adversarial_failure_mode_open_is_refused_for_policy_filters` | `envoy --mode validate` only | failure-mode (config) |
//!
//! `make integration` runs it twice, the second time with `MCP_UNDER_TEST=module` (each
//! standalone filter as a module chain of one).
// Test helpers outside #[test] fns are not covered by clippy.toml's in-test allowances.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use flate2::read::{GzDecoder, ZlibDecoder};
use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;
use jwt_simple::prelude::*;
use mcp_integration::client;
use mcp_integration::scopes_support::{config as scopes_config, jwks_of, Extra, ISSUER, RESOURCE};
use mcp_integration::server::{RawReply, Recorded};
use mcp_integration::{validate_config, Envoy, EnvoyConfig, ServerOptions, TestServer};
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration as StdDuration, Instant};

// ------------------------------------------------------------------------------------------
// Fixtures
// ------------------------------------------------------------------------------------------

/// Hidden by the shipped `mcp_tools` deny list (`admin_*`).
const HIDDEN: &str = "admin_reset";
/// What the test server answers when `admin_reset` actually runs.
const HIDDEN_RAN: &str = "Administrative state reset";
const EMAIL: &str = "alice@example.com";
const EMAIL2: &str = "bob@example.com";
const SSN: &str = "219-09-9999";
const MODERN: &str = "2026-07-28";

/// A tools/list page holding one visible and one hidden tool.
const LIST_TOOLS: &str = r#"[{"name":"echo","description":"Echoes text.","inputSchema":{"type":"object"}},{"name":"admin_reset","description":"Reset all administrative state of the server.","inputSchema":{"type":"object"}}]"#;

fn list_msg(id: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"tools":{LIST_TOOLS}}}}}"#)
}

/// A tools/call result whose text is `text` (JSON string contents, already escaped).
fn result_msg(id: &str, text: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"{text}"}}]}}}}"#
    )
}

/// A tools/call result with the given raw `result` object text.
fn result_raw(id: &str, result: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#)
}

fn call_body(id: &str, name_json: &str, args: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":{name_json},"arguments":{args}}}}}"#
    )
}

fn echo_call(id: &str) -> String {
    call_body(id, r#""echo""#, r#"{"text":"hi"}"#)
}

fn hidden_call(id: &str) -> String {
    call_body(id, r#""admin_reset""#, "{}")
}

/// A 2026-07-28 tools/call body (the `_meta` keys a stateless client sends).
fn modern_call(name_json: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":{name_json},"arguments":{{}},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
    )
}

fn list_body(id: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#)
}

fn sse_bytes(events: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        out.extend_from_slice(format!("event: message\ndata: {e}\n\n").as_bytes());
    }
    out
}

fn json_reply(body: impl Into<Vec<u8>>) -> RawReply {
    RawReply::new("application/json", body)
}

fn sse_reply(events: &[String]) -> RawReply {
    RawReply::new("text/event-stream", sse_bytes(events))
}

/// A 200 without any header.
fn bare(body: impl Into<Vec<u8>>) -> RawReply {
    RawReply {
        headers: Vec::new(),
        ..RawReply::new("", body)
    }
}

/// `r` with its body gzipped and `content-encoding: gzip`.
fn gz(mut r: RawReply) -> RawReply {
    r.chunks = vec![gzip(&r.chunks.concat())];
    r.header("content-encoding", "gzip")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn utf16be(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

fn with_bom(s: &str) -> Vec<u8> {
    [BOM, s.as_bytes()].concat()
}

/// A list whose hidden tool sits next to a field nested 100 deep (over `max_json_depth` 64;
/// JSON.parse and Python read it fine).
fn deep_list() -> String {
    let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    list_msg("1").replace(
        r#""name":"admin_reset","#,
        &format!(r#""name":"admin_reset","x-deep":{deep},"#),
    )
}

/// A list of about 1.3 MB (over the default `max_body_bytes`) that holds the hidden tool.
fn huge_list() -> String {
    let filler: Vec<String> = (0..6000)
        .map(|i| {
            format!(
                r#"{{"name":"tool_{i:05}","description":"{}","inputSchema":{{"type":"object"}}}}"#,
                pad(160)
            )
        })
        .collect();
    list_msg("1").replace(
        "[{\"name\":\"echo\"",
        &format!("[{},{{\"name\":\"echo\"", filler.join(",")),
    )
}

fn pad(n: usize) -> String {
    "x".repeat(n)
}

// ------------------------------------------------------------------------------------------
// Requests: raw HTTP/1.1 (or h2c through curl) so every byte is ours
// ------------------------------------------------------------------------------------------

/// A chunked body: its pieces and its trailers.
type Chunked = (Vec<Vec<u8>>, Vec<(String, String)>);

#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    /// Chunked body pieces and trailers (instead of `body`).
    chunked: Option<Chunked>,
    /// Send `connection: close` (else the read ends at `timeout`).
    close: bool,
    /// Raw bytes written after the request on the same connection (pipelining, smuggling).
    suffix: Vec<u8>,
    /// Stop reading once the response contains this (endless streams).
    stop_at: Option<&'static str>,
    /// Send the headers, wait for `100 Continue`, then the body.
    expect_continue: bool,
    /// Send with curl over h2c (prior knowledge) instead.
    h2: bool,
    timeout: StdDuration,
}

fn req(method: &str, body: Option<Vec<u8>>) -> Req {
    Req {
        method: method.to_string(),
        path: "/mcp".to_string(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("accept".into(), client::ACCEPT_BOTH.into()),
        ],
        body,
        chunked: None,
        close: true,
        suffix: Vec::new(),
        stop_at: None,
        expect_continue: false,
        h2: false,
        timeout: StdDuration::from_secs(5),
    }
}

fn post(body: impl Into<Vec<u8>>) -> Req {
    req("POST", Some(body.into()))
}

/// A 2026-07-28 POST with the mirrored headers.
fn modern_post(body: impl Into<Vec<u8>>, method: &str, name: Option<&str>) -> Req {
    let mut r = post(body)
        .h("mcp-protocol-version", MODERN)
        .h("mcp-method", method);
    if let Some(n) = name {
        r = r.h("mcp-name", n);
    }
    r
}

impl Req {
    fn h(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    fn without(mut self, k: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
        self
    }

    fn path(mut self, p: &str) -> Self {
        self.path = p.to_string();
        self
    }

    fn chunks(mut self, pieces: Vec<Vec<u8>>, trailers: &[(&str, &str)]) -> Self {
        self.body = None;
        self.chunked = Some((
            pieces,
            trailers
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        ));
        self
    }

    fn keep_alive(mut self, timeout: StdDuration) -> Self {
        self.close = false;
        self.timeout = timeout;
        self
    }

    fn suffix(mut self, bytes: &[u8]) -> Self {
        self.suffix = bytes.to_vec();
        self
    }

    fn stop_at(mut self, s: &'static str) -> Self {
        self.stop_at = Some(s);
        self
    }

    fn expect_continue(mut self) -> Self {
        self.expect_continue = true;
        self.h("expect", "100-continue")
    }

    fn h2(mut self) -> Self {
        self.h2 = true;
        self
    }

    /// The request head (through the blank line).
    fn head(&self, extra: &[(String, String)]) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.1\r\nhost: gateway.test\r\n",
            self.method, self.path
        );
        for (k, v) in self.headers.iter().chain(extra) {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = &self.body {
            out.push_str(&format!("content-length: {}\r\n", b.len()));
        }
        if self.chunked.is_some() {
            out.push_str("transfer-encoding: chunked\r\n");
        }
        if self.close {
            out.push_str("connection: close\r\n");
        }
        out.push_str("\r\n");
        out.into_bytes()
    }

    /// The body as written on the wire (chunk framing included).
    fn wire_body(&self) -> Vec<Vec<u8>> {
        if let Some((pieces, trailers)) = &self.chunked {
            let mut out: Vec<Vec<u8>> = pieces
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| [format!("{:x}\r\n", p.len()).as_bytes(), p, b"\r\n"].concat())
                .collect();
            let mut last = b"0\r\n".to_vec();
            for (k, v) in trailers {
                last.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
            }
            last.extend_from_slice(b"\r\n");
            out.push(last);
            return out;
        }
        self.body.iter().cloned().collect()
    }
}

/// A response as the client got it.
#[derive(Debug, Clone, Default)]
struct Http {
    status: u16,
    headers: Vec<(String, String)>,
    /// Body with the HTTP framing (chunks) removed, still content-encoded.
    body: Vec<u8>,
}

impl Http {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The chunked body in `data` and whether its last chunk arrived.
fn dechunk(mut data: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = find(data, b"\r\n") else {
            return (out, false);
        };
        let line = String::from_utf8_lossy(&data[..eol]).into_owned();
        let size =
            usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        data = &data[eol + 2..];
        if size == 0 {
            // Trailers, then the blank line.
            let done = data.starts_with(b"\r\n") || find(data, b"\r\n\r\n").is_some();
            return (out, done);
        }
        let take = size.min(data.len());
        out.extend_from_slice(&data[..take]);
        if take < size {
            return (out, false);
        }
        data = data.get(size + 2..).unwrap_or_default();
    }
}

/// Parses the first final response of a raw HTTP/1.1 byte stream (1xx skipped).
fn parse_response(buf: &[u8]) -> Result<Http, String> {
    parse_framed(buf, false).map(|(h, _)| h)
}

/// [`parse_response`], and whether that response is complete (`head_only`: a HEAD's answer).
fn parse_framed(buf: &[u8], head_only: bool) -> Result<(Http, bool), String> {
    let mut rest = buf;
    loop {
        let end = find(rest, b"\r\n\r\n").ok_or_else(|| {
            format!(
                "no complete response head in {:?}",
                String::from_utf8_lossy(&buf[..buf.len().min(300)])
            )
        })?;
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        let after = &rest[end + 4..];
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line in {head:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        if (100..200).contains(&status) {
            rest = after;
            continue;
        }
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.to_ascii_lowercase())
        };
        let (body, complete) = if head_only || status == 204 || status == 304 {
            (Vec::new(), true)
        } else if get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
            dechunk(after)
        } else if let Some(cl) = get("content-length").and_then(|c| c.parse::<usize>().ok()) {
            (after[..cl.min(after.len())].to_vec(), after.len() >= cl)
        } else {
            // Delimited by the end of the connection.
            (after.to_vec(), false)
        };
        return Ok((
            Http {
                status,
                headers,
                body,
            },
            complete,
        ));
    }
}

fn send_raw(addr: SocketAddr, r: &Req, extra: &[(String, String)]) -> Result<Http, String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).ok();
    let mut reader = stream.try_clone().map_err(|e| e.to_string())?;
    let head = r.head(extra);
    let body = r.wire_body();
    let suffix = r.suffix.clone();
    let expect_continue = r.expect_continue;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    // Write from another thread: a filter may answer before the body is fully sent.
    let mut w = stream;
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&head);
        if expect_continue {
            let _ = rx.recv_timeout(StdDuration::from_secs(2));
        }
        for (i, piece) in body.iter().enumerate() {
            if i > 0 {
                std::thread::sleep(StdDuration::from_millis(15));
            }
            if w.write_all(piece).is_err() {
                return;
            }
        }
        let _ = w.write_all(&suffix);
    });
    let deadline = Instant::now() + r.timeout;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut continued = false;
    reader
        .set_read_timeout(Some(StdDuration::from_millis(100)))
        .ok();
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        if expect_continue && !continued && find(&buf, b" 100 ").is_some() {
            continued = true;
            let _ = tx.send(());
        }
        if r.stop_at
            .is_some_and(|s| find(&buf, s.as_bytes()).is_some())
        {
            break;
        }
        // A complete response ends the exchange (Envoy would otherwise hold the connection
        // for its delayed-close timeout); pipelined exchanges read until the timeout.
        if r.close && parse_framed(&buf, r.method == "HEAD").is_ok_and(|(_, done)| done) {
            break;
        }
        if Instant::now() >= deadline {
            // An endless stream (or a stalled one): judge what arrived.
            break;
        }
    }
    drop(tx);
    let _ = reader.shutdown(std::net::Shutdown::Both);
    let _ = writer.join();
    parse_response(&buf)
}

fn send_h2(addr: SocketAddr, r: &Req, extra: &[(String, String)]) -> Result<Http, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let head = dir.path().join("head");
    let out = dir.path().join("body");
    let data = dir.path().join("data");
    std::fs::write(&data, r.body.clone().unwrap_or_default()).map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "--max-time", "15", "--http2-prior-knowledge", "-X"])
        .arg(&r.method)
        .arg("-D")
        .arg(&head)
        .arg("-o")
        .arg(&out);
    for (k, v) in r.headers.iter().chain(extra) {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    if r.body.is_some() {
        cmd.arg("--data-binary").arg(format!("@{}", data.display()));
    }
    let o = cmd
        .arg(format!("http://{addr}{}", r.path))
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "curl failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    let text = std::fs::read_to_string(&head).map_err(|e| e.to_string())?;
    let block = text
        .split("\r\n\r\n")
        .filter(|b| !b.trim().is_empty())
        .last()
        .unwrap_or_default()
        .to_string();
    let mut lines = block.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {text:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Http {
        status,
        headers,
        body: std::fs::read(&out).unwrap_or_default(),
    })
}

// ------------------------------------------------------------------------------------------
// Views: what a peer would read out of some bytes
// ------------------------------------------------------------------------------------------

/// Undoes JSON string escapes (`\uXXXX` with surrogate pairs, `\/`, `\n`, ...) everywhere in
/// `s`, so a value spelled with escapes is found by a plain substring search.
fn unescape(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let hex = |from: usize| -> Option<u32> {
        let h: String = chars.get(from..from + 4)?.iter().collect();
        u32::from_str_radix(&h, 16).ok()
    };
    while i < chars.len() {
        let c = chars[i];
        if c != '\\' || i + 1 >= chars.len() {
            out.push(c);
            i += 1;
            continue;
        }
        match chars[i + 1] {
            'u' => match hex(i + 2) {
                Some(hi @ 0xD800..=0xDBFF)
                    if chars.get(i + 6) == Some(&'\\') && chars.get(i + 7) == Some(&'u') =>
                {
                    let lo = hex(i + 8).unwrap_or(0);
                    let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF);
                    out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                    i += 12;
                }
                Some(cp) => {
                    out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                    i += 6;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            },
            '/' => {
                out.push('/');
                i += 2;
            }
            'n' => {
                out.push('\n');
                i += 2;
            }
            't' => {
                out.push('\t');
                i += 2;
            }
            'r' => {
                out.push('\r');
                i += 2;
            }
            '"' => {
                out.push('"');
                i += 2;
            }
            '\\' => {
                out.push('\\');
                i += 2;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Every readable rendering of `bytes`: as they are, decompressed (gzip / zlib / raw deflate,
/// by header or by magic bytes), and each of those with JSON escapes undone.
fn renderings(bytes: &[u8], content_encoding: Option<&str>) -> Vec<Vec<u8>> {
    let mut out = vec![bytes.to_vec()];
    let ce = content_encoding.unwrap_or("").to_ascii_lowercase();
    let try_gzip = ce.contains("gzip") || bytes.starts_with(&[0x1f, 0x8b]);
    let try_zlib = ce.contains("deflate") || bytes.first() == Some(&0x78);
    if try_gzip {
        let mut d = Vec::new();
        if GzDecoder::new(bytes).read_to_end(&mut d).is_ok() {
            out.push(d);
        }
    }
    if try_zlib {
        let mut d = Vec::new();
        if ZlibDecoder::new(bytes).read_to_end(&mut d).is_ok() {
            out.push(d);
        } else {
            let mut d = Vec::new();
            if flate2::read::DeflateDecoder::new(bytes)
                .read_to_end(&mut d)
                .is_ok()
            {
                out.push(d);
            }
        }
    }
    let unescaped: Vec<Vec<u8>> = out
        .iter()
        .map(|b| unescape(&String::from_utf8_lossy(b)).into_bytes())
        .collect();
    out.extend(unescaped);
    out
}

/// Whether `secret` can be read out of `bytes` (raw, escaped, compressed, UTF-16).
fn leaks(bytes: &[u8], content_encoding: Option<&str>, secret: &str) -> bool {
    renderings(bytes, content_encoding).iter().any(|r| {
        find(r, secret.as_bytes()).is_some()
            || find(r, &utf16le(secret)).is_some()
            || find(r, &utf16be(secret)).is_some()
    })
}

/// The decoded body a client reads (gzip/deflate undone when announced or sniffed).
fn client_body(h: &Http) -> Vec<u8> {
    let ce = h
        .header("content-encoding")
        .unwrap_or("")
        .to_ascii_lowercase();
    let gz = ce.contains("gzip") || h.body.starts_with(&[0x1f, 0x8b]);
    if gz {
        let mut d = Vec::new();
        if GzDecoder::new(&h.body[..]).read_to_end(&mut d).is_ok() {
            return d;
        }
    }
    if ce.contains("deflate") {
        let mut d = Vec::new();
        if ZlibDecoder::new(&h.body[..]).read_to_end(&mut d).is_ok() {
            return d;
        }
    }
    h.body.clone()
}

/// A JSON value that refuses duplicate object keys (serde_json silently keeps the last).
struct Strict;

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Strict, A::Error> {
        while a.next_element::<Strict>()?.is_some() {}
        Ok(Strict)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Strict, A::Error> {
        let mut seen = HashSet::new();
        while let Some(k) = a.next_key::<String>()? {
            if !seen.insert(k.clone()) {
                return Err(A::Error::custom(format!("duplicate key {k:?}")));
            }
            a.next_value::<Strict>()?;
        }
        Ok(Strict)
    }
}

fn strict_json(text: &str) -> Result<(), String> {
    serde_json::from_str::<Strict>(text)
        .map(|_| ())
        .map_err(|e| format!("{e} in {text}"))
}

// ------------------------------------------------------------------------------------------
// Cases
// ------------------------------------------------------------------------------------------

/// What the client must get.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// This HTTP status.
    Status(u16),
    /// This HTTP status and a JSON-RPC error with this code.
    Rpc(u16, i64),
    /// A JSON-RPC error with this code, whatever the HTTP status.
    Code(i64),
    /// 200 and a JSON-RPC result.
    Result,
    /// Not a success: a non-2xx status, or a JSON-RPC error (or no message at all).
    Refused,
    /// Only the leak checks.
    Any,
}

type Check = fn(&Outcome) -> Result<(), String>;

struct Case {
    class: &'static str,
    name: &'static str,
    req: Req,
    reply: Option<RawReply>,
    expect: Expect,
    /// Must not be readable in anything the upstream received (bodies, headers).
    never_upstream: Vec<String>,
    /// Must not be readable in what the client received (headers, body).
    never_client: Vec<String>,
    check: Option<Check>,
}

fn case(class: &'static str, name: &'static str, req: Req, expect: Expect) -> Case {
    Case {
        class,
        name,
        req,
        reply: None,
        expect,
        never_upstream: Vec::new(),
        never_client: Vec::new(),
        check: None,
    }
}

impl Case {
    fn reply(mut self, r: RawReply) -> Self {
        self.reply = Some(r);
        self
    }
    fn up(mut self, s: &[&str]) -> Self {
        self.never_upstream
            .extend(s.iter().map(|x| (*x).to_string()));
        self
    }
    fn down(mut self, s: &[&str]) -> Self {
        self.never_client.extend(s.iter().map(|x| (*x).to_string()));
        self
    }
    fn check(mut self, f: Check) -> Self {
        self.check = Some(f);
        self
    }
}

/// What happened in one case.
struct Outcome<'a> {
    resp: &'a Http,
    /// The body the client reads (decompressed).
    body: Vec<u8>,
    rec: &'a [Recorded],
    before: &'a BTreeMap<String, u64>,
    after: &'a BTreeMap<String, u64>,
}

impl Outcome<'_> {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The JSON-RPC messages the client reads (SSE or JSON by content type; empty when none).
    fn messages(&self) -> Vec<Value> {
        let ct = self.resp.header("content-type");
        let body = self.body.strip_prefix(BOM).unwrap_or(&self.body);
        client::parse_messages(ct, body).unwrap_or_default()
    }

    fn error(&self) -> Option<Value> {
        self.messages()
            .into_iter()
            .find(|m| m.get("error").is_some())
    }

    /// Whether some `wasmcustom.<filter>.<suffix>` counter grew during the case (the gate's
    /// counters are named after whichever filter or module refused).
    fn grew(&self, suffix: &str) -> Result<(), String> {
        let dotted = format!(".{suffix}");
        let grown = self
            .after
            .keys()
            .any(|k| k.starts_with("wasmcustom.") && k.ends_with(&dotted) && self.delta(k) > 0);
        if grown {
            Ok(())
        } else {
            Err(format!("no wasmcustom.*.{suffix} counter grew"))
        }
    }

    /// How much a `/stats` value grew during the case.
    fn delta(&self, name: &str) -> u64 {
        let a = self.after.get(name).copied().unwrap_or(0);
        let b = self.before.get(name).copied().unwrap_or(0);
        a.saturating_sub(b)
    }
}

/// The client got the reply the case expects (status, JSON-RPC error code, ...).
fn expectation(c: &Case, o: &Outcome) -> Result<(), String> {
    let status = o.resp.status;
    let summary = || {
        format!(
            "HTTP {status} {}",
            o.text().chars().take(400).collect::<String>()
        )
    };
    match c.expect {
        Expect::Status(s) if status != s => {
            return Err(format!("expected HTTP {s}, got {}", summary()))
        }
        Expect::Rpc(s, code) => {
            if status != s {
                return Err(format!("expected HTTP {s} with {code}, got {}", summary()));
            }
            let e = o
                .error()
                .ok_or_else(|| format!("no JSON-RPC error: {}", summary()))?;
            if e["error"]["code"] != code {
                return Err(format!("expected error {code}, got {}", summary()));
            }
        }
        Expect::Code(code) => {
            let e = o
                .error()
                .ok_or_else(|| format!("no JSON-RPC error: {}", summary()))?;
            if e["error"]["code"] != code {
                return Err(format!("expected error {code}, got {}", summary()));
            }
        }
        Expect::Result => {
            let ok = status == 200 && o.messages().iter().any(|m| m.get("result").is_some());
            if !ok {
                return Err(format!("expected a result, got {}", summary()));
            }
        }
        Expect::Refused => {
            let success = (200..300).contains(&status)
                && o.error().is_none()
                && o.messages().iter().any(|m| m.get("result").is_some());
            if success {
                return Err(format!("expected a refusal, got {}", summary()));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Nothing forbidden reached the upstream or came back to the client.
fn leak_checks(c: &Case, o: &Outcome) -> Result<(), String> {
    let summary = || {
        format!(
            "HTTP {} {}",
            o.resp.status,
            o.text().chars().take(400).collect::<String>()
        )
    };
    // Upstream: no hidden tool ran, nothing forbidden arrived.
    for r in o.rec {
        for m in &r.messages {
            if m.method.as_deref() == Some("tools/call")
                && m.name.as_deref().is_some_and(|n| n.starts_with("admin_"))
            {
                return Err(format!(
                    "the upstream received tools/call {:?} ({} {})",
                    m.name, r.method, r.path
                ));
            }
        }
        for s in &c.never_upstream {
            let ce = r.header("content-encoding");
            if leaks(&r.body, ce, s) {
                return Err(format!(
                    "{s:?} reached the upstream in a body: {} {} {}",
                    r.method,
                    r.path,
                    r.body_text().chars().take(300).collect::<String>()
                ));
            }
            for (k, v) in &r.headers {
                let decoded = mcp_integration::server::decode_header_value(v).unwrap_or_default();
                if v.contains(s.as_str()) || decoded.contains(s.as_str()) {
                    return Err(format!("{s:?} reached the upstream in header {k}: {v}"));
                }
            }
        }
    }
    // Client: nothing forbidden came back.
    for s in &c.never_client {
        if leaks(&o.resp.body, o.resp.header("content-encoding"), s) {
            return Err(format!("{s:?} reached the client: {}", summary()));
        }
        for (k, v) in &o.resp.headers {
            if v.contains(s.as_str()) {
                return Err(format!("{s:?} reached the client in header {k}: {v}"));
            }
        }
    }
    Ok(())
}

/// Every way the case went wrong: leaks first (marked `LEAK`), then the reply's shape, then
/// the case's own check.
fn judge(c: &Case, o: &Outcome) -> Result<(), String> {
    let mut errors = Vec::new();
    if let Err(e) = leak_checks(c, o) {
        errors.push(format!("LEAK: {e}"));
    }
    if let Err(e) = expectation(c, o) {
        errors.push(e);
    }
    if let Some(Err(e)) = c.check.map(|f| f(o)) {
        if !errors.contains(&e) {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join(" | "))
    }
}

// ------------------------------------------------------------------------------------------
// The harness around a table
// ------------------------------------------------------------------------------------------

struct Gateway {
    envoy: Envoy,
    server: TestServer,
    /// Headers of the allowed call made after each case (e.g. a bearer token).
    allowed_headers: Vec<(String, String)>,
}

fn stats(e: &Envoy) -> BTreeMap<String, u64> {
    e.admin("/stats?filter=%5Ewasm")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(": ")?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// The wasm VM stats that change when a VM fails, is reloaded or is created anew.
fn vm_stats(all: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    all.iter()
        .filter(|(k, _)| {
            k.starts_with("wasm.")
                && (k.starts_with("wasm.envoy.wasm.runtime")
                    || k.contains("vm_reload")
                    || k.ends_with("wasm_vm_count"))
        })
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

const TRAPS: [&str; 3] = ["Uncaught", "panicked at", "wasm vm failed"];

impl Gateway {
    fn run_one(&self, c: &Case) -> Result<(), String> {
        self.server.clear_record();
        let mut extra = Vec::new();
        if let Some(r) = &c.reply {
            self.server.set_raw(c.name, r.clone());
            extra.push(("x-test-raw".into(), c.name.into()));
        }
        let before = stats(&self.envoy);
        let resp = if c.req.h2 {
            send_h2(self.envoy.addr(), &c.req, &extra)?
        } else {
            send_raw(self.envoy.addr(), &c.req, &extra)?
        };
        // Let anything still in flight (pipelined or smuggled requests) land in the record.
        std::thread::sleep(StdDuration::from_millis(30));
        let rec = self.server.record();
        let after = stats(&self.envoy);
        let o = Outcome {
            body: client_body(&resp),
            resp: &resp,
            rec: &rec,
            before: &before,
            after: &after,
        };
        judge(c, &o)
    }

    /// An allowed call still works.
    fn allowed_call(&self) -> Result<(), String> {
        let r = post(call_body(
            "424242",
            r#""echo""#,
            r#"{"text":"still-serving"}"#,
        ));
        let resp = send_raw(self.envoy.addr(), &r, &self.allowed_headers)?;
        let body = client_body(&resp);
        if resp.status != 200 || find(&body, b"still-serving").is_none() {
            return Err(format!(
                "an allowed echo call then failed: HTTP {} {}",
                resp.status,
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(())
    }

    /// Runs every case; afterwards an allowed call must work and the VMs must be the same ones.
    fn run(&self, group: &str, cases: Vec<Case>) {
        let started = Instant::now();
        let mut names = HashSet::new();
        for c in &cases {
            assert!(names.insert(c.name), "case name {} used twice", c.name);
        }
        let vm0 = vm_stats(&stats(&self.envoy));
        assert!(!vm0.is_empty(), "no wasm VM stats in /stats");
        let mut failures = Vec::new();
        let mut by_class: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for c in &cases {
            let t0 = Instant::now();
            let mut result = self.run_one(c);
            if result.is_ok() {
                result = self.allowed_call();
            }
            if result.is_ok() {
                let vm = vm_stats(&stats(&self.envoy));
                if vm != vm0 {
                    result = Err(format!("wasm VM stats changed: {vm0:?} -> {vm:?}"));
                }
            }
            if result.is_ok() {
                let log = self.envoy.log();
                if let Some(t) = TRAPS.iter().find(|t| log.contains(**t)) {
                    result = Err(format!("Envoy's log shows a VM trap ({t})"));
                }
            }
            let entry = by_class.entry(c.class).or_default();
            entry.0 += 1;
            match result {
                Ok(()) => eprintln!("ok   [{}] {} ({:.0?})", c.class, c.name, t0.elapsed()),
                Err(e) => {
                    entry.1 += 1;
                    eprintln!("FAIL [{}] {} ({:.0?}): {e}", c.class, c.name, t0.elapsed());
                    failures.push(format!("[{}] {}: {e}", c.class, c.name));
                }
            }
        }
        eprintln!(
            "{group}: {} cases in {:.1?}, {} failed; per class (cases, failed): {by_class:?}",
            cases.len(),
            started.elapsed(),
            failures.len()
        );
        assert!(
            failures.is_empty(),
            "{group}: {} of {} cases failed:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }
}

/// Lets the upstream cluster carry HTTP/1.1 trailers (`enable_trailers`), so responses can end
/// in trailers.
fn enable_upstream_trailers(cfg: EnvoyConfig) -> EnvoyConfig {
    cfg.modify(|doc| {
        let opts: serde_yaml::Value = serde_yaml::from_str(
            r#"
envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
  "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
  explicit_http_config:
    http_protocol_options: {enable_trailers: true}
"#,
        )
        .unwrap();
        for c in doc["static_resources"]["clusters"]
            .as_sequence_mut()
            .unwrap()
            .iter_mut()
        {
            if c["name"] == "mcp_upstream" {
                c["typed_extension_protocol_options"] = opts.clone();
            }
        }
    })
}

fn test_server() -> TestServer {
    TestServer::start(ServerOptions::json().require_session(false)).unwrap()
}

/// A shipped full-chain config (both upstream clusters on the test server), with plugin
/// configurations replaced as given.
fn gateway(file: &str, plugins: &[(&str, &str)]) -> Gateway {
    let server = test_server();
    let mut cfg = EnvoyConfig::load(file)
        .unwrap()
        .upstream("mcp_upstream", server.addr())
        .upstream("mcp_deploy", server.addr());
    for (f, json) in plugins {
        cfg = cfg.plugin_config(f, json);
    }
    Gateway {
        envoy: Envoy::start(cfg).unwrap(),
        server,
        allowed_headers: Vec::new(),
    }
}

// ------------------------------------------------------------------------------------------
// Checks shared by cases
// ------------------------------------------------------------------------------------------

fn allow_405(o: &Outcome) -> Result<(), String> {
    let allow = o.resp.header("allow").unwrap_or("");
    if allow != "GET, POST, DELETE" {
        return Err(format!(
            "allow header {allow:?}, want \"GET, POST, DELETE\""
        ));
    }
    let e = o.error().ok_or("no JSON-RPC error")?;
    if !e["id"].is_null() {
        return Err(format!("id should be null: {e}"));
    }
    if !o.rec.is_empty() {
        return Err(format!("{} request(s) reached the upstream", o.rec.len()));
    }
    o.grew("method_not_allowed")
}

fn nothing_upstream(o: &Outcome) -> Result<(), String> {
    if o.rec.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} request(s) reached the upstream: {:?}",
            o.rec.len(),
            o.rec.iter().map(Recorded::body_text).collect::<Vec<_>>()
        ))
    }
}

fn id_7_nothing_upstream(o: &Outcome) -> Result<(), String> {
    let e = o.error().ok_or("no JSON-RPC error")?;
    if e["id"] != 7 {
        return Err(format!("the request's id 7 should be echoed: {e}"));
    }
    nothing_upstream(o)
}

fn id_null_nothing_upstream(o: &Outcome) -> Result<(), String> {
    let e = o.error().ok_or("no JSON-RPC error")?;
    if !e["id"].is_null() {
        return Err(format!("id should be null: {e}"));
    }
    nothing_upstream(o)
}

fn repeated_7(o: &Outcome) -> Result<(), String> {
    id_7_nothing_upstream(o)?;
    o.grew("repeated_header")
}

fn repeated_null(o: &Outcome) -> Result<(), String> {
    id_null_nothing_upstream(o)?;
    o.grew("repeated_header")
}

fn empty_post(o: &Outcome) -> Result<(), String> {
    id_null_nothing_upstream(o)?;
    o.grew("invalid_json")
}

fn unreadable_counted(o: &Outcome) -> Result<(), String> {
    let e = o.error().ok_or("no JSON-RPC error")?;
    if !e["id"].is_null() {
        return Err(format!("id should be null: {e}"));
    }
    o.grew("unreadable_response")
}

fn ambiguous_7(o: &Outcome) -> Result<(), String> {
    let msgs = o.messages();
    let m = msgs.first().ok_or("no message")?;
    let msg = m["error"]["message"].as_str().unwrap_or("");
    if m["id"] != 7
        || m["error"]["code"] != -32603
        || !msg.starts_with("Gateway refused an ambiguous response")
    {
        return Err(format!(
            "want {{id:7, error -32603 \"Gateway refused an ambiguous response: ...\"}}, got {m}"
        ));
    }
    o.grew("response.failures")
}

fn ambiguous_7_then_stream_continues(o: &Outcome) -> Result<(), String> {
    ambiguous_7(o)?;
    let msgs = o.messages();
    if msgs.len() != 2 {
        return Err(format!(
            "the stream should continue with its second event: {msgs:?}"
        ));
    }
    Ok(())
}

fn redacted(o: &Outcome) -> Result<(), String> {
    if o.text().contains("[REDACTED:") {
        Ok(())
    } else {
        Err(format!("no [REDACTED:…] in {}", o.text()))
    }
}

fn client_json_strict(o: &Outcome) -> Result<(), String> {
    let ct = o.resp.header("content-type").unwrap_or("");
    let body = o.text();
    if ct.contains("text/event-stream") {
        for e in client::parse_sse(&o.body) {
            strict_json(&e.data)?;
        }
        Ok(())
    } else {
        strict_json(&body)
    }
}

/// PII keys redacted, the object still valid, no duplicate keys, no member lost.
fn keys_redacted(o: &Outcome) -> Result<(), String> {
    client_json_strict(o)?;
    redacted(o)?;
    let msgs = o.messages();
    let sc = msgs
        .iter()
        .find_map(|m| m["result"].get("structuredContent").cloned())
        .ok_or_else(|| format!("no structuredContent in {}", o.text()))?;
    let n = |v: &Value| v.as_object().map_or(0, serde_json::Map::len);
    let inner = sc.get("byEmail").unwrap_or(&sc);
    if n(inner) != 2 {
        return Err(format!("want two distinct members, got {inner}"));
    }
    Ok(())
}

fn upstream_json_strict(o: &Outcome) -> Result<(), String> {
    for r in o.rec {
        strict_json(&r.body_text())?;
    }
    Ok(())
}

fn identity_upstream(o: &Outcome) -> Result<(), String> {
    if o.rec.is_empty() {
        return Err("nothing reached the upstream".into());
    }
    for r in o.rec {
        let ae = r.header("accept-encoding").unwrap_or("<none>");
        if ae != "identity" {
            return Err(format!(
                "upstream got accept-encoding {ae:?}, want \"identity\""
            ));
        }
    }
    Ok(())
}

fn gzip_list_to_client(o: &Outcome) -> Result<(), String> {
    identity_upstream(o)?;
    if o.resp.header("content-encoding") != Some("gzip") {
        return Err(format!(
            "a client accepting gzip should get gzip (compressor in front of the filters): {:?}",
            o.resp.headers
        ));
    }
    if !o.text().contains("\"echo\"") {
        return Err(format!("the list lost its visible tools: {}", o.text()));
    }
    Ok(())
}

/// Either refused with -32600 (nothing upstream) or answered with a list (filtered: the leak
/// checks look for the hidden names).
fn refused_or_listed(o: &Outcome) -> Result<(), String> {
    if let Some(e) = o.error() {
        if e["error"]["code"] != -32600 {
            return Err(format!("a refusal should be -32600: {e}"));
        }
        return nothing_upstream(o);
    }
    let listed = o
        .messages()
        .iter()
        .any(|m| m["result"].get("tools").is_some() || m["result"].get("prompts").is_some());
    if listed {
        Ok(())
    } else {
        Err(format!("neither refused nor listed: {}", o.text()))
    }
}

/// The upstream was asked for trailers (so the test server really sent them).
fn te_trailers_upstream(o: &Outcome) -> Result<(), String> {
    if o.rec.iter().all(|r| r.header("te") == Some("trailers")) && !o.rec.is_empty() {
        Ok(())
    } else {
        Err("the upstream was not sent `te: trailers`: the reply had no trailers".into())
    }
}

fn pii_open_pass_counted(o: &Outcome) -> Result<(), String> {
    if o.delta("wasmcustom.mcp_pii.failure_open_passes") == 0 {
        return Err("mcp_pii.failure_open_passes did not grow".into());
    }
    Ok(())
}

fn www_invalid_token(o: &Outcome) -> Result<(), String> {
    let w = o.resp.header("www-authenticate").unwrap_or("");
    if !w.contains("error=\"invalid_token\"") {
        return Err(format!(
            "www-authenticate {w:?} lacks error=\"invalid_token\""
        ));
    }
    nothing_upstream(o)
}

fn insufficient_scope(o: &Outcome) -> Result<(), String> {
    let w = o.resp.header("www-authenticate").unwrap_or("");
    if !w.contains("insufficient_scope") {
        return Err(format!("www-authenticate {w:?} lacks insufficient_scope"));
    }
    nothing_upstream(o)
}

fn listen_stream(o: &Outcome) -> Result<(), String> {
    let ct = o.resp.header("content-type").unwrap_or("");
    if !ct.contains("text/event-stream") {
        return Err(format!("a GET listen stream should be SSE, got {ct:?}"));
    }
    if o.rec.len() != 1 || o.rec[0].method != "GET" {
        return Err("the GET did not reach the upstream".into());
    }
    Ok(())
}

/// A GET stream either arrives filtered / scrubbed (its events kept) or is refused; it is never
/// cut silently to nothing with a 200.
fn stream_kept_or_refused(o: &Outcome) -> Result<(), String> {
    if o.resp.status != 200 {
        return Ok(());
    }
    if o.messages().is_empty() {
        return Err(format!("a 200 stream with no event left: {:?}", o.text()));
    }
    Ok(())
}

fn delete_passes(o: &Outcome) -> Result<(), String> {
    if o.rec.len() != 1 || o.rec[0].method != "DELETE" {
        return Err("the DELETE did not reach the upstream".into());
    }
    Ok(())
}

fn echo_reached(o: &Outcome) -> Result<(), String> {
    let calls: Vec<_> = o
        .rec
        .iter()
        .flat_map(|r| r.messages.iter())
        .filter(|m| m.method.as_deref() == Some("tools/call"))
        .filter_map(|m| m.name.clone())
        .collect();
    if calls != ["echo"] {
        return Err(format!(
            "want exactly one echo call upstream, got {calls:?}"
        ));
    }
    Ok(())
}

/// The pipelined allowed call got through and the hidden one did not.
fn pipelined(o: &Outcome) -> Result<(), String> {
    echo_reached(o)
}

// ------------------------------------------------------------------------------------------
// Group A: the shipped full chain
// ------------------------------------------------------------------------------------------

/// A canned upstream answer, so that a request wrongly forwarded ends at once (a GET would
/// otherwise open the test server's endless listen stream).
fn upstream_answered() -> RawReply {
    json_reply(result_msg("7", "the upstream answered"))
}

fn methods_cases() -> Vec<Case> {
    let hidden = || hidden_call("7").into_bytes();
    let m = |name, method: &str| {
        case(
            "methods",
            name,
            req(method, Some(hidden())),
            Expect::Rpc(405, -32600),
        )
        .reply(upstream_answered())
        .up(&[HIDDEN])
        .check(allow_405)
    };
    let m2 = |name, method: &str| {
        case(
            "methods",
            name,
            req(method, Some(hidden())).h2(),
            Expect::Rpc(405, -32600),
        )
        .reply(upstream_answered())
        .up(&[HIDDEN])
        .check(allow_405)
    };
    let smuggled = format!(
        "POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
        hidden_call("8").len(),
        hidden_call("8")
    );
    vec![
        m("get-with-body", "GET"),
        m("put-with-body", "PUT"),
        m("patch-with-body", "PATCH"),
        m("delete-with-body", "DELETE"),
        m("options-with-body", "OPTIONS"),
        // Envoy's HTTP/1.1 codec refuses methods it does not know (HPE_INVALID_METHOD, plain
        // 400) before any filter runs; over HTTP/2 they reach the filters.
        case(
            "methods",
            "lowercase-post-with-body-http1-codec-refuses",
            req("post", Some(hidden())),
            Expect::Status(400),
        )
        .reply(upstream_answered())
        .up(&[HIDDEN])
        .check(nothing_upstream),
        case(
            "methods",
            "custom-method-with-body-http1-codec-refuses",
            req("MCPCALL", Some(hidden())),
            Expect::Status(400),
        )
        .reply(upstream_answered())
        .up(&[HIDDEN])
        .check(nothing_upstream),
        m2("lowercase-post-with-body-over-http2", "post"),
        m2("mixed-case-post-with-body-over-http2", "Post"),
        m2("custom-method-with-body-over-http2", "MCPCALL"),
        m2("get-with-body-over-http2", "GET"),
        m2("put-with-body-over-http2", "PUT"),
        case(
            "methods",
            "get-with-chunked-body",
            req("GET", None).chunks(vec![hidden()], &[]),
            Expect::Rpc(405, -32600),
        )
        .reply(upstream_answered())
        .up(&[HIDDEN])
        .check(allow_405),
        case(
            "methods",
            "get-with-chunked-body-and-trailers",
            req("GET", None).chunks(
                vec![
                    b"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",".to_vec(),
                    b"\"params\":{\"name\":\"admin_reset\"}}".to_vec(),
                ],
                &[("mcp-method", "tools/call"), ("x-trailer", "1")],
            ),
            Expect::Rpc(405, -32600),
        )
        .reply(upstream_answered())
        .up(&[HIDDEN])
        .check(allow_405),
        case(
            "methods",
            "put-with-pii-arguments",
            req(
                "PUT",
                Some(call_body("7", r#""echo""#, &format!(r#"{{"text":"{EMAIL}"}}"#)).into_bytes()),
            ),
            Expect::Rpc(405, -32600),
        )
        .reply(upstream_answered())
        .up(&[EMAIL])
        .check(allow_405),
        case(
            "methods",
            "head-with-body",
            req("HEAD", Some(hidden())),
            Expect::Status(405),
        )
        .reply(upstream_answered())
        .up(&[HIDDEN])
        .check(nothing_upstream),
        case(
            "methods",
            "get-with-body-smuggling-a-second-request",
            req("GET", Some(smuggled.into_bytes())).keep_alive(StdDuration::from_millis(1500)),
            Expect::Rpc(405, -32600),
        )
        .reply(upstream_answered())
        .up(&[HIDDEN])
        .check(allow_405),
        case(
            "methods",
            "post-empty-body",
            post(Vec::new()),
            Expect::Rpc(400, -32700),
        )
        .check(empty_post),
        case(
            "methods",
            "post-empty-chunked-body",
            req("POST", None).chunks(vec![], &[]),
            Expect::Rpc(400, -32700),
        )
        .check(empty_post),
        case(
            "methods",
            "get-listen-stream-without-body-still-works",
            req("GET", None)
                .without("content-type")
                .without("accept")
                .h("accept", "text/event-stream")
                .stop_at("keepalive"),
            Expect::Status(200),
        )
        .check(listen_stream),
        case(
            "methods",
            "delete-without-body-still-works",
            req("DELETE", None).without("content-type"),
            Expect::Status(200),
        )
        .check(delete_passes),
    ]
}

fn repeated_header_cases() -> Vec<Case> {
    let echo = || modern_call(r#""echo""#);
    let hidden = || modern_call(r#""admin_reset""#);
    let r = |name, req: Req| {
        case("repeated-headers", name, req, Expect::Rpc(400, -32600))
            .up(&[HIDDEN])
            .check(repeated_7)
    };
    vec![
        r(
            "two-mcp-method",
            modern_post(echo(), "tools/call", Some("echo")).h("mcp-method", "ping"),
        ),
        r(
            "two-mcp-name-visible-body",
            modern_post(echo(), "tools/call", Some("echo")).h("mcp-name", HIDDEN),
        ),
        r(
            "two-mcp-name-hidden-body",
            modern_post(hidden(), "tools/call", Some(HIDDEN)).h("mcp-name", "echo"),
        ),
        r(
            "two-mcp-name-differently-cased",
            modern_post(echo(), "tools/call", None)
                .h("Mcp-Name", "echo")
                .h("MCP-NAME", HIDDEN),
        ),
        r(
            "two-mcp-protocol-version",
            modern_post(echo(), "tools/call", Some("echo")).h("mcp-protocol-version", "2025-11-25"),
        ),
        r(
            "two-mcp-session-id",
            post(echo_call("7"))
                .h("mcp-session-id", "session-a")
                .h("mcp-session-id", "session-b"),
        ),
        r(
            "two-authorization",
            post(echo_call("7"))
                .h("authorization", "Bearer a")
                .h("authorization", "Bearer b"),
        ),
        case(
            "repeated-headers",
            "two-mcp-session-id-on-get-without-body",
            req("GET", None)
                .without("content-type")
                .h("mcp-session-id", "a")
                .h("mcp-session-id", "b")
                .stop_at("keepalive"),
            Expect::Rpc(400, -32600),
        )
        .check(repeated_null),
        case(
            "repeated-headers",
            "two-mcp-session-id-on-delete-without-body",
            req("DELETE", None)
                .without("content-type")
                .h("mcp-session-id", "a")
                .h("mcp-session-id", "b"),
            Expect::Rpc(400, -32600),
        )
        .check(repeated_null),
        case(
            "repeated-headers",
            "two-mcp-method-with-unparsable-body",
            post("not json at all")
                .h("mcp-method", "tools/call")
                .h("mcp-method", "ping"),
            Expect::Rpc(400, -32600),
        )
        .check(repeated_null),
        case(
            "repeated-headers",
            "comma-joined-mcp-name-is-a-mismatch",
            modern_post(echo(), "tools/call", Some("echo, admin_reset")),
            Expect::Rpc(400, -32020),
        )
        .up(&[HIDDEN])
        .check(id_7_nothing_upstream),
        case(
            "repeated-headers",
            "two-mcp-name-over-http2",
            modern_post(hidden(), "tools/call", Some("echo"))
                .h("mcp-name", HIDDEN)
                .h2(),
            Expect::Rpc(400, -32600),
        )
        .up(&[HIDDEN])
        .check(repeated_7),
    ]
}

fn encoded_cases() -> Vec<Case> {
    let list = || list_msg("1");
    let pii_result = || result_msg("7", &format!("contact {EMAIL}"));
    let enc = |name, reply: RawReply| {
        case(
            "encoded",
            name,
            post(list_body("1")),
            Expect::Rpc(502, -32603),
        )
        .reply(reply)
        .down(&[HIDDEN])
        .check(unreadable_counted)
    };
    let enc_pii = |name, reply: RawReply| {
        case(
            "encoded",
            name,
            post(echo_call("7")),
            Expect::Rpc(502, -32603),
        )
        .reply(reply)
        .down(&[EMAIL])
        .check(unreadable_counted)
    };
    let unreadable = |name, ct: Option<&str>| {
        let mut r = bare(list());
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        case(
            "encoded",
            name,
            post(list_body("1")),
            Expect::Rpc(502, -32603),
        )
        .reply(r)
        .down(&[HIDDEN])
        .check(unreadable_counted)
    };
    let either = |name, req: Req, reply: RawReply| {
        case("encoded", name, req, Expect::Any)
            .reply(reply)
            .down(&[HIDDEN])
    };
    vec![
        enc(
            "list-json-gzip",
            json_reply(gzip(list().as_bytes())).header("content-encoding", "gzip"),
        ),
        enc("list-sse-gzip", gz(sse_reply(&[list()]))),
        enc(
            "list-json-deflate",
            json_reply(zlib(list().as_bytes())).header("content-encoding", "deflate"),
        ),
        enc(
            "list-json-uppercase-GZIP",
            json_reply(gzip(list().as_bytes())).header("content-encoding", "GZIP"),
        ),
        enc(
            "list-json-x-gzip",
            json_reply(gzip(list().as_bytes())).header("content-encoding", "x-gzip"),
        ),
        enc(
            "list-json-identity-then-gzip",
            json_reply(gzip(list().as_bytes())).header("content-encoding", "identity, gzip"),
        ),
        enc(
            "list-json-two-content-encoding-headers",
            json_reply(gzip(list().as_bytes()))
                .header("content-encoding", "identity")
                .header("content-encoding", "gzip"),
        ),
        enc(
            "list-json-gzip-chunked-slowly",
            json_reply(gzip(list().as_bytes()))
                .header("content-encoding", "gzip")
                .chunked(17, StdDuration::from_millis(5)),
        ),
        case(
            "encoded",
            "list-json-gzip-stateless-era",
            modern_post(list_body("1"), "tools/list", None),
            Expect::Rpc(502, -32603),
        )
        .reply(json_reply(gzip(list().as_bytes())).header("content-encoding", "gzip"))
        .down(&[HIDDEN])
        .check(unreadable_counted),
        enc_pii(
            "result-json-gzip-pii",
            json_reply(gzip(pii_result().as_bytes())).header("content-encoding", "gzip"),
        ),
        enc_pii("result-sse-gzip-pii", gz(sse_reply(&[pii_result()]))),
        enc_pii(
            "result-json-br-label-on-plain-body",
            json_reply(pii_result()).header("content-encoding", "br"),
        ),
        enc_pii(
            "result-json-deflate-pii",
            json_reply(zlib(pii_result().as_bytes())).header("content-encoding", "deflate"),
        ),
        unreadable("list-octet-stream", Some("application/octet-stream")),
        unreadable("list-no-content-type", None),
        case(
            "encoded",
            "result-text-plain-pii",
            post(echo_call("7")),
            Expect::Rpc(502, -32603),
        )
        .reply(bare(pii_result()).header("content-type", "text/plain"))
        .down(&[EMAIL])
        .check(unreadable_counted),
        either(
            "list-content-type-json-seq",
            post(list_body("1")),
            RawReply::new("application/json-seq", list()),
        ),
        either(
            "list-content-type-sse-inside-a-parameter",
            post(list_body("1")),
            RawReply::new(
                "text/plain; profile=\"text/event-stream\"",
                sse_bytes(&[list()]),
            ),
        ),
        either(
            "list-content-type-json-inside-a-parameter",
            post(list_body("1")),
            RawReply::new("text/plain; profile=\"application/json\"", list()),
        ),
        either(
            "list-content-type-uppercase-json",
            post(list_body("1")),
            RawReply::new("Application/JSON; charset=UTF-8", list()),
        ),
        either(
            "list-content-type-uppercase-sse",
            post(list_body("1")),
            RawReply::new("TEXT/EVENT-STREAM", sse_bytes(&[list()])),
        ),
        either(
            "list-content-type-both-json-and-sse",
            post(list_body("1")),
            RawReply::new("application/json, text/event-stream", list()),
        ),
        either(
            "list-two-content-type-headers",
            post(list_body("1")),
            RawReply::new("text/plain", list()).header("content-type", "application/json"),
        ),
        either(
            "list-identity-label-on-gzip-bytes",
            post(list_body("1")),
            json_reply(gzip(list().as_bytes())).header("content-encoding", "identity"),
        ),
        either(
            "list-json-utf16-body",
            post(list_body("1")),
            RawReply::new("application/json; charset=utf-16", utf16le(&list())),
        ),
        case(
            "encoded",
            "client-accept-gzip-upstream-gets-identity",
            post(echo_call("7")).h("accept-encoding", "gzip"),
            Expect::Result,
        )
        .check(identity_upstream),
        case(
            "encoded",
            "client-accept-gzip-json-list-is-filtered-and-gzipped",
            post(list_body("1")).h("accept-encoding", "gzip"),
            Expect::Result,
        )
        .down(&[HIDDEN])
        .check(gzip_list_to_client),
        case(
            "encoded",
            "client-accept-gzip-sse-list-is-filtered-and-gzipped",
            post(list_body("1"))
                .h("accept-encoding", "gzip")
                .h("x-test-response", "sse"),
            Expect::Result,
        )
        .down(&[HIDDEN])
        .check(gzip_list_to_client),
        case(
            "encoded",
            "client-accept-gzip-pii-result-scrubbed",
            post(call_body(
                "7",
                r#""echo""#,
                &format!(r#"{{"text":"{EMAIL} {SSN}"}}"#),
            ))
            .h("accept-encoding", "gzip, deflate, br"),
            Expect::Result,
        )
        .up(&[EMAIL, SSN])
        .down(&[EMAIL, SSN])
        .check(identity_upstream),
    ]
}

fn failure_mode_closed_cases() -> Vec<Case> {
    let big_hidden = call_body(
        "7",
        r#""admin_reset""#,
        &format!(r#"{{"pad":"{}"}}"#, pad(1_100_000)),
    );
    let big_pii = call_body(
        "7",
        r#""echo""#,
        &format!(r#"{{"text":"{EMAIL}","pad":"{}"}}"#, pad(1_100_000)),
    );
    vec![
        case(
            "failure-mode",
            "closed-hidden-call-padded-past-max-body-bytes",
            post(big_hidden),
            Expect::Status(413),
        )
        .up(&[HIDDEN])
        .check(nothing_upstream),
        case(
            "failure-mode",
            "closed-pii-call-padded-past-max-body-bytes",
            post(big_pii),
            Expect::Status(413),
        )
        .up(&[EMAIL])
        .check(nothing_upstream),
    ]
}

fn dup_key_cases() -> Vec<Case> {
    let clean = r#"[{"type":"text","text":"clean"}]"#;
    let dirty = format!(r#"[{{"type":"text","text":"mail {EMAIL}"}}]"#);
    let dup = |name, body: String| {
        case("dup-keys", name, post(echo_call("7")), Expect::Any)
            .reply(json_reply(body))
            .down(&[EMAIL])
            .check(ambiguous_7)
    };
    let dup_sse = |name, event: String| {
        let tail = r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"done"}}"#.to_string();
        case("dup-keys", name, post(echo_call("7")), Expect::Any)
            .reply(sse_reply(&[event, tail]))
            .down(&[EMAIL])
            .check(ambiguous_7_then_stream_continues)
    };
    let dup_list = |name, reply: RawReply| {
        case("dup-keys", name, post(list_body("1")), Expect::Code(-32603))
            .reply(reply)
            .down(&[HIDDEN])
    };
    let two_lists = |key2: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{{"name":"echo","inputSchema":{{"type":"object"}}}}],"{key2}":{LIST_TOOLS}}}}}"#
        )
    };
    vec![
        dup(
            "result-json-content-twice",
            result_raw("7", &format!(r#"{{"content":{clean},"content":{dirty}}}"#)),
        ),
        dup(
            "result-json-content-twice-escaped",
            result_raw("7", &format!(r#"{{"content":{clean},"con\u0074ent":{dirty}}}"#)),
        ),
        dup(
            "result-json-text-twice-in-a-block",
            result_raw(
                "7",
                &format!(r#"{{"content":[{{"type":"text","text":"clean","text":"mail {EMAIL}"}}]}}"#),
            ),
        ),
        dup(
            "result-json-text-twice-escaped",
            result_raw(
                "7",
                &format!(r#"{{"content":[{{"type":"text","text":"clean","te\u0078t":"mail {EMAIL}"}}]}}"#),
            ),
        ),
        dup(
            "result-json-result-twice",
            format!(
                r#"{{"jsonrpc":"2.0","id":7,"result":{{"content":{clean}}},"result":{{"content":{dirty}}}}}"#
            ),
        ),
        dup(
            "result-json-structured-key-twice",
            result_raw(
                "7",
                &format!(
                    r#"{{"content":{clean},"structuredContent":{{"email":"none","email":"{EMAIL}"}}}}"#
                ),
            ),
        ),
        dup(
            "result-json-type-twice-image-vs-text",
            result_raw(
                "7",
                &format!(r#"{{"content":[{{"type":"image","text":"mail {EMAIL}","type":"text"}}]}}"#),
            ),
        ),
        case("dup-keys", "result-json-id-twice", post(echo_call("7")), Expect::Any)
            .reply(json_reply(format!(
                r#"{{"jsonrpc":"2.0","id":7,"id":8,"result":{{"content":{dirty}}}}}"#
            )))
            .down(&[EMAIL]),
        case("dup-keys", "error-json-message-twice", post(echo_call("7")), Expect::Any)
            .reply(json_reply(format!(
                r#"{{"jsonrpc":"2.0","id":7,"error":{{"code":-32000,"message":"x","message":"no {EMAIL}"}}}}"#
            )))
            .down(&[EMAIL])
            .check(ambiguous_7),
        dup_sse(
            "result-sse-content-twice",
            result_raw("7", &format!(r#"{{"content":{clean},"content":{dirty}}}"#)),
        ),
        dup_sse(
            "result-sse-content-twice-escaped",
            result_raw("7", &format!(r#"{{"content":{clean},"\u0063ontent":{dirty}}}"#)),
        ),
        case(
            "dup-keys",
            "notification-sse-data-twice",
            post(echo_call("7")),
            Expect::Any,
        )
        .reply(sse_reply(&[
            format!(
                r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"level":"info","data":"ok","d\u0061ta":"{EMAIL}"}}}}"#
            ),
            result_msg("7", "done"),
        ]))
        .down(&[EMAIL]),
        dup_list("list-json-tools-twice", json_reply(two_lists("tools"))),
        dup_list("list-json-tools-twice-escaped", json_reply(two_lists("tool\\u0073"))),
        dup_list("list-sse-tools-twice", sse_reply(&[two_lists("tools")])),
        dup_list(
            "list-json-name-twice-in-a-tool",
            json_reply(
                r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo","name":"admin_reset","inputSchema":{"type":"object"}}]}}"#,
            ),
        ),
        dup_list(
            "list-json-result-twice",
            json_reply(format!(
                r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[]}},"result":{{"tools":{LIST_TOOLS}}}}}"#
            )),
        ),
    ]
}

fn id_cases() -> Vec<Case> {
    let pii = |id: &str| result_msg(id, &format!("mail {EMAIL} ssn {SSN}"));
    let odd = |name, id: &'static str| {
        case("ids", name, post(echo_call("7")), Expect::Any)
            .reply(json_reply(pii(id)))
            .down(&[EMAIL, SSN])
            .check(redacted)
    };
    let list_any = |name, req: Req, reply: RawReply| {
        case("ids", name, req, Expect::Any)
            .reply(reply)
            .down(&[HIDDEN])
    };
    vec![
        odd("result-id-7.0-carries-pii", "7.0"),
        odd("result-id-7e0-carries-pii", "7e0"),
        odd("result-id-string-7-carries-pii", "\"7\""),
        odd("result-id-70e-1-carries-pii", "70e-1"),
        odd("result-id-7E+0-carries-pii", "7E+0"),
        odd("result-id-null-carries-pii", "null"),
        odd("result-id-negative-zero-7-carries-pii", "7.00"),
        case("ids", "result-without-id-carries-pii", post(echo_call("7")), Expect::Any)
            .reply(json_reply(format!(
                r#"{{"jsonrpc":"2.0","result":{{"content":[{{"type":"text","text":"mail {EMAIL}"}}]}}}}"#
            )))
            .down(&[EMAIL]),
        case("ids", "result-id-7.0-pii-in-an-unknown-field", post(echo_call("7")), Expect::Any)
            .reply(json_reply(result_raw(
                "7.0",
                &format!(r#"{{"content":[],"note":{{"deep":["{EMAIL}"]}}}}"#),
            )))
            .down(&[EMAIL]),
        case("ids", "result-id-7.0-over-sse", post(echo_call("7")), Expect::Any)
            .reply(sse_reply(&[pii("7.0")]))
            .down(&[EMAIL, SSN])
            .check(redacted),
        case("ids", "result-id-string-7-over-sse-split", post(echo_call("7")), Expect::Any)
            .reply(sse_reply(&[pii("\"7\"")]).chunked(5, StdDuration::from_millis(2)))
            .down(&[EMAIL, SSN])
            .check(redacted),
        case("ids", "result-key-escaped-result", post(echo_call("7")), Expect::Any)
            .reply(json_reply(format!(
                r#"{{"jsonrpc":"2.0","id":7,"res\u0075lt":{{"content":[{{"type":"text","text":"mail {EMAIL}"}}]}}}}"#
            )))
            .down(&[EMAIL]),
        case("ids", "result-key-escaped-text", post(echo_call("7")), Expect::Any)
            .reply(json_reply(result_raw(
                "7",
                &format!(r#"{{"content":[{{"type":"text","t\u0065xt":"mail {EMAIL}"}}]}}"#),
            )))
            .down(&[EMAIL]),
        case("ids", "error-response-id-7.0-with-pii-and-http-500", post(echo_call("7")), Expect::Any)
            .reply(
                json_reply(format!(
                    r#"{{"jsonrpc":"2.0","id":7.0,"error":{{"code":-32000,"message":"no such user {EMAIL}"}}}}"#
                ))
                .status(500),
            )
            .down(&[EMAIL]),
        list_any("list-id-string-1-for-request-1", post(list_body("1")), json_reply(list_msg("\"1\""))),
        list_any("list-id-1.0-for-request-1", post(list_body("1")), json_reply(list_msg("1.0"))),
        list_any(
            "list-result-answering-ping",
            post(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            json_reply(list_msg("1")),
        ),
        list_any(
            "list-result-answering-a-tool-call",
            post(echo_call("1")),
            json_reply(list_msg("1")),
        ),
        list_any(
            "list-result-answering-ping-over-sse",
            post(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            sse_reply(&[list_msg("1")]),
        ),
        list_any(
            "list-result-as-a-batch-response",
            post(list_body("1")),
            json_reply(format!("[{}]", list_msg("1"))),
        ),
        list_any(
            "list-result-as-a-batch-in-an-sse-event",
            post(list_body("1")),
            sse_reply(&[format!("[{}]", list_msg("1"))]),
        ),
        list_any(
            "list-for-another-pending-request-on-a-ping-stream",
            post(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#),
            sse_reply(&[list_msg("1"), r#"{"jsonrpc":"2.0","id":2,"result":{}}"#.to_string()]),
        ),
        list_any(
            "list-for-another-pending-request-on-a-tool-call-stream",
            post(echo_call("2")),
            sse_reply(&[list_msg("1"), result_msg("2", "hi")]),
        ),
        list_any(
            "list-result-answering-ping-as-a-batch",
            post(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            json_reply(format!(r#"[{{"jsonrpc":"2.0","id":1,"result":{{}}}},{}]"#, list_msg("2"))),
        ),
    ]
}

fn get_stream_cases() -> Vec<Case> {
    let get = || {
        req("GET", None)
            .without("content-type")
            .without("accept")
            .h("accept", "text/event-stream")
    };
    let g = |name, r: Req, reply: RawReply, secret: &str| {
        case("get-stream", name, r, Expect::Any)
            .reply(reply)
            .down(&[secret])
            .check(stream_kept_or_refused)
    };
    vec![
        g(
            "get-stream-carries-a-list",
            get(),
            sse_reply(&[list_msg("1")]),
            HIDDEN,
        ),
        g(
            "get-stream-resumed-with-last-event-id-carries-a-list",
            get().h("last-event-id", "3"),
            sse_reply(&[list_msg("1")]),
            HIDDEN,
        ),
        g(
            "get-stream-carries-a-list-split-in-chunks",
            get(),
            sse_reply(&[list_msg("1")]).chunked(7, StdDuration::from_millis(1)),
            HIDDEN,
        ),
        g(
            "get-stream-gzip-list",
            get(),
            gz(sse_reply(&[list_msg("1")])),
            HIDDEN,
        ),
        g(
            "get-stream-carries-a-result-with-pii",
            get(),
            sse_reply(&[result_msg("7", &format!("mail {EMAIL}"))]),
            EMAIL,
        ),
        g(
            "get-stream-carries-a-log-with-pii",
            get(),
            sse_reply(&[format!(
                r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"level":"info","data":"login {EMAIL}"}}}}"#
            )]),
            EMAIL,
        ),
        g(
            "get-stream-carries-a-result-with-a-pii-key",
            get(),
            sse_reply(&[result_raw(
                "7",
                &format!(r#"{{"content":[],"structuredContent":{{"{EMAIL}":1}}}}"#),
            )]),
            EMAIL,
        ),
    ]
}

fn key_cases() -> Vec<Case> {
    let sc = |id: &str, inner: &str| {
        result_raw(
            id,
            &format!(r#"{{"content":[],"structuredContent":{inner}}}"#),
        )
    };
    vec![
        case("keys", "result-email-as-a-key", post(echo_call("7")), Expect::Any)
            .reply(json_reply(sc("7", &format!(r#"{{"byEmail":{{"{EMAIL2}":1,"n":2}}}}"#))))
            .down(&[EMAIL2])
            .check(keys_redacted),
        case("keys", "result-two-email-keys-would-collide", post(echo_call("7")), Expect::Any)
            .reply(json_reply(sc("7", &format!(r#"{{"byEmail":{{"{EMAIL}":1,"{EMAIL2}":2}}}}"#))))
            .down(&[EMAIL, EMAIL2])
            .check(keys_redacted),
        case("keys", "result-key-collides-with-an-existing-replacement", post(echo_call("7")), Expect::Any)
            .reply(json_reply(sc("7", &format!(r#"{{"byEmail":{{"[REDACTED:email]":0,"{EMAIL2}":1}}}}"#))))
            .down(&[EMAIL2])
            .check(keys_redacted),
        case("keys", "result-escaped-email-key", post(echo_call("7")), Expect::Any)
            .reply(json_reply(sc("7", r#"{"byEmail":{"alice\u0040example.com":1,"n":2}}"#)))
            .down(&[EMAIL])
            .check(keys_redacted),
        case("keys", "result-card-key", post(echo_call("7")), Expect::Any)
            .reply(json_reply(sc("7", r#"{"byEmail":{"4111 1111 1111 1111":"visa","n":2}}"#)))
            .down(&["4111 1111 1111 1111"])
            .check(keys_redacted),
        case("keys", "result-sse-email-key", post(echo_call("7")), Expect::Any)
            .reply(sse_reply(&[sc("7", &format!(r#"{{"byEmail":{{"{EMAIL2}":1,"n":2}}}}"#))]))
            .down(&[EMAIL2])
            .check(keys_redacted),
        case("keys", "result-id-7.0-email-key", post(echo_call("7")), Expect::Any)
            .reply(json_reply(sc("7.0", &format!(r#"{{"byEmail":{{"{EMAIL2}":1,"n":2}}}}"#))))
            .down(&[EMAIL2])
            .check(keys_redacted),
        case("keys", "notification-log-data-email-key", post(echo_call("7")), Expect::Any)
            .reply(sse_reply(&[
                format!(r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"level":"info","data":{{"{EMAIL}":"logged in"}}}}}}"#),
                result_msg("7", "done"),
            ]))
            .down(&[EMAIL])
            .check(client_json_strict),
        case(
            "keys",
            "request-argument-email-key",
            post(call_body("7", r#""echo""#, &format!(r#"{{"text":"x","map":{{"{EMAIL}":1,"{EMAIL2}":2}}}}"#))),
            Expect::Result,
        )
        .up(&[EMAIL, EMAIL2])
        .check(upstream_json_strict),
        case(
            "keys",
            "request-client-answer-email-key",
            post(format!(
                r#"{{"jsonrpc":"2.0","id":90,"result":{{"role":"assistant","model":"m","content":{{"type":"text","text":"ok"}},"extra":{{"{EMAIL}":1}}}}}}"#
            )),
            Expect::Any,
        )
        .up(&[EMAIL])
        .check(upstream_json_strict),
    ]
}

fn card_cases() -> Vec<Case> {
    let req_card = |name, card: &'static str| {
        case(
            "cards",
            name,
            post(call_body(
                "7",
                r#""echo""#,
                &format!(r#"{{"text":"card {card} thanks"}}"#),
            )),
            Expect::Result,
        )
        .up(&[card])
        .down(&[card])
    };
    let resp_card = |name, card: &'static str, sse: bool| {
        let body = result_msg("7", &format!("card {card} on file"));
        let reply = if sse {
            sse_reply(&[body])
        } else {
            json_reply(body)
        };
        case("cards", name, post(echo_call("7")), Expect::Result)
            .reply(reply)
            .down(&[card])
            .check(redacted)
    };
    vec![
        req_card("request-space-dash-mixed", "4111 1111-1111 1111"),
        req_card("request-dot-space-dash-mixed", "4111.1111 1111-1111"),
        req_card("request-mastercard-dash-dot-space", "5555-5555.5555 4444"),
        req_card("request-amex-4-6-5-mixed", "3782 822463-10005"),
        req_card("request-discover-mixed", "6011 1111-1111.1117"),
        resp_card("response-json-dash-dot-space", "4111-1111.1111 1111", false),
        resp_card("response-sse-space-dot-dash", "4111 1111.1111-1111", true),
        resp_card("response-json-visa-13-mixed", "4222 2222-22222", false),
    ]
}

fn attacker_cases() -> Vec<Case> {
    let refused_hidden = |name, req: Req| {
        case("attacker", name, req, Expect::Refused)
            .up(&[HIDDEN])
            .down(&[HIDDEN_RAN])
    };
    let unknown_tool = |name, req: Req| {
        case("attacker", name, req, Expect::Code(-32602))
            .up(&[HIDDEN])
            .down(&[HIDDEN_RAN])
    };
    // Not a tool call for the gateway nor for the server: it may pass, but nothing may run it.
    let never_runs = |name, req: Req| case("attacker", name, req, Expect::Any).down(&[HIDDEN_RAN]);
    let list_leak = |name, reply: RawReply| {
        case("attacker", name, post(list_body("1")), Expect::Any)
            .reply(reply)
            .down(&[HIDDEN])
    };
    let pii_up = |name, req: Req| {
        case("attacker", name, req, Expect::Any)
            .up(&[EMAIL])
            .down(&[EMAIL])
    };
    let list_ev = list_msg("1");
    let sse_crlf = format!("event: message\r\ndata: {list_ev}\r\n\r\n").into_bytes();
    let split_at = |s: &[u8], needle: &[u8], off: usize| {
        let at = find(s, needle).unwrap() + off;
        vec![s[..at].to_vec(), s[at..].to_vec()]
    };
    let pii_call = || call_body("7", r#""echo""#, &format!(r#"{{"text":"{EMAIL}"}}"#));
    vec![
        unknown_tool(
            "mcp-name-plain-body-name-escaped",
            modern_post(modern_call(r#""adm\u0069n_reset""#), "tools/call", Some(HIDDEN)),
        ),
        refused_hidden(
            "mcp-name-echo-body-name-escaped-hidden",
            modern_post(modern_call(r#""adm\u0069n_reset""#), "tools/call", Some("echo")),
        ),
        unknown_tool(
            "mcp-name-base64-sentinel-hidden",
            modern_post(
                modern_call(r#""admin_reset""#),
                "tools/call",
                Some("=?base64?YWRtaW5fcmVzZXQ=?="),
            ),
        ),
        refused_hidden(
            "mcp-name-base64-echo-body-hidden",
            modern_post(modern_call(r#""admin_reset""#), "tools/call", Some("=?base64?ZWNobw==?=")),
        ),
        refused_hidden(
            "mcp-method-header-vs-body-method-case",
            modern_post(
                modern_call(r#""admin_reset""#).replace("tools/call", "Tools/Call"),
                "tools/call",
                Some(HIDDEN),
            ),
        ),
        refused_hidden(
            "stateless-era-from-meta-only",
            post(modern_call(r#""admin_reset""#)),
        ),
        never_runs(
            "method-uppercase",
            post(hidden_call("7").replace("tools/call", "TOOLS/CALL")),
        ),
        unknown_tool(
            "method-escaped-slash",
            post(hidden_call("7").replace("tools/call", "tools\\/call")),
        ),
        unknown_tool(
            "method-unicode-escaped",
            post(hidden_call("7").replace("tools/call", "tools\\u002fcall")),
        ),
        unknown_tool(
            "name-escaped-underscore",
            post(call_body("7", r#""admin\u005freset""#, "{}")),
        ),
        unknown_tool(
            "name-fully-escaped",
            post(call_body(
                "7",
                r#""\u0061\u0064\u006d\u0069\u006e\u005f\u0072\u0065\u0073\u0065\u0074""#,
                "{}",
            )),
        ),
        refused_hidden(
            "name-with-trailing-nul",
            post(call_body("7", r#""admin_reset\u0000""#, "{}")),
        ),
        refused_hidden(
            "tools-call-without-id",
            post(r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"admin_reset","arguments":{}}}"#),
        ),
        unknown_tool(
            "params-key-escaped",
            post(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","p\u0061rams":{"name":"admin_reset"}}"#),
        ),
        unknown_tool(
            "method-key-escaped",
            post(r#"{"jsonrpc":"2.0","id":7,"m\u0065thod":"tools/call","params":{"name":"admin_reset"}}"#),
        ),
        refused_hidden(
            "underscore-twin-of-mcp-name",
            modern_post(modern_call(r#""echo""#), "tools/call", Some("echo")).h("mcp_name", HIDDEN),
        ),
        refused_hidden(
            "params-twice-via-escaped-key",
            post(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo"},"p\u0061rams":{"name":"admin_reset"}}"#),
        ),
        refused_hidden("body-with-utf8-bom", post(with_bom(&hidden_call("7")))),
        refused_hidden("body-utf16le", post(utf16le(&hidden_call("7")))),
        refused_hidden(
            "body-utf16le-with-bom",
            post([&b"\xFF\xFE"[..], &utf16le(&hidden_call("7"))].concat()),
        ),
        refused_hidden(
            "two-json-objects-newline-separated",
            post(format!("{}\n{}", echo_call("6"), hidden_call("7"))),
        ),
        refused_hidden(
            "json-then-trailing-garbage",
            post(format!("{} //{}", echo_call("6"), hidden_call("7"))),
        ),
        refused_hidden(
            "request-content-type-text-plain",
            post(hidden_call("7")).without("content-type").h("content-type", "text/plain"),
        ),
        refused_hidden(
            "request-content-type-json-seq",
            post([&b"\x1e"[..], hidden_call("7").as_bytes(), b"\n"].concat())
                .without("content-type")
                .h("content-type", "application/json-seq"),
        ),
        refused_hidden("request-without-content-type", post(hidden_call("7")).without("content-type")),
        refused_hidden(
            "request-body-gzip-encoded",
            post(gzip(hidden_call("7").as_bytes())).h("content-encoding", "gzip"),
        ),
        pii_up(
            "request-body-gzip-encoded-pii",
            post(gzip(pii_call().as_bytes())).h("content-encoding", "gzip"),
        ),
        pii_up(
            "request-form-urlencoded-pii",
            post(pii_call())
                .without("content-type")
                .h("content-type", "application/x-www-form-urlencoded"),
        ),
        pii_up("request-body-with-bom-pii", post(with_bom(&pii_call()))),
        pii_up(
            "request-arguments-key-escaped",
            post(pii_call().replace("\"arguments\"", r#""\u0061rguments""#)),
        ),
        pii_up(
            "request-email-partly-escaped",
            post(pii_call().replace("example.com", r#"exam\u0070le.com"#)),
        ),
        pii_up("request-body-utf16le-pii", post(utf16le(&pii_call()))),
        unknown_tool(
            "chunked-request-split-inside-the-name-with-trailers",
            req("POST", None).chunks(
                split_at(hidden_call("7").as_bytes(), b"admin_reset", 4),
                &[("mcp-name", "echo"), ("mcp-method", "ping")],
            ),
        ),
        pii_up(
            "chunked-request-pii-split-across-chunks",
            req("POST", None).chunks(split_at(pii_call().as_bytes(), b"@example", 3), &[]),
        ),
        unknown_tool("expect-100-continue-hidden-call", post(hidden_call("7")).expect_continue()),
        refused_hidden("path-with-trailing-slash", post(hidden_call("7")).path("/mcp/")),
        refused_hidden("path-with-query", post(hidden_call("7")).path("/mcp?x=1")),
        refused_hidden("path-percent-encoded", post(hidden_call("7")).path("/%6Dcp")),
        refused_hidden("path-double-slash", post(hidden_call("7")).path("//mcp")),
        unknown_tool("hidden-call-over-http2", post(hidden_call("7")).h2()),
        pii_up("pii-call-over-http2", post(pii_call()).h2()),
        case(
            "attacker",
            "pipelined-allowed-then-hidden-call",
            post(echo_call("6")).keep_alive(StdDuration::from_millis(1500)).suffix(
                format!(
                    "POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                    hidden_call("7").len(),
                    hidden_call("7")
                )
                .as_bytes(),
            ),
            Expect::Result,
        )
        .up(&[HIDDEN])
        .check(pipelined),
        list_leak(
            "sse-list-cr-only-line-endings",
            RawReply::new("text/event-stream", format!("event: message\rdata: {list_ev}\r\r")),
        ),
        list_leak(
            "sse-list-split-inside-the-hidden-name",
            RawReply::new("text/event-stream", sse_bytes(std::slice::from_ref(&list_ev))).pieces(
                split_at(&sse_bytes(std::slice::from_ref(&list_ev)), b"admin_reset", 5),
                StdDuration::from_millis(30),
            ),
        ),
        list_leak(
            "sse-list-byte-by-byte",
            RawReply::new("text/event-stream", sse_bytes(std::slice::from_ref(&list_ev)))
                .chunked(1, StdDuration::ZERO),
        ),
        list_leak(
            "sse-list-crlf-split-between-cr-and-lf",
            RawReply::new("text/event-stream", sse_crlf.clone()).pieces(
                {
                    let at = find(&sse_crlf, b"}}\r\n").unwrap() + 3;
                    vec![sse_crlf[..at].to_vec(), sse_crlf[at..].to_vec()]
                },
                StdDuration::from_millis(30),
            ),
        ),
        list_leak(
            "sse-list-multi-line-data",
            RawReply::new(
                "text/event-stream",
                format!(
                    "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{{\"tools\":\ndata: {LIST_TOOLS}}}}}\n\n"
                ),
            ),
        ),
        list_leak(
            "sse-list-data-without-space",
            RawReply::new("text/event-stream", format!("data:{list_ev}\n\n")),
        ),
        list_leak(
            "sse-list-after-a-utf8-bom",
            RawReply::new("text/event-stream", with_bom(&format!("data: {list_ev}\n\n"))),
        ),
        list_leak(
            "sse-list-with-another-event-name",
            RawReply::new("text/event-stream", format!("event: other\ndata: {list_ev}\n\n")),
        ),
        list_leak(
            "sse-list-last-event-without-blank-line",
            RawReply::new("text/event-stream", format!("event: message\ndata: {list_ev}\n")),
        ),
        list_leak(
            "sse-list-among-comments-and-retry",
            RawReply::new(
                "text/event-stream",
                format!(": hi\nretry: 10\nid: 1\n: more\ndata: {list_ev}\n: tail\n\n"),
            ),
        ),
        list_leak("json-list-with-utf8-bom", json_reply(with_bom(&list_ev))),
        list_leak(
            "json-list-leading-whitespace",
            json_reply(format!("\n\r\n \t{list_ev}")),
        ),
        list_leak(
            "sse-list-data-two-spaces",
            RawReply::new("text/event-stream", format!("data:  {list_ev}\n\n")),
        ),
        list_leak(
            "json-list-name-decoy-before-the-name",
            json_reply(list_ev.replace(
                r#"{"name":"admin_reset","#,
                r#"{"inputSchema":{"type":"object","name":"echo"},"name":"admin_reset","#,
            )),
        ),
        list_leak(
            "json-list-name-decoy-after-the-name",
            json_reply(list_ev.replace(
                r#""name":"admin_reset","description":"Reset all administrative state of the server.","inputSchema":{"type":"object"}"#,
                r#""name":"admin_reset","description":"Reset all administrative state of the server.","inputSchema":{"type":"object","name":"echo"}"#,
            )),
        ),
        list_leak(
            "json-list-with-an-error-member-too",
            json_reply(list_ev.replace(
                r#""result":"#,
                r#""error":{"code":-1,"message":"x"},"result":"#,
            )),
        ),
        list_leak("json-list-http-203", json_reply(list_ev.clone()).status(203)),
        list_leak("json-list-nested-deeper-than-max-json-depth", json_reply(deep_list())),
        list_leak("json-list-over-max-body-bytes", json_reply(huge_list())),
        list_leak(
            "sse-list-event-over-max-body-bytes",
            sse_reply(&[huge_list()]).chunked(64 * 1024, StdDuration::ZERO),
        ),
        case("attacker", "json-result-pii-over-max-body-bytes", post(echo_call("7")), Expect::Any)
            .reply(json_reply(result_msg(
                "7",
                &format!("mail {EMAIL} {}", pad(1_100_000)),
            )))
            .down(&[EMAIL]),
        case("attacker", "json-result-pii-nested-deeper-than-max-json-depth", post(echo_call("7")), Expect::Any)
            .reply(json_reply(result_raw(
                "7",
                &format!(
                    r#"{{"content":[{{"type":"text","text":"mail {EMAIL}"}}],"structuredContent":{{"deep":{}1{}}}}}"#,
                    "[".repeat(100),
                    "]".repeat(100)
                ),
            )))
            .down(&[EMAIL]),
        case("attacker", "json-result-card-as-a-json-number", post(echo_call("7")), Expect::Any)
            .reply(json_reply(result_raw(
                "7",
                r#"{"content":[],"structuredContent":{"card":4111111111111111,"ssn":219099999}}"#,
            )))
            .down(&["4111111111111111"]),
        case("attacker", "json-result-email-uppercase", post(echo_call("7")), Expect::Any)
            .reply(json_reply(result_msg("7", "mail ALICE@EXAMPLE.COM")))
            .down(&["ALICE@EXAMPLE.COM"]),
        list_leak(
            "json-list-then-a-second-object",
            json_reply(format!("{}{}", list_msg("1").replace(LIST_TOOLS, "[]"), list_ev)),
        ),
        list_leak(
            "json-list-escaped-hidden-name",
            json_reply(list_ev.replace("\"admin_reset\"", r#""adm\u0069n_reset""#)),
        ),
        list_leak(
            "json-list-escaped-tools-key",
            json_reply(list_ev.replace("\"tools\"", r#""t\u006fols""#)),
        ),
        list_leak(
            "json-list-escaped-name-key",
            json_reply(list_ev.replace(r#"{"name":"admin_reset""#, r#"{"n\u0061me":"admin_reset""#)),
        ),
        list_leak(
            "json-list-pretty-printed",
            json_reply(serde_json::to_string_pretty(&serde_json::from_str::<Value>(&list_ev).unwrap()).unwrap()),
        ),
        list_leak(
            "json-list-http-500",
            json_reply(list_ev.clone()).status(500),
        ),
        case("attacker", "sse-result-pii-split-across-chunks", post(echo_call("7")), Expect::Any)
            .reply(
                sse_reply(&[result_msg("7", &format!("mail {EMAIL}"))])
                    .chunked(3, StdDuration::from_millis(1)),
            )
            .down(&[EMAIL]),
        case("attacker", "json-result-pii-with-utf8-bom", post(echo_call("7")), Expect::Any)
            .reply(json_reply(with_bom(&result_msg("7", &format!("mail {EMAIL}")))))
            .down(&[EMAIL]),
        case("attacker", "json-result-pii-utf16", post(echo_call("7")), Expect::Any)
            .reply(RawReply::new(
                "application/json; charset=utf-16",
                utf16le(&result_msg("7", &format!("mail {EMAIL}"))),
            ))
            .down(&[EMAIL]),
        case("attacker", "text-plain-error-http-500-with-pii", post(echo_call("7")), Expect::Any)
            .reply(RawReply::new("text/plain", format!("upstream failed for {EMAIL}")).status(500))
            .down(&[EMAIL]),
    ]
}

/// Every case of the full-chain table (classes 1-9 and the attacker ideas).
fn chain_cases() -> Vec<Case> {
    let mut cases = methods_cases();
    cases.extend(repeated_header_cases());
    cases.extend(encoded_cases());
    cases.extend(failure_mode_closed_cases());
    cases.extend(dup_key_cases());
    cases.extend(id_cases());
    cases.extend(get_stream_cases());
    cases.extend(key_cases());
    cases.extend(card_cases());
    cases.extend(attacker_cases());
    cases
}

/// The shipped gateway: `envoy/mcp-gateway.yaml`, every policy in the `mcp_gateway` module.
#[test]
fn adversarial_gateway_module() {
    gateway("mcp-gateway.yaml", &[]).run("gateway module (envoy/mcp-gateway.yaml)", chain_cases());
}

/// The same table through the four standalone filters (`envoy/mcp-four-filters.yaml`).
#[test]
fn adversarial_four_filters() {
    gateway("mcp-four-filters.yaml", &[])
        .run("four filters (envoy/mcp-four-filters.yaml)", chain_cases());
}

// ------------------------------------------------------------------------------------------
// Group B: the chain with mcp_telemetry and mcp_pii under failure_mode open
// ------------------------------------------------------------------------------------------

#[test]
fn adversarial_failure_mode_open() {
    // The four filters: in the module `failure_mode` is common to every policy (and refused
    // with a tools or scopes section, see the config group).
    let g = gateway(
        "mcp-four-filters.yaml",
        &[
            (
                "mcp_telemetry",
                r#"{"route_headers": true, "max_tool_labels": 50, "failure_mode": "open", "max_body_bytes": 1024}"#,
            ),
            (
                "mcp_pii",
                r#"{"failure_mode": "open", "max_body_bytes": 2048}"#,
            ),
        ],
    );
    let hidden_4k = call_body(
        "7",
        r#""admin_reset""#,
        &format!(r#"{{"pad":"{}"}}"#, pad(4000)),
    );
    let hidden_big = call_body(
        "7",
        r#""admin_reset""#,
        &format!(r#"{{"pad":"{}"}}"#, pad(1_100_000)),
    );
    let pii_4k = call_body(
        "7",
        r#""echo""#,
        &format!(r#"{{"text":"{EMAIL}","pad":"{}"}}"#, pad(4000)),
    );
    let pii_result = result_msg("7", &format!("contact {EMAIL}"));
    let cases = vec![
        case(
            "failure-mode",
            "open-telemetry-does-not-open-tools-hidden-call-4k",
            post(hidden_4k),
            Expect::Code(-32602),
        )
        .up(&[HIDDEN])
        .check(id_7_nothing_upstream),
        case(
            "failure-mode",
            "open-telemetry-does-not-open-tools-hidden-call-past-1mib",
            post(hidden_big),
            Expect::Status(413),
        )
        .up(&[HIDDEN])
        .check(nothing_upstream),
        // The contract's one deliberate pass: pii under `open` forwards what it cannot read,
        // and counts it.
        case(
            "failure-mode",
            "open-pii-oversized-request-passes-and-is-counted",
            post(pii_4k),
            Expect::Result,
        )
        .check(pii_open_pass_counted),
        case(
            "failure-mode",
            "open-pii-gzip-result-passes-and-is-counted",
            post(echo_call("7")),
            Expect::Any,
        )
        .reply(json_reply(gzip(pii_result.as_bytes())).header("content-encoding", "gzip"))
        .check(pii_open_pass_counted),
        case(
            "failure-mode",
            "open-pii-does-not-open-tools-gzip-list",
            post(list_body("1")),
            Expect::Rpc(502, -32603),
        )
        .reply(json_reply(gzip(list_msg("1").as_bytes())).header("content-encoding", "gzip"))
        .down(&[HIDDEN]),
        case(
            "failure-mode",
            "open-pii-small-result-still-scrubbed",
            post(echo_call("7")),
            Expect::Result,
        )
        .reply(json_reply(pii_result.clone()))
        .down(&[EMAIL])
        .check(redacted),
        case(
            "failure-mode",
            "open-pii-still-refuses-ambiguous-response",
            post(echo_call("7")),
            Expect::Any,
        )
        .reply(json_reply(result_raw(
            "7",
            &format!(r#"{{"content":[{{"type":"text","text":"ok"}}],"content":[{{"type":"text","text":"{EMAIL}"}}]}}"#),
        )))
        .down(&[EMAIL]),
    ];
    g.run("failure_mode open (telemetry, pii)", cases);
}

// ------------------------------------------------------------------------------------------
// Group C: mcp_scopes verifying tokens, hiding tools
// ------------------------------------------------------------------------------------------

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Tokens {
    key: ES256KeyPair,
}

impl Tokens {
    fn claims(scope: Option<&str>, scp: Option<Value>) -> JWTClaims<Extra> {
        Claims::with_custom_claims(
            Extra {
                scope: scope.map(str::to_string),
                scp,
                ..Extra::default()
            },
            Duration::from_hours(1),
        )
        .with_issuer(ISSUER)
        .with_audience(RESOURCE)
        .with_subject("mallory")
    }

    fn sign(&self, c: JWTClaims<Extra>) -> String {
        self.key.sign(c).unwrap()
    }

    fn scope(&self, scope: &str) -> String {
        self.sign(Self::claims(Some(scope), None))
    }

    fn bearer(&self, scope: &str) -> String {
        format!("Bearer {}", self.scope(scope))
    }
}

fn with_token(r: Req, bearer: &str) -> Req {
    r.h("authorization", bearer)
}

#[test]
fn adversarial_scopes() {
    let tokens = Tokens {
        key: ES256KeyPair::generate().with_key_id("ec-adv"),
    };
    let jwks = jwks_of(&[tokens.key.public_key().to_jwk()]);
    let server = test_server();
    let cfg = EnvoyConfig::load("mcp_scopes.yaml")
        .unwrap()
        .upstream("mcp_upstream", server.addr())
        .upstream("jwks", server.addr())
        .plugin_config(
            "mcp_scopes",
            &scopes_config(
                json!({ "inline": jwks }),
                json!({"hide_unauthorized_tools": true}),
            ),
        );
    let good = tokens.bearer("mcp:tools");
    let g = Gateway {
        envoy: Envoy::start(cfg).unwrap(),
        server,
        allowed_headers: vec![("authorization".into(), good.clone())],
    };
    let delete = || call_body("7", r#""delete_repo""#, r#"{"repo":"prod"}"#);
    let forbidden = |name, bearer: String, body: String| {
        case(
            "scopes",
            name,
            with_token(post(body), &bearer),
            Expect::Status(403),
        )
        .up(&["tools/call"])
        .check(insufficient_scope)
    };
    let bad_token = |name, bearer: String| {
        case(
            "scopes",
            name,
            with_token(post(echo_call("7")), &bearer),
            Expect::Status(401),
        )
        .up(&["tools/call"])
        .check(www_invalid_token)
    };
    let iat = |offset: u64| {
        let mut c = Tokens::claims(Some("mcp:tools"), None);
        c.issued_at = Some(UnixTimeStamp::from_secs(now() + offset));
        format!("Bearer {}", tokens.sign(c))
    };
    let hide = |name, reply: RawReply| {
        case(
            "scopes",
            name,
            with_token(post(list_body("1")), &good),
            Expect::Any,
        )
        .reply(reply)
        .down(&["delete_repo"])
    };
    // Only the metadata paths are public: a tool call aimed at them (or at a path a server might
    // resolve differently) without a token must not reach the upstream.
    let meta = |name, path: &str| {
        case("scopes", name, post(delete()).path(path), Expect::Refused)
            .up(&["tools/call"])
            .check(nothing_upstream)
    };
    let list_with_delete = |id: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"result":{{"tools":[{{"name":"echo","inputSchema":{{"type":"object"}}}},{{"name":"delete_repo","inputSchema":{{"type":"object"}}}}]}}}}"#
        )
    };
    let cases = vec![
        forbidden(
            "scope-tab-separated-delete",
            tokens.bearer("mcp:tools\trepo:admin"),
            delete(),
        ),
        forbidden(
            "scope-tab-separated-echo",
            tokens.bearer("mcp:tools\trepo:admin"),
            echo_call("7"),
        ),
        forbidden(
            "scope-newline-separated-delete",
            tokens.bearer("mcp:tools\nrepo:admin"),
            delete(),
        ),
        forbidden(
            "scope-cr-separated-delete",
            tokens.bearer("mcp:tools\rrepo:admin"),
            delete(),
        ),
        forbidden(
            "scope-nbsp-separated-delete",
            tokens.bearer("mcp:tools\u{a0}repo:admin"),
            delete(),
        ),
        forbidden(
            "scope-vertical-tab-separated-delete",
            tokens.bearer("mcp:tools\u{b}repo:admin"),
            delete(),
        ),
        forbidden(
            "scope-comma-separated-delete",
            tokens.bearer("mcp:tools,repo:admin"),
            delete(),
        ),
        forbidden(
            "scope-single-token-with-trailing-tab-echo",
            tokens.bearer("mcp:tools\t"),
            echo_call("7"),
        ),
        forbidden(
            "scp-string-tab-separated-delete",
            format!(
                "Bearer {}",
                tokens.sign(Tokens::claims(None, Some(json!("mcp:tools\trepo:admin"))))
            ),
            delete(),
        ),
        forbidden(
            "scp-array-element-with-tab-delete",
            format!(
                "Bearer {}",
                tokens.sign(Tokens::claims(None, Some(json!(["mcp:tools\trepo:admin"]))))
            ),
            delete(),
        ),
        case(
            "scopes",
            "scope-tab-separated-list-hides-delete",
            with_token(
                post(list_body("1")),
                &tokens.bearer("mcp:tools\trepo:admin"),
            ),
            Expect::Any,
        )
        .reply(json_reply(list_with_delete("1")))
        .down(&["delete_repo"]),
        case(
            "scopes",
            "scope-space-separated-control-allows-delete",
            with_token(post(delete()), &tokens.bearer("mcp:tools repo:admin")),
            Expect::Result,
        ),
        bad_token("iat-one-hour-in-the-future", iat(3600)),
        bad_token("iat-beyond-clock-skew", iat(120)),
        case(
            "scopes",
            "iat-within-clock-skew-control",
            with_token(post(echo_call("7")), &iat(5)),
            Expect::Result,
        ),
        case(
            "scopes",
            "two-authorization-headers",
            with_token(
                with_token(post(delete()), &good),
                &tokens.bearer("mcp:tools repo:admin"),
            ),
            Expect::Rpc(400, -32600),
        )
        .up(&["delete_repo"])
        .check(repeated_7),
        case(
            "scopes",
            "method-case-Tools-Call-delete",
            with_token(post(delete().replace("tools/call", "Tools/Call")), &good),
            Expect::Any,
        )
        .down(&["Deleted repository"]),
        forbidden(
            "escaped-name-delete",
            good.clone(),
            call_body("7", r#""delete\u005frepo""#, "{}"),
        ),
        meta(
            "metadata-path-post-without-token",
            "/.well-known/oauth-protected-resource/mcp",
        ),
        meta(
            "metadata-path-root-post-without-token",
            "/.well-known/oauth-protected-resource",
        ),
        meta(
            "metadata-path-dot-dot-without-token",
            "/.well-known/oauth-protected-resource/../../mcp",
        ),
        meta(
            "metadata-path-encoded-dot-dot-without-token",
            "/.well-known/oauth-protected-resource/mcp%2F..%2F..%2F..%2Fmcp",
        ),
        meta(
            "metadata-path-with-query-without-token",
            "/.well-known/oauth-protected-resource/mcp?/mcp",
        ),
        meta(
            "metadata-path-in-the-query-without-token",
            "/mcp?/.well-known/oauth-protected-resource",
        ),
        meta(
            "metadata-path-suffix-without-token",
            "/.well-known/oauth-protected-resourcex",
        ),
        hide(
            "hide-list-json-gzip",
            json_reply(gzip(list_with_delete("1").as_bytes())).header("content-encoding", "gzip"),
        ),
        hide(
            "hide-list-sse-gzip",
            gz(sse_reply(&[list_with_delete("1")])),
        ),
        hide(
            "hide-list-json-seq",
            RawReply::new("application/json-seq", list_with_delete("1")),
        ),
        hide(
            "hide-list-tools-twice",
            json_reply(
                r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[],"tools":[{"name":"delete_repo","inputSchema":{}}]}}"#,
            ),
        ),
        hide("hide-list-id-string", json_reply(list_with_delete("\"1\""))),
        hide(
            "hide-list-sse-cr-only",
            RawReply::new(
                "text/event-stream",
                format!("data: {}\r\r", list_with_delete("1")),
            ),
        ),
        case(
            "scopes",
            "hide-list-answering-ping",
            with_token(post(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#), &good),
            Expect::Any,
        )
        .reply(json_reply(list_with_delete("1")))
        .down(&["delete_repo"]),
    ];
    g.run("mcp_scopes (verifying, hide_unauthorized_tools)", cases);
}

// ------------------------------------------------------------------------------------------
// Group D: failure_mode open is refused for the policy filters (config, no traffic)
// ------------------------------------------------------------------------------------------

#[test]
fn adversarial_failure_mode_open_is_refused_for_policy_filters() {
    let key = ES256KeyPair::generate().with_key_id("ec-adv");
    let jwks = jwks_of(&[key.public_key().to_jwk()]);
    let full_scopes = scopes_config(json!({ "inline": jwks }), json!({"failure_mode": "open"}));
    // (name, config file, filter, configuration, whether Envoy must refuse it)
    let cases: Vec<(&str, &str, &str, String, bool)> = vec![
        (
            "tools-open-alone",
            "mcp_tools.yaml",
            "mcp_tools",
            r#"{"failure_mode": "open"}"#.into(),
            true,
        ),
        (
            "tools-open-with-rules",
            "mcp_tools.yaml",
            "mcp_tools",
            r#"{"deny": ["admin_*"], "failure_mode": "open"}"#.into(),
            true,
        ),
        (
            "tools-open-behind-an-escaped-key",
            "mcp_tools.yaml",
            "mcp_tools",
            r#"{"deny": ["admin_*"], "failure\u005fmode": "open"}"#.into(),
            true,
        ),
        (
            "tools-open-as-a-duplicate-key",
            "mcp_tools.yaml",
            "mcp_tools",
            r#"{"failure_mode": "closed", "failure_mode": "open"}"#.into(),
            true,
        ),
        (
            "scopes-open-empty",
            "mcp_scopes.yaml",
            "mcp_scopes",
            r#"{"failure_mode": "open"}"#.into(),
            true,
        ),
        (
            "scopes-open-verifying",
            "mcp_scopes.yaml",
            "mcp_scopes",
            full_scopes,
            true,
        ),
        (
            "pii-open-control-accepted",
            "mcp_pii.yaml",
            "mcp_pii",
            r#"{"failure_mode": "open"}"#.into(),
            false,
        ),
        (
            "telemetry-open-control-accepted",
            "mcp_telemetry.yaml",
            "mcp_telemetry",
            r#"{"failure_mode": "open"}"#.into(),
            false,
        ),
        (
            "gateway-module-open-with-a-tools-section",
            "mcp-gateway.yaml",
            "mcp_gateway",
            r#"{"failure_mode": "open", "tools": {"deny": ["admin_*"]}, "pii": {}}"#.into(),
            true,
        ),
        (
            "gateway-module-open-with-a-scopes-section",
            "mcp-gateway.yaml",
            "mcp_gateway",
            r#"{"failure_mode": "open", "scopes": {}, "telemetry": {}}"#.into(),
            true,
        ),
        (
            "gateway-module-open-behind-an-escaped-key",
            "mcp-gateway.yaml",
            "mcp_gateway",
            r#"{"failure\u005fmode": "open", "tools": {}}"#.into(),
            true,
        ),
        (
            "gateway-module-open-as-a-duplicate-key",
            "mcp-gateway.yaml",
            "mcp_gateway",
            r#"{"failure_mode": "closed", "tools": {}, "failure_mode": "open"}"#.into(),
            true,
        ),
        (
            "gateway-module-open-inside-the-tools-section",
            "mcp-gateway.yaml",
            "mcp_gateway",
            r#"{"tools": {"failure_mode": "open"}}"#.into(),
            true,
        ),
        (
            "gateway-module-open-pii-and-telemetry-only-accepted",
            "mcp-gateway.yaml",
            "mcp_gateway",
            r#"{"failure_mode": "open", "pii": {}, "telemetry": {}}"#.into(),
            false,
        ),
    ];
    let mut failures = Vec::new();
    for (name, file, filter, json, refuse) in &cases {
        let yaml = EnvoyConfig::load(file)
            .unwrap()
            .plugin_config(filter, json)
            .render(mcp_integration::free_port(), mcp_integration::free_port())
            .unwrap();
        let outcome = validate_config(&yaml);
        let result = match (outcome, refuse) {
            (Err(e), true) => {
                let e = format!("{e:#}");
                if e.contains("failure_mode") || e.contains("duplicate") {
                    Ok(())
                } else {
                    Err(format!(
                        "refused, but the error does not name failure_mode: {e}"
                    ))
                }
            }
            (Ok(()), true) => Err("Envoy accepted the plugin".to_string()),
            (Ok(()), false) => Ok(()),
            (Err(e), false) => Err(format!("Envoy refused a valid configuration: {e:#}")),
        };
        match result {
            Ok(()) => eprintln!("ok   [failure-mode] {name}"),
            Err(e) => {
                eprintln!("FAIL [failure-mode] {name}: {e}");
                failures.push(format!("[failure-mode] {name}: {e}"));
            }
        }
    }
    // Their schemas offer `closed` only.
    for filter in ["mcp_tools", "mcp_scopes"] {
        let path = mcp_integration::paths::repo_root()
            .join("schemas")
            .join(format!("{filter}.schema.json"));
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let prop = &schema["properties"]["failure_mode"];
        let closed_only = prop["const"] == "closed" || prop["enum"] == json!(["closed"]);
        let name = format!("{filter}-schema-allows-closed-only");
        if closed_only {
            eprintln!("ok   [failure-mode] {name}");
        } else {
            eprintln!("FAIL [failure-mode] {name}: {prop}");
            failures.push(format!("[failure-mode] {name}: failure_mode is {prop}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len() + 2,
        failures.join("\n")
    );
}

// ------------------------------------------------------------------------------------------
// Group E: mcp_tools alone, batches examined element by element, prompts hidden
// ------------------------------------------------------------------------------------------

#[test]
fn adversarial_tools_batches_and_prompts() {
    let server = test_server();
    let cfg = EnvoyConfig::load("mcp_tools.yaml")
        .unwrap()
        .upstream("mcp_upstream", server.addr())
        .plugin_config(
            "mcp_tools",
            r#"{"deny": ["admin_*"], "prompts": {"deny": ["greet"]}, "batch": "each"}"#,
        );
    let g = Gateway {
        envoy: Envoy::start(enable_upstream_trailers(cfg)).unwrap(),
        server,
        allowed_headers: Vec::new(),
    };
    let refused = |name, body: &str, code: i64| {
        case("ids", name, post(body.to_string()), Expect::Code(code))
            .up(&[HIDDEN])
            .check(nothing_upstream)
    };
    let prompts = r#"{"jsonrpc":"2.0","id":1,"result":{"prompts":[{"name":"hello","description":"Says hello"},{"name":"greet","description":"Greets someone by name"}]}}"#;
    let leak = |name, req: Req, reply: RawReply, secret: &str| {
        case("ids", name, req, Expect::Any)
            .reply(reply)
            .down(&[secret])
    };
    // The contract first said "refused (-32600)"; the lead then made mcp_tools filter lists
    // inside batch responses instead. Either is safe; a leak is not.
    let listed = |name, body: &str, secret: &str| {
        case("ids", name, post(body.to_string()), Expect::Any)
            .up(&[HIDDEN])
            .down(&[secret])
            .check(refused_or_listed)
    };
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let cases = vec![
        leak(
            "list-for-another-pending-request-on-a-ping-stream",
            post(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#),
            sse_reply(&[
                list_msg("1"),
                r#"{"jsonrpc":"2.0","id":2,"result":{}}"#.to_string(),
            ]),
            HIDDEN,
        ),
        leak(
            "list-json-with-trailers",
            post(list_body("1")).h("te", "trailers"),
            json_reply(list_msg("1"))
                .chunked(40, StdDuration::ZERO)
                .trailer("x-checksum", "abc"),
            HIDDEN,
        )
        .check(te_trailers_upstream),
        leak(
            "list-json-gzip-with-trailers",
            post(list_body("1")).h("te", "trailers"),
            gz(json_reply(list_msg("1"))).trailer("x-checksum", "abc"),
            HIDDEN,
        )
        .check(te_trailers_upstream),
        listed(
            "batch-each-tools-list-in-a-batch",
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"ping"}]"#,
            HIDDEN,
        ),
        listed(
            "batch-each-tools-list-alone-in-a-batch",
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]"#,
            HIDDEN,
        ),
        listed(
            "batch-each-escaped-tools-list-in-a-batch",
            r#"[{"jsonrpc":"2.0","id":2,"method":"ping"},{"jsonrpc":"2.0","id":1,"method":"tools\/list"}]"#,
            HIDDEN,
        ),
        listed(
            "batch-each-prompts-list-in-a-batch",
            r#"[{"jsonrpc":"2.0","id":2,"method":"ping"},{"jsonrpc":"2.0","id":1,"method":"prompts/list"}]"#,
            "greet",
        ),
        refused(
            "batch-each-hidden-call-in-a-batch",
            r#"[{"jsonrpc":"2.0","id":2,"method":"ping"},{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_reset"}}]"#,
            -32602,
        ),
        refused(
            "batch-each-hidden-prompt-in-a-batch",
            r#"[{"jsonrpc":"2.0","id":2,"method":"ping"},{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"greet"}}]"#,
            -32602,
        ),
        case(
            "repeated-headers",
            "two-authorization-headers-tools-alone",
            post(echo_call("7"))
                .h("authorization", "Bearer first")
                .h("authorization", "Bearer second"),
            Expect::Rpc(400, -32600),
        )
        .up(&["Bearer second"])
        .check(repeated_7),
        case(
            "ids",
            "batch-each-control-ping-and-echo-pass",
            post(format!(r#"[{ping},{}]"#, echo_call("2"))),
            Expect::Result,
        )
        .check(echo_reached),
        leak(
            "response-batch-array-with-a-list",
            post(list_body("1")),
            json_reply(format!("[{}]", list_msg("1"))),
            HIDDEN,
        ),
        leak(
            "response-batch-list-after-a-ping-result",
            post(format!(r#"[{ping},{}]"#, echo_call("2"))),
            json_reply(format!(
                r#"[{{"jsonrpc":"2.0","id":1,"result":{{}}}},{}]"#,
                list_msg("2")
            )),
            HIDDEN,
        ),
        leak(
            "response-list-id-1.0",
            post(list_body("1")),
            json_reply(list_msg("1.0")),
            HIDDEN,
        ),
        leak(
            "response-list-answering-ping",
            post(ping),
            json_reply(list_msg("1")),
            HIDDEN,
        ),
        leak(
            "response-prompts-answering-ping",
            post(ping),
            json_reply(prompts),
            "greet",
        ),
        leak(
            "response-prompts-batch-array",
            post(r#"{"jsonrpc":"2.0","id":1,"method":"prompts/list"}"#),
            json_reply(format!("[{prompts}]")),
            "greet",
        ),
        leak(
            "response-prompts-sse-id-string",
            post(r#"{"jsonrpc":"2.0","id":1,"method":"prompts/list"}"#),
            sse_reply(&[prompts.replace(r#""id":1"#, r#""id":"1""#)]),
            "greet",
        ),
    ];
    g.run("mcp_tools alone (batch: each, prompts)", cases);
}

// ------------------------------------------------------------------------------------------
// Group F: mcp_pii alone, upstream responses that end in trailers
// ------------------------------------------------------------------------------------------

#[test]
fn adversarial_pii_responses_with_trailers() {
    let server = test_server();
    let cfg = EnvoyConfig::load("mcp_pii.yaml")
        .unwrap()
        .upstream("mcp_upstream", server.addr());
    let g = Gateway {
        envoy: Envoy::start(enable_upstream_trailers(cfg)).unwrap(),
        server,
        allowed_headers: Vec::new(),
    };
    let t = |name, reply: RawReply| {
        case(
            "trailers",
            name,
            post(echo_call("7")).h("te", "trailers"),
            Expect::Any,
        )
        .reply(reply.trailer("x-checksum", "abc"))
        .down(&[EMAIL])
        .check(te_trailers_upstream)
    };
    let pii = || result_msg("7", &format!("mail {EMAIL}"));
    let cases = vec![
        t(
            "result-json-with-trailers",
            json_reply(pii()).chunked(16, StdDuration::ZERO),
        ),
        t(
            "result-json-id-7.0-with-trailers",
            json_reply(result_msg("7.0", &format!("mail {EMAIL}"))),
        ),
        t(
            "result-json-duplicate-keys-with-trailers",
            json_reply(result_raw(
                "7",
                &format!(r#"{{"content":[],"content":[{{"type":"text","text":"{EMAIL}"}}]}}"#),
            )),
        ),
        t("result-json-gzip-with-trailers", gz(json_reply(pii()))),
        t(
            "result-sse-with-trailers",
            sse_reply(&[pii()]).chunked(9, StdDuration::ZERO),
        ),
        t(
            "result-text-plain-with-trailers",
            RawReply::new("text/plain", pii()),
        ),
    ];
    g.run("mcp_pii alone (responses ending in trailers)", cases);
}
