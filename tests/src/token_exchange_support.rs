//! A strict OAuth 2.0 Token Exchange (RFC 8693) token endpoint for the `upstream_token` tests.
//!
//! It checks what the RFC and RFC 6749 require of a client: `POST`, the form media type,
//! `client_secret_basic` (id and secret form-urlencoded, then base64), the token-exchange grant
//! type, the subject and requested token types, each parameter at most once. It records every
//! request and issues tokens that name the subject (`sub` of the JWT it was given), the
//! audience and a sequence number, so tests can tell whose token the upstream received and
//! whether it came from a new exchange. Outcomes can be forced per subject or per audience
//! (`invalid_grant`, `invalid_target`…), or for every request (5xx, garbage, delays).

use anyhow::Result;
use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// The token endpoint's path.
pub const TOKEN_PATH: &str = "/oauth2/token";
/// The gateway's client id the endpoint accepts.
pub const CLIENT_ID: &str = "mcp gateway";
/// The gateway's client secret the endpoint accepts (characters that need form-encoding).
pub const CLIENT_SECRET: &str = "s3cr:t/+&é";

/// One token request as the endpoint received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeRequest {
    /// The form parameters, decoded, in order.
    pub form: Vec<(String, String)>,
    /// `sub` of the subject token (empty if it is not a JWT).
    pub sub: String,
    /// Whether the request passed every check (client auth, grant, token types).
    pub valid: bool,
    /// What was wrong, when not valid.
    pub problem: String,
}

impl ExchangeRequest {
    /// The value of form parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the endpoint answers instead of a token.
#[derive(Debug, Clone)]
pub enum Forced {
    /// An OAuth error response (`400 {"error": code}`).
    Error(&'static str),
    /// This status and body.
    Raw(u16, String),
    /// Wait this long, then issue as usual.
    Delay(Duration),
}

#[derive(Default)]
struct State {
    requests: Vec<ExchangeRequest>,
    by_sub: HashMap<String, Forced>,
    by_audience: HashMap<String, Forced>,
    all: Option<Forced>,
    /// `expires_in` of issued tokens (`None`: omitted).
    expires_in: Option<u64>,
    issued: usize,
}

/// The token endpoint.
pub struct TokenEndpoint {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
}

impl std::fmt::Debug for TokenEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEndpoint")
            .field("addr", &self.addr)
            .finish()
    }
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space, `%XX` a byte).
pub fn form_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            _ => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The `Authorization` value RFC 6749 §2.3.1 prescribes for the test client.
pub fn expected_basic() -> String {
    let pair = format!("{}:{}", form_encode(CLIENT_ID), form_encode(CLIENT_SECRET));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

fn jwt_sub(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap_or("");
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.get("sub").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default()
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Checks one request; `Err` is what makes it invalid.
fn check(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    form: &[(String, String)],
) -> Result<(), String> {
    let header = |n: &str| {
        let all: Vec<&str> = headers
            .iter()
            .filter(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .collect();
        all
    };
    if method != "POST" || path != TOKEN_PATH {
        return Err(format!("{method} {path}"));
    }
    if header("content-type") != ["application/x-www-form-urlencoded"] {
        return Err("content-type".into());
    }
    if header("authorization") != [expected_basic().as_str()] {
        return Err("invalid_client".into());
    }
    for (i, (k, _)) in form.iter().enumerate() {
        if form.iter().skip(i + 1).any(|(k2, _)| k2 == k) {
            return Err(format!("repeated parameter {k}"));
        }
    }
    let param = |n: &str| form.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    if param("grant_type") != Some("urn:ietf:params:oauth:grant-type:token-exchange") {
        return Err("grant_type".into());
    }
    if param("subject_token").is_none_or(str::is_empty) {
        return Err("subject_token".into());
    }
    if param("subject_token_type") != Some(ACCESS_TOKEN) {
        return Err("subject_token_type".into());
    }
    if param("requested_token_type").is_some_and(|t| t != ACCESS_TOKEN) {
        return Err("requested_token_type".into());
    }
    if param("actor_token").is_some() {
        return Err("actor_token not expected".into());
    }
    Ok(())
}

fn respond(s: &mut TcpStream, status: u16, body: &str) {
    let resp = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncache-control: no-store\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(resp.as_bytes());
}

fn serve(mut s: TcpStream, state: &Mutex<State>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    };
    let head = String::from_utf8_lossy(buf.get(..head_end).unwrap_or_default()).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    }
    let body = String::from_utf8_lossy(buf.get(head_end..).unwrap_or_default()).into_owned();
    let form: Vec<(String, String)> = body
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                form_decode(k).unwrap_or_default(),
                form_decode(v).unwrap_or_else(|| "<undecodable>".into()),
            )
        })
        .collect();
    let verdict = check(&method, &path, &headers, &form);
    let param = |n: &str| form.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let sub = jwt_sub(&param("subject_token").unwrap_or_default());
    let audience = param("audience").unwrap_or_default();
    let (forced, expires_in, n) = {
        let Ok(mut st) = state.lock() else {
            return respond(&mut s, 500, "{}");
        };
        st.requests.push(ExchangeRequest {
            form: form.clone(),
            sub: sub.clone(),
            valid: verdict.is_ok(),
            problem: verdict.clone().err().unwrap_or_default(),
        });
        let forced = st
            .all
            .clone()
            .or_else(|| st.by_sub.get(&sub).cloned())
            .or_else(|| st.by_audience.get(&audience).cloned());
        st.issued += 1;
        (forced, st.expires_in, st.issued)
    };
    if let Err(problem) = verdict {
        let code = if problem == "invalid_client" {
            "invalid_client"
        } else {
            "invalid_request"
        };
        let status = if code == "invalid_client" { 401 } else { 400 };
        return respond(&mut s, status, &json!({"error": code}).to_string());
    }
    match forced {
        Some(Forced::Error(code)) => {
            return respond(&mut s, 400, &json!({"error": code}).to_string())
        }
        Some(Forced::Raw(status, body)) => return respond(&mut s, status, &body),
        Some(Forced::Delay(d)) => thread::sleep(d),
        None => {}
    }
    let token = format!("up.{}.{}.{n}", slug(&sub), slug(&audience));
    let mut answer = json!({
        "access_token": token,
        "issued_token_type": ACCESS_TOKEN,
        "token_type": "Bearer",
    });
    if let (Some(e), Some(obj)) = (expires_in, answer.as_object_mut()) {
        obj.insert("expires_in".into(), e.into());
    }
    if let (Some(sc), Some(obj)) = (param("scope"), answer.as_object_mut()) {
        obj.insert("scope".into(), sc.into());
    }
    respond(&mut s, 200, &answer.to_string());
}

