//! `pii`: `mcp_core::pii::Engine::scrub_request` / `scrub_response` invariants.
//!
//! For each of several engines (redact, mask, hash, block, custom detector + allow list,
//! include/exclude paths) and each message of the input (as a request body through the gate,
//! and as a response body or SSE `data`):
//!
//! * a rewritten message is valid JSON (strictly valid for requests, which go upstream) of the
//!   same shape: same keys, same array lengths, same numbers/literals, only strings differ;
//! * nothing is left behind: every string the engine changed is clean when the detectors run
//!   over it again, scrubbing the output again changes nothing (idempotence), and every string
//!   value in a free-form ("user") scope root — `tools/call` arguments, error message/data,
//!   log data, `structuredContent`, a non-JSON-RPC body, ... — is clean in the output;
//! * `changes` pairs are what `scrub_text` makes of the original; `block` refuses exactly when
//!   `redact` finds something, and all built-in actions find the same things.
//!
//! [`PII_KEYS_ARE_SCRUBBED`]: object keys are currently forwarded as they are. Once the engine
//! scans and rewrites keys too, set it to `true`: keys may then change, and keys are held to
//! the same "nothing left behind" rules as string values.

use std::ops::Range;
use std::sync::OnceLock;

use mcp_core::json::{self, Kind, Limits, Value};
use mcp_core::jsonrpc::{self, Id, Message, Outcome};
use mcp_core::pii::detect::{self, DetectorSet};
use mcp_core::pii::{Config, Engine, Findings, Verdict};

use crate::jtree::{self, J};
use crate::known::{self, Bug};
use crate::util::{fnv, show};

/// Set to `true` when `mcp_pii` scans and rewrites object keys (see the module docs).
pub const PII_KEYS_ARE_SCRUBBED: bool = true;

