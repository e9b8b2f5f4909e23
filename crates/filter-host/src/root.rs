//! The root context: loads the configuration once per VM and creates request contexts.

use crate::abi::{self, BufferType};
use crate::http::{McpHttp, Shell};
use crate::metrics::{GateStats, Registry};
use crate::McpFilter;
use mcp_core::config::{self, Loaded};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;
use std::rc::Rc;

/// Everything a request context needs from its root, shared by `Rc`.
pub(crate) struct Configured<F: McpFilter> {
    /// [`McpFilter::name`] of this configuration.
    pub name: &'static str,
    pub config: Rc<Loaded<F::Config>>,
    pub shared: Rc<F::Shared>,
    pub gate: GateStats,
}

/// Root context of a filter.
pub struct McpRoot<F: McpFilter> {
    configured: Option<Rc<Configured<F>>>,
    /// A timer is set (so a later configuration without one must clear it).
    ticking: bool,
}

impl<F: McpFilter> Default for McpRoot<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: McpFilter> McpRoot<F> {
    /// An unconfigured root.
    pub fn new() -> Self {
        McpRoot {
            configured: None,
            ticking: false,
        }
    }

    fn configure(&mut self, size: usize) -> Result<(), String> {
        let raw = abi::get_buffer(BufferType::PluginConfiguration, 0, size)
            .map_err(|e| format!("cannot read the plugin configuration: {e}"))?;
        let loaded = config::load::<F::Config>(&raw).map_err(|e| e.to_string())?;
        let mut reg = Registry::default();
        let shared = F::shared(&loaded, &mut reg)?;
        let name = F::name(&shared);
        let gate = GateStats::new(&mut reg, name);
        if reg.failures() > 0 {
            crate::log!(Warn, "{} metric definitions failed", reg.failures());
        }
        let tick = F::tick_period_ms(&shared);
        self.configured = Some(Rc::new(Configured {
            name,
            config: Rc::new(loaded),
            shared: Rc::new(shared),
            gate,
        }));
        if tick.is_some() || self.ticking {
            let ms = tick.unwrap_or(0);
            match abi::set_tick_period_ms(ms) {
                Ok(()) => self.ticking = ms > 0,
                Err(e) => crate::log!(Error, "cannot set the tick period: {e}"),
            }
        }
        Ok(())
    }
}

impl<F: McpFilter> std::fmt::Debug for McpRoot<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpRoot")
            .field("filter", &F::NAME)
            .field("configured", &self.configured.is_some())
            .finish()
    }
}

impl<F: McpFilter> Context for McpRoot<F> {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        if crate::http::deliver_call(token_id, num_headers, body_size) {
            return;
        }
        if let Some(c) = &self.configured {
            F::on_http_call_response(&c.shared, token_id, num_headers, body_size);
        }
    }
}

impl<F: McpFilter> RootContext for McpRoot<F> {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        crate::log::refresh_level();
        match self.configure(plugin_configuration_size) {
            Ok(()) => {
                if let Some(c) = &self.configured {
                    let common = &c.config.common;
                    crate::log!(
                        Info,
                        "configured: max_body_bytes={} failure_mode={:?} batch={:?} ({} {})",
                        common.max_body_bytes,
                        common.failure_mode,
                        common.batch,
                        env!("CARGO_PKG_NAME"),
                        env!("CARGO_PKG_VERSION")
                    );
                }
                true
            }
            Err(e) => {
                // Returning false makes Envoy refuse the plugin: at startup Envoy exits, over
                // xDS/ECDS the update is rejected. Never run with a configuration nobody wrote.
                crate::log!(Critical, "invalid configuration: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        // The SDK panics on None, so an unconfigured root still returns a context; it refuses
        // every request (fail closed).
        Some(Box::new(Shell(McpHttp::<F>::new(
            context_id,
            self.configured.clone(),
        ))))
    }

    fn on_tick(&mut self) {
        if let Some(c) = &self.configured {
            F::on_tick(&c.shared);
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
