// SPDX-License-Identifier: GPL-2.0-only
//! The Rampart agent as a library: the `rampart` binary is a thin CLI over it, and
//! the privileged tests drive the same modules.

pub mod backend;
pub mod btf;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod detect;
pub mod events;
pub mod fanotify;
pub mod firewall;
pub mod loader;
pub mod policy;
pub mod store;
pub mod tls;
pub mod tokens;
