// SPDX-License-Identifier: GPL-2.0-only
//! journald as a source, for daemons that log only to the journal (Debian 12 without
//! rsyslog has no auth.log). One `journalctl --follow --output=json` child reads the
//! entries of the configured `SYSLOG_IDENTIFIER`s; each entry becomes the syslog line
//! its source's grammar reads (`<RFC 3339> <host> <ident>[<pid>]: <message>`), so
//! the journal and a log file go through the same parser and scenarios. The cursor
//! is saved with the file offsets: a restart resumes after the last entry read.
//!
//! An entry counts only when the journal says the daemon itself wrote it: any local
//! process can log with `SYSLOG_IDENTIFIER=sshd` (`logger -t sshd`), but journald
//! fills the underscore fields from the sender's kernel credentials, which no
//! process chooses. [`writer`] wants a system account (`_UID` below 1000), and an
//! `_EXE` that is that daemon's binary in a system directory no user can write to.
//! Everything else is counted as `untrusted` and dropped: a forged line costs the
//! forger nothing but is never charged to the address it names.

use std::{collections::BTreeMap, path::Path, process::Stdio};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader, Lines},
    process::{Child, ChildStdout, Command},
};

use super::{grammar::bounded, Source};

/// The settings key of the saved cursor.
pub const CURSOR_KEY: &str = "logs.journald.cursor";

/// A journal field as text: journalctl writes non-UTF-8 values as byte arrays.
fn field(v: &Value, name: &str) -> Option<String> {
    match v.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Array(bytes) => {
            let b: Vec<u8> = bytes
                .iter()
                .filter_map(|x| x.as_u64().and_then(|n| u8::try_from(n).ok()))
                .collect();
            Some(String::from_utf8_lossy(&b).into_owned())
        }
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A journal entry as (its source, its syslog line, its cursor).
pub type Entry = (Source, String, Option<String>);

/// Why an entry of a configured identifier is not read.
#[derive(Debug, PartialEq, Eq)]
pub enum Skip {
    /// Not a journal entry the agent can read.
    Malformed(&'static str),
    /// Not written by the daemon its identifier names.
    Untrusted(&'static str),
}

/// Directories daemons are installed in; only root can write to them.
const SYSTEM_DIRS: &[&str] = &["/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/"];

/// The executables (base names) that write each source's lines.
fn daemon_exes(source: Source) -> &'static [&'static str] {
    match source {
        Source::Sshd => &["sshd", "sshd-session", "sshd-auth"],
        // dovecot logs through its master or its `log` service; its login and auth
        // processes can also log directly.
        Source::Dovecot => &[
            "dovecot",
            "log",
            "auth",
            "imap-login",
            "pop3-login",
            "imap",
            "pop3",
            "submission-login",
            "managesieve-login",
            "lmtp",
        ],
        Source::Exim => &["exim", "exim4"],
        Source::Ftp => &["pure-ftpd", "proftpd", "vsftpd"],
        Source::Cpanel => &["cpsrvd", "cpaneld", "whostmgrd", "webmaild"],
        Source::Access | Source::Modsec => &["httpd", "apache2", "nginx", "lshttpd", "litespeed"],
    }
}

/// Did the daemon of `source` write entry `v`? See the module docs.
pub fn writer(v: &Value, source: Source) -> Result<(), &'static str> {
    use std::os::unix::fs::MetadataExt;
    let uid: u32 = field(v, "_UID")
        .and_then(|u| u.parse().ok())
        .ok_or("no _UID (not from a local process)")?;
    if uid >= super::tail::USER_ID_START {
        return Err("written by a user account (_UID 1000 or above)");
    }
    let exe = field(v, "_EXE").ok_or("no _EXE")?;
    let path = Path::new(&exe);
    let base = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("_EXE names no file")?;
    if !daemon_exes(source).contains(&base) {
        return Err("_EXE is not that daemon");
    }
    if !SYSTEM_DIRS.iter().any(|d| exe.starts_with(d)) || exe.contains("/../") {
        return Err("_EXE outside the system directories");
    }
    // Where the directory still exists, it must be root's alone.
    if let Some(meta) = path.parent().and_then(|d| std::fs::metadata(d).ok()) {
        if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
            return Err("_EXE in a directory others can write to");
        }
    }
    Ok(())
}

