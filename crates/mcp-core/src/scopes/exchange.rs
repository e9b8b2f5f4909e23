//! Per-user upstream credentials: OAuth 2.0 Token Exchange (RFC 8693), without proxy-wasm.
//!
//! After a caller's token is verified and its call authorized, `mcp_scopes` can trade that token
//! at the authorization server's token endpoint for a token issued for the upstream API (its
//! `audience`, a `scope`), and forward only the issued token: the caller's token never reaches
//! the upstream (MCP forbids token passthrough).
//!
//! - [`UpstreamTokenConfig`]: the `upstream_token` keys, compiled into an [`Exchange`];
//! - [`Exchange::target`]: the audience and scope of a call (first `tools` entry whose glob
//!   matches the `tools/call` name, else the defaults);
//! - [`request_body`] / [`basic_authorization`]: the token request (form body, client auth);
//! - [`classify`]: the token endpoint's answer, as an issued token or a [`Failure`];
//! - [`Cache`]: issued tokens per (caller token hash, audience, scope) until they expire, with
//!   the caller's clock, bounded.
//!
//! Nothing here ever formats a token into an error or a `Debug` line.

use crate::config::{patterns_at, ConfigError};
use crate::glob::PatternSet;
use crate::scopes::config::is_scope_token;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// RFC 8693 §2.1 `grant_type`.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3 token type of an OAuth 2.0 access token.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 §3 token type of a JWT (an access token in JWT form is also accepted as issued).
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// Default `upstream_token.expiry_margin_seconds`.
pub const DEFAULT_EXPIRY_MARGIN_SECONDS: u64 = 30;
/// Largest accepted `upstream_token.expiry_margin_seconds`.
pub const MAX_EXPIRY_MARGIN_SECONDS: u64 = 3600;
/// Default `upstream_token.cache_entries`.
pub const DEFAULT_CACHE_ENTRIES: usize = 1024;
/// Largest accepted `upstream_token.cache_entries`.
pub const MAX_CACHE_ENTRIES: usize = 100_000;
/// Default `upstream_token.token_exchange.timeout_ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 2000;
/// Largest issued token forwarded (bytes); a longer one is treated as unparseable.
pub const MAX_ISSUED_TOKEN_BYTES: usize = 16 * 1024;

/// `upstream_token`: what the upstream receives instead of the caller's token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct UpstreamTokenConfig {
    /// Exchange the caller's token at this token endpoint (RFC 8693); required.
    pub token_exchange: Option<TokenExchangeConfig>,
    /// Per-tool audience and scope (first entry whose glob matches the `tools/call` name).
    #[serde(default)]
    pub tools: Vec<ToolTargetConfig>,
    /// Seconds before `expires_in` runs out at which a cached issued token stops being used.
    #[cfg_attr(feature = "schema", schemars(range(max = MAX_EXPIRY_MARGIN_SECONDS)))]
    pub expiry_margin_seconds: Option<u64>,
    /// Issued tokens cached per worker (0 disables the cache).
    #[cfg_attr(feature = "schema", schemars(range(max = MAX_CACHE_ENTRIES)))]
    pub cache_entries: Option<usize>,
}

/// `upstream_token.token_exchange`: the token endpoint and the gateway's client credentials.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenExchangeConfig {
    /// Envoy cluster of the authorization server.
    pub cluster: Option<String>,
    /// Path of the token endpoint (`/oauth2/token`).
    pub path: Option<String>,
    /// `:authority` of the token request (default: the cluster name).
    pub authority: Option<String>,
    /// The gateway's OAuth client id (client_secret_basic).
    pub client_id: Option<String>,
    /// The gateway's OAuth client secret (client_secret_basic).
    pub client_secret: Option<String>,
    /// Default `audience` requested (the upstream API).
    pub audience: Option<String>,
    /// Default `scope` requested (space-separated scope tokens).
    pub scope: Option<String>,
    /// Timeout of the token request.
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 60000)))]
    pub timeout_ms: Option<u64>,
}

impl std::fmt::Debug for TokenExchangeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenExchangeConfig")
            .field("cluster", &self.cluster)
            .field("path", &self.path)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("audience", &self.audience)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// `upstream_token.tools[]`: the audience and scope for calls of some tools.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ToolTargetConfig {
    /// Tool name globs (`tools/call` by `params.name`).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Audience for these tools (default: `token_exchange.audience`).
    pub audience: Option<String>,
    /// Scope for these tools (default: `token_exchange.scope`).
    pub scope: Option<String>,
}

