//! The engine under abuse: floods of garbage datagrams, oversized messages over UDP and TCP,
//! TCP streams cut into single bytes, pipelined and padded with keep-alives, and more calls
//! than `sip.max_calls`. After each, the engine must still serve normal traffic and must not
//! have panicked.
//!
//! The garbage is generated from a seeded RNG; the seed is printed, and
//! `ROBUSTNESS_SEED=<n> cargo test --test robustness` replays the same garbage (Call-IDs, tags
//! and ports of the embedded valid messages still differ from run to run).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use common::engine::Engine;
use common::sip::{
    CallLeg, SipClient, SipMessage, TcpConn, branch, options_request, options_request_with, token,
};

const REPLY: Duration = Duration::from_secs(2);

/// Places one call by hand (INVITE, 200, ACK, BYE, 200) from a fresh socket.
fn normal_call(engine: &Engine) {
    let client = SipClient::new(engine.sip_addr());
    let mut leg = CallLeg::new(&client, "490");
    client.send(leg.invite());
    let answer = client.expect_final(REPLY, "INVITE");
    assert_eq!(answer.status(), Some(200), "INVITE: {answer:?}");
    leg.take_answer(&answer);
    client.send(leg.ack_2xx());
    client.send(leg.bye());
    let (reply, others) = client.recv_until(REPLY, |m| {
        m.is_final() && m.cseq().is_some_and(|c| c.1 == "BYE")
    });
    let reply = reply.unwrap_or_else(|| panic!("no answer to BYE; got {others:#?}"));
    assert_eq!(reply.status(), Some(200), "BYE: {reply:?}");
}

/// OPTIONS from a fresh socket, retried for up to `patience` (the engine may still be working
/// through a backlog).
fn options_ok(engine: &Engine, patience: Duration) -> SipMessage {
    let client = SipClient::new(engine.sip_addr());
    let deadline = Instant::now() + patience;
    loop {
        if let Some(reply) = client.options("490", Duration::from_millis(500)) {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "engine did not answer OPTIONS within {patience:?}\n{}",
            engine.log_tail(30)
        );
    }
}

// ----- 1. garbage flood ---------------------------------------------------------------------

const START_LINES: &[&str] = &[
    "INVITE sip:490@127.0.0.1 SIP/2.0",
    "OPTIONS sip:490@127.0.0.1 SIP/2.0",
    "BYE sip:490@127.0.0.1 SIP/2.0",
    "ACK sip:490@127.0.0.1 SIP/2.0",
    "CANCEL sip:490@127.0.0.1 SIP/2.0",
    "REGISTER sip:127.0.0.1 SIP/2.0",
    "UPDATE sip:490@127.0.0.1 SIP/2.0",
    "INFO sip:490@127.0.0.1 SIP/2.0",
    "FOO sip:490@127.0.0.1 SIP/2.0",
    "INVITE tel:+493641490 SIP/2.0",
    "INVITE sip:490@127.0.0.1 SIP/3.0",
    "SIP/2.0 200 OK",
    "SIP/2.0 100 Trying",
    "SIP/2.0 999 Whatever",
];

const HEADER_NAMES: &[&str] = &[
    "Via",
    "v",
    "From",
    "f",
    "To",
    "t",
    "Call-ID",
    "i",
    "CSeq",
    "Max-Forwards",
    "Contact",
    "m",
    "Content-Length",
    "l",
    "Content-Type",
    "c",
    "Require",
    "Supported",
    "k",
    "Session-Expires",
    "x",
    "Min-SE",
    "Accept",
    "Route",
    "Record-Route",
    "Authorization",
    "X-Junk",
];

/// Bytes that matter to a SIP parser, drawn more often than others.
const SPICY: &[u8] = b"\r\n \t:;,<>\"\\@=/?%0123456789zZ\x00\xff";

fn junk(rng: &mut StdRng, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            if rng.random_bool(0.5) {
                SPICY[rng.random_range(0..SPICY.len())]
            } else {
                rng.random()
            }
        })
        .collect()
}