/// One `journalctl -o json` entry → (source, syslog line, cursor); `None` for an
/// entry of an identifier not configured, or without a message.
pub fn entry(json: &str, identifiers: &BTreeMap<String, Source>) -> Result<Option<Entry>, Skip> {
    let v: Value = serde_json::from_str(json).map_err(|_| Skip::Malformed("not a JSON entry"))?;
    let cursor = field(&v, "__CURSOR");
    let Some(ident) = field(&v, "SYSLOG_IDENTIFIER") else {
        return Ok(None);
    };
    let Some(source) = identifiers.get(&ident).copied() else {
        return Ok(None);
    };
    let Some(message) = field(&v, "MESSAGE") else {
        return Ok(None);
    };
    writer(&v, source).map_err(Skip::Untrusted)?;
    let micros: i64 = field(&v, "__REALTIME_TIMESTAMP")
        .and_then(|t| t.parse().ok())
        .ok_or(Skip::Malformed("no __REALTIME_TIMESTAMP"))?;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .map_err(|_| Skip::Malformed("__REALTIME_TIMESTAMP out of range"))?;
    let ts = t
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|_| Skip::Malformed("unformattable time"))?;
    let host = field(&v, "_HOSTNAME")
        .filter(|h| !h.is_empty() && !h.contains(' '))
        .unwrap_or_else(|| "localhost".into());
    let pid = field(&v, "SYSLOG_PID")
        .or_else(|| field(&v, "_PID"))
        .and_then(|p| p.parse::<u32>().ok());
    let tag = match pid {
        Some(p) => format!("{ident}[{p}]"),
        None => ident,
    };
    // One line per entry: a multi-line message is joined.
    let message = bounded(&message.replace(['\n', '\r'], " "), super::tail::MAX_LINE);
    Ok(Some((
        source,
        format!("{ts} {host} {tag}: {message}"),
        cursor,
    )))
}

/// Whether this host keeps a journal journalctl can follow: `directory` when set,
/// else a machine directory with journal files under /run/log/journal (volatile) or
/// /var/log/journal (persistent). `Storage=none` keeps neither.
pub fn kept(directory: &Path) -> bool {
    if !directory.as_os_str().is_empty() {
        return directory.is_dir();
    }
    [Path::new("/run/log/journal"), Path::new("/var/log/journal")]
        .iter()
        .any(|root| has_journal_files(root))
}

fn has_journal_files(root: &Path) -> bool {
    let Ok(machines) = std::fs::read_dir(root) else {
        return false;
    };
    machines.flatten().any(|m| {
        std::fs::read_dir(m.path()).is_ok_and(|files| {
            files.flatten().any(|f| {
                f.file_name()
                    .to_str()
                    .is_some_and(|n| n.ends_with(".journal") || n.ends_with(".journal~"))
            })
        })
    })
}

