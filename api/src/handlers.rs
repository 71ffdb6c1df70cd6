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
        BlockRequest, BreakGlassRequest, BulkIpRequest, DecisionRequest, DetectOp, Finding,
        FindingRef, FirewallOp, FwList, HistoryQuery, IdRequest, IdsRequest, IncidentStatusRequest,
        IpRequest, ListRequest, NotificationSettingsUpdate, PrefsOp, ScanRequest, Severity,
        SuppressionRequest, NOTIFY_LEVELS,
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

/// A JSON body that may be absent (then `T::default()`).
fn parse_optional_json<T: serde::de::DeserializeOwned + Default>(
    body: &Bytes,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_json(body)
}

/// Value of `key` in a query string (`a=1&b=2`), percent-decoded.
pub(crate) fn query_param(query: &str, key: &str) -> Option<String> {
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
    if_match: Option<&str>,
    local: bool,
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
        Handler::CphulkClear => FirewallOp::CphulkClear {
            ip: canonical_ip(&parse_json::<IpRequest>(body)?.ip)?,
        },
        Handler::ThreatWhitelist => FirewallOp::List {
            list: FwList::Allow,
            subnets_only: false,
        },
        Handler::ThreatWhitelistIp => {
            let mut r: ListRequest = parse_json(body)?;
            r.duration = None;
            add(FwList::Allow, r, "threat")
        }
        Handler::ThreatTempWhitelistIp => {
            let mut r: ListRequest = parse_json(body)?;
            if let Some(h) = r.hours.take() {
                r.duration = h.checked_mul(3600).filter(|s| *s > 0);
            }
            if r.duration.unwrap_or(0) == 0 {
                return Err(ApiError::bad_request(
                    "hours (CSM) or duration (seconds or \"24h\"), > 0, required for a temporary whitelist",
                ));
            }
            add(FwList::Allow, r, "threat")
        }
        Handler::ThreatUnwhitelistIp => FirewallOp::Remove {
            list: FwList::Allow,
            ips: vec![parse_json::<IpRequest>(body)?.ip],
            bulk: false,
        },
        Handler::ThreatBlockIp => {
            let mut r: ListRequest = parse_json(body)?;
            r.duration = None; // permanent by definition
            add(FwList::Block, r, "threat")
        }
        Handler::FirewallTentativeApply => {
            let body: serde_json::Value = parse_json(body)?;
            let (changes, timeout_secs) = match body {
                serde_json::Value::Object(mut m) if m.contains_key("changes") => {
                    let timeout = match m.remove("timeout_min") {
                        None | Some(serde_json::Value::Null) => None,
                        Some(v) => Some(
                            v.as_u64()
                                .filter(|n| (1..=1440).contains(n))
                                .ok_or_else(|| {
                                    ApiError::bad_request(
                                        "timeout_min must be whole minutes, 1 to 1440",
                                    )
                                })?
                                * 60,
                        ),
                    };
                    if let Some(k) = m.keys().find(|k| *k != "changes") {
                        return Err(ApiError::bad_request(format!(
                            "unknown field {k:?}: expected changes, timeout_min"
                        )));
                    }
                    (m.remove("changes").unwrap_or_default(), timeout)
                }
                other => (other, None),
            };
            FirewallOp::TentativeApply {
                changes,
                timeout_secs,
                if_match: if_match.map(str::to_string),
            }
        }
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
        Handler::SecurityConfig => FirewallOp::SecurityConfig,
        Handler::SecurityConfigUpdate => FirewallOp::SecurityConfigUpdate {
            req: parse_json(body)?,
            local,
        },
        Handler::SecurityEnable => {
            // The token is optional here and not needed: turning enforcement on is
            // never the risky direction.
            let _: BreakGlassRequest = parse_optional_json(body)?;
            FirewallOp::SecurityEnable
        }
        Handler::SecurityDisable => FirewallOp::SecurityDisable {
            req: parse_optional_json(body)?,
            local,
        },
        Handler::BreakGlassGenerate => FirewallOp::BreakGlassGenerate,
        _ => return Ok(None),
    }))
}

/// `?name=` as a time: RFC 3339, a date (`2026-11-23`, midnight UTC) or Unix seconds.
fn time_param(query: &str, name: &str) -> Result<Option<i64>, ApiError> {
    let Some(v) = query_param(query, name).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(n) = v.parse::<i64>() {
        return Ok(Some(n));
    }
    if let Ok(t) = time::OffsetDateTime::parse(&v, &time::format_description::well_known::Rfc3339) {
        return Ok(Some(t.unix_timestamp()));
    }
    let date_fmt = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(&v, &date_fmt) {
        return Ok(Some(d.midnight().assume_utc().unix_timestamp()));
    }
    Err(ApiError::bad_request(format!(
        "{name} must be RFC 3339, YYYY-MM-DD or Unix seconds, got {v:?}"
    )))
}

