// SPDX-License-Identifier: GPL-2.0-only
//! Browser sessions and budgets, through the real filter: `/login` mints a session
//! cookie (never the token) with its CSRF token, `/logout` ends it, guessing is
//! throttled per client, every response carries the security headers.

mod common;

use std::net::SocketAddr;

use api::{auth::CSRF_HEADER, listener::Peer, Limits};
use common::{state, state_with_limits, ADMIN, READ};
use warp::http::StatusCode;

fn peer(ip: &str) -> Peer {
    Peer(SocketAddr::new(ip.parse().expect("ip"), 40000))
}

async fn login(
    f: &(impl warp::Filter<Extract = (warp::reply::Response,), Error = warp::Rejection>
          + Clone
          + 'static),
    from: &str,
    token: &str,
) -> warp::http::Response<bytes::Bytes> {
    warp::test::request()
        .method("POST")
        .path("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .extension(peer(from))
        .body(format!("token={token}"))
        .reply(f)
        .await
}

#[tokio::test]
async fn login_sets_a_strict_session_cookie_and_logout_ends_it() {
    let f = api::filter(state());
    let resp = login(&f, "192.0.2.10", ADMIN).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let set = resp.headers()["set-cookie"].to_str().expect("ascii");
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
    let session = set
        .strip_prefix("csm_auth=")
        .and_then(|s| s.split(';').next())
        .expect("csm_auth cookie")
        .to_string();
    assert!(
        !session.contains(ADMIN),
        "the token itself is not the cookie"
    );
    let body: serde_json::Value = serde_json::from_slice(resp.body()).expect("json");
    let csrf = body["csrf_token"].as_str().expect("csrf_token").to_string();
    assert_eq!(body["scope"], "admin");
    assert_eq!(resp.headers()[CSRF_HEADER], csrf.as_str());

    let cookie = format!("csm_auth={session}");
    let write = |csrf: Option<&str>, origin: Option<&str>| {
        let mut r = warp::test::request()
            .method("POST")
            .path("/api/v1/block-ip")
            .header("host", "panel.example:9443")
            .header("cookie", &cookie)
            .body(r#"{"ip":"203.0.113.5"}"#);
        if let Some(c) = csrf {
            r = r.header(CSRF_HEADER, c);
        }
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r
    };
    assert_eq!(
        write(None, None).reply(&f).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        write(Some(&csrf), Some("https://evil.example"))
            .reply(&f)
            .await
            .status(),
        StatusCode::FORBIDDEN,
        "a foreign Origin is refused even with the CSRF token"
    );
    assert_eq!(
        write(Some(&csrf), Some("https://panel.example:9443"))
            .reply(&f)
            .await
            .status(),
        StatusCode::OK
    );

    let out = warp::test::request()
        .method("POST")
        .path("/logout")
        .header("cookie", &cookie)
        .header(CSRF_HEADER, &csrf)
        .reply(&f)
        .await;
    assert_eq!(out.status(), StatusCode::OK);
    assert!(out.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .contains("Max-Age=0"));
    let after = warp::test::request()
        .path("/api/v1/status")
        .header("cookie", &cookie)
        .reply(&f)
        .await;
    assert_eq!(
        after.status(),
        StatusCode::UNAUTHORIZED,
        "the session ended"
    );
}

#[tokio::test]
async fn a_read_login_stays_read() {
    let f = api::filter(state());
    let resp = login(&f, "192.0.2.11", READ).await;
    let set = resp.headers()["set-cookie"].to_str().expect("ascii");
    let cookie = set.split(';').next().expect("cookie").to_string();
    let admin_route = warp::test::request()
        .path("/api/v1/audit")
        .header("cookie", &cookie)
        .reply(&f)
        .await;
    assert_eq!(admin_route.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn twelve_bad_logins_end_in_429_for_that_client_only() {
    let f = api::filter(state());
    let mut codes = Vec::new();
    for i in 0..12 {
        codes.push(
            login(&f, "198.51.100.7", &format!("guess-{i}"))
                .await
                .status(),
        );
    }
    assert!(
        codes[..5].iter().all(|c| *c == StatusCode::UNAUTHORIZED),
        "{codes:?}"
    );
    assert!(
        codes[5..]
            .iter()
            .all(|c| *c == StatusCode::TOO_MANY_REQUESTS),
        "{codes:?}"
    );
    // The right token is refused too while the budget is spent.
    assert_eq!(
        login(&f, "198.51.100.7", ADMIN).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client is not punished for it.
    assert_eq!(
        login(&f, "198.51.100.8", ADMIN).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn guessed_bearer_tokens_cost_the_login_budget() {
    let f = api::filter(state());
    let mut codes = Vec::new();
    for i in 0..8 {
        let r = warp::test::request()
            .path("/api/v1/status")
            .header("authorization", format!("Bearer guess-{i}"))
            .extension(peer("203.0.113.9"))
            .reply(&f)
            .await;
        codes.push(r.status());
    }
    assert_eq!(&codes[..5], &[StatusCode::UNAUTHORIZED; 5], "{codes:?}");
    assert_eq!(
        &codes[5..],
        &[StatusCode::TOO_MANY_REQUESTS; 3],
        "{codes:?}"
    );
    // A valid token from the same client still works: only guesses are limited.
    let ok = warp::test::request()
        .path("/api/v1/status")
        .header("authorization", format!("Bearer {ADMIN}"))
        .extension(peer("203.0.113.9"))
        .reply(&f)
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn requests_past_the_per_client_budget_get_429() {
    let f = api::filter(state_with_limits(Limits {
        requests_per_minute: 20,
        ..Limits::default()
    }));
    let mut ok = 0;
    let mut throttled = 0;
    for _ in 0..30 {
        let r = warp::test::request()
            .path("/api/v1/status")
            .header("authorization", format!("Bearer {ADMIN}"))
            .extension(peer("192.0.2.50"))
            .reply(&f)
            .await;
        match r.status() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => throttled += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, throttled), (20, 10));
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let f = api::filter(state());
    let ok = warp::test::request()
        .path("/api/v1/status")
        .header("authorization", format!("Bearer {ADMIN}"));
    let denied = warp::test::request().path("/api/v1/status");
    let missing = warp::test::request()
        .path("/api/v1/nope")
        .header("authorization", format!("Bearer {ADMIN}"));
    let form = warp::test::request().path("/login");
    for (what, req, status) in [
        ("200", ok, StatusCode::OK),
        ("401", denied, StatusCode::UNAUTHORIZED),
        ("404", missing, StatusCode::NOT_FOUND),
        ("login form", form, StatusCode::OK),
    ] {
        let r = req.reply(&f).await;
        assert_eq!(r.status(), status, "{what}");
        let h = r.headers();
        assert_eq!(h["cache-control"], "no-store", "{what}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(h["x-frame-options"], "DENY", "{what}");
        assert!(h["strict-transport-security"]
            .to_str()
            .expect("ascii")
            .starts_with("max-age="));
        let csp = h["content-security-policy"].to_str().expect("ascii");
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    }
}

#[tokio::test]
async fn sse_streams_are_capped() {
    let st = state_with_limits(Limits {
        max_sse_clients: 1,
        ..Limits::default()
    });
    let f = api::filter(st.clone());
    let open = || {
        warp::test::request()
            .path("/api/v1/events")
            .header("authorization", format!("Bearer {READ}"))
            .filter(&f)
    };
    let first = open().await.expect("never rejects");
    assert_eq!(first.status(), StatusCode::OK);
    let second = open().await.expect("never rejects");
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    drop(first);
    let third = open().await.expect("never rejects");
    assert_eq!(
        third.status(),
        StatusCode::OK,
        "a closed stream frees its slot"
    );
    assert_eq!(
        st.sse_refused_total
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}