/// What a token is requested for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Target {
    /// RFC 8693 `audience`.
    pub audience: Option<String>,
    /// RFC 8693 `scope`.
    pub scope: Option<String>,
}

/// Compiled `upstream_token`.
#[derive(Clone, PartialEq, Eq)]
pub struct Exchange {
    /// Envoy cluster of the token endpoint.
    pub cluster: String,
    /// `:path`.
    pub path: String,
    /// `:authority`.
    pub authority: String,
    /// `Authorization` value of the token request (`Basic …`): a credential.
    pub authorization: String,
    /// Target of calls no `tools` entry names (and of every other request).
    pub default: Target,
    /// Per-tool targets, in order.
    pub tools: Vec<(PatternSet, Target)>,
    /// Callout timeout (ms).
    pub timeout_ms: u32,
    /// See [`UpstreamTokenConfig::expiry_margin_seconds`].
    pub expiry_margin_seconds: u64,
    /// See [`UpstreamTokenConfig::cache_entries`].
    pub cache_entries: usize,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("cluster", &self.cluster)
            .field("path", &self.path)
            .field("authority", &self.authority)
            .field("authorization", &"<redacted>")
            .field("default", &self.default)
            .field("tools", &self.tools.len())
            .field("timeout_ms", &self.timeout_ms)
            .finish_non_exhaustive()
    }
}

fn header_safe(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..0x7f).contains(&b))
}

fn check_audience(at: &str, a: &Option<String>) -> Result<Option<String>, ConfigError> {
    match a {
        Some(a) if a.is_empty() || a.chars().any(char::is_control) => Err(ConfigError::at(
            at,
            "must be a non-empty string without control characters",
        )),
        other => Ok(other.clone()),
    }
}

fn check_scope(at: &str, s: &Option<String>) -> Result<Option<String>, ConfigError> {
    match s {
        Some(s) if !s.split(' ').all(is_scope_token) => Err(ConfigError::at(
            at,
            "must be RFC 6749 scope tokens separated by single spaces",
        )),
        other => Ok(other.clone()),
    }
}

impl UpstreamTokenConfig {
    /// Validates and compiles (error paths are relative to `upstream_token`).
    pub fn compile(&self) -> Result<Exchange, ConfigError> {
        let at = |k: &str| format!("upstream_token.{k}");
        let x = self.token_exchange.as_ref().ok_or_else(|| {
            ConfigError::at(
                at("token_exchange"),
                "required: the token endpoint (RFC 8693) that issues upstream tokens",
            )
        })?;
        let te = |k: &str| at(&format!("token_exchange.{k}"));
        let cluster = x.cluster.clone().filter(|c| !c.is_empty()).ok_or_else(|| {
            ConfigError::at(
                te("cluster"),
                "required: the Envoy cluster of the authorization server",
            )
        })?;
        let path = x.path.clone().unwrap_or_default();
        if !path.starts_with('/') || !header_safe(&path) {
            return Err(ConfigError::at(
                te("path"),
                "required: an absolute request path such as /oauth2/token",
            ));
        }
        let authority = x.authority.clone().unwrap_or_else(|| cluster.clone());
        if !header_safe(&authority) {
            return Err(ConfigError::at(te("authority"), "not a valid authority"));
        }
        let client_id = x.client_id.as_deref().unwrap_or("");
        if client_id.is_empty() || client_id.chars().any(char::is_control) {
            return Err(ConfigError::at(
                te("client_id"),
                "required: the gateway's OAuth client id",
            ));
        }
        let secret = x.client_secret.as_deref().unwrap_or("");
        if secret.is_empty() || secret.chars().any(char::is_control) {
            return Err(ConfigError::at(
                te("client_secret"),
                "required: the gateway's OAuth client secret",
            ));
        }
        let default = Target {
            audience: check_audience(&te("audience"), &x.audience)?,
            scope: check_scope(&te("scope"), &x.scope)?,
        };
        let timeout_ms = x.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        let timeout_ms = u32::try_from(timeout_ms)
            .ok()
            .filter(|t| (1..=60_000).contains(t))
            .ok_or_else(|| ConfigError::at(te("timeout_ms"), "must be between 1 and 60000"))?;
        let mut tools = Vec::with_capacity(self.tools.len());
        for (i, t) in self.tools.iter().enumerate() {
            let at = |k: &str| format!("upstream_token.tools[{i}].{k}");
            if t.tools.is_empty() {
                return Err(ConfigError::at(
                    at("tools"),
                    "must name at least one tool glob",
                ));
            }
            if t.audience.is_none() && t.scope.is_none() {
                return Err(ConfigError::at(
                    format!("upstream_token.tools[{i}]"),
                    "needs `audience` or `scope` (or both)",
                ));
            }
            let patterns = patterns_at(&at("tools"), &t.tools)?;
            let target = Target {
                audience: check_audience(&at("audience"), &t.audience)?
                    .or_else(|| default.audience.clone()),
                scope: check_scope(&at("scope"), &t.scope)?.or_else(|| default.scope.clone()),
            };
            tools.push((patterns, target));
        }
        let expiry_margin_seconds = self
            .expiry_margin_seconds
            .unwrap_or(DEFAULT_EXPIRY_MARGIN_SECONDS);
        if expiry_margin_seconds > MAX_EXPIRY_MARGIN_SECONDS {
            return Err(ConfigError::at(
                at("expiry_margin_seconds"),
                format!("at most {MAX_EXPIRY_MARGIN_SECONDS}"),
            ));
        }
        let cache_entries = self.cache_entries.unwrap_or(DEFAULT_CACHE_ENTRIES);
        if cache_entries > MAX_CACHE_ENTRIES {
            return Err(ConfigError::at(
                at("cache_entries"),
                format!("at most {MAX_CACHE_ENTRIES}"),
            ));
        }
        Ok(Exchange {
            cluster,
            path,
            authority,
            authorization: basic_authorization(client_id, secret),
            default,
            tools,
            timeout_ms,
            expiry_margin_seconds,
            cache_entries,
        })
    }
}

