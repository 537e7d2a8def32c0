//! The endpoint on a real loopback UDP socket, with the rules from `tests/fixtures/rules-open`,
//! a running ACD and the overload guard's detector driven by the test's own lag samples.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use super::{Endpoint, EndpointConfig, Limits};
use crate::overload::{CALM_BEFORE_LEAVING, Detector, Transition};
use crate::reload::HotReload;
use crate::rules::active::ActiveRules;
use crate::shutdown::{Phase, ShutdownController};
use crate::sip::registrar::{Registrar, RegistrarConfig};
use crate::sip::transaction::TimerConfig;
use crate::sip::transport::{Transports, bind_udp, run_udp};

const REPLY: Duration = Duration::from_secs(5);
const RETRY_AFTER: u32 = 17;

struct Harness {
    endpoint: Arc<Endpoint>,
    controller: ShutdownController,
    sip: SocketAddr,
}

async fn start(max_calls: usize) -> Harness {
    let (controller, shutdown) = ShutdownController::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rules-open");
    let rules = HotReload::load(dir, Box::new(ActiveRules::load)).expect("fixture rules load");
    let socket = Arc::new(bind_udp("127.0.0.1:0".parse().expect("address")).expect("bind SIP"));
    let sip = socket.local_addr().expect("SIP address");
    let (acd, acd_handle, inbox) = {
        let active = rules.current();
        crate::acd::service::AcdService::new(
            active.rules.queues.values(),
            active.rules.agents.values(),
            crate::acd::AcdSettings::default(),
            active.rules.version.hash.clone(),
            Instant::now(),
        )
    };
    tokio::spawn(acd.run(inbox));
    let config = EndpointConfig {
        limits: Limits {
            max_message_bytes: 16384,
            max_calls,
            max_tcp_connections: 1,
            tcp_idle_secs: 60,
            retry_after_secs: RETRY_AFTER,
        },
        timers: TimerConfig::default(),
        user_agent: bytes::Bytes::from_static(b"zentrale-endpoint-test"),
        advertised: sip,
        answer_delay: Duration::ZERO,
        session_expires_secs: 1800,
        min_se_secs: 90,
        show_caller_numbers: false,
        symmetric_response: true,
        rtp_timeout: Duration::from_secs(30),
        inband_dtmf: false,
    };
    let endpoint = Endpoint::new(
        config,
        Transports::new(Some(socket.clone())),
        shutdown.clone(),
        crate::media::rtp_ports::RtpPortPool::new(
            "127.0.0.1".parse().expect("address"),
            41000,
            41999,
        ),
        rules,
        acd_handle,
        Arc::new(Registrar::new(RegistrarConfig {
            realm: "zentrale".into(),
            min_expires_secs: 60,
            max_expires_secs: 3600,
            nonce_lifetime: Duration::from_secs(300),
        })),
    );
    tokio::spawn(run_udp(socket, endpoint.clone(), shutdown));
    Harness {
        endpoint,
        controller,
        sip,
    }
}

/// An SDP offer (PCMU/PCMA) with the caller's RTP at `port`.
fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=test 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    )
}

/// A caller's dialog, as raw SIP over its own UDP socket.
struct Caller {
    socket: UdpSocket,
    /// Where the engine sends the call's audio: a port of our own, never someone else's.
    rtp: UdpSocket,
    engine: SocketAddr,
    call_id: String,
    from_tag: String,
    to_tag: Option<String>,
    invite_branch: String,
    cseq: u32,
}

impl Caller {
    async fn new(engine: SocketAddr) -> Caller {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind caller");
        let rtp = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind caller RTP");
        Caller {
            socket,
            rtp,
            engine,
            call_id: format!("overload-{}@127.0.0.1", crate::sip::reply::random_token()),
            from_tag: crate::sip::reply::random_token(),
            to_tag: None,
            invite_branch: branch(),
            cseq: 1,
        }
    }

    fn request(&self, method: &str, branch: &str, cseq: u32, body: Option<&str>) -> String {
        let local = self.socket.local_addr().expect("caller address");
        let to = match &self.to_tag {
            Some(tag) => format!("<sip:490@{}>;tag={tag}", self.engine),
            None => format!("<sip:490@{}>", self.engine),
        };
        let (content, body) = match body {
            Some(sdp) => (
                format!(
                    "Content-Type: application/sdp\r\nContent-Length: {}\r\n",
                    sdp.len()
                ),
                sdp,
            ),
            None => ("Content-Length: 0\r\n".to_string(), ""),
        };
        format!(
            "{method} sip:490@{engine} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};rport;branch={branch}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:0364155501@{local}>;tag={from_tag}\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:test@{local}>\r\n\
             {content}\r\n{body}",
            engine = self.engine,
            from_tag = self.from_tag,
            call_id = self.call_id,
        )
    }

