// SPDX-License-Identifier: GPL-2.0-only
//! The signature engine: YAML rules (literals, regexes, exclusions, min matches) and
//! YARA-X rules, compiled together into one immutable [`RuleSet`].
//!
//! A rule set is built from the rules embedded in the binary (`agent/rules/`) and the
//! files in `detection.rules_dir` (`*.yml`/`*.yaml`, `*.yar`/`*.yara`). Building either
//! succeeds as a whole or fails with every error and its file and line: a reload that
//! fails leaves the previous set active.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use api::model::Severity;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::phpfold;

/// Extensions PHP runs (the builtin rules' `file_types`): files folded for matching.
pub const PHP_EXTENSIONS: &[&str] = &[
    "php", "phtml", "php3", "php4", "php5", "php7", "phar", "inc",
];

/// The rules that ship with Rampart, always loaded unless `detection.builtin_rules` is off.
pub const BUILTIN_YAML: &str = include_str!("../../rules/rampart.yml");
pub const BUILTIN_YARA: &str = include_str!("../../rules/rampart.yar");
const BUILTIN_YAML_NAME: &str = "<builtin>/rampart.yml";
const BUILTIN_YARA_NAME: &str = "<builtin>/rampart.yar";

/// The external variables public webshell rule sets (LOKI/THOR style) expect. They are
/// defined for every YARA-X rule and set per scanned file.
pub const YARA_EXTERNALS: &[&str] = &["filename", "filepath", "extension", "filetype", "owner"];

/// One problem in one rule file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RuleError {
    pub file: String,
    /// 1-based; 0 when the error has no position (an unreadable file).
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(f, "{}: {}", self.file, self.message)
        }
    }
}

/// Every error found while building a rule set.
#[derive(Debug, thiserror::Error)]
#[error("{} rule error(s): {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct RuleErrors(pub Vec<RuleError>);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    Yaml,
    Yara,
}

/// A YAML rule file: `rules: [...]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlFile {
    rules: Vec<YamlRuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlRuleSpec {
    name: String,
    severity: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    description: String,
    /// Extensions ("php") or whole file names (".htaccess"); empty = every file.
    #[serde(default)]
    file_types: Vec<String>,
    /// Literal byte strings.
    #[serde(default)]
    patterns: Vec<String>,
    /// Regular expressions (Rust `regex` syntax, over bytes).
    #[serde(default)]
    regexes: Vec<String>,
    /// Literals or regexes are matched ASCII-case-insensitively.
    #[serde(default)]
    nocase: bool,
    /// Distinct patterns + regexes that must match (default 1).
    #[serde(default)]
    min_matches: Option<usize>,
    /// Content that, when present, means "not this rule" (literals).
    #[serde(default)]
    exclude_patterns: Vec<String>,
    /// Paths (globs) the rule never matches.
    #[serde(default)]
    exclude_paths: Vec<String>,
    /// Files bigger than this are not checked by this rule.
    #[serde(default)]
    max_file_size: Option<u64>,
    /// Quarantine a match without asking (only rules marked so).
    #[serde(default)]
    auto_quarantine: bool,
    /// Match only in the folded view of PHP files (see `phpfold`), where a
    /// double-quoted string is one the folder computed.
    #[serde(default)]
    folded: bool,
}

/// Metadata of one compiled rule, YAML or YARA (for `/rules/list` and findings).
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct RuleInfo {
    pub name: String,
    pub kind: RuleKind,
    pub file: String,
    pub severity: Severity,
    pub category: String,
    pub description: String,
    pub auto_quarantine: bool,
}

struct YamlRule {
    info: usize,
    file_types: Vec<String>,
    /// Indices of the rule's literals in the case-sensitive / -insensitive automaton.
    literal_count: usize,
    regexes: Vec<regex::bytes::Regex>,
    min_matches: usize,
    exclude_paths: Option<globset::GlobSet>,
    exclude_literals: usize,
    max_file_size: Option<u64>,
    /// Only in the folded view of PHP files.
    folded: bool,
}

/// Which rule a literal in an automaton belongs to, and whether it is an exclusion.
#[derive(Clone, Copy)]
struct LiteralOwner {
    rule: usize,
    /// Index among the rule's literals (to count distinct ones).
    index: usize,
    exclude: bool,
}

#[derive(Default)]
struct LiteralSet {
    patterns: Vec<Vec<u8>>,
    owners: Vec<LiteralOwner>,
}

impl LiteralSet {
    fn build(self, nocase: bool) -> Result<Option<(AhoCorasick, Vec<LiteralOwner>)>, String> {
        if self.patterns.is_empty() {
            return Ok(None);
        }
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(nocase)
            .match_kind(MatchKind::Standard)
            .build(&self.patterns)
            .map_err(|e| e.to_string())?;
        Ok(Some((ac, self.owners)))
    }
}

/// A file a rule set was built from.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct RuleFile {
    pub file: String,
    pub kind: RuleKind,
    pub rules: usize,
    pub sha256: String,
    /// The source's length in bytes.
    pub size: usize,
}

/// One rule that matched one file.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct RuleMatch {
    pub rule: String,
    pub kind: RuleKind,
    pub file: String,
    pub severity: Severity,
    pub category: String,
    pub description: String,
    /// Byte offset of the first matching pattern (0 for a YARA condition-only rule).
    pub offset: u64,
    /// The pattern that matched first (a literal, a regex or a YARA identifier).
    pub pattern: String,
    pub auto_quarantine: bool,
}

/// What the scanner knows of the file besides its bytes.
#[derive(Clone, Debug)]
pub struct Target<'a> {
    pub path: &'a Path,
    /// The file's size on disk (the scanned bytes may be a prefix).
    pub size: u64,
    /// Owner's user name, or the uid as a string.
    pub owner: String,
}

impl Target<'_> {
    /// The base name, as it is.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The extension, lower case, without the dot ("" when none).
    pub fn extension(&self) -> String {
        self.path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default()
    }
}

/// An immutable, compiled rule set.
pub struct RuleSet {
    infos: Vec<RuleInfo>,
    yaml: Vec<YamlRule>,
    /// Literal patterns as given.
    literal_text: Vec<Vec<String>>,
    regex_text: Vec<Vec<String>>,
    cs: Option<(AhoCorasick, Vec<LiteralOwner>)>,
    ci: Option<(AhoCorasick, Vec<LiteralOwner>)>,
    yara: Option<yara_x::Rules>,
    /// Map from YARA "namespace:identifier" to its info index.
    yara_index: HashMap<String, usize>,
    pub files: Vec<RuleFile>,
    /// SHA-256 over every source, in load order.
    pub version: String,
    pub loaded_at: String,
    /// Files in the rules directory that were not rule files (reported, not loaded).
    pub ignored: Vec<String>,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.infos.len())
            .field("version", &self.version)
            .finish()
    }
}

/// A rule source to compile: its name (path or `<builtin>/...`) and text.
#[derive(Clone)]
pub struct Source {
    pub name: String,
    pub kind: RuleKind,
    pub text: String,
}