impl Exchange {
    /// Which target a request uses: for a `tools/call` of `tool`, the first `tools` entry that
    /// names it (its index); otherwise (and for every other request) the defaults
    /// (`tools.len()`). The index is the cache's key for the (audience, scope) pair.
    pub fn target_index(&self, tool: Option<&str>) -> usize {
        tool.and_then(|name| self.tools.iter().position(|(p, _)| p.matches(name)))
            .unwrap_or(self.tools.len())
    }

    /// The target with index `i` ([`Exchange::target_index`]).
    pub fn target_at(&self, i: usize) -> &Target {
        self.tools.get(i).map_or(&self.default, |(_, t)| t)
    }

    /// The target of a request (see [`Exchange::target_index`]).
    pub fn target(&self, tool: Option<&str>) -> &Target {
        self.target_at(self.target_index(tool))
    }

    /// The headers of the token request (`Authorization` is a credential: never log them).
    pub fn request_headers(&self) -> [(&str, &str); 6] {
        [
            (":method", "POST"),
            (":path", self.path.as_str()),
            (":authority", self.authority.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
            ("accept", "application/json"),
            ("authorization", self.authorization.as_str()),
        ]
    }
}

/// `application/x-www-form-urlencoded` encoding of one name or value (WHATWG URL §5.2: `*-._`
/// and alphanumerics kept, space as `+`, every other byte of the UTF-8 as `%XX`).
pub fn form_encode(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                let hex = |n: u8| char::from(HEX.get(usize::from(n)).copied().unwrap_or(b'0'));
                out.push(hex(b >> 4));
                out.push(hex(b & 0xf));
            }
        }
    }
}

/// Standard base64 with padding (RFC 4648 §4), as HTTP Basic uses it.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    crate::base64::encode_into(bytes, &mut out);
    out
}

/// `client_secret_basic` (RFC 6749 §2.3.1): id and secret form-urlencoded, joined by `:`,
/// base64-encoded.
pub fn basic_authorization(client_id: &str, client_secret: &str) -> String {
    let mut pair = String::with_capacity(client_id.len() + client_secret.len() + 1);
    form_encode(client_id, &mut pair);
    pair.push(':');
    form_encode(client_secret, &mut pair);
    format!("Basic {}", base64_encode(pair.as_bytes()))
}

/// The RFC 8693 §2.1 token request body for the caller's `subject_token`.
pub fn request_body(subject_token: &str, target: &Target) -> Vec<u8> {
    let mut out = String::with_capacity(256 + subject_token.len());
    let mut field = |name: &str, value: &str| {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        form_encode(value, &mut out);
    };
    field("grant_type", GRANT_TYPE);
    field("subject_token", subject_token);
    field("subject_token_type", ACCESS_TOKEN_TYPE);
    field("requested_token_type", ACCESS_TOKEN_TYPE);
    if let Some(a) = &target.audience {
        field("audience", a);
    }
    if let Some(s) = &target.scope {
        field("scope", s);
    }
    out.into_bytes()
}

