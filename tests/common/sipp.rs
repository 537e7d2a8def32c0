//! Runs SIPp (Debian package `sip-tester`, tested with 3.6.1) against an engine.
//!
//! Every run is bounded: SIPp gets `-timeout <t> -timeout_error` (it quits by itself and exits
//! non-zero when the time is up) and the harness kills it 15 s after that if it still runs, or
//! when the handle is dropped. SIPp writes its statistics with `-trace_stat` into a scratch
//! directory; the last row of that CSV (written when SIPp exits) gives the cumulative
//! `SuccessfulCall(C)` / `FailedCall(C)` counters, which is more reliable than scraping the
//! screen. `-trace_counts` (per-message counters, rewritten every `-fd` second) lets a test
//! watch a run in progress, e.g. "all 20 ACKs sent".
//!
//! SIPp exit codes: 0 all calls successful, 1 at least one failed, 97 stopped by an internal
//! command, 99 normal exit without calls processed, 255 fatal error or global timeout
//! (`-timeout_error`), 254 cannot bind its socket.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::ports;
use super::scratch::ScratchDir;

/// Extra time after SIPp's own `-timeout` before the harness kills it.
const KILL_GRACE: Duration = Duration::from_secs(15);

/// Where the scenario files live.
pub fn scenario_path(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp")).join(name)
}

/// The `sipp` executable on PATH. Panics (never skips) when it is missing.
pub fn sipp_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("sipp"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "sipp not found: install the Debian package sip-tester \
                 (apt-get install -y sip-tester) or run scripts/test.sh"
            )
        })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `-t u1`: one UDP socket for all calls.
    Udp,
    /// `-t t1`: one TCP connection for all calls.
    Tcp,
}

/// A SIPp invocation, built step by step and then [`Sipp::run`] or [`Sipp::spawn`].
pub struct Sipp {
    scenario: String,
    target: SocketAddr,
    service: String,
    transport: Transport,
    calls: u32,
    rate: Option<f64>,
    limit: Option<u32>,
    call_length_ms: Option<u64>,
    timeout: Duration,
    extra: Vec<String>,
    port: Option<u16>,
    trace_messages: bool,
}

impl Sipp {
    /// `scenario` is a file name in `tests/sipp/`, `target` the engine's SIP address. Defaults:
    /// 1 call to `490` over UDP, 60 s global timeout.
    pub fn new(scenario: &str, target: SocketAddr) -> Sipp {
        Sipp {
            scenario: scenario.to_string(),
            target,
            service: "490".to_string(),
            transport: Transport::Udp,
            calls: 1,
            rate: None,
            limit: None,
            call_length_ms: None,
            timeout: Duration::from_secs(60),
            extra: Vec::new(),
            port: None,
            trace_messages: false,
        }
    }

    /// Request-URI user part (`-s`).
    pub fn service(mut self, user: &str) -> Sipp {
        self.service = user.to_string();
        self
    }

    pub fn transport(mut self, transport: Transport) -> Sipp {
        self.transport = transport;
        self
    }

    /// Total number of calls (`-m`): SIPp exits after that many.
    pub fn calls(mut self, calls: u32) -> Sipp {
        self.calls = calls;
        self
    }

    /// Calls per second (`-r`).
    pub fn rate(mut self, per_second: f64) -> Sipp {
        self.rate = Some(per_second);
        self
    }

    /// Most simultaneous calls (`-l`).
    pub fn limit(mut self, calls: u32) -> Sipp {
        self.limit = Some(calls);
        self
    }

    /// Length of `<pause/>` in the scenario (`-d`, ms).
    pub fn call_length_ms(mut self, ms: u64) -> Sipp {
        self.call_length_ms = Some(ms);
        self
    }

    /// SIPp's global timeout (`-timeout`, with `-timeout_error`).
    pub fn timeout(mut self, timeout: Duration) -> Sipp {
        self.timeout = timeout;
        self
    }

    /// Any other SIPp option.
    /// The local SIP port (default: a free one), e.g. for a UAS whose address must be known.
    pub fn local_port(mut self, port: u16) -> Sipp {
        self.port = Some(port);
        self
    }

    /// Every message SIPp sends and receives, with timestamps, into `messages.log`
    /// ([`SippProcess::messages`]).
    pub fn trace_messages(mut self) -> Sipp {
        self.trace_messages = true;
        self
    }

