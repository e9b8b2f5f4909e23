//! RFC 8259 conformance of `json::validate` / `json::skim`, JSONTestSuite-style cases written
//! for this project, plus navigation and string helpers.
// Test helpers outside #[test] fns are not covered by clippy.toml's in-test allowances.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::borrow::Cow;
use std::time::{Duration, Instant};

use mcp_core::json::{self, JsonError, Kind, Limits};

fn lim() -> Limits {
    Limits::default()
}

/// Valid JSON texts (y_ cases): validate and skim accept them, and so does serde_json.
const ACCEPT: &[&str] = &[
    "{}",
    "[]",
    "0",
    "-0",
    "1",
    "-1",
    "123456789012345678901234567890",
    "0.5",
    "-0.0",
    "1e3",
    "1E3",
    "1e+3",
    "1e-3",
    "1.5e300",
    "1e999",
    "0e0",
    "0.0e-0",
    "true",
    "false",
    "null",
    "\"\"",
    "\"abc\"",
    " \t\r\n{} \t\r\n",
    "[1,2,3]",
    "[ 1 , 2 ]",
    "[[],[[]],{}]",
    "{\"a\":1}",
    "{\"a\":{\"b\":[true,false,null]}}",
    "{ \"a\" : 1 , \"b\" : 2 }",
    "{\"\":0}",
    "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]",
    "[\"\\u0000\"]",
    "[\"\\u00e9\"]",
    "[\"\\uFFFF\"]",
    "[\"\\ud83d\\ude00\"]",
    "[\"\\uD83D\\uDE00\"]",
    "[\"\\uDBFF\\uDFFF\"]",
    "[\"é\"]",
    "[\"😀\"]",
    "[\"\u{7f}\"]",
    "[\"\u{2028}\u{2029}\"]",
    "{\"a\":1,\"A\":2}",
    "{\"a\":1,\"b\":{\"a\":2}}",
    "[{\"a\":1},{\"a\":2}]",
    "{\"x\\u0041\":1,\"xB\":2}",
    "[-1.25e-7]",
    "[1,\"a\",{},[],null,true,false,-0.5E+2]",
];

/// Invalid JSON texts (n_ cases).
const REJECT: &[&str] = &[
    "",
    " ",
    "{",
    "}",
    "[",
    "]",
    "[1,]",
    "[,1]",
    "[1 2]",
    "{\"a\"}",
    "{\"a\":}",
    "{\"a\" 1}",
    "{\"a\":1,}",
    "{,}",
    "{1:1}",
    "{'a':1}",
    "{a:1}",
    "['a']",
    "[\"a]",
    "\"abc",
    "[01]",
    "[-01]",
    "[00]",
    "[+1]",
    "[.5]",
    "[1.]",
    "[1.e3]",
    "[1e]",
    "[1e+]",
    "[-]",
    "[--1]",
    "[0x10]",
    "[NaN]",
    "[Infinity]",
    "[-Infinity]",
    "[tru]",
    "[True]",
    "[nul]",
    "[falsey]",
    "[\"\\x41\"]",
    "[\"\\u00\"]",
    "[\"\\u00G0\"]",
    "[\"\\U0041\"]",
    "[\"\\\"]",
    "[\"\\'\"]",
    "[\"a\nb\"]",
    "[\"a\tb\"]",
    "[\"\u{1}\"]",
    "[\"\u{1f}\"]",
    "[1]x",
    "{}{}",
    "[] []",
    "1 2",
    "[1]\u{0}",
    "/* c */ 1",
    "[1] // c",
    "\u{feff}{}",
    "\u{a0}{}",
    "[1\u{a0}]",
    "{\"a\":1 \"b\":2}",
    "[\"\\uD800\"]",
    "[\"\\uDC00\"]",
    "[\"\\uD800\\u0041\"]",
    "[\"\\uDFFF\\uD800\"]",
    "[\"\\uD800\\uD800\"]",
    "[\"\\uD83D\"]",
    "[\"\\ud83d x\"]",
    "{\"a\":1,\"a\":2}",
];

#[test]
fn every_valid_snippet_is_accepted_by_validate_and_skim() {
    for case in ACCEPT {
        let v = json::validate(case.as_bytes(), &lim())
            .unwrap_or_else(|e| panic!("validate rejected {case:?}: {e}"));
        assert_eq!(
            v.raw(),
            case.trim_matches([' ', '\t', '\r', '\n']).as_bytes()
        );
        json::skim(case.as_bytes(), &lim())
            .unwrap_or_else(|e| panic!("skim rejected {case:?}: {e}"));
        assert!(
            serde_json::from_str::<serde_json::Value>(case).is_ok() || case.contains("1e999"),
            "reference parser disagrees on {case:?}"
        );
    }
}

