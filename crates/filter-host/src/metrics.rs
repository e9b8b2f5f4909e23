//! Metrics defined once per VM and cached by name.
//!
//! Envoy allocates a new id on every `define_metric` call, so ids are defined in the root context
//! and shared with request contexts. Names appear in `/stats` as `wasmcustom.<name>`; Prometheus
//! output strips `wasmcustom.` and turns dots into underscores (`mcp_tools_calls_refused`).
//! A metric whose definition failed becomes a no-op rather than an error on the data path.

use crate::abi::{self, MetricType};
use std::cell::RefCell;
use std::collections::HashMap;

/// A counter handle (no-op if its definition failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter(Option<u32>);

impl Counter {
    /// Adds one.
    pub fn inc(self) {
        self.add(1);
    }

    /// Adds `n` (zero is skipped: Envoy refuses a zero increment).
    pub fn add(self, n: u64) {
        if let (Some(id), Ok(n)) = (self.0, i64::try_from(n)) {
            if n > 0 {
                let _ = abi::increment_metric(id, n);
            }
        }
    }
}

/// A gauge handle (no-op if its definition failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gauge(Option<u32>);

impl Gauge {
    /// Adds one.
    pub fn inc(self) {
        if let Some(id) = self.0 {
            let _ = abi::increment_metric(id, 1);
        }
    }

    /// The process-wide value (`None` when the gauge is undefined or the host refused).
    pub fn get(self) -> Option<u64> {
        abi::get_metric(self.0?).ok()
    }
}

/// A histogram handle (no-op if its definition failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Histogram(Option<u32>);

impl Histogram {
    /// Records one value.
    pub fn record(self, v: u64) {
        if let Some(id) = self.0 {
            let _ = abi::record_metric(id, v);
        }
    }
}

thread_local! {
    static DEFINED: RefCell<HashMap<(u32, String), u32>> = RefCell::new(HashMap::new());
}

/// Forgets cached metric ids (the fake host's reset; a real VM never forgets).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn forget_definitions() {
    DEFINED.with(|d| d.borrow_mut().clear());
}

/// Defines metrics, reusing ids already defined in this VM under the same name (a
/// reconfiguration must not allocate new ones).
#[derive(Debug, Default)]
pub struct Registry {
    failures: u32,
}

impl Registry {
    fn define(&mut self, t: MetricType, name: &str) -> Option<u32> {
        let key = (t as u32, name.to_owned());
        if let Some(id) = DEFINED.with(|d| d.borrow().get(&key).copied()) {
            return Some(id);
        }
        match abi::define_metric(t, name) {
            Ok(id) => {
                DEFINED.with(|d| d.borrow_mut().insert(key, id));
                Some(id)
            }
            Err(_) => {
                self.failures += 1;
                None
            }
        }
    }

    /// A counter named `name`.
    pub fn counter(&mut self, name: &str) -> Counter {
        Counter(self.define(MetricType::Counter, name))
    }

    /// A gauge named `name`.
    pub fn gauge(&mut self, name: &str) -> Gauge {
        Gauge(self.define(MetricType::Gauge, name))
    }

    /// A histogram named `name`.
    pub fn histogram(&mut self, name: &str) -> Histogram {
        Histogram(self.define(MetricType::Histogram, name))
    }

    /// How many definitions failed (logged once at configure).
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// Counters every filter keeps for the shared request gate, named `<filter>.<counter>`.
#[derive(Debug, Clone, Copy)]
pub struct GateStats {
    /// Request bodies parsed and handed to the filter.
    pub inspected: Counter,
    /// Refused: not JSON / not UTF-8 / too deep (`-32700`).
    pub invalid_json: Counter,
    /// Refused: valid JSON but not a valid JSON-RPC/MCP request, duplicate keys included (`-32600`).
    pub invalid_request: Counter,
    /// Refused: a JSON-RPC batch under `batch: reject`.
    pub batch_rejected: Counter,
    /// Refused: `Mcp-Method` / `Mcp-Name` / `MCP-Protocol-Version` header disagrees with the body.
    pub header_mismatch: Counter,
    /// Body larger than `max_body_bytes`.
    pub body_too_large: Counter,
    /// A host call or internal step failed.
    pub failures: Counter,
    /// Messages let through unchecked because of `failure_mode: open`.
    pub failure_open_passes: Counter,
    /// Refused: a request other than `POST` that carries a body (`405`).
    pub method_not_allowed: Counter,
    /// Refused: an MCP singleton header (`Mcp-Method`, `Mcp-Name`, `MCP-Protocol-Version`,
    /// `Mcp-Session-Id`, `Authorization`) sent more than once.
    pub repeated_header: Counter,
    /// Refused: a response the filter had to read arrived in a form it cannot read (a
    /// `content-encoding`, an unknown or ambiguous media type with a body).
    pub unreadable_response: Counter,
}

impl GateStats {
    /// Defines the gate counters under `prefix`.
    pub fn new(reg: &mut Registry, prefix: &str) -> Self {
        let mut c = |n: &str| reg.counter(&format!("{prefix}.{n}"));
        GateStats {
            inspected: c("requests_inspected"),
            invalid_json: c("invalid_json"),
            invalid_request: c("invalid_request"),
            batch_rejected: c("batch_rejected"),
            header_mismatch: c("header_mismatch"),
            body_too_large: c("body_too_large"),
            failures: c("failures"),
            failure_open_passes: c("failure_open_passes"),
            method_not_allowed: c("method_not_allowed"),
            repeated_header: c("repeated_header"),
            unreadable_response: c("unreadable_response"),
        }
    }
}
