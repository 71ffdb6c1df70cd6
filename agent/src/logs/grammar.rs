// SPDX-License-Identifier: GPL-2.0-only
//! Small combinators the log grammars share: tokens, quoted strings with escapes,
//! bracketed fields and ModSecurity's `[name "value"]` tags. Each returns the parsed
//! part and the rest, or `None`; none of them allocates unless it must unescape.

use std::{borrow::Cow, net::IpAddr};

/// Split off the first space-separated token (runs of spaces count as one).
pub fn token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches(' ');
    if s.is_empty() {
        return None;
    }
    match s.find(' ') {
        Some(i) => Some((&s[..i], &s[i + 1..])),
        None => Some((s, "")),
    }
}

/// A `"..."` string at the start of `s` (after spaces). Backslash escapes (Apache
/// writes `\"`, nginx `\x22`) are kept as written in the value: the value is what
/// the client sent, escaped, and only the closing quote matters to the grammar.
pub fn quoted(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches(' ').strip_prefix('"')?;
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some((&s[..i], &s[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

/// A `[...]` field at the start of `s` (after spaces); no nesting.
pub fn bracketed(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches(' ').strip_prefix('[')?;
    let end = s.find(']')?;
    Some((&s[..end], &s[end + 1..]))
}

/// Undo `\"` and `\\` escapes.
pub fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some(n @ ('"' | '\\')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Every `[name "value"]` tag in `s`, in order (ModSecurity's message format). Text
/// between tags is skipped; a value's `\"` does not end it.
pub fn tags(s: &str) -> Vec<(&str, Cow<'_, str>)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('[') {
        rest = &rest[i + 1..];
        let Some(sp) = rest.find([' ', ']']) else {
            break;
        };
        let name = &rest[..sp];
        if !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && rest[sp..].starts_with(" \"")
        {
            if let Some((value, r)) = quoted(&rest[sp..]) {
                if let Some(r) = r.strip_prefix(']') {
                    out.push((name, unescape(value)));
                    rest = r;
                    continue;
                }
            }
        }
    }
    out
}

/// `ip` or `ip:port` or `[v6]:port` as an address.
pub fn ip_maybe_port(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(r) = s.strip_prefix('[') {
        let (ip, _) = r.split_once(']')?;
        return ip.parse().ok();
    }
    let (ip, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse().ok()
}

/// Seconds since 1970-01-01 of a civil UTC date and time (Howard Hinnant's
/// days-from-civil); `None` for impossible fields.
pub fn civil_seconds(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: f64) -> Option<f64> {
    if !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || h > 23
        || mi > 59
        || !(0.0..61.0).contains(&s)
    {
        return None;
    }
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(mo) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86400 + i64::from(h) * 3600 + i64::from(mi) * 60) as f64 + s)
}

/// The longest length of `s` within `max` bytes that ends on a char boundary.
pub fn char_floor(s: &str, max: usize) -> usize {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// Cut to at most `max` bytes on a char boundary.
pub fn bounded(s: &str, max: usize) -> String {
    s[..char_floor(s, max)].to_string()
}

/// Why a line is not an event.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// Not in the source's format at all (counted as malformed, never fatal).
    #[error("malformed line: {0}")]
    Framing(&'static str),
    /// Well-formed, but nothing a scenario or report counts.
    #[error("not a security-relevant line")]
    Irrelevant,
}

/// The `key=value` list of pam_unix's `authentication failure; ... rhost=<ip>[
/// user=<user>]` → (ip, user). `rhost` precedes `user`, and the user name (the
/// client's) is last: `user=` is the last such key, and `rhost=` is read up to the
/// next space. A host name (UseDNS yes) cannot be blocked: irrelevant.
pub fn pam_failure(m: &str) -> Result<(IpAddr, Option<String>), ParseError> {
    let (_, kv) = m.split_once("; ").ok_or(ParseError::Irrelevant)?;
    let (before_user, user) = match kv.rfind(" user=") {
        Some(i) => (&kv[..i], Some(kv[i + 6..].trim_end().to_string())),
        None => (kv, None),
    };
    let rhost = before_user
        .split(' ')
        .find_map(|t| t.strip_prefix("rhost="))
        .ok_or(ParseError::Irrelevant)?;
    let ip = rhost.parse().map_err(|_| ParseError::Irrelevant)?;
    Ok((ip, user.filter(|u| !u.is_empty())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings_keep_escapes_and_stop_at_the_real_quote() {
        assert_eq!(
            quoted(r#""GET /a\"b HTTP/1.1" 200"#),
            Some((r#"GET /a\"b HTTP/1.1"#, " 200"))
        );
        assert_eq!(quoted(r#""unterminated"#), None);
        assert_eq!(quoted(r#""ends in backslash\"#), None);
        assert_eq!(unescape(r#"a\"b\\c\x22"#), r#"a"b\c\x22"#);
    }

    #[test]
    fn modsecurity_tags_with_escaped_quotes_and_noise() {
        let t = tags(
            r#"Access denied [file "/etc/x.conf"] [id "942100"] junk [msg "say \"hi\" [x]"] [broken "no end]"#,
        );
        let got: Vec<_> = t.iter().map(|(n, v)| (*n, v.as_ref())).collect();
        assert_eq!(
            got,
            [
                ("file", "/etc/x.conf"),
                ("id", "942100"),
                ("msg", r#"say "hi" [x]"#)
            ]
        );
    }

    #[test]
    fn addresses_with_and_without_ports() {
        for (s, want) in [
            ("203.0.113.5", Some("203.0.113.5")),
            ("203.0.113.5:443", Some("203.0.113.5")),
            ("[2001:db8::1]:443", Some("2001:db8::1")),
            ("2001:db8::1", Some("2001:db8::1")),
            ("host.example:80", None),
            ("203.0.113.5:99999", None),
        ] {
            assert_eq!(
                ip_maybe_port(s),
                want.map(|w| w.parse().expect("ip")),
                "{s}"
            );
        }
        assert_eq!(bounded("héllo", 2), "h");
        assert_eq!(civil_seconds(1970, 1, 1, 0, 0, 0.0), Some(0.0));
        assert_eq!(
            civil_seconds(2026, 11, 23, 15, 0, 1.5),
            Some(1_795_446_001.5)
        );
        assert_eq!(civil_seconds(2026, 13, 1, 0, 0, 0.0), None);
    }
}
