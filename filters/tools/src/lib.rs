//! `mcp_tools`: per-caller `tools/list` filtering; hidden tools cannot be called.
//!
//! Decisions come from `mcp_core::visibility` (allow/deny/grants) and
//! `mcp_core::tools_list::filter_list` (byte-splicing removal of list entries); this crate only
//! wires them to the request and response. Hidden names are refused on `tools/call` /
//! `prompts/get` with the error a server gives for an unknown tool, so a caller cannot tell a
//! hidden tool from a missing one. See `docs/tools.md`.

use filter_host::abi::{self, MapType};
use filter_host::metrics::{Counter, Registry};
use filter_host::{
    Framing, HeadAction, Inspected, LocalReply, McpFilter, MessageAction, RequestAction,
    RequestHead, ResponseHead, ResponseInterest,
};
use mcp_core::config::Loaded;
use mcp_core::json::Limits;
use mcp_core::jsonrpc::{self, Message};
use mcp_core::mcp::{methods, Era};
use mcp_core::tools_list::{filter_list_with, ListOptions};
use mcp_core::visibility::{Identity, Rules};
use std::collections::BTreeMap;
use std::rc::Rc;

// The configuration keys live in `mcp_core::tools` (pure, testable and schema-generated like the
// other filters' configurations); re-exported so this crate's API is unchanged.
pub use mcp_core::tools::{IdentityConfig, IdentitySource, ToolsConfig};

#[path = "pins.rs"]
mod pins;
use pins::{Listed, Pins};

/// Filter state key under which `mcp_scopes` publishes the verified claims (JSON object).
pub const CLAIMS_PROPERTY: &str = "mcp.auth.claims";
const JWT_AUTHN_NAMESPACE: &str = "envoy.filters.http.jwt_authn";

/// Per-VM state.
#[derive(Debug)]
pub struct Shared {
    tools: Rules,
    prompts: Option<Rules>,
    /// Claim names the grants look at (read one by one from jwt_authn metadata).
    claim_names: Vec<String>,
    /// The kinds of list a response is read for: those whose rules can hide something.
    listed: Vec<Kind>,
    /// Some listed kind depends on who asks (grants): lists are filtered per caller.
    per_caller: bool,
    lists_filtered: Counter,
    tools_hidden: Counter,
    calls_refused: Counter,
    prompts_hidden: Counter,
    prompt_gets_refused: Counter,
    /// Tool pinning and poisoning quarantine (`pinning`), when configured.
    pins: Option<Pins>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tools,
    Prompts,
}

impl Shared {
    fn rules(&self, kind: Kind) -> Option<&Rules> {
        match kind {
            Kind::Tools => Some(&self.tools),
            Kind::Prompts => self.prompts.as_ref(),
        }
    }
}

/// The `mcp_tools` filter, per request.
#[derive(Debug)]
pub struct ToolsFilter {
    shared: Rc<Shared>,
    config: Rc<Loaded<ToolsConfig>>,
    identity: Option<Identity>,
    /// Set once this request's responses are to be read for lists, with its era.
    list_era: Option<Era>,
    /// Names quarantined in this request's lists (comma-separated, for filter state).
    quarantined: String,
}

impl ToolsFilter {
    fn rules(&self, kind: Kind) -> Option<&Rules> {
        self.shared.rules(kind)
    }

    /// Reads this request's responses for lists (of every kind the rules can hide from).
    fn filter_lists(&mut self, era: Era) {
        if self.shared.listed.is_empty() || self.list_era.is_some() {
            return;
        }
        if self.shared.per_caller {
            // Resolve the caller now, in the request phase: the response is filtered for
            // whoever asked.
            self.identity();
        }
        self.list_era = Some(era);
    }

    /// The caller, read once per request and only when a decision needs it.
    fn identity(&mut self) -> &Identity {
        let config = &self.config.filter.identity;
        let names = &self.shared.claim_names;
        self.identity
            .get_or_insert_with(|| read_identity(config, names))
    }

