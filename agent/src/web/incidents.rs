// SPDX-License-Identifier: GPL-2.0-only
//! The incident routes: incidents, their groups and findings, status changes, and an
//! IP's or account's timeline, with their response types.

use api::{model::Finding, ApiError};
use serde::Serialize;
use warp::http::StatusCode;

use super::{ok, store_err, AgentBackend, Reply};
use crate::store::rfc3339_unix;
use crate::store::{now_unix, FindingQuery, Incident, IncidentError, INCIDENT_STATUSES};

/// `GET /incidents/{id}`: the incident with its findings.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: Incident,
    pub findings: Vec<Finding>,
}

/// `GET /incidents/timeline`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Timeline {
    pub ip: Option<String>,
    pub account: Option<String>,
    pub hours: u32,
    pub from: String,
    pub total: i64,
    pub findings: Vec<Finding>,
    pub incidents: Vec<Incident>,
}

impl AgentBackend {
    pub(super) async fn incidents(
        &self,
        status: String,
        kind: Option<String>,
        limit: u32,
    ) -> Result<Reply, ApiError> {
        ok(&self
            .store
            .incidents(status, kind, limit)
            .await
            .map_err(store_err)?)
    }

    pub(super) async fn incident(&self, id: i64) -> Result<Reply, ApiError> {
        let (incident, ids) = self
            .store
            .incident(id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no incident {id}")))?;
        let mut findings = Vec::new();
        for fid in ids {
            if let Some(f) = self.store.finding(fid).await.map_err(store_err)? {
                findings.push(f);
            }
        }
        ok(&IncidentDetail { incident, findings })
    }

    pub(super) async fn incident_status(
        &self,
        id: i64,
        status: String,
        details: String,
        actor: &str,
    ) -> Result<Reply, ApiError> {
        let status: &'static str = INCIDENT_STATUSES
            .iter()
            .find(|s| **s == status)
            .copied()
            .ok_or_else(|| ApiError::bad_request(format!("bad status {status:?}")))?;
        match self
            .store
            .set_incident_status(id, status, details.clone(), actor.to_string())
            .await
        {
            Ok(inc) => {
                self.audit(
                    actor,
                    "incident_status",
                    &id.to_string(),
                    &format!("{status}: {details}"),
                    None,
                )
                .await;
                ok(&inc)
            }
            Err(IncidentError::NotFound(_)) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no incident {id}"),
            )),
            Err(e @ IncidentError::KeyInUse { .. }) => {
                Err(ApiError::new(StatusCode::CONFLICT, e.to_string()))
            }
            Err(IncidentError::Store(e)) => Err(store_err(e)),
        }
    }

    pub(super) async fn incident_groups(
        &self,
        status: String,
        kind: Option<String>,
        limit: u32,
    ) -> Result<Reply, ApiError> {
        ok(&self
            .store
            .incident_groups(status, kind, limit)
            .await
            .map_err(store_err)?)
    }

    pub(super) async fn incident_timeline(
        &self,
        ip: Option<String>,
        account: Option<String>,
        hours: u32,
    ) -> Result<Reply, ApiError> {
        let since = now_unix() - i64::from(hours) * 3600;
        let (findings, total) = self
            .store
            .query_findings(FindingQuery {
                ip: ip.clone(),
                account: account.clone(),
                from_unix: Some(since),
                limit: 5000,
                oldest_first: true,
                ..Default::default()
            })
            .await
            .map_err(store_err)?;
        let incidents: Vec<_> = self
            .store
            .incidents("all".into(), None, 5000)
            .await
            .map_err(store_err)?
            .into_iter()
            .filter(|i| {
                (i.kind == "ip" && Some(&i.source) == ip.as_ref())
                    || (i.kind == "account" && Some(&i.source) == account.as_ref())
            })
            .collect();
        ok(&Timeline {
            ip,
            account,
            hours,
            from: rfc3339_unix(since),
            total,
            findings,
            incidents,
        })
    }
}
