// SPDX-License-Identifier: GPL-2.0-only
//! The agent's layout rules, checked on the source text (docs/src/architecture.md):
//! at most [`MAX_TOP_LEVEL`] top-level modules, the feature folders present,
//! `daemon.rs` at most [`MAX_DAEMON_LINES`] lines, `config.rs` importing nothing of
//! ours, and no import circle between files except the log grammars' enum dispatch
//! (`logs/event.rs` names each grammar; each grammar returns `logs/event.rs` types),
//! and no `json!` response in `web/` (every route answers a typed struct).
//!
//! Imports are read from `use` items and `crate::`/`super::` paths, resolved to files
//! through the module tree, following `pub use` re-exports to the file that defines
//! the item. Test modules (`#[cfg(test)] mod tests`) are not counted.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::Path,
};

use anyhow::{bail, Context, Result};

pub const MAX_TOP_LEVEL: usize = 12;
pub const MAX_DAEMON_LINES: usize = 450;
pub const FEATURE_FOLDERS: &[&str] = &["kernel", "sensors", "firewall", "detection", "web"];
/// The one allowed circle: the grammar dispatch in logs/event.rs.
const DISPATCH: &str = "logs/event.rs";
const GRAMMARS: &[&str] = &[
    "logs/access.rs",
    "logs/cpanel.rs",
    "logs/dovecot.rs",
    "logs/exim.rs",
    "logs/ftp.rs",
    "logs/modsec.rs",
    "logs/sshd.rs",
];

/// Check `src` (agent/src); Err lists every broken rule.
pub fn check(src: &Path) -> Result<()> {
    let files = read_tree(src)?;
    let mut problems = Vec::new();
    let top: BTreeSet<String> = files
        .keys()
        .filter(|f| f.as_str() != "lib.rs" && f.as_str() != "main.rs")
        .map(|f| {
            f.split('/')
                .next()
                .unwrap_or(f)
                .trim_end_matches(".rs")
                .to_string()
        })
        .collect();
    if top.len() > MAX_TOP_LEVEL {
        problems.push(format!(
            "{} top-level modules (at most {MAX_TOP_LEVEL}): {top:?}",
            top.len()
        ));
    }
    for f in FEATURE_FOLDERS {
        if !files.contains_key(&format!("{f}/mod.rs")) {
            problems.push(format!("feature folder {f}/ is missing"));
        }
    }
    match files.get("daemon.rs") {
        Some(d) if d.lines().count() > MAX_DAEMON_LINES => problems.push(format!(
            "daemon.rs has {} lines (at most {MAX_DAEMON_LINES})",
            d.lines().count()
        )),
        Some(_) => {}
        None => problems.push("daemon.rs is missing".into()),
    }
    for (f, code) in files.iter().filter(|(f, _)| f.starts_with("web/")) {
        if code.contains("json!(") {
            problems.push(format!(
                "{f} builds a response with json!: every route answers a typed response struct"
            ));
        }
    }
    let deps = dependencies(&files);
    if let Some(d) = deps.get("config.rs").filter(|d| !d.is_empty()) {
        problems.push(format!("config.rs must be a leaf; it imports {d:?}"));
    }
    for cycle in cycles(&deps) {
        let allowed = cycle
            .iter()
            .all(|f| f == DISPATCH || GRAMMARS.contains(&f.as_str()));
        if !allowed {
            problems.push(format!("import circle: {cycle:?}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("agent/src layout:\n  {}", problems.join("\n  "))
    }
}

/// Every .rs file under `src`, by path relative to it, without its test module.
fn read_tree(src: &Path) -> Result<BTreeMap<String, String>> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, String>) -> Result<()> {
        for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let p = e?.path();
            if p.is_dir() {
                walk(&p, base, out)?;
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("reading {}", p.display()))?;
                let rel = p.strip_prefix(base)?.to_string_lossy().into_owned();
                let code = match text.find("#[cfg(test)]\nmod tests") {
                    Some(i) => text[..i].to_string(),
                    None => text,
                };
                out.insert(rel, code);
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(src, src, &mut out)?;
    Ok(out)
}

/// A file's module path: `sensors/mod.rs` -> [sensors], `sensors/file.rs` -> [sensors, file].
fn module_of(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_string)
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// `a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e] (whitespace already removed).
fn expand(path: &str) -> Vec<String> {
    let Some(open) = path.find('{') else {
        return vec![path.to_string()];
    };
    let (prefix, inner) = (&path[..open], &path[open + 1..path.len().saturating_sub(1)]);
    let mut parts = Vec::new();
    let (mut depth, mut cur) = (0, String::new());
    for ch in inner.chars() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    parts.push(cur);
    let mut out = Vec::new();
    for p in parts.iter().filter(|p| !p.is_empty()) {
        if p == "self" {
            out.push(prefix.trim_end_matches("::").to_string());
        } else {
            out.extend(expand(p).into_iter().map(|x| format!("{prefix}{x}")));
        }
    }
    out
}

/// The paths named by `use` items (including `pub use`) and by inline
/// `crate::`/`super::` paths in `code`.
fn paths_in(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().last();
        let after = &rest[i + 4..];
        rest = after;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let Some(end) = after.find(';') else { break };
        let item: String = after[..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if item.starts_with(|c: char| c.is_alphabetic() || c == '{') {
            for p in expand(&item) {
                out.push(p.split(" as ").next().unwrap_or(&p).to_string());
            }
        }
    }
    for anchor in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(anchor) {
            let start = from + i;
            let tail = &code[start..];
            let len = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            let p = tail[..len].trim_end_matches(':');
            // A group (`crate::a::{..}`) is counted by its `use` item.
            if !tail[len..].starts_with('{') && !code[..start].ends_with("::") {
                out.push(p.to_string());
            }
            from = start + len.max(1);
        }
    }
    out
}

/// `pub use` re-exports of a module file: item -> the path it comes from.
fn reexports(code: &str) -> HashMap<String, Vec<String>> {
    let mut out = HashMap::new();
    let mut rest = code;
    while let Some(i) = rest.find("pub use ") {
        let after = &rest[i + 8..];
        rest = after;
        let Some(end) = after.find(';') else { break };
        let item: String = after[..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        for p in expand(&item) {
            let segs: Vec<String> = p.split("::").map(str::to_string).collect();
            if let Some((last, path)) = segs.split_last() {
                out.insert(last.clone(), path.to_vec());
            }
        }
    }
    out
}

fn resolve(
    modules: &BTreeMap<Vec<String>, String>,
    files: &BTreeMap<String, String>,
    current: &[String],
    segs: &[String],
    depth: u32,
) -> Option<String> {
    let (mut base, mut segs) = (current.to_vec(), segs);
    match segs.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            segs = &segs[1..];
        }
        Some("super") => {
            while segs.first().is_some_and(|s| s == "super") {
                base.pop();
                segs = &segs[1..];
            }
        }
        Some("self") => segs = &segs[1..],
        Some(first) => {
            let mut child = base.clone();
            child.push(first.to_string());
            if !modules.contains_key(&child) {
                return None; // another crate
            }
        }
        None => return None,
    }
    let mut path = base;
    let mut i = 0;
    while i < segs.len() {
        let mut next = path.clone();
        next.push(segs[i].clone());
        if !modules.contains_key(&next) {
            break;
        }
        path = next;
        i += 1;
    }
    let file = modules.get(&path)?.clone();
    if i < segs.len() && depth < 8 {
        if let Some(from) = reexports(&files[&file]).get(&segs[i]) {
            if !from.is_empty() {
                let mut full = from.clone();
                full.push(segs[i].clone());
                if let Some(f) = resolve(modules, files, &path, &full, depth + 1) {
                    return Some(f);
                }
            }
        }
    }
    Some(file)
}

