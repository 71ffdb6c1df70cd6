// SPDX-License-Identifier: GPL-2.0-only
//! The forward guard: forwarded copies exim held instead of sending off the host
//! (bounces and spam to a forwarder, which would make this server a source of
//! backscatter and spam). exim decides and writes them, through the router and
//! transport Rampart ships (`packaging/exim/forward-guard.conf`), into a Maildir
//! (`mail.forward_guard.held_dir`) with `X-Rampart-*` headers naming the forwarder,
//! the external recipient, the sender and why. Rampart lists them, reports each
//! forwarder that has copies held (`forward_held`), releases a copy to its recipient
//! through exim (the control headers stripped), deletes, and discards copies older
//! than `retention_days`.
//!
//! The Maildir's files are written by exim from mail strangers sent: every read is
//! bounded, no symlink is followed, ids are Maildir names checked here, and a
//! recipient or sender is passed to exim only after `--`, as addresses it checks.

use std::{
    collections::HashSet,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::Serialize;

use crate::{findings::Findings, store::NewFinding};

pub const CHECK_FORWARD_HELD: &str = "forward_held";
/// The router and transport to add to exim's configuration.
pub const EXIM_SNIPPET: &str = include_str!("../../packaging/exim/forward-guard.conf");
/// The held directory the snippet names as shipped.
pub const DEFAULT_HELD_DIR: &str = "/var/spool/rampart/forward-held";
/// Bytes of a held copy read for its headers, and whole for a release.
const MAX_HEADER: u64 = 64 * 1024;
const MAX_MESSAGE: u64 = 64 << 20;
/// Held copies listed at most.
const MAX_LISTED: usize = 50_000;
const RELEASE_TIMEOUT: Duration = Duration::from_secs(60);

/// One held copy (CSM's shape).
#[derive(Clone, Debug, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct HeldMessage {
    /// The Maildir file name.
    pub id: String,
    /// The local address whose forwarder made the copy.
    pub forwarder: String,
    /// The external address the copy was for.
    pub recipient: String,
    /// The envelope sender ("" for a bounce).
    pub sender: String,
    /// bounce_backscatter, spam_flagged.
    pub reasons: Vec<String>,
    /// RFC 3339.
    pub held_at: String,
    pub size: u64,
    /// `held_at` as Unix seconds (retention and order).
    #[serde(skip)]
    pub held_unix: i64,
}

