// SPDX-License-Identifier: GPL-2.0-only
//! Syslog framing, shared by every daemon that logs through syslog (sshd, dovecot,
//! pure-ftpd, proftpd).

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
}

const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

pub fn syslog(line: &str) -> Result<Syslog<'_>, ParseError> {
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
    Ok(Syslog {
        timestamp,
        host,
        program,
        pid,
        message,
    })
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
