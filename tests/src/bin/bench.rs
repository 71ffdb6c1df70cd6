// SPDX-License-Identifier: GPL-2.0-only
//! `rampart-bench`: measurements for bench/results.json (run by `cargo xtask bench`).
//!
//! Each metric is measured side by side with its baseline in the same run; ratios,
//! not absolute numbers, are what compare across these noisy machines.

use std::{collections::BTreeMap, path::PathBuf, time::Instant};

use agent::{config::Config, loader};
use agent_common::maps;
use anyhow::{Context, Result};
use aya::maps::{lpm_trie::Key, LpmTrie, MapData};
use integration_test::packet;
use serde_json::json;

const REPEAT: u32 = 2_000_000;

fn metric(value: f64, unit: &str, baseline: &str) -> serde_json::Value {
    json!({ "value": value, "unit": unit, "baseline": baseline, "command": "cargo xtask bench" })
}

/// Median over `rounds` BPF_PROG_TEST_RUN calls of `REPEAT` runs each.
fn ns_per_packet(fd: std::os::fd::RawFd, pkt: &[u8], rounds: usize) -> Result<f64> {
    let mut v = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        v.push(
            loader::test_run(fd, pkt, REPEAT)
                .context("BPF_PROG_TEST_RUN")?
                .duration_ns as f64,
        );
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Ok(v[v.len() / 2])
}

fn main() -> Result<()> {
    let out = std::env::args()
        .skip_while(|a| a != "--out")
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("bench/results.json"));
    let mut results = BTreeMap::new();

    // XDP cost per packet with 1 entry vs 1M entries in the v4 trie: an LPM lookup
    // should grow with prefix depth, not with the number of entries.
    let mut cfg = Config::embedded()?;
    cfg.firewall.max_entries_v4 = 1_100_000;
    let mut ebpf = loader::load(&cfg)?;
    let fd = loader::load_xdp(&mut ebpf)?;
    let mut v4: LpmTrie<MapData, [u8; 4], u32> =
        LpmTrie::try_from(ebpf.take_map(maps::BLOCK_V4).context("v4 map")?)?;
    v4.insert(&Key::new(32, [203, 0, 113, 7]), 1, 0)?;
    let pkt = packet::ipv4([198, 51, 100, 9], &[]); // not blocked: full lookup, then pass
    let one = ns_per_packet(fd, &pkt, 5)?;
    eprintln!("xdp: {one:.1} ns/packet with 1 entry");
    let started = Instant::now();
    let mut n = 1u32;
    // 1M distinct /32s spread over 10.0.0.0/8-style space, excluding the test source.
    for i in 0..1_000_000u32 {
        let a = (0x0B00_0000u32 + i * 7).to_be_bytes();
        v4.insert(&Key::new(32, a), 1, 0)?;
        n += 1;
    }
    let load_s = started.elapsed().as_secs_f64();
    let million = ns_per_packet(fd, &pkt, 5)?;
    eprintln!("xdp: {million:.1} ns/packet with {n} entries (loaded in {load_s:.2}s, one syscall per entry)");
    results.insert(
        "xdp_ns_per_pkt_1",
        metric(one, "ns/packet", "BPF_PROG_TEST_RUN, 1 block entry"),
    );
    results.insert(
        "xdp_ns_per_pkt_1m",
        metric(
            million,
            "ns/packet",
            "BPF_PROG_TEST_RUN, 1,000,001 block entries",
        ),
    );
    results.insert(
        "xdp_growth_1m_vs_1",
        metric(
            million / one,
            "ratio",
            "ns/packet at 1M entries ÷ at 1 entry, same run (target ≤ 1.2)",
        ),
    );
    results.insert(
        "map_insert_entries_per_s",
        metric(
            f64::from(n - 1) / load_s,
            "entries/s",
            "direct per-entry map updates (no batching, no store)",
        ),
    );

    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&results)? + "\n")?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
