//! tracing set-up: human-readable lines or JSON lines on stderr, filtered by `log.level` (or
//! `RUST_LOG` when set), and [`caller_display`] for privacy-aware logging of caller numbers.

use std::io::{BufWriter, IsTerminal};
use std::sync::OnceLock;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Log lines that may wait for the writer thread; beyond that, lines are dropped and counted
/// ([`lines_dropped`], `zentrale_log_lines_dropped_total`) rather than stalling calls.
const BUFFERED_LINES: usize = 65_536;

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Keeps the log writer thread alive; dropping it writes out what is still buffered.
pub struct LogGuard {
    _worker: WorkerGuard,
}

/// Log lines dropped because the writer thread fell behind (0 before [`init`]).
pub fn lines_dropped() -> u64 {
    DROPPED
        .get()
        .map_or(0, |counter| counter.dropped_lines() as u64)
}

/// Installs the global tracing subscriber. Logs go to stderr: human-readable lines by default,
/// one JSON object per line with `log.format = "json"`. The filter is `log.level`; a non-empty
/// `RUST_LOG` replaces it. Fails if a filter does not parse or a subscriber is already set.
///
/// Lines are formatted on the thread that logs and written by one writer thread, which writes
/// whatever has queued up with one `write` and then flushes: a call task never waits for
/// stderr (a `write` per line, under stderr's lock, was a syscall and often a futex wait for
/// every one of a call's dozen lines). Keep the returned guard until the program ends.
pub fn init(settings: &LogSettings) -> Result<LogGuard, String> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = filter(&settings.level, rust_log.as_deref())?;
    let (writer, worker) = NonBlockingBuilder::default()
        .buffered_lines_limit(BUFFERED_LINES)
        .lossy(true)
        .thread_name("zentrale-log")
        .finish(BufWriter::with_capacity(64 * 1024, std::io::stderr()));
    let _ = DROPPED.set(writer.error_counter());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let result = match settings.format {
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_span_list(false)
            .try_init(),
    };
    result
        .map(|()| LogGuard { _worker: worker })
        .map_err(|e| format!("cannot set up logging: {e}"))
}

/// The filter from `RUST_LOG` if it is set and not blank, else from `log.level`.
pub fn filter(level: &str, rust_log: Option<&str>) -> Result<EnvFilter, String> {
    match rust_log.filter(|s| !s.trim().is_empty()) {
        Some(directives) => EnvFilter::builder()
            .parse(directives)
            .map_err(|e| format!("RUST_LOG={directives:?} is not a valid tracing filter: {e}")),
        None => EnvFilter::builder()
            .parse(level)
            .map_err(|e| format!("log.level {level:?} is not a valid tracing filter: {e}")),
    }
}

/// A caller number (or a `sip:`/`sips:`/`tel:` URI) as it may appear in logs.
///
/// With `show` (`log.show_caller_numbers = true`) the input is returned unchanged. Otherwise
/// only the last two digits of the number are kept behind an ellipsis: `"+4936411234"` and
/// `"sip:+4936411234@192.0.2.1"` both become `"…34"` (the host is dropped too). Numbers with
/// fewer than six digits and non-numeric users (`anonymous`, names) become just `"…"`, since two
/// digits would give away most of a short number.
pub fn caller_display(number: &str, show: bool) -> String {
    if show {
        return number.to_owned();
    }
    let digits: Vec<char> = user_part(number)
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    if digits.len() < 6 {
        return "…".to_owned();
    }
    let mut out = String::from("…");
    out.extend(&digits[digits.len() - 2..]);
    out
}

/// The user part of a SIP or tel URI ("sip:+49361@host;user=phone" → "+49361"), or the input.
fn user_part(number: &str) -> &str {
    let s = number.trim().trim_start_matches('<');
    let s = ["sips:", "sip:", "tel:"]
        .iter()
        .find_map(|scheme| {
            s.get(..scheme.len())
                .filter(|p| p.eq_ignore_ascii_case(scheme))
                .map(|_| &s[scheme.len()..])
        })
        .unwrap_or(s);
    let end = s.find(['@', ';', '>', '?']).unwrap_or(s.len());
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_numbers_are_shortened_unless_shown() {
        assert_eq!(caller_display("+4936411234", false), "…34");
        assert_eq!(caller_display("03641490", false), "…90");
        assert_eq!(
            caller_display("sip:+4936411234@192.0.2.1:5060", false),
            "…34"
        );
        assert_eq!(
            caller_display("<sips:0364112345@example.org>", false),
            "…45"
        );
        assert_eq!(
            caller_display("tel:+49-3641-1234;phone-context=x", false),
            "…34"
        );
        assert_eq!(
            caller_display("SIP:03641123456@host;user=phone", false),
            "…56"
        );
        assert_eq!(
            caller_display("sip:anonymous@anonymous.invalid", false),
            "…"
        );
        assert_eq!(caller_display("490", false), "…");
        assert_eq!(caller_display("", false), "…");
        assert_eq!(caller_display("+4936411234", true), "+4936411234");
        assert_eq!(
            caller_display("sip:+4936411234@192.0.2.1", true),
            "sip:+4936411234@192.0.2.1"
        );
    }

    #[test]
    fn rust_log_overrides_log_level() {
        assert!(filter("info", None).is_ok());
        assert!(filter("info", Some("zentrale=debug")).is_ok());
        // A blank RUST_LOG counts as unset.
        assert!(filter("info", Some("  ")).is_ok());
        let err = filter("info", Some("zentrale=loud")).unwrap_err();
        assert!(err.starts_with("RUST_LOG="), "{err}");
        let err = filter("zentrale=loud", None).unwrap_err();
        assert!(err.starts_with("log.level"), "{err}");
    }
}
