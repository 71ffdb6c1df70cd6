// SPDX-License-Identifier: GPL-2.0-only
//! The Rampart agent as a library: the `rampart` binary is a thin CLI over it, and
//! the privileged tests drive the same modules.
//!
//! One folder per capability, each starting itself (`start(..)` returns a handle);
//! `daemon` composes them:
//! - [`kernel`]: loading the object, pinning, component state, BTF offsets, raw BPF calls;
//! - [`sensors`]: file, exec, egress and LSM sensors with their backend choice and readers;
//! - [`firewall`]: the XDP lists, policy, attach and what the program reports;
//! - [`detection`]: signatures, the scan pool, behaviour checks, quarantine;
//! - [`logs`]: log watchers, grammars, scenarios and the auto-responder;
//! - [`store`]: SQLite on its own thread;
//! - [`supervisor`]: every long-lived task watched and restarted;
//! - [`web`]: the API's implementation per area, tokens and TLS.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod detection;
pub mod findings;
pub mod firewall;
pub mod kernel;
pub mod logs;
pub mod sensors;
pub mod store;
pub mod supervisor;
pub mod web;
