// SPDX-License-Identifier: GPL-2.0-only
//! `cargo xtask vmtest [--kernel 6.1|6.12|all]`: the kernel-facing tests inside
//! Debian's own kernels, booted under QEMU (#18).
//!
//! Recipe (../shared/notes/kernel-and-toolchain.md): QEMU with TCG (nested KVM hangs
//! on this machine kind), virtme-ng sharing this machine's root read-only over 9p, and
//! Debian 12's `linux-image-6.1.0-*-amd64` and `linux-image-6.12.*+deb12-amd64`, whose
//! modules go under /lib/modules (virtme loads them from the shared root). BPF-LSM is
//! turned on by the command line (`lsm=...,bpf`). Inside, TMPDIR is a tmpfs (SQLite's
//! WAL does not work over 9p), CI=true (a kernel feature missing is a failure), and the
//! end-to-end test binary built here runs the kernel tests.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use crate::{
    bootstrap,
    util::{self, output, step},
};

/// What the guests need from Debian.
const PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "kmod",
    "cpio",
    "busybox-static",
    "python3-venv",
];
/// Root, the toolchain, QEMU and virtme-ng: the work directory (target/vmtest) and
/// the `vng` to boot guests with.
fn prepare(what: &str) -> Result<(PathBuf, PathBuf)> {
    if !util::is_root() {
        bail!("vmtest installs packages and kernel modules: run it as root");
    }
    bootstrap::run()?;
    step(&format!("{what}: QEMU, virtme-ng and the kernels"));
    bootstrap::apt_install(PACKAGES)?;
    let dir = util::root()?.join("target/vmtest");
    std::fs::create_dir_all(&dir)?;
    let vng = virtme_ng(&dir)?;
    Ok((dir, vng))
}

/// The kernel the guest benchmark runs in (BPF-LSM on, the newer of the two).
const BENCH_KERNEL: &str = "6.12";

/// `cargo xtask vmtest --bench`: the release benchmark's `lsm` phase (the file
/// sensor's write sessions on BPF-LSM against the tracepoints, same run) and its
/// `virtio` phase (drop rates on the guest's virtio-net) inside Debian's 6.12, merged
/// into `results` (bench/results.json).
pub fn bench(results: &Path) -> Result<()> {
    let (dir, vng) = prepare("vmtest bench")?;
    // nft and iptables for the guest's comparison (it shares this machine's root).
    bootstrap::bench_tools()?;
    let k = *KERNELS
        .iter()
        .find(|k| k.series == BENCH_KERNEL)
        .context("the bench kernel")?;
    let vmlinuz = fetch(&k, &dir)?;
    step("vmtest bench: the release benchmark binary");
    util::cargo(&[
        "build",
        "--release",
        "--package",
        "integration-test",
        "--bin",
        "rampart-bench",
    ])?;
    let bench = util::root()?.join("target/release/rampart-bench");
    let out = dir.join("out").join(format!("bench-{}.json", k.series));
    std::fs::create_dir_all(dir.join("out"))?;
    // `--only` merges into an existing file.
    std::fs::write(&out, "{}\n")?;
    step(&format!("vmtest bench: Linux {}, BPF-LSM", k.series));
    boot(
        &vng,
        &k,
        &vmlinuz,
        &dir,
        &format!("{} --only lsm --out {}", bench.display(), out.display()),
    )?;
    step(&format!(
        "vmtest bench: Linux {}, virtio-net drops",
        k.series
    ));
    virtio(&vng, &k, &vmlinuz, &dir, &bench, &out)?;
    let guest: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&out)?).context("the guest's results")?;
    if guest.is_empty() {
        bail!("the guest benchmark wrote no results ({})", out.display());
    }
    let mut all: serde_json::Map<String, serde_json::Value> = std::fs::read_to_string(results)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    all.extend(guest);
    std::fs::write(results, serde_json::to_string_pretty(&all)? + "\n")?;
    eprintln!("merged the guest's results into {}", results.display());
    Ok(())
}

/// The guest's benchmark NIC (a locally administered virtio-net MAC).
const VIRTIO_MAC: &str = "52:54:00:72:61:6d";
/// The host namespace holding the guest's tap, and the tap.
const BENCH_NS: &str = "rt-vmbench";
const BENCH_TAP: &str = "rtvirt0";

