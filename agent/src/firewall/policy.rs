// SPDX-License-Identifier: GPL-2.0-only
//! Runtime firewall policy: the effective policy is the stored override (settings key
//! `firewall.policy`) or the config's. `tentative_apply` writes a new policy to the
//! kernel at once and arms a rollback deadline, persisted in the store, so an
//! unconfirmed change is reverted even across an agent restart.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::xdp::PolicyMaps;
use crate::{
    config::FirewallPolicy,
    kernel::LoaderError,
    store::{now_unix, rfc3339_unix, Store, StoreError},
};

const KEY_POLICY: &str = "firewall.policy";
const KEY_ROLLBACK: &str = "firewall.rollback";

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
    #[error("no tentative firewall change is pending")]
    NothingPending,
    #[error(
        "a tentative firewall change is already pending until {0}; confirm or revert it first"
    )]
    AlreadyPending(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Kernel(#[from] LoaderError),
    #[error("corrupt stored policy: {0}")]
    Corrupt(String),
}

/// A pending tentative change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Rollback {
    /// Policy to return to; None = the config's.
    pub previous: Option<FirewallPolicy>,
    pub proposed: FirewallPolicy,
    pub deadline_unix: i64,
    pub armed_at: String,
    /// Who applied it (absent in rollbacks stored before this field).
    #[serde(default)]
    pub applied_by: String,
}

/// How a tentative change is applied: its rollback timer (None: the configured
/// `firewall.tentative_timeout_secs`) and who applies it.
#[derive(Debug, Default)]
pub struct Tentative {
    pub timeout_secs: Option<u64>,
    pub actor: String,
}

/// A tentative policy as the API shows it: CSM's fields (csm-contract.md), then
/// Rampart's. Not pending: every CSM field is present and empty.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct RollbackView {
    pub pending: bool,
    pub applied_at: String,
    pub expires_at: String,
    pub seconds_remaining: i64,
    pub applied_by: String,
    /// Short SHA-256 of the policy before and after (the config's when no override).
    pub prev_hash: String,
    pub new_hash: String,
    pub armed_at: String,
    pub deadline: String,
    pub seconds_left: i64,
    pub proposed: Option<FirewallPolicy>,
    pub previous: Option<FirewallPolicy>,
}

impl RollbackView {
    /// Nothing pending.
    pub fn none() -> Self {
        Self {
            pending: false,
            applied_at: String::new(),
            expires_at: String::new(),
            seconds_remaining: 0,
            applied_by: String::new(),
            prev_hash: String::new(),
            new_hash: String::new(),
            armed_at: String::new(),
            deadline: String::new(),
            seconds_left: 0,
            proposed: None,
            previous: None,
        }
    }
}

/// A policy's identity for `prev_hash`/`new_hash`: the first 16 hex digits of the
/// SHA-256 of its JSON.
pub fn policy_hash(p: &FirewallPolicy) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(to_json(p).as_bytes()))[..16].to_string()
}

pub struct PolicyManager {
    store: Store,
    config_policy: FirewallPolicy,
    timeout_secs: u64,
    /// None for store-only tools; the agent always has the maps.
    maps: Option<Mutex<PolicyMaps>>,
}

fn decode<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, PolicyError> {
    serde_json::from_str(s).map_err(|e| PolicyError::Corrupt(e.to_string()))
}

impl PolicyManager {
    pub fn new(
        store: Store,
        config_policy: FirewallPolicy,
        timeout_secs: u64,
        maps: Option<PolicyMaps>,
    ) -> Self {
        Self {
            store,
            config_policy,
            timeout_secs,
            maps: maps.map(Mutex::new),
        }
    }

    fn write_kernel(&self, p: &FirewallPolicy) -> Result<(), PolicyError> {
        if let Some(m) = &self.maps {
            let mut g = match m.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            g.apply(p)?;
        }
        Ok(())
    }

    /// Turn enforcement off (`true`: every rule evaluated, nothing dropped) or back
    /// on, and write the effective policy with it.
    pub async fn set_monitor(&self, monitor: bool) -> Result<(), PolicyError> {
        let p = self.current().await?;
        if let Some(m) = &self.maps {
            let mut g = match m.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            g.monitor = monitor;
            g.apply(&p)?;
        }
        Ok(())
    }