/// The sources of a rule set: the builtin ones (if enabled), then the rules directory
/// in name order. A missing directory is not an error (only the builtin rules load);
/// an unreadable file is.
pub fn sources(
    dir: Option<&Path>,
    builtin: bool,
) -> Result<(Vec<Source>, Vec<String>), RuleErrors> {
    sources_of(dir.into_iter().collect::<Vec<_>>().as_slice(), builtin)
}

/// [`sources`] of several directories, in order (the rules directory, then the rule
/// packs).
pub fn sources_of(dirs: &[&Path], builtin: bool) -> Result<(Vec<Source>, Vec<String>), RuleErrors> {
    let mut out = Vec::new();
    let mut ignored = Vec::new();
    if builtin {
        out.push(Source {
            name: BUILTIN_YAML_NAME.into(),
            kind: RuleKind::Yaml,
            text: BUILTIN_YAML.into(),
        });
        out.push(Source {
            name: BUILTIN_YARA_NAME.into(),
            kind: RuleKind::Yara,
            text: BUILTIN_YARA.into(),
        });
    }
    let mut errors = Vec::new();
    for dir in dirs {
        read_dir_sources(dir, &mut out, &mut ignored, &mut errors);
    }
    if errors.is_empty() {
        Ok((out, ignored))
    } else {
        Err(RuleErrors(errors))
    }
}

/// The rule files of one directory, in name order, into `out` (and what else is there
/// into `ignored`, what cannot be read into `errors`).
fn read_dir_sources(
    dir: &Path,
    out: &mut Vec<Source>,
    ignored: &mut Vec<String>,
    errors: &mut Vec<RuleError>,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            errors.push(RuleError {
                file: dir.display().to_string(),
                line: 0,
                message: format!("cannot read the rules directory: {e}"),
            });
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let kind = match p.extension().and_then(|e| e.to_str()) {
            Some("yml" | "yaml") => RuleKind::Yaml,
            Some("yar" | "yara") => RuleKind::Yara,
            _ => {
                if p.is_file() {
                    ignored.push(p.display().to_string());
                }
                continue;
            }
        };
        match std::fs::read(&p) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => out.push(Source {
                    name: p.display().to_string(),
                    kind,
                    text,
                }),
                Err(e) => errors.push(RuleError {
                    file: p.display().to_string(),
                    line: 0,
                    message: format!("not UTF-8: {e}"),
                }),
            },
            Err(e) => errors.push(RuleError {
                file: p.display().to_string(),
                line: 0,
                message: format!("cannot read: {e}"),
            }),
        }
    }
}

/// Load and compile the rules of `dir` (plus the builtin ones).
pub fn load(dir: Option<&Path>, builtin: bool) -> Result<RuleSet, RuleErrors> {
    load_cached(dir, builtin, None)
}

/// [`load`], reusing the YARA rules compiled from the same sources by an earlier
/// run where `cache` (a directory of ours) holds them: YARA-X compiles hundreds of
/// rules in seconds and deserializes them in milliseconds.
pub fn load_cached(
    dir: Option<&Path>,
    builtin: bool,
    cache: Option<&Path>,
) -> Result<RuleSet, RuleErrors> {
    load_dirs(
        dir.into_iter().collect::<Vec<_>>().as_slice(),
        builtin,
        cache,
    )
}

/// [`load_cached`] from several directories (the rules directory, then the packs').
pub fn load_dirs(
    dirs: &[&Path],
    builtin: bool,
    cache: Option<&Path>,
) -> Result<RuleSet, RuleErrors> {
    let (sources, ignored) = sources_of(dirs, builtin)?;
    let mut set = compile_cached(sources, cache)?;
    set.ignored = ignored;
    Ok(set)
}

/// Compiled YARA rules kept between runs, keyed by everything the compilation
/// depends on. Only a directory owned by this user and writable by no one else is
/// used (deserialized rules are trusted code), and any failure falls back to
/// compiling.
struct YaraCache<'a> {
    dir: &'a Path,
    key: String,
}

impl<'a> YaraCache<'a> {
    fn new(dir: &'a Path, sources: &[Source]) -> Option<Self> {
        use std::os::unix::fs::DirBuilderExt;
        use std::os::unix::fs::MetadataExt;
        if let Err(e) = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
        {
            tracing::debug!(dir = %dir.display(), error = %e, "Compiled-rules cache unusable; compiling.");
            return None;
        }
        let meta = std::fs::symlink_metadata(dir).ok()?;
        // SAFETY: geteuid has no preconditions.
        if meta.uid() != unsafe { libc::geteuid() } || meta.mode() & 0o022 != 0 {
            return None;
        }
        let mut h = Sha256::new();
        h.update(env!("CARGO_PKG_VERSION").as_bytes());
        for ext in YARA_EXTERNALS {
            h.update(ext.as_bytes());
            h.update([0]);
        }
        for s in sources.iter().filter(|s| s.kind == RuleKind::Yara) {
            h.update(s.name.as_bytes());
            h.update([0]);
            h.update(s.text.as_bytes());
            h.update([0]);
        }
        Some(Self {
            dir,
            key: hex::encode(h.finalize()),
        })
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.join(format!("yara-{}.bin", self.key))
    }

    fn get(&self) -> Option<yara_x::Rules> {
        let bytes = std::fs::read(self.path()).ok()?;
        match yara_x::Rules::deserialize(bytes) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(path = %self.path().display(), error = %e, "Cached compiled rules unreadable; compiling.");
                None
            }
        }
    }

    /// Keep `rules` for the next run (replacing the files of other sources).
    fn put(&self, rules: &yara_x::Rules) {
        let bytes = match rules.serialize() {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "Compiled rules not serializable; not cached.");
                return;
            }
        };
        if let Ok(entries) = std::fs::read_dir(self.dir) {
            for e in entries.flatten() {
                let n = e.file_name();
                let n = n.to_string_lossy();
                if n.starts_with("yara-") && n.ends_with(".bin") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        if let Err(e) = crate::config::replace_file(&self.path(), &bytes, 0o600) {
            tracing::warn!(path = %self.path().display(), error = %e, "Compiled rules not cached.");
        }
    }
}

/// Line of the `i`-th rule entry (`- name:` or `- ` at the rules list's indentation)
/// of a YAML rule file, for errors found after parsing.
fn yaml_rule_lines(text: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    let mut indent: Option<usize> = None;
    for (n, l) in text.lines().enumerate() {
        let trimmed = l.trim_start();
        if !trimmed.starts_with("- ") && trimmed != "-" {
            continue;
        }
        let ind = l.len() - trimmed.len();
        match indent {
            None => {
                indent = Some(ind);
                lines.push(n + 1);
            }
            Some(i) if i == ind => lines.push(n + 1),
            _ => {}
        }
    }
    lines
}

/// Line of the first occurrence of `needle` at or after line `from` (1-based).
fn find_line(text: &str, from: usize, needle: &str) -> usize {
    for (n, l) in text.lines().enumerate().skip(from.saturating_sub(1)) {
        if l.contains(needle) {
            return n + 1;
        }
    }
    from
}

