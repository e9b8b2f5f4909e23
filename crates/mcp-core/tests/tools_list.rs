//! `tools_list::filter_list`: byte-splicing of list results.
// Test helpers outside #[test] fns are not covered by clippy.toml's in-test allowances.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mcp_core::json::{JsonError, Limits};
use mcp_core::tools_list::{filter_list, filter_list_with, Edit, ListOptions};
use serde_json::Value as J;

const TOOLS: ListOptions<'static> = ListOptions {
    array_key: "tools",
    set_private_cache: false,
};

fn run(body: &str, opts: &ListOptions<'_>, deny: &[&str]) -> Edit {
    filter_list(body.as_bytes(), opts, &Limits::default(), |n| {
        !deny.contains(&n)
    })
    .unwrap()
}

fn out(e: &Edit) -> String {
    String::from_utf8(e.bytes.clone().expect("changed")).unwrap()
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/tools_list/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn removing_first_middle_last_and_all_keeps_valid_json() {
    let body =
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}, {"name":"b"} ,{"name":"c"}]}}"#;
    let cases: &[(&[&str], &str)] = &[
        (&["a"], r#"[{"name":"b"} ,{"name":"c"}]"#),
        (&["b"], r#"[{"name":"a"} ,{"name":"c"}]"#),
        (&["c"], r#"[{"name":"a"}, {"name":"b"}]"#),
        (&["a", "b"], r#"[{"name":"c"}]"#),
        (&["b", "c"], r#"[{"name":"a"}]"#),
        (&["a", "c"], r#"[{"name":"b"}]"#),
        (&["a", "b", "c"], r#"[]"#),
    ];
    for (deny, array) in cases {
        let e = run(body, &TOOLS, deny);
        assert_eq!(e.removed, deny.len());
        assert_eq!(e.kept, 3 - deny.len());
        let expected = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":{array}}}}}"#);
        assert_eq!(out(&e), expected, "{deny:?}");
    }
}

#[test]
fn nothing_removed_means_no_new_bytes() {
    let body = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"}]}}"#;
    let e = run(body, &TOOLS, &[]);
    assert_eq!(
        e,
        Edit {
            kept: 2,
            removed: 0,
            found: true,
            bytes: None
        }
    );
}

#[test]
fn found_says_whether_the_list_was_there() {
    let empty = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#;
    assert!(run(empty, &TOOLS, &[]).found);
    for other in [
        r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#,
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"x"}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}"#,
    ] {
        let e = run(other, &TOOLS, &[]);
        assert!(!e.found, "{other}");
        assert_eq!(e.bytes, None);
    }
}

#[test]
fn whitespace_around_removed_elements_stays_valid() {
    let body = "{\"result\":{\"tools\":[\n  {\"name\":\"a\"},\n  {\"name\":\"b\"},\n  {\"name\":\"c\"}\n]},\"id\":1,\"jsonrpc\":\"2.0\"}";
    let e = run(body, &TOOLS, &["a", "c"]);
    assert_eq!(
        out(&e),
        "{\"result\":{\"tools\":[\n  {\"name\":\"b\"}\n]},\"id\":1,\"jsonrpc\":\"2.0\"}"
    );
    let e = run(body, &TOOLS, &["a", "b", "c"]);
    assert_eq!(
        out(&e),
        "{\"result\":{\"tools\":[\n  \n]},\"id\":1,\"jsonrpc\":\"2.0\"}"
    );
}

#[test]
fn spec_example_is_filtered_and_keeps_next_cursor() {
    let body = fixture("spec_response.json");
    let e = run(&body, &TOOLS, &["get_weather"]);
    assert_eq!((e.kept, e.removed), (0, 1));
    let v: J = serde_json::from_str(&out(&e)).unwrap();
    assert_eq!(v["result"]["tools"], serde_json::json!([]));
    assert_eq!(v["result"]["nextCursor"], "next-page-cursor");
    assert_eq!(run(&body, &TOOLS, &[]).bytes, None);
}

#[test]
fn stateless_list_becomes_private_and_keeps_ttl() {
    let body = fixture("stateless_response.json");
    let opts = ListOptions {
        array_key: "tools",
        set_private_cache: true,
    };
    let e = run(&body, &opts, &["delete_repo"]);
    assert_eq!((e.kept, e.removed), (2, 1));
    let text = out(&e);
    let v: J = serde_json::from_str(&text).unwrap();
    assert_eq!(v["result"]["cacheScope"], "private");
    assert_eq!(v["result"]["ttlMs"], 300000);
    let names: Vec<_> = v["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["get_weather", "search"]);
    assert!(text.contains(
        r#""_meta":{"io.modelcontextprotocol/serverInfo":{"name":"s","version":"1"}}}}"#
    ));
    // Even when nothing is removed the scope is made private.
    let e = run(&body, &opts, &[]);
    assert_eq!(e.removed, 0);
    assert!(out(&e).contains(r#""cacheScope":"private""#));
}

#[test]
fn ttl_without_cache_scope_gets_a_private_scope_appended() {
    let body = r#"{"jsonrpc":"2.0","id":1,"result":{"ttlMs":5,"tools":[{"name":"a"}] }}"#;
    let opts = ListOptions {
        array_key: "tools",
        set_private_cache: true,
    };
    let e = run(body, &opts, &[]);
    assert_eq!(
        out(&e),
        r#"{"jsonrpc":"2.0","id":1,"result":{"ttlMs":5,"tools":[{"name":"a"}],"cacheScope":"private" }}"#
    );
    let e = run(body, &opts, &["a"]);
    assert_eq!(
        out(&e),
        r#"{"jsonrpc":"2.0","id":1,"result":{"ttlMs":5,"tools":[],"cacheScope":"private" }}"#
    );
    // Already private and nothing removed: unchanged.
    let body =
        r#"{"jsonrpc":"2.0","id":1,"result":{"cacheScope":"private","tools":[{"name":"a"}]}}"#;
    assert_eq!(run(body, &opts, &[]).bytes, None);
    // Legacy lists have neither: nothing is added.
    let body = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]}}"#;
    assert_eq!(run(body, &opts, &[]).bytes, None);
}

#[test]
fn cache_scope_before_and_after_the_array_is_rewritten_in_place() {
    let opts = ListOptions {
        array_key: "tools",
        set_private_cache: true,
    };
    let body = r#"{"result":{"cacheScope":"public","tools":[{"name":"a"},{"name":"b"}],"nextCursor":"n"},"id":1,"jsonrpc":"2.0"}"#;
    let e = run(body, &opts, &["a"]);
    assert_eq!(
        out(&e),
        r#"{"result":{"cacheScope":"private","tools":[{"name":"b"}],"nextCursor":"n"},"id":1,"jsonrpc":"2.0"}"#
    );
    let body = r#"{"result":{"tools":[{"name":"a"},{"name":"b"}],"cacheScope":"public"},"id":1,"jsonrpc":"2.0"}"#;
    let e = run(body, &opts, &["b"]);
    assert_eq!(
        out(&e),
        r#"{"result":{"tools":[{"name":"a"}],"cacheScope":"private"},"id":1,"jsonrpc":"2.0"}"#
    );
}

#[test]
fn elements_without_a_single_string_name_are_removed_and_counted() {
    let body = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[
        {"name":"ok"},
        {"title":"no name"},
        {"name":5},
        {"name":null},
        "string element",
        7,
        {"name":"a","name":"b"},
        {"name":"a","na\u006de":"a"},
        {"na\u006de":"escaped_ok"}
    ]}}"#;
    let mut seen = Vec::new();
    let e = filter_list(body.as_bytes(), &TOOLS, &Limits::default(), |n| {
        seen.push(n.to_owned());
        true
    })
    .unwrap();
    assert_eq!(seen, ["ok", "escaped_ok"]);
    assert_eq!((e.kept, e.removed), (2, 7));
    let v: J = serde_json::from_str(&out(&e)).unwrap();
    assert_eq!(v["result"]["tools"].as_array().unwrap().len(), 2);
}

#[test]
fn escaped_names_are_unescaped_before_the_decision() {
    let body =
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"del\u0065te"},{"name":"x\/y"}]}}"#;
    let e = run(body, &TOOLS, &["delete", "x/y"]);
    assert_eq!((e.kept, e.removed), (0, 2));
}

