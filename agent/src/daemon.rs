// SPDX-License-Identifier: GPL-2.0-only
//! `rampart run`: wire the pipeline together and run until SIGINT/SIGTERM.
//!
//! ring buffer reader --(bounded)--> detection --(bounded)--> scan workers --(bounded)-->
//! scan results --> findings (store, JSONL log, broadcast --> SSE)

use std::{sync::Arc, time::Instant};

use agent_common::{egress::Decision, maps, xdp::XdpReason, EventKind};
use anyhow::{Context, Result};
use api::model::{Finding, Severity};
use aya::maps::{LpmTrie, PerCpuArray, RingBuf};
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, mpsc, watch};

use crate::{
    backend::{AgentBackend, KernelStats},
    config::Config,
    detection::{self, Detection},
    events::{self, FileActivity, PipelineStats, SensorEvent},
    findings::Findings,
    firewall::{self, Firewall, KernelLists},
    loader::{self, Component},
    policy::PolicyManager,
    quarantine::Quarantine,
    scan::{Engine, ScanPool},
    store::{self, NewFinding, Store},
    tls, tokens,
};

/// Capacity of the findings broadcast; an SSE client further behind is dropped.
const FINDINGS_BROADCAST: usize = 1024;
const STORE_QUEUE: usize = 1024;
/// Firewall expiry runs every this many housekeeping seconds.
const EXPIRY_SWEEP_TICKS: u64 = 5;
const DROP_SAMPLE_FLUSH: std::time::Duration = std::time::Duration::from_secs(1);
/// Drop samples buffered between flushes (beyond: dropped, the kernel samples anyway).
const MAX_PENDING_SAMPLES: usize = 10_000;
/// Newest drop samples kept in the store.
const DROP_SAMPLES_KEPT: i64 = 100_000;

fn hash_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn prepare_state_dir(cfg: &Config) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("creating state dir {}", cfg.state_dir.display()))?;
    std::fs::set_permissions(&cfg.state_dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("securing state dir {}", cfg.state_dir.display()))?;
    Ok(())
}

