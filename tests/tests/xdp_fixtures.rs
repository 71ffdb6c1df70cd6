// SPDX-License-Identifier: GPL-2.0-only
//! XDP verdicts on crafted packets through BPF_PROG_TEST_RUN (no interface involved),
//! the check that the object defines every map agent-common names, and map pinning.

use agent::{
    config::{FirewallPolicy, PortSpec, RateLimit},
    sensors::{self as events, Decoded},
};
use agent_common::{maps, xdp::XdpReason, EventKind};
use aya::{
    maps::{lpm_trie::Key, LpmTrie, MapData, PerCpuArray, RingBuf},
    Ebpf,
};
use integration_test::{feature_available, is_root, packet, test_config, PinDir};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

struct Fixture {
    _pins: PinDir,
    _ebpf: Ebpf,
    fd: std::os::fd::RawFd,
    v4: LpmTrie<MapData, [u8; 4], u32>,
    v6: LpmTrie<MapData, [u8; 16], u32>,
    allow4: LpmTrie<MapData, [u8; 4], u32>,
    counters: PerCpuArray<MapData, u64>,
    policy: agent::firewall::xdp::PolicyMaps,
    ring: RingBuf<MapData>,
}

fn fixture() -> Fixture {
    let pins = PinDir::new();
    let cfg = test_config(&pins);
    let mut ebpf = agent::kernel::load(&cfg).expect("load object");
    let fd = agent::firewall::xdp::load_xdp(&mut ebpf).expect("verifier accepts the XDP program");
    let take = |e: &mut Ebpf, n| e.take_map(n).unwrap_or_else(|| panic!("map {n}"));
    let v4 = LpmTrie::try_from(take(&mut ebpf, maps::BLOCK_V4)).expect("v4");
    let v6 = LpmTrie::try_from(take(&mut ebpf, maps::BLOCK_V6)).expect("v6");
    let allow4 = LpmTrie::try_from(take(&mut ebpf, maps::ALLOW_V4)).expect("allow v4");
    let counters = PerCpuArray::try_from(take(&mut ebpf, maps::XDP_STATS_TOTAL)).expect("stats");
    let ring = RingBuf::try_from(take(&mut ebpf, maps::EVENTS)).expect("ring");
    let mut policy = agent::firewall::xdp::PolicyMaps::take(&mut ebpf).expect("policy maps");
    policy.apply(&quiet_policy()).expect("policy");
    Fixture {
        _pins: pins,
        _ebpf: ebpf,
        fd,
        v4,
        v6,
        allow4,
        counters,
        policy,
        ring,
    }
}

/// Everything off: only block/allow decide.
fn quiet_policy() -> FirewallPolicy {
    let mut p = agent::config::Config::embedded()
        .expect("cfg")
        .firewall
        .policy();
    p.port_scan.ports = 0;
    p.drop_samples_per_sec = 0;
    p
}

impl Fixture {
    fn stat(&self, r: XdpReason) -> u64 {
        self.counters
            .get(&(r as u32), 0)
            .expect("stats")
            .iter()
            .sum()
    }
    /// Run `pkt` once; assert the verdict and that exactly `reason` was counted.
    fn expect(&self, name: &str, pkt: &[u8], want: u32, reason: XdpReason) {
        let before: Vec<u64> = XdpReason::ALL.iter().map(|r| self.stat(*r)).collect();
        let run = agent::kernel::sys::test_run(self.fd, pkt, 1).expect("BPF_PROG_TEST_RUN");
        assert_eq!(run.retval, want, "{name}: verdict");
        for (r, b) in XdpReason::ALL.iter().zip(before) {
            let d = self.stat(*r) - b;
            let expected = u64::from(*r == reason);
            assert_eq!(d, expected, "{name}: counter {r:?} moved by {d}");
        }
    }
    fn events(&mut self) -> Vec<agent_common::xdp::XdpEvent> {
        let mut out = Vec::new();
        while let Some(item) = self.ring.next() {
            match events::decode(&item) {
                Ok(Decoded::Xdp(ev)) => out.push(ev),
                Ok(
                    Decoded::File(_)
                    | Decoded::Path(_)
                    | Decoded::Connect(_)
                    | Decoded::Exec(_)
                    | Decoded::WriterExit(_),
                ) => {}
                Err(e) => panic!("undecodable event: {e}"),
            }
        }
        out
    }
}