#[test]
fn non_utf8_names_in_skimmed_bodies_fail_closed() {
    let body = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"a\xffb\"},{\"name\":\"c\"}]}}";
    let e = filter_list(body, &TOOLS, &Limits::default(), |_| true).unwrap();
    assert_eq!((e.kept, e.removed), (1, 1));
    assert_eq!(
        e.bytes.unwrap(),
        br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"c"}]}}"#
    );
}

#[test]
fn non_list_bodies_are_left_alone() {
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"nope"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}]}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":{"name":"a"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":"tools"}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
        r#""tools""#,
        "[]",
    ] {
        let e = run(body, &TOOLS, &["a"]);
        assert_eq!(e, Edit::default(), "{body}");
    }
}

#[test]
fn prompts_lists_are_filtered_by_their_own_key() {
    let body = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}],"prompts":[{"name":"a"},{"name":"b"}]}}"#;
    let opts = ListOptions {
        array_key: "prompts",
        set_private_cache: false,
    };
    let e = run(body, &opts, &["a"]);
    assert_eq!(
        out(&e),
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}],"prompts":[{"name":"b"}]}}"#
    );
}

#[test]
fn duplicated_result_or_array_keys_are_refused() {
    let lim = Limits::default();
    let body =
        br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]},"result":{"tools":[{"name":"a"}]}}"#;
    assert!(matches!(
        filter_list(body, &TOOLS, &lim, |_| false),
        Err(JsonError::DuplicateKey { ref key, .. }) if key == "result"
    ));
    let body = br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[],"to\u006fls":[{"name":"a"}]}}"#;
    assert!(matches!(
        filter_list(body, &TOOLS, &lim, |_| false),
        Err(JsonError::DuplicateKey { ref key, .. }) if key == "tools"
    ));
}

