// SPDX-License-Identifier: GPL-2.0-only
//! Routes about the host itself: the hardening audit, the hosting accounts.

use std::{path::Path, sync::Arc};

use api::ApiError;
use serde::Serialize;
use warp::http::StatusCode;

use super::{ok, store_err, AgentBackend, Reply};
use crate::detection::hardening::{self, Report};

impl AgentBackend {
    pub(super) async fn hardening(&self) -> Result<Reply, ApiError> {
        let raw = self
            .store
            .setting(hardening::SETTING)
            .await
            .map_err(store_err)?;
        let Some(report) = raw.and_then(|r| serde_json::from_str::<Report>(&r).ok()) else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "no hardening audit has run yet: POST /api/v1/hardening/run",
            ));
        };
        ok(&report)
    }

    pub(super) async fn hardening_run(&self, actor: &str) -> Result<Reply, ApiError> {
        let report = tokio::task::spawn_blocking(|| hardening::audit(std::path::Path::new("/")))
            .await
            .map_err(|e| ApiError::internal("hardening audit", &e))?;
        let blob = serde_json::to_string(&report)
            .map_err(|e| ApiError::internal("serializing the report", &e))?;
        self.store
            .set_settings(vec![(hardening::SETTING.into(), Some(blob))])
            .await
            .map_err(store_err)?;
        self.audit(
            actor,
            "hardening_run",
            "host",
            &format!("score {}", report.score),
            None,
        )
        .await;
        ok(&report)
    }
}

/// A hosting account: a cPanel user where cPanel is installed, else a login user
/// of this host (UID_MIN and up, as useradd numbers them).
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub home: String,
    pub shell: String,
    /// "cpanel" or "passwd".
    pub source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub suspended: bool,
    /// Active findings attributed to the account.
    pub findings_active: i64,
}

/// `GET /account?name=`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AccountDetail {
    pub account: Account,
    /// Active findings attributed to it.
    pub findings: Vec<api::model::Finding>,
    /// Its last 100 findings, any status, newest first.
    pub history: Vec<api::model::Finding>,
    /// Files quarantined from under its home.
    pub quarantine: Vec<crate::store::QuarantineRow>,
}

fn uid_min(root: &Path) -> u32 {
    std::fs::read_to_string(root.join("etc/login.defs"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some("UID_MIN"))
                    .then(|| f.next()?.parse().ok())
                    .flatten()
            })
        })
        .unwrap_or(1000)
}

/// The accounts of the host under `root`: cPanel's user files
/// (`/var/cpanel/users/<name>`, `KEY=value` lines) when there are any, matched to
/// their passwd entries; else every passwd user from UID_MIN up (not nobody).
pub fn accounts(root: &Path) -> Vec<Account> {
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
    let users: Vec<(String, u32, String, String)> = passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() == 7).then(|| {
                Some((
                    f[0].to_string(),
                    f[2].parse().ok()?,
                    f[5].to_string(),
                    f[6].to_string(),
                ))
            })?
        })
        .collect();
    let cpanel_dir = root.join("var/cpanel/users");
    let mut cpanel: Vec<String> = std::fs::read_dir(&cpanel_dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.') && n != "system")
                .collect()
        })
        .unwrap_or_default();
    cpanel.sort();
    let mut out = Vec::new();
    if !cpanel.is_empty() {
        for name in cpanel {
            let text = std::fs::read_to_string(cpanel_dir.join(&name)).unwrap_or_default();
            let key = |k: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                    .map(str::to_string)
                    .filter(|v| !v.is_empty())
            };
            let Some((_, uid, home, shell)) = users.iter().find(|u| u.0 == name).cloned() else {
                continue;
            };
            out.push(Account {
                suspended: key("SUSPENDED").is_some_and(|v| v == "1"),
                domain: key("DNS"),
                plan: key("PLAN"),
                owner: key("OWNER"),
                name,
                uid,
                home,
                shell,
                source: "cpanel",
                findings_active: 0,
            });
        }
        return out;
    }
    let min = uid_min(root);
    for (name, uid, home, shell) in users {
        if uid < min || uid >= 60_000 || name == "nobody" {
            continue;
        }
        out.push(Account {
            name,
            uid,
            home,
            shell,
            source: "passwd",
            domain: None,
            plan: None,
            owner: None,
            suspended: false,
            findings_active: 0,
        });
    }
    out
}

