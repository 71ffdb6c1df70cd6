// SPDX-License-Identifier: GPL-2.0-only
//! The agent's implementation of the API backend.

use std::{
    path::PathBuf,
    sync::{atomic::Ordering, Arc},
    time::Instant,
};

use api::{
    model::{BlockEntry, BlockRequest, DetectOp, Finding, FirewallOp, FwList as ApiList},
    ApiError,
};
use serde::Serialize;
use tokio::sync::broadcast;
use warp::http::StatusCode;

/// Descriptors kept back from API connections for the sensors, fanotify, the
/// store, scan workers and log files.
pub const FD_RESERVE: u64 = 1024;

/// The listener's limits from `webui.limits`, with the connection cap lowered so
/// that API clients can never take the last [`FD_RESERVE`] descriptors.
pub fn api_limits(cfg: &crate::config::ApiLimits, nofile: u64) -> api::Limits {
    let room = nofile.saturating_sub(FD_RESERVE).max(16) as usize;
    let max_connections = cfg.max_connections.min(room);
    if max_connections < cfg.max_connections {
        tracing::warn!(
            configured = cfg.max_connections,
            nofile,
            used = max_connections,
            "webui.limits.max_connections lowered to fit the open-file limit."
        );
    }
    api::Limits {
        max_connections,
        max_connections_per_ip: cfg.max_connections_per_client.min(max_connections),
        handshake_timeout: std::time::Duration::from_secs(cfg.handshake_timeout_secs),
        header_timeout: std::time::Duration::from_secs(cfg.header_timeout_secs),
        max_sse_clients: cfg.max_sse_clients,
        login_per_minute: cfg.login_per_minute,
        requests_per_minute: cfg.requests_per_minute,
    }
}

pub mod bulk;
pub mod cerberus;
pub mod findings;
pub mod firewall;
pub mod host;
pub mod incidents;
pub mod livelog;
pub mod openapi;
pub mod prefs;
pub mod reports;
pub mod rules;
pub mod settings;
pub mod state;
pub mod status;
pub mod threat;
pub mod tls;
pub mod tokens;
pub mod undo;

use crate::{
    config::Logs,
    detection::{quarantine::QuarantineError, Detection},
    firewall::{Firewall, FirewallError, PolicyError, PolicyManager},
    kernel::{Component, Counters},
    logs::{respond::Responder, LogStats},
    sensors::{PipelineStats, SensorBackend, SensorCounters},
    store::{FwList, NewFinding, Store, StoreError},
};
use undo::Undo;

pub const CAPABILITIES: &[&str] = &[
    // CSM's flags, for the features CSM clients look them up for.
    "capabilities.v1",
    "firewall.rollback.v1",
    "token.scope.readonly.v1",
    "incidents.v1",
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
    "webui.prefs.v1",
    // Charon's suite: enforcement switch with break-glass, config, rulesets, live logs.
    "security.cerberus.v1",
    "logs.live.websocket.v1",
    // The route answers (all zero: Rampart routes no one to challenge pages).
    "challenge.stats.v1",
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
    /// The config file the agent runs from (None: the embedded default).
    pub config_path: Option<PathBuf>,
    /// Woken by `POST /settings/restart`: the daemon stops and starts again in place.
    pub restart: Arc<tokio::sync::Notify>,
    /// A settings write waits for a restart.
    pub settings_written: std::sync::atomic::AtomicBool,
    /// One settings write at a time (read, merge, check, write).
    pub settings_lock: tokio::sync::Mutex<()>,
    /// Filled in by a background task at start (empty until then).
    pub binary_hash: Arc<std::sync::OnceLock<String>>,
    pub components: Vec<Component>,
    /// Which backend serves each sensor, and why.
    pub sensors: Vec<SensorBackend>,
    pub pipeline: Arc<PipelineStats>,
    pub kernel: KernelStats,
    pub watched: Vec<PathBuf>,
    /// Where the store and TLS material live (`/performance` reports its disk).
    pub state_dir: PathBuf,
    pub policy: Arc<PolicyManager>,
    /// The enforcement switch (`/security/enable`, `/disable`, break-glass).
    pub cerberus: Arc<crate::firewall::cerberus::Cerberus>,
    /// The log sources configured (reports answer 503 when the host has none).
    pub logs: Logs,
    /// The mail server's spool and forwarders (`/email/*`).
    pub mail: crate::config::Mail,
    /// The ModSecurity rules file (`/modsec/rules/*`).
    pub modsec: crate::config::Modsec,
    pub undo: Undo,
    /// The long-lived tasks and their restarts.
    pub supervisor: crate::supervisor::Supervisor,
    /// The alert channels and their outboxes.
    pub alerts: Arc<crate::findings::alerts::Alerts>,
    /// Started by a notify-type systemd unit (`/health` `daemon_mode`).
    pub under_systemd: bool,
    /// `firewall.max_entries_v4` (`/firewall/status` `deny_ip_limit`).
    pub deny_ip_limit: u32,
    /// The MaxMind databases (`geoip`), for `/geoip` and attackers' countries.
    pub geoip: Arc<crate::firewall::geoip::Live>,
}