    async fn send(&self, text: &str) {
        self.socket
            .send_to(text.as_bytes(), self.engine)
            .await
            .expect("send");
    }

    /// The next final response to `method` (provisional responses are skipped).
    async fn final_response(&self, method: &str) -> Reply {
        let deadline = tokio::time::Instant::now() + REPLY;
        let mut buf = vec![0; 65536];
        loop {
            let (n, _) = tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no final response to {method} within {REPLY:?}"))
                .expect("receive");
            let reply = Reply(String::from_utf8_lossy(&buf[..n]).into_owned());
            let is_final = reply.status().is_some_and(|s| s >= 200);
            let for_method = reply
                .header("CSeq")
                .is_some_and(|c| c.ends_with(&format!(" {method}")));
            if is_final && for_method {
                return reply;
            }
        }
    }

    async fn invite(&self) -> Reply {
        let port = self.rtp.local_addr().expect("RTP address").port();
        let invite = self.request("INVITE", &self.invite_branch, 1, Some(&sdp(port)));
        self.send(&invite).await;
        self.final_response("INVITE").await
    }

    /// ACK for the final answer to the INVITE (a 2xx: new branch; else the INVITE's).
    async fn ack(&mut self, answer: &Reply) {
        let branch = if answer.status() == Some(200) {
            self.to_tag = answer.to_tag();
            branch()
        } else {
            self.invite_branch.clone()
        };
        let ack = self.request("ACK", &branch, 1, None);
        self.send(&ack).await;
    }

    async fn bye(&mut self) -> Reply {
        self.cseq += 1;
        let bye = self.request("BYE", &branch(), self.cseq, None);
        self.send(&bye).await;
        self.final_response("BYE").await
    }

    async fn options(&mut self) -> Reply {
        self.cseq += 1;
        let options = self.request("OPTIONS", &branch(), self.cseq, None);
        self.send(&options).await;
        self.final_response("OPTIONS").await
    }
}

fn branch() -> String {
    format!("z9hG4bK{}", crate::sip::reply::random_token())
}

#[derive(Debug)]
struct Reply(String);

impl Reply {
    fn status(&self) -> Option<u16> {
        self.0.split(' ').nth(1)?.parse().ok()
    }

    fn status_line(&self) -> &str {
        self.0.lines().next().unwrap_or_default()
    }

