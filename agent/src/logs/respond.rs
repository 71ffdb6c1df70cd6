// SPDX-License-Identifier: GPL-2.0-only
//! Auto-response: a triggered scenario becomes a finding and, when
//! `auto_response.enabled` and not `dry_run`, an XDP block with a TTL. Repeat
//! offenders get longer bans (doubling up to `max_ban_secs`). Infrastructure,
//! allowed, loopback and this host's own addresses are never blocked: the firewall
//! refuses them, and the finding says so.

use ipnet::IpNet;
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
    /// Swapped whole by a settings write (`auto_response` applies live).
    cfg: std::sync::RwLock<AutoResponse>,
    firewall: Arc<Firewall>,
    findings: Arc<Findings>,
    offences: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    /// Banned (or would-be banned) addresses per /24 or /64, for escalation.
    subnets: Mutex<HashMap<IpNet, Vec<(IpAddr, Instant)>>>,
    pub stats: ResponseStats,
    /// How ModSecurity rule hits count toward `modsec_blocks`, per rule id.
    pub waf_escalation: Arc<super::modsec_rules::WafEscalation>,
}

/// The source its blocks and threat events are recorded under.
pub const SOURCE: &str = "auto_response";

impl Responder {
    /// Does the auto-responder act at all (`auto_response.enabled`)?
    pub fn enabled(&self) -> bool {
        self.cfg().enabled
    }

    /// Does it only report what it would block (`auto_response.dry_run`)?
    pub fn dry_run(&self) -> bool {
        self.cfg().dry_run
    }
}

/// The /24 (IPv4) or /64 (IPv6) around an address.
pub fn subnet_of(ip: IpAddr) -> IpNet {
    let (v, len) = match ip {
        IpAddr::V4(_) => (ip, 24),
        IpAddr::V6(_) => (ip, 64),
    };
    IpNet::new(v, len)
        .map(|n| n.trunc())
        .unwrap_or_else(|_| IpNet::from(ip))
}

impl Responder {
    pub fn new(cfg: AutoResponse, firewall: Arc<Firewall>, findings: Arc<Findings>) -> Self {
        Self {
            cfg: std::sync::RwLock::new(cfg),
            firewall,
            findings,
            offences: Mutex::new(HashMap::new()),
            subnets: Mutex::new(HashMap::new()),
            stats: ResponseStats::default(),
            waf_escalation: Arc::default(),
        }
    }

