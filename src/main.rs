//! The `zentrale` command line: `serve` runs the engine, `config` shows the effective settings.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use zentrale::config::{LogFormat, Settings};

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
  ZENTRALE_SIP__NUMBERS=490,03641490      (lists are comma-separated)
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

/// One variant per subcommand; `rules check`, `rules explain` and `report` join here later.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the engine until SIGTERM or Ctrl-C, then drain running calls and exit.
    Serve(ServeArgs),
    /// Validate the settings and print the effective ones (defaults + file + environment) as
    /// TOML.
    Config(ConfigArgs),
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
    }
}

fn load(file: Option<&Path>) -> Result<Settings, ExitCode> {
    Settings::load(file).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

fn serve(args: ServeArgs) -> ExitCode {
    let mut settings = match load(args.file.config.as_deref()) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    if let Some(format) = args.log_format {
        settings.log.format = format.into();
    }
    if let Err(e) = zentrale::logging::init(&settings.log) {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
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
}
