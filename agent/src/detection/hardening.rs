// SPDX-License-Identifier: GPL-2.0-only
//! The host hardening audit (`POST /api/v1/hardening/run`): what on this server makes
//! one customer's foothold worse for the others, read from the live system (sysctls,
//! mounts, sshd's and PHP's configs). Every check says what it read, and how to fix
//! it; a check whose component is absent here (no sshd config, no PHP) says so
//! instead of passing.
//!
//! Paths are read under `root` ("/" on a host; a directory in the tests).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One check's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Warn,
    /// The component is not on this host (or not readable).
    Na,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Check {
    pub id: String,
    pub title: String,
    pub status: Status,
    /// What was read.
    pub detail: String,
    /// How to fix a failure or warning ("" when it passes).
    pub fix: String,
}

/// A whole audit, as stored and served.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Report {
    pub ran_at: String,
    /// Passed checks out of those that apply here, 0-100.
    pub score: u32,
    pub passed: usize,
    pub failed: usize,
    pub warnings: usize,
    pub not_applicable: usize,
    pub checks: Vec<Check>,
}

/// The store key of the last report.
pub const SETTING: &str = "hardening.report";

/// (sysctl, wanted at least, title, why)
const SYSCTLS: &[(&str, i64, &str, &str)] = &[
    (
        "fs/protected_symlinks",
        1,
        "Symlinks in sticky directories followed only by their owner",
        "a customer's symlink in /tmp cannot redirect another user's (or root's) write",
    ),
    (
        "fs/protected_hardlinks",
        1,
        "Hard links only to files the user may write",
        "a customer cannot pin another user's file, or a setuid binary, with a hard link",
    ),
    (
        "fs/protected_regular",
        1,
        "O_CREAT never opens another user's file in a sticky directory",
        "spoofed files in /tmp are not opened by privileged writers",
    ),
    (
        "fs/protected_fifos",
        1,
        "O_CREAT never opens another user's FIFO in a sticky directory",
        "spoofed FIFOs in /tmp are not opened by privileged writers",
    ),
    (
        "kernel/kptr_restrict",
        1,
        "Kernel addresses hidden from users",
        "kernel pointers in /proc help exploits",
    ),
    (
        "kernel/dmesg_restrict",
        1,
        "Kernel log readable by root only",
        "the kernel log leaks addresses and other users' activity",
    ),
    (
        "kernel/unprivileged_bpf_disabled",
        1,
        "BPF closed to unprivileged users",
        "unprivileged BPF is a frequent kernel exploit path",
    ),
    (
        "kernel/yama/ptrace_scope",
        1,
        "ptrace only of a process's own descendants",
        "a customer's process cannot read another process of theirs that holds secrets",
    ),
    (
        "net/ipv4/tcp_syncookies",
        1,
        "SYN cookies on",
        "SYN floods cannot fill the accept queue",
    ),
];

fn read(root: &Path, rel: &str) -> Option<String> {
    std::fs::read_to_string(root.join(rel)).ok()
}

fn check(id: &str, title: &str, status: Status, detail: String, fix: &str) -> Check {
    Check {
        id: id.to_string(),
        title: title.to_string(),
        status,
        detail,
        fix: if status == Status::Pass {
            String::new()
        } else {
            fix.to_string()
        },
    }
}

fn sysctls(root: &Path) -> Vec<Check> {
    SYSCTLS
        .iter()
        .map(|(key, min, title, why)| {
            let name = key.replace('/', ".");
            let fix = format!("sysctl -w {name}={min} (and in /etc/sysctl.d/ to keep it): {why}");
            match read(root, &format!("proc/sys/{key}")).and_then(|v| v.trim().parse::<i64>().ok())
            {
                None => check(
                    &name,
                    title,
                    Status::Na,
                    format!("{name} is not on this kernel"),
                    "",
                ),
                Some(v) if v >= *min => {
                    check(&name, title, Status::Pass, format!("{name} = {v}"), "")
                }
                Some(v) => check(&name, title, Status::Fail, format!("{name} = {v}"), &fix),
            }
        })
        .collect()
}

