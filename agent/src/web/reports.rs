// SPDX-License-Identifier: GPL-2.0-only
//! The ModSecurity and mail reports over what the log watchers stored, with their
//! response types; 503 where the host has no such log.

use api::{model::Window, ApiError};
use serde::Serialize;
use warp::http::StatusCode;

use super::{ok, store_err, AgentBackend, Reply};
use crate::{
    logs::Source,
    store::{FindingGroup, MailScript},
};

/// A row of `/email/relay-abuse`: an account's outbound flood with its scripts.
#[derive(Debug, Serialize)]
pub struct RelayAbuse {
    #[serde(flatten)]
    pub group: FindingGroup,
    pub scripts: Vec<MailScript>,
}

/// A row of `/email/groups`.
#[derive(Debug, Serialize)]
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