/// Run the agent until a shutdown signal.
pub async fn run(cfg: Config, config_text: String) -> Result<()> {
    prepare_state_dir(&cfg)?;
    let (token_set, fresh_token) = tokens::build(&cfg)?;
    let tls = tls::load_or_generate(&cfg.state_dir, cfg.webui.listen.ip())?;
    let store = Store::open(&cfg.state_dir.join("rampart.db"), STORE_QUEUE)
        .context("opening the SQLite store")?;

    // Kernel side.
    loader::ensure_mounts().context("mounting tracefs/bpffs")?;
    let mut ebpf = loader::load(&cfg).context(
        "loading the kernel programs (needs root or CAP_BPF+CAP_PERFMON+CAP_NET_ADMIN, and a kernel with BTF; see docs/kernel.md)",
    )?;
    loader::set_watch_prefixes(&mut ebpf, &cfg.watch.paths)?;
    let mut sensors: Vec<SensorBackend> = Vec::new();
    let offsets = loader::set_kernel_offsets(&mut ebpf);
    if let Err(why) = &offsets {
        tracing::warn!(reason = %why, "No kernel struct offsets: file events carry no inode metadata.");
    }
    let s = &cfg.sensors.sensitive;
    let (web_uids, unknown) = loader::resolve_uids(&s.web_users);
    if !unknown.is_empty() {
        tracing::info!(users = ?unknown, "sensors.sensitive.web_users: unknown users skipped.");
    }
    loader::set_sensitive(&mut ebpf, &web_uids, &s.paths, &s.names)?;
    let missing = loader::set_sensitive_inodes(
        &mut ebpf,
        &s.paths,
        loader::enforcement_mode(s.enforce, s.dry_run),
    )?;
    if !missing.is_empty() {
        tracing::debug!(paths = ?missing, "Sensitive paths that are not files here (trees, or absent): matched by path only.");
    }
    // Backend probe: BPF-LSM first (observe + deny), else tracepoints, else fanotify;
    // each sensor's backend and the reason go to /api/v1/components, /health and
    // /capabilities.
    let lsm = loader::probe_lsm(&mut ebpf);
    if let Err(why) = &lsm {
        tracing::warn!(reason = %why, "BPF-LSM unavailable; sensors fall back.");
    }
    let lsm_why = lsm
        .as_ref()
        .err()
        .map(|w| format!("BPF-LSM unavailable: {w}"));
    let (mut components, file_backend, fanotify) =
        choose_file_backend(&cfg, &mut ebpf, lsm_why.as_deref())?;
    let sensitive_backend = if file_backend.backend == "fanotify" {
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
    sensors.push(file_backend);
    sensors.push(sensitive_backend);
    sensors.push(SensorBackend::new(
        "file_metadata",
        if offsets.is_ok() { "btf" } else { "none" },
        offsets.err(),
    ));
    if lsm.is_ok() {
        // Deny hooks where the kernel allows them; observation stays on the sensors
        // above (LSM has no hook for the end of a write session).
        components.extend(loader::attach_lsm_sensors(&mut ebpf));
    }
    components.push(Component {
        name: "lsm".into(),
        kind: "lsm",
        target: "bprm_check_security".into(),
        state: if lsm.is_ok() {
            "available"
        } else {
            "unavailable"
        },
        mode: None,
        reason: lsm.err(),
    });
    // The exec policy in userspace: the fanotify backend applies it, and relative
    // names from the kernel program are decided by it.
    let exec_policy =
        crate::fanotify_exec::ExecPolicy::new(&cfg.exec, &web_uids).map_err(|e| e.to_string());
    let fan_exec = if cfg.exec.enabled {
        let (comps, backend, fan) =
            choose_exec_backend(&cfg, &mut ebpf, lsm_why.as_deref(), &exec_policy);
        components.extend(comps);
        sensors.push(backend);
        fan
    } else {
        None
    };
    if cfg.egress.enabled {
        // A sensor that cannot attach is reported, not fatal: the firewall still runs.
        match loader::attach_egress(&mut ebpf, &cfg.egress) {
            Ok(c) => {
                components.extend(c);
                sensors.push(SensorBackend::new("egress", "cgroup", None));
            }
            Err(e) => {
                sensors.push(SensorBackend::new("egress", "none", Some(e.to_string())));
                tracing::error!(error = %e, "Egress sensor not attached.");
                components.push(Component {
                    name: maps::progs::CONNECT4.into(),
                    kind: "cgroup_sock_addr",
                    target: cfg.egress.cgroup.display().to_string(),
                    state: "failed",
                    mode: None,
                    reason: Some(e.to_string()),
                });
            }
        }
    }
    let lists = KernelLists {
        block_v4: LpmTrie::try_from(loader::take_map(&mut ebpf, maps::BLOCK_V4)?)?,
        block_v6: LpmTrie::try_from(loader::take_map(&mut ebpf, maps::BLOCK_V6)?)?,
        allow_v4: LpmTrie::try_from(loader::take_map(&mut ebpf, maps::ALLOW_V4)?)?,
        allow_v6: LpmTrie::try_from(loader::take_map(&mut ebpf, maps::ALLOW_V6)?)?,
    };
    let policy_maps = loader::PolicyMaps::take(&mut ebpf)?;
    let kernel_stats = KernelStats {
        xdp: PerCpuArray::try_from(loader::take_map(&mut ebpf, maps::XDP_STATS_TOTAL)?)?,
        file: PerCpuArray::try_from(loader::take_map(&mut ebpf, maps::FILE_STATS_TOTAL)?)?,
        egress: PerCpuArray::try_from(loader::take_map(&mut ebpf, maps::EGRESS_STATS_TOTAL)?)?,
        exec: PerCpuArray::try_from(loader::take_map(&mut ebpf, maps::EXEC_STATS_TOTAL)?)?,
    };
    let ring = RingBuf::try_from(loader::take_map(&mut ebpf, maps::EVENTS)?)?;

    // Lists and policy are in place before XDP attaches (or replaces the program of
    // a previous run), so enforcement is right from the first packet.
    let mut protected = firewall::own_addresses();
    protected.push(ipnet::IpNet::from(cfg.webui.listen.ip()));
    protected.retain(|n| !n.addr().is_unspecified());
    let firewall = Arc::new(Firewall::new(Some(lists), store.clone(), protected));
    firewall
        .sync_config_allows(&cfg.allow_entries())
        .await
        .context("applying firewall.allow")?;
    let [blocks, allows] = firewall
        .reconcile()
        .await
        .context("reconciling pinned maps with the store")?;
    tracing::info!(
        blocks = blocks.stored,
        allows = allows.stored,
        added = blocks.added_to_kernel + allows.added_to_kernel,
        removed = blocks.removed_from_kernel + allows.removed_from_kernel,
        "Firewall lists reconciled (the store wins)."
    );
    let policy = Arc::new(PolicyManager::new(
        store.clone(),
        cfg.firewall.policy(),
        cfg.firewall.tentative_timeout_secs,
        Some(policy_maps),
    ));
    policy
        .start()
        .await
        .context("applying the firewall policy")?;

    let mut attachments = Vec::new();
    for iface in &cfg.firewall.interfaces {
        // An interface that cannot take XDP is an error the operator must see: refuse to
        // start rather than run believing the blocklist is enforced.
        let a = loader::attach_xdp(
            &mut ebpf,
            iface,
            cfg.firewall.xdp_mode,
            &cfg.firewall.pin_dir,
        )
        .with_context(|| format!("attaching XDP to {iface} (firewall.interfaces)"))?;
        // A reused link keeps the mode it was attached in; remember it across runs.
        let key = format!("xdp.mode.{iface}");
        let mut component = a.component.clone();
        match component.mode {
            Some(m) => store.set_settings(vec![(key, Some(m.to_string()))]).await?,
            None => {
                component.mode = match store.setting(&key).await?.as_deref() {
                    Some("native") => Some("native"),
                    Some("generic") => Some("generic"),
                    _ => None,
                }
            }
        }
        tracing::info!(iface = %iface, mode = component.mode.unwrap_or("unknown"), "XDP firewall attached.");
        components.push(component);
        attachments.push(a);
    }
    if cfg.firewall.interfaces.is_empty() {
        components.push(Component {
            name: maps::progs::XDP_FIREWALL.into(),
            kind: "xdp",
            target: String::new(),
            state: "not_configured",
            mode: None,
            reason: Some("firewall.interfaces is empty".into()),
        });
    }

    // Pipeline.
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let pipeline = Arc::new(PipelineStats::default());
    let (act_tx, act_rx) = mpsc::channel::<FileActivity>(cfg.sensors.event_channel_size);
    let (net_tx, net_rx) = mpsc::channel::<SensorEvent>(cfg.sensors.event_channel_size);
    let (findings_tx, _) = broadcast::channel::<Finding>(FINDINGS_BROADCAST);
    let findings = Arc::new(
        Findings::open(
            store.clone(),
            findings_tx,
            cfg.detection.dedup_window_secs,
            Some(&cfg.state_dir.join("findings.jsonl")),
        )
        .await
        .context("loading suppressions")?,
    );
    let rules_dir =
        (!cfg.detection.rules_dir.as_os_str().is_empty()).then(|| cfg.detection.rules_dir.clone());
    let engine = Arc::new(
        tokio::task::spawn_blocking({
            let (dir, builtin) = (rules_dir, cfg.detection.builtin_rules);
            move || Engine::new(dir, builtin)
        })
        .await
        .context("compiling rules")?
        .context("the builtin rules do not compile")?,
    );
    let (outcome_tx, outcome_rx) = mpsc::channel(cfg.detection.scan_queue);
    let pool = ScanPool::start(
        engine.clone(),
        cfg.detection.scan_workers,
        cfg.detection.scan_queue,
        cfg.watch.max_scan_bytes,
        outcome_tx,
    )
    .context("starting scan workers")?;
    let quarantine = Arc::new(
        Quarantine::new(cfg.quarantine_dir(), store.clone()).context("preparing the quarantine")?,
    );
    let detection = Arc::new(Detection::new(
        engine.clone(),
        pool,
        quarantine,
        findings.clone(),
        cfg.quarantine.auto,
        crate::behaviour::Behaviour::new(
            web_uids.iter().copied(),
            cfg.detection.web_shell_allow.clone(),
        ),
    ));
    if let Some(e) = engine.last_error() {
        let f = NewFinding {
            details: e
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            ..NewFinding::new(
                "rules_error",
                Severity::Warning,
                format!(
                    "{} rule error(s) in {}: running with the builtin rules only",
                    e.errors.len(),
                    cfg.detection.rules_dir.display()
                ),
            )
        };
        findings.report(f).await;
    }
    // What the missing kernel features cost, said once per start as a finding.
    let lost: Vec<String> = sensors
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
    if let Some(why) = &lsm_why {
        let f = NewFinding {
            check: "bpf_unavailable".into(),
            severity: Severity::Warning,
            message: format!(
                "BPF-LSM unavailable: sensitive reads are only reported, never denied; {}",
                match sensors.iter().find(|s| s.sensor == "exec").map(|s| s.backend) {
                    Some("tracepoint") => "a stopped exec is killed once its image is loaded, before its first instruction",
                    Some("fanotify") => "a stopped exec is denied through a fanotify permission event, in userspace",
                    _ => "execs are not watched",
                }
            ),
            details: format!("{why}; sensors: {}", lost.join("; ")),
            ..Default::default()
        };
        findings.report(f).await;
    }
    // The ring carries every kernel event; with the fanotify backend file activity
    // comes from fanotify instead, into the same queue.
    let fan_task = fanotify.map(|f| {
        tokio::spawn(f.run(
            events::Sinks {
                files: act_tx.clone(),
                net: net_tx.clone(),
            },
            pipeline.clone(),
            shutdown_rx.clone(),
        ))
    });
    // The fanotify exec backend answers held execs: its own thread, never the runtime's.
    let fan_exec_task = fan_exec.map(|f| {
        let sinks = events::Sinks {
            files: act_tx.clone(),
            net: net_tx.clone(),
        };
        let (stats, rx) = (pipeline.clone(), shutdown_rx.clone());
        tokio::task::spawn_blocking(move || f.run(sinks, stats, rx))
    });
    let reader = tokio::spawn(events::run_reader(
        ring,
        cfg.watch.paths.clone(),
        events::Sinks {
            files: act_tx,
            net: net_tx,
        },
        pipeline.clone(),
        shutdown_rx.clone(),
    ));
    let detector = tokio::spawn(detection::file_activity(
        act_rx,
        detection.clone(),
        cfg.sensors.sensitive.exempt_comms.clone(),
    ));
    let scan_results = tokio::spawn(detection::scan_results(outcome_rx, detection.clone()));
    let scheduler = tokio::spawn(detection::schedule(
        detection.clone(),
        cfg.watch.paths.clone(),
        (cfg.detection.full_scan_interval_hours > 0)
            .then(|| std::time::Duration::from_secs(cfg.detection.full_scan_interval_hours * 3600)),
        cfg.detection.retention_days,
        shutdown_rx.clone(),
    ));
    // Relative exec names from the kernel program are resolved and decided here.
    let exec_policy = match exec_policy {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(error = %e, "Relative exec names will not be resolved.");
            None
        }
    };
    let net_events = tokio::spawn(network_events(
        net_rx,
        store.clone(),
        detection.clone(),
        exec_policy,
        pipeline.clone(),
    ));
    let responder = Arc::new(crate::respond::Responder::new(
        cfg.auto_response.clone(),
        firewall.clone(),
        findings.clone(),
    ));
    let log_stats = Arc::new(crate::logs::LogStats::default());
    let log_task = tokio::spawn(crate::logs::run(
        cfg.logs.clone(),
        store.clone(),
        responder.clone(),
        log_stats.clone(),
        shutdown_rx.clone(),
    ));
    let sweeper = tokio::spawn(housekeeping(
        firewall.clone(),
        policy.clone(),
        shutdown_rx.clone(),
    ));

    let started_at = store::now_rfc3339();
    // Hashing our own binary takes seconds (a debug build is ~400 MB): off the
    // start-up path, on a detached thread. Not spawn_blocking: the runtime waits for
    // those when it shuts down, which held a stop for the whole hash.
    let binary_hash = Arc::new(std::sync::OnceLock::new());
    let bh = binary_hash.clone();
    let hasher = std::thread::Builder::new()
        .name("rampart-selfhash".into())
        .spawn(move || {
            let hash = std::env::current_exe()
                .and_then(|p| {
                    let mut f = std::fs::File::open(p)?;
                    let mut h = Sha256::new();
                    std::io::copy(&mut f, &mut h)?;
                    Ok(hex::encode(h.finalize()))
                })
                .unwrap_or_default();
            let _ = bh.set(hash);
        });
    if let Err(e) = hasher {
        tracing::warn!(error = %e, "Cannot start the binary hash thread; binary_hash stays empty.");
    }
    let backend = Arc::new(AgentBackend {
        store: store.clone(),
        firewall: firewall.clone(),
        detection: detection.clone(),
        responder,
        log_stats,
        started: Instant::now(),
        started_at_token: hash_hex(format!("{started_at}{}", std::process::id()).as_bytes())[..16]
            .to_string(),
        started_at,
        config_hash: hash_hex(config_text.as_bytes()),
        binary_hash,
        components,
        sensors,
        pipeline,
        kernel: std::sync::Mutex::new(kernel_stats),
        watched: cfg.watch.paths.clone(),
        policy,
        logs: cfg.logs.clone(),
        undo: crate::undo::Undo::default(),
    });
    let loss = tokio::spawn(loss_watch(
        backend.clone(),
        std::time::Duration::from_secs(cfg.sensors.loss_window_secs),
        shutdown_rx.clone(),
    ));
    let state = api::ApiState::new(backend, token_set);
    let mut api_shutdown = shutdown_rx.clone();
    let (addr, server) = api::serve(
        state,
        cfg.webui.listen,
        &tls.cert_pem,
        &tls.key_pem,
        async move {
            let _ = api_shutdown.changed().await;
        },
    )
    .with_context(|| format!("binding the API on {} (webui.listen)", cfg.webui.listen))?;
    let server = tokio::spawn(server);
    tracing::info!(%addr, cert = %tls.cert_path.display(), "API listening (HTTPS).");
    if let Some(token) = fresh_token {
        // Printed once, to stdout only: never logged.
        println!("Generated admin API token (shown once; only its SHA-256 is stored): {token}");
    }

    wait_for_signal().await?;
    tracing::info!("Shutting down.");
    let _ = shutdown_tx.send(true);
    let _ = server.await;
    tracing::info!("API stopped.");
    match reader.await {
        Ok(Err(e)) => tracing::error!(error = %e, "Ring buffer reader failed."),
        Err(e) => tracing::error!(error = %e, "Ring buffer reader panicked."),
        Ok(Ok(())) => {}
    }
    if let Some(t) = fan_exec_task {
        match t.await {
            Ok(Err(e)) => tracing::error!(error = %e, "fanotify exec sensor failed."),
            Err(e) => tracing::error!(error = %e, "fanotify exec sensor panicked."),
            Ok(Ok(())) => {}
        }
    }
    if let Some(t) = fan_task {
        match t.await {
            Ok(Err(e)) => tracing::error!(error = %e, "fanotify reader failed."),
            Err(e) => tracing::error!(error = %e, "fanotify reader panicked."),
            Ok(Ok(())) => {}
        }
    }
    // The reader dropped its sender: detection drains what is queued, then ends.
    let _ = detector.await;
    tracing::info!("Sensors stopped; draining scans.");
    // Close the scan queue: the workers finish what is queued, the results task
    // turns it into findings, then ends (bounded: a stuck scan cannot hold shutdown).
    let _ = scheduler.await;
    detection.pool.close();
    if tokio::time::timeout(std::time::Duration::from_secs(10), scan_results)
        .await
        .is_err()
    {
        tracing::warn!("Scans still running after 10 s at shutdown; their results are lost.");
    }
    tracing::info!("Scans drained.");
    let _ = net_events.await;
    match log_task.await {
        Ok(Err(e)) => tracing::error!(error = %e, "Log watcher failed."),
        Err(e) => tracing::error!(error = %e, "Log watcher panicked."),
        Ok(Ok(())) => {}
    }
    let _ = sweeper.await;
    let _ = loss.await;
    store.flush().await.context("flushing the store")?;
    // A deliberate stop detaches XDP (its link pins go); the block/allow maps stay
    // pinned and are reconciled at the next start. A crash leaves the pinned links
    // attached, so the blocklist stays enforced until the agent is back.
    for a in attachments {
        a.detach();
    }
    drop(ebpf);
    tracing::info!("Programs detached; store flushed. Bye.");
    Ok(())
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    Ok(())
}

