// SPDX-License-Identifier: GPL-2.0-only
//! The mail server's state beside its logs: exim's queue, read from its spool's
//! `-H` files (sender, delivered and pending recipients, frozen), backscatter removal
//! through exim itself, and cPanel's forwarders (`/etc/valiases/<domain>`).
//!
//! Everything read here is written by strangers (senders and recipients) or by
//! customers (their forwarder files): every read is bounded, no symlink is followed,
//! and nothing read is ever passed to a command but message ids of exim's own form.

use std::{
    collections::HashMap,
    io::Read,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use serde::Serialize;

/// `-H` files read at most in one pass.
const MAX_MESSAGES: usize = 200_000;
/// Bytes of a `-H` file read (the envelope comes before the headers).
const MAX_HEADER_FILE: u64 = 64 * 1024;
/// Forwarder files read at most, and bytes of each.
const MAX_ALIAS_FILES: usize = 100_000;
const MAX_ALIAS_FILE: u64 = 1 << 20;
/// Rows in a top-N list.
const TOP: usize = 10;

/// The spool directories exim uses (cPanel/RHEL, Debian), tried in order.
pub const SPOOLS: &[&str] = &["/var/spool/exim", "/var/spool/exim4"];
/// exim's binary (cPanel/RHEL, Debian).
pub const EXIM_BINS: &[&str] = &["/usr/sbin/exim", "/usr/sbin/exim4"];

/// One queued message's envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub id: String,
    /// "" for a bounce (the null sender `<>`).
    pub sender: String,
    pub received_unix: i64,
    pub frozen: bool,
    /// Recipients not yet delivered.
    pub pending: Vec<String>,
}

/// Is `id` an exim message id (`1hXyZ1-000Abc-Ab`, old and new formats)?
pub fn is_message_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.len() == 3
        && parts[0].len() == 6
        && (6..=11).contains(&parts[1].len())
        && (2..=4).contains(&parts[2].len())
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Lines of a byte buffer, each without its newline; a last line without one is
/// not a line (a file cut short).
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Lines<'a> {
    fn next(&mut self) -> Option<&'a [u8]> {
        let end = self.rest.iter().position(|b| *b == b'\n')?;
        let (l, r) = self.rest.split_at(end);
        self.rest = &r[1..];
        Some(l)
    }

    /// Skip `n` bytes and the newline after them.
    fn skip(&mut self, n: usize) -> Option<()> {
        if n >= self.rest.len() || self.rest[n] != b'\n' {
            return None;
        }
        self.rest = &self.rest[n + 1..];
        Some(())
    }
}

/// Deepest non-recipients tree read (exim's is balanced: ~40 levels for a million).
const MAX_TREE_DEPTH: usize = 64;

/// One node line `<L><R> address` and its subtrees, preorder (exim's write_tree).
fn read_tree(
    node: &[u8],
    lines: &mut Lines<'_>,
    out: &mut Vec<String>,
    depth: usize,
) -> Option<()> {
    if node.len() < 3 || depth > MAX_TREE_DEPTH || out.len() > 100_000 {
        return None;
    }
    out.push(String::from_utf8_lossy(&node[3..]).to_string());
    if node[0] == b'Y' {
        let left = lines.next()?;
        read_tree(left, lines, out, depth + 1)?;
    }
    if node[1] == b'Y' {
        let right = lines.next()?;
        read_tree(right, lines, out, depth + 1)?;
    }
    Some(())
}

/// Parse a `-H` file (exim spec, "Format of the -H file"). None when it is not one.
pub fn parse_header_file(id: &str, text: &[u8]) -> Option<Queued> {
    parse_envelope(id, text).map(|(q, _)| q)
}

/// Longest header exim stores (its own limit is far lower).
const MAX_HEADER: usize = 1 << 20;

/// A `-H` file's envelope and its message headers as RFC 5322 text (without the
/// blank line that ends them). exim stores each header as `NNNf text`: its length
/// in bytes (newlines included), a flag (`*` marks one exim removed, left out here)
/// and a space.
pub fn parse_spool_headers(id: &str, text: &[u8]) -> Option<(Queued, Vec<u8>)> {
    let (q, mut rest) = parse_envelope(id, text)?;
    // The blank line after the recipients.
    rest = rest.strip_prefix(b"\n")?;
    let mut out = Vec::with_capacity(rest.len());
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits < 3 || rest.len() < digits + 2 || rest[digits + 1] != b' ' {
            return None;
        }
        let len: usize = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
        let flag = rest[digits];
        let start = digits + 2;
        if len > MAX_HEADER || rest.len() < start + len {
            return None;
        }
        if flag != b'*' {
            out.extend_from_slice(&rest[start..start + len]);
        }
        rest = &rest[start + len..];
    }
    Some((q, out))
}

