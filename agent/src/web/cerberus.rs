// SPDX-License-Identifier: GPL-2.0-only
//! Charon's Cerberus routes: the global security config, enforcement on and off
//! (break-glass), and rulesets (signature rule files the API manages in
//! `detection.rules_dir`).

use std::path::{Path, PathBuf};

use api::{
    model::{BreakGlassRequest, RulesetRequest, SecurityConfigRequest},
    ApiError,
};
use serde::{Deserialize, Serialize};
use warp::http::StatusCode;

use super::{fw_err, json_text, ok, policy_err, store_err, AgentBackend, Reply};
use crate::firewall::cerberus::{CerberusError, SecurityConfig, TOKEN_TTL_SECS};

/// The store key of the rulesets' metadata (their content is the rule file).
const KEY_RULESETS: &str = "cerberus.rulesets";
/// Largest ruleset accepted.
const MAX_RULESET_BYTES: usize = 256 * 1024;
/// Rulesets the API keeps at most.
const MAX_RULESETS: usize = 256;

pub(super) fn cerberus_err(e: CerberusError) -> ApiError {
    match e {
        CerberusError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
        CerberusError::Invalid(m) => ApiError::bad_request(m),
        CerberusError::Store(e) => store_err(e),
        CerberusError::Policy(e) => policy_err(e),
        CerberusError::Firewall(e) => fw_err(e),
        e @ CerberusError::Corrupt { .. } => ApiError::internal("cerberus state", &e),
    }
}

/// `GET /security/config`, `POST /security/config`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ConfigView {
    pub config: Option<ConfigOut>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ConfigOut {
    #[serde(flatten)]
    pub config: SecurityConfig,
    /// Enforcement on (not disabled by `/security/disable`).
    pub enabled: bool,
}

/// `POST /security/enable`, `/security/disable`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Switched {
    pub enabled: bool,
    /// When enforcement comes back on by itself ("" when on).
    pub disabled_until: String,
    pub message: String,
}

/// `POST /security/breakglass/generate`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct BreakGlass {
    pub token: String,
    pub expires_at: String,
}

/// One API-managed rule file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Ruleset {
    pub id: i64,
    pub name: String,
    /// `yaml` or `yara`.
    pub mode: String,
    pub source_url: String,
    /// The file's name in `detection.rules_dir`.
    pub file: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RulesetOut {
    #[serde(flatten)]
    pub meta: Ruleset,
    pub content: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Rulesets {
    pub rulesets: Vec<RulesetOut>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RulesetSaved {
    pub ruleset: RulesetOut,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Deleted {
    pub deleted: bool,
}

fn ruleset_file(name: &str, mode: &str) -> String {
    let ext = if mode == "yara" { "yar" } else { "yaml" };
    format!("api-ruleset-{name}.{ext}")
}

fn check_ruleset(r: &RulesetRequest) -> Result<(), ApiError> {
    let name_ok = (1..=64).contains(&r.name.len())
        && !r.name.starts_with('.')
        && r.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !name_ok {
        return Err(ApiError::bad_request(
            "name: 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'",
        ));
    }
    if !["yaml", "yara"].contains(&r.mode.as_str()) {
        return Err(ApiError::bad_request(format!(
            "mode must be yaml or yara (Rampart's signature rules), got {:?}",
            r.mode
        )));
    }
    if r.content.len() > MAX_RULESET_BYTES || r.content.trim().is_empty() {
        return Err(ApiError::bad_request(format!(
            "content: 1 to {MAX_RULESET_BYTES} bytes of rules"
        )));
    }
    if r.source_url.len() > 2048 || r.source_url.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "source_url: at most 2048 printable characters",
        ));
    }
    Ok(())
}

fn write_file(path: &Path, content: &[u8]) -> std::io::Result<()> {
    crate::config::replace_file(path, content, 0o640)
}

