//! Agents' phone feature codes end to end: an agent dials `*21` … `*24` from its phone, the
//! engine answers, confirms with a prompt, hangs up, and the agent's state changes — visible
//! to the supervisor in `/api/agents`. A phone that is no agent's changes nothing.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::acd;
use common::engine::Engine;
use common::http;
use common::logs::JSON_LOG;
use common::ports;
use common::sip::{CallLeg, SipClient, response_to};

const ALL_SKILLS: &str =
    "buergerservice = 5, fuehrerschein = 5, maengelmelder = 5, fundbuero = 5, allgemein = 5";

/// Dials `code` from `client`; answers the engine's BYE; returns the prompts the engine
/// played (from its log) and the call's Call-ID.
fn dial(client: &SipClient, code: &str) -> String {
    let mut leg = CallLeg::new(client, code);
    client.send(leg.invite());
    let answer = client.expect_final(Duration::from_secs(5), "feature code INVITE");
    assert_eq!(
        answer.status(),
        Some(200),
        "{code} answered with {answer:?}"
    );
    leg.take_answer(&answer);
    client.send(leg.ack_2xx());
    // The confirmation prompt plays (~1.5 s), then the engine hangs up.
    let (bye, others) = client.recv_until(Duration::from_secs(8), |m| m.method() == Some("BYE"));
    let bye = bye.unwrap_or_else(|| panic!("no BYE after {code}; got {others:#?}"));
    client.send(response_to(&bye, 200, "OK"));
    leg.call_id.clone()
}

fn agent_state(engine: &Engine, agent: &str) -> serde_json::Value {
    let agents = http::get_json(engine.http_addr(), "/api/agents");
    agents["agents"]
        .as_array()
        .and_then(|list| list.iter().find(|a| a["id"] == agent))
        .cloned()
        .unwrap_or_else(|| panic!("{agent} not in {agents}"))
}

