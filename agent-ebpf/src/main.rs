// SPDX-License-Identifier: GPL-2.0-only
//! Rampart kernel programs. Entry points are thin: each calls a `try_*` body and
//! fails open (passes the packet / emits nothing) on its own errors, counting them.
#![no_std]
#![no_main]
// Map keys and values go to aya-ebpf by reference on purpose: by value, a path key
// (hundreds of bytes) would be copied onto the 512-byte BPF stack.
#![allow(clippy::needless_borrows_for_generic_args)]

/// Read a field of a per-CPU scratch value, volatile: loops keep their running
/// state in map memory, which the verifier does not track, so every iteration
/// reaches the same state and is pruned instead of explored once per value (and
/// LLVM cannot carry the value in a register instead).
macro_rules! get {
    ($st:expr, $($f:ident).+) => {
        // SAFETY: a field of our per-CPU scratch.
        unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*$st).$($f).+)) }
    };
}
/// Write a field of a per-CPU scratch value, volatile (see `get!`).
macro_rules! set {
    ($st:expr, $($f:ident).+, $v:expr) => {
        // SAFETY: a field of our per-CPU scratch.
        unsafe { core::ptr::write_volatile(core::ptr::addr_of_mut!((*$st).$($f).+), $v) }
    };
}

mod egress;
mod exec;
mod file;
mod kstruct;
mod lsm;
mod syscall;
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
