// SPDX-License-Identifier: GPL-2.0-only
//! Charon's notification settings (`/api/v1/security/notifications/settings`) over
//! the alert channels. Read: what the channels do (the stored settings once written,
//! else derived from the config's channels). Written: kept in the store, applied at
//! once: `enabled` and `min_log_level` gate every channel, the three category
//! toggles drop WAF blocks, ACL denials and rate-limit hits, and `webhook_url` /
//! `email_recipients` add a webhook and a mail channel beside the config's (through
//! the config's first mail relay, else the local MTA on port 25).

use api::model::{Finding, NotificationSettingsUpdate, Severity};
use serde::{Deserialize, Serialize};

use crate::config::{AlertChannel, AlertKind, MailTls};

/// The managed channels' names.
pub const WEBHOOK: &str = "charon-webhook";
pub const EMAIL: &str = "charon-email";

/// The settings as Charon shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Notifications {
    pub enabled: bool,
    pub min_log_level: String,
    pub notify_waf_blocks: bool,
    pub notify_acl_denials: bool,
    pub notify_rate_limit_hits: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub webhook_url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email_recipients: String,
}

impl Default for Notifications {
    fn default() -> Self {
        Self {
            enabled: true,
            min_log_level: "warn".into(),
            notify_waf_blocks: true,
            notify_acl_denials: true,
            notify_rate_limit_hits: true,
            webhook_url: String::new(),
            email_recipients: String::new(),
        }
    }
}

/// The finding severity a Charon level lets through.
fn floor(level: &str) -> Severity {
    match level {
        "error" => Severity::High,
        "warn" => Severity::Warning,
        _ => Severity::Info,
    }
}

fn level_of(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Warning => "warn",
        Severity::Info => "info",
    }
}

/// Charon's categories, by check.
pub fn is_waf(check: &str) -> bool {
    check.starts_with("waf") || check.starts_with("modsec")
}

pub fn is_acl_denial(check: &str) -> bool {
    matches!(check, "port_scan" | "smtp_egress") || check.starts_with("firewall")
}

pub fn is_rate_limit(check: &str) -> bool {
    matches!(check, "wp_login_flood" | "xmlrpc_abuse" | "http_probing")
        || check.contains("rate_limit")
        || check.contains("flood")
}