/// The XDP lead where XDP can show it: the guest (one CPU, the slow side) receives
/// a flood on its virtio-net NIC, fed from this machine through a tap in a namespace
/// of the benchmark's own, and drops it with each mechanism in turn
/// (`rampart-bench --only virtio`). The namespace, the tap and the flooder are gone
/// afterwards, also on failure.
fn virtio(
    vng: &Path,
    k: &Kernel,
    vmlinuz: &Path,
    dir: &Path,
    bench: &Path,
    out: &Path,
) -> Result<()> {
    let _ = util::run(Command::new("ip").args(["netns", "del", BENCH_NS]));
    util::run(Command::new("ip").args(["netns", "add", BENCH_NS]))?;
    let res = (|| -> Result<()> {
        util::run(Command::new("ip").args([
            "-n", BENCH_NS, "tuntap", "add", "dev", BENCH_TAP, "mode", "tap",
        ]))?;
        util::run(Command::new("ip").args(["-n", BENCH_NS, "link", "set", BENCH_TAP, "up"]))?;
        // The flood runs until killed (or for the guest's whole time budget).
        let mut flood = Command::new(bench)
            .args(["--flood", BENCH_NS, BENCH_TAP, VIRTIO_MAC])
            .arg(GUEST_TIMEOUT_S.to_string())
            .stdin(std::process::Stdio::null())
            .spawn()
            .context("starting the flood")?;
        let booted = boot_with(
            vng,
            k,
            vmlinuz,
            dir,
            &format!("{} --only virtio --out {}", bench.display(), out.display()),
            &BootOpts {
                cpus: Some(1),
                qemu_opts: Some(format!(
                    "-netdev tap,id=rbench,ifname={BENCH_TAP},script=no,downscript=no \
                     -device virtio-net-pci,netdev=rbench,mac={VIRTIO_MAC}"
                )),
                netns: Some(BENCH_NS),
                env: &[("RAMPART_VIRTIO_MAC", VIRTIO_MAC)],
            },
        );
        let _ = flood.kill();
        let _ = flood.wait();
        booted
    })();
    let _ = util::run(Command::new("ip").args(["netns", "del", BENCH_NS]));
    res
}

/// virtme-ng from PyPI, into a venv of its own.
const VIRTME_NG: &str = "virtme-ng";
/// The kernel-facing tests run in each guest by default (filters of the e2e
/// binary): what only these kernels can show, or what depends on the kernel's own
/// layout. Every program loads (the verifier of each version) and `doctor`; exec
/// denied by BPF-LSM's bprm_check; a sensitive read reported and denied by its
/// file_open; the LSM file backend's spellings (io_uring too); the tracepoint
/// backend's spellings and exec spellings, whose canonical-path walk reads kernel
/// structures through this kernel's BTF offsets; XDP's block/allow and parsing.
/// The fanotify, egress and other XDP tests, and the doctor's kernel-independent
/// checks, run on the host kernel only: a test that starts the agent costs 150-200 s
/// under TCG (2026-12-02, `--report-time` in the guest's log), and the whole e2e set
/// did not finish in 30 minutes a kernel (2026-12-01).
const GUEST_TESTS: &[&str] = &[
    "kernels::every_program_loads_on_this_kernel",
    "kernels::doctor_says_what_this_kernel_allows_and_what_each_sensor_would_use",
    "exec_e2e::exec_from_world_writable_dir_reported_then_killed_before_first_line",
    "sensor_backends_e2e::web_user_reading_a_sensitive_file_is_a_finding",
    "sensor_truth_e2e::the_lsm_file_backend_finds_the_same_spellings",
    "sensor_truth_e2e::a_webshell_is_found_however_its_path_is_spelled",
    "sensor_truth_e2e::an_exec_from_a_world_writable_tree_is_seen_however_it_is_spelled",
    "xdp_fixtures::xdp_block_allow_and_parsing",
];
/// One CPU per guest. With two, multi-threaded TCG let a CPU run stale translated
/// code while the kernel patched its text (the int3 of a static key being switched,
/// as when tracepoints attach): "Oops: int3" in `syscall_trace_enter` on 6.12, a
/// panic, the guest gone (2026-11-30, during sensor_truth_e2e's exec test). One
/// CPU cannot race with itself.
const GUEST_CPUS: u32 = 1;
/// A guest that has not powered off by then is killed (and fails).
const GUEST_TIMEOUT_S: u32 = 1800;

/// A kernel series and the Debian package pattern of its newest image.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    pub series: &'static str,
    prefix: &'static str,
    suffix: &'static str,
}

pub const KERNELS: &[Kernel] = &[
    Kernel {
        series: "6.1",
        prefix: "linux-image-6.1.0-",
        suffix: "-amd64",
    },
    Kernel {
        series: "6.12",
        prefix: "linux-image-6.12.",
        suffix: "+deb12-amd64",
    },
];

