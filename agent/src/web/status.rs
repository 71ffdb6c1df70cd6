// SPDX-License-Identifier: GPL-2.0-only
//! `/status`, `/health`, `/components` and `/metrics`: what the daemon runs and how
//! it is doing.

use std::{collections::BTreeMap, path::PathBuf, sync::atomic::Ordering};

use api::{model::Severity, ApiError};
use serde::Serialize;

use super::{store_err, AgentBackend};
use crate::{
    firewall::policy::RollbackView,
    kernel::{Component, ComponentState},
    logs::stats::LogStatsView,
    sensors::{FileOp, SensorBackend},
    store::FwList,
    supervisor::{TaskState, TaskView},
};

/// A supervised task as a component: failed while it waits for its restart, with the
/// last error (and how often it restarted) as the reason.
fn task_component(t: TaskView) -> Component {
    let reason = t.last_error.map(|e| match t.restarts {
        0 => e,
        n => format!("restarted {n} time(s); last: {e}"),
    });
    Component {
        name: t.name.to_string(),
        kind: "task",
        target: t.feature.to_string(),
        state: match t.state {
            TaskState::Running => ComponentState::Running,
            TaskState::Failed => ComponentState::Failed,
            TaskState::Stopped => ComponentState::Stopped,
        },
        mode: None,
        reason,
    }
}

/// Counters by name (the `*_STATS_TOTAL` slots, the loss counters).
pub type CounterMap = BTreeMap<&'static str, u64>;

