//! Detector corpus (positives and look-alike negatives per detector) and message-level
//! scrubbing tests.

use super::detect::{scan, Builtin, DetectorSet, Found};
use super::*;
use crate::jsonrpc::{parse_body, Body};

const GH36: &str = "u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d";
const PAT82: &str =
    "KLzd_ocJ2isAjIhKtJ0RlgLKOmxgJTeKdNnFRIBXuDL7DxtpYlSXpfKtHF4vUCsM_ehGAkWvj7FAc9QeWJ";
const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
const PEM_BODY: &str = "5ZJr3J1TWDtkwtDDb+xHKas1VOqg6YYZYn9ZhyiA4uoRgnatmUdjAWtGSU8po+799NksnRH9ucAUsdMlHUvTCQCyEZDz/TddJ8HyS5SUkCnD8zRA9a9SkpXz9w3QlY7Zkuvqdt7s8Stqcbnr3yBdGBLEPH1qhT61qtc4xatws8phP9nhFyJfm5di4PzJ59FH";

fn found_in(text: &str) -> Vec<(Builtin, String)> {
    let mut out: Vec<Found> = Vec::new();
    scan(text, DetectorSet::all(), &mut out);
    out.into_iter()
        .map(|f| (f.kind, text[f.range].to_string()))
        .collect()
}

/// Each positive must be found, exactly, as the only finding of `kind` in a sentence.
fn assert_positive(kind: Builtin, value: &str) {
    for text in [
        value.to_string(),
        format!("see {value} now"),
        format!("({value})"),
        format!("\"{value}\","),
    ] {
        let f = found_in(&text);
        assert!(
            f.iter().any(|(k, v)| *k == kind && v == value),
            "{kind:?} not found as {value:?} in {text:?}: {f:?}"
        );
    }
}

fn assert_negative(text: &str) {
    let f = found_in(text);
    assert!(f.is_empty(), "false positive in {text:?}: {f:?}");
}

#[test]
fn corpus_email_positives_and_look_alikes() {
    for v in [
        "alice@example.com",
        "bob.smith+tag@mail.example.co.uk",
        "o'hara_99@sub-domain.example.org",
        "x@y.io",
    ] {
        assert_positive(Builtin::Email, v);
    }
    for n in [
        "user@localhost",
        "icon@2x.png",
        "logo@3x.webp",
        "follow @example on social",
        "a@b",
        "foo@bar.",
        "mail to .@example.com?",
        "name@-bad.com",
        "npm install @scope/pkg@1.2.3",
    ] {
        assert_negative(n);
    }
}

#[test]
fn corpus_phone_positives_and_look_alikes() {
    for v in [
        "+1 415 555 0100",
        "+44 20 7946 0958",
        "+4915112345678",
        "+1 (415) 555-0100",
        "(415) 555-0132",
        "415-555-0132",
        "415.555.0132",
        "415 555 0132",
        "1-800-555-0199",
    ] {
        assert_positive(Builtin::Phone, v);
    }
    for n in [
        "2024-01-15",
        "12:30:45",
        "order 4155550132 shipped",
        "+123",
        "call 555-1234",
        "ISBN 978-3-16-148410-0",
        "offset +05:30",
        "415-555-01321",
        "115-555-0132",
        "415-155-0132",
        "415-555.0132",
    ] {
        assert_negative(n);
    }
}

#[test]
fn corpus_credit_card_positives_pass_luhn_and_issuer_prefix() {
    for v in [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "5500 0000 0000 0004",
        "3782 822463 10005",
        "6011111111111117",
        "2223003122003222",
        "4012888888881881",
        // Mixed separators are read as a card by any person or model (issue 14 class 9).
        "4111 1111-1111 1111",
        "4111.1111.1111.1111",
        "4111.1111 1111-1111",
        "3782-822463 10005",
    ] {
        assert_positive(Builtin::CreditCard, v);
    }
    for n in [
        "4111 1111 1111 1112",
        "1700000000000",
        "ts=1700000000123",
        "order 1234567890123456",
        "0000 0000 0000 0000",
        "9999999999999995",
        "4111  1111 1111 1111",
        "4111 -1111 1111 1111",
        "41111 1111 1111 111",
        "4111111111111111234567",
        "3.4111111111111111",
        "id-4111111111111111x",
    ] {
        assert_negative(n);
    }
}

#[test]
fn corpus_card_followed_by_a_year_keeps_only_the_card() {
    let f = found_in("card 4111 1111 1111 1111 2027");
    assert_eq!(
        f,
        vec![(Builtin::CreditCard, "4111 1111 1111 1111".to_string())]
    );
}

#[test]
fn corpus_us_ssn_positives_and_invalid_areas_groups_serials() {
    for v in ["219-09-9999", "457 55 5462", "536-22-1234"] {
        assert_positive(Builtin::UsSsn, v);
    }
    for n in [
        "000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "999-12-3456",
        "123-00-4567",
        "123-45-0000",
        "078-05-1120",
        "123-45-6789",
        "111-11-1111",
        "123-45 6789",
        "12-345-6789",
        "2024-05-1234",
        "1123-45-6788",
    ] {
        assert_negative(n);
    }
}

