// SPDX-License-Identifier: GPL-2.0-only
//! Configuration: `/etc/rampart/rampart.yaml` plus `conf.d/*.yaml` drop-ins merged in
//! name order (maps merge, scalars replace, lists append), or `--config FILE` (with its
//! own sibling `conf.d/`), or the embedded default. Everything is validated before any
//! kernel program is loaded or any port bound.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
};

use ipnet::IpNet;
use serde::Deserialize;
use serde_yaml_ng::Value;

/// The embedded default configuration (also shipped as config/rampart.yaml).
pub const DEFAULT_YAML: &str = include_str!("../../config/rampart.yaml");

/// Shortest API token accepted: 24 characters (a guess then needs ~2^100 tries even
/// from the 62-symbol alphabet, against a throttle of a few a minute).
pub const MIN_TOKEN_CHARS: usize = 24;
pub const DEFAULT_PATH: &str = "/etc/rampart/rampart.yaml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid YAML: {source}")]
    Yaml {
        path: String,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("{path}: key `{key}`: {reason}")]
    Invalid {
        path: String,
        key: String,
        reason: String,
    },
    /// A file or directory another local user could read secrets from or write to.
    #[error("{path}: {reason}")]
    Unsafe { path: PathBuf, reason: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the SQLite store, TLS material and token digests live.
    pub state_dir: PathBuf,
    pub webui: WebUi,
    pub firewall: Firewall,
    pub watch: Watch,
    pub sensors: Sensors,
    /// Infrastructure addresses (CSM's top-level `infra_ips`): never dropped and never
    /// blockable, like `firewall.allow`.
    #[serde(default)]
    pub infra_ips: Vec<String>,
    pub egress: Egress,
    pub exec: Exec,
    pub detection: DetectionConfig,
    pub quarantine: QuarantineConfig,
    /// What the scanner reports as slowing sites down (`/perf/fix-*` fix it).
    pub performance: Performance,
    /// The mail server's queue and forwarders (`/email/*`).
    pub mail: Mail,
    /// The ModSecurity rules file the API manages (`/modsec/rules/*`).
    pub modsec: Modsec,
    pub logs: Logs,
    pub auto_response: AutoResponse,
    pub retention: Retention,
    /// Where findings go beyond the store, the log and SSE.
    #[serde(default)]
    pub alerts: Alerts,
    /// MaxMind databases for `/api/v1/geoip` and the country of attackers.
    #[serde(default)]
    pub geoip: GeoIp,
    /// How crawlers claimed in the access logs are checked.
    #[serde(default)]
    pub verified_bots: VerifiedBots,
}

/// Forward-confirmed reverse DNS of clients that claim a search-engine crawler.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifiedBots {
    /// DNS servers asked (`ip` or `ip:port`); empty: /etc/resolv.conf's.
    #[serde(default)]
    pub nameservers: Vec<String>,
}

/// MaxMind DB files (GeoLite2 or GeoIP2). Empty: the first of the usual places that
/// exists (`/usr/share/GeoIP`, `/var/lib/GeoIP`, as geoipupdate writes them).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoIp {
    /// A City (or Country) database.
    #[serde(default)]
    pub city_db: PathBuf,
    /// An ASN database.
    #[serde(default)]
    pub asn_db: PathBuf,
}

/// How much history is kept: findings, log events, audit rows, `findings.jsonl`.
/// Everything an attacker can make the agent record is bounded by count, not only
/// by age.
/// Alert channels (docs/src/alerts.md).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    #[serde(default)]
    pub channels: Vec<AlertChannel>,
}

/// One destination, with what it is sent and how often. (No `deny_unknown_fields`
/// here: serde cannot combine it with `flatten`; [`AlertKind`] refuses the keys
/// neither knows.)
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct AlertChannel {
    /// Unique; names the channel in the outbox, `/health` and test-alert results.
    pub name: String,
    #[serde(flatten)]
    pub kind: AlertKind,
    /// Findings below this severity are not sent here.
    #[serde(default = "default_alert_severity")]
    pub min_severity: api::model::Severity,
    /// Only these checks (empty: every check).
    #[serde(default)]
    pub checks: Vec<String>,
    /// Never these checks.
    #[serde(default)]
    pub exclude_checks: Vec<String>,
    /// Messages at most per minute; beyond it, findings wait (and text channels send
    /// what waited as one digest). Default: 60 for webhook, 600 for syslog, 6 for
    /// slack and telegram, 2 for email.
    #[serde(default)]
    pub max_per_minute: Option<u32>,
    /// Collect findings for this many minutes and send them as one message (text
    /// channels; 0: at once).
    #[serde(default)]
    pub digest_minutes: u32,
}

fn default_alert_severity() -> api::model::Severity {
    api::model::Severity::Warning
}

/// How a channel delivers.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum AlertKind {
    /// JSON POST, signed: `X-Rampart-Signature: sha256=<HMAC-SHA256(secret, timestamp.body)>`.
    Webhook {
        url: String,
        #[serde(default)]
        secret: String,
        /// PEM file of a CA (or self-signed certificate) to trust besides the system's.
        #[serde(default)]
        ca_file: Option<PathBuf>,
    },
    /// Slack-style incoming webhook: `{"text": ...}`.
    Slack {
        url: String,
        #[serde(default)]
        ca_file: Option<PathBuf>,
    },
    /// Telegram-style bot API: `{"chat_id": ..., "text": ...}` to the bot's
    /// sendMessage URL.
    Telegram {
        url: String,
        chat_id: String,
        #[serde(default)]
        ca_file: Option<PathBuf>,
    },
    /// Mail over SMTP, STARTTLS required (`tls: none` only to a loopback relay).
    Email {
        smtp_host: String,
        #[serde(default = "default_smtp_port")]
        smtp_port: u16,
        #[serde(default)]
        tls: MailTls,
        #[serde(default)]
        username: String,
        #[serde(default)]
        password: String,
        from: String,
        to: Vec<String>,
        #[serde(default)]
        ca_file: Option<PathBuf>,
    },
    /// RFC 5424 to `unix:/dev/log`, `udp:HOST:PORT` or `tcp:HOST:PORT`.
    Syslog {
        target: String,
        #[serde(default = "default_facility")]
        facility: String,
    },
}

/// A mail address as a channel may name it: `user@domain`, nothing that could
/// become a second address or a header (no space, control character, `<`, `>`,
/// `,` or `;`).
pub fn is_mail_address(a: &str) -> bool {
    let (user, domain) = a.split_once('@').unwrap_or(("", ""));
    !user.is_empty()
        && !domain.is_empty()
        && !a
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
}

fn default_smtp_port() -> u16 {
    587
}

/// How mail is protected on the way to the relay.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MailTls {
    /// STARTTLS, required: no mail goes out in clear.
    #[default]
    Starttls,
    /// Plain SMTP: only to a relay on this host.
    None,
}

fn default_facility() -> String {
    "auth".into()
}

/// Syslog facility codes by name (RFC 5424 table 1).
pub const SYSLOG_FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("authpriv", 10),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Closed findings and incidents, log events and audit rows older than this many
    /// days are deleted (0 = bounded by count only).
    pub days: u32,
    /// Findings kept at most. Past it the oldest closed ones go first, then active
    /// ones, least severe and oldest first (a `findings_capped` finding says so).
    pub max_findings: u64,
    /// Rows kept at most in each log-event table (threat, ModSecurity, mail) and
    /// in the firewall's audit log.
    pub max_rows: u64,
    /// `findings.jsonl` is rotated (to `.1`, `.2`, ...) once it reaches this size.
    pub findings_log_bytes: u64,
    /// Rotated findings logs kept.
    pub findings_log_files: u32,
}

/// Log files followed and the scenarios over them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logs {
    /// OpenSSH logs (syslog format; a missing file is waited for).
    pub sshd: Vec<PathBuf>,
    /// exim mainlogs.
    pub exim: Vec<PathBuf>,
    /// Syslog files dovecot writes to.
    pub dovecot: Vec<PathBuf>,
    /// Syslog files pure-ftpd/proftpd write to, and proftpd's own log.
    pub ftp: Vec<PathBuf>,
    /// cPanel/WHM login_log.
    pub cpanel: Vec<PathBuf>,
    /// Apache/nginx access logs (common, combined, vhost_combined).
    pub access: Vec<PathBuf>,
    /// ModSecurity audit logs (serial or JSON) or error_logs with its lines.
    pub modsec: Vec<PathBuf>,
    /// The journal, for daemons that log only there.
    pub journald: Journald,
    pub scenarios: Scenarios,
    /// Keys (addresses, accounts) tracked per scenario, at most.
    pub max_keys: usize,
    /// Which sshd lines count as failures (see [`SshdMode`]).
    #[serde(default)]
    pub sshd_mode: SshdMode,
}

/// fail2ban's three sshd modes: `normal` counts failed and refused logins and
/// sessions that ended in authentication; `ddos` adds clients that never began it
/// (no identification string, bad banners, closes and timeouts before auth);
/// `aggressive` adds clients that could not negotiate an algorithm or method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SshdMode {
    #[default]
    Normal,
    Ddos,
    Aggressive,
}

