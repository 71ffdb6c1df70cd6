// SPDX-License-Identifier: GPL-2.0-only
//! IP/CIDR blocking and allowing. SQLite is the source of truth; the pinned XDP LPM
//! tries enforce it. Every change is audited.

use std::{collections::HashSet, net::IpAddr, sync::Mutex};

use agent_common::xdp::BlockValue;
use api::model::BlockEntry;
use std::os::fd::AsFd;

use aya::maps::{lpm_trie::Key, IterableMap, LpmTrie, MapData};
use ipnet::IpNet;
use serde::Serialize;

use crate::store::{now_rfc3339, rfc3339, FwList, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// Malformed input (400).
    #[error("{0}")]
    Invalid(String),
    /// Well-formed but refused by policy (422).
    #[error("{0}")]
    Refused(String),
    /// Nothing to act on (404).
    #[error("{0}")]
    NotFound(String),
    /// Bad lines in a bulk import: (line number, reason). Nothing was applied.
    #[error("{} bad line(s); nothing applied: {}", .0.len(), .0.iter().take(5).map(|(n, e)| format!("line {n}: {e}")).collect::<Vec<_>>().join("; "))]
    Import(Vec<(usize, String)>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("updating the kernel map: {0}")]
    Map(#[from] aya::maps::MapError),
}

/// Parse an IP or CIDR the way an operator writes it (see [`crate::config::parse_net`]).
pub fn parse_target(input: &str, force: bool) -> Result<IpNet, FirewallError> {
    crate::config::parse_net(input, force).map_err(FirewallError::Invalid)
}

/// Canonical text: a bare address for host routes, CIDR otherwise.
pub fn canonical(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

/// The four pinned tries.
pub struct KernelLists {
    pub block_v4: LpmTrie<MapData, [u8; 4], BlockValue>,
    pub block_v6: LpmTrie<MapData, [u8; 16], BlockValue>,
    pub allow_v4: LpmTrie<MapData, [u8; 4], BlockValue>,
    pub allow_v6: LpmTrie<MapData, [u8; 16], BlockValue>,
}

/// Removing an absent key is not an error (aya reports it as KeyNotFound or as the
/// delete syscall's ENOENT).
fn ignore_missing(r: Result<(), aya::maps::MapError>) -> Result<(), aya::maps::MapError> {
    match r {
        Err(aya::maps::MapError::KeyNotFound) => Ok(()),
        Err(aya::maps::MapError::SyscallError(e))
            if e.io_error.raw_os_error() == Some(libc::ENOENT) =>
        {
            Ok(())
        }
        other => other,
    }
}

impl KernelLists {
    fn insert(&mut self, list: FwList, net: &IpNet) -> Result<(), aya::maps::MapError> {
        let (v4, v6) = match list {
            FwList::Blocks => (&mut self.block_v4, &mut self.block_v6),
            FwList::Allows => (&mut self.allow_v4, &mut self.allow_v6),
        };
        match net {
            IpNet::V4(n) => v4.insert(
                &Key::new(u32::from(n.prefix_len()), n.addr().octets()),
                1,
                0,
            ),
            IpNet::V6(n) => v6.insert(
                &Key::new(u32::from(n.prefix_len()), n.addr().octets()),
                1,
                0,
            ),
        }
    }

    fn remove(&mut self, list: FwList, net: &IpNet) -> Result<(), aya::maps::MapError> {
        let (v4, v6) = match list {
            FwList::Blocks => (&mut self.block_v4, &mut self.block_v6),
            FwList::Allows => (&mut self.allow_v4, &mut self.allow_v6),
        };
        ignore_missing(match net {
            IpNet::V4(n) => v4.remove(&Key::new(u32::from(n.prefix_len()), n.addr().octets())),
            IpNet::V6(n) => v6.remove(&Key::new(u32::from(n.prefix_len()), n.addr().octets())),
        })
    }

    /// Insert many entries with BPF_MAP_UPDATE_BATCH (64k per syscall); per-entry
    /// updates where the kernel has no batch support for LPM tries.
    fn insert_many(&mut self, list: FwList, nets: &[IpNet]) -> Result<(), aya::maps::MapError> {
        const CHUNK: usize = 65536;
        let (v4, v6) = match list {
            FwList::Blocks => (&mut self.block_v4, &mut self.block_v6),
            FwList::Allows => (&mut self.allow_v4, &mut self.allow_v6),
        };
        let mut k4 = Vec::new();
        let mut k6 = Vec::new();
        for n in nets {
            match n {
                IpNet::V4(n) => {
                    k4.extend_from_slice(&u32::from(n.prefix_len()).to_ne_bytes());
                    k4.extend_from_slice(&n.addr().octets());
                }
                IpNet::V6(n) => {
                    k6.extend_from_slice(&u32::from(n.prefix_len()).to_ne_bytes());
                    k6.extend_from_slice(&n.addr().octets());
                }
            }
        }
        let one = 1u32.to_ne_bytes();
        let batched = [(&k4, 8usize, v4.map().fd().as_fd()), (&k6, 20usize, v6.map().fd().as_fd())]
            .into_iter()
            .all(|(keys, key_len, fd)| {
                keys.chunks(CHUNK * key_len).all(|chunk| {
                    let count = chunk.len() / key_len;
                    let values: Vec<u8> = one.iter().copied().cycle().take(count * 4).collect();
                    matches!(crate::kernel::sys::map_update_batch(fd, chunk, &values, count as u32), Ok(n) if n as usize == count)
                })
            });
        if batched {
            return Ok(());
        }
        // No batch support (older kernels) or a partial batch: per entry (idempotent),
        // which also reports the exact failing key.
        tracing::debug!("BPF_MAP_UPDATE_BATCH unavailable or partial; inserting per entry.");
        self.insert_rest(list, nets)
    }

    /// Per-entry insert of everything (idempotent; used after a batch fell back).
    fn insert_rest(&mut self, list: FwList, nets: &[IpNet]) -> Result<(), aya::maps::MapError> {
        nets.iter().try_for_each(|n| self.insert(list, n))
    }

    /// Every entry in the kernel tries of `list`.
    fn keys(&self, list: FwList) -> Result<Vec<IpNet>, aya::maps::MapError> {
        let (v4, v6) = match list {
            FwList::Blocks => (&self.block_v4, &self.block_v6),
            FwList::Allows => (&self.allow_v4, &self.allow_v6),
        };
        let mut out = Vec::new();
        for k in v4.keys() {
            let k = k?;
            let ip = std::net::Ipv4Addr::from(k.data());
            if let Ok(n) = ipnet::Ipv4Net::new(ip, k.prefix_len() as u8) {
                out.push(IpNet::V4(n));
            }
        }
        for k in v6.keys() {
            let k = k?;
            let ip = std::net::Ipv6Addr::from(k.data());
            if let Ok(n) = ipnet::Ipv6Net::new(ip, k.prefix_len() as u8) {
                out.push(IpNet::V6(n));
            }
        }
        Ok(out)
    }
}

/// Answer of `check`.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct CheckResult {
    pub ip: String,
    /// "drop" or "pass" for traffic from this address (source rules only).
    pub verdict: &'static str,
    pub blocked: bool,
    pub allowed: bool,
    /// The most specific block covering the address.
    pub blocked_by: Option<BlockEntry>,
    /// The most specific allow covering the address (allow wins).
    pub allowed_by: Option<BlockEntry>,
}

/// What start-up reconciliation did, per list.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Reconciled {
    pub stored: usize,
    pub added_to_kernel: usize,
    pub removed_from_kernel: usize,
}

