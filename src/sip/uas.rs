//! What we answer to a request that belongs to no running call — a pure function of the
//! request and the numbers we serve, so every rule here is unit-tested without sockets
//! (including against the RFC 4475 torture messages).

use std::borrow::Cow;

use super::headers::{UriError, option_tags, parse_request_uri};
use super::message::{HeaderName, Method, Request};
use super::reply::{ALLOW, SUPPORTED, reason_phrase};
use super::validate::RequestInfo;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Answer statelessly with this status, reason and extra headers.
    Answer {
        status: u16,
        reason: Cow<'static, str>,
        headers: Vec<(HeaderName, String)>,
    },
    /// An INVITE for one of our numbers (the Request-URI's user part): start a call (if load
    /// and shutdown allow).
    NewCall { dialled: String },
    /// Say nothing (an ACK without a transaction).
    Absorb,
    /// A REGISTER: the registrar answers it.
    Register,
}

fn answer(status: u16) -> Verdict {
    Verdict::Answer {
        status,
        reason: Cow::Borrowed(reason_phrase(status)),
        headers: Vec::new(),
    }
}

fn answer_with(status: u16, headers: Vec<(HeaderName, String)>) -> Verdict {
    Verdict::Answer {
        status,
        reason: Cow::Borrowed(reason_phrase(status)),
        headers,
    }
}

pub fn classify(request: &Request, info: &RequestInfo, numbers: &[String]) -> Verdict {
    match request.method {
        Method::Ack => return Verdict::Absorb,
        // Requests inside a dialog we do not have (RFC 3261 §12.2.2, §9.2).
        Method::Cancel | Method::Bye | Method::Info | Method::Update | Method::Prack => {
            return answer(481);
        }
        Method::Extension(_) => return answer_with(501, vec![(HeaderName::Allow, ALLOW.into())]),
        _ => {}
    }
    // RFC 3261 §8.2.2.1: a Request-URI scheme we do not serve gets 416.
    let uri = match parse_request_uri(&request.uri) {
        Ok(uri) => uri,
        Err(UriError::UnsupportedScheme) => return answer(416),
        Err(UriError::Malformed) => {
            return Verdict::Answer {
                status: 400,
                reason: Cow::Borrowed("Malformed Request-URI"),
                headers: Vec::new(),
            };
        }
    };
    // §8.2.2.3: every option tag in Require must be one we support.
    let unsupported: Vec<String> = request
        .headers
        .all(&HeaderName::Require)
        .flat_map(|v| option_tags(v))
        .filter(|tag| !SUPPORTED.split(", ").any(|s| s == tag))
        .collect();
    if !unsupported.is_empty() {
        return answer_with(
            420,
            vec![(
                HeaderName::Other("Unsupported".into()),
                unsupported.join(", "),
            )],
        );
    }
    match request.method {
        Method::Options => answer_with(
            200,
            vec![
                (HeaderName::Allow, ALLOW.into()),
                (HeaderName::Accept, "application/sdp".into()),
                (HeaderName::Supported, SUPPORTED.into()),
            ],
        ),
        Method::Register => Verdict::Register,
        Method::Invite => classify_invite(request, info, uri.user.as_deref(), numbers),
        _ => answer_with(405, vec![(HeaderName::Allow, ALLOW.into())]),
    }
}

