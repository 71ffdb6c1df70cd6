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
    model::{
        BlockRequest, BulkIpRequest, DecisionRequest, FirewallOp, FwList, IpRequest, ListRequest,
    },
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

/// Value of `key` in a query string (`a=1&b=2`), percent-decoded.
fn query_param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode(v))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `?limit=` within 1..=max, or `default`. A non-number is a 400.
fn limit(query: &str, default: u32, max: u32) -> Result<u32, ApiError> {
    match query_param(query, "limit") {
        None => Ok(default),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .map(|n| n.min(max))
            .ok_or_else(|| {
                ApiError::bad_request(format!("limit must be a positive integer, got {v:?}"))
            }),
    }
}

/// Parse the route's request into a firewall operation.
fn firewall_op(
    handler: Handler,
    query: &str,
    body: &Bytes,
) -> Result<Option<FirewallOp>, ApiError> {
    let add = |list, r: ListRequest, source| FirewallOp::Add {
        list,
        ip: r.ip,
        reason: r.reason,
        duration: r.duration,
        force: r.force,
        source,
    };
    Ok(Some(match handler {
        Handler::FirewallStatus => FirewallOp::Status,
        Handler::FirewallAllowed => FirewallOp::List {
            list: FwList::Allow,
            subnets_only: false,
        },
        Handler::FirewallSubnets => FirewallOp::List {
            list: FwList::Block,
            subnets_only: true,
        },
        Handler::FirewallAudit => FirewallOp::Audit {
            limit: limit(query, 100, 5000)?,
        },
        Handler::FirewallCheck => FirewallOp::Check {
            ip: query_param(query, "ip")
                .ok_or_else(|| ApiError::bad_request("ip query parameter required"))?,
        },
        Handler::UnblockIp => FirewallOp::Remove {
            list: FwList::Block,
            ips: vec![parse_json::<IpRequest>(body)?.ip],
            bulk: false,
        },
        Handler::UnblockBulk => {
            let r: BulkIpRequest = parse_json(body)?;
            if r.ips.is_empty() {
                return Err(ApiError::bad_request("ips must not be empty"));
            }
            FirewallOp::Remove {
                list: FwList::Block,
                ips: r.ips,
                bulk: true,
            }
        }
        Handler::AllowIp => add(FwList::Allow, parse_json(body)?, "api"),
        Handler::RemoveAllow => FirewallOp::Remove {
            list: FwList::Allow,
            ips: vec![parse_json::<IpRequest>(body)?.ip],
            bulk: false,
        },
        Handler::DenySubnet => {
            let r: ListRequest = parse_json(body)?;
            if !r.ip.contains('/') {
                return Err(ApiError::bad_request(format!(
                    "{:?} is not a CIDR (use block-ip for one address)",
                    r.ip
                )));
            }
            add(FwList::Block, r, "api")
        }
        Handler::RemoveSubnet => FirewallOp::Remove {
            list: FwList::Block,
            ips: vec![parse_json::<ListRequest>(body)?.ip],
            bulk: false,
        },
        Handler::FirewallFlush => FirewallOp::Flush,
        Handler::FirewallUnban => FirewallOp::Unban {
            ip: parse_json::<IpRequest>(body)?.ip,
        },
        Handler::ThreatBlockIp => {
            let mut r: ListRequest = parse_json(body)?;
            r.duration = None; // permanent by definition
            add(FwList::Block, r, "threat")
        }
        Handler::FirewallTentativeApply => FirewallOp::TentativeApply {
            changes: parse_json(body)?,
        },
        Handler::FirewallRollback => FirewallOp::Rollback,
        Handler::FirewallConfirm => FirewallOp::Confirm,
        Handler::FirewallRevert => FirewallOp::Revert,
        Handler::SecurityDecisions => FirewallOp::Decisions {
            limit: limit(query, 50, 5000)?,
        },
        Handler::SecurityCreateDecision => {
            let r: DecisionRequest = parse_json(body)?;
            let list = match r.action.as_str() {
                "block" | "ban" => FwList::Block,
                "allow" => FwList::Allow,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "action must be block or allow, got {other:?}"
                    )))
                }
            };
            FirewallOp::Add {
                list,
                ip: r.ip,
                reason: r.details,
                duration: r.duration,
                force: false,
                source: "decision",
            }
        }
        Handler::SecurityStatus => FirewallOp::SecurityStatus,
        _ => return Ok(None),
    }))
}

pub(crate) async fn handle<B: Backend>(
    state: &Arc<ApiState<B>>,
    route: &Route,
    principal: &Principal,
    query: &str,
    body: Bytes,
) -> Result<warp::reply::Response, ApiError> {
    let b = &state.backend;
    if let Some(op) = firewall_op(route.handler, query, &body)? {
        let (status, v) = b.firewall(op, &principal.name).await?;
        return Ok(warp::reply::with_status(json(&v), status).into_response());
    }
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
        // Every firewall handler returned above.
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                "not implemented",
            ))
        }
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
