// SPDX-License-Identifier: GPL-2.0-only
//! The response type of each route, for the OpenAPI document: the JSON Schemas of
//! the structs the handlers in this module serialize (schemars derives them beside
//! `Serialize`). schemathesis checks every live answer against them
//! (tests/tests/openapi_e2e.rs), so a schema that does not match what a handler
//! sends fails the run.

use api::routes::Handler as H;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

use super::{
    bulk, cerberus, findings as f, firewall as fw, host, incidents, prefs, reports, rules,
    settings, state, status, threat, undo,
};
use crate::{
    detection::{hardening::Report, quarantine, scan::JobInfo},
    firewall::{geoip::Location, lists::CheckResult, policy::RollbackView},
    store::{self, self as logdata},
};

fn of<T: JsonSchema>(g: &mut SchemaGenerator) -> Option<Schema> {
    Some(g.subschema_for::<T>())
}

/// Either of two shapes (a handler that answers differently by outcome).
fn either<A: JsonSchema, B: JsonSchema>(g: &mut SchemaGenerator) -> Option<Schema> {
    let (a, b) = (g.subschema_for::<A>(), g.subschema_for::<B>());
    Some(json_schema!({"anyOf": [a, b]}))
}

/// The document, made once: the routes and their types are fixed at build time.
pub fn document() -> &'static serde_json::Value {
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DOC.get_or_init(|| api::openapi::document_with(&response))
}

