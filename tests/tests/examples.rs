//! What we show users is what CI checked:
//!
//! - `schemas/<filter>.schema.json` equal what the configuration structs generate (`make schemas`),
//!   describe the keys common to every filter the way the loader reads them, and refuse misspelt
//!   keys like the loader does;
//! - every plugin `configuration` in `envoy/*.yaml`, `examples/**/*.yaml` and the docs (README.md,
//!   docs/*.md: `json` blocks of a filter's page and the wasm configs in `yaml` blocks) passes its
//!   filter's schema AND loads with the real loader;
//! - `examples/docker-compose/docker-compose.yaml` runs the Envoy version the tests run, mounts the
//!   built filters and the shipped `envoy/mcp-gateway.yaml` (not a copy), publishes that file's
//!   ports, has a server behind each of its loopback upstreams, and its exact Envoy command line
//!   passes `envoy --mode validate` in the container's file layout (only the mounted directories).
//!
//! No docker here: the compose file is checked structurally and its Envoy command is run by the
//! real Envoy binary the other tests use.

// Helpers fail the test by panicking; clippy's allow-*-in-tests covers only `#[test]` fns.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mcp_integration::envoy::tail;
use mcp_integration::{paths, schemas};
use serde_json::{json, Value};
use serde_yaml::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const COMPOSE: &str = "examples/docker-compose/docker-compose.yaml";
const GATEWAY: &str = "envoy/mcp-gateway.yaml";

fn repo() -> PathBuf {
    paths::repo_root()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------------------------

fn committed_schema(filter: &str) -> Value {
    let path = schemas::schema_path(filter);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run `make schemas`)", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn validator(filter: &str) -> jsonschema::Validator {
    jsonschema::validator_for(&committed_schema(filter))
        .unwrap_or_else(|e| panic!("{filter}: the schema itself is invalid: {e}"))
}

fn schema_errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// The loader reads an empty `configuration` as `{}`; so does the schema check.
fn parse_config(text: &str) -> Value {
    if text.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }
}

#[test]
fn committed_schemas_equal_what_the_configuration_structs_generate() {
    for (filter, _) in schemas::FILTERS {
        let generated = schemas::render(filter).unwrap();
        let path = schemas::schema_path(filter);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} is stale: the configuration structs changed. Run `make schemas` and commit the result.",
            path.display()
        );
        // A draft 2020-12 schema the validator accepts, closed at the top level.
        let schema = committed_schema(filter);
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["additionalProperties"], false, "{filter}");
        validator(filter);
    }
}

