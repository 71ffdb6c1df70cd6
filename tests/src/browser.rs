// SPDX-License-Identifier: GPL-2.0-only
//! Headless Chromium driven over W3C WebDriver (Debian's `chromium` and
//! `chromium-driver`), both inside a test namespace so the browser's loopback is the
//! agent's. The driver is reached through sockets made in that namespace; the
//! protocol is plain JSON over HTTP/1.1, spoken here directly.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use crate::NetPair;

/// The WebDriver element key (W3C).
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const PORT: u16 = 9515;

/// Are Chromium and its driver installed?
pub fn available() -> Result<(), String> {
    for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        if !Path::new(bin).exists() {
            return Err(format!(
                "{bin} missing (apt-get install chromium chromium-driver)"
            ));
        }
    }
    Ok(())
}

pub struct Browser {
    ns: String,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Start the driver in `ns` and open a headless session.
    pub fn start(ns: &str) -> Self {
        let driver = Command::new("ip")
            .args(["netns", "exec", ns, "/usr/bin/chromedriver"])
            .arg(format!("--port={PORT}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver");
        let profile = tempfile::tempdir().expect("profile dir");
        let mut b = Browser {
            ns: ns.to_string(),
            session: String::new(),
            driver,
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while b.raw("GET", "/status", None).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={}", b._profile.path().display()),
                ]
            }
        }}});
        let v = b.raw("POST", "/session", Some(caps)).expect("new session");
        b.session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        b
    }

    /// One WebDriver request on a fresh connection made in the namespace.
    fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let mut s = NetPair::in_ns(&self.ns, || TcpStream::connect(("127.0.0.1", PORT)))
            .map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        // The driver may keep the connection open: read the head, then exactly the
        // body it announces (Content-Length, or chunks up to the last one).
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed before the answer".into());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let length = head.lines().find_map(|l| {
            l.strip_prefix("content-length:")
                .and_then(|v| v.trim().parse::<usize>().ok())
        });
        let chunked = head.contains("transfer-encoding: chunked")
            || head.contains("transfer-encoding:chunked");
        let done = |b: &[u8]| match length {
            Some(n) => b.len() >= head_end + n,
            None if chunked => b.ends_with(b"0\r\n\r\n"),
            None => false,
        };
        while !done(&buf) {
            let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let text = String::from_utf8_lossy(&buf);
        let (head, body) = text.split_at(head_end);
        let body = if chunked {
            let mut out = String::new();
            let mut rest = body;
            while let Some((size, after)) = rest.split_once("\r\n") {
                let n = usize::from_str_radix(size.trim(), 16).map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                out.push_str(after.get(..n).ok_or("short chunk")?);
                rest = after.get(n + 2..).unwrap_or("");
            }
            out
        } else {
            body.to_string()
        };
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        if status != 200 {
            return Err(format!("{method} {path}: {status} {}", v["value"]));
        }
        Ok(v)
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        self.raw(method, &format!("/session/{}{path}", self.session), body)
            .map(|v| v["value"].clone())
    }

    /// Navigate to `url`; a page Chromium could not load at all fails here, with
    /// its network error (`ERR_…`), not later as an element that never appears.
    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .unwrap_or_else(|e| panic!("navigate to {url}: {e}"));
        if let Some(err) = network_error(&self.source()) {
            panic!("navigate to {url}: Chromium shows its error page: {err}");
        }
    }

    /// The page's HTML (for failure messages).
    pub fn source(&self) -> String {
        self.cmd("GET", "/source", None)
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .unwrap_or_else(|e| e)
    }

    pub fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    fn find(&self, css: &str) -> Result<String, String> {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        v[ELEMENT]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no element id in {v}"))
    }

    pub fn exists(&self, css: &str) -> bool {
        self.find(css).is_ok()
    }

    /// Wait up to `secs` for `css` to match.
    pub fn wait(&self, css: &str, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if self.exists(css) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    pub fn click(&self, css: &str) {
        let id = self
            .find(css)
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
        // Centred first: scrolled only as far as needed, the element can sit under
        // the page's sticky header, which would take the click.
        let _ = self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({
                "script": "arguments[0].scrollIntoView({block: 'center'});",
                "args": [{ ELEMENT: id }],
            })),
        );
        self.cmd("POST", &format!("/element/{id}/click"), Some(json!({})))
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let id = self
            .find(css)
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    pub fn text(&self, css: &str) -> String {
        self.find(css)
            .and_then(|id| self.cmd("GET", &format!("/element/{id}/text"), None))
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Run `script` (its last argument is the callback) and return what it passes.
    pub fn run_async(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/async",
            Some(json!({"script": script, "args": []})),
        )
        .unwrap_or_else(|e| panic!("script: {e}"))
    }

    /// Choose `value` in the `<select>` at `css` as a user would (its change event
    /// fires).
    pub fn select(&self, css: &str, value: &str) {
        let r = self.run_async(&format!(
            "const done = arguments[arguments.length - 1];
             const s = document.querySelector({css});
             if (!s) {{ done('no ' + {css}); return; }}
             s.value = {value};
             s.dispatchEvent(new Event('change', {{bubbles: true}}));
             done(s.value);",
            css = serde_json::to_string(css).expect("json"),
            value = serde_json::to_string(value).expect("json"),
        ));
        assert_eq!(r, serde_json::json!(value), "select {value} in {css}");
    }

    /// Set the value of the field at `css` at once (long texts, newlines) and fire
    /// its input event.
    pub fn fill(&self, css: &str, text: &str) {
        let r = self.run_async(&format!(
            "const done = arguments[arguments.length - 1];
             const e = document.querySelector({css});
             if (!e) {{ done(false); return; }}
             e.value = {text};
             e.dispatchEvent(new Event('input', {{bubbles: true}}));
             done(true);",
            css = serde_json::to_string(css).expect("json"),
            text = serde_json::to_string(text).expect("json"),
        ));
        assert_eq!(r, serde_json::json!(true), "fill {css}");
    }

    /// Log in through the form at `base`/login with `token`; true once the
    /// dashboard's overview has rendered.
    pub fn login(&self, base: &str, token: &str) -> bool {
        self.goto(&format!("{base}/login"));
        if !self.wait("#token", 10) {
            return false;
        }
        self.type_into("#token", token);
        self.click("form button[type=submit]");
        self.wait("body[data-ready=overview]", 20)
    }

    /// A PNG of the viewport at `path`.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let v = self.cmd("GET", "/screenshot", None).expect("screenshot");
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or(""))
            .expect("base64 PNG");
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }
}

/// The network error code on a Chromium error page (`"errorCode":"ERR_…"` in the
/// page's data), or None for any page the server answered.
fn network_error(source: &str) -> Option<String> {
    const KEY: &str = "\"errorCode\":\"";
    let rest = &source[source.find(KEY)? + KEY.len()..];
    let code: String = rest
        .chars()
        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
        .collect();
    code.starts_with("ERR_").then_some(code)
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.raw("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::network_error;

    #[test]
    fn chromium_error_pages_are_told_from_answered_pages() {
        let page = r#"<script>loadTimeDataRaw = {"details":"","errorCode":"ERR_NETWORK_CHANGED","fontfamily":"system-ui"};</script>"#;
        assert_eq!(network_error(page).as_deref(), Some("ERR_NETWORK_CHANGED"));
        // A dashboard page that mentions the word is not an error page.
        assert_eq!(network_error("<p>errorCode: none</p><div id=token>"), None);
        assert_eq!(network_error(r#"{"errorCode":"none"}"#), None);
    }
}
