// SPDX-License-Identifier: GPL-2.0-only
//! `rampart firewall ...`: works on the store and the pinned kernel maps directly, so
//! it acts at once whether or not the agent is running (the agent reconciles the
//! kernel with the store at its next start either way).

pub mod doctor;
pub mod status;
pub mod token;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

use crate::{
    config::Config,
    firewall::{self, Firewall, FirewallError},
    store::{FwList, Store},
};

#[derive(Subcommand, Debug)]
pub enum FirewallCmd {
    /// Block an IP or CIDR.
    Block {
        ip: String,
        #[arg(long, default_value = "")]
        reason: String,
        /// Seconds until it expires (default: permanent).
        #[arg(long)]
        duration: Option<u64>,
        /// Allow a /0.
        #[arg(long)]
        force: bool,
    },
    /// Remove a block.
    Unblock { ip: String },
    /// Allow an IP or CIDR (never dropped; beats every block).
    Allow {
        ip: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long)]
        duration: Option<u64>,
    },
    /// Remove an allow entry.
    Unallow { ip: String },
    /// Show which entries cover an IP.
    Check { ip: String },
    /// List blocks (or allows).
    List {
        #[arg(long)]
        allowed: bool,
    },
    /// Import a list, one IP/CIDR a line, `#` comments allowed. Any bad line fails
    /// the whole import (reported by line number); nothing is half-applied.
    Import {
        file: PathBuf,
        #[arg(long, default_value = "imported list")]
        reason: String,
        /// Import into the allow list instead.
        #[arg(long)]
        allow: bool,
    },
}

/// Exit codes: 0 ok, 65 (EX_DATAERR) for rejected input, 1 for anything else.
pub const EX_DATAERR: u8 = 65;

pub enum Outcome {
    Ok,
    BadInput(String),
}

