//! Native micro-benchmark of the `mcp_pii` scanner (MB/s): the detectors alone over clean
//! and PII-laden text, and whole `tools/call` results (scan + splice) of about 11 KB.
//! Run with `cargo bench -p mcp-core --bench pii`.
// A benchmark binary, not filter code: failing loudly on a broken setup is what it should do.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::hint::black_box;
mod common;
use common::measure;

use mcp_core::json::Limits;
use mcp_core::pii::detect::{scan, DetectorSet};
use mcp_core::pii::{Config, Engine, Findings};

/// About 11 KB of realistic clean prose with numbers, dates, versions, ids and hashes.
fn clean_text() -> String {
    let line = "Order ORD-2024-000123 shipped on 2024-01-15T10:30:00Z via carrier UPS; v2.10.4 of the \
                client (build 4.0.0.12) reported 3 items, total $1,299.00, id 550e8400-e29b-41d4-a716-446655440000, \
                sha e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855. Notes: the customer asked \
                about delivery windows and gift wrapping options for the next quarter.\n";
    let mut s = String::new();
    while s.len() < 11 * 1024 {
        s.push_str(line);
    }
    s
}

const PII: [&str; 10] = [
    "alice@example.com",
    "4111 1111 1111 1111",
    "219-09-9999",
    "+44 20 7946 0958",
    "DE89 3704 0044 0532 0130 00",
    "192.168.1.20",
    "2001:db8::8a2e:370:7334",
    "AKIAUVW75EFR6EDT4SYW",
    "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d",
    "(415) 555-0132",
];

/// The clean text with ten PII values spread through it.
fn pii_text() -> String {
    let clean = clean_text();
    let step = clean.len() / PII.len();
    let mut s = String::with_capacity(clean.len() + 400);
    let mut last = 0;
    for (i, v) in PII.iter().enumerate() {
        let mut at = (i * step).max(last);
        while !clean.is_char_boundary(at) || !clean[..at].ends_with(' ') {
            at += 1;
        }
        s.push_str(&clean[last..at]);
        s.push_str(v);
        s.push(' ');
        last = at;
    }
    s.push_str(&clean[last..]);
    s
}

fn tool_result(text: &str) -> Vec<u8> {
    serde_json::json!({"jsonrpc": "2.0", "id": 42, "result": {"content": [{"type": "text", "text": text}]}})
        .to_string()
        .into_bytes()
}

fn main() {
    let clean = clean_text();
    let dirty = pii_text();
    let mut found = Vec::new();
    scan(&dirty, DetectorSet::all(), &mut found);
    assert_eq!(
        found.len(),
        PII.len(),
        "every planted value is found: {found:?}"
    );
    found.clear();
    scan(&clean, DetectorSet::all(), &mut found);
    assert!(
        found.is_empty(),
        "no false positive in the clean text: {found:?}"
    );

    measure("detectors, clean 11 KB text", clean.len(), || {
        let mut out = Vec::new();
        scan(black_box(&clean), DetectorSet::all(), &mut out);
        black_box(out);
    });
    measure(
        "detectors, 11 KB text with 10 PII values",
        dirty.len(),
        || {
            let mut out = Vec::new();
            scan(black_box(&dirty), DetectorSet::all(), &mut out);
            black_box(out);
        },
    );

    let engine = Engine::new(&Config::default()).unwrap();
    let with_custom = Config {
        custom: vec![mcp_core::pii::CustomPattern {
            name: "employee_id".into(),
            pattern: "EMP-[0-9]{6}".into(),
        }],
        ..Config::default()
    };
    let engine_custom = Engine::new(&with_custom).unwrap();
    measure("scrub_text (redact), clean", clean.len(), || {
        let mut f = Findings::default();
        black_box(engine.scrub_text(black_box(&clean), &mut f).ok());
    });
    measure(
        "scrub_text (redact) + 1 custom regex, clean",
        clean.len(),
        || {
            let mut f = Findings::default();
            black_box(engine_custom.scrub_text(black_box(&clean), &mut f).ok());
        },
    );
    measure("scrub_text (redact), 10 PII values", dirty.len(), || {
        let mut f = Findings::default();
        black_box(engine.scrub_text(black_box(&dirty), &mut f).ok());
    });

    let limits = Limits::default();
    let method = |_: Option<&mcp_core::jsonrpc::Id<'_>>| Some("tools/call".to_string());
    for (label, body) in [
        ("tools/call result message, clean", tool_result(&clean)),
        (
            "tools/call result message, 10 PII values",
            tool_result(&dirty),
        ),
    ] {
        measure(label, body.len(), || {
            black_box(
                engine
                    .scrub_response(black_box(&body), &method, &limits)
                    .ok(),
            );
        });
    }
}