fn parse_severity(s: &str) -> Option<Severity> {
    match s.to_ascii_lowercase().as_str() {
        "critical" => Some(Severity::Critical),
        "high" => Some(Severity::High),
        "warning" | "medium" => Some(Severity::Warning),
        "info" | "low" => Some(Severity::Info),
        _ => None,
    }
}

/// Where a YARA-X compile error points: the `--> file:line:col` of its report.
fn yara_error_line(report: &str) -> usize {
    report
        .lines()
        .find_map(|l| {
            let rest = l.trim_start().strip_prefix("--> ")?;
            let mut parts = rest.rsplitn(3, ':');
            let _col = parts.next()?;
            parts.next()?.trim().parse().ok()
        })
        .unwrap_or(0)
}

/// Compile sources into a rule set; all or nothing.
pub fn compile(sources: Vec<Source>) -> Result<RuleSet, RuleErrors> {
    compile_cached(sources, None)
}

/// [`compile`], with the YARA rules from `cache` when it holds these sources'.
fn compile_cached(sources: Vec<Source>, cache: Option<&Path>) -> Result<RuleSet, RuleErrors> {
    let started = std::time::Instant::now();
    let cache = cache.and_then(|d| YaraCache::new(d, &sources));
    let cached = cache.as_ref().and_then(YaraCache::get);
    let cache_hit = cached.is_some();
    // Reading the cache (deserializing the YARA rules) is YARA's time, not YAML's.
    let cache_ms = started.elapsed().as_millis();
    let yaml_started = std::time::Instant::now();
    let mut errors = Vec::new();
    let mut infos: Vec<RuleInfo> = Vec::new();
    let mut yaml = Vec::new();
    let mut literal_text = Vec::new();
    let mut regex_text = Vec::new();
    let (mut cs, mut ci) = (LiteralSet::default(), LiteralSet::default());
    let mut files = Vec::new();
    let mut hasher = Sha256::new();
    let mut names: HashMap<String, String> = HashMap::new();

    let mut compiler = yara_x::Compiler::new();
    compiler.colorize_errors(false);
    for ext in YARA_EXTERNALS {
        if let Err(e) = compiler.define_global(ext, "") {
            errors.push(RuleError {
                file: "<yara>".into(),
                line: 0,
                message: format!("defining external {ext}: {e}"),
            });
        }
    }
    let mut yara_rules = 0usize;
    let mut yara_files: Vec<(usize, String)> = Vec::new();

    for src in &sources {
        hasher.update(src.name.as_bytes());
        hasher.update([0]);
        hasher.update(src.text.as_bytes());
        hasher.update([0]);
        let sha = hex::encode(Sha256::digest(src.text.as_bytes()));
        match src.kind {
            RuleKind::Yaml => {
                let before = infos.len();
                let parsed: Result<YamlFile, _> = serde_yaml_ng::from_str(&src.text);
                let file = match parsed {
                    Ok(f) => f,
                    Err(e) => {
                        errors.push(RuleError {
                            file: src.name.clone(),
                            line: e.location().map(|l| l.line()).unwrap_or(0),
                            message: e.to_string(),
                        });
                        continue;
                    }
                };
                let lines = yaml_rule_lines(&src.text);
                for (i, spec) in file.rules.into_iter().enumerate() {
                    let line = lines.get(i).copied().unwrap_or(0);
                    let err = |message: String, at: usize| RuleError {
                        file: src.name.clone(),
                        line: at,
                        message,
                    };
                    match yaml_rule(spec, infos.len(), &mut cs, &mut ci) {
                        Ok((info, rule, lits, res)) => {
                            if let Some(prev) = names.get(&info.name) {
                                errors.push(err(
                                    format!("rule {:?} is already defined in {prev}", info.name),
                                    line,
                                ));
                                continue;
                            }
                            names.insert(info.name.clone(), src.name.clone());
                            infos.push(RuleInfo {
                                file: src.name.clone(),
                                ..info
                            });
                            yaml.push(rule);
                            literal_text.push(lits);
                            regex_text.push(res);
                        }
                        Err((message, needle)) => {
                            let at = needle
                                .map(|n| find_line(&src.text, line, &n))
                                .unwrap_or(line);
                            errors.push(err(message, at));
                        }
                    }
                }
                files.push(RuleFile {
                    file: src.name.clone(),
                    kind: RuleKind::Yaml,
                    rules: infos.len() - before,
                    sha256: sha,
                    size: src.text.len(),
                });
            }
            RuleKind::Yara => {
                let code =
                    yara_x::SourceCode::from(src.text.as_str()).with_origin(src.name.as_str());
                // Cached rules were built from exactly these sources, without errors.
                let added = match cached {
                    Some(_) => Ok(()),
                    None => compiler.add_source(code).map(|_| ()),
                };
                if let Err(e) = added {
                    let report = e.to_string();
                    errors.push(RuleError {
                        file: src.name.clone(),
                        line: yara_error_line(&report),
                        message: report.lines().next().unwrap_or("").to_string(),
                    });
                    continue;
                }
                yara_files.push((files.len(), src.name.clone()));
                files.push(RuleFile {
                    file: src.name.clone(),
                    kind: RuleKind::Yara,
                    rules: 0,
                    sha256: sha,
                    size: src.text.len(),
                });
            }
        }
    }

    let cs = cs.build(false).map_err(|e| {
        RuleErrors(vec![RuleError {
            file: "<literals>".into(),
            line: 0,
            message: e,
        }])
    });
    let ci = ci.build(true).map_err(|e| {
        RuleErrors(vec![RuleError {
            file: "<literals>".into(),
            line: 0,
            message: e,
        }])
    });
    if !errors.is_empty() {
        return Err(RuleErrors(errors));
    }
    let (cs, ci) = (cs?, ci?);

    let yaml_ms = yaml_started.elapsed().as_millis();
    let mut yara_index = HashMap::new();
    let yara = if yara_files.is_empty() {
        None
    } else {
        let rules = match cached {
            Some(r) => r,
            None => {
                let r = compiler.build();
                if let Some(c) = &cache {
                    c.put(&r);
                }
                r
            }
        };
        for r in rules.iter() {
            let meta = |key: &str| r.metadata().find(|(k, _)| *k == key).map(|(_, v)| v);
            let text = |key: &str| match meta(key) {
                Some(yara_x::MetaValue::String(s)) => s.to_string(),
                _ => String::new(),
            };
            let severity = parse_severity(&text("severity")).unwrap_or(Severity::High);
            let auto = matches!(meta("auto_quarantine"), Some(yara_x::MetaValue::Bool(true)));
            let ns = r.namespace().to_string();
            let name = r.identifier().to_string();
            // Which file: YARA-X does not say per rule; namespaces are per compiler
            // (one here), so record the first YARA file holding the identifier.
            let file = yara_files
                .iter()
                .find(|(_, f)| {
                    sources
                        .iter()
                        .any(|s| &s.name == f && s.text.contains(&format!("rule {name}")))
                })
                .map(|(i, f)| {
                    files[*i].rules += 1;
                    f.clone()
                })
                .unwrap_or_else(|| "<yara>".into());
            if let Some(prev) = names.get(&name) {
                errors.push(RuleError {
                    file: file.clone(),
                    line: 0,
                    message: format!("rule {name:?} is already defined in {prev}"),
                });
                continue;
            }
            names.insert(name.clone(), file.clone());
            yara_index.insert(format!("{ns}:{name}"), infos.len());
            let description = text("description");
            let category = text("category");
            infos.push(RuleInfo {
                name,
                kind: RuleKind::Yara,
                file,
                severity,
                category,
                description,
                auto_quarantine: auto,
            });
            yara_rules += 1;
        }
        Some(rules)
    };
    if !errors.is_empty() {
        return Err(RuleErrors(errors));
    }
    tracing::debug!(
        yaml = yaml.len(),
        yara = yara_rules,
        cache_hit,
        cache_ms,
        yaml_ms,
        total_ms = started.elapsed().as_millis(),
        "Rule set compiled."
    );
    Ok(RuleSet {
        infos,
        yaml,
        literal_text,
        regex_text,
        cs,
        ci,
        yara,
        yara_index,
        files,
        version: hex::encode(hasher.finalize())[..16].to_string(),
        loaded_at: crate::store::now_rfc3339(),
        ignored: Vec::new(),
    })
}

