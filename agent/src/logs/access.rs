// SPDX-License-Identifier: GPL-2.0-only
//! Apache and nginx access logs in the common/combined formats, optionally with the
//! virtual host first (Apache's `vhost_combined`: `%v:%p %h ...`):
//!
//! `203.0.113.5 - - [23/Nov/2026:15:00:01 +0000] "POST /wp-login.php HTTP/1.1" 200 1234 "-" "UA"`
//!
//! The request line is the client's, in quotes with its own quotes escaped (`\"` by
//! Apache, `\x22` by nginx); everything after it is the server's. The same lines sent
//! through syslog (nginx's `access_log syslog:server=...`, Apache's piped logger) are
//! read after their syslog framing.

use std::net::IpAddr;

use super::{
    event::WebHit,
    grammar::ParseError,
    grammar::{bounded, bracketed, quoted, token},
};

pub fn parse_line(line: &str) -> Result<WebHit, ParseError> {
    // A client address never starts like a syslog header (a month or `<PRI>`).
    if line.starts_with('<')
        || line
            .get(..4)
            .is_some_and(|m| m.ends_with(' ') && m.as_bytes()[0].is_ascii_uppercase())
    {
        let s = super::syslog::syslog(line)?;
        if !matches!(
            s.program,
            "nginx" | "apache2" | "httpd" | "apache" | "lshttpd" | "litespeed"
        ) {
            return Err(ParseError::Irrelevant);
        }
        return hit(s.message);
    }
    hit(line)
}

