//! ACD acceptance points 2 and 3, end to end against the real binary.
//!
//! 2. Agent legs: the caller hangs up while the phone rings (CANCEL, agent free again without
//!    wrap-up); the ring timeout (CANCEL, the next agent rings; three misses in a row pause the
//!    agent); the agent hangs up first (the caller gets BYE, the agent wraps up); the agent
//!    rejects (486: the next agent rings, the caller keeps its place).
//! 3. Leaving the queue: full (`on_full`), waited too long (`on_max_wait`), no agents
//!    (`on_no_agents`), Fundbüro closed (its menu), the leave key (`on_leave`), and position
//!    announcements.
//!
//! Callers are Rust SIP clients with RTP (keys as RFC 4733 events; prompts found in the audio
//! they receive); agents' phones are raw SIP sockets on loopback. What the tests assert is what
//! the caller hears and receives, what the phones receive, what `/api/agents` shows, and the
//! engine's events (`event="queue" | "ring" | "connected" | "overflow" | "leave" | "play" |
//! "agent"`).

mod common;

use std::time::{Duration, Instant};

use common::acd;
use common::engine::Engine;
use common::flows::{
    self, Caller, Phone, agent_op, agent_state, agent_states, wait_agent_state, wait_call_event,
};
use common::logs::{self, JSON_LOG};
use common::scratch::ScratchDir;

const SECOND: Duration = Duration::from_secs(1);

/// An engine with its own agents (each with a phone on loopback) and rule edits.
struct Hotline {
    engine: Engine,
    phones: Vec<Phone>,
    _rules: ScratchDir,
}

/// `agents`: (id, skills) — each gets a static URI at its own phone.
fn hotline(agents: &[(&str, &str)], edits: &[(&str, &str, &str)]) -> Hotline {
    hotline_with(agents, edits, &[])
}

/// [`hotline`] with more engine settings (`ZENTRALE_…` variables).
fn hotline_with(
    agents: &[(&str, &str)],
    edits: &[(&str, &str, &str)],
    env: &[(&str, &str)],
) -> Hotline {
    let mut phones: Vec<Phone> = agents.iter().map(|_| Phone::new()).collect();
    let agents_toml: String = agents
        .iter()
        .zip(&phones)
        .map(|((id, skills), phone)| acd::static_agent(id, skills, phone.port()))
        .collect();
    let rules = acd::rules_dir(&agents_toml, edits);
    let dir = rules.path().display().to_string();
    let mut settings = vec![JSON_LOG, ("ZENTRALE_RULES__DIR", dir.as_str())];
    settings.extend_from_slice(env);
    let engine = Engine::start(&settings);
    for phone in &mut phones {
        phone.connect(&engine);
    }
    Hotline {
        engine,
        phones,
        _rules: rules,
    }
}

fn login(engine: &Engine, agent: &str) {
    assert_eq!(agent_op(engine, agent, "login"), "available");
}

fn header(message: &common::sip::SipMessage, name: &str) -> String {
    message.header(name).unwrap_or_default()
}

fn call_id(message: &common::sip::SipMessage) -> String {
    message.call_id().unwrap_or_default()
}