/// The envelope of a `-H` file and what follows the recipients.
fn parse_envelope<'a>(id: &str, text: &'a [u8]) -> Option<(Queued, &'a [u8])> {
    let mut lines = Lines { rest: text };
    if lines.next()? != format!("{id}-H").as_bytes() {
        return None;
    }
    lines.next()?; // login uid gid
    let sender = std::str::from_utf8(lines.next()?).ok()?;
    let sender = sender.strip_prefix('<')?.strip_suffix('>')?.to_string();
    let received_unix = std::str::from_utf8(lines.next()?)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let mut frozen = false;
    // Option lines; an ACL variable's value follows on its own, `len` bytes long.
    let tree = loop {
        let l = lines.next()?;
        if !l.starts_with(b"-") {
            break l;
        }
        let s = String::from_utf8_lossy(l);
        let mut words = s.split_whitespace();
        match words.next() {
            Some("-frozen") => frozen = true,
            Some(w) if w.starts_with("-acl") => {
                let len: usize = words.last()?.parse().ok()?;
                lines.skip(len)?;
            }
            _ => {}
        }
    };
    // The non-recipients tree: the addresses already delivered.
    let mut delivered = Vec::new();
    if !tree.starts_with(b"XX") {
        read_tree(tree, &mut lines, &mut delivered, 0)?;
    }
    let count: usize = std::str::from_utf8(lines.next()?)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if count > 100_000 {
        return None;
    }
    let mut pending = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let l = String::from_utf8_lossy(lines.next()?).to_string();
        // Older formats append `errors_to` details after a space.
        let addr = l.split(' ').next().unwrap_or("").to_string();
        if !delivered.contains(&addr) {
            pending.push(addr);
        }
    }
    Some((
        Queued {
            id: id.to_string(),
            sender,
            received_unix,
            frozen,
            pending,
        },
        lines.rest,
    ))
}

/// `mail.exim_spool`, else the first of [`SPOOLS`] with an `input` directory.
pub fn spool_dir(configured: &Path) -> Option<PathBuf> {
    if !configured.as_os_str().is_empty() {
        return configured
            .join("input")
            .is_dir()
            .then(|| configured.to_path_buf());
    }
    SPOOLS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("input").is_dir())
}

/// `mail.exim_bin`, else the first of [`EXIM_BINS`] that exists.
pub fn exim_bin(configured: &Path) -> Option<PathBuf> {
    if !configured.as_os_str().is_empty() {
        return configured.is_file().then(|| configured.to_path_buf());
    }
    EXIM_BINS.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// At most `max` bytes of a regular file, never through a symlink at its last
/// component and never blocking on a FIFO (the mail features read files strangers
/// wrote).
pub fn read_bounded(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    read_bounded_with_meta(path, max).map(|(b, _)| b)
}

/// [`read_bounded`], with the file's metadata.
pub fn read_bounded_with_meta(
    path: &Path,
    max: u64,
) -> std::io::Result<(Vec<u8>, std::fs::Metadata)> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let md = f.metadata()?;
    if !md.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf)?;
    Ok((buf, md))
}

/// The directories of the queue: `input` and, with `split_spool_directory`, its
/// one level of single-character subdirectories.
pub fn queue_dirs(input: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![input.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(input) {
        for e in rd.flatten() {
            if e.file_name().len() == 1 && e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(e.path());
            }
        }
    }
    dirs
}

