//! ACD test helpers: a rules folder with the test's own agents and queue settings, reading a
//! SIPp agent's message trace as calls, and counting RTP packets on the wire with tcpdump.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::scratch::ScratchDir;

/// The fixture rules (Jena rules, calendars always open) with `agents_toml` as agents.toml and
/// `edits` = (file, from, to) text replacements applied (each must match).
pub fn rules_dir(agents_toml: &str, edits: &[(&str, &str, &str)]) -> ScratchDir {
    let fixture = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rules-open"
    ));
    let dir = ScratchDir::new("rules");
    for entry in std::fs::read_dir(fixture).expect("read the fixture rules") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            let mut text = std::fs::read_to_string(&path).expect("read a rules file");
            if name == "agents.toml" {
                text = agents_toml.to_string();
            }
            for (file, from, to) in edits {
                if *file == name {
                    assert!(text.contains(from), "{name} has no `{from}` to edit");
                    text = text.replace(from, to);
                }
            }
            std::fs::write(dir.join(&name), text).expect("write a rules file");
        }
    }
    let prompts = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/routing-rules/prompts"
    ));
    std::os::unix::fs::symlink(prompts, dir.join("prompts")).expect("link the prompts");
    dir
}

/// `[agent.<id>]` reached at a static URI on loopback.
pub fn static_agent(id: &str, skills: &str, port: u16) -> String {
    format!(
        "[agent.{id}]\nname = \"Agent {id}\"\nskills = {{ {skills} }}\nuri = \"sip:{id}@127.0.0.1:{port}\"\n\n"
    )
}

/// `[agent.<id>]` whose phone registers as `<id>` with the password from `$env`.
pub fn registered_agent(id: &str, skills: &str, env: &str) -> String {
    format!(
        "[agent.{id}]\nname = \"Agent {id}\"\nskills = {{ {skills} }}\nregistration = \"{id}\"\npassword_env = \"{env}\"\n\n"
    )
}

/// A fixture rules folder whose only agent, `staff`, has every skill and a phone at a loopback
/// port nobody answers: once logged in ([`login`]), callers wait in their queue (the ring
/// times out) instead of overflowing for lack of agents.
pub fn rules_with_silent_staff(edits: &[(&str, &str, &str)]) -> ScratchDir {
    rules_dir(&silent_staff(), edits)
}

/// agents.toml with the one agent `staff` (every skill, a phone nobody answers).
pub fn silent_staff() -> String {
    let port = super::ports::free_udp_tcp_port();
    let skills =
        "buergerservice = 5, fuehrerschein = 5, maengelmelder = 5, fundbuero = 5, allgemein = 5";
    static_agent("staff", skills, port)
}

/// An engine on the fixture rules with `staff` logged in (see [`rules_with_silent_staff`]);
/// keep the returned folder as long as the engine runs.
pub fn staffed_engine(extra_env: &[(&str, &str)]) -> (super::engine::Engine, ScratchDir) {
    let rules = rules_with_silent_staff(&[]);
    let dir = rules.path().display().to_string();
    let mut env: Vec<(&str, &str)> = extra_env.to_vec();
    env.push(("ZENTRALE_RULES__DIR", &dir));
    let engine = super::engine::Engine::start(&env);
    login(&engine, "staff");
    (engine, rules)
}

/// Logs `agent` in through the HTTP API; panics unless it is then available.
pub fn login(engine: &super::engine::Engine, agent: &str) {
    let (status, body) = super::http::post_json(
        engine.http_addr(),
        &format!("/api/agents/{agent}/login"),
        None,
    );
    assert_eq!(status, 200, "login {agent}: {body}");
    assert_eq!(body["agent"]["state"], "available", "{body}");
}

/// One message from a SIPp `-trace_msg` file.
#[derive(Debug, Clone)]
pub struct Traced {
    /// Seconds since midnight (the trace's wall clock).
    pub at: f64,
    pub received: bool,
    pub text: String,
}

