// SPDX-License-Identifier: GPL-2.0-only
//! ModSecurity, in the three shapes hosts have it:
//!
//! - the serial audit log (v2 `--id-A--`, v3 `---id---A--`): one record over many
//!   lines, sections A (time, unique id, client), B (request line, headers), F
//!   (response status), H (`Message:`/`ModSecurity:` lines with `[id "..."]` tags and
//!   `Action: Intercepted`), Z (end);
//! - the JSON audit log, one record per line (v3 `{"transaction":{...}}` with
//!   `client_ip`, or v2's `{"transaction":..,"request":..,"audit_data":..}`);
//! - Apache/nginx error_log lines: `[client 203.0.113.5:1] ModSecurity: Access denied
//!   with code 403 (phase 2). ... [id "942100"] [msg "..."] [uri "/x"]`.
//!
//! A record counts when it names at least one rule. The client address comes from
//! the server's own fields (section A, `client_ip`, `[client ...]` before the
//! message), never from request text.

use std::net::IpAddr;

use serde_json::Value;

use super::{
    event::{WafHit, WafRule},
    grammar::ParseError,
    grammar::{bounded, ip_maybe_port, tags, token},
};

/// Lines of one section kept, at most (headers of a hostile request).
const MAX_RECORD_LINES: usize = 400;
/// Rules kept per record.
const MAX_RULES: usize = 32;

#[derive(Default)]
struct Partial {
    id: String,
    section: u8,
    lines: usize,
    ip: Option<IpAddr>,
    unique_id: String,
    request_line: Option<String>,
    host: String,
    status: Option<u16>,
    messages: Vec<String>,
    intercepted: bool,
}

/// Reassembles serial records; single-line shapes pass straight through.
#[derive(Default)]
pub struct Assembler {
    open: Option<Partial>,
}

/// `--id-X--` or `---id---X--` → (id, X).
fn boundary(line: &str) -> Option<(&str, u8)> {
    let l = line.trim_end();
    let inner = l.strip_prefix("--")?.strip_suffix("--")?;
    let inner = inner.trim_start_matches('-');
    let (id, sec) = inner.rsplit_once('-')?;
    let id = id.trim_end_matches('-');
    let sec = sec.as_bytes();
    (sec.len() == 1
        && sec[0].is_ascii_uppercase()
        && !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_alphanumeric()))
    .then(|| (id, sec[0]))
}

fn rules_of(messages: &[String]) -> Vec<WafRule> {
    let mut out: Vec<WafRule> = Vec::new();
    for m in messages {
        let t = tags(m);
        let get = |k: &str| {
            t.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.as_ref())
                .unwrap_or("")
        };
        let id = get("id");
        if id.is_empty() || out.len() >= MAX_RULES || out.iter().any(|r| r.id == id) {
            continue;
        }
        out.push(WafRule {
            id: bounded(id, 32),
            msg: bounded(get("msg"), 200),
            severity: bounded(get("severity"), 16),
        });
    }
    out
}

fn split_request(line: &str) -> (String, String) {
    let mut it = line.split(' ');
    let method = it.next().unwrap_or("");
    let uri = it.next().unwrap_or("");
    (bounded(method, 16), bounded(uri, 512))
}

impl Partial {
    fn line(&mut self, line: &str) {
        self.lines += 1;
        if self.lines > MAX_RECORD_LINES {
            return;
        }
        match self.section {
            b'A' if self.ip.is_none() => {
                // `[time] unique_id client_ip client_port server_ip server_port`
                let after = line.split_once("] ").map_or("", |(_, r)| r);
                let mut t = after.split(' ');
                self.unique_id = bounded(t.next().unwrap_or(""), 64);
                self.ip = t.next().and_then(|s| s.parse().ok());
            }
            b'B' => {
                if self.request_line.is_none() {
                    self.request_line = Some(bounded(line, 600));
                } else if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("host") && self.host.is_empty() {
                        self.host = bounded(v.trim(), 255);
                    }
                }
            }
            b'F' if self.status.is_none() => {
                self.status = line.split(' ').nth(1).and_then(|s| s.parse().ok());
            }
            b'H' => {
                if let Some(m) = line
                    .strip_prefix("Message: ")
                    .or_else(|| line.strip_prefix("ModSecurity: "))
                {
                    if m.contains("Access denied") {
                        self.intercepted = true;
                    }
                    if self.messages.len() < MAX_RULES {
                        self.messages.push(bounded(m, 2000));
                    }
                } else if line.starts_with("Action: Intercepted") {
                    self.intercepted = true;
                }
            }
            _ => {}
        }
    }

    fn finish(self) -> Result<WafHit, ParseError> {
        let ip = self
            .ip
            .ok_or(ParseError::Framing("record without a client address"))?;
        let rules = rules_of(&self.messages);
        if rules.is_empty() {
            return Err(ParseError::Irrelevant);
        }
        let (method, uri) = split_request(self.request_line.as_deref().unwrap_or(""));
        Ok(WafHit {
            ip,
            host: self.host,
            method,
            uri,
            status: self.status,
            denied: self.intercepted,
            unique_id: self.unique_id,
            rules,
        })
    }
}

