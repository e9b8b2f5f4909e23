//! Glue of per-user upstream credentials (`upstream_token`, RFC 8693): the decisions are
//! `mcp_core::scopes::exchange`'s; this holds the request before it is forwarded, makes the
//! token request with an Envoy HTTP callout (`filter_host::request_call`), and replaces
//! `Authorization` with the issued token, or refuses the request (nothing goes upstream).

use super::local;
use super::state::{now, Shared};
use filter_host::abi::{self, BufferType, MapType};
use filter_host::{ForwardAction, Inspected, LocalReply, RequestAction, RequestHead};
use mcp_core::jsonrpc::{self, IdOwned, Request};
use mcp_core::mcp::methods;
use mcp_core::scopes::challenge;
use mcp_core::scopes::config::Policy;
use mcp_core::scopes::exchange::{
    classify, request_body, token_digest, CacheKey, Exchange, Failure, Issued,
};
use mcp_core::scopes::policy::Requirement;
use mcp_core::scopes::token::{self, AuthError, Bearer, Identity};

/// Largest token endpoint answer read (bytes); a longer one is unparseable.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// One request's exchange. The caller's token is not copied: it is read from the request head
/// when needed.
#[derive(Debug, Default)]
pub struct Pending {
    /// The target chosen by the request's messages ([`Exchange::target_index`]; `None`: no
    /// message, the defaults apply).
    target: Option<usize>,
    /// The scopes the operation needs (for a 403 challenge).
    needed: Vec<String>,
    /// The request id (a single message), for refusal bodies.
    id: Option<IdOwned>,
    /// The call in flight and the cache key its answer is stored under.
    call: Option<(u32, CacheKey)>,
    /// The answer, once it came.
    outcome: Option<Result<Issued, Failure>>,
}

fn batch_conflict() -> RequestAction {
    let body = jsonrpc::error_response(
        None,
        jsonrpc::INVALID_REQUEST,
        "Invalid Request: the messages of this batch need different upstream credentials",
        None,
    );
    RequestAction::Reply(LocalReply::json(
        400,
        "mcp_scopes_exchange_batch_conflict",
        body,
    ))
}

impl Pending {
    /// An allowed request message: which audience and scope its upstream token needs.
    pub fn on_allowed(
        &mut self,
        policy: &Policy,
        x: &Exchange,
        req: &Inspected<'_>,
        r: &Request<'_>,
    ) -> RequestAction {
        let tool = (r.method == methods::TOOLS_CALL)
            .then_some(r.name.as_deref())
            .flatten();
        let target = x.target_index(tool);
        match self.target {
            // One upstream request carries one credential.
            Some(t) if t != target => return batch_conflict(),
            Some(_) => {}
            None => self.target = Some(target),
        }
        if let Requirement::Scopes(needed) = policy.requirement(&r.method, tool) {
            for s in needed {
                if !self.needed.contains(&s) {
                    self.needed.push(s);
                }
            }
        }
        if req.batch_index.is_none() {
            self.id = r.id.as_ref().map(jsonrpc::Id::to_owned_id);
        }
        RequestAction::Continue
    }

    fn refuse(&self, shared: &Shared, policy: &Policy, failure: Failure) -> ForwardAction {
        let s = &shared.stats;
        match failure {
            Failure::InvalidGrant => s.exchange_invalid_grant.inc(),
            Failure::Rejected(_) => s.exchange_rejected.inc(),
            Failure::Unavailable(_) => s.exchange_unavailable.inc(),
        }
        match failure {
            Failure::Unavailable(why) => filter_host::log!(Warn, "token exchange failed: {why}"),
            _ => filter_host::log!(Debug, "token exchange refused: {}", failure.reason()),
        }
        let id = self.id.as_ref().map(IdOwned::as_id);
        ForwardAction::Reply(local(challenge::exchange_failed(
            policy,
            failure,
            &self.needed,
            id.as_ref(),
        )))
    }

