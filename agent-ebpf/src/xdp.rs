// SPDX-License-Identifier: GPL-2.0-only
//! XDP firewall: drop packets whose source address is in a block LPM trie.
//!
//! Error policy: a packet we cannot parse, or our own failure, is PASSED and counted
//! (`malformed` / `error`): the firewall must never take a host off the network.

use agent_common::xdp::{BlockValue, XdpReason};
use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{lpm_trie::Key, LpmTrie, PerCpuArray},
    programs::XdpContext,
};

/// IPv4 block CIDRs (network byte order). Real size set at load from `firewall.max_entries_v4`.
#[map(name = "RAMPART_BLOCK_V4")]
static BLOCK_V4: LpmTrie<[u8; 4], BlockValue> = LpmTrie::with_max_entries(1, 0);

/// IPv6 block CIDRs. Real size set at load from `firewall.max_entries_v6`.
#[map(name = "RAMPART_BLOCK_V6")]
static BLOCK_V6: LpmTrie<[u8; 16], BlockValue> = LpmTrie::with_max_entries(1, 0);

/// Verdict counters indexed by `XdpReason`. Read by the agent for /metrics.
#[map(name = "RAMPART_XDP_STATS_TOTAL")]
static XDP_STATS_TOTAL: PerCpuArray<u64> = PerCpuArray::with_max_entries(XdpReason::COUNT, 0);

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;

#[xdp]
pub fn rampart_xdp(ctx: XdpContext) -> u32 {
    let (action, reason) = match try_rampart_xdp(&ctx) {
        Ok(v) => v,
        Err(reason) => (xdp_action::XDP_PASS, reason),
    };
    count(reason);
    action
}

#[inline(always)]
fn count(reason: XdpReason) {
    if let Some(c) = XDP_STATS_TOTAL.get_ptr_mut(reason as u32) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *c += 1 };
    }
}

/// Bounds-checked pointer to a `T` at `offset` in the packet.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Result<*const T, XdpReason> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return Err(XdpReason::Malformed);
    }
    Ok((start + offset) as *const T)
}

#[inline(always)]
fn read_be16(ctx: &XdpContext, offset: usize) -> Result<u16, XdpReason> {
    let p = ptr_at::<[u8; 2]>(ctx, offset)?;
    // SAFETY: bounds checked by ptr_at.
    let b = unsafe { *p };
    Ok(u16::from_be_bytes(b))
}

fn try_rampart_xdp(ctx: &XdpContext) -> Result<(u32, XdpReason), XdpReason> {
    let mut off = ETH_HLEN;
    let mut proto = read_be16(ctx, 12)?;
    // Up to two VLAN tags (802.1Q / QinQ).
    if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        proto = read_be16(ctx, off + 2)?;
        off += VLAN_HLEN;
        if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
            proto = read_be16(ctx, off + 2)?;
            off += VLAN_HLEN;
        }
    }
    let blocked = match proto {
        ETH_P_IP => {
            // Minimal IPv4 header is 20 bytes; source address at +12.
            ptr_at::<[u8; 20]>(ctx, off)?;
            let src = ptr_at::<[u8; 4]>(ctx, off + 12)?;
            // SAFETY: bounds checked.
            let key = Key::new(32, unsafe { *src });
            BLOCK_V4.get(&key).is_some()
        }
        ETH_P_IPV6 => {
            ptr_at::<[u8; 40]>(ctx, off)?;
            let src = ptr_at::<[u8; 16]>(ctx, off + 8)?;
            // SAFETY: bounds checked.
            let key = Key::new(128, unsafe { *src });
            BLOCK_V6.get(&key).is_some()
        }
        _ => false,
    };
    if blocked {
        Ok((xdp_action::XDP_DROP, XdpReason::Blocked))
    } else {
        Ok((xdp_action::XDP_PASS, XdpReason::Passed))
    }
}
