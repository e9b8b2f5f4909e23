//! `mcp_gateway`: every MCP policy in one wasm VM, over one gate and one parse per request.
//!
//! The policies are the standalone filters' own code (`filters/<policy>/src`, compiled in as
//! modules under `cfg(mcp_gateway)`), run as a chain with a fixed order: telemetry → scopes →
//! tools → pii on the request, the reverse on the response, so pii scrubs what the list
//! filtering left and telemetry observes the bytes the client gets. The shared gate
//! (`filter_host`) parses and checks each request once and hands the same parsed message to
//! every policy; each response message is framed once and passed from policy to policy.
//!
//! - **Request head**: each policy decides in order; the first reply wins. A policy that holds
//!   the request (mcp_scopes waiting for a JWKS refresh) is asked again when it is woken, and the
//!   chain goes on from it: the policies before it are not asked twice.
//! - **Request message**: each policy that asked for the body decides in order; the first reply
//!   wins. Only the last policy (pii) rewrites a body.
//! - **Before forwarding** (every decision allowed the request): each policy in order may still
//!   refuse or hold it (mcp_scopes exchanging the caller's token for an upstream one, RFC 8693);
//!   the answer to a call a policy made goes to that policy, and the chain resumes from it.
//! - **Response**: the policies that want it say how (`Messages`, `Observe`); each message goes
//!   through them in order, each one seeing what the previous one forwarded; a drop ends it.
//!
//! Configuration: `mcp_core::gateway::GatewayConfig` (the common keys at the top level, one
//! optional section per policy). See docs/gateway.md.

#[path = "../../pii/src/lib.rs"]
pub mod pii;
#[path = "../../scopes/src/lib.rs"]
pub mod scopes;
#[path = "../../telemetry/src/lib.rs"]
pub mod telemetry;
#[path = "../../tools/src/lib.rs"]
pub mod tools;

use filter_host::metrics::Registry;
use filter_host::{
    ForwardAction, Framing, HeadAction, Inspected, LocalReply, McpFilter, MessageAction,
    RequestAction, RequestHead, ResponseHead, ResponseInterest,
};
use mcp_core::config::Loaded;
use mcp_core::gateway::GatewayConfig;
use std::borrow::Cow;
use std::rc::Rc;

/// One policy's per-VM state and configuration.
pub struct Part<P: McpFilter> {
    shared: Rc<P::Shared>,
    config: Rc<Loaded<P::Config>>,
}

impl<P: McpFilter> std::fmt::Debug for Part<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Part").field("policy", &P::NAME).finish()
    }
}

impl<P: McpFilter> Part<P> {
    fn build(
        section: Option<&P::Config>,
        common: &mcp_core::config::Common,
        reg: &mut Registry,
    ) -> Result<Option<Self>, String>
    where
        P::Config: Clone,
    {
        let Some(own) = section else {
            return Ok(None);
        };
        let config = Loaded {
            common: common.clone(),
            filter: own.clone(),
        };
        let shared = P::shared(&config, reg).map_err(|e| format!("{}: {e}", P::NAME))?;
        Ok(Some(Part {
            shared: Rc::new(shared),
            config: Rc::new(config),
        }))
    }

    fn start(&self) -> Slot<P> {
        Slot {
            policy: P::new(Rc::clone(&self.shared), Rc::clone(&self.config)),
            head: None,
            interest: ResponseInterest::None,
        }
    }
}

/// Per-VM state: the policies present, in chain order.
#[derive(Debug)]
pub struct Shared {
    telemetry: Option<Part<telemetry::TelemetryFilter>>,
    scopes: Option<Part<scopes::ScopesFilter>>,
    tools: Option<Part<tools::ToolsFilter>>,
    pii: Option<Part<pii::PiiFilter>>,
    name: &'static str,
}

