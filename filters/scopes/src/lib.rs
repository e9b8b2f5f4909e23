//! `mcp_scopes`: JWT verification, per-tool OAuth scopes, MCP 401/403 challenges and RFC 9728
//! protected-resource metadata, in front of any MCP server.
//!
//! Decisions live in `mcp_core::scopes` (pure); this crate is the glue: read the
//! `Authorization` header, verify the signature (jwt-simple, in [`keys`]), keep per-VM state
//! ([`state`]: key ring, token cache, remote JWKS refresh), publish the identity as filter state
//! and turn refusals into local replies.
//!
//! Authentication happens on the request headers, so a refused request is answered before its
//! body is even buffered; scopes are checked per JSON-RPC message once the body is parsed.
//!
//! Filter state published for the other filters (a contract, read with
//! `abi::get_property(&["mcp.auth.sub"])` etc., or `%FILTER_STATE(wasm.mcp.auth.sub:PLAIN)%`):
//! `mcp.auth.sub`, `mcp.auth.scopes` (space separated) and `mcp.auth.claims` (compact JSON).

pub mod exchange;
pub mod keys;
pub mod state;

use filter_host::abi::{self, MapType};
use filter_host::metrics::Registry;
use filter_host::{
    ForwardAction, Framing, HeadAction, Inspected, LocalReply, McpFilter, MessageAction,
    RequestAction, RequestHead, ResponseHead, ResponseInterest,
};
use mcp_core::config::Loaded;
use mcp_core::json::Limits;
use mcp_core::jsonrpc::Message;
use mcp_core::scopes::challenge::{self, Refusal};
use mcp_core::scopes::config::{Authenticator, Policy, ScopesConfig};
use mcp_core::scopes::token::{self, AuthError, Bearer, Identity, Outcome};
use mcp_core::scopes::Verdict;
use mcp_core::tools_list::{self, ListOptions};
use mcp_core::visibility::{claim_from_property, Claim};
use state::Shared;
use std::rc::Rc;

/// Filter-state keys published for the other filters.
pub mod filter_state {
    /// The token's `sub`.
    pub const SUB: &str = "mcp.auth.sub";
    /// Granted scopes, space separated.
    pub const SCOPES: &str = "mcp.auth.scopes";
    /// Compact JSON: `sub`, `iss`, `scope` and the configured `publish_claims`.
    pub const CLAIMS: &str = "mcp.auth.claims";
}

const JWT_AUTHN: &str = "envoy.filters.http.jwt_authn";

/// The `mcp_scopes` filter (one per request).
#[derive(Debug)]
pub struct ScopesFilter {
    shared: Rc<Shared>,
    limits: Limits,
    identity: Option<Rc<Identity>>,
    /// The request is `tools/list` (its result may need trimming).
    listing: bool,
    /// The request already waited once for a key refresh.
    held: bool,
    /// Token exchange state (only used under `upstream_token`).
    exchange: exchange::Pending,
}

fn local(r: Refusal) -> LocalReply {
    let mut reply = LocalReply::json(r.status, format!("mcp_scopes_{}", r.reason), r.body);
    if let Some(h) = r.www_authenticate {
        reply.headers.push(("www-authenticate".into(), h));
    }
    if let Some(s) = r.retry_after {
        reply.headers.push(("retry-after".into(), s.to_string()));
    }
    reply
}

impl ScopesFilter {
    fn policy(&self) -> Option<&Policy> {
        self.shared.policy.as_ref()
    }