#[test]
fn corpus_iban_positives_pass_mod97_and_country_length() {
    for v in [
        "DE89 3704 0044 0532 0130 00",
        "DE89370400440532013000",
        "GB82WEST12345698765432",
        "GB82 WEST 1234 5698 7654 32",
        "FR1420041010050500013M02606",
        "NL91ABNA0417164300",
        "CH9300762011623852957",
    ] {
        assert_positive(Builtin::Iban, v);
    }
    for n in [
        "DE89 3704 0044 0532 0130 01",
        "XX89370400440532013000",
        "GB82WEST1234569876543",
        "DE8937040044053201300",
        "DE89370400440532013000X",
        "NL91 ABNA 0417 1643 01",
    ] {
        assert_negative(n);
    }
}

#[test]
fn corpus_ipv4_positives_and_versions_that_look_like_addresses() {
    for v in [
        "192.168.1.20",
        "10.0.0.1",
        "8.8.8.8",
        "172.16.0.0/12",
        "255.255.255.255",
    ] {
        assert_positive(Builtin::Ipv4, v);
    }
    for n in [
        "256.1.1.1",
        "1.2.3",
        "version 1.2.3.4",
        "Version: 10.2.0.1",
        "v1.2.3.4",
        "1.2.3.4.5",
        "01.02.03.04",
        "3.14159",
        "10.0.19041.1",
        "build 4.0.0.12",
    ] {
        assert_negative(n);
    }
}

#[test]
fn corpus_ipv6_positives_and_code_or_clock_look_alikes() {
    for v in [
        "2001:db8::8a2e:370:7334",
        "fe80::1ff:fe23:4567:890a",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "2001:db8::/32",
        "::ffff:192.0.2.128",
    ] {
        assert_positive(Builtin::Ipv6, v);
    }
    for n in [
        "12:30:45",
        "std::fmt::Display",
        "use a::b;",
        "::1",
        "00:1a:2b:3c:4d:5e",
        "2024-01-15T10:30:00Z",
        "Vec::new()",
        "key: value",
        "ratio 16:9",
    ] {
        assert_negative(n);
    }
}

#[test]
fn corpus_aws_access_keys_with_example_keys_allowed() {
    for v in ["AKIAUVW75EFR6EDT4SYW", "ASIAB5WKH7DNSIPZZ7FK"] {
        assert_positive(Builtin::AwsAccessKey, v);
    }
    for n in [
        "AKIAIOSFODNN7EXAMPLE",
        "AKIAAAAAAAAAAAAAAAAA",
        "AKIA1234",
        "XAKIAUVW75EFR6EDT4SYW",
        "AKIAUVW75EFR6EDT4SYWX",
        "akiauvw75efr6edt4syw",
        "AKIAUVW75EFR6EDT4SY1",
    ] {
        assert_negative(n);
    }
}

#[test]
fn corpus_github_tokens_by_prefix() {
    for p in ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"] {
        assert_positive(Builtin::GithubToken, &format!("{p}{GH36}"));
    }
    assert_positive(Builtin::GithubToken, &format!("github_pat_{PAT82}"));
    for n in [
        format!("ghp_{}", "a".repeat(36)),
        "ghp_short".to_string(),
        format!("ghx_{GH36}"),
        format!("ghp_{GH36}z"),
        format!("xghp_{GH36}"),
        "github_pat_tooshort".to_string(),
    ] {
        assert_negative(&n);
    }
}

#[test]
fn corpus_slack_tokens_by_type() {
    for v in [
        "xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "xoxp-1234567890-1234567890-1234567890123-0123456789abcdef0123456789abcdef",
        "xoxa-2-AbCdEf0123456789",
        "xoxs-1234-5678-9012-0a1b2c3d4e5f",
        "xapp-1-A0123456789-1234567890123-0123456789abcdef",
    ] {
        assert_positive(Builtin::SlackToken, v);
    }
    for n in [
        "xoxb-",
        "xoxb-123-abc",
        "xoxz-1234567890-1234567890",
        "xoxp-1234567890-1234567890-1234567890123-short",
        "xapp-token",
        "xoxb-1111111111-1111111111",
    ] {
        assert_negative(n);
    }
}

#[test]
fn corpus_jwt_needs_a_json_header_with_alg() {
    assert_positive(Builtin::Jwt, JWT);
    let unsigned = JWT.rsplit_once('.').map(|(h, _)| format!("{h}.")).unwrap();
    assert_positive(Builtin::Jwt, &unsigned);
    for n in [
        "eyJub3RhbGciOiAieCIsICJ0eXAiOiAiSldUIn0.eyJzdWIiOiAiMTIzNDU2Nzg5MCJ9.c2lnbmF0dXJl",
        "eyJhbGciOi",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
        "eyJxxxxxxxxxxxxxxxx.eyJxxxxxxxxxxxxxxx.sig",
        "the eyJ prefix alone",
    ] {
        assert_negative(n);
    }
}

#[test]
fn corpus_pem_private_keys_with_and_without_end_marker() {
    for label in [
        "RSA PRIVATE KEY",
        "PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
        "EC PRIVATE KEY",
    ] {
        let v = format!("-----BEGIN {label}-----\n{PEM_BODY}\n-----END {label}-----");
        assert_positive(Builtin::PrivateKey, &v);
    }
    let truncated = format!("key: -----BEGIN PRIVATE KEY-----\n{PEM_BODY}");
    let f = found_in(&truncated);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].0, Builtin::PrivateKey);
    assert!(f[0].1.ends_with(&PEM_BODY[PEM_BODY.len() - 8..]));
    for n in [
        format!("-----BEGIN PUBLIC KEY-----\n{PEM_BODY}\n-----END PUBLIC KEY-----"),
        format!("-----BEGIN CERTIFICATE-----\n{PEM_BODY}\n-----END CERTIFICATE-----"),
        "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----".to_string(),
        "--------------------".to_string(),
    ] {
        assert_negative(&n);
    }
}

