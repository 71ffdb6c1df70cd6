// SPDX-License-Identifier: GPL-2.0-only
//! `rampart`: the agent daemon and its CLI.

use std::{path::PathBuf, process::ExitCode};

use agent::{
    config::{self, Config},
    supervisor::notify::Notifier,
};
use anyhow::Context;
use clap::{Parser, Subcommand};

/// Exit status for bad configuration (sysexits EX_USAGE).
const EX_USAGE: u8 = 64;
const ENV_LOG: &str = "RAMPART_LOG";
const ENV_LOG_FORMAT: &str = "RAMPART_LOG_FORMAT";

#[derive(Parser)]
#[command(
    name = "rampart",
    version,
    about = "eBPF-accelerated protection agent for hosting servers"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct ConfigArgs {
    /// Config file (drop-ins from conf.d/ beside it are merged). Default: /etc/rampart/rampart.yaml.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Use the embedded default config instead of a file.
    #[arg(long, conflicts_with = "config")]
    default_config: bool,
    /// Override state_dir.
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the agent in the foreground.
    Run(ConfigArgs),
    /// Check a configuration and exit (non-zero with the key and reason on error).
    Validate(ConfigArgs),
    /// What this kernel and host allow, feature by feature, and what each sensor
    /// would run on and why (programs are loaded, never attached). Exit 0:
    /// everything configured can run; 1: something will run degraded.
    Doctor {
        #[command(flatten)]
        args: ConfigArgs,
        /// The report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// API tokens: mint one (shown once, only its SHA-256 kept), list, revoke. A
    /// running agent follows within a second.
    Token {
        #[command(flatten)]
        args: ConfigArgs,
        #[command(subcommand)]
        cmd: agent::cli::token::TokenCmd,
    },
    /// The running agent's status and health, from its API (run as root: it uses the
    /// local admin credential in state_dir). Exit 0: healthy; 1: degraded; 3: no
    /// agent running.
    Status {
        #[command(flatten)]
        args: ConfigArgs,
        /// Status and health as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the man pages (rampart.1 and one per command) into a directory; the
    /// packages ship them.
    #[command(hide = true)]
    Man {
        #[arg(long)]
        out: PathBuf,
    },
    /// Manage the XDP firewall's block and allow lists.
    Firewall {
        #[command(flatten)]
        args: ConfigArgs,
        #[command(subcommand)]
        cmd: agent::cli::FirewallCmd,
    },
    /// Run historical logs through the parsers and scenarios (dry run: nothing is
    /// blocked) and print what would have been blocked or reported and why. Exit 0:
    /// nothing; 3: something would have been.
    Replay {
        #[command(flatten)]
        args: ConfigArgs,
        /// Log format: sshd, exim, dovecot, ftp, cpanel, access or modsec.
        #[arg(long, default_value = "sshd")]
        source: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the folded view of a PHP file: what the signature rules read besides
    /// the file itself (literals joined and decoded, variables assigned once
    /// replaced, request input spelled $_GET['k']; docs/src/detection.md). Exit 0:
    /// printed; 1: nothing to fold (the rules read the file alone).
    Fold {
        /// The PHP file (at most 4 MiB).
        file: PathBuf,
    },
    /// Scan files or trees with the signatures (the builtin rules and
    /// detection.rules_dir). Exit 0: clean; 3: matches found; 65: rule errors.
    Scan {
        #[command(flatten)]
        args: ConfigArgs,
        /// Rules directory instead of detection.rules_dir.
        #[arg(long)]
        rules_dir: Option<PathBuf>,
        /// Without the builtin rules.
        #[arg(long)]
        no_builtin: bool,
        /// Scanning threads.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// One JSON object per match.
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

fn load_config(args: &ConfigArgs) -> Result<Config, config::ConfigError> {
    let mut cfg = match config_path(args) {
        None => Config::embedded()?,
        Some(path) => Config::load(&path)?,
    };
    if let Some(d) = &args.state_dir {
        cfg.state_dir = d.clone();
    }
    Ok(cfg)
}

/// The config file named (or the default one); None with `--default-config`.
fn config_path(args: &ConfigArgs) -> Option<PathBuf> {
    (!args.default_config).then(|| {
        args.config
            .clone()
            .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH))
    })
}

/// Start this binary again in place (same PID, same arguments), handing it the
/// systemd variables `Notifier::from_env` took out of the environment. Returns only
/// if the exec failed (exit 1: systemd's Restart=on-failure starts us again).
fn reexec(notifier: &Notifier) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let err = std::process::Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .envs(notifier.env_for_reexec().iter().cloned())
        .exec();
    eprintln!("error: restarting {}: {err}", exe.display());
    ExitCode::FAILURE
}

/// Load the config, or the exit status (64) after saying why.
fn config_only(args: &ConfigArgs) -> Result<Config, ExitCode> {
    load_config(args).map_err(|e| {
        eprintln!("invalid configuration: {e}");
        ExitCode::from(EX_USAGE)
    })
}

/// Load the config (exit 64 on error) and build a tokio runtime (exit 1 on error).
fn config_and_runtime(
    args: &ConfigArgs,
    multi_thread: bool,
) -> Result<(Config, tokio::runtime::Runtime), ExitCode> {
    let loaded = load_config(args).map_err(|e| {
        eprintln!("invalid configuration: {e}");
        ExitCode::from(EX_USAGE)
    })?;
    let mut b = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let rt = b.enable_all().build().map_err(|e| {
        eprintln!("starting the runtime: {e}");
        ExitCode::FAILURE
    })?;
    Ok((loaded, rt))
}

/// Where the log goes: journald with structured fields when systemd connected our
/// stderr to the journal (`JOURNAL_STREAM` names it) or `RAMPART_LOG_FORMAT=journald`
/// says so; JSON lines with `RAMPART_LOG_FORMAT=json`; text otherwise. `RAMPART_LOG`
/// filters in every case.
fn init_tracing() {
    use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};
    let filter = EnvFilter::try_from_env(ENV_LOG).unwrap_or_else(|_| EnvFilter::new("info"));
    let format = std::env::var(ENV_LOG_FORMAT).unwrap_or_default();
    // Whatever the output, the same events feed the live-logs WebSocket.
    let base = tracing_subscriber::registry()
        .with(filter)
        .with(agent::web::livelog::LiveLogLayer);
    if format == "journald" || (format.is_empty() && stderr_is_journal()) {
        match tracing_journald::layer() {
            Ok(layer) => {
                // Each event's fields as RAMPART_<NAME>= journal fields
                // (`journalctl RAMPART_IP=192.0.2.7`).
                base.with(
                    layer
                        .with_syslog_identifier("rampart".into())
                        .with_field_prefix(Some("RAMPART".into())),
                )
                .init();
                return;
            }
            Err(e) => eprintln!("journald is not reachable ({e}); logging to stderr"),
        }
    }
    let out = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    if format == "json" {
        base.with(out.json()).init();
    } else {
        base.with(out).init();
    }
}

/// systemd sets `JOURNAL_STREAM=<dev>:<ino>` for a unit whose output goes to the
/// journal; it applies only while stderr is still that stream.
fn stderr_is_journal() -> bool {
    use std::os::{fd::AsFd, unix::fs::MetadataExt};
    let Some((dev, ino)) = std::env::var("JOURNAL_STREAM").ok().and_then(|v| {
        let (d, i) = v.split_once(':')?;
        Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?))
    }) else {
        return false;
    };
    std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata())
        .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// rampart.1, and rampart-<command>[-<subcommand>].1 for each visible command.
