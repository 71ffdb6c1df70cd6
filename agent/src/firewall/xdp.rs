// SPDX-License-Identifier: GPL-2.0-only
//! The XDP firewall's kernel side: policy maps, attach (with a pinned link that
//! outlives the agent), the pinned block/allow lists, and a test-run load.

use std::{
    os::fd::{AsFd, AsRawFd},
    path::Path,
};

use agent_common::{
    maps::{self, progs},
    xdp::{port_policy, XdpConfig, PORT_BITMAP_WORDS},
};
use aya::{
    maps::{Array, LpmTrie, Map, MapData},
    programs::{links::FdLink, links::PinnedLink, xdp::XdpLink, ProgramError, Xdp, XdpMode},
    Ebpf,
};

use super::lists::KernelLists;
use crate::{
    config,
    kernel::{prog_err, program, take_map, Component, ComponentState, LoaderError},
};

/// The maps that carry the runtime firewall policy.
pub struct PolicyMaps {
    pub config: Array<MapData, XdpConfig>,
    pub tcp: Array<MapData, u64>,
    pub udp: Array<MapData, u64>,
    /// Enforcement off (Cerberus disabled): rules are evaluated, nothing is dropped.
    pub monitor: bool,
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
            monitor: false,
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
            monitor: u32::from(self.monitor),
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
    let prog = loaded_xdp(ebpf)?;
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
                        state: ComponentState::Attached,
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
                        state: ComponentState::Attached,
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
pub fn open_pinned_lists(pin_dir: &Path) -> Result<Option<KernelLists>, LoaderError> {
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
    Ok(Some(KernelLists {
        block_v4: lpm(b4, maps::BLOCK_V4)?,
        block_v6: lpm(b6, maps::BLOCK_V6)?,
        allow_v4: lpm(a4, maps::ALLOW_V4)?,
        allow_v6: lpm(a6, maps::ALLOW_V6)?,
    }))
}

/// The XDP program, loaded (once).
fn loaded_xdp(ebpf: &mut Ebpf) -> Result<&mut Xdp, LoaderError> {
    let name = progs::XDP_FIREWALL;
    let prog: &mut Xdp = program(ebpf, name)?;
    if prog.fd().is_err() {
        prog.load().map_err(prog_err(name))?;
    }
    Ok(prog)
}

/// Load the XDP program without attaching it (for BPF_PROG_TEST_RUN).
pub fn load_xdp(ebpf: &mut Ebpf) -> Result<std::os::fd::RawFd, LoaderError> {
    let name = progs::XDP_FIREWALL;
    let prog = loaded_xdp(ebpf)?;
    let fd = prog.fd().map_err(prog_err(name))?;
    Ok(fd.as_fd().as_raw_fd())
}
