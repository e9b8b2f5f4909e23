//! `pinning`: `mcp_core::pinning` (RFC 8785 canonical form, fingerprint, poisoning detector,
//! verdicts, `VerdictCache`, `QuarantineState`) against the contract of docs/pinning.md.
//!
//! The input is one or more tool definitions separated by the line `\n--\n` (which no JSON text
//! contains). For each definition:
//!
//! * `canonical`, `fingerprint`, `Detector::scan` and `QuarantineState::decode` never panic;
//! * `canonical` accepts exactly what serde_json reads as an object without duplicate member
//!   names (and refuses duplicates with `DuplicateKey`); a definition without a canonical form
//!   carries a poisoning marker, and one with a canonical form is never `unreadable`;
//! * when `canonical` is Ok: the input was UTF-8; the output is JSON that serde_json reads as
//!   the input without its top-level `_meta`, members sorted by UTF-16 code units (floats within
//!   2 ULP of serde_json's reading); read with `str::parse::<f64>`, every number is exactly the
//!   nearest double of the input's and is written as ECMAScript does (no exponent in
//!   [1e-6, 1e21), shortest digits, `e+`/`e-`, `-0` → `0`); it has no insignificant whitespace
//!   and only JCS's escapes; `canonical(canonical(x)) == canonical(x)`; the fingerprint is
//!   `sha256:` + 64 lowercase hex, and every other layout of the same value gives the same
//!   fingerprint (whitespace, member order, `\u`/`\/` escape spellings, `1` as `1.0`/`1e0`,
//!   a different or absent top-level `_meta`, serde_json's pretty printer over its sorted map);
//!   adding a top-level member changes it;
//! * `decode(encode(decode(x))) == decode(x)`.
//!
//! With a small `Pinning` configuration derived from the input (pins that match some of the
//! definitions, others that do not, every `unpinned` / `poisoning` mode, a tiny or default
//! `max_description_bytes`): `Pinning::check` follows the table of docs/pinning.md (drift,
//! unpinned, poisoning, first match; the detector's marker; the listed fingerprint);
//! `Pinning::call` follows "when calls are refused"; a `VerdictCache` fed a pseudo-random
//! sequence of (name, definition) checks returns exactly `Pinning::check`'s verdict and only
//! reuses a verdict for a pair it has seen; a `QuarantineState` built by `record` from names
//! taken from the input round-trips through `encode`/`decode`, reports changes truthfully and
//! refuses exactly the names a plain set model says.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use mcp_core::json::{self, JsonError, Kind, Limits, Value};
use mcp_core::pinning::{
    canonical, fingerprint, CallCheck, CanonError, Detector, Marker, Pinning, PinningConfig,
    Poisoning, QuarantineState, Reason, Unpinned, FINGERPRINT_PREFIX,
};

use crate::json::close;
use crate::jtree::{self, J};
use crate::util::{fnv, show, Rng};

/// Separates definitions in one input.
const SEP: &[u8] = b"\n--\n";
/// Definitions looked at per input.
const MAX_TOOLS: usize = 6;
/// `canonical`'s nesting limit (`config::MAX_MAX_JSON_DEPTH`).
const CANON_DEPTH: usize = 512;
/// Names besides the definitions' own.
const NAMES: &[&str] = &["search", "get_weather", "", "a\u{2028}b\"\\"];
/// A well-formed fingerprint no definition has.
const OTHER_FP: &str = "sha256:00000000000000000000000000000000000000000000000000000000000000ff";

pub fn run(data: &[u8]) {
    let tools: Vec<&[u8]> = split(data).into_iter().take(MAX_TOOLS).collect();
    let mut rng = Rng::new(fnv(data));
    for tool in &tools {
        check_tool(tool, &mut rng);
    }
    check_verdicts(&tools, &mut rng);
}

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(SEP.len()).position(|w| w == SEP) {
        out.push(&rest[..i]);
        rest = &rest[i + SEP.len()..];
    }
    out.push(rest);
    out
}

// ---------------------------------------------------------------------------------------
// One definition: canonical form, fingerprint, detector, decode

