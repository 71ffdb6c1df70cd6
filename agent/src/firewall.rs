// SPDX-License-Identifier: GPL-2.0-only
//! IP/CIDR blocking: SQLite is the source of truth, the XDP LPM tries enforce it.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Mutex,
};

use agent_common::xdp::BlockValue;
use api::model::BlockEntry;
use aya::maps::{lpm_trie::Key, LpmTrie, MapData};
use ipnet::IpNet;

use crate::store::{now_rfc3339, rfc3339, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("updating the kernel block map: {0}")]
    Map(#[from] aya::maps::MapError),
}

/// Parse an IP or CIDR the way an operator writes it, into its canonical network.
/// Rejects what is almost certainly a mistake instead of guessing.
pub fn parse_target(input: &str) -> Result<IpNet, FirewallError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(FirewallError::Invalid("ip is required".into()));
    }
    let net: IpNet = if s.contains('/') {
        s.parse()
            .map_err(|_| FirewallError::Invalid(format!("{s:?} is not a valid CIDR")))?
    } else {
        let ip: IpAddr = s
            .parse()
            .map_err(|_| FirewallError::Invalid(format!("{s:?} is not a valid IP address")))?;
        IpNet::from(ip)
    };
    if let IpAddr::V6(v6) = net.addr() {
        if v6.to_ipv4_mapped().is_some() {
            return Err(FirewallError::Invalid(format!(
                "{s:?} is an IPv4-mapped IPv6 address; block the IPv4 form instead"
            )));
        }
    }
    if net.prefix_len() == 0 {
        return Err(FirewallError::Invalid(format!(
            "{s:?} would block every address"
        )));
    }
    if net.trunc() != net {
        return Err(FirewallError::Invalid(format!(
            "{s:?} has host bits set; did you mean {}?",
            net.trunc()
        )));
    }
    Ok(net)
}

/// Canonical text: a bare address for host routes, CIDR otherwise.
pub fn canonical(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

pub struct BlockMaps {
    pub v4: LpmTrie<MapData, [u8; 4], BlockValue>,
    pub v6: LpmTrie<MapData, [u8; 16], BlockValue>,
}

impl BlockMaps {
    fn insert(&mut self, net: &IpNet) -> Result<(), aya::maps::MapError> {
        match net {
            IpNet::V4(n) => {
                self.v4
                    .insert(&Key::new(n.prefix_len() as u32, n.addr().octets()), 1, 0)
            }
            IpNet::V6(n) => {
                self.v6
                    .insert(&Key::new(n.prefix_len() as u32, n.addr().octets()), 1, 0)
            }
        }
    }
    fn remove(&mut self, net: &IpNet) -> Result<(), aya::maps::MapError> {
        let r = match net {
            IpNet::V4(n) => self
                .v4
                .remove(&Key::new(n.prefix_len() as u32, n.addr().octets())),
            IpNet::V6(n) => self
                .v6
                .remove(&Key::new(n.prefix_len() as u32, n.addr().octets())),
        };
        match r {
            Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            other => other,
        }
    }
}

pub struct Firewall {
    maps: Mutex<BlockMaps>,
    store: Store,
    /// Never blocked: loopback, unspecified, the API's own address, configured infra.
    protected: Vec<IpNet>,
}

impl Firewall {
    pub fn new(maps: BlockMaps, store: Store, extra_protected: &[IpAddr]) -> Self {
        let mut protected: Vec<IpNet> = vec![
            IpNet::from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0))),
            IpNet::from(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ];
        protected[0] = "127.0.0.0/8".parse().unwrap_or(protected[0]);
        for ip in extra_protected {
            if !ip.is_unspecified() {
                protected.push(IpNet::from(*ip));
            }
        }
        Self {
            maps: Mutex::new(maps),
            store,
            protected,
        }
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

    fn with_maps<T>(&self, f: impl FnOnce(&mut BlockMaps) -> T) -> T {
        let mut g = match self.maps.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut g)
    }

    /// Block `target` (IP or CIDR) for `duration` seconds (None/0 = permanent).
    pub async fn block(
        &self,
        target: &str,
        reason: &str,
        source: &str,
        duration: Option<u64>,
    ) -> Result<BlockEntry, FirewallError> {
        let net = parse_target(target)?;
        self.check_protected(&net)?;
        let now = time::OffsetDateTime::now_utc();
        let expires = duration
            .filter(|d| *d > 0)
            .map(|d| now + time::Duration::seconds(d.min(i64::MAX as u64) as i64));
        let entry = BlockEntry {
            ip: canonical(&net),
            reason: if reason.trim().is_empty() {
                "manual block".into()
            } else {
                reason.trim().to_string()
            },
            source: source.to_string(),
            blocked_at: now_rfc3339(),
            expires_at: expires.map(rfc3339),
        };
        // Store first (source of truth); if the kernel refuses, undo the store write.
        let entry = self
            .store
            .upsert_block(entry, expires.map(|t| t.unix_timestamp()))
            .await?;
        if let Err(e) = self.with_maps(|m| m.insert(&net)) {
            let _ = self.store.delete_block(entry.ip.clone()).await;
            return Err(e.into());
        }
        tracing::info!(ip = %entry.ip, source, reason = %entry.reason, "Blocked.");
        Ok(entry)
    }

    pub async fn unblock(&self, target: &str) -> Result<bool, FirewallError> {
        let net = parse_target(target)?;
        let existed = self.store.delete_block(canonical(&net)).await?;
        self.with_maps(|m| m.remove(&net))?;
        Ok(existed)
    }

    pub async fn list(&self) -> Result<Vec<BlockEntry>, FirewallError> {
        Ok(self.store.blocks().await?)
    }

    /// Load every stored block into the kernel maps (start-up). Returns how many.
    pub async fn restore(&self) -> Result<usize, FirewallError> {
        let entries = self.store.blocks().await?;
        let mut n = 0;
        for e in &entries {
            match parse_target(&e.ip) {
                Ok(net) => {
                    self.with_maps(|m| m.insert(&net))?;
                    n += 1;
                }
                Err(err) => {
                    tracing::error!(ip = %e.ip, error = %err, "Stored block is invalid; skipped.")
                }
            }
        }
        Ok(n)
    }

    /// Remove expired blocks from the maps and the store.
    pub async fn sweep(&self) -> Result<usize, FirewallError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let expired = self.store.expired_blocks(now).await?;
        for ip in &expired {
            self.unblock(ip).await?;
            tracing::info!(ip = %ip, "Block expired.");
        }
        Ok(expired.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_ips_and_cidrs_canonically() {
        assert_eq!(
            canonical(&parse_target(" 203.0.113.5 ").expect("v4")),
            "203.0.113.5"
        );
        assert_eq!(
            canonical(&parse_target("203.0.113.5/32").expect("v4/32")),
            "203.0.113.5"
        );
        assert_eq!(
            canonical(&parse_target("198.51.100.0/24").expect("cidr")),
            "198.51.100.0/24"
        );
        assert_eq!(
            canonical(&parse_target("2001:DB8::1").expect("v6")),
            "2001:db8::1"
        );
        assert_eq!(
            canonical(&parse_target("2001:db8::/32").expect("v6 cidr")),
            "2001:db8::/32"
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
            let e = parse_target(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
