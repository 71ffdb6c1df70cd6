// SPDX-License-Identifier: GPL-2.0-only
//! Rampart's HTTPS API. The contract is `shared/spec/csm-api.md`: paths, token scopes,
//! CSRF and status codes follow it so dashboards written for that API work unchanged.
//!
//! Everything is driven by one table, [`routes::ROUTES`]: dispatch, the scope each route
//! needs, `docs/src/api.md` and the authorization tests all read it.
#![forbid(unsafe_code)]

pub mod auth;
pub mod error;
mod handlers;
pub mod listener;
pub mod live;
mod login;
pub mod model;
pub mod openapi;
pub mod prefs;
pub mod routes;
mod server;
pub mod throttle;
pub mod ui;

pub use auth::{Scope, TokenSet};
pub use error::ApiError;
pub use listener::Limits;
pub use server::{bind, filter, serve, ApiState, Backend, Listening};

/// Largest accepted request body, in bytes.
pub const fn server_max_body() -> usize {
    server::MAX_BODY_BYTES
}
