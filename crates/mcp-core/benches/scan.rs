//! Native micro-benchmark of the JSON scanner (MB/s), against serde_json `Value`
//! parse + serialize. Run with `cargo bench -p mcp-core --bench scan`.

use std::hint::black_box;
mod common;
use common::measure;

use mcp_core::json::{self, Limits};
use mcp_core::jsonrpc;
use mcp_core::tools_list::{filter_list, ListOptions};

/// A `tools/list` response with `n` tools of ~220 bytes each (like perf.md's payloads).
fn tools_list(n: usize) -> Vec<u8> {
    let tools: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"name":"search_docs_{i:03}","description":"Search the internal documentation index and return matching passages.","inputSchema":{{"type":"object","properties":{{"query":{{"type":"string"}},"limit":{{"type":"integer"}}}},"required":["query"]}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{}],"nextCursor":"eyJwIjoyfQ=="}}}}"#,
        tools.join(",")
    )
    .into_bytes()
}

/// A ~11 KB `tools/call` request (a long argument document).
fn tools_call() -> Vec<u8> {
    let rows: Vec<String> = (0..105)
        .map(|i| format!(r#"{{"id":{i},"title":"Quarterly revenue line {i}","region":"EMEA","amount":{}.25,"tags":["fy2025","q{}"]}}"#, 1000 + i, i % 4 + 1))
        .collect();
    format!(
        r#"{{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{{"name":"search_docs_000","arguments":{{"query":"EMEA revenue report FY2025","rows":[{}]}},"_meta":{{"progressToken":"7f3c2a10-9b1e-4d6a-8c55-0e1f2a3b4c5d","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}}}}}"#,
        rows.join(",")
    )
    .into_bytes()
}

fn main() {
    let lim = Limits::default();
    let call = tools_call();
    let list50 = tools_list(50);
    let list500 = tools_list(500);

    measure("validate tools/call", call.len(), || {
        black_box(json::validate(black_box(&call), &lim).ok());
    });
    measure(
        "parse_body tools/call (validate + shape)",
        call.len(),
        || {
            black_box(jsonrpc::parse_body(black_box(&call), &lim).ok());
        },
    );
    measure(
        "serde_json Value parse+serialize tools/call",
        call.len(),
        || {
            let v: serde_json::Value = serde_json::from_slice(black_box(&call)).unwrap_or_default();
            black_box(serde_json::to_vec(&v).ok());
        },
    );
    let opts = ListOptions {
        array_key: "tools",
        set_private_cache: true,
    };
    for (name, body) in [("50 tools", &list50), ("500 tools", &list500)] {
        measure(&format!("skim tools/list {name}"), body.len(), || {
            black_box(json::skim(black_box(body), &lim).ok());
        });
        measure(&format!("validate tools/list {name}"), body.len(), || {
            black_box(json::validate(black_box(body), &lim).ok());
        });
        measure(
            &format!("filter_list {name} (keep all)"),
            body.len(),
            || {
                black_box(filter_list(black_box(body), &opts, &lim, |_| true).ok());
            },
        );
        let mut flip = false;
        measure(
            &format!("filter_list {name} (drop half)"),
            body.len(),
            || {
                black_box(
                    filter_list(black_box(body), &opts, &lim, |_| {
                        flip = !flip;
                        flip
                    })
                    .ok(),
                );
            },
        );
        measure(
            &format!("serde_json Value parse+serialize {name}"),
            body.len(),
            || {
                let v: serde_json::Value =
                    serde_json::from_slice(black_box(body)).unwrap_or_default();
                black_box(serde_json::to_vec(&v).ok());
            },
        );
    }
}
