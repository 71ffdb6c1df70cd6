// SPDX-License-Identifier: GPL-2.0-only
//! JSON shapes of the API (csm-api.md "Finding fields").

use serde::{Deserialize, Serialize};

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Warning,
    #[default]
    Info,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Self::Critical, Self::High, Self::Warning, Self::Info];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::High => "high",
            Self::Warning => "warning",
            Self::Info => "info",
        }
    }
    /// Higher is more severe (info 0 ... critical 3).
    pub fn rank(self) -> u8 {
        match self {
            Self::Critical => 3,
            Self::High => 2,
            Self::Warning => 1,
            Self::Info => 0,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// CSM's integer on the wire: 0 warning, 1 high, 2 critical. CSM has no info
    /// level; an info finding goes out as 0, the lowest, and `severity_label` says
    /// "info".
    pub fn csm(self) -> u8 {
        match self {
            Self::Critical => 2,
            Self::High => 1,
            Self::Warning | Self::Info => 0,
        }
    }

    /// A severity as a query or body names it: CSM's integer (0 is warning) or the
    /// name.
    pub fn parse_csm(s: &str) -> Option<Self> {
        match s {
            "0" => Some(Self::Warning),
            "1" => Some(Self::High),
            "2" => Some(Self::Critical),
            s => Self::parse(s),
        }
    }
}

/// One message of the live-logs WebSocket (Charon's LogEntry).
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct LogEntry {
    /// debug, info, warn or error.
    pub level: &'static str,
    pub message: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
    /// agent (the agent's own log), cerberus, waf or acl (findings by kind).
    pub source: &'static str,
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl LogEntry {
    /// A warning of the stream itself (entries dropped for a slow client).
    pub fn notice(message: String) -> Self {
        Self {
            level: "warn",
            message,
            timestamp: rfc3339_now(),
            source: "agent",
            fields: serde_json::Map::new(),
        }
    }
}

fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A finding. Optional correlation fields are omitted when unknown; absence means
/// "unknown", never "global". On the wire it has CSM's shape ([`FindingWire`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Finding {
    pub id: i64,
    pub check: String,
    pub severity: Severity,
    pub message: String,
    pub details: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
    pub path: Option<String>,
    pub pid: Option<u32>,
    pub uid: Option<u32>,
    pub process: Option<String>,
    pub ip: Option<String>,
    pub account: Option<String>,
    /// Tenant attribution (panel webhook / verdict callback).
    pub tenant_id: Option<String>,
    pub domain: Option<String>,
    pub mailbox: Option<String>,
    /// The signature that matched (signature findings).
    pub rule: Option<String>,
    /// active, dismissed or fixed.
    pub status: String,
    /// How often the same (check, key) was seen within the dedup window.
    pub count: u32,
    /// RFC 3339, UTC: the latest occurrence.
    pub last_seen: String,
    /// SHA-256 of the file content the finding is about, when there is one.
    pub content_sha256: Option<String>,
    /// Can `POST /api/v1/fix` act on it (quarantine the file)?
    pub has_fix: bool,
    /// The process's ancestors, nearest first (parent, grandparent, ...), as the
    /// kernel or /proc knew them when the finding was made; empty when unknown.
    pub lineage: Vec<Ancestor>,
}

/// A process among a finding's ancestors.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Ancestor {
    pub pid: u32,
    /// Its comm (chosen by the process itself: shown as text, never trusted).
    pub name: String,
}

/// A finding as CSM clients read it (csm-contract.md): severity as CSM's integer,
/// `time`, `first_seen`, `has_fix`, and the correlation fields under CSM's names
/// (`file_path`, `source_ip`, `cp_user`, `process_info`, `process`). Rampart's own
/// names (`path`, `ip`, `account`, `timestamp`, `severity_label`) stay beside them.
#[derive(Serialize, schemars::JsonSchema)]
struct FindingWire<'a> {
    id: i64,
    check: &'a str,
    severity: u8,
    severity_label: &'static str,
    message: &'a str,
    details: &'a str,
    /// The latest occurrence, as CSM's `time`.
    time: &'a str,
    first_seen: &'a str,
    last_seen: &'a str,
    timestamp: &'a str,
    has_fix: bool,
    status: &'a str,
    count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    process_info: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    process: Option<ProcessWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cp_user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mailbox: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_sha256: Option<&'a str>,
    /// Rampart's: the process's ancestors, nearest first.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    lineage: &'a [Ancestor],
}

