//! `mcp_telemetry` decisions: which OpenTelemetry MCP attributes a request and its response
//! publish, how an operation's outcome is classified, which metric names and bounded labels
//! it counts under, and which header values it may write.
//!
//! proxy-wasm has no call to tag Envoy's active span, so the filter publishes each attribute
//! as filter state (`wasm.<attribute>`), which Envoy's tracing `custom_tags`
//! (`value: "%FILTER_STATE(wasm.mcp.method.name:PLAIN)%"`) and access logs read when the span
//! is finalized and the log line written, i.e. after the response. Responses are read with a
//! lenient top-level walk ([`response`]) rather than a parse: only `id`, `error.code`,
//! `result.isError` (and `result.protocolVersion` of `initialize`) matter.

pub mod attrs;
pub mod config;
pub mod headers;
pub mod labels;
pub mod response;

pub use attrs::{keys, request_attributes, response_attributes, HeadFacts};
pub use config::{MetaTraceContext, TelemetryConfig};
pub use labels::{classify, Observed, Outcome, ToolLabels};
pub use response::{scan_response, ResponseFacts, ResponseKind, Scan, Want};
