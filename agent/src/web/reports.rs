// SPDX-License-Identifier: GPL-2.0-only
//! The ModSecurity and mail reports over what the log watchers stored, with their
//! response types; 503 where the host has no such log.

use api::{model::Window, ApiError};
use serde::Serialize;
use warp::http::StatusCode;

use super::{json_text, ok, store_err, AgentBackend, Reply};
use crate::{
    detection::{forwardguard::GuardError, mailav::MailAvError},
    logs::{mail, modsec_rules, Source},
    store::{FindingGroup, MailScript},
};

/// A row of `/email/relay-abuse`: an account's outbound flood with its scripts.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RelayAbuse {
    #[serde(flatten)]
    pub group: FindingGroup,
    pub scripts: Vec<MailScript>,
}

/// A row of `/email/groups`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct MailGroup {
    #[serde(flatten)]
    pub group: FindingGroup,
    /// auth_failure or spam_outbreak.
    pub kind: &'static str,
}

fn window(w: Window) -> crate::store::Window {
    crate::store::Window {
        from: w.from.unwrap_or(0),
        to: w.to.unwrap_or(i64::MAX),
        limit: w.limit,
    }
}

impl AgentBackend {
    /// 503 unless one of the source's configured logs exists on this host.
    fn have_log(&self, source: Source, what: &str) -> Result<(), ApiError> {
        let paths = self.logs.paths(source);
        if paths.iter().any(|p| p.exists()) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "no {what} on this host (logs.{}: {})",
                source.name(),
                if paths.is_empty() {
                    "none configured".to_string()
                } else {
                    paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        ))
    }

    pub(super) async fn modsec_stats(&self) -> Result<Reply, ApiError> {
        self.have_log(Source::Modsec, "ModSecurity audit log")?;
        ok(&self.store.modsec_stats().await.map_err(store_err)?)
    }

    pub(super) async fn modsec_blocks(&self, w: Window) -> Result<Reply, ApiError> {
        self.have_log(Source::Modsec, "ModSecurity audit log")?;
        ok(&self
            .store
            .modsec_blocks(window(w))
            .await
            .map_err(store_err)?)
    }

    pub(super) async fn modsec_events(
        &self,
        w: Window,
        ip: Option<String>,
    ) -> Result<Reply, ApiError> {
        self.have_log(Source::Modsec, "ModSecurity audit log")?;
        ok(&self
            .store
            .modsec_events(window(w), ip)
            .await
            .map_err(store_err)?)
    }

    pub(super) async fn modsec_rules(&self) -> Result<Reply, ApiError> {
        self.have_log(Source::Modsec, "ModSecurity audit log")?;
        ok(&self.store.modsec_rules().await.map_err(store_err)?)
    }

    pub(super) async fn email_stats(&self) -> Result<Reply, ApiError> {
        self.have_log(Source::Exim, "exim mainlog")?;
        ok(&self.store.email_stats().await.map_err(store_err)?)
    }

    pub(super) async fn email_deferrals(&self, w: Window) -> Result<Reply, ApiError> {
        self.have_log(Source::Exim, "exim mainlog")?;
        ok(&self
            .store
            .email_deferrals(window(w))
            .await
            .map_err(store_err)?)
    }

    pub(super) async fn email_relay_abuse(&self, w: Window) -> Result<Reply, ApiError> {
        self.have_log(Source::Exim, "exim mainlog")?;
        let w = window(w);
        let groups = self
            .store
            .finding_groups(vec!["mail_relay_abuse"], w)
            .await
            .map_err(store_err)?;
        let mut rows = Vec::with_capacity(groups.len());
        for group in groups {
            let account = group.account.clone().unwrap_or_default();
            let scripts = self
                .store
                .email_scripts(account, w)
                .await
                .map_err(store_err)?;
            rows.push(RelayAbuse { group, scripts });
        }
        ok(&rows)
    }

    pub(super) async fn email_groups(
        &self,
        w: Window,
        kind: Option<String>,
    ) -> Result<Reply, ApiError> {
        self.have_log(Source::Exim, "exim mainlog")
            .or_else(|_| self.have_log(Source::Dovecot, "mail log"))?;
        let w = window(w);
        let kinds: [(&'static str, &[&'static str]); 2] = [
            ("auth_failure", &["mail_bruteforce", "account_bruteforce"]),
            ("spam_outbreak", &["mail_relay_abuse"]),
        ];
        let mut out = Vec::new();
        for (k, checks) in kinds {
            if kind.as_deref().is_some_and(|want| want != k) {
                continue;
            }
            for group in self
                .store
                .finding_groups(checks.to_vec(), w)
                .await
                .map_err(store_err)?
            {
                // account_bruteforce of other services is not mail.
                if group.check == "account_bruteforce" && !group.key.contains('@') {
                    continue;
                }
                out.push(MailGroup { group, kind: k });
            }
        }
        out.sort_by(|a, b| b.group.last_seen.cmp(&a.group.last_seen));
        out.truncate(w.limit as usize);
        ok(&out)
    }
}