/// A value for a known header: sometimes plausible, sometimes junk.
fn header_value(rng: &mut StdRng) -> Vec<u8> {
    const PLAUSIBLE: &[&str] = &[
        "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKjunk;rport",
        "SIP/2.0/UDP [::1]:5060;branch=z9hG4bK;received=;rport=",
        "<sip:a@127.0.0.1>;tag=1",
        "\"quoted \\\" name\" <sip:b@h;lr>;tag=",
        "1 INVITE",
        "4294967296 INVITE",
        "-1 BYE",
        "70",
        "0",
        "256",
        "99999999999999999999999999",
        "application/sdp",
        "timer, 100rel, foo",
        "90;refresher=uas",
        "0",
        "",
        ",,,,;;;;",
        "<<<<>>>>",
        "\"",
    ];
    if rng.random_bool(0.6) {
        PLAUSIBLE[rng.random_range(0..PLAUSIBLE.len())]
            .as_bytes()
            .to_vec()
    } else {
        let len = rng.random_range(0..120);
        junk(rng, len)
    }
}

/// A valid start line followed by random header junk (known names with odd values, random
/// lines, folds), sometimes with a body, sometimes without the closing empty line.
fn start_line_with_junk(rng: &mut StdRng) -> Vec<u8> {
    let mut out = START_LINES[rng.random_range(0..START_LINES.len())]
        .as_bytes()
        .to_vec();
    out.extend_from_slice(b"\r\n");
    for _ in 0..rng.random_range(0..25) {
        match rng.random_range(0..10) {
            0..=5 => {
                out.extend_from_slice(
                    HEADER_NAMES[rng.random_range(0..HEADER_NAMES.len())].as_bytes(),
                );
                out.extend_from_slice(if rng.random_bool(0.9) { b": " } else { b" :" });
                out.extend(header_value(rng));
            }
            6 => out.extend_from_slice(b" folded continuation"),
            _ => {
                let len = rng.random_range(0..80);
                out.extend(junk(rng, len));
            }
        }
        out.extend_from_slice(if rng.random_bool(0.9) { b"\r\n" } else { b"\n" });
    }
    if rng.random_bool(0.8) {
        out.extend_from_slice(b"\r\n");
        let len = rng.random_range(0..200);
        out.extend(junk(rng, len));
    }
    out
}

/// Every kind of garbage the flood sends from one socket (`part` of `parts`: the prefixes of
/// the valid INVITE are shared out between the sockets, so together they send every length).
fn garbage(rng: &mut StdRng, part: usize, parts: usize, client: &SipClient) -> Vec<Vec<u8>> {
    let (local, remote) = (client.local, client.remote);
    let mut out: Vec<Vec<u8>> = Vec::new();
    // Random bytes.
    for _ in 0..250 {
        let len = rng.random_range(1..1400);
        let mut bytes = vec![0u8; len];
        rng.fill(&mut bytes[..]);
        out.push(bytes);
    }
    // Truncated prefixes of a valid INVITE, at every length (none is a complete message).
    let invite = CallLeg::new(client, "490").invite().into_bytes();
    for cut in (1..invite.len()).filter(|n| n % parts == part) {
        out.push(invite[..cut].to_vec());
    }
    // Valid start lines with header junk.
    for _ in 0..250 {
        out.push(start_line_with_junk(rng));
    }
    // NUL bytes: inside a valid OPTIONS, and nothing but NULs.
    let options = options_request(local, remote, "490", &format!("nul-{}", token()), &branch());
    for _ in 0..50 {
        let mut bytes = options.clone().into_bytes();
        for _ in 0..rng.random_range(1..6) {
            let at = rng.random_range(0..bytes.len());
            bytes.insert(at, 0);
        }
        out.push(bytes);
    }
    for len in [1, 2, 64, 1500] {
        out.push(vec![0u8; len]);
    }
    // Very long header lines: within max_message_bytes, beyond it, and without any line end.
    for len in [8_000, 15_000, 17_000, 40_000, 60_000] {
        let padded = options.replace(
            "Content-Length: 0",
            &format!("X-Long: {}\r\nContent-Length: 0", "a".repeat(len)),
        );
        out.push(padded.into_bytes());
    }
    out.push(vec![b'A'; 50_000]);
    out.push(
        [
            b"OPTIONS sip:490@127.0.0.1 SIP/2.0\r\nVia: ".as_slice(),
            &[b'x'; 30_000],
        ]
        .concat(),
    );
    // Many headers, many Vias, absurd Content-Lengths.
    let many_vias = options.replace(
        "Max-Forwards: 70\r\n",
        &"Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKv\r\n".repeat(300),
    );
    out.push(many_vias.into_bytes());
    out.push(
        options
            .replace("Max-Forwards: 70\r\n", &"a: b\r\n".repeat(2_000))
            .into_bytes(),
    );
    for cl in ["99999999999999999999999999", "-5", "1e3", " ", "0x10"] {
        out.push(
            options
                .replace("Content-Length: 0", &format!("Content-Length: {cl}"))
                .into_bytes(),
        );
    }
    // Empty datagrams and lone line ends.
    for i in 0..100 {
        let bytes: &[u8] = match i % 5 {
            0 => b"",
            1 => b"\r\n",
            2 => b"\r\n\r\n",
            3 => b"\n",
            _ => b"\r",
        };
        out.push(bytes.to_vec());
    }
    out
}

