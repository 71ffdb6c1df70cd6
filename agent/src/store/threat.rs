// SPDX-License-Identifier: GPL-2.0-only
//! The threat database: per-IP events from the log watchers and the responder, with
//! first/last seen, counts and a score.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::db::{now_unix, Store, StoreError};

/// One event about an address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ThreatEvent {
    pub id: i64,
    pub timestamp: String,
    pub ip: String,
    /// Where it came from: sshd, auto_response, ...
    pub source: String,
    /// auth_failure, ssh_bruteforce, ...
    pub kind: String,
    pub detail: String,
}

/// One address's summary.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ThreatIp {
    pub ip: String,
    pub events: i64,
    pub events_24h: i64,
    pub triggers: i64,
    pub first_seen: String,
    pub last_seen: String,
    /// 0-100: 2 per event in the last 24 h, 25 per triggered scenario, capped.
    pub score: i64,
}

/// See [`Store::threat_stats`]. Buckets are (start unix, events), empty ones absent.
#[derive(Debug, Default)]
pub struct ThreatTotals {
    pub total_events: i64,
    pub total_ips: i64,
    pub events_24h: i64,
    pub ips_24h: i64,
    pub events_7d: i64,
    pub by_kind: Vec<(String, i64)>,
    pub by_kind_24h: Vec<(String, i64)>,
    pub hours: Vec<(i64, i64)>,
    pub days: Vec<(i64, i64)>,
}

fn score(events_24h: i64, triggers: i64) -> i64 {
    (events_24h * 2 + triggers * 25).min(100)
}

fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ThreatIp> {
    let (e24, trig): (i64, i64) = (r.get(2)?, r.get(3)?);
    Ok(ThreatIp {
        ip: r.get(0)?,
        events: r.get(1)?,
        events_24h: e24,
        triggers: trig,
        first_seen: r.get(4)?,
        last_seen: r.get(5)?,
        score: score(e24, trig),
    })
}

fn summary_sql(filter: &str, order_limit: &str) -> String {
    format!(
        "SELECT ip, COUNT(*), SUM(ts_unix >= ?1), SUM(source = 'auto_response'), MIN(ts), MAX(ts)
         FROM threat_events {filter} GROUP BY ip {order_limit}"
    )
}

impl Store {
    /// Record events (ip, source, kind, detail) in one transaction.
    pub async fn add_threat_events(
        &self,
        events: Vec<(String, &'static str, &'static str, String)>,
    ) -> Result<(), StoreError> {
        self.add_log_batch(events, Vec::new(), Vec::new()).await
    }

    pub async fn threat_ip(&self, ip: String) -> Result<Option<ThreatIp>, StoreError> {
        self.call(move |c| {
            Ok(c.query_row(
                &summary_sql("WHERE ip = ?2", ""),
                params![now_unix() - 86400, ip],
                summary_row,
            )
            .optional()?)
        })
        .await
    }

