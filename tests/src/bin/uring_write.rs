// SPDX-License-Identifier: GPL-2.0-only
//! `uring-write [--close-only|--fixed|--rename|--link] SRC DST`: SRC's content put at
//! DST through io_uring, which no syscall tracepoint sees. The hostile local user of
//! the file-sensor tests.
//! - no flag: the open, the write and the close all by io_uring
//!   (IORING_OP_OPENAT/WRITE/CLOSE);
//! - `--close-only`: open(2) and write(2), the close by IORING_OP_CLOSE, then 30 s
//!   alive (an exit would end the write session anyway);
//! - `--fixed`: opened into a ring's own file slot, turned into an fd by
//!   IORING_OP_FIXED_FD_INSTALL (6.8+), written and closed by io_uring (the fd, then
//!   the slot), 30 s alive;
//! - `--rename`, `--link`: SRC itself renamed or hard-linked to DST
//!   (IORING_OP_RENAMEAT, IORING_OP_LINKAT).
//!
//! `uring-write --unlink PATH`: PATH removed by IORING_OP_UNLINKAT.

use std::{ffi::CString, os::unix::ffi::OsStrExt};

use anyhow::{bail, Context, Result};
use io_uring::{opcode, squeue, types, IoUring};

/// Submit one entry and return its completion's result (an errno as an error).
fn run(ring: &mut IoUring, entry: squeue::Entry, what: &str) -> Result<i32> {
    // SAFETY: every buffer the entry points at outlives the wait below.
    unsafe { ring.submission().push(&entry) }.context("the submission queue is full")?;
    ring.submit_and_wait(1).with_context(|| what.to_string())?;
    let cqe = ring.completion().next().context("no completion")?;
    if cqe.result() < 0 {
        bail!(
            "{what}: {}",
            std::io::Error::from_raw_os_error(-cqe.result())
        );
    }
    Ok(cqe.result())
}

/// SRC renamed (or hard-linked) to DST by io_uring.
fn move_or_link(rename: bool, src: &std::ffi::OsStr, dst: &std::ffi::OsStr) -> Result<()> {
    let src = CString::new(src.as_bytes()).context("a NUL in SRC")?;
    let dst = CString::new(dst.as_bytes()).context("a NUL in DST")?;
    let mut ring = IoUring::new(4).context("io_uring_setup (kernel.io_uring_disabled?)")?;
    let cwd = types::Fd(libc::AT_FDCWD);
    let (entry, what) = if rename {
        let e = opcode::RenameAt::new(cwd, src.as_ptr(), cwd, dst.as_ptr()).build();
        (e, "IORING_OP_RENAMEAT")
    } else {
        let e = opcode::LinkAt::new(cwd, src.as_ptr(), cwd, dst.as_ptr()).build();
        (e, "IORING_OP_LINKAT")
    };
    run(&mut ring, entry, what)?;
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if let [mode, path] = args.as_slice() {
        if mode == "--unlink" {
            let path = CString::new(path.as_bytes()).context("a NUL in PATH")?;
            let mut ring = IoUring::new(4).context("io_uring_setup (kernel.io_uring_disabled?)")?;
            let unlink = opcode::UnlinkAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr()).build();
            run(&mut ring, unlink, "IORING_OP_UNLINKAT")?;
            return Ok(());
        }
    }
    let (mode, src, dst) = match args.as_slice() {
        [src, dst] => ("", src, dst),
        [mode, src, dst] => (mode.to_str().unwrap_or("?"), src, dst),
        _ => bail!(
            "usage: uring-write [--close-only|--fixed|--rename|--link] SRC DST | --unlink PATH"
        ),
    };
    if matches!(mode, "--rename" | "--link") {
        return move_or_link(mode == "--rename", src, dst);
    }
    let data = std::fs::read(src).with_context(|| format!("reading {}", src.display()))?;
    let mut ring = IoUring::new(4).context("io_uring_setup (kernel.io_uring_disabled?)")?;
    let fd = match mode {
        "" => {
            let dst = CString::new(dst.as_bytes()).context("a NUL in DST")?;
            let open = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), dst.as_ptr())
                .flags(libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC)
                .mode(0o644)
                .build();
            run(&mut ring, open, "IORING_OP_OPENAT")?
        }
        "--close-only" => {
            let file = std::fs::File::create(dst)
                .with_context(|| format!("creating {}", dst.display()))?;
            std::io::Write::write_all(&mut &file, &data).context("write(2)")?;
            // The fd is io_uring's to close from here on.
            std::os::fd::IntoRawFd::into_raw_fd(file)
        }
        "--fixed" => {
            let dst = CString::new(dst.as_bytes()).context("a NUL in DST")?;
            ring.submitter()
                .register_files_sparse(1)
                .context("IORING_REGISTER_FILES2")?;
            let open = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), dst.as_ptr())
                .flags(libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC)
                .mode(0o644)
                .file_index(Some(
                    types::DestinationSlot::try_from_slot_target(0)
                        .map_err(|_| anyhow::anyhow!("slot 0"))?,
                ))
                .build();
            run(&mut ring, open, "IORING_OP_OPENAT into slot 0")?;
            run(
                &mut ring,
                opcode::FixedFdInstall::new(types::Fixed(0), 0).build(),
                "IORING_OP_FIXED_FD_INSTALL",
            )?
        }
        other => bail!("unknown mode {other}"),
    };
    if mode != "--close-only" {
        let write = opcode::Write::new(types::Fd(fd), data.as_ptr(), data.len() as u32).build();
        let n = run(&mut ring, write, "IORING_OP_WRITE")?;
        if n as usize != data.len() {
            bail!("short write: {n} of {}", data.len());
        }
    }
    run(
        &mut ring,
        opcode::Close::new(types::Fd(fd)).build(),
        "IORING_OP_CLOSE",
    )?;
    if mode == "--fixed" {
        // The slot's reference too: the file's last (when fanotify and BPF-LSM see
        // its end); the slot's close is no fd's, so the tracepoint sensor skips it.
        run(
            &mut ring,
            opcode::Close::new(types::Fixed(0)).build(),
            "IORING_OP_CLOSE of slot 0",
        )?;
    }
    if !mode.is_empty() {
        // Alive, so only the close (not the exit) can end the session in time.
        std::thread::sleep(std::time::Duration::from_secs(30));
    }
    Ok(())
}
