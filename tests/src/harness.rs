// SPDX-License-Identifier: GPL-2.0-only
//! An agent running in namespace `a` of a [`NetPair`], with XDP on its veth end,
//! and an HTTPS client that talks to it from inside that namespace.

use std::{path::PathBuf, time::Duration};

use crate::{token, wait_for, AgentProcess, NetPair, PinDir};

/// An HTTPS client that trusts only the agent's certificate (build it inside the
/// namespace whose loopback it talks to).
pub fn client(cert_pem: &[u8]) -> reqwest::blocking::Client {
    client_from(cert_pem, None)
}

/// [`client`], connecting from the local address `from` when given.
pub fn client_from(cert_pem: &[u8], from: Option<std::net::IpAddr>) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem).expect("agent cert"))
        .tls_built_in_root_certs(false)
        .local_address(from)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

pub struct Harness {
    pub net: NetPair,
    pub dir: tempfile::TempDir,
    pub pins: PinDir,
    pub config: PathBuf,
    pub agent: Option<AgentProcess>,
    pub admin: String,
    pub read: String,
    pub www: PathBuf,
}

impl Harness {
    /// Set up namespaces and a config (`extra` goes into the `firewall:` section); start
    /// the agent. The egress and exec sensors are off: tests scope them to a test cgroup.
    pub fn start(net: NetPair, extra: &str) -> Self {
        Self::start_with(
            net,
            extra,
            "egress:\n  enabled: false\nexec:\n  enabled: false\n",
        )
    }

    /// An agent (egress and exec off) reading a fresh, empty sshd log: the harness,
    /// the log's directory (keep it alive) and the log. `more` is appended YAML (an
    /// `auto_response:` section, say).
    pub fn with_sshd_log(net: NetPair, more: &str) -> (Self, tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("auth.log");
        std::fs::write(&log, "").expect("log");
        let top = format!(
            "egress:\n  enabled: false\nexec:\n  enabled: false\nlogs:\n  sshd: [{}]\n{more}",
            log.display()
        );
        (Self::start_with(net, "", &top), dir, log)
    }

