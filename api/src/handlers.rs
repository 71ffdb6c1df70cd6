// SPDX-License-Identifier: GPL-2.0-only
use std::{
    convert::Infallible,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio_stream::wrappers::{errors::BroadcastStreamRecvError, BroadcastStream};
use warp::{http::StatusCode, Reply};

use crate::{
    auth::Principal,
    model::BlockRequest,
    routes::{Handler, Route},
    ApiError, ApiState, Backend,
};

fn json<T: serde::Serialize>(v: &T) -> warp::reply::Response {
    warp::reply::json(v).into_response()
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("request body required (JSON)"));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

pub(crate) async fn handle<B: Backend>(
    state: &Arc<ApiState<B>>,
    route: &Route,
    principal: &Principal,
    _query: &str,
    body: Bytes,
) -> Result<warp::reply::Response, ApiError> {
    let b = &state.backend;
    Ok(match route.handler {
        Handler::Status => {
            let mut resp = json(&b.status().await?);
            if principal.via_cookie {
                // Cookie sessions learn their CSRF token here (csm-api.md: "obtained
                // from the login response or page meta tag").
                let csrf = state.tokens.csrf_for(&principal.token_digest);
                if let Ok(v) = warp::http::HeaderValue::from_str(&csrf) {
                    resp.headers_mut().insert(crate::auth::CSRF_HEADER, v);
                }
            }
            resp
        }
        Handler::Health => json(&b.health().await?),
        Handler::Components => json(&b.components().await?),
        Handler::Capabilities => json(&serde_json::json!({ "capabilities": b.capabilities() })),
        Handler::Findings => json(&b.findings().await?),
        Handler::BlockedIps => json(&b.blocked_ips().await?),
        Handler::BlockIp => {
            let req: BlockRequest = parse_json(&body)?;
            let entry = b.block_ip(req, &principal.name).await?;
            json(
                &serde_json::json!({ "status": "blocked", "ip": entry.ip, "expires_at": entry.expires_at }),
            )
        }
        Handler::Metrics => {
            let mut text = b.metrics().await?;
            text.push_str(&format!(
                "# HELP rampart_sse_clients_dropped_total SSE clients dropped for falling behind.\n\
                 # TYPE rampart_sse_clients_dropped_total counter\n\
                 rampart_sse_clients_dropped_total {}\n",
                state.sse_lagged_total.load(Ordering::Relaxed)
            ));
            warp::reply::with_header(text, "content-type", "text/plain; version=0.0.4")
                .into_response()
        }
        Handler::Events => sse(state),
    })
}

/// SSE stream of findings: `id:` is the finding id, `data:` one JSON object.
/// A client that falls behind the broadcast buffer is disconnected (and counted)
/// instead of slowing the pipeline down.
fn sse<B: Backend>(state: &Arc<ApiState<B>>) -> warp::reply::Response {
    let rx = state.backend.subscribe();
    let st = state.clone();
    let stream = BroadcastStream::new(rx)
        .take_while(move |item| {
            let lagged = matches!(item, Err(BroadcastStreamRecvError::Lagged(_)));
            if lagged {
                st.sse_lagged_total.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("SSE client fell behind; disconnecting it.");
            }
            std::future::ready(!lagged)
        })
        .filter_map(|item| async move {
            let finding = item.ok()?;
            let data = serde_json::to_string(&finding).ok()?;
            Some(Ok::<_, Infallible>(
                warp::sse::Event::default()
                    .id(finding.id.to_string())
                    .data(data),
            ))
        });
    let reply = warp::sse::reply(
        warp::sse::keep_alive()
            .interval(Duration::from_secs(15))
            .stream(stream),
    );
    let mut resp = reply.into_response();
    resp.headers_mut().insert(
        "x-accel-buffering",
        warp::http::HeaderValue::from_static("no"),
    );
    *resp.status_mut() = StatusCode::OK;
    resp
}
