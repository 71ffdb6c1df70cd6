// SPDX-License-Identifier: GPL-2.0-only
//! The detection routes: rule sets and their reload, scan jobs, and the quarantine,
//! with their response types.

use std::path::{Path, PathBuf};

use api::{
    model::{ScanRequest, Severity},
    ApiError,
};
use serde::Serialize;
use warp::http::StatusCode;

use super::{ok, q_err, reply, AgentBackend, Reply};
use crate::detection::{
    scan::{JobInfo, LastError},
    signatures::{RuleError, RuleFile, RuleKind},
};

/// `GET /rules/status`.
#[derive(Debug, Serialize)]
pub struct RulesStatus<'a> {
    pub yaml_rules: usize,
    pub yara_rules: usize,
    pub version: &'a str,
    pub loaded_at: &'a str,
    pub rules_dir: Option<&'a Path>,
    pub files: &'a [RuleFile],
    pub ignored_files: &'a [String],
    pub last_error: Option<LastError>,
}

/// One file of `/rules/list`.
#[derive(Debug, Serialize)]
pub struct RulesFile<'a> {
    pub file: &'a str,
    pub kind: RuleKind,
    pub sha256: &'a str,
    pub rule_count: usize,
    pub rules: Vec<RuleSummary<'a>>,
}

#[derive(Debug, Serialize)]
pub struct RuleSummary<'a> {
    pub name: &'a str,
    pub severity: Severity,
    pub category: &'a str,
    pub description: &'a str,
    pub auto_quarantine: bool,
}

#[derive(Debug, Serialize)]
pub struct Reloaded<'a> {
    pub status: &'static str,
    pub version: &'a str,
    pub yaml_rules: usize,
    pub yara_rules: usize,
}

/// 422 of `/rules/reload`: the errors by file and line; the previous set stays.
#[derive(Debug, Serialize)]
pub struct ReloadFailed<'a> {
    pub error: String,
    pub code: u16,
    pub errors: &'a [RuleError],
    pub active_version: &'a str,
}

/// 202 of `/scan-account`.
#[derive(Debug, Serialize)]
pub struct ScanQueued {
    pub status: &'static str,
    pub job: JobInfo,
}

#[derive(Debug, Serialize)]
pub struct Restored {
    pub status: &'static str,
    pub id: String,
    pub path: String,
}

#[derive(Debug, Serialize)]
pub struct QuarantineDeleted {
    pub deleted: Vec<String>,
    pub not_found: Vec<String>,
}

impl AgentBackend {
    pub(super) async fn scan(&self, r: ScanRequest, actor: &str) -> Result<Reply, ApiError> {
        let det = &self.detection;
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
        let job: JobInfo = det
            .jobs
            .start(path.clone(), r.account.clone(), None, det.pool.clone());
        self.audit(
            actor,
            "scan",
            &path.display().to_string(),
            &format!("job {}", job.id),
            None,
        )
        .await;
        reply(
            StatusCode::ACCEPTED,
            &ScanQueued {
                status: "queued",
                job,
            },
        )
    }

    pub(super) async fn scan_jobs(&self, id: Option<u64>) -> Result<Reply, ApiError> {
        let jobs = &self.detection.jobs;
        match id {
            Some(id) => match jobs.get(id) {
                Some(j) => ok(&j),
                None => Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("no scan job {id}"),
                )),
            },
            None => ok(&jobs.list()),
        }
    }

    pub(super) async fn rules_status(&self) -> Result<Reply, ApiError> {
        let engine = &self.detection.engine;
        let set = engine.current();
        ok(&RulesStatus {
            yaml_rules: set.count(RuleKind::Yaml),
            yara_rules: set.count(RuleKind::Yara),
            version: &set.version,
            loaded_at: &set.loaded_at,
            rules_dir: engine.dir(),
            files: &set.files,
            ignored_files: &set.ignored,
            last_error: engine.last_error(),
        })
    }

    pub(super) async fn rules_list(&self) -> Result<Reply, ApiError> {
        let set = self.detection.engine.current();
        let files: Vec<RulesFile<'_>> = set
            .files
            .iter()
            .map(|f| RulesFile {
                file: &f.file,
                kind: f.kind,
                sha256: &f.sha256,
                rule_count: f.rules,
                rules: set
                    .rules()
                    .iter()
                    .filter(|r| r.file == f.file)
                    .map(|r| RuleSummary {
                        name: &r.name,
                        severity: r.severity,
                        category: &r.category,
                        description: &r.description,
                        auto_quarantine: r.auto_quarantine,
                    })
                    .collect(),
            })
            .collect();
        ok(&files)
    }

    pub(super) async fn rules_reload(&self, actor: &str) -> Result<Reply, ApiError> {
        let engine = self.detection.engine.clone();
        let res = tokio::task::spawn_blocking(move || engine.reload())
            .await
            .map_err(|e| ApiError::internal("rule reload task", &e))?;
        match res {
            Ok(set) => {
                self.audit(actor, "rules_reload", "rules", &set.version, None)
                    .await;
                ok(&Reloaded {
                    status: "reloaded",
                    version: &set.version,
                    yaml_rules: set.count(RuleKind::Yaml),
                    yara_rules: set.count(RuleKind::Yara),
                })
            }
            Err(e) => {
                self.audit(actor, "rules_reload_failed", "rules", &e.to_string(), None)
                    .await;
                let active = self.detection.engine.current();
                reply(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &ReloadFailed {
                        error: format!("rules not reloaded; the previous set stays active: {e}"),
                        code: 422,
                        errors: &e.0,
                        active_version: &active.version,
                    },
                )
            }
        }
    }

    pub(super) async fn quarantine_list(&self) -> Result<Reply, ApiError> {
        ok(&self.detection.quarantine.list().await.map_err(q_err)?)
    }

    pub(super) async fn quarantine_preview(&self, id: &str) -> Result<Reply, ApiError> {
        ok(&self
            .detection
            .quarantine
            .preview(id, 64 * 1024)
            .await
            .map_err(q_err)?)
    }

    pub(super) async fn quarantine_restore(
        &self,
        id: String,
        actor: &str,
    ) -> Result<Reply, ApiError> {
        let row = self
            .detection
            .quarantine
            .restore(&id)
            .await
            .map_err(q_err)?;
        self.audit(
            actor,
            "quarantine_restore",
            &row.original_path,
            &id,
            row.finding_id,
        )
        .await;
        ok(&Restored {
            status: "restored",
            id,
            path: row.original_path,
        })
    }

    pub(super) async fn quarantine_delete(
        &self,
        ids: Vec<String>,
        actor: &str,
    ) -> Result<Reply, ApiError> {
        let (deleted, not_found) = self.detection.quarantine.delete(ids).await.map_err(q_err)?;
        for id in &deleted {
            self.audit(actor, "quarantine_delete", id, "", None).await;
        }
        ok(&QuarantineDeleted { deleted, not_found })
    }
}
