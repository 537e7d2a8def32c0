//! A minimal SIP client for tests that need exact bytes or exact timing: it writes requests as
//! text, sends them over UDP from its own socket, and reads the replies with their arrival
//! times. Parsing is only as deep as the tests need (start line, headers, body); it is not the
//! engine's parser and must stay independent of it.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use super::ports::LOOPBACK;

/// One received SIP message (request or response), kept as bytes and as lossy text.
#[derive(Clone)]
pub struct SipMessage {
    pub raw: Vec<u8>,
    pub text: String,
    /// When it arrived (for timer tests).
    pub at: Instant,
}

impl std::fmt::Debug for SipMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.text)
    }
}

/// Long header names for the compact forms of RFC 3261 sec. 7.3.3 (and a few extensions).
fn long_name(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    let long = match lower.as_str() {
        "v" => "via",
        "f" => "from",
        "t" => "to",
        "i" => "call-id",
        "m" => "contact",
        "l" => "content-length",
        "c" => "content-type",
        "e" => "content-encoding",
        "k" => "supported",
        "s" => "subject",
        "o" => "event",
        "r" => "refer-to",
        "u" => "allow-events",
        _ => return lower,
    };
    long.to_string()
}

impl SipMessage {
    pub fn new(raw: Vec<u8>, at: Instant) -> SipMessage {
        let text = String::from_utf8_lossy(&raw).into_owned();
        SipMessage { raw, text, at }
    }

    /// The first line, without CRLF.
    pub fn start_line(&self) -> &str {
        self.text
            .lines()
            .next()
            .unwrap_or("")
            .trim_end_matches('\r')
    }

    /// The status code if this is a response (`SIP/2.0 NNN ...`).
    pub fn status(&self) -> Option<u16> {
        let line = self.start_line();
        let rest = line.strip_prefix("SIP/2.0 ")?;
        rest.get(..3)?.parse().ok()
    }

    /// The method if this is a request.
    pub fn method(&self) -> Option<&str> {
        if self.status().is_some() {
            return None;
        }
        self.start_line()
            .split(' ')
            .next()
            .filter(|m| !m.is_empty())
    }

    /// The header section, unfolded (continuation lines joined), as (long lower-case name, value).
    pub fn header_lines(&self) -> Vec<(String, String)> {
        let head = match self.text.find("\r\n\r\n") {
            Some(end) => &self.text[..end],
            None => &self.text,
        };
        let mut out: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n").skip(1) {
            if line.starts_with(' ') || line.starts_with('\t') {
                if let Some(last) = out.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
                continue;
            }
            if let Some((name, value)) = line.split_once(':') {
                out.push((long_name(name), value.trim().to_string()));
            }
        }
        out
    }

    /// The first value of a header (name case-insensitive, compact forms understood).
    pub fn header(&self, name: &str) -> Option<String> {
        let want = long_name(name);
        self.header_lines()
            .into_iter()
            .find(|(n, _)| *n == want)
            .map(|(_, v)| v)
    }

    /// All header lines of that name, in order (not split at commas).
    pub fn headers(&self, name: &str) -> Vec<String> {
        let want = long_name(name);
        self.header_lines()
            .into_iter()
            .filter(|(n, _)| *n == want)
            .map(|(_, v)| v)
            .collect()
    }

    /// Every Via value in order, split at the commas between values.
    pub fn via_values(&self) -> Vec<String> {
        self.headers("via")
            .iter()
            .flat_map(|line| split_list(line))
            .collect()
    }

    /// The `tag` parameter of the To header.
    pub fn to_tag(&self) -> Option<String> {
        param(&self.header("to")?, "tag")
    }

    pub fn call_id(&self) -> Option<String> {
        self.header("call-id")
    }

    /// `(number, method)` of the CSeq header.
    pub fn cseq(&self) -> Option<(u32, String)> {
        let v = self.header("cseq")?;
        let mut it = v.split_whitespace();
        let n = it.next()?.parse().ok()?;
        Some((n, it.next()?.to_string()))
    }

    /// The body (after the empty line), as text.
    pub fn body(&self) -> &str {
        match self.text.find("\r\n\r\n") {
            Some(end) => &self.text[end + 4..],
            None => "",
        }
    }

    pub fn is_final(&self) -> bool {
        self.status().is_some_and(|s| s >= 200)
    }
}

