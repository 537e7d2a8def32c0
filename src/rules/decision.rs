//! What the engine tells the rule engine about a call ([`CallFacts`]) and what it gets back
//! ([`Decision`]: the [`Outcome`] and the trail of [`Step`]s that explains it). Plain data,
//! serialisable for `rules explain --json` and the API.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

/// What the engine knows about a call when it asks for a decision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CallFacts {
    /// The dialled number (Request-URI user part), e.g. `490`.
    pub dialled: String,
    /// The caller's number; `None` when withheld.
    pub caller: Option<String>,
    /// Menu input so far, in order.
    pub inputs: Vec<MenuInput>,
    /// Live queue states by queue id; a queue missing here counts as staffed, empty and
    /// without a wait estimate.
    pub queues: BTreeMap<String, QueueState>,
}

/// One answer to a menu prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MenuInput {
    Key(char),
    /// The menu's timeout passed without a key.
    NoInput,
}

impl MenuInput {
    /// Parses `--keys` text: keys `0-9 * #`, `t` (or `-`) for "no key before the timeout";
    /// spaces and commas are ignored.
    pub fn parse_all(text: &str) -> Result<Vec<MenuInput>, String> {
        text.chars()
            .filter(|c| !c.is_whitespace() && *c != ',')
            .map(|c| match c {
                '0'..='9' | '*' | '#' => Ok(MenuInput::Key(c)),
                't' | 'T' | '-' => Ok(MenuInput::NoInput),
                other => Err(format!(
                    "`{other}` is not a phone key (0-9, *, #) or t for a timeout"
                )),
            })
            .collect()
    }
}

/// A queue's live state, from the ACD.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueState {
    pub logged_in_agents: u32,
    pub waiting_callers: u32,
    /// `None` while the ACD has no trustworthy estimate.
    pub estimated_wait_secs: Option<u32>,
}

/// What to do with the call now, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub outcome: Outcome,
    /// The topic chosen so far (shown to the agent).
    pub topic: Option<String>,
    /// Rules version hash the decision came from.
    pub rules_version: Arc<str>,
    pub trail: Vec<Step>,
}

/// The call's next step. `announce` prompts are played first in every outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Outcome {
    /// The dialled number is not in the rules (SIP 404).
    NotOurNumber,
    /// Play `prompts` and wait up to `timeout_secs` for a key, then ask again with it.
    Menu {
        menu: String,
        prompts: Vec<String>,
        timeout_secs: u32,
        /// 1 for the first try.
        attempt: u32,
    },
    Queue {
        queue: String,
        priority: u8,
        announce: Vec<String>,
    },
    Hangup {
        announce: Vec<String>,
    },
    Forward {
        target: String,
        announce: Vec<String>,
    },
    Callback {
        queue: String,
        announce: Vec<String>,
    },
    Voicemail {
        mailbox: String,
        announce: Vec<String>,
    },
    /// No route matched (or the rules loop): the call ends. `rules check` warns about this.
    NoRoute {
        announce: Vec<String>,
    },
}

impl Outcome {
    /// The prompts played before the action.
    pub fn announce(&self) -> &[String] {
        match self {
            Outcome::NotOurNumber => &[],
            Outcome::Menu { prompts, .. } => prompts,
            Outcome::Queue { announce, .. }
            | Outcome::Hangup { announce }
            | Outcome::Forward { announce, .. }
            | Outcome::Callback { announce, .. }
            | Outcome::Voicemail { announce, .. }
            | Outcome::NoRoute { announce } => announce,
        }
    }
}

/// One step of the trail: what happened, in data (`kind`) and in words (`text`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    #[serde(flatten)]
    pub kind: StepKind,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum StepKind {
    Number {
        dialled: String,
        number: Option<String>,
    },
    RouteSkipped {
        route: String,
        defined_at: String,
    },
    RouteTaken {
        route: String,
        defined_at: String,
        because: Vec<String>,
    },
    MenuKey {
        menu: String,
        key: char,
    },
    MenuInvalidKey {
        menu: String,
        key: char,
        failures: u32,
    },
    MenuNoInput {
        menu: String,
        failures: u32,
    },
    MenuFailed {
        menu: String,
    },
    MenuWaiting {
        menu: String,
    },
    Topic {
        topic: String,
    },
    QueueOverflow {
        queue: String,
        reason: String,
    },
    NoRoute,
    Loop,
}
