//! `bench_floor`: a measuring instrument for `make bench`, not a product filter.
//!
//! It does the least a proxy-wasm HTTP filter can do, so its cost over plain Envoy is the floor
//! under every wasm filter in the same Envoy (V8 start of every callback, context bookkeeping,
//! the body copy). Modes, from the plugin configuration string:
//! - `noop`: every callback continues at once (the VM crossings only);
//! - `body`: holds the request headers (`allow_on_headers_stop_iteration`), waits for the whole
//!   request body and copies it into wasm memory, as every MCP request gate must;
//! - `both`: `body`, and the same for the response (headers held, whole body copied).
//!
//! It talks to the SDK directly (not through filter-host) on purpose: any layer would be part of
//! the measurement. It has no data-path failure modes: it never reads anything but the bodies and
//! ignores hostcall results.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Floor::default()) });
}}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Mode {
    #[default]
    Noop,
    Body,
    Both,
}

#[derive(Debug, Default)]
struct Floor {
    mode: Mode,
}

impl Context for Floor {}

impl RootContext for Floor {
    fn on_configure(&mut self, _size: usize) -> bool {
        self.mode = match self
            .get_plugin_configuration()
            .as_deref()
            .map(<[u8]>::trim_ascii)
        {
            Some(b"noop") => Mode::Noop,
            Some(b"body") => Mode::Body,
            Some(b"both") => Mode::Both,
            // Refuse anything else: a typo would silently measure the wrong thing.
            _ => return false,
        };
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request { mode: self.mode }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Request {
    mode: Mode,
}

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.mode != Mode::Noop && !end_of_stream {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.mode == Mode::Noop {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        // The copy into wasm memory is what is measured; the bytes themselves are not used.
        drop(self.get_http_request_body(0, body_size));
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.mode == Mode::Both && !end_of_stream {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.mode != Mode::Both {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        drop(self.get_http_response_body(0, body_size));
        Action::Continue
    }
}