/// The queue: every `-H` file of `spool/input` (and its split subdirectories).
/// Returns the messages, the files that did not parse, and whether it stopped at
/// [`MAX_MESSAGES`].
pub fn read_queue(spool: &Path) -> (Vec<Queued>, u64, bool) {
    let (mut out, mut bad) = (Vec::new(), 0u64);
    for d in queue_dirs(&spool.join("input")) {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix("-H")) else {
                continue;
            };
            if !is_message_id(id) {
                continue;
            }
            if out.len() >= MAX_MESSAGES {
                return (out, bad, true);
            }
            match read_bounded(&e.path(), MAX_HEADER_FILE)
                .ok()
                .and_then(|t| parse_header_file(id, &t))
            {
                Some(q) => out.push(q),
                // Gone meanwhile (delivered) or not exim's: counted, never fatal.
                None => bad += 1,
            }
        }
    }
    (out, bad, false)
}

/// A name and how often.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, PartialEq, Eq)]
pub struct Count {
    pub name: String,
    pub count: u64,
}

/// `GET /email/queue-composition`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Composition {
    pub spool: String,
    pub total: u64,
    /// Messages with a sender.
    pub real: u64,
    /// Bounces (null sender `<>`): backscatter when they answer forged senders.
    pub backscatter: u64,
    pub frozen: u64,
    /// Frozen bounces: what `/email/queue/flush-backscatter` removes.
    pub frozen_backscatter: u64,
    /// Age of the oldest message, seconds.
    pub oldest_age_secs: u64,
    /// Undelivered recipients, most frequent first.
    pub top_recipients: Vec<Count>,
    pub top_recipient_domains: Vec<Count>,
    /// Sender domains of real messages.
    pub top_sender_domains: Vec<Count>,
    /// `-H` files that did not parse (delivered while read, or damaged).
    pub unreadable: u64,
    /// The queue was larger than what one pass reads.
    pub truncated: bool,
}

fn top(m: HashMap<String, u64>) -> Vec<Count> {
    let mut v: Vec<Count> = m
        .into_iter()
        .map(|(name, count)| Count { name, count })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    v.truncate(TOP);
    v
}

fn domain(addr: &str) -> String {
    addr.rsplit_once('@')
        .map_or("", |(_, d)| d)
        .to_ascii_lowercase()
}

pub fn composition(spool: &Path, now_unix: i64) -> Composition {
    let (msgs, unreadable, truncated) = read_queue(spool);
    let mut c = Composition {
        spool: spool.display().to_string(),
        total: msgs.len() as u64,
        real: 0,
        backscatter: 0,
        frozen: 0,
        frozen_backscatter: 0,
        oldest_age_secs: 0,
        top_recipients: Vec::new(),
        top_recipient_domains: Vec::new(),
        top_sender_domains: Vec::new(),
        unreadable,
        truncated,
    };
    let (mut rcpt, mut rdom, mut sdom) = (HashMap::new(), HashMap::new(), HashMap::new());
    for m in &msgs {
        let bounce = m.sender.is_empty();
        if bounce {
            c.backscatter += 1;
        } else {
            c.real += 1;
            *sdom.entry(domain(&m.sender)).or_insert(0) += 1;
        }
        if m.frozen {
            c.frozen += 1;
            c.frozen_backscatter += u64::from(bounce);
        }
        c.oldest_age_secs = c
            .oldest_age_secs
            .max(u64::try_from(now_unix - m.received_unix).unwrap_or(0));
        for r in &m.pending {
            *rcpt.entry(r.to_ascii_lowercase()).or_insert(0) += 1;
            *rdom.entry(domain(r)).or_insert(0) += 1;
        }
    }
    c.top_recipients = top(rcpt);
    c.top_recipient_domains = top(rdom);
    c.top_sender_domains = top(sdom);
    c
}

/// The frozen bounces of the queue: what a backscatter flush removes.
pub fn frozen_backscatter(spool: &Path) -> Vec<String> {
    read_queue(spool)
        .0
        .into_iter()
        .filter(|m| m.frozen && m.sender.is_empty())
        .map(|m| m.id)
        .collect()
}

/// One forwarder destination.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, PartialEq, Eq)]
pub struct Destination {
    pub target: String,
    /// address, pipe, file, fail or blackhole.
    pub kind: &'static str,
    /// An address of a domain this server does not host.
    pub external: bool,
    /// The mailbox provider of an external address (google, microsoft, yahoo, apple,
    /// aol, gmx, other); "" when local or not an address.
    pub provider: &'static str,
}

/// One forwarded address.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, PartialEq, Eq)]
pub struct Forwarder {
    pub domain: String,
    pub address: String,
    pub destinations: Vec<Destination>,
    /// A copy also stays on this server.
    pub local_copy: bool,
    pub external: usize,
}

