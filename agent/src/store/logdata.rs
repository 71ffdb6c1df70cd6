// SPDX-License-Identifier: GPL-2.0-only
//! What the log watchers keep for the reports: ModSecurity records (with the rules
//! they name) and mail events (rejected recipients, deferrals, outbound volume,
//! sending scripts), written in one transaction per batch with the batch's threat
//! events; and the roll-ups `/api/v1/modsec/*` and `/api/v1/email/*` serve.

use std::collections::BTreeMap;

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::db::{now_rfc3339, now_unix, Store, StoreError};
use crate::logs::event::{MailEvent, WafHit};

/// A time window for the report queries (Unix seconds, inclusive).
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub from: i64,
    pub to: i64,
    pub limit: u32,
}

impl Window {
    pub fn last_day(limit: u32) -> Self {
        let now = now_unix();
        Self {
            from: now - 86400,
            to: now,
            limit,
        }
    }
}

/// `/modsec/stats`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ModsecStats {
    pub total_events: i64,
    pub total_blocked: i64,
    pub events_24h: i64,
    pub blocked_24h: i64,
    pub unique_ips_24h: i64,
    pub last_event: Option<String>,
    pub top_rules: Vec<RuleCount>,
    pub top_hosts: Vec<HostCount>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RuleCount {
    pub id: String,
    pub msg: String,
    pub count: i64,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct HostCount {
    pub host: String,
    pub count: i64,
}

/// One row of `/modsec/blocks`: denied requests of one address.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ModsecBlock {
    pub ip: String,
    pub count: i64,
    pub first_seen: String,
    pub last_seen: String,
    pub rules: Vec<String>,
    pub hosts: Vec<String>,
    pub last_uri: Option<String>,
}

/// One record of `/modsec/events`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ModsecEvent {
    pub id: i64,
    pub timestamp: String,
    pub ip: String,
    pub host: String,
    pub method: String,
    pub uri: String,
    pub status: Option<i64>,
    /// "blocked" or "logged".
    pub action: &'static str,
    pub unique_id: String,
    pub rules: Vec<ModsecRuleHit>,
}

/// A rule a record names.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ModsecRuleHit {
    pub id: Option<String>,
    pub msg: Option<String>,
    pub severity: Option<String>,
}

/// One row of `/modsec/rules`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ModsecRule {
    pub id: String,
    pub msg: String,
    pub severity: String,
    pub hits: i64,
    pub last_seen: String,
}

/// `/email/stats`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct EmailStats {
    pub window_hours: u32,
    pub auth_failures: i64,
    pub rejected_recipients: i64,
    pub deferrals: i64,
    pub outbound_messages: i64,
    pub outbound_recipients: i64,
    pub script_sends: i64,
    pub top_senders: Vec<Sender>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Sender {
    pub account: String,
    pub messages: i64,
    pub recipients: i64,
}

/// One row of `/email/deferrals`: a provider and sending IP.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Deferral {
    pub provider: String,
    pub sending_ip: String,
    pub count: i64,
    pub first_seen: String,
    pub last_seen: String,
    pub sample_reason: Option<String>,
    pub codes: Vec<CodeCount>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CodeCount {
    pub code: String,
    pub count: i64,
}

/// Findings of some checks grouped by key: a row of `/email/groups` and
/// `/email/relay-abuse`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct FindingGroup {
    pub check: String,
    pub key: String,
    pub findings: i64,
    pub count: i64,
    pub first_seen: String,
    pub last_seen: String,
    pub severity: String,
    pub finding_ids: Vec<i64>,
    pub message: Option<String>,
    pub account: Option<String>,
    pub ip: Option<String>,
}

/// A script that sent mail for an account.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct MailScript {
    pub script: String,
    pub count: i64,
    pub last_seen: String,
}

fn rows<T>(
    st: &mut rusqlite::Statement<'_>,
    p: impl rusqlite::Params,
    f: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let it = st.query_map(p, f)?;
    Ok(it.collect::<Result<_, _>>()?)
}