impl Assembler {
    /// One line: `Ok(Some)` at the end of a record that names a rule, `Ok(None)`
    /// inside a serial record.
    pub fn feed(&mut self, line: &str) -> Result<Option<WafHit>, ParseError> {
        // Inside a section the client wrote (request body, multipart, response
        // body), a boundary of another record is just content: a client cannot start
        // a record of its own (with the client address it likes) from a POST body.
        // Only the open record's own random id ends those sections.
        let foreign_in_body = |id: &str, open: &Option<Partial>| {
            open.as_ref()
                .is_some_and(|p| p.id != id && matches!(p.section, b'C' | b'E' | b'I' | b'G'))
        };
        if let Some((id, sec)) = boundary(line).filter(|(id, _)| !foreign_in_body(id, &self.open)) {
            return match (sec, self.open.take()) {
                (b'A', prev) => {
                    self.open = Some(Partial {
                        id: id.to_string(),
                        section: b'A',
                        ..Partial::default()
                    });
                    match prev {
                        Some(_) => Err(ParseError::Framing("record ended without section Z")),
                        None => Ok(None),
                    }
                }
                (b'Z', Some(p)) if p.id == id => p.finish().map(Some),
                (_, Some(mut p)) if p.id == id => {
                    p.section = sec;
                    p.lines = 0;
                    self.open = Some(p);
                    Ok(None)
                }
                (_, prev) => {
                    self.open = prev;
                    Err(ParseError::Framing("section of another record"))
                }
            };
        }
        if let Some(p) = self.open.as_mut() {
            p.line(line);
            return Ok(None);
        }
        if line.starts_with('{') {
            return json(line).map(Some);
        }
        if line.contains("ModSecurity: ") {
            return error_log(line).map(Some);
        }
        if line.trim().is_empty() {
            return Err(ParseError::Irrelevant);
        }
        Err(ParseError::Framing("outside an audit record"))
    }
}

