//! Property tests for everything the engine runs on bytes from the network before a call task
//! exists: `sip::message::parse` (datagram and stream framing), `sip::validate::check_request`,
//! `sip::uas::classify`, the stateless answer (`sip::reply::reply` + `write_response`), the
//! header parsers in `sip::headers`, and the SDP offer parser with the answer built from it.
//!
//! Inputs: arbitrary bytes; mutations (bit flips, byte overwrites, insertions of random bytes
//! or SIP-significant tokens, deletions, truncations, duplications) of valid messages and of
//! the RFC 4475 torture messages in `tests/fixtures/rfc4475/`; and generated requests and SDP.
//!
//! Properties: nothing panics; datagram framing uses the whole buffer and never says
//! "incomplete"; stream framing uses at most the buffer and re-parsing exactly the bytes it
//! used gives the same message; a parsed request written back with `write_request` parses to
//! the same method, URI, headers and body; every answer the endpoint would send parses as a
//! response with that status; an accepted SDP offer gets an answer that parses again.
//!
//! Cases per property: `PROPTEST_CASES` (default 1000, a few seconds in a debug build).
//! Failures are not persisted to files; proptest prints the minimal failing input.

use std::sync::OnceLock;

use bytes::Bytes;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;

use zentrale::media::sdp::{describe, parse_offer};
use zentrale::sip::headers::{
    option_tags, parse_cseq, parse_host_port, parse_max_forwards, parse_name_addr,
    parse_request_uri, parse_via_list, split_commas, unescape,
};
use zentrale::sip::message::{
    Framing, HeaderName, Message, ParseError, Request, parse, write_request, write_response,
};
use zentrale::sip::registrar::{Registrar, RegistrarConfig};
use zentrale::sip::reply::reply;
use zentrale::sip::transport::Flow;
use zentrale::sip::uas::{Verdict, classify};
use zentrale::sip::validate::{Invalid, check_request};

fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