#[test]
fn schemas_carry_the_common_keys_with_the_loaders_ranges_and_defaults() {
    for (filter, _) in schemas::FILTERS {
        let schema = committed_schema(filter);
        let props = schema["properties"].as_object().unwrap();
        for key in mcp_core::config::COMMON_KEYS {
            assert!(
                props.contains_key(key),
                "{filter}: common key {key} missing"
            );
        }
        let v = validator(filter);
        // The same verdict as the loader at and around every bound, and for the enums.
        let cases = [
            json!({"max_body_bytes": 0}),
            json!({"max_body_bytes": 1}),
            json!({"max_body_bytes": 67_108_864}),
            json!({"max_body_bytes": 67_108_865}),
            json!({"max_body_bytes": -1}),
            json!({"max_body_bytes": "1024"}),
            json!({"max_json_depth": 1}),
            json!({"max_json_depth": 2}),
            json!({"max_json_depth": 512}),
            json!({"max_json_depth": 513}),
            json!({"failure_mode": "open"}),
            json!({"failure_mode": "closed"}),
            json!({"failure_mode": "Open"}),
            json!({"batch": "each"}),
            json!({"batch": "reject"}),
            json!({"batch": "all"}),
        ];
        for case in cases {
            let by_schema = v.is_valid(&case);
            let by_loader = schemas::load(filter, &case.to_string()).is_ok();
            assert_eq!(
                by_schema, by_loader,
                "{filter}: {case}: schema says {by_schema}, loader says {by_loader}"
            );
        }
        // The documented defaults are values the loader accepts, and equal its defaults.
        let defaults: serde_json::Map<String, Value> = props
            .iter()
            .filter_map(|(k, p)| Some((k.clone(), p.get("default")?.clone())))
            .filter(|(_, d)| !d.is_null())
            .collect();
        for key in mcp_core::config::COMMON_KEYS {
            assert!(defaults.contains_key(key), "{filter}: {key} has no default");
        }
        let doc = Value::Object(defaults);
        assert!(v.is_valid(&doc), "{filter}: {doc}");
        schemas::load(filter, &doc.to_string()).unwrap();
        let loaded = mcp_core::config::load::<mcp_core::config::NoOwnKeys>(
            json!({
                "max_body_bytes": doc["max_body_bytes"],
                "failure_mode": doc["failure_mode"],
                "batch": doc["batch"],
                "max_json_depth": doc["max_json_depth"],
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(loaded.common, mcp_core::config::Common::default());
    }
}

/// A misspelt key, at the top or nested, fails both the schema and the loader, which names it.
#[test]
fn a_misspelt_key_fails_the_schema_and_the_loader() {
    let cases: [(&str, Value, &str); 10] = [
        ("mcp_tools", json!({"alow": ["*"]}), "alow"),
        (
            "mcp_tools",
            json!({"grants": [{"scope": ["a"], "allow": ["x"]}], "identity": {"source": "mcp_scopes"}}),
            "scope",
        ),
        (
            "mcp_tools",
            json!({"identity": {"sorce": "jwt_authn"}}),
            "sorce",
        ),
        (
            "mcp_scopes",
            json!({"resources": "https://mcp.example.com/mcp"}),
            "resources",
        ),
        (
            "mcp_scopes",
            json!({"resource": "https://mcp.example.com/mcp", "authorization_servers": ["https://idp.example.com"],
                   "jwt": {"isuer": "https://idp.example.com", "algorithms": ["RS256"]}}),
            "isuer",
        ),
        ("mcp_pii", json!({"detector": ["email"]}), "detector"),
        (
            "mcp_pii",
            json!({"custom": [{"name": "emp", "regex": "EMP-[0-9]+"}]}),
            "regex",
        ),
        (
            "mcp_telemetry",
            json!({"route_header": true}),
            "route_header",
        ),
        (
            "mcp_telemetry",
            json!({"failure-mode": "open"}),
            "failure-mode",
        ),
        ("mcp_pii", json!({"max_body_byte": 1024}), "max_body_byte"),
    ];
    for (filter, doc, key) in cases {
        let v = validator(filter);
        let errors = schema_errors(&v, &doc);
        assert!(!errors.is_empty(), "{filter}: the schema accepted {doc}");
        assert!(
            errors.iter().any(|e| e.contains(key)),
            "{filter}: {doc}: the schema errors do not name {key}: {errors:?}"
        );
        let e = schemas::load(filter, &doc.to_string())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("unknown field `{key}`")),
            "{filter}: {doc}: {e}"
        );
    }
    // Wrong types and enum spellings too.
    for (filter, doc) in [
        ("mcp_tools", json!({"deny": "admin_*"})),
        ("mcp_tools", json!({"identity": {"source": "istio"}})),
        ("mcp_scopes", json!({"unmatched": "ignore"})),
        ("mcp_pii", json!({"action": "drop"})),
        ("mcp_pii", json!({"request": "yes"})),
        ("mcp_telemetry", json!({"meta_trace_context": "always"})),
        ("mcp_telemetry", json!({"max_tool_labels": 1001})),
        (
            "mcp_pii",
            json!({"custom": [{"name": "Employee-Id", "pattern": "E[0-9]+"}]}),
        ),
    ] {
        assert!(
            !validator(filter).is_valid(&doc),
            "{filter}: schema accepted {doc}"
        );
        assert!(
            schemas::load(filter, &doc.to_string()).is_err(),
            "{filter}: loader accepted {doc}"
        );
    }
}

/// The loader's second pass (`Validate`) checks what JSON Schema cannot: these pass the schema
/// and are still refused when the plugin loads (docs say so).
#[test]
fn semantic_errors_pass_the_schema_but_fail_the_loader() {
    for (filter, doc, expect) in [
        (
            "mcp_tools",
            json!({"deny": [""]}),
            "deny[0]: invalid pattern",
        ),
        (
            "mcp_tools",
            json!({"grants": [{"scopes": ["a"], "allow": ["x"]}]}),
            "identity.source: grants need a verified identity",
        ),
        (
            "mcp_pii",
            json!({"detectors": ["emali"]}),
            "detectors[0]: unknown detector",
        ),
        ("mcp_pii", json!({"action": "hash"}), "hash_key"),
        (
            "mcp_scopes",
            json!({"resource": "ftp://mcp.example.com/mcp", "authorization_servers": ["https://idp.example.com"]}),
            "resource",
        ),
        (
            "mcp_telemetry",
            json!({"metric_tools": ["ok", ""]}),
            "metric_tools[1]",
        ),
    ] {
        assert!(
            validator(filter).is_valid(&doc),
            "{filter}: {doc}: the schema refuses it: {:?}",
            schema_errors(&validator(filter), &doc)
        );
        let e = schemas::load(filter, &doc.to_string())
            .unwrap_err()
            .to_string();
        assert!(e.contains(expect), "{filter}: {doc}: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Finding every plugin configuration we ship or document
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Found {
    /// `envoy/mcp-gateway.yaml`, `docs/pii.md:175`, ...
    origin: String,
    filter: String,
    json: String,
}

const FILTER_NAMES: [&str; 5] = [
    "mcp_tools",
    "mcp_scopes",
    "mcp_pii",
    "mcp_telemetry",
    "mcp_gateway",
];
/// The standalone filters, each with its own `envoy/<filter>.yaml`.
const STANDALONE: [&str; 4] = ["mcp_tools", "mcp_scopes", "mcp_pii", "mcp_telemetry"];
const FOUR_FILTERS: &str = "envoy/mcp-four-filters.yaml";

fn get<'a>(m: &'a Yaml, key: &str) -> Option<&'a Yaml> {
    m.as_mapping()?.get(Yaml::String(key.to_owned()))
}

/// Which of our filters a wasm `config` (or an Istio WasmPlugin `spec`) belongs to.
fn filter_of(m: &Yaml) -> Option<String> {
    let mut candidates: Vec<String> = Vec::new();
    for key in ["root_id", "name", "pluginName", "url"] {
        if let Some(s) = get(m, key).and_then(Yaml::as_str) {
            candidates.push(s.to_owned());
        }
    }
    if let Some(f) = get(m, "vm_config")
        .and_then(|v| get(v, "code"))
        .and_then(|c| get(c, "local"))
        .and_then(|l| get(l, "filename"))
        .and_then(Yaml::as_str)
    {
        candidates.push(f.to_owned());
    }
    candidates.iter().find_map(|c| {
        FILTER_NAMES
            .iter()
            .find(|f| c == *f || c.ends_with(&format!("{f}.wasm")) || c.contains(&format!("/{f}")))
            .map(|f| (*f).to_owned())
    })
}

/// Collects every wasm plugin configuration below `y`: Envoy's
/// `configuration: {"@type": ...StringValue, value: "<json>"}` next to `vm_config`/`root_id`,
/// and Istio WasmPlugin's structured `pluginConfig`.
fn collect(y: &Yaml, origin: &str, out: &mut Vec<Found>) {
    match y {
        Yaml::Mapping(m) => {
            if let Some(cfg) = get(y, "configuration") {
                let is_string_value = get(cfg, "@type")
                    .and_then(Yaml::as_str)
                    .is_some_and(|t| t.ends_with("google.protobuf.StringValue"));
                if is_string_value && (get(y, "vm_config").is_some() || get(y, "root_id").is_some())
                {
                    let filter = filter_of(y)
                        .unwrap_or_else(|| panic!("{origin}: a wasm plugin that is none of ours"));
                    let json = get(cfg, "value")
                        .and_then(Yaml::as_str)
                        .unwrap_or("")
                        .to_owned();
                    out.push(Found {
                        origin: origin.to_owned(),
                        filter,
                        json,
                    });
                }
            }
            if let Some(pc) = get(y, "pluginConfig") {
                let filter = filter_of(y)
                    .unwrap_or_else(|| panic!("{origin}: a WasmPlugin that is none of ours"));
                let json = serde_json::to_string(pc).unwrap();
                out.push(Found {
                    origin: origin.to_owned(),
                    filter,
                    json,
                });
            }
            for (_, v) in m {
                collect(v, origin, out);
            }
        }
        Yaml::Sequence(s) => s.iter().for_each(|v| collect(v, origin, out)),
        Yaml::Tagged(t) => collect(&t.value, origin, out),
        _ => {}
    }
}

/// Every document of a (multi-document) YAML text.
fn yaml_docs(text: &str, origin: &str) -> Vec<Yaml> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| {
            serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{origin}: not YAML: {e}"))
        })
        .collect()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
}