/// `POST /email/held/{id}/release` and `DELETE /email/held/{id}`.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct HeldAction {
    /// released or deleted.
    pub status: &'static str,
    pub id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("no held copy {0:?}")]
    NotFound(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Refused(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

/// Is `id` a Maildir file name (no path, no dot file)?
fn is_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._,:=-".contains(&b))
}

/// A header-safe address: no whitespace, control characters or leading dash.
fn is_address(a: &str) -> bool {
    !a.starts_with('-')
        && a.len() <= 512
        && a.contains('@')
        && !a
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
}

/// The header block: up to the first empty line.
fn header_end(data: &[u8]) -> usize {
    let mut off = 0;
    while off < data.len() {
        let nl = data[off..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(data.len(), |i| off + i + 1);
        let line = &data[off..nl];
        if line.iter().all(|b| *b == b'\r' || *b == b'\n') {
            return nl;
        }
        off = nl;
    }
    data.len()
}

/// The `X-Rampart-*` control headers (the last of each wins: exim appends them
/// after the message's own, so a sender's forged ones come first).
fn control_headers(data: &[u8]) -> [String; 4] {
    let mut out: [String; 4] = Default::default();
    let head = String::from_utf8_lossy(&data[..header_end(data)]);
    for line in head.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let i = match k.trim().to_ascii_lowercase().as_str() {
            "x-rampart-forwarder" => 0,
            "x-rampart-recipient" => 1,
            "x-rampart-sender" => 2,
            "x-rampart-reasons" => 3,
            _ => continue,
        };
        out[i] = v.trim().to_string();
    }
    out
}

/// The message without any `X-Rampart-*` header (the body byte for byte).
fn strip_control_headers(data: &[u8]) -> Vec<u8> {
    let end = header_end(data);
    let mut out = Vec::with_capacity(data.len());
    let mut skipping = false;
    for line in data[..end].split_inclusive(|b| *b == b'\n') {
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if continuation && skipping {
            continue;
        }
        skipping = line.len() > 10 && line[..10].eq_ignore_ascii_case(b"x-rampart-");
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(&data[end..]);
    out
}

/// The forward guard shared with the API.
pub struct ForwardGuard {
    dir: PathBuf,
    retention_days: u64,
    scan_secs: u64,
    exim_bin: PathBuf,
    findings: Arc<Findings>,
    /// Held copies already reported.
    reported: Mutex<HashSet<String>>,
}

impl ForwardGuard {
    pub fn new(cfg: &crate::config::Config, findings: Arc<Findings>) -> Self {
        let g = &cfg.mail.forward_guard;
        Self {
            dir: g.held_dir.clone(),
            retention_days: g.retention_days,
            scan_secs: g.scan_secs,
            exim_bin: cfg.mail.exim_bin.clone(),
            findings,
            reported: Mutex::new(HashSet::new()),
        }
    }

    fn locate(&self, id: &str) -> Option<PathBuf> {
        if !is_id(id) {
            return None;
        }
        ["new", "cur"]
            .iter()
            .map(|d| self.dir.join(d).join(id))
            .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
    }

    fn read(&self, path: &Path, id: &str) -> std::io::Result<HeldMessage> {
        let (data, md) = crate::logs::mail::read_bounded_with_meta(path, MAX_HEADER)?;
        let [forwarder, recipient, sender, reasons] = control_headers(&data);
        Ok(HeldMessage {
            id: id.to_string(),
            forwarder,
            recipient,
            sender,
            reasons: reasons
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect(),
            held_at: crate::store::rfc3339_unix(md.mtime()),
            size: md.len(),
            held_unix: md.mtime(),
        })
    }

    /// Every held copy, oldest first; `[]` when nothing was ever held.
    pub fn list(&self) -> Result<Vec<HeldMessage>, GuardError> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let rd = match std::fs::read_dir(self.dir.join(sub)) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(GuardError::Io {
                        context: format!("reading {}", self.dir.display()),
                        source: e,
                    })
                }
            };
            for e in rd.flatten().take(MAX_LISTED) {
                let name = e.file_name();
                let Some(id) = name.to_str().filter(|n| is_id(n)) else {
                    continue;
                };
                // Skip what cannot be read (being written, or not a file).
                if let Ok(m) = self.read(&e.path(), id) {
                    out.push(m);
                }
            }
        }
        out.sort_by(|a, b| a.held_unix.cmp(&b.held_unix).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    fn exim(&self) -> Result<PathBuf, GuardError> {
        crate::logs::mail::exim_bin(&self.exim_bin).ok_or_else(|| {
            GuardError::Unavailable(format!(
                "no exim binary to release through (mail.exim_bin; tried {})",
                crate::logs::mail::EXIM_BINS.join(", ")
            ))
        })
    }

    /// Send the copy to its recipient through exim, then remove it. Nothing is
    /// removed unless exim took the message.
    pub async fn release(&self, id: &str) -> Result<HeldAction, GuardError> {
        let path = self
            .locate(id)
            .ok_or_else(|| GuardError::NotFound(id.into()))?;
        let (data, _) =
            crate::logs::mail::read_bounded_with_meta(&path, MAX_MESSAGE).map_err(|e| {
                GuardError::Io {
                    context: "reading the held copy".into(),
                    source: e,
                }
            })?;
        let [_, recipient, sender, _] = control_headers(&data);
        if !is_address(&recipient) {
            return Err(GuardError::Refused(format!(
                "the held copy names no recipient address ({recipient:?})"
            )));
        }
        if !sender.is_empty() && !is_address(&sender) {
            return Err(GuardError::Refused(format!(
                "the held copy's sender is not an address ({sender:?})"
            )));
        }
        let bin = self.exim()?;
        let mut child = tokio::process::Command::new(&bin)
            // -i: a lone dot is not the end; -f: the envelope sender ("<>" for a
            // bounce); -- ends the options, so no address is one.
            .args(["-i", "-f"])
            .arg(if sender.is_empty() { "<>" } else { &sender })
            .arg("--")
            .arg(&recipient)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| GuardError::Unavailable(format!("running {}: {e}", bin.display())))?;
        let body = strip_control_headers(&data);
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            let _ = stdin.write_all(&body).await;
        }
        let out = tokio::time::timeout(RELEASE_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| GuardError::Unavailable(format!("{} timed out", bin.display())))?
            .map_err(|e| GuardError::Unavailable(format!("{}: {e}", bin.display())))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(GuardError::Unavailable(format!(
                "exim did not take the message: {}",
                err.lines().next().unwrap_or("failed")
            )));
        }
        std::fs::remove_file(&path).map_err(|e| GuardError::Io {
            context: "removing the released copy".into(),
            source: e,
        })?;
        tracing::info!(id, %recipient, "Held forward released.");
        Ok(HeldAction {
            status: "released",
            id: id.into(),
        })
    }

    pub fn delete(&self, id: &str) -> Result<HeldAction, GuardError> {
        let path = self
            .locate(id)
            .ok_or_else(|| GuardError::NotFound(id.into()))?;
        std::fs::remove_file(&path).map_err(|e| GuardError::Io {
            context: "removing the held copy".into(),
            source: e,
        })?;
        Ok(HeldAction {
            status: "deleted",
            id: id.into(),
        })
    }

    /// The directory's part of a pass: discard copies past retention; the held
    /// copies not reported yet.
    fn sweep(&self) -> Result<Vec<HeldMessage>, GuardError> {
        let cutoff = crate::store::now_unix() - (self.retention_days as i64) * 86_400;
        let mut held = Vec::new();
        for m in self.list()? {
            if self.retention_days > 0 && m.held_unix < cutoff {
                if self.delete(&m.id).is_ok() {
                    tracing::info!(id = %m.id, "Held forward past retention discarded.");
                }
            } else {
                held.push(m);
            }
        }
        let mut r = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        let ids: HashSet<&String> = held.iter().map(|m| &m.id).collect();
        r.retain(|id| ids.contains(id));
        Ok(held
            .into_iter()
            .filter(|m| r.insert(m.id.clone()))
            .collect())
    }

    /// One pass: the sweep off the runtime, then a finding per forwarder with new
    /// copies held (repeats counted on it).
    pub async fn pass(self: &Arc<Self>) -> Result<(), GuardError> {
        let g = self.clone();
        let fresh = tokio::task::spawn_blocking(move || g.sweep())
            .await
            .map_err(|e| GuardError::Io {
                context: "the held-forward sweep".into(),
                source: std::io::Error::other(e),
            })??;
        for m in fresh {
            let domain = m
                .forwarder
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase());
            let f = NewFinding {
                details: serde_json::to_string(&m).unwrap_or_default(),
                mailbox: Some(m.forwarder.clone()).filter(|f| !f.is_empty()),
                domain,
                key: Some(format!("{CHECK_FORWARD_HELD}:{}", m.forwarder)),
                ..NewFinding::new(
                    CHECK_FORWARD_HELD,
                    api::model::Severity::Warning,
                    format!(
                        "Forwarded copy from {} to {} held ({}); release or delete it in /api/v1/email/held",
                        m.forwarder,
                        m.recipient,
                        m.reasons.join(", ")
                    ),
                )
            };
            self.findings.report(f).await;
        }
        Ok(())
    }
}

