// SPDX-License-Identifier: GPL-2.0-only
//! Per-client request budgets (csm-contract.md: login 5/min per IP, API 600/min per
//! IP, 429 beyond), and the key a client is counted under.
//!
//! A budget is a token bucket: `per_minute` requests at once, refilled evenly over a
//! minute. IPv6 clients are counted per /64 (one host owns a whole /64), IPv4-mapped
//! addresses as their IPv4 address.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    sync::Mutex,
    time::Instant,
};

/// Buckets kept at most per limiter; past it, full (idle) buckets are pruned, and
/// if every one is busy the oldest goes.
const MAX_TRACKED: usize = 65_536;

/// The address a client is counted and capped under.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// `per_minute` 0 turns the limiter off.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `b`'s tokens at `now`: refilled evenly, `per_minute` a minute, up to the cap.
    fn refilled(&self, b: &Bucket, now: Instant) -> f64 {
        let cap = f64::from(self.per_minute);
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        (b.tokens + elapsed * cap / 60.0).min(cap)
    }

    /// Spend one request of `ip`'s budget; false when there was none left.
    pub fn take(&self, ip: IpAddr) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let now = Instant::now();
        let key = client_key(ip);
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
            let cap = f64::from(self.per_minute);
            map.retain(|_, b| self.refilled(b, now) < cap);
            if map.len() >= MAX_TRACKED {
                if let Some(oldest) = map.iter().min_by_key(|(_, b)| b.at).map(|(k, _)| *k) {
                    map.remove(&oldest);
                }
            }
        }
        let b = map.entry(key).or_insert(Bucket {
            tokens: f64::from(self.per_minute),
            at: now,
        });
        b.tokens = self.refilled(b, now);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_per_client_and_runs_out() {
        let l = RateLimiter::new(5);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        for _ in 0..5 {
            assert!(l.take(a));
        }
        assert!(!l.take(a), "the sixth in a minute is refused");
        assert!(l.take(b), "another client has its own budget");
        assert!(RateLimiter::new(0).take(a), "0 is off");
    }

    #[test]
    fn v6_counts_per_64_and_mapped_v4_as_v4() {
        let one: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let other: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        assert_eq!(client_key(one), client_key(other));
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().expect("ip");
        assert_eq!(
            client_key(mapped),
            "198.51.100.7".parse::<IpAddr>().expect("ip")
        );
    }
}
