//! PII and secret scrubbing of MCP messages (`mcp_pii`).
//!
//! Detection runs over **decoded** JSON string values (an email written `a\u0040b.com` is still
//! an email) with hand-written detectors behind a cheap trigger table ([`detect`]), plus
//! optional custom regular expressions. A message is rewritten by splicing: only the string
//! values that changed are re-encoded ([`crate::json::write_escaped`]); every other byte is
//! forwarded as it was, so ids, cursors, `progressToken`, `_meta` and base64 payloads cannot be
//! altered by construction.
//!
//! What is scanned depends on the message (the built-in scope, see [`Engine::scrub_request`]
//! and [`Engine::scrub_response`]); `include_paths` narrows it and `exclude_paths` removes parts
//! of it ([`paths`]).

pub mod detect;
pub mod paths;

use crate::config::{ConfigError, Validate};
use crate::json::{self, Kind, Limits, Value};
use crate::jsonrpc::{self, Id, IdOwned, Message, Outcome};
use detect::{Builtin, DetectorSet};
use hmac::{Hmac, Mac};
use paths::{JsonPath, Seg};
use serde::Deserialize;
use std::borrow::Cow;
use std::ops::Range;

/// What to do with a detected value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Replace it with `replacement` (`{type}` becomes the detector name).
    #[default]
    Redact,
    /// Keep the last 4 characters, replace the others with `*`.
    Mask,
    /// Replace it with `[HASH:<type>:<16 hex>]`, a keyed HMAC-SHA256 (equal values, equal tokens).
    Hash,
    /// Refuse the whole message with a JSON-RPC error naming the detector types.
    Block,
}

/// A custom detector: a name and a regular expression (Rust `regex` syntax).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CustomPattern {
    /// Detector name (`[a-z][a-z0-9_]*`, at most 32 chars), used in replacements and stats.
    #[cfg_attr(
        feature = "schema",
        schemars(regex(pattern = r"^[a-z][a-z0-9_]{0,31}$"))
    )]
    pub name: String,
    /// The pattern; it must compile and must not match the empty string.
    pub pattern: String,
}

/// The `mcp_pii` configuration keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Enabled built-in detectors (default: all).
    #[serde(default = "default_detectors")]
    pub detectors: Vec<String>,
    /// Custom regular-expression detectors.
    #[serde(default)]
    pub custom: Vec<CustomPattern>,
    /// Scrub client → server messages (default true).
    #[serde(default = "yes")]
    pub request: bool,
    /// Scrub server → client messages (default true).
    #[serde(default = "yes")]
    pub response: bool,
    /// What to do with a detected value.
    #[serde(default)]
    pub action: Action,
    /// Replacement of `redact` (`{type}` is replaced by the detector name).
    #[serde(default = "default_replacement")]
    pub replacement: String,
    /// HMAC key of `hash` (at least 16 bytes; required by `hash`).
    #[serde(default)]
    pub hash_key: Option<String>,
    /// Values never scrubbed (compared ASCII-case-insensitively with the detected text).
    #[serde(default)]
    pub allow_values: Vec<String>,
    /// If not empty, only strings under one of these paths are scanned.
    #[serde(default)]
    pub include_paths: Vec<String>,
    /// Strings under these paths are never scanned.
    #[serde(default)]
    pub exclude_paths: Vec<String>,
}

fn yes() -> bool {
    true
}

fn default_detectors() -> Vec<String> {
    Builtin::ALL.iter().map(|b| b.name().to_owned()).collect()
}

fn default_replacement() -> String {
    "[REDACTED:{type}]".to_owned()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            detectors: default_detectors(),
            custom: Vec::new(),
            request: true,
            response: true,
            action: Action::Redact,
            replacement: default_replacement(),
            hash_key: None,
            allow_values: Vec::new(),
            include_paths: Vec::new(),
            exclude_paths: Vec::new(),
        }
    }
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        Engine::new(self).map(|_| ())
    }
}

/// Longest custom pattern accepted (bytes), and the compiled-size cap handed to `regex`.
const MAX_PATTERN_LEN: usize = 1024;
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Smallest accepted `hash_key`.
pub const MIN_HASH_KEY_BYTES: usize = 16;

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client → server (POST bodies).
    Request,
    /// Server → client (JSON bodies and SSE events).
    Response,
}

impl Direction {
    /// `request` / `response` (stats names).
    pub fn name(self) -> &'static str {
        match self {
            Direction::Request => "request",
            Direction::Response => "response",
        }
    }
}

/// How many values each detector found (indexes as in [`Engine::detector_name`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    counts: Vec<u32>,
}

impl Findings {
    fn add(&mut self, det: usize) {
        if self.counts.len() <= det {
            self.counts.resize(det + 1, 0);
        }
        if let Some(n) = self.counts.get_mut(det) {
            *n = n.saturating_add(1);
        }
    }

    /// `(detector index, count)` for every detector that found something.
    pub fn iter(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, &n)| (i, n))
    }

    /// Total values found.
    pub fn total(&self) -> u32 {
        self.counts.iter().fold(0u32, |a, &n| a.saturating_add(n))
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }
}