impl Logs {
    /// The files configured for one source.
    pub fn paths(&self, source: Source) -> &[PathBuf] {
        match source {
            Source::Sshd => &self.sshd,
            Source::Exim => &self.exim,
            Source::Dovecot => &self.dovecot,
            Source::Ftp => &self.ftp,
            Source::Cpanel => &self.cpanel,
            Source::Access => &self.access,
            Source::Modsec => &self.modsec,
        }
    }
}

/// journald as a source (see docs/src/logs.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journald {
    pub mode: JournaldMode,
    /// A journal directory instead of the system journal (empty: the system's).
    pub directory: PathBuf,
    /// `SYSLOG_IDENTIFIER` → the source whose grammar reads its messages.
    pub identifiers: std::collections::BTreeMap<String, Source>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JournaldMode {
    /// Every identifier when this host keeps a journal (where the writer of an entry
    /// can be verified); else only sources none of whose files exists at start.
    Auto,
    /// For every identifier.
    On,
    Off,
}

impl Logs {
    /// The identifiers the journal is read for, after `mode`; `journal_kept`: this
    /// host keeps a journal. A source read from the journal is not read from its
    /// files (every line would count twice where rsyslog also writes them).
    pub fn journal_identifiers(
        &self,
        journal_kept: bool,
    ) -> std::collections::BTreeMap<String, Source> {
        self.journald
            .identifiers
            .iter()
            .filter(|(_, s)| match self.journald.mode {
                JournaldMode::Off => false,
                JournaldMode::On => true,
                JournaldMode::Auto => journal_kept || !self.paths(**s).iter().any(|p| p.exists()),
            })
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}

/// The leaky-bucket scenarios (see docs/src/logs.md for what each counts).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenarios {
    pub ssh_bruteforce: Scenario,
    pub mail_bruteforce: Scenario,
    pub ftp_bruteforce: Scenario,
    pub cpanel_bruteforce: Scenario,
    pub wp_login_flood: Scenario,
    pub xmlrpc_abuse: Scenario,
    pub http_probing: Scenario,
    pub modsec_blocks: Scenario,
    pub smtp_rcpt_scan: Scenario,
    pub account_bruteforce: Scenario,
    pub mail_relay_abuse: Scenario,
    /// Failed logins of any service from one address, leaking slowly (CrowdSec's
    /// ssh-slow-bf): the attacker that stays under the fast buckets.
    #[serde(default = "Scenario::slow_bruteforce")]
    pub slow_bruteforce: Scenario,
    /// Distinct user names tried from one address (CrowdSec's ssh-bf_user-enum).
    #[serde(default = "Scenario::user_enumeration")]
    pub user_enumeration: Scenario,
    /// Clients exim refused for what only abuse does (protocol violations, policy
    /// drops, unverifiable senders, spam).
    #[serde(default = "Scenario::smtp_abuse")]
    pub smtp_abuse: Scenario,
    /// Failed logins from one address at regular intervals, however slow (a paced
    /// bot). Not a bucket: `capacity` is the tries looked at, `leak_secs` the least
    /// mean interval between them that counts, `blackhole_secs` the quiet time after.
    #[serde(default = "Scenario::time_based_bruteforce")]
    pub time_based_bruteforce: Scenario,
    /// CrowdSec's conditional ssh-time-based-bf: the last `capacity` failed SSH
    /// logins of one address within `window_secs`, their median interval at least
    /// `leak_secs`, no successful login from it in between. Not a bucket.
    #[serde(default = "Scenario::ssh_time_based_bruteforce")]
    pub ssh_time_based_bruteforce: Scenario,
}

impl Scenario {
    fn slow_bruteforce() -> Self {
        Self {
            capacity: 10,
            leak_secs: 60,
            blackhole_secs: 60,
            window_secs: 0,
        }
    }

    fn user_enumeration() -> Self {
        Self {
            capacity: 5,
            leak_secs: 60,
            blackhole_secs: 300,
            window_secs: 0,
        }
    }

    fn time_based_bruteforce() -> Self {
        Self {
            capacity: 10,
            leak_secs: 10,
            blackhole_secs: 3600,
            window_secs: 0,
        }
    }

    fn smtp_abuse() -> Self {
        Self {
            capacity: 5,
            leak_secs: 60,
            blackhole_secs: 300,
            window_secs: 0,
        }
    }

    /// The hub's values: 3 failures, median interval over 5 min, within 2 h;
    /// blackhole 5 min.
    fn ssh_time_based_bruteforce() -> Self {
        Self {
            capacity: 3,
            leak_secs: 300,
            blackhole_secs: 300,
            window_secs: 7200,
        }
    }
}

impl Scenarios {
    pub fn all(&self) -> [(&'static str, Scenario); 16] {
        [
            ("ssh_bruteforce", self.ssh_bruteforce),
            ("mail_bruteforce", self.mail_bruteforce),
            ("ftp_bruteforce", self.ftp_bruteforce),
            ("cpanel_bruteforce", self.cpanel_bruteforce),
            ("wp_login_flood", self.wp_login_flood),
            ("xmlrpc_abuse", self.xmlrpc_abuse),
            ("http_probing", self.http_probing),
            ("modsec_blocks", self.modsec_blocks),
            ("smtp_rcpt_scan", self.smtp_rcpt_scan),
            ("account_bruteforce", self.account_bruteforce),
            ("mail_relay_abuse", self.mail_relay_abuse),
            ("slow_bruteforce", self.slow_bruteforce),
            ("user_enumeration", self.user_enumeration),
            ("smtp_abuse", self.smtp_abuse),
            ("time_based_bruteforce", self.time_based_bruteforce),
            ("ssh_time_based_bruteforce", self.ssh_time_based_bruteforce),
        ]
    }
}

/// A leaky bucket: more than `capacity` events while it leaks one per `leak_secs`
/// triggers; then the source is ignored for `blackhole_secs`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub capacity: u32,
    pub leak_secs: u64,
    pub blackhole_secs: u64,
    /// Only the conditional scenarios use it: how far back their tries count.
    #[serde(default)]
    pub window_secs: u64,
}

/// What a triggered scenario does besides the finding.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoResponse {
    /// Block sources of triggered scenarios in XDP ...
    pub enabled: bool,
    /// ... unless in dry run: the finding says what would have been blocked.
    pub dry_run: bool,
    /// First ban; each repeat offence (within a week) doubles it ...
    pub ban_secs: u64,
    /// ... up to this.
    pub max_ban_secs: u64,
    /// Addresses of one /24 (/64) banned within `subnet_window_secs` that escalate
    /// to a subnet ban; 0 = never.
    pub subnet_threshold: u32,
    pub subnet_window_secs: u64,
}

/// Signatures, scanning and the findings lifecycle.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionConfig {
    /// YAML (`*.yml`, `*.yaml`) and YARA (`*.yar`, `*.yara`) rule files; a missing
    /// directory means the builtin rules only.
    pub rules_dir: PathBuf,
    /// Load the rules that ship in the binary.
    pub builtin_rules: bool,
    /// Threads scanning written files.
    pub scan_workers: usize,
    /// Files waiting for a scan thread (beyond: back-pressure, counted).
    pub scan_queue: usize,
    /// The same (check, key) while active within this many seconds is one finding
    /// with a count.
    pub dedup_window_secs: u64,
    /// Scan every watched tree this often (hours; 0 = never).
    pub full_scan_interval_hours: u64,
    /// Scan the files of every watched tree whose inode changed since the last sweep
    /// (ctime) this often (minutes; 0 = never). Catches what no event reported.
    pub sweep_interval_minutes: u64,
    /// `sh -c COMMAND` run by a web-server user is not a `web_shell_spawn` when
    /// COMMAND starts with one of these (PHP's mail() runs sendmail through sh).
    pub web_shell_allow: Vec<String>,
    /// Public rule sets under their own licences, loaded after `rules_dir`.
    #[serde(default)]
    pub rule_packs: Vec<RulePack>,
    /// Malicious MySQL/MariaDB objects (triggers, events, routines).
    pub databases: Databases,
}

/// `detection.databases`: the database server's objects, checked periodically.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Databases {
    pub enabled: bool,
    /// The command-line client; empty: `/usr/bin/mariadb`, then `/usr/bin/mysql`.
    pub client: PathBuf,
    /// The server's socket; empty: the client's own default (its my.cnf).
    pub socket: PathBuf,
    /// Seconds between passes (and the first pass this long after start).
    pub interval_secs: u64,
}

/// One rule pack: a local directory, or one rule file fetched from `url` and
/// accepted only if it hashes to `sha256` (pinned) or to what the checksum file at
/// `sha256_url` says (for packs that change; https only).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulePack {
    /// `[a-z0-9_-]{1,40}`: the fetched file's name under `<state_dir>/rule-packs/`.
    pub name: String,
    #[serde(default)]
    pub dir: PathBuf,
    /// http(s) URL of one `.yar`/`.yara`/`.yml`/`.yaml` file.
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub sha256: String,
    #[serde(default)]
    pub sha256_url: String,
    /// Fetched at start and this often (hours).
    #[serde(default = "RulePack::default_refresh")]
    pub refresh_hours: u64,
}

impl RulePack {
    fn default_refresh() -> u64 {
        24
    }