/// One policy of one request, with what it asked for.
struct Slot<P: McpFilter> {
    policy: P,
    /// Its head decision: `Some(true)` inspect the body, `Some(false)` pass it unread.
    head: Option<bool>,
    interest: ResponseInterest,
}

/// The chain's view of a policy of this request.
trait Step {
    fn head(&mut self, head: &RequestHead) -> HeadAction;
    fn wants_body(&self) -> bool;
    fn request(&mut self, req: &Inspected<'_>) -> RequestAction;
    fn forward(&mut self, head: &RequestHead) -> ForwardAction;
    fn call_response(&mut self, token: u32, num_headers: usize, body_size: usize);
    fn wants_response(&self) -> bool;
    fn response_head(&mut self, head: &ResponseHead) -> ResponseInterest;
    fn message(&mut self, data: &[u8]) -> MessageAction;
    fn unread(&mut self);
    fn log(&mut self);
    /// A later policy answered the request locally: this one sees the reply as the response
    /// (in a chain of filters it would have come back through it).
    fn local_reply(&mut self, reply: &LocalReply);
}

impl<P: McpFilter> Step for Slot<P> {
    fn head(&mut self, head: &RequestHead) -> HeadAction {
        let a = self.policy.on_request_head(head);
        self.head = match &a {
            HeadAction::Inspect => Some(true),
            HeadAction::Pass => Some(false),
            HeadAction::Reply(_) | HeadAction::Hold => None,
        };
        a
    }

    fn wants_body(&self) -> bool {
        self.head == Some(true)
    }

    fn request(&mut self, req: &Inspected<'_>) -> RequestAction {
        if self.head == Some(true) {
            self.policy.on_request(req)
        } else {
            RequestAction::Continue
        }
    }

    fn forward(&mut self, head: &RequestHead) -> ForwardAction {
        self.policy.before_forward(head)
    }

    fn call_response(&mut self, token: u32, num_headers: usize, body_size: usize) {
        self.policy.on_call_response(token, num_headers, body_size);
    }

    fn wants_response(&self) -> bool {
        self.policy.wants_response()
    }

    fn response_head(&mut self, head: &ResponseHead) -> ResponseInterest {
        self.interest = if self.policy.wants_response() {
            self.policy.on_response_head(head)
        } else {
            ResponseInterest::None
        };
        self.interest
    }

    fn message(&mut self, data: &[u8]) -> MessageAction {
        match self.interest {
            ResponseInterest::None => MessageAction::Keep,
            ResponseInterest::Messages => self.policy.on_response_message(data),
            ResponseInterest::Observe => {
                // Read-only: whatever it answers, the message is not its to change.
                let _ = self.policy.on_response_message(data);
                MessageAction::Keep
            }
        }
    }

    fn unread(&mut self) {
        if self.interest != ResponseInterest::None {
            self.policy.on_response_unread();
        }
    }

    fn log(&mut self) {
        self.policy.on_log();
    }

    fn local_reply(&mut self, reply: &LocalReply) {
        if !self.policy.wants_response() {
            return;
        }
        let content_type = reply
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.clone());
        let head = ResponseHead {
            status: reply.status,
            framing: Framing::of(content_type.as_deref()),
            content_type,
            content_encoding: None,
            end_of_stream: reply.body.is_empty(),
        };
        self.interest = self.policy.on_response_head(&head);
        if self.interest != ResponseInterest::None && !reply.body.is_empty() {
            let _ = self.policy.on_response_message(&reply.body);
        }
    }
}

/// The chain, per request.
pub struct Gateway {
    telemetry: Option<Slot<telemetry::TelemetryFilter>>,
    scopes: Option<Slot<scopes::ScopesFilter>>,
    tools: Option<Slot<tools::ToolsFilter>>,
    pii: Option<Slot<pii::PiiFilter>>,
    /// The first policy whose head decision is still to come (after a hold, the one that held).
    next_head: usize,
    /// The first policy still to be asked before forwarding (after a hold, the one that held:
    /// its calls' answers go to it).
    next_forward: usize,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("next_head", &self.next_head)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Tells the policies before `at` (in request order) about a local reply `at` sent.
    fn replied(&mut self, at: usize, reply: &LocalReply) {
        for step in self.steps().into_iter().take(at).flatten() {
            step.local_reply(reply);
        }
    }

