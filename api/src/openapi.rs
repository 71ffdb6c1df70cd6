// SPDX-License-Identifier: GPL-2.0-only
//! The OpenAPI 3.1 document (`GET /api/v1/openapi.json`), generated from the route
//! table: every path and method with its scope (`x-rampart-scope` and the security
//! requirement), path parameters from `{name}` segments, query parameters from the
//! `?name=` the route's summary names, and request bodies from the typed request
//! structs (JSON Schema 2020-12, OpenAPI 3.1's dialect, derived by schemars). Every
//! error is the typed [`ApiError`](crate::ApiError) body `{error, code}`.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::{
    model::{
        ApplyBotsRequest, BlockRequest, BreakGlassRequest, BulkActionRequest, BulkIpRequest,
        DecisionRequest, FindingRef, IdRequest, IdsRequest, IncidentStatusRequest, IpRequest,
        ListRequest, NotificationSettingsUpdate, RulesetRequest, ScanRequest,
        SecurityConfigRequest, StateBundle, SuppressionRequest, UndoRunRequest,
    },
    prefs::{SavedView, UiPrefs, ViewKey},
    routes::{Handler, Route, ROUTES},
    Scope,
};

/// The error body every route answers a failure with.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct ErrorBody {
    /// What went wrong, for a person.
    error: String,
    /// The HTTP status again.
    code: u16,
}

/// The request body a handler parses, and whether it may be absent.
fn request_schema(h: Handler, g: &mut SchemaGenerator) -> Option<(Schema, bool)> {
    let req = |s: Schema| Some((s, true));
    let opt = |s: Schema| Some((s, false));
    use Handler as H;
    match h {
        H::BlockIp => req(g.subschema_for::<BlockRequest>()),
        H::UnblockIp
        | H::RemoveAllow
        | H::FirewallUnban
        | H::CphulkClear
        | H::ThreatUnwhitelistIp
        | H::ThreatClearIp => req(g.subschema_for::<IpRequest>()),
        H::UnblockBulk => req(g.subschema_for::<BulkIpRequest>()),
        H::AllowIp
        | H::DenySubnet
        | H::RemoveSubnet
        | H::ThreatWhitelistIp
        | H::ThreatTempWhitelistIp
        | H::ThreatBlockIp => req(g.subschema_for::<ListRequest>()),
        H::SecurityCreateDecision => req(g.subschema_for::<DecisionRequest>()),
        H::SecurityConfigUpdate => req(g.subschema_for::<SecurityConfigRequest>()),
        H::SecurityEnable | H::SecurityDisable => opt(g.subschema_for::<BreakGlassRequest>()),
        H::VerifyFinding
        | H::Dismiss
        | H::Fix
        | H::FixBulk
        | H::PerfFixErrorLog
        | H::PerfFixDisplayErrors
        | H::PerfFixWpCron => {
            req(g.subschema_for::<FindingRef>())
        }
        H::ApplyVerifiedBots => req(g.subschema_for::<ApplyBotsRequest>()),
        H::Import => req(g.subschema_for::<StateBundle>()),
        H::PutPrefsUser => req(g.subschema_for::<UiPrefs>()),
        H::PutPrefsView => req(g.subschema_for::<SavedView>()),
        H::DeletePrefsView => req(g.subschema_for::<ViewKey>()),
        H::ThreatBulkAction => req(g.subschema_for::<BulkActionRequest>()),
        H::UndoRun => req(g.subschema_for::<UndoRunRequest>()),
        H::UpsertRuleset => req(g.subschema_for::<RulesetRequest>()),
        H::ModsecRulesApply => req(g.subschema_for::<crate::model::ModsecRulesRequest>()),
        H::ModsecRuleAction => req(g.subschema_for::<crate::model::RuleActionRequest>()),
        H::ModsecEscalation => req(g.subschema_for::<crate::model::EscalationRequest>()),
        H::IncidentStatus => req(g.subschema_for::<IncidentStatusRequest>()),
        H::ScanAccount => req(g.subschema_for::<ScanRequest>()),
        H::UpdateNotificationSettings => req(g.subschema_for::<NotificationSettingsUpdate>()),
        H::Suppress => req(g.subschema_for::<SuppressionRequest>()),
        H::QuarantineRestore => req(g.subschema_for::<IdRequest>()),
        H::QuarantineBulkDelete => req(g.subschema_for::<IdsRequest>()),
        H::DbObjectBackupRestore => req(g.subschema_for::<crate::model::KeyRequest>()),
        // Bodies of the policy or settings keys themselves, or a list of addresses.
        H::FirewallTentativeApply | H::UpdateSettingsSection => {
            req(Schema::from(json!({"type": "object"}).as_object().cloned().unwrap_or_default()))
        }
        H::GeoIpBatch => req(Schema::from(
            json!({"anyOf": [
                {"type": "array", "items": {"type": "string"}},
                {"type": "object", "properties": {"ips": {"type": "array", "items": {"type": "string"}}}}
            ]})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        )),
        _ => None,
    }
}

