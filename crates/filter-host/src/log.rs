//! Logging through the host, checked against the host's level before anything is formatted.
//!
//! Never log bodies, tokens, claims or matched values; log rule names, counts and sizes.

use crate::abi::{self, LogLevel};
use std::cell::Cell;
use std::fmt;

thread_local! {
    // The host level is read once per configuration; a VM is single-threaded.
    static LEVEL: Cell<u32> = const { Cell::new(LogLevel::Info as u32) };
}

/// Re-reads the host's log level (called on configure).
pub fn refresh_level() {
    LEVEL.with(|l| l.set(abi::log_level() as u32));
}

/// Whether a line at `level` would be written.
pub fn enabled(level: LogLevel) -> bool {
    LEVEL.with(|l| level as u32 >= l.get())
}

/// Writes `message` at `level` if enabled. Envoy prefixes every line with the plugin name and
/// root id (`wasm log mcp_tools mcp_tools: ...`), so no prefix is added here.
pub fn write(level: LogLevel, args: fmt::Arguments<'_>) {
    if enabled(level) {
        abi::log(level, &args.to_string());
    }
}

/// `log!(Warn, "refused {}", n)`
#[macro_export]
macro_rules! log {
    ($level:ident, $($arg:tt)*) => {
        $crate::log::write($crate::abi::LogLevel::$level, format_args!($($arg)*))
    };
}