    /// Forwards once `Authorization` holds the issued token (`set`: the host call that put it
    /// there); refuses when it could not be set (the caller's token would go upstream: never).
    fn authorized(
        &self,
        shared: &Shared,
        policy: &Policy,
        set: Result<(), abi::HostError>,
    ) -> ForwardAction {
        match set {
            Ok(()) => ForwardAction::Continue,
            Err(e) => {
                filter_host::log!(Warn, "cannot set the upstream authorization: {e}");
                self.refuse(shared, policy, Failure::Unavailable("host_error"))
            }
        }
    }

    /// Before the request goes upstream: the cached issued token, or an exchange (held until
    /// its answer), or the refusal of a failed one.
    pub fn before_forward(
        &mut self,
        shared: &Shared,
        policy: &Policy,
        x: &Exchange,
        identity: &Identity,
        head: &RequestHead,
    ) -> ForwardAction {
        if let Some(outcome) = self.outcome.take() {
            return match outcome {
                Ok(issued) => {
                    let value = mcp_core::scopes::exchange::bearer(&issued.access_token);
                    let set = abi::set_header(MapType::HttpRequestHeaders, "authorization", &value);
                    self.authorized(shared, policy, set)
                }
                Err(f) => self.refuse(shared, policy, f),
            };
        }
        if self.call.is_some() {
            return ForwardAction::Hold;
        }
        let Bearer::Token(subject) = token::bearer(head.authorization.as_deref()) else {
            // Authenticated without a bearer token (jwt_authn from another header): nothing
            // to exchange.
            let r = challenge::unauthenticated(policy, AuthError::NoToken, None);
            shared.stats.no_token.inc();
            return ForwardAction::Reply(local(r));
        };
        let target = self.target.unwrap_or(x.tools.len());
        // Hashed once per verified token and worker: the identity is cached with the token.
        let digest = *identity.token_digest.get_or_init(|| token_digest(subject));
        let key = CacheKey::new(digest, target);
        if let Ok(mut cache) = shared.exchange_cache.try_borrow_mut() {
            if let Some(value) = cache.get(&key, now()) {
                shared.stats.exchange_cache_hits.inc();
                let set = abi::set_header(MapType::HttpRequestHeaders, "authorization", value);
                drop(cache);
                return self.authorized(shared, policy, set);
            }
        }
        let body = request_body(subject, x.target_at(target));
        match filter_host::request_call(
            head.context_id,
            &x.cluster,
            &x.request_headers(),
            &body,
            x.timeout_ms,
        ) {
            Ok(t) => {
                self.call = Some((t, key));
                ForwardAction::Hold
            }
            Err(e) => {
                filter_host::log!(Warn, "token exchange to cluster {}: {e}", x.cluster);
                self.refuse(shared, policy, Failure::Unavailable("unreachable"))
            }
        }
    }

    /// The token endpoint's answer (or a failed call: no headers).
    pub fn on_call_response(
        &mut self,
        shared: &Shared,
        identity: Option<&Identity>,
        token: u32,
        num_headers: usize,
        body_size: usize,
    ) {
        let key = match self.call {
            Some((t, key)) if t == token => key,
            _ => return,
        };
        self.call = None;
        let status = if num_headers == 0 {
            0
        } else {
            abi::get_header(MapType::HttpCallResponseHeaders, ":status")
                .ok()
                .flatten()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        };
        let outcome = if body_size > MAX_ANSWER_BYTES {
            Err(Failure::Unavailable("unparseable_response"))
        } else {
            let body =
                abi::get_buffer(BufferType::HttpCallResponseBody, 0, body_size).unwrap_or_default();
            classify(status, &body)
        };
        if let Ok(issued) = &outcome {
            shared.stats.exchanged.inc();
            if let Ok(mut c) = shared.exchange_cache.try_borrow_mut() {
                c.insert(key, issued, identity.and_then(|i| i.exp), now());
            }
        }
        self.outcome = Some(outcome);
    }
}
