//! `json`: `mcp_core::json::validate` and `skim` against serde_json.
//!
//! Accept/reject must agree with serde_json except for the documented differences
//! (crates/mcp-core/src/json.rs module docs, crates/mcp-core/tests/json_conformance.rs):
//!
//! * `validate` refuses **duplicate keys** (serde_json keeps the last one), and nesting deeper
//!   than `Limits::max_depth` (serde_json's own limit is 128);
//! * mcp-core keeps numbers as text, so it accepts numbers that overflow f64 (`1e999`), which
//!   serde_json refuses;
//! * `skim` additionally accepts duplicate keys and invalid UTF-8 *inside strings*.
//!
//! Lone surrogate escapes and a byte-order mark are refused by both, so they are not
//! exceptions. For accepted input the trees must agree: kinds, member order, unescaped keys and
//! strings, integers exactly, floats to within 2 ULP (serde_json without `float_roundtrip` may
//! round the last bit differently from `str::parse`), array lengths; spans must point at the
//! right bytes.

use mcp_core::json::{self, JsonError, Kind, Limits, Value};

use crate::jtree::{self, J};
use crate::util::show;

const LIMIT: usize = 64;

pub fn run(data: &[u8]) {
    let lim = Limits { max_depth: LIMIT };
    let reference = jtree::parse(data);
    let validated = json::validate(data, &lim);
    let skimmed = json::skim(data, &lim);
    check_validate(data, &validated, &reference);
    check_skim(data, &skimmed, &validated, &reference);
    if let Ok(v) = &validated {
        check_small_limits(data, *v);
    }
}

fn check_validate(
    data: &[u8],
    validated: &Result<Value<'_>, JsonError>,
    reference: &Result<J, serde_json::Error>,
) {
    match (validated, reference) {
        (Ok(v), Ok(j)) => {
            assert!(
                !j.has_duplicate_key(),
                "validate accepted a duplicate key: {}",
                show(data)
            );
            check_root_span(data, *v);
            same_tree(*v, j, data);
        }
        (Ok(v), Err(e)) => assert!(
            jtree::is_number_out_of_range(e) && has_infinite_number(*v),
            "validate accepted what serde_json refuses ({e}): {}",
            show(data)
        ),
        (Err(e), Ok(j)) => match e {
            JsonError::DuplicateKey { key, .. } => assert!(
                j.has_duplicate_key(),
                "validate reported a duplicate key {key:?} that is not there: {}",
                show(data)
            ),
            JsonError::TooDeep { .. } => assert!(
                j.depth() > LIMIT,
                "validate reported depth > {LIMIT} for depth {}: {}",
                j.depth(),
                show(data)
            ),
            e => panic!(
                "validate refused ({e}) what serde_json accepts: {}",
                show(data)
            ),
        },
        (Err(_), Err(_)) => {}
    }
}

fn check_skim(
    data: &[u8],
    skimmed: &Result<Value<'_>, JsonError>,
    validated: &Result<Value<'_>, JsonError>,
    reference: &Result<J, serde_json::Error>,
) {
    let lim = Limits { max_depth: LIMIT };
    match (skimmed, validated) {
        (Ok(s), Ok(v)) => assert_eq!(s.span(), v.span(), "skim/validate spans: {}", show(data)),
        (Err(e), Ok(_)) => panic!("skim refused ({e}) what validate accepts: {}", show(data)),
        (Ok(s), Err(e)) => match e {
            JsonError::DuplicateKey { .. } => {
                if let Ok(j) = reference {
                    assert!(j.has_duplicate_key(), "phantom duplicate: {}", show(data));
                }
                check_root_span(data, *s);
            }
            JsonError::InvalidUtf8 { .. } => {
                assert!(
                    std::str::from_utf8(data).is_err(),
                    "InvalidUtf8 on UTF-8 text accepted by skim: {}",
                    show(data)
                );
                // Skim accepts non-UTF-8 bytes only inside strings: replacing each with an
                // ASCII letter must leave a text skim still accepts, with the same span.
                let ascii: Vec<u8> = data
                    .iter()
                    .map(|&b| if b >= 0x80 { b'a' } else { b })
                    .collect();
                let s2 = json::skim(&ascii, &lim).unwrap_or_else(|e| {
                    panic!(
                        "skim accepted non-UTF-8 outside a string ({e}): {}",
                        show(data)
                    )
                });
                assert_eq!(s2.span(), s.span());
                match json::validate(&ascii, &lim) {
                    Ok(_) | Err(JsonError::DuplicateKey { .. }) => {}
                    Err(e) => panic!("asciified text refused by validate ({e}): {}", show(data)),
                }
            }
            e => panic!("validate refused ({e}) what skim accepts: {}", show(data)),
        },
        (Err(_), Err(_)) => {}
    }
    // Skim against serde_json directly (duplicates are kept by the reference tree).
    match (skimmed, reference) {
        (Ok(s), Ok(j)) => same_tree(*s, j, data),
        (Ok(s), Err(e)) => assert!(
            std::str::from_utf8(data).is_err()
                || (jtree::is_number_out_of_range(e) && has_infinite_number(*s)),
            "skim accepted what serde_json refuses ({e}): {}",
            show(data)
        ),
        (Err(e), Ok(j)) => assert!(
            matches!(e, JsonError::TooDeep { .. }) && j.depth() > LIMIT,
            "skim refused ({e}) what serde_json accepts: {}",
            show(data)
        ),
        (Err(_), Err(_)) => {}
    }
}

