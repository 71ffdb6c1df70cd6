// SPDX-License-Identifier: GPL-2.0-only
//! Builds `agent-ebpf` for bpfel-unknown-none and leaves the object in OUT_DIR, where
//! `src/loader.rs` embeds it. The kernel crate needs a compiler with the `core` sources
//! (Debian's rustc-web + rust-web-src) and bpf-linker; `cargo xtask bootstrap` installs
//! both. See README "Requirements".

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

/// Compiler that has the core sources for -Z build-std (Debian rustc-web).
const DEFAULT_EBPF_RUSTC: &str = "/usr/bin/rustc";
const ENV_EBPF_RUSTC: &str = "RAMPART_EBPF_RUSTC";

fn main() -> Result<()> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir.parent().context("agent has no parent dir")?;
    let ebpf_dir = root.join("agent-ebpf");
    for p in [
        "agent-ebpf/src",
        "agent-ebpf/Cargo.toml",
        "agent-ebpf/Cargo.lock",
        "agent-common/src",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    println!("cargo:rerun-if-env-changed={ENV_EBPF_RUSTC}");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let rustc = env::var(ENV_EBPF_RUSTC).unwrap_or_else(|_| DEFAULT_EBPF_RUSTC.to_string());
    preflight(&rustc)?;
    let target_dir = out_dir.join("ebpf-target");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    // Start from a clean slate: the outer build's CARGO_*/RUSTC*/RUSTFLAGS must not leak in.
    for (k, _) in env::vars() {
        if (k.starts_with("CARGO_") && k != "CARGO_HOME")
            || k.starts_with("RUSTC")
            || k.contains("RUSTFLAGS")
            || matches!(
                k.as_str(),
                "TARGET" | "HOST" | "OUT_DIR" | "PROFILE" | "OPT_LEVEL" | "DEBUG" | "NUM_JOBS"
            )
        {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(&ebpf_dir)
        .env("RUSTC", &rustc)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS", "fallback")
        .args([
            "build",
            "--release",
            "--locked",
            "-Z",
            "build-std=core",
            "--target",
            "bpfel-unknown-none",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    let status = cmd.status().context("running cargo for agent-ebpf")?;
    if !status.success() {
        bail!("building agent-ebpf failed ({status}); run `cargo xtask bootstrap` to install the eBPF toolchain");
    }
    let obj = target_dir.join("bpfel-unknown-none/release/agent-ebpf");
    std::fs::copy(&obj, out_dir.join("agent-ebpf.o"))
        .with_context(|| format!("copying {}", obj.display()))?;
    Ok(())
}

fn preflight(rustc: &str) -> Result<()> {
    let src = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .with_context(|| {
            format!("{rustc} not found: run `cargo xtask bootstrap` (installs Debian rustc-web)")
        })?;
    let sysroot = String::from_utf8_lossy(&src.stdout).trim().to_string();
    let core_src = Path::new(&sysroot).join("lib/rustlib/src/rust/library/core");
    if !core_src.exists() {
        bail!(
            "{} missing: {rustc} has no core sources; run `cargo xtask bootstrap` (installs rust-web-src)",
            core_src.display()
        );
    }
    if which("bpf-linker").is_none() {
        bail!("bpf-linker not on PATH: run `cargo xtask bootstrap` (installs bpf-linker 0.13.0 for LLVM 22)");
    }
    Ok(())
}

fn which(bin: &str) -> Option<PathBuf> {
    env::var_os("PATH").and_then(|paths| {
        env::split_paths(&paths)
            .map(|d| d.join(bin))
            .find(|p| p.is_file())
    })
}
