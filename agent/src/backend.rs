// SPDX-License-Identifier: GPL-2.0-only
//! The agent's implementation of the API backend.

use std::{
    path::PathBuf,
    sync::{atomic::Ordering, Arc, Mutex},
    time::Instant,
};

use agent_common::{xdp::XdpReason, FileStat};
use api::{
    model::{BlockEntry, BlockRequest, Finding},
    ApiError,
};
use aya::maps::{MapData, PerCpuArray};
use serde_json::json;
use tokio::sync::broadcast;

use crate::{
    events::PipelineStats,
    firewall::{Firewall, FirewallError},
    loader::Component,
    store::{Store, StoreError},
};

pub const CAPABILITIES: &[&str] = &[
    "confd.dropins.v1",
    "events.sse.v1",
    "firewall.xdp.v1",
    "sensors.file.tracepoint.v1",
];

/// Per-CPU kernel counters.
pub struct KernelStats {
    pub xdp: PerCpuArray<MapData, u64>,
    pub file: PerCpuArray<MapData, u64>,
}

fn sum(arr: &PerCpuArray<MapData, u64>, idx: u32) -> u64 {
    arr.get(&idx, 0).map(|v| v.iter().sum()).unwrap_or(0)
}

impl KernelStats {
    pub fn xdp(&self) -> Vec<(&'static str, u64)> {
        XdpReason::ALL
            .iter()
            .map(|r| (r.as_str(), sum(&self.xdp, *r as u32)))
            .collect()
    }
    pub fn file(&self) -> Vec<(&'static str, u64)> {
        FileStat::ALL
            .iter()
            .map(|s| (s.as_str(), sum(&self.file, *s as u32)))
            .collect()
    }
}

pub struct AgentBackend {
    pub store: Store,
    pub firewall: Arc<Firewall>,
    pub findings_tx: broadcast::Sender<Finding>,
    pub started: Instant,
    pub started_at: String,
    pub started_at_token: String,
    pub config_hash: String,
    /// Filled in by a background task at start (empty until then).
    pub binary_hash: Arc<std::sync::OnceLock<String>>,
    pub components: Vec<Component>,
    pub pipeline: Arc<PipelineStats>,
    pub kernel: Mutex<KernelStats>,
    pub watched: Vec<PathBuf>,
}

fn counters(v: Vec<(&'static str, u64)>) -> serde_json::Value {
    serde_json::Value::Object(
        v.into_iter()
            .map(|(k, n)| (k.to_string(), json!(n)))
            .collect(),
    )
}

fn store_err(e: StoreError) -> ApiError {
    ApiError::internal("store", &e)
}

fn fw_err(e: FirewallError) -> ApiError {
    match e {
        FirewallError::Invalid(m) => ApiError::bad_request(m),
        FirewallError::Refused(m) => ApiError::unprocessable(m),
        FirewallError::Store(e) => store_err(e),
        FirewallError::Map(e) => ApiError::internal("block map", &e),
    }
}

impl AgentBackend {
    fn kernel<T>(&self, f: impl FnOnce(&KernelStats) -> T) -> T {
        let g = match self.kernel.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&g)
    }

    fn pipeline_json(&self) -> serde_json::Value {
        let p = &self.pipeline;
        json!({
            "received": p.received.load(Ordering::Relaxed),
            "decode_errors": p.decode_errors.load(Ordering::Relaxed),
            "queue_dropped": p.queue_dropped.load(Ordering::Relaxed),
            "unwatched": p.unwatched.load(Ordering::Relaxed),
            "unresolved": p.unresolved.load(Ordering::Relaxed),
        })
    }
}