#[test]
fn object_defines_every_named_map() {
    if !feature_available("BPF (root)", is_root()) {
        return;
    }
    let pins = PinDir::new();
    let ebpf = agent::kernel::load(&test_config(&pins)).expect("load object");
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
        maps::progs::SYS_EXIT_DUP,
        maps::progs::SYSCALL_EXIT,
        maps::progs::SYSCALL_EXIT_RAW,
        maps::progs::CONNECT4,
        maps::progs::CONNECT6,
        maps::progs::SCHED_PROCESS_EXEC,
        maps::progs::LSM_PROBE,
    ] {
        assert!(
            ebpf.program(prog).is_some(),
            "program {prog} missing from the kernel object"
        );
    }
    for name in maps::PINNED {
        assert!(
            pins.0.join(name).exists(),
            "{name} not pinned under {}",
            pins.0.display()
        );
    }
}

#[test]
fn xdp_block_allow_and_parsing() {
    if !feature_available("BPF (root)", is_root()) {
        return;
    }
    let mut f = fixture();
    f.v4.insert(&Key::new(24, [198, 51, 100, 0]), 1, 0)
        .expect("insert /24");
    f.v4.insert(&Key::new(32, [203, 0, 113, 7]), 1, 0)
        .expect("insert /32");
    let net6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    f.v6.insert(&Key::new(32, net6), 1, 0)
        .expect("insert v6 /32");

    let mut v6_in = net6;
    v6_in[15] = 5;
    let mut v6_out = net6;
    v6_out[3] = 0xb9;
    let mut fragment = packet::ipv4([198, 51, 100, 9], &[]);
    // Non-first fragment (offset 185, MF set): the source address is still there.
    fragment[20] = 0x20;
    fragment[21] = 0xb9;
    let mut bad_ihl = packet::ipv4([203, 0, 113, 50], &[]);
    bad_ihl[14] = 0x44; // IHL 4 (16 bytes) is invalid
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
            packet::ipv4([198, 51, 100, 9], &[])[..24].to_vec(),
            XDP_PASS,
            XdpReason::Malformed,
        ),
        (
            "truncated v6 header",
            packet::ipv6(v6_in)[..30].to_vec(),
            XDP_PASS,
            XdpReason::Malformed,
        ),
        (
            "truncated VLAN tag",
            packet::ipv4([198, 51, 100, 9], &[7])[..16].to_vec(),
            XDP_PASS,
            XdpReason::Malformed,
        ),
        ("IPv4 IHL < 5", bad_ihl, XDP_PASS, XdpReason::Malformed),
        (
            "truncated TCP header",
            packet::tcp4([203, 0, 113, 60], 80, 0x02)[..40].to_vec(),
            XDP_PASS,
            XdpReason::Malformed,
        ),
    ];
    for (name, pkt, want, reason) in &cases {
        f.expect(name, pkt, *want, *reason);
    }
    // Allow beats block, for the exact address and for a covering allow.
    f.allow4
        .insert(&Key::new(32, [198, 51, 100, 9]), 1, 0)
        .expect("allow /32");
    f.expect(
        "allowed inside blocked /24",
        &packet::ipv4([198, 51, 100, 9], &[]),
        XDP_PASS,
        XdpReason::Allowed,
    );
    f.expect(
        "neighbour still blocked",
        &packet::ipv4([198, 51, 100, 10], &[]),
        XDP_DROP,
        XdpReason::Blocked,
    );
    // Unblocking takes effect at once.
    f.v4.remove(&Key::new(24, [198, 51, 100, 0]))
        .expect("remove");
    f.expect(
        "unblocked /24",
        &packet::ipv4([198, 51, 100, 10], &[]),
        XDP_PASS,
        XdpReason::Passed,
    );
    assert!(f.events().is_empty(), "no events with sampling off");
}