/// `GET /email/forwarders`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Forwarders {
    pub source: String,
    pub domains: usize,
    pub forwarders: Vec<Forwarder>,
    /// External destinations per provider.
    pub providers: Vec<Count>,
    /// Files skipped (a symlink, not a regular file, unreadable).
    pub skipped: u64,
    pub truncated: bool,
}

fn provider(domain: &str) -> &'static str {
    let d = domain.to_ascii_lowercase();
    let any = |list: &[&str]| {
        list.iter()
            .any(|x| d == *x || d.ends_with(&format!(".{x}")))
    };
    if any(&["gmail.com", "googlemail.com"]) {
        "google"
    } else if any(&["outlook.com", "hotmail.com", "live.com", "msn.com"])
        || d.starts_with("hotmail.")
        || d.starts_with("outlook.")
    {
        "microsoft"
    } else if any(&["yahoo.com", "ymail.com", "rocketmail.com"]) || d.starts_with("yahoo.") {
        "yahoo"
    } else if any(&["icloud.com", "me.com", "mac.com"]) {
        "apple"
    } else if any(&["aol.com"]) {
        "aol"
    } else if d.starts_with("gmx.") {
        "gmx"
    } else {
        "other"
    }
}

/// One `address: dest, dest` line of a valiases file of `domain`.
pub fn parse_alias_line(
    domain: &str,
    line: &str,
    local: &dyn Fn(&str) -> bool,
) -> Option<Forwarder> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (key, dests) = line.split_once(": ").or_else(|| line.split_once(':'))?;
    let key = key.trim();
    // The catch-all (`*`) is a default address, not a forwarder.
    if key == "*" || key.is_empty() {
        return None;
    }
    let address = if key.contains('@') {
        key.to_ascii_lowercase()
    } else {
        format!("{}@{domain}", key.to_ascii_lowercase())
    };
    let mut destinations = Vec::new();
    let mut local_copy = false;
    let dests = dests.trim();
    let specials = [(":fail:", "fail"), (":blackhole:", "blackhole")];
    if let Some((_, kind)) = specials.iter().find(|(s, _)| dests.starts_with(s)) {
        destinations.push(Destination {
            target: dests.to_string(),
            kind,
            external: false,
            provider: "",
        });
    } else {
        for d in dests.split(',') {
            let t = d.trim().trim_matches('"').to_string();
            if t.is_empty() {
                continue;
            }
            let (kind, external, prov) = if t.starts_with('|') {
                ("pipe", false, "")
            } else if t.starts_with('/') {
                ("file", false, "")
            } else {
                let dom = self::domain(&t);
                let ext = !dom.is_empty() && !local(&dom);
                if !ext {
                    local_copy = true;
                }
                ("address", ext, if ext { provider(&dom) } else { "" })
            };
            destinations.push(Destination {
                target: t,
                kind,
                external,
                provider: prov,
            });
        }
    }
    let external = destinations.iter().filter(|d| d.external).count();
    Some(Forwarder {
        domain: domain.to_string(),
        address,
        destinations,
        local_copy,
        external,
    })
}

/// Every forwarder of `dir` (one file per domain). `local_domains`: the domains this
/// server hosts (cPanel's `/etc/localdomains`); the files' own domains count too.
pub fn forwarders(dir: &Path, local_domains: &[String]) -> std::io::Result<Forwarders> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    let truncated = names.len() > MAX_ALIAS_FILES;
    names.truncate(MAX_ALIAS_FILES);
    let mut hosted: std::collections::HashSet<String> = local_domains
        .iter()
        .map(|d| d.to_ascii_lowercase())
        .collect();
    hosted.extend(names.iter().map(|n| n.to_ascii_lowercase()));
    let local = |d: &str| hosted.contains(d);
    let (mut rows, mut skipped, mut provs) = (Vec::new(), 0u64, HashMap::new());
    for name in &names {
        let Ok(text) = read_bounded(&dir.join(name), MAX_ALIAS_FILE) else {
            skipped += 1;
            continue;
        };
        for line in String::from_utf8_lossy(&text).lines() {
            if let Some(f) = parse_alias_line(name, line, &local) {
                for d in f.destinations.iter().filter(|d| d.external) {
                    *provs.entry(d.provider.to_string()).or_insert(0u64) += 1;
                }
                rows.push(f);
            }
        }
    }
    Ok(Forwarders {
        source: dir.display().to_string(),
        domains: names.len(),
        forwarders: rows,
        providers: top(provs),
        skipped,
        truncated,
    })
}

