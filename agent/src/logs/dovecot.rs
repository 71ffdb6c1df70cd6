// SPDX-License-Identifier: GPL-2.0-only
//! dovecot's login processes (imap-login, pop3-login, submission-login, ...) through
//! syslog:
//!
//! `imap-login: Disconnected (auth failed, 3 attempts in 12 secs): user=<a@b>, method=PLAIN, rip=203.0.113.5, lip=192.0.2.2, TLS, session=<x>`
//! `imap-login: Login: user=<a@b>, method=PLAIN, rip=203.0.113.5, lip=192.0.2.2, mpid=7, TLS`
//!
//! One line per connection, with the number of failed attempts, logged whatever
//! `auth_verbose` says; with it, the auth process's line for each failure
//! (`passwd-file(user,ip,<session>): Password mismatch`, sql, ldap, pam, ...) and
//! PAM's own. [`Ledger`] counts each attempt once, when it is first seen. The user
//! name is the client's; it comes before `rip=`, so the address is the last `rip=`
//! on the line (and the auth process's line is read from its end).

use std::{collections::HashMap, net::IpAddr};

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
/// Addresses the ledger remembers, at most.
const MAX_KEYS: usize = 16_384;

/// The attempts already counted per address, so that each attempt counts once
/// however many lines report it: with `auth_verbose` the auth process logs each
/// failure as it happens (`passwd-file(user,ip,<session>): Password mismatch`), PAM's
/// module may log the same attempt before it (`pam_unix(dovecot:auth):
/// authentication failure; ... rhost=ip`), and the login process sums the
/// connection up when it ends (`Disconnected (auth failed, 3 attempts ...)`).
#[derive(Default)]
pub struct Ledger {
    /// Attempts counted as they happened, not yet summed up by a login line.
    counted: HashMap<IpAddr, u32>,
    /// pam_unix lines whose `pam(...)` line from dovecot has not come yet.
    pam_unix: HashMap<IpAddr, u32>,
}

impl Ledger {
    pub fn feed(&mut self, line: &str) -> Result<Event, ParseError> {
        let s = syslog::syslog(line)?;
        let (service, text) = if s.program == "dovecot" {
            // `dovecot[1]: imap-login: ...` (2.x)
            s.message.split_once(": ").ok_or(ParseError::Irrelevant)?
        } else {
            // `imap-login: ...` (1.x, or a syslog tag per process)
            (s.program, s.message)
        };
        if self.counted.len() >= MAX_KEYS || self.pam_unix.len() >= MAX_KEYS {
            self.counted.clear();
            self.pam_unix.clear();
        }
        let repeat = s.repeat;
        if service.ends_with("-login") {
            let (ip, user, ok, n) = login(text)?;
            let n = (n * repeat).min(MAX_ATTEMPTS);
            let already = self.counted.get(&ip).copied().unwrap_or(0).min(n);
            if already > 0 {
                self.take(ip, already);
            }
            return Ok(auth(ip, user, ok, n - already));
        }
        if service == "auth" || service.starts_with("auth-worker") {
            let text = text.strip_prefix("Info: ").unwrap_or(text);
            if text.starts_with("pam_unix(dovecot:auth): authentication failure;") {
                let (ip, user) = super::grammar::pam_failure(text)?;
                *self.pam_unix.entry(ip).or_default() += 1;
                *self.counted.entry(ip).or_default() += repeat;
                return Ok(auth(ip, user, false, repeat));
            }
            let (passdb, ip, user) = passdb_failure(text)?;
            if passdb == "pam" {
                if let Some(n) = self.pam_unix.get_mut(&ip).filter(|n| **n > 0) {
                    // PAM's own line counted this attempt.
                    *n -= 1;
                    return Ok(auth(ip, Some(user), false, 0));
                }
            }
            *self.counted.entry(ip).or_default() += repeat;
            return Ok(auth(ip, Some(user), false, repeat));
        }
        Err(ParseError::Irrelevant)
    }

    fn take(&mut self, ip: IpAddr, n: u32) {
        if let Some(c) = self.counted.get_mut(&ip) {
            *c -= n.min(*c);
            if *c == 0 {
                self.counted.remove(&ip);
            }
        }
    }
}

/// One line, read without the lines before it.
pub fn parse_line(line: &str) -> Result<Event, ParseError> {
    Ledger::default().feed(line)
}

fn auth(ip: IpAddr, user: Option<String>, ok: bool, attempts: u32) -> Event {
    Event::Auth {
        service: Service::Mail,
        ip,
        user,
        ok,
        attempts,
    }
}

/// A login process's line → (ip, user, ok, failed attempts).
fn login(text: &str) -> Result<(IpAddr, Option<String>, bool, u32), ParseError> {
    let rip = text.rfind(", rip=").or_else(|| text.rfind(": rip="));
    let rip = rip.ok_or(ParseError::Irrelevant)?;
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
    // The reason is dovecot's text, before anything the client chose (`user=<`).
    let reason_end = [": user=<", ": method=", ": rip=", ", rip="]
        .iter()
        .filter_map(|m| text.find(m))
        .min()
        .unwrap_or(text.len());
    let reason = &text[..reason_end];
    if reason.starts_with("Login: ") || reason == "Login" {
        return Ok((ip, user, true, 0));
    }
    let n = if let Some(i) = reason.find("(auth failed, ") {
        reason[i + 14..]
            .split(' ')
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(1)
            .clamp(1, MAX_ATTEMPTS)
    } else if reason.contains("(tried to use disallowed ")
        || reason.contains("(tried to use disabled ")
        || reason.contains("(proxy dest auth failed)")
    {
        1
    } else {
        return Err(ParseError::Irrelevant);
    };
    Ok((ip, user, false, n))
}

/// What the auth process says of a failed attempt, `passdb(user,ip[,<session>]):
/// reason` → (passdb, ip, user). The user is the client's and comes first, so the
/// line is read from its end: a known reason, then the session, then the address.
fn passdb_failure(text: &str) -> Result<(&str, IpAddr, String), ParseError> {
    if text.contains("(given password: ") {
        // auth_debug_passwords: the password (the client's) follows the reason, so
        // where the daemon's text ends cannot be told.
        return Err(ParseError::Framing("auth_debug_passwords line"));
    }
    let t = text.trim_end();
    let t = match t.rsplit_once(" (SHA1 of given password: ") {
        Some((head, hex))
            if hex
                .trim_end_matches(')')
                .bytes()
                .all(|b| b.is_ascii_hexdigit()) =>
        {
            head
        }
        _ => t,
    };
    let head = ["unknown user", "Password mismatch", "invalid credentials"]
        .iter()
        .find_map(|r| t.strip_suffix(r)?.strip_suffix("): "))
        .or_else(|| {
            t.rsplit_once("): pam_authenticate() failed: ")
                .map(|(h, _)| h)
        })
        .ok_or(ParseError::Irrelevant)?;
    let head = match head.strip_suffix('>') {
        Some(h) => {
            h.rsplit_once(",<")
                .ok_or(ParseError::Framing("bad session"))?
                .0
        }
        None => head,
    };
    let (head, ip) = head.rsplit_once(',').ok_or(ParseError::Irrelevant)?;
    let ip = ip
        .parse()
        .map_err(|_| ParseError::Framing("not an address"))?;
    let (passdb, user) = head.split_once('(').ok_or(ParseError::Irrelevant)?;
    if passdb.is_empty()
        || !passdb
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(ParseError::Irrelevant);
    }
    Ok((passdb, ip, bounded(user, 64)))
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