#[test]
fn invalid_json_is_an_error() {
    let lim = Limits::default();
    assert!(filter_list(
        b"{\"result\":{\"tools\":[{\"name\":\"a\"},]}}",
        &TOOLS,
        &lim,
        |_| true
    )
    .is_err());
    assert!(filter_list(b"", &TOOLS, &lim, |_| true).is_err());
    let deep = format!(
        "{{\"result\":{{\"tools\":[{}{}]}}}}",
        "[".repeat(100),
        "]".repeat(100)
    );
    assert!(matches!(
        filter_list(deep.as_bytes(), &TOOLS, &lim, |_| true),
        Err(JsonError::TooDeep { .. })
    ));
}

#[test]
fn batched_responses_are_filtered_element_by_element() {
    let body = r#"[{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"}]}},{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a"}]}}]"#;
    let e = run(body, &TOOLS, &["a"]);
    assert_eq!((e.kept, e.removed), (1, 2));
    assert_eq!(
        out(&e),
        r#"[{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"b"}]}},{"jsonrpc":"2.0","id":2,"result":{"tools":[]}}]"#
    );
}

#[test]
fn a_large_list_is_filtered_correctly() {
    let tools: Vec<String> = (0..500)
        .map(|i| format!(r#"{{"name":"t{i}","description":"d \"{i}\"","inputSchema":{{"type":"object","properties":{{"q":{{"type":"string"}}}}}}}}"#))
        .collect();
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{}]}}}}"#,
        tools.join(",")
    );
    let e = filter_list(body.as_bytes(), &TOOLS, &Limits::default(), |n| {
        n.ends_with('7')
    })
    .unwrap();
    assert_eq!((e.kept, e.removed), (50, 450));
    let v: J = serde_json::from_slice(&e.bytes.unwrap()).unwrap();
    assert!(v["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["name"].as_str().unwrap().ends_with('7')));
}

/// Deterministic xorshift generator (no extra dependency).
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
    fn ws(&mut self) -> &'static str {
        ["", "", " ", "\n  ", "\t", "\r\n"][self.next(6) as usize]
    }
}

