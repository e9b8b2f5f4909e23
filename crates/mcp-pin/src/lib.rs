//! `mcp-pin`: pins are configuration, approved by people (docs/pinning.md, "Approval
//! workflow").
//!
//! - `mcp-pin fetch --url URL` lists a live MCP server's tools (Streamable HTTP, either era) and
//!   prints the `pinning` block that approves exactly those definitions, with the filter's own
//!   fingerprint ([`mcp_core::pinning::fingerprint`]).
//! - `mcp-pin diff --url URL --config FILE` compares the server's current tools with the pins
//!   of a filter configuration, with the filter's own verdict on each definition; exit status 1
//!   when something must be re-approved.
//!
//! [`run`] is the whole program (the binary only forwards its arguments and exit status), so
//! the tests drive exactly what users run.

pub mod client;
pub mod config;
#[cfg(test)]
mod fake;
pub mod report;

use client::{ClientOptions, EraChoice};
use mcp_core::pinning::{Detector, DEFAULT_MAX_DESCRIPTION_BYTES};
use report::{EXIT_ERROR, EXIT_OK};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Default per-request timeout.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// `mcp-pin --help`.
pub const USAGE: &str = "\
mcp-pin: approve MCP tool definitions as pins, and check a server against them (docs/pinning.md)

USAGE:
  mcp-pin fetch --url URL [OPTIONS] [--definitions FILE]
      Prints a pinning block for the server's current tools (sorted, pretty JSON) on stdout,
      ready for the mcp_tools configuration or the tools section of mcp_gateway.
      --definitions FILE  also writes the approved definitions (name -> tool object as listed)
  mcp-pin diff --url URL --config FILE [OPTIONS] [--definitions FILE] [--strict]
      Compares the server's current tools with the pins of FILE (an mcp_tools configuration,
      an mcp_gateway configuration, or a bare pinning block) and prints, per tool: unchanged,
      DRIFT (approved -> listed fingerprint, and a line diff of the definition when
      --definitions gives the approved ones), NEW (listed, not pinned), GONE (pinned, not
      listed), and the poisoning markers the filter's detector finds.
      --strict            new and gone tools also exit 1

OPTIONS:
  --url URL               the MCP endpoint (http:// or https://), e.g. http://localhost:3001/mcp
  -H, --header 'Name: value'
                          a request header sent on every request (repeatable), e.g.
                          -H 'Authorization: Bearer ...'
  --cacert FILE           trust the CA certificates of this PEM file for https (instead of the
                          Mozilla roots)
  --timeout SECONDS       per-request timeout (default 30)
  --era auto|2025|2026    auto (default): 2026-07-28 server/discover, else a legacy initialize
                          session; 2025: legacy session; 2026: stateless 2026-07-28
  -h, --help              this text
  -V, --version           the version

EXIT STATUS:
  0  fetch: done; diff: nothing to re-approve
  1  diff: a pinned tool drifted, or the filter would quarantine a listed tool for a poisoning
     marker (or, with --strict, a tool is new or gone)
  2  an error: bad arguments, unreadable configuration, unreachable server, not MCP
";

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Print the pins of the current tools.
    Fetch,
    /// Compare the current tools with the pins of `config`.
    Diff {
        /// The filter configuration.
        config: PathBuf,
        /// New and gone tools exit 1.
        strict: bool,
    },
    /// Print [`USAGE`].
    Help,
    /// Print the version.
    Version,
}

/// Parsed command line.
#[derive(Debug, Clone)]
pub struct Args {
    /// The subcommand.
    pub command: Command,
    /// Connection options.
    pub client: ClientOptions,
    /// `--definitions FILE`: written by fetch, read by diff.
    pub definitions: Option<PathBuf>,
}

/// Parses the arguments (without the program name).
pub fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut it = args.iter();
    let command = match it.next().map(String::as_str) {
        Some("fetch") => "fetch",
        Some("diff") => "diff",
        Some("-h" | "--help" | "help") => {
            return Ok(Args::simple(Command::Help));
        }
        Some("-V" | "--version") => return Ok(Args::simple(Command::Version)),
        Some(other) => return Err(format!("unknown command {other:?} (fetch or diff)")),
        None => return Err("a command is needed: fetch or diff".into()),
    };
    let (mut url, mut config, mut definitions, mut cacert) = (None, None, None, None);
    let mut headers = Vec::new();
    let mut timeout = Duration::from_secs(DEFAULT_TIMEOUT_SECS);
    let mut era = EraChoice::Auto;
    let mut strict = false;
    while let Some(arg) = it.next() {
        // `--name=value` or `--name value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs {what}")),
            }
        };
        match flag {
            "--url" => url = Some(value("a URL")?),
            "-H" | "--header" => headers.push(parse_header(&value("'Name: value'")?)?),
            "--cacert" => cacert = Some(PathBuf::from(value("a PEM file")?)),
            "--timeout" => {
                let v = value("a number of seconds")?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
                    .ok_or_else(|| {
                        format!("--timeout {v:?}: a number of seconds, 0 < s ≤ 86400")
                    })?;
                timeout = Duration::from_secs_f64(secs);
            }
            "--era" => {
                era = match value("auto, 2025 or 2026")?.as_str() {
                    "auto" => EraChoice::Auto,
                    "2025" | "legacy" => EraChoice::Legacy,
                    "2026" | "2026-07-28" | "stateless" => EraChoice::Modern,
                    other => return Err(format!("--era {other:?}: auto, 2025 or 2026")),
                }
            }
            "--definitions" => definitions = Some(PathBuf::from(value("a file")?)),
            "--config" if command == "diff" => config = Some(PathBuf::from(value("a file")?)),
            "--strict" if command == "diff" && inline.is_none() => strict = true,
            "-h" | "--help" => return Ok(Args::simple(Command::Help)),
            other => return Err(format!("{command}: unknown option {other:?}")),
        }
    }
    let url = url.ok_or_else(|| format!("{command}: --url is required"))?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("--url {url:?}: an http:// or https:// URL"));
    }
    let command = if command == "diff" {
        Command::Diff {
            config: config.ok_or("diff: --config is required")?,
            strict,
        }
    } else {
        Command::Fetch
    };
    Ok(Args {
        command,
        client: ClientOptions {
            url,
            headers,
            cacert,
            timeout,
            era,
        },
        definitions,
    })
}