#[test]
fn every_invalid_snippet_is_rejected_by_validate() {
    for case in REJECT {
        assert!(
            json::validate(case.as_bytes(), &lim()).is_err(),
            "validate accepted {case:?}"
        );
    }
}

#[test]
fn skim_rejects_the_same_snippets_except_duplicate_keys() {
    for case in REJECT {
        let r = json::skim(case.as_bytes(), &lim());
        if *case == "{\"a\":1,\"a\":2}" {
            assert!(r.is_ok());
        } else {
            assert!(r.is_err(), "skim accepted {case:?}");
        }
    }
}

#[test]
fn error_kinds_and_offsets_point_at_the_offending_byte() {
    let v = |s: &str| json::validate(s.as_bytes(), &lim()).unwrap_err();
    assert_eq!(v(""), JsonError::Empty);
    assert_eq!(v("  \n"), JsonError::Empty);
    assert_eq!(v("[1,]"), JsonError::Syntax { at: 3 });
    assert_eq!(v("[01]"), JsonError::Syntax { at: 2 });
    assert_eq!(v("[1] x"), JsonError::TrailingData { at: 4 });
    assert_eq!(v("\"abc"), JsonError::Syntax { at: 4 });
    assert_eq!(v("[\"a\u{1}\"]"), JsonError::Syntax { at: 3 });
    assert_eq!(v("[\"\\uD800\"]"), JsonError::InvalidUtf8 { at: 2 });
    assert_eq!(v("\u{feff}{}"), JsonError::Syntax { at: 0 });
    assert_eq!(
        v("{\"a\":1,\"a\":2}"),
        JsonError::DuplicateKey {
            at: 7,
            key: "a".into()
        }
    );
    assert_eq!(v("").offset(), None);
    assert_eq!(v("[1,]").offset(), Some(3));
}

#[test]
fn invalid_utf8_anywhere_is_rejected_by_validate_with_its_offset() {
    let cases: &[(&[u8], usize)] = &[
        (b"[\"\xff\"]", 2),
        (b"[\"ab\xc3\"]", 4),
        (b"[\"\xed\xa0\x80\"]", 2), // UTF-8-encoded surrogate
        (b"[\"\xc0\xaf\"]", 2),     // overlong
        (b"[1]\xff", 3),
        (b"\xff[1]", 0),
        (b"{\"k\xfe\":1}", 3),
    ];
    for (input, at) in cases {
        assert_eq!(
            json::validate(input, &lim()).unwrap_err(),
            JsonError::InvalidUtf8 { at: *at },
            "{input:?}"
        );
    }
}

#[test]
fn skim_accepts_non_utf8_inside_strings_but_as_str_refuses_it() {
    let v = json::skim(b"{\"name\":\"a\xffb\"}", &lim()).unwrap();
    let name = v.get("name").unwrap();
    assert_eq!(name.kind(), Kind::String);
    assert_eq!(name.as_str(), None);
    // Outside strings a stray byte is still a syntax error.
    assert!(json::skim(b"[1,\xff]", &lim()).is_err());
}

#[test]
fn depth_limit_counts_containers_and_is_configurable() {
    let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    assert!(json::validate(nested(64).as_bytes(), &lim()).is_ok());
    assert_eq!(
        json::validate(nested(65).as_bytes(), &lim()).unwrap_err(),
        JsonError::TooDeep { at: 64, limit: 64 }
    );
    let two = Limits { max_depth: 2 };
    assert!(json::validate(b"{\"a\":[1]}", &two).is_ok());
    assert!(matches!(
        json::validate(b"{\"a\":[{}]}", &two),
        Err(JsonError::TooDeep { at: 6, limit: 2 })
    ));
    let zero = Limits { max_depth: 0 };
    assert!(json::validate(b"\"scalar\"", &zero).is_ok());
    assert!(json::validate(b"[]", &zero).is_err());
}