pub fn run(which: &str, filters: &[String]) -> Result<()> {
    let filters: Vec<String> = if filters.is_empty() {
        GUEST_TESTS.iter().map(|s| s.to_string()).collect()
    } else {
        filters.to_vec()
    };
    let kernels: Vec<Kernel> = match which {
        "all" => KERNELS.to_vec(),
        s => vec![*KERNELS
            .iter()
            .find(|k| k.series == s)
            .with_context(|| format!("--kernel {s}: one of 6.1, 6.12, all"))?],
    };
    let (dir, vng) = prepare("vmtest")?;
    let images = kernels
        .iter()
        .map(|k| Ok((*k, fetch(k, &dir)?)))
        .collect::<Result<Vec<_>>>()?;
    step("vmtest: the test binary");
    util::cargo(&["build", "--package", "agent", "--bin", "rampart"])?;
    let bin = test_binary()?;
    let mut failed = Vec::new();
    for (k, vmlinuz) in images {
        step(&format!(
            "vmtest: Linux {} ({})",
            k.series,
            vmlinuz.display()
        ));
        // Each test's time in the log (libtest's `--report-time`, unstable: allowed at
        // run time by RUSTC_BOOTSTRAP), to see where a guest's half hour goes.
        let command = format!(
            "RUSTC_BOOTSTRAP=1 {} --test-threads=1 --nocapture -Z unstable-options --report-time {}",
            bin.display(),
            filters.join(" ")
        );
        // Guests run one after the other: two at once took each about twice as long
        // (TCG's CPU thread and the 9p file server share the host's two cores).
        let started = std::time::Instant::now();
        match boot(&vng, &k, &vmlinuz, &dir, &command) {
            Ok(()) => eprintln!(
                "vmtest: Linux {}: passed in {} s",
                k.series,
                started.elapsed().as_secs()
            ),
            Err(e) => {
                eprintln!(
                    "vmtest: Linux {}: {e:#} (after {} s)",
                    k.series,
                    started.elapsed().as_secs()
                );
                failed.push(k.series);
            }
        }
    }
    if !failed.is_empty() {
        bail!("vmtest failed on {failed:?}");
    }
    Ok(())
}

/// `vng` from a venv under target/vmtest (installed once).
fn virtme_ng(dir: &Path) -> Result<PathBuf> {
    let venv = dir.join("venv");
    let vng = venv.join("bin/vng");
    if !vng.exists() {
        util::run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        util::run(Command::new(venv.join("bin/pip")).args(["install", "-q", VIRTME_NG]))?;
    }
    Ok(vng)
}

/// The newest Debian image of the series: downloaded and unpacked under `dir`, its
/// modules installed for virtme. Returns its vmlinuz.
fn fetch(k: &Kernel, dir: &Path) -> Result<PathBuf> {
    let list = output("apt-cache", &["pkgnames", k.prefix]).unwrap_or_default();
    let mut names: Vec<&str> = list
        .lines()
        .filter(|n| n.ends_with(k.suffix) && !n.contains("-rt-") && !n.contains("cloud"))
        .filter(|n| {
            n[k.prefix.len()..n.len() - k.suffix.len()]
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.')
        })
        .collect();
    names.sort_by_key(|n| version_key(&n[k.prefix.len()..n.len() - k.suffix.len()]));
    let Some(pkg) = names.last() else {
        bail!("no {}*{} in apt (apt-get update?)", k.prefix, k.suffix);
    };
    let release = pkg.trim_start_matches("linux-image-");
    let unpacked = dir.join("kernels").join(release);
    let vmlinuz = unpacked.join(format!("boot/vmlinuz-{release}"));
    if !vmlinuz.exists() {
        let dl = dir.join("debs");
        std::fs::create_dir_all(&dl)?;
        util::run(
            Command::new("apt-get")
                .args(["download", pkg])
                .current_dir(&dl),
        )?;
        let deb = std::fs::read_dir(&dl)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb"))
            })
            .with_context(|| format!("{pkg}: downloaded .deb not found in {}", dl.display()))?;
        std::fs::create_dir_all(&unpacked)?;
        util::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    }
    let modules = Path::new("/lib/modules").join(release);
    if !modules.join("modules.dep").exists() {
        std::fs::create_dir_all("/lib/modules")?;
        util::run(
            Command::new("cp")
                .arg("-a")
                .arg(unpacked.join("lib/modules").join(release))
                .arg("/lib/modules/"),
        )?;
        util::run(Command::new("depmod").args(["-a", release]))?;
    }
    Ok(vmlinuz)
}