/// CSM's `process` object: what is known of the process behind a finding.
#[derive(Serialize, schemars::JsonSchema)]
struct ProcessWire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

/// The wire shape is [`FindingWire`]'s.
impl schemars::JsonSchema for Finding {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Finding".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        FindingWire::<'static>::json_schema(g)
    }
}

impl Serialize for Finding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fn o(v: &Option<String>) -> Option<&str> {
            v.as_deref()
        }
        let time = if self.last_seen.is_empty() {
            &self.timestamp
        } else {
            &self.last_seen
        };
        let process = (self.pid.is_some() || self.process.is_some()).then(|| ProcessWire {
            pid: self.pid,
            uid: self.uid,
            name: o(&self.process),
        });
        FindingWire {
            id: self.id,
            check: &self.check,
            severity: self.severity.csm(),
            severity_label: self.severity.as_str(),
            message: &self.message,
            details: &self.details,
            time,
            first_seen: &self.timestamp,
            last_seen: time,
            timestamp: &self.timestamp,
            has_fix: self.has_fix,
            status: &self.status,
            count: self.count,
            file_path: o(&self.path),
            path: o(&self.path),
            pid: self.pid,
            uid: self.uid,
            process_info: o(&self.process),
            process,
            source_ip: o(&self.ip),
            ip: o(&self.ip),
            cp_user: o(&self.account),
            account: o(&self.account),
            tenant_id: o(&self.tenant_id),
            domain: o(&self.domain),
            mailbox: o(&self.mailbox),
            rule: o(&self.rule),
            content_sha256: o(&self.content_sha256),
            lineage: &self.lineage,
        }
        .serialize(s)
    }
}

/// A finding read back from its wire shape (the alert outbox keeps findings as
/// JSON), or from the shape before CSM's (severity a name, `process` a string).
#[derive(Deserialize, schemars::JsonSchema)]
struct FindingIn {
    id: i64,
    check: String,
    severity: serde_json::Value,
    #[serde(default)]
    severity_label: Option<String>,
    message: String,
    #[serde(default)]
    details: String,
    timestamp: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    pid: Option<u32>,
    #[serde(default)]
    uid: Option<u32>,
    #[serde(default)]
    process_info: Option<String>,
    #[serde(default)]
    process: Option<serde_json::Value>,
    #[serde(default)]
    ip: Option<String>,
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    mailbox: Option<String>,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    count: Option<u32>,
    #[serde(default)]
    last_seen: String,
    #[serde(default)]
    content_sha256: Option<String>,
    #[serde(default)]
    has_fix: bool,
    #[serde(default)]
    lineage: Vec<Ancestor>,
}

impl<'de> Deserialize<'de> for Finding {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = FindingIn::deserialize(d)?;
        let named = f
            .severity_label
            .as_deref()
            .or(f.severity.as_str())
            .map(str::to_string)
            .or_else(|| f.severity.as_u64().map(|n| n.to_string()))
            .unwrap_or_default();
        let severity = Severity::parse_csm(&named)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown severity {named:?}")))?;
        let legacy = match f.process {
            Some(serde_json::Value::String(s)) => Some(s),
            _ => None,
        };
        let process = f.process_info.or(legacy);
        Ok(Finding {
            id: f.id,
            check: f.check,
            severity,
            message: f.message,
            details: f.details,
            timestamp: f.timestamp,
            path: f.path,
            pid: f.pid,
            uid: f.uid,
            process,
            ip: f.ip,
            account: f.account,
            tenant_id: f.tenant_id,
            domain: f.domain,
            mailbox: f.mailbox,
            rule: f.rule,
            status: f.status.unwrap_or_else(|| "active".into()),
            count: f.count.unwrap_or(1),
            last_seen: f.last_seen,
            content_sha256: f.content_sha256,
            has_fix: f.has_fix,
            lineage: f.lineage,
        })
    }
}

