//! `scopes`: JWT and JWK Set handling in `mcp_core::scopes` must not panic on any input, and a
//! few round-trip properties hold.
//!
//! The input is used as: an `Authorization` header value, a compact JWS, a JWK Set document,
//! a claims object (directly and inside a token), a protected header (inside a token), and a
//! base64url string.

use std::sync::OnceLock;

use mcp_core::config;
use mcp_core::scopes::config::{Authenticator, JwtPolicy};
use mcp_core::scopes::token::{self, Bearer};
use mcp_core::scopes::{jwks, Alg, ScopesConfig};

use crate::util::show;

/// The JWT policy of a typical configuration (compiled once, like the filter does).
fn policy() -> &'static (JwtPolicy, Vec<String>) {
    static P: OnceLock<(JwtPolicy, Vec<String>)> = OnceLock::new();
    P.get_or_init(|| {
        // One inline Ed25519 key (32 zero bytes): enough for the config to compile.
        let jwks = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}"#;
        let cfg = serde_json::json!({
            "resource": "https://mcp.example.com/mcp",
            "authorization_servers": ["https://idp.example.com"],
            "jwt": {
                "issuer": "https://idp.example.com",
                "algorithms": ["RS256", "ES256", "EdDSA", "HS256"],
                "jwks": {"inline": jwks},
                "hmac_secret": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ"
            },
            "rules": [{"tools": ["admin_*"], "scopes": ["admin"]}],
            "publish_claims": ["email", "groups", "tenant"]
        })
        .to_string();
        let loaded = config::load::<ScopesConfig>(cfg.as_bytes()).expect("fuzz scopes config loads");
        let policy = loaded
            .filter
            .compile()
            .expect("fuzz scopes config compiles")
            .expect("authorization is on");
        match policy.authenticator {
            Authenticator::Jwt(jwt) => (jwt, policy.publish_claims),
            Authenticator::JwtAuthn(_) => unreachable!("the config uses jwt"),
        }
    })
}

/// Unpadded base64url, the encoder `token::base64url_decode` inverts.
pub fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 3);
    for c in bytes.chunks(3) {
        let n = c.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b)) << (8 * (3 - c.len()));
        for i in 0..=c.len() {
            out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

pub fn run(data: &[u8]) {
    let (jwt, publish) = policy();
    let text = String::from_utf8_lossy(data);

    // Authorization header.
    match token::bearer(Some(&text)) {
        Bearer::Token(t) => {
            assert!(
                text.contains(t),
                "token not from the header: {}",
                show(data)
            );
            assert!(!t.is_empty());
            token_paths(t, jwt, publish);
        }
        Bearer::Absent | Bearer::Malformed => {}
    }
    token_paths(&text, jwt, publish);

    // base64url: canonical, so decoding then encoding gives the input back.
    if let Some(bytes) = token::base64url_decode(&text) {
        assert_eq!(b64url(&bytes), text, "base64url round trip: {}", show(data));
    }

    // JWK Set document.
    if let Ok(set) = jwks::parse(data) {
        for k in &set.keys {
            for a in k.algorithms(&jwt.algorithms) {
                assert_eq!(
                    a.key_kind(),
                    k.material.kind(),
                    "alg/key kind: {}",
                    show(data)
                );
                assert!(
                    !matches!(a, Alg::HS256 | Alg::HS384 | Alg::HS512),
                    "HMAC from a JWK"
                );
            }
            match &k.material {
                jwks::Material::P256(p) => assert_eq!(p.len(), 65),
                jwks::Material::P384(p) => assert_eq!(p.len(), 97),
                jwks::Material::Ed25519(p) => assert_eq!(p.len(), 32),
                jwks::Material::Rsa { n, e } => assert!(n.len() >= 256 && !e.is_empty()),
            }
        }
        let entries = set.keys.iter().flat_map(|k| {
            k.algorithms(&jwt.algorithms)
                .into_iter()
                .map(move |a| (k.kid.as_deref(), a))
        });
        let _ = jwks::select(entries.clone(), Alg::RS256, None);
        let _ = jwks::select(entries, Alg::ES256, Some(&text));
    }

    // Claims, directly and as a token's payload; the input as a token's protected header.
    if let Ok(claims) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(data) {
        for now in [0, 1_700_000_000, u64::MAX] {
            let _ = token::validate_claims(&claims, jwt, publish, now);
        }
        let _ = token::scopes_of(claims.get("scope"), claims.get("scp"));
    }
    let header = b64url(br#"{"alg":"RS256","kid":"k1"}"#);
    let as_payload = format!("{header}.{}.c2ln", b64url(data));
    token_paths(&as_payload, jwt, publish);
    let as_header = format!("{}.e30.c2ln", b64url(data));
    token_paths(&as_header, jwt, publish);
}

/// Everything the filter does with a token before and after signature verification.
fn token_paths(t: &str, jwt: &JwtPolicy, publish: &[String]) {
    let Ok(compact) = token::split(t) else {
        return;
    };
    assert!(t.starts_with(compact.header_b64));
    let _ = token::allowed_alg(&compact.header, &jwt.algorithms);
    if let Ok(claims) = token::payload(&compact) {
        for now in [0, 1_700_000_000, u64::MAX] {
            if let Ok(id) = token::validate_claims(&claims, jwt, publish, now) {
                serde_json::from_str::<serde_json::Value>(&id.claims_json)
                    .expect("claims_json is JSON");
                assert!(id.scopes.iter().all(|s| !s.is_empty()));
                let _ = id.scope_string();
            }
        }
    }
}
