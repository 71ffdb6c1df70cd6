// SPDX-License-Identifier: GPL-2.0-only
//! Loading and attaching the kernel programs, sized from config.

use std::{
    ffi::CString,
    os::fd::{AsFd, AsRawFd},
    path::Path,
};

use agent_common::{maps, maps::progs, PREFIX_MAX_LEN, WATCH_INCLUDE};
use aya::{
    maps::{lpm_trie::Key, LpmTrie, Map, MapData},
    programs::{ProgramError, TracePoint, Xdp, XdpMode},
    Ebpf, EbpfLoader,
};
use serde::Serialize;

use crate::config::{self, Config};

/// The kernel object built by build.rs from agent-ebpf.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/agent-ebpf.o"));

#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error("loading the eBPF object: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("program {name}: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("map {0} missing from the eBPF object")]
    MissingMap(&'static str),
    #[error("program {0} missing from the eBPF object")]
    MissingProgram(&'static str),
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("mounting {target}: {source}")]
    Mount {
        target: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("XDP on {iface}: {source}")]
    XdpAttach {
        iface: String,
        #[source]
        source: ProgramError,
    },
}

/// State of one kernel component, for /api/v1/components and /api/v1/health.
#[derive(Clone, Debug, Serialize)]
pub struct Component {
    pub name: String,
    pub kind: &'static str,
    pub target: String,
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn mount_if_missing(target: &'static str, fstype: &str) -> Result<(), LoaderError> {
    let marker = match fstype {
        "tracefs" => "events",
        _ => "",
    };
    let p = Path::new(target);
    if is_mountpoint(target) || (!marker.is_empty() && p.join(marker).exists()) {
        return Ok(());
    }
    std::fs::create_dir_all(p).map_err(|source| LoaderError::Mount { target, source })?;
    let c = |s: &str| {
        CString::new(s).map_err(|e| LoaderError::Mount {
            target,
            source: std::io::Error::other(e),
        })
    };
    let (src, dst, ty) = (c(fstype)?, c(target)?, c(fstype)?);
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), ty.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        return Err(LoaderError::Mount {
            target,
            source: std::io::Error::last_os_error(),
        });
    }
    tracing::info!(target, fstype, "Mounted.");
    Ok(())
}

fn is_mountpoint(target: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().any(|l| l.split(' ').nth(4) == Some(target)))
        .unwrap_or(false)
}

/// Mount tracefs (tracepoint ids) and bpffs (pins) where they are missing.
pub fn ensure_mounts() -> Result<(), LoaderError> {
    mount_if_missing("/sys/kernel/tracing", "tracefs")?;
    mount_if_missing("/sys/fs/bpf", "bpf")?;
    Ok(())
}

/// Raise RLIMIT_MEMLOCK for kernels that still charge BPF memory to it (< 5.11).
pub fn raise_memlock() {
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "Could not raise RLIMIT_MEMLOCK.");
    }
}

/// Load the object with every map sized from config. Nothing is attached yet.
pub fn load(cfg: &Config) -> Result<Ebpf, LoaderError> {
    raise_memlock();
    let pending = cfg.sensors.max_open_files.clamp(1024, 65536);
    let ebpf = EbpfLoader::new()
        .map_max_entries(maps::EVENTS, cfg.sensors.ringbuf_bytes)
        .map_max_entries(maps::BLOCK_V4, cfg.firewall.max_entries_v4)
        .map_max_entries(maps::BLOCK_V6, cfg.firewall.max_entries_v6)
        .map_max_entries(maps::OPEN_WRITES, cfg.sensors.max_open_files)
        .map_max_entries(maps::OPEN_PENDING, pending)
        .load(OBJECT)?;
    Ok(ebpf)
}

pub fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, LoaderError> {
    ebpf.take_map(name).ok_or(LoaderError::MissingMap(name))
}

/// Write the watched trees into the kernel's watch trie ("/var/www" -> "/var/www/").
pub fn set_watch_prefixes(
    ebpf: &mut Ebpf,
    paths: &[std::path::PathBuf],
) -> Result<(), LoaderError> {
    let map = ebpf
        .map_mut(maps::WATCH_PREFIXES)
        .ok_or(LoaderError::MissingMap(maps::WATCH_PREFIXES))?;
    let mut trie: LpmTrie<&mut MapData, [u8; PREFIX_MAX_LEN], u32> = LpmTrie::try_from(map)
        .map_err(|source| LoaderError::Map {
            name: maps::WATCH_PREFIXES,
            source,
        })?;
    for p in paths {
        let (bits, data) = watch_key(p);
        trie.insert(&Key::new(bits, data), WATCH_INCLUDE, 0)
            .map_err(|source| LoaderError::Map {
                name: maps::WATCH_PREFIXES,
                source,
            })?;
    }
    Ok(())
}

/// The watch-trie key for a tree: its path with a trailing '/', as a bit prefix.
/// Config validation keeps paths shorter than PREFIX_MAX_LEN; longer ones are cut
/// (which only widens the match; userspace filters again).
pub fn watch_key(p: &std::path::Path) -> (u32, [u8; PREFIX_MAX_LEN]) {
    let mut s = p.to_string_lossy().into_owned();
    if !s.ends_with('/') {
        s.push('/');
    }
    let b = s.as_bytes();
    let n = b.len().min(PREFIX_MAX_LEN);
    let mut data = [0u8; PREFIX_MAX_LEN];
    data[..n].copy_from_slice(&b[..n]);
    ((n * 8) as u32, data)
}

