//! The per-request driver shared by every filter: the request gate and response handling.

use crate::abi::{self, BufferType, HostError, MapType};
use crate::root::Configured;
use crate::McpFilter;
use mcp_core::config::{BatchPolicy, FailureMode};
use mcp_core::json::Limits;
use mcp_core::jsonrpc::{self, Body, Message};
use mcp_core::mcp::{self, Era};
use mcp_core::sse::{EventAction, SseEvent, SseStream};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

/// What the filter sees of the request headers.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RequestHead {
    /// `:method`.
    pub method: String,
    /// `:path`.
    pub path: String,
    /// `content-type`.
    pub content_type: Option<String>,
    /// `mcp-protocol-version`.
    pub protocol_version: Option<String>,
    /// `mcp-method` (2026-07-28).
    pub mcp_method: Option<String>,
    /// `mcp-name` (2026-07-28), still encoded if it uses the base64 sentinel.
    pub mcp_name: Option<String>,
    /// `mcp-session-id` (legacy era).
    pub session_id: Option<String>,
    /// `authorization` (a credential: never log it).
    pub authorization: Option<String>,
    /// The client sent `x-mcp-method` or `x-mcp-tool`: headers mcp_telemetry sets for routing,
    /// which must never be taken from a client.
    pub routing_headers: bool,
    /// The first of [`SINGLETON_HEADERS`] the request carries more than once: the filter
    /// would check one value while the upstream may read another, so the gate refuses it.
    pub repeated: Option<&'static str>,
    /// `accept-encoding` (all values, comma-joined).
    pub accept_encoding: Option<String>,
    /// The request has no body.
    pub end_of_stream: bool,
    /// Envoy's id of this request's context: what [`wake`] takes after [`HeadAction::Hold`].
    pub context_id: u32,
    /// Host clock (ns) when the request headers arrived.
    pub received_ns: u64,
}

impl std::fmt::Debug for RequestHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestHead")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("content_type", &self.content_type)
            .field("protocol_version", &self.protocol_version)
            .field("mcp_method", &self.mcp_method)
            .field("mcp_name", &self.mcp_name)
            .field("session_id", &self.session_id)
            // A credential never reaches a log line.
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .field("routing_headers", &self.routing_headers)
            .field("repeated", &self.repeated)
            .field("accept_encoding", &self.accept_encoding)
            .field("end_of_stream", &self.end_of_stream)
            .field("context_id", &self.context_id)
            .field("received_ns", &self.received_ns)
            .finish()
    }
}

/// `x-mcp-method`, `x-mcp-tool`: see [`RequestHead::routing_headers`].
const ROUTING_HEADERS: [&[u8]; 2] = [b"x-mcp-method", b"x-mcp-tool"];

/// Request headers that must appear at most once (see [`RequestHead::repeated`]). A filter
/// checks one value (the first or the last) and forwards them all; servers differ in which one
/// they read (most read the first), so two of them are a smuggling vector.
pub const SINGLETON_HEADERS: [&str; 5] = [
    mcp::headers::MCP_METHOD,
    mcp::headers::MCP_NAME,
    mcp::headers::MCP_PROTOCOL_VERSION,
    mcp::headers::MCP_SESSION_ID,
    "authorization",
];

impl RequestHead {
    /// Reads the headers it keeps from a map in the proxy-wasm format, copying only those.
    fn from_map(map: &[u8], end_of_stream: bool) -> Self {
        let mut h = RequestHead {
            end_of_stream,
            ..RequestHead::default()
        };
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        let mut seen = [false; SINGLETON_HEADERS.len()];
        for (k, v) in abi::map_pairs(map) {
            // `mcp_name` is `mcp-name` to servers that fold `_` into `-` (CGI, WSGI): an
            // underscore spelling counts as one more copy, so it is refused either way.
            let folded = |n: &str| {
                n.len() == k.len()
                    && n.bytes()
                        .zip(k)
                        .all(|(a, &b)| a == b || (a == b'-' && b == b'_'))
            };
            if let Some(i) = SINGLETON_HEADERS.iter().position(|n| folded(n)) {
                let underscore = k.contains(&b'_');
                // Envoy joins two Authorization headers into one value with a comma, which no
                // bearer token contains (RFC 6750 b64token).
                let joined = k == b"authorization" && v.contains(&b',');
                match seen.get_mut(i) {
                    Some(s) if *s || underscore || joined => {
                        h.repeated = h.repeated.or(SINGLETON_HEADERS.get(i).copied());
                        *s = true;
                    }
                    Some(s) => *s = true,
                    None => {}
                }
            }
            match k {
                b":method" => h.method = text(v),
                b":path" => h.path = text(v),
                b"content-type" => h.content_type = Some(text(v)),
                b"accept-encoding" => {
                    let v = text(v);
                    h.accept_encoding = Some(match h.accept_encoding.take() {
                        Some(prev) => format!("{prev}, {v}"),
                        None => v,
                    });
                }
                b"authorization" if h.authorization.is_none() => {
                    h.authorization = Some(text(v));
                }
                _ if k == mcp::headers::MCP_PROTOCOL_VERSION.as_bytes() => {
                    h.protocol_version = Some(text(v));
                }
                _ if k == mcp::headers::MCP_METHOD.as_bytes() => h.mcp_method = Some(text(v)),
                _ if k == mcp::headers::MCP_NAME.as_bytes() => h.mcp_name = Some(text(v)),
                _ if k == mcp::headers::MCP_SESSION_ID.as_bytes() => {
                    h.session_id = Some(text(v));
                }
                _ if ROUTING_HEADERS.contains(&k) => h.routing_headers = true,
                _ => {}
            }
        }
        h
    }
}

/// What the filter sees of the response headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseHead {
    /// `:status`.
    pub status: u32,
    /// `content-type`.
    pub content_type: Option<String>,
    /// The body's framing, from `content-type` (the only bodies the driver hands over).
    pub framing: Framing,
    /// `content-encoding` (all values, comma-joined) when it is anything but `identity`: the
    /// body is not readable as it is, and the driver never hands it to the filter.
    pub content_encoding: Option<String>,
    /// The response has no body.
    pub end_of_stream: bool,
}

