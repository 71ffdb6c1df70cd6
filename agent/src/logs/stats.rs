// SPDX-License-Identifier: GPL-2.0-only
//! The log pipeline's counters (lines, events, malformed, per source), for /health
//! and /metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{
    event::{Event, Parser, Source},
    grammar::ParseError,
};

/// The log pipeline's counters as /health shows them.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct LogStatsView {
    pub lines: u64,
    pub parsed: u64,
    pub ignored: u64,
    pub malformed: u64,
    /// Lines dropped because their writer is not the daemon they claim to be.
    pub untrusted: u64,
    pub failures: u64,
    pub triggers: u64,
    pub lines_by_source: std::collections::BTreeMap<&'static str, u64>,
}

#[derive(Debug, Default)]
pub struct LogStats {
    pub lines: AtomicU64,
    /// Events (a multi-line ModSecurity record is one).
    pub parsed: AtomicU64,
    /// Well-formed lines that are not events.
    pub ignored: AtomicU64,
    /// Lines not in their source's format (counted, never fatal).
    pub malformed: AtomicU64,
    /// Lines whose writer is not the daemon they name (forged journal entries,
    /// log files others can write).
    pub untrusted: AtomicU64,
    /// Failed login attempts.
    pub failures: AtomicU64,
    pub triggers: AtomicU64,
    /// Lines per source, in [`Source::ALL`] order.
    pub by_source: [AtomicU64; 7],
}

impl LogStats {
    pub fn view(&self) -> LogStatsView {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LogStatsView {
            lines: l(&self.lines),
            parsed: l(&self.parsed),
            ignored: l(&self.ignored),
            malformed: l(&self.malformed),
            untrusted: l(&self.untrusted),
            failures: l(&self.failures),
            triggers: l(&self.triggers),
            lines_by_source: Source::ALL
                .iter()
                .zip(&self.by_source)
                .map(|(s, n)| (s.name(), l(n)))
                .collect(),
        }
    }

    /// Count one line and parse it.
    pub fn parse(&self, parser: &mut Parser, line: &str) -> Option<Event> {
        self.lines.fetch_add(1, Ordering::Relaxed);
        if let Some(i) = Source::ALL.iter().position(|s| *s == parser.source()) {
            self.by_source[i].fetch_add(1, Ordering::Relaxed);
        }
        match parser.feed(line) {
            Ok(Some(ev)) => {
                self.parsed.fetch_add(1, Ordering::Relaxed);
                Some(ev)
            }
            Ok(None) => None,
            Err(ParseError::Framing(_)) => {
                self.malformed.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(ParseError::Irrelevant) => {
                self.ignored.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}
