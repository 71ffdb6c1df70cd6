// SPDX-License-Identifier: GPL-2.0-only
//! The API's findings, rules, scan and quarantine operations over the store and the
//! detection pipeline.

use std::{collections::BTreeMap, path::PathBuf};

use api::{
    model::{DetectOp, Finding, FindingRef, HistoryQuery, Severity},
    ApiError,
};
use serde_json::{json, Value};
use warp::http::StatusCode;

use super::{store_err, AgentBackend};
use crate::{
    detection::{
        quarantine::QuarantineError, scan::JobInfo, signatures::RuleKind, CHECK_SIGNATURE,
    },
    store::{now_unix, FindingQuery, IncidentError, NewFinding, Suppression},
};

fn q_err(e: QuarantineError) -> ApiError {
    match e {
        QuarantineError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
        QuarantineError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
        QuarantineError::Invalid(m) => ApiError::unprocessable(m),
        e @ QuarantineError::Io { .. } => ApiError::internal("quarantine", &e),
        QuarantineError::Store(e) => store_err(e),
    }
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

/// Per-severity counts as a JSON object with every severity and a total.
fn severity_object(pairs: impl IntoIterator<Item = (String, i64)>) -> Value {
    let mut m: BTreeMap<&str, i64> = Severity::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    let mut total = 0;
    for (k, n) in pairs {
        if let Some(slot) = Severity::parse(&k)
            .map(|s| s.as_str())
            .and_then(|k| m.get_mut(k))
        {
            *slot += n;
            total += n;
        }
    }
    let mut v = json!(m);
    v["total"] = json!(total);
    v
}

/// Buckets from `since` in steps of `step`, each with every severity (zeros included).
fn buckets(
    rows: Vec<(i64, String, i64)>,
    since: i64,
    step: i64,
    n: i64,
    label: impl Fn(i64) -> (String, String),
) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let start = since + i * step;
            let pairs = rows
                .iter()
                .filter(|(b, _, _)| *b == start)
                .map(|(_, s, c)| (s.clone(), *c));
            let mut v = severity_object(pairs);
            let (k, lv) = label(start);
            v[k.as_str()] = json!(lv);
            v
        })
        .collect()
}

fn rfc3339_of(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(crate::store::rfc3339)
        .unwrap_or_default()
}

/// What `/fix` would do for a finding.
fn fix_for(f: &Finding) -> Option<&'static str> {
    (f.check == CHECK_SIGNATURE && f.path.is_some()).then_some("quarantine")
}

