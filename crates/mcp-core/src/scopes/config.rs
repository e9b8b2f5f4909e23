//! `mcp_scopes` configuration: the JSON keys, their validation, and the compiled [`Policy`].

use crate::config::{patterns_at, ConfigError, Validate};
use crate::glob::PatternSet;
use serde::Deserialize;

/// Default `jwt.clock_skew_seconds`.
pub const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 60;
/// Largest accepted `jwt.clock_skew_seconds` (10 minutes).
pub const MAX_CLOCK_SKEW_SECONDS: u64 = 600;
/// Default `jwt.jwks.refresh_seconds`.
pub const DEFAULT_REFRESH_SECONDS: u64 = 300;
/// Default `jwt.jwks.timeout_ms`.
pub const DEFAULT_JWKS_TIMEOUT_MS: u64 = 5000;
/// Default `jwt.cache_entries`.
pub const DEFAULT_CACHE_ENTRIES: usize = 1024;
/// Shortest accepted HMAC secret, in bytes (RFC 7518 §3.2: at least the hash size of HS256).
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

/// The path prefix of RFC 9728 protected-resource metadata.
pub const WELL_KNOWN_PRM: &str = "/.well-known/oauth-protected-resource";

/// The filter's own configuration keys (see `docs/scopes.md` for the reference table).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ScopesConfig {
    /// The public URL of the protected MCP endpoint (`https://mcp.example.com/mcp`).
    pub resource: Option<String>,
    /// Authorization servers listed in the metadata (at least one).
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// `scopes_supported` of the metadata and the `scope` of 401 challenges; default: every
    /// scope the rules name, in order.
    pub scopes_supported: Option<Vec<String>>,
    /// Optional `resource_name` of the metadata.
    pub resource_name: Option<String>,
    /// Verify JWTs in the filter.
    pub jwt: Option<JwtConfig>,
    /// Trust the payload Envoy's `jwt_authn` filter verified instead.
    pub jwt_authn: Option<JwtAuthnConfig>,
    /// Scope rules.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Tools and methods no rule names.
    #[serde(default)]
    pub unmatched: Unmatched,
    /// Remove tools the caller may not call from `tools/list` results.
    #[serde(default)]
    pub hide_unauthorized_tools: bool,
    /// Remove the `Authorization` header before the request goes upstream.
    #[serde(default)]
    pub strip_authorization: bool,
    /// Extra claims copied into the `mcp.auth.claims` filter state.
    #[serde(default)]
    pub publish_claims: Vec<String>,
    /// Per-user upstream credentials: exchange the caller's token (RFC 8693) and forward only
    /// the issued token.
    pub upstream_token: Option<crate::scopes::exchange::UpstreamTokenConfig>,
}

/// `jwt`: in-filter verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The only accepted `iss`.
    pub issuer: String,
    /// Accepted `aud` values; default `[resource]`.
    pub audiences: Option<Vec<String>>,
    /// Accepted `alg` values (required; `none` is never accepted).
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// Where the public keys come from.
    pub jwks: Option<JwksConfig>,
    /// Base64url shared secret for HS256/384/512 (only used for those algorithms).
    pub hmac_secret: Option<String>,
    /// Tolerance for `exp` and `nbf`, in seconds.
    #[cfg_attr(feature = "schema", schemars(range(max = MAX_CLOCK_SKEW_SECONDS)))]
    pub clock_skew_seconds: Option<u64>,
    /// Verified tokens cached per worker (0 disables the cache).
    pub cache_entries: Option<usize>,
}

/// `jwt.jwks`: inline or fetched from an Envoy cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct JwksConfig {
    /// The JWK Set JSON itself.
    pub inline: Option<String>,
    /// Envoy cluster serving the JWK Set.
    pub cluster: Option<String>,
    /// Request path on that cluster.
    pub path: Option<String>,
    /// `:authority` of the request (default: the cluster name).
    pub authority: Option<String>,
    /// Refresh period.
    pub refresh_seconds: Option<u64>,
    /// Callout timeout.
    pub timeout_ms: Option<u64>,
}

/// `jwt_authn`: read the payload `envoy.filters.http.jwt_authn` stored in dynamic metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct JwtAuthnConfig {
    /// The provider's `payload_in_metadata` name.
    pub metadata_key: String,
}

