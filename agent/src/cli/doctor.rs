// SPDX-License-Identifier: GPL-2.0-only
//! `rampart doctor`: what this kernel and host allow, feature by feature, what the
//! agent will use for each sensor and why, the configuration, and whether an agent
//! is running. It changes nothing an agent relies on: programs are loaded to see
//! whether the verifier takes them, never attached, under pins of its own that are
//! removed afterwards; fanotify marks are made and dropped at once.

use std::path::{Path, PathBuf};

use agent_common::maps::progs;
use serde::Serialize;

use crate::{
    config::{BackendChoice, Config},
    kernel::{self, btf},
    sensors::{self, fanotify::FanotifySensor, lsm},
};

/// How a feature stands on this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Available, or not needed.
    Ok,
    /// Something the configuration asks for will run degraded (or not at all).
    Degraded,
    /// For information: nothing configured depends on it.
    Info,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Check {
    pub feature: &'static str,
    pub state: State,
    pub detail: String,
}

/// What the agent would run a sensor on, and why.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Plan {
    pub sensor: &'static str,
    pub backend: String,
    pub why: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Report {
    pub kernel: String,
    pub checks: Vec<Check>,
    pub sensors: Vec<Plan>,
    /// Running `rampart run` processes (pid), if any.
    pub running_agents: Vec<u32>,
    /// Something configured will degrade: the exit status is 1.
    pub degraded: bool,
}

/// Drivers with native XDP (in the driver, before an skb) in mainline kernels; any
/// other interface gets generic (SKB) XDP, which the agent falls back to itself.
const NATIVE_XDP_DRIVERS: &[&str] = &[
    "virtio_net",
    "veth",
    "tun",
    "ixgbe",
    "ixgbevf",
    "i40e",
    "ice",
    "igb",
    "igc",
    "mlx4_en",
    "mlx4_core",
    "mlx5_core",
    "bnxt_en",
    "ena",
    "qede",
    "nfp",
    "sfc",
    "hv_netvsc",
    "netsec",
    "stmmac",
    "mvneta",
    "mvpp2",
    "enetc",
    "fec",
    "thunder_nicvf",
    "cpsw",
    "gve",
    "idpf",
];