/// `GET /api/v1/export` and the body of `POST /api/v1/import`: the operator's own
/// state (CSM: suppressions and the whitelist). Block lists are not in it: they can
/// hold millions of entries and have their own bulk import.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StateBundle {
    /// "rampart-state".
    pub format: String,
    pub version: u32,
    #[serde(default)]
    pub exported_at: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub suppressions: Vec<SuppressionItem>,
    #[serde(default)]
    pub whitelist: Vec<WhitelistItem>,
}

pub const STATE_FORMAT: &str = "rampart-state";
pub const STATE_VERSION: u32 = 1;

/// A suppression in a [`StateBundle`] (its id and counters stay on the host).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuppressionItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_glob: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default)]
    pub reason: String,
}

/// An allowed address or subnet in a [`StateBundle`]; `expires_at` "" = permanent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WhitelistItem {
    pub ip: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub expires_at: String,
}

/// Body of `POST /api/v1/verified-bots/apply`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyBotsRequest {
    /// Allow-list the verified crawlers (their addresses skip the rate limits).
    #[serde(default = "yes")]
    pub allow_verified: bool,
    /// Block the addresses that claimed a crawler and are not one.
    #[serde(default)]
    pub block_fake: bool,
    /// How long the entries last ("7d" by default; "" = permanent).
    #[serde(default = "week", deserialize_with = "duration_secs")]
    #[schemars(with = "DurationSchema")]
    pub duration: Option<u64>,
}

fn yes() -> bool {
    true
}

fn week() -> Option<u64> {
    Some(7 * 86_400)
}

/// The schema of a [`duration_secs`] field.
pub struct DurationSchema;

impl schemars::JsonSchema for DurationSchema {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Seconds, or a duration such as \"24h\", \"7d\", \"1h30m\"; \"\" and 0 mean permanent.",
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^([0-9]+[smhdw]?)*$"},
                {"type": "null"}
            ]
        })
    }
}

/// A duration in a request body: seconds as a number, or CSM's text ("24h", "7d",
/// "1h30m", "90s"); "" and 0 mean permanent (None).
pub fn duration_secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize, schemars::JsonSchema)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    let secs = match Option::<Raw>::deserialize(d)? {
        None => return Ok(None),
        Some(Raw::Secs(n)) => n,
        Some(Raw::Text(t)) => parse_duration(&t).map_err(serde::de::Error::custom)?,
    };
    Ok((secs > 0).then_some(secs))
}

/// "24h", "7d", "1h30m", "90s", "45m" (or a bare number of seconds) in seconds.
pub fn parse_duration(t: &str) -> Result<u64, String> {
    let t = t.trim();
    if t.is_empty() {
        return Ok(0);
    }
    if let Ok(n) = t.parse::<u64>() {
        return Ok(n);
    }
    let bad = || format!("duration must be like 24h, 7d, 1h30m or seconds, got {t:?}");
    let (mut total, mut num) = (0u64, String::new());
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        num.clear();
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// Seconds as a Go duration string ("3h4m5s", "0s"), as CSM prints uptimes.
pub fn go_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// Body of `POST /api/v1/block-ip`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockRequest {
    pub ip: String,
    #[serde(default)]
    pub reason: String,
    /// Seconds, or CSM's "24h" / "7d"; absent, "" or 0 = permanent.
    #[serde(default, deserialize_with = "duration_secs")]
    #[schemars(with = "DurationSchema")]
    pub duration: Option<u64>,
}

/// A blocked address or subnet, as listed by `GET /api/v1/blocked-ips`. On the wire,
/// CSM's shape: `expires_at` is "" when permanent, and `expires_in` says how long is
/// left ("permanent" or "XhYm").
#[derive(Clone, Debug, PartialEq)]
pub struct BlockEntry {
    /// Address or CIDR in canonical form ("203.0.113.5", "198.51.100.0/24").
    pub ip: String,
    pub reason: String,
    /// Who blocked it: "api", "cli", "auto_response", ...
    pub source: String,
    pub blocked_at: String,
    /// RFC 3339 expiry, or None for permanent.
    pub expires_at: Option<String>,
}

