//! The `mcp_telemetry` filter's own configuration keys (next to the common ones).

use crate::config::{patterns_at, ConfigError, Validate};
use crate::glob::PatternSet;
use serde::Deserialize;

/// Default cap on distinct tool labels per VM.
pub const DEFAULT_MAX_TOOL_LABELS: usize = 50;
/// Largest accepted `max_tool_labels`: every label multiplies the number of Envoy stats.
pub const MAX_MAX_TOOL_LABELS: usize = 1000;

/// Whether and how `params._meta.traceparent` / `tracestate` are copied into HTTP headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(rename_all = "snake_case")]
pub enum MetaTraceContext {
    /// Leave the HTTP trace headers alone (default).
    #[default]
    Off,
    /// Copy only when the HTTP request has no `traceparent` header.
    IfAbsent,
    /// Always copy a valid `_meta` traceparent, replacing the HTTP one (and dropping an HTTP
    /// `tracestate` that belonged to the replaced trace).
    Override,
}

/// `mcp_telemetry` keys.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Set `x-mcp-method` / `x-mcp-tool` request headers for routes and rate limits.
    /// Client-sent copies are removed whether or not this is on.
    #[serde(default)]
    pub route_headers: bool,
    /// Define and update the request counter and duration histogram.
    #[serde(default = "yes")]
    pub metrics: bool,
    /// Tool names (glob patterns) that get their own metric label; others count as `other`.
    /// Absent: any tool, up to `max_tool_labels`.
    #[serde(default)]
    pub metric_tools: Option<Vec<String>>,
    /// Most distinct tool labels per VM (worker); later new tools count as `other`.
    #[serde(default = "default_max_tool_labels")]
    #[cfg_attr(feature = "schema", schemars(range(max = MAX_MAX_TOOL_LABELS)))]
    pub max_tool_labels: usize,
    /// Copy `params._meta` trace context into the HTTP `traceparent`/`tracestate` headers.
    #[serde(default)]
    pub meta_trace_context: MetaTraceContext,
}

fn yes() -> bool {
    true
}

fn default_max_tool_labels() -> usize {
    DEFAULT_MAX_TOOL_LABELS
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            route_headers: false,
            metrics: true,
            metric_tools: None,
            max_tool_labels: DEFAULT_MAX_TOOL_LABELS,
            meta_trace_context: MetaTraceContext::Off,
        }
    }
}

impl TelemetryConfig {
    /// The compiled `metric_tools` patterns (`None` when absent).
    pub fn metric_tool_patterns(&self) -> Result<Option<PatternSet>, ConfigError> {
        self.metric_tools
            .as_deref()
            .map(|list| patterns_at("metric_tools", list))
            .transpose()
    }
}

impl Validate for TelemetryConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_tool_labels > MAX_MAX_TOOL_LABELS {
            return Err(ConfigError::at(
                "max_tool_labels",
                format!("must be between 0 and {MAX_MAX_TOOL_LABELS}"),
            ));
        }
        self.metric_tool_patterns().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;

    #[test]
    fn an_empty_configuration_uses_the_documented_defaults() {
        let c = load::<TelemetryConfig>(b"{}").unwrap().filter;
        assert!(!c.route_headers);
        assert!(c.metrics);
        assert_eq!(c.metric_tools, None);
        assert_eq!(c.max_tool_labels, 50);
        assert_eq!(c.meta_trace_context, MetaTraceContext::Off);
    }

    #[test]
    fn every_key_is_read() {
        let c = load::<TelemetryConfig>(
            br#"{"route_headers":true,"metrics":false,"metric_tools":["get_*"],
                "max_tool_labels":3,"meta_trace_context":"if_absent","failure_mode":"open"}"#,
        )
        .unwrap();
        assert!(c.filter.route_headers);
        assert!(!c.filter.metrics);
        assert_eq!(c.filter.max_tool_labels, 3);
        assert_eq!(c.filter.meta_trace_context, MetaTraceContext::IfAbsent);
        assert!(c
            .filter
            .metric_tool_patterns()
            .unwrap()
            .unwrap()
            .matches("get_weather"));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let e = load::<TelemetryConfig>(br#"{"route_header":true}"#).unwrap_err();
        assert!(e.to_string().contains("route_header"), "{e}");
        let e = load::<TelemetryConfig>(br#"{"max_tool_labels":1001}"#).unwrap_err();
        assert_eq!(e.path, "max_tool_labels");
        let e = load::<TelemetryConfig>(br#"{"metric_tools":["ok",""]}"#).unwrap_err();
        assert_eq!(e.path, "metric_tools[1]");
        let e = load::<TelemetryConfig>(br#"{"meta_trace_context":"always"}"#).unwrap_err();
        assert_eq!(e.path, "meta_trace_context");
    }
}
