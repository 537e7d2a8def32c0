//! The validated rules the engine works with: every reference resolved, every time parsed.
//! Built by [`super::load`] from the files ([`super::file`]); read by [`super::evaluate`] and,
//! for queues and agents, by the ACD.

use std::collections::BTreeMap;
use std::fmt;

use chrono::Weekday;
use chrono_tz::Tz;
use serde::Serialize;

use super::calendar::Calendar;
use super::diagnostic::Location;

/// A group of dialled numbers that reach the same service (`[number.<id>]`).
#[derive(Debug, Clone, Serialize)]
pub struct Number {
    pub id: String,
    pub name: String,
    pub dialled: Vec<String>,
}

/// A voice menu (`[menu.<id>]`): prompts, one key per option, and what happens when the caller
/// presses nothing useful `attempts` times.
#[derive(Debug, Clone, Serialize)]
pub struct Menu {
    pub id: String,
    pub name: String,
    /// Played once, before the first `prompt`.
    pub greeting: Option<String>,
    /// The menu itself, played on every try.
    pub prompts: Vec<String>,
    pub invalid_prompt: Option<String>,
    pub no_input_prompt: Option<String>,
    /// Seconds to wait for a key after the prompt.
    pub timeout_secs: u32,
    /// Tries before `on_failure` (an invalid key or no key both count as one failed try).
    pub attempts: u32,
    pub keys: BTreeMap<char, Action>,
    pub on_failure: Action,
}

/// What the caller wants (`[topic.<id>]`), chosen in a menu; routes look at it.
#[derive(Debug, Clone, Serialize)]
pub struct Topic {
    pub id: String,
    /// Shown to the agent ("Fundbüro – +49…") and in explanations.
    pub name: String,
    pub description: Option<String>,
}

/// How a queue picks the next agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    LongestIdle,
    RoundRobin,
    FewestCalls,
    RingAll,
    Linear,
    Random,
}

impl Strategy {
    pub const ALL: &[(&str, Strategy)] = &[
        ("longest-idle", Strategy::LongestIdle),
        ("round-robin", Strategy::RoundRobin),
        ("fewest-calls", Strategy::FewestCalls),
        ("ring-all", Strategy::RingAll),
        ("linear", Strategy::Linear),
        ("random", Strategy::Random),
    ];
}

/// Widen the agent pool after a caller waited this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Escalation {
    pub after_secs: u32,
    pub min_level: u8,
}

/// "`percent` % of calls answered within `within_secs` seconds."
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ServiceLevel {
    pub percent: u8,
    pub within_secs: u32,
}

/// A department queue (`[queue.<id>]`).
#[derive(Debug, Clone, Serialize)]
pub struct Queue {
    pub id: String,
    pub name: String,
    pub department: Option<String>,
    pub strategy: Strategy,
    /// Agents need this skill at `min_level` or better; `None`: the queue's id is the skill.
    pub skill: String,
    pub min_level: u8,
    pub escalation: Vec<Escalation>,
    pub max_length: Option<u32>,
    pub max_wait_secs: Option<u32>,
    pub service_level: Option<ServiceLevel>,
    pub ring_timeout_secs: u32,
    pub wrap_up_secs: u32,
    pub entry_prompt: Option<String>,
    pub music_on_hold: Option<String>,
    pub announce_position_every_secs: Option<u32>,
    pub leave_key: Option<char>,
    pub on_leave: Option<Action>,
    pub on_full: Option<Action>,
    pub on_max_wait: Option<Action>,
    pub on_no_agents: Option<Action>,
}

/// Where an agent's password for SIP digest authentication comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordSource {
    /// The name of an environment variable holding the password.
    Env(String),
    /// HA1 = MD5(user:realm:password), hex.
    Ha1(String),
}

/// How the engine reaches an agent's phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    /// The phone REGISTERs with the engine as this user.
    Registration {
        user: String,
        password: PasswordSource,
    },
    /// A fixed SIP URI (e.g. a desk phone on the city's PBX).
    Uri(String),
}

/// An agent (`[agent.<id>]`).
#[derive(Debug, Clone, Serialize)]
pub struct Agent {
    pub id: String,
    pub name: String,
    /// Skill → level 1 (basic) … 9 (expert).
    pub skills: BTreeMap<String, u8>,
    pub reach: Reach,
    pub wrap_up_secs: Option<u32>,
}

/// A calendar (`[calendar.<id>]`) ready to answer "open at this instant?".
#[derive(Debug, Clone)]
pub struct CalendarRules {
    pub id: String,
    pub name: String,
    pub timezone: Tz,
    /// `Some(text)` while the city has not confirmed these hours.
    pub to_be_confirmed: Option<String>,
    pub calendar: Calendar,
}

impl CalendarRules {
    /// "Mo 08:30-13:00; Di 08:30-18:00; …" (closed days left out).
    pub fn hours_summary(&self) -> String {
        let weekly = &self.calendar.spec().weekly;
        let parts: Vec<String> = WEEKDAYS
            .iter()
            .filter(|(_, _, day)| !weekly.on(*day).is_empty())
            .map(|(name, _, day)| {
                let ranges: Vec<String> = weekly.on(*day).iter().map(ToString::to_string).collect();
                format!("{name} {}", ranges.join(", "))
            })
            .collect();
        if parts.is_empty() {
            "never open".to_string()
        } else {
            parts.join("; ")
        }
    }
}

