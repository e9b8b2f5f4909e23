//! Which scopes an operation needs, and whether a caller has them.
//!
//! Every rule that names the operation applies (tool globs for `tools/call`, method globs for
//! any method) and the caller needs the union of their scopes. Lifecycle and listing methods
//! ([`is_base_method`]) need only a valid token unless a rule names them; every other tool or
//! method that no rule names follows `unmatched`.

use crate::mcp::methods;
use crate::scopes::config::{Policy, Unmatched};

/// What an operation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// These scopes (all of them; empty = a valid token suffices).
    Scopes(Vec<String>),
    /// Nothing grants it (no rule names it and `unmatched: deny`).
    Denied,
}

/// The decision for one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed.
    Allowed,
    /// The caller lacks scopes: `needed` is every scope the operation needs (the 2026-07-28 spec
    /// asks for all of them in one challenge, not just the missing ones).
    Insufficient {
        /// All scopes the operation needs.
        needed: Vec<String>,
    },
    /// No rule names the operation and `unmatched` is `deny`.
    NotPermitted,
}

/// Methods that need no rule: session lifecycle, discovery, listings and notifications.
/// Listing tools is harmless (and `hide_unauthorized_tools` trims the list); calling them is not.
pub fn is_base_method(method: &str) -> bool {
    matches!(
        method,
        methods::INITIALIZE
            | methods::PING
            | methods::SERVER_DISCOVER
            | methods::SUBSCRIPTIONS_LISTEN
            | methods::TOOLS_LIST
            | methods::PROMPTS_LIST
            | methods::RESOURCES_LIST
            | methods::RESOURCES_TEMPLATES_LIST
    ) || method.starts_with("notifications/")
}

impl Policy {
    /// The scopes `method` (with `tool` = `params.name` for `tools/call`) needs.
    pub fn requirement(&self, method: &str, tool: Option<&str>) -> Requirement {
        let is_call = method == methods::TOOLS_CALL;
        let mut matched = false;
        let mut scopes: Vec<String> = Vec::new();
        for r in &self.rules {
            let hit = (is_call && !r.tools.is_empty() && r.tools.matches(tool.unwrap_or("")))
                || (!r.methods.is_empty() && r.methods.matches(method));
            if hit {
                matched = true;
                for s in &r.scopes {
                    if !scopes.contains(s) {
                        scopes.push(s.clone());
                    }
                }
            }
        }
        if matched || is_base_method(method) || self.unmatched == Unmatched::Allow {
            Requirement::Scopes(scopes)
        } else {
            Requirement::Denied
        }
    }

    /// Whether a caller holding `granted` may perform the operation.
    pub fn authorize(&self, method: &str, tool: Option<&str>, granted: &[String]) -> Verdict {
        match self.requirement(method, tool) {
            Requirement::Denied => Verdict::NotPermitted,
            Requirement::Scopes(needed) => {
                if needed.iter().all(|s| granted.contains(s)) {
                    Verdict::Allowed
                } else {
                    Verdict::Insufficient { needed }
                }
            }
        }
    }

    /// Whether a caller holding `granted` may call tool `name` (for `hide_unauthorized_tools`).
    pub fn may_call(&self, name: &str, granted: &[String]) -> bool {
        self.authorize(methods::TOOLS_CALL, Some(name), granted) == Verdict::Allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rules: &str, unmatched: &str) -> Policy {
        let json = format!(
            r#"{{"resource":"https://m.example/mcp","authorization_servers":["https://idp.example"],
                "jwt_authn":{{"metadata_key":"p"}},"unmatched":"{unmatched}","rules":{rules}}}"#
        );
        crate::scopes::config::test_policy(&json)
    }

    const ISSUE_RULES: &str = r#"[
        {"tools": ["delete_*"], "scopes": ["repo:admin"]},
        {"tools": ["*"], "scopes": ["mcp:tools"]},
        {"methods": ["resources/read"], "scopes": ["files:read"]}]"#;

    fn s(list: &[&str]) -> Vec<String> {
        list.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn every_matching_rule_applies_and_scopes_are_unioned() {
        let p = policy(ISSUE_RULES, "deny");
        assert_eq!(
            p.requirement("tools/call", Some("delete_repo")),
            Requirement::Scopes(s(&["repo:admin", "mcp:tools"]))
        );
        assert_eq!(
            p.requirement("tools/call", Some("echo")),
            Requirement::Scopes(s(&["mcp:tools"]))
        );
        assert_eq!(
            p.requirement("resources/read", None),
            Requirement::Scopes(s(&["files:read"]))
        );
    }

    #[test]
    fn insufficient_scope_names_all_needed_scopes() {
        let p = policy(ISSUE_RULES, "deny");
        assert_eq!(
            p.authorize("tools/call", Some("delete_repo"), &s(&["mcp:tools"])),
            Verdict::Insufficient {
                needed: s(&["repo:admin", "mcp:tools"])
            }
        );
        assert_eq!(
            p.authorize(
                "tools/call",
                Some("delete_repo"),
                &s(&["mcp:tools", "repo:admin"])
            ),
            Verdict::Allowed
        );
    }

    #[test]
    fn unmatched_methods_follow_the_unmatched_setting() {
        let deny = policy(ISSUE_RULES, "deny");
        assert_eq!(
            deny.authorize("prompts/get", None, &[]),
            Verdict::NotPermitted
        );
        let allow = policy(ISSUE_RULES, "allow");
        assert_eq!(allow.authorize("prompts/get", None, &[]), Verdict::Allowed);
        // With no `*` rule, an unnamed tool is unmatched too.
        let narrow = policy(r#"[{"tools":["echo"],"scopes":["a"]}]"#, "deny");
        assert_eq!(
            narrow.authorize("tools/call", Some("other"), &s(&["a"])),
            Verdict::NotPermitted
        );
        assert_eq!(
            narrow.authorize("tools/call", None, &s(&["a"])),
            Verdict::NotPermitted
        );
    }

    #[test]
    fn lifecycle_and_listing_need_only_a_token_unless_a_rule_names_them() {
        let p = policy(ISSUE_RULES, "deny");
        for m in [
            "initialize",
            "ping",
            "tools/list",
            "notifications/initialized",
            "server/discover",
        ] {
            assert_eq!(p.authorize(m, None, &[]), Verdict::Allowed, "{m}");
        }
        let p = policy(
            r#"[{"methods":["tools/list"],"scopes":["mcp:list"]}]"#,
            "deny",
        );
        assert_eq!(
            p.authorize("tools/list", None, &[]),
            Verdict::Insufficient {
                needed: s(&["mcp:list"])
            }
        );
    }

    #[test]
    fn method_rules_apply_to_tools_call_too() {
        let p = policy(
            r#"[{"methods":["tools/*"],"scopes":["mcp"]},{"tools":["x"],"scopes":["x"]}]"#,
            "deny",
        );
        assert_eq!(
            p.requirement("tools/call", Some("x")),
            Requirement::Scopes(s(&["mcp", "x"]))
        );
        assert_eq!(
            p.requirement("tools/call", Some("y")),
            Requirement::Scopes(s(&["mcp"]))
        );
    }

    #[test]
    fn may_call_decides_tool_visibility() {
        let p = policy(ISSUE_RULES, "deny");
        let granted = s(&["mcp:tools"]);
        assert!(p.may_call("echo", &granted));
        assert!(!p.may_call("delete_repo", &granted));
        assert!(!p.may_call("echo", &[]));
    }
}