/// A non-negative integer query parameter within `max`, or `default`.
fn uint_param(query: &str, name: &str, default: u32, max: u32) -> Result<u32, ApiError> {
    match query_param(query, name) {
        None => Ok(default),
        Some(v) => v.parse::<u32>().map(|n| n.min(max)).map_err(|_| {
            ApiError::bad_request(format!("{name} must be a non-negative integer, got {v:?}"))
        }),
    }
}

fn history_query(query: &str, default_limit: u32, max: u32) -> Result<HistoryQuery, ApiError> {
    let severity = match query_param(query, "severity").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(Severity::parse_csm(&s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "severity must be CSM's 0 (warning), 1 (high), 2 (critical), or a name (critical, high, warning, info), got {s:?}"
            ))
        })?),
    };
    let status = query_param(query, "status").filter(|s| !s.is_empty() && s != "all");
    if let Some(s) = &status {
        if !["active", "dismissed", "fixed"].contains(&s.as_str()) {
            return Err(ApiError::bad_request(format!(
                "status must be active, dismissed, fixed or all, got {s:?}"
            )));
        }
    }
    Ok(HistoryQuery {
        limit: limit(query, default_limit, max)?,
        offset: uint_param(query, "offset", 0, u32::MAX)?,
        from: time_param(query, "from")?,
        to: time_param(query, "to")?,
        severity,
        search: query_param(query, "search").filter(|s| !s.is_empty()),
        check: query_param(query, "check").filter(|s| !s.is_empty()),
        status,
    })
}

fn finding_ref(body: &Bytes) -> Result<FindingRef, ApiError> {
    finding_ref_or_path(body, false)
}

/// A [`FindingRef`]; with `by_path`, `{file_path}` alone names it too.
fn finding_ref_or_path(body: &Bytes, by_path: bool) -> Result<FindingRef, ApiError> {
    let mut r: FindingRef = parse_json(body)?;
    if let Some(key) = r.key.take() {
        let (check, message) = key.split_once(':').ok_or_else(|| {
            ApiError::bad_request(format!("key must be \"check:message\", got {key:?}"))
        })?;
        r.check.get_or_insert_with(|| check.to_string());
        r.message.get_or_insert_with(|| message.to_string());
    }
    let named = r.id.is_some() || !r.ids.is_empty() || (r.check.is_some() && r.message.is_some());
    let by_file = by_path && r.file_path.as_deref().is_some_and(|p| !p.is_empty());
    if !(named || by_file) {
        return Err(ApiError::bad_request(if by_path {
            "name the finding: {id}, {check, message}, {key} or {file_path}"
        } else {
            "name the finding: {id}, {ids: [...]}, {check, message} or {key}"
        }));
    }
    Ok(r)
}

fn string_param(query: &str, name: &str) -> Result<String, ApiError> {
    query_param(query, name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("{name} query parameter required")))
}

fn incident_status_param(query: &str, default: &str) -> Result<String, ApiError> {
    let s = query_param(query, "status")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default.to_string());
    if [
        "active",
        "all",
        "open",
        "contained",
        "resolved",
        "dismissed",
    ]
    .contains(&s.as_str())
    {
        Ok(s)
    } else {
        Err(ApiError::bad_request(format!(
            "status must be active, all, open, contained, resolved or dismissed, got {s:?}"
        )))
    }
}

/// An address in canonical form (the threat database keys on it).
fn canonical_ip(v: &str) -> Result<String, ApiError> {
    v.trim()
        .parse::<std::net::IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| ApiError::bad_request(format!("{v:?} is not an IP address")))
}

/// `?ip=` as a canonical address.
fn ip_param(query: &str) -> Result<String, ApiError> {
    canonical_ip(&string_param(query, "ip")?)
}

/// The `{id}` segment of a route path, as an integer.
fn path_id(route: &Route, path: &str) -> Result<i64, ApiError> {
    let v = crate::routes::param(route.path, path, "id").unwrap_or_default();
    v.parse::<i64>()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, format!("no incident {v:?}")))
}

/// The `{section}` of a settings route: a config key name.
fn section_param(route: &Route, path: &str) -> Result<String, ApiError> {
    let v = crate::routes::param(route.path, path, "section").unwrap_or_default();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no settings section {v:?}"),
        ));
    }
    Ok(v.to_string())
}

/// The `{id}` of a mail quarantine route: a message id's characters (letters,
/// digits and dashes), else 404.
fn mail_id(route: &Route, path: &str) -> Result<String, ApiError> {
    let v = crate::routes::param(route.path, path, "id").unwrap_or_default();
    if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no quarantined message {v:?}"),
        ));
    }
    Ok(v.to_string())
}