/// One rule: the scopes needed by the tools or methods it names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Tool name globs (`tools/call` by `params.name`).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Method globs (`resources/read`, `prompts/*`).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Scopes required (all of them).
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// What happens to a tool or method no rule names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(rename_all = "lowercase")]
pub enum Unmatched {
    /// Refused with 403 (no scope can grant it).
    #[default]
    Deny,
    /// Allowed to any caller with a valid token.
    Allow,
}

/// A JWS algorithm the filter can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // The variants are the JOSE names.
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
    HS256,
    HS384,
    HS512,
}

/// The kind of key an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `kty: RSA`.
    Rsa,
    /// `kty: EC`, `crv: P-256`.
    P256,
    /// `kty: EC`, `crv: P-384`.
    P384,
    /// `kty: OKP`, `crv: Ed25519`.
    Ed25519,
    /// The configured shared secret (never a JWK).
    Hmac,
}

impl Alg {
    /// Every supported algorithm.
    pub const ALL: [Alg; 12] = [
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::EdDSA,
        Alg::HS256,
        Alg::HS384,
        Alg::HS512,
    ];

    /// The JOSE name (`RS256`).
    pub fn name(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
            Alg::HS256 => "HS256",
            Alg::HS384 => "HS384",
            Alg::HS512 => "HS512",
        }
    }

    /// The algorithm with JOSE name `name` (exact, case-sensitive as JOSE requires).
    pub fn from_name(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The key kind this algorithm verifies with.
    pub fn key_kind(self) -> KeyKind {
        match self {
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => {
                KeyKind::Rsa
            }
            Alg::ES256 => KeyKind::P256,
            Alg::ES384 => KeyKind::P384,
            Alg::EdDSA => KeyKind::Ed25519,
            Alg::HS256 | Alg::HS384 | Alg::HS512 => KeyKind::Hmac,
        }
    }
}

/// Where a remote JWK Set is fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    /// Envoy cluster.
    pub cluster: String,
    /// `:path`.
    pub path: String,
    /// `:authority`.
    pub authority: String,
    /// Refresh period in seconds.
    pub refresh_seconds: u64,
    /// Callout timeout in milliseconds.
    pub timeout_ms: u32,
}

/// The source of verification keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// No JWKS: only the HMAC secret verifies.
    None,
    /// A JWK Set given in the configuration (already checked to parse).
    Inline(String),
    /// A JWK Set fetched by the filter.
    Remote(RemoteJwks),
}

/// Compiled `jwt` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtPolicy {
    /// Required `iss`.
    pub issuer: String,
    /// Accepted `aud` values (any one suffices).
    pub audiences: Vec<String>,
    /// Allowed algorithms.
    pub algorithms: Vec<Alg>,
    /// Key source.
    pub keys: KeySource,
    /// HMAC secret bytes.
    pub hmac_secret: Option<Vec<u8>>,
    /// Clock tolerance in seconds.
    pub clock_skew_seconds: u64,
    /// Token cache size.
    pub cache_entries: usize,
}

/// How callers are authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authenticator {
    /// The filter verifies JWTs.
    Jwt(JwtPolicy),
    /// Envoy's jwt_authn verified them; the payload is in dynamic metadata under this key.
    JwtAuthn(String),
}

/// A compiled rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Tool globs.
    pub tools: PatternSet,
    /// Method globs.
    pub methods: PatternSet,
    /// Scopes.
    pub scopes: Vec<String>,
}

/// The compiled configuration the filter runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The resource identifier (public URL).
    pub resource: String,
    /// The metadata URL put in challenges.
    pub metadata_url: String,
    /// Local paths serving the metadata (root variant first; both equal for a root resource).
    pub metadata_paths: [String; 2],
    /// The metadata document served at those paths.
    pub metadata_document: Vec<u8>,
    /// `scopes_supported`.
    pub scopes_supported: Vec<String>,
    /// Authentication.
    pub authenticator: Authenticator,
    /// Rules in order.
    pub rules: Vec<Rule>,
    /// Unmatched tools and methods.
    pub unmatched: Unmatched,
    /// See [`ScopesConfig::hide_unauthorized_tools`].
    pub hide_unauthorized_tools: bool,
    /// See [`ScopesConfig::strip_authorization`].
    pub strip_authorization: bool,
    /// See [`ScopesConfig::publish_claims`].
    pub publish_claims: Vec<String>,
    /// See [`ScopesConfig::upstream_token`].
    pub exchange: Option<crate::scopes::exchange::Exchange>,
}

