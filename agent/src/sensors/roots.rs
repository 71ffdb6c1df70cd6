// SPDX-License-Identifier: GPL-2.0-only
//! Teaching the kernel which files are watched roots and interpreters, as its
//! programs will see them. The agent opens each one and `fstatfs`es it while
//! `rampart_learn_root` is attached to `sys_enter_fstatfs` (only for this, and only
//! for the agent's own calls, said in `RAMPART_LEARN`). The program takes the opened
//! file's identity the way the walk and the exec program read it: a root's dentry
//! address (`RAMPART_ROOT_DENTRIES`, so the walk tests each level with one lookup
//! and no reads), an interpreter's (device, inode) of its dentry
//! (`RAMPART_INTERPRETERS`). Nothing depends on `stat` agreeing with the kernel,
//! which on overlayfs it does not (a per-layer device). The roots stay open
//! ([`RootPins`]) while the programs run, which keeps those dentries, and so their
//! addresses, alive.

use std::{collections::HashMap, os::fd::AsRawFd, path::PathBuf};

use agent_common::{learn_kind, maps, maps::progs, Learn};
use aya::{
    maps::Array,
    programs::{trace_point::TracePointLinkId, TracePoint},
    Ebpf,
};

use crate::kernel::{prog_err, program, LoaderError};

/// The roots held open while the programs run (dropped with the sensors).
pub struct RootPins(#[allow(dead_code)] Vec<std::fs::File>);

/// What was learned: the roots (held open) and the interpreters that could not be
/// (named, so the agent can say so; their scripts are then not followed).
pub struct Learned {
    pub pins: RootPins,
    /// Each root's path by the id the kernel's file events carry
    /// (`OpenInfo::root`): the path of the directory the agent opened and taught, so
    /// the names the kernel built below it make the file's path as the agent sees it.
    pub paths: RootPaths,
    pub interpreters_missed: Vec<PathBuf>,
}

/// The watched roots' paths by their ids (1-based positions in the list learned).
pub type RootPaths = HashMap<u32, PathBuf>;

/// Learn every existing directory of `roots` (with its bits; a directory named
/// twice gets both) and every file of `interpreters`. Fails, naming it, when a root
/// could not be learned: a walk that cannot find a root would take its files for
/// unwatched.
pub fn learn(
    ebpf: &mut Ebpf,
    roots: &[(PathBuf, u32)],
    interpreters: &[PathBuf],
) -> Result<Learned, LoaderError> {
    let name = progs::LEARN_ROOT;
    let prog: &mut TracePoint = program(ebpf, name)?;
    if prog.fd().is_err() {
        prog.load().map_err(prog_err(name))?;
    }
    let link = prog
        .attach("syscalls", "sys_enter_fstatfs")
        .map_err(prog_err(name))?;
    let res = teach(ebpf, roots, interpreters);
    let prog: &mut TracePoint = program(ebpf, name)?;
    detach(prog, link)?;
    res
}

fn detach(prog: &mut TracePoint, link: TracePointLinkId) -> Result<(), LoaderError> {
    prog.detach(link).map_err(prog_err(progs::LEARN_ROOT))
}

fn teach(
    ebpf: &mut Ebpf,
    roots: &[(PathBuf, u32)],
    interpreters: &[PathBuf],
) -> Result<Learned, LoaderError> {
    let map = ebpf
        .map_mut(maps::LEARN)
        .ok_or(LoaderError::MissingMap(maps::LEARN))?;
    let mut cfg: Array<_, Learn> = Array::try_from(map).map_err(|source| LoaderError::Map {
        name: maps::LEARN,
        source,
    })?;
    let tgid = std::process::id();
    // One file: open it, say what it is, fstatfs it, and check that it was learned.
    let mut one = |path: &PathBuf,
                   kind: u32,
                   bits: u32,
                   root_id: u32|
     -> Result<Option<std::fs::File>, String> {
        let f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(_) => return Ok(None), // absent: nothing to learn
        };
        let is_dir = f.metadata().map(|m| m.is_dir()).unwrap_or(false);
        if (kind == learn_kind::ROOT) != is_dir {
            return Ok(None);
        }
        let before = cfg.get(&0, 0).map(|l| l.learned).unwrap_or(0);
        let l = Learn {
            tgid,
            kind,
            bits,
            learned: before,
            root_id,
            _pad: 0,
        };
        cfg.set(0, l, 0).map_err(|e| e.to_string())?;
        // SAFETY: a valid fd and a statfs buffer we own.
        let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatfs(f.as_raw_fd(), &mut sfs) } != 0 {
            return Err(format!("fstatfs: {}", std::io::Error::last_os_error()));
        }
        let after = cfg.get(&0, 0).map(|l| l.learned).unwrap_or(0);
        if after == before {
            return Err("the kernel did not learn it".into());
        }
        Ok(Some(f))
    };
    let mut pins = Vec::new();
    let mut paths = RootPaths::new();
    for (i, (path, bits)) in roots.iter().enumerate() {
        let id = i as u32 + 1;
        match one(path, learn_kind::ROOT, *bits, id) {
            Ok(Some(f)) => {
                // Where the directory the kernel learned is (symlinks in the
                // configured name resolved), as the kernel names it.
                let at = std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd()))
                    .unwrap_or_else(|_| path.clone());
                paths.insert(id, at);
                pins.push(f);
            }
            Ok(None) => {}
            Err(reason) => {
                return Err(LoaderError::Root {
                    path: path.display().to_string(),
                    reason,
                })
            }
        }
    }
    let mut interpreters_missed = Vec::new();
    for path in interpreters {
        if let Err(why) = one(path, learn_kind::INTERPRETER, 0, 0) {
            tracing::debug!(path = %path.display(), reason = %why, "Interpreter not learned.");
            interpreters_missed.push(path.clone());
        }
    }
    let _ = cfg.set(0, Learn::default(), 0);
    Ok(Learned {
        pins: RootPins(pins),
        paths,
        interpreters_missed,
    })
}