    /// The extension of the rule file at `url` (`yar`, `yara`, `yml`, `yaml`).
    pub fn url_extension(&self) -> Option<&str> {
        let path = self.url.split(['?', '#']).next()?;
        let ext = path.rsplit_once('.')?.1;
        matches!(ext, "yar" | "yara" | "yml" | "yaml").then_some(ext)
    }

    fn validate(&self, key: &str) -> Result<(), (String, String)> {
        let err = |field: &str, msg: &str| Err((format!("{key}.{field}"), msg.to_string()));
        let n = &self.name;
        if n.is_empty()
            || n.len() > 40
            || !n
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return err("name", "must be 1 to 40 of a-z, 0-9, _ and -");
        }
        match (self.dir.as_os_str().is_empty(), self.url.is_empty()) {
            (false, false) | (true, true) => return err("url", "set exactly one of dir and url"),
            (false, true) if !self.dir.is_absolute() => {
                return err("dir", "must be an absolute path")
            }
            (false, true) => return Ok(()),
            (true, false) => {}
        }
        if !(self.url.starts_with("https://") || self.url.starts_with("http://")) {
            return err("url", "must be an http(s) URL");
        }
        if self.url_extension().is_none() {
            return err("url", "must name a .yar, .yara, .yml or .yaml file");
        }
        let hex = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
        match (self.sha256.is_empty(), self.sha256_url.is_empty()) {
            (false, true) if hex(&self.sha256) => {}
            (false, true) => return err("sha256", "must be 64 hex digits"),
            (true, false) if self.sha256_url.starts_with("https://") => {}
            (true, false) => {
                return err(
                    "sha256_url",
                    "must be https (a checksum fetched in clear proves nothing)",
                )
            }
            _ => return err("sha256", "set exactly one of sha256 and sha256_url"),
        }
        if self.refresh_hours == 0 || self.refresh_hours > 24 * 30 {
            return err("refresh_hours", "must be 1..=720");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuarantineConfig {
    /// Where quarantined files are kept (empty = `<state_dir>/quarantine`).
    pub dir: PathBuf,
    /// Quarantine matches of rules marked `auto_quarantine` without asking.
    pub auto: bool,
    /// Trees a quarantine or restore may touch (empty: the watched trees).
    #[serde(default)]
    pub roots: Vec<PathBuf>,
    /// Largest file quarantined, in bytes (apparent size, holes included).
    #[serde(default = "default_quarantine_max")]
    pub max_bytes: u64,
}

fn default_quarantine_max() -> u64 {
    64 * 1024 * 1024
}

/// The ModSecurity rules file Rampart writes, and how the web server takes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Modsec {
    /// The file (included by the web server's ModSecurity config); empty: the
    /// `/modsec/rules/*` routes answer 503.
    pub custom_rules: PathBuf,
    /// The web server's config test, run with the new file in place (`{file}` is
    /// its path); on failure the previous file is put back. Empty: not tested.
    pub test_command: Vec<String>,
    /// Makes the web server read the file after a passing test. Empty: none.
    pub reload_command: Vec<String>,
}

/// Where the mail server keeps its queue and forwarders.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mail {
    /// exim's spool (holding `input/`); empty: `/var/spool/exim`, then `/var/spool/exim4`.
    pub exim_spool: PathBuf,
    /// exim itself (it removes messages); empty: `/usr/sbin/exim`, then `/usr/sbin/exim4`.
    pub exim_bin: PathBuf,
    /// cPanel's forwarders, one file per domain.
    pub valiases_dir: PathBuf,
    /// The domains this server hosts, one a line (cPanel).
    pub local_domains: PathBuf,
    /// The mail AV: queued messages scanned, infected ones quarantined.
    pub av: MailAv,
    /// Forwarded copies exim held (bounces and spam to forwarders).
    pub forward_guard: ForwardGuard,
}

/// `mail.forward_guard`: the Maildir exim's `rampart_forward_hold` transport fills.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardGuard {
    /// The directory the shipped exim transport writes (a Maildir).
    pub held_dir: PathBuf,
    /// Held copies older than this many days are discarded (0 = kept).
    pub retention_days: u64,
    /// Seconds between passes over the directory.
    pub scan_secs: u64,
}

/// `mail.av`: every message exim queues is decoded and scanned.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailAv {
    /// Scan the queue (when this host has an exim spool).
    pub enabled: bool,
    /// Move an infected message out of the queue; false: findings only.
    pub quarantine: bool,
    /// clamd's socket; empty: the distributions' usual sockets, when one answers.
    pub clamd_socket: PathBuf,
    /// Bytes of a message's data file scanned, in MiB (the rest is not).
    pub max_message_mb: u64,
    /// The spool is listed again this often for what inotify did not report.
    pub rescan_secs: u64,
}

/// Performance checks of the files scanned.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Performance {
    /// An `error_log` over this many MiB is a finding; 0 = never.
    pub error_log_max_mb: u64,
    /// `display_errors` on in a `.user.ini` or `php.ini` is a finding.
    pub display_errors: bool,
    /// A WordPress `wp-config.php` without `DISABLE_WP_CRON` is a finding.
    pub wp_cron: bool,
}

impl Config {
    /// Where fetched rule packs are kept (`<state_dir>/rule-packs`).
    pub fn rule_packs_dir(&self) -> PathBuf {
        self.state_dir.join("rule-packs")
    }

    /// The directories rules load from after `detection.rules_dir`: each local pack's,
    /// then the fetched packs' (when any pack has a URL).
    pub fn rule_pack_dirs(&self) -> Vec<PathBuf> {
        let packs = &self.detection.rule_packs;
        let mut dirs: Vec<PathBuf> = packs
            .iter()
            .filter(|p| p.url.is_empty())
            .map(|p| p.dir.clone())
            .collect();
        if packs.iter().any(|p| !p.url.is_empty()) {
            dirs.push(self.rule_packs_dir());
        }
        dirs
    }

    /// Where compiled YARA rules are kept between runs (`<state_dir>/cache/yara`).
    pub fn rules_cache_dir(&self) -> PathBuf {
        self.state_dir.join("cache").join("yara")
    }

    /// The trees quarantine and restore may touch.
    pub fn quarantine_roots(&self) -> Vec<PathBuf> {
        if self.quarantine.roots.is_empty() {
            self.watch.paths.clone()
        } else {
            self.quarantine.roots.clone()
        }
    }

    /// Where the mail AV keeps quarantined messages (`<state_dir>/mail-quarantine`).
    pub fn mail_quarantine_dir(&self) -> PathBuf {
        self.state_dir.join("mail-quarantine")
    }

    pub fn quarantine_dir(&self) -> PathBuf {
        if self.quarantine.dir.as_os_str().is_empty() {
            self.state_dir.join("quarantine")
        } else {
            self.quarantine.dir.clone()
        }
    }
}

/// Exec sensor (sched_process_exec) and its stop rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exec {
    pub enabled: bool,
    /// Only processes directly in this cgroup v2 directory; empty = every process.
    pub cgroup: PathBuf,
    /// Trees anyone can write to: executing from them is a finding.
    pub world_writable: Vec<PathBuf>,
    /// Kill such execs before their first instruction ...
    pub enforce: bool,
    /// ... unless in dry run: report `dry_run`, kill nothing.
    pub dry_run: bool,
    /// Report every exec (busy hosts: many events).
    pub all_execs: bool,
    /// With the fanotify backend: the filesystems (of these paths) whose execs it
    /// sees, besides those of the world-writable trees. Each exec there waits for
    /// the agent's answer (microseconds).
    pub fanotify_roots: Vec<PathBuf>,
}

/// Outbound connect sensor (cgroup connect4/connect6).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Egress {
    /// Attach the connect programs.
    pub enabled: bool,
    /// cgroup v2 directory the programs attach to (and its subtree). Empty: the
    /// cgroup2 root, i.e. the whole host.
    pub cgroup: PathBuf,
    /// Ports whose direct use by unsafe users is a finding (direct SMTP egress).
    pub smtp_ports: Vec<u16>,
    /// Users (names or numeric UIDs) allowed to connect to those ports: the MTA.
    pub safe_users: Vec<String>,
    /// Deny violations (connect() fails with EPERM) ...
    pub enforce: bool,
    /// ... unless in dry run: report `dry_run` decisions, deny nothing.
    pub dry_run: bool,
    /// Report every outbound connect, not only violations.
    pub all_connects: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebUi {
    /// HTTPS listen address.
    pub listen: SocketAddr,
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Read-only credential for /metrics only.
    #[serde(default)]
    pub metrics_token: String,
    /// Legacy single admin token; becomes a `legacy-auth-token` admin entry.
    #[serde(default)]
    pub auth_token: String,
    /// Connection and request limits of the listener.
    #[serde(default)]
    pub limits: ApiLimits,
}

/// What one client, or all together, may hold of the API (docs/src/security.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiLimits {
    /// Open connections at most, all clients together.
    pub max_connections: usize,
    /// Open connections at most from one client (IPv4 address or IPv6 /64).
    pub max_connections_per_client: usize,
    /// Seconds a TLS handshake may take.
    pub handshake_timeout_secs: u64,
    /// Seconds for a request's headers, and for the next request on an idle
    /// kept-alive connection.
    pub header_timeout_secs: u64,
    /// Event streams (SSE) open at once.
    pub max_sse_clients: usize,
    /// Login attempts and unknown credentials per client per minute.
    pub login_per_minute: u32,
    /// Requests per client per minute.
    pub requests_per_minute: u32,
}

