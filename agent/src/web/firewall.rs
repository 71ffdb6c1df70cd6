// SPDX-License-Identifier: GPL-2.0-only
//! The firewall routes (`/firewall/*`, `/block-ip` and friends, the tentative policy)
//! and Charon's `/security/*` decisions, with their response types.

use api::{
    model::{BlockEntry, FirewallOp},
    ApiError,
};
use serde::Serialize;
use warp::http::StatusCode;

use super::{
    fw_err, list_of, ok, policy_err, reply, status::CounterMap, store_err, AgentBackend, Reply,
};
use crate::{
    config::FirewallPolicy,
    firewall::policy::{RollbackView, Tentative},
    kernel::{Component, ComponentState},
    store::{EntryQuery, FwList},
};

/// `GET /firewall/status`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct FirewallStatus {
    pub enabled: bool,
    /// CSM's settings view, from the policy in force: both families are filtered.
    pub ipv6: bool,
    /// Allowed inbound ports ("22", "30000-30100"); empty = all.
    pub tcp_in: Vec<String>,
    /// Outbound ports are not filtered by Rampart: always empty (all allowed).
    pub tcp_out: Vec<String>,
    pub udp_in: Vec<String>,
    pub udp_out: Vec<String>,
    /// No per-user port restriction in Rampart: always empty.
    pub restricted_tcp: Vec<String>,
    /// Passive FTP ports are whatever `tcp_in` allows: always false.
    pub passive_ftp: bool,
    /// Per-source packet rate limit (packets/s, 0 = off).
    pub conn_rate_limit: u32,
    /// Concurrent connections are not limited by Rampart: always 0 (off).
    pub conn_limit: u32,
    pub syn_flood_protection: bool,
    pub udp_flood: bool,
    /// Outbound SMTP is not blocked by Rampart: always false.
    pub smtp_block: bool,
    /// Sampled drops are logged (and counted in `top_dropped`).
    pub log_dropped: bool,
    /// Entries the IPv4 block map holds (`firewall.max_entries_v4`).
    pub deny_ip_limit: u32,
    pub enforcing: bool,
    pub interfaces: Vec<Component>,
    pub blocked: i64,
    pub blocked_subnets: i64,
    pub allowed: i64,
    pub policy: FirewallPolicy,
    pub rollback: Option<RollbackView>,
    /// XDP verdicts by reason.
    pub counters: CounterMap,
    pub top_dropped: Vec<DroppedSource>,
}

/// A source among the sampled drops.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DroppedSource {
    pub ip: String,
    pub samples: i64,
    pub last_seen: String,
}

/// An address blocked or allowed.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Listed {
    /// "blocked" or "allowed".
    pub status: &'static str,
    pub ip: String,
    pub expires_at: Option<String>,
}

/// `POST /unblock-bulk`: CSM's `status: "completed"`, `total`, `succeeded`,
/// `undo_token`, then Rampart's lists.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct BulkUnblocked {
    pub status: &'static str,
    /// Addresses asked for.
    pub total: usize,
    /// Addresses unblocked.
    pub succeeded: usize,
    /// For `POST /undo/run` within 30 s; "" when nothing was unblocked.
    pub undo_token: String,
    pub unblocked: Vec<String>,
    pub not_found: Vec<String>,
}

