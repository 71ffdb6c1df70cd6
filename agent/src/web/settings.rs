// SPDX-License-Identifier: GPL-2.0-only
//! `/settings`: the config the agent runs from, by section, secrets redacted; writes
//! go to the API's own drop-in (`conf.d/zz-api-settings.yaml`, merged last, its
//! lists replacing), validated with every other layer before anything is written,
//! and take effect at `POST /settings/restart` (the agent starts again in place).

use std::path::{Path, PathBuf};

use api::ApiError;
use serde::Serialize;
use serde_yaml_ng::Value;
use sha2::{Digest, Sha256};
use warp::http::StatusCode;

use super::{ok, reply, AgentBackend, Reply};
use crate::config::{self, ConfigError, API_DROP_IN};

/// Sections the API may change.
pub const EDITABLE: &[&str] = &[
    "alerts",
    "auto_response",
    "detection",
    "egress",
    "exec",
    "firewall",
    "geoip",
    "infra_ips",
    "logs",
    "performance",
    "quarantine",
    "retention",
    "sensors",
    "verified_bots",
    "watch",
];
/// Sections shown, never changed here: the listener and its tokens (a write could
/// lock every operator out, or let one mint access), and where state lives.
/// Also `mail` and `modsec`: they name programs the agent runs as root (exim, the
/// web server's config test and reload), which a token must never be able to pick.
pub const READ_ONLY: &[&str] = &["webui", "state_dir", "mail", "modsec"];

/// What a redacted value reads as; sent back unchanged, it keeps the stored value.
pub const REDACTED: &str = "********";

/// Keys whose values are secrets (matched on the key name, any depth).
fn secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    ["token", "password", "secret", "api_key"]
        .iter()
        .any(|s| k.contains(s))
}

fn redact(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if secret_key(k) && !x.is_null() && !x.is_object() && !x.is_array() {
                    *x = serde_json::Value::String(REDACTED.into());
                } else {
                    redact(x);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

/// Put the stored value back wherever a request body says `"********"` (what a
/// client read from `GET`): the value at the same place in `stored`. Err names the
/// place when there is nothing stored there.
fn restore_redacted(
    v: &mut serde_json::Value,
    stored: &serde_json::Value,
    at: &str,
) -> Result<(), String> {
    match v {
        serde_json::Value::String(s) if s == REDACTED => match stored {
            serde_json::Value::Null => Err(format!(
                "{at}: {REDACTED:?} stands for a stored secret, and none is stored there"
            )),
            x => {
                *v = x.clone();
                Ok(())
            }
        },
        serde_json::Value::Object(m) => m
            .iter_mut()
            .try_for_each(|(k, x)| restore_redacted(x, &stored[k.as_str()], &format!("{at}.{k}"))),
        serde_json::Value::Array(a) => a
            .iter_mut()
            .enumerate()
            .try_for_each(|(i, x)| restore_redacted(x, &stored[i], &format!("{at}[{i}]"))),
        _ => Ok(()),
    }
}

/// `GET /settings`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SettingsIndex {
    pub sections: Vec<SectionInfo>,
    /// The file the agent runs from ("" for the embedded default).
    pub config_file: String,
    /// Where the API writes.
    pub api_drop_in: String,
    /// A write is waiting for `POST /settings/restart`.
    pub restart_pending: bool,
    pub started_at_token: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SectionInfo {
    pub name: &'static str,
    pub editable: bool,
}

/// `POST /settings/{section}`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SectionSaved {
    pub status: &'static str,
    pub section: String,
    /// Every section takes effect at the next start.
    pub restart_required: bool,
    pub file: String,
    pub started_at_token: String,
}

/// 202 of `POST /settings/restart`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Restarting {
    pub status: &'static str,
    /// The running agent's; poll `/status` until it changes.
    pub started_at_token: String,
}

/// 422 of a write: the key path the config refused, and why.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Refused {
    pub error: String,
    pub code: u16,
    pub key: String,
}

fn drop_in(path: &Path) -> PathBuf {
    config::dir_of(path).join("conf.d").join(API_DROP_IN)
}

fn config_err(e: ConfigError) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("the config on disk does not load: {e}"),
    )
}

/// Write `text` to `path` as root-only, atomically (a temp file renamed over).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = config::dir_of(path);
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    config::replace_file(path, text.as_bytes(), 0o600)
}

impl AgentBackend {
    /// SHA-256 over every layer the config is made of, as they are on disk now: it
    /// changes with a settings write, before the restart that applies it.
    pub(super) fn config_hash(&self) -> String {
        let layers = self.layers_now().unwrap_or_default();
        let mut h = Sha256::new();
        for (name, text) in layers {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(text.as_bytes());
            h.update([0]);
        }
        hex::encode(h.finalize())
    }

