// SPDX-License-Identifier: GPL-2.0-only
//! `cargo xtask package`: the .deb (cargo-deb) and the .rpm (cargo-generate-rpm) of the
//! agent, from the metadata in agent/Cargo.toml. The test run builds them from the
//! debug binary, twice (two package versions), for the install/upgrade/purge test.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use crate::{
    bootstrap,
    util::{self, output, step},
};

const CARGO_DEB: (&str, &str) = ("cargo-deb", "3.8.0");
const CARGO_GENERATE_RPM: (&str, &str) = ("cargo-generate-rpm", "0.21.1");
/// `rpm` installs the .rpm into a scratch root in the package test.
const APT_PACKAGES: &[&str] = &["rpm"];

/// The packagers at their pinned versions, and rpm.
pub fn tools() -> Result<()> {
    step("bootstrap: packaging tools (cargo-deb, cargo-generate-rpm, rpm)");
    bootstrap::apt_install(APT_PACKAGES)?;
    for (krate, version) in [CARGO_DEB, CARGO_GENERATE_RPM] {
        let sub = krate.trim_start_matches("cargo-");
        let have = output("cargo", &[sub, "--version"]).unwrap_or_default();
        if have.contains(version) {
            eprintln!("{krate}: {}", have.trim());
            continue;
        }
        eprintln!(
            "{krate} {version} missing (found {:?}); cargo install (~1.5 min)",
            have.trim()
        );
        util::run(
            Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args([
                "install",
                "--locked",
                krate,
                "--version",
                version,
            ]),
        )?;
    }
    Ok(())
}

/// The packages one build made.
pub struct Packages {
    pub debs: Vec<PathBuf>,
    pub rpms: Vec<PathBuf>,
}

/// Build the binary (`profile`: release or dev), its man pages, and for each of
/// `revisions` a .deb and an .rpm of that package revision into `out`.
pub fn build(profile: &str, revisions: &[u32], out: &Path) -> Result<Packages> {
    tools()?;
    let root = util::root()?;
    step(&format!("package: the agent ({profile} profile)"));
    util::cargo(&[
        "build",
        "--package",
        "agent",
        "--bin",
        "rampart",
        "--profile",
        profile,
    ])?;
    let bin = root
        .join("target")
        .join(if profile == "dev" { "debug" } else { profile })
        .join("rampart");
    let man = root.join("target/man");
    let _ = std::fs::remove_dir_all(&man);
    util::run(Command::new(&bin).arg("man").arg("--out").arg(&man))?;
    for e in std::fs::read_dir(&man).context("listing target/man")? {
        util::run(Command::new("gzip").args(["-9nf"]).arg(e?.path()))?;
    }
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let version = env!("CARGO_PKG_VERSION");
    let mut made = Packages {
        debs: Vec::new(),
        rpms: Vec::new(),
    };
    for rev in revisions {
        step(&format!("package: rampart {version}-{rev} (.deb, .rpm)"));
        let deb = out.join(format!("rampart_{version}-{rev}_amd64.deb"));
        let mut c = util::cargo_cmd(&[
            "deb",
            "--package",
            "agent",
            "--no-build",
            "--profile",
            profile,
        ])?;
        c.arg("--deb-version")
            .arg(format!("{version}-{rev}"))
            .arg("--output")
            .arg(&deb);
        if profile == "dev" {
            // The test packages: a debug binary, compressed fast.
            c.arg("--fast");
        }
        util::run(&mut c)?;
        let rpm = out.join(format!("rampart-{version}-{rev}.x86_64.rpm"));
        let mut c = util::cargo_cmd(&["generate-rpm", "--package", "agent", "--profile", profile])?;
        c.arg("--set-metadata")
            .arg(format!("release = \"{rev}\""))
            .arg("--output")
            .arg(&rpm);
        if profile == "dev" {
            // zstd at the packager's level takes ~45 s for the debug binary.
            c.args(["--payload-compress", "gzip"]);
        }
        util::run(&mut c)?;
        for p in [&deb, &rpm] {
            if !p.exists() {
                bail!("{} was not made", p.display());
            }
        }
        made.debs.push(deb);
        made.rpms.push(rpm);
    }
    Ok(made)
}

/// `cargo xtask package`: release packages into target/packages.
pub fn run() -> Result<()> {
    bootstrap::run()?;
    let out = util::root()?.join("target/packages");
    let made = build("release", &[1], &out)?;
    for p in made.debs.iter().chain(&made.rpms) {
        eprintln!("made {}", p.display());
    }
    Ok(())
}