impl Notifications {
    /// What the config's channels amount to, when they exist.
    pub fn derived(channels: &[AlertChannel]) -> Option<Self> {
        let lowest = channels
            .iter()
            .map(|c| c.min_severity)
            .min_by_key(|s| s.rank())?;
        let webhook_url = channels
            .iter()
            .find_map(|c| match &c.kind {
                AlertKind::Webhook { url, .. } => Some(url.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let email_recipients = channels
            .iter()
            .find_map(|c| match &c.kind {
                AlertKind::Email { to, .. } => Some(to.join(",")),
                _ => None,
            })
            .unwrap_or_default();
        Some(Self {
            min_log_level: level_of(lowest).into(),
            webhook_url,
            email_recipients,
            ..Self::default()
        })
    }

    /// Apply an update; Err names the bad field (a 400).
    pub fn apply(&mut self, u: NotificationSettingsUpdate) -> Result<(), String> {
        if let Some(url) = &u.webhook_url {
            let url = url.trim();
            if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
                return Err("Invalid webhook_url. Must be an http(s) URL".into());
            }
        }
        if let Some(to) = &u.email_recipients {
            if let Some(bad) = to
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .find(|a| !crate::config::is_mail_address(a))
            {
                return Err(format!(
                    "Invalid email_recipients: {bad:?} is not an address"
                ));
            }
        }
        let set = |dst: &mut bool, v: Option<bool>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        set(&mut self.enabled, u.enabled);
        set(&mut self.notify_waf_blocks, u.notify_waf_blocks);
        set(&mut self.notify_acl_denials, u.notify_acl_denials);
        set(&mut self.notify_rate_limit_hits, u.notify_rate_limit_hits);
        if let Some(l) = u.min_log_level {
            self.min_log_level = l;
        }
        if let Some(url) = u.webhook_url {
            self.webhook_url = url.trim().to_string();
        }
        if let Some(to) = u.email_recipients {
            self.email_recipients = to
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .collect::<Vec<_>>()
                .join(",");
        }
        Ok(())
    }

    /// Whether a finding passes the gates every channel shares.
    pub fn admits(&self, f: &Finding) -> bool {
        self.enabled
            && f.severity.rank() >= floor(&self.min_log_level).rank()
            && (self.notify_waf_blocks || !is_waf(&f.check))
            && (self.notify_acl_denials || !is_acl_denial(&f.check))
            && (self.notify_rate_limit_hits || !is_rate_limit(&f.check))
    }

    /// The channels these settings add beside `config`'s: a webhook and a mail
    /// channel, unless the config already has one to the same place.
    pub fn managed(&self, config: &[AlertChannel], host: &str) -> Vec<AlertChannel> {
        let mut out = Vec::new();
        let base = |name: &str, kind| AlertChannel {
            name: name.into(),
            kind,
            min_severity: Severity::Info,
            checks: Vec::new(),
            exclude_checks: Vec::new(),
            max_per_minute: None,
            digest_minutes: 0,
        };
        let has_url = config
            .iter()
            .any(|c| matches!(&c.kind, AlertKind::Webhook { url, .. } if *url == self.webhook_url));
        if !self.webhook_url.is_empty() && !has_url {
            out.push(base(
                WEBHOOK,
                AlertKind::Webhook {
                    url: self.webhook_url.clone(),
                    secret: String::new(),
                    ca_file: None,
                },
            ));
        }
        let to: Vec<String> = self
            .email_recipients
            .split(',')
            .filter(|a| !a.is_empty())
            .map(String::from)
            .collect();
        let relay = config.iter().find_map(|c| match &c.kind {
            AlertKind::Email { .. } => Some(c.kind.clone()),
            _ => None,
        });
        let same = matches!(&relay, Some(AlertKind::Email { to: t, .. }) if *t == to);
        if !to.is_empty() && !same {
            let kind = match relay {
                // The config's relay, to these recipients.
                Some(mut relay) => {
                    if let AlertKind::Email { to: t, .. } = &mut relay {
                        *t = to;
                    }
                    relay
                }
                None => AlertKind::Email {
                    smtp_host: "localhost".into(),
                    smtp_port: 25,
                    tls: MailTls::None,
                    username: String::new(),
                    password: String::new(),
                    from: format!("rampart@{host}"),
                    to,
                    ca_file: None,
                },
            };
            out.push(base(EMAIL, kind));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(check: &str, severity: Severity) -> Finding {
        Finding {
            check: check.into(),
            severity,
            ..Default::default()
        }
    }

    #[test]
    fn the_gates_follow_level_and_categories() {
        let mut n = Notifications::default();
        assert!(n.admits(&f("signature_match", Severity::Warning)));
        assert!(!n.admits(&f("signature_match", Severity::Info)));
        n.apply(NotificationSettingsUpdate {
            min_log_level: Some("error".into()),
            notify_waf_blocks: Some(false),
            notify_rate_limit_hits: Some(false),
            ..Default::default()
        })
        .expect("apply");
        assert!(!n.admits(&f("signature_match", Severity::Warning)));
        assert!(n.admits(&f("signature_match", Severity::High)));
        assert!(!n.admits(&f("modsec_blocks", Severity::Critical)));
        assert!(!n.admits(&f("wp_login_flood", Severity::Critical)));
        assert!(n.admits(&f("port_scan", Severity::High)));
        n.apply(NotificationSettingsUpdate {
            enabled: Some(false),
            ..Default::default()
        })
        .expect("apply");
        assert!(!n.admits(&f("signature_match", Severity::Critical)));
    }

    #[test]
    fn bad_urls_and_addresses_are_refused_and_change_nothing() {
        let mut n = Notifications::default();
        let before = n.clone();
        for u in [
            NotificationSettingsUpdate {
                webhook_url: Some("file:///etc/passwd".into()),
                enabled: Some(false),
                ..Default::default()
            },
            NotificationSettingsUpdate {
                email_recipients: Some("a@b.example, not an address".into()),
                ..Default::default()
            },
            NotificationSettingsUpdate {
                email_recipients: Some("a@b.example\r\nBcc: x@y".into()),
                ..Default::default()
            },
        ] {
            assert!(n.apply(u).is_err());
            assert_eq!(n, before);
        }
    }

    #[test]
    fn managed_channels_use_the_configs_relay_and_never_duplicate_it() {
        let cfg: Vec<AlertChannel> = serde_yaml_ng::from_str(
            "- {name: hook, type: webhook, url: 'https://a.example/h'}\n\
             - {name: mail, type: email, smtp_host: mx.example, from: r@x.example, to: [ops@x.example]}\n",
        )
        .expect("channels");
        let mut n = Notifications::derived(&cfg).expect("derived");
        assert_eq!(n.webhook_url, "https://a.example/h");
        assert_eq!(n.email_recipients, "ops@x.example");
        assert_eq!(n.min_log_level, "warn");
        assert!(
            n.managed(&cfg, "web1").is_empty(),
            "the config's own channels"
        );
        n.apply(NotificationSettingsUpdate {
            webhook_url: Some("https://b.example/h".into()),
            email_recipients: Some("sec@x.example, boss@x.example".into()),
            ..Default::default()
        })
        .expect("apply");
        let m = n.managed(&cfg, "web1");
        assert_eq!(m.len(), 2);
        assert!(
            matches!(&m[0].kind, AlertKind::Webhook { url, .. } if url == "https://b.example/h")
        );
        match &m[1].kind {
            AlertKind::Email { smtp_host, to, .. } => {
                assert_eq!(smtp_host, "mx.example");
                assert_eq!(to, &["sec@x.example", "boss@x.example"]);
            }
            k => panic!("{k:?}"),
        }
        // No mail relay configured: the local MTA.
        let m = n.managed(&cfg[..1], "web1");
        assert!(
            matches!(&m[1].kind, AlertKind::Email { smtp_host, smtp_port: 25, tls: MailTls::None, from, .. } if smtp_host == "localhost" && from == "rampart@web1")
        );
    }
}