/// Whether `s` is an RFC 6749 §3.3 scope token (printable ASCII except space, `"` and `\`), so
/// it can be put inside a quoted challenge parameter unescaped.
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// Splits an absolute `http(s)` URL into origin and path; refuses what cannot be put in a
/// quoted header parameter or is not a resource identifier (query, fragment, user info).
pub fn split_url(url: &str) -> Result<(&str, &str), &'static str> {
    if url
        .bytes()
        .any(|b| b <= b' ' || b == b'"' || b == b'\\' || b >= 0x7f)
    {
        return Err("contains white space, a quote, a backslash or non-ASCII characters");
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must be an absolute https:// (or http://) URL")?;
    if url.contains('#') || url.contains('?') {
        return Err("must not have a query or fragment");
    }
    let host_len = rest.find('/').unwrap_or(rest.len());
    let (host, _) = rest.split_at_checked(host_len).ok_or("bad URL")?;
    if host.is_empty() || host.contains('@') {
        return Err("must name a host (and no user info)");
    }
    let origin_len = url.len() - rest.len() + host_len;
    url.split_at_checked(origin_len).ok_or("bad URL")
}

fn decode_secret(s: &str) -> Option<Vec<u8>> {
    crate::scopes::token::base64url_decode(s.trim_end_matches('='))
}

impl ScopesConfig {
    /// Whether no key of the filter is set: the filter then only runs the request gate.
    pub fn is_disabled(&self) -> bool {
        *self == ScopesConfig::default()
    }

    /// Validates and compiles; `Ok(None)` for an empty (disabled) configuration.
    pub fn compile(&self) -> Result<Option<Policy>, ConfigError> {
        if self.is_disabled() {
            return Ok(None);
        }
        let resource = self.resource.clone().ok_or_else(|| {
            ConfigError::at(
                "resource",
                "required (the public URL of the MCP endpoint, e.g. https://mcp.example.com/mcp)",
            )
        })?;
        let (origin, path) = split_url(&resource).map_err(|e| ConfigError::at("resource", e))?;
        let path = if path == "/" { "" } else { path };
        let metadata_url = format!("{origin}{WELL_KNOWN_PRM}{path}");
        let metadata_paths = [WELL_KNOWN_PRM.to_owned(), format!("{WELL_KNOWN_PRM}{path}")];

        if self.authorization_servers.is_empty() {
            return Err(ConfigError::at(
                "authorization_servers",
                "at least one authorization server is required (RFC 9728, MCP authorization)",
            ));
        }
        for (i, s) in self.authorization_servers.iter().enumerate() {
            split_url(s).map_err(|e| ConfigError::at(format!("authorization_servers[{i}]"), e))?;
        }

        let mut rules = Vec::with_capacity(self.rules.len());
        let mut all_scopes: Vec<String> = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            let at = |k: &str| format!("rules[{i}].{k}");
            if r.tools.is_empty() == r.methods.is_empty() {
                return Err(ConfigError::at(
                    format!("rules[{i}]"),
                    "needs exactly one of `tools` or `methods` (write two rules for both)",
                ));
            }
            if r.scopes.is_empty() {
                return Err(ConfigError::at(
                    at("scopes"),
                    "at least one scope is required",
                ));
            }
            for (j, s) in r.scopes.iter().enumerate() {
                if !is_scope_token(s) {
                    return Err(ConfigError::at(
                        format!("rules[{i}].scopes[{j}]"),
                        "not a scope token (printable ASCII without space, `\"` or `\\`)",
                    ));
                }
                if !all_scopes.contains(s) {
                    all_scopes.push(s.clone());
                }
            }
            rules.push(Rule {
                tools: patterns_at(&at("tools"), &r.tools)?,
                methods: patterns_at(&at("methods"), &r.methods)?,
                scopes: r.scopes.clone(),
            });
        }
        let scopes_supported = match &self.scopes_supported {
            Some(list) => {
                for (i, s) in list.iter().enumerate() {
                    if !is_scope_token(s) {
                        return Err(ConfigError::at(
                            format!("scopes_supported[{i}]"),
                            "not a scope token",
                        ));
                    }
                }
                list.clone()
            }
            None => all_scopes,
        };
        for (i, c) in self.publish_claims.iter().enumerate() {
            if c.is_empty() || matches!(c.as_str(), "sub" | "iss" | "scope") {
                return Err(ConfigError::at(
                    format!("publish_claims[{i}]"),
                    "empty, or always published (sub, iss, scope)",
                ));
            }
        }