#[test]
fn xdp_rate_syn_and_port_policy() {
    if !feature_available("BPF (root)", is_root()) {
        return;
    }
    let mut f = fixture();
    let mut p = quiet_policy();
    p.rate_limit = RateLimit { pps: 1, burst: 3 };
    f.policy.apply(&p).expect("policy");
    let src = [203, 0, 113, 20];
    for i in 0..3 {
        f.expect(
            &format!("packet {i} within burst"),
            &packet::ipv4(src, &[]),
            XDP_PASS,
            XdpReason::Passed,
        );
    }
    f.expect(
        "4th packet over the rate",
        &packet::ipv4(src, &[]),
        XDP_DROP,
        XdpReason::RateLimited,
    );
    f.expect(
        "another source has its own bucket",
        &packet::ipv4([203, 0, 113, 21], &[]),
        XDP_PASS,
        XdpReason::Passed,
    );

    let mut p = quiet_policy();
    p.syn_limit = RateLimit { pps: 1, burst: 2 };
    f.policy.apply(&p).expect("policy");
    let src = [203, 0, 113, 30];
    f.expect(
        "SYN 1",
        &packet::tcp4(src, 80, 0x02),
        XDP_PASS,
        XdpReason::Passed,
    );
    f.expect(
        "SYN 2",
        &packet::tcp4(src, 80, 0x02),
        XDP_PASS,
        XdpReason::Passed,
    );
    f.expect(
        "SYN 3 over the SYN rate",
        &packet::tcp4(src, 80, 0x02),
        XDP_DROP,
        XdpReason::SynLimited,
    );
    f.expect(
        "ACK is not metered",
        &packet::tcp4(src, 80, 0x10),
        XDP_PASS,
        XdpReason::Passed,
    );
    f.expect(
        "SYN-ACK is not metered",
        &packet::tcp4(src, 80, 0x12),
        XDP_PASS,
        XdpReason::Passed,
    );

    let mut p = quiet_policy();
    p.tcp_in = vec![
        PortSpec {
            first: 22,
            last: 22,
        },
        PortSpec {
            first: 80,
            last: 81,
        },
    ];
    f.policy.apply(&p).expect("policy");
    let src = [203, 0, 113, 40];
    f.expect(
        "TCP 22 allowed",
        &packet::tcp4(src, 22, 0x02),
        XDP_PASS,
        XdpReason::Passed,
    );
    f.expect(
        "TCP 81 in range",
        &packet::tcp4(src, 81, 0x02),
        XDP_PASS,
        XdpReason::Passed,
    );
    f.expect(
        "TCP 443 denied",
        &packet::tcp4(src, 443, 0x02),
        XDP_DROP,
        XdpReason::PortDenied,
    );
    f.expect(
        "UDP has no policy",
        &packet::udp4(src, 443),
        XDP_PASS,
        XdpReason::Passed,
    );
    f.allow4.insert(&Key::new(32, src), 1, 0).expect("allow");
    f.expect(
        "allowed source skips the port policy",
        &packet::tcp4(src, 443, 0x02),
        XDP_PASS,
        XdpReason::Allowed,
    );
    p.udp_in = vec![PortSpec {
        first: 53,
        last: 53,
    }];
    p.tcp_in.clear();
    f.policy.apply(&p).expect("policy");
    f.expect(
        "UDP 53 allowed",
        &packet::udp4([203, 0, 113, 41], 53),
        XDP_PASS,
        XdpReason::Passed,
    );
    f.expect(
        "UDP 123 denied",
        &packet::udp4([203, 0, 113, 41], 123),
        XDP_DROP,
        XdpReason::PortDenied,
    );
    f.expect(
        "TCP policy now off",
        &packet::tcp4([203, 0, 113, 41], 443, 0x02),
        XDP_PASS,
        XdpReason::Passed,
    );
    assert!(f.events().is_empty());
}

