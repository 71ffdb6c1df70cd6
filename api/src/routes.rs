// SPDX-License-Identifier: GPL-2.0-only
//! The route table: the single source for dispatch, scopes, docs and auth tests.

use warp::http::StatusCode;

use crate::{ApiError, Scope};

/// Which handler serves a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handler {
    Status,
    Health,
    Capabilities,
    Components,
    Findings,
    Events,
    BlockIp,
    BlockedIps,
    Metrics,
    FirewallStatus,
    FirewallAllowed,
    FirewallSubnets,
    FirewallAudit,
    FirewallCheck,
    UnblockIp,
    UnblockBulk,
    AllowIp,
    RemoveAllow,
    DenySubnet,
    RemoveSubnet,
    FirewallFlush,
    FirewallUnban,
    ThreatBlockIp,
    FirewallTentativeApply,
    FirewallRollback,
    FirewallConfirm,
    FirewallRevert,
    SecurityDecisions,
    SecurityCreateDecision,
    SecurityStatus,
    SecurityConfig,
    SecurityConfigUpdate,
    SecurityEnable,
    SecurityDisable,
    BreakGlassGenerate,
    Rulesets,
    UpsertRuleset,
    DeleteRuleset,
    LiveLogs,
    OpenApi,
    /// The dashboard's page and assets.
    Ui,
    ModsecRulesApply,
    ModsecRuleAction,
    ModsecEscalation,
    EmailQueueComposition,
    EmailFlushBackscatter,
    EmailForwarders,
    EmailAvStatus,
    EmailQuarantine,
    EmailQuarantineGet,
    EmailQuarantineAction,
    EmailQuarantineDelete,
    DbObjectBackups,
    DbObjectBackupPreview,
    DbObjectBackupRestore,
    EmailHeld,
    EmailHeldRelease,
    EmailHeldDelete,
    PerfFixErrorLog,
    PerfFixDisplayErrors,
    PerfFixWpCron,
    NotificationSettings,
    UpdateNotificationSettings,
    FindingsEnriched,
    FindingDetail,
    History,
    HistoryCsv,
    Stats,
    StatsTrend,
    StatsTimeline,
    Dismiss,
    Fix,
    FixBulk,
    ScanAccount,
    ScanJobs,
    ScanJob,
    CancelScanJob,
    ScanJobFindings,
    ChallengeStats,
    Hardening,
    HardeningRun,
    Accounts,
    Account,
    Export,
    Import,
    GeoIp,
    GeoIpBatch,
    Performance,
    VerifiedBots,
    ApplyVerifiedBots,
    Settings,
    SettingsSection,
    UpdateSettingsSection,
    SettingsRestart,
    CphulkClear,
    VerifyFinding,
    PrefsUser,
    PutPrefsUser,
    PrefsViews,
    PutPrefsView,
    DeletePrefsView,
    TestAlert,
    Audit,
    Suppressions,
    Suppress,
    RulesStatus,
    RulesList,
    RulesReload,
    Quarantine,
    QuarantinePreview,
    QuarantineRestore,
    QuarantineBulkDelete,
    Incidents,
    IncidentGroups,
    Incident,
    IncidentStatus,
    IncidentTimeline,
    ThreatStats,
    ThreatTopAttackers,
    ThreatIp,
    ThreatEvents,
    ThreatDbStats,
    ThreatWhitelist,
    ThreatWhitelistIp,
    ThreatTempWhitelistIp,
    ThreatClearIp,
    ThreatUnwhitelistIp,
    ThreatBulkAction,
    UndoPending,
    UndoRun,
    ModsecStats,
    ModsecBlocks,
    ModsecEvents,
    ModsecRules,
    EmailStats,
    EmailDeferrals,
    EmailRelayAbuse,
    EmailGroups,
    Login,
    Logout,
}

#[derive(Debug)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub scope: Scope,
    pub handler: Handler,
    pub summary: &'static str,
}

const fn r(
    method: &'static str,
    path: &'static str,
    scope: Scope,
    handler: Handler,
    summary: &'static str,
) -> Route {
    Route {
        method,
        path,
        scope,
        handler,
        summary,
    }
}

