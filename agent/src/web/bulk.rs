// SPDX-License-Identifier: GPL-2.0-only
//! Bulk actions and their undo (csm-api.md "Bulk-action undo"): `/threat/bulk-action`,
//! `/unblock-bulk`'s inverse, `/undo/pending` and `/undo/run`, with their response
//! types. The pending entries themselves live in [`super::undo`].

use api::{model::BulkActionRequest, ApiError};
use serde::Serialize;
use warp::http::StatusCode;

use super::{
    ok, store_err,
    undo::{Item, Pending, PendingView},
    AgentBackend, Reply,
};
use crate::store::{now_unix, FwList};

/// `POST /threat/bulk-action`: CSM's `ok`, `count`, `undo_token`, then Rampart's.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct BulkResult {
    /// Every address succeeded.
    pub ok: bool,
    /// Addresses the action succeeded for.
    pub count: usize,
    /// For `POST /undo/run` within 30 s; "" for clear, and when nothing changed.
    pub undo_token: String,
    pub status: &'static str,
    pub action: String,
    pub succeeded: Vec<String>,
    pub failed: Vec<BulkFailure>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct BulkFailure {
    pub ip: String,
    pub error: String,
}

impl BulkFailure {
    fn new(ip: &str, error: impl ToString) -> Self {
        Self {
            ip: ip.to_string(),
            error: error.to_string(),
        }
    }
}

/// `POST /undo/run`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct UndoDone {
    pub status: &'static str,
    pub action: &'static str,
    pub inverse: &'static str,
    pub count: usize,
}

/// `GET /undo/pending` when nothing is pending: an empty object.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct NothingPending {}

fn remaining(expires_at: Option<&str>) -> Option<u64> {
    let t =
        time::OffsetDateTime::parse(expires_at?, &time::format_description::well_known::Rfc3339)
            .ok()?;
    Some(
        u64::try_from(t.unix_timestamp() - now_unix())
            .unwrap_or(0)
            .max(1),
    )
}

impl AgentBackend {
    /// The entries of `list` among `ips` as they are now (for an undo to restore).
    async fn snapshot(&self, list: FwList, ips: &[String]) -> Result<Vec<Item>, ApiError> {
        let canon: Vec<String> = ips
            .iter()
            .filter_map(|i| crate::firewall::parse_target(i, true).ok())
            .map(|n| crate::firewall::canonical(&n))
            .collect();
        let all = self
            .firewall
            .entries(list)
            .await
            .map_err(|e| ApiError::internal("firewall", &e))?;
        Ok(all
            .into_iter()
            .filter(|e| canon.contains(&e.ip))
            .map(|e| Item {
                remaining: remaining(e.expires_at.as_deref()),
                ip: e.ip,
                reason: e.reason,
                source: e.source,
            })
            .collect())
    }

    /// Put entries (back) on a list as they were (reason, source, time left);
    /// returns how many landed. The audit log says it was an undo.
    async fn restore(&self, list: FwList, items: &[Item], actor: &str) -> usize {
        let mut n = 0;
        for it in items {
            let source = if it.source.is_empty() {
                "undo"
            } else {
                &it.source
            };
            match self
                .firewall
                .add(list, &it.ip, &it.reason, source, it.remaining, false, actor)
                .await
            {
                Ok(_) => n += 1,
                Err(e) => {
                    tracing::warn!(ip = %it.ip, error = %e, "Undo could not restore an entry.")
                }
            }
        }
        n
    }

    /// Record the inverse of a bulk firewall unblock (`POST /unblock-bulk`).
    pub(crate) fn record_unblock_undo(&self, actor: &str, removed: Vec<Item>) -> Option<String> {
        (!removed.is_empty()).then(|| {
            let summary = format!(
                "Unblocked {} IP{}",
                removed.len(),
                if removed.len() == 1 { "" } else { "s" }
            );
            self.undo.record(
                actor,
                "firewall_bulk_unblock",
                "firewall_bulk_reblock",
                summary,
                removed,
            )
        })
    }

    pub(crate) async fn snapshot_blocks(&self, ips: &[String]) -> Result<Vec<Item>, ApiError> {
        self.snapshot(FwList::Blocks, ips).await
    }

