// SPDX-License-Identifier: GPL-2.0-only
//! The threat database routes: 24 h stats, top attackers, one address with its
//! events, database size, and forgetting an address, with their response types.

use std::collections::BTreeMap;

use api::ApiError;
use serde::Serialize;

use super::{ok, store_err, AgentBackend, Reply};
use crate::store::rfc3339_unix;
use api::model::BlockEntry;

use crate::store::{now_unix, FwList, ThreatEvent, ThreatIp};

/// `GET /threat/stats`: CSM's fields, then Rampart's (`events_24h`,
/// `unique_ips_24h`, `by_kind`, `hourly`).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ThreatStats {
    pub total_ips: i64,
    pub total_events: i64,
    pub last_24h_events: i64,
    pub last_7d_events: i64,
    pub blocked_ips: i64,
    /// Events per kind, all time and in the last 24 hours.
    pub by_type: BTreeMap<String, i64>,
    pub by_type_24h: BTreeMap<String, i64>,
    pub top_attackers: Vec<Attacker>,
    /// Events per hour, oldest first, the current hour last.
    pub hourly_buckets: Vec<i64>,
    /// Events per day (UTC), oldest first, today last.
    pub daily_buckets: Vec<i64>,
    pub events_24h: i64,
    pub unique_ips_24h: i64,
    pub by_kind: Vec<KindCount>,
    pub hourly: Vec<HourCount>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct KindCount {
    pub kind: String,
    pub events: i64,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct HourCount {
    pub start: String,
    pub events: i64,
}

/// A row of `/threat/top-attackers`: CSM's fields, the address's summary and its
/// list state. `country` and `as_org` come from the GeoIP databases ("" without
/// one); Rampart asks no external reputation service, so `abuse_score` is 0.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Attacker {
    pub event_count: i64,
    /// Events per kind (ssh_failure, modsec_block, ...).
    pub attack_counts: BTreeMap<String, i64>,
    /// The threat database keeps addresses, not accounts: always empty.
    pub accounts: Vec<String>,
    pub threat_score: i64,
    pub unified_score: i64,
    /// The auto-responder's block covers it.
    pub auto_blocked: bool,
    /// "blocked", "allowed" or "watch".
    pub verdict: &'static str,
    pub abuse_score: i64,
    pub in_threat_db: bool,
    pub currently_blocked: bool,
    pub country: String,
    pub as_org: String,
    #[serde(flatten)]
    pub summary: ThreatIp,
    pub blocked: bool,
    pub allowed: bool,
}

/// `GET /threat/ip`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
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
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DbStats {
    pub events: i64,
    pub ips: i64,
    pub oldest: Option<String>,
    pub newest: Option<String>,
}

/// `POST /verified-bots/apply`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct BotsApplied {
    pub status: &'static str,
    pub allowed: usize,
    pub blocked: usize,
    /// Already on the list, or refused by the firewall (own or infrastructure
    /// addresses are never blocked).
    pub skipped: usize,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Cleared {
    pub status: &'static str,
    pub ip: String,
    pub cleared: usize,
}

impl AgentBackend {
    pub(super) async fn threat_stats(&self) -> Result<Reply, ApiError> {
        let t = self.store.threat_stats().await.map_err(store_err)?;
        let blocked_ips = self.store.count(FwList::Blocks).await.map_err(store_err)?;
        let filled = |buckets: &[(i64, i64)], step: i64, n: i64| -> Vec<(i64, i64)> {
            let last = now_unix() / step * step;
            (0..n)
                .map(|i| {
                    let start = last - (n - 1 - i) * step;
                    let events = buckets
                        .iter()
                        .find(|(b, _)| *b == start)
                        .map_or(0, |(_, e)| *e);
                    (start, events)
                })
                .collect()
        };
        let hours = filled(&t.hours, 3600, 24);
        let days = filled(&t.days, 86400, 7);
        ok(&ThreatStats {
            total_ips: t.total_ips,
            total_events: t.total_events,
            last_24h_events: t.events_24h,
            last_7d_events: t.events_7d,
            blocked_ips,
            by_type: t.by_kind.into_iter().collect(),
            by_type_24h: t.by_kind_24h.iter().cloned().collect(),
            top_attackers: self.attackers(10).await?,
            hourly_buckets: hours.iter().map(|(_, n)| *n).collect(),
            daily_buckets: days.iter().map(|(_, n)| *n).collect(),
            events_24h: t.events_24h,
            unique_ips_24h: t.ips_24h,
            by_kind: t
                .by_kind_24h
                .into_iter()
                .map(|(kind, events)| KindCount { kind, events })
                .collect(),
            hourly: hours
                .into_iter()
                .map(|(start, events)| HourCount {
                    start: rfc3339_unix(start),
                    events,
                })
                .collect(),
        })
    }