/// The engines every input is run through: `(name, engine, built-in scope unchanged)`.
fn engines() -> &'static [(&'static str, Engine, bool)] {
    static E: OnceLock<Vec<(&'static str, Engine, bool)>> = OnceLock::new();
    E.get_or_init(|| {
        let cfgs: [(&str, &str, bool); 6] = [
            ("redact", "{}", true),
            ("mask", r#"{"action":"mask"}"#, true),
            (
                "hash",
                r#"{"action":"hash","hash_key":"fuzz-key-0123456789"}"#,
                true,
            ),
            ("block", r#"{"action":"block"}"#, true),
            (
                "custom",
                r#"{"custom":[{"name":"ticket","pattern":"\\bTCK-[0-9]{6}\\b"}],
                    "allow_values":["alice@example.com"],"replacement":"<{type}>"}"#,
                false,
            ),
            (
                "paths",
                r#"{"include_paths":["$.params.arguments","$..message","$.result"],
                    "exclude_paths":["$..secret","$.result.content[0]"]}"#,
                false,
            ),
        ];
        cfgs.iter()
            .map(|(name, json, full)| {
                let cfg: Config = serde_json::from_str(json).expect("fuzz engine config parses");
                (
                    *name,
                    Engine::new(&cfg).expect("fuzz engine config is valid"),
                    *full,
                )
            })
            .collect()
    })
}

/// Methods a response id may answer: a string id naming one of them answers it, other ids
/// pick one by value.
const METHODS: [&str; 8] = [
    "tools/call",
    "resources/read",
    "prompts/get",
    "completion/complete",
    "tasks/result",
    "tools/list",
    "initialize",
    "sampling/createMessage",
];

fn method_of(id: Option<&Id<'_>>) -> Option<String> {
    let pick = |h: u64| METHODS[(h % METHODS.len() as u64) as usize].to_owned();
    match id? {
        Id::String(s) if METHODS.contains(&s.as_ref()) => Some(s.to_string()),
        Id::String(s) => Some(pick(fnv(s.as_bytes()))),
        Id::Number(n) => Some(match n.parse::<i64>() {
            Ok(i) => pick(i.unsigned_abs()),
            Err(_) => pick(fnv(n.as_bytes())),
        }),
    }
}

pub fn run(data: &[u8]) {
    requests(data);
    responses(data);
}

// ---------------------------------------------------------------------------------------
// Requests

fn requests(data: &[u8]) {
    let lim = Limits::default();
    let Ok(body) = jsonrpc::parse_body(data, &lim) else {
        return;
    };
    let input = jtree::parse(data).expect("gate-valid bodies parse with serde_json");
    for (idx, msg) in body.messages().iter().enumerate() {
        let mut found: Vec<(&str, Findings)> = Vec::new();
        for (name, eng, full) in engines() {
            let s = eng.scrub_request(msg, data);
            let ctx = || format!("engine {name}, request message {idx}: {}", show(data));
            found.push((name, s.findings.clone()));
            for (old, new) in &s.changes {
                assert_eq!(
                    eng.scrub_text(old, &mut Findings::default()),
                    Ok(Some(new.clone())),
                    "changes entry, {}",
                    ctx()
                );
            }
            match &s.verdict {
                Verdict::Clean => {
                    assert!(s.findings.is_empty(), "clean with findings, {}", ctx());
                    if *full {
                        user_roots_are_clean(name, eng, data, Some(idx), &ctx);
                    }
                }
                Verdict::Blocked { reply, types } => {
                    assert!(*name == "block" || !types.is_empty() || reply.is_some());
                    if let Some(r) = reply {
                        json::validate(r, &lim)
                            .unwrap_or_else(|e| panic!("block reply invalid ({e}), {}", ctx()));
                    }
                }
                Verdict::Rewritten(out) => {
                    json::validate(out, &lim).unwrap_or_else(|e| {
                        panic!(
                            "rewritten request refused by validate ({e}): {}, {}",
                            show(out),
                            ctx()
                        )
                    });
                    let output = jtree::parse(out).expect("validated output parses");
                    assert_same_shape(&input, &output, &ctx);
                    changed_strings_are_clean(name, eng, &input, &output, &ctx);
                    if *full {
                        user_roots_are_clean(name, eng, out, Some(idx), &ctx);
                    }
                    // Idempotence: the same message of the output needs nothing more.
                    let again = jsonrpc::parse_body(out, &lim).unwrap_or_else(|e| {
                        panic!("rewritten request refused by the gate ({e:?}), {}", ctx())
                    });
                    let msg2 = &again.messages()[idx];
                    let s2 = eng.scrub_request(msg2, out);
                    let ok = match &s2.verdict {
                        Verdict::Clean => true,
                        Verdict::Rewritten(out2) => second_pass_tolerated(name, out, out2),
                        Verdict::Blocked { .. } => false,
                    };
                    assert!(
                        ok,
                        "second pass {}: {}, {}",
                        verdict(&s2.verdict),
                        show(out),
                        ctx()
                    );
                }
            }
        }
        same_findings(&found, data);
    }
}

// ---------------------------------------------------------------------------------------
// Responses

fn responses(data: &[u8]) {
    let lim = Limits::default();
    let input = jtree::parse(data).ok();
    let mut found: Vec<(&str, Findings)> = Vec::new();
    for (name, eng, full) in engines() {
        let ctx = || format!("engine {name}, response: {}", show(data));
        let Ok(s) = eng.scrub_response(data, &method_of, &lim) else {
            continue;
        };
        found.push((name, s.findings.clone()));
        match &s.verdict {
            Verdict::Clean => {
                assert!(s.findings.is_empty(), "clean with findings, {}", ctx());
                if *full {
                    user_roots_are_clean(name, eng, data, None, &ctx);
                }
            }
            Verdict::Blocked { reply, .. } => {
                if let Some(r) = reply {
                    json::validate(r, &lim)
                        .unwrap_or_else(|e| panic!("block reply invalid ({e}), {}", ctx()));
                }
            }
            Verdict::Rewritten(out) => {
                json::skim(out, &lim).unwrap_or_else(|e| {
                    panic!(
                        "rewritten response refused by skim ({e}): {}, {}",
                        show(out),
                        ctx()
                    )
                });
                if let Some(input) = &input {
                    let output = jtree::parse(out).unwrap_or_else(|e| {
                        panic!(
                            "rewritten response refused by serde_json ({e}): {}, {}",
                            show(out),
                            ctx()
                        )
                    });
                    if *name != "block" {
                        assert_same_shape(input, &output, &ctx);
                    }
                    changed_strings_are_clean(name, eng, input, &output, &ctx);
                }
                if *full && *name != "block" {
                    user_roots_are_clean(name, eng, out, None, &ctx);
                }
                if *name != "block" {
                    let s2 = eng
                        .scrub_response(out, &method_of, &lim)
                        .unwrap_or_else(|e| panic!("second pass refused ({e}), {}", ctx()));
                    let ok = match &s2.verdict {
                        Verdict::Clean => true,
                        Verdict::Rewritten(out2) => second_pass_tolerated(name, out, out2),
                        Verdict::Blocked { .. } => false,
                    };
                    assert!(
                        ok,
                        "second pass {}: {}, {}",
                        verdict(&s2.verdict),
                        show(out),
                        ctx()
                    );
                }
            }
        }
    }
    same_findings(&found, data);
}

// ---------------------------------------------------------------------------------------
// Shared checks

fn verdict(v: &Verdict) -> String {
    match v {
        Verdict::Rewritten(b) => format!("Rewritten({})", show(b)),
        other => format!("{other:?}"),
    }
}

/// The built-in actions find the same values; `block` blocks exactly when something is found.
fn same_findings(found: &[(&str, Findings)], data: &[u8]) {
    let builtin: Vec<&(&str, Findings)> = found
        .iter()
        .filter(|(n, _)| matches!(*n, "redact" | "mask" | "hash" | "block"))
        .collect();
    if let Some((_, first)) = builtin.first() {
        for (n, f) in &builtin {
            assert_eq!(f, first, "engine {n} found other values: {}", show(data));
        }
    }
}

/// Same JSON but for string values (and keys, once keys are scrubbed), and integers a detector
/// finds (a card written as a number becomes its replacement string).
fn assert_same_shape(a: &J, b: &J, ctx: &dyn Fn() -> String) {
    match (a, b) {
        (J::Str(_), J::Str(_)) => {}
        (J::Num(n), J::Str(_)) => {
            let text = n.to_string();
            let mut found = Vec::new();
            detect::scan(&text, DetectorSet::all(), &mut found);
            assert!(
                !found.is_empty(),
                "number {text} became a string, {}",
                ctx()
            );
        }
        (J::Arr(x), J::Arr(y)) => {
            assert_eq!(x.len(), y.len(), "array length changed, {}", ctx());
            x.iter()
                .zip(y)
                .for_each(|(p, q)| assert_same_shape(p, q, ctx));
        }
        (J::Obj(x), J::Obj(y)) => {
            assert_eq!(x.len(), y.len(), "member count changed, {}", ctx());
            for ((kp, p), (kq, q)) in x.iter().zip(y) {
                assert!(
                    PII_KEYS_ARE_SCRUBBED || kp == kq,
                    "key {kp:?} became {kq:?}, {}",
                    ctx()
                );
                assert_same_shape(p, q, ctx);
            }
        }
        _ => assert_eq!(a, b, "non-string value changed, {}", ctx()),
    }
}

/// Nothing for `eng` to find in `text`, or only what [`Bug::PiiAdjacentValueMissed`] leaves.
fn is_clean(name: &str, eng: &Engine, text: &str) -> bool {
    matches!(eng.scrub_text(text, &mut Findings::default()), Ok(None))
        || (known::tolerated(Bug::PiiAdjacentValueMissed) && leftovers_adjacent(name, text))
}

/// Where the replacements of engine `name` are in `text`: `[REDACTED:…]`, `[HASH:…]`,
/// `<…>`, or a run of `*` with the (at most 4) characters `mask` keeps after it.
fn replacement_spans(name: &str, text: &str) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    if name == "mask" {
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut k = 0;
        while k < chars.len() {
            if chars[k].1 != '*' {
                k += 1;
                continue;
            }
            let start = chars[k].0;
            while k < chars.len() && chars[k].1 == '*' {
                k += 1;
            }
            let end = chars.get(k + 4).map_or(text.len(), |c| c.0);
            spans.push(start..end);
        }
        return spans;
    }
    let (open, close) = match name {
        "hash" => ("[HASH:", ']'),
        "custom" => ("<", '>'),
        _ => ("[REDACTED:", ']'),
    };
    let mut from = 0;
    while let Some(k) = text[from..].find(open) {
        let start = from + k;
        let end = text[start..]
            .find(close)
            .map_or(text.len(), |e| start + e + 1);
        spans.push(start..end);
        from = end.max(start + 1);
    }
    spans
}