    pub(super) async fn threat_bulk(
        &self,
        r: BulkActionRequest,
        actor: &str,
    ) -> Result<Reply, ApiError> {
        let mut ok_ips = Vec::new();
        let mut failed = Vec::new();
        let reason = if r.reason.trim().is_empty() {
            "threat bulk action".to_string()
        } else {
            r.reason.clone()
        };
        let duration = r.duration.filter(|d| *d > 0);
        let (action, inverse, verb): (&'static str, Option<&'static str>, &str) =
            match r.action.as_str() {
                "block" => ("threat_bulk_block", Some("threat_bulk_unblock"), "Blocked"),
                "unblock" => (
                    "threat_bulk_unblock",
                    Some("threat_bulk_block"),
                    "Unblocked",
                ),
                "whitelist" => (
                    "threat_bulk_whitelist",
                    Some("threat_bulk_unwhitelist"),
                    "Whitelisted",
                ),
                "unwhitelist" => (
                    "threat_bulk_unwhitelist",
                    Some("threat_bulk_whitelist"),
                    "Unwhitelisted",
                ),
                _ => ("threat_bulk_clear", None, "Cleared"),
            };
        let mut undo_items = Vec::new();
        match r.action.as_str() {
            "block" | "whitelist" => {
                let list = if r.action == "block" {
                    FwList::Blocks
                } else {
                    FwList::Allows
                };
                for ip in &r.ips {
                    match self
                        .firewall
                        .add(list, ip, &reason, "threat", duration, false, actor)
                        .await
                    {
                        Ok(e) => {
                            undo_items.push(Item {
                                ip: e.ip.clone(),
                                reason: e.reason,
                                source: e.source,
                                remaining: None,
                            });
                            ok_ips.push(e.ip);
                        }
                        Err(e) => failed.push(BulkFailure::new(ip, e)),
                    }
                }
            }
            "unblock" | "unwhitelist" => {
                let list = if r.action == "unblock" {
                    FwList::Blocks
                } else {
                    FwList::Allows
                };
                // One read of the list for the undo; then each address alone, so one
                // bad entry does not fail the rest.
                let mut before = self.snapshot(list, &r.ips).await?;
                for ip in &r.ips {
                    match self
                        .firewall
                        .remove(list, std::slice::from_ref(ip), actor)
                        .await
                    {
                        Ok(gone) if !gone.is_empty() => {
                            let (mine, rest) = std::mem::take(&mut before)
                                .into_iter()
                                .partition::<Vec<_>, _>(|i| gone.contains(&i.ip));
                            before = rest;
                            undo_items.extend(mine);
                            ok_ips.extend(gone);
                        }
                        Ok(_) => failed.push(BulkFailure::new(ip, "not listed")),
                        Err(e) => failed.push(BulkFailure::new(ip, e)),
                    }
                }
            }
            _ => {
                for ip in &r.ips {
                    match crate::firewall::parse_target(ip, false) {
                        Ok(n) => {
                            let ip = crate::firewall::canonical(&n);
                            match self.store.clear_threat_ip(ip.clone()).await {
                                Ok(_) => ok_ips.push(ip),
                                Err(e) => failed.push(BulkFailure::new(&ip, e)),
                            }
                        }
                        Err(e) => failed.push(BulkFailure::new(ip, e)),
                    }
                }
            }
        }
        self.audit(
            actor,
            action,
            &ok_ips.join(","),
            &format!("{} ok, {} failed; {reason}", ok_ips.len(), failed.len()),
            None,
        )
        .await;
        let undo_token = match (inverse, undo_items.is_empty()) {
            (Some(inverse), false) => {
                let n = undo_items.len();
                let summary = format!("{verb} {n} IP{}", if n == 1 { "" } else { "s" });
                Some(
                    self.undo
                        .record(actor, action, inverse, summary, undo_items),
                )
            }
            _ => None,
        };
        ok(&BulkResult {
            ok: failed.is_empty(),
            count: ok_ips.len(),
            undo_token: undo_token.unwrap_or_default(),
            status: "ok",
            action: r.action,
            succeeded: ok_ips,
            failed,
        })
    }

    async fn run_undo(&self, p: Pending, actor: &str) -> Result<Reply, ApiError> {
        if p.inverse == "findings_undismiss" {
            let back = self
                .store
                .undismiss(p.findings.clone(), actor.to_string())
                .await
                .map_err(store_err)?;
            for id in &back {
                self.audit(actor, "undo_dismiss", &id.to_string(), "", Some(*id))
                    .await;
            }
            return ok(&UndoDone {
                status: "ok",
                action: p.action,
                inverse: p.inverse,
                count: back.len(),
            });
        }
        let ips: Vec<String> = p.items.iter().map(|i| i.ip.clone()).collect();
        let count = match p.inverse {
            "threat_bulk_unblock" | "threat_bulk_unwhitelist" => {
                let list = if p.inverse == "threat_bulk_unblock" {
                    FwList::Blocks
                } else {
                    FwList::Allows
                };
                self.firewall
                    .remove(list, &ips, actor)
                    .await
                    .map_err(|e| ApiError::internal("firewall", &e))?
                    .len()
            }
            "threat_bulk_block" | "firewall_bulk_reblock" => {
                self.restore(FwList::Blocks, &p.items, actor).await
            }
            "threat_bulk_whitelist" => self.restore(FwList::Allows, &p.items, actor).await,
            other => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("unknown inverse {other}"),
                ));
            }
        };
        self.audit(
            actor,
            &format!("undo_{}", p.action),
            &ips.join(","),
            &format!("{} of {}", count, ips.len()),
            None,
        )
        .await;
        ok(&UndoDone {
            status: "ok",
            action: p.action,
            inverse: p.inverse,
            count,
        })
    }

    pub(super) async fn undo_pending(&self, actor: &str) -> Result<Reply, ApiError> {
        match self.undo.pending(actor) {
            Some(p) => ok::<PendingView>(&p.view()),
            None => ok(&NothingPending {}),
        }
    }

    pub(super) async fn undo_run(
        &self,
        id: Option<String>,
        actor: &str,
    ) -> Result<Reply, ApiError> {
        match self.undo.take(actor, id.as_deref()) {
            Some(p) => self.run_undo(p, actor).await,
            None => Err(ApiError::new(
                StatusCode::GONE,
                "no such undo entry: missing, already used, or older than 30 seconds",
            )),
        }
    }
}
