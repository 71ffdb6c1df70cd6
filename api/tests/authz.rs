// SPDX-License-Identifier: GPL-2.0-only
//! Authorization over the whole route table: every route, every credential kind.
//! The backend here is a small in-memory implementation of the trait; what is under
//! test is the auth and dispatch layer, which is the real one.

mod common;

use api::{
    auth::{digest, CSRF_HEADER},
    routes::ROUTES,
    Scope,
};
use common::{state, ADMIN, METRICS, READ};
use warp::http::StatusCode;

/// Authorization passed: anything but 401/403 (a route may still reject the
/// test's one-size body with 400; that is not what this test checks).
fn authorized(s: StatusCode) -> bool {
    s != StatusCode::UNAUTHORIZED && s != StatusCode::FORBIDDEN
}

async fn status_of(method: &str, path: &str, auth: Option<&str>) -> StatusCode {
    let f = api::filter(state());
    let mut req = warp::test::request()
        .method(method)
        .path(&path.replace("{id}", "1"))
        .body(r#"{"ip":"203.0.113.5"}"#);
    if let Some(tok) = auth {
        req = req.header("authorization", format!("Bearer {tok}"));
    }
    // `filter` (not `reply`) so an SSE stream is not read to its (never) end.
    req.filter(&f)
        .await
        .expect("the API filter never rejects")
        .status()
}

/// Every route CSM also serves needs the scope CSM gives it (shared/spec/csm-routes.json):
/// a read token sees no more here than there (finding detail, incidents and their
/// audit trail are admin-only), and CSM's read clients are not locked out.
#[test]
fn scopes_are_csms_where_csm_has_the_route() {
    let spec =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/spec/csm-routes.json");
    let text = std::fs::read_to_string(&spec).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the contract lives beside the repository)",
            spec.display()
        )
    });
    let csm: Vec<serde_json::Value> = serde_json::from_str(&text).expect("csm-routes.json is JSON");
    assert_eq!(csm.len(), 126, "the contract lists 126 routes");
    let mut compared = 0;
    let mut wrong = Vec::new();
    for r in ROUTES {
        let theirs = csm.iter().find(|c| {
            c["method"] == r.method && c["path"].as_str().is_some_and(|p| covers(p, r.path))
        });
        let Some(theirs) = theirs.and_then(|c| c["scope"].as_str()) else {
            continue;
        };
        compared += 1;
        let ours = r.scope.as_str();
        if ours != theirs {
            wrong.push(format!(
                "{} {}: ours {ours}, CSM {theirs}",
                r.method, r.path
            ));
        }
    }
    assert!(compared > 50, "only {compared} routes compared");
    assert!(wrong.is_empty(), "scopes differ from CSM's: {wrong:#?}");
}

/// Does CSM's `csm` path cover our `ours`? CSM's paths that end in `/` are prefix
/// handlers for an id and what follows it (`/api/v1/scan-jobs/` serves
/// `/api/v1/scan-jobs/<id>` and below), so ours must take a parameter there.
fn covers(csm: &str, ours: &str) -> bool {
    csm == ours
        || (csm.ends_with('/')
            && ours
                .strip_prefix(csm)
                .is_some_and(|rest| rest.starts_with('{')))
}

/// CSM routes not served yet. The list may only shrink: a route served is taken off
/// it (this test fails while it is still listed), a route missing and not listed
/// fails too.
const NOT_YET: &[&str] = &[];

/// Every route CSM serves is served here, at the same method and path (or under
/// CSM's prefix), except those still listed in [`NOT_YET`].
#[test]
fn every_csm_route_is_served_or_listed_as_not_yet() {
    let spec =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/spec/csm-routes.json");
    let text = std::fs::read_to_string(&spec).expect("csm-routes.json");
    let csm: Vec<serde_json::Value> = serde_json::from_str(&text).expect("JSON");
    let mut missing = Vec::new();
    let mut served_but_listed = Vec::new();
    for c in &csm {
        let (m, p) = (
            c["method"].as_str().unwrap_or(""),
            c["path"].as_str().unwrap_or(""),
        );
        let served = ROUTES
            .iter()
            .any(|r| r.method == m && (covers(p, r.path) || r.path == p));
        let key = format!("{m} {p}");
        match (served, NOT_YET.contains(&key.as_str())) {
            (true, true) => served_but_listed.push(key),
            (false, false) => missing.push(key),
            _ => {}
        }
    }
    assert!(
        missing.is_empty(),
        "CSM routes not served and not listed: {missing:#?}"
    );
    assert!(
        served_but_listed.is_empty(),
        "served now, take them off NOT_YET: {served_but_listed:#?}"
    );
}

