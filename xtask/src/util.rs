// SPDX-License-Identifier: GPL-2.0-only
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

pub fn root() -> Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    Ok(dir
        .parent()
        .context("xtask has no parent directory")?
        .to_path_buf())
}

pub fn step(what: &str) {
    eprintln!("\n==> {what}");
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// PATH with ~/.cargo/bin first (bpf-linker lives there; Debian's /usr/bin/cargo must not win).
pub fn path_env() -> String {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let old = std::env::var("PATH").unwrap_or_default();
    format!("{home}/.cargo/bin:{old}")
}

pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .env("PATH", path_env())
        .status()
        .with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed: {status}");
    }
    Ok(())
}

pub fn cargo_cmd(args: &[&str]) -> Result<Command> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
    c.args(args).current_dir(root()?);
    Ok(c)
}

pub fn cargo(args: &[&str]) -> Result<()> {
    run(&mut cargo_cmd(args)?)
}

/// Run cargo as root (through `sudo -E` when we are not root), with extra
/// environment variables for cargo and what it runs.
pub fn cargo_root_env(args: &[&str], envs: &[(&str, &std::ffi::OsStr)]) -> Result<()> {
    if is_root() {
        let mut c = cargo_cmd(args)?;
        c.envs(envs.iter().copied());
        return run(&mut c);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new("sudo");
    c.arg("-E")
        .arg(format!("PATH={}", path_env()))
        .envs(envs.iter().copied())
        .arg(cargo)
        .args(args)
        .current_dir(root()?);
    run(&mut c)
}

/// Replace this process with `bin args` as root (through sudo when needed).
pub fn exec_root(bin: &Path, args: &[&str]) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let mut c = if is_root() {
        let mut c = Command::new(bin);
        c.args(args);
        c
    } else {
        let mut c = Command::new("sudo");
        c.arg("-E").arg(bin).args(args);
        c
    };
    c.current_dir(root()?);
    let err = c.exec();
    bail!("exec {}: {err}", bin.display())
}

pub fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd)
        .args(args)
        .env("PATH", path_env())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