/// The call's overflow events as (queue, reason).
fn overflows(engine: &Engine, call_id: &str) -> Vec<(String, String)> {
    logs::call_events(engine, call_id, "overflow")
        .iter()
        .map(|e| {
            (
                e.field("queue").unwrap_or_default(),
                e.field("reason").unwrap_or_default(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 2a. The caller hangs up while the agent's phone rings.

#[test]
fn caller_hangup_while_ringing_cancels_the_phone_and_frees_the_agent_without_wrap_up() {
    let h = hotline(&[("a1", "buergerservice = 5")], &[]);
    let (engine, phone) = (&h.engine, &h.phones[0]);
    login(engine, "a1");

    let mut caller = Caller::dial(engine);
    caller.choose(engine, '1', "buergerservice");
    let invite = phone.expect_invite(5 * SECOND);
    assert_eq!(header(&invite, "X-Zentrale-Queue"), "buergerservice");
    phone.ring(&invite);
    wait_agent_state(engine, "a1", "reserved", 2 * SECOND);
    flows::assert_rings(engine, &caller.call_id(), &[("a1", &call_id(&invite))]);

    caller.hang_up();
    // The phone stops ringing: CANCEL (answered 200 + 487, the engine ACKs the 487).
    phone.expect_cancel(&invite, 5 * SECOND);
    // The agent only rang: free again at once, no wrap-up.
    wait_agent_state(engine, "a1", "available", 2 * SECOND);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(agent_state(engine, "a1"), "available");
    assert_eq!(
        agent_states(engine, "a1"),
        ["available", "reserved", "available"],
        "a ring withdrawn by the caller's hang-up must not cost the agent a wrap-up"
    );
    phone.expect_no_invite(Duration::from_millis(500));
    engine.assert_no_panic();
}

/// The caller leaves before the phone even said 180; the phone's late 180 gets the CANCEL, and
/// its 200 crossing that CANCEL gets ACK + BYE: the agent is never bound to a call that is gone.
#[test]
fn a_phone_answering_after_the_caller_left_gets_cancel_then_bye_and_stays_free() {
    let h = hotline(&[("a1", "buergerservice = 5")], &[]);
    let (engine, phone) = (&h.engine, &h.phones[0]);
    login(engine, "a1");
    let mut caller = Caller::dial(engine);
    caller.choose(engine, '1', "buergerservice");
    let invite = phone.expect_invite(5 * SECOND);
    let id = call_id(&invite);
    caller.hang_up();
    wait_agent_state(engine, "a1", "available", 2 * SECOND);
    // No CANCEL before a provisional (RFC 3261 §9.1)…
    assert!(
        phone
            .take(Duration::from_millis(300), |m| m.method() == Some("CANCEL"))
            .is_none(),
        "CANCEL before any provisional response"
    );
    // …but right after the late 180.
    phone.ring(&invite);
    let cancel = phone.expect_request("CANCEL", &id, 2 * SECOND);
    phone.sip.send(common::sip::response_to(&cancel, 200, "OK"));
    // The phone was picked up in the same instant: its 200 crosses the CANCEL.
    phone.answer(&invite, 40_006);
    let bye = phone.expect_request("BYE", &id, 2 * SECOND);
    phone.sip.send(common::sip::response_to(&bye, 200, "OK"));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(agent_state(engine, "a1"), "available");
    assert_eq!(
        agent_states(engine, "a1"),
        ["available", "reserved", "available"]
    );
    assert!(logs::call_events(engine, &caller.call_id(), "connected").is_empty());
    engine.assert_no_panic();
}

// ---------------------------------------------------------------------------------------------
// 2b. The ring timeout: CANCEL, the next agent rings; three misses in a row pause the agent.

#[test]
fn unanswered_ring_is_cancelled_at_the_ring_timeout_and_the_next_agent_rings() {
    let h = hotline(
        &[("a1", "buergerservice = 5"), ("a2", "buergerservice = 5")],
        &[(
            "queues.toml",
            "ring_timeout_secs = 15",
            "ring_timeout_secs = 2",
        )],
    );
    let engine = &h.engine;
    let (phone1, phone2) = (&h.phones[0], &h.phones[1]);
    // a1 logs in first: the longest idle is rung first.
    login(engine, "a1");
    std::thread::sleep(Duration::from_millis(20));
    login(engine, "a2");

    let mut caller = Caller::dial(engine);
    caller.choose(engine, '1', "buergerservice");
    let invite1 = phone1.expect_invite(5 * SECOND);
    phone1.ring(&invite1);
    let cancelled = phone1.expect_cancel(&invite1, 5 * SECOND);
    let rang = cancelled.duration_since(invite1.at);
    assert!(
        rang >= Duration::from_millis(1800) && rang <= Duration::from_millis(3000),
        "a1's phone rang {rang:?}; the ring timeout is 2 s"
    );
    let invite2 = phone2.expect_invite(2 * SECOND);
    assert_eq!(header(&invite2, "X-Zentrale-Queue"), "buergerservice");
    flows::assert_rings(
        engine,
        &caller.call_id(),
        &[("a1", &call_id(&invite1)), ("a2", &call_id(&invite2))],
    );
    // a2 rang only after a1's ring ended (never both at once for one caller).
    let order: Vec<(String, String)> = logs::events(engine)
        .iter()
        .filter(|e| e.is_event("agent"))
        .map(|e| {
            (
                e.field("agent").unwrap_or_default(),
                e.field("state").unwrap_or_default(),
            )
        })
        .collect();
    let a1_free = order
        .iter()
        .rposition(|(a, s)| a == "a1" && s == "available")
        .expect("a1 available again");
    let a2_rings = order
        .iter()
        .position(|(a, s)| a == "a2" && s == "reserved")
        .expect("a2 reserved");
    assert!(a1_free < a2_rings, "agent events: {order:?}");
    // One miss is not three: a1 is available, not paused.
    assert_eq!(
        agent_states(engine, "a1"),
        ["available", "reserved", "available"]
    );
    assert_eq!(agent_state(engine, "a1"), "available");

    phone2.ring(&invite2);
    phone2.answer(&invite2, 40_000);
    wait_call_event(engine, &caller.call_id(), "connected", 2 * SECOND, |e| {
        e.field("agent").as_deref() == Some("a2")
    });
    assert_eq!(agent_state(engine, "a2"), "on_call");
    // a1 is free, but the caller is connected: a1's phone stays quiet.
    phone1.expect_no_invite(Duration::from_millis(500));

    caller.hang_up();
    let bye = phone2.expect_request("BYE", &call_id(&invite2), 5 * SECOND);
    phone2.sip.send(common::sip::response_to(&bye, 200, "OK"));
    wait_agent_state(engine, "a2", "wrap_up", 2 * SECOND);
    engine.assert_no_panic();
}

#[test]
fn three_unanswered_rings_in_a_row_pause_the_agent() {
    let h = hotline(
        &[("a1", "buergerservice = 5")],
        &[(
            "queues.toml",
            "ring_timeout_secs = 15",
            "ring_timeout_secs = 1",
        )],
    );
    let (engine, phone) = (&h.engine, &h.phones[0]);
    login(engine, "a1");
    assert_eq!(agent_op(engine, "a1", "pause"), "paused");
    // Three callers wait; then the agent comes back and misses each of them once.
    let mut callers: Vec<Caller> = (0..3).map(|_| Caller::dial(engine)).collect();
    for caller in &mut callers {
        caller.choose(engine, '1', "buergerservice");
    }
    // Unpaused with callers waiting, the agent is offered the oldest at once.
    assert_eq!(agent_op(engine, "a1", "unpause"), "reserved");

    let mut invites = Vec::new();
    for n in 1..=3 {
        let invite = phone.expect_invite(3 * SECOND);
        phone.ring(&invite);
        let cancelled = phone.expect_cancel(&invite, 3 * SECOND);
        let rang = cancelled.duration_since(invite.at);
        assert!(
            rang >= Duration::from_millis(800) && rang <= Duration::from_millis(2000),
            "ring {n} lasted {rang:?}; the ring timeout is 1 s"
        );
        invites.push(invite);
    }
    // Each caller was offered once, oldest first.
    for (caller, invite) in callers.iter().zip(&invites) {
        flows::assert_rings(engine, &caller.call_id(), &[("a1", &call_id(invite))]);
    }
    wait_agent_state(engine, "a1", "paused", 2 * SECOND);
    let view = flows::agent_view(engine, "a1");
    assert_eq!(view["reason"], "no answer", "{view}");
    assert_eq!(
        agent_states(engine, "a1"),
        [
            "available",
            "paused",
            "available", // login, pause, unpause…
            "reserved",
            "available", // …offered at once; miss 1
            "reserved",
            "available", // miss 2
            "reserved",
            "available",
            "paused" // miss 3: paused by the ACD
        ]
    );
    // A paused agent gets no calls; the callers keep waiting (paused agents count as logged
    // in, so no one overflows).
    phone.expect_no_invite(Duration::from_millis(1500));
    for caller in &callers {
        assert!(overflows(engine, &caller.call_id()).is_empty());
        caller.expect_no_bye(Duration::from_millis(10));
    }
    // Unpaused, the agent is offered calls again: the oldest caller, once the ACD's pause
    // between offers of one caller to one agent (5 s after that caller's miss) is over.
    assert_eq!(agent_op(engine, "a1", "unpause"), "available");
    let invite = phone.expect_invite(5 * SECOND);
    phone.ring(&invite);
    flows::assert_rings(
        engine,
        &callers[0].call_id(),
        &[("a1", &call_id(&invites[0])), ("a1", &call_id(&invite))],
    );
    for caller in &mut callers {
        caller.hang_up();
    }
    phone.expect_cancel(&invite, 3 * SECOND);
    engine.assert_no_panic();
}

// ---------------------------------------------------------------------------------------------
// 2c. The agent hangs up first.

#[test]
fn agent_hangup_ends_the_callers_call_and_the_agent_wraps_up() {
    let h = hotline(
        &[("a1", "buergerservice = 5")],
        &[("queues.toml", "wrap_up_secs = 30", "wrap_up_secs = 2")],
    );
    let (engine, phone) = (&h.engine, &h.phones[0]);
    login(engine, "a1");

    let mut caller = Caller::dial(engine);
    caller.choose(engine, '1', "buergerservice");
    let invite = phone.expect_invite(5 * SECOND);
    phone.ring(&invite);
    phone.answer(&invite, 40_002);
    wait_call_event(engine, &caller.call_id(), "connected", 2 * SECOND, |e| {
        e.field("agent").as_deref() == Some("a1")
    });
    assert_eq!(agent_state(engine, "a1"), "on_call");

    phone.hang_up(&invite);
    // The caller's call ends with the agent's: BYE from the engine.
    caller.expect_bye(3 * SECOND);
    wait_agent_state(engine, "a1", "wrap_up", 2 * SECOND);
    let wrap_started = Instant::now();
    // Wrap-up (2 s here) ends by itself.
    wait_agent_state(engine, "a1", "available", 4 * SECOND);
    let wrapped = wrap_started.elapsed();
    assert!(
        wrapped >= Duration::from_millis(1500),
        "wrap-up ended after {wrapped:?}; it lasts 2 s"
    );
    assert_eq!(
        agent_states(engine, "a1"),
        ["available", "reserved", "on_call", "wrap_up", "available"]
    );
    engine.assert_no_panic();
}

/// Out of RTP ports, the engine keeps a pair for every admitted caller's agent leg: with four
/// pairs, two callers are answered, the third gets `503 (no media port)` at once, and the
/// first still reaches its agent. (Before, callers took every pair; no agent leg could be
/// placed and the hotline connected nobody until callers gave up.)
#[test]
fn out_of_rtp_ports_new_callers_get_503_and_waiting_callers_still_reach_their_agent() {
    let (min, _) = common::ports::rtp_range();
    let max = (min + 7).to_string();
    let min = min.to_string();
    let h = hotline_with(
        &[("a1", "buergerservice = 5")],
        &[],
        &[
            ("ZENTRALE_MEDIA__RTP_PORT_MIN", min.as_str()),
            ("ZENTRALE_MEDIA__RTP_PORT_MAX", max.as_str()),
        ],
    );
    let (engine, phone) = (&h.engine, &h.phones[0]);

    let mut first = Caller::dial(engine);
    let second = Caller::dial(engine);
    let client = common::sip::SipClient::new(engine.sip_addr());
    let mut third = common::sip::CallLeg::new(&client, "490");
    client.send(third.invite());
    let refusal = client.expect_final(5 * SECOND, "the third caller's INVITE");
    assert_eq!(
        (refusal.status(), refusal.start_line()),
        (Some(503), "SIP/2.0 503 Service Unavailable (no media port)"),
        "four RTP pairs: two callers and their agents' legs"
    );
    assert!(refusal.header("retry-after").is_some(), "{refusal:?}");
    third.take_answer(&refusal);
    client.send(third.ack_non_2xx());
    assert!(
        engine.log().contains("no RTP port for a new call"),
        "the log says why: {}",
        engine.log_tail(10)
    );
    let metrics = common::http::metrics(engine);
    let pairs = |name: &str| common::http::sample(&metrics, name);
    assert_eq!(
        (
            pairs("zentrale_rtp_port_pairs_in_use"),
            pairs("zentrale_rtp_port_pairs_callers"),
            pairs("zentrale_rtp_port_pairs_max")
        ),
        (Some(2.0), Some(2.0), Some(4.0)),
        "/metrics: two callers' pairs of four"
    );

    login(engine, "a1");
    first.choose(engine, '1', "buergerservice");
    let invite = phone.expect_invite(5 * SECOND);
    phone.answer(&invite, 40_002);
    wait_call_event(engine, &first.call_id(), "connected", 2 * SECOND, |e| {
        e.field("agent").as_deref() == Some("a1")
    });
    first.hang_up();
    phone.expect_request("BYE", &call_id(&invite), 3 * SECOND);
    drop(second);
    engine.assert_no_panic();
}

/// A phone that answers and hangs up at once: its BYE may reach the engine before the ACD has
/// confirmed the answer. Either way the caller's call ends with a BYE at once (before the fix,
/// the caller stayed connected to nobody until the RTP timeout, its agent counted as busy).
#[test]
fn agent_hanging_up_right_after_answering_still_ends_the_callers_call() {
    // No keep-alives: an unanswered OPTIONS probe would sit in the dialog table checked below.
    let h = hotline_with(
        &[("a1", "buergerservice = 5")],
        &[("queues.toml", "wrap_up_secs = 30", "wrap_up_secs = 1")],
        &[("ZENTRALE_ACD__KEEPALIVE_SECS", "0")],
    );
    let (engine, phone) = (&h.engine, &h.phones[0]);
    login(engine, "a1");
    for _ in 0..3 {
        let mut caller = Caller::dial(engine);
        caller.choose(engine, '1', "buergerservice");
        let invite = phone.expect_invite(5 * SECOND);
        phone.answer(&invite, 40_002);
        phone.hang_up(&invite);
        caller.expect_bye(3 * SECOND);
        wait_call_event(engine, &caller.call_id(), "connected", 2 * SECOND, |e| {
            e.field("agent").as_deref() == Some("a1")
        });
        wait_agent_state(engine, "a1", "available", 4 * SECOND);
    }
    // Nothing of the calls is left in the engine's dialog table (agent legs included: they
    // used to stay there for good, each keeping its call's input channel alive), and every
    // RTP pair (caller's and agent leg's) is back in the pool.
    let deadline = Instant::now() + 5 * SECOND;
    loop {
        let health = common::http::get_json(engine.http_addr(), "/healthz");
        if health["sip_dialogs"] == 0 && health["rtp_port_pairs_in_use"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "dialogs left behind: {health}");
        std::thread::sleep(Duration::from_millis(50));
    }
    engine.assert_no_panic();
}

// ---------------------------------------------------------------------------------------------
// 2d. The agent rejects (486): the caller keeps its place at the head of the queue.

#[test]
fn agent_rejecting_with_486_keeps_the_callers_place_for_the_next_agent() {
    let h = hotline(
        &[("a1", "buergerservice = 5"), ("a2", "buergerservice = 5")],
        &[],
    );
    let engine = &h.engine;
    let (phone1, phone2) = (&h.phones[0], &h.phones[1]);
    login(engine, "a1");
    login(engine, "a2");
    assert_eq!(agent_op(engine, "a2", "pause"), "paused");

    let mut first = Caller::dial(engine);
    first.choose(engine, '1', "buergerservice");
    let invite1 = phone1.expect_invite(5 * SECOND);
    phone1.ring(&invite1);
    flows::assert_rings(engine, &first.call_id(), &[("a1", &call_id(&invite1))]);
    let mut second = Caller::dial(engine);
    second.choose(engine, '1', "buergerservice");
    let queue = flows::queue_view(engine, "buergerservice");
    assert_eq!(
        (queue["waiting"].as_u64(), queue["ringing"].as_u64()),
        (Some(1), Some(1)),
        "{queue}"
    );

    // a1 rejects the first caller; a1 is not offered that caller again right away, so the
    // free agent goes to the second caller — who is rejected too.
    phone1.reject(&invite1, 486, "Busy Here");
    let invite2 = phone1.expect_invite(3 * SECOND);
    flows::assert_rings(engine, &second.call_id(), &[("a1", &call_id(&invite2))]);
    phone1.ring(&invite2);
    phone1.reject(&invite2, 486, "Busy Here");

    // Both wait; the next free agent goes to the first caller: it kept its place.
    std::thread::sleep(Duration::from_millis(200));
    let queue = flows::queue_view(engine, "buergerservice");
    assert_eq!(queue["waiting"].as_u64(), Some(2), "{queue}");
    assert_eq!(agent_op(engine, "a2", "unpause"), "reserved");
    let invite3 = phone2.expect_invite(3 * SECOND);
    flows::assert_rings(
        engine,
        &first.call_id(),
        &[("a1", &call_id(&invite1)), ("a2", &call_id(&invite3))],
    );
    phone2.ring(&invite3);
    phone2.answer(&invite3, 40_004);
    wait_call_event(engine, &first.call_id(), "connected", 2 * SECOND, |e| {
        e.field("agent").as_deref() == Some("a2")
    });
    // A rejection is not a missed ring, and the callers never left the queue.
    assert_eq!(agent_state(engine, "a1"), "available");
    for caller in [&first, &second] {
        assert!(overflows(engine, &caller.call_id()).is_empty());
    }
    assert!(logs::call_events(engine, &second.call_id(), "connected").is_empty());

    second.hang_up();
    first.hang_up();
    phone2.expect_request("BYE", &call_id(&invite3), 3 * SECOND);
    engine.assert_no_panic();
}

// ---------------------------------------------------------------------------------------------
// 3. Leaving the queue by its actions.

/// The prompts of the call's last `event="play"`, once it is `expected`.
fn assert_plays(engine: &Engine, call_id: &str, expected: &[&str]) {
    let found = wait_call_event(engine, call_id, "play", 5 * SECOND, |e| {
        e.prompts() == expected
    });
    drop(found);
}

#[test]
fn full_queue_announces_and_sends_the_caller_to_the_general_queue() {
    let h = hotline(
        &[("a1", "buergerservice = 5, allgemein = 5")],
        &[("queues.toml", "max_length = 15", "max_length = 1")],
    );
    let engine = &h.engine;
    login(engine, "a1");
    assert_eq!(agent_op(engine, "a1", "pause"), "paused");
    let mut first = Caller::dial(engine);
    first.choose(engine, '1', "buergerservice");

    let mut second = Caller::dial(engine);
    let mark = second.mark();
    second.press('1');
    let id = second.call_id();
    // The rules see the queue full (1 of 1) and take on_full = { announce = ["queue_full"],
    // queue = "allgemein" } before the caller joins; the ACD never sees it in Bürgerservice.
    let queued = wait_call_event(engine, &id, "queue", 3 * SECOND, |_| true);
    assert_eq!(queued.field("queue").as_deref(), Some("allgemein"));
    assert_eq!(queued.field("topic").as_deref(), Some("buergerservice"));
    assert_plays(engine, &id, &["queue_full", "queue_entry"]);
    second.assert_hears("queue_full", mark, 1000, 5 * SECOND);
    // The first caller still waits in the Bürgerservice queue.
    assert!(overflows(engine, &first.call_id()).is_empty());
    let queues = http_queues(engine);
    assert_eq!(
        queues["buergerservice"]["waiting"].as_u64(),
        Some(1),
        "{queues}"
    );
    assert_eq!(queues["allgemein"]["waiting"].as_u64(), Some(1), "{queues}");
    first.hang_up();
    second.hang_up();
    engine.assert_no_panic();
}

/// The engine hung the call up because its last announcement was played (not for another
/// reason such as a shutdown).
fn assert_hung_up_after_announcement(engine: &Engine, call_id: &str) {
    let reasons: Vec<String> = logs::for_call(engine, call_id)
        .iter()
        .filter(|e| e.message == "hanging up")
        .filter_map(|e| e.field("reason"))
        .collect();
    assert_eq!(reasons, ["announcement played"], "call {call_id}");
}

fn http_queues(engine: &Engine) -> serde_json::Value {
    common::http::get_json(engine.http_addr(), "/api/queues")["queues"].clone()
}

#[test]
fn max_wait_announces_and_ends_with_the_callback_route() {
    let h = hotline(
        &[("a1", "fundbuero = 5")],
        &[("queues.toml", "max_wait_secs = 600", "max_wait_secs = 3")],
    );
    let engine = &h.engine;
    login(engine, "a1");
    assert_eq!(agent_op(engine, "a1", "pause"), "paused");
    let mut caller = Caller::dial(engine);
    caller.choose(engine, '4', "fundbuero");
    let queued = Instant::now();
    let id = caller.call_id();
    let mark = caller.mark();
    wait_call_event(engine, &id, "overflow", 6 * SECOND, |e| {
        e.field("queue").as_deref() == Some("fundbuero")
            && e.field("reason").as_deref() == Some("max_wait")
    });
    let waited = queued.elapsed();
    assert!(
        waited >= Duration::from_millis(2800),
        "overflowed after {waited:?}; max_wait_secs is 3"
    );
    // on_max_wait = { announce = ["queue_wait_long"], callback = "fundbuero" }: callbacks are
    // not implemented yet, so the caller hears the announcement and goodbye, then BYE.
    assert_plays(engine, &id, &["queue_wait_long", "goodbye"]);
    caller.assert_hears("queue_wait_long", mark, 1000, 5 * SECOND);
    caller.expect_bye(20 * SECOND);
    assert_hung_up_after_announcement(engine, &id);
    caller.assert_hears("goodbye", mark, 1000, SECOND);
    engine.assert_no_panic();
}

#[test]
fn no_agents_in_the_queue_transfers_to_the_general_queue_whose_agent_rings() {
    let h = hotline(&[("a8", "allgemein = 5")], &[]);
    let (engine, phone) = (&h.engine, &h.phones[0]);
    login(engine, "a8");
    let mut caller = Caller::dial(engine);
    let mark = caller.mark();
    caller.press('1');
    let id = caller.call_id();
    // Nobody of Bürgerservice is logged in: the rules take its on_no_agents =
    // { announce = ["transfer_general"], queue = "allgemein" } before the caller joins.
    let queued = wait_call_event(engine, &id, "queue", 3 * SECOND, |_| true);
    assert_eq!(queued.field("queue").as_deref(), Some("allgemein"));
    assert_eq!(queued.field("topic").as_deref(), Some("buergerservice"));
    assert_plays(engine, &id, &["transfer_general", "queue_entry"]);
    let invite = phone.expect_invite(3 * SECOND);
    assert_eq!(header(&invite, "X-Zentrale-Queue"), "allgemein");
    phone.ring(&invite);
    caller.assert_hears("transfer_general", mark, 1000, 5 * SECOND);
    caller.hang_up();
    phone.expect_cancel(&invite, 3 * SECOND);
    engine.assert_no_panic();
}

#[test]
fn no_agent_logged_in_at_all_ends_with_queue_full_and_goodbye() {
    let h = hotline(&[("a1", "buergerservice = 5, allgemein = 5")], &[]);
    let engine = &h.engine;
    let mut caller = Caller::dial(engine);
    let mark = caller.mark();
    caller.press('1');
    let id = caller.call_id();
    // Bürgerservice has nobody → its on_no_agents (announce transfer_general, queue allgemein),
    // which has nobody either → allgemein's on_no_agents: announce queue_full, then the
    // callback route (not implemented yet: goodbye and hang up). The caller never waits.
    wait_call_event(engine, &id, "unsupported_route", 3 * SECOND, |_| true);
    assert!(logs::call_events(engine, &id, "queue").is_empty());
    assert_plays(engine, &id, &["transfer_general", "queue_full", "goodbye"]);
    caller.assert_hears("transfer_general", mark, 1000, 5 * SECOND);
    caller.expect_bye(25 * SECOND);
    assert_hung_up_after_announcement(engine, &id);
    caller.assert_hears("queue_full", mark, 1000, SECOND);
    caller.assert_hears("goodbye", mark, 1000, SECOND);
    h.phones[0].expect_no_invite(Duration::from_millis(10));
    engine.assert_no_panic();
}

#[test]
fn last_agent_logging_out_moves_waiting_callers_on_by_on_no_agents() {
    let h = hotline(&[("a1", "fundbuero = 5"), ("a8", "allgemein = 5")], &[]);
    let engine = &h.engine;
    login(engine, "a1");
    login(engine, "a8");
    assert_eq!(agent_op(engine, "a1", "pause"), "paused");
    assert_eq!(agent_op(engine, "a8", "pause"), "paused");
    let mut caller = Caller::dial(engine);
    caller.choose(engine, '4', "fundbuero");
    let id = caller.call_id();
    assert_eq!(agent_op(engine, "a1", "logout"), "logged_out");
    wait_call_event(engine, &id, "overflow", 2 * SECOND, |e| {
        e.field("queue").as_deref() == Some("fundbuero")
            && e.field("reason").as_deref() == Some("no_agents")
    });
    wait_call_event(engine, &id, "queue", 2 * SECOND, |e| {
        e.field("queue").as_deref() == Some("allgemein")
    });
    assert_eq!(agent_op(engine, "a8", "unpause"), "reserved");
    let invite = h.phones[1].expect_invite(3 * SECOND);
    assert_eq!(header(&invite, "X-Zentrale-Queue"), "allgemein");
    h.phones[1].ring(&invite);
    caller.hang_up();
    h.phones[1].expect_cancel(&invite, 3 * SECOND);
    engine.assert_no_panic();
}

/// The fixture calendars with the Fundbüro closed every day.
fn fundbuero_closed() -> (&'static str, String, String) {
    let open: String = ["Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"]
        .iter()
        .map(|d| format!("{d} = \"00:00-24:00\"\n"))
        .collect();
    let closed: String = ["Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"]
        .iter()
        .map(|d| format!("{d} = \"closed\"\n"))
        .collect();
    (
        "calendars.toml",
        format!("[calendar.fundbuero.hours]\n{open}"),
        format!("[calendar.fundbuero.hours]\n{closed}"),
    )
}

#[test]
fn fundbuero_closed_plays_its_hours_and_offers_the_general_queue() {
    let (file, from, to) = fundbuero_closed();
    let h = hotline(
        &[("a1", "fundbuero = 5"), ("a8", "allgemein = 5")],
        &[(file, &from, &to)],
    );
    let engine = &h.engine;
    login(engine, "a1");
    login(engine, "a8");
    let mut caller = Caller::dial(engine);
    let id = caller.call_id();
    let mark = caller.mark();
    caller.press('4');
    wait_call_event(engine, &id, "menu", 3 * SECOND, |e| {
        e.field("menu").as_deref() == Some("fundbuero_geschlossen")
    });
    assert_plays(engine, &id, &["closed_fundbuero", "offer_general"]);
    caller.assert_hears("closed_fundbuero", mark, 1000, 5 * SECOND);
    // Nobody rings at the closed Fundbüro, even with its agent logged in.
    assert!(logs::call_events(engine, &id, "queue").is_empty());
    h.phones[0].expect_no_invite(Duration::from_millis(10));
    // Key 1: "transfer to the general hotline", then the general queue, whose agent rings.
    caller.choose(engine, '1', "allgemein");
    assert_plays(engine, &id, &["transfer_general", "queue_entry"]);
    let invite = h.phones[1].expect_invite(3 * SECOND);
    assert_eq!(header(&invite, "X-Zentrale-Queue"), "allgemein");
    h.phones[1].ring(&invite);
    h.phones[0].expect_no_invite(Duration::from_millis(10));
    caller.hang_up();
    h.phones[1].expect_cancel(&invite, 3 * SECOND);
    engine.assert_no_panic();
}

#[test]
fn leave_key_cancels_the_ring_and_takes_the_on_leave_route() {
    let h = hotline(
        &[("a1", "buergerservice = 5"), ("a8", "allgemein = 5")],
        &[],
    );
    let engine = &h.engine;
    let (phone1, phone8) = (&h.phones[0], &h.phones[1]);
    login(engine, "a1");
    login(engine, "a8");
    let mut caller = Caller::dial(engine);
    caller.choose(engine, '1', "buergerservice");
    let id = caller.call_id();
    let invite1 = phone1.expect_invite(3 * SECOND);
    phone1.ring(&invite1);
    // leave_key = "0", on_leave = { queue = "allgemein" }
    caller.press('0');
    wait_call_event(engine, &id, "leave", 2 * SECOND, |e| {
        e.field("queue").as_deref() == Some("buergerservice")
            && e.field("key").as_deref() == Some("0")
    });
    phone1.expect_cancel(&invite1, 2 * SECOND);
    wait_call_event(engine, &id, "queue", 2 * SECOND, |e| {
        e.field("queue").as_deref() == Some("allgemein")
    });
    let invite8 = phone8.expect_invite(3 * SECOND);
    assert_eq!(header(&invite8, "X-Zentrale-Queue"), "allgemein");
    phone8.ring(&invite8);
    flows::assert_rings(
        engine,
        &id,
        &[("a1", &call_id(&invite1)), ("a8", &call_id(&invite8))],
    );
    // a1 only rang: free again, without wrap-up.
    wait_agent_state(engine, "a1", "available", 2 * SECOND);
    assert_eq!(
        agent_states(engine, "a1"),
        ["available", "reserved", "available"]
    );
    caller.hang_up();
    phone8.expect_cancel(&invite8, 3 * SECOND);
    engine.assert_no_panic();
}

#[test]
fn waiting_callers_hear_their_position() {
    let h = hotline(
        &[("a1", "fundbuero = 5")],
        &[(
            "queues.toml",
            "announce_position_every_secs = 60",
            "announce_position_every_secs = 2",
        )],
    );
    let engine = &h.engine;
    login(engine, "a1");
    assert_eq!(agent_op(engine, "a1", "pause"), "paused");
    let mut first = Caller::dial(engine);
    first.choose(engine, '4', "fundbuero");
    let mut second = Caller::dial(engine);
    second.choose(engine, '4', "fundbuero");
    let mark = second.mark();
    for (caller, position) in [(&first, "num_1"), (&second, "num_2")] {
        let expected = ["position_prefix", position, "position_suffix"];
        let found = wait_call_event(engine, &caller.call_id(), "play", 4 * SECOND, |e| {
            e.prompts() == expected
        });
        drop(found);
    }
    second.assert_hears("position_prefix", mark, 1000, 5 * SECOND);
    second.assert_hears("num_2", mark, 400, 5 * SECOND);
    first.hang_up();
    second.hang_up();
    engine.assert_no_panic();
}