/// A [`BlockEntry`] on its way out (borrowed: block lists can be long).
#[derive(Serialize, schemars::JsonSchema)]
struct BlockEntryOut<'a> {
    ip: &'a str,
    reason: &'a str,
    source: &'a str,
    blocked_at: &'a str,
    expires_at: &'a str,
    expires_in: String,
}

/// A [`BlockEntry`] read back (`expires_in` is derived, so ignored).
#[derive(Deserialize, schemars::JsonSchema)]
struct BlockEntryIn {
    ip: String,
    reason: String,
    source: String,
    blocked_at: String,
    #[serde(default)]
    expires_at: Option<String>,
}

/// The wire shape is [`BlockEntryOut`]'s.
impl schemars::JsonSchema for BlockEntry {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "BlockEntry".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        BlockEntryOut::<'static>::json_schema(g)
    }
}

impl Serialize for BlockEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let expires_in = match &self.expires_at {
            None => "permanent".to_string(),
            Some(t) => {
                let left =
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .map(|t| (t - time::OffsetDateTime::now_utc()).whole_seconds().max(0))
                        .unwrap_or(0);
                format!("{}h{}m", left / 3600, left / 60 % 60)
            }
        };
        BlockEntryOut {
            ip: &self.ip,
            reason: &self.reason,
            source: &self.source,
            blocked_at: &self.blocked_at,
            expires_at: self.expires_at.as_deref().unwrap_or_default(),
            expires_in,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for BlockEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = BlockEntryIn::deserialize(d)?;
        Ok(BlockEntry {
            ip: w.ip,
            reason: w.reason,
            source: w.source,
            blocked_at: w.blocked_at,
            expires_at: w.expires_at.filter(|t| !t.is_empty()),
        })
    }
}

/// `{"ip": "..."}` bodies (unblock-ip, remove-allow, unban).
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IpRequest {
    pub ip: String,
}

/// Body of `POST /api/v1/unblock-bulk`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkIpRequest {
    pub ips: Vec<String>,
}

/// Body of `POST /api/v1/firewall/allow-ip`, `/firewall/deny-subnet`, `/threat/block-ip`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    /// Address or CIDR (`cidr` and `subnet` are accepted as aliases).
    #[serde(alias = "cidr", alias = "subnet")]
    pub ip: String,
    #[serde(default)]
    pub reason: String,
    /// Seconds, or CSM's "24h" / "7d"; absent, "" or 0 = permanent.
    #[serde(default, deserialize_with = "duration_secs")]
    #[schemars(with = "DurationSchema")]
    pub duration: Option<u64>,
    /// Required to act on a /0.
    #[serde(default)]
    pub force: bool,
    /// CSM's temporary whitelist length (`temp-whitelist-ip`), instead of `duration`.
    #[serde(default)]
    pub hours: Option<u64>,
}

/// Body of `POST /api/v1/security/decisions` (Charon).
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    pub ip: String,
    /// "block" or "allow".
    pub action: String,
    #[serde(default)]
    pub details: String,
    #[serde(default, deserialize_with = "duration_secs")]
    #[schemars(with = "DurationSchema")]
    pub duration: Option<u64>,
}

/// Body of `POST /api/v1/security/enable` and `/security/disable` (Charon); an
/// empty body is `{}`.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassRequest {
    /// The one-time token from `/security/breakglass/generate`; needed to disable
    /// enforcement from anywhere but localhost.
    #[serde(default)]
    pub break_glass_token: Option<String>,
    /// How long enforcement stays off: seconds or "15m" (default and maximum:
    /// `firewall.disable_max_secs`).
    #[serde(default, deserialize_with = "duration_secs")]
    #[schemars(with = "DurationSchema")]
    pub duration: Option<u64>,
}

