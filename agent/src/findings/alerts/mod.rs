// SPDX-License-Identifier: GPL-2.0-only
//! Alerts leave the box: every new finding is routed to the configured channels
//! (severity, checks), queued in the store's outbox in the same transaction that
//! moves the routing cursor, and delivered from there: retried with backoff until
//! the receiver takes it, across restarts. Each channel has a message budget per
//! minute; text channels (slack, telegram) send what waited as one digest, and
//! `digest_minutes` collects on purpose. Nothing is lost and nothing floods.

pub mod send;
pub mod settings;

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use api::model::Finding;
use tokio::sync::{broadcast, watch};

use crate::{
    config::{AlertChannel, AlertKind, Config},
    store::{now_unix, Router, Store},
};

/// The check of `POST /test-alert`'s finding: sent to every channel directly, never
/// routed.
pub const TEST_CHECK: &str = "test_alert";
/// How often the outbox is looked at without a new finding to wake it.
const TICK: Duration = Duration::from_secs(1);
/// First retry after this; doubled per attempt up to [`MAX_BACKOFF_SECS`].
const FIRST_BACKOFF_SECS: i64 = 5;
const MAX_BACKOFF_SECS: i64 = 900;
/// A delivery is given up (kept, marked failed, logged) after this many attempts:
/// about a day at the longest backoff.
pub const MAX_ATTEMPTS: u32 = 100;
/// Findings routed per pass, and deliveries read per channel per pass.
const BATCH: u32 = 200;

struct Channel {
    cfg: AlertChannel,
    transport: send::Transport,
    max_per_minute: u32,
    /// When the messages of the last minute went out.
    sent: Mutex<VecDeque<Instant>>,
}

impl Channel {
    fn kind(&self) -> &'static str {
        match self.cfg.kind {
            AlertKind::Webhook { .. } => "webhook",
            AlertKind::Slack { .. } => "slack",
            AlertKind::Telegram { .. } => "telegram",
            AlertKind::Email { .. } => "email",
            AlertKind::Syslog { .. } => "syslog",
        }
    }

    /// Text channels send several findings as one message.
    fn batches(&self) -> bool {
        matches!(
            self.cfg.kind,
            AlertKind::Slack { .. } | AlertKind::Telegram { .. } | AlertKind::Email { .. }
        )
    }

    fn wants(&self, f: &Finding) -> bool {
        let c = &self.cfg;
        f.check != TEST_CHECK
            && f.severity.rank() >= c.min_severity.rank()
            && (c.checks.is_empty() || c.checks.contains(&f.check))
            && !c.exclude_checks.contains(&f.check)
    }

    /// Messages this channel may still send this minute.
    fn budget(&self) -> u32 {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        while sent
            .front()
            .is_some_and(|t| t.elapsed() >= Duration::from_secs(60))
        {
            sent.pop_front();
        }
        self.max_per_minute.saturating_sub(sent.len() as u32)
    }

    fn spent(&self) {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        sent.push_back(Instant::now());
    }
}

/// One channel's outbox, for `/health`.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ChannelView {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(flatten)]
    pub outbox: crate::store::OutboxStats,
}

/// What one channel made of a test alert.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct TestResult {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The configured channels and their delivery.
pub struct Alerts {
    /// The config file's channels, then those the notification settings add.
    channels: std::sync::RwLock<Vec<Arc<Channel>>>,
    /// `alerts.channels` of the config (changed live by the settings API).
    config: std::sync::RwLock<Vec<AlertChannel>>,
    /// Charon's notification settings, once written through the API.
    settings: std::sync::RwLock<Option<settings::Notifications>>,
    store: Store,
    host: String,
    /// Sent and failed deliveries are kept this long (`retention.days`).
    keep_secs: i64,
}

/// The settings key of the notification settings written through the API.
const SETTINGS_KEY: &str = "alerts.notifications";

fn backoff_secs(attempts: u32) -> i64 {
    FIRST_BACKOFF_SECS
        .saturating_mul(1i64 << attempts.min(20))
        .min(MAX_BACKOFF_SECS)
}