/// The same text under a smaller depth limit: accepted exactly when it is shallow enough.
fn check_small_limits(data: &[u8], v: Value<'_>) {
    let depth = tree_depth(v);
    let small = data.len() % 4;
    let lim = Limits { max_depth: small };
    for (name, r) in [
        ("validate", json::validate(data, &lim)),
        ("skim", json::skim(data, &lim)),
    ] {
        match r {
            Ok(w) => {
                assert!(
                    depth <= small,
                    "{name} ignored max_depth {small}: {}",
                    show(data)
                );
                assert_eq!(w.span(), v.span());
            }
            Err(JsonError::TooDeep { limit, .. }) => {
                assert_eq!(limit, small);
                assert!(
                    depth > small,
                    "{name}: TooDeep at depth {depth} ≤ {small}: {}",
                    show(data)
                );
            }
            Err(e) => panic!("{name} with max_depth {small}: {e}: {}", show(data)),
        }
    }
}

fn check_root_span(data: &[u8], v: Value<'_>) {
    let trimmed = trim_ws(data);
    assert_eq!(v.raw(), trimmed, "root span: {}", show(data));
}

fn trim_ws(b: &[u8]) -> &[u8] {
    let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r');
    let start = b.iter().position(|c| !ws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !ws(c)).map_or(start, |i| i + 1);
    &b[start..end]
}

fn tree_depth(v: Value<'_>) -> usize {
    match v.kind() {
        Kind::Array => 1 + v.elements().map(tree_depth).max().unwrap_or(0),
        Kind::Object => 1 + v.members().map(|m| tree_depth(m.value)).max().unwrap_or(0),
        _ => 0,
    }
}

fn has_infinite_number(v: Value<'_>) -> bool {
    match v.kind() {
        Kind::Number => v.as_f64().is_some_and(f64::is_infinite),
        Kind::Array => v.elements().any(has_infinite_number),
        Kind::Object => v.members().any(|m| has_infinite_number(m.value)),
        _ => false,
    }
}

/// Float equality up to `ulps` units in the last place (same sign; ±0 equal).
pub fn close(a: f64, b: f64, ulps: u64) -> bool {
    if a == b {
        return true;
    }
    if a.is_sign_negative() != b.is_sign_negative() || !a.is_finite() || !b.is_finite() {
        return false;
    }
    a.to_bits().abs_diff(b.to_bits()) <= ulps
}

/// The mcp-core view `v` and the reference tree `j` denote the same JSON value, and the
/// navigation API is self-consistent (spans, `get`, escaped keys).
pub fn same_tree(v: Value<'_>, j: &J, data: &[u8]) {
    let ctx = || show(data);
    match j {
        J::Null => assert!(v.is_null(), "null: {}", ctx()),
        J::Bool(b) => assert_eq!(v.as_bool(), Some(*b), "bool: {}", ctx()),
        J::Num(n) => {
            assert_eq!(v.kind(), Kind::Number, "number kind: {}", ctx());
            let text = std::str::from_utf8(v.raw()).expect("number text is ASCII");
            if let Some(i) = n.as_i64() {
                assert_eq!(
                    text.parse::<i128>().ok(),
                    Some(i128::from(i)),
                    "int {text}: {}",
                    ctx()
                );
                assert_eq!(v.as_i64(), Some(i), "as_i64 {text}: {}", ctx());
            } else if let Some(u) = n.as_u64() {
                assert_eq!(
                    text.parse::<u128>().ok(),
                    Some(u128::from(u)),
                    "u64 {text}: {}",
                    ctx()
                );
                assert_eq!(v.as_i64(), None, "as_i64 {text}: {}", ctx());
            } else {
                let f = n.as_f64().expect("serde_json numbers are finite");
                let g = v.as_f64().expect("as_f64 on a number");
                assert!(
                    close(f, g, 2),
                    "float {text}: serde {f:e} vs {g:e}: {}",
                    ctx()
                );
            }
        }
        J::Str(s) => {
            assert_eq!(v.kind(), Kind::String, "string kind: {}", ctx());
            assert_eq!(v.as_str().as_deref(), Some(s.as_str()), "string: {}", ctx());
        }
        J::Arr(items) => {
            assert_eq!(v.kind(), Kind::Array, "array kind: {}", ctx());
            let els: Vec<Value<'_>> = v.elements().collect();
            assert_eq!(els.len(), items.len(), "array length: {}", ctx());
            for (e, x) in els.into_iter().zip(items) {
                assert!(e.span().start >= v.span().start && e.span().end <= v.span().end);
                same_tree(e, x, data);
            }
        }
        J::Obj(members) => {
            assert_eq!(v.kind(), Kind::Object, "object kind: {}", ctx());
            let ms: Vec<_> = v.members().collect();
            assert_eq!(ms.len(), members.len(), "member count: {}", ctx());
            for (m, (k, x)) in ms.iter().zip(members) {
                assert_eq!(m.key, k.as_str(), "key: {}", ctx());
                let key_raw = &data[m.key_span.clone()];
                assert_eq!(
                    json::unescape(&key_raw[1..key_raw.len() - 1])
                        .ok()
                        .as_deref(),
                    Some(k.as_str()),
                    "key span: {}",
                    ctx()
                );
                assert_eq!(m.span.start, m.key_span.start);
                assert_eq!(m.span.end, m.value.span().end);
                same_tree(m.value, x, data);
            }
            // `get` finds the first member of each key.
            for (k, _) in members {
                let first = ms
                    .iter()
                    .find(|m| m.key == k.as_str())
                    .map(|m| m.value.span());
                assert_eq!(v.get(k).map(|g| g.span()), first, "get({k:?}): {}", ctx());
            }
        }
    }
}