#[test]
fn corpus_everyday_identifiers_are_not_flagged() {
    for n in [
        "550e8400-e29b-41d4-a716-446655440000",
        "12345678-1234-1234-1234-123456789012",
        "2024-01-15T10:30:00.123Z",
        "2024-01-15 10:30:00+02:00",
        "1700000000",
        "1700000000123",
        "1.2.3",
        "v2.10.4",
        "10.0.19041.1",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
        "9012345678901234abcd",
        "ORD-2024-000123",
        "Order #123456789 for 3 items",
        "3.14159",
        "1,234,567.89",
        "01/15/2024",
        "15.01.2024",
        "Total: $1,299.00 (tax 8.25%)",
        "Room 101, floor 12, building 7",
        "https://example.com/path?q=1&r=2#frag",
        "SELECT * FROM users WHERE id = 42",
        "The quick brown fox jumps over the lazy dog",
        "Invoice INV-000123456789 due 2024-02-01",
        "tracking 1Z999AA10123456784",
        "EMEA revenue report FY2025 q3",
    ] {
        assert_negative(n);
    }
}

#[test]
fn detectors_can_be_disabled_one_by_one() {
    let mut set = DetectorSet::none();
    set.insert(Builtin::Email);
    let mut out = Vec::new();
    scan(
        "alice@example.com 4111 1111 1111 1111 10.0.0.1",
        set,
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, Builtin::Email);
}

#[test]
fn non_ascii_text_around_values_keeps_char_boundaries() {
    let text = "Kontakt: jürgen.müller@example.de — café alice@example.com 📞 +49 30 1234567";
    let f = found_in(text);
    assert!(
        f.contains(&(Builtin::Email, "alice@example.com".into())),
        "{f:?}"
    );
    assert!(
        f.contains(&(Builtin::Phone, "+49 30 1234567".into())),
        "{f:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Engine and messages

fn engine(json_cfg: &str) -> Engine {
    let cfg: Config = serde_json::from_str(json_cfg).unwrap();
    Engine::new(&cfg).unwrap()
}

fn engine_err(json_cfg: &str) -> ConfigError {
    let cfg: Config = serde_json::from_str(json_cfg).unwrap();
    Engine::new(&cfg).unwrap_err()
}

fn req(eng: &Engine, body: &str) -> Scrubbed {
    let parsed = parse_body(body.as_bytes(), &Limits::default()).unwrap();
    let Body::Single(m) = parsed else {
        panic!("batch")
    };
    eng.scrub_request(&m, body.as_bytes())
}

fn resp_for(eng: &Engine, method: &str, body: &str) -> Scrubbed {
    let m = method.to_string();
    eng.scrub_response(
        body.as_bytes(),
        &move |_| Some(m.clone()),
        &Limits::default(),
    )
    .unwrap()
}

fn rewritten(s: &Scrubbed) -> serde_json::Value {
    match &s.verdict {
        Verdict::Rewritten(b) => serde_json::from_slice(b).unwrap(),
        other => panic!("not rewritten: {other:?}"),
    }
}

fn text_of(s: &Scrubbed) -> String {
    match &s.verdict {
        Verdict::Rewritten(b) => String::from_utf8(b.clone()).unwrap(),
        other => panic!("not rewritten: {other:?}"),
    }
}

#[test]
fn tool_arguments_are_redacted_and_every_other_byte_is_kept() {
    let eng = engine("{}");
    let body = r#"{"jsonrpc":"2.0", "id":7,"method":"tools/call","params":{"name":"send","arguments":{"to":"alice@example.com","n":4111111111111111,"note":"card 4111 1111 1111 1111"},"_meta":{"progressToken":"alice@example.com"}}}"#;
    let s = req(&eng, body);
    let out = text_of(&s);
    assert_eq!(
        out,
        body.replace(r#""to":"alice@example.com""#, r#""to":"[REDACTED:email]""#)
            // A card as a JSON number is a card too (it becomes the replacement string).
            .replace(r#""n":4111111111111111"#, r#""n":"[REDACTED:credit_card]""#)
            .replace("card 4111 1111 1111 1111", "card [REDACTED:credit_card]")
    );
    assert_eq!(s.findings.total(), 3);
    assert_eq!(
        s.changes,
        vec![
            (
                "alice@example.com".to_string(),
                "[REDACTED:email]".to_string()
            ),
            (
                "4111111111111111".to_string(),
                "[REDACTED:credit_card]".to_string()
            ),
            (
                "card 4111 1111 1111 1111".to_string(),
                "card [REDACTED:credit_card]".to_string()
            )
        ]
    );
}

#[test]
fn escapes_do_not_hide_an_email_and_the_result_is_re_encoded() {
    let eng = engine("{}");
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"q":"write to alice\u0040example.com\n\"now\""}}}"#;
    let v = rewritten(&req(&eng, body));
    assert_eq!(
        v["params"]["arguments"]["q"],
        "write to [REDACTED:email]\n\"now\""
    );
}

#[test]
fn methods_outside_the_scope_are_not_touched() {
    let eng = engine("{}");
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"alice@example.com"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"mailto:alice@example.com"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"clientInfo":{"name":"alice@example.com"}}}"#,
    ] {
        assert_eq!(req(&eng, body).verdict, Verdict::Clean, "{body}");
    }
}

