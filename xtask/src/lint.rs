// SPDX-License-Identifier: GPL-2.0-only
//! `cargo xtask lint`: formatting and clippy for the workspace and for the kernel
//! crate (which only Debian's rustc-web builds, so its clippy is Debian's too), and
//! the agent's layout rules.

use std::process::Command;

use anyhow::Result;

use crate::{
    bootstrap, layout,
    util::{self, step},
};

pub fn run() -> Result<()> {
    bootstrap::run()?;
    let root = util::root()?;
    step("lint: rustfmt (workspace, agent-ebpf)");
    util::cargo(&["fmt", "--all", "--check"])?;
    util::run(util::cargo_cmd(&["fmt", "--check"])?.current_dir(root.join("agent-ebpf")))?;
    step("lint: clippy (workspace)");
    util::cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--quiet",
        "--",
        "-D",
        "warnings",
    ])?;
    step("lint: clippy (agent-ebpf, bpfel-unknown-none, Debian's clippy)");
    let mut clippy = Command::new(bootstrap::EBPF_CLIPPY);
    // The outer cargo's CARGO_*/RUSTC* must not leak into the kernel crate's build.
    for (k, _) in std::env::vars() {
        if (k.starts_with("CARGO_") && k != "CARGO_HOME") || k.starts_with("RUSTC") {
            clippy.env_remove(k);
        }
    }
    util::run(
        clippy
            .current_dir(root.join("agent-ebpf"))
            .env("PATH", util::path_env())
            .env("RUSTC", bootstrap::EBPF_RUSTC)
            .env("RUSTC_BOOTSTRAP", "1")
            .env("CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS", "fallback")
            .args([
                "clippy",
                "--release",
                "--locked",
                "--quiet",
                "-Z",
                "build-std=core",
                "--target",
                "bpfel-unknown-none",
                "--target-dir",
            ])
            .arg(root.join("target/ebpf-clippy"))
            .args(["--", "-D", "warnings"]),
    )?;
    step("lint: agent/src layout");
    layout::check(&root.join("agent/src"))
}
