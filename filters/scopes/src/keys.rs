//! Signature verification with jwt-simple (pure-Rust backends, no OpenSSL in the wasm).
//!
//! Which key may verify which algorithm is decided in `mcp_core::scopes::jwks`; this module only
//! turns key material into jwt-simple keys and runs the signature check. Claims are validated
//! afterwards by `mcp_core::scopes::token::validate_claims` with the host clock, so jwt-simple is
//! told not to look at time at all (it would read the WASI clock and apply its own defaults).

use jwt_simple::prelude::*;
use mcp_core::scopes::config::Alg;
use mcp_core::scopes::jwks::{self, KeySet, Material, Selection};
use mcp_core::scopes::token::{AuthError, MAX_TOKEN_LEN};

enum Key {
    Rs256(RS256PublicKey),
    Rs384(RS384PublicKey),
    Rs512(RS512PublicKey),
    Ps256(PS256PublicKey),
    Ps384(PS384PublicKey),
    Ps512(PS512PublicKey),
    Es256(ES256PublicKey),
    Es384(ES384PublicKey),
    Ed(Ed25519PublicKey),
    Hs256(HS256Key),
    Hs384(HS384Key),
    Hs512(HS512Key),
}

struct Entry {
    kid: Option<String>,
    alg: Alg,
    key: Key,
}

/// The keys a worker verifies with.
#[derive(Default)]
pub struct KeyRing {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("entries", &self.entries.len())
            .finish()
    }
}

fn options() -> VerificationOptions {
    VerificationOptions {
        // Time is checked by validate_claims: with "now" = 0 and no tolerance jwt-simple's own
        // exp check always passes, and accept_future skips its iat/nbf checks.
        accept_future: true,
        artificial_time: Some(UnixTimeStamp::from_secs(0)),
        time_tolerance: Some(Duration::from_secs(0)),
        max_token_length: Some(MAX_TOKEN_LEN),
        ..VerificationOptions::default()
    }
}

fn rsa(alg: Alg, n: &[u8], e: &[u8]) -> Option<Key> {
    Some(match alg {
        Alg::RS256 => Key::Rs256(RS256PublicKey::from_components(n, e).ok()?),
        Alg::RS384 => Key::Rs384(RS384PublicKey::from_components(n, e).ok()?),
        Alg::RS512 => Key::Rs512(RS512PublicKey::from_components(n, e).ok()?),
        Alg::PS256 => Key::Ps256(PS256PublicKey::from_components(n, e).ok()?),
        Alg::PS384 => Key::Ps384(PS384PublicKey::from_components(n, e).ok()?),
        Alg::PS512 => Key::Ps512(PS512PublicKey::from_components(n, e).ok()?),
        _ => return None,
    })
}

fn key_for(alg: Alg, m: &Material) -> Option<Key> {
    match (m, alg) {
        (Material::Rsa { n, e }, _) => rsa(alg, n, e),
        (Material::P256(p), Alg::ES256) => ES256PublicKey::from_bytes(p).ok().map(Key::Es256),
        (Material::P384(p), Alg::ES384) => ES384PublicKey::from_bytes(p).ok().map(Key::Es384),
        (Material::Ed25519(x), Alg::EdDSA) => Ed25519PublicKey::from_bytes(x).ok().map(Key::Ed),
        _ => None,
    }
}

impl KeyRing {
    /// Keys from a JWK Set (each for the allowed algorithms of its type) and the HMAC secret
    /// (only for HS*). Returns the ring and how many JWKs could not be used.
    pub fn build(set: &KeySet, allowed: &[Alg], hmac: Option<&[u8]>) -> (KeyRing, usize) {
        let mut entries = Vec::new();
        let mut unusable = set.skipped;
        for jwk in &set.keys {
            let before = entries.len();
            for alg in jwk.algorithms(allowed) {
                if let Some(key) = key_for(alg, &jwk.material) {
                    entries.push(Entry {
                        kid: jwk.kid.clone(),
                        alg,
                        key,
                    });
                }
            }
            if entries.len() == before {
                unusable += 1;
            }
        }
        if let Some(secret) = hmac {
            for alg in allowed {
                let key = match alg {
                    Alg::HS256 => Key::Hs256(HS256Key::from_bytes(secret)),
                    Alg::HS384 => Key::Hs384(HS384Key::from_bytes(secret)),
                    Alg::HS512 => Key::Hs512(HS512Key::from_bytes(secret)),
                    _ => continue,
                };
                entries.push(Entry {
                    kid: None,
                    alg: *alg,
                    key,
                });
            }
        }
        (KeyRing { entries }, unusable)
    }