/// io_uring lets a process open files no syscall tracepoint sees; closing it to
/// users is what makes the tracepoint file sensor whole (see docs/kernel.md).
fn io_uring(root: &Path) -> Check {
    let (id, title) = ("kernel.io_uring_disabled", "io_uring closed to users");
    match read(root, "proc/sys/kernel/io_uring_disabled").and_then(|v| v.trim().parse::<i64>().ok()) {
        None => check(id, title, Status::Na, "kernel.io_uring_disabled is not on this kernel".into(), ""),
        Some(v) if v >= 1 => check(id, title, Status::Pass, format!("{id} = {v}"), ""),
        Some(v) => check(
            id,
            title,
            Status::Warn,
            format!("{id} = {v}: users can open files through io_uring"),
            "sysctl -w kernel.io_uring_disabled=2 (1 keeps it for the io_uring_group): the tracepoint file sensor does not see io_uring opens",
        ),
    }
}

/// /tmp, /var/tmp and /dev/shm: writable by every customer, so no device nodes,
/// setuid binaries or (ideally) executables there.
fn mounts(root: &Path) -> Vec<Check> {
    let table = read(root, "proc/self/mounts").unwrap_or_default();
    ["/tmp", "/var/tmp", "/dev/shm"]
        .iter()
        .map(|dir| {
            let id = format!("mount{}", dir.replace('/', "."));
            let title = format!("{dir} mounted nosuid, nodev, noexec");
            let mut opts = table.lines().filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 4 && f[1] == *dir).then(|| f[3].to_string())
            });
            // The last mount on a path is the one in force.
            let Some(opts) = opts.next_back() else {
                return check(
                    &id,
                    &title,
                    Status::Na,
                    format!("{dir} is not a mount of its own"),
                    "",
                );
            };
            let has = |o: &str| opts.split(',').any(|x| x == o);
            let missing: Vec<&str> = ["nosuid", "nodev", "noexec"]
                .into_iter()
                .filter(|o| !has(o))
                .collect();
            let fix = format!(
                "mount {dir} with {} (fstab or a systemd .mount unit)",
                missing.join(",")
            );
            match missing.as_slice() {
                [] => check(&id, &title, Status::Pass, format!("{dir}: {opts}"), ""),
                ["noexec"] => check(&id, &title, Status::Warn, format!("{dir}: {opts}"), &fix),
                _ => check(&id, &title, Status::Fail, format!("{dir}: {opts}"), &fix),
            }
        })
        .collect()
}

/// sshd's effective setting for `key`: the first one wins (sshd's rule), the
/// drop-ins in sshd_config.d included where the main file includes them.
fn sshd_setting(root: &Path, key: &str) -> Option<Option<String>> {
    let main = read(root, "etc/ssh/sshd_config")?;
    let mut lines: Vec<String> = Vec::new();
    for l in main.lines() {
        let t = l.trim();
        if t.to_ascii_lowercase().starts_with("include") {
            let dir = root.join("etc/ssh/sshd_config.d");
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            for f in files {
                lines.extend(
                    std::fs::read_to_string(f)
                        .unwrap_or_default()
                        .lines()
                        .map(str::to_string),
                );
            }
        } else {
            lines.push(t.to_string());
        }
    }
    Some(lines.iter().find_map(|l| {
        let l = l.trim();
        if l.starts_with('#') || l.to_ascii_lowercase().starts_with("match ") {
            return None;
        }
        let (k, v) = l.split_once(char::is_whitespace)?;
        k.eq_ignore_ascii_case(key)
            .then(|| v.trim().to_ascii_lowercase())
    }))
}

