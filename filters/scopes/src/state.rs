//! Per-VM state: the key ring, the verified-token cache and the remote JWKS refresh.
//!
//! Remote keys: every worker VM has its own root context, so the fetched JWK Set is published in
//! Envoy shared data (one copy for all workers of the `vm_id`) and each worker re-reads it on its
//! timer. A lease in shared data elects one fetching worker per period; an unknown `kid` asks the
//! local worker for an immediate, rate-limited refresh.

use super::keys::KeyRing;
use filter_host::abi::{self, BufferType, MapType};
use filter_host::metrics::{Counter, Registry};
use mcp_core::scopes::config::{Alg, Authenticator, JwtPolicy, KeySource, Policy, RemoteJwks};
use mcp_core::scopes::exchange::Cache;
use mcp_core::scopes::jwks;
use mcp_core::scopes::token::{self, AuthError, Identity};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Timer period while a remote JWK Set is configured.
pub const TICK_MS: u32 = 500;
/// Pause between two fetch attempts of one worker (failures included).
pub const RETRY_SECONDS: u64 = 2;
/// Shortest interval between two refreshes triggered by unknown `kid`s on one worker.
pub const ON_DEMAND_INTERVAL_SECONDS: u64 = 30;
/// Most requests one worker holds while its keys are refreshed; later ones get the 503.
pub const MAX_HELD: usize = 1024;

/// Counters, named `mcp_scopes.<name>`.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// Requests without a bearer token (401).
    pub no_token: Counter,
    /// Requests with an invalid token (401), expiry excluded.
    pub invalid: Counter,
    /// Requests with an expired token (401).
    pub expired: Counter,
    /// Operations refused for missing scopes (403 insufficient_scope).
    pub insufficient_scope: Counter,
    /// Operations no rule permits (403, `unmatched: deny`).
    pub not_permitted: Counter,
    /// Operations allowed.
    pub allowed: Counter,
    /// Requests refused because keys were unavailable (503).
    pub jwks_unavailable: Counter,
    /// Metadata documents served.
    pub metadata_served: Counter,
    /// Tools removed from `tools/list` results.
    pub tools_hidden: Counter,
    /// Successful JWKS fetches.
    pub jwks_fetched: Counter,
    /// Failed JWKS fetches.
    pub jwks_fetch_failures: Counter,
    /// Tokens answered from the cache.
    pub token_cache_hits: Counter,
    /// Requests held while an unknown `kid` triggered a key refresh.
    pub held: Counter,
    /// Upstream tokens obtained by token exchange (RFC 8693).
    pub exchanged: Counter,
    /// Upstream tokens taken from the exchange cache.
    pub exchange_cache_hits: Counter,
    /// Exchanges refused with `invalid_grant` (401).
    pub exchange_invalid_grant: Counter,
    /// Exchanges refused with `invalid_target`, `invalid_scope` or `unauthorized_client` (403).
    pub exchange_rejected: Counter,
    /// Exchanges that failed: unreachable, timeout, 5xx, unparseable, other errors (503).
    pub exchange_unavailable: Counter,
}

impl Stats {
    fn new(reg: &mut Registry) -> Stats {
        let mut c = |n: &str| reg.counter(&format!("mcp_scopes.{n}"));
        Stats {
            no_token: c("no_token"),
            invalid: c("invalid"),
            expired: c("expired"),
            insufficient_scope: c("insufficient_scope"),
            not_permitted: c("not_permitted"),
            allowed: c("allowed"),
            jwks_unavailable: c("jwks_unavailable"),
            metadata_served: c("metadata_served"),
            tools_hidden: c("tools_hidden"),
            jwks_fetched: c("jwks_fetched"),
            jwks_fetch_failures: c("jwks_fetch_failures"),
            token_cache_hits: c("token_cache_hits"),
            held: c("held_for_refresh"),
            exchanged: c("exchanged"),
            exchange_cache_hits: c("exchange_cache_hits"),
            exchange_invalid_grant: c("exchange_invalid_grant"),
            exchange_rejected: c("exchange_rejected"),
            exchange_unavailable: c("exchange_unavailable"),
        }
    }
}

struct Cached {
    identity: Rc<Identity>,
    /// Usable until (seconds): `exp` plus the clock skew, as validate_claims would accept.
    until: u64,
}

#[derive(Default)]
struct Keys {
    ring: Option<KeyRing>,
    /// Shared-data CAS of the JWK Set the ring was built from.
    version: u32,
    cache: HashMap<String, Cached>,
    in_flight: Option<u32>,
    last_attempt: u64,
    refresh_wanted: bool,
    last_on_demand: Option<u64>,
    /// The last fetch failed: an unknown `kid` may be a key we could not load (503, not 401).
    failed: bool,
}

