// SPDX-License-Identifier: GPL-2.0-only
//! The findings routes: enriched findings and their detail, history (and its CSV
//! rows), stats, trend and timeline, dismiss and fix, the test alert, the operator
//! audit log and suppressions, with their response types.

use std::collections::BTreeMap;

use api::{
    model::{Finding, FindingRef, HistoryQuery, Severity, SuppressionRequest},
    ApiError,
};
use serde::Serialize;
use warp::http::StatusCode;

use super::{ok, reply, store_err, AgentBackend, Reply};
use crate::store::rfc3339_unix;
use crate::{
    detection::quarantine::QuarantineError,
    store::{now_unix, FindingQuery, FwList, NewFinding, QuarantineRow, Suppression, UiAuditEntry},
};

/// A finding with what `/fix` would do for it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Enriched {
    #[serde(flatten)]
    pub finding: Finding,
    pub fix_available: bool,
    pub fix: Option<&'static str>,
    pub quarantine_id: Option<String>,
    /// Where the finding's address is, when it has one and a GeoIP database knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geo: Option<crate::firewall::geoip::Location>,
}

/// `GET /finding-detail`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Detail {
    pub finding: Finding,
    pub actions: Vec<UiAuditEntry>,
    pub quarantine: Vec<QuarantineRow>,
    pub fix: Option<&'static str>,
}

/// `GET /history`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct HistoryPage {
    pub findings: Vec<Finding>,
    pub total: i64,
    pub limit: u32,
    pub offset: u32,
    /// More findings match than this page holds.
    pub truncated: bool,
}

/// Counts per severity (every one present, CSM's names and `info`) and their total:
/// `/stats`, the trend and timeline buckets, and `/status`' severities.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SeverityCounts {
    #[serde(flatten)]
    pub by_severity: BTreeMap<&'static str, i64>,
    pub total: i64,
}

impl SeverityCounts {
    pub(super) fn of(pairs: impl IntoIterator<Item = (String, i64)>) -> Self {
        let mut by_severity: BTreeMap<&'static str, i64> =
            Severity::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        let mut total = 0;
        for (k, n) in pairs {
            if let Some(slot) = Severity::parse(&k).and_then(|s| by_severity.get_mut(s.as_str())) {
                *slot += n;
                total += n;
            }
        }
        Self { by_severity, total }
    }
}

/// `POST /verify-finding`: the finding's file, scanned again with the rules in force.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Verified {
    pub id: i64,
    pub check: String,
    pub path: String,
    /// The finding still holds (the file is there and still matches).
    pub verified: bool,
    /// present (same content, still matching), changed (other content, still
    /// matching), clean (no rule matches any more) or gone (no such file).
    pub state: &'static str,
    /// The rules that match now.
    pub matches: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// `GET /challenge/stats`: Rampart serves no challenge pages.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ChallengeStats {
    pub enabled: bool,
    pub pending: u64,
    pub escalated: u64,
    pub routed_by_check: BTreeMap<String, u64>,
    pub recent: Vec<serde_json::Value>,
}

/// `GET /stats`, CSM's shape (csm-contract.md) with Rampart's `active` and
/// `top_checks` beside it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Stats {
    pub last_24h: SeverityCounts,
    pub active: SeverityCounts,
    /// Findings per check in the last 24 hours.
    pub by_check: BTreeMap<String, i64>,
    /// Since the newest critical finding, as a Go duration ("" if none ever).
    pub last_critical_ago: String,
    pub last_critical_iso: String,
    pub accounts_at_risk: Vec<AccountAtRisk>,
    pub top_checks: Vec<CheckCount>,
    pub auto_response: AutoResponseSummary,
    pub top_accounts: Vec<AccountCount>,
    pub brute_force: BruteForce,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AccountAtRisk {
    pub account: String,
    /// CSM's integer: the worst active finding's severity.
    pub severity: u8,
    pub findings: i64,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AccountCount {
    pub account: String,
    pub count: i64,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CheckCount {
    pub check: String,
    pub count: i64,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AutoResponseSummary {
    /// Addresses the auto-responder blocked since the agent started.
    pub blocked: u64,
    /// Files quarantined in the last 24 hours.
    pub quarantined: usize,
    /// Processes the exec sensor killed since the agent started.
    pub killed: u64,
    pub quarantined_24h: usize,
    pub blocked_ips: i64,
}

/// The log scenarios' work since the agent started.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct BruteForce {
    pub failures: u64,
    pub triggers: u64,
    pub blocked: u64,
    pub dry_run: u64,
}

/// One day of `/stats/trend`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Day {
    #[serde(flatten)]
    pub counts: SeverityCounts,
    pub date: String,
}

/// One hour of `/stats/timeline`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Hour {
    #[serde(flatten)]
    pub counts: SeverityCounts,
    pub start: String,
    /// CSM's "HH:00" (UTC).
    pub hour: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Dismissed {
    pub status: &'static str,
    pub dismissed: Vec<i64>,
    /// For `POST /undo/run` within 30 s: puts the findings back (Rampart's).
    pub undo_token: String,
}

/// A finding fixed.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Fixed {
    pub status: &'static str,
    pub id: i64,
    pub action: &'static str,
    pub quarantine_id: Option<String>,
    pub path: String,
    /// A dropped database object's backup (`/db-object-backups`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_key: Option<String>,
}

