//! `schemas/<filter>.schema.json`: one JSON Schema (draft 2020-12) per filter's plugin
//! `configuration`, generated from the configuration structs (`schemars` derives behind
//! `mcp-core`'s `schema` feature), so it follows the serde attributes the loader
//! uses: `deny_unknown_fields` becomes `additionalProperties: false`, `#[serde(default)]` makes a
//! key optional and records its default, enums list their spellings.
//!
//! `mcp_core::config::load` reads the common keys (`max_body_bytes`, `failure_mode`, `batch`,
//! `max_json_depth`) next to the filter's own, so each schema is the filter's struct with
//! [`Common`]'s properties merged into its top level. `make schemas` rewrites the files;
//! `tests/tests/examples.rs` fails when they drift from the structs.
//!
//! A schema is the first of the loader's two passes only: the second (`Validate`: glob syntax,
//! URLs, JWKS, regexes, cross-key rules such as "grants need an identity source") is not
//! expressible in JSON Schema, so a document the schema accepts can still be refused at load.

use anyhow::{bail, Context, Result};
use mcp_core::config::Common;
use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The four filters and the module: name (`mcp_tools`) and documentation page (`docs/tools.md`).
pub const FILTERS: [(&str, &str); 5] = [
    ("mcp_tools", "docs/tools.md"),
    ("mcp_scopes", "docs/scopes.md"),
    ("mcp_pii", "docs/pii.md"),
    ("mcp_telemetry", "docs/telemetry.md"),
    ("mcp_gateway", "docs/gateway.md"),
];

/// `<repo>/schemas`.
pub fn schemas_dir() -> PathBuf {
    crate::paths::repo_root().join("schemas")
}

/// `<repo>/schemas/<filter>.schema.json`.
pub fn schema_path(filter: &str) -> PathBuf {
    schemas_dir().join(format!("{filter}.schema.json"))
}

/// The schema of `filter`'s configuration, as a JSON value.
pub fn schema(filter: &str) -> Result<Value> {
    match filter {
        "mcp_tools" => build::<mcp_core::tools::ToolsConfig>(filter),
        "mcp_scopes" => build::<mcp_core::scopes::config::ScopesConfig>(filter),
        "mcp_pii" => build::<mcp_core::pii::Config>(filter),
        "mcp_telemetry" => build::<mcp_core::telemetry::config::TelemetryConfig>(filter),
        "mcp_gateway" => build::<mcp_core::gateway::GatewayConfig>(filter),
        other => bail!("unknown filter {other:?}"),
    }
}

/// The file text of `filter`'s schema: pretty JSON and a final newline.
pub fn render(filter: &str) -> Result<String> {
    let mut text = serde_json::to_string_pretty(&schema(filter)?)?;
    text.push('\n');
    Ok(text)
}

/// Writes every schema into `dir`; returns the files written.
pub fn write_all(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for (filter, _) in FILTERS {
        let path = dir.join(format!("{filter}.schema.json"));
        std::fs::write(&path, render(filter)?)
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Checks one configuration document against the loader `mcp_core::config::load` with the
/// filter's own configuration type (both passes).
pub fn load(filter: &str, json: &str) -> Result<()> {
    let raw = json.as_bytes();
    let res = match filter {
        "mcp_tools" => mcp_core::config::load::<mcp_core::tools::ToolsConfig>(raw).map(|_| ()),
        "mcp_scopes" => {
            mcp_core::config::load::<mcp_core::scopes::config::ScopesConfig>(raw).map(|_| ())
        }
        "mcp_pii" => mcp_core::config::load::<mcp_core::pii::Config>(raw).map(|_| ()),
        "mcp_telemetry" => {
            mcp_core::config::load::<mcp_core::telemetry::config::TelemetryConfig>(raw).map(|_| ())
        }
        "mcp_gateway" => {
            mcp_core::config::load::<mcp_core::gateway::GatewayConfig>(raw).map(|_| ())
        }
        other => bail!("unknown filter {other:?}"),
    };
    res.map_err(|e| anyhow::anyhow!("{filter}: invalid configuration: {e}"))
}

fn build<T: JsonSchema + mcp_core::config::Validate>(filter: &str) -> Result<Value> {
    let mut generator = SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator();
    // Generated first so its enums land in the same `$defs` as the filter's.
    let common = generator.root_schema_for::<Common>().to_value();
    let mut root = generator.into_root_schema_for::<T>().to_value();

    let Some(obj) = root.as_object_mut() else {
        bail!("{filter}: the schema is not an object");
    };
    if obj.get("additionalProperties") != Some(&Value::Bool(false)) {
        bail!("{filter}: the configuration struct must use #[serde(deny_unknown_fields)]");
    }
    let Some(common_props) = common.get("properties").and_then(Value::as_object) else {
        bail!("Common has no properties");
    };
    let props = obj
        .entry("properties")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .context("properties is not an object")?;
    for (key, sub) in common_props {
        if props.insert(key.clone(), sub.clone()).is_some() {
            bail!("{filter}: key {key:?} is both a common key and the filter's own");
        }
    }
    if !T::FAILURE_MODE_OPEN {
        // The loader refuses `open` for a filter that enforces a request policy.
        props.insert(
            "failure_mode".into(),
            json!({
                "const": "closed",
                "default": "closed",
                "description": "Always `closed` for this filter: a request it cannot inspect is \
                    refused. `open` is not accepted, because a request the filter could not \
                    inspect may be one its policy refuses."
            }),
        );
    }
    let page = FILTERS
        .iter()
        .find(|(f, _)| *f == filter)
        .map_or("README.md", |(_, d)| d);
    obj.insert(
        "title".into(),
        Value::String(format!("{filter} plugin configuration")),
    );
    obj.insert(
        "description".into(),
        Value::String(format!(
            "The JSON object in the `configuration` of the {filter} wasm plugin. Generated from \
             the configuration structs by `make schemas`; reference: {page} and README.md \
             (keys common to every filter). The filter also runs semantic checks this schema \
             cannot express (glob syntax, URLs, keys, cross-key rules): a document can pass \
             the schema and still be refused when the plugin loads."
        )),
    );
    Ok(root)
}