/// Body of `POST /api/v1/security/config` (Charon's global security config).
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfigRequest {
    #[serde(default)]
    pub name: String,
    /// Absent: unchanged. `false` needs what `/security/disable` needs.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Comma-separated addresses and CIDRs that no rule drops.
    #[serde(default)]
    pub admin_whitelist: String,
    #[serde(default)]
    pub crowdsec_mode: String,
    #[serde(default)]
    pub waf_mode: String,
    #[serde(default)]
    pub waf_rules_source: String,
    /// Echoed back from `GET /security/config`; ignored.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// As in [`BreakGlassRequest`], for `enabled: false`.
    #[serde(default)]
    pub break_glass_token: Option<String>,
    #[serde(default, deserialize_with = "duration_secs")]
    #[schemars(with = "DurationSchema")]
    pub duration: Option<u64>,
}

/// Body of `POST /api/v1/security/rulesets` (Charon): a signature rule file the
/// API manages, upserted by name.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesetRequest {
    pub name: String,
    /// `yaml` (Rampart's YAML signatures) or `yara` (YARA-X).
    pub mode: String,
    pub content: String,
    /// Where the operator took the rules from; recorded, never fetched.
    #[serde(default)]
    pub source_url: String,
}

/// Body of `POST /api/v1/modsec/rules/apply`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModsecRulesRequest {
    /// The whole custom rule set (ModSecurity directives).
    pub rules: String,
}

/// Body of `POST /api/v1/modsec/rules/escalation`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleActionRequest {
    pub rule_id: String,
    /// deny, block, pass, log, or default (drop the override).
    pub action: String,
    /// CRITICAL, ERROR, WARNING or NOTICE.
    #[serde(default)]
    pub severity: String,
}

/// Body of `POST /api/v1/rules/modsec-escalation`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationRequest {
    pub rule_id: String,
    /// ignore, count, block, or default (drop the override).
    pub escalation: String,
}

/// Which firewall list an operation targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FwList {
    Block,
    Allow,
}

/// A firewall operation, parsed and shape-checked by the API layer.
#[derive(Clone, Debug)]
pub enum FirewallOp {
    Status,
    List {
        list: FwList,
        subnets_only: bool,
    },
    Audit {
        limit: u32,
    },
    Check {
        ip: String,
    },
    Add {
        list: FwList,
        ip: String,
        reason: String,
        duration: Option<u64>,
        force: bool,
        source: &'static str,
    },
    /// Remove from a list; `bulk` answers with per-item results instead of 404.
    Remove {
        list: FwList,
        ips: Vec<String>,
        bulk: bool,
    },
    Flush,
    Unban {
        ip: String,
    },
    /// `changes`: policy keys. CSM's body `{changes, timeout_min}` and a bare object
    /// of keys are both accepted; `if_match` is the `If-Match` header (the config
    /// hash `/status` shows), checked when sent.
    /// Flush one address from cPanel's cPHulk (`/firewall/cphulk-clear`).
    CphulkClear {
        ip: String,
    },
    TentativeApply {
        changes: serde_json::Value,
        timeout_secs: Option<u64>,
        if_match: Option<String>,
    },
    Rollback,
    Confirm,
    Revert,
    Decisions {
        limit: u32,
    },
    SecurityStatus,
    SecurityConfig,
    /// `local`: the client connected from loopback.
    SecurityConfigUpdate {
        req: SecurityConfigRequest,
        local: bool,
    },
    SecurityEnable,
    SecurityDisable {
        req: BreakGlassRequest,
        local: bool,
    },
    BreakGlassGenerate,
}

/// History filters (`/api/v1/history`, `/history/csv`).
#[derive(Clone, Debug, Default)]
pub struct HistoryQuery {
    pub limit: u32,
    pub offset: u32,
    /// RFC 3339 or a Unix timestamp.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub severity: Option<Severity>,
    pub search: Option<String>,
    pub check: Option<String>,
    /// active, dismissed or fixed.
    pub status: Option<String>,
}

