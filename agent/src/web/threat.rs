// SPDX-License-Identifier: GPL-2.0-only
//! The threat database routes: 24 h stats, top attackers, one address with its
//! events, database size, and forgetting an address, with their response types.

use api::ApiError;
use serde::Serialize;

use super::{ok, rfc3339_of, store_err, AgentBackend, Reply};
use api::model::BlockEntry;

use crate::store::{now_unix, FwList, ThreatEvent, ThreatIp};

/// `GET /threat/stats`.
#[derive(Debug, Serialize)]
pub struct ThreatStats {
    pub events_24h: i64,
    pub unique_ips_24h: i64,
    pub by_kind: Vec<KindCount>,
    pub hourly: Vec<HourCount>,
    pub blocked_ips: i64,
}

#[derive(Debug, Serialize)]
pub struct KindCount {
    pub kind: String,
    pub events: i64,
}

#[derive(Debug, Serialize)]
pub struct HourCount {
    pub start: String,
    pub events: i64,
}

/// A row of `/threat/top-attackers`: the address's summary and its list state.
#[derive(Debug, Serialize)]
pub struct Attacker {
    #[serde(flatten)]
    pub summary: ThreatIp,
    pub blocked: bool,
    pub allowed: bool,
}

/// `GET /threat/ip`.
#[derive(Debug, Serialize)]
pub struct ThreatIpView {
    pub ip: String,
    pub known: bool,
    pub summary: Option<ThreatIp>,
    pub blocked: bool,
    pub allowed: bool,
    pub blocked_by: Option<BlockEntry>,
    pub allowed_by: Option<BlockEntry>,
    pub recent_events: Vec<ThreatEvent>,
}

/// `GET /threat/db-stats`.
#[derive(Debug, Serialize)]
pub struct DbStats {
    pub events: i64,
    pub ips: i64,
    pub oldest: Option<String>,
    pub newest: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Cleared {
    pub status: &'static str,
    pub ip: String,
    pub cleared: usize,
}

impl AgentBackend {
    pub(super) async fn threat_stats(&self) -> Result<Reply, ApiError> {
        let (events_24h, unique_ips_24h, kinds, hours) =
            self.store.threat_stats().await.map_err(store_err)?;
        let blocked_ips = self.store.count(FwList::Blocks).await.map_err(store_err)?;
        let now_h = now_unix() / 3600 * 3600;
        let hourly = (0..24)
            .map(|i| {
                let start = now_h - (23 - i) * 3600;
                let events = hours
                    .iter()
                    .find(|(h, _)| *h == start)
                    .map_or(0, |(_, n)| *n);
                HourCount {
                    start: rfc3339_of(start),
                    events,
                }
            })
            .collect();
        ok(&ThreatStats {
            events_24h,
            unique_ips_24h,
            by_kind: kinds
                .into_iter()
                .map(|(kind, events)| KindCount { kind, events })
                .collect(),
            hourly,
            blocked_ips,
        })
    }

    pub(super) async fn threat_top_attackers(&self, limit: u32) -> Result<Reply, ApiError> {
        let top = self.store.top_attackers(limit).await.map_err(store_err)?;
        let mut out = Vec::with_capacity(top.len());
        for summary in top {
            let check = self.firewall.check(&summary.ip).await.ok();
            out.push(Attacker {
                summary,
                blocked: check.as_ref().is_some_and(|c| c.blocked),
                allowed: check.as_ref().is_some_and(|c| c.allowed),
            });
        }
        ok(&out)
    }

    pub(super) async fn threat_ip(&self, ip: String) -> Result<Reply, ApiError> {
        let summary = self.store.threat_ip(ip.clone()).await.map_err(store_err)?;
        let check = self
            .firewall
            .check(&ip)
            .await
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let recent_events = self
            .store
            .threat_events(ip.clone(), 10)
            .await
            .map_err(store_err)?;
        ok(&ThreatIpView {
            ip,
            known: summary.is_some(),
            summary,
            blocked: check.blocked,
            allowed: check.allowed,
            blocked_by: check.blocked_by,
            allowed_by: check.allowed_by,
            recent_events,
        })
    }

    pub(super) async fn threat_events(&self, ip: String, limit: u32) -> Result<Reply, ApiError> {
        ok(&self
            .store
            .threat_events(ip, limit)
            .await
            .map_err(store_err)?)
    }

    pub(super) async fn threat_db_stats(&self) -> Result<Reply, ApiError> {
        let (events, ips, oldest, newest) =
            self.store.threat_db_stats().await.map_err(store_err)?;
        ok(&DbStats {
            events,
            ips,
            oldest,
            newest,
        })
    }

    pub(super) async fn threat_clear_ip(&self, ip: String, actor: &str) -> Result<Reply, ApiError> {
        let cleared = self
            .store
            .clear_threat_ip(ip.clone())
            .await
            .map_err(store_err)?;
        self.audit(
            actor,
            "threat_clear_ip",
            &ip,
            &format!("{cleared} events"),
            None,
        )
        .await;
        ok(&Cleared {
            status: "cleared",
            ip,
            cleared,
        })
    }
}