impl Store {
    /// One batch from a log file: threat events (ip, source, kind, detail), WAF
    /// records and mail events, in one transaction.
    pub async fn add_log_batch(
        &self,
        threat: Vec<(String, &'static str, &'static str, String)>,
        waf: Vec<WafHit>,
        mail: Vec<MailEvent>,
    ) -> Result<(), StoreError> {
        if threat.is_empty() && waf.is_empty() && mail.is_empty() {
            return Ok(());
        }
        self.call(move |c| {
            let (ts, unix) = (now_rfc3339(), now_unix());
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO threat_events (ts, ts_unix, ip, source, kind, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for (ip, source, kind, detail) in &threat {
                    st.execute(params![ts, unix, ip, source, kind, detail])?;
                }
                let mut ev = tx.prepare_cached(
                    "INSERT INTO waf_events (ts, ts_unix, ip, host, method, uri, status, denied, unique_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?;
                let mut rule = tx.prepare_cached(
                    "INSERT INTO waf_rule_hits (event_id, ts_unix, rule_id, msg, severity)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for h in &waf {
                    ev.execute(params![
                        ts,
                        unix,
                        h.ip.to_string(),
                        h.host,
                        h.method,
                        h.uri,
                        h.status,
                        h.denied,
                        h.unique_id
                    ])?;
                    let id = tx.last_insert_rowid();
                    for r in &h.rules {
                        rule.execute(params![id, unix, r.id, r.msg, r.severity])?;
                    }
                }
                let mut m = tx.prepare_cached(
                    "INSERT INTO mail_events (ts, ts_unix, kind, ip, account, provider, code, count, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?;
                for e in &mail {
                    #[allow(clippy::type_complexity)]
                    let (kind, ip, account, provider, code, count, detail): (&str, Option<String>, Option<&str>, Option<&str>, Option<&str>, u32, &str) = match e {
                        MailEvent::RcptRejected { ip, rcpt } => ("rcpt_rejected", Some(ip.to_string()), None, None, None, 1, rcpt),
                        MailEvent::Deferred { provider, local_ip, code, reason, .. } => ("deferred", local_ip.map(|i| i.to_string()), None, Some(provider), Some(code), 1, reason),
                        MailEvent::Outbound { account, sender, recipients, ip } => ("outbound", ip.map(|i| i.to_string()), Some(account), None, None, *recipients, sender),
                        MailEvent::Script { account, cwd } => ("script", None, Some(account), None, None, 1, cwd),
                        MailEvent::Rejected { ip, why } => ("rejected", Some(ip.to_string()), None, None, None, 1, why),
                    };
                    m.execute(params![ts, unix, kind, ip, account, provider, code, count, detail])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// `/modsec/stats`: totals, the last 24 h, top rules and hosts.
    pub async fn modsec_stats(&self) -> Result<ModsecStats, StoreError> {
        self.call(|c| {
            let day = now_unix() - 86400;
            let (total, denied, last): (i64, i64, Option<String>) = c.query_row(
                "SELECT COUNT(*), COALESCE(SUM(denied), 0), MAX(ts) FROM waf_events",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let (e24, d24, ips24): (i64, i64, i64) = c.query_row(
                "SELECT COUNT(*), COALESCE(SUM(denied), 0), COUNT(DISTINCT ip) FROM waf_events WHERE ts_unix >= ?1",
                [day],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let top_rules = rows(
                &mut c.prepare(
                    "SELECT rule_id, MAX(msg), COUNT(*) FROM waf_rule_hits WHERE ts_unix >= ?1
                     GROUP BY rule_id ORDER BY 3 DESC, 1 LIMIT 10",
                )?,
                [day],
                |r| {
                    Ok(RuleCount {
                        id: r.get(0)?,
                        msg: r.get(1)?,
                        count: r.get(2)?,
                    })
                },
            )?;
            let top_hosts = rows(
                &mut c.prepare(
                    "SELECT host, COUNT(*) FROM waf_events WHERE ts_unix >= ?1
                     GROUP BY host ORDER BY 2 DESC, 1 LIMIT 10",
                )?,
                [day],
                |r| {
                    Ok(HostCount {
                        host: r.get(0)?,
                        count: r.get(1)?,
                    })
                },
            )?;
            Ok(ModsecStats {
                total_events: total,
                total_blocked: denied,
                events_24h: e24,
                blocked_24h: d24,
                unique_ips_24h: ips24,
                last_event: last,
                top_rules,
                top_hosts,
            })
        })
        .await
    }

    /// `/modsec/blocks`: denied requests aggregated per IP, most first.
    pub async fn modsec_blocks(&self, w: Window) -> Result<Vec<ModsecBlock>, StoreError> {
        self.call(move |c| {
            rows(
                &mut c.prepare(
                    "SELECT e.ip, COUNT(DISTINCT e.id), MIN(e.ts), MAX(e.ts),
                            GROUP_CONCAT(DISTINCT r.rule_id), GROUP_CONCAT(DISTINCT e.host),
                            (SELECT uri FROM waf_events x WHERE x.ip = e.ip AND x.denied = 1 ORDER BY x.id DESC LIMIT 1)
                     FROM waf_events e LEFT JOIN waf_rule_hits r ON r.event_id = e.id
                     WHERE e.denied = 1 AND e.ts_unix BETWEEN ?1 AND ?2
                     GROUP BY e.ip ORDER BY 2 DESC, 4 DESC LIMIT ?3",
                )?,
                params![w.from, w.to, w.limit],
                |r| {
                    let split = |s: Option<String>| -> Vec<String> {
                        s.map(|s| s.split(',').filter(|x| !x.is_empty()).map(String::from).collect()).unwrap_or_default()
                    };
                    Ok(ModsecBlock {
                        ip: r.get(0)?,
                        count: r.get(1)?,
                        first_seen: r.get(2)?,
                        last_seen: r.get(3)?,
                        rules: split(r.get(4)?),
                        hosts: split(r.get(5)?),
                        last_uri: r.get(6)?,
                    })
                },
            )
        })
        .await
    }

    /// `/modsec/events`: records newest first, optionally of one IP.
    pub async fn modsec_events(
        &self,
        w: Window,
        ip: Option<String>,
    ) -> Result<Vec<ModsecEvent>, StoreError> {
        self.call(move |c| {
            let mut st = c.prepare(
                "SELECT e.id, e.ts, e.ip, e.host, e.method, e.uri, e.status, e.denied, e.unique_id,
                        (SELECT json_group_array(json_object('id', rule_id, 'msg', msg, 'severity', severity))
                         FROM waf_rule_hits WHERE event_id = e.id)
                 FROM waf_events e
                 WHERE e.ts_unix BETWEEN ?1 AND ?2 AND (?4 IS NULL OR e.ip = ?4)
                 ORDER BY e.id DESC LIMIT ?3",
            )?;
            rows(&mut st, params![w.from, w.to, w.limit, ip], |r| {
                let rules: String = r.get(9)?;
                Ok(ModsecEvent {
                    id: r.get(0)?,
                    timestamp: r.get(1)?,
                    ip: r.get(2)?,
                    host: r.get(3)?,
                    method: r.get(4)?,
                    uri: r.get(5)?,
                    status: r.get(6)?,
                    action: if r.get::<_, bool>(7)? {
                        "blocked"
                    } else {
                        "logged"
                    },
                    unique_id: r.get(8)?,
                    rules: serde_json::from_str(&rules).unwrap_or_default(),
                })
            })
        })
        .await
    }

    /// `/modsec/rules`: the rules the log has named, with hits.
    pub async fn modsec_rules(&self) -> Result<Vec<ModsecRule>, StoreError> {
        self.call(|c| {
            rows(
                &mut c.prepare(
                    "SELECT rule_id, MAX(msg), MAX(severity), COUNT(*), MAX(ts_unix)
                     FROM waf_rule_hits GROUP BY rule_id ORDER BY 4 DESC, 1",
                )?,
                [],
                |r| {
                    let last: i64 = r.get(4)?;
                    Ok(ModsecRule {
                        id: r.get(0)?,
                        msg: r.get(1)?,
                        severity: r.get(2)?,
                        hits: r.get(3)?,
                        last_seen: time::OffsetDateTime::from_unix_timestamp(last)
                            .map(super::db::rfc3339)
                            .unwrap_or_default(),
                    })
                },
            )
        })
        .await
    }

    /// `/email/stats`: counts of the last 24 h.
    pub async fn email_stats(&self) -> Result<EmailStats, StoreError> {
        self.call(|c| {
            let day = now_unix() - 86400;
            let mut per_kind: BTreeMap<String, (i64, i64)> = BTreeMap::new();
            {
                let mut st = c.prepare(
                    "SELECT kind, COUNT(*), COALESCE(SUM(count), 0) FROM mail_events WHERE ts_unix >= ?1 GROUP BY kind",
                )?;
                let it = st.query_map([day], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))?;
                for row in it {
                    let (k, n, sum) = row?;
                    per_kind.insert(k, (n, sum));
                }
            }
            let auth_failures: i64 = c.query_row(
                "SELECT COUNT(*) FROM threat_events WHERE ts_unix >= ?1 AND kind = 'auth_failure' AND source IN ('exim', 'dovecot')",
                [day],
                |r| r.get(0),
            )?;
            let top_senders = rows(
                &mut c.prepare(
                    "SELECT account, COUNT(*), SUM(count) FROM mail_events WHERE kind = 'outbound' AND ts_unix >= ?1
                     GROUP BY account ORDER BY 3 DESC, 1 LIMIT 10",
                )?,
                [day],
                |r| {
                    Ok(Sender {
                        account: r.get(0)?,
                        messages: r.get(1)?,
                        recipients: r.get(2)?,
                    })
                },
            )?;
            let events = |k: &str| per_kind.get(k).map_or(0, |v| v.0);
            Ok(EmailStats {
                window_hours: 24,
                auth_failures,
                rejected_recipients: events("rcpt_rejected"),
                deferrals: events("deferred"),
                outbound_messages: events("outbound"),
                outbound_recipients: per_kind.get("outbound").map_or(0, |v| v.1),
                script_sends: events("script"),
                top_senders,
            })
        })
        .await
    }

    /// `/email/deferrals`: per provider and sending IP, with reason codes.
    pub async fn email_deferrals(&self, w: Window) -> Result<Vec<Deferral>, StoreError> {
        self.call(move |c| {
            let groups = rows(
                &mut c.prepare(
                    "SELECT provider, COALESCE(ip, ''), COUNT(*), MIN(ts), MAX(ts),
                            (SELECT detail FROM mail_events x WHERE x.kind = 'deferred' AND x.provider = m.provider ORDER BY x.id DESC LIMIT 1)
                     FROM mail_events m WHERE kind = 'deferred' AND ts_unix BETWEEN ?1 AND ?2
                     GROUP BY provider, COALESCE(ip, '') ORDER BY 3 DESC, 1 LIMIT ?3",
                )?,
                params![w.from, w.to, w.limit],
                |r| {
                    Ok(Deferral {
                        provider: r.get(0)?,
                        sending_ip: r.get(1)?,
                        count: r.get(2)?,
                        first_seen: r.get(3)?,
                        last_seen: r.get(4)?,
                        sample_reason: r.get(5)?,
                        codes: Vec::new(),
                    })
                },
            )?;
            let mut st = c.prepare(
                "SELECT code, COUNT(*) FROM mail_events WHERE kind = 'deferred' AND provider = ?1
                 AND COALESCE(ip, '') = ?2 AND ts_unix BETWEEN ?3 AND ?4 GROUP BY code ORDER BY 2 DESC, 1 LIMIT 10",
            )?;
            let mut out = Vec::with_capacity(groups.len());
            for mut g in groups {
                g.codes = rows(
                    &mut st,
                    params![g.provider, g.sending_ip, w.from, w.to],
                    |r| {
                        Ok(CodeCount {
                            code: r.get(0)?,
                            count: r.get(1)?,
                        })
                    },
                )?;
                out.push(g);
            }
            Ok(out)
        })
        .await
    }

    /// Findings of `checks` in the window grouped by their key (mailbox, account or
    /// IP), most recent first: the rows of `/email/groups` and `/email/relay-abuse`.
    pub async fn finding_groups(
        &self,
        checks: Vec<&'static str>,
        w: Window,
    ) -> Result<Vec<FindingGroup>, StoreError> {
        self.call(move |c| {
            let marks = vec!["?"; checks.len()].join(",");
            let sql = format!(
                "SELECT g.c, g.k, g.n, g.s, g.fs, g.ls, l.severity, g.ids, l.message, g.a, g.i
                 FROM (SELECT check_name c, COALESCE(mailbox, account, ip, dedup_key) k, COUNT(*) n,
                              SUM(count) s, MIN(ts) fs, MAX(last_seen) ls, GROUP_CONCAT(id) ids,
                              MAX(id) last_id, MAX(account) a, MAX(ip) i, MAX(last_seen_unix) lsu
                       FROM findings WHERE check_name IN ({marks}) AND last_seen_unix >= ? AND ts_unix <= ?
                       GROUP BY c, k) g
                 JOIN findings l ON l.id = g.last_id
                 ORDER BY g.lsu DESC LIMIT ?"
            );
            let mut p: Vec<rusqlite::types::Value> = checks.iter().map(|c| rusqlite::types::Value::Text((*c).to_string())).collect();
            p.push(w.from.into());
            p.push(w.to.into());
            p.push(i64::from(w.limit).into());
            rows(&mut c.prepare(&sql)?, rusqlite::params_from_iter(p), |r| {
                let ids: String = r.get(7)?;
                Ok(FindingGroup {
                    check: r.get(0)?,
                    key: r.get(1)?,
                    findings: r.get(2)?,
                    count: r.get(3)?,
                    first_seen: r.get(4)?,
                    last_seen: r.get(5)?,
                    severity: r.get(6)?,
                    finding_ids: ids.split(',').filter_map(|i| i.parse::<i64>().ok()).collect(),
                    message: r.get(8)?,
                    account: r.get(9)?,
                    ip: r.get(10)?,
                })
            })
        })
        .await
    }

    /// The scripts that sent mail for `account` in the window: (cwd, count, last seen).
    pub async fn email_scripts(
        &self,
        account: String,
        w: Window,
    ) -> Result<Vec<MailScript>, StoreError> {
        self.call(move |c| {
            rows(
                &mut c.prepare(
                    "SELECT detail, COUNT(*), MAX(ts) FROM mail_events WHERE kind = 'script' AND account = ?1
                     AND ts_unix BETWEEN ?2 AND ?3 GROUP BY detail ORDER BY 2 DESC LIMIT 20",
                )?,
                params![account, w.from, w.to],
                |r| {
                    Ok(MailScript {
                        script: r.get(0)?,
                        count: r.get(1)?,
                        last_seen: r.get(2)?,
                    })
                },
            )
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report as its JSON, as the API serves it.
    fn v<T: Serialize>(t: T) -> serde_json::Value {
        serde_json::to_value(t).expect("serializable")
    }
    use crate::logs::event::WafRule;

    fn waf(ip: &str, denied: bool, rules: &[&str]) -> WafHit {
        WafHit {
            ip: ip.parse().expect("ip"),
            host: "shop.example".into(),
            method: "GET".into(),
            uri: "/x".into(),
            status: Some(403),
            denied,
            unique_id: "u".into(),
            rules: rules
                .iter()
                .map(|id| WafRule {
                    id: (*id).into(),
                    msg: format!("rule {id}"),
                    severity: "CRITICAL".into(),
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn modsec_and_mail_rollups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("s.db"), 8).expect("open");
        let waf_rows = vec![
            waf("203.0.113.5", true, &["942100", "949110"]),
            waf("203.0.113.5", true, &["942100"]),
            waf("198.51.100.7", false, &["920350"]),
        ];
        let mail = vec![
            MailEvent::Deferred {
                provider: "gmail".into(),
                mx: "mx.google.com".into(),
                local_ip: Some("192.0.2.2".parse().expect("ip")),
                code: "421 4.7.28".into(),
                reason: "rate".into(),
            },
            MailEvent::Deferred {
                provider: "gmail".into(),
                mx: "mx.google.com".into(),
                local_ip: Some("192.0.2.2".parse().expect("ip")),
                code: "421 4.7.0".into(),
                reason: "tls".into(),
            },
            MailEvent::Deferred {
                provider: "microsoft".into(),
                mx: "x.outlook.com".into(),
                local_ip: None,
                code: "451 4.7.500".into(),
                reason: "r".into(),
            },
            MailEvent::Outbound {
                account: "shop".into(),
                sender: "a@b".into(),
                recipients: 3,
                ip: None,
            },
            MailEvent::Script {
                account: "shop".into(),
                cwd: "/home/shop/public_html".into(),
            },
            MailEvent::RcptRejected {
                ip: "203.0.113.7".parse().expect("ip"),
                rcpt: "x@y".into(),
            },
        ];
        s.add_log_batch(
            vec![(
                "203.0.113.9".into(),
                "dovecot",
                "auth_failure",
                "mail user a".into(),
            )],
            waf_rows,
            mail,
        )
        .await
        .expect("batch");
        let st = v(s.modsec_stats().await.expect("stats"));
        assert_eq!(
            (
                st["total_events"].as_i64(),
                st["total_blocked"].as_i64(),
                st["unique_ips_24h"].as_i64()
            ),
            (Some(3), Some(2), Some(2))
        );
        assert_eq!(st["top_rules"][0]["id"], "942100");
        assert_eq!(st["top_rules"][0]["count"], 2);
        let w = Window::last_day(50);
        let b = v(s.modsec_blocks(w).await.expect("blocks"));
        assert_eq!(
            b.as_array().map_or(0, Vec::len),
            1,
            "warnings are not blocks: {b:?}"
        );
        assert_eq!(
            (b[0]["ip"].as_str(), b[0]["count"].as_i64()),
            (Some("203.0.113.5"), Some(2))
        );
        let ev = v(s
            .modsec_events(w, Some("198.51.100.7".into()))
            .await
            .expect("events"));
        assert_eq!(
            (
                ev.as_array().map_or(0, Vec::len),
                ev[0]["action"].as_str(),
                ev[0]["rules"][0]["id"].as_str()
            ),
            (1, Some("logged"), Some("920350"))
        );
        assert_eq!(s.modsec_rules().await.expect("rules").len(), 3);

        let es = v(s.email_stats().await.expect("email stats"));
        assert_eq!(
            (
                es["auth_failures"].as_i64(),
                es["deferrals"].as_i64(),
                es["outbound_recipients"].as_i64(),
                es["rejected_recipients"].as_i64()
            ),
            (Some(1), Some(3), Some(3), Some(1))
        );
        let d = v(s.email_deferrals(w).await.expect("deferrals"));
        assert_eq!(
            (
                d[0]["provider"].as_str(),
                d[0]["sending_ip"].as_str(),
                d[0]["count"].as_i64()
            ),
            (Some("gmail"), Some("192.0.2.2"), Some(2))
        );
        assert_eq!(d[0]["codes"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            v(s.email_scripts("shop".into(), w).await.expect("scripts"))[0]["script"],
            "/home/shop/public_html"
        );
        for (check, ip, mailbox) in [
            ("mail_bruteforce", "203.0.113.5", None),
            ("mail_bruteforce", "203.0.113.5", None),
            ("account_bruteforce", "", Some("ceo@example.com")),
            ("ssh_bruteforce", "203.0.113.5", None),
        ] {
            let f = super::super::NewFinding {
                ip: (!ip.is_empty()).then(|| ip.to_string()),
                mailbox: mailbox.map(String::from),
                key: Some(format!("{ip}{mailbox:?}")),
                ..super::super::NewFinding::new(
                    check,
                    api::model::Severity::High,
                    format!("{check} m"),
                )
            };
            s.record_finding(f, 0).await.expect("finding");
        }
        let g = v(s
            .finding_groups(vec!["mail_bruteforce", "account_bruteforce"], w)
            .await
            .expect("groups"));
        assert_eq!(g.as_array().map_or(0, Vec::len), 2, "{g:?}");
        let bf = g
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["check"] == "mail_bruteforce")
            .expect("row");
        assert_eq!(
            (
                bf["key"].as_str(),
                bf["findings"].as_i64(),
                bf["count"].as_i64(),
                bf["message"].as_str()
            ),
            (
                Some("203.0.113.5"),
                Some(1),
                Some(2),
                Some("mail_bruteforce m")
            ),
            "a repeat counts on the finding: {bf}"
        );
        // Retention takes every table.
        assert_eq!(
            s.enforce_retention(crate::store::Bounds {
                before_unix: Some(now_unix() + 10),
                max_findings: u64::MAX,
                max_rows: u64::MAX
            })
            .await
            .expect("prune")
            .log_events,
            1 + 3 + 4 + 6
        );
        assert_eq!(v(s.modsec_stats().await.expect("stats"))["total_events"], 0);
    }
}