#[test]
fn generated_lists_lose_exactly_the_denied_tools_and_nothing_else() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for round in 0..2000 {
        let n = rng.next(21) as usize;
        let mut elements = Vec::new();
        let mut keep_mask = Vec::new();
        for i in 0..n {
            let mut fields = vec![
                format!(r#""name"{}:{}"tool_{i}_{round}""#, rng.ws(), rng.ws()),
                format!(r#""description":"Does \"{i}\" things, \u00e9 \\ ok""#),
                r#""inputSchema":{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}"#.to_owned(),
            ];
            if rng.next(3) == 0 {
                fields.push(r#""x-unknown":[1,{"name":"nested_not_a_tool"}]"#.to_owned());
            }
            let rot = rng.next(fields.len() as u64) as usize;
            fields.rotate_left(rot);
            let sep = format!("{},{}", rng.ws(), rng.ws());
            elements.push(format!("{{{}{}{}}}", rng.ws(), fields.join(&sep), rng.ws()));
            keep_mask.push(rng.next(2) == 0);
        }
        let array_sep = format!("{},{}", rng.ws(), rng.ws());
        let array = format!("[{}{}{}]", rng.ws(), elements.join(&array_sep), rng.ws());
        let mut result_members = vec![format!(r#""tools"{}:{}{array}"#, rng.ws(), rng.ws())];
        if rng.next(2) == 0 {
            result_members.push(r#""nextCursor":"abc==""#.to_owned());
        }
        match rng.next(3) {
            0 => result_members.insert(0, r#""_meta":{"k":[{"name":"x"}]}"#.to_owned()),
            1 => result_members.push(r#""_meta":{"tools":[{"name":"x"}]}"#.to_owned()),
            _ => {}
        }
        let body = format!(
            r#"{}{{"jsonrpc":"2.0",{}"id":{},"result":{}{{{}}}{}}}{}"#,
            rng.ws(),
            rng.ws(),
            round,
            rng.ws(),
            result_members.join(","),
            rng.ws(),
            rng.ws()
        );
        let names: Vec<String> = (0..n).map(|i| format!("tool_{i}_{round}")).collect();
        let e = filter_list(body.as_bytes(), &TOOLS, &Limits::default(), |name| {
            let i = names.iter().position(|x| x == name).unwrap();
            keep_mask[i]
        })
        .unwrap();
        let kept = keep_mask.iter().filter(|k| **k).count();
        assert_eq!((e.kept, e.removed), (kept, n - kept));
        let output = e.bytes.clone().unwrap_or_else(|| body.clone().into_bytes());
        assert_eq!(e.bytes.is_none(), kept == n);

        // Same JSON value, minus the removed tools.
        let mut expected: J = serde_json::from_str(&body).unwrap();
        let arr = expected["result"]["tools"].as_array_mut().unwrap();
        let mut idx = 0;
        arr.retain(|_| {
            idx += 1;
            keep_mask[idx - 1]
        });
        let got: J = serde_json::from_slice(&output).unwrap();
        assert_eq!(got, expected, "{body}");

        // Untouched bytes are identical: everything before and after the array, and the kept
        // elements verbatim, in order.
        let output = String::from_utf8(output).unwrap();
        let start = body.find(&array).unwrap();
        assert!(output.starts_with(&body[..start + 1]));
        let tail = &body[start + array.len() - 1..];
        assert!(output.ends_with(tail));
        let mut at = start;
        for (el, keep) in elements.iter().zip(&keep_mask) {
            if *keep {
                let found = output[at..].find(el.as_str()).unwrap();
                at += found + el.len();
            } else {
                assert!(!output.contains(el.as_str()));
            }
        }
    }
}

#[test]
fn filter_list_accepts_and_refuses_exactly_what_skim_does() {
    let wrap = |inner: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{{"name":"a","x":{inner}}}]}}}}"#)
    };
    let mut bodies: Vec<String> = [
        "1",
        "[1,]",
        "01",
        "\"a\\q\"",
        "\"\\ud800\"",
        "\"a\u{1}\"",
        "tru",
        "{\"k\":}",
        "[1 2]",
        "{\"a\":1,\"a\":2}",
        "-",
        "1.",
        "[]",
        "{}",
        "\"\\u00e9\"",
    ]
    .iter()
    .map(|inner| wrap(inner))
    .collect();
    // Depth boundary: the element's member value sits inside 4 containers.
    for extra in [59, 60, 61] {
        bodies.push(wrap(&format!("{}{}", "[".repeat(extra), "]".repeat(extra))));
    }
    bodies.extend(
        [
            "",
            " ",
            "{",
            "{}",
            "[]",
            "[{}]",
            "[1,{}]",
            "{} x",
            "\"s\"",
            "{\"result\":{}}",
            "[{\"result\":{\"tools\":[{\"name\":\"a\"}]}},]",
            "{\"result\":{\"tools\":[{\"name\":\"a\"},]}}",
            "{\"result\":{\"tools\":[{\"name\":\"a\" \"b\":1}]}}",
            "{\"result\":{\"tools\":[{\"na\\qme\":\"a\"}]}}",
            "{\"result\":{\"tools\":[]},}",
            "{\"result\":{\"tools\":[]}",
        ]
        .map(String::from),
    );
    for limit in [64, 4, 3, 2, 1, 0] {
        let lim = Limits { max_depth: limit };
        for body in &bodies {
            let skimmed = mcp_core::json::skim(body.as_bytes(), &lim);
            let filtered = filter_list(body.as_bytes(), &TOOLS, &lim, |_| false);
            assert_eq!(skimmed.is_ok(), filtered.is_ok(), "limit {limit}: {body}");
            if let (Err(a), Err(b)) = (skimmed, filtered) {
                assert_eq!(
                    std::mem::discriminant(&a),
                    std::mem::discriminant(&b),
                    "{body}"
                );
            }
        }
    }
}

#[test]
fn the_callback_sees_each_elements_exact_bytes() {
    let body = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[ {"name":"a", "x": [1, 2]} ,
        {"name":"b","description":"d\u00e9"},{"name":"c"}]}}"#;
    let mut seen = Vec::new();
    let e = filter_list_with(body.as_bytes(), &TOOLS, &Limits::default(), |n, raw| {
        seen.push((n.to_owned(), String::from_utf8(raw.to_vec()).unwrap()));
        n != "b"
    })
    .unwrap();
    assert_eq!(
        seen,
        [
            ("a".to_owned(), r#"{"name":"a", "x": [1, 2]}"#.to_owned()),
            (
                "b".to_owned(),
                r#"{"name":"b","description":"d\u00e9"}"#.to_owned()
            ),
            ("c".to_owned(), r#"{"name":"c"}"#.to_owned()),
        ]
    );
    assert_eq!((e.kept, e.removed), (2, 1));
    assert!(serde_json::from_str::<J>(&out(&e)).is_ok());
}
