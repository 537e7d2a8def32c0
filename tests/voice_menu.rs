//! Issue 3 acceptance, end to end against the real binary: the voice menu answers, plays the
//! greeting over correctly paced RTP, and routes each key — pressed as real RFC 2833 packets
//! (SIPp + the `sip-tester` pcaps), as RFC 4733 packets from a Rust RTP client (barge-in), as
//! SIP INFO and as in-band tones — to its queue; invalid keys and silence reach the default
//! route after the configured attempts. Decisions are read from the engine's JSON log
//! (`event="menu" | "play" | "key" | "queue"` in the call's span).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::engine::Engine;
use common::logs::{self, JSON_LOG};
use common::ports;
use common::rtp::{self, FRAME, RtpPeer, answered_call, hang_up};
use common::scratch::ScratchDir;
use common::sipp::Sipp;

const TELEPHONE_EVENT: u8 = 101;
const DECISION_TIMEOUT: Duration = Duration::from_secs(10);

fn dtmf_pcap(key: char) -> String {
    format!(
        "{}/tests/fixtures/dtmf/dtmf_2833_{key}.pcap",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Waits for the call's `event="queue"` line and checks queue and the key that led there.
fn assert_routed(engine: &Engine, call_id: &str, key: char, source: &str, queue: &str) {
    let queued = logs::wait_for_call_events(engine, call_id, "queue", 1, DECISION_TIMEOUT);
    let summary = logs::call_summary(engine, call_id);
    assert_eq!(
        queued.len(),
        1,
        "call {call_id}: expected one event=queue after key {key}; call log:\n{summary}"
    );
    assert_eq!(
        queued[0].field("queue").as_deref(),
        Some(queue),
        "call {call_id}: key {key} ({source}) went to the wrong queue; call log:\n{summary}"
    );
    let keys = logs::call_events(engine, call_id, "key");
    assert_eq!(
        keys.len(),
        1,
        "call {call_id}: expected exactly one event=key; call log:\n{summary}"
    );
    assert_eq!(keys[0].field("key"), Some(key.to_string()), "{summary}");
    assert_eq!(
        keys[0].field("source").as_deref(),
        Some(source),
        "{summary}"
    );
}

// ---------------------------------------------------------------------------------------------
// 1a. SIPp with the real RFC 2833 pcaps selects every topic.

#[test]
fn sipp_rfc2833_pcaps_select_every_topic() {
    let (engine, _rules) = common::acd::staffed_engine(&[JSON_LOG]);
    let cases = [
        ('1', "buergerservice"),
        ('2', "fuehrerschein"),
        ('3', "maengelmelder"),
        ('4', "fundbuero"),
        ('0', "allgemein"),
    ];
    // One SIPp per key, all at once: each makes one call whose Call-ID is `1-<sipp pid>@…`.
    let runs: Vec<_> = cases
        .iter()
        .map(|&(key, queue)| {
            let media_port = ports::free_udp_block(4);
            let sipp = Sipp::new("uac_menu_dtmf.xml", engine.sip_addr())
                .timeout(Duration::from_secs(30))
                .arg("-mp")
                .arg(&media_port.to_string())
                .arg("-key")
                .arg("dtmf_pcap")
                .arg(&dtmf_pcap(key))
                .arg("-key")
                .arg("pre_ms")
                .arg("1000")
                .arg("-key")
                .arg("post_ms")
                .arg("2000")
                .spawn();
            let call_id = format!("1-{}@127.0.0.1", sipp.pid());
            (key, queue, call_id, sipp)
        })
        .collect();
    for (key, queue, call_id, sipp) in runs {
        let result = sipp.wait();
        result.assert_all_successful(1);
        assert_routed(&engine, &call_id, key, "Rfc4733", queue);
        let keys = logs::call_events(&engine, &call_id, "key");
        assert_eq!(
            keys[0].field("barge_in").as_deref(),
            Some("true"),
            "key {key} 1 s into the greeting must barge in"
        );
    }
    engine.assert_no_panic();
}

// ---------------------------------------------------------------------------------------------
// 1b. The engine's RTP: pacing, headers, and the greeting in the audio.

fn check_menu_audio(offer: &[u8], expected_pt: u8) {
    let (engine, _rules) = common::acd::staffed_engine(&[JSON_LOG]);
    let peer = RtpPeer::new();
    let (client, mut leg, _engine_rtp) = answered_call(&engine, &peer, offer);
    std::thread::sleep(Duration::from_millis(3000));
    let packets = peer.packets();
    hang_up(&client, &mut leg);

    assert!(
        packets.len() >= 140,
        "expected ~150 packets in 3 s, got {}",
        packets.len()
    );
    // Headers: one SSRC, the offered codec, seq +1, timestamp +160 per packet.
    let ssrc = packets[0].ssrc;
    for pair in packets.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert_eq!(b.pt, expected_pt, "payload type of packet seq {}", b.seq);
        assert_eq!(b.ssrc, ssrc, "SSRC changed at seq {}", b.seq);
        assert_eq!(b.seq, a.seq.wrapping_add(1), "sequence gap after {}", a.seq);
        assert_eq!(
            b.ts,
            a.ts.wrapping_add(FRAME as u32),
            "timestamp step after seq {}",
            a.seq
        );
        assert_eq!(b.payload.len(), FRAME, "payload size at seq {}", b.seq);
    }
    assert_eq!(packets[0].pt, expected_pt);
    // Pacing (behaviour check, generous bounds): median 20 ms, no gap over 60 ms.
    let gaps: Vec<Duration> = packets
        .windows(2)
        .skip(2)
        .map(|p| p[1].at.duration_since(p[0].at))
        .collect();
    let median = rtp::median(&gaps);
    let max = gaps.iter().max().copied().unwrap_or_default();
    eprintln!(
        "PT {expected_pt}: {} packets, median inter-arrival {median:?}, max {max:?}",
        packets.len()
    );
    assert!(
        median >= Duration::from_millis(18) && median <= Duration::from_millis(22),
        "median inter-arrival {median:?}, expected 20 ms"
    );
    assert!(
        max <= Duration::from_millis(60),
        "largest gap {max:?} > 60 ms"
    );
    // No drift: wall-clock span and RTP timestamp span of the window agree within 40 ms.
    let (first, last) = (&packets[0], &packets[packets.len() - 1]);
    let wall = last.at.duration_since(first.at).as_secs_f64();
    let media = f64::from(last.ts.wrapping_sub(first.ts)) / 8000.0;
    eprintln!("PT {expected_pt}: wall span {wall:.4} s, RTP timestamp span {media:.4} s");
    assert!(
        (wall - media).abs() <= 0.040,
        "pacing drifts: {wall:.4} s of arrivals for {media:.4} s of audio"
    );
    // The greeting's samples are in the audio.
    let stream: Vec<i16> = packets.iter().flat_map(rtp::Received::pcm).collect();
    let greeting = rtp::prompt_samples("greeting");
    let template = &greeting[..greeting.len().min(16_000)];
    let (offset, peak) = rtp::find(&stream, template);
    eprintln!(
        "PT {expected_pt}: greeting found at sample {offset} ({} ms after the first packet), correlation {peak:.4}",
        offset / 8
    );
    assert!(
        peak >= 0.9,
        "greeting not found in the engine's audio: correlation peak {peak:.3} at {offset}"
    );
    engine.assert_no_panic();
}

#[test]
fn engine_rtp_pcmu_is_paced_consistent_and_carries_the_greeting() {
    check_menu_audio(&[0, TELEPHONE_EVENT], 0);
}

#[test]
fn engine_rtp_pcma_is_paced_consistent_and_carries_the_greeting() {
    check_menu_audio(&[8, TELEPHONE_EVENT], 8);
}

// ---------------------------------------------------------------------------------------------
// 1c. Barge-in: an RFC 4733 key during the greeting stops it within 100 ms.

#[test]
fn a_key_during_the_greeting_stops_it_within_100_ms() {
    let (engine, _rules) = common::acd::staffed_engine(&[JSON_LOG]);
    let mut peer = RtpPeer::new();
    let (client, mut leg, engine_rtp) = answered_call(&engine, &peer, &[0, TELEPHONE_EVENT]);
    let greeting = rtp::prompt_samples("greeting");

    // Where the greeting starts in the stream (in samples from the first packet's seq).
    assert!(
        peer.wait_for_packets(80, Duration::from_secs(5)) >= 80,
        "no RTP from the engine"
    );
    let packets = peer.packets();
    let first_seq = packets[0].seq;
    let stream: Vec<i16> = packets.iter().flat_map(rtp::Received::pcm).collect();
    let (offset, peak) = rtp::find(&stream, &greeting[..8000]);
    assert!(peak >= 0.9, "greeting not found (peak {peak:.3})");
    // The greeting's 160 samples the packet with this seq should carry.
    let expected = |seq: u16| -> Option<&[i16]> {
        let start = usize::from(seq.wrapping_sub(first_seq)) * FRAME;
        let at = start.checked_sub(offset)?;
        greeting.get(at..at + FRAME)
    };
    let loud = |from: usize, frames: usize| {
        (0..frames).all(|i| {
            greeting
                .get(from + i * FRAME..from + (i + 1) * FRAME)
                .is_some_and(|f| rtp::rms(f) > 500.0)
        })
    };
    // Press the key where the next 12 frames of the greeting are speech, so a stop can't be
    // mistaken for a pause in the prompt.
    let deadline = Instant::now() + Duration::from_secs(3);
    let key_sent = loop {
        let next = peer.count() * FRAME;
        let position = next.saturating_sub(offset) + FRAME;
        if next >= offset && loud(position, 12) {
            break peer.start_event(engine_rtp, TELEPHONE_EVENT, 4);
        }
        assert!(
            Instant::now() < deadline,
            "no loud stretch in the greeting to press the key in"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    peer.finish_event(engine_rtp, TELEPHONE_EVENT, 4, 800);
    std::thread::sleep(Duration::from_millis(300));
    let packets = peer.packets();
    hang_up(&client, &mut leg);

    let matches = |p: &rtp::Received| expected(p.seq).map(|e| rtp::ncc(&p.pcm(), e));
    let before: Vec<f64> = packets
        .iter()
        .filter(|p| p.at < key_sent)
        .rev()
        .take(5)
        .map(|p| matches(p).unwrap_or(0.0))
        .collect();
    assert!(
        before.iter().all(|&c| c >= 0.9),
        "the frames before the key should be the greeting (alignment check): {before:?}"
    );
    let switch = packets
        .iter()
        .filter(|p| p.at >= key_sent)
        .find(|p| matches(p).is_none_or(|c| c < 0.5))
        .expect("the greeting never stopped after the key");
    let latency = switch.at.duration_since(key_sent);
    eprintln!(
        "barge-in: first non-greeting frame (seq {}) {latency:?} after the key",
        switch.seq
    );
    assert!(
        latency <= Duration::from_millis(100),
        "the greeting went on for {latency:?} after the key (limit 100 ms)"
    );
    assert_routed(&engine, &leg.call_id, '4', "Rfc4733", "fundbuero");
    let key = &logs::call_events(&engine, &leg.call_id, "key")[0];
    assert_eq!(key.field("barge_in").as_deref(), Some("true"));
    engine.assert_no_panic();
}

// ---------------------------------------------------------------------------------------------
// 1d. SIP INFO and in-band DTMF select topics.

fn info_key(content_type: &str, body: &str, key: char, queue: &str) {
    let (engine, _rules) = common::acd::staffed_engine(&[JSON_LOG]);
    let peer = RtpPeer::new();
    let (client, mut leg, _) = answered_call(&engine, &peer, &[0, TELEPHONE_EVENT]);
    std::thread::sleep(Duration::from_millis(500));
    let (info, cseq) = leg.in_dialog("INFO", "", Some((content_type, body)));
    client.send(info);
    let (reply, others) = client.recv_until(Duration::from_secs(5), |m| {
        m.cseq() == Some((cseq, "INFO".to_string())) && m.is_final()
    });
    let reply = reply.unwrap_or_else(|| panic!("no answer to INFO; got {others:#?}"));
    assert_eq!(reply.status(), Some(200), "INFO answered with {reply:?}");
    assert_routed(&engine, &leg.call_id, key, "SipInfo", queue);
    hang_up(&client, &mut leg);
    engine.assert_no_panic();
}

#[test]
fn sip_info_dtmf_relay_selects_a_topic() {
    info_key(
        "application/dtmf-relay",
        "Signal=2\r\nDuration=160\r\n",
        '2',
        "fuehrerschein",
    );
}

#[test]
fn sip_info_application_dtmf_selects_a_topic() {
    info_key("application/dtmf", "1", '1', "buergerservice");
}

#[test]
fn in_band_dtmf_selects_a_topic() {
    let (engine, _rules) = common::acd::staffed_engine(&[JSON_LOG]);
    let mut peer = RtpPeer::new();
    // PCMU only: the key can only come as sound.
    let (client, mut leg, engine_rtp) = answered_call(&engine, &peer, &[0]);
    let mut audio = vec![0i16; 8 * 400];
    audio.extend(rtp::dtmf_tone('3', 100, 6000.0));
    audio.extend(vec![0i16; 8 * 400]);
    peer.send_ulaw_paced(engine_rtp, &audio);
    assert_routed(&engine, &leg.call_id, '3', "InBand", "maengelmelder");
    hang_up(&client, &mut leg);
    engine.assert_no_panic();
}

// ---------------------------------------------------------------------------------------------
// 1e. Invalid key and no key reach the default route after three attempts.
//
// Fast variant: the test rules are a copy of tests/fixtures/rules-open with `timeout_secs = 1`
// and the five prompts of this flow (greeting, menu, invalid, no_input, transfer_general)
// replaced by 300 ms tones under the same names, so the `event="play"` lines still name the
// real prompts. All other prompts are links to routing-rules/prompts.

fn fast_menu_rules() -> ScratchDir {
    let dir = ScratchDir::new("rules-fast-menu");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules-open");
    for entry in std::fs::read_dir(&source).expect("read rules-open") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .to_string();
            let mut text = std::fs::read_to_string(&path).expect("read rule file");
            if name == "agents.toml" {
                text = common::acd::silent_staff();
            }
            if name == "menus.toml" {
                assert!(
                    text.contains("timeout_secs = 5"),
                    "menus.toml changed shape"
                );
                text = text.replace("timeout_secs = 5", "timeout_secs = 1");
            }
            std::fs::write(dir.join(&name), text).expect("write rule file");
        }
    }
    let prompts = dir.join("prompts");
    std::fs::create_dir_all(&prompts).expect("create prompts dir");
    let short = [
        ("greeting", 440.0),
        ("menu", 550.0),
        ("invalid", 660.0),
        ("no_input", 770.0),
        ("transfer_general", 880.0),
    ];
    for entry in std::fs::read_dir(rtp::prompts_dir()).expect("read prompts") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "wav") {
            let stem = path
                .file_stem()
                .expect("stem")
                .to_string_lossy()
                .to_string();
            let target = prompts.join(format!("{stem}.wav"));
            match short.iter().find(|(name, _)| *name == stem) {
                Some((_, hz)) => {
                    let tone: Vec<i16> = (0..2400)
                        .map(|n| {
                            (4000.0
                                * (2.0 * std::f64::consts::PI * hz * f64::from(n) / 8000.0).sin())
                                as i16
                        })
                        .collect();
                    rtp::write_wav(&target, &tone);
                }
                None => std::os::unix::fs::symlink(&path, &target).expect("link prompt"),
            }
        }
    }
    dir
}

