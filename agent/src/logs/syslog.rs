// SPDX-License-Identifier: GPL-2.0-only
//! Syslog framing, shared by every daemon that logs through syslog (sshd, dovecot,
//! pure-ftpd, proftpd): RFC 3164 (`Mmm dd hh:mm:ss host prog[pid]: msg`), the same
//! with an RFC 3339 time (rsyslog's high-precision format), either of them with the
//! `<PRI>` a relay keeps, and RFC 5424 (`<PRI>1 time host app procid msgid sd msg`).
//! rsyslog's `message repeated N times: [ msg]` is the message N more times.

use super::grammar::{token, ParseError};

/// One syslog line: `Mmm dd hh:mm:ss host prog[pid]: msg` (RFC 3164) or
/// `2026-11-23T15:00:01.123456+00:00 host prog[pid]: msg` (RFC 3339, rsyslog's
/// high-precision format).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Syslog<'a> {
    pub timestamp: &'a str,
    pub host: &'a str,
    pub program: &'a str,
    pub pid: Option<u32>,
    pub message: &'a str,
    /// How many times the message happened: 1, or N for rsyslog's `message repeated
    /// N times: [ msg]` (capped at [`MAX_REPEAT`]).
    pub repeat: u32,
}

/// What one `message repeated` line may stand for, at most: a line is cheap to write,
/// so what one weighs stays small.
pub const MAX_REPEAT: u32 = 10;

const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

pub fn syslog(line: &str) -> Result<Syslog<'_>, ParseError> {
    let line = strip_pri(line);
    if let Some(rest) = line.strip_prefix("1 ") {
        return rfc5424(rest);
    }
    let (first, rest) = token(line).ok_or(ParseError::Framing("empty"))?;
    let (timestamp, rest) = if MONTHS.contains(&first) {
        let (day, r) = token(rest).ok_or(ParseError::Framing("no day"))?;
        let (time, r) = token(r).ok_or(ParseError::Framing("no time"))?;
        if !day.parse::<u8>().is_ok_and(|d| (1..=31).contains(&d))
            || time.len() != 8
            || time.as_bytes()[2] != b':'
        {
            return Err(ParseError::Framing("bad RFC 3164 timestamp"));
        }
        let end = line.len() - r.len();
        (line[..end].trim_end(), r)
    } else if first.len() >= 19 && first.as_bytes()[4] == b'-' && first.as_bytes()[10] == b'T' {
        (first, rest)
    } else {
        return Err(ParseError::Framing("no timestamp"));
    };
    let (host, rest) = token(rest).ok_or(ParseError::Framing("no host"))?;
    let (tag, message) = rest
        .trim_start_matches(' ')
        .split_once(": ")
        .ok_or(ParseError::Framing("no tag"))?;
    let (program, pid) = match tag.split_once('[') {
        Some((p, r)) => (
            p,
            Some(
                r.strip_suffix(']')
                    .and_then(|n| n.parse().ok())
                    .ok_or(ParseError::Framing("bad pid"))?,
            ),
        ),
        None => (tag, None),
    };
    if program.is_empty() || program.contains(' ') {
        return Err(ParseError::Framing("bad program"));
    }
    Ok(framed(timestamp, host, program, pid, message))
}

/// `<PRI>` (1 to 3 digits) at the start, as relays and `logger --rfc5424` write it.
fn strip_pri(line: &str) -> &str {
    let Some(rest) = line.strip_prefix('<') else {
        return line;
    };
    match rest.split_once('>') {
        Some((pri, after))
            if (1..=3).contains(&pri.len()) && pri.bytes().all(|b| b.is_ascii_digit()) =>
        {
            after
        }
        _ => line,
    }
}

/// RFC 5424 after the version: `time host app procid msgid sd[ msg]`. A nil (`-`)
/// time or app is refused: the time orders replay, the app picks the grammar.
fn rfc5424(rest: &str) -> Result<Syslog<'_>, ParseError> {
    let (timestamp, rest) = token(rest).ok_or(ParseError::Framing("no timestamp"))?;
    if timestamp.len() < 19 || timestamp.as_bytes()[10] != b'T' {
        return Err(ParseError::Framing("bad RFC 5424 timestamp"));
    }
    let (host, rest) = token(rest).ok_or(ParseError::Framing("no host"))?;
    let (program, rest) = token(rest).ok_or(ParseError::Framing("no app name"))?;
    let (procid, rest) = token(rest).ok_or(ParseError::Framing("no procid"))?;
    let (_msgid, rest) = token(rest).ok_or(ParseError::Framing("no msgid"))?;
    if program == "-" {
        return Err(ParseError::Framing("no app name"));
    }
    let pid = match procid {
        "-" => None,
        p => Some(p.parse().map_err(|_| ParseError::Framing("bad procid"))?),
    };
    let message = structured_data_end(rest)?;
    let message = message.strip_prefix('\u{feff}').unwrap_or(message);
    Ok(framed(timestamp, host, program, pid, message))
}