impl AgentBackend {
    /// Resolve a finding reference to ids (by id(s), or by check + message among the
    /// active ones).
    async fn resolve(&self, r: &FindingRef) -> Result<Vec<i64>, ApiError> {
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

    async fn finding_or_404(&self, id: i64) -> Result<Finding, ApiError> {
        self.store
            .finding(id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no finding {id}")))
    }

    /// Apply a finding's fix and mark it fixed.
    async fn fix_one(&self, id: i64, actor: &str) -> Result<Value, ApiError> {
        let f = self.finding_or_404(id).await?;
        let Some(action) = fix_for(&f) else {
            return Err(ApiError::unprocessable(format!(
                "no automatic fix for check {:?}; dismiss it instead",
                f.check
            )));
        };
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
            )
            .await
        {
            Ok(row) => Some(row.id),
            // Already gone (quarantined before, or deleted): fixed all the same.
            Err(QuarantineError::NotFound(_)) => None,
            Err(e) => return Err(q_err(e)),
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
        Ok(
            json!({ "status": "fixed", "id": id, "action": action, "quarantine_id": qid, "path": path }),
        )
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

    pub(crate) async fn detect_op(
        &self,
        op: DetectOp,
        actor: &str,
    ) -> Result<(StatusCode, Value), ApiError> {
        let ok = |v| Ok((StatusCode::OK, v));
        let det = &self.detection;
        match op {
            op @ (DetectOp::ThreatBulk(_)
            | DetectOp::UndoPending
            | DetectOp::UndoRun { .. }
            | DetectOp::ModsecStats
            | DetectOp::ModsecBlocks(_)
            | DetectOp::ModsecEvents { .. }
            | DetectOp::ModsecRules
            | DetectOp::EmailStats
            | DetectOp::EmailDeferrals(_)
            | DetectOp::EmailRelayAbuse(_)
            | DetectOp::EmailGroups { .. }) => self.report_op(op, actor).await,
            DetectOp::FindingsEnriched => {
                let rows = self.store.active_findings(1000).await.map_err(store_err)?;
                let quarantined = self
                    .store
                    .quarantine_rows(None, false)
                    .await
                    .map_err(store_err)?;
                let out: Vec<Value> = rows
                    .into_iter()
                    .map(|f| {
                        let fix = fix_for(&f);
                        let qid = quarantined
                            .iter()
                            .find(|q| {
                                q.finding_id == Some(f.id)
                                    || (f.path.as_deref() == Some(q.original_path.as_str()))
                            })
                            .map(|q| q.id.clone());
                        let mut v = json!(f);
                        v["fix_available"] = json!(fix.is_some());
                        v["fix"] = json!(fix);
                        v["quarantine_id"] = json!(qid);
                        v
                    })
                    .collect();
                ok(json!(out))
            }
            DetectOp::FindingDetail(r) => {
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
                    .filter(|q| {
                        q.finding_id == Some(id) || Some(&q.original_path) == f.path.as_ref()
                    })
                    .collect();
                ok(
                    json!({ "finding": f, "actions": actions, "quarantine": quarantine, "fix": fix_for(&f) }),
                )
            }
            DetectOp::History(h) => {
                let (limit, offset) = (h.limit, h.offset);
                let (rows, total) = self
                    .store
                    .query_findings(query_of(h))
                    .await
                    .map_err(store_err)?;
                ok(json!({ "findings": rows, "total": total, "limit": limit, "offset": offset }))
            }
            DetectOp::HistoryRows(h) => {
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
                ok(json!(rows))
            }
            DetectOp::Stats => {
                let since = now_unix() - 86400;
                let (sev, accounts, checks) =
                    self.store.stats_since(since).await.map_err(store_err)?;
                let active = self.store.severity_counts().await.map_err(store_err)?;
                let q24 = self
                    .store
                    .quarantine_rows(None, true)
                    .await
                    .map_err(store_err)?
                    .into_iter()
                    .filter(|q| q.quarantined_at >= rfc3339_of(since))
                    .count();
                let blocks = self
                    .store
                    .count(crate::store::FwList::Blocks)
                    .await
                    .map_err(store_err)?;
                ok(json!({
                    "last_24h": severity_object(sev),
                    "active": severity_object(active),
                    "accounts_at_risk": accounts,
                    "top_checks": checks.into_iter().map(|(c, n)| json!({"check": c, "count": n})).collect::<Vec<_>>(),
                    "auto_response": {
                        "quarantined_24h": q24,
                        "blocked_ips": blocks,
                    },
                }))
            }
            DetectOp::StatsTrend { days } => {
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
                ok(
                    json!({ "days": buckets(rows, since, 86400, i64::from(days), |t| ("date".into(), rfc3339_of(t)[..10].to_string())) }),
                )
            }
            DetectOp::StatsTimeline { hours } => {
                let now = now_unix();
                let since = (now / 3600 - i64::from(hours - 1)) * 3600;
                let rows = self
                    .store
                    .bucket_counts(since, 3600)
                    .await
                    .map_err(store_err)?;
                ok(
                    json!({ "hours": hours, "buckets": buckets(rows, since, 3600, i64::from(hours), |t| ("start".into(), rfc3339_of(t))) }),
                )
            }
            DetectOp::Dismiss(r) => {
                let ids = self.resolve(&r).await?;
                let changed = self
                    .store
                    .set_finding_status(ids.clone(), "dismissed", actor.to_string())
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
                ok(json!({ "status": "dismissed", "dismissed": changed }))
            }
            DetectOp::Fix(r) => {
                let ids = self.resolve(&r).await?;
                let Some(&id) = ids.first() else {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "no such active finding",
                    ));
                };
                ok(self.fix_one(id, actor).await?)
            }
            DetectOp::FixBulk(r) => {
                let (mut fixed, mut failed) = (Vec::new(), Vec::new());
                for id in r.ids {
                    match self.fix_one(id, actor).await {
                        Ok(v) => fixed.push(v),
                        Err(e) => failed.push(
                            json!({ "id": id, "error": e.message, "code": e.status.as_u16() }),
                        ),
                    }
                }
                ok(json!({ "fixed": fixed, "failed": failed }))
            }
            DetectOp::Scan(r) => {
                let path = match (&r.account, &r.path) {
                    (Some(a), _) => {
                        if a.is_empty() || a.contains('/') || a.starts_with('.') {
                            return Err(ApiError::bad_request(format!(
                                "{a:?} is not an account name"
                            )));
                        }
                        let user = nix::unistd::User::from_name(a).ok().flatten();
                        match user {
                            Some(u) => u.dir,
                            None => PathBuf::from("/home").join(a),
                        }
                    }
                    (None, Some(p)) => PathBuf::from(p),
                    (None, None) => return Err(ApiError::bad_request("account or path required")),
                };
                if !path.is_absolute() {
                    return Err(ApiError::bad_request("path must be absolute"));
                }
                if std::fs::symlink_metadata(&path).is_err() {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        format!("{} does not exist", path.display()),
                    ));
                }
                let job: JobInfo =
                    det.jobs
                        .start(path.clone(), r.account.clone(), det.pool.clone());
                self.audit(
                    actor,
                    "scan",
                    &path.display().to_string(),
                    &format!("job {}", job.id),
                    None,
                )
                .await;
                Ok((
                    StatusCode::ACCEPTED,
                    json!({ "status": "queued", "job": job }),
                ))
            }
            DetectOp::ScanJobs { id } => match id {
                Some(id) => match det.jobs.get(id) {
                    Some(j) => ok(json!(j)),
                    None => Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        format!("no scan job {id}"),
                    )),
                },
                None => ok(json!(det.jobs.list())),
            },
            DetectOp::TestAlert => {
                let f = NewFinding {
                    details: format!("sent by {actor}"),
                    // Never deduplicated: every test is its own finding.
                    key: Some(format!("test-{}", rand::random::<u64>())),
                    ..NewFinding::new("test_alert", Severity::Info, "Test alert from Rampart")
                };
                let found = det.findings.report(f).await;
                self.audit(
                    actor,
                    "test_alert",
                    "alerts",
                    "",
                    found.as_ref().map(|f| f.id),
                )
                .await;
                match found {
                    Some(f) => ok(json!({ "status": "sent", "finding": f })),
                    None => Err(ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the test finding was suppressed or not stored",
                    )),
                }
            }
            DetectOp::Audit { limit } => ok(json!(self
                .store
                .ui_audit_log(limit, None)
                .await
                .map_err(store_err)?)),
            DetectOp::Suppressions => {
                ok(json!(self.store.suppressions().await.map_err(store_err)?))
            }
            DetectOp::Suppress(r) => match r.action.as_deref().unwrap_or("add") {
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
                    ok(json!({ "status": "deleted", "id": id }))
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
                    crate::findings::validate(&s)
                        .map_err(|e| ApiError::bad_request(e.to_string()))?;
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
                    Ok((
                        StatusCode::CREATED,
                        json!({ "status": "added", "suppression": s }),
                    ))
                }
                other => Err(ApiError::bad_request(format!(
                    "action must be add or delete, got {other:?}"
                ))),
            },
            DetectOp::RulesStatus => {
                let set = det.engine.current();
                ok(json!({
                    "yaml_rules": set.count(RuleKind::Yaml),
                    "yara_rules": set.count(RuleKind::Yara),
                    "version": set.version,
                    "loaded_at": set.loaded_at,
                    "rules_dir": det.engine.dir(),
                    "files": set.files,
                    "ignored_files": set.ignored,
                    "last_error": det.engine.last_error(),
                }))
            }
            DetectOp::RulesList => {
                let set = det.engine.current();
                let files: Vec<Value> = set
                    .files
                    .iter()
                    .map(|f| {
                        let rules: Vec<Value> = set
                            .rules()
                            .iter()
                            .filter(|r| r.file == f.file)
                            .map(|r| json!({
                                "name": r.name, "severity": r.severity, "category": r.category,
                                "description": r.description, "auto_quarantine": r.auto_quarantine,
                            }))
                            .collect();
                        json!({ "file": f.file, "kind": f.kind, "sha256": f.sha256, "rule_count": f.rules, "rules": rules })
                    })
                    .collect();
                ok(json!(files))
            }
            DetectOp::RulesReload => {
                let engine = det.engine.clone();
                let res = tokio::task::spawn_blocking(move || engine.reload())
                    .await
                    .map_err(|e| ApiError::internal("rule reload task", &e))?;
                match res {
                    Ok(set) => {
                        self.audit(actor, "rules_reload", "rules", &set.version, None)
                            .await;
                        ok(json!({
                            "status": "reloaded",
                            "version": set.version,
                            "yaml_rules": set.count(RuleKind::Yaml),
                            "yara_rules": set.count(RuleKind::Yara),
                        }))
                    }
                    Err(e) => {
                        self.audit(actor, "rules_reload_failed", "rules", &e.to_string(), None)
                            .await;
                        Ok((
                            StatusCode::UNPROCESSABLE_ENTITY,
                            json!({
                                "error": format!("rules not reloaded; the previous set stays active: {e}"),
                                "code": 422,
                                "errors": e.0,
                                "active_version": det.engine.current().version,
                            }),
                        ))
                    }
                }
            }
            DetectOp::Quarantine => ok(json!(det.quarantine.list().await.map_err(q_err)?)),
            DetectOp::QuarantinePreview { id } => ok(json!(det
                .quarantine
                .preview(&id, 64 * 1024)
                .await
                .map_err(q_err)?)),
            DetectOp::QuarantineRestore { id } => {
                let row = det.quarantine.restore(&id).await.map_err(q_err)?;
                self.audit(
                    actor,
                    "quarantine_restore",
                    &row.original_path,
                    &id,
                    row.finding_id,
                )
                .await;
                ok(json!({ "status": "restored", "id": id, "path": row.original_path }))
            }
            DetectOp::Incidents {
                status,
                kind,
                limit,
            } => ok(json!(self
                .store
                .incidents(status, kind, limit)
                .await
                .map_err(store_err)?)),
            DetectOp::Incident { id } => {
                let (inc, ids) = self
                    .store
                    .incident(id)
                    .await
                    .map_err(store_err)?
                    .ok_or_else(|| {
                        ApiError::new(StatusCode::NOT_FOUND, format!("no incident {id}"))
                    })?;
                let mut findings = Vec::new();
                for fid in ids {
                    if let Some(f) = self.store.finding(fid).await.map_err(store_err)? {
                        findings.push(f);
                    }
                }
                let mut v = json!(inc);
                v["findings"] = json!(findings);
                ok(v)
            }
            DetectOp::IncidentStatus {
                id,
                status,
                details,
            } => {
                let status: &'static str = crate::store::INCIDENT_STATUSES
                    .iter()
                    .find(|s| **s == status)
                    .copied()
                    .ok_or_else(|| ApiError::bad_request(format!("bad status {status:?}")))?;
                match self
                    .store
                    .set_incident_status(id, status, details.clone(), actor.to_string())
                    .await
                {
                    Ok(inc) => {
                        self.audit(
                            actor,
                            "incident_status",
                            &id.to_string(),
                            &format!("{status}: {details}"),
                            None,
                        )
                        .await;
                        ok(json!(inc))
                    }
                    Err(IncidentError::NotFound(_)) => Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        format!("no incident {id}"),
                    )),
                    Err(e @ IncidentError::KeyInUse { .. }) => {
                        Err(ApiError::new(StatusCode::CONFLICT, e.to_string()))
                    }
                    Err(IncidentError::Store(e)) => Err(store_err(e)),
                }
            }
            DetectOp::IncidentGroups {
                status,
                kind,
                limit,
            } => ok(json!(self
                .store
                .incident_groups(status, kind, limit)
                .await
                .map_err(store_err)?)),
            DetectOp::IncidentTimeline { ip, account, hours } => {
                let since = now_unix() - i64::from(hours) * 3600;
                let (findings, total) = self
                    .store
                    .query_findings(FindingQuery {
                        ip: ip.clone(),
                        account: account.clone(),
                        from_unix: Some(since),
                        limit: 5000,
                        oldest_first: true,
                        ..Default::default()
                    })
                    .await
                    .map_err(store_err)?;
                let incidents: Vec<_> = self
                    .store
                    .incidents("all".into(), None, 5000)
                    .await
                    .map_err(store_err)?
                    .into_iter()
                    .filter(|i| {
                        (i.kind == "ip" && Some(&i.source) == ip.as_ref())
                            || (i.kind == "account" && Some(&i.source) == account.as_ref())
                    })
                    .collect();
                ok(json!({
                    "ip": ip, "account": account, "hours": hours,
                    "from": rfc3339_of(since), "total": total,
                    "findings": findings, "incidents": incidents,
                }))
            }
            DetectOp::ThreatStats => {
                let (n, ips, kinds, hours) = self.store.threat_stats().await.map_err(store_err)?;
                let blocks = self
                    .store
                    .count(crate::store::FwList::Blocks)
                    .await
                    .map_err(store_err)?;
                let now_h = now_unix() / 3600 * 3600;
                let hourly: Vec<Value> = (0..24)
                    .map(|i| {
                        let start = now_h - (23 - i) * 3600;
                        let n = hours
                            .iter()
                            .find(|(h, _)| *h == start)
                            .map(|(_, n)| *n)
                            .unwrap_or(0);
                        json!({ "start": rfc3339_of(start), "events": n })
                    })
                    .collect();
                ok(json!({
                    "events_24h": n,
                    "unique_ips_24h": ips,
                    "by_kind": kinds.into_iter().map(|(k, n)| json!({"kind": k, "events": n})).collect::<Vec<_>>(),
                    "hourly": hourly,
                    "blocked_ips": blocks,
                }))
            }
            DetectOp::ThreatTopAttackers { limit } => {
                let top = self.store.top_attackers(limit).await.map_err(store_err)?;
                let mut out = Vec::new();
                for t in top {
                    let check = self.firewall.check(&t.ip).await.ok();
                    let mut v = json!(t);
                    v["blocked"] = json!(check.as_ref().is_some_and(|c| c.blocked));
                    v["allowed"] = json!(check.as_ref().is_some_and(|c| c.allowed));
                    out.push(v);
                }
                ok(json!(out))
            }
            DetectOp::ThreatIp { ip } => {
                let summary = self.store.threat_ip(ip.clone()).await.map_err(store_err)?;
                let check = self
                    .firewall
                    .check(&ip)
                    .await
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                let recent = self
                    .store
                    .threat_events(ip.clone(), 10)
                    .await
                    .map_err(store_err)?;
                ok(json!({
                    "ip": ip,
                    "known": summary.is_some(),
                    "summary": summary,
                    "blocked": check.blocked,
                    "allowed": check.allowed,
                    "blocked_by": check.blocked_by,
                    "allowed_by": check.allowed_by,
                    "recent_events": recent,
                }))
            }
            DetectOp::ThreatEvents { ip, limit } => ok(json!(self
                .store
                .threat_events(ip, limit)
                .await
                .map_err(store_err)?)),
            DetectOp::ThreatDbStats => {
                let (events, ips, oldest, newest) =
                    self.store.threat_db_stats().await.map_err(store_err)?;
                ok(json!({ "events": events, "ips": ips, "oldest": oldest, "newest": newest }))
            }
            DetectOp::ThreatClearIp { ip } => {
                let n = self
                    .store
                    .clear_threat_ip(ip.clone())
                    .await
                    .map_err(store_err)?;
                self.audit(actor, "threat_clear_ip", &ip, &format!("{n} events"), None)
                    .await;
                ok(json!({ "status": "cleared", "ip": ip, "cleared": n }))
            }
            DetectOp::QuarantineDelete { ids } => {
                let (deleted, not_found) = det.quarantine.delete(ids).await.map_err(q_err)?;
                for id in &deleted {
                    self.audit(actor, "quarantine_delete", id, "", None).await;
                }
                ok(json!({ "deleted": deleted, "not_found": not_found }))
            }
        }
    }
}