/// `POST /email/queue/flush-backscatter`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Flushed {
    /// Frozen bounces found in the queue.
    pub candidates: usize,
    /// Gone from the spool afterwards.
    pub removed: usize,
    /// Still there (exim refused, or a delivery holds the message).
    pub failed: usize,
    /// exim's complaints, if any (first lines).
    pub errors: Vec<String>,
}

/// exim ids removed per `exim -Mrm` call.
const MRM_BATCH: usize = 100;
/// Longest an `exim -Mrm` batch may take.
const MRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Run `f` off the runtime and answer with what it returns (`ctx` names a panic).
async fn answer_blocking<T, E, F>(
    ctx: &'static str,
    f: F,
    err: fn(E) -> ApiError,
) -> Result<Reply, ApiError>
where
    T: Serialize + Send + 'static,
    E: Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    let v = tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(ctx, &e))?
        .map_err(err)?;
    ok(&v)
}

fn mail_av_err(e: MailAvError) -> ApiError {
    match e {
        MailAvError::Off(_) => unavailable(e.to_string()),
        MailAvError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
        MailAvError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        MailAvError::Io { .. } => ApiError::internal("the mail quarantine", &e),
    }
}

fn guard_err(e: GuardError) -> ApiError {
    match e {
        GuardError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
        GuardError::Refused(_) => ApiError::unprocessable(e.to_string()),
        GuardError::Unavailable(_) => unavailable(e.to_string()),
        GuardError::Io { .. } => ApiError::internal("the held forwards", &e),
    }
}

fn unavailable(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, msg)
}

impl AgentBackend {
    fn spool(&self) -> Result<std::path::PathBuf, ApiError> {
        mail::spool_dir(&self.mail.exim_spool).ok_or_else(|| {
            unavailable(format!(
                "no exim spool on this host (mail.exim_spool: {}; tried {})",
                if self.mail.exim_spool.as_os_str().is_empty() {
                    "auto".to_string()
                } else {
                    self.mail.exim_spool.display().to_string()
                },
                mail::SPOOLS.join(", ")
            ))
        })
    }

    pub(super) async fn email_queue_composition(&self) -> Result<Reply, ApiError> {
        let spool = self.spool()?;
        let now = crate::store::now_unix();
        let c = tokio::task::spawn_blocking(move || mail::composition(&spool, now))
            .await
            .map_err(|e| ApiError::internal("reading the exim queue", &e))?;
        ok(&c)
    }