fn check_tool(tool: &[u8], rng: &mut Rng) {
    let ctx = || show(tool);
    let canon = canonical(tool);
    let fp = fingerprint(tool);
    assert_eq!(
        canon.as_ref().err(),
        fp.as_ref().err(),
        "canonical and fingerprint disagree, {}",
        ctx()
    );
    let marker = detector(8192).scan(tool);
    let _ = detector(1).scan(tool);
    let reference = jtree::parse(tool);

    // Decoding any bytes as the shared quarantine state: a fixed point after one round.
    let s = QuarantineState::decode(tool);
    assert_eq!(
        QuarantineState::decode(&s.encode()),
        s,
        "decode(encode(decode(x))), {}",
        ctx()
    );

    // Accept / refuse against serde_json.
    match (&reference, &canon) {
        (Ok(j), Ok(_)) => {
            assert!(
                matches!(j, J::Obj(_)),
                "canonical of a non-object, {}",
                ctx()
            );
            assert!(
                !j.has_duplicate_key(),
                "canonical accepted a duplicate, {}",
                ctx()
            );
        }
        (Ok(j), Err(e)) => match j {
            J::Obj(_) if j.has_duplicate_key() => assert!(
                matches!(e, CanonError::Json(JsonError::DuplicateKey { .. })),
                "duplicate member refused as {e:?}, {}",
                ctx()
            ),
            J::Obj(_) => panic!("canonical refused ({e}) a plain object, {}", ctx()),
            _ => assert_eq!(e, &CanonError::NotObject, "{}", ctx()),
        },
        // serde_json's recursion limit is 128; without `float_roundtrip` it also calls numbers
        // just under the rounding boundary of f64::MAX out of range (1.7976931348623158e308 is
        // f64::MAX by `str::parse`; canonical's numbers are checked exactly below).
        (Err(r), Ok(_)) => assert!(
            r.to_string().contains("recursion limit") || jtree::is_number_out_of_range(r),
            "canonical accepted what serde_json refuses ({r}), {}",
            ctx()
        ),
        (Err(_), Err(_)) => {}
    }

    // No canonical form: a marker (docs/pinning.md, "The fingerprint"); otherwise never
    // `unreadable`.
    match &canon {
        Err(e) => {
            assert!(
                marker.is_some(),
                "no canonical form ({e}) but no poisoning marker, {}",
                ctx()
            );
        }
        Ok(_) => assert_ne!(
            marker,
            Some(Marker::Unreadable),
            "unreadable but canonical, {}",
            ctx()
        ),
    }

    let (Ok(c), Ok(fp)) = (canon, fp) else { return };
    let text = std::str::from_utf8(tool)
        .unwrap_or_else(|_| panic!("canonical accepted non-UTF-8, {}", ctx()));
    check_fingerprint_text(&fp, tool);
    assert_eq!(canonical(&c).as_ref(), Ok(&c), "not idempotent, {}", ctx());
    check_jcs_bytes(&c, tool);

    // Same value as serde_json reads (floats within 2 ULP; past serde_json's recursion limit
    // of 128 only the exact comparison below applies).
    if let Ok(j) = &reference {
        let got = jtree::parse(&c)
            .unwrap_or_else(|e| panic!("canonical output refused by serde_json ({e}), {}", ctx()));
        let want = normalize(j, true);
        assert!(
            approx_eq(&got, &want),
            "canonical tree {got:?} vs serde_json {want:?}, {}",
            ctx()
        );
    }

    // Exact numbers: the input's own number texts, read by `str::parse`.
    let t = exact_tree(text);
    let want = t.normalized(true);
    let got_t = exact_tree(std::str::from_utf8(&c).expect("canonical is UTF-8"));
    assert_eq!(got_t, want, "canonical (exact) vs input, {}", ctx());
    got_t.numbers(&mut |raw| check_es_number(raw, tool));

    // Other layouts of the same value: the same fingerprint.
    for round in 0..3 {
        let mut out = Vec::new();
        let meta = match rng.below(3) {
            0 => MetaEdit::Keep,
            1 => MetaEdit::Drop,
            _ => MetaEdit::Replace,
        };
        write_layout(&t, rng, &mut out, 0, Some(meta));
        let fp2 = fingerprint(&out).unwrap_or_else(|e| {
            panic!(
                "layout {round} ({meta:?}) refused ({e}): {} of {}",
                show(&out),
                ctx()
            )
        });
        assert_eq!(
            fp2,
            fp,
            "layout {round} ({meta:?}) changed the fingerprint: {} of {}",
            show(&out),
            ctx()
        );
    }
    if let Ok(j) = &reference {
        if j.depth() < 100 && !j.has_float() {
            let v = j.to_value();
            let pretty = serde_json::to_vec_pretty(&v).expect("serialize");
            assert_eq!(
                fingerprint(&pretty).as_deref(),
                Ok(fp.as_str()),
                "serde_json pretty layout changed the fingerprint: {} of {}",
                show(&pretty),
                ctx()
            );
        }
    }
    // A new top-level member is a change.
    let mut out = Vec::new();
    write_layout(&t, rng, &mut out, 0, Some(MetaEdit::AddMember));
    assert_ne!(
        fingerprint(&out).as_deref(),
        Ok(fp.as_str()),
        "an added member kept the fingerprint: {} of {}",
        show(&out),
        ctx()
    );
}