fn hit(line: &str) -> Result<WebHit, ParseError> {
    let (first, mut rest) = token(line).ok_or(ParseError::Framing("empty"))?;
    let (vhost, ip): (Option<&str>, IpAddr) = match first.parse() {
        Ok(ip) => (None, ip),
        Err(_) => {
            let (second, r) = token(rest).ok_or(ParseError::Framing("no client address"))?;
            let ip = second
                .parse()
                .map_err(|_| ParseError::Framing("no client address"))?;
            rest = r;
            let host = first.rsplit_once(':').map_or(first, |(h, _)| h);
            (Some(host), ip)
        }
    };
    // ident and user (`-`, or a name: no spaces in either), then the time.
    let (_, rest) = token(rest).ok_or(ParseError::Framing("no ident"))?;
    let ts = rest
        .find(" [")
        .or_else(|| rest.starts_with('[').then_some(0))
        .ok_or(ParseError::Framing("no timestamp"))?;
    let (_, rest) = bracketed(&rest[ts..]).ok_or(ParseError::Framing("bad timestamp"))?;
    let (request, rest) = quoted(rest).ok_or(ParseError::Framing("no quoted request"))?;
    let (status, after) = token(rest).ok_or(ParseError::Framing("no status"))?;
    let status: u16 = status
        .parse()
        .ok()
        .filter(|s| (100..600).contains(s))
        .ok_or(ParseError::Framing("bad status"))?;
    // `METHOD target PROTOCOL`; a malformed request (`-`, garbage) still has a status
    // worth counting, with what there is.
    let mut parts = request.split(' ');
    let (method, target) = match (parts.next(), parts.next()) {
        (Some(m), Some(t)) => (m, t),
        (Some(m), None) => ("", m),
        _ => ("", ""),
    };
    let path = target.split('?').next().unwrap_or("");
    // The combined format's `bytes "referer" "user agent"`: the client's claim of
    // what it is (crawlers are verified by DNS, never believed on this).
    let user_agent = token(after)
        .and_then(|(_, r)| quoted(r))
        .and_then(|(_, r)| quoted(r))
        .map(|(ua, _)| ua)
        .filter(|ua| !ua.is_empty() && *ua != "-")
        .map(|ua| bounded(ua, 256));
    Ok(WebHit {
        ip,
        vhost: vhost.map(|v| bounded(v, 255)),
        method: bounded(method, 16),
        path: bounded(path, 512),
        status,
        user_agent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(ip: &str, method: &str, path: &str, status: u16) -> WebHit {
        WebHit {
            ip: ip.parse().expect("ip"),
            vhost: None,
            method: method.into(),
            path: path.into(),
            status,
            user_agent: None,
        }
    }

    fn with_ua(h: WebHit, ua: &str) -> WebHit {
        WebHit {
            user_agent: Some(ua.into()),
            ..h
        }
    }

    #[test]
    fn lines_through_syslog_are_read_after_the_framing() {
        for line in [
            r#"Nov 23 15:00:01 web1 nginx: 203.0.113.5 - - [23/Nov/2026:15:00:01 +0000] "POST /wp-login.php HTTP/1.1" 200 12 "-" "UA""#,
            r#"<190>Nov 23 15:00:01 web1 nginx: 203.0.113.5 - - [23/Nov/2026:15:00:01 +0000] "POST /wp-login.php HTTP/1.1" 200 12 "-" "UA""#,
            r#"<190>1 2026-11-23T15:00:01Z web1 apache2 - - - 203.0.113.5 - - [23/Nov/2026:15:00:01 +0000] "POST /wp-login.php HTTP/1.1" 200 12"#,
        ] {
            let h = parse_line(line).expect(line);
            assert_eq!(
                (h.ip.to_string(), h.path.as_str(), h.status),
                ("203.0.113.5".into(), "/wp-login.php", 200),
                "{line}"
            );
        }
        assert_eq!(
            parse_line(
                r#"Nov 23 15:00:01 web1 cron[1]: 203.0.113.5 - - [23/Nov/2026:15:00:01 +0000] "GET / HTTP/1.1" 200 1"#
            ),
            Err(ParseError::Irrelevant)
        );
    }

    #[test]
    fn combined_common_and_vhost_formats() {
        assert_eq!(
            parse_line(
                r#"203.0.113.5 - - [23/Nov/2026:15:00:01 +0000] "POST /wp-login.php HTTP/1.1" 200 1234 "https://example.com/wp-login.php" "Mozilla/5.0""#
            ),
            Ok(with_ua(
                hit("203.0.113.5", "POST", "/wp-login.php", 200),
                "Mozilla/5.0"
            ))
        );
        assert_eq!(
            parse_line(
                r#"2001:db8::5 - bob [23/Nov/2026:15:00:01 +0000] "GET /.env?x=1 HTTP/1.1" 404 153"#
            ),
            Ok(hit("2001:db8::5", "GET", "/.env", 404))
        );
        assert_eq!(
            parse_line(
                r#"example.com:443 198.51.100.7 - - [23/Nov/2026:15:00:01 +0000] "POST /xmlrpc.php HTTP/1.1" 200 5 "-" "-""#
            ),
            Ok(WebHit {
                vhost: Some("example.com".into()),
                ..hit("198.51.100.7", "POST", "/xmlrpc.php", 200)
            })
        );
        // nginx escapes quotes as \x22, Apache as \"; the request stays one field.
        assert_eq!(
            parse_line(
                r#"203.0.113.5 - - [23/Nov/2026:15:00:01 +0000] "GET /a\"b\x22c HTTP/1.1" 400 0 "-" "\" 200 x""#
            ),
            Ok(with_ua(
                hit("203.0.113.5", "GET", r#"/a\"b\x22c"#, 400),
                r#"\" 200 x"#
            ))
        );
        // A request that is not HTTP at all still counts with its status.
        assert_eq!(
            parse_line(
                r#"203.0.113.5 - - [23/Nov/2026:15:00:01 +0000] "\x16\x03\x01" 400 0 "-" "-""#
            ),
            Ok(hit("203.0.113.5", "", r#"\x16\x03\x01"#, 400))
        );
    }

    #[test]
    fn noise_and_hostile_lines() {
        for (line, want) in [
            ("", ParseError::Framing("empty")),
            (
                "host.example - - [x] \"GET /\" 200",
                ParseError::Framing("no client address"),
            ),
            (
                "203.0.113.5 - - 23/Nov/2026 \"GET /\" 200",
                ParseError::Framing("no timestamp"),
            ),
            (
                "203.0.113.5 - - [23/Nov/2026 \"GET /\" 200",
                ParseError::Framing("bad timestamp"),
            ),
            (
                "203.0.113.5 - - [23/Nov/2026:15:00:01 +0000] \"GET / HTTP/1.1 200",
                ParseError::Framing("no quoted request"),
            ),
            (
                "203.0.113.5 - - [23/Nov/2026:15:00:01 +0000] \"GET / HTTP/1.1\"",
                ParseError::Framing("no status"),
            ),
            (
                "203.0.113.5 - - [23/Nov/2026:15:00:01 +0000] \"GET / HTTP/1.1\" 999 1",
                ParseError::Framing("bad status"),
            ),
            (
                "203.0.113.5 - - [23/Nov/2026:15:00:01 +0000] \"GET / HTTP/1.1\" -1 1",
                ParseError::Framing("bad status"),
            ),
        ] {
            assert_eq!(parse_line(line), Err(want), "{line}");
        }
    }
}
