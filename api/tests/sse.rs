// SPDX-License-Identifier: GPL-2.0-only
//! `/api/v1/events`: a client that falls behind the broadcast buffer is dropped and
//! counted, never slowing the sender; a client resuming with Last-Event-ID gets what
//! it missed first, then live findings, without duplicates.

mod common;

use std::sync::atomic::Ordering;

use api::model::{Finding, Severity};
use common::{state_with, MemBackend, READ};
use futures_util::StreamExt;
use tokio::sync::broadcast;
use warp::http::StatusCode;

fn finding(id: i64) -> Finding {
    Finding {
        id,
        check: "test".into(),
        severity: Severity::Info,
        message: format!("finding {id}"),
        details: String::new(),
        timestamp: "2026-11-23T00:00:00Z".into(),
        path: None,
        pid: None,
        uid: None,
        process: None,
        ip: None,
        account: None,
        tenant_id: None,
        domain: None,
        mailbox: None,
        rule: None,
        status: "active".into(),
        count: 1,
        last_seen: "2026-11-23T00:00:00Z".into(),
        content_sha256: None,
        has_fix: false,
        lineage: Vec::new(),
    }
}

/// The ids of the `data:` events in an SSE body.
fn ids(body: &str) -> Vec<i64> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| {
            serde_json::from_str::<Finding>(d.trim())
                .expect("one finding per data: line")
                .id
        })
        .collect()
}

async fn open(
    st: &std::sync::Arc<api::ApiState<MemBackend>>,
    last_event_id: Option<i64>,
) -> warp::reply::Response {
    let mut req = warp::test::request()
        .path("/api/v1/events")
        .header("authorization", format!("Bearer {READ}"));
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id.to_string());
    }
    let resp = req
        .filter(&api::filter(st.clone()))
        .await
        .expect("never rejects");
    assert_eq!(resp.status(), StatusCode::OK);
    resp
}

#[tokio::test]
async fn a_client_that_falls_behind_is_dropped_and_counted() {
    let (tx, _) = broadcast::channel(4);
    let st = state_with(MemBackend {
        tx: tx.clone(),
        stored: Vec::new(),
        logs: tokio::sync::broadcast::channel(4).0,
    });
    let resp = open(&st, None).await;
    // Ten findings into a buffer of four, nobody reading: the sender never waits.
    for id in 1..=10 {
        tx.send(finding(id)).expect("a subscriber exists");
    }
    // The stream ends (the client is disconnected) instead of delivering a gap.
    let mut body = http_body_util::BodyExt::into_data_stream(resp.into_body());
    let mut text = String::new();
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
    }
    assert!(ids(&text).is_empty(), "{text}");
    assert_eq!(st.sse_lagged_total.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn last_event_id_replays_then_goes_live_without_duplicates() {
    let (tx, _) = broadcast::channel(16);
    let st = state_with(MemBackend {
        tx: tx.clone(),
        stored: (1..=5).map(finding).collect(),
        logs: tokio::sync::broadcast::channel(4).0,
    });
    let resp = open(&st, Some(2)).await;
    // Live: 5 was replayed from the store already (it was stored and broadcast
    // around the time the client connected); 6 and 7 are new.
    for id in [5, 6, 7] {
        tx.send(finding(id)).expect("subscribed");
    }
    drop(tx);
    let mut body = http_body_util::BodyExt::into_data_stream(resp.into_body());
    let mut text = String::new();
    while !text.contains("finding 7") {
        let Some(chunk) = body.next().await else {
            break;
        };
        text.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
    }
    assert_eq!(ids(&text), [3, 4, 5, 6, 7], "{text}");
    for id in [3, 4, 5, 6, 7] {
        assert!(
            text.contains(&format!("id:{id}\n")),
            "id: per event: {text}"
        );
    }
}