fn rel(p: &Path) -> String {
    p.strip_prefix(repo())
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

/// Fenced code blocks of a Markdown text: (info string, first line number, body).
fn code_blocks(md: &str) -> Vec<(String, usize, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, usize, String)> = None;
    for (i, line) in md.lines().enumerate() {
        let t = line.trim_start();
        if let Some(info) = t.strip_prefix("```") {
            match open.take() {
                None => open = Some((info.trim().to_owned(), i + 1, String::new())),
                Some(b) => blocks.push(b),
            }
        } else if let Some((_, _, body)) = open.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    blocks
}

/// `json` blocks in a filter's page that are NOT a configuration: (page, text the block starts with).
/// Each must match exactly one block, so this list cannot go stale unnoticed.
const NOT_CONFIGS: [(&str, &str); 1] = [
    // An access-log line.
    ("docs/telemetry.md", r#"{"details":"local_rate_limited""#),
];

/// Pages besides a filter's own whose `json` blocks are that filter's configurations.
const MORE_PAGES: [(&str, &str); 1] = [("mcp_tools", "docs/pinning.md")];

/// `yaml` blocks of the docs show wasm configs whose `value` is elided (`...`): not checkable.
fn elided(json: &str) -> bool {
    json.contains("...") || json.contains('…')
}

fn documented_configs(skipped: &mut Vec<String>) -> Vec<Found> {
    let mut found = Vec::new();
    let mut not_configs_seen = BTreeMap::new();
    let mut pages: Vec<(String, Option<&str>)> = vec![("README.md".to_owned(), None)];
    for &(filter, page) in schemas::FILTERS.iter().chain(&MORE_PAGES) {
        pages.push((page.to_owned(), Some(filter)));
    }
    for (page, filter) in pages {
        let md = read(&page);
        for (info, line, body) in code_blocks(&md) {
            let origin = format!("{page}:{line}");
            match info.as_str() {
                "json" => {
                    if let Some((p, start)) = NOT_CONFIGS
                        .iter()
                        .find(|(p, start)| *p == page && body.trim_start().starts_with(start))
                    {
                        *not_configs_seen.entry((*p, *start)).or_insert(0) += 1;
                        skipped.push(format!("{origin} (not a configuration)"));
                        continue;
                    }
                    let filter = filter.unwrap_or_else(|| {
                        panic!("{origin}: a json block outside a filter's page")
                    });
                    found.push(Found {
                        origin,
                        filter: filter.to_owned(),
                        json: body,
                    });
                }
                "yaml" => {
                    // Doc snippets are fragments; the ones that do not parse show no plugin
                    // configuration we could check (asserted below by the minimum counts).
                    let Ok(doc) = serde_yaml::from_str::<Yaml>(&body) else {
                        assert!(
                            !body.contains("google.protobuf.StringValue"),
                            "{origin}: a wasm configuration snippet that is not valid YAML"
                        );
                        continue;
                    };
                    let mut here = Vec::new();
                    collect(&doc, &origin, &mut here);
                    for f in here {
                        if elided(&f.json) {
                            skipped.push(format!("{origin} (elided value)"));
                        } else {
                            found.push(f);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    for (p, start) in NOT_CONFIGS {
        assert_eq!(
            not_configs_seen.get(&(p, start)).copied(),
            Some(1),
            "NOT_CONFIGS entry {p} {start:?} must match exactly one json block"
        );
    }
    found
}

fn shipped_configs() -> Vec<Found> {
    let mut files = Vec::new();
    yaml_files(&paths::envoy_dir(), &mut files);
    yaml_files(&repo().join("examples"), &mut files);
    let mut found = Vec::new();
    for file in files {
        let origin = rel(&file);
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in yaml_docs(&text, &origin) {
            collect(&doc, &origin, &mut found);
        }
    }
    found
}

fn check(found: &[Found]) -> Vec<String> {
    let mut failures = Vec::new();
    for f in found {
        let doc = parse_config(&f.json);
        let errors = schema_errors(&validator(&f.filter), &doc);
        if !errors.is_empty() {
            failures.push(format!("{} ({}): schema: {errors:?}", f.origin, f.filter));
        }
        if let Err(e) = schemas::load(&f.filter, &f.json) {
            failures.push(format!("{} ({}): loader: {e}", f.origin, f.filter));
        }
    }
    failures
}

#[test]
fn every_shipped_plugin_configuration_passes_its_schema_and_the_loader() {
    let found = shipped_configs();
    for f in &found {
        println!("checked {} ({})", f.origin, f.filter);
    }
    let failures = check(&found);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The gateway is the module; the same chain as four filters has all four; each filter has
    // its own file.
    let in_file = |file: &str| -> BTreeSet<&str> {
        found
            .iter()
            .filter(|f| f.origin == file)
            .map(|f| f.filter.as_str())
            .collect()
    };
    assert_eq!(in_file(GATEWAY), ["mcp_gateway"].into_iter().collect());
    assert_eq!(in_file(FOUR_FILTERS), STANDALONE.into_iter().collect());
    for filter in STANDALONE {
        let own = format!("envoy/{filter}.yaml");
        assert!(
            found.iter().any(|f| f.origin == own && f.filter == filter),
            "{own} has no {filter} configuration"
        );
    }
}

#[test]
fn every_documented_plugin_configuration_passes_its_schema_and_the_loader() {
    let mut skipped = Vec::new();
    let found = documented_configs(&mut skipped);
    for f in &found {
        println!("checked {} ({})", f.origin, f.filter);
    }
    for s in &skipped {
        println!("skipped {s}");
    }
    let failures = check(&found);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Each filter's page shows at least one full configuration we checked.
    for (filter, page) in schemas::FILTERS {
        assert!(
            found
                .iter()
                .any(|f| f.filter == filter && f.origin.starts_with(page)),
            "{page}: no checked {filter} configuration"
        );
    }
    assert!(
        found.len() >= 8,
        "only {} documented configurations found",
        found.len()
    );
}

// ---------------------------------------------------------------------------------------------
// docker-compose
// ---------------------------------------------------------------------------------------------

fn compose() -> Yaml {
    serde_yaml::from_str(&read(COMPOSE)).unwrap()
}

fn service<'a>(c: &'a Yaml, name: &str) -> &'a Yaml {
    get(c, "services")
        .and_then(|s| get(s, name))
        .unwrap_or_else(|| panic!("{COMPOSE}: no service {name}"))
}

fn str_of<'a>(y: &'a Yaml, key: &str) -> Option<&'a str> {
    get(y, key).and_then(Yaml::as_str)
}

fn strings(y: Option<&Yaml>) -> Vec<String> {
    y.and_then(Yaml::as_sequence)
        .map(|s| {
            s.iter()
                .map(|v| match v {
                    Yaml::String(s) => s.clone(),
                    Yaml::Number(n) => n.to_string(),
                    other => panic!("{COMPOSE}: not a string: {other:?}"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `ENVOY_VERSION := 1.40.0` in the Makefile: the Envoy every test runs.
fn makefile_envoy_version() -> String {
    read("Makefile")
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(":=")?;
            (k.trim() == "ENVOY_VERSION").then(|| v.trim().to_owned())
        })
        .expect("ENVOY_VERSION in the Makefile")
}

/// A compose volume `SRC:TARGET[:ro]`, SRC resolved from the compose file's directory.
#[derive(Debug)]
struct Mount {
    host: PathBuf,
    target: String,
    read_only: bool,
}

fn mounts(svc: &Yaml) -> Vec<Mount> {
    let dir = repo().join(COMPOSE);
    let dir = dir.parent().unwrap();
    strings(get(svc, "volumes"))
        .iter()
        .map(|v| {
            let parts: Vec<&str> = v.split(':').collect();
            assert!(
                (2..=3).contains(&parts.len()),
                "{COMPOSE}: volume {v:?} is not SRC:TARGET[:ro]"
            );
            assert!(
                parts[0].starts_with('.'),
                "{COMPOSE}: volume {v:?} must be a path relative to the compose file"
            );
            let host = dir
                .join(parts[0])
                .canonicalize()
                .unwrap_or_else(|e| panic!("{COMPOSE}: volume {v:?}: {e}"));
            Mount {
                host,
                target: parts[1].to_owned(),
                read_only: parts.get(2) == Some(&"ro"),
            }
        })
        .collect()
}

/// The host path a container path resolves to through `mounts`.
fn host_path(mounts: &[Mount], container_path: &str) -> Option<PathBuf> {
    mounts.iter().find_map(|m| {
        let rest = container_path.strip_prefix(&m.target)?;
        let rest = rest.strip_prefix('/').or(rest.is_empty().then_some(""))?;
        Some(m.host.join(rest))
    })
}

/// The Envoy service's command: the argv after `envoy`, the `-c` path and `--config-yaml`.
struct EnvoyCmd {
    args: Vec<String>,
    config_path: String,
    config_yaml: Option<String>,
    working_dir: String,
}

fn envoy_cmd(c: &Yaml) -> EnvoyCmd {
    let envoy = service(c, "envoy");
    let argv = strings(get(envoy, "command"));
    assert_eq!(
        argv.first().map(String::as_str),
        Some("envoy"),
        "{COMPOSE}: the command must be a list starting with envoy"
    );
    let args = argv[1..].to_vec();
    let value_of = |names: &[&str]| {
        args.iter()
            .position(|a| names.contains(&a.as_str()))
            .map(|i| args.get(i + 1).cloned().expect("a flag without a value"))
    };
    let config_path = value_of(&["-c", "--config-path"]).expect("envoy -c <file>");
    let config_yaml = value_of(&["--config-yaml"]);
    let working_dir = str_of(envoy, "working_dir")
        .expect("envoy working_dir (the shipped file's wasm paths are relative)")
        .to_owned();
    EnvoyCmd {
        args,
        config_path,
        config_yaml,
        working_dir,
    }
}

fn join_container(dir: &str, p: &str) -> String {
    if p.starts_with('/') {
        p.to_owned()
    } else {
        format!("{}/{}", dir.trim_end_matches('/'), p)
    }
}

fn socket_ports(y: &Yaml, out: &mut Vec<(String, u16)>) {
    match y {
        Yaml::Mapping(m) => {
            if let Some(sa) = get(y, "socket_address") {
                let addr = str_of(sa, "address").unwrap_or("").to_owned();
                let port = get(sa, "port_value").and_then(Yaml::as_u64).unwrap_or(0);
                out.push((addr, u16::try_from(port).unwrap()));
            }
            for (k, v) in m {
                if k.as_str() != Some("socket_address") {
                    socket_ports(v, out);
                }
            }
        }
        Yaml::Sequence(s) => s.iter().for_each(|v| socket_ports(v, out)),
        _ => {}
    }
}

/// Container ports published by `svc` (`[IP:]HOST:CONTAINER`), with the host IP if any.
fn published(svc: &Yaml) -> BTreeMap<u16, Option<String>> {
    strings(get(svc, "ports"))
        .iter()
        .map(|p| {
            let parts: Vec<&str> = p.split(':').collect();
            let container: u16 = parts.last().unwrap().parse().unwrap();
            let ip = (parts.len() == 3).then(|| parts[0].to_owned());
            (container, ip)
        })
        .collect()
}

#[test]
fn compose_runs_the_tested_envoy_on_the_shipped_gateway_config_with_its_ports_and_upstreams() {
    let c = compose();

    // The official image, pinned to the Envoy every test runs.
    let version = makefile_envoy_version();
    let envoy = service(&c, "envoy");
    assert_eq!(
        str_of(envoy, "image"),
        Some(format!("envoyproxy/envoy:v{version}").as_str())
    );
    let out = Command::new(paths::envoy_bin().unwrap())
        .arg("--version")
        .output()
        .unwrap();
    let banner = String::from_utf8_lossy(&out.stdout);
    assert!(
        banner.contains(&format!("/{version}/")),
        "the tests' Envoy is not {version}: {banner}"
    );

    // dist/ and envoy/ of this repository, read-only; the command's file IS envoy/mcp-gateway.yaml.
    let ms = mounts(envoy);
    for m in &ms {
        assert!(m.read_only, "{COMPOSE}: mount {} must be :ro", m.target);
        assert!(m.host.is_dir(), "{}", m.host.display());
    }
    let hosts: BTreeSet<PathBuf> = ms.iter().map(|m| m.host.clone()).collect();
    assert!(hosts.contains(
        &paths::dist_dir()
            .canonicalize()
            .unwrap_or(paths::dist_dir())
    ));
    assert!(hosts.contains(&paths::envoy_dir().canonicalize().unwrap()));
    let cmd = envoy_cmd(&c);
    let cfg_in_container = join_container(&cmd.working_dir, &cmd.config_path);
    let cfg_on_host = host_path(&ms, &cfg_in_container)
        .unwrap_or_else(|| panic!("{cfg_in_container} is not inside a mount"));
    assert_eq!(
        cfg_on_host.canonicalize().unwrap(),
        repo().join(GATEWAY).canonicalize().unwrap(),
        "the compose Envoy must run the shipped {GATEWAY}"
    );
    // Every filter the gateway loads resolves, through the mounts, to the built dist/<name>.wasm.
    let gateway: Yaml = serde_yaml::from_str(&read(GATEWAY)).unwrap();
    let mut wasm = Vec::new();
    collect(&gateway, GATEWAY, &mut wasm);
    // Both listeners run the same chain (a YAML anchor): the one module.
    let loaded: BTreeSet<&str> = wasm.iter().map(|f| f.filter.as_str()).collect();
    assert_eq!(loaded, ["mcp_gateway"].into_iter().collect(), "{loaded:?}");
    let gateway_text = read(GATEWAY);
    let file = "dist/mcp_gateway.wasm";
    assert!(
        gateway_text.contains(file),
        "{GATEWAY} does not load {file}"
    );
    let host = host_path(&ms, &join_container(&cmd.working_dir, file))
        .unwrap_or_else(|| panic!("{file} is not inside a mount"));
    assert_eq!(
        host,
        paths::dist_dir()
            .canonicalize()
            .unwrap_or(paths::dist_dir())
            .join("mcp_gateway.wasm")
    );

    // One network namespace, owned by mcp-server, which publishes the ports.
    let owner_name = "mcp-server";
    let owner = service(&c, owner_name);
    let services = get(&c, "services").unwrap().as_mapping().unwrap();
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        if name != owner_name {
            assert_eq!(
                str_of(svc, "network_mode"),
                Some(format!("service:{owner_name}").as_str()),
                "{COMPOSE}: {name} must share {owner_name}'s network namespace"
            );
            assert!(
                get(svc, "ports").is_none(),
                "{name}: publish on {owner_name}"
            );
        }
    }
    let ports = published(owner);

    // Every listener of the shipped file is published; the admin port too, on this host only.
    let listeners = get(&gateway, "static_resources")
        .and_then(|s| get(s, "listeners"))
        .and_then(Yaml::as_sequence)
        .unwrap();
    for l in listeners {
        let mut sa = Vec::new();
        socket_ports(get(l, "address").unwrap(), &mut sa);
        let (addr, port) = &sa[0];
        assert!(
            addr == "0.0.0.0" || addr == "::",
            "{GATEWAY}: listener on {addr}: unreachable from a published port"
        );
        assert!(
            ports.contains_key(port),
            "{COMPOSE}: listener port {port} not published"
        );
    }
    // `--config-yaml` may only move the admin listener; it then decides the admin address.
    let admin_src: Yaml = match &cmd.config_yaml {
        Some(overlay) => {
            let o: Yaml = serde_yaml::from_str(overlay).unwrap();
            let keys: Vec<&str> = o
                .as_mapping()
                .unwrap()
                .keys()
                .map(|k| k.as_str().unwrap())
                .collect();
            assert_eq!(keys, ["admin"], "--config-yaml must only override admin");
            o
        }
        None => gateway.clone(),
    };
    let mut admin = Vec::new();
    socket_ports(get(&admin_src, "admin").unwrap(), &mut admin);
    let (admin_addr, admin_port) = &admin[0];
    assert_eq!(
        admin_addr, "0.0.0.0",
        "admin must listen beyond the container's loopback"
    );
    assert_eq!(
        ports.get(admin_port),
        Some(&Some("127.0.0.1".to_owned())),
        "{COMPOSE}: the admin port {admin_port} must be published on 127.0.0.1 only"
    );

    // Something in the namespace serves every loopback endpoint of every cluster.
    let mut served: BTreeMap<u16, String> = BTreeMap::new();
    for (name, svc) in services {
        let name = name.as_str().unwrap().to_owned();
        let image = str_of(svc, "image").unwrap_or("");
        if let Some(port) = get(svc, "environment")
            .and_then(|e| get(e, "PORT"))
            .and_then(|p| {
                p.as_str()
                    .map(str::to_owned)
                    .or_else(|| p.as_u64().map(|n| n.to_string()))
            })
        {
            served.insert(port.parse().unwrap(), name.clone());
        }
        if image.starts_with("openzipkin/zipkin:") {
            served.insert(9411, name);
        }
    }
    let clusters = get(&gateway, "static_resources")
        .and_then(|s| get(s, "clusters"))
        .and_then(Yaml::as_sequence)
        .unwrap();
    let mut upstreams = 0;
    for cl in clusters {
        let name = str_of(cl, "name").unwrap();
        let mut eps = Vec::new();
        socket_ports(cl, &mut eps);
        for (addr, port) in eps {
            if addr == "127.0.0.1" || addr == "localhost" || addr == "::1" {
                upstreams += 1;
                assert!(
                    served.contains_key(&port),
                    "{GATEWAY}: cluster {name} expects {addr}:{port}, which no compose service serves ({served:?})"
                );
            }
        }
    }
    assert!(upstreams >= 2, "mcp_upstream and zipkin");

    // The demo server is the server-everything version the peer tests pin.
    let pkg: Value = serde_json::from_str(&read("tests/peers/package.json")).unwrap();
    let pinned = pkg["dependencies"]["@modelcontextprotocol/server-everything"]
        .as_str()
        .unwrap();
    let server_cmd = strings(get(owner, "command")).join(" ");
    assert!(
        server_cmd.contains(&format!(
            "@modelcontextprotocol/server-everything@{pinned} streamableHttp"
        )),
        "{COMPOSE}: {server_cmd}"
    );
}

/// Lays out a directory as the Envoy container sees its filesystem: each mount's target is a
/// symlink to the host directory, nothing else exists. Returns the root.
fn container_root(ms: &[Mount]) -> tempfile::TempDir {
    let root = tempfile::Builder::new()
        .prefix("mcp-compose-root-")
        .tempdir()
        .unwrap();
    for m in ms {
        let target = root.path().join(m.target.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&m.host, &target).unwrap();
    }
    root
}

/// `envoy --mode validate` with the compose command's own arguments, in the container layout.
fn validate_in(root: &Path, cmd: &EnvoyCmd) -> (bool, String) {
    let cwd = root.join(cmd.working_dir.trim_start_matches('/'));
    std::fs::create_dir_all(&cwd).unwrap();
    let mut args = cmd.args.clone();
    // Absolute container paths (none today) would live under the fake root.
    for a in &mut args {
        if a.starts_with("/mcp/") {
            *a = root
                .join(a.trim_start_matches('/'))
                .to_string_lossy()
                .into_owned();
        }
    }
    let out = Command::new(paths::envoy_bin().unwrap())
        .arg("--mode")
        .arg("validate")
        .args(&args)
        .arg("--disable-hot-restart")
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), log)
}

#[test]
fn compose_envoy_command_passes_envoy_validate_in_the_container_layout() {
    for f in FILTER_NAMES {
        assert!(
            paths::dist_dir().join(format!("{f}.wasm")).is_file(),
            "dist/{f}.wasm missing: run `make build`"
        );
    }
    let c = compose();
    let cmd = envoy_cmd(&c);
    let ms = mounts(service(&c, "envoy"));

    let root = container_root(&ms);
    let (ok, log) = validate_in(root.path(), &cmd);
    assert!(
        ok,
        "envoy --mode validate {:?} failed:\n{}",
        cmd.args,
        tail(&log, 60)
    );
    assert!(
        log.contains("configuration") && log.contains("OK"),
        "{}",
        tail(&log, 20)
    );

    // The layout is what makes it pass: without the dist mount the filters do not load.
    let without_dist: Vec<Mount> = ms
        .into_iter()
        .filter(|m| !m.target.ends_with("/dist"))
        .collect();
    let root = container_root(&without_dist);
    let (ok, log) = validate_in(root.path(), &cmd);
    assert!(
        !ok,
        "validation passed without dist/ mounted:\n{}",
        tail(&log, 20)
    );
}
