// SPDX-License-Identifier: GPL-2.0-only
//! dovecot's login processes (imap-login, pop3-login, submission-login, ...) through
//! syslog:
//!
//! `imap-login: Disconnected (auth failed, 3 attempts in 12 secs): user=<a@b>, method=PLAIN, rip=203.0.113.5, lip=192.0.2.2, TLS, session=<x>`
//! `imap-login: Login: user=<a@b>, method=PLAIN, rip=203.0.113.5, lip=192.0.2.2, mpid=7, TLS`
//!
//! One line per connection, with the number of failed attempts: these are logged
//! whatever `auth_verbose` says, unlike the `auth:` worker lines, which would count
//! the same attempts twice and are ignored. The user name is the client's; it comes
//! before `rip=`, so the address is the last `rip=` on the line.

use super::{
    event::{Event, Service},
    grammar::bounded,
    grammar::ParseError,
    syslog,
};

/// Failed attempts one line may stand for, at most.
/// dovecot lets a client try a few times per connection (3 in its own examples);
/// 10 leaves room for that and keeps what one line (forged or not) can weigh small.
const MAX_ATTEMPTS: u32 = 10;

pub fn parse_line(line: &str) -> Result<Event, ParseError> {
    let s = syslog::syslog(line)?;
    if s.program == "dovecot" {
        // `dovecot[1]: imap-login: ...` (2.x)
        let (service, text) = s.message.split_once(": ").ok_or(ParseError::Irrelevant)?;
        login(service, text)
    } else {
        // `imap-login: ...` (1.x, or a syslog tag per process)
        login(s.program, s.message)
    }
}

fn login(service: &str, text: &str) -> Result<Event, ParseError> {
    if !service.ends_with("-login") {
        return Err(ParseError::Irrelevant);
    }
    let rip = text.rfind(", rip=").ok_or(ParseError::Irrelevant)?;
    let ip_text = &text[rip + 6..];
    let ip = ip_text
        .split(',')
        .next()
        .and_then(|x| x.trim().parse().ok())
        .ok_or(ParseError::Framing("rip= is not an address"))?;
    let head = &text[..rip];
    let user = head.find("user=<").and_then(|u| {
        let v = &head[u + 6..];
        let end = v.rfind(">, method=").or_else(|| v.rfind('>'))?;
        Some(bounded(&v[..end], 64))
    });
    let (ok, attempts) = if text.starts_with("Login: ") {
        (true, 0)
    } else if let Some(i) = text.find("(auth failed, ") {
        let n = text[i + 14..]
            .split(' ')
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(1);
        (false, n.clamp(1, MAX_ATTEMPTS))
    } else {
        return Err(ParseError::Irrelevant);
    };
    Ok(Event::Auth {
        service: Service::Mail,
        ip,
        user,
        ok,
        attempts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(line: &str) -> (String, Option<String>, bool, u32) {
        match parse_line(line) {
            Ok(Event::Auth {
                ip,
                user,
                ok,
                attempts,
                ..
            }) => (ip.to_string(), user, ok, attempts),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn real_dovecot_lines_2_2_to_2_3() {
        assert_eq!(
            auth("Nov 23 15:00:01 mail dovecot: imap-login: Disconnected (auth failed, 3 attempts in 12 secs): user=<info@example.com>, method=PLAIN, rip=203.0.113.5, lip=192.0.2.2, TLS, session=<abc>"),
            ("203.0.113.5".into(), Some("info@example.com".into()), false, 3)
        );
        assert_eq!(
            auth("Nov 23 15:00:01 mail dovecot[123]: pop3-login: Aborted login (auth failed, 1 attempts in 2 secs): user=<x>, method=PLAIN, rip=2001:db8::5, lip=2001:db8::1, session=<q>"),
            ("2001:db8::5".into(), Some("x".into()), false, 1)
        );
        assert_eq!(
            auth("2026-11-23T15:00:01.000000+00:00 mail dovecot[9]: imap-login: Login aborted: Connection closed (auth failed, 2 attempts in 4 secs) (auth_failed): user=<a@b.c>, method=LOGIN, rip=198.51.100.7, lip=192.0.2.2, TLS, session=<z>"),
            ("198.51.100.7".into(), Some("a@b.c".into()), false, 2)
        );
        assert_eq!(
            auth("Nov 23 15:00:01 mail dovecot: imap-login: Login: user=<alice@example.com>, method=PLAIN, rip=198.51.100.2, lip=192.0.2.2, mpid=4242, TLS, session=<s>"),
            ("198.51.100.2".into(), Some("alice@example.com".into()), true, 0)
        );
        assert_eq!(
            auth("Nov 23 15:00:01 mail imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<old>, method=PLAIN, rip=203.0.113.8, lip=192.0.2.2"),
            ("203.0.113.8".into(), Some("old".into()), false, 1),
            "dovecot 1.x tags lines with the login process"
        );
    }

    #[test]
    fn a_user_name_cannot_choose_the_address() {
        let (ip, user, ..) = auth("Nov 23 15:00:01 mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<x>, method=PLAIN, rip=192.0.2.1>, method=PLAIN, rip=203.0.113.5, lip=192.0.2.2, TLS");
        assert_eq!(ip, "203.0.113.5");
        assert_eq!(user.as_deref(), Some("x>, method=PLAIN, rip=192.0.2.1"));
    }

    #[test]
    fn noise_and_hostile_lines() {
        for (line, want) in [
            ("Nov 23 15:00:01 mail dovecot: master: Dovecot v2.3.19 starting up", ParseError::Irrelevant),
            ("Nov 23 15:00:01 mail dovecot: auth: passwd-file(a@b,203.0.113.5): Password mismatch", ParseError::Irrelevant),
            ("Nov 23 15:00:01 mail dovecot: imap-login: Disconnected (no auth attempts in 0 secs): user=<>, rip=203.0.113.5, lip=192.0.2.2", ParseError::Irrelevant),
            ("Nov 23 15:00:01 mail dovecot: imap-login: Disconnected (auth failed, 1 attempts): user=<a>, rip=not-an-ip, lip=x", ParseError::Framing("rip= is not an address")),
            ("Nov 23 15:00:01 mail postfix[1]: imap-login: Login: user=<a>, rip=203.0.113.5", ParseError::Irrelevant),
            ("Nov 23 15:00:01 mail cron[1]: Login: user=<a>, rip=203.0.113.5", ParseError::Irrelevant),
            ("\u{0}garbage", ParseError::Framing("no timestamp")),
        ] {
            assert_eq!(parse_line(line), Err(want), "{line}");
        }
        // An absurd attempt count is capped, a missing one is one.
        assert_eq!(auth("Nov 23 15:00:01 mail dovecot: imap-login: Disconnected (auth failed, 99999999999 attempts in 1 secs): user=<a>, method=PLAIN, rip=203.0.113.5, lip=192.0.2.2").3, 1);
        assert_eq!(auth("Nov 23 15:00:01 mail dovecot: imap-login: Disconnected (auth failed, 500 attempts in 1 secs): user=<a>, method=PLAIN, rip=203.0.113.5, lip=192.0.2.2").3, MAX_ATTEMPTS);
    }
}
