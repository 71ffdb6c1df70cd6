// SPDX-License-Identifier: GPL-2.0-only
//! Operator preferences and saved views (csm-api.md "Operator preferences"): the
//! shapes, and the sanitising that keeps what a browser sends from becoming anything
//! but a few short identifiers. Stored per operator (the SHA-256 of their token).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ApiError;

/// Saved views per operator, at most.
pub const MAX_VIEWS: usize = 200;
/// Params per view, at most.
pub const MAX_PARAMS: usize = 32;
/// The stored view collection (or prefs blob), at most, as JSON.
pub const MAX_BLOB: usize = 64 * 1024;
const MAX_IDENT: usize = 64;
const MAX_VALUE: usize = 256;
const MAX_NAME: usize = 80;
const MAX_TABLES: usize = 32;
const MAX_COLUMNS: usize = 64;

/// `GET/PUT /api/v1/prefs/user`. Unset values are "".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UiPrefs {
    /// comfortable or compact.
    #[serde(default)]
    pub density: String,
    /// server, local, or an IANA-shaped zone ("Europe/Bucharest").
    #[serde(default)]
    pub timezone: String,
    /// on or off.
    #[serde(default)]
    pub auto_refresh: String,
    /// Table id -> column ids, in order.
    #[serde(default)]
    pub table_columns: BTreeMap<String, Vec<String>>,
}

/// A saved filter view (`PUT /api/v1/prefs/views`; `updated` is set by the server).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SavedView {
    pub name: String,
    pub page: String,
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    /// Unix seconds of the last write.
    #[serde(default)]
    pub updated: i64,
}

/// Body of `DELETE /api/v1/prefs/views`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ViewKey {
    pub page: String,
    pub name: String,
}

