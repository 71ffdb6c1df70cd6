// SPDX-License-Identifier: GPL-2.0-only
//! What the log grammars produce: one [`Event`] per security-relevant record, and the
//! [`Source`] kinds that say which grammar a file is read with.

use std::net::IpAddr;

use super::{access, cpanel, dovecot, exim, ftp, grammar::ParseError, modsec, sshd};

pub use crate::config::Source;

/// A login attempt's service, for the scenario that counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    Ssh,
    /// SMTP AUTH (exim) and IMAP/POP3 (dovecot).
    Mail,
    Ftp,
    /// cPanel, WHM and webmail logins.
    Cpanel,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Ssh => "ssh",
            Service::Mail => "mail",
            Service::Ftp => "ftp",
            Service::Cpanel => "cpanel",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebHit {
    pub ip: IpAddr,
    pub vhost: Option<String>,
    pub method: String,
    /// The path without its query string, as sent (still escaped).
    pub path: String,
    pub status: u16,
    /// The combined format's user agent (a claim), at most 256 bytes.
    pub user_agent: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailEvent {
    /// exim refused a recipient for a connecting client (dictionary attacks, relaying).
    RcptRejected { ip: IpAddr, rcpt: String },
    /// exim refused a client for what only abuse does: a sender that does not
    /// verify, a protocol violation, a policy drop, a message refused as spam or
    /// malware. `why` is a fixed label.
    Rejected { ip: IpAddr, why: &'static str },
    /// An outbound delivery was deferred by the receiving provider.
    Deferred {
        /// gmail, microsoft, yahoo, ... or the MX's registrable domain.
        provider: String,
        mx: String,
        /// This host's sending address, when exim logs it (`I=`).
        local_ip: Option<IpAddr>,
        /// `421 4.7.28` or exim's `(-44)` errno when no SMTP code was given.
        code: String,
        reason: String,
    },
    /// A message accepted for delivery from a local account (PHP mail, sendmail) or
    /// an authenticated SMTP user.
    Outbound {
        account: String,
        sender: String,
        /// Recipients counted on the arrival line (`for a b c`).
        recipients: u32,
        /// The submitting client's address for SMTP submissions.
        ip: Option<IpAddr>,
    },
    /// cPanel's exim logs the working directory of a script that ran sendmail.
    Script { account: String, cwd: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WafRule {
    pub id: String,
    pub msg: String,
    pub severity: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WafHit {
    pub ip: IpAddr,
    pub host: String,
    pub method: String,
    pub uri: String,
    /// The response status, where the record has one.
    pub status: Option<u16>,
    /// The request was refused (not only logged).
    pub denied: bool,
    pub unique_id: String,
    pub rules: Vec<WafRule>,
}

/// One security-relevant record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A login attempt. `attempts` > 1 when one line reports several (dovecot's
    /// "auth failed, 3 attempts").
    Auth {
        service: Service,
        ip: IpAddr,
        user: Option<String>,
        ok: bool,
        attempts: u32,
    },
    Web(WebHit),
    Mail(MailEvent),
    Waf(WafHit),
}

impl Event {
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Event::Auth { ip, .. } => Some(*ip),
            Event::Web(w) => Some(w.ip),
            Event::Waf(w) => Some(w.ip),
            Event::Mail(MailEvent::RcptRejected { ip, .. })
            | Event::Mail(MailEvent::Rejected { ip, .. }) => Some(*ip),
            Event::Mail(MailEvent::Outbound { ip, .. }) => *ip,
            Event::Mail(_) => None,
        }
    }
}

/// A source's grammar with whatever it keeps between lines (ModSecurity's serial
/// audit log spreads one record over many lines).
pub struct Parser {
    source: Source,
    modsec: modsec::Assembler,
    sshd: sshd::Reader,
    sshd_mode: sshd::SshdMode,
    dovecot: dovecot::Ledger,
}

impl Parser {
    pub fn new(source: Source) -> Self {
        Self {
            source,
            modsec: modsec::Assembler::default(),
            sshd: sshd::Reader::new(sshd::SshdMode::Normal),
            sshd_mode: sshd::SshdMode::Normal,
            dovecot: dovecot::Ledger::default(),
        }
    }

    /// The parser for `source` as the config says (sshd's mode).
    pub fn for_logs(source: Source, cfg: &crate::config::Logs) -> Self {
        Self::new(source).with_sshd_mode(cfg.sshd_mode)
    }

    pub fn with_sshd_mode(mut self, mode: sshd::SshdMode) -> Self {
        self.sshd = sshd::Reader::new(mode);
        self.sshd_mode = mode;
        self
    }

    /// A parser for the same source and settings, with nothing remembered.
    pub fn fresh(&self) -> Self {
        Self::new(self.source).with_sshd_mode(self.sshd_mode)
    }

    pub fn source(&self) -> Source {
        self.source
    }

    /// One line. `Ok(None)`: part of a record that is not complete yet. Addresses
    /// come out canonical: an IPv4-mapped IPv6 address (`::ffff:203.0.113.5`, as
    /// dual-stack daemons log IPv4 clients) is the IPv4 address, which the firewall
    /// can block.
    pub fn feed(&mut self, line: &str) -> Result<Option<Event>, ParseError> {
        let ev = match self.source {
            Source::Sshd => self.sshd.feed(line).map(|(e, n)| Some(ssh_event(e, n))),
            Source::Exim => exim::parse_line(line).map(Some),
            Source::Dovecot => self.dovecot.feed(line).map(Some),
            Source::Ftp => ftp::parse_line(line).map(Some),
            Source::Cpanel => cpanel::parse_line(line).map(Some),
            Source::Access => access::parse_line(line).map(|h| Some(Event::Web(h))),
            Source::Modsec => self.modsec.feed(line).map(|h| h.map(Event::Waf)),
        }?;
        Ok(ev.map(Event::canonical))
    }

    /// The line's own timestamp, as written.
    pub fn timestamp<'a>(&self, line: &'a str) -> Option<&'a str> {
        match self.source {
            Source::Sshd | Source::Dovecot | Source::Ftp => {
                Some(super::syslog::syslog(line).ok()?.timestamp)
            }
            Source::Exim => line.get(..19),
            Source::Cpanel | Source::Access | Source::Modsec => {
                let start = line.find('[')?;
                Some(super::grammar::bracketed(&line[start..])?.0)
            }
        }
    }

    /// The line's own time in seconds on a file-local clock, for replay.
    pub fn seconds(&self, line: &str) -> Option<f64> {
        match self.source {
            Source::Sshd | Source::Dovecot | Source::Ftp => {
                super::syslog::syslog(line).ok()?.seconds()
            }
            Source::Exim => exim::seconds(line),
            Source::Cpanel | Source::Access | Source::Modsec => clf_seconds(line),
        }
    }
}

