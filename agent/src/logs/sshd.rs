// SPDX-License-Identifier: GPL-2.0-only
//! Syslog framing and OpenSSH's authentication messages.
//!
//! The attacker chooses the user name, and it comes before the address in most sshd
//! messages ("Failed password for USER from IP port N ssh2"). A name like
//! "x from 203.0.113.9" must not make 203.0.113.9 the source (fail2ban CVE-2013-7176
//! style injection). The client also chooses text after the address: the auth info
//! after `ssh2: ` (hostbased's client user and host, for one). So the address clause
//! ` from <ip> port <n> ssh2` counts only where it is followed by the end of the
//! message, `: ` (auth info) or ` [preauth]`; where the user name or the auth info
//! repeats such a clause, the first one is the daemon's only if the user is a real
//! account (no spaces, no colons: `/etc/passwd` allows neither), and otherwise the
//! line is refused as malformed: it blames no one, never a third party.

use std::{collections::HashMap, net::IpAddr};

use super::grammar::ParseError;
pub use super::syslog::syslog;
pub use crate::config::SshdMode;

/// What an sshd message says about an authentication attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SshEvent {
    /// `Failed <method> for [invalid user ]<user> from <ip> port <n> ssh2`
    Failed {
        user: String,
        ip: IpAddr,
        method: String,
        invalid_user: bool,
    },
    /// `Invalid user <user> from <ip>[ port <n>]`
    InvalidUser { user: String, ip: IpAddr },
    /// `error: maximum authentication attempts exceeded for ... from <ip> port <n> ssh2 [preauth]`
    MaxAttempts { user: String, ip: IpAddr },
    /// `Connection closed by|Disconnected from [authenticating user|invalid user] <user> <ip> port <n> [preauth]`
    PreauthClose { user: Option<String>, ip: IpAddr },
    /// `pam_unix(sshd:auth): authentication failure; ... rhost=<ip>[ user=<user>]` and
    /// `PAM <n> more authentication failures; ... rhost=<ip>[ user=<user>]`. sshd logs
    /// its own `Failed ...` line for each attempt as well, so these do not count again.
    Pam { user: Option<String>, ip: IpAddr },
    /// sshd refused the client outright, or gave up on its authentication, without
    /// a `Failed` line: `User <user> from <ip> not allowed because ...`, `ROOT LOGIN
    /// REFUSED FROM <ip>`, tcp-wrappers' `refused connect from <host> (<ip>)`,
    /// `error: PAM: Authentication failure for <user> from <ip>`, `Disconnecting
    /// authenticating user <user> <ip> port <n>: Too many authentication failures`,
    /// `Received disconnect from <ip> port <n>:3: ... Auth fail`.
    Refused { user: Option<String>, ip: IpAddr },
    /// A client that never got to authenticate, which counts only in the modes that
    /// say so: `Did not receive identification string`, `Bad protocol version
    /// identification`, `banner exchange: ... invalid format`, a close before
    /// authentication (`Connection closed by <ip> port <n>`), a login grace timeout
    /// ([`SshdMode::Ddos`]); `Unable to negotiate`, `14: No supported authentication
    /// methods available` ([`SshdMode::Aggressive`]).
    Probe { ip: IpAddr, mode: SshdMode },
    /// `Accepted <method> for <user> from <ip> port <n> ssh2`
    Accepted {
        user: String,
        ip: IpAddr,
        method: String,
    },
}

impl SshEvent {
    pub fn ip(&self) -> IpAddr {
        match self {
            Self::Failed { ip, .. }
            | Self::InvalidUser { ip, .. }
            | Self::MaxAttempts { ip, .. }
            | Self::PreauthClose { ip, .. }
            | Self::Pam { ip, .. }
            | Self::Refused { ip, .. }
            | Self::Probe { ip, .. }
            | Self::Accepted { ip, .. } => *ip,
        }
    }

    /// Counts toward brute force on its own (in every mode, whatever the session did
    /// before).
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Self::Failed { .. }
                | Self::InvalidUser { .. }
                | Self::MaxAttempts { .. }
                | Self::Refused { .. }
        )
    }

    pub fn user(&self) -> Option<&str> {
        match self {
            Self::Failed { user, .. }
            | Self::InvalidUser { user, .. }
            | Self::MaxAttempts { user, .. }
            | Self::Accepted { user, .. } => Some(user),
            Self::PreauthClose { user, .. }
            | Self::Pam { user, .. }
            | Self::Refused { user, .. } => user.as_deref(),
            Self::Probe { .. } => None,
        }
    }
}