/// ASCII letters, digits, `_`, `-`, `.`; 1 to 64 bytes.
pub fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_IDENT
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn is_zone(s: &str) -> bool {
    matches!(s, "server" | "local")
        || (s.len() <= MAX_IDENT
            && s.contains('/')
            && !s.starts_with('/')
            && !s.ends_with('/')
            && !s.contains("..")
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+' | b'/')))
}

impl UiPrefs {
    /// Keep only known values (CSM: "server-side sanitisation drops any other
    /// value"): an unknown density becomes "", a table or column that is not an
    /// identifier is dropped, and the lists are capped.
    pub fn sanitized(self) -> Self {
        let keep = |v: String, ok: &dyn Fn(&str) -> bool| if ok(&v) { v } else { String::new() };
        let table_columns = self
            .table_columns
            .into_iter()
            .filter(|(t, _)| is_ident(t))
            .take(MAX_TABLES)
            .map(|(t, cols)| {
                let cols = cols
                    .into_iter()
                    .filter(|c| is_ident(c))
                    .take(MAX_COLUMNS)
                    .collect();
                (t, cols)
            })
            .collect();
        Self {
            density: keep(self.density, &|v| matches!(v, "comfortable" | "compact")),
            timezone: keep(self.timezone, &is_zone),
            auto_refresh: keep(self.auto_refresh, &|v| matches!(v, "on" | "off")),
            table_columns,
        }
    }
}

impl SavedView {
    /// Refuse a view outside the limits, saying which (never trimmed silently: a
    /// view that means something else than the operator saved is worse than none).
    pub fn validate(&self) -> Result<(), ApiError> {
        let bad = |m: String| Err(ApiError::unprocessable(m));
        if !is_ident(&self.page) {
            return bad(format!(
                "page must be 1-{MAX_IDENT} ASCII letters, digits, _ - or ., got {:?}",
                self.page
            ));
        }
        if self.name.is_empty()
            || self.name.len() > MAX_NAME
            || self.name.chars().any(char::is_control)
        {
            return bad(format!(
                "name must be 1-{MAX_NAME} bytes without control characters"
            ));
        }
        if self.params.len() > MAX_PARAMS {
            return bad(format!(
                "at most {MAX_PARAMS} params, got {}",
                self.params.len()
            ));
        }
        for (k, v) in &self.params {
            if !is_ident(k) {
                return bad(format!("param key {k:?} is not an identifier"));
            }
            match v {
                serde_json::Value::String(s) if s.len() > MAX_VALUE => {
                    return bad(format!("param {k:?}: at most {MAX_VALUE} bytes"))
                }
                serde_json::Value::String(_)
                | serde_json::Value::Number(_)
                | serde_json::Value::Bool(_)
                | serde_json::Value::Null => {}
                _ => return bad(format!("param {k:?} must be a string, number or bool")),
            }
        }
        Ok(())
    }
}

/// Upsert `view` into `views` (by page and name), newest first, within the limits.
/// `views` is left as it was when the view is refused.
pub fn upsert(views: &mut Vec<SavedView>, view: SavedView) -> Result<(), ApiError> {
    view.validate()?;
    let mut next: Vec<SavedView> = views
        .iter()
        .filter(|v| !(v.page == view.page && v.name == view.name))
        .cloned()
        .collect();
    if next.len() >= MAX_VIEWS {
        return Err(ApiError::unprocessable(format!(
            "at most {MAX_VIEWS} saved views; delete one first"
        )));
    }
    next.insert(0, view);
    let size = serde_json::to_vec(&next).map_or(usize::MAX, |b| b.len());
    if size > MAX_BLOB {
        return Err(ApiError::unprocessable(format!(
            "saved views would take {size} bytes, over {MAX_BLOB}"
        )));
    }
    *views = next;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prefs_keep_known_values_and_drop_the_rest() {
        let p: UiPrefs = serde_json::from_value(json!({
            "density": "compact", "timezone": "Europe/Bucharest", "auto_refresh": "maybe",
            "table_columns": {"findings-table": ["check", "sev<script>", "when"], "../x": ["a"]}
        }))
        .expect("parse");
        let p = p.sanitized();
        assert_eq!(
            (
                p.density.as_str(),
                p.timezone.as_str(),
                p.auto_refresh.as_str()
            ),
            ("compact", "Europe/Bucharest", "")
        );
        assert_eq!(p.table_columns.len(), 1);
        assert_eq!(p.table_columns["findings-table"], ["check", "when"]);
        for zone in [
            "../../etc/passwd",
            "/UTC",
            "Europe/",
            "a b/c",
            "Europe/Bucharest\n",
        ] {
            let p = UiPrefs {
                timezone: zone.into(),
                ..Default::default()
            }
            .sanitized();
            assert_eq!(p.timezone, "", "{zone:?}");
        }
    }

    #[test]
    fn views_are_refused_outside_the_limits_and_upserted_by_page_and_name() {
        let view = |page: &str, name: &str, params: serde_json::Value| SavedView {
            page: page.into(),
            name: name.into(),
            params: serde_json::from_value(params).expect("params"),
            updated: 1,
        };
        let mut v = Vec::new();
        upsert(
            &mut v,
            view("findings", "Critical SSH", json!({"severity": "critical"})),
        )
        .expect("ok");
        upsert(
            &mut v,
            view("findings", "Critical SSH", json!({"severity": "high"})),
        )
        .expect("replace");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].params["severity"], "high");
        for bad in [
            view("find ings", "n", json!({})),
            view("findings", "", json!({})),
            view("findings", "a\u{7}b", json!({})),
            view("findings", &"n".repeat(81), json!({})),
            view("findings", "n", json!({"bad key": 1})),
            view("findings", "n", json!({"k": "v".repeat(257)})),
            view("findings", "n", json!({"k": {"nested": 1}})),
            view(
                "findings",
                "n",
                serde_json::Value::Object((0..33).map(|i| (format!("k{i}"), json!(1))).collect()),
            ),
        ] {
            let e = upsert(&mut v, bad.clone()).expect_err("refused");
            assert_eq!(e.status.as_u16(), 422, "{bad:?}");
        }
        assert_eq!(v.len(), 1, "nothing refused was kept");
        for i in 0..MAX_VIEWS - 1 {
            upsert(&mut v, view("findings", &format!("v{i}"), json!({}))).expect("room");
        }
        let e = upsert(&mut v, view("findings", "one more", json!({}))).expect_err("full");
        assert!(e.message.contains("at most 200"), "{}", e.message);
    }
}
