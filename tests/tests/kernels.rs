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
            // tp_btf: the attach point by name, through the kernel's BTF.
            Program::BtfTracePoint(p) => {
                use agent_common::maps::progs::{SCRIPT_EXIT32, SYSCALL_EXIT};
                assert!(
                    [SYSCALL_EXIT, SCRIPT_EXIT32].contains(&name.as_str()),
                    "tp_btf {name}: which hook?"
                );
                p.load("sys_exit", &btf)
            }
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

/// `rampart doctor --json` with `args`: its exit code and report.
fn doctor(args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let out = std::process::Command::new(integration_test::rampart_bin())
        .arg("doctor")
        .args(args)
        .arg("--json")
        .output()
        .expect("rampart doctor");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code(), report)
}

/// The report's checks of `feature`.
fn check(r: &serde_json::Value, feature: &str) -> Vec<serde_json::Value> {
    r["checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| c["feature"] == feature)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// `rampart doctor --json` on this kernel: its checks agree with what the kernel
/// really does (the same probes the agent and the test above run), each sensor's
/// plan follows, the exit status says whether anything degrades, and nothing it
/// loaded is left behind.
#[test]
fn doctor_says_what_this_kernel_allows_and_what_each_sensor_would_use() {
    if !feature_available("root (BPF)", is_root()) {
        return;
    }
    let plan = |r: &serde_json::Value, sensor: &str| -> String {
        r["sensors"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["sensor"] == sensor))
            .and_then(|s| s["backend"].as_str())
            .unwrap_or_else(|| panic!("{sensor} in {r}"))
            .to_string()
    };
    let (code, r) = doctor(&["--default-config"]);
    assert_eq!(code, Some(if r["degraded"] == true { 1 } else { 0 }), "{r}");
    for f in ["config", "root", "btf", "tracepoints", "xdp", "cgroup_v2"] {
        assert_eq!(check(&r, f)[0]["state"], "ok", "{f}: {r}");
    }
    // 32-bit syscalls, which the syscall tracepoints skip, told apart through BTF.
    if cfg!(target_arch = "x86_64") {
        assert_eq!(check(&r, "ia32_syscalls")[0]["state"], "ok", "{r}");
    }
    // BPF-LSM as the kernel says it, through the agent's own probe.
    let pins = PinDir::new();
    let cfg = test_config(&pins);
    let mut ebpf = agent::kernel::load(&cfg).expect("load the object");
    let lsm = agent::sensors::lsm::probe_lsm(&mut ebpf).is_ok();
    drop(ebpf);
    assert_eq!(check(&r, "bpf_lsm")[0]["state"] == "ok", lsm, "{r}");
    if integration_test::lsm_expected() {
        assert!(lsm, "BPF-LSM must run here: {r}");
    }
    let on = if lsm { "lsm" } else { "tracepoint" };
    assert_eq!(plan(&r, "file"), on, "{r}");
    assert_eq!(plan(&r, "sensitive_read"), on, "{r}");
    assert_eq!(plan(&r, "exec"), on, "{r}");
    // io_uring open to users degrades only the tracepoint file backend.
    let open = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|v| v.trim() == "0")
        .unwrap_or(true);
    assert_eq!(
        check(&r, "io_uring")[0]["state"] == "degraded",
        open && !lsm,
        "{r}"
    );
    let leftovers: Vec<_> = std::fs::read_dir("/sys/fs/bpf")
        .expect("bpffs")
        .filter_map(|e| e.ok())
        .filter(|e| {
            // A doctor still running (another test's) is not a leftover: its pid
            // names its directory.
            e.file_name()
                .to_string_lossy()
                .strip_prefix("rampart-doctor-")
                .is_some_and(|pid| !std::path::Path::new("/proc").join(pid).exists())
        })
        .collect();
    assert!(leftovers.is_empty(), "doctor left pins: {leftovers:?}");
}