/// Polls `/api/agents` until `agent` is in `state`; panics with its last state after `limit`.
fn wait_for_state(engine: &Engine, agent: &str, state: &str, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    while agent_state(engine, agent)["state"] != state {
        assert!(
            std::time::Instant::now() < deadline,
            "{agent} still {} after {limit:?} (want {state})",
            agent_state(engine, agent)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn played(engine: &Engine, call_id: &str) -> Vec<String> {
    common::logs::call_events(engine, call_id, "play")
        .iter()
        .flat_map(|e| e.prompts())
        .collect()
}

#[test]
fn feature_codes_log_in_pause_resume_and_log_out() {
    let phone = SocketAddr::from(([127, 0, 0, 1], ports::free_udp_tcp_port()));
    let rules = acd::rules_dir(&acd::static_agent("staff", ALL_SKILLS, phone.port()), &[]);
    let dir = rules.path().display().to_string();
    let engine = Engine::start(&[JSON_LOG, ("ZENTRALE_RULES__DIR", &dir)]);
    let desk = SipClient::bound(phone, engine.sip_addr());
    assert_eq!(agent_state(&engine, "staff")["state"], "logged_out");

    let steps = [
        ("*21", "available", "agent_logged_in"),
        ("*23", "paused", "agent_paused"),
        ("*24", "available", "agent_ready"),
        ("*22", "logged_out", "agent_logged_out"),
    ];
    for (code, state, prompt) in steps {
        let call_id = dial(&desk, code);
        let agent = agent_state(&engine, "staff");
        assert_eq!(agent["state"], state, "after {code}: {agent}");
        assert_eq!(
            played(&engine, &call_id),
            vec![prompt.to_string()],
            "after {code}"
        );
        if state == "paused" {
            assert_eq!(agent["reason"], "pause by phone", "{agent}");
        }
    }

    // Pausing a logged-out agent is refused, and says so.
    let call_id = dial(&desk, "*23");
    assert_eq!(agent_state(&engine, "staff")["state"], "logged_out");
    assert_eq!(
        played(&engine, &call_id),
        vec!["feature_refused".to_string()]
    );
    engine.assert_no_panic();
}

#[test]
fn a_phone_that_is_no_agents_changes_nothing() {
    let phone = ports::free_udp_tcp_port();
    let rules = acd::rules_dir(&acd::static_agent("staff", ALL_SKILLS, phone), &[]);
    let dir = rules.path().display().to_string();
    let engine = Engine::start(&[JSON_LOG, ("ZENTRALE_RULES__DIR", &dir)]);
    // Same host, another port: not the agent's phone.
    let stranger = SipClient::new(engine.sip_addr());
    let call_id = dial(&stranger, "*21");
    assert_eq!(agent_state(&engine, "staff")["state"], "logged_out");
    assert_eq!(
        played(&engine, &call_id),
        vec!["feature_refused".to_string()]
    );
    engine.assert_no_panic();
}

#[test]
fn a_static_phone_that_stops_answering_keep_alives_is_unreachable_until_it_answers() {
    let phone = SocketAddr::from(([127, 0, 0, 1], ports::free_udp_tcp_port()));
    let rules = acd::rules_dir(&acd::static_agent("staff", ALL_SKILLS, phone.port()), &[]);
    let dir = rules.path().display().to_string();
    // Fast timers: a probe gives up after 64·T1 = 1.28 s; one miss is enough.
    let engine = Engine::start(&[
        JSON_LOG,
        ("ZENTRALE_RULES__DIR", &dir),
        ("ZENTRALE_SIP__T1_MS", "20"),
        ("ZENTRALE_SIP__T2_MS", "160"),
        ("ZENTRALE_ACD__KEEPALIVE_SECS", "1"),
        ("ZENTRALE_ACD__KEEPALIVE_FAILURES", "1"),
    ]);
    acd::login(&engine, "staff");
    // Nobody answers at the phone's address yet.
    wait_for_state(&engine, "staff", "unreachable", Duration::from_secs(10));
    // With nobody reachable, the queues count no agent: a caller is not kept waiting.
    let queues = http::get_json(engine.http_addr(), "/api/queues");
    assert_eq!(queues["queues"]["fundbuero"]["logged_in"], 0, "{queues}");

    // The phone comes back and answers the next OPTIONS.
    let desk = SipClient::bound(phone, engine.sip_addr());
    let (options, _) = desk.recv_until(Duration::from_secs(5), |m| m.method() == Some("OPTIONS"));
    let options = options.expect("a keep-alive OPTIONS reaches the phone");
    desk.send(response_to(&options, 200, "OK"));
    wait_for_state(&engine, "staff", "available", Duration::from_secs(5));
    engine.assert_no_panic();
}

#[test]
fn a_rules_reload_adds_and_retires_agents() {
    let phone = ports::free_udp_tcp_port();
    let rules = acd::rules_dir(&acd::static_agent("staff", ALL_SKILLS, phone), &[]);
    let dir = rules.path().display().to_string();
    let engine = Engine::start(&[JSON_LOG, ("ZENTRALE_RULES__DIR", &dir)]);
    acd::login(&engine, "staff");
    let (status, _) = http::post_json(engine.http_addr(), "/api/agents/newbie/login", None);
    assert_eq!(status, 404, "newbie is not in the rules yet");

    // The admin replaces staff by newbie and reloads.
    std::fs::write(
        rules.join("agents.toml"),
        acd::static_agent("newbie", ALL_SKILLS, phone),
    )
    .expect("write agents.toml");
    let (status, body) = http::post_json(engine.http_addr(), "/api/rules/reload", None);
    assert_eq!(status, 200, "{body}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let agents = http::get_json(engine.http_addr(), "/api/agents");
        let ids: Vec<&str> = agents["agents"]
            .as_array()
            .map(|l| l.iter().filter_map(|a| a["id"].as_str()).collect())
            .unwrap_or_default();
        if ids == ["newbie"] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "agents after reload: {agents}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    acd::login(&engine, "newbie");
    let (status, body) = http::post_json(engine.http_addr(), "/api/agents/staff/login", None);
    assert_eq!(status, 404, "a retired agent cannot log in: {body}");
    let queues = http::get_json(engine.http_addr(), "/api/queues");
    assert_eq!(queues["queues"]["fundbuero"]["logged_in"], 1, "{queues}");
    engine.assert_no_panic();
}
