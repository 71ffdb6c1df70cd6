// SPDX-License-Identifier: GPL-2.0-only
//! What the running kernel makes of every program in the object (#18). Run here on
//! 6.18 and, by `cargo xtask vmtest`, inside Debian's 6.1 and 6.12 under QEMU.
//! Every program must load, or the test fails with the verifier's own words. The one
//! refusal allowed is BPF-LSM where this kernel does not run it (`bpf` missing from
//! the active LSM list, or trampolines refused with EPERM, as on this machine kind):
//! then every LSM program must be refused the same way, and the probe must say so.

use std::collections::BTreeMap;

use aya::programs::Program;
use integration_test::{feature_available, is_root, test_config, PinDir};

/// Is `bpf` in the running kernel's active LSM list? None when securityfs cannot
/// say.
fn bpf_lsm_active() -> Option<bool> {
    let _ = std::fs::create_dir_all("/sys/kernel/security");
    let lsm = std::fs::read_to_string("/sys/kernel/security/lsm")
        .ok()
        .or_else(|| {
            let _ = std::process::Command::new("mount")
                .args(["-t", "securityfs", "securityfs", "/sys/kernel/security"])
                .status();
            std::fs::read_to_string("/sys/kernel/security/lsm").ok()
        })?;
    Some(lsm.trim().split(',').any(|l| l == "bpf"))
}

#[test]
fn every_program_loads_on_this_kernel() {
    if !feature_available("root (BPF)", is_root()) {
        return;
    }
    agent::kernel::ensure_mounts().expect("bpffs/tracefs");
    let pins = PinDir::new();
    let cfg = test_config(&pins);
    let mut ebpf = agent::kernel::load(&cfg).expect("load the object");
    let btf = aya::Btf::from_sys_fs().expect("kernel BTF");
    let hooks: BTreeMap<&str, &str> = agent::sensors::lsm::LSM_SENSORS
        .iter()
        .chain(agent::sensors::lsm::LSM_FILE_SESSIONS)
        .copied()
        .chain([(agent_common::maps::progs::LSM_PROBE, "bprm_check_security")])
        .collect();
    let (mut loaded, mut refused, mut lsm_refused) = (Vec::new(), Vec::new(), Vec::new());
    for (name, prog) in ebpf.programs_mut() {
        let name = name.to_string();
        let res = match prog {
            Program::TracePoint(p) => p.load(),
            Program::RawTracePoint(p) => p.load(),
            Program::Xdp(p) => p.load(),
            Program::CgroupSockAddr(p) => p.load(),
            Program::Lsm(p) => {
                let hook = hooks.get(name.as_str()).copied().unwrap_or("");
                assert!(!hook.is_empty(), "LSM program {name} has no hook listed");
                match p.load(hook, &btf) {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        lsm_refused.push(format!("{name}: {}", verifier_words(&e)));
                        continue;
                    }
                }
            }
            other => panic!("{name}: a program type this test does not know: {other:?}"),
        };
        match res {
            Ok(()) => loaded.push(name),
            Err(e) => refused.push(format!("{name}: {}", verifier_words(&e))),
        }
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    eprintln!(
        "kernel {}: {} programs loaded; LSM refused: {}",
        kernel.trim(),
        loaded.len(),
        lsm_refused.len()
    );
    assert!(
        refused.is_empty(),
        "kernel {}: refused:\n{}",
        kernel.trim(),
        refused.join("\n\n")
    );
    let probe = agent::sensors::lsm::probe_lsm(&mut ebpf);
    match bpf_lsm_active() {
        Some(true)
            if lsm_refused
                .iter()
                .all(|r| r.contains("Operation not permitted"))
                && !lsm_refused.is_empty() =>
        {
            // This machine kind: bpf is listed, trampolines are refused with EPERM.
            assert!(
                probe.is_err(),
                "the probe passed although every LSM program was refused"
            );
        }
        Some(true) => assert!(
            lsm_refused.is_empty(),
            "BPF-LSM is active, yet:\n{}",
            lsm_refused.join("\n\n")
        ),
        _ => {
            assert_eq!(lsm_refused.len(), hooks.len(), "{lsm_refused:?}");
            assert!(probe.is_err(), "the probe passed without BPF-LSM");
        }
    }
}

/// The error with the verifier's log, whose end says why.
fn verifier_words(e: &aya::programs::ProgramError) -> String {
    let s = format!("{e:#}");
    let tail: String = s
        .chars()
        .rev()
        .take(3000)
        .collect::<String>()
        .chars()
        .rev()
        .collect();
    if tail.len() < s.len() {
        format!("...{tail}")
    } else {
        s
    }
}
