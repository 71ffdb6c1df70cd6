// SPDX-License-Identifier: GPL-2.0-only
//! Precision and recall of the log grammars over the corpus in `corpus/` (real
//! formats of each daemon's versions, with the verdict each line should get; see
//! `corpus/sshd.txt` for the format). Goal: recall ≥ 0.95 at precision 1.0 per
//! daemon, and every sshd mode.

use std::net::IpAddr;

use super::{
    event::{Event, MailEvent, Parser, Source},
    sshd::SshdMode,
};

struct Case<'a> {
    line_no: usize,
    /// The address and attempts the line should count, and the least sshd mode in
    /// which it does.
    want: Option<(IpAddr, u32, SshdMode)>,
    line: &'a str,
}

fn corpus(text: &str) -> Vec<Case<'_>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        let (verdict, line) = raw
            .split_once(" | ")
            .unwrap_or_else(|| panic!("corpus line {}: no ` | `", i + 1));
        let want = (verdict != "-").then(|| {
            let mut it = verdict.split(' ');
            let ip: IpAddr = it.next().and_then(|s| s.parse().ok()).expect("corpus ip");
            let (mut n, mut mode) = (1, SshdMode::Normal);
            for t in it {
                match t {
                    "ddos" => mode = SshdMode::Ddos,
                    "aggressive" => mode = SshdMode::Aggressive,
                    t => {
                        n = t
                            .strip_prefix('x')
                            .and_then(|n| n.parse().ok())
                            .expect("xN")
                    }
                }
            }
            (ip, n, mode)
        });
        out.push(Case {
            line_no: i + 1,
            want,
            line,
        });
    }
    out
}

/// What a scenario counts for the event: (address, attempts).
fn counted(ev: &Event) -> Option<(IpAddr, u32)> {
    match ev {
        Event::Auth {
            ip,
            ok: false,
            attempts,
            ..
        } if *attempts > 0 => Some((*ip, *attempts)),
        Event::Mail(MailEvent::RcptRejected { ip, .. } | MailEvent::Rejected { ip, .. }) => {
            Some((*ip, 1))
        }
        _ => None,
    }
}

#[derive(Debug, Default)]
struct Score {
    tp: usize,
    fp: usize,
    fn_: usize,
    misses: Vec<String>,
}

impl Score {
    fn precision(&self) -> f64 {
        if self.tp + self.fp == 0 {
            return 1.0;
        }
        self.tp as f64 / (self.tp + self.fp) as f64
    }

    fn recall(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fn_).max(1) as f64
    }
}

fn score(source: Source, text: &str, mode: SshdMode) -> Score {
    let mut p = Parser::new(source).with_sshd_mode(mode);
    let mut s = Score::default();
    for c in corpus(text) {
        let want = c
            .want
            .filter(|(_, _, least)| *least <= mode)
            .map(|(ip, n, _)| (ip, n));
        let got = match p.feed(c.line) {
            Ok(Some(ev)) => counted(&ev),
            _ => None,
        };
        match (want, got) {
            (Some(w), Some(g)) if w == g => s.tp += 1,
            (None, None) => {}
            (Some(_), None) => s.fn_ += 1,
            (None, Some(_)) => s.fp += 1,
            (Some(_), Some(_)) => {
                // Another address or count: wrong both ways.
                s.fp += 1;
                s.fn_ += 1;
            }
        }
        if want != got {
            s.misses.push(format!(
                "line {}: want {want:?}, got {got:?}: {}",
                c.line_no, c.line
            ));
        }
    }
    s
}

const CORPORA: &[(Source, &str, &str)] = &[
    (Source::Sshd, "sshd", include_str!("corpus/sshd.txt")),
    (
        Source::Dovecot,
        "dovecot",
        include_str!("corpus/dovecot.txt"),
    ),
    (Source::Exim, "exim", include_str!("corpus/exim.txt")),
    (Source::Ftp, "ftp", include_str!("corpus/ftp.txt")),
    (Source::Cpanel, "cpanel", include_str!("corpus/cpanel.txt")),
];

#[test]
fn every_daemon_meets_recall_095_at_precision_1() {
    let mut report = Vec::new();
    let mut failed = false;
    for (source, name, text) in CORPORA {
        let modes: &[SshdMode] = if *source == Source::Sshd {
            &[SshdMode::Normal, SshdMode::Ddos, SshdMode::Aggressive]
        } else {
            &[SshdMode::Normal]
        };
        for mode in modes {
            let s = score(*source, text, *mode);
            let positives = s.tp + s.fn_;
            assert!(
                positives >= 10,
                "{name}: the corpus must have counted lines to measure ({positives})"
            );
            report.push(format!(
                "{name:8} {mode:?}: precision {:.3} recall {:.3} ({} of {positives})",
                s.precision(),
                s.recall(),
                s.tp
            ));
            failed |= s.fp > 0 || s.recall() < 0.95;
            if !s.misses.is_empty() {
                report.extend(s.misses.iter().map(|m| format!("  {m}")));
            }
        }
    }
    let report = report.join("\n");
    println!("{report}");
    assert!(!failed, "{report}");
}

#[test]
fn the_scorer_notices_a_wrong_verdict() {
    // The measurement itself must be able to fail: a corpus that claims a line
    // counts which does not, and one that claims nothing where a line counts.
    let wrong = "203.0.113.1 | Nov 23 15:00:01 web1 sshd[1]: Accepted password for a from 203.0.113.1 port 1 ssh2\n\
                 - | Nov 23 15:00:01 web1 sshd[2]: Failed password for a from 203.0.113.2 port 1 ssh2\n";
    let s = score(Source::Sshd, wrong, SshdMode::Normal);
    assert_eq!((s.tp, s.fp, s.fn_), (0, 1, 1), "{s:?}");
}
