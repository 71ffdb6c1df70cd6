// SPDX-License-Identifier: GPL-2.0-only
//! `/export` and `/import`: the operator's own state (suppressions, the whitelist)
//! as a bundle that round-trips between hosts. An import is checked whole before
//! anything is applied.

use api::{
    model::{StateBundle, SuppressionItem, WhitelistItem, STATE_FORMAT, STATE_VERSION},
    ApiError,
};
use serde::Serialize;

use super::{fw_err, ok, store_err, AgentBackend, Reply};
use crate::{
    firewall::{canonical, parse_target},
    store::{now_unix, FwList, Suppression},
};

/// `POST /import`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Imported {
    pub status: &'static str,
    /// Added (entries the host had already are kept as they are).
    pub suppressions: usize,
    pub whitelist: usize,
    /// Already present, or expired since the export.
    pub skipped: usize,
}

fn same(a: &Suppression, b: &Suppression) -> bool {
    (&a.check, &a.path_glob, &a.account, &a.ip) == (&b.check, &b.path_glob, &b.account, &b.ip)
}

/// Seconds an allow has left: None for permanent, Err for a bad time, Ok(Some(0))
/// when it has expired.
fn remaining(expires_at: &str) -> Result<Option<u64>, String> {
    if expires_at.is_empty() {
        return Ok(None);
    }
    let t = time::OffsetDateTime::parse(expires_at, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("expires_at {expires_at:?}: {e}"))?;
    Ok(Some(
        u64::try_from(t.unix_timestamp() - now_unix()).unwrap_or(0),
    ))
}

impl AgentBackend {
    pub(super) async fn export_state(&self) -> Result<Reply, ApiError> {
        let suppressions = self
            .store
            .suppressions()
            .await
            .map_err(store_err)?
            .into_iter()
            .map(|s| SuppressionItem {
                check: s.check,
                path_glob: s.path_glob,
                account: s.account,
                ip: s.ip,
                reason: s.reason,
            })
            .collect();
        let whitelist = self
            .store
            .entries(FwList::Allows)
            .await
            .map_err(store_err)?
            .into_iter()
            .map(|e| WhitelistItem {
                ip: e.ip,
                reason: e.reason,
                expires_at: e.expires_at.unwrap_or_default(),
            })
            .collect();
        ok(&StateBundle {
            format: STATE_FORMAT.into(),
            version: STATE_VERSION,
            exported_at: crate::store::now_rfc3339(),
            host: crate::kernel::hostname().unwrap_or_default(),
            suppressions,
            whitelist,
        })
    }

    pub(super) async fn import_state(
        &self,
        b: StateBundle,
        actor: &str,
    ) -> Result<Reply, ApiError> {
        // Everything is checked before anything is written.
        let mut rules = Vec::with_capacity(b.suppressions.len());
        for (i, s) in b.suppressions.into_iter().enumerate() {
            let nonempty = |o: Option<String>| o.filter(|v| !v.trim().is_empty());
            let rule = Suppression {
                id: 0,
                check: nonempty(s.check),
                path_glob: nonempty(s.path_glob),
                account: nonempty(s.account),
                ip: nonempty(s.ip),
                reason: s.reason,
                created_at: crate::store::now_rfc3339(),
                created_by: actor.to_string(),
                hits: 0,
            };
            crate::findings::validate(&rule)
                .map_err(|e| ApiError::unprocessable(format!("suppressions[{i}]: {e}")))?;
            rules.push(rule);
        }
        let mut allows = Vec::with_capacity(b.whitelist.len());
        for (i, w) in b.whitelist.into_iter().enumerate() {
            let net = parse_target(&w.ip, false)
                .map_err(|e| ApiError::unprocessable(format!("whitelist[{i}]: {e}")))?;
            let left = remaining(&w.expires_at)
                .map_err(|e| ApiError::unprocessable(format!("whitelist[{i}]: {e}")))?;
            allows.push((canonical(&net), w.reason, left));
        }
        let mut skipped = 0;
        let existing = self.store.suppressions().await.map_err(store_err)?;
        let mut added_rules = 0;
        for rule in rules {
            if existing.iter().any(|e| same(e, &rule)) {
                skipped += 1;
                continue;
            }
            self.store.add_suppression(rule).await.map_err(store_err)?;
            added_rules += 1;
        }
        if added_rules > 0 {
            self.detection
                .findings
                .reload_suppressions()
                .await
                .map_err(store_err)?;
        }
        let have: Vec<String> = self
            .store
            .entries(FwList::Allows)
            .await
            .map_err(store_err)?
            .into_iter()
            .map(|e| e.ip)
            .collect();
        let mut added_allows = 0;
        for (ip, reason, left) in allows {
            if have.contains(&ip) || left == Some(0) {
                skipped += 1;
                continue;
            }
            self.firewall
                .add(FwList::Allows, &ip, &reason, "import", left, false, actor)
                .await
                .map_err(fw_err)?;
            added_allows += 1;
        }
        self.audit(
            actor,
            "import",
            "state",
            &format!("{added_rules} suppressions, {added_allows} allows, {skipped} skipped"),
            None,
        )
        .await;
        ok(&Imported {
            status: "imported",
            suppressions: added_rules,
            whitelist: added_allows,
            skipped,
        })
    }
}
