//! JSON-RPC 2.0 message inspection for MCP, borrowed from the body bytes.
//!
//! [`parse_body`] runs the strict [`json::validate`] and then checks
//! the message shape; [`parse_message_value`] checks the shape of one already-checked value
//! (used for SSE event data too).
//!
//! Error mapping (decided here, used by every filter):
//!
//! * `-32700` Parse error: anything that is not one valid JSON text — syntax, invalid UTF-8,
//!   lone surrogates, nesting beyond the depth limit, trailing data, empty body. The reply id
//!   is `null` (JSON-RPC 2.0 §5: the id cannot be known).
//! * `-32600` Invalid Request: valid JSON with a bad shape, **and duplicate keys**. RFC 8259
//!   only says names "SHOULD be unique", so such a body is JSON, but parsers disagree on which
//!   duplicate wins (JS and Python take the last), so a filter must not guess.
//!   Message: `Invalid Request: duplicate key "name"`.
//!
//! Whenever the id can still be read (a single, valid `id` member of a top-level object),
//! the error carries it, so the reply can be matched by the client.
//!
//! Shape rules (JSON-RPC 2.0 + MCP `basic/index`): `jsonrpc` is exactly `"2.0"`; a request
//! id is a string or an integer-valued number (MCP forbids `null`); `method` is a string,
//! compared exactly; `params`, if present, is an object (MCP never uses positional params);
//! a response has exactly one of `result`/`error`; an empty batch and non-object messages are
//! invalid. Unknown members are tolerated for forward compatibility.

use std::borrow::Cow;
use std::ops::Range;

use crate::json::{self, JsonError, Kind, Limits, Value};

/// Invalid JSON was received.
pub const PARSE_ERROR: i64 = -32700;
/// The JSON sent is not a valid Request object.
pub const INVALID_REQUEST: i64 = -32600;
/// The method does not exist / is not available.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid method parameter(s); MCP also uses it for unknown tools and prompts.
pub const INVALID_PARAMS: i64 = -32602;
/// Internal JSON-RPC error.
pub const INTERNAL_ERROR: i64 = -32603;
/// MCP 2026-07-28: a mirrored HTTP header disagrees with the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// MCP 2026-07-28: the request needs a client capability that was not declared.
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
/// MCP 2026-07-28: the requested protocol version is not supported.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// A JSON-RPC request id, borrowed from the body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Id<'a> {
    /// An integer-valued number, kept as its exact JSON text (e.g. `1`, `-0`, `1e3`, `1.0`).
    Number(&'a str),
    /// A string id, unescaped.
    String(Cow<'a, str>),
}

/// An owned request id, for errors that outlive the body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdOwned {
    /// Exact JSON text of a numeric id.
    Number(String),
    /// A string id, unescaped.
    String(String),
}

impl<'a> Id<'a> {
    /// Reads an id from a value: a string, or a number whose value is an integer
    /// (and finite as a double). `None` for `null` and every other kind.
    pub fn from_value(v: Value<'a>) -> Option<Id<'a>> {
        match v.kind() {
            Kind::String => v.as_str().map(Id::String),
            Kind::Number => {
                let text = std::str::from_utf8(v.raw()).ok()?;
                is_integer_valued(text).then_some(Id::Number(text))
            }
            _ => None,
        }
    }

    /// The id as JSON to echo in a reply: the exact number text, or the string re-escaped
    /// (same value, possibly different escaping than the request).
    pub fn raw_json(&self) -> Cow<'a, [u8]> {
        match self {
            Id::Number(n) => Cow::Borrowed(n.as_bytes()),
            Id::String(s) => {
                let mut out = Vec::with_capacity(s.len() + 2);
                json::write_escaped(&mut out, s);
                Cow::Owned(out)
            }
        }
    }

