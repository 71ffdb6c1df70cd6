// SPDX-License-Identifier: GPL-2.0-only
//! Loading and attaching the kernel programs, sized from config.

use std::{
    ffi::CString,
    os::fd::{AsFd, AsRawFd},
    path::Path,
};

use agent_common::xdp::{port_policy, XdpConfig, PORT_BITMAP_WORDS};
use agent_common::{maps, maps::progs, NAME_MAX_LEN, PREFIX_MAX_LEN, WATCH_INCLUDE};
use aya::{
    maps::{lpm_trie::Key, Array, HashMap as AyaHashMap, LpmTrie, Map, MapData, MapInfo, MapType},
    programs::{
        links::FdLink, links::PinnedLink, xdp::XdpLink, ProgramError, TracePoint, Xdp, XdpMode,
    },
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
    #[error("pinning under {path}: {reason}")]
    Pin { path: String, reason: String },
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

/// Expected (type, key size, value size, capacity) of each pinned map.
fn pinned_layout(cfg: &Config, name: &str) -> Option<(MapType, u32, u32, u32)> {
    let fw = &cfg.firewall;
    Some(match name {
        maps::BLOCK_V4 => (MapType::LpmTrie, 8, 4, fw.max_entries_v4),
        maps::BLOCK_V6 => (MapType::LpmTrie, 20, 4, fw.max_entries_v6),
        maps::ALLOW_V4 => (MapType::LpmTrie, 8, 4, fw.max_allow_entries),
        maps::ALLOW_V6 => (MapType::LpmTrie, 20, 4, fw.max_allow_entries),
        _ => return None,
    })
}

/// Remove pinned maps whose layout or capacity no longer matches (an upgrade or a
/// config change): aya would reuse them blindly. The store reloads their contents.
fn drop_stale_pins(cfg: &Config) -> Result<(), LoaderError> {
    for name in maps::PINNED {
        let path = cfg.firewall.pin_dir.join(name);
        if !path.exists() {
            continue;
        }
        let Some((ty, k, v, max)) = pinned_layout(cfg, name) else {
            continue;
        };
        let ok = match MapInfo::from_pin(&path) {
            Ok(info) => {
                info.map_type().ok() == Some(ty)
                    && info.key_size() == k
                    && info.value_size() == v
                    && info.max_entries() == max
            }
            Err(_) => false,
        };
        if !ok {
            tracing::warn!(map = name, path = %path.display(), "Pinned map does not match this build/config; recreating it (the store refills it).");
            std::fs::remove_file(&path).map_err(|e| LoaderError::Pin {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        }
    }
    Ok(())
}

/// Load the object with every map sized from config; block/allow maps are pinned
/// under `firewall.pin_dir` (reused when they exist). Nothing is attached yet.
pub fn load(cfg: &Config) -> Result<Ebpf, LoaderError> {
    raise_memlock();
    let pin_dir = &cfg.firewall.pin_dir;
    std::fs::create_dir_all(pin_dir).map_err(|e| LoaderError::Pin {
        path: pin_dir.display().to_string(),
        reason: e.to_string(),
    })?;
    drop_stale_pins(cfg)?;
    let pending = cfg.sensors.max_open_files.clamp(1024, 65536);
    let fw = &cfg.firewall;
    let ebpf = EbpfLoader::new()
        .default_map_pin_directory(pin_dir)
        .map_max_entries(maps::EVENTS, cfg.sensors.ringbuf_bytes)
        .map_max_entries(maps::BLOCK_V4, fw.max_entries_v4)
        .map_max_entries(maps::BLOCK_V6, fw.max_entries_v6)
        .map_max_entries(maps::ALLOW_V4, fw.max_allow_entries)
        .map_max_entries(maps::ALLOW_V6, fw.max_allow_entries)
        .map_max_entries(maps::RATE_STATE, fw.max_tracked_sources)
        .map_max_entries(maps::SYN_STATE, fw.max_tracked_sources)
        .map_max_entries(maps::SCAN_STATE, fw.max_tracked_sources)
        .map_max_entries(maps::OPEN_WRITES, cfg.sensors.max_open_files)
        .map_max_entries(maps::OPEN_PENDING, pending)
        .map_max_entries(maps::PATH_PENDING, pending)
        .load(OBJECT)?;
    Ok(ebpf)
}

/// The maps that carry the runtime firewall policy.
pub struct PolicyMaps {
    pub config: Array<MapData, XdpConfig>,
    pub tcp: Array<MapData, u64>,
    pub udp: Array<MapData, u64>,
}

impl PolicyMaps {
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, LoaderError> {
        let arr = |ebpf: &mut Ebpf, name: &'static str| -> Result<Map, LoaderError> {
            take_map(ebpf, name)
        };
        Ok(Self {
            config: Array::try_from(arr(ebpf, maps::XDP_CONFIG)?).map_err(|source| {
                LoaderError::Map {
                    name: maps::XDP_CONFIG,
                    source,
                }
            })?,
            tcp: Array::try_from(arr(ebpf, maps::PORTS_TCP)?).map_err(|source| {
                LoaderError::Map {
                    name: maps::PORTS_TCP,
                    source,
                }
            })?,
            udp: Array::try_from(arr(ebpf, maps::PORTS_UDP)?).map_err(|source| {
                LoaderError::Map {
                    name: maps::PORTS_UDP,
                    source,
                }
            })?,
        })
    }

    /// Write `policy` to the kernel: ports first, then the config that enables them.
    pub fn apply(&mut self, policy: &config::FirewallPolicy) -> Result<(), LoaderError> {
        let mut flags = 0;
        for (specs, map, flag, name) in [
            (
                &policy.tcp_in,
                &mut self.tcp,
                port_policy::TCP,
                maps::PORTS_TCP,
            ),
            (
                &policy.udp_in,
                &mut self.udp,
                port_policy::UDP,
                maps::PORTS_UDP,
            ),
        ] {
            let bits = port_bitmap(specs);
            for (i, w) in bits.iter().enumerate() {
                map.set(i as u32, *w, 0)
                    .map_err(|source| LoaderError::Map { name, source })?;
            }
            if !specs.is_empty() {
                flags |= flag;
            }
        }
        let c = XdpConfig {
            rate_pps: policy.rate_limit.pps,
            rate_burst: policy.rate_limit.burst,
            syn_pps: policy.syn_limit.pps,
            syn_burst: policy.syn_limit.burst,
            scan_ports: policy.port_scan.ports,
            scan_window_ms: policy.port_scan.window_ms,
            port_policy: flags,
            sample_per_sec: policy.drop_samples_per_sec,
        };
        self.config.set(0, c, 0).map_err(|source| LoaderError::Map {
            name: maps::XDP_CONFIG,
            source,
        })
    }
}

/// 65536-bit bitmap of the ports in `specs`.
pub fn port_bitmap(specs: &[config::PortSpec]) -> Vec<u64> {
    let mut bits = vec![0u64; PORT_BITMAP_WORDS as usize];
    for s in specs {
        for p in s.first..=s.last {
            bits[usize::from(p / 64)] |= 1 << (p % 64);
        }
    }
    bits
}

pub fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, LoaderError> {
    ebpf.take_map(name).ok_or(LoaderError::MissingMap(name))
}

fn map_err(name: &'static str) -> impl Fn(aya::maps::MapError) -> LoaderError {
    move |source| LoaderError::Map { name, source }
}

/// Write the single entry of a one-entry `Array` (a policy or config map).
fn set_single<V: aya::Pod>(ebpf: &mut Ebpf, name: &'static str, v: V) -> Result<(), LoaderError> {
    let map = ebpf.map_mut(name).ok_or(LoaderError::MissingMap(name))?;
    let mut arr: Array<&mut MapData, V> = Array::try_from(map).map_err(map_err(name))?;
    arr.set(0, v, 0).map_err(map_err(name))
}

/// Insert each key with value 1 into a `HashMap<K, u32>` used as a set.
fn insert_set<K: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    keys: impl IntoIterator<Item = K>,
) -> Result<(), LoaderError> {
    let map = ebpf.map_mut(name).ok_or(LoaderError::MissingMap(name))?;
    let mut m: AyaHashMap<&mut MapData, K, u32> =
        AyaHashMap::try_from(map).map_err(map_err(name))?;
    for k in keys {
        m.insert(k, 1, 0).map_err(map_err(name))?;
    }
    Ok(())
}

/// Insert (prefix bits, path bytes) keys into one of the path LPM tries (watched
/// trees, world-writable trees, sensitive files).
fn insert_path_prefixes(
    ebpf: &mut Ebpf,
    name: &'static str,
    keys: impl IntoIterator<Item = (u32, [u8; PREFIX_MAX_LEN])>,
    value: u32,
) -> Result<(), LoaderError> {
    let map = ebpf.map_mut(name).ok_or(LoaderError::MissingMap(name))?;
    let mut trie: LpmTrie<&mut MapData, [u8; PREFIX_MAX_LEN], u32> =
        LpmTrie::try_from(map).map_err(map_err(name))?;
    for (bits, data) in keys {
        trie.insert(&Key::new(bits, data), value, 0)
            .map_err(map_err(name))?;
    }
    Ok(())
}

/// Write the watched trees into the kernel's watch trie ("/var/www" -> "/var/www/").
pub fn set_watch_prefixes(
    ebpf: &mut Ebpf,
    paths: &[std::path::PathBuf],
) -> Result<(), LoaderError> {
    insert_path_prefixes(
        ebpf,
        maps::WATCH_PREFIXES,
        paths.iter().map(|p| watch_key(p)),
        WATCH_INCLUDE,
    )
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

/// The file sensor's programs and the syscall tracepoints each one serves. The
/// first three are required; the others are attached where the syscall exists on
/// this architecture (arm64 has no open/creat/unlink/rename/chmod, older kernels no
/// openat2/fchmodat2). Exits are listed before enters: an enter without its exit
/// would only leave stale pending entries (LRU maps, so harmless, but pointless).
const FILE_TRACEPOINTS: &[(&str, &[&str], bool)] = &[
    (progs::SYS_EXIT_OPENAT, &["sys_exit_openat"], true),
    (progs::SYS_ENTER_OPENAT, &["sys_enter_openat"], true),
    (progs::SYS_ENTER_CLOSE, &["sys_enter_close"], true),
    (
        progs::SYS_EXIT_OPENAT,
        &["sys_exit_open", "sys_exit_creat", "sys_exit_openat2"],
        false,
    ),
    (progs::SYS_ENTER_OPEN, &["sys_enter_open"], false),
    (progs::SYS_ENTER_CREAT, &["sys_enter_creat"], false),
    (progs::SYS_ENTER_OPENAT2, &["sys_enter_openat2"], false),
    (
        progs::SYS_EXIT_PATH,
        &[
            "sys_exit_unlinkat",
            "sys_exit_unlink",
            "sys_exit_renameat",
            "sys_exit_renameat2",
            "sys_exit_rename",
            "sys_exit_fchmodat",
            "sys_exit_fchmodat2",
            "sys_exit_chmod",
            "sys_exit_fchmod",
        ],
        false,
    ),
    (progs::SYS_ENTER_UNLINKAT, &["sys_enter_unlinkat"], false),
    (progs::SYS_ENTER_UNLINK, &["sys_enter_unlink"], false),
    (
        progs::SYS_ENTER_RENAMEAT,
        &["sys_enter_renameat", "sys_enter_renameat2"],
        false,
    ),
    (progs::SYS_ENTER_RENAME, &["sys_enter_rename"], false),
    (
        progs::SYS_ENTER_FCHMODAT,
        &["sys_enter_fchmodat", "sys_enter_fchmodat2"],
        false,
    ),
    (progs::SYS_ENTER_CHMOD, &["sys_enter_chmod"], false),
    (progs::SYS_ENTER_FCHMOD, &["sys_enter_fchmod"], false),
];

/// Does this kernel have the syscall tracepoint `event`?
fn tracepoint_exists(event: &str) -> bool {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .any(|t| Path::new(t).join("events/syscalls").join(event).exists())
}

/// Load and attach the file sensor's tracepoints; one component per program.
pub fn attach_file_sensor(ebpf: &mut Ebpf) -> Result<Vec<Component>, LoaderError> {
    let mut out: Vec<Component> = Vec::new();
    for (name, events, required) in FILE_TRACEPOINTS {
        let name: &'static str = name;
        let prog: &mut TracePoint = ebpf
            .program_mut(name)
            .ok_or(LoaderError::MissingProgram(name))?
            .try_into()
            .map_err(|source| LoaderError::Program { name, source })?;
        if prog.fd().is_err() {
            prog.load()
                .map_err(|source| LoaderError::Program { name, source })?;
        }
        let mut attached = Vec::new();
        let mut missing = Vec::new();
        for event in *events {
            if !required && !tracepoint_exists(event) {
                missing.push(*event);
                continue;
            }
            prog.attach("syscalls", event)
                .map_err(|source| LoaderError::Program { name, source })?;
            attached.push(format!("syscalls:{event}"));
        }
        let reason =
            (!missing.is_empty()).then(|| format!("not on this kernel: {}", missing.join(", ")));
        match out.iter_mut().find(|c| c.name == name) {
            Some(c) => {
                if !attached.is_empty() {
                    c.target = format!("{},{}", c.target, attached.join(","));
                }
                if reason.is_some() {
                    c.reason = reason;
                }
            }
            None => out.push(Component {
                name: name.to_string(),
                kind: "tracepoint",
                target: attached.join(","),
                state: if attached.is_empty() {
                    "unavailable"
                } else {
                    "attached"
                },
                mode: None,
                reason,
            }),
        }
    }
    Ok(out)
}

/// Write the struct offsets resolved from BTF. Without them (no BTF, or a member
/// changed size) file events carry no inode metadata; the reason is returned.
pub fn set_kernel_offsets(ebpf: &mut Ebpf) -> Result<(), String> {
    let offsets = crate::btf::Btf::from_file(Path::new(crate::btf::VMLINUX))
        .and_then(|b| b.kernel_offsets())
        .map_err(|e| e.to_string())?;
    set_single(ebpf, maps::KERNEL_OFFSETS, offsets).map_err(|e| e.to_string())
}

/// Web-server UIDs and sensitive files for the sensitive-read report.
pub fn set_sensitive(
    ebpf: &mut Ebpf,
    web_uids: &[u32],
    paths: &[std::path::PathBuf],
    names: &[String],
) -> Result<(), LoaderError> {
    insert_set(ebpf, maps::WEB_UIDS, web_uids.iter().copied())?;
    insert_path_prefixes(
        ebpf,
        maps::SENSITIVE_PREFIXES,
        paths.iter().map(|p| sensitive_key(p)),
        1,
    )?;
    insert_set(
        ebpf,
        maps::SENSITIVE_NAMES,
        names.iter().map(|n| {
            let mut key = [0u8; NAME_MAX_LEN];
            let b = n.as_bytes();
            // Config validation keeps names shorter than NAME_MAX_LEN.
            let len = b.len().min(NAME_MAX_LEN - 1);
            key[..len].copy_from_slice(&b[..len]);
            key
        }),
    )
}

/// Sensitive files by (kernel dev_t, inode) for the LSM file_open hook, and the
/// enforcement mode. Paths that do not exist (yet) are skipped and returned.
pub fn set_sensitive_inodes(
    ebpf: &mut Ebpf,
    paths: &[std::path::PathBuf],
    mode: u32,
) -> Result<Vec<std::path::PathBuf>, LoaderError> {
    use std::os::unix::fs::MetadataExt;
    let mut missing = Vec::new();
    let mut keys = Vec::new();
    for p in paths {
        match std::fs::metadata(p) {
            Ok(md) if md.is_file() => {
                let dev = md.dev();
                // Userspace st_dev -> the kernel's dev_t (major << 20 | minor).
                let kdev = (u64::from(libc::major(dev)) << 20) | u64::from(libc::minor(dev));
                keys.push([kdev, md.ino()]);
            }
            _ => missing.push(p.clone()),
        }
    }
    insert_set(ebpf, maps::SENSITIVE_INODES, keys)?;
    set_single(ebpf, maps::SENSITIVE_MODE, mode)?;
    Ok(missing)
}

/// LPM key for a sensitive path: a tree ("/root/.ssh/", trailing slash) matches
/// everything under it; a file ("/etc/shadow") matches exactly, its NUL included.
pub fn sensitive_key(p: &std::path::Path) -> (u32, [u8; PREFIX_MAX_LEN]) {
    let s = p.to_string_lossy();
    let mut b = s.as_bytes().to_vec();
    if !s.ends_with('/') {
        b.push(0);
    }
    let n = b.len().min(PREFIX_MAX_LEN);
    let mut data = [0u8; PREFIX_MAX_LEN];
    data[..n].copy_from_slice(&b[..n]);
    ((n * 8) as u32, data)
}

/// An XDP attachment whose link is pinned under the pin dir, so it outlives the agent
/// (kill -9, crash). `detach` removes the pin; dropping the last fd then detaches.
pub struct XdpAttachment {
    pub component: Component,
    link: FdLink,
    pin: std::path::PathBuf,
}

impl XdpAttachment {
    /// Remove the pin and detach (clean shutdown).
    pub fn detach(self) {
        if let Err(e) = std::fs::remove_file(&self.pin) {
            tracing::warn!(pin = %self.pin.display(), error = %e, "Removing the XDP link pin failed.");
        }
        drop(self.link);
    }
}

/// Attach the XDP program to `iface` and pin the link. If a pinned link from an
/// earlier run exists (the agent was killed), the new program replaces the old one
/// on that link atomically: there is no moment without enforcement.
pub fn attach_xdp(
    ebpf: &mut Ebpf,
    iface: &str,
    mode: config::XdpMode,
    pin_dir: &Path,
) -> Result<XdpAttachment, LoaderError> {
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
    let pin = pin_dir.join(format!("link_xdp_{iface}"));
    let xerr = |source| LoaderError::XdpAttach {
        iface: iface.to_string(),
        source,
    };
    let to_fd = |prog: &mut Xdp, id| -> Result<FdLink, LoaderError> {
        let link = prog.take_link(id).map_err(xerr)?;
        FdLink::try_from(link).map_err(|e| LoaderError::Pin {
            path: pin.display().to_string(),
            reason: format!("XDP attached through netlink, cannot pin the link: {e}"),
        })
    };
    if pin.exists() {
        match PinnedLink::from_pin(&pin) {
            Ok(pinned) => {
                let old: FdLink = pinned.into();
                let xdp_link = XdpLink::try_from(old).map_err(|e| LoaderError::Pin {
                    path: pin.display().to_string(),
                    reason: e.to_string(),
                })?;
                let id = prog.attach_to_link(xdp_link).map_err(xerr)?;
                let link = to_fd(prog, id)?;
                return Ok(XdpAttachment {
                    component: Component {
                        name: name.to_string(),
                        kind: "xdp",
                        target: iface.to_string(),
                        state: "attached",
                        mode: None,
                        reason: Some(
                            "replaced the program on the link pinned by the previous run".into(),
                        ),
                    },
                    link,
                    pin,
                });
            }
            Err(e) => {
                tracing::warn!(pin = %pin.display(), error = %e, "Stale XDP link pin; removing it.");
                let _ = std::fs::remove_file(&pin);
            }
        }
    }
    let attempts: &[(XdpMode, &'static str)] = match mode {
        config::XdpMode::Auto => &[(XdpMode::Driver, "native"), (XdpMode::Skb, "generic")],
        config::XdpMode::Native => &[(XdpMode::Driver, "native")],
        config::XdpMode::Generic => &[(XdpMode::Skb, "generic")],
    };
    let mut last = None;
    for (m, label) in attempts {
        match prog.attach(iface, *m) {
            Ok(id) => {
                let link = to_fd(prog, id)?;
                let pinned = link.pin(&pin).map_err(|e| LoaderError::Pin {
                    path: pin.display().to_string(),
                    reason: e.to_string(),
                })?;
                let reason = last
                    .take()
                    .map(|e: ProgramError| format!("native refused: {e}"));
                return Ok(XdpAttachment {
                    component: Component {
                        name: name.to_string(),
                        kind: "xdp",
                        target: iface.to_string(),
                        state: "attached",
                        mode: Some(label),
                        reason,
                    },
                    link: pinned.into(),
                    pin,
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

/// Open the pinned block/allow maps of a running (or killed) agent, for the CLI.
/// None when the agent has not pinned them yet.
pub fn open_pinned_lists(
    pin_dir: &Path,
) -> Result<Option<crate::firewall::KernelLists>, LoaderError> {
    let open = |name: &'static str| -> Result<Option<MapData>, LoaderError> {
        let p = pin_dir.join(name);
        if !p.exists() {
            return Ok(None);
        }
        MapData::from_pin(&p)
            .map(Some)
            .map_err(|source| LoaderError::Map { name, source })
    };
    let (Some(b4), Some(b6), Some(a4), Some(a6)) = (
        open(maps::BLOCK_V4)?,
        open(maps::BLOCK_V6)?,
        open(maps::ALLOW_V4)?,
        open(maps::ALLOW_V6)?,
    ) else {
        return Ok(None);
    };
    fn lpm<const N: usize>(
        m: MapData,
        name: &'static str,
    ) -> Result<LpmTrie<MapData, [u8; N], agent_common::xdp::BlockValue>, LoaderError> {
        LpmTrie::try_from(Map::LpmTrie(m)).map_err(|source| LoaderError::Map { name, source })
    }
    Ok(Some(crate::firewall::KernelLists {
        block_v4: lpm(b4, maps::BLOCK_V4)?,
        block_v6: lpm(b6, maps::BLOCK_V6)?,
        allow_v4: lpm(a4, maps::ALLOW_V4)?,
        allow_v6: lpm(a6, maps::ALLOW_V6)?,
    }))
}

/// A sensor's kernel mode from its `enforce`/`dry_run` switches: enforcement is
/// always dry run first.
pub fn enforcement_mode(enforce: bool, dry_run: bool) -> u32 {
    use agent_common::egress::mode;
    match (enforce, dry_run) {
        (false, _) => mode::OBSERVE,
        (true, true) => mode::DRY_RUN,
        (true, false) => mode::ENFORCE,
    }
}

/// The mode's name for /api/v1/components.
pub fn mode_label(m: u32) -> &'static str {
    use agent_common::egress::mode;
    match m {
        mode::ENFORCE => "enforce",
        mode::DRY_RUN => "dry_run",
        _ => "observe",
    }
}

/// Can this kernel run BPF-LSM programs? Loads (does not attach) the probe program.
/// Err carries the reason, e.g. "BPF_PROG_LOAD: Operation not permitted (os error 1)".
pub fn probe_lsm(ebpf: &mut Ebpf) -> Result<(), String> {
    load_lsm(
        ebpf,
        &kernel_btf()?,
        progs::LSM_PROBE,
        "bprm_check_security",
    )
}

/// The kernel's BTF as aya needs it to load LSM programs (parsed once per caller).
pub fn kernel_btf() -> Result<aya::Btf, String> {
    aya::Btf::from_sys_fs().map_err(|e| format!("no kernel BTF: {e}"))
}

/// The LSM sensor programs and their hooks: loaded and attached only where the probe
/// passed (exec deny, SMTP egress deny, sensitive-read deny).
pub const LSM_SENSORS: &[(&str, &str)] = &[
    (progs::LSM_BPRM_CHECK, "bprm_check_security"),
    (progs::LSM_SOCKET_CONNECT, "socket_connect"),
    (progs::LSM_FILE_OPEN, "file_open"),
];

/// Attach the LSM sensors (after a successful probe). Returns a component each.
pub fn attach_lsm_sensors(ebpf: &mut Ebpf) -> Vec<Component> {
    use aya::programs::Lsm;
    let btf = kernel_btf();
    LSM_SENSORS
        .iter()
        .map(|(name, hook)| {
            let res = btf
                .as_ref()
                .map_err(String::clone)
                .and_then(|btf| load_lsm(ebpf, btf, name, hook))
                .and_then(|()| {
                    let prog: &mut Lsm = ebpf
                        .program_mut(name)
                        .ok_or_else(|| format!("program {name} missing"))?
                        .try_into()
                        .map_err(|e: ProgramError| e.to_string())?;
                    prog.attach().map(|_| ()).map_err(|e| e.to_string())
                });
            Component {
                name: name.to_string(),
                kind: "lsm",
                target: hook.to_string(),
                state: if res.is_ok() { "attached" } else { "failed" },
                mode: None,
                reason: res.err(),
            }
        })
        .collect()
}

/// Load one LSM program for `hook`; the error says why (e.g. "BPF_PROG_LOAD:
/// Operation not permitted (bpf is in the active LSM list)").
pub fn load_lsm(ebpf: &mut Ebpf, btf: &aya::Btf, name: &str, hook: &str) -> Result<(), String> {
    use aya::programs::Lsm;
    let prog: &mut Lsm = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("program {name} missing from the object"))?
        .try_into()
        .map_err(|e: ProgramError| e.to_string())?;
    prog.load(hook, btf).map_err(|e| {
        let listed = std::fs::read_to_string("/sys/kernel/security/lsm")
            .map(|l| l.trim().split(',').any(|m| m == "bpf"))
            .unwrap_or(false);
        let why = match &e {
            ProgramError::LoadError { io_error, .. } => format!("BPF_PROG_LOAD: {io_error}"),
            other => other.to_string(),
        };
        let lsm = if listed {
            "bpf is in the active LSM list"
        } else {
            "bpf is not in the active LSM list"
        };
        format!("{why} ({lsm})")
    })
}

/// The mount point of the cgroup v2 (unified) hierarchy.
pub fn cgroup2_root() -> Option<std::path::PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        (post.split(' ').next() == Some("cgroup2"))
            .then(|| pre.split(' ').nth(4).map(std::path::PathBuf::from))?
    })
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

/// Attach the connect4/connect6 programs to the configured cgroup and write the egress
/// policy. Returns the components. The attachment is a bpf_link, which always coexists
/// with other links on the cgroup; aya passes the mode as link flags, and links take
/// no ALLOW_MULTI flag (EINVAL), so the mode is `Single`.
pub fn attach_egress(ebpf: &mut Ebpf, cfg: &config::Egress) -> Result<Vec<Component>, LoaderError> {
    use agent_common::egress::{EgressConfig, MAX_EGRESS_PORTS};
    use aya::programs::{links::CgroupAttachMode, CgroupSockAddr};

    let dir = if cfg.cgroup.as_os_str().is_empty() {
        cgroup2_root().ok_or(LoaderError::Pin {
            path: "cgroup2".into(),
            reason: "no cgroup v2 mount found".into(),
        })?
    } else {
        cfg.cgroup.clone()
    };
    let cg = std::fs::File::open(&dir).map_err(|e| LoaderError::Pin {
        path: dir.display().to_string(),
        reason: format!("opening the cgroup: {e}"),
    })?;
    // Policy first, so the programs enforce the right thing from their first call.
    let mut ports = [0u16; MAX_EGRESS_PORTS];
    for (slot, p) in ports.iter_mut().zip(&cfg.smtp_ports) {
        *slot = *p;
    }
    let policy = EgressConfig {
        mode: enforcement_mode(cfg.enforce, cfg.dry_run),
        all_connects: u32::from(cfg.all_connects),
        nports: cfg.smtp_ports.len().min(MAX_EGRESS_PORTS) as u32,
        _pad: 0,
        ports,
    };
    set_single(ebpf, maps::EGRESS_CONFIG, policy)?;
    let (uids, unknown) = resolve_uids(&cfg.safe_users);
    if !unknown.is_empty() {
        tracing::debug!(users = ?unknown, "egress.safe_users not on this host; skipped.");
    }
    insert_set(ebpf, maps::SAFE_UIDS, uids)?;
    let mut out = Vec::new();
    for name in [progs::CONNECT4, progs::CONNECT6] {
        let prog: &mut CgroupSockAddr = ebpf
            .program_mut(name)
            .ok_or(LoaderError::MissingProgram(name))?
            .try_into()
            .map_err(|source| LoaderError::Program { name, source })?;
        prog.load()
            .map_err(|source| LoaderError::Program { name, source })?;
        prog.attach(&cg, CgroupAttachMode::Single)
            .map_err(|source| LoaderError::Program { name, source })?;
        out.push(Component {
            name: name.to_string(),
            kind: "cgroup_sock_addr",
            target: dir.display().to_string(),
            state: "attached",
            mode: Some(mode_label(policy.mode)),
            reason: None,
        });
    }
    Ok(out)
}

/// Attach the exec sensor to `sched:sched_process_exec` with its policy, scope and
/// world-writable trees.
pub fn attach_exec(ebpf: &mut Ebpf, cfg: &config::Exec) -> Result<Component, LoaderError> {
    use std::os::unix::fs::MetadataExt;

    use agent_common::{exec::ExecConfig, WATCH_INCLUDE};
    let policy = ExecConfig {
        mode: enforcement_mode(cfg.enforce, cfg.dry_run),
        scoped: u32::from(!cfg.cgroup.as_os_str().is_empty()),
        all_execs: u32::from(cfg.all_execs),
        _pad: 0,
    };
    if policy.scoped != 0 {
        // A cgroup v2 id is its directory's inode number.
        let id = std::fs::metadata(&cfg.cgroup)
            .map_err(|e| LoaderError::Pin {
                path: cfg.cgroup.display().to_string(),
                reason: e.to_string(),
            })?
            .ino();
        insert_set(ebpf, maps::EXEC_SCOPE, [id])?;
    }
    insert_path_prefixes(
        ebpf,
        maps::EXEC_DENY_PREFIXES,
        cfg.world_writable.iter().map(|p| watch_key(p)),
        WATCH_INCLUDE,
    )?;
    set_single(ebpf, maps::EXEC_CONFIG, policy)?;
    let name = progs::SCHED_PROCESS_EXEC;
    let prog: &mut TracePoint = ebpf
        .program_mut(name)
        .ok_or(LoaderError::MissingProgram(name))?
        .try_into()
        .map_err(|source| LoaderError::Program { name, source })?;
    prog.load()
        .map_err(|source| LoaderError::Program { name, source })?;
    prog.attach("sched", "sched_process_exec")
        .map_err(|source| LoaderError::Program { name, source })?;
    Ok(Component {
        name: name.to_string(),
        kind: "tracepoint",
        target: "sched:sched_process_exec".into(),
        state: "attached",
        mode: Some(mode_label(policy.mode)),
        reason: None,
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

/// BPF_MAP_UPDATE_BATCH: insert `count` keys/values (packed arrays) in one syscall.
/// Returns how many the kernel applied; Err(EINVAL/ENOTSUPP) where the map type has
/// no batch operations.
pub fn map_update_batch(
    map_fd: std::os::fd::BorrowedFd<'_>,
    keys: &[u8],
    values: &[u8],
    count: u32,
) -> std::io::Result<u32> {
    // union bpf_attr, `batch` member.
    #[repr(C)]
    #[derive(Default)]
    struct BatchAttr {
        in_batch: u64,
        out_batch: u64,
        keys: u64,
        values: u64,
        count: u32,
        map_fd: u32,
        elem_flags: u64,
        flags: u64,
        _pad: [u64; 8],
    }
    const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
    let mut attr = BatchAttr {
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count,
        map_fd: map_fd.as_raw_fd() as u32,
        ..Default::default()
    };
    // SAFETY: keys/values outlive the call and hold `count` packed elements (the
    // caller's contract); attr is the command's zero-padded bpf_attr member.
    unsafe { sys_bpf(BPF_MAP_UPDATE_BATCH, &mut attr) }?;
    Ok(attr.count)
}

/// The bpf(2) syscall with `attr` as the command's `union bpf_attr` member.
///
/// # Safety
/// `attr` must be the repr(C), zero-padded member `cmd` expects, and every pointer in
/// it must be valid for what the kernel reads or writes during the call.
unsafe fn sys_bpf<A>(cmd: libc::c_long, attr: &mut A) -> std::io::Result<()> {
    // SAFETY: the caller's contract.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut A,
            std::mem::size_of::<A>() as u32,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
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
    // SAFETY: data outlives the call; attr is the command's zero-padded member.
    unsafe { sys_bpf(BPF_PROG_TEST_RUN, &mut attr) }?;
    Ok(TestRun {
        retval: attr.retval,
        duration_ns: attr.duration,
    })
}
