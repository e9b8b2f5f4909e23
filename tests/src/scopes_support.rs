//! Support for the `mcp_scopes` tests: an issuer that mints RS256/ES256/EdDSA tokens with keys
//! generated per run, a JWKS HTTP server whose key set can be swapped (rotation, outages), and
//! the filter configuration the tests start from.

use anyhow::Result;
use jwt_simple::prelude::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration as StdDuration;

/// The issuer every test token names.
pub const ISSUER: &str = "https://idp.test";
/// The resource (and default audience) the filter protects.
pub const RESOURCE: &str = "https://mcp.test/mcp";
/// The metadata URL challenges must carry for [`RESOURCE`].
pub const METADATA_URL: &str = "https://mcp.test/.well-known/oauth-protected-resource/mcp";

/// Claims beyond the registered ones.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Extra {
    /// `scope`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `scp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scp: Option<Value>,
    /// `tenant` (a claim tests publish).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// Keys of a test authorization server.
pub struct Issuer {
    /// RS256 key, kid `rsa-1`.
    pub rsa: RS256KeyPair,
    /// ES256 key, kid `ec-1`.
    pub ec: ES256KeyPair,
    /// Ed25519 key, kid `ed-1`.
    pub ed: Ed25519KeyPair,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Issuer")
    }
}

/// Signing algorithm of a test token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// RS256 with `rsa-1`.
    Rs256,
    /// ES256 with `ec-1`.
    Es256,
    /// EdDSA with `ed-1`.
    EdDsa,
}

impl Issuer {
    /// The keys of this test run (RSA key generation takes seconds in debug builds, so every
    /// test of a run shares one issuer; each run still mints its own).
    pub fn shared() -> Option<&'static Issuer> {
        static KEYS: OnceLock<Option<Issuer>> = OnceLock::new();
        KEYS.get_or_init(|| Issuer::new().ok()).as_ref()
    }

    /// Fresh keys.
    pub fn new() -> Result<Issuer> {
        Ok(Issuer {
            rsa: RS256KeyPair::generate(2048)?.with_key_id("rsa-1"),
            ec: ES256KeyPair::generate().with_key_id("ec-1"),
            ed: Ed25519KeyPair::generate().with_key_id("ed-1"),
        })
    }

    /// The JWK Set of all three public keys.
    pub fn jwks(&self) -> String {
        jwks_of(&[
            self.rsa.public_key().to_jwk(),
            self.ec.public_key().to_jwk(),
            self.ed.public_key().to_jwk(),
        ])
    }

    /// Standard claims: issuer, audience [`RESOURCE`], subject, valid for an hour.
    pub fn claims(&self, sub: &str, scope: &str) -> JWTClaims<Extra> {
        Claims::with_custom_claims(
            Extra {
                scope: Some(scope.to_string()),
                ..Extra::default()
            },
            Duration::from_hours(1),
        )
        .with_issuer(ISSUER)
        .with_audience(RESOURCE)
        .with_subject(sub)
    }

    /// Signs `claims`.
    pub fn sign(&self, signer: Signer, claims: JWTClaims<Extra>) -> Result<String> {
        Ok(match signer {
            Signer::Rs256 => self.rsa.sign(claims)?,
            Signer::Es256 => self.ec.sign(claims)?,
            Signer::EdDsa => self.ed.sign(claims)?,
        })
    }

    /// An RS256 token for `sub` with `scope`.
    pub fn token(&self, sub: &str, scope: &str) -> String {
        self.sign(Signer::Rs256, self.claims(sub, scope))
            .unwrap_or_default()
    }
}

/// `{"keys":[...]}` of JWK JSON texts.
pub fn jwks_of(keys: &[String]) -> String {
    format!("{{\"keys\":[{}]}}", keys.join(","))
}

/// Base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap_or_default()
}

/// A token with an arbitrary header and payload and a signature of junk bytes.
pub fn forged(header: &Value, payload: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes()),
        b64(signature)
    )
}

struct JwksState {
    status: u16,
    body: String,
}

/// A minimal HTTP server answering every request with the current JWK Set.
pub struct JwksServer {
    addr: SocketAddr,
    state: Arc<Mutex<JwksState>>,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for JwksServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksServer")
            .field("addr", &self.addr)
            .finish()
    }
}

fn serve(mut s: TcpStream, state: &Mutex<JwksState>) {
    let _ = s.set_read_timeout(Some(StdDuration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    }
    let (status, body) = match state.lock() {
        Ok(g) => (g.status, g.body.clone()),
        Err(_) => (500, String::new()),
    };
    let resp = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(resp.as_bytes());
}

impl JwksServer {
    /// Starts serving `body` with status 200.
    pub fn start(body: &str) -> Result<JwksServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(JwksState {
            status: 200,
            body: body.to_string(),
        }));
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, h, sp) = (state.clone(), hits.clone(), stop.clone());
        thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        h.fetch_add(1, Ordering::Relaxed);
                        serve(s, &st);
                    }
                    Err(_) => thread::sleep(StdDuration::from_millis(10)),
                }
            }
        });
        Ok(JwksServer {
            addr,
            state,
            hits,
            stop,
        })
    }

    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the served key set.
    pub fn set(&self, status: u16, body: &str) {
        if let Ok(mut g) = self.state.lock() {
            g.status = status;
            g.body = body.to_string();
        }
    }

    /// Requests served so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The test configuration: the issue's rules, RS256/ES256/EdDSA, `jwks` as given.
pub fn config(jwks: Value, extra: Value) -> String {
    let mut c = json!({
        "resource": RESOURCE,
        "authorization_servers": [ISSUER],
        "jwt": {
            "issuer": ISSUER,
            "algorithms": ["RS256", "ES256", "EdDSA"],
            "jwks": jwks,
            "clock_skew_seconds": 30
        },
        "rules": [
            {"tools": ["delete_*"], "scopes": ["repo:admin"]},
            {"tools": ["*"], "scopes": ["mcp:tools"]},
            {"methods": ["resources/read"], "scopes": ["files:read"]}
        ],
        "scopes_supported": ["mcp:tools"],
        "unmatched": "deny"
    });
    if let (Some(obj), Some(more)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in more {
            obj.insert(k.clone(), v.clone());
        }
    }
    c.to_string()
}

/// `jwks` pointing at the `jwks` cluster.
pub fn remote_jwks() -> Value {
    json!({"cluster": "jwks", "path": "/jwks.json", "authority": "idp.test", "refresh_seconds": 300})
}
