// SPDX-License-Identifier: GPL-2.0-only
//! The systemd notify protocol (sd_notify(3)), spoken directly: one datagram of
//! `KEY=VALUE` lines to the socket named by `NOTIFY_SOCKET`. `READY=1` once the API
//! listens and the firewall is reconciled, `STATUS=` as the agent starts and when a
//! core task fails, `WATCHDOG=1` only while every core task runs, `STOPPING=1` at
//! shutdown. Outside systemd (no `NOTIFY_SOCKET`) every call is a no-op.

use std::{
    os::unix::net::{SocketAddr, UnixDatagram},
    time::Duration,
};

use tokio::sync::watch;

use super::Supervisor;

pub const ENV_SOCKET: &str = "NOTIFY_SOCKET";
pub const ENV_WATCHDOG_USEC: &str = "WATCHDOG_USEC";
pub const ENV_WATCHDOG_PID: &str = "WATCHDOG_PID";

/// Where systemd listens, and how often it wants the watchdog fed.
#[derive(Debug, Default)]
pub struct Notifier {
    socket: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
    /// The protocol's variables as systemd set them, for the agent's own re-exec
    /// (a restart asked through the API keeps the PID systemd watches).
    env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
}

impl Notifier {
    /// Read the protocol's variables and remove them from the environment, so that
    /// no child (journalctl, a scan helper) talks to systemd in our name. Call it
    /// before any thread starts.
    pub fn from_env() -> Self {
        let socket = std::env::var_os(ENV_SOCKET);
        let usec = std::env::var(ENV_WATCHDOG_USEC).ok();
        let pid = std::env::var(ENV_WATCHDOG_PID).ok();
        let env = [ENV_SOCKET, ENV_WATCHDOG_USEC, ENV_WATCHDOG_PID]
            .into_iter()
            .filter_map(|k| Some((k.into(), std::env::var_os(k)?)))
            .collect();
        for k in [ENV_SOCKET, ENV_WATCHDOG_USEC, ENV_WATCHDOG_PID] {
            // `main` calls this before the runtime or any other thread exists.
            #[allow(clippy::disallowed_methods)]
            std::env::remove_var(k);
        }
        let socket = socket.and_then(|path| match connect(&path) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(socket = ?path, error = %e, "NOTIFY_SOCKET is set but unusable; systemd will not hear from the agent.");
                None
            }
        });
        Self {
            socket,
            watchdog: watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id()),
            env,
        }
    }

    /// The variables to hand the agent's own re-exec.
    pub fn env_for_reexec(&self) -> &[(std::ffi::OsString, std::ffi::OsString)] {
        &self.env
    }

    /// Does systemd listen (a notify-type unit started us)?
    pub fn under_systemd(&self) -> bool {
        self.socket.is_some()
    }

    /// A notifier for the socket at `path` (tests stand in for systemd with it).
    pub fn to_socket(path: &std::path::Path, watchdog: Option<Duration>) -> std::io::Result<Self> {
        Ok(Self {
            socket: Some(connect(path.as_os_str())?),
            watchdog,
            env: Vec::new(),
        })
    }

    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// How long systemd waits for a `WATCHDOG=1` before it restarts the service.
    pub fn watchdog(&self) -> Option<Duration> {
        self.socket.as_ref().and(self.watchdog)
    }

    /// Send one message; a failure is logged, never fatal (systemd going away must
    /// not stop the protection).
    pub fn send(&self, state: &str) {
        let Some((sock, addr)) = &self.socket else {
            return;
        };
        if let Err(e) = sock.send_to_addr(state.as_bytes(), addr) {
            tracing::warn!(error = %e, "Cannot notify systemd.");
        }
    }

    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=Stopping: detaching the programs, flushing the store");
    }

    /// A restart in place (re-exec, same PID): systemd's reload protocol, the new
    /// image says READY=1 again.
    pub fn reloading(&self) {
        let usec = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
            .unwrap_or(0);
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=Restarting: settings changed through the API"
        ));
    }
}

/// A STATUS value is one line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn connect(path: &std::ffi::OsStr) -> std::io::Result<(UnixDatagram, SocketAddr)> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_bytes();
    let addr = match bytes.split_first() {
        // A leading '@' names a socket in the abstract namespace.
        Some((b'@', name)) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        Some((b'/', _)) => SocketAddr::from_pathname(path)?,
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "neither an absolute path nor an abstract name (@...)",
            ))
        }
    };
    Ok((UnixDatagram::unbound()?, addr))
}

/// `WATCHDOG_USEC` applies to us only when `WATCHDOG_PID` is unset or our pid.
fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if pid.is_some_and(|p| p.trim().parse::<u32>().ok() != Some(me)) {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Feed the watchdog at half its interval while every core task runs. When one is
/// down the feeding stops and the STATUS line names it: a task that comes back within
/// the interval costs nothing; one that stays down gets the agent restarted by
/// systemd (`Restart=on-failure`). A stalled runtime stops the feeding too.
pub async fn feed_watchdog(
    notifier: std::sync::Arc<Notifier>,
    supervisor: Supervisor,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(interval) = notifier.watchdog() else {
        return;
    };
    let mut tick = tokio::time::interval(interval / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_down = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let down = supervisor.failed_core();
        if down.is_empty() {
            notifier.send("WATCHDOG=1");
            if was_down {
                notifier.status("Running: every core task is back");
                was_down = false;
            }
        } else {
            let names: Vec<String> = down
                .iter()
                .map(|t| format!("{}/{}", t.feature, t.name))
                .collect();
            notifier.status(&format!(
                "Degraded: core task down ({}); the watchdog is not fed",
                names.join(", ")
            ));
            was_down = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_ours_only_for_our_pid() {
        let s = Some(Duration::from_secs(30));
        assert_eq!(watchdog_interval(Some("30000000"), None, 7), s);
        assert_eq!(watchdog_interval(Some("30000000"), Some("7"), 7), s);
        assert_eq!(watchdog_interval(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("x"), None, 7), None);
        assert_eq!(watchdog_interval(None, Some("7"), 7), None);
    }

    #[test]
    fn a_status_is_one_line() {
        assert_eq!(one_line("a\nREADY=1"), "a READY=1");
    }

    #[test]
    fn messages_reach_a_path_and_an_abstract_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).expect("bind");
        let (tx, addr) = connect(path.as_os_str()).expect("connect");
        let n = Notifier {
            socket: Some((tx, addr)),
            watchdog: None,
            env: Vec::new(),
        };
        n.ready("up");
        let mut buf = [0u8; 256];
        let len = rx.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=up");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("rampart-notify-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).expect("name"))
            .expect("bind abstract");
        let (tx, addr) = connect(std::ffi::OsStr::new(&format!("@{name}"))).expect("connect");
        let n = Notifier {
            socket: Some((tx, addr)),
            watchdog: None,
            env: Vec::new(),
        };
        n.stopping();
        let len = rx.recv(&mut buf).expect("recv");
        assert!(buf[..len].starts_with(b"STOPPING=1\n"));
        n.reloading();
        let len = rx.recv(&mut buf).expect("recv");
        assert!(
            buf[..len].starts_with(b"RELOADING=1\nMONOTONIC_USEC="),
            "{:?}",
            &buf[..len]
        );
        assert!(connect(std::ffi::OsStr::new("relative")).is_err());
    }
}
