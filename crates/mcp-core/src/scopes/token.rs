//! Bearer tokens: extraction, compact-JWS structure, header checks and claim validation.
//!
//! The order matters for alg confusion: the header's `alg` must be on the configured allow-list
//! before anything else, `none` never is, and the key used later is chosen by the algorithm's
//! key kind ([`crate::scopes::jwks`]), never by what the token says about itself.

use crate::scopes::config::{Alg, JwtPolicy};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Longest accepted token, in bytes (headers of this size are already unusual).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why a request is not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    NoToken,
    /// Not a compact JWS, bad base64url/JSON, or a header this filter refuses (`crit`).
    Malformed,
    /// The header's `alg` is not allowed (`none` never is).
    AlgorithmNotAllowed,
    /// No key with the token's `kid` (or none for its algorithm).
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `exp` is past (beyond the clock skew).
    Expired,
    /// `nbf` is in the future (beyond the clock skew).
    NotYetValid,
    /// `iat` is in the future (beyond the clock skew): issued by a clock nobody should trust.
    IssuedInFuture,
    /// No `exp` claim (every access token must expire, RFC 9068).
    MissingExpiry,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// No `aud` value is an accepted audience (RFC 8707: not issued for this resource).
    WrongAudience,
    /// Verification keys are not loaded (remote JWKS not fetched yet or unreachable).
    KeysUnavailable,
    /// The token's key is unknown and a key refresh is under way: retry shortly.
    KeysRefreshing,
}

/// The statistics bucket of an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No token.
    NoToken,
    /// A token that is not valid (any reason but expiry).
    Invalid,
    /// An expired token.
    Expired,
    /// Keys unavailable.
    KeysUnavailable,
}

impl AuthError {
    /// The statistics bucket.
    pub fn outcome(self) -> Outcome {
        match self {
            AuthError::NoToken => Outcome::NoToken,
            AuthError::Expired => Outcome::Expired,
            AuthError::KeysUnavailable | AuthError::KeysRefreshing => Outcome::KeysUnavailable,
            _ => Outcome::Invalid,
        }
    }

    /// A short description for `error_description` and logs (never token material).
    pub fn description(self) -> &'static str {
        match self {
            AuthError::NoToken => "no bearer token",
            AuthError::Malformed => "the token is not a well-formed JWT",
            AuthError::AlgorithmNotAllowed => "the token's signing algorithm is not accepted",
            AuthError::UnknownKey => "the token was signed with an unknown key",
            AuthError::BadSignature => "the token signature is invalid",
            AuthError::Expired => "the token expired",
            AuthError::NotYetValid => "the token is not valid yet",
            AuthError::IssuedInFuture => "the token was issued in the future",
            AuthError::MissingExpiry => "the token has no expiry",
            AuthError::WrongIssuer => "the token was issued by an untrusted issuer",
            AuthError::WrongAudience => "the token was not issued for this resource",
            AuthError::KeysUnavailable => "token verification keys are unavailable",
            AuthError::KeysRefreshing => "token verification keys are being refreshed",
        }
    }

    /// The reason used in `%RESPONSE_CODE_DETAILS%` (`mcp_scopes_<reason>`).
    pub fn reason(self) -> &'static str {
        match self {
            AuthError::NoToken => "no_token",
            AuthError::Expired => "expired",
            AuthError::KeysUnavailable | AuthError::KeysRefreshing => "jwks_unavailable",
            _ => "invalid_token",
        }
    }
}

/// What the `Authorization` header holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bearer<'a> {
    /// No header, or another scheme (RFC 6750 §3: then the challenge carries no error code).
    Absent,
    /// `Bearer <token>` with a syntactically valid b64token.
    Token(&'a str),
    /// `Bearer` with an empty or invalid token.
    Malformed,
}

