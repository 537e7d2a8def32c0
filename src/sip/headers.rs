//! Typed views of the header values we act on: Via, name-addr (From/To/Contact), CSeq and URIs
//! (RFC 3261 §19, §20, §25). Each parser works on one already-unfolded value and returns `None`
//! when the value does not follow the grammar closely enough to act on it safely.

use super::message::{Method, is_token_char, trim};

/// One Via value (RFC 3261 §20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub branch: Option<String>,
    pub rport: bool,
}

impl Via {
    /// RFC 3261 §8.1.1.7: a branch starting with the magic cookie is a transaction id. A bare
    /// cookie (RFC 4475 badbranch) carries no id, so we fall back to RFC 2543 matching.
    pub fn rfc3261_branch(&self) -> Option<&str> {
        self.branch
            .as_deref()
            .filter(|b| b.len() > 7 && b.starts_with("z9hG4bK"))
    }
}

/// Splits a header value at commas that are not inside quotes or angle brackets (an iterator:
/// most values have one part, and parsing every request's Via went through here).
pub fn split_commas(value: &[u8]) -> CommaParts<'_> {
    CommaParts {
        value,
        start: 0,
        done: false,
    }
}

/// The parts of a comma-separated header value, trimmed (see [`split_commas`]).
pub struct CommaParts<'a> {
    value: &'a [u8],
    start: usize,
    done: bool,
}

impl<'a> Iterator for CommaParts<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.done {
            return None;
        }
        let rest = &self.value[self.start..];
        let (mut quoted, mut angle, mut escaped) = (false, false, false);
        for (i, &b) in rest.iter().enumerate() {
            if escaped {
                escaped = false;
                continue;
            }
            match b {
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                b'<' if !quoted => angle = true,
                b'>' if !quoted => angle = false,
                b',' if !quoted && !angle => {
                    self.start += i + 1;
                    return Some(trim(&rest[..i]));
                }
                _ => {}
            }
        }
        self.done = true;
        Some(trim(rest))
    }
}

/// Parses the Via values of one header line, one by one (`None` for a malformed one).
pub fn parse_via_list(value: &[u8]) -> impl Iterator<Item = Option<Via>> + '_ {
    split_commas(value).map(parse_via)
}

/// `sent-protocol LWS sent-by *( SEMI via-params )`; LWS is allowed around `/`, `;`, `=` and `:`.
pub fn parse_via(value: &[u8]) -> Option<Via> {
    let text = std::str::from_utf8(value).ok()?;
    let (protocol_and_host, params) = match text.find(';') {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    // sent-protocol: SIP / 2.0 / transport, with optional whitespace around the slashes.
    let mut slashes = protocol_and_host.splitn(3, '/');
    let name = slashes.next()?.trim();
    let version = slashes.next()?.trim();
    let rest = slashes.next()?.trim_start();
    if !name.eq_ignore_ascii_case("SIP") || version != "2.0" {
        return None;
    }
    let split = rest.find([' ', '\t'])?;
    let transport = &rest[..split];
    let sent_by = rest[split..].trim();
    if transport.is_empty() || !transport.bytes().all(is_token_char) || sent_by.is_empty() {
        return None;
    }
    let (host, port) = parse_host_port(sent_by)?;
    let mut via = Via {
        transport: transport.to_ascii_uppercase(),
        host: host.to_string(),
        port,
        branch: None,
        rport: false,
    };
    if let Some(params) = params {
        for param in params.split(';') {
            let (key, val) = split_param(param)?;
            if key.eq_ignore_ascii_case("branch") {
                via.branch = Some(val?.to_string());
            } else if key.eq_ignore_ascii_case("rport") {
                via.rport = true;
            }
        }
    }
    Some(via)
}

/// `token [ EQUAL value ]` with optional LWS; an empty parameter (";;") is a syntax error.
fn split_param(param: &str) -> Option<(&str, Option<&str>)> {
    let (key, val) = match param.find('=') {
        Some(i) => (param[..i].trim(), Some(param[i + 1..].trim())),
        None => (param.trim(), None),
    };
    if key.is_empty() || !key.bytes().all(is_token_char) {
        return None;
    }
    if let Some(v) = val
        && v.is_empty()
    {
        return None;
    }
    Some((key, val))
}

/// `host [ ":" port ]`, host may be a bracketed IPv6 reference.
pub fn parse_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        let close = rest.find(']')?;
        let host = &s[..close + 2];
        let after = rest[close + 1..].trim();
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.trim().parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host, port));
    }
    let (host, port) = match s.find(':') {
        Some(i) => (s[..i].trim(), Some(s[i + 1..].trim().parse().ok()?)),
        None => (s, None),
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    {
        return None;
    }
    Some((host, port))
}