fn plays(engine: &Engine, call_id: &str) -> Vec<Vec<String>> {
    logs::call_events(engine, call_id, "play")
        .iter()
        .map(logs::LogEvent::prompts)
        .collect()
}

fn assert_default_route(engine: &Engine, call_id: &str, retry_prompt: &str) {
    let queued = logs::wait_for_call_events(engine, call_id, "queue", 1, Duration::from_secs(20));
    let summary = logs::call_summary(engine, call_id);
    assert_eq!(queued.len(), 1, "no default route; call log:\n{summary}");
    assert_eq!(
        queued[0].field("queue").as_deref(),
        Some("allgemein"),
        "{summary}"
    );
    assert_eq!(
        queued[0].field("topic").as_deref(),
        Some("allgemein"),
        "{summary}"
    );
    let attempts: Vec<String> = logs::call_events(engine, call_id, "menu")
        .iter()
        .filter_map(|e| e.field("attempt"))
        .collect();
    assert_eq!(
        attempts,
        ["1", "2", "3"],
        "menu attempts; call log:\n{summary}"
    );
    let played = plays(engine, call_id);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert!(
        played.len() >= 4,
        "play events {played:?}; call log:\n{summary}"
    );
    assert_eq!(played[0], s(&["greeting", "menu"]), "{summary}");
    assert_eq!(played[1], s(&[retry_prompt, "menu"]), "{summary}");
    assert_eq!(played[2], s(&[retry_prompt, "menu"]), "{summary}");
    assert_eq!(
        played[3].first().map(String::as_str),
        Some("transfer_general"),
        "after the third failure the default route's announcement; plays {played:?}\n{summary}"
    );
    assert_eq!(played.len(), 4, "plays {played:?}\n{summary}");
    assert!(
        logs::call_events(engine, call_id, "announce_and_hang_up").is_empty(),
        "the default route must not hang up: {summary}"
    );
}