#[test]
fn garbage_flood_leaves_the_engine_serving() {
    let seed: u64 = std::env::var("ROBUSTNESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("garbage flood seed: {seed} (replay with ROBUSTNESS_SEED={seed})");
    let engine = Engine::start(&[]);
    let remote = engine.sip_addr();
    const SOCKETS: usize = 4;
    let started = Instant::now();
    let results: Vec<(usize, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..SOCKETS)
            .map(|part| {
                scope.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(part as u64));
                    let client = SipClient::new(remote);
                    let mut datagrams = garbage(&mut rng, part, SOCKETS, &client);
                    // Interleave the kinds.
                    for i in (1..datagrams.len()).rev() {
                        let j = rng.random_range(0..=i);
                        datagrams.swap(i, j);
                    }
                    let mut replies = 0;
                    for (i, datagram) in datagrams.iter().enumerate() {
                        client.send(datagram);
                        // Pace a little so the engine parses the garbage rather than the kernel
                        // dropping it, and drain what it answers.
                        if i % 25 == 24 {
                            replies += client.recv_all(Duration::from_millis(2)).len();
                        }
                    }
                    replies += client.recv_all(Duration::from_millis(300)).len();
                    // A few TCP connections that get garbage too.
                    for _ in 0..5 {
                        let mut conn = TcpConn::connect(remote);
                        let len = rng.random_range(1..4000);
                        let _ = conn.write(&junk(&mut rng, len));
                        let mut junk_request = start_line_with_junk(&mut rng);
                        junk_request.extend_from_slice(b"\r\n\r\n");
                        let _ = conn.write(&junk_request);
                    }
                    (datagrams.len(), replies)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("flood thread"))
            .collect()
    });
    let elapsed = started.elapsed();
    let sent: usize = results.iter().map(|r| r.0).sum();
    let replies: usize = results.iter().map(|r| r.1).sum();
    println!(
        "sent {sent} garbage datagrams from {SOCKETS} sockets in {elapsed:?}; {replies} replies"
    );
    assert!(sent >= 2_000, "only {sent} datagrams generated");
    assert!(
        elapsed < Duration::from_secs(10),
        "the flood took {elapsed:?} (bound: 10 s)"
    );
    // The engine saw the garbage: the answerable part of it got answers (400 and friends).
    assert!(
        replies > 0,
        "no replies at all to {sent} datagrams: did any reach the engine?"
    );

    let mut engine = engine;
    assert!(
        engine.is_running(),
        "engine exited during the flood\n{}",
        engine.log_tail(40)
    );
    let reply = options_ok(&engine, Duration::from_secs(5));
    assert_eq!(
        reply.status(),
        Some(200),
        "OPTIONS after the flood: {reply:?}"
    );
    normal_call(&engine);
    // TCP still works too.
    let mut conn = TcpConn::connect(engine.sip_addr());
    let call_id = format!("tcp-{}", token());
    conn.write(options_request_with(conn.local, conn.remote, "TCP", &call_id, "").as_bytes())
        .expect("TCP write");
    let messages = conn.read_messages(REPLY, 1);
    assert!(
        messages
            .iter()
            .any(|m| m.status() == Some(200) && m.call_id().as_deref() == Some(&call_id)),
        "no 200 to OPTIONS over TCP after the flood: {messages:#?}"
    );
    engine.assert_no_panic();
}