#[test]
fn xdp_scan_and_sampled_drop_events() {
    if !feature_available("BPF (root)", is_root()) {
        return;
    }
    let mut f = fixture();
    let mut p = quiet_policy();
    p.port_scan.ports = 5;
    p.port_scan.window_ms = 60_000;
    p.drop_samples_per_sec = 1;
    f.policy.apply(&p).expect("policy");
    let src = [198, 51, 100, 77];
    // Same port again and again is not a scan.
    for _ in 0..10 {
        f.expect(
            "repeat port",
            &packet::tcp4(src, 443, 0x02),
            XDP_PASS,
            XdpReason::Passed,
        );
    }
    assert!(f.events().is_empty(), "one port is not a scan");
    let mut sent = 1;
    let mut scans = Vec::new();
    for port in 1000u16..1100 {
        let before = f.stat(XdpReason::ScanDetected);
        let run =
            agent::kernel::sys::test_run(f.fd, &packet::tcp4(src, port, 0x02), 1).expect("run");
        assert_eq!(run.retval, XDP_PASS, "scans are observed, never dropped");
        sent += 1;
        if f.stat(XdpReason::ScanDetected) > before {
            scans = f.events();
            break;
        }
    }
    assert_eq!(scans.len(), 1, "one event when the threshold is crossed");
    let ev = scans[0];
    assert_eq!(ev.header.kind, EventKind::PortScan as u16);
    assert_eq!(events::xdp_source(&ev).to_string(), "198.51.100.77");
    assert!(
        ev.distinct_ports >= 5 && sent <= 20,
        "distinct {} after {sent} packets",
        ev.distinct_ports
    );
    // Further ports in the same window: no second event.
    for port in 2000u16..2010 {
        agent::kernel::sys::test_run(f.fd, &packet::tcp4(src, port, 0x02), 1).expect("run");
    }
    assert!(f.events().is_empty(), "one scan event per window");

    // Sampled drops: a bucket of 1/s per CPU lets the first through, not the rest.
    f.v4.insert(&Key::new(32, [203, 0, 113, 99]), 1, 0)
        .expect("block");
    for _ in 0..5 {
        f.expect(
            "blocked",
            &packet::ipv4([203, 0, 113, 99], &[]),
            XDP_DROP,
            XdpReason::Blocked,
        );
    }
    let drops = f.events();
    assert!(
        !drops.is_empty() && drops.len() <= 2,
        "sampling bounds drop events: {}",
        drops.len()
    );
    assert_eq!(drops[0].header.kind, EventKind::XdpDrop as u16);
    assert_eq!(drops[0].reason, XdpReason::Blocked as u32);
    assert_eq!(events::xdp_source(&drops[0]).to_string(), "203.0.113.99");
}

#[test]
fn pinned_lists_survive_reload_and_stale_pins_are_replaced() {
    if !feature_available("BPF (root)", is_root()) {
        return;
    }
    let pins = PinDir::new();
    let cfg = test_config(&pins);
    {
        let mut ebpf = agent::kernel::load(&cfg).expect("load");
        let mut v4: LpmTrie<MapData, [u8; 4], u32> =
            LpmTrie::try_from(ebpf.take_map(maps::BLOCK_V4).expect("map")).expect("trie");
        v4.insert(&Key::new(32, [203, 0, 113, 5]), 1, 0)
            .expect("insert");
    }
    // A second load (an agent restart) sees the same entries.
    let lists = agent::firewall::xdp::open_pinned_lists(&pins.0)
        .expect("open")
        .expect("pinned");
    assert!(lists
        .block_v4
        .get(&Key::new(32, [203, 0, 113, 5]), 0)
        .is_ok());
    drop(lists);
    {
        let mut ebpf = agent::kernel::load(&cfg).expect("reload");
        let v4: LpmTrie<MapData, [u8; 4], u32> =
            LpmTrie::try_from(ebpf.take_map(maps::BLOCK_V4).expect("map")).expect("trie");
        assert!(
            v4.get(&Key::new(32, [203, 0, 113, 5]), 0).is_ok(),
            "entry kept across reload"
        );
    }
    // A capacity change makes the pin stale: it is recreated (empty; the store refills it).
    let mut bigger = cfg.clone();
    bigger.firewall.max_entries_v4 = 2048;
    let mut ebpf = agent::kernel::load(&bigger).expect("reload with new capacity");
    let v4: LpmTrie<MapData, [u8; 4], u32> =
        LpmTrie::try_from(ebpf.take_map(maps::BLOCK_V4).expect("map")).expect("trie");
    assert!(
        v4.get(&Key::new(32, [203, 0, 113, 5]), 0).is_err(),
        "stale pin replaced"
    );
    let info = aya::maps::MapInfo::from_pin(pins.0.join(maps::BLOCK_V4)).expect("info");
    assert_eq!(info.max_entries(), 2048);
}