/// "6.12.100" -> [6, 12, 100], for sorting releases.
fn version_key(v: &str) -> Vec<u64> {
    v.split(['.', '-'])
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

/// The e2e test binary (built, not run).
fn test_binary() -> Result<PathBuf> {
    let out = util::cargo_cmd(&[
        "test",
        "--package",
        "integration-test",
        "--test",
        "e2e",
        "--no-run",
        "--message-format=json",
    ])?
    .env("PATH", util::path_env())
    .output()
    .context("building the e2e test binary")?;
    if !out.status.success() {
        bail!(
            "building the e2e test binary failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"]["name"] == "e2e")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .context("no e2e executable in cargo's output")
}

/// Boot `vmlinuz` and run the guest tests; fails unless they all passed. The guest
/// writes the tests' output and exit code into `dir/out` (shared read-write); the
/// console (kernel log included) is shown when something went wrong.
/// How a guest is booted beyond the defaults (2 CPUs, no NIC).
#[derive(Default)]
struct BootOpts<'a> {
    /// Guest CPUs (default 2).
    cpus: Option<u32>,
    /// Extra QEMU arguments (a NIC), passed through virtme-ng.
    qemu_opts: Option<String>,
    /// Run QEMU inside this host namespace (where its tap lives).
    netns: Option<&'a str>,
    /// Exported in the guest before `command`.
    env: &'a [(&'a str, &'a str)],
}

fn boot(vng: &Path, k: &Kernel, vmlinuz: &Path, dir: &Path, command: &str) -> Result<()> {
    boot_with(vng, k, vmlinuz, dir, command, &BootOpts::default())
}

fn boot_with(
    vng: &Path,
    k: &Kernel,
    vmlinuz: &Path,
    dir: &Path,
    command: &str,
    opts: &BootOpts<'_>,
) -> Result<()> {
    let out = dir.join("out");
    std::fs::create_dir_all(&out)?;
    let (log, rc) = (
        out.join(format!("guest-{}.log", k.series)),
        out.join(format!("guest-{}.rc", k.series)),
    );
    let _ = std::fs::remove_file(&rc);
    let script = dir.join(format!("guest-{}.sh", k.series));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             # Written by cargo xtask vmtest; run as root inside the guest.\n\
             # Not over /tmp: the checkout or the shared results may live there.\n\
             mkdir -p /run/rampart-vmtest\n\
             mount -t tmpfs -o size=1g tmpfs /run/rampart-vmtest\n\
             # Both kernels run BPF-LSM with this command line: the tests must see it.\n\
             export TMPDIR=/run/rampart-vmtest CI=true RUST_BACKTRACE=1 RAMPART_EXPECT_LSM=1\n\
             {env}\
             cd {root}\n\
             {command} > {log} 2>&1\n\
             echo $? > {rc}\n",
            root = util::root()?.display(),
            log = log.display(),
            rc = rc.display(),
            env = opts
                .env
                .iter()
                .map(|(k, v)| format!("export {k}={v}\n"))
                .collect::<String>(),
        ),
    )?;
    let path = format!(
        "{}:{}",
        vng.parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        util::path_env()
    );
    let mut cmd = match opts.netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "timeout"]);
            c
        }
        None => Command::new("timeout"),
    };
    let cpus = opts.cpus.unwrap_or(GUEST_CPUS).to_string();
    let console = cmd
        .args(["--kill-after=10", &GUEST_TIMEOUT_S.to_string()])
        .arg(vng)
        .env("PATH", path)
        .args([
            "--verbose",
            "--disable-kvm",
            "--force-9p",
            "--cpus",
            &cpus,
            "--memory",
            "3G",
        ])
        .arg("--rwdir")
        .arg(&out)
        .arg("--run")
        .arg(vmlinuz)
        .args(["--append", "lsm=lockdown,capability,yama,bpf"])
        .args(
            opts.qemu_opts
                .iter()
                .flat_map(|q| ["--no-dhcp".to_string(), format!("--qemu-opts={q}")]),
        )
        .arg("--exec")
        .arg(format!("sh {}", script.display()))
        .stdin(std::process::Stdio::null())
        .output()
        .context("starting vng")?;
    let tests = std::fs::read_to_string(&log).unwrap_or_default();
    eprintln!(
        "==> vmtest: Linux {}: the guest's output\n{tests}",
        k.series
    );
    match std::fs::read_to_string(&rc).map(|c| c.trim().to_string()) {
        Ok(c) if c == "0" => Ok(()),
        Ok(c) => bail!(
            "the guest tests exited {c} (output above, and in {})",
            log.display()
        ),
        Err(_) => {
            eprintln!(
                "{}{}",
                String::from_utf8_lossy(&console.stdout),
                String::from_utf8_lossy(&console.stderr)
            );
            bail!(
                "the guest never reported (vng exited {}; console above)",
                console.status
            )
        }
    }
}
