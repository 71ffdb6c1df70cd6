// SPDX-License-Identifier: GPL-2.0-only
//! `compat-syscalls write SRC DST` | `rename OLD NEW` | `link OLD NEW`: the file
//! operation done with 32-bit (ia32) syscalls through `int $0x80` from this 64-bit
//! process, as a customer's 32-bit binary would do it. The kernel's per-syscall
//! tracepoints never see these calls. The hostile local user of the file-sensor
//! tests (x86_64 only).

use anyhow::{bail, Context, Result};

#[cfg(target_arch = "x86_64")]
fn main() -> Result<()> {
    use std::os::unix::ffi::OsStrExt;

    use integration_test::ia32::{self, call, Low};
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let [op, a, b] = args.as_slice() else {
        bail!("usage: compat-syscalls write SRC DST | rename OLD NEW | link OLD NEW");
    };
    match op.to_str() {
        Some("write") => {
            let data = std::fs::read(a).with_context(|| format!("reading {}", a.display()))?;
            ia32::write_file(std::path::Path::new(b), &data)
                .with_context(|| format!("writing {}", b.display()))?;
        }
        Some(what @ ("rename" | "link")) => {
            let mut low = Low::new(1 << 16)?;
            let (from, to) = (low.put(a.as_bytes())?, low.put(b.as_bytes())?);
            let nr = if what == "rename" {
                ia32::RENAME
            } else {
                ia32::LINK
            };
            call(nr, from, to, 0)
                .with_context(|| format!("{what} {} {}", a.display(), b.display()))?;
        }
        _ => bail!("unknown operation {op:?}"),
    }
    Ok(())
}

#[cfg(not(target_arch = "x86_64"))]
fn main() -> Result<()> {
    bail!("32-bit syscalls through int 0x80 are an x86_64 matter")
}
