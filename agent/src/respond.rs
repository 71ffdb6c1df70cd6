// SPDX-License-Identifier: GPL-2.0-only
//! Auto-response: a triggered scenario becomes a finding and, when
//! `auto_response.enabled` and not `dry_run`, an XDP block with a TTL. Repeat
//! offenders get longer bans (doubling up to `max_ban_secs`). Infrastructure,
//! allowed, loopback and this host's own addresses are never blocked: the firewall
//! refuses them, and the finding says so.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use api::model::Severity;

use crate::{
    config::AutoResponse,
    findings::Findings,
    firewall::{Firewall, FirewallError},
    store::NewFinding,
};

/// Offences remembered per IP (for escalation), at most.
const MAX_OFFENDERS: usize = 100_000;
/// An offence older than this does not escalate the next ban.
const OFFENCE_MEMORY: Duration = Duration::from_secs(7 * 86400);

#[derive(Debug, Default)]
pub struct ResponseStats {
    pub triggered: AtomicU64,
    pub blocked: AtomicU64,
    pub dry_run: AtomicU64,
    pub refused: AtomicU64,
    pub errors: AtomicU64,
}

/// A scenario that overflowed for one source address.
#[derive(Clone, Debug)]
pub struct Trigger {
    /// The finding's check: `ssh_bruteforce`, ...
    pub check: &'static str,
    pub ip: IpAddr,
    pub events: u32,
    pub summary: String,
    /// The last log line that counted (bounded).
    pub sample: String,
    pub users: Vec<String>,
}

pub struct Responder {
    cfg: AutoResponse,
    firewall: Arc<Firewall>,
    findings: Arc<Findings>,
    offences: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    pub stats: ResponseStats,
}

impl Responder {
    pub fn new(cfg: AutoResponse, firewall: Arc<Firewall>, findings: Arc<Findings>) -> Self {
        Self {
            cfg,
            firewall,
            findings,
            offences: Mutex::new(HashMap::new()),
            stats: ResponseStats::default(),
        }
    }

    pub fn store(&self) -> &crate::store::Store {
        self.findings.store()
    }

    /// The ban for the `n`-th offence: ban_secs × 2^(n-1), at most max_ban_secs.
    pub fn ban_for(&self, n: u32) -> u64 {
        let shift = n.saturating_sub(1).min(32);
        self.cfg
            .ban_secs
            .saturating_mul(1u64 << shift)
            .min(self.cfg.max_ban_secs.max(self.cfg.ban_secs))
    }

    fn offence(&self, ip: IpAddr) -> u32 {
        let mut g = match self.offences.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let now = Instant::now();
        if g.len() >= MAX_OFFENDERS {
            g.retain(|_, (_, at)| now.duration_since(*at) < OFFENCE_MEMORY);
            if g.len() >= MAX_OFFENDERS {
                g.clear();
            }
        }
        let e = g.entry(ip).or_insert((0, now));
        if now.duration_since(e.1) >= OFFENCE_MEMORY {
            e.0 = 0;
        }
        e.0 += 1;
        e.1 = now;
        e.0
    }

    /// A per-account scenario overflowed: many addresses, none to block; the finding
    /// is the response.
    pub async fn alert(&self, f: NewFinding) {
        self.stats.triggered.fetch_add(1, Ordering::Relaxed);
        self.findings.report(f).await;
    }

    /// Act on a trigger: the finding always, the block when enabled and not in dry run.
    pub async fn trigger(&self, t: Trigger) {
        self.stats.triggered.fetch_add(1, Ordering::Relaxed);
        let n = self.offence(t.ip);
        let ttl = self.ban_for(n);
        let action = if !self.cfg.enabled {
            "auto_response disabled: not blocked".to_string()
        } else if self.cfg.dry_run {
            self.stats.dry_run.fetch_add(1, Ordering::Relaxed);
            format!("dry run: would block for {ttl} s (offence {n})")
        } else {
            let reason = format!("{}: {}", t.check, t.summary);
            match self
                .firewall
                .block(&t.ip.to_string(), &reason, "auto_response", Some(ttl))
                .await
            {
                Ok(_) => {
                    self.stats.blocked.fetch_add(1, Ordering::Relaxed);
                    format!("blocked in XDP for {ttl} s (offence {n})")
                }
                Err(FirewallError::Refused(why)) => {
                    self.stats.refused.fetch_add(1, Ordering::Relaxed);
                    format!("not blocked: {why}")
                }
                Err(e) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(ip = %t.ip, error = %e, "Auto-response block failed.");
                    format!("block failed: {e}")
                }
            }
        };
        if let Err(e) = self
            .store()
            .add_threat_events(vec![(
                t.ip.to_string(),
                "auto_response",
                t.check,
                action.clone(),
            )])
            .await
        {
            tracing::warn!(error = %e, "Recording the trigger in the threat database failed.");
        }
        let mut users = t.users.clone();
        users.sort();
        users.dedup();
        users.truncate(20);
        let f = NewFinding {
            ip: Some(t.ip.to_string()),
            details: format!(
                "{}; users tried: {}; {action}; last line: {}",
                t.summary,
                if users.is_empty() {
                    "unknown".into()
                } else {
                    users.join(", ")
                },
                t.sample
            ),
            // Each ban is its own finding (a repeat offence is news).
            key: Some(format!("{}|{n}", t.ip)),
            ..NewFinding::new(
                t.check,
                Severity::High,
                format!("{} from {}: {} events", t.check, t.ip, t.events),
            )
        };
        self.findings.report(f).await;
    }
}
