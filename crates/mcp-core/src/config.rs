//! Filter configuration: JSON from the wasm plugin's `configuration` string.
//!
//! Every filter's configuration is one JSON object. A few keys are common to all filters
//! ([`Common`]: body limit, failure mode, batch policy, nesting limit); the rest belong to the
//! filter and are deserialized into its own struct, which must use
//! `#[serde(deny_unknown_fields)]` so a misspelt key refuses to load instead of being ignored.
//!
//! Loading has two passes: serde (types and unknown keys, with the key path of the error from
//! `serde_path_to_error`), then [`Validate`] (cross-field rules, patterns, ranges). Errors always
//! name the key path, e.g. `rules[2].tools[0]: empty pattern`. The glue turns an error into
//! `on_configure` returning false, which makes Envoy reject the plugin (at startup Envoy exits; over
//! xDS/ECDS the update is NACKed) rather than run with a configuration nobody wrote.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::fmt;

/// Default for [`Common::max_body_bytes`]: 1 MiB, Envoy's default per-connection buffer limit,
/// which bounds what Envoy itself will buffer for a paused stream anyway.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest accepted `max_body_bytes` (64 MiB): each paused stream holds up to this much.
pub const MAX_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Default JSON nesting limit. MCP messages nest a handful of levels; JSON Schemas in
/// `tools/list` results a few more.
pub const DEFAULT_MAX_JSON_DEPTH: usize = 64;
/// Largest accepted `max_json_depth`.
pub const MAX_MAX_JSON_DEPTH: usize = 512;

/// The configuration keys every filter accepts, besides its own.
pub const COMMON_KEYS: [&str; 4] = ["max_body_bytes", "failure_mode", "batch", "max_json_depth"];

/// What a filter does when it cannot do its job (body over the limit, an upstream response it
/// cannot parse, a host call that failed). Policy decisions (a refused tool, a smuggling attempt)
/// are never subject to this: they are always enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// Refuse the message (the default): nothing the filter could not check passes.
    #[default]
    Closed,
    /// Let the message through unchanged, count it and log a warning.
    Open,
}

/// How a JSON-RPC batch (a JSON array body, legal only in MCP 2025-03-26) is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(rename_all = "lowercase")]
pub enum BatchPolicy {
    /// Refuse every batch with JSON-RPC `-32600` (the default; batching was removed from MCP in
    /// 2025-06-18, and a filter that inspects single objects could otherwise be bypassed).
    #[default]
    Reject,
    /// Examine each element with the same rules as a single message; if any element is refused,
    /// the whole batch is refused.
    Each,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommonRaw {
    max_body_bytes: Option<u64>,
    failure_mode: Option<FailureMode>,
    batch: Option<BatchPolicy>,
    max_json_depth: Option<u64>,
}

/// Settings shared by every filter.
///
/// Read by [`load`] through a private raw struct, not by serde directly; the `schema` feature describes the
/// same keys, ranges and defaults for `schemas/*.schema.json` (tests keep the two in step).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema, serde::Serialize),
    schemars(default)
)]
pub struct Common {
    /// Largest request or (non-streaming) response body the filter buffers, in bytes. An SSE
    /// event larger than this is treated the same way. Default [`DEFAULT_MAX_BODY_BYTES`].
    #[cfg_attr(
        feature = "schema",
        schemars(
            range(min = 1, max = MAX_MAX_BODY_BYTES),
            description = "Largest request or JSON response body the filter buffers, in bytes; also the largest single SSE event."
        )
    )]
    pub max_body_bytes: usize,
    /// See [`FailureMode`].
    #[cfg_attr(
        feature = "schema",
        schemars(
            description = "What happens when the filter cannot do its job (body over the limit, host failure, unparsable response): `closed` refuses, `open` lets the message through unchanged. Policy refusals are never subject to it."
        )
    )]
    pub failure_mode: FailureMode,
    /// See [`BatchPolicy`].
    #[cfg_attr(
        feature = "schema",
        schemars(
            description = "JSON-RPC batches (MCP 2025-03-26 only): `reject` refuses them, `each` examines every element and refuses the batch if any element is refused."
        )
    )]
    pub batch: BatchPolicy,
    /// JSON nesting limit for bodies the filter parses. Default [`DEFAULT_MAX_JSON_DEPTH`].
    #[cfg_attr(
        feature = "schema",
        schemars(
            range(min = 2, max = MAX_MAX_JSON_DEPTH),
            description = "Nesting limit for parsed JSON bodies."
        )
    )]
    pub max_json_depth: usize,
}

