// SPDX-License-Identifier: GPL-2.0-only
//! Charon's live-logs WebSocket (`GET /api/v1/logs/live`): the agent's own log and
//! its findings as they happen, one JSON [`LogEntry`] a message, filtered by
//! `?level=` (the least severe level sent) and `?source=`.
//!
//! Same authentication as every route; a cookie session must also come from the
//! dashboard's own origin (a page elsewhere could otherwise open the socket with the
//! operator's cookie). The server pings every 30 s; a client that stops reading is
//! dropped, never waited for; the socket counts against the SSE client cap.

use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use warp::{
    filters::ws::{Message, WebSocket, Ws},
    http::{HeaderMap, StatusCode},
    Reply,
};

use crate::{
    auth::Principal,
    model::{Finding, LogEntry, Severity},
    ApiError, ApiState, Backend,
};

/// Levels, least severe first (`?level=`).
pub const LEVELS: [&str; 4] = ["debug", "info", "warn", "error"];
/// Sources (`?source=`): the agent's own log, and findings by kind.
pub const SOURCES: [&str; 4] = ["agent", "cerberus", "waf", "acl"];
const PING_EVERY: Duration = Duration::from_secs(30);
/// A message the client does not take within this long ends the stream.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Clients send nothing we read but pongs and close; anything bigger is refused.
const MAX_CLIENT_MESSAGE: usize = 4096;

/// The filters of one stream.
#[derive(Clone, Debug)]
pub struct LiveFilter {
    min_level: usize,
    source: Option<&'static str>,
}

fn level_rank(level: &str) -> usize {
    LEVELS.iter().position(|l| *l == level).unwrap_or(0)
}

impl LiveFilter {
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let param = |k| crate::handlers::query_param(query, k).filter(|v| !v.is_empty());
        let min_level = match param("level") {
            None => 0,
            Some(v) => LEVELS.iter().position(|l| *l == v).ok_or_else(|| {
                ApiError::bad_request(format!("level must be one of {LEVELS:?}, got {v:?}"))
            })?,
        };
        let source = match param("source") {
            None => None,
            Some(v) => Some(*SOURCES.iter().find(|s| **s == v).ok_or_else(|| {
                ApiError::bad_request(format!("source must be one of {SOURCES:?}, got {v:?}"))
            })?),
        };
        Ok(Self { min_level, source })
    }

    pub fn wants(&self, e: &LogEntry) -> bool {
        level_rank(e.level) >= self.min_level && self.source.is_none_or(|s| s == e.source)
    }
}

/// A finding as a live-log entry: critical and high are `error`, warning `warn`.
pub fn finding_entry(f: &Finding) -> LogEntry {
    let level = match f.severity {
        Severity::Critical | Severity::High => "error",
        Severity::Warning => "warn",
        Severity::Info => "info",
    };
    let source = if f.check.starts_with("waf") || f.check.starts_with("modsec") {
        "waf"
    } else if f.check == "port_scan" || f.check.contains("block") {
        "acl"
    } else {
        "cerberus"
    };
    let mut fields = serde_json::Map::new();
    fields.insert("finding_id".into(), f.id.into());
    fields.insert("check".into(), f.check.clone().into());
    fields.insert("severity".into(), f.severity.as_str().into());
    for (k, v) in [
        ("ip", &f.ip),
        ("path", &f.path),
        ("account", &f.account),
        ("process", &f.process),
        ("rule", &f.rule),
    ] {
        if let Some(v) = v {
            fields.insert(k.into(), v.clone().into());
        }
    }
    LogEntry {
        level,
        message: f.message.clone(),
        timestamp: f.timestamp.clone(),
        source,
        fields,
    }
}

/// A cookie-authenticated upgrade must come from this server's own pages: an
/// `Origin` is required (browsers always send one on a WebSocket) and must be this
/// host, as for every cookie write.
fn same_origin(headers: &HeaderMap) -> bool {
    headers.contains_key("origin") && crate::auth::same_origin(headers).is_ok()
}

