// SPDX-License-Identifier: GPL-2.0-only
//! `/status`, `/health`, `/components` and `/metrics`: what the daemon runs and how
//! it is doing.

use std::{collections::BTreeMap, path::PathBuf, sync::atomic::Ordering};

use api::ApiError;
use serde::Serialize;

use super::{findings::SeverityCounts, store_err, AgentBackend};
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

/// `GET /api/v1/status`, in CSM's shape (csm-contract.md), with Rampart's extras.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Status {
    pub hostname: String,
    pub version: &'static str,
    /// A Go duration ("3h4m5s"), as CSM prints it.
    pub uptime: String,
    pub uptime_sec: u64,
    pub started_at: String,
    pub started_at_token: String,
    pub rules_loaded: usize,
    pub scan_running: bool,
    /// When the newest scan job started ("" if none).
    pub latest_scan: String,
    /// CSM's legacy alias of `latest_scan`.
    pub last_scan_time: String,
    /// Rampart keeps no integrity baseline: always "".
    pub baseline_at: String,
    pub blocklist_size: i64,
    pub incidents_open: i64,
    pub incidents_open_by_severity: SeverityCounts,
    /// XDP is attached to at least one interface.
    pub bpf_enforcement_active: bool,
    /// Findings kept in the store, every status.
    pub history_count: i64,
    /// Active findings per severity (CSM's three, and Rampart's `info`).
    pub severities: SeverityCounts,
    /// Each log source and sensor: is it watching?
    pub watchers: BTreeMap<String, bool>,
    /// The trees the file sensor watches (Rampart).
    pub watched_paths: Vec<PathBuf>,
    pub store_healthy: bool,
    pub store_size_mb: f64,
    pub config_hash: String,
    pub binary_hash: String,
    pub capabilities: Vec<&'static str>,
    /// Blocks the auto-responder only reported (dry run).
    pub dry_run_blocks: u64,
    pub automation: Automation,
    /// "ok", or "degraded" when a component failed or a task is down.
    pub status: &'static str,
    pub security_posture: SecurityPosture,
}

/// CSM's `automation`: what acts without an operator.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Automation {
    pub auto_response: bool,
    pub auto_response_dry_run: bool,
    /// Rampart has no challenge pages: always 0.
    pub challenge_pending: u32,
    pub firewall_rollback_pending: bool,
    pub rollback: Option<RollbackView>,
}

/// CSM's `security_posture`: which protections run here.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SecurityPosture {
    pub xdp_firewall: bool,
    pub file_sensor: &'static str,
    pub exec_sensor: &'static str,
    pub enforcing: bool,
    pub degraded: bool,
}

/// `GET /api/v1/health`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Health {
    /// "ok", or "degraded" when a component failed or a task is down.
    pub status: &'static str,
    /// "systemd" under a notify-type unit, else "foreground" (CSM's field).
    pub daemon_mode: &'static str,
    /// A Go duration, and the same in seconds (CSM's fields).
    pub uptime: String,
    pub uptime_seconds: u64,
    pub rules_loaded: usize,
    /// Does a sensor run on fanotify here?
    pub fanotify: bool,
    /// Each log source: files configured, lines read.
    pub log_watchers: BTreeMap<&'static str, LogWatcher>,
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

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LogWatcher {
    pub files: usize,
    pub lines: u64,
}