impl TokenEndpoint {
    /// Starts an endpoint issuing tokens valid for 300 s.
    pub fn start() -> Result<TokenEndpoint> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            expires_in: Some(300),
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let (st, sp, conns) = (state.clone(), stop.clone(), connections.clone());
        thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        conns.fetch_add(1, Ordering::Relaxed);
                        let st = st.clone();
                        thread::spawn(move || serve(s, &st));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(TokenEndpoint {
            addr,
            state,
            stop,
            connections,
        })
    }

    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> Option<R> {
        self.state.lock().ok().map(|mut g| f(&mut g))
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<ExchangeRequest> {
        self.with(|s| s.requests.clone()).unwrap_or_default()
    }

    /// Sets `expires_in` of issued tokens (`None`: omitted).
    pub fn set_expires_in(&self, e: Option<u64>) {
        self.with(|s| s.expires_in = e);
    }

    /// Forces the answer for subject `sub`.
    pub fn force_sub(&self, sub: &str, f: Forced) {
        self.with(|s| s.by_sub.insert(sub.to_string(), f));
    }

    /// Forces the answer for `audience`.
    pub fn force_audience(&self, audience: &str, f: Forced) {
        self.with(|s| s.by_audience.insert(audience.to_string(), f));
    }

    /// Forces the answer to every request (`None`: back to normal).
    pub fn force_all(&self, f: Option<Forced>) {
        self.with(|s| s.all = f);
    }
}

impl Drop for TokenEndpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.connections.load(Ordering::Relaxed);
    }
}

/// The `upstream_token` section the tests start from: cluster `idp`, the test client, default
/// audience `https://api.test` with scope `repo:read`, `deploy_*` tools for
/// `https://deploy.test` with scope `deploy`.
pub fn upstream_token(extra: Value) -> Value {
    let mut v = json!({
        "token_exchange": {
            "cluster": "idp", "path": TOKEN_PATH, "authority": "idp.test",
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "audience": "https://api.test", "scope": "repo:read", "timeout_ms": 1000
        },
        "tools": [{"tools": ["deploy_*"], "audience": "https://deploy.test", "scope": "deploy"}]
    });
    if let (Some(obj), Some(more)) = (v.as_object_mut(), extra.as_object()) {
        for (k, val) in more {
            obj.insert(k.clone(), val.clone());
        }
    }
    v
}
