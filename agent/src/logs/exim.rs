// SPDX-License-Identifier: GPL-2.0-only
//! exim's mainlog: `2026-11-23 15:00:01[.123][ +0000][ [pid]][ msgid] text`.
//!
//! What counts:
//! - `X authenticator failed for H=(helo) [ip]:port: 535 ... (set_id=user)`: SMTP AUTH
//!   failures, the mail brute force.
//! - `H=(helo) [ip]:port F=<from> rejected RCPT <to>: ...`: recipient probing.
//! - `msgid == rcpt R=.. T=.. defer (-44) H=mx [ip]: SMTP error ...: 421-4.7.28 ...`:
//!   deferrals by the receiving provider (reputation trouble shows here first).
//! - `msgid <= sender ... P=local ... U=account` or `A=authenticator:user`: outbound
//!   mail from a local account or an authenticated user.
//! - `cwd=/home/acct/public_html/x 3 args: /usr/sbin/sendmail -t -i`: which script sent.
//!
//! The client's HELO, sender and subject are the attacker's; none of them can contain
//! a space-free `[ip]` token in the host position, which is read before them.

use std::net::IpAddr;

use super::{
    event::{Event, MailEvent, Service},
    grammar::ParseError,
    grammar::{bounded, civil_seconds, token},
};

/// Split the prefix; returns (date, time, msgid, text).
fn frame(line: &str) -> Result<(&str, &str, Option<&str>, &str), ParseError> {
    let (date, rest) = token(line).ok_or(ParseError::Framing("empty"))?;
    let b = date.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(ParseError::Framing("no exim date"));
    }
    let (time, mut rest) = token(rest).ok_or(ParseError::Framing("no time"))?;
    if time.len() < 8 || time.as_bytes()[2] != b':' {
        return Err(ParseError::Framing("bad exim time"));
    }
    // Optional zone and pid.
    if let Some((t, r)) = token(rest) {
        if (t.starts_with('+') || t.starts_with('-')) && t.len() == 5 {
            rest = r;
        }
    }
    if let Some((t, r)) = token(rest) {
        if t.starts_with('[') && t.ends_with(']') && t[1..t.len() - 1].parse::<u32>().is_ok() {
            rest = r;
        }
    }
    let mut msgid = None;
    if let Some((t, r)) = token(rest) {
        if is_msgid(t) {
            msgid = Some(t);
            rest = r;
        }
    }
    Ok((date, time, msgid, rest.trim_start_matches(' ')))
}