/// A pass every `scan_secs` until shutdown (the first at start).
pub async fn run(
    g: Arc<ForwardGuard>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(Duration::from_secs(g.scan_secs));
    let mut said = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return Ok(()),
        }
        match g.pass().await {
            Ok(()) => said = false,
            Err(e) if !said => {
                said = true;
                tracing::warn!(error = %e, "Held forwards not read.");
            }
            Err(_) => {}
        }
    }
}

/// The shipped snippet's router and transport, with `held_dir` in place of the
/// default directory (for `rampart` tooling and tests).
pub fn exim_snippet(held_dir: &Path) -> (String, String) {
    let s = EXIM_SNIPPET.replace(DEFAULT_HELD_DIR, &held_dir.display().to_string());
    let router = s
        .split("# --- router ---")
        .nth(1)
        .and_then(|r| r.split("# --- transport ---").next())
        .unwrap_or_default()
        .to_string();
    let transport = s
        .split("# --- transport ---")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (router, transport)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELD: &[u8] = b"Received: from x\r\nX-Rampart-Forwarder: forged@evil.example\r\nSubject: hi\r\n\tcontinued\r\nX-Rampart-Forwarder: info@shop.test\r\nX-Rampart-Recipient: owner@gmail.example\r\nX-Rampart-Sender: \r\nX-Rampart-Reasons: bounce_backscatter\r\n\r\nX-Rampart-Recipient: in the body stays\r\n";

    #[test]
    fn control_headers_are_read_last_wins_and_stripped_for_release() {
        let [f, r, s, why] = control_headers(HELD);
        assert_eq!(
            (f.as_str(), r.as_str(), s.as_str(), why.as_str()),
            (
                "info@shop.test",
                "owner@gmail.example",
                "",
                "bounce_backscatter"
            )
        );
        let clean = String::from_utf8(strip_control_headers(HELD)).expect("utf8");
        assert_eq!(
            clean,
            "Received: from x\r\nSubject: hi\r\n\tcontinued\r\n\r\nX-Rampart-Recipient: in the body stays\r\n"
        );
    }

    #[test]
    fn ids_and_addresses_from_the_outside_are_checked() {
        assert!(is_id("1796147594.M767916P16828.mail.shop.test"));
        assert!(is_id("1796147594.M7P1.host,S=1550:2,S"));
        for bad in ["", "../new/x", ".hidden", "a/b", "a\0b"] {
            assert!(!is_id(bad), "{bad:?}");
        }
        assert!(is_address("owner@gmail.example"));
        for bad in ["-oX@x", "a b@x", "a@x\nBcc: y@z", "nobody"] {
            assert!(!is_address(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_shipped_snippet_splits_into_its_router_and_transport() {
        let (r, t) = exim_snippet(Path::new("/tmp/held"));
        assert!(r.trim_start().starts_with("rampart_forward_guard:"), "{r}");
        assert!(r.contains("transport = rampart_forward_hold"));
        assert!(t.trim_start().starts_with("rampart_forward_hold:"), "{t}");
        assert!(t.contains("directory = /tmp/held") && !t.contains(DEFAULT_HELD_DIR));
    }
}