/// How a response body carries JSON-RPC messages, by its media type, read the way MCP clients
/// read it: the TypeScript SDK takes a body as SSE when `content-type` *contains*
/// `text/event-stream` and as JSON when it contains `application/json`; the Python SDK looks at
/// the start of the lower-cased value. The filter sees what both would act on, or refuses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Framing {
    /// `application/json`: one message, the whole body.
    Json,
    /// `text/event-stream`: one message per SSE event.
    Sse,
    /// Both media types appear, or `content-type` is repeated: clients may disagree on the
    /// framing, so the body is never forwarded unread to a filter that must read it.
    Ambiguous,
    /// Anything else (or no `content-type`): clients refuse it as an MCP message.
    #[default]
    Other,
}

impl Framing {
    /// The framing of a `content-type` value (case-insensitive).
    pub fn of(content_type: Option<&str>) -> Self {
        let ct = content_type.unwrap_or("").to_ascii_lowercase();
        let sse = ct.contains("text/event-stream");
        let json = ct.contains("application/json");
        match (sse, json) {
            (true, true) => Framing::Ambiguous,
            (true, false) => Framing::Sse,
            (false, true) => Framing::Json,
            (false, false) => Framing::Other,
        }
    }
}

/// `Some(value)` when a `content-encoding` value means the body is encoded (anything but empty
/// or `identity`, case-insensitive).
fn encoded(content_encoding: Option<&str>) -> Option<String> {
    let v = content_encoding?;
    let plain = v
        .split(',')
        .map(str::trim)
        .all(|c| c.is_empty() || c.eq_ignore_ascii_case("identity"));
    (!plain).then(|| v.to_owned())
}

/// A reply the filter sends instead of forwarding the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status.
    pub status: u32,
    /// `%RESPONSE_CODE_DETAILS%` for access logs: `<filter>_<reason>`, no white space.
    pub details: String,
    /// Response headers (besides the ones Envoy adds).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl LocalReply {
    /// A JSON-RPC message body (`application/json`).
    pub fn json(status: u32, details: impl Into<String>, body: Vec<u8>) -> Self {
        LocalReply {
            status,
            details: details.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body,
        }
    }

    fn send(&self) -> Result<(), HostError> {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        abi::send_local_response(self.status, &self.details, &self.body, &headers)
    }
}

/// Decision on request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadAction {
    /// Buffer and inspect the body (POST with a body); other requests continue.
    Inspect,
    /// Let the request through without reading its body.
    Pass,
    /// Answer locally.
    Reply(LocalReply),
    /// Keep the request waiting (headers held, any body buffered up to `max_body_bytes`) until
    /// [`wake`] is called with its `context_id`; then `on_request_head` runs again and its new
    /// answer applies. The filter must make sure `wake` comes (it owns the reason for waiting).
    Hold,
}

/// Decision just before a request goes upstream ([`crate::McpFilter::before_forward`]), after
/// every head and message decision allowed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardAction {
    /// Forward it now.
    Continue,
    /// Answer locally; nothing reaches the upstream.
    Reply(LocalReply),
    /// Keep it waiting (headers and body held) until an answer to a [`request_call`] made for
    /// it arrives ([`crate::McpFilter::on_call_response`]) or [`wake`] is called with its
    /// `context_id`; then `before_forward` is asked again.
    Hold,
}

/// One parsed request message handed to the filter.
#[derive(Debug)]
pub struct Inspected<'a> {
    /// Request headers.
    pub head: &'a RequestHead,
    /// The message (a request, notification, or a client's JSON-RPC response).
    pub message: &'a Message<'a>,
    /// The MCP era of this request.
    pub era: Era,
    /// The whole request body.
    pub body: &'a [u8],
    /// Position inside a batch (`batch: each`), `None` for a single message.
    pub batch_index: Option<usize>,
}

/// Decision on a request message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestAction {
    /// Forward unchanged.
    Continue,
    /// Answer locally; nothing reaches the upstream.
    Reply(LocalReply),
    /// Forward this body instead (Content-Length is fixed).
    Rewrite(Vec<u8>),
}

/// Whether the filter wants the response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseInterest {
    /// No: the response streams through untouched.
    None,
    /// Yes, to change it: JSON bodies are held (headers too, so Content-Length can follow a
    /// rewrite); SSE streams are handed over event by event.
    Messages,
    /// Yes, to read it only: nothing is held or changed. A JSON body is copied as it passes and
    /// handed over whole at its end (not at all if it exceeds `max_body_bytes`); SSE events as
    /// they complete. The filter's [`MessageAction`] is ignored, and a failure to read (an SSE
    /// event over the limit, a host error) ends the observation, never the response.
    Observe,
}

/// Decision on one response message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageAction {
    /// Forward unchanged.
    Keep,
    /// Forward this JSON instead (for SSE, the event's `data`; other fields are kept).
    Replace(Vec<u8>),
    /// Remove the message (an SSE event disappears; a JSON body becomes empty).
    Drop,
}

enum Req {
    /// Not reading the body.
    Idle,
    /// Headers held unread until the first body callback (see `on_http_request_headers`).
    Deferred,
    /// Body being buffered.
    Buffering,
    /// Waiting for [`wake`] ([`HeadAction::Hold`]); `Some(size)` once the whole body is buffered.
    Held(Option<usize>),
    /// Allowed, waiting to be forwarded ([`ForwardAction::Hold`]): for an answer to a
    /// [`request_call`] or a [`wake`].
    Forwarding,
    /// A local reply was sent; swallow whatever follows.
    Replied,
}

enum Resp {
    Pass,
    Json,
    /// Observed JSON: the bytes seen so far.
    JsonSeen(Vec<u8>),
    Sse(Box<SseStream>),
    /// Observed SSE.
    SseSeen(Box<SseStream>),
    /// A 2xx response the filter must read, of a media type no client reads as MCP: headers
    /// held until the body turns out empty (passes) or not (refused).
    OtherHeld,
    /// A failure under `failure_mode: closed` in a stream already started: forward nothing more.
    Dead,
}

/// A held request that [`wake`] can resume from another context's callback.
trait Resume {
    fn resume(&mut self);
    /// The answer to a [`request_call`] this request made.
    fn deliver(&mut self, token: u32, num_headers: usize, body_size: usize);
}

thread_local! {
    // Requests in `Req::Held` or `Req::Forwarding`, by context id. Weak: Envoy may end a held
    // request (client gone, timeout) and drop its context before anybody wakes it.
    static HELD: RefCell<HashMap<u32, Weak<RefCell<dyn Resume>>>> = RefCell::new(HashMap::new());
    // HTTP calls made for a request ([`request_call`]): token -> context id.
    static CALLS: RefCell<HashMap<u32, u32>> = RefCell::new(HashMap::new());
}