/// Which findings an action targets: `{"id": 1}`, `{"ids": [1, 2]}`, or
/// `{"check": "...", "message": "..."}` (CSM's finding identity).
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindingRef {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub ids: Vec<i64>,
    #[serde(default)]
    pub check: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    /// CSM's identity in one string, `check:message` (split at the first colon).
    #[serde(default)]
    pub key: Option<String>,
    /// CSM's `fix` body names the file too; the finding's own path is what is acted
    /// on, so a body naming another file is refused.
    #[serde(default)]
    pub file_path: Option<String>,
    /// Free text kept in the audit log.
    #[serde(default)]
    pub details: String,
}

/// Body of `POST /api/v1/suppressions`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuppressionRequest {
    /// add (default) or delete.
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub check: Option<String>,
    #[serde(default)]
    pub path_glob: Option<String>,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub reason: String,
}

/// Body of `POST /api/v1/scan-account`: an account (its home) or an absolute path.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
}

/// `{"id": "..."}` (quarantine-restore).
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdRequest {
    pub id: String,
}

/// `{"key": "..."}` (db-object-backup-restore).
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    pub key: String,
}

/// `{"ids": [...]}` (quarantine/bulk-delete).
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdsRequest {
    pub ids: Vec<String>,
}

/// Charon's notification settings update: every field optional, only those given
/// change (charon-api.md "Update Notification Settings").
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettingsUpdate {
    pub enabled: Option<bool>,
    /// debug, info, warn or error (checked by the API layer).
    pub min_log_level: Option<String>,
    pub notify_waf_blocks: Option<bool>,
    pub notify_acl_denials: Option<bool>,
    pub notify_rate_limit_hits: Option<bool>,
    pub webhook_url: Option<String>,
    pub email_recipients: Option<String>,
}

/// The levels Charon names, lowest first.
pub const NOTIFY_LEVELS: [&str; 4] = ["debug", "info", "warn", "error"];

/// What `/prefs/*` does (csm-api.md "Operator preferences").
#[derive(Clone, Debug)]
pub enum PrefsOp {
    User,
    /// Sanitised already.
    PutUser(crate::prefs::UiPrefs),
    Views {
        page: Option<String>,
    },
    /// Validated against the limits when merged into the stored set.
    PutView(crate::prefs::SavedView),
    DeleteView(crate::prefs::ViewKey),
}