pub struct Firewall {
    kernel: Option<Mutex<KernelLists>>,
    store: Store,
    /// Never blocked: loopback and this host's own addresses.
    protected: Vec<IpNet>,
}

/// Loopback, plus every address on this host's interfaces (in this namespace).
pub fn own_addresses() -> Vec<IpNet> {
    let mut v: Vec<IpNet> = vec![
        "127.0.0.0/8"
            .parse()
            .unwrap_or_else(|_| IpNet::from(IpAddr::from([127, 0, 0, 1]))),
        IpNet::from(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)),
    ];
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(sa) = a.address else { continue };
            if let Some(s4) = sa.as_sockaddr_in() {
                v.push(IpNet::from(IpAddr::V4(s4.ip())));
            } else if let Some(s6) = sa.as_sockaddr_in6() {
                v.push(IpNet::from(IpAddr::V6(s6.ip())));
            }
        }
    }
    v
}

impl Firewall {
    /// `kernel` is None for tools that work on the store alone (the CLI when the
    /// agent has never pinned its maps); the agent applies the store at its next start.
    pub fn new(kernel: Option<KernelLists>, store: Store, protected: Vec<IpNet>) -> Self {
        Self {
            kernel: kernel.map(Mutex::new),
            store,
            protected,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn enforcing(&self) -> bool {
        self.kernel.is_some()
    }

    fn with_kernel<T>(
        &self,
        f: impl FnOnce(&mut KernelLists) -> Result<T, aya::maps::MapError>,
    ) -> Result<Option<T>, aya::maps::MapError> {
        let Some(k) = &self.kernel else {
            return Ok(None);
        };
        let mut g = match k.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut g).map(Some)
    }

    fn check_protected(&self, net: &IpNet) -> Result<(), FirewallError> {
        for p in &self.protected {
            if net.contains(p) || p.contains(net) {
                return Err(FirewallError::Refused(format!(
                    "{} covers protected address {} (loopback or this host's own)",
                    canonical(net),
                    canonical(p)
                )));
            }
        }
        Ok(())
    }

    /// Refuse to block what an allow entry covers or overlaps: allow would win in the
    /// kernel anyway, and the operator should see the conflict.
    async fn check_not_allowed(&self, nets: &[IpNet]) -> Result<(), FirewallError> {
        let allows: Vec<(IpNet, BlockEntry)> = self
            .store
            .entries(FwList::Allows)
            .await?
            .into_iter()
            .filter_map(|e| parse_target(&e.ip, true).ok().map(|n| (n, e)))
            .collect();
        for net in nets {
            if let Some((_, e)) = allows
                .iter()
                .find(|(a, _)| a.contains(net) || net.contains(a))
            {
                return Err(FirewallError::Refused(format!(
                    "{} overlaps allowed {} ({}); remove the allow entry first",
                    canonical(net),
                    e.ip,
                    e.reason
                )));
            }
        }
        Ok(())
    }

    fn entry(
        net: &IpNet,
        reason: &str,
        source: &str,
        duration: Option<u64>,
    ) -> (BlockEntry, Option<i64>) {
        let now = time::OffsetDateTime::now_utc();
        let expires = duration.filter(|d| *d > 0).map(|d| {
            now + time::Duration::seconds(
                i64::try_from(d)
                    .unwrap_or(i64::MAX / 2)
                    .min(100 * 365 * 86400),
            )
        });
        let reason = reason.trim();
        (
            BlockEntry {
                ip: canonical(net),
                reason: if reason.is_empty() {
                    "manual".into()
                } else {
                    reason.to_string()
                },
                source: source.to_string(),
                blocked_at: now_rfc3339(),
                expires_at: expires.map(rfc3339),
            },
            expires.map(|t| t.unix_timestamp()),
        )
    }

    /// Block (or allow) `target` for `duration` seconds (None/0 = permanent).
    #[allow(clippy::too_many_arguments)]
    pub async fn add(
        &self,
        list: FwList,
        target: &str,
        reason: &str,
        source: &str,
        duration: Option<u64>,
        force: bool,
        actor: &str,
    ) -> Result<BlockEntry, FirewallError> {
        let net = parse_target(target, force)?;
        if list == FwList::Blocks {
            self.check_protected(&net)?;
            self.check_not_allowed(&[net]).await?;
        }
        let (entry, exp) = Self::entry(&net, reason, source, duration);
        // Store first (source of truth); if the kernel refuses, undo the store write.
        self.store
            .upsert_entries(list, vec![(entry.clone(), exp)])
            .await?;
        if let Err(e) = self.with_kernel(|k| k.insert(list, &net)) {
            let _ = self
                .store
                .delete_entries(list, vec![entry.ip.clone()])
                .await;
            return Err(e.into());
        }
        let action = if list == FwList::Blocks {
            "block"
        } else {
            "allow"
        };
        self.store
            .audit(
                action,
                &entry.ip,
                actor,
                &format!("{} (source {source})", entry.reason),
            )
            .await?;
        tracing::info!(ip = %entry.ip, action, source, actor, "Firewall entry added.");
        Ok(entry)
    }

    pub async fn block(
        &self,
        target: &str,
        reason: &str,
        source: &str,
        duration: Option<u64>,
    ) -> Result<BlockEntry, FirewallError> {
        self.add(
            FwList::Blocks,
            target,
            reason,
            source,
            duration,
            false,
            source,
        )
        .await
    }

    /// Remove entries; returns the canonical forms that existed. Invalid input fails
    /// before anything changes.
    pub async fn remove(
        &self,
        list: FwList,
        targets: &[String],
        actor: &str,
    ) -> Result<Vec<String>, FirewallError> {
        let nets = targets
            .iter()
            .map(|t| parse_target(t, true))
            .collect::<Result<Vec<_>, _>>()?;
        let gone = self
            .store
            .delete_entries(list, nets.iter().map(canonical).collect())
            .await?;
        self.with_kernel(|k| nets.iter().try_for_each(|n| k.remove(list, n)))?;
        let action = if list == FwList::Blocks {
            "unblock"
        } else {
            "remove_allow"
        };
        for ip in &gone {
            self.store.audit(action, ip, actor, "").await?;
        }
        Ok(gone)
    }

    pub async fn list(&self) -> Result<Vec<BlockEntry>, FirewallError> {
        Ok(self.store.entries(FwList::Blocks).await?)
    }

    pub async fn entries(&self, list: FwList) -> Result<Vec<BlockEntry>, FirewallError> {
        Ok(self.store.entries(list).await?)
    }

    /// Remove every block (allows stay). Returns how many.
    pub async fn flush(&self, actor: &str) -> Result<usize, FirewallError> {
        let all: Vec<String> = self
            .store
            .entries(FwList::Blocks)
            .await?
            .into_iter()
            .map(|e| e.ip)
            .collect();
        let n = self.remove(FwList::Blocks, &all, actor).await?.len();
        self.store
            .audit("flush", "*", actor, &format!("{n} entries"))
            .await?;
        Ok(n)
    }

    /// Which rules cover `ip`: longest-prefix match over the stored lists.
    pub async fn check(&self, ip: &str) -> Result<CheckResult, FirewallError> {
        let addr: IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| FirewallError::Invalid(format!("{ip:?} is not a valid IP address")))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let candidates: Vec<String> = (0..=max)
            .rev()
            .filter_map(|len| IpNet::new(addr, len).ok().map(|n| canonical(&n.trunc())))
            .collect();
        let mut found = [None, None];
        for (i, list) in [FwList::Blocks, FwList::Allows].into_iter().enumerate() {
            for c in &candidates {
                if let Some(e) = self.store.entry(list, c.clone()).await? {
                    found[i] = Some(e);
                    break;
                }
            }
        }
        let [blocked_by, allowed_by] = found;
        let (blocked, allowed) = (blocked_by.is_some(), allowed_by.is_some());
        Ok(CheckResult {
            ip: addr.to_string(),
            verdict: if blocked && !allowed { "drop" } else { "pass" },
            blocked,
            allowed,
            blocked_by,
            allowed_by,
        })
    }

