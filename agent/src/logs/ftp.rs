// SPDX-License-Identifier: GPL-2.0-only
//! FTP daemons:
//!
//! - pure-ftpd through syslog: `pure-ftpd: (?@203.0.113.5) [WARNING] Authentication
//!   failed for user [admin]`, `(?@203.0.113.5) [INFO] alice is now logged in`.
//! - proftpd through syslog or its own SystemLog:
//!   `proftpd[12]: server (name[203.0.113.5]) - USER admin (Login failed): Incorrect password`,
//!   `... - USER x: no such user found from ...`,
//!   `... - Maximum login attempts (3) exceeded`, `... - USER alice: Login successful.`
//!
//! The address is in the connection prefix, written before anything the client said.

use std::net::IpAddr;

use super::{
    event::{Event, Service},
    grammar::ParseError,
    grammar::{bounded, token},
    syslog,
};

fn auth(ip: IpAddr, user: Option<&str>, ok: bool) -> Event {
    Event::Auth {
        service: Service::Ftp,
        ip,
        user: user.map(|u| bounded(u, 64)),
        ok,
        attempts: u32::from(!ok),
    }
}

/// pure-ftpd: `(user@host) [LEVEL] text`.
fn pure_ftpd(m: &str) -> Result<Event, ParseError> {
    let rest = m.strip_prefix('(').ok_or(ParseError::Irrelevant)?;
    let (who, rest) = rest
        .split_once(") [")
        .ok_or(ParseError::Framing("no (user@host) [LEVEL]"))?;
    let (_, host) = who
        .rsplit_once('@')
        .ok_or(ParseError::Framing("no @host"))?;
    let (_level, text) = rest
        .split_once("] ")
        .ok_or(ParseError::Framing("no level"))?;
    if let Some(u) = text.strip_prefix("Authentication failed for user [") {
        // A host name (pure-ftpd without -H) cannot be blocked: ignored.
        let ip = host.parse().map_err(|_| ParseError::Irrelevant)?;
        return Ok(auth(ip, Some(u.strip_suffix(']').unwrap_or(u)), false));
    }
    if let Some(u) = text.strip_suffix(" is now logged in") {
        let ip = host.parse().map_err(|_| ParseError::Irrelevant)?;
        return Ok(auth(ip, Some(u), true));
    }
    Err(ParseError::Irrelevant)
}

/// proftpd: `server (name[ip]) - text` (syslog) or `server (name[ip]): text` (own log).
fn proftpd(m: &str) -> Result<Event, ParseError> {
    let (_, rest) = token(m).ok_or(ParseError::Framing("empty"))?;
    let rest = rest.strip_prefix('(').ok_or(ParseError::Irrelevant)?;
    let close = rest
        .find("])")
        .ok_or(ParseError::Framing("no (name[ip])"))?;
    let open = rest[..close]
        .rfind('[')
        .ok_or(ParseError::Framing("no [ip]"))?;
    let ip: IpAddr = rest[open + 1..close]
        .parse()
        .map_err(|_| ParseError::Framing("[ip] is not an address"))?;
    let text = rest[close + 2..]
        .trim_start_matches(':')
        .trim_start_matches(" -")
        .trim_start();
    if text.starts_with("Maximum login attempts")
        || (text.starts_with("SECURITY VIOLATION: ") && text.contains(" login attempted"))
    {
        return Ok(auth(ip, None, false));
    }
    let Some(u) = text.strip_prefix("USER ") else {
        return Err(ParseError::Irrelevant);
    };
    // The name is the client's: the outcome is the suffix.
    if let Some(user) = u.strip_suffix(": Login successful.") {
        return Ok(auth(ip, Some(user), true));
    }
    for marker in [" (Login failed): ", ": no such user found from "] {
        if let Some(i) = u.rfind(marker) {
            return Ok(auth(ip, Some(&u[..i]), false));
        }
    }
    Err(ParseError::Irrelevant)
}