/// Load and attach the file sensor's tracepoints.
pub fn attach_file_sensor(ebpf: &mut Ebpf) -> Result<Vec<Component>, LoaderError> {
    let mut out = Vec::new();
    for (name, category, event) in [
        (progs::SYS_ENTER_OPENAT, "syscalls", "sys_enter_openat"),
        (progs::SYS_EXIT_OPENAT, "syscalls", "sys_exit_openat"),
        (progs::SYS_ENTER_CLOSE, "syscalls", "sys_enter_close"),
    ] {
        let prog: &mut TracePoint = ebpf
            .program_mut(name)
            .ok_or(LoaderError::MissingProgram(name))?
            .try_into()
            .map_err(|source| LoaderError::Program { name, source })?;
        prog.load()
            .map_err(|source| LoaderError::Program { name, source })?;
        prog.attach(category, event)
            .map_err(|source| LoaderError::Program { name, source })?;
        out.push(Component {
            name: name.to_string(),
            kind: "tracepoint",
            target: format!("{category}:{event}"),
            state: "attached",
            mode: None,
            reason: None,
        });
    }
    Ok(out)
}

/// Load the XDP program (once) and attach it to `iface`, native first when `mode` is auto.
pub fn attach_xdp(
    ebpf: &mut Ebpf,
    iface: &str,
    mode: config::XdpMode,
) -> Result<Component, LoaderError> {
    let name = progs::XDP_FIREWALL;
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .ok_or(LoaderError::MissingProgram(name))?
        .try_into()
        .map_err(|source| LoaderError::Program { name, source })?;
    if prog.fd().is_err() {
        prog.load()
            .map_err(|source| LoaderError::Program { name, source })?;
    }
    let attempts: &[(XdpMode, &'static str)] = match mode {
        config::XdpMode::Auto => &[(XdpMode::Driver, "native"), (XdpMode::Skb, "generic")],
        config::XdpMode::Native => &[(XdpMode::Driver, "native")],
        config::XdpMode::Generic => &[(XdpMode::Skb, "generic")],
    };
    let mut last = None;
    for (m, label) in attempts {
        match prog.attach(iface, *m) {
            Ok(_) => {
                let reason = last
                    .take()
                    .map(|e: ProgramError| format!("native refused: {e}"));
                return Ok(Component {
                    name: name.to_string(),
                    kind: "xdp",
                    target: iface.to_string(),
                    state: "attached",
                    mode: Some(label),
                    reason,
                });
            }
            Err(e) => {
                tracing::warn!(iface, mode = label, error = %e, "XDP attach failed.");
                last = Some(e);
            }
        }
    }
    Err(LoaderError::XdpAttach {
        iface: iface.to_string(),
        source: last.unwrap_or(ProgramError::AlreadyAttached),
    })
}

/// Load the XDP program without attaching it (for BPF_PROG_TEST_RUN).
pub fn load_xdp(ebpf: &mut Ebpf) -> Result<std::os::fd::RawFd, LoaderError> {
    let name = progs::XDP_FIREWALL;
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .ok_or(LoaderError::MissingProgram(name))?
        .try_into()
        .map_err(|source| LoaderError::Program { name, source })?;
    if prog.fd().is_err() {
        prog.load()
            .map_err(|source| LoaderError::Program { name, source })?;
    }
    let fd = prog
        .fd()
        .map_err(|source| LoaderError::Program { name, source })?;
    Ok(fd.as_fd().as_raw_fd())
}

/// Result of one BPF_PROG_TEST_RUN.
#[derive(Debug, Clone, Copy)]
pub struct TestRun {
    pub retval: u32,
    /// Mean ns per run as measured by the kernel.
    pub duration_ns: u32,
}

/// Run a loaded program on `data` `repeat` times in the kernel (BPF_PROG_TEST_RUN).
pub fn test_run(prog_fd: std::os::fd::RawFd, data: &[u8], repeat: u32) -> std::io::Result<TestRun> {
    // union bpf_attr, `test` member (include/uapi/linux/bpf.h).
    #[repr(C)]
    #[derive(Default)]
    struct TestAttr {
        prog_fd: u32,
        retval: u32,
        data_size_in: u32,
        data_size_out: u32,
        data_in: u64,
        data_out: u64,
        repeat: u32,
        duration: u32,
        ctx_size_in: u32,
        ctx_size_out: u32,
        ctx_in: u64,
        ctx_out: u64,
        flags: u32,
        cpu: u32,
        batch_size: u32,
        _pad: [u32; 9],
    }
    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    let mut attr = TestAttr {
        prog_fd: prog_fd as u32,
        data_size_in: data.len() as u32,
        data_in: data.as_ptr() as u64,
        repeat,
        ..Default::default()
    };
    // SAFETY: attr is a valid, zero-padded bpf_attr; data outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestAttr,
            std::mem::size_of::<TestAttr>() as u32,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(TestRun {
        retval: attr.retval,
        duration_ns: attr.duration,
    })
}
