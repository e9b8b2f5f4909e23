//! `mcp_telemetry`: OpenTelemetry MCP attributes on Envoy's spans, access logs and metrics.
//!
//! Decisions come from `mcp_core::telemetry` (attributes, lenient response reading, outcome
//! classification, bounded metric labels, header values); this crate wires them to the host:
//! filter state via `set_property` (read by tracing `custom_tags` and access logs as
//! `%FILTER_STATE(wasm.<attribute>:PLAIN)%`), routing headers (Envoy clears the route cache when
//! an ABI 0.2.1 module changes request headers, so routes see them), and
//! metrics defined on first use. The filter never refuses or rewrites anything of its own:
//! only the shared request gate can answer locally. See `docs/telemetry.md`.

use filter_host::abi::{self, MapType};
use filter_host::metrics::{Counter, Histogram, Registry};
use filter_host::{
    Framing, HeadAction, Inspected, McpFilter, MessageAction, RequestAction, RequestHead,
    ResponseHead, ResponseInterest,
};
use mcp_core::config::Loaded;
use mcp_core::jsonrpc::{IdOwned, Message, Request};
use mcp_core::mcp::methods;
use mcp_core::telemetry::headers::{
    header_value, valid_traceparent, valid_tracestate, TRACEPARENT, TRACESTATE, X_MCP_METHOD,
    X_MCP_TOOL,
};
use mcp_core::telemetry::labels::{counter_name, histogram_name, method_label, IdCache, OTHER};
use mcp_core::telemetry::{
    classify, keys, request_attributes, response_attributes, scan_response, HeadFacts,
    MetaTraceContext, Observed, Outcome, ResponseKind, Scan, TelemetryConfig, ToolLabels, Want,
};
use std::cell::RefCell;
use std::rc::Rc;

/// Envoy's `response.code_details` for an answer that came from the upstream.
const VIA_UPSTREAM: &str = "via_upstream";

/// Per-VM state: the tool-label budget (first come, first served per worker) and the metrics
/// already resolved for a method, tool and outcome.
#[derive(Debug)]
pub struct Shared {
    labels: RefCell<ToolLabels>,
    metrics: RefCell<IdCache<(Counter, Histogram)>>,
}

/// The MCP operation a request carries (the first message of a batch).
#[derive(Debug)]
struct Op {
    method: &'static str,
    tool: Option<String>,
    id: Option<IdOwned>,
    want: Want,
}

#[derive(Debug)]
enum Seen {
    /// No body was inspected (GET/DELETE, or the gate refused the body).
    Nothing,
    /// The client posted a JSON-RPC response (to a server request): not an operation.
    ClientResponse,
    /// A request or notification.
    Op(Op),
}

/// The `mcp_telemetry` filter (one per request).
#[derive(Debug)]
pub struct TelemetryFilter {
    shared: Rc<Shared>,
    config: Rc<Loaded<TelemetryConfig>>,
    start_ns: u64,
    end_ns: Option<u64>,
    post: bool,
    seen: Seen,
    observed: Observed,
    error_published: bool,
}

fn publish(key: &str, value: &str) {
    if let Err(e) = abi::set_property(&[key], value.as_bytes()) {
        filter_host::log!(Debug, "set_property {key}: {e}");
    }
}

fn property_string(path: &[&str]) -> Option<String> {
    abi::get_property(path)
        .ok()
        .flatten()
        .and_then(|b| String::from_utf8(b).ok())
}

/// Envoy serializes integer properties as 8 little-endian bytes.
fn property_int(path: &[&str]) -> Option<i64> {
    let bytes = abi::get_property(path).ok().flatten()?;
    let arr: [u8; 8] = bytes.as_slice().try_into().ok()?;
    Some(i64::from_le_bytes(arr))
}

impl TelemetryFilter {
    fn filter_config(&self) -> &TelemetryConfig {
        &self.config.filter
    }

    /// Sets a request header. Envoy clears the route cache when a module of ABI 0.2.1 (this
    /// one) changes request headers, so routes and rate-limit descriptors see the new value
    /// (Envoy 1.40 changelog: only modules of a later ABI must clear it themselves).
    fn set_request_header(&mut self, name: &str, value: &str) {
        if let Err(e) = abi::set_header(MapType::HttpRequestHeaders, name, value) {
            filter_host::log!(Debug, "setting {name}: {e}");
        }
    }

    fn route_headers(&mut self, req: &Request<'_>) {
        if !self.filter_config().route_headers {
            return;
        }
        self.set_request_header(X_MCP_METHOD, &header_value(&req.method));
        if req.method == methods::TOOLS_CALL {
            if let Some(name) = req.name.as_deref() {
                self.set_request_header(X_MCP_TOOL, &header_value(name));
            }
        }
    }