#[test]
fn block_refuses_with_the_original_id_and_never_the_value() {
    let eng = engine(r#"{"action":"block"}"#);
    let body = r#"{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"name":"x","arguments":{"a":"alice@example.com","b":"219-09-9999"}}}"#;
    let s = req(&eng, body);
    let Verdict::Blocked {
        reply: Some(reply),
        types,
    } = &s.verdict
    else {
        panic!("{:?}", s.verdict)
    };
    assert_eq!(types, &vec!["email".to_string(), "us_ssn".to_string()]);
    let text = String::from_utf8(reply.clone()).unwrap();
    assert!(
        !text.contains("alice") && !text.contains("219-09"),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["id"], "abc");
    assert_eq!(v["error"]["code"], -32602);
    assert_eq!(
        v["error"]["data"]["detectors"],
        serde_json::json!(["email", "us_ssn"])
    );
}

#[test]
fn mask_keeps_the_last_four_characters() {
    let eng = engine(r#"{"action":"mask"}"#);
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"c":"4111-1111-1111-1111","e":"ab@cd.io"}}}"#;
    let v = rewritten(&req(&eng, body));
    assert_eq!(v["params"]["arguments"]["c"], "***************1111");
    assert_eq!(v["params"]["arguments"]["e"], "****d.io");
}

#[test]
fn hash_maps_equal_values_to_equal_keyed_tokens() {
    let eng = engine(r#"{"action":"hash","hash_key":"0123456789abcdef-secret"}"#);
    let other = engine(r#"{"action":"hash","hash_key":"another-key-0123456789"}"#);
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":"alice@example.com","b":"mail alice@example.com","c":"bob@example.com"}}}"#;
    let v = rewritten(&req(&eng, body));
    let a = v["params"]["arguments"]["a"].as_str().unwrap().to_string();
    assert!(
        a.starts_with("[HASH:email:") && a.len() == "[HASH:email:]".len() + 16,
        "{a}"
    );
    assert_eq!(v["params"]["arguments"]["b"], format!("mail {a}"));
    assert_ne!(v["params"]["arguments"]["c"], a.as_str());
    let w = rewritten(&req(&other, body));
    assert_ne!(w["params"]["arguments"]["a"], a.as_str());
}

#[test]
fn allow_values_and_custom_patterns() {
    let eng = engine(
        r#"{"allow_values":["Support@Example.com"],"custom":[{"name":"employee_id","pattern":"EMP-[0-9]{6}"}],"replacement":"<{type}>"}"#,
    );
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"t":"ask support@example.com or alice@example.com about EMP-123456"}}}"#;
    let s = req(&eng, body);
    let v = rewritten(&s);
    assert_eq!(
        v["params"]["arguments"]["t"],
        "ask support@example.com or <email> about <employee_id>"
    );
    let names: Vec<&str> = s
        .findings
        .iter()
        .map(|(i, _)| eng.detector_name(i))
        .collect();
    assert_eq!(names, vec!["email", "employee_id"]);
}