/// The API crate's defaults: one place for the numbers.
impl Default for ApiLimits {
    fn default() -> Self {
        let l = api::Limits::default();
        Self {
            max_connections: l.max_connections,
            max_connections_per_client: l.max_connections_per_ip,
            handshake_timeout_secs: l.handshake_timeout.as_secs(),
            header_timeout_secs: l.header_timeout.as_secs(),
            max_sse_clients: l.max_sse_clients,
            login_per_minute: l.login_per_minute,
            requests_per_minute: l.requests_per_minute,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub name: String,
    pub token: String,
    pub scope: TokenScope,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    Admin,
    Read,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Firewall {
    /// Interfaces the XDP firewall attaches to. Empty: maps are loaded, nothing attached.
    pub interfaces: Vec<String>,
    /// `auto` (native, else generic), `native` or `generic`.
    pub xdp_mode: XdpMode,
    /// bpffs directory for the pinned block/allow maps and XDP links.
    pub pin_dir: PathBuf,
    /// Capacity of the IPv4 block trie.
    pub max_entries_v4: u32,
    /// Capacity of the IPv6 block trie.
    pub max_entries_v6: u32,
    /// Capacity of each allow trie.
    pub max_allow_entries: u32,
    /// Sources tracked at once for rate limits and scan detection (LRU).
    pub max_tracked_sources: u32,
    /// Addresses/CIDRs never dropped and never blockable (infra, admin).
    pub allow: Vec<String>,
    /// Seconds a tentatively applied firewall policy waits for confirmation.
    pub tentative_timeout_secs: u64,
    /// Longest time enforcement stays off after `POST /security/disable`.
    pub disable_max_secs: u64,
    // The runtime policy (hot-applied; `/api/v1/settings/firewall/*` edits it). These
    // are plain fields, not a flattened struct, so errors name the exact key.
    /// Per-source packet rate (all protocols). `pps: 0` = off.
    pub rate_limit: RateLimit,
    /// Per-source TCP SYN rate. `pps: 0` = off.
    pub syn_limit: RateLimit,
    pub port_scan: PortScan,
    /// Allowed inbound TCP ports. Empty = all allowed.
    pub tcp_in: Vec<PortSpec>,
    /// Allowed inbound UDP ports. Empty = all allowed.
    pub udp_in: Vec<PortSpec>,
    /// Sampled drop events per second per CPU sent to the agent.
    pub drop_samples_per_sec: u32,
}

impl Firewall {
    /// The policy part of this section.
    pub fn policy(&self) -> FirewallPolicy {
        FirewallPolicy {
            rate_limit: self.rate_limit,
            syn_limit: self.syn_limit,
            port_scan: self.port_scan,
            tcp_in: self.tcp_in.clone(),
            udp_in: self.udp_in.clone(),
            drop_samples_per_sec: self.drop_samples_per_sec,
        }
    }
}

/// Firewall policy that can change at run time without reloading programs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FirewallPolicy {
    /// Per-source packet rate (all protocols). `pps: 0` = off.
    pub rate_limit: RateLimit,
    /// Per-source TCP SYN rate. `pps: 0` = off.
    pub syn_limit: RateLimit,
    pub port_scan: PortScan,
    /// Allowed inbound TCP ports ("22", "80", "30000-30100"). Empty = all allowed.
    pub tcp_in: Vec<PortSpec>,
    /// Allowed inbound UDP ports. Empty = all allowed.
    pub udp_in: Vec<PortSpec>,
    /// Sampled drop events per second per CPU sent to the agent.
    pub drop_samples_per_sec: u32,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub pps: u32,
    pub burst: u32,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct PortScan {
    /// Distinct destination ports from one source within the window that make a
    /// `port_scan` finding. 0 = off.
    pub ports: u32,
    pub window_ms: u32,
}

/// A port or an inclusive range, written `443` or `"30000-30100"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(into = "String")]
pub struct PortSpec {
    pub first: u16,
    pub last: u16,
}

impl From<PortSpec> for String {
    fn from(p: PortSpec) -> String {
        if p.first == p.last {
            p.first.to_string()
        } else {
            format!("{}-{}", p.first, p.last)
        }
    }
}

impl std::str::FromStr for PortSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parse = |v: &str| {
            v.trim()
                .parse::<u16>()
                .map_err(|_| format!("{v:?} is not a port (1-65535)"))
        };
        let (first, last) = match s.split_once('-') {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => (parse(s)?, parse(s)?),
        };
        if first == 0 || last < first {
            return Err(format!("{s:?} is not a port or range (1-65535, low-high)"));
        }
        Ok(PortSpec { first, last })
    }
}

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        let s = match Raw::deserialize(d)? {
            Raw::N(n) => n.to_string(),
            Raw::S(s) => s,
        };
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl FirewallPolicy {
    /// Check values the kernel would misbehave with; (key, reason) on error.
    pub fn validate(&self, prefix: &str) -> Result<(), (String, String)> {
        for (name, r) in [
            ("rate_limit", self.rate_limit),
            ("syn_limit", self.syn_limit),
        ] {
            if r.pps > 0 && r.burst == 0 {
                return Err((
                    format!("{prefix}{name}.burst"),
                    "must be ≥ 1 when pps is set".into(),
                ));
            }
            if r.pps > 100_000_000 || r.burst > 100_000_000 {
                return Err((
                    format!("{prefix}{name}"),
                    "pps and burst must be ≤ 100000000".into(),
                ));
            }
        }
        if self.port_scan.ports > 256 {
            return Err((
                format!("{prefix}port_scan.ports"),
                "at most 256 distinct ports are tracked".into(),
            ));
        }
        if self.port_scan.ports > 0 && self.port_scan.window_ms == 0 {
            return Err((
                format!("{prefix}port_scan.window_ms"),
                "must be > 0 when ports is set".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    Auto,
    Native,
    Generic,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    /// Directory trees whose file writes the kernel reports.
    pub paths: Vec<PathBuf>,
    /// Largest file the agent reads for content checks.
    pub max_scan_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sensors {
    /// Kernel-to-agent ring buffer size in bytes (power of two, multiple of the page size).
    pub ringbuf_bytes: u32,
    /// Capacity of the bounded channel between the ring buffer reader and detection.
    pub event_channel_size: usize,
    /// Concurrent open-for-write sessions the kernel tracks.
    pub max_open_files: u32,
    /// Seconds between checks for lost events; any loss in a window is an
    /// `event_loss` finding.
    pub loss_window_secs: u64,
    /// Which backend watches files: `auto` (BPF-LSM where the kernel allows it, else
    /// syscall tracepoints, else fanotify), or one forced.
    pub file_backend: BackendChoice,
    /// Which backend watches execs: `auto` (BPF-LSM, else the sched_process_exec
    /// tracepoint, else fanotify), or one forced.
    pub exec_backend: BackendChoice,
    /// How the file sensor hooks 64-bit syscalls where it uses tracepoints:
    /// `sys_exit` (one program at the end of every syscall) or `per_syscall`.
    #[serde(default)]
    pub file_syscall_hook: SyscallHook,
    /// Reads of sensitive files by web-server users.
    pub sensitive: Sensitive,
}

/// How the file sensor's 64-bit syscalls are hooked (`sensors.file_syscall_hook`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyscallHook {
    /// One program at the end of every syscall (x86_64 with BTF), the arguments read
    /// from the saved registers; close(2) on its enter tracepoint. Elsewhere, or
    /// where it does not attach, the per-syscall tracepoints.
    #[default]
    SysExit,
    /// A tracepoint per syscall (`sys_enter_*`/`sys_exit_*`). The `sys_exit`
    /// program still takes the 32-bit syscalls, which these never see.
    PerSyscall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    Auto,
    /// BPF-LSM or nothing: where the kernel refuses LSM programs the sensor is not
    /// started (reported as failed, with the reason).
    Lsm,
    Tracepoint,
    Fanotify,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sensitive {
    /// Web-server users (names or UIDs; unknown names are skipped).
    pub web_users: Vec<String>,
    /// Absolute paths: a file ("/etc/shadow") matches exactly, a tree ends in "/".
    pub paths: Vec<PathBuf>,
    /// Base names matched anywhere ("wp-config.php", "id_rsa").
    pub names: Vec<String>,
    /// Reads by processes whose comm starts with one of these are not findings (the
    /// PHP interpreter reading wp-config.php is normal; a web server reading it is not).
    pub exempt_comms: Vec<String>,
    /// Deny such reads (`paths` that are files) where BPF-LSM is available, only when
    /// `dry_run` is false. Tracepoints and fanotify cannot deny: they report.
    pub enforce: bool,
    pub dry_run: bool,
}

/// Merge `over` into `base`: maps merge key by key, lists append, scalars replace.
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (Value::Sequence(b), Value::Sequence(o)) => b.extend(o),
        (slot, o) => *slot = o,
    }
}

/// The drop-in the settings API writes (`conf.d/` beside the config file). It is
/// merged last whatever its name sorts as, and its lists replace.
pub const API_DROP_IN: &str = "zz-api-settings.yaml";

/// The directory a file named by `path` is in: "." for a bare name such as
/// `rampart.yaml` (whose `parent()` is the empty path, which names nothing).
pub fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The embedded default as the first layer: (name, text).
pub fn default_layer() -> (String, String) {
    ("<embedded default>".to_string(), DEFAULT_YAML.to_string())
}

/// The layers [`Config::load`] merges for `path`: (name, text), the embedded default
/// first, then the file, then its `conf.d/*.yaml` in name order, the API's drop-in
/// last. Checked as `load` says.
pub fn layers(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let dir = dir_of(path);
    let mut layers = vec![default_layer()];
    layers.push((path.display().to_string(), read_private(path)?));
    check_owner(dir, true)?;
    let confd = dir.join("conf.d");
    if confd.is_dir() {
        check_owner(&confd, true)?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&confd)
            .map_err(|source| ConfigError::Read {
                path: confd.clone(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        files.sort_by_key(|f| (f.file_name().is_some_and(|n| n == API_DROP_IN), f.clone()));
        for f in files {
            layers.push((f.display().to_string(), read_private(&f)?));
        }
    }
    Ok(layers)
}

/// The layers merged as [`Config::from_layers`] merges them, not yet validated.
pub fn merged(layers: &[(String, String)]) -> Result<Value, ConfigError> {
    let mut merged = Value::Null;
    for (i, (name, text)) in layers.iter().enumerate() {
        let v = parse_value(name, text)?;
        if i == 0 {
            merged = v;
        } else if i == 1 || name.ends_with(API_DROP_IN) {
            replace_lists_from(&mut merged, v);
        } else {
            merge(&mut merged, v);
        }
    }
    Ok(merged)
}

fn parse_value(path: &str, text: &str) -> Result<Value, ConfigError> {
    let v: Value = serde_yaml_ng::from_str(text).map_err(|source| ConfigError::Yaml {
        path: path.into(),
        source,
    })?;
    // An empty drop-in is fine.
    Ok(if v.is_null() {
        Value::Mapping(Default::default())
    } else {
        v
    })
}

impl Config {
    /// Every never-block entry: `firewall.allow` plus `infra_ips`.
    pub fn allow_entries(&self) -> Vec<String> {
        self.firewall
            .allow
            .iter()
            .chain(&self.infra_ips)
            .cloned()
            .collect()
    }

    /// The embedded default configuration.
    pub fn embedded() -> Result<Self, ConfigError> {
        Self::from_layers(vec![default_layer()])
    }

    /// Load `path` over the embedded defaults, then `conf.d/*.yaml` beside it in name order.
    /// Every file and both directories must be safe from other local users
    /// ([`check_owner`]); a file holding a token must not be world-readable.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_layers(layers(path)?)
    }

    /// Merge layers (name, YAML text) in order and validate. Lists in the embedded
    /// default are *replaced* by the first file that sets them, so an operator's
    /// `watch.paths` is not appended to the defaults; later drop-ins append, except
    /// the API's own ([`API_DROP_IN`]), whose lists replace (it says what a section
    /// is, as the settings API was told).
    pub fn from_layers(layers: Vec<(String, String)>) -> Result<Self, ConfigError> {
        let source = layers
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(" + ");
        let merged = merged(&layers)?;
        let cfg: Config =
            serde_path_to_error::deserialize(merged).map_err(|e| ConfigError::Invalid {
                path: source.clone(),
                key: e.path().to_string(),
                reason: e.inner().to_string(),
            })?;
        cfg.validate()
            .map_err(|(key, reason)| ConfigError::Invalid {
                path: source,
                key,
                reason,
            })?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, r: String| Err((k.to_string(), r));
        if !(60..=86_400).contains(&self.firewall.disable_max_secs) {
            return err(
                "firewall.disable_max_secs",
                "must be 60 to 86400 seconds: enforcement is never off for longer than a day"
                    .into(),
            );
        }
        for (i, n) in self.verified_bots.nameservers.iter().enumerate() {
            if n.parse::<SocketAddr>().is_err() && n.parse::<IpAddr>().is_err() {
                return err(
                    &format!("verified_bots.nameservers[{i}]"),
                    format!("{n:?} is not an address (ip or ip:port)"),
                );
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, c) in self.alerts.channels.iter().enumerate() {
            let key = |f: &str| format!("alerts.channels[{i}].{f}");
            if c.name.is_empty()
                || !c
                    .name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
            {
                return err(
                    &key("name"),
                    "letters, digits, '.', '_' or '-', not empty".into(),
                );
            }
            if !names.insert(c.name.as_str()) {
                return err(&key("name"), format!("duplicate channel name {:?}", c.name));
            }
            if c.max_per_minute == Some(0) {
                return err(&key("max_per_minute"), "must be > 0".into());
            }
            match &c.kind {
                AlertKind::Webhook { url, .. }
                | AlertKind::Slack { url, .. }
                | AlertKind::Telegram { url, .. } => {
                    if !(url.starts_with("https://") || url.starts_with("http://")) {
                        return err(&key("url"), format!("{url:?} is not an http(s) URL"));
                    }
                }
                AlertKind::Email {
                    smtp_host,
                    tls,
                    username,
                    from,
                    to,
                    ..
                } => {
                    if smtp_host.is_empty() {
                        return err(&key("smtp_host"), "must be set".into());
                    }
                    let loopback = smtp_host == "localhost"
                        || smtp_host
                            .parse::<std::net::IpAddr>()
                            .is_ok_and(|ip| ip.is_loopback());
                    if *tls == MailTls::None && !loopback {
                        return err(
                            &key("tls"),
                            "none is allowed only to a relay on this host (localhost)".into(),
                        );
                    }
                    if *tls == MailTls::None && !username.is_empty() {
                        return err(&key("username"), "credentials need tls: starttls".into());
                    }
                    if !is_mail_address(from) {
                        return err(&key("from"), format!("{from:?} is not a mail address"));
                    }
                    if to.is_empty() {
                        return err(&key("to"), "at least one recipient".into());
                    }
                    if let Some(bad) = to.iter().find(|a| !is_mail_address(a)) {
                        return err(&key("to"), format!("{bad:?} is not a mail address"));
                    }
                }
                AlertKind::Syslog { target, facility } => {
                    let ok = match target.split_once(':') {
                        Some(("unix", p)) => p.starts_with('/'),
                        Some(("udp" | "tcp", a)) => a.rsplit_once(':').is_some_and(|(h, p)| {
                            !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0)
                        }),
                        _ => false,
                    };
                    if !ok {
                        return err(
                            &key("target"),
                            format!("{target:?}: unix:/PATH, udp:HOST:PORT or tcp:HOST:PORT"),
                        );
                    }
                    if !SYSLOG_FACILITIES.iter().any(|(n, _)| n == facility) {
                        return err(&key("facility"), format!("unknown facility {facility:?}"));
                    }
                }
            }
        }
        let r = &self.retention;
        if r.max_findings < 1000 {
            return err("retention.max_findings", "must be ≥ 1000".into());
        }
        if r.max_rows < 1000 {
            return err("retention.max_rows", "must be ≥ 1000".into());
        }
        if r.findings_log_bytes < 1 << 20 {
            return err(
                "retention.findings_log_bytes",
                "must be ≥ 1048576 (1 MiB)".into(),
            );
        }
        if !(1..=100).contains(&r.findings_log_files) {
            return err("retention.findings_log_files", "must be 1 to 100".into());
        }
        let rb = self.sensors.ringbuf_bytes;
        if rb < 4096 || !rb.is_power_of_two() {
            return err(
                "sensors.ringbuf_bytes",
                format!("{rb} must be a power of two ≥ 4096"),
            );
        }
        if self.sensors.event_channel_size == 0 {
            return err("sensors.event_channel_size", "must be > 0".into());
        }
        if self.sensors.loss_window_secs == 0 {
            return err("sensors.loss_window_secs", "must be > 0".into());
        }
        for (i, p) in self.sensors.sensitive.paths.iter().enumerate() {
            let s = p.to_string_lossy();
            if !p.is_absolute() || s.len() >= agent_common::PREFIX_MAX_LEN {
                return err(
                    &format!("sensors.sensitive.paths[{i}]"),
                    format!(
                        "must be an absolute path shorter than {} bytes",
                        agent_common::PREFIX_MAX_LEN
                    ),
                );
            }
        }
        for (i, n) in self.sensors.sensitive.names.iter().enumerate() {
            if n.is_empty() || n.contains('/') || n.len() >= agent_common::NAME_MAX_LEN {
                return err(
                    &format!("sensors.sensitive.names[{i}]"),
                    format!(
                        "must be a base name (no '/') of 1..{} bytes",
                        agent_common::NAME_MAX_LEN - 1
                    ),
                );
            }
        }
        if self.detection.scan_workers == 0 || self.detection.scan_workers > 64 {
            return err("detection.scan_workers", "must be 1..=64".into());
        }
        if self.detection.scan_queue == 0 {
            return err("detection.scan_queue", "must be > 0".into());
        }
        let mut names = std::collections::HashSet::new();
        for (i, p) in self.detection.rule_packs.iter().enumerate() {
            let key = format!("detection.rule_packs[{i}]");
            p.validate(&key)?;
            if !names.insert(p.name.as_str()) {
                return err(
                    &format!("{key}.name"),
                    format!("{:?} is used twice", p.name),
                );
            }
        }
        if !self.detection.rules_dir.as_os_str().is_empty()
            && !self.detection.rules_dir.is_absolute()
        {
            return err(
                "detection.rules_dir",
                "must be an absolute path (or empty for none)".into(),
            );
        }
        for (i, r) in self.quarantine.roots.iter().enumerate() {
            let plain = r.components().all(|c| {
                matches!(
                    c,
                    std::path::Component::RootDir | std::path::Component::Normal(_)
                )
            });
            if !r.is_absolute() || !plain || r.parent().is_none() {
                return err(
                    &format!("quarantine.roots[{i}]"),
                    "must be an absolute directory other than / (no . or ..)".into(),
                );
            }
        }
        if self.quarantine.max_bytes == 0 {
            return err("quarantine.max_bytes", "must be > 0".into());
        }
        if !self.quarantine.dir.as_os_str().is_empty() && !self.quarantine.dir.is_absolute() {
            return err(
                "quarantine.dir",
                "must be an absolute path (or empty)".into(),
            );
        }
        for (name, sc) in self.logs.scenarios.all() {
            if sc.capacity == 0 || sc.leak_secs == 0 {
                return err(
                    &format!("logs.scenarios.{name}"),
                    "capacity and leak_secs must be > 0".into(),
                );
            }
        }
        let jd = &self.logs.journald.directory;
        if !jd.as_os_str().is_empty() && !jd.is_absolute() {
            return err(
                "logs.journald.directory",
                "must be an absolute path (or empty for the system journal)".into(),
            );
        }
        if self.logs.max_keys == 0 {
            return err("logs.max_keys", "must be > 0".into());
        }
        for source in Source::ALL {
            for (i, p) in self.logs.paths(source).iter().enumerate() {
                if !p.is_absolute() || p.file_name().is_none() {
                    return err(
                        &format!("logs.{}[{i}]", source.name()),
                        "must be an absolute file path".into(),
                    );
                }
            }
        }
        if self.auto_response.ban_secs == 0 {
            return err("auto_response.ban_secs", "must be > 0".into());
        }
        if self.sensors.max_open_files == 0 {
            return err("sensors.max_open_files", "must be > 0".into());
        }
        if !(1..=1024).contains(&self.mail.av.max_message_mb) {
            return err("mail.av.max_message_mb", "must be 1 to 1024".into());
        }
        if self.detection.databases.interval_secs == 0 {
            return err("detection.databases.interval_secs", "must be > 0".into());
        }
        if self.mail.forward_guard.scan_secs == 0 {
            return err("mail.forward_guard.scan_secs", "must be > 0".into());
        }
        if self.mail.av.rescan_secs == 0 {
            return err("mail.av.rescan_secs", "must be > 0".into());
        }
        for (k, v) in [
            ("firewall.max_entries_v4", self.firewall.max_entries_v4),
            ("firewall.max_entries_v6", self.firewall.max_entries_v6),
            (
                "firewall.max_allow_entries",
                self.firewall.max_allow_entries,
            ),
            (
                "firewall.max_tracked_sources",
                self.firewall.max_tracked_sources,
            ),
        ] {
            if v == 0 {
                return err(k, "must be > 0".into());
            }
        }
        self.firewall.policy().validate("firewall.")?;
        for (key, list) in [
            ("firewall.allow", &self.firewall.allow),
            ("infra_ips", &self.infra_ips),
        ] {
            for (i, a) in list.iter().enumerate() {
                if let Err(e) = parse_net(a, false) {
                    return err(&format!("{key}[{i}]"), e);
                }
            }
        }
        if self.egress.smtp_ports.len() > agent_common::egress::MAX_EGRESS_PORTS
            || self.egress.smtp_ports.contains(&0)
        {
            return err(
                "egress.smtp_ports",
                format!(
                    "1 to {} ports, each 1-65535",
                    agent_common::egress::MAX_EGRESS_PORTS
                ),
            );
        }
        if !self.exec.cgroup.as_os_str().is_empty() && !self.exec.cgroup.is_absolute() {
            return err(
                "exec.cgroup",
                "must be an absolute path (or empty for every process)".into(),
            );
        }
        for (i, p) in self.exec.fanotify_roots.iter().enumerate() {
            if !p.is_absolute() {
                return err(
                    &format!("exec.fanotify_roots[{i}]"),
                    "must be an absolute path".into(),
                );
            }
        }
        for (i, p) in self.exec.world_writable.iter().enumerate() {
            if !p.is_absolute() || p.to_string_lossy().len() + 1 > agent_common::PREFIX_MAX_LEN {
                return err(
                    &format!("exec.world_writable[{i}]"),
                    "must be an absolute path shorter than 128 bytes".into(),
                );
            }
        }
        if !self.egress.cgroup.as_os_str().is_empty() && !self.egress.cgroup.is_absolute() {
            return err(
                "egress.cgroup",
                "must be an absolute path (or empty for the cgroup2 root)".into(),
            );
        }
        if !self.firewall.pin_dir.starts_with("/sys/fs/bpf") {
            return err("firewall.pin_dir", "must be under /sys/fs/bpf".into());
        }
        if self.watch.paths.len() > agent_common::MAX_WATCH_PREFIXES as usize {
            return err(
                "watch.paths",
                format!(
                    "at most {} watched trees (got {})",
                    agent_common::MAX_WATCH_PREFIXES,
                    self.watch.paths.len()
                ),
            );
        }
        for (i, p) in self.watch.paths.iter().enumerate() {
            let s = p.to_string_lossy();
            if !p.is_absolute() {
                return err(
                    &format!("watch.paths[{i}]"),
                    format!("{s:?} must be an absolute path"),
                );
            }
            if s.len() + 1 > agent_common::PREFIX_MAX_LEN {
                return err(
                    &format!("watch.paths[{i}]"),
                    format!("longer than {} bytes", agent_common::PREFIX_MAX_LEN - 1),
                );
            }
        }
        for (i, iface) in self.firewall.interfaces.iter().enumerate() {
            if iface.is_empty() || iface.len() > 15 || iface.contains('/') {
                return err(
                    &format!("firewall.interfaces[{i}]"),
                    format!("{iface:?} is not an interface name"),
                );
            }
        }
        let mut names = std::collections::HashSet::new();
        // Every credential, so the same string cannot carry two scopes (the last
        // one would win: a read token silently becoming admin).
        let mut secrets: Vec<(String, &str)> = Vec::new();
        for (i, t) in self.webui.tokens.iter().enumerate() {
            if t.name.trim().is_empty() {
                return err(
                    &format!("webui.tokens[{i}].name"),
                    "must not be empty".into(),
                );
            }
            if !names.insert(t.name.as_str()) {
                return err(
                    &format!("webui.tokens[{i}].name"),
                    format!("duplicate token name {:?}", t.name),
                );
            }
            secrets.push((format!("webui.tokens[{i}].token"), t.token.as_str()));
        }
        for (key, v) in [
            ("webui.metrics_token", &self.webui.metrics_token),
            ("webui.auth_token", &self.webui.auth_token),
        ] {
            if !v.is_empty() {
                secrets.push((key.to_string(), v.as_str()));
            }
        }
        for (i, (key, token)) in secrets.iter().enumerate() {
            if token.chars().count() < MIN_TOKEN_CHARS {
                return err(
                    key,
                    format!(
                        "must be at least {MIN_TOKEN_CHARS} characters (`rampart token` makes one)"
                    ),
                );
            }
            if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return err(key, "must not contain spaces or control characters".into());
            }
            if let Some((other, _)) = secrets[..i].iter().find(|(_, t)| t == token) {
                return err(
                    key,
                    format!("is the same token as {other}; each must be unique"),
                );
            }
        }
        let l = &self.webui.limits;
        for (k, v) in [
            ("webui.limits.max_connections", l.max_connections as u64),
            (
                "webui.limits.max_connections_per_client",
                l.max_connections_per_client as u64,
            ),
            (
                "webui.limits.handshake_timeout_secs",
                l.handshake_timeout_secs,
            ),
            ("webui.limits.header_timeout_secs", l.header_timeout_secs),
        ] {
            if v == 0 {
                return err(k, "must be > 0".into());
            }
        }
        Ok(())
    }
}

/// Refuse a config file or directory that a user other than root (or the user the
/// agent runs as) owns or can write: they could give themselves a token, or point
/// the agent's quarantine and firewall at what they choose.
pub fn check_owner(path: &Path, is_dir: bool) -> Result<(), ConfigError> {
    let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    owner_ok(path, &meta, is_dir)
}

fn owner_ok(path: &Path, meta: &std::fs::Metadata, is_dir: bool) -> Result<(), ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let unsafe_ = |reason: String| ConfigError::Unsafe {
        path: path.to_path_buf(),
        reason,
    };
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(unsafe_(format!(
            "owned by uid {}, not root: another user could change the agent's configuration",
            meta.uid()
        )));
    }
    let mode = meta.mode();
    // A sticky world-writable directory (/tmp) still lets others add files.
    if mode & 0o022 != 0 {
        let what = if is_dir { "directory" } else { "file" };
        return Err(unsafe_(format!(
            "{what} mode {:o} is writable by group or others; chmod go-w",
            mode & 0o7777
        )));
    }
    Ok(())
}

/// Read a config file through one descriptor (no swap between the check and the
/// read), after [`owner_ok`], and refuse it world-readable when it holds a token;
/// group-readable with a token is logged.
fn read_private(p: &Path) -> Result<String, ConfigError> {
    use std::{io::Read, os::unix::fs::MetadataExt};
    let read_err = |source| ConfigError::Read {
        path: p.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(p).map_err(read_err)?;
    let meta = f.metadata().map_err(read_err)?;
    owner_ok(p, &meta, false)?;
    let mut text = String::new();
    f.read_to_string(&mut text).map_err(read_err)?;
    if meta.mode() & 0o044 != 0 && holds_token(&text) {
        if meta.mode() & 0o004 != 0 {
            return Err(ConfigError::Unsafe {
                path: p.to_path_buf(),
                reason: format!(
                    "mode {:o} lets every local user read the API tokens or alert secrets in it; chmod 600",
                    meta.mode() & 0o7777
                ),
            });
        }
        tracing::warn!(path = %p.display(), mode = format!("{:o}", meta.mode() & 0o7777),
            "Config file with API tokens is group-readable; chmod 600 unless that group is meant to be admin.");
    }
    Ok(text)
}

/// Does this YAML layer set an API credential?
fn holds_token(text: &str) -> bool {
    let Ok(v) = serde_yaml_ng::from_str::<Value>(text) else {
        // Unparsable: nothing of it loads; the parse error follows with its place.
        return false;
    };
    let webui = &v["webui"];
    let set = |k: &str| webui[k].as_str().is_some_and(|s| !s.is_empty());
    set("metrics_token")
        || set("auth_token")
        || webui["tokens"].as_sequence().is_some_and(|s| !s.is_empty())
        // Alert channels carry signing secrets and bot URLs.
        || v["alerts"]["channels"]
            .as_sequence()
            .is_some_and(|s| !s.is_empty())
}

/// Like `merge`, but lists in `over` replace lists in `base` (operator file over defaults).
fn replace_lists_from(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => replace_lists_from(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, o) => *slot = o,
    }
}

/// A log file's kind: which grammar reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// OpenSSH through syslog (auth.log, secure).
    Sshd,
    /// exim's mainlog.
    Exim,
    /// dovecot through syslog (maillog, mail.log).
    Dovecot,
    /// pure-ftpd and proftpd, through syslog or proftpd's own log.
    Ftp,
    /// cPanel/WHM's login_log.
    Cpanel,
    /// Apache/nginx access logs: common, combined, vhost_combined.
    Access,
    /// ModSecurity: the audit log (serial, v2 or v3 JSON) or Apache error_log lines.
    Modsec,
}

impl Source {
    pub const ALL: [Source; 7] = [
        Source::Sshd,
        Source::Exim,
        Source::Dovecot,
        Source::Ftp,
        Source::Cpanel,
        Source::Access,
        Source::Modsec,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Source::Sshd => "sshd",
            Source::Exim => "exim",
            Source::Dovecot => "dovecot",
            Source::Ftp => "ftp",
            Source::Cpanel => "cpanel",
            Source::Access => "access",
            Source::Modsec => "modsec",
        }
    }

