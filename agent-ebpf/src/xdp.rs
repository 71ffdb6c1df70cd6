// SPDX-License-Identifier: GPL-2.0-only
//! XDP firewall. Order of rules for each IP packet:
//! allow (pass) > block (drop) > per-source rate > per-source SYN rate > port policy
//! (drop), then port-scan accounting (never drops; sends an event).
//!
//! Error policy: a packet we cannot parse, or our own failure, is PASSED and counted
//! (`malformed` / `error`): the firewall must never take a host off the network.

use agent_common::{
    xdp::{
        port_policy, BlockValue, RateState, ScanState, XdpConfig, XdpEvent, XdpReason,
        PORT_BITMAP_WORDS,
    },
    EventHeader, EventKind, EVENT_VERSION,
};
use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_ktime_get_ns,
    macros::{map, xdp},
    maps::{lpm_trie::Key, Array, LpmTrie, LruHashMap, PerCpuArray},
    programs::XdpContext,
};

use crate::file::EVENTS;

/// IPv4 block CIDRs (network byte order). Pinned; size from `firewall.max_entries_v4`.
#[map(name = "RAMPART_BLOCK_V4")]
static BLOCK_V4: LpmTrie<[u8; 4], BlockValue> = LpmTrie::pinned(1, 0);
/// IPv6 block CIDRs. Pinned; size from `firewall.max_entries_v6`.
#[map(name = "RAMPART_BLOCK_V6")]
static BLOCK_V6: LpmTrie<[u8; 16], BlockValue> = LpmTrie::pinned(1, 0);
/// IPv4 allow CIDRs: never dropped. Pinned; size from `firewall.max_allow_entries`.
#[map(name = "RAMPART_ALLOW_V4")]
static ALLOW_V4: LpmTrie<[u8; 4], BlockValue> = LpmTrie::pinned(1, 0);
/// IPv6 allow CIDRs. Pinned.
#[map(name = "RAMPART_ALLOW_V6")]
static ALLOW_V6: LpmTrie<[u8; 16], BlockValue> = LpmTrie::pinned(1, 0);

/// Policy, written by the agent (one entry).
#[map(name = "RAMPART_XDP_CONFIG")]
static XDP_CONFIG: Array<XdpConfig> = Array::with_max_entries(1, 0);
/// Per-source packet buckets. Size from `firewall.max_tracked_sources`.
#[map(name = "RAMPART_RATE_STATE")]
static RATE_STATE: LruHashMap<[u8; 16], RateState> = LruHashMap::with_max_entries(1, 0);
/// Per-source SYN buckets.
#[map(name = "RAMPART_SYN_STATE")]
static SYN_STATE: LruHashMap<[u8; 16], RateState> = LruHashMap::with_max_entries(1, 0);
/// Per-source port-scan windows.
#[map(name = "RAMPART_SCAN_STATE")]
static SCAN_STATE: LruHashMap<[u8; 16], ScanState> = LruHashMap::with_max_entries(1, 0);
/// Allowed inbound TCP ports (bitmap), used when the TCP policy is on.
#[map(name = "RAMPART_PORTS_TCP")]
static PORTS_TCP: Array<u64> = Array::with_max_entries(PORT_BITMAP_WORDS, 0);
/// Allowed inbound UDP ports (bitmap), used when the UDP policy is on.
#[map(name = "RAMPART_PORTS_UDP")]
static PORTS_UDP: Array<u64> = Array::with_max_entries(PORT_BITMAP_WORDS, 0);
/// Per-CPU bucket that bounds how many drop events are sampled.
#[map(name = "RAMPART_XDP_SAMPLE")]
static XDP_SAMPLE: PerCpuArray<RateState> = PerCpuArray::with_max_entries(1, 0);
/// Verdict counters indexed by `XdpReason`. Read by the agent for /metrics.
#[map(name = "RAMPART_XDP_STATS_TOTAL")]
static XDP_STATS_TOTAL: PerCpuArray<u64> = PerCpuArray::with_max_entries(XdpReason::COUNT, 0);

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const NANO: u64 = 1_000_000_000;
/// Longest idle gap a bucket refills for (bounds the multiplication).
const MAX_REFILL_NS: u64 = 10 * NANO;

