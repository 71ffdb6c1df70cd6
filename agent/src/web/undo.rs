// SPDX-License-Identifier: GPL-2.0-only
//! Bulk-action undo (csm-api.md "Bulk-action undo"): a bulk block, unblock, whitelist
//! or unwhitelist records its inverse for 30 seconds, per operator, and so does a
//! dismiss of findings (Rampart's: its inverse, `findings_undismiss`, puts back the
//! ones still dismissed). `GET
//! /undo/pending` shows the latest; `POST /undo/run` consumes one and the backend
//! dispatches the inverse. Entries live in memory: an undo is a second thought, and
//! a restart is longer than 30 s.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::store::{now_unix, rfc3339};

pub const TTL: Duration = Duration::from_secs(30);
/// Pending entries kept over all operators, at most (the oldest go first).
const MAX_ENTRIES: usize = 256;

/// One address to put back, with what it had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub ip: String,
    pub reason: String,
    pub source: String,
    /// Seconds left of a temporary entry; `None` = permanent.
    pub remaining: Option<u64>,
}

/// `GET /undo/pending`.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct PendingView {
    pub id: String,
    pub action: &'static str,
    pub inverse: &'static str,
    pub summary: String,
    pub recorded_at: String,
    pub expires_at: String,
}

#[derive(Clone, Debug)]
pub struct Pending {
    pub id: String,
    pub actor: String,
    /// threat_bulk_block, threat_bulk_unblock, ..., firewall_bulk_unblock.
    pub action: &'static str,
    /// threat_bulk_unblock, ..., firewall_bulk_reblock.
    pub inverse: &'static str,
    pub summary: String,
    pub items: Vec<Item>,
    /// Findings to put back (a dismiss's inverse); empty for address actions.
    pub findings: Vec<i64>,
    at: Instant,
    recorded_unix: i64,
}

impl Pending {
    /// What `/undo/pending` shows of it.
    pub fn view(&self) -> PendingView {
        let t = |u: i64| {
            time::OffsetDateTime::from_unix_timestamp(u)
                .map(rfc3339)
                .unwrap_or_default()
        };
        PendingView {
            id: self.id.clone(),
            action: self.action,
            inverse: self.inverse,
            summary: self.summary.clone(),
            recorded_at: t(self.recorded_unix),
            expires_at: t(self.recorded_unix + TTL.as_secs() as i64),
        }
    }
}

#[derive(Default)]
pub struct Undo {
    entries: Mutex<Vec<Pending>>,
}

impl Undo {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        match self.entries.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Record an inverse over addresses; returns its token.
    pub fn record(
        &self,
        actor: &str,
        action: &'static str,
        inverse: &'static str,
        summary: String,
        items: Vec<Item>,
    ) -> String {
        self.record_entry(actor, action, inverse, summary, items, Vec::new())
    }

    /// Record an inverse over findings (a dismiss: put them back); returns its token.
    pub fn record_findings(
        &self,
        actor: &str,
        action: &'static str,
        inverse: &'static str,
        summary: String,
        ids: Vec<i64>,
    ) -> String {
        self.record_entry(actor, action, inverse, summary, Vec::new(), ids)
    }

    fn record_entry(
        &self,
        actor: &str,
        action: &'static str,
        inverse: &'static str,
        summary: String,
        items: Vec<Item>,
        findings: Vec<i64>,
    ) -> String {
        let id = format!("{:016x}", rand::random::<u64>());
        let now = Instant::now();
        let mut g = self.lock();
        g.retain(|p| now.duration_since(p.at) < TTL);
        if g.len() >= MAX_ENTRIES {
            g.remove(0);
        }
        g.push(Pending {
            id: id.clone(),
            actor: actor.to_string(),
            action,
            inverse,
            summary,
            items,
            findings,
            at: now,
            recorded_unix: now_unix(),
        });
        id
    }

    /// The operator's latest live entry.
    pub fn pending(&self, actor: &str) -> Option<Pending> {
        let now = Instant::now();
        self.lock()
            .iter()
            .rev()
            .find(|p| p.actor == actor && now.duration_since(p.at) < TTL)
            .cloned()
    }

    /// Consume the operator's entry `id` (or the latest); `None` when it is missing,
    /// consumed already or past its TTL.
    pub fn take(&self, actor: &str, id: Option<&str>) -> Option<Pending> {
        let now = Instant::now();
        let mut g = self.lock();
        let i = g.iter().rposition(|p| {
            p.actor == actor && id.is_none_or(|id| p.id == id) && now.duration_since(p.at) < TTL
        })?;
        Some(g.remove(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(ip: &str) -> Item {
        Item {
            ip: ip.into(),
            reason: "r".into(),
            source: "threat".into(),
            remaining: None,
        }
    }

    /// A dismiss's undo carries the findings, not addresses, and is taken once.
    #[test]
    fn a_dismiss_is_recorded_with_its_findings() {
        let u = Undo::default();
        let t = u.record_findings(
            "op",
            "findings_dismiss",
            "findings_undismiss",
            "Dismissed 2 findings".into(),
            vec![7, 9],
        );
        let p = u.take("op", Some(&t)).expect("taken");
        assert_eq!(
            (p.inverse, p.findings.as_slice(), p.items.len()),
            ("findings_undismiss", &[7, 9][..], 0)
        );
        assert!(u.take("op", Some(&t)).is_none(), "consumed");
    }

    #[test]
    fn per_operator_latest_and_consumed_once() {
        let u = Undo::default();
        let a = u.record(
            "op",
            "threat_bulk_block",
            "threat_bulk_unblock",
            "Blocked 1 IP".into(),
            vec![item("203.0.113.5")],
        );
        let b = u.record(
            "op",
            "threat_bulk_whitelist",
            "threat_bulk_unwhitelist",
            "Whitelisted 1 IP".into(),
            vec![item("198.51.100.7")],
        );
        u.record(
            "other",
            "threat_bulk_block",
            "threat_bulk_unblock",
            "x".into(),
            vec![],
        );
        let p = u.pending("op").expect("pending");
        assert_eq!(
            (p.id.as_str(), p.inverse),
            (b.as_str(), "threat_bulk_unwhitelist")
        );
        let j = p.view();
        assert_eq!(j.id.len(), 16);
        assert!(j.expires_at > j.recorded_at);
        assert!(
            u.take("nobody", Some(&a)).is_none(),
            "another operator's token"
        );
        assert_eq!(
            u.take("op", Some(&a)).map(|p| p.items),
            Some(vec![item("203.0.113.5")])
        );
        assert!(u.take("op", Some(&a)).is_none(), "consumed");
        assert_eq!(u.take("op", None).map(|p| p.id), Some(b));
        assert!(u.pending("op").is_none());
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let u = Undo::default();
        let id = u.record(
            "op",
            "threat_bulk_block",
            "threat_bulk_unblock",
            "x".into(),
            vec![],
        );
        if let Some(p) = u.lock().iter_mut().next() {
            p.at = p.at.checked_sub(TTL).expect("an instant 30 s ago");
        }
        assert!(u.pending("op").is_none());
        assert!(u.take("op", Some(&id)).is_none());
    }
}