impl Traced {
    pub fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.text.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    pub fn call_id(&self) -> String {
        self.header("Call-ID").unwrap_or_default()
    }

    pub fn is_request(&self, method: &str) -> bool {
        self.first_line().starts_with(&format!("{method} "))
    }

    /// Status of a response with this CSeq method.
    pub fn status_for(&self, method: &str) -> Option<u16> {
        let status = self
            .first_line()
            .strip_prefix("SIP/2.0 ")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        self.header("CSeq")?.ends_with(method).then_some(status)
    }
}

/// Splits a SIPp message trace into messages.
pub fn parse_trace(trace: &str) -> Vec<Traced> {
    let mut out: Vec<Traced> = Vec::new();
    let mut current: Option<Traced> = None;
    let mut in_body = false;
    for line in trace.lines() {
        if let Some(stamp) = line.strip_prefix("----------------------------------------------- ") {
            out.extend(current.take());
            // "2026-11-24 12:29:24.985300"
            let time = stamp.split_whitespace().nth(1).unwrap_or("0:0:0");
            let mut parts = time.split(':').map(|p| p.parse::<f64>().unwrap_or(0.0));
            let (h, m, s) = (
                parts.next().unwrap_or(0.0),
                parts.next().unwrap_or(0.0),
                parts.next().unwrap_or(0.0),
            );
            current = Some(Traced {
                at: h * 3600.0 + m * 60.0 + s,
                received: false,
                text: String::new(),
            });
            in_body = false;
            continue;
        }
        let Some(message) = current.as_mut() else {
            continue;
        };
        if !in_body {
            if line.contains("message received") {
                message.received = true;
            }
            if line.contains("message received") || line.contains("message sent") {
                in_body = true;
            }
            continue;
        }
        if message.text.is_empty() && line.trim().is_empty() {
            continue;
        }
        message.text.push_str(line);
        message.text.push('\n');
    }
    out.extend(current);
    out
}

/// One call as an agent's phone saw it.
#[derive(Debug, Clone)]
pub struct AgentCall {
    pub call_id: String,
    /// The INVITE arrived.
    pub start: f64,
    /// The last message of the call (BYE/200, CANCEL/487 …).
    pub end: f64,
    pub answered: bool,
    pub cancelled: bool,
    pub queue: Option<String>,
    pub display: String,
}

/// The calls in an agent's trace, in order of their INVITE.
pub fn agent_calls(trace: &str) -> Vec<AgentCall> {
    let mut calls: BTreeMap<String, AgentCall> = BTreeMap::new();
    let mut invited = std::collections::BTreeSet::new();
    for m in parse_trace(trace) {
        let id = m.call_id();
        if id.is_empty() {
            continue;
        }
        let call = calls.entry(id.clone()).or_insert_with(|| AgentCall {
            call_id: id.clone(),
            start: m.at,
            end: m.at,
            answered: false,
            cancelled: false,
            queue: None,
            display: String::new(),
        });
        call.end = call.end.max(m.at);
        if m.received && m.is_request("INVITE") {
            invited.insert(id.clone());
            call.start = m.at;
            call.queue = m.header("X-Zentrale-Queue");
            call.display = m.header("From").unwrap_or_default();
        }
        if !m.received && m.status_for("INVITE") == Some(200) {
            call.answered = true;
        }
        if m.received && m.is_request("CANCEL") {
            call.cancelled = true;
        }
    }
    // Keep-alive OPTIONS and the like are no calls.
    let mut calls: Vec<AgentCall> = calls
        .into_values()
        .filter(|c| invited.contains(&c.call_id))
        .collect();
    calls.sort_by(|a, b| a.start.total_cmp(&b.start));
    calls
}

