// SPDX-License-Identifier: GPL-2.0-only
//! Charon's Cerberus switch over Rampart's enforcement. Enforcement is on unless an
//! operator turned it off, and then only for a bounded time (`firewall.
//! disable_max_secs` at most): the XDP program keeps evaluating every rule but drops
//! nothing (`monitored`), and the housekeeping tick turns it back on at the deadline,
//! also across restarts (the deadline is in the store).
//!
//! Turning it off takes an admin token and either a local client or a break-glass
//! token: one-time, stored only as its SHA-256, valid for [`TOKEN_TTL_SECS`]. Every
//! change is in the firewall audit log.

use std::sync::Arc;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{policy::to_json, Firewall, FirewallError, PolicyError, PolicyManager};
use crate::store::{now_rfc3339, now_unix, rfc3339_unix, Store, StoreError};

const KEY_OFF: &str = "cerberus.disabled";
const KEY_TOKEN: &str = "cerberus.break_glass";
const KEY_CONFIG: &str = "cerberus.config";
/// A break-glass token not used within this many seconds is void.
pub const TOKEN_TTL_SECS: i64 = 3600;
/// The firewall allow entries `admin_whitelist` owns.
const WHITELIST_SOURCE: &str = "cerberus";

#[derive(Debug, thiserror::Error)]
pub enum CerberusError {
    /// Not local and no (valid) break-glass token: 403.
    #[error("{0}")]
    Forbidden(String),
    /// A bad request body: 400.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    #[error("corrupt stored Cerberus state ({key}): {reason}")]
    Corrupt { key: &'static str, reason: String },
}

/// Enforcement is off until `until_unix`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Disabled {
    pub until_unix: i64,
    pub since: String,
    pub by: String,
    /// `break_glass` or `local`.
    pub via: String,
}