/// `?name=` (or `&name=`) parameters the summary names, in order, once each.
fn query_params(summary: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let b = summary.as_bytes();
    for (i, c) in b.iter().enumerate() {
        if *c != b'?' && *c != b'&' {
            continue;
        }
        let name: String = summary[i + 1..]
            .chars()
            .take_while(|ch| ch.is_ascii_lowercase() || *ch == '_')
            .collect();
        let after = summary[i + 1 + name.len()..].chars().next();
        if !name.is_empty() && after == Some('=') && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

fn tag(path: &str) -> String {
    path.trim_start_matches("/api/v1/")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string()
}

/// The backend's response schemas: what `h` answers with 2xx, None when not known.
pub type ResponseSchemas<'a> = &'a dyn Fn(Handler, &mut SchemaGenerator) -> Option<Schema>;

/// The answers of the routes the API crate serves itself.
fn own_response(h: Handler, g: &mut SchemaGenerator) -> Option<Schema> {
    match h {
        Handler::Findings => Some(g.subschema_for::<Vec<crate::model::Finding>>()),
        Handler::BlockedIps => Some(g.subschema_for::<Vec<crate::model::BlockEntry>>()),
        Handler::Capabilities => Some(g.subschema_for::<crate::handlers::Capabilities>()),
        Handler::BlockIp => Some(g.subschema_for::<crate::handlers::Blocked>()),
        _ => None,
    }
}

/// One operation: `g` makes request schemas (what is accepted), `out` response
/// schemas (what is sent: a field skipped when empty is not required there).
fn operation(
    route: &Route,
    g: &mut SchemaGenerator,
    out: &mut SchemaGenerator,
    responses: ResponseSchemas,
) -> Value {
    let mut params: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
        })
        .collect();
    params.extend(
        query_params(route.summary)
            .into_iter()
            .map(|name| json!({"name": name, "in": "query", "required": false, "schema": {"type": "string"}})),
    );
    let security = match route.scope {
        Scope::Public => json!([]),
        _ => json!([{"bearer": []}, {"session": []}]),
    };
    let mut op = json!({
        "operationId": format!("{}_{}", route.method.to_lowercase(), route.path.trim_start_matches("/api/v1/").replace(['/', '-', '{', '}', '.'], "_")),
        "summary": route.summary,
        "tags": [tag(route.path)],
        "x-rampart-scope": route.scope.as_str(),
        "security": security,
        "parameters": params,
        "responses": {
            "2XX": {"description": "Success; the body is described in the summary."},
            "default": {
                "description": "An error: 400 bad input, 401 no or too weak a credential, 403 refused, 404, 405, 409, 412, 413, 422 invalid values, 429 over a budget, 503 the host lacks the component.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
            }
        }
    });
    if let Some(schema) = responses(route.handler, out).or_else(|| own_response(route.handler, out))
    {
        op["responses"]["2XX"]["content"] = json!({"application/json": {"schema": schema}});
    }
    if let Some((schema, required)) = request_schema(route.handler, g) {
        op["requestBody"] = json!({
            "required": required,
            "content": {"application/json": {"schema": schema}}
        });
    }
    op
}

