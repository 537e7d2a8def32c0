//! RFC 3261 transaction state machines (helper is writing this).
