//! `WWW-Authenticate` challenges, refusal bodies and the protected-resource metadata document.
//!
//! The TypeScript MCP client parses challenges with `${name}=(?:"([^"]+)"|([^\s,]+))` after
//! checking the header starts with `Bearer `: so there is exactly one `Bearer` challenge, every
//! value is quoted, and no description ever contains `scope=`. Quoted values need no escaping:
//! scopes are RFC 6749 scope tokens and URLs were checked at configuration time.

use crate::jsonrpc::{self, Id};
use crate::scopes::config::{Policy, ScopesConfig};
use crate::scopes::token::AuthError;
use serde_json::{json, Value};

/// JSON-RPC error code of authorization refusals (server-defined range of JSON-RPC 2.0).
pub const AUTH_ERROR_CODE: i64 = -32001;

/// A refusal to send instead of forwarding the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u32,
    /// `%RESPONSE_CODE_DETAILS%` suffix (`mcp_scopes_<reason>`) and the `data.reason` field.
    pub reason: &'static str,
    /// `WWW-Authenticate` value, if any.
    pub www_authenticate: Option<String>,
    /// `Retry-After` seconds, if any.
    pub retry_after: Option<u32>,
    /// The JSON-RPC error body.
    pub body: Vec<u8>,
}

fn scope_param(scopes: &[String]) -> Option<String> {
    (!scopes.is_empty()).then(|| format!("scope=\"{}\"", scopes.join(" ")))
}

fn body(id: Option<&Id<'_>>, code: i64, message: &str, data: &Value) -> Vec<u8> {
    jsonrpc::error_response(id, code, message, Some(data.to_string().as_bytes()))
}

/// The refusal for a request that is not authenticated: 401 with a challenge pointing at the
/// metadata (plus `error="invalid_token"` when a token was sent, RFC 6750 §3.1), or 503 when
/// the keys are unavailable (not the caller's fault: no challenge, so clients do not start an
/// authorization flow that cannot help).
pub fn unauthenticated(policy: &Policy, err: AuthError, id: Option<&Id<'_>>) -> Refusal {
    match err {
        AuthError::KeysUnavailable | AuthError::KeysRefreshing => Refusal {
            status: 503,
            reason: err.reason(),
            www_authenticate: None,
            retry_after: Some(if err == AuthError::KeysRefreshing {
                1
            } else {
                5
            }),
            body: body(
                id,
                jsonrpc::INTERNAL_ERROR,
                "Authorization temporarily unavailable: token verification keys are not loaded",
                &json!({"reason": err.reason()}),
            ),
        },
        _ => {
            let mut params = Vec::with_capacity(4);
            if err != AuthError::NoToken {
                params.push("error=\"invalid_token\"".to_owned());
                params.push(format!("error_description=\"{}\"", err.description()));
            }
            params.push(format!("resource_metadata=\"{}\"", policy.metadata_url));
            params.extend(scope_param(&policy.scopes_supported));
            let message = if err == AuthError::NoToken {
                "Unauthorized: a bearer token is required"
            } else {
                "Unauthorized: invalid bearer token"
            };
            Refusal {
                status: 401,
                reason: err.reason(),
                www_authenticate: Some(format!("Bearer {}", params.join(", "))),
                retry_after: None,
                body: body(
                    id,
                    AUTH_ERROR_CODE,
                    message,
                    &json!({"reason": err.reason(), "resource_metadata": policy.metadata_url}),
                ),
            }
        }
    }
}

/// 403 step-up: `Bearer error="insufficient_scope", scope="<all needed>", resource_metadata=…`.
pub fn insufficient_scope(policy: &Policy, needed: &[String], id: Option<&Id<'_>>) -> Refusal {
    let mut params = vec!["error=\"insufficient_scope\"".to_owned()];
    params.extend(scope_param(needed));
    params.push(format!("resource_metadata=\"{}\"", policy.metadata_url));
    Refusal {
        status: 403,
        reason: "insufficient_scope",
        www_authenticate: Some(format!("Bearer {}", params.join(", "))),
        retry_after: None,
        body: body(
            id,
            AUTH_ERROR_CODE,
            "Forbidden: the access token lacks the scopes this operation needs",
            &json!({"reason": "insufficient_scope", "scope": needed.join(" ")}),
        ),
    }
}

/// 403 without a challenge: no scope grants the operation (`unmatched: deny`), so asking the
/// client to step up would only loop.
pub fn not_permitted(id: Option<&Id<'_>>) -> Refusal {
    Refusal {
        status: 403,
        reason: "not_permitted",
        www_authenticate: None,
        retry_after: None,
        body: body(
            id,
            AUTH_ERROR_CODE,
            "Forbidden: no authorization rule permits this operation",
            &json!({"reason": "not_permitted"}),
        ),
    }
}