#[async_trait::async_trait]
impl api::Backend for AgentBackend {
    async fn status(&self) -> Result<serde_json::Value, ApiError> {
        let counts = self.store.severity_counts().await.map_err(store_err)?;
        let mut sev = serde_json::Map::new();
        for s in api::model::Severity::ALL {
            let n = counts
                .iter()
                .find(|(k, _)| k == s.as_str())
                .map(|(_, n)| *n)
                .unwrap_or(0);
            sev.insert(s.as_str().into(), n.into());
        }
        let blocks = self.firewall.list().await.map_err(fw_err)?.len();
        Ok(json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime": self.started.elapsed().as_secs(),
            "started_at": self.started_at,
            "started_at_token": self.started_at_token,
            "watchers": self.watched,
            "severity_counts": sev,
            "store": { "status": "ok" },
            "blocklist_size": blocks,
            "capabilities": CAPABILITIES,
            "config_hash": self.config_hash,
            "binary_hash": self.binary_hash.get().map(String::as_str).unwrap_or(""),
            "latest_scan": null,
            "last_scan_time": null,
            "challenge_pending": 0,
            "rollback": null,
        }))
    }

    async fn health(&self) -> Result<serde_json::Value, ApiError> {
        let degraded = self
            .components
            .iter()
            .any(|c| c.state != "attached" && c.state != "not_configured");
        let (xdp, file) = self.kernel(|k| (k.xdp(), k.file()));
        Ok(json!({
            "status": if degraded { "degraded" } else { "ok" },
            "components": self.components,
            "pipeline": self.pipeline_json(),
            "kernel": {
                "xdp": counters(xdp),
                "file_sensor": counters(file),
            },
        }))
    }

    async fn components(&self) -> Result<serde_json::Value, ApiError> {
        Ok(json!({ "components": self.components }))
    }

    fn capabilities(&self) -> Vec<&'static str> {
        CAPABILITIES.to_vec()
    }

    async fn findings(&self) -> Result<Vec<Finding>, ApiError> {
        self.store.active_findings(1000).await.map_err(store_err)
    }

    async fn block_ip(&self, req: BlockRequest, actor: &str) -> Result<BlockEntry, ApiError> {
        let reason = if req.reason.is_empty() {
            format!("blocked via API by {actor}")
        } else {
            req.reason
        };
        self.firewall
            .block(&req.ip, &reason, "api", req.duration)
            .await
            .map_err(fw_err)
    }

    async fn blocked_ips(&self) -> Result<Vec<BlockEntry>, ApiError> {
        self.firewall.list().await.map_err(fw_err)
    }

    async fn metrics(&self) -> Result<String, ApiError> {
        use std::fmt::Write;
        let (xdp, file) = self.kernel(|k| (k.xdp(), k.file()));
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP rampart_xdp_packets_total Packets seen by the XDP firewall, by verdict reason."
        );
        let _ = writeln!(s, "# TYPE rampart_xdp_packets_total counter");
        for (k, v) in xdp {
            let _ = writeln!(s, "rampart_xdp_packets_total{{reason=\"{k}\"}} {v}");
        }
        let _ = writeln!(
            s,
            "# HELP rampart_file_sensor_total File sensor outcomes in the kernel."
        );
        let _ = writeln!(s, "# TYPE rampart_file_sensor_total counter");
        for (k, v) in file {
            let _ = writeln!(s, "rampart_file_sensor_total{{outcome=\"{k}\"}} {v}");
        }
        let p = &self.pipeline;
        for (name, v) in [
            (
                "rampart_events_received_total",
                p.received.load(Ordering::Relaxed),
            ),
            (
                "rampart_events_decode_errors_total",
                p.decode_errors.load(Ordering::Relaxed),
            ),
            (
                "rampart_events_queue_dropped_total",
                p.queue_dropped.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(s, "# TYPE {name} counter\n{name} {v}");
        }
        let blocks = self.firewall.list().await.map_err(fw_err)?.len();
        let _ = writeln!(
            s,
            "# TYPE rampart_blocked_entries gauge\nrampart_blocked_entries {blocks}"
        );
        Ok(s)
    }

    fn subscribe(&self) -> broadcast::Receiver<Finding> {
        self.findings_tx.subscribe()
    }
}
