//! The `zentrale` command line: `serve` runs the engine, `config` shows the effective settings,
//! `rules check` / `rules explain` validate the routing rules and explain a decision.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use zentrale::config::{LogFormat, Settings};
use zentrale::rules::{self, Severity};

/// mimalloc instead of glibc's malloc: a call allocates and frees many small buffers across
/// threads (SIP messages, headers, events), and glibc's allocator took ~20 % of the engine's
/// CPU at 1,500 queue-routed calls/s (`bench/acd-calls.sh` under `perf`).
#[global_allocator]
static ALLOCATOR: Allocator = Allocator;

/// mimalloc, called the way its own `malloc` replacement is: the `mimalloc` crate's
/// `MiMalloc` passes every allocation through `mi_malloc_aligned`, which first checks whether
/// a free block of the size class happens to have the alignment and otherwise (every block
/// over 1 KiB, or an empty free list) runs a generic path of a few hundred instructions. An
/// alignment of at most 16 bytes that the size allows is what `malloc` guarantees anyway:
/// those allocations (nearly all) go to `mi_malloc`, the rest to `mi_malloc_aligned` as
/// before. Both take blocks from the same size classes, so memory use does not change; the
/// engine runs about 2 % fewer instructions per queue-routed call (`bench/instructions.sh`:
/// 437,620 → 429,094 at 100 calls/s).
struct Allocator;

/// What mimalloc's `mi_malloc` guarantees (`MI_MAX_ALIGN_SIZE`, `sizeof(max_align_t)`).
const MALLOC_ALIGN: usize = 16;

/// A mimalloc entry point without an alignment (`mi_malloc`, `mi_zalloc`) and its aligned
/// twin (`mi_malloc_aligned`, `mi_zalloc_aligned`).
type Plain = unsafe extern "C" fn(usize) -> *mut std::ffi::c_void;
type Aligned = unsafe extern "C" fn(usize, usize) -> *mut std::ffi::c_void;

/// Calls `plain` where it gives a block of `size` bytes this alignment, else `aligned`.
///
/// # Safety
/// As the two mimalloc functions: none beyond passing on a null result as a failure.
#[inline]
unsafe fn allocate(size: usize, align: usize, plain: Plain, aligned: Aligned) -> *mut u8 {
    // SAFETY: plain mimalloc calls with a size and a power-of-two alignment (a `Layout`'s).
    unsafe {
        if align <= MALLOC_ALIGN && align <= size {
            plain(size).cast()
        } else {
            aligned(size, align).cast()
        }
    }
}

// SAFETY: every block comes from mimalloc with at least the layout's size and alignment
// (`allocate` uses the unaligned calls only where they guarantee the alignment), and every
// block is given back through `mi_free`/`mi_realloc_aligned`, which take any mimalloc block.
unsafe impl std::alloc::GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys::{mi_malloc, mi_malloc_aligned};
        // SAFETY: see `allocate`.
        unsafe { allocate(layout.size(), layout.align(), mi_malloc, mi_malloc_aligned) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys::{mi_zalloc, mi_zalloc_aligned};
        // SAFETY: see `allocate`; the zeroing variants zero the block.
        unsafe { allocate(layout.size(), layout.align(), mi_zalloc, mi_zalloc_aligned) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from mimalloc.
        unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from mimalloc; the new block keeps the layout's alignment.
        // (`mi_realloc_aligned` itself takes the plain path for alignments up to 8 bytes, i.e.
        // for the growing strings and byte buffers: no choice to make here.)
        unsafe { libmimalloc_sys::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast() }
    }
}