    fn authenticate(&self, policy: &Policy, head: &RequestHead) -> Result<Rc<Identity>, AuthError> {
        let bearer = token::bearer(head.authorization.as_deref());
        match &policy.authenticator {
            Authenticator::Jwt(_) => match bearer {
                Bearer::Absent => Err(AuthError::NoToken),
                Bearer::Malformed => Err(AuthError::Malformed),
                Bearer::Token(t) => self.shared.verify(t),
            },
            Authenticator::JwtAuthn(key) => {
                // Envoy returns a string claim as its text and a list claim (an `scp` array) in
                // the pairs encoding; claim_from_property decodes both.
                let claim = |name: &str| {
                    let bytes =
                        abi::get_property(&["metadata", "filter_metadata", JWT_AUTHN, key, name])
                            .ok()
                            .flatten()?;
                    match claim_from_property(&bytes) {
                        Claim::Str(s) if !s.is_empty() => Some(serde_json::Value::String(s)),
                        Claim::List(l) => Some(serde_json::Value::Array(
                            l.into_iter().map(serde_json::Value::String).collect(),
                        )),
                        _ => None,
                    }
                };
                let text = |name: &str| claim(name).and_then(|v| v.as_str().map(str::to_owned));
                let sub = text("sub");
                let iss = text("iss");
                if sub.is_none() && iss.is_none() {
                    // jwt_authn stored no payload: it saw no token, or (with
                    // allow_missing_or_failed) a token it could not verify.
                    return Err(match bearer {
                        Bearer::Absent => AuthError::NoToken,
                        _ => AuthError::Malformed,
                    });
                }
                let scope = claim("scope");
                let scp = claim("scp");
                let scopes = token::scopes_of(scope.as_ref(), scp.as_ref());
                let extra = policy
                    .publish_claims
                    .iter()
                    .filter_map(|c| claim(c).map(|v| (c.clone(), v)))
                    .collect();
                Ok(Rc::new(Identity::new(sub, iss, scopes, None, extra)))
            }
        }
    }

    fn count(&self, e: AuthError) {
        let s = &self.shared.stats;
        match e.outcome() {
            Outcome::NoToken => s.no_token.inc(),
            Outcome::Invalid => s.invalid.inc(),
            Outcome::Expired => s.expired.inc(),
            Outcome::KeysUnavailable => s.jwks_unavailable.inc(),
        }
    }
}

fn publish(id: &Identity) {
    let sub = id.sub.as_deref().unwrap_or("");
    for (k, v) in [
        (filter_state::SUB, sub),
        (filter_state::SCOPES, id.scope_string().as_str()),
        (filter_state::CLAIMS, id.claims_json.as_str()),
    ] {
        if let Err(e) = abi::set_property(&[k], v.as_bytes()) {
            filter_host::log!(Warn, "cannot publish {k}: {e}");
        }
    }
}

impl McpFilter for ScopesFilter {
    const NAME: &'static str = "mcp_scopes";
    type Config = ScopesConfig;
    type Shared = Shared;

    fn shared(config: &Loaded<ScopesConfig>, metrics: &mut Registry) -> Result<Shared, String> {
        let policy = config.filter.compile().map_err(|e| e.to_string())?;
        if policy.is_none() {
            filter_host::log!(
                Warn,
                "no `resource` configured: authorization is disabled (request gate only)"
            );
        }
        Shared::new(policy, metrics)
    }

    fn new(shared: Rc<Shared>, config: Rc<Loaded<ScopesConfig>>) -> Self {
        ScopesFilter {
            shared,
            limits: Limits {
                max_depth: config.common.max_json_depth,
            },
            identity: None,
            listing: false,
            held: false,
            exchange: exchange::Pending::default(),
        }
    }

    fn on_request_head(&mut self, head: &RequestHead) -> HeadAction {
        let Some(policy) = self.policy() else {
            return HeadAction::Inspect;
        };
        // The metadata is public: clients fetch it to learn where to get a token.
        if (head.method == "GET" || head.method == "HEAD")
            && challenge::is_metadata_path(policy, &head.path)
        {
            self.shared.stats.metadata_served.inc();
            let mut r =
                LocalReply::json(200, "mcp_scopes_metadata", policy.metadata_document.clone());
            r.headers
                .push(("cache-control".into(), "public, max-age=300".into()));
            return HeadAction::Reply(r);
        }
        let identity = match self.authenticate(policy, head) {
            Ok(id) => id,
            // The token names a key the issuer may just have rotated in: wait for the refresh
            // it triggered rather than fail a valid token (once; the wake re-verifies).
            Err(AuthError::KeysRefreshing) if !self.held && self.shared.hold(head.context_id) => {
                self.held = true;
                return HeadAction::Hold;
            }
            Err(e) => {
                self.count(e);
                filter_host::log!(Debug, "refused: {}", e.description());
                return HeadAction::Reply(local(challenge::unauthenticated(policy, e, None)));
            }
        };
        publish(&identity);

        if policy.strip_authorization {
            if let Err(e) = abi::remove_header(MapType::HttpRequestHeaders, "authorization") {
                filter_host::log!(Warn, "cannot strip authorization: {e}");
            }
        }
        self.identity = Some(identity);
        // A legacy GET stream may replay a list response (Last-Event-ID resumption).
        self.listing |= head.method == "GET";
        if head.method == "POST" && !head.end_of_stream {
            HeadAction::Inspect
        } else {
            // GET (listen stream) and DELETE (end session) carry no operation to scope.
            self.shared.stats.allowed.inc();
            HeadAction::Pass
        }
    }