    fn crawler_check_runs(&self) -> Result<(), ApiError> {
        if self.logs.access.is_empty() {
            return Err(ApiError::new(
                warp::http::StatusCode::SERVICE_UNAVAILABLE,
                "no access logs are followed (logs.access): no crawler claims to check",
            ));
        }
        Ok(())
    }

    pub(super) async fn verified_bots(
        &self,
        verdict: Option<String>,
        limit: u32,
    ) -> Result<Reply, ApiError> {
        self.crawler_check_runs()?;
        ok(&self
            .store
            .bot_claims(verdict, limit)
            .await
            .map_err(store_err)?)
    }

    pub(super) async fn apply_verified_bots(
        &self,
        r: api::model::ApplyBotsRequest,
        actor: &str,
    ) -> Result<Reply, ApiError> {
        self.crawler_check_runs()?;
        let claims = self
            .store
            .bot_claims(None, crate::store::MAX_BOT_CLAIMS as u32)
            .await
            .map_err(store_err)?;
        let (mut allowed, mut blocked, mut skipped) = (0, 0, 0);
        for c in claims {
            let (list, reason, source) = match c.verdict.as_str() {
                "verified" if r.allow_verified => (
                    FwList::Allows,
                    format!("verified {} ({})", c.bot, c.hostname),
                    "verified_bot",
                ),
                "fake" if r.block_fake => (
                    FwList::Blocks,
                    format!("claims to be {} but is not ({})", c.bot, c.hostname),
                    "fake_crawler",
                ),
                _ => continue,
            };
            if self
                .store
                .entry(list, c.ip.clone())
                .await
                .map_err(store_err)?
                .is_some()
            {
                skipped += 1;
                continue;
            }
            match self
                .firewall
                .add(list, &c.ip, &reason, source, r.duration, false, actor)
                .await
            {
                Ok(_) if list == FwList::Allows => allowed += 1,
                Ok(_) => blocked += 1,
                Err(e) => {
                    tracing::info!(ip = %c.ip, error = %e, "Crawler verdict not applied.");
                    skipped += 1;
                }
            }
        }
        ok(&BotsApplied {
            status: "applied",
            allowed,
            blocked,
            skipped,
        })
    }

    pub(super) async fn threat_top_attackers(&self, limit: u32) -> Result<Reply, ApiError> {
        ok(&self.attackers(limit).await?)
    }

    /// The `limit` addresses with the most events in the last 24 hours.
    async fn attackers(&self, limit: u32) -> Result<Vec<Attacker>, ApiError> {
        let top = self.store.top_attackers(limit).await.map_err(store_err)?;
        let counts = self
            .store
            .attack_counts(top.iter().map(|t| t.ip.clone()).collect())
            .await
            .map_err(store_err)?;
        let mut out = Vec::with_capacity(top.len());
        for summary in top {
            let check = self.firewall.check(&summary.ip).await.ok();
            let blocked = check.as_ref().is_some_and(|c| c.blocked);
            let allowed = check.as_ref().is_some_and(|c| c.allowed);
            let geoip = self.geoip.get();
            let geo = summary
                .ip
                .parse()
                .ok()
                .filter(|_| geoip.available())
                .map(|ip| geoip.lookup(ip, false));
            let auto_blocked = check
                .as_ref()
                .and_then(|c| c.blocked_by.as_ref())
                .is_some_and(|b| b.source == crate::logs::respond::SOURCE);
            out.push(Attacker {
                event_count: summary.events,
                attack_counts: counts
                    .iter()
                    .filter(|(ip, _, _)| *ip == summary.ip)
                    .map(|(_, kind, n)| (kind.clone(), *n))
                    .collect(),
                accounts: Vec::new(),
                threat_score: summary.score,
                unified_score: summary.score,
                auto_blocked,
                verdict: match (blocked && !allowed, allowed) {
                    (true, _) => "blocked",
                    (false, true) => "allowed",
                    _ => "watch",
                },
                abuse_score: 0,
                in_threat_db: true,
                currently_blocked: blocked && !allowed,
                country: geo
                    .as_ref()
                    .and_then(|g| g.country.clone())
                    .unwrap_or_default(),
                as_org: geo
                    .as_ref()
                    .and_then(|g| g.as_org.clone())
                    .unwrap_or_default(),
                summary,
                blocked,
                allowed,
            });
        }
        Ok(out)
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
