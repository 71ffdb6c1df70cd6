// SPDX-License-Identifier: GPL-2.0-only
//! What each channel sends, and how: the webhook's signed JSON, the text of chat
//! messages (one finding, or a digest), RFC 5424 syslog over a local socket, UDP or
//! TCP. Every string of a finding can come from a customer or a web client, so text is
//! made single-line, bounded, and escaped for the receiver's markup.

use std::time::Duration;

use api::model::{Finding, Severity};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::AsyncWriteExt;

use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{AlertKind, MailTls, SYSLOG_FACILITIES};

/// How long one delivery may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(15);
/// Findings listed in one digest message; the rest are counted.
const DIGEST_LINES: usize = 30;
/// The longest field in a text line.
const FIELD_CHARS: usize = 200;

/// A receiver's answer, as kept in the outbox.
pub type SendResult = Result<(), String>;

/// `s` on one line (control characters replaced), at most `max` characters.
pub fn one_line(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// Slack's three escapes: no `<!channel>` or `<url|text>` from a customer's string.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn tag(sev: Severity) -> String {
    sev.as_str().to_uppercase()
}

/// The fields that say what a finding is about, those it has.
fn about(f: &Finding) -> impl Iterator<Item = (&'static str, &String)> {
    [
        ("path", &f.path),
        ("ip", &f.ip),
        ("account", &f.account),
        ("rule", &f.rule),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
}

/// One finding as one text line: `[HIGH] check: message (path, ip, account)`.
fn text_line(f: &Finding) -> String {
    let about: Vec<String> = about(f)
        .map(|(k, v)| format!("{k} {}", one_line(v, FIELD_CHARS)))
        .collect();
    let about = if about.is_empty() {
        String::new()
    } else {
        format!(" ({})", about.join(", "))
    };
    format!(
        "[{}] {}: {}{about}",
        tag(f.severity),
        one_line(&f.check, 64),
        one_line(&f.message, FIELD_CHARS)
    )
}

/// The text of a chat message: one finding, or a digest of several.
pub fn text(host: &str, findings: &[&Finding]) -> String {
    match findings {
        [f] => format!(
            "Rampart on {host}: {}\n#{} at {}",
            text_line(f),
            f.id,
            f.timestamp
        ),
        _ => {
            let mut s = format!("Rampart on {host}: {} findings\n", findings.len());
            for f in findings.iter().take(DIGEST_LINES) {
                s.push_str("• ");
                s.push_str(&text_line(f));
                s.push('\n');
            }
            if findings.len() > DIGEST_LINES {
                s.push_str(&format!("… and {} more\n", findings.len() - DIGEST_LINES));
            }
            s
        }
    }
}

/// The webhook body, in the shape Charon's notifications use, with the whole
/// finding under `details`.
pub fn webhook_body(host: &str, f: &Finding) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "source": "rampart",
        "host": host,
        "event_type": f.check,
        "severity": f.severity.as_str(),
        "timestamp": f.timestamp,
        "message": f.message,
        "details": f,
    }))
    .unwrap_or_default()
}

/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`: the receiver checks it
/// and refuses a timestamp too old (replay).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// RFC 5424 SD-PARAM value escaping: `"`, `\` and `]`.
fn sd_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in one_line(s, FIELD_CHARS).chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A printable-ASCII token (HOSTNAME, APP-NAME, MSGID): at most `max`, `-` if empty.
fn token(s: &str, max: usize) -> String {
    let t: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if t.is_empty() {
        "-".into()
    } else {
        t
    }
}

fn syslog_severity(s: Severity) -> u8 {
    match s {
        Severity::Critical => 2,
        Severity::High => 3,
        Severity::Warning => 4,
        Severity::Info => 6,
    }
}