impl AgentBackend {
    async fn accounts_with_counts(&self) -> Result<Vec<Account>, ApiError> {
        let mut list = tokio::task::spawn_blocking(|| accounts(Path::new("/")))
            .await
            .map_err(|e| ApiError::internal("reading accounts", &e))?;
        let counts = self.store.active_by_account().await.map_err(store_err)?;
        for a in &mut list {
            a.findings_active = counts
                .iter()
                .find(|(n, _)| *n == a.name)
                .map_or(0, |(_, n)| *n);
        }
        Ok(list)
    }

    pub(super) async fn accounts_list(&self) -> Result<Reply, ApiError> {
        ok(&self.accounts_with_counts().await?)
    }

    pub(super) async fn account_detail(&self, name: String) -> Result<Reply, ApiError> {
        let Some(account) = self
            .accounts_with_counts()
            .await?
            .into_iter()
            .find(|a| a.name == name)
        else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no account {name:?} on this host"),
            ));
        };
        let query = |status: Option<&str>, limit| crate::store::FindingQuery {
            status: status.map(str::to_string),
            account: Some(name.clone()),
            limit,
            ..Default::default()
        };
        let (findings, _) = self
            .store
            .query_findings(query(Some("active"), 1000))
            .await
            .map_err(store_err)?;
        let (history, _) = self
            .store
            .query_findings(query(None, 100))
            .await
            .map_err(store_err)?;
        let home = format!("{}/", account.home.trim_end_matches('/'));
        let quarantine = self
            .store
            .quarantine_rows(None, true)
            .await
            .map_err(store_err)?
            .into_iter()
            .filter(|q| account.home.len() > 1 && q.original_path.starts_with(&home))
            .collect();
        ok(&AccountDetail {
            account,
            findings,
            history,
            quarantine,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::hardening::tests::put;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n\
        alice:x:1001:1001::/home/alice:/bin/bash\n\
        bob:x:1002:1002::/home/bob:/usr/sbin/nologin\n\
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
        broken line\n";

    #[test]
    fn login_users_are_the_accounts_without_cpanel() {
        let d = tempfile::tempdir().expect("tmp");
        put(d.path(), "etc/passwd", PASSWD);
        let names: Vec<String> = accounts(d.path()).into_iter().map(|a| a.name).collect();
        assert_eq!(names, ["alice", "bob"]);
        put(d.path(), "etc/login.defs", "# comment\nUID_MIN\t\t 1002\n");
        let names: Vec<String> = accounts(d.path()).into_iter().map(|a| a.name).collect();
        assert_eq!(names, ["bob"], "UID_MIN from login.defs");
    }

    #[test]
    fn cpanel_users_come_from_their_files() {
        let d = tempfile::tempdir().expect("tmp");
        put(d.path(), "etc/passwd", PASSWD);
        put(
            d.path(),
            "var/cpanel/users/bob",
            "DNS=bob.example\nPLAN=gold\nOWNER=root\nSUSPENDED=1\n",
        );
        put(d.path(), "var/cpanel/users/ghost", "DNS=ghost.example\n");
        put(d.path(), "var/cpanel/users/system", "");
        let a = accounts(d.path());
        assert_eq!(
            a.len(),
            1,
            "alice is no cPanel account, ghost has no passwd entry: {a:?}"
        );
        assert_eq!(
            (
                a[0].name.as_str(),
                a[0].domain.as_deref(),
                a[0].plan.as_deref(),
                a[0].suspended,
                a[0].source
            ),
            ("bob", Some("bob.example"), Some("gold"), true, "cpanel")
        );
    }
}

/// An address `/geoip/batch` could not read.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct NotAnAddress {
    pub ip: String,
    pub error: String,
}

/// One answer of `/geoip/batch`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum BatchItem {
    Found(Box<crate::firewall::geoip::Location>),
    Bad(NotAnAddress),
}

impl AgentBackend {
    fn geoip_ready(&self) -> Result<Arc<crate::firewall::geoip::GeoIp>, ApiError> {
        let g = self.geoip.get();
        if g.available() {
            Ok(g)
        } else {
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no GeoIP database on this host: set geoip.city_db and geoip.asn_db (MaxMind GeoLite2/GeoIP2 .mmdb files, as geoipupdate fetches them)",
            ))
        }
    }

    pub(super) fn geoip_lookup(&self, ip: &str, detail: bool) -> Result<Reply, ApiError> {
        let g = self.geoip_ready()?;
        let ip = ip
            .parse()
            .map_err(|_| ApiError::bad_request(format!("{ip:?} is not an IP address")))?;
        ok(&g.lookup(ip, detail))
    }

    pub(super) fn geoip_batch(&self, ips: Vec<String>) -> Result<Reply, ApiError> {
        let g = self.geoip_ready()?;
        let out: Vec<BatchItem> = ips
            .into_iter()
            .map(|raw| match raw.trim().parse() {
                Ok(ip) => BatchItem::Found(Box::new(g.lookup(ip, false))),
                Err(_) => BatchItem::Bad(NotAnAddress {
                    error: format!("{raw:?} is not an IP address"),
                    ip: raw,
                }),
            })
            .collect();
        ok(&out)
    }
}