/// What the parser learned about a packet.
struct Pkt {
    family: u8,
    /// Source, IPv4 as ::ffff:a.b.c.d (one key space for the per-source maps).
    src: [u8; 16],
    proto: u8,
    /// Destination port; 0 when unknown (not TCP/UDP, or a non-first fragment).
    dport: u16,
    /// TCP SYN without ACK.
    syn: bool,
}

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
    Ok(u16::from_be_bytes(unsafe { *p }))
}

#[inline(always)]
fn read_u8(ctx: &XdpContext, offset: usize) -> Result<u8, XdpReason> {
    let p = ptr_at::<u8>(ctx, offset)?;
    // SAFETY: bounds checked by ptr_at.
    Ok(unsafe { *p })
}

/// Destination port and SYN flag of the L4 header at `off`.
#[inline(always)]
fn l4(ctx: &XdpContext, off: usize, proto: u8) -> Result<(u16, bool), XdpReason> {
    match proto {
        IPPROTO_TCP => {
            ptr_at::<[u8; 20]>(ctx, off)?;
            let flags = read_u8(ctx, off + 13)?;
            // SYN set, ACK clear.
            Ok((read_be16(ctx, off + 2)?, flags & 0x12 == 0x02))
        }
        IPPROTO_UDP => {
            ptr_at::<[u8; 8]>(ctx, off)?;
            Ok((read_be16(ctx, off + 2)?, false))
        }
        _ => Ok((0, false)),
    }
}

fn parse(ctx: &XdpContext) -> Result<Option<Pkt>, XdpReason> {
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
    match proto {
        ETH_P_IP => {
            ptr_at::<[u8; 20]>(ctx, off)?;
            let ihl = (read_u8(ctx, off)? & 0x0f) as usize * 4;
            if ihl < 20 {
                return Err(XdpReason::Malformed);
            }
            let l4proto = read_u8(ctx, off + 9)?;
            let frag = read_be16(ctx, off + 6)? & 0x1fff;
            let s = ptr_at::<[u8; 4]>(ctx, off + 12)?;
            // SAFETY: bounds checked.
            let s = unsafe { *s };
            let mut src = [0u8; 16];
            src[10] = 0xff;
            src[11] = 0xff;
            src[12] = s[0];
            src[13] = s[1];
            src[14] = s[2];
            src[15] = s[3];
            // Non-first fragments carry no L4 header: the source rules still apply.
            let (dport, syn) = if frag == 0 {
                l4(ctx, off + ihl, l4proto)?
            } else {
                (0, false)
            };
            Ok(Some(Pkt {
                family: 4,
                src,
                proto: l4proto,
                dport,
                syn,
            }))
        }
        ETH_P_IPV6 => {
            ptr_at::<[u8; 40]>(ctx, off)?;
            let next = read_u8(ctx, off + 6)?;
            let s = ptr_at::<[u8; 16]>(ctx, off + 8)?;
            // SAFETY: bounds checked.
            let src = unsafe { *s };
            // Extension headers are not walked: only a directly following TCP/UDP
            // header is used for port rules.
            let (dport, syn) = l4(ctx, off + 40, next)?;
            Ok(Some(Pkt {
                family: 6,
                src,
                proto: next,
                dport,
                syn,
            }))
        }
        _ => Ok(None),
    }
}

#[inline(always)]
fn v4_of(src: &[u8; 16]) -> [u8; 4] {
    [src[12], src[13], src[14], src[15]]
}

