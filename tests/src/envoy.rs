//! Rendering the user-facing `envoy/*.yaml` files for a test run, and running a real Envoy on them.
//!
//! Tests deliberately use the very files users copy, changed only structurally (ports, upstream
//! endpoints, absolute `.wasm` paths, plugin configuration), so a broken example config fails CI.

use crate::paths;
use anyhow::{anyhow, bail, Context, Result};
use serde_yaml::{Mapping, Value};
use std::fmt;
use std::fs;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound then released, so a race with other processes is possible).
pub fn free_port() -> u16 {
    if let Ok(port) = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
    {
        return port;
    }
    // Binding port 0 on loopback essentially never fails; fall back to a pseudo-random high port
    // rather than panicking.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    20_000 + u16::try_from(nanos % 20_000).unwrap_or(0)
}

/// One of the `envoy/*.yaml` files, loaded for rendering with test-specific changes.
#[derive(Clone)]
pub struct EnvoyConfig {
    name: String,
    doc: Value,
    errors: Vec<String>,
}

impl fmt::Debug for EnvoyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvoyConfig")
            .field("name", &self.name)
            .field("errors", &self.errors)
            .finish_non_exhaustive()
    }
}

impl EnvoyConfig {
    /// Loads `<repo>/envoy/<file_in_envoy_dir>`, e.g. `"mcp-gateway.yaml"`.
    pub fn load(file_in_envoy_dir: &str) -> Result<Self> {
        let path = paths::envoy_dir().join(file_in_envoy_dir);
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut cfg = Self::from_yaml(&text)?;
        cfg.name = file_in_envoy_dir.to_string();
        Ok(cfg)
    }

    /// Parses a configuration from YAML text (for configs that are not in `envoy/`).
    pub fn from_yaml(yaml: &str) -> Result<Self> {
        let doc: Value = serde_yaml::from_str(yaml).context("parsing Envoy YAML")?;
        Ok(Self {
            name: "<inline>".to_string(),
            doc,
            errors: Vec::new(),
        })
    }

    /// The file name this config was loaded from.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parsed document (before rendering).
    pub fn doc(&self) -> &Value {
        &self.doc
    }

    /// Replaces all endpoints of `cluster` by the single endpoint `addr`.
    pub fn upstream(self, cluster: &str, addr: SocketAddr) -> Self {
        self.upstreams(cluster, &[addr])
    }

    /// Replaces all endpoints of `cluster` by `addrs` (replicas), in this order.
    pub fn upstreams(mut self, cluster: &str, addrs: &[SocketAddr]) -> Self {
        let lb_endpoints: Vec<Value> = addrs
            .iter()
            .map(|a| map_of(&[("endpoint", endpoint_value(*a))]))
            .collect();
        let mut found = false;
        for c in seq_mut(&mut self.doc, &["static_resources", "clusters"]) {
            if c.get("name").and_then(Value::as_str) != Some(cluster) {
                continue;
            }
            found = true;
            let Some(la) = ensure_map(c, "load_assignment") else {
                continue;
            };
            la.insert("cluster_name".into(), cluster.into());
            la.insert(
                "endpoints".into(),
                Value::Sequence(vec![map_of(&[(
                    "lb_endpoints",
                    Value::Sequence(lb_endpoints.clone()),
                )])]),
            );
        }
        if !found {
            self.errors
                .push(format!("{}: no cluster named {cluster:?}", self.name));
        }
        self
    }

    /// Replaces the plugin configuration string (`config.configuration.value`) of the wasm filter
    /// whose `config.name` (or filter `name`) is `filter_name`.
    pub fn plugin_config(mut self, filter_name: &str, json: &str) -> Self {
        let mut found = false;
        for f in http_filters_mut(&mut self.doc) {
            let matches = f.get("name").and_then(Value::as_str) == Some(filter_name)
                || f.get("typed_config")
                    .and_then(|t| t.get("config"))
                    .and_then(|c| c.get("name"))
                    .and_then(Value::as_str)
                    == Some(filter_name);
            if !matches {
                continue;
            }
            let Some(config) = f
                .get_mut("typed_config")
                .and_then(|t| t.get_mut("config"))
                .filter(|c| c.is_mapping())
            else {
                continue;
            };
            let Some(configuration) = ensure_map(config, "configuration") else {
                continue;
            };
            configuration.insert(
                "@type".into(),
                "type.googleapis.com/google.protobuf.StringValue".into(),
            );
            configuration.insert("value".into(), json.into());
            found = true;
        }
        if !found {
            self.errors.push(format!(
                "{}: no wasm filter named {filter_name:?}",
                self.name
            ));
        }
        self
    }