/// Answer `GET /api/v1/logs/live`: the upgrade, or why not.
pub(crate) fn open<B: Backend>(
    state: &Arc<ApiState<B>>,
    ws: Option<Ws>,
    headers: &HeaderMap,
    principal: &Principal,
    query: &str,
) -> Result<warp::reply::Response, ApiError> {
    let filter = LiveFilter::parse(query)?;
    let Some(ws) = ws else {
        return Err(ApiError::bad_request(
            "WebSocket upgrade required (Connection: Upgrade, Upgrade: websocket)",
        ));
    };
    if principal.via_cookie && !same_origin(headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "a cookie session opens the live log only from the dashboard's own origin",
        ));
    }
    let slot = crate::handlers::SseSlot::take(state)?;
    let state = state.clone();
    Ok(ws
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            stream(state, socket, filter).await;
            drop(slot);
        })
        .into_response())
}

async fn send(tx: &mut futures_util::stream::SplitSink<WebSocket, Message>, m: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, tx.send(m)).await,
        Ok(Ok(()))
    )
}

fn text(e: &LogEntry) -> Message {
    // A LogEntry is plain data and always serializes.
    Message::text(serde_json::to_string(e).unwrap_or_default())
}

async fn stream<B: Backend>(state: Arc<ApiState<B>>, socket: WebSocket, filter: LiveFilter) {
    let (mut tx, mut rx) = socket.split();
    let mut logs = state.backend.live_logs();
    let mut findings = state.backend.subscribe();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        let entry = tokio::select! {
            r = logs.recv() => r,
            r = findings.recv() => r.map(|f| finding_entry(&f)),
            _ = ping.tick() => {
                if !send(&mut tx, Message::ping(Vec::new())).await {
                    break;
                }
                continue;
            }
            m = rx.next() => match m {
                Some(Ok(m)) if !m.is_close() => continue,
                _ => break,
            },
        };
        let entry = match entry {
            Ok(e) => e,
            Err(RecvError::Lagged(n)) => {
                state.sse_lagged_total.fetch_add(1, Ordering::Relaxed);
                LogEntry::notice(format!("{n} entries were dropped: this client fell behind"))
            }
            Err(RecvError::Closed) => break,
        };
        if filter.wants(&entry) && !send(&mut tx, text(&entry)).await {
            break;
        }
    }
    let _ = tx.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_apply() {
        assert!(LiveFilter::parse("level=fatal").is_err());
        assert!(LiveFilter::parse("source=crowdsec").is_err());
        let f = LiveFilter::parse("level=warn&source=waf").expect("filter");
        let mut e = LogEntry::notice("x".into());
        e.source = "waf";
        e.level = "error";
        assert!(f.wants(&e));
        e.level = "info";
        assert!(!f.wants(&e), "below the level");
        e.level = "warn";
        e.source = "agent";
        assert!(!f.wants(&e), "another source");
        assert!(LiveFilter::parse("").expect("none").wants(&e));
    }

    #[test]
    fn findings_map_to_levels_and_sources() {
        let f = Finding {
            check: "waf_block".into(),
            severity: Severity::High,
            ip: Some("203.0.113.9".into()),
            ..Default::default()
        };
        let e = finding_entry(&f);
        assert_eq!((e.level, e.source), ("error", "waf"));
        assert_eq!(e.fields["ip"], "203.0.113.9");
        let f = Finding {
            check: "port_scan".into(),
            severity: Severity::Warning,
            ..Default::default()
        };
        assert_eq!(finding_entry(&f).source, "acl");
        assert_eq!(finding_entry(&f).level, "warn");
    }

    #[test]
    fn origin_must_match_host() {
        let mut h = HeaderMap::new();
        h.insert("host", "agent.example:8443".parse().expect("hv"));
        assert!(!same_origin(&h), "no Origin");
        h.insert("origin", "https://evil.example".parse().expect("hv"));
        assert!(!same_origin(&h));
        h.insert("origin", "https://agent.example:8443".parse().expect("hv"));
        assert!(same_origin(&h));
    }
}