fn check_fingerprint_text(fp: &str, tool: &[u8]) {
    let hex = fp
        .strip_prefix(FINGERPRINT_PREFIX)
        .unwrap_or_else(|| panic!("fingerprint {fp}, {}", show(tool)));
    assert!(
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "fingerprint {fp}, {}",
        show(tool)
    );
}

/// The canonical bytes: no whitespace outside strings, only JCS escapes inside them, no raw
/// control characters.
fn check_jcs_bytes(c: &[u8], tool: &[u8]) {
    let mut in_str = false;
    let mut i = 0;
    while let Some(&b) = c.get(i) {
        if in_str {
            match b {
                b'"' => in_str = false,
                b'\\' => {
                    let e = c.get(i + 1).copied().unwrap_or(0);
                    match e {
                        b'"' | b'\\' | b'b' | b't' | b'n' | b'f' | b'r' => i += 1,
                        b'u' => {
                            let hex = c.get(i + 2..i + 6).unwrap_or_default();
                            let v = std::str::from_utf8(hex)
                                .ok()
                                .and_then(|h| u32::from_str_radix(h, 16).ok());
                            assert!(
                                hex.starts_with(b"00")
                                    && hex.iter().all(|h| !h.is_ascii_uppercase())
                                    && v.is_some_and(|v| {
                                        v < 0x20 && ![8, 9, 10, 12, 13].contains(&v)
                                    }),
                                "escape \\u{} in canonical {}, of {}",
                                String::from_utf8_lossy(hex),
                                show(c),
                                show(tool)
                            );
                            i += 5;
                        }
                        _ => panic!("escape \\{} in canonical, {}", e as char, show(tool)),
                    }
                }
                0x00..=0x1f => panic!("raw control character in canonical, {}", show(tool)),
                _ => {}
            }
        } else {
            assert!(
                !matches!(b, b' ' | b'\t' | b'\n' | b'\r'),
                "whitespace in canonical {}, of {}",
                show(c),
                show(tool)
            );
            in_str = b == b'"';
        }
        i += 1;
    }
}

/// A number of the canonical form: exactly the double it denotes, written as ECMAScript's
/// `Number.prototype.toString` does (checked by its properties, not by a second formatter).
fn check_es_number(raw: &str, tool: &[u8]) {
    let ctx = || format!("number {raw:?}, {}", show(tool));
    let x: f64 = raw
        .parse()
        .unwrap_or_else(|_| panic!("unreadable {}", ctx()));
    assert!(x.is_finite(), "{}", ctx());
    if x == 0.0 {
        assert_eq!(raw, "0", "zero, {}", ctx());
        return;
    }
    let body = match raw.strip_prefix('-') {
        Some(b) => {
            assert!(x < 0.0, "{}", ctx());
            b
        }
        None => {
            assert!(x > 0.0, "{}", ctx());
            raw
        }
    };
    let (mantissa, exp) = match body.split_once('e') {
        Some((m, e)) => (m, Some(e)),
        None => (body, None),
    };
    let a = x.abs();
    if (1e-6..1e21).contains(&a) {
        assert!(exp.is_none(), "exponent in range, {}", ctx());
    } else {
        let e = exp.unwrap_or_else(|| panic!("no exponent out of range, {}", ctx()));
        let digits = e
            .strip_prefix('+')
            .or_else(|| e.strip_prefix('-'))
            .unwrap_or_else(|| panic!("exponent without sign, {}", ctx()));
        assert!(
            !digits.is_empty()
                && !digits.starts_with('0')
                && digits.bytes().all(|d| d.is_ascii_digit()),
            "exponent, {}",
            ctx()
        );
        let m = mantissa.as_bytes();
        assert!(
            m.len() == 1 || (m.len() > 2 && m.get(1) == Some(&b'.')),
            "mantissa, {}",
            ctx()
        );
        assert!(
            m.first().is_some_and(|d| (b'1'..=b'9').contains(d)),
            "{}",
            ctx()
        );
    }
    assert!(
        mantissa.bytes().all(|d| d.is_ascii_digit() || d == b'.')
            && mantissa.matches('.').count() <= 1,
        "{}",
        ctx()
    );
    if let Some((int, frac)) = mantissa.split_once('.') {
        assert!(
            !frac.is_empty() && !frac.ends_with('0'),
            "fraction, {}",
            ctx()
        );
        assert!(
            int == "0" || !int.starts_with('0'),
            "leading zero, {}",
            ctx()
        );
    } else {
        assert!(!mantissa.starts_with('0'), "leading zero, {}", ctx());
    }
    // Shortest digits: the significant digits of Rust's shortest round-trip `Display`.
    let sig = |s: &str| -> String {
        let d: String = s.chars().filter(char::is_ascii_digit).collect();
        d.trim_start_matches('0').trim_end_matches('0').to_owned()
    };
    assert_eq!(sig(mantissa), sig(&a.to_string()), "digits, {}", ctx());
}