/// A response: its status and its typed body, serialized. Every route answers one of
/// the response types declared beside its handler (one file per area of the API).
pub type Reply = (StatusCode, serde_json::Value);

fn value<T: Serialize>(body: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(body).map_err(|e| ApiError::internal("serializing the response", &e))
}

/// `body` with `status`.
pub(crate) fn reply<T: Serialize>(status: StatusCode, body: &T) -> Result<Reply, ApiError> {
    Ok((status, value(body)?))
}

/// `body` with 200.
pub(crate) fn ok<T: Serialize>(body: &T) -> Result<Reply, ApiError> {
    reply(StatusCode::OK, body)
}

fn q_err(e: QuarantineError) -> ApiError {
    match e {
        QuarantineError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
        QuarantineError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
        QuarantineError::Invalid(m) => ApiError::unprocessable(m),
        e @ QuarantineError::Io { .. } => ApiError::internal("quarantine", &e),
        QuarantineError::Store(e) => store_err(e),
    }
}

/// A value as the JSON a setting keeps.
pub(crate) fn json_text<T: Serialize>(v: &T) -> Result<String, ApiError> {
    serde_json::to_string(v).map_err(|e| ApiError::internal("serializing a setting", &e))
}

impl AgentBackend {
    /// A setting kept as JSON, or `T::default()` while unset; a corrupt one is an
    /// internal error (logged with its key), never read as empty.
    pub(crate) async fn json_setting<T: serde::de::DeserializeOwned + Default>(
        &self,
        key: &str,
    ) -> Result<T, ApiError> {
        match self.store.setting(key).await.map_err(store_err)? {
            None => Ok(T::default()),
            Some(v) => serde_json::from_str(&v).map_err(|e| ApiError::internal(key, &e)),
        }
    }
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

#[async_trait::async_trait]
impl api::Backend for AgentBackend {
    async fn status(&self) -> Result<serde_json::Value, ApiError> {
        value(&self.status_view().await?)
    }

    async fn health(&self) -> Result<serde_json::Value, ApiError> {
        let mut h = self.health_view();
        h.alerts = self.alerts.views().await;
        value(&h)
    }

    async fn components(&self) -> Result<serde_json::Value, ApiError> {
        value(&self.components_view())
    }

    fn capabilities(&self) -> Vec<&'static str> {
        let mut caps = CAPABILITIES.to_vec();
        caps.extend(
            self.sensors
                .iter()
                .filter_map(|s| sensor_capability(s.sensor, s.backend)),
        );
        // Said as plainly as what works: a feature-detecting client must know.
        if self
            .sensors
            .iter()
            .any(|s| s.sensor == "file" && s.unseen.iter().any(|u| u.contains("io_uring")))
        {
            caps.push("sensors.file.unseen.io_uring");
        }
        for (word, cap) in [
            ("interpreter", "sensors.exec.unseen.interpreted"),
            ("fileless", "sensors.exec.unseen.fileless"),
        ] {
            if self
                .sensors
                .iter()
                .any(|s| s.sensor == "exec" && s.unseen.iter().any(|u| u.contains(word)))
            {
                caps.push(cap);
            }
        }
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
        self.metrics_text().await
    }