/// The schema of what `h` answers with 2xx; None where it is not JSON of a type of
/// ours (CSV, the metrics text, the streams) or a free-form object.
pub fn response(h: H, g: &mut SchemaGenerator) -> Option<Schema> {
    match h {
        H::Status => of::<status::Status>(g),
        H::Health => of::<status::Health>(g),
        H::Components => of::<Vec<status::ComponentItem>>(g),
        H::FirewallStatus => of::<fw::FirewallStatus>(g),
        H::FirewallAllowed | H::FirewallSubnets | H::ThreatWhitelist => {
            of::<Vec<api::model::BlockEntry>>(g)
        }
        H::FirewallAudit => of::<Vec<store::AuditEntry>>(g),
        H::FirewallCheck => of::<CheckResult>(g),
        H::UnblockIp | H::RemoveAllow | H::RemoveSubnet | H::ThreatUnwhitelistIp => {
            of::<fw::Removed>(g)
        }
        H::UnblockBulk => of::<fw::BulkUnblocked>(g),
        H::AllowIp
        | H::DenySubnet
        | H::ThreatBlockIp
        | H::ThreatWhitelistIp
        | H::ThreatTempWhitelistIp => of::<fw::Listed>(g),
        H::FirewallFlush => of::<fw::Flushed>(g),
        H::FirewallUnban | H::CphulkClear => of::<fw::Unbanned>(g),
        H::FirewallTentativeApply => of::<fw::TentativeApplied>(g),
        H::FirewallRollback => of::<RollbackView>(g),
        H::FirewallConfirm | H::FirewallRevert => of::<fw::PolicyChanged>(g),
        H::SecurityDecisions => of::<fw::Decisions>(g),
        H::SecurityCreateDecision => of::<fw::DecisionCreated>(g),
        H::SecurityStatus => of::<fw::SecurityStatus>(g),
        H::SecurityConfig | H::SecurityConfigUpdate => of::<cerberus::ConfigView>(g),
        H::SecurityEnable | H::SecurityDisable => of::<cerberus::Switched>(g),
        H::BreakGlassGenerate => of::<cerberus::BreakGlass>(g),
        H::Rulesets => of::<cerberus::Rulesets>(g),
        H::UpsertRuleset => of::<cerberus::RulesetSaved>(g),
        H::DeleteRuleset => of::<cerberus::Deleted>(g),
        H::NotificationSettings => of::<crate::findings::alerts::settings::Notifications>(g),
        H::UpdateNotificationSettings => of::<f::SettingsUpdated>(g),
        H::FindingsEnriched => of::<Vec<f::Enriched>>(g),
        H::FindingDetail => of::<f::Detail>(g),
        H::History => of::<f::HistoryPage>(g),
        H::Stats => of::<f::Stats>(g),
        H::StatsTrend => of::<Vec<f::Day>>(g),
        H::StatsTimeline => of::<Vec<f::Hour>>(g),
        H::Dismiss => of::<f::Dismissed>(g),
        H::Fix => of::<f::Fixed>(g),
        H::FixBulk => of::<f::FixedBulk>(g),
        H::ScanAccount => of::<rules::ScanQueued>(g),
        H::ScanJobs => of::<Vec<JobInfo>>(g),
        H::ScanJob => of::<JobInfo>(g),
        H::CancelScanJob => of::<rules::Cancelled>(g),
        H::ScanJobFindings => of::<Vec<api::model::Finding>>(g),
        H::ChallengeStats => of::<f::ChallengeStats>(g),
        H::Hardening | H::HardeningRun => of::<Report>(g),
        H::Accounts => of::<Vec<host::Account>>(g),
        H::Account => of::<host::AccountDetail>(g),
        H::Export => of::<api::model::StateBundle>(g),
        H::Import => of::<state::Imported>(g),
        H::GeoIp => of::<Location>(g),
        H::GeoIpBatch => of::<Vec<host::BatchItem>>(g),
        H::Performance => of::<host::Performance>(g),
        H::PerfFixErrorLog | H::PerfFixDisplayErrors | H::PerfFixWpCron => of::<host::PerfFixed>(g),
        H::VerifiedBots => of::<Vec<store::BotClaim>>(g),
        H::ApplyVerifiedBots => of::<threat::BotsApplied>(g),
        H::Settings => of::<settings::SettingsIndex>(g),
        H::UpdateSettingsSection => of::<settings::SectionSaved>(g),
        H::SettingsRestart => of::<settings::Restarting>(g),
        H::VerifyFinding => of::<f::Verified>(g),
        H::PrefsUser => of::<api::prefs::UiPrefs>(g),
        H::PrefsViews => of::<Vec<api::prefs::SavedView>>(g),
        H::PutPrefsUser | H::PutPrefsView | H::DeletePrefsView => of::<prefs::Saved>(g),
        H::TestAlert => of::<f::TestAlertSent>(g),
        H::Audit => of::<Vec<store::UiAuditEntry>>(g),
        H::Suppressions => of::<Vec<store::Suppression>>(g),
        H::Suppress => either::<f::SuppressionAdded, f::SuppressionDeleted>(g),
        H::RulesStatus => of::<rules::RulesStatus<'static>>(g),
        H::RulesList => of::<Vec<rules::RulesFile<'static>>>(g),
        H::RulesReload => either::<rules::Reloaded<'static>, rules::ReloadFailed<'static>>(g),
        H::Quarantine => of::<Vec<quarantine::Entry>>(g),
        H::QuarantinePreview => of::<quarantine::Preview>(g),
        H::QuarantineRestore => of::<rules::Restored>(g),
        H::QuarantineBulkDelete => of::<rules::QuarantineDeleted>(g),
        H::Incidents => of::<Vec<store::Incident>>(g),
        H::IncidentGroups => of::<Vec<store::IncidentGroup>>(g),
        H::Incident => of::<incidents::IncidentDetail>(g),
        H::IncidentStatus => of::<store::Incident>(g),
        H::IncidentTimeline => of::<incidents::Timeline>(g),
        H::ThreatStats => of::<threat::ThreatStats>(g),
        H::ThreatTopAttackers => of::<Vec<threat::Attacker>>(g),
        H::ThreatIp => of::<threat::ThreatIpView>(g),
        H::ThreatEvents => of::<Vec<store::ThreatEvent>>(g),
        H::ThreatDbStats => of::<threat::DbStats>(g),
        H::ThreatClearIp => of::<threat::Cleared>(g),
        H::ThreatBulkAction => of::<bulk::BulkResult>(g),
        H::UndoPending => either::<undo::PendingView, bulk::NothingPending>(g),
        H::UndoRun => of::<bulk::UndoDone>(g),
        H::ModsecStats => of::<logdata::ModsecStats>(g),
        H::ModsecBlocks => of::<Vec<logdata::ModsecBlock>>(g),
        H::ModsecEvents => of::<Vec<logdata::ModsecEvent>>(g),
        H::ModsecRules => of::<Vec<logdata::ModsecRule>>(g),
        H::EmailStats => of::<logdata::EmailStats>(g),
        H::EmailDeferrals => of::<Vec<logdata::Deferral>>(g),
        H::EmailRelayAbuse => of::<Vec<reports::RelayAbuse>>(g),
        H::EmailGroups => of::<Vec<reports::MailGroup>>(g),
        H::EmailQueueComposition => of::<crate::logs::mail::Composition>(g),
        H::ModsecRulesApply | H::ModsecRuleAction => of::<reports::RulesApplied>(g),
        H::ModsecEscalation => of::<reports::EscalationSaved>(g),
        H::EmailFlushBackscatter => of::<reports::Flushed>(g),
        H::EmailForwarders => of::<crate::logs::mail::Forwarders>(g),
        H::EmailAvStatus => of::<crate::detection::mailav::AvStatus>(g),
        H::EmailQuarantine => of::<Vec<crate::detection::mailav::QuarantinedMail>>(g),
        H::EmailQuarantineGet => of::<crate::detection::mailav::QuarantinedMail>(g),
        H::DbObjectBackups => of::<Vec<crate::store::DbObjectBackup>>(g),
        H::EmailHeld => of::<Vec<crate::detection::forwardguard::HeldMessage>>(g),
        H::EmailHeldRelease | H::EmailHeldDelete => {
            of::<crate::detection::forwardguard::HeldAction>(g)
        }
        H::DbObjectBackupPreview => of::<reports::DbObjectPreview>(g),
        H::DbObjectBackupRestore => of::<reports::DbObjectRestored>(g),
        H::EmailQuarantineAction | H::EmailQuarantineDelete => {
            of::<crate::detection::mailav::MailAction>(g)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route that answers JSON of ours has its schema here or in the API crate;
    /// these answer something else.
    const NOT_TYPED: &[H] = &[
        H::Metrics,
        H::Events,
        H::LiveLogs,
        H::HistoryCsv,
        H::Login,
        H::Logout,
        H::OpenApi,
        H::Ui,
        // A config section as the files make it: free-form by nature.
        H::SettingsSection,
        // Served by the API crate with its own types.
        H::Findings,
        H::BlockedIps,
        H::Capabilities,
        H::BlockIp,
    ];

    #[test]
    fn every_json_route_has_a_response_schema() {
        let mut g = SchemaGenerator::default();
        let missing: Vec<String> = api::routes::ROUTES
            .iter()
            .filter(|r| !NOT_TYPED.contains(&r.handler) && response(r.handler, &mut g).is_none())
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert!(
            missing.is_empty(),
            "routes without a response schema: {missing:?}"
        );
        let doc = api::openapi::document_with(&response);
        let status = &doc["paths"]["/api/v1/status"]["get"]["responses"]["2XX"];
        assert!(
            status["content"]["application/json"]["schema"]["$ref"].is_string(),
            "{status}"
        );
    }
}
