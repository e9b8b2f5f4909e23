//! MCP protocol constants, protocol eras and the 2026-07-28 header/body consistency checks.
//!
//! Two eras share one endpoint (see the spec's `basic/versioning`): *Legacy*
//! (2024-11-05 … 2025-11-25, `initialize` handshake and sessions) and *Stateless*
//! (2026-07-28 and later: version and capabilities in every request's `_meta`, and the
//! `Mcp-Method` / `Mcp-Name` headers mirroring the body, `basic/transports/streamable-http`).
//!
//! A filter that inspects the body must never let a mirrored header disagree with it: an
//! intermediary or server routing on the header would otherwise act on a different method or
//! tool than the one the filter authorised. So [`check_stateless_headers`] also checks
//! headers that are present on legacy-era requests.

use std::borrow::Cow;

use crate::jsonrpc::{self, Id, Request};

/// MCP method names (compared exactly; method names are case-sensitive).
pub mod methods {
    /// `initialize` (legacy handshake).
    pub const INITIALIZE: &str = "initialize";
    /// `notifications/initialized` (legacy handshake).
    pub const INITIALIZED: &str = "notifications/initialized";
    /// `ping` (removed in 2026-07-28).
    pub const PING: &str = "ping";
    /// `server/discover` (2026-07-28).
    pub const SERVER_DISCOVER: &str = "server/discover";
    /// `subscriptions/listen` (2026-07-28).
    pub const SUBSCRIPTIONS_LISTEN: &str = "subscriptions/listen";
    /// `tools/list`.
    pub const TOOLS_LIST: &str = "tools/list";
    /// `tools/call`.
    pub const TOOLS_CALL: &str = "tools/call";
    /// `prompts/list`.
    pub const PROMPTS_LIST: &str = "prompts/list";
    /// `prompts/get`.
    pub const PROMPTS_GET: &str = "prompts/get";
    /// `resources/list`.
    pub const RESOURCES_LIST: &str = "resources/list";
    /// `resources/read`.
    pub const RESOURCES_READ: &str = "resources/read";
    /// `resources/templates/list`.
    pub const RESOURCES_TEMPLATES_LIST: &str = "resources/templates/list";
    /// `resources/subscribe` (legacy).
    pub const RESOURCES_SUBSCRIBE: &str = "resources/subscribe";
    /// `resources/unsubscribe` (legacy).
    pub const RESOURCES_UNSUBSCRIBE: &str = "resources/unsubscribe";
    /// `completion/complete`.
    pub const COMPLETION_COMPLETE: &str = "completion/complete";
    /// `logging/setLevel` (legacy).
    pub const LOGGING_SET_LEVEL: &str = "logging/setLevel";
    /// `sampling/createMessage` (server→client, legacy).
    pub const SAMPLING_CREATE_MESSAGE: &str = "sampling/createMessage";
    /// `elicitation/create` (server→client, legacy).
    pub const ELICITATION_CREATE: &str = "elicitation/create";
    /// `roots/list` (server→client, legacy).
    pub const ROOTS_LIST: &str = "roots/list";
    /// `tasks/get` (2025-11-25).
    pub const TASKS_GET: &str = "tasks/get";
    /// `tasks/result` (2025-11-25): carries a `tools/call` result without the tool name.
    pub const TASKS_RESULT: &str = "tasks/result";
    /// `tasks/list` (2025-11-25).
    pub const TASKS_LIST: &str = "tasks/list";
    /// `tasks/cancel` (2025-11-25).
    pub const TASKS_CANCEL: &str = "tasks/cancel";
    /// `notifications/progress`.
    pub const NOTIFICATIONS_PROGRESS: &str = "notifications/progress";
    /// `notifications/message` (logging).
    pub const NOTIFICATIONS_MESSAGE: &str = "notifications/message";
    /// `notifications/cancelled`.
    pub const NOTIFICATIONS_CANCELLED: &str = "notifications/cancelled";
    /// `notifications/tools/list_changed`.
    pub const NOTIFICATIONS_TOOLS_LIST_CHANGED: &str = "notifications/tools/list_changed";
    /// `notifications/prompts/list_changed`.
    pub const NOTIFICATIONS_PROMPTS_LIST_CHANGED: &str = "notifications/prompts/list_changed";
    /// `notifications/resources/list_changed`.
    pub const NOTIFICATIONS_RESOURCES_LIST_CHANGED: &str = "notifications/resources/list_changed";
    /// `notifications/resources/updated`.
    pub const NOTIFICATIONS_RESOURCES_UPDATED: &str = "notifications/resources/updated";
}