/// Every built-in finding left in `text` touches a replacement (gap of at most one byte): the
/// shape of [`Bug::PiiAdjacentValueMissed`].
fn leftovers_adjacent(name: &str, text: &str) -> bool {
    let mut found = Vec::new();
    detect::scan(text, DetectorSet::all(), &mut found);
    detect::resolve_overlaps(&mut found);
    let spans = replacement_spans(name, text);
    !found.is_empty()
        && found.iter().all(|f| {
            spans
                .iter()
                .any(|sp| f.range.start <= sp.end + 1 && sp.start <= f.range.end + 1)
                || (name == "custom"
                    && text[f.range.clone()].eq_ignore_ascii_case("alice@example.com"))
        })
}

/// The second pass changed only strings whose leftovers are tolerated. Walks mcp-core's own
/// view of both texts: responses may hold non-UTF-8 strings outside the scanned scope, which
/// serde_json refuses.
fn second_pass_tolerated(name: &str, first: &[u8], second: &[u8]) -> bool {
    fn walk(name: &str, a: Value<'_>, b: Value<'_>) -> bool {
        if a.kind() != b.kind() {
            return false;
        }
        match a.kind() {
            Kind::String => {
                a.raw() == b.raw() || a.as_str().is_some_and(|x| leftovers_adjacent(name, &x))
            }
            Kind::Array => {
                a.elements().count() == b.elements().count()
                    && a.elements()
                        .zip(b.elements())
                        .all(|(p, q)| walk(name, p, q))
            }
            Kind::Object => {
                a.members().count() == b.members().count()
                    && a.members().zip(b.members()).all(|(p, q)| {
                        (p.key == q.key || leftovers_adjacent(name, &p.key))
                            && walk(name, p.value, q.value)
                    })
            }
            _ => a.raw() == b.raw(),
        }
    }
    let lim = Limits { max_depth: 512 };
    known::tolerated(Bug::PiiAdjacentValueMissed)
        && matches!((json::skim(first, &lim), json::skim(second, &lim)), (Ok(a), Ok(b)) if walk(name, a, b))
}

