// SPDX-License-Identifier: GPL-2.0-only
//! Incidents: findings grouped by a correlation key (account, mailbox, domain,
//! process, remote IP). At most one open or contained incident per key; closing one
//! (resolved, dismissed) means the next finding for that key starts a fresh one.

use api::model::Severity;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use super::db::{now_rfc3339, Store, StoreError};

pub const INCIDENT_STATUSES: &[&str] = &["open", "contained", "resolved", "dismissed"];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Incident {
    pub id: i64,
    /// account, mailbox, domain, process or ip.
    pub kind: String,
    /// The key's value ("alice", "198.51.100.7", "php-fpm (uid 33)").
    pub source: String,
    /// `<kind>:<source>`.
    pub correlation_key: String,
    pub status: String,
    pub severity: String,
    pub title: String,
    pub created_at: String,
    pub updated_at: String,
    pub finding_count: i64,
    /// Distinct checks seen, in order of first appearance.
    pub checks: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub details: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_by: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    #[error("no incident {0}")]
    NotFound(i64),
    #[error("incident {open} is already open for {key}; it must be closed first")]
    KeyInUse { open: i64, key: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for IncidentError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

/// One group of `/incidents/groups`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct IncidentGroup {
    pub kind: String,
    pub source: String,
    pub incidents: i64,
    pub findings: i64,
    pub severity: String,
    pub updated_at: String,
    pub latest_id: i64,
}

fn rank(s: &str) -> u8 {
    match Severity::parse(s) {
        Some(Severity::Critical) => 4,
        Some(Severity::High) => 3,
        Some(Severity::Warning) => 2,
        _ => 1,
    }
}

const COLS: &str = "id, kind, source, status, severity, title, created_at, updated_at, finding_count, checks, details, status_by";

fn row(r: &Row<'_>) -> rusqlite::Result<Incident> {
    let kind: String = r.get(1)?;
    let source: String = r.get(2)?;
    let checks: String = r.get(9)?;
    Ok(Incident {
        id: r.get(0)?,
        correlation_key: format!("{kind}:{source}"),
        kind,
        source,
        status: r.get(3)?,
        severity: r.get(4)?,
        title: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
        finding_count: r.get(8)?,
        checks: checks
            .split(',')
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect(),
        details: r.get(10)?,
        status_by: r.get(11)?,
    })
}

fn get(c: &Connection, id: i64) -> Result<Option<Incident>, StoreError> {
    Ok(c.query_row(
        &format!("SELECT {COLS} FROM incidents WHERE id = ?1"),
        [id],
        row,
    )
    .optional()?)
}

/// `active` = open + contained; `all`; or one status. SQL condition and argument.
fn status_filter(status: &str) -> (&'static str, Option<String>) {
    match status {
        "all" => ("1", None),
        "active" | "" => ("status IN ('open', 'contained')", None),
        s => ("status = ?1", Some(s.to_string())),
    }
}

impl Store {
    /// Attach a new finding to the open incident of its key, or open one. Returns the
    /// incident id and whether it was created.
    pub async fn attach_incident(
        &self,
        finding_id: i64,
        kind: &'static str,
        source: String,
        severity: Severity,
        check: String,
        title: String,
    ) -> Result<(i64, bool), StoreError> {
        self.call(move |c| {
            let now = now_rfc3339();
            let unix = super::db::now_unix();
            let tx = c.transaction()?;
            let open: Option<(i64, String, String)> = tx
                .query_row(
                    "SELECT id, severity, checks FROM incidents
                     WHERE kind = ?1 AND source = ?2 AND status IN ('open', 'contained')",
                    params![kind, source],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let (id, created) = match open {
                Some((id, sev, checks)) => {
                    let sev = if rank(severity.as_str()) > rank(&sev) {
                        severity.as_str().to_string()
                    } else {
                        sev
                    };
                    let checks = if checks.split(',').any(|c| c == check) {
                        checks
                    } else {
                        format!("{checks},{check}")
                    };
                    tx.execute(
                        "UPDATE incidents SET updated_at = ?2, updated_unix = ?3, finding_count = finding_count + 1,
                         severity = ?4, checks = ?5 WHERE id = ?1",
                        params![id, now, unix, sev, checks],
                    )?;
                    (id, false)
                }
                None => {
                    tx.execute(
                        "INSERT INTO incidents (kind, source, status, severity, title, created_at, updated_at,
                           updated_unix, finding_count, checks)
                         VALUES (?1, ?2, 'open', ?3, ?4, ?5, ?5, ?6, 1, ?7)",
                        params![kind, source, severity.as_str(), title, now, unix, check],
                    )?;
                    (tx.last_insert_rowid(), true)
                }
            };
            tx.execute(
                "INSERT OR IGNORE INTO incident_findings (incident_id, finding_id) VALUES (?1, ?2)",
                params![id, finding_id],
            )?;
            tx.commit()?;
            Ok((id, created))
        })
        .await
    }

    /// Incidents, most recently updated first.
    pub async fn incidents(
        &self,
        status: String,
        kind: Option<String>,
        limit: u32,
    ) -> Result<Vec<Incident>, StoreError> {
        self.call(move |c| {
            let (cond, arg) = status_filter(&status);
            let sql = format!(
                "SELECT {COLS} FROM incidents WHERE {cond} AND (?2 IS NULL OR kind = ?2)
                 ORDER BY updated_unix DESC, id DESC LIMIT ?3"
            );
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map(params![arg, kind, limit], row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// One incident and the ids of its findings (oldest first).
    pub async fn incident(&self, id: i64) -> Result<Option<(Incident, Vec<i64>)>, StoreError> {
        self.call(move |c| {
            let Some(i) = get(c, id)? else {
                return Ok(None);
            };
            let mut st = c.prepare(
                "SELECT finding_id FROM incident_findings WHERE incident_id = ?1 ORDER BY finding_id",
            )?;
            let ids = st
                .query_map([id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(Some((i, ids)))
        })
        .await
    }

    /// Set an incident's status. Reopening (open/contained) fails when another
    /// incident is open for the same key.
    pub async fn set_incident_status(
        &self,
        id: i64,
        status: &'static str,
        details: String,
        actor: String,
    ) -> Result<Incident, IncidentError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            let Some(cur) = get(&tx, id)? else {
                return Ok(Err(IncidentError::NotFound(id)));
            };
            if matches!(status, "open" | "contained") {
                let other: Option<i64> = tx
                    .query_row(
                        "SELECT id FROM incidents WHERE kind = ?1 AND source = ?2
                         AND status IN ('open', 'contained') AND id != ?3",
                        params![cur.kind, cur.source, id],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(open) = other {
                    return Ok(Err(IncidentError::KeyInUse {
                        open,
                        key: cur.correlation_key,
                    }));
                }
            }
            tx.execute(
                "UPDATE incidents SET status = ?2, details = ?3, status_by = ?4, updated_at = ?5,
                 updated_unix = ?6 WHERE id = ?1",
                params![
                    id,
                    status,
                    details,
                    actor,
                    now_rfc3339(),
                    super::db::now_unix()
                ],
            )?;
            let updated = get(&tx, id)?
                .ok_or_else(|| StoreError::Corrupt(format!("incident {id} vanished")))?;
            tx.commit()?;
            Ok(Ok(updated))
        })
        .await?
    }

    /// Incidents rolled up by (kind, source).
    pub async fn incident_groups(
        &self,
        status: String,
        kind: Option<String>,
        limit: u32,
    ) -> Result<Vec<IncidentGroup>, StoreError> {
        self.call(move |c| {
            let (cond, arg) = status_filter(&status);
            let sql = format!(
                "SELECT kind, source, COUNT(*), SUM(finding_count), MAX(updated_at), MAX(id),
                   group_concat(severity) FROM incidents
                 WHERE {cond} AND (?2 IS NULL OR kind = ?2)
                 GROUP BY kind, source ORDER BY MAX(updated_unix) DESC LIMIT ?3"
            );
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map(params![arg, kind, limit], |r| {
                let sevs: String = r.get(6)?;
                let severity = sevs
                    .split(',')
                    .max_by_key(|s| rank(s))
                    .unwrap_or("info")
                    .to_string();
                Ok(IncidentGroup {
                    kind: r.get(0)?,
                    source: r.get(1)?,
                    incidents: r.get(2)?,
                    findings: r.get(3)?,
                    updated_at: r.get(4)?,
                    latest_id: r.get(5)?,
                    severity,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn attach(s: &Store, fid: i64, src: &str, sev: Severity, check: &str) -> (i64, bool) {
        s.attach_incident(fid, "ip", src.into(), sev, check.into(), format!("t {src}"))
            .await
            .expect("attach")
    }

    #[tokio::test]
    async fn one_open_incident_per_key_and_closing_starts_fresh() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("s.db"), 8).expect("open");
        let (a, created) = attach(&s, 1, "198.51.100.7", Severity::Warning, "port_scan").await;
        assert!(created);
        assert_eq!(
            attach(&s, 2, "198.51.100.7", Severity::High, "ssh_bruteforce").await,
            (a, false)
        );
        let (b, _) = attach(&s, 3, "203.0.113.9", Severity::Info, "port_scan").await;
        let (i, ids) = s.incident(a).await.expect("get").expect("exists");
        assert_eq!(
            (i.finding_count, i.severity.as_str(), ids),
            (2, "high", vec![1, 2])
        );
        assert_eq!(i.checks, ["port_scan", "ssh_bruteforce"]);
        assert_eq!(i.correlation_key, "ip:198.51.100.7");

        let r = s
            .set_incident_status(a, "resolved", "done".into(), "op".into())
            .await
            .expect("resolve");
        assert_eq!(
            (r.status.as_str(), r.details.as_str()),
            ("resolved", "done")
        );
        let (c, created) = attach(&s, 4, "198.51.100.7", Severity::Info, "port_scan").await;
        assert!(created && c != a, "closing means a fresh incident");
        // Reopening the old one while the new one is open is refused.
        assert!(matches!(
            s.set_incident_status(a, "open", String::new(), "op".into()).await,
            Err(IncidentError::KeyInUse { open, .. }) if open == c
        ));
        assert!(matches!(
            s.set_incident_status(999, "open", String::new(), "op".into())
                .await,
            Err(IncidentError::NotFound(999))
        ));
        let active = s.incidents("active".into(), None, 10).await.expect("list");
        assert_eq!(active.iter().map(|i| i.id).collect::<Vec<_>>().len(), 2);
        assert!(active.iter().all(|i| i.id != a));
        let all = s
            .incident_groups("all".into(), Some("ip".into()), 10)
            .await
            .expect("groups");
        let g = all
            .iter()
            .find(|g| g.source == "198.51.100.7")
            .expect("group");
        assert_eq!(
            (g.incidents, g.findings, g.severity.as_str()),
            (2, 3, "high")
        );
        assert!(all
            .iter()
            .any(|g| g.source == "203.0.113.9" && g.latest_id == b));
    }
}