/// Every route the API serves. Scopes follow csm-api.md "Token scopes": read scope
/// covers status, findings, blocked-IP summaries, health, components, capabilities
/// and SSE; everything that writes needs admin.
pub const ROUTES: &[Route] = &[
    // Browser sessions (csm-contract.md): the cookie csm_auth and the CSRF token.
    r("GET", "/", Scope::Public, Handler::Ui, "The dashboard (HTML); it logs in at /login and reads the API with the session cookie"),
    r("GET", "/ui/app.js", Scope::Public, Handler::Ui, "The dashboard's script"),
    r("GET", "/ui/app.css", Scope::Public, Handler::Ui, "The dashboard's style"),
    r("GET", "/login", Scope::Public, Handler::Login, "Login form (token field)"),
    r("POST", "/login", Scope::Public, Handler::Login, "Log in with form token=... (or JSON {token}): sets the csm_auth session cookie and returns {csrf_token}; 5 attempts/min per client"),
    r("GET", "/logout", Scope::Admin, Handler::Logout, "End the cookie session (CSM: admin scope)"),
    r("POST", "/logout", Scope::Read, Handler::Logout, "End the cookie session and clear csm_auth"),
    r("GET", "/api/v1/status", Scope::Read, Handler::Status, "CSM's status: hostname, version, uptime (Go duration) and uptime_sec, severities, watchers, incidents, automation, blocklist size, capabilities, started_at_token"),
    r("GET", "/api/v1/health", Scope::Read, Handler::Health, "Daemon health: kernel programs, sensors, store, event loss"),
    r("GET", "/api/v1/challenge/stats", Scope::Read, Handler::ChallengeStats, "Challenge routing activity {enabled, pending, escalated, routed_by_check, recent}: Rampart routes no one to challenge pages, so all zero"),
    r("GET", "/api/v1/capabilities", Scope::Read, Handler::Capabilities, "Feature flags for orchestrator feature-detect {capabilities, version}"),
    r("GET", "/api/v1/components", Scope::Read, Handler::Components, "Component matrix, a bare array: status, attached, attachment mode and state per program and task"),
    r("GET", "/api/v1/findings", Scope::Read, Handler::Findings, "Current active findings"),
    r("GET", "/api/v1/events", Scope::Read, Handler::Events, "Server-Sent Events stream of findings, one JSON object per data: line"),
    r("POST", "/api/v1/block-ip", Scope::Admin, Handler::BlockIp, "Block an IP or CIDR in XDP: {ip, reason?, duration? (seconds)}"),
    r("GET", "/api/v1/blocked-ips", Scope::Read, Handler::BlockedIps, "Blocked IPs with reason and expiry"),
    r("GET", "/metrics", Scope::Metrics, Handler::Metrics, "Prometheus metrics (metrics_token or admin)"),
    // Firewall (csm-api.md "Firewall"): internals need admin.
    r("GET", "/api/v1/firewall/status", Scope::Admin, Handler::FirewallStatus, "Interfaces and modes, policy, block/allow counts, verdict counters, top dropped sources"),
    r("GET", "/api/v1/firewall/allowed", Scope::Admin, Handler::FirewallAllowed, "Allowed (never dropped) IPs and CIDRs"),
    r("GET", "/api/v1/firewall/subnets", Scope::Admin, Handler::FirewallSubnets, "Blocked subnets (CIDRs shorter than a host route)"),
    r("GET", "/api/v1/firewall/audit", Scope::Admin, Handler::FirewallAudit, "Firewall audit log, newest first (?limit=, default 100, max 5000)"),
    r("GET", "/api/v1/firewall/check", Scope::Admin, Handler::FirewallCheck, "Is an IP blocked or allowed, and by which entry (?ip=)"),
    r("POST", "/api/v1/unblock-ip", Scope::Admin, Handler::UnblockIp, "Unblock an IP or CIDR: {ip}; 404 when not blocked"),
    r("POST", "/api/v1/unblock-bulk", Scope::Admin, Handler::UnblockBulk, "Unblock many: {ips: [...]} -> {unblocked, not_found}"),
    r("POST", "/api/v1/firewall/allow-ip", Scope::Admin, Handler::AllowIp, "Allow an IP or CIDR (beats every block): {ip, reason?, duration?}"),
    r("POST", "/api/v1/firewall/remove-allow", Scope::Admin, Handler::RemoveAllow, "Remove an allow entry: {ip}; 404 when absent"),
    r("POST", "/api/v1/firewall/deny-subnet", Scope::Admin, Handler::DenySubnet, "Block a subnet: {cidr, reason?, duration?, force?}"),
    r("POST", "/api/v1/firewall/remove-subnet", Scope::Admin, Handler::RemoveSubnet, "Remove a subnet block: {cidr}; 404 when absent"),
    r("POST", "/api/v1/firewall/flush", Scope::Admin, Handler::FirewallFlush, "Remove every block (allows stay) -> {removed}"),
    r("POST", "/api/v1/firewall/unban", Scope::Admin, Handler::FirewallUnban, "Unblock an IP (and flush cPHulk where present): {ip}"),
    r("POST", "/api/v1/firewall/cphulk-clear", Scope::Admin, Handler::CphulkClear, "Flush an IP from cPanel's cPHulk only: {ip} -> {status: flushed, ip}; 503 where cPHulk is not installed"),
    r("POST", "/api/v1/threat/block-ip", Scope::Admin, Handler::ThreatBlockIp, "Block an IP permanently from the threat view: {ip, reason?}"),
    // Threat database (csm-api.md "Threat Intelligence"): threat-intel detail needs admin.
    r("GET", "/api/v1/threat/stats", Scope::Admin, Handler::ThreatStats, "Last 24 h: events, distinct IPs, per kind, hourly trend, blocked IPs"),
    r("GET", "/api/v1/threat/top-attackers", Scope::Admin, Handler::ThreatTopAttackers, "Addresses with the most events in 24 h, with score and block state (?limit=, default 25)"),
    r("GET", "/api/v1/threat/ip", Scope::Admin, Handler::ThreatIp, "One address: events, first/last seen, score, block/allow entries (?ip=)"),
    r("GET", "/api/v1/threat/events", Scope::Admin, Handler::ThreatEvents, "One address's events, newest first (?ip=&limit=, default 100)"),
    r("GET", "/api/v1/threat/db-stats", Scope::Admin, Handler::ThreatDbStats, "Threat database size: events, addresses, oldest, newest"),
    r("GET", "/api/v1/threat/whitelist", Scope::Admin, Handler::ThreatWhitelist, "Whitelisted (allowed) addresses"),
    r("POST", "/api/v1/threat/whitelist-ip", Scope::Admin, Handler::ThreatWhitelistIp, "Whitelist permanently: {ip, reason?}"),
    r("POST", "/api/v1/threat/temp-whitelist-ip", Scope::Admin, Handler::ThreatTempWhitelistIp, "Whitelist until it expires: {ip, duration (seconds), reason?}"),
    r("POST", "/api/v1/threat/clear-ip", Scope::Admin, Handler::ThreatClearIp, "Forget an address's events: {ip} -> {cleared}"),
    r("POST", "/api/v1/threat/unwhitelist-ip", Scope::Admin, Handler::ThreatUnwhitelistIp, "Remove from the whitelist: {ip}; 404 when absent"),
    r("POST", "/api/v1/threat/bulk-action", Scope::Admin, Handler::ThreatBulkAction, "Bulk {action: block|unblock|whitelist|unwhitelist|clear, ips, reason?, duration?} -> per-IP results and an undo_token (not for clear)"),
    // Bulk-action undo (csm-api.md "Bulk-action undo"): 30 s, per operator.
    r("GET", "/api/v1/undo/pending", Scope::Admin, Handler::UndoPending, "Latest pending undo entry for this operator (empty object if none)"),
    r("POST", "/api/v1/undo/run", Scope::Admin, Handler::UndoRun, "Consume an entry and dispatch its inverse: {id} (empty: latest) -> {status, action, inverse, count}; 410 when missing, consumed or expired"),
    // ModSecurity and mail reports from the parsed logs; 503 when the host has no such log.
    r("GET", "/api/v1/modsec/stats", Scope::Read, Handler::ModsecStats, "WAF statistics: totals, last 24 h, top rules and hosts"),
    r("GET", "/api/v1/modsec/blocks", Scope::Read, Handler::ModsecBlocks, "Denied requests aggregated per IP (?from=&to=&limit=)"),
    r("GET", "/api/v1/modsec/events", Scope::Read, Handler::ModsecEvents, "WAF records, newest first, with their rules (?ip=&from=&to=&limit=)"),
    r("GET", "/api/v1/modsec/rules", Scope::Admin, Handler::ModsecRules, "Rules the audit log has named, with hits and last seen"),
    r("GET", "/api/v1/email/stats", Scope::Admin, Handler::EmailStats, "Mail counts of the last 24 h: auth failures, rejected recipients, deferrals, outbound volume, top senders"),
    r("GET", "/api/v1/email/deferrals", Scope::Read, Handler::EmailDeferrals, "Outbound deferrals per provider and sending IP with reason codes, from exim's mainlog (?from=&to=&limit=)"),
    r("GET", "/api/v1/email/relay-abuse", Scope::Read, Handler::EmailRelayAbuse, "Outbound mail floods per account with the sending scripts (?from=&to=&limit=)"),
    r("POST", "/api/v1/modsec/rules/apply", Scope::Admin, Handler::ModsecRulesApply, "Replace the custom ModSecurity rules in modsec.custom_rules {rules} -> {status, rules, file, tested, reloaded, output}; 400 naming the line for anything but rule directives (no Include, SecAuditLog, exec:), 422 when the web server's config test fails (the previous file is back), 503 without the file"),
    r("POST", "/api/v1/modsec/rules/escalation", Scope::Admin, Handler::ModsecRuleAction, "Change a ModSecurity rule's action {rule_id, action: deny|block|pass|log|default, severity?} as SecRuleUpdateActionById in the same file -> {status, rule_id, actions, file, tested, reloaded, output}"),
    r("POST", "/api/v1/rules/modsec-escalation", Scope::Admin, Handler::ModsecEscalation, "How a rule's denials count toward the modsec_blocks scenario {rule_id, escalation: ignore|count|block|default} -> {status, overrides}; block: one denial handles the client at once"),
    r("GET", "/api/v1/email/queue-composition", Scope::Read, Handler::EmailQueueComposition, "exim's queue from its spool: total, real vs bounce backscatter, frozen, oldest age, top pending recipients and domains, top sender domains; 503 without an exim spool"),
    r("POST", "/api/v1/email/queue/flush-backscatter", Scope::Admin, Handler::EmailFlushBackscatter, "Remove the frozen bounces (null sender) from exim's queue with exim -Mrm -> {candidates, removed, failed}; 503 without exim"),
    r("GET", "/api/v1/email/forwarders", Scope::Read, Handler::EmailForwarders, "cPanel's forwarders (mail.valiases_dir): each address with its destinations (address, pipe, file, fail, blackhole), external ones with their provider, and whether a copy stays local; 503 without the directory"),
    r("GET", "/api/v1/email/av/status", Scope::Admin, Handler::EmailAvStatus, "The mail AV: enabled, clamd_available, clamd_socket, yarax_available, yarax_rule_count, watcher_mode (inotify or disabled, with the reason), quarantined, and counters of messages scanned, infected, held and not held"),
    r("GET", "/api/v1/email/held", Scope::Admin, Handler::EmailHeld, "Forwarded copies exim's forward guard held (mail.forward_guard.held_dir), oldest first: id, forwarder, recipient, sender, reasons (bounce_backscatter, spam_flagged), held_at, size; [] when none"),
    r("POST", "/api/v1/email/held/{id}/release", Scope::Admin, Handler::EmailHeldRelease, "Send a held copy to its recipient through exim (control headers stripped), then remove it -> {status: released, id}; 404 without it, 422 when it names no address, 503 without exim"),
    r("DELETE", "/api/v1/email/held/{id}", Scope::Admin, Handler::EmailHeldDelete, "Discard a held copy -> {status: deleted, id}; 404 without it"),
    r("GET", "/api/v1/email/quarantine", Scope::Admin, Handler::EmailQuarantine, "Quarantined mail, newest first: message_id, direction, from, to, subject, quarantined_at, original_spool_dir, findings [{filename, engine, signature, severity}], partial_scan, engines_used, size, sha256; [] when the mail AV is off"),
    r("GET", "/api/v1/email/quarantine/{id}", Scope::Admin, Handler::EmailQuarantineGet, "One quarantined message's metadata; 404 when there is none"),
    r("POST", "/api/v1/email/quarantine/{id}/{action}", Scope::Admin, Handler::EmailQuarantineAction, "release: put the message back in exim's queue where it came from (it is not held again) -> {status: released, message_id}; delete: discard it -> {status: deleted, message_id}; 404 without it, 409 when the queue already has that id, 503 without an exim spool"),
    r("DELETE", "/api/v1/email/quarantine/{id}", Scope::Admin, Handler::EmailQuarantineDelete, "Discard a quarantined message -> {status: deleted, message_id}; 404 without it"),
    r("GET", "/api/v1/db-object-backups", Scope::Admin, Handler::DbObjectBackups, "MySQL/MariaDB triggers, events, procedures and functions a fix of a db_malicious_object finding dropped, newest first: key, account, schema, kind, name, dropped_at, dropped_by, finding_id, body_bytes, restored, restored_at"),
    r("GET", "/api/v1/db-object-backup-preview", Scope::Admin, Handler::DbObjectBackupPreview, "A kept CREATE statement (?key=) -> {key, account, schema, kind, name, preview (8 KiB at most), truncated, total_size}; 404 without it"),
    r("POST", "/api/v1/db-object-backup-restore", Scope::Admin, Handler::DbObjectBackupRestore, "Replay a kept CREATE statement in its schema {key} -> {success, message, details}; 404 without it, 409 when restored already, 502 when the server refuses, 503 without a MySQL/MariaDB client"),
    r("GET", "/api/v1/email/groups", Scope::Read, Handler::EmailGroups, "Mail findings grouped per server row, kind=auth_failure|spam_outbreak|compromised_account|queue_alert|malware (?kind=&from=&to=&limit=)"),
    r("POST", "/api/v1/settings/firewall/tentative-apply", Scope::Admin, Handler::FirewallTentativeApply, "Apply firewall policy keys now and arm the rollback timer (firewall.tentative_timeout_secs)"),
    r("GET", "/api/v1/settings/firewall/rollback", Scope::Admin, Handler::FirewallRollback, "Pending rollback state: {pending, applied_at, expires_at, seconds_remaining, applied_by, prev_hash, new_hash}, then Rampart's {deadline, seconds_left, proposed, previous}"),
    r("POST", "/api/v1/settings/firewall/confirm", Scope::Admin, Handler::FirewallConfirm, "Keep the tentative firewall policy"),
    r("POST", "/api/v1/settings/firewall/revert", Scope::Admin, Handler::FirewallRevert, "Revert the tentative firewall policy now"),
    // Findings and detection (csm-api.md "Status & Data", "Actions", "Rules & Suppressions").
    r("GET", "/api/v1/findings/enriched", Scope::Read, Handler::FindingsEnriched, "Active findings with fix info (fix_available, fix, quarantine_id)"),
    r("GET", "/api/v1/finding-detail", Scope::Admin, Handler::FindingDetail, "One finding with its action history (?id= or ?check=&message=)"),
    r("GET", "/api/v1/history", Scope::Read, Handler::History, "Paginated history {findings, total, limit, offset, truncated} (?limit= up to 5000, &offset=&from=&to=&severity= CSM int or name, &search=&check=&status=)"),
    r("GET", "/api/v1/history/csv", Scope::Admin, Handler::HistoryCsv, "CSV export of the history (same filters, at most 5000 rows)"),
    r("GET", "/api/v1/stats", Scope::Read, Handler::Stats, "24h severity counts, by_check, last critical, accounts at risk, top accounts, auto-response and brute-force summaries"),
    r("GET", "/api/v1/stats/trend", Scope::Read, Handler::StatsTrend, "Daily severity counts for the last 30 days, a bare array (?days= up to 90)"),
    r("GET", "/api/v1/stats/timeline", Scope::Read, Handler::StatsTimeline, "Hourly severity counts, a bare array with hour HH:00 (?hours=, default 24, max 720)"),
    r("POST", "/api/v1/dismiss", Scope::Admin, Handler::Dismiss, "Dismiss findings: {id} | {ids} | {check, message} | {key} -> {status, dismissed, undo_token} (the undo puts back those still dismissed); 404 when none is active"),
    r("GET", "/api/v1/accounts", Scope::Admin, Handler::Accounts, "Hosting accounts: cPanel users where cPanel is installed, else login users from UID_MIN [{name, uid, home, shell, source, domain, plan, owner, suspended, findings_active}]"),
    r("GET", "/api/v1/account", Scope::Admin, Handler::Account, "One account's active findings, last 100 findings and quarantined files (?name=); 404 if not an account here"),
    r("GET", "/api/v1/verified-bots", Scope::Admin, Handler::VerifiedBots, "Access-log clients that claim a search-engine crawler, with the forward-confirmed reverse DNS verdict [{ip, bot, verdict, hostname, hits, ...}] (?verdict=pending|verified|fake|unknown, ?limit=); 503 without access logs"),
    r("POST", "/api/v1/verified-bots/apply", Scope::Admin, Handler::ApplyVerifiedBots, "Allow the verified crawlers and, with block_fake, block the fake ones: {allow_verified?, block_fake?, duration? (7d)} -> {status, allowed, blocked, skipped}"),
    r("GET", "/api/v1/performance", Scope::Admin, Handler::Performance, "What the host measures now: CPUs, load, memory and swap, disks of the state dir and watched trees, the agent's RSS and CPU time, PHP processes"),
    r("GET", "/api/v1/geoip", Scope::Admin, Handler::GeoIp, "Country, city and network owner of an address from the MaxMind databases (?ip=&detail=1); 503 without a database"),
    r("POST", "/api/v1/geoip/batch", Scope::Admin, Handler::GeoIpBatch, "The same for up to 1000 addresses (a JSON array); an entry that is not an address gets {ip, error}"),
    r("GET", "/api/v1/settings", Scope::Admin, Handler::Settings, "Config sections and whether the API may change each {sections, config_file, api_drop_in, restart_pending, started_at_token}"),
    r("GET", "/api/v1/settings/{section}", Scope::Admin, Handler::SettingsSection, "One config section as it is on disk, secrets shown as ********; 404 for no such section"),
    r("POST", "/api/v1/settings/{section}", Scope::Admin, Handler::UpdateSettingsSection, "Change keys of a section: checked with every config layer, written to conf.d/zz-api-settings.yaml, applied at once where the section allows it (auto_response, performance, alerts, retention, quarantine limits, geoip, infra_ips), else at restart -> {status: saved, restart_required}; 422 with the key; ******** keeps the stored secret"),
    r("POST", "/api/v1/settings/restart", Scope::Admin, Handler::SettingsRestart, "Restart the agent in place -> 202 {started_at_token}; poll /status until the token changes; 422 if the config on disk does not load"),
    r("GET", "/api/v1/export", Scope::Admin, Handler::Export, "The operator's state as a bundle {format, version, exported_at, host, suppressions, whitelist} (block lists have their own bulk import)"),
    r("POST", "/api/v1/import", Scope::Admin, Handler::Import, "Import a bundle from /export: all of it is checked first, nothing applied on an error (422 naming the entry); existing entries are kept -> {status, suppressions, whitelist, skipped}"),
    r("GET", "/api/v1/hardening", Scope::Admin, Handler::Hardening, "The last hardening audit of this host {ran_at, score, passed, failed, warnings, not_applicable, checks}; 404 before the first run"),
    r("POST", "/api/v1/hardening/run", Scope::Admin, Handler::HardeningRun, "Audit this host now (sysctls, /tmp mounts, sshd, PHP disable_functions), store and return the report"),
    r("POST", "/api/v1/verify-finding", Scope::Admin, Handler::VerifyFinding, "Check a file finding again with the rules in force: {id} | {check, message} | {key} -> {verified, state: present, changed, clean or gone, matches}; 422 for findings without a file"),
    r("POST", "/api/v1/fix", Scope::Admin, Handler::Fix, "Apply a finding's fix (signature findings: quarantine the file) and mark it fixed: {id} | {check, message}"),
    r("POST", "/api/v1/fix-bulk", Scope::Admin, Handler::FixBulk, "Fix many: {ids} -> {fixed, failed}"),
    r("POST", "/api/v1/scan-account", Scope::Admin, Handler::ScanAccount, "Scan an account's home or a path as a job: {account} | {path} -> 202 {job}"),
    r("GET", "/api/v1/scan-jobs", Scope::Read, Handler::ScanJobs, "Scan jobs and their progress (?id=)"),
    r("POST", "/api/v1/scan-jobs", Scope::Admin, Handler::ScanAccount, "Start a scan job (as scan-account): {account} | {path} -> 202 {job}"),
    r("GET", "/api/v1/scan-jobs/{id}", Scope::Read, Handler::ScanJob, "One scan job and its progress; 404 if unknown"),
    r("POST", "/api/v1/scan-jobs/{id}/cancel", Scope::Admin, Handler::CancelScanJob, "Stop a scan job: its walk queues nothing more -> {status: cancelled, job}; 409 if it finished"),
    r("GET", "/api/v1/scan-jobs/{id}/findings", Scope::Read, Handler::ScanJobFindings, "The findings a scan job reported (up to 5000)"),
    r("POST", "/api/v1/test-alert", Scope::Admin, Handler::TestAlert, "Store a test finding and send it straight through every alert channel -> {status: sent or partial, finding, channels: [{name, type, ok, error?}]}"),
    r("GET", "/api/v1/audit", Scope::Admin, Handler::Audit, "Operator audit log, newest first (?limit=, default 100, max 5000)"),
    r("GET", "/api/v1/suppressions", Scope::Admin, Handler::Suppressions, "Suppression rules with hit counts"),
    r("POST", "/api/v1/suppressions", Scope::Admin, Handler::Suppress, "Add {check?, path_glob?, account?, ip?, reason?} or delete {action: delete, id}"),
    r("GET", "/api/v1/rules/status", Scope::Admin, Handler::RulesStatus, "YAML/YARA rule counts, version, files, last reload error with file and line"),
    r("GET", "/api/v1/rules/list", Scope::Admin, Handler::RulesList, "Rule files and the rules in each"),
    r("POST", "/api/v1/rules/reload", Scope::Admin, Handler::RulesReload, "Reload rules from disk; 422 with {errors: [{file, line, message}]} keeps the previous set"),
    r("GET", "/api/v1/quarantine", Scope::Admin, Handler::Quarantine, "Quarantined files: path, owner, mode, mtime, sha256, live_state"),
    r("GET", "/api/v1/quarantine-preview", Scope::Admin, Handler::QuarantinePreview, "First 64 KiB of a quarantined file (?id=)"),
    r("POST", "/api/v1/quarantine-restore", Scope::Admin, Handler::QuarantineRestore, "Restore a quarantined file byte-identical with owner/mode/mtime: {id}; 409 if the path is taken"),
    r("POST", "/api/v1/quarantine/bulk-delete", Scope::Admin, Handler::QuarantineBulkDelete, "Delete quarantined files for good: {ids} -> {deleted, not_found}"),
    // Incidents (csm-api.md "Incidents"): findings grouped by correlation key.
    r("GET", "/api/v1/incidents", Scope::Admin, Handler::Incidents, "Incidents, most recently updated first (?status=active|all|open|contained|resolved|dismissed, default all; ?kind=; ?limit=)"),
    r("GET", "/api/v1/incidents/groups", Scope::Read, Handler::IncidentGroups, "Open/contained incidents rolled up by (kind, source) (?status= default active, ?kind=, ?limit=)"),
    r("GET", "/api/v1/incidents/{id}", Scope::Admin, Handler::Incident, "One incident with its findings; 404 if not found"),
    r("POST", "/api/v1/incidents/{id}/status", Scope::Admin, Handler::IncidentStatus, "Set status {status: open|contained|resolved|dismissed, details?}; 409 when reopening a key that has an open incident"),
    r("GET", "/api/v1/incident", Scope::Admin, Handler::IncidentTimeline, "Timeline of an IP or account: findings and incidents (?ip=&account=&hours=, default 24)"),
    r("POST", "/api/v1/perf/fix-error-log", Scope::Admin, Handler::PerfFixErrorLog, "Truncate the error_log of a perf_error_log finding {id} | {key} | {file_path} -> {status, id, check, path, action, freed_bytes, note}; 422 for a path the agent may not touch (a symlink, a hard link, outside the trees)"),
    r("POST", "/api/v1/perf/fix-display-errors", Scope::Admin, Handler::PerfFixDisplayErrors, "Set display_errors = Off in the .user.ini or php.ini of a perf_display_errors finding (same body and answer)"),
    r("POST", "/api/v1/perf/fix-wp-cron", Scope::Admin, Handler::PerfFixWpCron, "Define DISABLE_WP_CRON true in the wp-config.php of a perf_wp_cron finding; the note says the crontab line to add (same body and answer)"),
    r("GET", "/api/v1/openapi.json", Scope::Read, Handler::OpenApi, "This API as an OpenAPI 3.1 document, generated from the route table and the request types (x-rampart-scope: each route's scope)"),
    // Charon Cerberus suite.
    r("GET", "/api/v1/security/decisions", Scope::Admin, Handler::SecurityDecisions, "Charon: current decisions {decisions: [{id, source, ip, action, reason, timestamp, expires_at}]} (?limit=, default 50)"),
    r("POST", "/api/v1/security/decisions", Scope::Admin, Handler::SecurityCreateDecision, "Charon: manual decision {ip, action: block|allow, details?, duration?} -> 201"),
    r("GET", "/api/v1/security/status", Scope::Read, Handler::SecurityStatus, "Charon: enabled flag and mode of each module, and the break-glass window {disabled_until, disabled_by, disabled_via} when enforcement is off"),
    r("GET", "/api/v1/security/config", Scope::Admin, Handler::SecurityConfig, "Charon: {config: {name, enabled, admin_whitelist, crowdsec_mode, waf_mode, waf_rules_source, updated_at}}, or {config: null} before the first upsert"),
    r("POST", "/api/v1/security/config", Scope::Admin, Handler::SecurityConfigUpdate, "Charon: upsert the config -> {config}; admin_whitelist becomes firewall allow entries; enabled: false needs what /security/disable needs; 400 on an unsupported mode"),
    r("POST", "/api/v1/security/enable", Scope::Admin, Handler::SecurityEnable, "Charon: enforcement back on now {break_glass_token?} -> {enabled: true}"),
    r("POST", "/api/v1/security/disable", Scope::Admin, Handler::SecurityDisable, "Charon: enforcement off (XDP drops nothing) for duration seconds, at most firewall.disable_max_secs {break_glass_token (required unless from localhost), duration?} -> {enabled: false, disabled_until}; 403 without a valid token"),
    r("POST", "/api/v1/security/breakglass/generate", Scope::Admin, Handler::BreakGlassGenerate, "Charon: a one-time break-glass token, shown once, valid one hour -> {token, expires_at}"),
    r("GET", "/api/v1/security/rulesets", Scope::Admin, Handler::Rulesets, "Charon: rulesets {rulesets: [{id, name, source_url, mode: yaml|yara, content, file, created_at, updated_at}]}: signature rule files managed through the API"),
    r("POST", "/api/v1/security/rulesets", Scope::Admin, Handler::UpsertRuleset, "Charon: upsert a ruleset by name {name, mode: yaml|yara, content, source_url?} -> {ruleset}; the rules are compiled and reloaded, 400 with the compiler's errors (nothing changes); 503 without detection.rules_dir"),
    r("DELETE", "/api/v1/security/rulesets/{id}", Scope::Admin, Handler::DeleteRuleset, "Charon: delete a ruleset and reload the rules -> {deleted: true}; 404 if absent"),
    r("GET", "/api/v1/logs/live", Scope::Admin, Handler::LiveLogs, "Charon: WebSocket of the agent's log and findings as {level, message, timestamp, source, fields} (?level=debug|info|warn|error, ?source=agent|cerberus|waf|acl); 400 without an upgrade; ping every 30 s"),
    // Operator preferences (csm-api.md), keyed by the SHA-256 of the operator's token.
    r("GET", "/api/v1/prefs/user", Scope::Admin, Handler::PrefsUser, "This operator's UI preferences {density, timezone, auto_refresh, table_columns}; unset values are empty"),
    r("PUT", "/api/v1/prefs/user", Scope::Admin, Handler::PutPrefsUser, "Replace this operator's UI preferences; unknown values are dropped -> {status: ok}"),
    r("GET", "/api/v1/prefs/views", Scope::Admin, Handler::PrefsViews, "This operator's saved views [{name, page, params, updated}], newest first (?page=)"),
    r("PUT", "/api/v1/prefs/views", Scope::Admin, Handler::PutPrefsView, "Upsert a saved view {page, name, params} -> {status: ok}; 422 past the limits (200 views, 32 params, 64 KiB)"),
    r("DELETE", "/api/v1/prefs/views", Scope::Admin, Handler::DeletePrefsView, "Delete a saved view {page, name} -> {status: ok}; 404 if absent"),
    r("GET", "/api/v1/security/notifications/settings", Scope::Admin, Handler::NotificationSettings, "Charon: notification settings {enabled, min_log_level, notify_waf_blocks, notify_acl_denials, notify_rate_limit_hits, webhook_url, email_recipients}, read from the alert channels (404 when none)"),
    r("PUT", "/api/v1/security/notifications/settings", Scope::Admin, Handler::UpdateNotificationSettings, "Charon: update notification settings (fields optional) -> {message}; 400 on a bad min_log_level, URL or address"),
];