/// One finding as an RFC 5424 message (no transport framing).
pub fn rfc5424(host: &str, facility: &str, f: &Finding) -> String {
    let fac = SYSLOG_FACILITIES
        .iter()
        .find(|(n, _)| *n == facility)
        .map_or(4, |(_, c)| *c);
    let pri = u32::from(fac) * 8 + u32::from(syslog_severity(f.severity));
    let mut sd = format!(
        "[rampart@32473 id=\"{}\" check=\"{}\" severity=\"{}\"",
        f.id,
        sd_escape(&f.check),
        f.severity.as_str()
    );
    for (k, v) in about(f) {
        sd.push_str(&format!(" {k}=\"{}\"", sd_escape(v)));
    }
    sd.push(']');
    format!(
        "<{pri}>1 {} {} rampart {} {} {sd} {}",
        token(&f.timestamp, 64),
        token(host, 255),
        std::process::id(),
        token(&f.check, 32),
        one_line(&f.message, 1024)
    )
}

/// Deliver `msg` to a syslog target: a local datagram socket, UDP, or TCP with
/// octet-counting framing (RFC 6587).
pub async fn syslog(target: &str, msg: &str) -> SendResult {
    let io = |e: std::io::Error| format!("{target}: {e}");
    match target.split_once(':') {
        Some(("unix", path)) => {
            let s = tokio::net::UnixDatagram::unbound().map_err(io)?;
            s.send_to(msg.as_bytes(), path).await.map_err(io)?;
        }
        Some(("udp", addr)) => {
            let s = tokio::net::UdpSocket::bind(if addr.starts_with('[') {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            })
            .await
            .map_err(io)?;
            s.send_to(msg.as_bytes(), addr).await.map_err(io)?;
        }
        Some(("tcp", addr)) => {
            let mut s = tokio::net::TcpStream::connect(addr).await.map_err(io)?;
            s.write_all(format!("{} {msg}", msg.len()).as_bytes())
                .await
                .map_err(io)?;
            s.shutdown().await.map_err(io)?;
        }
        _ => return Err(format!("{target}: not unix:, udp: or tcp:")),
    }
    Ok(())
}

/// POST `body` as JSON with `headers`; any answer but 2xx is a failure.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> SendResult {
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.map_err(|e| {
        // Without the URL (it can hold a bot token), with the causes.
        let e = e.without_url();
        let mut msg = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            msg.push_str(": ");
            msg.push_str(&c.to_string());
            cause = c.source();
        }
        msg
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    Err(format!("HTTP {status}: {}", one_line(&text, 200)))
}

/// How a channel reaches its receiver, built once at start.
pub enum Transport {
    Http(reqwest::Client),
    Mail(AsyncSmtpTransport<Tokio1Executor>),
    /// Syslog opens its socket per message.
    Socket,
}

impl Transport {
    pub fn for_kind(kind: &AlertKind) -> anyhow::Result<Self> {
        Ok(match kind {
            AlertKind::Webhook { ca_file, .. }
            | AlertKind::Slack { ca_file, .. }
            | AlertKind::Telegram { ca_file, .. } => Self::Http(client(ca_file.as_deref())?),
            AlertKind::Email {
                smtp_host,
                smtp_port,
                tls,
                username,
                password,
                ca_file,
                ..
            } => Self::Mail(mailer(
                smtp_host,
                *smtp_port,
                *tls,
                username,
                password,
                ca_file.as_deref(),
            )?),
            AlertKind::Syslog { .. } => Self::Socket,
        })
    }
}

fn mailer(
    host: &str,
    port: u16,
    tls: MailTls,
    username: &str,
    password: &str,
    ca_file: Option<&std::path::Path>,
) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    use anyhow::Context;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .timeout(Some(SEND_TIMEOUT));
    if tls == MailTls::Starttls {
        let mut p = TlsParameters::builder(host.to_string());
        if let Some(path) = ca_file {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            p = p.add_root_certificate(
                Certificate::from_pem(&pem)
                    .with_context(|| format!("{} is not a PEM certificate", path.display()))?,
            );
        }
        b = b.tls(Tls::Required(
            p.build().context("TLS parameters for the SMTP relay")?,
        ));
        if !username.is_empty() {
            b = b.credentials(lettre::transport::smtp::authentication::Credentials::new(
                username.to_string(),
                password.to_string(),
            ));
        }
    }
    Ok(b.build())
}

