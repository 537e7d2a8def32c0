//! tracing set-up: human-readable lines or JSON lines on stderr, filtered by `log.level` (or
//! `RUST_LOG` when set), and [`caller_display`] for privacy-aware logging of caller numbers.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use tracing::Subscriber;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::{SubscriberInitExt, TryInitError};

use crate::config::{LogFormat, LogSettings};

mod json;

/// While lines come, the writer thread writes them out this often (a line waits at most this
/// long); when none came since its last pass, it sleeps until the next line wakes it.
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// How long an idle writer sleeps before it looks again anyway (a safety net; a line wakes it).
const IDLE_SLEEP: Duration = Duration::from_secs(1);
/// Most bytes waiting for the writer thread; beyond that, lines are dropped and counted
/// ([`lines_dropped`], `zentrale_log_lines_dropped_total`) rather than stalling calls.
const MAX_PENDING: usize = 4 << 20;

static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Log lines dropped because stderr could not keep up (0 before [`init`]).
pub fn lines_dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Lines logged and not yet written, shared by every thread that logs.
struct Pending {
    buffer: Mutex<Vec<u8>>,
    stop: AtomicBool,
    /// Set by the writer thread before it sleeps without a deadline; the next line clears it
    /// and wakes the thread. Under load the writer never sets it, so lines never wake it: a
    /// wake-up per line cost a futex call on the logging thread and a context switch.
    idle: AtomicBool,
    /// The writer thread.
    writer: OnceLock<Thread>,
}

impl Pending {
    /// Writes out what is pending: one `write` for everything logged since the last time.
    /// Returns whether there was anything.
    fn flush(&self, spare: &mut Vec<u8>) -> bool {
        if let Ok(mut buffer) = self.buffer.lock() {
            std::mem::swap(&mut *buffer, spare);
        }
        if spare.is_empty() {
            return false;
        }
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(spare);
        let _ = err.flush();
        spare.clear();
        true
    }

    fn is_empty(&self) -> bool {
        self.buffer.lock().map(|b| b.is_empty()).unwrap_or(true)
    }

    /// The writer thread's loop: write out every [`FLUSH_EVERY`] while lines come; when a
    /// pass found nothing, sleep until a line comes.
    fn run_writer(&self) {
        let _ = self.writer.set(std::thread::current());
        let mut spare = Vec::with_capacity(64 * 1024);
        while !self.stop.load(Ordering::SeqCst) {
            if self.flush(&mut spare) {
                std::thread::park_timeout(FLUSH_EVERY);
                continue;
            }
            // Announce the sleep before looking once more: a line appended after this look
            // sees `idle` and wakes the thread (the unpark token makes the park return).
            self.idle.store(true, Ordering::SeqCst);
            if self.is_empty() && !self.stop.load(Ordering::SeqCst) {
                std::thread::park_timeout(IDLE_SLEEP);
            }
            self.idle.store(false, Ordering::SeqCst);
        }
    }
}

/// The `MakeWriter` behind the subscriber: a line goes into the shared buffer (a lock and a
/// copy, no syscall); the writer thread writes the buffer out.
#[derive(Clone)]
struct BatchWriter(Arc<Pending>);

struct Line<'a>(&'a Pending);

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buffer) = self.0.buffer.lock() {
            if buffer.len() + bytes.len() > MAX_PENDING {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            } else {
                buffer.extend_from_slice(bytes);
            }
        }
        // Only a sleeping writer is woken: when quiet, a line is written at once; under load
        // the writer comes by every FLUSH_EVERY on its own.
        if self.0.idle.load(Ordering::SeqCst)
            && self.0.idle.swap(false, Ordering::SeqCst)
            && let Some(writer) = self.0.writer.get()
        {
            writer.unpark();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line(&self.0)
    }
}

/// Keeps the log writer thread running; dropping it writes out what is still pending.
pub struct LogGuard {
    pending: Arc<Pending>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.pending.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
        self.pending.flush(&mut Vec::new());
    }
}

