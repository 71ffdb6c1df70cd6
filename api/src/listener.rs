// SPDX-License-Identifier: GPL-2.0-only
//! The API's own accept loop: TLS (tokio-rustls) and HTTP/1.1 (hyper 1) around the
//! warp filter, with limits a local user cannot exhaust.
//!
//! - a global and a per-client connection cap. At a cap, the oldest connection that
//!   has not sent a request yet (in the cap's scope) is closed to make room; with
//!   none, the new connection is closed at once, before TLS. Both are counted. Every
//!   loopback address is one client for the caps: a local user can bind any of
//!   127.0.0.0/8, and must not get 16 million per-client caps from it;
//! - a TLS handshake timeout and a request-header timeout (which also ends idle
//!   keep-alive connections), so idle sockets do not pile up;
//! - `accept` errors (EMFILE when the process is out of descriptors) back off
//!   instead of spinning, and never end the loop;
//! - a request hyper cannot parse gets its 400, then the connection is closed the
//!   lingering way (see [`SharedIo`]), so a client still sending its body reads the
//!   answer instead of a reset.
//!
//! The client's address reaches the filter as a [`Peer`] request extension.

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    io,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::{watch, Notify},
    task::JoinSet,
};
use tokio_rustls::{rustls, TlsAcceptor};

use crate::throttle::client_key;

/// Connection and request limits of the listener.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Open connections at most, all clients together.
    pub max_connections: usize,
    /// Open connections at most from one client (IPv4 address, IPv6 /64).
    pub max_connections_per_ip: usize,
    /// A TLS handshake not done within this is dropped.
    pub handshake_timeout: Duration,
    /// Request headers (and the wait for the next request on a kept-alive
    /// connection) not complete within this close the connection.
    pub header_timeout: Duration,
    /// SSE streams open at once; past it `/api/v1/events` answers 503.
    pub max_sse_clients: usize,
    /// `POST /login` attempts and unknown credentials per client per minute.
    pub login_per_minute: u32,
    /// Requests per client per minute.
    pub requests_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            max_connections_per_ip: 64,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(15),
            max_sse_clients: 64,
            login_per_minute: 5,
            requests_per_minute: 600,
        }
    }
}

/// What the listener counted (exported in `/metrics`).
#[derive(Default, Debug)]
pub struct ConnStats {
    pub accepted: AtomicU64,
    pub open: AtomicU64,
    pub refused_global: AtomicU64,
    pub refused_per_ip: AtomicU64,
    /// Connections that had sent no request, closed to make room at a cap.
    pub evicted: AtomicU64,
    pub handshake_failed: AtomicU64,
    /// Kept-alive or new connections that sent no complete request headers within
    /// the header timeout.
    pub ended_timeout: AtomicU64,
    /// Connections that ended in an HTTP error (unparsable request, I/O error).
    pub ended_error: AtomicU64,
    pub accept_errors: AtomicU64,
}

/// The remote address of the connection a request came on.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the API certificate: {0}")]
    Cert(String),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// Rustls server configuration from PEM certificate chain and key.