/// Examine this host for `cfg` (`config_error`: why the configuration did not load,
/// when it did not; the embedded default is examined instead).
pub fn examine(cfg: &Config, config_error: Option<String>) -> Report {
    let mut checks = Vec::new();
    let mut push = |feature, state, detail: String| {
        checks.push(Check {
            feature,
            state,
            detail,
        })
    };
    match &config_error {
        None => push("config", State::Ok, "valid".into()),
        Some(e) => push("config", State::Degraded, e.clone()),
    }
    // SAFETY: no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    push(
        "root",
        if root { State::Ok } else { State::Degraded },
        if root {
            "running as root".into()
        } else {
            "not root: BPF needs CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN and CAP_SYS_ADMIN; the kernel probes below are skipped".into()
        },
    );
    let offsets = btf::Btf::from_file(Path::new(btf::VMLINUX)).and_then(|b| b.kernel_offsets());
    push(
        "btf",
        if offsets.is_ok() {
            State::Ok
        } else {
            State::Degraded
        },
        match &offsets {
            Ok(_) => format!(
                "{}: struct offsets resolved (paths walked by the kernel, inode metadata)",
                btf::VMLINUX
            ),
            Err(e) => format!("{e}: file events fall back to the typed name, without metadata"),
        },
    );
    let lockdown = std::fs::read_to_string("/sys/kernel/security/lockdown").ok();
    match lockdown.as_deref().map(str::trim) {
        Some(l) if l.contains("[confidentiality]") => push(
            "lockdown",
            State::Degraded,
            format!("{l}: bpf_probe_read_kernel is refused, so no path walk and no metadata"),
        ),
        Some(l) => push("lockdown", State::Ok, l.to_string()),
        None => push(
            "lockdown",
            State::Info,
            "securityfs not mounted here (/sys/kernel/security)".into(),
        ),
    }
    let lsm_listed = std::fs::read_to_string("/sys/kernel/security/lsm")
        .ok()
        .map(|l| l.trim().split(',').any(|m| m == "bpf"));
    let cgroup2 = kernel::cgroup2_root();
    push(
        "cgroup_v2",
        match (&cgroup2, cfg.egress.enabled || cfg.exec.enabled) {
            (Some(_), _) => State::Ok,
            (None, true) => State::Degraded,
            (None, false) => State::Info,
        },
        cgroup2.as_ref().map_or_else(
            || {
                "no cgroup2 mount: the egress sensor cannot attach, exec scope is unavailable"
                    .to_string()
            },
            |p| format!("mounted at {}", p.display()),
        ),
    );
    let uring = sensors::io_uring_unseen(Path::new(sensors::IO_URING_SYSCTL));
    // The kernel probes: load, never attach.
    let probes = if root {
        probe_programs(cfg)
    } else {
        Probes::skipped()
    };
    push(
        "bpf_lsm",
        if probes.lsm.is_ok() { State::Ok } else { State::Info },
        match (&probes.lsm, lsm_listed) {
            (Ok(()), _) => "LSM programs load: exec denied before the image exists, sensitive reads denied, file sessions from file_open".into(),
            (Err(e), Some(false)) => format!("bpf is not in the active LSM list (add lsm=...,bpf to the kernel command line): {e}"),
            (Err(e), _) => e.clone(),
        },
    );
    push(
        "fentry",
        State::Info,
        "not used: the LSM hooks and tracepoints cover what fentry would".into(),
    );
    for (feature, probe, loads) in [
        (
            "tracepoints",
            &probes.tracepoints,
            "syscall and sched tracepoints load",
        ),
        ("xdp", &probes.xdp, "the XDP program loads"),
    ] {
        match probe {
            Ok(()) => push(feature, State::Ok, loads.into()),
            Err(e) => push(feature, State::Degraded, e.clone()),
        }
    }
    for iface in &cfg.firewall.interfaces {
        let (state, detail) = xdp_interface(iface, cfg.firewall.xdp_mode);
        push("xdp_interface", state, detail);
    }
    for p in &cfg.watch.paths {
        let detail = match FanotifySensor::new(std::slice::from_ref(p)) {
            Ok(_) => format!(
                "{}: its filesystem can be marked (the last fallback works)",
                p.display()
            ),
            Err(e) => format!("{}: {e}", p.display()),
        };
        push("fanotify", State::Info, detail);
    }
    push(
        "memlock",
        State::Info,
        format!("{} (kernels since 5.11 charge BPF memory to the cgroup instead; the agent raises it anyway)", memlock()),
    );
    // What the io_uring programs would follow, from the offsets resolved above.
    let o = offsets.as_ref().copied().unwrap_or_default();
    let opens = sensors::file::uring_followable(&o).is_ok();
    let paths = opens && sensors::file::uring_paths_followable(&o).is_ok();
    let uring_unseen = uring
        .as_deref()
        .map(|u| sensors::file::uring_unseen(false, opens, paths, u));
    let sensors = plan(cfg, &probes, uring_unseen.as_deref(), cgroup2.is_some());
    if let Some(why) = &uring {
        let tracepoint_files = sensors
            .iter()
            .any(|s| s.sensor == "file" && s.backend == "tracepoint");
        push(
            "io_uring",
            if tracepoint_files {
                State::Degraded
            } else {
                State::Info
            },
            format!("open to users: {why}"),
        );
    } else {
        push(
            "io_uring",
            State::Ok,
            "closed to users (kernel.io_uring_disabled)".into(),
        );
    }
    // The syscall tracepoints skip 32-bit syscalls; the raw sys_exit program needs
    // thread_info.status to tell them (x86_64, from BTF).
    let compat = match &offsets {
        _ if !cfg!(target_arch = "x86_64") => None,
        Ok(o) if o.task_thread_status != 0 => Some(Ok(())),
        Ok(_) => Some(Err(
            "this kernel's BTF has no thread_info.status".to_string()
        )),
        Err(e) => Some(Err(format!("no struct offsets: {e}"))),
    };
    if crate::sensors::file::x32_syscalls_run() {
        push(
            "x32_syscalls",
            State::Degraded,
            "this kernel runs x32 syscalls, which no file program sees; boot without syscall.x32=y to close this".into(),
        );
    }
    if let Some(compat) = compat {
        match compat {
            Ok(()) => push(
                "ia32_syscalls",
                State::Ok,
                "32-bit (ia32) file syscalls, which no syscall tracepoint sees, are taken from raw sys_exit".into(),
            ),
            Err(e) => push(
                "ia32_syscalls",
                State::Degraded,
                format!("32-bit (ia32) file syscalls are unseen by the tracepoints ({e}); the ia32_emulation=0 boot parameter closes this"),
            ),
        }
    }
    let degraded = checks.iter().any(|c| c.state == State::Degraded)
        || sensors.iter().any(|s| s.backend == "none");
    Report {
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        checks,
        sensors,
        running_agents: running_agents(),
        degraded,
    }
}

/// What the kernel took, program by program (Err: the reason).
struct Probes {
    lsm: Result<(), String>,
    lsm_file: Result<(), String>,
    tracepoints: Result<(), String>,
    xdp: Result<(), String>,
}

