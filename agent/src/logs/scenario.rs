// SPDX-License-Identifier: GPL-2.0-only
//! Scenarios over parsed events: leaky buckets per source IP (which trigger blocks)
//! and per target account (which trigger findings: many addresses, no one to block).
//!
//! | scenario | counts | key |
//! |---|---|---|
//! | `ssh_bruteforce` | failed SSH logins | IP |
//! | `mail_bruteforce` | failed SMTP AUTH (exim) and IMAP/POP3 (dovecot) logins | IP |
//! | `ftp_bruteforce` | failed pure-ftpd/proftpd logins | IP |
//! | `cpanel_bruteforce` | failed cPanel/WHM/webmail logins | IP |
//! | `wp_login_flood` | POSTs to wp-login.php | IP |
//! | `xmlrpc_abuse` | POSTs to xmlrpc.php | IP |
//! | `http_probing` | 400/401/403/404/405 answers for distinct paths | IP |
//! | `modsec_blocks` | requests ModSecurity denied | IP |
//! | `smtp_rcpt_scan` | recipients exim rejected | IP |
//! | `account_bruteforce` | failed logins to one account, from any address | service+user |
//! | `mail_relay_abuse` | recipients of mail sent by one local account | account |
//! | `slow_bruteforce` | failed logins of any service, leaking slowly | IP |
//! | `user_enumeration` | distinct user names in failed logins | IP |
//! | `smtp_abuse` | clients exim refused for abuse (protocol, policy, spam) | IP |
//! | `time_based_bruteforce` | failed logins at regular intervals, however slow | IP |
//! | `ssh_time_based_bruteforce` | failed SSH logins minutes apart, none succeeding | IP |

