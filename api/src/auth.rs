// SPDX-License-Identifier: GPL-2.0-only
//! Token authentication and scopes (csm-api.md "Authentication", "Token scopes").
//!
//! Tokens are kept only as SHA-256 digests. A request authenticates with
//! `Authorization: Bearer <token>` or the `csm_auth` cookie. The cookie holds either a
//! session minted by `POST /login` (random, server-side, revoked by `/logout`, expires)
//! or, as CSM clients send it, a raw token. Cookie-authenticated state-changing
//! requests must also carry `X-CSRF-Token` and, when the browser names one, a
//! same-site `Origin`; Bearer requests are exempt.
//!
//! Status codes follow csm-contract.md: a missing, unknown or insufficient credential
//! is 401; 403 is only for CSRF and cross-origin failures.

use std::{
    collections::HashMap,
    sync::{Mutex, RwLock},
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};
use warp::http::{HeaderMap, Method, StatusCode};

use crate::ApiError;

/// What a route requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Read-scope or admin token.
    Read,
    /// Admin token only.
    Admin,
    /// The metrics token (or an admin token).
    Metrics,
    /// No credential (`/login`).
    Public,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Admin => "admin",
            Self::Metrics => "metrics",
            Self::Public => "public",
        }
    }
}

/// The scope a token grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    Admin,
    Read,
    Metrics,
}

impl Grant {
    /// The scope name a client is told (`/login`, `X-Rampart-Scope`).
    pub fn as_str(self) -> &'static str {
        match self {
            Grant::Admin => "admin",
            Grant::Read => "read",
            Grant::Metrics => "metrics",
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    name: String,
    digest: [u8; 32],
    grant: Grant,
}

/// The identity of an authenticated request.
#[derive(Clone, Debug)]
pub struct Principal {
    pub name: String,
    pub grant: Grant,
    pub via_cookie: bool,
    /// Digest of the token behind the request (hex), used for per-operator state.
    pub token_digest: String,
    /// Digest of the cookie credential (hex; a session id or a raw token), which
    /// the CSRF token is derived from. Empty for Bearer requests.
    pub session_digest: String,
}

impl Principal {
    fn anonymous() -> Self {
        Self {
            name: String::new(),
            grant: Grant::Read,
            via_cookie: false,
            token_digest: String::new(),
            session_digest: String::new(),
        }
    }
}

/// How long a login session lives.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; the oldest goes when a login would exceed it.
const MAX_SESSIONS: usize = 1024;

struct Session {
    entry: Entry,
    expires: Instant,
}

/// A freshly minted login session.
pub struct NewSession {
    /// The cookie value (shown once; only its digest is kept).
    pub id: String,
    pub csrf: String,
    pub grant: Grant,
    pub name: String,
}

#[derive(Default)]
pub struct TokenSet {
    entries: Vec<Entry>,
    /// Tokens that change while the agent runs (`rampart token create|revoke`):
    /// replaced whole by [`TokenSet::replace_dynamic`].
    dynamic: RwLock<Vec<Entry>>,
    csrf_key: [u8; 32],
    sessions: Mutex<HashMap<[u8; 32], Session>>,
}

/// Why a credential failed, which decides whether it costs the login budget.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// Nothing presented.
    Missing,
    /// Presented but unknown (a guess: counts against the login throttle).
    Unknown,
    /// Known, but without the route's scope.
    Scope,
    /// Cookie write without a valid CSRF token, or from another origin.
    Csrf,
}

impl Denied {
    /// As CSM answers it: 403 for CSRF and origin failures, 401 for the rest.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Csrf => StatusCode::FORBIDDEN,
            Self::Missing | Self::Unknown | Self::Scope => StatusCode::UNAUTHORIZED,
        }
    }
}

pub const COOKIE_NAME: &str = "csm_auth";
pub const CSRF_HEADER: &str = "x-csrf-token";

pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Equal digests, compared without an early exit.
pub fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl TokenSet {
    /// `csrf_key` must be secret (random per install or per start).
    pub fn new(csrf_key: [u8; 32]) -> Self {
        Self {
            entries: Vec::new(),
            dynamic: RwLock::new(Vec::new()),
            csrf_key,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    pub fn add_plain(&mut self, name: &str, token: &str, grant: Grant) {
        self.add_digest(name, digest(token), grant);
    }

    pub fn add_digest(&mut self, name: &str, digest: [u8; 32], grant: Grant) {
        self.entries.push(Entry {
            name: name.to_string(),
            digest,
            grant,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Replace the tokens minted at run time with `tokens` (name, digest, grant). A
    /// token no longer among them stops working at once, and so do the login
    /// sessions it opened.
    pub fn replace_dynamic(&self, tokens: Vec<(String, [u8; 32], Grant)>) {
        let fresh: Vec<Entry> = tokens
            .into_iter()
            .map(|(name, digest, grant)| Entry {
                name,
                digest,
                grant,
            })
            .collect();
        let mut dynamic = self.dynamic.write().unwrap_or_else(|p| p.into_inner());
        *dynamic = fresh;
        let known = |d: &[u8; 32]| {
            self.entries
                .iter()
                .chain(dynamic.iter())
                .any(|e| e.digest == *d)
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, s| known(&s.entry.digest));
    }

    /// Names of the run-time tokens now in force.
    pub fn dynamic_names(&self) -> Vec<String> {
        let dynamic = self.dynamic.read().unwrap_or_else(|p| p.into_inner());
        dynamic.iter().map(|e| e.name.clone()).collect()
    }

    /// The CSRF token that goes with a cookie credential (deterministic, keyed by a
    /// per-start secret), from the credential's digest in hex.
    pub fn csrf_for(&self, token_digest_hex: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"rampart-csrf\0");
        h.update(self.csrf_key);
        h.update(token_digest_hex.as_bytes());
        hex::encode(h.finalize())
    }

    fn lookup(&self, token: &str) -> Option<Entry> {
        let d = digest(token);
        let dynamic = self.dynamic.read().unwrap_or_else(|p| p.into_inner());
        // Compare against every entry so timing does not reveal which one matched.
        let mut found = None;
        for e in self.entries.iter().chain(dynamic.iter()) {
            if ct_eq(&e.digest, &d) {
                found = Some(e);
            }
        }
        found.cloned()
    }

    /// Check a token presented to `POST /login` and mint a session for it.
    pub fn login(&self, token: &str) -> Option<NewSession> {
        let entry = self.lookup(token)?;
        let mut raw = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
        let id = hex::encode(raw);
        let key = digest(&id);
        let csrf = self.csrf_for(&hex::encode(key));
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| *k)
            {
                sessions.remove(&oldest);
            }
        }
        let (grant, name) = (entry.grant, entry.name.clone());
        sessions.insert(
            key,
            Session {
                entry,
                expires: now + SESSION_TTL,
            },
        );
        Some(NewSession {
            id,
            csrf,
            grant,
            name,
        })
    }

    /// End the session a cookie names (a raw-token cookie has none to end).
    pub fn logout(&self, headers: &HeaderMap) -> bool {
        let Some(c) = cookie(headers, COOKIE_NAME) else {
            return false;
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.remove(&digest(&c)).is_some()
    }

    /// Sessions alive now.
    pub fn sessions(&self) -> usize {
        let now = Instant::now();
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.values().filter(|s| s.expires > now).count()
    }

    fn session(&self, id: &str) -> Option<Entry> {
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let key = digest(id);
        match sessions.get(&key) {
            Some(s) if s.expires > now => Some(s.entry.clone()),
            Some(_) => {
                sessions.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Authenticate and authorize one request for a route of `scope`.
    /// 401: no, unknown or insufficient credential (csm-contract.md). 403: a cookie
    /// session writing without a valid CSRF token or from a foreign origin.
    pub fn authorize(
        &self,
        method: &Method,
        headers: &HeaderMap,
        scope: Scope,
    ) -> Result<Principal, ApiError> {
        self.check(method, headers, scope)
            .map_err(|(why, msg)| ApiError::new(why.status(), msg))
    }

    /// [`authorize`](Self::authorize) with the reason of a refusal.
    pub fn check(
        &self,
        method: &Method,
        headers: &HeaderMap,
        scope: Scope,
    ) -> Result<Principal, (Denied, String)> {
        if scope == Scope::Public {
            return Ok(Principal::anonymous());
        }
        let (token, via_cookie) = match bearer(headers) {
            Some(t) => (t, false),
            None => match cookie(headers, COOKIE_NAME) {
                Some(t) => (t, true),
                None => return Err((Denied::Missing, "authentication required".into())),
            },
        };
        let entry = match via_cookie.then(|| self.session(&token)).flatten() {
            Some(e) => e,
            None => match self.lookup(&token) {
                Some(e) => e,
                None => return Err((Denied::Unknown, "invalid token".into())),
            },
        };
        let allowed = matches!(
            (scope, entry.grant),
            (_, Grant::Admin) | (Scope::Read, Grant::Read) | (Scope::Metrics, Grant::Metrics)
        );
        if !allowed {
            return Err((
                Denied::Scope,
                format!("token '{}' lacks the {} scope", entry.name, scope.as_str()),
            ));
        }
        let token_digest = hex::encode(entry.digest);
        let session_digest = if via_cookie {
            hex::encode(digest(&token))
        } else {
            String::new()
        };
        let writes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if via_cookie && writes {
            if let Err(msg) = same_origin(headers) {
                return Err((Denied::Csrf, msg));
            }
            let expected = self.csrf_for(&session_digest);
            let presented = headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !ct_eq(&digest(presented), &digest(&expected)) {
                return Err((Denied::Csrf, "missing or invalid X-CSRF-Token".into()));
            }
        }
        Ok(Principal {
            name: entry.name.clone(),
            grant: entry.grant,
            via_cookie,
            token_digest,
            session_digest,
        })
    }
}

/// A browser names where a request comes from (`Origin`, `Sec-Fetch-Site`); a cookie
/// write is refused when that is another site. Clients that send neither (curl with
/// `-b`) still need the CSRF token.
pub fn same_origin(headers: &HeaderMap) -> Result<(), String> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return Err(format!("cross-site request (Sec-Fetch-Site: {site})"));
        }
    }
    let Some(origin) = get("origin") else {
        return Ok(());
    };
    let host = get("host").unwrap_or("");
    let origin_host = origin
        .strip_prefix("https://")
        .filter(|h| !h.is_empty() && !h.contains('/'));
    match origin_host {
        Some(h) if h.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(format!("Origin {origin:?} is not this server ({host:?})")),
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers
        .get(warp::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim().to_string())
        .filter(|t| !t.is_empty())
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(warp::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    fn set() -> TokenSet {
        let mut s = TokenSet::new([7; 32]);
        s.add_plain("op", "admin-secret", Grant::Admin);
        s.add_plain("panel", "read-secret", Grant::Read);
        s.add_plain("prom", "metrics-secret", Grant::Metrics);
        s
    }

    fn hdr(k: &'static str, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(k, HeaderValue::from_str(v).expect("header"));
        h
    }

    #[test]
    fn bearer_scopes() {
        let s = set();
        let admin = hdr("authorization", "Bearer admin-secret");
        let read = hdr("authorization", "bearer read-secret");
        let metrics = hdr("authorization", "Bearer metrics-secret");
        assert!(s.authorize(&Method::POST, &admin, Scope::Admin).is_ok());
        assert!(s.authorize(&Method::GET, &read, Scope::Read).is_ok());
        assert_eq!(
            s.authorize(&Method::POST, &read, Scope::Admin)
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            s.authorize(&Method::GET, &metrics, Scope::Read)
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert!(s.authorize(&Method::GET, &metrics, Scope::Metrics).is_ok());
        let bad = hdr("authorization", "Bearer nope");
        assert_eq!(
            s.authorize(&Method::GET, &bad, Scope::Read)
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            s.authorize(&Method::GET, &HeaderMap::new(), Scope::Read)
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn run_time_tokens_work_at_once_and_stop_with_their_sessions_when_revoked() {
        let s = set();
        let minted = hdr("authorization", "Bearer minted-secret");
        assert!(s.authorize(&Method::GET, &minted, Scope::Read).is_err());
        s.replace_dynamic(vec![("ci".into(), digest("minted-secret"), Grant::Read)]);
        assert_eq!(
            s.authorize(&Method::GET, &minted, Scope::Read)
                .expect("minted token")
                .name,
            "ci"
        );
        assert!(s.authorize(&Method::POST, &minted, Scope::Admin).is_err());
        let session = s.login("minted-secret").expect("login");
        let cookie = hdr("cookie", &format!("csm_auth={}", session.id));
        assert!(s.authorize(&Method::GET, &cookie, Scope::Read).is_ok());
        let admin_session = s.login("admin-secret").expect("login");
        s.replace_dynamic(Vec::new());
        assert!(s.authorize(&Method::GET, &minted, Scope::Read).is_err());
        assert!(
            s.authorize(&Method::GET, &cookie, Scope::Read).is_err(),
            "a session outlived its revoked token"
        );
        let admin_cookie = hdr("cookie", &format!("csm_auth={}", admin_session.id));
        assert!(s
            .authorize(&Method::GET, &admin_cookie, Scope::Read)
            .is_ok());
        assert!(s.dynamic_names().is_empty());
    }

    #[test]
    fn cookie_writes_need_csrf() {
        let s = set();
        let mut h = hdr("cookie", "theme=dark; csm_auth=admin-secret");
        assert!(s.authorize(&Method::GET, &h, Scope::Admin).is_ok());
        assert_eq!(
            s.authorize(&Method::POST, &h, Scope::Admin)
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        h.insert(CSRF_HEADER, HeaderValue::from_static("wrong"));
        assert_eq!(
            s.authorize(&Method::POST, &h, Scope::Admin)
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        let csrf = s.csrf_for(&hex::encode(digest("admin-secret")));
        h.insert(CSRF_HEADER, HeaderValue::from_str(&csrf).expect("csrf"));
        assert!(s.authorize(&Method::POST, &h, Scope::Admin).is_ok());
        // The right token from another site is still refused.
        h.insert("host", HeaderValue::from_static("panel.example:9443"));
        h.insert("origin", HeaderValue::from_static("https://evil.example"));
        assert_eq!(
            s.authorize(&Method::POST, &h, Scope::Admin)
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        h.insert(
            "origin",
            HeaderValue::from_static("https://panel.example:9443"),
        );
        assert!(s.authorize(&Method::POST, &h, Scope::Admin).is_ok());
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(s.authorize(&Method::POST, &h, Scope::Admin).is_err());
    }

    #[test]
    fn sessions_log_in_expire_on_logout_and_carry_their_own_csrf() {
        let s = set();
        assert!(s.login("wrong").is_none());
        let sess = s.login("read-secret").expect("a session");
        assert_eq!(sess.grant, Grant::Read);
        assert_ne!(sess.id, "read-secret", "the cookie is not the token");
        let mut h = hdr("cookie", &format!("csm_auth={}", sess.id));
        let p = s.authorize(&Method::GET, &h, Scope::Read).expect("session");
        assert_eq!(p.name, "panel");
        assert_eq!(p.token_digest, hex::encode(digest("read-secret")));
        assert_eq!(s.csrf_for(&p.session_digest), sess.csrf);
        // Read sessions stay read: 401 on admin routes, as CSM.
        assert_eq!(
            s.authorize(&Method::GET, &h, Scope::Admin)
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert!(s.logout(&h));
        assert_eq!(
            s.authorize(&Method::GET, &h, Scope::Read)
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        h.insert("cookie", HeaderValue::from_static("csm_auth=read-secret"));
        assert!(!s.logout(&h), "a raw-token cookie has no session");
        assert_eq!(s.sessions(), 0);
    }
}
