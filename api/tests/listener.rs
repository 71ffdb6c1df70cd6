// SPDX-License-Identifier: GPL-2.0-only
//! The accept loop over real sockets and TLS: caps and timeouts that a local user
//! cannot get around by opening connections and leaving them idle.

mod common;

use std::{
    net::SocketAddr,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use api::{ApiState, Limits};
use common::{state_with_limits, MemBackend, ADMIN};
use tokio::{
    io::AsyncReadExt,
    net::{TcpSocket, TcpStream},
    sync::oneshot,
};
use tokio_rustls::rustls;

struct Server {
    addr: SocketAddr,
    cert_der: Vec<u8>,
    state: Arc<ApiState<MemBackend>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(limits: Limits) -> Self {
        let ck =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
        let state = state_with_limits(limits);
        let (tx, rx) = oneshot::channel::<()>();
        let (addr, fut) = api::serve(
            state.clone(),
            "127.0.0.1:0".parse().expect("addr"),
            ck.cert.pem().as_bytes(),
            ck.key_pair.serialize_pem().as_bytes(),
            async {
                let _ = rx.await;
            },
        )
        .expect("serve");
        Self {
            addr,
            cert_der: ck.cert.der().to_vec(),
            state,
            stop: Some(tx),
            task: tokio::spawn(fut),
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops")
            .expect("server task");
    }
}

/// A TCP connection to `to` from the loopback address `from`.
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().expect("socket");
    sock.bind(SocketAddr::new(from.parse().expect("ip"), 0))
        .expect("bind a loopback source");
    sock.connect(to).await.expect("connect")
}

/// Does the server close `s` within `within`? (EOF or reset.)
async fn closed_within(s: &mut (impl AsyncReadExt + Unpin), within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

async fn admin_status_from(server: &Server, from: &str) -> reqwest::StatusCode {
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .local_address(Some(from.parse().expect("ip")))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    client
        .get(format!("https://{}/api/v1/status", server.addr))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("the admin gets an answer")
        .status()
}

fn connector(server: &Server) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(
            server.cert_der.clone(),
        ))
        .expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// One keep-alive request on `tls`: the status line's code.
async fn request_on(tls: &mut Tls) -> String {
    use tokio::io::AsyncWriteExt;
    let req = format!(
        "GET /api/v1/status HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ADMIN}\r\n\r\n"
    );
    tls.write_all(req.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 16 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
        .await
        .expect("an answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    text.split(' ').nth(1).unwrap_or_default().to_string()
}

/// A TLS connection from `from` that has made one request (and is kept alive).
async fn serving_from(server: &Server, from: &str) -> Tls {
    let tcp = connect_from(from, server.addr).await;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector(server)
        .connect(name, tcp)
        .await
        .expect("handshake");
    assert_eq!(request_on(&mut tls).await, "200");
    tls
}

/// At the per-client cap the oldest connection that never sent a request makes room;
/// every loopback address is one client, so spreading over 127.0.0.0/8 gains nothing.
#[tokio::test]
async fn one_client_cannot_take_every_connection() {
    let server = Server::start(Limits {
        max_connections_per_ip: 4,
        handshake_timeout: Duration::from_secs(60),
        header_timeout: Duration::from_secs(60),
        ..Limits::default()
    })
    .await;
    let mut serving = serving_from(&server, "127.0.0.9").await;
    let mut idle = Vec::new();
    for from in ["127.0.0.1", "127.0.0.3", "127.0.0.4"] {
        idle.push(connect_from(from, server.addr).await);
    }
    // The fifth from yet another loopback address: the oldest idle one goes.
    let mut fifth = connect_from("127.0.0.5", server.addr).await;
    assert!(
        closed_within(&mut idle[0], Duration::from_secs(5)).await,
        "the oldest idle connection is closed"
    );
    assert!(!closed_within(&mut fifth, Duration::from_millis(100)).await);
    for s in &mut idle[1..] {
        assert!(
            !closed_within(s, Duration::from_millis(50)).await,
            "newer ones stay"
        );
    }
    assert_eq!(server.state.conns.evicted.load(Ordering::Relaxed), 1);
    assert_eq!(server.state.conns.open.load(Ordering::Relaxed), 4);
    // The admin gets in the same way, and the connection that is serving is never
    // the one to go.
    assert_eq!(admin_status_from(&server, "127.0.0.2").await, 200);
    assert_eq!(request_on(&mut serving).await, "200", "still served");
    assert_eq!(server.state.conns.evicted.load(Ordering::Relaxed), 2);
    assert_eq!(server.state.conns.refused_per_ip.load(Ordering::Relaxed), 0);
    server.stop().await;
}

/// The global cap: idle connections make room; with only serving ones, a new
/// connection is closed before TLS.
#[tokio::test]
async fn the_global_cap_holds() {
    let server = Server::start(Limits {
        max_connections: 2,
        handshake_timeout: Duration::from_secs(60),
        header_timeout: Duration::from_secs(60),
        ..Limits::default()
    })
    .await;
    let mut a = serving_from(&server, "127.0.0.3").await;
    let mut idle = connect_from("127.0.0.4", server.addr).await;
    let mut extra = connect_from("127.0.0.6", server.addr).await;
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)).await,
        "idle one evicted"
    );
    assert_eq!(server.state.conns.evicted.load(Ordering::Relaxed), 1);
    drop(extra);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut b = serving_from(&server, "127.0.0.5").await;
    extra = connect_from("127.0.0.6", server.addr).await;
    assert!(
        closed_within(&mut extra, Duration::from_secs(5)).await,
        "nothing idle to close: refused"
    );
    assert_eq!(server.state.conns.refused_global.load(Ordering::Relaxed), 1);
    assert_eq!(request_on(&mut a).await, "200");
    assert_eq!(request_on(&mut b).await, "200");
    // Freed places are reusable.
    drop((a, b));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(admin_status_from(&server, "127.0.0.6").await, 200);
    server.stop().await;
}