// ----- 2. oversized messages ----------------------------------------------------------------

/// An OPTIONS of exactly `size` bytes (padded with an extension header after the headers the
/// answer needs).
fn options_of_size(
    local: SocketAddr,
    remote: SocketAddr,
    transport: &str,
    size: usize,
) -> (String, String) {
    let call_id = format!("big-{}", token());
    let base = options_request_with(local, remote, transport, &call_id, "X-Padding: \r\n");
    assert!(size > base.len(), "size {size} below the bare request");
    let padding = "p".repeat(size - base.len());
    let request = options_request_with(
        local,
        remote,
        transport,
        &call_id,
        &format!("X-Padding: {padding}\r\n"),
    );
    assert_eq!(request.len(), size);
    (request, call_id)
}

const SMALL_LIMIT: [(&str, &str); 1] = [("ZENTRALE_SIP__MAX_MESSAGE_BYTES", "2048")];

#[test]
fn oversized_udp_request_gets_413_and_one_within_the_limit_200() {
    let engine = Engine::start(&SMALL_LIMIT);
    let client = SipClient::new(engine.sip_addr());
    for (size, expected) in [(3000, 413), (2000, 200), (2048, 200), (2049, 413)] {
        let (request, call_id) = options_of_size(client.local, client.remote, "UDP", size);
        client.send(&request);
        let (reply, others) = client.recv_until(REPLY, |m| {
            m.is_final() && m.call_id().as_deref() == Some(call_id.as_str())
        });
        let reply = reply.unwrap_or_else(|| {
            panic!(
                "no answer to a {size}-byte OPTIONS (limit 2048); got {others:#?}\n{}",
                engine.log_tail(20)
            )
        });
        assert_eq!(
            reply.status(),
            Some(expected),
            "{size}-byte OPTIONS with sip.max_message_bytes = 2048: {reply:?}"
        );
    }
    engine.assert_no_panic();
}

/// Sends a 3000-byte OPTIONS over TCP (with `write`), expects the engine to close the
/// connection without answering it, then a new connection to work.
fn oversized_tcp(write: impl FnOnce(&mut TcpConn, &[u8])) {
    let engine = Engine::start(&SMALL_LIMIT);
    let mut conn = TcpConn::connect(engine.sip_addr());
    let (request, call_id) = options_of_size(conn.local, conn.remote, "TCP", 3000);
    write(&mut conn, request.as_bytes());
    let (closed, messages) = conn.wait_closed(Duration::from_secs(3));
    assert!(
        closed,
        "engine kept the TCP connection open after a 3000-byte message (limit 2048); it \
         answered: {messages:#?}\n{}",
        engine.log_tail(20)
    );
    assert!(
        !messages
            .iter()
            .any(|m| m.status() == Some(200) && m.call_id().as_deref() == Some(&call_id)),
        "engine answered the oversized message with 200: {messages:#?}"
    );
    let mut fresh = TcpConn::connect(engine.sip_addr());
    let call_id = format!("after-{}", token());
    fresh
        .write(options_request_with(fresh.local, fresh.remote, "TCP", &call_id, "").as_bytes())
        .expect("write on a new connection");
    let messages = fresh.read_messages(REPLY, 1);
    assert!(
        messages
            .iter()
            .any(|m| m.status() == Some(200) && m.call_id().as_deref() == Some(&call_id)),
        "a new TCP connection after the oversized one got no 200: {messages:#?}"
    );
    engine.assert_no_panic();
}

#[test]
fn oversized_tcp_message_written_at_once_closes_the_connection() {
    oversized_tcp(|conn, bytes| {
        let _ = conn.write(bytes);
    });
}

#[test]
fn oversized_tcp_message_written_in_1000_byte_pieces_closes_the_connection() {
    // No piece and no incomplete prefix is above the limit; the whole message is.
    oversized_tcp(|conn, bytes| {
        let _ = conn.write_slowly(bytes, 1000, Duration::from_millis(50));
    });
}