    /// Whether the ring has no key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks the signature of `token` (whose header names `alg` and `kid`).
    pub fn verify(&self, token: &str, alg: Alg, kid: Option<&str>) -> Result<(), AuthError> {
        // The HMAC secret has no kid: a token's kid must not make it unusable.
        let kid = if alg.key_kind() == mcp_core::scopes::config::KeyKind::Hmac {
            None
        } else {
            kid
        };
        let entries = self.entries.iter().map(|e| (e.kid.as_deref(), e.alg));
        let Selection::Try(found) = jwks::select(entries, alg, kid) else {
            return Err(AuthError::UnknownKey);
        };
        for i in found {
            let Some(e) = self.entries.get(i) else {
                continue;
            };
            if verify_with(&e.key, token) {
                return Ok(());
            }
        }
        Err(AuthError::BadSignature)
    }
}

fn verify_with(key: &Key, token: &str) -> bool {
    let o = Some(options());
    match key {
        Key::Rs256(k) => k.verify_token::<NoCustomClaims>(token, o).is_ok(),
        Key::Rs384(k) => k.verify_token::<NoCustomClaims>(token, o).is_ok(),
        Key::Rs512(k) => k.verify_token::<NoCustomClaims>(token, o).is_ok(),
        Key::Ps256(k) => k.verify_token::<NoCustomClaims>(token, o).is_ok(),
        Key::Ps384(k) => k.verify_token::<NoCustomClaims>(token, o).is_ok(),
        Key::Ps512(k) => k.verify_token::<NoCustomClaims>(token, o).is_ok(),
        Key::Es256(k) => k.verify_token::<NoCustomClaims>(token, o).is_ok(),
        Key::Es384(k) => k.verify_token::<NoCustomClaims>(token, o).is_ok(),
        Key::Ed(k) => k.verify_token::<NoCustomClaims>(token, o).is_ok(),
        Key::Hs256(k) => k.verify_token::<NoCustomClaims>(token, o).is_ok(),
        Key::Hs384(k) => k.verify_token::<NoCustomClaims>(token, o).is_ok(),
        Key::Hs512(k) => k.verify_token::<NoCustomClaims>(token, o).is_ok(),
    }
}

#[cfg(all(test, not(mcp_gateway)))]
mod tests {
    use super::*;
    use mcp_core::scopes::jwks::parse;

    fn claims() -> JWTClaims<NoCustomClaims> {
        // Expired long ago on purpose: the ring checks signatures only.
        Claims::create(Duration::from_secs(1)).with_issuer("i")
    }

    #[test]
    fn each_key_type_verifies_its_own_tokens_only() {
        let rsa = RS256KeyPair::generate(2048).unwrap().with_key_id("r");
        let ec = ES256KeyPair::generate().with_key_id("e");
        let ed = Ed25519KeyPair::generate().with_key_id("o");
        let jwks = format!(
            r#"{{"keys":[{},{},{}]}}"#,
            rsa.public_key().to_jwk(),
            ec.public_key().to_jwk(),
            ed.public_key().to_jwk()
        );
        let set = parse(jwks.as_bytes()).unwrap();
        let allowed = [Alg::RS256, Alg::ES256, Alg::EdDSA];
        let (ring, unusable) = KeyRing::build(&set, &allowed, None);
        assert_eq!(unusable, 0);
        let t = rsa.sign(claims()).unwrap();
        assert_eq!(ring.verify(&t, Alg::RS256, Some("r")), Ok(()));
        assert_eq!(
            ring.verify(&t, Alg::RS256, Some("x")),
            Err(AuthError::UnknownKey)
        );
        let t = ec.sign(claims()).unwrap();
        assert_eq!(ring.verify(&t, Alg::ES256, Some("e")), Ok(()));
        let t = ed.sign(claims()).unwrap();
        assert_eq!(ring.verify(&t, Alg::EdDSA, Some("o")), Ok(()));
        assert_eq!(ring.verify(&t, Alg::EdDSA, None), Ok(()));
        // A signature by another key of the same type fails.
        let other = Ed25519KeyPair::generate().with_key_id("o");
        let t = other.sign(claims()).unwrap();
        assert_eq!(
            ring.verify(&t, Alg::EdDSA, Some("o")),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn an_rsa_public_key_never_verifies_hmac() {
        let rsa = RS256KeyPair::generate(2048).unwrap().with_key_id("r");
        let jwks = format!(r#"{{"keys":[{}]}}"#, rsa.public_key().to_jwk());
        let set = parse(jwks.as_bytes()).unwrap();
        let pem = rsa.public_key().to_pem().unwrap();
        let forged = HS256Key::from_bytes(pem.as_bytes())
            .authenticate(claims())
            .unwrap();
        // Even with HS256 allowed (and a real secret), the RSA key is not an HMAC key.
        let secret = [7u8; 32];
        let (ring, _) = KeyRing::build(&set, &[Alg::RS256, Alg::HS256], Some(&secret));
        assert_eq!(
            ring.verify(&forged, Alg::HS256, Some("r")),
            Err(AuthError::BadSignature)
        );
        let good = HS256Key::from_bytes(&secret)
            .authenticate(claims())
            .unwrap();
        assert_eq!(ring.verify(&good, Alg::HS256, Some("whatever")), Ok(()));
    }
}