/// The `{id}` of a held-forward route: a Maildir file name, else 404.
fn held_id(route: &Route, path: &str) -> Result<String, ApiError> {
    let v = crate::routes::param(route.path, path, "id").unwrap_or_default();
    if v.is_empty()
        || v.len() > 255
        || v.starts_with('.')
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._,:=-".contains(&b))
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no held copy {v:?}"),
        ));
    }
    Ok(v.to_string())
}

/// The `{id}` of a scan job route.
fn job_id(route: &Route, path: &str) -> Result<u64, ApiError> {
    let v = crate::routes::param(route.path, path, "id").unwrap_or_default();
    v.parse::<u64>()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, format!("no scan job {v:?}")))
}

/// Addresses one bulk request may name, at most.
const BULK_MAX: usize = 1000;

/// `?from=&to=&limit=` of a report.
fn window(query: &str, default_limit: u32) -> Result<crate::model::Window, ApiError> {
    let w = crate::model::Window {
        from: time_param(query, "from")?,
        to: time_param(query, "to")?,
        limit: limit(query, default_limit, 5000)?,
    };
    if let (Some(f), Some(t)) = (w.from, w.to) {
        if f > t {
            return Err(ApiError::bad_request("from must not be after to"));
        }
    }
    Ok(w)
}

