// SPDX-License-Identifier: GPL-2.0-only
//! The sensors: file activity, sensitive reads, execs and SMTP egress. [`start`]
//! chooses each sensor's backend (BPF-LSM, then tracepoints, then fanotify), attaches
//! it, and runs the readers that turn what the kernel saw into [`FileActivity`] for
//! detection and findings for execs and egress.
//!
//! The one ring buffer also carries the XDP firewall's events; the reader hands those
//! to the firewall's queue.

pub mod egress;
pub mod event;
pub mod exec;
pub mod fanotify;
pub mod fanotify_exec;
pub mod file;
pub mod lsm;
pub mod procfs;
pub mod reader;
pub mod roots;
pub mod unnamed;

use std::{
    os::fd::AsFd,
    sync::{atomic::Ordering, Arc},
};

use agent_common::{egress::EgressStat, exec::ExecStat, maps, xdp::XdpEvent, FileStat};
use anyhow::{Context, Result};
use api::model::Severity;
use aya::{maps::RingBuf, Ebpf};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

pub use event::{
    connect_dest, xdp_source, Ancestor, DecodeError, Exec, FileActivity, FileMeta, FileOp,
    PipelineStats, SensorEvent, Sinks,
};
pub use reader::{decode, run_reader, Decoded, Sessions, Watched};

use crate::{
    config::{BackendChoice, Config},
    detection::Detection,
    kernel::{self, Component, ComponentState, Counters},
    store::NewFinding,
    supervisor::{Shared, Supervisor},
};
use exec::{ExecFindings, ExecPolicy};
use fanotify::FanotifySensor;
use fanotify_exec::FanotifyExec;
use file::Part;

/// Which backend serves a sensor, and why (for /components, /health, /capabilities).
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct SensorBackend {
    pub sensor: &'static str,
    pub backend: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What this backend cannot see here, and the mitigation to apply.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unseen: Vec<String>,
}

impl SensorBackend {
    pub fn new(sensor: &'static str, backend: &'static str, reason: Option<String>) -> Self {
        Self {
            sensor,
            backend,
            reason,
            unseen: Vec::new(),
        }
    }
}

/// `kernel.io_uring_disabled`: 0 (or no such sysctl, before 6.6) lets every user
/// create rings, 1 only members of `kernel.io_uring_group` and CAP_SYS_ADMIN, 2 no one.
pub const IO_URING_SYSCTL: &str = "/proc/sys/kernel/io_uring_disabled";

/// Can an unprivileged user open files through io_uring (`IORING_OP_OPENAT`), which
/// no syscall tracepoint sees? None: no.
pub fn io_uring_unseen(sysctl: &std::path::Path) -> Option<String> {
    match std::fs::read_to_string(sysctl).map(|v| v.trim().to_string()) {
        Ok(v) if v == "1" || v == "2" => None,
        Ok(v) => Some(format!(
            "kernel.io_uring_disabled = {v}: set it to 2 (or 1 with kernel.io_uring_group) to close this; the sweep scans such files within detection.sweep_interval_minutes"
        )),
        Err(_) => Some(
            "this kernel has no kernel.io_uring_disabled; the sweep scans such files within detection.sweep_interval_minutes".into(),
        ),
    }
}

/// What the sensors need from the rest of the agent.
pub struct Deps {
    pub detection: Arc<Detection>,
    /// File activity for detection (a full queue is a counted drop).
    pub files: mpsc::Sender<FileActivity>,
    /// The firewall's events (drops, port scans) read off the shared ring.
    pub xdp: mpsc::Sender<XdpEvent>,
    pub supervisor: Supervisor,
    pub shutdown: watch::Receiver<bool>,
}

/// The running sensors.
pub struct Sensors {
    pub components: Vec<Component>,
    /// Which backend serves each sensor, and why.
    pub backends: Vec<SensorBackend>,
    pub pipeline: Arc<PipelineStats>,
    pub counters: Arc<SensorCounters>,
    tasks: Vec<JoinHandle<()>>,
    /// The watched roots, held open while the kernel walks find them by address.
    _root_pins: Option<roots::RootPins>,
}