/// The decision for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to change.
    Clean,
    /// Forward these bytes instead.
    Rewritten(Vec<u8>),
    /// `action: block` and something was found. `reply` is the JSON-RPC error to answer with
    /// (request direction, or a response with an id); `None` means drop the message (a
    /// notification or a server → client request, which cannot be answered in its place).
    Blocked {
        /// The error message to send or substitute, if any.
        reply: Option<Vec<u8>>,
        /// Names of the detectors that fired, sorted, without duplicates.
        types: Vec<String>,
    },
}

/// The result of scrubbing one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scrubbed {
    /// What to do.
    pub verdict: Verdict,
    /// What was found (also when blocking).
    pub findings: Findings,
    /// Request direction: `(original, replacement)` of every changed string value, to rewrite
    /// the 2026-07-28 `Mcp-Param-*` headers that mirror them.
    pub changes: Vec<(String, String)>,
}

/// A compiled configuration.
#[derive(Debug, Clone)]
pub struct Engine {
    set: DetectorSet,
    custom: Vec<regex::Regex>,
    names: Vec<String>,
    action: Action,
    replacement: String,
    hash_key: Vec<u8>,
    allow: Vec<String>,
    include: Vec<JsonPath>,
    exclude: Vec<JsonPath>,
    request: bool,
    response: bool,
}