    fn trace_context(&mut self, req: &Request<'_>) {
        let mode = self.filter_config().meta_trace_context;
        if mode == MetaTraceContext::Off {
            return;
        }
        let Some(tp) = req
            .meta
            .traceparent
            .as_deref()
            .filter(|t| valid_traceparent(t))
        else {
            return;
        };
        if mode == MetaTraceContext::IfAbsent
            && abi::get_header(MapType::HttpRequestHeaders, TRACEPARENT)
                .ok()
                .flatten()
                .is_some()
        {
            return;
        }
        self.set_request_header(TRACEPARENT, tp);
        match req
            .meta
            .tracestate
            .as_deref()
            .filter(|t| valid_tracestate(t))
        {
            Some(ts) => self.set_request_header(TRACESTATE, ts),
            // A tracestate left from another trace must not ride along with the new parent.
            None => {
                if let Err(e) = abi::remove_header(MapType::HttpRequestHeaders, TRACESTATE) {
                    filter_host::log!(Debug, "removing {TRACESTATE}: {e}");
                }
            }
        }
    }

    fn track(&mut self, req: &Request<'_>, inspected: &Inspected<'_>) {
        let head = HeadFacts {
            protocol_version: inspected.head.protocol_version.as_deref(),
            session_id: inspected.head.session_id.as_deref(),
        };
        for (k, v) in request_attributes(req, inspected.era, head) {
            publish(k, &v);
        }
        let tools_call = req.method == methods::TOOLS_CALL;
        self.seen = Seen::Op(Op {
            method: method_label(&req.method),
            tool: if tools_call {
                req.name.as_deref().map(str::to_owned)
            } else {
                None
            },
            id: req.id.as_ref().map(|i| i.to_owned_id()),
            want: Want {
                is_error: tools_call,
                protocol_version: req.method == methods::INITIALIZE,
            },
        });
        self.route_headers(req);
        self.trace_context(req);
    }

    fn record_response(&mut self, kind: &ResponseKind) {
        for (k, v) in response_attributes(kind) {
            publish(k, v);
            self.error_published = true;
        }
        match kind {
            ResponseKind::Error { .. } => self.observed.jsonrpc_error = true,
            ResponseKind::Result { tool_error } => self.observed.tool_error = *tool_error,
        }
    }

    fn count(&self, outcome: Outcome, duration_ms: u64) {
        if !self.filter_config().metrics {
            return;
        }
        let (method, tool) = match &self.seen {
            Seen::Op(op) => (op.method, op.tool.as_deref()),
            // A refused POST body was never read: its method is unknown.
            Seen::Nothing if self.post => (OTHER, None),
            _ => return,
        };
        let cached = self
            .shared
            .metrics
            .try_borrow()
            .ok()
            .and_then(|m| m.get(method, tool, outcome));
        let (counter, histogram) = match cached {
            Some(ids) => ids,
            None => {
                let ids = self.resolve(method, tool, outcome);
                if let Ok(mut m) = self.shared.metrics.try_borrow_mut() {
                    m.insert(method, tool, outcome, ids);
                }
                ids
            }
        };
        counter.inc();
        histogram.record(duration_ms);
    }

    /// The metrics of a method, tool and outcome: bounded labels, names, definitions.
    fn resolve(
        &self,
        method: &'static str,
        tool: Option<&str>,
        outcome: Outcome,
    ) -> (Counter, Histogram) {
        let label = tool.and_then(|t| Some(self.shared.labels.try_borrow_mut().ok()?.label(t)));
        let tool = match (tool, &label) {
            (Some(_), Some(l)) => Some(l.as_str()),
            (Some(_), None) => Some(OTHER),
            (None, _) => None,
        };
        let mut reg = Registry::default();
        (
            reg.counter(&counter_name(McpTelemetry::NAME, method, tool, outcome)),
            reg.histogram(&histogram_name(McpTelemetry::NAME, method, tool)),
        )
    }
}

/// The filter type exported to Envoy.
pub type McpTelemetry = TelemetryFilter;

impl McpFilter for TelemetryFilter {
    const NAME: &'static str = "mcp_telemetry";
    type Config = TelemetryConfig;
    type Shared = Shared;

    fn shared(config: &Loaded<TelemetryConfig>, _metrics: &mut Registry) -> Result<Shared, String> {
        // Metrics are defined on first use (their names carry the labels); the Registry caches
        // ids per VM so each name is defined once.
        let allow = config
            .filter
            .metric_tool_patterns()
            .map_err(|e| e.to_string())?;
        Ok(Shared {
            labels: RefCell::new(ToolLabels::new(allow, config.filter.max_tool_labels)),
            metrics: RefCell::new(IdCache::default()),
        })
    }

