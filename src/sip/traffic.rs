//! SIP traffic by method and response class, both directions, for `/metrics`
//! (`zentrale_sip_requests_total{method,direction}`, `zentrale_sip_responses_total{code_class,direction}`).
//!
//! Fixed arrays of atomics: counting is one relaxed add, no allocation, no lock. Sent messages
//! are classified by peeking at their first bytes (`SIP/2.0 NXX` or the method token), so every
//! message that leaves through [`Transports::send`](super::transport::Transports::send) counts.

use std::sync::atomic::{AtomicU64, Ordering};

/// The `method` label values: the methods the parser knows, then `other` (extension methods;
/// the label stays bounded whatever a peer sends).
pub const METHODS: [&str; 15] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "INFO",
    "UPDATE",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "MESSAGE",
    "PUBLISH",
    "other",
];

/// The `code_class` label values.
pub const CODE_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

/// The `direction` label values, indexed by [`Direction`].
pub const DIRECTIONS: [&str; 2] = ["received", "sent"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Received = 0,
    Sent = 1,
}

/// The index into [`METHODS`] of a method token (case-sensitive, RFC 3261 §7.1).
pub fn method_index(token: &[u8]) -> usize {
    METHODS[..METHODS.len() - 1]
        .iter()
        .position(|m| m.as_bytes() == token)
        .unwrap_or(METHODS.len() - 1)
}

/// The index into [`CODE_CLASSES`] of a status code, if it is one (100 … 699).
pub fn class_index(status: u16) -> Option<usize> {
    (100..700)
        .contains(&status)
        .then(|| usize::from(status / 100 - 1))
}

/// What the first bytes of a serialised message say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peeked {
    /// Index into [`METHODS`].
    Request(usize),
    /// Index into [`CODE_CLASSES`].
    Response(usize),
    /// Not a SIP start line (e.g. a CRLF keep-alive).
    Other,
}

/// Classifies a serialised SIP message by its start line, looking at no more than its first
/// 24 bytes.
pub fn peek(bytes: &[u8]) -> Peeked {
    if let Some(rest) = bytes.strip_prefix(b"SIP/2.0 ") {
        return match rest {
            [d @ b'1'..=b'6', b'0'..=b'9', b'0'..=b'9', ..] => {
                Peeked::Response(usize::from(d - b'1'))
            }
            _ => Peeked::Other,
        };
    }
    let head = &bytes[..bytes.len().min(24)];
    match head.iter().position(|b| *b == b' ') {
        Some(0) | None => Peeked::Other,
        Some(end) => Peeked::Request(method_index(&head[..end])),
    }
}

/// A snapshot of [`SipTraffic`]: `[direction][method]` and `[direction][class]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrafficCounts {
    pub requests: [[u64; METHODS.len()]; 2],
    pub responses: [[u64; CODE_CLASSES.len()]; 2],
}

#[derive(Debug, Default)]
pub struct SipTraffic {
    requests: [[AtomicU64; METHODS.len()]; 2],
    responses: [[AtomicU64; CODE_CLASSES.len()]; 2],
}

impl SipTraffic {
    /// Counts a request (method token as on the wire).
    pub fn request(&self, direction: Direction, method: &[u8]) {
        self.requests[direction as usize][method_index(method)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a response; a status outside 100 … 699 is not counted.
    pub fn response(&self, direction: Direction, status: u16) {
        if let Some(class) = class_index(status) {
            self.responses[direction as usize][class].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a message about to be sent, by its first bytes.
    pub fn sent(&self, bytes: &[u8]) {
        let sent = Direction::Sent as usize;
        match peek(bytes) {
            Peeked::Request(m) => self.requests[sent][m].fetch_add(1, Ordering::Relaxed),
            Peeked::Response(c) => self.responses[sent][c].fetch_add(1, Ordering::Relaxed),
            Peeked::Other => 0,
        };
    }

    pub fn counts(&self) -> TrafficCounts {
        let mut out = TrafficCounts::default();
        for d in 0..2 {
            for (n, c) in self.requests[d].iter().enumerate() {
                out.requests[d][n] = c.load(Ordering::Relaxed);
            }
            for (n, c) in self.responses[d].iter().enumerate() {
                out.responses[d][n] = c.load(Ordering::Relaxed);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_lines_are_classified_without_parsing() {
        assert_eq!(
            peek(b"INVITE sip:490@x SIP/2.0\r\n"),
            Peeked::Request(method_index(b"INVITE"))
        );
        assert_eq!(peek(b"BYE sip:a@b SIP/2.0\r\n"), Peeked::Request(2));
        assert_eq!(peek(b"FOO sip:a@b SIP/2.0\r\n"), Peeked::Request(14));
        assert_eq!(peek(b"invite sip:a@b SIP/2.0\r\n"), Peeked::Request(14));
        assert_eq!(peek(b"SIP/2.0 100 Trying\r\n"), Peeked::Response(0));
        assert_eq!(peek(b"SIP/2.0 486 Busy Here\r\n"), Peeked::Response(3));
        assert_eq!(
            peek(b"SIP/2.0 503 Service Unavailable\r\n"),
            Peeked::Response(4)
        );
        assert_eq!(peek(b"SIP/2.0 603 Decline\r\n"), Peeked::Response(5));
        assert_eq!(peek(b"SIP/2.0 703 x\r\n"), Peeked::Other);
        assert_eq!(peek(b"\r\n\r\n"), Peeked::Other);
        assert_eq!(peek(b""), Peeked::Other);
        assert_eq!(
            peek(b"AVERYLONGMETHODNAMEWITHOUTANYSPACEATALL"),
            Peeked::Other
        );
    }

    #[test]
    fn counts_by_direction() {
        let t = SipTraffic::default();
        t.sent(b"SIP/2.0 200 OK\r\n");
        t.sent(b"SIP/2.0 503 Service Unavailable\r\n");
        t.sent(b"INVITE sip:a@b SIP/2.0\r\n");
        t.request(Direction::Received, b"OPTIONS");
        t.request(Direction::Received, b"WHATEVER");
        t.response(Direction::Received, 180);
        t.response(Direction::Received, 42);
        let c = t.counts();
        assert_eq!(c.responses[1], [0, 1, 0, 0, 1, 0]);
        assert_eq!(c.requests[1][0], 1);
        assert_eq!(c.requests[0][4], 1);
        assert_eq!(c.requests[0][14], 1);
        assert_eq!(c.responses[0], [1, 0, 0, 0, 0, 0]);
        assert_eq!(class_index(699), Some(5));
        assert_eq!(class_index(700), None);
        assert_eq!(class_index(99), None);
    }
}
