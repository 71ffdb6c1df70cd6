// SPDX-License-Identifier: GPL-2.0-only
use std::{
    future::Future,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast;
use warp::{
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    path::FullPath,
    Filter,
};

use crate::{
    auth::Denied,
    listener::{self, ConnStats, Limits, ListenError, Peer},
    model::{BlockEntry, BlockRequest, DetectOp, Finding, FirewallOp, LogEntry},
    routes::{self, Handler},
    throttle::RateLimiter,
    ApiError, TokenSet,
};

/// Pending connections the kernel queues for the accept loop.
const LISTEN_BACKLOG: u32 = 1024;

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
    /// This API's OpenAPI document (`/api/v1/openapi.json`); the agent adds the
    /// schemas of its response types.
    fn openapi(&self) -> serde_json::Value {
        crate::openapi::document()
    }
    /// The agent's own log as it is written (`/api/v1/logs/live`).
    fn live_logs(&self) -> broadcast::Receiver<LogEntry>;
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
    pub limits: Limits,
    /// SSE clients dropped because they fell behind the broadcast buffer.
    pub sse_lagged_total: AtomicU64,
    /// SSE streams open now.
    pub sse_clients: AtomicUsize,
    /// SSE streams refused at `limits.max_sse_clients`.
    pub sse_refused_total: AtomicU64,
    /// Requests answered 429.
    pub throttled_total: AtomicU64,
    pub conns: Arc<ConnStats>,
    login_budget: RateLimiter,
    request_budget: RateLimiter,
}

impl<B: Backend> ApiState<B> {
    pub fn new(backend: Arc<B>, tokens: TokenSet) -> Arc<Self> {
        Self::with_limits(backend, tokens, Limits::default())
    }

    pub fn with_limits(backend: Arc<B>, tokens: TokenSet, limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            backend,
            tokens,
            login_budget: RateLimiter::new(limits.login_per_minute),
            request_budget: RateLimiter::new(limits.requests_per_minute),
            limits,
            sse_lagged_total: AtomicU64::new(0),
            sse_clients: AtomicUsize::new(0),
            sse_refused_total: AtomicU64::new(0),
            throttled_total: AtomicU64::new(0),
            conns: Arc::new(ConnStats::default()),
        })
    }

    fn throttled(&self, what: &str) -> ApiError {
        self.throttled_total.fetch_add(1, Ordering::Relaxed);
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many {what}; try again in a minute"),
        )
    }
}

/// Headers on every response: nothing cached, sniffed, framed or sent elsewhere.
fn secure_headers(resp: &mut warp::reply::Response) {
    let h = resp.headers_mut();
    let html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let csp = if html {
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    } else {
        "default-src 'none'; frame-ancestors 'none'"
    };
    for (k, v) in [
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("content-security-policy", csp),
        ("strict-transport-security", "max-age=31536000"),
        // same-origin, not no-referrer: with no-referrer a browser sends `Origin: null`
        // on a form POST, and the login's origin check must see this host.
        ("referrer-policy", "same-origin"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
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
        .and(warp::ext::optional::<Peer>())
        // The live-logs WebSocket's upgrade, when the request asks for one.
        .and(
            warp::ws()
                .map(Some)
                .or(warp::any().map(|| None))
                .unify(),
        )
        .and(warp::body::stream())
        .then(
            move |method: Method,
                  path: FullPath,
                  headers: HeaderMap,
                  query: String,
                  peer: Option<Peer>,
                  ws: Option<warp::ws::Ws>,
                  body| {
                let state = state.clone();
                // Requests that did not come through the listener (in-process tests)
                // share one budget.
                let ip = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0.ip());
                async move {
                    let started = std::time::Instant::now();
                    let req = Request {
                        ip,
                        method: &method,
                        path: path.as_str(),
                        headers: &headers,
                        query: &query,
                    };
                    let mut resp = match dispatch(&state, req, ws, body).await
                    {
                        Ok(r) => r,
                        Err(e) => e.into_response(),
                    };
                    secure_headers(&mut resp);
                    tracing::debug!(%method, path = path.as_str(), %ip, status = resp.status().as_u16(),
                    elapsed_us = started.elapsed().as_micros() as u64, "request");
                    resp
                }
            },
        )
}

/// What dispatch reads of a request besides its body.
struct Request<'a> {
    ip: IpAddr,
    method: &'a Method,
    path: &'a str,
    headers: &'a HeaderMap,
    query: &'a str,
}

