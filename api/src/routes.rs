// SPDX-License-Identifier: GPL-2.0-only
//! The route table: the single source for dispatch, scopes, docs and auth tests.

use warp::http::StatusCode;

use crate::{ApiError, Scope};

/// Which handler serves a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handler {
    Status,
    Health,
    Capabilities,
    Components,
    Findings,
    Events,
    BlockIp,
    BlockedIps,
    Metrics,
}

#[derive(Debug)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub scope: Scope,
    pub handler: Handler,
    pub summary: &'static str,
}

const fn r(
    method: &'static str,
    path: &'static str,
    scope: Scope,
    handler: Handler,
    summary: &'static str,
) -> Route {
    Route {
        method,
        path,
        scope,
        handler,
        summary,
    }
}

/// Every route the API serves. Scopes follow csm-api.md "Token scopes": read scope
/// covers status, findings, blocked-IP summaries, health, components, capabilities
/// and SSE; everything that writes needs admin.
pub const ROUTES: &[Route] = &[
    r("GET", "/api/v1/status", Scope::Read, Handler::Status, "Health snapshot: version, uptime, severity counts, blocklist size, capabilities, started_at_token"),
    r("GET", "/api/v1/health", Scope::Read, Handler::Health, "Daemon health: kernel programs, sensors, store, event loss"),
    r("GET", "/api/v1/capabilities", Scope::Read, Handler::Capabilities, "Static feature list for orchestrator feature-detect"),
    r("GET", "/api/v1/components", Scope::Read, Handler::Components, "Component matrix: attachment mode and state per program"),
    r("GET", "/api/v1/findings", Scope::Read, Handler::Findings, "Current active findings"),
    r("GET", "/api/v1/events", Scope::Read, Handler::Events, "Server-Sent Events stream of findings, one JSON object per data: line"),
    r("POST", "/api/v1/block-ip", Scope::Admin, Handler::BlockIp, "Block an IP or CIDR in XDP: {ip, reason?, duration? (seconds)}"),
    r("GET", "/api/v1/blocked-ips", Scope::Read, Handler::BlockedIps, "Blocked IPs with reason and expiry"),
    r("GET", "/metrics", Scope::Metrics, Handler::Metrics, "Prometheus metrics (metrics_token or admin)"),
];

/// Find the route for a request: 404 for an unknown path, 405 for a known path
/// with another method.
pub fn find(method: &str, path: &str) -> Result<&'static Route, ApiError> {
    let mut path_known = false;
    for route in ROUTES {
        if route.path == path {
            if route.method == method || (method == "HEAD" && route.method == "GET") {
                return Ok(route);
            }
            path_known = true;
        }
    }
    if path_known {
        Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} not allowed on {path}"),
        ))
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no such endpoint: {path}"),
        ))
    }
}

/// The route table as Markdown, for docs/src/api.md.
pub fn markdown() -> String {
    let mut s = String::from("| Method | Path | Scope | What |\n|---|---|---|---|\n");
    for r in ROUTES {
        s.push_str(&format!(
            "| {} | `{}` | {} | {} |\n",
            r.method,
            r.path,
            r.scope.as_str(),
            r.summary
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_duplicate_routes() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "duplicate route {} {}",
                    a.method,
                    a.path
                );
            }
        }
    }

    #[test]
    fn writes_need_admin() {
        for r in ROUTES {
            if r.method != "GET" {
                assert_eq!(
                    r.scope,
                    Scope::Admin,
                    "{} {} writes and must need admin",
                    r.method,
                    r.path
                );
            }
        }
    }

    #[test]
    fn find_distinguishes_404_and_405() {
        assert_eq!(
            find("GET", "/api/v1/status").map(|r| r.handler).ok(),
            Some(Handler::Status)
        );
        assert_eq!(
            find("DELETE", "/api/v1/status").unwrap_err().status,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            find("GET", "/api/v1/nope").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
    }

    /// docs/src/api.md must carry the table as generated from ROUTES
    /// (regenerate with `cargo xtask docs`).
    #[test]
    fn docs_match_route_table() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/src/api.md"))
                .expect("docs/src/api.md");
        assert!(
            doc.contains(&markdown()),
            "docs/src/api.md is stale: run `cargo xtask docs`"
        );
    }
}