fn numbers() -> Vec<String> {
    ["490", "+493641490", "03641490"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

// ----- the checks every input goes through --------------------------------------------------

/// The stateless answer the endpoint would send must be a parseable response.
fn check_answer(request: &Request, status: u16, reason: &str) -> Result<(), TestCaseError> {
    let response = reply(request, status, reason, Some("fuzztag"));
    let bytes = write_response(&response);
    match parse(bytes.clone(), Framing::Datagram) {
        Ok((Message::Response(again), _)) => {
            prop_assert_eq!(again.status, status);
            Ok(())
        }
        other => Err(TestCaseError::fail(format!(
            "our {status} answer does not parse as a response: {other:?}\n{:?}",
            String::from_utf8_lossy(&bytes)
        ))),
    }
}

/// What the endpoint does with a parsed request that belongs to no call.
fn check_request_path(request: &Request) -> Result<(), TestCaseError> {
    match check_request(request) {
        Ok(info) => {
            prop_assert!(!info.vias.is_empty(), "valid request without Via");
            match classify(request, &info, &numbers()) {
                Verdict::Answer { status, reason, .. } => {
                    prop_assert!((200..700).contains(&status), "status {}", status);
                    check_answer(request, status, &reason)?;
                }
                Verdict::Register => {
                    let flow = Flow::Udp {
                        peer: "127.0.0.1:5060".parse().expect("addr"),
                    };
                    let answer = Registrar::new(RegistrarConfig::default()).handle_register(
                        request,
                        &info,
                        &flow,
                        &Default::default(),
                        std::time::Instant::now(),
                    );
                    prop_assert!(
                        [400, 401, 404].contains(&answer.status),
                        "REGISTER without agents answered {}",
                        answer.status
                    );
                    check_answer(request, answer.status, &answer.reason)?;
                }
                Verdict::NewCall { .. } | Verdict::Absorb => {}
            }
        }
        Err(Invalid::Reject(status, reason)) => {
            prop_assert!((400..700).contains(&status), "status {}", status);
            check_answer(request, status, &reason)?;
        }
        Err(Invalid::Drop(_)) => {}
    }
    Ok(())
}

fn without_content_length(request: &Request) -> Vec<(String, Bytes)> {
    request
        .headers
        .0
        .iter()
        .filter(|h| h.name != HeaderName::ContentLength)
        .map(|h| (h.name.as_str().to_string(), h.value.clone()))
        .collect()
}

/// A parsed request, serialised and parsed again, is the same request.
fn check_round_trip(request: &Request) -> Result<(), TestCaseError> {
    let bytes = write_request(request);
    let again = match parse(bytes.clone(), Framing::Datagram) {
        Ok((Message::Request(again), _)) => again,
        other => {
            return Err(TestCaseError::fail(format!(
                "write_request output does not parse as a request: {other:?}\n{:?}",
                String::from_utf8_lossy(&bytes)
            )));
        }
    };
    prop_assert_eq!(&again.method, &request.method);
    prop_assert_eq!(&again.uri, &request.uri);
    let (before, after) = (
        without_content_length(request),
        without_content_length(&again),
    );
    prop_assert_eq!(before.len(), after.len(), "header count changed");
    prop_assert_eq!(before, after, "headers changed");
    prop_assert_eq!(again.headers.count(&HeaderName::ContentLength), 1);
    prop_assert_eq!(&again.body, &request.body);
    Ok(())
}

fn check_bytes(input: &[u8]) -> Result<(), TestCaseError> {
    let buf = Bytes::copy_from_slice(input);

    match parse(buf.clone(), Framing::Datagram) {
        Ok((message, used)) => {
            prop_assert_eq!(
                used,
                buf.len(),
                "datagram framing must use the whole datagram"
            );
            if let Message::Request(request) = &message {
                check_request_path(request)?;
                check_round_trip(request)?;
            }
        }
        Err(ParseError::BadRequest {
            request,
            status,
            reason,
        }) => {
            prop_assert!((400..700).contains(&status), "status {}", status);
            check_answer(&request, status, &reason)?;
        }
        Err(ParseError::Incomplete) => {
            return Err(TestCaseError::fail(
                "datagram framing answered Incomplete (only streams can be incomplete)",
            ));
        }
        Err(ParseError::Garbage(_)) => {}
    }

    match parse(buf.clone(), Framing::Stream) {
        Ok((message, used)) => {
            prop_assert!(used <= buf.len(), "used {} > buffer {}", used, buf.len());
            prop_assert!(used > 0, "a message of 0 bytes");
            // Framing is consistent: exactly the bytes used make the same message.
            match parse(buf.slice(..used), Framing::Stream) {
                Ok((again, used_again)) => {
                    prop_assert_eq!(used_again, used);
                    prop_assert_eq!(&again, &message);
                }
                other => {
                    return Err(TestCaseError::fail(format!(
                        "the {used} bytes stream framing used do not parse alone: {other:?}"
                    )));
                }
            }
            if let Message::Request(request) = &message {
                check_request_path(request)?;
                check_round_trip(request)?;
            }
        }
        Err(ParseError::BadRequest {
            request,
            status,
            reason,
        }) => {
            prop_assert!((400..700).contains(&status), "status {}", status);
            check_answer(&request, status, &reason)?;
        }
        Err(ParseError::Incomplete) | Err(ParseError::Garbage(_)) => {}
    }
    Ok(())
}

// ----- seeds and mutations ------------------------------------------------------------------

const SDP_OFFER: &str = "v=0\r\no=test 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
    t=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
    a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n";

fn valid_messages() -> Vec<Vec<u8>> {
    let head = |method: &str, cseq: u32, to_tag: &str, extra: &str| {
        format!(
            "{method} sip:490@127.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;rport;branch=z9hG4bK-abc{cseq}\r\n\
             Max-Forwards: 70\r\n\
             From: \"Caller\" <sip:0364155501@127.0.0.1:5070>;tag=from1\r\n\
             To: <sip:490@127.0.0.1:5060>{to_tag}\r\n\
             Call-ID: fuzz-1@127.0.0.1\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:caller@127.0.0.1:5070>\r\n\
             {extra}"
        )
    };
    let mut out = vec![
        format!(
            "{}Supported: timer\r\nSession-Expires: 1800;refresher=uac\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP_OFFER}",
            head("INVITE", 1, "", ""),
            SDP_OFFER.len()
        ),
        format!("{}Content-Length: 0\r\n\r\n", head("INVITE", 1, "", "")),
        format!(
            "{}Accept: application/sdp\r\nContent-Length: 0\r\n\r\n",
            head("OPTIONS", 1, "", "")
        ),
        format!(
            "{}Content-Length: 0\r\n\r\n",
            head("ACK", 1, ";tag=to1", "")
        ),
        format!(
            "{}Content-Length: 0\r\n\r\n",
            head("BYE", 2, ";tag=to1", "")
        ),
        format!("{}Content-Length: 0\r\n\r\n", head("CANCEL", 1, "", "")),
        format!(
            "{}Content-Type: application/dtmf-relay\r\nContent-Length: 10\r\n\r\nSignal=5\r\n",
            head("INFO", 3, ";tag=to1", "")
        ),
        format!(
            "{}Session-Expires: 90;refresher=uac\r\nContent-Length: 0\r\n\r\n",
            head("UPDATE", 4, ";tag=to1", "")
        ),
        format!(
            "{}Expires: 3600\r\nContent-Length: 0\r\n\r\n",
            head("REGISTER", 1, "", "")
        ),
        format!(
            "{}Require: foo, timer\r\nContent-Length: 0\r\n\r\n",
            head("INVITE", 1, "", "")
        ),
        // Compact forms, folding, several Vias on one line, no Content-Length (datagram body).
        "INVITE tel:+493641490 SIP/2.0\r\nv: SIP/2.0/UDP a.example;branch=z9hG4bK1,\r\n \
         SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bK2;received=192.0.2.1\r\n\
         f: <sip:a@a.example>;tag=x\r\nt: sip:490@b.example\r\ni: compact@a\r\n\
         CSeq: 7\r\n\tINVITE\r\nk: timer\r\nx: 120\r\nc: application/sdp\r\n\r\nv=0\r\n"
            .to_string(),
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKr\r\n\
         From: <sip:490@127.0.0.1>;tag=a\r\nTo: <sip:c@127.0.0.1>;tag=b\r\nCall-ID: r\r\n\
         CSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
            .to_string(),
    ];
    // Two messages in one buffer (stream framing must stop after the first).
    out.push(format!("{}{}", out[2], out[4]));
    out.into_iter().map(String::into_bytes).collect()
}

/// The valid messages and every RFC 4475 fixture (and variant).
fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut all = valid_messages();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rfc4475");
        let mut fixtures = 0;
        for sub in ["", "/variants"] {
            let Ok(entries) = std::fs::read_dir(format!("{dir}{sub}")) else {
                continue;
            };
            let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for path in paths {
                if path.extension().is_some_and(|e| e == "dat") {
                    all.push(std::fs::read(&path).expect("read fixture"));
                    fixtures += 1;
                }
            }
        }
        assert!(
            fixtures >= 49,
            "only {fixtures} RFC 4475 fixtures found in {dir}"
        );
        all
    })
}

