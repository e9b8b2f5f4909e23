//! `tests/peers/mcp_client.py` under a PyPI `mcp` venv (`make peers-deps`), for the `pypi_`
//! tests outside `tests/tests/peers.rs`.
// Assertion helpers: a client that printed no summary is a failed test.
#![allow(clippy::panic)]

use crate::paths;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// The Python of a project-local venv (`.venv-mcp1`, `.venv-mcp2`).
pub fn python(venv: &str) -> PathBuf {
    paths::repo_root().join(venv).join("bin/python")
}

/// Runs `mcp_client.py URL ARGS...` with `venv`'s Python and returns its JSON summary (the last
/// line it printed).
pub fn summary(venv: &str, url: &str, args: &[String]) -> Value {
    let script = paths::repo_root().join("tests/peers/mcp_client.py");
    let out = Command::new(python(venv))
        .arg(script)
        .arg(url)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python(venv).display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| {
        panic!(
            "no summary ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