    /// Bulk-add lines of "IP or CIDR [# comment]" to `list`. Every line is checked
    /// first; any bad line fails the whole import with line numbers, nothing applied.
    pub async fn import(
        &self,
        list: FwList,
        text: &str,
        reason: &str,
        source: &str,
        actor: &str,
    ) -> Result<usize, FirewallError> {
        let mut errors = Vec::new();
        let mut nets = Vec::new();
        let mut seen = HashSet::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            match parse_target(line, false) {
                Ok(net) => {
                    if list == FwList::Blocks {
                        if let Err(e) = self.check_protected(&net) {
                            errors.push((i + 1, e.to_string()));
                            continue;
                        }
                    }
                    if seen.insert(net) {
                        nets.push(net);
                    }
                }
                Err(e) => errors.push((i + 1, e.to_string())),
            }
        }
        if !errors.is_empty() {
            return Err(FirewallError::Import(errors));
        }
        if list == FwList::Blocks {
            self.check_not_allowed(&nets).await?;
        }
        let entries: Vec<_> = nets
            .iter()
            .map(|n| Self::entry(n, reason, source, None))
            .collect();
        self.store.upsert_entries(list, entries).await?;
        let res = self.with_kernel(|k| k.insert_many(list, &nets));
        if let Err(e) = res {
            // Roll back both sides so nothing is half-applied.
            let ips: Vec<String> = nets.iter().map(canonical).collect();
            let _ = self.store.delete_entries(list, ips).await;
            let _ = self.with_kernel(|k| nets.iter().try_for_each(|n| k.remove(list, n)));
            return Err(e.into());
        }
        self.store
            .audit("import", &format!("{} entries", nets.len()), actor, reason)
            .await?;
        Ok(nets.len())
    }

    /// Make the kernel tries match the store exactly (start-up; SQLite wins).
    pub async fn reconcile(&self) -> Result<[Reconciled; 2], FirewallError> {
        let mut out = [Reconciled::default(), Reconciled::default()];
        for (i, list) in [FwList::Blocks, FwList::Allows].into_iter().enumerate() {
            let stored: HashSet<IpNet> = self
                .store
                .entries(list)
                .await?
                .iter()
                .filter_map(|e| match parse_target(&e.ip, true) {
                    Ok(n) => Some(n),
                    Err(err) => {
                        tracing::error!(ip = %e.ip, error = %err, "Stored firewall entry is invalid; skipped.");
                        None
                    }
                })
                .collect();
            out[i].stored = stored.len();
            let r = self.with_kernel(|k| {
                let in_kernel: HashSet<IpNet> = k.keys(list)?.into_iter().collect();
                let (mut added, mut removed) = (0, 0);
                for n in in_kernel.difference(&stored) {
                    k.remove(list, n)?;
                    removed += 1;
                }
                let missing: Vec<IpNet> = stored.difference(&in_kernel).copied().collect();
                k.insert_many(list, &missing)?;
                added += missing.len();
                Ok((added, removed))
            })?;
            if let Some((a, r)) = r {
                out[i].added_to_kernel = a;
                out[i].removed_from_kernel = r;
            }
        }
        Ok(out)
    }

    /// Make the `config` allow entries match `firewall.allow`.
    pub async fn sync_config_allows(&self, allow: &[String]) -> Result<(), FirewallError> {
        self.sync_allows("config", "firewall.allow", allow).await
    }

    /// Make the allow entries of `source` exactly `allow` (each a permanent entry
    /// with `reason`). Invalid input fails before anything changes.
    pub async fn sync_allows(
        &self,
        source: &str,
        reason: &str,
        allow: &[String],
    ) -> Result<(), FirewallError> {
        let want: Vec<IpNet> = allow
            .iter()
            .map(|a| parse_target(a, false))
            .collect::<Result<_, _>>()?;
        let want_txt: HashSet<String> = want.iter().map(canonical).collect();
        let stale: Vec<String> = self
            .store
            .entries(FwList::Allows)
            .await?
            .into_iter()
            .filter(|e| e.source == source && !want_txt.contains(&e.ip))
            .map(|e| e.ip)
            .collect();
        if !stale.is_empty() {
            self.remove(FwList::Allows, &stale, source).await?;
        }
        for n in &want {
            let (e, exp) = Self::entry(n, reason, source, None);
            self.store
                .upsert_entries(FwList::Allows, vec![(e, exp)])
                .await?;
            self.with_kernel(|k| k.insert(FwList::Allows, n))?;
        }
        Ok(())
    }

    /// Remove expired blocks and allows from the kernel and the store.
    pub async fn sweep(&self) -> Result<usize, FirewallError> {
        let now = crate::store::now_unix();
        let mut n = 0;
        for list in [FwList::Blocks, FwList::Allows] {
            let expired = self.store.expired(list, now).await?;
            if !expired.is_empty() {
                n += self.remove(list, &expired, "expiry").await?.len();
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_ips_and_cidrs_canonically() {
        assert_eq!(
            canonical(&parse_target(" 203.0.113.5 ", false).expect("v4")),
            "203.0.113.5"
        );
        assert_eq!(
            canonical(&parse_target("203.0.113.5/32", false).expect("v4/32")),
            "203.0.113.5"
        );
        assert_eq!(
            canonical(&parse_target("198.51.100.0/24", false).expect("cidr")),
            "198.51.100.0/24"
        );
        assert_eq!(
            canonical(&parse_target("2001:DB8::1", false).expect("v6")),
            "2001:db8::1"
        );
        assert_eq!(
            canonical(&parse_target("2001:db8::/32", false).expect("v6 cidr")),
            "2001:db8::/32"
        );
        assert_eq!(
            canonical(&parse_target("0.0.0.0/0", true).expect("forced /0")),
            "0.0.0.0/0"
        );
    }

    #[test]
    fn parse_rejects_mistakes() {
        for (bad, why) in [
            ("", "required"),
            ("203.0.113", "not a valid IP"),
            ("203.0.113.5/33", "not a valid CIDR"),
            ("::ffff:203.0.113.5", "IPv4-mapped"),
            ("0.0.0.0/0", "every address"),
            ("::/0", "every address"),
            ("203.0.113.5/24", "did you mean 203.0.113.0/24"),
            ("evil; rm -rf /", "not a valid"),
        ] {
            let e = parse_target(bad, false).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    fn fw(dir: &std::path::Path) -> Firewall {
        let store = Store::open(&dir.join("s.db"), 16).expect("store");
        Firewall::new(None, store, vec!["192.0.2.1/32".parse().expect("net")])
    }

    #[tokio::test]
    async fn store_only_block_allow_check_and_conflicts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = fw(dir.path());
        f.add(
            FwList::Blocks,
            "198.51.100.0/24",
            "scan",
            "api",
            None,
            false,
            "op",
        )
        .await
        .expect("block /24");
        f.add(
            FwList::Blocks,
            "198.51.100.7",
            "brute",
            "api",
            Some(60),
            false,
            "op",
        )
        .await
        .expect("block /32");
        let c = f.check("198.51.100.7").await.expect("check");
        assert_eq!(c.verdict, "drop");
        assert_eq!(
            c.blocked_by.expect("match").ip,
            "198.51.100.7",
            "most specific wins"
        );
        assert_eq!(
            f.check("198.51.100.8")
                .await
                .expect("check")
                .blocked_by
                .expect("match")
                .ip,
            "198.51.100.0/24"
        );
        assert_eq!(f.check("203.0.113.1").await.expect("check").verdict, "pass");

        // Own address and allowed addresses cannot be blocked; nothing changes.
        let e = f
            .add(FwList::Blocks, "192.0.2.0/24", "", "api", None, false, "op")
            .await
            .unwrap_err();
        assert!(matches!(e, FirewallError::Refused(_)), "{e}");
        f.add(
            FwList::Allows,
            "203.0.113.9",
            "monitoring",
            "api",
            None,
            false,
            "op",
        )
        .await
        .expect("allow");
        let e = f
            .add(
                FwList::Blocks,
                "203.0.113.0/24",
                "",
                "api",
                None,
                false,
                "op",
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("203.0.113.9"), "{e}");
        assert_eq!(f.list().await.expect("list").len(), 2);

        assert_eq!(
            f.remove(FwList::Blocks, &["198.51.100.7".into()], "op")
                .await
                .expect("rm"),
            vec!["198.51.100.7"]
        );
        assert!(f
            .remove(FwList::Blocks, &["198.51.100.7".into()], "op")
            .await
            .expect("rm")
            .is_empty());
        assert_eq!(f.flush("op").await.expect("flush"), 1);
        assert!(f.list().await.expect("list").is_empty());
        let audit = f.store().audit_log(10).await.expect("audit");
        assert_eq!(audit[0].action, "flush");
        assert!(audit
            .iter()
            .any(|a| a.action == "allow" && a.target == "203.0.113.9"));
    }

    #[tokio::test]
    async fn import_is_all_or_nothing_with_line_numbers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = fw(dir.path());
        let bad = "# header\n198.51.100.1\n\nnot-an-ip\n203.0.113.0/24 # comment\n192.0.2.1\n198.51.100.5/24\n";
        match f.import(FwList::Blocks, bad, "list", "cli", "op").await {
            Err(FirewallError::Import(errs)) => {
                let lines: Vec<usize> = errs.iter().map(|(n, _)| *n).collect();
                assert_eq!(lines, vec![4, 6, 7], "{errs:?}");
            }
            other => panic!("expected import error, got {other:?}"),
        }
        assert!(
            f.list().await.expect("list").is_empty(),
            "nothing may be half-applied"
        );
        let good =
            "198.51.100.1\n198.51.100.1\n203.0.113.0/24 # dup above is fine\n2001:db8::/48\n";
        assert_eq!(
            f.import(FwList::Blocks, good, "list", "cli", "op")
                .await
                .expect("import"),
            3
        );
        assert_eq!(f.list().await.expect("list").len(), 3);
    }
}