/// Everything a worker VM keeps across requests.
pub struct Shared {
    /// `None`: empty configuration, the filter only runs the request gate.
    pub policy: Option<Policy>,
    /// Counters.
    pub stats: Stats,
    keys: RefCell<Keys>,
    /// Requests waiting for the refresh an unknown `kid` asked for: (context id, since seconds).
    waiting: RefCell<Vec<(u32, u64)>>,
    /// Upstream tokens issued by token exchange, per worker (never shared: see docs/scopes.md).
    pub exchange_cache: RefCell<Cache>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("enabled", &self.policy.is_some())
            .finish_non_exhaustive()
    }
}

/// Seconds since the epoch from the host clock.
pub fn now() -> u64 {
    abi::now_nanos() / 1_000_000_000
}

fn jwt(policy: &Policy) -> Option<&JwtPolicy> {
    match &policy.authenticator {
        Authenticator::Jwt(j) => Some(j),
        Authenticator::JwtAuthn(_) => None,
    }
}

fn remote(policy: &Policy) -> Option<&RemoteJwks> {
    match &jwt(policy)?.keys {
        KeySource::Remote(r) => Some(r),
        _ => None,
    }
}

fn data_key(r: &RemoteJwks) -> String {
    format!("mcp_scopes.jwks|{}|{}{}", r.cluster, r.authority, r.path)
}

fn stamp_key(r: &RemoteJwks) -> String {
    format!(
        "mcp_scopes.jwks_fetched_at|{}|{}{}",
        r.cluster, r.authority, r.path
    )
}

fn lease_key(r: &RemoteJwks) -> String {
    format!(
        "mcp_scopes.jwks_lease|{}|{}{}",
        r.cluster, r.authority, r.path
    )
}

fn read_u64(key: &str) -> (u64, u32) {
    match abi::get_shared_data(key) {
        Ok((Some(v), cas)) => {
            let mut b = [0u8; 8];
            for (d, s) in b.iter_mut().zip(v.iter()) {
                *d = *s;
            }
            (u64::from_le_bytes(b), cas)
        }
        Ok((None, cas)) => (0, cas),
        Err(_) => (0, 0),
    }
}

fn ring_from(json: &[u8], j: &JwtPolicy) -> Result<(KeyRing, usize), String> {
    let set = jwks::parse(json)?;
    let (ring, unusable) = KeyRing::build(&set, &j.algorithms, j.hmac_secret.as_deref());
    if ring.is_empty() {
        return Err(format!(
            "no usable key for {:?} ({unusable} skipped)",
            alg_names(&j.algorithms)
        ));
    }
    Ok((ring, unusable))
}

fn alg_names(algs: &[Alg]) -> Vec<&'static str> {
    algs.iter().map(|a| a.name()).collect()
}

impl Shared {
    /// Builds the state; inline keys are loaded now (an unusable inline set refuses the config).
    pub fn new(policy: Option<Policy>, reg: &mut Registry) -> Result<Shared, String> {
        let mut keys = Keys::default();
        if let Some(j) = policy.as_ref().and_then(jwt) {
            match &j.keys {
                KeySource::Inline(text) => {
                    let (ring, unusable) = ring_from(text.as_bytes(), j)
                        .map_err(|e| format!("jwt.jwks.inline: {e}"))?;
                    if unusable > 0 {
                        filter_host::log!(Warn, "jwt.jwks.inline: {unusable} keys not usable");
                    }
                    keys.ring = Some(ring);
                }
                KeySource::None => {
                    let (ring, _) = KeyRing::build(
                        &jwks::KeySet::default(),
                        &j.algorithms,
                        j.hmac_secret.as_deref(),
                    );
                    keys.ring = Some(ring);
                }
                KeySource::Remote(_) => {}
            }
        }
        let exchange_cache = match policy.as_ref().and_then(|p| p.exchange.as_ref()) {
            Some(x) => Cache::new(x.cache_entries, x.expiry_margin_seconds),
            None => Cache::new(0, 0),
        };
        Ok(Shared {
            policy,
            stats: Stats::new(reg),
            keys: RefCell::new(keys),
            waiting: RefCell::new(Vec::new()),
            exchange_cache: RefCell::new(exchange_cache),
        })
    }

    /// Timer period: only a remote JWK Set needs one.
    pub fn tick_period(&self) -> Option<u32> {
        self.policy.as_ref().and_then(remote).map(|_| TICK_MS)
    }