/// Byte sequences that matter to a SIP parser.
const TOKENS: &[&str] = &[
    "\r\n",
    "\r\n\r\n",
    "\n",
    "\r",
    "\r\n ",
    "\r\n\t",
    " ",
    "  ",
    "\t",
    ":",
    ";",
    ",",
    "=",
    "<",
    ">",
    "\"",
    "\\",
    "%",
    "%00",
    "%zz",
    "\0",
    "\u{7f}",
    "\u{ff}",
    "@",
    "[",
    "]",
    "[::1]",
    ":65536",
    ":0",
    "sip:",
    "sips:",
    "tel:",
    "SIP/2.0",
    "SIP/2.0/UDP",
    ";branch=z9hG4bK",
    ";tag=",
    ";rport",
    ";received=",
    "Via: SIP/2.0/UDP h\r\n",
    "Content-Length: 99999999999999999999999\r\n",
    "l: 0\r\n",
    "Content-Length: 5\r\n",
    "CSeq: 4294967296 INVITE\r\n",
    "Max-Forwards: 0\r\n",
    "Require: timer, x\r\n",
    "Session-Expires: 0\r\n",
    "To: <sip:490@h>;tag=1\r\n",
    "Content-Type: text/plain\r\n",
    "\u{e4}\u{1f600}",
];

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(Index, u8),
    Overwrite(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Truncate(Index),
    Duplicate(Index, usize),
}

