//! `mcp_scopes`: JWT verification and per-tool OAuth scopes with MCP authorization challenges.
//!
//! Foundation stage: the filter loads and validates its configuration (the common keys only;
//! its own keys arrive with issue #3) and runs the shared request gate of `filter-host`,
//! so malformed, ambiguous or smuggling requests are already refused with JSON-RPC errors.

use filter_host::metrics::Registry;
use filter_host::McpFilter;
use mcp_core::config::{Loaded, NoOwnKeys};
use std::rc::Rc;

/// The `mcp_scopes` filter.
#[derive(Debug)]
pub struct ScopesFilter;

impl McpFilter for ScopesFilter {
    const NAME: &'static str = "mcp_scopes";
    type Config = NoOwnKeys;
    type Shared = ();

    fn shared(_config: &Loaded<NoOwnKeys>, _metrics: &mut Registry) -> Result<(), String> {
        Ok(())
    }

    fn new(_shared: Rc<()>, _config: Rc<Loaded<NoOwnKeys>>) -> Self {
        ScopesFilter
    }
}

filter_host::export_filter!(ScopesFilter);