    fn header(&self, name: &str) -> Option<String> {
        self.0.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    fn to_tag(&self) -> Option<String> {
        let to = self.header("To")?;
        let tag = to.split(";tag=").nth(1)?;
        Some(tag.split(';').next().unwrap_or(tag).to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_overloaded_new_invites_get_503_and_everything_else_is_answered() {
    let harness = start(10).await;
    let endpoint = &harness.endpoint;

    // A call that is up before the overload.
    let mut running = Caller::new(harness.sip).await;
    let answer = running.invite().await;
    assert_eq!(answer.status(), Some(200), "{answer:?}");
    running.ack(&answer).await;

    // The detector, fed one frozen second (as a stopped process or a starved VM shows it),
    // declares overload in the flag the endpoint reads.
    let mut detector = Detector::new(Duration::from_millis(50), endpoint.overload_flag().clone());
    let mut now = Instant::now();
    assert!(matches!(
        detector.observe(now, Duration::from_secs(1)),
        Some(Transition::Entered { .. })
    ));
    assert!(endpoint.overloaded());

    // A new call: 503 with Retry-After, counted as shed, not as the call limit.
    let mut refused = Caller::new(harness.sip).await;
    let answer = refused.invite().await;
    assert_eq!(answer.status(), Some(503), "{answer:?}");
    assert_eq!(
        answer.status_line(),
        "SIP/2.0 503 Service Unavailable (overloaded)"
    );
    assert_eq!(
        answer.header("Retry-After"),
        Some(RETRY_AFTER.to_string()),
        "{answer:?}"
    );
    refused.ack(&answer).await;
    // Its retransmission gets the same answer.
    let again = refused.invite().await;
    assert_eq!(again.status(), Some(503), "{again:?}");
    refused.ack(&again).await;
    assert_eq!(endpoint.stats.shed_overloaded.load(Ordering::Relaxed), 2);
    assert_eq!(endpoint.stats.rejected_overload.load(Ordering::Relaxed), 0);
    assert_eq!(endpoint.active_calls(), 1, "only the running call");

    // OPTIONS outside a dialog and BYE inside the running one get their usual answers.
    let mut prober = Caller::new(harness.sip).await;
    let options = prober.options().await;
    assert_eq!(options.status(), Some(200), "{options:?}");
    let bye = running.bye().await;
    assert_eq!(bye.status(), Some(200), "{bye:?}");

    // Calm again for a second: new calls are taken again.
    let mut left = None;
    for _ in 0..200 {
        now += Duration::from_millis(10);
        if let Some(t) = detector.observe(now, Duration::ZERO) {
            left = Some(t);
            break;
        }
    }
    assert!(
        matches!(left, Some(Transition::Left { lasted, .. }) if lasted >= CALM_BEFORE_LEAVING),
        "{left:?}"
    );
    assert!(!endpoint.overloaded());
    let mut later = Caller::new(harness.sip).await;
    let answer = later.invite().await;
    assert_eq!(answer.status(), Some(200), "{answer:?}");
    later.ack(&answer).await;
    let bye = later.bye().await;
    assert_eq!(bye.status(), Some(200), "{bye:?}");
    assert_eq!(endpoint.stats.shed_overloaded.load(Ordering::Relaxed), 2);

    harness.controller.advance(Phase::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_call_limit_is_counted_apart_from_overload() {
    let harness = start(1).await;
    let endpoint = &harness.endpoint;
    let mut running = Caller::new(harness.sip).await;
    let answer = running.invite().await;
    assert_eq!(answer.status(), Some(200), "{answer:?}");
    running.ack(&answer).await;
    let mut one_more = Caller::new(harness.sip).await;
    let answer = one_more.invite().await;
    assert_eq!(
        answer.status_line(),
        "SIP/2.0 503 Service Unavailable (call limit reached)"
    );
    assert_eq!(answer.header("Retry-After"), Some(RETRY_AFTER.to_string()));
    one_more.ack(&answer).await;
    assert_eq!(endpoint.stats.rejected_overload.load(Ordering::Relaxed), 1);
    assert_eq!(endpoint.stats.shed_overloaded.load(Ordering::Relaxed), 0);
    assert!(!endpoint.overloaded(), "no detector runs: never overloaded");
    let bye = running.bye().await;
    assert_eq!(bye.status(), Some(200), "{bye:?}");
    harness.controller.advance(Phase::Closed);
}

mod lingering {
    use bytes::Bytes;

    use super::super::{Lingering, LingeringCall};
    use super::*;

    const LINGER: Duration = Duration::from_secs(32);

    fn entry(until: Instant) -> LingeringCall {
        LingeringCall {
            until,
            bye_response: None,
            bye_branch: None,
            invite_branch: Some("z9hG4bK1".into()),
        }
    }

    fn id(n: usize) -> Bytes {
        Bytes::from(format!("{n}@test"))
    }

    #[test]
    fn an_entry_is_found_for_its_linger_time_and_not_after() {
        let t0 = Instant::now();
        let mut l = Lingering::new(t0, LINGER, 1000);
        assert!(l.insert(id(1), entry(t0 + LINGER), t0).is_none());
        // A second generation starts after a linger time; the first entry is still found
        // until its own time is up.
        let t1 = t0 + Duration::from_secs(20);
        l.insert(id(2), entry(t1 + LINGER), t1);
        let t2 = t0 + Duration::from_secs(33);
        assert!(l.insert(id(3), entry(t2 + LINGER), t2).is_none());
        assert!(l.get(&id(1), t2).is_none(), "expired");
        assert!(l.get(&id(2), t2).is_some(), "in the previous generation");
        assert!(l.get(&id(3), t2).is_some());
        // The next generation change drops the one holding 1 and 2, both expired by then.
        let t3 = t2 + LINGER;
        let dropped = l.insert(id(4), entry(t3 + LINGER), t3);
        assert_eq!(dropped.map(|m| m.len()), Some(2));
        assert!(l.get(&id(2), t3).is_none());
        assert!(l.get(&id(3), t3).is_none(), "expired at t3 exactly");
        assert!(l.get(&id(4), t3).is_some());
        l.remove(&id(4));
        assert!(l.get(&id(4), t3).is_none());
    }

    #[test]
    fn a_flood_of_ended_calls_stays_within_the_bound() {
        let t0 = Instant::now();
        let mut l = Lingering::new(t0, LINGER, 1000);
        let mut dropped = 0;
        for n in 0..10_000 {
            let now = t0 + Duration::from_micros(n as u64);
            dropped += l
                .insert(id(n), entry(now + LINGER), now)
                .map_or(0, |m| m.len());
            assert!(l.len() <= 1000, "{} entries", l.len());
        }
        assert_eq!(
            dropped + l.len(),
            10_000,
            "every entry is either kept or dropped whole"
        );
        // The newest calls are the ones still answered.
        assert!(l.get(&id(9_999), t0 + Duration::from_millis(10)).is_some());
    }
}
