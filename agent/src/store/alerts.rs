// SPDX-License-Identifier: GPL-2.0-only
//! The alert outbox: one row per (channel, finding), written in the same transaction
//! that moves the routing cursor past the finding, and kept until the channel took
//! it. A receiver that is down, or an agent that restarts, loses nothing.

use std::sync::Arc;

use api::model::Finding;
use rusqlite::params;

use super::{
    db::{get_setting, put_setting},
    findings::{finding_row, FINDING_COLS},
    now_unix, Store, StoreError,
};

/// The settings key of the last finding id routed to the channels.
const CURSOR: &str = "alerts.cursor";

/// One pending delivery.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: i64,
    pub finding: Finding,
    pub created_unix: i64,
    pub attempts: u32,
}

/// A channel's outbox, as `/health` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct OutboxStats {
    pub pending: u64,
    pub sent: u64,
    pub failed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// What one routing pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Routed {
    /// Findings the cursor moved past (a full batch: more may wait).
    pub findings: usize,
    /// Outbox rows queued for them.
    pub queued: usize,
}

/// Which channels a finding goes to.
pub type Router = Arc<dyn Fn(&Finding) -> Vec<String> + Send + Sync>;

impl Store {
    /// Route the findings stored since the cursor (at most `batch`) into the outbox.
    /// The first call starts the cursor at the newest finding: what was found before
    /// alerts were configured is not sent.
    pub async fn route_alerts(&self, router: Router, batch: u32) -> Result<Routed, StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            let cursor: Option<i64> = get_setting(&tx, CURSOR)?.and_then(|v| v.parse().ok());
            let Some(cursor) = cursor else {
                let newest: i64 =
                    tx.query_row("SELECT COALESCE(MAX(id), 0) FROM findings", [], |r| r.get(0))?;
                put_setting(&tx, CURSOR, &newest.to_string())?;
                tx.commit()?;
                return Ok(Routed::default());
            };
            let found: Vec<Finding> = {
                let mut st = tx.prepare_cached(&format!(
                    "SELECT {FINDING_COLS} FROM findings WHERE id > ?1 ORDER BY id LIMIT ?2"
                ))?;
                let rows = st.query_map(params![cursor, batch], finding_row)?;
                rows.collect::<Result<_, _>>()?
            };
            let Some(last) = found.last().map(|f| f.id) else {
                return Ok(Routed::default());
            };
            let now = now_unix();
            let mut queued = 0;
            for f in &found {
                let channels = router(f);
                if channels.is_empty() {
                    continue;
                }
                let json = serde_json::to_string(f)
                    .map_err(|e| StoreError::Corrupt(format!("finding {}: {e}", f.id)))?;
                for ch in channels {
                    queued += tx.execute(
                        "INSERT INTO alert_outbox (channel, finding_id, finding, created_unix, next_unix)
                         VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT(channel, finding_id) DO NOTHING",
                        params![ch, f.id, json, now],
                    )?;
                }
            }
            put_setting(&tx, CURSOR, &last.to_string())?;
            tx.commit()?;
            Ok(Routed {
                findings: found.len(),
                queued,
            })
        })
        .await
    }

    /// Deliveries of `channel` due now, oldest first.
    pub async fn due_alerts(&self, channel: &str, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        let channel = channel.to_string();
        self.call(move |c| {
            let mut st = c.prepare_cached(
                "SELECT id, finding, created_unix, attempts FROM alert_outbox
                 WHERE channel = ?1 AND sent_unix IS NULL AND failed = 0 AND next_unix <= ?2
                 ORDER BY id LIMIT ?3",
            )?;
            let rows = st.query_map(params![channel, now_unix(), limit], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, u32>(3)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, json, created_unix, attempts) = row?;
                let finding = serde_json::from_str(&json)
                    .map_err(|e| StoreError::Corrupt(format!("alert_outbox {id}: {e}")))?;
                out.push(Delivery {
                    id,
                    finding,
                    created_unix,
                    attempts,
                });
            }
            Ok(out)
        })
        .await
    }

    /// The deliveries `ids` reached their channel.
    pub async fn alerts_sent(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            let now = now_unix();
            for id in ids {
                tx.execute(
                    "UPDATE alert_outbox SET sent_unix = ?2, last_error = NULL WHERE id = ?1",
                    params![id, now],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// The deliveries `ids` failed: try again at `next_unix`, or give up (`failed`).
    pub async fn alerts_retry(
        &self,
        ids: Vec<i64>,
        next_unix: i64,
        error: String,
        give_up: bool,
    ) -> Result<(), StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            for id in ids {
                tx.execute(
                    "UPDATE alert_outbox SET attempts = attempts + 1, next_unix = ?2,
                     last_error = ?3, failed = ?4 WHERE id = ?1",
                    params![id, next_unix, error, give_up],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Pending, sent and failed deliveries per channel, with the newest error.
    pub async fn outbox_stats(&self) -> Result<Vec<(String, OutboxStats)>, StoreError> {
        self.call(|c| {
            let mut st = c.prepare_cached(
                "SELECT channel,
                        SUM(sent_unix IS NULL AND failed = 0),
                        SUM(sent_unix IS NOT NULL),
                        SUM(failed),
                        (SELECT last_error FROM alert_outbox o2 WHERE o2.channel = o.channel
                           AND o2.last_error IS NOT NULL ORDER BY o2.id DESC LIMIT 1)
                 FROM alert_outbox o GROUP BY channel ORDER BY channel",
            )?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    OutboxStats {
                        pending: r.get(1)?,
                        sent: r.get(2)?,
                        failed: r.get(3)?,
                        last_error: r.get(4)?,
                    },
                ))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Drop sent and failed deliveries older than `before_unix` (retention).
    pub async fn prune_outbox(&self, before_unix: i64) -> Result<usize, StoreError> {
        self.call(move |c| {
            Ok(c.execute(
                "DELETE FROM alert_outbox WHERE (sent_unix IS NOT NULL OR failed = 1)
                 AND created_unix < ?1",
                [before_unix],
            )?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewFinding;
    use api::model::Severity;

    #[tokio::test]
    async fn routed_findings_wait_in_the_outbox_until_sent_and_only_new_ones_route() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("s.db"), 8).expect("open");
        let record = |check: &str, sev| {
            let s = s.clone();
            let f = NewFinding {
                key: Some(format!("{check}-{}", rand::random::<u32>())),
                ..NewFinding::new(check, sev, "m")
            };
            async move { s.record_finding(f, 60).await.expect("record") }
        };
        record("before", Severity::Critical).await;
        let router: Router = Arc::new(|f: &Finding| {
            if f.severity == Severity::Info {
                vec![]
            } else {
                vec!["hook".to_string(), "log".to_string()]
            }
        });
        assert_eq!(
            s.route_alerts(router.clone(), 100).await.expect("route"),
            Routed::default(),
            "history is not sent"
        );
        record("a", Severity::High).await;
        record("quiet", Severity::Info).await;
        record("b", Severity::Critical).await;
        // The Info finding goes nowhere, and the cursor moves past it too.
        assert_eq!(
            s.route_alerts(router.clone(), 100).await.expect("route"),
            Routed {
                findings: 3,
                queued: 4
            }
        );
        assert_eq!(
            s.route_alerts(router.clone(), 100).await.expect("route"),
            Routed::default(),
            "routed once"
        );
        let due = s.due_alerts("hook", 10).await.expect("due");
        assert_eq!(
            due.iter()
                .map(|d| d.finding.check.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        s.alerts_retry(vec![due[0].id], now_unix() + 3600, "refused".into(), false)
            .await
            .expect("retry");
        s.alerts_sent(vec![due[1].id]).await.expect("sent");
        assert!(
            s.due_alerts("hook", 10).await.expect("due").is_empty(),
            "a is not due yet"
        );
        let stats = s.outbox_stats().await.expect("stats");
        assert_eq!(
            stats,
            [
                (
                    "hook".to_string(),
                    OutboxStats {
                        pending: 1,
                        sent: 1,
                        failed: 0,
                        last_error: Some("refused".into())
                    }
                ),
                (
                    "log".to_string(),
                    OutboxStats {
                        pending: 2,
                        ..Default::default()
                    }
                )
            ]
        );
    }
}
