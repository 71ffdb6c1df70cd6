// SPDX-License-Identifier: GPL-2.0-only
//! The egress sensor end to end, scoped to a test cgroup: direct SMTP connects by a
//! user outside `egress.safe_users` are findings; in dry run they still connect, when
//! enforcing they fail with EPERM; processes outside the cgroup are untouched.

use std::{net::SocketAddr, path::Path, process::Command, time::Duration};

use integration_test::{harness::Harness, wait_for, Listener};

/// Connect to `addr` from namespace `ns` as `uid`, inside `cgroup` when given.
/// Ok(()) when connected, Err(stderr) otherwise.
fn connect_as(ns: &str, cgroup: Option<&Path>, uid: u32, addr: SocketAddr) -> Result<(), String> {
    let join = cgroup
        .map(|c| format!("echo $$ > {}/cgroup.procs && ", c.display()))
        .unwrap_or_default();
    let script = format!(
        "{join}exec setpriv --reuid={uid} --regid={uid} --clear-groups timeout 5 bash -c 'exec 3<>/dev/tcp/{}/{}'",
        addr.ip(),
        addr.port()
    );
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .args(["--", "sh", "-c", &script])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn smtp_findings(h: &Harness) -> Vec<serde_json::Value> {
    let (_, f) = h.get("/api/v1/findings", &h.read.clone());
    f.as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["check"] == "smtp_egress")
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn smtp_egress_dry_run_then_enforced_only_in_scope() {
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let Some(cg) = integration_test::cgroup_or_skip() else {
        return;
    };
    let smtp: SocketAddr = format!("{}:25", net.ip_b).parse().expect("addr");
    let _mta = Listener::start(&net.ns_b, smtp);
    let egress = format!(
        "exec:\n  enabled: false\negress:\n  enabled: true\n  cgroup: {}\n  enforce: true\n  dry_run: true\n",
        cg.0.display()
    );
    let mut h = Harness::start_with(net, "", &egress);
    let ns = h.net.ns_a.clone();
    let nobody = 65534;

    // Dry run: the connect goes through, the finding says what enforcement would do.
    connect_as(&ns, Some(&cg.0), nobody, smtp).expect("dry run must not deny");
    assert!(
        wait_for(Duration::from_secs(10), || smtp_findings(&h)
            .iter()
            .any(|f| f["uid"] == nobody)),
        "no smtp_egress finding; log:\n{}",
        h.log()
    );
    let f = smtp_findings(&h)
        .into_iter()
        .find(|f| f["uid"] == nobody)
        .expect("finding");
    assert_eq!(f["ip"], "198.51.100.2", "{f}");
    assert!(
        f["details"].as_str().is_some_and(|d| d.contains("dry_run")),
        "{f}"
    );
    assert_eq!(f["severity_label"], "high");

    // root is a safe user: no finding.
    connect_as(&ns, Some(&cg.0), 0, smtp).expect("root connects");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        smtp_findings(&h).iter().all(|f| f["uid"] != 0),
        "safe user reported"
    );

    // Enforce for real: the same connect now fails with EPERM, and is reported.
    let cfg = std::fs::read_to_string(&h.config).expect("config");
    std::fs::write(&h.config, cfg.replace("dry_run: true", "dry_run: false")).expect("config");
    h.stop();
    h.restart();
    let before = smtp_findings(&h).len();
    let err = connect_as(&ns, Some(&cg.0), nobody, smtp).expect_err("enforcement must deny");
    assert!(err.contains("Operation not permitted"), "{err}");
    assert!(
        wait_for(Duration::from_secs(10), || smtp_findings(&h).iter().any(
            |f| f["details"].as_str().is_some_and(|d| d.contains("denied"))
        )),
        "no denied finding"
    );
    // Outside the cgroup nothing is checked.
    connect_as(&ns, None, nobody, smtp).expect("outside the scope nothing is denied");
    let (_, metrics) = h.get("/metrics", &h.admin.clone());
    let denied: u64 = metrics
        .as_str()
        .expect("metrics")
        .lines()
        .find_map(|l| l.strip_prefix("rampart_egress_connects_total{outcome=\"denied\"} "))
        .and_then(|v| v.trim().parse().ok())
        .expect("denied counter");
    assert_eq!(denied, 1, "exactly the one enforced connect");
    assert_eq!(
        smtp_findings(&h).len(),
        before + 1,
        "one finding per violation"
    );
    h.stop();
}
