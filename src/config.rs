//! One `Settings` value, built from embedded defaults, an optional TOML file and `ZENTRALE_*`
//! environment overrides (the `config` crate). Nothing else in the engine reads the environment
//! (except `RUST_LOG`, which [`crate::logging::init`] honours).
//!
//! Environment variables are `ZENTRALE_<SECTION>__<KEY>` (two underscores between section and
//! key): `ZENTRALE_SIP__LISTEN=0.0.0.0:5060`, `ZENTRALE_SIP__T1_MS=100`,
//! `ZENTRALE_LOG__FORMAT=json`. List settings are comma-separated:
//! `ZENTRALE_SIP__NUMBERS=490,03641490`, `ZENTRALE_SIP__TRANSPORTS=udp`. Values stay strings until
//! they are read into their field, so dialled numbers keep a leading `0` or `+`. Unknown keys and
//! unknown `ZENTRALE_*` variables fail start-up, except `ZENTRALE_…_PASSWORD` without `__`: those
//! are agents' passwords (`password_env` in the rules), read by the registrar.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub sip: SipSettings,
    pub media: MediaSettings,
    pub http: HttpSettings,
    pub rules: RulesSettings,
    pub data: DataSettings,
    pub log: LogSettings,
    pub shutdown: ShutdownSettings,
    pub acd: AcdConfig,
    pub records: RecordsSettings,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SipSettings {
    /// Address for SIP over UDP and TCP (same port for both).
    pub listen: SocketAddr,
    /// Which transports to serve: any of "udp", "tcp".
    pub transports: Vec<Transport>,
    /// Largest SIP message accepted, in bytes (larger: 413 over UDP if parseable, else dropped;
    /// TCP connection closed).
    pub max_message_bytes: usize,
    /// Most calls at once; one more INVITE gets 503 with Retry-After.
    pub max_calls: usize,
    /// Retry-After seconds sent with 503 (call limit, overload or shutdown).
    pub retry_after_secs: u32,
    /// Overload guard (see [`crate::overload`]): while the engine runs this many milliseconds
    /// behind its work (the smoothed lateness of a 10 ms tick of the runtime, or the wait of the
    /// ACD's commands), new calls get 503 with Retry-After; calls already in go on. It takes new
    /// calls again once the lag stayed under half of this for 1 s. 0 turns the guard off.
    ///
    /// Default 25 ms: above the runtime's ordinary jitter (1 ms timer resolution, a few ms on a
    /// busy but healthy machine), so it does not trip by chance; just over one RTP frame
    /// (20 ms): an engine that runs a frame late for a while sends callers' prompts and music
    /// late, so it is past what it can serve well; and far below SIP's T1 (500 ms), so it trips
    /// before late answers make callers retransmit and add load. (At 50 ms the guard did not
    /// trip in `bench/acd-calls.sh` at 4,000 queue-routed calls/s on 2 cores: the waiting
    /// callers' RTP kept the tick late by less, while the calls piled up; at 25 ms the engine
    /// shed the excess and kept ~3,460 calls/s of goodput.)
    pub overload_lag_ms: u64,
    /// RFC 3261 timer T1 (RTT estimate), milliseconds.
    pub t1_ms: u64,
    /// RFC 3261 timer T2 (max retransmit interval for non-INVITE requests and INVITE responses).
    pub t2_ms: u64,
    /// RFC 3261 timer T4 (max duration a message remains in the network).
    pub t4_ms: u64,
    /// Session timer (RFC 4028) interval we ask for when the caller supports timers, seconds.
    pub session_expires_secs: u32,
    /// Smallest session interval we accept (Min-SE), seconds.
    pub min_se_secs: u32,
    /// Most TCP connections at once.
    pub max_tcp_connections: usize,
    /// A TCP connection without traffic for this long is closed, seconds.
    pub tcp_idle_secs: u64,
    /// Send responses to the packet's source address (like Kamailio's force_rport) instead of the
    /// Via sent-by; protects against reflection and works behind NAT.
    pub symmetric_response: bool,
    /// Value of the User-Agent / Server header.
    pub user_agent: String,
    /// Ringing time (180) before the engine answers a call, milliseconds; 0 answers at once.
    pub answer_delay_ms: u64,
    /// Digest realm for agents' REGISTERs (a `password_ha1` in the rules is made with it).
    pub realm: String,
    /// Shortest registration accepted, seconds; shorter gets 423 with Min-Expires.
    pub register_min_expires_secs: u32,
    /// Longest registration granted, seconds; longer ones are shortened to this.
    pub register_max_expires_secs: u32,
    /// How long a Digest nonce is good for, seconds; older ones get a challenge with stale=true.
    pub nonce_lifetime_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSettings {
    /// Local address for RTP sockets and for the SDP `c=` line.
    pub rtp_ip: std::net::IpAddr,
    /// Lowest RTP port (even).
    pub rtp_port_min: u16,
    /// Highest RTP port.
    pub rtp_port_max: u16,
    /// No RTP from the caller for this long ends the call, seconds.
    pub rtp_timeout_secs: u64,
    /// Also detect DTMF tones in the caller's audio (gateways that send keys as sound).
    pub inband_dtmf: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RulesSettings {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// "human" or "json".
    pub format: LogFormat,
    /// A tracing EnvFilter directive, e.g. "info" or "zentrale=debug".
    pub level: String,
    /// Log caller numbers at INFO (off by default: privacy).
    pub show_caller_numbers: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    /// On SIGTERM/Ctrl-C running calls get this long before the engine sends BYE, seconds.
    pub drain_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AcdConfig {
    /// OPTIONS keep-alive to static agents' phones every this many seconds (0 = off).
    pub keepalive_secs: u64,
    /// Unanswered keep-alives in a row before a static phone counts as unreachable.
    pub keepalive_failures: u32,
    /// Unanswered rings in a row before the ACD pauses an agent ("no answer"; 0 = never).
    pub max_no_answers: u32,
    /// An agent whose leg failed for a caller is offered that caller again only after this.
    pub retry_after_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsSettings {
    /// Where call records and the queue event log go: empty = SQLite file
    /// `<data.dir>/zentrale.sqlite`; `postgres://user:password@host:port/db` for PostgreSQL;
    /// `sqlite://path` for another SQLite file.
    pub database_url: String,
    /// How caller numbers are stored: "hashed" (HMAC-SHA256 with a per-installation key in
    /// data.dir), "shortened" (only the last two digits, `…34`) or "full".
    pub caller_numbers: CallerNumbers,
    /// Records older than this many days are deleted (at start and hourly).
    pub retention_days: u32,
    /// Callers who hang up within fewer than this many seconds of waiting are short abandons:
    /// they count neither as offered for the service level nor as abandoned in reports.
    pub short_abandon_secs: u32,
    /// Events the records writer may be behind by; beyond that they are lost (counted, logged).
    pub channel_capacity: usize,
    /// Most rows written in one transaction (the writer also flushes every 250 ms).
    pub batch_max: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallerNumbers {
    Hashed,
    Shortened,
    Full,
}

impl SipSettings {
    pub fn t1(&self) -> Duration {
        Duration::from_millis(self.t1_ms)
    }
    pub fn t2(&self) -> Duration {
        Duration::from_millis(self.t2_ms)
    }
    pub fn t4(&self) -> Duration {
        Duration::from_millis(self.t4_ms)
    }
}

/// The embedded defaults (also the documented reference configuration).
pub const DEFAULTS_TOML: &str = include_str!("../deploy/zentrale.toml");

/// Prefix of the environment overrides: `ZENTRALE_<SECTION>__<KEY>`.
pub const ENV_PREFIX: &str = "ZENTRALE_";

/// Separates section and key in an environment variable name (`ZENTRALE_SIP__T1_MS`).
const ENV_SEPARATOR: &str = "__";

/// Settings that are lists; in the environment they are comma-separated
/// (`ZENTRALE_SIP__TRANSPORTS=udp,tcp`).
const LIST_KEYS: &[&str] = &["sip.transports"];

/// Why the settings could not be loaded. `Display` is the message for the operator: it names the
/// file, environment variable or key and says what is allowed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--config FILE` names a file that does not exist.
    #[error(
        "config file {}: not found (check the --config path; without --config the built-in \
         defaults and ZENTRALE_* environment variables are used)",
        path.display()
    )]
    FileNotFound { path: PathBuf },
    /// The file exists but cannot be read (permissions, a directory, not UTF-8).
    #[error("config file {}: cannot read it: {source}", path.display())]
    FileUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {}: not valid TOML: {message}", path.display())]
    FileSyntax { path: PathBuf, message: String },
    /// A `ZENTRALE_*` variable whose name is not `ZENTRALE_<SECTION>__<KEY>`.
    #[error("environment variable {name}: {problem}")]
    EnvName { name: String, problem: String },
    /// A key (or section) that zentrale does not know, from the file or the environment.
    #[error("{message}")]
    UnknownKey { key: String, message: String },
    /// A value of the wrong type or form (`t1_ms = "abc"`, `listen = "nowhere"`).
    #[error("{message}")]
    InvalidValue { key: String, message: String },
    /// Values that parse but do not make sense (`sip.t1_ms must be > 0`); all problems at once.
    #[error("{}", list_problems(.0))]
    Invalid(Vec<String>),
    /// Anything else the `config` crate reports.
    #[error("configuration: {0}")]
    Other(String),
}

fn list_problems(problems: &[String]) -> String {
    match problems {
        [one] => one.clone(),
        many => {
            let mut out = format!("{} problems in the configuration:", many.len());
            for p in many {
                out.push_str("\n  - ");
                out.push_str(p);
            }
            out
        }
    }
}

impl Settings {
    /// Defaults only (tests, `zentrale serve` without a file).
    pub fn defaults() -> Self {
        config::Config::builder()
            .add_source(config::File::from_str(
                DEFAULTS_TOML,
                config::FileFormat::Toml,
            ))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("embedded defaults are valid")
    }

    /// The settings for `zentrale serve`: embedded defaults, then `file` (if given; it must
    /// exist), then `ZENTRALE_<SECTION>__<KEY>` variables from the process environment; then
    /// [`Settings::validate`].
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        // Not `std::env::vars()`: it panics on a variable that is not UTF-8, even an unrelated
        // one. Such values are converted lossily (and only matter for ZENTRALE_* variables).
        let vars = std::env::vars_os().filter_map(|(name, value)| {
            let value = value
                .into_string()
                .unwrap_or_else(|v| v.to_string_lossy().into_owned());
            Some((name.into_string().ok()?, value))
        });
        Self::load_from(file, vars)
    }

    /// Like [`Settings::load`] with the environment given as `(name, value)` pairs; variables not
    /// starting with `ZENTRALE_` are ignored, so the whole process environment may be passed.
    ///
    /// Values from the environment are strings and are converted to the field's type when the
    /// settings are read, so `ZENTRALE_SIP__NUMBERS=03641490` stays the string "03641490".
    /// List settings (`sip.numbers`, `sip.transports`) are comma-separated; an empty value is
    /// an empty list.
    pub fn load_from<I>(file: Option<&Path>, env: I) -> Result<Settings, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULTS_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            // Read it once ourselves for clear not-found / unreadable messages; the `config`
            // crate reads it again and remembers the path as the origin of its values.
            if let Err(e) = std::fs::read_to_string(path) {
                return Err(if e.kind() == std::io::ErrorKind::NotFound {
                    ConfigError::FileNotFound {
                        path: path.to_path_buf(),
                    }
                } else {
                    ConfigError::FileUnreadable {
                        path: path.to_path_buf(),
                        source: e,
                    }
                });
            }
            builder = builder.add_source(
                config::File::from(path)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        builder = builder.add_source(EnvOverrides::from_vars(env)?);

        let cfg = builder.build().map_err(|e| match e {
            config::ConfigError::FileParse { cause, .. } => ConfigError::FileSyntax {
                path: file.map(Path::to_path_buf).unwrap_or_default(),
                message: cause.to_string().trim_end().to_owned(),
            },
            other => ConfigError::Other(other.to_string()),
        })?;
        let settings: Settings = cfg
            .clone()
            .try_deserialize()
            .map_err(|e| explain(e, &cfg, file))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks that the values make sense together; reports every problem, each naming the key
    /// and what is allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, problem: String| {
            if !ok {
                problems.push(problem);
            }
        };
        let sip = &self.sip;
        check(sip.t1_ms > 0, "sip.t1_ms must be > 0 (is 0)".into());
        check(
            sip.t2_ms >= sip.t1_ms,
            format!(
                "sip.t2_ms must be >= sip.t1_ms (t2_ms is {}, t1_ms is {})",
                sip.t2_ms, sip.t1_ms
            ),
        );
        check(
            !sip.transports.is_empty(),
            "sip.transports must not be empty (allowed: \"udp\", \"tcp\" or both)".into(),
        );
        check(
            (1024..=65535).contains(&sip.max_message_bytes),
            format!(
                "sip.max_message_bytes must be between 1024 and 65535 (UDP datagram limit) (is {})",
                sip.max_message_bytes
            ),
        );
        check(
            sip.max_calls >= 1,
            "sip.max_calls must be >= 1 (is 0)".into(),
        );
        check(
            sip.overload_lag_ms == 0 || (10..=1000).contains(&sip.overload_lag_ms),
            format!(
                "sip.overload_lag_ms must be 0 (off) or between 10 and 1000 (is {})",
                sip.overload_lag_ms
            ),
        );
        check(
            sip.max_tcp_connections >= 1 || !sip.transports.contains(&Transport::Tcp),
            "sip.max_tcp_connections must be >= 1 when sip.transports contains \"tcp\" (is 0)"
                .into(),
        );
        check(
            sip.session_expires_secs >= sip.min_se_secs,
            format!(
                "sip.session_expires_secs must be >= sip.min_se_secs (session_expires_secs is {}, \
                 min_se_secs is {})",
                sip.session_expires_secs, sip.min_se_secs
            ),
        );
        check(
            !sip.user_agent.is_empty() && !sip.user_agent.chars().any(char::is_control),
            "sip.user_agent must not be empty or contain control characters".into(),
        );
        check(
            !sip.realm.is_empty() && !sip.realm.chars().any(|c| c.is_control() || c == '"'),
            "sip.realm must not be empty or contain control characters or quotes".into(),
        );
        check(
            sip.register_min_expires_secs >= 1
                && sip.register_min_expires_secs <= sip.register_max_expires_secs,
            format!(
                "sip.register_min_expires_secs must be >= 1 and <= sip.register_max_expires_secs \
                 (register_min_expires_secs is {}, register_max_expires_secs is {})",
                sip.register_min_expires_secs, sip.register_max_expires_secs
            ),
        );
        check(
            sip.nonce_lifetime_secs >= 1,
            "sip.nonce_lifetime_secs must be >= 1 (is 0)".into(),
        );
        check(
            self.acd.keepalive_failures >= 1,
            "acd.keepalive_failures must be >= 1 (is 0)".into(),
        );
        let records = &self.records;
        check(
            records.retention_days >= 1,
            "records.retention_days must be >= 1 (is 0)".into(),
        );
        check(
            records.channel_capacity >= 16,
            format!(
                "records.channel_capacity must be >= 16 (is {})",
                records.channel_capacity
            ),
        );
        check(
            (1..=10_000).contains(&records.batch_max),
            format!(
                "records.batch_max must be between 1 and 10000 (is {})",
                records.batch_max
            ),
        );
        {
            let url = records.database_url.trim();
            check(
                url.is_empty()
                    || url.starts_with("sqlite:")
                    || url.starts_with("postgres://")
                    || url.starts_with("postgresql://"),
                "records.database_url must be empty (SQLite in data.dir), sqlite://PATH or \
                 postgres://USER:PASSWORD@HOST:PORT/DB"
                    .into(),
            );
        }
        let media = &self.media;
        check(
            media.rtp_port_min > 0
                && media.rtp_port_min.is_multiple_of(2)
                && media.rtp_port_min < media.rtp_port_max,
            format!(
                "media.rtp_port_min must be even, > 0 and < media.rtp_port_max (rtp_port_min is {}, \
                 rtp_port_max is {})",
                media.rtp_port_min, media.rtp_port_max
            ),
        );
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&self.log.level) {
            check(
                false,
                format!(
                    "log.level {:?} is not a valid tracing filter ({e}); allowed: a level \
                     (error, warn, info, debug, trace) or directives like \
                     \"info,zentrale::sip=debug\"",
                    self.log.level
                ),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

/// The `ZENTRALE_*` variables as a `config` source. Not `config::Environment`: its list
/// splitting (`list_separator`) only works together with `try_parsing`, which turns a single
/// `ZENTRALE_SIP__NUMBERS=03641490` into the integer 3641490 (and "+493641490" into 493641490,
/// a user agent "2.0" into "2"). Here every value stays a string and serde converts it to the
/// field's type; list keys are split on commas. Each value's origin is its variable name, so
/// error messages can point at it.
#[derive(Clone, Debug)]
struct EnvOverrides(config::Map<String, config::Value>);

impl EnvOverrides {
    fn from_vars<I>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut map = config::Map::new();
        for (name, value) in vars {
            let Some(rest) = name
                .get(..ENV_PREFIX.len())
                .filter(|p| p.eq_ignore_ascii_case(ENV_PREFIX))
                .map(|_| &name[ENV_PREFIX.len()..])
            else {
                continue;
            };
            if is_agent_password_var(&name) {
                continue;
            }
            let segments: Vec<String> = rest
                .split(ENV_SEPARATOR)
                .map(str::to_ascii_lowercase)
                .collect();
            let well_formed = segments.len() >= 2
                && segments.iter().all(|s| {
                    !s.is_empty()
                        && s.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                });
            if !well_formed {
                return Err(ConfigError::EnvName {
                    name,
                    problem: "not a setting name; settings are ZENTRALE_<SECTION>__<KEY> with two \
                              underscores between section and key, e.g. ZENTRALE_SIP__LISTEN"
                        .into(),
                });
            }
            let key = segments.join(".");
            let origin = format!("environment variable {name}");
            let value = if LIST_KEYS.contains(&key.as_str()) {
                let items: Vec<config::Value> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| config::Value::new(Some(&origin), item))
                    .collect();
                config::Value::new(Some(&origin), items)
            } else {
                config::Value::new(Some(&origin), value.trim())
            };
            map.insert(key, value);
        }
        Ok(Self(map))
    }
}

/// `ZENTRALE_AGENT1_PASSWORD` and the like: an agent's password for the registrar (the rules'
/// `password_env`), not a setting.
fn is_agent_password_var(name: &str) -> bool {
    name.ends_with("_PASSWORD") && !name.contains(ENV_SEPARATOR)
}

impl config::Source for EnvOverrides {
    fn clone_into_box(&self) -> Box<dyn config::Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<config::Map<String, config::Value>, config::ConfigError> {
        Ok(self.0.clone())
    }
}

/// Turns a deserialization error from the `config` crate into a message that names the key,
/// where the value came from, and what is allowed.
fn explain(err: config::ConfigError, cfg: &config::Config, file: Option<&Path>) -> ConfigError {
    // Origins are "environment variable NAME" (ours) or the file's path as the `config` crate
    // saw it (relative to the working directory, "../../etc/zentrale.toml"); show the latter as
    // the operator wrote it.
    let from_user = |origin: String| match file {
        Some(path) if !origin.starts_with("environment variable ") => path.display().to_string(),
        _ => origin,
    };
    // Not `cfg.get::<Value>()`: deserializing a `Value` drops its origin.
    let origin_of =
        |key: &str| -> Option<String> { lookup(&cfg.cache, key).and_then(origin).map(from_user) };
    match err {
        config::ConfigError::Type {
            origin,
            unexpected,
            expected,
            key: Some(key),
        } => {
            let origin = origin.map(from_user).or_else(|| origin_of(&key));
            invalid_value(
                key,
                origin,
                format!("expected {expected}, got {unexpected}"),
            )
        }
        config::ConfigError::At {
            error,
            origin,
            key: Some(key),
        } => match *error {
            config::ConfigError::Message(message) if message.starts_with("unknown field") => {
                unknown_key(Some(&key), &message, &origin_of)
            }
            config::ConfigError::Message(message) => {
                let origin = origin.map(from_user).or_else(|| origin_of(&key));
                let detail = if message.contains("does not have variant constructor") {
                    // "enum LogFormat does not have variant constructor JSON"
                    let got = message.rsplit(' ').next().unwrap_or_default();
                    format!("unknown value {got:?}")
                } else {
                    message
                };
                invalid_value(key, origin, detail)
            }
            other => invalid_value(key.clone(), origin_of(&key), other.to_string()),
        },
        config::ConfigError::Message(message) if message.starts_with("unknown field") => {
            unknown_key(None, &message, &origin_of)
        }
        config::ConfigError::NotFound(key) => ConfigError::InvalidValue {
            message: format!("missing setting `{key}`"),
            key,
        },
        other => ConfigError::Other(other.to_string()),
    }
}

/// The value at `key` ("sip.listen", "sip.transports[1]") in the merged configuration.
fn lookup<'a>(root: &'a config::Value, key: &str) -> Option<&'a config::Value> {
    let mut value = root;
    for segment in key.split('.') {
        let (name, indices) = segment.split_once('[').unwrap_or((segment, ""));
        if let config::ValueKind::Table(table) = &value.kind {
            value = table.get(name)?;
        } else {
            return None;
        }
        for index in indices.split('[').filter(|i| !i.is_empty()) {
            let index: usize = index.trim_end_matches(']').parse().ok()?;
            if let config::ValueKind::Array(items) = &value.kind {
                value = items.get(index)?;
            } else {
                return None;
            }
        }
    }
    Some(value)
}

