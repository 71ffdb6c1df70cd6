// SPDX-License-Identifier: GPL-2.0-only
//! `cargo xtask bench`: run the benchmark binary (root) and regenerate the README table.

use anyhow::Result;

use crate::{bootstrap, docs, util};

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
    util::cargo_root(&[
        "run",
        "--release",
        "--package",
        "integration-test",
        "--bin",
        "rampart-bench",
        "--",
        "--out",
        &out.to_string_lossy(),
    ])?;
    docs::perf_table()
}