#[test]
fn configuration_errors_name_the_key() {
    assert_eq!(
        engine_err(r#"{"detectors":["email","ssn"]}"#).path,
        "detectors[1]"
    );
    assert_eq!(
        engine_err(r#"{"detectors":["email","email"]}"#).path,
        "detectors[1]"
    );
    let e = engine_err(
        r#"{"custom":[{"name":"ok","pattern":"a"},{"name":"bad","pattern":"EMP-[0-9"}]}"#,
    );
    assert_eq!(e.path, "custom[1].pattern");
    assert!(e.message.contains("invalid regex"), "{e}");
    assert!(!e.message.contains('\n'));
    assert_eq!(
        engine_err(r#"{"custom":[{"name":"x","pattern":"a*"}]}"#).path,
        "custom[0].pattern"
    );
    assert_eq!(
        engine_err(r#"{"custom":[{"name":"Email","pattern":"a"}]}"#).path,
        "custom[0].name"
    );
    assert_eq!(
        engine_err(r#"{"custom":[{"name":"email","pattern":"a"}]}"#).path,
        "custom[0].name"
    );
    assert_eq!(engine_err(r#"{"action":"hash"}"#).path, "hash_key");
    assert_eq!(
        engine_err(r#"{"action":"hash","hash_key":"short"}"#).path,
        "hash_key"
    );
    assert_eq!(
        engine_err(r#"{"include_paths":["$.params", "$.a[?(@.b)]"]}"#).path,
        "include_paths[1]"
    );
    assert_eq!(
        engine_err(r#"{"exclude_paths":["params"]}"#).path,
        "exclude_paths[0]"
    );
    assert!(serde_json::from_str::<Config>(r#"{"action":"drop"}"#).is_err());
    assert!(serde_json::from_str::<Config>(r#"{"detector":[]}"#).is_err());
}

#[test]
fn the_issue_example_configuration_loads() {
    let l = crate::config::load::<Config>(
        br#"{"detectors": ["email", "phone", "credit_card", "us_ssn", "iban", "ipv4", "ipv6",
                "aws_access_key", "github_token", "slack_token", "jwt", "private_key"],
  "custom": [{"name": "employee_id", "pattern": "EMP-[0-9]{6}"}],
  "request": true, "response": true, "action": "redact", "replacement": "[REDACTED:{type}]",
  "allow_values": ["support@example.com"],
  "include_paths": ["$.params.arguments", "$.result"], "exclude_paths": []}"#,
    )
    .unwrap();
    let eng = Engine::new(&l.filter).unwrap();
    assert_eq!(eng.enabled_detectors().len(), 13);
}

#[test]
fn tool_results_scrub_text_resource_text_and_structured_content_but_not_base64_or_uris() {
    let eng = engine("{}");
    let body = r#"{"jsonrpc":"2.0","id":3,"result":{"content":[
        {"type":"text","text":"Customer alice@example.com"},
        {"type":"image","data":"YWxpY2VAZXhhbXBsZS5jb20=","mimeType":"image/png"},
        {"type":"resource","resource":{"uri":"file:///alice@example.com.txt","mimeType":"text/plain","text":"ssn 219-09-9999"}},
        {"type":"resource","resource":{"uri":"file:///b","blob":"alice@example.com"}},
        {"type":"resource_link","uri":"mailto:alice@example.com","name":"contact bob@example.com"}],
      "structuredContent":{"email":"carol@example.com","age":41},
      "_meta":{"trace":"dave@example.com"}}}"#;
    let s = resp_for(&eng, "tools/call", body);
    let v = rewritten(&s);
    let c = &v["result"]["content"];
    assert_eq!(c[0]["text"], "Customer [REDACTED:email]");
    assert_eq!(c[1]["data"], "YWxpY2VAZXhhbXBsZS5jb20=");
    assert_eq!(c[2]["resource"]["uri"], "file:///alice@example.com.txt");
    assert_eq!(c[2]["resource"]["text"], "ssn [REDACTED:us_ssn]");
    assert_eq!(c[3]["resource"]["blob"], "alice@example.com");
    assert_eq!(c[4]["uri"], "mailto:alice@example.com");
    assert_eq!(c[4]["name"], "contact [REDACTED:email]");
    assert_eq!(
        v["result"]["structuredContent"]["email"],
        "[REDACTED:email]"
    );
    assert_eq!(v["result"]["structuredContent"]["age"], 41);
    assert_eq!(v["result"]["_meta"]["trace"], "dave@example.com");
    assert_eq!(v["id"], 3);
}

#[test]
fn a_text_copy_of_structured_content_is_scrubbed_identically_in_its_own_format() {
    let eng = engine(
        r#"{"action":"hash","hash_key":"k-0123456789abcdef","exclude_paths":["$.result.structuredContent.keep"]}"#,
    );
    let sc = serde_json::json!({"user": {"email": "alice@example.com", "phone": "+1 415 555 0100"}, "keep": "bob@example.com", "n": 1});
    let pretty = serde_json::to_string_pretty(&sc).unwrap();
    let msg = serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": {
        "structuredContent": sc,
        "content": [{"type": "text", "text": pretty}, {"type": "text", "text": "other alice@example.com"}]}});
    let s = resp_for(&eng, "tools/call", &msg.to_string());
    let v = rewritten(&s);
    let new_sc = &v["result"]["structuredContent"];
    assert!(new_sc["user"]["email"]
        .as_str()
        .unwrap()
        .starts_with("[HASH:email:"));
    assert_eq!(new_sc["keep"], "bob@example.com");
    let copy_text = v["result"]["content"][0]["text"].as_str().unwrap();
    let copy: serde_json::Value = serde_json::from_str(copy_text).unwrap();
    assert_eq!(&copy, new_sc);
    assert!(
        copy_text.contains("\n  \"user\": {"),
        "formatting kept: {copy_text}"
    );
    // Counted once (structuredContent), plus the other text block.
    assert_eq!(s.findings.total(), 3);
}

#[test]
fn notifications_and_server_requests_are_scrubbed_but_tokens_and_ids_are_not() {
    let eng = engine("{}");
    let progress = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"alice@example.com","progress":1,"message":"mailing alice@example.com"}}"#;
    let v = rewritten(&resp_for(&eng, "tools/call", progress));
    assert_eq!(v["params"]["progressToken"], "alice@example.com");
    assert_eq!(v["params"]["message"], "mailing [REDACTED:email]");

    let log = r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","logger":"x","data":{"ip":"10.1.2.3","list":["ok","AKIAUVW75EFR6EDT4SYW"]}}}"#;
    let v = rewritten(&resp_for(&eng, "tools/call", log));
    assert_eq!(v["params"]["data"]["ip"], "[REDACTED:ipv4]");
    assert_eq!(v["params"]["data"]["list"][1], "[REDACTED:aws_access_key]");

    let sampling = r#"{"jsonrpc":"2.0","id":9,"method":"sampling/createMessage","params":{"messages":[{"role":"user","content":{"type":"text","text":"summarize for 415-555-0132"}}],"systemPrompt":"user is alice@example.com","maxTokens":10}}"#;
    let v = rewritten(&resp_for(&eng, "tools/call", sampling));
    assert_eq!(
        v["params"]["messages"][0]["content"]["text"],
        "summarize for [REDACTED:phone]"
    );
    assert_eq!(v["params"]["systemPrompt"], "user is [REDACTED:email]");

    let elicit = r#"{"jsonrpc":"2.0","id":10,"method":"elicitation/create","params":{"message":"Confirm alice@example.com?","requestedSchema":{"type":"object"}}}"#;
    let v = rewritten(&resp_for(&eng, "tools/call", elicit));
    assert_eq!(v["params"]["message"], "Confirm [REDACTED:email]?");
}

#[test]
fn responses_of_other_methods_are_untouched_except_errors() {
    let eng = engine("{}");
    let list = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"t","description":"mail alice@example.com"}],"nextCursor":"x"}}"#;
    assert_eq!(resp_for(&eng, "tools/list", list).verdict, Verdict::Clean);
    let err = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad email alice@example.com","data":{"got":"alice@example.com"}}}"#;
    let v = rewritten(&resp_for(&eng, "tools/list", err));
    assert_eq!(v["error"]["message"], "bad email [REDACTED:email]");
    assert_eq!(v["error"]["data"]["got"], "[REDACTED:email]");
    assert_eq!(v["error"]["code"], -32602);
}