/// Reads `Authorization: Bearer <token>` (scheme case-insensitive, RFC 7235). Tokens in the
/// query string are never read (the MCP spec forbids them).
pub fn bearer(header: Option<&str>) -> Bearer<'_> {
    let Some(h) = header else {
        return Bearer::Absent;
    };
    let h = h.trim_matches(|c| c == ' ' || c == '\t');
    let Some((scheme, rest)) = h.split_once(' ') else {
        return if h.eq_ignore_ascii_case("bearer") {
            Bearer::Malformed
        } else {
            Bearer::Absent
        };
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Bearer::Absent;
    }
    let token = rest.trim_start_matches(' ');
    let body = token.trim_end_matches('=');
    let b64token = !body.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
    if b64token {
        Bearer::Token(token)
    } else {
        Bearer::Malformed
    }
}

/// Decodes unpadded base64url (RFC 7515 §2); `None` on any other character or a bad length.
pub fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'-' => Some(62),
            b'_' => Some(63),
            _ => None,
        }
    }
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.as_bytes().chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | val(c)?;
        }
        match chunk.len() {
            4 => out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]),
            3 => {
                // 18 bits: two bytes and two zero bits that must be zero (canonical encoding).
                if acc & 0b11 != 0 {
                    return None;
                }
                out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]);
            }
            2 => {
                if acc & 0b1111 != 0 {
                    return None;
                }
                out.push((acc >> 4) as u8);
            }
            _ => return None,
        }
    }
    Some(out)
}

/// The protected header fields the filter looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `alg` as written.
    pub alg: String,
    /// `kid`.
    pub kid: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
    crit: Option<Value>,
}

/// A compact JWS split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compact<'a> {
    /// The decoded protected header.
    pub header: Header,
    /// `base64url(header)`.
    pub header_b64: &'a str,
    /// `base64url(payload)`.
    pub payload_b64: &'a str,
}

/// Splits a compact JWS and decodes its header. Refuses JWE (five parts), a `crit` header
/// (no extension is understood) and non-JSON headers.
pub fn split(token: &str) -> Result<Compact<'_>, AuthError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    if h.is_empty() || p.is_empty() || s.is_empty() {
        return Err(AuthError::Malformed);
    }
    let raw = base64url_decode(h).ok_or(AuthError::Malformed)?;
    let header: RawHeader = serde_json::from_slice(&raw).map_err(|_| AuthError::Malformed)?;
    if header.crit.is_some() {
        return Err(AuthError::Malformed);
    }
    Ok(Compact {
        header: Header {
            alg: header.alg,
            kid: header.kid,
        },
        header_b64: h,
        payload_b64: p,
    })
}

/// The header's algorithm, if allowed. `none` (any case) is never allowed, whatever the list.
pub fn allowed_alg(header: &Header, allowed: &[Alg]) -> Result<Alg, AuthError> {
    if header.alg.eq_ignore_ascii_case("none") {
        return Err(AuthError::AlgorithmNotAllowed);
    }
    Alg::from_name(&header.alg)
        .filter(|a| allowed.contains(a))
        .ok_or(AuthError::AlgorithmNotAllowed)
}

/// Decodes the payload into a JSON object.
pub fn payload(compact: &Compact<'_>) -> Result<Map<String, Value>, AuthError> {
    let raw = base64url_decode(compact.payload_b64).ok_or(AuthError::Malformed)?;
    serde_json::from_slice(&raw).map_err(|_| AuthError::Malformed)
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `sub`.
    pub sub: Option<String>,
    /// Granted scopes (`scope` ∪ `scp`), deduplicated, in token order.
    pub scopes: Vec<String>,
    /// `exp` (seconds since the epoch), when known.
    pub exp: Option<u64>,
    /// Compact JSON for the `mcp.auth.claims` filter state: `sub`, `iss`, `scope` (space
    /// separated) and the configured `publish_claims` present in the token.
    pub claims_json: String,
    /// SHA-256 of the bearer token this identity was verified from, computed once when first
    /// needed (the token exchange cache key; a cached identity keeps it for the token's life).
    pub token_digest: std::cell::OnceCell<[u8; 32]>,
}