/// The sensors' per-CPU kernel counters.
pub struct SensorCounters {
    pub file: Counters,
    pub egress: Counters,
    pub exec: Counters,
}

/// Configure, attach and start every sensor. A sensor that cannot start is reported
/// (backend "none", a failed component), not fatal, except the file sensor when its
/// backend was forced.
pub async fn start(cfg: &Config, ebpf: &mut Ebpf, deps: Deps) -> Result<Sensors> {
    let mut components = Vec::new();
    let mut backends = Vec::new();
    let absent = file::set_watch_prefixes(ebpf, &cfg.watch.paths)?;
    if !absent.is_empty() {
        tracing::warn!(paths = ?absent, "Watched trees that do not exist: matched by name only until the next start.");
    }
    let mut offsets = kernel::set_kernel_offsets(ebpf);
    // The walks find the roots by their dentries' addresses, and the exec program
    // the interpreters by identity, both learned here from the files themselves; the
    // roots stay open while the sensors run. Without them the walk cannot be
    // trusted, and the sensors fall back to the typed names, as without BTF.
    let mut root_pins = None;
    let mut root_paths = roots::RootPaths::new();
    if offsets.is_ok() {
        let mut roots: Vec<(std::path::PathBuf, u32)> = cfg
            .watch
            .paths
            .iter()
            .map(|p| (p.clone(), agent_common::WATCH_INCLUDE))
            .collect();
        let mut interpreters = Vec::new();
        if cfg.exec.enabled {
            roots.extend(
                cfg.exec
                    .world_writable
                    .iter()
                    .map(|p| (p.clone(), agent_common::ROOT_EXEC)),
            );
            interpreters = exec::interpreter_paths();
        }
        match roots::learn(ebpf, &roots, &interpreters) {
            Ok(learned) => {
                if !learned.interpreters_missed.is_empty() {
                    tracing::warn!(paths = ?learned.interpreters_missed, "Interpreters the kernel could not learn: scripts they run are not followed.");
                }
                root_pins = Some(learned.pins);
                root_paths = learned.paths;
            }
            Err(e) => {
                kernel::clear_kernel_offsets(ebpf);
                offsets = Err(format!("{e}; the kernel walk is off"));
            }
        }
    }
    let offsets_ok = offsets.is_ok();
    if let Err(why) = &offsets {
        tracing::warn!(reason = %why, "No kernel struct offsets: paths are the names the processes typed, and file events carry no inode metadata.");
    }
    let s = &cfg.sensors.sensitive;
    let (web_uids, unknown) = procfs::resolve_uids(&s.web_users);
    if !unknown.is_empty() {
        tracing::info!(users = ?unknown, "sensors.sensitive.web_users: unknown users skipped.");
    }
    file::set_sensitive(ebpf, &web_uids, &s.paths, &s.names)?;
    let missing = file::set_sensitive_inodes(
        ebpf,
        &s.paths,
        kernel::enforcement_mode(s.enforce, s.dry_run),
    )?;
    if !missing.is_empty() {
        tracing::debug!(paths = ?missing, "Sensitive paths that are not files here (trees, or absent): matched by path only.");
    }
    // Backend probe: BPF-LSM first (observe + deny), else tracepoints, else fanotify;
    // each sensor's backend and the reason go to /api/v1/components, /health and
    // /capabilities.
    let lsm = lsm::probe_lsm(ebpf);
    if let Err(why) = &lsm {
        tracing::warn!(reason = %why, "BPF-LSM unavailable; sensors fall back.");
    }
    let lsm_why = lsm
        .as_ref()
        .err()
        .map(|w| format!("BPF-LSM unavailable: {w}"));
    // A file sensor that cannot start at all is reported (backend "none", a failed
    // component, a finding), never fatal: the firewall and the rest keep running.
    let (comps, file_backend, fanotify) = match choose_file_backend(cfg, ebpf, lsm_why.as_deref()) {
        Ok(chosen) => chosen,
        Err(e) => {
            let why = format!("{e:#}");
            tracing::error!(error = %why, "File sensor not started; the agent runs without it.");
            sensor_failed(&deps.detection, "file", &why).await;
            (
                vec![Component::failed(
                    "file",
                    "sensor",
                    join_paths(&cfg.watch.paths),
                    why.clone(),
                )],
                SensorBackend::new("file", "none", Some(why)),
                None,
            )
        }
    };
    components.extend(comps);
    // Deny hooks where the kernel allows them. The LSM has no hook for the end of a
    // write session, so file observation stays on the backend above; sensitive
    // reads of files known by identity and exec denials move to the LSM.
    let lsm_attached: Vec<Component> = if lsm.is_ok() {
        // Exec denial only where the exec sensor may use BPF-LSM (`auto`, `lsm`).
        let exec_lsm = cfg.exec.enabled
            && matches!(
                cfg.sensors.exec_backend,
                BackendChoice::Auto | BackendChoice::Lsm
            );
        let mut wanted = vec![maps::progs::LSM_FILE_OPEN];
        if exec_lsm {
            wanted.push(maps::progs::LSM_BPRM_CHECK);
        }
        lsm::attach_lsm_sensors(ebpf, &wanted)
    } else {
        Vec::new()
    };
    let attached = |prog: &str| {
        lsm_attached
            .iter()
            .any(|c| c.name == prog && c.state == ComponentState::Attached)
    };
    let (lsm_file_open, lsm_bprm) = (
        attached(maps::progs::LSM_FILE_OPEN),
        attached(maps::progs::LSM_BPRM_CHECK),
    );
    if lsm_file_open {
        // From now on the openat tracepoints leave the files the LSM knows to it;
        // with the LSM file backend there are no openat tracepoints, and the hook
        // matches base names and trees too.
        use agent_common::sensitive::{LSM_ATTACHED, LSM_NAMES};
        kernel::set_at(ebpf, maps::SENSITIVE_MODE, LSM_ATTACHED, 1u32)?;
        if file_backend.backend == "lsm" {
            kernel::set_at(ebpf, maps::SENSITIVE_MODE, LSM_NAMES, 1u32)?;
        }
    }
    components.extend(lsm_attached);
    let sensitive_backend = if lsm_file_open {
        SensorBackend::new(
            "sensitive_read",
            "lsm",
            Some(format!(
                "the files in sensors.sensitive.paths by identity, however they are named, in the LSM file_open hook (denied when enforcing); base names and trees {}",
                match file_backend.backend {
                    "lsm" => "there too, on the path the kernel resolved",
                    "tracepoint" => "on the openat tracepoints",
                    _ => "not reported (the fanotify file backend)",
                }
            )),
        )
    } else if file_backend.backend == "lsm" {
        SensorBackend::new(
            "sensitive_read",
            "none",
            Some("the LSM file_open sensitive-read hook did not attach (see components)".into()),
        )
    } else if file_backend.backend == "fanotify" {
        SensorBackend::new(
            "sensitive_read",
            "none",
            Some("the fanotify backend does not report sensitive reads".into()),
        )
    } else {
        SensorBackend::new(
            "sensitive_read",
            file_backend.backend,
            file_backend.reason.clone(),
        )
    };
    let mut file_backend = file_backend;
    let file_backend_is_tracepoint = file_backend.backend == "tracepoint";
    if matches!(file_backend.backend, "tracepoint" | "lsm") {
        if let Some(why) = io_uring_unseen(std::path::Path::new(IO_URING_SYSCTL)) {
            let attached = |name: &str| {
                components
                    .iter()
                    .any(|c| c.name == name && c.state == crate::kernel::ComponentState::Attached)
            };
            let why = file::uring_unseen(
                !file_backend_is_tracepoint,
                attached(agent_common::maps::progs::URING_COMPLETE),
                attached(agent_common::maps::progs::URING_SUBMIT),
                &why,
            );
            tracing::warn!(unseen = %why, "The file sensor's syscall tracepoints cannot see io_uring.");
            file_backend.unseen.push(why);
        }
        let compat = file::compat_unseen(&components);
        for why in compat
            .into_iter()
            .chain(file::x32_unseen(file::x32_syscalls_run()))
        {
            tracing::warn!(unseen = %why, "The file sensor cannot see some 32-bit syscalls.");
            file_backend.unseen.push(why);
        }
    }
    backends.push(file_backend);
    backends.push(sensitive_backend);
    backends.push(SensorBackend::new(
        "file_metadata",
        if offsets.is_ok() { "btf" } else { "none" },
        offsets.err(),
    ));
    components.push(Component {
        name: "lsm".into(),
        kind: "lsm",
        target: "bprm_check_security".into(),
        state: if lsm.is_ok() {
            ComponentState::Available
        } else {
            ComponentState::Unavailable
        },
        mode: None,
        reason: lsm.err(),
    });
    // The exec policy in userspace: the fanotify backend applies it, and relative
    // names from the kernel program are decided by it.
    let exec_policy = ExecPolicy::new(&cfg.exec, &web_uids).map_err(|e| e.to_string());
    let fan_exec = if cfg.exec.enabled {
        let (comps, backend, fan) = choose_exec_backend(
            cfg,
            ebpf,
            lsm_why.as_deref(),
            lsm_bprm,
            &exec_policy,
            offsets_ok,
        );
        components.extend(comps);
        backends.push(backend);
        fan
    } else {
        None
    };
    if cfg.egress.enabled {
        // A sensor that cannot attach is reported, not fatal: the firewall still runs.
        match egress::attach_egress(ebpf, &cfg.egress) {
            Ok(c) => {
                components.extend(c);
                backends.push(SensorBackend::new("egress", "cgroup", None));
            }
            Err(e) => {
                backends.push(SensorBackend::new("egress", "none", Some(e.to_string())));
                tracing::error!(error = %e, "Egress sensor not attached.");
                components.push(Component::failed(
                    maps::progs::CONNECT4,
                    "cgroup_sock_addr",
                    cfg.egress.cgroup.display().to_string(),
                    e.to_string(),
                ));
            }
        }
    }
    let counters = Arc::new(SensorCounters {
        file: Counters::take(ebpf, maps::FILE_STATS_TOTAL, &FileStat::NAMES)?,
        egress: Counters::take(ebpf, maps::EGRESS_STATS_TOTAL, &EgressStat::NAMES)?,
        exec: Counters::take(ebpf, maps::EXEC_STATS_TOTAL, &ExecStat::NAMES)?,
    });
    let ring = RingBuf::try_from(kernel::take_map(ebpf, maps::EVENTS)?)
        .context("the events ring buffer")?;
    // Sessions a writer's exit closes are ended from the kernel's session table.
    let sessions = if file_backend_is_tracepoint {
        Some(
            reader::Sessions::new(kernel::take_map(ebpf, maps::OPEN_WRITES)?)
                .context("the write sessions map")?,
        )
    } else {
        None
    };
    if let Some(why) = &lsm_why {
        bpf_unavailable(&deps.detection, why, &backends).await;
    }

    // Readers: the ring carries every kernel event; with the fanotify backends file
    // activity and execs come from fanotify instead, into the same queues.
    let Deps {
        detection,
        files,
        xdp,
        supervisor,
        shutdown,
    } = deps;
    let pipeline = Arc::new(PipelineStats::default());
    let (net_tx, net_rx) = mpsc::channel::<SensorEvent>(cfg.sensors.event_channel_size);
    let (unnamed_tx, unnamed_rx) = mpsc::channel(unnamed::PENDING_MAX);
    let sinks = || Sinks {
        files: files.clone(),
        net: net_tx.clone(),
        unnamed: Some(unnamed_tx.clone()),
    };
    let sup = supervisor;
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    {
        // Writes the kernel could not name are found by inode (bounded walks).
        let rx = Shared::new(unnamed_rx);
        let (s, p, stop, roots) = (
            sinks(),
            pipeline.clone(),
            shutdown.clone(),
            cfg.watch.paths.clone(),
        );
        tasks.push(sup.spawn("sensors", "unnamed-write lookup", true, move || {
            let (rx, s, p, stop, roots) = (
                rx.clone(),
                s.clone(),
                p.clone(),
                stop.clone(),
                roots.clone(),
            );
            async move {
                unnamed::run(&mut *rx.take().await, roots, s, p, stop).await;
                Ok(())
            }
        }));
    }
    // Each reader restarts on its own resources: a fanotify sensor is opened again,
    // the ring is read again through a duplicate of its map's descriptor (the
    // consumer position lives in the ring itself, so nothing is read twice).
    if let Some(f) = fanotify {
        let paths = cfg.watch.paths.clone();
        let mut open = crate::supervisor::first_then(f, move || FanotifySensor::new(&paths));
        let (s, p, rx) = (sinks(), pipeline.clone(), shutdown.clone());
        tasks.push(sup.spawn("sensors", "fanotify file sensor", true, move || {
            let (f, s, p, rx) = (open(), s.clone(), p.clone(), rx.clone());
            async move { Ok(f?.run(s, p, rx).await?) }
        }));
    }
    // The fanotify exec backend answers held execs: its own thread, never the runtime's.
    if let Some(f) = fan_exec {
        let (policy, roots) = (f.policy().clone(), cfg.exec.fanotify_roots.clone());
        let mut open =
            crate::supervisor::first_then(f, move || FanotifyExec::new(policy.clone(), &roots));
        let (s, p, rx) = (sinks(), pipeline.clone(), shutdown.clone());
        tasks.push(sup.spawn("sensors", "fanotify exec sensor", true, move || {
            let (f, s, p, rx) = (open(), s.clone(), p.clone(), rx.clone());
            crate::supervisor::blocking(move || Ok(f?.run(s, p, rx)?))
        }));
    }
    {
        let ring_fd = ring
            .as_fd()
            .try_clone_to_owned()
            .context("duplicating the events ring's descriptor")?;
        let mut open = crate::supervisor::first_then(ring, move || reopen_ring(&ring_fd));
        let (s, p, rx) = (sinks(), pipeline.clone(), shutdown.clone());
        let watched = reader::Watched::new(cfg.watch.paths.clone(), root_paths);
        tasks.push(sup.spawn("sensors", "ring buffer reader", true, move || {
            let (ring, w, s, p, rx) = (open(), watched.clone(), s.clone(), p.clone(), rx.clone());
            let sessions = sessions.clone();
            async move { Ok(run_reader(ring?, w, s, p, sessions, rx).await?) }
        }));
    }
    drop(net_tx);
    // Relative exec names from the kernel program are resolved and decided here.
    let exec_policy = match exec_policy {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(error = %e, "Relative exec names will not be resolved.");
            None
        }
    };
    let execs = ExecFindings {
        policy: exec_policy,
        detection: detection.clone(),
        stats: pipeline.clone(),
    };
    let net_rx = Shared::new(net_rx);
    tasks.push(sup.spawn("sensors", "sensor events", true, {
        let p = pipeline.clone();
        move || {
            let (rx, execs, det, xdp, p) = (
                net_rx.clone(),
                execs.clone(),
                detection.clone(),
                xdp.clone(),
                p.clone(),
            );
            async move { route(&mut *rx.take().await, &execs, det, xdp, p).await }
        }
    }));
    Ok(Sensors {
        components,
        backends,
        pipeline,
        counters,
        tasks,
        _root_pins: root_pins,
    })
}