#[tokio::test]
async fn a_silent_connection_is_dropped_at_the_handshake_timeout() {
    let server = Server::start(Limits {
        handshake_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut s = connect_from("127.0.0.1", server.addr).await;
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    assert_eq!(
        server.state.conns.handshake_failed.load(Ordering::Relaxed),
        1
    );
    assert_eq!(server.state.conns.open.load(Ordering::Relaxed), 0);
    server.stop().await;
}

#[tokio::test]
async fn a_tls_connection_that_sends_no_request_is_dropped_at_the_header_timeout() {
    let server = Server::start(Limits {
        header_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let connector = connector(&server);
    let tcp = connect_from("127.0.0.1", server.addr).await;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    assert!(
        closed_within(&mut tls, Duration::from_secs(5)).await,
        "an idle TLS connection is closed"
    );
    server.stop().await;
}

/// A request with a header hyper cannot parse, whose body the client sends after
/// the head (as HTTP clients do): the client can send all of it and then read the
/// 400. Closed with the body unread, the socket reset the connection while the
/// client was still sending, and a client that sends its whole request before it
/// reads (urllib3, under schemathesis in CI) saw only the connection torn down ("EOF
/// occurred in violation of protocol"), never the answer.
#[tokio::test]
async fn an_unparsable_request_gets_its_400_even_with_a_body_still_coming() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start(Limits::default()).await;
    const BODY: usize = 48 * 1024;
    for round in 0..3 {
        let tcp = connect_from("127.0.0.1", server.addr).await;
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut tls = connector(&server)
            .connect(name, tcp)
            .await
            .expect("handshake");
        let head = format!(
            "POST /api/v1/undo/run HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\nX-Bad: a\x01b\r\nContent-Length: {BODY}\r\n\r\n"
        );
        tls.write_all(head.as_bytes()).await.expect("head");
        tls.flush().await.expect("flush");
        // The server has parsed the head and answered by now.
        tokio::time::sleep(Duration::from_millis(100)).await;
        for chunk in 0..BODY / 1024 {
            let sent = tls.write_all(&[b'x'; 1024]).await.and(tls.flush().await);
            assert!(
                sent.is_ok(),
                "round {round}: body chunk {chunk} not taken: {sent:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut got)).await;
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("HTTP/1.1 400"),
            "round {round}: {read:?}, got {text:?}"
        );
    }
    server.stop().await;
}