fn valid_custom_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && n.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Engine {
    /// Compiles `cfg`; errors name the key path (`custom[1].pattern: …`).
    pub fn new(cfg: &Config) -> Result<Engine, ConfigError> {
        let mut set = DetectorSet::none();
        for (i, d) in cfg.detectors.iter().enumerate() {
            let b = Builtin::from_name(d).ok_or_else(|| {
                ConfigError::at(
                    format!("detectors[{i}]"),
                    format!(
                        "unknown detector \"{d}\" (known: {})",
                        default_detectors().join(", ")
                    ),
                )
            })?;
            if set.contains(b) {
                return Err(ConfigError::at(
                    format!("detectors[{i}]"),
                    format!("duplicate detector \"{d}\""),
                ));
            }
            set.insert(b);
        }
        let mut names: Vec<String> = default_detectors();
        let mut custom = Vec::with_capacity(cfg.custom.len());
        for (i, c) in cfg.custom.iter().enumerate() {
            if !valid_custom_name(&c.name) {
                return Err(ConfigError::at(
                    format!("custom[{i}].name"),
                    "must match [a-z][a-z0-9_]* and be at most 32 characters",
                ));
            }
            if names.contains(&c.name) {
                return Err(ConfigError::at(
                    format!("custom[{i}].name"),
                    format!("\"{}\" is already a detector name", c.name),
                ));
            }
            if c.pattern.len() > MAX_PATTERN_LEN {
                return Err(ConfigError::at(
                    format!("custom[{i}].pattern"),
                    format!("longer than {MAX_PATTERN_LEN} bytes"),
                ));
            }
            let re = regex::RegexBuilder::new(&c.pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| {
                    // The regex error is multi-line (pattern, caret, message): keep it on one.
                    let msg = e
                        .to_string()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ");
                    ConfigError::at(
                        format!("custom[{i}].pattern"),
                        format!("invalid regex: {msg}"),
                    )
                })?;
            if re.is_match("") {
                return Err(ConfigError::at(
                    format!("custom[{i}].pattern"),
                    "matches the empty string (it would match everywhere)",
                ));
            }
            names.push(c.name.clone());
            custom.push(re);
        }
        let hash_key = match (&cfg.hash_key, cfg.action) {
            (Some(k), _) if k.len() >= MIN_HASH_KEY_BYTES => k.as_bytes().to_vec(),
            (Some(_), _) => {
                return Err(ConfigError::at(
                    "hash_key",
                    format!("must be at least {MIN_HASH_KEY_BYTES} bytes"),
                ))
            }
            (None, Action::Hash) => {
                return Err(ConfigError::at(
                    "hash_key",
                    "required by action \"hash\" (at least 16 bytes of secret)",
                ))
            }
            (None, _) => Vec::new(),
        };
        if cfg.replacement.len() > 256 {
            return Err(ConfigError::at("replacement", "longer than 256 bytes"));
        }
        let parse_paths = |key: &str, list: &[String]| -> Result<Vec<JsonPath>, ConfigError> {
            list.iter()
                .enumerate()
                .map(|(i, p)| {
                    JsonPath::parse(p).map_err(|e| {
                        ConfigError::at(format!("{key}[{i}]"), format!("invalid path \"{p}\": {e}"))
                    })
                })
                .collect()
        };
        for (i, v) in cfg.allow_values.iter().enumerate() {
            if v.is_empty() {
                return Err(ConfigError::at(format!("allow_values[{i}]"), "empty value"));
            }
        }
        Ok(Engine {
            set,
            custom,
            names,
            action: cfg.action,
            replacement: cfg.replacement.clone(),
            hash_key,
            allow: cfg.allow_values.clone(),
            include: parse_paths("include_paths", &cfg.include_paths)?,
            exclude: parse_paths("exclude_paths", &cfg.exclude_paths)?,
            request: cfg.request,
            response: cfg.response,
        })
    }

    /// Whether client → server messages are scrubbed.
    pub fn scrubs_requests(&self) -> bool {
        self.request
    }

    /// Whether server → client messages are scrubbed.
    pub fn scrubs_responses(&self) -> bool {
        self.response
    }

    /// The configured action.
    pub fn action(&self) -> Action {
        self.action
    }

    /// The name of detector `idx` (built-ins first, in [`Builtin::ALL`] order, then custom).
    pub fn detector_name(&self, idx: usize) -> &str {
        self.names.get(idx).map_or("unknown", String::as_str)
    }

    /// Indexes of the enabled detectors.
    pub fn enabled_detectors(&self) -> Vec<usize> {
        let builtins = Builtin::ALL
            .iter()
            .enumerate()
            .filter(|(_, b)| self.set.contains(**b))
            .map(|(i, _)| i);
        builtins
            .chain(Builtin::ALL.len()..self.names.len())
            .collect()
    }

    /// Detects and replaces in one text. `Ok(None)`: nothing to change; `Err(types)`: `block`
    /// and something was found (detector indexes, sorted, unique).
    pub fn scrub_text(
        &self,
        text: &str,
        findings: &mut Findings,
    ) -> Result<Option<String>, Vec<usize>> {
        let hits = self.detect(text);
        if hits.is_empty() {
            return Ok(None);
        }
        for h in &hits {
            findings.add(h.det);
        }
        if self.action == Action::Block {
            let mut dets: Vec<usize> = hits.iter().map(|h| h.det).collect();
            dets.sort_unstable();
            dets.dedup();
            return Err(dets);
        }
        let mut out = String::with_capacity(text.len() + 16);
        let mut last = 0;
        for h in &hits {
            out.push_str(text.get(last..h.range.start).unwrap_or_default());
            let value = text.get(h.range.clone()).unwrap_or_default();
            self.render(&mut out, h.det, value);
            last = h.range.end;
        }
        out.push_str(text.get(last..).unwrap_or_default());
        Ok(Some(out))
    }

    fn detect(&self, text: &str) -> Vec<Hit> {
        let mut found = Vec::new();
        detect::scan(text, self.set, &mut found);
        let mut hits: Vec<Hit> = found
            .into_iter()
            .map(|f| Hit {
                det: f.kind as usize,
                range: f.range,
            })
            .collect();
        for (k, re) in self.custom.iter().enumerate() {
            for m in re.find_iter(text) {
                hits.push(Hit {
                    det: Builtin::ALL.len() + k,
                    range: m.range(),
                });
            }
        }
        if hits.len() > 1 {
            resolve_overlaps(&mut hits);
        }
        if !self.allow.is_empty() {
            hits.retain(|h| {
                let v = text.get(h.range.clone()).unwrap_or_default();
                !self.allow.iter().any(|a| a.eq_ignore_ascii_case(v))
            });
        }
        hits
    }

    fn render(&self, out: &mut String, det: usize, value: &str) {
        let name = self.detector_name(det);
        match self.action {
            Action::Redact | Action::Block => {
                out.push_str(&self.replacement.replace("{type}", name))
            }
            Action::Mask => {
                let n = value.chars().count();
                let keep = n.saturating_sub(4);
                for (i, c) in value.chars().enumerate() {
                    out.push(if i < keep || n <= 4 { '*' } else { c });
                }
            }
            Action::Hash => {
                out.push_str("[HASH:");
                out.push_str(name);
                out.push(':');
                out.push_str(&self.hmac_hex16(value));
                out.push(']');
            }
        }
    }

    fn hmac_hex16(&self, value: &str) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let Ok(mut mac) = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.hash_key) else {
            return "0000000000000000".to_owned();
        };
        mac.update(value.as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut s = String::with_capacity(16);
        for &byte in tag.iter().take(8) {
            s.push(char::from(
                HEX.get(usize::from(byte >> 4)).copied().unwrap_or(b'0'),
            ));
            s.push(char::from(
                HEX.get(usize::from(byte & 15)).copied().unwrap_or(b'0'),
            ));
        }
        s
    }

    fn walker(&self, track_changes: bool) -> Walker<'_> {
        Walker {
            eng: self,
            edits: Vec::new(),
            findings: Findings::default(),
            blocked: Vec::new(),
            changes: track_changes.then(Vec::new),
            path: Vec::new(),
            track_paths: !self.include.is_empty() || !self.exclude.is_empty(),
            bad_text: false,
            limits: Limits::default(),
        }
    }

    /// Scrubs one client → server message of `body` (a message of a batch is scrubbed in place
    /// inside the whole body).
    ///
    /// Built-in scope: `tools/call` `params.arguments` and `params.inputResponses`, `prompts/get`
    /// `params.arguments`, `completion/complete` `params.argument.value` and
    /// `params.context.arguments`, and the client's JSON-RPC responses to server requests
    /// (sampling, elicitation, roots results and errors).
    pub fn scrub_request(&self, msg: &Message<'_>, body: &[u8]) -> Scrubbed {
        let mut w = self.walker(true);
        if self.request {
            match msg {
                Message::Request(r) => {
                    if let Some(params) = r.params {
                        w.push(Seg::Key(Cow::Borrowed("params")));
                        for (path, scope) in request_scopes(&r.method) {
                            w.scope_at(params, path, *scope);
                        }
                        w.pop();
                    }
                }
                Message::Response(r) => {
                    if let Some(v) = message_value(body, r.span.clone()) {
                        w.client_response(v);
                    }
                }
            }
        }
        let id = msg.id();
        let verdict = if w.bad_text {
            // Validated request bodies are UTF-8: unreachable, but never forward unscanned text.
            Verdict::Blocked {
                reply: Some(jsonrpc::error_response(
                    id,
                    jsonrpc::INVALID_REQUEST,
                    "Invalid Request",
                    None,
                )),
                types: Vec::new(),
            }
        } else if !w.blocked.is_empty() {
            let types = self.type_names(&w.blocked);
            let msg_text = format!(
                "Blocked by gateway policy: the request contains sensitive data ({})",
                types.join(", ")
            );
            Verdict::Blocked {
                reply: Some(jsonrpc::error_response(
                    id,
                    jsonrpc::INVALID_PARAMS,
                    &msg_text,
                    Some(&detectors_data(&types)),
                )),
                types,
            }
        } else if w.edits.is_empty() {
            Verdict::Clean
        } else {
            Verdict::Rewritten(splice(body, &w.edits))
        };
        Scrubbed {
            verdict,
            findings: w.findings,
            changes: w.changes.unwrap_or_default(),
        }
    }

    fn type_names(&self, dets: &[usize]) -> Vec<String> {
        let mut v: Vec<String> = dets
            .iter()
            .map(|&d| self.detector_name(d).to_owned())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Scrubs one server → client message (a JSON body or one SSE event's `data`).
    ///
    /// `method_of` names the method of the request a response answers (by id), so that the
    /// built-in scope applies: `tools/call` / `tasks/result` results (`content` blocks — text,
    /// embedded resource text — `structuredContent`, `inputRequests`), `resources/read`
    /// `contents`, `prompts/get` `messages` and `description`, `completion/complete` values,
    /// the `message`/`data` of every error, `notifications/message` `data`,
    /// `notifications/progress` `message`, `sampling/createMessage` `messages` and
    /// `systemPrompt`, `elicitation/create` `message`. A JSON body that is not a JSON-RPC
    /// message is scanned whole. A batch (array) is scrubbed element by element.
    ///
    /// A result whose id `method_of` cannot tie to a request (an id spelled differently from
    /// the request's, `7.0` for `7`, which clients still accept) is scanned whole, object keys
    /// included: a message the filter cannot attribute gets the strictest treatment, never
    /// none.
    ///
    /// The message is validated like a request body: a duplicate key anywhere is an error
    /// ([`json::JsonError::DuplicateKey`]), since clients read the *last* of two members and
    /// the walker the first; the caller refuses such a message whatever its failure mode
    /// ([`jsonrpc::ambiguous_response`]).
    pub fn scrub_response(
        &self,
        data: &[u8],
        method_of: &dyn Fn(Option<&Id<'_>>) -> Option<String>,
        limits: &Limits,
    ) -> Result<Scrubbed, json::JsonError> {
        let root = json::validate(data, limits)?;
        let mut w = self.walker(false);
        w.limits = *limits;
        if !self.response {
            return Ok(Scrubbed {
                verdict: Verdict::Clean,
                findings: Findings::default(),
                changes: Vec::new(),
            });
        }
        let mut reply_whole: Option<Option<Vec<u8>>> = None;
        if root.kind() == Kind::Array {
            for el in root.elements() {
                let before = w.blocked.len();
                w.response_message(el, method_of);
                if w.blocked.len() > before {
                    let types = self.type_names(w.blocked.get(before..).unwrap_or_default());
                    let id = element_id(el);
                    let err =
                        self.response_block_error(id.as_ref().map(IdOwned::as_id).as_ref(), &types);
                    // Drop the element's own edits, then replace it whole.
                    let span = el.span();
                    w.edits
                        .retain(|(r, _)| r.end <= span.start || r.start >= span.end);
                    w.edits.push((span, err));
                    w.edits.sort_by_key(|(r, _)| r.start);
                }
            }
        } else {
            w.response_message(root, method_of);
            if !w.blocked.is_empty() {
                let types = self.type_names(&w.blocked);
                let reply = match jsonrpc::parse_message_value(root) {
                    Ok(Message::Response(r)) => {
                        Some(self.response_block_error(r.id.as_ref(), &types))
                    }
                    Ok(Message::Request(_)) => None,
                    Err(_) => Some(self.response_block_error(None, &types)),
                };
                reply_whole = Some(reply);
            }
        }
        if w.bad_text {
            return Err(json::JsonError::InvalidUtf8 { at: 0 });
        }
        let verdict = match reply_whole {
            Some(reply) => Verdict::Blocked {
                reply,
                types: self.type_names(&w.blocked),
            },
            None if w.edits.is_empty() => Verdict::Clean,
            None => Verdict::Rewritten(splice(data, &w.edits)),
        };
        Ok(Scrubbed {
            verdict,
            findings: w.findings,
            changes: Vec::new(),
        })
    }

    fn response_block_error(&self, id: Option<&Id<'_>>, types: &[String]) -> Vec<u8> {
        let msg = format!(
            "Blocked by gateway policy: the response contains sensitive data ({})",
            types.join(", ")
        );
        jsonrpc::error_response(
            id,
            jsonrpc::INTERNAL_ERROR,
            &msg,
            Some(&detectors_data(types)),
        )
    }
}

/// The message value at `span` of a body (the body itself or an element of a batch).
fn message_value(body: &[u8], span: Range<usize>) -> Option<Value<'_>> {
    // Depth only matters for validation, which the gate already did.
    let root = json::skim(body, &Limits { max_depth: 512 }).ok()?;
    if root.span() == span {
        return Some(root);
    }
    root.elements().find(|e| e.span() == span)
}

fn element_id(v: Value<'_>) -> Option<IdOwned> {
    v.get("id")
        .and_then(Id::from_value)
        .map(|i| i.to_owned_id())
}

fn detectors_data(types: &[String]) -> Vec<u8> {
    let mut out = b"{\"detectors\":[".to_vec();
    for (i, t) in types.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_escaped(&mut out, t);
    }
    out.extend_from_slice(b"]}");
    out
}