    pub(super) async fn email_flush_backscatter(&self, actor: &str) -> Result<Reply, ApiError> {
        let spool = self.spool()?;
        let bin = mail::exim_bin(&self.mail.exim_bin).ok_or_else(|| {
            unavailable(format!(
                "no exim binary on this host to remove messages with (mail.exim_bin; tried {})",
                mail::EXIM_BINS.join(", ")
            ))
        })?;
        let sp = spool.clone();
        let ids = tokio::task::spawn_blocking(move || mail::frozen_backscatter(&sp))
            .await
            .map_err(|e| ApiError::internal("reading the exim queue", &e))?;
        let mut errors = Vec::new();
        for batch in ids.chunks(MRM_BATCH) {
            // Every id is of exim's own form (checked when read): never an option.
            let run = tokio::process::Command::new(&bin)
                .arg("-Mrm")
                .args(batch)
                .kill_on_drop(true)
                .output();
            match tokio::time::timeout(MRM_TIMEOUT, run).await {
                Ok(Ok(out)) => {
                    let err = String::from_utf8_lossy(&out.stderr);
                    errors.extend(err.lines().take(5).map(str::to_string));
                }
                Ok(Err(e)) => errors.push(format!("running {}: {e}", bin.display())),
                Err(_) => errors.push(format!("{} -Mrm timed out", bin.display())),
            }
        }
        errors.truncate(20);
        let sp = spool.clone();
        let left = tokio::task::spawn_blocking(move || mail::frozen_backscatter(&sp))
            .await
            .map_err(|e| ApiError::internal("reading the exim queue", &e))?;
        let failed = ids.iter().filter(|id| left.contains(id)).count();
        let removed = ids.len() - failed;
        self.audit(
            actor,
            "email_flush_backscatter",
            &spool.display().to_string(),
            &format!("{removed} of {} frozen bounces removed", ids.len()),
            None,
        )
        .await;
        ok(&Flushed {
            candidates: ids.len(),
            removed,
            failed,
            errors,
        })
    }

    pub(super) async fn email_forwarders(&self) -> Result<Reply, ApiError> {
        let dir = self.mail.valiases_dir.clone();
        if !dir.is_dir() {
            return Err(unavailable(format!(
                "no forwarder files on this host (mail.valiases_dir: {}, cPanel's)",
                dir.display()
            )));
        }
        let domains = self.mail.local_domains.clone();
        let f = tokio::task::spawn_blocking(move || {
            mail::forwarders(&dir, &mail::local_domains(&domains))
        })
        .await
        .map_err(|e| ApiError::internal("reading forwarders", &e))?
        .map_err(|e| ApiError::internal("reading forwarders", &e))?;
        ok(&f)
    }

    pub(super) async fn email_av_status(&self) -> Result<Reply, ApiError> {
        let av = self.detection.mail_av.clone();
        let st = tokio::task::spawn_blocking(move || av.status())
            .await
            .map_err(|e| ApiError::internal("reading the mail AV status", &e))?;
        ok(&st)
    }

    /// The quarantined mail; `[]` when the mail AV is off (as CSM).
    pub(super) async fn email_quarantine(&self) -> Result<Reply, ApiError> {
        let av = self.detection.mail_av.clone();
        answer_blocking(
            "listing the mail quarantine",
            move || av.list(),
            mail_av_err,
        )
        .await
    }

    pub(super) async fn email_quarantine_get(&self, id: String) -> Result<Reply, ApiError> {
        let av = self.detection.mail_av.clone();
        answer_blocking(
            "reading the mail quarantine",
            move || av.get(&id),
            mail_av_err,
        )
        .await
    }

    /// Release (back to exim's queue) or delete a quarantined message; audited.
    pub(super) async fn email_quarantine_act(
        &self,
        id: String,
        release: bool,
        actor: &str,
    ) -> Result<Reply, ApiError> {
        let av = self.detection.mail_av.clone();
        let i = id.clone();
        let r = tokio::task::spawn_blocking(move || {
            if release {
                av.release(&i)
            } else {
                av.delete(&i)
            }
        })
        .await
        .map_err(|e| ApiError::internal("changing the mail quarantine", &e))?
        .map_err(mail_av_err)?;
        self.audit(
            actor,
            &format!("email_quarantine_{}", r.status),
            &id,
            r.status,
            None,
        )
        .await;
        ok(&r)
    }

