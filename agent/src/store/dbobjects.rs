// SPDX-License-Identifier: GPL-2.0-only
//! Database objects a fix dropped, with the CREATE statement that makes each again
//! (`detection::dbobjects`): CSM's `db_object_backups`, bounded.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::db::{now_rfc3339, now_unix, Store, StoreError};

/// Backups kept, at most: the oldest drops go first.
pub const MAX_DB_OBJECT_BACKUPS: i64 = 10_000;

/// What a fix keeps before it drops an object.
#[derive(Clone, Debug)]
pub struct NewDbObjectBackup {
    pub account: String,
    pub schema: String,
    pub kind: String,
    pub name: String,
    pub create_sql: String,
    pub sql_mode: String,
    pub finding_id: Option<i64>,
    pub dropped_by: String,
}

/// One backup as `/db-object-backups` lists it (CSM's fields), and its statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DbObjectBackup {
    /// Opaque: what preview and restore take.
    pub key: String,
    pub account: String,
    pub schema: String,
    /// trigger, event, procedure or function.
    pub kind: String,
    pub name: String,
    /// RFC 3339.
    pub dropped_at: String,
    pub dropped_by: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub finding_id: String,
    /// Length of the CREATE statement.
    pub body_bytes: usize,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub restored_at: String,
    pub restored: bool,
    #[serde(skip)]
    pub create_sql: String,
    #[serde(skip)]
    pub sql_mode: String,
}

const COLUMNS: &str = "key, account, schema_name, kind, name, dropped_at, dropped_by, finding_id, create_sql, restored_at, sql_mode";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DbObjectBackup> {
    let create_sql: String = r.get(8)?;
    let restored_at: String = r.get(9)?;
    Ok(DbObjectBackup {
        key: r.get(0)?,
        account: r.get(1)?,
        schema: r.get(2)?,
        kind: r.get(3)?,
        name: r.get(4)?,
        dropped_at: r.get(5)?,
        dropped_by: r.get(6)?,
        finding_id: r
            .get::<_, Option<i64>>(7)?
            .map(|i| i.to_string())
            .unwrap_or_default(),
        body_bytes: create_sql.len(),
        restored: !restored_at.is_empty(),
        restored_at,
        create_sql,
        sql_mode: r.get(10)?,
    })
}

impl Store {
    /// Keep a backup; returns its key.
    pub async fn add_db_object_backup(&self, b: NewDbObjectBackup) -> Result<String, StoreError> {
        self.call(move |c| {
            let unix = now_unix();
            let key = format!("{unix}-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO db_object_backups (key, account, schema_name, kind, name, create_sql,
                    sql_mode, finding_id, dropped_by, dropped_at, dropped_unix)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    key,
                    b.account,
                    b.schema,
                    b.kind,
                    b.name,
                    b.create_sql,
                    b.sql_mode,
                    b.finding_id,
                    b.dropped_by,
                    now_rfc3339(),
                    unix
                ],
            )?;
            tx.execute(
                "DELETE FROM db_object_backups WHERE key IN (
                    SELECT key FROM db_object_backups ORDER BY dropped_unix DESC, key DESC
                    LIMIT -1 OFFSET ?1)",
                [MAX_DB_OBJECT_BACKUPS],
            )?;
            tx.commit()?;
            Ok(key)
        })
        .await
    }

    /// Every backup, newest first.
    pub async fn db_object_backups(&self) -> Result<Vec<DbObjectBackup>, StoreError> {
        self.call(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM db_object_backups ORDER BY dropped_unix DESC, key DESC"
            ))?;
            let rows = st.query_map([], row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn db_object_backup(
        &self,
        key: String,
    ) -> Result<Option<DbObjectBackup>, StoreError> {
        self.call(move |c| {
            Ok(c.query_row(
                &format!("SELECT {COLUMNS} FROM db_object_backups WHERE key = ?1"),
                [key],
                row,
            )
            .optional()?)
        })
        .await
    }

    pub async fn mark_db_object_restored(&self, key: String) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "UPDATE db_object_backups SET restored_at = ?1 WHERE key = ?2",
                params![now_rfc3339(), key],
            )?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn backups_round_trip_newest_first_and_are_marked_restored() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("s.db"), 16).expect("store");
        let new = |name: &str| NewDbObjectBackup {
            account: "shop".into(),
            schema: "shop_wp".into(),
            kind: "trigger".into(),
            name: name.into(),
            create_sql: format!("CREATE TRIGGER {name} BEFORE INSERT ON t FOR EACH ROW SET @x = 1"),
            sql_mode: "STRICT_TRANS_TABLES".into(),
            finding_id: Some(7),
            dropped_by: "op".into(),
        };
        let a = store.add_db_object_backup(new("a")).await.expect("add");
        let b = store.add_db_object_backup(new("b")).await.expect("add");
        let all = store.db_object_backups().await.expect("list");
        assert_eq!(all.len(), 2);
        assert!(all.iter().any(|x| x.key == a) && all.iter().any(|x| x.key == b));
        let got = store
            .db_object_backup(b.clone())
            .await
            .expect("get")
            .expect("there");
        assert_eq!(
            (got.name.as_str(), got.finding_id.as_str(), got.restored),
            ("b", "7", false)
        );
        assert_eq!(got.body_bytes, got.create_sql.len());
        store
            .mark_db_object_restored(b.clone())
            .await
            .expect("mark");
        let got = store
            .db_object_backup(b)
            .await
            .expect("get")
            .expect("there");
        assert!(got.restored && !got.restored_at.is_empty());
        assert!(store
            .db_object_backup("nope".into())
            .await
            .expect("get")
            .is_none());
    }
}