/// `POST /fix-bulk`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct FixedBulk {
    pub fixed: Vec<Fixed>,
    pub failed: Vec<FixFailed>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct FixFailed {
    pub id: i64,
    pub error: String,
    pub code: u16,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TestAlertSent {
    pub status: &'static str,
    pub finding: Finding,
    /// What each alert channel made of it (sent directly, not through the outbox).
    pub channels: Vec<crate::findings::alerts::TestResult>,
}

/// Charon's answer to a settings update.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SettingsUpdated {
    pub message: &'static str,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SuppressionDeleted {
    pub status: &'static str,
    pub id: i64,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SuppressionAdded {
    pub status: &'static str,
    pub suppression: Suppression,
}

/// What `/fix` would do for a finding.
fn fix_for(f: &Finding) -> Option<&'static str> {
    crate::store::fix_action(&f.check, f.path.as_deref())
}

fn query_of(h: HistoryQuery) -> FindingQuery {
    FindingQuery {
        status: h.status,
        from_unix: h.from,
        to_unix: h.to,
        severity: h.severity,
        search: h.search,
        check: h.check,
        limit: h.limit,
        offset: h.offset,
        ..Default::default()
    }
}

/// Buckets from `since` in steps of `step`, each with every severity (zeros included).
fn buckets(
    rows: &[(i64, String, i64)],
    since: i64,
    step: i64,
    n: i64,
) -> Vec<(i64, SeverityCounts)> {
    (0..n)
        .map(|i| {
            let start = since + i * step;
            let pairs = rows
                .iter()
                .filter(|(b, _, _)| *b == start)
                .map(|(_, s, c)| (s.clone(), *c));
            (start, SeverityCounts::of(pairs))
        })
        .collect()
}

impl AgentBackend {
    /// Resolve a finding reference to ids (by id(s), or by check + message among the
    /// active ones).
    pub(super) async fn resolve(&self, r: &FindingRef) -> Result<Vec<i64>, ApiError> {
        let mut ids: Vec<i64> = r.ids.clone();
        ids.extend(r.id);
        if ids.is_empty() {
            let (rows, _) = self
                .store
                .query_findings(FindingQuery {
                    status: Some("active".into()),
                    check: r.check.clone(),
                    message: r.message.clone(),
                    limit: 1000,
                    ..Default::default()
                })
                .await
                .map_err(store_err)?;
            ids = rows.into_iter().map(|f| f.id).collect();
        }
        Ok(ids)
    }

