//! Building responses to a received request (RFC 3261 §8.2.6).

use bytes::{Bytes, BytesMut};

use super::message::{HeaderName, Headers, Request, Response};

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

/// A random token for tags and branches (RFC 3261 §19.3: at least 32 bits of randomness).
pub fn random_token() -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random();
    format!("{n:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{Framing, Message, parse, write_response};

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