    /// The first listener's HttpConnectionManager writes its access log to the file `path`, in
    /// `log_format` (the YAML of an Envoy `SubstitutionFormatString`: `json_format: ...` or
    /// `text_format_source: ...`), instead of any access log it had.
    pub fn file_access_log(mut self, path: &Path, log_format: &str) -> Result<Self> {
        let format: Value = serde_yaml::from_str(log_format).context("access log format")?;
        let mut typed = Mapping::new();
        typed.insert(
            "@type".into(),
            "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog".into(),
        );
        typed.insert("path".into(), path.display().to_string().into());
        typed.insert("log_format".into(), format);
        let mut entry = Mapping::new();
        entry.insert("name".into(), "envoy.access_loggers.file".into());
        entry.insert("typed_config".into(), Value::Mapping(typed));
        let hcm = seq_mut(&mut self.doc, &["static_resources", "listeners"])
            .into_iter()
            .next()
            .and_then(|l| l.get_mut("filter_chains"))
            .and_then(|c| c.get_mut(0))
            .and_then(|c| c.get_mut("filters"))
            .and_then(|f| f.get_mut(0))
            .and_then(|f| f.get_mut("typed_config"))
            .and_then(Value::as_mapping_mut)
            .ok_or_else(|| {
                anyhow!(
                    "{}: no HttpConnectionManager on the first listener",
                    self.name
                )
            })?;
        hcm.insert(
            "access_log".into(),
            Value::Sequence(vec![Value::Mapping(entry)]),
        );
        Ok(self)
    }

    /// Escape hatch: arbitrary edits of the parsed document.
    pub fn modify(mut self, f: impl FnOnce(&mut Value)) -> Self {
        f(&mut self.doc);
        self
    }

    /// The `.wasm` files this config loads, as rendered (absolute, under `<repo>/dist`), each once
    /// (a filter shared by several listeners is one file).
    pub fn wasm_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        collect_wasm(&self.doc, &mut out);
        let mut seen = std::collections::HashSet::new();
        out.retain(|p| seen.insert(p.clone()));
        out
    }

    /// The names of the listeners, in order (the first is the one [`Envoy::url`] talks to).
    pub fn listener_names(&self) -> Vec<String> {
        let mut doc = self.doc.clone();
        seq_mut(&mut doc, &["static_resources", "listeners"])
            .iter()
            .map(|l| {
                l.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    /// The port a listener is configured with in the file (e.g. `10443` for `mcp_tls`).
    pub fn shipped_port(&self, listener: &str) -> Option<u16> {
        let listeners = self.doc.get("static_resources")?.get("listeners")?;
        let l = listeners
            .as_sequence()?
            .iter()
            .find(|l| l.get("name").and_then(Value::as_str) == Some(listener))?;
        let port = l.get("address")?.get("socket_address")?.get("port_value")?;
        u16::try_from(port.as_u64()?).ok()
    }

    /// Renders the YAML Envoy runs: the first listener on `127.0.0.1:listen_port`, any further
    /// listener on a free port, admin on `127.0.0.1:admin_port`, every `filename: ….wasm`
    /// absolute under `<repo>/dist/`. See [`EnvoyConfig::render_ports`].
    pub fn render(&self, listen_port: u16, admin_port: u16) -> Result<String> {
        self.render_ports(&[listen_port], admin_port)
    }

    /// Renders with one port per listener, in listener order (listeners beyond `ports` get a
    /// free port). Every listener binds 127.0.0.1. A config whose TLS certificates live under
    /// `dev-certs/` (relative to the repository root, where Envoy runs) gets them generated
    /// first ([`paths::ensure_dev_certs`]).
    pub fn render_ports(&self, ports: &[u16], admin_port: u16) -> Result<String> {
        if !self.errors.is_empty() {
            bail!("invalid config edits: {}", self.errors.join("; "));
        }
        let mut doc = self.doc.clone();
        let listeners = seq_mut(&mut doc, &["static_resources", "listeners"]);
        if listeners.is_empty() {
            bail!("{}: no listener", self.name);
        }
        for (i, l) in listeners.into_iter().enumerate() {
            let port = ports.get(i).copied().unwrap_or_else(free_port);
            set_socket_address(l, port);
        }
        let admin = doc
            .get_mut("admin")
            .filter(|a| a.is_mapping())
            .ok_or_else(|| anyhow!("{}: no admin section", self.name))?;
        set_socket_address(admin, admin_port);
        if module_mode() {
            as_module(&mut doc)?;
        }
        absolutize_wasm(&mut doc, &paths::dist_dir());
        let text = serde_yaml::to_string(&doc).context("serializing rendered config")?;
        if text.contains(paths::DEV_CERTS_PREFIX) {
            paths::ensure_dev_certs()?;
        }
        Ok(text)
    }
}

fn endpoint_value(addr: SocketAddr) -> Value {
    map_of(&[(
        "address",
        map_of(&[(
            "socket_address",
            map_of(&[
                ("address", addr.ip().to_string().into()),
                ("port_value", u64::from(addr.port()).into()),
            ]),
        )]),
    )])
}

fn map_of(entries: &[(&str, Value)]) -> Value {
    let mut m = Mapping::new();
    for (k, v) in entries {
        m.insert((*k).into(), v.clone());
    }
    Value::Mapping(m)
}

/// Gets (creating if absent or not a mapping) the mapping at `key` of a mapping value.
fn ensure_map<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Mapping> {
    if !v.is_mapping() {
        *v = Value::Mapping(Mapping::new());
    }
    let slot = v
        .as_mapping_mut()?
        .entry(key.into())
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if !slot.is_mapping() {
        *slot = Value::Mapping(Mapping::new());
    }
    slot.as_mapping_mut()
}

/// The sequence at `path` (empty if absent).
fn seq_mut<'a>(doc: &'a mut Value, path: &[&str]) -> Vec<&'a mut Value> {
    let mut cur = Some(doc);
    for key in path {
        cur = cur.and_then(|v| v.get_mut(*key));
    }
    match cur {
        Some(Value::Sequence(s)) => s.iter_mut().collect(),
        _ => Vec::new(),
    }
}