/// HTTP header names, lower-case (Envoy lower-cases header names).
pub mod headers {
    /// Legacy-era session id.
    pub const MCP_SESSION_ID: &str = "mcp-session-id";
    /// Negotiated (legacy) or per-request (2026-07-28) protocol version.
    pub const MCP_PROTOCOL_VERSION: &str = "mcp-protocol-version";
    /// 2026-07-28: mirrors `method`.
    pub const MCP_METHOD: &str = "mcp-method";
    /// 2026-07-28: mirrors `params.name` / `params.uri`.
    pub const MCP_NAME: &str = "mcp-name";
    /// 2026-07-28: prefix of headers mirroring `x-mcp-header` arguments.
    pub const MCP_PARAM_PREFIX: &str = "mcp-param-";
}

/// `_meta` key carrying the per-request protocol version (2026-07-28).
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// Protocol versions of the legacy (stateful, `initialize`) era.
pub const LEGACY_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// The first stateless protocol version.
pub const STATELESS_VERSION: &str = "2026-07-28";

/// What servers assume without any version information (2025-06-18+ transports:
/// "the server SHOULD assume protocol version 2025-03-26").
pub const DEFAULT_VERSION: &str = "2025-03-26";

/// Protocol era of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Era {
    /// 2024-11-05 … 2025-11-25.
    Legacy,
    /// 2026-07-28 and later.
    Stateless,
}

/// Whether `v` is shaped `YYYY-MM-DD` (ASCII digits and dashes only).
fn is_date_shaped(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// Whether a version string denotes the stateless era: `2026-07-28` or any later
/// `YYYY-MM-DD` (date-shaped strings compare correctly as text).
pub fn is_stateless_version(v: &str) -> bool {
    is_date_shaped(v) && v >= STATELESS_VERSION
}

/// Stateless when the `MCP-Protocol-Version` header is a stateless version, or the body
/// carries `_meta["io.modelcontextprotocol/protocolVersion"]`, or the method is
/// `server/discover` (which only exists in the stateless era); Legacy otherwise.
pub fn detect_era(protocol_version_header: Option<&str>, req: &Request<'_>) -> Era {
    if protocol_version_header.is_some_and(is_stateless_version)
        || req.meta.protocol_version.is_some()
        || req.method == methods::SERVER_DISCOVER
    {
        Era::Stateless
    } else {
        Era::Legacy
    }
}

/// The protocol version a request speaks: the header, else `params.protocolVersion` of an
/// `initialize` request, else `_meta` protocolVersion, else [`DEFAULT_VERSION`].
pub fn effective_version<'a>(
    protocol_version_header: Option<&'a str>,
    req: &Request<'a>,
) -> Cow<'a, str> {
    if let Some(h) = protocol_version_header {
        return Cow::Borrowed(h);
    }
    if req.method == methods::INITIALIZE {
        if let Some(v) = req
            .params
            .and_then(|p| p.get("protocolVersion"))
            .and_then(|v| v.as_str())
        {
            return v;
        }
    }
    if let Some(v) = &req.meta.protocol_version {
        return v.clone();
    }
    Cow::Borrowed(DEFAULT_VERSION)
}

/// The mirrored request headers (values as received; `None` when absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestHeaders<'h> {
    /// `MCP-Protocol-Version`.
    pub protocol_version: Option<&'h str>,
    /// `Mcp-Method`.
    pub method: Option<&'h str>,
    /// `Mcp-Name` (possibly `=?base64?…?=`).
    pub name: Option<&'h str>,
}

/// A header disagrees with the body, or a required header is missing or undecodable.
/// Reply with HTTP 400 and JSON-RPC [`HEADER_MISMATCH`](jsonrpc::HEADER_MISMATCH).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HeaderMismatch {
    /// e.g. `Header mismatch: Mcp-Name header value 'foo' does not match body value 'bar'`;
    /// values are truncated to 128 chars and control characters replaced.
    pub message: String,
}

impl HeaderMismatch {
    /// The JSON-RPC error code (`-32020`).
    pub fn code(&self) -> i64 {
        jsonrpc::HEADER_MISMATCH
    }

    /// The JSON-RPC error response, echoing the request id.
    pub fn to_response_bytes(&self, id: Option<&Id<'_>>) -> Vec<u8> {
        jsonrpc::error_response(id, self.code(), &self.message, None)
    }

    fn missing(header: &str) -> HeaderMismatch {
        HeaderMismatch {
            message: format!("Header mismatch: missing required {header} header"),
        }
    }

    fn differs(header: &str, header_value: &str, body_value: Option<&str>) -> HeaderMismatch {
        let body = match body_value {
            Some(v) => format!("'{}'", sanitize(v)),
            None => "(absent)".to_owned(),
        };
        HeaderMismatch {
            message: format!(
                "Header mismatch: {header} header value '{}' does not match body value {body}",
                sanitize(header_value)
            ),
        }
    }
}

