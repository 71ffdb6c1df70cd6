// SPDX-License-Identifier: GPL-2.0-only
//! Crawler claims from the access logs and what the DNS said of them
//! (`logs::crawlers`): one row per address, bounded.

use rusqlite::params;
use serde::Serialize;

use super::db::{now_rfc3339, now_unix, Store, StoreError};

/// Addresses kept, at most: the ones seen longest ago go first.
pub const MAX_BOT_CLAIMS: i64 = 10_000;

/// A claim as `/verified-bots` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct BotClaim {
    pub ip: String,
    /// The crawler its user agent names (googlebot, bingbot, ...).
    pub bot: String,
    /// pending, verified, fake or unknown (DNS did not answer).
    pub verdict: String,
    /// The PTR name checked, or why there was none.
    pub hostname: String,
    pub hits: i64,
    pub first_seen: String,
    pub last_seen: String,
    /// "" until checked.
    pub checked_at: String,
}

impl Store {
    /// Count a batch of claims (address, crawler, requests): new addresses are
    /// pending; one that now claims another crawler is checked again.
    pub async fn record_bot_claims(
        &self,
        claims: Vec<(String, &'static str, u32)>,
    ) -> Result<(), StoreError> {
        if claims.is_empty() {
            return Ok(());
        }
        self.call(move |c| {
            let (ts, unix) = (now_rfc3339(), now_unix());
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO bot_claims (ip, bot, first_seen, last_seen, last_unix, hits)
                     VALUES (?1, ?2, ?3, ?3, ?4, ?5)
                     ON CONFLICT(ip) DO UPDATE SET
                        hits = hits + excluded.hits, last_seen = excluded.last_seen, last_unix = excluded.last_unix,
                        verdict = CASE WHEN bot = excluded.bot THEN verdict ELSE 'pending' END,
                        bot = excluded.bot",
                )?;
                for (ip, bot, n) in &claims {
                    st.execute(params![ip, bot, ts, unix, n])?;
                }
            }
            tx.execute(
                "DELETE FROM bot_claims WHERE ip IN (
                    SELECT ip FROM bot_claims ORDER BY last_unix DESC LIMIT -1 OFFSET ?1)",
                [MAX_BOT_CLAIMS],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Claims to check now: pending ones, unknown ones after an hour, the others
    /// after a day; most active first.
    pub async fn bots_due(&self, limit: u32) -> Result<Vec<(String, String)>, StoreError> {
        self.call(move |c| {
            let now = now_unix();
            let mut st = c.prepare_cached(
                "SELECT ip, bot FROM bot_claims
                 WHERE verdict = 'pending'
                    OR (verdict = 'unknown' AND checked_unix < ?1 - 3600)
                    OR checked_unix < ?1 - 86400
                 ORDER BY verdict = 'pending' DESC, hits DESC LIMIT ?2",
            )?;
            let rows = st.query_map(params![now, limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn set_bot_verdict(
        &self,
        ip: String,
        verdict: &'static str,
        hostname: String,
    ) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "UPDATE bot_claims SET verdict = ?2, hostname = ?3, checked_at = ?4, checked_unix = ?5
                 WHERE ip = ?1",
                params![ip, verdict, hostname, now_rfc3339(), now_unix()],
            )?;
            Ok(())
        })
        .await
    }

    /// Claims, most recently seen first (`verdict` filters).
    pub async fn bot_claims(
        &self,
        verdict: Option<String>,
        limit: u32,
    ) -> Result<Vec<BotClaim>, StoreError> {
        self.call(move |c| {
            let mut st = c.prepare_cached(
                "SELECT ip, bot, verdict, hostname, hits, first_seen, last_seen, checked_at
                 FROM bot_claims WHERE ?1 IS NULL OR verdict = ?1
                 ORDER BY last_unix DESC LIMIT ?2",
            )?;
            let rows = st.query_map(params![verdict, limit], |r| {
                Ok(BotClaim {
                    ip: r.get(0)?,
                    bot: r.get(1)?,
                    verdict: r.get(2)?,
                    hostname: r.get(3)?,
                    hits: r.get(4)?,
                    first_seen: r.get(5)?,
                    last_seen: r.get(6)?,
                    checked_at: r.get(7)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn claims_are_counted_checked_and_rechecked_when_the_claim_changes() {
        let d = tempfile::tempdir().expect("tmp");
        let s = Store::open(&d.path().join("db"), 8).expect("open");
        s.record_bot_claims(vec![
            ("192.0.2.1".into(), "googlebot", 1),
            ("192.0.2.1".into(), "googlebot", 1),
        ])
        .await
        .expect("record");
        assert_eq!(
            s.bots_due(10).await.expect("due"),
            [("192.0.2.1".to_string(), "googlebot".to_string())]
        );
        s.set_bot_verdict("192.0.2.1".into(), "fake", "evil.example".into())
            .await
            .expect("set");
        assert!(
            s.bots_due(10).await.expect("due").is_empty(),
            "checked: not due for a day"
        );
        let all = s.bot_claims(None, 10).await.expect("list");
        assert_eq!(
            (
                all[0].hits,
                all[0].verdict.as_str(),
                all[0].hostname.as_str()
            ),
            (2, "fake", "evil.example")
        );
        assert!(s
            .bot_claims(Some("verified".into()), 10)
            .await
            .expect("list")
            .is_empty());
        // Now it claims to be another crawler: checked again.
        s.record_bot_claims(vec![("192.0.2.1".into(), "bingbot", 1)])
            .await
            .expect("record");
        assert_eq!(s.bots_due(10).await.expect("due").len(), 1);
    }
}