    fn subscribe(&self) -> broadcast::Receiver<Finding> {
        self.detection.findings.subscribe()
    }

    fn openapi(&self) -> serde_json::Value {
        openapi::document().clone()
    }

    fn live_logs(&self) -> broadcast::Receiver<api::model::LogEntry> {
        livelog::subscribe()
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

    async fn detect(&self, op: DetectOp, actor: &str) -> Result<Reply, ApiError> {
        match op {
            DetectOp::Prefs { operator, op } => self.prefs(&operator, op).await,
            DetectOp::PerfFix { check, finding } => self.perf_fix(check, finding, actor).await,
            DetectOp::ModsecRulesApply(r) => self.modsec_rules_apply(r, actor).await,
            DetectOp::ModsecRuleAction(r) => self.modsec_rule_action(r, actor).await,
            DetectOp::ModsecEscalation(r) => self.modsec_escalation(r, actor).await,
            DetectOp::EmailQueueComposition => self.email_queue_composition().await,
            DetectOp::EmailFlushBackscatter => self.email_flush_backscatter(actor).await,
            DetectOp::EmailForwarders => self.email_forwarders().await,
            DetectOp::EmailAvStatus => self.email_av_status().await,
            DetectOp::EmailQuarantine => self.email_quarantine().await,
            DetectOp::EmailQuarantineGet { id } => self.email_quarantine_get(id).await,
            DetectOp::EmailQuarantineRelease { id } => {
                self.email_quarantine_act(id, true, actor).await
            }
            DetectOp::EmailQuarantineDelete { id } => {
                self.email_quarantine_act(id, false, actor).await
            }
            DetectOp::DbObjectBackups => self.db_object_backups().await,
            DetectOp::DbObjectBackupPreview { key } => self.db_object_backup_preview(key).await,
            DetectOp::DbObjectBackupRestore { key } => {
                self.db_object_backup_restore(key, actor).await
            }
            DetectOp::EmailHeld => self.email_held().await,
            DetectOp::EmailHeldRelease { id } => self.email_held_act(id, true, actor).await,
            DetectOp::EmailHeldDelete { id } => self.email_held_act(id, false, actor).await,
            DetectOp::Rulesets => self.rulesets().await,
            DetectOp::UpsertRuleset(r) => self.upsert_ruleset(r, actor).await,
            DetectOp::DeleteRuleset { id } => self.delete_ruleset(id, actor).await,
            DetectOp::FindingsEnriched => self.findings_enriched().await,
            DetectOp::CancelScanJob { id } => self.cancel_scan_job(id, actor).await,
            DetectOp::ScanJobFindings { id } => self.scan_job_findings(id).await,
            DetectOp::VerifyFinding(r) => self.verify_finding(r, actor).await,
            DetectOp::ChallengeStats => self.challenge_stats(),
            DetectOp::Hardening => self.hardening().await,
            DetectOp::HardeningRun => self.hardening_run(actor).await,
            DetectOp::Accounts => self.accounts_list().await,
            DetectOp::Export => self.export_state().await,
            DetectOp::Settings => self.settings_index(),
            DetectOp::Performance => self.performance().await,
            DetectOp::VerifiedBots { verdict, limit } => self.verified_bots(verdict, limit).await,
            DetectOp::ApplyVerifiedBots(r) => self.apply_verified_bots(r, actor).await,
            DetectOp::GeoIp { ip, detail } => self.geoip_lookup(&ip, detail),
            DetectOp::GeoIpBatch(ips) => self.geoip_batch(ips),
            DetectOp::SettingsSection { section } => self.settings_section(&section),
            DetectOp::UpdateSettingsSection { section, body } => {
                self.settings_update(&section, body, actor).await
            }
            DetectOp::SettingsRestart => self.settings_restart(actor).await,
            DetectOp::Import(b) => self.import_state(b, actor).await,
            DetectOp::Account { name } => self.account_detail(name).await,
            DetectOp::FindingDetail(r) => self.finding_detail(r).await,
            DetectOp::History(h) => self.history(h).await,
            DetectOp::HistoryRows(h) => self.history_rows(h, actor).await,
            DetectOp::Stats => self.stats().await,
            DetectOp::StatsTrend { days } => self.stats_trend(days).await,
            DetectOp::StatsTimeline { hours } => self.stats_timeline(hours).await,
            DetectOp::Dismiss(r) => self.dismiss(r, actor).await,
            DetectOp::Fix(r) => self.fix(r, actor).await,
            DetectOp::FixBulk(r) => self.fix_bulk(r, actor).await,
            DetectOp::TestAlert => self.test_alert(actor).await,
            DetectOp::NotificationSettings => self.notification_settings(),
            DetectOp::UpdateNotificationSettings(u) => {
                self.update_notification_settings(u, actor).await
            }
            DetectOp::Audit { limit } => self.audit_log(limit).await,
            DetectOp::Suppressions => self.suppressions().await,
            DetectOp::Suppress(r) => self.suppress(r, actor).await,
            DetectOp::Scan(r) => self.scan(r, actor).await,
            DetectOp::ScanJobs { id } => self.scan_jobs(id).await,
            DetectOp::RulesStatus => self.rules_status().await,
            DetectOp::RulesList => self.rules_list().await,
            DetectOp::RulesReload => self.rules_reload(actor).await,
            DetectOp::Quarantine => self.quarantine_list().await,
            DetectOp::QuarantinePreview { id } => self.quarantine_preview(&id).await,
            DetectOp::QuarantineRestore { id } => self.quarantine_restore(id, actor).await,
            DetectOp::QuarantineDelete { ids } => self.quarantine_delete(ids, actor).await,
            DetectOp::Incidents {
                status,
                kind,
                limit,
            } => self.incidents(status, kind, limit).await,
            DetectOp::Incident { id } => self.incident(id).await,
            DetectOp::IncidentStatus {
                id,
                status,
                details,
            } => self.incident_status(id, status, details, actor).await,
            DetectOp::IncidentGroups {
                status,
                kind,
                limit,
            } => self.incident_groups(status, kind, limit).await,
            DetectOp::IncidentTimeline { ip, account, hours } => {
                self.incident_timeline(ip, account, hours).await
            }
            DetectOp::ThreatStats => self.threat_stats().await,
            DetectOp::ThreatTopAttackers { limit } => self.threat_top_attackers(limit).await,
            DetectOp::ThreatIp { ip } => self.threat_ip(ip).await,
            DetectOp::ThreatEvents { ip, limit } => self.threat_events(ip, limit).await,
            DetectOp::ThreatDbStats => self.threat_db_stats().await,
            DetectOp::ThreatClearIp { ip } => self.threat_clear_ip(ip, actor).await,
            DetectOp::ThreatBulk(r) => self.threat_bulk(r, actor).await,
            DetectOp::UndoPending => self.undo_pending(actor).await,
            DetectOp::UndoRun { id } => self.undo_run(id, actor).await,
            DetectOp::ModsecStats => self.modsec_stats().await,
            DetectOp::ModsecBlocks(w) => self.modsec_blocks(w).await,
            DetectOp::ModsecEvents { window, ip } => self.modsec_events(window, ip).await,
            DetectOp::ModsecRules => self.modsec_rules().await,
            DetectOp::EmailStats => self.email_stats().await,
            DetectOp::EmailDeferrals(w) => self.email_deferrals(w).await,
            DetectOp::EmailRelayAbuse(w) => self.email_relay_abuse(w).await,
            DetectOp::EmailGroups { window, kind } => self.email_groups(window, kind).await,
        }
    }
    async fn firewall(&self, op: FirewallOp, actor: &str) -> Result<Reply, ApiError> {
        self.firewall_op(op, actor).await
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
