//! `make schemas`: regenerates `schemas/<filter>.schema.json` from the configuration structs.
//!
//! `schemas [DIR]` writes into DIR (default: the repository's `schemas/`).
//! `tests/tests/examples.rs` fails when the committed files differ from what this writes.

use anyhow::Result;
use mcp_integration::schemas;
use std::path::PathBuf;

fn main() -> Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(schemas::schemas_dir, PathBuf::from);
    for path in schemas::write_all(&dir)? {
        println!("wrote {}", path.display());
    }
    Ok(())
}