/// A detection operation, parsed and shape-checked by the API layer.
#[derive(Clone, Debug)]
pub enum DetectOp {
    ModsecRulesApply(ModsecRulesRequest),
    ModsecRuleAction(RuleActionRequest),
    ModsecEscalation(EscalationRequest),
    EmailQueueComposition,
    EmailFlushBackscatter,
    EmailForwarders,
    EmailAvStatus,
    EmailQuarantine,
    /// A message id of exim's form (checked by the backend too).
    EmailQuarantineGet {
        id: String,
    },
    EmailQuarantineRelease {
        id: String,
    },
    EmailQuarantineDelete {
        id: String,
    },
    DbObjectBackups,
    DbObjectBackupPreview {
        key: String,
    },
    DbObjectBackupRestore {
        key: String,
    },
    EmailHeld,
    /// A Maildir file name (checked by the backend too).
    EmailHeldRelease {
        id: String,
    },
    EmailHeldDelete {
        id: String,
    },
    /// Fix a performance finding (`/perf/fix-*`): `check` is the route's.
    PerfFix {
        check: &'static str,
        finding: FindingRef,
    },
    /// Charon's rulesets: the API-managed signature rule files.
    Rulesets,
    UpsertRuleset(RulesetRequest),
    DeleteRuleset {
        id: i64,
    },
    /// An operator's own UI state (`/prefs/*`): `operator` is the hex SHA-256 of
    /// the token behind the request.
    Prefs {
        operator: String,
        op: PrefsOp,
    },
    FindingsEnriched,
    FindingDetail(FindingRef),
    /// Check a file finding again (`/verify-finding`).
    VerifyFinding(FindingRef),
    ChallengeStats,
    Hardening,
    HardeningRun,
    Accounts,
    Account {
        name: String,
    },
    Export,
    Import(StateBundle),
    GeoIp {
        ip: String,
        detail: bool,
    },
    Performance,
    /// `?verdict=` (pending, verified, fake, unknown), `?limit=`.
    VerifiedBots {
        verdict: Option<String>,
        limit: u32,
    },
    ApplyVerifiedBots(ApplyBotsRequest),
    /// The addresses as sent (each checked on its own).
    GeoIpBatch(Vec<String>),
    Settings,
    SettingsSection {
        section: String,
    },
    UpdateSettingsSection {
        section: String,
        body: serde_json::Value,
    },
    SettingsRestart,
    History(HistoryQuery),
    /// The same rows as History, for the CSV export.
    HistoryRows(HistoryQuery),
    Stats,
    StatsTrend {
        days: u32,
    },
    StatsTimeline {
        hours: u32,
    },
    Dismiss(FindingRef),
    Fix(FindingRef),
    FixBulk(FindingRef),
    Scan(ScanRequest),
    ScanJobs {
        id: Option<u64>,
    },
    CancelScanJob {
        id: u64,
    },
    ScanJobFindings {
        id: u64,
    },
    TestAlert,
    /// Charon's `GET /security/notifications/settings`.
    NotificationSettings,
    /// Charon's `PUT /security/notifications/settings` (fields optional).
    UpdateNotificationSettings(NotificationSettingsUpdate),
    Audit {
        limit: u32,
    },
    Suppressions,
    Suppress(SuppressionRequest),
    RulesStatus,
    RulesList,
    RulesReload,
    Quarantine,
    QuarantinePreview {
        id: String,
    },
    QuarantineRestore {
        id: String,
    },
    QuarantineDelete {
        ids: Vec<String>,
    },
    /// `?status=` (active = open + contained, all, or one status), `?kind=`, `?limit=`.
    Incidents {
        status: String,
        kind: Option<String>,
        limit: u32,
    },
    Incident {
        id: i64,
    },
    IncidentStatus {
        id: i64,
        status: String,
        details: String,
    },
    IncidentGroups {
        status: String,
        kind: Option<String>,
        limit: u32,
    },
    ThreatStats,
    ThreatTopAttackers {
        limit: u32,
    },
    ThreatIp {
        ip: String,
    },
    ThreatEvents {
        ip: String,
        limit: u32,
    },
    ThreatDbStats,
    ThreatClearIp {
        ip: String,
    },
    ThreatBulk(BulkActionRequest),
    UndoPending,
    UndoRun {
        id: Option<String>,
    },
    ModsecStats,
    ModsecBlocks(Window),
    ModsecEvents {
        window: Window,
        ip: Option<String>,
    },
    ModsecRules,
    EmailStats,
    EmailDeferrals(Window),
    EmailRelayAbuse(Window),
    EmailGroups {
        window: Window,
        kind: Option<String>,
    },
    /// Findings and incidents of an IP or account over the last `hours`.
    IncidentTimeline {
        ip: Option<String>,
        account: Option<String>,
        hours: u32,
    },
}

/// A report's time window (Unix seconds; `None` = unbounded) and row limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub limit: u32,
}

/// Body of `POST /api/v1/threat/bulk-action`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkActionRequest {
    /// block, unblock, whitelist, unwhitelist or clear.
    pub action: String,
    pub ips: Vec<String>,
    #[serde(default)]
    pub reason: String,
    /// Seconds (or "24h", "7d"), for block and whitelist; absent or 0 = permanent.
    #[serde(default, deserialize_with = "duration_secs")]
    #[schemars(with = "DurationSchema")]
    pub duration: Option<u64>,
}

/// Body of `POST /api/v1/undo/run`.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UndoRunRequest {
    #[serde(default)]
    pub id: String,
}

