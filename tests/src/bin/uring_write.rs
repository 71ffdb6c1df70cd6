// SPDX-License-Identifier: GPL-2.0-only
//! `uring-write SRC DST`: copy SRC to DST with the open, the write and the close all
//! done by io_uring (IORING_OP_OPENAT/WRITE/CLOSE), which no syscall tracepoint sees.
//! The hostile local user of the file-sensor tests.

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

fn main() -> Result<()> {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let [src, dst] = args.as_slice() else {
        bail!("usage: uring-write SRC DST");
    };
    let data = std::fs::read(src).with_context(|| format!("reading {}", src.display()))?;
    let dst = CString::new(dst.as_bytes()).context("a NUL in DST")?;
    let mut ring = IoUring::new(4).context("io_uring_setup (kernel.io_uring_disabled?)")?;
    let open = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), dst.as_ptr())
        .flags(libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC)
        .mode(0o644)
        .build();
    let fd = run(&mut ring, open, "IORING_OP_OPENAT")?;
    let write = opcode::Write::new(types::Fd(fd), data.as_ptr(), data.len() as u32).build();
    let n = run(&mut ring, write, "IORING_OP_WRITE")?;
    if n as usize != data.len() {
        bail!("short write: {n} of {}", data.len());
    }
    run(
        &mut ring,
        opcode::Close::new(types::Fd(fd)).build(),
        "IORING_OP_CLOSE",
    )?;
    Ok(())
}
