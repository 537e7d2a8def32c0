//! One `Settings` value, built from embedded defaults, an optional TOML file and `ZENTRALE_*`
//! environment overrides (the `config` crate). Nothing else in the engine reads the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub sip: SipSettings,
    pub media: MediaSettings,
    pub http: HttpSettings,
    pub rules: RulesSettings,
    pub data: DataSettings,
    pub log: LogSettings,
    pub shutdown: ShutdownSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipSettings {
    /// Address for SIP over UDP and TCP (same port for both).
    pub listen: SocketAddr,
    /// Which transports to serve: any of "udp", "tcp".
    pub transports: Vec<Transport>,
    /// Dialled numbers (Request-URI user part) that the hotline answers.
    pub numbers: Vec<String>,
    /// Largest SIP message accepted, in bytes (larger: 413 over UDP if parseable, else dropped;
    /// TCP connection closed).
    pub max_message_bytes: usize,
    /// Most calls at once; one more INVITE gets 503 with Retry-After.
    pub max_calls: usize,
    /// Retry-After seconds sent with 503 (overload or shutdown).
    pub retry_after_secs: u32,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSettings {
    /// Local address for RTP sockets and for the SDP `c=` line.
    pub rtp_ip: std::net::IpAddr,
    /// Lowest RTP port (even).
    pub rtp_port_min: u16,
    /// Highest RTP port.
    pub rtp_port_max: u16,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesSettings {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// "human" or "json".
    pub format: LogFormat,
    /// A tracing EnvFilter directive, e.g. "info" or "zentrale=debug".
    pub level: String,
    /// Log caller numbers at INFO (off by default: privacy).
    pub show_caller_numbers: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    /// On SIGTERM/Ctrl-C running calls get this long before the engine sends BYE, seconds.
    pub drain_secs: u64,
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

impl Settings {
    /// Defaults only (tests, `zentrale serve` without a file).
    pub fn defaults() -> Self {
        config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS_TOML, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("embedded defaults are valid")
    }
}
