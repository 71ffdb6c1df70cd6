// SPDX-License-Identifier: GPL-2.0-only
//! The ModSecurity rules file Rampart manages (`modsec.custom_rules`): the
//! operator's custom rules (`/modsec/rules/apply`) and per-rule action overrides
//! (`/modsec/rules/escalation`, as `SecRuleUpdateActionById`). The file is rendered
//! whole from what the store keeps, checked by the web server's own config test with
//! the new file in place, put back as it was when the test fails, then reloaded.
//!
//! The web server reads this file as root, so only rule directives are accepted:
//! nothing that names a file (`Include`, `SecAuditLog`, `SecDataDir`...), switches the
//! engine off, or runs a program (`exec:`).

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    time::Duration,
};

/// The directives a custom rule set may hold.
const DIRECTIVES: &[&str] = &[
    "SecRule",
    "SecAction",
    "SecMarker",
    "SecRuleRemoveById",
    "SecRuleRemoveByTag",
    "SecRuleRemoveByMsg",
    "SecRuleUpdateActionById",
    "SecRuleUpdateTargetById",
    "SecRuleUpdateTargetByTag",
];
/// Largest custom rule set.
pub const MAX_RULES_BYTES: usize = 256 * 1024;
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes of a command's output kept for the answer.
const MAX_OUTPUT: usize = 4096;

/// How a ModSecurity rule's denials count toward the `modsec_blocks` scenario
/// (`POST /api/v1/rules/modsec-escalation`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Escalation {
    /// Not counted (a rule known for false positives here).
    Ignore,
    /// One denial, as every rule without an override.
    Count,
    /// One denial fills the bucket: the client is handled at once.
    Block,
}

/// The overrides by rule id, shared by the log watcher and the API.
#[derive(Debug, Default)]
pub struct WafEscalation {
    map: std::sync::RwLock<HashMap<String, Escalation>>,
}

/// The store key the overrides are kept under.
pub const WAF_ESCALATION_KEY: &str = "modsec.escalation";

impl WafEscalation {
    pub fn replace(&self, m: HashMap<String, Escalation>) {
        match self.map.write() {
            Ok(mut g) => *g = m,
            Err(p) => *p.into_inner() = m,
        }
    }

    pub fn snapshot(&self) -> HashMap<String, Escalation> {
        match self.map.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// For a denial by `rules`: any rule at `block` wins; only `ignore` rules (or
    /// none counted) ignore it.
    pub fn of<'a>(&self, rules: impl IntoIterator<Item = &'a str>) -> Escalation {
        let m = match self.map.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut out = None;
        for id in rules {
            match m.get(id).copied().unwrap_or(Escalation::Count) {
                Escalation::Block => return Escalation::Block,
                Escalation::Count => out = Some(Escalation::Count),
                Escalation::Ignore => {
                    out.get_or_insert(Escalation::Ignore);
                }
            }
        }
        out.unwrap_or(Escalation::Count)
    }
}

/// Store keys.
pub const KEY_RULES: &str = "modsec.custom_rules";
pub const KEY_ACTIONS: &str = "modsec.rule_actions";

/// The new action of one rule.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct RuleAction {
    /// deny, block, pass or log.
    pub action: String,
    /// CRITICAL, ERROR, WARNING or NOTICE; "" keeps the rule's.
    #[serde(default)]
    pub severity: String,
}

impl RuleAction {
    /// The action list of `SecRuleUpdateActionById`.
    fn render(&self) -> String {
        let mut parts = vec![match self.action.as_str() {
            "deny" => "deny,status:403",
            "block" => "block",
            "log" => "pass,log",
            _ => "pass",
        }
        .to_string()];
        if !self.severity.is_empty() {
            parts.push(format!("severity:{}", self.severity));
        }
        parts.join(",")
    }
}

/// Check a rule id (ModSecurity's are positive integers).
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > 10
        || !id.bytes().all(|b| b.is_ascii_digit())
        || id.starts_with('0')
    {
        return Err(format!("rule id must be a positive integer, got {id:?}"));
    }
    Ok(())
}

pub fn check_action(a: &RuleAction) -> Result<(), String> {
    if !["deny", "block", "pass", "log"].contains(&a.action.as_str()) {
        return Err(format!(
            "action must be deny, block, pass or log, got {:?}",
            a.action
        ));
    }
    if !["", "CRITICAL", "ERROR", "WARNING", "NOTICE"].contains(&a.severity.as_str()) {
        return Err(format!(
            "severity must be CRITICAL, ERROR, WARNING or NOTICE, got {:?}",
            a.severity
        ));
    }
    Ok(())
}