/// Dispatches an HTTP call on behalf of request `context_id` (see [`crate::abi::http_call`]).
/// Its answer goes to that request's filter ([`crate::McpFilter::on_call_response`]), whichever
/// context the host delivers it to, as long as the request is held
/// ([`ForwardAction::Hold`] or [`HeadAction::Hold`]); a request that ended meanwhile never
/// sees it. A failed call (reset, timeout) arrives with no headers and an empty body.
pub fn request_call(
    context_id: u32,
    cluster: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout_ms: u32,
) -> Result<u32, HostError> {
    let token = abi::http_call(cluster, headers, body, timeout_ms)?;
    let _ = CALLS.with(|c| c.try_borrow_mut().map(|mut m| m.insert(token, context_id)));
    Ok(token)
}

/// Routes the answer to an HTTP call: `true` when it was a [`request_call`] (delivered to its
/// request if that is still held, or dropped), `false` when the call was the root's.
pub(crate) fn deliver_call(token: u32, num_headers: usize, body_size: usize) -> bool {
    let Some(context_id) = CALLS.with(|c| c.try_borrow_mut().ok()?.remove(&token)) else {
        return false;
    };
    let held = HELD.with(|h| h.try_borrow().ok()?.get(&context_id).cloned());
    if let Some(cx) = held.and_then(|w| w.upgrade()) {
        if let Ok(mut cx) = cx.try_borrow_mut() {
            cx.deliver(token, num_headers, body_size);
        }
    }
    true
}

/// Resumes a request held with [`HeadAction::Hold`]: its filter's `on_request_head` runs again
/// and the request proceeds, waits again or is answered. Returns false when no such request is
/// held (it ended meanwhile). Call it from a root-context callback (a timer, an HTTP call
/// answer): the host calls it makes act on that request's context.
pub fn wake(context_id: u32) -> bool {
    // Out of the map before resuming: the filter may hold the request again.
    let held = HELD.with(|h| h.try_borrow_mut().ok()?.remove(&context_id));
    let Some(cx) = held.and_then(|w| w.upgrade()) else {
        return false;
    };
    let Ok(mut cx) = cx.try_borrow_mut() else {
        return false;
    };
    cx.resume();
    true
}

/// The request context of filter `F`.
pub struct McpHttp<F: McpFilter> {
    me: Weak<RefCell<McpHttp<F>>>,
    context_id: u32,
    cx: Option<Rc<Configured<F>>>,
    filter: Option<F>,
    head: RequestHead,
    req: Req,
    resp: Resp,
}

impl<F: McpFilter> McpHttp<F> {
    pub(crate) fn new(context_id: u32, cx: Option<Rc<Configured<F>>>) -> Rc<RefCell<Self>> {
        let filter = cx
            .as_ref()
            .map(|c| F::new(c.shared.clone(), c.config.clone()));
        Rc::new_cyclic(|me| {
            RefCell::new(McpHttp {
                me: me.clone(),
                context_id,
                cx,
                filter,
                head: RequestHead::default(),
                req: Req::Idle,
                resp: Resp::Pass,
            })
        })
    }

    fn hold(&mut self, body: Option<usize>) -> Action {
        self.req = Req::Held(body);
        let me: Weak<RefCell<dyn Resume>> = self.me.clone();
        let registered = HELD.with(|h| {
            h.try_borrow_mut()
                .map(|mut m| m.insert(self.context_id, me))
                .is_ok()
        });
        if !registered {
            return self.request_failure("cannot hold the request");
        }
        Action::Pause
    }

    /// The filter's decision on the request headers (again when a held request is woken).
    fn head_decision(&mut self) -> HeadAction {
        match self.filter.as_mut() {
            Some(f) => f.on_request_head(&self.head),
            None => HeadAction::Pass,
        }
    }

    /// Reads the request headers and acts on the filter's decision.
    fn read_head(&mut self, end_of_stream: bool, received_ns: u64) -> Action {
        let map = match abi::get_headers_raw(MapType::HttpRequestHeaders) {
            Ok(m) => m,
            Err(e) => return self.request_failure(&format!("reading headers: {e}")),
        };
        self.head = RequestHead::from_map(&map, end_of_stream);
        self.head.context_id = self.context_id;
        self.head.received_ns = received_ns;
        if let Some(action) = self.gate_head() {
            return action;
        }
        let action = if self.head.repeated.is_some() {
            // Refused once the body is read (to answer with its id), before any filter
            // decides on headers that are ambiguous.
            HeadAction::Inspect
        } else {
            self.head_decision()
        };
        self.apply_head(action, None)
    }

    /// The gate's checks of the request line and headers, before any filter decides:
    /// `Some(action)` when the request is refused.
    fn gate_head(&mut self) -> Option<Action> {
        let cx = self.cx.clone()?;
        let is_post = self.head.method == "POST";
        if !is_post && !self.head.end_of_stream {
            // MCP sends JSON-RPC only by POST. A lenient server may read a body sent with any
            // other method (or a lowercase `post`), which the filters would not have inspected.
            cx.gate.method_not_allowed.inc();
            crate::log!(
                Info,
                "#{} refused: a body on a non-POST request",
                self.context_id
            );
            let body = jsonrpc::error_response(
                None,
                jsonrpc::INVALID_REQUEST,
                "Invalid Request: MCP messages are sent by POST; only a POST request may carry a body",
                None,
            );
            let mut r = LocalReply::json(405, format!("{}_method_not_allowed", self.name()), body);
            r.headers.push(("allow".into(), "GET, POST, DELETE".into()));
            return Some(self.reply(&r));
        }
        if is_post && self.head.end_of_stream {
            // Every POST is a JSON-RPC message; an empty one is not.
            cx.gate.invalid_json.inc();
            let body = jsonrpc::error_response(
                None,
                jsonrpc::PARSE_ERROR,
                "Parse error: empty request body",
                None,
            );
            return Some(self.rpc_reply(400, "invalid_json", body));
        }
        if let (Some(name), true) = (self.head.repeated, self.head.end_of_stream) {
            // With a body the refusal waits for it, to answer with the request's id.
            return Some(self.repeated_header(name, None));
        }
        None
    }