/// Every HTTP filter entry of every HttpConnectionManager in every listener.
/// `MCP_UNDER_TEST=module`: every standalone filter of a rendered configuration runs as
/// `mcp_gateway` with that policy's section only (a chain of one), so the same suites and the
/// same assertions prove the module. `make integration` runs the policy suites both ways.
pub fn module_mode() -> bool {
    std::env::var("MCP_UNDER_TEST").is_ok_and(|v| v == "module")
}

/// The policies a standalone filter's `.wasm` carries, by file name.
const POLICY_OF_WASM: [(&str, &str); 4] = [
    ("mcp_tools.wasm", "tools"),
    ("mcp_scopes.wasm", "scopes"),
    ("mcp_pii.wasm", "pii"),
    ("mcp_telemetry.wasm", "telemetry"),
];

/// Rewrites each standalone MCP wasm filter into `mcp_gateway.wasm` with the filter's own keys
/// in its policy's section and the common keys at the top level.
fn as_module(doc: &mut Value) -> Result<()> {
    for f in http_filters_mut(doc) {
        let Some(config) = f.get_mut("typed_config").and_then(|t| t.get_mut("config")) else {
            continue;
        };
        let Some(file) = config
            .get("vm_config")
            .and_then(|v| v.get("code"))
            .and_then(|c| c.get("local"))
            .and_then(|l| l.get("filename"))
            .and_then(Value::as_str)
        else {
            continue;
        };
        let Some((_, policy)) = POLICY_OF_WASM.iter().find(|(w, _)| file.ends_with(w)) else {
            continue;
        };
        let policy = *policy;
        let own = config
            .get("configuration")
            .and_then(|c| c.get("value"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let own: serde_json::Value = if own.trim().is_empty() {
            serde_json::json!({})
        } else {
            serde_json::from_str(own).with_context(|| format!("{policy}: configuration"))?
        };
        let mut top = serde_json::Map::new();
        let mut section = serde_json::Map::new();
        if let serde_json::Value::Object(m) = own {
            for (k, v) in m {
                if mcp_core::config::COMMON_KEYS.contains(&k.as_str()) {
                    top.insert(k, v);
                } else {
                    section.insert(k, v);
                }
            }
        }
        top.insert(policy.to_string(), serde_json::Value::Object(section));
        let Value::Mapping(c) = config else { continue };
        c.insert("root_id".into(), "mcp_gateway".into());
        let mut configuration = Mapping::new();
        configuration.insert(
            "@type".into(),
            "type.googleapis.com/google.protobuf.StringValue".into(),
        );
        configuration.insert(
            "value".into(),
            serde_json::Value::Object(top).to_string().into(),
        );
        c.insert("configuration".into(), Value::Mapping(configuration));
        if let Some(Value::Mapping(vm)) = c.get_mut("vm_config") {
            // One VM per chain of one, as for the standalone filters.
            vm.insert("vm_id".into(), format!("mcp_gateway_{policy}").into());
            if let Some(Value::Mapping(local)) = vm.get_mut("code").and_then(|c| c.get_mut("local"))
            {
                local.insert("filename".into(), "dist/mcp_gateway.wasm".into());
            }
        }
    }
    Ok(())
}

fn http_filters_mut(doc: &mut Value) -> Vec<&mut Value> {
    let mut out = Vec::new();
    for l in seq_mut(doc, &["static_resources", "listeners"]) {
        let Some(Value::Sequence(chains)) = l.get_mut("filter_chains") else {
            continue;
        };
        for chain in chains {
            let Some(Value::Sequence(filters)) = chain.get_mut("filters") else {
                continue;
            };
            for nf in filters {
                if let Some(Value::Sequence(hf)) = nf
                    .get_mut("typed_config")
                    .and_then(|t| t.get_mut("http_filters"))
                {
                    out.extend(hf.iter_mut());
                }
            }
        }
    }
    out
}

fn set_socket_address(holder: &mut Value, port: u16) {
    let Some(address) = ensure_map(holder, "address") else {
        return;
    };
    let mut sa = Mapping::new();
    sa.insert("address".into(), "127.0.0.1".into());
    sa.insert("port_value".into(), u64::from(port).into());
    address.clear();
    address.insert("socket_address".into(), Value::Mapping(sa));
}

fn is_wasm_filename(k: &Value, v: &Value) -> bool {
    k.as_str() == Some("filename") && v.as_str().is_some_and(|s| s.ends_with(".wasm"))
}

fn absolutize_wasm(v: &mut Value, dist: &Path) {
    match v {
        Value::Mapping(m) => {
            for (k, val) in m.iter_mut() {
                if is_wasm_filename(k, val) {
                    let file = val
                        .as_str()
                        .and_then(|s| Path::new(s).file_name())
                        .map(|f| dist.join(f));
                    if let Some(file) = file {
                        *val = file.to_string_lossy().into_owned().into();
                    }
                } else {
                    absolutize_wasm(val, dist);
                }
            }
        }
        Value::Sequence(s) => s.iter_mut().for_each(|x| absolutize_wasm(x, dist)),
        Value::Tagged(t) => absolutize_wasm(&mut t.value, dist),
        _ => {}
    }
}

fn collect_wasm(v: &Value, out: &mut Vec<PathBuf>) {
    match v {
        Value::Mapping(m) => {
            for (k, val) in m {
                if is_wasm_filename(k, val) {
                    if let Some(f) = val.as_str().and_then(|s| Path::new(s).file_name()) {
                        out.push(paths::dist_dir().join(f));
                    }
                } else {
                    collect_wasm(val, out);
                }
            }
        }
        Value::Sequence(s) => s.iter().for_each(|x| collect_wasm(x, out)),
        Value::Tagged(t) => collect_wasm(&t.value, out),
        _ => {}
    }
}

/// How to run Envoy.
#[derive(Debug, Clone)]
pub struct EnvoyOptions {
    /// `--concurrency` (worker threads); 1 keeps tests deterministic.
    pub concurrency: u32,
    /// `--log-level`; default `$ENVOY_LOG_LEVEL` or `info`.
    pub log_level: String,
    /// Extra command-line arguments appended as given.
    pub extra_args: Vec<String>,
    /// Listener port; a free port when `None`.
    pub listen_port: Option<u16>,
    /// Admin port; a free port when `None`.
    pub admin_port: Option<u16>,
    /// How long to wait for admin `/ready` to answer 200.
    pub ready_timeout: Duration,
}

impl Default for EnvoyOptions {
    fn default() -> Self {
        Self {
            concurrency: 1,
            log_level: std::env::var("ENVOY_LOG_LEVEL")
                .ok()
                .filter(|l| !l.is_empty())
                .unwrap_or_else(|| "info".to_string()),
            extra_args: Vec::new(),
            listen_port: None,
            admin_port: None,
            ready_timeout: Duration::from_secs(60),
        }
    }
}

impl EnvoyOptions {
    /// Sets `--concurrency`.
    pub fn concurrency(mut self, n: u32) -> Self {
        self.concurrency = n;
        self
    }

    /// Sets `--log-level` (`trace`, `debug`, `info`, …).
    pub fn log_level(mut self, level: &str) -> Self {
        self.log_level = level.to_string();
        self
    }

    /// Appends one extra command-line argument.
    pub fn arg(mut self, a: &str) -> Self {
        self.extra_args.push(a.to_string());
        self
    }

    /// Uses fixed ports instead of free ones (for the demo binary).
    pub fn ports(mut self, listen: u16, admin: u16) -> Self {
        self.listen_port = Some(listen);
        self.admin_port = Some(admin);
        self
    }
}

/// A running Envoy process; killed on drop.
pub struct Envoy {
    /// Port of the first listener (on 127.0.0.1).
    pub port: u16,
    /// Every listener's name and port, in config order (the first is [`Envoy::port`]).
    pub listeners: Vec<(String, u16)>,
    /// Admin port (on 127.0.0.1).
    pub admin_port: u16,
    child: Child,
    dir: tempfile::TempDir,
    config_path: PathBuf,
}

impl fmt::Debug for Envoy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envoy")
            .field("port", &self.port)
            .field("admin_port", &self.admin_port)
            .field("pid", &self.child.id())
            .field("dir", &self.dir.path())
            .finish()
    }
}

