// SPDX-License-Identifier: GPL-2.0-only
//! The agent as a systemd service (#13): the notify protocol against a real
//! `NOTIFY_SOCKET`, and the operator's CLI (`rampart token`, `rampart status`)
//! against a running agent.

use std::{os::unix::net::UnixDatagram, time::Duration};

use integration_test::{harness::Harness, net_or_skip, AgentProcess};

/// Messages on the socket until `stop` says enough or `timeout` passes.
fn messages_until(
    sock: &UnixDatagram,
    timeout: Duration,
    mut stop: impl FnMut(&str) -> bool,
) -> Vec<String> {
    let deadline = std::time::Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < deadline {
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        if let Ok(n) = sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = stop(&m);
            got.push(m);
            if done {
                break;
            }
        }
    }
    got
}

#[test]
fn systemd_hears_ready_after_the_api_listens_then_watchdog_pings_then_stopping() {
    let Some(net) = net_or_skip() else { return };
    let mut h = Harness::start(net, "");
    h.stop();
    let sock_path = h.dir.path().join("notify.sock");
    let systemd = UnixDatagram::bind(&sock_path).expect("bind the notify socket");
    let log = h.dir.path().join("agent-notify.log");
    let agent = AgentProcess::start_env(
        Some(&h.net.ns_a),
        &h.config,
        log,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().expect("utf-8 path")),
            // 2 s: fed every second.
            ("WATCHDOG_USEC", "2000000"),
        ],
    );
    let pid = agent.pid().expect("pid").to_string();
    h.agent = Some(agent);

    let start = messages_until(&systemd, Duration::from_secs(90), |m| {
        m.lines().any(|l| l == "READY=1")
    });
    let ready = start
        .last()
        .filter(|m| m.lines().any(|l| l == "READY=1"))
        .unwrap_or_else(|| panic!("no READY=1 in {start:?}; log:\n{}", h.log()));
    // READY comes only once the API answers: asked at once, without a retry.
    let (code, health) = h.get("/api/v1/health", &h.read.clone());
    assert_eq!(code, 200, "READY before the API answered: {health}");
    assert!(ready.contains("STATUS=Protecting"), "{ready}");
    let statuses: Vec<&String> = start
        .iter()
        .filter(|m| m.starts_with("STATUS=Starting"))
        .collect();
    assert!(
        statuses.iter().any(|m| m.contains("firewall")),
        "start-up STATUS lines: {start:?}"
    );

    // The watchdog: WATCHDOG_PID unset means the main process, and it is fed.
    let mut pings = 0;
    let after = messages_until(&systemd, Duration::from_secs(6), |m| {
        pings += usize::from(m == "WATCHDOG=1");
        pings >= 3
    });
    assert!(pings >= 3, "watchdog pings in 6 s: {after:?}");

    // A WATCHDOG_PID naming another process: not ours to feed.
    h.stop();
    let log = h.dir.path().join("agent-notify-2.log");
    h.agent = Some(AgentProcess::start_env(
        Some(&h.net.ns_a),
        &h.config,
        log,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().expect("utf-8 path")),
            ("WATCHDOG_USEC", "2000000"),
            ("WATCHDOG_PID", &pid),
        ],
    ));
    let start = messages_until(&systemd, Duration::from_secs(90), |m| {
        m.lines().any(|l| l == "READY=1")
    });
    assert!(
        start.iter().any(|m| m.contains("READY=1")),
        "no READY the second time: {start:?}"
    );
    let after = messages_until(&systemd, Duration::from_secs(3), |_| false);
    assert!(
        !after.iter().any(|m| m == "WATCHDOG=1"),
        "fed a watchdog meant for pid {pid}: {after:?}"
    );

    // SIGTERM: STOPPING first, then a clean exit.
    h.stop();
    let stopping = messages_until(&systemd, Duration::from_secs(2), |m| {
        m.starts_with("STOPPING=1")
    });
    assert!(
        stopping.iter().any(|m| m.starts_with("STOPPING=1")),
        "no STOPPING=1 at shutdown: {stopping:?}"
    );
}