/// The directives of `text`, continuation lines joined; each with its first line.
fn directives(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let l = line.trim_end();
        let (body, more) = match l.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (l, false),
        };
        match &mut cur {
            Some((_, s)) => {
                s.push(' ');
                s.push_str(body.trim());
            }
            None => cur = Some((i + 1, body.trim().to_string())),
        }
        if !more {
            if let Some(d) = cur.take() {
                out.push(d);
            }
        }
    }
    out.extend(cur);
    out
}

/// Check a custom rule set: only [`DIRECTIVES`], every `SecRule`/`SecAction` with
/// a unique numeric `id:`, no `exec:` action. The error names the line.
pub fn check_rules(text: &str) -> Result<usize, String> {
    if text.len() > MAX_RULES_BYTES {
        return Err(format!("rules over {MAX_RULES_BYTES} bytes"));
    }
    if text.contains('\0') {
        return Err("rules contain a NUL byte".into());
    }
    let mut ids = std::collections::HashSet::new();
    let mut n = 0;
    for (line, d) in directives(text) {
        if d.is_empty() || d.starts_with('#') {
            continue;
        }
        let name = d.split_whitespace().next().unwrap_or("");
        if !DIRECTIVES.contains(&name) {
            return Err(format!(
                "line {line}: {name:?} is not a rule directive (allowed: {})",
                DIRECTIVES.join(", ")
            ));
        }
        let lower = d.to_ascii_lowercase();
        if lower.contains("exec:") {
            return Err(format!(
                "line {line}: the exec action runs programs; not accepted"
            ));
        }
        if name == "SecRule" || name == "SecAction" {
            let id = lower
                .split("id:")
                .nth(1)
                .map(|r| {
                    r.trim_start_matches(['\'', ' '])
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect::<String>()
                })
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("line {line}: {name} without an id: action"))?;
            if !ids.insert(id.clone()) {
                return Err(format!("line {line}: rule id {id} used twice"));
            }
            n += 1;
        }
    }
    Ok(n)
}

/// The whole file for `rules` and `actions`.
pub fn render(rules: &str, actions: &BTreeMap<String, RuleAction>) -> String {
    let mut out = String::from(
        "# Managed by Rampart (/api/v1/modsec/rules/apply and /modsec/rules/escalation).\n\
         # Edits here are replaced at the next change through the API.\n\n# Custom rules\n",
    );
    out.push_str(rules.trim_end());
    out.push_str("\n\n# Rule actions\n");
    for (id, a) in actions {
        out.push_str(&format!(
            "SecRuleUpdateActionById {id} \"{}\"\n",
            a.render()
        ));
    }
    out
}

/// What applying a new file did.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Applied {
    pub file: String,
    /// The web server's config test ran (and passed); false: none is configured.
    pub tested: bool,
    /// The reload command ran and succeeded; false: none configured, or it failed
    /// (then `output` says why; the file stays, it is valid).
    pub reloaded: bool,
    pub output: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The config test failed with the new file: the old one is back.
    #[error(
        "the web server's config test failed with the new rules; the previous file is back: {0}"
    )]
    TestFailed(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

async fn run(cmd: &[String], file: &Path) -> Result<String, String> {
    let args: Vec<String> = cmd
        .iter()
        .map(|a| a.replace("{file}", &file.display().to_string()))
        .collect();
    let Some((prog, rest)) = args.split_first() else {
        return Ok(String::new());
    };
    let out = tokio::time::timeout(
        COMMAND_TIMEOUT,
        tokio::process::Command::new(prog)
            .args(rest)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| format!("{prog} timed out"))?
    .map_err(|e| format!("running {prog}: {e}"))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    text.truncate(super::grammar::char_floor(&text, MAX_OUTPUT));
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{prog} exited with {}: {text}", out.status))
    }
}

fn write_atomic(path: &Path, content: &[u8]) -> std::io::Result<()> {
    crate::config::replace_file(path, content, 0o644)
}

