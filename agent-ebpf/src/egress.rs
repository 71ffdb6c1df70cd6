// SPDX-License-Identifier: GPL-2.0-only
//! Egress sensor: cgroup connect4/connect6 programs. A connect to a policy port (SMTP)
//! by a UID outside `RAMPART_SAFE_UIDS` is reported, and denied only in enforce mode.
//!
//! Error policy: on our own errors the connect is allowed (fail open) and counted.

use agent_common::{
    egress::{mode, ConnectEvent, Decision, EgressConfig, EgressStat, MAX_EGRESS_PORTS},
    EventHeader, EventKind, EVENT_VERSION,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_ns,
    },
    macros::{cgroup_sock_addr, map},
    maps::{Array, HashMap, PerCpuArray},
    programs::SockAddrContext,
};

use crate::file::EVENTS;

/// Policy, written by the agent.
#[map(name = "RAMPART_EGRESS_CONFIG")]
static EGRESS_CONFIG: Array<EgressConfig> = Array::with_max_entries(1, 0);
/// UIDs allowed to connect to policy ports.
#[map(name = "RAMPART_SAFE_UIDS")]
static SAFE_UIDS: HashMap<u32, u32> = HashMap::with_max_entries(256, 0);
/// Counters indexed by `EgressStat`.
#[map(name = "RAMPART_EGRESS_STATS_TOTAL")]
static EGRESS_STATS_TOTAL: PerCpuArray<u64> = PerCpuArray::with_max_entries(EgressStat::COUNT, 0);

const ALLOW: i32 = 1;
const DENY: i32 = 0;

#[inline(always)]
fn bump(s: EgressStat) {
    if let Some(c) = EGRESS_STATS_TOTAL.get_ptr_mut(s as u32) {
        // SAFETY: per-CPU slot.
        unsafe { *c += 1 };
    }
}

// Context fields are read once, first, with volatile loads at constant offsets from the
// unmodified context pointer: the verifier refuses loads through a derived pointer
// ("dereference of modified ctx ptr"), and v4 programs may not read user_ip6.

#[cgroup_sock_addr(connect4)]
pub fn rampart_connect4(ctx: SockAddrContext) -> i32 {
    let sa = ctx.sock_addr;
    // SAFETY: `sa` is the kernel's bpf_sock_addr for this call.
    let (port, ip4) = unsafe {
        (
            core::ptr::read_volatile(core::ptr::addr_of!((*sa).user_port)),
            core::ptr::read_volatile(core::ptr::addr_of!((*sa).user_ip4)),
        )
    };
    let mut daddr = [0u8; 16];
    daddr[..4].copy_from_slice(&ip4.to_ne_bytes());
    verdict(try_connect(4, port, daddr))
}

#[cgroup_sock_addr(connect6)]
pub fn rampart_connect6(ctx: SockAddrContext) -> i32 {
    let sa = ctx.sock_addr;
    // SAFETY: as above; user_ip6 is read as four separate 4-byte loads.
    let (port, w) = unsafe {
        (
            core::ptr::read_volatile(core::ptr::addr_of!((*sa).user_port)),
            [
                core::ptr::read_volatile(core::ptr::addr_of!((*sa).user_ip6[0])),
                core::ptr::read_volatile(core::ptr::addr_of!((*sa).user_ip6[1])),
                core::ptr::read_volatile(core::ptr::addr_of!((*sa).user_ip6[2])),
                core::ptr::read_volatile(core::ptr::addr_of!((*sa).user_ip6[3])),
            ],
        )
    };
    let mut daddr = [0u8; 16];
    for (i, word) in w.iter().enumerate() {
        daddr[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
    }
    verdict(try_connect(6, port, daddr))
}

/// The program's return value as constants (the verifier needs 0 or 1). Our own
/// errors allow the connect.
#[inline(always)]
fn verdict(r: Result<bool, ()>) -> i32 {
    match r {
        Ok(false) => DENY,
        _ => ALLOW,
    }
}

/// Whether to allow the connect. `user_port` holds the port in network byte order in
/// its low 16 bits.
fn try_connect(family: u16, user_port: u32, daddr: [u8; 16]) -> Result<bool, ()> {
    let cfg = EGRESS_CONFIG.get(0).ok_or(())?;
    if cfg.mode == mode::OFF {
        return Ok(true);
    }
    bump(EgressStat::Checked);
    let dport = u16::from_be(user_port as u16);
    let mut covered = false;
    for i in 0..MAX_EGRESS_PORTS {
        if (i as u32) < cfg.nports && cfg.ports[i] == dport {
            covered = true;
        }
    }
    let uid = bpf_get_current_uid_gid() as u32;
    // SAFETY: lookup of a plain u32 value.
    let safe = unsafe { SAFE_UIDS.get(&uid) }.is_some();
    let decision = if covered && !safe {
        bump(EgressStat::Violations);
        match cfg.mode {
            mode::ENFORCE => Decision::Denied,
            mode::DRY_RUN => Decision::DryRun,
            _ => Decision::Observed,
        }
    } else if cfg.all_connects != 0 {
        Decision::Allowed
    } else {
        return Ok(true);
    };
    emit(family, dport, decision, uid, daddr);
    if decision == Decision::Denied {
        bump(EgressStat::Denied);
        return Ok(false);
    }
    Ok(true)
}

fn emit(family: u16, dport: u16, decision: Decision, uid: u32, daddr: [u8; 16]) {
    let Some(mut entry) = EVENTS.reserve::<ConnectEvent>(0) else {
        bump(EgressStat::RingbufFull);
        return;
    };
    let ev = entry.as_mut_ptr();
    let id = bpf_get_current_pid_tgid();
    let gid = (bpf_get_current_uid_gid() >> 32) as u32;
    // SAFETY: reserved ring buffer memory of size_of::<ConnectEvent>().
    unsafe {
        (*ev).header = EventHeader {
            kind: EventKind::Connect as u16,
            version: EVENT_VERSION,
            _pad: 0,
            len: core::mem::size_of::<ConnectEvent>() as u32,
            ktime_ns: bpf_ktime_get_ns(),
        };
        (*ev).pid = id as u32;
        (*ev).tgid = (id >> 32) as u32;
        (*ev).uid = uid;
        (*ev).gid = gid;
        (*ev).comm = bpf_get_current_comm().unwrap_or([0u8; 16]);
        (*ev).family = family;
        (*ev).dport = dport;
        (*ev).decision = decision as u32;
        (*ev).daddr = daddr;
    }
    entry.submit(0);
}
