// SPDX-License-Identifier: GPL-2.0-only
//! Supervision of the agent's long-lived tasks. Each task is started from a factory
//! under [`Supervisor::spawn`]; when it fails, panics or ends before shutdown, it is
//! counted, shown as failed with its reason (`/health`, `/components`, `/metrics`),
//! reported as a `task_failed` finding, and started again after a backoff that grows
//! from 1 s to 60 s (and starts small again once a run lasted a minute). A dead task
//! never stops the rest of the agent, and a task never stays dead.
//!
//! What a task owns across restarts (a channel's receiving end, a kernel map) lives
//! outside the task: in its factory, or behind a [`Shared`] lock the task holds while
//! it runs and drops when it dies.

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use api::model::Severity;
use serde::Serialize;
use tokio::{
    sync::{watch, OwnedMutexGuard},
    task::JoinHandle,
};

pub mod memory;
pub mod notify;
pub mod panic;
use crate::{findings::Findings, store::NewFinding};
pub use panic::panic_message;

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A run at least this long counts as healthy: the next failure backs off from the start.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
pub const CHECK_TASK_FAILED: &str = "task_failed";

/// A value a task holds while it runs (a channel's receiving end): a task that dies
/// drops its guard, and the restarted task takes it again.
pub struct Shared<T>(Arc<tokio::sync::Mutex<T>>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: Send + 'static> Shared<T> {
    pub fn new(v: T) -> Self {
        Self(Arc::new(tokio::sync::Mutex::new(v)))
    }

    /// Wait for the value (a dying run releases it as it unwinds).
    pub async fn take(&self) -> OwnedMutexGuard<T> {
        self.0.clone().lock_owned().await
    }
}

/// Where a task stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Running,
    /// Died; waiting out its backoff before the next start.
    Failed,
    /// Ended at shutdown.
    Stopped,
}

/// One supervised task, as `/health` shows it.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct TaskView {
    pub name: &'static str,
    /// The feature it belongs to (sensors, detection, logs, firewall, api).
    pub feature: &'static str,
    /// The agent cannot do its job without it (the systemd watchdog is fed only while
    /// every core task runs).
    pub core: bool,
    pub state: TaskState,
    pub restarts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failed_at: Option<String>,
}

struct Inner {
    tasks: Mutex<Vec<Arc<Mutex<TaskView>>>>,
    findings: Arc<Findings>,
    shutdown: watch::Receiver<bool>,
    first_backoff: Duration,
}

/// Starts and watches the long-lived tasks; cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a task's run returns: `()` for a task that cannot fail (it only ends), or a
/// `Result` whose error is the failure's reason.
pub trait RunOutcome {
    fn into_result(self) -> anyhow::Result<()>;
}

impl RunOutcome for () {
    fn into_result(self) -> anyhow::Result<()> {
        Ok(())
    }
}

impl RunOutcome for anyhow::Result<()> {
    fn into_result(self) -> anyhow::Result<()> {
        self
    }
}

/// Run a blocking body on the blocking pool as a task's future; a panic there becomes
/// the run's error.
pub async fn blocking<F>(f: F) -> anyhow::Result<()>
where
    F: FnOnce() -> anyhow::Result<()> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(anyhow::anyhow!(
            "panicked: {}",
            panic_message(&*e.into_panic())
        )),
        Err(e) => Err(anyhow::anyhow!("cancelled: {e}")),
    }
}