impl Disabled {
    pub fn until(&self) -> String {
        rfc3339_unix(self.until_unix)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
struct StoredToken {
    sha256: String,
    expires_unix: i64,
    by: String,
}

/// Charon's global security config, as Rampart keeps it. `enabled` is not stored:
/// it is the enforcement state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct SecurityConfig {
    pub name: String,
    /// Addresses and CIDRs (comma-separated) that bypass every drop rule: the
    /// firewall's allow entries of source `cerberus`.
    pub admin_whitelist: String,
    /// Only `disabled`: Rampart has no CrowdSec bouncer.
    pub crowdsec_mode: String,
    /// `disabled`, or `monitor`: ModSecurity's log is read and its blocks become
    /// findings. Rampart runs no WAF in the request path, so never `block`.
    pub waf_mode: String,
    pub waf_rules_source: String,
    pub updated_at: String,
}

pub const CROWDSEC_MODES: &[&str] = &["disabled"];
pub const WAF_MODES: &[&str] = &["disabled", "monitor"];

pub struct Cerberus {
    store: Store,
    policy: Arc<PolicyManager>,
    firewall: Arc<Firewall>,
    max_disable_secs: u64,
}

fn decode<T: serde::de::DeserializeOwned>(
    key: &'static str,
    s: Option<String>,
) -> Result<Option<T>, CerberusError> {
    s.map(|s| {
        serde_json::from_str(&s).map_err(|e| CerberusError::Corrupt {
            key,
            reason: e.to_string(),
        })
    })
    .transpose()
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

impl Cerberus {
    pub fn new(
        store: Store,
        policy: Arc<PolicyManager>,
        firewall: Arc<Firewall>,
        max_disable_secs: u64,
    ) -> Self {
        Self {
            store,
            policy,
            firewall,
            max_disable_secs,
        }
    }

    pub fn max_disable_secs(&self) -> u64 {
        self.max_disable_secs
    }

    /// Apply the stored state to the kernel at start (a deadline that passed while
    /// the agent was down turns enforcement back on first).
    pub async fn start(&self) -> Result<(), CerberusError> {
        self.tick().await?;
        let off = self.disabled().await?;
        if let Some(d) = &off {
            tracing::warn!(until = %d.until(), by = %d.by, "Enforcement stays off (Cerberus disabled) until its deadline.");
        }
        self.policy.set_monitor(off.is_some()).await?;
        Ok(())
    }

    /// Turn enforcement back on at the deadline. Returns true if it did.
    pub async fn tick(&self) -> Result<bool, CerberusError> {
        match self.disabled().await? {
            Some(d) if d.until_unix <= now_unix() => {
                self.enable("break_glass_timer").await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// None: enforcing.
    pub async fn disabled(&self) -> Result<Option<Disabled>, CerberusError> {
        decode(KEY_OFF, self.store.setting(KEY_OFF).await?)
    }

    /// A fresh break-glass token (any earlier one is void). Only its digest is kept.
    pub async fn generate_token(&self, actor: &str) -> Result<String, CerberusError> {
        let mut raw = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let token = hex::encode(raw);
        let stored = StoredToken {
            sha256: hex::encode(digest(&token)),
            expires_unix: now_unix() + TOKEN_TTL_SECS,
            by: actor.to_string(),
        };
        self.store
            .set_settings(vec![(KEY_TOKEN.into(), Some(to_json(&stored)))])
            .await?;
        self.store
            .audit(
                "break_glass_generate",
                "cerberus",
                actor,
                &format!("valid until {}", rfc3339_unix(stored.expires_unix)),
            )
            .await?;
        tracing::warn!(actor, "Break-glass token generated.");
        Ok(token)
    }

    /// Use the break-glass token: it is gone whether or not it matched, so a token
    /// can be guessed at most once.
    async fn consume_token(&self, token: &str) -> Result<bool, CerberusError> {
        let want = digest(token);
        let now = now_unix();
        let valid = self
            .store
            .update_setting(KEY_TOKEN, move |old| {
                // A corrupt stored token is no token.
                let stored = decode::<StoredToken>(KEY_TOKEN, old).ok().flatten();
                let valid = stored.is_some_and(|t| {
                    let kept = hex::decode(&t.sha256)
                        .ok()
                        .and_then(|d| <[u8; 32]>::try_from(d).ok());
                    t.expires_unix > now && kept.is_some_and(|d| api::auth::ct_eq(&d, &want))
                });
                Ok::<_, std::convert::Infallible>((None, valid))
            })
            .await?;
        let Ok(valid) = valid;
        Ok(valid)
    }

    /// Turn enforcement off for `duration` seconds (at most, and by default,
    /// `firewall.disable_max_secs`). `local`: the client connected from loopback.
    pub async fn disable(
        &self,
        actor: &str,
        token: Option<&str>,
        local: bool,
        duration: Option<u64>,
    ) -> Result<Disabled, CerberusError> {
        let secs = match duration {
            None => self.max_disable_secs,
            Some(d) if (1..=self.max_disable_secs).contains(&d) => d,
            Some(d) => {
                return Err(CerberusError::Invalid(format!(
                    "duration must be 1 to {} seconds (firewall.disable_max_secs), got {d}",
                    self.max_disable_secs
                )))
            }
        };
        let via = match token.filter(|t| !t.trim().is_empty()) {
            Some(t) => {
                if !self.consume_token(t).await? {
                    self.store
                        .audit(
                            "cerberus_disable_refused",
                            "cerberus",
                            actor,
                            "invalid break-glass token",
                        )
                        .await?;
                    return Err(CerberusError::Forbidden(
                        "invalid, used or expired break-glass token".into(),
                    ));
                }
                "break_glass"
            }
            None if local => "local",
            None => {
                return Err(CerberusError::Forbidden(
                    "break_glass_token required to disable enforcement from a remote client \
                     (POST /api/v1/security/breakglass/generate)"
                        .into(),
                ))
            }
        };
        let d = Disabled {
            until_unix: now_unix() + i64::try_from(secs).unwrap_or(86_400),
            since: now_rfc3339(),
            by: actor.to_string(),
            via: via.to_string(),
        };
        // Stored first: if the kernel write fails the timer still ends it.
        self.store
            .set_settings(vec![(KEY_OFF.into(), Some(to_json(&d)))])
            .await?;
        self.policy.set_monitor(true).await?;
        self.store
            .audit(
                "cerberus_disable",
                "cerberus",
                actor,
                &format!("enforcement off until {} (via {via})", d.until()),
            )
            .await?;
        tracing::warn!(actor, via, until = %d.until(), "Enforcement turned off (Cerberus disabled).");
        Ok(d)
    }

    pub async fn enable(&self, actor: &str) -> Result<(), CerberusError> {
        let was = self.disabled().await?;
        self.policy.set_monitor(false).await?;
        self.store
            .set_settings(vec![(KEY_OFF.into(), None)])
            .await?;
        if was.is_some() {
            self.store
                .audit("cerberus_enable", "cerberus", actor, "enforcement on")
                .await?;
            tracing::warn!(actor, "Enforcement turned back on (Cerberus enabled).");
        }
        Ok(())
    }

    pub async fn config(&self) -> Result<Option<SecurityConfig>, CerberusError> {
        decode(KEY_CONFIG, self.store.setting(KEY_CONFIG).await?)
    }

    /// Validate and store `cfg`; its `admin_whitelist` becomes the `cerberus` allow
    /// entries (all or nothing: a bad entry changes nothing).
    pub async fn set_config(
        &self,
        mut cfg: SecurityConfig,
        actor: &str,
    ) -> Result<SecurityConfig, CerberusError> {
        let pick = |field: &str, v: &mut String, allowed: &[&str], why: &str| {
            if v.is_empty() {
                *v = "disabled".into();
            }
            if allowed.contains(&v.as_str()) {
                Ok(())
            } else {
                Err(CerberusError::Invalid(format!(
                    "{field} must be one of {allowed:?}, got {v:?}: {why}"
                )))
            }
        };
        pick(
            "crowdsec_mode",
            &mut cfg.crowdsec_mode,
            CROWDSEC_MODES,
            "Rampart has no CrowdSec bouncer",
        )?;
        pick(
            "waf_mode",
            &mut cfg.waf_mode,
            WAF_MODES,
            "Rampart reads ModSecurity's log; it runs no WAF in the request path",
        )?;
        for (field, v, max) in [
            ("name", &cfg.name, 64),
            ("waf_rules_source", &cfg.waf_rules_source, 256),
            ("admin_whitelist", &cfg.admin_whitelist, 16 * 1024),
        ] {
            if v.len() > max || v.chars().any(char::is_control) {
                return Err(CerberusError::Invalid(format!(
                    "{field}: at most {max} bytes of printable text"
                )));
            }
        }
        let entries: Vec<String> = cfg
            .admin_whitelist
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .collect();
        for e in &entries {
            super::parse_target(e, false)
                .map_err(|err| CerberusError::Invalid(format!("admin_whitelist: {err}")))?;
        }
        cfg.admin_whitelist = entries.join(",");
        cfg.updated_at = now_rfc3339();
        self.firewall
            .sync_allows(WHITELIST_SOURCE, "cerberus admin_whitelist", &entries)
            .await?;
        self.store
            .set_settings(vec![(KEY_CONFIG.into(), Some(to_json(&cfg)))])
            .await?;
        self.store
            .audit("cerberus_config", "cerberus", actor, &to_json(&cfg))
            .await?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cerberus(dir: &std::path::Path) -> Cerberus {
        let store = Store::open(&dir.join("s.db"), 8).expect("store");
        let cfg = crate::config::Config::embedded().expect("cfg");
        let policy = Arc::new(PolicyManager::new(
            store.clone(),
            cfg.firewall.policy(),
            60,
            None,
        ));
        let fw = Arc::new(Firewall::new(None, store.clone(), Vec::new()));
        Cerberus::new(store, policy, fw, 600)
    }

    #[tokio::test]
    async fn remote_disable_needs_a_one_time_token() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = cerberus(dir.path());
        assert!(matches!(
            c.disable("op", None, false, None).await,
            Err(CerberusError::Forbidden(_))
        ));
        assert!(matches!(
            c.disable("op", Some("guess"), false, None).await,
            Err(CerberusError::Forbidden(_))
        ));
        let token = c.generate_token("op").await.expect("token");
        // A wrong guess voids the token: it cannot be brute-forced.
        assert!(c.disable("op", Some("wrong"), false, None).await.is_err());
        assert!(c.disable("op", Some(&token), false, None).await.is_err());
        let token = c.generate_token("op").await.expect("token");
        let d = c
            .disable("op", Some(&token), false, Some(30))
            .await
            .expect("disable");
        assert_eq!(d.via, "break_glass");
        assert!(d.until_unix - now_unix() <= 30);
        assert!(c.disabled().await.expect("state").is_some());
        // Used once.
        assert!(c.disable("op", Some(&token), false, None).await.is_err());
        c.enable("op").await.expect("enable");
        assert!(c.disabled().await.expect("state").is_none());
    }

    #[tokio::test]
    async fn a_disable_is_bounded_and_ends_by_itself() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = cerberus(dir.path());
        assert!(matches!(
            c.disable("op", None, true, Some(601)).await,
            Err(CerberusError::Invalid(_))
        ));
        let d = c.disable("op", None, true, None).await.expect("local");
        assert_eq!(d.via, "local");
        assert!(d.until_unix - now_unix() <= 600);
        assert!(!c.tick().await.expect("tick"), "not yet due");
        // Move the deadline into the past, as after a long agent downtime.
        let past = Disabled {
            until_unix: now_unix() - 1,
            ..d
        };
        c.store
            .set_settings(vec![(KEY_OFF.into(), Some(to_json(&past)))])
            .await
            .expect("set");
        assert!(c.tick().await.expect("tick"));
        assert!(c.disabled().await.expect("state").is_none());
        let audit = c.store.audit_log(10).await.expect("audit");
        assert!(audit
            .iter()
            .any(|a| a.action == "cerberus_enable" && a.actor == "break_glass_timer"));
    }

    #[tokio::test]
    async fn config_is_validated_and_whitelist_becomes_allow_entries() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = cerberus(dir.path());
        let bad = SecurityConfig {
            crowdsec_mode: "local".into(),
            ..Default::default()
        };
        assert!(matches!(
            c.set_config(bad, "op").await,
            Err(CerberusError::Invalid(m)) if m.contains("crowdsec_mode")
        ));
        let bad = SecurityConfig {
            admin_whitelist: "198.51.100.10, not-an-ip".into(),
            ..Default::default()
        };
        assert!(c.set_config(bad, "op").await.is_err());
        assert!(c.config().await.expect("cfg").is_none(), "nothing stored");
        let good = SecurityConfig {
            name: "default".into(),
            admin_whitelist: "198.51.100.10, 203.0.113.0/24".into(),
            waf_mode: "monitor".into(),
            ..Default::default()
        };
        let saved = c.set_config(good, "op").await.expect("set");
        assert_eq!(saved.admin_whitelist, "198.51.100.10,203.0.113.0/24");
        assert_eq!(saved.crowdsec_mode, "disabled");
        let allows = c
            .store
            .entries(crate::store::FwList::Allows)
            .await
            .expect("allows");
        let ips: Vec<&str> = allows.iter().map(|e| e.ip.as_str()).collect();
        assert!(
            ips.contains(&"198.51.100.10") && ips.contains(&"203.0.113.0/24"),
            "{ips:?}"
        );
        // A new whitelist replaces the old one.
        let next = SecurityConfig {
            admin_whitelist: "192.0.2.7".into(),
            ..saved
        };
        c.set_config(next, "op").await.expect("set");
        let allows = c
            .store
            .entries(crate::store::FwList::Allows)
            .await
            .expect("allows");
        assert_eq!(allows.len(), 1, "{allows:?}");
        assert_eq!(allows[0].ip, "192.0.2.7");
    }
}