/// A name-addr or addr-spec with its header parameters (From, To, Contact; RFC 3261 §20.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The URI as written (without angle brackets).
    pub uri: String,
    pub tag: Option<String>,
}

pub fn parse_name_addr(value: &[u8]) -> Option<NameAddr> {
    let text = std::str::from_utf8(value).ok()?;
    // Display names may contain anything inside quotes; find '<' outside quotes.
    let mut quoted = false;
    let mut escaped = false;
    let mut open = None;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => {
                open = Some(i);
                break;
            }
            _ => {}
        }
    }
    if quoted {
        return None;
    }
    let (uri, params) = match open {
        Some(i) => {
            let close = text[i..].find('>')? + i;
            (text[i + 1..close].trim(), &text[close + 1..])
        }
        None => {
            // addr-spec: parameters after ';' belong to the header, not the URI (§20.10).
            match text.find(';') {
                Some(i) => (text[..i].trim(), &text[i..]),
                None => (text.trim(), ""),
            }
        }
    };
    if uri.is_empty() || !uri.contains(':') {
        return None;
    }
    let mut tag = None;
    let params = params.trim();
    if !params.is_empty() {
        let params = params.strip_prefix(';')?;
        for param in params.split(';') {
            let (key, val) = split_param(param)?;
            if key.eq_ignore_ascii_case("tag") {
                tag = Some(val?.to_string());
            }
        }
    }
    Some(NameAddr {
        uri: uri.to_string(),
        tag,
    })
}

/// `CSeq: 1*DIGIT LWS Method` (§20.16). The number must be below 2^31 (§8.1.1.5).
pub fn parse_cseq(value: &[u8]) -> Option<(u32, Method)> {
    let value = trim(value);
    let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits == value.len() {
        return None;
    }
    let mut number: u64 = 0;
    for &d in &value[..digits] {
        number = number.checked_mul(10)?.checked_add((d - b'0') as u64)?;
        if number >= 1 << 31 {
            return None;
        }
    }
    let method = trim(&value[digits..]);
    if method.is_empty() || value[digits] != b' ' && value[digits] != b'\t' {
        return None;
    }
    if !method.iter().all(|&b| is_token_char(b)) {
        return None;
    }
    Some((number as u32, Method::from_token(method)))
}

/// `Max-Forwards: 1*DIGIT`, 0–255 (§20.22; leading zeros allowed).
pub fn parse_max_forwards(value: &[u8]) -> Option<u8> {
    let value = trim(value);
    if value.is_empty() || value.len() > 10 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(value).ok()?.parse().ok()?;
    u8::try_from(n).ok()
}