    /// The stored override, if any.
    async fn stored_override(&self) -> Result<Option<FirewallPolicy>, PolicyError> {
        self.store
            .setting(KEY_POLICY)
            .await?
            .map(|s| decode(&s))
            .transpose()
    }

    pub async fn current(&self) -> Result<FirewallPolicy, PolicyError> {
        Ok(self
            .stored_override()
            .await?
            .unwrap_or_else(|| self.config_policy.clone()))
    }

    /// The pending rollback as the API shows it (every field empty when none).
    pub async fn rollback_view(&self) -> Result<RollbackView, PolicyError> {
        Ok(self
            .pending()
            .await?
            .map_or_else(RollbackView::none, |r| self.view_of(&r)))
    }

    pub fn view_of(&self, r: &Rollback) -> RollbackView {
        r.view(&self.config_policy)
    }

    pub async fn pending(&self) -> Result<Option<Rollback>, PolicyError> {
        self.store
            .setting(KEY_ROLLBACK)
            .await?
            .map(|s| decode(&s))
            .transpose()
    }

    /// Apply the effective policy to the kernel at start; revert an expired
    /// tentative change first (the agent may have been down past its deadline).
    pub async fn start(&self) -> Result<(), PolicyError> {
        self.tick().await?;
        let p = self.current().await?;
        self.write_kernel(&p)
    }

    /// Merge `changes` (a JSON object of policy keys) onto the current policy,
    /// validate, write it to the kernel, and arm the rollback deadline.
    pub async fn tentative_apply(
        &self,
        changes: serde_json::Value,
        how: Tentative,
    ) -> Result<Rollback, PolicyError> {
        if let Some(p) = self.pending().await? {
            return Err(PolicyError::AlreadyPending(rfc3339_unix(p.deadline_unix)));
        }
        let current = self.current().await?;
        let mut merged =
            serde_json::to_value(&current).map_err(|e| PolicyError::Corrupt(e.to_string()))?;
        let serde_json::Value::Object(changes) = changes else {
            return Err(PolicyError::Invalid {
                key: "body".into(),
                reason: "must be a JSON object of firewall policy keys".into(),
            });
        };
        if let serde_json::Value::Object(m) = &mut merged {
            for (k, v) in changes {
                m.insert(k, v);
            }
        }
        let proposed: FirewallPolicy =
            serde_path_to_error::deserialize(merged).map_err(|e| PolicyError::Invalid {
                key: e.path().to_string(),
                reason: e.inner().to_string(),
            })?;
        proposed
            .validate("")
            .map_err(|(key, reason)| PolicyError::Invalid { key, reason })?;
        let rb = Rollback {
            previous: self.stored_override().await?,
            proposed: proposed.clone(),
            deadline_unix: now_unix()
                + i64::try_from(how.timeout_secs.unwrap_or(self.timeout_secs))
                    .unwrap_or(i64::MAX / 2),
            armed_at: crate::store::now_rfc3339(),
            applied_by: how.actor,
        };
        // Persist first: if we die right after writing the kernel, start() reverts.
        self.store
            .set_settings(vec![
                (KEY_ROLLBACK.into(), Some(to_json(&rb))),
                (KEY_POLICY.into(), Some(to_json(&proposed))),
            ])
            .await?;
        self.write_kernel(&proposed)?;
        self.store
            .audit(
                "policy_tentative_apply",
                "firewall",
                "api",
                &to_json(&proposed),
            )
            .await?;
        Ok(rb)
    }

    pub async fn confirm(&self) -> Result<FirewallPolicy, PolicyError> {
        let rb = self.pending().await?.ok_or(PolicyError::NothingPending)?;
        self.store
            .set_settings(vec![(KEY_ROLLBACK.into(), None)])
            .await?;
        self.store
            .audit("policy_confirm", "firewall", "api", "")
            .await?;
        Ok(rb.proposed)
    }

    /// Return to the policy before the tentative change.
    pub async fn revert(&self, actor: &str) -> Result<FirewallPolicy, PolicyError> {
        let rb = self.pending().await?.ok_or(PolicyError::NothingPending)?;
        let prev = rb.previous.as_ref().map(to_json);
        self.store
            .set_settings(vec![(KEY_POLICY.into(), prev), (KEY_ROLLBACK.into(), None)])
            .await?;
        let back = rb.previous.unwrap_or_else(|| self.config_policy.clone());
        self.write_kernel(&back)?;
        self.store
            .audit("policy_revert", "firewall", actor, "")
            .await?;
        tracing::warn!(actor, "Tentative firewall policy reverted.");
        Ok(back)
    }