    pub(super) async fn finding_or_404(&self, id: i64) -> Result<Finding, ApiError> {
        self.store
            .finding(id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no finding {id}")))
    }

    /// Apply a finding's fix and mark it fixed.
    async fn fix_one(&self, id: i64, actor: &str) -> Result<Fixed, ApiError> {
        let f = self.finding_or_404(id).await?;
        let Some(action) = fix_for(&f) else {
            return Err(ApiError::unprocessable(format!(
                "no automatic fix for check {:?}; dismiss it instead",
                f.check
            )));
        };
        if f.check == crate::detection::dbobjects::CHECK_DB_OBJECT {
            return self.fix_db_object(&f, action, actor).await;
        }
        let path = f.path.clone().unwrap_or_default();
        let q = &self.detection.quarantine;
        let qid = match q
            .quarantine(
                std::path::Path::new(&path),
                &format!(
                    "fix of finding {id} ({})",
                    f.rule.as_deref().unwrap_or(&f.check)
                ),
                f.rule.clone(),
                Some(id),
                actor,
                // Only the content the finding was about.
                crate::detection::quarantine::Expect {
                    sha256: f.content_sha256.clone(),
                    file: None,
                },
            )
            .await
        {
            Ok(row) => Some(row.id),
            // Already gone (quarantined before, or deleted): fixed all the same.
            Err(QuarantineError::NotFound(_)) => None,
            Err(e) => return Err(super::q_err(e)),
        };
        self.store
            .set_finding_status(vec![id], "fixed", actor.to_string())
            .await
            .map_err(store_err)?;
        self.audit(
            actor,
            "fix",
            &path,
            &format!(
                "{action}{}",
                qid.as_deref().map(|q| format!(" {q}")).unwrap_or_default()
            ),
            Some(id),
        )
        .await;
        Ok(Fixed {
            status: "fixed",
            id,
            action,
            quarantine_id: qid,
            path,
            backup_key: None,
        })
    }

    /// Drop a malicious database object, its CREATE statement kept first.
    async fn fix_db_object(
        &self,
        f: &Finding,
        action: &'static str,
        actor: &str,
    ) -> Result<Fixed, ApiError> {
        use crate::detection::dbobjects::DbError;
        let key = self
            .detection
            .databases
            .drop_for(f, actor)
            .await
            .map_err(|e| match e {
                DbError::Gone(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
                DbError::NoClient(_) => {
                    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                }
                _ => ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()),
            })?;
        self.store
            .set_finding_status(vec![f.id], "fixed", actor.to_string())
            .await
            .map_err(store_err)?;
        self.audit(
            actor,
            "fix",
            &f.message,
            &format!("{action} (backup {key})"),
            Some(f.id),
        )
        .await;
        Ok(Fixed {
            status: "fixed",
            id: f.id,
            action,
            quarantine_id: None,
            path: String::new(),
            backup_key: Some(key),
        })
    }

    pub(crate) async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        details: &str,
        finding: Option<i64>,
    ) {
        if let Err(e) = self
            .store
            .ui_audit(actor, action, target, details, finding)
            .await
        {
            tracing::error!(error = %e, action, "Writing the audit log failed.");
        }
    }

    pub(super) async fn findings_enriched(&self) -> Result<Reply, ApiError> {
        let rows = self.store.active_findings(1000).await.map_err(store_err)?;
        let quarantined = self
            .store
            .quarantine_rows(None, false)
            .await
            .map_err(store_err)?;
        let out: Vec<Enriched> = rows
            .into_iter()
            .map(|f| {
                let fix = fix_for(&f);
                let quarantine_id = quarantined
                    .iter()
                    .find(|q| {
                        q.finding_id == Some(f.id)
                            || (f.path.as_deref() == Some(q.original_path.as_str()))
                    })
                    .map(|q| q.id.clone());
                let geo =
                    f.ip.as_deref()
                        .and_then(|ip| ip.parse().ok())
                        .map(|ip| self.geoip.get().lookup(ip, false))
                        .filter(|g| g.found);
                Enriched {
                    finding: f,
                    fix_available: fix.is_some(),
                    fix,
                    quarantine_id,
                    geo,
                }
            })
            .collect();
        ok(&out)
    }

