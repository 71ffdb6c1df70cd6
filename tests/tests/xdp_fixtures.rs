// SPDX-License-Identifier: GPL-2.0-only
//! XDP verdicts on crafted packets through BPF_PROG_TEST_RUN (no interface involved),
//! and the check that the object defines every map agent-common names.

use agent::{config::Config, loader};
use agent_common::{maps, xdp::XdpReason};
use aya::maps::{lpm_trie::Key, LpmTrie, MapData, PerCpuArray};
use integration_test::{feature_available, is_root, packet};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

fn stats(arr: &PerCpuArray<MapData, u64>, r: XdpReason) -> u64 {
    arr.get(&(r as u32), 0).expect("stats").iter().sum()
}

#[test]
fn object_defines_every_named_map() {
    if !feature_available("BPF (root)", is_root()) {
        return;
    }
    let ebpf = loader::load(&Config::embedded().expect("config")).expect("load object");
    for name in maps::ALL {
        assert!(
            ebpf.map(name).is_some(),
            "map {name} missing from the kernel object"
        );
    }
    for prog in [
        maps::progs::XDP_FIREWALL,
        maps::progs::SYS_ENTER_OPENAT,
        maps::progs::SYS_EXIT_OPENAT,
        maps::progs::SYS_ENTER_CLOSE,
    ] {
        assert!(
            ebpf.program(prog).is_some(),
            "program {prog} missing from the kernel object"
        );
    }
}

#[test]
fn xdp_verdicts_on_crafted_packets() {
    if !feature_available("BPF (root)", is_root()) {
        return;
    }
    let mut cfg = Config::embedded().expect("config");
    cfg.firewall.max_entries_v4 = 1024;
    cfg.firewall.max_entries_v6 = 1024;
    let mut ebpf = loader::load(&cfg).expect("load object");
    let fd = loader::load_xdp(&mut ebpf).expect("verifier accepts the XDP program");
    let mut v4: LpmTrie<MapData, [u8; 4], u32> =
        LpmTrie::try_from(ebpf.take_map(maps::BLOCK_V4).expect("v4 map")).expect("v4 trie");
    let mut v6: LpmTrie<MapData, [u8; 16], u32> =
        LpmTrie::try_from(ebpf.take_map(maps::BLOCK_V6).expect("v6 map")).expect("v6 trie");
    let counters: PerCpuArray<MapData, u64> =
        PerCpuArray::try_from(ebpf.take_map(maps::XDP_STATS_TOTAL).expect("stats map"))
            .expect("stats");

    v4.insert(&Key::new(24, [198, 51, 100, 0]), 1, 0)
        .expect("insert /24");
    v4.insert(&Key::new(32, [203, 0, 113, 7]), 1, 0)
        .expect("insert /32");
    let net6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    v6.insert(&Key::new(32, net6), 1, 0).expect("insert v6 /32");

    let mut v6_in = net6;
    v6_in[15] = 5;
    let mut v6_out = net6;
    v6_out[3] = 0xb9;
    let mut fragment = packet::ipv4([198, 51, 100, 9], &[]);
    // Non-first fragment (offset 185, MF set): the source address is still there.
    fragment[20] = 0x20;
    fragment[21] = 0xb9;
    let truncated_v4 = packet::ipv4([198, 51, 100, 9], &[])[..24].to_vec();
    let truncated_v6 = packet::ipv6(v6_in)[..30].to_vec();
    let truncated_vlan = packet::ipv4([198, 51, 100, 9], &[7])[..16].to_vec();

    let cases: Vec<(&str, Vec<u8>, u32, XdpReason)> = vec![
        (
            "v4 in blocked /24",
            packet::ipv4([198, 51, 100, 9], &[]),
            XDP_DROP,
            XdpReason::Blocked,
        ),
        (
            "v4 blocked /32",
            packet::ipv4([203, 0, 113, 7], &[]),
            XDP_DROP,
            XdpReason::Blocked,
        ),
        (
            "v4 next to blocked /32",
            packet::ipv4([203, 0, 113, 8], &[]),
            XDP_PASS,
            XdpReason::Passed,
        ),
        (
            "v4 outside /24",
            packet::ipv4([198, 51, 101, 9], &[]),
            XDP_PASS,
            XdpReason::Passed,
        ),
        (
            "802.1Q-tagged blocked",
            packet::ipv4([198, 51, 100, 9], &[7]),
            XDP_DROP,
            XdpReason::Blocked,
        ),
        (
            "QinQ-tagged blocked",
            packet::ipv4([198, 51, 100, 9], &[7, 8]),
            XDP_DROP,
            XdpReason::Blocked,
        ),
        (
            "non-first fragment from blocked",
            fragment,
            XDP_DROP,
            XdpReason::Blocked,
        ),
        (
            "v6 in blocked /32",
            packet::ipv6(v6_in),
            XDP_DROP,
            XdpReason::Blocked,
        ),
        (
            "v6 outside",
            packet::ipv6(v6_out),
            XDP_PASS,
            XdpReason::Passed,
        ),
        ("ARP", packet::arp(), XDP_PASS, XdpReason::Passed),
        (
            "truncated v4 header",
            truncated_v4,
            XDP_PASS,
            XdpReason::Malformed,
        ),
        (
            "truncated v6 header",
            truncated_v6,
            XDP_PASS,
            XdpReason::Malformed,
        ),
        (
            "truncated VLAN tag",
            truncated_vlan,
            XDP_PASS,
            XdpReason::Malformed,
        ),
    ];
    for (name, pkt, want, reason) in cases {
        let before = stats(&counters, reason);
        let run = loader::test_run(fd, &pkt, 1).expect("BPF_PROG_TEST_RUN");
        assert_eq!(run.retval, want, "{name}: verdict");
        assert_eq!(
            stats(&counters, reason),
            before + 1,
            "{name}: counter {reason:?}"
        );
    }
    // Unblocking takes effect at once.
    v4.remove(&Key::new(24, [198, 51, 100, 0])).expect("remove");
    let run = loader::test_run(fd, &packet::ipv4([198, 51, 100, 9], &[]), 1).expect("run");
    assert_eq!(run.retval, XDP_PASS, "unblocked /24 must pass");
}
