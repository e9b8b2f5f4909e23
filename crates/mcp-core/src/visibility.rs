//! Which tools (or prompts) a caller may see and call: the policy of the `mcp_tools` filter.
//!
//! ```text
//! visible(name, caller) =  any applicable grant allows name          -- identity-bound exception
//!                       || (allow matches name && !deny matches name) -- what everyone gets
//! ```
//!
//! Precedence, most specific first: a **grant** (an explicit exception bound to a verified
//! identity) beats the global **deny**, which beats the global **allow**. So `deny: ["*_admin"]`
//! hides admin tools from everyone, and `{"scopes": ["repo:admin"], "allow": ["*_admin"]}` opens
//! them to callers whose verified token carries `repo:admin`. A tool that must stay hidden from
//! everyone is simply never granted. A grant never applies to an unverified caller.
//!
//! A grant applies when the caller is verified and has **every** scope in `scopes` and **every**
//! claim in `claims` (a claim matches when the caller's claim is that string, or a list
//! containing it). A grant with neither `scopes` nor `claims` applies to every verified caller.

use crate::config::{patterns_at, ConfigError};
use crate::glob::PatternSet;
use crate::json::{self, Kind, Limits, Value};
use serde::Deserialize;
use std::collections::BTreeMap;

/// A grant as written in the configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct GrantConfig {
    /// Scopes the caller must all hold.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Claims the caller must all have, `{"groups": "sre"}`.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    /// Names this grant opens (globs).
    pub allow: Vec<String>,
}

/// Allow/deny/grants as written in the configuration (for tools, or for prompts).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Names everyone may see (globs). Default `["*"]`.
    #[serde(default = "all")]
    pub allow: Vec<String>,
    /// Names hidden from everyone without a grant (globs). Default none.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Identity-bound exceptions.
    #[serde(default)]
    pub grants: Vec<GrantConfig>,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            allow: all(),
            deny: Vec::new(),
            grants: Vec::new(),
        }
    }
}

fn all() -> Vec<String> {
    vec!["*".to_owned()]
}

/// A compiled grant.
#[derive(Debug, Clone)]
pub struct Grant {
    scopes: Vec<String>,
    claims: Vec<(String, String)>,
    allow: PatternSet,
}

impl Grant {
    /// Whether this grant applies to `caller`.
    pub fn applies_to(&self, caller: &Identity) -> bool {
        caller.verified
            && self.scopes.iter().all(|s| caller.has_scope(s))
            && self.claims.iter().all(|(k, v)| caller.claim_matches(k, v))
    }
}

/// Compiled allow/deny/grants.
#[derive(Debug, Clone)]
pub struct Rules {
    allow: PatternSet,
    deny: PatternSet,
    grants: Vec<Grant>,
}

impl Rules {
    /// Compiles `cfg`; errors name the key path under `prefix` (e.g. `prompts.grants[1].allow[0]`).
    pub fn compile(cfg: &RulesConfig, prefix: &str) -> Result<Self, ConfigError> {
        let p = |k: &str| {
            if prefix.is_empty() {
                k.to_owned()
            } else {
                format!("{prefix}.{k}")
            }
        };
        let mut grants = Vec::with_capacity(cfg.grants.len());
        for (i, g) in cfg.grants.iter().enumerate() {
            let at = p(&format!("grants[{i}]"));
            if g.allow.is_empty() {
                return Err(ConfigError::at(
                    format!("{at}.allow"),
                    "a grant must allow something",
                ));
            }
            for (j, s) in g.scopes.iter().enumerate() {
                if s.is_empty() || s.contains(char::is_whitespace) {
                    return Err(ConfigError::at(
                        format!("{at}.scopes[{j}]"),
                        "a scope is one non-empty token without spaces",
                    ));
                }
            }
            if g.claims.keys().any(String::is_empty) {
                return Err(ConfigError::at(format!("{at}.claims"), "empty claim name"));
            }
            grants.push(Grant {
                scopes: g.scopes.clone(),
                claims: g
                    .claims
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                allow: patterns_at(&format!("{at}.allow"), &g.allow)?,
            });
        }
        Ok(Rules {
            allow: patterns_at(&p("allow"), &cfg.allow)?,
            deny: patterns_at(&p("deny"), &cfg.deny)?,
            grants,
        })
    }

    /// Whether the visible set can differ between callers (there are grants).
    pub fn depends_on_identity(&self) -> bool {
        !self.grants.is_empty()
    }

    /// Whether the rules can hide anything at all (so a pass-through can skip the response).
    pub fn can_hide(&self) -> bool {
        !self.deny.is_empty() || !self.allow.patterns().iter().any(|p| p.as_str() == "*")
    }

