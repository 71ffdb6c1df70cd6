// SPDX-License-Identifier: GPL-2.0-only
//! Retention: everything the agent records because of what others do (findings,
//! log events, auto-response audit rows) is bounded by age and by count, so a flood
//! of attacker-made events can never fill the disk.

use rusqlite::{params, Connection};

use super::{rfc3339, Store, StoreError};

/// The bounds one sweep enforces (from `retention:` in the config).
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Rows older than this unix time go (closed findings and incidents, log events,
    /// audit rows); `None` = by count only.
    pub before_unix: Option<i64>,
    pub max_findings: u64,
    pub max_rows: u64,
}

/// What one sweep deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Closed findings, by age or by count.
    pub closed_findings: u64,
    /// Active findings over `max_findings` (least severe and oldest first).
    pub active_findings: u64,
    pub incidents: u64,
    pub log_events: u64,
    pub audit_rows: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.closed_findings
            + self.active_findings
            + self.incidents
            + self.log_events
            + self.audit_rows
    }
}

/// Log-event tables with an `id` in insertion order and a `ts_unix`.
const EVENT_TABLES: [&str; 3] = ["threat_events", "waf_events", "mail_events"];

fn count(c: &Connection, table: &str) -> Result<u64, StoreError> {
    let n: i64 = c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

fn over(n: u64, max: u64) -> i64 {
    i64::try_from(n.saturating_sub(max)).unwrap_or(i64::MAX)
}

fn sweep(c: &mut Connection, b: Bounds) -> Result<Pruned, StoreError> {
    let tx = c.transaction()?;
    let mut p = Pruned::default();
    let n = |v: usize| v as u64;
    if let Some(before) = b.before_unix {
        p.closed_findings += n(tx.execute(
            "DELETE FROM findings WHERE status != 'active' AND last_seen_unix < ?1",
            [before],
        )?);
        p.incidents += n(tx.execute(
            "DELETE FROM incidents WHERE status NOT IN ('open', 'contained') AND updated_unix < ?1",
            [before],
        )?);
        for t in EVENT_TABLES {
            p.log_events +=
                n(tx.execute(&format!("DELETE FROM {t} WHERE ts_unix < ?1"), [before])?);
        }
        p.log_events += n(tx.execute("DELETE FROM waf_rule_hits WHERE ts_unix < ?1", [before])?);
        let ts = rfc3339(
            time::OffsetDateTime::from_unix_timestamp(before)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        );
        for t in ["firewall_audit", "ui_audit"] {
            p.audit_rows += n(tx.execute(&format!("DELETE FROM {t} WHERE ts < ?1"), [&ts])?);
        }
    }
    // By count: the oldest rows of each table over its bound.
    let excess = over(count(&tx, "findings")?, b.max_findings);
    if excess > 0 {
        p.closed_findings += n(tx.execute(
            "DELETE FROM findings WHERE id IN (SELECT id FROM findings WHERE status != 'active'
             ORDER BY last_seen_unix, id LIMIT ?1)",
            [excess],
        )?);
    }
    let excess = over(count(&tx, "findings")?, b.max_findings);
    if excess > 0 {
        p.active_findings += n(tx.execute(
            "DELETE FROM findings WHERE id IN (SELECT id FROM findings ORDER BY
             CASE severity WHEN 'critical' THEN 3 WHEN 'high' THEN 2 WHEN 'warning' THEN 1 ELSE 0 END,
             last_seen_unix, id LIMIT ?1)",
            [excess],
        )?);
    }
    for t in EVENT_TABLES {
        let excess = over(count(&tx, t)?, b.max_rows);
        if excess > 0 {
            p.log_events += n(tx.execute(
                &format!("DELETE FROM {t} WHERE id IN (SELECT id FROM {t} ORDER BY id LIMIT ?1)"),
                [excess],
            )?);
        }
    }
    let excess = over(count(&tx, "firewall_audit")?, b.max_rows);
    if excess > 0 {
        p.audit_rows += n(tx.execute(
            "DELETE FROM firewall_audit WHERE id IN (SELECT id FROM firewall_audit ORDER BY id LIMIT ?1)",
            [excess],
        )?);
    }
    // What pointed at deleted rows goes with them.
    p.log_events += n(tx.execute(
        "DELETE FROM waf_rule_hits WHERE event_id NOT IN (SELECT id FROM waf_events)",
        [],
    )?);
    tx.execute(
        "DELETE FROM incident_findings WHERE finding_id NOT IN (SELECT id FROM findings)
         OR incident_id NOT IN (SELECT id FROM incidents)",
        params![],
    )?;
    tx.commit()?;
    Ok(p)
}

impl Store {
    /// Enforce `b` in one transaction.
    pub async fn enforce_retention(&self, b: Bounds) -> Result<Pruned, StoreError> {
        self.call(move |c| sweep(c, b)).await
    }
}

#[cfg(test)]
mod tests {
    use api::model::Severity;

    use super::*;
    use crate::store::NewFinding;

    #[tokio::test]
    async fn counts_are_bounded_closed_first_then_least_severe_and_oldest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("s.db"), 8).expect("open");
        for (i, sev) in [
            Severity::Critical,
            Severity::Info,
            Severity::High,
            Severity::Info,
            Severity::Warning,
        ]
        .into_iter()
        .enumerate()
        {
            let f = NewFinding {
                key: Some(format!("k{i}")),
                ..NewFinding::new("t", sev, format!("f{i}"))
            };
            s.record_finding(f, 0).await.expect("record");
        }
        let active = s.active_findings(100).await.expect("active");
        let closed = active.iter().find(|f| f.message == "f2").expect("f2").id;
        s.call(move |c| {
            c.execute("UPDATE findings SET status = 'dismissed' WHERE id = ?1", [closed])?;
            for i in 0..30 {
                c.execute(
                    "INSERT INTO threat_events (ts, ts_unix, ip, source, kind) VALUES ('t', ?1, '192.0.2.1', 'sshd', 'auth_failure')",
                    [i],
                )?;
            }
            Ok(())
        })
        .await
        .expect("setup");
        let p = s
            .enforce_retention(Bounds {
                before_unix: None,
                max_findings: 3,
                max_rows: 10,
            })
            .await
            .expect("sweep");
        assert_eq!(
            p,
            Pruned {
                closed_findings: 1,
                active_findings: 1,
                log_events: 20,
                ..Pruned::default()
            }
        );
        let mut left: Vec<String> = s
            .active_findings(100)
            .await
            .expect("active")
            .into_iter()
            .map(|f| f.message)
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["f0", "f3", "f4"],
            "the dismissed one, then the oldest info"
        );
        let kept: Vec<i64> = s
            .call(|c| {
                let mut st = c.prepare("SELECT ts_unix FROM threat_events ORDER BY id")?;
                let rows = st.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<Result<Vec<i64>, _>>()?)
            })
            .await
            .expect("rows");
        assert_eq!(kept, (20..30).collect::<Vec<_>>(), "the newest 10 stay");
        let again = s
            .enforce_retention(Bounds {
                before_unix: Some(25),
                max_findings: 3,
                max_rows: 10,
            })
            .await
            .expect("sweep");
        assert_eq!(again.log_events, 5, "older than the cut-off");
        assert_eq!(again.active_findings, 0, "active findings never go by age");
    }
}