/// The refusal for a token exchange (RFC 8693) that did not issue an upstream token. Nothing
/// is forwarded:
///
/// - `invalid_grant` (the authorization server no longer accepts the caller's token): 401 with
///   the same `invalid_token` challenge as a token the filter refuses itself, so the client gets
///   a new token;
/// - `invalid_target` / `invalid_scope` / `unauthorized_client`: 403 `insufficient_scope` with
///   the scopes the operation needs (`needed`, when the rules name any);
/// - anything else (unreachable, timeout, 5xx, unparseable, the gateway's own client rejected):
///   503 with no challenge, `retry-after: 1`.
pub fn exchange_failed(
    policy: &Policy,
    failure: crate::scopes::exchange::Failure,
    needed: &[String],
    id: Option<&Id<'_>>,
) -> Refusal {
    use crate::scopes::exchange::Failure;
    match failure {
        Failure::InvalidGrant => {
            let mut params = vec![
                "error=\"invalid_token\"".to_owned(),
                "error_description=\"the authorization server refused to exchange the token\""
                    .to_owned(),
                format!("resource_metadata=\"{}\"", policy.metadata_url),
            ];
            params.extend(scope_param(&policy.scopes_supported));
            Refusal {
                status: 401,
                reason: "exchange_invalid_grant",
                www_authenticate: Some(format!("Bearer {}", params.join(", "))),
                retry_after: None,
                body: body(
                    id,
                    AUTH_ERROR_CODE,
                    "Unauthorized: the access token cannot be exchanged for an upstream token",
                    &json!({"reason": "exchange_invalid_grant", "resource_metadata": policy.metadata_url}),
                ),
            }
        }
        Failure::Rejected(code) => {
            let mut params = vec!["error=\"insufficient_scope\"".to_owned()];
            params.extend(scope_param(needed));
            params.push(format!("resource_metadata=\"{}\"", policy.metadata_url));
            Refusal {
                status: 403,
                reason: "exchange_rejected",
                www_authenticate: Some(format!("Bearer {}", params.join(", "))),
                retry_after: None,
                body: body(
                    id,
                    AUTH_ERROR_CODE,
                    "Forbidden: the authorization server will not issue an upstream token for this operation",
                    &json!({"reason": "exchange_rejected", "error": code, "scope": needed.join(" ")}),
                ),
            }
        }
        Failure::Unavailable(why) => Refusal {
            status: 503,
            reason: "exchange_unavailable",
            www_authenticate: None,
            retry_after: Some(1),
            body: body(
                id,
                jsonrpc::INTERNAL_ERROR,
                "Upstream credentials temporarily unavailable: the token exchange failed",
                &json!({"reason": "exchange_unavailable", "cause": why}),
            ),
        },
    }
}

/// The RFC 9728 document: `resource`, `authorization_servers`, `scopes_supported`,
/// `bearer_methods_supported` (`header` only: the MCP spec forbids tokens in the query) and
/// `resource_name` when configured.
pub fn metadata_document(resource: &str, cfg: &ScopesConfig, scopes: &[String]) -> Vec<u8> {
    let mut doc = json!({
        "resource": resource,
        "authorization_servers": cfg.authorization_servers,
        "scopes_supported": scopes,
        "bearer_methods_supported": ["header"],
    });
    if let (Some(name), Some(obj)) = (&cfg.resource_name, doc.as_object_mut()) {
        obj.insert("resource_name".into(), Value::String(name.clone()));
    }
    doc.to_string().into_bytes()
}