impl Probes {
    fn skipped() -> Self {
        let no = || Err("not examined (needs root)".to_string());
        Self {
            lsm: no(),
            lsm_file: no(),
            tracepoints: no(),
            xdp: no(),
        }
    }
}

/// Load the object under pins of our own and ask the verifier for each kind of
/// program the agent uses; nothing is attached.
fn probe_programs(cfg: &Config) -> Probes {
    let mut cfg = cfg.clone();
    cfg.firewall.pin_dir =
        PathBuf::from(format!("/sys/fs/bpf/rampart-doctor-{}", std::process::id()));
    let res = (|| -> Result<Probes, String> {
        kernel::ensure_mounts().map_err(|e| e.to_string())?;
        let mut ebpf = kernel::load(&cfg).map_err(|e| format!("loading the object: {e}"))?;
        let lsm = lsm::probe_lsm(&mut ebpf);
        let lsm_file = match (&lsm, kernel::kernel_btf()) {
            (Ok(()), Ok(b)) => lsm::LSM_FILE_SESSIONS
                .iter()
                .try_for_each(|(name, hook)| lsm::load_lsm(&mut ebpf, &b, name, hook)),
            (Err(e), _) => Err(e.clone()),
            (_, Err(e)) => Err(e),
        };
        let tracepoints = [
            progs::SYS_EXIT_OPENAT,
            progs::SYS_ENTER_CLOSE,
            progs::EXEC_RESOLVED,
            progs::SYSCALL_EXIT_RAW,
        ]
        .iter()
        .try_for_each(|name| {
            let p = ebpf
                .program_mut(name)
                .ok_or_else(|| format!("{name} missing"))?;
            match p {
                aya::programs::Program::TracePoint(t) => t.load(),
                aya::programs::Program::RawTracePoint(t) => t.load(),
                _ => return Err(format!("{name}: not a tracepoint")),
            }
            .map_err(|e| format!("{name}: {e}"))
        });
        let xdp = crate::firewall::xdp::load_xdp(&mut ebpf)
            .map(|_| ())
            .map_err(|e| e.to_string());
        Ok(Probes {
            lsm,
            lsm_file,
            tracepoints,
            xdp,
        })
    })();
    let _ = std::fs::remove_dir_all(&cfg.firewall.pin_dir);
    res.unwrap_or_else(|e| Probes {
        lsm: Err(e.clone()),
        lsm_file: Err(e.clone()),
        tracepoints: Err(e.clone()),
        xdp: Err(e),
    })
}

/// The backend each sensor would start on, the way the agent chooses.
/// `uring`: what the tracepoint file backend would not see of io_uring, when users
/// can use it.
fn plan(cfg: &Config, p: &Probes, uring: Option<&str>, cgroup2: bool) -> Vec<Plan> {
    let mut out = Vec::new();
    let forced = |c: BackendChoice| match c {
        BackendChoice::Auto => "",
        BackendChoice::Lsm => "forced lsm; ",
        BackendChoice::Tracepoint => "forced tracepoint; ",
        BackendChoice::Fanotify => "forced fanotify; ",
    };
    let file = match cfg.sensors.file_backend {
        BackendChoice::Fanotify => ("fanotify", "forced".to_string()),
        c @ (BackendChoice::Auto | BackendChoice::Lsm) if p.lsm_file.is_ok() => (
            "lsm",
            format!(
                "{}write sessions from file_open to file_free_security; io_uring opens seen",
                forced(c)
            ),
        ),
        BackendChoice::Lsm => (
            "none",
            format!(
                "forced lsm, but {}",
                p.lsm_file.clone().err().unwrap_or_default()
            ),
        ),
        c if p.tracepoints.is_ok() => (
            "tracepoint",
            format!(
                "{}{}{}",
                forced(c),
                p.lsm_file
                    .clone()
                    .err()
                    .map(|e| format!("BPF-LSM: {e}"))
                    .unwrap_or_default(),
                uring.map(|u| format!("; unseen: {u}")).unwrap_or_default()
            ),
        ),
        _ => (
            "fanotify",
            format!(
                "tracepoints: {}",
                p.tracepoints.clone().err().unwrap_or_default()
            ),
        ),
    };
    out.push(Plan {
        sensor: "file",
        backend: file.0.into(),
        why: file.1,
    });
    out.push(Plan {
        sensor: "sensitive_read",
        backend: match (&p.lsm, file.0) {
            (Ok(()), _) => "lsm",
            (_, "fanotify") => "none",
            (_, b) => b,
        }
        .into(),
        why: if p.lsm.is_ok() {
            "file_open hook: reported and, enforcing, denied".into()
        } else {
            "reported only (no BPF-LSM to deny)".into()
        },
    });
    if cfg.exec.enabled {
        let (backend, why) = match cfg.sensors.exec_backend {
            BackendChoice::Fanotify => (
                "fanotify",
                "forced: denied through a permission event".to_string(),
            ),
            BackendChoice::Lsm if p.lsm.is_err() => (
                "none",
                format!(
                    "forced lsm, but {}",
                    p.lsm.clone().err().unwrap_or_default()
                ),
            ),
            BackendChoice::Auto | BackendChoice::Lsm if p.lsm.is_ok() && p.tracepoints.is_ok() => (
                "lsm",
                "denied with EPERM in bprm_check_security; reported from sched_process_exec"
                    .to_string(),
            ),
            _ if p.tracepoints.is_ok() => (
                "tracepoint",
                "a stopped exec is killed before its first instruction".to_string(),
            ),
            _ => ("fanotify", "tracepoints refused".to_string()),
        };
        out.push(Plan {
            sensor: "exec",
            backend: backend.into(),
            why,
        });
    }
    if cfg.egress.enabled {
        // "" is the cgroup2 root: the whole host.
        let dir = if cfg.egress.cgroup.as_os_str().is_empty() {
            kernel::cgroup2_root()
        } else {
            Some(cfg.egress.cgroup.clone())
        };
        let ok = cgroup2 && dir.as_ref().is_some_and(|d| d.is_dir());
        out.push(Plan {
            sensor: "egress",
            backend: if ok { "cgroup" } else { "none" }.into(),
            why: match (&dir, ok) {
                (Some(d), true) => format!("connect4/6 programs on {}", d.display()),
                (Some(d), false) => format!("{} is not a cgroup v2 directory here", d.display()),
                (None, _) => "no cgroup v2 mount".into(),
            },
        });
    }
    out
}