#[test]
fn a_one_megabyte_nesting_bomb_fails_fast_without_recursion() {
    for open in [b'[', b'{'] {
        let mut bomb = Vec::with_capacity(1 << 20);
        for _ in 0..(1 << 20) / 5 {
            bomb.push(open);
            if open == b'{' {
                bomb.extend_from_slice(b"\"a\":");
            }
        }
        let t = Instant::now();
        assert!(matches!(
            json::validate(&bomb, &lim()),
            Err(JsonError::TooDeep { .. })
        ));
        assert!(matches!(
            json::skim(&bomb, &lim()),
            Err(JsonError::TooDeep { .. })
        ));
        assert!(t.elapsed() < Duration::from_millis(200));
    }
}

#[test]
fn a_hundred_thousand_deep_document_within_a_huge_limit_does_not_overflow_the_stack() {
    let n = 100_000;
    let doc = format!("{}{}", "[".repeat(n), "]".repeat(n));
    let huge = Limits {
        max_depth: usize::MAX,
    };
    let v = json::validate(doc.as_bytes(), &huge).unwrap();
    assert_eq!(v.kind(), Kind::Array);
    // Navigation is iterative too.
    assert_eq!(v.elements().count(), 1);
}

#[test]
fn duplicate_keys_are_detected_after_unescaping() {
    let dup = |s: &str| json::validate(s.as_bytes(), &lim()).unwrap_err();
    assert!(matches!(dup("{\"name\":\"a\",\"na\\u006de\":\"b\"}"),
        JsonError::DuplicateKey { ref key, at: 12 } if key == "name"));
    assert!(matches!(
        dup("{\"\\u0061\":1,\"a\":2}"),
        JsonError::DuplicateKey { .. }
    ));
    assert!(matches!(
        dup("{\"\\/\":1,\"/\":2}"),
        JsonError::DuplicateKey { .. }
    ));
    assert!(matches!(
        dup("{\"\\ud83d\\ude00\":1,\"😀\":2}"),
        JsonError::DuplicateKey { .. }
    ));
    assert!(matches!(
        dup("{\"p\":{\"x\":[{\"k\":1,\"k\":1}]}}"),
        JsonError::DuplicateKey { at: 18, .. }
    ));
    // Same key in sibling and nested objects is fine.
    assert!(json::validate(
        b"{\"a\":{\"a\":{\"a\":1}},\"b\":[{\"a\":1},{\"a\":2}]}",
        &lim()
    )
    .is_ok());
    // Keys differing only by case are distinct.
    assert!(json::validate(b"{\"Name\":1,\"name\":2}", &lim()).is_ok());
}