    pub fn from_name(s: &str) -> Option<Source> {
        Self::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// Parse an IP or CIDR the way an operator writes it, into its canonical network.
/// Rejects what is almost certainly a mistake instead of guessing. `/0` needs `force`.
pub fn parse_net(input: &str, force: bool) -> Result<IpNet, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("ip is required".into());
    }
    let net: IpNet = if s.contains('/') {
        s.parse()
            .map_err(|_| format!("{s:?} is not a valid CIDR"))?
    } else {
        let ip: IpAddr = s
            .parse()
            .map_err(|_| format!("{s:?} is not a valid IP address"))?;
        IpNet::from(ip)
    };
    if let IpAddr::V6(v6) = net.addr() {
        if v6.to_ipv4_mapped().is_some() {
            return Err(format!(
                "{s:?} is an IPv4-mapped IPv6 address; use the IPv4 form instead"
            ));
        }
    }
    if net.prefix_len() == 0 && !force {
        return Err(format!("{s:?} covers every address; pass force to mean it"));
    }
    if net.trunc() != net {
        return Err(format!(
            "{s:?} has host bits set; did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Replace the file at `path` with `content` (mode `mode`), never half-written: a
/// temporary file beside it is written, synced and renamed over it. Neither the
/// temporary nor the final name is followed if it is a symlink. Used for the files
/// the API writes: the settings drop-in, rulesets, the ModSecurity rules file.
pub fn replace_file(path: &Path, content: &[u8], mode: u32) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let dir = dir_of(path);
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("a file name is needed"))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    f.write_all(content)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_file_name_is_in_the_current_directory() {
        // `rampart validate -c rampart.yaml` read conf.d of "" (nothing) and failed
        // with "reading : No such file or directory".
        assert_eq!(dir_of(Path::new("rampart.yaml")), Path::new("."));
        assert_eq!(dir_of(Path::new("etc/rampart.yaml")), Path::new("etc"));
        assert_eq!(
            dir_of(Path::new("/etc/rampart/rampart.yaml")),
            Path::new("/etc/rampart")
        );
        assert_eq!(dir_of(Path::new("/")), Path::new("."));
    }

    fn layers(extra: &[&str]) -> Vec<(String, String)> {
        let mut v = vec![default_layer()];
        for (i, e) in extra.iter().enumerate() {
            v.push((format!("layer{i}.yaml"), e.to_string()));
        }
        v
    }

    #[test]
    fn embedded_api_limits_are_the_api_defaults() {
        let c = Config::embedded().expect("embedded config");
        assert_eq!(
            format!("{:?}", c.webui.limits),
            format!("{:?}", ApiLimits::default()),
            "config/rampart.yaml and api::Limits::default disagree"
        );
    }

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::embedded().expect("embedded config");
        assert_eq!(c.webui.listen.port(), 9443);
        assert!(
            c.firewall.interfaces.is_empty(),
            "the default must not attach XDP anywhere"
        );
        assert!(c.firewall.max_entries_v4 >= 1_000_000);
    }

    #[test]
    fn dropins_merge_maps_replace_scalars_append_lists() {
        let c = Config::from_layers(layers(&[
            "watch:\n  paths: [/srv/a]\nwebui:\n  listen: 127.0.0.1:1\n",
            "watch:\n  paths: [/srv/b]\n",
        ]))
        .expect("valid");
        assert_eq!(
            c.watch.paths,
            vec![PathBuf::from("/srv/a"), PathBuf::from("/srv/b")]
        );
        assert_eq!(c.webui.listen.port(), 1);
        // Untouched keys keep their defaults.
        assert_eq!(
            c.sensors.ringbuf_bytes,
            Config::embedded().expect("default").sensors.ringbuf_bytes
        );
    }

    #[test]
    fn unknown_key_names_the_key() {
        let e = Config::from_layers(layers(&["webui:\n  listn: 1.2.3.4:5\n"])).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("webui") && msg.contains("listn"), "{msg}");
    }