    fn repeated_header(&mut self, name: &str, id: Option<&jsonrpc::Id<'_>>) -> Action {
        if let Some(c) = &self.cx {
            c.gate.repeated_header.inc();
        }
        crate::log!(Info, "#{} refused: repeated {name} header", self.context_id);
        let body = jsonrpc::error_response(
            id,
            jsonrpc::INVALID_REQUEST,
            &format!("Invalid Request: the {name} header must appear once"),
            None,
        );
        self.rpc_reply(400, "repeated_header", body)
    }

    /// Lets the request go upstream. A filter that reads this request's response asks for it
    /// unencoded (`accept-encoding: identity`): it cannot read a compressed body, and Envoy's
    /// `compressor` filter, placed before the MCP filters, still compresses for the client
    /// by the client's own `accept-encoding`, read before this change.
    fn forward(&mut self) -> Action {
        let decision = self
            .filter
            .as_mut()
            .map_or(ForwardAction::Continue, |f| f.before_forward(&self.head));
        match decision {
            ForwardAction::Continue => self.release(),
            ForwardAction::Reply(r) => self.reply(&r),
            ForwardAction::Hold => self.hold_forward(),
        }
    }

    /// Waits before forwarding ([`ForwardAction::Hold`]).
    fn hold_forward(&mut self) -> Action {
        self.req = Req::Forwarding;
        let me: Weak<RefCell<dyn Resume>> = self.me.clone();
        let registered = HELD.with(|h| {
            h.try_borrow_mut()
                .map(|mut m| m.insert(self.context_id, me))
                .is_ok()
        });
        if !registered {
            // Never forward what the filter did not release (closed whatever the mode).
            let body = jsonrpc::error_response(
                None,
                jsonrpc::INTERNAL_ERROR,
                "Gateway filter could not hold the request",
                None,
            );
            self.count_failure();
            return self.rpc_reply(500, "failure", body);
        }
        Action::Pause
    }

