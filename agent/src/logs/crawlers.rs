// SPDX-License-Identifier: GPL-2.0-only
//! Search-engine crawlers, verified: an access-log client whose user agent claims a
//! crawler is recorded, and its address checked by forward-confirmed reverse DNS
//! (its PTR name must be under the crawler's domains and resolve back to it), as
//! the search engines document. The user agent alone is never believed.

use std::{net::IpAddr, time::Duration};

use tokio::sync::watch;

use super::dns::{DnsError, Resolver};
use crate::store::Store;

pub struct Crawler {
    pub name: &'static str,
    /// Matched case-insensitively inside the user agent.
    ua: &'static str,
    /// Where its reverse names end.
    domains: &'static [&'static str],
}

pub const CRAWLERS: &[Crawler] = &[
    Crawler {
        name: "googlebot",
        ua: "googlebot",
        domains: &["googlebot.com", "google.com", "googleusercontent.com"],
    },
    Crawler {
        name: "bingbot",
        ua: "bingbot",
        domains: &["search.msn.com"],
    },
    Crawler {
        name: "applebot",
        ua: "applebot",
        domains: &["applebot.apple.com"],
    },
    Crawler {
        name: "yandexbot",
        ua: "yandexbot",
        domains: &["yandex.ru", "yandex.net", "yandex.com"],
    },
    Crawler {
        name: "baiduspider",
        ua: "baiduspider",
        domains: &["baidu.com", "baidu.jp"],
    },
    Crawler {
        name: "petalbot",
        ua: "petalbot",
        domains: &["petalsearch.com"],
    },
];

/// The crawler a user agent claims to be.
pub fn claimed(ua: &str) -> Option<&'static Crawler> {
    let ua = ua.to_ascii_lowercase();
    CRAWLERS.iter().find(|c| ua.contains(c.ua))
}

pub fn by_name(name: &str) -> Option<&'static Crawler> {
    CRAWLERS.iter().find(|c| c.name == name)
}

impl Crawler {
    /// Is `host` (a PTR name) one of its hosts?
    pub fn owns(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.domains
            .iter()
            .any(|d| host.strip_suffix(d).is_some_and(|rest| rest.ends_with('.')))
    }
}

/// What the DNS says of a claim.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The PTR name is the crawler's and resolves back to the address.
    Verified(String),
    /// No PTR, one outside the crawler's domains, or one that does not resolve back.
    Fake(String),
    /// DNS did not answer: asked again later.
    Unknown(String),
}

impl Verdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Verified(_) => "verified",
            Self::Fake(_) => "fake",
            Self::Unknown(_) => "unknown",
        }
    }

    /// The PTR name checked (or why there was none).
    pub fn detail(&self) -> &str {
        match self {
            Self::Verified(h) | Self::Fake(h) | Self::Unknown(h) => h,
        }
    }
}

/// Forward-confirmed reverse DNS of `ip` for `crawler`.
pub async fn verify(resolver: &Resolver, crawler: &Crawler, ip: IpAddr) -> Verdict {
    let names = match resolver.ptr(ip).await {
        Ok(n) => n,
        Err(e) => return Verdict::Unknown(e.to_string()),
    };
    let Some(first) = names.first().cloned() else {
        return Verdict::Fake("no PTR record".into());
    };
    // The first PTR names under the crawler's domains, until one resolves back.
    let mut failed: Option<Verdict> = None;
    for host in names.iter().take(4).filter(|h| crawler.owns(h)) {
        match resolver.addrs(host).await {
            Ok(addrs) if addrs.contains(&ip) => return Verdict::Verified(host.clone()),
            Ok(_) => {
                failed.get_or_insert(Verdict::Fake(format!(
                    "{host} does not resolve back to {ip}"
                )));
            }
            Err(e @ (DnsError::Timeout(_) | DnsError::Io(_) | DnsError::NoServer)) => {
                failed = Some(Verdict::Unknown(e.to_string()));
            }
            Err(e) => {
                failed.get_or_insert(Verdict::Fake(format!("{host}: {e}")));
            }
        }
    }
    failed.unwrap_or(Verdict::Fake(first))
}

/// Claims checked per round, at most, and the pause between rounds.
const PER_ROUND: u32 = 20;
const ROUND: Duration = Duration::from_secs(2);

/// Check the claims that are due (new ones, unknown ones after an hour, the others
/// after a day) until shutdown.
pub async fn verify_loop(
    store: Store,
    resolver: Resolver,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        match store.bots_due(PER_ROUND).await {
            Ok(due) => {
                for (ip, bot) in due {
                    let (Ok(addr), Some(c)) = (ip.parse::<IpAddr>(), by_name(&bot)) else {
                        continue;
                    };
                    let v = verify(&resolver, c, addr).await;
                    tracing::debug!(%ip, bot, verdict = v.as_str(), detail = v.detail(), "Crawler claim checked.");
                    if let Err(e) = store
                        .set_bot_verdict(ip, v.as_str(), v.detail().to_string())
                        .await
                    {
                        tracing::warn!(error = %e, "Recording a crawler verdict failed.");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "Reading crawler claims failed."),
        }
        tokio::select! {
            _ = tokio::time::sleep(ROUND) => {}
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_and_domains() {
        let g = claimed("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
            .expect("googlebot");
        assert_eq!(g.name, "googlebot");
        assert!(claimed("Mozilla/5.0 (X11; Linux x86_64)").is_none());
        assert!(g.owns("crawl-66-249-66-1.googlebot.com."));
        assert!(g.owns("RATE-LIMITED-PROXY-1.GOOGLE.COM"));
        assert!(
            !g.owns("googlebot.com.evil.example"),
            "a suffix, not a substring"
        );
        assert!(!g.owns("evilgooglebot.com"), "a whole label");
        assert!(
            !g.owns("googlebot.com"),
            "a host under it, not the domain itself"
        );
    }
}