    #[test]
    fn bad_values_name_the_key() {
        for (yaml, key) in [
            ("sensors:\n  ringbuf_bytes: 5000\n", "sensors.ringbuf_bytes"),
            ("detection:\n  rule_packs: [{name: A, dir: /r}]\n", "detection.rule_packs[0].name"),
            ("detection:\n  rule_packs: [{name: a}]\n", "detection.rule_packs[0].url"),
            ("detection:\n  rule_packs: [{name: a, dir: rel}]\n", "detection.rule_packs[0].dir"),
            ("detection:\n  rule_packs: [{name: a, url: 'https://x/r.yar'}]\n", "detection.rule_packs[0].sha256"),
            ("detection:\n  rule_packs: [{name: a, url: 'https://x/r.exe', sha256: x}]\n", "detection.rule_packs[0].url"),
            ("detection:\n  rule_packs: [{name: a, url: 'https://x/r.yar', sha256: abc}]\n", "detection.rule_packs[0].sha256"),
            ("detection:\n  rule_packs: [{name: a, url: 'http://x/r.yar', sha256_url: 'http://x/s'}]\n", "detection.rule_packs[0].sha256_url"),
            ("detection:\n  rule_packs: [{name: a, dir: /r}, {name: a, dir: /s}]\n", "detection.rule_packs[1].name"),
            ("watch:\n  paths: [relative/dir]\n", "watch.paths[0]"),
            ("webui:\n  listen: not-an-address\n", "webui.listen"),
            (
                "webui:\n  tokens: [{name: a, token: short, scope: admin}]\n",
                "webui.tokens[0].token",
            ),
            (
                "webui:\n  tokens: [{name: a, token: aaaaaaaaaaaaaaaaaaaaaaaaaaaa, scope: root}]\n",
                "webui.tokens[0].scope",
            ),
            // 23 characters: one short of the minimum.
            (
                "webui:\n  tokens: [{name: a, token: aaaaaaaaaaaaaaaaaaaaaaa, scope: admin}]\n",
                "webui.tokens[0].token",
            ),
            (
                "webui:\n  metrics_token: x\n",
                "webui.metrics_token",
            ),
            (
                "alerts:\n  channels: [{name: a, type: webhook, url: ftp://x}]\n",
                "alerts.channels[0].url",
            ),
            (
                "alerts:\n  channels: [{name: a, type: syslog, target: 'udp:host'}]\n",
                "alerts.channels[0].target",
            ),
            (
                "alerts:\n  channels: [{name: a, type: syslog, target: 'unix:/dev/log', facility: mars}]\n",
                "alerts.channels[0].facility",
            ),
            (
                "alerts:\n  channels:\n    - {name: a, type: syslog, target: 'unix:/dev/log'}\n    - {name: a, type: syslog, target: 'unix:/dev/log'}\n",
                "alerts.channels[1].name",
            ),
            (
                "alerts:\n  channels: [{name: a, type: pager, url: 'https://x'}]\n",
                "alerts.channels[0]",
            ),
            (
                "alerts:\n  channels: [{name: a, type: webhook, url: 'https://x', secert: k}]\n",
                "alerts.channels[0]",
            ),
            // One string, two scopes: the read entry would have become admin.
            (
                "webui:\n  tokens:\n    - {name: a, token: bbbbbbbbbbbbbbbbbbbbbbbbbbbb, scope: admin}\n    - {name: b, token: bbbbbbbbbbbbbbbbbbbbbbbbbbbb, scope: read}\n",
                "webui.tokens[1].token",
            ),
            (
                "webui:\n  tokens: [{name: a, token: cccccccccccccccccccccccccccc, scope: read}]\n  auth_token: cccccccccccccccccccccccccccc\n",
                "webui.auth_token",
            ),
            (
                "webui:\n  limits: {max_connections: 0}\n",
                "webui.limits.max_connections",
            ),
            (
                "firewall:\n  interfaces: ['a/b']\n",
                "firewall.interfaces[0]",
            ),
            ("firewall:\n  tcp_in: [22, '80-70']\n", "firewall.tcp_in"),
            ("firewall:\n  udp_in: [0]\n", "firewall.udp_in"),
            (
                "firewall:\n  rate_limit: {pps: 10, burst: 0}\n",
                "firewall.rate_limit.burst",
            ),
            (
                "firewall:\n  port_scan: {ports: 300, window_ms: 10}\n",
                "firewall.port_scan.ports",
            ),
            (
                "firewall:\n  max_tracked_sources: 0\n",
                "firewall.max_tracked_sources",
            ),
            ("firewall:\n  allow: ['10.0.0.1/8']\n", "firewall.allow[0]"),
            ("infra_ips: ['198.51.100.1', 'x']\n", "infra_ips[1]"),
            ("firewall:\n  pin_dir: /tmp/pins\n", "firewall.pin_dir"),
            ("egress:\n  smtp_ports: [25, 0]\n", "egress.smtp_ports"),
            ("egress:\n  cgroup: relative\n", "egress.cgroup"),
            ("exec:\n  world_writable: [tmp]\n", "exec.world_writable[0]"),
            (
                "exec:\n  fanotify_roots: [home]\n",
                "exec.fanotify_roots[0]",
            ),
            ("egress:\n  enforce: maybe\n", "egress.enforce"),
        ] {
            let e = Config::from_layers(layers(&[yaml])).unwrap_err();
            assert!(
                e.to_string().contains(key),
                "{yaml:?}: expected key {key} in {e}"
            );
        }
    }

