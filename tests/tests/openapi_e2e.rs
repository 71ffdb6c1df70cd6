// SPDX-License-Identifier: GPL-2.0-only
//! The agent's own OpenAPI document drives schemathesis (PyPI) against the live
//! agent, with an admin token: generated requests to every route must never get a
//! 5xx, and every answer must conform to the document (errors are `{error, code}`).

use std::process::Command;

use integration_test::harness::Harness;

/// What the fuzzer leaves alone: the two streams (they never end), the restart (the
/// agent would go away under it), and the switch that turns enforcement off.
const EXCLUDED: &str = "^/api/v1/(events|logs/live|settings/restart|security/(disable|config))$";

fn schemathesis() -> Result<String, String> {
    let bin = std::env::var("RAMPART_SCHEMATHESIS")
        .map_err(|_| "RAMPART_SCHEMATHESIS not set (cargo xtask test sets it)".to_string())?;
    match Command::new(&bin).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(bin),
        Ok(o) => Err(format!("{bin} --version: {}", o.status)),
        Err(e) => Err(format!("{bin}: {e}")),
    }
}

#[test]
fn schemathesis_finds_no_server_error_and_no_nonconforming_answer() {
    let bin = match schemathesis() {
        Ok(b) => b,
        Err(why) => {
            assert!(
                integration_test::feature_available("schemathesis", Err(why)),
                "unreachable"
            );
            return;
        }
    };
    let Some(net) = integration_test::net_or_skip() else {
        return;
    };
    let h = Harness::start(net, "");
    let (s, doc) = h.get("/api/v1/openapi.json", &h.read.clone());
    assert_eq!(s, 200, "{doc}");
    assert_eq!(doc["openapi"], "3.1.0");
    let spec = h.dir.path().join("openapi.json");
    std::fs::write(&spec, doc.to_string()).expect("write the document");
    let out = Command::new("ip")
        .args(["netns", "exec", &h.net.ns_a, &bin, "--config-file"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/schemathesis.toml"))
        .arg("run")
        .arg(&spec)
        .args([
            "--url",
            "https://127.0.0.1:9443",
            "--header",
            &format!("Authorization: Bearer {}", h.admin),
            "--tls-verify",
            "false",
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance",
            "--max-examples",
            "20",
            "--generation-deterministic",
            // One connection at a time: the run is the same from one machine to the next.
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--exclude-path-regex",
            EXCLUDED,
            "--no-color",
        ])
        .env("SCHEMATHESIS_HOOKS", "")
        // Its example cache stays with this run, never in the source tree.
        .current_dir(h.dir.path())
        .output()
        .expect("run schemathesis");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        // The listener's own counts first (a transport error names no cause): CI
        // shows the start of this message, and the agent log only in part.
        let (_, m) = h.get("/metrics", &h.admin.clone());
        let listener: Vec<&str> = m
            .as_str()
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("rampart_api_"))
            .collect();
        panic!(
            "schemathesis found failures\nlistener: {listener:#?}\n{text}\nagent log:\n{}",
            h.log()
        );
    }
    // It ran the operations (a document it could not read would run none).
    assert!(text.contains("passed"), "{text}");
}
