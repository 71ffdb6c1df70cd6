// SPDX-License-Identifier: GPL-2.0-only
//! The SQLite store. One `rusqlite::Connection` lives on its own thread and runs
//! closures sent over a bounded channel; replies come back over oneshot channels.
//! No rusqlite call ever runs on a tokio worker.

mod alerts;
mod bots;
mod dbobjects;
mod findings;
mod incidents;
mod logdata;
mod retention;
mod threat;
mod tokens;
pub use alerts::{Delivery, OutboxStats, Routed, Router};
pub use bots::{BotClaim, MAX_BOT_CLAIMS};
pub use dbobjects::{DbObjectBackup, NewDbObjectBackup, MAX_DB_OBJECT_BACKUPS};
pub use findings::{
    fix_action, FindingQuery, NewFinding, QuarantineRow, Recorded, StatsRows, StoreSummary,
    Suppression, UiAuditEntry, CHECK_SIGNATURE,
};
pub use incidents::{Incident, IncidentError, IncidentGroup, INCIDENT_STATUSES};
pub use logdata::{
    CodeCount, Deferral, EmailStats, FindingGroup, HostCount, MailScript, ModsecBlock, ModsecEvent,
    ModsecRule, ModsecRuleHit, ModsecStats, RuleCount, Sender, Window,
};
pub use retention::{Bounds, Pruned};
pub use threat::{ThreatEvent, ThreatIp, ThreatTotals};
pub use tokens::StoredToken;
mod db;
pub use db::{
    now_rfc3339, now_unix, rfc3339, rfc3339_unix, AuditEntry, EntryQuery, FwList, Store, StoreError,
};

#[cfg(test)]
mod tests {
    use api::model::BlockEntry;

    use super::*;

    #[tokio::test]
    async fn a_panicking_call_is_rolled_back_and_the_store_keeps_serving() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("s.db"), 8).expect("open");
        let r = s
            .call(|c| -> Result<(), StoreError> {
                c.execute_batch(
                    "BEGIN; INSERT INTO settings(key, value, updated_at) VALUES ('k', 'v', 'now');",
                )?;
                panic!("bug in a query");
            })
            .await;
        assert!(matches!(r, Err(StoreError::Closed)), "{r:?}");
        assert_eq!(
            s.setting("k").await.expect("still serving"),
            None,
            "rolled back"
        );
        s.set_settings(vec![("k".into(), Some("w".into()))])
            .await
            .expect("writes go on");
        assert_eq!(s.setting("k").await.expect("read").as_deref(), Some("w"));
    }

    #[tokio::test]
    async fn blocks_upsert_expire_delete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("s.db"), 8).expect("open");
        let e = |ip: &str| BlockEntry {
            ip: ip.into(),
            reason: "r".into(),
            source: "api".into(),
            blocked_at: now_rfc3339(),
            expires_at: None,
        };
        s.upsert_block(e("203.0.113.5"), Some(100))
            .await
            .expect("upsert");
        s.upsert_block(e("203.0.113.5"), Some(100))
            .await
            .expect("upsert twice");
        s.upsert_block(e("198.51.100.0/24"), None)
            .await
            .expect("upsert");
        assert_eq!(
            s.entries(FwList::Blocks).await.expect("list").len(),
            2,
            "upsert must not double an entry"
        );
        assert_eq!(
            s.expired(FwList::Blocks, 99).await.expect("expired"),
            Vec::<String>::new()
        );
        assert_eq!(
            s.expired(FwList::Blocks, 100).await.expect("expired"),
            vec!["203.0.113.5".to_string()]
        );
        assert!(s.delete_block("203.0.113.5".into()).await.expect("delete"));
        assert!(!s
            .delete_block("203.0.113.5".into())
            .await
            .expect("delete again"));
        assert!(s
            .block("198.51.100.0/24".into())
            .await
            .expect("get")
            .is_some());
    }

    #[tokio::test]
    async fn entry_queries_filter_order_and_limit_in_sql() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("s.db"), 8).expect("open");
        let e = |ip: &str, at: &str| {
            let entry = BlockEntry {
                ip: ip.into(),
                reason: "r".into(),
                source: "t".into(),
                blocked_at: at.into(),
                expires_at: None,
            };
            (entry, None)
        };
        s.upsert_entries(
            FwList::Blocks,
            vec![
                e("203.0.113.1", "2026-01-01T00:00:01Z"),
                e("203.0.113.0/25", "2026-01-01T00:00:02Z"),
                e("2001:db8::/32", "2026-01-01T00:00:03Z"),
                e("2001:db8::1", "2026-01-01T00:00:04Z"),
            ],
        )
        .await
        .expect("upsert");
        assert_eq!(s.count_subnets(FwList::Blocks).await.expect("count"), 2);
        let q = EntryQuery {
            subnets_only: true,
            ..Default::default()
        };
        let subnets = s.query_entries(FwList::Blocks, q).await.expect("subnets");
        let ips: Vec<&str> = subnets.iter().map(|e| e.ip.as_str()).collect();
        assert_eq!(ips, ["203.0.113.0/25", "2001:db8::/32"]);
        let q = EntryQuery {
            newest_first: true,
            limit: Some(2),
            ..Default::default()
        };
        let newest = s.query_entries(FwList::Blocks, q).await.expect("newest");
        let ips: Vec<&str> = newest.iter().map(|e| e.ip.as_str()).collect();
        assert_eq!(ips, ["2001:db8::1", "2001:db8::/32"]);
    }
}