    pub fn arg(mut self, arg: &str) -> Sipp {
        self.extra.push(arg.to_string());
        self
    }

    /// Starts SIPp in the background.
    pub fn spawn(self) -> SippProcess {
        let binary = sipp_binary();
        let scenario = scenario_path(&self.scenario);
        assert!(scenario.is_file(), "no scenario {}", scenario.display());
        let dir = ScratchDir::new("sipp");
        let port = self.port.unwrap_or_else(ports::free_udp_tcp_port);
        let timeout_secs = self.timeout.as_secs().max(1);

        let mut args: Vec<String> = vec![
            "-sf".into(),
            scenario.display().to_string(),
            "-s".into(),
            self.service.clone(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-t".into(),
            match self.transport {
                Transport::Udp => "u1".into(),
                Transport::Tcp => "t1".into(),
            },
            "-m".into(),
            self.calls.to_string(),
            "-timeout".into(),
            format!("{timeout_secs}s"),
            "-timeout_error".into(),
            "-nostdin".into(),
            "-trace_stat".into(),
            "-stf".into(),
            dir.join("stat.csv").display().to_string(),
            "-fd".into(),
            "1".into(),
            "-trace_counts".into(),
            "-trace_err".into(),
            "-error_file".into(),
            dir.join("errors.log").display().to_string(),
            "-trace_screen".into(),
            "-screen_file".into(),
            dir.join("screen.log").display().to_string(),
        ];
        if self.trace_messages {
            args.extend([
                "-trace_msg".into(),
                "-message_file".into(),
                dir.join("messages.log").display().to_string(),
            ]);
        }
        if let Some(rate) = self.rate {
            args.extend(["-r".into(), format!("{rate}")]);
        }
        if let Some(limit) = self.limit {
            args.extend(["-l".into(), limit.to_string()]);
        }
        if let Some(ms) = self.call_length_ms {
            args.extend(["-d".into(), ms.to_string()]);
        }
        args.extend(self.extra.iter().cloned());
        args.push(self.target.to_string());

        let stdout = File::create(dir.join("stdout.log")).expect("create sipp stdout log");
        let stderr = stdout.try_clone().expect("clone sipp log handle");
        let child = Command::new(&binary)
            .args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        SippProcess {
            child,
            command: format!("sipp {}", args.join(" ")),
            kill_at: Instant::now() + Duration::from_secs(timeout_secs) + KILL_GRACE,
            dir,
        }
    }

    /// Runs SIPp to the end and returns its result.
    pub fn run(self) -> SippResult {
        self.spawn().wait()
    }
}

/// A running SIPp; killed (SIGKILL) when dropped before it finished.
pub struct SippProcess {
    child: Child,
    command: String,
    kill_at: Instant,
    dir: ScratchDir,
}

impl SippProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The message trace so far (with [`Sipp::trace_messages`]).
    pub fn messages(&self) -> String {
        std::fs::read_to_string(self.dir.join("messages.log")).unwrap_or_default()
    }

    /// Asks SIPp to finish (SIGUSR1: stop new calls, end gracefully), then waits.
    /// A UAS that still holds open calls (e.g. keep-alive OPTIONS it answered, which it counts
    /// as calls waiting for an INVITE) does not finish on SIGUSR1: after 2 s it gets SIGINT,
    /// which ends it at once (its logs are written).
    pub fn stop(mut self) -> SippResult {
        unsafe extern "C" {
            fn kill(pid: i32, sig: i32) -> i32;
        }
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) with our own child's pid and SIGUSR1 (10).
        unsafe {
            kill(pid, 10);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && self.child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.child.try_wait().ok().flatten().is_none() {
            // SAFETY: as above, SIGINT (2).
            unsafe {
                kill(pid, 2);
            }
        }
        self.wait()
    }

