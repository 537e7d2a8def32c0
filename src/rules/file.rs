//! The rule files as written: serde structs for every section of `routing-rules/*.toml`, with
//! the source positions ([`Spanned`]) that messages point at. Nothing here is checked beyond
//! TOML types and unknown keys; [`super::load`] validates and turns these into [`super::model`].
//!
//! Every `*.toml` file in the folder may hold any of the sections; by convention each section
//! lives in the file of its name (`[queue.*]` in `queues.toml`, `[[route]]` in `routes.toml`…).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use toml::Spanned;

/// The top-level sections a rule file may contain, and what each holds.
pub const SECTIONS: &[(&str, &str)] = &[
    ("number", "[number.<id>] — dialled numbers (numbers.toml)"),
    ("menu", "[menu.<id>] — voice menus (menus.toml)"),
    ("topic", "[topic.<id>] — caller topics (topics.toml)"),
    ("queue", "[queue.<id>] — department queues (queues.toml)"),
    (
        "agent",
        "[agent.<id>] — agents and their skills (agents.toml)",
    ),
    (
        "calendar",
        "[calendar.<id>] — opening hours, holidays, closures (calendars.toml)",
    ),
    ("route", "[[route]] — ordered routes (routes.toml)"),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberDef {
    pub name: Option<String>,
    pub dialled: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MenuDef {
    pub name: Option<String>,
    pub greeting: Option<Spanned<String>>,
    pub prompt: Spanned<TextList>,
    pub invalid_prompt: Option<Spanned<String>>,
    pub no_input_prompt: Option<Spanned<String>>,
    pub timeout_secs: Option<Spanned<u32>>,
    pub attempts: Option<Spanned<u32>>,
    pub keys: Spanned<BTreeMap<String, Spanned<ActionDef>>>,
    pub on_failure: Spanned<ActionDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicDef {
    pub name: String,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueDef {
    pub name: String,
    pub department: Option<String>,
    pub strategy: Option<Spanned<String>>,
    pub skill: Option<Spanned<String>>,
    pub min_level: Option<Spanned<u8>>,
    #[serde(default)]
    pub escalation: Vec<Spanned<EscalationDef>>,
    pub max_length: Option<Spanned<u32>>,
    pub max_wait_secs: Option<Spanned<u32>>,
    pub service_level: Option<Spanned<ServiceLevelDef>>,
    pub ring_timeout_secs: Option<Spanned<u32>>,
    pub wrap_up_secs: Option<u32>,
    pub entry_prompt: Option<Spanned<String>>,
    pub music_on_hold: Option<Spanned<String>>,
    pub announce_position_every_secs: Option<Spanned<u32>>,
    pub leave_key: Option<Spanned<String>>,
    pub on_leave: Option<Spanned<ActionDef>>,
    pub on_full: Option<Spanned<ActionDef>>,
    pub on_max_wait: Option<Spanned<ActionDef>>,
    pub on_no_agents: Option<Spanned<ActionDef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationDef {
    pub after_secs: u32,
    pub min_level: u8,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceLevelDef {
    pub percent: Spanned<u8>,
    pub within_secs: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentDef {
    pub name: String,
    #[serde(default)]
    pub skills: BTreeMap<String, Spanned<u8>>,
    pub registration: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    pub password_ha1: Option<Spanned<String>>,
    pub uri: Option<Spanned<String>>,
    pub wrap_up_secs: Option<u32>,
    /// Never allowed; read only to say so clearly.
    pub password: Option<Spanned<IgnoredAny>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarDef {
    pub name: Option<String>,
    pub timezone: Option<Spanned<String>>,
    pub public_holidays: Option<Spanned<String>>,
    /// Free text; present while the hours are not confirmed (shown as a note by `rules check`).
    pub to_be_confirmed: Option<Spanned<String>>,
    /// Where the hours come from (free text, for the reader).
    pub source: Option<String>,
    #[serde(default)]
    pub hours: WeekDef,
    #[serde(default)]
    pub closure: Vec<Spanned<ClosureDef>>,
    #[serde(default, rename = "override")]
    pub overrides: Vec<Spanned<OverrideDef>>,
}

/// Opening hours per weekday (German two-letter names; English ones are accepted too).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeekDef {
    #[serde(rename = "Mo")]
    pub mo: Option<Spanned<TextList>>,
    #[serde(rename = "Di", alias = "Tu")]
    pub di: Option<Spanned<TextList>>,
    #[serde(rename = "Mi", alias = "We")]
    pub mi: Option<Spanned<TextList>>,
    #[serde(rename = "Do", alias = "Th")]
    pub r#do: Option<Spanned<TextList>>,
    #[serde(rename = "Fr")]
    pub fr: Option<Spanned<TextList>>,
    #[serde(rename = "Sa")]
    pub sa: Option<Spanned<TextList>>,
    #[serde(rename = "So", alias = "Su")]
    pub so: Option<Spanned<TextList>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosureDef {
    pub date: Option<Spanned<String>>,
    pub from: Option<Spanned<String>>,
    pub to: Option<Spanned<String>>,
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideDef {
    pub date: Option<Spanned<String>>,
    pub from: Option<Spanned<String>>,
    pub to: Option<Spanned<String>>,
    pub hours: Spanned<TextList>,
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteDef {
    pub id: Spanned<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub when: WhenDef,
    pub then: Spanned<ActionDef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhenDef {
    pub number: Option<Spanned<TextList>>,
    pub caller: Option<Spanned<TextList>>,
    pub topic: Option<Spanned<TextList>>,
    pub open: Option<Spanned<String>>,
    pub closed: Option<Spanned<String>>,
    pub holiday: Option<Spanned<String>>,
    pub closure: Option<Spanned<String>>,
    pub no_agents: Option<Spanned<String>>,
    pub queue_full: Option<Spanned<String>>,
    pub wait_above: Option<Spanned<WaitAboveDef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitAboveDef {
    pub queue: Spanned<String>,
    pub secs: u32,
}

/// What happens: optional prompts first (`announce`), then exactly one of the other keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionDef {
    #[serde(default)]
    pub announce: Vec<Spanned<String>>,
    pub menu: Option<Spanned<String>>,
    pub topic: Option<Spanned<String>>,
    pub queue: Option<Spanned<String>>,
    pub priority: Option<Spanned<u8>>,
    pub hangup: Option<Spanned<bool>>,
    pub forward: Option<Spanned<String>>,
    pub callback: Option<Spanned<String>>,
    pub voicemail: Option<Spanned<String>>,
}

/// A string or a list of strings (`topic = "fundbuero"` or `topic = ["fundbuero", "allgemein"]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextList(pub Vec<String>);

impl<'de> Deserialize<'de> for TextList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextListVisitor;

        impl<'de> Visitor<'de> for TextListVisitor {
            type Value = TextList;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<TextList, E> {
                Ok(TextList(vec![value.to_string()]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TextList, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(TextList(items))
            }
        }

        deserializer.deserialize_any(TextListVisitor)
    }
}
