// SPDX-License-Identifier: GPL-2.0-only
//! BPF-LSM capability probe. The agent loads this at start to learn whether the
//! kernel accepts LSM programs (many do not: this one refuses every trampoline
//! program with EPERM), and reports the result and the backend each sensor falls
//! back to. It never denies: it returns the verdict of earlier LSM programs.

use aya_ebpf::{macros::lsm, programs::LsmContext};

/// `bprm_check_security(struct linux_binprm *bprm, int ret)`: arg 1 is the verdict so far.
#[lsm(hook = "bprm_check_security")]
pub fn rampart_lsm_probe(ctx: LsmContext) -> i32 {
    // Never overturn an earlier denial; never deny ourselves.
    ctx.arg::<i32>(1)
}
