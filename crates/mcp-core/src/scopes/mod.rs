//! `mcp_scopes` decisions: OAuth 2.1 resource-server behaviour for MCP, without proxy-wasm.
//!
//! The MCP authorization spec (2025-11-25 and 2026-07-28) makes an MCP server an OAuth resource
//! server: it publishes Protected Resource Metadata (RFC 9728), accepts only bearer tokens issued
//! for it (RFC 8707 audience), answers 401 with a `WWW-Authenticate` challenge that points at the
//! metadata, and 403 `insufficient_scope` naming every scope an operation needs (step-up).
//!
//! - [`config`]: the filter's configuration, validated and compiled into a [`config::Policy`];
//! - [`token`]: bearer extraction, compact-JWS splitting, header checks (algorithm allow-list)
//!   and claim validation (`iss`, `aud`, `exp`, `nbf`, scopes) with the caller's clock;
//! - [`jwks`]: JWK Set parsing into key material and the algorithms each key may verify;
//! - [`policy`]: the scopes an operation needs (rules by tool glob and method);
//! - [`challenge`]: `WWW-Authenticate` values, local-reply bodies and the metadata document;
//! - [`exchange`]: per-user upstream credentials by OAuth 2.0 Token Exchange (RFC 8693).
//!
//! Signature verification itself is done by the filter (it needs a crypto library); everything
//! else, including which key and algorithm may be used for a token, is decided here.

pub mod challenge;
pub mod config;
pub mod exchange;
pub mod jwks;
pub mod policy;
pub mod token;

pub use config::{Alg, Policy, ScopesConfig};
pub use policy::{Requirement, Verdict};
pub use token::{AuthError, Identity};
