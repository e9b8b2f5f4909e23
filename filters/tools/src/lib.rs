//! `mcp_tools`: per-caller `tools/list` filtering; hidden tools cannot be called.
//!
//! Foundation stage: the filter loads and validates its configuration (the common keys only;
//! its own keys arrive with issue #6) and runs the shared request gate of `filter-host`,
//! so malformed, ambiguous or smuggling requests are already refused with JSON-RPC errors.

use filter_host::metrics::Registry;
use filter_host::McpFilter;
use mcp_core::config::{Loaded, NoOwnKeys};
use std::rc::Rc;

/// The `mcp_tools` filter.
#[derive(Debug)]
pub struct ToolsFilter;

impl McpFilter for ToolsFilter {
    const NAME: &'static str = "mcp_tools";
    type Config = NoOwnKeys;
    type Shared = ();

    fn shared(_config: &Loaded<NoOwnKeys>, _metrics: &mut Registry) -> Result<(), String> {
        Ok(())
    }

    fn new(_shared: Rc<()>, _config: Rc<Loaded<NoOwnKeys>>) -> Self {
        ToolsFilter
    }
}

filter_host::export_filter!(ToolsFilter);