/// Take one token from `state`'s bucket (rate per second, burst packets). Returns
/// false when empty. Races between CPUs make it approximate, never unsafe.
#[inline(always)]
fn take_token(state: *mut RateState, now: u64, rate: u32, burst: u32) -> bool {
    // SAFETY: pointer from a map lookup, valid for this program run.
    let st = unsafe { &mut *state };
    let cap = burst as u64 * NANO;
    let mut elapsed = now.saturating_sub(st.last_ns);
    if elapsed > MAX_REFILL_NS {
        elapsed = MAX_REFILL_NS;
    }
    let mut tokens = st.tokens_nano + elapsed * rate as u64;
    if tokens > cap {
        tokens = cap;
    }
    st.last_ns = now;
    if tokens >= NANO {
        st.tokens_nano = tokens - NANO;
        true
    } else {
        st.tokens_nano = tokens;
        false
    }
}

/// Per-source bucket in `map`; a new source starts with a full bucket.
#[inline(always)]
fn source_allowed(
    map: &LruHashMap<[u8; 16], RateState>,
    src: &[u8; 16],
    now: u64,
    rate: u32,
    burst: u32,
) -> Result<bool, XdpReason> {
    if let Some(st) = map.get_ptr_mut(src) {
        return Ok(take_token(st, now, rate, burst));
    }
    let fresh = RateState {
        tokens_nano: (burst as u64).saturating_sub(1) * NANO,
        last_ns: now,
    };
    map.insert(src, &fresh, 0).map_err(|_| XdpReason::Error)?;
    Ok(burst >= 1)
}

#[inline(always)]
fn port_allowed(map: &Array<u64>, port: u16) -> bool {
    match map.get((port / 64) as u32) {
        Some(word) => (*word >> (port % 64)) & 1 == 1,
        // Our own failure: fail open.
        None => true,
    }
}

