// SPDX-License-Identifier: GPL-2.0-only
//! The watched roots by the address of their directory's dentry. The kernel walk
//! looks each level up by that address (one lookup, no reads) instead of reading
//! every level's device and inode. The addresses are learned once at start: the
//! agent opens each root, a small program on `sys_enter_fstatfs` (attached only for
//! this) reads the opened file's dentry, checks it against `RAMPART_WATCH_ROOTS` by
//! device and inode, and remembers it in `RAMPART_ROOT_DENTRIES`. The agent keeps
//! the roots open ([`RootPins`]), which keeps those dentries, and so their
//! addresses, alive for as long as the programs run.

use std::{
    collections::HashSet,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use agent_common::{maps, maps::progs, RootDentry, RootKey};
use aya::{maps::HashMap as AyaHashMap, programs::TracePoint, Ebpf};

use super::event::root_key;
use crate::kernel::{prog_err, program, LoaderError};

/// The roots held open while the programs run (dropped with the sensors).
pub struct RootPins(#[allow(dead_code)] Vec<std::fs::File>);

impl RootPins {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Learn the dentry address of every existing directory in `paths` (each must
/// already be in `RAMPART_WATCH_ROOTS` with all its bits). Fails, naming the root,
/// when one was not learned: a walk that cannot find a root would take its files
/// for unwatched.
pub fn learn_roots(ebpf: &mut Ebpf, paths: &[PathBuf]) -> Result<RootPins, LoaderError> {
    let name = progs::LEARN_ROOT;
    let prog: &mut TracePoint = program(ebpf, name)?;
    if prog.fd().is_err() {
        prog.load().map_err(prog_err(name))?;
    }
    let link = prog
        .attach("syscalls", "sys_enter_fstatfs")
        .map_err(prog_err(name))?;
    let mut pins = Vec::new();
    let mut wanted: Vec<(RootKey, &Path)> = Vec::new();
    let mut learned = Ok(());
    for p in paths {
        let Ok(f) = std::fs::File::open(p) else {
            continue; // absent: watched by name only (see set_watch_prefixes)
        };
        let Ok(md) = f.metadata() else {
            continue;
        };
        if !md.is_dir() {
            continue;
        }
        // SAFETY: a valid fd and a statfs buffer we own.
        let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatfs(f.as_raw_fd(), &mut sfs) } != 0 {
            learned = Err(LoaderError::Root {
                path: p.display().to_string(),
                reason: format!("fstatfs: {}", std::io::Error::last_os_error()),
            });
            break;
        }
        wanted.push((root_key(&md), p));
        pins.push(f);
    }
    let prog: &mut TracePoint = program(ebpf, name)?;
    prog.detach(link).map_err(prog_err(name))?;
    learned?;
    let map = ebpf
        .map(maps::ROOT_DENTRIES)
        .ok_or(LoaderError::MissingMap(maps::ROOT_DENTRIES))?;
    let map: AyaHashMap<_, u64, RootDentry> =
        AyaHashMap::try_from(map).map_err(|source| LoaderError::Map {
            name: maps::ROOT_DENTRIES,
            source,
        })?;
    let have: HashSet<(u32, u64)> = map
        .iter()
        .filter_map(Result::ok)
        .map(|(_, v)| (v.dev, v.ino))
        .collect();
    for (key, p) in wanted {
        if !have.contains(&(key.dev, key.ino)) {
            return Err(LoaderError::Root {
                path: p.display().to_string(),
                reason: "its dentry was not learned (is it in RAMPART_WATCH_ROOTS?)".into(),
            });
        }
    }
    Ok(RootPins(pins))
}