/// Every string (or key) the engine changed is clean now: no partial redaction.
fn changed_strings_are_clean(name: &str, eng: &Engine, a: &J, b: &J, ctx: &dyn Fn() -> String) {
    match (a, b) {
        (J::Str(x), J::Str(y)) if x != y => {
            assert!(
                is_clean(name, eng, y),
                "changed string {x:?} → {y:?} still has findings, {}",
                ctx()
            )
        }
        (J::Arr(x), J::Arr(y)) => x
            .iter()
            .zip(y)
            .for_each(|(p, q)| changed_strings_are_clean(name, eng, p, q, ctx)),
        (J::Obj(x), J::Obj(y)) => {
            for ((kp, p), (kq, q)) in x.iter().zip(y) {
                if kp != kq {
                    assert!(
                        is_clean(name, eng, kq),
                        "changed key {kp:?} → {kq:?} still has findings, {}",
                        ctx()
                    );
                }
                changed_strings_are_clean(name, eng, p, q, ctx);
            }
        }
        _ => {}
    }
}

/// Every string value (and key, with [`PII_KEYS_ARE_SCRUBBED`]) below `v`, except under
/// `_meta`, is clean. Every member of a repeated key is visited.
fn user_scope_clean(name: &str, eng: &Engine, v: Value<'_>, ctx: &dyn Fn() -> String) {
    match v.kind() {
        Kind::String => {
            if let Some(s) = v.as_str() {
                assert!(
                    is_clean(name, eng, &s),
                    "string {s:?} left with findings, {}",
                    ctx()
                );
            }
        }
        Kind::Array => v
            .elements()
            .for_each(|e| user_scope_clean(name, eng, e, ctx)),
        Kind::Object => {
            for m in v.members() {
                if m.key == "_meta" {
                    continue;
                }
                if PII_KEYS_ARE_SCRUBBED {
                    assert!(
                        is_clean(name, eng, &m.key),
                        "key {:?} left with findings, {}",
                        m.key,
                        ctx()
                    );
                }
                user_scope_clean(name, eng, m.value, ctx);
            }
        }
        _ => {}
    }
}