// ---------------------------------------------------------------------------------------
// Trees: serde_json's (normalized) and one that keeps each number's text

/// `j` as RFC 8785 orders it: the top-level `_meta` removed, members sorted by UTF-16 units.
fn normalize(j: &J, top: bool) -> J {
    match j {
        J::Arr(items) => J::Arr(items.iter().map(|i| normalize(i, false)).collect()),
        J::Obj(members) => {
            let mut m: Vec<(String, J)> = members
                .iter()
                .filter(|(k, _)| !(top && k == "_meta"))
                .map(|(k, v)| (k.clone(), normalize(v, false)))
                .collect();
            m.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            J::Obj(m)
        }
        other => other.clone(),
    }
}

fn approx_eq(a: &J, b: &J) -> bool {
    match (a, b) {
        (J::Num(x), J::Num(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => close(x, y, 2),
            _ => false,
        },
        (J::Arr(x), J::Arr(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| approx_eq(a, b))
        }
        (J::Obj(x), J::Obj(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| ka == kb && approx_eq(va, vb))
        }
        _ => a == b,
    }
}

impl J {
    fn has_float(&self) -> bool {
        match self {
            J::Num(n) => n.is_f64(),
            J::Arr(items) => items.iter().any(J::has_float),
            J::Obj(m) => m.iter().any(|(_, v)| v.has_float()),
            _ => false,
        }
    }

    /// A `serde_json::Value` (its map is sorted by UTF-8 bytes: another member order).
    fn to_value(&self) -> serde_json::Value {
        use serde_json::Value as V;
        match self {
            J::Null => V::Null,
            J::Bool(b) => V::Bool(*b),
            J::Num(n) => V::Number(n.clone()),
            J::Str(s) => V::String(s.clone()),
            J::Arr(items) => V::Array(items.iter().map(J::to_value).collect()),
            J::Obj(m) => V::Object(m.iter().map(|(k, v)| (k.clone(), v.to_value())).collect()),
        }
    }
}

/// A JSON value with each number's text kept (compared by `str::parse::<f64>`).
#[derive(Debug, Clone)]
enum T {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<T>),
    Obj(Vec<(String, T)>),
}

impl PartialEq for T {
    fn eq(&self, other: &T) -> bool {
        match (self, other) {
            (T::Null, T::Null) => true,
            (T::Bool(a), T::Bool(b)) => a == b,
            (T::Num(a), T::Num(b)) => a.parse::<f64>().ok() == b.parse::<f64>().ok(),
            (T::Str(a), T::Str(b)) => a == b,
            (T::Arr(a), T::Arr(b)) => a == b,
            (T::Obj(a), T::Obj(b)) => a == b,
            _ => false,
        }
    }
}

impl T {
    fn normalized(&self, top: bool) -> T {
        match self {
            T::Arr(items) => T::Arr(items.iter().map(|i| i.normalized(false)).collect()),
            T::Obj(members) => {
                let mut m: Vec<(String, T)> = members
                    .iter()
                    .filter(|(k, _)| !(top && k == "_meta"))
                    .map(|(k, v)| (k.clone(), v.normalized(false)))
                    .collect();
                m.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
                T::Obj(m)
            }
            other => other.clone(),
        }
    }