fn json(line: &str) -> Result<WafHit, ParseError> {
    let v: Value = serde_json::from_str(line).map_err(|_| ParseError::Framing("invalid JSON"))?;
    let tx = v.get("transaction").ok_or(ParseError::Irrelevant)?;
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let header = |h: Option<&Value>| {
        h.and_then(Value::as_object)
            .and_then(|o| {
                o.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("host"))
                    .and_then(|(_, v)| v.as_str())
            })
            .unwrap_or("")
            .to_string()
    };
    if let Some(ip) = tx.get("client_ip") {
        // v3
        let ip = ip
            .as_str()
            .and_then(|i| i.parse().ok())
            .ok_or(ParseError::Framing("client_ip is not an address"))?;
        let req = tx.get("request");
        let mut rules = Vec::new();
        let mut denied = false;
        for m in tx
            .get("messages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let d = m.get("details");
            let id = s(d.and_then(|d| d.get("ruleId")));
            let msg = s(m.get("message"));
            denied |= msg.contains("Access denied");
            if !id.is_empty()
                && rules.len() < MAX_RULES
                && !rules.iter().any(|r: &WafRule| r.id == id)
            {
                rules.push(WafRule {
                    id: bounded(&id, 32),
                    msg: bounded(&msg, 200),
                    severity: bounded(&s(d.and_then(|d| d.get("severity"))), 16),
                });
            }
        }
        if rules.is_empty() {
            return Err(ParseError::Irrelevant);
        }
        let status = tx
            .get("response")
            .and_then(|r| r.get("http_code"))
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok());
        return Ok(WafHit {
            ip,
            host: bounded(&header(req.and_then(|r| r.get("headers"))), 255),
            method: bounded(&s(req.and_then(|r| r.get("method"))), 16),
            uri: bounded(&s(req.and_then(|r| r.get("uri"))), 512),
            denied: denied || status.is_some_and(|c| c == 403),
            status,
            unique_id: bounded(&s(tx.get("unique_id")), 64),
            rules,
        });
    }
    // v2
    let ip = tx
        .get("remote_address")
        .and_then(Value::as_str)
        .and_then(|i| i.parse().ok())
        .ok_or(ParseError::Framing("no client address"))?;
    let audit = v.get("audit_data");
    let messages: Vec<String> = audit
        .and_then(|a| a.get("messages"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().map(|m| bounded(m, 2000)))
        .take(MAX_RULES)
        .collect();
    let rules = rules_of(&messages);
    if rules.is_empty() {
        return Err(ParseError::Irrelevant);
    }
    let req = v.get("request");
    let (method, uri) = split_request(&s(req.and_then(|r| r.get("request_line"))));
    let intercepted = audit
        .and_then(|a| a.get("action"))
        .and_then(|a| a.get("intercepted"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(WafHit {
        ip,
        host: bounded(&header(req.and_then(|r| r.get("headers"))), 255),
        method,
        uri,
        status: v
            .get("response")
            .and_then(|r| r.get("status"))
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok()),
        denied: intercepted || messages.iter().any(|m| m.contains("Access denied")),
        unique_id: bounded(&s(tx.get("transaction_id")), 64),
        rules,
    })
}

fn error_log(line: &str) -> Result<WafHit, ParseError> {
    let at = line.find("ModSecurity: ").ok_or(ParseError::Irrelevant)?;
    let (head, msg) = (&line[..at], &line[at + 13..]);
    let ip = head
        .match_indices("[client ")
        .find_map(|(i, _)| {
            let rest = &head[i + 8..];
            ip_maybe_port(rest.split(']').next()?)
        })
        .ok_or(ParseError::Framing("no [client ...] before the message"))?;
    let t = tags(msg);
    let get = |k: &str| {
        t.iter()
            .rev()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.as_ref())
            .unwrap_or("")
    };
    let rules = rules_of(&[msg.to_string()]);
    if rules.is_empty() {
        return Err(ParseError::Irrelevant);
    }
    let status = msg
        .split_once("with code ")
        .and_then(|(_, r)| token(r))
        .and_then(|(c, _)| c.parse().ok());
    Ok(WafHit {
        ip,
        host: bounded(get("hostname"), 255),
        method: String::new(),
        uri: bounded(get("uri"), 512),
        status,
        denied: msg.starts_with("Access denied"),
        unique_id: bounded(get("unique_id"), 64),
        rules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(lines: &str) -> Vec<Result<WafHit, ParseError>> {
        let mut a = Assembler::default();
        lines
            .lines()
            .filter_map(|l| a.feed(l).transpose())
            .collect()
    }

    const V2_SERIAL: &str = r#"--a1b2c3d4-A--
[23/Nov/2026:15:00:01 +0000] ZXhhbXBsZQ 203.0.113.5 54321 192.0.2.2 443
--a1b2c3d4-B--
GET /?id=1%27%20OR%201=1 HTTP/1.1
Host: shop.example.com
User-Agent: sqlmap
--a1b2c3d4-F--
HTTP/1.1 403 Forbidden
--a1b2c3d4-H--
Message: Access denied with code 403 (phase 2). detected SQLi using libinjection. [file "/etc/modsec/REQUEST-942.conf"] [line "45"] [id "942100"] [msg "SQL Injection Attack Detected via libinjection"] [severity "CRITICAL"]
Message: Warning. Operator GE matched 5 at TX:anomaly_score. [id "949110"] [msg "Inbound Anomaly Score Exceeded"] [severity "CRITICAL"]
Action: Intercepted (phase 2)
--a1b2c3d4-Z--
"#;

    #[test]
    fn v2_and_v3_serial_records() {
        let got = feed_all(V2_SERIAL);
        assert_eq!(got.len(), 1);
        let h = got[0].as_ref().expect("record");
        assert_eq!(h.ip.to_string(), "203.0.113.5");
        assert_eq!(
            (h.host.as_str(), h.method.as_str(), h.uri.as_str()),
            ("shop.example.com", "GET", "/?id=1%27%20OR%201=1")
        );
        assert_eq!(
            (h.status, h.denied, h.unique_id.as_str()),
            (Some(403), true, "ZXhhbXBsZQ")
        );
        assert_eq!(
            h.rules.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["942100", "949110"]
        );
        assert_eq!(
            h.rules[0].msg,
            "SQL Injection Attack Detected via libinjection"
        );

        let v3 = "---Uab12cd---A--\n[23/Nov/2026:15:00:01 +0000] 170000000012.345 2001:db8::5 40000 192.0.2.2 80\n---Uab12cd---B--\nPOST /wp-login.php HTTP/1.1\nhost: blog.example\n---Uab12cd---H--\nModSecurity: Warning. Matched \"Operator `Rx'\" [file \"x\"] [id \"920350\"] [msg \"Host header is a numeric IP address\"] [severity \"4\"]\n---Uab12cd---Z--\n";
        let got = feed_all(v3);
        let h = got[0].as_ref().expect("v3 record");
        assert_eq!(
            (
                h.ip.to_string().as_str(),
                h.host.as_str(),
                h.denied,
                h.status
            ),
            ("2001:db8::5", "blog.example", false, None)
        );
    }

    #[test]
    fn json_audit_logs_v3_and_v2() {
        let v3 = r#"{"transaction":{"client_ip":"203.0.113.5","time_stamp":"Mon Nov 23 15:00:01 2026","server_id":"x","client_port":5000,"host_ip":"192.0.2.2","host_port":443,"unique_id":"170000000099","request":{"method":"GET","http_version":1.1,"uri":"/.env","headers":{"Host":"example.com"}},"response":{"http_code":403,"headers":{}},"messages":[{"message":"Restricted File Access Attempt","details":{"match":"x","ruleId":"930130","severity":"2"}}]}}"#;
        let h = feed_all(v3).remove(0).expect("v3 json");
        assert_eq!(
            (
                h.ip.to_string().as_str(),
                h.uri.as_str(),
                h.denied,
                h.rules[0].id.as_str()
            ),
            ("203.0.113.5", "/.env", true, "930130")
        );
        let v2 = r#"{"transaction":{"time":"23/Nov/2026:15:00:01 +0000","transaction_id":"abc","remote_address":"198.51.100.7","remote_port":1,"local_address":"192.0.2.2","local_port":80},"request":{"request_line":"POST /xmlrpc.php HTTP/1.1","headers":{"Host":"blog.example"}},"response":{"status":403},"audit_data":{"messages":["Access denied with code 403 (phase 2). [id \"9001\"] [msg \"xmlrpc\"]"],"action":{"intercepted":true}}}"#;
        let h = feed_all(v2).remove(0).expect("v2 json");
        assert_eq!(
            (
                h.ip.to_string().as_str(),
                h.method.as_str(),
                h.uri.as_str(),
                h.denied,
                h.status
            ),
            ("198.51.100.7", "POST", "/xmlrpc.php", true, Some(403))
        );
    }

    #[test]
    fn error_log_lines_apache_and_nginx() {
        let a = r#"[Mon Nov 23 15:00:01.123456 2026] [security2:error] [pid 1:tid 2] [client 203.0.113.5:54321] [client 203.0.113.5] ModSecurity: Access denied with code 403 (phase 2). Pattern match "x" at ARGS:q. [file "/x.conf"] [line "1"] [id "942100"] [msg "SQLi"] [severity "CRITICAL"] [hostname "example.com"] [uri "/index.php"] [unique_id "Zz"]"#;
        let h = feed_all(a).remove(0).expect("apache");
        assert_eq!(
            (
                h.ip.to_string().as_str(),
                h.host.as_str(),
                h.uri.as_str(),
                h.status,
                h.denied
            ),
            ("203.0.113.5", "example.com", "/index.php", Some(403), true)
        );
        let n = r#"2026/11/23 15:00:01 [error] 12#12: *1 [client 2001:db8::9] ModSecurity: Access denied with code 403 (phase 1). [id "911100"] [msg "Method is not allowed by policy"] [hostname "192.0.2.2"] [uri "/"] [unique_id "q"], client: 2001:db8::9, server: _, request: "TRACE / HTTP/1.1""#;
        let h = feed_all(n).remove(0).expect("nginx");
        assert_eq!(h.ip.to_string(), "2001:db8::9");
        // The message's own text cannot supply the client.
        let forged = r#"[Mon Nov 23 15:00:01 2026] [error] ModSecurity: Access denied [client 192.0.2.1] [id "1"]"#;
        assert_eq!(
            feed_all(forged),
            [Err(ParseError::Framing(
                "no [client ...] before the message"
            ))]
        );
    }

    #[test]
    fn broken_records_are_counted_and_the_next_one_is_read() {
        let broken = V2_SERIAL.replace("--a1b2c3d4-Z--\n", "");
        let two = format!("{broken}{V2_SERIAL}");
        let got = feed_all(&two);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(
            got[0],
            Err(ParseError::Framing("record ended without section Z"))
        );
        assert!(got[1].is_ok());
        let mut a = Assembler::default();
        assert_eq!(
            a.feed("stray text"),
            Err(ParseError::Framing("outside an audit record"))
        );
        // Found by the mutation test: a boundary-like line with no section letter
        // (a request body can put one in the log) panicked.
        assert_eq!(
            a.feed("--a1---"),
            Err(ParseError::Framing("outside an audit record"))
        );
        assert_eq!(
            a.feed("{not json"),
            Err(ParseError::Framing("invalid JSON"))
        );
        assert_eq!(
            a.feed("--zz-B--"),
            Err(ParseError::Framing("section of another record"))
        );
        // A record with no rule named is not an event.
        let quiet = "--q1-A--\n[x] id 203.0.113.5 1 2 3\n--q1-Z--\n";
        assert_eq!(feed_all(quiet), [Err(ParseError::Irrelevant)]);
        // A hostile request with endless headers is bounded and still ends.
        let mut big =
            String::from("--b1-A--\n[x] id 203.0.113.5 1 2 3\n--b1-B--\nGET / HTTP/1.1\n");
        for i in 0..5000 {
            big.push_str(&format!("X-{i}: y\n"));
        }
        big.push_str("--b1-H--\nMessage: Warning. [id \"1\"]\n--b1-Z--\n");
        let got = feed_all(&big);
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].as_ref().map(|h| h.rules.len()),
            Ok(1),
            "section H after the cap is read"
        );
    }

    /// A POST body that carries a whole audit record of its own, naming a third
    /// party's address with "Access denied": it stays body text of the real record.
    #[test]
    fn a_record_forged_inside_a_request_body_is_content() {
        let mut a = Assembler::default();
        let lines = [
            "--a1b2c3d4-A--",
            "[23/Nov/2026:15:00:01 +0000] XyZ 203.0.113.5 51234 192.0.2.2 443",
            "--a1b2c3d4-B--",
            "POST /contact.php HTTP/1.1",
            "Host: example.com",
            "--a1b2c3d4-C--",
            "--deadbeef-A--",
            "[23/Nov/2026:15:00:01 +0000] Forged 198.51.100.77 1 192.0.2.2 443",
            "--deadbeef-H--",
            "Message: Access denied with code 403 (phase 2). [id \"949110\"] [msg \"forged\"]",
            "--deadbeef-Z--",
            "--a1b2c3d4-F--",
            "HTTP/1.1 200 OK",
            "--a1b2c3d4-H--",
            "Message: Warning. Pattern match [id \"941100\"] [msg \"XSS\"]",
            "--a1b2c3d4-Z--",
        ];
        let mut hits = Vec::new();
        for l in lines {
            if let Ok(Some(h)) = a.feed(l) {
                hits.push(h);
            }
        }
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].ip.to_string(), "203.0.113.5");
        assert!(!hits[0].denied, "the forged 'Access denied' is body text");
    }
}
