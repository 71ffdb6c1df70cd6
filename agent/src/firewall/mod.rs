// SPDX-License-Identifier: GPL-2.0-only
//! The XDP firewall: block and allow lists (SQLite is the truth, pinned LPM tries
//! enforce it), the runtime policy with its tentative-apply rollback, the XDP attach
//! per interface, and what the program reports (port scans, sampled drops).

pub mod cerberus;
pub mod events;
pub mod geoip;
pub mod lists;
pub mod policy;
pub mod xdp;

use std::sync::Arc;

use agent_common::{
    maps,
    xdp::{XdpEvent, XdpReason},
};
use anyhow::{Context, Result};
use aya::{maps::LpmTrie, Ebpf};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

pub use lists::{canonical, own_addresses, parse_target, Firewall, FirewallError, KernelLists};
pub use policy::{PolicyError, PolicyManager};

use crate::{
    config::Config,
    findings::Findings,
    kernel::{take_map, Component, ComponentState, Counters},
    store::Store,
    supervisor::{Shared, Supervisor},
};
use xdp::XdpAttachment;

/// Firewall expiry runs every this many housekeeping seconds.
const EXPIRY_SWEEP_TICKS: u64 = 5;

/// What the firewall needs from the rest of the agent.
pub struct Deps {
    pub store: Store,
    pub findings: Arc<Findings>,
    /// The XDP program's events, read off the shared ring by the sensors.
    pub events: mpsc::Receiver<XdpEvent>,
    pub supervisor: Supervisor,
    pub shutdown: watch::Receiver<bool>,
}

/// The running firewall.
pub struct FirewallHandle {
    pub firewall: Arc<Firewall>,
    pub policy: Arc<PolicyManager>,
    /// The enforcement switch (Charon's Cerberus) and its break-glass tokens.
    pub cerberus: Arc<cerberus::Cerberus>,
    pub components: Vec<Component>,
    /// Verdicts per [`XdpReason`].
    pub counters: Arc<Counters>,
    attachments: Vec<XdpAttachment>,
    tasks: Vec<JoinHandle<()>>,
}

/// Reconcile the pinned lists with the store, apply the policy, then attach XDP to
/// `firewall.interfaces`: enforcement is right from the first packet. An interface
/// that cannot take XDP is an error: the agent refuses to start rather than run
/// believing the blocklist is enforced.
pub async fn start(cfg: &Config, ebpf: &mut Ebpf, deps: Deps) -> Result<FirewallHandle> {
    let Deps {
        store,
        findings,
        events,
        supervisor,
        shutdown,
    } = deps;
    let lists = KernelLists {
        block_v4: LpmTrie::try_from(take_map(ebpf, maps::BLOCK_V4)?)?,
        block_v6: LpmTrie::try_from(take_map(ebpf, maps::BLOCK_V6)?)?,
        allow_v4: LpmTrie::try_from(take_map(ebpf, maps::ALLOW_V4)?)?,
        allow_v6: LpmTrie::try_from(take_map(ebpf, maps::ALLOW_V6)?)?,
    };
    let policy_maps = xdp::PolicyMaps::take(ebpf)?;
    let counters = Arc::new(Counters::take(
        ebpf,
        maps::XDP_STATS_TOTAL,
        &XdpReason::NAMES,
    )?);

    let mut protected = own_addresses();
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
    let cerberus = Arc::new(cerberus::Cerberus::new(
        store.clone(),
        policy.clone(),
        firewall.clone(),
        cfg.firewall.disable_max_secs,
    ));
    cerberus
        .start()
        .await
        .context("applying the enforcement state (Cerberus)")?;

    let mut components = Vec::new();
    let mut attachments = Vec::new();
    for iface in &cfg.firewall.interfaces {
        let a = xdp::attach_xdp(ebpf, iface, cfg.firewall.xdp_mode, &cfg.firewall.pin_dir)
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
            state: ComponentState::NotConfigured,
            mode: None,
            reason: Some("firewall.interfaces is empty".into()),
        });
    }
    let events = Shared::new(events);
    let tasks = vec![
        supervisor.spawn("firewall", "firewall events", true, move || {
            let (rx, store, findings) = (events.clone(), store.clone(), findings.clone());
            async move { events::run(&mut *rx.take().await, store, findings).await }
        }),
        supervisor.spawn("firewall", "housekeeping", true, {
            let (fw, policy, cerberus) = (firewall.clone(), policy.clone(), cerberus.clone());
            move || {
                housekeeping(
                    fw.clone(),
                    policy.clone(),
                    cerberus.clone(),
                    shutdown.clone(),
                )
            }
        }),
    ];
    Ok(FirewallHandle {
        firewall,
        policy,
        cerberus,
        components,
        counters,
        attachments,
        tasks,
    })
}

impl FirewallHandle {
    /// After shutdown fired and the sensors stopped: wait for the tasks, then detach
    /// XDP. A deliberate stop removes the link pins; the block/allow maps stay pinned
    /// and are reconciled at the next start. A crash leaves the pinned links attached,
    /// so the blocklist stays enforced until the agent is back.
    pub async fn stop(self) {
        for t in self.tasks {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "Firewall task panicked.");
            }
        }
        for a in self.attachments {
            a.detach();
        }
    }
}

/// Once a second: revert an expired tentative policy and end an expired disable;
/// every few seconds: expire firewall entries.
async fn housekeeping(
    fw: Arc<Firewall>,
    policy: Arc<PolicyManager>,
    cerberus: Arc<cerberus::Cerberus>,
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
                if let Err(e) = cerberus.tick().await {
                    tracing::error!(error = %e, "The enforcement-off deadline check failed.");
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