/// The mail of `findings`: one, or a digest.
pub fn mail(
    host: &str,
    from: &str,
    to: &[String],
    findings: &[&Finding],
) -> Result<Message, String> {
    let subject = match findings {
        [f] => format!(
            "[Rampart {host}] {} {}: {}",
            tag(f.severity),
            one_line(&f.check, 64),
            one_line(&f.message, 120)
        ),
        _ => format!("[Rampart {host}] {} findings", findings.len()),
    };
    let mut b = Message::builder()
        .from(from.parse().map_err(|e| format!("from {from:?}: {e}"))?)
        .subject(subject)
        .header(lettre::message::header::ContentType::TEXT_PLAIN);
    for t in to {
        b = b.to(t.parse().map_err(|e| format!("to {t:?}: {e}"))?);
    }
    b.body(text(host, findings)).map_err(|e| e.to_string())
}

/// An HTTP client for a channel, trusting `ca_file` besides the system's roots.
pub fn client(ca_file: Option<&std::path::Path>) -> anyhow::Result<reqwest::Client> {
    use anyhow::Context;
    let mut b = reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .user_agent(concat!("rampart/", env!("CARGO_PKG_VERSION")))
        // A receiver never sends us elsewhere.
        .redirect(reqwest::redirect::Policy::none());
    if let Some(p) = ca_file {
        let pem = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        b = b.add_root_certificate(
            reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM certificate", p.display()))?,
        );
    }
    b.build().context("building an HTTP client")
}

