// SPDX-License-Identifier: GPL-2.0-only
//! Egress sensor (cgroup connect4/connect6) wire types.

use crate::{EventHeader, COMM_LEN};

/// `EgressConfig::mode`.
pub mod mode {
    /// Not checking (the programs may be attached but pass everything silently).
    pub const OFF: u32 = 0;
    /// Report policy violations; never deny.
    pub const OBSERVE: u32 = 1;
    /// Enforcement configured but in dry run: report what would be denied.
    pub const DRY_RUN: u32 = 2;
    /// Deny policy violations (connect() fails with EPERM).
    pub const ENFORCE: u32 = 3;
}

/// SMTP-like ports the policy covers (at most this many).
pub const MAX_EGRESS_PORTS: usize = 8;

/// The single entry of `RAMPART_EGRESS_CONFIG`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EgressConfig {
    pub mode: u32,
    /// 1: report every outbound connect, not just policy violations.
    pub all_connects: u32,
    pub nports: u32,
    pub _pad: u32,
    /// Host byte order.
    pub ports: [u16; MAX_EGRESS_PORTS],
}

/// `ConnectEvent::decision`. Stable numbers.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not covered by the policy (reported only with `all_connects`).
    Allowed = 0,
    /// Policy violation, observe mode.
    Observed = 1,
    /// Policy violation that enforcement would deny (dry run).
    DryRun = 2,
    /// Policy violation, denied.
    Denied = 3,
}

impl Decision {
    pub fn from_u32(v: u32) -> Option<Self> {
        [Self::Allowed, Self::Observed, Self::DryRun, Self::Denied]
            .into_iter()
            .find(|d| *d as u32 == v)
    }
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Observed => "observed",
            Self::DryRun => "dry_run",
            Self::Denied => "denied",
        }
    }
}

/// An outbound connect.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ConnectEvent {
    pub header: EventHeader,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: [u8; COMM_LEN],
    /// 4 or 6.
    pub family: u16,
    /// Host byte order.
    pub dport: u16,
    /// [`Decision`] as u32.
    pub decision: u32,
    /// IPv4 in the first 4 bytes.
    pub daddr: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<ConnectEvent>() == 72);

crate::counters! {
    /// Indexes of `RAMPART_EGRESS_STATS_TOTAL`. Stable numbers.
    pub enum EgressStat {
        Checked = 0 => "checked",
        Violations = 1 => "violations",
        Denied = 2 => "denied",
        RingbufFull = 3 => "ringbuf_full",
    }
}

#[cfg(feature = "user")]
mod user {
    use super::*;
    // SAFETY: repr(C), Copy, explicit padding, any bit pattern valid.
    unsafe impl aya::Pod for EgressConfig {}
}
