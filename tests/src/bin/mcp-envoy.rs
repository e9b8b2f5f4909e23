//! Runs one of the `envoy/*.yaml` configs through the test harness renderer (absolute `.wasm`
//! paths, chosen ports and upstream) — for `make demo` and `make bench`.
//!
//! `mcp-envoy <config.yaml> [--port 10000] [--admin-port 9901] [--upstream 127.0.0.1:3001]
//! [--plugin NAME=JSON|NAME=@file] [--concurrency N] [--log-level L] [--render]`

use anyhow::{anyhow, bail, Context as _, Result};
use mcp_integration::envoy::envoy_command;
use mcp_integration::{EnvoyConfig, EnvoyOptions};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;

const USAGE: &str = "usage: mcp-envoy <config.yaml> [--port 10000] [--admin-port 9901] \
[--upstream 127.0.0.1:3001] [--plugin NAME=JSON|NAME=@file]... [--concurrency N] [--log-level L] [--render]";

fn main() -> Result<()> {
    let mut config: Option<String> = None;
    let mut port: u16 = 10000;
    let mut admin_port: u16 = 9901;
    let mut upstream: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 3001));
    let mut plugins: Vec<(String, String)> = Vec::new();
    let mut opts = EnvoyOptions::default();
    let mut render_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .ok_or_else(|| anyhow!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--port" => port = val()?.parse().context("--port")?,
            "--admin-port" => admin_port = val()?.parse().context("--admin-port")?,
            "--upstream" => upstream = val()?.parse().context("--upstream")?,
            "--plugin" => {
                let v = val()?;
                let (name, json) = v
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--plugin NAME=JSON"))?;
                let json = match json.strip_prefix('@') {
                    Some(file) => {
                        std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?
                    }
                    None => json.to_string(),
                };
                plugins.push((name.to_string(), json));
            }
            "--concurrency" => opts = opts.concurrency(val()?.parse().context("--concurrency")?),
            "--log-level" => opts = opts.log_level(&val()?),
            "--render" => render_only = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other if config.is_none() && !other.starts_with('-') => {
                config = Some(other.to_string())
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    let Some(config) = config else {
        bail!("{USAGE}")
    };
    // Accept both `mcp-gateway.yaml` and `envoy/mcp-gateway.yaml`.
    let file = config.rsplit('/').next().unwrap_or(&config);
    let mut cfg = EnvoyConfig::load(file)?.upstream("mcp_upstream", upstream);
    for (name, json) in &plugins {
        cfg = cfg.plugin_config(name, json);
    }
    if render_only {
        print!("{}", cfg.render(port, admin_port)?);
        return Ok(());
    }
    // Exec rather than supervise: Ctrl-C and `kill` then reach Envoy itself and nothing is left
    // orphaned. The rendered config is kept next to the build output for inspection.
    let yaml = cfg.render(port, admin_port)?;
    let dir = mcp_integration::paths::repo_root()
        .join("target")
        .join("mcp-envoy");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let config_path = dir.join(format!("{port}-{file}"));
    std::fs::write(&config_path, yaml)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let bin = mcp_integration::paths::envoy_bin()?;
    eprintln!(
        "mcp-envoy: {file} on http://127.0.0.1:{port}/mcp -> {upstream}, admin http://127.0.0.1:{admin_port}, config {}",
        config_path.display()
    );
    let err = envoy_command(&bin, &config_path, port, &opts).exec();
    Err(anyhow!("exec {}: {err}", bin.display()))
}
