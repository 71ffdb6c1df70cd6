// SPDX-License-Identifier: GPL-2.0-only
//! XDP firewall wire types.

use crate::EventHeader;

crate::counters! {
    /// Why the XDP program reached its verdict: the index into `RAMPART_XDP_STATS_TOTAL`.
    /// Stable numbers; never renumber.
    pub enum XdpReason {
        /// Passed: no rule matched (or not IP).
        Passed = 0 => "passed",
        /// Dropped: the source matched a block CIDR.
        Blocked = 1 => "blocked",
        /// Passed: too short for the headers it claimed (fail open).
        Malformed = 2 => "malformed",
        /// Passed: our own error (map failure etc.); fail open.
        Error = 3 => "error",
        /// Passed: the source matched an allow CIDR (allow beats every drop rule).
        Allowed = 4 => "allowed",
        /// Dropped: the source exceeded its packet rate.
        RateLimited = 5 => "rate_limited",
        /// Dropped: the source exceeded its TCP SYN rate.
        SynLimited = 6 => "syn_limited",
        /// Dropped: the destination port is not in the inbound port policy.
        PortDenied = 7 => "port_denied",
        /// Counted (passed): a source crossed the port-scan threshold; an event was sent.
        ScanDetected = 8 => "scan_detected",
        /// A drop/scan event could not be sent (ring buffer full).
        EventLost = 9 => "event_lost",
        /// Passed: a rule would have dropped it, but enforcement is off
        /// ([`XdpConfig::monitor`]: Cerberus disabled, break-glass).
        Monitored = 10 => "monitored",
    }
}

/// Value stored with a block or allow entry (informational for the kernel).
pub type BlockValue = u32;

/// Port policy flags in [`XdpConfig::port_policy`].
pub mod port_policy {
    /// Enforce `RAMPART_PORTS_TCP` for inbound TCP.
    pub const TCP: u32 = 1 << 0;
    /// Enforce `RAMPART_PORTS_UDP` for inbound UDP.
    pub const UDP: u32 = 1 << 1;
}

/// Words in a port bitmap (`Array<u64>` of 65536 bits).
pub const PORT_BITMAP_WORDS: u32 = 65536 / 64;

/// Firewall policy, the single entry of `RAMPART_XDP_CONFIG`. Zero disables a feature.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpConfig {
    /// Packets per second per source (all protocols); 0 = off.
    pub rate_pps: u32,
    /// Bucket size (packets) for `rate_pps`.
    pub rate_burst: u32,
    /// TCP SYN (without ACK) per second per source; 0 = off.
    pub syn_pps: u32,
    pub syn_burst: u32,
    /// Distinct destination ports from one source within the window that count as a scan; 0 = off.
    pub scan_ports: u32,
    pub scan_window_ms: u32,
    /// [`port_policy`] flags.
    pub port_policy: u32,
    /// Drop events sent per second per CPU (sampling); 0 = none.
    pub sample_per_sec: u32,
    /// Non-zero: enforcement is off. Every rule is still evaluated (rate and scan
    /// state keep counting), but a packet a rule would drop passes as
    /// [`XdpReason::Monitored`] and no drop event is sent.
    pub monitor: u32,
}

/// Token bucket per source (`RAMPART_RATE_STATE`, `RAMPART_SYN_STATE`), in nano-tokens.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RateState {
    pub tokens_nano: u64,
    pub last_ns: u64,
}

/// Port-scan tracking per source (`RAMPART_SCAN_STATE`): a 256-bit set of
/// destination ports (hashed) seen in the current window.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ScanState {
    pub window_start_ns: u64,
    pub bits: [u64; 4],
    pub distinct: u32,
    /// 1 once the event for this window was sent.
    pub reported: u32,
}

/// A sampled drop or a port scan, sent to userspace.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XdpEvent {
    pub header: EventHeader,
    /// [`XdpReason`] as u32.
    pub reason: u32,
    /// IP protocol (6 TCP, 17 UDP, ...).
    pub proto: u8,
    /// 4 or 6.
    pub family: u8,
    pub dport: u16,
    /// Source address; IPv4 in the first 4 bytes.
    pub src: [u8; 16],
    /// For scans: distinct ports seen in the window.
    pub distinct_ports: u32,
    pub ifindex: u32,
}
const _: () = assert!(core::mem::size_of::<XdpEvent>() == 16 + 8 + 16 + 8);

#[cfg(feature = "user")]
mod user {
    use super::*;
    // SAFETY: repr(C), Copy, explicit padding, any bit pattern valid.
    unsafe impl aya::Pod for XdpConfig {}
    unsafe impl aya::Pod for RateState {}
    unsafe impl aya::Pod for ScanState {}
}