/// German and English two-letter weekday names, Monday first.
pub const WEEKDAYS: [(&str, &str, Weekday); 7] = [
    ("Mo", "Mo", Weekday::Mon),
    ("Di", "Tu", Weekday::Tue),
    ("Mi", "We", Weekday::Wed),
    ("Do", "Th", Weekday::Thu),
    ("Fr", "Fr", Weekday::Fri),
    ("Sa", "Sa", Weekday::Sat),
    ("So", "Su", Weekday::Sun),
];

/// The prompts a queue's position announcements need: `position_prefix`, `num_1` … `num_20`,
/// `position_suffix`.
pub fn position_prompts() -> Vec<String> {
    let numbers = (1..=20).map(|n| format!("num_{n}"));
    std::iter::once("position_prefix".to_string())
        .chain(numbers)
        .chain(std::iter::once("position_suffix".to_string()))
        .collect()
}

/// One ordered route (`[[route]]`): when all conditions hold, `then` happens.
#[derive(Debug, Clone, Serialize)]
pub struct Route {
    pub id: String,
    pub description: Option<String>,
    /// `routes.toml:12` — where the route starts, for explanations.
    pub defined_at: String,
    /// Where the route's id is, for messages.
    #[serde(skip)]
    pub location: Location,
    pub when: Conditions,
    pub then: Action,
}

/// The `when` of a route. Every condition that is present must hold; absent ones always do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Conditions {
    /// Dialled number group ids (`[number.<id>]`), any of them.
    pub number: Option<Vec<String>>,
    /// Caller number patterns, any of them.
    pub caller: Option<Vec<CallerPattern>>,
    /// Chosen topics, any of them.
    pub topic: Option<Vec<String>>,
    pub open: Option<String>,
    pub closed: Option<String>,
    /// Closed for a public holiday.
    pub holiday: Option<String>,
    /// Closed for a closure day.
    pub closure: Option<String>,
    pub no_agents: Option<String>,
    pub queue_full: Option<String>,
    pub wait_above: Option<WaitAbove>,
}

impl Conditions {
    pub fn is_empty(&self) -> bool {
        *self == Conditions::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaitAbove {
    pub queue: String,
    pub secs: u32,
}

/// A caller number pattern: digits and `+`, `?` for one character, `*` for any run of
/// characters; `anonymous` matches calls without a caller number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CallerPattern(pub String);

impl CallerPattern {
    pub fn matches(&self, caller: Option<&str>) -> bool {
        match caller {
            None => self.0 == "anonymous",
            Some(number) if number.eq_ignore_ascii_case("anonymous") => self.0 == "anonymous",
            Some(number) => {
                glob(self.0.as_bytes(), number.as_bytes())
                    || normalize_number(number)
                        .is_some_and(|n| glob(self.0.as_bytes(), n.as_bytes()))
            }
        }
    }
}

/// `0049…` → `+49…`, `0…` (national) → `+49…`; `None` when nothing changes.
pub fn normalize_number(number: &str) -> Option<String> {
    match number.strip_prefix("00") {
        Some(rest) => Some(format!("+{rest}")),
        None => number.strip_prefix('0').map(|rest| format!("+49{rest}")),
    }
}

fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

/// What happens to a call: prompts (`announce`) first, then `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    pub announce: Vec<String>,
    #[serde(flatten)]
    pub kind: ActionKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Play this menu and collect a key.
    Menu(String),
    /// The caller's topic is now this one; the routes are checked again.
    Topic(String),
    /// Wait in this queue for an agent (higher priority is served first).
    Queue { queue: String, priority: u8 },
    /// End the call.
    Hangup,
    /// Hand the call to a SIP URI or phone number.
    Forward(String),
    /// Take the caller's number; an agent of this queue calls back.
    Callback(String),
    /// Record a message into this mailbox.
    Voicemail(String),
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionKind::Menu(menu) => write!(f, "play menu `{menu}`"),
            ActionKind::Topic(topic) => write!(f, "set topic `{topic}`"),
            ActionKind::Queue { queue, priority } if *priority > 0 => {
                write!(f, "queue `{queue}` (priority {priority})")
            }
            ActionKind::Queue { queue, .. } => write!(f, "queue `{queue}`"),
            ActionKind::Hangup => f.write_str("hang up"),
            ActionKind::Forward(target) => write!(f, "forward to {target}"),
            ActionKind::Callback(queue) => write!(f, "offer a callback from queue `{queue}`"),
            ActionKind::Voicemail(mailbox) => write!(f, "voicemail into mailbox `{mailbox}`"),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.announce.is_empty() {
            write!(f, "announce {}, then ", self.announce.join(" + "))?;
        }
        write!(f, "{}", self.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_patterns_match_raw_and_normalized_numbers() {
        let jena = CallerPattern("+493641*".into());
        assert!(jena.matches(Some("+4936411234")));
        assert!(jena.matches(Some("036411234")));
        assert!(jena.matches(Some("004936411234")));
        assert!(!jena.matches(Some("+4930123")));
        assert!(!jena.matches(None));
        let anonymous = CallerPattern("anonymous".into());
        assert!(anonymous.matches(None));
        assert!(anonymous.matches(Some("Anonymous")));
        assert!(CallerPattern("+49?".into()).matches(Some("+491")));
        assert!(!CallerPattern("+49?".into()).matches(Some("+4912")));
    }
}
