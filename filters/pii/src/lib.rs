//! `mcp_pii`: scrubbing PII and secrets from tool arguments and results, SSE streams included.
//!
//! Decisions come from `mcp_core::pii` (detectors, scope, splicing); this crate wires them to
//! the request (body rewrite or local JSON-RPC error, mirrored 2026-07-28 `Mcp-Param-*` headers)
//! and to each response message (a JSON body or one SSE event), and counts what was found per
//! detector and direction. Matched values are never logged. See `docs/pii.md`.

use filter_host::abi::{self, MapType};
use filter_host::metrics::{Counter, Registry};
use filter_host::{
    Framing, Inspected, LocalReply, McpFilter, MessageAction, RequestAction, ResponseHead,
    ResponseInterest,
};
use mcp_core::config::{FailureMode, Loaded};
use mcp_core::json::Limits;
use mcp_core::jsonrpc::{self, Id, IdOwned, Message};
use mcp_core::mcp::{self, headers};
use mcp_core::pii::{self, Config, Direction, Engine, Findings, Scrubbed, Verdict};
use std::rc::Rc;

/// Counters of one direction.
#[derive(Debug, Clone)]
struct DirStats {
    /// Values found, per detector index (`mcp_pii.<direction>.<detector>`).
    per_detector: Vec<Option<Counter>>,
    /// Messages rewritten.
    scrubbed: Counter,
    /// Messages refused (`action: block`).
    blocked: Counter,
}

impl DirStats {
    fn new(reg: &mut Registry, engine: &Engine, dir: Direction) -> Self {
        let d = dir.name();
        let mut per_detector = Vec::new();
        for idx in engine.enabled_detectors() {
            if per_detector.len() <= idx {
                per_detector.resize(idx + 1, None);
            }
            let c = reg.counter(&format!("mcp_pii.{d}.{}", engine.detector_name(idx)));
            if let Some(slot) = per_detector.get_mut(idx) {
                *slot = Some(c);
            }
        }
        DirStats {
            per_detector,
            scrubbed: reg.counter(&format!("mcp_pii.{d}.messages_scrubbed")),
            blocked: reg.counter(&format!("mcp_pii.{d}.messages_blocked")),
        }
    }

    fn record(&self, f: &Findings) {
        for (idx, n) in f.iter() {
            if let Some(Some(c)) = self.per_detector.get(idx) {
                c.add(u64::from(n));
            }
        }
    }
}

/// Per-VM state: the compiled configuration and the counters.
#[derive(Debug)]
pub struct Shared {
    engine: Engine,
    request: DirStats,
    response: DirStats,
    headers_rewritten: Counter,
    response_failures: Counter,
}

/// The `mcp_pii` filter (one per request).
#[derive(Debug)]
pub struct PiiFilter {
    shared: Rc<Shared>,
    limits: Limits,
    failure_mode: FailureMode,
    /// Methods of the requests of this HTTP request, by id, to scope their responses.
    methods: Vec<(IdOwned, String)>,
    /// The framing of this request's response.
    framing: Framing,
}

impl PiiFilter {
    fn method_of(&self, id: Option<&Id<'_>>) -> Option<String> {
        let id = id?;
        self.methods
            .iter()
            .find(|(known, _)| known.as_id() == *id)
            .map(|(_, m)| m.clone())
    }

    fn log_findings(dir: Direction, findings: &Findings, engine: &Engine) {
        if filter_host::log::enabled(abi::LogLevel::Debug) {
            // Detector names and counts only: never the values.
            let summary: Vec<String> = findings
                .iter()
                .map(|(i, n)| format!("{}={n}", engine.detector_name(i)))
                .collect();
            filter_host::log!(Debug, "{} scrubbed: {}", dir.name(), summary.join(","));
        }
    }

    /// Rewrites `Mcp-Param-*` headers that mirror a rewritten argument, so the server's
    /// header/body check (2026-07-28) still passes. `Mcp-Name` mirrors `params.name`/`uri`,
    /// which are never rewritten.
    fn rewrite_mirrored_headers(&self, changes: &[(String, String)]) -> Result<(), String> {
        if changes.is_empty() {
            return Ok(());
        }
        let pairs = abi::get_headers(MapType::HttpRequestHeaders).map_err(|e| e.to_string())?;
        for (name, value) in pairs {
            if !name.starts_with(headers::MCP_PARAM_PREFIX) {
                continue;
            }
            let Ok(decoded) = mcp::decode_header_value(&value) else {
                continue;
            };
            if let Some(new) = pii::mirrored_header_value(&decoded, changes) {
                abi::set_header(MapType::HttpRequestHeaders, &name, &new)
                    .map_err(|e| e.to_string())?;
                self.shared.headers_rewritten.inc();
            }
        }
        Ok(())
    }
}

impl PiiFilter {
    fn scrub_error_text(&self, data: &[u8]) -> MessageAction {
        let shared = &self.shared;
        let Ok(text) = std::str::from_utf8(data) else {
            // Not text a detector can read: nothing of it is forwarded.
            shared.response_failures.inc();
            return MessageAction::Replace(
                b"Upstream error (body withheld by the gateway)".to_vec(),
            );
        };
        let mut findings = Findings::default();
        let verdict = shared.engine.scrub_text(text, &mut findings);
        shared.response.record(&findings);
        match verdict {
            Ok(None) => MessageAction::Keep,
            Ok(Some(new)) => {
                shared.response.scrubbed.inc();
                MessageAction::Replace(new.into_bytes())
            }
            Err(_) => {
                shared.response.blocked.inc();
                MessageAction::Replace(
                    b"Upstream error (blocked by gateway policy: it contained sensitive data)"
                        .to_vec(),
                )
            }
        }
    }
}

