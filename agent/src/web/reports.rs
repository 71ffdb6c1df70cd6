// SPDX-License-Identifier: GPL-2.0-only
//! The API's threat bulk actions with their undo, and the ModSecurity and mail
//! reports over what the log watchers stored.

use api::{
    model::{BulkActionRequest, DetectOp, Window},
    ApiError,
};
use serde_json::{json, Value};
use warp::http::StatusCode;

use super::{
    store_err,
    undo::{Item, Pending},
    AgentBackend,
};
use crate::{
    logs::Source,
    store::{now_unix, FwList},
};

fn window(w: Window) -> crate::store::Window {
    crate::store::Window {
        from: w.from.unwrap_or(0),
        to: w.to.unwrap_or(i64::MAX),
        limit: w.limit,
    }
}

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
    /// 503 unless one of the source's configured logs exists on this host.
    fn have_log(&self, source: Source, what: &str) -> Result<(), ApiError> {
        let paths = self.logs.paths(source);
        if paths.iter().any(|p| p.exists()) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "no {what} on this host (logs.{}: {})",
                source.name(),
                if paths.is_empty() {
                    "none configured".to_string()
                } else {
                    paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        ))
    }

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

    /// Put entries (back) on a list; returns how many landed.
    async fn restore(&self, list: FwList, items: &[Item], actor: &str) -> usize {
        let mut n = 0;
        for it in items {
            match self
                .firewall
                .add(list, &it.ip, &it.reason, "undo", it.remaining, false, actor)
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

    async fn bulk(
        &self,
        r: BulkActionRequest,
        actor: &str,
    ) -> Result<(StatusCode, Value), ApiError> {
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
                        Err(e) => failed.push(json!({"ip": ip, "error": e.to_string()})),
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
                        Ok(_) => failed.push(json!({"ip": ip, "error": "not listed"})),
                        Err(e) => failed.push(json!({"ip": ip, "error": e.to_string()})),
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
                                Err(e) => failed.push(json!({"ip": ip, "error": e.to_string()})),
                            }
                        }
                        Err(e) => failed.push(json!({"ip": ip, "error": e.to_string()})),
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
        let mut out = json!({
            "status": "ok",
            "action": r.action,
            "succeeded": ok_ips,
            "failed": failed,
        });
        if let (Some(inverse), false) = (inverse, undo_items.is_empty()) {
            let n = undo_items.len();
            let summary = format!("{verb} {n} IP{}", if n == 1 { "" } else { "s" });
            out["undo_token"] = json!(self
                .undo
                .record(actor, action, inverse, summary, undo_items));
        }
        Ok((StatusCode::OK, out))
    }

    async fn run_undo(&self, p: Pending, actor: &str) -> Result<(StatusCode, Value), ApiError> {
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
        Ok((
            StatusCode::OK,
            json!({"status": "ok", "action": p.action, "inverse": p.inverse, "count": count}),
        ))
    }

    pub(crate) async fn report_op(
        &self,
        op: DetectOp,
        actor: &str,
    ) -> Result<(StatusCode, Value), ApiError> {
        let ok = |v: Value| Ok((StatusCode::OK, v));
        match op {
            DetectOp::ThreatBulk(r) => self.bulk(r, actor).await,
            DetectOp::UndoPending => ok(self
                .undo
                .pending(actor)
                .map_or_else(|| json!({}), |p| p.json())),
            DetectOp::UndoRun { id } => match self.undo.take(actor, id.as_deref()) {
                Some(p) => self.run_undo(p, actor).await,
                None => Err(ApiError::new(
                    StatusCode::GONE,
                    "no such undo entry: missing, already used, or older than 30 seconds",
                )),
            },
            DetectOp::ModsecStats => {
                self.have_log(Source::Modsec, "ModSecurity audit log")?;
                ok(self.store.modsec_stats().await.map_err(store_err)?)
            }
            DetectOp::ModsecBlocks(w) => {
                self.have_log(Source::Modsec, "ModSecurity audit log")?;
                ok(json!(self
                    .store
                    .modsec_blocks(window(w))
                    .await
                    .map_err(store_err)?))
            }
            DetectOp::ModsecEvents { window: w, ip } => {
                self.have_log(Source::Modsec, "ModSecurity audit log")?;
                ok(json!(self
                    .store
                    .modsec_events(window(w), ip)
                    .await
                    .map_err(store_err)?))
            }
            DetectOp::ModsecRules => {
                self.have_log(Source::Modsec, "ModSecurity audit log")?;
                ok(json!(self.store.modsec_rules().await.map_err(store_err)?))
            }
            DetectOp::EmailStats => {
                self.have_log(Source::Exim, "exim mainlog")?;
                ok(self.store.email_stats().await.map_err(store_err)?)
            }
            DetectOp::EmailDeferrals(w) => {
                self.have_log(Source::Exim, "exim mainlog")?;
                ok(json!(self
                    .store
                    .email_deferrals(window(w))
                    .await
                    .map_err(store_err)?))
            }
            DetectOp::EmailRelayAbuse(w) => {
                self.have_log(Source::Exim, "exim mainlog")?;
                let w = window(w);
                let mut rows = self
                    .store
                    .finding_groups(vec!["mail_relay_abuse"], w)
                    .await
                    .map_err(store_err)?;
                for r in &mut rows {
                    let account = r["account"].as_str().unwrap_or("").to_string();
                    r["scripts"] = json!(self
                        .store
                        .email_scripts(account, w)
                        .await
                        .map_err(store_err)?);
                }
                ok(json!(rows))
            }
            DetectOp::EmailGroups { window: w, kind } => {
                self.have_log(Source::Exim, "exim mainlog")
                    .or_else(|_| self.have_log(Source::Dovecot, "mail log"))?;
                let w = window(w);
                let kinds: [(&str, &[&'static str]); 2] = [
                    ("auth_failure", &["mail_bruteforce", "account_bruteforce"]),
                    ("spam_outbreak", &["mail_relay_abuse"]),
                ];
                let mut out = Vec::new();
                for (k, checks) in kinds {
                    if kind.as_deref().is_some_and(|want| want != k) {
                        continue;
                    }
                    for mut r in self
                        .store
                        .finding_groups(checks.to_vec(), w)
                        .await
                        .map_err(store_err)?
                    {
                        // account_bruteforce of other services is not mail.
                        if r["check"] == "account_bruteforce"
                            && !r["key"].as_str().is_some_and(|k| k.contains('@'))
                        {
                            continue;
                        }
                        r["kind"] = json!(k);
                        out.push(r);
                    }
                }
                out.sort_by(|a, b| b["last_seen"].as_str().cmp(&a["last_seen"].as_str()));
                out.truncate(w.limit as usize);
                ok(json!(out))
            }
            other => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("not a report operation: {other:?}"),
            )),
        }
    }
}