fn emit(ctx: &XdpContext, pkt: &Pkt, reason: XdpReason, distinct: u32, kind: EventKind) {
    let Some(mut entry) = EVENTS.reserve::<XdpEvent>(0) else {
        count(XdpReason::EventLost);
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: reserved ring buffer memory of size_of::<XdpEvent>().
    unsafe {
        (*ev).header = EventHeader {
            kind: kind as u16,
            version: EVENT_VERSION,
            _pad: 0,
            len: core::mem::size_of::<XdpEvent>() as u32,
            ktime_ns: bpf_ktime_get_ns(),
        };
        (*ev).reason = reason as u32;
        (*ev).proto = pkt.proto;
        (*ev).family = pkt.family;
        (*ev).dport = pkt.dport;
        (*ev).src = pkt.src;
        (*ev).distinct_ports = distinct;
        // SAFETY: ctx.ctx is the kernel's xdp_md for this run.
        (*ev).ifindex = (*ctx.ctx).ingress_ifindex;
    }
    entry.submit(0);
}

/// Send a sampled drop event when this CPU's sampling bucket allows.
fn sample_drop(ctx: &XdpContext, cfg: &XdpConfig, pkt: &Pkt, reason: XdpReason, now: u64) {
    if cfg.sample_per_sec == 0 {
        return;
    }
    let Some(st) = XDP_SAMPLE.get_ptr_mut(0) else {
        return;
    };
    if take_token(st, now, cfg.sample_per_sec, cfg.sample_per_sec) {
        emit(ctx, pkt, reason, 0, EventKind::XdpDrop);
    }
}

/// Port-scan accounting: distinct destination ports (hashed into 256 bits) per
/// source per window; one event when the threshold is crossed.
fn track_scan(ctx: &XdpContext, cfg: &XdpConfig, pkt: &Pkt, now: u64) -> Result<(), XdpReason> {
    let window = cfg.scan_window_ms as u64 * 1_000_000;
    let st = match SCAN_STATE.get_ptr_mut(&pkt.src) {
        Some(st) => st,
        None => {
            let fresh = ScanState {
                window_start_ns: now,
                ..Default::default()
            };
            SCAN_STATE
                .insert(&pkt.src, &fresh, 0)
                .map_err(|_| XdpReason::Error)?;
            SCAN_STATE.get_ptr_mut(&pkt.src).ok_or(XdpReason::Error)?
        }
    };
    // SAFETY: pointer from a map lookup.
    let st = unsafe { &mut *st };
    if now.saturating_sub(st.window_start_ns) > window {
        *st = ScanState {
            window_start_ns: now,
            ..Default::default()
        };
    }
    let h = (pkt.dport as u32).wrapping_mul(2654435761) >> 24; // 0..=255
    let (word, bit) = ((h / 64) as usize & 3, h % 64);
    if (st.bits[word] >> bit) & 1 == 0 {
        st.bits[word] |= 1 << bit;
        st.distinct += 1;
    }
    if st.reported == 0 && st.distinct >= cfg.scan_ports {
        st.reported = 1;
        count(XdpReason::ScanDetected);
        emit(
            ctx,
            pkt,
            XdpReason::ScanDetected,
            st.distinct,
            EventKind::PortScan,
        );
    }
    Ok(())
}

fn try_rampart_xdp(ctx: &XdpContext) -> Result<(u32, XdpReason), XdpReason> {
    let Some(pkt) = parse(ctx)? else {
        return Ok((xdp_action::XDP_PASS, XdpReason::Passed));
    };
    let (allowed, blocked) = if pkt.family == 4 {
        let k = Key::new(32, v4_of(&pkt.src));
        (ALLOW_V4.get(&k).is_some(), BLOCK_V4.get(&k).is_some())
    } else {
        let k = Key::new(128, pkt.src);
        (ALLOW_V6.get(&k).is_some(), BLOCK_V6.get(&k).is_some())
    };
    if allowed {
        return Ok((xdp_action::XDP_PASS, XdpReason::Allowed));
    }
    let cfg = *XDP_CONFIG.get(0).ok_or(XdpReason::Error)?;
    // The clock only matters to the rate, scan and sampling rules.
    let timed = cfg.rate_pps | cfg.syn_pps | cfg.scan_ports | cfg.sample_per_sec != 0;
    // SAFETY: plain helper call.
    let now = if timed {
        unsafe { bpf_ktime_get_ns() }
    } else {
        0
    };
    let drop = if blocked {
        Some(XdpReason::Blocked)
    } else if cfg.rate_pps > 0
        && !source_allowed(&RATE_STATE, &pkt.src, now, cfg.rate_pps, cfg.rate_burst)?
    {
        Some(XdpReason::RateLimited)
    } else if pkt.syn
        && cfg.syn_pps > 0
        && !source_allowed(&SYN_STATE, &pkt.src, now, cfg.syn_pps, cfg.syn_burst)?
    {
        Some(XdpReason::SynLimited)
    } else if pkt.dport != 0
        && ((pkt.proto == IPPROTO_TCP
            && cfg.port_policy & port_policy::TCP != 0
            && !port_allowed(&PORTS_TCP, pkt.dport))
            || (pkt.proto == IPPROTO_UDP
                && cfg.port_policy & port_policy::UDP != 0
                && !port_allowed(&PORTS_UDP, pkt.dport)))
    {
        Some(XdpReason::PortDenied)
    } else {
        None
    };
    if drop.is_some() && cfg.monitor != 0 {
        return Ok((xdp_action::XDP_PASS, XdpReason::Monitored));
    }
    if let Some(reason) = drop {
        sample_drop(ctx, &cfg, &pkt, reason, now);
        return Ok((xdp_action::XDP_DROP, reason));
    }
    if cfg.scan_ports > 0 && pkt.dport != 0 && (pkt.syn || pkt.proto == IPPROTO_UDP) {
        // A tracking failure must not drop the packet.
        if track_scan(ctx, &cfg, &pkt, now).is_err() {
            count(XdpReason::Error);
        }
    }
    Ok((xdp_action::XDP_PASS, XdpReason::Passed))
}