impl Identity {
    /// Builds an identity; `extra` are the published claims present, in configuration order.
    pub fn new(
        sub: Option<String>,
        iss: Option<String>,
        scopes: Vec<String>,
        exp: Option<u64>,
        extra: Vec<(String, Value)>,
    ) -> Identity {
        let mut m = Map::new();
        if let Some(s) = &sub {
            m.insert("sub".into(), Value::String(s.clone()));
        }
        if let Some(i) = iss {
            m.insert("iss".into(), Value::String(i));
        }
        m.insert("scope".into(), Value::String(scopes.join(" ")));
        for (k, v) in extra {
            m.insert(k, v);
        }
        Identity {
            sub,
            scopes,
            exp,
            claims_json: Value::Object(m).to_string(),
            token_digest: std::cell::OnceCell::new(),
        }
    }

    /// The space-separated scope string (`mcp.auth.scopes`).
    pub fn scope_string(&self) -> String {
        self.scopes.join(" ")
    }
}

/// The scope tokens of a `scope` string: RFC 6749 §3.3 separates them by a single space
/// (0x20) and nothing else, so `"mcp:tools\trepo:admin"` is one (odd) token that grants
/// neither `mcp:tools` nor `repo:admin`. Empty tokens (two spaces in a row) are skipped.
pub fn scope_tokens(s: &str) -> impl Iterator<Item = &str> {
    s.split(' ').filter(|t| !t.is_empty())
}

/// Scopes from `scope` (space-separated string, RFC 9068) and `scp` (array or space-separated
/// string, as Okta and Entra ID emit), merged without duplicates.
pub fn scopes_of(scope: Option<&Value>, scp: Option<&Value>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: &str| {
        if !s.is_empty() && !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    };
    for v in [scope, scp].into_iter().flatten() {
        match v {
            Value::String(s) => scope_tokens(s).for_each(&mut add),
            Value::Array(items) => items.iter().filter_map(Value::as_str).for_each(&mut add),
            _ => {}
        }
    }
    out
}

fn seconds(v: Option<&Value>) -> Result<Option<u64>, AuthError> {
    match v {
        None => Ok(None),
        // NumericDate may be fractional (RFC 7519 §2); whole seconds are enough here.
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| *f >= 0.0 && f.is_finite())
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or(AuthError::Malformed),
        Some(_) => Err(AuthError::Malformed),
    }
}

