//! Integration-test support for mcp-wasm-filters: render the user-facing `envoy/*.yaml` configs
//! and run them on a real Envoy ([`Envoy`]), a scriptable test MCP server ([`server`]) and a
//! small blocking MCP client ([`client`]). Used by `tests/tests/*.rs`, `make demo` and `make bench`.

pub mod client;
pub mod envoy;
pub mod jwt_authn;
pub mod paths;
pub mod pii_support;
pub mod pypi_client;
pub mod schemas;
pub mod scopes_support;
pub mod server;
pub mod telemetry_support;
pub mod token_exchange_support;
pub mod tools_support;

pub use envoy::{free_port, validate_config, Envoy, EnvoyConfig, EnvoyOptions};
pub use server::{ResponseMode, ServerOptions, TestServer, ToolSpec};