    /// The request goes upstream now.
    fn release(&mut self) -> Action {
        let wants = self.filter.as_ref().is_some_and(|f| f.wants_response());
        let identity = self
            .head
            .accept_encoding
            .as_deref()
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("identity"));
        if wants && !identity {
            match abi::set_header(MapType::HttpRequestHeaders, "accept-encoding", "identity") {
                Ok(()) => self.head.accept_encoding = Some("identity".into()),
                // The response check still refuses an encoded body.
                Err(e) => {
                    self.count_failure();
                    crate::log!(Warn, "#{} cannot set accept-encoding: {e}", self.context_id);
                }
            }
        }
        Action::Continue
    }

    /// The first body (or trailers) callback of a request whose headers were deferred: decides
    /// on them now. `Some(action)` when that ends this callback (a reply, a pass); `None` when
    /// the body is to be read (the request is buffering or held).
    fn deferred_head(&mut self) -> Option<Action> {
        if !matches!(self.req, Req::Deferred) {
            return None;
        }
        let action = self.read_head(false, self.head.received_ns);
        match self.req {
            Req::Buffering | Req::Held(_) => None,
            _ => Some(action),
        }
    }

    /// The whole body (`size` bytes) is buffered: inspect it now, or keep it for the wake.
    fn body_complete(&mut self, size: usize) -> Action {
        if let Req::Held(_) = self.req {
            self.req = Req::Held(Some(size));
            return Action::Pause;
        }
        self.finish_request(size)
    }

    /// The head decision, acted on (also when a held request is woken).
    fn apply_head(&mut self, action: HeadAction, body: Option<usize>) -> Action {
        match action {
            HeadAction::Reply(r) => self.reply(&r),
            HeadAction::Pass => {
                self.req = Req::Idle;
                self.forward()
            }
            HeadAction::Hold => self.hold(body),
            HeadAction::Inspect if self.head.method == "POST" && !self.head.end_of_stream => {
                match body {
                    Some(size) => self.finish_request(size),
                    None => {
                        self.req = Req::Buffering;
                        // Hold the headers until the body is read: with
                        // allow_on_headers_stop_iteration this is StopIteration and the body
                        // callbacks still run. Without the flag Envoy would stall the stream
                        // here, so every shipped config sets it.
                        Action::Pause
                    }
                }
            }
            HeadAction::Inspect => {
                self.req = Req::Idle;
                self.forward()
            }
        }
    }

    /// The name of replies' details (`<name>_<reason>`): see [`McpFilter::name`].
    fn name(&self) -> &'static str {
        self.cx.as_ref().map_or(F::NAME, |c| c.name)
    }

    fn failure_mode(&self) -> FailureMode {
        self.cx
            .as_ref()
            .map_or(FailureMode::Closed, |c| c.config.common.failure_mode)
    }

    fn reply(&mut self, r: &LocalReply) -> Action {
        self.req = Req::Replied;
        if let Err(e) = r.send() {
            self.count_failure();
            crate::log!(Error, "#{} local reply failed: {e}", self.context_id);
        }
        // Stop here: the local reply replaces the request. If sending failed the stream stays
        // paused until Envoy's timeouts end it, which is still fail-closed.
        Action::Pause
    }

    fn count_failure(&self) {
        if let Some(c) = &self.cx {
            c.gate.failures.inc();
        }
    }

    fn rpc_reply(&mut self, status: u32, reason: &str, body: Vec<u8>) -> Action {
        let r = LocalReply::json(status, format!("{}_{reason}", self.name()), body);
        self.reply(&r)
    }

    /// Something the filter needed failed. Closed: refuse. Open: let the request through.
    fn max_body_bytes(&self) -> usize {
        self.cx
            .as_ref()
            .map_or(0, |c| c.config.common.max_body_bytes)
    }

    /// `Some(limit)`, counted as `body_too_large`, when a buffered body exceeds `max_body_bytes`.
    fn over_limit(&self, size: usize) -> Option<usize> {
        let max = self.max_body_bytes();
        if size <= max {
            return None;
        }
        if let Some(c) = &self.cx {
            c.gate.body_too_large.inc();
        }
        Some(max)
    }

    /// Counts and logs a failure; under `failure_mode: open` also counts the pass it allows.
    fn note_failure(&self, what: &str) -> FailureMode {
        self.count_failure();
        crate::log!(Warn, "#{} {what}", self.context_id);
        let mode = self.failure_mode();
        if let (FailureMode::Open, Some(c)) = (mode, &self.cx) {
            c.gate.failure_open_passes.inc();
        }
        mode
    }

    fn request_failure(&mut self, what: &str) -> Action {
        match self.note_failure(what) {
            FailureMode::Open => {
                self.req = Req::Idle;
                self.forward()
            }
            FailureMode::Closed => {
                let body = jsonrpc::error_response(
                    None,
                    jsonrpc::INTERNAL_ERROR,
                    "Gateway filter could not inspect the request",
                    None,
                );
                self.rpc_reply(500, "failure", body)
            }
        }
    }

    fn finish_request(&mut self, size: usize) -> Action {
        let Some(cx) = self.cx.clone() else {
            return self.request_failure("not configured");
        };
        let body = match abi::get_buffer(BufferType::HttpRequestBody, 0, size) {
            Ok(b) => b,
            Err(e) => return self.request_failure(&format!("reading the body: {e}")),
        };
        self.req = Req::Idle;
        let limits = Limits {
            max_depth: cx.config.common.max_json_depth,
        };
        if let Some(name) = self.head.repeated {
            // Refused whatever the body holds; its id when it has one.
            let parsed = jsonrpc::parse_body(&body, &limits).ok();
            let id = match &parsed {
                Some(Body::Single(m)) => m.id(),
                _ => None,
            };
            return self.repeated_header(name, id);
        }
        let parsed = match jsonrpc::parse_body(&body, &limits) {
            Ok(p) => p,
            Err(e) => {
                let reason = if e.code == jsonrpc::PARSE_ERROR {
                    cx.gate.invalid_json.inc();
                    "invalid_json"
                } else {
                    cx.gate.invalid_request.inc();
                    "invalid_request"
                };
                crate::log!(Info, "#{} refused: {reason}", self.context_id);
                return self.rpc_reply(400, reason, e.to_response_bytes());
            }
        };
        cx.gate.inspected.inc();
        let action = match &parsed {
            Body::Single(m) => self.decide(m, &body, None),
            Body::Batch(items) => match cx.config.common.batch {
                BatchPolicy::Reject => {
                    cx.gate.batch_rejected.inc();
                    let b = jsonrpc::error_response(
                        None,
                        jsonrpc::INVALID_REQUEST,
                        "Invalid Request: JSON-RPC batches are not supported",
                        None,
                    );
                    RequestAction::Reply(LocalReply::json(
                        400,
                        format!("{}_batch_rejected", self.name()),
                        b,
                    ))
                }
                BatchPolicy::Each => {
                    let mut out = RequestAction::Continue;
                    for (i, m) in items.iter().enumerate() {
                        match self.decide(m, &body, Some(i)) {
                            RequestAction::Continue => {}
                            // A batch is refused whole: answering part of it locally and
                            // forwarding the rest would need the filter to merge responses.
                            RequestAction::Reply(r) => {
                                out = RequestAction::Reply(r);
                                break;
                            }
                            RequestAction::Rewrite(_) => {
                                let b = jsonrpc::error_response(
                                    None,
                                    jsonrpc::INVALID_REQUEST,
                                    "Invalid Request: this batch cannot be forwarded",
                                    None,
                                );
                                out = RequestAction::Reply(LocalReply::json(
                                    400,
                                    format!("{}_batch_rejected", self.name()),
                                    b,
                                ));
                                break;
                            }
                        }
                    }
                    out
                }
            },
        };
        match action {
            RequestAction::Continue => self.forward(),
            RequestAction::Reply(r) => self.reply(&r),
            RequestAction::Rewrite(new) => {
                let len = new.len().to_string();
                let res =
                    abi::set_buffer(BufferType::HttpRequestBody, 0, size, &new).and_then(|()| {
                        abi::set_header(MapType::HttpRequestHeaders, "content-length", &len)
                    });
                match res {
                    Ok(()) => self.forward(),
                    Err(e) => self.request_failure(&format!("rewriting the body: {e}")),
                }
            }
        }
    }

    /// Era detection, header/body agreement, then the filter's decision.
    fn decide(
        &mut self,
        m: &Message<'_>,
        body: &[u8],
        batch_index: Option<usize>,
    ) -> RequestAction {
        let era = match m {
            Message::Request(req) => {
                let headers = mcp::RequestHeaders {
                    protocol_version: self.head.protocol_version.as_deref(),
                    method: self.head.mcp_method.as_deref(),
                    name: self.head.mcp_name.as_deref(),
                };
                if let Err(mismatch) = mcp::check_stateless_headers(&headers, req) {
                    if let Some(c) = &self.cx {
                        c.gate.header_mismatch.inc();
                    }
                    let b = jsonrpc::error_response(
                        req.id.as_ref(),
                        jsonrpc::HEADER_MISMATCH,
                        &mismatch.to_string(),
                        None,
                    );
                    return RequestAction::Reply(LocalReply::json(
                        400,
                        format!("{}_header_mismatch", self.name()),
                        b,
                    ));
                }
                mcp::detect_era(self.head.protocol_version.as_deref(), req)
            }
            Message::Response(_) => Era::Legacy,
        };
        let Some(filter) = self.filter.as_mut() else {
            return RequestAction::Continue;
        };
        filter.on_request(&Inspected {
            head: &self.head,
            message: m,
            era,
            body,
            batch_index,
        })
    }

    fn response_failure(&mut self, what: &str, size: usize) -> Action {
        match self.note_failure(&format!("response: {what}")) {
            FailureMode::Open => {
                self.resp = Resp::Pass;
                Action::Continue
            }
            FailureMode::Closed => {
                if matches!(self.resp, Resp::Json) {
                    // Headers are still held: replace the whole response.
                    self.resp = Resp::Dead;
                    let body = jsonrpc::error_response(
                        None,
                        jsonrpc::INTERNAL_ERROR,
                        "Gateway filter could not inspect the response",
                        None,
                    );
                    let r =
                        LocalReply::json(502, format!("{}_response_failure", self.name()), body);
                    if r.send().is_err() {
                        self.count_failure();
                    }
                    Action::Pause
                } else {
                    // A stream already under way: forward nothing more of it.
                    self.resp = Resp::Dead;
                    let _ = abi::set_buffer(BufferType::HttpResponseBody, 0, size, &[]);
                    Action::Continue
                }
            }
        }
    }

    fn finish_json_response(&mut self, size: usize) -> Action {
        let body = match abi::get_buffer(BufferType::HttpResponseBody, 0, size) {
            Ok(b) => b,
            Err(e) => return self.response_failure(&format!("reading the body: {e}"), size),
        };
        self.resp = Resp::Pass;
        let action = match self.filter.as_mut() {
            Some(f) => f.on_response_message(&body),
            None => MessageAction::Keep,
        };
        let new = match action {
            MessageAction::Keep => return Action::Continue,
            MessageAction::Replace(b) => b,
            MessageAction::Drop => Vec::new(),
        };
        let len = new.len().to_string();
        // The headers are still held (paused with allow_on_headers_stop_iteration), so
        // Content-Length can be set to the new length; a stale one would truncate the body or
        // desync the client connection.
        let res = abi::set_buffer(BufferType::HttpResponseBody, 0, size, &new)
            .and_then(|()| abi::set_header(MapType::HttpResponseHeaders, "content-length", &len));
        match res {
            Ok(()) => Action::Continue,
            Err(e) => self.response_failure(&format!("rewriting the body: {e}"), size),
        }
    }

    /// Reads the response headers the filter sees (one host read) and asks it about them.
    /// `Err` when they cannot be read.
    fn response_head(
        &mut self,
        end_of_stream: bool,
    ) -> Result<(ResponseInterest, ResponseHead), HostError> {
        let map = abi::get_headers_raw(MapType::HttpResponseHeaders)?;
        let mut head = ResponseHead {
            end_of_stream,
            ..ResponseHead::default()
        };
        let (mut types, mut encoding) = (0u32, None::<String>);
        for (k, v) in abi::map_pairs(&map) {
            let text = || String::from_utf8_lossy(v).into_owned();
            match k {
                b":status" => {
                    head.status = std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                }
                b"content-type" => {
                    types += 1;
                    head.content_type = Some(text());
                }
                b"content-encoding" => {
                    encoding = Some(match encoding.take() {
                        Some(prev) => format!("{prev}, {}", text()),
                        None => text(),
                    });
                }
                _ => {}
            }
        }
        head.framing = if types > 1 {
            Framing::Ambiguous
        } else {
            Framing::of(head.content_type.as_deref())
        };
        head.content_encoding = encoded(encoding.as_deref());
        let interest = match self.filter.as_mut() {
            Some(f) => f.on_response_head(&head),
            None => ResponseInterest::None,
        };
        Ok((interest, head))
    }

    /// A response the filter must read arrived in a form it cannot read (encoded, an ambiguous
    /// or unknown media type with a body, headers that could not be read). It is never
    /// forwarded unread: closed replaces it with a 502; open (filters where that is allowed)
    /// lets it through, counted. Only valid while the response headers are still held.
    fn unreadable_response(&mut self, reason: &str, what: &str) -> Action {
        crate::log!(Warn, "#{} response not readable: {what}", self.context_id);
        if let Some(c) = &self.cx {
            c.gate.unreadable_response.inc();
        }
        if self.failure_mode() == FailureMode::Open {
            if let Some(c) = &self.cx {
                c.gate.failure_open_passes.inc();
            }
            self.resp = Resp::Pass;
            return Action::Continue;
        }
        self.resp = Resp::Dead;
        let body = jsonrpc::error_response(
            None,
            jsonrpc::INTERNAL_ERROR,
            "Gateway filter could not read the response",
            None,
        );
        let r = LocalReply::json(502, format!("{}_{reason}", self.name()), body);
        if r.send().is_err() {
            self.count_failure();
        }
        Action::Pause
    }

    /// Starts reading a response under [`ResponseInterest::Observe`]: SSE or JSON; anything
    /// else passes unread.
    fn observe(&mut self, framing: Framing) {
        self.resp = match framing {
            Framing::Sse => Resp::SseSeen(Box::new(SseStream::new(self.max_body_bytes()))),
            Framing::Json => Resp::JsonSeen(Vec::new()),
            Framing::Ambiguous | Framing::Other => Resp::Pass,
        };
    }

    /// [`ResponseInterest::Observe`]: hands complete messages to the filter; the chunk passes as
    /// it is whatever happens here.
    fn observe_chunk(&mut self, size: usize, eos: bool) {
        let max = self.max_body_bytes();
        let (resp, filter) = (&mut self.resp, self.filter.as_mut());
        let outcome = match (resp, filter) {
            (Resp::JsonSeen(seen), Some(filter)) => {
                if seen.len().saturating_add(size) > max {
                    Err("body over max_body_bytes".to_string())
                } else {
                    match abi::get_buffer(BufferType::HttpResponseBody, 0, size) {
                        Ok(chunk) => {
                            seen.extend_from_slice(&chunk);
                            if eos {
                                let _ = filter.on_response_message(seen);
                            }
                            Ok(())
                        }
                        Err(e) => Err(format!("reading the body: {e}")),
                    }
                }
            }
            (Resp::SseSeen(stream), Some(filter)) => {
                match abi::get_buffer(BufferType::HttpResponseBody, 0, size) {
                    Ok(chunk) => stream
                        .push(&chunk, eos, |ev| {
                            if let Some(data) = event_message(ev) {
                                let _ = filter.on_response_message(data.as_bytes());
                            }
                            EventAction::Keep
                        })
                        .map(drop)
                        .map_err(|e| format!("SSE: {e}")),
                    Err(e) => Err(format!("reading a chunk: {e}")),
                }
            }
            _ => Ok(()),
        };
        if eos {
            self.resp = Resp::Pass;
        }
        if let Err(what) = outcome {
            // Reading was for the filter's records only: stop, let the response be.
            crate::log!(
                Info,
                "#{} response no longer observed: {what}",
                self.context_id
            );
            self.resp = Resp::Pass;
            if let Some(f) = self.filter.as_mut() {
                f.on_response_unread();
            }
        }
    }

    fn sse_chunk(&mut self, size: usize, eos: bool) -> Action {
        let chunk = match abi::get_buffer(BufferType::HttpResponseBody, 0, size) {
            Ok(b) => b,
            Err(e) => return self.response_failure(&format!("reading a chunk: {e}"), size),
        };
        let (Resp::Sse(stream), Some(filter)) = (&mut self.resp, self.filter.as_mut()) else {
            return Action::Continue;
        };
        let result = stream.push(&chunk, eos, |ev| {
            let Some(data) = event_message(ev) else {
                return EventAction::Keep;
            };
            match filter.on_response_message(data.as_bytes()) {
                MessageAction::Keep => EventAction::Keep,
                MessageAction::Drop => EventAction::Drop,
                MessageAction::Replace(b) => match String::from_utf8(b) {
                    Ok(s) => EventAction::ReplaceData(s),
                    // A filter never produces non-UTF-8 JSON; if it did, drop rather than
                    // forward something the filter did not approve.
                    Err(_) => EventAction::Drop,
                },
            }
        });
        match result {
            Ok(out) => {
                if out != chunk {
                    if let Err(e) = abi::set_buffer(BufferType::HttpResponseBody, 0, size, &out) {
                        return self.response_failure(&format!("writing a chunk: {e}"), size);
                    }
                }
                Action::Continue
            }
            Err(e) => self.response_failure(&format!("SSE: {e}"), size),
        }
    }
}