/// `1tAbcD-000123-Ab` (exim < 4.97) or `1rY5Cd-000000001Hp-2WzK`.
fn is_msgid(t: &str) -> bool {
    let mut parts = t.split('-');
    let ok = |p: Option<&str>, lens: &[usize]| {
        p.is_some_and(|p| lens.contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
    };
    ok(parts.next(), &[6])
        && ok(parts.next(), &[6, 11])
        && ok(parts.next(), &[2, 4])
        && parts.next().is_none()
}

/// The client address after `H=`/`for`: the first token that starts with `[`
/// (host names and `(helo)` come before it and have no spaces).
fn client_ip(s: &str) -> Option<IpAddr> {
    let mut rest = s;
    for _ in 0..4 {
        let (t, r) = token(rest)?;
        if let Some(inner) = t.strip_prefix('[') {
            return inner.split(']').next()?.parse().ok();
        }
        rest = r;
    }
    None
}

/// `421-4.7.28` / `550 5.7.1` in an SMTP error text, as `421 4.7.28`.
fn smtp_code(reason: &str) -> Option<String> {
    let b = reason.as_bytes();
    (0..b.len().saturating_sub(5)).find_map(|i| {
        let code = &b[i..i + 3];
        let boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        if boundary
            && matches!(code[0], b'4' | b'5')
            && code.iter().all(u8::is_ascii_digit)
            && matches!(b[i + 3], b'-' | b' ')
            && b[i + 4].is_ascii_digit()
            && b.get(i + 5) == Some(&b'.')
        {
            let enh: String = reason[i + 4..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            Some(format!("{} {}", &reason[i..i + 3], enh))
        } else {
            None
        }
    })
}

/// The provider behind an MX host name.
pub fn provider(mx: &str) -> String {
    let mx = mx.trim_end_matches('.').to_ascii_lowercase();
    const KNOWN: &[(&str, &str)] = &[
        ("google.com", "gmail"),
        ("googlemail.com", "gmail"),
        ("outlook.com", "microsoft"),
        ("hotmail.com", "microsoft"),
        ("yahoodns.net", "yahoo"),
        ("yahoo.com", "yahoo"),
        ("icloud.com", "apple"),
        ("apple.com", "apple"),
        ("gmx.net", "gmx"),
        ("mimecast.com", "mimecast"),
        ("pphosted.com", "proofpoint"),
        ("zoho.com", "zoho"),
    ];
    for (suffix, name) in KNOWN {
        if mx == *suffix || mx.ends_with(&format!(".{suffix}")) {
            return (*name).to_string();
        }
    }
    let labels: Vec<&str> = mx.rsplit('.').take(2).collect();
    labels.into_iter().rev().collect::<Vec<_>>().join(".")
}

fn auth_failure(text: &str) -> Result<Event, ParseError> {
    let i = text
        .find(" authenticator failed for ")
        .ok_or(ParseError::Irrelevant)?;
    let ip = client_ip(&text[i + 26..]).ok_or(ParseError::Framing("no client address"))?;
    let user = text.rfind("(set_id=").map(|u| {
        let v = &text[u + 8..];
        bounded(v.strip_suffix(')').unwrap_or(v), 64)
    });
    Ok(Event::Auth {
        service: Service::Mail,
        ip,
        user,
        ok: false,
        attempts: 1,
    })
}

/// Where the `H=` field starts (a token of its own, not the tail of another).
fn h_field(s: &str) -> Option<usize> {
    s.match_indices("H=")
        .map(|(i, _)| i)
        .find(|i| *i == 0 || s.as_bytes()[i - 1] == b' ')
}

/// The address of every `H=` clause in `s`, which must be one: where client text
/// (a quoted command or input) sits beside exim's own clause, a forged clause that
/// names another address makes the line blame no one.
fn unique_h_ip(s: &str) -> Result<IpAddr, ParseError> {
    let mut found = None;
    for (i, _) in s.match_indices("H=") {
        if i > 0 && s.as_bytes()[i - 1] != b' ' {
            continue;
        }
        let Some(ip) = client_ip(&s[i + 2..]) else {
            continue;
        };
        match found {
            None => found = Some(ip),
            Some(f) if f == ip => {}
            Some(_) => return Err(ParseError::Framing("client text repeats the H= clause")),
        }
    }
    found.ok_or(ParseError::Framing("no H="))
}

fn rcpt_rejected(text: &str) -> Result<Event, ParseError> {
    let h = h_field(text).ok_or(ParseError::Framing("no H="))?;
    let r = text.find(" rejected RCPT ").ok_or(ParseError::Irrelevant)?;
    if r < h {
        return Err(ParseError::Framing("H= after the rejection"));
    }
    let ip = client_ip(&text[h + 2..r]).ok_or(ParseError::Framing("no client address"))?;
    let rcpt = text[r + 15..]
        .split([':', ' '])
        .next()
        .unwrap_or("")
        .trim_matches(|c| c == '<' || c == '>');
    Ok(Event::Mail(MailEvent::RcptRejected {
        ip,
        rcpt: bounded(rcpt, 128),
    }))
}

fn deferral(text: &str) -> Result<Event, ParseError> {
    let d = text.find(" defer (").ok_or(ParseError::Irrelevant)?;
    let after = &text[d + 8..];
    let (errno, after) = after
        .split_once(')')
        .ok_or(ParseError::Framing("defer ("))?;
    // Only deferrals a remote host gave: local ones ("retry time not reached") say
    // nothing about the provider.
    let h = after.find(" H=").ok_or(ParseError::Irrelevant)?;
    let (mx, rest) = token(&after[h + 3..]).ok_or(ParseError::Framing("empty H="))?;
    let reason = rest.split_once("]: ").map_or(rest, |(_, r)| r);
    let local_ip = text
        .split(' ')
        .find_map(|t| t.strip_prefix("I=["))
        .and_then(|t| t.split(']').next()?.parse().ok());
    Ok(Event::Mail(MailEvent::Deferred {
        provider: provider(mx),
        mx: bounded(mx, 255),
        local_ip,
        code: smtp_code(reason).unwrap_or_else(|| format!("({errno})")),
        reason: bounded(reason, 300),
    }))
}

fn arrival(text: &str) -> Result<Event, ParseError> {
    let rest = text.strip_prefix("<= ").ok_or(ParseError::Irrelevant)?;
    let (sender, fields) = token(rest).ok_or(ParseError::Framing("no sender"))?;
    // The fields before the subject (T="...") are exim's own.
    let own = fields.split(" T=\"").next().unwrap_or(fields);
    let field = |k: &str| {
        own.split(' ')
            .find_map(|t| t.strip_prefix(k))
            .filter(|v| !v.is_empty())
    };
    let local = field("P=").is_some_and(|p| p.starts_with("local"));
    let account = match (field("A="), field("U=")) {
        (Some(a), _) => a.split_once(':').map_or(a, |(_, id)| id),
        (None, Some(u)) if local => u,
        _ => return Err(ParseError::Irrelevant),
    };
    let ip = h_field(own).and_then(|h| client_ip(&own[h + 2..]));
    let recipients = text
        .rfind(" for ")
        .map_or(1, |i| text[i + 5..].split_whitespace().count().max(1));
    Ok(Event::Mail(MailEvent::Outbound {
        account: bounded(account, 128),
        sender: bounded(sender, 255),
        recipients: u32::try_from(recipients).unwrap_or(u32::MAX),
        ip,
    }))
}

fn script(text: &str) -> Result<Event, ParseError> {
    let rest = text.strip_prefix("cwd=").ok_or(ParseError::Irrelevant)?;
    let a = rest
        .find(" args: ")
        .ok_or(ParseError::Framing("cwd= without args"))?;
    if !rest[a..].contains("sendmail") {
        return Err(ParseError::Irrelevant);
    }
    let cwd = rest[..a].rsplit_once(' ').map_or(&rest[..a], |(c, _)| c);
    let mut parts = cwd.split('/').skip(1);
    let account = match (parts.next(), parts.next()) {
        (Some(h), Some(acct)) if h.starts_with("home") && !acct.is_empty() => acct,
        _ => "",
    };
    Ok(Event::Mail(MailEvent::Script {
        account: bounded(account, 64),
        cwd: bounded(cwd, 512),
    }))
}

pub fn parse_line(line: &str) -> Result<Event, ParseError> {
    let (_, _, msgid, text) = frame(line)?;
    if msgid.is_some() {
        if text.starts_with("<= ") {
            return arrival(text);
        }
        if text.starts_with("== ") {
            return deferral(text);
        }
    }
    if text.starts_with("cwd=") {
        return script(text);
    }
    if text.contains(" authenticator failed for ") {
        return auth_failure(text);
    }
    if text.contains(" rejected RCPT ") {
        return rcpt_rejected(text);
    }
    rejected(text)
}

/// The refusals of [`MailEvent::Rejected`], by the text exim writes before or right
/// after the client's `[ip]` (HELO, sender and input come later and are the
/// client's, so each phrase is anchored where exim puts it).
fn rejected(text: &str) -> Result<Event, ParseError> {
    let event = |ip: IpAddr, why: &'static str| Ok(Event::Mail(MailEvent::Rejected { ip, why }));
    // Phrases that start the line, with the address in the next few tokens.
    const LEADING: &[(&str, &str)] = &[
        (
            "SMTP protocol synchronization error ",
            "protocol synchronization error",
        ),
        ("SMTP call from ", "dropped for too many bad commands"),
        ("SMTP protocol error in ", "AUTH used when not advertised"),
        ("no MAIL in SMTP connection from ", "no MAIL in connection"),
        ("SMTP connection from ", "dropped by ACL"),
        ("smtp SMTP connection from ", "dropped by ACL"),
    ];
    for (prefix, why) in LEADING {
        let Some(rest) = text.strip_prefix(prefix) else {
            continue;
        };
        let ok = match *why {
            "protocol synchronization error" => true,
            "dropped for too many bad commands" => rest.contains(" dropped: too many "),
            "AUTH used when not advertised" => text
                .trim_end()
                .ends_with(" AUTH command used when not advertised"),
            "no MAIL in connection" => true,
            _ => text.trim_end().ends_with(" closed by DROP in ACL"),
        };
        if !ok {
            continue;
        }
        let ip = match *why {
            // The client's command or input is quoted around `H=... [ip]`, and exim
            // does not escape quotes in it: every `H=` clause must agree.
            "protocol synchronization error" | "AUTH used when not advertised" => {
                unique_h_ip(rest)?
            }
            _ => client_ip(rest).ok_or(ParseError::Framing("no client address"))?,
        };
        return event(ip, why);
    }
    // `H=... [ip]:port ... sender verify fail for <addr>: reason`,
    // `H=... [ip]:port F=<s> rejected after DATA: ...`,
    // `msgid H=... [ip]:port F=<s> rejected by local_scan(): ...`.
    const AFTER_HOST: &[(&str, &str)] = &[
        (" sender verify fail for <", "sender verify failed"),
        (" rejected after DATA: ", "message rejected"),
        (" rejected by local_scan(): ", "message rejected"),
    ];
    let h = h_field(text).ok_or(ParseError::Irrelevant)?;
    for (phrase, why) in AFTER_HOST {
        if let Some(at) = text.find(phrase) {
            if at < h {
                return Err(ParseError::Framing("H= after the rejection"));
            }
            let ip = client_ip(&text[h + 2..at]).ok_or(ParseError::Framing("no client address"))?;
            return event(ip, why);
        }
    }
    Err(ParseError::Irrelevant)
}

/// The line's time as Unix seconds (exim logs local time; only differences matter).
pub fn seconds(line: &str) -> Option<f64> {
    let (date, time, ..) = frame(line).ok()?;
    let mut d = date.split('-').map(str::parse::<u32>);
    let (y, mo, da) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (h, mi) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    let s: f64 = t.next()?.parse().ok()?;
    civil_seconds(i64::from(y), mo, da, h, mi, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn smtp_auth_failures_from_exim_4_9x() {
        for (line, want_ip, want_user) in [
            ("2026-11-23 15:00:01 dovecot_login authenticator failed for (User) [203.0.113.5]:54321: 535 Incorrect authentication data (set_id=admin@example.com)", "203.0.113.5", Some("admin@example.com")),
            ("2026-11-23 15:00:01.123 +0000 [4242] dovecot_plain authenticator failed for H=(ylmf-pc) [2001:db8::9]:4321 I=[192.0.2.2]:587: 535 Incorrect authentication data (set_id=x)", "2001:db8::9", Some("x")),
            ("2026-11-23 15:00:01 fixed_login authenticator failed for mail.example.net (helo) [198.51.100.7]:1: 535 Incorrect authentication data", "198.51.100.7", None),
        ] {
            match parse_line(line) {
                Ok(Event::Auth { ip: got, user, ok: false, attempts: 1, service: Service::Mail }) => {
                    assert_eq!((got, user.as_deref()), (ip(want_ip), want_user), "{line}");
                }
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_helo_cannot_choose_the_address() {
        let e = parse_line("2026-11-23 15:00:01 dovecot_login authenticator failed for ([192.0.2.1]) [203.0.113.5]:1: 535 Incorrect authentication data (set_id=[192.0.2.9])");
        assert_eq!(e.ok().and_then(|e| e.ip()), Some(ip("203.0.113.5")));
    }

    #[test]
    fn rejected_recipients_deferrals_and_outbound() {
        assert_eq!(
            parse_line("2026-11-23 15:00:01 H=(probe) [203.0.113.5]:4000 F=<a@b.example> rejected RCPT <nobody@example.com>: No Such User Here"),
            Ok(Event::Mail(MailEvent::RcptRejected { ip: ip("203.0.113.5"), rcpt: "nobody@example.com".into() }))
        );
        assert_eq!(
            parse_line("2026-11-23 15:00:01 1tAbcD-000123-Ab == bob@gmail.com R=dkim_lookuphost T=dkim_remote_smtp defer (-44) H=gmail-smtp-in.l.google.com [142.250.1.27]: SMTP error from remote mail server after RCPT TO:<bob@gmail.com>: 421-4.7.28 [192.0.2.2] Our system has detected an unusual rate of unsolicited mail"),
            Ok(Event::Mail(MailEvent::Deferred {
                provider: "gmail".into(),
                mx: "gmail-smtp-in.l.google.com".into(),
                local_ip: None,
                code: "421 4.7.28".into(),
                reason: "SMTP error from remote mail server after RCPT TO:<bob@gmail.com>: 421-4.7.28 [192.0.2.2] Our system has detected an unusual rate of unsolicited mail".into(),
            }))
        );
        match parse_line("2026-11-23 15:00:01 1rY5Cd-000000001Hp-2WzK == a@b.example R=lookuphost T=remote_smtp defer (110): Connection timed out H=mx1.b.example [198.51.100.20] I=[192.0.2.2]:3333") {
            Ok(Event::Mail(MailEvent::Deferred { provider, code, local_ip, .. })) => {
                assert_eq!((provider.as_str(), code.as_str(), local_ip), ("b.example", "(110)", Some(ip("192.0.2.2"))));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_line("2026-11-23 15:00:01 1tAbcD-000124-Ab == a@b R=x T=y defer (-53): retry time not reached for any host"),
            Err(ParseError::Irrelevant)
        );
        assert_eq!(
            parse_line("2026-11-23 15:00:01 1tAbcD-000125-Ab <= shop@host.example U=shopacct P=local S=1234 T=\"Your order for x y z\" from <shop@host.example> for a@x.example b@y.example"),
            Ok(Event::Mail(MailEvent::Outbound { account: "shopacct".into(), sender: "shop@host.example".into(), recipients: 2, ip: None }))
        );
        assert_eq!(
            parse_line("2026-11-23 15:00:01 1tAbcD-000126-Ab <= u@dom.example H=(pc) [203.0.113.5]:5000 P=esmtpsa X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no A=dovecot_login:u@dom.example S=900 id=x@y T=\"hi A=dovecot_login:victim U=root\" for z@q.example"),
            Ok(Event::Mail(MailEvent::Outbound { account: "u@dom.example".into(), sender: "u@dom.example".into(), recipients: 1, ip: Some(ip("203.0.113.5")) }))
        );
        assert_eq!(
            parse_line("2026-11-23 15:00:01 1tAbcD-000127-Ab <= a@remote.example H=mx.remote.example [198.51.100.9]:25 P=esmtps S=1 U=mailnull for local@example.com"),
            Err(ParseError::Irrelevant),
            "inbound mail is not outbound volume"
        );
        assert_eq!(
            parse_line("2026-11-23 15:00:01 cwd=/home/shopacct/public_html/wp 4 args: /usr/sbin/sendmail -t -i -fshop@x"),
            Ok(Event::Mail(MailEvent::Script { account: "shopacct".into(), cwd: "/home/shopacct/public_html/wp".into() }))
        );
    }

    #[test]
    fn noise_and_hostile_lines() {
        for (line, want) in [
            ("", ParseError::Framing("empty")),
            (
                "Nov 23 15:00:01 host exim[1]: x",
                ParseError::Framing("no exim date"),
            ),
            ("2026-11-23 25", ParseError::Framing("bad exim time")),
            (
                "2026-11-23 15:00:01 Start queue run: pid=1",
                ParseError::Irrelevant,
            ),
            (
                "2026-11-23 15:00:01 1tAbcD-000123-Ab Completed",
                ParseError::Irrelevant,
            ),
            (
                "2026-11-23 15:00:01 x authenticator failed for (helo) host: 535",
                ParseError::Framing("no client address"),
            ),
            (
                "2026-11-23 15:00:01 F=<a> rejected RCPT <b>: x",
                ParseError::Framing("no H="),
            ),
            (
                "2026-11-23 15:00:01 F=<a> rejected RCPT <b> H=[203.0.113.5]",
                ParseError::Framing("H= after the rejection"),
            ),
            (
                "2026-11-23 15:00:01 cwd=/tmp 2 args: /bin/ls -l",
                ParseError::Irrelevant,
            ),
        ] {
            assert_eq!(parse_line(line), Err(want), "{line:?}");
        }
        assert_eq!(smtp_code("x 4.7.1 y"), None);
        assert_eq!(smtp_code("550 5.7.1 no"), Some("550 5.7.1".into()));
        assert_eq!(provider("mx-aol.mail.gm0.yahoodns.net."), "yahoo");
        assert_eq!(
            seconds("2026-11-23 15:00:11 x")
                .zip(seconds("2026-11-23 15:00:01.5 +0000 x"))
                .map(|(a, b)| a - b),
            Some(9.5)
        );
    }
}