impl Alerts {
    pub async fn new(cfg: &Config, store: Store) -> Result<Arc<Self>> {
        let host = crate::kernel::hostname().unwrap_or_else(|| "localhost".into());
        let stored = match store.setting(SETTINGS_KEY).await? {
            None => None,
            Some(json) => match serde_json::from_str(&json) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "The stored notification settings do not parse; the config's channels alone apply.");
                    None
                }
            },
        };
        let a = Self {
            channels: std::sync::RwLock::new(Vec::new()),
            config: std::sync::RwLock::new(cfg.alerts.channels.clone()),
            settings: std::sync::RwLock::new(None),
            store,
            host,
            keep_secs: i64::from(cfg.retention.days.max(1)) * 86400,
        };
        a.apply(stored)?;
        Ok(Arc::new(a))
    }

    /// Build the channels for `settings` (the config's, plus the managed ones) and
    /// put both in force; a channel that stays keeps its budget.
    fn apply(&self, settings: Option<settings::Notifications>) -> Result<()> {
        let old = self.snapshot();
        let config = self.config();
        let mut wanted = config.clone();
        if let Some(s) = &settings {
            wanted.extend(s.managed(&config, &self.host));
        }
        let mut channels = Vec::with_capacity(wanted.len());
        for c in wanted {
            if let Some(same) = old.iter().find(|o| o.cfg == c) {
                channels.push(same.clone());
                continue;
            }
            let default_rate = match &c.kind {
                AlertKind::Webhook { .. } => 60,
                AlertKind::Slack { .. } | AlertKind::Telegram { .. } => 6,
                AlertKind::Email { .. } => 2,
                AlertKind::Syslog { .. } => 600,
            };
            let transport = send::Transport::for_kind(&c.kind)
                .with_context(|| format!("alerts channel {:?}", c.name))?;
            channels.push(Arc::new(Channel {
                max_per_minute: c.max_per_minute.unwrap_or(default_rate),
                cfg: c,
                transport,
                sent: Mutex::new(VecDeque::new()),
            }));
        }
        *self.channels.write().unwrap_or_else(|p| p.into_inner()) = channels;
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = settings;
        Ok(())
    }

    /// The config file's channels now.
    fn config(&self) -> Vec<AlertChannel> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Put the config file's `alerts.channels` in force (the settings API): the
    /// channels are built again with the notification settings in force; a
    /// channel that stays keeps its budget and its queue.
    pub fn set_config(&self, channels: Vec<AlertChannel>) -> Result<()> {
        let settings = self
            .settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = channels;
        self.apply(settings)
    }

    fn snapshot(&self) -> Vec<Arc<Channel>> {
        self.channels
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Charon's view: the written settings, else what the config's channels do;
    /// None when neither exists (Charon's 404).
    pub fn notifications(&self) -> Option<settings::Notifications> {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .or_else(|| settings::Notifications::derived(&self.config()))
    }

    /// Apply Charon's update, keep it in the store, and put it in force. Err(Ok):
    /// the update is refused (a 400, nothing changed); Err(Err): it could not be
    /// kept.
    pub async fn update_notifications(
        &self,
        u: api::model::NotificationSettingsUpdate,
    ) -> Result<(), Result<String, anyhow::Error>> {
        let mut next = self.notifications().unwrap_or_default();
        next.apply(u).map_err(Ok)?;
        let json = serde_json::to_string(&next).map_err(|e| Err(e.into()))?;
        // Built before it is kept: a channel that cannot be built is refused whole.
        let old = self
            .settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.apply(Some(next)).map_err(|e| Ok(format!("{e:#}")))?;
        if let Err(e) = self
            .store
            .set_settings(vec![(SETTINGS_KEY.into(), Some(json))])
            .await
        {
            let _ = self.apply(old);
            return Err(Err(e.into()));
        }
        Ok(())
    }

    fn router(&self) -> Router {
        let channels = self.snapshot();
        let gate = self
            .settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Arc::new(move |f: &Finding| {
            if gate.as_ref().is_some_and(|g| !g.admits(f)) {
                return Vec::new();
            }
            channels
                .iter()
                .filter(|c| c.wants(f))
                .map(|c| c.cfg.name.clone())
                .collect()
        })
    }

    /// Route and deliver until shutdown, woken by each new finding and every second.
    pub async fn run(
        self: Arc<Self>,
        mut found: broadcast::Receiver<Finding>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<()> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pruned: Option<Instant> = None;
        let mut wake = true;
        loop {
            if pruned.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                let n = self.store.prune_outbox(now_unix() - self.keep_secs).await?;
                if n > 0 {
                    tracing::info!(deliveries = n, "Pruned old alert deliveries.");
                }
                pruned = Some(Instant::now());
            }
            tokio::select! {
                _ = tick.tick() => {}
                // A lagged receiver only missed wake-ups: the store is the source.
                // A closed one would answer at once forever: the tick alone then.
                r = found.recv(), if wake => {
                    wake = !matches!(r, Err(broadcast::error::RecvError::Closed));
                }
                _ = shutdown.changed() => return Ok(()),
            }
            // Until a batch comes back short: findings no channel wants still move
            // the cursor, and must not hold up those behind them for a tick each.
            while self
                .store
                .route_alerts(self.router(), BATCH)
                .await?
                .findings
                == BATCH as usize
            {}
            let passes = self.snapshot().into_iter().map(|c| self.deliver(c));
            for r in futures_util::future::join_all(passes).await {
                r?;
            }
        }
    }

    /// Send what is due on one channel, within its budget.
    async fn deliver(&self, ch: Arc<Channel>) -> Result<()> {
        let due = self.store.due_alerts(&ch.cfg.name, BATCH).await?;
        let Some(oldest) = due.first() else {
            return Ok(());
        };
        let now = now_unix();
        if ch.cfg.digest_minutes > 0
            && now - oldest.created_unix < i64::from(ch.cfg.digest_minutes) * 60
        {
            return Ok(());
        }
        // Batches: everything due as one message. Otherwise one message a finding.
        let groups: Vec<Vec<&crate::store::Delivery>> = if ch.batches() {
            vec![due.iter().collect()]
        } else {
            due.iter().map(|d| vec![d]).collect()
        };
        for group in groups {
            if ch.budget() == 0 {
                break;
            }
            ch.spent();
            let findings: Vec<&Finding> = group.iter().map(|d| &d.finding).collect();
            let ids: Vec<i64> = group.iter().map(|d| d.id).collect();
            let sent = tokio::time::timeout(
                send::SEND_TIMEOUT,
                send::deliver(&ch.cfg.kind, &ch.transport, &self.host, ids[0], &findings),
            )
            .await
            .unwrap_or_else(|_| Err("timed out".into()));
            match sent {
                Ok(()) => {
                    tracing::debug!(channel = %ch.cfg.name, findings = ids.len(), "Alert delivered.");
                    self.store.alerts_sent(ids).await?;
                }
                Err(e) => {
                    let attempts = group.iter().map(|d| d.attempts).max().unwrap_or(0);
                    let give_up = attempts + 1 >= MAX_ATTEMPTS;
                    if give_up {
                        tracing::error!(channel = %ch.cfg.name, error = %e, findings = ids.len(), "Alert delivery given up after {MAX_ATTEMPTS} attempts.");
                    } else {
                        tracing::warn!(channel = %ch.cfg.name, error = %e, attempt = attempts + 1, "Alert delivery failed; retrying.");
                    }
                    self.store
                        .alerts_retry(ids, now + backoff_secs(attempts), e, give_up)
                        .await?;
                    // The receiver is down: the rest waits for the retry too.
                    break;
                }
            }
        }
        Ok(())
    }

    /// Send `f` through every channel now (no outbox, no budget) and say how each
    /// one went.
    pub async fn test_all(&self, f: &Finding) -> Vec<TestResult> {
        let channels = self.snapshot();
        let passes = channels.iter().map(|c| async move {
            let r = tokio::time::timeout(
                send::SEND_TIMEOUT,
                send::deliver(&c.cfg.kind, &c.transport, &self.host, 0, &[f]),
            )
            .await
            .unwrap_or_else(|_| Err("timed out".into()));
            TestResult {
                name: c.cfg.name.clone(),
                kind: c.kind(),
                ok: r.is_ok(),
                error: r.err(),
            }
        });
        futures_util::future::join_all(passes).await
    }

    /// Each channel's outbox.
    pub async fn views(&self) -> Vec<ChannelView> {
        let stats = self.store.outbox_stats().await.unwrap_or_default();
        self.snapshot()
            .iter()
            .map(|c| ChannelView {
                name: c.cfg.name.clone(),
                kind: c.kind(),
                outbox: stats
                    .iter()
                    .find(|(n, _)| *n == c.cfg.name)
                    .map(|(_, s)| s.clone())
                    .unwrap_or_default(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::model::Severity;

    fn channel(cfg: &str) -> Channel {
        let cfg: AlertChannel = serde_yaml_ng::from_str(cfg).expect("channel");
        Channel {
            max_per_minute: cfg.max_per_minute.unwrap_or(60),
            cfg,
            transport: send::Transport::Socket,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    #[test]
    fn routing_follows_severity_and_checks_and_never_the_test_alert() {
        let c = channel("{name: a, type: syslog, target: 'unix:/dev/log', min_severity: high, exclude_checks: [port_scan]}");
        let f = |check: &str, severity| Finding {
            check: check.into(),
            severity,
            ..Default::default()
        };
        assert!(c.wants(&f("signature", Severity::Critical)));
        assert!(c.wants(&f("signature", Severity::High)));
        assert!(!c.wants(&f("signature", Severity::Warning)));
        assert!(!c.wants(&f("port_scan", Severity::Critical)));
        assert!(!c.wants(&f(TEST_CHECK, Severity::Critical)));
        let only = channel("{name: b, type: syslog, target: 'unix:/dev/log', min_severity: info, checks: [ssh_bruteforce]}");
        assert!(only.wants(&f("ssh_bruteforce", Severity::Info)));
        assert!(!only.wants(&f("signature", Severity::Critical)));
    }

    #[test]
    fn the_budget_is_per_minute() {
        let c = channel("{name: a, type: syslog, target: 'unix:/dev/log', max_per_minute: 2}");
        assert_eq!(c.budget(), 2);
        c.spent();
        c.spent();
        assert_eq!(c.budget(), 0);
    }

    /// An HTTP receiver on loopback that answers 200 and hands over each body.
    async fn receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", l.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = s.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).into_owned();
                        if let Some((head, body)) = text.split_once("\r\n\r\n") {
                            let len = head
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            if body.len() >= len {
                                let _ = tx.send(body.to_string());
                                let _ = s
                                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                                    .await;
                                return;
                            }
                        }
                    }
                });
            }
        });
        (url, rx)
    }

    async fn alerts_with(channel_yaml: &str) -> (Arc<Alerts>, Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s.db"), 16).expect("store");
        let mut cfg = Config::embedded().expect("config");
        cfg.alerts.channels = vec![serde_yaml_ng::from_str(channel_yaml).expect("channel")];
        let a = Alerts::new(&cfg, store.clone()).await.expect("alerts");
        // Start the cursor before the findings of the test.
        store.route_alerts(a.router(), 10).await.expect("cursor");
        (a, store, dir)
    }

    async fn record(store: &Store, n: usize) {
        for i in 0..n {
            let f = crate::store::NewFinding {
                key: Some(format!("k{i}-{}", rand::random::<u64>())),
                ..crate::store::NewFinding::new("signature_match", Severity::Critical, "webshell")
            };
            store.record_finding(f, 60).await.expect("record");
        }
    }

    #[tokio::test]
    async fn a_text_channel_sends_what_waited_as_one_digest_within_its_budget() {
        let (url, mut got) = receiver().await;
        let (a, store, _dir) = alerts_with(&format!(
            "{{name: chat, type: slack, url: '{url}', max_per_minute: 1}}"
        ))
        .await;
        record(&store, 3).await;
        store.route_alerts(a.router(), 100).await.expect("route");
        a.deliver(a.snapshot()[0].clone()).await.expect("deliver");
        let body = got.recv().await.expect("one message");
        assert!(body.contains("3 findings"), "{body}");
        assert_eq!(body.matches("signature_match").count(), 3, "{body}");
        // The budget is spent: two more wait, nothing is sent, nothing is lost.
        record(&store, 2).await;
        store.route_alerts(a.router(), 100).await.expect("route");
        a.deliver(a.snapshot()[0].clone()).await.expect("deliver");
        assert!(got.try_recv().is_err(), "sent over its budget");
        assert_eq!(a.views().await[0].outbox.pending, 2);
        assert_eq!(a.views().await[0].outbox.sent, 3);
    }

    #[tokio::test]
    async fn a_digest_channel_waits_for_its_interval() {
        let (url, mut got) = receiver().await;
        let (a, store, _dir) = alerts_with(&format!(
            "{{name: chat, type: telegram, url: '{url}', chat_id: '-100', digest_minutes: 5}}"
        ))
        .await;
        record(&store, 2).await;
        store.route_alerts(a.router(), 100).await.expect("route");
        a.deliver(a.snapshot()[0].clone()).await.expect("deliver");
        assert!(
            got.try_recv().is_err(),
            "a digest went out before its interval"
        );
        assert_eq!(a.views().await[0].outbox.pending, 2);
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert_eq!(
            (0..9).map(backoff_secs).collect::<Vec<_>>(),
            [5, 10, 20, 40, 80, 160, 320, 640, 900]
        );
        assert_eq!(backoff_secs(99), 900);
    }
}