    #[test]
    fn port_specs_parse() {
        let c = Config::from_layers(layers(&[
            "firewall:\n  tcp_in: [22, '80', '30000-30100']\n",
        ]))
        .expect("valid");
        assert_eq!(
            c.firewall.tcp_in,
            vec![
                PortSpec {
                    first: 22,
                    last: 22
                },
                PortSpec {
                    first: 80,
                    last: 80
                },
                PortSpec {
                    first: 30000,
                    last: 30100
                }
            ]
        );
    }

    #[test]
    fn bad_yaml_is_an_error_not_a_panic() {
        let e = Config::from_layers(layers(&["webui: [unclosed\n"])).unwrap_err();
        assert!(matches!(e, ConfigError::Yaml { .. }), "{e}");
    }

    #[test]
    fn retention_bounds_that_would_keep_nothing_are_refused_by_name() {
        for (yaml, key) in [
            ("retention:\n  max_findings: 10\n", "retention.max_findings"),
            ("retention:\n  max_rows: 0\n", "retention.max_rows"),
            (
                "retention:\n  findings_log_bytes: 4096\n",
                "retention.findings_log_bytes",
            ),
            (
                "retention:\n  findings_log_files: 0\n",
                "retention.findings_log_files",
            ),
        ] {
            let e = Config::from_layers(layers(&[yaml])).unwrap_err();
            assert!(e.to_string().contains(key), "{yaml}: {e}");
        }
        let c = Config::from_layers(layers(&["retention:\n  days: 0\n"]))
            .expect("days 0 is by count only");
        assert_eq!((c.retention.days, c.retention.max_findings), (0, 100_000));
    }