/// `<head> from <ip> port <n>[ ssh2][ [preauth]]` → (head, ip), parsed from the end.
fn from_ip_port(s: &str) -> Option<(&str, IpAddr)> {
    let s = s.trim_end();
    let s = s.strip_suffix(" [preauth]").unwrap_or(s);
    let s = s.strip_suffix(" ssh2").unwrap_or(s);
    let (s, port) = s.rsplit_once(" port ")?;
    port.parse::<u16>().ok()?;
    let (head, ip) = s.rsplit_once(" from ")?;
    Some((head, ip.parse().ok()?))
}

/// `for <head> from <ip> port <n> ssh2[: <auth info>]` of `Failed`/`Accepted`, anchored
/// at both ends (see the module doc) → (head, ip).
fn auth_clause(s: &str) -> Result<(&str, IpAddr), ParseError> {
    let s = s.trim_end();
    let mut found: Vec<(&str, IpAddr)> = Vec::new();
    let mut at = 0;
    while let Some(i) = s[at..].find(" from ") {
        let start = at + i;
        at = start + 1;
        let rest = &s[start + 6..];
        let Some((ip, rest)) = rest.split_once(" port ") else {
            continue;
        };
        let Ok(ip) = ip.parse::<IpAddr>() else {
            continue;
        };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || rest[..digits].parse::<u16>().is_err() {
            continue;
        }
        let tail = rest[digits..]
            .strip_prefix(" ssh2")
            .unwrap_or(&rest[digits..]);
        if tail.is_empty() || tail.starts_with(": ") || tail == " [preauth]" {
            found.push((&s[..start], ip));
        }
    }
    match found.as_slice() {
        [] => Err(ParseError::Irrelevant),
        [one] => Ok(*one),
        [first, ..] => {
            let real_account = !first.0.starts_with("invalid user ")
                && !first.0.contains([' ', ':'])
                && !first.0.is_empty();
            if real_account {
                Ok(*first)
            } else {
                Err(ParseError::Framing(
                    "the user name or auth info repeats the address clause",
                ))
            }
        }
    }
}

/// `<head> <ip> port <n>[ [preauth]]` (disconnect messages have no "from").
fn ip_port(s: &str) -> Option<(&str, IpAddr)> {
    let s = s.trim_end();
    let s = s.strip_suffix(" [preauth]").unwrap_or(s);
    let (s, port) = s.rsplit_once(" port ")?;
    port.parse::<u16>().ok()?;
    match s.rsplit_once(' ') {
        Some((head, ip)) => Some((head, ip.parse().ok()?)),
        None => Some(("", s.parse().ok()?)),
    }
}

/// `user X` / `invalid user X` / `authenticating user X` prefixes.
fn user_of(head: &str) -> (String, bool) {
    if let Some(u) = head.strip_prefix("invalid user ") {
        (u.to_string(), true)
    } else if let Some(u) = head.strip_prefix("authenticating user ") {
        (u.to_string(), false)
    } else if let Some(u) = head.strip_prefix("user ") {
        (u.to_string(), false)
    } else {
        (head.to_string(), false)
    }
}

/// pam_unix's failure line (see [`super::grammar::pam_failure`]).
fn pam(m: &str) -> Result<SshEvent, ParseError> {
    let (ip, user) = super::grammar::pam_failure(m)?;
    Ok(SshEvent::Pam { user, ip })
}