/// Skip RFC 5424's STRUCTURED-DATA (`-`, or `[id k="v" ...]` elements whose values
/// escape `"`, `\\` and `]`) and the space after it: the message.
fn structured_data_end(s: &str) -> Result<&str, ParseError> {
    if let Some(rest) = s.strip_prefix('-') {
        return Ok(rest.strip_prefix(' ').unwrap_or(rest));
    }
    let b = s.as_bytes();
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        let mut quoted = false;
        i += 1;
        loop {
            match b.get(i) {
                None => return Err(ParseError::Framing("unterminated structured data")),
                Some(b'\\') if quoted => i += 2,
                Some(b'"') => {
                    quoted = !quoted;
                    i += 1;
                }
                Some(b']') if !quoted => {
                    i += 1;
                    break;
                }
                Some(_) => i += 1,
            }
        }
    }
    if i == 0 {
        return Err(ParseError::Framing("no structured data"));
    }
    let rest = &s[i..];
    Ok(rest.strip_prefix(' ').unwrap_or(rest))
}

/// A parsed line, with rsyslog's `message repeated N times: [ msg]` read as the
/// message, N times.
fn framed<'a>(
    timestamp: &'a str,
    host: &'a str,
    program: &'a str,
    pid: Option<u32>,
    message: &'a str,
) -> Syslog<'a> {
    let mut s = Syslog {
        timestamp,
        host,
        program,
        pid,
        message,
        repeat: 1,
    };
    let Some(rest) = message.strip_prefix("message repeated ") else {
        return s;
    };
    let Some((n, rest)) = rest.split_once(" times: [") else {
        return s;
    };
    let (Ok(n), Some(inner)) = (n.parse::<u32>(), rest.trim_end().strip_suffix(']')) else {
        return s;
    };
    s.message = inner.strip_prefix(' ').unwrap_or(inner);
    s.repeat = n.clamp(1, MAX_REPEAT);
    s
}

impl Syslog<'_> {
    /// Seconds of the timestamp on a line-local clock, for replaying a log at its own
    /// pace: RFC 3339 as Unix seconds; RFC 3164 (no year) as seconds since the start
    /// of a non-leap year. Only differences between lines of one file matter.
    pub fn seconds(&self) -> Option<f64> {
        if let Ok(t) = time::OffsetDateTime::parse(
            self.timestamp,
            &time::format_description::well_known::Rfc3339,
        ) {
            return Some(t.unix_timestamp_nanos() as f64 / 1e9);
        }
        let mut it = self.timestamp.split_whitespace();
        let mon = it.next()?;
        let month = MONTHS.iter().position(|m| *m == mon)?;
        let day: u32 = it.next()?.parse().ok()?;
        let mut hms = it.next()?.split(':').map(|p| p.parse::<u32>().ok());
        let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
        const BEFORE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let days = BEFORE[month] + day.checked_sub(1)?;
        Some(f64::from(((days * 24 + h) * 60 + m) * 60 + s))
    }
}

/// The line's program is one of `programs` (else [`ParseError::Irrelevant`]).
pub fn from<'a>(line: &'a str, programs: &[&str]) -> Result<Syslog<'a>, ParseError> {
    let s = syslog(line)?;
    if programs.contains(&s.program) {
        Ok(s)
    } else {
        Err(ParseError::Irrelevant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_give_seconds_for_replay() {
        let a = syslog("Nov 23 15:00:01 h sshd[1]: x").expect("line");
        let b = syslog("Nov 23 15:00:11 h sshd[1]: x").expect("line");
        assert_eq!(b.seconds().zip(a.seconds()).map(|(b, a)| b - a), Some(10.0));
        let c = syslog("2026-11-23T15:00:01.500000+00:00 h sshd[1]: x").expect("line");
        assert_eq!(c.seconds().map(|s| s.fract()), Some(0.5));
    }

    #[test]
    fn rfc5424_pri_and_repeats() {
        let s = syslog(r#"<38>1 2026-11-23T15:01:29Z web1 sshd 1076 ID47 [a x="1\]2" y="\"q\""][b] Invalid user a"#)
            .expect("5424");
        assert_eq!(
            (s.host, s.program, s.pid, s.message),
            ("web1", "sshd", Some(1076), "Invalid user a")
        );
        let s = syslog("<86>Nov 23 15:00:01 web1 sshd[7]: message repeated 3 times: [ Failed x]")
            .expect("3164 with PRI");
        assert_eq!((s.program, s.message, s.repeat), ("sshd", "Failed x", 3));
        let s = syslog("Nov 23 15:00:01 h sshd[7]: message repeated 4000000 times: [ x]")
            .expect("line");
        assert_eq!(s.repeat, MAX_REPEAT);
        for (line, why) in [
            ("<38>1 2026-11-23T15:01:29Z web1 - 1 - - x", "no app name"),
            ("<38>1 - web1 sshd 1 - - x", "bad RFC 5424 timestamp"),
            (
                "<38>1 2026-11-23T15:01:29Z web1 sshd 1 - [open x",
                "unterminated structured data",
            ),
            ("<38>1 2026-11-23T15:01:29Z web1 sshd x - - m", "bad procid"),
        ] {
            assert_eq!(syslog(line), Err(ParseError::Framing(why)), "{line}");
        }
    }

    #[test]
    fn framing_errors_name_what_is_missing() {
        assert_eq!(syslog(""), Err(ParseError::Framing("empty")));
        assert_eq!(
            syslog("Nov 23 15:00:01 h"),
            Err(ParseError::Framing("no tag"))
        );
        assert_eq!(
            syslog("hello world"),
            Err(ParseError::Framing("no timestamp"))
        );
        assert_eq!(
            from("Nov 23 15:00:01 h cron[1]: x", &["sshd"]),
            Err(ParseError::Irrelevant)
        );
    }
}