/// Installs the global tracing subscriber. Logs go to stderr: human-readable lines by default,
/// one JSON object per line with `log.format = "json"`. The filter is `log.level`; a non-empty
/// `RUST_LOG` replaces it. Fails if a filter does not parse or a subscriber is already set.
///
/// A line is formatted on the thread that logs and appended to a shared buffer; one writer
/// thread writes out whatever has gathered with one `write`, every 20 ms while lines come (an
/// idle writer is woken by the next line). A call task never waits for stderr: a `write` per
/// line under stderr's lock cost a syscall, and often a futex wait, for each of a call's log
/// lines. Keep the returned guard until the program ends.
pub fn init(settings: &LogSettings) -> Result<LogGuard, String> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = filter(&settings.level, rust_log.as_deref())?;
    let pending = Arc::new(Pending {
        buffer: Mutex::new(Vec::with_capacity(64 * 1024)),
        stop: AtomicBool::new(false),
        idle: AtomicBool::new(false),
        writer: OnceLock::new(),
    });
    // The filter decides (a layer over the formatter), so the formatter itself takes all levels.
    let builder = tracing_subscriber::fmt()
        .with_max_level(LevelFilter::TRACE)
        .with_writer(BatchWriter(pending.clone()));
    let result = match settings.format {
        LogFormat::Human => install(
            builder.with_ansi(std::io::stderr().is_terminal()).finish(),
            filter,
        ),
        LogFormat::Json => install(
            builder
                .fmt_fields(json::JsonFields)
                .event_format(json::JsonLines)
                .finish(),
            filter,
        ),
    };
    result.map_err(|e| format!("cannot set up logging: {e}"))?;
    let writer = pending.clone();
    let thread = std::thread::Builder::new()
        .name("zentrale-log".into())
        .spawn(move || writer.run_writer())
        .map_err(|e| format!("cannot start the log writer thread: {e}"))?;
    Ok(LogGuard {
        pending,
        thread: Some(thread),
    })
}

/// The log filter. Plain `target=level` lists (the shipped `info`, `info,zentrale::sip=debug`)
/// become a static [`Targets`] filter; directives with span or field parts (`[…]`, `{…}`) need
/// `EnvFilter`. `EnvFilter` takes a lock shared by all threads whenever a span is entered or
/// left, to look the span up in case it is one of those (a call's task enters its span at every
/// poll): about 14 times per queue-routed call, from both runtime threads.
#[derive(Debug)]
pub enum Filter {
    Static(Box<Targets>),
    Dynamic(Box<EnvFilter>),
}

/// The filter from `RUST_LOG` if it is set and not blank, else from `log.level`.
pub fn filter(level: &str, rust_log: Option<&str>) -> Result<Filter, String> {
    match rust_log.filter(|s| !s.trim().is_empty()) {
        Some(directives) => parse_filter(directives)
            .map_err(|e| format!("RUST_LOG={directives:?} is not a valid tracing filter: {e}")),
        None => parse_filter(level)
            .map_err(|e| format!("log.level {level:?} is not a valid tracing filter: {e}")),
    }
}

/// `EnvFilter`'s syntax and errors decide what is valid; [`Targets`] takes over when it reads
/// the same directives without span or field parts.
fn parse_filter(directives: &str) -> Result<Filter, String> {
    let dynamic = EnvFilter::builder()
        .parse(directives)
        .map_err(|e| e.to_string())?;
    if !directives.contains(['[', '{'])
        && let Ok(targets) = directives.parse::<Targets>()
    {
        return Ok(Filter::Static(Box::new(targets)));
    }
    Ok(Filter::Dynamic(Box::new(dynamic)))
}

fn install<S>(subscriber: S, filter: Filter) -> Result<(), TryInitError>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static,
{
    match filter {
        Filter::Static(targets) => subscriber.with(*targets).try_init(),
        Filter::Dynamic(env) => subscriber.with(*env).try_init(),
    }
}