/// Parse an sshd (or sshd-session, OpenSSH ≥ 9.8) message.
pub fn sshd(message: &str) -> Result<SshEvent, ParseError> {
    let m = message.strip_prefix("error: ").unwrap_or(message);
    if let Some(rest) = m.strip_prefix("Failed ") {
        let (method, rest) = rest.split_once(" for ").ok_or(ParseError::Irrelevant)?;
        let (head, ip) = auth_clause(rest)?;
        let (user, invalid_user) = user_of(head);
        return Ok(SshEvent::Failed {
            user,
            ip,
            method: method.to_string(),
            invalid_user,
        });
    }
    if let Some(rest) = m.strip_prefix("Accepted ") {
        let (method, rest) = rest.split_once(" for ").ok_or(ParseError::Irrelevant)?;
        let (user, ip) = auth_clause(rest)?;
        return Ok(SshEvent::Accepted {
            user: user.to_string(),
            ip,
            method: method.to_string(),
        });
    }
    if let Some(rest) = m
        .strip_prefix("Invalid user ")
        .or_else(|| m.strip_prefix("Illegal user "))
    {
        // The port is absent in OpenSSH < 7.x.
        let parsed = from_ip_port(rest).or_else(|| {
            let (u, ip) = rest.trim_end().rsplit_once(" from ")?;
            Some((u, ip.parse().ok()?))
        });
        let (user, ip) = parsed.ok_or(ParseError::Irrelevant)?;
        return Ok(SshEvent::InvalidUser {
            user: user.to_string(),
            ip,
        });
    }
    if let Some(rest) = m.strip_prefix("maximum authentication attempts exceeded for ") {
        let (head, ip) = from_ip_port(rest).ok_or(ParseError::Irrelevant)?;
        return Ok(SshEvent::MaxAttempts {
            user: user_of(head).0,
            ip,
        });
    }
    if m.starts_with("pam_unix(sshd:auth): authentication failure;")
        || (m.starts_with("PAM ") && m.contains(" more authentication failure"))
    {
        return pam(m);
    }
    if let Some(e) = refused(m) {
        return Ok(e);
    }
    if let Some(e) = probe(m) {
        return Ok(e);
    }
    for prefix in [
        "Connection closed by ",
        "Connection reset by ",
        "Disconnected from ",
    ] {
        if let Some(rest) = m.strip_prefix(prefix) {
            let preauth = rest.trim_end().ends_with("[preauth]");
            let (head, ip) = ip_port(rest).ok_or(ParseError::Irrelevant)?;
            if head.is_empty() {
                // Before authentication began: a scanner, or a client that gave up at
                // the key exchange. (After a login the close names the user.)
                return Ok(SshEvent::Probe {
                    ip,
                    mode: SshdMode::Ddos,
                });
            }
            if !preauth {
                return Err(ParseError::Irrelevant);
            }
            return Ok(SshEvent::PreauthClose {
                user: Some(user_of(head).0),
                ip,
            });
        }
    }
    Err(ParseError::Irrelevant)
}

/// The refusals of [`SshEvent::Refused`], or None.
fn refused(m: &str) -> Option<SshEvent> {
    let some = |user: Option<&str>, ip: IpAddr| {
        Some(SshEvent::Refused {
            user: user.filter(|u| !u.is_empty()).map(str::to_string),
            ip,
        })
    };
    if let Some(rest) = m.strip_prefix("User ") {
        // The reasons are sshd's own text (a shell's path comes from /etc/passwd).
        let (head, _reason) = rest.rsplit_once(" not allowed because ")?;
        let (user, ip) = head.rsplit_once(" from ")?;
        return some(Some(user), ip.parse().ok()?);
    }
    if let Some(rest) = m.strip_prefix("ROOT LOGIN REFUSED FROM ") {
        let ip = rest.split(' ').next()?;
        return some(Some("root"), ip.parse().ok()?);
    }
    if let Some(rest) = m.strip_prefix("refused connect from ") {
        let (_, ip) = rest.trim_end().strip_suffix(')')?.rsplit_once(" (")?;
        return some(None, ip.parse().ok()?);
    }
    let pam = m.strip_prefix("PAM: ").unwrap_or(m);
    for prefix in [
        "Authentication failure for ",
        "Authentication failed for ",
        "User not known to the underlying authentication module for ",
    ] {
        if let Some(rest) = pam.strip_prefix(prefix) {
            let rest = rest.rsplit_once(" via ").map_or(rest, |(r, _)| r);
            let (head, ip) = rest.trim_end().rsplit_once(" from ")?;
            let user = head
                .strip_prefix("illegal user ")
                .or_else(|| head.strip_prefix("invalid user "))
                .unwrap_or(head);
            return some(Some(user), ip.parse().ok()?);
        }
    }
    if let Some(rest) = m.strip_prefix("Disconnecting ") {
        let rest = rest.trim_end();
        let rest = rest.strip_suffix(" [preauth]").unwrap_or(rest);
        let head = rest.strip_suffix(": Too many authentication failures")?;
        let (who, ip) = ip_port(head)?;
        return some(Some(&user_of(who).0), ip);
    }
    if let Some((ip, code, text)) = received_disconnect(m) {
        if code == 3 && text.contains("Auth fail") {
            return some(None, ip);
        }
    }
    None
}

