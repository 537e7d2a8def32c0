//! `zentrale rules explain`: the time rules for `--at` and the admin-facing text of a decision.
//!
//! `--at` is local time in `Europe/Berlin` unless it carries an offset (`Z`, `+01:00`). A local
//! time that does not exist (the hour skipped when clocks go forward, e.g. 2026-03-29 02:30) is
//! the first instant the clock shows it or later: the jump itself, 03:00 CEST (01:00 UTC) — the
//! same rule the calendar uses for opening hours inside the gap
//! ([`super::calendar::WallClockTime`]). A local time that happens twice (the hour repeated when
//! clocks go back, e.g. 2026-10-25 02:30) is the first of the two (summer time, +02:00). Both
//! cases add a note to the explanation; give an offset to choose otherwise.

use std::fmt::Write as _;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::calendar::WallClockTime;
use super::decision::{CallFacts, Decision, MenuInput, Outcome};
use super::{RuleSet, Version};

/// The zone `--at` is read in.
pub const LOCAL_ZONE: Tz = chrono_tz::Europe::Berlin;

/// An instant from `--at`, with a note when the local time was skipped or repeated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct At {
    pub instant: DateTime<Utc>,
    pub note: Option<String>,
}

/// Parses `2026-12-24T10:00` (local), `2026-12-24T10:00:30`, `2026-12-24 10:00`, or the same
/// with `Z` / `+01:00`.
pub fn parse_at(text: &str) -> Result<At, String> {
    let text = text.trim();
    let with_t = text.replacen(' ', "T", 1);
    for format in ["%Y-%m-%dT%H:%M%#z", "%Y-%m-%dT%H:%M:%S%#z"] {
        if let Ok(t) = DateTime::<FixedOffset>::parse_from_str(&with_t, format) {
            return Ok(At {
                instant: t.with_timezone(&Utc),
                note: None,
            });
        }
    }
    if let Some(utc) = with_t
        .strip_suffix('Z')
        .or_else(|| with_t.strip_suffix('z'))
    {
        let naive = naive(utc)?;
        return Ok(At {
            instant: Utc.from_utc_datetime(&naive),
            note: None,
        });
    }
    let naive = naive(&with_t)?;
    Ok(resolve_local(naive, LOCAL_ZONE))
}

fn naive(text: &str) -> Result<NaiveDateTime, String> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| {
            format!(
                "`{text}` is not a time: write YYYY-MM-DDTHH:MM (Europe/Berlin), optionally with \
                 an offset like +01:00 or Z"
            )
        })
}

/// Local wall-clock time → instant, with the gap/overlap rules described at the top.
pub fn resolve_local(naive: NaiveDateTime, tz: Tz) -> At {
    match WallClockTime::new(tz, naive) {
        WallClockTime::Once(instant) => At {
            instant,
            note: None,
        },
        WallClockTime::Twice { first, second } => At {
            instant: first,
            note: Some(format!(
                "{} happens twice in {tz} (clocks go back): taken as the first, {} ({}); \
                 write {}{} for the second",
                naive.format("%Y-%m-%d %H:%M"),
                first.with_timezone(&tz).format("%H:%M %Z"),
                first.with_timezone(&tz).format("%:z"),
                naive.format("%Y-%m-%dT%H:%M"),
                second.with_timezone(&tz).format("%:z"),
            )),
        },
        WallClockTime::Skipped { next } => {
            let shown = next.with_timezone(&tz);
            At {
                instant: next,
                note: Some(format!(
                    "{} does not exist in {tz} (clocks go forward): taken as {} ({}), the \
                     moment the clocks jump past it",
                    naive.format("%Y-%m-%d %H:%M"),
                    shown.format("%H:%M %Z"),
                    shown.format("%:z"),
                )),
            }
        }
    }
}

/// Everything `rules explain --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub rules: Version,
    pub at: DateTime<Utc>,
    pub at_local: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub facts: CallFacts,
    pub decision: Decision,
    pub summary: String,
}

/// Evaluates and wraps the decision for printing.
pub fn explain(rules: &RuleSet, facts: CallFacts, at: &At) -> Explanation {
    let decision = rules.evaluate(&facts, at.instant);
    let summary = summary(rules, &decision);
    Explanation {
        rules: rules.version.clone(),
        at: at.instant,
        at_local: at
            .instant
            .with_timezone(&LOCAL_ZONE)
            .format("%a %d %b %Y %H:%M %Z")
            .to_string(),
        note: at.note.clone(),
        facts,
        decision,
        summary,
    }
}

