// SPDX-License-Identifier: GPL-2.0-only
//! `rampart status`: the running agent's status and health, asked over its own API
//! with the local admin credential the agent leaves in its state directory, trusting
//! only the agent's own certificate.

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::{config::Config, web::tokens::LOCAL_TOKEN_FILE};

/// What `rampart status` found.
pub enum Found {
    /// Status and health, and whether health says degraded.
    Running { report: Value, degraded: bool },
    /// No agent to ask, and why.
    NotRunning(String),
}

/// Where to reach the API from this host: a wildcard listen address is reached on
/// loopback.
fn local_addr(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

pub fn ask(cfg: &Config) -> Result<Found> {
    let token_path = cfg.state_dir.join(LOCAL_TOKEN_FILE);
    let token = match std::fs::read_to_string(&token_path) {
        Ok(t) => t.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Found::NotRunning(format!(
                "no agent is running for state_dir {} ({} is absent)",
                cfg.state_dir.display(),
                token_path.display()
            )))
        }
        Err(e) => {
            return Err(e)
                .with_context(|| format!("reading {} (run as root)", token_path.display()))
        }
    };
    let cert_path = cfg.state_dir.join("tls/cert.pem");
    let cert =
        std::fs::read(&cert_path).with_context(|| format!("reading {}", cert_path.display()))?;
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&cert)
                .with_context(|| format!("{} is not a PEM certificate", cert_path.display()))?,
        )
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTPS client")?;
    let base = format!("https://{}", local_addr(cfg.webui.listen));
    let get = |path: &str| -> Result<Option<Value>> {
        let resp = match client
            .get(format!("{base}{path}"))
            .bearer_auth(&token)
            .send()
        {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("GET {base}{path}")),
        };
        let code = resp.status();
        if !code.is_success() {
            anyhow::bail!("GET {base}{path}: HTTP {code} (a stale {LOCAL_TOKEN_FILE} from an agent that died?)");
        }
        Ok(Some(
            resp.json()
                .with_context(|| format!("GET {base}{path}: not JSON"))?,
        ))
    };
    let (Some(status), Some(health)) = (get("/api/v1/status")?, get("/api/v1/health")?) else {
        return Ok(Found::NotRunning(format!("nothing answers on {base}")));
    };
    let degraded = health["status"] != "ok";
    Ok(Found::Running {
        report: serde_json::json!({ "status": status, "health": health }),
        degraded,
    })
}

fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h) {
        (0, 0) => format!("{m}m{s:02}s"),
        (0, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}

/// The report for a terminal.
pub fn render(report: &Value) -> String {
    use std::fmt::Write;
    let (st, h) = (&report["status"], &report["health"]);
    let s = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "rampart {} — up {} (since {}), health: {}",
        s(&st["version"]),
        duration(st["uptime_sec"].as_u64().unwrap_or(0)),
        s(&st["started_at"]),
        s(&h["status"])
    );
    let _ = writeln!(out, "\nsensors:");
    for b in h["sensors"].as_array().into_iter().flatten() {
        let _ = write!(out, "  {:<15} {}", s(&b["sensor"]), s(&b["backend"]));
        if let Some(r) = b["reason"].as_str() {
            let _ = write!(out, " ({r})");
        }
        out.push('\n');
    }
    // Kernel programs: counted by state; only those not attached are listed, with why.
    let programs: Vec<&Value> = h["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["kind"] != "task")
        .collect();
    let mut by_state = std::collections::BTreeMap::<String, usize>::new();
    for c in &programs {
        *by_state.entry(s(&c["state"])).or_default() += 1;
    }
    let counts: Vec<String> = by_state.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let _ = writeln!(out, "\nkernel programs: {}", counts.join(", "));
    for c in programs.iter().filter(|c| c["state"] != "attached") {
        let _ = writeln!(
            out,
            "  {} {} ({}): {}",
            s(&c["name"]),
            s(&c["state"]),
            s(&c["target"]),
            c["reason"].as_str().unwrap_or("")
        );
    }
    let tasks = h["tasks"].as_array().cloned().unwrap_or_default();
    let down: Vec<&Value> = tasks.iter().filter(|t| t["state"] != "running").collect();
    let _ = writeln!(
        out,
        "\ntasks: {} running, {} not",
        tasks.len() - down.len(),
        down.len()
    );
    for t in down {
        let _ = writeln!(
            out,
            "  {}/{}: {} after {} restarts: {}",
            s(&t["feature"]),
            s(&t["name"]),
            s(&t["state"]),
            t["restarts"].as_u64().unwrap_or(0),
            t["last_error"].as_str().unwrap_or("")
        );
    }
    let counts = st["severities"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let _ = writeln!(out, "\nfindings: {counts}");
    let _ = writeln!(out, "blocklist: {} entries", st["blocklist_size"]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listen_address_is_reached_on_loopback() {
        let a = |s: &str| s.parse::<SocketAddr>().expect("addr");
        assert_eq!(local_addr(a("0.0.0.0:9443")), a("127.0.0.1:9443"));
        assert_eq!(local_addr(a("[::]:9443")), a("[::1]:9443"));
        assert_eq!(local_addr(a("192.0.2.7:8443")), a("192.0.2.7:8443"));
    }

    #[test]
    fn no_credential_means_no_agent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = Config::embedded().expect("cfg");
        cfg.state_dir = dir.path().to_path_buf();
        match ask(&cfg).expect("ask") {
            Found::NotRunning(why) => assert!(why.contains(LOCAL_TOKEN_FILE), "{why}"),
            Found::Running { .. } => panic!("an agent without a credential"),
        }
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(59), "0m59s");
        assert_eq!(duration(3725), "1h02m");
        assert_eq!(duration(90000), "1d01h");
    }
}
