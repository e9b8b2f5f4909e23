//! Open bugs the fuzzer found in mcp-core, and the exact shapes of input that trigger them.
//!
//! Fuzz code does not fix mcp-core. A libFuzzer run stops at the first failure, so while a
//! reported bug is open its checks *tolerate* that one shape of input (and only it), letting the
//! fuzzer look for other bugs. The reproducers are in `fuzz/crashers/<target>/`; replaying them
//! is **strict** (`open_crashers_still_fail` in tests/replay.rs), and so is any run with
//! `MCP_FUZZ_STRICT=1` in the environment. When a bug is fixed, delete its entry here (the
//! compiler then points at the tolerance to remove) and move its crasher to `fuzz/corpus/`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

static FORCE_STRICT: AtomicBool = AtomicBool::new(false);

/// Makes every later check strict (no known bug tolerated), for replaying crashers.
pub fn set_strict(strict: bool) {
    FORCE_STRICT.store(strict, Ordering::SeqCst);
}

fn strict() -> bool {
    static ENV: OnceLock<bool> = OnceLock::new();
    FORCE_STRICT.load(Ordering::SeqCst)
        || *ENV.get_or_init(|| std::env::var_os("MCP_FUZZ_STRICT").is_some_and(|v| v != "0"))
}

/// The open bugs. Each names its reproducer(s) in `fuzz/crashers/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// `sse::rewrite_event_data`: when the first `data` line ends in CR, only `data` lines
    /// follow it and the blank line ends in LF, the new data lines end in CR and the blank
    /// line's LF joins the last of them into one CRLF: the rewritten event has no terminating
    /// blank line and merges with the next one. Crasher: `crashers/sse/rewrite_cr_then_lf_blank`.
    SseRewriteCrJoinsLf,
    /// `pii::detect`: a value found right next to (or overlapping) another finding is missed
    /// or only partly replaced, so scanning the output finds it: an email's local part is read
    /// backwards into the previous email (`mailto:a@x.com?cc=b@y.com` keeps `b@y.com`), a
    /// 13–19 digit card followed by a space and digits is never a card (`4111111111111111
    /// 123`), and `mask` keeps 4 characters that can complete the next value. Crashers:
    /// `crashers/pii/*`.
    PiiAdjacentValueMissed,
}

/// Whether a failure of the shape of `bug` is tolerated (non-strict runs only).
pub fn tolerated(bug: Bug) -> bool {
    let _ = bug;
    !strict()
}