/// Parse the route's request into a detection operation.
fn detect_op(
    route: &Route,
    path: &str,
    query: &str,
    body: &Bytes,
    operator: &str,
) -> Result<Option<DetectOp>, ApiError> {
    let prefs = |op| DetectOp::Prefs {
        operator: operator.to_string(),
        op,
    };
    Ok(Some(match route.handler {
        Handler::PrefsUser => prefs(PrefsOp::User),
        Handler::VerifyFinding => DetectOp::VerifyFinding(finding_ref(body)?),
        Handler::ChallengeStats => DetectOp::ChallengeStats,
        Handler::Hardening => DetectOp::Hardening,
        Handler::HardeningRun => DetectOp::HardeningRun,
        Handler::Accounts => DetectOp::Accounts,
        Handler::Export => DetectOp::Export,
        Handler::Settings => DetectOp::Settings,
        Handler::Performance => DetectOp::Performance,
        Handler::VerifiedBots => DetectOp::VerifiedBots {
            verdict: match query_param(query, "verdict").filter(|v| !v.is_empty()) {
                Some(v) if ["pending", "verified", "fake", "unknown"].contains(&v.as_str()) => {
                    Some(v)
                }
                Some(v) => {
                    return Err(ApiError::bad_request(format!(
                        "verdict must be pending, verified, fake or unknown, got {v:?}"
                    )))
                }
                None => None,
            },
            limit: limit(query, 500, 10_000)?,
        },
        Handler::ApplyVerifiedBots => DetectOp::ApplyVerifiedBots(parse_json(body)?),
        Handler::GeoIp => DetectOp::GeoIp {
            ip: ip_param(query)?,
            detail: query_param(query, "detail").is_some_and(|v| v == "1" || v == "true"),
        },
        Handler::GeoIpBatch => {
            #[derive(serde::Deserialize)]
            #[serde(untagged)]
            enum Batch {
                List(Vec<String>),
                Object { ips: Vec<String> },
            }
            let ips = match parse_json::<Batch>(body)? {
                Batch::List(v) | Batch::Object { ips: v } => v,
            };
            if ips.is_empty() || ips.len() > BULK_MAX {
                return Err(ApiError::bad_request(format!(
                    "1 to {BULK_MAX} addresses, got {}",
                    ips.len()
                )));
            }
            DetectOp::GeoIpBatch(ips)
        }
        Handler::SettingsSection => DetectOp::SettingsSection {
            section: section_param(route, path)?,
        },
        Handler::UpdateSettingsSection => {
            let body: serde_json::Value = parse_json(body)?;
            if !body.is_object() && !body.is_array() {
                return Err(ApiError::bad_request(
                    "a section's new keys as a JSON object (infra_ips: a list)",
                ));
            }
            DetectOp::UpdateSettingsSection {
                section: section_param(route, path)?,
                body,
            }
        }
        Handler::SettingsRestart => DetectOp::SettingsRestart,
        Handler::Import => {
            let b: crate::model::StateBundle = parse_json(body)?;
            if b.format != crate::model::STATE_FORMAT || b.version != crate::model::STATE_VERSION {
                return Err(ApiError::bad_request(format!(
                    "not a bundle this agent reads: format {:?} version {} (want {:?} version {})",
                    b.format,
                    b.version,
                    crate::model::STATE_FORMAT,
                    crate::model::STATE_VERSION
                )));
            }
            DetectOp::Import(b)
        }
        Handler::Account => {
            let name = string_param(query, "name")?;
            // A user name: never a path, an option or a pattern.
            let ok = name.len() <= 64
                && !name.starts_with(['-', '.'])
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !ok {
                return Err(ApiError::bad_request(format!(
                    "{name:?} is not an account name"
                )));
            }
            DetectOp::Account { name }
        }
        Handler::PutPrefsUser => prefs(PrefsOp::PutUser(
            parse_json::<crate::prefs::UiPrefs>(body)?.sanitized(),
        )),
        Handler::PrefsViews => prefs(PrefsOp::Views {
            page: query_param(query, "page").filter(|p| !p.is_empty()),
        }),
        Handler::PutPrefsView => {
            let mut v: crate::prefs::SavedView = parse_json(body)?;
            v.validate()?;
            v.updated = 0;
            prefs(PrefsOp::PutView(v))
        }
        Handler::DeletePrefsView => prefs(PrefsOp::DeleteView(parse_json(body)?)),
        Handler::ThreatStats => DetectOp::ThreatStats,
        Handler::ThreatTopAttackers => DetectOp::ThreatTopAttackers {
            limit: limit(query, 25, 1000)?,
        },
        Handler::ThreatIp => DetectOp::ThreatIp {
            ip: ip_param(query)?,
        },
        Handler::ThreatEvents => DetectOp::ThreatEvents {
            ip: ip_param(query)?,
            limit: limit(query, 100, 5000)?,
        },
        Handler::ThreatDbStats => DetectOp::ThreatDbStats,
        Handler::ThreatClearIp => {
            let ip = parse_json::<IpRequest>(body)?.ip;
            DetectOp::ThreatClearIp {
                ip: canonical_ip(&ip)?,
            }
        }
        Handler::ThreatBulkAction => {
            let r: crate::model::BulkActionRequest = parse_json(body)?;
            const ACTIONS: [&str; 5] = ["block", "unblock", "whitelist", "unwhitelist", "clear"];
            if !ACTIONS.contains(&r.action.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "action must be one of {}, got {:?}",
                    ACTIONS.join(", "),
                    r.action
                )));
            }
            if r.ips.is_empty() || r.ips.len() > BULK_MAX {
                return Err(ApiError::bad_request(format!(
                    "ips must hold 1 to {BULK_MAX} addresses, got {}",
                    r.ips.len()
                )));
            }
            DetectOp::ThreatBulk(r)
        }
        Handler::UndoPending => DetectOp::UndoPending,
        Handler::UndoRun => {
            // An empty body is "the latest".
            let r: crate::model::UndoRunRequest = if body.iter().all(u8::is_ascii_whitespace) {
                Default::default()
            } else {
                parse_json(body)?
            };
            DetectOp::UndoRun {
                id: Some(r.id).filter(|i| !i.is_empty()),
            }
        }
        Handler::ModsecStats => DetectOp::ModsecStats,
        Handler::ModsecBlocks => DetectOp::ModsecBlocks(window(query, 100)?),
        Handler::ModsecEvents => DetectOp::ModsecEvents {
            window: window(query, 100)?,
            ip: match query_param(query, "ip").filter(|v| !v.is_empty()) {
                Some(ip) => Some(canonical_ip(&ip)?),
                None => None,
            },
        },
        Handler::ModsecRules => DetectOp::ModsecRules,
        Handler::EmailStats => DetectOp::EmailStats,
        Handler::EmailDeferrals => DetectOp::EmailDeferrals(window(query, 100)?),
        Handler::EmailRelayAbuse => DetectOp::EmailRelayAbuse(window(query, 100)?),
        Handler::EmailGroups => {
            let kind = query_param(query, "kind").filter(|k| !k.is_empty());
            if let Some(k) = &kind {
                const KINDS: [&str; 5] = [
                    "compromised_account",
                    "spam_outbreak",
                    "auth_failure",
                    "queue_alert",
                    "malware",
                ];
                if !KINDS.contains(&k.as_str()) {
                    return Err(ApiError::bad_request(format!(
                        "kind must be one of {}, got {k:?}",
                        KINDS.join(", ")
                    )));
                }
            }
            DetectOp::EmailGroups {
                window: window(query, 100)?,
                kind,
            }
        }
        Handler::Incidents => DetectOp::Incidents {
            status: incident_status_param(query, "all")?,
            kind: query_param(query, "kind").filter(|k| !k.is_empty()),
            limit: limit(query, 500, 5000)?,
        },
        Handler::IncidentGroups => DetectOp::IncidentGroups {
            status: incident_status_param(query, "active")?,
            kind: query_param(query, "kind").filter(|k| !k.is_empty()),
            limit: limit(query, 100, 5000)?,
        },
        Handler::Incident => DetectOp::Incident {
            id: path_id(route, path)?,
        },
        Handler::PerfFixErrorLog | Handler::PerfFixDisplayErrors | Handler::PerfFixWpCron => {
            DetectOp::PerfFix {
                check: match route.handler {
                    Handler::PerfFixErrorLog => "perf_error_log",
                    Handler::PerfFixDisplayErrors => "perf_display_errors",
                    _ => "perf_wp_cron",
                },
                finding: finding_ref_or_path(body, true)?,
            }
        }
        Handler::ModsecRulesApply => DetectOp::ModsecRulesApply(parse_json(body)?),
        Handler::ModsecRuleAction => DetectOp::ModsecRuleAction(parse_json(body)?),
        Handler::ModsecEscalation => DetectOp::ModsecEscalation(parse_json(body)?),
        Handler::EmailQueueComposition => DetectOp::EmailQueueComposition,
        Handler::EmailFlushBackscatter => DetectOp::EmailFlushBackscatter,
        Handler::EmailForwarders => DetectOp::EmailForwarders,
        Handler::EmailAvStatus => DetectOp::EmailAvStatus,
        Handler::EmailQuarantine => DetectOp::EmailQuarantine,
        Handler::EmailQuarantineGet => DetectOp::EmailQuarantineGet {
            id: mail_id(route, path)?,
        },
        Handler::EmailQuarantineDelete => DetectOp::EmailQuarantineDelete {
            id: mail_id(route, path)?,
        },
        Handler::DbObjectBackups => DetectOp::DbObjectBackups,
        Handler::DbObjectBackupPreview => DetectOp::DbObjectBackupPreview {
            key: query_param(query, "key")
                .filter(|k| !k.is_empty())
                .ok_or_else(|| ApiError::bad_request("key is required"))?,
        },
        Handler::DbObjectBackupRestore => {
            let r: crate::model::KeyRequest = parse_json(body)?;
            if r.key.is_empty() {
                return Err(ApiError::bad_request("key is required"));
            }
            DetectOp::DbObjectBackupRestore { key: r.key }
        }
        Handler::EmailQuarantineAction => {
            let id = mail_id(route, path)?;
            match crate::routes::param(route.path, path, "action") {
                Some("release") => DetectOp::EmailQuarantineRelease { id },
                Some("delete") => DetectOp::EmailQuarantineDelete { id },
                other => {
                    return Err(ApiError::bad_request(format!(
                        "action must be release or delete, got {:?}",
                        other.unwrap_or("")
                    )))
                }
            }
        }
        Handler::EmailHeld => DetectOp::EmailHeld,
        Handler::EmailHeldRelease => DetectOp::EmailHeldRelease {
            id: held_id(route, path)?,
        },
        Handler::EmailHeldDelete => DetectOp::EmailHeldDelete {
            id: held_id(route, path)?,
        },
        Handler::Rulesets => DetectOp::Rulesets,
        Handler::UpsertRuleset => DetectOp::UpsertRuleset(parse_json(body)?),
        Handler::DeleteRuleset => DetectOp::DeleteRuleset {
            id: path_id(route, path)?,
        },
        Handler::IncidentStatus => {
            let id = path_id(route, path)?;
            let r: IncidentStatusRequest = parse_json(body)?;
            if !["open", "contained", "resolved", "dismissed"].contains(&r.status.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "status must be open, contained, resolved or dismissed, got {:?}",
                    r.status
                )));
            }
            DetectOp::IncidentStatus {
                id,
                status: r.status,
                details: r.details,
            }
        }
        Handler::IncidentTimeline => {
            let ip = query_param(query, "ip").filter(|v| !v.is_empty());
            let account = query_param(query, "account").filter(|v| !v.is_empty());
            if ip.is_none() && account.is_none() {
                return Err(ApiError::bad_request(
                    "ip or account query parameter required",
                ));
            }
            DetectOp::IncidentTimeline {
                ip,
                account,
                hours: uint_param(query, "hours", 24, 24 * 90)?.max(1),
            }
        }
        Handler::FindingsEnriched => DetectOp::FindingsEnriched,
        Handler::FindingDetail => {
            let id = match query_param(query, "id").filter(|v| !v.is_empty()) {
                Some(v) => Some(v.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!("id must be an integer, got {v:?}"))
                })?),
                None => None,
            };
            let r = FindingRef {
                id,
                check: query_param(query, "check"),
                message: query_param(query, "message"),
                ..Default::default()
            };
            if r.id.is_none() && (r.check.is_none() || r.message.is_none()) {
                return Err(ApiError::bad_request("?id= or ?check=&message= required"));
            }
            DetectOp::FindingDetail(r)
        }
        Handler::History => DetectOp::History(history_query(query, 50, 5000)?),
        Handler::HistoryCsv => DetectOp::HistoryRows(history_query(query, 5000, 5000)?),
        Handler::Stats => DetectOp::Stats,
        Handler::StatsTrend => DetectOp::StatsTrend {
            days: uint_param(query, "days", 30, 90)?.max(1),
        },
        Handler::StatsTimeline => DetectOp::StatsTimeline {
            hours: uint_param(query, "hours", 24, 720)?.max(1),
        },
        Handler::Dismiss => DetectOp::Dismiss(finding_ref(body)?),
        Handler::Fix => DetectOp::Fix(finding_ref(body)?),
        Handler::FixBulk => {
            let r = finding_ref(body)?;
            if r.ids.is_empty() {
                return Err(ApiError::bad_request("ids must not be empty"));
            }
            DetectOp::FixBulk(r)
        }
        Handler::ScanAccount => {
            let r: ScanRequest = parse_json(body)?;
            if r.account.is_none() == r.path.is_none() {
                return Err(ApiError::bad_request("give exactly one of account or path"));
            }
            DetectOp::Scan(r)
        }
        Handler::ScanJobs => DetectOp::ScanJobs {
            id: match query_param(query, "id").filter(|v| !v.is_empty()) {
                Some(v) => Some(v.parse().map_err(|_| {
                    ApiError::bad_request(format!("id must be an integer, got {v:?}"))
                })?),
                None => None,
            },
        },
        Handler::ScanJob => DetectOp::ScanJobs {
            id: Some(job_id(route, path)?),
        },
        Handler::CancelScanJob => DetectOp::CancelScanJob {
            id: job_id(route, path)?,
        },
        Handler::ScanJobFindings => DetectOp::ScanJobFindings {
            id: job_id(route, path)?,
        },
        Handler::TestAlert => DetectOp::TestAlert,
        Handler::NotificationSettings => DetectOp::NotificationSettings,
        Handler::UpdateNotificationSettings => {
            let u: NotificationSettingsUpdate = parse_json(body)?;
            if let Some(l) = &u.min_log_level {
                if !NOTIFY_LEVELS.contains(&l.as_str()) {
                    return Err(ApiError::bad_request(
                        "Invalid min_log_level. Must be one of: debug, info, warn, error",
                    ));
                }
            }
            DetectOp::UpdateNotificationSettings(u)
        }
        Handler::Audit => DetectOp::Audit {
            limit: limit(query, 100, 5000)?,
        },
        Handler::Suppressions => DetectOp::Suppressions,
        Handler::Suppress => DetectOp::Suppress(parse_json::<SuppressionRequest>(body)?),
        Handler::RulesStatus => DetectOp::RulesStatus,
        Handler::RulesList => DetectOp::RulesList,
        Handler::RulesReload => DetectOp::RulesReload,
        Handler::Quarantine => DetectOp::Quarantine,
        Handler::QuarantinePreview => DetectOp::QuarantinePreview {
            id: string_param(query, "id")?,
        },
        Handler::QuarantineRestore => DetectOp::QuarantineRestore {
            id: parse_json::<IdRequest>(body)?.id,
        },
        Handler::QuarantineBulkDelete => {
            let r: IdsRequest = parse_json(body)?;
            if r.ids.is_empty() {
                return Err(ApiError::bad_request("ids must not be empty"));
            }
            DetectOp::QuarantineDelete { ids: r.ids }
        }
        _ => return Ok(None),
    }))
}