/// A token the authorization server issued.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// `access_token` (an RFC 6750 b64token: safe in a header).
    pub access_token: String,
    /// `expires_in`, seconds.
    pub expires_in: Option<u64>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("access_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Why no token was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// `invalid_grant`: the caller's token is not acceptable to the authorization server
    /// (revoked, expired there, wrong issuer): the caller must get a new one (401).
    InvalidGrant,
    /// `invalid_target`, `invalid_scope` or `unauthorized_client` (the OAuth error code): this
    /// caller may not have a token for that audience or scope (403).
    Rejected(&'static str),
    /// The exchange could not be done: unreachable, timeout, 5xx, another error code (the
    /// gateway's own client credentials, a misconfiguration), an unparseable answer (503).
    Unavailable(&'static str),
}

impl Failure {
    /// A short reason for logs and `data.reason` (never a token).
    pub fn reason(self) -> &'static str {
        match self {
            Failure::InvalidGrant => "invalid_grant",
            Failure::Rejected(code) | Failure::Unavailable(code) => code,
        }
    }
}

/// Whether `s` is an RFC 6750 §2.1 `b64token` (what may follow `Bearer `).
pub fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

#[derive(Deserialize)]
struct SuccessBody {
    access_token: Option<serde_json::Value>,
    token_type: Option<serde_json::Value>,
    issued_token_type: Option<serde_json::Value>,
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<serde_json::Value>,
}

fn parse_success(body: &[u8]) -> Result<Issued, Failure> {
    const BAD: Failure = Failure::Unavailable("unparseable_response");
    let b: SuccessBody = serde_json::from_slice(body).map_err(|_| BAD)?;
    let token = b
        .access_token
        .as_ref()
        .and_then(|v| v.as_str())
        .ok_or(BAD)?;
    if token.len() > MAX_ISSUED_TOKEN_BYTES || !is_b64token(token) {
        return Err(BAD);
    }
    // RFC 8693 §2.2.1: token_type is REQUIRED; "N_A" when the token is not an access token
    // in the OAuth sense but is still used as one by the upstream.
    let token_type = b.token_type.as_ref().and_then(|v| v.as_str()).ok_or(BAD)?;
    if !token_type.eq_ignore_ascii_case("bearer") && token_type != "N_A" {
        return Err(Failure::Unavailable("unsupported_token_type"));
    }
    // REQUIRED too, but some servers omit it; when present it must be a kind of access token
    // (never a refresh or ID token forwarded as a bearer credential).
    match b.issued_token_type.as_ref() {
        None => {}
        Some(v) => match v.as_str() {
            Some(ACCESS_TOKEN_TYPE | JWT_TOKEN_TYPE) => {}
            _ => return Err(Failure::Unavailable("unsupported_token_type")),
        },
    }
    let expires_in = match b.expires_in.as_ref() {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or(BAD)?),
    };
    Ok(Issued {
        access_token: token.to_owned(),
        expires_in,
    })
}

/// Classifies the token endpoint's answer: `status` 0 when the call failed (no headers: reset,
/// timeout, unknown cluster).
pub fn classify(status: u32, body: &[u8]) -> Result<Issued, Failure> {
    match status {
        0 => Err(Failure::Unavailable("unreachable")),
        200 => parse_success(body),
        400..=499 => {
            let code = serde_json::from_slice::<ErrorBody>(body)
                .ok()
                .and_then(|e| e.error)
                .and_then(|e| e.as_str().map(str::to_owned));
            match code.as_deref() {
                Some("invalid_grant") => Err(Failure::InvalidGrant),
                Some("invalid_target") => Err(Failure::Rejected("invalid_target")),
                Some("invalid_scope") => Err(Failure::Rejected("invalid_scope")),
                Some("unauthorized_client") => Err(Failure::Rejected("unauthorized_client")),
                // The gateway's own credentials or request: not the caller's to fix.
                Some("invalid_client") => Err(Failure::Unavailable("invalid_client")),
                Some(_) => Err(Failure::Unavailable("idp_error")),
                None => Err(Failure::Unavailable("unparseable_response")),
            }
        }
        // Envoy answers a call it could not complete with a 503 (connection failure, reset)
        // or a 504 (timeout) of its own, indistinguishable from the server's.
        504 => Err(Failure::Unavailable("timeout")),
        500..=599 => Err(Failure::Unavailable("idp_unavailable")),
        _ => Err(Failure::Unavailable("unexpected_status")),
    }
}

/// Cache key: the SHA-256 of the caller's token (the token itself is never kept) and the
/// target's index ([`Exchange::target_index`]: one audience and scope per index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
    subject: [u8; 32],
    target: usize,
}

