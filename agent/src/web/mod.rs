// SPDX-License-Identifier: GPL-2.0-only
//! The agent's implementation of the API backend.

use std::{
    path::PathBuf,
    sync::{atomic::Ordering, Arc},
    time::Instant,
};

use api::{
    model::{BlockEntry, BlockRequest, Finding, FirewallOp, FwList as ApiList},
    ApiError,
};
use serde_json::json;
use tokio::sync::broadcast;
use warp::http::StatusCode;

pub mod detect;
pub mod reports;
pub mod tls;
pub mod tokens;
pub mod undo;

use crate::{
    config::Logs,
    detection::{self, Detection},
    firewall::{Firewall, FirewallError, PolicyError, PolicyManager},
    kernel::{Component, ComponentState, Counters},
    logs::{respond::Responder, LogStats},
    sensors::{FileOp, PipelineStats, SensorBackend, SensorCounters},
    store::{EntryQuery, FwList, NewFinding, Store, StoreError},
};
use undo::Undo;

pub const CAPABILITIES: &[&str] = &[
    "confd.dropins.v1",
    "events.sse.v1",
    "firewall.xdp.v1",
    "firewall.tentative_apply.v1",
    "events.sse.resume.v1",
    "detect.signatures.yaml.v1",
    "detect.signatures.yara_x.v1",
    "detect.quarantine.v1",
    "detect.suppressions.v1",
    "detect.scan_jobs.v1",
    "logs.watchers.v1",
    "webui.undo.v1",
];

/// The capability flag for a sensor served by a backend (feature-detect: which
/// sensors run here, and how).
fn sensor_capability(sensor: &str, backend: &str) -> Option<&'static str> {
    Some(match (sensor, backend) {
        ("file", "tracepoint") => "sensors.file.tracepoint.v1",
        ("file", "fanotify") => "sensors.file.fanotify.v1",
        ("file", "lsm") => "sensors.file.lsm.v1",
        ("sensitive_read", "tracepoint") => "sensors.sensitive_read.tracepoint.v1",
        ("sensitive_read", "lsm") => "sensors.sensitive_read.lsm.v1",
        ("file_metadata", "btf") => "sensors.file_metadata.btf.v1",
        ("exec", "tracepoint") => "sensors.exec.tracepoint.v1",
        ("exec", "lsm") => "sensors.exec.lsm.v1",
        ("exec", "fanotify") => "sensors.exec.fanotify.v1",
        ("egress", "cgroup") => "sensors.egress.cgroup.v1",
        _ => return None,
    })
}

/// Per-CPU kernel counters: the firewall's verdicts and the sensors'.
pub struct KernelStats {
    pub xdp: Arc<Counters>,
    pub sensors: Arc<SensorCounters>,
}

impl KernelStats {
    pub fn xdp(&self) -> Vec<(&'static str, u64)> {
        self.xdp.read()
    }
    /// Exec outcomes: the kernel program's counters plus the fanotify backend's.
    pub fn exec(&self, user: &PipelineStats) -> Vec<(&'static str, u64)> {
        let mut v = self.sensors.exec.read();
        for (i, (_, n)) in v.iter_mut().enumerate() {
            *n += user.exec[i].load(Ordering::Relaxed);
        }
        v
    }
    pub fn egress(&self) -> Vec<(&'static str, u64)> {
        self.sensors.egress.read()
    }
    pub fn file(&self) -> Vec<(&'static str, u64)> {
        self.sensors.file.read()
    }
}

pub struct AgentBackend {
    pub store: Store,
    pub firewall: Arc<Firewall>,
    pub detection: Arc<Detection>,
    pub responder: Arc<Responder>,
    pub log_stats: Arc<LogStats>,
    pub started: Instant,
    pub started_at: String,
    pub started_at_token: String,
    pub config_hash: String,
    /// Filled in by a background task at start (empty until then).
    pub binary_hash: Arc<std::sync::OnceLock<String>>,
    pub components: Vec<Component>,
    /// Which backend serves each sensor, and why.
    pub sensors: Vec<SensorBackend>,
    pub pipeline: Arc<PipelineStats>,
    pub kernel: KernelStats,
    pub watched: Vec<PathBuf>,
    pub policy: Arc<PolicyManager>,
    /// The log sources configured (reports answer 503 when the host has none).
    pub logs: Logs,
    pub undo: Undo,
}