/// Where a value came from; for a table made up on the way (`[sipp]` from
/// `ZENTRALE_SIPP__LISTEN`), where one of its values came from.
fn origin(value: &config::Value) -> Option<String> {
    match (value.origin(), &value.kind) {
        (Some(origin), _) => Some(origin.to_owned()),
        (None, config::ValueKind::Table(table)) => table.values().find_map(origin),
        (None, _) => None,
    }
}

fn describe_origin(origin: Option<&str>) -> String {
    match origin {
        Some(o) if o.starts_with("environment variable ") => format!(" (from {o})"),
        Some(o) => format!(" (in config file {o})"),
        None => String::new(),
    }
}

fn invalid_value(key: String, origin: Option<String>, detail: String) -> ConfigError {
    let mut message = format!(
        "invalid value for `{key}`{}: {detail}",
        describe_origin(origin.as_deref())
    );
    if let Some(allowed) = allowed_values(&key) {
        message.push_str("; allowed: ");
        message.push_str(allowed);
    }
    ConfigError::InvalidValue { key, message }
}

/// `message` is serde's "unknown field `lisen`, expected one of `listen`, `transports`, …";
/// `section` is where it was found (None: top level).
fn unknown_key(
    section: Option<&str>,
    message: &str,
    origin_of: &dyn Fn(&str) -> Option<String>,
) -> ConfigError {
    let field = message.split('`').nth(1).unwrap_or_default();
    let expected: Vec<&str> = message
        .split_once(", expected ")
        .map(|(_, list)| {
            list.trim_start_matches("one of ")
                .split(", ")
                .map(|s| s.trim_matches('`'))
                .collect()
        })
        .unwrap_or_default();
    let key = match section {
        Some(section) => format!("{section}.{field}"),
        None => field.to_owned(),
    };
    let origin = origin_of(&key);
    let from_env = origin
        .as_deref()
        .is_some_and(|o| o.starts_with("environment variable "));
    let mut message = match section {
        Some(section) => format!(
            "unknown key `{key}`{}; keys allowed in [{section}]: {}",
            describe_origin(origin.as_deref()),
            expected.join(", ")
        ),
        None => format!(
            "unknown section `{key}`{}; sections allowed: {}",
            describe_origin(origin.as_deref()),
            expected.join(", ")
        ),
    };
    if let Some(guess) = expected
        .iter()
        .filter(|candidate| strsim::levenshtein(field, candidate) <= 2)
        .min_by_key(|candidate| strsim::levenshtein(field, candidate))
    {
        message.push_str(&format!(" (did you mean `{guess}`?)"));
    }
    if section.is_none() && from_env {
        message.push_str(
            "; environment variables are named ZENTRALE_<SECTION>__<KEY> with two underscores \
             between section and key, e.g. ZENTRALE_SIP__LISTEN",
        );
    }
    ConfigError::UnknownKey { key, message }
}