/// The JSON-RPC message an SSE event carries: its `data`, unless that is absent or blank. An
/// event without one passes as it is, unseen by the filter: there is nothing to inspect. Servers
/// send such events on purpose: the priming event (an `id` and an empty `data`, often with
/// `retry`) that MCP 2025-11-25 servers SHOULD send first so the client can resume the stream
/// (SEP-1699); a filter that took its empty data for a malformed message would drop it and
/// break resumption.
fn event_message<'e>(ev: &'e SseEvent<'_>) -> Option<&'e str> {
    ev.data
        .as_deref()
        .filter(|d| !d.trim_matches([' ', '\t', '\n', '\r']).is_empty())
}

impl<F: McpFilter> std::fmt::Debug for McpHttp<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpHttp")
            .field("filter", &F::NAME)
            .field("context_id", &self.context_id)
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

impl<F: McpFilter> McpHttp<F> {
    /// Host calls from here on act on this request (a callback of another context woke it).
    fn become_effective(&self) -> bool {
        match abi::set_effective_context(self.context_id) {
            Ok(()) => true,
            Err(e) => {
                // Nothing can be done for this request from here; it stays paused until Envoy's
                // timeouts end it (fail closed).
                self.count_failure();
                crate::log!(Error, "#{} cannot resume: {e}", self.context_id);
                false
            }
        }
    }