fn counters(v: Vec<(&'static str, u64)>) -> serde_json::Value {
    serde_json::Value::Object(
        v.into_iter()
            .map(|(k, n)| (k.to_string(), json!(n)))
            .collect(),
    )
}

pub(crate) fn store_err(e: StoreError) -> ApiError {
    ApiError::internal("store", &e)
}

fn fw_err(e: FirewallError) -> ApiError {
    match e {
        FirewallError::Invalid(m) => ApiError::bad_request(m),
        e @ FirewallError::Import(_) => ApiError::bad_request(e.to_string()),
        FirewallError::Refused(m) => ApiError::unprocessable(m),
        FirewallError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
        FirewallError::Store(e) => store_err(e),
        FirewallError::Map(e) => ApiError::internal("block map", &e),
    }
}

fn policy_err(e: PolicyError) -> ApiError {
    match e {
        // csm-api.md: invalid field values return 422 and do not touch disk.
        e @ PolicyError::Invalid { .. } => ApiError::unprocessable(e.to_string()),
        e @ (PolicyError::NothingPending | PolicyError::AlreadyPending(_)) => {
            ApiError::new(StatusCode::CONFLICT, e.to_string())
        }
        PolicyError::Store(e) => store_err(e),
        e @ (PolicyError::Kernel(_) | PolicyError::Corrupt(_)) => {
            ApiError::internal("firewall policy", &e)
        }
    }
}

fn list_of(l: ApiList) -> FwList {
    match l {
        ApiList::Block => FwList::Blocks,
        ApiList::Allow => FwList::Allows,
    }
}

impl AgentBackend {
    /// Every loss counter: kernel ring buffer reserve failures per program, then the
    /// userspace queue.
    pub fn losses(&self) -> Vec<(&'static str, u64)> {
        let (xdp, file, egress, exec) =
            self.kernel(|k| (k.xdp(), k.file(), k.egress(), k.exec(&self.pipeline)));
        let pick = |v: &[(&'static str, u64)], key: &str| {
            v.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, n)| *n)
                .unwrap_or(0)
        };
        vec![
            ("file_ringbuf_full", pick(&file, "ringbuf_full")),
            ("file_map_full", pick(&file, "map_full")),
            ("xdp_event_lost", pick(&xdp, "event_lost")),
            ("egress_ringbuf_full", pick(&egress, "ringbuf_full")),
            ("exec_ringbuf_full", pick(&exec, "ringbuf_full")),
            (
                "queue_dropped",
                self.pipeline.queue_dropped.load(Ordering::Relaxed),
            ),
        ]
    }

    fn kernel<T>(&self, f: impl FnOnce(&KernelStats) -> T) -> T {
        f(&self.kernel)
    }

    fn pipeline_json(&self) -> serde_json::Value {
        let p = &self.pipeline;
        json!({
            "received": p.received.load(Ordering::Relaxed),
            "decode_errors": p.decode_errors.load(Ordering::Relaxed),
            "queue_dropped": p.queue_dropped.load(Ordering::Relaxed),
            "unwatched": p.unwatched.load(Ordering::Relaxed),
            "unresolved": p.unresolved.load(Ordering::Relaxed),
            "file_ops": {
                "write_close": p.file_ops[FileOp::WriteClose as usize].load(Ordering::Relaxed),
                "unlink": p.file_ops[FileOp::Unlink as usize].load(Ordering::Relaxed),
                "rename": p.file_ops[FileOp::Rename as usize].load(Ordering::Relaxed),
                "chmod": p.file_ops[FileOp::Chmod as usize].load(Ordering::Relaxed),
                "sensitive_read": p.file_ops[FileOp::SensitiveRead as usize].load(Ordering::Relaxed),
            },
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
        let blocks = self.store.count(FwList::Blocks).await.map_err(store_err)?;
        Ok(json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime": self.started.elapsed().as_secs(),
            "started_at": self.started_at,
            "started_at_token": self.started_at_token,
            "watchers": self.watched,
            "severity_counts": sev,
            "store": { "status": "ok" },
            "blocklist_size": blocks,
            "capabilities": self.capabilities(),
            "config_hash": self.config_hash,
            "binary_hash": self.binary_hash.get().map(String::as_str).unwrap_or(""),
            "latest_scan": null,
            "last_scan_time": null,
            "challenge_pending": 0,
            "rollback": null,
        }))
    }

    async fn health(&self) -> Result<serde_json::Value, ApiError> {
        // "unavailable" (a backend this kernel lacks, with a fallback) is not degraded.
        let degraded = self
            .components
            .iter()
            .any(|c| c.state == ComponentState::Failed);
        let (xdp, file, egress, exec) =
            self.kernel(|k| (k.xdp(), k.file(), k.egress(), k.exec(&self.pipeline)));
        Ok(json!({
            "status": if degraded { "degraded" } else { "ok" },
            "components": self.components,
            "sensors": self.sensors,
            "pipeline": self.pipeline_json(),
            "losses": counters(self.losses()),
            "detection": detection::stats_json(&self.detection),
            "logs": self.log_stats.json(),
            "auto_response": {
                "triggered": self.responder.stats.triggered.load(Ordering::Relaxed),
                "blocked": self.responder.stats.blocked.load(Ordering::Relaxed),
                "dry_run": self.responder.stats.dry_run.load(Ordering::Relaxed),
                "refused": self.responder.stats.refused.load(Ordering::Relaxed),
                "errors": self.responder.stats.errors.load(Ordering::Relaxed),
            },
            "kernel": {
                "xdp": counters(xdp),
                "file_sensor": counters(file),
                "egress": counters(egress),
                "exec": counters(exec),
            },
        }))
    }

    async fn components(&self) -> Result<serde_json::Value, ApiError> {
        Ok(json!({ "components": self.components, "sensors": self.sensors }))
    }

    fn capabilities(&self) -> Vec<&'static str> {
        let mut caps = CAPABILITIES.to_vec();
        caps.extend(
            self.sensors
                .iter()
                .filter_map(|s| sensor_capability(s.sensor, s.backend)),
        );
        caps
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
        let (xdp, file, egress, exec) =
            self.kernel(|k| (k.xdp(), k.file(), k.egress(), k.exec(&self.pipeline)));
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
        let _ = writeln!(s, "# HELP rampart_egress_connects_total Outbound connects checked by the egress sensor, by outcome.");
        let _ = writeln!(s, "# TYPE rampart_egress_connects_total counter");
        for (k, v) in egress {
            let _ = writeln!(s, "rampart_egress_connects_total{{outcome=\"{k}\"}} {v}");
        }
        let _ = writeln!(
            s,
            "# HELP rampart_exec_total Execs checked by the exec sensor, by outcome."
        );
        let _ = writeln!(s, "# TYPE rampart_exec_total counter");
        for (k, v) in exec {
            let _ = writeln!(s, "rampart_exec_total{{outcome=\"{k}\"}} {v}");
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
        let blocks = self.store.count(FwList::Blocks).await.map_err(store_err)?;
        let allows = self.store.count(FwList::Allows).await.map_err(store_err)?;
        let _ = writeln!(
            s,
            "# TYPE rampart_blocked_entries gauge\nrampart_blocked_entries {blocks}"
        );
        let _ = writeln!(
            s,
            "# TYPE rampart_allowed_entries gauge\nrampart_allowed_entries {allows}"
        );
        Ok(s)
    }

    fn subscribe(&self) -> broadcast::Receiver<Finding> {
        self.detection.findings.subscribe()
    }

    async fn findings_after(&self, id: i64, limit: u32) -> Result<Vec<Finding>, ApiError> {
        let (rows, _) = self
            .store
            .query_findings(crate::store::FindingQuery {
                after_id: Some(id),
                limit,
                oldest_first: true,
                ..Default::default()
            })
            .await
            .map_err(store_err)?;
        Ok(rows)
    }

    async fn detect(
        &self,
        op: api::model::DetectOp,
        actor: &str,
    ) -> Result<(StatusCode, serde_json::Value), ApiError> {
        self.detect_op(op, actor).await
    }

    async fn firewall(
        &self,
        op: FirewallOp,
        actor: &str,
    ) -> Result<(StatusCode, serde_json::Value), ApiError> {
        let fw = &self.firewall;
        let ok = |v| Ok((StatusCode::OK, v));
        match op {
            FirewallOp::Status => ok(self.firewall_status().await?),
            FirewallOp::List { list, subnets_only } => {
                let q = EntryQuery {
                    subnets_only,
                    ..Default::default()
                };
                ok(json!(self
                    .store
                    .query_entries(list_of(list), q)
                    .await
                    .map_err(store_err)?))
            }
            FirewallOp::Audit { limit } => ok(json!(self
                .store
                .audit_log(limit)
                .await
                .map_err(store_err)?)),
            FirewallOp::Check { ip } => ok(json!(fw.check(&ip).await.map_err(fw_err)?)),
            FirewallOp::Add {
                list,
                ip,
                reason,
                duration,
                force,
                source,
            } => {
                let list = list_of(list);
                let reason = if reason.trim().is_empty() && source == "threat" {
                    "threat intelligence".into()
                } else {
                    reason
                };
                let e = fw
                    .add(list, &ip, &reason, source, duration, force, actor)
                    .await
                    .map_err(fw_err)?;
                if source == "decision" {
                    return Ok((
                        StatusCode::CREATED,
                        json!({ "decision": decision(&e, list, 0) }),
                    ));
                }
                let status = if list == FwList::Blocks {
                    "blocked"
                } else {
                    "allowed"
                };
                ok(json!({ "status": status, "ip": e.ip, "expires_at": e.expires_at }))
            }
            FirewallOp::Remove { list, ips, bulk } => {
                let list = list_of(list);
                let before = if bulk && list == FwList::Blocks {
                    self.snapshot_blocks(&ips).await?
                } else {
                    Vec::new()
                };
                let gone = fw.remove(list, &ips, actor).await.map_err(fw_err)?;
                if bulk {
                    let removed: Vec<_> = before
                        .into_iter()
                        .filter(|i| gone.contains(&i.ip))
                        .collect();
                    let token = self.record_unblock_undo(actor, removed);
                    let not_found: Vec<&String> = ips
                        .iter()
                        .filter(|i| {
                            crate::firewall::parse_target(i, true)
                                .map(|n| !gone.contains(&crate::firewall::canonical(&n)))
                                .unwrap_or(true)
                        })
                        .collect();
                    let mut v =
                        json!({ "status": "ok", "unblocked": gone, "not_found": not_found });
                    if let Some(t) = token {
                        v["undo_token"] = json!(t);
                    }
                    return ok(v);
                }
                let what = if list == FwList::Blocks {
                    "blocked"
                } else {
                    "allowed"
                };
                match gone.first() {
                    Some(ip) => ok(
                        json!({ "status": format!("un{what}").replace("unallowed", "removed"), "ip": ip }),
                    ),
                    None => Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        format!("{} is not {what}", ips.join(", ")),
                    )),
                }
            }
            FirewallOp::Flush => ok(
                json!({ "status": "flushed", "removed": fw.flush(actor).await.map_err(fw_err)? }),
            ),
            FirewallOp::Unban { ip } => {
                let gone = fw
                    .remove(FwList::Blocks, std::slice::from_ref(&ip), actor)
                    .await
                    .map_err(fw_err)?;
                let Some(ip) = gone.first() else {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        format!("{ip} is not blocked"),
                    ));
                };
                // cPHulk is cPanel's brute-force store; only cPanel hosts have it.
                let cphulk = if std::path::Path::new("/usr/local/cpanel/bin/hulk-unban-ip").exists()
                {
                    let st = tokio::process::Command::new("/usr/local/cpanel/bin/hulk-unban-ip")
                        .arg(ip)
                        .status()
                        .await;
                    if st.is_ok_and(|s| s.success()) {
                        "flushed"
                    } else {
                        "failed"
                    }
                } else {
                    "not_installed"
                };
                ok(json!({ "status": "unbanned", "ip": ip, "cphulk": cphulk }))
            }
            FirewallOp::TentativeApply { changes } => {
                let rb = self
                    .policy
                    .tentative_apply(changes)
                    .await
                    .map_err(policy_err)?;
                ok(json!({ "status": "applied", "restart": false, "rollback": rb.to_json() }))
            }
            FirewallOp::Rollback => match self.policy.pending().await.map_err(policy_err)? {
                Some(rb) => ok(rb.to_json()),
                None => ok(json!({ "pending": false })),
            },
            FirewallOp::Confirm => {
                let p = self.policy.confirm().await.map_err(policy_err)?;
                ok(json!({ "status": "confirmed", "policy": p }))
            }
            FirewallOp::Revert => {
                let p = self.policy.revert(actor).await.map_err(policy_err)?;
                ok(json!({ "status": "reverted", "policy": p }))
            }
            FirewallOp::Decisions { limit } => {
                // The newest `limit` of each list, merged: at most 2 × limit rows read.
                let q = EntryQuery {
                    newest_first: true,
                    limit: Some(limit),
                    ..Default::default()
                };
                let mut all = Vec::new();
                for list in [FwList::Blocks, FwList::Allows] {
                    let rows = self.store.query_entries(list, q).await.map_err(store_err)?;
                    all.extend(rows.into_iter().map(|e| (e, list)));
                }
                all.sort_by(|a, b| b.0.blocked_at.cmp(&a.0.blocked_at));
                let v: Vec<_> = all
                    .iter()
                    .take(limit as usize)
                    .enumerate()
                    .map(|(i, (e, l))| decision(e, *l, i + 1))
                    .collect();
                ok(json!({ "decisions": v }))
            }
            FirewallOp::SecurityStatus => {
                let attached = self
                    .components
                    .iter()
                    .any(|c| c.kind == "xdp" && c.state == ComponentState::Attached);
                let p = self.policy.current().await.map_err(policy_err)?;
                ok(json!({
                    "enabled": attached,
                    "firewall": { "enabled": attached, "mode": "xdp" },
                    "rate_limit": { "enabled": p.rate_limit.pps > 0 || p.syn_limit.pps > 0 },
                    "acl": { "enabled": !p.tcp_in.is_empty() || !p.udp_in.is_empty() },
                    "port_scan": { "enabled": p.port_scan.ports > 0 },
                    "waf": { "mode": "disabled" },
                    "crowdsec": { "mode": "disabled" },
                }))
            }
        }
    }
}