    fn new(shared: Rc<Shared>, config: Rc<Loaded<TelemetryConfig>>) -> Self {
        TelemetryFilter {
            shared,
            config,
            start_ns: 0,
            end_ns: None,
            post: false,
            seen: Seen::Nothing,
            observed: Observed::default(),
            error_published: false,
        }
    }

    fn on_request_head(&mut self, head: &RequestHead) -> HeadAction {
        self.start_ns = head.received_ns;
        self.post = head.method == "POST";
        // Routes and rate limits trust these headers, so a client must never set them.
        if head.routing_headers {
            for name in [X_MCP_METHOD, X_MCP_TOOL] {
                if let Err(e) = abi::remove_header(MapType::HttpRequestHeaders, name) {
                    filter_host::log!(Debug, "removing {name}: {e}");
                }
            }
        }
        HeadAction::Inspect
    }

    fn on_request(&mut self, req: &Inspected<'_>) -> RequestAction {
        if !matches!(self.seen, Seen::Nothing) {
            // Batch elements after the first: one HTTP request, one set of attributes.
            return RequestAction::Continue;
        }
        match req.message {
            Message::Request(r) => self.track(r, req),
            Message::Response(_) => self.seen = Seen::ClientResponse,
        }
        RequestAction::Continue
    }

    fn on_response_head(&mut self, head: &ResponseHead) -> ResponseInterest {
        self.observed.status = Some(head.status);
        if !(200..300).contains(&head.status) && !matches!(self.seen, Seen::ClientResponse) {
            // Envoy applies the span's custom tags before the log phase, so an HTTP failure is
            // published now; a JSON-RPC error found in the body below replaces it.
            publish(keys::ERROR_TYPE, &head.status.to_string());
            self.error_published = true;
        }
        let Seen::Op(op) = &self.seen else {
            return ResponseInterest::None;
        };
        if op.id.is_none() || head.end_of_stream {
            return ResponseInterest::None;
        }
        if head.framing != Framing::Other {
            self.observed.awaited = true;
            // Read-only: nothing is held; a body too large to read passes unread
            // (`on_response_unread`).
            ResponseInterest::Observe
        } else {
            ResponseInterest::None
        }
    }

    fn on_response_message(&mut self, data: &[u8]) -> MessageAction {
        if self.observed.matched {
            return MessageAction::Keep;
        }
        let Seen::Op(op) = &self.seen else {
            return MessageAction::Keep;
        };
        let Some(id) = &op.id else {
            return MessageAction::Keep;
        };
        if let Scan::Matched(facts) = scan_response(data, &id.as_id(), op.want) {
            self.observed.matched = true;
            self.end_ns = Some(abi::now_nanos());
            if let Some(v) = facts.protocol_version.as_deref() {
                publish(
                    keys::PROTOCOL_VERSION,
                    mcp_core::telemetry::attrs::bounded(v),
                );
            }
            self.record_response(&facts.kind);
        }
        MessageAction::Keep
    }

    fn on_response_unread(&mut self) {
        // The response went by unread (too large): its status alone decides the outcome.
        if !self.observed.matched {
            self.observed.awaited = false;
        }
    }

    fn on_log(&mut self) {
        let end = self.end_ns.unwrap_or_else(abi::now_nanos);
        let duration_ms = end.saturating_sub(self.start_ns) / 1_000_000;
        // A 2xx seen in `on_response_head` is what the client got: nothing more to read (each
        // property read is a host call plus an allocation call back into the VM). Otherwise
        // read the stream info: local replies sent by this filter's own gate never reach
        // `on_response_head`, and only a 4xx needs to know whether Envoy made it up (`denied`).
        if !self
            .observed
            .status
            .is_some_and(|s| (200..300).contains(&s))
        {
            if let Some(code) =
                property_int(&["response", "code"]).and_then(|c| u32::try_from(c).ok())
            {
                self.observed.status = Some(code);
            }
            if self
                .observed
                .status
                .is_some_and(|s| (400..500).contains(&s))
            {
                self.observed.local_reply = property_string(&["response", "code_details"])
                    .is_some_and(|d| d != VIA_UPSTREAM);
            }
        }
        let outcome = classify(&self.observed);
        if !self.error_published && matches!(outcome, Outcome::HttpError | Outcome::Denied) {
            // No JSON-RPC error to report: the HTTP status is the error (OTel HTTP convention),
            // `_OTHER` when there was no response at all.
            let status = self.observed.status.filter(|s| *s > 0);
            match status {
                Some(s) => publish(keys::ERROR_TYPE, &s.to_string()),
                None => publish(keys::ERROR_TYPE, "_OTHER"),
            }
        }
        self.count(outcome, duration_ms);
    }
}

// Compiled into `mcp_gateway` too (filters/gateway), which exports the chain instead.
#[cfg(not(mcp_gateway))]
filter_host::export_filter!(TelemetryFilter);
