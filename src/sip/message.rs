//! SIP messages: framing, tokenising and serialising (RFC 3261 §7, §18.3, §25).
//!
//! The parser keeps the received datagram as one [`Bytes`] and points into it: header values are
//! slices of the original buffer unless a value was folded over several lines (RFC 3261 §7.3.1),
//! in which case it is copied once with the folds replaced by a single space. Compact header forms
//! (§7.3.3) are mapped to their long names here, so no other code has to know them.
//!
//! What the parser does *not* do is judge whether a request makes sense; that is
//! [`super::validate`]. The split matters: a request whose start line and header block can be
//! tokenised can always be answered (with 400 if need be), because the answer only needs the
//! Via, From, To, Call-ID and CSeq values echoed back.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use bytes::{BufMut, Bytes, BytesMut};

/// How the bytes arrived: it decides how the body is framed (RFC 3261 §18.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One datagram is one message; without Content-Length the body is the rest of it.
    Datagram,
    /// A byte stream; Content-Length says where the message ends.
    Stream,
}

/// SIP request methods. Extension methods are kept by name so we can answer 501 instead of
/// dropping them (RFC 3261 §8.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Extension(Box<str>),
}

impl Method {
    /// Methods are case-sensitive tokens (RFC 3261 §7.1).
    pub fn from_token(token: &[u8]) -> Method {
        match token {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"OPTIONS" => Method::Options,
            b"REGISTER" => Method::Register,
            b"INFO" => Method::Info,
            b"UPDATE" => Method::Update,
            b"PRACK" => Method::Prack,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"REFER" => Method::Refer,
            b"MESSAGE" => Method::Message,
            b"PUBLISH" => Method::Publish,
            other => Method::Extension(String::from_utf8_lossy(other).into()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Extension(name) => name,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Header names we act on; everything else is [`HeaderName::Other`] and passed along untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderName {
    Via,
    From,
    To,
    CallId,
    CSeq,
    MaxForwards,
    ContentLength,
    ContentType,
    Contact,
    Route,
    RecordRoute,
    Require,
    ProxyRequire,
    Supported,
    Accept,
    Allow,
    Authorization,
    SessionExpires,
    MinSe,
    Expires,
    /// Any other name, as received (or, for the headers we write, a static name: no
    /// allocation per message).
    Other(Cow<'static, str>),
}

impl HeaderName {
    /// Header names are case-insensitive; compact forms map to long names (§7.3.3).
    pub fn parse(name: &[u8]) -> HeaderName {
        if name.len() == 1 {
            match name[0].to_ascii_lowercase() {
                b'v' => return HeaderName::Via,
                b'f' => return HeaderName::From,
                b't' => return HeaderName::To,
                b'i' => return HeaderName::CallId,
                b'l' => return HeaderName::ContentLength,
                b'c' => return HeaderName::ContentType,
                b'm' => return HeaderName::Contact,
                b'k' => return HeaderName::Supported,
                b'x' => return HeaderName::SessionExpires,
                _ => {}
            }
        }
        // By length and first letter: each message has a dozen header lines, and comparing
        // every name with all twenty known ones was a measurable share of parsing. One
        // candidate is left to compare (two for `call-id`/`contact`).
        let first = name.first().map_or(0, u8::to_ascii_lowercase);
        let candidates: &[(&str, HeaderName)] = match (name.len(), first) {
            (2, b't') => &[("to", HeaderName::To)],
            (3, b'v') => &[("via", HeaderName::Via)],
            (4, b'f') => &[("from", HeaderName::From)],
            (4, b'c') => &[("cseq", HeaderName::CSeq)],
            (5, b'r') => &[("route", HeaderName::Route)],
            (5, b'a') => &[("allow", HeaderName::Allow)],
            (6, b'a') => &[("accept", HeaderName::Accept)],
            (6, b'm') => &[("min-se", HeaderName::MinSe)],
            (7, b'c') => &[
                ("call-id", HeaderName::CallId),
                ("contact", HeaderName::Contact),
            ],
            (7, b'r') => &[("require", HeaderName::Require)],
            (7, b'e') => &[("expires", HeaderName::Expires)],
            (9, b's') => &[("supported", HeaderName::Supported)],
            (12, b'm') => &[("max-forwards", HeaderName::MaxForwards)],
            (12, b'c') => &[("content-type", HeaderName::ContentType)],
            (12, b'r') => &[("record-route", HeaderName::RecordRoute)],
            (13, b'p') => &[("proxy-require", HeaderName::ProxyRequire)],
            (13, b'a') => &[("authorization", HeaderName::Authorization)],
            (14, b'c') => &[("content-length", HeaderName::ContentLength)],
            (15, b's') => &[("session-expires", HeaderName::SessionExpires)],
            _ => &[],
        };
        for (known, header) in candidates {
            if name.eq_ignore_ascii_case(known.as_bytes()) {
                return header.clone();
            }
        }
        HeaderName::Other(Cow::Owned(String::from_utf8_lossy(name).into_owned()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            HeaderName::Via => "Via",
            HeaderName::From => "From",
            HeaderName::To => "To",
            HeaderName::CallId => "Call-ID",
            HeaderName::CSeq => "CSeq",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::ContentType => "Content-Type",
            HeaderName::Contact => "Contact",
            HeaderName::Route => "Route",
            HeaderName::RecordRoute => "Record-Route",
            HeaderName::Require => "Require",
            HeaderName::ProxyRequire => "Proxy-Require",
            HeaderName::Supported => "Supported",
            HeaderName::Accept => "Accept",
            HeaderName::Allow => "Allow",
            HeaderName::Authorization => "Authorization",
            HeaderName::SessionExpires => "Session-Expires",
            HeaderName::MinSe => "Min-SE",
            HeaderName::Expires => "Expires",
            HeaderName::Other(name) => name,
        }
    }
}

/// One header line, value unfolded and trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    pub value: Bytes,
}

/// Headers in received order (order matters for Via, Route and Record-Route).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    pub fn get(&self, name: &HeaderName) -> Option<&Bytes> {
        self.0.iter().find(|h| &h.name == name).map(|h| &h.value)
    }

    /// The first value as text (lossy; header values are UTF-8 by RFC 3261 §7.3.1).
    pub fn get_str(&self, name: &HeaderName) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    pub fn all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.0
            .iter()
            .filter(move |h| &h.name == name)
            .map(|h| &h.value)
    }

    pub fn count(&self, name: &HeaderName) -> usize {
        self.0.iter().filter(|h| &h.name == name).count()
    }

    pub fn push(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        self.0.push(Header {
            name,
            value: value.into(),
        });
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: Bytes,
    pub headers: Headers,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: Bytes,
    pub headers: Headers,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

/// Why a message could not be taken as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not something we can answer (no request line, a broken response, random bytes): drop it.
    Garbage(&'static str),
    /// A request we can tokenise but must refuse; answer `status` with `reason`.
    BadRequest {
        request: Box<Request>,
        status: u16,
        reason: String,
    },
    /// Stream framing: the message is not complete yet.
    Incomplete,
}

/// Parses one message. For [`Framing::Stream`] the second value is how many bytes of `buf`
/// the message used (the rest belongs to the next message); for datagrams it is `buf.len()`.
pub fn parse(buf: Bytes, framing: Framing) -> Result<(Message, usize), ParseError> {
    // RFC 3261 §7.5: ignore CRLFs before the start line (also keep-alive pings on streams).
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    if start == buf.len() {
        return match framing {
            Framing::Stream => Err(ParseError::Incomplete),
            Framing::Datagram => Err(ParseError::Garbage("empty")),
        };
    }
    let (head_end, body_start, terminated) = match find_head_end(&buf[start..]) {
        Some((end, body)) => (start + end, start + body, true),
        None => match framing {
            Framing::Stream => return Err(ParseError::Incomplete),
            Framing::Datagram => (buf.len(), buf.len(), false),
        },
    };

    let mut lines = LineIter {
        buf: &buf,
        pos: start,
        end: head_end,
    };
    let (line_start, line_end) = lines
        .next_line()
        .ok_or(ParseError::Garbage("no start line"))?;
    let start_line = buf.slice(line_start..line_end);

    let kind = parse_start_line(&start_line)?;
    let mut headers = Headers(Vec::with_capacity(12));
    let mut header_error: Option<String> = None;
    while let Some((ls, le)) = lines.next_line() {
        // Collect continuation lines (folding, §7.3.1).
        let mut folded: Option<BytesMut> = None;
        let mut le = le;
        while let Some(next) = lines.peek_continuation() {
            let buffer = folded.get_or_insert_with(|| BytesMut::from(&buf[ls..le]));
            buffer.put_u8(b' ');
            buffer.extend_from_slice(trim(&buf[next.0..next.1]));
            le = next.1;
            lines.pos = lines.after(next.1);
        }
        // The value is a slice of the message (of the unfolded copy for a folded line).
        let folded = folded.map(BytesMut::freeze);
        let (owner, line) = match &folded {
            Some(b) => (b, &b[..]),
            None => (&buf, &buf[ls..le]),
        };
        match split_header(line) {
            Some((name, value)) => headers.push(HeaderName::parse(name), owner.slice_ref(value)),
            None => {
                if header_error.is_none() {
                    header_error = Some(format!("Malformed header line: {}", printable(line, 40)));
                }
            }
        }
    }

    match kind {
        StartLine::Response { status, reason } => {
            if header_error.is_some() || !terminated {
                return Err(ParseError::Garbage("malformed response"));
            }
            let (body, used) = frame_body(&buf, &headers, body_start, framing)
                .map_err(|_| ParseError::Garbage("bad Content-Length in response"))?;
            Ok((
                Message::Response(Response {
                    status,
                    reason,
                    headers,
                    body,
                }),
                used,
            ))
        }
        StartLine::Request {
            method,
            uri,
            version_ok,
            line_error,
        } => {
            let mut request = Request {
                method,
                uri,
                headers,
                body: Bytes::new(),
            };
            let reject = |request: Request, status: u16, reason: String| {
                Err(ParseError::BadRequest {
                    request: Box::new(request),
                    status,
                    reason,
                })
            };
            if !version_ok {
                return reject(request, 505, "Version Not Supported".into());
            }
            if let Some(reason) = line_error {
                return reject(request, 400, reason.into());
            }
            if let Some(reason) = header_error {
                return reject(request, 400, reason);
            }
            if !terminated {
                return reject(
                    request,
                    400,
                    "Header block not terminated by an empty line".into(),
                );
            }
            match frame_body(&buf, &request.headers, body_start, framing) {
                Ok((body, used)) => {
                    request.body = body;
                    Ok((Message::Request(request), used))
                }
                Err(BodyError::Incomplete) => Err(ParseError::Incomplete),
                Err(BodyError::Bad(reason)) => reject(request, 400, reason.into()),
            }
        }
    }
}

enum StartLine {
    Request {
        method: Method,
        uri: Bytes,
        version_ok: bool,
        line_error: Option<&'static str>,
    },
    Response {
        status: u16,
        reason: Bytes,
    },
}

fn parse_start_line(line: &Bytes) -> Result<StartLine, ParseError> {
    if line.len() > 8 && line[..8].eq_ignore_ascii_case(b"SIP/2.0 ") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (§7.2)
        let rest = &line[8..];
        if rest.len() < 3 || !rest[..3].iter().all(u8::is_ascii_digit) {
            return Err(ParseError::Garbage("bad status code"));
        }
        if rest.len() > 3 && rest[3] != b' ' {
            return Err(ParseError::Garbage("bad status code"));
        }
        let status =
            (rest[0] - b'0') as u16 * 100 + (rest[1] - b'0') as u16 * 10 + (rest[2] - b'0') as u16;
        if !(100..=699).contains(&status) {
            return Err(ParseError::Garbage("status code out of range"));
        }
        let reason = if rest.len() > 4 {
            line.slice(12..)
        } else {
            Bytes::new()
        };
        return Ok(StartLine::Response { status, reason });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version (§7.1): exactly two single spaces.
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        // Extra or missing spaces (RFC 4475 lwsstart, trws, lwsruri): answerable with 400 when
        // it still looks like a request, otherwise not SIP at all.
        if looks_like_request(line) {
            let method = line.split(|&b| b == b' ').next().unwrap_or(b"");
            return Ok(StartLine::Request {
                method: Method::from_token(method),
                uri: Bytes::new(),
                version_ok: true,
                line_error: Some("Malformed Request-Line"),
            });
        }
        return Err(ParseError::Garbage("not a SIP message"));
    };
    if method.is_empty() || !method.iter().all(|&b| is_token_char(b)) || uri.is_empty() {
        return Err(ParseError::Garbage("malformed request line"));
    }
    let version_ok = version.eq_ignore_ascii_case(b"SIP/2.0");
    if !version_ok && !is_sip_version(version) {
        return Err(ParseError::Garbage("malformed SIP version"));
    }
    Ok(StartLine::Request {
        method: Method::from_token(method),
        uri: line.slice_ref(uri),
        version_ok,
        line_error: None,
    })
}

fn looks_like_request(line: &[u8]) -> bool {
    line.windows(4).any(|w| w.eq_ignore_ascii_case(b"SIP/"))
}

/// `"SIP" "/" 1*DIGIT "." 1*DIGIT` (§25.1)
fn is_sip_version(v: &[u8]) -> bool {
    if v.len() < 7 || !v[..4].eq_ignore_ascii_case(b"SIP/") {
        return false;
    }
    let rest = &v[4..];
    let Some(dot) = rest.iter().position(|&b| b == b'.') else {
        return false;
    };
    let (major, minor) = (&rest[..dot], &rest[dot + 1..]);
    !major.is_empty()
        && !minor.is_empty()
        && major.iter().all(u8::is_ascii_digit)
        && minor.iter().all(u8::is_ascii_digit)
}

enum BodyError {
    Incomplete,
    Bad(&'static str),
}

fn frame_body(
    buf: &Bytes,
    headers: &Headers,
    body_start: usize,
    framing: Framing,
) -> Result<(Bytes, usize), BodyError> {
    let mut declared: Option<usize> = None;
    for value in headers.all(&HeaderName::ContentLength) {
        let text = trim(value);
        if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
            return Err(BodyError::Bad("Bad Content-Length"));
        }
        // Digits only; saturate instead of overflowing on absurd values.
        let n = text.iter().fold(0usize, |acc, d| {
            acc.saturating_mul(10).saturating_add((d - b'0') as usize)
        });
        match declared {
            Some(previous) if previous != n => {
                return Err(BodyError::Bad("Conflicting Content-Length headers"));
            }
            _ => declared = Some(n),
        }
    }
    let available = buf.len() - body_start;
    match (framing, declared) {
        (Framing::Datagram, None) => Ok((buf.slice(body_start..), buf.len())),
        (Framing::Datagram, Some(n)) if n > available => {
            Err(BodyError::Bad("Content-Length larger than the message"))
        }
        // Bytes after the declared body in a datagram are ignored (RFC 3261 §18.3).
        (Framing::Datagram, Some(n)) => Ok((buf.slice(body_start..body_start + n), buf.len())),
        (Framing::Stream, None) => Ok((Bytes::new(), body_start)),
        (Framing::Stream, Some(n)) if n > available => Err(BodyError::Incomplete),
        (Framing::Stream, Some(n)) => Ok((buf.slice(body_start..body_start + n), body_start + n)),
    }
}

/// Finds the empty line ending the header block: returns (end of the last header line, start of
/// the body). Accepts bare LF line ends as well as CRLF (RFC 2543-era peers).
fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut search = 0;
    while let Some(off) = memchr::memchr(b'\n', &buf[search..]) {
        let nl = search + off;
        let next = nl + 1;
        if next < buf.len() && buf[next] == b'\n' {
            return Some((nl, next + 1));
        }
        if next + 1 < buf.len() && buf[next] == b'\r' && buf[next + 1] == b'\n' {
            return Some((nl, next + 2));
        }
        search = next;
    }
    None
}

struct LineIter<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl LineIter<'_> {
    fn line_at(&self, from: usize) -> Option<(usize, usize)> {
        if from >= self.end {
            return None;
        }
        let nl = memchr::memchr(b'\n', &self.buf[from..self.end])
            .map(|o| from + o)
            .unwrap_or(self.end);
        let end = if nl > from && self.buf[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        Some((from, end))
    }

    fn after(&self, line_end: usize) -> usize {
        let mut p = line_end;
        if p < self.end && self.buf[p] == b'\r' {
            p += 1;
        }
        if p < self.end && self.buf[p] == b'\n' {
            p += 1;
        }
        p
    }

    fn next_line(&mut self) -> Option<(usize, usize)> {
        let (s, e) = self.line_at(self.pos)?;
        self.pos = self.after(e);
        Some((s, e))
    }

    /// The next line if it continues the current one (starts with SP or HTAB); the first byte
    /// decides before the line's end is searched.
    fn peek_continuation(&self) -> Option<(usize, usize)> {
        if self.pos >= self.end {
            return None;
        }
        match self.buf.get(self.pos) {
            Some(b' ') | Some(b'\t') => self.line_at(self.pos),
            _ => None,
        }
    }
}

/// `field-name HCOLON field-value`, HCOLON = *( SP / HTAB ) ":" SWS (§7.3.1, §25.1).
fn split_header(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = memchr::memchr(b':', line)?;
    let name = trim(&line[..colon]);
    if name.is_empty() || !name.iter().all(|&b| is_token_char(b)) {
        return None;
    }
    Some((name, trim(&line[colon + 1..])))
}

pub fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |p| p + 1);
    &s[start..end]
}