#[test]
fn bulk_import_uses_batches_and_is_enforced() {
    if !feature_available("BPF (root)", is_root()) {
        return;
    }
    let pins = PinDir::new();
    let mut cfg = test_config(&pins);
    cfg.firewall.max_entries_v4 = 200_000;
    cfg.firewall.max_entries_v6 = 1024;
    let mut ebpf = agent::kernel::load(&cfg).expect("load");
    let fd = agent::firewall::xdp::load_xdp(&mut ebpf).expect("xdp");
    let mut policy = agent::firewall::xdp::PolicyMaps::take(&mut ebpf).expect("policy");
    policy.apply(&quiet_policy()).expect("policy");
    // `ebpf` stays alive: it owns the program `fd` runs.
    let lists = agent::firewall::xdp::open_pinned_lists(&pins.0)
        .expect("open")
        .expect("pinned");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = agent::store::Store::open(&dir.path().join("s.db"), 8).expect("store");
    let fw = agent::firewall::Firewall::new(Some(lists), store, vec![]);
    // 150k host routes (more than two 64k batches) plus v6 and CIDRs.
    let mut text = String::new();
    for i in 0..150_000u32 {
        let a = (0x0A00_0000u32 + i).to_be_bytes();
        text.push_str(&format!("{}.{}.{}.{}\n", a[0], a[1], a[2], a[3]));
    }
    text.push_str("203.0.113.0/24\n2001:db8:1::/48\n2001:db8:2::7\n");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let n = rt
        .block_on(fw.import(agent::store::FwList::Blocks, &text, "bulk", "test", "test"))
        .expect("import");
    assert_eq!(n, 150_003);
    let lists = agent::firewall::xdp::open_pinned_lists(&pins.0)
        .expect("open")
        .expect("pinned");
    assert_eq!(
        lists.block_v4.keys().count(),
        150_001,
        "every v4 entry is in the kernel"
    );
    assert_eq!(lists.block_v6.keys().count(), 2);
    for (name, pkt) in [
        ("first imported", packet::ipv4([10, 0, 0, 0], &[])),
        (
            "last imported",
            packet::ipv4((0x0A00_0000u32 + 149_999).to_be_bytes(), &[]),
        ),
        ("imported /24", packet::ipv4([203, 0, 113, 200], &[])),
        (
            "imported v6 /48",
            packet::ipv6([0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]),
        ),
    ] {
        assert_eq!(
            agent::kernel::sys::test_run(fd, &pkt, 1)
                .expect("run")
                .retval,
            XDP_DROP,
            "{name}"
        );
    }
    let next = packet::ipv4((0x0A00_0000u32 + 150_000).to_be_bytes(), &[]);
    assert_eq!(
        agent::kernel::sys::test_run(fd, &next, 1)
            .expect("run")
            .retval,
        XDP_PASS,
        "one past the list"
    );
}

/// Enforcement off (Cerberus disabled, break-glass): every rule is evaluated, no
/// packet is dropped, no drop event is sent; back on, the same packets drop again.
#[test]
fn xdp_monitor_mode_drops_nothing_and_counts_what_it_would_have() {
    if !feature_available("BPF (root)", is_root()) {
        return;
    }
    let mut f = fixture();
    f.v4.insert(&Key::new(32, [203, 0, 113, 40]), 1, 0)
        .expect("insert /32");
    let mut p = quiet_policy();
    p.rate_limit = RateLimit { pps: 1, burst: 1 };
    p.drop_samples_per_sec = 1000;
    f.policy.monitor = true;
    f.policy.apply(&p).expect("policy");
    let blocked = packet::ipv4([203, 0, 113, 40], &[]);
    f.expect(
        "blocked source, monitored",
        &blocked,
        XDP_PASS,
        XdpReason::Monitored,
    );
    let src = [203, 0, 113, 41];
    f.expect(
        "within burst",
        &packet::ipv4(src, &[]),
        XDP_PASS,
        XdpReason::Passed,
    );
    f.expect(
        "over the rate, monitored",
        &packet::ipv4(src, &[]),
        XDP_PASS,
        XdpReason::Monitored,
    );
    assert!(f.events().is_empty(), "monitor mode sends no drop events");
    f.policy.monitor = false;
    f.policy.apply(&p).expect("policy");
    f.expect("enforcing again", &blocked, XDP_DROP, XdpReason::Blocked);
    assert_eq!(f.events().len(), 1, "the enforced drop is sampled");
}