/// Send `findings` (one, or a digest for text channels) through `kind`.
pub async fn deliver(
    kind: &AlertKind,
    transport: &Transport,
    host: &str,
    delivery_id: i64,
    findings: &[&Finding],
) -> SendResult {
    let http = || match transport {
        Transport::Http(c) => Ok(c),
        _ => Err("no HTTP client".to_string()),
    };
    match kind {
        AlertKind::Webhook { url, secret, .. } => {
            let [f] = findings else {
                return Err("a webhook delivery carries one finding".into());
            };
            let body = webhook_body(host, f);
            let ts = crate::store::now_unix();
            let mut headers = vec![
                ("x-rampart-timestamp", ts.to_string()),
                ("x-rampart-delivery", delivery_id.to_string()),
            ];
            if !secret.is_empty() {
                headers.push(("x-rampart-signature", signature(secret, ts, &body)));
            }
            post(http()?, url, body, &headers).await
        }
        AlertKind::Slack { url, .. } => {
            let body = serde_json::json!({ "text": slack_escape(&text(host, findings)) });
            post(http()?, url, body.to_string().into_bytes(), &[]).await
        }
        AlertKind::Telegram { url, chat_id, .. } => {
            // Plain text (no parse_mode): nothing in a finding is markup.
            let body = serde_json::json!({
                "chat_id": chat_id,
                "text": text(host, findings),
                "disable_web_page_preview": true,
            });
            post(http()?, url, body.to_string().into_bytes(), &[]).await
        }
        AlertKind::Email { from, to, .. } => {
            let Transport::Mail(m) = transport else {
                return Err("no SMTP transport".into());
            };
            let msg = mail(host, from, to, findings)?;
            m.send(msg).await.map(|_| ()).map_err(|e| {
                let mut s = e.to_string();
                let mut cause = std::error::Error::source(&e);
                while let Some(c) = cause {
                    s.push_str(": ");
                    s.push_str(&c.to_string());
                    cause = c.source();
                }
                s
            })
        }
        AlertKind::Syslog { target, facility } => {
            for f in findings {
                syslog(target, &rfc5424(host, facility, f)).await?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding() -> Finding {
        Finding {
            id: 42,
            check: "signature".into(),
            severity: Severity::Critical,
            message: "webshell\n<!channel> injected] \"x\"".into(),
            timestamp: "2026-11-30T10:00:00Z".into(),
            path: Some("/var/www/a\".php".into()),
            ip: Some("203.0.113.9".into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_signature_covers_timestamp_and_body() {
        let s = signature("k", 1700000000, b"{}");
        assert!(s.starts_with("sha256=") && s.len() == 7 + 64, "{s}");
        assert_ne!(s, signature("k", 1700000001, b"{}"));
        assert_ne!(s, signature("k", 1700000000, b"{ }"));
        assert_ne!(s, signature("j", 1700000000, b"{}"));
        // RFC 4231 test case 2, as the receiver's library computes it.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn syslog_lines_are_rfc5424_and_a_customer_cannot_break_out() {
        let line = rfc5424("web1", "auth", &finding());
        // auth (4) * 8 + crit (2)
        assert!(
            line.starts_with("<34>1 2026-11-30T10:00:00Z web1 rampart "),
            "{line}"
        );
        assert!(line.contains(" signature [rampart@32473 id=\"42\" check=\"signature\" severity=\"critical\" path=\"/var/www/a\\\".php\" ip=\"203.0.113.9\"] "), "{line}");
        assert!(
            !line.contains('\n'),
            "a newline would forge a second entry: {line}"
        );
        assert!(
            line.ends_with("webshell <!channel> injected] \"x\""),
            "{line}"
        );
    }

    #[test]
    fn chat_text_is_one_line_per_finding_and_slack_markup_is_escaped() {
        let f = finding();
        let t = text("web1", &[&f]);
        assert_eq!(t.lines().count(), 2, "{t}");
        assert!(
            t.starts_with("Rampart on web1: [CRITICAL] signature: webshell <!channel>"),
            "{t}"
        );
        assert!(!slack_escape(&t).contains("<!channel>"));
        let many: Vec<Finding> = (0..40).map(|i| Finding { id: i, ..finding() }).collect();
        let refs: Vec<&Finding> = many.iter().collect();
        let d = text("web1", &refs);
        assert!(d.starts_with("Rampart on web1: 40 findings\n"), "{d}");
        assert_eq!(d.matches("• ").count(), DIGEST_LINES);
        assert!(d.ends_with("… and 10 more\n"), "{d}");
    }

    #[test]
    fn a_mail_subject_cannot_grow_headers() {
        let mut f = finding();
        f.message = "x\r\nBcc: victim@example.org".into();
        let m = mail(
            "web1",
            "rampart@example.org",
            &["admin@example.org".into()],
            &[&f],
        )
        .expect("mail");
        let text = String::from_utf8_lossy(&m.formatted()).into_owned();
        assert!(!text.contains("\r\nBcc:"), "{text}");
        assert!(
            text.contains("Subject: [Rampart web1] CRITICAL signature: x  Bcc: victim@example.org"),
            "{text}"
        );
        assert!(text.contains("To: admin@example.org"), "{text}");
        assert!(mail("web1", "not an address", &[], &[&f]).is_err());
    }

    #[tokio::test]
    async fn syslog_reaches_udp_and_tcp_with_octet_counting() {
        use tokio::io::AsyncReadExt;
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("udp");
        let target = format!("udp:{}", udp.local_addr().expect("addr"));
        syslog(&target, "<34>1 - - rampart - x - hello")
            .await
            .expect("send");
        let mut buf = [0u8; 512];
        let n = udp.recv(&mut buf).await.expect("recv");
        assert_eq!(&buf[..n], b"<34>1 - - rampart - x - hello");

        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("tcp");
        let target = format!("tcp:{}", tcp.local_addr().expect("addr"));
        let (sent, accepted) = tokio::join!(syslog(&target, "<34>1 hi"), tcp.accept());
        sent.expect("send");
        let mut got = Vec::new();
        accepted
            .expect("accept")
            .0
            .read_to_end(&mut got)
            .await
            .expect("read");
        assert_eq!(got, b"8 <34>1 hi", "RFC 6587 octet counting");

        assert!(
            syslog("udp:127.0.0.1:1", "x").await.is_ok(),
            "UDP has no answer to wait for"
        );
        assert!(
            syslog("tcp:127.0.0.1:1", "x").await.is_err(),
            "a refused TCP connect is an error"
        );
    }

    #[test]
    fn fields_are_bounded() {
        let long = "x".repeat(5000);
        assert_eq!(one_line(&long, 10).chars().count(), 11);
        assert_eq!(token("a b\u{7}c", 32), "abc");
        assert_eq!(token("", 5), "-");
    }
}