fn classify_invite(
    request: &Request,
    info: &RequestInfo,
    dialled: Option<&str>,
    numbers: &[String],
) -> Verdict {
    // A To tag means a re-INVITE for a dialog we do not have (§12.2.2).
    if info.to.tag.is_some() {
        return answer(481);
    }
    // We bridge calls onward (B2BUA), so loop protection applies as for a proxy (§16.3). An
    // OPTIONS with Max-Forwards 0 ends at us and is answered normally (RFC 4475 §3.3.11).
    if info.max_forwards == Some(0) {
        return answer(483);
    }
    if !request.body.is_empty() {
        let content_type = request.headers.get_str(&HeaderName::ContentType).map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
        if content_type.as_deref() != Some("application/sdp") {
            return answer_with(415, vec![(HeaderName::Accept, "application/sdp".into())]);
        }
    }
    if let Some(accept) = request.headers.get(&HeaderName::Accept) {
        let types = option_tags(accept);
        let sdp_ok = types.is_empty()
            || types.iter().any(|t| {
                let t = t.split(';').next().unwrap_or("").trim();
                t == "application/sdp" || t == "application/*" || t == "*/*"
            });
        if !sdp_ok {
            return answer_with(
                406,
                vec![(
                    HeaderName::Other("Warning".into()),
                    "399 zentrale \"We can only describe sessions in application/sdp\"".into(),
                )],
            );
        }
    }
    match dialled {
        Some(number) if numbers.iter().any(|n| n == number) => Verdict::NewCall {
            dialled: number.to_string(),
        },
        _ => answer(404),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Instant;

    use bytes::Bytes;

    use super::*;
    use crate::sip::message::{Framing, Message, ParseError, parse};
    use crate::sip::registrar::{Registrar, RegistrarConfig};
    use crate::sip::transport::Flow;
    use crate::sip::validate::{Invalid, check_request};

    fn flow() -> Flow {
        Flow::Udp {
            peer: "127.0.0.1:5060".parse().expect("addr"),
        }
    }

    /// The answer the engine gives to one datagram when no call is running: Some(status),
    /// None for silence.
    fn answer_to(bytes: &[u8]) -> Option<u16> {
        let numbers = vec!["490".to_string()];
        match parse(Bytes::copy_from_slice(bytes), Framing::Datagram) {
            Ok((Message::Request(request), _)) => match check_request(&request) {
                Ok(info) => match classify(&request, &info, &numbers) {
                    Verdict::Answer { status, .. } => Some(status),
                    Verdict::NewCall { .. } => Some(200),
                    Verdict::Absorb => None,
                    // No agents here: a REGISTER can at best get its challenge.
                    Verdict::Register => Some(
                        Registrar::new(RegistrarConfig::default())
                            .handle_register(
                                &request,
                                &info,
                                &flow(),
                                &Default::default(),
                                Instant::now(),
                            )
                            .status,
                    ),
                },
                Err(Invalid::Reject(status, _)) if request.method != Method::Ack => Some(status),
                Err(_) => None,
            },
            Ok((Message::Response(_), _)) => None,
            Err(ParseError::BadRequest {
                request, status, ..
            }) if request.method != Method::Ack && request.headers.count(&HeaderName::Via) > 0 => {
                Some(status)
            }
            Err(_) => None,
        }
    }

    /// Whether `got` satisfies the manifest's expectation (vocabulary in the fixture README).
    fn satisfies(expected: &str, got: Option<u16>) -> bool {
        let final_answer = got.is_some_and(|s| s >= 200);
        match expected {
            "parse-ok" => final_answer && got != Some(400),
            "parse-ok-no-reply" | "must-drop" | "drop" => got.is_none(),
            "must-reject-400" => got == Some(400),
            "reject-400-or-tolerate" => final_answer,
            "reject-400-or-drop" => got.is_none() || got == Some(400),
            "reject-4xx" => got.is_some_and(|s| (400..500).contains(&s)),
            "reject-or-drop" | "prefer-reject" => got.is_none_or(|s| s >= 300),
            "any-or-drop" => true,
            other => match other.strip_prefix("must-respond-") {
                Some(codes) => codes.split("-or-").any(|c| c.parse::<u16>().ok() == got),
                None => panic!("unknown expectation {other}"),
            },
        }
    }

    #[test]
    fn rfc4475_torture_messages_get_the_expected_answer() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rfc4475");
        let mut failures = Vec::new();
        let mut count = 0;
        for manifest in [
            format!("{dir}/manifest.tsv"),
            format!("{dir}/variants/manifest.tsv"),
        ] {
            let base = manifest.trim_end_matches("/manifest.tsv").to_string();
            let text = std::fs::read_to_string(&manifest).expect("manifest");
            for line in text.lines().skip(1) {
                let cols: Vec<&str> = line.split('\t').collect();
                let (name, expected) = (cols[0], cols[2]);
                let bytes = std::fs::read(format!("{base}/{name}.dat")).expect("fixture");
                let got = answer_to(&bytes);
                // zeromf is an OPTIONS to us; the manifest's parse-ok (200) is what we give.
                if !satisfies(expected, got) {
                    failures.push(format!("{name}: expected {expected}, got {got:?}"));
                }
                count += 1;
            }
        }
        assert_eq!(count, 50, "49 RFC messages + 1 variant");
        assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
    }

    #[test]
    fn specific_answers() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rfc4475");
        let expect: HashMap<&str, Option<u16>> = [
            ("wsinv", Some(481)),
            ("intmeth", Some(501)),
            ("esc02", Some(501)),
            ("insuf", Some(400)),
            ("unkscm", Some(416)),
            ("bext01", Some(420)),
            ("invut", Some(415)),
            ("regaut01", Some(401)),
            ("zeromf", Some(200)),
            ("inv2543", Some(404)),
            ("bigcode", None),
        ]
        .into_iter()
        .collect();
        for (name, status) in expect {
            let bytes = std::fs::read(format!("{dir}/{name}.dat")).expect("fixture");
            assert_eq!(answer_to(&bytes), status, "{name}");
        }
    }

    #[test]
    fn hotline_numbers_start_calls() {
        let invite = "INVITE sip:490@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
            From: <sip:a@h>;tag=1\r\nTo: <sip:490@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
            Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(answer_to(invite.as_bytes()), Some(200));
        let other = invite.replace("sip:490@127", "sip:491@127");
        assert_eq!(answer_to(other.as_bytes()), Some(404));
        let loops = invite.replace("Max-Forwards: 70", "Max-Forwards: 0");
        assert_eq!(answer_to(loops.as_bytes()), Some(483));
    }
}