    fn refuse(&self, kind: Kind, id: Option<&jsonrpc::Id<'_>>, name: &str) -> RequestAction {
        let (message, details, counter) = match kind {
            Kind::Tools => (
                format!("Unknown tool: {name}"),
                "mcp_tools_hidden_tool",
                self.shared.calls_refused,
            ),
            Kind::Prompts => (
                format!("Unknown prompt: {name}"),
                "mcp_tools_hidden_prompt",
                self.shared.prompt_gets_refused,
            ),
        };
        counter.inc();
        filter_host::log!(Info, "refused a call to a hidden {kind:?} entry");
        // HTTP 200 with the JSON-RPC error the server itself gives for an unknown tool: a hidden
        // tool is indistinguishable from one that does not exist.
        let body = jsonrpc::error_response(id, jsonrpc::INVALID_PARAMS, &message, None);
        RequestAction::Reply(LocalReply::json(200, details, body))
    }
}

fn read_identity(config: &IdentityConfig, claim_names: &[String]) -> Identity {
    match config.source {
        IdentitySource::None => Identity::anonymous(),
        IdentitySource::McpScopes => match abi::get_property(&[CLAIMS_PROPERTY]) {
            Ok(Some(bytes)) => Identity::from_claims_json(&bytes),
            _ => Identity::anonymous(),
        },
        IdentitySource::JwtAuthn => {
            let key = config.metadata_key.as_deref().unwrap_or("jwt_payload");
            read_jwt_authn(key, claim_names)
        }
    }
}

/// Reads the claims grants need from Envoy `jwt_authn` metadata, one path at a time (a whole
/// Struct would come back protobuf-encoded). A string claim reads as its text, a list claim in
/// the pairs format; `mcp_core::visibility::claim_from_property` decodes both.
fn read_jwt_authn(key: &str, claim_names: &[String]) -> Identity {
    let mut claims = BTreeMap::new();
    let mut any = false;
    for name in claim_names {
        let path = [
            "metadata",
            "filter_metadata",
            JWT_AUTHN_NAMESPACE,
            key,
            name,
        ];
        if let Ok(Some(bytes)) = abi::get_property(&path) {
            any = true;
            claims.insert(
                name.clone(),
                mcp_core::visibility::claim_from_property(&bytes),
            );
        }
    }
    // jwt_authn writes the payload only for a verified token: no claims at all means no
    // verified caller.
    if !any {
        return Identity::anonymous();
    }
    Identity::from_claims(claims)
}

