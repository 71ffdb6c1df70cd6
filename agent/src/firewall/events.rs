// SPDX-License-Identifier: GPL-2.0-only
//! What the XDP program reports: port scans become findings; sampled drops go to the
//! store in batches (for the threat view and /firewall/status).

use std::{sync::Arc, time::Duration};

use agent_common::{
    xdp::{XdpEvent, XdpReason},
    EventKind,
};
use api::model::Severity;
use tokio::sync::mpsc;

use crate::{
    findings::Findings,
    sensors::event::xdp_source,
    store::{NewFinding, Store},
};

const DROP_SAMPLE_FLUSH: Duration = Duration::from_secs(1);
/// Drop samples buffered between flushes (beyond: dropped, the kernel samples anyway).
const MAX_PENDING_SAMPLES: usize = 10_000;
/// Newest drop samples kept in the store.
const DROP_SAMPLES_KEPT: i64 = 100_000;

/// Until every sender is gone (the sensors' readers stopped).
pub async fn run(rx: &mut mpsc::Receiver<XdpEvent>, store: Store, findings: Arc<Findings>) {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(DROP_SAMPLE_FLUSH);
    loop {
        tokio::select! {
            ev = rx.recv() => {
                let Some(ev) = ev else { break };
                let ip = xdp_source(&ev).to_string();
                if ev.header.kind == EventKind::PortScan as u16 {
                    findings.report(port_scan(&ev, ip)).await;
                } else if samples.len() < MAX_PENDING_SAMPLES {
                    let reason = XdpReason::from_u32(ev.reason).map_or("unknown", XdpReason::as_str);
                    samples.push((ip, reason.to_string(), ev.proto, ev.dport));
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
        if let Err(e) = store.add_drop_samples(samples, DROP_SAMPLES_KEPT).await {
            tracing::error!(error = %e, "Storing the last drop samples failed.");
        }
    }
}

fn port_scan(ev: &XdpEvent, ip: String) -> NewFinding {
    NewFinding {
        check: "port_scan".into(),
        severity: Severity::Warning,
        message: format!("Port scan from {ip}: {} distinct ports", ev.distinct_ports),
        details: format!(
            "last port {} proto {}; interface index {}",
            ev.dport, ev.proto, ev.ifindex
        ),
        ip: Some(ip),
        ..Default::default()
    }
}