    /// Continue from a callback of our own would resume the stream by returning; a woken
    /// request's stream was left paused, so it is resumed explicitly.
    fn resumed(&self, action: Action) {
        if action == Action::Continue {
            if let Err(e) = abi::continue_stream(false) {
                self.count_failure();
                crate::log!(Error, "#{} cannot resume: {e}", self.context_id);
            }
        }
    }

    /// Asks the filter again whether a request waiting to be forwarded may go.
    fn resume_forward(&mut self) {
        // Out of the map: `forward` registers it again if the filter still holds it.
        let _ = HELD.with(|h| h.try_borrow_mut().map(|mut m| m.remove(&self.context_id)));
        self.req = Req::Idle;
        let action = self.forward();
        self.resumed(action);
    }
}

impl<F: McpFilter> Resume for McpHttp<F> {
    fn resume(&mut self) {
        match self.req {
            Req::Held(body) => {
                if !self.become_effective() {
                    return;
                }
                let action = self.head_decision();
                let action = self.apply_head(action, body);
                self.resumed(action);
            }
            Req::Forwarding if self.become_effective() => self.resume_forward(),
            _ => {}
        }
    }

    fn deliver(&mut self, token: u32, num_headers: usize, body_size: usize) {
        if !self.become_effective() {
            return;
        }
        // Read in the callback that carries it: the answer's buffers exist only now.
        if let Some(f) = self.filter.as_mut() {
            f.on_call_response(token, num_headers, body_size);
        }
        if matches!(self.req, Req::Forwarding) {
            self.resume_forward();
        }
    }
}

impl<F: McpFilter> Drop for McpHttp<F> {
    fn drop(&mut self) {
        if let Req::Forwarding = self.req {
            // Its pending call's answer has nobody to go to.
            let _ = CALLS.try_with(|c| {
                if let Ok(mut m) = c.try_borrow_mut() {
                    m.retain(|_, cx| *cx != self.context_id);
                }
            });
        }
        if let Req::Held(_) | Req::Forwarding = self.req {
            // try_with: a context dropped while thread-locals are torn down must not panic.
            let _ = HELD.try_with(|h| {
                if let Ok(mut m) = h.try_borrow_mut() {
                    m.remove(&self.context_id);
                }
            });
        }
    }
}

impl<F: McpFilter> Context for McpHttp<F> {}

