// SPDX-License-Identifier: GPL-2.0-only
//! The Rampart agent as a library: the `rampart` binary is a thin CLI over it, and
//! the privileged tests drive the same modules.

pub mod backend;
mod backend_detect;
mod backend_reports;
pub mod behaviour;
pub mod btf;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod detection;
pub mod events;
pub mod fanotify;
pub mod fanotify_exec;
pub mod findings;
pub mod firewall;
pub mod loader;
pub mod logs;
pub mod policy;
pub mod quarantine;
pub mod respond;
pub mod scan;
pub mod signatures;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod undo;
