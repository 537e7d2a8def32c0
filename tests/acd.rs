//! The ACD end to end: callers choose a topic by RFC 2833 key, wait in the department queue
//! and are connected to an agent's phone, with the talk audio relayed through the engine.
//! Callers and agents' phones are SIPp; what the phones saw (their message traces) and what
//! went over the wire (tcpdump on loopback) is what the tests check.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use common::acd::{self, Capture};
use common::engine::Engine;
use common::logs::{self, JSON_LOG};
use common::ports;
use common::sipp::{Sipp, SippProcess};

const TALK_PCAP: &str = "/usr/share/sip-tester/g711a.pcap";

fn dtmf_pcap(key: char) -> String {
    format!(
        "{}/tests/fixtures/dtmf/dtmf_2833_{key}.pcap",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn talk_pcap() -> String {
    assert!(
        Path::new(TALK_PCAP).is_file(),
        "{TALK_PCAP} missing: install the Debian package sip-tester (apt-get install -y sip-tester)"
    );
    TALK_PCAP.to_string()
}

/// An agent's phone: SIPp UAS on `port`, media on `media_port`, answering after `ring_ms`.
fn agent_phone(engine: &Engine, port: u16, media_port: u16, ring_ms: u32) -> SippProcess {
    Sipp::new("uas_agent.xml", engine.sip_addr())
        .local_port(port)
        .calls(1000)
        .timeout(Duration::from_secs(150))
        .trace_messages()
        // Answer the engine's keep-alive OPTIONS, as a desk phone does.
        .arg("-aa")
        .arg("-mp")
        .arg(&media_port.to_string())
        .arg("-key")
        .arg("ring_ms")
        .arg(&ring_ms.to_string())
        .arg("-key")
        .arg("talk_pcap")
        .arg(&talk_pcap())
        .spawn()
}

/// Registers `agent`'s phone (listening on `phone_port`) with digest authentication.
fn register_phone(engine: &Engine, agent: &str, password: &str, phone_port: u16) {
    Sipp::new("uac_register_phone.xml", engine.sip_addr())
        .service(agent)
        .arg("-au")
        .arg(agent)
        .arg("-ap")
        .arg(password)
        .arg("-key")
        .arg("phone_port")
        .arg(&phone_port.to_string())
        .timeout(Duration::from_secs(20))
        .run()
        .assert_all_successful(1);
}

/// Shorter wrap-up so a test's agents take the next call soon.
const QUICK_WRAP_UP: [(&str, &str, &str); 2] = [
    ("queues.toml", "wrap_up_secs = 30", "wrap_up_secs = 1"),
    ("queues.toml", "wrap_up_secs = 60", "wrap_up_secs = 1"),
];

/// Acceptance 1: 4 agents, 40 callers over 60 s choosing topics by RFC 2833 key. Every caller
/// reaches an agent with the right skill, no phone ever has two calls, the longest-idle agent
/// is rung first, and talk audio flows both ways through the relay.
#[test]
fn forty_callers_reach_agents_with_the_right_skill() {
    let phone_ports: Vec<u16> = (0..4).map(|_| ports::free_udp_tcp_port()).collect();
    let phone_media: Vec<u16> = (0..4).map(|_| ports::free_udp_block(4)).collect();
    // a1, a2 serve Bürgerservice and Führerschein; a3, a4 Mängelmelder and Fundbüro.
    let skills = [
        "buergerservice = 5, fuehrerschein = 5",
        "buergerservice = 5, fuehrerschein = 5",
        "maengelmelder = 5, fundbuero = 5",
        "maengelmelder = 5, fundbuero = 5",
    ];
    // a1 and a3 register their phones (digest auth); a2 and a4 are desk phones at fixed URIs.
    let agents: String = (0..4)
        .map(|i| {
            let id = format!("a{}", i + 1);
            if i % 2 == 0 {
                acd::registered_agent(&id, skills[i], &format!("ZENTRALE_TEST_{}_PASSWORD", i + 1))
            } else {
                acd::static_agent(&id, skills[i], phone_ports[i])
            }
        })
        .collect();
    // Every queue distributes longest-idle first (the Mängelmelder ships with round-robin).
    let mut edits = QUICK_WRAP_UP.to_vec();
    edits.push((
        "queues.toml",
        "strategy = \"round-robin\"",
        "strategy = \"longest-idle\"",
    ));
    let rules = acd::rules_dir(&agents, &edits);
    let rules_dir = rules.path().display().to_string();
    let engine = Engine::start(&[
        JSON_LOG,
        ("ZENTRALE_RULES__DIR", &rules_dir),
        ("ZENTRALE_TEST_1_PASSWORD", "geheim-1"),
        ("ZENTRALE_TEST_3_PASSWORD", "geheim-3"),
    ]);

    let phones: Vec<SippProcess> = (0..4)
        .map(|i| agent_phone(&engine, phone_ports[i], phone_media[i], 300))
        .collect();
    for (agent, password, phone) in [
        ("a1", "geheim-1", phone_ports[0]),
        ("a3", "geheim-3", phone_ports[2]),
    ] {
        register_phone(&engine, agent, password, phone);
    }
    for i in 1..=4 {
        acd::login(&engine, &format!("a{i}"));
        std::thread::sleep(Duration::from_millis(20));
    }

    // Callers: one SIPp per topic key, 10 calls each, one every 6 s.
    let topics = [
        ('1', "buergerservice"),
        ('2', "fuehrerschein"),
        ('3', "maengelmelder"),
        ('4', "fundbuero"),
    ];
    let caller_media: Vec<u16> = (0..4).map(|_| ports::free_udp_block(4)).collect();
    let started = chrono::Utc::now().to_rfc3339();
    let mut watched: Vec<u16> = phone_media.clone();
    watched.extend(&caller_media);
    let capture = Capture::start(&watched);
    let callers: Vec<SippProcess> = topics
        .iter()
        .zip(&caller_media)
        .map(|(&(key, _), media)| {
            Sipp::new("uac_queue_call.xml", engine.sip_addr())
                .calls(10)
                .rate(1.0)
                .arg("-rp")
                .arg("6000")
                .timeout(Duration::from_secs(120))
                .arg("-mp")
                .arg(&media.to_string())
                .arg("-key")
                .arg("dtmf_pcap")
                .arg(&dtmf_pcap(key))
                .arg("-key")
                .arg("pre_ms")
                .arg("1000")
                .arg("-key")
                .arg("wait_ms")
                .arg("500")
                .arg("-key")
                .arg("talk_pcap")
                .arg(&talk_pcap())
                .arg("-key")
                .arg("post_ms")
                .arg("3000")
                .spawn()
        })
        .collect();
    // And a few callers who give up 0.15 s after choosing the Führerschein, while they wait or
    // while an agent's phone still rings (it answers after 0.3 s): abandoned calls, which a
    // supervisor must see as such.
    let quitters = Sipp::new("uac_menu_dtmf.xml", engine.sip_addr())
        .calls(3)
        .rate(1.0)
        .arg("-rp")
        .arg("15000")
        .timeout(Duration::from_secs(60))
        .arg("-mp")
        .arg(&ports::free_udp_block(4).to_string())
        .arg("-key")
        .arg("dtmf_pcap")
        .arg(&dtmf_pcap('2'))
        .arg("-key")
        .arg("pre_ms")
        .arg("1000")
        .arg("-key")
        .arg("post_ms")
        .arg("150")
        .spawn();
    let quitters_pid = quitters.pid();
    for caller in callers {
        caller.wait().assert_all_successful(10);
    }
    quitters.wait().assert_all_successful(3);
    std::thread::sleep(Duration::from_millis(500));
    let packets = capture.stop();
    let traces: Vec<String> = phones.into_iter().map(|p| p.stop().messages).collect();

    // From the phones' side: 40 answered calls, each for a queue the agent has the skill for,
    // never two at once.
    let mut answered = 0;
    for (i, trace) in traces.iter().enumerate() {
        let agent = format!("a{}", i + 1);
        let calls = acd::agent_calls(trace);
        acd::assert_never_two_calls(&agent, &calls);
        for call in calls.iter().filter(|c| c.answered) {
            answered += 1;
            let queue = call.queue.clone().unwrap_or_default();
            assert!(
                skills[i].contains(&format!("{queue} =")),
                "{agent} (skills {}) got a call for queue `{queue}`",
                skills[i]
            );
            assert!(
                call.display.contains(" – "),
                "the agent's display shows queue and caller: {}",
                call.display
            );
        }
    }
    // The quitters, as the engine saw them: queued (Führerschein), and connected only if an
    // agent was quicker than they were (normally none is).
    let events = logs::events(&engine);
    let quitter_ids: Vec<String> = (1..=3)
        .map(|i| format!("{i}-{quitters_pid}@127.0.0.1"))
        .collect();
    let has = |id: &str, name: &str| {
        events
            .iter()
            .any(|e| e.call_id.as_deref() == Some(id) && e.is_event(name))
    };
    let quitters_queued = quitter_ids.iter().filter(|id| has(id, "queue")).count();
    let quitters_connected = quitter_ids.iter().filter(|id| has(id, "connected")).count();
    let abandoned = quitters_queued - quitters_connected;
    assert!(
        abandoned >= 1,
        "no quitter abandoned in the queue (queued {quitters_queued}, connected {quitters_connected})"
    );
    assert_eq!(
        answered,
        40 + quitters_connected,
        "answered calls seen by the phones"
    );

    // From the engine: every caller was connected, to an agent of its queue.
    let connected: BTreeMap<String, String> = events
        .iter()
        .filter(|e| e.is_event("connected"))
        .map(|e| {
            (
                e.call_id.clone().unwrap_or_default(),
                e.field("agent").unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        connected.len(),
        40 + quitters_connected,
        "callers connected to an agent"
    );

    assert_longest_idle_first(&events);

    // What a supervisor's Prometheus sees: 10 offered and 10 answered callers per queue, each
    // with one answered wait and one talk time, plus the quitters in the Führerschein queue.
    let metrics = common::http::metrics(&engine);
    let sample = |series: &str| common::http::sample(&metrics, series);
    for (_, queue) in topics {
        let (extra_offered, extra_answered, extra_abandoned) = if queue == "fuehrerschein" {
            (quitters_queued, quitters_connected, abandoned)
        } else {
            (0, 0, 0)
        };
        let offered = (10 + extra_offered) as f64;
        let answered = (10 + extra_answered) as f64;
        for (series, want) in [
            (
                format!("zentrale_queue_calls_offered_total{{queue=\"{queue}\"}}"),
                offered,
            ),
            (
                format!("zentrale_queue_calls_answered_total{{queue=\"{queue}\"}}"),
                answered,
            ),
            (
                format!("zentrale_queue_calls_abandoned_total{{queue=\"{queue}\"}}"),
                extra_abandoned as f64,
            ),
            (
                format!(
                    "zentrale_queue_wait_seconds_count{{outcome=\"answered\",queue=\"{queue}\"}}"
                ),
                answered,
            ),
            (
                format!(
                    "zentrale_queue_wait_seconds_count{{outcome=\"abandoned\",queue=\"{queue}\"}}"
                ),
                extra_abandoned as f64,
            ),
            (
                format!("zentrale_talk_seconds_count{{queue=\"{queue}\"}}"),
                answered,
            ),
        ] {
            assert_eq!(sample(&series), Some(want), "{series}");
        }
    }

    // And what the city's report says about the same run, from the call records: every queue
    // answered all its callers within the 30 s promise; the quitters are short abandons (under
    // 5 s), left out of the service level.
    std::thread::sleep(Duration::from_secs(1)); // the records writer commits within 250 ms
    let to = (chrono::Utc::now() + chrono::Duration::seconds(60)).to_rfc3339();
    let report = zentrale_report(&engine, &rules_dir, &["--from", &started, "--to", &to]);
    let parsed: serde_json::Value = serde_json::from_str(&report).expect("report json");
    for (_, queue) in topics {
        let row = parsed["rows"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["group"] == queue))
            .unwrap_or_else(|| panic!("no {queue} in {report}"));
        let (extra_answered, extra_short) = if queue == "fuehrerschein" {
            (quitters_connected, abandoned)
        } else {
            (0, 0)
        };
        assert_eq!(row["offered"], 10 + extra_answered + extra_short, "{row}");
        assert_eq!(row["answered"], 10 + extra_answered, "{row}");
        assert_eq!(row["abandoned"], 0, "{row}");
        assert_eq!(row["short_abandons"], extra_short, "{row}");
        assert_eq!(row["service_level_percent"], 100.0, "{row}");
    }

    // Talk audio both ways: the agents' phones heard the callers' recording and the callers
    // heard the agents' (the same PCMA file on both sides, relayed without transcoding).
    let talk: BTreeSet<Vec<u8>> = acd::rtp_payloads(Path::new(TALK_PCAP))
        .into_iter()
        .collect();
    let talk_packets_to = |ports: &[u16]| {
        packets
            .iter()
            .filter(|(dst, p)| ports.contains(dst) && p.len() > 12 && talk.contains(&p[12..]))
            .count()
    };
    let to_agents = talk_packets_to(&phone_media);
    let to_callers = talk_packets_to(&caller_media);
    // Each call has ~3 s of talk from the caller and ~3 s from the agent (150 packets each).
    assert!(
        to_agents >= 40 * 50,
        "caller → agent talk packets on the wire: {to_agents}"
    );
    assert!(
        to_callers >= 40 * 50,
        "agent → caller talk packets on the wire: {to_callers}"
    );
    engine.assert_no_panic();
}

/// `zentrale report --format json` on the engine's database and rules.
fn zentrale_report(engine: &Engine, rules_dir: &str, args: &[&str]) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_zentrale"));
    command.arg("report").args(args).args(["--format", "json"]);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ZENTRALE_") {
            command.env_remove(name);
        }
    }
    command
        .env("ZENTRALE_DATA__DIR", engine.data_dir())
        .env("ZENTRALE_RULES__DIR", rules_dir);
    let out = command.output().expect("run zentrale report");
    assert!(
        out.status.success(),
        "zentrale report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 report")
}