#[derive(Debug, Clone)]
struct Hit {
    det: usize,
    range: Range<usize>,
}

/// Keeps the earliest (then longest) of overlapping hits, in text order.
fn resolve_overlaps(hits: &mut Vec<Hit>) {
    hits.sort_by(|a, b| {
        a.range
            .start
            .cmp(&b.range.start)
            .then(b.range.end.cmp(&a.range.end))
    });
    let mut end = 0usize;
    hits.retain(|h| {
        if h.range.start < end || h.range.is_empty() {
            return false;
        }
        end = h.range.end;
        true
    });
}

/// Replaces each edit's range of `input` (edits do not overlap; a tool result's
/// `structuredContent` may precede its `content`, so they are sorted here).
fn splice(input: &[u8], edits: &[(Range<usize>, Vec<u8>)]) -> Vec<u8> {
    let mut order: Vec<&(Range<usize>, Vec<u8>)> = edits.iter().collect();
    order.sort_by_key(|(r, _)| r.start);
    let extra: usize = edits.iter().map(|(_, b)| b.len()).sum();
    let mut out = Vec::with_capacity(input.len() + extra);
    let mut last = 0;
    for (r, bytes) in order {
        out.extend_from_slice(input.get(last..r.start).unwrap_or_default());
        out.extend_from_slice(bytes);
        last = r.end;
    }
    out.extend_from_slice(input.get(last..).unwrap_or_default());
    out
}

