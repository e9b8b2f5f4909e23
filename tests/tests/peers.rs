//! Peer tests: real third-party MCP implementations talking through Envoy with the filter chain.
//!
//! * The official conformance suite (`@modelcontextprotocol/conformance`) runs against the
//!   official conformance fixture servers it is written for, directly and through
//!   `envoy/mcp-gateway.yaml`: 0.1.16 against the v0.1.16 fixture (every scenario passes both
//!   ways), 0.2.0-alpha.12 (`--requirements 2026-07-28` and `--suite all`) against the 2026-07-28
//!   fixture. The scenarios and checks that pass must be the same both ways, except the
//!   differences the MCP specification decides, each listed with its spec text
//!   ([`KNOWN_2026_07_28`]). The fixtures come from `../shared/peers` beside the repository.
//! * The same comparison against `@modelcontextprotocol/server-everything` (most scenarios fail
//!   there even directly: it lacks the fixture's `test_*` tools; only the comparison matters).
//! * The PyPI `mcp` client, 1.x and 2.x, lists and calls tools through Envoy against the in-repo
//!   test server and against server-everything.
//! * `mcp_pii`: a PyPI `mcp` FastMCP server (`tests/peers/pii_server.py`, 1.x `FastMCP` and 2.x
//!   `MCPServer`) returns fake PII in text, structuredContent, progress and log notifications;
//!   the same SDK's client sees it redacted through `envoy/mcp_pii.yaml`, its outputSchema
//!   validation still passes, and an email in an argument never reaches the server.
//! * Tool pinning: a PyPI `mcp` FastMCP server (`tests/peers/pinning_server.py`, 1.x `FastMCP`
//!   and 2.x `MCPServer`) rug-pulls one tool between two listings and hides text in Unicode tag
//!   characters in another; through `envoy/mcp_tools.yaml` with pins (computed with PyPI
//!   `rfc8785`) the same SDK's client (1.x: legacy sessions, 2.x: stateless 2026-07-28) sees and
//!   calls only approved definitions, and the server never receives a refused call.
//! * `mcp-pin` (crates/mcp-pin) pins every tool server-everything lists, and what each era of the
//!   2026-07-28 fixture lists; its `diff` against those pins is clean.
//!
//! Node 22, the npm packages, the fixture servers and the Python venvs come from `make peers-deps`
//! (`mk/peers.mk`); a missing piece fails the test with that hint rather than skipping it.

// Test helpers fail the test by panicking; clippy's allow-*-in-tests covers only `#[test]` fns.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mcp_integration::{
    free_port, paths, Envoy, EnvoyConfig, ResponseMode, ServerOptions, TestServer,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The Envoy configuration every peer test runs: the full filter chain as users deploy it.
const GATEWAY_CONFIG: &str = "mcp-gateway.yaml";
/// The cluster in [`GATEWAY_CONFIG`] that points at the MCP server.
const UPSTREAM_CLUSTER: &str = "mcp_upstream";
/// Attempts per scenario before a direct/Envoy difference counts: some scenarios race the
/// client's GET listen stream against the POST they are testing, on either path.
const CONFORMANCE_ATTEMPTS: usize = 3;
/// More differing scenarios than this after the first full run are not retried.
const MAX_RETRIED_SCENARIOS: usize = 4;
/// Bounds on the child processes, so a gateway that holds a stream open fails the test instead of
/// hanging CI. A full suite run takes about 1 s, a client run about 1 s.
const CONFORMANCE_TIMEOUT: Duration = Duration::from_secs(180);
/// Above mcp_client.py's own overall timeout (90 s), which reports the stuck step.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
/// Pinned versions (mk/peers.mk, tests/peers/requirements-mcp*.txt); asserted so a drifted venv is
/// noticed instead of silently testing another client.
const MCP1_VERSION: &str = "1.30.0";
const MCP2_VERSION: &str = "2.3.0";

// ---------------------------------------------------------------------------------------------
// Locating the installed peers

#[derive(Debug)]
struct PeerDeps {
    node: PathBuf,
    conformance_js: PathBuf,
    everything_js: PathBuf,
    python_mcp1: PathBuf,
    python_mcp2: PathBuf,
    client_script: PathBuf,
}

/// Where `make peers-deps` puts every peer dependency.
fn peer_paths() -> PeerDeps {
    let root = paths::repo_root();
    let modules = root.join("tests/peers/node_modules/@modelcontextprotocol");
    PeerDeps {
        node: root.join(".tools/node22/bin/node"),
        conformance_js: modules.join("conformance/dist/index.js"),
        everything_js: modules.join("server-everything/dist/index.js"),
        python_mcp1: root.join(".venv-mcp1/bin/python"),
        python_mcp2: root.join(".venv-mcp2/bin/python"),
        client_script: root.join("tests/peers/mcp_client.py"),
    }
}

/// Fails the test (with the `make peers-deps` hint) when any of `needed` is missing.
fn require(needed: &[&Path]) {
    let missing: Vec<String> = needed
        .iter()
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "peer test dependencies missing: run `make peers-deps` (mk/peers.mk) first.\nmissing: {}",
        missing.join(", ")
    );
}

fn peer_deps() -> PeerDeps {
    let deps = peer_paths();
    require(&[
        &deps.node,
        &deps.conformance_js,
        &deps.everything_js,
        &deps.python_mcp1,
        &deps.python_mcp2,
        &deps.client_script,
    ]);
    deps
}

fn start_gateway(upstream: SocketAddr) -> Envoy {
    let cfg = EnvoyConfig::load(GATEWAY_CONFIG)
        .expect("load gateway config")
        .upstream(UPSTREAM_CLUSTER, upstream);
    let loads_wasm = !cfg.wasm_files().is_empty();
    let envoy = Envoy::start(cfg).expect("start Envoy");
    // Guards against comparing plain Envoy with plain Envoy by mistake: the chain must be live.
    if loads_wasm {
        let vms = envoy.stat("wasm.envoy.wasm.runtime.v8.active").unwrap_or(0);
        assert!(vms > 0, "{GATEWAY_CONFIG} started no wasm VM");
    }
    envoy
}

/// Conformance needs a `localhost` URL: its DNS-rebinding scenario derives the valid Host from it.
fn localhost_mcp_url(port: u16) -> String {
    format!("http://localhost:{port}/mcp")
}

/// Runs `cmd` to completion, killing it after `timeout`. Output goes through files rather than
/// pipes, so a chatty child cannot block on a full pipe while we poll.
fn output_within(cmd: &mut Command, timeout: Duration) -> Output {
    let dir = tempfile::Builder::new()
        .prefix("mcp-peer-run-")
        .tempdir()
        .expect("temp dir");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = cmd
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                fs::read_to_string(&out_path).unwrap_or_default(),
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: fs::read(&out_path).unwrap_or_default(),
        stderr: fs::read(&err_path).unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------------------------
// server-everything, run as a child process for the duration of a test

/// A peer MCP server run as a child process for one test, on a free port, with its output in a
/// temp dir; killed on drop (its output printed when the test failed).
struct PeerProcess {
    name: &'static str,
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl PeerProcess {
    const LOG: &'static str = "output.log";

    /// Spawns `command(port, dir)` (stdio to the log) and waits until the port accepts
    /// connections. A free port is only free until someone binds it: when the output contains
    /// `in_use`, it retries on another port.
    fn start(name: &'static str, in_use: &str, command: impl Fn(u16, &Path) -> Command) -> Self {
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let dir = tempfile::Builder::new()
                .prefix("mcp-peer-")
                .tempdir()
                .expect("temp dir");
            let log = File::create(dir.path().join(Self::LOG)).expect("log file");
            let mut cmd = command(port, dir.path());
            // The temp dir unless the command runs where it must (a fixture beside its modules).
            if cmd.get_current_dir().is_none() {
                cmd.current_dir(dir.path());
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
            let mut peer = PeerProcess {
                name,
                child,
                port,
                dir,
            };
            match peer.wait_listening(Duration::from_secs(30)) {
                Ok(()) => return peer,
                Err(log) => last_log = log,
            }
            if !last_log.contains(in_use) {
                break;
            }
        }
        panic!("{name} did not start; its output:\n{last_log}");
    }

    /// Ok once the port accepts connections; Err(log) if the process died or never listened.
    fn wait_listening(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}:\n{}", self.log()));
            }
            if TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("not listening after {timeout:?}:\n{}", self.log()))
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.file(Self::LOG)).unwrap_or_default()
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines
                .get(lines.len().saturating_sub(40)..)
                .unwrap_or_default();
            eprintln!(
                "----- {} output (last 40 lines) -----\n{}\n----- end -----",
                self.name,
                tail.join("\n")
            );
        }
    }
}