impl Supervisor {
    pub fn new(findings: Arc<Findings>, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            inner: Arc::new(Inner {
                tasks: Mutex::new(Vec::new()),
                findings,
                shutdown,
                first_backoff: FIRST_BACKOFF,
            }),
        }
    }

    /// Start `make()`'s future as the task `name` of `feature`, and start it again
    /// whenever it dies before shutdown. The returned handle ends once the task ended
    /// at shutdown (or failed during it).
    pub fn spawn<F, Fut>(
        &self,
        feature: &'static str,
        name: &'static str,
        core: bool,
        mut make: F,
    ) -> JoinHandle<()>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: RunOutcome,
    {
        let view = Arc::new(Mutex::new(TaskView {
            name,
            feature,
            core,
            state: TaskState::Running,
            restarts: 0,
            last_error: None,
            last_failed_at: None,
        }));
        lock(&self.inner.tasks).push(view.clone());
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let mut shutdown = inner.shutdown.clone();
            let first = inner.first_backoff;
            let mut backoff = first;
            loop {
                lock(&view).state = TaskState::Running;
                let started = Instant::now();
                // Its own task, so a panic ends the run and not the supervisor.
                let run = make();
                let ended = tokio::spawn(async move { run.await.into_result() }).await;
                // The sender gone is a stop too: the agent's start failed and is
                // unwinding; its tasks ending then are no failures to report.
                let stopping = *shutdown.borrow() || shutdown.has_changed().is_err();
                let why = match ended {
                    Ok(Ok(())) if stopping => {
                        lock(&view).state = TaskState::Stopped;
                        return;
                    }
                    Ok(Ok(())) => "ended before shutdown".to_string(),
                    Ok(Err(e)) => format!("{e:#}"),
                    Err(e) if e.is_panic() => {
                        format!("panicked: {}", panic_message(&*e.into_panic()))
                    }
                    Err(e) => format!("cancelled: {e}"),
                };
                {
                    let mut v = lock(&view);
                    v.last_error = Some(why.clone());
                    v.last_failed_at = Some(crate::store::now_rfc3339());
                    if stopping {
                        v.state = TaskState::Stopped;
                    } else {
                        v.state = TaskState::Failed;
                        v.restarts += 1;
                    }
                }
                if stopping {
                    tracing::error!(feature, task = name, error = %why, "Task failed during shutdown.");
                    return;
                }
                if started.elapsed() >= HEALTHY_RUN {
                    backoff = first;
                }
                tracing::error!(feature, task = name, error = %why, restart_in_ms = backoff.as_millis() as u64, "Task died; restarting it.");
                let f = NewFinding {
                    key: Some(format!("{feature}/{name}")),
                    details: why,
                    ..NewFinding::new(
                        CHECK_TASK_FAILED,
                        Severity::High,
                        format!(
                            "The {feature} task \"{name}\" died and is restarted; until then its work waits"
                        ),
                    )
                };
                inner.findings.report(f).await;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {
                        lock(&view).state = TaskState::Stopped;
                        return;
                    }
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        })
    }

    /// Every supervised task, in start order.
    pub fn tasks(&self) -> Vec<TaskView> {
        lock(&self.inner.tasks)
            .iter()
            .map(|v| lock(v).clone())
            .collect()
    }

    /// The core tasks that are not running (the systemd watchdog is fed only while
    /// there are none).
    pub fn failed_core(&self) -> Vec<TaskView> {
        lock(&self.inner.tasks)
            .iter()
            .map(|v| lock(v).clone())
            .filter(|v| v.core && v.state != TaskState::Running)
            .collect()
    }
}