fn sshd(root: &Path) -> Vec<Check> {
    let mut out = Vec::new();
    let na =
        |id: &str, title: &str| check(id, title, Status::Na, "no /etc/ssh/sshd_config".into(), "");
    let (id, title) = (
        "sshd.permit_root_login",
        "sshd refuses root logins with a password",
    );
    out.push(match sshd_setting(root, "PermitRootLogin") {
        None => na(id, title),
        Some(v) => {
            // OpenSSH's default is prohibit-password.
            let v = v.unwrap_or_else(|| "prohibit-password".into());
            let ok = matches!(
                v.as_str(),
                "no" | "prohibit-password" | "without-password" | "forced-commands-only"
            );
            let st = if ok { Status::Pass } else { Status::Fail };
            check(
                id,
                title,
                st,
                format!("PermitRootLogin {v}"),
                "PermitRootLogin prohibit-password (or no) in sshd_config",
            )
        }
    });
    let (id, title) = (
        "sshd.permit_empty_passwords",
        "sshd refuses empty passwords",
    );
    out.push(match sshd_setting(root, "PermitEmptyPasswords") {
        None => na(id, title),
        Some(v) => {
            let v = v.unwrap_or_else(|| "no".into());
            let st = if v == "no" {
                Status::Pass
            } else {
                Status::Fail
            };
            check(
                id,
                title,
                st,
                format!("PermitEmptyPasswords {v}"),
                "PermitEmptyPasswords no in sshd_config",
            )
        }
    });
    let (id, title) = (
        "sshd.password_authentication",
        "sshd takes keys, not passwords",
    );
    out.push(match sshd_setting(root, "PasswordAuthentication") {
        None => na(id, title),
        Some(v) => {
            let v = v.unwrap_or_else(|| "yes".into());
            let st = if v == "no" { Status::Pass } else { Status::Warn };
            check(id, title, st, format!("PasswordAuthentication {v}"), "PasswordAuthentication no once customers use keys; until then keep the sshd log watched (logs.sshd)")
        }
    });
    out
}

/// The functions a webshell needs to run commands.
const SHELL_FUNCTIONS: &[&str] = &[
    "exec",
    "system",
    "passthru",
    "shell_exec",
    "proc_open",
    "popen",
];

/// PHP's php.ini files on Debian, RHEL and cPanel (EasyApache) layouts.
fn php_inis(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (dir, tail) in [
        ("etc/php", "fpm/php.ini"),
        ("opt/cpanel", "root/etc/php.ini"),
    ] {
        if let Ok(d) = std::fs::read_dir(root.join(dir)) {
            for e in d.flatten() {
                let p = e.path().join(tail);
                if p.is_file() {
                    out.push(p);
                }
            }
        }
    }
    let rhel = root.join("etc/php.ini");
    if rhel.is_file() {
        out.push(rhel);
    }
    out.sort();
    out
}

fn php(root: &Path) -> Vec<Check> {
    let title = "PHP cannot run shell commands (disable_functions)";
    let inis = php_inis(root);
    if inis.is_empty() {
        return vec![check(
            "php.disable_functions",
            title,
            Status::Na,
            "no php.ini found".into(),
            "",
        )];
    }
    inis.iter()
        .map(|ini| {
            let rel = ini.strip_prefix(root).unwrap_or(ini).display().to_string();
            let id = format!("php.disable_functions:/{rel}");
            let text = std::fs::read_to_string(ini).unwrap_or_default();
            let disabled: Vec<String> = text
                .lines()
                .filter_map(|l| {
                    let (k, v) = l.trim().split_once('=')?;
                    (k.trim() == "disable_functions")
                        .then(|| v.trim().trim_matches('"').to_string())
                })
                .next_back()
                .map(|v| {
                    v.split(',')
                        .map(|f| f.trim().to_ascii_lowercase())
                        .collect()
                })
                .unwrap_or_default();
            let open: Vec<&str> = SHELL_FUNCTIONS
                .iter()
                .copied()
                .filter(|f| !disabled.iter().any(|d| d == f))
                .collect();
            let fix = format!(
                "add {} to disable_functions in /{rel} (where no site needs them)",
                open.join(",")
            );
            if open.is_empty() {
                check(
                    &id,
                    title,
                    Status::Pass,
                    format!("/{rel}: all of {} disabled", SHELL_FUNCTIONS.join(",")),
                    "",
                )
            } else {
                check(
                    &id,
                    title,
                    Status::Warn,
                    format!("/{rel}: {} allowed", open.join(",")),
                    &fix,
                )
            }
        })
        .collect()
}

