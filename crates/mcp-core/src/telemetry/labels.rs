//! Metric names and bounded labels.
//!
//! Envoy stats carry no labels of their own: a proxy-wasm metric is one flat name
//! (`wasmcustom.<name>`), and Prometheus labels come from `stats_config.stats_tags` regexes
//! that cut `.method.<m>`, `.tool.<t>` and `.outcome.<o>` segments out of the name. So every
//! label value must be free of dots, and the number of distinct names must stay bounded: a
//! method outside the MCP method list counts as `other`, and tool names become labels only if
//! allowed and within a per-VM cap.

use crate::glob::PatternSet;
use crate::mcp::methods;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

/// The label of everything outside the bounded set.
pub const OTHER: &str = "other";

/// Longest tool label (MCP 2025-11-25 limits tool names to 128 characters).
pub const MAX_LABEL_CHARS: usize = 128;

/// Methods that get their own `mcp_method_name` label.
const KNOWN_METHODS: &[&str] = &[
    methods::INITIALIZE,
    methods::INITIALIZED,
    methods::PING,
    methods::SERVER_DISCOVER,
    methods::SUBSCRIPTIONS_LISTEN,
    methods::TOOLS_LIST,
    methods::TOOLS_CALL,
    methods::PROMPTS_LIST,
    methods::PROMPTS_GET,
    methods::RESOURCES_LIST,
    methods::RESOURCES_READ,
    methods::RESOURCES_TEMPLATES_LIST,
    methods::RESOURCES_SUBSCRIBE,
    methods::RESOURCES_UNSUBSCRIBE,
    methods::COMPLETION_COMPLETE,
    methods::LOGGING_SET_LEVEL,
    methods::TASKS_GET,
    methods::TASKS_RESULT,
    methods::TASKS_LIST,
    methods::TASKS_CANCEL,
    methods::NOTIFICATIONS_PROGRESS,
    methods::NOTIFICATIONS_CANCELLED,
    "notifications/roots/list_changed",
    "notifications/elicitation/complete",
    "notifications/tasks/status",
];

/// The `mcp_method_name` label: the method if it is an MCP method, else [`OTHER`] (clients
/// can send any string; each distinct one would be a new Envoy stat).
pub fn method_label(method: &str) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or(OTHER)
}

/// A tool name as a label: characters outside `[A-Za-z0-9_-]` become `_` (a dot would split
/// the stat name), at most [`MAX_LABEL_CHARS`] characters.
pub fn sanitize_label(name: &str) -> Cow<'_, str> {
    let clean = name.len() <= MAX_LABEL_CHARS
        && !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
    if clean {
        return Cow::Borrowed(name);
    }
    let s: String = name
        .chars()
        .take(MAX_LABEL_CHARS)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        Cow::Borrowed("_")
    } else {
        Cow::Owned(s)
    }
}

/// Decides which tool names become labels: those the allow-list matches (any when absent),
/// first come first served up to `cap` distinct labels per VM, the rest [`OTHER`].
#[derive(Debug)]
pub struct ToolLabels {
    allow: Option<PatternSet>,
    cap: usize,
    known: HashSet<String>,
}

impl ToolLabels {
    /// A labeller with an optional allow-list and a cap.
    pub fn new(allow: Option<PatternSet>, cap: usize) -> Self {
        ToolLabels {
            allow,
            cap,
            known: HashSet::new(),
        }
    }

    /// The label for `tool`.
    pub fn label(&mut self, tool: &str) -> String {
        if self.allow.as_ref().is_some_and(|a| !a.matches(tool)) {
            return OTHER.to_owned();
        }
        let label = sanitize_label(tool);
        if self.known.contains(label.as_ref()) {
            return label.into_owned();
        }
        if self.known.len() >= self.cap {
            return OTHER.to_owned();
        }
        let label = label.into_owned();
        self.known.insert(label.clone());
        label
    }

