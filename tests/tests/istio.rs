//! `examples/istio/*.yaml` checked against the real Envoy: every manifest is parsed (all
//! documents), each EnvoyFilter's patches are applied the way istiod applies them (EXTENSION_CONFIG
//! resolved for the `config_discovery` HTTP filter, INSERT_FIRST / INSERT_BEFORE in `priority`
//! order), a RequestAuthentication becomes the `jwt_authn` filter istiod generates, the remote
//! `oci://` code becomes the built `dist/*.wasm` (what istio-agent does after pulling the image),
//! and the resulting HTTP filter chain is run by `envoy --mode validate` (which also runs each
//! plugin's `on_configure`) and, for the full chain, serves MCP requests. The unsupported
//! WasmPlugin is translated the way istiod translates it and shown to stall every POST.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use base64::Engine as _;
use hmac::{Hmac, Mac};
use mcp_integration::client::{self, ACCEPT_BOTH};
use mcp_integration::{paths, validate_config, Envoy, EnvoyConfig, ServerOptions, TestServer};
use serde::Deserialize as _;
use serde_json::{json, Value};
use sha2::Sha256;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const WASM: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const ROUTER: &str = "envoy.filters.http.router";
const JWT_AUTHN: &str = "envoy.filters.http.jwt_authn";
/// The manifests that make up one deployment (mcp-scopes.yaml is the alternative to the
/// jwt_authn variant).
const FULL_CHAIN: [&str; 5] = [
    "mcp-telemetry.yaml",
    "mcp-scopes-jwt-authn.yaml",
    "mcp-tools.yaml",
    "mcp-pii.yaml",
    "mcp-tool-ratelimit.yaml",
];
const HMAC_KEY: &[u8] = b"istio-example-test-key-of-32-bytes!!";

fn istio_dir() -> PathBuf {
    paths::repo_root().join("examples").join("istio")
}

