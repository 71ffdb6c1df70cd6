// SPDX-License-Identifier: GPL-2.0-only
//! Content checks on written files. This is the walking skeleton's one check; the
//! YAML/YARA-X signature engine replaces it (detection issue).
#![forbid(unsafe_code)]

use std::{io::Read, os::unix::fs::OpenOptionsExt, path::Path};

use api::model::Severity;

use crate::{events::FileActivity, store::NewFinding};

/// PHP calls that run code or commands: the core of most webshells.
const PHP_DANGEROUS_CALLS: &[&str] = &["eval(", "system(", "assert(", "shell_exec(", "passthru("];
const PHP_EXTENSIONS: &[&str] = &[
    "php", "phtml", "php3", "php4", "php5", "php7", "phar", "inc",
];

pub const CHECK_PHP_WEBSHELL: &str = "php_webshell";

/// Why a file was not scanned (counted, never silent).
#[derive(Debug, thiserror::Error)]
pub enum ScanSkip {
    #[error("not a PHP file")]
    NotPhp,
    #[error("cannot open: {0}")]
    Open(std::io::Error),
    #[error("not a regular file")]
    NotRegular,
}

fn is_php(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| PHP_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Case-insensitive (PHP function names are) search for each dangerous call.
pub fn php_calls_in(content: &[u8]) -> Vec<&'static str> {
    let lower = content.to_ascii_lowercase();
    PHP_DANGEROUS_CALLS
        .iter()
        .copied()
        .filter(|needle| lower.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .collect()
}

/// Scan one written file. Reads at most `max_bytes`, never follows a symlink at the
/// final component (a link to /etc/shadow must not be read as root).
pub fn check_file(act: &FileActivity, max_bytes: u64) -> Result<Option<NewFinding>, ScanSkip> {
    if !is_php(&act.path) {
        return Err(ScanSkip::NotPhp);
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&act.path)
        .map_err(ScanSkip::Open)?;
    if !f.metadata().map_err(ScanSkip::Open)?.is_file() {
        return Err(ScanSkip::NotRegular);
    }
    let mut buf = Vec::new();
    f.take(max_bytes)
        .read_to_end(&mut buf)
        .map_err(ScanSkip::Open)?;
    let hits = php_calls_in(&buf);
    if hits.is_empty() {
        return Ok(None);
    }
    let path = act.path.display().to_string();
    Ok(Some(NewFinding {
        check: CHECK_PHP_WEBSHELL.into(),
        severity: Severity::Critical,
        message: format!("PHP file with code-execution calls written: {path}"),
        details: format!(
            "matched: {}; writer: {} (pid {}, uid {})",
            hits.join(", "),
            act.comm,
            act.tgid,
            act.uid
        ),
        path: Some(path),
        pid: Some(act.tgid),
        uid: Some(act.uid),
        process: Some(act.comm.clone()),
        ip: None,
    }))
}

pub const CHECK_SENSITIVE_READ: &str = "sensitive_read";

/// A web-server user read a sensitive file (the kernel matched path and uid).
pub fn sensitive_read(act: &FileActivity) -> NewFinding {
    let path = act.path.display().to_string();
    let exe = act
        .exe
        .as_ref()
        .map(|e| e.display().to_string())
        .unwrap_or_else(|| "unknown".into());
    NewFinding {
        check: CHECK_SENSITIVE_READ.into(),
        severity: Severity::High,
        message: format!("Web-server user {} read {path}", act.uid),
        details: format!("reader: {} (pid {}, exe {exe})", act.comm, act.tgid),
        path: Some(path),
        pid: Some(act.tgid),
        uid: Some(act.uid),
        process: Some(act.comm.clone()),
        ip: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(path: &Path) -> FileActivity {
        FileActivity::new(
            crate::events::FileOp::WriteClose,
            path.to_path_buf(),
            1,
            33,
            "php-fpm".into(),
        )
    }

    #[test]
    fn finds_webshell_calls_case_insensitively() {
        assert_eq!(
            php_calls_in(b"<?php SYSTEM($_GET['c']); ?>"),
            vec!["system("]
        );
        assert_eq!(
            php_calls_in(b"<?php eval(base64_decode($x));"),
            vec!["eval("]
        );
        assert!(php_calls_in(b"<?php echo 'hello'; // evaluation").is_empty());
    }

    #[test]
    fn scans_php_only_and_never_follows_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shell = dir.path().join("x.php");
        std::fs::write(&shell, "<?php system($_GET['cmd']); ?>").expect("write");
        let f = check_file(&act(&shell), 1 << 20)
            .expect("scanned")
            .expect("finding");
        assert_eq!(f.check, CHECK_PHP_WEBSHELL);
        assert_eq!(f.path.as_deref(), Some(shell.to_str().expect("utf8")));
        assert!(f.details.contains("system("));

        let clean = dir.path().join("ok.php");
        std::fs::write(&clean, "<?php echo 1;").expect("write");
        assert!(check_file(&act(&clean), 1 << 20)
            .expect("scanned")
            .is_none());

        let txt = dir.path().join("x.txt");
        std::fs::write(&txt, "system(").expect("write");
        assert!(matches!(
            check_file(&act(&txt), 1 << 20),
            Err(ScanSkip::NotPhp)
        ));

        let link = dir.path().join("link.php");
        std::os::unix::fs::symlink(&shell, &link).expect("symlink");
        assert!(matches!(
            check_file(&act(&link), 1 << 20),
            Err(ScanSkip::Open(_))
        ));
    }

    #[test]
    fn reads_at_most_max_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("big.php");
        let mut content = vec![b' '; 4096];
        content.extend_from_slice(b"system(");
        std::fs::write(&p, &content).expect("write");
        assert!(check_file(&act(&p), 4096).expect("scanned").is_none());
        assert!(check_file(&act(&p), 8192).expect("scanned").is_some());
    }
}