/// Does `path` match `pattern`, whose `{name}` segments match any one non-empty
/// segment?
pub fn matches(pattern: &str, path: &str) -> bool {
    let (mut p, mut q) = (pattern.split('/'), path.split('/'));
    loop {
        match (p.next(), q.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) if a.starts_with('{') && a.ends_with('}') && !b.is_empty() => {}
            _ => return false,
        }
    }
}

/// The value of segment `{name}` of `pattern` in `path`.
pub fn param<'a>(pattern: &str, path: &'a str, name: &str) -> Option<&'a str> {
    let want = format!("{{{name}}}");
    pattern
        .split('/')
        .zip(path.split('/'))
        .find(|(p, _)| *p == want)
        .map(|(_, v)| v)
}

/// Find the route for a request: 404 for an unknown path, 405 for a known path
/// with another method. Exact paths win over patterns (`/incidents/groups` over
/// `/incidents/{id}`).
pub fn find(method: &str, path: &str) -> Result<&'static Route, ApiError> {
    let mut path_known = false;
    let method_ok = |r: &Route| r.method == method || (method == "HEAD" && r.method == "GET");
    for exact in [true, false] {
        for route in ROUTES {
            let hit = if exact {
                route.path == path
            } else {
                route.path.contains('{') && matches(route.path, path)
            };
            if hit {
                if method_ok(route) {
                    return Ok(route);
                }
                path_known = true;
            }
        }
        if path_known {
            break;
        }
    }
    if path_known {
        Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} not allowed on {path}"),
        ))
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no such endpoint: {path}"),
        ))
    }
}