/// How the members of a subtree are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Free-form user JSON (arguments, structuredContent, log data): every string except
    /// under `_meta`.
    User,
    /// MCP structures (content blocks, resource contents, messages): also skips identifiers,
    /// cursors, URIs and base64 payloads.
    Mcp,
}

type Scopes = &'static [(&'static [&'static str], Scope)];

fn request_scopes(method: &str) -> Scopes {
    match method {
        "tools/call" => &[
            (&["arguments"], Scope::User),
            (&["inputResponses"], Scope::Mcp),
        ],
        "prompts/get" => &[(&["arguments"], Scope::User)],
        "completion/complete" => &[
            (&["argument", "value"], Scope::User),
            (&["context", "arguments"], Scope::User),
        ],
        _ => &[],
    }
}

/// Server → client notifications and requests, relative to `params`.
fn server_message_scopes(method: &str) -> Scopes {
    match method {
        "notifications/message" => &[(&["data"], Scope::User)],
        "notifications/progress" => &[(&["message"], Scope::User)],
        "sampling/createMessage" => &[
            (&["messages"], Scope::Mcp),
            (&["systemPrompt"], Scope::User),
        ],
        "elicitation/create" => &[(&["message"], Scope::User)],
        _ => &[],
    }
}

/// Results, relative to `result` (tool results are handled apart for the text copy of
/// structuredContent).
fn result_scopes(method: &str) -> Scopes {
    match method {
        "resources/read" => &[(&["contents"], Scope::Mcp)],
        "prompts/get" => &[(&["messages"], Scope::Mcp), (&["description"], Scope::User)],
        "completion/complete" => &[(&["completion", "values"], Scope::User)],
        _ => &[],
    }
}

/// Keys never scanned inside MCP structures.
const MCP_SKIP: [&str; 11] = [
    "_meta",
    "blob",
    "uri",
    "mimeType",
    "progressToken",
    "requestState",
    "cursor",
    "nextCursor",
    "toolUseId",
    "elicitationId",
    "taskId",
];

struct Walker<'a> {
    eng: &'a Engine,
    edits: Vec<(Range<usize>, Vec<u8>)>,
    findings: Findings,
    blocked: Vec<usize>,
    changes: Option<Vec<(String, String)>>,
    path: Vec<Seg<'a>>,
    track_paths: bool,
    bad_text: bool,
    limits: Limits,
}

impl<'a> Walker<'a> {
    fn push(&mut self, seg: Seg<'a>) {
        if self.track_paths {
            self.path.push(seg);
        }
    }