    /// Verifies a bearer token (cached per worker until it expires).
    pub fn verify(&self, token_str: &str) -> Result<Rc<Identity>, AuthError> {
        let Some(policy) = &self.policy else {
            return Err(AuthError::NoToken);
        };
        let Some(j) = jwt(policy) else {
            return Err(AuthError::NoToken);
        };
        let now = now();
        let mut keys = self.keys.borrow_mut();
        if let Some(c) = keys.cache.get(token_str) {
            if now <= c.until {
                self.stats.token_cache_hits.inc();
                return Ok(c.identity.clone());
            }
        }
        let compact = token::split(token_str)?;
        let alg = token::allowed_alg(&compact.header, &j.algorithms)?;
        let Some(ring) = &keys.ring else {
            return Err(AuthError::KeysUnavailable);
        };
        match ring.verify(token_str, alg, compact.header.kid.as_deref()) {
            Ok(()) => {}
            Err(AuthError::UnknownKey) if remote(policy).is_some() => {
                return Err(self.on_unknown_key(&mut keys, now));
            }
            Err(e) => return Err(e),
        }
        let claims = token::payload(&compact)?;
        let identity = Rc::new(token::validate_claims(
            &claims,
            j,
            &policy.publish_claims,
            now,
        )?);
        if j.cache_entries > 0 {
            if keys.cache.len() >= j.cache_entries {
                keys.cache.retain(|_, c| now <= c.until);
                if keys.cache.len() >= j.cache_entries {
                    keys.cache.clear();
                }
            }
            let until = identity
                .exp
                .map_or(now, |e| e.saturating_add(j.clock_skew_seconds));
            keys.cache.insert(
                token_str.to_owned(),
                Cached {
                    identity: identity.clone(),
                    until,
                },
            );
        }
        Ok(identity)
    }

    /// A token names a key the ring lacks: maybe the issuer rotated keys since the last fetch.
    /// Ask for a refresh (at most once per [`ON_DEMAND_INTERVAL_SECONDS`]) and tell the caller to
    /// retry; once a refresh has come back without the key, the token is invalid.
    fn on_unknown_key(&self, keys: &mut Keys, now: u64) -> AuthError {
        if keys.refresh_wanted || keys.in_flight.is_some() {
            return AuthError::KeysRefreshing;
        }
        let allowed = keys
            .last_on_demand
            .is_none_or(|t| now >= t.saturating_add(ON_DEMAND_INTERVAL_SECONDS));
        if allowed {
            keys.refresh_wanted = true;
            keys.last_on_demand = Some(now);
            AuthError::KeysRefreshing
        } else if keys.failed {
            AuthError::KeysUnavailable
        } else {
            AuthError::UnknownKey
        }
    }

    /// Holds a request whose token names an unknown `kid` until the refresh it triggered ends
    /// (false: too many are waiting; the caller answers 503 instead).
    pub fn hold(&self, context_id: u32) -> bool {
        let Ok(mut w) = self.waiting.try_borrow_mut() else {
            return false;
        };
        if w.len() >= MAX_HELD {
            return false;
        }
        w.push((context_id, now()));
        self.stats.held.inc();
        true
    }

    /// Resumes held requests: all of them, or those waiting since before `older_than`. Each
    /// verifies its token again against whatever keys there are now.
    fn wake(&self, older_than: Option<u64>) {
        let due: Vec<u32> = {
            let Ok(mut w) = self.waiting.try_borrow_mut() else {
                return;
            };
            let mut due = Vec::new();
            w.retain(|&(id, since)| {
                let wake = older_than.is_none_or(|t| since < t);
                if wake {
                    due.push(id);
                }
                !wake
            });
            due
        };
        for id in due {
            filter_host::wake(id);
        }
    }

    /// Timer: pick up a JWK Set another worker fetched, fetch when due, resume held requests
    /// whose refresh is over (or took too long).
    pub fn on_tick(&self) {
        let Some(policy) = &self.policy else {
            return;
        };
        let (Some(j), Some(r)) = (jwt(policy), remote(policy)) else {
            return;
        };
        self.sync(j, r);
        let now = now();
        self.fetch_if_due(r, now);
        let pending = {
            let keys = self.keys.borrow();
            keys.in_flight.is_some() || keys.refresh_wanted
        };
        if pending {
            // Nobody waits longer than a fetch can take, plus the pause between two attempts.
            let patience = u64::from(r.timeout_ms / 1000) + 2 * RETRY_SECONDS + 1;
            self.wake(Some(now.saturating_sub(patience)));
        } else {
            // The refresh could not start, or keys another worker fetched were picked up.
            self.wake(None);
        }
    }