impl McpFilter for PiiFilter {
    const NAME: &'static str = "mcp_pii";
    type Config = Config;
    type Shared = Shared;

    fn shared(config: &Loaded<Config>, metrics: &mut Registry) -> Result<Shared, String> {
        let engine = Engine::new(&config.filter).map_err(|e| e.to_string())?;
        Ok(Shared {
            request: DirStats::new(metrics, &engine, Direction::Request),
            response: DirStats::new(metrics, &engine, Direction::Response),
            headers_rewritten: metrics.counter("mcp_pii.request.headers_rewritten"),
            response_failures: metrics.counter("mcp_pii.response.failures"),
            engine,
        })
    }

    fn new(shared: Rc<Shared>, config: Rc<Loaded<Config>>) -> Self {
        PiiFilter {
            shared,
            limits: Limits {
                max_depth: config.common.max_json_depth,
            },
            failure_mode: config.common.failure_mode,
            methods: Vec::new(),
            framing: Framing::Other,
        }
    }

    fn on_request(&mut self, req: &Inspected<'_>) -> RequestAction {
        if let Message::Request(r) = req.message {
            if let Some(id) = &r.id {
                self.methods.push((id.to_owned_id(), r.method.to_string()));
            }
        }
        let shared = Rc::clone(&self.shared);
        if !shared.engine.scrubs_requests() {
            return RequestAction::Continue;
        }
        let Scrubbed {
            verdict,
            findings,
            changes,
        } = shared.engine.scrub_request(req.message, req.body);
        shared.request.record(&findings);
        match verdict {
            Verdict::Clean => RequestAction::Continue,
            Verdict::Rewritten(body) => {
                Self::log_findings(Direction::Request, &findings, &shared.engine);
                if let Err(e) = self.rewrite_mirrored_headers(&changes) {
                    // A header we could not rewrite would still carry the value: refuse.
                    filter_host::log!(Warn, "rewriting mirrored headers failed: {e}");
                    let body = jsonrpc::error_response(
                        req.message.id(),
                        jsonrpc::INTERNAL_ERROR,
                        "Gateway filter could not scrub the request",
                        None,
                    );
                    return RequestAction::Reply(LocalReply::json(500, "mcp_pii_failure", body));
                }
                shared.request.scrubbed.inc();
                RequestAction::Rewrite(body)
            }
            Verdict::Blocked { reply, types } => {
                shared.request.blocked.inc();
                filter_host::log!(Info, "request blocked: {}", types.join(","));
                let body = reply.unwrap_or_default();
                // A request gets its JSON-RPC error as a server would send it (HTTP 200); a
                // notification or a client's response has no id to answer, so HTTP 400.
                let status =
                    if req.message.id().is_some() && matches!(req.message, Message::Request(_)) {
                        200
                    } else {
                        400
                    };
                RequestAction::Reply(LocalReply::json(status, "mcp_pii_blocked", body))
            }
        }
    }

    fn on_response_head(&mut self, head: &ResponseHead) -> ResponseInterest {
        if !self.shared.engine.scrubs_responses() {
            return ResponseInterest::None;
        }
        self.framing = head.framing;
        ResponseInterest::Messages
    }

    fn on_response_message(&mut self, data: &[u8]) -> MessageAction {
        let shared = Rc::clone(&self.shared);
        if self.framing == Framing::Other {
            // An error page of another media type (the driver hands over only non-2xx ones):
            // clients show its text, so it is scrubbed as text.
            return self.scrub_error_text(data);
        }
        let method_of = |id: Option<&Id<'_>>| self.method_of(id);
        let s = match shared.engine.scrub_response(data, &method_of, &self.limits) {
            Ok(s) => s,
            Err(e @ mcp_core::json::JsonError::DuplicateKey { .. }) => {
                // Ambiguous, not unreadable: the client would read the last of two members,
                // unscrubbed. Refused whatever the failure mode, like a duplicate key in a
                // request; the client still gets an answer for its id.
                shared.response_failures.inc();
                filter_host::log!(Warn, "response message has a duplicate key: refused");
                return MessageAction::Replace(jsonrpc::ambiguous_response(data, &self.limits, &e));
            }
            Err(_) => {
                shared.response_failures.inc();
                filter_host::log!(Warn, "response message is not valid JSON: cannot scrub it");
                return match self.failure_mode {
                    FailureMode::Open => MessageAction::Keep,
                    FailureMode::Closed if self.framing == Framing::Sse => MessageAction::Drop,
                    FailureMode::Closed => MessageAction::Replace(jsonrpc::error_response(
                        None,
                        jsonrpc::INTERNAL_ERROR,
                        "Gateway filter could not inspect the response",
                        None,
                    )),
                };
            }
        };
        let Scrubbed {
            verdict, findings, ..
        } = s;
        shared.response.record(&findings);
        match verdict {
            Verdict::Clean => MessageAction::Keep,
            Verdict::Rewritten(b) => {
                Self::log_findings(Direction::Response, &findings, &shared.engine);
                shared.response.scrubbed.inc();
                MessageAction::Replace(b)
            }
            Verdict::Blocked { reply, types } => {
                shared.response.blocked.inc();
                filter_host::log!(Info, "response message blocked: {}", types.join(","));
                match reply {
                    Some(b) => MessageAction::Replace(b),
                    None => MessageAction::Drop,
                }
            }
        }
    }
}

// Compiled into `mcp_gateway` too (filters/gateway), which exports the chain instead.
#[cfg(not(mcp_gateway))]
filter_host::export_filter!(PiiFilter);