impl AgentBackend {
    pub(super) async fn security_config(&self) -> Result<Reply, ApiError> {
        let enabled = self
            .cerberus
            .disabled()
            .await
            .map_err(cerberus_err)?
            .is_none();
        let config = self.cerberus.config().await.map_err(cerberus_err)?;
        ok(&ConfigView {
            config: config.map(|config| ConfigOut { config, enabled }),
        })
    }

    pub(super) async fn security_config_update(
        &self,
        req: SecurityConfigRequest,
        local: bool,
        actor: &str,
    ) -> Result<Reply, ApiError> {
        // Enforcement first: a refused disable changes nothing else.
        let off = self.cerberus.disabled().await.map_err(cerberus_err)?;
        match req.enabled {
            Some(false) if off.is_none() => {
                self.cerberus
                    .disable(actor, req.break_glass_token.as_deref(), local, req.duration)
                    .await
                    .map_err(cerberus_err)?;
            }
            Some(true) => self.cerberus.enable(actor).await.map_err(cerberus_err)?,
            Some(false) | None => {}
        }
        let cfg = SecurityConfig {
            name: req.name,
            admin_whitelist: req.admin_whitelist,
            crowdsec_mode: req.crowdsec_mode,
            waf_mode: req.waf_mode,
            waf_rules_source: req.waf_rules_source,
            updated_at: String::new(),
        };
        self.cerberus
            .set_config(cfg, actor)
            .await
            .map_err(cerberus_err)?;
        self.security_config().await
    }

    pub(super) async fn security_enable(&self, actor: &str) -> Result<Reply, ApiError> {
        self.cerberus.enable(actor).await.map_err(cerberus_err)?;
        ok(&Switched {
            enabled: true,
            disabled_until: String::new(),
            message: "enforcement on".into(),
        })
    }

    pub(super) async fn security_disable(
        &self,
        req: BreakGlassRequest,
        local: bool,
        actor: &str,
    ) -> Result<Reply, ApiError> {
        let d = self
            .cerberus
            .disable(actor, req.break_glass_token.as_deref(), local, req.duration)
            .await
            .map_err(cerberus_err)?;
        ok(&Switched {
            enabled: false,
            disabled_until: d.until(),
            message: format!(
                "enforcement off until {}: the XDP firewall drops nothing meanwhile",
                d.until()
            ),
        })
    }

    pub(super) async fn break_glass_generate(&self, actor: &str) -> Result<Reply, ApiError> {
        let token = self
            .cerberus
            .generate_token(actor)
            .await
            .map_err(cerberus_err)?;
        ok(&BreakGlass {
            token,
            expires_at: crate::store::rfc3339_unix(crate::store::now_unix() + TOKEN_TTL_SECS),
        })
    }