    /// The decision for one caller, with the applicable grants resolved once (a `tools/list`
    /// asks for hundreds of names).
    pub fn for_caller<'r>(&'r self, caller: &Identity) -> Visibility<'r> {
        Visibility {
            rules: self,
            grants: self
                .grants
                .iter()
                .filter(|g| g.applies_to(caller))
                .collect(),
        }
    }
}

/// [`Rules`] bound to one caller.
#[derive(Debug)]
pub struct Visibility<'r> {
    rules: &'r Rules,
    grants: Vec<&'r Grant>,
}

impl Visibility<'_> {
    /// Whether `name` is visible (and callable).
    pub fn visible(&self, name: &str) -> bool {
        self.grants.iter().any(|g| g.allow.matches(name))
            || (self.rules.allow.matches(name) && !self.rules.deny.matches(name))
    }

    /// How many grants apply to this caller.
    pub fn grants_applied(&self) -> usize {
        self.grants.len()
    }
}

/// A claim value as far as grants care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// A string claim.
    Str(String),
    /// An array claim, keeping its string members.
    List(Vec<String>),
    /// Anything else (numbers, booleans, objects): never matches a grant.
    Other,
}

/// Who the caller is, as far as policy is concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// Whether the identity was verified by a trusted filter. Unverified callers get no grants.
    pub verified: bool,
    /// Granted scopes, from `scope` (space-separated) or `scp` (array or string).
    pub scopes: Vec<String>,
    /// Top-level claims.
    pub claims: BTreeMap<String, Claim>,
}

impl Identity {
    /// Nobody in particular: no grants apply.
    pub fn anonymous() -> Self {
        Identity::default()
    }

    /// Whether the caller holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Whether claim `name` is `value` or a list containing it.
    pub fn claim_matches(&self, name: &str, value: &str) -> bool {
        match self.claims.get(name) {
            Some(Claim::Str(s)) => s == value,
            Some(Claim::List(l)) => l.iter().any(|s| s == value),
            _ => false,
        }
    }

    /// Builds a verified identity from a JSON object of verified claims (the JWT payload, as the
    /// `mcp_scopes` filter publishes it in filter state `mcp.auth.claims`). Scopes come from `scope`
    /// (space-separated string) or, when absent, `scp` (array of strings or a space-separated
    /// string). Anything that is not a JSON object gives an unverified identity.
    pub fn from_claims_json(bytes: &[u8]) -> Identity {
        let Ok(root) = json::validate(bytes, &Limits::default()) else {
            return Identity::anonymous();
        };
        if root.kind() != Kind::Object {
            return Identity::anonymous();
        }
        let mut id = Identity {
            verified: true,
            ..Identity::default()
        };
        for m in root.members() {
            id.claims.insert(m.key.into_owned(), claim_of(m.value));
        }
        id.scopes = scopes_of(id.claims.get("scope"), id.claims.get("scp"));
        id
    }

    /// Builds a verified identity from individually read claims (Envoy `jwt_authn` metadata, read
    /// field by field). `scope`/`scp` are taken from `claims`.
    pub fn from_claims(claims: BTreeMap<String, Claim>) -> Identity {
        let scopes = scopes_of(claims.get("scope"), claims.get("scp"));
        Identity {
            verified: true,
            scopes,
            claims,
        }
    }
}

fn claim_of(v: Value<'_>) -> Claim {
    match v.kind() {
        Kind::String => v
            .as_str()
            .map_or(Claim::Other, |s| Claim::Str(s.into_owned())),
        Kind::Array => Claim::List(
            v.elements()
                .filter_map(|e| e.as_str().map(|s| s.into_owned()))
                .collect(),
        ),
        _ => Claim::Other,
    }
}

fn split_scopes(s: &str) -> Vec<String> {
    crate::scopes::token::scope_tokens(s)
        .map(str::to_owned)
        .collect()
}

fn scopes_of(scope: Option<&Claim>, scp: Option<&Claim>) -> Vec<String> {
    match (scope, scp) {
        (Some(Claim::Str(s)), _) => split_scopes(s),
        (_, Some(Claim::List(l))) => l.clone(),
        (_, Some(Claim::Str(s))) => split_scopes(s),
        _ => Vec::new(),
    }
}

/// Decodes one claim read from Envoy metadata with `get_property`. Envoy 1.40 returns a string
/// claim as its text and a list claim in the proxy-wasm pairs format, the list's members being
/// the keys (values empty): `[count u32][(key len u32, value len u32)…][key\0 value\0…]`.
/// Anything else (numbers, booleans, nested objects) is [`Claim::Other`].
pub fn claim_from_property(bytes: &[u8]) -> Claim {
    if let Some(list) = decode_pairs_keys(bytes) {
        return Claim::List(list);
    }
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(char::is_control) => Claim::Str(s.to_owned()),
        _ => Claim::Other,
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    let arr: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(arr)).ok()
}

