// SPDX-License-Identifier: GPL-2.0-only
//! cPanel/WHM's `/usr/local/cpanel/logs/login_log`:
//!
//! `203.0.113.5 - root [11/23/2026:15:00:01 -0000] "POST /login/?login_only=1 HTTP/1.1" FAILED LOGIN whostmgrd: login attempt to root account: user password hash is wrong`
//! `198.51.100.2 - alice [11/23/2026:15:00:01 -0000] "GET / HTTP/1.1" NEW alice:token address_change cpaneld`
//!
//! and, since cPanel 104:
//!
//! `[2026-11-23 15:00:01 +0000] info [whostmgrd] 203.0.113.5 - root "POST /login/?login_only=1 HTTP/1.1" FAILED LOGIN whostmgrd: ...`
//!
//! The address is the first field (after the time, level and service). The user name and request are the client's, so a
//! failure is any line whose status, after the quoted request, is `FAILED LOGIN`: a
//! client can make its own line look failed, never a failure look successful.

use super::{
    event::{Event, Service},
    grammar::ParseError,
    grammar::{bounded, bracketed, quoted, token},
};

pub fn parse_line(line: &str) -> Result<Event, ParseError> {
    let (ip, user, rest) = if line.starts_with('[') {
        current(line)?
    } else {
        legacy(line)?
    };
    let ip: std::net::IpAddr = ip
        .parse()
        .map_err(|_| ParseError::Framing("no client address"))?;
    let (_request, after) = quoted(rest).ok_or(ParseError::Framing("no quoted request"))?;
    let status = after.trim_start();
    // A user name with quotes could make a failure read as `NEW`: any failure
    // status after the user counts (only the client's own address is blamed).
    let failed = status.starts_with("FAILED LOGIN ") || rest.contains("\" FAILED LOGIN ");
    let ok = status.starts_with("NEW ");
    if !failed && !ok {
        return Err(ParseError::Irrelevant);
    }
    Ok(Event::Auth {
        service: Service::Cpanel,
        ip,
        user: (!user.is_empty() && user != "-").then(|| bounded(user, 64)),
        ok: ok && !failed,
        attempts: u32::from(failed),
    })
}

/// `ip - user [mm/dd/yyyy:hh:mm:ss zone] "request" STATUS ...` (cPanel < 104)
/// → (ip, user, rest from the request).
fn legacy(line: &str) -> Result<(&str, &str, &str), ParseError> {
    let (ip, rest) = token(line).ok_or(ParseError::Framing("empty"))?;
    let rest = rest
        .strip_prefix("- ")
        .ok_or(ParseError::Framing("no ' - '"))?;
    // The user runs to the timestamp, `[mm/dd/yyyy:...]`.
    let ts = rest.find(" [").ok_or(ParseError::Framing("no timestamp"))?;
    let user = &rest[..ts];
    let (_, rest) = bracketed(&rest[ts..]).ok_or(ParseError::Framing("bad timestamp"))?;
    Ok((ip, user, rest))
}

/// `[yyyy-mm-dd hh:mm:ss zone] level [service] ip - user "request" STATUS ...`
/// (cPanel 104 and later) → (ip, user, rest from the request). The user is the
/// client's and runs to the request's opening quote.
fn current(line: &str) -> Result<(&str, &str, &str), ParseError> {
    let (_ts, rest) = bracketed(line).ok_or(ParseError::Framing("bad timestamp"))?;
    let (_level, rest) = token(rest).ok_or(ParseError::Framing("no level"))?;
    let (_service, rest) = bracketed(rest).ok_or(ParseError::Framing("no [service]"))?;
    let (ip, rest) = token(rest).ok_or(ParseError::Framing("no client address"))?;
    let rest = rest
        .strip_prefix("- ")
        .ok_or(ParseError::Framing("no ' - '"))?;
    let q = rest
        .find(" \"")
        .ok_or(ParseError::Framing("no quoted request"))?;
    Ok((ip, &rest[..q], &rest[q..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_and_successful_logins() {
        match parse_line(
            r#"203.0.113.5 - root [11/23/2026:15:00:01 -0000] "POST /login/?login_only=1 HTTP/1.1" FAILED LOGIN whostmgrd: login attempt to root account: user password hash is wrong"#,
        ) {
            Ok(Event::Auth {
                ip,
                user,
                ok: false,
                attempts: 1,
                service: Service::Cpanel,
            }) => {
                assert_eq!(
                    (ip.to_string(), user.as_deref()),
                    ("203.0.113.5".into(), Some("root"))
                );
            }
            other => panic!("{other:?}"),
        }
        match parse_line(
            r#"2001:db8::7 - bob@example.com [11/23/2026:15:00:01 -0000] "POST /login/?login_only=1 HTTP/1.1" FAILED LOGIN webmaild: user password incorrect"#,
        ) {
            Ok(Event::Auth { ip, ok: false, .. }) => assert_eq!(ip.to_string(), "2001:db8::7"),
            other => panic!("{other:?}"),
        }
        match parse_line(
            r#"198.51.100.2 - alice [11/23/2026:15:00:01 -0000] "GET /cpsess1/ HTTP/1.1" NEW alice:AbCd address_change cpaneld"#,
        ) {
            Ok(Event::Auth {
                ok: true,
                attempts: 0,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_client_cannot_hide_a_failure() {
        // A request line that fakes a success before the real status.
        match parse_line(
            r#"203.0.113.5 - x [11/23/2026:15:00:01 -0000] "GET /\" NEW x HTTP/1.1" FAILED LOGIN cpaneld: user name not provided or invalid user"#,
        ) {
            Ok(Event::Auth {
                ok: false,
                attempts: 1,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn noise_and_hostile_lines() {
        for (line, want) in [
            ("", ParseError::Framing("empty")),
            ("host.example - root [x] \"GET /\" FAILED LOGIN", ParseError::Framing("no client address")),
            ("203.0.113.5 root", ParseError::Framing("no ' - '")),
            ("203.0.113.5 - root", ParseError::Framing("no timestamp")),
            ("203.0.113.5 - root [11/23/2026 \"GET /\"", ParseError::Framing("bad timestamp")),
            ("203.0.113.5 - root [11/23/2026:15:00:01 -0000] GET", ParseError::Framing("no quoted request")),
            ("203.0.113.5 - root [11/23/2026:15:00:01 -0000] \"GET /\" DEFERRED LOGIN cpaneld: security token missing", ParseError::Irrelevant),
        ] {
            assert_eq!(parse_line(line), Err(want), "{line}");
        }
    }
}