#[test]
fn oversized_tcp_message_whose_incomplete_head_exceeds_the_limit_closes_the_connection() {
    // 2500 bytes (no end of the header block yet), then the rest.
    oversized_tcp(|conn, bytes| {
        let _ = conn.write_slowly(bytes, 2500, Duration::from_millis(50));
    });
}

// ----- 3. TCP framing -----------------------------------------------------------------------

fn tcp_options(conn: &TcpConn) -> (String, String) {
    let call_id = format!("tcp-{}", token());
    (
        options_request_with(conn.local, conn.remote, "TCP", &call_id, ""),
        call_id,
    )
}

fn call_ids(messages: &[SipMessage]) -> Vec<(Option<u16>, String)> {
    messages
        .iter()
        .map(|m| (m.status(), m.call_id().unwrap_or_default()))
        .collect()
}

#[test]
fn tcp_request_in_single_bytes_gets_one_200() {
    let engine = Engine::start(&[]);
    let mut conn = TcpConn::connect(engine.sip_addr());
    let (request, call_id) = tcp_options(&conn);
    conn.write_slowly(request.as_bytes(), 1, Duration::from_millis(2))
        .expect("byte-wise write");
    let messages = conn.read_messages(Duration::from_secs(2), 2);
    assert_eq!(
        call_ids(&messages),
        vec![(Some(200), call_id)],
        "expected exactly one 200 to the byte-wise OPTIONS: {messages:#?}"
    );
    assert!(!conn.closed, "engine closed the connection");
    engine.assert_no_panic();
}

#[test]
fn tcp_pipelined_requests_and_keepalives_each_get_their_answer() {
    let engine = Engine::start(&[]);
    let mut conn = TcpConn::connect(engine.sip_addr());
    // Two requests in one write.
    let (first, first_id) = tcp_options(&conn);
    let (second, second_id) = tcp_options(&conn);
    conn.write(format!("{first}{second}").as_bytes())
        .expect("write");
    let messages = conn.read_messages(REPLY, 2);
    assert_eq!(
        call_ids(&messages),
        vec![(Some(200), first_id), (Some(200), second_id)],
        "two pipelined OPTIONS: {messages:#?}"
    );
    // CRLF keep-alives (RFC 5626 pings) before, between and after messages, in their own writes.
    let (third, third_id) = tcp_options(&conn);
    let (fourth, fourth_id) = tcp_options(&conn);
    for piece in [
        "\r\n\r\n",
        third.as_str(),
        "\r\n\r\n",
        "\r\n\r\n",
        fourth.as_str(),
        "\r\n\r\n",
    ] {
        conn.write(piece.as_bytes()).expect("write");
        std::thread::sleep(Duration::from_millis(30));
    }
    let messages = conn.read_messages(REPLY, 2);
    assert_eq!(
        call_ids(&messages),
        vec![(Some(200), third_id), (Some(200), fourth_id)],
        "OPTIONS between keep-alives: {messages:#?}"
    );
    // Nothing else (no error answer to a keep-alive), and the connection stays usable.
    let extra = conn.read_messages(Duration::from_millis(300), 1);
    assert!(extra.is_empty(), "unexpected messages: {extra:#?}");
    let (fifth, fifth_id) = tcp_options(&conn);
    conn.write(fifth.as_bytes()).expect("write");
    let messages = conn.read_messages(REPLY, 1);
    assert_eq!(call_ids(&messages), vec![(Some(200), fifth_id)]);
    engine.assert_no_panic();
}

