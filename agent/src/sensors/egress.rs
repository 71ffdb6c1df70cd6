// SPDX-License-Identifier: GPL-2.0-only
//! The egress sensor: cgroup connect4/connect6 programs that report (and, enforcing,
//! deny) direct SMTP by users outside `egress.safe_users`.

use agent_common::{
    egress::{ConnectEvent, Decision},
    maps,
    maps::progs,
};
use api::model::Severity;
use aya::Ebpf;

use super::{
    event::{comm_str, connect_dest},
    procfs::resolve_uids,
};
use crate::{
    config,
    kernel::{
        cgroup2_root, enforcement_mode, insert_set, mode_label, prog_err, program, set_single,
        Component, ComponentState, LoaderError,
    },
    store::NewFinding,
};

/// Attach the connect4/connect6 programs to the configured cgroup and write the egress
/// policy. Returns the components. The attachment is a bpf_link, which always coexists
/// with other links on the cgroup; aya passes the mode as link flags, and links take
/// no ALLOW_MULTI flag (EINVAL), so the mode is `Single`.
pub fn attach_egress(ebpf: &mut Ebpf, cfg: &config::Egress) -> Result<Vec<Component>, LoaderError> {
    use agent_common::egress::{EgressConfig, MAX_EGRESS_PORTS};
    use aya::programs::{links::CgroupAttachMode, CgroupSockAddr};

    let dir = if cfg.cgroup.as_os_str().is_empty() {
        cgroup2_root().ok_or(LoaderError::Pin {
            path: "cgroup2".into(),
            reason: "no cgroup v2 mount found".into(),
        })?
    } else {
        cfg.cgroup.clone()
    };
    let cg = std::fs::File::open(&dir).map_err(|e| LoaderError::Pin {
        path: dir.display().to_string(),
        reason: format!("opening the cgroup: {e}"),
    })?;
    // Policy first, so the programs enforce the right thing from their first call.
    let mut ports = [0u16; MAX_EGRESS_PORTS];
    for (slot, p) in ports.iter_mut().zip(&cfg.smtp_ports) {
        *slot = *p;
    }
    let policy = EgressConfig {
        mode: enforcement_mode(cfg.enforce, cfg.dry_run),
        all_connects: u32::from(cfg.all_connects),
        nports: cfg.smtp_ports.len().min(MAX_EGRESS_PORTS) as u32,
        _pad: 0,
        ports,
    };
    set_single(ebpf, maps::EGRESS_CONFIG, policy)?;
    let (uids, unknown) = resolve_uids(&cfg.safe_users);
    if !unknown.is_empty() {
        tracing::debug!(users = ?unknown, "egress.safe_users not on this host; skipped.");
    }
    insert_set(ebpf, maps::SAFE_UIDS, uids)?;
    let mut out = Vec::new();
    for name in [progs::CONNECT4, progs::CONNECT6] {
        let prog: &mut CgroupSockAddr = program(ebpf, name)?;
        prog.load().map_err(prog_err(name))?;
        prog.attach(&cg, CgroupAttachMode::Single)
            .map_err(prog_err(name))?;
        out.push(Component {
            name: name.to_string(),
            kind: "cgroup_sock_addr",
            target: dir.display().to_string(),
            state: ComponentState::Attached,
            mode: Some(mode_label(policy.mode)),
            reason: None,
        });
    }
    Ok(out)
}

/// A connect the program reported as a violation (direct SMTP by a user outside
/// `egress.safe_users`) as a `smtp_egress` finding; None for plain reporting.
pub fn finding(ev: &ConnectEvent) -> Option<NewFinding> {
    let decision = Decision::from_u32(ev.decision)?;
    if decision == Decision::Allowed {
        return None; // all_connects reporting: counted, not a finding
    }
    let dest = connect_dest(ev);
    let comm = comm_str(&ev.comm);
    Some(NewFinding {
        check: "smtp_egress".into(),
        severity: Severity::High,
        message: format!(
            "Direct SMTP connection to {dest}:{} by uid {} ({comm}){}",
            ev.dport,
            ev.uid,
            if decision == Decision::Denied {
                ", denied"
            } else {
                ""
            }
        ),
        details: format!("decision: {}; pid {}", decision.as_str(), ev.tgid),
        key: Some(format!("{dest}|{}|{}", ev.uid, decision.as_str())),
        pid: Some(ev.tgid),
        uid: Some(ev.uid),
        process: Some(comm),
        ip: Some(dest.to_string()),
        ..Default::default()
    })
}