/// `@modelcontextprotocol/server-everything` in `streamableHttp` mode.
struct EverythingServer(PeerProcess);

impl EverythingServer {
    fn start(deps: &PeerDeps) -> Self {
        EverythingServer(PeerProcess::start(
            "server-everything",
            "EADDRINUSE",
            |port, _dir| {
                let mut c = Command::new(&deps.node);
                c.arg(&deps.everything_js)
                    .arg("streamableHttp")
                    .env("PORT", port.to_string());
                c
            },
        ))
    }

    fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    fn url(&self) -> String {
        localhost_mcp_url(self.0.port)
    }
}

// ---------------------------------------------------------------------------------------------
// The official conformance fixture servers

/// Where `make peers-deps` installs the fixture servers (copied from `../shared/peers`).
const FIXTURES_DIR: &str = ".tools/fixtures";
/// `examples/servers/typescript` of the conformance repository at tag v0.1.16.
const FIXTURE_V0_1_16: &str = "conformance-fixture-v0.1.16";
/// `examples/servers/typescript` at commit c321dd3 (0.2.0-alpha.11): both eras, 2026-07-28 stateless.
const FIXTURE_2026_07_28: &str = "conformance-fixture-2026-07-28";

/// An official conformance fixture server: the reference server the suite's server scenarios
/// are written against (`test_*` tools, resources and prompts). Not on npm: `make peers-deps`
/// copies it from `../shared/peers/<name>` beside the repository and runs `npm ci` in the copy.
struct FixtureServer(PeerProcess);

impl FixtureServer {
    fn start(deps: &PeerDeps, name: &'static str) -> Self {
        let dir = paths::repo_root().join(FIXTURES_DIR).join(name);
        assert!(
            dir.join(".peers-installed").is_file() && dir.join("everything-server.ts").is_file(),
            "conformance fixture {name} is not installed in {}: run `make peers-deps` (it copies \
             ../shared/peers/{name} and runs npm ci there)",
            dir.display()
        );
        FixtureServer(PeerProcess::start(name, "EADDRINUSE", |port, _dir| {
            let mut c = Command::new(&deps.node);
            // `--import tsx` resolves from the working directory: the fixture's own modules.
            c.args(["--import", "tsx", "everything-server.ts"])
                .env("PORT", port.to_string())
                .current_dir(&dir);
            c
        }))
    }

    fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    fn url(&self) -> String {
        localhost_mcp_url(self.0.port)
    }
}

// ---------------------------------------------------------------------------------------------
// The conformance CLI

/// One conformance CLI (an npm package under `tests/peers/node_modules`) and how it selects the
/// server scenarios of a run.
#[derive(Debug, Clone, Copy)]
struct Suite {
    /// For messages.
    name: &'static str,
    /// The package directory under `tests/peers/node_modules`.
    package: &'static str,
    /// What selects the whole run.
    full: &'static [&'static str],
    /// What `--scenario <s>` needs besides, to run one scenario as the whole run ran it.
    single: &'static [&'static str],
}

/// 0.1.16, every server scenario (active and pending): the 2025 era.
const SUITE_0_1_16: Suite = Suite {
    name: "conformance 0.1.16 --suite all",
    package: "@modelcontextprotocol/conformance",
    full: &["--suite", "all"],
    single: &["--suite", "all"],
};

/// 0.2.0-alpha.12 (installed as `conformance-2026`), the scenarios the 2026-07-28 revision
/// requires, frozen at its release and run at its wire. `--requirements` cannot be combined with
/// `--scenario`; the CLI runs each required scenario as `--spec-version 2026-07-28 --force`.
const SUITE_2026_REQUIREMENTS: Suite = Suite {
    name: "conformance 0.2.0-alpha.12 --requirements 2026-07-28",
    package: "conformance-2026",
    full: &["--requirements", "2026-07-28"],
    single: &["--spec-version", "2026-07-28", "--force"],
};

/// 0.2.0-alpha.12, every server scenario of every era, each at its own wire.
const SUITE_2026_ALL: Suite = Suite {
    name: "conformance 0.2.0-alpha.12 --suite all",
    package: "conformance-2026",
    full: &["--suite", "all"],
    single: &[],
};

impl Suite {
    fn cli(&self) -> PathBuf {
        let js = paths::repo_root()
            .join("tests/peers/node_modules")
            .join(self.package)
            .join("dist/index.js");
        assert!(
            js.is_file(),
            "{} missing: run `make peers-deps` (mk/peers.mk) first",
            js.display()
        );
        js
    }
}

/// What one scenario produced: its checks as `(id, status)`, sorted. A scenario that wrote no
/// `checks.json` has no checks and counts as failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ScenarioOutcome {
    checks: Vec<(String, String)>,
}

impl ScenarioOutcome {
    /// The CLI's own verdict: passed when no check is a FAILURE (WARNING and INFO do not fail).
    fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|(_, s)| s != "FAILURE")
    }

    /// Check ids all of whose occurrences succeeded (an id can repeat, e.g. SSE event checks).
    fn passing_checks(&self) -> BTreeSet<String> {
        let ids: BTreeSet<&String> = self.checks.iter().map(|(id, _)| id).collect();
        ids.into_iter()
            .filter(|id| {
                self.checks
                    .iter()
                    .filter(|(i, _)| i == *id)
                    .all(|(_, s)| s == "SUCCESS")
            })
            .cloned()
            .collect()
    }

    /// What the comparison asserts on.
    fn verdict(&self) -> (bool, BTreeSet<String>) {
        (self.passed(), self.passing_checks())
    }

    /// Checks that are neither passing nor informational, for the printed diff.
    fn non_info(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|(_, s)| s != "INFO")
            .map(|(id, s)| format!("{id}={s}"))
            .collect()
    }
}

type ConformanceReport = BTreeMap<String, ScenarioOutcome>;

/// Runs `suite` (or one scenario of it) against `url`, and reads every
/// `<out>/server-<scenario>-<timestamp>/checks.json`.
fn run_conformance(
    deps: &PeerDeps,
    suite: Suite,
    url: &str,
    scenario: Option<&str>,
) -> ConformanceReport {
    let out = tempfile::Builder::new()
        .prefix("mcp-conformance-")
        .tempdir()
        .expect("temp dir");
    let mut cmd = Command::new(&deps.node);
    cmd.arg(suite.cli())
        .args(["server", "--url", url, "--output-dir"])
        .arg(out.path())
        .stdin(Stdio::null());
    match scenario {
        Some(s) => cmd.args(suite.single).args(["--scenario", s]),
        None => cmd.args(suite.full),
    };
    // Exit status 1 just means some check failed, which is expected against server-everything.
    let output = output_within(&mut cmd, CONFORMANCE_TIMEOUT);
    let mut report = ConformanceReport::new();
    for entry in fs::read_dir(out.path()).expect("read conformance output dir") {
        let dir = entry.expect("dir entry").path();
        let Some(name) = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(scenario_of_result_dir)
        else {
            continue;
        };
        report.insert(name, read_checks(&dir.join("checks.json")));
    }
    assert!(
        !report.is_empty(),
        "{} produced no results for {url} (scenario {scenario:?}), exit {}\nstdout:\n{}\nstderr:\n{}",
        suite.name,
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    report
}

/// `server-tools-list-2026-11-21T05-36-02-805Z` → `tools-list`.
fn scenario_of_result_dir(name: &str) -> Option<String> {
    const TIMESTAMP: usize = "-2026-11-21T05-36-02-805Z".len();
    let rest = name.strip_prefix("server-")?;
    let (scenario, stamp) = rest.split_at_checked(rest.len().checked_sub(TIMESTAMP)?)?;
    (stamp.starts_with('-') && stamp.ends_with('Z') && stamp.contains('T'))
        .then(|| scenario.to_string())
}

fn read_checks(path: &Path) -> ScenarioOutcome {
    let Ok(text) = fs::read_to_string(path) else {
        return ScenarioOutcome::default();
    };
    let parsed: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    let mut checks: Vec<(String, String)> = parsed
        .as_array()
        .unwrap_or_else(|| panic!("{} is not a JSON array", path.display()))
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or("?").to_string(),
                c["status"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    checks.sort();
    ScenarioOutcome { checks }
}

fn passing_scenarios(report: &ConformanceReport) -> BTreeSet<String> {
    report
        .iter()
        .filter(|(_, o)| o.passed())
        .map(|(s, _)| s.clone())
        .collect()
}

fn passing_checks(report: &ConformanceReport) -> BTreeSet<String> {
    report
        .iter()
        .flat_map(|(s, o)| {
            o.passing_checks()
                .into_iter()
                .map(move |c| format!("{s}/{c}"))
        })
        .collect()
}

fn print_set(title: &str, set: &BTreeSet<String>) {
    eprintln!("{title} ({}):", set.len());
    for item in set {
        eprintln!("  {item}");
    }
}

fn print_diff(what: &str, direct: &BTreeSet<String>, through: &BTreeSet<String>) {
    let only_direct: Vec<&String> = direct.difference(through).collect();
    let only_envoy: Vec<&String> = through.difference(direct).collect();
    eprintln!("{what} diff: only direct {only_direct:?}; only through Envoy {only_envoy:?}");
}

// ---------------------------------------------------------------------------------------------
// Direct vs through the gateway

/// A difference between a suite run straight at a server and through the gateway that the MCP
/// specification decides: the gateway enforces a MUST the server skips, or the server answers
/// outside the transport the spec defines, which the gateway (it reads what it forwards) cannot
/// pass on. Every other scenario and check must come out the same both ways; a listed
/// difference that no longer happens fails too, so this list never goes stale.
#[derive(Debug, Clone, Copy)]
struct KnownDifference {
    scenario: &'static str,
    /// The scenario's verdict (passed), directly and through the gateway.
    passes: (bool, bool),
    /// Checks that pass directly but not through the gateway.
    lost: &'static [&'static str],
    /// Checks that pass through the gateway but not directly.
    gained: &'static [&'static str],
}