    fn pop(&mut self) {
        if self.track_paths {
            self.path.pop();
        }
    }

    /// Walks `base.<rel…>` (its own path already pushed) as a scope root.
    fn scope_at(&mut self, base: Value<'a>, rel: &[&'static str], scope: Scope) {
        let depth = self.path.len();
        let mut v = base;
        for k in rel {
            let Some(next) = v.get(k) else {
                self.path.truncate(depth);
                return;
            };
            self.push(Seg::Key(Cow::Borrowed(k)));
            v = next;
        }
        if let Some(included) = self.root_state() {
            self.value(v, scope, included);
        }
        self.path.truncate(depth);
    }

    /// Inclusion of a scope root from the paths of its ancestors (`$.params` selects
    /// `$.params.arguments`); `None` when an ancestor is excluded.
    fn root_state(&self) -> Option<bool> {
        if !self.track_paths {
            return Some(true);
        }
        let mut included = self.eng.include.is_empty();
        for k in 1..self.path.len() {
            let prefix = self.path.get(..k).unwrap_or_default();
            if self.eng.exclude.iter().any(|p| p.relate(prefix).selects) {
                return None;
            }
            included |= self.eng.include.iter().any(|p| p.relate(prefix).selects);
        }
        Some(included)
    }

    /// One server → client message.
    fn response_message(
        &mut self,
        v: Value<'a>,
        method_of: &dyn Fn(Option<&Id<'_>>) -> Option<String>,
    ) {
        match jsonrpc::parse_message_value(v) {
            Ok(Message::Response(r)) => match r.outcome {
                Outcome::Error { .. } => self.error(v),
                Outcome::Result(result) => {
                    self.push(Seg::Key(Cow::Borrowed("result")));
                    let Some(m) = method_of(r.id.as_ref()) else {
                        // Not attributable to a request of this exchange: scan it all.
                        if let Some(included) = self.root_state() {
                            self.value(result, Scope::User, included);
                        }
                        self.pop();
                        return;
                    };
                    if m == "tools/call" || m == "tasks/result" {
                        self.tool_result(result);
                    } else {
                        for (path, scope) in result_scopes(&m) {
                            self.scope_at(result, path, *scope);
                        }
                    }
                    self.pop();
                }
            },
            Ok(Message::Request(r)) => {
                if let Some(params) = r.params {
                    self.push(Seg::Key(Cow::Borrowed("params")));
                    for (path, scope) in server_message_scopes(&r.method) {
                        self.scope_at(params, path, *scope);
                    }
                    self.pop();
                }
            }
            // Not JSON-RPC (an upstream error document in JSON, say): scan it whole.
            Err(_) => self.value(v, Scope::User, self.eng.include.is_empty()),
        }
    }

    /// `error.message` and `error.data` of a response message `v`.
    fn error(&mut self, v: Value<'a>) {
        if let Some(err) = v.get("error") {
            self.push(Seg::Key(Cow::Borrowed("error")));
            self.scope_at(err, &["message"], Scope::User);
            self.scope_at(err, &["data"], Scope::User);
            self.pop();
        }
    }

    /// A client's response to a server request (sampling / elicitation / roots results).
    fn client_response(&mut self, v: Value<'a>) {
        if let Some(result) = v.get("result") {
            self.push(Seg::Key(Cow::Borrowed("result")));
            if let Some(included) = self.root_state() {
                self.value(result, Scope::Mcp, included);
            }
            self.pop();
        }
        self.error(v);
    }

    /// A `CallToolResult`: `content`, `structuredContent` (and a text block that is its
    /// serialized copy, scrubbed identically), `inputRequests`.
    fn tool_result(&mut self, result: Value<'a>) {
        // One pass over the members (each pass re-reads the whole content): the first of
        // each key, as `Value::get` would find it.
        let (mut content, mut structured, mut input_requests) = (None, None, None);
        for m in result.members() {
            let slot = match &*m.key {
                "content" => &mut content,
                "structuredContent" => &mut structured,
                "inputRequests" => &mut input_requests,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(m.value);
            }
        }
        if let Some(content) = content {
            self.push(Seg::Key(Cow::Borrowed("content")));
            for (i, block) in content.elements().enumerate() {
                self.push(Seg::Index(i));
                let copy = structured.and_then(|sc| {
                    let text = block.get("text")?;
                    (block.get("type")?.as_str()?.as_ref() == "text").then_some(())?;
                    let decoded = text.as_str()?;
                    let inner = json::skim(decoded.as_bytes(), &self.limits).ok()?;
                    json_eq(inner, sc).then_some((text, decoded))
                });
                match (copy, self.root_state()) {
                    (_, None) => {}
                    (Some((text, decoded)), Some(_)) => self.structured_copy(text, &decoded),
                    (None, Some(included)) => self.value(block, Scope::Mcp, included),
                }
                self.pop();
            }
            self.pop();
        }
        if let Some(sc) = structured {
            self.push(Seg::Key(Cow::Borrowed("structuredContent")));
            if let Some(included) = self.root_state() {
                self.value(sc, Scope::User, included);
            }
            self.pop();
        }
        if let Some(requests) = input_requests {
            self.push(Seg::Key(Cow::Borrowed("inputRequests")));
            if let Some(included) = self.root_state() {
                self.value(requests, Scope::Mcp, included);
            }
            self.pop();
        }
    }

    /// Scrubs the JSON text of a text block that equals `structuredContent` as if it were
    /// `structuredContent` itself (same paths, same values, so the same replacements), keeping
    /// the text's own formatting, then re-encodes the text.
    fn structured_copy(&mut self, text: Value<'a>, decoded: &str) {
        let inner_bytes = decoded.as_bytes();
        let Ok(inner) = json::skim(inner_bytes, &self.limits) else {
            return;
        };
        let mut sub = Walker {
            eng: self.eng,
            edits: Vec::new(),
            findings: Findings::default(),
            blocked: Vec::new(),
            changes: None,
            path: Vec::new(),
            track_paths: self.track_paths,
            bad_text: false,
            limits: self.limits,
        };
        if sub.track_paths {
            sub.path = vec![
                Seg::Key(Cow::Borrowed("result")),
                Seg::Key(Cow::Borrowed("structuredContent")),
            ];
        }
        if let Some(included) = sub.root_state() {
            sub.value(inner, Scope::User, included);
        }
        // Findings are counted once, on structuredContent itself.
        self.blocked.extend(sub.blocked);
        self.bad_text |= sub.bad_text;
        if sub.edits.is_empty() {
            return;
        }
        let new_inner = splice(inner_bytes, &sub.edits);
        let Ok(new_text) = String::from_utf8(new_inner) else {
            self.bad_text = true;
            return;
        };
        let mut enc = Vec::with_capacity(new_text.len() + 16);
        json::write_escaped(&mut enc, &new_text);
        self.edits.push((text.span(), enc));
    }

    /// Whether the current node is selected (`Some(true)`), possibly has selected
    /// descendants (`Some(false)`), or is out of scope (`None`).
    fn path_state(&self, included: bool) -> Option<bool> {
        if !self.track_paths {
            return Some(included);
        }
        if self
            .eng
            .exclude
            .iter()
            .any(|p| p.relate(&self.path).selects)
        {
            return None;
        }
        if included {
            return Some(true);
        }
        let mut viable = false;
        for p in &self.eng.include {
            let r = p.relate(&self.path);
            if r.selects {
                return Some(true);
            }
            viable |= r.viable;
        }
        viable.then_some(false)
    }

    fn value(&mut self, v: Value<'a>, scope: Scope, included: bool) {
        let Some(included) = self.path_state(included) else {
            return;
        };
        match v.kind() {
            Kind::String => {
                if included {
                    self.string(v);
                }
            }
            Kind::Object => {
                let mut renamed: Vec<(Range<usize>, String)> = Vec::new();
                for m in v.members() {
                    let key: &str = &m.key;
                    if key == "_meta" {
                        continue;
                    }
                    if scope == Scope::Mcp {
                        if MCP_SKIP.contains(&key) {
                            continue;
                        }
                        if key == "data" && is_base64_carrier(v) {
                            continue;
                        }
                    }
                    if included {
                        // A member name is data too (`{"byEmail": {"bob@example.com": 1}}`).
                        if let Some(new) = self.text(key) {
                            renamed.push((m.key_span.clone(), new));
                        }
                    }
                    if self.track_paths {
                        self.path.push(Seg::Key(m.key));
                        self.value(m.value, scope, included);
                        self.path.pop();
                    } else {
                        self.value(m.value, scope, included);
                    }
                }
                if !renamed.is_empty() {
                    self.rename_keys(v, renamed);
                }
            }
            Kind::Array => {
                for (i, e) in v.elements().enumerate() {
                    self.push(Seg::Index(i));
                    self.value(e, scope, included);
                    self.pop();
                }
            }
            Kind::Number => {
                if included {
                    self.number(v);
                }
            }
            Kind::Bool | Kind::Null => {}
        }
    }

    /// A card written as a JSON number (`"card": 4111111111111111`) is still a card to whoever
    /// reads it. Integers of 9 digits or more are scanned as text; a finding replaces the number
    /// with its replacement *string* (the one case where scrubbing changes a value's type:
    /// leaking the number would be worse).
    fn number(&mut self, v: Value<'a>) {
        let raw = v.raw();
        if raw.len() < 9 || !raw.iter().all(u8::is_ascii_digit) {
            return;
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            return;
        };
        if let Some(new) = self.text(text) {
            let mut enc = Vec::with_capacity(new.len() + 2);
            json::write_escaped(&mut enc, &new);
            self.edits.push((v.span(), enc));
            // A 2026-07-28 Mcp-Param-* header mirroring it is rewritten too.
            if let Some(ch) = self.changes.as_mut() {
                ch.push((text.to_owned(), new));
            }
        }
    }

    /// Scrubs a decoded text: `Some(new)` when it changed (counted, blocked types recorded).
    fn text(&mut self, text: &str) -> Option<String> {
        match self.eng.scrub_text(text, &mut self.findings) {
            Ok(new) => new,
            Err(dets) => {
                self.blocked.extend(dets);
                None
            }
        }
    }

    /// Rewrites the member names of `obj` that changed. Two names that became equal (two
    /// emails redacted to `[REDACTED:email]`), or equal to a name that did not change, would
    /// make a duplicate key, which clients resolve by keeping the last: the later ones get a
    /// `#2`, `#3`, ... suffix, so the object stays valid and keeps all its members.
    fn rename_keys(&mut self, obj: Value<'a>, renamed: Vec<(Range<usize>, String)>) {
        let changed: Vec<Range<usize>> = renamed.iter().map(|(r, _)| r.clone()).collect();
        let mut taken: std::collections::HashSet<String> = obj
            .members()
            .filter(|m| !changed.contains(&m.key_span))
            .map(|m| m.key.into_owned())
            .collect();
        for (span, new) in renamed {
            let mut name = new.clone();
            let mut n = 2u32;
            while taken.contains(&name) {
                name = format!("{new}#{n}");
                n = n.saturating_add(1);
            }
            let mut enc = Vec::with_capacity(name.len() + 2);
            json::write_escaped(&mut enc, &name);
            taken.insert(name);
            self.edits.push((span, enc));
        }
    }

    fn string(&mut self, v: Value<'a>) {
        let raw = v.raw();
        let contents = raw.get(1..raw.len().saturating_sub(1)).unwrap_or_default();
        let text: Cow<'a, str> = if contents.contains(&b'\\') {
            match json::unescape(contents) {
                Ok(t) => t,
                Err(_) => {
                    self.bad_text = true;
                    return;
                }
            }
        } else {
            match std::str::from_utf8(contents) {
                Ok(t) => Cow::Borrowed(t),
                Err(_) => {
                    self.bad_text = true;
                    return;
                }
            }
        };
        match self.eng.scrub_text(&text, &mut self.findings) {
            Ok(None) => {}
            Ok(Some(new)) => {
                let mut enc = Vec::with_capacity(new.len() + 2);
                json::write_escaped(&mut enc, &new);
                self.edits.push((v.span(), enc));
                if let Some(ch) = self.changes.as_mut() {
                    ch.push((text.into_owned(), new));
                }
            }
            Err(dets) => self.blocked.extend(dets),
        }
    }
}