    fn numbers(&self, f: &mut dyn FnMut(&str)) {
        match self {
            T::Num(raw) => f(raw),
            T::Arr(items) => items.iter().for_each(|i| i.numbers(f)),
            T::Obj(m) => m.iter().for_each(|(_, v)| v.numbers(f)),
            _ => {}
        }
    }
}

/// The tree of a text `canonical` accepted (so: valid, strings are Unicode text).
fn exact_tree(text: &str) -> T {
    let v = json::validate(
        text.as_bytes(),
        &Limits {
            max_depth: CANON_DEPTH,
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "validate refused ({e}) a text canonical accepts: {}",
            show(text.as_bytes())
        )
    });
    to_t(&v)
}

fn to_t(v: &Value<'_>) -> T {
    match v.kind() {
        Kind::Null => T::Null,
        Kind::Bool => T::Bool(v.as_bool().expect("bool")),
        Kind::Number => T::Num(String::from_utf8_lossy(v.raw()).into_owned()),
        Kind::String => T::Str(v.as_str().expect("Unicode string").into_owned()),
        Kind::Array => T::Arr(v.elements().map(|e| to_t(&e)).collect()),
        Kind::Object => T::Obj(
            v.members()
                .map(|m| (m.key.into_owned(), to_t(&m.value)))
                .collect(),
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Writing the same value in another layout

#[derive(Debug, Clone, Copy, PartialEq)]
enum MetaEdit {
    Keep,
    Drop,
    /// Replace the top-level `_meta`'s value, or add one.
    Replace,
    /// Add a member the object does not have (a real change).
    AddMember,
}

fn ws(rng: &mut Rng, out: &mut Vec<u8>) {
    const WS: &[&[u8]] = &[b"", b"", b" ", b"\n  ", b"\t", b"\r\n"];
    out.extend_from_slice(WS[rng.below(WS.len() as u64) as usize]);
}

fn write_layout(t: &T, rng: &mut Rng, out: &mut Vec<u8>, depth: usize, meta: Option<MetaEdit>) {
    ws(rng, out);
    match t {
        T::Null => out.extend_from_slice(b"null"),
        T::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        T::Num(raw) => write_number(raw, rng, out),
        T::Str(s) => write_string(s, rng, out),
        T::Arr(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    ws(rng, out);
                    out.push(b',');
                }
                write_layout(item, rng, out, depth + 1, None);
            }
            ws(rng, out);
            out.push(b']');
        }
        T::Obj(members) => {
            let mut m: Vec<(String, T)> = members.clone();
            match meta {
                Some(MetaEdit::Drop) => m.retain(|(k, _)| k != "_meta"),
                Some(MetaEdit::Replace) => {
                    m.retain(|(k, _)| k != "_meta");
                    let at = rng.below(m.len() as u64 + 1) as usize;
                    let v = T::Obj(vec![("v".into(), T::Num(rng.below(1000).to_string()))]);
                    m.insert(at, ("_meta".into(), v));
                }
                Some(MetaEdit::AddMember) => {
                    let mut key = String::from("fuzz\u{1F600}");
                    while m.iter().any(|(k, _)| *k == key) {
                        key.push('+');
                    }
                    m.push((key, T::Null));
                }
                Some(MetaEdit::Keep) | None => {}
            }
            match rng.below(4) {
                0 => m.reverse(),
                1 if !m.is_empty() => {
                    let r = rng.below(m.len() as u64) as usize;
                    m.rotate_left(r);
                }
                2 => m.sort_by(|a, b| a.0.cmp(&b.0)),
                _ => {}
            }
            out.push(b'{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    ws(rng, out);
                    out.push(b',');
                }
                ws(rng, out);
                write_string(k, rng, out);
                ws(rng, out);
                out.push(b':');
                write_layout(v, rng, out, depth + 1, None);
            }
            ws(rng, out);
            out.push(b'}');
        }
    }
    if depth == 0 {
        ws(rng, out);
    }
}

/// The same decimal value spelled differently (`1` → `1.0`, `1e0`, `1E+00`; `0.5` → `0.50`).
fn write_number(raw: &str, rng: &mut Rng, out: &mut Vec<u8>) {
    out.extend_from_slice(raw.as_bytes());
    let has_exp = raw.contains(['e', 'E']);
    let has_frac = raw.contains('.');
    match rng.below(4) {
        0 if !has_exp && !has_frac => out.extend_from_slice(b".0"),
        1 if !has_exp => out.extend_from_slice(b"e0"),
        2 if !has_exp => out.extend_from_slice(b"E+00"),
        3 if !has_exp && has_frac => out.extend_from_slice(b"00"),
        _ => {}
    }
}

