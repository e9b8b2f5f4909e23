//! The only crate of mcp-wasm-filters that touches proxy-wasm.
//!
//! A filter crate implements [`McpFilter`] (pure decisions over parsed MCP messages) and exports
//! it with [`export_filter!`]. This crate does the rest, the same way for every filter:
//!
//! - [`abi`]: host calls that return errors instead of panicking (a panic kills the VM and turns
//!   every later request on that worker into a 503);
//! - the request gate: hold the headers (`allow_on_headers_stop_iteration: true`), buffer the body
//!   up to `max_body_bytes`, parse it with `mcp_core`, refuse what is malformed or ambiguous with a
//!   spec-correct JSON-RPC error, check 2026-07-28 `Mcp-Method`/`Mcp-Name` headers against the body,
//!   then hand the message to the filter;
//! - responses: buffered JSON bodies, or SSE streams event by event without holding the stream;
//!   rewrites fix `Content-Length` (Envoy never recomputes it);
//! - configuration loading (a bad configuration makes `on_configure` return false, so Envoy
//!   refuses the plugin), common statistics, filter-state publishing and logging.

pub mod abi;
mod http;
pub mod log;
pub mod metrics;
mod root;

pub use http::{
    request_call, wake, ForwardAction, Framing, HeadAction, Inspected, LocalReply, McpHttp,
    MessageAction, RequestAction, RequestHead, ResponseHead, ResponseInterest,
};
pub use root::McpRoot;

use mcp_core::config::{Loaded, Validate};
use serde::de::DeserializeOwned;
use std::rc::Rc;

/// A filter's decisions. Every method has a pass-through default, so a filter implements only
/// the phases it cares about; phases it does not ask for cost nothing (no buffering, no parsing).
pub trait McpFilter: Sized + 'static {
    /// The filter's name: Envoy `root_id`, log prefix and stats prefix (`mcp_tools`).
    const NAME: &'static str;
    /// The filter's own configuration keys (next to the common ones).
    type Config: DeserializeOwned + Validate + 'static;
    /// Per-VM state built once per configuration: compiled policies, metric handles, caches.
    type Shared: 'static;

    /// The name of this configuration's gate counters (`<name>.invalid_json`) and of the
    /// details of the gate's local replies (`<name>_invalid_json`). Default [`Self::NAME`];
    /// `mcp_gateway` running a single policy takes that policy's name, so a chain of one
    /// behaves exactly like the standalone filter.
    fn name(_shared: &Self::Shared) -> &'static str {
        Self::NAME
    }

    /// Builds the per-VM state; an error refuses the configuration.
    fn shared(
        config: &Loaded<Self::Config>,
        metrics: &mut metrics::Registry,
    ) -> Result<Self::Shared, String>;

    /// A new per-request instance.
    fn new(shared: Rc<Self::Shared>, config: Rc<Loaded<Self::Config>>) -> Self;

    /// Request headers. Default: inspect the body of POST requests.
    fn on_request_head(&mut self, _head: &RequestHead) -> HeadAction {
        HeadAction::Inspect
    }

    /// A parsed, validated request body (single message or, under `batch: each`, each element).
    fn on_request(&mut self, _req: &Inspected<'_>) -> RequestAction {
        RequestAction::Continue
    }

    /// The last word before the request goes upstream, once every head and message decision
    /// allowed it (also for requests passed unread: GET streams, DELETE). Default: forward.
    /// [`ForwardAction::Hold`] keeps the request waiting, for example for the answer to a
    /// [`request_call`] (an OAuth token exchange); the filter must make sure that answer, or a
    /// [`wake`], comes. Host calls here act on the request (set its headers).
    fn before_forward(&mut self, _head: &RequestHead) -> ForwardAction {
        ForwardAction::Continue
    }

    /// The answer to a [`request_call`] this request made. Read it with
    /// `abi::get_headers(MapType::HttpCallResponseHeaders)` and
    /// `abi::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)` (here and only here);
    /// a failed call arrives with no headers. If the request is waiting to be forwarded,
    /// [`McpFilter::before_forward`] is asked again right after.
    fn on_call_response(&mut self, _token: u32, _num_headers: usize, _body_size: usize) {}

    /// Whether this request's response matters to the filter at all. Checked before any response
    /// header is read, so answering `false` makes the response phase free. Default `true`.
    fn wants_response(&self) -> bool {
        true
    }

    /// Response headers. Default: not interested (the response streams through untouched).
    fn on_response_head(&mut self, _head: &ResponseHead) -> ResponseInterest {
        ResponseInterest::None
    }

    /// One JSON-RPC message of the response: the whole body of an `application/json` response, or
    /// the `data` of one SSE event.
    fn on_response_message(&mut self, _data: &[u8]) -> MessageAction {
        MessageAction::Keep
    }

    /// A response under [`ResponseInterest::Observe`] stopped being read before its end (a JSON
    /// body over `max_body_bytes`, an SSE event over it, a host error): no more messages come.
    fn on_response_unread(&mut self) {}

    /// The stream is complete (Envoy's log phase): record durations, outcomes.
    fn on_log(&mut self) {}

    /// The root context's timer period for this configuration; `None` (the default) sets no
    /// timer. Asked once per configuration, after [`McpFilter::shared`].
    fn tick_period_ms(_shared: &Self::Shared) -> Option<u32> {
        None
    }

    /// The root context's timer: background work of the VM such as refreshing remote keys with
    /// [`abi::http_call`] (each worker VM ticks on its own; coordinate through shared data).
    fn on_tick(_shared: &Self::Shared) {}

    /// The answer to an [`abi::http_call`] dispatched from [`McpFilter::on_tick`] (answers to a
    /// [`request_call`] go to [`McpFilter::on_call_response`] instead). Read it with
    /// `abi::get_headers(MapType::HttpCallResponseHeaders)` and
    /// `abi::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)`; a failed call (reset,
    /// timeout, unknown cluster) arrives with no headers and an empty body.
    fn on_http_call_response(
        _shared: &Self::Shared,
        _token: u32,
        _num_headers: usize,
        _body_size: usize,
    ) {
    }
}

/// Exports a [`McpFilter`] as a proxy-wasm module: `filter_host::export_filter!(ToolsFilter);`
#[macro_export]
macro_rules! export_filter {
    ($filter:ty) => {
        proxy_wasm::main! {{
            // Also installs the SDK's panic hook, which logs a panic at Critical before the VM
            // dies: the only trace a panic would leave.
            proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
            proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
                Box::new($crate::McpRoot::<$filter>::new())
            });
        }}
    };
}
