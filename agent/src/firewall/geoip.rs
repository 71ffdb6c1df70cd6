// SPDX-License-Identifier: GPL-2.0-only
//! GeoIP: country, city and network owner of an address, from MaxMind DB files
//! (`geoip.city_db`, `geoip.asn_db`), read into memory at start and again when the
//! settings API changes them.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use maxminddb::{geoip2, Reader};
use serde::Serialize;

use crate::config::GeoIp as GeoIpConfig;

/// Where geoipupdate puts the free databases, in the order looked at.
const SEARCH: &[&str] = &["/usr/share/GeoIP", "/var/lib/GeoIP"];

/// The databases found at start.
pub struct GeoIp {
    city: Option<(PathBuf, Reader<Vec<u8>>)>,
    asn: Option<(PathBuf, Reader<Vec<u8>>)>,
}

/// What a lookup knows of an address; fields are absent when unknown.
#[derive(Clone, Debug, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Location {
    pub ip: String,
    /// Any database knew the address.
    pub found: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_org: Option<String>,
    /// `?detail=1`: subdivisions, postal code, time zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Detail>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Detail {
    pub subdivisions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy_radius_km: Option<u16>,
}

fn open(configured: &Path, default_name: &str, what: &str) -> Option<(PathBuf, Reader<Vec<u8>>)> {
    let candidates: Vec<PathBuf> = if configured.as_os_str().is_empty() {
        SEARCH
            .iter()
            .map(|d| Path::new(d).join(default_name))
            .collect()
    } else {
        vec![configured.to_path_buf()]
    };
    for p in candidates {
        if !configured.as_os_str().is_empty() || p.exists() {
            match Reader::open_readfile(&p) {
                Ok(r) => {
                    tracing::info!(path = %p.display(), kind = %r.metadata.database_type, "GeoIP {what} database loaded.");
                    return Some((p, r));
                }
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "GeoIP {what} database unreadable; lookups go without it.");
                }
            }
        }
    }
    None
}

/// The databases in force, swapped whole when `geoip` changes through the settings
/// API; a lookup keeps the set it started with.
pub struct Live(std::sync::RwLock<std::sync::Arc<GeoIp>>);

impl Live {
    pub fn new(g: GeoIp) -> Self {
        Self(std::sync::RwLock::new(std::sync::Arc::new(g)))
    }

    /// The databases now.
    pub fn get(&self) -> std::sync::Arc<GeoIp> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Put `g` in force.
    pub fn set(&self, g: GeoIp) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = std::sync::Arc::new(g);
    }
}

fn en(names: Option<std::collections::BTreeMap<&str, &str>>) -> Option<String> {
    names.and_then(|n| n.get("en").map(|s| s.to_string()))
}

impl GeoIp {
    pub fn load(cfg: &GeoIpConfig) -> Self {
        Self {
            city: open(&cfg.city_db, "GeoLite2-City.mmdb", "city"),
            asn: open(&cfg.asn_db, "GeoLite2-ASN.mmdb", "ASN"),
        }
    }

    /// Any database to ask?
    pub fn available(&self) -> bool {
        self.city.is_some() || self.asn.is_some()
    }

    /// The files in use.
    pub fn sources(&self) -> Vec<String> {
        [&self.city, &self.asn]
            .into_iter()
            .flatten()
            .map(|(p, _)| p.display().to_string())
            .collect()
    }