    pub(super) async fn finding_detail(&self, r: FindingRef) -> Result<Reply, ApiError> {
        let ids = self.resolve(&r).await?;
        let Some(&id) = ids.first() else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "no such active finding",
            ));
        };
        let f = self.finding_or_404(id).await?;
        let actions = self
            .store
            .ui_audit_log(100, Some(id))
            .await
            .map_err(store_err)?;
        let quarantine: Vec<_> = self
            .store
            .quarantine_rows(None, true)
            .await
            .map_err(store_err)?
            .into_iter()
            .filter(|q| q.finding_id == Some(id) || Some(&q.original_path) == f.path.as_ref())
            .collect();
        let fix = fix_for(&f);
        ok(&Detail {
            finding: f,
            actions,
            quarantine,
            fix,
        })
    }

    pub(super) async fn history(&self, h: HistoryQuery) -> Result<Reply, ApiError> {
        let (limit, offset) = (h.limit, h.offset);
        let (findings, total) = self
            .store
            .query_findings(query_of(h))
            .await
            .map_err(store_err)?;
        let truncated = total > i64::from(offset) + findings.len() as i64;
        ok(&HistoryPage {
            findings,
            total,
            limit,
            offset,
            truncated,
        })
    }

    /// The rows of the CSV export (the API renders them).
    pub(super) async fn history_rows(
        &self,
        h: HistoryQuery,
        actor: &str,
    ) -> Result<Reply, ApiError> {
        let (rows, _) = self
            .store
            .query_findings(query_of(h))
            .await
            .map_err(store_err)?;
        self.audit(
            actor,
            "export_history_csv",
            "history",
            &format!("{} rows", rows.len()),
            None,
        )
        .await;
        ok(&rows)
    }

    pub(super) async fn stats(&self) -> Result<Reply, ApiError> {
        let since = now_unix() - 86400;
        let rows = self.store.stats_since(since).await.map_err(store_err)?;
        let active = self.store.severity_counts().await.map_err(store_err)?;
        let quarantined_24h = self
            .store
            .quarantine_rows(None, true)
            .await
            .map_err(store_err)?
            .into_iter()
            .filter(|q| q.quarantined_at >= rfc3339_unix(since))
            .count();
        let blocked_ips = self.store.count(FwList::Blocks).await.map_err(store_err)?;
        let last_critical_ago = rows
            .last_critical
            .as_deref()
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(|t| {
                let secs = (now_unix() - t.unix_timestamp()).max(0) as u64;
                api::model::go_duration(secs)
            })
            .unwrap_or_default();
        let r = &self.responder.stats;
        let l = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        let killed = self
            .kernel
            .exec(&self.pipeline)
            .into_iter()
            .find(|(k, _)| *k == "killed")
            .map_or(0, |(_, n)| n);
        let logs = self.log_stats.view();
        ok(&Stats {
            last_24h: SeverityCounts::of(rows.severities),
            active: SeverityCounts::of(active),
            by_check: rows.checks.iter().cloned().collect(),
            last_critical_ago,
            last_critical_iso: rows.last_critical.unwrap_or_default(),
            accounts_at_risk: rows
                .at_risk
                .into_iter()
                .map(|(account, severity, findings)| AccountAtRisk {
                    account,
                    severity,
                    findings,
                })
                .collect(),
            top_checks: rows
                .checks
                .into_iter()
                .take(20)
                .map(|(check, count)| CheckCount { check, count })
                .collect(),
            auto_response: AutoResponseSummary {
                blocked: l(&r.blocked),
                quarantined: quarantined_24h,
                killed,
                quarantined_24h,
                blocked_ips,
            },
            top_accounts: rows
                .top_accounts
                .into_iter()
                .map(|(account, count)| AccountCount { account, count })
                .collect(),
            brute_force: BruteForce {
                failures: logs.failures,
                triggers: logs.triggers,
                blocked: l(&r.blocked),
                dry_run: l(&r.dry_run),
            },
        })
    }

    pub(super) async fn stats_trend(&self, days: u32) -> Result<Reply, ApiError> {
        let today = time::OffsetDateTime::now_utc()
            .date()
            .midnight()
            .assume_utc()
            .unix_timestamp();
        let since = today - i64::from(days - 1) * 86400;
        let rows = self
            .store
            .bucket_counts(since, 86400)
            .await
            .map_err(store_err)?;
        let days = buckets(&rows, since, 86400, i64::from(days))
            .into_iter()
            .map(|(t, counts)| Day {
                counts,
                date: rfc3339_unix(t)[..10].to_string(),
            })
            .collect::<Vec<_>>();
        // CSM's shape: a bare array.
        ok(&days)
    }

    pub(super) async fn stats_timeline(&self, hours: u32) -> Result<Reply, ApiError> {
        let since = (now_unix() / 3600 - i64::from(hours - 1)) * 3600;
        let rows = self
            .store
            .bucket_counts(since, 3600)
            .await
            .map_err(store_err)?;
        let buckets = buckets(&rows, since, 3600, i64::from(hours))
            .into_iter()
            .map(|(t, counts)| Hour {
                counts,
                start: rfc3339_unix(t),
                hour: rfc3339_unix(t)[11..13].to_string() + ":00",
            })
            .collect::<Vec<_>>();
        // CSM's shape: a bare array.
        ok(&buckets)
    }

    pub(super) fn challenge_stats(&self) -> Result<Reply, ApiError> {
        ok(&ChallengeStats {
            enabled: false,
            pending: 0,
            escalated: 0,
            routed_by_check: BTreeMap::new(),
            recent: Vec::new(),
        })
    }

    pub(super) async fn verify_finding(
        &self,
        r: FindingRef,
        actor: &str,
    ) -> Result<Reply, ApiError> {
        use crate::detection::scan::{scan_file, ScanSkip};
        let mut ids = self.resolve(&r).await?;
        ids.sort_unstable();
        let Some(&id) = ids.last() else {
            return Err(ApiError::new(StatusCode::NOT_FOUND, "no such finding"));
        };
        let f = self.finding_or_404(id).await?;
        let Some(path) = f.path.clone() else {
            return Err(ApiError::unprocessable(format!(
                "finding {id} ({}) names no file to check again",
                f.check
            )));
        };
        let set = self.detection.engine.current();
        let max = self.detection.pool.max_bytes;
        let p = std::path::PathBuf::from(&path);
        let scanned = tokio::task::spawn_blocking(move || {
            let mut scanner = set.scanner();
            scan_file(&set, scanner.as_mut(), &p, max, &Default::default())
        })
        .await
        .map_err(|e| ApiError::internal("verify task", &e))?;
        let (state, matches, sha256) = match scanned {
            Err(ScanSkip::Open(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                ("gone", vec![], None)
            }
            Err(e) => {
                return Err(ApiError::unprocessable(format!(
                    "{path} cannot be checked: {e}"
                )))
            }
            Ok(rep) => {
                let names: Vec<String> = rep.matches.iter().map(|m| m.rule.clone()).collect();
                let state = if names.is_empty() {
                    "clean"
                } else if rep.sha256.is_some() && rep.sha256 == f.content_sha256 {
                    "present"
                } else {
                    "changed"
                };
                (state, names, rep.sha256)
            }
        };
        self.audit(actor, "verify_finding", &path, state, Some(id))
            .await;
        ok(&Verified {
            id,
            check: f.check,
            path,
            verified: matches!(state, "present" | "changed"),
            state,
            matches,
            sha256,
        })
    }

    pub(super) async fn dismiss(&self, r: FindingRef, actor: &str) -> Result<Reply, ApiError> {
        let ids = self.resolve(&r).await?;
        let changed = self
            .store
            .set_finding_status(ids, "dismissed", actor.to_string())
            .await
            .map_err(store_err)?;
        if changed.is_empty() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "no such finding to dismiss",
            ));
        }
        for id in &changed {
            self.audit(actor, "dismiss", &id.to_string(), &r.details, Some(*id))
                .await;
        }
        let undo_token = self.undo.record_findings(
            actor,
            "findings_dismiss",
            "findings_undismiss",
            format!(
                "Dismissed {} finding{}",
                changed.len(),
                if changed.len() == 1 { "" } else { "s" }
            ),
            changed.clone(),
        );
        ok(&Dismissed {
            status: "dismissed",
            dismissed: changed,
            undo_token,
        })
    }

    pub(super) async fn fix(&self, r: FindingRef, actor: &str) -> Result<Reply, ApiError> {
        let ids = self.resolve(&r).await?;
        let Some(&id) = ids.first() else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "no such active finding",
            ));
        };
        if let Some(named) = &r.file_path {
            // The fix acts on the finding's own file; a body naming another one is a
            // client mistake (or an attempt to steer the fix), never followed.
            let f = self.finding_or_404(id).await?;
            if f.path.as_deref() != Some(named.as_str()) {
                return Err(ApiError::unprocessable(format!(
                    "file_path {named:?} is not the finding's file"
                )));
            }
        }
        ok(&self.fix_one(id, actor).await?)
    }

    pub(super) async fn fix_bulk(&self, r: FindingRef, actor: &str) -> Result<Reply, ApiError> {
        let (mut fixed, mut failed) = (Vec::new(), Vec::new());
        for id in r.ids {
            match self.fix_one(id, actor).await {
                Ok(v) => fixed.push(v),
                Err(e) => failed.push(FixFailed {
                    id,
                    error: e.message,
                    code: e.status.as_u16(),
                }),
            }
        }
        ok(&FixedBulk { fixed, failed })
    }

    pub(super) async fn test_alert(&self, actor: &str) -> Result<Reply, ApiError> {
        let f = NewFinding {
            details: format!("sent by {actor}"),
            // Never deduplicated: every test is its own finding.
            key: Some(format!("test-{}", rand::random::<u64>())),
            ..NewFinding::new(
                crate::findings::alerts::TEST_CHECK,
                Severity::Info,
                "Test alert from Rampart",
            )
        };
        let found = self.detection.findings.report(f).await;
        self.audit(
            actor,
            "test_alert",
            "alerts",
            "",
            found.as_ref().map(|f| f.id),
        )
        .await;
        match found {
            Some(finding) => {
                let channels = self.alerts.test_all(&finding).await;
                ok(&TestAlertSent {
                    status: if channels.iter().all(|c| c.ok) {
                        "sent"
                    } else {
                        "partial"
                    },
                    finding,
                    channels,
                })
            }
            None => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the test finding was suppressed or not stored",
            )),
        }
    }

    /// Charon's notification settings, from the alert channels.
    pub(super) fn notification_settings(&self) -> Result<Reply, ApiError> {
        match self.alerts.notifications() {
            Some(n) => ok(&n),
            None => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "Notification settings not configured",
            )),
        }
    }

    pub(super) async fn update_notification_settings(
        &self,
        u: api::model::NotificationSettingsUpdate,
        actor: &str,
    ) -> Result<Reply, ApiError> {
        // What changed, never the values: a hook URL can hold a token.
        let changed: Vec<&str> = [
            ("enabled", u.enabled.is_some()),
            ("min_log_level", u.min_log_level.is_some()),
            ("notify_waf_blocks", u.notify_waf_blocks.is_some()),
            ("notify_acl_denials", u.notify_acl_denials.is_some()),
            ("notify_rate_limit_hits", u.notify_rate_limit_hits.is_some()),
            ("webhook_url", u.webhook_url.is_some()),
            ("email_recipients", u.email_recipients.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
        match self.alerts.update_notifications(u).await {
            Ok(()) => {
                self.audit(
                    actor,
                    "notification_settings",
                    "alerts",
                    &changed.join(","),
                    None,
                )
                .await;
                ok(&SettingsUpdated {
                    message: "Settings updated successfully",
                })
            }
            Err(Ok(bad)) => Err(ApiError::bad_request(bad)),
            Err(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), "Keeping the notification settings failed.");
                Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Failed to update settings",
                ))
            }
        }
    }

    pub(super) async fn audit_log(&self, limit: u32) -> Result<Reply, ApiError> {
        ok(&self
            .store
            .ui_audit_log(limit, None)
            .await
            .map_err(store_err)?)
    }

    pub(super) async fn suppressions(&self) -> Result<Reply, ApiError> {
        ok(&self.store.suppressions().await.map_err(store_err)?)
    }

    pub(super) async fn suppress(
        &self,
        r: SuppressionRequest,
        actor: &str,
    ) -> Result<Reply, ApiError> {
        let det = &self.detection;
        match r.action.as_deref().unwrap_or("add") {
            "delete" | "remove" => {
                let id =
                    r.id.ok_or_else(|| ApiError::bad_request("id required to delete"))?;
                if !self.store.delete_suppression(id).await.map_err(store_err)? {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        format!("no suppression {id}"),
                    ));
                }
                det.findings
                    .reload_suppressions()
                    .await
                    .map_err(store_err)?;
                self.audit(actor, "suppression_delete", &id.to_string(), "", None)
                    .await;
                ok(&SuppressionDeleted {
                    status: "deleted",
                    id,
                })
            }
            "add" => {
                let nonempty = |o: Option<String>| o.filter(|s| !s.trim().is_empty());
                let mut s = Suppression {
                    id: 0,
                    check: nonempty(r.check),
                    path_glob: nonempty(r.path_glob),
                    account: nonempty(r.account),
                    ip: nonempty(r.ip),
                    reason: r.reason,
                    created_at: crate::store::now_rfc3339(),
                    created_by: actor.to_string(),
                    hits: 0,
                };
                crate::findings::validate(&s).map_err(|e| ApiError::bad_request(e.to_string()))?;
                s.id = self
                    .store
                    .add_suppression(s.clone())
                    .await
                    .map_err(store_err)?;
                det.findings
                    .reload_suppressions()
                    .await
                    .map_err(store_err)?;
                self.audit(
                    actor,
                    "suppression_add",
                    &s.id.to_string(),
                    &serde_json::to_string(&s).unwrap_or_default(),
                    None,
                )
                .await;
                reply(
                    StatusCode::CREATED,
                    &SuppressionAdded {
                        status: "added",
                        suppression: s,
                    },
                )
            }
            other => Err(ApiError::bad_request(format!(
                "action must be add or delete, got {other:?}"
            ))),
        }
    }
}