/// An image/audio content block or a resource with a MIME type: its `data` is base64.
fn is_base64_carrier(obj: Value<'_>) -> bool {
    if obj.get("mimeType").is_some() {
        return true;
    }
    matches!(
        obj.get("type").and_then(|t| t.as_str()).as_deref(),
        Some("image" | "audio")
    )
}

/// Structural JSON equality (member order ignored, numbers compared as doubles).
fn json_eq(a: Value<'_>, b: Value<'_>) -> bool {
    if a.kind() != b.kind() {
        return false;
    }
    match a.kind() {
        Kind::String => a.as_str() == b.as_str(),
        Kind::Number => a.raw() == b.raw() || a.as_f64() == b.as_f64(),
        Kind::Bool | Kind::Null => a.raw() == b.raw(),
        Kind::Array => {
            let mut ea = a.elements();
            let mut eb = b.elements();
            loop {
                match (ea.next(), eb.next()) {
                    (None, None) => return true,
                    (Some(x), Some(y)) if json_eq(x, y) => {}
                    _ => return false,
                }
            }
        }
        Kind::Object => {
            let na = a.members().count();
            na == b.members().count()
                && a.members()
                    .all(|m| b.get(&m.key).is_some_and(|bv| json_eq(m.value, bv)))
        }
    }
}