const CSV_COLUMNS: &[&str] = &[
    "id",
    "timestamp",
    "last_seen",
    "severity",
    "check",
    "message",
    "path",
    "ip",
    "account",
    "uid",
    "pid",
    "process",
    "rule",
    "status",
    "count",
    "details",
];

/// One CSV field (RFC 4180). Cells that a spreadsheet would run as a formula get a
/// leading apostrophe (CSV injection).
fn csv_field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_string()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

/// History rows (findings in their wire shape) as CSV.
fn findings_csv(rows: &[serde_json::Value]) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    for f in rows {
        let text = |k: &str| match &f[k] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            v => v.to_string(),
        };
        let cells = [
            text("id"),
            text("first_seen"),
            text("last_seen"),
            text("severity_label"),
            text("check"),
            text("message"),
            text("path"),
            text("ip"),
            text("account"),
            text("uid"),
            text("pid"),
            text("process_info"),
            text("rule"),
            text("status"),
            text("count"),
            text("details"),
        ];
        out.push_str(
            &cells
                .iter()
                .map(|c| csv_field(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
    }
    out
}

/// What the handlers read from request headers.
#[derive(Debug, Default)]
pub(crate) struct FromHeaders {
    /// SSE resume (`Last-Event-ID`); unparsable is absent (a fresh stream).
    pub last_event_id: Option<i64>,
    /// `If-Match`, unquoted (`W/` and quotes stripped).
    pub if_match: Option<String>,
    /// The client connected from loopback (set by dispatch, not from a header).
    pub peer_local: bool,
}

impl FromHeaders {
    pub fn of(headers: &warp::http::HeaderMap) -> Self {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        Self {
            last_event_id: text("last-event-id").and_then(|v| v.trim().parse::<i64>().ok()),
            if_match: text("if-match").map(|v| {
                let v = v.trim();
                v.strip_prefix("W/")
                    .unwrap_or(v)
                    .trim_matches('"')
                    .to_string()
            }),
            peer_local: false,
        }
    }
}

pub(crate) async fn handle<B: Backend>(
    state: &Arc<ApiState<B>>,
    route: &Route,
    principal: &Principal,
    path: &str,
    query: &str,
    from_headers: FromHeaders,
    body: Bytes,
) -> Result<warp::reply::Response, ApiError> {
    let b = &state.backend;
    let FromHeaders {
        last_event_id,
        if_match,
        peer_local,
    } = from_headers;
    let if_match = if_match.as_deref();
    if let Some(op) = detect_op(route, path, query, &body, &principal.token_digest)? {
        let csv = matches!(op, DetectOp::HistoryRows(_));
        let (status, v) = b.detect(op, &principal.name).await?;
        if csv {
            let serde_json::Value::Array(rows) = v else {
                return Err(ApiError::internal("history rows", &"not an array"));
            };
            let mut resp = warp::reply::with_header(
                findings_csv(&rows),
                "content-type",
                "text/csv; charset=utf-8",
            )
            .into_response();
            resp.headers_mut().insert(
                "content-disposition",
                warp::http::HeaderValue::from_static(
                    "attachment; filename=\"rampart-history.csv\"",
                ),
            );
            return Ok(resp);
        }
        return Ok(warp::reply::with_status(json(&v), status).into_response());
    }
    if let Some(op) = firewall_op(route.handler, query, &body, if_match, peer_local)? {
        let (status, v) = b.firewall(op, &principal.name).await?;
        return Ok(warp::reply::with_status(json(&v), status).into_response());
    }
    Ok(match route.handler {
        Handler::Status => {
            let mut resp = json(&b.status().await?);
            // Who the dashboard is (it shows no write controls to a read session).
            resp.headers_mut().insert(
                "x-rampart-scope",
                warp::http::HeaderValue::from_static(principal.grant.as_str()),
            );
            if let Ok(v) = warp::http::HeaderValue::from_str(&principal.name) {
                resp.headers_mut().insert("x-rampart-operator", v);
            }
            if principal.via_cookie {
                // Cookie sessions learn their CSRF token here (csm-api.md: "obtained
                // from the login response or page meta tag").
                let csrf = state.tokens.csrf_for(&principal.session_digest);
                if let Ok(v) = warp::http::HeaderValue::from_str(&csrf) {
                    resp.headers_mut().insert(crate::auth::CSRF_HEADER, v);
                }
            }
            resp
        }
        Handler::Health => json(&b.health().await?),
        Handler::OpenApi => json(&b.openapi()),
        Handler::Components => json(&b.components().await?),
        Handler::Capabilities => json(&Capabilities {
            capabilities: b.capabilities(),
            version: env!("CARGO_PKG_VERSION"),
        }),
        Handler::Findings => json(&b.findings().await?),
        Handler::BlockedIps => json(&b.blocked_ips().await?),
        Handler::BlockIp => {
            let req: BlockRequest = parse_json(&body)?;
            let entry = b.block_ip(req, &principal.name).await?;
            json(&Blocked {
                status: "blocked",
                ip: entry.ip,
                expires_at: entry.expires_at,
            })
        }
        Handler::Metrics => {
            let mut text = b.metrics().await?;
            text.push_str(&api_metrics(state));
            warp::reply::with_header(text, "content-type", "text/plain; version=0.0.4")
                .into_response()
        }
        Handler::Events => sse(state, last_event_id).await?,
        // Every firewall handler returned above.
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                "not implemented",
            ))
        }
    })
}