    /// What the databases know of `ip` (a corrupt record is treated as unknown).
    pub fn lookup(&self, ip: IpAddr, detail: bool) -> Location {
        let mut loc = Location {
            ip: ip.to_string(),
            ..Default::default()
        };
        if let Some((_, r)) = &self.city {
            if let Ok(Some(c)) = r.lookup::<geoip2::City>(ip) {
                loc.found = true;
                if let Some(country) = c.country {
                    loc.country = country.iso_code.map(str::to_string);
                    loc.country_name = en(country.names);
                }
                loc.continent = c.continent.and_then(|x| x.code).map(str::to_string);
                loc.city = c.city.and_then(|x| en(x.names));
                if let Some(l) = &c.location {
                    loc.latitude = l.latitude;
                    loc.longitude = l.longitude;
                }
                if detail {
                    loc.detail = Some(Detail {
                        subdivisions: c
                            .subdivisions
                            .unwrap_or_default()
                            .into_iter()
                            .filter_map(|s| en(s.names))
                            .collect(),
                        postal_code: c.postal.and_then(|p| p.code).map(str::to_string),
                        time_zone: c
                            .location
                            .as_ref()
                            .and_then(|l| l.time_zone)
                            .map(str::to_string),
                        accuracy_radius_km: c.location.as_ref().and_then(|l| l.accuracy_radius),
                    });
                }
            }
        }
        if let Some((_, r)) = &self.asn {
            if let Ok(Some(a)) = r.lookup::<geoip2::Asn>(ip) {
                loc.found = true;
                loc.asn = a.autonomous_system_number;
                loc.as_org = a.autonomous_system_organization.map(str::to_string);
            }
        }
        loc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(dir: &Path, name: &str, kind: &str, rows: &[(&str, serde_json::Value)]) -> PathBuf {
        let mut w = mmdb_writer::Writer::new(kind);
        for (net, v) in rows {
            w.insert(net.parse::<ipnet::IpNet>().expect("net"), v)
                .expect("insert");
        }
        let p = dir.join(name);
        std::fs::write(&p, w.to_bytes().expect("bytes")).expect("write");
        p
    }

    #[test]
    fn city_and_asn_answer_together_and_an_unknown_address_is_not_found() {
        let d = tempfile::tempdir().expect("tmp");
        let city = db(
            d.path(),
            "c.mmdb",
            "GeoIP2-City",
            &[(
                "198.51.100.0/24",
                serde_json::json!({"country": {"iso_code": "NL", "names": {"en": "Netherlands"}},
                               "continent": {"code": "EU"}, "city": {"names": {"en": "Amsterdam"}},
                               "subdivisions": [{"names": {"en": "North Holland"}}],
                               "location": {"latitude": 52.37, "longitude": 4.89, "time_zone": "Europe/Amsterdam"}}),
            )],
        );
        let asn = db(
            d.path(),
            "a.mmdb",
            "GeoLite2-ASN",
            &[(
                "198.51.100.0/23",
                serde_json::json!({"autonomous_system_number": 64500, "autonomous_system_organization": "Example Net"}),
            )],
        );
        let g = GeoIp::load(&GeoIpConfig {
            city_db: city,
            asn_db: asn,
        });
        assert!(g.available());
        let l = g.lookup("198.51.100.9".parse().expect("ip"), true);
        assert_eq!(
            (
                l.country.as_deref(),
                l.city.as_deref(),
                l.asn,
                l.as_org.as_deref()
            ),
            (
                Some("NL"),
                Some("Amsterdam"),
                Some(64500),
                Some("Example Net")
            )
        );
        let d = l.detail.expect("detail");
        assert_eq!(
            (d.subdivisions.as_slice(), d.time_zone.as_deref()),
            (&["North Holland".to_string()][..], Some("Europe/Amsterdam"))
        );
        let only_asn = g.lookup("198.51.101.1".parse().expect("ip"), false);
        assert_eq!(
            (only_asn.found, only_asn.country.as_deref(), only_asn.asn),
            (true, None, Some(64500))
        );
        assert!(!g.lookup("192.0.2.1".parse().expect("ip"), false).found);
    }

    #[test]
    fn a_missing_or_broken_database_is_none_never_an_error() {
        let d = tempfile::tempdir().expect("tmp");
        let bad = d.path().join("bad.mmdb");
        std::fs::write(&bad, b"not a database").expect("write");
        let g = GeoIp::load(&GeoIpConfig {
            city_db: bad,
            asn_db: d.path().join("absent.mmdb"),
        });
        assert!(!g.available());
        assert!(!g.lookup("198.51.100.1".parse().expect("ip"), true).found);
    }
}