/// `s` as a JSON string with pseudo-random escape spellings.
fn write_string(s: &str, rng: &mut Rng, out: &mut Vec<u8>) {
    fn u(out: &mut Vec<u8>, unit: u16, upper: bool) {
        let hex = if upper {
            format!("\\u{unit:04X}")
        } else {
            format!("\\u{unit:04x}")
        };
        out.extend_from_slice(hex.as_bytes());
    }
    out.push(b'"');
    for c in s.chars() {
        let r = rng.below(4);
        let upper = rng.below(2) == 0;
        match c {
            '"' | '\\' if r == 0 => u(out, c as u16, upper),
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '/' if r == 0 => out.extend_from_slice(b"\\/"),
            '\n' if r != 0 => out.extend_from_slice(b"\\n"),
            '\t' if r != 0 => out.extend_from_slice(b"\\t"),
            '\u{0}'..='\u{1f}' => u(out, c as u16, upper),
            _ if r == 0 => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    u(out, *unit, upper);
                }
            }
            _ => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

// ---------------------------------------------------------------------------------------
// Verdicts, the cache and the shared state

/// The name a definition is listed under: its `name` string, or one of [`NAMES`].
fn tool_name(tool: &[u8], rng: &mut Rng) -> String {
    if rng.below(4) != 0 {
        if let Ok(J::Obj(m)) = jtree::parse(tool) {
            if let Some((_, J::Str(n))) = m.iter().find(|(k, _)| k == "name") {
                return n.clone();
            }
        }
    }
    NAMES[rng.below(NAMES.len() as u64) as usize].to_owned()
}

fn config(tools: &[&[u8]], names: &[String], rng: &mut Rng) -> PinningConfig {
    let pins = (rng.below(4) != 0).then(|| {
        let mut pins = BTreeMap::new();
        for name in names.iter().filter(|n| !n.is_empty()) {
            match rng.below(3) {
                0 => {}
                1 => {
                    pins.insert(name.clone(), OTHER_FP.to_owned());
                }
                _ => {
                    let t = tools[rng.below(tools.len() as u64) as usize];
                    let fp = fingerprint(t).unwrap_or_else(|_| OTHER_FP.to_owned());
                    pins.insert(name.clone(), fp);
                }
            }
        }
        pins
    });
    PinningConfig {
        pins,
        unpinned: if rng.below(2) == 0 {
            Unpinned::Quarantine
        } else {
            Unpinned::Allow
        },
        poisoning: match rng.below(3) {
            0 => Poisoning::Quarantine,
            1 => Poisoning::Flag,
            _ => Poisoning::Off,
        },
        max_description_bytes: [1, 12, 8192][rng.below(3) as usize],
    }
}

/// Compiling the detector's regexes dominates a run: detectors and configurations are kept.
fn detector(max_description_bytes: usize) -> Detector {
    thread_local! {
        static DETECTORS: RefCell<HashMap<usize, Detector>> = RefCell::new(HashMap::new());
    }
    DETECTORS.with(|d| {
        d.borrow_mut()
            .entry(max_description_bytes)
            .or_insert_with(|| Detector::new(max_description_bytes).expect("detector"))
            .clone()
    })
}

fn compile(cfg: &PinningConfig) -> Pinning {
    thread_local! {
        static COMPILED: RefCell<HashMap<String, Pinning>> = RefCell::new(HashMap::new());
    }
    let key = format!("{cfg:?}");
    COMPILED.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= 256 {
            c.clear();
        }
        c.entry(key)
            .or_insert_with(|| {
                Pinning::compile(cfg).unwrap_or_else(|e| panic!("config {cfg:?}: {e}"))
            })
            .clone()
    })
}