/// Seconds of the first `[dd/Mon/yyyy:hh:mm:ss zone]` (or cPanel's
/// `[mm/dd/yyyy:hh:mm:ss zone]`) on the line, file-local.
fn clf_seconds(line: &str) -> Option<f64> {
    let start = line.find('[')?;
    let (inner, _) = super::grammar::bracketed(&line[start..])?;
    let (date, rest) = inner.split_once(':')?;
    let mut hms = rest.split(' ').next()?.split(':');
    let (h, m, s): (u32, u32, f64) = (
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
    );
    let mut d = date.split('/');
    let (a, b, y) = (d.next()?, d.next()?, d.next()?);
    let y: i64 = y.parse().ok()?;
    let (day, month): (u32, u32) = match b.parse::<u32>() {
        Ok(day) => (day, a.parse().ok()?),
        Err(_) => {
            const M: [&str; 12] = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            (a.parse().ok()?, M.iter().position(|x| *x == b)? as u32 + 1)
        }
    };
    super::grammar::civil_seconds(y, month, day, h, m, s)
}

/// An sshd event that counts `attempts` (see [`sshd::Reader`]).
fn ssh_event(e: sshd::SshEvent, attempts: u32) -> Event {
    Event::Auth {
        service: Service::Ssh,
        ip: e.ip(),
        user: e.user().map(|u| super::grammar::bounded(u, 64)),
        ok: matches!(e, sshd::SshEvent::Accepted { .. }),
        attempts,
    }
}

impl Event {
    /// The same event with its addresses canonical (IPv4-mapped → IPv4).
    pub fn canonical(mut self) -> Self {
        let ip = match &mut self {
            Event::Auth { ip, .. } => Some(ip),
            Event::Web(w) => Some(&mut w.ip),
            Event::Waf(w) => Some(&mut w.ip),
            Event::Mail(MailEvent::RcptRejected { ip, .. })
            | Event::Mail(MailEvent::Rejected { ip, .. }) => Some(ip),
            Event::Mail(MailEvent::Outbound { ip, .. }) => ip.as_mut(),
            Event::Mail(MailEvent::Deferred { local_ip, .. }) => local_ip.as_mut(),
            Event::Mail(MailEvent::Script { .. }) => None,
        };
        if let Some(ip) = ip {
            *ip = ip.to_canonical();
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clf_times_order_lines_in_both_date_orders() {
        let a = clf_seconds("1.2.3.4 - - [23/Nov/2026:15:00:01 +0000] \"GET / HTTP/1.1\"");
        let b = clf_seconds("1.2.3.4 - - [23/Nov/2026:15:00:11 +0000] \"GET / HTTP/1.1\"");
        assert_eq!(b.zip(a).map(|(b, a)| b - a), Some(10.0));
        let c = clf_seconds("1.2.3.4 - root [11/23/2026:15:00:01 -0000] \"POST /\"");
        assert_eq!(a, c, "cPanel's month-first date is the same instant");
        assert_eq!(clf_seconds("no time here"), None);
    }

    #[test]
    fn source_names_round_trip() {
        for s in Source::ALL {
            assert_eq!(Source::from_name(s.name()), Some(s));
        }
        assert_eq!(Source::from_name("smtp"), None);
    }
}