    /// Like `start`, with `top` (top-level YAML sections, e.g. `egress:`) appended.
    pub fn start_with(net: NetPair, extra: &str, top: &str) -> Self {
        // The host's own logs are never read by a test: every log source the test
        // does not set is empty.
        let mut top = top.to_string();
        let empty: String = agent::logs::Source::ALL
            .iter()
            .filter(|s| !top.contains(&format!("\n  {}:", s.name())))
            .map(|s| format!("  {}: []\n", s.name()))
            .collect();
        let empty = if top.contains("\n  journald:") {
            empty
        } else {
            format!("{empty}  journald:\n    mode: off\n")
        };
        match top.find("logs:\n") {
            Some(i) => top.insert_str(i + 6, &empty),
            None => top.push_str(&format!("logs:\n{empty}")),
        }
        // Nor the host's database server: `top` follows `detection:`'s first key, so a
        // test that wants the database checks starts `top` with `  databases:`.
        if !top.starts_with("  databases:") {
            top.insert_str(0, "  databases:\n    enabled: false\n");
        }
        // Nor the host's mail queue: the mail AV scans only a spool the test makes.
        if !(top.starts_with("mail:\n") || top.contains("\nmail:\n")) {
            top.push_str("mail:\n  exim_spool: /nonexistent/rampart-test-spool\n  forward_guard:\n    held_dir: /nonexistent/rampart-test-held\n");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let www = dir.path().join("www");
        std::fs::create_dir(&www).expect("mkdir www");
        std::fs::create_dir(dir.path().join("rules")).expect("mkdir rules");
        let pins = PinDir::new();
        let (admin, read) = (token(), token());
        let config = dir.path().join("rampart.yaml");
        std::fs::write(
            &config,
            format!(
                "state_dir: {state}\n\
                 webui:\n  listen: 127.0.0.1:9443\n  tokens:\n    - {{name: op, token: {admin}, scope: admin}}\n    - {{name: panel, token: {read}, scope: read}}\n  \
                 limits: {{requests_per_minute: {rpm}}}\n\
                 firewall:\n  interfaces: [{iface}]\n  pin_dir: {pins}\n  max_entries_v4: 4096\n  max_entries_v6: 4096\n{extra}\
                 watch:\n  paths: [{www}]\n\
                 detection:\n  rules_dir: {rules}\n{top}",
                // `@WWW@` in `top` is the watched directory (for sections that name it).
                top = top.replace("@WWW@", &www.display().to_string()),
                // The tests poll at 20 requests a second, over the default 600/min
                // (api/tests/sessions.rs checks the budget itself).
                rpm = 100_000,
                rules = dir.path().join("rules").display(),
                state = dir.path().join("state").display(),
                iface = net.if_a,
                pins = pins.0.display(),
                www = www.display(),
            ),
        )
        .expect("config");
        // It holds tokens: the agent refuses it readable by every user.
        std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod config");
        let mut h = Harness {
            net,
            dir,
            pins,
            config,
            agent: None,
            admin,
            read,
            www,
        };
        h.restart();
        h
    }

    /// The active findings of one check (read token).
    pub fn findings_of(&self, check: &str) -> Vec<serde_json::Value> {
        let (_, f) = self.get("/api/v1/findings", &self.read.clone());
        f.as_array()
            .into_iter()
            .flatten()
            .filter(|x| x["check"] == check)
            .cloned()
            .collect()
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// (Re)start the agent and wait until its API answers.
    pub fn restart(&mut self) {
        let n = std::fs::read_dir(self.dir.path())
            .map(|d| d.count())
            .unwrap_or(0);
        let log = self.dir.path().join(format!("agent-{n}.log"));
        let started = std::time::Instant::now();
        let mut agent = AgentProcess::start(Some(&self.net.ns_a), &self.config, log);
        let cert = self.state().join("tls/cert.pem");
        let ok = wait_for(Duration::from_secs(60), || {
            agent.assert_running();
            cert.exists()
        });
        assert!(ok, "agent did not start; log:\n{}", agent.log_text());
        self.agent = Some(agent);
        // Generous: an emulated guest on a busy host starts slowly (a restart under
        // TCG took over 90 s on 6.1 while the host compiled, 2026-12-01).
        let up = wait_for(Duration::from_secs(180), || {
            self.agent.as_mut().expect("agent").assert_running();
            self.get("/api/v1/health", &self.read.clone()).0 == 200
        });
        assert!(up, "API did not come up; log:\n{}", self.log());
        // Shown with --nocapture (the guests' logs): where a slow test's time goes.
        eprintln!(
            "harness: agent answering after {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }

    pub fn log(&self) -> String {
        self.agent
            .as_ref()
            .map(|a| a.log_text())
            .unwrap_or_default()
    }

    /// SIGKILL the agent: no clean-up runs.
    pub fn kill9(&mut self) {
        if let Some(mut a) = self.agent.take() {
            let pid = nix::unistd::Pid::from_raw(a.pid().expect("pid") as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill -9");
            // Reap it (nsenter execs the agent, so the child is the agent itself).
            let _ = a.stop(Duration::from_secs(5));
        }
    }

    /// SIGTERM and wait; asserts a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut a) = self.agent.take() {
            let st = a.stop(Duration::from_secs(15)).unwrap_or_else(|| {
                panic!(
                    "agent did not stop on SIGTERM within 15 s; log:\n{}",
                    a.log_text()
                )
            });
            assert!(
                st.success(),
                "agent exit status {st}; log:\n{}",
                a.log_text()
            );
        }
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        self.request_from(None, method, path, token, body)
    }

    /// [`request`](Self::request) with extra headers (`If-Match`, ...).
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        self.send(None, method, path, token, body, headers)
    }

    /// [`request`](Self::request) from the loopback address `from` (the API counts
    /// and caps clients by address).
    pub fn request_from(
        &self,
        from: Option<&str>,
        method: &str,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        self.send(from, method, path, token, body, &[])
    }

    fn send(
        &self,
        from: Option<&str>,
        method: &str,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let cert = std::fs::read(self.state().join("tls/cert.pem")).expect("cert");
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (method, url, token) = (
            method.to_string(),
            format!("https://127.0.0.1:9443{path}"),
            token.to_string(),
        );
        let from: Option<std::net::IpAddr> = from.map(|f| f.parse().expect("source ip"));
        NetPair::in_ns(&self.net.ns_a, move || {
            let c = client_from(&cert, from);
            let mut rb = c
                .request(method.parse().expect("method"), &url)
                .bearer_auth(token);
            if let Some(b) = body {
                rb = rb.json(&b);
            }
            for (k, v) in &headers {
                rb = rb.header(k.as_str(), v.as_str());
            }
            match rb.send() {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let text = r.text().unwrap_or_default();
                    (
                        status,
                        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
                    )
                }
                Err(e) => (0, serde_json::Value::String(e.to_string())),
            }
        })
    }

    /// Open `/api/v1/events` (with Last-Event-ID when given), run `during` once the
    /// stream is open, then read events until `until` holds for those received.
    /// Returns (id, data) per event. Panics if the stream ends or stalls (20 s).
    pub fn sse(
        &self,
        last_event_id: Option<i64>,
        during: impl FnOnce() + Send + 'static,
        until: impl Fn(&[(i64, serde_json::Value)]) -> bool + Send + 'static,
    ) -> Vec<(i64, serde_json::Value)> {
        use std::io::BufRead;
        let cert = std::fs::read(self.state().join("tls/cert.pem")).expect("cert");
        let read = self.read.clone();
        NetPair::in_ns(&self.net.ns_a, move || {
            let c = client(&cert);
            let mut rb = c
                .get("https://127.0.0.1:9443/api/v1/events")
                .bearer_auth(&read);
            if let Some(id) = last_event_id {
                rb = rb.header("last-event-id", id.to_string());
            }
            let resp = rb.send().expect("sse");
            assert_eq!(resp.status(), 200);
            during();
            let mut lines = std::io::BufReader::new(resp).lines();
            let mut events = Vec::new();
            let (mut id, mut data) = (None, None);
            while !until(&events) {
                let line = lines
                    .next()
                    .expect("SSE stream ended")
                    .expect("SSE read (timeout?)");
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse::<i64>().ok();
                } else if let Some(v) = line.strip_prefix("data:") {
                    // CSM's framing: `data: {json}`, with the space.
                    assert!(v.starts_with(' '), "data: then a space: {line:?}");
                    assert!(data.is_none(), "one data: line per event");
                    data = Some(serde_json::from_str(v.trim()).expect("data: is one JSON object"));
                } else if line.is_empty() {
                    if let Some(d) = data.take() {
                        events.push((id.take().expect("every event has an id:"), d));
                    }
                }
            }
            events
        })
    }

