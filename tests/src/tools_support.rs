//! Requests and reads shared by the `mcp_tools` suites (`tests/tests/tools.rs`,
//! `tests/tests/pinning.rs`): a `tools/list` over a fresh connection and the names it lists.
// Assertion helpers: a failed read is a failed test.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use crate::client::{self, ACCEPT_BOTH};
use serde_json::{json, Value};

/// A POST of `body` on a fresh connection (a new agent each time), accepting JSON and SSE.
pub fn post(url: &str, body: &Value, extra: &[(&str, &str)]) -> client::Resp {
    let mut h = vec![
        ("content-type", "application/json"),
        ("accept", ACCEPT_BOTH),
    ];
    h.extend_from_slice(extra);
    client::request("POST", url, &h, Some(body.to_string().as_bytes())).unwrap()
}

/// A `tools/list` request, for the page after `cursor` when given.
pub fn list_request(id: u64, cursor: Option<&str>) -> Value {
    match cursor {
        Some(c) => {
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": {"cursor": c}})
        }
        None => json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}),
    }
}

/// The one JSON-RPC response in a JSON or SSE body (asserts HTTP 200).
pub fn response(r: &client::Resp) -> Value {
    assert_eq!(r.status, 200, "{}", r.text());
    r.messages()
        .unwrap()
        .into_iter()
        .find(|m| m.get("id").is_some())
        .unwrap_or_else(|| panic!("no response in {}", r.text()))
}

/// The tool names of a `tools/list` response, in order.
pub fn names(resp: &Value) -> Vec<String> {
    resp["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {resp}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}