fn check_verdicts(tools: &[&[u8]], rng: &mut Rng) {
    let ctx = || {
        tools
            .iter()
            .map(|t| show(t))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let mut names: Vec<String> = tools.iter().map(|t| tool_name(t, rng)).collect();
    names.extend(NAMES.iter().map(|n| (*n).to_owned()));
    let cfg = config(tools, &names, rng);
    let p = compile(&cfg);
    let detector = detector(cfg.max_description_bytes);

    // Pinning::check and Pinning::call against docs/pinning.md.
    for name in &names {
        let pin = cfg.pins.as_ref().map(|p| p.get(name));
        let want = match pin {
            Some(Some(_)) => CallCheck::Latest,
            Some(None) if cfg.unpinned == Unpinned::Quarantine => {
                CallCheck::Refuse(Reason::Unpinned)
            }
            _ if cfg.poisoning == Poisoning::Quarantine => CallCheck::Latest,
            _ => CallCheck::Pass,
        };
        assert_eq!(p.call(name), want, "call {name:?} under {cfg:?}");
        assert_eq!(p.is_pinned(name), matches!(pin, Some(Some(_))));
        for tool in tools {
            let v = p.check(name, tool);
            let fp = fingerprint(tool).ok();
            let marker = match cfg.poisoning {
                Poisoning::Off => None,
                _ => detector.scan(tool),
            };
            let quarantine = match pin {
                Some(Some(pin)) if fp.as_ref() != Some(pin) => Some(Reason::Drift),
                Some(None) if cfg.unpinned == Unpinned::Quarantine => Some(Reason::Unpinned),
                _ if marker.is_some() && cfg.poisoning == Poisoning::Quarantine => {
                    Some(Reason::Poisoning)
                }
                _ => None,
            };
            assert_eq!(
                (v.quarantine, v.marker, v.fingerprint()),
                (quarantine, marker, fp),
                "verdict on {name:?} under {cfg:?}: {}",
                show(tool)
            );
        }
    }

    // The cache gives Pinning::check's verdict for any sequence.
    let mut cache = mcp_core::pinning::VerdictCache::default();
    let mut seen: BTreeSet<(String, Vec<u8>)> = BTreeSet::new();
    let steps = 4 * tools.len() + 4;
    let mut order: Vec<usize> = (0..tools.len()).collect();
    for step in 0..steps {
        // Mostly the same order again and again (as servers list), sometimes shuffled.
        if step % tools.len() == 0 && rng.below(3) == 0 {
            let a = rng.below(order.len() as u64) as usize;
            let b = rng.below(order.len() as u64) as usize;
            order.swap(a, b);
        }
        let i = order[step % tools.len()];
        let name = if rng.below(5) == 0 {
            names[rng.below(names.len() as u64) as usize].clone()
        } else {
            names[i].clone()
        };
        let tool = tools[i];
        let (got, computed) = cache.check(&p, &name, tool);
        assert_eq!(
            got,
            p.check(&name, tool),
            "cached verdict, step {step} {name:?} {}, of {}",
            show(tool),
            ctx()
        );
        let key = (name, tool.to_vec());
        assert!(
            computed || seen.contains(&key),
            "a verdict reused for a pair never checked, step {step} {:?}, of {}",
            key.0,
            ctx()
        );
        seen.insert(key);
    }

    // QuarantineState built by `record`, against a set model.
    let mut pool: Vec<String> = names.clone();
    for tool in tools {
        if let Ok(j) = jtree::parse(tool) {
            let mut path = Vec::new();
            j.strings(&mut path, &mut |_, s| pool.push(s.to_owned()));
        } else {
            pool.push(String::from_utf8_lossy(&tool[..tool.len().min(24)]).into_owned());
        }
    }
    pool.truncate(24);
    let mut state = QuarantineState::default();
    let mut model: BTreeSet<String> = BTreeSet::new();
    for step in 0..3 * pool.len() {
        let name = &pool[rng.below(pool.len() as u64) as usize];
        let quarantined = rng.below(3) != 0;
        let before = state.clone();
        let changed = state.record(&p, name, quarantined);
        assert_eq!(
            changed,
            before != state,
            "record({name:?}, {quarantined}) step {step}: changed"
        );
        if quarantined {
            model.insert(name.clone());
        } else {
            model.remove(name);
        }
        let enc = state.encode();
        assert!(
            jtree::parse(&enc).is_ok(),
            "encoded state is not JSON: {}",
            show(&enc)
        );
        assert_eq!(
            QuarantineState::decode(&enc),
            state,
            "decode(encode(s)): {}",
            show(&enc)
        );
        assert_eq!(state.is_empty(), model.is_empty(), "is_empty, step {step}");
        for n in &pool {
            assert_eq!(
                state.refuses(&p, n),
                model.contains(n),
                "refuses({n:?}) step {step}: {}",
                show(&enc)
            );
        }
    }
}