    pub fn get(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        self.request("GET", path, token, None)
    }

    /// Does this agent run BPF-LSM programs (its `lsm` component is available)?
    /// Where that is expected (`crate::lsm_expected`), anything else fails.
    pub fn lsm_runs(&self) -> bool {
        let (_, comps) = self.get("/api/v1/components", &self.read.clone());
        let lsm = comps
            .as_array()
            .and_then(|a| a.iter().find(|c| c["kind"] == "lsm" && c["name"] == "lsm"))
            .cloned()
            .unwrap_or_else(|| panic!("the lsm component in {comps}"));
        let runs = lsm["state"] == "available";
        if crate::lsm_expected() {
            assert!(runs, "BPF-LSM must run on this kernel: {lsm}");
        }
        runs
    }

    /// `POST /login` with the form field `token`: (status, Set-Cookie).
    pub fn login(&self, token: &str) -> (u16, String) {
        let cert = std::fs::read(self.state().join("tls/cert.pem")).expect("cert");
        let token = token.to_string();
        NetPair::in_ns(&self.net.ns_a, move || {
            let r = client(&cert)
                .post("https://127.0.0.1:9443/login")
                .form(&[("token", token)])
                .send()
                .expect("login");
            let cookie = r
                .headers()
                .get("set-cookie")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            (r.status().as_u16(), cookie)
        })
    }

    /// GET `path` with the session cookie a [`login`](Self::login) set; the status.
    pub fn get_with_cookie(&self, path: &str, set_cookie: &str) -> u16 {
        let cert = std::fs::read(self.state().join("tls/cert.pem")).expect("cert");
        let cookie = set_cookie.split(';').next().unwrap_or_default().to_string();
        let url = format!("https://127.0.0.1:9443{path}");
        NetPair::in_ns(&self.net.ns_a, move || {
            client(&cert)
                .get(url)
                .header("cookie", cookie)
                .send()
                .expect("GET with cookie")
                .status()
                .as_u16()
        })
    }