#[test]
fn resources_read_prompts_get_and_completion_results_are_in_scope() {
    let eng = engine("{}");
    let rr = r#"{"jsonrpc":"2.0","id":1,"result":{"contents":[{"uri":"test://a@b.com","mimeType":"text/plain","text":"owner alice@example.com"},{"uri":"x","blob":"YQ=="}]}}"#;
    let v = rewritten(&resp_for(&eng, "resources/read", rr));
    assert_eq!(v["result"]["contents"][0]["text"], "owner [REDACTED:email]");
    assert_eq!(v["result"]["contents"][0]["uri"], "test://a@b.com");
    let pg = r#"{"jsonrpc":"2.0","id":1,"result":{"description":"for alice@example.com","messages":[{"role":"user","content":{"type":"text","text":"Hi 219-09-9999"}}]}}"#;
    let v = rewritten(&resp_for(&eng, "prompts/get", pg));
    assert_eq!(v["result"]["description"], "for [REDACTED:email]");
    assert_eq!(
        v["result"]["messages"][0]["content"]["text"],
        "Hi [REDACTED:us_ssn]"
    );
    let cc = r#"{"jsonrpc":"2.0","id":1,"result":{"completion":{"values":["alice@example.com","plain"],"hasMore":false}}}"#;
    let v = rewritten(&resp_for(&eng, "completion/complete", cc));
    assert_eq!(v["result"]["completion"]["values"][0], "[REDACTED:email]");
}

#[test]
fn blocked_responses_become_errors_and_blocked_notifications_are_dropped() {
    let eng = engine(r#"{"action":"block"}"#);
    let r = r#"{"jsonrpc":"2.0","id":"r1","result":{"content":[{"type":"text","text":"card 4111 1111 1111 1111"}]}}"#;
    let s = resp_for(&eng, "tools/call", r);
    let Verdict::Blocked {
        reply: Some(reply),
        types,
    } = &s.verdict
    else {
        panic!("{:?}", s.verdict)
    };
    assert_eq!(types, &vec!["credit_card".to_string()]);
    let v: serde_json::Value = serde_json::from_slice(reply).unwrap();
    assert_eq!(v["id"], "r1");
    assert_eq!(v["error"]["code"], -32603);
    assert!(!String::from_utf8_lossy(reply).contains("4111"));
    let n = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"message":"alice@example.com"}}"#;
    assert!(matches!(
        resp_for(&eng, "tools/call", n).verdict,
        Verdict::Blocked { reply: None, .. }
    ));
}

#[test]
fn a_batch_response_is_scrubbed_per_element_and_a_blocked_element_becomes_an_error() {
    let eng = engine(r#"{"action":"block"}"#);
    let body = r#"[{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"fine"}]}},{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"alice@example.com"}]}}]"#;
    let v = rewritten(&resp_for(&eng, "tools/call", body));
    assert_eq!(v[0]["result"]["content"][0]["text"], "fine");
    assert_eq!(v[1]["id"], 2);
    assert_eq!(v[1]["error"]["data"]["detectors"][0], "email");
}

#[test]
fn include_paths_narrow_and_exclude_paths_remove() {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"to":"alice@example.com","cc":["bob@example.com"],"meta":{"by":"carol@example.com"}}}}"#;
    let inc = engine(r#"{"include_paths":["$.params.arguments.cc"]}"#);
    let v = rewritten(&req(&inc, body));
    assert_eq!(v["params"]["arguments"]["to"], "alice@example.com");
    assert_eq!(v["params"]["arguments"]["cc"][0], "[REDACTED:email]");
    let exc = engine(r#"{"exclude_paths":["$..by","$.params.arguments.cc[0]"]}"#);
    let v = rewritten(&req(&exc, body));
    assert_eq!(v["params"]["arguments"]["to"], "[REDACTED:email]");
    assert_eq!(v["params"]["arguments"]["cc"][0], "bob@example.com");
    assert_eq!(v["params"]["arguments"]["meta"]["by"], "carol@example.com");
    // include_paths cannot widen the built-in scope.
    let wide = engine(r#"{"include_paths":["$.params"]}"#);
    let v = rewritten(&req(&wide, body));
    assert_eq!(v["params"]["name"], "x");
    assert_eq!(v["params"]["arguments"]["to"], "[REDACTED:email]");
}

#[test]
fn a_client_response_to_sampling_or_elicitation_is_scrubbed() {
    let eng = engine("{}");
    let body = r#"{"jsonrpc":"2.0","id":5,"result":{"action":"accept","content":{"email":"alice@example.com","age":3}}}"#;
    let v = rewritten(&req(&eng, body));
    assert_eq!(v["result"]["content"]["email"], "[REDACTED:email]");
    assert_eq!(v["result"]["action"], "accept");
    let sampling = r#"{"jsonrpc":"2.0","id":6,"result":{"role":"assistant","content":{"type":"text","text":"call 415-555-0132"},"model":"m"}}"#;
    let v = rewritten(&req(&eng, sampling));
    assert_eq!(v["result"]["content"]["text"], "call [REDACTED:phone]");
}

#[test]
fn request_and_response_switches_turn_directions_off() {
    let eng = engine(r#"{"request":false,"response":false}"#);
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"to":"alice@example.com"}}}"#;
    assert_eq!(req(&eng, body).verdict, Verdict::Clean);
    let r = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"alice@example.com"}]}}"#;
    assert_eq!(resp_for(&eng, "tools/call", r).verdict, Verdict::Clean);
}

