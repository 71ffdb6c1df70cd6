// SPDX-License-Identifier: GPL-2.0-only
//! Project automation: `cargo xtask <command>`.

mod bench;
mod bootstrap;
mod docs;
mod layout;
mod lint;
mod package;
mod util;
mod vmtest;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what building the kernel programs and running the tests needs.
    Bootstrap,
    /// Build everything and run the agent in the foreground with the embedded default config.
    Run {
        /// State directory (SQLite, TLS, token digest).
        #[arg(long, default_value = ".rampart")]
        state_dir: String,
    },
    /// rustfmt and clippy (workspace and kernel crate), and the agent's layout rules.
    Lint,
    /// Unit tests, then the privileged end-to-end tests (root; kernel tests must not skip in CI).
    Test,
    /// The .deb and .rpm (release build) into target/packages.
    Package,
    /// Benchmarks; writes bench/results.json and the README performance table.
    Bench,
    /// Regenerate generated docs (API route table, README performance table).
    Docs,
    /// The kernel-facing tests inside Debian's 6.1 and 6.12 kernels under QEMU (root).
    Vmtest {
        /// 6.1, 6.12 or all.
        #[arg(long, default_value = "all")]
        kernel: String,
        /// Test filters for the guest (default: the kernel-facing set).
        filters: Vec<String>,
        /// Instead of tests: the file sensor on BPF-LSM against the tracepoints,
        /// benchmarked in the 6.12 guest and merged into bench/results.json.
        #[arg(long)]
        bench: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Command::Bootstrap => bootstrap::run(),
        Command::Run { state_dir } => run(&state_dir),
        Command::Lint => lint::run(),
        Command::Test => test(),
        Command::Bench => bench::run(),
        Command::Package => package::run(),
        Command::Docs => docs::run(),
        Command::Vmtest { bench: true, .. } => {
            util::root().and_then(|r| vmtest::bench(&r.join("bench/results.json")))
        }
        Command::Vmtest {
            kernel, filters, ..
        } => vmtest::run(&kernel, &filters),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(state_dir: &str) -> anyhow::Result<()> {
    bootstrap::run()?;
    util::cargo(&["build", "--package", "agent", "--bin", "rampart"])?;
    let bin = util::root()?.join("target/debug/rampart");
    util::exec_root(&bin, &["run", "--default-config", "--state-dir", state_dir])
}

fn test() -> anyhow::Result<()> {
    bootstrap::run()?;
    util::step("unit tests (cargo test --workspace)");
    util::cargo(&["test", "--workspace", "--exclude", "integration-test"])?;
    util::step("privileged end-to-end tests (tests/, as root)");
    // The end-to-end tests run the real binary; `cargo test` alone does not build it.
    // The package test installs, upgrades and purges two revisions of its packages.
    let packages = util::root()?.join("target/packages-test");
    package::build("dev", &[1, 2], &packages)?;
    bootstrap::mounts()?;
    bootstrap::test_tools()?;
    let corpus = bootstrap::fp_corpus()?;
    let schemathesis = bootstrap::schemathesis()?;
    // Read by tests/tests/signatures_fp.rs, package_e2e.rs and openapi_e2e.rs (sudo -E
    // keeps them).
    util::cargo_root_env(
        &[
            "test",
            "--package",
            "integration-test",
            "--",
            "--test-threads=1",
        ],
        &[
            ("RAMPART_FP_CORPUS", corpus.as_os_str()),
            ("RAMPART_PACKAGES", packages.as_os_str()),
            ("RAMPART_SCHEMATHESIS", schemathesis.as_os_str()),
        ],
    )
}
