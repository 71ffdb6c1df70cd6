// SPDX-License-Identifier: GPL-2.0-only
//! What slows a hosting account's sites down, seen in the files the scanner reads
//! anyway, and the fixes CSM's `/perf/fix-*` routes apply:
//!
//! - an `error_log` grown past `performance.error_log_max_mb` (it fills the disk and
//!   every PHP error appends to it): truncated;
//! - PHP's `display_errors` on in a `.user.ini` or `php.ini` (errors in pages leak
//!   paths and slow rendering): set to `Off`;
//! - a WordPress `wp-config.php` without `DISABLE_WP_CRON` (WP-Cron runs on page
//!   loads): the constant defined `true`.
//!
//! These files belong to customers, who choose their names and what they link to.
//! A fix acts only on a finding's own path, inside the trees the agent may touch,
//! reached without following a symlink at any component, on a regular file with one
//! link whose name is what the check is about. It writes through the descriptor it
//! opened, so owner, mode and inode stay.

use std::{
    io::{Read, Seek, SeekFrom, Write},
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
};

use nix::{fcntl::OFlag, sys::stat::Mode};

use super::quarantine::{open_dir_nofollow, unsafe_owned, within, QuarantineError};

pub const CHECK_ERROR_LOG: &str = "perf_error_log";
pub const CHECK_DISPLAY_ERRORS: &str = "perf_display_errors";
pub const CHECK_WP_CRON: &str = "perf_wp_cron";

/// Largest config file a fix rewrites.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// `performance` in the config.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    /// An `error_log` over this many bytes is a finding; 0 = never.
    pub error_log_max_bytes: u64,
    pub display_errors: bool,
    pub wp_cron: bool,
}