    pub(super) async fn email_held(&self) -> Result<Reply, ApiError> {
        let g = self.detection.forward_guard.clone();
        answer_blocking("listing held forwards", move || g.list(), guard_err).await
    }

    /// Release (through exim) or delete a held forward; audited.
    pub(super) async fn email_held_act(
        &self,
        id: String,
        release: bool,
        actor: &str,
    ) -> Result<Reply, ApiError> {
        let g = &self.detection.forward_guard;
        let r = if release {
            g.release(&id).await
        } else {
            g.delete(&id)
        }
        .map_err(guard_err)?;
        self.audit(
            actor,
            &format!("email_held_{}", r.status),
            &id,
            r.status,
            None,
        )
        .await;
        ok(&r)
    }

    pub(super) async fn db_object_backups(&self) -> Result<Reply, ApiError> {
        ok(&self.store.db_object_backups().await.map_err(store_err)?)
    }

    pub(super) async fn db_object_backup_preview(&self, key: String) -> Result<Reply, ApiError> {
        let b = self
            .store
            .db_object_backup(key.clone())
            .await
            .map_err(store_err)?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "backup not found"))?;
        let mut end = b.create_sql.len().min(PREVIEW_BYTES);
        while !b.create_sql.is_char_boundary(end) {
            end -= 1;
        }
        ok(&DbObjectPreview {
            key,
            account: b.account,
            schema: b.schema,
            kind: b.kind,
            name: b.name,
            preview: b.create_sql[..end].to_string(),
            truncated: end < b.create_sql.len(),
            total_size: b.create_sql.len(),
        })
    }

    pub(super) async fn db_object_backup_restore(
        &self,
        key: String,
        actor: &str,
    ) -> Result<Reply, ApiError> {
        use crate::detection::dbobjects::{DbError, RestoreError};
        let b = self
            .detection
            .databases
            .restore(&key)
            .await
            .map_err(|e| match &e {
                RestoreError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
                RestoreError::Restored(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
                RestoreError::Db(DbError::NoClient(_)) => unavailable(e.to_string()),
                RestoreError::Db(_) => ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()),
                RestoreError::Store(_) => ApiError::internal("restoring a backup", &e),
            })?;
        let what = format!("{} {}.{}", b.kind, b.schema, b.name);
        self.audit(actor, "db_object_restore", &what, &key, None)
            .await;
        ok(&DbObjectRestored {
            success: true,
            message: format!("{what} restored"),
            details: format!("replayed the CREATE statement kept at {}", b.dropped_at),
        })
    }
}

/// Bytes of a kept CREATE statement `/db-object-backup-preview` returns.
const PREVIEW_BYTES: usize = 8 * 1024;

/// `GET /db-object-backup-preview` (CSM's fields).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DbObjectPreview {
    pub key: String,
    pub account: String,
    pub schema: String,
    pub kind: String,
    pub name: String,
    pub preview: String,
    pub truncated: bool,
    pub total_size: usize,
}

/// `POST /db-object-backup-restore` (CSM's fields).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DbObjectRestored {
    pub success: bool,
    pub message: String,
    pub details: String,
}

/// `POST /modsec/rules/apply` and `/modsec/rules/escalation`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RulesApplied {
    pub status: &'static str,
    /// SecRule/SecAction directives in the custom set.
    pub rules: usize,
    /// The rule action overrides in force.
    pub actions: std::collections::BTreeMap<String, modsec_rules::RuleAction>,
    #[serde(flatten)]
    pub applied: modsec_rules::Applied,
}

/// `POST /rules/modsec-escalation`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct EscalationSaved {
    pub status: &'static str,
    pub overrides: std::collections::BTreeMap<String, crate::logs::modsec_rules::Escalation>,
}