/// Whether `path` (query string ignored) is one of the metadata paths served locally.
pub fn is_metadata_path(policy: &Policy, path: &str) -> bool {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    policy.metadata_paths.iter().any(|p| p == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(scopes_supported: &str) -> Policy {
        let json = format!(
            r#"{{"resource":"https://mcp.example.com/mcp","authorization_servers":["https://idp.example.com"],
                "jwt_authn":{{"metadata_key":"p"}},"resource_name":"Demo"{scopes_supported},
                "rules":[{{"tools":["*"],"scopes":["mcp:tools"]}},{{"tools":["delete_*"],"scopes":["repo:admin"]}}]}}"#
        );
        crate::scopes::config::test_policy(&json)
    }

    /// The TypeScript client's extraction rule.
    fn param(header: &str, name: &str) -> Option<String> {
        assert!(header.starts_with("Bearer "), "{header}");
        let key = format!("{name}=\"");
        let at = header.find(&key)?;
        let rest = &header[at + key.len()..];
        Some(rest[..rest.find('"')?].to_string())
    }

    #[test]
    fn no_token_gets_401_with_metadata_and_scope_but_no_error() {
        let r = unauthenticated(&policy(""), AuthError::NoToken, None);
        assert_eq!(r.status, 401);
        assert_eq!(
            r.www_authenticate.as_deref(),
            Some(
                "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\", scope=\"mcp:tools repo:admin\""
            )
        );
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"]["code"], AUTH_ERROR_CODE);
        assert_eq!(v["id"], Value::Null);
        assert_eq!(r.reason, "no_token");
    }

    #[test]
    fn an_invalid_token_adds_invalid_token_and_the_scope_is_scopes_supported() {
        let p = policy(r#","scopes_supported":["mcp:tools"]"#);
        let r = unauthenticated(&p, AuthError::Expired, None);
        let h = r.www_authenticate.unwrap();
        assert_eq!(param(&h, "error").as_deref(), Some("invalid_token"));
        assert_eq!(param(&h, "scope").as_deref(), Some("mcp:tools"));
        assert_eq!(
            param(&h, "resource_metadata").as_deref(),
            Some("https://mcp.example.com/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(h.matches("Bearer").count(), 1);
        assert_eq!(r.reason, "expired");
    }

    #[test]
    fn descriptions_never_confuse_the_scope_parser() {
        for e in [
            AuthError::Malformed,
            AuthError::AlgorithmNotAllowed,
            AuthError::UnknownKey,
            AuthError::BadSignature,
            AuthError::Expired,
            AuthError::NotYetValid,
            AuthError::IssuedInFuture,
            AuthError::MissingExpiry,
            AuthError::WrongIssuer,
            AuthError::WrongAudience,
        ] {
            let r = unauthenticated(&policy(r#","scopes_supported":[]"#), e, None);
            let h = r.www_authenticate.unwrap();
            assert_eq!(param(&h, "scope"), None, "{h}");
            assert!(!h.contains(",,") && !h.contains('\\'), "{h}");
            assert_eq!(r.status, 401);
        }
    }

    #[test]
    fn insufficient_scope_is_403_with_every_needed_scope() {
        let id = Id::Number("7");
        let needed = vec!["repo:admin".to_string(), "mcp:tools".to_string()];
        let r = insufficient_scope(&policy(""), &needed, Some(&id));
        assert_eq!(r.status, 403);
        assert_eq!(
            r.www_authenticate.as_deref(),
            Some(
                "Bearer error=\"insufficient_scope\", scope=\"repo:admin mcp:tools\", resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
            )
        );
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["error"]["data"]["scope"], "repo:admin mcp:tools");
    }

    #[test]
    fn unavailable_keys_are_503_without_a_challenge() {
        let r = unauthenticated(&policy(""), AuthError::KeysUnavailable, None);
        assert_eq!(
            (r.status, r.reason, r.www_authenticate),
            (503, "jwks_unavailable", None)
        );
        assert!(r.retry_after.is_some());
    }

    #[test]
    fn not_permitted_carries_no_challenge() {
        let r = not_permitted(None);
        assert_eq!((r.status, r.www_authenticate), (403, None));
    }

    #[test]
    fn the_metadata_document_has_the_rfc_9728_members() {
        let p = policy("");
        let v: Value = serde_json::from_slice(&p.metadata_document).unwrap();
        assert_eq!(
            v,
            json!({
                "resource": "https://mcp.example.com/mcp",
                "authorization_servers": ["https://idp.example.com"],
                "scopes_supported": ["mcp:tools", "repo:admin"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Demo"
            })
        );
        assert!(is_metadata_path(
            &p,
            "/.well-known/oauth-protected-resource"
        ));
        assert!(is_metadata_path(
            &p,
            "/.well-known/oauth-protected-resource/mcp?x=1"
        ));
        assert!(!is_metadata_path(
            &p,
            "/.well-known/oauth-protected-resource/other"
        ));
        assert!(!is_metadata_path(&p, "/mcp"));
    }

    #[test]
    fn exchange_failures_map_to_401_403_and_503_with_the_request_id() {
        use crate::scopes::exchange::Failure;
        let p = crate::scopes::config::test_policy(
            r#"{"resource":"https://m.example/mcp","authorization_servers":["https://idp.example"],
                "jwt_authn":{"metadata_key":"p"},"scopes_supported":["mcp:tools"]}"#,
        );
        let id = Id::Number("7");
        let r = exchange_failed(&p, Failure::InvalidGrant, &[], Some(&id));
        assert_eq!(r.status, 401);
        let h = r.www_authenticate.unwrap();
        assert!(h.starts_with("Bearer error=\"invalid_token\""), "{h}");
        assert!(
            h.contains(
                "resource_metadata=\"https://m.example/.well-known/oauth-protected-resource/mcp\""
            ),
            "{h}"
        );
        assert!(h.contains("scope=\"mcp:tools\""), "{h}");
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["error"]["code"], AUTH_ERROR_CODE);
        let r = exchange_failed(
            &p,
            Failure::Rejected("invalid_target"),
            &["deploy".into()],
            Some(&id),
        );
        assert_eq!(r.status, 403);
        assert_eq!(
            r.www_authenticate.as_deref(),
            Some("Bearer error=\"insufficient_scope\", scope=\"deploy\", resource_metadata=\"https://m.example/.well-known/oauth-protected-resource/mcp\"")
        );
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"]["data"]["error"], "invalid_target");
        let r = exchange_failed(&p, Failure::Rejected("invalid_scope"), &[], None);
        assert!(!r.www_authenticate.unwrap().contains("scope=\""));
        let r = exchange_failed(&p, Failure::Unavailable("unreachable"), &[], Some(&id));
        assert_eq!(
            (r.status, r.www_authenticate, r.retry_after),
            (503, None, Some(1))
        );
        assert_eq!(r.reason, "exchange_unavailable");
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["error"]["code"], jsonrpc::INTERNAL_ERROR);
        assert_eq!(v["error"]["data"]["cause"], "unreachable");
    }
}