/// A factory that hands out `first` on the first start and builds anew with `again`
/// on every restart (a sensor opened during start-up, reopened after a failure).
pub fn first_then<T, E>(
    first: T,
    mut again: impl FnMut() -> Result<T, E> + Send + 'static,
) -> impl FnMut() -> Result<T, E> + Send + 'static
where
    T: Send + 'static,
{
    let mut first = Some(first);
    move || match first.take() {
        Some(t) => Ok(t),
        None => again(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const BACKOFF: Duration = Duration::from_millis(20);

    async fn supervisor() -> (
        Supervisor,
        watch::Sender<bool>,
        Arc<Findings>,
        tempfile::TempDir,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(&dir.path().join("t.db"), 16).expect("store");
        let (tx, _) = tokio::sync::broadcast::channel(16);
        let findings = Arc::new(
            Findings::open(store, tx, 3600, None)
                .await
                .expect("findings"),
        );
        let (stop, rx) = watch::channel(false);
        let mut sup = Supervisor::new(findings.clone(), rx);
        if let Some(inner) = Arc::get_mut(&mut sup.inner) {
            inner.first_backoff = BACKOFF;
        }
        (sup, stop, findings, dir)
    }

    /// Poll until `f` holds (each supervisor step is quick; a stuck one fails the test).
    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        for _ in 0..500 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never: {what}");
    }

    #[tokio::test]
    async fn a_panicking_task_is_restarted_counted_and_reported_until_it_runs() {
        let (sup, stop, findings, _dir) = supervisor().await;
        let runs = Arc::new(AtomicU32::new(0));
        let (r, shutdown) = (runs.clone(), stop.subscribe());
        let handle = sup.spawn("logs", "watcher", true, move || {
            let n = r.fetch_add(1, Ordering::SeqCst);
            let mut shutdown = shutdown.clone();
            async move {
                match n {
                    0 => panic!("grammar bug"),
                    1 => anyhow::bail!("journalctl exited"),
                    _ => {
                        let _ = shutdown.changed().await;
                        Ok(())
                    }
                }
            }
        });
        until("third run", || runs.load(Ordering::SeqCst) == 3).await;
        until("running", || sup.tasks()[0].state == TaskState::Running).await;
        let t = &sup.tasks()[0];
        assert_eq!(t.restarts, 2);
        assert_eq!(t.last_error.as_deref(), Some("journalctl exited"));
        assert!(t.last_failed_at.is_some());
        assert!(sup.failed_core().is_empty());
        let active = findings
            .store()
            .active_findings(100)
            .await
            .expect("findings");
        let f: Vec<_> = active
            .iter()
            .filter(|f| f.check == CHECK_TASK_FAILED)
            .collect();
        assert_eq!(f.len(), 1, "one finding per task, deduplicated: {f:?}");
        assert!(f[0].message.contains("\"watcher\""), "{}", f[0].message);
        stop.send(true).expect("stop");
        handle.await.expect("supervisor");
        assert_eq!(sup.tasks()[0].state, TaskState::Stopped);
        assert_eq!(
            runs.load(Ordering::SeqCst),
            3,
            "never restarted at shutdown"
        );
    }

    #[tokio::test]
    async fn the_watchdog_is_fed_while_core_tasks_run_and_starved_when_one_is_down() {
        let (sup, stop, _findings, dir) = supervisor().await;
        let path = dir.path().join("notify");
        let systemd = tokio::net::UnixDatagram::bind(&path).expect("bind");
        let n = Arc::new(
            notify::Notifier::to_socket(&path, Some(Duration::from_millis(40))).expect("notifier"),
        );
        let _api = sup.spawn("api", "listener", true, std::future::pending::<()>);
        let _feeder = tokio::spawn(notify::feed_watchdog(n, sup.clone(), stop.subscribe()));
        let next = || async {
            let mut buf = [0u8; 512];
            let len = tokio::time::timeout(Duration::from_secs(10), systemd.recv(&mut buf))
                .await
                .expect("a message within 10 s")
                .expect("recv");
            String::from_utf8_lossy(&buf[..len]).into_owned()
        };
        assert_eq!(next().await, "WATCHDOG=1");
        // A core task that keeps dying: the feeding stops and the status says which.
        let _ring = sup.spawn("sensors", "ring", true, || async {
            Err::<(), _>(anyhow::anyhow!("ring gone"))
        });
        let mut degraded = None;
        for _ in 0..50 {
            let m = next().await;
            if m.starts_with("STATUS=Degraded") {
                degraded = Some(m);
                break;
            }
        }
        let degraded = degraded.expect("a Degraded status");
        assert!(degraded.contains("sensors/ring"), "{degraded}");
        let _ = stop.send(true);
    }

    #[tokio::test]
    async fn tasks_ending_because_the_agent_is_gone_are_stopped_not_failed() {
        let (sup, stop, findings, _dir) = supervisor().await;
        let rx = stop.subscribe();
        let _h = sup.spawn("sensors", "ring", true, move || {
            let mut rx = rx.clone();
            async move {
                // Ends when the sender goes, as the agent's tasks do.
                let _ = rx.wait_for(|s| *s).await;
                Ok::<(), anyhow::Error>(())
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(stop);
        until("stopped", || sup.tasks()[0].state == TaskState::Stopped).await;
        let t = &sup.tasks()[0];
        assert_eq!(t.restarts, 0, "{:?}", t.last_error);
        assert!(t.last_error.is_none(), "{:?}", t.last_error);
        let (rows, _) = findings
            .store()
            .query_findings(Default::default())
            .await
            .expect("findings");
        assert!(rows.is_empty(), "no task_failed finding: {rows:?}");
    }

    #[tokio::test]
    async fn a_failed_core_task_shows_until_restarted_and_its_backoff_doubles() {
        let (sup, stop, _findings, _dir) = supervisor().await;
        let starts = Arc::new(Mutex::new(Vec::<Instant>::new()));
        let s = starts.clone();
        let _h = sup.spawn("sensors", "ring", true, move || {
            lock(&s).push(Instant::now());
            async { Ok(()) }
        });
        until("failed", || sup.tasks()[0].state == TaskState::Failed).await;
        let t = &sup.tasks()[0];
        assert_eq!(t.last_error.as_deref(), Some("ended before shutdown"));
        assert_eq!(
            sup.failed_core().iter().map(|t| t.name).collect::<Vec<_>>(),
            ["ring"],
            "a failed core task starves the watchdog"
        );
        until("four starts", || lock(&starts).len() >= 4).await;
        let at = lock(&starts).clone();
        for (i, w) in at.windows(2).take(3).enumerate() {
            let wait = w[1] - w[0];
            assert!(wait >= BACKOFF * (1 << i), "restart {i} after {wait:?}");
        }
        stop.send(true).expect("stop");
    }

    #[tokio::test]
    async fn shared_value_survives_a_run_that_panicked_while_holding_it() {
        let (tx, rx) = tokio::sync::mpsc::channel::<u32>(4);
        let shared = Shared::new(rx);
        let s = shared.clone();
        let died = tokio::spawn(async move {
            let mut rx = s.take().await;
            let _ = rx.recv().await;
            panic!("bug after the first item");
        });
        tx.send(1).await.expect("send");
        assert!(died.await.expect_err("panicked").is_panic());
        tx.send(2).await.expect("send");
        assert_eq!(shared.take().await.recv().await, Some(2), "nothing lost");
    }

    #[tokio::test]
    async fn blocking_turns_a_panic_into_the_runs_error() {
        let e = blocking(|| panic!("scanner bug")).await.expect_err("error");
        assert_eq!(e.to_string(), "panicked: scanner bug");
    }

    #[test]
    fn first_then_hands_out_the_first_value_once() {
        let mut n = 0;
        let mut f = first_then::<u32, ()>(7, move || {
            n += 1;
            Ok(n)
        });
        assert_eq!((f(), f(), f()), (Ok(7), Ok(1), Ok(2)));
    }
}