fn insertion() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::sample::select(TOKENS).prop_map(|t| t.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 1..8),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Overwrite(i, b)),
        4 => (any::<Index>(), insertion()).prop_map(|(i, bytes)| Mutation::Insert(i, bytes)),
        2 => (any::<Index>(), 1usize..40).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), 1usize..60).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

fn apply(buf: &mut Vec<u8>, mutation: &Mutation) {
    if buf.is_empty() {
        if let Mutation::Insert(_, bytes) = mutation {
            buf.extend_from_slice(bytes);
        }
        return;
    }
    let len = buf.len();
    match mutation {
        Mutation::FlipBit(i, bit) => buf[i.index(len)] ^= 1 << bit,
        Mutation::Overwrite(i, b) => buf[i.index(len)] = *b,
        Mutation::Insert(i, bytes) => {
            let at = i.index(len + 1);
            buf.splice(at..at, bytes.iter().copied());
        }
        Mutation::Delete(i, n) => {
            let at = i.index(len);
            buf.drain(at..(at + n).min(len));
        }
        Mutation::Truncate(i) => buf.truncate(i.index(len)),
        Mutation::Duplicate(i, n) => {
            let at = i.index(len);
            let piece: Vec<u8> = buf[at..(at + n).min(len)].to_vec();
            buf.splice(at..at, piece);
        }
    }
}

// ----- generated requests -------------------------------------------------------------------

const START_LINES: &[&str] = &[
    "INVITE sip:490@127.0.0.1 SIP/2.0",
    "INVITE sip:+493641490@h;user=phone SIP/2.0",
    "INVITE tel:03641490 SIP/2.0",
    "INVITE sips:490@h SIP/2.0",
    "INVITE http://h/ SIP/2.0",
    "INVITE sip:%34%39%30@h SIP/2.0",
    "OPTIONS sip:h SIP/2.0",
    "REGISTER sip:h SIP/2.0",
    "BYE sip:490@h SIP/2.0",
    "ACK sip:490@h SIP/2.0",
    "CANCEL sip:490@h SIP/2.0",
    "UPDATE sip:490@h SIP/2.0",
    "INFO sip:490@h SIP/2.0",
    "PRACK sip:490@h SIP/2.0",
    "MESSAGE sip:490@h SIP/2.0",
    "NEWMETHOD sip:490@h SIP/2.0",
    "INVITE sip:490@h SIP/2.1",
    "INVITE  sip:490@h SIP/2.0",
    "SIP/2.0 200 OK",
    "SIP/2.0 487 Request Terminated",
];

const NAMES: &[&str] = &[
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
    "Proxy-Require",
    "Supported",
    "k",
    "Accept",
    "Session-Expires",
    "x",
    "Min-SE",
    "Route",
    "Record-Route",
    "Authorization",
    "Expires",
    "X-Other",
];

