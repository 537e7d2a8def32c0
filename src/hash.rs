//! The hash maps of the call path (Call-IDs, agents, open calls): std's `HashMap` with
//! foldhash instead of SipHash-1-3.
//!
//! SipHash took ~11,000 instructions per queue-routed call (~3 % of the engine's, callgrind,
//! `bench/instructions.sh`): every SIP message looks its call up by Call-ID, and the ACD, the
//! records and the metrics each keep their own table. foldhash (the hasher `hashbrown`, which
//! std's map is built on, uses by default) hashes a short string in a few dozen instructions.
//! Keys from the network stay safe enough: each map gets its own random seed
//! (`RandomState`), so colliding keys cannot be computed in advance, and every such table is
//! bounded (`sip.max_calls`, the registrar's and the records' limits).

/// The call path's hasher: foldhash, randomly seeded per instance.
pub type RandomState = foldhash::fast::RandomState;

/// `std::collections::HashMap` with a per-map random foldhash seed; make one with `default()`.
pub type HashMap<K, V> = std::collections::HashMap<K, V, RandomState>;
