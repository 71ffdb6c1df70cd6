// SPDX-License-Identifier: GPL-2.0-only
//! JSON shapes of the API (csm-api.md "Finding fields").

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// A finding. Optional correlation fields are omitted when unknown; absence means
/// "unknown", never "global".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub id: i64,
    pub check: String,
    pub severity: Severity,
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Tenant attribution (panel webhook / verdict callback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<String>,
    /// The signature that matched (signature findings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// active, dismissed or fixed.
    #[serde(default = "active")]
    pub status: String,
    /// How often the same (check, key) was seen within the dedup window.
    #[serde(default = "one")]
    pub count: u32,
    /// RFC 3339, UTC: the latest occurrence.
    #[serde(default)]
    pub last_seen: String,
    /// SHA-256 of the file content the finding is about, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sha256: Option<String>,
}

fn active() -> String {
    "active".into()
}
fn one() -> u32 {
    1
}

/// Body of `POST /api/v1/block-ip`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockRequest {
    pub ip: String,
    #[serde(default)]
    pub reason: String,
    /// Seconds until expiry; absent or 0 = permanent.
    #[serde(default)]
    pub duration: Option<u64>,
}

/// A blocked address or subnet, as listed by `GET /api/v1/blocked-ips`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockEntry {
    /// Address or CIDR in canonical form ("203.0.113.5", "198.51.100.0/24").
    pub ip: String,
    pub reason: String,
    /// Who blocked it: "api", "cli", "auto_response", ...
    pub source: String,
    pub blocked_at: String,
    /// RFC 3339 expiry, or null for permanent.
    pub expires_at: Option<String>,
}

/// `{"ip": "..."}` bodies (unblock-ip, remove-allow, unban).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpRequest {
    pub ip: String,
}

/// Body of `POST /api/v1/unblock-bulk`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkIpRequest {
    pub ips: Vec<String>,
}

/// Body of `POST /api/v1/firewall/allow-ip`, `/firewall/deny-subnet`, `/threat/block-ip`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    /// Address or CIDR (`cidr` and `subnet` are accepted as aliases).
    #[serde(alias = "cidr", alias = "subnet")]
    pub ip: String,
    #[serde(default)]
    pub reason: String,
    /// Seconds until expiry; absent or 0 = permanent.
    #[serde(default)]
    pub duration: Option<u64>,
    /// Required to act on a /0.
    #[serde(default)]
    pub force: bool,
}

/// Body of `POST /api/v1/security/decisions` (Charon).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    pub ip: String,
    /// "block" or "allow".
    pub action: String,
    #[serde(default)]
    pub details: String,
    #[serde(default)]
    pub duration: Option<u64>,
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
    TentativeApply {
        changes: serde_json::Value,
    },
    Rollback,
    Confirm,
    Revert,
    Decisions {
        limit: u32,
    },
    SecurityStatus,
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
#[derive(Clone, Debug, Default, Deserialize)]
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
    /// Free text kept in the audit log.
    #[serde(default)]
    pub details: String,
}

/// Body of `POST /api/v1/suppressions`.
#[derive(Clone, Debug, Deserialize)]
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
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
}

/// `{"id": "..."}` (quarantine-restore).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdRequest {
    pub id: String,
}

/// `{"ids": [...]}` (quarantine/bulk-delete).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdsRequest {
    pub ids: Vec<String>,
}

/// Charon's notification settings update: every field optional, only those given
/// change (charon-api.md "Update Notification Settings").
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
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

/// A detection operation, parsed and shape-checked by the API layer.
#[derive(Clone, Debug)]
pub enum DetectOp {
    FindingsEnriched,
    FindingDetail(FindingRef),
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
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkActionRequest {
    /// block, unblock, whitelist, unwhitelist or clear.
    pub action: String,
    pub ips: Vec<String>,
    #[serde(default)]
    pub reason: String,
    /// Seconds, for block and whitelist; absent or 0 = permanent.
    #[serde(default)]
    pub duration: Option<u64>,
}

/// Body of `POST /api/v1/undo/run`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UndoRunRequest {
    #[serde(default)]
    pub id: String,
}

/// Body of `POST /api/v1/incidents/<id>/status`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentStatusRequest {
    pub status: String,
    #[serde(default)]
    pub details: String,
}