/// The parts of a Request-URI we route on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestUri {
    pub scheme: UriScheme,
    /// The user part, %-unescaped, without user parameters (`;phone-context=…`).
    pub user: Option<String>,
    pub host: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriScheme {
    Sip,
    Sips,
    Tel,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UriError {
    /// Well-formed `scheme:` we do not serve (→ 416, RFC 3261 §8.2.2.1).
    UnsupportedScheme,
    /// Not a URI we can read (→ 400).
    Malformed,
}

pub fn parse_request_uri(uri: &[u8]) -> Result<RequestUri, UriError> {
    let text = std::str::from_utf8(uri).map_err(|_| UriError::Malformed)?;
    let colon = text.find(':').ok_or(UriError::Malformed)?;
    let scheme = &text[..colon];
    let valid_scheme = !scheme.is_empty()
        && scheme.as_bytes()[0].is_ascii_alphabetic()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !valid_scheme {
        return Err(UriError::Malformed);
    }
    let rest = &text[colon + 1..];
    let scheme = if scheme.eq_ignore_ascii_case("sip") {
        UriScheme::Sip
    } else if scheme.eq_ignore_ascii_case("sips") {
        UriScheme::Sips
    } else if scheme.eq_ignore_ascii_case("tel") {
        UriScheme::Tel
    } else {
        return Err(UriError::UnsupportedScheme);
    };
    if scheme == UriScheme::Tel {
        let number = rest.split(';').next().unwrap_or("");
        if number.is_empty() {
            return Err(UriError::Malformed);
        }
        return Ok(RequestUri {
            scheme,
            user: Some(unescape(number)),
            host: String::new(),
        });
    }
    // The user part ends at the first '@' before any URI header ('?').
    let before_headers = rest.split('?').next().unwrap_or("");
    let (user, host_part) = match before_headers.find('@') {
        Some(at) => (Some(&before_headers[..at]), &before_headers[at + 1..]),
        None => (None, before_headers),
    };
    let host_port = host_part.split(';').next().unwrap_or("");
    let (host, _port) = parse_host_port(host_port).ok_or(UriError::Malformed)?;
    let user = user.map(|u| {
        let without_password = u.split(':').next().unwrap_or("");
        unescape(without_password.split(';').next().unwrap_or(""))
    });
    Ok(RequestUri {
        scheme,
        user,
        host: host.to_string(),
    })
}

/// %HH unescaping (RFC 3261 §19.1.2). Invalid escapes are kept as written.
pub fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Comma-separated option tags (Require, Supported, …), lower-cased.
pub fn option_tags(value: &[u8]) -> Vec<String> {
    split_commas(value)
        .filter(|t| !t.is_empty())
        .map(|t| String::from_utf8_lossy(t).to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_lws_everywhere() {
        let v = parse_via(b"SIP  /   2.0 /UDP    192.0.2.2;branch=390skdjuw").expect("via");
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "192.0.2.2");
        assert_eq!(v.branch.as_deref(), Some("390skdjuw"));
        assert_eq!(v.rfc3261_branch(), None);
        let list = parse_via_list(
            b"SIP  / 2.0  / TCP     spindle.example.com   ;   branch  =   z9hG4bK9ikj8  , \
              SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239",
        )
        .collect::<Option<Vec<_>>>()
        .expect("list");
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].rfc3261_branch(), Some("z9hG4bK30239"));
    }

    #[test]
    fn via_variants() {
        let v = parse_via(b"SIP/2.0/UDP [2001:db8::9]:5070;rport;branch=z9hG4bKa").expect("v6");
        assert_eq!(v.host, "[2001:db8::9]");
        assert_eq!(v.port, Some(5070));
        assert!(v.rport);
        assert!(parse_via(b"SIP/2.0/UDP 192.0.2.15;;,;,,").is_none());
        assert!(
            parse_via_list(b"SIP/2.0/UDP 192.0.2.15;;,;,,")
                .collect::<Option<Vec<_>>>()
                .is_none()
        );
        assert!(parse_via(b"SIP/2.0/UDP").is_none());
    }

    #[test]
    fn name_addr_forms() {
        let n = parse_name_addr(
            br#""J Rosenberg \\\""       <sip:jdrosen@example.com> ; tag = 98asjd8"#,
        )
        .expect("quoted");
        assert_eq!(n.uri, "sip:jdrosen@example.com");
        assert_eq!(n.tag.as_deref(), Some("98asjd8"));
        let n = parse_name_addr(b"sip:caller@example.net;tag=134161461246").expect("addr-spec");
        assert_eq!(n.uri, "sip:caller@example.net");
        assert_eq!(n.tag.as_deref(), Some("134161461246"));
        assert!(parse_name_addr(b"\"unterminated <sip:a@b>").is_none());
        assert!(parse_name_addr(b"<sip:a@b>;;").is_none());
    }

    #[test]
    fn cseq_bounds() {
        assert_eq!(parse_cseq(b"0009 INVITE"), Some((9, Method::Invite)));
        assert_eq!(parse_cseq(b"2147483647 BYE").map(|c| c.0), Some(2147483647));
        assert!(parse_cseq(b"2147483648 BYE").is_none());
        assert!(parse_cseq(b"36893488147419103232 REGISTER").is_none());
        assert!(parse_cseq(b"INVITE").is_none());
        assert!(parse_cseq(b"12").is_none());
    }

    #[test]
    fn max_forwards_bounds() {
        assert_eq!(parse_max_forwards(b"0068"), Some(68));
        assert_eq!(parse_max_forwards(b"255"), Some(255));
        assert_eq!(parse_max_forwards(b"256"), None);
        assert_eq!(parse_max_forwards(b"-1"), None);
    }

    #[test]
    fn request_uris() {
        let u = parse_request_uri(b"sip:490@127.0.0.1:5060;transport=udp").expect("sip");
        assert_eq!(u.user.as_deref(), Some("490"));
        let u = parse_request_uri(b"sip:sips%3Auser%40example.com@example.net").expect("esc");
        assert_eq!(u.user.as_deref(), Some("sips:user@example.com"));
        let u = parse_request_uri(b"sip:user;par=u%40example.net@example.com").expect("semi");
        assert_eq!(u.user.as_deref(), Some("user"));
        let u = parse_request_uri(b"tel:+493641490;phone-context=x").expect("tel");
        assert_eq!(u.user.as_deref(), Some("+493641490"));
        assert_eq!(
            parse_request_uri(b"nobodyKnowsThisScheme:totallyopaquecontent"),
            Err(UriError::UnsupportedScheme)
        );
        assert_eq!(
            parse_request_uri(b"soap.beep://192.0.2.103:3002"),
            Err(UriError::UnsupportedScheme)
        );
        assert_eq!(parse_request_uri(b"<sip:a@b>"), Err(UriError::Malformed));
        assert_eq!(unescape("value%41"), "valueA");
        assert_eq!(unescape("%4"), "%4");
    }
}