/// What a key accepts, for error messages.
fn allowed_values(key: &str) -> Option<&'static str> {
    let key = key.split('[').next().unwrap_or(key);
    Some(match key {
        "sip.listen" | "http.listen" => "an IP address and port, e.g. 0.0.0.0:5060 or [::]:5060",
        "sip.transports" => {
            "a list of \"udp\" and/or \"tcp\" (in the environment comma-separated, e.g. udp,tcp)"
        }
        "sip.max_message_bytes" => "a whole number of bytes from 1024 to 65535",
        "sip.max_calls" | "sip.max_tcp_connections" => "a whole number >= 1",
        "sip.overload_lag_ms" => "0 (off) or a whole number of milliseconds from 10 to 1000",
        "sip.t1_ms" | "sip.t2_ms" | "sip.t4_ms" | "sip.answer_delay_ms" => {
            "a whole number of milliseconds"
        }
        "sip.retry_after_secs"
        | "sip.session_expires_secs"
        | "sip.min_se_secs"
        | "sip.tcp_idle_secs"
        | "shutdown.drain_secs"
        | "acd.retry_after_secs" => "a whole number of seconds",
        "acd.keepalive_secs" => "a whole number of seconds (0 turns keep-alives off)",
        "acd.keepalive_failures" => "a whole number >= 1",
        "acd.max_no_answers" => "a whole number (0: never pause for unanswered rings)",
        "records.database_url" => {
            "empty (SQLite under data.dir), sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB"
        }
        "records.caller_numbers" => "\"hashed\", \"shortened\" or \"full\"",
        "records.retention_days" => "a whole number of days >= 1",
        "records.short_abandon_secs" => "a whole number of seconds",
        "records.channel_capacity" => "a whole number >= 16",
        "records.batch_max" => "a whole number from 1 to 10000",
        "sip.symmetric_response" | "log.show_caller_numbers" => "true or false",
        "sip.user_agent" => "a string",
        "media.rtp_ip" => "an IP address, e.g. 192.0.2.10",
        "media.rtp_port_min" | "media.rtp_port_max" => "a UDP port number from 1 to 65535",
        "media.rtp_timeout_secs" => "a whole number of seconds >= 1",
        "rules.dir" | "data.dir" => "a directory path",
        "log.format" => "\"human\" or \"json\"",
        "log.level" => "a tracing filter such as \"info\" or \"info,zentrale::sip=debug\"",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load_env(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::load_from(None, env(vars))
    }

    /// A TOML file in the temp dir, removed on drop.
    struct TempToml(PathBuf);

    impl TempToml {
        fn new(name: &str, content: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "zentrale-config-test-{}-{name}.toml",
                std::process::id()
            ));
            std::fs::write(&path, content).unwrap();
            TempToml(path)
        }
    }

    impl Drop for TempToml {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn err_env(vars: &[(&str, &str)]) -> String {
        load_env(vars).unwrap_err().to_string()
    }

    #[test]
    fn defaults_load_and_validate() {
        let s = load_env(&[]).unwrap();
        assert_eq!(s.sip.listen, "127.0.0.1:5060".parse().unwrap());
        assert_eq!(s.sip.transports, vec![Transport::Udp, Transport::Tcp]);
        assert_eq!(s.sip.t1_ms, 500);
        assert_eq!(s.sip.answer_delay_ms, 0);
        assert_eq!(s.sip.overload_lag_ms, 25);
        assert_eq!(s.log.format, LogFormat::Human);
        Settings::defaults().validate().unwrap();
    }

    #[test]
    fn unrelated_environment_is_ignored() {
        let s = load_env(&[("PATH", "/usr/bin"), ("ZENTRALEX", "1"), ("RUST_LOG", "x")]).unwrap();
        assert_eq!(s.sip.t1_ms, 500);
    }

    #[test]
    fn file_overrides_defaults() {
        let file = TempToml::new(
            "override",
            "[sip]\nlisten = \"0.0.0.0:5070\"\ntransports = [\"udp\"]\nt1_ms = 250\n\n[log]\nformat = \"json\"\n",
        );
        let s = Settings::load_from(Some(&file.0), env(&[])).unwrap();
        assert_eq!(s.sip.listen, "0.0.0.0:5070".parse().unwrap());
        assert_eq!(s.sip.transports, vec![Transport::Udp]); // lists are replaced, not merged
        assert_eq!(s.sip.t1_ms, 250);
        assert_eq!(s.sip.t2_ms, 4000); // untouched keys keep their defaults
        assert_eq!(s.log.format, LogFormat::Json);
    }

    #[test]
    fn environment_overrides_file() {
        let file = TempToml::new("env-over-file", "[sip]\nt1_ms = 250\n");
        let s = Settings::load_from(Some(&file.0), env(&[("ZENTRALE_SIP__T1_MS", "100")])).unwrap();
        assert_eq!(s.sip.t1_ms, 100);
    }

    #[test]
    fn environment_overrides_scalars() {
        let s = load_env(&[
            ("ZENTRALE_SIP__LISTEN", "127.0.0.1:5070"),
            ("ZENTRALE_SIP__T1_MS", "100"),
            ("ZENTRALE_SIP__SYMMETRIC_RESPONSE", "false"),
            ("ZENTRALE_SIP__USER_AGENT", "2.0"),
            ("ZENTRALE_MEDIA__RTP_IP", "192.0.2.10"),
            ("ZENTRALE_LOG__FORMAT", "json"),
            ("ZENTRALE_LOG__LEVEL", "info,zentrale::sip=debug"),
            ("ZENTRALE_RULES__DIR", "/etc/zentrale/routing-rules"),
            ("ZENTRALE_SIP__ANSWER_DELAY_MS", "2000"),
        ])
        .unwrap();
        assert_eq!(s.sip.listen, "127.0.0.1:5070".parse().unwrap());
        assert_eq!(s.sip.t1_ms, 100);
        assert!(!s.sip.symmetric_response);
        assert_eq!(s.sip.user_agent, "2.0");
        assert_eq!(
            s.media.rtp_ip,
            "192.0.2.10".parse::<std::net::IpAddr>().unwrap()
        );
        assert_eq!(s.log.format, LogFormat::Json);
        assert_eq!(s.log.level, "info,zentrale::sip=debug");
        assert_eq!(s.rules.dir, PathBuf::from("/etc/zentrale/routing-rules"));
        assert_eq!(s.sip.answer_delay_ms, 2000);
    }

    #[test]
    fn environment_lists_and_strings_keep_their_text() {
        let s = load_env(&[("ZENTRALE_SIP__TRANSPORTS", "udp")]).unwrap();
        assert_eq!(s.sip.transports, vec![Transport::Udp]);
        // Values stay strings until serde converts them: a leading 0 or + is never lost.
        for agent in ["03641490", "+493641490"] {
            let s = load_env(&[("ZENTRALE_SIP__USER_AGENT", agent)]).unwrap();
            assert_eq!(s.sip.user_agent, agent);
        }
        let s = load_env(&[("ZENTRALE_SIP__TRANSPORTS", "tcp,udp")]).unwrap();
        assert_eq!(s.sip.transports, vec![Transport::Tcp, Transport::Udp]);
    }

    #[test]
    fn unknown_key_in_file_names_key_file_and_allowed_keys() {
        let file = TempToml::new("unknown", "[sip]\nlisen = \"0.0.0.0:5060\"\n");
        let err = Settings::load_from(Some(&file.0), env(&[])).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::UnknownKey { ref key, .. } if key == "sip.lisen"));
        assert!(
            msg.starts_with("unknown key `sip.lisen` (in config file "),
            "{msg}"
        );
        assert!(
            msg.contains("keys allowed in [sip]: listen, transports, max_message_bytes"),
            "{msg}"
        );
        assert!(msg.contains("did you mean `listen`?"), "{msg}");
    }

    #[test]
    fn unknown_section_in_file() {
        let file = TempToml::new("unknown-section", "[sipp]\nlisten = \"0.0.0.0:5060\"\n");
        let msg = Settings::load_from(Some(&file.0), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("unknown section `sipp`"), "{msg}");
        assert!(msg.contains("sections allowed: sip, media, http"), "{msg}");
    }

    #[test]
    fn unknown_key_in_environment_names_the_variable() {
        let msg = err_env(&[("ZENTRALE_SIP__LISEN", "x")]);
        assert!(
            msg.starts_with(
                "unknown key `sip.lisen` (from environment variable ZENTRALE_SIP__LISEN); \
                 keys allowed in [sip]: listen,"
            ),
            "{msg}"
        );
        let msg = err_env(&[("ZENTRALE_SIPP__LISTEN", "x")]);
        assert!(
            msg.starts_with(
                "unknown section `sipp` (from environment variable ZENTRALE_SIPP__LISTEN)"
            ),
            "{msg}"
        );
        assert!(msg.contains("did you mean `sip`?"), "{msg}");
        assert!(msg.contains("ZENTRALE_<SECTION>__<KEY>"), "{msg}");
        // Agents' passwords for the registrar are no settings and no mistake.
        let settings = load_env(&[("ZENTRALE_AGENT1_PASSWORD", "secret")]).expect("loads");
        assert_eq!(settings.sip.realm, "zentrale");
        // One underscore instead of two, no key, odd characters: not a setting name.
        for name in [
            "ZENTRALE_SIP_LISTEN",
            "ZENTRALE_SIP__",
            "ZENTRALE_SIP",
            "ZENTRALE_SIP__A-B",
        ] {
            let err = load_env(&[(name, "x")]).unwrap_err();
            assert!(matches!(err, ConfigError::EnvName { .. }), "{err}");
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("environment variable {name}: ")),
                "{msg}"
            );
            assert!(msg.contains("ZENTRALE_<SECTION>__<KEY>"), "{msg}");
        }
    }

    #[test]
    fn bad_values_name_key_origin_and_what_is_allowed() {
        let msg = err_env(&[("ZENTRALE_SIP__T1_MS", "abc")]);
        assert_eq!(
            msg,
            "invalid value for `sip.t1_ms` (from environment variable ZENTRALE_SIP__T1_MS): \
             expected an integer, got string \"abc\"; allowed: a whole number of milliseconds"
        );
        let file = TempToml::new("bad-value", "[sip]\nt1_ms = \"abc\"\n");
        let msg = Settings::load_from(Some(&file.0), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("invalid value for `sip.t1_ms` (in config file "),
            "{msg}"
        );
        assert!(msg.contains("got string \"abc\""), "{msg}");

        let msg = err_env(&[("ZENTRALE_SIP__LISTEN", "nowhere")]);
        assert!(
            msg.starts_with("invalid value for `sip.listen` (from environment"),
            "{msg}"
        );
        assert!(msg.contains("allowed: an IP address and port"), "{msg}");

        let msg = err_env(&[("ZENTRALE_LOG__FORMAT", "JSON")]);
        assert!(msg.contains("`log.format`"), "{msg}");
        assert!(msg.contains("unknown value \"JSON\""), "{msg}");
        assert!(msg.contains("allowed: \"human\" or \"json\""), "{msg}");

        let msg = err_env(&[("ZENTRALE_SIP__TRANSPORTS", "udp,sctp")]);
        assert!(msg.contains("`sip.transports[1]`"), "{msg}");
        assert!(msg.contains("\"udp\" and/or \"tcp\""), "{msg}");

        let msg = err_env(&[("ZENTRALE_MEDIA__RTP_PORT_MAX", "70000")]);
        assert!(msg.contains("`media.rtp_port_max`"), "{msg}");

        let msg = err_env(&[("ZENTRALE_SIP__SYMMETRIC_RESPONSE", "maybe")]);
        assert!(msg.contains("`sip.symmetric_response`"), "{msg}");
        assert!(msg.contains("true or false"), "{msg}");
    }

    #[test]
    fn missing_or_broken_file() {
        let err = Settings::load_from(Some(Path::new("/nonexistent/zentrale.toml")), env(&[]))
            .unwrap_err();
        assert!(matches!(err, ConfigError::FileNotFound { .. }));
        assert!(
            err.to_string()
                .starts_with("config file /nonexistent/zentrale.toml: not found"),
            "{err}"
        );
        let file = TempToml::new("syntax", "[sip\nt1_ms = 1\n");
        let err = Settings::load_from(Some(&file.0), env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::FileSyntax { .. }), "{err}");
        assert!(err.to_string().contains("not valid TOML"), "{err}");
        let err = Settings::load_from(Some(&std::env::temp_dir()), env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::FileUnreadable { .. }), "{err}");
    }

    #[test]
    fn semantic_checks() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("ZENTRALE_SIP__T1_MS", "0")], "sip.t1_ms must be > 0"),
            (
                &[
                    ("ZENTRALE_SIP__T1_MS", "5000"),
                    ("ZENTRALE_SIP__T2_MS", "4000"),
                ],
                "sip.t2_ms must be >= sip.t1_ms",
            ),
            (
                &[("ZENTRALE_SIP__TRANSPORTS", "")],
                "sip.transports must not be empty",
            ),
            (
                &[("ZENTRALE_SIP__MAX_MESSAGE_BYTES", "512")],
                "sip.max_message_bytes must be between 1024 and 65535 (UDP datagram limit)",
            ),
            (
                &[("ZENTRALE_SIP__MAX_MESSAGE_BYTES", "65536")],
                "sip.max_message_bytes must be between 1024 and 65535 (UDP datagram limit)",
            ),
            (
                &[("ZENTRALE_SIP__MAX_CALLS", "0")],
                "sip.max_calls must be >= 1",
            ),
            (
                &[("ZENTRALE_SIP__OVERLOAD_LAG_MS", "5")],
                "sip.overload_lag_ms must be 0 (off) or between 10 and 1000 (is 5)",
            ),
            (
                &[("ZENTRALE_SIP__OVERLOAD_LAG_MS", "1001")],
                "sip.overload_lag_ms must be 0 (off) or between 10 and 1000 (is 1001)",
            ),
            (
                &[("ZENTRALE_SIP__MAX_TCP_CONNECTIONS", "0")],
                "sip.max_tcp_connections must be >= 1",
            ),
            (
                &[("ZENTRALE_SIP__SESSION_EXPIRES_SECS", "60")],
                "sip.session_expires_secs must be >= sip.min_se_secs",
            ),
            (
                &[("ZENTRALE_SIP__USER_AGENT", "evil\r\nX: y")],
                "sip.user_agent must not be empty or contain control characters",
            ),
            (
                &[("ZENTRALE_MEDIA__RTP_PORT_MIN", "20001")],
                "media.rtp_port_min must be even, > 0 and < media.rtp_port_max",
            ),
            (
                &[("ZENTRALE_MEDIA__RTP_PORT_MIN", "30000")],
                "media.rtp_port_min must be even, > 0 and < media.rtp_port_max",
            ),
            (
                &[("ZENTRALE_RECORDS__RETENTION_DAYS", "0")],
                "records.retention_days must be >= 1",
            ),
            (
                &[("ZENTRALE_RECORDS__DATABASE_URL", "mysql://x")],
                "records.database_url must be empty",
            ),
            (
                &[("ZENTRALE_LOG__LEVEL", "zentrale=loud")],
                "log.level \"zentrale=loud\" is not a valid tracing filter",
            ),
        ];
        for (vars, expected) in cases {
            let err = load_env(vars).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid(_)), "{vars:?}: {err}");
            let msg = err.to_string();
            assert!(msg.starts_with(expected), "{vars:?}: {msg}");
        }
        // The overload guard may be off, and its bounds are allowed.
        for lag in ["0", "10", "1000"] {
            let s = load_env(&[("ZENTRALE_SIP__OVERLOAD_LAG_MS", lag)]).unwrap();
            assert_eq!(s.sip.overload_lag_ms.to_string(), lag);
        }
        // Without TCP no TCP connections are needed.
        load_env(&[
            ("ZENTRALE_SIP__TRANSPORTS", "udp"),
            ("ZENTRALE_SIP__MAX_TCP_CONNECTIONS", "0"),
        ])
        .unwrap();
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let msg = err_env(&[
            ("ZENTRALE_SIP__T1_MS", "0"),
            ("ZENTRALE_SIP__MAX_CALLS", "0"),
        ]);
        assert!(msg.starts_with("2 problems in the configuration:"), "{msg}");
        assert!(msg.contains("\n  - sip.t1_ms must be > 0"), "{msg}");
        assert!(msg.contains("\n  - sip.max_calls must be >= 1"), "{msg}");
    }

    #[test]
    fn effective_settings_serialize_back_to_loadable_toml() {
        let s = load_env(&[("ZENTRALE_SIP__USER_AGENT", "03641490")]).unwrap();
        let text = toml::to_string(&s).unwrap();
        let file = TempToml::new("roundtrip", &text);
        let again = Settings::load_from(Some(&file.0), env(&[])).unwrap();
        assert_eq!(again.sip.user_agent, "03641490");
    }
}
