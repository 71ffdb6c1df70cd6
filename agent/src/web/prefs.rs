// SPDX-License-Identifier: GPL-2.0-only
//! `/prefs/user` and `/prefs/views`: each operator's UI state, stored under the
//! SHA-256 of their token (never the token), one settings row per kind.

use api::{
    model::PrefsOp,
    prefs::{upsert, SavedView, UiPrefs},
    ApiError,
};
use serde::Serialize;
use warp::http::StatusCode;

use super::{ok, store_err, AgentBackend, Reply};
use crate::store::now_unix;

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Saved {
    pub status: &'static str,
}

fn keys(operator: &str) -> (String, String) {
    (
        format!("prefs.user.{operator}"),
        format!("prefs.views.{operator}"),
    )
}

/// A stored blob that no longer parses (written by hand, or a bug) is an empty one:
/// the operator loses UI state, never the API.
fn parse<T: serde::de::DeserializeOwned + Default>(raw: Option<String>, key: &str) -> T {
    raw.and_then(|s| {
        serde_json::from_str(&s)
            .map_err(|e| tracing::warn!(key, error = %e, "Unreadable stored preferences; starting empty."))
            .ok()
    })
    .unwrap_or_default()
}

impl AgentBackend {
    /// Change an operator's saved views in one read-modify-write on the store thread.
    async fn update_views(
        &self,
        key: String,
        change: impl FnOnce(&mut Vec<SavedView>) -> Result<(), ApiError> + Send + 'static,
    ) -> Result<Reply, ApiError> {
        let k = key.clone();
        self.store
            .update_setting(&key, move |raw| {
                let mut views: Vec<SavedView> = parse(raw, &k);
                change(&mut views)?;
                let blob = serde_json::to_string(&views)
                    .map_err(|e| ApiError::internal("serializing views", &e))?;
                Ok((Some(blob), ()))
            })
            .await
            .map_err(store_err)??;
        ok(&Saved { status: "ok" })
    }

    pub(super) async fn prefs(&self, operator: &str, op: PrefsOp) -> Result<Reply, ApiError> {
        if operator.is_empty() {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "preferences belong to a token",
            ));
        }
        let (user_key, views_key) = keys(operator);
        match op {
            PrefsOp::User => {
                let raw = self.store.setting(&user_key).await.map_err(store_err)?;
                ok(&parse::<UiPrefs>(raw, &user_key))
            }
            PrefsOp::PutUser(p) => {
                let blob = serde_json::to_string(&p)
                    .map_err(|e| ApiError::internal("serializing preferences", &e))?;
                self.store
                    .set_settings(vec![(user_key, Some(blob))])
                    .await
                    .map_err(store_err)?;
                ok(&Saved { status: "ok" })
            }
            PrefsOp::Views { page } => {
                let raw = self.store.setting(&views_key).await.map_err(store_err)?;
                let mut views: Vec<SavedView> = parse(raw, &views_key);
                views.retain(|v| page.as_ref().is_none_or(|p| *p == v.page));
                ok(&views)
            }
            PrefsOp::PutView(mut view) => {
                view.updated = now_unix();
                self.update_views(views_key, move |views| upsert(views, view))
                    .await
            }
            PrefsOp::DeleteView(k) => {
                self.update_views(views_key, move |views| {
                    let before = views.len();
                    views.retain(|v| !(v.page == k.page && v.name == k.name));
                    if views.len() == before {
                        return Err(ApiError::new(
                            StatusCode::NOT_FOUND,
                            format!("no saved view {:?} on page {:?}", k.name, k.page),
                        ));
                    }
                    Ok(())
                })
                .await
            }
        }
    }
}