    /// How many distinct tool labels are in use.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether no tool label is in use yet.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}

/// How many raw tool names [`IdCache`] remembers (clients choose them, so it must be bounded).
pub const MAX_CACHED_TOOLS: usize = 1024;

type Entries<T> = Vec<(&'static str, Outcome, T)>;

/// Whatever a request's metrics resolve to (ids), remembered per method label, raw tool name and
/// outcome, so a request like an earlier one needs no labelling, name formatting or definition
/// lookup. Bounded: at most [`MAX_CACHED_TOOLS`] distinct tool names are remembered; requests
/// naming others are resolved every time (and still land on bounded labels).
#[derive(Debug)]
pub struct IdCache<T> {
    no_tool: Entries<T>,
    by_tool: HashMap<String, Entries<T>>,
}

impl<T> Default for IdCache<T> {
    fn default() -> Self {
        IdCache {
            no_tool: Vec::new(),
            by_tool: HashMap::new(),
        }
    }
}

fn find<T: Copy>(entries: &Entries<T>, method: &str, outcome: Outcome) -> Option<T> {
    entries
        .iter()
        .find(|(m, o, _)| *o == outcome && *m == method)
        .map(|(_, _, v)| *v)
}

impl<T: Copy> IdCache<T> {
    /// What was remembered for these labels.
    pub fn get(&self, method: &str, tool: Option<&str>, outcome: Outcome) -> Option<T> {
        match tool {
            None => find(&self.no_tool, method, outcome),
            Some(t) => find(self.by_tool.get(t)?, method, outcome),
        }
    }

    /// Remembers `value` (not when the tool-name budget is spent).
    pub fn insert(&mut self, method: &'static str, tool: Option<&str>, outcome: Outcome, value: T) {
        let entries = match tool {
            None => &mut self.no_tool,
            Some(t) => {
                if !self.by_tool.contains_key(t) && self.by_tool.len() >= MAX_CACHED_TOOLS {
                    return;
                }
                self.by_tool.entry(t.to_owned()).or_default()
            }
        };
        if find(entries, method, outcome).is_none() {
            entries.push((method, outcome, value));
        }
    }

    /// How many tool names are remembered.
    pub fn tools(&self) -> usize {
        self.by_tool.len()
    }
}

/// How an MCP operation ended, as the `mcp_outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A result (or an accepted notification).
    Ok,
    /// A JSON-RPC error response.
    JsonRpcError,
    /// A `tools/call` result with `isError: true`.
    ToolError,
    /// A non-2xx upstream answer, a 5xx from Envoy, or no answer at all.
    HttpError,
    /// Refused before the upstream: a local 4xx reply (this filter's gate, a later filter such
    /// as `mcp_scopes`, a rate limit).
    Denied,
}

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::JsonRpcError => "jsonrpc_error",
            Outcome::ToolError => "tool_error",
            Outcome::HttpError => "http_error",
            Outcome::Denied => "denied",
        }
    }
}

/// What was observed of a request's answer, for [`classify`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    /// HTTP status sent downstream (`None` or 0: none, e.g. the client went away).
    pub status: Option<u32>,
    /// The answer was generated by Envoy (a local reply), not received from the upstream.
    pub local_reply: bool,
    /// A JSON-RPC response was expected and looked for in the body.
    pub awaited: bool,
    /// The matching response was an error.
    pub jsonrpc_error: bool,
    /// The matching response was a tool error.
    pub tool_error: bool,
    /// A matching response was seen.
    pub matched: bool,
}

/// The outcome of an operation.
///
/// HTTP status first (a 4xx local reply is `denied`, any other non-2xx `http_error`), then the
/// JSON-RPC response; a 2xx answer that never carried the awaited response (stream cut) is an
/// `http_error`.
pub fn classify(o: &Observed) -> Outcome {
    let status = o.status.unwrap_or(0);
    if o.local_reply && (400..500).contains(&status) {
        return Outcome::Denied;
    }
    if !(200..300).contains(&status) {
        return Outcome::HttpError;
    }
    if o.jsonrpc_error {
        Outcome::JsonRpcError
    } else if o.tool_error {
        Outcome::ToolError
    } else if o.awaited && !o.matched {
        Outcome::HttpError
    } else {
        Outcome::Ok
    }
}

/// `<prefix>.requests_total.method.<m>[.tool.<t>].outcome.<o>`.
pub fn counter_name(prefix: &str, method: &str, tool: Option<&str>, outcome: Outcome) -> String {
    let mut n = format!("{prefix}.requests_total.method.{method}");
    if let Some(t) = tool {
        n.push_str(".tool.");
        n.push_str(t);
    }
    n.push_str(".outcome.");
    n.push_str(outcome.as_str());
    n
}