#[test]
fn invalid_keys_and_no_key_reach_the_default_route_after_three_attempts() {
    let rules = fast_menu_rules();
    let rules_dir = rules.path().display().to_string();
    let engine = Engine::start(&[JSON_LOG, ("ZENTRALE_RULES__DIR", &rules_dir)]);
    common::acd::login(&engine, "staff");

    // No key at all: a call that just listens.
    let silent_peer = RtpPeer::new();
    let (silent_client, mut silent_leg, _) =
        answered_call(&engine, &silent_peer, &[0, TELEPHONE_EVENT]);

    // Key 7 (not in the menu) at each of the three attempts.
    let mut peer = RtpPeer::new();
    let (client, mut leg, engine_rtp) = answered_call(&engine, &peer, &[0, TELEPHONE_EVENT]);
    for attempt in 1..=3 {
        let menus =
            logs::wait_for_call_events(&engine, &leg.call_id, "menu", attempt, DECISION_TIMEOUT);
        assert_eq!(
            menus.len(),
            attempt,
            "menu attempt {attempt} never started; call log:\n{}",
            logs::call_summary(&engine, &leg.call_id)
        );
        peer.press(engine_rtp, TELEPHONE_EVENT, 7);
        logs::wait_for_call_events(&engine, &leg.call_id, "key", attempt, DECISION_TIMEOUT);
    }
    assert_default_route(&engine, &leg.call_id, "invalid");
    let keys: Vec<String> = logs::call_events(&engine, &leg.call_id, "key")
        .iter()
        .filter_map(|e| e.field("key"))
        .collect();
    assert_eq!(keys, ["7", "7", "7"]);

    assert_default_route(&engine, &silent_leg.call_id, "no_input");
    assert!(logs::call_events(&engine, &silent_leg.call_id, "key").is_empty());

    hang_up(&client, &mut leg);
    hang_up(&silent_client, &mut silent_leg);
    engine.assert_no_panic();
}
