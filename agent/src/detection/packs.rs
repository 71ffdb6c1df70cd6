// SPDX-License-Identifier: GPL-2.0-only
//! Rule packs fetched from URLs (`detection.rule_packs` with `url`): each is one rule
//! file, accepted only if it hashes to its pinned `sha256` or to what its checksum
//! file (`sha256_url`, https) says, and kept as `<state_dir>/rule-packs/<name>.<ext>`,
//! which the rules engine loads after `detection.rules_dir`. A pack that fails to
//! fetch or verify keeps its previous file; one whose new rules do not compile is
//! put back as it was (see [`run`]).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::scan::Engine;
use crate::config::RulePack;

/// Largest rule file fetched (bytes).
const MAX_BYTES: usize = 32 << 20;

/// Why a pack was not installed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("fetching {url}: {why}")]
    Fetch { url: String, why: String },
    #[error("{url} hashes to {got}, not {want}")]
    Mismatch {
        url: String,
        got: String,
        want: String,
    },
    #[error("the checksum file {url} names no sha256 for {file}")]
    NoChecksum { url: String, file: String },
    #[error("writing {path}: {why}")]
    Write { path: String, why: String },
}

/// A file as it was before a refresh replaced or removed it (None: it did not exist).
pub struct Previous {
    path: PathBuf,
    bytes: Option<Vec<u8>>,
}

impl Previous {
    /// Put the file back as it was.
    pub fn restore(self) {
        let r = match self.bytes {
            Some(b) => crate::config::replace_file(&self.path, &b, 0o600),
            None => std::fs::remove_file(&self.path).or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            }),
        };
        if let Err(e) = r {
            tracing::error!(path = %self.path.display(), error = %e, "Rule pack could not be put back.");
        }
    }
}

/// The file a URL pack is kept in under `dir`.
pub fn file_of(dir: &Path, pack: &RulePack) -> Option<PathBuf> {
    Some(dir.join(format!("{}.{}", pack.name, pack.url_extension()?)))
}

async fn get(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, PackError> {
    let fail = |why: String| PackError::Fetch {
        url: url.to_string(),
        why,
    };
    let mut resp = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| fail(e.to_string()))?;
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| fail(e.to_string()))? {
        if body.len() + chunk.len() > MAX_BYTES {
            return Err(fail(format!("larger than {MAX_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The sha256 a checksum file (`<hex>  <name>`, `<hex> *<name>`, or one bare `<hex>`)
/// gives for `file`.
fn checksum_for(text: &str, file: &str) -> Option<String> {
    let mut bare = None;
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(hex), name) = (it.next(), it.next()) else {
            continue;
        };
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        match name.map(|n| n.trim_start_matches('*')) {
            Some(n) if n.rsplit('/').next() == Some(file) => return Some(hex.to_ascii_lowercase()),
            Some(_) => {}
            None => bare = Some(hex.to_ascii_lowercase()),
        }
    }
    bare
}

/// Fetch and verify one URL pack; install it in `dir` if its content changed. Ok(Some)
/// with what it replaced when it did, Ok(None) when the file is already current.
pub async fn fetch(
    client: &reqwest::Client,
    dir: &Path,
    pack: &RulePack,
) -> Result<Option<Previous>, PackError> {
    let body = get(client, &pack.url).await?;
    let got = hex::encode(Sha256::digest(&body));
    let want = if pack.sha256.is_empty() {
        let sums = get(client, &pack.sha256_url).await?;
        let file = pack
            .url
            .split(['?', '#'])
            .next()
            .and_then(|p| p.rsplit('/').next())
            .unwrap_or_default()
            .to_string();
        checksum_for(&String::from_utf8_lossy(&sums), &file).ok_or(PackError::NoChecksum {
            url: pack.sha256_url.clone(),
            file,
        })?
    } else {
        pack.sha256.to_ascii_lowercase()
    };
    if got != want {
        return Err(PackError::Mismatch {
            url: pack.url.clone(),
            got,
            want,
        });
    }
    let Some(path) = file_of(dir, pack) else {
        return Ok(None);
    };
    let old = std::fs::read(&path).ok();
    if old.as_deref() == Some(body.as_slice()) {
        return Ok(None);
    }
    let write = |why: std::io::Error| PackError::Write {
        path: path.display().to_string(),
        why: why.to_string(),
    };
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(write)?;
    }
    crate::config::replace_file(&path, &body, 0o600).map_err(write)?;
    Ok(Some(Previous { path, bytes: old }))
}

/// Rule files in `dir` that belong to no configured URL pack: removed (a pack taken
/// out of the config stops loading).
pub fn remove_stale(dir: &Path, packs: &[RulePack]) -> Vec<Previous> {
    let keep: Vec<PathBuf> = packs
        .iter()
        .filter(|p| !p.url.is_empty())
        .filter_map(|p| file_of(dir, p))
        .collect();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        let rules = matches!(
            path.extension().and_then(|x| x.to_str()),
            Some("yar" | "yara" | "yml" | "yaml")
        );
        if rules && !keep.contains(&path) {
            let bytes = std::fs::read(&path).ok();
            if std::fs::remove_file(&path).is_ok() {
                tracing::info!(path = %path.display(), "Rule pack no longer configured; removed.");
                removed.push(Previous { path, bytes });
            }
        }
    }
    removed
}

/// One refresh of every URL pack: fetch, verify, install what changed, and reload the
/// rules; if the new rules do not compile, every file is put back and the active set
/// stays (the error shows in `/rules/status`). Returns whether the rules changed.
pub async fn refresh(
    client: &reqwest::Client,
    dir: &Path,
    packs: &[RulePack],
    engine: &Arc<Engine>,
) -> bool {
    let mut changed = remove_stale(dir, packs);
    for pack in packs.iter().filter(|p| !p.url.is_empty()) {
        match fetch(client, dir, pack).await {
            Ok(Some(prev)) => {
                tracing::info!(pack = %pack.name, url = %pack.url, "Rule pack updated.");
                changed.push(prev);
            }
            Ok(None) => tracing::debug!(pack = %pack.name, "Rule pack unchanged."),
            Err(e) => tracing::warn!(pack = %pack.name, error = %e, "Rule pack not updated."),
        }
    }
    if changed.is_empty() {
        return false;
    }
    let e = engine.clone();
    match tokio::task::spawn_blocking(move || e.reload()).await {
        Ok(Ok(_)) => true,
        Ok(Err(errors)) => {
            tracing::error!(error = %errors, "Updated rule packs do not compile; put back as they were.");
            for p in changed {
                p.restore();
            }
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "Rule reload failed.");
            false
        }
    }
}