/// Splits a header value at top-level commas (not inside quotes or `<>`).
pub fn split_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut escaped) = (false, false, false);
    let mut current = String::new();
    for ch in value.chars() {
        if escaped {
            escaped = false;
        } else if quoted && ch == '\\' {
            escaped = true;
        } else if ch == '"' {
            quoted = !quoted;
        } else if !quoted && ch == '<' {
            angle = true;
        } else if !quoted && ch == '>' {
            angle = false;
        } else if !quoted && !angle && ch == ',' {
            out.push(current.trim().to_string());
            current.clear();
            continue;
        }
        current.push(ch);
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

/// A `;name=value` parameter of a header value (outside `<>`), case-insensitive name.
pub fn param(value: &str, name: &str) -> Option<String> {
    let after_uri = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    after_uri.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// A random token for tags, branches and Call-IDs.
pub fn token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A new RFC 3261 branch (magic cookie + random).
pub fn branch() -> String {
    format!("z9hG4bK-{}", token())
}

/// A UDP socket on 127.0.0.1 talking to one engine.
pub struct SipClient {
    socket: UdpSocket,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

impl SipClient {
    pub fn new(remote: SocketAddr) -> SipClient {
        let socket = UdpSocket::bind((LOOPBACK, 0)).expect("bind UDP client socket");
        let local = socket.local_addr().expect("local address");
        SipClient {
            socket,
            local,
            remote,
        }
    }

    /// A client on a chosen local address (e.g. the port an agent's URI names).
    pub fn bound(local: SocketAddr, remote: SocketAddr) -> SipClient {
        let socket = UdpSocket::bind(local).unwrap_or_else(|e| panic!("bind {local}: {e}"));
        SipClient {
            socket,
            local,
            remote,
        }
    }

    pub fn send(&self, bytes: impl AsRef<[u8]>) {
        self.socket
            .send_to(bytes.as_ref(), self.remote)
            .unwrap_or_else(|e| panic!("send to {}: {e}", self.remote));
    }

    /// The next datagram, or `None` after `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<SipMessage> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65_536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.socket
                .set_read_timeout(Some(left))
                .expect("set read timeout");
            match self.socket.recv_from(&mut buf) {
                Ok((n, _from)) => return Some(SipMessage::new(buf[..n].to_vec(), Instant::now())),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // ICMP port unreachable from an earlier send: not a reply, keep listening.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                Err(e) => panic!("recv on {}: {e}", self.local),
            }
        }
    }

    /// Every datagram that arrives within `window`.
    pub fn recv_all(&self, window: Duration) -> Vec<SipMessage> {
        let deadline = Instant::now() + window;
        let mut out = Vec::new();
        while let Some(msg) = self.recv(deadline.saturating_duration_since(Instant::now())) {
            out.push(msg);
        }
        out
    }

    /// Waits up to `timeout` for a message matching `want`; returns it and everything else that
    /// arrived before it.
    pub fn recv_until(
        &self,
        timeout: Duration,
        want: impl Fn(&SipMessage) -> bool,
    ) -> (Option<SipMessage>, Vec<SipMessage>) {
        let deadline = Instant::now() + timeout;
        let mut others = Vec::new();
        while let Some(msg) = self.recv(deadline.saturating_duration_since(Instant::now())) {
            if want(&msg) {
                return (Some(msg), others);
            }
            others.push(msg);
        }
        (None, others)
    }

    /// Waits for a final response (skipping provisionals and anything else); panics with what
    /// arrived if none comes.
    pub fn expect_final(&self, timeout: Duration, what: &str) -> SipMessage {
        let (found, others) = self.recv_until(timeout, SipMessage::is_final);
        found.unwrap_or_else(|| {
            panic!(
                "no final response to {what} within {timeout:?}; received instead: {:#?}",
                others
            )
        })
    }

    /// Sends OPTIONS and returns the final response, if any arrives within `timeout`.
    pub fn options(&self, user: &str, timeout: Duration) -> Option<SipMessage> {
        let call_id = format!("opt-{}", token());
        let request = options_request(self.local, self.remote, user, &call_id, &branch());
        self.send(request);
        let (found, _) = self.recv_until(timeout, |m| {
            m.is_final() && m.call_id().as_deref() == Some(call_id.as_str())
        });
        found
    }
}

/// An OPTIONS request from `local` to `user@remote`.
pub fn options_request(
    local: SocketAddr,
    remote: SocketAddr,
    user: &str,
    call_id: &str,
    branch: &str,
) -> String {
    format!(
        "OPTIONS sip:{user}@{remote} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};rport;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{local}>;tag={tag}\r\n\
         To: <sip:{user}@{remote}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Contact: <sip:probe@{local}>\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\r\n",
        tag = token(),
    )
}

/// An OPTIONS request like [`options_request`] with the Via transport (`UDP`, `TCP`) and extra
/// header lines (each ending in CRLF) chosen by the caller.
pub fn options_request_with(
    local: SocketAddr,
    remote: SocketAddr,
    transport: &str,
    call_id: &str,
    extra: &str,
) -> String {
    format!(
        "OPTIONS sip:490@{remote} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};rport;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{local}>;tag={tag}\r\n\
         To: <sip:490@{remote}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Contact: <sip:probe@{local}>\r\n\
         {extra}\
         Content-Length: 0\r\n\r\n",
        branch = branch(),
        tag = token(),
    )
}

/// The caller side of one call made by hand: INVITE, ACK, BYE, CANCEL with consistent
/// Call-ID, tags, branches and CSeq numbers.
pub struct CallLeg {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub user: String,
    pub call_id: String,
    pub from_tag: String,
    /// Branch of the INVITE (reused by CANCEL and by the ACK for a non-2xx final).
    pub invite_branch: String,
    pub invite_cseq: u32,
    /// Filled in from the answer (To tag of the 2xx or the final response).
    pub to_tag: Option<String>,
    next_cseq: u32,
}

pub const OFFER_SDP: &str = "v=0\r\n\
o=test 1 1 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n";

/// An SDP offer like [`OFFER_SDP`] with an origin version and a direction attribute
/// (`sendrecv`, `sendonly`, `recvonly`, `inactive`).
pub fn sdp_offer(version: u32, direction: &str) -> String {
    format!(
        "v=0\r\n\
         o=test 1 {version} IN IP4 127.0.0.1\r\n\
         s=-\r\n\
         c=IN IP4 127.0.0.1\r\n\
         t=0 0\r\n\
         m=audio 49170 RTP/AVP 0 8\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:8 PCMA/8000\r\n\
         a={direction}\r\n"
    )
}

impl CallLeg {
    pub fn new(client: &SipClient, user: &str) -> CallLeg {
        CallLeg {
            local: client.local,
            remote: client.remote,
            user: user.to_string(),
            call_id: format!("leg-{}@127.0.0.1", token()),
            from_tag: token(),
            invite_branch: branch(),
            invite_cseq: 1,
            to_tag: None,
            next_cseq: 2,
        }
    }

    fn request_uri(&self) -> String {
        format!("sip:{}@{}", self.user, self.remote)
    }

    fn to_header(&self) -> String {
        match &self.to_tag {
            Some(tag) => format!("<{}>;tag={tag}", self.request_uri()),
            None => format!("<{}>", self.request_uri()),
        }
    }

    fn common(&self, method: &str, branch: &str, cseq: u32) -> String {
        format!(
            "{method} {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};rport;branch={branch}\r\n\
             Max-Forwards: 70\r\n\
             From: \"Test\" <sip:0364155501@{local}>;tag={from_tag}\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:test@{local}>\r\n\
             User-Agent: zentrale-tests\r\n",
            ruri = self.request_uri(),
            local = self.local,
            from_tag = self.from_tag,
            to = self.to_header(),
            call_id = self.call_id,
        )
    }

    /// INVITE with an SDP offer (PCMU/PCMA).
    pub fn invite(&self) -> String {
        format!(
            "{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{OFFER_SDP}",
            self.common("INVITE", &self.invite_branch, self.invite_cseq),
            OFFER_SDP.len()
        )
    }

    /// Records the To tag of a response to our INVITE.
    pub fn take_answer(&mut self, response: &SipMessage) {
        if let Some(tag) = response.to_tag() {
            self.to_tag = Some(tag);
        }
    }

    /// ACK for a 2xx: a new transaction with its own branch (RFC 3261 sec. 13.2.2.4).
    pub fn ack_2xx(&self) -> String {
        format!(
            "{}Content-Length: 0\r\n\r\n",
            self.common("ACK", &branch(), self.invite_cseq)
        )
    }

    /// ACK for a non-2xx final: same branch as the INVITE (RFC 3261 sec. 17.1.1.3).
    pub fn ack_non_2xx(&self) -> String {
        format!(
            "{}Content-Length: 0\r\n\r\n",
            self.common("ACK", &self.invite_branch, self.invite_cseq)
        )
    }

    /// CANCEL for the INVITE: same branch and CSeq number, To as in the INVITE (RFC 3261
    /// sec. 9.1).
    pub fn cancel(&self) -> String {
        let request = self.common("CANCEL", &self.invite_branch, self.invite_cseq);
        let to_line = format!("To: {}\r\n", self.to_header());
        let untagged = format!("To: <{}>\r\n", self.request_uri());
        format!(
            "{}Content-Length: 0\r\n\r\n",
            request.replace(&to_line, &untagged)
        )
    }

    /// BYE inside the dialog (next CSeq).
    pub fn bye(&mut self) -> String {
        let cseq = self.next_cseq;
        self.next_cseq += 1;
        format!(
            "{}Content-Length: 0\r\n\r\n",
            self.common("BYE", &branch(), cseq)
        )
    }

    /// Takes the next CSeq number for an in-dialog request.
    pub fn take_cseq(&mut self) -> u32 {
        let cseq = self.next_cseq;
        self.next_cseq += 1;
        cseq
    }

    /// Any request of this leg with an exact branch and CSeq number: `extra` are further header
    /// lines (each ending in CRLF), `body` is `(Content-Type, body)`.
    pub fn request_with(
        &self,
        method: &str,
        branch: &str,
        cseq: u32,
        extra: &str,
        body: Option<(&str, &str)>,
    ) -> String {
        let mut out = self.common(method, branch, cseq);
        out.push_str(extra);
        match body {
            Some((content_type, body)) => out.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )),
            None => out.push_str("Content-Length: 0\r\n\r\n"),
        }
        out
    }

    /// An in-dialog request with the next CSeq and a new branch; returns it and its CSeq.
    pub fn in_dialog(
        &mut self,
        method: &str,
        extra: &str,
        body: Option<(&str, &str)>,
    ) -> (String, u32) {
        let cseq = self.take_cseq();
        (
            self.request_with(method, &branch(), cseq, extra, body),
            cseq,
        )
    }

    /// The initial INVITE (its branch and CSeq) with extra header lines and any body (or none).
    pub fn invite_with(&self, extra: &str, body: Option<(&str, &str)>) -> String {
        self.request_with("INVITE", &self.invite_branch, self.invite_cseq, extra, body)
    }

    /// ACK for the 2xx of the INVITE or re-INVITE with CSeq number `cseq` (new branch), with an
    /// optional body (the SDP answer to an offer in the 2xx).
    pub fn ack_2xx_for(&self, cseq: u32, body: Option<(&str, &str)>) -> String {
        self.request_with("ACK", &branch(), cseq, "", body)
    }
}