    fn on_request(&mut self, req: &Inspected<'_>) -> RequestAction {
        let (Some(policy), Some(id)) = (self.shared.policy.as_ref(), self.identity.as_ref()) else {
            return RequestAction::Continue;
        };
        // Any response may carry a list the client takes as the answer to its pending
        // tools/list (clients match by id): every response is read under
        // hide_unauthorized_tools.
        self.listing = true;
        let stats = &self.shared.stats;
        let Message::Request(r) = req.message else {
            // A client's answer to a server request (sampling, elicitation): part of a session
            // the caller is already authenticated for.
            stats.allowed.inc();
            return RequestAction::Continue;
        };

        match policy.authorize(&r.method, r.name.as_deref(), &id.scopes) {
            Verdict::Allowed => {
                stats.allowed.inc();
                match &policy.exchange {
                    Some(x) => self.exchange.on_allowed(policy, x, req, r),
                    None => RequestAction::Continue,
                }
            }
            Verdict::Insufficient { needed } => {
                stats.insufficient_scope.inc();
                RequestAction::Reply(local(challenge::insufficient_scope(
                    policy,
                    &needed,
                    r.id.as_ref(),
                )))
            }
            Verdict::NotPermitted => {
                stats.not_permitted.inc();
                RequestAction::Reply(local(challenge::not_permitted(r.id.as_ref())))
            }
        }
    }

    fn before_forward(&mut self, head: &RequestHead) -> ForwardAction {
        let (Some(policy), Some(id)) = (self.shared.policy.as_ref(), self.identity.as_ref()) else {
            return ForwardAction::Continue;
        };
        match &policy.exchange {
            Some(x) => self
                .exchange
                .before_forward(&self.shared, policy, x, id, head),
            None => ForwardAction::Continue,
        }
    }

    fn on_call_response(&mut self, token: u32, num_headers: usize, body_size: usize) {
        let id = self.identity.clone();
        self.exchange
            .on_call_response(&self.shared, id.as_deref(), token, num_headers, body_size);
    }

    fn wants_response(&self) -> bool {
        // Only a tools/list under hide_unauthorized_tools is read: every other response passes
        // without a single host read.
        self.listing && self.policy().is_some_and(|p| p.hide_unauthorized_tools)
    }

    fn on_response_head(&mut self, head: &ResponseHead) -> ResponseInterest {
        if self.wants_response() && head.framing != Framing::Other {
            ResponseInterest::Messages
        } else {
            ResponseInterest::None
        }
    }

    fn on_response_message(&mut self, data: &[u8]) -> MessageAction {
        let (Some(policy), Some(id)) = (self.shared.policy.as_ref(), self.identity.as_ref()) else {
            return MessageAction::Keep;
        };
        let opts = ListOptions {
            array_key: "tools",
            set_private_cache: true,
        };
        match tools_list::filter_list(data, &opts, &self.limits, |name| {
            policy.may_call(name, &id.scopes)
        }) {
            Ok(edit) => {
                self.shared.stats.tools_hidden.add(edit.removed as u64);
                match edit.bytes {
                    Some(b) => MessageAction::Replace(b),
                    None => MessageAction::Keep,
                }
            }
            // A list this filter cannot read could leak tools the caller may not see.
            Err(_) => MessageAction::Drop,
        }
    }

    fn tick_period_ms(shared: &Shared) -> Option<u32> {
        shared.tick_period()
    }

    fn on_tick(shared: &Shared) {
        shared.on_tick();
    }

    fn on_http_call_response(shared: &Shared, token: u32, _num_headers: usize, body_size: usize) {
        shared.on_http_call_response(token, body_size);
    }
}

// Compiled into `mcp_gateway` too (filters/gateway), which exports the chain instead.
#[cfg(not(mcp_gateway))]
filter_host::export_filter!(ScopesFilter);
