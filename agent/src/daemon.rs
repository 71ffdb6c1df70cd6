// SPDX-License-Identifier: GPL-2.0-only
//! `rampart run`: compose the features, serve the API, and stop them in order on
//! SIGINT/SIGTERM. Each feature starts itself and returns a handle; nothing here
//! reaches inside one.
//!
//! sensors (ring buffer, fanotify) --(bounded)--> detection --(bounded)--> scan
//! workers --(bounded)--> findings (store, JSONL log, broadcast --> SSE)
//!                       \--(bounded)--> firewall events (port scans, drop samples)
//! log watchers --> scenarios --> auto-response --> firewall (XDP maps), findings

use std::{sync::Arc, time::Instant};

use anyhow::{Context, Result};
use api::model::Finding;
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, mpsc, watch};

use crate::{
    config::Config,
    detection,
    findings::{alerts::Alerts, Findings, JsonlLog},
    firewall, kernel, logs, sensors,
    store::{self, Store},
    supervisor::{notify::Notifier, Supervisor},
    web::{self, tls, tokens, AgentBackend, KernelStats},
};

/// Capacity of the findings broadcast; an SSE client further behind is dropped.
const FINDINGS_BROADCAST: usize = 1024;
const STORE_QUEUE: usize = 1024;

fn hash_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// SIGTERM or SIGINT.
    Stopped,
    /// `POST /api/v1/settings/restart`: the caller starts the agent again in place.
    Restart,
}

fn prepare_state_dir(cfg: &Config) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("creating state dir {}", cfg.state_dir.display()))?;
    std::fs::set_permissions(&cfg.state_dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("securing state dir {}", cfg.state_dir.display()))?;
    Ok(())
}

