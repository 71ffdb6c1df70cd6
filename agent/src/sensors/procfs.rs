// SPDX-License-Identifier: GPL-2.0-only
//! What the sensors read from /proc and the user database: a per-batch cache of
//! process identities, /proc/<pid>/stat, lineage, and user names to UIDs.

use std::path::PathBuf;

/// /proc lookups for one batch of events, shared by the ring reader and fanotify:
/// a burst from one process costs one read, and clearing per batch keeps a
/// recycled pid (or an exec) from outliving the batch.
#[derive(Default)]
pub struct ProcCache {
    exe: std::collections::HashMap<u32, Option<PathBuf>>,
    ident: std::collections::HashMap<u32, Option<(u32, u32, String)>>,
}

impl ProcCache {
    pub fn clear(&mut self) {
        self.exe.clear();
        self.ident.clear();
    }

    /// The process's executable (None when it has exited).
    pub fn exe(&mut self, tgid: u32) -> Option<PathBuf> {
        self.exe
            .entry(tgid)
            .or_insert_with(|| std::fs::read_link(format!("/proc/{tgid}/exe")).ok())
            .clone()
    }

    /// Real uid, gid and comm of a process (None when it has exited).
    pub fn identity(&mut self, pid: u32) -> Option<(u32, u32, String)> {
        self.ident
            .entry(pid)
            .or_insert_with(|| proc_identity(pid))
            .clone()
    }
}

/// Real uid, gid and name of a process, from /proc/<pid>/status.
pub fn proc_identity(pid: u32) -> Option<(u32, u32, String)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |k: &str| -> Option<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let comm = status
        .lines()
        .find_map(|l| l.strip_prefix("Name:"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    Some((field("Uid:")?, field("Gid:")?, comm))
}

/// The fields of /proc/<pid>/stat used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub ppid: u32,
    pub env_end: u64,
}

impl ProcStat {
    /// The image was replaced since `before` was read, and its stack laid out:
    /// between the two the mm is new but `env_end` still 0.
    pub fn replaced(&self, before: u64) -> bool {
        self.env_end != before && self.env_end != 0
    }
}

pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// comm may hold spaces and parens: the fields after the last ')' are fixed
/// (field 3 is the state; ppid is field 4, env_end field 51).
fn parse_stat(s: &str) -> Option<ProcStat> {
    let rest: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
    Some(ProcStat {
        ppid: rest.get(1)?.parse().ok()?,
        env_end: rest.get(48)?.parse().ok()?,
    })
}

/// A process's comm (None when it has exited).
pub fn comm_of(pid: u32) -> Option<String> {
    let c = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(c.strip_suffix('\n').unwrap_or(&c).to_string())
}

/// Up to `n` ancestors of `pid`, nearest first, best effort from /proc (a killed or
/// short-lived process may be gone already; the walk stops below pid 1's parent).
pub fn ancestors(pid: u32, n: usize) -> Vec<api::model::Ancestor> {
    let mut out = Vec::new();
    let mut at = pid;
    while out.len() < n {
        let Some(ppid) = proc_stat(at).map(|s| s.ppid).filter(|p| *p != 0) else {
            break;
        };
        let Some(name) = comm_of(ppid) else {
            break;
        };
        out.push(api::model::Ancestor { pid: ppid, name });
        at = ppid;
    }
    out
}

/// How many ancestors a finding keeps.
pub const LINEAGE_DEPTH: usize = 4;

/// Parent and grandparent of `pid` in words, best effort from /proc.
pub fn lineage(pid: u32) -> String {
    match ancestors(pid, 2).as_slice() {
        [p, g, ..] => format!(
            "parent {} ({}), grandparent {} ({})",
            p.name, p.pid, g.name, g.pid
        ),
        [p] => format!("parent {} ({})", p.name, p.pid),
        [] => "lineage unavailable (process gone)".into(),
    }
}

/// UIDs for user names or numeric UIDs; unknown names are returned separately.
pub fn resolve_uids(users: &[String]) -> (Vec<u32>, Vec<String>) {
    let (mut uids, mut unknown) = (Vec::new(), Vec::new());
    for u in users {
        if let Ok(n) = u.parse::<u32>() {
            uids.push(n);
        } else if let Ok(Some(user)) = nix::unistd::User::from_name(u) {
            uids.push(user.uid.as_raw());
        } else {
            unknown.push(u.clone());
        }
    }
    (uids, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_fields_survive_hostile_comms() {
        let mut fields: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
        fields[0] = "R".into(); // state
        fields[1] = "4242".into(); // ppid
        fields[48] = "140737488347136".into(); // env_end
        let line = format!("77 (a) b) (c ) {}", fields.join(" "));
        assert_eq!(
            parse_stat(&line),
            Some(ProcStat {
                ppid: 4242,
                env_end: 140737488347136
            })
        );
        assert_eq!(parse_stat("77 (x) R 1"), None);
        assert_eq!(parse_stat("no parens at all"), None);
        let own = proc_stat(std::process::id()).expect("own stat");
        assert_eq!(own.ppid, std::os::unix::process::parent_id());
        assert_ne!(own.env_end, 0);
        assert!(own.replaced(1) && !own.replaced(own.env_end));
        assert!(
            !ProcStat {
                ppid: 1,
                env_end: 0
            }
            .replaced(5),
            "new mm, stack not laid out"
        );
    }
}