/// Encodes a header value for `Mcp-Param-*` / `Mcp-Name`: plain when it is safe visible ASCII,
/// otherwise the `=?base64?…?=` sentinel (MCP 2026-07-28).
pub fn encode_header_value(v: &str) -> String {
    let safe = !v.is_empty()
        && v.bytes().all(|c| (0x20..0x7f).contains(&c))
        && !v.starts_with(' ')
        && !v.ends_with(' ')
        && !v.starts_with("=?base64?");
    if safe {
        return v.to_owned();
    }
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sym = |n: u32| char::from(B64.get((n & 63) as usize).copied().unwrap_or(b'A'));
    let mut out = String::from("=?base64?");
    for chunk in v.as_bytes().chunks(3) {
        let b0 = u32::from(chunk.first().copied().unwrap_or(0));
        let b1 = u32::from(chunk.get(1).copied().unwrap_or(0));
        let b2 = u32::from(chunk.get(2).copied().unwrap_or(0));
        let n = (b0 << 16) | (b1 << 8) | b2;
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        out.push(if chunk.len() > 1 { sym(n >> 6) } else { '=' });
        out.push(if chunk.len() > 2 { sym(n) } else { '=' });
    }
    out.push_str("?=");
    out
}

/// The new value of a mirrored `Mcp-Param-*` header whose decoded value is `decoded`, if the
/// argument it mirrors was rewritten (`changes` from [`Scrubbed::changes`]).
pub fn mirrored_header_value(decoded: &str, changes: &[(String, String)]) -> Option<String> {
    changes
        .iter()
        .find(|(old, _)| old == decoded)
        .map(|(_, new)| encode_header_value(new))
}

#[cfg(test)]
mod tests;