        let authenticator = match (&self.jwt, &self.jwt_authn) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::at(
                    "jwt_authn",
                    "use either `jwt` or `jwt_authn`, not both",
                ))
            }
            (None, None) => {
                return Err(ConfigError::at(
                    "jwt",
                    "required (or `jwt_authn` to trust Envoy's jwt_authn filter)",
                ))
            }
            (None, Some(a)) => {
                if a.metadata_key.is_empty() {
                    return Err(ConfigError::at(
                        "jwt_authn.metadata_key",
                        "must not be empty",
                    ));
                }
                Authenticator::JwtAuthn(a.metadata_key.clone())
            }
            (Some(j), None) => Authenticator::Jwt(compile_jwt(j, &resource)?),
        };

        let exchange = self
            .upstream_token
            .as_ref()
            .map(crate::scopes::exchange::UpstreamTokenConfig::compile)
            .transpose()?;

        let metadata_document =
            crate::scopes::challenge::metadata_document(&resource, self, &scopes_supported);
        Ok(Some(Policy {
            resource,
            metadata_url,
            metadata_paths,
            metadata_document,
            scopes_supported,
            authenticator,
            rules,
            unmatched: self.unmatched,
            hide_unauthorized_tools: self.hide_unauthorized_tools,
            strip_authorization: self.strip_authorization,
            publish_claims: self.publish_claims.clone(),
            exchange,
        }))
    }
}

fn compile_jwt(j: &JwtConfig, resource: &str) -> Result<JwtPolicy, ConfigError> {
    if j.issuer.is_empty() {
        return Err(ConfigError::at("jwt.issuer", "must not be empty"));
    }
    let audiences = match &j.audiences {
        Some(a) if a.is_empty() || a.iter().any(String::is_empty) => {
            return Err(ConfigError::at(
                "jwt.audiences",
                "must list at least one non-empty audience (omit it to use `resource`)",
            ))
        }
        Some(a) => a.clone(),
        None => vec![resource.to_owned()],
    };
    if j.algorithms.is_empty() {
        return Err(ConfigError::at(
            "jwt.algorithms",
            "required: list the algorithms your authorization server signs with (e.g. [\"RS256\"])",
        ));
    }
    let mut algorithms = Vec::new();
    for (i, name) in j.algorithms.iter().enumerate() {
        if name.eq_ignore_ascii_case("none") {
            return Err(ConfigError::at(
                format!("jwt.algorithms[{i}]"),
                "`none` (unsigned tokens) is never accepted",
            ));
        }
        let alg = Alg::from_name(name).ok_or_else(|| {
            ConfigError::at(
                format!("jwt.algorithms[{i}]"),
                "unsupported algorithm (RS256/384/512, PS256/384/512, ES256, ES384, EdDSA, HS256/384/512)",
            )
        })?;
        if !algorithms.contains(&alg) {
            algorithms.push(alg);
        }
    }
    let wants_hmac = algorithms.iter().any(|a| a.key_kind() == KeyKind::Hmac);
    let wants_keys = algorithms.iter().any(|a| a.key_kind() != KeyKind::Hmac);
    let hmac_secret =
        match (&j.hmac_secret, wants_hmac) {
            (Some(s), true) => {
                let bytes = decode_secret(s)
                    .ok_or_else(|| ConfigError::at("jwt.hmac_secret", "not base64url"))?;
                if bytes.len() < MIN_HMAC_SECRET_BYTES {
                    return Err(ConfigError::at(
                        "jwt.hmac_secret",
                        format!("shorter than {MIN_HMAC_SECRET_BYTES} bytes"),
                    ));
                }
                Some(bytes)
            }
            (None, true) => return Err(ConfigError::at(
                "jwt.hmac_secret",
                "an HS* algorithm needs an explicit shared secret (JWKS keys never verify HMAC)",
            )),
            (Some(_), false) => {
                return Err(ConfigError::at(
                    "jwt.hmac_secret",
                    "set, but no HS* algorithm is allowed",
                ))
            }
            (None, false) => None,
        };
    let keys = match &j.jwks {
        None if wants_keys => {
            return Err(ConfigError::at(
                "jwt.jwks",
                "required for RS*/PS*/ES*/EdDSA algorithms",
            ))
        }
        None => KeySource::None,
        Some(k) => compile_jwks(k)?,
    };
    let clock_skew_seconds = j.clock_skew_seconds.unwrap_or(DEFAULT_CLOCK_SKEW_SECONDS);
    if clock_skew_seconds > MAX_CLOCK_SKEW_SECONDS {
        return Err(ConfigError::at(
            "jwt.clock_skew_seconds",
            format!("at most {MAX_CLOCK_SKEW_SECONDS}"),
        ));
    }
    Ok(JwtPolicy {
        issuer: j.issuer.clone(),
        audiences,
        algorithms,
        keys,
        hmac_secret,
        clock_skew_seconds,
        cache_entries: j.cache_entries.unwrap_or(DEFAULT_CACHE_ENTRIES),
    })
}

