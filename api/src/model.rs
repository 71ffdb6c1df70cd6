// SPDX-License-Identifier: GPL-2.0-only
//! JSON shapes of the API (csm-api.md "Finding fields").

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Warning,
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
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// A finding. Optional correlation fields are omitted when unknown; absence means
/// "unknown", never "global".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