/// mimalloc's `mi_option_purge_delay` (`mimalloc.h`, v2 and v3; `libmimalloc-sys` names no
/// constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory for reuse instead of handing it back to the OS after 10 ms (mimalloc's
/// default): calls come and go all the time, and every page handed back was faulted in again
/// (and zeroed, 2 MB at a time with transparent huge pages) by the next calls: 8 % of the
/// engine's CPU at 2,000 queue-routed calls/s. The engine's memory is bounded by its limits
/// (`sip.max_calls`, queue lengths), so holding on to its peak costs little.
fn keep_freed_memory() {
    // SAFETY: `mi_option_set` only stores an option value; mimalloc reads options at any time
    // and documents setting them at run time as supported. No pointers are involved.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

/// Exit code for a configuration (or logging set-up) error.
const EXIT_CONFIG: u8 = 2;
/// Exit code when the engine fails while running (e.g. it cannot bind its ports).
const EXIT_RUNTIME: u8 = 1;

const ABOUT: &str = "SIP call-routing engine for the JenaZentral citizen hotline";

const LONG_ABOUT: &str = "\
zentrale answers the calls to the JenaZentral citizen hotline. It is a SIP back-to-back user \
agent (B2BUA): it accepts calls to the hotline numbers over UDP and TCP and answers them; the \
voice menu, the routing rules and the agent queues (ACD) build on that.

Settings come from built-in defaults, then an optional TOML file (--config FILE), then \
environment variables ZENTRALE_<SECTION>__<KEY> (two underscores between section and key), \
for example:

  ZENTRALE_SIP__LISTEN=0.0.0.0:5060
  ZENTRALE_SIP__TRANSPORTS=udp,tcp        (lists are comma-separated)
  ZENTRALE_LOG__FORMAT=json

RUST_LOG, if set, replaces log.level. `zentrale config` prints the effective settings.";

const AFTER_HELP: &str = "\
Exit codes: 0 stopped cleanly, 1 failed while running, 2 bad configuration or usage.";

#[derive(Debug, Parser)]
#[command(
    name = "zentrale",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// One variant per subcommand.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the engine until SIGTERM or Ctrl-C, then drain running calls and exit.
    Serve(ServeArgs),
    /// Validate the settings and print the effective ones (defaults + file + environment) as
    /// TOML.
    Config(ConfigArgs),
    /// Check the routing rules, or explain where a call would go.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Queue KPIs from the call records: offered, answered, abandoned, service level, ASA, AHT,
    /// longest wait. Exit code 0, 1 when the records can't be read, 2 for bad arguments.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "\
Example: zentrale report --from 2026-11-01 --to 2026-11-30 --by day --queue buergerservice

--from and --to are YYYY-MM-DD (Europe/Berlin; --to includes that whole day), \
YYYY-MM-DDTHH:MM (Europe/Berlin) or RFC 3339 with an offset. A queue visit counts in the \
period in which it ended. The KPIs are defined in the README (Reports) and in --format json.")]
struct ReportArgs {
    #[command(flatten)]
    file: ConfigFileArg,
    /// Start of the period (default: today 00:00, Europe/Berlin).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// End of the period, exclusive (default: now).
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Only this queue.
    #[arg(long, value_name = "QUEUE")]
    queue: Option<String>,
    /// One row per day, hour, topic or queue (plus a total).
    #[arg(long, value_enum, default_value = "queue")]
    by: ByArg,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: FormatArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ByArg {
    Day,
    Hour,
    Topic,
    Queue,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Validate a rules folder like a compiler: every error and warning with file:line:column
    /// and a hint. Exit code 0 when the rules are valid (warnings allowed), 1 when not.
    Check(RulesCheckArgs),
    /// Show where a call with these facts would go at this time, and which rules led there.
    /// Exit code 0, 1 when the rules are invalid, 2 for bad arguments.
    Explain(RulesExplainArgs),
}

#[derive(Debug, Args)]
struct RulesCheckArgs {
    /// The rules folder.
    #[arg(value_name = "DIR", default_value = "routing-rules")]
    dir: PathBuf,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Example: zentrale rules explain --to 490 --from +4936411234 --keys 4 --at 2026-12-24T10:00

--at is local time in Europe/Berlin unless it has an offset (Z, +01:00). A local time skipped \
when clocks go forward is the moment the clocks jump past it (02:30 -> 03:00 CEST); one that \
happens twice when clocks go back is the first (summer time). Both add a note.")]
struct RulesExplainArgs {
    /// The dialled number.
    #[arg(long, value_name = "NUMBER")]
    to: String,
    /// The caller's number (withheld when left out).
    #[arg(long, value_name = "NUMBER")]
    from: Option<String>,
    /// Keys pressed in the menus so far, in order: 0-9, *, #, and t for "no key before the
    /// timeout" (e.g. 4, 41, tt4).
    #[arg(long, value_name = "KEYS", default_value = "")]
    keys: String,
    /// When the call happens: YYYY-MM-DDTHH:MM (Europe/Berlin) or with an offset; default now.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// A queue's live state, e.g. fundbuero:agents=0 or allgemein:agents=3,waiting=30,wait=400
    /// (repeatable; queues not given count as staffed and empty).
    #[arg(long = "queue", value_name = "ID:STATE")]
    queues: Vec<String>,
    /// The rules folder.
    #[arg(long, value_name = "DIR", default_value = "routing-rules")]
    dir: PathBuf,
    /// Print the explanation as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ConfigFileArg {
    /// TOML settings file; its keys override the built-in defaults, ZENTRALE_* variables
    /// override both.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    file: ConfigFileArg,
    /// Log format; overrides log.format from the file or ZENTRALE_LOG__FORMAT.
    #[arg(long, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormatArg>,
}

#[derive(Debug, Args)]
struct ConfigArgs {
    #[command(flatten)]
    file: ConfigFileArg,
    /// Only validate: print nothing and exit 0 if the settings are valid (2 if not).
    #[arg(long)]
    check: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(arg: LogFormatArg) -> Self {
        match arg {
            LogFormatArg::Human => LogFormat::Human,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Config(args) => config(args),
        Command::Rules(RulesCommand::Check(args)) => rules_check(args),
        Command::Rules(RulesCommand::Explain(args)) => rules_explain(args),
        Command::Report(args) => report(args),
    }
}

fn report(args: ReportArgs) -> ExitCode {
    use zentrale::records::report::{self, By, Format, Spec};
    let settings = match load(args.file.config.as_deref()) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let usage = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(EXIT_USAGE)
    };
    let from = match &args.from {
        Some(text) => match report::parse_time(text, false) {
            Ok(t) => t,
            Err(e) => return usage(format!("--from: {e}")),
        },
        None => {
            let today = chrono::Utc::now()
                .with_timezone(&chrono_tz::Europe::Berlin)
                .format("%Y-%m-%d")
                .to_string();
            report::parse_time(&today, false).unwrap_or_else(|_| chrono::Utc::now())
        }
    };
    let to = match &args.to {
        Some(text) => match report::parse_time(text, true) {
            Ok(t) => t,
            Err(e) => return usage(format!("--to: {e}")),
        },
        None => chrono::Utc::now(),
    };
    if to <= from {
        return usage(format!("--to ({to}) must be after --from ({from})"));
    }
    let (service_level_secs, note) = report::thresholds_from_rules(&settings.rules.dir);
    let spec = Spec {
        from,
        to,
        queue: args.queue.clone(),
        by: match args.by {
            ByArg::Day => By::Day,
            ByArg::Hour => By::Hour,
            ByArg::Topic => By::Topic,
            ByArg::Queue => By::Queue,
        },
        short_abandon_secs: settings.records.short_abandon_secs,
        service_level_secs,
    };
    let format = match args.format {
        FormatArg::Table => Format::Table,
        FormatArg::Csv => Format::Csv,
        FormatArg::Json => Format::Json,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match runtime.block_on(report::run(&settings, &spec)) {
        Ok(result) => {
            if let Some(note) = note {
                eprintln!("{note}");
            }
            print!("{}", report::render(&result, format));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn load(file: Option<&Path>) -> Result<Settings, ExitCode> {
    Settings::load(file).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

fn serve(args: ServeArgs) -> ExitCode {
    keep_freed_memory();
    let mut settings = match load(args.file.config.as_deref()) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    if let Some(format) = args.log_format {
        settings.log.format = format.into();
    }
    let _log = match zentrale::logging::init(&settings.log) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("zentrale")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match runtime.block_on(zentrale::server::run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut message = format!("error: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                message.push_str(&format!("\n  caused by: {cause}"));
                source = cause.source();
            }
            eprintln!("{message}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn config(args: ConfigArgs) -> ExitCode {
    let settings = match load(args.file.config.as_deref()) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    if args.check {
        return ExitCode::SUCCESS;
    }
    match toml::to_string(&settings) {
        Ok(text) => {
            println!(
                "# zentrale effective settings: built-in defaults{}, then ZENTRALE_* environment",
                match &args.file.config {
                    Some(path) => format!(", then {}", path.display()),
                    None => String::new(),
                }
            );
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot print the settings as TOML: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// Exit code for rules that do not validate (`rules check`, `rules explain`).
const EXIT_RULES_INVALID: u8 = 1;
/// Exit code for bad command-line values (as clap uses for usage errors).
const EXIT_USAGE: u8 = 2;

fn rules_check(args: RulesCheckArgs) -> ExitCode {
    let result = rules::load_dir(&args.dir);
    let (diagnostics, version) = match &result {
        Ok(rules) => (rules.warnings.as_slice(), Some(&rules.version)),
        Err(diagnostics) => (diagnostics.as_slice(), None),
    };
    let count = |severity| {
        diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count()
    };
    let (errors, warnings, notes) = (
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Note),
    );
    if args.json {
        let report = serde_json::json!({
            "dir": args.dir.display().to_string(),
            "valid": version.is_some(),
            "version": version,
            "errors": errors,
            "warnings": warnings,
            "notes": notes,
            "diagnostics": diagnostics,
        });
        println!("{report:#}");
    } else {
        for diagnostic in diagnostics {
            println!("{diagnostic}");
        }
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let tally = format!(
            "{}, {}, {}",
            plural(errors, "error"),
            plural(warnings, "warning"),
            plural(notes, "note")
        );
        match version {
            Some(version) => println!(
                "{}: rules valid ({tally}), version {}, {} files",
                args.dir.display(),
                version.hash,
                version.files
            ),
            None => println!("{}: rules invalid ({tally})", args.dir.display()),
        }
    }
    if version.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_RULES_INVALID)
    }
}

fn rules_explain(args: RulesExplainArgs) -> ExitCode {
    let usage = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(EXIT_USAGE)
    };
    let at = match &args.at {
        Some(text) => match rules::explain::parse_at(text) {
            Ok(at) => at,
            Err(e) => return usage(format!("--at: {e}")),
        },
        None => rules::explain::At {
            instant: chrono::Utc::now(),
            note: None,
        },
    };
    let inputs = match rules::MenuInput::parse_all(&args.keys) {
        Ok(inputs) => inputs,
        Err(e) => return usage(format!("--keys: {e}")),
    };
    let mut queues = std::collections::BTreeMap::new();
    for text in &args.queues {
        match parse_queue_state(text) {
            Ok((id, state)) => {
                queues.insert(id, state);
            }
            Err(e) => return usage(format!("--queue {text}: {e}")),
        }
    }
    let rules = match rules::load_dir(&args.dir) {
        Ok(rules) => rules,
        Err(diagnostics) => {
            for diagnostic in &diagnostics {
                eprintln!("{diagnostic}");
            }
            eprintln!(
                "error: the rules in {} are invalid; `zentrale rules check {}` lists the errors",
                args.dir.display(),
                args.dir.display()
            );
            return ExitCode::from(EXIT_RULES_INVALID);
        }
    };
    for id in queues.keys() {
        if !rules.queues.contains_key(id) {
            let known: Vec<&str> = rules.queues.keys().map(String::as_str).collect();
            return usage(format!(
                "--queue: unknown queue `{id}` (queues: {})",
                known.join(", ")
            ));
        }
    }
    let facts = rules::CallFacts {
        dialled: args.to,
        caller: args.from,
        inputs,
        queues,
    };
    let explanation = rules::explain::explain(&rules, facts, &at);
    if args.json {
        match serde_json::to_string_pretty(&explanation) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("error: cannot print the explanation as JSON: {e}");
                return ExitCode::from(EXIT_RUNTIME);
            }
        }
    } else {
        print!("{}", explanation.to_text());
    }
    ExitCode::SUCCESS
}

/// `fundbuero:agents=0,waiting=3,wait=120` → queue id and state.
fn parse_queue_state(text: &str) -> Result<(String, rules::QueueState), String> {
    let (id, fields) = text
        .split_once(':')
        .ok_or("write ID:agents=N,waiting=N,wait=SECONDS")?;
    let mut state = rules::QueueState {
        logged_in_agents: 1,
        waiting_callers: 0,
        estimated_wait_secs: None,
    };
    for field in fields.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| format!("`{field}` is not key=value"))?;
        let value: u32 = value
            .parse()
            .map_err(|_| format!("`{value}` is not a whole number"))?;
        match key {
            "agents" => state.logged_in_agents = value,
            "waiting" => state.waiting_callers = value,
            "wait" => state.estimated_wait_secs = Some(value),
            other => return Err(format!("unknown field `{other}` (agents, waiting, wait)")),
        }
    }
    Ok((id.to_string(), state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_takes_config_and_log_format() {
        let cli = Cli::try_parse_from([
            "zentrale",
            "serve",
            "--config",
            "z.toml",
            "--log-format",
            "json",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(args.file.config, Some(PathBuf::from("z.toml")));
        assert!(matches!(args.log_format, Some(LogFormatArg::Json)));
        assert!(Cli::try_parse_from(["zentrale", "serve", "--log-format", "xml"]).is_err());
        assert!(Cli::try_parse_from(["zentrale", "config", "--check", "-c", "z.toml"]).is_ok());
    }

    #[test]
    fn rules_subcommands_parse() {
        let cli = Cli::try_parse_from([
            "zentrale",
            "rules",
            "explain",
            "--to",
            "490",
            "--from",
            "+4936411234",
            "--keys",
            "4",
            "--at",
            "2026-12-24T10:00",
            "--queue",
            "fundbuero:agents=0",
            "--json",
        ])
        .unwrap();
        let Command::Rules(RulesCommand::Explain(args)) = cli.command else {
            panic!("not rules explain")
        };
        assert_eq!((args.to.as_str(), args.keys.as_str()), ("490", "4"));
        assert!(args.json);
        assert_eq!(args.dir, PathBuf::from("routing-rules"));
        let cli = Cli::try_parse_from(["zentrale", "rules", "check"]).unwrap();
        let Command::Rules(RulesCommand::Check(args)) = cli.command else {
            panic!("not rules check")
        };
        assert_eq!(args.dir, PathBuf::from("routing-rules"));
        assert!(Cli::try_parse_from(["zentrale", "rules", "explain"]).is_err());
    }

    #[test]
    fn queue_state_arguments() {
        let (id, state) = parse_queue_state("allgemein:agents=3,waiting=30,wait=400").unwrap();
        assert_eq!(id, "allgemein");
        assert_eq!(
            (
                state.logged_in_agents,
                state.waiting_callers,
                state.estimated_wait_secs
            ),
            (3, 30, Some(400))
        );
        assert_eq!(parse_queue_state("x:").unwrap().1.logged_in_agents, 1);
        assert!(parse_queue_state("x").is_err());
        assert!(parse_queue_state("x:agents=many").is_err());
        assert!(parse_queue_state("x:moods=1").is_err());
    }
}