    /// Appends [`Id::raw_json`] to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Id::Number(n) => out.extend_from_slice(n.as_bytes()),
            Id::String(s) => json::write_escaped(out, s),
        }
    }

    /// The string form used for the OTel `jsonrpc.request.id` attribute.
    pub fn to_attr_string(&self) -> String {
        match self {
            Id::Number(n) => (*n).to_owned(),
            Id::String(s) => s.to_string(),
        }
    }

    /// An owned copy.
    pub fn to_owned_id(&self) -> IdOwned {
        match self {
            Id::Number(n) => IdOwned::Number((*n).to_owned()),
            Id::String(s) => IdOwned::String(s.to_string()),
        }
    }
}

impl IdOwned {
    /// A borrowed view.
    pub fn as_id(&self) -> Id<'_> {
        match self {
            IdOwned::Number(n) => Id::Number(n),
            IdOwned::String(s) => Id::String(Cow::Borrowed(s)),
        }
    }
}

/// Whether a JSON number's text denotes an integer (`1`, `1.0`, `1e3`, `100e-2`), and is
/// finite as a double — JS and Python SDKs accept exactly these as integer ids.
fn is_integer_valued(text: &str) -> bool {
    if !text.parse::<f64>().is_ok_and(f64::is_finite) {
        return false;
    }
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exp) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => match e.parse::<i64>() {
            Ok(e) => (m, e),
            // An exponent beyond i64 with a finite double value means a zero mantissa.
            Err(_) => return m.bytes().all(|c| c == b'0' || c == b'.'),
        },
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let frac = frac.trim_end_matches('0');
    if int.bytes().all(|c| c == b'0') && frac.is_empty() {
        return true;
    }
    let frac_len = i64::try_from(frac.len()).unwrap_or(i64::MAX);
    let scale = exp.saturating_sub(frac_len);
    if scale >= 0 {
        return true;
    }
    if !frac.is_empty() {
        return false;
    }
    let trailing_zeros = int.bytes().rev().take_while(|&c| c == b'0').count();
    i64::try_from(trailing_zeros).unwrap_or(i64::MAX) >= -scale
}

/// MCP `_meta` fields a filter cares about (from `params._meta`).
#[derive(Debug, Clone, Default)]
pub struct Meta<'a> {
    /// `progressToken` (string or number), untouched.
    pub progress_token: Option<Value<'a>>,
    /// W3C `traceparent` (2026-07-28, SEP-414).
    pub traceparent: Option<Cow<'a, str>>,
    /// W3C `tracestate`.
    pub tracestate: Option<Cow<'a, str>>,
    /// W3C `baggage`.
    pub baggage: Option<Cow<'a, str>>,
    /// `io.modelcontextprotocol/protocolVersion` (2026-07-28 per-request version).
    pub protocol_version: Option<Cow<'a, str>>,
}

/// A request (with id) or notification (without).
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// `None` for a notification.
    pub id: Option<Id<'a>>,
    /// The method, exactly as sent (compare case-sensitively).
    pub method: Cow<'a, str>,
    /// `params` (always an object when present).
    pub params: Option<Value<'a>>,
    /// `params.name` when it is a string (tools/call, prompts/get).
    pub name: Option<Cow<'a, str>>,
    /// `params.uri` when it is a string (resources/read, resources/subscribe).
    pub uri: Option<Cow<'a, str>>,
    /// Selected `params._meta` fields.
    pub meta: Meta<'a>,
    /// Span of the whole message object in the input.
    pub span: Range<usize>,
}

/// The outcome carried by a response.
#[derive(Debug, Clone)]
pub enum Outcome<'a> {
    /// `result` (any JSON value).
    Result(Value<'a>),
    /// `error`.
    Error {
        /// `error.code`.
        code: i64,
        /// `error.message`, unescaped.
        message: Cow<'a, str>,
        /// `error.data`, if present.
        data: Option<Value<'a>>,
    },
}

