//! The engine under test: the real `zentrale serve` binary, configured only by environment,
//! listening on free loopback ports, with a scratch data directory and its own log file.
//!
//! `TEST_ZENTRALE_BIN=<path>` runs another binary instead of the one Cargo built for this test
//! (e.g. a release build); by default it is `CARGO_BIN_EXE_zentrale`. `TEST_ZENTRALE_LOG_LEVEL`
//! sets the engine's log level (default [`CALL_STEPS`]: `info` plus the `debug` lines of each
//! call's steps, which the tests read), e.g. `debug` when hunting a failure. (These
//! knobs don't start with `ZENTRALE_`: the engine refuses unknown `ZENTRALE_*` variables.)
//!
//! The overload guard (`sip.overload_lag_ms`) is off unless a test sets it.

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::ports::{self, LOOPBACK};
use super::scratch::ScratchDir;
use super::sip::SipClient;

/// The engine's log level in tests: the shipped `info`, plus each call's steps (incoming,
/// queued, ringing, connected, agent states …), which are `debug` lines in the engine and
/// what the tests follow a call by.
pub const CALL_STEPS: &str = "info,zentrale::call=debug,zentrale::acd=debug";

/// How long the engine gets to answer its first OPTIONS.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
const READY_POLL: Duration = Duration::from_millis(50);

pub const SIGINT: i32 = 2;
pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;
/// Stop and continue a process (Linux numbers; they differ on other Unixes).
#[cfg(target_os = "linux")]
pub const SIGSTOP: i32 = 19;
#[cfg(target_os = "linux")]
pub const SIGCONT: i32 = 18;

unsafe extern "C" {
    /// POSIX kill(2), from the C library std already links.
    fn kill(pid: i32, sig: i32) -> i32;
}

pub struct Engine {
    child: Child,
    sip: SocketAddr,
    http: SocketAddr,
    rtp: (u16, u16),
    log_path: PathBuf,
    // Dropped last: the directory holds the log that Drop may still print.
    dir: ScratchDir,
}

impl Engine {
    /// Starts the engine with the test defaults overridden by `extra_env`, and waits until it
    /// answers OPTIONS over UDP with 200. Panics with the log tail if it doesn't within 15 s.
    pub fn start(extra_env: &[(&str, &str)]) -> Engine {
        let dir = ScratchDir::new("engine");
        let data_dir = dir.join("data");
        std::fs::create_dir_all(&data_dir).expect("create data dir");
        let sip = SocketAddr::from((LOOPBACK, ports::free_udp_tcp_port()));
        let http = SocketAddr::from((LOOPBACK, ports::free_tcp_port()));
        let rtp = ports::rtp_range();
        let log_path = dir.join("engine.log");
        let log = File::create(&log_path).expect("create engine log");

        let binary = std::env::var_os("TEST_ZENTRALE_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_zentrale")));
        let mut command = Command::new(&binary);
        command
            .arg("serve")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log handle")))
            .stderr(Stdio::from(log));
        // Only what the test sets: nothing leaks in from the developer's shell.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ZENTRALE_") {
                command.env_remove(name);
            }
        }
        let defaults = [
            ("ZENTRALE_SIP__LISTEN", sip.to_string()),
            ("ZENTRALE_HTTP__LISTEN", http.to_string()),
            ("ZENTRALE_DATA__DIR", data_dir.display().to_string()),
            // The Jena rules with calendars open around the clock: tests must not depend on
            // the time of day they run at. Tests of the real calendars pass their own dir.
            (
                "ZENTRALE_RULES__DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rules-open").to_string(),
            ),
            ("ZENTRALE_MEDIA__RTP_PORT_MIN", rtp.0.to_string()),
            ("ZENTRALE_MEDIA__RTP_PORT_MAX", rtp.1.to_string()),
            ("ZENTRALE_LOG__FORMAT", "human".to_string()),
            (
                "ZENTRALE_LOG__LEVEL",
                std::env::var("TEST_ZENTRALE_LOG_LEVEL").unwrap_or_else(|_| CALL_STEPS.into()),
            ),
            ("ZENTRALE_SHUTDOWN__DRAIN_SECS", "2".to_string()),
            // The overload guard off: tests run many debug-build engines in parallel on shared
            // cores, and their exact call outcomes must not depend on how busy the machine is.
            // `tests/overload.rs` turns it on.
            ("ZENTRALE_SIP__OVERLOAD_LAG_MS", "0".to_string()),
            ("RUST_BACKTRACE", "1".to_string()),
        ];
        for (name, value) in &defaults {
            command.env(name, value);
        }
        for (name, value) in extra_env {
            command.env(name, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));

        let mut engine = Engine {
            child,
            sip,
            http,
            rtp,
            log_path,
            dir,
        };
        engine.wait_ready();
        engine
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        let client = SipClient::new(self.sip);
        loop {
            if let Some(status) = self.child.try_wait().expect("poll engine") {
                panic!(
                    "engine exited with {status} before answering OPTIONS\n{}",
                    self.log_tail(60)
                );
            }
            if client
                .options("ping", READY_POLL)
                .is_some_and(|reply| reply.status() == Some(200))
            {
                return;
            }
            if started.elapsed() > READY_TIMEOUT {
                panic!(
                    "engine did not answer OPTIONS with 200 on {} within {READY_TIMEOUT:?}\n{}",
                    self.sip,
                    self.log_tail(60)
                );
            }
        }
    }

    pub fn sip_addr(&self) -> SocketAddr {
        self.sip
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// The engine's `data.dir` (call records, keys).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn rtp_range(&self) -> (u16, u16) {
        self.rtp
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: i32) {
        signal_pid(self.pid(), sig);
    }

    pub fn sigterm(&self) {
        self.signal(SIGTERM);
    }

    pub fn sigint(&self) {
        self.signal(SIGINT);
    }

    /// Waits up to `timeout` for the engine to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll engine") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("poll engine").is_none()
    }

    /// Everything the engine wrote to stdout and stderr so far.
    ///
    /// The engine writes its log from a buffer on its own thread, up to 20 ms after a line
    /// was logged: the short pause first lets a line logged before what the test just
    /// observed (an HTTP answer, a SIP message) reach the file.
    pub fn log(&self) -> String {
        std::thread::sleep(std::time::Duration::from_millis(30));
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    pub fn log_path(&self) -> &std::path::Path {
        &self.log_path
    }

    /// The last `lines` lines of the log, framed for a panic message.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        format!(
            "--- engine log {} (last {lines} lines) ---\n{tail}\n--- end of engine log ---",
            self.log_path.display()
        )
    }

    /// Fails the test if the engine logged a Rust panic.
    pub fn assert_no_panic(&self) {
        let log = self.log();
        if log.contains("panicked") {
            let lines: Vec<&str> = log.lines().collect();
            let at = lines
                .iter()
                .position(|l| l.contains("panicked"))
                .unwrap_or(0);
            let excerpt = lines[at.saturating_sub(5)..(at + 30).min(lines.len())].join("\n");
            panic!("engine panicked ({}):\n{excerpt}", self.log_path.display());
        }
    }
}

/// Sends `sig` to `pid`, which must be a child this test spawned and has not reaped yet (an
/// [`Engine`] that is not dropped), so the pid cannot belong to another process.
pub fn signal_pid(pid: u32, sig: i32) {
    let pid = i32::try_from(pid).expect("pid fits i32");
    // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
    let rc = unsafe { kill(pid, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}) failed: {}",
        std::io::Error::last_os_error()
    );
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail(40));
        }
    }
}