    /// The auto-response settings in force.
    pub fn cfg(&self) -> AutoResponse {
        match self.cfg.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Apply new settings from the next trigger on (a settings write).
    pub fn set_cfg(&self, cfg: AutoResponse) {
        match self.cfg.write() {
            Ok(mut g) => *g = cfg,
            Err(p) => *p.into_inner() = cfg,
        }
    }

    pub fn store(&self) -> &crate::store::Store {
        self.findings.store()
    }

    /// The ban for the `n`-th offence: ban_secs × 2^(n-1), at most max_ban_secs.
    pub fn ban_for(&self, n: u32) -> u64 {
        let shift = n.saturating_sub(1).min(32);
        let c = self.cfg();
        c.ban_secs
            .saturating_mul(1u64 << shift)
            .min(c.max_ban_secs.max(c.ban_secs))
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

    /// Block `target` for `ttl` seconds, counting the outcome; `Err` says why not.
    async fn ban(&self, target: &str, reason: &str, ttl: u64) -> Result<(), String> {
        match self.firewall.block(target, reason, SOURCE, Some(ttl)).await {
            Ok(_) => {
                self.stats.blocked.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(FirewallError::Refused(why)) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                Err(format!("not blocked: {why}"))
            }
            Err(e) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(target, error = %e, "Auto-response block failed.");
                Err(format!("block failed: {e}"))
            }
        }
    }

    /// Count a ban toward its subnet; `Some(n)` when this one reaches the threshold
    /// (n distinct addresses in the window), once per window.
    fn subnet_count(&self, ip: IpAddr) -> Option<(IpNet, usize)> {
        let cfg = self.cfg();
        let threshold = cfg.subnet_threshold as usize;
        if threshold == 0 {
            return None;
        }
        let window = Duration::from_secs(cfg.subnet_window_secs);
        let net = subnet_of(ip);
        let mut g = match self.subnets.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let now = Instant::now();
        if g.len() >= MAX_OFFENDERS {
            g.retain(|_, v| v.iter().any(|(_, at)| now.duration_since(*at) < window));
            if g.len() >= MAX_OFFENDERS {
                g.clear();
            }
        }
        let v = g.entry(net).or_default();
        v.retain(|(_, at)| now.duration_since(*at) < window);
        if !v.iter().any(|(a, _)| *a == ip) {
            v.push((ip, now));
        }
        if v.len() >= threshold {
            let n = v.len();
            v.clear(); // the subnet ban covers them; start counting afresh
            Some((net, n))
        } else {
            None
        }
    }

    /// Many addresses of one subnet were banned: ban the subnet (or say so in dry run).
    async fn escalate(&self, t: &Trigger, net: IpNet, n: usize) {
        let cfg = self.cfg();
        let ttl = cfg.max_ban_secs.max(cfg.ban_secs);
        let action = if cfg.dry_run {
            self.stats.dry_run.fetch_add(1, Ordering::Relaxed);
            format!("dry run: would block {net} for {ttl} s")
        } else {
            let reason = format!("subnet escalation: {n} addresses banned ({})", t.check);
            match self.ban(&net.to_string(), &reason, ttl).await {
                Ok(()) => format!("blocked {net} in XDP for {ttl} s"),
                Err(why) => format!("{net} {why}"),
            }
        };
        let f = NewFinding {
            ip: Some(net.to_string()),
            details: format!(
                "{n} addresses of {net} were banned within {} s, the last for {}; {action}",
                cfg.subnet_window_secs, t.check
            ),
            key: Some(net.to_string()),
            ..NewFinding::new(
                "subnet_escalation",
                Severity::High,
                format!("Subnet {net}: {n} banned addresses"),
            )
        };
        self.findings.report(f).await;
    }

    /// A per-account scenario overflowed: many addresses, none to block; the finding
    /// is the response.
    pub async fn alert(&self, f: NewFinding) {
        self.stats.triggered.fetch_add(1, Ordering::Relaxed);
        self.findings.report(f).await;
    }

    /// Act on a trigger: the finding always, the block when enabled and not in dry run.
    pub async fn trigger(&self, t: Trigger) {
        let cfg = self.cfg();
        self.stats.triggered.fetch_add(1, Ordering::Relaxed);
        let n = self.offence(t.ip);
        let ttl = self.ban_for(n);
        let action = if !cfg.enabled {
            "auto_response disabled: not blocked".to_string()
        } else if cfg.dry_run {
            self.stats.dry_run.fetch_add(1, Ordering::Relaxed);
            format!("dry run: would block for {ttl} s (offence {n})")
        } else {
            let reason = format!("{}: {}", t.check, t.summary);
            match self.ban(&t.ip.to_string(), &reason, ttl).await {
                Ok(()) => format!("blocked in XDP for {ttl} s (offence {n})"),
                Err(why) => why,
            }
        };
        if let Err(e) = self
            .store()
            .add_threat_events(vec![(t.ip.to_string(), SOURCE, t.check, action.clone())])
            .await
        {
            tracing::warn!(error = %e, "Recording the trigger in the threat database failed.");
        }
        let banned = cfg.enabled && (cfg.dry_run || action.starts_with("blocked in XDP"));
        if banned {
            if let Some((net, n)) = self.subnet_count(t.ip) {
                self.escalate(&t, net, n).await;
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FwList, Store};

    async fn responder(dry_run: bool) -> (Responder, Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s.db"), 8).expect("store");
        let fw = Arc::new(Firewall::new(None, store.clone(), Vec::new()));
        let (tx, _) = tokio::sync::broadcast::channel(16);
        let findings = Arc::new(
            Findings::open(store.clone(), tx, 3600, None)
                .await
                .expect("findings"),
        );
        let cfg = AutoResponse {
            enabled: true,
            dry_run,
            ban_secs: 60,
            max_ban_secs: 3600,
            subnet_threshold: 3,
            subnet_window_secs: 3600,
        };
        (Responder::new(cfg, fw, findings), store, dir)
    }

    fn trigger(ip: &str) -> Trigger {
        Trigger {
            check: "ssh_bruteforce",
            ip: ip.parse().expect("ip"),
            events: 6,
            summary: "6 failed SSH logins".into(),
            sample: "line".into(),
            users: vec!["root".into()],
        }
    }

    #[tokio::test]
    async fn bans_escalate_and_many_addresses_of_one_subnet_ban_the_subnet() {
        let (r, store, _d) = responder(false).await;
        assert_eq!((r.ban_for(1), r.ban_for(2), r.ban_for(10)), (60, 120, 3600));
        for ip in ["203.0.113.5", "203.0.113.5", "203.0.113.6", "198.51.100.9"] {
            r.trigger(trigger(ip)).await;
        }
        let subnets =
            |v: Vec<api::model::BlockEntry>| v.into_iter().filter(|e| e.ip.contains('/')).count();
        assert_eq!(
            subnets(store.entries(FwList::Blocks).await.expect("entries")),
            0,
            "two addresses of the /24 so far"
        );
        r.trigger(trigger("203.0.113.7")).await;
        let blocks = store.entries(FwList::Blocks).await.expect("entries");
        let net = blocks
            .iter()
            .find(|e| e.ip == "203.0.113.0/24")
            .expect("the /24 is banned");
        assert!(net.reason.contains("3 addresses"), "{net:?}");
        assert!(net.expires_at.is_some(), "for max_ban_secs");
        let f = store.active_findings(100).await.expect("findings");
        assert!(f
            .iter()
            .any(|f| f.check == "subnet_escalation" && f.ip.as_deref() == Some("203.0.113.0/24")));
        assert_eq!(
            subnet_of("2001:db8:1:2:3::9".parse().expect("ip")).to_string(),
            "2001:db8:1:2::/64"
        );
    }

    #[tokio::test]
    async fn dry_run_reports_the_subnet_it_would_ban() {
        let (r, store, _d) = responder(true).await;
        for ip in ["203.0.113.5", "203.0.113.6", "203.0.113.7"] {
            r.trigger(trigger(ip)).await;
        }
        assert!(store
            .entries(FwList::Blocks)
            .await
            .expect("entries")
            .is_empty());
        let f = store.active_findings(100).await.expect("findings");
        let s = f
            .iter()
            .find(|f| f.check == "subnet_escalation")
            .expect("finding");
        assert!(
            s.details.contains("dry run: would block 203.0.113.0/24"),
            "{}",
            s.details
        );
    }
}