    /// [`Self::steps`], read-only.
    fn steps_ref(&self) -> [Option<&dyn Step>; 4] {
        [
            self.telemetry.as_ref().map(|s| s as &dyn Step),
            self.scopes.as_ref().map(|s| s as &dyn Step),
            self.tools.as_ref().map(|s| s as &dyn Step),
            self.pii.as_ref().map(|s| s as &dyn Step),
        ]
    }

    /// The policies in request order (absent ones as `None`).
    fn steps(&mut self) -> [Option<&mut dyn Step>; 4] {
        [
            self.telemetry.as_mut().map(|s| s as &mut dyn Step),
            self.scopes.as_mut().map(|s| s as &mut dyn Step),
            self.tools.as_mut().map(|s| s as &mut dyn Step),
            self.pii.as_mut().map(|s| s as &mut dyn Step),
        ]
    }
}

impl McpFilter for Gateway {
    const NAME: &'static str = "mcp_gateway";
    type Config = GatewayConfig;
    type Shared = Shared;

    fn shared(config: &Loaded<GatewayConfig>, reg: &mut Registry) -> Result<Shared, String> {
        let c = &config.common;
        let g = &config.filter;
        let sections = g.sections();
        let name = match sections.as_slice() {
            // A chain of one is the standalone filter: same gate counters and reply details.
            ["telemetry"] => telemetry::TelemetryFilter::NAME,
            ["scopes"] => scopes::ScopesFilter::NAME,
            ["tools"] => tools::ToolsFilter::NAME,
            ["pii"] => pii::PiiFilter::NAME,
            _ => Self::NAME,
        };
        Ok(Shared {
            telemetry: Part::build(g.telemetry.as_ref(), c, reg)?,
            scopes: Part::build(g.scopes.as_ref(), c, reg)?,
            tools: Part::build(g.tools.as_ref(), c, reg)?,
            pii: Part::build(g.pii.as_ref(), c, reg)?,
            name,
        })
    }