/// file -> the files it imports from.
fn dependencies(files: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeMap<Vec<String>, String> = files
        .keys()
        .filter(|f| f.as_str() != "main.rs")
        .map(|f| (module_of(f), f.clone()))
        .collect();
    let mut deps = BTreeMap::new();
    for (file, code) in files.iter().filter(|(f, _)| f.as_str() != "main.rs") {
        let current = module_of(file);
        let mut d = BTreeSet::new();
        for p in paths_in(code) {
            let segs: Vec<String> = p
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if let Some(f) = resolve(&modules, files, &current, &segs, 0) {
                if &f != file {
                    d.insert(f);
                }
            }
        }
        deps.insert(file.clone(), d);
    }
    deps
}

/// Strongly connected components with more than one file (Tarjan).
fn cycles(deps: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        deps: &'a BTreeMap<String, BTreeSet<String>>,
        index: HashMap<&'a str, usize>,
        low: HashMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        let deps = t.deps;
        for w in deps.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(lw));
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(iw));
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        deps,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in deps.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> BTreeMap<String, String> {
        files
            .iter()
            .map(|(f, c)| (f.to_string(), c.to_string()))
            .collect()
    }

    #[test]
    fn the_agent_keeps_its_layout() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/src");
        if let Err(e) = check(&src) {
            panic!("{e:#}");
        }
    }

    #[test]
    fn a_circle_through_a_reexport_is_found() {
        let files = tree(&[
            ("lib.rs", "pub mod a;\npub mod b;"),
            (
                "a/mod.rs",
                "pub mod x;\npub use x::Thing;\nuse crate::b::Other;",
            ),
            ("a/x.rs", "pub struct Thing;"),
            ("b.rs", "use crate::a::Thing;\npub struct Other;"),
        ]);
        let deps = dependencies(&files);
        assert_eq!(
            deps["b.rs"],
            ["a/x.rs".to_string()].into_iter().collect(),
            "a re-export resolves to the file that defines the item"
        );
        assert!(cycles(&deps).is_empty());
        let mut files = files;
        files.insert(
            "a/x.rs".into(),
            "use super::super::b::Other;\npub struct Thing;".into(),
        );
        let found = cycles(&dependencies(&files));
        assert_eq!(found, vec![vec!["a/x.rs".to_string(), "b.rs".to_string()]]);
    }

    #[test]
    fn groups_and_inline_paths_are_read() {
        assert_eq!(
            expand("crate::{a::{b,c},d,self}"),
            ["crate::a::b", "crate::a::c", "crate::d", "crate"]
        );
        let p = paths_in("use super::{x::Y, z};\nfn f() { crate::q::r(); let _ = reuse; }");
        assert!(p.contains(&"super::x::Y".to_string()), "{p:?}");
        assert!(p.contains(&"super::z".to_string()), "{p:?}");
        assert!(p.contains(&"crate::q::r".to_string()), "{p:?}");
    }
}