impl Sensors {
    /// Wait for the readers (after shutdown fired); then the routing task ends once
    /// every sender is gone. A failure on the way out is logged by the supervisor.
    pub async fn stopped(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// The events ring again, from a duplicate of its map's descriptor.
fn reopen_ring(fd: &std::os::fd::OwnedFd) -> Result<RingBuf<aya::maps::MapData>> {
    let data = aya::maps::MapData::from_fd(fd.try_clone().context("duplicating the ring's fd")?)
        .context("reopening the events ring")?;
    RingBuf::try_from(aya::maps::Map::from_map_data(data).context("the events ring")?)
        .context("the events ring")
}

/// Execs and connects become findings; the firewall's events go to its queue.
async fn route(
    rx: &mut mpsc::Receiver<SensorEvent>,
    execs: &ExecFindings,
    detection: Arc<Detection>,
    xdp: mpsc::Sender<XdpEvent>,
    stats: Arc<PipelineStats>,
) -> Result<()> {
    while let Some(ev) = rx.recv().await {
        match ev {
            SensorEvent::Xdp(ev) => {
                if xdp.try_send(ev).is_err() {
                    stats.queue_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            SensorEvent::Exec(ev) => execs.handle(ev).await,
            SensorEvent::Connect(ev) => {
                if let Some(f) = egress::finding(&ev) {
                    detection.findings.report(f).await;
                }
            }
        }
    }
    Ok(())
}

/// A sensor that could not start, said once per start as a finding: nothing watches
/// what it would have watched.
async fn sensor_failed(detection: &Detection, sensor: &str, why: &str) {
    let f = NewFinding {
        check: "sensor_failed".into(),
        severity: Severity::High,
        message: format!("The {sensor} sensor is not running: its events are not seen"),
        details: why.to_string(),
        ..Default::default()
    };
    detection.findings.report(f).await;
}

/// What the missing kernel features cost, said once per start as a finding.
async fn bpf_unavailable(detection: &Detection, why: &str, backends: &[SensorBackend]) {
    let lost: Vec<String> = backends
        .iter()
        .filter(|s| s.backend != "lsm" && s.reason.is_some())
        .map(|s| {
            format!(
                "{} on {}: {}",
                s.sensor,
                s.backend,
                s.reason.as_deref().unwrap_or("")
            )
        })
        .collect();
    let f = NewFinding {
        check: "bpf_unavailable".into(),
        severity: Severity::Warning,
        message: format!(
            "BPF-LSM unavailable: sensitive reads are only reported, never denied; {}",
            match backends.iter().find(|s| s.sensor == "exec").map(|s| s.backend) {
                Some("tracepoint") => "a stopped exec is killed once its image is loaded, before its first instruction",
                Some("fanotify") => "a stopped exec is denied through a fanotify permission event, in userspace",
                _ => "execs are not watched",
            }
        ),
        details: format!("{why}; sensors: {}", lost.join("; ")),
        ..Default::default()
    };
    detection.findings.report(f).await;
}

/// Pick the file sensor's backend: BPF-LSM where it runs (write sessions; the path
/// operations on tracepoints), else tracepoints, else fanotify (`auto`), or the one
/// forced. Returns the components,
/// the report, and the fanotify sensor to run (if that is the backend).
fn choose_file_backend(
    cfg: &Config,
    ebpf: &mut Ebpf,
    lsm_why: Option<&str>,
) -> Result<(Vec<Component>, SensorBackend, Option<FanotifySensor>)> {
    let fanotify = |reason: String| -> Result<_> {
        let f =
            FanotifySensor::new(&cfg.watch.paths).context("starting the fanotify file sensor")?;
        tracing::info!(reason = %reason, "File sensor: fanotify backend.");
        let c = Component {
            name: "fanotify".into(),
            kind: "fanotify",
            target: join_paths(&cfg.watch.paths),
            state: ComponentState::Attached,
            mode: None,
            reason: Some(reason.clone()),
        };
        let mut backend = SensorBackend::new("file", "fanotify", Some(reason));
        backend.unseen = fanotify::UNSEEN.iter().map(|u| u.to_string()).collect();
        Ok((vec![c], backend, Some(f)))
    };
    let mode = cfg.sensors.file_backend;
    if mode == BackendChoice::Fanotify {
        return fanotify("forced by sensors.file_backend: fanotify".into());
    }
    if mode == BackendChoice::Lsm {
        if let Some(why) = lsm_why {
            anyhow::bail!("forced by sensors.file_backend: lsm, but {why}");
        }
    }
    // The path operations (unlink, rename, link, chmod, truncate) are on tracepoints
    // for either eBPF backend.
    let mut comps =
        match file::attach_file_sensor(ebpf, &[Part::Paths], cfg.sensors.file_syscall_hook) {
            Ok(c) => c,
            Err(e) if mode == BackendChoice::Auto => {
                tracing::warn!(error = %e, "File tracepoints failed; falling back to fanotify.");
                return fanotify(format!("tracepoints failed: {e}"));
            }
            Err(e) => return Err(e).context("attaching the file sensor tracepoints"),
        };
    // Write sessions: BPF-LSM where it runs (sees io_uring opens; a session ends
    // with the file's last reference), else the open/close tracepoints.
    let mut reason = match mode {
        BackendChoice::Tracepoint => Some("forced by sensors.file_backend: tracepoint".to_string()),
        _ => lsm_why.map(str::to_string),
    };
    if mode != BackendChoice::Tracepoint && lsm_why.is_none() {
        match file::attach_lsm_sessions(ebpf) {
            Ok(lsm) => {
                comps.extend(lsm);
                tracing::info!("File sensor: BPF-LSM backend (write sessions), tracepoints for path operations.");
                return Ok((comps, SensorBackend::new("file", "lsm", None), None));
            }
            Err(e) if mode == BackendChoice::Auto => {
                tracing::warn!(error = %e, "The LSM file backend failed; write sessions on tracepoints.");
                reason = Some(format!("the LSM file backend failed: {e}"));
            }
            Err(e) => anyhow::bail!("forced by sensors.file_backend: lsm: {e}"),
        }
    }
    match file::attach_file_sensor(ebpf, &[Part::Sessions], cfg.sensors.file_syscall_hook) {
        Ok(sessions) => comps.extend(sessions),
        Err(e) if mode == BackendChoice::Auto => {
            // The path programs stay attached; fanotify reports those operations
            // too, so a rename is seen twice, which the scan cache absorbs.
            tracing::warn!(error = %e, "File tracepoints failed; falling back to fanotify.");
            return fanotify(format!("tracepoints failed: {e}"));
        }
        Err(e) => return Err(e).context("attaching the file sensor tracepoints"),
    }
    for c in &mut comps {
        if c.reason.is_none() {
            c.reason = reason.as_ref().map(|r| format!("tracepoint backend: {r}"));
        }
    }
    Ok((
        comps,
        SensorBackend::new("file", "tracepoint", reason),
        None,
    ))
}

fn join_paths(paths: &[std::path::PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Pick the exec sensor's backend: the sched_process_exec tracepoint (with BPF-LSM's
/// denial where it runs) unless fanotify is forced, and fanotify when `auto` and the
/// tracepoint cannot attach; `lsm` forced where BPF-LSM does not run starts nothing.
/// `lsm_bprm`: the LSM exec denial is attached (the backend is then `lsm`). A sensor
/// that cannot start at all is reported (backend "none"), not fatal.
fn choose_exec_backend(
    cfg: &Config,
    ebpf: &mut Ebpf,
    lsm_why: Option<&str>,
    lsm_bprm: bool,
    policy: &Result<ExecPolicy, String>,
    offsets_ok: bool,
) -> (Vec<Component>, SensorBackend, Option<FanotifyExec>) {
    let not_started = |prog: &str, kind: &'static str, target: String, why: String| {
        tracing::error!(reason = %why, "Exec sensor not started.");
        let c = Component::failed(prog, kind, target, why.clone());
        (vec![c], SensorBackend::new("exec", "none", Some(why)), None)
    };
    let fanotify = |reason: String| {
        let started = policy.clone().and_then(|p| {
            FanotifyExec::new(p, &cfg.exec.fanotify_roots).map_err(|e| e.to_string())
        });
        match started {
            Ok(f) => {
                tracing::info!(reason = %reason, marked = ?f.marked, "Exec sensor: fanotify backend.");
                let c = Component {
                    name: "fanotify_exec".into(),
                    kind: "fanotify",
                    target: join_paths(&f.marked),
                    state: ComponentState::Attached,
                    mode: Some(kernel::mode_label(kernel::enforcement_mode(
                        cfg.exec.enforce,
                        cfg.exec.dry_run,
                    ))),
                    reason: Some(reason.clone()),
                };
                let mut backend = SensorBackend::new("exec", "fanotify", Some(reason));
                backend.unseen = fanotify_exec::UNSEEN
                    .iter()
                    .map(|u| u.to_string())
                    .collect();
                (vec![c], backend, Some(f))
            }
            Err(e) => not_started(
                "fanotify_exec",
                "fanotify",
                String::new(),
                format!("{reason}; fanotify: {e}"),
            ),
        }
    };
    if cfg.sensors.exec_backend == BackendChoice::Fanotify {
        return fanotify("forced by sensors.exec_backend: fanotify".into());
    }
    if let (BackendChoice::Lsm, Some(why)) = (cfg.sensors.exec_backend, lsm_why) {
        return not_started(
            maps::progs::LSM_BPRM_CHECK,
            "lsm",
            "bprm_check_security".into(),
            format!("forced by sensors.exec_backend: lsm, but {why}"),
        );
    }
    match exec::attach_exec(ebpf, &cfg.exec, offsets_ok) {
        Ok(comps) if lsm_bprm => (
            comps,
            SensorBackend::new(
                "exec",
                "lsm",
                Some("a stopped exec is denied with EPERM in bprm_check_security, before its image exists; reports, argv and scripts run by an interpreter on the sched_process_exec tracepoints".into()),
            ),
            None,
        ),
        Ok(comps) => {
            let reason = match cfg.sensors.exec_backend {
                BackendChoice::Tracepoint => {
                    Some("forced by sensors.exec_backend: tracepoint".to_string())
                }
                _ => lsm_why.map(str::to_string),
            };
            (
                comps,
                SensorBackend::new("exec", "tracepoint", reason),
                None,
            )
        }
        Err(e) if cfg.sensors.exec_backend == BackendChoice::Auto => {
            tracing::warn!(error = %e, "Exec tracepoint failed; falling back to fanotify.");
            fanotify(format!("tracepoint failed: {e}"))
        }
        Err(e) => not_started(
            maps::progs::SCHED_PROCESS_EXEC,
            "tracepoint",
            "sched:sched_process_exec".into(),
            e.to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_uring_is_named_unseen_unless_the_sysctl_closes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sysctl = dir.path().join("io_uring_disabled");
        for (value, unseen) in [("0\n", true), ("1\n", false), ("2\n", false)] {
            std::fs::write(&sysctl, value).expect("write");
            assert_eq!(io_uring_unseen(&sysctl).is_some(), unseen, "{value:?}");
        }
        std::fs::write(&sysctl, "0\n").expect("write");
        let why = io_uring_unseen(&sysctl).expect("unseen");
        assert!(
            why.contains("io_uring_disabled = 0") && why.contains("set it to 2"),
            "{why}"
        );
        // A kernel without the sysctl (before 6.6): every user can use io_uring.
        let none = io_uring_unseen(&dir.path().join("absent")).expect("unseen");
        assert!(none.contains("no kernel.io_uring_disabled"), "{none}");
    }
}
