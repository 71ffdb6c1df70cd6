// SPDX-License-Identifier: GPL-2.0-only
//! Leaky buckets (CrowdSec's scenario model): each key's bucket fills by one per
//! event and leaks one every `leak`. More than `capacity` events in it overflows:
//! the scenario triggers once, then the key is black-holed for `blackhole` (no new
//! triggers while the response is in place). Memory is bounded: at most `max_keys`
//! buckets, empty ones dropped first.

use std::{
    collections::HashMap,
    hash::Hash,
    time::{Duration, Instant},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    pub capacity: u32,
    pub leak: Duration,
    pub blackhole: Duration,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Fill level × leak (so leaking is integer arithmetic on nanoseconds).
    level_ns: u128,
    at: Instant,
    blackhole_until: Option<Instant>,
}

/// What adding an event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Below capacity; the current fill.
    Filling(u32),
    /// This event overflowed the bucket: trigger, with the number of events in it.
    Overflow(u32),
    /// Overflowed before and still black-holed.
    Blackholed,
}

pub struct Buckets<K> {
    spec: Spec,
    max_keys: usize,
    buckets: HashMap<K, Bucket>,
    /// Keys dropped because the table was full of non-empty buckets.
    pub evicted: u64,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    pub fn new(spec: Spec, max_keys: usize) -> Self {
        Self {
            spec,
            max_keys: max_keys.max(1),
            buckets: HashMap::new(),
            evicted: 0,
        }
    }

    pub fn spec(&self) -> Spec {
        self.spec
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    fn leak_ns(&self) -> u128 {
        self.spec.leak.as_nanos().max(1)
    }

    fn leaked(&self, b: &Bucket, now: Instant) -> u128 {
        b.level_ns
            .saturating_sub(now.saturating_duration_since(b.at).as_nanos())
    }

    /// Add one event for `key` at `now`.
    pub fn add(&mut self, key: K, now: Instant) -> Outcome {
        self.add_n(key, 1, now)
    }

    /// Add `n` events at once (a line that reports several attempts, a message to
    /// several recipients).
    pub fn add_n(&mut self, key: K, n: u32, now: Instant) -> Outcome {
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.max_keys {
            self.make_room(now);
        }
        let leak = self.leak_ns();
        let spec = self.spec;
        let b = self.buckets.entry(key).or_insert(Bucket {
            level_ns: 0,
            at: now,
            blackhole_until: None,
        });
        let level = b
            .level_ns
            .saturating_sub(now.saturating_duration_since(b.at).as_nanos());
        b.at = now;
        if let Some(until) = b.blackhole_until {
            if now < until {
                return Outcome::Blackholed;
            }
            b.blackhole_until = None;
        }
        b.level_ns = level.saturating_add(leak.saturating_mul(u128::from(n.max(1))));
        let events = u32::try_from(b.level_ns.div_ceil(leak)).unwrap_or(u32::MAX);
        if events > spec.capacity {
            b.level_ns = 0;
            b.blackhole_until = Some(now + spec.blackhole);
            Outcome::Overflow(events)
        } else {
            Outcome::Filling(events)
        }
    }

    /// Drop every empty, un-black-holed bucket; if none is, the fullest goes last:
    /// drop the emptiest.
    fn make_room(&mut self, now: Instant) {
        let before = self.buckets.len();
        let idle: Vec<K> = self
            .buckets
            .iter()
            .filter(|(_, b)| self.leaked(b, now) == 0 && b.blackhole_until.is_none_or(|u| u <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for k in idle {
            self.buckets.remove(&k);
        }
        if self.buckets.len() == before {
            if let Some(k) = self
                .buckets
                .iter()
                .min_by_key(|(_, b)| self.leaked(b, now))
                .map(|(k, _)| k.clone())
            {
                self.buckets.remove(&k);
                self.evicted += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SSH_BF: Spec = Spec {
        capacity: 5,
        leak: Duration::from_secs(10),
        blackhole: Duration::from_secs(60),
    };

    #[test]
    fn overflows_after_capacity_then_blackholes_then_refills() {
        let mut b = Buckets::new(SSH_BF, 100);
        let t0 = Instant::now();
        for i in 1..=5 {
            assert_eq!(b.add("a", t0), Outcome::Filling(i));
        }
        assert_eq!(b.add("a", t0), Outcome::Overflow(6));
        assert_eq!(
            b.add("a", t0 + Duration::from_secs(30)),
            Outcome::Blackholed
        );
        // After the blackhole the bucket starts empty.
        assert_eq!(
            b.add("a", t0 + Duration::from_secs(61)),
            Outcome::Filling(1)
        );
        // Other keys are independent.
        assert_eq!(b.add("b", t0), Outcome::Filling(1));
    }

    #[test]
    fn slow_attempts_leak_away() {
        let mut b = Buckets::new(SSH_BF, 100);
        let t0 = Instant::now();
        // One attempt every 10 s never fills a 10 s-leak bucket past 1.
        for i in 0..100u64 {
            assert_eq!(
                b.add("a", t0 + Duration::from_secs(10 * i)),
                Outcome::Filling(1)
            );
        }
        // Two every 10 s: one more per period stays; the sixth period overflows.
        let base = t0 + Duration::from_secs(2000);
        let mut overflow_at = None;
        for period in 0..10u64 {
            let t = base + Duration::from_secs(10 * period);
            for _ in 0..2 {
                if matches!(b.add("b", t), Outcome::Overflow(_)) && overflow_at.is_none() {
                    overflow_at = Some(period);
                }
            }
        }
        assert_eq!(overflow_at, Some(4));
    }

    #[test]
    fn memory_is_bounded() {
        let mut b = Buckets::new(SSH_BF, 10);
        let t0 = Instant::now();
        for i in 0..1000u32 {
            b.add(i, t0);
        }
        assert!(b.len() <= 10);
        assert!(b.evicted > 0);
        // Idle buckets go first, without counting as evictions.
        let mut b = Buckets::new(SSH_BF, 2);
        b.add(1u32, t0);
        b.add(2u32, t0);
        let before = b.evicted;
        b.add(3u32, t0 + Duration::from_secs(100));
        assert_eq!((b.len(), b.evicted), (1, before));
    }
}
