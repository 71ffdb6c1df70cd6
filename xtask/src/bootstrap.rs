// SPDX-License-Identifier: GPL-2.0-only
//! Install the toolchain the kernel programs need, detecting what is already there.
//!
//! Verified recipe (README "Requirements"): Debian's rustc-web (rustc 1.96, LLVM 22)
//! with rust-web-src for `-Z build-std=core`, and bpf-linker 0.13.0 built against
//! LLVM 22. The rustup toolchains here have no rust-src and cannot download it.

use std::{path::Path, process::Command};

use anyhow::{bail, Context, Result};

use crate::util::{self, output, step};

/// Debian packages: compiler + core sources + LLVM for bpf-linker, the network tools
/// the end-to-end tests use, systemd-journal-remote, which writes the real journal
/// files the journald test reads (it upgrades systemd to the same point release), and
/// rsyslog, through which the forged-syslog test logs, and the interpreters the exec
/// tests follow to their scripts (python3, perl, the 32-bit ld.so).
const APT_PACKAGES: &[&str] = &[
    "rustc-web",
    "rust-web-src",
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    // libbpf-sys builds its vendored libbpf against these.
    "libelf-dev",
    "pkg-config",
    // clippy for the kernel crate, from the same Debian toolchain that builds it.
    "rust-web-clippy",
    "iproute2",
    "iputils-ping",
    "systemd-journal-remote",
    "rsyslog",
    "python3",
    "perl",
    // The 32-bit dynamic loader (/lib/ld-linux.so.2), which the exec test runs a
    // file through with 32-bit syscalls, as on hosts that keep 32-bit libraries.
    "libc6-i386",
    // clamd, which the mail AV test starts on a private socket with a signature of
    // its own (no downloaded databases).
    "clamav-daemon",
    // MariaDB, which the database-object test starts on a private socket.
    "mariadb-server",
    "mariadb-client",
    // exim, which the forward-guard test runs with the shipped router and transport
    // under a configuration of its own (-C); its service is never started.
    "exim4-daemon-light",
];
const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
pub const EBPF_RUSTC: &str = "/usr/bin/rustc";
/// Debian's clippy for that compiler (package rust-web-clippy).
pub const EBPF_CLIPPY: &str = "/usr/bin/cargo-clippy";
const CORE_SRC: &str = "/usr/lib/rustlib/src/rust/library/core";

fn dpkg_installed(pkg: &str) -> bool {
    output("dpkg-query", &["-W", "-f=${Status}", pkg])
        .is_some_and(|s| s.contains("install ok installed"))
}

/// Comparison tools the benchmarks measure against.
// fail2ban: only `fail2ban-regex` is used, as the log-parsing baseline (no init
// starts its service on these machines).
const BENCH_PACKAGES: &[&str] = &["nftables", "iptables", "yara", "fail2ban"];

/// Install the Debian packages of `packages` that are missing.
pub fn apt_install(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        eprintln!("apt packages: all present ({})", packages.join(", "));
        return Ok(());
    }
    if !util::is_root() {
        bail!("missing Debian packages {missing:?}; run `sudo cargo xtask bootstrap` or install them with apt-get");
    }
    eprintln!(
        "apt packages missing: {}; installing (apt-get update + install)",
        missing.join(", ")
    );
    util::run(Command::new("apt-get").arg("update").arg("-q"))?;
    // Packages the tests run on their own terms (mariadb, exim, clamd) must not
    // start as host services: a policy-rc.d that refuses every start, for the length
    // of the install, unless the machine has one of its own.
    let policy = std::path::Path::new("/usr/sbin/policy-rc.d");
    let ours = !policy.exists();
    if ours {
        std::fs::write(
            policy,
            "#!/bin/sh\n# cargo xtask bootstrap: no service starts during its install\nexit 101\n",
        )
        .context("writing /usr/sbin/policy-rc.d")?;
        std::fs::set_permissions(policy, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .context("chmod /usr/sbin/policy-rc.d")?;
    }
    let r = util::run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );
    if ours {
        let _ = std::fs::remove_file(policy);
    }
    r
}

/// Clean PHP the signature false-positive test scans: Debian's WordPress and PHP
/// libraries, downloaded (not installed) and unpacked under target/.
const FP_PACKAGES: &[&str] = &[
    "wordpress",
    "libphp-phpmailer",
    "php-phpseclib",
    "php-getid3",
    "php-twig",
    // Applications and libraries whose code handles request input in many ways
    // (2026-12-01: 6,318 more PHP files).
    "phpmyadmin",
    "roundcube-core",
    "mediawiki",
    "php-symfony-console",
    "php-guzzlehttp-guzzle",
    "php-doctrine-annotations",
    "php-monolog",
];

/// Download and unpack [`FP_PACKAGES`] into `target/fp-corpus/root` (once; the list
/// of packages is the marker). Returns the unpacked root.
pub fn fp_corpus() -> Result<std::path::PathBuf> {
    step("bootstrap: false-positive corpus (Debian PHP packages, unpacked)");
    let dir = util::root()?.join("target/fp-corpus");
    let root = dir.join("root");
    let marker = dir.join("packages");
    let want = FP_PACKAGES.join("\n");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == want) && root.is_dir() {
        eprintln!("fp corpus: present ({})", root.display());
        return Ok(root);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let debs = dir.join("debs");
    std::fs::create_dir_all(&debs).context("creating target/fp-corpus")?;
    let download = || {
        Command::new("apt-get")
            .arg("download")
            .args(FP_PACKAGES)
            .current_dir(&debs)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !download() {
        // A fresh machine may have no package lists yet.
        util::run(Command::new("apt-get").arg("update").arg("-q"))?;
        if !download() {
            bail!("apt-get download {} failed", FP_PACKAGES.join(" "));
        }
    }
    for e in std::fs::read_dir(&debs).context("listing the downloaded packages")? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "deb") {
            util::run(Command::new("dpkg-deb").arg("-x").arg(&p).arg(&root))?;
        }
    }
    std::fs::write(&marker, want).context("writing the corpus marker")?;
    Ok(root)
}