/// Follows `path` from `v` through every member of each key (not only the first).
fn at_path<'a>(v: Value<'a>, path: &[&str], out: &mut Vec<Value<'a>>) {
    match path.split_first() {
        None => out.push(v),
        Some((k, rest)) => {
            for m in v.members().filter(|m| m.key == *k) {
                at_path(m.value, rest, out);
            }
        }
    }
}

/// The free-form ("user") roots of the built-in scope of one message, found independently of
/// the engine's walker.
fn user_roots<'a>(msg: Value<'a>, request: bool, out: &mut Vec<Value<'a>>) {
    let parsed = jsonrpc::parse_message_value(msg);
    let at = |path: &[&str], out: &mut Vec<Value<'a>>| at_path(msg, path, out);
    match parsed {
        Ok(Message::Request(r)) if request => match r.method.as_ref() {
            "tools/call" | "prompts/get" => at(&["params", "arguments"], out),
            "completion/complete" => {
                at(&["params", "argument", "value"], out);
                at(&["params", "context", "arguments"], out);
            }
            _ => {}
        },
        Ok(Message::Response(r)) if request => {
            // A client's answer to a server request: its result is an MCP scope (skips ids,
            // URIs, base64), its error is free-form.
            if matches!(r.outcome, Outcome::Error { .. }) {
                at(&["error", "message"], out);
                at(&["error", "data"], out);
            }
        }
        _ if request => {}
        // Not JSON-RPC (an upstream error document): scanned whole.
        Err(_) => out.push(msg),
        Ok(Message::Request(r)) => match r.method.as_ref() {
            "notifications/message" => at(&["params", "data"], out),
            "notifications/progress" | "elicitation/create" => at(&["params", "message"], out),
            "sampling/createMessage" => at(&["params", "systemPrompt"], out),
            _ => {}
        },
        Ok(Message::Response(r)) => match r.outcome {
            Outcome::Error { .. } => {
                at(&["error", "message"], out);
                at(&["error", "data"], out);
            }
            Outcome::Result(_) => match method_of(r.id.as_ref()).as_deref() {
                Some("tools/call" | "tasks/result") => at(&["result", "structuredContent"], out),
                Some("prompts/get") => at(&["result", "description"], out),
                Some("completion/complete") => at(&["result", "completion", "values"], out),
                _ => {}
            },
        },
    }
}

/// The user roots of the built-in scope are clean in `out` (a request body whose message
/// `idx` was scrubbed, or a response body, possibly a batch).
fn user_roots_are_clean(
    name: &str,
    eng: &Engine,
    out: &[u8],
    request: Option<usize>,
    ctx: &dyn Fn() -> String,
) {
    let Ok(root) = json::skim(out, &Limits { max_depth: 512 }) else {
        return;
    };
    let mut roots = Vec::new();
    match (request, root.kind()) {
        (Some(idx), Kind::Array) => {
            if let Some(m) = root.elements().nth(idx) {
                user_roots(m, true, &mut roots);
            }
        }
        (Some(_), _) => user_roots(root, true, &mut roots),
        (None, Kind::Array) => root
            .elements()
            .for_each(|m| user_roots(m, false, &mut roots)),
        (None, _) => user_roots(root, false, &mut roots),
    }
    for r in roots {
        user_scope_clean(name, eng, r, ctx);
    }
}