    fn fetch_if_due(&self, r: &RemoteJwks, now: u64) {
        let mut keys = self.keys.borrow_mut();
        if keys.in_flight.is_some() || now < keys.last_attempt.saturating_add(RETRY_SECONDS) {
            return;
        }
        let (fetched_at, _) = read_u64(&stamp_key(r));
        let stale = keys.ring.is_none() || now >= fetched_at.saturating_add(r.refresh_seconds);
        if !stale && !keys.refresh_wanted {
            return;
        }
        // One worker fetches per period; an on-demand refresh does not wait for the lease.
        if !keys.refresh_wanted && !acquire_lease(r, now) {
            return;
        }
        keys.last_attempt = now;
        keys.refresh_wanted = false;
        let headers = [
            (":method", "GET"),
            (":path", r.path.as_str()),
            (":authority", r.authority.as_str()),
            ("accept", "application/json"),
        ];
        match abi::http_call(&r.cluster, &headers, &[], r.timeout_ms) {
            Ok(t) => keys.in_flight = Some(t),
            Err(e) => {
                self.fetch_failed(&mut keys);
                filter_host::log!(Warn, "JWKS fetch from cluster {} failed: {e}", r.cluster);
            }
        }
    }

    /// Re-reads the published JWK Set if it changed since the ring was built.
    fn sync(&self, j: &JwtPolicy, r: &RemoteJwks) {
        let Ok((Some(data), cas)) = abi::get_shared_data(&data_key(r)) else {
            return;
        };
        let mut keys = self.keys.borrow_mut();
        if keys.ring.is_some() && cas == keys.version {
            return;
        }
        match ring_from(&data, j) {
            Ok((ring, _)) => {
                keys.ring = Some(ring);
                keys.version = cas;
                // A key may have been removed (revoked): tokens verified with it must not stay
                // accepted from the cache.
                keys.cache.clear();
            }
            Err(e) => filter_host::log!(Warn, "published JWKS unusable: {e}"),
        }
    }

    /// The answer to a JWKS fetch: publish and load the keys, then resume held requests
    /// (whatever the outcome: they verify against the keys there are now, or get the 503).
    pub fn on_http_call_response(&self, token_id: u32, body_size: usize) {
        if self.on_jwks_answer(token_id, body_size) {
            self.wake(None);
        }
    }

    /// A fetch failed: counted, and remembered so an unknown `kid` answers 503 (keys we could
    /// not load), not 401.
    fn fetch_failed(&self, keys: &mut Keys) {
        keys.failed = true;
        self.stats.jwks_fetch_failures.inc();
    }

    /// Handles a fetch answer; false when it is not the awaited one.
    fn on_jwks_answer(&self, token_id: u32, body_size: usize) -> bool {
        let Some(policy) = &self.policy else {
            return false;
        };
        let (Some(j), Some(r)) = (jwt(policy), remote(policy)) else {
            return false;
        };
        {
            let mut keys = self.keys.borrow_mut();
            if keys.in_flight != Some(token_id) {
                return false;
            }
            keys.in_flight = None;
        }
        let status = abi::get_headers(MapType::HttpCallResponseHeaders)
            .ok()
            .and_then(|h| h.into_iter().find(|(k, _)| k == ":status"))
            .map(|(_, v)| v)
            .unwrap_or_default();
        let body =
            abi::get_buffer(BufferType::HttpCallResponseBody, 0, body_size).unwrap_or_default();
        if status != "200" {
            self.fetch_failed(&mut self.keys.borrow_mut());
            filter_host::log!(
                Warn,
                "JWKS fetch from cluster {}: HTTP status {:?}",
                r.cluster,
                status
            );
            return true;
        }
        if let Err(e) = ring_from(&body, j) {
            self.fetch_failed(&mut self.keys.borrow_mut());
            filter_host::log!(Warn, "JWKS from cluster {} unusable: {e}", r.cluster);
            return true;
        }
        self.keys.borrow_mut().failed = false;
        self.stats.jwks_fetched.inc();
        let now = now().to_le_bytes();
        let _ = abi::set_shared_data(&stamp_key(r), &now, 0);
        let unchanged =
            matches!(abi::get_shared_data(&data_key(r)), Ok((Some(old), _)) if old == body);
        if !unchanged {
            if let Err(e) = abi::set_shared_data(&data_key(r), &body, 0) {
                filter_host::log!(Warn, "cannot publish the JWKS: {e}");
                return true;
            }
            filter_host::log!(
                Info,
                "JWKS loaded from cluster {} ({} bytes)",
                r.cluster,
                body.len()
            );
        }
        self.sync(j, r);
        true
    }
}

/// Takes the fetch lease if it is free or expired (CAS, so only one worker wins).
fn acquire_lease(r: &RemoteJwks, now: u64) -> bool {
    let key = lease_key(r);
    let (held_since, cas) = read_u64(&key);
    let lease_seconds = u64::from(r.timeout_ms / 1000) + RETRY_SECONDS;
    if held_since != 0 && now < held_since.saturating_add(lease_seconds) {
        return false;
    }
    abi::set_shared_data(&key, &now.to_le_bytes(), cas).is_ok()
}