/// The running `journalctl`.
pub struct Journal {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Journal {
    /// Follow the entries of `identifiers` (all ORed), after `cursor` when there is
    /// one, else from now; in `directory` instead of the system journal when set.
    pub fn spawn(
        identifiers: &BTreeMap<String, Source>,
        directory: &Path,
        cursor: Option<&str>,
    ) -> std::io::Result<Self> {
        let mut cmd = Command::new("journalctl");
        cmd.args(["--follow", "--output=json", "--no-pager", "--quiet"]);
        if !directory.as_os_str().is_empty() {
            cmd.arg("--directory").arg(directory);
        }
        match cursor {
            Some(c) => cmd.arg(format!("--after-cursor={c}")),
            None => cmd.arg("--lines=0"),
        };
        for ident in identifiers.keys() {
            cmd.arg(format!("SYSLOG_IDENTIFIER={ident}"));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("journalctl without stdout"))?;
        Ok(Self {
            child,
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// The next JSON line; `None` when journalctl has ended.
    pub async fn next_line(&mut self) -> Option<String> {
        match self.lines.next_line().await {
            Ok(Some(l)) => Some(l),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "Reading journalctl failed.");
                None
            }
        }
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    /// How journalctl ended (after [`Journal::next_line`] said it had), for the
    /// watcher's failure reason; one that is somehow still running is killed.
    pub async fn exit_status(mut self) -> String {
        let waited =
            tokio::time::timeout(std::time::Duration::from_secs(1), self.child.wait()).await;
        match waited {
            Ok(Ok(st)) => st.to_string(),
            Ok(Err(e)) => format!("wait failed: {e}"),
            Err(_) => {
                let _ = self.child.kill().await;
                "its output closed; killed".into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_is_kept_only_where_journal_files_are() {
        let root = tempfile::tempdir().expect("tempdir");
        assert!(!has_journal_files(root.path()), "empty");
        let machine = root.path().join("0123456789abcdef0123456789abcdef");
        std::fs::create_dir(&machine).expect("mkdir");
        std::fs::write(machine.join("README"), "").expect("write");
        assert!(
            !has_journal_files(root.path()),
            "no journal file (Storage=none)"
        );
        std::fs::write(machine.join("system.journal"), "").expect("write");
        assert!(has_journal_files(root.path()));
        assert!(kept(root.path()), "an explicit directory");
        assert!(!kept(&root.path().join("absent")));
    }

    fn idents() -> BTreeMap<String, Source> {
        [
            ("sshd".to_string(), Source::Sshd),
            ("dovecot".to_string(), Source::Dovecot),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn journalctl_json_entries_become_syslog_lines_the_grammars_read() {
        // As `journalctl -o json` prints it (fields trimmed).
        let j = r#"{"__CURSOR":"s=abc;i=1f","__REALTIME_TIMESTAMP":"1795446001500000","_HOSTNAME":"web1","SYSLOG_IDENTIFIER":"sshd","_PID":"4242","_UID":"0","_EXE":"/usr/sbin/sshd","MESSAGE":"Failed password for root from 203.0.113.5 port 22 ssh2"}"#;
        let (source, line, cursor) = entry(j, &idents()).expect("entry").expect("kept");
        assert_eq!(source, Source::Sshd);
        assert_eq!(cursor.as_deref(), Some("s=abc;i=1f"));
        assert_eq!(
            line,
            "2026-11-23T15:00:01.5Z web1 sshd[4242]: Failed password for root from 203.0.113.5 port 22 ssh2"
        );
        let ev = crate::logs::Parser::new(source)
            .feed(&line)
            .expect("parses");
        assert_eq!(
            ev.and_then(|e| e.ip()).map(|i| i.to_string()).as_deref(),
            Some("203.0.113.5")
        );
        // Non-UTF-8 messages come as byte arrays.
        let j = r#"{"__REALTIME_TIMESTAMP":"1795446001000000","SYSLOG_IDENTIFIER":"dovecot","_UID":"0","_EXE":"/usr/sbin/dovecot","MESSAGE":[105,109,97,112,255]}"#;
        let (_, line, _) = entry(j, &idents()).expect("entry").expect("kept");
        assert!(line.ends_with("dovecot: imap\u{fffd}"), "{line}");
    }

    #[test]
    fn other_identifiers_and_bad_entries() {
        let other = r#"{"__REALTIME_TIMESTAMP":"1","SYSLOG_IDENTIFIER":"cron","MESSAGE":"x"}"#;
        assert_eq!(entry(other, &idents()), Ok(None));
        assert_eq!(
            entry("{not json", &idents()),
            Err(Skip::Malformed("not a JSON entry"))
        );
        let no_time =
            r#"{"SYSLOG_IDENTIFIER":"sshd","_UID":"0","_EXE":"/usr/sbin/sshd","MESSAGE":"x"}"#;
        assert_eq!(
            entry(no_time, &idents()),
            Err(Skip::Malformed("no __REALTIME_TIMESTAMP"))
        );
        let multi = r#"{"__REALTIME_TIMESTAMP":"1795446001000000","SYSLOG_IDENTIFIER":"sshd","_UID":"0","_EXE":"/usr/sbin/sshd","MESSAGE":"a\nb"}"#;
        assert!(entry(multi, &idents())
            .expect("entry")
            .expect("kept")
            .1
            .ends_with("sshd: a b"));
    }

    /// `logger -t sshd` by a customer, the same from PHP as www-data, a renamed
    /// process, a daemon binary of the customer's own: none is read as sshd.
    #[test]
    fn forged_identifiers_are_untrusted() {
        let line = |fields: &str| {
            format!(
                r#"{{"__REALTIME_TIMESTAMP":"1795446001000000","SYSLOG_IDENTIFIER":"sshd",{fields},"MESSAGE":"Failed password for root from 198.51.100.77 port 22 ssh2"}}"#
            )
        };
        for (fields, why) in [
            (r#""_UID":"1001","_EXE":"/usr/bin/logger""#, "user account"),
            (r#""_UID":"33","_EXE":"/usr/bin/logger""#, "not that daemon"),
            (
                r#""_UID":"33","_EXE":"/home/alice/sshd""#,
                "outside the system",
            ),
            (
                r#""_UID":"33","_EXE":"/usr/../home/alice/sshd""#,
                "outside the system",
            ),
            (r#""_UID":"0""#, "no _EXE"),
            (r#""_EXE":"/usr/sbin/sshd""#, "no _UID"),
            (r#""_UID":"1001","_EXE":"/usr/sbin/sshd""#, "user account"),
        ] {
            match entry(&line(fields), &idents()) {
                Err(Skip::Untrusted(r)) => assert!(r.contains(why), "{fields}: {r}"),
                other => panic!("{fields}: {other:?}"),
            }
        }
        assert!(matches!(
            entry(
                &line(r#""_UID":"0","_EXE":"/usr/sbin/sshd-session""#),
                &idents()
            ),
            Ok(Some(_))
        ));
    }
}
