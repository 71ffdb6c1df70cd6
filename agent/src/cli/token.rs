// SPDX-License-Identifier: GPL-2.0-only
//! `rampart token create|list|revoke`: API tokens minted without touching the config.
//! The token is printed once; the store keeps its SHA-256, and a running agent
//! takes it up (or drops a revoked one, with its login sessions) within a second.

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};

use super::Outcome;
use crate::{
    config::{Config, TokenScope},
    store::Store,
    web::tokens::{random_token, RESERVED_NAMES},
};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Scope {
    /// Every read route (dashboards, panels).
    Read,
    /// Everything, writes included.
    Admin,
    /// `/metrics` only (Prometheus).
    Metrics,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Admin => "admin",
            Self::Metrics => "metrics",
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Mint a token: printed once on stdout, only its SHA-256 is kept.
    Create {
        /// A name to know it by (letters, digits, `.`, `_`, `-`; at most 64).
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        scope: Scope,
    },
    /// The tokens in force: from the config and minted here (never the tokens).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a minted token; its login sessions end with it.
    Revoke { name: String },
}

#[derive(serde::Serialize, schemars::JsonSchema)]
struct Listed {
    name: String,
    scope: String,
    /// `config` (webui.tokens, edit the file to change it) or `minted`.
    source: &'static str,
    /// First 12 hex digits of the SHA-256, to tell tokens apart.
    sha256_prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
}

fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!(
            "token name {name:?} must be 1 to 64 characters long"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "token name {name:?} may hold only letters, digits, '.', '_' and '-'"
        ));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(format!("token name {name:?} is the agent's own"));
    }
    Ok(())
}

fn config_listed(cfg: &Config) -> Vec<Listed> {
    let prefix = |t: &str| hex::encode(api::auth::digest(t))[..12].to_string();
    let mut out: Vec<Listed> = cfg
        .webui
        .tokens
        .iter()
        .map(|t| Listed {
            name: t.name.clone(),
            scope: match t.scope {
                TokenScope::Admin => "admin",
                TokenScope::Read => "read",
            }
            .into(),
            source: "config",
            sha256_prefix: prefix(&t.token),
            created_at: None,
        })
        .collect();
    for (name, token, scope) in [
        ("legacy-auth-token", &cfg.webui.auth_token, "admin"),
        ("metrics", &cfg.webui.metrics_token, "metrics"),
    ] {
        if !token.is_empty() {
            out.push(Listed {
                name: name.into(),
                scope: scope.into(),
                source: "config",
                sha256_prefix: prefix(token),
                created_at: None,
            });
        }
    }
    out
}

pub async fn token(cfg: &Config, cmd: TokenCmd) -> Result<Outcome> {
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("creating {}", cfg.state_dir.display()))?;
    let store = Store::open(&cfg.state_dir.join("rampart.db"), 8).context("opening the store")?;
    let from_config = config_listed(cfg);
    match cmd {
        TokenCmd::Create { name, scope } => {
            if let Err(why) = valid_name(&name) {
                return Ok(Outcome::BadInput(why));
            }
            if from_config.iter().any(|t| t.name == name) {
                return Ok(Outcome::BadInput(format!(
                    "a token named {name:?} is in the config file already"
                )));
            }
            let token = random_token();
            let sha = hex::encode(api::auth::digest(&token));
            if !store.token_insert(&name, &sha, scope.as_str()).await? {
                return Ok(Outcome::BadInput(format!(
                    "a token named {name:?} exists; revoke it first"
                )));
            }
            store
                .ui_audit("cli", "token_create", &name, scope.as_str(), None)
                .await?;
            // The token alone on stdout (for scripts); the rest on stderr.
            println!("{token}");
            eprintln!(
                "Minted {} token {name:?}. It is shown this once; only its SHA-256 is kept. A running agent accepts it within a second.",
                scope.as_str()
            );
        }
        TokenCmd::List { json } => {
            let mut all = from_config;
            all.extend(store.tokens().await?.into_iter().map(|t| Listed {
                sha256_prefix: t.sha256.chars().take(12).collect(),
                name: t.name,
                scope: t.scope,
                source: "minted",
                created_at: Some(t.created_at),
            }));
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                println!(
                    "{:<24} {:<8} {:<7} {:<13} CREATED",
                    "NAME", "SCOPE", "SOURCE", "SHA256"
                );
                for t in &all {
                    println!(
                        "{:<24} {:<8} {:<7} {:<13} {}",
                        t.name,
                        t.scope,
                        t.source,
                        t.sha256_prefix,
                        t.created_at.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        TokenCmd::Revoke { name } => {
            if from_config.iter().any(|t| t.name == name) {
                return Ok(Outcome::BadInput(format!(
                    "{name:?} is defined in the config file; remove it there and restart the agent"
                )));
            }
            match store.token_revoke(&name).await? {
                Some(t) => {
                    store
                        .ui_audit("cli", "token_revoke", &name, &t.scope, None)
                        .await?;
                    println!(
                        "revoked {name:?} ({}); a running agent drops it within a second",
                        t.scope
                    );
                }
                None => return Ok(Outcome::BadInput(format!("no minted token named {name:?}"))),
            }
        }
    }
    store.flush().await.context("flushing the store")?;
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_and_not_the_agents_own() {
        assert!(valid_name("grafana-prod_1.x").is_ok());
        for bad in [
            "",
            "a b",
            "a/b",
            "ü",
            "local-cli",
            "bootstrap-admin",
            &"x".repeat(65),
        ] {
            assert!(valid_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