/// SHA-256 of a caller's token.
pub fn token_digest(subject_token: &str) -> [u8; 32] {
    Sha256::digest(subject_token.as_bytes()).into()
}

impl CacheKey {
    /// The key of the token with SHA-256 `digest` exchanged for target `target`.
    pub fn new(digest: [u8; 32], target: usize) -> CacheKey {
        CacheKey {
            subject: digest,
            target,
        }
    }
}

struct Entry {
    /// `Bearer <issued>`, ready for the header.
    header: String,
    /// Usable while `now < until` (seconds).
    until: u64,
}

/// Issued tokens, per worker, bounded: each until `expires_in` minus the margin (and never past
/// the caller's own token's `exp`). Tokens without `expires_in` are not cached.
pub struct Cache {
    map: HashMap<CacheKey, Entry>,
    capacity: usize,
    margin: u64,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.map.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Cache {
    /// An empty cache of `capacity` entries (0: nothing is cached), `margin` seconds.
    pub fn new(capacity: usize, margin: u64) -> Cache {
        Cache {
            map: HashMap::new(),
            capacity,
            margin,
        }
    }

    /// The cached `Authorization` value for `key`, if still usable at `now`.
    pub fn get(&mut self, key: &CacheKey, now: u64) -> Option<&str> {
        match self.map.get(key) {
            Some(e) if now < e.until => {}
            Some(_) => {
                self.map.remove(key);
                return None;
            }
            None => return None,
        }
        self.map.get(key).map(|e| e.header.as_str())
    }

    /// Until when (exclusive) an issued token is used: `now + expires_in - margin`, capped at
    /// the caller's `exp`; `None` when it is not to be cached at all.
    pub fn lifetime(&self, issued: &Issued, subject_exp: Option<u64>, now: u64) -> Option<u64> {
        let ttl = issued.expires_in?.checked_sub(self.margin)?;
        let until = now.saturating_add(ttl);
        let until = subject_exp.map_or(until, |exp| until.min(exp));
        (until > now).then_some(until)
    }

    /// Caches `issued` for `key` (see [`Cache::lifetime`]); returns whether it was cached.
    /// When full, expired entries go first, then the ones that expire soonest.
    pub fn insert(
        &mut self,
        key: CacheKey,
        issued: &Issued,
        subject_exp: Option<u64>,
        now: u64,
    ) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let Some(until) = self.lifetime(issued, subject_exp, now) else {
            return false;
        };
        if !self.map.contains_key(&key) && self.map.len() >= self.capacity {
            self.map.retain(|_, e| now < e.until);
            while self.map.len() >= self.capacity {
                let soonest = self
                    .map
                    .iter()
                    .min_by_key(|(_, e)| e.until)
                    .map(|(k, _)| *k);
                match soonest {
                    Some(k) => {
                        self.map.remove(&k);
                    }
                    None => break,
                }
            }
        }
        self.map.insert(
            key,
            Entry {
                header: bearer(&issued.access_token),
                until,
            },
        );
        true
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// `Bearer <token>`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile(v: serde_json::Value) -> Result<Exchange, ConfigError> {
        let c: UpstreamTokenConfig =
            serde_json::from_value(v).map_err(|e| ConfigError::at("", e))?;
        c.compile()
    }

    fn full() -> serde_json::Value {
        json!({
            "token_exchange": {"cluster": "idp", "path": "/oauth2/token", "authority": "idp.example.com",
                "client_id": "mcp-gateway", "client_secret": "s3cr3t", "audience": "https://api.example.com",
                "scope": "repo:read", "timeout_ms": 2000},
            "tools": [{"tools": ["deploy_*"], "audience": "https://deploy.example.com", "scope": "deploy"},
                      {"tools": ["read_*"], "scope": "repo:read files:read"}]
        })
    }

    #[test]
    fn the_issue_configuration_compiles() {
        let x = compile(full()).unwrap();
        assert_eq!(x.cluster, "idp");
        assert_eq!(x.path, "/oauth2/token");
        assert_eq!(x.authority, "idp.example.com");
        assert_eq!(x.timeout_ms, 2000);
        assert_eq!(x.expiry_margin_seconds, DEFAULT_EXPIRY_MARGIN_SECONDS);
        assert_eq!(x.cache_entries, DEFAULT_CACHE_ENTRIES);
        assert_eq!(x.authorization, "Basic bWNwLWdhdGV3YXk6czNjcjN0");
        let dbg = format!("{x:?}");
        assert!(!dbg.contains("bWNw") && !dbg.contains("s3cr3t"), "{dbg}");
    }