/// The log without its colour codes.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn minted_tokens_work_and_stop_without_a_restart_and_status_reads_the_running_agent() {
    let Some(net) = net_or_skip() else { return };
    let mut h = Harness::start(net, "");
    let pid = h.agent.as_ref().and_then(|a| a.pid()).expect("pid");

    // Mint a read token: printed once on stdout, only its SHA-256 stored.
    let (code, token, err) =
        h.rampart("token", &["create", "--name", "grafana", "--scope", "read"]);
    assert_eq!(code, 0, "{err}");
    let token = token.trim().to_string();
    assert_eq!(token.len(), 64, "{token:?}");
    let db = std::fs::read(h.state().join("rampart.db")).expect("db");
    let wal = std::fs::read(h.state().join("rampart.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "the raw token is in the store"
        );
    }
    // The running agent takes it up (said in its log: polling with a token it does
    // not know yet would spend the client's login budget), read scope only.
    let in_force = |h: &Harness, names: &str| {
        let line = format!("Minted API tokens in force. tokens={names}");
        integration_test::wait_for(Duration::from_secs(10), || plain(&h.log()).contains(&line))
    };
    assert!(
        in_force(&h, r#"["grafana"]"#),
        "not taken up; log:\n{}",
        h.log()
    );
    assert_eq!(h.get("/api/v1/status", &token).0, 200);
    let (code, _) = h.request("POST", "/api/v1/test-alert", &token, None);
    assert_eq!(code, 401, "a read token wrote");

    // Bad input: clear errors, exit 65, nothing changed.
    for (args, why) in [
        (
            vec!["create", "--name", "grafana", "--scope", "admin"],
            "exists",
        ),
        (
            vec!["create", "--name", "op", "--scope", "admin"],
            "config file",
        ),
        (
            vec!["create", "--name", "local-cli", "--scope", "admin"],
            "agent's own",
        ),
        (
            vec!["create", "--name", "a b", "--scope", "read"],
            "letters",
        ),
        (vec!["revoke", "op"], "config file"),
        (vec!["revoke", "nope"], "no minted token"),
    ] {
        let (code, out, err) = h.rampart("token", &args);
        assert_eq!(code, 65, "{args:?}: {out} {err}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
    let (code, list, err) = h.rampart("token", &["list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let list: serde_json::Value = serde_json::from_str(&list).expect("json");
    let names: Vec<(&str, &str, &str)> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap_or(""),
                t["scope"].as_str().unwrap_or(""),
                t["source"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("op", "admin", "config"),
            ("panel", "read", "config"),
            ("grafana", "read", "minted")
        ]
    );
    assert!(!list.to_string().contains(&token), "list shows the token");

    // A session logged in with it ends with it.
    let (code, cookie) = h.login(&token);
    assert_eq!(code, 200);
    assert_eq!(h.get_with_cookie("/api/v1/status", &cookie), 200);
    let (code, _, err) = h.rampart("token", &["revoke", "grafana"]);
    assert_eq!(code, 0, "{err}");
    let dropped = integration_test::wait_for(Duration::from_secs(10), || {
        plain(&h.log())
            .matches("Minted API tokens in force. tokens=[]")
            .count()
            == 2
    });
    assert!(dropped, "revocation not taken up; log:\n{}", h.log());
    assert_eq!(
        h.get("/api/v1/status", &token).0,
        401,
        "revoked token accepted"
    );
    assert_eq!(
        h.get_with_cookie("/api/v1/status", &cookie),
        401,
        "a session outlived its revoked token"
    );

    // `rampart status` asks the same agent with the local credential.
    let (code, out, err) = h.rampart("status", &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("health: ok"), "{out}");
    assert!(out.contains("sensors:") && out.contains("file"), "{out}");
    let (code, out, err) = h.rampart("status", &["--json"]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report["health"]["status"], "ok");
    assert!(
        report["status"]["uptime_sec"].as_u64().is_some(),
        "{report}"
    );
    assert_eq!(
        h.agent.as_ref().and_then(|a| a.pid()),
        Some(pid),
        "restarted"
    );

    // Stopped: the local credential goes with the agent, and status says so.
    h.stop();
    assert!(!h.state().join("cli-admin.token").exists());
    let (code, _, err) = h.rampart("status", &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no agent is running"), "{err}");
}

/// Run `rampart validate` on a config that makes it warn, in a private mount
/// namespace whose /run/systemd/journal is `journal` (where the test listens as
/// journald would), with stderr going to `stderr`; `journal_stream` is set as systemd
/// sets it when it is Some.
fn validate_logging(
    dir: &std::path::Path,
    journal: &std::path::Path,
    stderr: &std::path::Path,
    journal_stream: bool,
) -> String {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let cfg = dir.join("rampart.yaml");
    std::fs::write(
        &cfg,
        format!(
            "webui:\n  listen: 127.0.0.1:9443\n  tokens:\n    - {{name: op, token: {}, scope: admin}}\n",
            integration_test::token()
        ),
    )
    .expect("config");
    // Group-readable with a token: accepted, with a warning.
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let err = std::fs::File::create(stderr).expect("stderr file");
    let meta = err.metadata().expect("stat stderr");
    let mut c = std::process::Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal \
             && mount --bind \"$1\" /run/systemd/journal && exec \"$2\" validate --config \"$3\"",
        )
        .arg("sh")
        .arg(journal)
        .arg(integration_test::rampart_bin())
        .arg(&cfg)
        .env_remove("RAMPART_LOG_FORMAT")
        .env("RAMPART_LOG", "info")
        .stderr(err);
    if journal_stream {
        c.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
    } else {
        c.env_remove("JOURNAL_STREAM");
    }
    let out = c.output().expect("unshare");
    assert!(
        out.status.success(),
        "validate failed: {}",
        std::fs::read_to_string(stderr).unwrap_or_default()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The fields of one entry in journald's native protocol: `NAME=value\n`, or for a
/// value that may hold newlines `NAME\n`, its length (u64 little-endian), the value
/// and `\n`.
fn journal_fields(mut b: &[u8]) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    while let Some(end) = b.iter().position(|&c| c == b'=' || c == b'\n') {
        let name = String::from_utf8_lossy(&b[..end]).into_owned();
        let rest = &b[end + 1..];
        let (value, next) = if b[end] == b'=' {
            let nl = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            (&rest[..nl], rest.get(nl + 1..))
        } else {
            let len = u64::from_le_bytes(rest[..8].try_into().expect("length")) as usize;
            (&rest[8..8 + len], rest.get(8 + len + 1..))
        };
        out.insert(name, String::from_utf8_lossy(value).into_owned());
        b = next.unwrap_or_default();
    }
    out
}

#[test]
fn logs_go_to_journald_as_structured_fields_when_stderr_is_the_journal() {
    if !integration_test::feature_available("root", integration_test::is_root()) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).expect("mkdir");
    let journald = UnixDatagram::bind(journal.join("socket")).expect("bind the journal socket");
    journald
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let warning = "Config file with API tokens is group-readable";

    let stderr = dir.path().join("stderr-journal");
    let out = validate_logging(dir.path(), &journal, &stderr, true);
    assert!(out.contains("configuration OK"), "{out}");
    let mut buf = vec![0u8; 64 * 1024];
    // The layer probes the socket with an empty datagram first.
    let entry = loop {
        let n = journald.recv(&mut buf).expect("an entry for journald");
        if n > 0 {
            break String::from_utf8_lossy(&buf[..n]).into_owned();
        }
    };
    let fields = journal_fields(entry.as_bytes());
    let get = |k: &str| fields.get(k).map(String::as_str);
    assert_eq!(get("PRIORITY"), Some("4"), "{fields:?}");
    assert_eq!(get("SYSLOG_IDENTIFIER"), Some("rampart"));
    assert_eq!(get("TARGET"), Some("agent::config"));
    assert!(
        get("MESSAGE").is_some_and(|m| m.starts_with(warning)),
        "{fields:?}"
    );
    assert_eq!(get("RAMPART_MODE"), Some("640"));
    assert_eq!(
        get("RAMPART_PATH"),
        Some(dir.path().join("rampart.yaml").to_str().expect("utf-8"))
    );
    let text = std::fs::read_to_string(&stderr).expect("stderr");
    assert!(!text.contains(warning), "also on stderr: {text}");

    // Not started by systemd: the same warning as text on stderr, nothing sent.
    let stderr = dir.path().join("stderr-plain");
    validate_logging(dir.path(), &journal, &stderr, false);
    let text = std::fs::read_to_string(&stderr).expect("stderr");
    assert!(text.contains(warning), "not on stderr: {text}");
    journald
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    assert!(
        journald.recv(&mut buf).is_err(),
        "sent to journald without JOURNAL_STREAM"
    );
}