    #[test]
    fn auto_reads_the_journal_where_one_is_kept_and_never_a_source_twice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let auth = dir.path().join("auth.log");
        std::fs::write(&auth, "").expect("write");
        let yaml = format!(
            "logs:\n  sshd: [{}]\n  dovecot: [{}/missing.log]\n  journald: {{mode: auto}}\n",
            auth.display(),
            dir.path().display()
        );
        let c = Config::from_layers(layers(&[&yaml])).expect("config");
        let sources = |kept| -> Vec<Source> {
            let mut v: Vec<Source> = c.logs.journal_identifiers(kept).into_values().collect();
            v.dedup();
            v
        };
        // A journal: every daemon is read there (its writer is known), files or not.
        assert_eq!(sources(true), [Source::Dovecot, Source::Ftp, Source::Sshd]);
        // None kept: only sources without a file.
        assert!(!sources(false).contains(&Source::Sshd));
        assert!(sources(false).contains(&Source::Dovecot));
    }

    #[test]
    fn load_reads_confd_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let main = dir.path().join("rampart.yaml");
        std::fs::write(&main, "state_dir: /tmp/x\n").expect("write");
        std::fs::create_dir(dir.path().join("conf.d")).expect("mkdir");
        std::fs::write(dir.path().join("conf.d/20-b.yaml"), "state_dir: /tmp/b\n").expect("write");
        std::fs::write(dir.path().join("conf.d/10-a.yaml"), "state_dir: /tmp/a\n").expect("write");
        std::fs::write(dir.path().join("conf.d/ignored.txt"), "state_dir: /tmp/z\n")
            .expect("write");
        let c = Config::load(&main).expect("load");
        assert_eq!(c.state_dir, PathBuf::from("/tmp/b"));
    }

    #[test]
    fn files_other_users_could_read_or_write_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let main = dir.path().join("rampart.yaml");
        let chmod = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod")
        };
        let secret =
            "webui:\n  tokens: [{name: op, token: dddddddddddddddddddddddddddd, scope: admin}]\n";
        std::fs::write(&main, secret).expect("write");
        chmod(&main, 0o644);
        let e = Config::load(&main).unwrap_err().to_string();
        assert!(e.contains("every local user read"), "{e}");
        chmod(&main, 0o600);
        Config::load(&main).expect("0600 with a token loads");
        chmod(&main, 0o640);
        Config::load(&main).expect("group-readable only warns");
        // Alert channels carry signing secrets, SMTP passwords and bot URLs.
        std::fs::write(
            &main,
            "alerts:\n  channels: [{name: siem, type: webhook, url: 'https://x.example/h', secret: s3cret}]\n",
        )
        .expect("write");
        chmod(&main, 0o644);
        let e = Config::load(&main).unwrap_err().to_string();
        assert!(e.contains("every local user read"), "{e}");
        // No token: world-readable is fine (the packaged default).
        std::fs::write(&main, "state_dir: /tmp/x\n").expect("write");
        chmod(&main, 0o644);
        Config::load(&main).expect("no secret, readable");
        chmod(&main, 0o666);
        let e = Config::load(&main).unwrap_err().to_string();
        assert!(e.contains("writable by group or others"), "{e}");
        chmod(&main, 0o644);
        // A drop-in directory others can write is someone else's config.
        let confd = dir.path().join("conf.d");
        std::fs::create_dir(&confd).expect("mkdir");
        chmod(&confd, 0o1777);
        let e = Config::load(&main).unwrap_err().to_string();
        assert!(e.contains("conf.d") && e.contains("writable"), "{e}");
        chmod(&confd, 0o755);
        let drop_in = confd.join("50-x.yaml");
        std::fs::write(&drop_in, "state_dir: /tmp/y\n").expect("write");
        // Owned by nobody: refused whatever its mode.
        nix::unistd::chown(&drop_in, Some(nix::unistd::Uid::from_raw(65534)), None)
            .expect("chown (the tests run as root)");
        let e = Config::load(&main).unwrap_err().to_string();
        assert!(e.contains("owned by uid 65534"), "{e}");
    }
}
