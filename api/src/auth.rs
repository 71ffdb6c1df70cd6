// SPDX-License-Identifier: GPL-2.0-only
//! Token authentication and scopes (csm-api.md "Authentication", "Token scopes").
//!
//! Tokens are kept only as SHA-256 digests. A request authenticates with
//! `Authorization: Bearer <token>` or the `csm_auth` cookie. Cookie-authenticated
//! state-changing requests must also carry `X-CSRF-Token`; Bearer requests are exempt.

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
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Admin => "admin",
            Self::Metrics => "metrics",
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

#[derive(Clone)]
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
    /// Digest of the presented token (hex), used for per-operator state and CSRF.
    pub token_digest: String,
}

#[derive(Clone, Default)]
pub struct TokenSet {
    entries: Vec<Entry>,
    csrf_key: [u8; 32],
}

pub const COOKIE_NAME: &str = "csm_auth";
pub const CSRF_HEADER: &str = "x-csrf-token";

pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl TokenSet {
    /// `csrf_key` must be secret (random per install or per start).
    pub fn new(csrf_key: [u8; 32]) -> Self {
        Self {
            entries: Vec::new(),
            csrf_key,
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

    /// The CSRF token that goes with a session token (deterministic, keyed).
    pub fn csrf_for(&self, token_digest_hex: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"rampart-csrf\0");
        h.update(self.csrf_key);
        h.update(token_digest_hex.as_bytes());
        hex::encode(h.finalize())
    }

    fn lookup(&self, token: &str) -> Option<&Entry> {
        let d = digest(token);
        // Compare against every entry so timing does not reveal which one matched.
        let mut found = None;
        for e in &self.entries {
            if ct_eq(&e.digest, &d) {
                found = Some(e);
            }
        }
        found
    }

    /// Authenticate and authorize one request for a route of `scope`.
    /// 401: no or unknown credential. 403: known credential without the scope, or
    /// a cookie session writing without a valid CSRF token.
    pub fn authorize(
        &self,
        method: &Method,
        headers: &HeaderMap,
        scope: Scope,
    ) -> Result<Principal, ApiError> {
        let (token, via_cookie) = match bearer(headers) {
            Some(t) => (t, false),
            None => match cookie(headers, COOKIE_NAME) {
                Some(t) => (t, true),
                None => {
                    return Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "authentication required",
                    ))
                }
            },
        };
        let Some(entry) = self.lookup(&token) else {
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid token"));
        };
        let allowed = matches!(
            (scope, entry.grant),
            (_, Grant::Admin) | (Scope::Read, Grant::Read) | (Scope::Metrics, Grant::Metrics)
        );
        if !allowed {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("token '{}' lacks the {} scope", entry.name, scope.as_str()),
            ));
        }
        let token_digest = hex::encode(entry.digest);
        let writes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if via_cookie && writes {
            let expected = self.csrf_for(&token_digest);
            let presented = headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !ct_eq(&digest(presented), &digest(&expected)) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "missing or invalid X-CSRF-Token",
                ));
            }
        }
        Ok(Principal {
            name: entry.name.clone(),
            grant: entry.grant,
            via_cookie,
            token_digest,
        })
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
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            s.authorize(&Method::GET, &metrics, Scope::Read)
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
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
    }
}