/// The 2026-07-28 fixture (conformance c321dd3) through `envoy/mcp-gateway.yaml`, under both
/// 2026 selections (the scenarios below run at the 2026-07-28 wire in both).
const KNOWN_2026_07_28: &[KnownDifference] = &[
    // Lost: the fixture answers two stateless requests in `application/json` with more than one
    // JSON object, newline-separated (NDJSON), which the spec does not allow:
    // * tools/call `test_streaming_elicitation`: a progress notification, then the result, in one
    //   body. The gateway cannot parse that body as the one JSON value it must be and replaces it
    //   by a -32603 error (failure_mode closed), so "no independent requests on the stream" has
    //   nothing to inspect. (The official SDK clients fail on that body as well: TypeScript's
    //   `response.json()` throws, Python's `validate_json` raises and the call gets -32700.)
    // * `subscriptions/listen`: the acknowledgement and later list_changed notifications as
    //   NDJSON lines of a never-ending `application/json` body. The gateway waits for the end of
    //   a JSON body before it passes it on, so no frame arrives (5 subscription checks).
    // Spec 2026-07-28, basic/transports/streamable-http.mdx, "Sending Messages" 6: "If the body
    // is a JSON-RPC _request_, the server **MUST** return either `Content-Type:
    // application/json` (a single JSON object) or `Content-Type: text/event-stream` (an SSE
    // response stream)"; "Receiving Messages": notifications before the final response belong
    // to an SSE response stream, and the `subscriptions/listen` response "is itself an SSE
    // stream that stays open". Conformance PR #392 ("use proper SSE instead of NDJSON", open)
    // fixes the fixture's `test_streaming_elicitation`.
    KnownDifference {
        scenario: "server-stateless",
        passes: (true, false),
        lost: &[
            "sep-2575-http-server-no-independent-requests-on-stream",
            "sep-2575-server-honors-notification-filter",
            "sep-2575-server-sends-prompts-list-changed-on-subscription",
            "sep-2575-server-sends-subscription-ack",
            "sep-2575-server-sends-tools-list-changed-on-subscription",
            "sep-2575-server-tags-subscription-id",
        ],
        gained: &[],
    },
    // Gained: the fixture accepts requests whose Mcp-Method / Mcp-Name headers disagree with the
    // body (HTTP 200); the gateway's request gate refuses them with 400 and -32020. Spec
    // 2026-07-28, streamable-http.mdx, "Server Behavior for Custom Headers": "Any server that
    // processes the message body **MUST** validate that encoded header values, after decoding
    // if Base64-encoded, match the corresponding values in the request body. Servers **MUST**
    // reject requests with a `400 Bad Request` HTTP status and JSON-RPC error code `-32020`
    // (`HeaderMismatch`) if any validation fails." ("Server Validation" says the same.)
    KnownDifference {
        scenario: "http-header-validation",
        passes: (false, true),
        lost: &[],
        gained: &[
            "sep-2243-server-reject-error-code",
            "sep-2243-server-reject-invalid-headers",
        ],
    },
    // Gained, same rule: a tools/call with `Mcp-Method: tasks/get` is a header mismatch (the
    // scenario still fails both ways on the tasks extension the fixture does not implement).
    KnownDifference {
        scenario: "tasks-request-headers",
        passes: (false, false),
        lost: &[],
        gained: &["tasks-headers-reject-mismatched-method"],
    },
];

fn set_of(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

/// Whether `scenario`'s outcomes, direct and through the gateway, are what `known` says (equal
/// unless listed).
fn as_known(
    known: &[KnownDifference],
    scenario: &str,
    direct: Option<&ScenarioOutcome>,
    through: Option<&ScenarioOutcome>,
) -> bool {
    let (Some(d), Some(t)) = (direct, through) else {
        return direct.map(ScenarioOutcome::verdict) == through.map(ScenarioOutcome::verdict);
    };
    let Some(k) = known.iter().find(|k| k.scenario == scenario) else {
        return d.verdict() == t.verdict();
    };
    let (dc, tc) = (d.passing_checks(), t.passing_checks());
    (d.passed(), t.passed()) == k.passes
        && dc.difference(&tc).cloned().collect::<BTreeSet<_>>() == set_of(k.lost)
        && tc.difference(&dc).cloned().collect::<BTreeSet<_>>() == set_of(k.gained)
}

/// Runs `suite` against `direct_url` and `envoy_url` (the same server behind the gateway),
/// reruns scenarios whose outcomes differ unexpectedly (races), prints both passing sets and
/// their differences, and asserts that the scenarios and checks passing through the gateway are
/// the direct ones except exactly the `known` differences. Returns (direct, through).
fn compare_through_gateway(
    deps: &PeerDeps,
    suite: Suite,
    direct_url: &str,
    envoy_url: &str,
    known: &[KnownDifference],
) -> (ConformanceReport, ConformanceReport) {
    let started = Instant::now();
    let mut direct = run_conformance(deps, suite, direct_url, None);
    let direct_took = started.elapsed();
    let started = Instant::now();
    let mut through = run_conformance(deps, suite, envoy_url, None);
    let envoy_took = started.elapsed();
    eprintln!(
        "{}: {} scenarios directly in {direct_took:.1?}, {} through Envoy ({GATEWAY_CONFIG}) in {envoy_took:.1?}",
        suite.name,
        direct.len(),
        through.len()
    );

    let scenarios: BTreeSet<String> = direct.keys().chain(through.keys()).cloned().collect();
    let unexpected = |d: &ConformanceReport, t: &ConformanceReport, s: &String| {
        !as_known(known, s, d.get(s), t.get(s))
    };
    let differing = scenarios
        .iter()
        .filter(|s| unexpected(&direct, &through, s))
        .count();
    // Races hit one or two scenarios; many differences at once are systematic, and retrying them
    // (each possibly waiting on timeouts) would only delay the failure.
    let retry_budget = if differing <= MAX_RETRIED_SCENARIOS {
        CONFORMANCE_ATTEMPTS
    } else {
        eprintln!("{differing} scenarios differ: systematic, not retried");
        1
    };
    let mut retried = Vec::new();
    for scenario in &scenarios {
        let mut attempt = 1;
        while attempt < retry_budget && unexpected(&direct, &through, scenario) {
            attempt += 1;
            for (url, report) in [(direct_url, &mut direct), (envoy_url, &mut through)] {
                let rerun = run_conformance(deps, suite, url, Some(scenario));
                report.insert(
                    scenario.clone(),
                    rerun.get(scenario).cloned().unwrap_or_default(),
                );
            }
        }
        if attempt > 1 {
            retried.push(format!("{scenario} ({attempt} attempts)"));
        }
    }
    if !retried.is_empty() {
        eprintln!("retried scenarios whose outcome differed: {retried:?}");
    }

    let direct_pass = passing_scenarios(&direct);
    let envoy_pass = passing_scenarios(&through);
    let direct_checks = passing_checks(&direct);
    let envoy_checks = passing_checks(&through);
    print_set("passing scenarios, direct", &direct_pass);
    print_set("passing scenarios, through Envoy", &envoy_pass);
    print_diff("scenario", &direct_pass, &envoy_pass);
    print_diff("check", &direct_checks, &envoy_checks);
    // Not asserted (the passing sets are): other status differences, e.g. WARNING vs FAILURE.
    for scenario in &scenarios {
        let d = direct.get(scenario).map(ScenarioOutcome::non_info);
        let e = through.get(scenario).map(ScenarioOutcome::non_info);
        if d != e {
            eprintln!("note: {scenario}: direct {d:?}, through Envoy {e:?}");
        }
    }

    let lost_scenarios = known
        .iter()
        .filter(|k| k.passes == (true, false))
        .map(|k| k.scenario.to_string())
        .collect::<BTreeSet<_>>();
    let gained_scenarios = known
        .iter()
        .filter(|k| k.passes == (false, true))
        .map(|k| k.scenario.to_string())
        .collect::<BTreeSet<_>>();
    let qualified = |pick: fn(&KnownDifference) -> &'static [&'static str]| {
        known
            .iter()
            .flat_map(|k| pick(k).iter().map(move |c| format!("{}/{c}", k.scenario)))
            .collect::<BTreeSet<_>>()
    };
    let (lost_checks, gained_checks) = (qualified(|k| k.lost), qualified(|k| k.gained));
    let diff = |a: &BTreeSet<String>, b: &BTreeSet<String>| {
        a.difference(b).cloned().collect::<BTreeSet<_>>()
    };
    assert_eq!(
        (
            diff(&direct_pass, &envoy_pass),
            diff(&envoy_pass, &direct_pass)
        ),
        (lost_scenarios, gained_scenarios),
        "{}: scenarios passing (only directly, only through Envoy {GATEWAY_CONFIG}) differ from \
         the known, spec-decided differences (right); see the sets printed above",
        suite.name
    );
    assert_eq!(
        (
            diff(&direct_checks, &envoy_checks),
            diff(&envoy_checks, &direct_checks)
        ),
        (lost_checks, gained_checks),
        "{}: checks passing (only directly, only through Envoy {GATEWAY_CONFIG}) differ from the \
         known, spec-decided differences (right); see the sets printed above",
        suite.name
    );
    (direct, through)
}