    /// Addresses with the most events in the last `hours`.
    pub async fn top_attackers(&self, limit: u32) -> Result<Vec<ThreatIp>, StoreError> {
        self.call(move |c| {
            let mut st = c.prepare(&summary_sql("", "ORDER BY 3 DESC, 2 DESC, ip LIMIT ?2"))?;
            let rows = st.query_map(params![now_unix() - 86400, limit], summary_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// One address's events, newest first.
    pub async fn threat_events(
        &self,
        ip: String,
        limit: u32,
    ) -> Result<Vec<ThreatEvent>, StoreError> {
        self.call(move |c| {
            let mut st = c.prepare(
                "SELECT id, ts, ip, source, kind, detail FROM threat_events WHERE ip = ?1
                 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = st.query_map(params![ip, limit], |r| {
                Ok(ThreatEvent {
                    id: r.get(0)?,
                    timestamp: r.get(1)?,
                    ip: r.get(2)?,
                    source: r.get(3)?,
                    kind: r.get(4)?,
                    detail: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// The threat database's totals and its last 24 hours and 7 days.
    pub async fn threat_stats(&self) -> Result<ThreatTotals, StoreError> {
        self.call(|c| {
            let now = now_unix();
            let (day, week) = (now - 86400, now - 7 * 86400);
            let (total_events, total_ips): (i64, i64) = c.query_row(
                "SELECT COUNT(*), COUNT(DISTINCT ip) FROM threat_events",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let count = |since: i64, what: &str| -> rusqlite::Result<i64> {
                c.query_row(
                    &format!("SELECT COUNT({what}) FROM threat_events WHERE ts_unix >= ?1"),
                    [since],
                    |r| r.get(0),
                )
            };
            let pairs = |sql: &str, since: i64| -> rusqlite::Result<Vec<(String, i64)>> {
                let mut st = c.prepare(sql)?;
                let rows = st.query_map([since], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect()
            };
            let by_kind = "SELECT kind, COUNT(*) FROM threat_events WHERE ts_unix >= ?1
                           GROUP BY kind ORDER BY 2 DESC";
            let buckets = |step: i64, since: i64| -> rusqlite::Result<Vec<(i64, i64)>> {
                let mut st = c.prepare(
                    "SELECT (ts_unix / ?2) * ?2 AS b, COUNT(*) FROM threat_events
                     WHERE ts_unix >= ?1 GROUP BY b ORDER BY b",
                )?;
                let rows = st.query_map(params![since, step], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect()
            };
            Ok(ThreatTotals {
                total_events,
                total_ips,
                events_24h: count(day, "*")?,
                ips_24h: count(day, "DISTINCT ip")?,
                events_7d: count(week, "*")?,
                by_kind: pairs(by_kind, 0)?,
                by_kind_24h: pairs(by_kind, day)?,
                hours: buckets(3600, day)?,
                days: buckets(86400, week)?,
            })
        })
        .await
    }

    /// Events per kind for each of `ips`.
    pub async fn attack_counts(
        &self,
        ips: Vec<String>,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        self.call(move |c| {
            let mut st = c.prepare_cached(
                "SELECT ip, kind, COUNT(*) FROM threat_events WHERE ip = ?1 GROUP BY kind",
            )?;
            let mut out = Vec::new();
            for ip in &ips {
                let rows = st.query_map([ip], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                for row in rows {
                    out.push(row?);
                }
            }
            Ok(out)
        })
        .await
    }

    /// (events, distinct IPs, oldest, newest) over the whole database.
    pub async fn threat_db_stats(
        &self,
    ) -> Result<(i64, i64, Option<String>, Option<String>), StoreError> {
        self.call(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*), COUNT(DISTINCT ip), MIN(ts), MAX(ts) FROM threat_events",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?)
        })
        .await
    }

    /// Forget an address; returns the events deleted.
    pub async fn clear_threat_ip(&self, ip: String) -> Result<usize, StoreError> {
        self.call(move |c| Ok(c.execute("DELETE FROM threat_events WHERE ip = ?1", [ip])?))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_summaries_scores_and_clearing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("s.db"), 8).expect("open");
        let mut ev = Vec::new();
        for i in 0..6 {
            ev.push((
                "203.0.113.5".to_string(),
                "sshd",
                "auth_failure",
                format!("user u{i}"),
            ));
        }
        ev.push((
            "203.0.113.5".to_string(),
            "auto_response",
            "ssh_bruteforce",
            "blocked".into(),
        ));
        ev.push((
            "198.51.100.7".to_string(),
            "sshd",
            "auth_failure",
            "user root".into(),
        ));
        s.add_threat_events(ev).await.expect("add");
        let a = s
            .threat_ip("203.0.113.5".into())
            .await
            .expect("ip")
            .expect("known");
        assert_eq!((a.events, a.events_24h, a.triggers, a.score), (7, 7, 1, 39));
        assert!(s.threat_ip("192.0.2.1".into()).await.expect("ip").is_none());
        let top = s.top_attackers(10).await.expect("top");
        assert_eq!(
            top.iter().map(|t| t.ip.as_str()).collect::<Vec<_>>(),
            ["203.0.113.5", "198.51.100.7"]
        );
        let evs = s
            .threat_events("203.0.113.5".into(), 3)
            .await
            .expect("events");
        assert_eq!((evs.len(), evs[0].kind.as_str()), (3, "ssh_bruteforce"));
        let t = s.threat_stats().await.expect("stats");
        assert_eq!(
            (
                t.events_24h,
                t.ips_24h,
                t.by_kind_24h[0].clone(),
                t.hours.len()
            ),
            (8, 2, ("auth_failure".into(), 7), 1)
        );
        assert_eq!(
            (t.total_events, t.total_ips, t.events_7d, t.days.len()),
            (8, 2, 8, 1)
        );
        let counts = s
            .attack_counts(vec!["203.0.113.5".into()])
            .await
            .expect("counts");
        assert_eq!(counts.iter().map(|c| c.2).sum::<i64>(), 7, "{counts:?}");
        assert_eq!(
            s.clear_threat_ip("203.0.113.5".into())
                .await
                .expect("clear"),
            7
        );
        assert_eq!(s.threat_db_stats().await.expect("db").0, 1);
        assert_eq!(
            s.enforce_retention(crate::store::Bounds {
                before_unix: Some(now_unix() + 10),
                max_findings: u64::MAX,
                max_rows: u64::MAX
            })
            .await
            .expect("prune")
            .log_events,
            1
        );
    }
}