/// `GET /performance`: what this host measures now, read from /proc and statvfs.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Performance {
    pub cpus: usize,
    /// 1, 5 and 15 minute load averages, and per CPU.
    pub load: [f64; 3],
    pub load_per_cpu: [f64; 3],
    pub memory: Memory,
    pub uptime_seconds: u64,
    /// Filesystems of the state directory and the watched trees.
    pub disks: Vec<Disk>,
    /// The agent's own share.
    pub agent: AgentUsage,
    /// Processes running PHP (php, php-fpm, lsphp), as web load.
    pub php_processes: usize,
}

#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct Memory {
    pub total_mb: u64,
    pub available_mb: u64,
    pub used_pct: f64,
    pub swap_total_mb: u64,
    pub swap_used_mb: u64,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Disk {
    pub path: String,
    pub total_mb: u64,
    pub free_mb: u64,
    pub used_pct: f64,
    pub inodes_free: u64,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AgentUsage {
    pub rss_mb: f64,
    /// CPU seconds (user + system) since it started.
    pub cpu_seconds: f64,
    pub threads: u64,
}

/// `/proc/meminfo` values in kB.
fn meminfo(root: &Path) -> Memory {
    let text = std::fs::read_to_string(root.join("proc/meminfo")).unwrap_or_default();
    let kb = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (total, avail) = (kb("MemTotal"), kb("MemAvailable"));
    let (swap, swap_free) = (kb("SwapTotal"), kb("SwapFree"));
    Memory {
        total_mb: total / 1024,
        available_mb: avail / 1024,
        used_pct: if total == 0 {
            0.0
        } else {
            (total - avail.min(total)) as f64 * 100.0 / total as f64
        },
        swap_total_mb: swap / 1024,
        swap_used_mb: swap.saturating_sub(swap_free) / 1024,
    }
}

fn loadavg(root: &Path) -> [f64; 3] {
    let text = std::fs::read_to_string(root.join("proc/loadavg")).unwrap_or_default();
    let mut it = text
        .split_whitespace()
        .map(|v| v.parse::<f64>().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// The agent's RSS, CPU time and threads from /proc/self.
fn own_usage() -> AgentUsage {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| crate::supervisor::memory::status_field(&status, k);
    // utime and stime are fields 14 and 15 of /proc/self/stat, after the comm field
    // (which may hold spaces: split after its closing parenthesis).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|h| *h > 0)
        .unwrap_or(100) as f64;
    AgentUsage {
        rss_mb: field("VmRSS:") as f64 / 1024.0,
        cpu_seconds: ticks as f64 / hz,
        threads: field("Threads:"),
    }
}

fn php_processes() -> usize {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("comm"))
                        .is_ok_and(|c| c.starts_with("php") || c.starts_with("lsphp"))
                })
                .count()
        })
        .unwrap_or(0)
}

fn disk(path: &Path) -> Option<Disk> {
    let fs = nix::sys::statvfs::statvfs(path).ok()?;
    let frag = fs.fragment_size() as u64;
    let total = fs.blocks() as u64 * frag;
    let free = fs.blocks_available() as u64 * frag;
    Some(Disk {
        path: path.display().to_string(),
        total_mb: total / (1024 * 1024),
        free_mb: free / (1024 * 1024),
        used_pct: if total == 0 {
            0.0
        } else {
            (total - free.min(total)) as f64 * 100.0 / total as f64
        },
        inodes_free: fs.files_available() as u64,
    })
}

impl AgentBackend {
    pub(super) async fn performance(&self) -> Result<Reply, ApiError> {
        let mut paths = vec![self.state_dir.clone()];
        paths.extend(self.watched.iter().cloned());
        let perf = tokio::task::spawn_blocking(move || {
            let root = Path::new("/");
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            let load = loadavg(root);
            let uptime = std::fs::read_to_string("/proc/uptime")
                .ok()
                .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok())
                .unwrap_or(0.0) as u64;
            let mut disks: Vec<Disk> = Vec::new();
            for p in paths {
                if let Some(d) = disk(&p) {
                    disks.push(d);
                }
            }
            Performance {
                cpus,
                load,
                load_per_cpu: load.map(|l| l / cpus as f64),
                memory: meminfo(root),
                uptime_seconds: uptime,
                disks,
                agent: own_usage(),
                php_processes: php_processes(),
            }
        })
        .await
        .map_err(|e| ApiError::internal("reading host measures", &e))?;
        ok(&perf)
    }
}