/// A response to a request we received (e.g. `200` to the engine's BYE): copies Via, From,
/// To, Call-ID and CSeq as RFC 3261 sec. 8.2.6.2 asks.
pub fn response_to(request: &SipMessage, code: u16, reason: &str) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for via in request.headers("via") {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    for name in ["From", "To", "Call-ID", "CSeq"] {
        if let Some(value) = request.header(name) {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

/// What a TCP peer saw after writing some bytes: the messages read and whether the engine
/// closed the connection.
pub struct TcpExchange {
    pub messages: Vec<SipMessage>,
    pub closed_by_peer: bool,
    /// Bytes left over that did not form a complete message.
    pub trailing: Vec<u8>,
}

/// Connects to `remote`, writes `bytes`, then reads for up to `window` (returning early once
/// `done` says the messages so far are enough, or the engine closes the connection).
pub fn tcp_exchange(
    remote: SocketAddr,
    bytes: &[u8],
    window: Duration,
    done: impl Fn(&[SipMessage]) -> bool,
) -> TcpExchange {
    let mut stream = TcpStream::connect_timeout(&remote, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("TCP connect to {remote}: {e}"));
    stream.set_nodelay(true).ok();
    stream
        .write_all(bytes)
        .unwrap_or_else(|e| panic!("TCP write to {remote}: {e}"));
    let deadline = Instant::now() + window;
    let mut buffer = Vec::new();
    let mut messages = Vec::new();
    let mut closed_by_peer = false;
    let mut chunk = vec![0u8; 65_536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || done(&messages) {
            break;
        }
        stream.set_read_timeout(Some(left)).expect("read timeout");
        match stream.read(&mut chunk) {
            Ok(0) => {
                closed_by_peer = true;
                break;
            }
            Ok(n) => {
                buffer.extend_from_slice(&chunk[..n]);
                while let Some(len) = stream_frame_len(&buffer) {
                    let frame: Vec<u8> = buffer.drain(..len).collect();
                    messages.push(SipMessage::new(frame, Instant::now()));
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                ) =>
            {
                closed_by_peer = true;
                break;
            }
            Err(e) => panic!("TCP read from {remote}: {e}"),
        }
    }
    TcpExchange {
        messages,
        closed_by_peer,
        trailing: buffer,
    }
}

/// One TCP connection to the engine kept open across several writes and reads (for framing
/// tests: split writes, pipelined messages, keep-alives, oversized messages).
pub struct TcpConn {
    stream: TcpStream,
    buffer: Vec<u8>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The engine closed (or reset) the connection.
    pub closed: bool,
}

impl TcpConn {
    pub fn connect(remote: SocketAddr) -> TcpConn {
        let stream = TcpStream::connect_timeout(&remote, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("TCP connect to {remote}: {e}"));
        stream.set_nodelay(true).ok();
        let local = stream.local_addr().expect("local address");
        TcpConn {
            stream,
            buffer: Vec::new(),
            local,
            remote,
            closed: false,
        }
    }

    /// Writes all bytes at once; an error means the engine closed the connection.
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Writes `bytes` in pieces of `chunk` bytes with `pause` between them.
    pub fn write_slowly(
        &mut self,
        bytes: &[u8],
        chunk: usize,
        pause: Duration,
    ) -> std::io::Result<()> {
        for piece in bytes.chunks(chunk.max(1)) {
            self.stream.write_all(piece)?;
            self.stream.flush()?;
            std::thread::sleep(pause);
        }
        Ok(())
    }

    /// Reads complete messages for up to `window`, returning early once `count` messages have
    /// arrived or the engine closed the connection.
    pub fn read_messages(&mut self, window: Duration, count: usize) -> Vec<SipMessage> {
        let deadline = Instant::now() + window;
        let mut messages = Vec::new();
        let mut chunk = vec![0u8; 65_536];
        loop {
            while let Some(len) = stream_frame_len(&self.buffer) {
                let frame: Vec<u8> = self.buffer.drain(..len).collect();
                messages.push(SipMessage::new(frame, Instant::now()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if messages.len() >= count || left.is_zero() || self.closed {
                return messages;
            }
            self.stream
                .set_read_timeout(Some(left))
                .expect("read timeout");
            match self.stream.read(&mut chunk) {
                Ok(0) => self.closed = true,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return messages;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.closed = true,
            }
        }
    }

    /// Waits up to `timeout` for the engine to close the connection (read returns 0 or an
    /// error); returns whether it did, and every message read meanwhile.
    pub fn wait_closed(&mut self, timeout: Duration) -> (bool, Vec<SipMessage>) {
        let deadline = Instant::now() + timeout;
        let mut messages = Vec::new();
        while !self.closed && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            messages.extend(self.read_messages(left, usize::MAX));
        }
        (self.closed, messages)
    }

    /// Bytes received that did not (yet) form a complete message.
    pub fn trailing(&self) -> &[u8] {
        &self.buffer
    }
}

/// Length of the first complete message in a stream buffer (header + Content-Length body),
/// skipping leading CRLF keep-alives; `None` if incomplete.
fn stream_frame_len(buffer: &[u8]) -> Option<usize> {
    let skip = buffer
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    let rest = &buffer[skip..];
    let end = rest.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&rest[..end]);
    let body_len = head
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| long_name(name) == "content-length")
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    (rest.len() >= end + body_len).then_some(skip + end + body_len)
}
