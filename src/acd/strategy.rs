//! Picking agents for a caller among the eligible, available ones.

use std::time::Instant;

use crate::rules::model::Strategy;

/// What a strategy may look at for one candidate agent.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub id: &'a str,
    /// Position in `agents.toml` (linear order).
    pub order: usize,
    pub idle_since: Instant,
    pub calls_taken: u64,
}

/// The agents to ring: one, or all of them for ring-all. `last_rr` is the queue's round-robin
/// memory (agent order of the last agent rung), `random` a fresh number from the ACD's deterministic generator.
pub fn pick<'a>(
    strategy: Strategy,
    candidates: &[Candidate<'a>],
    last_rr: Option<usize>,
    random: u64,
) -> Vec<&'a str> {
    if candidates.is_empty() {
        return Vec::new();
    }
    let longest_idle = |c: &Candidate<'_>| (c.idle_since, c.order);
    let chosen = match strategy {
        Strategy::RingAll => return candidates.iter().map(|c| c.id).collect(),
        Strategy::LongestIdle => candidates.iter().min_by_key(|c| longest_idle(c)),
        Strategy::FewestCalls => candidates
            .iter()
            .min_by_key(|c| (c.calls_taken, longest_idle(c))),
        Strategy::Linear => candidates.iter().min_by_key(|c| c.order),
        // The next agent after the last one rung, in agent order, wrapping around.
        Strategy::RoundRobin => candidates
            .iter()
            .filter(|c| last_rr.is_none_or(|last| c.order > last))
            .min_by_key(|c| c.order)
            .or_else(|| candidates.iter().min_by_key(|c| c.order)),
        Strategy::Random => {
            let index = (random % candidates.len() as u64) as usize;
            candidates.get(index)
        }
    };
    chosen.map(|c| vec![c.id]).unwrap_or_default()
}

/// SplitMix64: a tiny deterministic generator so random distribution is reproducible in tests.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