#[test]
fn tcp_keepalives_alone_do_not_use_up_the_message_size_limit() {
    // A long-lived connection (a PBX trunk) pings with CRLFCRLF for hours before its next
    // request. 300 pings are 1200 bytes: more than sip.max_message_bytes = 1024, but none of
    // them is part of a message.
    let engine = Engine::start(&[("ZENTRALE_SIP__MAX_MESSAGE_BYTES", "1024")]);
    let mut conn = TcpConn::connect(engine.sip_addr());
    for _ in 0..300 {
        if conn.write(b"\r\n\r\n").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let (request, call_id) = tcp_options(&conn);
    let _ = conn.write(request.as_bytes());
    let messages = conn.read_messages(REPLY, 1);
    assert_eq!(
        call_ids(&messages),
        vec![(Some(200), call_id)],
        "OPTIONS after 300 keep-alives on one connection (closed by the engine: {}):\n{}",
        conn.closed,
        engine.log_tail(10)
    );
    engine.assert_no_panic();
}

// ----- 4. overload --------------------------------------------------------------------------

/// Sends INVITEs for `legs` at once; ACKs every final; returns the final status per Call-ID
/// and the 503s.
fn invite_all(
    client: &SipClient,
    legs: &mut [CallLeg],
    engine: &Engine,
) -> (HashMap<String, u16>, Vec<SipMessage>) {
    for leg in legs.iter() {
        client.send(leg.invite());
    }
    let mut finals: HashMap<String, u16> = HashMap::new();
    let mut refusals = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while finals.len() < legs.len() {
        let Some(msg) = client.recv(deadline.saturating_duration_since(Instant::now())) else {
            break;
        };
        let (Some(status), Some(call_id)) = (msg.status(), msg.call_id()) else {
            continue;
        };
        if status < 200 || msg.cseq().is_none_or(|c| c.1 != "INVITE") {
            continue;
        }
        let Some(leg) = legs.iter_mut().find(|l| l.call_id == call_id) else {
            continue;
        };
        leg.take_answer(&msg);
        if status == 200 {
            client.send(leg.ack_2xx());
        } else {
            client.send(leg.ack_non_2xx());
        }
        if finals.insert(call_id, status).is_none() && status == 503 {
            refusals.push(msg);
        }
    }
    assert_eq!(
        finals.len(),
        legs.len(),
        "only {} of {} INVITEs got a final answer: {finals:?}\n{}",
        finals.len(),
        legs.len(),
        engine.log_tail(20)
    );
    (finals, refusals)
}

fn count(finals: &HashMap<String, u16>, status: u16) -> usize {
    finals.values().filter(|s| **s == status).count()
}

fn hang_up_all(client: &SipClient, legs: &mut [CallLeg], finals: &HashMap<String, u16>) {
    for leg in legs.iter_mut() {
        if finals.get(&leg.call_id) != Some(&200) {
            continue;
        }
        client.send(leg.bye());
        let call_id = leg.call_id.clone();
        let (reply, others) = client.recv_until(REPLY, |m| {
            m.is_final()
                && m.cseq().is_some_and(|c| c.1 == "BYE")
                && m.call_id().as_deref() == Some(call_id.as_str())
        });
        let reply = reply.unwrap_or_else(|| panic!("no answer to BYE: {others:#?}"));
        assert_eq!(reply.status(), Some(200), "BYE: {reply:?}");
    }
}

#[test]
fn max_calls_admits_exactly_that_many_and_refuses_the_rest_with_retry_after() {
    let engine = Engine::start(&[
        ("ZENTRALE_SIP__MAX_CALLS", "5"),
        ("ZENTRALE_SIP__RETRY_AFTER_SECS", "7"),
    ]);
    let client = SipClient::new(engine.sip_addr());
    let mut legs: Vec<CallLeg> = (0..20).map(|_| CallLeg::new(&client, "490")).collect();
    let (finals, refusals) = invite_all(&client, &mut legs, &engine);
    assert_eq!(
        (count(&finals, 200), count(&finals, 503)),
        (5, 15),
        "20 concurrent INVITEs with sip.max_calls = 5: expected 5×200 and 15×503, got {finals:?}"
    );
    for refusal in &refusals {
        assert_eq!(
            refusal.header("retry-after").as_deref().map(str::trim),
            Some("7"),
            "503 must carry Retry-After: 7 (sip.retry_after_secs): {refusal:?}"
        );
    }

    // Once the five calls are over, there is room for five new ones (and no more).
    hang_up_all(&client, &mut legs, &finals);
    std::thread::sleep(Duration::from_millis(300));
    let mut again: Vec<CallLeg> = (0..6).map(|_| CallLeg::new(&client, "490")).collect();
    let (finals_again, _) = invite_all(&client, &mut again, &engine);
    assert_eq!(
        (count(&finals_again, 200), count(&finals_again, 503)),
        (5, 1),
        "after the first 5 calls ended, 6 new INVITEs: expected 5×200 and 1×503, got {finals_again:?}"
    );
    hang_up_all(&client, &mut again, &finals_again);
    engine.assert_no_panic();
}