    /// Revert when the deadline has passed. Returns true if it reverted.
    pub async fn tick(&self) -> Result<bool, PolicyError> {
        match self.pending().await? {
            Some(rb) if rb.deadline_unix <= now_unix() => {
                self.revert("rollback_timer").await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// JSON for the store. These plain structs always serialize.
pub(super) fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

impl Rollback {
    /// What the API shows of a pending rollback.
    /// `config_policy`: what `previous: None` stands for.
    pub fn view(&self, config_policy: &FirewallPolicy) -> RollbackView {
        let left = (self.deadline_unix - now_unix()).max(0);
        let deadline = rfc3339_unix(self.deadline_unix);
        RollbackView {
            pending: true,
            applied_at: self.armed_at.clone(),
            expires_at: deadline.clone(),
            seconds_remaining: left,
            applied_by: self.applied_by.clone(),
            prev_hash: policy_hash(self.previous.as_ref().unwrap_or(config_policy)),
            new_hash: policy_hash(&self.proposed),
            armed_at: self.armed_at.clone(),
            deadline,
            seconds_left: left,
            proposed: Some(self.proposed.clone()),
            previous: self.previous.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn mgr(dir: &std::path::Path, timeout: u64) -> PolicyManager {
        let store = Store::open(&dir.join("s.db"), 8).expect("store");
        PolicyManager::new(
            store,
            Config::embedded().expect("cfg").firewall.policy(),
            timeout,
            None,
        )
    }

    #[tokio::test]
    async fn apply_confirm_keeps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = mgr(dir.path(), 60);
        let rb = m
            .tentative_apply(
                serde_json::json!({"rate_limit": {"pps": 100, "burst": 200}}),
                Tentative::default(),
            )
            .await
            .expect("apply");
        assert_eq!(rb.proposed.rate_limit.pps, 100);
        assert!(matches!(
            m.tentative_apply(serde_json::json!({}), Tentative::default())
                .await,
            Err(PolicyError::AlreadyPending(_))
        ));
        m.confirm().await.expect("confirm");
        assert!(m.pending().await.expect("pending").is_none());
        assert!(!m.tick().await.expect("tick"));
        assert_eq!(m.current().await.expect("current").rate_limit.pps, 100);
        assert!(matches!(
            m.confirm().await,
            Err(PolicyError::NothingPending)
        ));
    }

    #[tokio::test]
    async fn unconfirmed_reverts_at_deadline_also_after_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let m = mgr(dir.path(), 0);
            m.tentative_apply(
                serde_json::json!({"tcp_in": [22, "80-81"]}),
                Tentative::default(),
            )
            .await
            .expect("apply");
            assert_eq!(m.current().await.expect("current").tcp_in.len(), 2);
            // The agent "dies" here, before any tick.
        }
        let m = mgr(dir.path(), 0);
        m.start().await.expect("start reverts the expired change");
        assert!(m.pending().await.expect("pending").is_none());
        assert!(m.current().await.expect("current").tcp_in.is_empty());
        let audit = m.store.audit_log(5).await.expect("audit");
        assert_eq!(audit[0].action, "policy_revert");
        assert_eq!(audit[0].actor, "rollback_timer");
    }

    #[tokio::test]
    async fn invalid_changes_name_the_key_and_change_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = mgr(dir.path(), 60);
        for (body, key) in [
            (
                serde_json::json!({"rate_limit": {"pps": 5, "burst": 0}}),
                "rate_limit.burst",
            ),
            (serde_json::json!({"tcp_in": ["99999"]}), "tcp_in"),
            (serde_json::json!({"bogus": 1}), "bogus"),
            (serde_json::json!([1, 2]), "body"),
        ] {
            match m.tentative_apply(body.clone(), Tentative::default()).await {
                Err(PolicyError::Invalid { key: k, .. }) => {
                    assert!(k.contains(key) || key == "bogus", "{body}: {k}")
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        assert!(m.pending().await.expect("pending").is_none());
        assert_eq!(
            m.current().await.expect("current"),
            Config::embedded().expect("cfg").firewall.policy()
        );
    }
}