/// An entry removed from a list.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Removed {
    /// "unblocked" or "removed" (an allow).
    pub status: &'static str,
    pub ip: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Flushed {
    pub status: &'static str,
    pub removed: usize,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Unbanned {
    pub status: &'static str,
    pub ip: String,
    /// "flushed", "failed" or "not_installed".
    pub cphulk: &'static str,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TentativeApplied {
    pub status: &'static str,
    pub restart: bool,
    pub rollback: RollbackView,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct PolicyChanged {
    /// "confirmed" or "reverted".
    pub status: &'static str,
    pub policy: FirewallPolicy,
}

/// A Charon-style decision record.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Decision {
    pub id: usize,
    pub source: String,
    pub ip: String,
    /// "block" or "allow".
    pub action: &'static str,
    pub reason: String,
    pub timestamp: String,
    pub expires_at: Option<String>,
}

impl Decision {
    fn of(e: &BlockEntry, list: FwList, id: usize) -> Self {
        Self {
            id,
            source: e.source.clone(),
            ip: e.ip.clone(),
            action: if list == FwList::Blocks {
                "block"
            } else {
                "allow"
            },
            reason: e.reason.clone(),
            timestamp: e.blocked_at.clone(),
            expires_at: e.expires_at.clone(),
        }
    }
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DecisionCreated {
    pub decision: Decision,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Decisions {
    pub decisions: Vec<Decision>,
}

/// `GET /security/status`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SecurityStatus {
    /// XDP attached and enforcing (not disabled by `/security/disable`).
    pub enabled: bool,
    /// When enforcement is off: when it comes back on by itself, who turned it off
    /// and how (`break_glass` or `local`); empty when on.
    pub disabled_until: String,
    pub disabled_by: String,
    pub disabled_via: String,
    pub firewall: FirewallMode,
    pub rate_limit: Enabled,
    pub acl: Enabled,
    pub port_scan: Enabled,
    pub waf: Mode,
    pub crowdsec: Mode,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct FirewallMode {
    pub enabled: bool,
    pub mode: &'static str,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Enabled {
    pub enabled: bool,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Mode {
    pub mode: &'static str,
}

/// cPanel's tool that takes an address out of cPHulk, its brute-force store.
const HULK_UNBAN: &str = "/usr/local/cpanel/bin/hulk-unban-ip";

/// Flush `ip` from cPHulk: None where cPHulk is not installed (no cPanel), else
/// whether the tool succeeded. `ip` is a canonical address (never an option).
async fn cphulk_unban(ip: &str) -> Option<bool> {
    if !std::path::Path::new(HULK_UNBAN).exists() {
        return None;
    }
    let st = tokio::process::Command::new(HULK_UNBAN)
        .arg(ip)
        .status()
        .await;
    Some(st.is_ok_and(|s| s.success()))
}

impl AgentBackend {
    pub(super) async fn firewall_op(&self, op: FirewallOp, actor: &str) -> Result<Reply, ApiError> {
        let fw = &self.firewall;
        match op {
            FirewallOp::Status => ok(&self.firewall_status().await?),
            FirewallOp::List { list, subnets_only } => {
                let q = EntryQuery {
                    subnets_only,
                    ..Default::default()
                };
                ok(&self
                    .store
                    .query_entries(list_of(list), q)
                    .await
                    .map_err(store_err)?)
            }
            FirewallOp::Audit { limit } => {
                ok(&self.store.audit_log(limit).await.map_err(store_err)?)
            }
            FirewallOp::Check { ip } => ok(&fw.check(&ip).await.map_err(fw_err)?),
            FirewallOp::Add {
                list,
                ip,
                reason,
                duration,
                force,
                source,
            } => {
                let list = list_of(list);
                let reason = if reason.trim().is_empty() && source == "threat" {
                    "threat intelligence".into()
                } else {
                    reason
                };
                let e = fw
                    .add(list, &ip, &reason, source, duration, force, actor)
                    .await
                    .map_err(fw_err)?;
                if source == "decision" {
                    return reply(
                        StatusCode::CREATED,
                        &DecisionCreated {
                            decision: Decision::of(&e, list, 0),
                        },
                    );
                }
                let status = if list == FwList::Blocks {
                    "blocked"
                } else {
                    "allowed"
                };
                ok(&Listed {
                    status,
                    ip: e.ip,
                    expires_at: e.expires_at,
                })
            }
            FirewallOp::Remove { list, ips, bulk } => {
                let list = list_of(list);
                let before = if bulk && list == FwList::Blocks {
                    self.snapshot_blocks(&ips).await?
                } else {
                    Vec::new()
                };
                let gone = fw.remove(list, &ips, actor).await.map_err(fw_err)?;
                if bulk {
                    let removed: Vec<_> = before
                        .into_iter()
                        .filter(|i| gone.contains(&i.ip))
                        .collect();
                    let token = self.record_unblock_undo(actor, removed);
                    let not_found: Vec<String> = ips
                        .iter()
                        .filter(|i| {
                            crate::firewall::parse_target(i, true)
                                .map(|n| !gone.contains(&crate::firewall::canonical(&n)))
                                .unwrap_or(true)
                        })
                        .cloned()
                        .collect();
                    return ok(&BulkUnblocked {
                        status: "completed",
                        total: ips.len(),
                        succeeded: gone.len(),
                        undo_token: token.unwrap_or_default(),
                        unblocked: gone,
                        not_found,
                    });
                }
                let what = if list == FwList::Blocks {
                    "blocked"
                } else {
                    "allowed"
                };
                match gone.first() {
                    Some(ip) => ok(&Removed {
                        status: if list == FwList::Blocks {
                            "unblocked"
                        } else {
                            "removed"
                        },
                        ip: ip.clone(),
                    }),
                    None => Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        format!("{} is not {what}", ips.join(", ")),
                    )),
                }
            }
            FirewallOp::Flush => ok(&Flushed {
                status: "flushed",
                removed: fw.flush(actor).await.map_err(fw_err)?,
            }),
            FirewallOp::Unban { ip } => {
                let gone = fw
                    .remove(FwList::Blocks, std::slice::from_ref(&ip), actor)
                    .await
                    .map_err(fw_err)?;
                let Some(ip) = gone.first() else {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        format!("{ip} is not blocked"),
                    ));
                };
                let cphulk = match cphulk_unban(ip).await {
                    None => "not_installed",
                    Some(true) => "flushed",
                    Some(false) => "failed",
                };
                ok(&Unbanned {
                    status: "unbanned",
                    ip: ip.clone(),
                    cphulk,
                })
            }
            FirewallOp::CphulkClear { ip } => match cphulk_unban(&ip).await {
                None => Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("cPHulk is not installed on this host (no {HULK_UNBAN})"),
                )),
                Some(true) => {
                    self.audit(actor, "cphulk_clear", &ip, "", None).await;
                    ok(&Listed {
                        status: "flushed",
                        ip,
                        expires_at: None,
                    })
                }
                Some(false) => Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!("{HULK_UNBAN} {ip} failed"),
                )),
            },
            FirewallOp::TentativeApply {
                changes,
                timeout_secs,
                if_match,
            } => {
                // CSM's optimistic lock: the client read the config hash from /status.
                if let Some(tag) = if_match.filter(|t| t != "*") {
                    let hash = self.config_hash();
                    if tag != hash {
                        return Err(ApiError::new(
                            StatusCode::PRECONDITION_FAILED,
                            format!(
                                "If-Match {tag:?} is not the config on disk ({hash}); read /api/v1/status again"
                            ),
                        ));
                    }
                }
                let how = Tentative {
                    timeout_secs,
                    actor: actor.to_string(),
                };
                let rb = self
                    .policy
                    .tentative_apply(changes, how)
                    .await
                    .map_err(policy_err)?;
                ok(&TentativeApplied {
                    status: "applied",
                    restart: false,
                    rollback: self.policy.view_of(&rb),
                })
            }
            FirewallOp::Rollback => ok(&self.policy.rollback_view().await.map_err(policy_err)?),
            FirewallOp::Confirm => {
                let p = self.policy.confirm().await.map_err(policy_err)?;
                ok(&PolicyChanged {
                    status: "confirmed",
                    policy: p,
                })
            }
            FirewallOp::Revert => {
                let p = self.policy.revert(actor).await.map_err(policy_err)?;
                ok(&PolicyChanged {
                    status: "reverted",
                    policy: p,
                })
            }
            FirewallOp::Decisions { limit } => {
                // The newest `limit` of each list, merged: at most 2 × limit rows read.
                let q = EntryQuery {
                    newest_first: true,
                    limit: Some(limit),
                    ..Default::default()
                };
                let mut all = Vec::new();
                for list in [FwList::Blocks, FwList::Allows] {
                    let rows = self.store.query_entries(list, q).await.map_err(store_err)?;
                    all.extend(rows.into_iter().map(|e| (e, list)));
                }
                all.sort_by(|a, b| b.0.blocked_at.cmp(&a.0.blocked_at));
                let v: Vec<_> = all
                    .iter()
                    .take(limit as usize)
                    .enumerate()
                    .map(|(i, (e, l))| Decision::of(e, *l, i + 1))
                    .collect();
                ok(&Decisions { decisions: v })
            }
            FirewallOp::SecurityStatus => {
                let attached = self
                    .components
                    .iter()
                    .any(|c| c.kind == "xdp" && c.state == ComponentState::Attached);
                let off = self
                    .cerberus
                    .disabled()
                    .await
                    .map_err(super::cerberus::cerberus_err)?;
                let cfg = self
                    .cerberus
                    .config()
                    .await
                    .map_err(super::cerberus::cerberus_err)?;
                let waf = match cfg.as_ref().map(|c| c.waf_mode.as_str()) {
                    Some("monitor") => "monitor",
                    _ => "disabled",
                };
                let p = self.policy.current().await.map_err(policy_err)?;
                let enforcing = attached && off.is_none();
                let on = |enabled| Enabled {
                    enabled: enabled && enforcing,
                };
                ok(&SecurityStatus {
                    enabled: enforcing,
                    disabled_until: off.as_ref().map(|d| d.until()).unwrap_or_default(),
                    disabled_by: off.as_ref().map(|d| d.by.clone()).unwrap_or_default(),
                    disabled_via: off.as_ref().map(|d| d.via.clone()).unwrap_or_default(),
                    firewall: FirewallMode {
                        enabled: enforcing,
                        mode: if off.is_some() { "monitor" } else { "xdp" },
                    },
                    rate_limit: on(p.rate_limit.pps > 0 || p.syn_limit.pps > 0),
                    acl: on(!p.tcp_in.is_empty() || !p.udp_in.is_empty()),
                    // Detection: it goes on while enforcement is off.
                    port_scan: Enabled {
                        enabled: attached && p.port_scan.ports > 0,
                    },
                    waf: Mode { mode: waf },
                    crowdsec: Mode { mode: "disabled" },
                })
            }
            FirewallOp::SecurityConfig => self.security_config().await,
            FirewallOp::SecurityConfigUpdate { req, local } => {
                self.security_config_update(req, local, actor).await
            }
            FirewallOp::SecurityEnable => self.security_enable(actor).await,
            FirewallOp::SecurityDisable { req, local } => {
                self.security_disable(req, local, actor).await
            }
            FirewallOp::BreakGlassGenerate => self.break_glass_generate(actor).await,
        }
    }

    async fn firewall_status(&self) -> Result<FirewallStatus, ApiError> {
        let blocks = self.store.count(FwList::Blocks).await.map_err(store_err)?;
        let subnets = self
            .store
            .count_subnets(FwList::Blocks)
            .await
            .map_err(store_err)?;
        let allowed = self.store.count(FwList::Allows).await.map_err(store_err)?;
        let xdp = self.kernel.xdp();
        let top: Vec<_> = self
            .store
            .top_dropped(10)
            .await
            .map_err(store_err)?
            .into_iter()
            .map(|(ip, samples, last_seen)| DroppedSource {
                ip,
                samples,
                last_seen,
            })
            .collect();
        let interfaces: Vec<Component> = self
            .components
            .iter()
            .filter(|c| c.kind == "xdp")
            .cloned()
            .collect();
        let policy = self.policy.current().await.map_err(policy_err)?;
        let ports = |v: &[crate::config::PortSpec]| v.iter().map(|p| String::from(*p)).collect();
        Ok(FirewallStatus {
            enabled: interfaces
                .iter()
                .any(|c| c.state == ComponentState::Attached),
            ipv6: true,
            tcp_in: ports(&policy.tcp_in),
            tcp_out: Vec::new(),
            udp_in: ports(&policy.udp_in),
            udp_out: Vec::new(),
            restricted_tcp: Vec::new(),
            passive_ftp: false,
            conn_rate_limit: policy.rate_limit.pps,
            conn_limit: 0,
            syn_flood_protection: policy.syn_limit.pps > 0,
            // The per-source rate limit counts UDP too.
            udp_flood: policy.rate_limit.pps > 0,
            smtp_block: false,
            log_dropped: policy.drop_samples_per_sec > 0,
            deny_ip_limit: self.deny_ip_limit,
            enforcing: self.firewall.enforcing(),
            interfaces,
            blocked: blocks,
            blocked_subnets: subnets,
            allowed,
            policy,
            rollback: self
                .policy
                .pending()
                .await
                .map_err(policy_err)?
                .map(|r| self.policy.view_of(&r)),
            counters: xdp.into_iter().collect(),
            top_dropped: top,
        })
    }
}