pub fn tls_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<rustls::ServerConfig, ListenError> {
    let certs = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ListenError::Cert(format!("reading the certificate: {e}")))?;
    if certs.is_empty() {
        return Err(ListenError::Cert("no certificate in the PEM".into()));
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| ListenError::Cert(format!("reading the key: {e}")))?
        .ok_or_else(|| ListenError::Cert("no private key in the PEM".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The client a connection counts against for the caps: [`client_key`], except
/// that every loopback address is one client.
fn conn_key(ip: IpAddr) -> IpAddr {
    let key = client_key(ip);
    if key.is_loopback() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        key
    }
}

/// A connection that has not sent a request yet: the first to go at a cap.
struct Idle {
    key: IpAddr,
    evict: Arc<Notify>,
    released: Arc<AtomicBool>,
}

/// Open connections per client, and all together; the idle ones in arrival order.
#[derive(Default)]
struct Table {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    idle: BTreeMap<u64, Idle>,
    next: u64,
}

impl Table {
    fn release(&mut self, key: IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.per_ip.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_ip.remove(&key);
            }
        }
    }

    /// Close the oldest idle connection (of `scope` when given) and give its place
    /// back at once; false when there is none.
    fn evict(&mut self, scope: Option<IpAddr>, stats: &ConnStats) -> bool {
        let Some(seq) = self
            .idle
            .iter()
            .find(|(_, i)| scope.is_none_or(|k| i.key == k))
            .map(|(s, _)| *s)
        else {
            return false;
        };
        let Some(idle) = self.idle.remove(&seq) else {
            return false;
        };
        idle.released.store(true, Ordering::Relaxed);
        idle.evict.notify_one();
        self.release(idle.key);
        stats.open.fetch_sub(1, Ordering::Relaxed);
        stats.evicted.fetch_add(1, Ordering::Relaxed);
        true
    }
}

/// One open connection's place in the [`Table`]; given back on drop (or at once
/// when it is evicted).
struct Slot {
    table: Arc<Mutex<Table>>,
    key: IpAddr,
    seq: u64,
    stats: Arc<ConnStats>,
    /// Its place was given back by an eviction.
    released: Arc<AtomicBool>,
    /// Told to close by an eviction.
    evict: Arc<Notify>,
    served: AtomicBool,
}

