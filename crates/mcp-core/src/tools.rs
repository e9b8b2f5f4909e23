//! The `mcp_tools` filter's own configuration keys (next to the common ones); the policy they
//! compile to is [`crate::visibility`]. Reference: `docs/tools.md`.

use crate::config::{ConfigError, Validate};
use crate::pinning::PinningConfig;
use crate::visibility::{GrantConfig, Rules, RulesConfig};
use serde::Deserialize;

/// Where the caller's verified identity comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(rename_all = "snake_case")]
pub enum IdentitySource {
    /// Nobody is identified; grants are not allowed.
    #[default]
    None,
    /// The claims the `mcp_scopes` filter verified, from filter state `mcp.auth.claims`.
    McpScopes,
    /// Envoy's `jwt_authn` verified payload in dynamic metadata (Istio RequestAuthentication).
    JwtAuthn,
}

/// `identity` block.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Where the identity comes from.
    #[serde(default)]
    pub source: IdentitySource,
    /// `jwt_authn` only: the provider's `payload_in_metadata` key. Default `jwt_payload`.
    #[serde(default)]
    pub metadata_key: Option<String>,
}

/// The filter's own configuration keys.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ToolsConfig {
    /// Tool names everyone may see (globs). Default `["*"]`.
    #[serde(default = "all")]
    pub allow: Vec<String>,
    /// Tool names hidden from callers without a grant (globs).
    #[serde(default)]
    pub deny: Vec<String>,
    /// Identity-bound exceptions that open tools, even denied ones.
    #[serde(default)]
    pub grants: Vec<GrantConfig>,
    /// Where the identity comes from.
    #[serde(default)]
    pub identity: IdentityConfig,
    /// The same rules for `prompts/list` and `prompts/get`; absent = prompts untouched.
    #[serde(default)]
    pub prompts: Option<RulesConfig>,
    /// Tool pinning and poisoning quarantine (`docs/pinning.md`); absent = off.
    #[serde(default)]
    pub pinning: Option<PinningConfig>,
}

fn all() -> Vec<String> {
    vec!["*".to_owned()]
}

impl ToolsConfig {
    /// `allow` / `deny` / `grants` as one [`RulesConfig`] (what [`Rules::compile`] takes).
    pub fn tool_rules(&self) -> RulesConfig {
        RulesConfig {
            allow: self.allow.clone(),
            deny: self.deny.clone(),
            grants: self.grants.clone(),
        }
    }
}

impl Validate for ToolsConfig {
    // A request the filter could not inspect may be a call its policy refuses: `open` would be
    // a bypass (a hidden-tool call padded past max_body_bytes), so it is refused at load.
    const FAILURE_MODE_OPEN: bool = false;

    fn validate(&self) -> Result<(), ConfigError> {
        Rules::compile(&self.tool_rules(), "")?;
        if let Some(p) = &self.prompts {
            Rules::compile(p, "prompts")?;
        }
        if let Some(p) = &self.pinning {
            p.validate()?;
        }
        let has_grants =
            !self.grants.is_empty() || self.prompts.as_ref().is_some_and(|p| !p.grants.is_empty());
        if has_grants && self.identity.source == IdentitySource::None {
            return Err(ConfigError::at(
                "identity.source",
                "grants need a verified identity: set \"mcp_scopes\" or \"jwt_authn\"",
            ));
        }
        if self.identity.metadata_key.is_some() && self.identity.source != IdentitySource::JwtAuthn
        {
            return Err(ConfigError::at(
                "identity.metadata_key",
                "only used with source \"jwt_authn\"",
            ));
        }
        if self.identity.metadata_key.as_deref() == Some("") {
            return Err(ConfigError::at(
                "identity.metadata_key",
                "must not be empty",
            ));
        }
        Ok(())
    }
}