#[test]
fn duplicate_detection_in_large_objects_is_exact_and_subquadratic() {
    let mut s = String::from("{");
    for i in 0..50_000 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("\"k{i}\":{i}"));
    }
    s.push('}');
    let t = Instant::now();
    assert!(json::validate(s.as_bytes(), &lim()).is_ok());
    assert!(t.elapsed() < Duration::from_secs(2));
    let mut with_dup = s.clone();
    with_dup.pop();
    with_dup.push_str(",\"k\\u0031\":0,\"k7\":1}");
    match json::validate(with_dup.as_bytes(), &lim()).unwrap_err() {
        JsonError::DuplicateKey { key, at } => {
            assert_eq!(key, "k1");
            assert_eq!(&with_dup[at..at + 3], "\"k\\");
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn duplicate_key_errors_truncate_long_keys() {
    let k = "x".repeat(10_000);
    let s = format!("{{\"{k}\":1,\"{k}\":2}}");
    match json::validate(s.as_bytes(), &lim()).unwrap_err() {
        JsonError::DuplicateKey { key, .. } => assert_eq!(key.len(), 64),
        e => panic!("{e:?}"),
    }
    assert!(
        json::validate(s.as_bytes(), &lim())
            .unwrap_err()
            .to_string()
            .len()
            < 200
    );
}

#[test]
fn spans_are_offsets_in_the_root_input() {
    let input = br#"  {"a" : [10, "x\"y", {"b":null}], "c":true}  "#;
    let root = json::validate(input, &lim()).unwrap();
    assert_eq!(root.span(), 2..input.len() - 2);
    let a = root.get("a").unwrap();
    assert_eq!(a.kind(), Kind::Array);
    assert_eq!(&input[a.span()], br#"[10, "x\"y", {"b":null}]"#);
    let els: Vec<_> = a.elements().collect();
    assert_eq!(els.len(), 3);
    assert_eq!(&input[els[1].span()], br#""x\"y""#);
    assert_eq!(els[1].as_str().unwrap(), "x\"y");
    assert!(matches!(els[1].as_str().unwrap(), Cow::Owned(_)));
    assert!(els[2].get("b").unwrap().is_null());
    let members: Vec<_> = root.members().collect();
    assert_eq!(members.len(), 2);
    assert_eq!(members[0].key, "a");
    assert_eq!(&input[members[0].key_span.clone()], b"\"a\"");
    assert_eq!(
        &input[members[0].span.clone()],
        br#""a" : [10, "x\"y", {"b":null}]"#
    );
    assert_eq!(members[1].value.as_bool(), Some(true));
}

#[test]
fn scalar_accessors_convert_only_matching_kinds() {
    let v = json::validate(
        br#"{"i":-42,"f":1.5,"e":1e3,"big":99999999999999999999,"s":"plain","t":false,"n":null}"#,
        &lim(),
    )
    .unwrap();
    assert_eq!(v.get("i").unwrap().as_i64(), Some(-42));
    assert_eq!(v.get("f").unwrap().as_i64(), None);
    assert_eq!(v.get("f").unwrap().as_f64(), Some(1.5));
    assert_eq!(v.get("e").unwrap().as_i64(), None);
    assert_eq!(v.get("e").unwrap().as_f64(), Some(1000.0));
    assert_eq!(v.get("big").unwrap().as_i64(), None);
    assert!(matches!(
        v.get("s").unwrap().as_str(),
        Some(Cow::Borrowed("plain"))
    ));
    assert_eq!(v.get("s").unwrap().as_i64(), None);
    assert_eq!(v.get("i").unwrap().as_str(), None);
    assert_eq!(v.get("t").unwrap().as_bool(), Some(false));
    assert!(v.get("n").unwrap().is_null());
    assert!(!v.get("t").unwrap().is_null());
    assert!(v.get("missing").is_none());
    assert!(v.get("i").unwrap().get("x").is_none());
    assert_eq!(v.get("i").unwrap().members().count(), 0);
    assert_eq!(v.elements().count(), 0);
}

#[test]
fn get_matches_escaped_keys_and_members_unescape_them() {
    let v = json::validate(br#"{"na\u006de":"tool","\u00e9t\u00e9":1}"#, &lim()).unwrap();
    assert_eq!(v.get("name").unwrap().as_str().unwrap(), "tool");
    assert_eq!(v.get("été").unwrap().as_i64(), Some(1));
    let keys: Vec<String> = v.members().map(|m| m.key.into_owned()).collect();
    assert_eq!(keys, ["name", "été"]);
}

#[test]
fn empty_containers_navigate_to_nothing() {
    let v = json::validate(b"{\"o\":{},\"a\":[ ],\"w\":[ {} ]}", &lim()).unwrap();
    assert_eq!(v.get("o").unwrap().members().count(), 0);
    assert_eq!(v.get("a").unwrap().elements().count(), 0);
    assert_eq!(v.get("w").unwrap().elements().count(), 1);
}

#[test]
fn unescape_decodes_every_escape_and_borrows_plain_text() {
    assert!(matches!(
        json::unescape(b"plain"),
        Ok(Cow::Borrowed("plain"))
    ));
    assert_eq!(
        json::unescape(br#"\"\\\/\b\f\n\r\t\u0041\u00e9\ud83d\ude00"#).unwrap(),
        "\"\\/\u{8}\u{c}\n\r\tAé😀"
    );
    assert_eq!(
        json::unescape(br"\ud800").unwrap_err(),
        JsonError::InvalidUtf8 { at: 0 }
    );
    assert_eq!(
        json::unescape(br"ab\q").unwrap_err(),
        JsonError::Syntax { at: 2 }
    );
    assert_eq!(
        json::unescape(b"a\nb").unwrap_err(),
        JsonError::Syntax { at: 1 }
    );
    assert_eq!(
        json::unescape(b"a\"b").unwrap_err(),
        JsonError::Syntax { at: 1 }
    );
    assert_eq!(
        json::unescape(b"ab\xff").unwrap_err(),
        JsonError::InvalidUtf8 { at: 2 }
    );
    assert_eq!(
        json::unescape(b"\\n\xff").unwrap_err(),
        JsonError::InvalidUtf8 { at: 2 }
    );
}

#[test]
fn write_escaped_produces_json_that_round_trips() {
    let samples = [
        "",
        "plain",
        "quote\" backslash\\ slash/",
        "\u{0}\u{1}\u{8}\u{9}\u{a}\u{c}\u{d}\u{1f}\u{7f}",
        "é😀 日本",
        "line\u{2028}para\u{2029}end",
        "\u{e2}\u{80}",
    ];
    for s in samples {
        let mut out = Vec::new();
        json::write_escaped(&mut out, s);
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, s);
        let v = json::validate(&out, &lim()).unwrap();
        assert_eq!(v.as_str().unwrap(), s);
    }
    let mut out = Vec::new();
    json::write_escaped(&mut out, "a\u{2028}\u{1}\n");
    assert_eq!(out, b"\"a\\u2028\\u0001\\n\"");
}

#[test]
fn write_escaped_finds_every_special_character_at_every_offset() {
    // The char-by-char definition the word-at-a-time scan must agree with.
    fn expected(s: &str) -> String {
        let mut e = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => e.push_str("\\\""),
                '\\' => e.push_str("\\\\"),
                '\n' => e.push_str("\\n"),
                '\r' => e.push_str("\\r"),
                '\t' => e.push_str("\\t"),
                '\u{8}' => e.push_str("\\b"),
                '\u{c}' => e.push_str("\\f"),
                '\u{2028}' => e.push_str("\\u2028"),
                '\u{2029}' => e.push_str("\\u2029"),
                c if (c as u32) < 0x20 => e.push_str(&format!("\\u{:04x}", c as u32)),
                c => e.push(c),
            }
        }
        e.push('"');
        e
    }
    // `€` (E2 82 AC) shares U+2028's lead byte and stays as it is.
    for special in [
        "\"", "\\", "\n", "\u{1}", "\u{1f}", "\u{2028}", "\u{2029}", "€", "é", "\u{7f}",
    ] {
        for at in 0..20 {
            let s = format!("{}{special}{}", "a".repeat(at), "b".repeat(19 - at));
            let mut out = Vec::new();
            json::write_escaped(&mut out, &s);
            assert_eq!(String::from_utf8(out).unwrap(), expected(&s), "{s:?}");
        }
    }
}

#[test]
fn value_debug_output_is_bounded() {
    let big = format!("[\"{}\"]", "x".repeat(100_000));
    let v = json::validate(big.as_bytes(), &lim()).unwrap();
    assert!(format!("{v:?}").len() < 300);
}

/// Deterministic pseudo-random JSON round trip: whatever serde_json serializes, validate
/// accepts, and navigation sees the same structure.
#[test]
fn generated_documents_agree_with_serde_json() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    fn gen(rnd: &mut dyn FnMut(u64) -> u64, depth: u32) -> serde_json::Value {
        use serde_json::Value as V;
        match if depth > 4 { rnd(4) } else { rnd(6) } {
            0 => V::Null,
            1 => V::Bool(rnd(2) == 0),
            2 => V::from(rnd(1 << 40) as i64 - (1 << 39)),
            3 => {
                let chars = ['a', '"', '\\', '\n', 'é', '😀', '\u{1}', '\u{2028}', '/'];
                V::String((0..rnd(8)).map(|_| chars[rnd(9) as usize]).collect())
            }
            4 => V::Array((0..rnd(5)).map(|_| gen(rnd, depth + 1)).collect()),
            _ => V::Object(
                (0..rnd(5))
                    .map(|i| (format!("k{i}\u{e9}"), gen(rnd, depth + 1)))
                    .collect(),
            ),
        }
    }
    fn check(v: json::Value<'_>, expected: &serde_json::Value) {
        match expected {
            serde_json::Value::Null => assert!(v.is_null()),
            serde_json::Value::Bool(b) => assert_eq!(v.as_bool(), Some(*b)),
            serde_json::Value::Number(n) => assert_eq!(v.as_i64(), n.as_i64()),
            serde_json::Value::String(s) => assert_eq!(v.as_str().unwrap(), *s),
            serde_json::Value::Array(a) => {
                let els: Vec<_> = v.elements().collect();
                assert_eq!(els.len(), a.len());
                for (e, x) in els.into_iter().zip(a) {
                    check(e, x);
                }
            }
            serde_json::Value::Object(o) => {
                assert_eq!(v.members().count(), o.len());
                for (k, x) in o {
                    check(v.get(k).unwrap(), x);
                }
            }
        }
    }
    for _ in 0..300 {
        let doc = gen(&mut rnd, 0);
        for text in [
            serde_json::to_vec(&doc).unwrap(),
            serde_json::to_vec_pretty(&doc).unwrap(),
        ] {
            let v = json::validate(&text, &lim()).unwrap();
            check(v, &doc);
            assert_eq!(json::skim(&text, &lim()).unwrap().span(), v.span());
        }
    }
}