    fn name(shared: &Shared) -> &'static str {
        shared.name
    }

    fn new(shared: Rc<Shared>, _config: Rc<Loaded<GatewayConfig>>) -> Self {
        Gateway {
            telemetry: shared.telemetry.as_ref().map(Part::start),
            scopes: shared.scopes.as_ref().map(Part::start),
            tools: shared.tools.as_ref().map(Part::start),
            pii: shared.pii.as_ref().map(Part::start),
            next_head: 0,
            next_forward: 0,
        }
    }

    fn on_request_head(&mut self, head: &RequestHead) -> HeadAction {
        let from = self.next_head;
        let mut held = None;
        let mut reply = None;
        for (i, step) in self.steps().into_iter().enumerate().skip(from) {
            let Some(step) = step else { continue };
            match step.head(head) {
                HeadAction::Inspect | HeadAction::Pass => {}
                HeadAction::Reply(r) => {
                    reply = Some((i, r));
                    break;
                }
                HeadAction::Hold => {
                    held = Some(i);
                    break;
                }
            }
        }
        if let Some((i, r)) = reply {
            self.replied(i, &r);
            return HeadAction::Reply(r);
        }
        if let Some(i) = held {
            // Woken, the chain goes on from this policy.
            self.next_head = i;
            return HeadAction::Hold;
        }
        self.next_head = 4;
        let steps = self.steps_ref();
        let inspect = steps.iter().flatten().any(|s| s.wants_body());
        if inspect || steps.iter().all(Option::is_none) {
            HeadAction::Inspect
        } else {
            HeadAction::Pass
        }
    }

    fn on_request(&mut self, req: &Inspected<'_>) -> RequestAction {
        let mut decided = None;
        for (i, step) in self.steps().into_iter().enumerate() {
            let Some(step) = step else { continue };
            match step.request(req) {
                RequestAction::Continue => {}
                // The first refusal wins; a rewrite comes from the last policy (pii).
                other => {
                    decided = Some((i, other));
                    break;
                }
            }
        }
        match decided {
            Some((i, RequestAction::Reply(r))) => {
                self.replied(i, &r);
                RequestAction::Reply(r)
            }
            Some((_, other)) => other,
            None => RequestAction::Continue,
        }
    }

    fn before_forward(&mut self, head: &RequestHead) -> ForwardAction {
        let from = self.next_forward;
        let mut decided = None;
        for (i, step) in self.steps().into_iter().enumerate().skip(from) {
            let Some(step) = step else { continue };
            match step.forward(head) {
                ForwardAction::Continue => {}
                other => {
                    decided = Some((i, other));
                    break;
                }
            }
        }
        match decided {
            Some((i, ForwardAction::Reply(r))) => {
                self.replied(i, &r);
                ForwardAction::Reply(r)
            }
            Some((i, hold)) => {
                // Woken (or answered), the chain goes on from this policy.
                self.next_forward = i;
                hold
            }
            None => {
                self.next_forward = 4;
                ForwardAction::Continue
            }
        }
    }

    fn on_call_response(&mut self, token: u32, num_headers: usize, body_size: usize) {
        // Only the policy holding the request has a call in flight.
        let at = self.next_forward;
        if let Some(Some(step)) = self.steps().into_iter().nth(at) {
            step.call_response(token, num_headers, body_size);
        }
    }

    fn wants_response(&self) -> bool {
        self.steps_ref()
            .into_iter()
            .flatten()
            .any(|s| s.wants_response())
    }

    fn on_response_head(&mut self, head: &ResponseHead) -> ResponseInterest {
        let mut all = ResponseInterest::None;
        for step in self.steps().into_iter().rev().flatten() {
            match step.response_head(head) {
                ResponseInterest::Messages => all = ResponseInterest::Messages,
                ResponseInterest::Observe if all == ResponseInterest::None => {
                    all = ResponseInterest::Observe;
                }
                _ => {}
            }
        }
        all
    }

    fn on_response_message(&mut self, data: &[u8]) -> MessageAction {
        let mut current: Cow<'_, [u8]> = Cow::Borrowed(data);
        for step in self.steps().into_iter().rev().flatten() {
            match step.message(&current) {
                MessageAction::Keep => {}
                MessageAction::Replace(b) => current = Cow::Owned(b),
                MessageAction::Drop => return MessageAction::Drop,
            }
        }
        match current {
            Cow::Borrowed(_) => MessageAction::Keep,
            Cow::Owned(b) => MessageAction::Replace(b),
        }
    }

    fn on_response_unread(&mut self) {
        for step in self.steps().into_iter().flatten() {
            step.unread();
        }
    }

    fn on_log(&mut self) {
        for step in self.steps().into_iter().flatten() {
            step.log();
        }
    }

    fn tick_period_ms(shared: &Shared) -> Option<u32> {
        shared
            .scopes
            .as_ref()
            .and_then(|p| scopes::ScopesFilter::tick_period_ms(&p.shared))
    }

    fn on_tick(shared: &Shared) {
        if let Some(p) = &shared.scopes {
            scopes::ScopesFilter::on_tick(&p.shared);
        }
    }

    fn on_http_call_response(shared: &Shared, token: u32, num_headers: usize, body_size: usize) {
        if let Some(p) = &shared.scopes {
            scopes::ScopesFilter::on_http_call_response(&p.shared, token, num_headers, body_size);
        }
    }
}

filter_host::export_filter!(Gateway);
