// SPDX-License-Identifier: GPL-2.0-only
//! Helpers for the privileged tests: scoped network namespaces, the agent as a
//! child process, and the rule that a kernel test may skip locally but never in CI.
//!
//! Everything a test creates is removed in `Drop`, so a failing assertion still
//! cleans up (namespaces, veths, the agent process).

pub mod browser;
pub mod contract;
pub mod dns;
pub mod flood;
pub mod harness;
#[cfg(target_arch = "x86_64")]
pub mod ia32;

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

/// Where `cargo xtask test` built the agent binary.
pub fn rampart_bin() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    root.join("target").join(profile).join("rampart")
}

/// `n` failed sshd logins from `ip` for invalid users `<tag>0`, `<tag>1`, ...
pub fn sshd_failures(ip: &str, n: usize, tag: &str) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!("Nov 23 15:00:0{} web1 sshd[4242]: Failed password for invalid user {tag}{i} from {ip} port {} ssh2", i % 10, 40000 + i)
        })
        .collect()
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Call when a kernel feature a test needs is missing. Locally the test is skipped
/// with the reason printed (returns false); in CI it fails.
#[must_use]
pub fn feature_available(feature: &str, available: Result<(), String>) -> bool {
    match available {
        Ok(()) => true,
        Err(reason) if in_ci() => {
            panic!("{feature} unavailable in CI (skips are failures there): {reason}")
        }
        Err(reason) => {
            eprintln!("SKIP: {feature} unavailable: {reason}");
            false
        }
    }
}

/// Must the agent's BPF-LSM backend run here? `cargo xtask vmtest` boots its guests
/// with `bpf` in the LSM list on kernels that run LSM programs, and says so with
/// `RAMPART_EXPECT_LSM=1`: there a test that finds BPF-LSM not running fails
/// (`Harness::lsm_runs`). Elsewhere (this CI kernel refuses LSM programs with EPERM,
/// which `kernels::every_program_loads_on_this_kernel` asserts) the tests take what
/// the agent reports and check what that backend promises.
pub fn lsm_expected() -> bool {
    std::env::var("RAMPART_EXPECT_LSM").is_ok_and(|v| v == "1")
}

/// The backend `/api/v1/health` reports for `sensor` ("lsm", "tracepoint",
/// "fanotify", "none"); panics when the sensor is not listed.
pub fn sensor_backend(health: &serde_json::Value, sensor: &str) -> String {
    health["sensors"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["sensor"] == sensor))
        .and_then(|s| s["backend"].as_str())
        .unwrap_or_else(|| panic!("sensor {sensor} in {health}"))
        .to_string()
}

pub fn is_root() -> Result<(), String> {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        Ok(())
    } else {
        Err("needs root (run through `cargo xtask test`)".into())
    }
}