#[test]
fn conformance_suite_passes_the_same_scenarios_through_envoy_as_directly() {
    let deps = peer_deps();
    let server = EverythingServer::start(&deps);
    let envoy = start_gateway(server.addr());
    let (direct, _) = compare_through_gateway(
        &deps,
        SUITE_0_1_16,
        &server.url(),
        &localhost_mcp_url(envoy.port),
        &[],
    );
    // Most scenarios fail against server-everything even directly (they need the fixture's
    // `test_*` tools); these hold for any working server-everything.
    assert!(
        direct.len() >= 30,
        "expected the whole server suite (>= 30 scenarios), got {:?}",
        direct.keys()
    );
    let direct_pass = passing_scenarios(&direct);
    for must in ["server-initialize", "ping", "tools-list", "prompts-list"] {
        assert!(
            direct_pass.contains(must),
            "{must} should pass against server-everything directly; passing: {direct_pass:?}"
        );
    }
}

/// The 2025-era suite against the fixture it was written for: every scenario passes directly,
/// and every scenario and check passes through the gateway too.
#[test]
fn conformance_0_1_16_passes_every_scenario_of_its_fixture_directly_and_through_envoy() {
    let deps = peer_deps();
    let server = FixtureServer::start(&deps, FIXTURE_V0_1_16);
    let envoy = start_gateway(server.addr());
    let (direct, through) = compare_through_gateway(
        &deps,
        SUITE_0_1_16,
        &server.url(),
        &localhost_mcp_url(envoy.port),
        &[],
    );
    assert!(
        direct.len() >= 30,
        "expected the whole 0.1.16 server suite (>= 30 scenarios), got {:?}",
        direct.keys()
    );
    let failing: Vec<&String> = direct
        .iter()
        .filter(|(_, o)| !o.passed())
        .map(|(s, _)| s)
        .collect();
    assert!(
        failing.is_empty(),
        "the reference fixture must pass its own suite directly; failing: {failing:?}"
    );
    assert_eq!(passing_scenarios(&through).len(), direct.len());
}

/// Scenarios of the 2026-07-28 fixture that pass directly under both 2026 selections: the suite
/// really ran the stateless era against a working fixture.
const MUST_PASS_2026_DIRECTLY: [&str; 6] = [
    "server-stateless",
    "tools-list",
    "caching",
    "dns-rebinding-protection",
    "input-required-result-basic-elicitation",
    "sep-2164-resource-not-found",
];

fn conformance_2026_against_its_fixture(suite: Suite, at_least: usize) {
    let deps = peer_deps();
    let server = FixtureServer::start(&deps, FIXTURE_2026_07_28);
    let envoy = start_gateway(server.addr());
    let (direct, _) = compare_through_gateway(
        &deps,
        suite,
        &server.url(),
        &localhost_mcp_url(envoy.port),
        KNOWN_2026_07_28,
    );
    assert!(
        direct.len() >= at_least,
        "{}: expected >= {at_least} scenarios, got {:?}",
        suite.name,
        direct.keys()
    );
    let direct_pass = passing_scenarios(&direct);
    for must in MUST_PASS_2026_DIRECTLY {
        assert!(
            direct_pass.contains(must),
            "{}: {must} should pass against the fixture directly; passing: {direct_pass:?}",
            suite.name
        );
    }
}

/// The scenarios MCP 2026-07-28 requires (0.2.0-alpha.12 `--requirements 2026-07-28`, 50 of
/// them) against the fixture, directly and through the gateway: equal except
/// [`KNOWN_2026_07_28`].
#[test]
fn conformance_2026_07_28_requirements_pass_the_same_through_envoy_except_the_spec_decided_ones() {
    conformance_2026_against_its_fixture(SUITE_2026_REQUIREMENTS, 45);
}

/// Every server scenario of 0.2.0-alpha.12 (`--suite all`: both eras, pending and extension
/// scenarios too) against the 2026-07-28 fixture: equal except [`KNOWN_2026_07_28`].
#[test]
fn conformance_2026_suite_all_passes_the_same_through_envoy_except_the_spec_decided_ones() {
    conformance_2026_against_its_fixture(SUITE_2026_ALL, 60);
}

#[test]
fn conformance_result_dir_names_map_to_scenario_names() {
    assert_eq!(
        scenario_of_result_dir("server-tools-list-2026-11-21T05-36-02-805Z").as_deref(),
        Some("tools-list")
    );
    assert_eq!(
        scenario_of_result_dir("server-server-sse-polling-2026-11-21T05-38-42-482Z").as_deref(),
        Some("server-sse-polling")
    );
    assert_eq!(scenario_of_result_dir("client-initialize-x"), None);
    assert_eq!(scenario_of_result_dir("server-x"), None);
}

/// The comparison's bookkeeping: a listed difference is accepted only exactly as listed.
#[test]
fn known_differences_match_only_exactly() {
    let outcome = |checks: &[(&str, &str)]| ScenarioOutcome {
        checks: checks
            .iter()
            .map(|(i, s)| ((*i).to_string(), (*s).to_string()))
            .collect(),
    };
    let known = [KnownDifference {
        scenario: "s",
        passes: (false, true),
        lost: &[],
        gained: &["b"],
    }];
    let d = outcome(&[("a", "SUCCESS"), ("b", "FAILURE")]);
    let t = outcome(&[("a", "SUCCESS"), ("b", "SUCCESS")]);
    assert!(as_known(&known, "s", Some(&d), Some(&t)));
    // The same difference on an unlisted scenario, or reversed, is not accepted.
    assert!(!as_known(&known, "other", Some(&d), Some(&t)));
    assert!(!as_known(&known, "s", Some(&t), Some(&d)));
    // Nor is the listed difference missing (the list would be stale), or one more check lost.
    assert!(!as_known(&known, "s", Some(&d), Some(&d)));
    let t2 = outcome(&[("a", "WARNING"), ("b", "SUCCESS")]);
    assert!(!as_known(&known, "s", Some(&d), Some(&t2)));
    // Unlisted scenarios must be equal; one missing on one side is a difference.
    assert!(as_known(&known, "other", Some(&d), Some(&d)));
    assert!(!as_known(&known, "other", Some(&d), None));
}

// ---------------------------------------------------------------------------------------------
// The PyPI `mcp` client

/// Runs `tests/peers/mcp_client.py` with `python` against `url` and returns its JSON summary.
fn run_python_client(
    deps: &PeerDeps,
    python: &Path,
    url: &str,
    extra_args: &[&str],
    calls: &[(&str, Value)],
) -> Value {
    let mut cmd = Command::new(python);
    cmd.arg(&deps.client_script)
        .arg(url)
        .args(extra_args)
        .stdin(Stdio::null());
    for (tool, args) in calls {
        cmd.arg("--call").arg(tool).arg(args.to_string());
    }
    let out = output_within(&mut cmd, CLIENT_TIMEOUT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "mcp_client.py failed ({}) against {url}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!("mcp_client.py printed no JSON summary ({e})\nstdout:\n{stdout}\nstderr:\n{stderr}")
    })
}

