// SPDX-License-Identifier: GPL-2.0-only
//! What a caught panic said (a leaf: the store thread and the supervisor both report
//! panics they survive).

/// The text of a panic payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