impl Args {
    fn simple(command: Command) -> Self {
        Args {
            command,
            client: ClientOptions {
                url: String::new(),
                headers: Vec::new(),
                cacert: None,
                timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
                era: EraChoice::Auto,
            },
            definitions: None,
        }
    }
}

/// `Name: value` (curl's `-H` syntax).
pub fn parse_header(h: &str) -> Result<(String, String), String> {
    let (name, value) = h
        .split_once(':')
        .ok_or_else(|| format!("-H {h:?}: expected 'Name: value'"))?;
    let name = name.trim();
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !valid {
        return Err(format!("-H {h:?}: {name:?} is not a header name"));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// The whole program: parses `args` (without the program name), runs, writes the result to
/// `out` and messages to `err`, returns the exit status (0, 1 or 2).
pub fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let args = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = writeln!(err, "mcp-pin: {e}\n(mcp-pin --help for usage)");
            return EXIT_ERROR;
        }
    };
    match run_parsed(&args, out, err) {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "mcp-pin: error: {e}");
            EXIT_ERROR
        }
    }
}

fn run_parsed(args: &Args, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32, String> {
    let write_err = |e: std::io::Error| format!("writing the output: {e}");
    match &args.command {
        Command::Help => {
            out.write_all(USAGE.as_bytes()).map_err(write_err)?;
            Ok(EXIT_OK)
        }
        Command::Version => {
            writeln!(out, "mcp-pin {}", env!("CARGO_PKG_VERSION")).map_err(write_err)?;
            Ok(EXIT_OK)
        }
        Command::Fetch => fetch(args, out, err),
        Command::Diff { config, strict } => diff(args, config, *strict, out, err),
    }
}

fn list(args: &Args, err: &mut dyn Write) -> Result<client::Listing, String> {
    let listing = client::list_tools(&args.client).map_err(|e| e.to_string())?;
    let _ = writeln!(
        err,
        "mcp-pin: {} tool(s) in {} page(s) from {}{} ({} {})",
        listing.tools.len(),
        listing.pages,
        args.client.url,
        listing
            .server
            .as_deref()
            .map(|s| format!(" [{s}]"))
            .unwrap_or_default(),
        listing.protocol_version,
        if listing.stateless {
            "stateless"
        } else {
            "session"
        },
    );
    Ok(listing)
}

fn fetch(args: &Args, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32, String> {
    let listing = list(args, err)?;
    let fp = report::fingerprint_all(&listing.tools).map_err(|e| e.0)?;
    for w in &fp.warnings {
        let _ = writeln!(err, "mcp-pin: warning: {w}");
    }
    // The filter's detector with the default limit: a reviewer must see what it would flag.
    let detector = Detector::new(DEFAULT_MAX_DESCRIPTION_BYTES).map_err(|e| e.to_string())?;
    for (name, (_, raw)) in &fp.tools {
        if let Some(m) = detector.scan(raw) {
            let _ = writeln!(
                err,
                "mcp-pin: warning: tool {name:?} has a poisoning marker ({}): the filter \
                 quarantines it under \"poisoning\": \"quarantine\" even when pinned; review it \
                 before approving",
                m.as_str()
            );
        }
    }
    if let Some(path) = &args.definitions {
        std::fs::write(path, report::definitions_file(&fp))
            .map_err(|e| format!("--definitions {}: {e}", path.display()))?;
    }
    out.write_all(report::pinning_block(&fp).as_bytes())
        .map_err(|e| format!("writing the output: {e}"))?;
    Ok(EXIT_OK)
}

fn diff(
    args: &Args,
    config: &std::path::Path,
    strict: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32, String> {
    // Configuration first: a bad one is an error before any network traffic.
    let text = std::fs::read(config).map_err(|e| format!("--config {}: {e}", config.display()))?;
    let (cfg, _) =
        config::pinning_from(&text).map_err(|e| format!("--config {}: {e}", config.display()))?;
    let definitions = match &args.definitions {
        Some(path) => {
            let text = std::fs::read(path)
                .map_err(|e| format!("--definitions {}: {e}", path.display()))?;
            Some(
                report::read_definitions(&text)
                    .map_err(|e| format!("--definitions {}: {e}", path.display()))?,
            )
        }
        None => None,
    };
    let listing = list(args, err)?;
    let report = report::compare(&cfg, &listing.tools, definitions.as_ref())
        .map_err(|e| format!("--config {}: {e}", config.display()))?;
    out.write_all(report.render().as_bytes())
        .map_err(|e| format!("writing the output: {e}"))?;
    Ok(report.exit_code(strict))
}

#[cfg(test)]
mod tests;