/// The domains of cPanel's `/etc/localdomains` (empty when absent).
pub fn local_domains(path: &Path) -> Vec<String> {
    read_bounded(path, MAX_ALIAS_FILE)
        .map(|t| {
            String::from_utf8_lossy(&t)
                .lines()
                .map(|l| l.trim().to_ascii_lowercase())
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(id: &str, sender: &str, frozen: bool, tree: &str, rcpts: &[&str]) -> String {
        let mut s = format!("{id}-H\nmailnull 47 12\n<{sender}>\n1700000000 0\n-received_time_usec .1\n-ident mailnull\n-aclc 0 5\nhello\n");
        if frozen {
            s.push_str("-frozen 1700000100\n");
        }
        s.push_str("-local\n");
        s.push_str(tree);
        s.push_str(&format!("{}\n", rcpts.len()));
        for r in rcpts {
            s.push_str(r);
            s.push('\n');
        }
        s.push_str("\n049P Received: from x\n");
        s
    }

    #[test]
    fn header_files_parse_with_acl_values_trees_and_frozen() {
        let id = "1hXyZ1-000Abc-Ab";
        let h = header(id, "", true, "XX\n", &["a@example.com", "b@example.org"]);
        let q = parse_header_file(id, h.as_bytes()).expect("parse");
        assert_eq!(q.sender, "");
        assert!(q.frozen);
        assert_eq!(q.pending, ["a@example.com", "b@example.org"]);
        assert_eq!(q.received_unix, 1_700_000_000);
        // A tree of two delivered addresses (root with a left child).
        let h = header(
            id,
            "s@sender.test",
            false,
            "YN a@example.com\nNN c@example.com\n",
            &["a@example.com", "b@example.com", "c@example.com"],
        );
        let q = parse_header_file(id, h.as_bytes()).expect("parse");
        assert_eq!(
            q.pending,
            ["b@example.com"],
            "delivered ones are not pending"
        );
        assert!(!q.frozen);
        // Another id's file, garbage and truncation are refused, never a panic.
        assert!(parse_header_file("1hXyZ1-000Abc-Ac", h.as_bytes()).is_none());
        assert!(parse_header_file(id, b"\xff\xfe").is_none());
        for cut in 0..h.len() {
            let _ = parse_header_file(id, &h.as_bytes()[..cut]);
        }
        let huge_acl = format!("{id}-H\nx 1 1\n<>\n1 0\n-aclc 0 999999999\nx\n");
        assert!(parse_header_file(id, huge_acl.as_bytes()).is_none());
    }

    #[test]
    fn message_ids_are_exims_only() {
        assert!(is_message_id("1hXyZ1-000Abc-Ab"));
        assert!(is_message_id("1tq9Xq-00000000Cfn-1kGq"));
        for bad in [
            "-Mrm",
            "1hXyZ1-000Abc",
            "1hXyZ1-000Abc-Ab-H",
            "1hX/Z1-000Abc-Ab",
            "",
        ] {
            assert!(!is_message_id(bad), "{bad}");
        }
    }

    #[test]
    fn spool_headers_come_back_as_message_headers() {
        let hdr = |flag: char, text: &str| format!("{:03}{flag} {text}", text.len());
        let id = "1aBcDe-000Abc-Xy";
        let text = format!(
            "{id}-H\nDebian-exim 101 101\n<shop@shop.test>\n1700000000 0\n-received_time_usec .123456\n-ident Debian-exim\n-aclc _x 5\nab\ncd\n-host_address 192.0.2.1.4321\nXX\n1\nbuyer@example.org\n\n{}{}{}{}",
            hdr('P', "Received: from [192.0.2.1]\n\tby host with esmtp\n"),
            hdr('F', "From: shop@shop.test\n"),
            hdr('*', "X-Removed: by exim\n"),
            hdr(' ', "Subject: order\n"),
        );
        let (q, h) = parse_spool_headers(id, text.as_bytes()).expect("parses");
        assert_eq!(
            (q.sender.as_str(), q.pending.as_slice()),
            ("shop@shop.test", &["buyer@example.org".to_string()][..])
        );
        assert_eq!(
            String::from_utf8_lossy(&h),
            "Received: from [192.0.2.1]\n\tby host with esmtp\nFrom: shop@shop.test\nSubject: order\n"
        );
        // A length that runs past the end, or a line that is not a header: none.
        let cut = text.replace("015  Subject", "099  Subject");
        assert!(parse_spool_headers(id, cut.as_bytes()).is_none());
        assert!(parse_spool_headers(id, format!("{text}junk\n").as_bytes()).is_none());
    }

    #[test]
    fn composition_counts_a_spool() {
        let tmp = tempfile::tempdir().expect("tmp");
        let input = tmp.path().join("input");
        std::fs::create_dir_all(input.join("A")).expect("mkdir");
        let write = |dir: &Path, id: &str, body: String| {
            std::fs::write(dir.join(format!("{id}-H")), body).expect("write");
        };
        write(
            &input,
            "1aaaaa-000001-Ab",
            header("1aaaaa-000001-Ab", "", true, "XX\n", &["x@victim.test"]),
        );
        write(
            &input.join("A"),
            "1aaaaa-000002-Ab",
            header("1aaaaa-000002-Ab", "", false, "XX\n", &["x@victim.test"]),
        );
        write(
            &input,
            "1aaaaa-000003-Ab",
            header(
                "1aaaaa-000003-Ab",
                "u@shop.test",
                false,
                "XX\n",
                &["y@gmail.com"],
            ),
        );
        std::fs::write(input.join("1aaaaa-000004-Ab-H"), "garbage").expect("write");
        std::os::unix::fs::symlink("/etc/passwd", input.join("1aaaaa-000005-Ab-H")).expect("link");
        let c = composition(tmp.path(), 1_700_000_600);
        assert_eq!(
            (
                c.total,
                c.real,
                c.backscatter,
                c.frozen,
                c.frozen_backscatter
            ),
            (3, 1, 2, 1, 1)
        );
        assert_eq!((c.unreadable, c.oldest_age_secs), (2, 600));
        assert_eq!(
            c.top_recipients[0],
            Count {
                name: "x@victim.test".into(),
                count: 2
            }
        );
        assert_eq!(
            c.top_sender_domains,
            [Count {
                name: "shop.test".into(),
                count: 1
            }]
        );
        assert_eq!(frozen_backscatter(tmp.path()), ["1aaaaa-000001-Ab"]);
    }

    #[test]
    fn forwarders_classify_destinations_and_skip_links() {
        let tmp = tempfile::tempdir().expect("tmp");
        std::fs::write(
            tmp.path().join("shop.test"),
            "info@shop.test: owner@gmail.com, info@shop.test\nsales@shop.test: \"boss@outlook.com\"\n*: :fail: No Such User Here\npipe@shop.test: |/usr/local/bin/handler\nold@shop.test: :blackhole:\n",
        )
        .expect("write");
        std::os::unix::fs::symlink("/etc/shadow", tmp.path().join("evil.test")).expect("link");
        let f = forwarders(tmp.path(), &["other.test".into()]).expect("read");
        assert_eq!((f.domains, f.skipped), (2, 1));
        let info = f
            .forwarders
            .iter()
            .find(|r| r.address == "info@shop.test")
            .expect("info");
        assert!(info.local_copy);
        assert_eq!(info.external, 1);
        assert_eq!(info.destinations[0].provider, "google");
        let sales = f
            .forwarders
            .iter()
            .find(|r| r.address == "sales@shop.test")
            .expect("sales");
        assert_eq!(
            (sales.local_copy, sales.destinations[0].provider),
            (false, "microsoft")
        );
        let pipe = f
            .forwarders
            .iter()
            .find(|r| r.address == "pipe@shop.test")
            .expect("pipe");
        assert_eq!(pipe.destinations[0].kind, "pipe");
        let old = f
            .forwarders
            .iter()
            .find(|r| r.address == "old@shop.test")
            .expect("old");
        assert_eq!(old.destinations[0].kind, "blackhole");
        assert!(f.forwarders.iter().all(|r| r.address != "*@shop.test"));
        assert_eq!(f.providers.len(), 2);
    }
}
