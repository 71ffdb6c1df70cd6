// SPDX-License-Identifier: GPL-2.0-only
//! `/login` and `/logout` (csm-contract.md): a token is exchanged for a session
//! cookie `csm_auth` (random, server-side, `Secure; HttpOnly; SameSite=Strict`) and
//! the CSRF token that cookie writes must carry. The token itself never becomes the
//! cookie, so logging out really ends the session.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use warp::{
    http::{header, HeaderMap, HeaderValue, StatusCode},
    Reply,
};

use crate::{
    auth::{self, COOKIE_NAME, CSRF_HEADER, SESSION_TTL},
    server::{ApiState, Backend},
    ApiError,
};

const FORM: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Rampart: log in</title><link rel="stylesheet" href="/ui/app.css"></head>
<body><main><h1>Rampart</h1><!--error-->
<form method="post" action="/login" class="inline">
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required minlength="24">
<button type="submit">Log in</button>
</form></main></body></html>
"#;

pub(crate) fn form() -> warp::reply::Response {
    warp::reply::with_header(FORM, "content-type", "text/html; charset=utf-8").into_response()
}

/// The form again, saying the token was refused (a browser's failed login).
fn form_refused() -> warp::reply::Response {
    let page = FORM.replace(
        "<!--error-->",
        r#"<p class="err" id="login-error">That token was not accepted.</p>"#,
    );
    let mut r =
        warp::reply::with_header(page, "content-type", "text/html; charset=utf-8").into_response();
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    r
}

/// A browser posting the form (it asks for HTML): it is sent on to the dashboard.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

#[derive(Deserialize)]
struct JsonLogin {
    token: String,
}

#[derive(Serialize)]
struct LoggedIn<'a> {
    status: &'static str,
    name: &'a str,
    scope: &'static str,
    csrf_token: &'a str,
    expires_in: u64,
}

/// The `token` field of an urlencoded form.
fn form_token(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .and_then(|(_, v)| percent_decode(v))
}

fn percent_decode(v: &str) -> Option<String> {
    let mut out = Vec::with_capacity(v.len());
    let mut bytes = v.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = (bytes.next()? as char).to_digit(16)?;
                let lo = (bytes.next()? as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

fn cookie(value: &str, max_age: u64) -> HeaderValue {
    let c = format!(
        "{COOKIE_NAME}={value}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Strict"
    );
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("csm_auth=; Max-Age=0"))
}

pub(crate) fn login<B: Backend>(
    state: &Arc<ApiState<B>>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<warp::reply::Response, ApiError> {
    // Login CSRF: another site must not log the browser into a session of its own.
    auth::same_origin(headers).map_err(|m| ApiError::new(StatusCode::FORBIDDEN, m))?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let token = if json {
        serde_json::from_slice::<JsonLogin>(body)
            .map(|l| l.token)
            .map_err(|e| ApiError::bad_request(format!("login body: {e}")))?
    } else {
        form_token(body).ok_or_else(|| ApiError::bad_request("login needs a token field"))?
    };
    let html = !json && wants_html(headers);
    let Some(session) = state.tokens.login(token.trim()) else {
        tracing::warn!("Failed API login.");
        if html {
            return Ok(form_refused());
        }
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid token"));
    };
    tracing::info!(name = %session.name, "API login.");
    let scope = session.grant.as_str();
    let mut resp = if html {
        let mut r = warp::reply::with_status("", StatusCode::SEE_OTHER).into_response();
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/"));
        r
    } else {
        warp::reply::json(&LoggedIn {
            status: "ok",
            name: &session.name,
            scope,
            csrf_token: &session.csrf,
            expires_in: SESSION_TTL.as_secs(),
        })
        .into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::SET_COOKIE,
        cookie(&session.id, SESSION_TTL.as_secs()),
    );
    if let Ok(v) = HeaderValue::from_str(&session.csrf) {
        h.insert(CSRF_HEADER, v);
    }
    Ok(resp)
}

pub(crate) fn logout<B: Backend>(
    state: &Arc<ApiState<B>>,
    headers: &HeaderMap,
) -> warp::reply::Response {
    let ended = state.tokens.logout(headers);
    let mut resp =
        warp::reply::json(&serde_json::json!({ "status": "logged_out", "session_ended": ended }))
            .into_response();
    resp.headers_mut().insert(header::SET_COOKIE, cookie("", 0));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_token_is_percent_decoded() {
        assert_eq!(
            form_token(b"x=1&token=a%2Bb+c%21").as_deref(),
            Some("a+b c!")
        );
        assert_eq!(form_token(b"token=%zz"), None);
        assert_eq!(form_token(b"other=1"), None);
    }
}