    pub fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let admin = self.admin.clone();
        self.request("POST", path, &admin, Some(body))
    }

    /// The XDP verdict counter for `reason` from /api/v1/firewall/status.
    pub fn counter(&self, reason: &str) -> u64 {
        let (s, v) = self.get("/api/v1/firewall/status", &self.admin.clone());
        assert_eq!(s, 200, "{v}");
        v["counters"][reason]
            .as_u64()
            .unwrap_or_else(|| panic!("counter {reason} in {v}"))
    }

    /// Run `rampart firewall ARGS` with this harness's config; (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        self.rampart("firewall", args)
    }

    /// Run `rampart COMMAND --config <this config> ARGS` in the agent's network
    /// namespace (where its API listens); (exit code, stdout, stderr).
    pub fn rampart(&self, command: &str, args: &[&str]) -> (i32, String, String) {
        let out = std::process::Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.net.ns_a))
            .arg("--")
            .arg(crate::rampart_bin())
            .arg(command)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("rampart");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// An open live-logs WebSocket (`/api/v1/logs/live`): its messages, as JSON, read
/// on a thread of its own.
pub struct LiveLog {
    rx: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl LiveLog {
    /// The first entry `want` holds for, within 20 s (None: it never came).
    pub fn until(&self, want: impl Fn(&serde_json::Value) -> bool) -> Option<serde_json::Value> {
        let end = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = end.checked_duration_since(std::time::Instant::now())?;
            match self.rx.recv_timeout(left) {
                Ok(v) if want(&v) => return Some(v),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Every entry received within `window`.
    pub fn drain(&self, window: Duration) -> Vec<serde_json::Value> {
        let end = std::time::Instant::now() + window;
        let mut out = Vec::new();
        while let Some(left) = end.checked_duration_since(std::time::Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(v) => out.push(v),
                Err(_) => break,
            }
        }
        out
    }
}

impl Harness {
    /// Is `prefix`/`addr` in the pinned XDP block trie (what the kernel enforces)?
    pub fn in_block_map(&self, prefix: u32, addr: [u8; 4]) -> bool {
        let lists = agent::firewall::xdp::open_pinned_lists(&self.pins.0)
            .expect("open the pinned lists")
            .expect("the lists are pinned");
        lists
            .block_v4
            .get(&aya::maps::lpm_trie::Key::new(prefix, addr), 0)
            .is_ok()
    }

    /// Open the live-logs WebSocket with `query` (`?level=...`) and `token`.
    /// Err: the HTTP status the upgrade was refused with (0: no answer).
    pub fn live_log(&self, query: &str, token: &str) -> Result<LiveLog, u16> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Error, Message};
        let cert = std::fs::read(self.state().join("tls/cert.pem")).expect("cert");
        // The socket is made in the agent's namespace; it is used from any thread.
        let tcp = NetPair::in_ns(&self.net.ns_a, || {
            std::net::TcpStream::connect("127.0.0.1:9443").expect("connect to the API")
        });
        tcp.set_nonblocking(true).expect("nonblocking");
        let mut req = format!("wss://127.0.0.1:9443/api/v1/logs/live{query}")
            .into_client_request()
            .expect("request");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), u16>>();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("rt");
            rt.block_on(async move {
                let mut roots = tokio_rustls::rustls::RootCertStore::empty();
                for c in rustls_pemfile::certs(&mut cert.as_slice()) {
                    roots.add(c.expect("cert")).expect("root");
                }
                let cfg = tokio_rustls::rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let name = tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1")
                    .expect("name");
                let tcp = tokio::net::TcpStream::from_std(tcp).expect("tokio tcp");
                let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
                    .connect(name, tcp)
                    .await
                    .expect("TLS");
                let mut ws = match tokio_tungstenite::client_async(req, tls).await {
                    Ok((ws, _)) => ws,
                    Err(Error::Http(resp)) => {
                        let _ = ready_tx.send(Err(resp.status().as_u16()));
                        return;
                    }
                    Err(_) => {
                        let _ = ready_tx.send(Err(0));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                while let Some(Ok(m)) = ws.next().await {
                    if let Message::Text(t) = m {
                        let v = serde_json::from_str(t.as_str())
                            .unwrap_or(serde_json::Value::String(t.to_string()));
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            });
        });
        ready_rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or(Err(0))?;
        Ok(LiveLog { rx })
    }
}
