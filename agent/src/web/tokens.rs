// SPDX-License-Identifier: GPL-2.0-only
//! API credentials: configured tokens, plus a generated admin token when none exist.

use std::path::Path;

use anyhow::{Context, Result};
use api::auth::Grant;
use rand::RngCore;

use crate::{
    config::{Config, TokenScope},
    store::Store,
};

pub const BOOTSTRAP_TOKEN_FILE: &str = "admin-token.sha256";
pub const BOOTSTRAP_TOKEN_NAME: &str = "bootstrap-admin";
/// The admin credential of the local CLI (`rampart status`): made anew at every
/// start, readable only by root in the state directory, gone with the agent.
pub const LOCAL_TOKEN_FILE: &str = "cli-admin.token";
pub const LOCAL_TOKEN_NAME: &str = "local-cli";
/// Names the agent gives its own credentials; no minted token may take one.
pub const RESERVED_NAMES: &[&str] = &[
    BOOTSTRAP_TOKEN_NAME,
    LOCAL_TOKEN_NAME,
    "legacy-auth-token",
    "metrics",
];
/// How often the minted tokens are re-read from the store.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The scope a minted token's `scope` column names.
pub fn grant_of(scope: &str) -> Option<Grant> {
    match scope {
        "admin" => Some(Grant::Admin),
        "read" => Some(Grant::Read),
        "metrics" => Some(Grant::Metrics),
        _ => None,
    }
}

/// A fresh random token (256 bits, hex).
pub fn random_token() -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    hex::encode(raw)
}

/// The minted tokens from the store, as the token set takes them. A row that does
/// not parse is skipped and named: it grants nothing.
async fn minted(store: &Store) -> Result<Vec<(String, [u8; 32], Grant)>> {
    let rows = store.tokens().await.context("reading the minted tokens")?;
    let mut out = Vec::with_capacity(rows.len());
    for t in rows {
        let digest = hex::decode(&t.sha256)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok());
        match (digest, grant_of(&t.scope)) {
            (Some(d), Some(g)) => out.push((t.name, d, g)),
            _ => {
                tracing::warn!(name = %t.name, scope = %t.scope, "A stored API token does not parse; it grants nothing.")
            }
        }
    }
    Ok(out)
}

/// Keep the token set's minted tokens equal to the store's, so `rampart token
/// create|revoke` take effect within a second, without a restart.
pub async fn follow<B: api::Backend>(
    state: std::sync::Arc<api::ApiState<B>>,
    store: Store,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let mut tick = tokio::time::interval(FOLLOW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<Vec<(String, [u8; 32], Grant)>> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return Ok(()),
        }
        let now = minted(&store).await?;
        if last.as_ref() != Some(&now) {
            let names: Vec<&str> = now.iter().map(|(n, _, _)| n.as_str()).collect();
            tracing::info!(tokens = ?names, "Minted API tokens in force.");
            state.tokens.replace_dynamic(now.clone());
            last = Some(now);
        }
    }
}

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
    let local = random_token();
    super::tls::write_private(&cfg.state_dir.join(LOCAL_TOKEN_FILE), local.as_bytes())?;
    set.add_plain(LOCAL_TOKEN_NAME, &local, Grant::Admin);
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
    let token = random_token();
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