const VALUES: &[&str] = &[
    "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1",
    "SIP/2.0/TCP h;branch=z9hG4bK2;rport=5060;received=10.0.0.1",
    "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK3, SIP/2.0/UDP h2",
    "SIP/2.0/UDP h:99999",
    "SIP/2.0/UDP",
    "<sip:a@h>;tag=1",
    "\"A \\\"B\\\" C\" <sip:a@h;transport=tcp>;tag=2",
    "sip:490@h",
    "<sip:490@h>;tag=to1",
    "<sip:a@h",
    "\"unterminated <sip:a@h>",
    "1 INVITE",
    "2 BYE",
    "3 OPTIONS",
    "4294967295 ACK",
    "4294967296 INVITE",
    "-1 INVITE",
    "70",
    "0",
    "255",
    "256",
    "application/sdp",
    "application/sdp;charset=utf-8, text/plain",
    "text/plain",
    "timer",
    "timer, 100rel",
    "foo",
    "90",
    "1800;refresher=uas",
    "",
    "abc@h",
];

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::sample::select(VALUES).prop_map(|v| v.as_bytes().to_vec()),
        2 => "[ -~]{0,40}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..40),
    ]
}

fn generated_message() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(START_LINES),
        prop::collection::vec((prop::sample::select(NAMES), header_value()), 0..16),
        prop_oneof![
            Just(Vec::new()),
            Just(SDP_OFFER.as_bytes().to_vec()),
            prop::collection::vec(any::<u8>(), 0..64),
        ],
        any::<bool>(),
    )
        .prop_map(|(start, headers, body, lf_only)| {
            let eol: &[u8] = if lf_only { b"\n" } else { b"\r\n" };
            let mut out = start.as_bytes().to_vec();
            out.extend_from_slice(eol);
            for (name, value) in headers {
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(&value);
                out.extend_from_slice(eol);
            }
            out.extend_from_slice(eol);
            out.extend_from_slice(&body);
            out
        })
}

/// A request that passes `check_request`, so `classify` sees every branch.
fn well_formed_request() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(&START_LINES[..16]),
        prop::sample::select(&["", ";tag=to1"][..]),
        prop::collection::vec((prop::sample::select(&NAMES[10..]), header_value()), 0..6),
        prop_oneof![
            Just(None),
            Just(Some(("application/sdp", SDP_OFFER.to_string()))),
            Just(Some(("text/plain", "hi".to_string()))),
        ],
    )
        .prop_map(|(start, to_tag, extra, body)| {
            let method = start.split(' ').next().unwrap_or("INVITE");
            let mut out = format!(
                "{start}\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-g\r\n\
                 From: <sip:c@127.0.0.1>;tag=f\r\nTo: <sip:490@127.0.0.1>{to_tag}\r\n\
                 Call-ID: gen@127.0.0.1\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n"
            )
            .into_bytes();
            for (name, value) in extra {
                // Content-Length is the generator's business here.
                if name.eq_ignore_ascii_case("content-length") || name == "l" {
                    continue;
                }
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(&value);
                out.extend_from_slice(b"\r\n");
            }
            match body {
                Some((content_type, body)) => out.extend_from_slice(
                    format!(
                        "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                ),
                None => out.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
            }
            out
        })
}

// ----- SDP ----------------------------------------------------------------------------------

const ENCODINGS: &[&str] = &[
    "PCMU/8000",
    "PCMA/8000",
    "pcmu/8000",
    "telephone-event/8000",
    "G729/8000",
    "opus/48000/2",
    "PCMU/16000",
    "",
];

fn generated_sdp() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(0u8..128, 0..6),
        prop::collection::vec((0u8..128, prop::sample::select(ENCODINGS)), 0..6),
        prop::sample::select(&["", "sendrecv", "sendonly", "recvonly", "inactive", "bogus"][..]),
        0u16..=65535,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(formats, rtpmaps, direction, port, video_first, session_c)| {
                let mut sdp = String::from("v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\n");
                if session_c {
                    sdp.push_str("c=IN IP4 192.0.2.1\r\n");
                }
                sdp.push_str("t=0 0\r\n");
                if video_first {
                    sdp.push_str("m=video 5004 RTP/AVP 31\r\na=sendonly\r\n");
                }
                let formats: Vec<String> = formats.iter().map(u8::to_string).collect();
                sdp.push_str(&format!("m=audio {port} RTP/AVP {}\r\n", formats.join(" ")));
                for (pt, encoding) in rtpmaps {
                    sdp.push_str(&format!("a=rtpmap:{pt} {encoding}\r\n"));
                }
                if !direction.is_empty() {
                    sdp.push_str(&format!("a={direction}\r\n"));
                }
                sdp
            },
        )
}