    fn restart_pending(&self) -> bool {
        self.settings_written
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn settings_index(&self) -> Result<Reply, ApiError> {
        let sections = EDITABLE
            .iter()
            .map(|n| SectionInfo {
                name: n,
                editable: true,
            })
            .chain(READ_ONLY.iter().map(|n| SectionInfo {
                name: n,
                editable: false,
            }))
            .collect();
        ok(&SettingsIndex {
            sections,
            config_file: self
                .config_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            api_drop_in: self
                .config_path
                .as_deref()
                .map(|p| drop_in(p).display().to_string())
                .unwrap_or_default(),
            restart_pending: self.restart_pending(),
            started_at_token: self.started_at_token.clone(),
        })
    }

    /// The merged config as it is on disk now (what the next start runs).
    /// The config's layers as they are on disk now (the embedded default alone
    /// without a config file).
    fn layers_now(&self) -> Result<Vec<(String, String)>, ConfigError> {
        match &self.config_path {
            Some(p) => config::layers(p),
            None => Ok(vec![config::default_layer()]),
        }
    }

    fn merged_now(&self) -> Result<serde_json::Value, ApiError> {
        let layers = self.layers_now().map_err(config_err)?;
        let v = config::merged(&layers).map_err(config_err)?;
        serde_json::to_value(v).map_err(|e| ApiError::internal("the config as JSON", &e))
    }

    pub(super) fn settings_section(&self, section: &str) -> Result<Reply, ApiError> {
        if !EDITABLE.contains(&section) && !READ_ONLY.contains(&section) {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no settings section {section:?}"),
            ));
        }
        let mut v = self.merged_now()?[section].take();
        redact(&mut v);
        ok(&v)
    }

    pub(super) async fn settings_update(
        &self,
        section: &str,
        mut body: serde_json::Value,
        actor: &str,
    ) -> Result<Reply, ApiError> {
        if READ_ONLY.contains(&section) {
            return Err(ApiError::unprocessable(format!(
                "{section} is not changed through the API (the listener and its tokens, where state lives, or programs the agent runs): edit the config file"
            )));
        }
        if !EDITABLE.contains(&section) {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no settings section {section:?}"),
            ));
        }
        let Some(path) = self.config_path.clone() else {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "the agent runs on the embedded default config (--default-config): there is no file to write; start it with a config file",
            ));
        };
        let file = drop_in(&path);
        let section_name = section.to_string();
        // Read, merge, check with every layer, write: on a blocking thread, one
        // write at a time.
        let _one = self.settings_lock.lock().await;
        let res = tokio::task::spawn_blocking(move || -> Result<Result<config::Config, (String, String)>, ApiError> {
            let mut layers = config::layers(&path).map_err(config_err)?;
            // `********` in the body: the stored secret at that place, read from the
            // same layers the write is checked against.
            let stored = serde_json::to_value(config::merged(&layers).map_err(config_err)?)
                .map_err(|e| ApiError::internal("the config as JSON", &e))?;
            restore_redacted(&mut body, &stored[section_name.as_str()], &section_name)
                .map_err(ApiError::unprocessable)?;
            let over: Value = serde_json::from_value(body)
                .map_err(|e| ApiError::bad_request(format!("not a config value: {e}")))?;
            let current = layers
                .iter()
                .position(|(n, _)| n.ends_with(API_DROP_IN))
                .map(|i| layers.remove(i).1)
                .unwrap_or_default();
            let mut doc: Value = serde_yaml_ng::from_str(&current).unwrap_or(Value::Null);
            if !doc.is_mapping() {
                doc = Value::Mapping(Default::default());
            }
            let key = Value::String(section_name.clone());
            let merged_section = match (doc.get(&key).cloned(), over) {
                (Some(Value::Mapping(mut old)), Value::Mapping(new)) => {
                    for (k, v) in new {
                        old.insert(k, v);
                    }
                    Value::Mapping(old)
                }
                (_, new) => new,
            };
            if let Value::Mapping(m) = &mut doc {
                m.insert(key, merged_section);
            }
            let text = format!(
                "# Written by the settings API (POST /api/v1/settings/<section>). Merged\n# last; its lists replace. Edit or remove it like any drop-in.\n{}",
                serde_yaml_ng::to_string(&doc)
                    .map_err(|e| ApiError::internal("the drop-in as YAML", &e))?
            );
            layers.push((file.display().to_string(), text.clone()));
            let new = match config::Config::from_layers(layers) {
                Ok(c) => c,
                Err(e) => {
                    return Ok(Err(match e {
                        ConfigError::Invalid { key, reason, .. } => (key, reason),
                        other => (section_name, other.to_string()),
                    }))
                }
            };
            write_private(&file, &text)
                .map_err(|e| ApiError::internal(&format!("writing {}", file.display()), &e))?;
            Ok(Ok(new))
        })
        .await
        .map_err(|e| ApiError::internal("settings write", &e))??;
        let new = match res {
            Ok(c) => c,
            Err((key, reason)) => {
                return reply(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &Refused {
                        error: format!("{key}: {reason}; nothing was written"),
                        code: 422,
                        key,
                    },
                )
            }
        };
        let live = self.apply_live(section, &new).await;
        if !live {
            self.settings_written
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.audit(actor, "settings_update", section, "", None)
            .await;
        ok(&SectionSaved {
            status: "saved",
            section: section.to_string(),
            restart_required: !live,
            file: self
                .config_path
                .as_deref()
                .map(|p| drop_in(p).display().to_string())
                .unwrap_or_default(),
            started_at_token: self.started_at_token.clone(),
        })
    }

    /// Apply a written section to the running agent where it can take it; false:
    /// it takes effect at the next start.
    async fn apply_live(&self, section: &str, new: &config::Config) -> bool {
        match section {
            "auto_response" => self.responder.set_cfg(new.auto_response.clone()),
            "performance" => self
                .detection
                .engine
                .set_perf(crate::detection::perf::Limits::from(&new.performance)),
            "alerts" => {
                if let Err(e) = self.alerts.set_config(new.alerts.channels.clone()) {
                    // Validated with the config, so not expected: the old channels
                    // stay, and the restart takes the new ones.
                    tracing::error!(error = %e, "The new alert channels could not be put in force; they apply at the next start.");
                    return false;
                }
            }
            "retention" => {
                *self
                    .detection
                    .retention
                    .write()
                    .unwrap_or_else(|p| p.into_inner()) = new.retention.clone();
            }
            "quarantine" => {
                // Where the quarantine lives and which trees it may touch are fixed
                // while it runs (files are in it); the rest applies now.
                let q = &self.detection.quarantine;
                if new.quarantine_dir() != q.dir() || new.quarantine_roots() != q.roots() {
                    return false;
                }
                self.detection
                    .auto_quarantine
                    .store(new.quarantine.auto, std::sync::atomic::Ordering::Relaxed);
                self.detection
                    .quarantine
                    .set_max_bytes(new.quarantine.max_bytes);
            }
            "infra_ips" => {
                // Never dropped, never blockable: the config's allow entries again
                // (`firewall.allow` with `infra_ips`), in the store and the XDP map.
                if let Err(e) = self.firewall.sync_config_allows(&new.allow_entries()).await {
                    tracing::error!(error = %e, "The new infra_ips could not be put in force; they apply at the next start.");
                    return false;
                }
            }
            "geoip" => {
                // The databases are read whole (tens of MB): off the runtime.
                let cfg = new.geoip.clone();
                match tokio::task::spawn_blocking(move || crate::firewall::geoip::GeoIp::load(&cfg))
                    .await
                {
                    Ok(g) => self.geoip.set(g),
                    Err(e) => {
                        tracing::error!(error = %e, "Loading the new GeoIP databases failed; they apply at the next start.");
                        return false;
                    }
                }
            }
            _ => return false,
        }
        tracing::info!(section, "Settings applied live.");
        true
    }

    pub(super) async fn settings_restart(&self, actor: &str) -> Result<Reply, ApiError> {
        if let Some(p) = &self.config_path {
            // Never restart into a config that does not load.
            if let Err(e) = config::Config::load(p) {
                return Err(ApiError::unprocessable(format!(
                    "the config on disk does not load, so the agent stays up: {e}"
                )));
            }
        }
        self.audit(actor, "settings_restart", "agent", "", None)
            .await;
        // After this reply is on its way.
        let restart = self.restart.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            restart.notify_one();
        });
        reply(
            StatusCode::ACCEPTED,
            &Restarting {
                status: "restarting",
                started_at_token: self.started_at_token.clone(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_redacted_and_a_redacted_value_sent_back_keeps_the_stored_one() {
        let mut v = json!({"channels": [{"name": "hook", "secret": "s3cr3t", "url": "https://x"}],
                           "auth_token": "t", "nested": {"smtp_password": "p", "password_file": null}});
        redact(&mut v);
        assert_eq!(v["channels"][0]["secret"], REDACTED);
        assert_eq!(v["channels"][0]["url"], "https://x");
        assert_eq!(v["auth_token"], REDACTED);
        assert_eq!(v["nested"]["smtp_password"], REDACTED);
        assert!(v["nested"]["password_file"].is_null(), "nothing to hide");
        let stored =
            json!({"channels": [{"name": "hook", "secret": "s3cr3t", "url": "https://x"}]});
        let mut back =
            json!({"channels": [{"name": "hook2", "secret": REDACTED, "url": "https://y"}]});
        restore_redacted(&mut back, &stored, "alerts").expect("restored");
        assert_eq!(back["channels"][0]["secret"], "s3cr3t");
        assert_eq!(back["channels"][0]["name"], "hook2");
        let mut new = json!({"channels": [{}, {"secret": REDACTED}]});
        let e = restore_redacted(&mut new, &stored, "alerts").expect_err("nothing stored");
        assert!(e.starts_with("alerts.channels[1].secret"), "{e}");
    }
}
