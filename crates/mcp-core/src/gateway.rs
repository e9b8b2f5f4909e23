//! The `mcp_gateway` configuration: every policy in one module.
//!
//! The document holds the common keys ([`crate::config::Common`], at the top level) and one
//! optional section per policy, each holding exactly that standalone filter's own keys:
//! `{"telemetry": {...}, "scopes": {...}, "tools": {...}, "pii": {...}}`. An absent section turns
//! the policy off. Errors name the full path (`tools.deny[1]: invalid pattern: ...`,
//! `tools: unknown field "alow"`), and `failure_mode: "open"` is refused as soon as a section
//! that enforces a request policy (`scopes`, `tools`) is present.

use crate::config::{nest, ConfigError, Validate};
use crate::pii::Config as PiiConfig;
use crate::scopes::config::ScopesConfig;
use crate::telemetry::config::TelemetryConfig;
use crate::tools::ToolsConfig;
use serde::Deserialize;

/// The `mcp_gateway` configuration keys besides the common ones.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// `mcp_telemetry`'s keys (docs/telemetry.md); absent: no telemetry.
    #[serde(default)]
    pub telemetry: Option<TelemetryConfig>,
    /// `mcp_scopes`' keys (docs/scopes.md); absent: no token verification.
    #[serde(default)]
    pub scopes: Option<ScopesConfig>,
    /// `mcp_tools`' keys (docs/tools.md); absent: every tool visible.
    #[serde(default)]
    pub tools: Option<ToolsConfig>,
    /// `mcp_pii`'s keys (docs/pii.md); absent: nothing scrubbed.
    #[serde(default)]
    pub pii: Option<PiiConfig>,
}

impl GatewayConfig {
    /// The names of the sections present, in chain order.
    pub fn sections(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.telemetry.is_some() {
            out.push("telemetry");
        }
        if self.scopes.is_some() {
            out.push("scopes");
        }
        if self.tools.is_some() {
            out.push("tools");
        }
        if self.pii.is_some() {
            out.push("pii");
        }
        out
    }
}

impl Validate for GatewayConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(t) = &self.telemetry {
            t.validate().map_err(|e| nest(e, "telemetry"))?;
        }
        if let Some(s) = &self.scopes {
            s.validate().map_err(|e| nest(e, "scopes"))?;
        }
        if let Some(t) = &self.tools {
            t.validate().map_err(|e| nest(e, "tools"))?;
        }
        if let Some(p) = &self.pii {
            p.validate().map_err(|e| nest(e, "pii"))?;
        }
        Ok(())
    }

    fn failure_mode_open_allowed(&self) -> bool {
        // As for the standalone filters: `open` has no safe meaning where a request policy is
        // enforced.
        (self.scopes.is_none() || ScopesConfig::FAILURE_MODE_OPEN)
            && (self.tools.is_none() || ToolsConfig::FAILURE_MODE_OPEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, FailureMode, Loaded};

    fn ok(json: &str) -> Loaded<GatewayConfig> {
        load::<GatewayConfig>(json.as_bytes()).unwrap()
    }

    fn err(json: &str) -> ConfigError {
        load::<GatewayConfig>(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn sections_hold_each_filters_own_keys_and_absent_ones_are_off() {
        let l = ok(r#"{"max_body_bytes": 4096, "tools": {"deny": ["admin_*"]}, "pii": {}}"#);
        assert_eq!(l.common.max_body_bytes, 4096);
        assert_eq!(l.filter.sections(), ["tools", "pii"]);
        assert_eq!(l.filter.tools.unwrap().deny, ["admin_*"]);
        assert!(ok("").filter.sections().is_empty());
    }

    #[test]
    fn errors_name_the_path_inside_the_section() {
        let e = err(r#"{"tools": {"deny": ["a", ""]}}"#);
        assert_eq!(e.path, "tools.deny[1]");
        assert_eq!(
            e.to_string(),
            "tools.deny[1]: invalid pattern: empty pattern"
        );
        let e = err(r#"{"tools": {"alow": ["*"]}}"#);
        assert_eq!(e.path, "tools.alow");
        assert!(e.to_string().contains("unknown field `alow`"), "{e}");
        let e = err(r#"{"tool": {}}"#);
        assert!(e.to_string().contains("unknown field `tool`"), "{e}");
        let e = err(r#"{"pii": {"detectors": ["nope"]}}"#);
        assert!(e.path.starts_with("pii.detectors"), "{e}");
        // Common keys live at the top level only.
        let e = err(r#"{"tools": {"max_body_bytes": 10}}"#);
        assert!(e.to_string().contains("max_body_bytes"), "{e}");
    }

    #[test]
    fn failure_mode_open_is_refused_where_a_request_policy_is_enforced() {
        let e = err(r#"{"failure_mode": "open", "tools": {}}"#);
        assert_eq!(e.path, "failure_mode");
        let e = err(r#"{"failure_mode": "open", "scopes": {}}"#);
        assert_eq!(e.path, "failure_mode");
        let l = ok(r#"{"failure_mode": "open", "pii": {}, "telemetry": {}}"#);
        assert_eq!(l.common.failure_mode, FailureMode::Open);
    }
}
