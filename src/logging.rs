//! tracing set-up (helper is writing this).
