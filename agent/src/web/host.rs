// SPDX-License-Identifier: GPL-2.0-only
//! Routes about the host itself: the hardening audit.

use api::ApiError;
use warp::http::StatusCode;

use super::{ok, store_err, AgentBackend, Reply};
use crate::detection::hardening::{self, Report};

impl AgentBackend {
    pub(super) async fn hardening(&self) -> Result<Reply, ApiError> {
        let raw = self
            .store
            .setting(hardening::SETTING)
            .await
            .map_err(store_err)?;
        let Some(report) = raw.and_then(|r| serde_json::from_str::<Report>(&r).ok()) else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "no hardening audit has run yet: POST /api/v1/hardening/run",
            ));
        };
        ok(&report)
    }

    pub(super) async fn hardening_run(&self, actor: &str) -> Result<Reply, ApiError> {
        let report = tokio::task::spawn_blocking(|| hardening::audit(std::path::Path::new("/")))
            .await
            .map_err(|e| ApiError::internal("hardening audit", &e))?;
        let blob = serde_json::to_string(&report)
            .map_err(|e| ApiError::internal("serializing the report", &e))?;
        self.store
            .set_settings(vec![(hardening::SETTING.into(), Some(blob))])
            .await
            .map_err(store_err)?;
        self.audit(
            actor,
            "hardening_run",
            "host",
            &format!("score {}", report.score),
            None,
        )
        .await;
        ok(&report)
    }
}