/// `Received disconnect from <ip> port <n>:<code>: <text>` (or the older `<ip>:
/// <code>: <text>`) → (ip, code, text). The text is the client's.
fn received_disconnect(m: &str) -> Option<(IpAddr, u32, &str)> {
    let rest = m.strip_prefix("Received disconnect from ")?;
    let (ip, after) = match rest.split_once(" port ") {
        Some((ip, r)) => (ip, r.split_once(':')?.1),
        None => rest.split_once(": ")?,
    };
    let (code, text) = after.trim_start().split_once(':')?;
    Some((ip.parse().ok()?, code.trim().parse().ok()?, text))
}

/// The clients of [`SshEvent::Probe`], or None.
fn probe(m: &str) -> Option<SshEvent> {
    let ddos = |ip: IpAddr| {
        Some(SshEvent::Probe {
            ip,
            mode: SshdMode::Ddos,
        })
    };
    let aggressive = |ip: IpAddr| {
        Some(SshEvent::Probe {
            ip,
            mode: SshdMode::Aggressive,
        })
    };
    // `<ip>[ port <n>]` to the end of `s` (or to `: ...` after the port).
    let addr = |s: &str| -> Option<IpAddr> {
        let s = s.trim_end();
        let s = s.strip_suffix(" [preauth]").unwrap_or(s);
        let ip = s.split(" port ").next()?;
        ip.parse().ok()
    };
    if let Some(rest) = m.strip_prefix("Did not receive identification string from ") {
        return ddos(addr(rest)?);
    }
    if let Some(rest) = m.strip_prefix("Bad protocol version identification ") {
        // The quoted version is the client's: the address is the last clause.
        let (_, ip) = rest.rsplit_once(" from ")?;
        return ddos(addr(ip)?);
    }
    for prefix in [
        "banner exchange: Connection from ",
        "ssh_dispatch_run_fatal: Connection from ",
    ] {
        if let Some(rest) = m.strip_prefix(prefix) {
            let (ip, _) = rest.split_once(" port ")?;
            return ddos(ip.parse().ok()?);
        }
    }
    let t = m.strip_prefix("fatal: ").unwrap_or(m);
    if let Some(rest) = t.strip_prefix("Timeout before authentication for ") {
        return ddos(addr(rest)?);
    }
    if let Some(rest) = m.strip_prefix("Unable to negotiate with ") {
        let (ip, _) = rest.split_once(" port ")?;
        return aggressive(ip.parse().ok()?);
    }
    if let Some((ip, 14, _)) = received_disconnect(m) {
        return aggressive(ip);
    }
    None
}

/// sshd's lines read in order, with what each session (sshd's pid) did: a close before
/// authentication counts once for a session in which nothing else counted (the slow
/// brute force: one try per connection, or keys refused without a `Failed` line), and
/// never after a login.
pub struct Reader {
    mode: SshdMode,
    /// pid → the session authenticated (true) or already counted (false).
    sessions: HashMap<u32, bool>,
}

/// Sessions remembered, at most (sshd's MaxStartups keeps far fewer open).
const MAX_SESSIONS: usize = 16_384;

impl Reader {
    pub fn new(mode: SshdMode) -> Self {
        Self {
            mode,
            sessions: HashMap::new(),
        }
    }

