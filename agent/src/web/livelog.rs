// SPDX-License-Identifier: GPL-2.0-only
//! The agent's own log as a feed for the live-logs WebSocket: a `tracing` layer
//! that copies every event the log filter lets through into a broadcast channel.
//! Nothing is copied while no client listens; a slow client loses entries (it is
//! told how many), never slows the agent.

use std::{fmt::Write as _, sync::OnceLock};

use api::model::LogEntry;
use tokio::sync::broadcast;
use tracing::{field::Field, Event, Level, Subscriber};
use tracing_subscriber::layer::Context;

/// Entries buffered for the slowest client.
const FEED_DEPTH: usize = 1024;
/// Longest message or field value copied, in bytes.
const MAX_TEXT: usize = 4096;
/// Fields copied per event, at most.
const MAX_FIELDS: usize = 32;

static FEED: OnceLock<broadcast::Sender<LogEntry>> = OnceLock::new();

fn feed() -> &'static broadcast::Sender<LogEntry> {
    FEED.get_or_init(|| broadcast::channel(FEED_DEPTH).0)
}

/// A receiver of the log from now on.
pub fn subscribe() -> broadcast::Receiver<LogEntry> {
    feed().subscribe()
}

/// The layer `main` installs beside the log's own output.
pub struct LiveLogLayer;

fn clip(mut s: String) -> String {
    s.truncate(crate::logs::grammar::char_floor(&s, MAX_TEXT));
    s
}

#[derive(Default)]
struct Visitor {
    message: String,
    fields: serde_json::Map<String, serde_json::Value>,
}

impl Visitor {
    fn put(&mut self, field: &Field, v: serde_json::Value) {
        if field.name() == "message" {
            self.message = match v {
                serde_json::Value::String(s) => clip(s),
                other => other.to_string(),
            };
        } else if self.fields.len() < MAX_FIELDS {
            self.fields.insert(field.name().to_string(), v);
        }
    }
}

impl tracing::field::Visit for Visitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, clip(value.to_string()).into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        self.put(field, clip(s).into());
    }
}

fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        _ => "debug",
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for LiveLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let tx = feed();
        if tx.receiver_count() == 0 {
            return;
        }
        let mut v = Visitor::default();
        event.record(&mut v);
        v.fields.insert(
            "target".into(),
            event.metadata().target().to_string().into(),
        );
        // No receiver left meanwhile is fine: the entry is simply not wanted.
        let _ = tx.send(LogEntry {
            level: level_name(event.metadata().level()),
            message: v.message,
            timestamp: crate::store::now_rfc3339(),
            source: "agent",
            fields: v.fields,
        });
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn events_reach_subscribers_with_their_fields_clipped() {
        let mut rx = subscribe();
        let sub = tracing_subscriber::registry().with(LiveLogLayer);
        tracing::subscriber::with_default(sub, || {
            let long = "x".repeat(MAX_TEXT * 2);
            tracing::warn!(ip = "203.0.113.5", count = 3u64, text = %long, "Blocked {}", "it");
        });
        let e = rx.try_recv().expect("an entry");
        assert_eq!((e.level, e.source), ("warn", "agent"));
        assert_eq!(e.message, "Blocked it");
        assert_eq!(e.fields["ip"], "203.0.113.5");
        assert_eq!(e.fields["count"], 3);
        assert_eq!(e.fields["text"].as_str().map(str::len), Some(MAX_TEXT));
        assert!(e.fields["target"]
            .as_str()
            .is_some_and(|t| t.contains("livelog")));
    }
}
