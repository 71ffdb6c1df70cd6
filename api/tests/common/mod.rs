// SPDX-License-Identifier: GPL-2.0-only
//! The in-memory backend the API tests drive the real auth and dispatch layer with.
// Each test binary includes this module and uses a different part of it.
#![allow(dead_code)]

use std::sync::Arc;

use api::{
    auth::Grant,
    model::{BlockEntry, BlockRequest, Finding, FirewallOp, LogEntry},
    ApiError, ApiState, Backend, TokenSet,
};
use tokio::sync::broadcast;
use warp::http::StatusCode;

pub struct MemBackend {
    pub tx: broadcast::Sender<Finding>,
    /// What `findings_after` serves (SSE resume).
    pub stored: Vec<Finding>,
    /// The live-log feed (`/logs/live`).
    pub logs: broadcast::Sender<LogEntry>,
}

#[async_trait::async_trait]
impl Backend for MemBackend {
    async fn status(&self) -> Result<serde_json::Value, ApiError> {
        Ok(serde_json::json!({"version": "test"}))
    }
    async fn health(&self) -> Result<serde_json::Value, ApiError> {
        Ok(serde_json::json!({"status": "ok"}))
    }
    async fn components(&self) -> Result<serde_json::Value, ApiError> {
        Ok(serde_json::json!({"components": []}))
    }
    fn capabilities(&self) -> Vec<&'static str> {
        vec!["events.sse.v1"]
    }
    async fn findings(&self) -> Result<Vec<Finding>, ApiError> {
        Ok(vec![])
    }
    async fn block_ip(&self, req: BlockRequest, _actor: &str) -> Result<BlockEntry, ApiError> {
        Ok(BlockEntry {
            ip: req.ip,
            reason: req.reason,
            source: "api".into(),
            blocked_at: "2026-01-01T00:00:00Z".into(),
            expires_at: None,
        })
    }
    async fn blocked_ips(&self) -> Result<Vec<BlockEntry>, ApiError> {
        Ok(vec![])
    }
    async fn metrics(&self) -> Result<String, ApiError> {
        Ok(String::new())
    }
    fn subscribe(&self) -> broadcast::Receiver<Finding> {
        self.tx.subscribe()
    }
    fn live_logs(&self) -> broadcast::Receiver<LogEntry> {
        self.logs.subscribe()
    }
    async fn findings_after(&self, id: i64, limit: u32) -> Result<Vec<Finding>, ApiError> {
        Ok(self
            .stored
            .iter()
            .filter(|f| f.id > id)
            .take(limit as usize)
            .cloned()
            .collect())
    }
    async fn detect(
        &self,
        _op: api::model::DetectOp,
        _actor: &str,
    ) -> Result<(StatusCode, serde_json::Value), ApiError> {
        Ok((StatusCode::OK, serde_json::json!([])))
    }
    async fn firewall(
        &self,
        _op: FirewallOp,
        _actor: &str,
    ) -> Result<(StatusCode, serde_json::Value), ApiError> {
        Ok((StatusCode::OK, serde_json::json!({})))
    }
}

pub const ADMIN: &str = "admin-token-0123456789";
pub const READ: &str = "read-token-0123456789";
pub const METRICS: &str = "metrics-token-0123456789";

pub fn state() -> Arc<ApiState<MemBackend>> {
    state_with(MemBackend {
        tx: broadcast::channel(4).0,
        stored: Vec::new(),
        logs: broadcast::channel(4).0,
    })
}

/// An API over `backend` with the admin, read and metrics tokens above.
pub fn state_with(backend: MemBackend) -> Arc<ApiState<MemBackend>> {
    ApiState::new(Arc::new(backend), tokens())
}

fn tokens() -> TokenSet {
    let mut t = TokenSet::new([9; 32]);
    t.add_plain("op", ADMIN, Grant::Admin);
    t.add_plain("panel", READ, Grant::Read);
    t.add_plain("prom", METRICS, Grant::Metrics);
    t
}

/// [`state`] with other listener and request limits.
pub fn state_with_limits(limits: api::Limits) -> Arc<ApiState<MemBackend>> {
    let backend = MemBackend {
        tx: broadcast::channel(4).0,
        stored: Vec::new(),
        logs: broadcast::channel(4).0,
    };
    ApiState::with_limits(Arc::new(backend), tokens(), limits)
}
