// SPDX-License-Identifier: GPL-2.0-only
//! BPF-LSM: the probe that says whether this kernel runs LSM programs, and the deny
//! hooks attached where it does.

use agent_common::maps::progs;
use aya::{programs::ProgramError, Ebpf};

use crate::kernel::{kernel_btf, Component, ComponentState};

/// Can this kernel run BPF-LSM programs? Loads (does not attach) the probe program.
/// Err carries the reason, e.g. "BPF_PROG_LOAD: Operation not permitted (os error 1)".
pub fn probe_lsm(ebpf: &mut Ebpf) -> Result<(), String> {
    load_lsm(
        ebpf,
        &*kernel_btf()?,
        progs::LSM_PROBE,
        "bprm_check_security",
    )
}
/// The LSM sensor programs and their hooks: loaded and attached only where the probe
/// passed (exec deny, sensitive-read report and deny). SMTP egress has no LSM
/// program: the cgroup connect programs enforce it in the configured cgroup only,
/// and an LSM hook would apply it to every process on the host.
pub const LSM_SENSORS: &[(&str, &str)] = &[
    (progs::LSM_BPRM_CHECK, "bprm_check_security"),
    (progs::LSM_FILE_OPEN, "file_open"),
];

/// The LSM file backend's programs and hooks: write sessions, ended where the file's
/// last reference goes (the free first, so no session starts without its end).
pub const LSM_FILE_SESSIONS: &[(&str, &str)] = &[
    (progs::LSM_FILE_FREE, "file_free_security"),
    (progs::LSM_FILE_WRITE, "file_open"),
];

/// Attach the LSM sensors named in `wanted` (after a successful probe). Returns a
/// component each.
pub fn attach_lsm_sensors(ebpf: &mut Ebpf, wanted: &[&str]) -> Vec<Component> {
    use aya::programs::Lsm;
    let btf = kernel_btf();
    LSM_SENSORS
        .iter()
        .filter(|(name, _)| wanted.contains(name))
        .map(|(name, hook)| {
            let res = btf
                .as_ref()
                .map_err(String::clone)
                .and_then(|btf| load_lsm(ebpf, btf, name, hook))
                .and_then(|()| {
                    let prog: &mut Lsm = ebpf
                        .program_mut(name)
                        .ok_or_else(|| format!("program {name} missing"))?
                        .try_into()
                        .map_err(|e: ProgramError| e.to_string())?;
                    prog.attach().map(|_| ()).map_err(|e| e.to_string())
                });
            Component {
                name: name.to_string(),
                kind: "lsm",
                target: hook.to_string(),
                state: if res.is_ok() {
                    ComponentState::Attached
                } else {
                    ComponentState::Failed
                },
                mode: None,
                reason: res.err(),
            }
        })
        .collect()
}

/// Load one LSM program for `hook`; the error says why (e.g. "BPF_PROG_LOAD:
/// Operation not permitted (bpf is in the active LSM list)").
pub fn load_lsm(ebpf: &mut Ebpf, btf: &aya::Btf, name: &str, hook: &str) -> Result<(), String> {
    use aya::programs::Lsm;
    let prog: &mut Lsm = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("program {name} missing from the object"))?
        .try_into()
        .map_err(|e: ProgramError| e.to_string())?;
    prog.load(hook, btf).map_err(|e| {
        let listed = std::fs::read_to_string("/sys/kernel/security/lsm")
            .map(|l| l.trim().split(',').any(|m| m == "bpf"))
            .unwrap_or(false);
        let why = match &e {
            ProgramError::LoadError { io_error, .. } => format!("BPF_PROG_LOAD: {io_error}"),
            other => other.to_string(),
        };
        let lsm = if listed {
            "bpf is in the active LSM list"
        } else {
            "bpf is not in the active LSM list"
        };
        format!("{why} ({lsm})")
    })
}
