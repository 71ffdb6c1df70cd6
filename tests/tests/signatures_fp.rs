// SPDX-License-Identifier: GPL-2.0-only
//! False positives of the builtin signatures over clean PHP: Debian's WordPress,
//! PHPMailer, phpseclib, getID3, Twig, phpMyAdmin, Roundcube, MediaWiki, Symfony
//! Console, Guzzle, Doctrine Annotations and Monolog (unpacked by `cargo xtask test`
//! into target/fp-corpus, named by RAMPART_FP_CORPUS). Zero matches allowed.

use std::process::Command;

use integration_test::rampart_bin;

/// The unpacked corpus (see the module doc).
fn corpus() -> String {
    std::env::var("RAMPART_FP_CORPUS")
        .expect("RAMPART_FP_CORPUS unset: run through `cargo xtask test`, which unpacks the corpus")
}

/// `rampart scan` with the builtin rules only, plus `extra` arguments.
fn scan(extra: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(rampart_bin())
        .args(["scan", "--default-config", "--rules-dir", "/nonexistent"])
        .args(extra)
        .output()
        .expect("run rampart scan")
}

#[test]
fn builtin_rules_do_not_fire_on_clean_php() {
    let corpus = corpus();
    for part in [
        "wordpress/wp-includes",
        "phpmyadmin/libraries",
        "mediawiki/includes",
    ] {
        let dir = std::path::Path::new(&corpus).join("usr/share").join(part);
        assert!(dir.is_dir(), "corpus incomplete: {} missing", dir.display());
    }
    let out = scan(&["--workers".as_ref(), "2".as_ref(), corpus.as_ref()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "false positives:\n{stdout}\n{stderr}"
    );
    assert!(stdout.is_empty(), "{stdout}");
    // It really scanned the corpus (about 30,000 files), not an empty tree.
    let files: u64 = stderr
        .split_whitespace()
        .skip_while(|w| *w != "scanned")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(files > 25_000, "{stderr}");
}

/// The same scanner on the same tree finds a planted webshell: the zero above is not
/// a scanner that sees nothing.
#[test]
fn a_planted_webshell_in_the_corpus_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = std::path::Path::new(&corpus()).join("usr/share/wordpress/wp-includes/version.php");
    let mut body = std::fs::read(&src).expect("read version.php");
    body.extend_from_slice(b"\n<?php @eval(base64_decode($_POST['z'])); ?>\n");
    std::fs::write(dir.path().join("version.php"), body).expect("write");
    let out = scan(&["--json".as_ref(), dir.path().as_os_str()]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let rules: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("one JSON object a line");
            v["match"]["rule"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert!(rules.contains(&"php_eval_decoded".to_string()), "{rules:?}");
}