/// The listener's and the API's own counters, Prometheus text.
fn api_metrics<B: Backend>(state: &ApiState<B>) -> String {
    let c = &state.conns;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let rows: [(&str, &str, &str, u64); 13] = [
        (
            "rampart_sse_clients_dropped_total",
            "counter",
            "SSE clients dropped for falling behind.",
            load(&state.sse_lagged_total),
        ),
        (
            "rampart_sse_clients",
            "gauge",
            "SSE streams open.",
            state.sse_clients.load(Ordering::Relaxed) as u64,
        ),
        (
            "rampart_sse_refused_total",
            "counter",
            "SSE streams refused at the client cap.",
            load(&state.sse_refused_total),
        ),
        (
            "rampart_api_throttled_total",
            "counter",
            "Requests answered 429.",
            load(&state.throttled_total),
        ),
        (
            "rampart_api_connections_open",
            "gauge",
            "API connections open.",
            load(&c.open),
        ),
        (
            "rampart_api_connections_accepted_total",
            "counter",
            "API connections accepted.",
            load(&c.accepted),
        ),
        (
            "rampart_api_connections_refused_total{cap=\"global\"}",
            "counter",
            "API connections closed at a connection cap.",
            load(&c.refused_global),
        ),
        (
            "rampart_api_connections_refused_total{cap=\"per_client\"}",
            "counter",
            "",
            load(&c.refused_per_ip),
        ),
        (
            "rampart_api_connections_evicted_total",
            "counter",
            "Connections that had sent no request, closed to make room at a cap.",
            load(&c.evicted),
        ),
        (
            "rampart_api_tls_handshake_failed_total",
            "counter",
            "TLS handshakes failed or timed out.",
            load(&c.handshake_failed),
        ),
        (
            "rampart_api_connections_ended_total{why=\"timeout\"}",
            "counter",
            "Connections the API closed: no request (or no complete headers) within the header timeout, or a request it could not parse.",
            load(&c.ended_timeout),
        ),
        (
            "rampart_api_connections_ended_total{why=\"error\"}",
            "counter",
            "",
            load(&c.ended_error),
        ),
        (
            "rampart_api_accept_errors_total",
            "counter",
            "accept() errors (EMFILE and the like).",
            load(&c.accept_errors),
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, v) in rows {
        let base = name.split('{').next().unwrap_or(name);
        if !help.is_empty() {
            out.push_str(&format!("# HELP {base} {help}\n# TYPE {base} {kind}\n"));
        }
        out.push_str(&format!("{name} {v}\n"));
    }
    out
}

/// One open SSE stream's (or live-log socket's) place under
/// `limits.max_sse_clients`; given back on drop.
pub(crate) struct SseSlot<B: Backend>(Arc<ApiState<B>>);

impl<B: Backend> SseSlot<B> {
    /// A place, or 503 at the cap.
    pub(crate) fn take(state: &Arc<ApiState<B>>) -> Result<Self, ApiError> {
        let open = state.sse_clients.fetch_add(1, Ordering::Relaxed);
        let slot = SseSlot(state.clone());
        if open >= state.limits.max_sse_clients {
            state.sse_refused_total.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{} event streams are open already",
                    state.limits.max_sse_clients
                ),
            ));
        }
        Ok(slot)
    }
}

