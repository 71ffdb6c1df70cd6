// SPDX-License-Identifier: GPL-2.0-only
//! API credentials: configured tokens, plus a generated admin token when none exist.

use std::path::Path;

use anyhow::{Context, Result};
use api::auth::Grant;
use rand::RngCore;

use crate::config::{Config, TokenScope};

pub const BOOTSTRAP_TOKEN_FILE: &str = "admin-token.sha256";
pub const BOOTSTRAP_TOKEN_NAME: &str = "bootstrap-admin";

/// Build the token set. When no admin or read token is configured, an admin token is
/// generated on first start: returned once (the caller prints it), only its SHA-256
/// is stored in `state_dir/admin-token.sha256`.
pub fn build(cfg: &Config) -> Result<(api::TokenSet, Option<String>)> {
    let mut csrf = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut csrf);
    let mut set = api::TokenSet::new(csrf);
    for t in &cfg.webui.tokens {
        let grant = match t.scope {
            TokenScope::Admin => Grant::Admin,
            TokenScope::Read => Grant::Read,
        };
        set.add_plain(&t.name, &t.token, grant);
    }
    if !cfg.webui.auth_token.is_empty() {
        set.add_plain("legacy-auth-token", &cfg.webui.auth_token, Grant::Admin);
    }
    let configured = !set.is_empty();
    if !cfg.webui.metrics_token.is_empty() {
        set.add_plain("metrics", &cfg.webui.metrics_token, Grant::Metrics);
    }
    if configured {
        return Ok((set, None));
    }
    let (digest, fresh) = bootstrap_digest(&cfg.state_dir)?;
    set.add_digest(BOOTSTRAP_TOKEN_NAME, digest, Grant::Admin);
    Ok((set, fresh))
}

fn bootstrap_digest(state_dir: &Path) -> Result<([u8; 32], Option<String>)> {
    let path = state_dir.join(BOOTSTRAP_TOKEN_FILE);
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let bytes =
            hex::decode(text.trim()).with_context(|| format!("{} is not hex", path.display()))?;
        let digest: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} is not a SHA-256 digest", path.display()))?;
        return Ok((digest, None));
    }
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let token = hex::encode(raw);
    let digest = api::auth::digest(&token);
    super::tls::write_private(&path, hex::encode(digest).as_bytes())?;
    Ok((digest, Some(token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_and_keeps_only_the_digest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = Config::embedded().expect("cfg");
        cfg.state_dir = dir.path().to_path_buf();
        let (_, first) = build(&cfg).expect("build");
        let token = first.expect("a token on first start");
        let stored =
            std::fs::read_to_string(dir.path().join(BOOTSTRAP_TOKEN_FILE)).expect("digest file");
        assert!(!stored.contains(&token), "the raw token must not be stored");
        let (set, second) = build(&cfg).expect("rebuild");
        assert!(second.is_none(), "the token is shown only once");
        let mut h = warp_headers(&token);
        assert!(set.authorize(&api_method(), &h, api::Scope::Admin).is_ok());
        h = warp_headers("wrong");
        assert!(set.authorize(&api_method(), &h, api::Scope::Admin).is_err());
    }

    fn api_method() -> warp::http::Method {
        warp::http::Method::POST
    }
    fn warp_headers(token: &str) -> warp::http::HeaderMap {
        let mut h = warp::http::HeaderMap::new();
        h.insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        h
    }
}
