// SPDX-License-Identifier: GPL-2.0-only
//! `cargo xtask bench`: run the benchmark binary (root), then its BPF-LSM phase in
//! the 6.12 guest, and regenerate the README table.

use anyhow::Result;

use crate::{bootstrap, docs, util, vmtest};

pub fn run() -> Result<()> {
    bootstrap::run()?;
    bootstrap::bench_tools()?;
    bootstrap::mounts()?;
    util::step("benchmarks (release build, as root)");
    // The bulk-load benchmark runs the real CLI.
    util::cargo(&[
        "build",
        "--release",
        "--package",
        "agent",
        "--bin",
        "rampart",
    ])?;
    let out = util::root()?.join("bench/results.json");
    // The scan benchmark reads the false-positive corpus.
    let corpus = bootstrap::fp_corpus()?;
    util::cargo_root_env(
        &[
            "run",
            "--release",
            "--package",
            "integration-test",
            "--bin",
            "rampart-bench",
            "--",
            "--out",
            &out.to_string_lossy(),
        ],
        &[("RAMPART_FP_CORPUS", corpus.as_os_str())],
    )?;
    // BPF-LSM against the tracepoints, where LSM programs run: in the 6.12 guest.
    vmtest::bench(&out)?;
    docs::perf_table()
}