type YamlBuilt = (RuleInfo, YamlRule, Vec<String>, Vec<String>);

/// Check and compile one YAML rule. An error says what is wrong and a text to find
/// its line by.
fn yaml_rule(
    spec: YamlRuleSpec,
    index: usize,
    cs: &mut LiteralSet,
    ci: &mut LiteralSet,
) -> Result<YamlBuilt, (String, Option<String>)> {
    let name = spec.name.trim().to_string();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err((
            format!(
                "rule name {:?} must be letters, digits, '_', '-' or '.'",
                spec.name
            ),
            Some(spec.name.clone()),
        ));
    }
    let severity = parse_severity(&spec.severity).ok_or_else(|| {
        (
            format!(
                "rule {name}: severity {:?} is not critical, high, warning or info",
                spec.severity
            ),
            Some("severity".to_string()),
        )
    })?;
    let total = spec.patterns.len() + spec.regexes.len();
    if total == 0 {
        return Err((
            format!("rule {name}: needs at least one of patterns or regexes"),
            None,
        ));
    }
    let min_matches = spec.min_matches.unwrap_or(1);
    if min_matches == 0 || min_matches > total {
        return Err((
            format!("rule {name}: min_matches {min_matches} must be 1..={total} (its patterns + regexes)"),
            Some("min_matches".to_string()),
        ));
    }
    for p in spec.patterns.iter().chain(&spec.exclude_patterns) {
        if p.is_empty() {
            return Err((format!("rule {name}: empty pattern"), None));
        }
    }
    let mut regexes = Vec::new();
    for r in &spec.regexes {
        // Byte semantics first (\w, \s, \b, `.` and classes over ASCII and any byte):
        // files are bytes, a class like [^"'] then also spans invalid UTF-8 that a
        // shell may put in its way, and the compiled automata are a fraction of the
        // Unicode ones (the builtin set: 0.8 s and 119 MB to load in a debug build,
        // 0.23 s and 67 MB this way). A pattern that needs Unicode (\p{L}, a
        // non-ASCII character in a class) is compiled with it.
        let build = |unicode: bool| {
            regex::bytes::RegexBuilder::new(r)
                .case_insensitive(spec.nocase)
                .unicode(unicode)
                .size_limit(8 << 20)
                .build()
        };
        let re = build(false)
            .or_else(|_| build(true))
            .map_err(|e| (format!("rule {name}: regex {r:?}: {e}"), Some(r.clone())))?;
        regexes.push(re);
    }
    let exclude_paths = if spec.exclude_paths.is_empty() {
        None
    } else {
        let mut b = globset::GlobSetBuilder::new();
        for g in &spec.exclude_paths {
            b.add(globset::Glob::new(g).map_err(|e| {
                (
                    format!("rule {name}: exclude_paths {g:?}: {e}"),
                    Some(g.clone()),
                )
            })?);
        }
        Some(
            b.build()
                .map_err(|e| (format!("rule {name}: exclude_paths: {e}"), None))?,
        )
    };
    let set = if spec.nocase { ci } else { cs };
    for (i, p) in spec.patterns.iter().enumerate() {
        set.patterns.push(p.as_bytes().to_vec());
        set.owners.push(LiteralOwner {
            rule: index,
            index: i,
            exclude: false,
        });
    }
    for (i, p) in spec.exclude_patterns.iter().enumerate() {
        set.patterns.push(p.as_bytes().to_vec());
        set.owners.push(LiteralOwner {
            rule: index,
            index: i,
            exclude: true,
        });
    }
    let file_types: Vec<String> = spec
        .file_types
        .iter()
        .map(|t| t.trim_start_matches("*.").to_ascii_lowercase())
        .collect();
    if spec.folded
        && (file_types.is_empty()
            || file_types
                .iter()
                .any(|t| !PHP_EXTENSIONS.contains(&t.as_str())))
    {
        return Err((
            format!(
                "rule {name}: folded rules see PHP only: file_types must be some of {PHP_EXTENSIONS:?}"
            ),
            Some("folded".to_string()),
        ));
    }
    Ok((
        RuleInfo {
            name,
            kind: RuleKind::Yaml,
            file: String::new(),
            severity,
            category: spec.category,
            description: spec.description,
            auto_quarantine: spec.auto_quarantine,
        },
        YamlRule {
            info: index,
            file_types,
            literal_count: spec.patterns.len(),
            regexes,
            min_matches,
            exclude_paths,
            exclude_literals: spec.exclude_patterns.len(),
            max_file_size: spec.max_file_size,
            folded: spec.folded,
        },
        spec.patterns,
        spec.regexes,
    ))
}

/// A file type for the `filetype` external: by magic, else by extension.
pub fn file_type(path: &Path, data: &[u8]) -> String {
    if data.starts_with(b"\x7fELF") {
        return "ELF".into();
    }
    if data.starts_with(b"MZ") {
        return "EXE".into();
    }
    if data.starts_with(b"#!") {
        return "SCRIPT".into();
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) => {
            let e = e.to_ascii_lowercase();
            match e.as_str() {
                "php" | "phtml" | "php3" | "php4" | "php5" | "php7" | "phar" | "inc" => {
                    "PHP".into()
                }
                "asp" | "aspx" => "ASP".into(),
                "jsp" => "JSP".into(),
                "pl" | "cgi" => "PERL".into(),
                "py" => "PYTHON".into(),
                "sh" => "SHELL".into(),
                _ => e.to_ascii_uppercase(),
            }
        }
        None if data
            .windows(5)
            .take(1024)
            .any(|w| w.eq_ignore_ascii_case(b"<?php")) =>
        {
            "PHP".into()
        }
        None => String::new(),
    }
}

impl RuleSet {
    pub fn rules(&self) -> &[RuleInfo] {
        &self.infos
    }

    pub fn count(&self, kind: RuleKind) -> usize {
        self.infos.iter().filter(|i| i.kind == kind).count()
    }