/// `<prefix>.request_duration_ms.method.<m>[.tool.<t>]`.
pub fn histogram_name(prefix: &str, method: &str, tool: Option<&str>) -> String {
    let mut n = format!("{prefix}.request_duration_ms.method.{method}");
    if let Some(t) = tool {
        n.push_str(".tool.");
        n.push_str(t);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_cache_remembers_per_method_tool_and_outcome_within_its_budget() {
        let mut c: IdCache<u32> = IdCache::default();
        assert_eq!(c.get("tools/call", Some("echo"), Outcome::Ok), None);
        c.insert("tools/call", Some("echo"), Outcome::Ok, 1);
        c.insert("tools/call", Some("echo"), Outcome::ToolError, 2);
        c.insert("tools/list", None, Outcome::Ok, 3);
        // A second insert for the same labels keeps the first value.
        c.insert("tools/call", Some("echo"), Outcome::Ok, 9);
        assert_eq!(c.get("tools/call", Some("echo"), Outcome::Ok), Some(1));
        assert_eq!(
            c.get("tools/call", Some("echo"), Outcome::ToolError),
            Some(2)
        );
        assert_eq!(c.get("tools/call", Some("echo"), Outcome::Denied), None);
        assert_eq!(c.get("tools/list", None, Outcome::Ok), Some(3));
        assert_eq!(c.get("tools/list", Some(""), Outcome::Ok), None);
        assert_eq!(c.get("prompts/get", None, Outcome::Ok), None);
        for i in 0..MAX_CACHED_TOOLS + 10 {
            c.insert("tools/call", Some(&format!("t{i}")), Outcome::Ok, 5);
        }
        assert_eq!(c.tools(), MAX_CACHED_TOOLS);
        assert_eq!(c.get("tools/call", Some("echo"), Outcome::Ok), Some(1));
        let last = format!("t{}", MAX_CACHED_TOOLS + 5);
        assert_eq!(c.get("tools/call", Some(&last), Outcome::Ok), None);
        // A remembered tool still takes new outcomes once the budget is spent.
        c.insert("tools/call", Some("echo"), Outcome::Denied, 7);
        assert_eq!(c.get("tools/call", Some("echo"), Outcome::Denied), Some(7));
    }

    #[test]
    fn mcp_methods_are_labels_and_anything_else_is_other() {
        assert_eq!(method_label("tools/call"), "tools/call");
        assert_eq!(
            method_label("notifications/initialized"),
            "notifications/initialized"
        );
        assert_eq!(method_label("Tools/Call"), OTHER);
        assert_eq!(method_label("x.y.z"), OTHER);
    }

    #[test]
    fn tool_labels_never_contain_dots_or_grow_without_bound() {
        assert_eq!(sanitize_label("get_weather"), "get_weather");
        assert_eq!(sanitize_label("github.create issue"), "github_create_issue");
        assert_eq!(sanitize_label(""), "_");
        assert_eq!(sanitize_label(&"a".repeat(300)).len(), 128);
        assert_eq!(sanitize_label("naïve"), "na_ve");
    }

    #[test]
    fn the_cap_admits_the_first_tools_and_keeps_them() {
        let mut l = ToolLabels::new(None, 2);
        assert_eq!(l.label("a"), "a");
        assert_eq!(l.label("b"), "b");
        assert_eq!(l.label("c"), OTHER);
        assert_eq!(l.label("a"), "a");
        assert_eq!(l.len(), 2);
        let mut none = ToolLabels::new(None, 0);
        assert_eq!(none.label("a"), OTHER);
        assert!(none.is_empty());
    }

    #[test]
    fn the_allow_list_decides_before_the_cap() {
        let allow = PatternSet::new(&["get_*", "echo"]).unwrap();
        let mut l = ToolLabels::new(Some(allow), 10);
        assert_eq!(l.label("delete_repo"), OTHER);
        assert_eq!(l.label("get_weather"), "get_weather");
        assert_eq!(l.label("echo"), "echo");
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn outcomes_follow_http_status_then_the_json_rpc_answer() {
        let ok = Observed {
            status: Some(200),
            awaited: true,
            matched: true,
            ..Observed::default()
        };
        assert_eq!(classify(&ok), Outcome::Ok);
        let notification = Observed {
            status: Some(202),
            ..Observed::default()
        };
        assert_eq!(classify(&notification), Outcome::Ok);
        assert_eq!(
            classify(&Observed {
                jsonrpc_error: true,
                ..ok
            }),
            Outcome::JsonRpcError
        );
        assert_eq!(
            classify(&Observed {
                tool_error: true,
                ..ok
            }),
            Outcome::ToolError
        );
        assert_eq!(
            classify(&Observed {
                matched: false,
                ..ok
            }),
            Outcome::HttpError
        );
        let refused = Observed {
            status: Some(403),
            local_reply: true,
            ..Observed::default()
        };
        assert_eq!(classify(&refused), Outcome::Denied);
        assert_eq!(
            classify(&Observed {
                status: Some(429),
                ..refused
            }),
            Outcome::Denied
        );
        assert_eq!(
            classify(&Observed {
                status: Some(503),
                ..refused
            }),
            Outcome::HttpError
        );
        assert_eq!(
            classify(&Observed {
                status: Some(404),
                jsonrpc_error: true,
                matched: true,
                ..Observed::default()
            }),
            Outcome::HttpError
        );
        assert_eq!(classify(&Observed::default()), Outcome::HttpError);
    }

    #[test]
    fn metric_names_put_each_label_in_its_own_segment() {
        assert_eq!(
            counter_name(
                "mcp_telemetry",
                "tools/call",
                Some("echo"),
                Outcome::ToolError
            ),
            "mcp_telemetry.requests_total.method.tools/call.tool.echo.outcome.tool_error"
        );
        assert_eq!(
            counter_name("mcp_telemetry", "tools/list", None, Outcome::Ok),
            "mcp_telemetry.requests_total.method.tools/list.outcome.ok"
        );
        assert_eq!(
            histogram_name("mcp_telemetry", "tools/call", Some("echo")),
            "mcp_telemetry.request_duration_ms.method.tools/call.tool.echo"
        );
    }
}