    #[test]
    fn targets_are_chosen_by_the_first_matching_tool_glob_and_inherit_defaults() {
        let x = compile(full()).unwrap();
        let t = x.target(Some("deploy_prod"));
        assert_eq!(t.audience.as_deref(), Some("https://deploy.example.com"));
        assert_eq!(t.scope.as_deref(), Some("deploy"));
        let t = x.target(Some("read_file"));
        assert_eq!(t.audience.as_deref(), Some("https://api.example.com"));
        assert_eq!(t.scope.as_deref(), Some("repo:read files:read"));
        assert_eq!(x.target(Some("echo")), &x.default);
        assert_eq!(x.target_index(Some("deploy_prod")), 0);
        assert_eq!(x.target_index(Some("read_file")), 1);
        assert_eq!(x.target_index(Some("echo")), 2);
        assert_eq!(x.target_index(None), 2);
        assert_eq!(x.target_at(2), &x.default);
        assert_eq!(x.target(None), &x.default);
        assert_eq!(
            x.default.audience.as_deref(),
            Some("https://api.example.com")
        );
    }

    #[test]
    fn every_required_key_and_bad_value_is_refused_with_its_path() {
        let cases: [(&str, serde_json::Value, &str); 12] = [
            (
                "/token_exchange",
                json!(null),
                "upstream_token.token_exchange",
            ),
            (
                "/token_exchange/cluster",
                json!(""),
                "upstream_token.token_exchange.cluster",
            ),
            (
                "/token_exchange/path",
                json!("oauth2/token"),
                "upstream_token.token_exchange.path",
            ),
            (
                "/token_exchange/authority",
                json!("a b"),
                "upstream_token.token_exchange.authority",
            ),
            (
                "/token_exchange/client_id",
                json!(""),
                "upstream_token.token_exchange.client_id",
            ),
            (
                "/token_exchange/client_secret",
                json!(""),
                "upstream_token.token_exchange.client_secret",
            ),
            (
                "/token_exchange/audience",
                json!(""),
                "upstream_token.token_exchange.audience",
            ),
            (
                "/token_exchange/scope",
                json!("a  b"),
                "upstream_token.token_exchange.scope",
            ),
            (
                "/token_exchange/timeout_ms",
                json!(0),
                "upstream_token.token_exchange.timeout_ms",
            ),
            ("/tools/0/tools", json!([]), "upstream_token.tools[0].tools"),
            (
                "/expiry_margin_seconds",
                json!(3601),
                "upstream_token.expiry_margin_seconds",
            ),
            (
                "/cache_entries",
                json!(100_001),
                "upstream_token.cache_entries",
            ),
        ];
        for (ptr, value, path) in cases {
            let mut v = full();
            match v.pointer_mut(ptr) {
                Some(slot) => *slot = value,
                None => v[ptr.trim_start_matches('/')] = value,
            }
            let e = compile(v).unwrap_err();
            assert_eq!(e.path, path, "{ptr}: {e}");
        }
        let mut v = full();
        v["tools"][1] = json!({"tools": ["x"]});
        assert_eq!(compile(v).unwrap_err().path, "upstream_token.tools[1]");
        let mut v = full();
        v["tools"][0]["tools"] = json!([""]);
        assert_eq!(
            compile(v).unwrap_err().path,
            "upstream_token.tools[0].tools[0]"
        );
    }

    #[test]
    fn defaults_apply_and_authority_defaults_to_the_cluster() {
        let x = compile(json!({"token_exchange": {"cluster": "idp", "path": "/t",
            "client_id": "c", "client_secret": "s"}}))
        .unwrap();
        assert_eq!(x.authority, "idp");
        assert_eq!(x.timeout_ms, DEFAULT_TIMEOUT_MS as u32);
        assert_eq!(x.default, Target::default());
    }