/// Pick the file sensor's backend: tracepoints unless fanotify is forced, and
/// fanotify when `auto` and the tracepoints cannot attach. Returns the components,
/// the report, and the fanotify sensor to run (if that is the backend).
fn choose_file_backend(
    cfg: &Config,
    ebpf: &mut aya::Ebpf,
    lsm_why: Option<&str>,
) -> Result<(
    Vec<Component>,
    SensorBackend,
    Option<crate::fanotify::FanotifySensor>,
)> {
    use crate::config::BackendChoice;
    let fanotify = |reason: String| -> Result<_> {
        let f = crate::fanotify::FanotifySensor::new(&cfg.watch.paths)
            .context("starting the fanotify file sensor")?;
        tracing::info!(reason = %reason, "File sensor: fanotify backend.");
        let c = Component {
            name: "fanotify".into(),
            kind: "fanotify",
            target: cfg
                .watch
                .paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(","),
            state: "attached",
            mode: None,
            reason: Some(reason.clone()),
        };
        Ok((
            vec![c],
            SensorBackend::new("file", "fanotify", Some(reason)),
            Some(f),
        ))
    };
    match cfg.sensors.file_backend {
        BackendChoice::Fanotify => fanotify("forced by sensors.file_backend: fanotify".into()),
        mode => match loader::attach_file_sensor(ebpf) {
            Ok(mut comps) => {
                let reason = match mode {
                    BackendChoice::Tracepoint => {
                        Some("forced by sensors.file_backend: tracepoint".to_string())
                    }
                    _ => lsm_why.map(str::to_string),
                };
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
            Err(e) if mode == BackendChoice::Auto => {
                tracing::warn!(error = %e, "File tracepoints failed; falling back to fanotify.");
                fanotify(format!("tracepoints failed: {e}"))
            }
            Err(e) => Err(e).context("attaching the file sensor tracepoints"),
        },
    }
}

/// Pick the exec sensor's backend: the sched_process_exec tracepoint unless fanotify
/// is forced, and fanotify when `auto` and the tracepoint cannot attach. A sensor that
/// cannot start at all is reported (backend "none"), not fatal.
fn choose_exec_backend(
    cfg: &Config,
    ebpf: &mut aya::Ebpf,
    lsm_why: Option<&str>,
    policy: &Result<crate::fanotify_exec::ExecPolicy, String>,
) -> (
    Vec<Component>,
    SensorBackend,
    Option<crate::fanotify_exec::FanotifyExec>,
) {
    use crate::config::BackendChoice;
    let fanotify = |reason: String| {
        let started = policy.clone().and_then(|p| {
            crate::fanotify_exec::FanotifyExec::new(p, &cfg.exec.fanotify_roots)
                .map_err(|e| e.to_string())
        });
        match started {
            Ok(f) => {
                tracing::info!(reason = %reason, marked = ?f.marked, "Exec sensor: fanotify backend.");
                let c = Component {
                    name: "fanotify_exec".into(),
                    kind: "fanotify",
                    target: f
                        .marked
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                    state: "attached",
                    mode: Some(loader::mode_label(loader::enforcement_mode(
                        cfg.exec.enforce,
                        cfg.exec.dry_run,
                    ))),
                    reason: Some(reason.clone()),
                };
                (
                    vec![c],
                    SensorBackend::new("exec", "fanotify", Some(reason)),
                    Some(f),
                )
            }
            Err(e) => {
                tracing::error!(error = %e, "Exec sensor not started.");
                let why = format!("{reason}; fanotify: {e}");
                let c = Component {
                    name: "fanotify_exec".into(),
                    kind: "fanotify",
                    target: String::new(),
                    state: "failed",
                    mode: None,
                    reason: Some(why.clone()),
                };
                (vec![c], SensorBackend::new("exec", "none", Some(why)), None)
            }
        }
    };
    if cfg.sensors.exec_backend == BackendChoice::Fanotify {
        return fanotify("forced by sensors.exec_backend: fanotify".into());
    }
    match loader::attach_exec(ebpf, &cfg.exec) {
        Ok(c) => {
            let reason = match cfg.sensors.exec_backend {
                BackendChoice::Tracepoint => {
                    Some("forced by sensors.exec_backend: tracepoint".to_string())
                }
                _ => lsm_why.map(str::to_string),
            };
            (
                vec![c],
                SensorBackend::new("exec", "tracepoint", reason),
                None,
            )
        }
        Err(e) if cfg.sensors.exec_backend == BackendChoice::Auto => {
            tracing::warn!(error = %e, "Exec tracepoint failed; falling back to fanotify.");
            fanotify(format!("tracepoint failed: {e}"))
        }
        Err(e) => {
            tracing::error!(error = %e, "Exec sensor not attached.");
            let c = Component {
                name: maps::progs::SCHED_PROCESS_EXEC.into(),
                kind: "tracepoint",
                target: "sched:sched_process_exec".into(),
                state: "failed",
                mode: None,
                reason: Some(e.to_string()),
            };
            (
                vec![c],
                SensorBackend::new("exec", "none", Some(e.to_string())),
                None,
            )
        }
    }
}

/// Which backend serves a sensor, and why (for /components, /health, /capabilities).
#[derive(Clone, Debug, serde::Serialize)]
pub struct SensorBackend {
    pub sensor: &'static str,
    pub backend: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl SensorBackend {
    pub fn new(sensor: &'static str, backend: &'static str, reason: Option<String>) -> Self {
        Self {
            sensor,
            backend,
            reason,
        }
    }
}

/// Port scans and SMTP egress become findings; sampled drops go to the store in
/// batches (for the threat view and /firewall/status).
async fn network_events(
    mut rx: mpsc::Receiver<SensorEvent>,
    store: Store,
    det: Arc<Detection>,
    exec_policy: Option<crate::fanotify_exec::ExecPolicy>,
    stats: Arc<events::PipelineStats>,
) {
    let findings = &det.findings;
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(DROP_SAMPLE_FLUSH);
    loop {
        tokio::select! {
            ev = rx.recv() => {
                match ev {
                    None => break,
                    Some(SensorEvent::Xdp(ev)) => {
                        let ip = events::xdp_source(&ev).to_string();
                        if ev.header.kind == EventKind::PortScan as u16 {
                            let f = NewFinding {
                                check: "port_scan".into(),
                                severity: Severity::Warning,
                                message: format!("Port scan from {ip}: {} distinct ports", ev.distinct_ports),
                                details: format!("last port {} proto {}; interface index {}", ev.dport, ev.proto, ev.ifindex),
                                ip: Some(ip),
                                ..Default::default()
                            };
                            findings.report(f).await;
                        } else if samples.len() < MAX_PENDING_SAMPLES {
                            let reason = XdpReason::from_u32(ev.reason).map(XdpReason::as_str).unwrap_or("unknown");
                            samples.push((ip, reason.to_string(), ev.proto, ev.dport));
                        }
                    }
                    Some(SensorEvent::Exec(mut ev)) => {
                        use crate::fanotify_exec::Relative;
                        let relative = exec_policy
                            .as_ref()
                            .map_or(Relative::NotRelative, |p| p.resolve_relative(&mut ev));
                        let late_kill = match relative {
                            Relative::Resolved { killed } => {
                                if killed {
                                    stats.exec[agent_common::exec::ExecStat::Killed as usize]
                                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                }
                                killed
                            }
                            Relative::Unresolved => {
                                stats.unresolved.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                false
                            }
                            Relative::NotRelative => false,
                        };
                        let Some(decision) = Decision::from_u32(ev.decision) else { continue };
                        let path = events::exec_path(&ev);
                        let comm = events::comm_str(&ev.comm);
                        let info = crate::behaviour::ExecInfo {
                            path: path.clone().into(),
                            pid: ev.tgid,
                            uid: ev.uid,
                            comm: comm.clone(),
                            args: events::exec_args(&ev),
                            parent: format!("{} ({})", events::comm_str(&ev.parent_comm), ev.ppid),
                            world_writable: ev.flags & agent_common::exec::flags::WORLD_WRITABLE != 0,
                        };
                        for f in det.behaviour.on_exec(&info) {
                            findings.report(f).await;
                        }
                        if decision == Decision::Allowed {
                            continue; // all_execs / web-user reporting: behaviour checks only
                        }
                        let f = NewFinding {
                            check: "exec_world_writable".into(),
                            severity: Severity::High,
                            message: format!(
                                "Executed from a world-writable tree: {path}{}",
                                match decision {
                                    Decision::Denied if late_kill => " (killed after it started: a relative name, resolved by the agent)",
                                    Decision::Denied => " (stopped before its first instruction)",
                                    _ => "",
                                }
                            ),
                            details: exec_details(&ev, decision),
                            // A dry run and a kill of the same file are two findings.
                            key: Some(format!("{path}|{}", decision.as_str())),
                            path: Some(path),
                            pid: Some(ev.tgid),
                            uid: Some(ev.uid),
                            process: Some(comm),
                            ..Default::default()
                        };
                        findings.report(f).await;
                    }
                    Some(SensorEvent::Connect(ev)) => {
                        let Some(decision) = Decision::from_u32(ev.decision) else { continue };
                        if decision == Decision::Allowed {
                            continue; // all_connects reporting: counted, not a finding
                        }
                        let dest = events::connect_dest(&ev);
                        let comm = events::comm_str(&ev.comm);
                        let f = NewFinding {
                            check: "smtp_egress".into(),
                            severity: Severity::High,
                            message: format!(
                                "Direct SMTP connection to {dest}:{} by uid {} ({comm}){}",
                                ev.dport,
                                ev.uid,
                                if decision == Decision::Denied { ", denied" } else { "" }
                            ),
                            details: format!("decision: {}; pid {}", decision.as_str(), ev.tgid),
                            key: Some(format!("{dest}|{}|{}", ev.uid, decision.as_str())),
                            pid: Some(ev.tgid),
                            uid: Some(ev.uid),
                            process: Some(comm),
                            ip: Some(dest.to_string()),
                            ..Default::default()
                        };
                        findings.report(f).await;
                    }
                }
            }
            _ = tick.tick() => {
                if !samples.is_empty() {
                    if let Err(e) = store.add_drop_samples(std::mem::take(&mut samples), DROP_SAMPLES_KEPT).await {
                        tracing::error!(error = %e, "Storing drop samples failed.");
                    }
                }
            }
        }
    }
    if !samples.is_empty() {
        let _ = store.add_drop_samples(samples, DROP_SAMPLES_KEPT).await;
    }
}

/// Details of an exec finding: decision, argv, lineage (from the kernel; /proc when
/// the kernel had no offsets), cwd and exe of the parent (best effort from /proc).
fn exec_details(ev: &agent_common::exec::ExecEvent, decision: Decision) -> String {
    let args = events::exec_args(ev);
    let argv = if args.is_empty() {
        "unknown".to_string()
    } else {
        format!(
            "{:?}{}",
            args,
            if ev.args_truncated != 0 { " (cut)" } else { "" }
        )
    };
    let lineage = if ev.ppid != 0 {
        let pexe = std::fs::read_link(format!("/proc/{}/exe", ev.ppid))
            .map(|p| format!(", exe {}", p.display()))
            .unwrap_or_default();
        let mut s = format!(
            "parent {} ({}{pexe})",
            events::comm_str(&ev.parent_comm),
            ev.ppid
        );
        if ev.gppid != 0 {
            s.push_str(&format!(
                ", grandparent {} ({})",
                events::comm_str(&ev.gp_comm),
                ev.gppid
            ));
        }
        s
    } else {
        lineage(ev.tgid)
    };
    let cwd = std::fs::read_link(format!("/proc/{}/cwd", ev.tgid))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "unknown (process gone)".into());
    format!(
        "decision: {}; world_writable: {}; argv: {argv}; {lineage}; cwd: {cwd}",
        decision.as_str(),
        ev.flags & agent_common::exec::flags::WORLD_WRITABLE != 0
    )
}

/// Parent and grandparent of `pid`, best effort from /proc (a killed or short-lived
/// process may be gone already).
fn lineage(pid: u32) -> String {
    let parent = |p: u32| -> Option<(u32, String)> {
        let ppid = crate::fanotify_exec::proc_stat(p)?.ppid;
        let comm = std::fs::read_to_string(format!("/proc/{ppid}/comm")).ok()?;
        Some((ppid, comm.trim().to_string()))
    };
    match parent(pid) {
        Some((pp, pc)) => match parent(pp) {
            Some((gp, gc)) => format!("parent {pc} ({pp}), grandparent {gc} ({gp})"),
            None => format!("parent {pc} ({pp})"),
        },
        None => "lineage unavailable (process gone)".into(),
    }
}

/// Every window: if any event was lost (a kernel ring buffer was full, or a userspace
/// queue was), raise an `event_loss` finding saying where and how many.
async fn loss_watch(
    b: Arc<AgentBackend>,
    window: std::time::Duration,
    mut shutdown: watch::Receiver<bool>,
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
                    severity: Severity::Warning,
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

/// Once a second: revert an expired tentative policy; every few seconds: expire
/// firewall entries.
async fn housekeeping(
    fw: Arc<Firewall>,
    policy: Arc<PolicyManager>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                n += 1;
                if let Err(e) = policy.tick().await {
                    tracing::error!(error = %e, "Firewall rollback timer failed.");
                }
                if n.is_multiple_of(EXPIRY_SWEEP_TICKS) {
                    if let Err(e) = fw.sweep().await {
                        tracing::error!(error = %e, "Expiry sweep failed.");
                    }
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