/// Native or generic XDP for `iface`, from its driver (nothing is attached).
fn xdp_interface(iface: &str, mode: crate::config::XdpMode) -> (State, String) {
    let dev = Path::new("/sys/class/net").join(iface);
    if !dev.exists() {
        return (
            State::Degraded,
            format!("{iface}: no such interface (firewall.interfaces)"),
        );
    }
    let driver = std::fs::read_link(dev.join("device/driver"))
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "virtual".into());
    let native = NATIVE_XDP_DRIVERS.contains(&driver.as_str());
    let wants_native = matches!(mode, crate::config::XdpMode::Native);
    let detail = format!(
        "{iface} (driver {driver}): {}",
        if native {
            "native XDP (in the driver, before an skb)"
        } else {
            "generic XDP only (after the skb is built; still before netfilter)"
        }
    );
    (
        if wants_native && !native {
            State::Degraded
        } else {
            State::Ok
        },
        detail,
    )
}

fn memlock() -> String {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) } != 0 {
        return "unknown".into();
    }
    let show = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            "unlimited".to_string()
        } else {
            format!("{} KiB", v / 1024)
        }
    };
    format!(
        "RLIMIT_MEMLOCK {} (hard {})",
        show(r.rlim_cur),
        show(r.rlim_max)
    )
}

/// Processes running `rampart run` (by executable name and argv), not this one.
fn running_agents() -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            exe.is_some_and(|e| e.file_name().is_some_and(|n| n == "rampart"))
                && argv.split(|b| *b == 0).nth(1) == Some(b"run".as_slice())
        })
        .collect();
    out.sort_unstable();
    out
}

/// The report for a terminal.
pub fn render(r: &Report) -> String {
    let mut s = format!("Rampart doctor, kernel {}\n\n", r.kernel);
    for c in &r.checks {
        let mark = match c.state {
            State::Ok => "ok  ",
            State::Degraded => "WARN",
            State::Info => "info",
        };
        s.push_str(&format!("[{mark}] {:<14} {}\n", c.feature, c.detail));
    }
    s.push_str("\nSensors as the agent would start them:\n");
    for p in &r.sensors {
        s.push_str(&format!("  {:<15} {:<11} {}\n", p.sensor, p.backend, p.why));
    }
    s.push_str(&match r.running_agents.as_slice() {
        [] => "\nNo agent is running.\n".to_string(),
        pids => format!("\nRunning agent: pid {pids:?} (its health: GET /api/v1/health)\n"),
    });
    s.push_str(if r.degraded {
        "\nSomething configured will run degraded (WARN above): exit 1.\n"
    } else {
        "\nEverything configured can run: exit 0.\n"
    });
    s
}
