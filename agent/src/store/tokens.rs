// SPDX-License-Identifier: GPL-2.0-only
//! API tokens minted at run time (`rampart token create`): the name, the scope and
//! the SHA-256 of the token, never the token itself. The agent re-reads the table
//! while it runs, so a token works, and a revoked one stops, without a restart.

use rusqlite::{params, OptionalExtension};

use super::{now_rfc3339, Store, StoreError};

/// One minted token, as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct StoredToken {
    pub name: String,
    /// SHA-256 of the token, hex.
    pub sha256: String,
    /// `admin`, `read` or `metrics`.
    pub scope: String,
    pub created_at: String,
}

/// A row of `name, sha256, scope, created_at`.
fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredToken> {
    Ok(StoredToken {
        name: r.get(0)?,
        sha256: r.get(1)?,
        scope: r.get(2)?,
        created_at: r.get(3)?,
    })
}

impl Store {
    /// Record a minted token. `Ok(false)`: the name is taken.
    pub async fn token_insert(
        &self,
        name: &str,
        sha256: &str,
        scope: &str,
    ) -> Result<bool, StoreError> {
        let (name, sha256, scope) = (name.to_string(), sha256.to_string(), scope.to_string());
        self.call(move |c| {
            let n = c.execute(
                "INSERT INTO api_tokens (name, sha256, scope, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO NOTHING",
                params![name, sha256, scope, now_rfc3339()],
            )?;
            Ok(n == 1)
        })
        .await
    }

    /// Every minted token, by name.
    pub async fn tokens(&self) -> Result<Vec<StoredToken>, StoreError> {
        self.call(|c| {
            let mut st = c.prepare_cached(
                "SELECT name, sha256, scope, created_at FROM api_tokens ORDER BY name",
            )?;
            let rows = st.query_map([], token_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Remove a minted token; the removed row, if there was one.
    pub async fn token_revoke(&self, name: &str) -> Result<Option<StoredToken>, StoreError> {
        let name = name.to_string();
        self.call(move |c| {
            let row = c
                .query_row(
                    "DELETE FROM api_tokens WHERE name = ?1
                     RETURNING name, sha256, scope, created_at",
                    [name],
                    token_row,
                )
                .optional()?;
            Ok(row)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_are_kept_by_name_and_revoked_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("s.db"), 8).expect("open");
        assert!(s.token_insert("ci", "aa", "read").await.expect("insert"));
        assert!(
            !s.token_insert("ci", "bb", "admin").await.expect("insert"),
            "a taken name is refused, not replaced"
        );
        assert!(s
            .token_insert("grafana", "cc", "metrics")
            .await
            .expect("insert"));
        let all = s.tokens().await.expect("list");
        assert_eq!(
            all.iter()
                .map(|t| (t.name.as_str(), t.sha256.as_str(), t.scope.as_str()))
                .collect::<Vec<_>>(),
            [("ci", "aa", "read"), ("grafana", "cc", "metrics")]
        );
        assert_eq!(
            s.token_revoke("ci")
                .await
                .expect("revoke")
                .map(|t| t.sha256),
            Some("aa".into())
        );
        assert_eq!(s.token_revoke("ci").await.expect("revoke"), None);
        assert_eq!(s.tokens().await.expect("list").len(), 1);
    }
}
