//! Pure logic shared by the mcp-wasm-filters: JSON-RPC 2.0 / MCP message inspection,
//! an incremental SSE parser, byte-splicing edits of `tools/list` results, glob patterns
//! and configuration loading.
//!
//! Nothing here touches proxy-wasm: every function is tested natively with `cargo test`
//! and compiled unchanged into the `wasm32-wasip1` filters. The filters decide here and
//! act in their glue (see `crates/filter-host`).
#![warn(missing_docs)]

pub mod base64;
pub mod config;
pub mod gateway;
pub mod glob;
pub mod json;
pub mod jsonrpc;
pub mod mcp;
pub mod pii;
pub mod pinning;
pub mod scopes;
pub mod sse;
pub mod telemetry;
pub mod tools;
pub mod tools_list;
pub mod visibility;