#[tokio::test]
async fn every_route_enforces_its_scope() {
    for r in ROUTES {
        if r.scope == Scope::Public {
            let anyone = status_of(r.method, r.path, None).await;
            assert!(
                authorized(anyone),
                "{} {} public got {anyone}",
                r.method,
                r.path
            );
            continue;
        }
        assert_eq!(
            status_of(r.method, r.path, None).await,
            StatusCode::UNAUTHORIZED,
            "{} {} no token",
            r.method,
            r.path
        );
        assert_eq!(
            status_of(r.method, r.path, Some("not-a-token")).await,
            StatusCode::UNAUTHORIZED,
            "{} {} bad token",
            r.method,
            r.path
        );
        let admin = status_of(r.method, r.path, Some(ADMIN)).await;
        assert!(
            authorized(admin),
            "{} {} admin got {admin}",
            r.method,
            r.path
        );
        let read = status_of(r.method, r.path, Some(READ)).await;
        match r.scope {
            Scope::Read => assert!(authorized(read), "{} {} read got {read}", r.method, r.path),
            Scope::Public => {}
            // CSM answers an insufficient token as it answers a wrong one.
            Scope::Admin | Scope::Metrics => {
                assert_eq!(
                    read,
                    StatusCode::UNAUTHORIZED,
                    "{} {} read token",
                    r.method,
                    r.path
                )
            }
        }
        let metrics = status_of(r.method, r.path, Some(METRICS)).await;
        if r.scope == Scope::Metrics {
            assert!(
                authorized(metrics),
                "{} metrics token got {metrics}",
                r.path
            );
        } else {
            assert_eq!(
                metrics,
                StatusCode::UNAUTHORIZED,
                "{} {}: metrics token is for /metrics only",
                r.method,
                r.path
            );
        }
    }
}