impl AgentBackend {
    /// Render, test and reload the managed file with `rules` and `actions`; store
    /// them only when the web server took them.
    async fn write_modsec(
        &self,
        rules: String,
        actions: std::collections::BTreeMap<String, modsec_rules::RuleAction>,
        actor: &str,
        what: &str,
    ) -> Result<Reply, ApiError> {
        let file = modsec_rules::target(&self.modsec.custom_rules).map_err(unavailable)?;
        let n = modsec_rules::check_rules(&rules).map_err(ApiError::bad_request)?;
        let content = modsec_rules::render(&rules, &actions);
        let applied = modsec_rules::apply(
            &file,
            &content,
            &self.modsec.test_command,
            &self.modsec.reload_command,
        )
        .await
        .map_err(|e| match e {
            e @ modsec_rules::ApplyError::TestFailed(_) => ApiError::unprocessable(e.to_string()),
            e @ modsec_rules::ApplyError::Io { .. } => ApiError::internal("modsec rules file", &e),
        })?;
        self.store
            .set_settings(vec![
                (modsec_rules::KEY_RULES.into(), Some(json_text(&rules)?)),
                (modsec_rules::KEY_ACTIONS.into(), Some(json_text(&actions)?)),
            ])
            .await
            .map_err(store_err)?;
        self.audit(
            actor,
            what,
            &applied.file,
            &format!("{n} rules, {} actions", actions.len()),
            None,
        )
        .await;
        ok(&RulesApplied {
            status: "applied",
            rules: n,
            actions,
            applied,
        })
    }

    pub(super) async fn modsec_rules_apply(
        &self,
        r: api::model::ModsecRulesRequest,
        actor: &str,
    ) -> Result<Reply, ApiError> {
        let _one = self.settings_lock.lock().await;
        let actions = self.json_setting(modsec_rules::KEY_ACTIONS).await?;
        self.write_modsec(r.rules, actions, actor, "modsec_rules_apply")
            .await
    }

    pub(super) async fn modsec_rule_action(
        &self,
        r: api::model::RuleActionRequest,
        actor: &str,
    ) -> Result<Reply, ApiError> {
        modsec_rules::check_id(&r.rule_id).map_err(ApiError::bad_request)?;
        let _one = self.settings_lock.lock().await;
        let rules: String = self.json_setting(modsec_rules::KEY_RULES).await?;
        let mut actions: std::collections::BTreeMap<String, modsec_rules::RuleAction> =
            self.json_setting(modsec_rules::KEY_ACTIONS).await?;
        if r.action == "default" {
            actions.remove(&r.rule_id);
        } else {
            let a = modsec_rules::RuleAction {
                action: r.action,
                severity: r.severity,
            };
            modsec_rules::check_action(&a).map_err(ApiError::bad_request)?;
            actions.insert(r.rule_id, a);
        }
        self.write_modsec(rules, actions, actor, "modsec_rule_action")
            .await
    }

    pub(super) async fn modsec_escalation(
        &self,
        r: api::model::EscalationRequest,
        actor: &str,
    ) -> Result<Reply, ApiError> {
        use crate::logs::modsec_rules::{Escalation, WAF_ESCALATION_KEY};
        modsec_rules::check_id(&r.rule_id).map_err(ApiError::bad_request)?;
        let esc = match r.escalation.as_str() {
            "ignore" => Some(Escalation::Ignore),
            "count" => Some(Escalation::Count),
            "block" => Some(Escalation::Block),
            "default" => None,
            other => {
                return Err(ApiError::bad_request(format!(
                    "escalation must be ignore, count, block or default, got {other:?}"
                )))
            }
        };
        let _one = self.settings_lock.lock().await;
        let table = &self.responder.waf_escalation;
        let mut m = table.snapshot();
        match esc {
            Some(e) => m.insert(r.rule_id.clone(), e),
            None => m.remove(&r.rule_id),
        };
        self.store
            .set_settings(vec![(WAF_ESCALATION_KEY.into(), Some(json_text(&m)?))])
            .await
            .map_err(store_err)?;
        table.replace(m.clone());
        self.audit(actor, "modsec_escalation", &r.rule_id, &r.escalation, None)
            .await;
        ok(&EscalationSaved {
            status: "ok",
            overrides: m.into_iter().collect(),
        })
    }
}