fn compile_jwks(k: &JwksConfig) -> Result<KeySource, ConfigError> {
    match (&k.inline, &k.cluster) {
        (Some(_), Some(_)) | (None, None) => Err(ConfigError::at(
            "jwt.jwks",
            "needs exactly one of `inline` or `cluster`",
        )),
        (Some(text), None) => {
            if k.path.is_some()
                || k.authority.is_some()
                || k.refresh_seconds.is_some()
                || k.timeout_ms.is_some()
            {
                return Err(ConfigError::at(
                    "jwt.jwks",
                    "`path`, `authority`, `refresh_seconds` and `timeout_ms` belong to `cluster`",
                ));
            }
            let set = crate::scopes::jwks::parse(text.as_bytes())
                .map_err(|e| ConfigError::at("jwt.jwks.inline", e))?;
            if set.keys.is_empty() {
                return Err(ConfigError::at("jwt.jwks.inline", "no usable key"));
            }
            Ok(KeySource::Inline(text.clone()))
        }
        (None, Some(cluster)) => {
            if cluster.is_empty() {
                return Err(ConfigError::at("jwt.jwks.cluster", "must not be empty"));
            }
            let path = k.path.clone().unwrap_or_default();
            if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b >= 0x7f) {
                return Err(ConfigError::at(
                    "jwt.jwks.path",
                    "required: an absolute request path such as /.well-known/jwks.json",
                ));
            }
            let refresh_seconds = k.refresh_seconds.unwrap_or(DEFAULT_REFRESH_SECONDS);
            if !(1..=86_400).contains(&refresh_seconds) {
                return Err(ConfigError::at(
                    "jwt.jwks.refresh_seconds",
                    "must be between 1 and 86400",
                ));
            }
            let timeout_ms = k.timeout_ms.unwrap_or(DEFAULT_JWKS_TIMEOUT_MS);
            let timeout_ms = u32::try_from(timeout_ms)
                .ok()
                .filter(|t| (1..=60_000).contains(t))
                .ok_or_else(|| {
                    ConfigError::at("jwt.jwks.timeout_ms", "must be between 1 and 60000")
                })?;
            Ok(KeySource::Remote(RemoteJwks {
                cluster: cluster.clone(),
                path,
                authority: k.authority.clone().unwrap_or_else(|| cluster.clone()),
                refresh_seconds,
                timeout_ms,
            }))
        }
    }
}

impl Validate for ScopesConfig {
    // A request the filter could not inspect may be a call its policy refuses: `open` would be
    // a bypass (a hidden-tool call padded past max_body_bytes), so it is refused at load.
    const FAILURE_MODE_OPEN: bool = false;

    fn validate(&self) -> Result<(), ConfigError> {
        self.compile().map(|_| ())
    }
}