/// Replays the ACD's agent events: whenever an agent is rung, no other agent of the same pair
/// was available for longer (`acd_us` is the ACD's clock when the state began; agents freed
/// in the same instant tie).
fn assert_longest_idle_first(events: &[logs::LogEvent]) {
    let pair = |agent: &str| match agent {
        "a1" | "a2" => 0,
        _ => 1,
    };
    let mut available_since: BTreeMap<String, u64> = BTreeMap::new();
    let mut rings = 0;
    for event in events.iter().filter(|e| e.is_event("agent")) {
        let agent = event.field("agent").unwrap_or_default();
        let state = event.field("state").unwrap_or_default();
        let at: u64 = event
            .field("acd_us")
            .and_then(|t| t.parse().ok())
            .expect("agent events carry acd_us");
        if state == "available" {
            // Free since `idle_us`: a withdrawn ring gives the agent its old place back.
            let idle: u64 = event
                .field("idle_us")
                .and_then(|t| t.parse().ok())
                .unwrap_or(at);
            available_since.insert(agent, idle);
            continue;
        }
        let since = available_since.remove(&agent);
        if state == "reserved" {
            rings += 1;
            let mine = since.expect("a rung agent was available");
            for (other, other_since) in &available_since {
                if pair(other) == pair(&agent) {
                    assert!(
                        *other_since >= mine,
                        "{agent} (free since {mine} µs) was rung while {other} had been free \
                         longer (since {other_since} µs)"
                    );
                }
            }
        }
    }
    assert!(rings >= 40, "agent rings seen: {rings}");
}