/// One sentence: what happens to the call.
pub fn summary(rules: &RuleSet, decision: &Decision) -> String {
    let announce = |prompts: &[String]| {
        if prompts.is_empty() {
            String::new()
        } else {
            format!("announce {}, then ", prompts.join(" + "))
        }
    };
    let queue_name = |id: &str| {
        rules
            .queues
            .get(id)
            .map_or(id.to_string(), |q| q.name.clone())
    };
    match &decision.outcome {
        Outcome::NotOurNumber => "refuse the call: not a hotline number (404)".into(),
        Outcome::Menu {
            menu,
            prompts,
            timeout_secs,
            attempt,
        } => format!(
            "play {} and wait up to {timeout_secs} s for a key in menu `{menu}` (try {attempt})",
            prompts.join(" + ")
        ),
        Outcome::Queue {
            queue,
            priority,
            announce: a,
        } => format!(
            "{}put the caller in queue `{queue}` ({}){}",
            announce(a),
            queue_name(queue),
            if *priority > 0 {
                format!(" with priority {priority}")
            } else {
                String::new()
            }
        ),
        Outcome::Hangup { announce: a } => format!("{}hang up", announce(a)),
        Outcome::Forward {
            target,
            announce: a,
        } => format!("{}forward the call to {target}", announce(a)),
        Outcome::Callback { queue, announce: a } => format!(
            "{}offer a callback by queue `{queue}` ({})",
            announce(a),
            queue_name(queue)
        ),
        Outcome::Voicemail {
            mailbox,
            announce: a,
        } => format!("{}record a message into mailbox `{mailbox}`", announce(a)),
        Outcome::NoRoute { announce: a } => format!("{}hang up: no route matched", announce(a)),
    }
}

impl Explanation {
    /// The text `rules explain` prints.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let facts = &self.facts;
        let keys: String = facts
            .inputs
            .iter()
            .map(|i| match i {
                MenuInput::Key(k) => *k,
                MenuInput::NoInput => 't',
            })
            .collect();
        let _ = writeln!(
            out,
            "Call to {} from {} on {} ({} UTC){}",
            facts.dialled,
            facts.caller.as_deref().unwrap_or("anonymous"),
            self.at_local,
            self.at.format("%H:%M"),
            if keys.is_empty() {
                ", no keys pressed yet".to_string()
            } else {
                format!(", keys {keys}")
            }
        );
        if let Some(note) = &self.note {
            let _ = writeln!(out, "Note: {note}");
        }
        let _ = writeln!(out, "Rules version {}", self.rules);
        let _ = writeln!(out);
        let _ = writeln!(out, "Decision: {}", self.summary);
        if let Some(topic) = &self.decision.topic {
            let _ = writeln!(out, "Topic: {topic}");
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "How the rules got there:");
        for (i, step) in self.decision.trail.iter().enumerate() {
            let _ = writeln!(out, "{:>3}. {}", i + 1, step.text);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_are_berlin_unless_an_offset_is_given() {
        let winter = parse_at("2026-12-24T10:00").unwrap();
        assert_eq!(winter.instant.to_rfc3339(), "2026-12-24T09:00:00+00:00");
        assert_eq!(winter.note, None);
        let summer = parse_at("2026-07-01 10:00").unwrap();
        assert_eq!(summer.instant.to_rfc3339(), "2026-07-01T08:00:00+00:00");
        let utc = parse_at("2026-12-24T10:00Z").unwrap();
        assert_eq!(utc.instant.to_rfc3339(), "2026-12-24T10:00:00+00:00");
        let offset = parse_at("2026-12-24T10:00+02:00").unwrap();
        assert_eq!(offset.instant.to_rfc3339(), "2026-12-24T08:00:00+00:00");
        assert!(parse_at("24.12.2026 10:00").is_err());
    }

    #[test]
    fn skipped_local_time_moves_past_the_gap() {
        let at = parse_at("2026-03-29T02:30").unwrap();
        assert_eq!(at.instant.to_rfc3339(), "2026-03-29T01:00:00+00:00");
        let note = at.note.unwrap();
        assert!(note.contains("does not exist"), "{note}");
        assert!(note.contains("03:00 CEST"), "{note}");
    }

    #[test]
    fn repeated_local_time_is_the_first() {
        let at = parse_at("2026-10-25T02:30").unwrap();
        assert_eq!(at.instant.to_rfc3339(), "2026-10-25T00:30:00+00:00");
        let note = at.note.unwrap();
        assert!(note.contains("happens twice"), "{note}");
        assert!(note.contains("2026-10-25T02:30+01:00"), "{note}");
        let second = parse_at("2026-10-25T02:30+01:00").unwrap();
        assert_eq!(second.instant.to_rfc3339(), "2026-10-25T01:30:00+00:00");
    }
}
