// SPDX-License-Identifier: GPL-2.0-only
//! XDP firewall wire types.

/// Why the XDP program reached its verdict: the index into `RAMPART_XDP_STATS_TOTAL`.
/// Stable numbers; never renumber.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpReason {
    /// Passed: no rule matched (or not IP).
    Passed = 0,
    /// Dropped: the source matched a block CIDR.
    Blocked = 1,
    /// Passed: the packet was too short for the headers it claimed (fail open).
    Malformed = 2,
    /// Passed: our own error (map lookup failure etc.); fail open.
    Error = 3,
}

impl XdpReason {
    pub const COUNT: u32 = 4;
    pub const ALL: [XdpReason; 4] = [Self::Passed, Self::Blocked, Self::Malformed, Self::Error];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Blocked => "blocked",
            Self::Malformed => "malformed",
            Self::Error => "error",
        }
    }
}

/// Value stored with a block entry. Reason codes are informational for the kernel.
pub type BlockValue = u32;