/// Strict: the sizes must account for every byte, or this is not a pairs blob (a string claim
/// cannot be mistaken for one: its first four bytes would have to describe its exact length).
fn decode_pairs_keys(b: &[u8]) -> Option<Vec<String>> {
    let count = u32_at(b, 0)?;
    let header = count.checked_mul(8)?.checked_add(4)?;
    let mut at = header;
    let mut out = Vec::with_capacity(count.min(64));
    for i in 0..count {
        let klen = u32_at(b, 4 + i * 8)?;
        let vlen = u32_at(b, 8 + i * 8)?;
        let key = b.get(at..at.checked_add(klen)?)?;
        at = at.checked_add(klen)?;
        if b.get(at) != Some(&0) {
            return None;
        }
        at = at.checked_add(1)?.checked_add(vlen)?;
        if b.get(at) != Some(&0) {
            return None;
        }
        at += 1;
        out.push(std::str::from_utf8(key).ok()?.to_owned());
    }
    (at == b.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: &str) -> Rules {
        let cfg: RulesConfig = serde_json::from_str(json).unwrap();
        Rules::compile(&cfg, "").unwrap()
    }

    fn caller(claims: &str) -> Identity {
        Identity::from_claims_json(claims.as_bytes())
    }

    const ISSUE_EXAMPLE: &str = r#"{
        "allow": ["*"],
        "deny": ["*_admin"],
        "grants": [
            {"scopes": ["repo:admin"], "allow": ["*_admin"]},
            {"claims": {"groups": "sre"}, "allow": ["deploy_*"]}
        ]}"#;

    #[test]
    fn deny_hides_from_callers_without_a_grant() {
        let r = rules(ISSUE_EXAMPLE);
        let v = r.for_caller(&Identity::anonymous());
        assert!(v.visible("echo"));
        assert!(!v.visible("repo_admin"));
        assert!(v.visible("deploy_service"), "allow * covers it");
    }

    #[test]
    fn a_scope_grant_opens_what_deny_hides() {
        let r = rules(ISSUE_EXAMPLE);
        let admin = caller(r#"{"sub":"a","scope":"mcp:tools repo:admin"}"#);
        assert!(r.for_caller(&admin).visible("repo_admin"));
        let plain = caller(r#"{"sub":"b","scope":"mcp:tools"}"#);
        assert!(!r.for_caller(&plain).visible("repo_admin"));
    }

    #[test]
    fn a_scope_separated_by_a_tab_or_newline_grants_nothing() {
        let r = rules(ISSUE_EXAMPLE);
        for claims in [
            r#"{"sub":"a","scope":"mcp:tools\trepo:admin"}"#,
            r#"{"sub":"a","scope":"mcp:tools\nrepo:admin"}"#,
            r#"{"sub":"a","scp":"x\r\nrepo:admin"}"#,
        ] {
            assert!(
                !r.for_caller(&caller(claims)).visible("repo_admin"),
                "{claims}"
            );
        }
        let two_spaces = caller(r#"{"sub":"a","scope":"mcp:tools  repo:admin"}"#);
        assert!(r.for_caller(&two_spaces).visible("repo_admin"));
    }

    #[test]
    fn scp_arrays_and_strings_are_scopes_too() {
        let r = rules(ISSUE_EXAMPLE);
        assert!(r
            .for_caller(&caller(r#"{"scp":["repo:admin"]}"#))
            .visible("x_admin"));
        assert!(r
            .for_caller(&caller(r#"{"scp":"a repo:admin"}"#))
            .visible("x_admin"));
        // `scope` wins over `scp` when both exist.
        assert!(!r
            .for_caller(&caller(r#"{"scope":"a","scp":["repo:admin"]}"#))
            .visible("x_admin"));
    }

    #[test]
    fn a_claim_grant_matches_strings_and_list_members() {
        let r = rules(
            r#"{"allow": ["echo"], "grants": [{"claims": {"groups": "sre"}, "allow": ["deploy_*"]}]}"#,
        );
        assert!(!r.for_caller(&Identity::anonymous()).visible("deploy_x"));
        assert!(r
            .for_caller(&caller(r#"{"groups":["dev","sre"]}"#))
            .visible("deploy_x"));
        assert!(r
            .for_caller(&caller(r#"{"groups":"sre"}"#))
            .visible("deploy_x"));
        assert!(!r
            .for_caller(&caller(r#"{"groups":"SRE"}"#))
            .visible("deploy_x"));
        assert!(!r
            .for_caller(&caller(r#"{"groups":{"sre":true}}"#))
            .visible("deploy_x"));
    }

    #[test]
    fn grants_need_every_scope_and_claim() {
        let r = rules(
            r#"{"allow": [], "grants": [{"scopes": ["a", "b"], "claims": {"team": "x"}, "allow": ["t"]}]}"#,
        );
        assert!(!r.for_caller(&caller(r#"{"scope":"a b"}"#)).visible("t"));
        assert!(!r
            .for_caller(&caller(r#"{"scope":"a","team":"x"}"#))
            .visible("t"));
        assert!(r
            .for_caller(&caller(r#"{"scope":"b a","team":"x"}"#))
            .visible("t"));
    }

    #[test]
    fn unverified_callers_never_get_grants() {
        let r = rules(r#"{"allow": [], "grants": [{"allow": ["t"]}]}"#);
        assert!(!r.for_caller(&Identity::anonymous()).visible("t"));
        assert!(!r.for_caller(&caller("not json")).visible("t"));
        assert!(!r.for_caller(&caller(r#"["scope"]"#)).visible("t"));
        // A grant without conditions applies to every verified caller.
        assert!(r.for_caller(&caller("{}")).visible("t"));
    }

    #[test]
    fn default_rules_show_everything_and_cannot_hide() {
        let r = rules("{}");
        assert!(r.for_caller(&Identity::anonymous()).visible("anything"));
        assert!(!r.can_hide());
        assert!(!r.depends_on_identity());
        assert!(rules(r#"{"deny":["x"]}"#).can_hide());
        assert!(rules(r#"{"allow":["x*"]}"#).can_hide());
        assert!(rules(ISSUE_EXAMPLE).depends_on_identity());
    }

    #[test]
    fn names_are_exact_and_case_sensitive() {
        let r = rules(r#"{"deny": ["delete_repo"]}"#);
        let v = r.for_caller(&Identity::anonymous());
        assert!(!v.visible("delete_repo"));
        assert!(v.visible("Delete_repo"));
        assert!(v.visible("delete_repo "));
    }

    #[test]
    fn config_errors_name_the_key_path() {
        let bad = |j: &str| {
            let cfg: RulesConfig = serde_json::from_str(j).unwrap();
            Rules::compile(&cfg, "prompts").unwrap_err().to_string()
        };
        assert_eq!(
            bad(r#"{"deny": ["ok", ""]}"#),
            "prompts.deny[1]: invalid pattern: empty pattern"
        );
        assert_eq!(
            bad(r#"{"grants": [{"allow": ["a"]}, {"allow": []}]}"#),
            "prompts.grants[1].allow: a grant must allow something"
        );
        assert!(bad(r#"{"grants": [{"scopes": ["a b"], "allow": ["x"]}]}"#)
            .starts_with("prompts.grants[0].scopes[0]"));
        assert!(serde_json::from_str::<RulesConfig>(
            r#"{"grants": [{"allow": ["x"], "scope": []}]}"#
        )
        .is_err());
    }

    #[test]
    fn metadata_claims_decode_as_text_or_pairs_lists() {
        assert_eq!(claim_from_property(b"sre"), Claim::Str("sre".into()));
        assert_eq!(claim_from_property(b"a b"), Claim::Str("a b".into()));
        // Exactly what Envoy 1.40 returned for a `"groups": ["dev", "sre"]` claim.
        let list: &[u8] = b"\x02\0\0\0\x03\0\0\0\0\0\0\0\x03\0\0\0\0\0\0\0dev\0\0sre\0\0";
        assert_eq!(
            claim_from_property(list),
            Claim::List(vec!["dev".into(), "sre".into()])
        );
        assert_eq!(claim_from_property(b"\0\0\0\0"), Claim::List(vec![]));
        // Truncated or padded blobs are not lists, and never panic.
        for cut in 0..list.len() {
            assert_ne!(
                claim_from_property(&list[..cut]),
                Claim::List(vec!["dev".into(), "sre".into()])
            );
        }
        let mut padded = list.to_vec();
        padded.push(b'x');
        assert_eq!(claim_from_property(&padded), Claim::Other);
        assert_eq!(claim_from_property(&[0xff, 0xfe]), Claim::Other);
        assert_eq!(claim_from_property(&[0xff, 0xff, 0xff, 0xff]), Claim::Other);
    }

    #[test]
    fn escaped_claim_json_is_unescaped() {
        let id = caller(r#"{"gr\u006fups":"s\u0072e","scope":"a\u0020b"}"#);
        assert!(id.claim_matches("groups", "sre"));
        assert!(id.has_scope("b"));
    }
}