/// Panics if two calls of one agent overlap in time (a double booking seen by the phone).
pub fn assert_never_two_calls(agent: &str, calls: &[AgentCall]) {
    for pair in calls.windows(2) {
        assert!(
            pair[1].start >= pair[0].end,
            "agent {agent} had two calls at once: {} ({:.3}–{:.3}) and {} (from {:.3})",
            pair[0].call_id,
            pair[0].start,
            pair[0].end,
            pair[1].call_id,
            pair[1].start
        );
    }
}

/// RTP on the wire: tcpdump on the loopback interface, UDP to the given ports.
pub struct Capture {
    child: Child,
    file: PathBuf,
    _dir: ScratchDir,
}

impl Capture {
    /// Starts capturing UDP packets whose destination is one of `ports`; returns once tcpdump
    /// listens. Panics (never skips) when tcpdump is missing.
    pub fn start(ports: &[u16]) -> Capture {
        let dir = ScratchDir::new("capture");
        let file = dir.join("rtp.pcap");
        let filter = ports
            .iter()
            .map(|p| format!("dst port {p}"))
            .collect::<Vec<_>>()
            .join(" or ");
        let mut child = Command::new("tcpdump")
            .args(["-i", "lo", "-n", "-U", "-w"])
            .arg(&file)
            .arg(format!("udp and ({filter})"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run tcpdump ({e}): install the Debian package tcpdump \
                     (apt-get install -y tcpdump) or run scripts/test.sh"
                )
            });
        // tcpdump says "listening on lo" once the capture runs.
        let stderr = child.stderr.take().expect("tcpdump stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
            }
        });
        let ready = rx.recv_timeout(Duration::from_secs(10)).is_ok();
        if !ready {
            let _ = child.kill();
            panic!(
                "tcpdump did not start listening on lo within 10 s (it needs root or CAP_NET_RAW)"
            );
        }
        Capture {
            child,
            file,
            _dir: dir,
        }
    }

    /// Stops the capture; returns the UDP packets as (destination port, payload).
    pub fn stop(mut self) -> Vec<(u16, Vec<u8>)> {
        unsafe extern "C" {
            fn kill(pid: i32, sig: i32) -> i32;
        }
        // SAFETY: kill(2) on our own child with SIGINT (2): tcpdump flushes and exits.
        unsafe {
            kill(self.child.id() as i32, 2);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let data = std::fs::read(&self.file).expect("read the capture");
        udp_destinations(&data)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The UDP packets of a classic pcap file (Ethernet or Linux SLL framing, IPv4) as
/// (destination port, UDP payload).
pub fn udp_destinations(data: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut packets = Vec::new();
    if data.len() < 24 {
        return packets;
    }
    let little = data[0] == 0xd4;
    let u32_at = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let link = u32_at(&data[20..24]);
    let link_header = match link {
        1 => 14,   // Ethernet
        113 => 16, // Linux cooked
        276 => 20, // Linux cooked v2
        0 => 4,    // BSD loopback
        other => panic!("unexpected pcap link type {other}"),
    };
    let mut at = 24;
    while at + 16 <= data.len() {
        let captured = u32_at(&data[at + 8..at + 12]) as usize;
        let packet = &data[(at + 16).min(data.len())..(at + 16 + captured).min(data.len())];
        at += 16 + captured;
        let Some(ip) = packet.get(link_header..) else {
            continue;
        };
        if ip.len() < 28 || ip[0] >> 4 != 4 || ip[9] != 17 {
            continue;
        }
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let Some(udp) = ip.get(ihl..ihl + 8) else {
            continue;
        };
        let dst = u16::from_be_bytes([udp[2], udp[3]]);
        packets.push((dst, ip.get(ihl + 8..).unwrap_or(&[]).to_vec()));
    }
    packets
}

/// The RTP payloads (after a 12-byte header) of the audio packets in a pcap file.
pub fn rtp_payloads(pcap: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(pcap).unwrap_or_else(|e| panic!("read {}: {e}", pcap.display()));
    udp_destinations(&data)
        .into_iter()
        .filter(|(_, p)| p.len() > 12)
        .map(|(_, p)| p[12..].to_vec())
        .collect()
}
