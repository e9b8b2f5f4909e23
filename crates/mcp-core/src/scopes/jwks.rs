//! JWK Sets (RFC 7517): key material and the algorithms each key may verify.
//!
//! Keys are bound to algorithms by their type, never by the token: an RSA key verifies only
//! RS*/PS*, a P-256 key only ES256, an Ed25519 key only EdDSA, and no JWK ever verifies an HMAC
//! algorithm (`oct` keys are skipped). That is what defeats alg confusion (an HS256 token
//! "signed" with an RSA public key's bytes). A key's own `alg`, when present, narrows further.

use crate::scopes::config::{Alg, KeyKind};
use crate::scopes::token::base64url_decode;
use serde::Deserialize;
use serde_json::Value;

/// Largest JWK Set accepted, in bytes.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Public key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Material {
    /// RSA modulus and exponent (big-endian).
    Rsa {
        /// `n`.
        n: Vec<u8>,
        /// `e`.
        e: Vec<u8>,
    },
    /// A P-256 point, SEC1 uncompressed (`04 || x || y`).
    P256(Vec<u8>),
    /// A P-384 point, SEC1 uncompressed.
    P384(Vec<u8>),
    /// An Ed25519 public key.
    Ed25519(Vec<u8>),
}

impl Material {
    /// The key kind.
    pub fn kind(&self) -> KeyKind {
        match self {
            Material::Rsa { .. } => KeyKind::Rsa,
            Material::P256(_) => KeyKind::P256,
            Material::P384(_) => KeyKind::P384,
            Material::Ed25519(_) => KeyKind::Ed25519,
        }
    }
}

/// One usable signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    /// `kid`.
    pub kid: Option<String>,
    /// `alg`, when the set pins one.
    pub alg: Option<String>,
    /// The key.
    pub material: Material,
}

impl Jwk {
    /// The algorithms of `allowed` this key may verify.
    pub fn algorithms(&self, allowed: &[Alg]) -> Vec<Alg> {
        let kind = self.material.kind();
        allowed
            .iter()
            .copied()
            .filter(|a| a.key_kind() == kind && kind != KeyKind::Hmac)
            .filter(|a| self.alg.as_deref().is_none_or(|pinned| pinned == a.name()))
            .collect()
    }
}

/// A parsed set: the usable keys and how many entries were skipped (other types, encryption
/// keys, bad encodings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    /// Usable keys in document order.
    pub keys: Vec<Jwk>,
    /// Entries skipped.
    pub skipped: usize,
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<Value>,
}

#[derive(Deserialize)]
struct RawKey {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

fn fixed(s: Option<&str>, len: usize) -> Option<Vec<u8>> {
    base64url_decode(s?).filter(|b| b.len() == len)
}

fn point(x: Option<&str>, y: Option<&str>, len: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(1 + 2 * len);
    out.push(4);
    out.extend(fixed(x, len)?);
    out.extend(fixed(y, len)?);
    Some(out)
}

fn material(k: &RawKey) -> Option<Material> {
    if k.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    match (k.kty.as_str(), k.crv.as_deref()) {
        ("RSA", _) => {
            let n = base64url_decode(k.n.as_deref()?)?;
            let e = base64url_decode(k.e.as_deref()?)?;
            // Under 2048 bits RSA is not a signing key anyone should accept (RFC 7518 §3.3).
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            (bits >= 2048 && !e.is_empty()).then_some(Material::Rsa { n, e })
        }
        ("EC", Some("P-256")) => point(k.x.as_deref(), k.y.as_deref(), 32).map(Material::P256),
        ("EC", Some("P-384")) => point(k.x.as_deref(), k.y.as_deref(), 48).map(Material::P384),
        ("OKP", Some("Ed25519")) => fixed(k.x.as_deref(), 32).map(Material::Ed25519),
        _ => None,
    }
}

/// Parses a JWK Set. Errors only when the document itself is unusable; unusable entries are
/// skipped and counted.
pub fn parse(json: &[u8]) -> Result<KeySet, String> {
    if json.len() > MAX_JWKS_BYTES {
        return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
    }
    let raw: RawSet = serde_json::from_slice(json).map_err(|e| format!("not a JWK Set ({e})"))?;
    let mut set = KeySet::default();
    for v in raw.keys {
        let key = serde_json::from_value::<RawKey>(v).ok();
        match key.as_ref().and_then(|k| material(k).map(|m| (k, m))) {
            Some((k, m)) => set.keys.push(Jwk {
                kid: k.kid.clone(),
                alg: k.alg.clone(),
                material: m,
            }),
            None => set.skipped += 1,
        }
    }
    Ok(set)
}

/// Which entries of a key list may verify a token with `alg` and `kid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Indices to try, in order (usually one).
    Try(Vec<usize>),
    /// No entry matches: the key is unknown (maybe rotated in since the last fetch).
    Unknown,
}

