// SPDX-License-Identifier: GPL-2.0-only
use std::{
    future::Future,
    net::SocketAddr,
    sync::{atomic::AtomicU64, Arc},
};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast;
use warp::{
    http::{HeaderMap, Method, StatusCode},
    path::FullPath,
    Filter,
};

use crate::{
    model::{BlockEntry, BlockRequest, DetectOp, Finding, FirewallOp},
    routes, ApiError, TokenSet,
};

/// Largest request body accepted (bigger ones get 413 without being read in full).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What the API needs from the agent. The agent implements it over its store,
/// firewall maps and event pipeline.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn status(&self) -> Result<serde_json::Value, ApiError>;
    async fn health(&self) -> Result<serde_json::Value, ApiError>;
    async fn components(&self) -> Result<serde_json::Value, ApiError>;
    fn capabilities(&self) -> Vec<&'static str>;
    async fn findings(&self) -> Result<Vec<Finding>, ApiError>;
    async fn block_ip(&self, req: BlockRequest, actor: &str) -> Result<BlockEntry, ApiError>;
    async fn blocked_ips(&self) -> Result<Vec<BlockEntry>, ApiError>;
    /// Prometheus text exposition.
    async fn metrics(&self) -> Result<String, ApiError>;
    /// Findings as they are dispatched.
    fn subscribe(&self) -> broadcast::Receiver<Finding>;
    /// Findings with an id above `id`, oldest first (SSE resume).
    async fn findings_after(&self, id: i64, limit: u32) -> Result<Vec<Finding>, ApiError>;
    /// Every findings/rules/quarantine route: the API parses and checks the request,
    /// the backend acts. Returns the response body and its status.
    async fn detect(
        &self,
        op: DetectOp,
        actor: &str,
    ) -> Result<(StatusCode, serde_json::Value), ApiError>;
    /// Every firewall route: the API parses and checks the request, the backend acts.
    /// Returns the response body and its status.
    async fn firewall(
        &self,
        op: FirewallOp,
        actor: &str,
    ) -> Result<(StatusCode, serde_json::Value), ApiError>;
}

pub struct ApiState<B: Backend> {
    pub backend: Arc<B>,
    pub tokens: TokenSet,
    /// SSE clients dropped because they fell behind the broadcast buffer.
    pub sse_lagged_total: AtomicU64,
}

impl<B: Backend> ApiState<B> {
    pub fn new(backend: Arc<B>, tokens: TokenSet) -> Arc<Self> {
        Arc::new(Self {
            backend,
            tokens,
            sse_lagged_total: AtomicU64::new(0),
        })
    }
}

/// Read a request body up to [`MAX_BODY_BYTES`].
async fn read_body(
    mut body: impl Stream<Item = Result<impl Buf, warp::Error>> + Unpin,
) -> Result<Bytes, ApiError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading body: {e}")))?;
        if buf.len() + chunk.remaining() > MAX_BODY_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body over {MAX_BODY_BYTES} bytes"),
            ));
        }
        buf.extend_from_slice(chunk.chunk());
    }
    Ok(buf.freeze())
}

/// The whole API as one warp filter. Every outcome of dispatch is a response; only
/// warp's own extraction (never in practice) could reject.
pub fn filter<B: Backend>(
    state: Arc<ApiState<B>>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::body::stream())
        .then(
            move |method: Method, path: FullPath, headers: HeaderMap, query: String, body| {
                let state = state.clone();
                async move {
                    let started = std::time::Instant::now();
                    let resp = match dispatch(
                        &state,
                        &method,
                        path.as_str(),
                        &headers,
                        &query,
                        body,
                    )
                    .await
                    {
                        Ok(r) => r,
                        Err(e) => e.into_response(),
                    };
                    tracing::debug!(%method, path = path.as_str(), status = resp.status().as_u16(),
                    elapsed_us = started.elapsed().as_micros() as u64, "request");
                    resp
                }
            },
        )
}

async fn dispatch<B: Backend>(
    state: &Arc<ApiState<B>>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    query: &str,
    body: impl Stream<Item = Result<impl Buf, warp::Error>> + Unpin,
) -> Result<warp::reply::Response, ApiError> {
    let route = routes::find(method.as_str(), path)?;
    let principal = state.tokens.authorize(method, headers, route.scope)?;
    let body = if *method == Method::GET || *method == Method::HEAD {
        Bytes::new()
    } else {
        read_body(body).await?
    };
    // SSE resume; an unparsable id is treated as absent (a fresh stream).
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    crate::handlers::handle(state, route, &principal, path, query, last_event_id, body).await
}

/// Serve `filter(state)` over TLS on `addr` until `shutdown` resolves.
/// Returns the bound address (useful with port 0) and the server future.
pub fn serve<B: Backend>(
    state: Arc<ApiState<B>>,
    addr: SocketAddr,
    cert_pem: &[u8],
    key_pem: &[u8],
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, impl Future<Output = ()> + 'static), warp::Error> {
    warp::serve(filter(state))
        .tls()
        .cert(cert_pem)
        .key(key_pem)
        .try_bind_with_graceful_shutdown(addr, shutdown)
}