    #[test]
    fn form_encoding_follows_whatwg() {
        let mut s = String::new();
        form_encode("a b+c/d=e&f*-._~é:", &mut s);
        assert_eq!(s, "a+b%2Bc%2Fd%3De%26f*-._%7E%C3%A9%3A");
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(i.as_bytes()), o);
        }
    }

    #[test]
    fn client_secret_basic_form_encodes_before_base64() {
        // RFC 6749 §2.3.1 / Appendix B: "a:b c" -> "a%3Ab+c".
        assert_eq!(
            basic_authorization("a:b c", "p@ss/wörd"),
            format!("Basic {}", base64_encode(b"a%3Ab+c:p%40ss%2Fw%C3%B6rd"))
        );
    }

    #[test]
    fn the_request_body_carries_every_rfc_8693_parameter() {
        let t = Target {
            audience: Some("https://api.example.com".into()),
            scope: Some("repo:read deploy".into()),
        };
        let body = String::from_utf8(request_body("a.b.c+/=", &t)).unwrap();
        assert_eq!(
            body,
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange\
             &subject_token=a.b.c%2B%2F%3D\
             &subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token\
             &requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token\
             &audience=https%3A%2F%2Fapi.example.com&scope=repo%3Aread+deploy"
        );
        let bare = String::from_utf8(request_body("t", &Target::default())).unwrap();
        assert!(
            !bare.contains("audience") && !bare.contains("scope="),
            "{bare}"
        );
    }

    #[test]
    fn a_success_needs_a_b64token_and_a_bearer_or_n_a_type() {
        let ok = |b: serde_json::Value| classify(200, b.to_string().as_bytes());
        let issued = ok(json!({"access_token": "up.tok-1", "token_type": "Bearer",
            "issued_token_type": ACCESS_TOKEN_TYPE, "expires_in": 300}))
        .unwrap();
        assert_eq!(issued.access_token, "up.tok-1");
        assert_eq!(issued.expires_in, Some(300));
        assert!(!format!("{issued:?}").contains("up.tok"));
        assert!(ok(json!({"access_token": "t", "token_type": "bearer"})).is_ok());
        assert!(ok(
            json!({"access_token": "t", "token_type": "N_A", "issued_token_type": JWT_TOKEN_TYPE})
        )
        .is_ok());
        let bad = Failure::Unavailable("unparseable_response");
        assert_eq!(ok(json!({"token_type": "Bearer"})), Err(bad));
        assert_eq!(
            ok(json!({"access_token": "", "token_type": "Bearer"})),
            Err(bad)
        );
        assert_eq!(
            ok(json!({"access_token": "a b", "token_type": "Bearer"})),
            Err(bad)
        );
        assert_eq!(
            ok(json!({"access_token": "a\r\nx: y", "token_type": "Bearer"})),
            Err(bad)
        );
        assert_eq!(
            ok(json!({"access_token": 5, "token_type": "Bearer"})),
            Err(bad)
        );
        assert_eq!(ok(json!({"access_token": "t"})), Err(bad));
        assert_eq!(
            ok(json!({"access_token": "t", "token_type": "Bearer", "expires_in": "60"})),
            Err(bad)
        );
        assert_eq!(
            ok(json!({"access_token": "t", "token_type": "Bearer", "expires_in": -1})),
            Err(bad)
        );
        assert_eq!(
            ok(json!({"access_token": "t", "token_type": "DPoP"})),
            Err(Failure::Unavailable("unsupported_token_type"))
        );
        assert_eq!(
            ok(json!({"access_token": "t", "token_type": "Bearer",
                "issued_token_type": "urn:ietf:params:oauth:token-type:refresh_token"})),
            Err(Failure::Unavailable("unsupported_token_type"))
        );
        assert_eq!(classify(200, b"not json"), Err(bad));
        assert_eq!(classify(200, b"[]"), Err(bad));
        let long = "a".repeat(MAX_ISSUED_TOKEN_BYTES + 1);
        assert_eq!(
            ok(json!({"access_token": long, "token_type": "Bearer"})),
            Err(bad)
        );
    }

    #[test]
    fn errors_are_classified_by_their_oauth_code() {
        let err =
            |status, code: &str| classify(status, json!({"error": code}).to_string().as_bytes());
        assert_eq!(err(400, "invalid_grant"), Err(Failure::InvalidGrant));
        assert_eq!(
            err(400, "invalid_target"),
            Err(Failure::Rejected("invalid_target"))
        );
        assert_eq!(
            err(400, "invalid_scope"),
            Err(Failure::Rejected("invalid_scope"))
        );
        assert_eq!(
            err(400, "unauthorized_client"),
            Err(Failure::Rejected("unauthorized_client"))
        );
        assert_eq!(
            err(401, "invalid_client"),
            Err(Failure::Unavailable("invalid_client"))
        );
        assert_eq!(
            err(400, "invalid_request"),
            Err(Failure::Unavailable("idp_error"))
        );
        assert_eq!(
            classify(400, b"<html>"),
            Err(Failure::Unavailable("unparseable_response"))
        );
        assert_eq!(
            classify(503, b""),
            Err(Failure::Unavailable("idp_unavailable"))
        );
        assert_eq!(classify(504, b""), Err(Failure::Unavailable("timeout")));
        assert_eq!(classify(0, b""), Err(Failure::Unavailable("unreachable")));
        assert_eq!(
            classify(302, b""),
            Err(Failure::Unavailable("unexpected_status"))
        );
        assert_eq!(Failure::InvalidGrant.reason(), "invalid_grant");
    }

    fn issued(t: &str, exp: Option<u64>) -> Issued {
        Issued {
            access_token: t.into(),
            expires_in: exp,
        }
    }

    #[test]
    fn the_cache_keys_on_subject_audience_and_scope_and_honours_the_margin() {
        let mut c = Cache::new(8, 30);
        let (a, b, scoped) = (0, 1, 2);
        let key = |u: &str, t: usize| CacheKey::new(token_digest(u), t);
        let k = key("user1", a);
        assert!(c.insert(k, &issued("x", Some(100)), None, 1000));
        assert_eq!(c.get(&k, 1000), Some("Bearer x"));
        assert_eq!(c.get(&k, 1069), Some("Bearer x"));
        assert_eq!(c.get(&k, 1070), None, "expires_in minus the margin");
        assert!(c.is_empty(), "an expired entry is dropped when seen");
        c.insert(k, &issued("x", Some(100)), None, 1000);
        assert_eq!(c.get(&key("user2", a), 1000), None);
        assert_eq!(c.get(&key("user1", b), 1000), None);
        assert_eq!(c.get(&key("user1", scoped), 1000), None);
    }

    #[test]
    fn tokens_without_or_with_short_lifetimes_are_not_cached() {
        let mut c = Cache::new(8, 30);
        let k = CacheKey::new(token_digest("u"), 0);
        assert!(!c.insert(k, &issued("x", None), None, 1000));
        assert!(!c.insert(k, &issued("x", Some(30)), None, 1000));
        assert!(!c.insert(k, &issued("x", Some(10)), None, 1000));
        assert!(c.insert(k, &issued("x", Some(31)), None, 1000));
        assert_eq!(c.get(&k, 1000), Some("Bearer x"));
        assert_eq!(c.get(&k, 1001), None);
        let mut off = Cache::new(0, 30);
        assert!(!off.insert(k, &issued("x", Some(3600)), None, 1000));
    }

    #[test]
    fn a_cached_token_never_outlives_the_callers_token() {
        let mut c = Cache::new(8, 0);
        let k = CacheKey::new(token_digest("u"), 0);
        assert!(c.insert(k, &issued("x", Some(3600)), Some(1010), 1000));
        assert_eq!(c.get(&k, 1009), Some("Bearer x"));
        assert_eq!(c.get(&k, 1010), None);
        assert!(!c.insert(k, &issued("x", Some(3600)), Some(1000), 1000));
    }

    #[test]
    fn a_full_cache_evicts_expired_then_soonest_entries() {
        let mut c = Cache::new(2, 0);
        let key = |u: &str| CacheKey::new(token_digest(u), 0);
        c.insert(key("a"), &issued("a", Some(10)), None, 0);
        c.insert(key("b"), &issued("b", Some(100)), None, 0);
        c.insert(key("c"), &issued("c", Some(50)), None, 5);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&key("a"), 5), None, "soonest to expire evicted");
        assert_eq!(c.get(&key("b"), 5), Some("Bearer b"));
        c.insert(key("d"), &issued("d", Some(100)), None, 60);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&key("c"), 60), None, "expired entry removed first");
        assert_eq!(c.get(&key("b"), 60), Some("Bearer b"));
        assert_eq!(c.get(&key("d"), 60), Some("Bearer d"));
        // Replacing an existing key never evicts another.
        c.insert(key("d"), &issued("d2", Some(100)), None, 61);
        assert_eq!(c.get(&key("b"), 61), Some("Bearer b"));
        assert_eq!(c.get(&key("d"), 61), Some("Bearer d2"));
    }

    #[test]
    fn the_cache_key_never_holds_the_token() {
        let k = CacheKey::new(token_digest("secret-token-value"), 0);
        assert!(!format!("{k:?}").contains("secret-token-value"));
    }

    #[test]
    fn b64token_is_rfc_6750() {
        assert!(is_b64token("abc-._~+/=="));
        assert!(is_b64token("eyJ.eyJ.sig"));
        assert!(!is_b64token(""));
        assert!(!is_b64token("=="));
        assert!(!is_b64token("a b"));
        assert!(!is_b64token("a,b"));
        assert!(!is_b64token("a=b"));
    }
}