    /// Waits for SIPp to finish (killing it when its time is up) and collects the result.
    pub fn wait(mut self) -> SippResult {
        let mut killed = false;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll sipp") {
                break status;
            }
            if Instant::now() >= self.kill_at {
                let _ = self.child.kill();
                killed = true;
                break self.child.wait().expect("reap sipp");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stats = read_last_row(&self.dir.join("stat.csv"));
        let counter = |name: &str| -> u64 {
            stats
                .as_ref()
                .and_then(|row| column(row, name))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        SippResult {
            command: self.command.clone(),
            exit_code: status.code(),
            killed,
            stats_found: stats.is_some(),
            created: counter("TotalCallCreated"),
            successful: counter("SuccessfulCall(C)"),
            failed: counter("FailedCall(C)"),
            retransmissions: counter("Retransmissions(C)"),
            unexpected: counter("FailedUnexpectedMessage(C)"),
            timeouts: counter("FailedTimeoutOnRecv(C)") + counter("FailedMaxUDPRetrans(C)"),
            stdout: read_lossy(&self.dir.join("stdout.log")),
            screen: read_lossy(&self.dir.join("screen.log")),
            errors: read_lossy(&self.dir.join("errors.log")),
            messages: read_lossy(&self.dir.join("messages.log")),
        }
    }

    /// Sum of the latest per-message counters whose column ends with `suffix` (e.g.
    /// `"_ACK_Sent"`, `"_BYE_Recv"`), from the `-trace_counts` file (updated once a second).
    pub fn message_count(&self, suffix: &str) -> u64 {
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else {
            return 0;
        };
        let counts_file = entries
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with("_counts.csv"));
        let Some(row) = counts_file.and_then(|p| read_last_row(&p)) else {
            return 0;
        };
        row.iter()
            .filter(|(name, _)| name.ends_with(suffix))
            .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
            .sum()
    }

    /// Polls [`Self::message_count`] until it reaches `at_least` or `timeout` passes; returns
    /// the last count seen.
    pub fn wait_for_count(&self, suffix: &str, at_least: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.message_count(suffix);
            if n >= at_least || Instant::now() >= deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for SippProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a SIPp run did.
#[derive(Debug)]
pub struct SippResult {
    pub command: String,
    /// `None` if killed by a signal.
    pub exit_code: Option<i32>,
    /// The harness had to kill it.
    pub killed: bool,
    pub stats_found: bool,
    pub created: u64,
    pub successful: u64,
    pub failed: u64,
    pub retransmissions: u64,
    pub unexpected: u64,
    pub timeouts: u64,
    pub stdout: String,
    pub screen: String,
    pub errors: String,
    /// The message trace (empty without [`Sipp::trace_messages`]).
    pub messages: String,
}

impl SippResult {
    /// Panics with SIPp's screen and error log unless exactly `calls` calls succeeded, none
    /// failed and SIPp exited 0.
    pub fn assert_all_successful(&self, calls: u64) {
        if self.successful != calls || self.failed != 0 || self.exit_code != Some(0) {
            panic!(
                "SIPp: expected {calls} successful and 0 failed calls with exit code 0, got \
                 {} successful, {} failed ({} created, {} unexpected messages, {} timeouts, {} \
                 retransmissions), exit code {:?}{}\n{}",
                self.successful,
                self.failed,
                self.created,
                self.unexpected,
                self.timeouts,
                self.retransmissions,
                self.exit_code,
                if self.killed {
                    " (killed by the harness)"
                } else {
                    ""
                },
                self.report()
            );
        }
    }

    /// Command line, final screen and the first errors, for failure messages.
    pub fn report(&self) -> String {
        let screen = if self.screen.trim().is_empty() {
            tail(&self.stdout, 60)
        } else {
            self.screen.clone()
        };
        format!(
            "--- command ---\n{}\n--- final screen ---\n{screen}\n--- errors (first 80 lines) ---\n{}\n---",
            self.command,
            self.errors.lines().take(80).collect::<Vec<_>>().join("\n")
        )
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The header and last data row of a SIPp `;`-separated CSV, as (column, value) pairs.
fn read_last_row(path: &Path) -> Option<Vec<(String, String)>> {
    let text = read_lossy(path);
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next()?.split(';').collect();
    let last = lines.next_back()?;
    Some(
        header
            .iter()
            .zip(last.split(';'))
            .map(|(h, v)| (h.to_string(), v.to_string()))
            .collect(),
    )
}

fn column<'a>(row: &'a [(String, String)], name: &str) -> Option<&'a str> {
    row.iter().find(|(h, _)| h == name).map(|(_, v)| v.as_str())
}