impl Default for Common {
    fn default() -> Self {
        Common {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            failure_mode: FailureMode::Closed,
            batch: BatchPolicy::Reject,
            max_json_depth: DEFAULT_MAX_JSON_DEPTH,
        }
    }
}

/// A configuration error, naming the key path it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path such as `rules[2].tools[0]`; empty for the document itself.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error about the key at `path`.
    pub fn at(path: impl Into<String>, message: impl fmt::Display) -> Self {
        ConfigError {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "configuration: {}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// The second validation pass, run after serde accepted the document.
pub trait Validate {
    /// Checks rules serde cannot express; the error names the offending key path.
    fn validate(&self) -> Result<(), ConfigError>;

    /// Whether `failure_mode: "open"` has a safe meaning for this filter. A filter that
    /// enforces a policy on requests (which tools may be called, which scopes a call needs)
    /// cannot let through a request it could not inspect without letting through the very
    /// calls its policy refuses, so it sets this to `false` and [`load`] refuses `open`.
    const FAILURE_MODE_OPEN: bool = true;

    /// [`Self::FAILURE_MODE_OPEN`] for this configuration (a configuration with optional
    /// policy sections answers by the sections it has).
    fn failure_mode_open_allowed(&self) -> bool {
        Self::FAILURE_MODE_OPEN
    }
}

/// `e` with its path moved under `section` (`deny[1]` becomes `tools.deny[1]`).
pub fn nest(e: ConfigError, section: &str) -> ConfigError {
    let path = if e.path.is_empty() {
        section.to_owned()
    } else {
        format!("{section}.{}", e.path)
    };
    ConfigError::at(path, e.message)
}

/// A filter configuration with no keys of its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoOwnKeys {}

impl Validate for NoOwnKeys {
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// A loaded configuration: the common settings and the filter's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded<T> {
    /// Settings shared by all filters.
    pub common: Common,
    /// The filter's own settings.
    pub filter: T,
}

/// Parses and validates a plugin configuration. An empty (or all-white-space) string means `{}`:
/// Envoy passes an empty string when the plugin has no `configuration`.
pub fn load<T: DeserializeOwned + Validate>(raw: &[u8]) -> Result<Loaded<T>, ConfigError> {
    let text =
        std::str::from_utf8(raw).map_err(|e| ConfigError::at("", format!("not UTF-8 ({e})")))?;
    let text = if text.trim().is_empty() { "{}" } else { text };
    let mut map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| ConfigError::at("", format!("not a JSON object: {e}")))?;

    let mut common_map = serde_json::Map::new();
    for key in COMMON_KEYS {
        if let Some(v) = map.remove(key) {
            common_map.insert(key.to_owned(), v);
        }
    }
    let common = common_from(common_map)?;
    let filter: T = serde_path_to_error::deserialize(serde_json::Value::Object(map))
        .map_err(|e| serde_error(e.path().to_string(), e.into_inner()))?;
    filter.validate()?;
    if common.failure_mode == FailureMode::Open && !filter.failure_mode_open_allowed() {
        return Err(ConfigError::at(
            "failure_mode",
            "\"open\" is not allowed for this filter: it enforces a policy on requests, and a \
             request it could not inspect may be one that policy refuses (use \"closed\")",
        ));
    }
    Ok(Loaded { common, filter })
}

fn serde_error(path: String, e: serde_json::Error) -> ConfigError {
    // serde_path_to_error renders the root as "."; we render it as the empty path.
    let path = if path == "." { String::new() } else { path };
    ConfigError::at(path, e)
}

fn common_from(map: serde_json::Map<String, serde_json::Value>) -> Result<Common, ConfigError> {
    let raw: CommonRaw = serde_path_to_error::deserialize(serde_json::Value::Object(map))
        .map_err(|e| serde_error(e.path().to_string(), e.into_inner()))?;
    let mut c = Common::default();
    if let Some(n) = raw.max_body_bytes {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n == 0 || n > MAX_MAX_BODY_BYTES {
            return Err(ConfigError::at(
                "max_body_bytes",
                format!("must be between 1 and {MAX_MAX_BODY_BYTES}"),
            ));
        }
        c.max_body_bytes = n;
    }
    if let Some(d) = raw.max_json_depth {
        let d = usize::try_from(d).unwrap_or(usize::MAX);
        if !(2..=MAX_MAX_JSON_DEPTH).contains(&d) {
            return Err(ConfigError::at(
                "max_json_depth",
                format!("must be between 2 and {MAX_MAX_JSON_DEPTH}"),
            ));
        }
        c.max_json_depth = d;
    }
    if let Some(f) = raw.failure_mode {
        c.failure_mode = f;
    }
    if let Some(b) = raw.batch {
        c.batch = b;
    }
    Ok(c)
}

/// Compiles a list of glob patterns found at `path`, naming the bad element on error
/// (`deny[1]: empty pattern`).
pub fn patterns_at(path: &str, list: &[String]) -> Result<crate::glob::PatternSet, ConfigError> {
    crate::glob::PatternSet::new(list)
        .map_err(|(i, e)| ConfigError::at(format!("{path}[{i}]"), format!("invalid pattern: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Rule {
        tools: Vec<String>,
        #[serde(default)]
        scopes: Vec<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Demo {
        #[serde(default)]
        rules: Vec<Rule>,
    }

    impl Validate for Demo {
        fn validate(&self) -> Result<(), ConfigError> {
            for (i, r) in self.rules.iter().enumerate() {
                patterns_at(&format!("rules[{i}].tools"), &r.tools)?;
            }
            Ok(())
        }
    }

    #[test]
    fn empty_configuration_means_all_defaults() {
        let l = load::<NoOwnKeys>(b"").unwrap();
        assert_eq!(l.common, Common::default());
        let l = load::<NoOwnKeys>(b"  \n").unwrap();
        assert_eq!(l.common.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    }

    #[test]
    fn common_keys_are_read_next_to_filter_keys() {
        let l = load::<Demo>(
            br#"{"max_body_bytes": 2048, "failure_mode": "open", "batch": "each",
                 "max_json_depth": 10, "rules": [{"tools": ["a*"]}]}"#,
        )
        .unwrap();
        assert_eq!(l.common.max_body_bytes, 2048);
        assert_eq!(l.common.failure_mode, FailureMode::Open);
        assert_eq!(l.common.batch, BatchPolicy::Each);
        assert_eq!(l.common.max_json_depth, 10);
        assert_eq!(l.filter.rules.len(), 1);
    }

    #[test]
    fn unknown_key_is_refused_with_its_name() {
        let e = load::<NoOwnKeys>(br#"{"alow": ["*"]}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `alow`"), "{e}");
        let e = load::<Demo>(br#"{"rules": [{"tools": ["a"], "scope": []}]}"#).unwrap_err();
        assert_eq!(e.path, "rules[0].scope");
        assert!(e.message.contains("unknown field `scope`"), "{e}");
    }

    #[test]
    fn type_errors_name_the_key_path() {
        let e = load::<Demo>(br#"{"rules": [{"tools": ["a"]}, {"tools": [1]}]}"#).unwrap_err();
        assert_eq!(e.path, "rules[1].tools[0]");
        let e = load::<NoOwnKeys>(br#"{"failure_mode": "sometimes"}"#).unwrap_err();
        assert_eq!(e.path, "failure_mode");
        assert!(e.message.contains("unknown variant"), "{e}");
    }

    #[test]
    fn second_pass_errors_name_the_element() {
        let e = load::<Demo>(
            br#"{"rules": [{"tools": ["a"]}, {"tools": ["b"]}, {"tools": ["ok", ""]}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "rules[2].tools[1]: invalid pattern: empty pattern"
        );
    }

    #[test]
    fn out_of_range_limits_are_refused() {
        for bad in [
            r#"{"max_body_bytes": 0}"#,
            r#"{"max_body_bytes": 100000000000}"#,
            r#"{"max_body_bytes": -1}"#,
            r#"{"max_json_depth": 1}"#,
            r#"{"max_json_depth": 100000}"#,
        ] {
            let e = load::<NoOwnKeys>(bad.as_bytes()).unwrap_err();
            assert!(
                e.path == "max_body_bytes" || e.path == "max_json_depth",
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn non_object_or_non_utf8_documents_are_refused() {
        assert!(load::<NoOwnKeys>(b"[]").is_err());
        assert!(load::<NoOwnKeys>(b"{").is_err());
        assert!(load::<NoOwnKeys>(b"\xff").is_err());
        assert!(load::<NoOwnKeys>(b"{} x").is_err());
    }
}