/// RFC 3261 §25.1 `token` characters.
pub fn is_token_char(b: u8) -> bool {
    TOKEN_CHARS[usize::from(b)]
}

/// [`is_token_char`] as a table: every header name and method is checked byte by byte.
static TOKEN_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        b += 1;
    }
    table
};

/// A short printable excerpt for reason phrases and logs (never echoes control bytes).
pub fn printable(bytes: &[u8], max: usize) -> String {
    bytes
        .iter()
        .take(max)
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

/// Serialises a request.
pub fn write_request(request: &Request) -> Bytes {
    let mut out = BytesMut::with_capacity(512 + request.body.len());
    out.extend_from_slice(request.method.as_str().as_bytes());
    out.put_u8(b' ');
    out.extend_from_slice(&request.uri);
    out.extend_from_slice(b" SIP/2.0\r\n");
    write_headers_and_body(&mut out, &request.headers, &request.body);
    out.freeze()
}

/// Serialises a response.
pub fn write_response(response: &Response) -> Bytes {
    let mut out = BytesMut::with_capacity(512 + response.body.len());
    out.extend_from_slice(b"SIP/2.0 ");
    write_number(&mut out, u64::from(response.status));
    out.put_u8(b' ');
    out.extend_from_slice(&response.reason);
    out.extend_from_slice(b"\r\n");
    write_headers_and_body(&mut out, &response.headers, &response.body);
    out.freeze()
}

/// Writes headers (except Content-Length, which is always computed from the body) and the body.
fn write_headers_and_body(out: &mut BytesMut, headers: &Headers, body: &[u8]) {
    for header in &headers.0 {
        if header.name == HeaderName::ContentLength {
            continue;
        }
        out.extend_from_slice(header.name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(&header.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Content-Length: ");
    write_number(out, body.len() as u64);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

/// Writes `addr` as its `Display` does (`192.0.2.1:5060`, `[2001:db8::1]:5060`).
pub fn write_socket_addr(out: &mut BytesMut, addr: SocketAddr) {
    write_host(out, addr.ip());
    out.put_u8(b':');
    write_number(out, u64::from(addr.port()));
}

/// Writes `ip` as the host of a SIP URI (RFC 3261 §25.1: an IPv6 address in brackets).
pub fn write_host(out: &mut BytesMut, ip: IpAddr) {
    if ip.is_ipv6() {
        out.put_u8(b'[');
        write_ip(out, ip);
        out.put_u8(b']');
    } else {
        write_ip(out, ip);
    }
}

/// Writes `ip` as its `Display` does (as SDP wants it); IPv4, the common case, without the
/// formatting machinery.
pub fn write_ip(out: &mut BytesMut, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.put_u8(b'.');
                }
                write_number(out, u64::from(octet));
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write;
            // Writing into a BytesMut cannot fail.
            let _ = write!(out, "{v6}");
        }
    }
}

/// Writes `n` in decimal.
pub fn write_number(out: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_numbers_are_written_as_display_writes_them() {
        for addr in [
            "127.0.0.1:5060",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "[::1]:5060",
        ] {
            let addr: SocketAddr = addr.parse().expect("address");
            let mut out = BytesMut::new();
            write_socket_addr(&mut out, addr);
            assert_eq!(&out[..], addr.to_string().as_bytes());
        }
        for n in [0, 7, 10, 1_800, u64::MAX] {
            let mut out = BytesMut::new();
            write_number(&mut out, n);
            assert_eq!(&out[..], n.to_string().as_bytes());
        }
    }

    #[test]
    fn every_known_header_name_parses_to_itself_in_any_case() {
        let known = [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
            HeaderName::MaxForwards,
            HeaderName::ContentLength,
            HeaderName::ContentType,
            HeaderName::Contact,
            HeaderName::Route,
            HeaderName::RecordRoute,
            HeaderName::Require,
            HeaderName::ProxyRequire,
            HeaderName::Supported,
            HeaderName::Accept,
            HeaderName::Allow,
            HeaderName::Authorization,
            HeaderName::SessionExpires,
            HeaderName::MinSe,
            HeaderName::Expires,
        ];
        for name in known {
            let text = name.as_str();
            assert_eq!(HeaderName::parse(text.as_bytes()), name, "{text}");
            assert_eq!(
                HeaderName::parse(text.to_ascii_uppercase().as_bytes()),
                name
            );
            assert_eq!(
                HeaderName::parse(text.to_ascii_lowercase().as_bytes()),
                name
            );
        }
        assert_eq!(
            HeaderName::parse(b"User-Agent"),
            HeaderName::Other("User-Agent".into())
        );
        assert_eq!(HeaderName::parse(b"Tox"), HeaderName::Other("Tox".into()));
        // Same length and first letter as a known name, and not it.
        for near in [
            "Call-IX", "Caxl-ID", "Contacx", "Cxntact", "Tx", "Expirex", "Route2",
        ] {
            assert_eq!(
                HeaderName::parse(near.as_bytes()),
                HeaderName::Other(near.to_string().into()),
                "{near}"
            );
        }
    }

    #[test]
    fn token_characters_are_those_of_rfc_3261() {
        let expected = |b: u8| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b);
        for b in 0..=255u8 {
            assert_eq!(is_token_char(b), expected(b), "byte {b}");
        }
    }

    fn parse_dgram(text: &str) -> Result<Message, ParseError> {
        parse(Bytes::copy_from_slice(text.as_bytes()), Framing::Datagram).map(|(m, _)| m)
    }

    fn request(text: &str) -> Request {
        match parse_dgram(text) {
            Ok(Message::Request(r)) => r,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    const OPTIONS: &str = "OPTIONS sip:490@127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK1\r\n\
        From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:490@127.0.0.1>\r\n\
        Call-ID: abc\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn parses_a_plain_request() {
        let r = request(OPTIONS);
        assert_eq!(r.method, Method::Options);
        assert_eq!(&r.uri[..], b"sip:490@127.0.0.1");
        assert_eq!(r.headers.get_str(&HeaderName::CallId), Some("abc"));
        assert_eq!(r.headers.0.len(), 6);
        assert!(r.body.is_empty());
    }

    #[test]
    fn compact_forms_and_folding() {
        let r = request(
            "INVITE sip:490@h SIP/2.0\r\nv: SIP/2.0/UDP h\r\n ;branch=z9hG4bKx\r\nf: <sip:a@h>;tag=1\r\n\
             t: <sip:b@h>\r\ni: id1\r\nCSeq: 1\r\n\tINVITE\r\nl: 3\r\n\r\nabc",
        );
        assert_eq!(
            r.headers.get_str(&HeaderName::Via),
            Some("SIP/2.0/UDP h ;branch=z9hG4bKx")
        );
        assert_eq!(r.headers.get_str(&HeaderName::CSeq), Some("1 INVITE"));
        assert_eq!(&r.body[..], b"abc");
    }

    #[test]
    fn datagram_body_without_content_length_is_the_rest() {
        let r = request("INVITE sip:490@h SIP/2.0\r\nCall-ID: x\r\n\r\nv=0\r\n");
        assert_eq!(&r.body[..], b"v=0\r\n");
    }

    #[test]
    fn content_length_errors_are_400() {
        for (cl, reason) in [
            ("Content-Length: 99\r\n", "larger"),
            ("Content-Length: -1\r\n", "Bad"),
            ("Content-Length: 1\r\nl: 2\r\n", "Conflicting"),
        ] {
            let text = format!("OPTIONS sip:a@h SIP/2.0\r\nCall-ID: x\r\n{cl}\r\nab");
            match parse_dgram(&text) {
                Err(ParseError::BadRequest {
                    status: 400,
                    reason: r,
                    ..
                }) => {
                    assert!(r.contains(reason), "{r}")
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn stream_framing_splits_messages() {
        let two = format!("{OPTIONS}{OPTIONS}");
        let buf = Bytes::from(two);
        let (_, used) = parse(buf.clone(), Framing::Stream).expect("first");
        assert_eq!(used, OPTIONS.len());
        let (_, used2) = parse(buf.slice(used..), Framing::Stream).expect("second");
        assert_eq!(used2, OPTIONS.len());
        assert_eq!(
            parse(buf.slice(..OPTIONS.len() - 3), Framing::Stream),
            Err(ParseError::Incomplete)
        );
    }

    #[test]
    fn versions_and_garbage() {
        match parse_dgram("OPTIONS sip:a@h SIP/7.0\r\nCall-ID: x\r\n\r\n") {
            Err(ParseError::BadRequest { status: 505, .. }) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_dgram("\x00\x01hello"),
            Err(ParseError::Garbage(_))
        ));
        assert!(matches!(
            parse_dgram("SIP/2.0 4294967301 Huge\r\n\r\n"),
            Err(ParseError::Garbage(_))
        ));
    }

    #[test]
    fn responses_parse() {
        match parse_dgram("SIP/2.0 100 \r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n") {
            Ok(Message::Response(r)) => {
                assert_eq!(r.status, 100);
                assert!(r.reason.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn serialise_round_trip() {
        let r = request(OPTIONS);
        let bytes = write_request(&r);
        let again = match parse(bytes, Framing::Stream) {
            Ok((Message::Request(again), _)) => again,
            other => panic!("{other:?}"),
        };
        assert_eq!(r.headers.0.len(), again.headers.0.len());
        assert_eq!(r.method, again.method);
    }

    #[test]
    fn never_panics_on_prefixes_and_byte_flips() {
        let base = OPTIONS.as_bytes();
        for cut in 0..base.len() {
            let _ = parse(Bytes::copy_from_slice(&base[..cut]), Framing::Datagram);
            let _ = parse(Bytes::copy_from_slice(&base[..cut]), Framing::Stream);
        }
        for i in 0..base.len() {
            for b in [0u8, b'\r', b'\n', b':', b' ', 0xff] {
                let mut m = base.to_vec();
                m[i] = b;
                let _ = parse(Bytes::from(m), Framing::Datagram);
            }
        }
    }
}