/// An accepted offer gets an answer (built as the engine builds it) that parses again, keeps
/// the first codec and mirrors the direction.
fn check_sdp(body: &[u8]) -> Result<(), TestCaseError> {
    let Ok(offer) = parse_offer(body) else {
        return Ok(());
    };
    prop_assert!(!offer.codecs.is_empty(), "accepted offer without codecs");
    let ip = "127.0.0.1".parse().expect("ip");
    let answer = describe(ip, 20_000, 7, 8, Some(&offer));
    let answer = String::from_utf8(answer.to_vec())
        .map_err(|_| TestCaseError::fail("our answer is not UTF-8"))?;
    let again = parse_offer(answer.as_bytes()).map_err(|e| {
        TestCaseError::fail(format!("our answer does not parse ({e:?}):\n{answer}"))
    })?;
    prop_assert_eq!(
        again.codecs.first(),
        offer.codecs.first(),
        "answer:\n{}",
        answer
    );
    prop_assert_eq!(
        again.direction,
        offer.direction.answer(),
        "answer:\n{}",
        answer
    );
    Ok(())
}

// ----- the properties -----------------------------------------------------------------------

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check_bytes(&bytes)?;
    }

    #[test]
    fn mutated_valid_and_torture_messages(
        seed in any::<Index>(),
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        let seeds = seeds();
        let mut bytes = seeds[seed.index(seeds.len())].clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        check_bytes(&bytes)?;
    }

    #[test]
    fn generated_messages(bytes in generated_message()) {
        check_bytes(&bytes)?;
    }

    #[test]
    fn generated_well_formed_requests(bytes in well_formed_request()) {
        check_bytes(&bytes)?;
    }

    #[test]
    fn header_parsers(value in prop_oneof![
        prop::sample::select(VALUES).prop_map(|v| v.as_bytes().to_vec()),
        "[ -~]{0,60}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..60),
    ], mutations in prop::collection::vec(mutation(), 0..4)) {
        let mut value = value;
        for m in &mutations {
            apply(&mut value, m);
        }
        let _ = parse_via_list(&value).collect::<Option<Vec<_>>>();
        let _ = parse_name_addr(&value);
        let _ = parse_cseq(&value);
        let _ = parse_max_forwards(&value);
        let _ = parse_request_uri(&value);
        let _ = option_tags(&value);
        let _ = split_commas(&value).count();
        let text = String::from_utf8_lossy(&value);
        let _ = unescape(&text);
        let _ = parse_host_port(&text);
    }

    #[test]
    fn sdp_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_sdp(&bytes)?;
    }

    #[test]
    fn sdp_generated_offers(sdp in generated_sdp(), mutations in prop::collection::vec(mutation(), 0..3)) {
        let mut bytes = sdp.into_bytes();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        check_sdp(&bytes)?;
    }
}

/// Every seed as it is (no mutation) passes the checks, and the RFC 4475 fixtures are there.
#[test]
fn seeds_pass_unmutated() {
    for (i, seed) in seeds().iter().enumerate() {
        if let Err(e) = check_bytes(seed) {
            panic!("seed {i} fails: {e}\n{}", String::from_utf8_lossy(seed));
        }
    }
}

/// The prefixes of every seed (the stream transport sees every one of them).
#[test]
fn every_prefix_of_every_seed() {
    for seed in seeds() {
        for cut in 0..=seed.len() {
            if let Err(e) = check_bytes(&seed[..cut]) {
                panic!(
                    "prefix of {cut} bytes fails: {e}\n{:?}",
                    String::from_utf8_lossy(&seed[..cut])
                );
            }
        }
    }
}
