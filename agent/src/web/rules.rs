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

/// `GET /rules/status`: CSM's fields, then Rampart's. Rules are the files in
/// `detection.rules_dir` and the rule packs; `auto_update` says whether any pack is
/// fetched from a URL (`update_url`: the first one's, `update_interval`: how often).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RulesStatus<'a> {
    pub yaml_rules: usize,
    pub yara_rules: usize,
    /// YARA-X is built in.
    pub yara_available: bool,
    /// The loaded set's version (a hash of its sources).
    pub yaml_version: &'a str,
    pub auto_update: bool,
    pub update_url: &'a str,
    /// Seconds; 0 = never.
    pub update_interval: u64,
    pub version: &'a str,
    pub loaded_at: &'a str,
    pub rules_dir: Option<&'a Path>,
    pub files: &'a [RuleFile],
    pub ignored_files: &'a [String],
    pub last_error: Option<LastError>,
}

/// One file of `/rules/list`: CSM's `name`, `type`, `size` (bytes), then Rampart's.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RulesFile<'a> {
    pub name: &'a str,
    #[serde(rename = "type")]
    pub kind_name: RuleKind,
    pub size: usize,
    pub file: &'a str,
    pub kind: RuleKind,
    pub sha256: &'a str,
    pub rule_count: usize,
    pub rules: Vec<RuleSummary<'a>>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RuleSummary<'a> {
    pub name: &'a str,
    pub severity: Severity,
    pub category: &'a str,
    pub description: &'a str,
    pub auto_quarantine: bool,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Reloaded<'a> {
    /// CSM's success flag.
    pub ok: bool,
    pub status: &'static str,
    pub version: &'a str,
    pub yaml_rules: usize,
    pub yara_rules: usize,
}

/// A `/rules/reload` that failed: 200 with `ok: false` (CSM's shape), the errors by
/// file and line, and the counts of the previous set, which stays active.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ReloadFailed<'a> {
    pub ok: bool,
    pub status: &'static str,
    pub error: String,
    pub errors: &'a [RuleError],
    pub yaml_rules: usize,
    pub yara_rules: usize,
    pub active_version: &'a str,
}

/// `POST /scan-jobs/{id}/cancel`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Cancelled {
    pub status: &'static str,
    pub job: Option<JobInfo>,
}

/// 202 of `/scan-account`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ScanQueued {
    pub status: &'static str,
    pub job: JobInfo,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Restored {
    pub status: &'static str,
    pub id: String,
    pub path: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
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

    pub(super) async fn cancel_scan_job(&self, id: u64, actor: &str) -> Result<Reply, ApiError> {
        match self.detection.jobs.cancel(id) {
            None => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no scan job {id}"),
            )),
            Some(false) => Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("scan job {id} has finished"),
            )),
            Some(true) => {
                self.audit(actor, "scan_cancel", &id.to_string(), "", None)
                    .await;
                let job = self.detection.jobs.get(id);
                ok(&Cancelled {
                    status: "cancelled",
                    job,
                })
            }
        }
    }

    pub(super) async fn scan_job_findings(&self, id: u64) -> Result<Reply, ApiError> {
        let Some(job) = self.detection.jobs.get(id) else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no scan job {id}"),
            ));
        };
        let mut out = Vec::with_capacity(job.finding_ids.len());
        for fid in job.finding_ids {
            // A finding pruned by retention since is left out.
            if let Some(f) = self.store.finding(fid).await.map_err(super::store_err)? {
                out.push(f);
            }
        }
        ok(&out)
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
            yara_available: true,
            yaml_version: &set.version,
            auto_update: !engine.update().0.is_empty(),
            update_url: engine.update().0,
            update_interval: engine.update().1,
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
                name: f.file.rsplit('/').next().unwrap_or(&f.file),
                kind_name: f.kind,
                size: f.size,
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
                    ok: true,
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
                ok(&ReloadFailed {
                    ok: false,
                    status: "failed",
                    error: format!("rules not reloaded; the previous set stays active: {e}"),
                    errors: &e.0,
                    yaml_rules: active.count(RuleKind::Yaml),
                    yara_rules: active.count(RuleKind::Yara),
                    active_version: &active.version,
                })
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