/// A response (result or error).
#[derive(Debug, Clone)]
pub struct Response<'a> {
    /// `None` when the id is absent or `null` (allowed for error responses only).
    pub id: Option<Id<'a>>,
    /// Result or error.
    pub outcome: Outcome<'a>,
    /// Span of the whole message object in the input.
    pub span: Range<usize>,
}

/// One JSON-RPC message.
#[derive(Debug, Clone)]
pub enum Message<'a> {
    /// Request or notification.
    Request(Request<'a>),
    /// Result or error response.
    Response(Response<'a>),
}

impl<'a> Message<'a> {
    /// The message id, if any.
    pub fn id(&self) -> Option<&Id<'a>> {
        match self {
            Message::Request(r) => r.id.as_ref(),
            Message::Response(r) => r.id.as_ref(),
        }
    }

    /// Span of the message object in the input.
    pub fn span(&self) -> Range<usize> {
        match self {
            Message::Request(r) => r.span.clone(),
            Message::Response(r) => r.span.clone(),
        }
    }
}

/// A whole POST body: one message or a (2025-03-26) batch.
// A body is parsed once per request and lives on the stack; boxing `Single` would add an
// allocation to the common path to save bytes in the rare batch case.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Body<'a> {
    /// A single message object.
    Single(Message<'a>),
    /// A non-empty array of messages.
    Batch(Vec<Message<'a>>),
}

impl<'a> Body<'a> {
    /// All messages, in order.
    pub fn messages(&self) -> &[Message<'a>] {
        match self {
            Body::Single(m) => std::slice::from_ref(m),
            Body::Batch(v) => v,
        }
    }
}

/// Why a body was refused, ready to be turned into a JSON-RPC error reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({code})")]
pub struct RpcError {
    /// [`PARSE_ERROR`] or [`INVALID_REQUEST`].
    pub code: i64,
    /// Human-readable message for the reply (never contains body text beyond a
    /// 64-char key).
    pub message: Cow<'static, str>,
    /// The request id, when it could be read.
    pub id: Option<IdOwned>,
    /// The underlying JSON error, if the body failed the JSON check (for logs/stats).
    pub cause: Option<JsonError>,
}

impl RpcError {
    fn invalid(message: &'static str, id: Option<IdOwned>) -> RpcError {
        RpcError {
            code: INVALID_REQUEST,
            message: Cow::Borrowed(message),
            id,
            cause: None,
        }
    }

    /// The full JSON-RPC error response for this error.
    pub fn to_response_bytes(&self) -> Vec<u8> {
        let id = self.id.as_ref().map(IdOwned::as_id);
        error_response(id.as_ref(), self.code, &self.message, None)
    }
}

/// Builds `{"jsonrpc":"2.0","id":<id or null>,"error":{"code":…,"message":…[,"data":…]}}`.
///
/// `data_json` is inserted verbatim and must be one valid JSON value.
pub fn error_response(
    id: Option<&Id<'_>>,
    code: i64,
    message: &str,
    data_json: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + message.len() + data_json.map_or(0, <[u8]>::len));
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    match id {
        Some(id) => id.write_json(&mut out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"error\":{\"code\":");
    out.extend_from_slice(code.to_string().as_bytes());
    out.extend_from_slice(b",\"message\":");
    json::write_escaped(&mut out, message);
    if let Some(data) = data_json {
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(data);
    }
    out.extend_from_slice(b"}}");
    out
}

/// Validates `input` strictly and parses it as one message or a batch.
pub fn parse_body<'a>(input: &'a [u8], limits: &Limits) -> Result<Body<'a>, RpcError> {
    let root = match json::validate(input, limits) {
        Ok(v) => v,
        Err(e @ JsonError::DuplicateKey { .. }) => {
            return Err(duplicate_key_error(input, limits, e))
        }
        Err(e) => {
            return Err(RpcError {
                code: PARSE_ERROR,
                message: Cow::Borrowed("Parse error"),
                id: None,
                cause: Some(e),
            })
        }
    };
    match root.kind() {
        Kind::Object => parse_message_value(root).map(Body::Single),
        Kind::Array => {
            let mut messages = Vec::new();
            for element in root.elements() {
                messages.push(parse_message_value(element)?);
            }
            if messages.is_empty() {
                return Err(RpcError::invalid("Invalid Request: empty batch", None));
            }
            Ok(Body::Batch(messages))
        }
        _ => Err(RpcError::invalid(
            "Invalid Request: a message must be a JSON object",
            None,
        )),
    }
}

