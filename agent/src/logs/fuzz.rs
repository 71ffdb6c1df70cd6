// SPDX-License-Identifier: GPL-2.0-only
//! The invariant every grammar keeps on any input, shared by the cargo-fuzz targets
//! in `fuzz/` and by a mutation test that runs in every `cargo test`: parsing never
//! panics, and an IPv4 source address an event reports is written verbatim in the
//! input (a grammar never invents or rewrites the address it blocks).

use std::net::IpAddr;

use super::{Parser, Source};

/// Feed `data` (any bytes) to `source`'s grammar, line by line.
pub fn check(source: Source, data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut p = Parser::new(source);
    for line in text.split('\n') {
        if let Ok(Some(ev)) = p.feed(line) {
            if let Some(IpAddr::V4(ip)) = ev.ip() {
                // Multi-line records (ModSecurity serial) carry it in an earlier line.
                let scope = if source == Source::Modsec {
                    &text[..]
                } else {
                    line
                };
                assert!(
                    scope.contains(&ip.to_string()),
                    "{source:?} reported {ip} not in {scope:?}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real lines per source, the seeds of the mutations.
    fn seeds(source: Source) -> &'static [&'static str] {
        match source {
            Source::Sshd => &["Nov 23 15:00:01 web1 sshd[1234]: Failed password for invalid user admin from 203.0.113.5 port 52414 ssh2", "2026-11-23T15:00:01.123456+00:00 web1 sshd-session[77]: Connection closed by authenticating user root 203.0.113.5 port 3 [preauth]", "Nov 23 15:00:01 web1 sshd[1234]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5  user=root"],
            Source::Exim => &["2026-11-23 15:00:01 dovecot_login authenticator failed for (User) [203.0.113.5]:54321: 535 Incorrect authentication data (set_id=admin@example.com)", "2026-11-23 15:00:01 1tAbcD-000123-Ab == bob@gmail.com R=x T=y defer (-44) H=gmail-smtp-in.l.google.com [142.250.1.27] I=[192.0.2.2]:1: SMTP error: 421-4.7.28 x", "2026-11-23 15:00:01 1tAbcD-000125-Ab <= s@h U=shop P=local S=1 T=\"hi\" for a@x b@y", "2026-11-23 15:00:01 H=(x) [203.0.113.5]:4000 F=<a@b> rejected RCPT <n@e.com>: no"],
            Source::Dovecot => &["Nov 23 15:00:01 mail dovecot: imap-login: Disconnected (auth failed, 3 attempts in 12 secs): user=<info@example.com>, method=PLAIN, rip=203.0.113.5, lip=192.0.2.2, TLS, session=<abc>"],
            Source::Ftp => &["Nov 23 15:00:01 web1 pure-ftpd: (?@203.0.113.5) [WARNING] Authentication failed for user [admin]", "Nov 23 15:00:01 web1 proftpd[1234]: web1.example.com (x[203.0.113.5]) - USER admin (Login failed): Incorrect password", "2026-11-23 15:00:01,123 web1 proftpd[1234] w (203.0.113.5[203.0.113.5]): USER b (Login failed): x"],
            Source::Cpanel => &["203.0.113.5 - root [11/23/2026:15:00:01 -0000] \"POST /login/?login_only=1 HTTP/1.1\" FAILED LOGIN whostmgrd: login attempt to root account"],
            Source::Access => &["203.0.113.5 - - [23/Nov/2026:15:00:01 +0000] \"POST /wp-login.php HTTP/1.1\" 200 1234 \"-\" \"Mozilla/5.0\"", "example.com:443 198.51.100.7 - - [23/Nov/2026:15:00:01 +0000] \"GET /a\\\"b HTTP/1.1\" 404 5 \"-\" \"-\""],
            Source::Modsec => &["--a1-A--\n[23/Nov/2026:15:00:01 +0000] U 203.0.113.5 1 192.0.2.2 443\n--a1-B--\nGET /?x HTTP/1.1\nHost: h\n--a1-H--\nMessage: Access denied with code 403 (phase 2). [id \"942100\"] [msg \"m\"]\n--a1-Z--", "[Mon Nov 23 15:00:01 2026] [security2:error] [client 203.0.113.9:1] ModSecurity: Access denied with code 403 (phase 2). [id \"1\"] [uri \"/x\"]", "{\"transaction\":{\"client_ip\":\"203.0.113.5\",\"request\":{\"uri\":\"/\"},\"messages\":[{\"message\":\"m\",\"details\":{\"ruleId\":\"1\"}}]}}"],
        }
    }

    const TOKENS: &[&str] = &[
        "[",
        "]",
        "\"",
        "\\",
        " from ",
        " port ",
        ", rip=",
        "H=",
        "(",
        ")",
        ":",
        " ",
        "\n",
        "é",
        "€",
        "𝄞",
        "--a1-Z--",
        "203.0.113.",
        "::",
        "\u{0}",
    ];

    /// Deterministic mutations (xorshift): byte flips, token insertions and cuts, on
    /// char boundaries and off them (the input is bytes, lossily decoded).
    #[test]
    fn mutated_real_lines_never_panic_or_invent_addresses() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n.max(1) as u64) as usize
        };
        for source in Source::ALL {
            for seed in seeds(source) {
                check(source, seed.as_bytes());
                for _ in 0..20_000 {
                    let mut b = seed.as_bytes().to_vec();
                    for _ in 0..1 + rnd(4) {
                        let at = rnd(b.len() + 1);
                        match rnd(4) {
                            0 if !b.is_empty() => {
                                let i = at.min(b.len() - 1);
                                b[i] = rnd(256) as u8;
                            }
                            1 => {
                                let t = TOKENS[rnd(TOKENS.len())].as_bytes();
                                b.splice(at..at, t.iter().copied());
                            }
                            2 => b.truncate(at),
                            _ => {
                                let end = (at + rnd(8)).min(b.len());
                                b.drain(at..end);
                            }
                        }
                    }
                    check(source, &b);
                }
            }
        }
    }
}
