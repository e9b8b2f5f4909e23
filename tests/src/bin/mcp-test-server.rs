//! The demo/bench MCP server: `mcp-test-server --port 3001 [--mode sse|json] [--tools N]
//! [--host 127.0.0.1] [--no-session] [--threads N] [--quiet]`.

use anyhow::{anyhow, bail, Context as _, Result};
use mcp_integration::server::{ResponseMode, ServerOptions, TestServer};
use std::net::{IpAddr, SocketAddr};

const USAGE: &str = "usage: mcp-test-server [--port 3001] [--host 127.0.0.1] [--mode sse|json] \
[--tools N] [--no-session] [--threads N] [--quiet]";

fn main() -> Result<()> {
    let mut port: u16 = 3001;
    let mut host: IpAddr = IpAddr::from([127, 0, 0, 1]);
    let mut opts = ServerOptions::default().log_requests(true);
    let mut tools: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .ok_or_else(|| anyhow!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--port" => port = val()?.parse().context("--port")?,
            "--host" => host = val()?.parse().context("--host")?,
            "--mode" => {
                let m = val()?;
                opts = opts.mode(
                    ResponseMode::parse(&m).ok_or_else(|| anyhow!("--mode {m}: sse or json"))?,
                );
            }
            "--tools" => tools = Some(val()?.parse().context("--tools")?),
            "--threads" => opts = opts.worker_threads(val()?.parse().context("--threads")?),
            "--no-session" => opts = opts.require_session(false),
            "--quiet" => opts = opts.log_requests(false),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if let Some(n) = tools {
        opts = opts.tools(mcp_integration::server::generated_tools(n));
    }
    let mode = opts.mode;
    let n_tools = opts.tools.len();
    let server = TestServer::start(opts.bind(SocketAddr::new(host, port)))?;
    println!(
        "mcp-test-server listening on {} (mode {mode:?}, {n_tools} tools)",
        server.url("/mcp")
    );
    loop {
        std::thread::park();
    }
}