pub async fn firewall(cfg: &Config, cmd: FirewallCmd) -> Result<Outcome> {
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("creating {}", cfg.state_dir.display()))?;
    let store = Store::open(&cfg.state_dir.join("rampart.db"), 64).context("opening the store")?;
    let kernel = firewall::xdp::open_pinned_lists(&cfg.firewall.pin_dir)
        .context("opening the pinned firewall maps")?;
    if kernel.is_none() {
        eprintln!(
            "note: no pinned maps under {} (agent not started yet): the store is updated; the agent applies it at start",
            cfg.firewall.pin_dir.display()
        );
    }
    let fw = Firewall::new(kernel, store.clone(), firewall::own_addresses());
    let actor = "cli";
    let res: Result<(), FirewallError> = async {
        match cmd {
            FirewallCmd::Block {
                ip,
                reason,
                duration,
                force,
            } => {
                let e = fw
                    .add(FwList::Blocks, &ip, &reason, "cli", duration, force, actor)
                    .await?;
                println!(
                    "blocked {} ({}){}",
                    e.ip,
                    e.reason,
                    e.expires_at
                        .map(|t| format!(" until {t}"))
                        .unwrap_or_default()
                );
            }
            FirewallCmd::Allow {
                ip,
                reason,
                duration,
            } => {
                let e = fw
                    .add(FwList::Allows, &ip, &reason, "cli", duration, false, actor)
                    .await?;
                println!("allowed {} ({})", e.ip, e.reason);
            }
            FirewallCmd::Unblock { ip } => {
                if fw
                    .remove(FwList::Blocks, std::slice::from_ref(&ip), actor)
                    .await?
                    .is_empty()
                {
                    return Err(FirewallError::NotFound(format!("{ip} is not blocked")));
                }
                println!("unblocked {ip}");
            }
            FirewallCmd::Unallow { ip } => {
                if fw
                    .remove(FwList::Allows, std::slice::from_ref(&ip), actor)
                    .await?
                    .is_empty()
                {
                    return Err(FirewallError::NotFound(format!("{ip} is not allowed")));
                }
                println!("removed allow {ip}");
            }
            FirewallCmd::Check { ip } => {
                let c = fw.check(&ip).await?;
                println!("{}: {}", c.ip, c.verdict);
                if let Some(b) = c.blocked_by {
                    println!("  blocked by {} ({}, source {})", b.ip, b.reason, b.source);
                }
                if let Some(a) = c.allowed_by {
                    println!("  allowed by {} ({}, source {})", a.ip, a.reason, a.source);
                }
            }
            FirewallCmd::List { allowed } => {
                let list = if allowed {
                    FwList::Allows
                } else {
                    FwList::Blocks
                };
                for e in fw.entries(list).await? {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        e.ip,
                        e.source,
                        e.blocked_at,
                        e.expires_at.as_deref().unwrap_or("-"),
                        e.reason
                    );
                }
            }
            FirewallCmd::Import {
                file,
                reason,
                allow,
            } => {
                let text = std::fs::read_to_string(&file).map_err(|e| {
                    FirewallError::Invalid(format!("reading {}: {e}", file.display()))
                })?;
                let list = if allow {
                    FwList::Allows
                } else {
                    FwList::Blocks
                };
                let started = std::time::Instant::now();
                let n = fw.import(list, &text, &reason, "cli", actor).await?;
                println!(
                    "imported {n} entries in {:.2}s",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        Ok(())
    }
    .await;
    store.flush().await.context("flushing the store")?;
    match res {
        Ok(()) => Ok(Outcome::Ok),
        Err(FirewallError::Import(errs)) => {
            let mut msg = format!("{} bad line(s); nothing was imported:", errs.len());
            for (n, e) in errs.iter().take(50) {
                msg.push_str(&format!("\n  line {n}: {e}"));
            }
            if errs.len() > 50 {
                msg.push_str(&format!("\n  ... and {} more", errs.len() - 50));
            }
            Ok(Outcome::BadInput(msg))
        }
        Err(
            e
            @ (FirewallError::Invalid(_) | FirewallError::Refused(_) | FirewallError::NotFound(_)),
        ) => Ok(Outcome::BadInput(e.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// What `rampart scan` found.
#[derive(Debug, Default)]
pub struct ScanSummary {
    pub files: u64,
    pub skipped: u64,
    pub bytes: u64,
    pub matches: u64,
    pub seconds: f64,
}

/// `rampart scan`: scan files and trees with the rule set, `workers` threads, each
/// match printed as it is found (one JSON object a line with `json`).
pub fn scan(
    rules_dir: Option<&std::path::Path>,
    builtin: bool,
    cache: Option<&std::path::Path>,
    paths: &[PathBuf],
    workers: usize,
    max_bytes: u64,
    json: bool,
) -> Result<std::result::Result<ScanSummary, crate::detection::signatures::RuleErrors>> {
    use std::sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Mutex,
    };
    let set = match crate::detection::signatures::load_cached(rules_dir, builtin, cache) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let mut files = Vec::new();
    for p in paths {
        crate::detection::scan::walk(p, &mut |f| {
            files.push(f);
            true
        })
        .with_context(|| format!("reading {}", p.display()))?;
    }
    let started = std::time::Instant::now();
    let next = AtomicUsize::new(0);
    let (bytes, matches, skipped) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let out = Mutex::new(std::io::stdout());
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| {
                let mut scanner = set.scanner();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(f) = files.get(i) else { break };
                    match crate::detection::scan::scan_file(
                        &set,
                        scanner.as_mut(),
                        f,
                        max_bytes,
                        &Default::default(),
                    ) {
                        Ok(r) => {
                            bytes.fetch_add(r.scanned_bytes, Ordering::Relaxed);
                            matches.fetch_add(r.matches.len() as u64, Ordering::Relaxed);
                            let mut o = match out.lock() {
                                Ok(g) => g,
                                Err(p) => p.into_inner(),
                            };
                            for m in r.matches {
                                use std::io::Write;
                                let line = if json {
                                    serde_json::json!({"path": f, "match": m}).to_string()
                                } else {
                                    format!(
                                        "{}: {} ({}) at offset {}: {}",
                                        f.display(),
                                        m.rule,
                                        m.severity.as_str(),
                                        m.offset,
                                        m.pattern
                                    )
                                };
                                let _ = writeln!(o, "{line}");
                            }
                        }
                        Err(e) => {
                            skipped.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(path = %f.display(), reason = %e, "Not scanned.");
                        }
                    }
                }
            });
        }
    });
    Ok(Ok(ScanSummary {
        files: files.len() as u64,
        skipped: skipped.into_inner(),
        bytes: bytes.into_inner(),
        matches: matches.into_inner(),
        seconds: started.elapsed().as_secs_f64(),
    }))
}