/// The doctor's checks that do not depend on the kernel (run on the host only: each
/// doctor run and agent start costs minutes under TCG): a broken drop-in, an
/// interface that is not there, a running agent found and no longer once stopped.
#[test]
fn doctor_reports_config_problems_and_running_agents() {
    if !feature_available("root (BPF)", is_root()) {
        return;
    }
    // A broken drop-in, and an interface that is not there.
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("rampart.yaml");
    std::fs::write(&conf, agent::config::DEFAULT_YAML).expect("config");
    std::fs::create_dir(dir.path().join("conf.d")).expect("conf.d");
    let dropin = dir.path().join("conf.d/10-test.yaml");
    std::fs::write(&dropin, "firewall:\n  interfaces: [rt-missing0]\n").expect("drop-in");
    let (code, r) = doctor(&["--config", &conf.to_string_lossy()]);
    assert_eq!(code, Some(1), "{r}");
    let xdp_if = check(&r, "xdp_interface");
    assert_eq!(xdp_if[0]["state"], "degraded", "{r}");
    assert!(
        xdp_if[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("rt-missing0")),
        "{r}"
    );
    std::fs::write(&dropin, "firewall:\n  no_such_key: 1\n").expect("drop-in");
    let (code, r) = doctor(&["--config", &conf.to_string_lossy()]);
    assert_eq!(code, Some(1), "{r}");
    let c = &check(&r, "config")[0];
    assert_eq!(c["state"], "degraded", "{r}");
    assert!(
        c["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no_such_key")),
        "{c}"
    );

    // A running agent is found (and not once it stopped).
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let mut h = integration_test::harness::Harness::start(net, "");
    let pid = h.agent.as_ref().and_then(|a| a.pid()).expect("agent pid");
    let (_, r) = doctor(&["--default-config"]);
    assert!(
        r["running_agents"]
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p == pid)),
        "{pid} in {r}"
    );
    h.stop();
    let (_, r) = doctor(&["--default-config"]);
    assert!(
        !r["running_agents"]
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p == pid)),
        "{r}"
    );
}

/// The packaged unit sets `SystemCallArchitectures=native`, whose seccomp filter may
/// kill a process that makes a non-native syscall. The agent asks the kernel whether
/// x32 syscalls run (`rampart doctor` and the sensors at start): under a filter that
/// kills on any x32 syscall it must still finish, and say what it knows.
#[cfg(target_arch = "x86_64")]
#[test]
fn doctor_survives_a_filter_that_kills_non_native_syscalls() {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(integration_test::rampart_bin());
    cmd.args(["doctor", "--default-config", "--json"]);
    // SAFETY: between fork and exec only prctl, which is async-signal-safe; the
    // filter lives on the stack of this closure until the call returns.
    unsafe {
        cmd.pre_exec(|| {
            const X32_SYSCALL_BIT: u32 = 0x4000_0000;
            let nr = std::mem::offset_of!(libc::seccomp_data, nr) as u32;
            let mut filter = [
                libc::sock_filter {
                    code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
                    jt: 0,
                    jf: 0,
                    k: nr,
                },
                libc::sock_filter {
                    code: (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16,
                    jt: 0,
                    jf: 1,
                    k: X32_SYSCALL_BIT,
                },
                libc::sock_filter {
                    code: (libc::BPF_RET | libc::BPF_K) as u16,
                    jt: 0,
                    jf: 0,
                    k: libc::SECCOMP_RET_KILL_PROCESS,
                },
                libc::sock_filter {
                    code: (libc::BPF_RET | libc::BPF_K) as u16,
                    jt: 0,
                    jf: 0,
                    k: libc::SECCOMP_RET_ALLOW,
                },
            ];
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_mut_ptr(),
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("rampart doctor under the filter");
    assert!(
        out.status.code().is_some(),
        "killed by a signal ({:?}): the x32 probe ran in the agent itself",
        out.status
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert!(
        report["checks"].as_array().is_some_and(|c| !c.is_empty()),
        "{report}"
    );
}