/// Point `$ref`s to the definitions in `names` at their `<Name>Out` twins.
fn rename_refs(v: &mut Value, names: &[String]) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match (k.as_str(), &mut *x) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix("#/components/schemas/") {
                            if names.iter().any(|n| n == name) {
                                *r = format!("{r}Out");
                            }
                        }
                    }
                    _ => rename_refs(x, names),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rename_refs(x, names)),
        _ => {}
    }
}

/// The whole document, with the API crate's own response types only.
pub fn document() -> Value {
    document_with(&|_, _| None)
}

/// The whole document, with the backend's response schemas.
pub fn document_with(responses: ResponseSchemas) -> Value {
    let settings = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "/components/schemas".into());
    let mut g = settings.clone().for_deserialize().into_generator();
    let mut out = settings.for_serialize().into_generator();
    let mut paths = Map::new();
    for route in ROUTES {
        let op = operation(route, &mut g, &mut out, responses);
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[route.method.to_lowercase()] = op;
    }
    let mut schemas: Map<String, Value> = g.take_definitions(true).into_iter().collect();
    // A type both accepted and sent may differ between the two (a field optional in
    // a request, always sent): the sent one is then `<Name>Out`.
    let sent: Map<String, Value> = out.take_definitions(true).into_iter().collect();
    let renamed: Vec<String> = sent
        .iter()
        .filter(|(k, v)| schemas.get(*k).is_some_and(|r| r != *v))
        .map(|(k, _)| k.clone())
        .collect();
    let rename = |v: &mut Value| rename_refs(v, &renamed);
    for (k, mut v) in sent {
        rename(&mut v);
        let name = if renamed.contains(&k) {
            format!("{k}Out")
        } else {
            k
        };
        schemas.insert(name, v);
    }
    for ops in paths.values_mut() {
        if let Value::Object(ops) = ops {
            for op in ops.values_mut() {
                rename(&mut op["responses"]);
            }
        }
    }
    schemas.insert(
        "Error".into(),
        Value::from(g.root_schema_for::<ErrorBody>()),
    );
    if let Some(Value::Object(e)) = schemas.get_mut("Error") {
        e.remove("$schema");
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Rampart API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "CSM's REST API (csm-api.md) and Charon's Cerberus suite, generated from the route table. x-rampart-scope is the token scope each route needs: read (read or admin), admin, metrics (metrics or admin), public."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": crate::auth::COOKIE_NAME}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_document_with_its_scope() {
        let doc = document();
        for r in ROUTES {
            let op = &doc["paths"][r.path][r.method.to_lowercase()];
            assert_eq!(
                op["x-rampart-scope"],
                r.scope.as_str(),
                "{} {}",
                r.method,
                r.path
            );
        }
        let ids: std::collections::HashSet<String> = ROUTES
            .iter()
            .map(|r| doc["paths"][r.path][r.method.to_lowercase()]["operationId"].to_string())
            .collect();
        assert_eq!(ids.len(), ROUTES.len(), "operation ids are unique");
    }

    #[test]
    fn a_type_sent_unlike_it_is_accepted_gets_its_own_name() {
        let mut v = json!({"a": {"$ref": "#/components/schemas/UiPrefs"}, "b": [{"$ref": "#/components/schemas/Other"}]});
        rename_refs(&mut v, &["UiPrefs".to_string()]);
        assert_eq!(v["a"]["$ref"], "#/components/schemas/UiPrefsOut");
        assert_eq!(v["b"][0]["$ref"], "#/components/schemas/Other");
    }

    #[test]
    fn bodies_and_parameters_come_from_the_types_and_summaries() {
        let doc = document();
        let block = &doc["paths"]["/api/v1/block-ip"]["post"]["requestBody"];
        assert_eq!(block["required"], true);
        let r = block["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .expect("a $ref");
        let name = r.trim_start_matches("#/components/schemas/");
        let props = &doc["components"]["schemas"][name]["properties"];
        assert!(
            props["ip"].is_object() && props["duration"].is_object(),
            "{props}"
        );
        assert_eq!(
            query_params("x (?limit=&offset=, ?ip=) and &limit="),
            ["limit", "offset", "ip"]
        );
        let inc = &doc["paths"]["/api/v1/incidents/{id}"]["get"]["parameters"][0];
        assert_eq!((&inc["name"], &inc["in"]), (&json!("id"), &json!("path")));
    }
}
