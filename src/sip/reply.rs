//! Building responses to a received request (RFC 3261 §8.2.6), and the values of our own that
//! go into messages we send (tokens, Via, Contact).

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};

use super::message::{HeaderName, Headers, Request, Response, write_socket_addr};

/// The methods we implement, for `Allow` (RFC 3261 §20.5).
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, REGISTER";
/// Extensions we support, for `Supported`.
pub const SUPPORTED: &str = "timer";

/// The standard reason phrase for a status code we send.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        481 => "Call/Transaction Does Not Exist",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        _ => "Unknown",
    }
}

/// A response echoing the request's Via (all values, in order), From, To, Call-ID and CSeq.
/// `to_tag` is added to To when the request had none (a UAS must tag every non-100 response
/// it creates; §8.2.6.2).
pub fn reply(request: &Request, status: u16, reason: &str, to_tag: Option<&str>) -> Response {
    let mut headers = Headers(Vec::with_capacity(10));
    for header in &request.headers.0 {
        match header.name {
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                headers.0.push(header.clone())
            }
            HeaderName::To => {
                let value = match to_tag {
                    Some(tag) if status != 100 && !has_tag(&header.value) => {
                        let mut v = BytesMut::with_capacity(header.value.len() + 5 + tag.len());
                        v.extend_from_slice(&header.value);
                        v.extend_from_slice(b";tag=");
                        v.extend_from_slice(tag.as_bytes());
                        v.freeze()
                    }
                    _ => header.value.clone(),
                };
                headers.push(HeaderName::To, value);
            }
            _ => {}
        }
    }
    Response {
        status,
        reason: Bytes::copy_from_slice(reason.as_bytes()),
        headers,
        body: Bytes::new(),
    }
}

/// Whether a To/From value carries a `tag` parameter (outside the angle brackets).
fn has_tag(value: &[u8]) -> bool {
    let params = match value.iter().rposition(|&b| b == b'>') {
        Some(close) => &value[close..],
        None => value,
    };
    params
        .windows(4)
        .any(|w| w.eq_ignore_ascii_case(b"tag=") || w.eq_ignore_ascii_case(b"tag "))
}

/// 16 lowercase hex digits of a random `u64`, for tags, branches and Call-IDs (RFC 3261
/// §19.3: at least 32 bits of randomness).
pub fn random_token() -> String {
    super::digest::to_hex(&rand::random::<u64>().to_be_bytes())
}

/// The Via value of a request we send: `SIP/2.0/<transport> <advertised>;branch=z9hG4bK…;rport`
/// (a new branch each time, RFC 3261 §8.1.1.7; `rport` asks for the answer at our source).
pub fn via_value(transport: &str, advertised: SocketAddr) -> Bytes {
    let mut out = BytesMut::with_capacity(72);
    out.extend_from_slice(b"SIP/2.0/");
    out.extend_from_slice(transport.as_bytes());
    out.put_u8(b' ');
    write_socket_addr(&mut out, advertised);
    out.extend_from_slice(b";branch=z9hG4bK");
    out.extend_from_slice(random_token().as_bytes());
    out.extend_from_slice(b";rport");
    out.freeze()
}

/// A Contact value of ours: `<sip:user@advertised>` (`;transport=tcp` over TCP). The user part
/// keeps only RFC 3261 §25.1 unreserved characters and is left out when nothing is left.
pub fn contact_value(user: &str, advertised: SocketAddr, tcp: bool) -> Bytes {
    let mut out = BytesMut::with_capacity(48 + user.len());
    out.extend_from_slice(b"<sip:");
    let user_at = out.len();
    out.extend(
        user.bytes()
            .filter(|c| c.is_ascii_alphanumeric() || b"+-_.!~*'()".contains(c)),
    );
    if out.len() > user_at {
        out.put_u8(b'@');
    }
    write_socket_addr(&mut out, advertised);
    if tcp {
        out.extend_from_slice(b";transport=tcp");
    }
    out.put_u8(b'>');
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{Framing, Message, parse, write_response};

    #[test]
    fn tokens_are_sixteen_hex_digits_and_differ() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 16);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{a}"
        );
        assert_ne!(a, b);
    }

    #[test]
    fn contact_values_keep_unreserved_user_characters() {
        let addr: SocketAddr = "192.0.2.1:5070".parse().expect("address");
        assert_eq!(
            &contact_value("490", addr, false)[..],
            b"<sip:490@192.0.2.1:5070>"
        );
        assert_eq!(
            &contact_value("+49 3641<490>", addr, true)[..],
            b"<sip:+493641490@192.0.2.1:5070;transport=tcp>"
        );
        assert_eq!(
            &contact_value("<>", addr, false)[..],
            b"<sip:192.0.2.1:5070>"
        );
        let v6: SocketAddr = "[2001:db8::1]:5060".parse().expect("address");
        assert_eq!(
            &contact_value("", v6, false)[..],
            b"<sip:[2001:db8::1]:5060>"
        );
    }

    #[test]
    fn via_values_carry_transport_address_and_a_fresh_branch() {
        let addr: SocketAddr = "192.0.2.1:5070".parse().expect("address");
        let (a, b) = (via_value("UDP", addr), via_value("UDP", addr));
        let text = std::str::from_utf8(&a).expect("ascii");
        assert!(
            text.starts_with("SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK"),
            "{text}"
        );
        assert!(text.ends_with(";rport"), "{text}");
        assert_ne!(a, b, "a new branch each time");
        let via = crate::sip::headers::parse_via(&a).expect("our Via parses");
        assert_eq!(via.branch.map(|b| b.len()), Some(7 + 16));
    }

    #[test]
    fn reply_echoes_and_tags() {
        let text = "INVITE sip:490@h SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\n\
            Via: SIP/2.0/UDP b;branch=z9hG4bK2\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:490@h>\r\n\
            Call-ID: c\r\nCSeq: 1 INVITE\r\nSubject: x\r\n\r\n";
        let Ok((Message::Request(request), _)) =
            parse(Bytes::copy_from_slice(text.as_bytes()), Framing::Datagram)
        else {
            panic!("parse");
        };
        let response = reply(&request, 200, "OK", Some("abc"));
        let out = String::from_utf8(write_response(&response).to_vec()).expect("utf8");
        assert!(out.starts_with("SIP/2.0 200 OK\r\n"));
        assert_eq!(out.matches("Via:").count(), 2);
        assert!(out.contains("To: <sip:490@h>;tag=abc\r\n"));
        assert!(!out.contains("Subject"));
        let trying = reply(&request, 100, "Trying", Some("abc"));
        assert_eq!(trying.headers.get_str(&HeaderName::To), Some("<sip:490@h>"));
        assert!(has_tag(b"<sip:a@h;tag=x>;tag=1"));
        assert!(!has_tag(b"<sip:a@h;tag=x>"));
    }
}