fn assert_client_ok(summary: &Value, python: &Path, version: &str) {
    assert_eq!(
        summary["error"],
        Value::Null,
        "client session failed through Envoy: {summary:#}"
    );
    assert_eq!(
        summary["sdk"],
        json!(version),
        "{} is not the pinned mcp {version}: run `make peers-deps`",
        python.display()
    );
}

fn call<'a>(summary: &'a Value, tool: &str) -> &'a Value {
    summary["calls"]
        .as_array()
        .and_then(|calls| calls.iter().find(|c| c["tool"] == tool))
        .unwrap_or_else(|| panic!("no call of {tool} in {summary:#}"))
}

fn tool_names(summary: &Value) -> BTreeSet<String> {
    summary["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|n| n.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The deny list `mcp_tools` carries in envoy/mcp-gateway.yaml and envoy/mcp_tools.yaml.
fn hidden_by_gateway(name: &str) -> bool {
    name == "get-env" || name.starts_with("admin_") || name.ends_with("_admin")
}

fn visible_through_gateway(direct: &BTreeSet<String>) -> BTreeSet<String> {
    direct
        .iter()
        .filter(|n| !hidden_by_gateway(n))
        .cloned()
        .collect()
}

/// server-everything behind `envoy/mcp_tools.yaml` (deny list): the PyPI client no longer lists
/// `get-env`, and calling it fails exactly like calling a tool that does not exist.
fn python_client_sees_no_denied_everything_tool(python: &Path, version: &str) {
    let deps = peer_deps();
    let server = EverythingServer::start(&deps);
    let cfg = EnvoyConfig::load("mcp_tools.yaml")
        .unwrap()
        .upstream(UPSTREAM_CLUSTER, server.addr());
    let envoy = Envoy::start(cfg).unwrap();
    let calls = [("get-env", json!({})), ("no-such-tool", json!({}))];
    let direct = run_python_client(&deps, python, &server.url(), &[], &calls);
    let through = run_python_client(&deps, python, &envoy.url("/mcp"), &[], &calls);
    assert_client_ok(&direct, python, version);
    assert_client_ok(&through, python, version);
    assert!(tool_names(&direct).contains("get-env"), "{direct:#}");
    assert!(!tool_names(&through).contains("get-env"), "{through:#}");
    assert_eq!(
        tool_names(&through),
        visible_through_gateway(&tool_names(&direct))
    );
    assert_eq!(
        call(&direct, "get-env")["is_error"],
        json!(false),
        "{direct:#}"
    );
    let refused = call(&through, "get-env");
    assert_eq!(refused["is_error"], json!(true), "{through:#}");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("Unknown tool: get-env"), "{refused:#}");
    assert_eq!(refused["error"]["code"], json!(-32602), "{refused:#}");
    // server-everything itself reports an unknown tool as an isError tool result ("Tool X not
    // found"), while mcp_tools answers with the spec's -32602 "Unknown tool" error: both fail the
    // call for the client (see docs/tools.md, "Refusal shape").
    assert_eq!(call(&through, "no-such-tool")["is_error"], json!(true));
    // The refusal carries no tool output: the call was answered by the filter.
    assert_eq!(refused["content_types"], json!([]), "{refused:#}");
}

#[test]
fn mcp_python_client_1x_cannot_see_or_call_a_denied_server_everything_tool() {
    python_client_sees_no_denied_everything_tool(&peer_deps().python_mcp1, MCP1_VERSION);
}

#[test]
fn mcp_python_client_2x_cannot_see_or_call_a_denied_server_everything_tool() {
    python_client_sees_no_denied_everything_tool(&peer_deps().python_mcp2, MCP2_VERSION);
}

/// Lists and calls server-everything tools through Envoy and checks the results equal the ones the
/// same client gets directly.
fn python_client_against_everything(python: &Path, version: &str) {
    let deps = peer_deps();
    let server = EverythingServer::start(&deps);
    let envoy = start_gateway(server.addr());
    let calls = [
        ("get-sum", json!({"a": 2, "b": 3})),
        ("echo", json!({"message": "hello through the gateway"})),
        ("get-structured-content", json!({"location": "New York"})),
        ("no-such-tool", json!({})),
    ];
    let direct = run_python_client(&deps, python, &server.url(), &[], &calls);
    // The 2.x client runs in its default `auto` mode: its `server/discover` probe must come back
    // through the chain as the legacy server's error so the client falls back to `initialize`.
    let through = run_python_client(&deps, python, &envoy.url("/mcp"), &[], &calls);
    assert_client_ok(&direct, python, version);
    assert_client_ok(&through, python, version);
    assert_eq!(
        through["protocol_version"],
        json!("2025-11-25"),
        "{through:#}"
    );

    let tools = tool_names(&through);
    for expected in ["echo", "get-sum", "get-structured-content"] {
        assert!(
            tools.contains(expected),
            "{expected} missing from {tools:?}"
        );
    }
    assert_eq!(
        tools,
        visible_through_gateway(&tool_names(&direct)),
        "tools/list through the gateway is the direct list minus mcp_tools' deny list"
    );
    assert!(!tools.contains("get-env"), "the gateway hides get-env");
    assert_eq!(
        call(&through, "get-sum")["text"],
        json!(["The sum of 2 and 3 is 5."])
    );
    assert_eq!(
        call(&through, "echo")["text"],
        json!(["Echo: hello through the gateway"])
    );
    assert!(
        call(&through, "get-structured-content")["structured"].is_object(),
        "structuredContent lost: {through:#}"
    );
    assert_eq!(call(&through, "no-such-tool")["is_error"], json!(true));
    assert_eq!(
        through["calls"], direct["calls"],
        "tool results through Envoy differ from direct"
    );
    assert_eq!(through["protocol_version"], direct["protocol_version"]);
}

/// How the Python client and the in-repo test server are set up for one run.
#[derive(Debug, Clone, Copy)]
struct TestServerRun {
    /// Which venv's client (`.venv-mcp1` or `.venv-mcp2`).
    python_is_v2: bool,
    /// How the server frames its answers.
    responses: ResponseMode,
    /// `mcp_client.py --mode` for 2.x: `auto` probes `server/discover` first.
    client_mode: &'static str,
    /// The era the client must end up in.
    protocol_version: &'static str,
}

/// Lists and calls the in-repo test server's tools through Envoy and checks the server received
/// exactly those calls and the client saw the same results as directly.
fn python_client_against_test_server(run: TestServerRun) {
    let deps = peer_deps();
    let (python, version) = if run.python_is_v2 {
        (&deps.python_mcp2, MCP2_VERSION)
    } else {
        (&deps.python_mcp1, MCP1_VERSION)
    };
    let server =
        TestServer::start(ServerOptions::default().mode(run.responses)).expect("start test server");
    let envoy = start_gateway(server.addr());
    let args = ["--mode", run.client_mode];
    let calls = [
        ("echo", json!({"text": "hello through the gateway"})),
        ("add", json!({"a": 2, "b": 3})),
        ("fail", json!({})),
    ];
    let through = run_python_client(&deps, python, &envoy.url("/mcp"), &args, &calls);
    assert_client_ok(&through, python, version);
    assert_eq!(
        through["protocol_version"],
        json!(run.protocol_version),
        "{run:?}: {through:#}"
    );
    assert_eq!(
        server.tool_calls(),
        ["echo", "add", "fail"],
        "the server did not receive the calls made through Envoy"
    );

    let tools = tool_names(&through);
    for expected in ["echo", "add", "fail"] {
        assert!(
            tools.contains(expected),
            "{expected} missing from {tools:?}"
        );
    }
    assert_eq!(
        call(&through, "echo")["text"],
        json!(["hello through the gateway"])
    );
    assert_eq!(call(&through, "echo")["is_error"], json!(false));
    assert_eq!(
        call(&through, "add")["structured"]["sum"].as_f64(),
        Some(5.0),
        "add result: {through:#}"
    );
    assert_eq!(call(&through, "fail")["is_error"], json!(true));
    assert_eq!(
        call(&through, "fail")["text"],
        json!(["Tool failed as requested"])
    );

    let direct = run_python_client(&deps, python, &server.url("/mcp"), &args, &calls);
    assert_client_ok(&direct, python, version);
    assert_eq!(
        tools,
        visible_through_gateway(&tool_names(&direct)),
        "tools/list through the gateway is the direct list minus mcp_tools' deny list"
    );
    assert!(
        !tools.contains("admin_reset"),
        "the gateway hides admin_reset"
    );
    assert_eq!(
        through["calls"], direct["calls"],
        "tool results through Envoy differ from direct"
    );
    assert_eq!(through["protocol_version"], direct["protocol_version"]);
}

#[test]
fn mcp_python_client_1x_lists_and_calls_server_everything_tools_through_envoy() {
    python_client_against_everything(&peer_deps().python_mcp1, MCP1_VERSION);
}

#[test]
fn mcp_python_client_2x_lists_and_calls_server_everything_tools_through_envoy() {
    python_client_against_everything(&peer_deps().python_mcp2, MCP2_VERSION);
}

#[test]
fn mcp_python_client_1x_lists_and_calls_test_server_tools_through_envoy_with_sse_responses() {
    python_client_against_test_server(TestServerRun {
        python_is_v2: false,
        responses: ResponseMode::Sse,
        client_mode: "legacy",
        protocol_version: "2025-11-25",
    });
}

#[test]
fn mcp_python_client_1x_lists_and_calls_test_server_tools_through_envoy_with_json_responses() {
    python_client_against_test_server(TestServerRun {
        python_is_v2: false,
        responses: ResponseMode::Json,
        client_mode: "legacy",
        protocol_version: "2025-11-25",
    });
}

#[test]
fn mcp_python_client_2x_speaks_the_stateless_era_with_the_test_server_through_envoy_over_sse() {
    python_client_against_test_server(TestServerRun {
        python_is_v2: true,
        responses: ResponseMode::Sse,
        client_mode: "auto",
        protocol_version: "2026-07-28",
    });
}

#[test]
fn mcp_python_client_2x_speaks_the_stateless_era_with_the_test_server_through_envoy_over_json() {
    python_client_against_test_server(TestServerRun {
        python_is_v2: true,
        responses: ResponseMode::Json,
        client_mode: "auto",
        protocol_version: "2026-07-28",
    });
}

#[test]
fn mcp_python_client_2x_in_legacy_mode_lists_and_calls_test_server_tools_through_envoy() {
    python_client_against_test_server(TestServerRun {
        python_is_v2: true,
        responses: ResponseMode::Sse,
        client_mode: "legacy",
        protocol_version: "2025-11-25",
    });
}

/// The PyPI client with a bearer token through `mcp_scopes` (verifying via Envoy's jwt_authn, as
/// with Istio RequestAuthentication): it lists and calls the tools its `mcp:tools` scope allows,
/// and a tool that needs `repo:admin` gets the 403 step-up challenge instead of reaching the
/// server.
fn python_client_with_a_bearer_token_meets_the_scope_challenge(python: &Path, version: &str) {
    let deps = peer_deps();
    let server = TestServer::start(ServerOptions::default()).expect("start test server");
    let scopes = json!({
        "resource": "https://mcp.test/mcp",
        "authorization_servers": [mcp_integration::jwt_authn::ISSUER],
        "jwt_authn": {"metadata_key": mcp_integration::jwt_authn::METADATA_KEY},
        "rules": [
            {"tools": ["delete_*"], "scopes": ["repo:admin"]},
            {"tools": ["*"], "scopes": ["mcp:tools"]}
        ]
    });
    let cfg = EnvoyConfig::load("mcp_scopes.yaml")
        .unwrap()
        .upstream(UPSTREAM_CLUSTER, server.addr())
        .plugin_config("mcp_scopes", &scopes.to_string());
    let envoy = Envoy::start(mcp_integration::jwt_authn::in_front(cfg)).unwrap();
    let token = mcp_integration::jwt_authn::token(json!({"sub": "py", "scope": "mcp:tools"}));
    let header = format!("Authorization:Bearer {token}");
    let calls = [
        ("echo", json!({"text": "allowed"})),
        ("delete_repo", json!({"repo": "prod"})),
    ];
    let args = ["--header", header.as_str(), "--mode", "legacy"];
    let summary = run_python_client(&deps, python, &envoy.url("/mcp"), &args, &calls);
    assert_eq!(summary["sdk"], json!(version), "run `make peers-deps`");
    assert!(tool_names(&summary).contains("echo"), "{summary:#}");
    assert_eq!(
        call(&summary, "echo")["text"],
        json!(["allowed"]),
        "{summary:#}"
    );
    if version == MCP1_VERSION {
        // mcp 1.x raises the HTTP 403 out of its transport, ending the session.
        assert_eq!(
            summary["error"]["type"],
            json!("HTTPStatusError"),
            "{summary:#}"
        );
        let message = summary["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("403 Forbidden"), "{summary:#}");
    } else {
        // mcp 2.x reports the JSON-RPC error the 403 carries, and the session goes on.
        assert_client_ok(&summary, python, version);
        let refused = call(&summary, "delete_repo");
        assert_eq!(refused["is_error"], json!(true), "{summary:#}");
        assert_eq!(refused["error"]["code"], json!(-32001), "{summary:#}");
    }
    assert_eq!(
        server.tool_calls(),
        ["echo"],
        "delete_repo never reached the server"
    );
}

#[test]
fn mcp_python_client_1x_with_a_bearer_token_gets_the_403_step_up_for_a_scoped_tool() {
    python_client_with_a_bearer_token_meets_the_scope_challenge(
        &peer_deps().python_mcp1,
        MCP1_VERSION,
    );
}

#[test]
fn mcp_python_client_2x_with_a_bearer_token_gets_the_403_step_up_for_a_scoped_tool() {
    python_client_with_a_bearer_token_meets_the_scope_challenge(
        &peer_deps().python_mcp2,
        MCP2_VERSION,
    );
}

// ---------------------------------------------------------------------------------------------
// mcp_pii with a real FastMCP server (tests/peers/pii_server.py)

/// The fake values `pii_server.py` hands out (its `PII`), with the detector that must catch each.
const PEER_PII: [(&str, &str); 6] = [
    ("jane.doe@acme-corp.com", "email"),
    ("+44 20 7946 0958", "phone"),
    ("4111 1111 1111 1111", "credit_card"),
    ("536-22-8714", "us_ssn"),
    ("DE89 3704 0044 0532 0130 00", "iban"),
    ("203.0.113.42", "ipv4"),
];

fn redacted(detector: &str) -> String {
    format!("[REDACTED:{detector}]")
}

/// `tests/peers/pii_server.py` under one SDK generation's Python.
struct PiiPeerServer(PeerProcess);

impl PiiPeerServer {
    const RECORD: &'static str = "calls.jsonl";

    fn start(python: &Path) -> Self {
        let script = paths::repo_root().join("tests/peers/pii_server.py");
        PiiPeerServer(PeerProcess::start(
            "pii_server.py",
            "address already in use",
            |port, dir| {
                let mut c = Command::new(python);
                c.arg(&script)
                    .arg(port.to_string())
                    .arg(dir.join(Self::RECORD));
                c
            },
        ))
    }

    fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.0.port)
    }

    /// The tools/call arguments the server received, in order: `{"tool", "arguments"}`.
    fn received(&self) -> Vec<Value> {
        fs::read_to_string(self.0.file(Self::RECORD))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("record line is JSON"))
            .collect()
    }
}