pub fn sh(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Two network namespaces joined by a veth pair, with RFC 5737 addresses:
/// `a` (198.51.100.1, where the agent runs) and `b` (198.51.100.2, the peer).
/// (Not 192.0.2.0/24: CI machines of this kind carry 192.0.2.2 on their own eth0.)
pub struct NetPair {
    pub ns_a: String,
    pub ns_b: String,
    pub if_a: String,
    pub if_b: String,
    pub ip_a: &'static str,
    pub ip_b: &'static str,
}

impl NetPair {
    pub fn create() -> Result<Self, String> {
        let id = format!(
            "{}{}",
            std::process::id() % 100_000,
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let p = NetPair {
            ns_a: format!("rt-a-{id}"),
            ns_b: format!("rt-b-{id}"),
            if_a: format!("rta{id}"),
            if_b: format!("rtb{id}"),
            ip_a: "198.51.100.1",
            ip_b: "198.51.100.2",
        };
        // From here on Drop cleans up whatever was created.
        sh("ip", &["netns", "add", &p.ns_a])?;
        sh("ip", &["netns", "add", &p.ns_b])?;
        // An address that appears after the pair is handed out is a network change
        // to whatever runs in it: Chromium (the dashboard tests run it in `a`) fails
        // the navigation in flight with ERR_NETWORK_CHANGED. Each veth's IPv6
        // link-local address comes late twice over: when the carrier event reaches
        // addrconf (linkwatch, up to a second after `up`), and after duplicate
        // address detection (about 2 s more). No detection here (set before the veth
        // exists, which copies `default`), and `settle` waits for the rest.
        let mut ipv6 = true;
        for ns in [&p.ns_a, &p.ns_b] {
            let dad = Self::in_ns(ns, || {
                std::fs::write("/proc/sys/net/ipv6/conf/default/accept_dad", "0")
            });
            match dad {
                // No IPv6 in this kernel: no address to wait for either.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => ipv6 = false,
                r => r.map_err(|e| format!("accept_dad=0 in {ns}: {e}"))?,
            }
        }
        sh(
            "ip",
            &[
                "link", "add", &p.if_a, "netns", &p.ns_a, "type", "veth", "peer", "name", &p.if_b,
                "netns", &p.ns_b,
            ],
        )?;
        for (ns, ifc, ip) in [(&p.ns_a, &p.if_a, p.ip_a), (&p.ns_b, &p.if_b, p.ip_b)] {
            sh(
                "ip",
                &["-n", ns, "addr", "add", &format!("{ip}/24"), "dev", ifc],
            )?;
            sh("ip", &["-n", ns, "link", "set", ifc, "up"])?;
            sh("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        }
        if ipv6 {
            p.settle()?;
        }
        Ok(p)
    }

    /// Wait until both veths carry their IPv6 link-local address, no longer
    /// tentative (see `create`).
    fn settle(&self) -> Result<(), String> {
        // Generous: under TCG (the vmtest guests) it took 1.3-1.8 s.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        for (ns, ifc) in [(&self.ns_a, &self.if_a), (&self.ns_b, &self.if_b)] {
            loop {
                let out = sh("ip", &["-n", ns, "-6", "addr", "show", "dev", ifc])?;
                if out.contains("fe80::") && !out.contains("tentative") {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    return Err(format!(
                        "{ifc} in {ns} has no settled link-local address: {out}"
                    ));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// One ping from `b` to `a`; true when answered.
    pub fn ping_a_from_b(&self) -> bool {
        Command::new("ip")
            .args([
                "netns", "exec", &self.ns_b, "ping", "-c", "1", "-W", "1", self.ip_a,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Run `f` on a thread that has entered namespace `ns` (threads it spawns inherit it).
    pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{ns}");
        let handle = std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        });
        match handle.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        // Deleting the namespaces removes the veth pair with them.
        let _ = sh("ip", &["netns", "del", &self.ns_a]);
        let _ = sh("ip", &["netns", "del", &self.ns_b]);
    }
}

/// The agent running as a child process; SIGTERM + wait on drop.
pub struct AgentProcess {
    child: Option<Child>,
    pub log: PathBuf,
}

impl AgentProcess {
    /// Start `rampart run --config cfg`, inside network namespace `ns` when given.
    pub fn start(ns: Option<&str>, config: &Path, log: PathBuf) -> Self {
        Self::start_env(ns, config, log, &[])
    }

    /// [`AgentProcess::start`] with extra environment variables (as systemd sets them).
    pub fn start_env(ns: Option<&str>, config: &Path, log: PathBuf, env: &[(&str, &str)]) -> Self {
        let bin = rampart_bin();
        assert!(
            bin.exists(),
            "{} not built (run through `cargo xtask test`)",
            bin.display()
        );
        let out = std::fs::File::create(&log).expect("agent log");
        let err = out.try_clone().expect("agent log");
        // nsenter --net enters only the network namespace. `ip netns exec` would also
        // unshare the mount namespace and remount /sys, hiding the host's bpffs: the
        // agent's pins would then die with it.
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}")).arg("--").arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        // The soft open-file limit systemd gives a service (the agent raises it).
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                let mut lim = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_max > 1024 {
                    lim.rlim_cur = 1024;
                    libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
                }
                Ok(())
            });
        }
        let child = cmd
            .arg("run")
            .arg("--config")
            .arg(config)
            // RAMPART_TEST_AGENT_LOG (a RAMPART_LOG filter) turns on more when debugging.
            .env(
                "RAMPART_LOG",
                std::env::var("RAMPART_TEST_AGENT_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawning rampart");
        AgentProcess {
            child: Some(child),
            log,
        }
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        let _ = std::fs::File::open(&self.log).and_then(|mut f| f.read_to_string(&mut s));
        s
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Fail with the agent's log if it exited.
    pub fn assert_running(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                panic!("agent exited early ({status}); log:\n{}", self.log_text());
            }
        }
    }

    /// SIGTERM and wait up to `timeout`; returns the exit status.
    pub fn stop(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if self.stop(Duration::from_secs(10)).is_none() && self.child.is_some() {
            eprintln!("agent did not stop in time; killed");
        }
    }
}

/// A bpffs directory for one test's pinned maps and links; removed on drop
/// (unpinning detaches whatever only the pins kept alive).
pub struct PinDir(pub PathBuf);

impl PinDir {
    pub fn new() -> Self {
        let p = PathBuf::from(format!(
            "/sys/fs/bpf/rampart-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        PinDir(p)
    }
}

impl Default for PinDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.0) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The embedded config with test-sized maps and `pins` as the pin directory.
pub fn test_config(pins: &PinDir) -> agent::config::Config {
    let mut cfg = agent::config::Config::embedded().expect("embedded config");
    cfg.firewall.pin_dir = pins.0.clone();
    cfg.firewall.max_entries_v4 = 1024;
    cfg.firewall.max_entries_v6 = 1024;
    cfg.firewall.max_allow_entries = 64;
    cfg.firewall.max_tracked_sources = 1024;
    cfg.sensors.ringbuf_bytes = 1 << 16;
    cfg
}

/// A TCP listener on `addr` inside namespace `ns`, accepting until dropped.
pub struct Listener {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    pub fn start(ns: &str, addr: std::net::SocketAddr) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let path = format!("/run/netns/{ns}");
        let st = stop.clone();
        let handle = std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("netns");
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let l = std::net::TcpListener::bind(addr).expect("bind");
            l.set_nonblocking(true).expect("nonblocking");
            let _ = tx.send(());
            while !st.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => drop(s),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("listener ready");
        Listener {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// One TCP connect from namespace `ns` to `addr` (1 s timeout); true when it connects.
pub fn tcp_connects(ns: &str, addr: std::net::SocketAddr) -> bool {
    NetPair::in_ns(ns, move || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
    })
}

/// `count` pings from `ns` to `ip`, `interval` seconds apart; returns how many were answered.
pub fn pings_answered(ns: &str, ip: &str, count: u32, interval: &str) -> u32 {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "ping",
            "-n",
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            interval,
            "-W",
            "1",
            ip,
        ])
        .output()
        .expect("ping");
    let text = String::from_utf8_lossy(&out.stdout);
    // "... 10 packets transmitted, 4 received, ..."
    text.split(',')
        .find_map(|part| {
            part.trim()
                .strip_suffix(" received")
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A cgroup v2 directory for one test; removed on drop (its processes have exited).
pub struct TestCgroup(pub PathBuf);

impl TestCgroup {
    pub fn create() -> Result<Self, String> {
        let root = agent::kernel::cgroup2_root().ok_or("no cgroup v2 mount")?;
        let p = root.join(format!(
            "rampart-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&p).map_err(|e| format!("mkdir {}: {e}", p.display()))?;
        Ok(TestCgroup(p))
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A tmpfs mounted on a directory for the life of the value: a filesystem of the
/// test's own, so whole-filesystem marks (fanotify) stay inside the test.
pub struct TmpfsMount(pub PathBuf);

impl TmpfsMount {
    pub fn new(dir: &std::path::Path, size: &str) -> Result<Self, String> {
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "rampart-test"])
            .arg(dir)
            .status()
            .map_err(|e| format!("mount: {e}"))?;
        if !st.success() {
            return Err(format!("mount tmpfs on {}: {st}", dir.display()));
        }
        Ok(Self(dir.to_path_buf()))
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        // Lazy: a process of a failed test may still hold it.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The prelude of every namespace test: root, then a fresh [`NetPair`]. None means
/// skip (locally; in CI a missing feature panics instead).
pub fn net_or_skip() -> Option<NetPair> {
    if !feature_available("root + network namespaces", is_root()) {
        return None;
    }
    match NetPair::create() {
        Ok(n) => Some(n),
        Err(e) => {
            assert!(feature_available("network namespaces + veth", Err(e)));
            None
        }
    }
}

/// A [`TestCgroup`], or None to skip (as [`net_or_skip`]).
pub fn cgroup_or_skip() -> Option<TestCgroup> {
    match TestCgroup::create() {
        Ok(c) => Some(c),
        Err(e) => {
            assert!(feature_available("cgroup v2", Err(e)));
            None
        }
    }
}

/// A random API token.
pub fn token() -> String {
    let mut b = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut b);
    hex::encode(b)
}

/// `program` to run as `nobody` with no groups: what any customer can do.
pub fn nobody(program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", program]);
    c
}

/// Run `c` to its end; it must succeed.
pub fn run_ok(c: &mut Command, what: &str) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `sh -c SCRIPT` as `nobody`; it must succeed.
pub fn as_nobody(script: &str) {
    run_ok(nobody("sh").args(["-c", script]), script);
}

/// Wait for `cond` up to `timeout`, polling every 50 ms.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// Ethernet frames for XDP fixtures.
pub mod packet {
    pub const ETH_P_IP: u16 = 0x0800;
    pub const ETH_P_IPV6: u16 = 0x86DD;
    pub const ETH_P_ARP: u16 = 0x0806;
    pub const ETH_P_8021Q: u16 = 0x8100;

    fn eth(proto: u16, vlans: &[u16]) -> Vec<u8> {
        let mut p = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        for vid in vlans {
            p.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
            p.extend_from_slice(&vid.to_be_bytes());
        }
        p.extend_from_slice(&proto.to_be_bytes());
        p
    }

    /// An IPv4/TCP segment from `src` to `dport` with TCP `flags` (0x02 SYN, 0x10 ACK).
    pub fn tcp4(src: [u8; 4], dport: u16, flags: u8) -> Vec<u8> {
        let mut p = eth(ETH_P_IP, &[]);
        let ip: [u8; 20] = [
            0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, src[0], src[1], src[2], src[3], 192, 0, 2, 1,
        ];
        p.extend_from_slice(&ip);
        let mut tcp = [0u8; 20];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&dport.to_be_bytes());
        tcp[12] = 0x50;
        tcp[13] = flags;
        p.extend_from_slice(&tcp);
        p
    }

    /// An IPv4/UDP datagram from `src` to `dport`.
    pub fn udp4(src: [u8; 4], dport: u16) -> Vec<u8> {
        let mut p = ipv4(src, &[]);
        let n = p.len();
        p[n - 6..n - 4].copy_from_slice(&dport.to_be_bytes());
        p
    }

    /// An IPv4/UDP packet from `src` (optionally VLAN-tagged).
    pub fn ipv4(src: [u8; 4], vlans: &[u16]) -> Vec<u8> {
        let mut p = eth(ETH_P_IP, vlans);
        let ip: [u8; 20] = [
            0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, src[0], src[1], src[2], src[3], 192, 0, 2, 1,
        ];
        p.extend_from_slice(&ip);
        p.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
        p
    }

    /// An IPv6/UDP packet from `src`.
    pub fn ipv6(src: [u8; 16]) -> Vec<u8> {
        let mut p = eth(ETH_P_IPV6, &[]);
        p.extend_from_slice(&[0x60, 0, 0, 0, 0, 8, 17, 64]);
        p.extend_from_slice(&src);
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
        p
    }

    /// An ARP frame (not IP).
    pub fn arp() -> Vec<u8> {
        let mut p = eth(ETH_P_ARP, &[]);
        p.extend_from_slice(&[0u8; 28]);
        p
    }
}

/// Can users here create io_uring rings (`kernel.io_uring_disabled` absent or 0)?
pub fn io_uring_open_to_users() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|v| v.trim() == "0")
        .unwrap_or(true)
}
