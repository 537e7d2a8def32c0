//! The per-call task.