const LOG_FILE: &str = "envoy.log";
const OUT_FILE: &str = "envoy.out";

impl Envoy {
    /// Starts Envoy on free ports with default options (concurrency 1).
    pub fn start(cfg: EnvoyConfig) -> Result<Envoy> {
        Self::start_with(cfg, EnvoyOptions::default())
    }

    /// Starts Envoy with explicit options and waits for admin `/ready`.
    pub fn start_with(cfg: EnvoyConfig, opts: EnvoyOptions) -> Result<Envoy> {
        // Free ports are only reserved until released, so a parallel test can grab one before
        // Envoy binds it; retry with fresh ports when that is why Envoy died.
        let mut last_err = None;
        for _ in 0..3 {
            match Self::start_once(&cfg, &opts) {
                Ok(e) => return Ok(e),
                Err(StartError::PortClash(e)) if opts.listen_port.is_none() => last_err = Some(e),
                Err(StartError::PortClash(e) | StartError::Other(e)) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("Envoy failed to start")))
    }

    fn start_once(cfg: &EnvoyConfig, opts: &EnvoyOptions) -> Result<Envoy, StartError> {
        let bin = paths::envoy_bin()?;
        let port = opts.listen_port.unwrap_or_else(free_port);
        let mut admin_port = opts.admin_port.unwrap_or_else(free_port);
        while admin_port == port {
            admin_port = free_port();
        }
        // Further listeners (e.g. TLS): their shipped port when the caller fixed the ports (the
        // demo), else free ones.
        let names = cfg.listener_names();
        let mut ports = vec![port];
        for name in names.iter().skip(1) {
            let shipped = opts
                .listen_port
                .and_then(|_| cfg.shipped_port(name))
                .filter(|p| *p != 0);
            let mut p = shipped.unwrap_or_else(free_port);
            while ports.contains(&p) || p == admin_port {
                p = free_port();
            }
            ports.push(p);
        }
        let yaml = cfg.render_ports(&ports, admin_port)?;
        let dir = tempfile::Builder::new()
            .prefix("mcp-envoy-")
            .tempdir()
            .context("creating temp dir")?;
        let config_path = dir.path().join("envoy.yaml");
        fs::write(&config_path, &yaml).context("writing rendered config")?;
        let out = fs::File::create(dir.path().join(OUT_FILE)).context("creating output file")?;
        let err = out.try_clone().context("cloning output file")?;
        let mut cmd = envoy_command(&bin, &config_path, port, opts);
        cmd.arg("--log-path")
            .arg(dir.path().join(LOG_FILE))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let mut envoy = Envoy {
            port,
            listeners: names.into_iter().zip(ports).collect(),
            admin_port,
            child,
            dir,
            config_path,
        };
        envoy.wait_ready(opts.ready_timeout)?;
        Ok(envoy)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), StartError> {
        let deadline = Instant::now() + timeout;
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_millis(500))
            .build();
        let url = format!("http://127.0.0.1:{}/ready", self.admin_port);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = self.log();
                let msg = format!("Envoy exited early ({status}); log:\n{}", tail(&log, 200));
                if log.contains("Address already in use") {
                    return Err(StartError::PortClash(anyhow!(msg)));
                }
                return Err(StartError::Other(anyhow!(msg)));
            }
            if let Ok(resp) = agent.get(&url).call() {
                if resp.status() == 200 {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(StartError::Other(anyhow!(
                    "Envoy not ready after {timeout:?}; log:\n{}",
                    tail(&self.log(), 200)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The listener address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The port of the listener named `name` (e.g. `"mcp_tls"`).
    pub fn listener_port(&self, name: &str) -> Option<u16> {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| *p)
    }

    /// GETs an admin path, e.g. `"/stats?filter=wasm"`, and returns the body.
    pub fn admin(&self, path: &str) -> Result<String> {
        let url = format!("http://127.0.0.1:{}{path}", self.admin_port);
        let resp = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .build()
            .get(&url)
            .call()
            .with_context(|| format!("GET {url}"))?;
        resp.into_string().context("reading admin response")
    }

    /// POSTs an admin path (e.g. `"/reset_counters"`).
    pub fn admin_post(&self, path: &str) -> Result<String> {
        let url = format!("http://127.0.0.1:{}{path}", self.admin_port);
        let resp = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .build()
            .post(&url)
            .call()
            .with_context(|| format!("POST {url}"))?;
        resp.into_string().context("reading admin response")
    }

    /// The value of one counter or gauge from `/stats` (exact name), if present.
    pub fn stat(&self, name: &str) -> Option<u64> {
        let stats = self
            .admin(&format!("/stats?filter={}", regex_exact(name)))
            .ok()?;
        parse_stat(&stats, name)
    }

    /// Envoy's log so far (the `--log-path` file, then anything printed to stdout/stderr).
    pub fn log(&self) -> String {
        let mut s = fs::read_to_string(self.dir.path().join(LOG_FILE)).unwrap_or_default();
        let out = fs::read_to_string(self.dir.path().join(OUT_FILE)).unwrap_or_default();
        if !out.is_empty() {
            s.push_str(&out);
        }
        s
    }

    /// Waits until Envoy's log contains `needle` (the log file is flushed every 100 ms).
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The Envoy process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Path of the rendered config this Envoy runs.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Blocks until Envoy exits (for the demo binary).
    pub fn wait(&mut self) -> Result<std::process::ExitStatus> {
        self.child.wait().context("waiting for Envoy")
    }
}

/// The Envoy command line for a rendered config (without `--log-path`: logs go to stderr).
///
/// `--base-id` is derived from the listener port so that parallel Envoys never share a
/// hot-restart shared-memory region, and hot restart is disabled so none is created at all.
pub fn envoy_command(
    bin: &Path,
    config_path: &Path,
    listen_port: u16,
    opts: &EnvoyOptions,
) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("-c")
        .arg(config_path)
        .arg("--concurrency")
        .arg(opts.concurrency.to_string())
        .arg("--log-level")
        .arg(&opts.log_level)
        .arg("--base-id")
        .arg(listen_port.to_string())
        // Without this a SIGKILLed Envoy leaves its hot-restart segment behind in /dev/shm.
        .arg("--disable-hot-restart")
        // The log file is otherwise flushed every 10 s, too late for a failing test to show it.
        .arg("--file-flush-interval-msec")
        .arg("100")
        .args(&opts.extra_args)
        .current_dir(paths::repo_root());
    die_with_parent(&mut cmd);
    cmd
}

/// Makes the kernel send SIGTERM to Envoy when the thread that started it dies, so an
/// interrupted test run, demo or benchmark (Ctrl-C, SIGKILL, a timeout) never leaves Envoys behind
/// holding ports. Drop still shuts Envoy down first in the normal case.
#[allow(unsafe_code)] // pre_exec runs between fork and exec; prctl is async-signal-safe.
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure only calls prctl(2), which is async-signal-safe and touches no memory
    // of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Graceful exit first so Envoy flushes its log before we print it.
            let _ = self.admin_post("/quitquitquit");
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A debugging aid (e.g. to read what a profiling build logged under `make bench`):
        // MCP_ENVOY_LOG_DIR=<dir> keeps a copy of every Envoy's log there.
        if let Some(keep) = std::env::var_os("MCP_ENVOY_LOG_DIR") {
            let name = format!("envoy-{}-{}.log", self.child.id(), self.admin_port);
            let _ = fs::create_dir_all(&keep);
            let _ = fs::write(std::path::Path::new(&keep).join(name), self.log());
        }
        if std::thread::panicking() {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "----- Envoy log (last 200 lines, {}) -----\n{}\n----- end of Envoy log -----",
                self.config_path.display(),
                tail(&self.log(), 200)
            );
        }
    }
}