impl From<&crate::config::Performance> for Limits {
    fn from(c: &crate::config::Performance) -> Self {
        Self {
            error_log_max_bytes: c.error_log_max_mb.saturating_mul(1 << 20),
            display_errors: c.display_errors,
            wp_cron: c.wp_cron,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Issue {
    ErrorLog {
        size: u64,
    },
    /// The 1-based line that turns it on.
    DisplayErrors {
        line: usize,
    },
    WpCron,
}

impl Issue {
    pub fn check(&self) -> &'static str {
        match self {
            Issue::ErrorLog { .. } => CHECK_ERROR_LOG,
            Issue::DisplayErrors { .. } => CHECK_DISPLAY_ERRORS,
            Issue::WpCron => CHECK_WP_CRON,
        }
    }

    pub fn message(&self, path: &Path) -> String {
        let p = path.display();
        match self {
            Issue::ErrorLog { size } => {
                format!("{p} is {} MiB: an error_log that keeps growing", size >> 20)
            }
            Issue::DisplayErrors { line } => {
                format!("display_errors is on in {p} (line {line}): PHP errors show in pages")
            }
            Issue::WpCron => {
                format!("{p} leaves WP-Cron on page loads (DISABLE_WP_CRON is not set)")
            }
        }
    }
}

/// The file names each check is about.
fn names_of(check: &str) -> &'static [&'static str] {
    match check {
        CHECK_ERROR_LOG => &["error_log"],
        CHECK_DISPLAY_ERRORS => &[".user.ini", "php.ini"],
        CHECK_WP_CRON => &["wp-config.php"],
        _ => &[],
    }
}

/// What is wrong with the file at `path` of `size` bytes, whose first bytes are
/// `head` (`whole`: that is all of it).
pub fn inspect(path: &Path, size: u64, head: &[u8], whole: bool, l: &Limits) -> Option<Issue> {
    let name = path.file_name()?.to_str()?;
    if names_of(CHECK_ERROR_LOG).contains(&name) {
        return (l.error_log_max_bytes > 0 && size > l.error_log_max_bytes)
            .then_some(Issue::ErrorLog { size });
    }
    // Every scanned file passes here: the text is made only for the names checked.
    if names_of(CHECK_DISPLAY_ERRORS).contains(&name) && l.display_errors {
        let text = String::from_utf8_lossy(head);
        return display_errors_on(&text).map(|line| Issue::DisplayErrors { line });
    }
    if names_of(CHECK_WP_CRON).contains(&name) && l.wp_cron && whole {
        let text = String::from_utf8_lossy(head);
        return (!wp_cron_disabled(&text) && text.contains("wp-settings.php"))
            .then_some(Issue::WpCron);
    }
    None
}

/// An ini line `display_errors = <value>`: (value, is it on).
fn display_errors_value(line: &str) -> Option<bool> {
    let line = line.trim();
    if line.starts_with(';') || line.starts_with('#') {
        return None;
    }
    let (k, v) = line.split_once('=')?;
    if !k.trim().eq_ignore_ascii_case("display_errors") {
        return None;
    }
    let v = v
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .trim_matches(['"', '\'']);
    Some(matches!(
        v.to_ascii_lowercase().as_str(),
        "on" | "1" | "true" | "yes" | "stdout" | "stderr"
    ))
}

/// The line of the setting in force (the last one), when it is on.
fn display_errors_on(text: &str) -> Option<usize> {
    let mut last = None;
    for (i, line) in text.lines().enumerate() {
        if let Some(on) = display_errors_value(line) {
            last = Some((i + 1, on));
        }
    }
    last.filter(|(_, on)| *on).map(|(l, _)| l)
}

/// A `define('DISABLE_WP_CRON', true)` outside a comment.
fn wp_cron_disabled(text: &str) -> bool {
    text.lines().any(|line| {
        let l = line.trim();
        if l.starts_with("//") || l.starts_with('#') || l.starts_with('*') || l.starts_with("/*") {
            return false;
        }
        let Some(at) = l.find("DISABLE_WP_CRON") else {
            return false;
        };
        let rest = l[at + "DISABLE_WP_CRON".len()..].to_ascii_lowercase();
        let arg = rest.split(')').next().unwrap_or("");
        arg.contains("true")
            || arg
                .trim_start_matches(['\'', '"', ',', ' '])
                .starts_with('1')
    })
}

#[derive(Debug, thiserror::Error)]
pub enum FixError {
    /// The path is not one a fix may touch (outside the trees, a symlink, not the
    /// file the check is about).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
    /// Nothing to do: the file is already as the fix would leave it.
    #[error("{0}")]
    AlreadyFixed(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> FixError {
    let context = context.into();
    move |source| FixError::Io { context, source }
}

impl From<QuarantineError> for FixError {
    fn from(e: QuarantineError) -> Self {
        match e {
            QuarantineError::NotFound(m) => FixError::NotFound(m),
            other => FixError::Refused(other.to_string()),
        }
    }
}

/// What a fix did.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Applied {
    /// truncated, display_errors_off or wp_cron_disabled.
    pub action: &'static str,
    /// Bytes given back (error_log).
    pub freed_bytes: u64,
    /// What the operator should do next, if anything.
    pub note: String,
}

/// Open `path` for the fix of `check`: inside `roots`, no symlink anywhere, a
/// regular file with a single link whose name is one the check is about.
fn open_target(check: &str, path: &Path, roots: &[PathBuf]) -> Result<std::fs::File, FixError> {
    if !within(path, roots) {
        return Err(FixError::Refused(format!(
            "{} is outside the trees the agent may touch",
            path.display()
        )));
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| names_of(check).contains(n))
        .ok_or_else(|| {
            FixError::Refused(format!(
                "{} is not a file {check} is about ({:?})",
                path.display(),
                names_of(check)
            ))
        })?;
    let parent = path
        .parent()
        .ok_or_else(|| FixError::Refused(format!("{} has no directory", path.display())))?;
    let dir = open_dir_nofollow(parent)?;
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        nix::Error::ENOENT => FixError::NotFound(format!("{} is gone", path.display())),
        nix::Error::ELOOP => FixError::Refused(format!("{} is a symlink", path.display())),
        e => FixError::Io {
            context: format!("opening {}", path.display()),
            source: e.into(),
        },
    })?;
    let f = std::fs::File::from(unsafe_owned(fd));
    let md = f.metadata().map_err(io("fstat"))?;
    if !md.is_file() {
        return Err(FixError::Refused(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    if md.nlink() != 1 {
        return Err(FixError::Refused(format!(
            "{} has {} hard links: it may be another file too",
            path.display(),
            md.nlink()
        )));
    }
    Ok(f)
}

fn read_config(f: &mut std::fs::File, path: &Path) -> Result<String, FixError> {
    let size = f.metadata().map_err(io("fstat"))?.len();
    if size > MAX_CONFIG_BYTES {
        return Err(FixError::Refused(format!(
            "{} is over {MAX_CONFIG_BYTES} bytes; edit it by hand",
            path.display()
        )));
    }
    let mut text = String::new();
    f.read_to_string(&mut text)
        .map_err(io(format!("reading {}", path.display())))?;
    Ok(text)
}

fn rewrite(f: &mut std::fs::File, text: &str, path: &Path) -> Result<(), FixError> {
    let ctx = || format!("writing {}", path.display());
    f.seek(SeekFrom::Start(0)).map_err(io(ctx()))?;
    f.write_all(text.as_bytes()).map_err(io(ctx()))?;
    f.set_len(text.len() as u64).map_err(io(ctx()))?;
    f.sync_all().map_err(io(ctx()))
}

/// Apply the fix of `check` to `path` (blocking).
pub fn fix(check: &str, path: &Path, roots: &[PathBuf]) -> Result<Applied, FixError> {
    let mut f = open_target(check, path, roots)?;
    match check {
        CHECK_ERROR_LOG => {
            let size = f.metadata().map_err(io("fstat"))?.len();
            f.set_len(0)
                .map_err(io(format!("truncating {}", path.display())))?;
            Ok(Applied {
                action: "truncated",
                freed_bytes: size,
                note: "PHP keeps appending to it: fix what it logs".into(),
            })
        }
        CHECK_DISPLAY_ERRORS => {
            let text = read_config(&mut f, path)?;
            if display_errors_on(&text).is_none() {
                return Err(FixError::AlreadyFixed(format!(
                    "display_errors is not on in {}",
                    path.display()
                )));
            }
            let mut out: String = text
                .split_inclusive('\n')
                .map(|line| match display_errors_value(line) {
                    Some(true) => {
                        let nl = if line.ends_with('\n') { "\n" } else { "" };
                        format!("display_errors = Off{nl}")
                    }
                    _ => line.to_string(),
                })
                .collect();
            if out.is_empty() {
                out.push_str("display_errors = Off\n");
            }
            rewrite(&mut f, &out, path)?;
            Ok(Applied {
                action: "display_errors_off",
                freed_bytes: 0,
                note: "PHP-FPM and LiteSpeed read .user.ini again within user_ini.cache_ttl (300 s by default)".into(),
            })
        }
        CHECK_WP_CRON => {
            let text = read_config(&mut f, path)?;
            if wp_cron_disabled(&text) {
                return Err(FixError::AlreadyFixed(format!(
                    "DISABLE_WP_CRON is already true in {}",
                    path.display()
                )));
            }
            const LINE: &str = "define( 'DISABLE_WP_CRON', true ); // Rampart: WP-Cron from the system cron, not page loads\n";
            let mut out = String::with_capacity(text.len() + LINE.len());
            let mut done = false;
            for line in text.split_inclusive('\n') {
                // A define of it to false is replaced; otherwise it goes right after
                // the opening tag.
                if !done && line.contains("DISABLE_WP_CRON") && !line.trim_start().starts_with("//")
                {
                    out.push_str(LINE);
                    done = true;
                    continue;
                }
                out.push_str(line);
                if !done && line.trim_start().starts_with("<?php") && line.ends_with('\n') {
                    out.push_str(LINE);
                    done = true;
                }
            }
            if !done {
                return Err(FixError::Refused(format!(
                    "{} does not start with <?php on a line of its own; edit it by hand",
                    path.display()
                )));
            }
            rewrite(&mut f, &out, path)?;
            let dir = path.parent().unwrap_or(Path::new("/")).display();
            Ok(Applied {
                action: "wp_cron_disabled",
                freed_bytes: 0,
                note: format!(
                    "schedule WP-Cron from the account's crontab, e.g. */15 * * * * php -q {dir}/wp-cron.php >/dev/null 2>&1"
                ),
            })
        }
        other => Err(FixError::Refused(format!("no performance fix for {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ON: Limits = Limits {
        error_log_max_bytes: 100,
        display_errors: true,
        wp_cron: true,
    };

    #[test]
    fn inspect_sees_each_issue_and_only_by_name() {
        let p = Path::new("/home/u/public_html/error_log");
        assert_eq!(
            inspect(p, 101, b"", false, &ON),
            Some(Issue::ErrorLog { size: 101 })
        );
        assert_eq!(inspect(p, 100, b"", false, &ON), None);
        let other = Path::new("/home/u/public_html/error_log.txt");
        assert_eq!(inspect(other, 1 << 30, b"", false, &ON), None);
        let ini = Path::new("/home/u/public_html/.user.ini");
        let text = b"; display_errors = On\nmemory_limit=256M\ndisplay_errors = \"1\" ; dev\n";
        assert_eq!(
            inspect(ini, 60, text, true, &ON),
            Some(Issue::DisplayErrors { line: 3 })
        );
        // The last setting wins.
        let off = b"display_errors=On\ndisplay_errors=Off\n";
        assert_eq!(inspect(ini, 30, off, true, &ON), None);
        let wp = Path::new("/home/u/public_html/wp-config.php");
        let cfg = b"<?php\ndefine('DB_NAME', 'x');\nrequire_once ABSPATH . 'wp-settings.php';\n";
        assert_eq!(inspect(wp, 80, cfg, true, &ON), Some(Issue::WpCron));
        assert_eq!(
            inspect(wp, 80, cfg, false, &ON),
            None,
            "only a file read whole"
        );
        let fixed = b"<?php\ndefine( 'DISABLE_WP_CRON', true );\nrequire_once ABSPATH . 'wp-settings.php';\n";
        assert_eq!(inspect(wp, 80, fixed, true, &ON), None);
        let commented =
            b"<?php\n// define('DISABLE_WP_CRON', true);\nrequire_once 'wp-settings.php';\n";
        assert_eq!(inspect(wp, 80, commented, true, &ON), Some(Issue::WpCron));
        let off = Limits::default();
        assert_eq!(inspect(p, 1 << 40, b"", false, &off), None);
    }

    #[test]
    fn fixes_act_in_place_and_refuse_links_and_other_files() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("www");
        std::fs::create_dir(&root).expect("mkdir");
        let roots = vec![root.clone()];
        let log = root.join("error_log");
        std::fs::write(&log, vec![b'x'; 4096]).expect("write");
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o604)).expect("chmod");
        let ino = std::fs::metadata(&log).expect("md").ino();
        let a = fix(CHECK_ERROR_LOG, &log, &roots).expect("truncate");
        assert_eq!((a.action, a.freed_bytes), ("truncated", 4096));
        let md = std::fs::metadata(&log).expect("md");
        assert_eq!((md.len(), md.ino(), md.mode() & 0o777), (0, ino, 0o604));

        // A symlinked error_log pointing at a file of the host is never truncated.
        let secret = tmp.path().join("secret");
        std::fs::write(&secret, "keep").expect("write");
        let link_dir = root.join("site");
        std::fs::create_dir(&link_dir).expect("mkdir");
        std::os::unix::fs::symlink(&secret, link_dir.join("error_log")).expect("symlink");
        assert!(matches!(
            fix(CHECK_ERROR_LOG, &link_dir.join("error_log"), &roots),
            Err(FixError::Refused(_))
        ));
        // Nor through a symlinked directory, nor a hard link, nor another name.
        std::os::unix::fs::symlink(tmp.path(), root.join("up")).expect("symlink");
        std::fs::write(tmp.path().join("error_log"), "host").expect("write");
        assert!(fix(CHECK_ERROR_LOG, &root.join("up/error_log"), &roots).is_err());
        let hl_dir = root.join("h");
        std::fs::create_dir(&hl_dir).expect("mkdir");
        std::fs::hard_link(&secret, hl_dir.join("error_log")).expect("hard link");
        assert!(matches!(
            fix(CHECK_ERROR_LOG, &hl_dir.join("error_log"), &roots),
            Err(FixError::Refused(m)) if m.contains("hard links")
        ));
        assert!(
            fix(CHECK_ERROR_LOG, &secret, &roots).is_err(),
            "outside the roots"
        );
        assert_eq!(std::fs::read_to_string(&secret).expect("read"), "keep");
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("error_log")).expect("read"),
            "host"
        );

        let ini = root.join(".user.ini");
        std::fs::write(&ini, "memory_limit = 256M\ndisplay_errors = On ; debug\n").expect("write");
        let a = fix(CHECK_DISPLAY_ERRORS, &ini, &roots).expect("ini");
        assert_eq!(a.action, "display_errors_off");
        assert_eq!(
            std::fs::read_to_string(&ini).expect("read"),
            "memory_limit = 256M\ndisplay_errors = Off\n"
        );
        assert!(matches!(
            fix(CHECK_DISPLAY_ERRORS, &ini, &roots),
            Err(FixError::AlreadyFixed(_))
        ));

        let wp = root.join("wp-config.php");
        std::fs::write(
            &wp,
            "<?php\ndefine('DB_NAME', 'x');\nrequire_once 'wp-settings.php';\n",
        )
        .expect("write");
        let a = fix(CHECK_WP_CRON, &wp, &roots).expect("wp");
        assert!(a.note.contains("wp-cron.php"), "{}", a.note);
        let text = std::fs::read_to_string(&wp).expect("read");
        assert!(
            text.starts_with("<?php\ndefine( 'DISABLE_WP_CRON', true );"),
            "{text}"
        );
        assert!(wp_cron_disabled(&text));
        assert!(matches!(
            fix(CHECK_WP_CRON, &wp, &roots),
            Err(FixError::AlreadyFixed(_))
        ));
    }
}