/// Validates the claims of a token whose signature was verified: `exp` (required), `nbf`,
/// `iss`, `aud`, with `policy.clock_skew_seconds` of tolerance at `now` (seconds).
pub fn validate_claims(
    claims: &Map<String, Value>,
    policy: &JwtPolicy,
    publish: &[String],
    now: u64,
) -> Result<Identity, AuthError> {
    let skew = policy.clock_skew_seconds;
    let exp = seconds(claims.get("exp"))?.ok_or(AuthError::MissingExpiry)?;
    if now > exp.saturating_add(skew) {
        return Err(AuthError::Expired);
    }
    if let Some(nbf) = seconds(claims.get("nbf"))? {
        if now.saturating_add(skew) < nbf {
            return Err(AuthError::NotYetValid);
        }
    }
    if let Some(iat) = seconds(claims.get("iat"))? {
        if now.saturating_add(skew) < iat {
            return Err(AuthError::IssuedInFuture);
        }
    }
    let iss = match claims.get("iss") {
        Some(Value::String(s)) if *s == policy.issuer => s.clone(),
        _ => return Err(AuthError::WrongIssuer),
    };
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => policy.audiences.iter().any(|x| x == a),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| policy.audiences.iter().any(|x| x == a)),
        _ => false,
    };
    if !aud_ok {
        return Err(AuthError::WrongAudience);
    }
    let sub = claims.get("sub").and_then(Value::as_str).map(str::to_owned);
    let scopes = scopes_of(claims.get("scope"), claims.get("scp"));
    let extra = publish
        .iter()
        .filter_map(|k| claims.get(k).map(|v| (k.clone(), v.clone())))
        .collect();
    Ok(Identity::new(sub, Some(iss), scopes, Some(exp), extra))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scopes::config::KeySource;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for c in bytes.chunks(3) {
            let n = c.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b)) << (8 * (3 - c.len()));
            for i in 0..=c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    fn policy() -> JwtPolicy {
        JwtPolicy {
            issuer: "https://idp.example".into(),
            audiences: vec!["https://mcp.example/mcp".into()],
            algorithms: vec![Alg::RS256, Alg::ES256],
            keys: KeySource::None,
            hmac_secret: None,
            clock_skew_seconds: 60,
            cache_entries: 10,
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn base64url_round_trips_and_refuses_other_alphabets() {
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"\xff\xfe\xfd\x00"] {
            assert_eq!(base64url_decode(&b64(data)).unwrap(), data);
        }
        assert!(base64url_decode("a+b/").is_none());
        assert!(base64url_decode("abc=").is_none());
        assert!(base64url_decode("a").is_none());
        // Non-canonical trailing bits.
        assert!(base64url_decode("Zh").is_none());
        assert_eq!(base64url_decode("Zg").unwrap(), b"f");
    }

    #[test]
    fn bearer_reads_only_the_bearer_scheme() {
        assert_eq!(bearer(None), Bearer::Absent);
        assert_eq!(bearer(Some("Basic dXNlcjpwdw==")), Bearer::Absent);
        assert_eq!(
            bearer(Some("Bearer abc.def.ghi")),
            Bearer::Token("abc.def.ghi")
        );
        assert_eq!(bearer(Some("bearer   abc")), Bearer::Token("abc"));
        assert_eq!(bearer(Some("Bearer")), Bearer::Malformed);
        assert_eq!(bearer(Some("Bearer ")), Bearer::Malformed);
        assert_eq!(bearer(Some("Bearer a b")), Bearer::Malformed);
        assert_eq!(bearer(Some("Bearer a\"b")), Bearer::Malformed);
        let huge = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert_eq!(bearer(Some(&huge)), Bearer::Malformed);
    }

    #[test]
    fn split_refuses_anything_but_three_parts_and_crit_headers() {
        let h = b64(br#"{"alg":"RS256","kid":"k1"}"#);
        let t = format!("{h}.cGF5.c2ln");
        let c = split(&t).unwrap();
        assert_eq!(c.header.alg, "RS256");
        assert_eq!(c.header.kid.as_deref(), Some("k1"));
        assert_eq!(split(&format!("{h}.cGF5")), Err(AuthError::Malformed));
        assert_eq!(
            split(&format!("{h}.cGF5.c2ln.x.y")),
            Err(AuthError::Malformed)
        );
        assert_eq!(split(&format!("{h}.cGF5.")), Err(AuthError::Malformed));
        assert_eq!(split("bm90IGpzb24.cGF5.c2ln"), Err(AuthError::Malformed));
        let crit = b64(br#"{"alg":"RS256","crit":["exp"]}"#);
        assert_eq!(
            split(&format!("{crit}.cGF5.c2ln")),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn alg_none_and_unlisted_algorithms_are_refused() {
        let allowed = [Alg::RS256];
        let h = |alg: &str| Header {
            alg: alg.into(),
            kid: None,
        };
        assert_eq!(allowed_alg(&h("RS256"), &allowed), Ok(Alg::RS256));
        for bad in ["none", "None", "NONE", "HS256", "rs256", "ES256", ""] {
            assert_eq!(
                allowed_alg(&h(bad), &allowed),
                Err(AuthError::AlgorithmNotAllowed),
                "{bad}"
            );
        }
    }

    #[test]
    fn valid_claims_give_an_identity_with_merged_scopes() {
        let c = claims(json!({
            "iss": "https://idp.example", "aud": ["other", "https://mcp.example/mcp"],
            "sub": "alice", "exp": 2000, "nbf": 900, "scope": "a b", "scp": ["b", "c"],
            "tenant": "t1"
        }));
        let id = validate_claims(&c, &policy(), &["tenant".into(), "absent".into()], 1000).unwrap();
        assert_eq!(id.sub.as_deref(), Some("alice"));
        assert_eq!(id.scopes, ["a", "b", "c"]);
        assert_eq!(id.exp, Some(2000));
        let published: Value = serde_json::from_str(&id.claims_json).unwrap();
        assert_eq!(
            published,
            json!({"sub":"alice","iss":"https://idp.example","scope":"a b c","tenant":"t1"})
        );
    }

    #[test]
    fn scope_tokens_are_separated_by_single_spaces_only() {
        let c = claims(json!({
            "iss": "https://idp.example", "aud": "https://mcp.example/mcp", "exp": 2000,
            "scope": "mcp:tools\trepo:admin  read\nwrite \u{b}x", "scp": "a\tb c"
        }));
        let id = validate_claims(&c, &policy(), &[], 1000).unwrap();
        assert_eq!(
            id.scopes,
            [
                "mcp:tools\trepo:admin",
                "read\nwrite",
                "\u{b}x",
                "a\tb",
                "c"
            ]
        );
        assert!(!id
            .scopes
            .iter()
            .any(|s| s == "repo:admin" || s == "mcp:tools"));
    }

    #[test]
    fn a_token_issued_in_the_future_is_refused_beyond_the_skew() {
        let c = |iat: u64| {
            claims(json!({
                "iss": "https://idp.example", "aud": "https://mcp.example/mcp", "exp": 9000,
                "iat": iat
            }))
        };
        assert!(validate_claims(&c(1060), &policy(), &[], 1000).is_ok());
        assert_eq!(
            validate_claims(&c(1061), &policy(), &[], 1000),
            Err(AuthError::IssuedInFuture)
        );
        assert_eq!(AuthError::IssuedInFuture.reason(), "invalid_token");
    }

    #[test]
    fn expiry_and_not_before_honour_the_clock_skew() {
        let p = policy();
        let c = |exp: u64, nbf: u64| {
            claims(
                json!({"iss":"https://idp.example","aud":"https://mcp.example/mcp","exp":exp,"nbf":nbf}),
            )
        };
        assert!(validate_claims(&c(1000, 0), &p, &[], 1060).is_ok());
        assert_eq!(
            validate_claims(&c(1000, 0), &p, &[], 1061),
            Err(AuthError::Expired)
        );
        assert!(validate_claims(&c(5000, 1060), &p, &[], 1000).is_ok());
        assert_eq!(
            validate_claims(&c(5000, 1061), &p, &[], 1000),
            Err(AuthError::NotYetValid)
        );
        let no_exp = claims(json!({"iss":"https://idp.example","aud":"https://mcp.example/mcp"}));
        assert_eq!(
            validate_claims(&no_exp, &p, &[], 1),
            Err(AuthError::MissingExpiry)
        );
        let str_exp = claims(
            json!({"iss":"https://idp.example","aud":"https://mcp.example/mcp","exp":"9999"}),
        );
        assert_eq!(
            validate_claims(&str_exp, &p, &[], 1),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn issuer_and_audience_must_match_exactly() {
        let p = policy();
        let c = |iss: Value, aud: Value| claims(json!({"iss":iss,"aud":aud,"exp":9999}));
        let good_aud = json!("https://mcp.example/mcp");
        assert_eq!(
            validate_claims(
                &c(json!("https://idp.example/"), good_aud.clone()),
                &p,
                &[],
                1
            ),
            Err(AuthError::WrongIssuer)
        );
        assert_eq!(
            validate_claims(&c(Value::Null, good_aud), &p, &[], 1),
            Err(AuthError::WrongIssuer)
        );
        for aud in [
            json!("https://mcp.example"),
            json!([]),
            json!(["x"]),
            Value::Null,
        ] {
            assert_eq!(
                validate_claims(&c(json!("https://idp.example"), aud), &p, &[], 1),
                Err(AuthError::WrongAudience)
            );
        }
    }

    #[test]
    fn scp_may_be_a_string_or_an_array() {
        assert_eq!(scopes_of(None, Some(&json!("x y"))), ["x", "y"]);
        assert_eq!(scopes_of(None, Some(&json!(["x", 1, "y"]))), ["x", "y"]);
        assert_eq!(scopes_of(Some(&json!(7)), None), Vec::<String>::new());
    }

    #[test]
    fn outcomes_group_errors_for_statistics() {
        assert_eq!(AuthError::NoToken.outcome(), Outcome::NoToken);
        assert_eq!(AuthError::Expired.outcome(), Outcome::Expired);
        assert_eq!(AuthError::BadSignature.outcome(), Outcome::Invalid);
        assert_eq!(
            AuthError::KeysRefreshing.outcome(),
            Outcome::KeysUnavailable
        );
        assert!(!AuthError::WrongAudience.description().contains("scope="));
    }
}