/// The IP address and port of a SIP URI with an IP literal host (`sip:a@192.0.2.1:5070;…` →
/// 192.0.2.1:5070, port 5060 when absent); None for host names and other schemes.
pub fn contact_socket_addr(uri: &str) -> Option<std::net::SocketAddr> {
    let uri = uri.trim().trim_start_matches('<');
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("SIP:"))?;
    let host_part = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host_port = host_part.split([';', '?', '>']).next()?;
    let (host, port) = parse_host_port(host_port)?;
    let ip: std::net::IpAddr = host.trim_matches(|c| c == '[' || c == ']').parse().ok()?;
    Some(std::net::SocketAddr::new(ip, port.unwrap_or(5060)))
}

#[cfg(test)]
mod contact_tests {
    use super::contact_socket_addr;

    #[test]
    fn contact_addresses_need_ip_literals() {
        let a = |s: &str| contact_socket_addr(s).map(|a| a.to_string());
        assert_eq!(
            a("sip:agent1@127.0.0.1:5071").as_deref(),
            Some("127.0.0.1:5071")
        );
        assert_eq!(
            a("<sip:agent1@127.0.0.1;transport=udp>").as_deref(),
            Some("127.0.0.1:5060")
        );
        assert_eq!(a("sip:[::1]:5080").as_deref(), Some("[::1]:5080"));
        assert_eq!(a("sip:agent1@phone.example"), None);
        assert_eq!(a("tel:+4936411"), None);
    }
}