/// Run the agent until a shutdown signal or a restart asked through the API, telling
/// systemd how it goes. `config_path`: the file `cfg` came from (None: the embedded
/// default), which the settings API edits through its drop-in.
pub async fn run(
    cfg: Config,
    config_path: Option<std::path::PathBuf>,
    notifier: Arc<Notifier>,
) -> Result<Exit> {
    let t0 = Instant::now();
    prepare_state_dir(&cfg)?;
    let nofile = kernel::raise_nofile();
    let (token_set, fresh_token) = tokens::build(&cfg)?;
    let tls = tls::load_or_generate(&cfg.state_dir, cfg.webui.listen.ip())?;
    let store = Store::open(&cfg.state_dir.join("rampart.db"), STORE_QUEUE)
        .context("opening the SQLite store")?;
    kernel::ensure_mounts().context("mounting tracefs/bpffs")?;
    notifier.status("Starting: loading the kernel programs");
    let t_load = Instant::now();
    let mut ebpf = kernel::load(&cfg).context(
        "loading the kernel programs (needs root or CAP_BPF+CAP_PERFMON+CAP_NET_ADMIN, and a kernel with BTF; see docs/kernel.md)",
    )?;
    let load_ms = t_load.elapsed().as_millis();

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let restart = Arc::new(tokio::sync::Notify::new());
    let (findings_tx, _) = broadcast::channel::<Finding>(FINDINGS_BROADCAST);
    let findings = Arc::new(
        Findings::open(
            store.clone(),
            findings_tx,
            cfg.detection.dedup_window_secs,
            Some(JsonlLog::new(
                cfg.state_dir.join("findings.jsonl"),
                cfg.retention.findings_log_bytes,
                cfg.retention.findings_log_files,
            )),
        )
        .await
        .context("loading suppressions")?,
    );
    let supervisor = Supervisor::new(findings.clone(), shutdown_rx.clone());
    let alerts = Alerts::new(&cfg, store.clone())
        .await
        .context("setting up the alert channels")?;
    // Always: the notification settings can add channels while the agent runs.
    let alert_delivery = supervisor.spawn("findings", "alert delivery", false, {
        let (a, f, rx) = (alerts.clone(), findings.clone(), shutdown_rx.clone());
        move || a.clone().run(f.subscribe(), rx.clone())
    });
    let t_detection = Instant::now();
    let detection = detection::start(
        &cfg,
        store.clone(),
        findings.clone(),
        &supervisor,
        shutdown_rx.clone(),
    )
    .await?;
    let detection_ms = t_detection.elapsed().as_millis();
    // The firewall's events travel on the sensors' ring: the sensors hand them over.
    let (xdp_tx, xdp_rx) = mpsc::channel(cfg.sensors.event_channel_size);
    notifier.status("Starting: sensors");
    let t_sensors = Instant::now();
    // Sensors before the firewall: a sensor that refuses to start stops the agent
    // before XDP is attached and its link pinned.
    let sensors = sensors::start(
        &cfg,
        &mut ebpf,
        sensors::Deps {
            detection: detection.detection.clone(),
            files: detection.files.clone(),
            xdp: xdp_tx,
            supervisor: supervisor.clone(),
            shutdown: shutdown_rx.clone(),
        },
    )
    .await?;
    let sensors_ms = t_sensors.elapsed().as_millis();
    kernel::release_kernel_btf();
    notifier.status("Starting: reconciling the firewall with the store");
    let firewall = firewall::start(
        &cfg,
        &mut ebpf,
        firewall::Deps {
            store: store.clone(),
            findings: findings.clone(),
            events: xdp_rx,
            supervisor: supervisor.clone(),
            shutdown: shutdown_rx.clone(),
        },
    )
    .await?;
    let logs = logs::start(
        &cfg,
        store.clone(),
        firewall.firewall.clone(),
        findings.clone(),
        &supervisor,
        shutdown_rx.clone(),
    );

    let started_at = store::now_rfc3339();
    let mut components = sensors.components.clone();
    components.extend(firewall.components.iter().cloned());
    let backend = Arc::new(AgentBackend {
        store: store.clone(),
        firewall: firewall.firewall.clone(),
        detection: detection.detection.clone(),
        responder: logs.responder.clone(),
        log_stats: logs.stats.clone(),
        started: Instant::now(),
        started_at_token: hash_hex(format!("{started_at}{}", std::process::id()).as_bytes())[..16]
            .to_string(),
        started_at,
        config_path,
        restart: restart.clone(),
        settings_written: Default::default(),
        settings_lock: Default::default(),
        binary_hash: self_hash(),
        components,
        sensors: sensors.backends.clone(),
        pipeline: sensors.pipeline.clone(),
        kernel: KernelStats {
            xdp: firewall.counters.clone(),
            sensors: sensors.counters.clone(),
        },
        watched: cfg.watch.paths.clone(),
        state_dir: cfg.state_dir.clone(),
        policy: firewall.policy.clone(),
        cerberus: firewall.cerberus.clone(),
        logs: cfg.logs.clone(),
        mail: cfg.mail.clone(),
        modsec: cfg.modsec.clone(),
        undo: web::undo::Undo::default(),
        supervisor: supervisor.clone(),
        alerts,
        under_systemd: notifier.under_systemd(),
        deny_ip_limit: cfg.firewall.max_entries_v4,
        geoip: Arc::new(firewall::geoip::Live::new(firewall::geoip::GeoIp::load(
            &cfg.geoip,
        ))),
    });
    let loss = supervisor.spawn("sensors", "loss watch", false, {
        let (b, rx) = (backend.clone(), shutdown_rx.clone());
        let window = std::time::Duration::from_secs(cfg.sensors.loss_window_secs);
        move || web::loss_watch(b.clone(), window, rx.clone())
    });
    let state = api::ApiState::with_limits(
        backend,
        token_set,
        web::api_limits(&cfg.webui.limits, nofile),
    );
    let token_follower = supervisor.spawn("api", "minted tokens", false, {
        let (state, store, rx) = (state.clone(), store.clone(), shutdown_rx.clone());
        move || tokens::follow(state.clone(), store.clone(), rx.clone())
    });
    let listening = api::bind(state, cfg.webui.listen, &tls.cert_pem, &tls.key_pem)
        .with_context(|| format!("binding the API on {} (webui.listen)", cfg.webui.listen))?;
    let addr = listening.addr;
    let server = supervisor.spawn("api", "API listener", true, {
        let rx = shutdown_rx.clone();
        move || {
            let mut rx = rx.clone();
            listening.run(async move {
                let _ = rx.changed().await;
            })
        }
    });
    // Where the start went (the object and BTF, the rules, the programs' verifier).
    tracing::info!(
        %addr,
        cert = %tls.cert_path.display(),
        start_ms = t0.elapsed().as_millis(),
        load_ms,
        detection_ms,
        sensors_ms,
        "API listening (HTTPS)."
    );
    let watchdog = tokio::spawn(crate::supervisor::notify::feed_watchdog(
        notifier.clone(),
        supervisor.clone(),
        shutdown_rx.clone(),
    ));
    // The start's peak (the rules' compile above all) is over.
    tokio::task::spawn_blocking(|| crate::supervisor::memory::release_freed("start"));
    notifier.ready(&format!(
        "Protecting: API on {addr}; firewall reconciled; {} supervised tasks",
        supervisor.tasks().len()
    ));
    if let Some(token) = fresh_token {
        // Printed once, to stdout only: never logged.
        println!("Generated admin API token (shown once; only its SHA-256 is stored): {token}");
    }

    let exit = tokio::select! {
        r = wait_for_signal() => r.map(|()| Exit::Stopped)?,
        () = restart.notified() => Exit::Restart,
    };
    if exit == Exit::Restart {
        tracing::info!("Restarting (asked through the API).");
        notifier.reloading();
    } else {
        tracing::info!("Shutting down.");
        notifier.stopping();
    }
    let _ = shutdown_tx.send(true);
    let _ = watchdog.await;
    let _ = server.await;
    tracing::info!("API stopped.");
    // In pipeline order: the readers stop, detection drains what they queued, the
    // log watchers save their offsets, the firewall's tasks end and XDP detaches.
    sensors.stopped().await;
    detection.stop().await;
    logs.stop().await;
    firewall.stop().await;
    let _ = loss.await;
    let _ = token_follower.await;
    let _ = alert_delivery.await;
    // The local CLI credential dies with the agent.
    let _ = std::fs::remove_file(cfg.state_dir.join(tokens::LOCAL_TOKEN_FILE));
    store.flush().await.context("flushing the store")?;
    drop(ebpf);
    tracing::info!("Programs detached; store flushed. Bye.");
    Ok(exit)
}

/// SHA-256 of our own binary, filled in by a detached thread: hashing takes seconds
/// (a debug build is ~150 MB), off the start-up path. Not spawn_blocking: the runtime
/// waits for those when it shuts down, which held a stop for the whole hash. The
/// thread runs under SCHED_IDLE: on a busy host (or a one-CPU emulated guest, where
/// it took a whole CPU for a minute at every start) it gets only time nothing else
/// wants, so it never slows the agent's start or the host's work.
fn self_hash() -> Arc<std::sync::OnceLock<String>> {
    let binary_hash = Arc::new(std::sync::OnceLock::new());
    let bh = binary_hash.clone();
    let hasher = std::thread::Builder::new()
        .name("rampart-selfhash".into())
        .spawn(move || {
            let idle = libc::sched_param { sched_priority: 0 };
            // SAFETY: pid 0 is this thread; `idle` is a valid sched_param.
            if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &idle) } != 0 {
                tracing::debug!(
                    error = %std::io::Error::last_os_error(),
                    "The binary hash thread keeps its normal priority."
                );
            }
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
    binary_hash
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