/// Asserts none of the raw fake values occurs anywhere in `text` (what a client or server saw).
fn assert_no_raw_pii(what: &str, text: &str) {
    for (raw, detector) in PEER_PII {
        assert!(
            !text.contains(raw),
            "{what} contains the raw {detector} value {raw:?}:\n{text}"
        );
    }
}

/// The FastMCP server behind `envoy/mcp_pii.yaml` as shipped, called by the same SDK's client
/// with progress and logging callbacks: every fake value in the result's text and
/// structuredContent, the progress message and the log message arrives redacted, the text copy
/// still equals structuredContent, the client's outputSchema validation passes, and an email in a
/// tool argument never reaches the server. Directly (no Envoy) the same client sees the raw
/// values, so the server really sends them.
fn fastmcp_pii_peer_through_envoy(python: &Path, version: &str) {
    let deps = peer_deps();
    let server = PiiPeerServer::start(python);
    let cfg = EnvoyConfig::load("mcp_pii.yaml")
        .expect("load mcp_pii.yaml")
        .upstream(UPSTREAM_CLUSTER, server.addr());
    let envoy = Envoy::start(cfg).expect("start Envoy");
    let note = "call me at jane.doe@acme-corp.com or +44 20 7946 0958";
    let calls = [
        ("customer_record", json!({"customer_id": "CUST-0042"})),
        ("file_note", json!({"note": note})),
    ];
    let args = ["--notifications"];

    let through = run_python_client(&deps, python, &envoy.url("/mcp"), &args, &calls);
    assert_client_ok(&through, python, version);
    assert_no_raw_pii("the client's summary through Envoy", &through.to_string());
    assert!(
        through["output_schema_tools"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("customer_record"))),
        "customer_record must declare an outputSchema (the client validates against it): {through:#}"
    );

    // Text content and structuredContent, validated by the client against the outputSchema.
    let record = call(&through, "customer_record");
    assert_eq!(
        record["error"],
        Value::Null,
        "no validation error: {record:#}"
    );
    assert_eq!(record["is_error"], json!(false), "{record:#}");
    let structured = &record["structured"];
    let expected = json!({
        "customer_id": "CUST-0042",
        "name": "Jane Doe",
        "email": redacted("email"),
        "phone": redacted("phone"),
        "card": redacted("credit_card"),
        "ssn": redacted("us_ssn"),
        "iban": redacted("iban"),
        "last_login_ip": redacted("ipv4"),
        // The date and the bare order number are not PII and stay.
        "note": "prefers mail to [REDACTED:email] after 2025-10-01 (order 4155550132)",
    });
    assert_eq!(structured, &expected, "{record:#}");
    let text = record["text"][0].as_str().expect("a text block");
    let text_json: Value = serde_json::from_str(text).expect("the text copy is still JSON");
    assert_eq!(
        &text_json, structured,
        "text copy and structuredContent diverged"
    );

    // Notifications on the call's SSE stream.
    assert_eq!(
        record["progress"],
        json!([
            {"progress": 1.0, "total": 2.0, "message": "looking up CUST-0042, contact [REDACTED:email]"},
            {"progress": 2.0, "total": 2.0, "message": "done"}
        ]),
        "{record:#}"
    );
    assert_eq!(
        through["logs"],
        json!([{"level": "info", "logger": null,
                "data": "card on file [REDACTED:credit_card], SSN [REDACTED:us_ssn]"}]),
        "{through:#}"
    );

    // Request direction: the argument was scrubbed before it left Envoy.
    let scrubbed_note = "call me at [REDACTED:email] or [REDACTED:phone]";
    let echoed = call(&through, "file_note");
    assert_eq!(echoed["is_error"], json!(false), "{echoed:#}");
    assert_eq!(echoed["text"], json!([format!("stored: {scrubbed_note}")]));
    let received = server.received();
    assert_eq!(
        received,
        vec![
            json!({"tool": "customer_record", "arguments": {"customer_id": "CUST-0042"}}),
            json!({"tool": "file_note", "arguments": {"note": scrubbed_note}}),
        ],
        "what the server received through Envoy"
    );
    assert_no_raw_pii("the server's record", &json!(received).to_string());
    // structuredContent (2 emails), the progress message and the log message; the text copy is
    // scrubbed as the structuredContent, which counts its values once.
    for (dir, detector, at_least) in [
        ("request", "email", 1),
        ("request", "phone", 1),
        ("response", "email", 3),
        ("response", "credit_card", 2),
        ("response", "us_ssn", 2),
        ("response", "iban", 1),
    ] {
        let stat = format!("wasmcustom.mcp_pii.{dir}.{detector}");
        let n = envoy.stat(&stat).unwrap_or(0);
        assert!(n >= at_least, "{stat} = {n}, expected >= {at_least}");
    }

    // The same client straight at the server sees every raw value: the redactions above are
    // Envoy's doing, not the server's.
    let direct = run_python_client(&deps, python, &server.url(), &args, &calls);
    assert_client_ok(&direct, python, version);
    let direct_record = call(&direct, "customer_record");
    assert_eq!(direct_record["structured"]["email"], json!(PEER_PII[0].0));
    assert_eq!(
        direct_record["structured"]["card"],
        json!("4111 1111 1111 1111")
    );
    let direct_text = direct.to_string();
    for (raw, detector) in PEER_PII {
        assert!(
            direct_text.contains(raw),
            "directly the client should see the raw {detector} {raw:?}: {direct:#}"
        );
    }
    assert_eq!(
        direct["logs"][0]["data"],
        json!("card on file 4111 1111 1111 1111, SSN 536-22-8714")
    );
}