/// Loads and compiles a configuration that must be valid (unit tests of the scopes modules).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn test_policy(json: &str) -> Policy {
    crate::config::load::<ScopesConfig>(json.as_bytes())
        .unwrap()
        .filter
        .compile()
        .unwrap()
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;

    const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    fn base(extra: &str) -> String {
        format!(
            r#"{{"resource":"https://mcp.example.com/mcp","authorization_servers":["https://idp.example.com"],
                "jwt":{{"issuer":"https://idp.example.com","algorithms":["EdDSA"],"jwks":{{"inline":{}}}}}{extra}}}"#,
            serde_json::to_string(JWKS).unwrap()
        )
    }

    fn policy(json: &str) -> Policy {
        super::test_policy(json)
    }

    fn error(json: &str) -> ConfigError {
        load::<ScopesConfig>(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn an_empty_configuration_disables_authorization() {
        let l = load::<ScopesConfig>(b"{}").unwrap();
        assert!(l.filter.compile().unwrap().is_none());
    }

    #[test]
    fn the_metadata_url_inserts_the_well_known_segment_before_the_path() {
        let p = policy(&base(""));
        assert_eq!(
            p.metadata_url,
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            p.metadata_paths,
            [
                "/.well-known/oauth-protected-resource".to_string(),
                "/.well-known/oauth-protected-resource/mcp".to_string()
            ]
        );
        let root = base("").replace("https://mcp.example.com/mcp", "https://mcp.example.com");
        let p = policy(&root);
        assert_eq!(
            p.metadata_url,
            "https://mcp.example.com/.well-known/oauth-protected-resource"
        );
    }

    #[test]
    fn audiences_default_to_the_resource() {
        let p = policy(&base(""));
        let Authenticator::Jwt(j) = &p.authenticator else {
            panic!("jwt")
        };
        assert_eq!(j.audiences, vec!["https://mcp.example.com/mcp".to_string()]);
        assert_eq!(j.clock_skew_seconds, DEFAULT_CLOCK_SKEW_SECONDS);
        assert_eq!(j.algorithms, vec![Alg::EdDSA]);
    }

    #[test]
    fn scopes_supported_default_to_every_rule_scope_once() {
        let p = policy(&base(
            r#","rules":[{"tools":["delete_*"],"scopes":["repo:admin","mcp:tools"]},{"tools":["*"],"scopes":["mcp:tools"]},{"methods":["resources/read"],"scopes":["files:read"]}]"#,
        ));
        assert_eq!(
            p.scopes_supported,
            ["repo:admin", "mcp:tools", "files:read"]
        );
    }

    #[test]
    fn alg_none_is_refused_by_name() {
        let e = error(&base("").replace(r#"["EdDSA"]"#, r#"["EdDSA","none"]"#));
        assert_eq!(e.path, "jwt.algorithms[1]");
        assert!(e.message.contains("never"), "{e}");
    }

    #[test]
    fn hmac_needs_an_explicit_long_secret_and_only_with_hs_algorithms() {
        let e = error(&base("").replace(r#"["EdDSA"]"#, r#"["EdDSA","HS256"]"#));
        assert_eq!(e.path, "jwt.hmac_secret");
        let short = base("").replace(
            r#""algorithms":["EdDSA"]"#,
            r#""algorithms":["HS256"],"hmac_secret":"c2hvcnQ""#,
        );
        assert!(error(&short).message.contains("shorter"));
        let unused = base("").replace(
            r#""algorithms":["EdDSA"]"#,
            r#""algorithms":["EdDSA"],"hmac_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE""#,
        );
        assert!(error(&unused).message.contains("no HS*"));
    }

    #[test]
    fn algorithms_are_required_and_case_sensitive() {
        let e = error(&base("").replace(r#""algorithms":["EdDSA"],"#, ""));
        assert_eq!(e.path, "jwt.algorithms");
        let e = error(&base("").replace(r#"["EdDSA"]"#, r#"["rs256"]"#));
        assert_eq!(e.path, "jwt.algorithms[0]");
    }

    #[test]
    fn a_rule_needs_exactly_one_of_tools_or_methods_and_valid_scopes() {
        let e = error(&base(r#","rules":[{"scopes":["a"]}]"#));
        assert_eq!(e.path, "rules[0]");
        let e = error(&base(
            r#","rules":[{"tools":["a"],"methods":["b"],"scopes":["a"]}]"#,
        ));
        assert_eq!(e.path, "rules[0]");
        let e = error(&base(
            r#","rules":[{"tools":["a"],"scopes":["has space"]}]"#,
        ));
        assert_eq!(e.path, "rules[0].scopes[0]");
        let e = error(&base(r#","rules":[{"tools":["a"],"scopes":["q\"uote"]}]"#));
        assert_eq!(e.path, "rules[0].scopes[0]");
        let e = error(&base(r#","rules":[{"tools":[""],"scopes":["a"]}]"#));
        assert_eq!(e.path, "rules[0].tools[0]");
    }

    #[test]
    fn resource_and_authorization_servers_are_required_urls() {
        let e = error(r#"{"rules":[{"tools":["*"],"scopes":["a"]}]}"#);
        assert_eq!(e.path, "resource");
        let e = error(&base("").replace("https://mcp.example.com/mcp", "mcp.example.com/mcp"));
        assert_eq!(e.path, "resource");
        let e = error(&base("").replace(
            "https://mcp.example.com/mcp",
            "https://mcp.example.com/mcp?x=1",
        ));
        assert_eq!(e.path, "resource");
        let e = error(&base("").replace(r#"["https://idp.example.com"]"#, "[]"));
        assert_eq!(e.path, "authorization_servers");
    }

    #[test]
    fn jwt_and_jwt_authn_are_exclusive_and_one_is_required() {
        let e = error(&base(r#","jwt_authn":{"metadata_key":"p"}"#));
        assert_eq!(e.path, "jwt_authn");
        let e = error(
            r#"{"resource":"https://m.example/mcp","authorization_servers":["https://idp.example"]}"#,
        );
        assert_eq!(e.path, "jwt");
        let p = policy(
            r#"{"resource":"https://m.example/mcp","authorization_servers":["https://idp.example"],"jwt_authn":{"metadata_key":"jwt_payload"}}"#,
        );
        assert_eq!(
            p.authenticator,
            Authenticator::JwtAuthn("jwt_payload".into())
        );
    }

    #[test]
    fn jwks_is_inline_or_a_cluster_with_a_path() {
        let cfg = |jwks: &str| {
            format!(
                r#"{{"resource":"https://m.example/mcp","authorization_servers":["https://idp.example"],
                    "jwt":{{"issuer":"i","algorithms":["RS256"],"jwks":{jwks}}}}}"#
            )
        };
        assert_eq!(error(&cfg("{}")).path, "jwt.jwks");
        assert_eq!(error(&cfg(r#"{"cluster":"idp"}"#)).path, "jwt.jwks.path");
        assert_eq!(
            error(&cfg(r#"{"inline":"{\"keys\":[]}"}"#)).path,
            "jwt.jwks.inline"
        );
        assert_eq!(error(&cfg(r#"{"inline":"nope"}"#)).path, "jwt.jwks.inline");
        let p = policy(&cfg(
            r#"{"cluster":"idp","path":"/jwks.json","refresh_seconds":60}"#,
        ));
        let Authenticator::Jwt(j) = p.authenticator else {
            panic!("jwt")
        };
        assert_eq!(
            j.keys,
            KeySource::Remote(RemoteJwks {
                cluster: "idp".into(),
                path: "/jwks.json".into(),
                authority: "idp".into(),
                refresh_seconds: 60,
                timeout_ms: DEFAULT_JWKS_TIMEOUT_MS as u32,
            })
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_their_path() {
        let e = error(&base(r#","hide_tools":true"#));
        assert!(e.message.contains("unknown field"), "{e}");
        let e = error(&base("").replace(r#""issuer""#, r#""issuer2":"x","issuer""#));
        assert_eq!(e.path, "jwt.issuer2");
    }

    #[test]
    fn upstream_token_compiles_and_unknown_keys_name_their_path() {
        let x = r#","upstream_token":{"token_exchange":{"cluster":"idp","path":"/t","client_id":"c","client_secret":"s","audience":"https://api"}}"#;
        let p = policy(&base(x));
        let e = p.exchange.unwrap();
        assert_eq!(e.cluster, "idp");
        assert_eq!(e.default.audience.as_deref(), Some("https://api"));
        assert!(policy(&base("")).exchange.is_none());
        let e = error(&base(
            &x.replace("\"cluster\"", "\"clusterr\":\"x\",\"cluster\""),
        ));
        assert_eq!(e.path, "upstream_token.token_exchange.clusterr", "{e}");
        let e = error(&base(
            r#","upstream_token":{"tools":[{"tools":["a"],"aud":"x"}]}"#,
        ));
        assert_eq!(e.path, "upstream_token.tools[0].aud", "{e}");
        let e = error(&base(r#","upstream_token":{}"#));
        assert_eq!(e.path, "upstream_token.token_exchange", "{e}");
    }

    #[test]
    fn scope_tokens_follow_rfc_6749() {
        assert!(is_scope_token("repo:admin"));
        assert!(is_scope_token("https://graph.example/.default"));
        assert!(!is_scope_token(""));
        assert!(!is_scope_token("a b"));
        assert!(!is_scope_token("a\\b"));
        assert!(!is_scope_token("é"));
    }
}
