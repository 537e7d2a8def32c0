//! OPTIONS keep-alive to static agents' phones (agents.toml `uri`): a phone that stops
//! answering is marked unreachable (the ACD offers it no calls and counts it as not logged in
//! for its queues), and reachable again at its next answer. Registered phones need none: their
//! registration expires instead.
//!
//! Each probe is a non-INVITE client transaction (RFC 3261 §17.1.2: retransmissions over UDP,
//! Timer F = 64·T1); any response, even 404 or 405, proves the phone is there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::service::{AcdCommand, AgentOp};
use crate::call::CallInput;
use crate::hash::HashMap;
use crate::shutdown::Shutdown;
use crate::sip::endpoint::Endpoint;
use crate::sip::headers::contact_socket_addr;
use crate::sip::message::{HeaderName, Headers, Method, Request, write_request};
use crate::sip::reply::{random_token, via_value};
use crate::sip::transaction::{Action, NonInviteClient};
use crate::sip::transport::Flow;

struct Probe {
    agent: String,
    flow: Flow,
    txn: NonInviteClient,
}

/// Runs until shutdown: probes every static agent every `every`; `failures` misses in a row
/// make it unreachable.
pub async fn run(endpoint: Arc<Endpoint>, every: Duration, failures: u32, mut shutdown: Shutdown) {
    if every.is_zero() {
        return;
    }
    let (tx, mut rx) = mpsc::channel::<Box<CallInput>>(256);
    let mut probes: HashMap<Bytes, Probe> = HashMap::default();
    let mut missed: HashMap<String, u32> = HashMap::default();
    let mut next_round = Instant::now() + Duration::from_secs(1);
    loop {
        let deadline = probes
            .values()
            .filter_map(|p| p.txn.next_deadline())
            .chain([next_round])
            .min()
            .unwrap_or(next_round);
        tokio::select! {
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {}
            input = rx.recv() => {
                if let Some(CallInput::Response { response, .. }) = input.map(|input| *input) {
                    let call_id = response.headers.get(&HeaderName::CallId).cloned().unwrap_or_default();
                    if let Some(probe) = probes.get_mut(&call_id)
                        && probe.txn.on_response(Instant::now(), response.status)
                        && response.status >= 200
                    {
                        let probe = probes.remove(&call_id).expect("present");
                        endpoint.remove_leg(&call_id);
                        if missed.insert(probe.agent.clone(), 0).unwrap_or(0) >= failures {
                            info!(agent = %probe.agent, "agent phone answers keep-alives again");
                        }
                        set_reachable(&endpoint, &probe.agent, true);
                    }
                }
                continue;
            }
            _ = shutdown.stopped() => return,
        }
        let now = Instant::now();
        // Timers of running probes.
        let mut gone = Vec::new();
        for (call_id, probe) in probes.iter_mut() {
            for action in probe.txn.poll(now) {
                match action {
                    Action::Send(bytes) => endpoint.send(&probe.flow, bytes),
                    Action::Timeout | Action::Terminated => gone.push(call_id.clone()),
                }
            }
        }
        for call_id in gone {
            if let Some(probe) = probes.remove(&call_id) {
                endpoint.remove_leg(&call_id);
                let count = missed.entry(probe.agent.clone()).or_insert(0);
                *count += 1;
                debug!(agent = %probe.agent, missed = *count, "keep-alive unanswered");
                if *count >= failures {
                    if *count == failures {
                        info!(agent = %probe.agent, missed = *count,
                            "agent phone does not answer keep-alives: unreachable");
                    }
                    // Again at every miss: an agent who logs in meanwhile is caught too.
                    set_reachable(&endpoint, &probe.agent, false);
                }
            }
        }
        if now >= next_round {
            next_round = now + every;
            let active = endpoint.rules().current();
            for agent in active.rules.agents.values() {
                let crate::rules::model::Reach::Uri(uri) = &agent.reach else {
                    continue;
                };
                let Some(peer) = contact_socket_addr(uri) else {
                    continue;
                };
                if probes.values().any(|p| p.agent == agent.id) {
                    continue;
                }
                let flow = Flow::Udp { peer };
                let call_id = Bytes::from(format!("ka-{}@zentrale", random_token()));
                let request = options(&endpoint, uri, &call_id);
                endpoint.register_leg(call_id.clone(), tx.clone());
                endpoint.send(&flow, request.clone());
                let txn = NonInviteClient::new(endpoint.config().timers, false, now, request);
                probes.insert(
                    call_id,
                    Probe {
                        agent: agent.id.clone(),
                        flow,
                        txn,
                    },
                );
            }
        }
    }
}

fn set_reachable(endpoint: &Endpoint, agent: &str, reachable: bool) {
    endpoint.acd().send(AcdCommand::Agent {
        agent: agent.to_string(),
        op: AgentOp::Reachable(reachable),
        reply: None,
    });
}

fn options(endpoint: &Endpoint, uri: &str, call_id: &Bytes) -> Bytes {
    let config = endpoint.config();
    let mut headers = Headers(Vec::with_capacity(8));
    headers.push(HeaderName::Via, via_value("UDP", config.advertised));
    headers.push(HeaderName::MaxForwards, Bytes::from_static(b"70"));
    headers.push(
        HeaderName::From,
        Bytes::from(format!(
            "<sip:zentrale@{}>;tag={}",
            config.advertised,
            random_token()
        )),
    );
    headers.push(HeaderName::To, Bytes::from(format!("<{uri}>")));
    headers.push(HeaderName::CallId, call_id.clone());
    headers.push(HeaderName::CSeq, Bytes::from_static(b"1 OPTIONS"));
    headers.push(
        HeaderName::Other("User-Agent".into()),
        config.user_agent.clone(),
    );
    write_request(&Request {
        method: Method::Options,
        uri: Bytes::from(uri.to_string()),
        headers,
        body: Bytes::new(),
    })
}