    fn rules_dir(&self) -> Result<PathBuf, ApiError> {
        self.detection
            .engine
            .dir()
            .map(Path::to_path_buf)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "detection.rules_dir is not set: rulesets need a rules directory",
                )
            })
    }

    async fn save_rulesets(&self, sets: &[Ruleset]) -> Result<(), ApiError> {
        self.store
            .set_settings(vec![(KEY_RULESETS.into(), Some(json_text(&sets)?))])
            .await
            .map_err(store_err)
    }

    fn with_content(dir: &Path, meta: Ruleset) -> RulesetOut {
        // A file removed by hand reads as empty; the listing still shows it.
        let content = std::fs::read_to_string(dir.join(&meta.file)).unwrap_or_default();
        RulesetOut { meta, content }
    }

    pub(super) async fn rulesets(&self) -> Result<Reply, ApiError> {
        let sets = self.json_setting::<Vec<Ruleset>>(KEY_RULESETS).await?;
        let dir = self.detection.engine.dir().map(Path::to_path_buf);
        ok(&Rulesets {
            rulesets: sets
                .into_iter()
                .map(|m| match &dir {
                    Some(d) => Self::with_content(d, m),
                    None => RulesetOut {
                        meta: m,
                        content: String::new(),
                    },
                })
                .collect(),
        })
    }

    /// Reload the rules on a blocking thread.
    async fn reload_rules(
        &self,
    ) -> Result<Result<(), crate::detection::signatures::RuleErrors>, ApiError> {
        let engine = self.detection.engine.clone();
        tokio::task::spawn_blocking(move || engine.reload().map(|_| ()))
            .await
            .map_err(|e| ApiError::internal("rule reload task", &e))
    }

    pub(super) async fn upsert_ruleset(
        &self,
        r: RulesetRequest,
        actor: &str,
    ) -> Result<Reply, ApiError> {
        check_ruleset(&r)?;
        let dir = self.rules_dir()?;
        let _one = self.settings_lock.lock().await;
        let mut sets = self.json_setting::<Vec<Ruleset>>(KEY_RULESETS).await?;
        let file = ruleset_file(&r.name, &r.mode);
        let path = dir.join(&file);
        let before = std::fs::read(&path).ok();
        let old_file = sets
            .iter()
            .find(|s| s.name == r.name)
            .map(|s| s.file.clone());
        if old_file.is_none() && sets.len() >= MAX_RULESETS {
            return Err(ApiError::unprocessable(format!(
                "at most {MAX_RULESETS} rulesets; delete one first"
            )));
        }
        std::fs::create_dir_all(&dir)
            .and_then(|()| write_file(&path, r.content.as_bytes()))
            .map_err(|e| ApiError::internal("writing the ruleset file", &e))?;
        if let Err(errors) = self.reload_rules().await? {
            // Put the directory back as it was, and the engine's error state with it.
            let undo = match &before {
                Some(b) => write_file(&path, b),
                None => std::fs::remove_file(&path),
            };
            if let Err(e) = undo {
                tracing::error!(path = %path.display(), error = %e, "Restoring a refused ruleset file failed.");
            }
            let _ = self.reload_rules().await?;
            return Err(ApiError::bad_request(format!(
                "ruleset {:?} does not compile; nothing changed: {errors}",
                r.name
            )));
        }
        let now = crate::store::now_rfc3339();
        let meta = match sets.iter_mut().find(|s| s.name == r.name) {
            Some(s) => {
                s.mode = r.mode;
                s.source_url = r.source_url;
                s.file = file.clone();
                s.updated_at = now;
                s.clone()
            }
            None => {
                let id = sets.iter().map(|s| s.id).max().unwrap_or(0) + 1;
                let m = Ruleset {
                    id,
                    name: r.name,
                    mode: r.mode,
                    source_url: r.source_url,
                    file: file.clone(),
                    created_at: now.clone(),
                    updated_at: now,
                };
                sets.push(m.clone());
                m
            }
        };
        self.save_rulesets(&sets).await?;
        // The mode changed: the file of the other kind goes.
        if let Some(old) = old_file.filter(|o| *o != file) {
            if let Err(e) = std::fs::remove_file(dir.join(&old)) {
                tracing::warn!(file = %old, error = %e, "Removing a ruleset's previous file failed.");
            }
            let _ = self.reload_rules().await?;
        }
        self.audit(actor, "ruleset_upsert", &meta.name, &meta.file, None)
            .await;
        ok(&RulesetSaved {
            ruleset: RulesetOut {
                meta,
                content: r.content,
            },
        })
    }

    pub(super) async fn delete_ruleset(&self, id: i64, actor: &str) -> Result<Reply, ApiError> {
        let dir = self.rules_dir()?;
        let _one = self.settings_lock.lock().await;
        let mut sets = self.json_setting::<Vec<Ruleset>>(KEY_RULESETS).await?;
        let Some(i) = sets.iter().position(|s| s.id == id) else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no ruleset {id}"),
            ));
        };
        let gone = sets.remove(i);
        match std::fs::remove_file(dir.join(&gone.file)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ApiError::internal("removing the ruleset file", &e)),
        }
        self.save_rulesets(&sets).await?;
        if let Err(e) = self.reload_rules().await? {
            tracing::error!(error = %e, "Rules reload after deleting a ruleset failed; the previous set stays active.");
        }
        self.audit(actor, "ruleset_delete", &gone.name, &gone.file, None)
            .await;
        ok(&Deleted { deleted: true })
    }
}