/// Run every check under `root`.
pub fn audit(root: &Path) -> Report {
    let mut checks = sysctls(root);
    checks.push(io_uring(root));
    checks.extend(mounts(root));
    checks.extend(sshd(root));
    checks.extend(php(root));
    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    let (passed, failed, warnings, na) = (
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Warn),
        count(Status::Na),
    );
    let applicable = passed + failed + warnings;
    Report {
        ran_at: crate::store::now_rfc3339(),
        score: (passed * 100)
            .checked_div(applicable)
            .map_or(100, |s| s as u32),
        passed,
        failed,
        warnings,
        not_applicable: na,
        checks,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Write `text` at `rel` under a fake root (also for the accounts' tests).
    pub(crate) fn put(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    fn status(r: &Report, id: &str) -> Status {
        r.checks
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("{id} in {:#?}", r.checks))
            .status
    }

    #[test]
    fn each_check_reads_what_is_there_and_says_what_is_missing() {
        let d = tempfile::tempdir().expect("tmp");
        let root = d.path();
        put(root, "proc/sys/fs/protected_symlinks", "1\n");
        put(root, "proc/sys/fs/protected_hardlinks", "0\n");
        put(root, "proc/sys/kernel/io_uring_disabled", "0\n");
        put(root, "proc/self/mounts", "tmpfs /tmp tmpfs rw,nosuid,nodev 0 0\ntmpfs /dev/shm tmpfs rw,nosuid,nodev,noexec 0 0\n/dev/sda1 /var/tmp ext4 rw 0 0\n");
        put(
            root,
            "etc/ssh/sshd_config",
            "# PermitRootLogin yes\nInclude /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin no\n",
        );
        put(
            root,
            "etc/ssh/sshd_config.d/10-cloud.conf",
            "PermitRootLogin yes\nPasswordAuthentication no\n",
        );
        put(
            root,
            "etc/php/8.2/fpm/php.ini",
            "disable_functions = exec,system\n",
        );
        let r = audit(root);
        assert_eq!(status(&r, "fs.protected_symlinks"), Status::Pass);
        assert_eq!(status(&r, "fs.protected_hardlinks"), Status::Fail);
        assert_eq!(
            status(&r, "kernel.kptr_restrict"),
            Status::Na,
            "not in the fake /proc"
        );
        assert_eq!(status(&r, "kernel.io_uring_disabled"), Status::Warn);
        assert_eq!(status(&r, "mount.tmp"), Status::Warn, "noexec only");
        assert_eq!(status(&r, "mount.dev.shm"), Status::Pass);
        assert_eq!(status(&r, "mount.var.tmp"), Status::Fail);
        // The drop-in comes first (where the Include is): sshd takes the first value.
        assert_eq!(status(&r, "sshd.permit_root_login"), Status::Fail);
        assert_eq!(status(&r, "sshd.password_authentication"), Status::Pass);
        assert_eq!(
            status(&r, "sshd.permit_empty_passwords"),
            Status::Pass,
            "the default"
        );
        let php = r
            .checks
            .iter()
            .find(|c| c.id.starts_with("php."))
            .expect("php");
        assert_eq!(php.status, Status::Warn);
        assert!(
            php.detail.contains("passthru") && !php.detail.contains("system,"),
            "{php:?}"
        );
        let fail = r
            .checks
            .iter()
            .find(|c| c.status == Status::Fail)
            .expect("a failure");
        assert!(
            !fail.fix.is_empty(),
            "a failure says how to fix it: {fail:?}"
        );
        assert_eq!(
            r.passed + r.failed + r.warnings + r.not_applicable,
            r.checks.len()
        );
        assert!(r.score < 100);
    }

    #[test]
    fn a_host_without_the_components_is_not_applicable_not_passing() {
        let d = tempfile::tempdir().expect("tmp");
        let r = audit(d.path());
        assert_eq!(r.passed, 0);
        assert_eq!(r.not_applicable, r.checks.len(), "{:#?}", r.checks);
    }
}