#[test]
fn non_json_rpc_json_is_scanned_whole_and_invalid_text_is_an_error() {
    let eng = engine("{}");
    let v = rewritten(&resp_for(
        &eng,
        "tools/call",
        r#"{"detail":"user alice@example.com not found"}"#,
    ));
    assert_eq!(v["detail"], "user [REDACTED:email] not found");
    let bad = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"\xff\xfe\"}]}}";
    let r = eng.scrub_response(bad, &|_| Some("tools/call".into()), &Limits::default());
    assert!(r.is_err());
    assert!(eng
        .scrub_response(b"not json", &|_| None, &Limits::default())
        .is_err());
}

#[test]
fn mirrored_header_values_follow_the_argument_they_mirror() {
    let changes = vec![(
        "alice@example.com".to_string(),
        "[REDACTED:email]".to_string(),
    )];
    assert_eq!(
        mirrored_header_value("alice@example.com", &changes).as_deref(),
        Some("[REDACTED:email]")
    );
    assert_eq!(mirrored_header_value("us-west1", &changes), None);
    assert_eq!(encode_header_value("plain"), "plain");
    assert_eq!(encode_header_value("****ü.io"), "=?base64?KioqKsO8Lmlv?=");
    assert_eq!(encode_header_value(" x"), "=?base64?IHg=?=");
    assert_eq!(
        crate::mcp::decode_header_value(&encode_header_value("ab")).unwrap(),
        "ab"
    );
    assert_eq!(
        crate::mcp::decode_header_value(&encode_header_value("é x ")).unwrap(),
        "é x "
    );
}

#[test]
fn mcp_2026_input_responses_are_scrubbed_in_tool_calls() {
    let eng = engine("{}");
    let body = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","arguments":{},"inputResponses":{"login":{"action":"accept","content":{"email":"alice@example.com"}}},"requestState":"alice@example.com"}}"#;
    let v = rewritten(&req(&eng, body));
    assert_eq!(
        v["params"]["inputResponses"]["login"]["content"]["email"],
        "[REDACTED:email]"
    );
    assert_eq!(v["params"]["requestState"], "alice@example.com");
}

#[test]
fn custom_patterns_support_case_insensitive_and_perl_classes() {
    let eng = engine(r#"{"custom":[{"name":"ticket","pattern":"(?i)tkt-\\w{4}\\d{2}"}]}"#);
    let mut f = Findings::default();
    let out = eng.scrub_text("see TKT-abcd42 now", &mut f).unwrap();
    assert_eq!(out.as_deref(), Some("see [REDACTED:ticket] now"));
}

/// The method of a request with exactly this id text (numbers compared as written), as the
/// filter ties responses to the requests of its exchange.
fn by_exact_id(
    id_text: &'static str,
    method: &'static str,
) -> impl Fn(Option<&Id<'_>>) -> Option<String> {
    move |id| match id {
        Some(Id::Number(t)) if *t == id_text => Some(method.to_string()),
        _ => None,
    }
}

#[test]
fn a_result_under_an_id_spelled_differently_is_scanned_whole() {
    let eng = engine("{}");
    let method_of = by_exact_id("7", "tools/call");
    for id in ["7.0", "7e0", "70e-1", "\"7\"", "null", "8"] {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"mail bob@example.com"}}],"other":{{"deep":["alice@example.com"]}},"_meta":{{"k":"carol@example.com"}}}}}}"#
        );
        let s = eng
            .scrub_response(body.as_bytes(), &method_of, &Limits::default())
            .unwrap();
        let v = rewritten(&s);
        assert_eq!(
            v["result"]["content"][0]["text"], "mail [REDACTED:email]",
            "{id}"
        );
        // Strictest scope: every string, not only the tool-result members...
        assert_eq!(v["result"]["other"]["deep"][0], "[REDACTED:email]", "{id}");
        // ... except `_meta`, which is never scrubbed.
        assert_eq!(v["result"]["_meta"]["k"], "carol@example.com");
    }
    // The exact id keeps the built-in scope (`other` is not a tool-result member).
    let body = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[],"other":"alice@example.com"}}"#;
    let s = eng
        .scrub_response(body.as_bytes(), &method_of, &Limits::default())
        .unwrap();
    assert_eq!(s.verdict, Verdict::Clean);
}