    pub fn yara(&self) -> Option<&yara_x::Rules> {
        self.yara.as_ref()
    }

    /// A YARA-X scanner for this set, with the externals defined and a timeout.
    pub fn scanner(&self) -> Option<yara_x::Scanner<'_>> {
        let mut s = yara_x::Scanner::new(self.yara.as_ref()?);
        s.set_timeout(std::time::Duration::from_secs(10));
        s.max_matches_per_pattern(10_000);
        Some(s)
    }

    fn info_match(&self, info: usize, offset: u64, pattern: String) -> RuleMatch {
        let i = &self.infos[info];
        RuleMatch {
            rule: i.name.clone(),
            kind: i.kind,
            file: i.file.clone(),
            severity: i.severity,
            category: i.category.clone(),
            description: i.description.clone(),
            offset,
            pattern,
            auto_quarantine: i.auto_quarantine,
        }
    }

    /// Match the YAML rules against `data`. A PHP file is also matched in its folded
    /// view (literals joined and decoded, request input respelled: [`phpfold`]), so
    /// that a rule written against `system($_GET[...])` also finds
    /// `('sy'.'stem')(filter_input(INPUT_GET, ...))`; a rule that matches only there
    /// says so in its pattern.
    pub fn scan_yaml(&self, target: &Target<'_>, data: &[u8]) -> Vec<RuleMatch> {
        let mut found = self.match_yaml(target, data, &[], false);
        // Folding costs about as much as matching: only for PHP, and only when there
        // are YAML rules to read the view (a YARA-only set never does).
        if !self.yaml.is_empty() && PHP_EXTENSIONS.contains(&target.extension().as_str()) {
            if let Some(view) = phpfold::fold(data) {
                let seen: Vec<usize> = found.iter().map(|(ri, _, _)| *ri).collect();
                for (ri, _, pattern) in self.match_yaml(target, &view, &seen, true) {
                    found.push((ri, 0, format!("{pattern} (in the folded view)")));
                }
            }
        }
        found
            .into_iter()
            .map(|(ri, offset, pattern)| self.info_match(self.yaml[ri].info, offset, pattern))
            .collect()
    }

    /// The YAML rules (but those in `skip`) that match `data`, the file itself or
    /// its folded `view`: the rule, the offset of its first pattern and that pattern.
    fn match_yaml(
        &self,
        target: &Target<'_>,
        data: &[u8],
        skip: &[usize],
        view: bool,
    ) -> Vec<(usize, u64, String)> {
        let n = self.yaml.len();
        if n == 0 {
            return Vec::new();
        }
        // Per rule: first offset of each literal, and whether an exclusion was seen.
        let mut first: Vec<Vec<Option<u64>>> = self
            .yaml
            .iter()
            .map(|r| vec![None; r.literal_count])
            .collect();
        let mut excluded = vec![false; n];
        for (ac, owners) in [&self.cs, &self.ci].into_iter().flatten() {
            for m in ac.find_overlapping_iter(data) {
                let o = owners[m.pattern().as_usize()];
                if o.exclude {
                    excluded[o.rule] = true;
                } else if first[o.rule][o.index].is_none() {
                    first[o.rule][o.index] = Some(m.start() as u64);
                }
            }
        }
        let path_str = target.path.to_string_lossy();
        let fname = target.file_name().to_ascii_lowercase();
        let ext = target.extension();
        let mut out = Vec::new();
        for (ri, rule) in self.yaml.iter().enumerate() {
            if skip.contains(&ri)
                || (rule.folded && !view)
                || (excluded[ri] && rule.exclude_literals > 0)
            {
                continue;
            }
            if !rule.file_types.is_empty()
                && !rule.file_types.iter().any(|t| *t == ext || *t == fname)
            {
                continue;
            }
            if rule.max_file_size.is_some_and(|m| target.size > m) {
                continue;
            }
            if rule
                .exclude_paths
                .as_ref()
                .is_some_and(|g| g.is_match(path_str.as_ref()))
            {
                continue;
            }
            let mut hits: Vec<(u64, String)> = first[ri]
                .iter()
                .enumerate()
                .filter_map(|(i, o)| o.map(|o| (o, self.literal_text[ri][i].clone())))
                .collect();
            // Regexes run only while they can still lift the count to min_matches
            // (so a rule's cheap regexes, listed first, spare its costly ones).
            let mut left = rule.regexes.len();
            for (i, re) in rule.regexes.iter().enumerate() {
                if hits.len() + left < rule.min_matches {
                    break;
                }
                left -= 1;
                if let Some(m) = re.find(data) {
                    hits.push((m.start() as u64, self.regex_text[ri][i].clone()));
                }
            }
            if hits.len() >= rule.min_matches {
                let (offset, pattern) =
                    hits.into_iter().min_by_key(|(o, _)| *o).unwrap_or_default();
                out.push((ri, offset, pattern));
            }
        }
        out
    }

    /// Match the YARA rules with `scanner` (from [`RuleSet::scanner`]).
    pub fn scan_yara(
        &self,
        scanner: &mut yara_x::Scanner<'_>,
        target: &Target<'_>,
        data: &[u8],
    ) -> Result<Vec<RuleMatch>, String> {
        let path = target.path.to_string_lossy();
        let name = target.file_name();
        let ext = target.extension();
        let ftype = file_type(target.path, data);
        for (k, v) in [
            ("filename", name.as_str()),
            ("filepath", path.as_ref()),
            ("extension", ext.as_str()),
            ("filetype", ftype.as_str()),
            ("owner", target.owner.as_str()),
        ] {
            scanner
                .set_global(k, v)
                .map_err(|e| format!("setting {k}: {e}"))?;
        }
        let results = scanner.scan(data).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for r in results.matching_rules() {
            let key = format!("{}:{}", r.namespace(), r.identifier());
            let Some(&info) = self.yara_index.get(&key) else {
                continue;
            };
            let first = r
                .patterns()
                .flat_map(|p| {
                    let id = p.identifier().to_string();
                    p.matches()
                        .map(move |m| (m.range().start as u64, id.clone()))
                })
                .min_by_key(|(o, _)| *o);
            let (offset, pattern) = first.unwrap_or((0, "condition".into()));
            out.push(self.info_match(info, offset, pattern));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {

    fn yara_src(name: &str, rule: &str) -> Source {
        Source {
            name: name.into(),
            kind: RuleKind::Yara,
            text: format!("rule {rule} {{ strings: $a = \"needle-{rule}\" condition: $a }}"),
        }
    }

    fn rule_names(set: &RuleSet) -> Vec<String> {
        set.infos.iter().map(|i| i.name.clone()).collect()
    }

    #[test]
    fn compiled_yara_rules_are_reused_from_a_private_cache_only() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tmp");
        let cache = tmp.path().join("cache");
        let a = vec![yara_src("a.yar", "from_source")];
        let set = compile_cached(a.clone(), Some(&cache)).expect("compiles");
        assert_eq!(rule_names(&set), ["from_source"]);
        let key = YaraCache::new(&cache, &a).expect("private cache").path();
        assert!(key.exists(), "compiled rules kept");
        let mode = std::fs::metadata(&cache).expect("dir").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);

        // What the cache holds is what loads (proof that it is read, not rebuilt):
        // plant rules from other sources under this key.
        let other = compile(vec![yara_src("b.yar", "from_cache")]).expect("compiles");
        let bytes = other.yara().expect("yara").serialize().expect("serializes");
        std::fs::write(&key, bytes).expect("plant");
        let set = compile_cached(a.clone(), Some(&cache)).expect("loads");
        assert!(set
            .yara()
            .is_some_and(|r| r.iter().any(|r| r.identifier() == "from_cache")));

        // Changed sources: a new key, the old file replaced.
        let c = vec![yara_src("a.yar", "edited")];
        let set = compile_cached(c.clone(), Some(&cache)).expect("compiles");
        assert_eq!(rule_names(&set), ["edited"]);
        assert!(!key.exists(), "stale compiled rules removed");

        // Garbage in the cache is compiled over, a cache others may write is ignored.
        let ckey = YaraCache::new(&cache, &c).expect("cache").path();
        std::fs::write(&ckey, b"not rules").expect("garbage");
        assert_eq!(
            rule_names(&compile_cached(c.clone(), Some(&cache)).expect("compiles")),
            ["edited"]
        );
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(
            YaraCache::new(&cache, &c).is_none(),
            "a world-writable cache is not trusted"
        );
        std::fs::write(&ckey, b"not rules").expect("garbage");
        assert_eq!(
            rule_names(&compile_cached(c, Some(&cache)).expect("compiles")),
            ["edited"]
        );
    }

    use super::*;

    fn yaml(text: &str) -> Source {
        Source {
            name: "t.yml".into(),
            kind: RuleKind::Yaml,
            text: text.into(),
        }
    }
    fn yara(text: &str) -> Source {
        Source {
            name: "t.yar".into(),
            kind: RuleKind::Yara,
            text: text.into(),
        }
    }
    fn target(p: &str) -> Target<'_> {
        Target {
            path: Path::new(p),
            size: 100,
            owner: "www-data".into(),
        }
    }

    const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

    #[test]
    fn builtin_rules_compile_and_catch_the_classics() {
        let set = load(None, true).expect("builtin rules compile");
        assert!(set.count(RuleKind::Yaml) >= 8, "{:?}", set.rules());
        assert!(set.count(RuleKind::Yara) >= 3);
        let mut scanner = set.scanner().expect("yara rules present");
        let mut all = |p: &str, data: &[u8]| {
            let t = target(p);
            let mut m = set.scan_yaml(&t, data);
            m.extend(set.scan_yara(&mut scanner, &t, data).expect("scan"));
            m.into_iter().map(|m| m.rule).collect::<Vec<_>>()
        };
        assert_eq!(all("/w/eicar.com", EICAR), vec!["eicar_test_file"]);
        assert!(all("/w/x.php", b"<?php system($_GET['cmd']); ?>")
            .contains(&"php_exec_request_input".to_string()));
        assert!(all("/w/x.php", b"<?php @eval(base64_decode($_POST['z']));")
            .contains(&"php_eval_decoded".to_string()));
        assert!(all("/w/logo.png", b"\x89PNG....<?php echo 1; ?>")
            .contains(&"php_in_image".to_string()));
        assert!(all("/w/index.php", b"<?php echo 'hello';").is_empty());
        // The same PHP payload as a .txt is not a PHP rule's business.
        assert!(!all("/w/x.txt", b"<?php system($_GET['cmd']); ?>")
            .contains(&"php_exec_request_input".to_string()));
    }

    /// Every match of `set` on `data` as a web user's file at `path`.
    fn scan_as(
        set: &RuleSet,
        scanner: &mut yara_x::Scanner<'_>,
        path: &str,
        data: &[u8],
    ) -> Vec<RuleMatch> {
        let t = Target {
            path: Path::new(path),
            size: data.len() as u64,
            owner: "www-data".into(),
        };
        let mut m = set.scan_yaml(&t, data);
        m.extend(set.scan_yara(scanner, &t, data).expect("scan"));
        m
    }

    /// The webshell samples of tests/fixtures/webshells (see its README): the
    /// builtin rules alone must find at least 90% of them.
    #[test]
    fn builtin_rules_find_the_webshell_families() {
        let set = load(None, true).expect("builtin rules compile");
        let mut scanner = set.scanner().expect("yara rules present");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/webshells");
        let mut missed = Vec::new();
        let mut total = 0;
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .expect("samples")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with(".php.sample"))
            .collect();
        entries.sort();
        for p in entries {
            let data = std::fs::read(&p).expect("sample");
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().replace(".sample", ""));
            let path = format!("/var/www/html/{}", name.unwrap_or_default());
            let m = scan_as(&set, &mut scanner, &path, &data);
            total += 1;
            if m.is_empty() {
                missed.push(path);
            }
        }
        assert!(total >= 25, "samples missing: {total}");
        let found = total - missed.len();
        println!("builtin rules found {found} of {total} webshell samples; missed: {missed:?}");
        assert!(
            found * 10 >= total * 9,
            "{found} of {total}; missed: {missed:#?}"
        );
    }

    /// Each technique rule finds the sample written for it (so a rule broken by an
    /// edit fails here by name, not as a drop in the overall share).
    #[test]
    fn each_technique_rule_finds_its_sample() {
        let set = load(None, true).expect("builtin rules compile");
        let mut scanner = set.scanner().expect("yara rules present");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/webshells");
        for (sample, rule) in [
            ("assert_callback_filter", "php_assert_as_callback"),
            ("letters_joined_call", "php_function_name_spelled_in_pieces"),
            ("xor_built_name", "php_code_function_name_assembled"),
            ("noise_stripped_loader", "php_code_function_name_assembled"),
            ("noise_stripped_loader", "php_variable_function_on_input"),
            ("session_xor_channel", "php_encrypted_payload_session_shell"),
            ("regex_e_callback", "php_callback_from_request"),
            ("hashed_param_eval", "php_eval_of_hashed_parameter"),
            ("reflection_exec", "php_exec_request_input"),
            ("eval_of_helper", "php_exec_request_input"),
            ("interpolated_eval", "php_exec_request_input"),
            ("command_wrapper", "php_command_wrapper_on_input"),
            ("assert_in_variable", "php_assert_as_callback"),
            ("list_mailer_while", "php_list_mailer"),
            ("host_beacon", "php_host_beacon_mailer"),
            ("uname_report_mailer", "php_host_beacon_mailer"),
            ("marked_script_injection", "php_marked_script_injection"),
            ("referrer_cloak", "search_referrer_redirect"),
            ("safe_mode_probe", "php_safe_mode_probe"),
            ("escaped_name_eval", "php_escaped_name_called_in_eval"),
            ("header_getenv_exec", "php_exec_request_input"),
            ("exploit_lookup", "php_exploit_lookup_for_host"),
            ("remote_php_dropper", "php_remote_php_dropper"),
            ("indexed_alphabet", "php_name_from_indexed_alphabet"),
            ("paren_request_var", "php_request_input_to_exec"),
            ("callback_name_computed", "php_callback_name_computed"),
            ("fork_bomb", "php_fork_bomb"),
            ("request_path_writer", "php_request_path_writer"),
            ("assert_command_string", "php_assert_of_command_string"),
            ("exec_name_in_array", "php_exec_name_in_array_called"),
            ("unserialize_gadget", "php_unserialize_code_gadget"),
            ("encoded_php_writer", "php_writes_encoded_php"),
            (
                "server_values_by_position",
                "php_request_values_by_position_run",
            ),
            ("underscore_loader", "php_underscore_variable_called"),
            ("create_function_body", "php_create_function_exec_body"),
            ("doc_comment_code", "php_doc_comment_code"),
            ("bitwise_string_names", "php_bitwise_string_names"),
            ("docroot_uploader", "php_upload_to_client_name_in_docroot"),
            ("callback_second_arg", "php_request_input_as_function"),
            ("mof_dumpfile", "sql_dumpfile_mof_exec"),
            ("sql_outfile_php", "php_sql_writes_php"),
            (
                "reflection_request_call",
                "php_reflection_call_from_request",
            ),
            ("computed_exec_name", "php_exec_name_computed"),
            (
                "symbol_only_superglobal",
                "php_superglobal_by_computed_name",
            ),
            ("variable_variable_call", "php_variable_variable_call"),
            ("callback_exec_by_name", "php_callback_exec_name"),
            ("pcntl_exec_input", "php_pcntl_exec_with_input"),
            ("backtick_symbols", "php_backtick_of_variable_variable"),
            ("paste_site_dropper", "php_paste_site_dropper"),
            (
                "php_writer_with_uploader",
                "php_writes_php_uploader_or_exec",
            ),
            (
                "upload_beside_script",
                "php_upload_saved_here_under_client_name",
            ),
            ("intersect_key_callback", "php_callback_from_request"),
            ("remote_copy_dropper", "php_uploader_eval_chain"),
            ("self_deleting_dropper", "php_self_deleting_dropper"),
            ("windows_com_shell", "php_windows_com_shell"),
            ("reads_account_file", "php_reads_system_account_file"),
            ("decrypted_payload_eval", "php_eval_of_decrypted_payload"),
            ("request_file_download", "php_request_named_file_sent"),
            ("remote_cgi_dropper", "php_remote_script_dropper"),
            ("unchecked_uploader", "php_upload_kept_unchecked"),
            ("request_url_downloader", "php_fetches_request_url_to_file"),
            ("remote_code_eval", "php_evals_remote_code"),
            ("log_wiper", "php_log_wiper"),
            ("error_log_poisoning", "php_log_poisoning"),
            ("interpolated_code_runner", "php_request_input_to_exec"),
            ("globals_superglobal_eval", "php_exec_request_input"),
            ("aliased_upload_to_request_dir", "php_upload_kept_unchecked"),
            ("undying_loop", "php_undying_loop"),
            ("call_result_called", "php_request_input_as_function"),
            ("parenthesized_name_called", "php_request_input_as_function"),
            ("callback_name_completed", "php_callback_from_request"),
            ("site_mirror_exfiltrator", "php_site_mirror_exfiltrator"),
            ("eval_percent_decoded", "php_eval_decoded"),
            ("eval_helper_with_flag", "php_command_wrapper_on_input"),
            ("eval_through_stripslashes", "php_exec_request_input"),
            ("basename_joined_command", "php_exec_request_input"),
            ("register_globals_shell", "php_exec_request_input"),
            ("wp_vcd_backdoor", "php_wp_vcd_backdoor"),
            ("header_command_prefix", "php_exec_request_input"),
            ("cgi_query_shell", "cgi_query_string_shell"),
            ("request_sql_console", "php_request_sql_console"),
            ("fetched_url_eval", "php_evals_fetched_url"),
            ("hex_url_function_loader", "php_evals_fetched_url"),
            ("request_body_include", "php_include_request_input"),
            ("function_table_char_codes", "php_function_table_call"),
            ("zlib_wrapper_file_reader", "php_safe_mode_bypass_reader"),
            ("xslt_php_function", "php_xslt_calls_code_function"),
            ("socket_line_runner", "php_reverse_shell"),
            ("upload_to_fixed_php", "php_upload_saved_as_php"),
            ("curl_file_url_reader", "php_safe_mode_bypass_reader"),
            ("two_field_file_helper", "php_file_writer_on_input"),
            ("session_file_thief", "php_session_file_reader"),
            ("client_socket_shell", "php_findsock_shell"),
            ("server_paths_beacon", "php_host_beacon_mailer"),
            ("header_named_file_write", "php_write_request_to_file"),
            ("paren_assigned_callable", "php_request_input_as_function"),
            ("post_fields_stash", "php_post_data_stash"),
            ("eval_helper_second_arg", "php_exec_request_input"),
            ("sqli_error_probe", "php_sqli_scanner"),
            ("port_probe_range", "php_request_port_scanner"),
            ("mysql_udf_install", "php_mysql_udf_installer"),
            ("card_bin_checker", "php_card_bin_bulk_checker"),
            ("hex_digit_loader", "php_hex_digit_array_payload"),
            ("exec_function_switch", "php_exec_function_switch"),
            ("console_stderr_cookie", "php_webshell_marker"),
            ("eval_variable_walker", "php_eval_variable_walker"),
            ("whole_request_alias_eval", "php_request_input_to_exec"),
            ("exec_wrapper_by_reference", "php_command_wrapper_on_input"),
            ("socket_relay_listener", "php_socket_listener_on_request"),
            ("joined_command_from_ternary", "php_exec_request_input"),
            ("underscore_array_call", "php_variable_variable_call"),
            ("interpolated_command_dropper", "php_exec_request_input"),
            ("file_list_phish_sender", "php_file_list_mailer"),
            ("split_list_mailer", "php_list_mailer"),
            ("request_chmod_browser", "php_request_chmod"),
            ("docroot_defacer", "php_defacer"),
            ("query_url_self_updater", "php_evals_fetched_url"),
            ("writable_dir_walker", "php_writable_dir_hunter"),
            ("writable_readable_walker", "php_writable_dir_hunter"),
            ("host_restrictions_undone", "php_undoes_host_restrictions"),
            ("file_run_through_sh", "php_pipes_into_shell"),
            ("head_injector_keeps_mtime", "php_tree_injector_keeps_mtime"),
            ("root_symlinked_into_site", "php_links_filesystem_root"),
            ("backtick_variable_runner", "php_exec_request_input"),
            ("wrapped_decoder_eval", "php_eval_decoded"),
            ("hex_spelled_names", "php_hex_spelled_function_name"),
            ("own_decoder_eval", "php_eval_decoded"),
            ("request_named_file_editor", "php_write_request_to_file"),
            (
                "name_finished_by_reference",
                "php_function_name_finished_by_reference",
            ),
        ] {
            let data = std::fs::read(dir.join(format!("{sample}.php.sample"))).expect("sample");
            let m = scan_as(
                &set,
                &mut scanner,
                &format!("/var/www/html/{sample}.php"),
                &data,
            );
            assert!(
                m.iter().any(|x| x.rule == rule),
                "{sample}: {rule} did not match; got {:?}",
                m.iter().map(|x| &x.rule).collect::<Vec<_>>()
            );
        }
    }

    /// A PHP file is matched again in its folded view; a rule marked `folded`
    /// matches only there, and a match found only there says so.
    #[test]
    fn php_files_are_also_matched_folded() {
        let set = compile(vec![yaml(
            r#"
rules:
  - name: plain
    severity: high
    file_types: [php]
    regexes: ['system\(\$_GET\[']
  - name: computed
    severity: high
    file_types: [php]
    folded: true
    regexes: ['"system"']
"#,
        )])
        .expect("compile");
        let names = |p: &str, d: &[u8]| -> Vec<(String, String)> {
            set.scan_yaml(&target(p), d)
                .into_iter()
                .map(|m| (m.rule, m.pattern))
                .collect()
        };
        // As written: the plain rule, from the file itself.
        let m = names("/w/a.php", b"<?php system($_GET['c']);");
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(!m[0].1.contains("folded"), "{m:?}");
        // Disguised: both, from the view, and they say so.
        let m = names(
            "/w/a.php",
            b"<?php $f = 'sys'.'tem'; $g = filter_input(INPUT_GET, 'c'); $f($g); system($g);",
        );
        let rules: Vec<&str> = m.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(rules, ["plain", "computed"], "{m:?}");
        assert!(
            m.iter().all(|(_, p)| p.ends_with("(in the folded view)")),
            "{m:?}"
        );
        // A folded rule never reads the file as written, and nothing but PHP is folded.
        assert!(names("/w/a.php", br#"<?php $f = "system";"#).is_empty());
        assert!(names("/w/a.txt", b"<?php $f = 'sys'.'tem'; $f($x);").is_empty());
        // A folded rule must be about PHP files.
        let e = compile(vec![yaml(
            "rules:\n  - name: x\n    severity: high\n    folded: true\n    regexes: ['a']\n",
        )])
        .expect_err("folded without file_types");
        assert!(e.to_string().contains("folded rules see PHP only"), "{e}");
    }

    /// Regexes see bytes: junk that is not UTF-8 between a shell's pieces does not
    /// break a class, and a pattern that asks for Unicode still gets it.
    #[test]
    fn regexes_match_bytes_and_unicode_when_asked() {
        let set = compile(vec![yaml(
            r#"
rules:
  - name: bytes
    severity: high
    regexes: ['eval\s*\([^;"]{0,8}\$_POST']
  - name: letters
    severity: high
    regexes: ['\p{Cyrillic}{3}']
"#,
        )])
        .expect("compile");
        let rules = |d: &[u8]| -> Vec<String> {
            set.scan_yaml(&target("/w/a.php"), d)
                .into_iter()
                .map(|m| m.rule)
                .collect()
        };
        assert_eq!(rules(b"<?php eval(\xff\xfe$_POST['x']);"), ["bytes"]);
        assert_eq!(rules("<?php // абв".as_bytes()), ["letters"]);
        assert!(rules(b"<?php eval('x'); $_POST;").is_empty());
    }

    #[test]
    fn min_matches_exclusions_offsets_and_case() {
        let set = compile(vec![yaml(
            r#"
rules:
  - name: two_of
    severity: high
    file_types: [php]
    patterns: ["alpha", "beta"]
    regexes: ['gam+a\d']
    min_matches: 2
    exclude_patterns: ["SAFE-MARKER"]
    exclude_paths: ["**/vendor/**"]
  - name: nocase
    severity: info
    nocase: true
    patterns: ["EvAl("]
"#,
        )])
        .expect("compile");
        let m = set.scan_yaml(&target("/w/a.php"), b"xx beta yy gammma7");
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].rule.as_str(), m[0].offset), ("two_of", 3));
        assert!(set.scan_yaml(&target("/w/a.php"), b"beta only").is_empty());
        assert!(set
            .scan_yaml(&target("/w/a.php"), b"alpha beta SAFE-MARKER")
            .is_empty());
        assert!(set
            .scan_yaml(&target("/w/vendor/x/a.php"), b"alpha beta")
            .is_empty());
        assert!(set.scan_yaml(&target("/w/a.js"), b"alpha beta").is_empty());
        let m = set.scan_yaml(&target("/w/a.js"), b"  EVAL(1)");
        assert_eq!((m[0].rule.as_str(), m[0].offset), ("nocase", 2));
    }

    #[test]
    fn errors_name_file_and_line_and_nothing_half_loads() {
        let e = compile(vec![yaml(
            "rules:\n  - name: ok\n    severity: high\n    patterns: [a]\n  - name: bad\n    severity: high\n    regexes: ['(unclosed']\n",
        )])
        .unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!((e.0[0].file.as_str(), e.0[0].line), ("t.yml", 7), "{e}");
        assert!(e.0[0].message.contains("bad"), "{e}");

        let e = compile(vec![yaml(
            "rules:\n  - name: x\n    severity: loud\n    patterns: [a]\n",
        )])
        .unwrap_err();
        assert_eq!(e.0[0].line, 3, "{e}");

        let e = compile(vec![yaml("rules:\n  - name: x\n    sevrity: high\n")]).unwrap_err();
        assert_eq!(e.0[0].line, 3, "{e}");
        assert!(e.0[0].message.contains("sevrity"), "{e}");

        let e = compile(vec![yara("rule a {\n condition:\n  true and\n}\n")]).unwrap_err();
        assert_eq!((e.0[0].file.as_str(), e.0[0].line), ("t.yar", 4), "{e}");

        let e = compile(vec![
            yaml("rules:\n  - name: dup\n    severity: high\n    patterns: [a]\n"),
            yara("rule dup { condition: true }"),
        ])
        .unwrap_err();
        assert!(e.0[0].message.contains("already defined"), "{e}");
    }

    #[test]
    fn yara_externals_are_set_per_file() {
        let set = compile(vec![yara(
            r#"rule by_ext { meta: severity = "warning" auto_quarantine = true
                 condition: extension == "phtml" and owner == "www-data" and filetype == "PHP" }
               rule by_path { strings: $a = "zzz" condition: $a and filepath matches /\/uploads\// and filename == "f.txt" }"#,
        )])
        .expect("compile");
        let mut s = set.scanner().expect("scanner");
        let m = set
            .scan_yara(&mut s, &target("/w/x.phtml"), b"whatever")
            .expect("scan");
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].severity, Severity::Warning);
        assert!(m[0].auto_quarantine);
        let m = set
            .scan_yara(&mut s, &target("/w/uploads/f.txt"), b"..zzz")
            .expect("scan");
        assert_eq!(
            (m[0].rule.as_str(), m[0].offset, m[0].pattern.as_str()),
            ("by_path", 2, "$a")
        );
        assert!(set
            .scan_yara(&mut s, &target("/w/other/f.txt"), b"zzz")
            .expect("scan")
            .is_empty());
    }
}
