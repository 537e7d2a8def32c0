//! The rule engine: the files admins edit in `routing-rules/` (numbers, menus, topics, queues,
//! agents, calendars, ordered routes), loaded with compiler-like messages, and evaluated as a
//! pure function from call facts and a time to a [`Decision`] with the trail that explains it.
//!
//! - [`file`] — the TOML format as serde structs (with source positions).
//! - [`load`] — reading a folder, validating every reference/time/range ([`load_dir`]).
//! - [`lint`] — warnings about rules that load but are probably wrong (shadowed routes…).
//! - [`model`] — the validated rules ([`Queue`], [`Agent`], [`Route`], [`Action`]…).
//! - [`calendar`] — opening hours, closures, overrides, `Europe/Berlin`, DST.
//! - [`holidays`] — the German states' public holidays (Thuringia for Jena).
//! - [`decision`] — [`CallFacts`] in, [`Decision`] (outcome + trail) out.
//! - [`evaluate`] — [`RuleSet::evaluate`]: facts + now → [`Decision`]; no I/O, no clock.
//! - [`explain`] — the admin-facing text of a decision and the `--at` time rules.
//! - [`diagnostic`] — [`Diagnostic`]: severity, `file:line:column`, excerpt, hint.
//!
//! A [`RuleSet`] is immutable; a reload builds a new one (its [`Version`] is the content hash of
//! the files and the load time) so a call can keep the one it started with.

pub mod active;
pub mod calendar;
pub mod decision;
pub mod diagnostic;
pub mod evaluate;
pub mod explain;
pub mod file;
pub mod holidays;
pub mod lint;
pub mod load;
pub mod model;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use decision::{CallFacts, Decision, MenuInput, Outcome, QueueState, Step, StepKind};
pub use diagnostic::{Diagnostic, Location, Severity};
pub use load::{load_dir, load_dir_at, load_sources};
pub use model::{
    Action, ActionKind, Agent, CalendarRules, Conditions, Menu, Number, PasswordSource, Queue,
    Reach, Route, Strategy, Topic,
};

/// Which rules a decision came from: the content hash of the rule files and when they were
/// loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Version {
    /// FNV-1a 64-bit hash of the `*.toml` files (names and contents, sorted by name), hex.
    /// Shared: every decision, call event and ACD event names it.
    pub hash: Arc<str>,
    pub loaded_at: DateTime<Utc>,
    /// How many rule files were read.
    pub files: usize,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (loaded {})",
            self.hash,
            self.loaded_at.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

/// A complete, validated set of rules. Cheap to share behind an `Arc`; never changed after
/// loading.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub version: Version,
    pub numbers: BTreeMap<String, Number>,
    pub menus: BTreeMap<String, Menu>,
    pub topics: BTreeMap<String, Topic>,
    pub queues: BTreeMap<String, Queue>,
    pub agents: BTreeMap<String, Agent>,
    pub calendars: BTreeMap<String, CalendarRules>,
    /// In the order they are checked.
    pub routes: Vec<Route>,
    /// Warnings and notes from loading (no errors: those refuse the rule set).
    pub warnings: Vec<Diagnostic>,
    /// Dialled number → number id.
    dialled: BTreeMap<String, String>,
    /// `queue.fundbuero` → where it is defined (for messages).
    definitions: BTreeMap<String, Location>,
}

impl RuleSet {
    /// The `[number.<id>]` a dialled number belongs to (exact match; `0049…` is tried as
    /// `+49…` too).
    pub fn number_for(&self, dialled: &str) -> Option<&Number> {
        let dialled = dialled.trim();
        let id = self.dialled.get(dialled).or_else(|| {
            dialled
                .strip_prefix("00")
                .and_then(|rest| self.dialled.get(&format!("+{rest}")))
        })?;
        self.numbers.get(id)
    }

    /// Every dialled number the rules answer (for the SIP layer's 404 decision).
    pub fn dialled_numbers(&self) -> impl Iterator<Item = &str> {
        self.dialled.keys().map(String::as_str)
    }

    /// Every prompt the rules can play (for loading the audio with the rules). Queues that
    /// announce positions add `position_prefix`, `num_1` … `num_20` and `position_suffix`.
    pub fn prompts_used(&self) -> BTreeSet<String> {
        let mut used = BTreeSet::new();
        for menu in self.menus.values() {
            used.extend(menu.greeting.iter().cloned());
            used.extend(menu.prompts.iter().cloned());
            used.extend(menu.invalid_prompt.iter().cloned());
            used.extend(menu.no_input_prompt.iter().cloned());
            for action in menu.keys.values().chain([&menu.on_failure]) {
                used.extend(action.announce.iter().cloned());
            }
        }
        for queue in self.queues.values() {
            used.extend(queue.entry_prompt.iter().cloned());
            used.extend(queue.music_on_hold.iter().cloned());
            let overflows = [
                &queue.on_leave,
                &queue.on_full,
                &queue.on_max_wait,
                &queue.on_no_agents,
            ];
            for action in overflows.into_iter().flatten() {
                used.extend(action.announce.iter().cloned());
            }
            if queue.announce_position_every_secs.is_some() {
                used.extend(model::position_prompts());
            }
        }
        for route in &self.routes {
            used.extend(route.then.announce.iter().cloned());
        }
        used
    }
}
