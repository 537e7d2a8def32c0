//! Request validation (RFC 3261 §8.2, §16.3 for what a UAS checks before acting).
//!
//! [`check_request`] turns a tokenised request into the typed facts the endpoint and the call
//! need, or says precisely why it must be refused. Reason phrases name the problem ("Missing
//! Call-ID, From header") because the peer's operator reads them in their traces.

use bytes::Bytes;

use super::headers::{
    NameAddr, Via, parse_cseq, parse_max_forwards, parse_name_addr, parse_via_list,
};
use super::message::{HeaderName, Method, Request};

/// The typed core of a valid request.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub call_id: Bytes,
    pub cseq: u32,
    pub from: NameAddr,
    pub to: NameAddr,
    /// All Via values, topmost first.
    pub vias: Vec<Via>,
    pub max_forwards: Option<u8>,
}

impl RequestInfo {
    pub fn top_via(&self) -> &Via {
        // check_request guarantees at least one Via.
        &self.vias[0]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// No way to answer (no Via to send a response along): drop.
    Drop(&'static str),
    /// Answer with this status and reason phrase.
    Reject(u16, String),
}

fn reject(status: u16, reason: impl Into<String>) -> Invalid {
    Invalid::Reject(status, reason.into())
}

pub fn check_request(request: &Request) -> Result<RequestInfo, Invalid> {
    let headers = &request.headers;
    if headers.count(&HeaderName::Via) == 0 {
        return Err(Invalid::Drop("request without Via"));
    }
    let missing: Vec<&str> = [
        HeaderName::CallId,
        HeaderName::CSeq,
        HeaderName::From,
        HeaderName::To,
    ]
    .iter()
    .filter(|name| headers.count(name) == 0)
    .map(|name| name.as_str())
    .collect();
    if !missing.is_empty() {
        let noun = if missing.len() == 1 {
            "header"
        } else {
            "headers"
        };
        return Err(reject(
            400,
            format!("Missing {} {noun}", missing.join(", ")),
        ));
    }
    // RFC 4475 §3.3.8 (multi01): single-valued headers must appear once.
    for name in [
        HeaderName::CallId,
        HeaderName::CSeq,
        HeaderName::From,
        HeaderName::To,
        HeaderName::MaxForwards,
    ] {
        if headers.count(&name) > 1 {
            return Err(reject(400, format!("Multiple {} headers", name.as_str())));
        }
    }
    let mut vias = Vec::with_capacity(4);
    for value in headers.all(&HeaderName::Via) {
        for via in parse_via_list(value) {
            match via {
                Some(via) => vias.push(via),
                None => return Err(reject(400, "Malformed Via header")),
            }
        }
    }
    let field = |name: &HeaderName| headers.get(name).cloned().unwrap_or_default();
    let from = parse_name_addr(&field(&HeaderName::From))
        .ok_or_else(|| reject(400, "Malformed From header"))?;
    let to = parse_name_addr(&field(&HeaderName::To))
        .ok_or_else(|| reject(400, "Malformed To header"))?;
    let call_id = field(&HeaderName::CallId);
    if call_id.is_empty() || call_id.iter().any(|b| b.is_ascii_whitespace()) {
        return Err(reject(400, "Malformed Call-ID header"));
    }
    let (cseq, cseq_method) = parse_cseq(&field(&HeaderName::CSeq))
        .ok_or_else(|| reject(400, "Malformed CSeq header"))?;
    let max_forwards = match headers.get(&HeaderName::MaxForwards) {
        Some(v) => Some(
            parse_max_forwards(v).ok_or_else(|| reject(400, "Malformed Max-Forwards header"))?,
        ),
        None => None,
    };
    // An extension method is well-formed; it gets 501 (RFC 4475 §3.1.1.2, §3.1.2.18 prefers 501
    // over 400 even when CSeq disagrees).
    if let Method::Extension(_) = request.method {
        return Err(reject(501, "Not Implemented"));
    }
    if cseq_method != request.method {
        return Err(reject(400, "CSeq method does not match the request method"));
    }
    Ok(RequestInfo {
        call_id,
        cseq,
        from,
        to,
        vias,
        max_forwards,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{Framing, Message, ParseError, parse};

    fn request(text: &str) -> Request {
        match parse(Bytes::copy_from_slice(text.as_bytes()), Framing::Datagram) {
            Ok((Message::Request(r), _)) => r,
            other => panic!("{other:?}"),
        }
    }

    const GOOD: &str = "INVITE sip:490@h SIP/2.0\r\nVia: SIP/2.0/UDP h:5061;branch=z9hG4bK1\r\n\
        From: <sip:a@h>;tag=1\r\nTo: <sip:490@h>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\
        Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn a_good_request_yields_its_facts() {
        let info = check_request(&request(GOOD)).expect("valid");
        assert_eq!(&info.call_id[..], b"c1");
        assert_eq!(info.cseq, 1);
        assert_eq!(info.from.tag.as_deref(), Some("1"));
        assert_eq!(info.to.tag, None);
        assert_eq!(info.top_via().port, Some(5061));
        assert_eq!(info.max_forwards, Some(70));
    }

    #[test]
    fn each_problem_has_its_reason() {
        let cases = [
            ("Call-ID: c1\r\n", "", "Missing Call-ID header"),
            (
                "CSeq: 1 INVITE\r\n",
                "CSeq: 1 BYE\r\n",
                "CSeq method does not match",
            ),
            (
                "CSeq: 1 INVITE\r\n",
                "CSeq: 1 INVITE\r\nCSeq: 2 INVITE\r\n",
                "Multiple CSeq",
            ),
            (
                "Max-Forwards: 70\r\n",
                "Max-Forwards: 300\r\n",
                "Malformed Max-Forwards",
            ),
            (
                "Via: SIP/2.0/UDP h:5061;branch=z9hG4bK1\r\n",
                "Via: SIP/2.0/UDP h;;,;,,\r\nVia: SIP/2.0/UDP h\r\n",
                "Malformed Via",
            ),
            (
                "From: <sip:a@h>;tag=1\r\n",
                "From: \"x <sip:a@h>\r\n",
                "Malformed From",
            ),
        ];
        for (from, to, reason) in cases {
            let text = GOOD.replace(from, to);
            match check_request(&request(&text)) {
                Err(Invalid::Reject(400, r)) => assert!(r.contains(reason), "{r} vs {reason}"),
                other => panic!("{reason}: {other:?}"),
            }
        }
        let no_via = GOOD.replace("Via: SIP/2.0/UDP h:5061;branch=z9hG4bK1\r\n", "");
        assert!(matches!(
            check_request(&request(&no_via)),
            Err(Invalid::Drop(_))
        ));
        let ext = GOOD.replace("INVITE sip", "FOO sip");
        assert!(matches!(
            check_request(&request(&ext)),
            Err(Invalid::Reject(501, _))
        ));
    }

    #[test]
    fn missing_several_headers_are_listed() {
        let text = "INVITE sip:u@h SIP/2.0\r\nCSeq: 1 INVITE\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\n\r\n";
        assert_eq!(
            check_request(&request(text)).err(),
            Some(Invalid::Reject(
                400,
                "Missing Call-ID, From, To headers".into()
            ))
        );
        // Parse errors stay distinct from validation: a bad request line never reaches here.
        assert!(matches!(
            parse(
                Bytes::from_static(b"INVITE  sip:u@h SIP/2.0\r\n\r\n"),
                Framing::Datagram
            ),
            Err(ParseError::BadRequest { status: 400, .. })
        ));
    }
}