fn counter_map(v: Vec<(&'static str, u64)>) -> CounterMap {
    v.into_iter().collect()
}

/// `GET /api/v1/status`.
#[derive(Debug, Serialize)]
pub struct Status {
    pub version: &'static str,
    /// Seconds since the agent started.
    pub uptime: u64,
    pub started_at: String,
    pub started_at_token: String,
    pub watchers: Vec<PathBuf>,
    pub severity_counts: BTreeMap<&'static str, i64>,
    pub store: StoreHealth,
    pub blocklist_size: i64,
    pub capabilities: Vec<&'static str>,
    pub config_hash: String,
    pub binary_hash: String,
    pub latest_scan: Option<String>,
    pub last_scan_time: Option<String>,
    pub challenge_pending: u32,
    pub rollback: Option<RollbackView>,
}

#[derive(Debug, Serialize)]
pub struct StoreHealth {
    pub status: &'static str,
}

/// `GET /api/v1/health`.
#[derive(Debug, Serialize)]
pub struct Health {
    /// "ok", or "degraded" when a component failed or a task is down.
    pub status: &'static str,
    pub components: Vec<Component>,
    /// The supervised tasks: state, restarts, last error.
    pub tasks: Vec<TaskView>,
    pub sensors: Vec<SensorBackend>,
    pub pipeline: Pipeline,
    pub losses: CounterMap,
    pub detection: crate::detection::DetectionStats,
    pub logs: LogStatsView,
    pub auto_response: AutoResponseStats,
    pub kernel: KernelCounters,
    /// Each alert channel's outbox: pending, sent, failed, the newest error.
    pub alerts: Vec<crate::findings::alerts::ChannelView>,
}

/// The sensors' userspace pipeline.
#[derive(Debug, Serialize)]
pub struct Pipeline {
    pub received: u64,
    pub decode_errors: u64,
    pub queue_dropped: u64,
    pub unwatched: u64,
    /// Paths that could not be named (the kernel's walk gave up, or fanotify could
    /// not open the entry).
    pub unresolved: u64,
    /// Relative names whose process was gone before /proc could resolve them.
    pub relative_gone: u64,
    /// Write sessions whose process exited without closing them, ended by the agent.
    pub exit_closed: u64,
    /// Write-closes the kernel could not name (too deep, too long a path), looked up
    /// by inode in the watched trees.
    pub unnamed: Unnamed,
    pub file_ops: FileOps,
}

#[derive(Debug, Serialize)]
pub struct Unnamed {
    pub found: u64,
    pub not_found: u64,
    pub dropped: u64,
}

#[derive(Debug, Serialize)]
pub struct FileOps {
    pub write_close: u64,
    pub unlink: u64,
    pub rename: u64,
    pub chmod: u64,
    pub sensitive_read: u64,
}

#[derive(Debug, Serialize)]
pub struct AutoResponseStats {
    pub triggered: u64,
    pub blocked: u64,
    pub dry_run: u64,
    pub refused: u64,
    pub errors: u64,
}

#[derive(Debug, Serialize)]
pub struct KernelCounters {
    pub xdp: CounterMap,
    pub file_sensor: CounterMap,
    pub egress: CounterMap,
    pub exec: CounterMap,
}

/// `GET /api/v1/components`.
#[derive(Debug, Serialize)]
pub struct Components {
    pub components: Vec<Component>,
    pub sensors: Vec<SensorBackend>,
}

impl AgentBackend {
    pub(super) async fn status_view(&self) -> Result<Status, ApiError> {
        let counts = self.store.severity_counts().await.map_err(store_err)?;
        let severity_counts = Severity::ALL
            .iter()
            .map(|s| {
                let n = counts
                    .iter()
                    .find(|(k, _)| k == s.as_str())
                    .map_or(0, |(_, n)| *n);
                (s.as_str(), n)
            })
            .collect();
        Ok(Status {
            version: env!("CARGO_PKG_VERSION"),
            uptime: self.started.elapsed().as_secs(),
            started_at: self.started_at.clone(),
            started_at_token: self.started_at_token.clone(),
            watchers: self.watched.clone(),
            severity_counts,
            store: StoreHealth { status: "ok" },
            blocklist_size: self.store.count(FwList::Blocks).await.map_err(store_err)?,
            capabilities: api::Backend::capabilities(self),
            config_hash: self.config_hash.clone(),
            binary_hash: self.binary_hash.get().cloned().unwrap_or_default(),
            latest_scan: None,
            last_scan_time: None,
            challenge_pending: 0,
            rollback: None,
        })
    }

    /// The kernel components, then one per supervised task.
    fn all_components(&self) -> Vec<Component> {
        let mut all = self.components.clone();
        all.extend(self.supervisor.tasks().into_iter().map(task_component));
        all
    }

    pub(super) fn health_view(&self) -> Health {
        let components = self.all_components();
        // "unavailable" (a backend this kernel lacks, with a fallback) is not degraded.
        let degraded = components.iter().any(|c| c.state == ComponentState::Failed);
        let k = &self.kernel;
        let r = &self.responder.stats;
        let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Health {
            status: if degraded { "degraded" } else { "ok" },
            components,
            tasks: self.supervisor.tasks(),
            sensors: self.sensors.clone(),
            pipeline: self.pipeline_view(),
            losses: counter_map(self.losses()),
            detection: crate::detection::stats(&self.detection),
            logs: self.log_stats.view(),
            auto_response: AutoResponseStats {
                triggered: l(&r.triggered),
                blocked: l(&r.blocked),
                dry_run: l(&r.dry_run),
                refused: l(&r.refused),
                errors: l(&r.errors),
            },
            kernel: KernelCounters {
                xdp: counter_map(k.xdp()),
                file_sensor: counter_map(k.file()),
                egress: counter_map(k.egress()),
                exec: counter_map(k.exec(&self.pipeline)),
            },
            alerts: Vec::new(),
        }
    }

    pub(super) fn components_view(&self) -> Components {
        Components {
            components: self.all_components(),
            sensors: self.sensors.clone(),
        }
    }

    fn pipeline_view(&self) -> Pipeline {
        let p = &self.pipeline;
        let op = |o: FileOp| p.file_ops[o as usize].load(Ordering::Relaxed);
        Pipeline {
            received: p.received.load(Ordering::Relaxed),
            decode_errors: p.decode_errors.load(Ordering::Relaxed),
            queue_dropped: p.queue_dropped.load(Ordering::Relaxed),
            unwatched: p.unwatched.load(Ordering::Relaxed),
            unresolved: p.unresolved.load(Ordering::Relaxed),
            relative_gone: p.relative_gone.load(Ordering::Relaxed),
            exit_closed: p.exit_closed.load(Ordering::Relaxed),
            unnamed: Unnamed {
                found: p.unnamed_found.load(Ordering::Relaxed),
                not_found: p.unnamed_not_found.load(Ordering::Relaxed),
                dropped: p.unnamed_dropped.load(Ordering::Relaxed),
            },
            file_ops: FileOps {
                write_close: op(FileOp::WriteClose),
                unlink: op(FileOp::Unlink),
                rename: op(FileOp::Rename),
                chmod: op(FileOp::Chmod),
                sensitive_read: op(FileOp::SensitiveRead),
            },
        }
    }

    /// Every loss counter: kernel ring buffer reserve failures per program, then the
    /// userspace queue.
    pub fn losses(&self) -> Vec<(&'static str, u64)> {
        let k = &self.kernel;
        vec![
            ("file_ringbuf_full", k.sensors.file.get("ringbuf_full")),
            ("file_map_full", k.sensors.file.get("map_full")),
            ("xdp_event_lost", k.xdp.get("event_lost")),
            ("egress_ringbuf_full", k.sensors.egress.get("ringbuf_full")),
            ("exec_ringbuf_full", k.sensors.exec.get("ringbuf_full")),
            (
                "queue_dropped",
                self.pipeline.queue_dropped.load(Ordering::Relaxed),
            ),
        ]
    }

    /// Prometheus text exposition.
    pub(super) async fn metrics_text(&self) -> Result<String, ApiError> {
        use std::fmt::Write;
        let k = &self.kernel;
        let mut s = String::new();
        for (name, help, label, values) in [
            (
                "rampart_xdp_packets_total",
                "Packets seen by the XDP firewall, by verdict reason.",
                "reason",
                k.xdp(),
            ),
            (
                "rampart_file_sensor_total",
                "File sensor outcomes in the kernel.",
                "outcome",
                k.file(),
            ),
            (
                "rampart_egress_connects_total",
                "Outbound connects checked by the egress sensor, by outcome.",
                "outcome",
                k.egress(),
            ),
            (
                "rampart_exec_total",
                "Execs checked by the exec sensor, by outcome.",
                "outcome",
                k.exec(&self.pipeline),
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}");
            let _ = writeln!(s, "# TYPE {name} counter");
            for (key, v) in values {
                let _ = writeln!(s, "{name}{{{label}=\"{key}\"}} {v}");
            }
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
        let tasks = self.supervisor.tasks();
        let _ = writeln!(s, "# HELP rampart_task_restarts_total Restarts of a supervised task after it died.\n# TYPE rampart_task_restarts_total counter");
        for t in &tasks {
            let _ = writeln!(
                s,
                "rampart_task_restarts_total{{task=\"{}\"}} {}",
                t.name, t.restarts
            );
        }
        let _ = writeln!(s, "# HELP rampart_task_up Whether a supervised task runs (1) or waits for its restart (0).\n# TYPE rampart_task_up gauge");
        for t in &tasks {
            let up = u8::from(t.state == TaskState::Running);
            let _ = writeln!(s, "rampart_task_up{{task=\"{}\"}} {up}", t.name);
        }
        Ok(s)
    }
}