/// Picks candidate entries from `(kid, alg)` pairs: same algorithm, and the same `kid` when the
/// token names one (a token without `kid` is tried against every key of its algorithm).
pub fn select<'a>(
    entries: impl Iterator<Item = (Option<&'a str>, Alg)>,
    alg: Alg,
    kid: Option<&str>,
) -> Selection {
    let found: Vec<usize> = entries
        .enumerate()
        .filter(|(_, (k, a))| *a == alg && (kid.is_none() || *k == kid))
        .map(|(i, _)| i)
        .collect();
    if found.is_empty() {
        Selection::Unknown
    } else {
        Selection::Try(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(n: usize, fill: u8) -> String {
        // base64url of `n` bytes all equal to `fill`, via the decoder's inverse on whole groups.
        let bytes = vec![fill; n];
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for c in bytes.chunks(3) {
            let v = c.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b)) << (8 * (3 - c.len()));
            for i in 0..=c.len() {
                out.push(A[((v >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    fn doc() -> String {
        format!(
            r#"{{"keys":[
              {{"kty":"RSA","kid":"r1","n":"{n}","e":"AQAB"}},
              {{"kty":"RSA","kid":"small","n":"{small}","e":"AQAB"}},
              {{"kty":"EC","crv":"P-256","kid":"e1","x":"{x}","y":"{x}","alg":"ES256"}},
              {{"kty":"EC","crv":"P-384","kid":"e2","x":"{x48}","y":"{x48}"}},
              {{"kty":"OKP","crv":"Ed25519","kid":"o1","x":"{x}"}},
              {{"kty":"oct","kid":"h1","k":"c2VjcmV0"}},
              {{"kty":"RSA","kid":"enc","use":"enc","n":"{n}","e":"AQAB"}},
              {{"kty":"EC","crv":"P-256","kid":"short","x":"AAAA","y":"AAAA"}},
              "not an object"
            ]}}"#,
            n = b64(256, 0xc3),
            small = b64(128, 0xc3),
            x = b64(32, 7),
            x48 = b64(48, 7)
        )
    }

    #[test]
    fn usable_keys_are_kept_and_the_rest_counted() {
        let set = parse(doc().as_bytes()).unwrap();
        let kids: Vec<_> = set.keys.iter().map(|k| k.kid.as_deref().unwrap()).collect();
        assert_eq!(kids, ["r1", "e1", "e2", "o1"]);
        assert_eq!(set.skipped, 5);
        let Material::P256(p) = &set.keys[1].material else {
            panic!("p256")
        };
        assert_eq!((p.len(), p[0]), (65, 4));
    }

    #[test]
    fn keys_verify_only_algorithms_of_their_own_type() {
        let set = parse(doc().as_bytes()).unwrap();
        let all = Alg::ALL;
        assert_eq!(
            set.keys[0].algorithms(&all),
            [
                Alg::RS256,
                Alg::RS384,
                Alg::RS512,
                Alg::PS256,
                Alg::PS384,
                Alg::PS512
            ]
        );
        assert_eq!(set.keys[1].algorithms(&all), [Alg::ES256]);
        assert_eq!(set.keys[2].algorithms(&all), [Alg::ES384]);
        assert_eq!(set.keys[3].algorithms(&all), [Alg::EdDSA]);
        for k in &set.keys {
            assert!(k
                .algorithms(&all)
                .iter()
                .all(|a| a.key_kind() != KeyKind::Hmac));
        }
        assert!(set.keys[0].algorithms(&[Alg::ES256, Alg::HS256]).is_empty());
    }

    #[test]
    fn a_pinned_alg_narrows_a_key() {
        let k = Jwk {
            kid: None,
            alg: Some("PS256".into()),
            material: Material::Rsa {
                n: vec![1; 256],
                e: vec![1, 0, 1],
            },
        };
        assert_eq!(k.algorithms(&Alg::ALL), [Alg::PS256]);
    }

    #[test]
    fn selection_matches_alg_and_kid() {
        let entries = [
            (Some("a"), Alg::RS256),
            (Some("b"), Alg::RS256),
            (None, Alg::ES256),
        ];
        let it = || entries.iter().copied();
        assert_eq!(select(it(), Alg::RS256, Some("b")), Selection::Try(vec![1]));
        assert_eq!(select(it(), Alg::RS256, None), Selection::Try(vec![0, 1]));
        assert_eq!(select(it(), Alg::RS256, Some("c")), Selection::Unknown);
        assert_eq!(select(it(), Alg::ES256, Some("a")), Selection::Unknown);
        assert_eq!(select(it(), Alg::EdDSA, None), Selection::Unknown);
    }

    #[test]
    fn documents_that_are_not_key_sets_are_refused() {
        assert!(parse(b"[]").is_err());
        assert!(parse(b"{}").is_err());
        assert!(parse(b"{\"keys\":{}}").is_err());
        assert!(parse(&vec![b' '; MAX_JWKS_BYTES + 1]).is_err());
        assert_eq!(parse(b"{\"keys\":[]}").unwrap().keys.len(), 0);
    }
}
