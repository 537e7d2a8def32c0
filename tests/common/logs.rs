//! Reading the engine's JSON log (`ZENTRALE_LOG__FORMAT=json`: one object per line) as events:
//! the message, the fields (`event`, `menu`, `queue`, `key`, `source`, `prompts` …) and the
//! call's span (`span.call_id`). Tests assert on these instead of scraping human-format text.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::engine::Engine;

/// Environment for [`Engine::start`] that makes the engine log JSON lines.
pub const JSON_LOG: (&str, &str) = ("ZENTRALE_LOG__FORMAT", "json");

/// One JSON log line.
#[derive(Clone, Debug)]
pub struct LogEvent {
    pub message: String,
    /// `span.call_id` of the line, if it was logged inside a call.
    pub call_id: Option<String>,
    pub fields: Map<String, Value>,
    pub line: String,
}

impl LogEvent {
    /// A field as text (strings unquoted, numbers and booleans as written).
    pub fn field(&self, name: &str) -> Option<String> {
        match self.fields.get(name)? {
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// The `event` field (`menu`, `play`, `key`, `queue`, `announce_and_hang_up` …).
    pub fn event(&self) -> Option<String> {
        self.field("event")
    }

    pub fn is_event(&self, name: &str) -> bool {
        self.event().as_deref() == Some(name)
    }

    /// The `prompts` field of an `event="play"` line (logged as a Debug list, e.g.
    /// `["greeting", "menu"]`) as names.
    pub fn prompts(&self) -> Vec<String> {
        let Some(raw) = self.field("prompts") else {
            return Vec::new();
        };
        raw.trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
            .map(|p| p.trim().trim_matches('"').to_string())
            .filter(|p| !p.is_empty())
            .collect()
    }
}

/// Every JSON line of `log` (other lines, e.g. a panic message, are skipped).
pub fn parse(log: &str) -> Vec<LogEvent> {
    log.lines()
        .filter_map(|line| {
            let Value::Object(mut object) = serde_json::from_str::<Value>(line).ok()? else {
                return None;
            };
            let call_id = object
                .get("span")
                .and_then(|s| s.get("call_id"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let message = object
                .remove("message")
                .and_then(|m| m.as_str().map(str::to_string))
                .unwrap_or_default();
            Some(LogEvent {
                message,
                call_id,
                fields: object,
                line: line.to_string(),
            })
        })
        .collect()
}

/// The engine's log lines so far.
/// (after the pause in [`Engine::log`]).
pub fn events(engine: &Engine) -> Vec<LogEvent> {
    parse(&engine.log())
}

/// The lines logged inside the call with this Call-ID.
pub fn for_call(engine: &Engine, call_id: &str) -> Vec<LogEvent> {
    events(engine)
        .into_iter()
        .filter(|e| e.call_id.as_deref() == Some(call_id))
        .collect()
}

/// The lines of one call with `event = name`.
pub fn call_events(engine: &Engine, call_id: &str, name: &str) -> Vec<LogEvent> {
    for_call(engine, call_id)
        .into_iter()
        .filter(|e| e.is_event(name))
        .collect()
}

/// Polls the log until a line satisfies `want` (returns it) or `timeout` passes (`None`).
pub fn wait_for(
    engine: &Engine,
    timeout: Duration,
    want: impl Fn(&LogEvent) -> bool,
) -> Option<LogEvent> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = events(engine).into_iter().find(|e| want(e)) {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls until the call has logged `count` lines with `event = name`; returns them.
pub fn wait_for_call_events(
    engine: &Engine,
    call_id: &str,
    name: &str,
    count: usize,
    timeout: Duration,
) -> Vec<LogEvent> {
    let deadline = Instant::now() + timeout;
    loop {
        let found = call_events(engine, call_id, name);
        if found.len() >= count || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A short summary of one call's events for assertion messages.
pub fn call_summary(engine: &Engine, call_id: &str) -> String {
    for_call(engine, call_id)
        .iter()
        .map(|e| format!("  {} {:?}", e.message, e.fields))
        .collect::<Vec<_>>()
        .join("\n")
}