/// The sensors' userspace pipeline.
#[derive(Debug, Serialize, schemars::JsonSchema)]
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

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Unnamed {
    pub found: u64,
    pub not_found: u64,
    pub dropped: u64,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct FileOps {
    pub write_close: u64,
    pub unlink: u64,
    pub rename: u64,
    pub chmod: u64,
    pub sensitive_read: u64,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AutoResponseStats {
    pub triggered: u64,
    pub blocked: u64,
    pub dry_run: u64,
    pub refused: u64,
    pub errors: u64,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct KernelCounters {
    pub xdp: CounterMap,
    pub file_sensor: CounterMap,
    pub egress: CounterMap,
    pub exec: CounterMap,
}

/// One item of `GET /api/v1/components` (a bare array, CSM's shape): CSM's fields
/// first, then Rampart's (`kind`, `target`, `state`, `mode`, `reason`).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ComponentItem {
    pub label: String,
    /// "ok" (attached, available, running), "failed", or "inactive" (this kernel
    /// lacks it, nothing asks for it, or it stopped).
    pub status: &'static str,
    pub attached: bool,
    /// Components change state only at start or at a task's restart: the agent's
    /// start, or the task's last restart.
    pub changed_at_iso: String,
    pub changed_ago: String,
    /// Rampart does not stamp events per component: always "".
    pub last_event_iso: String,
    pub last_event_ago: String,
    pub last_event_check: String,
    #[serde(flatten)]
    pub component: Component,
}

impl AgentBackend {
    pub(super) async fn status_view(&self) -> Result<Status, ApiError> {
        let counts = self.store.severity_counts().await.map_err(store_err)?;
        let summary = self.store.status_summary().await.map_err(store_err)?;
        let rollback = self
            .policy
            .pending()
            .await
            .map_err(|e| ApiError::internal("rollback state", &e))?
            .map(|r| self.policy.view_of(&r));
        let jobs = self.detection.jobs.list();
        let latest_scan = jobs
            .first()
            .map(|j| j.started_at.clone())
            .unwrap_or_default();
        let uptime = self.started.elapsed().as_secs();
        let components = self.all_components();
        let degraded = components.iter().any(|c| c.state == ComponentState::Failed);
        let attached = |kind: &str| {
            components
                .iter()
                .any(|c| c.kind == kind && c.state == ComponentState::Attached)
        };
        let backend = |sensor: &str| {
            self.sensors
                .iter()
                .find(|s| s.sensor == sensor)
                .map_or("none", |s| s.backend)
        };
        let mut watchers: BTreeMap<String, bool> = crate::logs::Source::ALL
            .iter()
            .map(|s| (s.name().to_string(), !self.logs.paths(*s).is_empty()))
            .collect();
        for s in &self.sensors {
            watchers.insert(format!("{}_sensor", s.sensor), s.backend != "none");
        }
        watchers.insert(
            "fanotify".into(),
            self.sensors.iter().any(|s| s.backend == "fanotify"),
        );
        let auto = &self.responder;
        Ok(Status {
            hostname: crate::kernel::hostname().unwrap_or_default(),
            version: env!("CARGO_PKG_VERSION"),
            uptime: api::model::go_duration(uptime),
            uptime_sec: uptime,
            started_at: self.started_at.clone(),
            started_at_token: self.started_at_token.clone(),
            rules_loaded: self.rules_loaded(),
            scan_running: jobs.iter().any(|j| j.finished_at.is_none()),
            last_scan_time: latest_scan.clone(),
            latest_scan,
            baseline_at: String::new(),
            blocklist_size: self.store.count(FwList::Blocks).await.map_err(store_err)?,
            incidents_open: summary.incidents_open.iter().map(|(_, n)| n).sum(),
            incidents_open_by_severity: SeverityCounts::of(summary.incidents_open),
            bpf_enforcement_active: attached("xdp"),
            history_count: summary.history_count,
            severities: SeverityCounts::of(counts),
            watchers,
            watched_paths: self.watched.clone(),
            store_healthy: true,
            store_size_mb: summary.bytes as f64 / (1024.0 * 1024.0),
            capabilities: api::Backend::capabilities(self),
            config_hash: self.config_hash(),
            binary_hash: self.binary_hash.get().cloned().unwrap_or_default(),
            dry_run_blocks: auto.stats.dry_run.load(Ordering::Relaxed),
            automation: Automation {
                auto_response: auto.enabled(),
                auto_response_dry_run: auto.dry_run(),
                challenge_pending: 0,
                firewall_rollback_pending: rollback.is_some(),
                rollback,
            },
            status: if degraded { "degraded" } else { "ok" },
            security_posture: SecurityPosture {
                xdp_firewall: attached("xdp"),
                file_sensor: backend("file"),
                exec_sensor: backend("exec"),
                enforcing: self.firewall.enforcing(),
                degraded,
            },
        })
    }

    /// YAML and YARA rules in force.
    fn rules_loaded(&self) -> usize {
        use crate::detection::signatures::RuleKind;
        let set = self.detection.engine.current();
        set.count(RuleKind::Yaml) + set.count(RuleKind::Yara)
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
        let logs = self.log_stats.view();
        let uptime = self.started.elapsed().as_secs();
        Health {
            status: if degraded { "degraded" } else { "ok" },
            daemon_mode: if self.under_systemd {
                "systemd"
            } else {
                "foreground"
            },
            uptime: api::model::go_duration(uptime),
            uptime_seconds: uptime,
            rules_loaded: self.rules_loaded(),
            fanotify: self.sensors.iter().any(|s| s.backend == "fanotify"),
            log_watchers: crate::logs::Source::ALL
                .iter()
                .map(|s| {
                    let w = LogWatcher {
                        files: self.logs.paths(*s).len(),
                        lines: logs.lines_by_source.get(s.name()).copied().unwrap_or(0),
                    };
                    (s.name(), w)
                })
                .collect(),
            components,
            tasks: self.supervisor.tasks(),
            sensors: self.sensors.clone(),
            pipeline: self.pipeline_view(),
            losses: counter_map(self.losses()),
            detection: crate::detection::stats(&self.detection),
            logs,
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

    pub(super) fn components_view(&self) -> Vec<ComponentItem> {
        let since = self.started.elapsed().as_secs();
        self.all_components()
            .into_iter()
            .map(|c| {
                let status = match c.state {
                    ComponentState::Attached
                    | ComponentState::Available
                    | ComponentState::Running => "ok",
                    ComponentState::Failed => "failed",
                    ComponentState::Unavailable
                    | ComponentState::NotConfigured
                    | ComponentState::Stopped => "inactive",
                };
                ComponentItem {
                    label: format!("{} ({})", c.name.replace('_', " "), c.kind),
                    status,
                    attached: matches!(c.state, ComponentState::Attached | ComponentState::Running),
                    changed_at_iso: self.started_at.clone(),
                    changed_ago: format!("{} ago", api::model::go_duration(since)),
                    last_event_iso: String::new(),
                    last_event_ago: String::new(),
                    last_event_check: String::new(),
                    component: c,
                }
            })
            .collect()
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
        self.csm_metrics(&mut s, blocks).await?;
        Ok(s)
    }

    /// CSM's metric names (`csm_*`) where the meaning is the same, beside Rampart's.
    async fn csm_metrics(&self, s: &mut String, blocks: i64) -> Result<(), ApiError> {
        use std::fmt::Write;
        let active = SeverityCounts::of(self.store.severity_counts().await.map_err(store_err)?);
        let summary = self.store.status_summary().await.map_err(store_err)?;
        let dropped: u64 = self
            .kernel
            .xdp()
            .into_iter()
            .filter(|(k, _)| {
                matches!(
                    *k,
                    "blocked" | "port_denied" | "rate_limited" | "syn_limited"
                )
            })
            .map(|(_, v)| v)
            .sum();
        let mut gauge = |name: &str, help: &str, v: String| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            "csm_uptime_seconds",
            "Seconds since the agent started.",
            self.started.elapsed().as_secs().to_string(),
        );
        gauge(
            "csm_blocked_ips",
            "Addresses and subnets on the block list.",
            blocks.to_string(),
        );
        gauge(
            "csm_rules_loaded",
            "Signature rules in force.",
            self.rules_loaded().to_string(),
        );
        gauge(
            "csm_findings_history",
            "Findings kept in the store.",
            summary.history_count.to_string(),
        );
        gauge(
            "csm_store_size_bytes",
            "Size of the state database.",
            summary.bytes.to_string(),
        );
        let _ = writeln!(
            s,
            "# HELP csm_findings_total Active findings, by severity.\n# TYPE csm_findings_total gauge"
        );
        for (sev, n) in &active.by_severity {
            let _ = writeln!(s, "csm_findings_total{{severity=\"{sev}\"}} {n}");
        }
        let _ = writeln!(
            s,
            "# HELP csm_firewall_dropped_packets_total Packets the XDP firewall dropped.\n# TYPE csm_firewall_dropped_packets_total counter\ncsm_firewall_dropped_packets_total {dropped}"
        );
        Ok(())
    }
}