enum StartError {
    PortClash(anyhow::Error),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for StartError {
    fn from(e: anyhow::Error) -> Self {
        StartError::Other(e)
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines.get(start..).unwrap_or_default().join("\n")
}

/// An anchored, escaped, URL-encoded regex matching exactly `name` (for `/stats?filter=`).
fn regex_exact(name: &str) -> String {
    let mut re = String::from("^");
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() && c != '_' {
            re.push('\\');
        }
        re.push(c);
    }
    re.push('$');
    let mut enc = String::new();
    for b in re.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.' {
            enc.push(char::from(b));
        } else {
            enc.push_str(&format!("%{b:02X}"));
        }
    }
    enc
}

/// Finds `name: <integer>` in `/stats` text output.
pub fn parse_stat(stats: &str, name: &str) -> Option<u64> {
    stats.lines().find_map(|line| {
        let (k, v) = line.split_once(": ")?;
        if k == name {
            v.trim().parse().ok()
        } else {
            None
        }
    })
}

/// Runs `envoy --mode validate` on a rendered config; the error carries Envoy's output.
pub fn validate_config(rendered_yaml: &str) -> Result<()> {
    let bin = paths::envoy_bin()?;
    if rendered_yaml.contains(paths::DEV_CERTS_PREFIX) {
        paths::ensure_dev_certs()?;
    }
    let dir = tempfile::Builder::new()
        .prefix("mcp-envoy-validate-")
        .tempdir()
        .context("creating temp dir")?;
    let path = dir.path().join("envoy.yaml");
    fs::write(&path, rendered_yaml).context("writing config")?;
    let out = Command::new(&bin)
        .arg("--mode")
        .arg("validate")
        .arg("-c")
        .arg(&path)
        .arg("--log-level")
        .arg("warn")
        .arg("--disable-hot-restart")
        .current_dir(paths::repo_root())
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if out.status.success() {
        return Ok(());
    }
    bail!(
        "envoy --mode validate failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(cfg: &EnvoyConfig) -> Value {
        serde_yaml::from_str(&cfg.render(11000, 11001).unwrap()).unwrap()
    }

    fn socket(v: &Value) -> (String, u64) {
        let sa = &v["address"]["socket_address"];
        (
            sa["address"].as_str().unwrap().to_string(),
            sa["port_value"].as_u64().unwrap(),
        )
    }

    #[test]
    fn render_binds_listener_and_admin_to_loopback_on_the_given_ports() {
        let doc = rendered(&EnvoyConfig::load("plain.yaml").unwrap());
        let listener = &doc["static_resources"]["listeners"][0];
        assert_eq!(listener["name"], "mcp");
        assert_eq!(socket(listener), ("127.0.0.1".to_string(), 11000));
        assert_eq!(socket(&doc["admin"]), ("127.0.0.1".to_string(), 11001));
    }

    #[test]
    fn upstream_replaces_every_endpoint_of_the_cluster() {
        let addr: SocketAddr = "127.0.0.1:4567".parse().unwrap();
        let doc = rendered(
            &EnvoyConfig::load("plain.yaml")
                .unwrap()
                .upstream("mcp_upstream", addr),
        );
        let eps = &doc["static_resources"]["clusters"][0]["load_assignment"]["endpoints"];
        assert_eq!(eps.as_sequence().unwrap().len(), 1);
        let lb = eps[0]["lb_endpoints"].as_sequence().unwrap();
        assert_eq!(lb.len(), 1);
        assert_eq!(socket(&lb[0]["endpoint"]), ("127.0.0.1".to_string(), 4567));
    }

    #[test]
    fn render_gives_every_listener_its_own_port_and_upstreams_lists_replicas() {
        let a: SocketAddr = "127.0.0.1:4001".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:4002".parse().unwrap();
        let cfg = EnvoyConfig::load("mcp-gateway.yaml")
            .unwrap()
            .upstreams("mcp_upstream", &[a, b]);
        assert_eq!(cfg.listener_names(), ["mcp", "mcp_tls"]);
        assert_eq!(cfg.shipped_port("mcp_tls"), Some(10443));
        let doc: Value =
            serde_yaml::from_str(&cfg.render_ports(&[11000, 11002], 11001).unwrap()).unwrap();
        let listeners = doc["static_resources"]["listeners"].as_sequence().unwrap();
        assert_eq!(socket(&listeners[0]).1, 11000);
        assert_eq!(socket(&listeners[1]).1, 11002);
        // The TLS listener got the same HTTP filters (the YAML alias is expanded).
        let filters = |i: usize| listeners[i]["filter_chains"][0]["filters"][0].clone();
        assert_eq!(filters(0), filters(1));
        let upstream = doc["static_resources"]["clusters"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "mcp_upstream")
            .unwrap()
            .clone();
        let lb = upstream["load_assignment"]["endpoints"][0]["lb_endpoints"]
            .as_sequence()
            .unwrap()
            .clone();
        assert_eq!(socket(&lb[0]["endpoint"]).1, 4001);
        assert_eq!(socket(&lb[1]["endpoint"]).1, 4002);
        // A config naming dev-certs/ gets them generated.
        assert!(paths::dev_certs_dir().join("server.key").is_file());
        // render() still works: further listeners get free ports.
        let doc: Value = serde_yaml::from_str(&cfg.render(11000, 11001).unwrap()).unwrap();
        let tls = socket(&doc["static_resources"]["listeners"][1]).1;
        assert!(tls != 0 && tls != 11000 && tls != 11001);
    }

    #[test]
    fn plugin_config_replaces_only_the_named_filter_configuration() {
        let cfg = EnvoyConfig::load("mcp-gateway.yaml")
            .unwrap()
            .plugin_config("mcp_tools", r#"{"allow":["echo"]}"#);
        let doc = rendered(&cfg);
        let filters = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            ["typed_config"]["http_filters"]
            .as_sequence()
            .unwrap()
            .clone();
        let value_of = |name: &str| {
            filters
                .iter()
                .find(|f| f["name"] == name)
                .map(|f| {
                    f["typed_config"]["config"]["configuration"]["value"]
                        .as_str()
                        .unwrap()
                        .trim()
                        .to_string()
                })
                .unwrap()
        };
        assert_eq!(value_of("mcp_tools"), r#"{"allow":["echo"]}"#);
        assert_eq!(value_of("mcp_scopes"), "{}");
        assert_eq!(value_of("mcp_pii"), "{}");
    }

    #[test]
    fn wasm_filenames_become_absolute_under_dist() {
        let cfg = EnvoyConfig::load("mcp-gateway.yaml").unwrap();
        let text = cfg.render(11000, 11001).unwrap();
        let dist = paths::dist_dir();
        for name in ["mcp_telemetry", "mcp_scopes", "mcp_tools", "mcp_pii"] {
            let abs = dist.join(format!("{name}.wasm"));
            assert!(
                text.contains(&*abs.to_string_lossy()),
                "{name} not absolutized"
            );
        }
        assert!(!text.contains("filename: dist/"));
        assert_eq!(cfg.wasm_files().len(), 4);
        assert!(cfg
            .wasm_files()
            .iter()
            .all(|p| p.is_absolute() && p.starts_with(&dist)));
    }

    #[test]
    fn edits_naming_missing_clusters_or_filters_fail_at_render() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let err = EnvoyConfig::load("plain.yaml")
            .unwrap()
            .upstream("nope", addr)
            .render(1, 2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no cluster named \"nope\""), "{err}");
        let err = EnvoyConfig::load("plain.yaml")
            .unwrap()
            .plugin_config("mcp_tools", "{}")
            .render(1, 2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no wasm filter named \"mcp_tools\""), "{err}");
    }

    #[test]
    fn modify_edits_the_document_before_rendering() {
        let cfg = EnvoyConfig::load("plain.yaml").unwrap().modify(|d| {
            d["static_resources"]["clusters"][0]["connect_timeout"] = "7s".into();
        });
        assert_eq!(
            rendered(&cfg)["static_resources"]["clusters"][0]["connect_timeout"],
            "7s"
        );
    }

    #[test]
    fn every_shipped_config_renders() {
        let mut n = 0;
        for entry in fs::read_dir(paths::envoy_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let name = path.file_name().unwrap().to_str().unwrap();
            let doc = rendered(&EnvoyConfig::load(name).unwrap());
            assert_eq!(socket(&doc["admin"]).1, 11001, "{name}");
            n += 1;
        }
        assert!(n >= 2, "expected the envoy/*.yaml files, found {n}");
    }

    #[test]
    fn stat_lines_are_parsed_by_exact_name() {
        let stats =
            "cluster.a.upstream_rq_total: 5\ncluster.a.upstream_rq_total_x: 9\nh: P0(nan,1)\n";
        assert_eq!(parse_stat(stats, "cluster.a.upstream_rq_total"), Some(5));
        assert_eq!(parse_stat(stats, "cluster.a"), None);
        assert_eq!(parse_stat(stats, "h"), None);
        assert_eq!(regex_exact("a.b_c"), "%5Ea%5C.b_c%24");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