/// Write `content` to `file`, test, and reload; on a failed test the previous
/// content (or no file) is restored.
pub async fn apply(
    file: &Path,
    content: &str,
    test: &[String],
    reload: &[String],
) -> Result<Applied, ApplyError> {
    let io = |context: &str| {
        let context = format!("{context} {}", file.display());
        move |source| ApplyError::Io { context, source }
    };
    let before = match std::fs::read(file) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io("reading")(e)),
    };
    write_atomic(file, content.as_bytes()).map_err(io("writing"))?;
    let mut output = String::new();
    if !test.is_empty() {
        match run(test, file).await {
            Ok(o) => output.push_str(&o),
            Err(why) => {
                let back = match &before {
                    Some(b) => write_atomic(file, b),
                    None => std::fs::remove_file(file),
                };
                if let Err(e) = back {
                    tracing::error!(file = %file.display(), error = %e, "Putting the previous ModSecurity rules back failed.");
                }
                return Err(ApplyError::TestFailed(why));
            }
        }
    }
    let reloaded = if reload.is_empty() {
        false
    } else {
        match run(reload, file).await {
            Ok(o) => {
                output.push_str(&o);
                true
            }
            Err(why) => {
                tracing::error!(error = %why, "Reloading the web server after a ModSecurity rules change failed.");
                output.push_str(&why);
                false
            }
        }
    };
    Ok(Applied {
        file: file.display().to_string(),
        tested: !test.is_empty(),
        reloaded,
        output,
    })
}

/// `modsec.custom_rules`, when set and its directory exists.
pub fn target(configured: &Path) -> Result<PathBuf, String> {
    if configured.as_os_str().is_empty() {
        return Err("no ModSecurity rules file configured (modsec.custom_rules)".into());
    }
    match configured.parent() {
        Some(d) if d.is_dir() => Ok(configured.to_path_buf()),
        _ => Err(format!(
            "the directory of modsec.custom_rules ({}) does not exist: is ModSecurity installed?",
            configured.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waf_escalation_overrides_how_a_denial_counts() {
        let w = WafEscalation::default();
        assert_eq!(w.of(["1"]), Escalation::Count);
        w.replace(HashMap::from([
            ("920350".to_string(), Escalation::Ignore),
            ("942100".to_string(), Escalation::Block),
        ]));
        assert_eq!(w.of(["920350"]), Escalation::Ignore);
        assert_eq!(
            w.of(["920350", "1"]),
            Escalation::Count,
            "another rule still counts"
        );
        assert_eq!(w.of(["920350", "942100"]), Escalation::Block, "block wins");
        assert_eq!(w.of([]), Escalation::Count);
    }

    #[test]
    fn only_rule_directives_with_ids_are_accepted() {
        let ok = "# ours\nSecRule ARGS \"@rx evil\" \\\n    \"id:1000001,phase:2,deny,status:403\"\nSecRuleRemoveById 920350\n";
        assert_eq!(check_rules(ok), Ok(1));
        for (bad, why) in [
            ("Include /etc/shadow\n", "not a rule directive"),
            ("SecAuditLog /etc/cron.d/x\n", "not a rule directive"),
            ("SecRuleEngine Off\n", "not a rule directive"),
            ("SecRule ARGS \"x\" \"phase:2,deny\"\n", "without an id"),
            ("SecAction \"id:5,exec:/tmp/x.sh\"\n", "exec"),
            (
                "SecAction \"id:5,pass\"\nSecAction \"id:5,pass\"\n",
                "twice",
            ),
        ] {
            let e = check_rules(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(check_rules(&"#".repeat(MAX_RULES_BYTES + 1)).is_err());
    }

    #[test]
    fn the_file_renders_rules_and_actions() {
        let mut a = BTreeMap::new();
        a.insert(
            "942100".to_string(),
            RuleAction {
                action: "log".into(),
                severity: "WARNING".into(),
            },
        );
        let f = render("SecRuleRemoveById 1", &a);
        assert!(f.contains("SecRuleRemoveById 1\n"), "{f}");
        assert!(
            f.contains("SecRuleUpdateActionById 942100 \"pass,log,severity:WARNING\""),
            "{f}"
        );
        assert!(check_id("942100").is_ok());
        for bad in ["", "0", "01", "1;2", "12345678901"] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_failed_config_test_puts_the_previous_file_back() {
        let tmp = tempfile::tempdir().expect("tmp");
        let f = tmp.path().join("rampart.conf");
        std::fs::write(&f, "old").expect("write");
        let t = |c: &str| vec![c.to_string()];
        let e = apply(&f, "new", &t("/bin/false"), &[])
            .await
            .expect_err("fails");
        assert!(matches!(e, ApplyError::TestFailed(_)));
        assert_eq!(std::fs::read_to_string(&f).expect("read"), "old");
        let a = apply(&f, "new", &t("/bin/true"), &t("/bin/true"))
            .await
            .expect("applies");
        assert!(a.tested && a.reloaded);
        assert_eq!(std::fs::read_to_string(&f).expect("read"), "new");
        // A file that did not exist is removed again.
        let g = tmp.path().join("fresh.conf");
        assert!(apply(&g, "x", &t("/bin/false"), &[]).await.is_err());
        assert!(!g.exists());
    }
}