impl<B: Backend> Drop for SseSlot<B> {
    fn drop(&mut self) {
        self.0.sse_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Findings replayed to a client resuming with Last-Event-ID, at most.
const SSE_REPLAY_MAX: u32 = 1000;

/// `POST /api/v1/block-ip`.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Blocked {
    status: &'static str,
    ip: String,
    /// RFC 3339; null when permanent.
    expires_at: Option<String>,
}

/// `GET /api/v1/capabilities` (csm-contract.md).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Capabilities {
    capabilities: Vec<&'static str>,
    version: &'static str,
}

fn sse_event(finding: &Finding) -> Option<Result<warp::sse::Event, Infallible>> {
    let data = serde_json::to_string(finding).ok()?;
    // warp writes `data:` and the text as given: the leading space makes CSM's
    // `data: {json}` framing (a JSON object never holds a raw newline).
    Some(Ok(warp::sse::Event::default()
        .id(finding.id.to_string())
        .data(format!(" {data}"))))
}

/// SSE stream of findings: `id:` is the finding id, `data: ` one JSON object. A client
/// that sends Last-Event-ID first gets the findings it missed (up to
/// [`SSE_REPLAY_MAX`], from the store), then the live ones, without gaps or
/// duplicates: it subscribes before reading the store and skips live ids already
/// replayed. A client that falls behind the broadcast buffer is disconnected (and
/// counted) instead of slowing the pipeline down.
async fn sse<B: Backend>(
    state: &Arc<ApiState<B>>,
    last_event_id: Option<i64>,
) -> Result<warp::reply::Response, ApiError> {
    let slot = SseSlot::take(state)?;
    let rx = state.backend.subscribe();
    let replay = match last_event_id {
        Some(id) => state.backend.findings_after(id, SSE_REPLAY_MAX).await?,
        None => Vec::new(),
    };
    let high_water = replay.last().map(|f| f.id).or(last_event_id).unwrap_or(0);
    let st = state.clone();
    let live = BroadcastStream::new(rx)
        .take_while(move |item| {
            let lagged = matches!(item, Err(BroadcastStreamRecvError::Lagged(_)));
            if lagged {
                st.sse_lagged_total.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("SSE client fell behind; disconnecting it.");
            }
            std::future::ready(!lagged)
        })
        .filter_map(move |item| async move {
            let finding = item.ok()?;
            if finding.id <= high_water {
                return None;
            }
            sse_event(&finding)
        });
    let stream = futures_util::stream::iter(replay.into_iter().filter_map(|f| sse_event(&f)))
        .chain(live)
        .map(move |e| {
            // The slot lives as long as the stream: dropped when the client goes.
            let _held = &slot;
            e
        });
    let reply = warp::sse::reply(
        warp::sse::keep_alive()
            .interval(Duration::from_secs(15))
            // CSM's comment line, `: keepalive`.
            .text(" keepalive")
            .stream(stream),
    );
    let mut resp = reply.into_response();
    resp.headers_mut().insert(
        "x-accel-buffering",
        warp::http::HeaderValue::from_static("no"),
    );
    *resp.status_mut() = StatusCode::OK;
    Ok(resp)
}