#[cfg(test)]
mod perf_tests {
    use super::*;

    #[test]
    fn proc_files_are_read_and_garbage_is_zero() {
        let d = tempfile::tempdir().expect("tmp");
        std::fs::create_dir(d.path().join("proc")).expect("mkdir");
        std::fs::write(d.path().join("proc/meminfo"), "MemTotal:       2048000 kB\nMemFree: 1 kB\nMemAvailable:   1024000 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n").expect("w");
        std::fs::write(d.path().join("proc/loadavg"), "0.50 1.25 2.00 1/100 42\n").expect("w");
        let m = meminfo(d.path());
        assert_eq!((m.total_mb, m.available_mb, m.used_pct), (2000, 1000, 50.0));
        assert_eq!(loadavg(d.path()), [0.5, 1.25, 2.0]);
        std::fs::write(d.path().join("proc/loadavg"), "garbage").expect("w");
        assert_eq!(loadavg(d.path()), [0.0, 0.0, 0.0]);
        assert!(own_usage().rss_mb > 0.0);
        assert!(disk(d.path()).is_some_and(|x| x.total_mb > 0));
    }
}

/// `POST /perf/fix-*`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct PerfFixed {
    pub status: &'static str,
    pub id: i64,
    pub check: String,
    pub path: String,
    #[serde(flatten)]
    pub applied: crate::detection::perf::Applied,
}

impl AgentBackend {
    /// Fix the performance finding `r` names, which must be of `check`.
    pub(super) async fn perf_fix(
        &self,
        check: &'static str,
        r: api::model::FindingRef,
        actor: &str,
    ) -> Result<Reply, ApiError> {
        use crate::detection::perf::{self, FixError};
        let named = r.id.is_some() || !r.ids.is_empty() || r.check.is_some();
        let id = if named {
            self.resolve(&r).await?.first().copied()
        } else {
            let want = r.file_path.clone().unwrap_or_default();
            let (rows, _) = self
                .store
                .query_findings(crate::store::FindingQuery {
                    status: Some("active".into()),
                    check: Some(check.into()),
                    limit: 1000,
                    ..Default::default()
                })
                .await
                .map_err(store_err)?;
            rows.into_iter()
                .find(|f| f.path.as_deref() == Some(want.as_str()))
                .map(|f| f.id)
        };
        let Some(id) = id else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no active {check} finding matches"),
            ));
        };
        let f = self.finding_or_404(id).await?;
        if f.check != check {
            return Err(ApiError::unprocessable(format!(
                "finding {id} is {:?}, not {check}",
                f.check
            )));
        }
        let path = f.path.clone().unwrap_or_default();
        if r.file_path
            .as_deref()
            .is_some_and(|p| !p.is_empty() && p != path)
        {
            return Err(ApiError::unprocessable(format!(
                "finding {id} is about {path}, not {:?}",
                r.file_path.unwrap_or_default()
            )));
        }
        let roots = self.detection.quarantine.roots().to_vec();
        let target = std::path::PathBuf::from(&path);
        let done = tokio::task::spawn_blocking(move || perf::fix(check, &target, &roots))
            .await
            .map_err(|e| ApiError::internal("perf fix task", &e))?;
        let applied = match done {
            Ok(a) => a,
            // The file is as the fix would leave it: the finding is resolved all the same.
            Err(FixError::AlreadyFixed(why)) => perf::Applied {
                action: "none",
                freed_bytes: 0,
                note: why,
            },
            Err(FixError::NotFound(m)) => return Err(ApiError::new(StatusCode::NOT_FOUND, m)),
            Err(FixError::Refused(m)) => return Err(ApiError::unprocessable(m)),
            Err(e @ FixError::Io { .. }) => return Err(ApiError::internal("perf fix", &e)),
        };
        self.store
            .set_finding_status(vec![id], "fixed", actor.to_string())
            .await
            .map_err(store_err)?;
        self.audit(actor, "perf_fix", &path, applied.action, Some(id))
            .await;
        ok(&PerfFixed {
            status: "fixed",
            id,
            check: f.check,
            path,
            applied,
        })
    }
}