/// Refresh the URL packs at start and every `refresh_hours` (the shortest of them),
/// until shutdown.
pub async fn run(
    dir: PathBuf,
    packs: Vec<RulePack>,
    engine: Arc<Engine>,
    mut shutdown: watch::Receiver<bool>,
) {
    // The supervisor restarts a task that ends: with nothing to fetch, this one
    // waits for shutdown.
    let idle = |mut shutdown: watch::Receiver<bool>| async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
    };
    if !packs.iter().any(|p| !p.url.is_empty()) {
        remove_stale(&dir, &packs);
        return idle(shutdown).await;
    }
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "No HTTP client for rule packs; none fetched.");
            return idle(shutdown).await;
        }
    };
    let every = packs
        .iter()
        .filter(|p| !p.url.is_empty())
        .map(|p| p.refresh_hours)
        .min()
        .unwrap_or(24);
    loop {
        refresh(&client, &dir, &packs, &engine).await;
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(every * 3600)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// A one-thread HTTP/1.0 server answering `routes` (path → body; others 404).
    fn serve(routes: Vec<(&'static str, Vec<u8>)>) -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut buf = [0u8; 2048];
                let n = s.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let path = req.split(' ').nth(1).unwrap_or("");
                let (status, body) = match routes.iter().find(|(p, _)| *p == path) {
                    Some((_, b)) => ("200 OK", b.clone()),
                    None => ("404 Not Found", Vec::new()),
                };
                let head = format!(
                    "HTTP/1.0 {status}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&body);
            }
        });
        format!("http://{addr}")
    }

    fn pack(name: &str, url: String, sha256: &str, sha256_url: String) -> RulePack {
        RulePack {
            name: name.into(),
            dir: PathBuf::new(),
            url,
            sha256: sha256.into(),
            sha256_url,
            refresh_hours: 24,
        }
    }

    const RULES: &[u8] = b"rule from_pack { strings: $a = \"pack-needle\" condition: $a }\n";

    #[tokio::test]
    async fn packs_install_only_when_they_verify_and_only_once() {
        let sha = hex::encode(Sha256::digest(RULES));
        let base = serve(vec![
            ("/p.yar", RULES.to_vec()),
            (
                "/sums",
                format!("{}  other.yar\n{sha}  p.yar\n", "0".repeat(64)).into_bytes(),
            ),
            (
                "/bad-sums",
                format!("{}  p.yar\n", "1".repeat(64)).into_bytes(),
            ),
        ]);
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("packs");
        let client = reqwest::Client::new();

        let pinned = pack("pinned", format!("{base}/p.yar"), &sha, String::new());
        let prev = fetch(&client, &dir, &pinned).await.expect("verifies");
        assert!(prev.is_some_and(|p| p.bytes.is_none()), "a new file");
        assert_eq!(
            std::fs::read(dir.join("pinned.yar")).expect("installed"),
            RULES
        );
        assert!(
            fetch(&client, &dir, &pinned).await.expect("same").is_none(),
            "unchanged"
        );

        let summed = pack(
            "summed",
            format!("{base}/p.yar"),
            "",
            format!("{base}/sums"),
        );
        assert!(fetch(&client, &dir, &summed)
            .await
            .expect("verifies")
            .is_some());

        for (p, why) in [
            (
                pack(
                    "wrong",
                    format!("{base}/p.yar"),
                    &"2".repeat(64),
                    String::new(),
                ),
                "hashes to",
            ),
            (
                pack(
                    "badsum",
                    format!("{base}/p.yar"),
                    "",
                    format!("{base}/bad-sums"),
                ),
                "hashes to",
            ),
            (
                pack(
                    "nosum",
                    format!("{base}/p.yar"),
                    "",
                    format!("{base}/p.yar"),
                ),
                "names no sha256",
            ),
            (
                pack("gone", format!("{base}/missing.yar"), &sha, String::new()),
                "404",
            ),
        ] {
            let e = fetch(&client, &dir, &p)
                .await
                .err()
                .expect("refused")
                .to_string();
            assert!(e.contains(why), "{}: {e}", p.name);
            assert!(
                !dir.join(format!("{}.yar", p.name)).exists(),
                "{} not installed",
                p.name
            );
        }

        // A pack taken out of the config is removed, and can be put back.
        let removed = remove_stale(&dir, std::slice::from_ref(&pinned));
        assert_eq!(removed.len(), 1);
        assert!(!dir.join("summed.yar").exists());
        removed.into_iter().for_each(Previous::restore);
        assert_eq!(
            std::fs::read(dir.join("summed.yar")).expect("restored"),
            RULES
        );
    }

    #[tokio::test]
    async fn refreshed_packs_load_and_broken_ones_are_put_back() {
        let good = RULES.to_vec();
        let broken = b"rule broken { condition: nope }\n".to_vec();
        let base = serve(vec![
            ("/good.yar", good.clone()),
            ("/broken.yar", broken.clone()),
        ]);
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("packs");
        std::fs::create_dir(&dir).expect("dir");
        let engine =
            Arc::new(Engine::new_cached(None, vec![dir.clone()], false, None).expect("engine"));
        let client = reqwest::Client::new();
        let sha = |b: &[u8]| hex::encode(Sha256::digest(b));

        let packs = vec![pack(
            "community",
            format!("{base}/good.yar"),
            &sha(&good),
            String::new(),
        )];
        assert!(
            refresh(&client, &dir, &packs, &engine).await,
            "rules changed"
        );
        assert!(engine
            .current()
            .rules()
            .iter()
            .any(|r| r.name == "from_pack"));
        assert!(
            !refresh(&client, &dir, &packs, &engine).await,
            "nothing new"
        );

        // A verified pack that does not compile: the previous file and set stay.
        let packs = vec![pack(
            "community",
            format!("{base}/broken.yar"),
            &sha(&broken),
            String::new(),
        )];
        assert!(!refresh(&client, &dir, &packs, &engine).await);
        assert_eq!(
            std::fs::read(dir.join("community.yar")).expect("kept"),
            good
        );
        assert!(engine
            .current()
            .rules()
            .iter()
            .any(|r| r.name == "from_pack"));
    }

    #[test]
    fn checksum_files_in_their_usual_shapes() {
        let h = "ab".repeat(32);
        assert_eq!(
            checksum_for(&format!("{h}  rules.yar\n"), "rules.yar"),
            Some(h.clone())
        );
        assert_eq!(
            checksum_for(&format!("{h} *dist/rules.yar\n"), "rules.yar"),
            Some(h.clone())
        );
        assert_eq!(
            checksum_for(&format!("{h}\n"), "rules.yar"),
            Some(h.clone())
        );
        assert_eq!(
            checksum_for(&format!("{h}  other.yar\n"), "rules.yar"),
            None
        );
        assert_eq!(checksum_for("not a checksum", "rules.yar"), None);
    }
}