fn duplicate_key_error(input: &[u8], limits: &Limits, e: JsonError) -> RpcError {
    let key = match &e {
        JsonError::DuplicateKey { key, .. } => key.as_str(),
        _ => "",
    };
    // The body is still structurally JSON: read the id if it is unambiguous.
    let id = json::skim(input, limits)
        .ok()
        .and_then(readable_id)
        .map(|id| id.to_owned_id());
    RpcError {
        code: INVALID_REQUEST,
        message: Cow::Owned(format!("Invalid Request: duplicate key {}", quoted(key))),
        id,
        cause: Some(e),
    }
}

/// The JSON-RPC error that replaces a response message refused as ambiguous (a duplicate key,
/// which clients resolve by keeping the last member and a filter's reader by the first):
/// `-32603` with the message's id when it has exactly one valid `id`, so the client's request
/// still gets its answer.
pub fn ambiguous_response(input: &[u8], limits: &Limits, e: &JsonError) -> Vec<u8> {
    let rpc = duplicate_key_error(input, limits, e.clone());
    let key = match e {
        JsonError::DuplicateKey { key, .. } => quoted(key),
        _ => String::from("(unknown)"),
    };
    error_response(
        rpc.id.as_ref().map(IdOwned::as_id).as_ref(),
        INTERNAL_ERROR,
        &format!("Gateway refused an ambiguous response: duplicate key {key}"),
        None,
    )
}

fn quoted(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    json::write_escaped(&mut out, s);
    String::from_utf8_lossy(&out).into_owned()
}