pub fn parse_line(line: &str) -> Result<Event, ParseError> {
    // proftpd's own SystemLog: `2026-11-23 15:00:01,123 host proftpd[12] server (...)`.
    if line.as_bytes().get(4) == Some(&b'-') && line.as_bytes().get(10) == Some(&b' ') {
        let mut rest = line;
        for _ in 0..3 {
            rest = token(rest)
                .ok_or(ParseError::Framing("short proftpd line"))?
                .1;
        }
        let (tag, msg) = token(rest).ok_or(ParseError::Framing("no proftpd tag"))?;
        if !tag.starts_with("proftpd") {
            return Err(ParseError::Irrelevant);
        }
        return proftpd(msg);
    }
    let s = syslog::syslog(line)?;
    match s.program {
        "pure-ftpd" => pure_ftpd(s.message),
        "proftpd" => proftpd(s.message),
        _ => Err(ParseError::Irrelevant),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth_of(line: &str) -> (String, Option<String>, bool) {
        match parse_line(line) {
            Ok(Event::Auth { ip, user, ok, .. }) => (ip.to_string(), user, ok),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn pure_ftpd_and_proftpd_lines() {
        let cases = [
            ("Nov 23 15:00:01 web1 pure-ftpd: (?@203.0.113.5) [WARNING] Authentication failed for user [admin]", ("203.0.113.5", Some("admin"), false)),
            ("Nov 23 15:00:01 web1 pure-ftpd[77]: (?@2001:db8::5) [WARNING] Authentication failed for user [a] b]", ("2001:db8::5", Some("a] b"), false)),
            ("Nov 23 15:00:01 web1 pure-ftpd: (?@198.51.100.2) [INFO] alice is now logged in", ("198.51.100.2", Some("alice"), true)),
            ("Nov 23 15:00:01 web1 proftpd[1234]: web1.example.com (scanner.example[203.0.113.5]) - USER admin (Login failed): Incorrect password", ("203.0.113.5", Some("admin"), false)),
            ("Nov 23 15:00:01 web1 proftpd[1234]: web1.example.com (203.0.113.5[203.0.113.5]) - USER nobody: no such user found from 203.0.113.5 [203.0.113.5] to 192.0.2.2:21", ("203.0.113.5", Some("nobody"), false)),
            ("Nov 23 15:00:01 web1 proftpd[1234]: web1.example.com (203.0.113.5[203.0.113.5]) - Maximum login attempts (3) exceeded, connection refused", ("203.0.113.5", None, false)),
            ("Nov 23 15:00:01 web1 proftpd[1234]: web1.example.com (198.51.100.2[198.51.100.2]) - USER alice: Login successful.", ("198.51.100.2", Some("alice"), true)),
            ("2026-11-23 15:00:01,123 web1 proftpd[1234] web1.example.com (203.0.113.5[203.0.113.5]): USER bob (Login failed): Incorrect password", ("203.0.113.5", Some("bob"), false)),
        ];
        for (line, (ip, user, ok)) in cases {
            assert_eq!(
                auth_of(line),
                (ip.to_string(), user.map(String::from), ok),
                "{line}"
            );
        }
    }

    #[test]
    fn a_user_name_cannot_choose_the_address_or_the_outcome() {
        // The name holds a fake prefix and a fake success: the address is the
        // connection's, and the line is still a failure.
        let (ip, user, ok) = auth_of("Nov 23 15:00:01 web1 proftpd[1]: s (x[203.0.113.5]) - USER a (y[192.0.2.1]): Login successful. (Login failed): Incorrect password");
        assert_eq!((ip.as_str(), ok), ("203.0.113.5", false));
        assert_eq!(user.as_deref(), Some("a (y[192.0.2.1]): Login successful."));
    }

    #[test]
    fn noise_and_hostile_lines() {
        for (line, want) in [
            ("Nov 23 15:00:01 web1 pure-ftpd: (?@host.example) [WARNING] Authentication failed for user [a]", ParseError::Irrelevant),
            ("Nov 23 15:00:01 web1 pure-ftpd: (?@203.0.113.5) [INFO] New connection from 203.0.113.5", ParseError::Irrelevant),
            ("Nov 23 15:00:01 web1 pure-ftpd: ?@203.0.113.5 [INFO] x", ParseError::Irrelevant),
            ("Nov 23 15:00:01 web1 pure-ftpd: (nohost) [INFO] x", ParseError::Framing("no @host")),
            ("Nov 23 15:00:01 web1 proftpd[1]: s (x[999.0.0.1]) - USER a (Login failed): x", ParseError::Framing("[ip] is not an address")),
            ("Nov 23 15:00:01 web1 proftpd[1]: s (x) - USER a (Login failed): x", ParseError::Framing("no (name[ip])")),
            ("Nov 23 15:00:01 web1 proftpd[1]: s (x[203.0.113.5]) - FTP session opened.", ParseError::Irrelevant),
            ("2026-11-23 15:00:01,1 web1 sshd[1] x", ParseError::Irrelevant),
            ("2026-11-23 x", ParseError::Framing("short proftpd line")),
            ("Nov 23 15:00:01 web1 vsftpd[1]: x", ParseError::Irrelevant),
        ] {
            assert_eq!(parse_line(line), Err(want), "{line}");
        }
    }
}