#[tokio::test]
async fn errors_are_json_with_code() {
    let f = api::filter(state());
    for (method, path, want) in [
        ("GET", "/api/v1/nope", StatusCode::NOT_FOUND),
        ("DELETE", "/api/v1/status", StatusCode::METHOD_NOT_ALLOWED),
    ] {
        let resp = warp::test::request()
            .method(method)
            .path(&path.replace("{id}", "1"))
            .header("authorization", format!("Bearer {ADMIN}"))
            .reply(&f)
            .await;
        assert_eq!(resp.status(), want);
        let body: serde_json::Value = serde_json::from_slice(resp.body()).expect("JSON error body");
        assert_eq!(body["code"], want.as_u16());
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let resp = warp::test::request().path("/api/v1/status").reply(&f).await;
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn bad_bodies_are_400_and_oversized_413() {
    let f = api::filter(state());
    let post = |body: Vec<u8>| {
        warp::test::request()
            .method("POST")
            .path("/api/v1/block-ip")
            .header("authorization", format!("Bearer {ADMIN}"))
            .body(body)
    };
    for bad in [
        &b""[..],
        b"{",
        b"[]",
        b"{\"ip\": 5}",
        b"{\"ip\":\"1.2.3.4\",\"unknown\":1}",
        b"\xff\xfe",
    ] {
        let resp = post(bad.to_vec()).reply(&f).await;
        assert_eq!(
            resp.status(),
            StatusCode::BAD_REQUEST,
            "body {:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let resp = post(vec![b' '; api::server_max_body() + 1]).reply(&f).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn bodies_and_queries_are_checked_before_the_backend() {
    let f = api::filter(state());
    for (path, body, want) in [
        (
            "/api/v1/unblock-bulk",
            r#"{"ips": []}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/unblock-bulk",
            r#"{"ips": "1.2.3.4"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/firewall/deny-subnet",
            r#"{"cidr": "203.0.113.5"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/firewall/deny-subnet",
            r#"{"cidr": "203.0.113.0/24"}"#,
            StatusCode::OK,
        ),
        (
            "/api/v1/firewall/allow-ip",
            r#"{"ip": "203.0.113.5", "bogus": 1}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/security/decisions",
            r#"{"ip": "203.0.113.5", "action": "nuke"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/settings/firewall/tentative-apply",
            "",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/threat/bulk-action",
            r#"{"action": "nuke", "ips": ["203.0.113.5"]}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/threat/bulk-action",
            r#"{"action": "block", "ips": []}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/threat/bulk-action",
            r#"{"action": "block"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/threat/bulk-action",
            r#"{"action": "block", "ips": ["203.0.113.5"], "duration": -1}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/threat/bulk-action",
            r#"{"action": "block", "ips": ["203.0.113.5"]}"#,
            StatusCode::OK,
        ),
        ("/api/v1/undo/run", "", StatusCode::OK),
        ("/api/v1/undo/run", r#"{"id": "abc"}"#, StatusCode::OK),
        (
            "/api/v1/undo/run",
            r#"{"token": "abc"}"#,
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let resp = warp::test::request()
            .method("POST")
            .path(&path.replace("{id}", "1"))
            .header("authorization", format!("Bearer {ADMIN}"))
            .body(body)
            .reply(&f)
            .await;
        assert_eq!(resp.status(), want, "{path} {body}");
    }
    for (q, want) in [
        ("/api/v1/firewall/check", StatusCode::BAD_REQUEST),
        ("/api/v1/firewall/check?ip=203.0.113.5", StatusCode::OK),
        ("/api/v1/firewall/audit?limit=abc", StatusCode::BAD_REQUEST),
        ("/api/v1/firewall/audit?limit=0", StatusCode::BAD_REQUEST),
        ("/api/v1/firewall/audit?limit=10", StatusCode::OK),
        (
            "/api/v1/modsec/events?ip=not-an-ip",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/modsec/blocks?from=2026-11-23&to=2026-11-01",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/modsec/blocks?from=yesterday",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/email/groups?kind=everything",
            StatusCode::BAD_REQUEST,
        ),
        ("/api/v1/email/groups?kind=auth_failure", StatusCode::OK),
        (
            "/api/v1/email/deferrals?from=2026-11-01&to=2026-11-23&limit=5",
            StatusCode::OK,
        ),
    ] {
        let resp = warp::test::request()
            .path(q)
            .header("authorization", format!("Bearer {ADMIN}"))
            .reply(&f)
            .await;
        assert_eq!(resp.status(), want, "{q}");
    }
}

#[tokio::test]
async fn cookie_sessions_need_csrf_for_writes() {
    let st = state();
    let f = api::filter(st.clone());
    let cookie = format!("csm_auth={ADMIN}");
    let get = warp::test::request()
        .path("/api/v1/status")
        .header("cookie", &cookie)
        .reply(&f)
        .await;
    assert_eq!(get.status(), StatusCode::OK);
    let csrf = get.headers()[CSRF_HEADER]
        .to_str()
        .expect("csrf header")
        .to_string();
    assert_eq!(csrf, st.tokens.csrf_for(&hex::encode(digest(ADMIN))));
    let body = r#"{"ip":"203.0.113.5"}"#;
    let no_csrf = warp::test::request()
        .method("POST")
        .path("/api/v1/block-ip")
        .header("cookie", &cookie)
        .body(body)
        .reply(&f)
        .await;
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);
    let ok = warp::test::request()
        .method("POST")
        .path("/api/v1/block-ip")
        .header("cookie", &cookie)
        .header(CSRF_HEADER, &csrf)
        .body(body)
        .reply(&f)
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    // Bearer writes are CSRF-exempt.
    let bearer = warp::test::request()
        .method("POST")
        .path("/api/v1/block-ip")
        .header("authorization", format!("Bearer {ADMIN}"))
        .body(body)
        .reply(&f)
        .await;
    assert_eq!(bearer.status(), StatusCode::OK);
}