async fn dispatch<B: Backend>(
    state: &Arc<ApiState<B>>,
    req: Request<'_>,
    ws: Option<warp::ws::Ws>,
    body: impl Stream<Item = Result<impl Buf, warp::Error>> + Unpin,
) -> Result<warp::reply::Response, ApiError> {
    let Request {
        ip,
        method,
        path,
        headers,
        query,
    } = req;
    // Budgets first: a client over them learns nothing else, not even 404.
    if !state.request_budget.take(ip) {
        return Err(state.throttled("requests"));
    }
    let route = routes::find(method.as_str(), path)?;
    let is_login = route.handler == Handler::Login && *method == Method::POST;
    if is_login && !state.login_budget.take(ip) {
        return Err(state.throttled("login attempts"));
    }
    let principal = match state.tokens.check(method, headers, route.scope) {
        Ok(p) => p,
        Err((why, msg)) => {
            // Every unknown credential is a guess and costs the login budget.
            if why == Denied::Unknown && !state.login_budget.take(ip) {
                return Err(state.throttled("failed authentications"));
            }
            return Err(ApiError::new(why.status(), msg));
        }
    };
    let body = if *method == Method::GET || *method == Method::HEAD {
        Bytes::new()
    } else {
        read_body(body).await?
    };
    match route.handler {
        Handler::Login if *method == Method::POST => {
            return crate::login::login(state, headers, &body)
        }
        Handler::Login => return Ok(crate::login::form()),
        Handler::Logout => return Ok(crate::login::logout(state, headers)),
        Handler::LiveLogs => return crate::live::open(state, ws, headers, &principal, query),
        Handler::Ui => return Ok(crate::ui::serve(path)),
        _ => {}
    }
    let mut from_headers = crate::handlers::FromHeaders::of(headers);
    from_headers.peer_local = ip.to_canonical().is_loopback();
    crate::handlers::handle(state, route, &principal, path, query, from_headers, body).await
}

/// Serve `filter(state)` over TLS on `addr` until `shutdown` resolves, with the
/// connection limits of `state.limits` (see [`listener`]).
/// Returns the bound address (useful with port 0) and the server future.
pub fn serve<B: Backend>(
    state: Arc<ApiState<B>>,
    addr: SocketAddr,
    cert_pem: &[u8],
    key_pem: &[u8],
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, impl Future<Output = ()> + Send + 'static), ListenError> {
    let l = bind(state, addr, cert_pem, key_pem)?;
    Ok((l.addr, l.run(shutdown)))
}

type BoxedUnit = std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A bound API listener. [`Listening::run`] serves it until a shutdown future
/// resolves; it can be run again after a run died (the socket stays bound, so no
/// connection attempt is refused meanwhile, only queued).
pub struct Listening {
    pub addr: SocketAddr,
    run: Arc<dyn Fn(BoxedUnit) -> BoxedUnit + Send + Sync>,
}

impl Listening {
    pub fn run(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        (self.run)(Box::pin(shutdown))
    }
}

/// Bind `addr` (TLS with `cert_pem`/`key_pem`) for [`Listening::run`].
pub fn bind<B: Backend>(
    state: Arc<ApiState<B>>,
    addr: SocketAddr,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Listening, ListenError> {
    let tls = Arc::new(listener::tls_config(cert_pem, key_pem)?);
    let bind = |source| ListenError::Bind { addr, source };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(bind)?;
    socket.set_reuseaddr(true).map_err(bind)?;
    socket.bind(addr).map_err(bind)?;
    // A deep backlog: a burst of connections waits for the accept loop (which
    // closes those over a cap at once) instead of being dropped at SYN.
    let tcp = Arc::new(socket.listen(LISTEN_BACKLOG).map_err(bind)?);
    let bound = tcp.local_addr().map_err(bind)?;
    let limits = state.limits.clone();
    let stats = state.conns.clone();
    let service = warp::service(filter(state));
    Ok(Listening {
        addr: bound,
        run: Arc::new(move |shutdown| {
            Box::pin(listener::run(
                tcp.clone(),
                tls.clone(),
                limits.clone(),
                stats.clone(),
                service.clone(),
                shutdown,
            ))
        }),
    })
}