fn claim_names(cfg: &ToolsConfig) -> Vec<String> {
    let mut names = vec!["sub".to_owned(), "scope".to_owned(), "scp".to_owned()];
    let prompt_grants = cfg.prompts.iter().flat_map(|p| p.grants.iter());
    for g in cfg.grants.iter().chain(prompt_grants) {
        for k in g.claims.keys() {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    names
}

impl McpFilter for ToolsFilter {
    const NAME: &'static str = "mcp_tools";
    type Config = ToolsConfig;
    type Shared = Shared;

    fn shared(config: &Loaded<ToolsConfig>, m: &mut Registry) -> Result<Shared, String> {
        let cfg = &config.filter;
        let tools = Rules::compile(&cfg.tool_rules(), "").map_err(|e| e.to_string())?;
        let prompts = match &cfg.prompts {
            Some(p) => Some(Rules::compile(p, "prompts").map_err(|e| e.to_string())?),
            None => None,
        };
        let listed: Vec<Kind> = [Kind::Tools, Kind::Prompts]
            .into_iter()
            .filter(|&k| {
                let rules = match k {
                    Kind::Tools => Some(&tools),
                    Kind::Prompts => prompts.as_ref(),
                };
                rules.is_some_and(|r| r.can_hide() || r.depends_on_identity())
                    || (k == Kind::Tools && cfg.pinning.is_some())
            })
            .collect();
        let per_caller =
            tools.depends_on_identity() || prompts.as_ref().is_some_and(Rules::depends_on_identity);
        Ok(Shared {
            tools,
            prompts,
            claim_names: claim_names(cfg),
            listed,
            per_caller,
            lists_filtered: m.counter("mcp_tools.lists_filtered"),
            tools_hidden: m.counter("mcp_tools.tools_hidden"),
            calls_refused: m.counter("mcp_tools.calls_refused"),
            prompts_hidden: m.counter("mcp_tools.prompts_hidden"),
            prompt_gets_refused: m.counter("mcp_tools.prompt_gets_refused"),
            pins: match &cfg.pinning {
                Some(p) => Some(Pins::new(p, m)?),
                None => None,
            },
        })
    }

    fn new(shared: Rc<Shared>, config: Rc<Loaded<ToolsConfig>>) -> Self {
        ToolsFilter {
            shared,
            config,
            identity: None,
            list_era: None,
            quarantined: String::new(),
        }
    }

    fn on_request_head(&mut self, head: &RequestHead) -> HeadAction {
        if head.method == "GET" {
            // A legacy listen or resumed stream (`Last-Event-ID`) may carry a list response the
            // POST's own response did not: every list on it is filtered.
            self.filter_lists(Era::Legacy);
        }
        HeadAction::Inspect
    }

    fn on_request(&mut self, req: &Inspected<'_>) -> RequestAction {
        // Any response may carry a list: clients match messages by id, not by the HTTP
        // response that carried them, so a list sent back to a `ping` (or on a tool call's SSE
        // stream) answers the client's pending `tools/list` as well. Every list is filtered.
        self.filter_lists(req.era);
        let Message::Request(r) = req.message else {
            return RequestAction::Continue;
        };
        let (kind, is_call) = match r.method.as_ref() {
            methods::TOOLS_LIST => (Kind::Tools, false),
            methods::TOOLS_CALL => (Kind::Tools, true),
            methods::PROMPTS_LIST => (Kind::Prompts, false),
            methods::PROMPTS_GET => (Kind::Prompts, true),
            _ => return RequestAction::Continue,
        };
        if self.rules(kind).is_none() {
            return RequestAction::Continue;
        }
        if !is_call {
            // Its response is filtered (above), in a batch (`batch: each`) too: the response is
            // then an array, and `filter_list` filters every element that holds a list.
            return RequestAction::Continue;
        }
        let Some(name) = r.name.as_deref() else {
            // Without a string name the call cannot be checked against the policy.
            return self.refuse(kind, r.id.as_ref(), "");
        };
        // The rules come through a clone of the Rc, so the caller can be borrowed from `self`
        // without copying its claims.
        let shared = Rc::clone(&self.shared);
        let visible = match shared.rules(kind) {
            // Without grants the caller cannot change the answer: skip reading the identity.
            Some(rules) if rules.depends_on_identity() => {
                rules.for_caller(self.identity()).visible(name)
            }
            Some(rules) => rules.for_caller(&Identity::anonymous()).visible(name),
            None => false,
        };
        if !visible {
            return self.refuse(kind, r.id.as_ref(), name);
        }
        if kind == Kind::Tools {
            if let Some(p) = &shared.pins {
                if p.refuses_call(name) {
                    filter_host::log!(Info, "refused a call to a quarantined tool");
                    pins::publish(name);
                    // Exactly the reply to a hidden tool (counted as quarantined, not hidden).
                    let body = jsonrpc::error_response(
                        r.id.as_ref(),
                        jsonrpc::INVALID_PARAMS,
                        &format!("Unknown tool: {name}"),
                        None,
                    );
                    return RequestAction::Reply(LocalReply::json(
                        200,
                        "mcp_tools_quarantined_tool",
                        body,
                    ));
                }
            }
        }
        RequestAction::Continue
    }

    fn wants_response(&self) -> bool {
        // Only list responses are filtered; everything else streams through without a look.
        self.list_era.is_some()
    }

    fn on_response_head(&mut self, head: &ResponseHead) -> ResponseInterest {
        // Any status: an error status with a JSON-RPC body is still read by clients (the
        // TypeScript SDK puts the whole body in the error it throws). A body of another media
        // type holds no list a client would read.
        if self.list_era.is_none() || head.framing == Framing::Other {
            return ResponseInterest::None;
        }
        if self.shared.per_caller {
            // The list depends on who asked: no shared cache may keep it. Set now, while the
            // headers can still change (an SSE response's headers leave immediately).
            if abi::set_header(MapType::HttpResponseHeaders, "cache-control", "no-store").is_err() {
                filter_host::log!(Warn, "could not set cache-control on a filtered list");
            }
        }
        ResponseInterest::Messages
    }

    fn on_response_message(&mut self, data: &[u8]) -> MessageAction {
        let Some(era) = self.list_era else {
            return MessageAction::Keep;
        };
        let shared = Rc::clone(&self.shared);
        let mut out: Option<Vec<u8>> = None;
        for &kind in &shared.listed {
            let current = out.as_deref().unwrap_or(data);
            match self.filter_message(current, kind, era) {
                MessageAction::Keep => {}
                MessageAction::Replace(b) => out = Some(b),
                MessageAction::Drop => return MessageAction::Drop,
            }
        }
        out.map_or(MessageAction::Keep, MessageAction::Replace)
    }
}

impl ToolsFilter {
    /// Filters the `kind` list of one response message.
    fn filter_message(&mut self, data: &[u8], kind: Kind, era: Era) -> MessageAction {
        let shared = Rc::clone(&self.shared);
        let Some(rules) = shared.rules(kind) else {
            return MessageAction::Keep;
        };
        let mut quarantined = std::mem::take(&mut self.quarantined);
        let visibility = rules.for_caller(self.identity());
        let opts = ListOptions {
            array_key: match kind {
                Kind::Tools => "tools",
                Kind::Prompts => "prompts",
            },
            // 2026-07-28 list results carry ttlMs/cacheScope; a filtered list is per caller.
            set_private_cache: era == Era::Stateless,
        };
        let limits = Limits {
            max_depth: self.config.common.max_json_depth,
        };
        let pins = match kind {
            Kind::Tools => shared.pins.as_ref(),
            Kind::Prompts => None,
        };
        let mut run = pins.map(Pins::begin_list);
        let mut removed_by_pins = 0u64;
        let mut result = filter_list_with(data, &opts, &limits, |name, tool| {
            let visible = visibility.visible(name);
            match (pins, run.as_mut()) {
                (Some(p), Some(run)) => match p.listed(run, name, tool) {
                    Listed::Keep => visible,
                    Listed::Quarantine => {
                        removed_by_pins += 1;
                        false
                    }
                },
                _ => visible,
            }
        });
        if let Some(run) = run.as_ref().filter(|r| !r.quarantined().is_empty()) {
            // A copy of a quarantined name listed before it was kept: remove every copy of
            // every quarantined name (the first pass decided and recorded each tool).
            if result.is_ok() {
                removed_by_pins = 0;
                result = filter_list_with(data, &opts, &limits, |name, _| {
                    if run.is_quarantined(name) {
                        removed_by_pins += 1;
                        false
                    } else {
                        visibility.visible(name)
                    }
                });
            }
            for name in run.quarantined() {
                if !quarantined.is_empty() {
                    quarantined.push(',');
                }
                quarantined.push_str(name);
            }
            pins::publish(&quarantined);
        }
        if let (Some(p), Some(run)) = (pins, run) {
            p.end_list(run);
        }
        self.quarantined = quarantined;
        match result {
            Ok(edit) => {
                if !edit.found {
                    // Not the list response (a progress notification, a server request, an
                    // error): forward untouched.
                    return MessageAction::Keep;
                }
                self.shared.lists_filtered.inc();
                // Quarantined tools have their own counters.
                let hidden = u64::try_from(edit.removed)
                    .unwrap_or(0)
                    .saturating_sub(removed_by_pins);
                match kind {
                    Kind::Tools => self.shared.tools_hidden.add(hidden),
                    Kind::Prompts => self.shared.prompts_hidden.add(hidden),
                }
                edit.bytes
                    .map_or(MessageAction::Keep, MessageAction::Replace)
            }
            Err(_) if data.iter().all(u8::is_ascii_whitespace) => MessageAction::Keep,
            Err(e) => {
                // A list the filter cannot read must not leak hidden names.
                filter_host::log!(Warn, "unreadable list response (at byte {:?})", e.offset());
                let body = jsonrpc::error_response(
                    None,
                    jsonrpc::INTERNAL_ERROR,
                    "Gateway filter could not read the list response",
                    None,
                );
                MessageAction::Replace(body)
            }
        }
    }
}

// Compiled into `mcp_gateway` too (filters/gateway), which exports the chain instead.
#[cfg(not(mcp_gateway))]
filter_host::export_filter!(ToolsFilter);

#[cfg(all(test, not(mcp_gateway)))]
mod tests {
    use super::*;
    use mcp_core::config::ConfigError;

    fn load(json: &str) -> Result<Loaded<ToolsConfig>, ConfigError> {
        mcp_core::config::load::<ToolsConfig>(json.as_bytes())
    }

    #[test]
    fn the_issue_example_configuration_loads() {
        let l = load(
            r#"{"allow": ["*"], "deny": ["*_admin"],
                "grants": [{"scopes": ["repo:admin"], "allow": ["*_admin"]},
                           {"claims": {"groups": "sre"}, "allow": ["deploy_*"]}],
                "identity": {"source": "mcp_scopes"}}"#,
        )
        .unwrap();
        assert_eq!(l.filter.identity.source, IdentitySource::McpScopes);
        assert_eq!(claim_names(&l.filter), ["sub", "scope", "scp", "groups"]);
    }

    #[test]
    fn configuration_errors_name_the_key() {
        let e = load(r#"{"grants": [{"allow": ["x"]}]}"#).unwrap_err();
        assert_eq!(e.path, "identity.source");
        let e = load(r#"{"deny": ["a", ""]}"#).unwrap_err();
        assert_eq!(e.to_string(), "deny[1]: invalid pattern: empty pattern");
        let e = load(r#"{"prompts": {"allow": [" x"]}}"#).unwrap_err();
        assert_eq!(e.path, "prompts.allow[0]");
        let e = load(r#"{"identity": {"source": "ldap"}}"#).unwrap_err();
        assert_eq!(e.path, "identity.source");
        let e = load(r#"{"identity": {"source": "mcp_scopes", "metadata_key": "x"}}"#).unwrap_err();
        assert_eq!(e.path, "identity.metadata_key");
        let e = load(r#"{"alow": ["*"]}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `alow`"), "{e}");
        // A request the filter could not inspect may call a hidden tool: `open` is refused.
        let e = load(r#"{"failure_mode": "open"}"#).unwrap_err();
        assert_eq!(e.path, "failure_mode");
        assert!(load(r#"{"failure_mode": "closed"}"#).is_ok());
    }

    #[test]
    fn pinning_errors_name_the_key() {
        let e = load(r#"{"pinning": {"pins": {"search": "sha256:00"}}}"#).unwrap_err();
        assert_eq!(e.path, "pinning.pins.search");
        let e = load(r#"{"pinning": {"unpinned": "maybe"}}"#).unwrap_err();
        assert_eq!(e.path, "pinning.unpinned");
        let e = load(r#"{"pinning": {"pin": {}}}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `pin`"), "{e}");
        let ok = load(r#"{"pinning": {"poisoning": "flag", "unpinned": "allow"}}"#).unwrap();
        assert!(ok.filter.pinning.is_some());
    }

    #[test]
    fn defaults_hide_nothing() {
        let l = load("{}").unwrap();
        assert_eq!(l.filter.allow, ["*"]);
        assert!(l.filter.prompts.is_none());
    }
}