impl Slot {
    /// A request arrived: the connection is no longer idle, and never evicted.
    fn serving(&self) {
        if !self.served.swap(true, Ordering::Relaxed) {
            let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
            t.idle.remove(&self.seq);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        t.idle.remove(&self.seq);
        if !self.released.swap(true, Ordering::Relaxed) {
            t.release(self.key);
            self.stats.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn take_slot(
    table: &Arc<Mutex<Table>>,
    stats: &Arc<ConnStats>,
    limits: &Limits,
    ip: IpAddr,
) -> Option<Slot> {
    let key = conn_key(ip);
    let mut t = table.lock().unwrap_or_else(|p| p.into_inner());
    if t.total >= limits.max_connections && !t.evict(None, stats) {
        stats.refused_global.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    if t.per_ip.get(&key).copied().unwrap_or(0) >= limits.max_connections_per_ip
        && !t.evict(Some(key), stats)
    {
        stats.refused_per_ip.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    *t.per_ip.entry(key).or_insert(0) += 1;
    t.total += 1;
    stats.open.fetch_add(1, Ordering::Relaxed);
    let (seq, evict, released) = (
        t.next,
        Arc::new(Notify::new()),
        Arc::new(AtomicBool::new(false)),
    );
    t.next += 1;
    t.idle.insert(
        seq,
        Idle {
            key,
            evict: evict.clone(),
            released: released.clone(),
        },
    );
    Some(Slot {
        table: table.clone(),
        key,
        seq,
        stats: stats.clone(),
        released,
        evict,
        served: AtomicBool::new(false),
    })
}

/// How long a connection may take to finish its responses once shutdown begins
/// (an SSE stream never finishes by itself).
const DRAIN: Duration = Duration::from_secs(3);

/// Serve `service` over TLS on `listener` until `shutdown` resolves, then let open
/// connections finish (up to [`DRAIN`]).
pub async fn run<S, B>(
    listener: Arc<TcpListener>,
    tls: Arc<rustls::ServerConfig>,
    limits: Limits,
    stats: Arc<ConnStats>,
    service: S,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    S: tower_service::Service<
            hyper::Request<Incoming>,
            Response = hyper::Response<B>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let acceptor = TlsAcceptor::from(tls);
    let table = Arc::new(Mutex::new(Table::default()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => {
                backoff = Duration::from_millis(10);
                a
            }
            Err(e) => {
                // EMFILE/ENFILE/ENOBUFS: wait for descriptors to come back rather
                // than spin; connections that finish give theirs back meanwhile.
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "API accept failed; backing off.");
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Some(slot) = take_slot(&table, &stats, &limits, peer.ip()) else {
            // Dropping the stream closes it before any TLS work.
            drop(tcp);
            continue;
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = service.clone();
        let limits = limits.clone();
        let stats = stats.clone();
        let mut stop = stop_rx.clone();
        conns.spawn(async move {
            let slot = Arc::new(slot);
            let (evict, served) = (slot.evict.clone(), slot.clone());
            let serve = async move {
                // A handshake in progress ends at shutdown too (it has nothing to drain).
                let mut stopping = stop.clone();
                let handshake = tokio::select! {
                    h = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)) => h,
                    _ = async { let _ = stopping.wait_for(|s| *s).await; } => return,
                };
                let tls =
                    match handshake {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            stats.handshake_failed.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%peer, error = %e, "TLS handshake failed.");
                            return;
                        }
                        Err(_) => {
                            stats.handshake_failed.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%peer, "TLS handshake timed out.");
                            return;
                        }
                    };
                let svc = service_fn(move |mut req: hyper::Request<Incoming>| {
                    served.serving();
                    req.extensions_mut().insert(Peer(peer));
                    let mut service = service.clone();
                    tower_service::Service::call(&mut service, req)
                });
                let mut builder = http1::Builder::new();
                builder
                    .timer(TokioTimer::new())
                    .header_read_timeout(limits.header_timeout)
                    .max_buf_size(64 * 1024);
                // Upgrades: the live-logs WebSocket (`/api/v1/logs/live`).
                let io = SharedIo(Arc::new(Mutex::new(tls)));
                let conn = builder
                    .serve_connection(TokioIo::new(io.clone()), svc)
                    .with_upgrades();
                tokio::pin!(conn);
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            let counter = if e.is_timeout() { &stats.ended_timeout } else { &stats.ended_error };
                            counter.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%peer, error = %e, "API connection ended with an error.");
                            if e.is_parse() {
                                linger(io).await;
                            }
                        }
                    }
                    _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(DRAIN, conn).await;
                    }
                }
            };
            tokio::select! {
                _ = serve => {}
                _ = evict.notified() => {
                    tracing::debug!(%peer, "Idle API connection closed to make room at a cap.");
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while conns.join_next().await.is_some() {}
}

/// How long, and how much of what a client is still sending, [`linger`] reads.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

/// The connection's stream, shared between hyper and the listener. After a request
/// hyper could not parse, hyper writes its 400 and stops reading; the stream it
/// drops is still the listener's, which closes it the lingering way ([`linger`]).
/// Closed at once, with the rest of the request unread, the socket answered what
/// the client sent next with a reset: a client that sends its whole request before
/// it reads (urllib3) saw its write fail and never read the 400.
struct SharedIo<T>(Arc<Mutex<T>>);

impl<T> Clone for SharedIo<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> SharedIo<T> {
    /// The stream, for one poll (hyper and the listener never poll it at once).
    fn io(&self) -> std::sync::MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SharedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        Pin::new(&mut *self.io()).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SharedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        Pin::new(&mut *self.io()).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        Pin::new(&mut *self.io()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io().is_write_vectored()
    }

    fn poll_flush(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        Pin::new(&mut *self.io()).poll_flush(cx)
    }

    fn poll_shutdown(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        Pin::new(&mut *self.io()).poll_shutdown(cx)
    }
}

/// Close `io` the lingering way: end our side (TLS close_notify, then the TCP
/// write side), then read and drop what the client still sends, for at most
/// [`LINGER`] and [`LINGER_BYTES`], so its request goes out whole and it reads the
/// answer before the connection goes.
async fn linger<T: AsyncRead + AsyncWrite + Unpin>(mut io: T) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(LINGER, async {
        let _ = io.shutdown().await;
        let mut buf = [0u8; 8192];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}