use std::{
    collections::{HashMap, VecDeque},
    hash::{Hash, Hasher},
    net::IpAddr,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use api::model::Severity;

use super::{
    bucket::{Buckets, Outcome, Spec},
    event::{Event, MailEvent, Service, Source, WafHit},
    stats::LogStats,
};
use crate::{
    config::{Logs, Scenario},
    logs::respond::Trigger,
    store::NewFinding,
};

/// User names remembered per source IP for a finding, at most.
const USERS_PER_IP: usize = 20;
/// Distinct paths remembered per IP for `http_probing`.
const PATHS_PER_IP: usize = 32;
/// Threat-database rows buffered between flushes, at most.
const MAX_PENDING: usize = 100_000;

/// What one batch of lines produced.
#[derive(Default)]
pub struct Outputs {
    /// Per-IP scenarios that overflowed: findings and, when enabled, blocks.
    pub triggers: Vec<Trigger>,
    /// Per-account scenarios that overflowed: findings only.
    pub alerts: Vec<NewFinding>,
    /// Threat-database rows: (ip, source, kind, detail).
    pub threat: Vec<(String, &'static str, &'static str, String)>,
    pub waf: Vec<WafHit>,
    pub mail: Vec<MailEvent>,
    /// Clients whose user agent claims a search-engine crawler (checked by DNS),
    /// with their requests in the batch.
    pub bots: Vec<(String, &'static str, u32)>,
}

struct IpScenario {
    check: &'static str,
    /// "failed SSH logins", for the finding's summary.
    what: &'static str,
    buckets: Buckets<IpAddr>,
    users: HashMap<IpAddr, Vec<String>>,
}

impl IpScenario {
    fn new(check: &'static str, what: &'static str, s: Scenario, max_keys: usize) -> Self {
        Self {
            check,
            what,
            buckets: Buckets::new(spec(s), max_keys),
            users: HashMap::new(),
        }
    }

    fn add(
        &mut self,
        ip: IpAddr,
        n: u32,
        user: Option<&str>,
        line: &str,
        now: Instant,
    ) -> Option<Trigger> {
        if self.users.len() >= self.buckets.spec().capacity as usize * 10_000 {
            self.users.clear();
        }
        if let Some(u) = user.filter(|u| !u.is_empty()) {
            let users = self.users.entry(ip).or_default();
            if users.len() < USERS_PER_IP && !users.iter().any(|x| x == u) {
                users.push(u.to_string());
            }
        }
        match self.buckets.add_n(ip, n, now) {
            Outcome::Overflow(events) => {
                let spec = self.buckets.spec();
                Some(Trigger {
                    check: self.check,
                    ip,
                    events,
                    summary: format!(
                        "{events} {} (bucket of {} leaking one per {} s)",
                        self.what,
                        spec.capacity,
                        spec.leak.as_secs()
                    ),
                    sample: super::grammar::bounded(line, 300),
                    users: self.users.remove(&ip).unwrap_or_default(),
                })
            }
            Outcome::Filling(_) | Outcome::Blackholed => None,
        }
    }
}

/// Each address's last tries and its quiet time after a trigger, bounded: the state
/// of the scenarios that look at intervals rather than fill a bucket.
struct Tries {
    keep: usize,
    /// Tries older than this no longer count (None: any age).
    window: Option<Duration>,
    quiet: Duration,
    max_keys: usize,
    times: HashMap<IpAddr, VecDeque<Instant>>,
    quiet_until: HashMap<IpAddr, Instant>,
}

impl Tries {
    fn new(keep: usize, window: Option<Duration>, quiet: Duration, max_keys: usize) -> Self {
        Self {
            keep,
            window,
            quiet,
            max_keys,
            times: HashMap::new(),
            quiet_until: HashMap::new(),
        }
    }

    /// Record a try. Once the address has `keep` tries (in the window), the
    /// intervals between them; nothing while it is quiet.
    fn push(&mut self, ip: IpAddr, now: Instant) -> Option<Vec<Duration>> {
        if self.quiet_until.get(&ip).is_some_and(|t| now < *t) {
            return None;
        }
        if self.times.len() >= self.max_keys {
            self.times.clear();
            self.quiet_until.retain(|_, t| now < *t);
        }
        let q = self.times.entry(ip).or_default();
        q.push_back(now);
        while q.len() > self.keep
            || self.window.is_some_and(|w| {
                q.front()
                    .is_some_and(|t| now.saturating_duration_since(*t) > w)
            })
        {
            q.pop_front();
        }
        (q.len() >= self.keep).then(|| {
            q.iter()
                .zip(q.iter().skip(1))
                .map(|(a, b)| b.saturating_duration_since(*a))
                .collect()
        })
    }

    /// A trigger: forget the address's tries and leave it alone for a while.
    fn fired(&mut self, ip: IpAddr, now: Instant) {
        self.times.remove(&ip);
        self.quiet_until.insert(ip, now + self.quiet);
    }

    fn forget(&mut self, ip: IpAddr) {
        self.times.remove(&ip);
    }
}

/// `time_based_bruteforce`: tries at regular intervals (coefficient of variation at
/// most 0.25) whose mean is at least the configured interval trigger, however slow
/// they are.
struct Paced {
    tries: Tries,
    min_mean: Duration,
}

impl Paced {
    fn new(s: Scenario, max_keys: usize) -> Self {
        Self {
            tries: Tries::new(
                (s.capacity as usize).clamp(3, 1000),
                None,
                Duration::from_secs(s.blackhole_secs),
                max_keys,
            ),
            min_mean: Duration::from_secs(s.leak_secs),
        }
    }

    fn add(&mut self, ip: IpAddr, line: &str, now: Instant) -> Option<Trigger> {
        let gaps: Vec<f64> = self
            .tries
            .push(ip, now)?
            .iter()
            .map(Duration::as_secs_f64)
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        if mean < self.min_mean.as_secs_f64().max(0.001) {
            return None;
        }
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        if var.sqrt() / mean > 0.25 {
            return None;
        }
        self.tries.fired(ip, now);
        Some(Trigger {
            check: "time_based_bruteforce",
            ip,
            events: self.tries.keep as u32,
            summary: format!(
                "{} failed logins {:.0} s apart on average, at regular intervals",
                self.tries.keep, mean
            ),
            sample: super::grammar::bounded(line, 300),
            users: Vec::new(),
        })
    }
}

/// `ssh_time_based_bruteforce` (CrowdSec's ssh-time-based-bf): an address's last
/// failed SSH logins within the window; `tries` of them whose median interval is at
/// least the configured one trigger. A successful login from the address forgets
/// its failures (a person who mistyped, then got in).
struct Spaced {
    tries: Tries,
    min_median: Duration,
}

impl Spaced {
    fn new(s: Scenario, max_keys: usize) -> Self {
        Self {
            tries: Tries::new(
                (s.capacity as usize).clamp(2, 100),
                Some(Duration::from_secs(s.window_secs.max(s.leak_secs))),
                Duration::from_secs(s.blackhole_secs),
                max_keys,
            ),
            min_median: Duration::from_secs(s.leak_secs),
        }
    }

    fn success(&mut self, ip: IpAddr) {
        self.tries.forget(ip);
    }

    fn fail(&mut self, ip: IpAddr, line: &str, now: Instant) -> Option<Trigger> {
        let mut gaps = self.tries.push(ip, now)?;
        gaps.sort();
        // The median; of an even count, the mean of the two middle ones.
        let n = gaps.len();
        let median = if n % 2 == 1 {
            gaps[n / 2]
        } else {
            (gaps[n / 2 - 1] + gaps[n / 2]) / 2
        };
        if median < self.min_median {
            return None;
        }
        self.tries.fired(ip, now);
        Some(Trigger {
            check: "ssh_time_based_bruteforce",
            ip,
            events: self.tries.keep as u32,
            summary: format!(
                "{} failed SSH logins {} s apart (median), none succeeding",
                self.tries.keep,
                median.as_secs()
            ),
            sample: super::grammar::bounded(line, 300),
            users: Vec::new(),
        })
    }
}

fn spec(s: Scenario) -> Spec {
    Spec {
        capacity: s.capacity,
        leak: Duration::from_secs(s.leak_secs),
        blackhole: Duration::from_secs(s.blackhole_secs),
    }
}

fn path_hash(p: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    p.hash(&mut h);
    h.finish()
}

/// Every scenario, with its buckets.
pub struct Scenarios {
    ssh: IpScenario,
    mail: IpScenario,
    ftp: IpScenario,
    cpanel: IpScenario,
    wp_login: IpScenario,
    xmlrpc: IpScenario,
    probing: IpScenario,
    modsec: IpScenario,
    rcpt: IpScenario,
    slow: IpScenario,
    users: IpScenario,
    smtp: IpScenario,
    /// User names already counted per IP for `user_enumeration` (hashes, bounded).
    tried_users: HashMap<IpAddr, VecDeque<u64>>,
    paced: Paced,
    spaced: Spaced,
    accounts: Buckets<(Service, String)>,
    account_ips: HashMap<(Service, String), Vec<IpAddr>>,
    volume: Buckets<String>,
    paths: HashMap<IpAddr, VecDeque<u64>>,
    max_keys: usize,
    waf: std::sync::Arc<super::modsec_rules::WafEscalation>,
}

impl Scenarios {
    /// Count ModSecurity denials by these per-rule overrides.
    pub fn with_escalation(
        mut self,
        waf: std::sync::Arc<super::modsec_rules::WafEscalation>,
    ) -> Self {
        self.waf = waf;
        self
    }

    pub fn new(cfg: &Logs) -> Self {
        let s = &cfg.scenarios;
        let k = cfg.max_keys;
        Self {
            ssh: IpScenario::new("ssh_bruteforce", "failed SSH logins", s.ssh_bruteforce, k),
            mail: IpScenario::new(
                "mail_bruteforce",
                "failed mail logins",
                s.mail_bruteforce,
                k,
            ),
            ftp: IpScenario::new("ftp_bruteforce", "failed FTP logins", s.ftp_bruteforce, k),
            cpanel: IpScenario::new(
                "cpanel_bruteforce",
                "failed cPanel/WHM logins",
                s.cpanel_bruteforce,
                k,
            ),
            wp_login: IpScenario::new(
                "wp_login_flood",
                "POSTs to wp-login.php",
                s.wp_login_flood,
                k,
            ),
            xmlrpc: IpScenario::new("xmlrpc_abuse", "POSTs to xmlrpc.php", s.xmlrpc_abuse, k),
            probing: IpScenario::new(
                "http_probing",
                "error answers for distinct paths",
                s.http_probing,
                k,
            ),
            modsec: IpScenario::new(
                "modsec_blocks",
                "requests denied by ModSecurity",
                s.modsec_blocks,
                k,
            ),
            rcpt: IpScenario::new(
                "smtp_rcpt_scan",
                "rejected SMTP recipients",
                s.smtp_rcpt_scan,
                k,
            ),
            slow: IpScenario::new(
                "slow_bruteforce",
                "failed logins, slowly",
                s.slow_bruteforce,
                k,
            ),
            users: IpScenario::new(
                "user_enumeration",
                "distinct user names tried",
                s.user_enumeration,
                k,
            ),
            smtp: IpScenario::new(
                "smtp_abuse",
                "SMTP sessions refused for abuse",
                s.smtp_abuse,
                k,
            ),
            tried_users: HashMap::new(),
            paced: Paced::new(s.time_based_bruteforce, k),
            spaced: Spaced::new(s.ssh_time_based_bruteforce, k),
            accounts: Buckets::new(spec(s.account_bruteforce), k),
            account_ips: HashMap::new(),
            volume: Buckets::new(spec(s.mail_relay_abuse), k),
            paths: HashMap::new(),
            max_keys: k,
            waf: std::sync::Arc::default(),
        }
    }

    /// Parse-level stats plus one event's scenarios.
    pub fn event(
        &mut self,
        source: Source,
        ev: Event,
        line: &str,
        stats: &LogStats,
        now: Instant,
        out: &mut Outputs,
    ) {
        let mut trigger = None;
        match ev {
            Event::Auth {
                service,
                ip,
                user,
                ok: false,
                attempts,
            } if attempts > 0 => {
                stats
                    .failures
                    .fetch_add(u64::from(attempts), Ordering::Relaxed);
                if out.threat.len() < MAX_PENDING {
                    out.threat.push((
                        ip.to_string(),
                        source.name(),
                        "auth_failure",
                        format!("{} user {}", service.name(), user.as_deref().unwrap_or("")),
                    ));
                }
                let sc = match service {
                    Service::Ssh => &mut self.ssh,
                    Service::Mail => &mut self.mail,
                    Service::Ftp => &mut self.ftp,
                    Service::Cpanel => &mut self.cpanel,
                };
                trigger = sc.add(ip, attempts, user.as_deref(), line, now);
                // The slower and wider buckets see the same failures; one trigger
                // per line is enough (the first blocks the address).
                let slow = self.slow.add(ip, attempts, user.as_deref(), line, now);
                let enumeration = self.user_enumeration(ip, user.as_deref(), line, now);
                let paced = self.paced.add(ip, line, now);
                let spaced = (service == Service::Ssh)
                    .then(|| self.spaced.fail(ip, line, now))
                    .flatten();
                trigger = trigger.or(slow).or(enumeration).or(paced).or(spaced);
                if let Some(u) = user.filter(|u| !u.is_empty()) {
                    self.account(service, u, ip, attempts, line, now, out);
                }
            }
            Event::Auth {
                service: Service::Ssh,
                ip,
                ok: true,
                ..
            } => self.spaced.success(ip),
            Event::Auth { .. } => {}
            Event::Web(w) => {
                if let Some(c) = w.user_agent.as_deref().and_then(super::crawlers::claimed) {
                    let ip = w.ip.to_string();
                    let room = out.bots.len() < MAX_PENDING;
                    match out
                        .bots
                        .iter_mut()
                        .find(|(i, b, _)| *i == ip && *b == c.name)
                    {
                        Some(seen) => seen.2 += 1,
                        None if room => out.bots.push((ip, c.name, 1)),
                        None => {}
                    }
                }
                let post = w.method == "POST";
                let file = w.path.rsplit('/').next().unwrap_or("");
                if post && file == "wp-login.php" {
                    trigger = self.wp_login.add(w.ip, 1, None, line, now);
                } else if post && file == "xmlrpc.php" {
                    trigger = self.xmlrpc.add(w.ip, 1, None, line, now);
                } else if matches!(w.status, 400 | 401 | 403 | 404 | 405) {
                    if self.paths.len() >= self.max_keys {
                        self.paths.clear();
                    }
                    let seen = self.paths.entry(w.ip).or_default();
                    let h = path_hash(&w.path);
                    if !seen.contains(&h) {
                        if seen.len() >= PATHS_PER_IP {
                            seen.pop_front();
                        }
                        seen.push_back(h);
                        trigger = self.probing.add(w.ip, 1, Some(&w.path), line, now);
                        if trigger.is_some() {
                            self.paths.remove(&w.ip);
                        }
                    }
                }
            }
            Event::Waf(h) => {
                if h.denied {
                    let ids: Vec<&str> = h.rules.iter().map(|r| r.id.as_str()).collect();
                    if out.threat.len() < MAX_PENDING {
                        out.threat.push((
                            h.ip.to_string(),
                            source.name(),
                            "waf_block",
                            format!("rules {} on {}{}", ids.join(","), h.host, h.uri),
                        ));
                    }
                    trigger = match self.waf.of(ids.iter().copied()) {
                        super::modsec_rules::Escalation::Ignore => None,
                        super::modsec_rules::Escalation::Count => {
                            self.modsec.add(h.ip, 1, None, line, now)
                        }
                        super::modsec_rules::Escalation::Block => {
                            let fill = self.modsec.buckets.spec().capacity.saturating_add(1);
                            self.modsec.add(h.ip, fill, None, line, now)
                        }
                    };
                }
                if out.waf.len() < MAX_PENDING {
                    out.waf.push(h);
                }
            }
            Event::Mail(m) => {
                match &m {
                    MailEvent::RcptRejected { ip, rcpt } => {
                        if out.threat.len() < MAX_PENDING {
                            out.threat.push((
                                ip.to_string(),
                                source.name(),
                                "rcpt_rejected",
                                format!("to {rcpt}"),
                            ));
                        }
                        trigger = self.rcpt.add(*ip, 1, Some(rcpt), line, now);
                    }
                    MailEvent::Outbound {
                        account,
                        recipients,
                        ..
                    } => {
                        if let Outcome::Overflow(n) =
                            self.volume.add_n(account.clone(), *recipients, now)
                        {
                            let sp = self.volume.spec();
                            out.alerts.push(NewFinding {
                                account: Some(account.clone()),
                                mailbox: account.contains('@').then(|| account.clone()),
                                details: format!(
                                    "{n} recipients from {account} (bucket of {} leaking one per {} s); last line: {}",
                                    sp.capacity,
                                    sp.leak.as_secs(),
                                    super::grammar::bounded(line, 300)
                                ),
                                key: Some(account.clone()),
                                ..NewFinding::new(
                                    "mail_relay_abuse",
                                    Severity::High,
                                    format!("Outbound mail flood from {account}: {n} recipients"),
                                )
                            });
                        }
                    }
                    MailEvent::Rejected { ip, why } => {
                        if out.threat.len() < MAX_PENDING {
                            out.threat.push((
                                ip.to_string(),
                                source.name(),
                                "smtp_rejected",
                                (*why).to_string(),
                            ));
                        }
                        trigger = self.smtp.add(*ip, 1, None, line, now);
                    }
                    MailEvent::Deferred { .. } | MailEvent::Script { .. } => {}
                }
                if out.mail.len() < MAX_PENDING {
                    out.mail.push(m);
                }
            }
        }
        if let Some(t) = trigger {
            stats.triggers.fetch_add(1, Ordering::Relaxed);
            out.triggers.push(t);
        }
    }

    /// `user_enumeration`: a user name not yet tried from `ip` adds one.
    fn user_enumeration(
        &mut self,
        ip: IpAddr,
        user: Option<&str>,
        line: &str,
        now: Instant,
    ) -> Option<Trigger> {
        let user = user.filter(|u| !u.is_empty())?;
        if self.tried_users.len() >= self.max_keys {
            self.tried_users.clear();
        }
        let seen = self.tried_users.entry(ip).or_default();
        let h = path_hash(user);
        if seen.contains(&h) {
            return None;
        }
        if seen.len() >= PATHS_PER_IP {
            seen.pop_front();
        }
        seen.push_back(h);
        let t = self.users.add(ip, 1, Some(user), line, now);
        if t.is_some() {
            self.tried_users.remove(&ip);
        }
        t
    }

    #[allow(clippy::too_many_arguments)]
    fn account(
        &mut self,
        service: Service,
        user: String,
        ip: IpAddr,
        n: u32,
        line: &str,
        now: Instant,
        out: &mut Outputs,
    ) {
        let key = (service, user);
        if self.account_ips.len() >= self.max_keys {
            self.account_ips.clear();
        }
        let ips = self.account_ips.entry(key.clone()).or_default();
        if ips.len() < USERS_PER_IP && !ips.contains(&ip) {
            ips.push(ip);
        }
        if let Outcome::Overflow(events) = self.accounts.add_n(key.clone(), n, now) {
            let ips = self.account_ips.remove(&key).unwrap_or_default();
            let (service, user) = key;
            // One address is the per-IP scenario's business; this one is for spreads.
            if ips.len() < 2 {
                return;
            }
            let sp = self.accounts.spec();
            let list: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
            out.alerts.push(NewFinding {
                account: Some(user.clone()),
                mailbox: (service == Service::Mail && user.contains('@')).then(|| user.clone()),
                details: format!(
                    "{events} failed {} logins to {user} from {} addresses: {} (bucket of {} leaking one per {} s); last line: {}",
                    service.name(),
                    list.len(),
                    list.join(", "),
                    sp.capacity,
                    sp.leak.as_secs(),
                    super::grammar::bounded(line, 300)
                ),
                key: Some(format!("{}|{user}", service.name())),
                ..NewFinding::new(
                    "account_bruteforce",
                    Severity::High,
                    format!("Distributed {} brute force on {user}: {events} failures from {} addresses", service.name(), list.len()),
                )
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::event::Parser;

    fn cfg() -> Logs {
        crate::config::Config::embedded()
            .expect("default config")
            .logs
    }

    fn run(source: Source, lines: &[String], sc: &mut Scenarios, now: Instant) -> Outputs {
        let stats = LogStats::default();
        let mut p = Parser::new(source);
        let mut out = Outputs::default();
        for l in lines {
            if let Ok(Some(ev)) = p.feed(l) {
                sc.event(source, ev, l, &stats, now, &mut out);
            }
        }
        out
    }

    #[test]
    fn each_login_scenario_triggers_for_its_service() {
        let t0 = Instant::now();
        type Case = (Source, &'static str, fn(usize) -> String);
        let cases: [Case; 4] = [
            (Source::Dovecot, "mail_bruteforce", |i| {
                format!("Nov 23 15:00:01 m dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<u{i}@example.com>, method=PLAIN, rip=203.0.113.5, lip=192.0.2.2")
            }),
            (Source::Exim, "mail_bruteforce", |i| {
                format!("2026-11-23 15:00:01 dovecot_login authenticator failed for (x) [203.0.113.5]:1: 535 Incorrect authentication data (set_id=u{i})")
            }),
            (Source::Ftp, "ftp_bruteforce", |i| {
                format!("Nov 23 15:00:01 w pure-ftpd: (?@203.0.113.5) [WARNING] Authentication failed for user [u{i}]")
            }),
            (Source::Cpanel, "cpanel_bruteforce", |i| {
                format!("203.0.113.5 - u{i} [11/23/2026:15:00:01 -0000] \"POST /login/ HTTP/1.1\" FAILED LOGIN cpaneld: user password incorrect")
            }),
        ];
        for (source, check, line) in cases {
            let mut sc = Scenarios::new(&cfg());
            let lines: Vec<String> = (0..6).map(line).collect();
            let out = run(source, &lines[..5], &mut sc, t0);
            assert!(out.triggers.is_empty(), "{check}: five is the capacity");
            assert_eq!(out.threat.len(), 5);
            let out = run(source, &lines[5..], &mut sc, t0);
            assert_eq!(out.triggers.len(), 1, "{check}");
            assert_eq!(out.triggers[0].check, check);
            assert_eq!(out.triggers[0].users.len(), 6, "{check}: the names tried");
        }
    }

    fn ssh_failure(user: &str, ip: &str) -> String {
        format!("Nov 23 15:00:01 w sshd[1]: Failed password for invalid user {user} from {ip} port 1 ssh2")
    }

    fn ssh_success(user: &str, ip: &str) -> String {
        format!("Nov 23 15:00:02 w sshd[2]: Accepted password for {user} from {ip} port 2 ssh2")
    }

    /// Failed logins at these minutes from one address, a success at the minutes in
    /// `ok`; which try (by index) triggered what.
    fn spaced(fails: &[u64], ok: &[u64]) -> Vec<(usize, &'static str)> {
        let t0 = Instant::now();
        let mut sc = Scenarios::new(&cfg());
        let mut fired = Vec::new();
        let mut events: Vec<(u64, bool)> = fails.iter().map(|m| (*m, false)).collect();
        events.extend(ok.iter().map(|m| (*m, true)));
        events.sort();
        let mut i = 0;
        for (m, good) in events {
            let line = if good {
                ssh_success("deploy", "198.51.100.7")
            } else {
                ssh_failure("deploy", "198.51.100.7")
            };
            let out = run(
                Source::Sshd,
                &[line],
                &mut sc,
                t0 + Duration::from_secs(m * 60),
            );
            if !good {
                fired.extend(out.triggers.into_iter().map(|t| (i, t.check)));
                i += 1;
            }
        }
        fired
    }

    /// CrowdSec's ssh-time-based-bf with the hub's values (3 tries, median interval
    /// over 5 min, a 2 h window, cancelled by a success).
    #[test]
    fn three_failures_minutes_apart_with_no_success_are_the_hubs_time_based_attack() {
        assert_eq!(spaced(&[0, 6, 12], &[]), [(2, "ssh_time_based_bruteforce")]);
        // Close together: a mistyped password, not this scenario (nor a bucket's).
        assert!(spaced(&[0, 1, 2], &[]).is_empty());
        // A success between them forgets the failures.
        assert!(spaced(&[0, 10, 25], &[11]).is_empty());
        // Further apart than the window: the oldest no longer counts.
        assert!(spaced(&[0, 90, 180], &[]).is_empty());
    }

    #[test]
    fn slow_brute_force_is_caught_under_the_fast_bucket() {
        let t0 = Instant::now();
        let mut sc = Scenarios::new(&cfg());
        // A try every 20 s on average (5 s, then 35 s: irregular, so not a paced
        // bot): the fast bucket (5, one per 10 s) never fills.
        let mut fired = Vec::new();
        for i in 0..30u64 {
            let at = 20 * (i / 2) * 2 + if i % 2 == 1 { 5 } else { 0 };
            let out = run(
                Source::Sshd,
                &[ssh_failure("root", "203.0.113.5")],
                &mut sc,
                t0 + Duration::from_secs(at),
            );
            fired.extend(out.triggers.into_iter().map(|t| (i, t.check)));
        }
        // 3 a minute against one leaked a minute: the 10 of capacity are over
        // after 15 tries (five minutes); then the address is blackholed.
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].1, "slow_bruteforce");
        assert!((14..=17).contains(&fired[0].0), "{fired:?}");
    }

    #[test]
    fn a_bot_pacing_itself_is_caught_however_slow() {
        let t0 = Instant::now();
        // One try every three minutes (give or take 10 s): under every bucket, and
        // under the hub's spaced scenario (its median is five minutes).
        let mut sc = Scenarios::new(&cfg());
        let mut fired = Vec::new();
        for i in 0..12u64 {
            let jitter = [0, 7, 3, 10, 1][i as usize % 5];
            let at = t0 + Duration::from_secs(180 * i + jitter);
            let out = run(
                Source::Sshd,
                &[ssh_failure("root", "203.0.113.9")],
                &mut sc,
                at,
            );
            fired.extend(out.triggers.into_iter().map(|t| (i, t.check)));
        }
        assert_eq!(fired, [(9, "time_based_bruteforce")]);
        // The same count at irregular times, by a person who mistypes now and then
        // and then gets in, is not (neither this scenario nor the hub's spaced one).
        let mut sc = Scenarios::new(&cfg());
        let mut at = 0u64;
        for i in 0..12u64 {
            at += [30, 900, 60, 2400, 120][i as usize % 5];
            let out = run(
                Source::Sshd,
                &[
                    ssh_failure("root", "203.0.113.10"),
                    ssh_success("root", "203.0.113.10"),
                ],
                &mut sc,
                t0 + Duration::from_secs(at),
            );
            assert!(
                out.triggers.is_empty(),
                "try {i}: {:?}",
                out.triggers.first().map(|t| t.check)
            );
        }
    }

    #[test]
    fn many_user_names_from_one_address_are_an_enumeration() {
        let t0 = Instant::now();
        let lines = |distinct: bool| -> Vec<(u64, String)> {
            (0..8u64)
                .map(|i| {
                    let user = if distinct {
                        format!("u{i}")
                    } else {
                        "u".into()
                    };
                    (i * 11, ssh_failure(&user, "203.0.113.6"))
                })
                .collect()
        };
        for (distinct, want) in [(true, Some("user_enumeration")), (false, None)] {
            let mut sc = Scenarios::new(&cfg());
            let mut fired = None;
            for (at, l) in lines(distinct) {
                let out = run(Source::Sshd, &[l], &mut sc, t0 + Duration::from_secs(at));
                fired = fired.or(out.triggers.first().map(|t| t.check));
            }
            assert_eq!(fired, want, "distinct names: {distinct}");
        }
    }

    #[test]
    fn smtp_abuse_and_mapped_addresses_trigger_for_the_ipv4_client() {
        let mut sc = Scenarios::new(&cfg());
        let lines: Vec<String> = (0..6)
            .map(|i| format!("2026-11-23 15:00:0{i} SMTP call from [::ffff:203.0.113.7]:{i} dropped: too many nonmail commands (last was \"RSET\")"))
            .collect();
        let out = run(Source::Exim, &lines, &mut sc, Instant::now());
        assert_eq!(out.triggers.len(), 1);
        assert_eq!(
            (out.triggers[0].check, out.triggers[0].ip.to_string()),
            ("smtp_abuse", "203.0.113.7".to_string())
        );
        let mut sc = Scenarios::new(&cfg());
        let out = run(Source::Dovecot, &["Nov 23 15:00:01 m dovecot: imap-login: Disconnected (auth failed, 6 attempts in 20 secs): user=<a@b.c>, method=PLAIN, rip=::ffff:203.0.113.8, lip=192.0.2.2".into()], &mut sc, Instant::now());
        assert_eq!(
            out.triggers[0].ip,
            "203.0.113.8".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn dovecot_attempt_counts_fill_the_bucket_at_once() {
        let mut sc = Scenarios::new(&cfg());
        let out = run(Source::Dovecot, &["Nov 23 15:00:01 m dovecot: imap-login: Disconnected (auth failed, 6 attempts in 20 secs): user=<a@b.c>, method=PLAIN, rip=203.0.113.5, lip=192.0.2.2".into()], &mut sc, Instant::now());
        assert_eq!(out.triggers.len(), 1);
        assert_eq!(out.triggers[0].events, 6);
    }

    #[test]
    fn web_scenarios_wp_login_xmlrpc_and_distinct_path_probing() {
        let t0 = Instant::now();
        let line = |m: &str, p: &str, st: u16| {
            format!("203.0.113.5 - - [23/Nov/2026:15:00:01 +0000] \"{m} {p} HTTP/1.1\" {st} 1 \"-\" \"-\"")
        };
        let mut sc = Scenarios::new(&cfg());
        let wp: Vec<String> = (0..6)
            .map(|_| line("POST", "/blog/wp-login.php", 200))
            .collect();
        let out = run(Source::Access, &wp, &mut sc, t0);
        assert_eq!(
            out.triggers.iter().map(|t| t.check).collect::<Vec<_>>(),
            ["wp_login_flood"]
        );
        let gets: Vec<String> = (0..20).map(|_| line("GET", "/wp-login.php", 200)).collect();
        assert!(
            run(Source::Access, &gets, &mut sc, t0).triggers.is_empty(),
            "GETs of the form are not a flood"
        );
        // The same missing path again and again is a broken link, not a probe.
        let same: Vec<String> = (0..30).map(|_| line("GET", "/favicon.ico", 404)).collect();
        assert!(run(Source::Access, &same, &mut sc, t0).triggers.is_empty());
        let probe: Vec<String> = (0..11)
            .map(|i| line("GET", &format!("/.env{i}"), 404))
            .collect();
        let out = run(Source::Access, &probe, &mut sc, t0);
        assert_eq!(
            out.triggers.iter().map(|t| t.check).collect::<Vec<_>>(),
            ["http_probing"]
        );
        assert!(out.threat.is_empty(), "web hits are not stored one by one");
    }

    #[test]
    fn account_spread_across_addresses_is_a_finding_not_a_block() {
        let t0 = Instant::now();
        let mut sc = Scenarios::new(&cfg());
        let cap = cfg().scenarios.account_bruteforce.capacity as usize;
        let lines: Vec<String> = (0..=cap)
            .map(|i| format!("Nov 23 15:00:01 m dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<ceo@example.com>, method=PLAIN, rip=198.51.100.{}, lip=192.0.2.2", i % 200 + 1))
            .collect();
        let out = run(Source::Dovecot, &lines, &mut sc, t0);
        assert!(out.triggers.is_empty(), "no single address went over");
        assert_eq!(out.alerts.len(), 1);
        assert_eq!(out.alerts[0].check, "account_bruteforce");
        assert_eq!(out.alerts[0].mailbox.as_deref(), Some("ceo@example.com"));
    }

    #[test]
    fn modsec_denials_rcpt_scans_and_outbound_volume() {
        let t0 = Instant::now();
        let mut sc = Scenarios::new(&cfg());
        let deny = |i: usize| {
            format!("[Mon Nov 23 15:00:01 2026] [security2:error] [client 203.0.113.9] ModSecurity: Access denied with code 403 (phase 2). [id \"94{i}\"] [uri \"/x\"]")
        };
        let warn = "[Mon Nov 23 15:00:01 2026] [security2:error] [client 203.0.113.9] ModSecurity: Warning. [id \"1\"]".to_string();
        let cap = cfg().scenarios.modsec_blocks.capacity as usize;
        let mut lines: Vec<String> = (0..=cap).map(deny).collect();
        lines.extend(std::iter::repeat_n(warn, 50));
        let out = run(Source::Modsec, &lines, &mut sc, t0);
        assert_eq!(
            out.triggers.iter().map(|t| t.check).collect::<Vec<_>>(),
            ["modsec_blocks"]
        );
        assert_eq!(out.waf.len(), cap + 51, "warnings are stored, not counted");

        let cap = cfg().scenarios.smtp_rcpt_scan.capacity as usize;
        let rc: Vec<String> = (0..=cap).map(|i| format!("2026-11-23 15:00:01 H=(x) [203.0.113.7]:1 F=<a@b> rejected RCPT <u{i}@example.com>: unknown user")).collect();
        let out = run(Source::Exim, &rc, &mut sc, t0);
        assert_eq!(
            out.triggers.iter().map(|t| t.check).collect::<Vec<_>>(),
            ["smtp_rcpt_scan"]
        );

        let cap = cfg().scenarios.mail_relay_abuse.capacity;
        let big = format!(
            "2026-11-23 15:00:01 1tAbcD-000125-Ab <= x@h U=shop P=local S=1 for {}",
            (0..=cap)
                .map(|i| format!("r{i}@example.net"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let out = run(Source::Exim, &[big], &mut sc, t0);
        assert_eq!(
            out.alerts
                .iter()
                .map(|a| a.check.as_str())
                .collect::<Vec<_>>(),
            ["mail_relay_abuse"]
        );
        assert_eq!(out.alerts[0].account.as_deref(), Some("shop"));
        assert_eq!(out.mail.len(), 1);
    }
}
