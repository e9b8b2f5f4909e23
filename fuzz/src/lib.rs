//! Coverage-guided fuzz targets for `mcp-core` (see `fuzz/README.md`).
//!
//! Each target is a plain `fn(&[u8])` that panics when an invariant breaks. The same function
//! runs under libFuzzer (`fuzz_targets/<name>.rs`, built on the stable toolchain with
//! sanitizer-coverage codegen flags) and under `cargo test`, which replays every file of
//! `fuzz/corpus/<name>/` through it (`tests/replay.rs`).

pub mod json;
pub mod jtree;
pub mod known;
pub mod pii;
pub mod pinning;
pub mod scopes;
pub mod sse;
pub mod tools_list;
pub mod util;

/// A fuzz target: panics when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target: its name (= its corpus directory and `fuzz_targets/<name>.rs`) and function.
pub const TARGETS: &[(&str, Target)] = &[
    ("json", json::run),
    ("sse", sse::run),
    ("tools_list", tools_list::run),
    ("pii", pii::run),
    ("scopes", scopes::run),
    ("pinning", pinning::run),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}