/// Every document of a multi-document YAML file, as JSON values.
fn docs(rel: &str) -> Vec<Value> {
    let text = fs::read_to_string(istio_dir().join(rel)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_json::to_value(serde_yaml::Value::deserialize(d).unwrap()).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn manifests() -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(istio_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    out.sort();
    assert!(
        out.len() >= 6,
        "expected the Istio manifests, found {out:?}"
    );
    out
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The plugin configuration JSON of a Wasm `typed_config`.
fn plugin_json(typed_config: &Value) -> Value {
    let s = typed_config["config"]["configuration"]["value"]
        .as_str()
        .unwrap();
    serde_json::from_str(s).unwrap()
}

/// The `typed_config` of the HTTP filter `name` in `envoy/<file>`.
fn shipped_filter(file: &str, name: &str) -> Value {
    let doc = serde_json::to_value(EnvoyConfig::load(file).unwrap().doc()).unwrap();
    let filters = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["http_filters"]
        .as_array()
        .unwrap()
        .clone();
    filters
        .into_iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in envoy/{file}"))["typed_config"]
        .clone()
}

/// One HTTP_FILTER patch, with the Wasm config of a `config_discovery` filter resolved from the
/// EXTENSION_CONFIG patch of the same name.
#[derive(Debug, Clone)]
struct Patch {
    priority: i64,
    op: String,
    anchor: Option<String>,
    filter: Value,
}

fn patches(docs: &[Value]) -> Vec<Patch> {
    let mut out = Vec::new();
    for ef in of_kind(docs, "EnvoyFilter") {
        let patches = ef["spec"]["configPatches"].as_array().unwrap();
        let ext: Vec<&Value> = patches
            .iter()
            .filter(|p| p["applyTo"] == "EXTENSION_CONFIG")
            .map(|p| {
                assert_eq!(
                    p["patch"]["operation"], "ADD",
                    "EXTENSION_CONFIG is ADD only"
                );
                &p["patch"]["value"]
            })
            .collect();
        for p in patches.iter().filter(|p| p["applyTo"] == "HTTP_FILTER") {
            let mut filter = p["patch"]["value"].clone();
            if filter.get("config_discovery").is_some() {
                let name = filter["name"].as_str().unwrap().to_string();
                let ec = ext
                    .iter()
                    .find(|e| e["name"] == name.as_str())
                    .unwrap_or_else(|| panic!("no EXTENSION_CONFIG named {name}"));
                let types = &filter["config_discovery"]["type_urls"];
                assert_eq!(types[0], WASM, "{name}: type_urls");
                assert_eq!(
                    filter["config_discovery"]["config_source"]["ads"],
                    json!({})
                );
                filter = json!({"name": name, "typed_config": ec["typed_config"].clone()});
            }
            out.push(Patch {
                priority: ef["spec"]["priority"].as_i64().unwrap_or(0),
                op: p["patch"]["operation"].as_str().unwrap().to_string(),
                anchor: p["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"]
                    .as_str()
                    .map(str::to_string),
                filter,
            });
        }
    }
    out
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The `jwt_authn` filter istiod (1.21+) generates for one RequestAuthentication rule
/// (pilot/pkg/security/authn/policy_applier.go), with the JWK Set istiod would fetch from
/// `jwksUri` replaced by the test's HS256 key.
fn jwt_authn_from(ra: &Value) -> Value {
    let rules = ra["spec"]["jwtRules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "one issuer");
    let rule = &rules[0];
    let jwks = json!({"keys": [{"kty": "oct", "alg": "HS256", "k": b64(HMAC_KEY)}]});
    json!({
        "name": JWT_AUTHN,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"origins-0": {
                "issuer": rule["issuer"],
                "audiences": rule["audiences"],
                "forward": rule["forwardOriginalToken"].as_bool().unwrap_or(false),
                "payload_in_metadata": "payload",
                "normalize_payload_in_metadata": {"space_delimited_claims": ["permission", "scope"]},
                "local_jwks": {"inline_string": jwks.to_string()},
            }},
            "rules": [{"match": {"prefix": "/"}, "requires": {"requires_any": {"requirements": [
                {"provider_name": "origins-0"}, {"allow_missing": {}}
            ]}}}],
            "bypass_cors_preflight": true,
        }
    })
}

/// An HS256 token for the RequestAuthentication rule of mcp-scopes-jwt-authn.yaml.
fn token(claims: Value) -> String {
    let ra = &of_kind(&docs("mcp-scopes-jwt-authn.yaml"), "RequestAuthentication")[0].clone();
    let rule = &ra["spec"]["jwtRules"][0];
    let mut payload =
        json!({"iss": rule["issuer"], "aud": rule["audiences"][0], "exp": 4_102_444_800u64});
    for (k, v) in claims.as_object().unwrap() {
        payload[k] = v.clone();
    }
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(payload.to_string().as_bytes())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(HMAC_KEY).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

/// The sidecar's HTTP filter chain after istiod applies the manifests: Istio's own filters
/// (jwt_authn when a RequestAuthentication exists, the router), then every patch in `priority`
/// order, each EnvoyFilter's patches in their order.
fn chain(files: &[&str]) -> Vec<Value> {
    let mut filters = vec![json!({"name": ROUTER, "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})];
    let mut all = Vec::new();
    for f in files {
        let d = docs(f);
        for ra in of_kind(&d, "RequestAuthentication") {
            filters.insert(0, jwt_authn_from(ra));
        }
        all.extend(patches(&d));
    }
    all.sort_by_key(|p| p.priority); // stable: file order within a priority
    for p in all {
        let filter = with_local_code(p.filter);
        match p.op.as_str() {
            "INSERT_FIRST" => filters.insert(0, filter),
            "INSERT_BEFORE" | "INSERT_AFTER" => {
                let anchor = p
                    .anchor
                    .as_deref()
                    .expect("INSERT_BEFORE/AFTER needs a subFilter");
                let i = filters
                    .iter()
                    .position(|f| f["name"] == anchor)
                    .unwrap_or_else(|| panic!("anchor {anchor} not in the chain"));
                filters.insert(if p.op == "INSERT_BEFORE" { i } else { i + 1 }, filter);
            }
            other => panic!("unsupported operation {other}"),
        }
    }
    filters
}

/// What istio-agent does after pulling the image: remote code becomes a local file
/// (here the built `dist/<root_id>.wasm`).
fn with_local_code(mut filter: Value) -> Value {
    if filter["typed_config"]["@type"] == WASM {
        let config = &mut filter["typed_config"]["config"];
        let root_id = config["root_id"].as_str().unwrap().to_string();
        config["vm_config"]["code"] =
            json!({"local": {"filename": format!("dist/{root_id}.wasm")}});
    }
    filter
}

/// envoy/plain.yaml with `filters` as its HTTP filter chain and a cluster standing in for the
/// mesh cluster of the IdP that mcp-scopes.yaml names.
fn bootstrap(filters: Vec<Value>) -> EnvoyConfig {
    let filters = serde_yaml::to_value(&filters).unwrap();
    let idp = serde_yaml::to_value(json!({
        "name": "outbound|443||idp.example.com", "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "outbound|443||idp.example.com", "endpoints": [
            {"lb_endpoints": [{"endpoint": {"address": {"socket_address":
                {"address": "127.0.0.1", "port_value": 9}}}}]}]}
    }))
    .unwrap();
    EnvoyConfig::load("plain.yaml").unwrap().modify(move |d| {
        d["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            ["http_filters"] = filters;
        d["static_resources"]["clusters"]
            .as_sequence_mut()
            .unwrap()
            .push(idp);
    })
}

fn validate(cfg: &EnvoyConfig, what: &str) {
    let rendered = cfg.render(1, 2).unwrap();
    if let Err(e) = validate_config(&rendered) {
        panic!("{what}: {e:#}\n--- rendered config ---\n{rendered}");
    }
}

#[test]
fn every_manifest_parses_and_every_wasm_filter_is_inserted_with_stop_iteration() {
    let version = env!("CARGO_PKG_VERSION");
    let mut wasm_filters = 0;
    for file in manifests() {
        let d = docs(&file);
        assert!(!d.is_empty(), "{file}: no documents");
        for doc in &d {
            assert!(
                doc["apiVersion"].is_string() && doc["kind"].is_string(),
                "{file}"
            );
            assert_eq!(doc["metadata"]["namespace"], "mcp", "{file}");
        }
        for p in patches(&d) {
            let tc = &p.filter["typed_config"];
            if tc["@type"] != WASM {
                continue;
            }
            wasm_filters += 1;
            let c = &tc["config"];
            let name = p.filter["name"].as_str().unwrap();
            assert_eq!(c["allow_on_headers_stop_iteration"], true, "{file}: {name}");
            assert_eq!(c["root_id"], name, "{file}");
            assert_eq!(c["vm_config"]["vm_id"], name, "{file}");
            assert_eq!(c["vm_config"]["runtime"], "envoy.wasm.runtime.v8", "{file}");
            assert_eq!(c["failure_policy"], "FAIL_CLOSED", "{file}");
            let uri = c["vm_config"]["code"]["remote"]["http_uri"]["uri"]
                .as_str()
                .unwrap();
            // The image `make oci` tags with the workspace version.
            assert!(uri.starts_with("oci://"), "{file}: {uri}");
            assert!(
                uri.ends_with(&format!("/{name}:{version}")),
                "{file}: {uri}"
            );
            assert!(p.op == "INSERT_FIRST" || p.anchor.as_deref() == Some(ROUTER));
        }
    }
    assert_eq!(
        wasm_filters, 6,
        "four filters (mcp_scopes in two variants) and the module"
    );

    // The plugin configurations are the shipped envoy/*.yaml ones (scopes: same rules).
    for (file, envoy_file, name) in [
        ("mcp-tools.yaml", "mcp_tools.yaml", "mcp_tools"),
        ("mcp-pii.yaml", "mcp_pii.yaml", "mcp_pii"),
        ("mcp-telemetry.yaml", "mcp_telemetry.yaml", "mcp_telemetry"),
        ("mcp-gateway.yaml", "mcp-gateway.yaml", "mcp_gateway"),
    ] {
        let p = patches(&docs(file));
        assert_eq!(
            plugin_json(&p[0].filter["typed_config"]),
            plugin_json(&shipped_filter(envoy_file, name)),
            "{file} drifted from envoy/{envoy_file}"
        );
    }
    let shipped_scopes = plugin_json(&shipped_filter("mcp_scopes.yaml", "mcp_scopes"));
    for file in ["mcp-scopes.yaml", "mcp-scopes-jwt-authn.yaml"] {
        let cfg = plugin_json(&patches(&docs(file))[0].filter["typed_config"]);
        for key in [
            "rules",
            "unmatched",
            "hide_unauthorized_tools",
            "strip_authorization",
        ] {
            assert_eq!(cfg[key], shipped_scopes[key], "{file}: {key}");
        }
    }
    // Istio's jwt_authn stores the payload under "payload" (filters.EnvoyJwtFilterPayload).
    let jwt = plugin_json(&patches(&docs("mcp-scopes-jwt-authn.yaml"))[0].filter["typed_config"]);
    assert_eq!(jwt["jwt_authn"]["metadata_key"], "payload");
    // The rate limit is the one validated in envoy/mcp_telemetry.yaml.
    assert_eq!(
        patches(&docs("mcp-tool-ratelimit.yaml"))[0].filter["typed_config"],
        shipped_filter("mcp_telemetry.yaml", "envoy.filters.http.local_ratelimit")
    );
}

#[test]
fn each_manifest_alone_validates_with_the_real_envoy() {
    let t0 = Instant::now();
    for file in manifests() {
        let filters = chain(&[&file]);
        assert!(filters.len() >= 2, "{file}: nothing inserted");
        validate(&bootstrap(filters), &file);
    }
    eprintln!(
        "{} manifests validated in {:?}",
        manifests().len(),
        t0.elapsed()
    );
}

fn post(e: &Envoy, id: u64, method: &str, params: Value, bearer: Option<&str>) -> client::Resp {
    let body = client::rpc_request(id, method, params).to_string();
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let mut h = vec![
        ("content-type", "application/json"),
        ("accept", ACCEPT_BOTH),
    ];
    if let Some(a) = &auth {
        h.push(("authorization", a));
    }
    client::request("POST", &e.url("/mcp"), &h, Some(body.as_bytes())).unwrap()
}

#[test]
fn the_full_istio_chain_is_ordered_as_documented_and_serves_mcp() {
    let t0 = Instant::now();
    let filters = chain(&FULL_CHAIN);
    let names: Vec<&str> = filters
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "mcp_telemetry",
            JWT_AUTHN,
            "mcp_scopes",
            "mcp_tools",
            "mcp_pii",
            "envoy.filters.http.local_ratelimit",
            ROUTER
        ]
    );
    let cfg = bootstrap(filters);
    validate(&cfg, "full chain");

    let server = TestServer::start(ServerOptions::json().require_session(false)).unwrap();
    let e = Envoy::start(cfg.upstream("mcp_upstream", server.addr())).unwrap();

    // No token: jwt_authn lets it through (allow_missing), mcp_scopes answers the MCP challenge.
    let r = post(&e, 1, "tools/list", json!({}), None);
    assert_eq!(r.status, 401, "{}", r.text());
    let www = r.header("www-authenticate").unwrap_or_default().to_string();
    assert!(
        www.contains(
            "resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
        ),
        "{www}"
    );

    // A verified token whose `scope` string Istio splits into a list: tools/list hides what the
    // caller may not call (mcp_scopes: delete_repo needs repo:admin; mcp_tools: admin_* denied).
    let t = token(json!({"sub": "alice", "scope": "mcp:tools"}));
    let r = post(&e, 2, "tools/list", json!({}), Some(&t));
    assert_eq!(r.status, 200, "{}", r.text());
    let listed: Vec<String> = r.json().unwrap()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert!(listed.contains(&"echo".to_string()), "{listed:?}");
    assert!(
        !listed
            .iter()
            .any(|n| n == "delete_repo" || n == "admin_reset"),
        "{listed:?}"
    );

    // A forged token is refused by jwt_authn itself.
    let forged = format!("{}x", &t[..t.len() - 1]);
    assert_eq!(
        post(&e, 3, "tools/list", json!({}), Some(&forged)).status,
        401
    );

    // The per-tool rate limit on the header mcp_telemetry set: 3 deploy_service calls a minute.
    let deploy = json!({"name": "deploy_service", "arguments": {"service": "web"}});
    for id in 10..13 {
        let r = post(&e, id, "tools/call", deploy.clone(), Some(&t));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let limited = post(&e, 13, "tools/call", deploy, Some(&t));
    assert_eq!(limited.status, 429, "{}", limited.text());
    let echo = json!({"name": "echo", "arguments": {"text": "mail bob@example.org"}});
    let r = post(&e, 14, "tools/call", echo, Some(&t));
    assert_eq!(r.status, 200, "{}", r.text());

    assert_eq!(
        server.tool_calls(),
        ["deploy_service"; 3]
            .iter()
            .chain(&["echo"])
            .copied()
            .collect::<Vec<_>>()
    );
    // mcp_pii scrubbed the argument before it reached the server; jwt_authn dropped the token.
    let last = server.record().into_iter().last().unwrap();
    assert!(
        last.body_text().contains("[REDACTED:email]"),
        "{}",
        last.body_text()
    );
    assert_eq!(last.header("authorization"), None);
    eprintln!("full Istio chain checked in {:?}", t0.elapsed());
}

/// The Wasm filter istiod (1.27/1.28, pilot/pkg/model/extensions.go) builds from a WasmPlugin:
/// name `<ns>.<name>`, root_id = pluginName, pluginConfig as JSON, failStrategy mapped, V8, code
/// fetched by istio-agent — and no `allow_on_headers_stop_iteration`, which the API lacks.
fn from_wasm_plugin(wp: &Value) -> Value {
    let spec = &wp["spec"];
    let name = format!(
        "{}.{}",
        wp["metadata"]["namespace"].as_str().unwrap(),
        wp["metadata"]["name"].as_str().unwrap()
    );
    let root_id = spec["pluginName"].as_str().unwrap();
    let failure_policy = match spec["failStrategy"].as_str().unwrap_or("FAIL_CLOSE") {
        "FAIL_OPEN" => "FAIL_OPEN",
        "FAIL_RELOAD" => "FAIL_RELOAD",
        _ => "FAIL_CLOSED",
    };
    json!({"name": name, "typed_config": {"@type": WASM, "config": {
        "name": name,
        "root_id": root_id,
        "failure_policy": failure_policy,
        "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                          "value": spec["pluginConfig"].to_string()},
        "vm_config": {"runtime": "envoy.wasm.runtime.v8",
                      "code": {"local": {"filename": format!("dist/{root_id}.wasm")}}},
    }}})
}

#[test]
fn a_wasm_plugin_validates_but_stalls_every_post_without_stop_iteration() {
    let t0 = Instant::now();
    let d = docs("unsupported/wasmplugin-mcp-tools.yaml");
    let wp = of_kind(&d, "WasmPlugin")[0];
    assert!(
        !serde_json::to_string(&wp["spec"])
            .unwrap()
            .contains("stop_iteration"),
        "the WasmPlugin API has no such field"
    );
    let filter = from_wasm_plugin(wp);
    let router = chain(&[]).remove(0);
    let cfg = bootstrap(vec![filter.clone(), router.clone()]);
    // Envoy accepts the configuration: nothing warns the operator...
    validate(&cfg, "WasmPlugin translation");

    let server = TestServer::start(ServerOptions::json().require_session(false)).unwrap();
    let e = Envoy::start(cfg.upstream("mcp_upstream", server.addr())).unwrap();
    // ...but the filter holds the headers and Envoy never hands it the body: the POST hangs.
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(3))
        .build();
    let body = client::rpc_request(1, "tools/list", json!({})).to_string();
    let started = Instant::now();
    let res = agent
        .post(&e.url("/mcp"))
        .set("content-type", "application/json")
        .set("accept", ACCEPT_BOTH)
        .send_string(&body);
    assert!(
        res.is_err(),
        "expected a stall, got {:?}",
        res.map(|r| r.status())
    );
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert_eq!(
        server.received("tools/list"),
        0,
        "the request never left Envoy"
    );
    drop(e);

    // The same filter with the field the EnvoyFilter manifests set answers at once.
    let mut fixed = filter;
    fixed["typed_config"]["config"]["allow_on_headers_stop_iteration"] = json!(true);
    let e = Envoy::start(bootstrap(vec![fixed, router]).upstream("mcp_upstream", server.addr()))
        .unwrap();
    let r = post(&e, 2, "tools/list", json!({}), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(server.received("tools/list"), 1);
    eprintln!("WasmPlugin stall shown in {:?}", t0.elapsed());
}