#[test]
fn fastmcp_1x_pii_in_results_progress_and_logs_is_scrubbed_for_the_mcp_client_through_envoy() {
    fastmcp_pii_peer_through_envoy(&peer_deps().python_mcp1, MCP1_VERSION);
}

#[test]
fn fastmcp_2x_pii_in_results_progress_and_logs_is_scrubbed_for_the_mcp_client_through_envoy() {
    fastmcp_pii_peer_through_envoy(&peer_deps().python_mcp2, MCP2_VERSION);
}

// ---------------------------------------------------------------------------------------------
// Tool pinning with a real FastMCP server (tests/peers/pinning_server.py)

/// Only what the PyPI tests need (the Python venv and the client script; no Node).
fn python_peer_deps(python: &Path) -> PeerDeps {
    let deps = peer_paths();
    require(&[python, &deps.client_script]);
    deps
}

/// `tests/peers/pinning_server.py`: `fetch_page` changes once [`PinningPeerServer::rug_pull`]
/// creates the toggle file; `weather_report` hides text in Unicode tag characters.
struct PinningPeerServer(PeerProcess);

impl PinningPeerServer {
    const RECORD: &'static str = "calls.jsonl";
    const TOGGLE: &'static str = "rug-pull";

    fn start(python: &Path) -> Self {
        let script = paths::repo_root().join("tests/peers/pinning_server.py");
        PinningPeerServer(PeerProcess::start(
            "pinning_server.py",
            "address already in use",
            |port, dir| {
                let mut c = Command::new(python);
                c.arg(&script)
                    .arg(port.to_string())
                    .arg(dir.join(Self::RECORD))
                    .arg(dir.join(Self::TOGGLE));
                c
            },
        ))
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.0.port)
    }

    fn rug_pull(&self) {
        fs::write(self.0.file(Self::TOGGLE), "v2").expect("toggle file");
    }

    /// The tools the server ran, in order.
    fn received(&self) -> Vec<String> {
        fs::read_to_string(self.0.file(Self::RECORD))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("record line is JSON");
                v["tool"].as_str().expect("tool").to_string()
            })
            .collect()
    }

    /// The server's own `tools/list` (a legacy session straight to it, no Envoy): the definitions.
    fn listing(&self) -> Vec<Value> {
        let s = mcp_integration::client::Session::initialize(&self.url()).expect("initialize");
        let v = s.call("tools/list", json!({})).expect("tools/list");
        v["result"]["tools"].as_array().expect("tools").clone()
    }
}

/// Fingerprints by PyPI `rfc8785` (an RFC 8785 implementation independent of the filters), in
/// the venv's Python, exactly as docs/pinning.md shows; checked against the filter's own.
fn rfc8785_pins(python: &Path, tools: &[Value]) -> BTreeMap<String, String> {
    let script = "import hashlib, json, sys, rfc8785\n\
        out = {}\n\
        for tool in json.load(sys.stdin):\n\
        \x20   tool = dict(tool); tool.pop('_meta', None)\n\
        \x20   out[tool['name']] = 'sha256:' + hashlib.sha256(rfc8785.dumps(tool)).hexdigest()\n\
        print(json.dumps(out))\n";
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(json!(tools).to_string().as_bytes())
            .expect("write tools");
    }
    let out = child.wait_with_output().expect("python output");
    assert!(
        out.status.success(),
        "rfc8785 (requirements-mcp1.txt; run `make peers-deps`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pins: BTreeMap<String, String> = serde_json::from_slice(&out.stdout).expect("pins");
    for t in tools {
        let name = t["name"].as_str().expect("name");
        let ours = mcp_core::pinning::fingerprint(t.to_string().as_bytes()).expect("canonical");
        assert_eq!(pins[name], ours, "{name}: rfc8785 and the filter disagree");
    }
    pins
}