fn write_man_pages(dir: &std::path::Path) -> anyhow::Result<usize> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Every visible command at every depth, named as the pages refer to each other.
    fn collect(prefix: &str, cmd: &clap::Command, pages: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
            let name = format!("{prefix}-{}", sub.get_name());
            pages.push((name.clone(), sub.clone().name(name.clone())));
            collect(&name, sub, pages);
        }
    }
    let top = Cli::command();
    let mut pages = vec![("rampart".to_string(), top.clone())];
    collect("rampart", &top, &mut pages);
    for (name, cmd) in &pages {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd.clone())
            .render(&mut page)
            .with_context(|| format!("rendering {name}.1"))?;
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(pages.len())
}

/// The exit status of a CLI command: 65 for rejected input, 1 for a failure.
fn outcome(r: anyhow::Result<agent::cli::Outcome>) -> ExitCode {
    match r {
        Ok(agent::cli::Outcome::Ok) => ExitCode::SUCCESS,
        Ok(agent::cli::Outcome::BadInput(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(agent::cli::EX_DATAERR)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.cmd {
        Cmd::Validate(args) => match load_config(&args) {
            Ok(_) => {
                println!("configuration OK");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("invalid configuration: {e}");
                ExitCode::from(EX_USAGE)
            }
        },
        Cmd::Doctor { args, json } => {
            // A configuration that does not load is reported, and the host is
            // examined for the embedded default instead.
            let (cfg, config_error) = match load_config(&args) {
                Ok(cfg) => (cfg, None),
                Err(e) => match Config::embedded() {
                    Ok(cfg) => (
                        cfg,
                        Some(format!("{e} (examined with the embedded default)")),
                    ),
                    Err(e2) => {
                        eprintln!("invalid configuration: {e}; the embedded default: {e2}");
                        return ExitCode::from(EX_USAGE);
                    }
                },
            };
            let report = agent::cli::doctor::examine(&cfg, config_error);
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(j) => println!("{j}"),
                    Err(e) => {
                        eprintln!("rampart doctor: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", agent::cli::doctor::render(&report));
            }
            if report.degraded {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Cmd::Man { out } => match write_man_pages(&out) {
            Ok(n) => {
                eprintln!("wrote {n} man pages into {}", out.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Cmd::Token { args, cmd } => {
            let (cfg, rt) = match config_and_runtime(&args, false) {
                Ok(v) => v,
                Err(code) => return code,
            };
            outcome(rt.block_on(agent::cli::token::token(&cfg, cmd)))
        }
        Cmd::Status { args, json } => {
            let cfg = match config_only(&args) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match agent::cli::status::ask(&cfg) {
                Ok(agent::cli::status::Found::Running { report, degraded }) => {
                    if json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&report).unwrap_or_default()
                        );
                    } else {
                        print!("{}", agent::cli::status::render(&report));
                    }
                    if degraded {
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Ok(agent::cli::status::Found::NotRunning(why)) => {
                    eprintln!("rampart status: {why}");
                    ExitCode::from(3)
                }
                Err(e) => {
                    eprintln!("rampart status: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Firewall { args, cmd } => {
            let (cfg, rt) = match config_and_runtime(&args, false) {
                Ok(v) => v,
                Err(code) => return code,
            };
            outcome(rt.block_on(agent::cli::firewall(&cfg, cmd)))
        }
        Cmd::Replay {
            args,
            source,
            files,
        } => {
            let cfg = match config_only(&args) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let Some(source) = agent::logs::Source::from_name(&source) else {
                let known: Vec<&str> = agent::logs::Source::ALL.iter().map(|s| s.name()).collect();
                eprintln!("unknown --source {source:?} (known: {})", known.join(", "));
                return ExitCode::from(EX_USAGE);
            };
            match agent::logs::replay(source, &files, &cfg.logs) {
                Ok((replayed, stats)) => {
                    let mut n = 0;
                    for r in &replayed {
                        for t in &r.outputs.triggers {
                            n += 1;
                            println!(
                                "{}  would block {} ({}): {}; users {}; last line: {}",
                                r.at,
                                t.ip,
                                t.check,
                                t.summary,
                                t.users.join(","),
                                t.sample
                            );
                        }
                        for a in &r.outputs.alerts {
                            n += 1;
                            println!(
                                "{}  would report {}: {}; {}",
                                r.at, a.check, a.message, a.details
                            );
                        }
                    }
                    eprintln!(
                        "{}; {n} would-be actions",
                        serde_json::to_string(&stats.view()).unwrap_or_default()
                    );
                    if n == 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(3)
                    }
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Scan {
            args,
            rules_dir,
            no_builtin,
            workers,
            json,
            paths,
        } => {
            let cfg = match config_only(&args) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let dir = rules_dir.or_else(|| {
                (!cfg.detection.rules_dir.as_os_str().is_empty())
                    .then(|| cfg.detection.rules_dir.clone())
            });
            let builtin = cfg.detection.builtin_rules && !no_builtin;
            let cache = cfg.rules_cache_dir();
            match agent::cli::scan(
                dir.as_deref(),
                builtin,
                Some(&cache),
                &paths,
                workers,
                cfg.watch.max_scan_bytes,
                json,
            ) {
                Ok(Ok(s)) => {
                    eprintln!(
                        "scanned {} files ({} skipped), {:.1} MB in {:.2} s ({:.1} MB/s): {} matches",
                        s.files,
                        s.skipped,
                        s.bytes as f64 / 1e6,
                        s.seconds,
                        s.bytes as f64 / 1e6 / s.seconds.max(1e-9),
                        s.matches
                    );
                    if s.matches > 0 {
                        ExitCode::from(3)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Ok(Err(errors)) => {
                    for e in errors.0 {
                        eprintln!("rule error: {e}");
                    }
                    ExitCode::from(agent::cli::EX_DATAERR)
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Fold { file } => {
            let data = match std::fs::read(&file) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("error: reading {}: {e}", file.display());
                    return ExitCode::FAILURE;
                }
            };
            if data.len() > agent::detection::phpfold::MAX_INPUT {
                eprintln!(
                    "{}: larger than the {} bytes the folder reads (the rules read the file alone)",
                    file.display(),
                    agent::detection::phpfold::MAX_INPUT
                );
                return ExitCode::FAILURE;
            }
            match agent::detection::phpfold::fold(&data) {
                Some(view) => {
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(&view).and_then(|()| out.write_all(b"\n"));
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("{}: nothing to fold", file.display());
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Run(args) => {
            // Before the runtime's threads exist: it takes the variables out of the
            // environment.
            let notifier = std::sync::Arc::new(Notifier::from_env());
            let (cfg, rt) = match config_and_runtime(&args, true) {
                Ok(v) => v,
                Err(code) => {
                    notifier.status("Failed: invalid configuration (rampart validate says why)");
                    return code;
                }
            };
            let path = config_path(&args);
            match rt
                .block_on(agent::daemon::run(cfg, path, notifier.clone()))
                .context("rampart run")
            {
                Ok(agent::daemon::Exit::Stopped) => ExitCode::SUCCESS,
                Ok(agent::daemon::Exit::Restart) => {
                    // The runtime's threads end with it, before this image is replaced.
                    drop(rt);
                    reexec(&notifier)
                }
                Err(e) => {
                    notifier.status(&format!("Failed: {e:#}"));
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
