//! Envoy's own `jwt_authn` filter in front of ours, with HS256 tokens the tests mint: the
//! identity source for `mcp_tools` (`identity.source: jwt_authn`) and `mcp_scopes`
//! (`"jwt_authn": {"metadata_key": ...}`), as Istio RequestAuthentication provides it.

use crate::EnvoyConfig;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// Issuer the inline JWKS trusts.
pub const ISSUER: &str = "https://idp.test";
/// Audience jwt_authn requires.
pub const AUDIENCE: &str = "mcp";
/// `payload_in_metadata` key.
pub const METADATA_KEY: &str = "jwt_payload";
const HMAC_KEY: &[u8] = b"mcp-wasm-filters-test-key-32-bytes!!";

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// An HS256 token with `claims` (plus iss, aud and a far-future exp) that jwt_authn accepts.
pub fn token(claims: Value) -> String {
    let mut payload = json!({"iss": ISSUER, "aud": AUDIENCE, "exp": 4_102_444_800u64});
    if let (Some(p), Some(c)) = (payload.as_object_mut(), claims.as_object()) {
        for (k, v) in c {
            p.insert(k.clone(), v.clone());
        }
    }
    let signing_input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(payload.to_string().as_bytes())
    );
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(HMAC_KEY) else {
        return String::new();
    };
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()))
}

/// The same token with its payload replaced and the old signature kept (a forgery).
pub fn forge(token: &str, claims: Value) -> String {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(sig)) = (parts.next(), parts.next(), parts.next()) else {
        return String::new();
    };
    format!("{header}.{}.{sig}", b64(claims.to_string().as_bytes()))
}

/// Puts jwt_authn first in the listener's HTTP filters: a valid token's payload goes to
/// metadata `envoy.filters.http.jwt_authn/jwt_payload`; requests without a token pass
/// (`allow_missing`) so the filters behind decide what an anonymous caller gets; a bad token is
/// refused by jwt_authn itself with 401.
pub fn in_front(cfg: EnvoyConfig) -> EnvoyConfig {
    let jwks = json!({"keys": [{"kty": "oct", "alg": "HS256", "k": b64(HMAC_KEY)}]}).to_string();
    let filter = json!({
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"test": {
                "issuer": ISSUER,
                "audiences": [AUDIENCE],
                "local_jwks": {"inline_string": jwks},
                "payload_in_metadata": METADATA_KEY,
            }},
            "rules": [{"match": {"prefix": "/"}, "requires": {"requires_any": {"requirements": [
                {"provider_name": "test"}, {"allow_missing": {}}
            ]}}}],
        }
    });
    cfg.modify(move |doc| {
        let Ok(filter) = serde_yaml::to_value(&filter) else {
            return;
        };
        let filters = doc
            .get_mut("static_resources")
            .and_then(|s| s.get_mut("listeners"))
            .and_then(|l| l.get_mut(0))
            .and_then(|l| l.get_mut("filter_chains"))
            .and_then(|c| c.get_mut(0))
            .and_then(|c| c.get_mut("filters"))
            .and_then(|f| f.get_mut(0))
            .and_then(|f| f.get_mut("typed_config"))
            .and_then(|t| t.get_mut("http_filters"))
            .and_then(|h| h.as_sequence_mut());
        if let Some(filters) = filters {
            filters.insert(0, filter);
        }
    })
}