    /// One line → the event and the failed attempts it counts.
    pub fn feed(&mut self, line: &str) -> Result<(SshEvent, u32), ParseError> {
        let s = syslog(line)?;
        if !matches!(s.program, "sshd" | "sshd-session" | "sshd-auth") {
            return Err(ParseError::Irrelevant);
        }
        let e = sshd(s.message)?;
        if self.sessions.len() >= MAX_SESSIONS {
            self.sessions.clear();
        }
        let n = match (&e, s.pid) {
            (SshEvent::Accepted { .. }, Some(pid)) => {
                self.sessions.insert(pid, true);
                0
            }
            (e, pid) if e.is_failure() => {
                if let Some(pid) = pid {
                    self.sessions.entry(pid).or_insert(false);
                }
                1
            }
            (SshEvent::PreauthClose { .. } | SshEvent::Probe { .. }, pid) => {
                let wanted = match &e {
                    SshEvent::Probe { mode, .. } => self.mode >= *mode,
                    _ => true,
                };
                let seen = pid.is_some_and(|p| self.sessions.contains_key(&p));
                let count = wanted && !seen;
                if let Some(pid) = pid {
                    if matches!(e, SshEvent::PreauthClose { .. }) {
                        // The session is over.
                        self.sessions.remove(&pid);
                    } else if count {
                        self.sessions.insert(pid, false);
                    }
                }
                u32::from(count)
            }
            _ => 0,
        };
        Ok((e, n * s.repeat))
    }
}