/// At most one log line per period from a place that can fire for every call: out of RTP
/// ports, agent legs that cannot be placed, records lost. Under exhaustion those fired for
/// every call, 150,000 WARN lines in a 10 s benchmark run, and writing them took CPU from the
/// calls that were still going. The first line of each period is logged, with how many were
/// left out since the last one (`skipped`), so the log still tells how often it happened.
pub struct Throttle {
    every_secs: u64,
    /// The second of the last line logged, plus one (0: none yet).
    last: AtomicU64,
    skipped: AtomicU64,
}

impl Throttle {
    pub const fn new(every_secs: u64) -> Throttle {
        Throttle {
            every_secs,
            last: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// Whether to log now: `Some(lines left out since the last one)`, or `None`.
    pub fn allow(&self) -> Option<u64> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.allow_at(now)
    }

    /// [`Throttle::allow`] at `now` (seconds on any clock that does not go back).
    pub fn allow_at(&self, now: u64) -> Option<u64> {
        let last = self.last.load(Ordering::Relaxed);
        let due = last == 0 || now >= (last - 1).saturating_add(self.every_secs);
        // Of threads logging at once, one wins the period; the others count as left out.
        if due
            && self
                .last
                .compare_exchange(last, now + 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.skipped.swap(0, Ordering::Relaxed));
        }
        self.skipped.fetch_add(1, Ordering::Relaxed);
        None
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
    fn a_throttle_logs_the_first_line_of_each_period_with_how_many_it_left_out() {
        let throttle = Throttle::new(10);
        assert_eq!(throttle.allow_at(100), Some(0), "the first line");
        assert_eq!(throttle.allow_at(100), None);
        assert_eq!(throttle.allow_at(109), None);
        assert_eq!(
            throttle.allow_at(110),
            Some(2),
            "a period later, with the two left out"
        );
        assert_eq!(throttle.allow_at(125), Some(0));
        // At second 0 of its clock too.
        let throttle = Throttle::new(1);
        assert_eq!(throttle.allow_at(0), Some(0));
        assert_eq!(throttle.allow_at(0), None);
        assert_eq!(throttle.allow_at(1), Some(1));
    }

    #[test]
    fn threads_at_once_log_one_line_per_period() {
        let throttle = Throttle::new(60);
        let logged: usize = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..1000).filter(|_| throttle.allow_at(7).is_some()).count()))
                .collect();
            workers.into_iter().map(|w| w.join().expect("thread")).sum()
        });
        assert_eq!(logged, 1);
        assert_eq!(throttle.allow_at(67), Some(3999));
    }

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

    /// Which filter the directives get, and that the static one lets through what `EnvFilter`
    /// would: the same levels per target, the most specific directive winning.
    #[test]
    fn plain_level_lists_get_the_static_filter_with_envfilters_meaning() {
        use tracing::Level;
        let Ok(Filter::Static(targets)) = filter("info,zentrale::sip=debug", None) else {
            panic!("a plain list is static");
        };
        assert!(targets.would_enable("zentrale::sip::endpoint", &Level::DEBUG));
        assert!(!targets.would_enable("zentrale::sip::endpoint", &Level::TRACE));
        assert!(targets.would_enable("zentrale::call", &Level::INFO));
        assert!(!targets.would_enable("zentrale::call", &Level::DEBUG));
        assert!(targets.would_enable("hyper", &Level::WARN));
        let Ok(Filter::Static(only)) = filter("info", Some("zentrale=debug")) else {
            panic!("RUST_LOG as a plain list is static too");
        };
        assert!(only.would_enable("zentrale::acd", &Level::DEBUG));
        assert!(
            !only.would_enable("hyper", &Level::ERROR),
            "no default: other targets off"
        );
        assert!(matches!(filter("off", None), Ok(Filter::Static(_))));
        assert!(matches!(
            filter("info,zentrale[call]=debug", None),
            Ok(Filter::Dynamic(_))
        ));
        assert!(matches!(
            filter("info,zentrale[call{call_id}]=trace", None),
            Ok(Filter::Dynamic(_))
        ));
    }
}