/// The rug pull through `envoy/mcp_tools.yaml` with pins for the reviewed definitions: the PyPI
/// client lists and calls the approved tools; the tag-character tool is never listed and its call
/// fails like a call to a tool that does not exist; after the server changes `fetch_page`, the
/// client no longer sees it and its call fails the same way. The server never runs a refused
/// call; straight at the server the same client sees every tool.
fn fastmcp_rug_pull_through_envoy(python: &Path, version: &str, protocol: &str) {
    let deps = python_peer_deps(python);
    let server = PinningPeerServer::start(python);
    let reviewed = server.listing();
    let listed_names: BTreeSet<String> = reviewed
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_string())
        .collect();
    assert_eq!(
        listed_names,
        set_of(&[
            "lookup_order",
            "convert_units",
            "fetch_page",
            "weather_report"
        ])
    );
    // The reviewer approved all four definitions as listed (the tag characters are invisible).
    let pins = rfc8785_pins(python, &reviewed);
    let cfg = EnvoyConfig::load("mcp_tools.yaml")
        .expect("load mcp_tools.yaml")
        .upstream(UPSTREAM_CLUSTER, server.0.addr())
        .plugin_config("mcp_tools", &json!({"pinning": {"pins": pins}}).to_string());
    let envoy = Envoy::start(cfg).expect("start Envoy");
    let url = envoy.url("/mcp");
    let calls = [
        ("fetch_page", json!({"url": "https://example.com/"})),
        ("weather_report", json!({"city": "Paris"})),
        ("lookup_order", json!({"order_id": "A-1"})),
    ];
    let unknown = |summary: &Value, tool: &str| {
        let c = call(summary, tool);
        assert_eq!(c["error"]["code"], json!(-32602), "{tool}: {c:#}");
        assert_eq!(
            c["error"]["message"],
            json!(format!("Unknown tool: {tool}")),
            "{tool}: {c:#}"
        );
    };
    let served = |summary: &Value, tool: &str| {
        let c = call(summary, tool);
        assert_eq!(c["error"], Value::Null, "{tool}: {c:#}");
        assert_eq!(c["is_error"], json!(false), "{tool}: {c:#}");
    };

    // Before the rug pull: the approved tools, not the poisoned one.
    let first = run_python_client(&deps, python, &url, &[], &calls);
    assert_client_ok(&first, python, version);
    assert_eq!(first["protocol_version"], json!(protocol), "{first:#}");
    assert_eq!(
        tool_names(&first),
        set_of(&["lookup_order", "convert_units", "fetch_page"])
    );
    served(&first, "fetch_page");
    unknown(&first, "weather_report");
    served(&first, "lookup_order");

    // The rug pull: the server now lists another fetch_page.
    server.rug_pull();
    let pulled = server.listing();
    let fetch = pulled
        .iter()
        .find(|t| t["name"] == "fetch_page")
        .expect("fetch_page still listed by the server");
    assert!(
        fetch["description"]
            .as_str()
            .is_some_and(|d| d.contains("id_rsa")),
        "{fetch}"
    );
    let second = run_python_client(&deps, python, &url, &[], &calls);
    assert_client_ok(&second, python, version);
    assert_eq!(
        tool_names(&second),
        set_of(&["lookup_order", "convert_units"])
    );
    unknown(&second, "fetch_page");
    unknown(&second, "weather_report");
    served(&second, "lookup_order");

    assert_eq!(
        server.received(),
        ["fetch_page", "lookup_order", "lookup_order"],
        "weather_report never ran, fetch_page only before the rug pull"
    );
    let stat = |n: &str| {
        envoy
            .stat(&format!("wasmcustom.mcp_tools.{n}"))
            .unwrap_or(0)
    };
    assert!(stat("quarantined_drift") >= 1);
    assert!(stat("quarantined_poisoning") >= 1);
    assert_eq!(stat("quarantine_calls_refused"), 3);
    let log = envoy.log();
    assert!(
        log.contains("quarantined tool \"fetch_page\": reason=drift marker=none listed=sha256:"),
        "{log}"
    );
    assert!(
        log.contains(
            "quarantined tool \"weather_report\": reason=poisoning marker=tag_characters listed="
        ),
        "{log}"
    );
    // Never the definitions' text (the rug pull's, or the tag characters' hidden ASCII).
    for secret in ["~/.ssh/id_rsa", "~/.aws/credentials", "Fetch a web page"] {
        assert!(!log.contains(secret), "the log repeats {secret:?}");
    }

    // Straight at the server the same client sees every tool: the gateway did the removing.
    let direct = run_python_client(&deps, python, &server.url(), &[], &[]);
    assert_client_ok(&direct, python, version);
    assert_eq!(tool_names(&direct), listed_names);
}

#[test]
fn fastmcp_1x_rug_pulled_and_poisoned_tools_are_invisible_and_uncallable_for_the_mcp_client() {
    let python = paths::repo_root().join(".venv-mcp1/bin/python");
    fastmcp_rug_pull_through_envoy(&python, MCP1_VERSION, "2025-11-25");
}

#[test]
fn fastmcp_2x_rug_pulled_and_poisoned_tools_are_invisible_and_uncallable_for_the_mcp_client() {
    let python = paths::repo_root().join(".venv-mcp2/bin/python");
    fastmcp_rug_pull_through_envoy(&python, MCP2_VERSION, "2026-07-28");
}

// ---------------------------------------------------------------------------------------------
// mcp-pin against server-everything

/// What the mcp-pin peer tests need: Node 22 and the npm peers only (`make peers-deps`; the
/// fixture server checks its own installation).
fn node_deps() -> PeerDeps {
    let deps = peer_paths();
    require(&[&deps.node, &deps.everything_js]);
    deps
}

/// `mcp_pin::run` (all the binary does): status, stdout, stderr.
fn mcp_pin(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = mcp_pin::run(&args, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

/// `mcp-pin fetch` against the reference server pins every tool its `tools/list` has (every
/// page, listed here independently with the harness's own legacy client), in either era it
/// speaks; `mcp-pin diff` against that output finds nothing to re-approve.
#[test]
fn mcp_pin_pins_every_server_everything_tool_and_diff_against_them_is_clean() {
    let deps = node_deps();
    let server = EverythingServer::start(&deps);
    let url = server.url();
    let dir = tempfile::tempdir().expect("temp dir");
    let defs = dir.path().join("definitions.json");
    let (code, pins, err) = mcp_pin(&[
        "fetch",
        "--url",
        &url,
        "--definitions",
        defs.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "fetch: {err}");
    let block: Value = serde_json::from_str(&pins).unwrap();
    let pinned: BTreeSet<String> = block["pinning"]["pins"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();

    let session = mcp_integration::client::Session::initialize(&url).expect("initialize");
    let mut listed = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let params = cursor.as_ref().map_or(json!({}), |c| json!({"cursor": c}));
        let resp = session.call("tools/list", params).expect("tools/list");
        let result = &resp["result"];
        for t in result["tools"].as_array().expect("tools") {
            listed.insert(t["name"].as_str().unwrap().to_owned());
        }
        match result.get("nextCursor").and_then(Value::as_str) {
            Some(c) if !c.is_empty() => cursor = Some(c.to_owned()),
            _ => break,
        }
    }
    let _ = session.delete();
    assert!(!listed.is_empty());
    assert_eq!(pinned, listed, "a pin for every listed tool, no other");

    // The legacy era gives the same pins (auto may have spoken 2026-07-28).
    let (code, legacy, err) = mcp_pin(&["fetch", "--url", &url, "--era", "2025"]);
    assert_eq!(code, 0, "fetch --era 2025: {err}");
    assert_eq!(legacy, pins);

    let config = dir.path().join("pins.json");
    fs::write(&config, &pins).unwrap();
    let (code, out, err) = mcp_pin(&[
        "diff",
        "--strict",
        "--url",
        &url,
        "--config",
        config.to_str().unwrap(),
        "--definitions",
        defs.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "diff:\n{out}{err}");
    assert!(
        out.ends_with(&format!(
            "summary: {} unchanged, 0 drifted, 0 new, 0 gone, 0 with a poisoning marker\n",
            listed.len()
        )),
        "{out}"
    );
}

/// The 2026-07-28 conformance fixture speaks both eras (with different tool sets): `mcp-pin`
/// pins what each era lists, `auto` picks the stateless era, and `diff` against each is clean.
#[test]
fn mcp_pin_speaks_both_eras_with_the_2026_07_28_conformance_fixture() {
    let deps = node_deps();
    let server = FixtureServer::start(&deps, FIXTURE_2026_07_28);
    let url = server.url();
    let dir = tempfile::tempdir().expect("temp dir");
    for (era, marker) in [
        ("auto", "(2026-07-28 stateless)"),
        ("2026", "(2026-07-28 stateless)"),
        ("2025", " session)"),
    ] {
        let (code, pins, err) = mcp_pin(&["fetch", "--url", &url, "--era", era]);
        assert_eq!(code, 0, "fetch --era {era}: {err}");
        assert!(err.contains(marker), "--era {era}: {err}");
        let block: Value = serde_json::from_str(&pins).unwrap();
        assert!(!block["pinning"]["pins"].as_object().unwrap().is_empty());
        let config = dir.path().join(format!("pins-{era}.json"));
        fs::write(&config, &pins).unwrap();
        let (code, out, err) = mcp_pin(&[
            "diff",
            "--strict",
            "--era",
            era,
            "--url",
            &url,
            "--config",
            config.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "diff --era {era}:\n{out}{err}");
    }
}