const MAX_SHOWN_CHARS: usize = 128;

/// Makes a value safe to put in a message and a log line.
fn sanitize(v: &str) -> String {
    v.chars()
        .take(MAX_SHOWN_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

const B64_PREFIX: &str = "=?base64?";
const B64_SUFFIX: &str = "?=";

/// Decodes a header value that may use the `=?base64?…?=` sentinel (markers are
/// case-sensitive). Plain values are returned as they are.
pub fn decode_header_value(v: &str) -> Result<Cow<'_, str>, HeaderValueError> {
    let Some(inner) = v
        .strip_prefix(B64_PREFIX)
        .and_then(|r| r.strip_suffix(B64_SUFFIX))
    else {
        return Ok(Cow::Borrowed(v));
    };
    let bytes = base64_decode(inner).ok_or(HeaderValueError::InvalidBase64)?;
    String::from_utf8(bytes)
        .map(Cow::Owned)
        .map_err(|_| HeaderValueError::InvalidUtf8)
}

/// Why a `=?base64?…?=` header value could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderValueError {
    /// Not standard base64.
    #[error("invalid base64")]
    InvalidBase64,
    /// The decoded bytes are not UTF-8.
    #[error("decoded value is not UTF-8")]
    InvalidUtf8,
}

fn b64_sextet(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Standard-alphabet base64 (RFC 4648 §4); padding optional, no whitespace.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let data = b
        .strip_suffix(b"==")
        .or_else(|| b.strip_suffix(b"="))
        .unwrap_or(b);
    if data.len() != b.len() && !b.len().is_multiple_of(4) {
        return None;
    }
    if data.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() / 4 * 3 + 2);
    for chunk in data.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | b64_sextet(c)?;
        }
        let bytes = match chunk.len() {
            4 => 3,
            3 => {
                acc <<= 6;
                2
            }
            2 => {
                acc <<= 12;
                1
            }
            _ => return None,
        };
        let full = acc.to_be_bytes();
        out.extend_from_slice(full.get(1..1 + bytes)?);
    }
    Some(out)
}

/// Methods whose `Mcp-Name` mirrors `params.name` (else `params.uri` for resources/read).
fn name_source<'r>(req: &'r Request<'_>) -> Option<Option<&'r str>> {
    match req.method.as_ref() {
        methods::TOOLS_CALL | methods::PROMPTS_GET => Some(req.name.as_deref()),
        methods::RESOURCES_READ => Some(req.uri.as_deref()),
        _ => None,
    }
}

/// Checks the mirrored headers against the body.
///
/// Stateless era ([`detect_era`]): `MCP-Protocol-Version` is required; `Mcp-Method` is
/// required on requests (on notifications it is checked when present) and must equal the
/// method; for `tools/call`, `prompts/get` (`params.name`) and `resources/read`
/// (`params.uri`) `Mcp-Name` is required and must equal the body value after base64-sentinel
/// decoding. `MCP-Protocol-Version` must equal `_meta` protocolVersion when both are present.
///
/// Legacy era: nothing is required, but a header that is present must still match.
/// `Mcp-Name` on other methods has no defined source field and is not checked.
pub fn check_stateless_headers(
    h: &RequestHeaders<'_>,
    req: &Request<'_>,
) -> Result<(), HeaderMismatch> {
    let stateless = detect_era(h.protocol_version, req) == Era::Stateless;

    match (h.protocol_version, req.meta.protocol_version.as_deref()) {
        (None, _) if stateless => return Err(HeaderMismatch::missing("MCP-Protocol-Version")),
        (Some(hv), Some(bv)) if hv != bv => {
            return Err(HeaderMismatch::differs(
                "MCP-Protocol-Version",
                hv,
                Some(bv),
            ))
        }
        _ => {}
    }

    match h.method {
        None if stateless && req.id.is_some() => return Err(HeaderMismatch::missing("Mcp-Method")),
        Some(hm) if hm != req.method => {
            return Err(HeaderMismatch::differs("Mcp-Method", hm, Some(&req.method)))
        }
        _ => {}
    }

    if let Some(body_value) = name_source(req) {
        match h.name {
            None if stateless => return Err(HeaderMismatch::missing("Mcp-Name")),
            None => {}
            Some(raw) => {
                let decoded = decode_header_value(raw).map_err(|e| HeaderMismatch {
                    message: format!(
                        "Header mismatch: Mcp-Name header value '{}' is not decodable ({e})",
                        sanitize(raw)
                    ),
                })?;
                if Some(decoded.as_ref()) != body_value {
                    return Err(HeaderMismatch::differs("Mcp-Name", &decoded, body_value));
                }
            }
        }
    }
    Ok(())
}
