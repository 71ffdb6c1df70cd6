// SPDX-License-Identifier: GPL-2.0-only
//! Types that cross the kernel/userspace boundary, and the names of every map.
//!
//! Everything here is `#[repr(C)]`, `Copy`, has explicit padding and no `bool`,
//! so both sides agree on layout byte for byte. Sizes are pinned with const
//! asserts; changing one is a wire-format change and bumps `EVENT_VERSION`.
#![no_std]

pub mod counters;
pub mod egress;
pub mod event;
pub mod exec;
pub mod maps;
pub mod xdp;

pub use event::*;