/// A whole log line from sshd, or why not.
pub fn parse_line(line: &str) -> Result<SshEvent, ParseError> {
    let s = syslog(line)?;
    if !matches!(s.program, "sshd" | "sshd-session" | "sshd-auth") {
        return Err(ParseError::Irrelevant);
    }
    sshd(s.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn real_openssh_lines() {
        let cases: &[(&str, SshEvent)] = &[
            (
                "Nov 23 15:00:01 web1 sshd[1234]: Failed password for root from 203.0.113.5 port 52414 ssh2",
                SshEvent::Failed { user: "root".into(), ip: ip("203.0.113.5"), method: "password".into(), invalid_user: false },
            ),
            (
                "Nov  3 05:06:07 web1 sshd[99]: Failed password for invalid user admin from 2001:db8::7 port 4242 ssh2",
                SshEvent::Failed { user: "admin".into(), ip: ip("2001:db8::7"), method: "password".into(), invalid_user: true },
            ),
            (
                "2026-11-23T15:00:01.123456+00:00 web1 sshd-session[77]: Failed publickey for git from 198.51.100.9 port 1 ssh2",
                SshEvent::Failed { user: "git".into(), ip: ip("198.51.100.9"), method: "publickey".into(), invalid_user: false },
            ),
            (
                "Nov 23 15:00:01 web1 sshd[1234]: Invalid user oracle from 203.0.113.5 port 40000",
                SshEvent::InvalidUser { user: "oracle".into(), ip: ip("203.0.113.5") },
            ),
            (
                "Nov 23 15:00:01 web1 sshd[1234]: Invalid user test from 203.0.113.5",
                SshEvent::InvalidUser { user: "test".into(), ip: ip("203.0.113.5") },
            ),
            (
                "Nov 23 15:00:01 web1 sshd[1234]: error: maximum authentication attempts exceeded for invalid user x from 203.0.113.5 port 2 ssh2 [preauth]",
                SshEvent::MaxAttempts { user: "x".into(), ip: ip("203.0.113.5") },
            ),
            (
                "Nov 23 15:00:01 web1 sshd[1234]: Connection closed by authenticating user root 203.0.113.5 port 3 [preauth]",
                SshEvent::PreauthClose { user: Some("root".into()), ip: ip("203.0.113.5") },
            ),
            (
                "Nov 23 15:00:01 web1 sshd[1234]: Disconnected from 203.0.113.5 port 3 [preauth]",
                SshEvent::Probe { ip: ip("203.0.113.5"), mode: SshdMode::Ddos },
            ),
            (
                "Nov 23 15:00:01 web1 sshd[1234]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5  user=root",
                SshEvent::Pam { user: Some("root".into()), ip: ip("203.0.113.5") },
            ),
            (
                "Nov 23 15:00:01 web1 sshd[1234]: PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=2001:db8::7",
                SshEvent::Pam { user: None, ip: ip("2001:db8::7") },
            ),
            (
                "Nov 23 15:00:01 web1 sshd[1234]: Accepted publickey for alice from 198.51.100.2 port 5555 ssh2",
                SshEvent::Accepted { user: "alice".into(), ip: ip("198.51.100.2"), method: "publickey".into() },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line).as_ref(), Ok(want), "{line}");
        }
    }

    #[test]
    fn user_names_cannot_inject_an_address() {
        let e = parse_line(
            "Nov 23 15:00:01 web1 sshd[1]: Failed password for invalid user x from 192.0.2.1 port 1 ssh2 from 203.0.113.5 port 22 ssh2",
        )
        .expect("parses");
        assert_eq!(e.ip(), ip("203.0.113.5"));
        assert_eq!(e.user(), Some("x from 192.0.2.1 port 1 ssh2"));
        let e = parse_line(
            "Nov 23 15:00:01 web1 sshd[1]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5  user=a rhost=192.0.2.1",
        )
        .expect("parses");
        assert_eq!(
            (e.ip(), e.user()),
            (ip("203.0.113.5"), Some("a rhost=192.0.2.1"))
        );
        assert!(
            !e.is_failure(),
            "sshd logs its own Failed line for the attempt"
        );
        // Auth info after `ssh2: ` is the client's: an address in it is not the source.
        let e = parse_line(
            "Nov 23 15:00:01 web1 sshd[1]: Failed password for root from 203.0.113.50 port 4242 ssh2: from 198.51.100.77 port 55555 ssh2",
        )
        .expect("parses");
        assert_eq!((e.ip(), e.user()), (ip("203.0.113.50"), Some("root")));
        let e = parse_line(
            "Nov 23 15:00:01 web1 sshd[1]: Failed hostbased for alice from 203.0.113.50 port 4242 ssh2: client user \"x from 198.51.100.77 port 1 ssh2\", client host \"h\"",
        )
        .expect("parses");
        assert_eq!(e.ip(), ip("203.0.113.50"));
        let e = parse_line(
            "Nov 23 15:00:01 web1 sshd[1]: Accepted publickey for deploy from 203.0.113.8 port 50000 ssh2: RSA SHA256:abc from 198.51.100.77 port 1 ssh2",
        )
        .expect("parses");
        assert_eq!(e.ip(), ip("203.0.113.8"));
        // An invalid user's name and the auth info both the client's, each with a
        // clause: no one is blamed (malformed), least of all 198.51.100.77.
        for line in [
            "Nov 23 15:00:01 web1 sshd[1]: Failed password for invalid user x from 198.51.100.77 port 1 ssh2: y from 203.0.113.50 port 4242 ssh2",
            "Nov 23 15:00:01 web1 sshd[1]: Failed password for invalid user x from 203.0.113.50 port 4242 ssh2: from 198.51.100.77 port 1 ssh2",
            "Nov 23 15:00:01 web1 sshd[1]: Failed password for a b from 198.51.100.77 port 1 ssh2: from 203.0.113.50 port 4242 ssh2",
        ] {
            assert!(
                matches!(parse_line(line), Err(ParseError::Framing(_))),
                "{line}"
            );
        }
        // A name ending the line in an address-looking way without the real suffix.
        assert_eq!(
            parse_line("Nov 23 15:00:01 web1 sshd[1]: Failed password for root from 203.0.113.5"),
            Err(ParseError::Irrelevant)
        );
    }

    #[test]
    fn other_programs_noise_and_hostile_lines_are_errors() {
        for line in [
            "",
            "garbage",
            "Nov 99 15:00:01 web1 sshd[1]: Failed password for root from 203.0.113.5 port 1 ssh2",
            "Nov 23 15:00:01 web1 sshd[x]: Failed password for root from 203.0.113.5 port 1 ssh2",
            "Nov 23 15:00:01 web1 cron[1]: Failed password for root from 203.0.113.5 port 1 ssh2",
            "Nov 23 15:00:01 web1 sshd[1]: Server listening on 0.0.0.0 port 22.",
            "Nov 23 15:00:01 web1 sshd[1]: Failed password for root from 999.1.1.1 port 1 ssh2",
            "Nov 23 15:00:01 web1 sshd[1]: Failed password for root from 203.0.113.5 port 99999 ssh2",
            "Nov 23 15:00:01 web1 sshd[1]: Connection closed by user alice 203.0.113.5 port 3",
            "Nov 23 15:00:01 web1 sshd[1]: \u{0}\u{ffff}",
        ] {
            assert!(parse_line(line).is_err(), "{line:?}");
        }
    }
}
