// SPDX-License-Identifier: GPL-2.0-only
//! Rampart kernel programs. Entry points are thin: each calls a `try_*` body and
//! fails open (passes the packet / emits nothing) on its own errors, counting them.
#![no_std]
#![no_main]
// Map keys and values go to aya-ebpf by reference on purpose: by value, a path key
// (hundreds of bytes) would be copied onto the 512-byte BPF stack.
#![allow(clippy::needless_borrows_for_generic_args)]

mod egress;
mod exec;
mod file;
mod kstruct;
mod lsm;
mod xdp;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program; the verifier rejects any path that gets here.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