impl<F: McpFilter> HttpContext for McpHttp<F> {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.cx.is_none() {
            let body = jsonrpc::error_response(
                None,
                jsonrpc::INTERNAL_ERROR,
                "Gateway filter is not configured",
                None,
            );
            return self.rpc_reply(503, "not_configured", body);
        }
        let received_ns = abi::now_nanos();
        if !end_of_stream {
            // A body follows, and with allow_on_headers_stop_iteration the headers can wait for
            // it: they are read and decided in the first body callback, which reads the body
            // anyway. One callback fewer doing host reads, each of which calls back into the VM
            // to allocate (the costliest part of a host call), and nothing changes for the
            // request: its headers go nowhere before the decision either way.
            self.head.received_ns = received_ns;
            self.req = Req::Deferred;
            return Action::Pause;
        }
        self.read_head(end_of_stream, received_ns)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if let Some(action) = self.deferred_head() {
            return action;
        }
        match self.req {
            Req::Idle => Action::Continue,
            // Not reached: `deferred_head` above has decided the head and left another state.
            Req::Deferred => Action::Pause,
            Req::Replied | Req::Forwarding => Action::Pause,
            Req::Held(_) | Req::Buffering => {
                if let Some(max) = self.over_limit(body_size) {
                    return match self.failure_mode() {
                        FailureMode::Open => {
                            self.request_failure(&format!("body over max_body_bytes ({max})"))
                        }
                        FailureMode::Closed => {
                            let body = jsonrpc::error_response(
                                None,
                                jsonrpc::INVALID_REQUEST,
                                &format!("Request body larger than {max} bytes"),
                                None,
                            );
                            self.rpc_reply(413, "body_too_large", body)
                        }
                    };
                }
                if !end_of_stream {
                    // StopIterationAndBuffer: Envoy keeps accumulating; the next call sees it all.
                    return Action::Pause;
                }
                self.body_complete(body_size)
            }
        }
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if let Some(action) = self.deferred_head() {
            return action;
        }
        if matches!(self.req, Req::Forwarding) {
            return Action::Pause;
        }
        // A body followed by trailers never sees end_of_stream in the body callback.
        if matches!(self.req, Req::Buffering | Req::Held(_)) {
            let size = abi::get_buffer(BufferType::HttpRequestBody, 0, usize::MAX)
                .map(|b| b.len())
                .unwrap_or(0);
            return self.body_complete(size);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let wanted = self.filter.as_ref().is_some_and(|f| f.wants_response());
        if matches!(self.req, Req::Replied) || !wanted {
            return Action::Continue;
        }
        let (interest, head) = match self.response_head(end_of_stream) {
            Ok(r) => r,
            Err(e) => {
                return self.unreadable_response("response_failure", &format!("headers: {e}"))
            }
        };
        if interest == ResponseInterest::None || end_of_stream {
            return Action::Continue;
        }
        let readable = head.content_encoding.is_none() && head.framing != Framing::Ambiguous;
        if interest == ResponseInterest::Observe {
            if readable {
                self.observe(head.framing);
            } else if let Some(f) = self.filter.as_mut() {
                f.on_response_unread();
            }
            return Action::Continue;
        }
        if let Some(enc) = &head.content_encoding {
            let what = format!("content-encoding {enc:?}");
            return self.unreadable_response("encoded_response", &what);
        }
        match head.framing {
            Framing::Sse => {
                // Events may be rewritten, so any length the upstream announced is void.
                if abi::remove_header(MapType::HttpResponseHeaders, "content-length").is_err() {
                    self.count_failure();
                }
                self.resp = Resp::Sse(Box::new(SseStream::new(self.max_body_bytes())));
                Action::Continue
            }
            Framing::Json => {
                self.resp = Resp::Json;
                // Hold the headers so Content-Length can be set after a rewrite.
                Action::Pause
            }
            Framing::Ambiguous => {
                self.unreadable_response("unreadable_response", "ambiguous content-type")
            }
            Framing::Other if (200..300).contains(&head.status) => {
                // No client reads this as an MCP message, but a lenient one might: wait and
                // see whether a body comes.
                self.resp = Resp::OtherHeld;
                Action::Pause
            }
            // Not a success: clients surface it as a transport error whose text they show (the
            // TypeScript SDK puts the whole body in the error): held whole and handed over
            // like a JSON body, for the filter to read as text.
            Framing::Other => {
                self.resp = Resp::Json;
                Action::Pause
            }
        }
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match &self.resp {
            Resp::Pass => Action::Continue,
            Resp::Dead => {
                let _ = abi::set_buffer(BufferType::HttpResponseBody, 0, body_size, &[]);
                Action::Continue
            }
            Resp::Json => {
                if let Some(max) = self.over_limit(body_size) {
                    return self
                        .response_failure(&format!("body over max_body_bytes ({max})"), body_size);
                }
                if !end_of_stream {
                    return Action::Pause;
                }
                self.finish_json_response(body_size)
            }
            Resp::Sse(_) => self.sse_chunk(body_size, end_of_stream),
            Resp::OtherHeld if body_size > 0 => {
                self.unreadable_response("unreadable_response", "a body of an unknown media type")
            }
            Resp::OtherHeld if end_of_stream => {
                self.resp = Resp::Pass;
                Action::Continue
            }
            Resp::OtherHeld => Action::Pause,
            Resp::JsonSeen(_) | Resp::SseSeen(_) => {
                self.observe_chunk(body_size, end_of_stream);
                Action::Continue
            }
        }
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        // A body followed by trailers (an HTTP/2 upstream) never sees end_of_stream in the
        // body callback, and Continue here would release the held body unread: read it now.
        // An SSE stream's unterminated last event is dropped, as clients drop it (WHATWG: an
        // event the stream ends inside of is not dispatched).
        match self.resp {
            Resp::Json => {
                let size = abi::get_buffer(BufferType::HttpResponseBody, 0, usize::MAX)
                    .map(|b| b.len())
                    .unwrap_or(0);
                self.finish_json_response(size)
            }
            Resp::OtherHeld => {
                self.resp = Resp::Pass;
                Action::Continue
            }
            _ => Action::Continue,
        }
    }

    fn on_log(&mut self) {
        if let Some(f) = self.filter.as_mut() {
            f.on_log();
        }
    }
}

/// What the SDK holds for each request: the context behind a `RefCell`, so [`wake`] can reach a
/// held request from another callback. Envoy never re-enters a context (stream actions are
/// deferred until the VM call returns), so a busy borrow means a bug: the request side then
/// stays paused (fail closed) and the response side passes through.
pub(crate) struct Shell<F: McpFilter>(pub(crate) Rc<RefCell<McpHttp<F>>>);

impl<F: McpFilter> Shell<F> {
    fn with<R>(&self, busy: R, f: impl FnOnce(&mut McpHttp<F>) -> R) -> R {
        match self.0.try_borrow_mut() {
            Ok(mut cx) => f(&mut cx),
            Err(_) => {
                crate::log!(Error, "request context re-entered");
                busy
            }
        }
    }
}

impl<F: McpFilter> Context for Shell<F> {
    /// The SDK delivers an HTTP call's answer to the context that was active when it was made:
    /// a request's own ([`request_call`]), or the root's when the call was made from a timer.
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        if deliver_call(token_id, num_headers, body_size) {
            return;
        }
        let shared = self.with(None, |c| c.cx.as_ref().map(|c| c.shared.clone()));
        if let Some(shared) = shared {
            F::on_http_call_response(&shared, token_id, num_headers, body_size);
        }
    }
}

impl<F: McpFilter> HttpContext for Shell<F> {
    fn on_http_request_headers(&mut self, num_headers: usize, end_of_stream: bool) -> Action {
        self.with(Action::Pause, |c| {
            c.on_http_request_headers(num_headers, end_of_stream)
        })
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.with(Action::Pause, |c| {
            c.on_http_request_body(body_size, end_of_stream)
        })
    }

    fn on_http_request_trailers(&mut self, num_trailers: usize) -> Action {
        self.with(Action::Pause, |c| c.on_http_request_trailers(num_trailers))
    }

    fn on_http_response_headers(&mut self, num_headers: usize, end_of_stream: bool) -> Action {
        self.with(Action::Continue, |c| {
            c.on_http_response_headers(num_headers, end_of_stream)
        })
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.with(Action::Continue, |c| {
            c.on_http_response_body(body_size, end_of_stream)
        })
    }

    fn on_http_response_trailers(&mut self, num_trailers: usize) -> Action {
        self.with(Action::Continue, |c| {
            c.on_http_response_trailers(num_trailers)
        })
    }

    fn on_log(&mut self) {
        self.with((), HttpContext::on_log);
    }
}
