//! `mcp-pin`: see `mcp_pin::USAGE` and docs/pinning.md.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = mcp_pin::run(&args, &mut std::io::stdout(), &mut std::io::stderr());
    std::process::exit(code);
}