/// Body of `POST /api/v1/incidents/<id>/status`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentStatusRequest {
    pub status: String,
    #[serde(default)]
    pub details: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_seconds_or_csms_text_and_garbage_is_an_error() {
        assert_eq!(parse_duration("24h"), Ok(86_400));
        assert_eq!(parse_duration("7d"), Ok(7 * 86_400));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration(""), Ok(0));
        for bad in ["soon", "h", "12x", "-5m", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        let req: BlockRequest =
            serde_json::from_str(r#"{"ip":"192.0.2.1","duration":"2h"}"#).expect("text");
        assert_eq!(req.duration, Some(7200));
        let req: BlockRequest =
            serde_json::from_str(r#"{"ip":"192.0.2.1","duration":""}"#).expect("permanent");
        assert_eq!(req.duration, None);
        let req: BlockRequest =
            serde_json::from_str(r#"{"ip":"192.0.2.1","duration":60}"#).expect("seconds");
        assert_eq!(req.duration, Some(60));
        assert!(serde_json::from_str::<BlockRequest>(r#"{"ip":"x","duration":"soon"}"#).is_err());
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(3725), "1h2m5s");
        assert_eq!(go_duration(125), "2m5s");
    }

    #[test]
    fn a_finding_goes_out_in_csms_shape_and_comes_back_whole() {
        let f = Finding {
            id: 7,
            check: "signature_match".into(),
            severity: Severity::Info,
            message: "m".into(),
            timestamp: "2026-11-23T00:00:00Z".into(),
            last_seen: "2026-11-24T00:00:00Z".into(),
            path: Some("/var/www/a.php".into()),
            pid: Some(42),
            process: Some("php-fpm".into()),
            ip: Some("192.0.2.9".into()),
            account: Some("alice".into()),
            status: "active".into(),
            count: 3,
            has_fix: true,
            ..Default::default()
        };
        let v = serde_json::to_value(&f).expect("json");
        assert_eq!(v["severity"], 0, "info is CSM's lowest: {v}");
        assert_eq!(v["severity_label"], "info");
        assert_eq!(v["time"], "2026-11-24T00:00:00Z");
        assert_eq!(v["first_seen"], "2026-11-23T00:00:00Z");
        assert_eq!(v["file_path"], "/var/www/a.php");
        assert_eq!(v["source_ip"], "192.0.2.9");
        assert_eq!(v["cp_user"], "alice");
        assert_eq!(v["process_info"], "php-fpm");
        assert_eq!(v["process"]["pid"], 42);
        assert_eq!(v["has_fix"], true);
        let back: Finding = serde_json::from_value(v).expect("back");
        assert_eq!(back, f, "the label keeps info");
        // The shape before CSM's (alert outbox rows written by an older agent).
        let old: Finding = serde_json::from_str(
            r#"{"id":1,"check":"c","severity":"high","message":"m","timestamp":"t","process":"sh"}"#,
        )
        .expect("old shape");
        assert_eq!(
            (old.severity, old.process.as_deref()),
            (Severity::High, Some("sh"))
        );
        assert!(serde_json::from_str::<Finding>(
            r#"{"id":1,"check":"c","severity":9,"message":"m","timestamp":"t"}"#
        )
        .is_err());
    }

    #[test]
    fn a_permanent_block_says_so_in_csms_words() {
        let e = BlockEntry {
            ip: "192.0.2.1".into(),
            reason: "r".into(),
            source: "api".into(),
            blocked_at: "2026-11-23T00:00:00Z".into(),
            expires_at: None,
        };
        let v = serde_json::to_value(&e).expect("json");
        assert_eq!(
            (v["expires_at"].as_str(), v["expires_in"].as_str()),
            (Some(""), Some("permanent"))
        );
        let back: BlockEntry = serde_json::from_value(v).expect("back");
        assert_eq!(back, e);
        let soon = (time::OffsetDateTime::now_utc() + time::Duration::minutes(150))
            .format(&time::format_description::well_known::Rfc3339)
            .expect("format");
        let v = serde_json::to_value(BlockEntry {
            expires_at: Some(soon),
            ..e
        })
        .expect("json");
        assert!(
            matches!(v["expires_in"].as_str(), Some("2h29m" | "2h30m")),
            "{v}"
        );
    }
}