/// The SMTP server the alert tests deliver to (PyPI), at this version.
const AIOSMTPD: &str = "aiosmtpd==1.4.6";

/// What the end-to-end tests start on their own: aiosmtpd for the alert mail test,
/// installed for the `python3` on PATH (the one the tests run), and openssl, which
/// makes their receivers' certificates.
pub fn test_tools() -> Result<()> {
    step("bootstrap: test receivers (aiosmtpd, openssl) and the dashboard's browser");
    // Headless Chromium and its WebDriver for tests/tests/dashboard_e2e.rs.
    apt_install(&["openssl", "chromium", "chromium-driver"])?;
    let have = || {
        Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if have() {
        eprintln!("aiosmtpd: present");
        return Ok(());
    }
    let pip = |extra: &[&str]| {
        Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", AIOSMTPD])
            .args(extra)
            .status()
            .is_ok_and(|s| s.success())
    };
    // A Debian python3 refuses pip without the flag (PEP 668).
    if !(pip(&[]) || pip(&["--break-system-packages"])) || !have() {
        bail!("pip install {AIOSMTPD} failed");
    }
    Ok(())
}

/// The API fuzzer the OpenAPI test runs (PyPI), at this version.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// schemathesis in a virtualenv of its own under target/ (its dependencies stay out
/// of the system's Python); returns the path of its command.
pub fn schemathesis() -> Result<std::path::PathBuf> {
    step("bootstrap: schemathesis (the OpenAPI test's fuzzer)");
    let venv = util::root()?.join("target/schemathesis-venv");
    let bin = venv.join("bin/schemathesis");
    let version = SCHEMATHESIS.trim_start_matches("schemathesis==");
    if output(&bin.to_string_lossy(), &["--version"]).is_some_and(|v| v.contains(version)) {
        eprintln!("schemathesis: present ({})", bin.display());
        return Ok(bin);
    }
    let _ = std::fs::remove_dir_all(&venv);
    let make = || {
        Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !make() {
        // Debian splits venv (ensurepip) out of python3.
        apt_install(&["python3-venv"])?;
        if !make() {
            bail!("python3 -m venv {} failed", venv.display());
        }
    }
    util::run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", SCHEMATHESIS]))?;
    Ok(bin)
}

/// What `cargo xtask bench` needs on top of the build toolchain.
pub fn bench_tools() -> Result<()> {
    step("bootstrap: benchmark comparison tools");
    apt_install(BENCH_PACKAGES)
}

pub fn run() -> Result<()> {
    step("bootstrap: checking the eBPF toolchain");
    apt_install(APT_PACKAGES)?;
    let rustc = output(EBPF_RUSTC, &["--version"])
        .context("Debian rustc-web did not install /usr/bin/rustc")?;
    if !Path::new(CORE_SRC).exists() {
        bail!("{CORE_SRC} missing after installing rust-web-src");
    }
    eprintln!(
        "kernel-program compiler: {} (core sources present)",
        rustc.trim()
    );

    let have = output("bpf-linker", &["--version"]).unwrap_or_default();
    if have.contains(BPF_LINKER_VERSION) {
        eprintln!("bpf-linker: {}", have.trim());
    } else {
        eprintln!(
            "bpf-linker {BPF_LINKER_VERSION} missing (found {:?}); cargo install (LLVM 22, ~1 min)",
            have.trim()
        );
        let path = format!("{LLVM_PREFIX}/bin:{}", util::path_env());
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--version",
                BPF_LINKER_VERSION,
            ])
            .args(["--no-default-features", "--features", "llvm-22"])
            .env("PATH", path)
            .env("LLVM_PREFIX", LLVM_PREFIX)
            .env("LLVM_SYS_221_PREFIX", LLVM_PREFIX)
            .status()
            .context("running cargo install bpf-linker")?;
        if !status.success() {
            bail!("cargo install bpf-linker {BPF_LINKER_VERSION} failed ({status}); is llvm-22-dev installed?");
        }
    }
    Ok(())
}

fn mounted(target: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().any(|l| l.split(' ').nth(4) == Some(target)))
        .unwrap_or(false)
}

/// Mount bpffs, tracefs and securityfs where missing (the tests and the agent need them).
pub fn mounts() -> Result<()> {
    for (fstype, target) in [
        ("bpf", "/sys/fs/bpf"),
        ("tracefs", "/sys/kernel/tracing"),
        ("securityfs", "/sys/kernel/security"),
    ] {
        if mounted(target) {
            continue;
        }
        eprintln!("mounting {fstype} at {target}");
        let mut c = if util::is_root() {
            Command::new("mount")
        } else {
            let mut c = Command::new("sudo");
            c.arg("mount");
            c
        };
        util::run(c.args(["-t", fstype, fstype, target]))?;
    }
    Ok(())
}