/// The route table as Markdown, for docs/src/api.md.
pub fn markdown() -> String {
    let mut s = String::from("| Method | Path | Scope | What |\n|---|---|---|---|\n");
    for r in ROUTES {
        s.push_str(&format!(
            "| {} | `{}` | {} | {} |\n",
            r.method,
            r.path,
            r.scope.as_str(),
            r.summary
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_duplicate_routes() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "duplicate route {} {}",
                    a.method,
                    a.path
                );
            }
        }
    }

    #[test]
    fn writes_need_admin() {
        for r in ROUTES {
            // Logging in and out changes only the caller's own session.
            if r.method != "GET" && !matches!(r.handler, Handler::Login | Handler::Logout) {
                assert_eq!(
                    r.scope,
                    Scope::Admin,
                    "{} {} writes and must need admin",
                    r.method,
                    r.path
                );
            }
        }
    }

    #[test]
    fn patterns_match_one_segment_and_exact_paths_win() {
        assert_eq!(
            find("GET", "/api/v1/incidents/groups")
                .map(|r| r.handler)
                .ok(),
            Some(Handler::IncidentGroups)
        );
        assert_eq!(
            find("GET", "/api/v1/incidents/42").map(|r| r.handler).ok(),
            Some(Handler::Incident)
        );
        assert_eq!(
            find("POST", "/api/v1/incidents/42/status")
                .map(|r| r.handler)
                .ok(),
            Some(Handler::IncidentStatus)
        );
        assert_eq!(
            find("GET", "/api/v1/incidents//status").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            find("DELETE", "/api/v1/incidents/42").unwrap_err().status,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            param(
                "/api/v1/incidents/{id}/status",
                "/api/v1/incidents/7/status",
                "id"
            ),
            Some("7")
        );
    }

    #[test]
    fn find_distinguishes_404_and_405() {
        assert_eq!(
            find("GET", "/api/v1/status").map(|r| r.handler).ok(),
            Some(Handler::Status)
        );
        assert_eq!(
            find("DELETE", "/api/v1/status").unwrap_err().status,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            find("GET", "/api/v1/nope").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
    }

    /// docs/src/api.md must carry the table as generated from ROUTES
    /// (regenerate with `cargo xtask docs`).
    #[test]
    fn docs_match_route_table() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/src/api.md"))
                .expect("docs/src/api.md");
        assert!(
            doc.contains(&markdown()),
            "docs/src/api.md is stale: run `cargo xtask docs`"
        );
    }
}