/// A Charon-style decision record.
fn decision(e: &BlockEntry, list: FwList, id: usize) -> serde_json::Value {
    json!({
        "id": id,
        "source": e.source,
        "ip": e.ip,
        "action": if list == FwList::Blocks { "block" } else { "allow" },
        "reason": e.reason,
        "timestamp": e.blocked_at,
        "expires_at": e.expires_at,
    })
}

impl AgentBackend {
    async fn firewall_status(&self) -> Result<serde_json::Value, ApiError> {
        let blocks = self.store.count(FwList::Blocks).await.map_err(store_err)?;
        let subnets = self
            .store
            .count_subnets(FwList::Blocks)
            .await
            .map_err(store_err)?;
        let allowed = self.store.count(FwList::Allows).await.map_err(store_err)?;
        let xdp = self.kernel(|k| k.xdp());
        let top: Vec<_> = self
            .store
            .top_dropped(10)
            .await
            .map_err(store_err)?
            .into_iter()
            .map(|(ip, n, last)| json!({ "ip": ip, "samples": n, "last_seen": last }))
            .collect();
        let interfaces: Vec<&Component> =
            self.components.iter().filter(|c| c.kind == "xdp").collect();
        Ok(json!({
            "enabled": interfaces.iter().any(|c| c.state == ComponentState::Attached),
            "enforcing": self.firewall.enforcing(),
            "interfaces": interfaces,
            "blocked": blocks,
            "blocked_subnets": subnets,
            "allowed": allowed,
            "policy": self.policy.current().await.map_err(policy_err)?,
            "rollback": self.policy.pending().await.map_err(policy_err)?.map(|r| r.to_json()),
            "counters": counters(xdp),
            "top_dropped": top,
        }))
    }
}

/// Every window: if any event was lost (a kernel ring buffer was full, or a userspace
/// queue was), raise an `event_loss` finding saying where and how many.
pub async fn loss_watch(
    b: Arc<AgentBackend>,
    window: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(window);
    let mut last = b.losses();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = b.losses();
                let delta: Vec<(&str, u64)> = now
                    .iter()
                    .zip(&last)
                    .filter(|(n, l)| n.1 > l.1)
                    .map(|(n, l)| (n.0, n.1 - l.1))
                    .collect();
                last = now;
                if delta.is_empty() {
                    continue;
                }
                let total: u64 = delta.iter().map(|d| d.1).sum();
                let parts: Vec<String> = delta.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                let f = NewFinding {
                    check: "event_loss".into(),
                    severity: api::model::Severity::Warning,
                    message: format!("{total} events lost in the last {}s", window.as_secs()),
                    details: format!("{}; raise sensors.ringbuf_bytes or sensors.event_channel_size", parts.join(", ")),
                    ..Default::default()
                };
                b.detection.findings.report(f).await;
            }
            _ = shutdown.changed() => return,
        }
    }
}