/// The id of a message object when there is exactly one `id` member and it is valid.
fn readable_id(v: Value<'_>) -> Option<Id<'_>> {
    let b = v.input();
    let mut ids = v.raw_members().filter(|m| m.key_is(b, "id"));
    let first = ids.next()?;
    if ids.next().is_some() {
        return None;
    }
    Id::from_value(first.value)
}

/// Checks the shape of one message value (an object) and extracts the MCP fields.
pub fn parse_message_value(v: Value<'_>) -> Result<Message<'_>, RpcError> {
    if v.kind() != Kind::Object {
        return Err(RpcError::invalid(
            "Invalid Request: a message must be a JSON object",
            None,
        ));
    }
    let b = v.input();
    let mut jsonrpc = None;
    let mut id = None;
    let mut method = None;
    let mut params = None;
    let mut result = None;
    let mut error = None;
    let mut duplicate = false;
    for m in v.raw_members() {
        let slot = if m.key_is(b, "jsonrpc") {
            &mut jsonrpc
        } else if m.key_is(b, "id") {
            &mut id
        } else if m.key_is(b, "method") {
            &mut method
        } else if m.key_is(b, "params") {
            &mut params
        } else if m.key_is(b, "result") {
            &mut result
        } else if m.key_is(b, "error") {
            &mut error
        } else {
            continue;
        };
        // Only reachable for skimmed input: validate() already refuses duplicates.
        duplicate |= slot.replace(m.value).is_some();
    }
    if duplicate {
        return Err(RpcError::invalid("Invalid Request: duplicate member", None));
    }
    let owned_id = || id.and_then(Id::from_value).map(|i| i.to_owned_id());
    if jsonrpc.and_then(|j| j.as_str()).as_deref() != Some("2.0") {
        return Err(RpcError::invalid(
            "Invalid Request: \"jsonrpc\" must be \"2.0\"",
            owned_id(),
        ));
    }
    if let Some(method) = method {
        if result.is_some() || error.is_some() {
            return Err(RpcError::invalid(
                "Invalid Request: a request cannot carry \"result\" or \"error\"",
                owned_id(),
            ));
        }
        let req_id = match id {
            None => None,
            Some(idv) => Some(Id::from_value(idv).ok_or_else(|| {
                RpcError::invalid(
                    "Invalid Request: \"id\" must be a string or an integer",
                    None,
                )
            })?),
        };
        let Some(method_name) = method.as_str() else {
            return Err(RpcError::invalid(
                "Invalid Request: \"method\" must be a string",
                owned_id(),
            ));
        };
        if params.is_some_and(|p| p.kind() != Kind::Object) {
            return Err(RpcError::invalid(
                "Invalid Request: \"params\" must be an object",
                owned_id(),
            ));
        }
        let mut request = Request {
            id: req_id,
            method: method_name,
            params,
            name: None,
            uri: None,
            meta: Meta::default(),
            span: v.span(),
        };
        if let Some(p) = params {
            extract_params(p, &mut request);
        }
        return Ok(Message::Request(request));
    }
    let outcome = match (result, error) {
        (Some(r), None) => {
            if id.is_none_or(|i| i.is_null()) {
                return Err(RpcError::invalid(
                    "Invalid Request: a result response needs an id",
                    None,
                ));
            }
            Outcome::Result(r)
        }
        (None, Some(e)) => parse_error_object(e).ok_or_else(|| {
            RpcError::invalid("Invalid Request: malformed \"error\" object", owned_id())
        })?,
        (Some(_), Some(_)) => {
            return Err(RpcError::invalid(
                "Invalid Request: a response must not carry both \"result\" and \"error\"",
                owned_id(),
            ))
        }
        (None, None) => {
            return Err(RpcError::invalid(
                "Invalid Request: neither a request nor a response",
                owned_id(),
            ))
        }
    };
    let resp_id = match id {
        None => None,
        Some(idv) if idv.is_null() => None,
        Some(idv) => Some(Id::from_value(idv).ok_or_else(|| {
            RpcError::invalid(
                "Invalid Request: \"id\" must be a string or an integer",
                None,
            )
        })?),
    };
    Ok(Message::Response(Response {
        id: resp_id,
        outcome,
        span: v.span(),
    }))
}

fn parse_error_object(e: Value<'_>) -> Option<Outcome<'_>> {
    if e.kind() != Kind::Object {
        return None;
    }
    let b = e.input();
    let mut code = None;
    let mut message = None;
    let mut data = None;
    for m in e.raw_members() {
        if m.key_is(b, "code") {
            code = Some(m.value.as_i64()?);
        } else if m.key_is(b, "message") {
            message = Some(m.value.as_str()?);
        } else if m.key_is(b, "data") {
            data = Some(m.value);
        }
    }
    Some(Outcome::Error {
        code: code?,
        message: message?,
        data,
    })
}

fn extract_params<'a>(params: Value<'a>, request: &mut Request<'a>) {
    let b = params.input();
    for m in params.raw_members() {
        if m.key_is(b, "name") {
            request.name = m.value.as_str();
        } else if m.key_is(b, "uri") {
            request.uri = m.value.as_str();
        } else if m.key_is(b, "_meta") {
            let meta = &mut request.meta;
            for f in m.value.raw_members() {
                if f.key_is(b, "progressToken") {
                    meta.progress_token = Some(f.value);
                } else if f.key_is(b, "traceparent") {
                    meta.traceparent = f.value.as_str();
                } else if f.key_is(b, "tracestate") {
                    meta.tracestate = f.value.as_str();
                } else if f.key_is(b, "baggage") {
                    meta.baggage = f.value.as_str();
                } else if f.key_is(b, crate::mcp::META_PROTOCOL_VERSION) {
                    meta.protocol_version = f.value.as_str();
                }
            }
        }
    }
}