#[test]
fn a_response_with_a_duplicate_key_is_an_error_that_keeps_its_id() {
    let eng = engine("{}");
    for body in [
        r#"{"jsonrpc":"2.0","id":3,"result":{"content":[],"content":[{"type":"text","text":"bob@example.com"}]}}"#,
        r#"{"jsonrpc":"2.0","id":3,"result":{"structuredContent":{},"structuredContent":{"e":"bob@example.com"}}}"#,
        r#"{"jsonrpc":"2.0","id":3,"result":{"content":[],"con\u0074ent":[{"type":"text","text":"bob@example.com"}]}}"#,
        r#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"x","text":"bob@example.com"}]}}"#,
    ] {
        let e = eng
            .scrub_response(
                body.as_bytes(),
                &|_| Some("tools/call".into()),
                &Limits::default(),
            )
            .unwrap_err();
        assert!(
            matches!(e, json::JsonError::DuplicateKey { .. }),
            "{body}: {e:?}"
        );
        let reply = jsonrpc::ambiguous_response(body.as_bytes(), &Limits::default(), &e);
        let v: serde_json::Value = serde_json::from_slice(&reply).unwrap();
        assert_eq!(v["id"], 3, "{body}");
        assert_eq!(v["error"]["code"], -32603);
        assert!(!String::from_utf8_lossy(&reply).contains("bob@"));
    }
    // An ambiguous id is not echoed.
    let body = r#"{"jsonrpc":"2.0","id":3,"id":4,"result":{}}"#;
    let e = eng
        .scrub_response(body.as_bytes(), &|_| None, &Limits::default())
        .unwrap_err();
    let v: serde_json::Value = serde_json::from_slice(&jsonrpc::ambiguous_response(
        body.as_bytes(),
        &Limits::default(),
        &e,
    ))
    .unwrap();
    assert!(v["id"].is_null());
}

#[test]
fn pii_in_member_names_is_redacted_and_names_stay_unique() {
    let eng = engine("{}");
    let body = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"structuredContent":{"byEmail":{"bob@example.com":{"n":1},"alice@example.com":{"n":2},"[REDACTED:email]":0,"plain":"x"}}}}"#;
    let s = resp_for(&eng, "tools/call", body);
    let Verdict::Rewritten(b) = &s.verdict else {
        panic!("{:?}", s.verdict)
    };
    // Valid JSON with no duplicate key, every member kept.
    let text = std::str::from_utf8(b).unwrap();
    json::validate(b, &Limits::default()).unwrap();
    assert!(!text.contains("bob@") && !text.contains("alice@"), "{text}");
    let v: serde_json::Value = serde_json::from_slice(b).unwrap();
    let by = v["result"]["structuredContent"]["byEmail"]
        .as_object()
        .unwrap();
    assert_eq!(by.len(), 4);
    assert_eq!(
        by["[REDACTED:email]"], 0,
        "the name that was already there is kept"
    );
    assert_eq!(by["[REDACTED:email]#2"]["n"], 1);
    assert_eq!(by["[REDACTED:email]#3"]["n"], 2);
    assert_eq!(s.findings.total(), 2);
    // Request arguments too, also escaped keys.
    let r = req(
        &eng,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"to":{"bob\u0040example.com":true}}}}"#,
    );
    let Verdict::Rewritten(b) = &r.verdict else {
        panic!("{:?}", r.verdict)
    };
    let v: serde_json::Value = serde_json::from_slice(b).unwrap();
    assert_eq!(v["params"]["arguments"]["to"]["[REDACTED:email]"], true);
    // Under block a key blocks the message.
    let eng = engine(r#"{"action":"block"}"#);
    let s = resp_for(&eng, "tools/call", body);
    assert!(
        matches!(s.verdict, Verdict::Blocked { .. }),
        "{:?}",
        s.verdict
    );
}

#[test]
fn a_card_written_as_a_json_number_is_redacted_as_a_string() {
    let eng = engine("{}");
    let body = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"structuredContent":{"card":4111111111111111,"qty":12,"order":1234567890123,"price":4111111111111111.5}}}"#;
    let v = rewritten(&resp_for(&eng, "tools/call", body));
    let sc = &v["result"]["structuredContent"];
    assert_eq!(sc["card"], "[REDACTED:credit_card]");
    assert_eq!(sc["qty"], 12);
    assert_eq!(
        sc["order"], 1234567890123_u64,
        "not Luhn-valid with an issuer prefix"
    );
    assert!(sc["price"].is_number(), "only integers are scanned");
}

#[test]
fn corpus_values_next_to_other_values_are_each_found() {
    // Found by fuzzing: an address right after another one, a card followed by its CVV or expiry.
    let f = found_in("mailto:alice@example.com?cc=bob@example.com");
    let emails: Vec<&str> = f
        .iter()
        .filter(|(k, _)| *k == Builtin::Email)
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(emails.len(), 2, "{f:?}");
    assert_eq!(emails[0], "alice@example.com");
    assert!(emails[1].ends_with("bob@example.com"), "{f:?}");
    for text in ["4111111111111111 123", "4111111111111111 12/25"] {
        let f = found_in(text);
        assert_eq!(
            f,
            vec![(Builtin::CreditCard, "4111111111111111".to_string())],
            "{text}"
        );
    }
    let f = found_in("4111111111111111 4012888888881881");
    assert_eq!(f.len(), 2, "{f:?}");
}
