//! SDP offer/answer for G.711 + telephone-event (RFC 3264, RFC 4566, RFC 4733).
//!
//! Deliberately small: the voice-menu work replaces the line parser with a full SDP model; the
//! offer/answer rules (codec choice in the offerer's order, mirrored direction, port 0 for media
//! we decline) stay.

use std::net::IpAddr;

use bytes::{BufMut, Bytes, BytesMut};

use crate::sip::message::{write_ip, write_number};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Pcmu,
    Pcma,
}

impl Codec {
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The answerer's direction for an offered one (RFC 3264 §6.1).
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    /// Whether the offerer put us on hold: it receives nothing (`sendonly`, `inactive`), so we
    /// send nothing until an offer says otherwise (RFC 3264 §6.1, §8.4).
    pub fn holds(self) -> bool {
        matches!(self, Direction::SendOnly | Direction::Inactive)
    }

    fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

/// What we take from a peer's SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub address: Option<IpAddr>,
    pub audio_port: u16,
    /// (payload type, codec) in the peer's order of preference.
    pub codecs: Vec<(u8, Codec)>,
    pub telephone_event: Option<u8>,
    pub direction: Direction,
    /// The other m-lines as (media, proto, first format), answered with port 0.
    pub declined: Vec<(String, String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdpError {
    Malformed(&'static str),
    /// No audio stream with a codec we speak (→ 488).
    NoCommonCodec,
}

pub fn parse_offer(body: &[u8]) -> Result<Offer, SdpError> {
    let text = std::str::from_utf8(body).map_err(|_| SdpError::Malformed("not UTF-8"))?;
    let mut session_addr = None;
    let mut offer = Offer {
        address: None,
        audio_port: 0,
        codecs: Vec::new(),
        telephone_event: None,
        direction: Direction::SendRecv,
        declined: Vec::new(),
    };
    let mut saw_version = false;
    // The m= section we are in: None = session level, Some(true) = our audio stream.
    let mut in_audio: Option<bool> = None;
    let mut formats: Vec<u8> = Vec::new();
    // (payload type, encoding as written): compared without regard to case below, so no
    // lower-cased copy is made per line.
    let mut rtpmaps: Vec<(u8, &str)> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        // `<type>=<value>` with a one-letter type (RFC 4566 §5); anything else is skipped.
        let (kind, value) = match line.as_bytes() {
            [kind, b'=', ..] => (*kind, &line[2..]),
            _ => continue,
        };
        match kind {
            b'v' => saw_version = true,
            b'c' => {
                let addr = value
                    .split_whitespace()
                    .nth(2)
                    .and_then(|a| a.split('/').next());
                let addr = addr.and_then(|a| a.parse::<IpAddr>().ok());
                match in_audio {
                    None => session_addr = addr,
                    Some(true) => offer.address = addr.or(offer.address),
                    Some(false) => {}
                }
            }
            b'm' => {
                let mut parts = value.split_whitespace();
                let media = parts.next().unwrap_or("");
                let port = parts
                    .next()
                    .and_then(|p| p.split('/').next()?.parse::<u16>().ok());
                let proto = parts.next().unwrap_or("");
                let mut fmts = parts;
                let usable = media == "audio"
                    && offer.codecs.is_empty()
                    && formats.is_empty()
                    && proto.starts_with("RTP/AVP")
                    && port.is_some_and(|p| p != 0);
                if usable {
                    offer.audio_port = port.unwrap_or(0);
                    formats.extend(fmts.filter_map(|f| f.parse::<u8>().ok()));
                    in_audio = Some(true);
                } else {
                    let first = fmts.next().unwrap_or("0");
                    offer
                        .declined
                        .push((media.to_string(), proto.to_string(), first.to_string()));
                    in_audio = Some(false);
                }
            }
            b'a' if in_audio != Some(false) => {
                if let Some(map) = value.strip_prefix("rtpmap:") {
                    if let Some((pt, encoding)) = map.split_once(' ')
                        && let Ok(pt) = pt.trim().parse()
                    {
                        rtpmaps.push((pt, encoding.trim()));
                    }
                } else {
                    let direction = match value {
                        "sendrecv" => Some(Direction::SendRecv),
                        "sendonly" => Some(Direction::SendOnly),
                        "recvonly" => Some(Direction::RecvOnly),
                        "inactive" => Some(Direction::Inactive),
                        _ => None,
                    };
                    if let Some(d) = direction {
                        offer.direction = d;
                    }
                }
            }
            _ => {}
        }
    }
    if !saw_version {
        return Err(SdpError::Malformed("no v= line"));
    }
    offer.address = offer.address.or(session_addr);
    for pt in formats {
        let mapped = rtpmaps.iter().find(|(p, _)| *p == pt).map(|(_, e)| *e);
        let codec = match (pt, mapped) {
            (_, Some(e)) if starts_with_ignore_case(e, "pcmu/8000") => Some(Codec::Pcmu),
            (_, Some(e)) if starts_with_ignore_case(e, "pcma/8000") => Some(Codec::Pcma),
            (_, Some(e)) if starts_with_ignore_case(e, "telephone-event/8000") => {
                offer.telephone_event.get_or_insert(pt);
                None
            }
            (0, None) => Some(Codec::Pcmu),
            (8, None) => Some(Codec::Pcma),
            _ => None,
        };
        if let Some(c) = codec {
            offer.codecs.push((pt, c));
        }
    }
    if offer.codecs.is_empty() {
        return Err(SdpError::NoCommonCodec);
    }
    Ok(offer)
}

/// Whether `text` begins with `prefix`, ASCII case ignored (encoding names are
/// case-insensitive, RFC 4566 §6).
fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Our session description: an answer to `offer`, or our own offer when `offer` is None. The
/// answer uses the payload types the offer used for the same codecs (RFC 3264 §6.1); the
/// session id stays fixed for a call and the version rises with each new description (§8).
pub fn describe(
    ip: IpAddr,
    port: u16,
    session_id: u64,
    version: u64,
    offer: Option<&Offer>,
) -> Bytes {
    match offer {
        Some(o) => write_description(
            ip,
            port,
            (session_id, version),
            o.codecs.get(..1).unwrap_or_default(),
            o.telephone_event,
            o.direction.answer(),
            &o.declined,
        ),
        None => self::offer(ip, port, session_id, version, Codec::Pcmu),
    }
}

/// Our own offer: both G.711 laws, `first` first (toward an agent: the caller's law, so the
/// relay rarely transcodes), telephone events as 101, send and receive.
pub fn offer(ip: IpAddr, port: u16, session_id: u64, version: u64, first: Codec) -> Bytes {
    let codecs: &[(u8, Codec)] = match first {
        Codec::Pcmu => &[(0, Codec::Pcmu), (8, Codec::Pcma)],
        Codec::Pcma => &[(8, Codec::Pcma), (0, Codec::Pcmu)],
    };
    write_description(
        ip,
        port,
        (session_id, version),
        codecs,
        Some(101),
        Direction::SendRecv,
        &[],
    )
}

/// An SDP body with one audio stream (`codecs`, then telephone events if `te`) and the streams
/// `declined` (port 0), written straight into the buffer.
fn write_description(
    ip: IpAddr,
    port: u16,
    (session_id, version): (u64, u64),
    codecs: &[(u8, Codec)],
    te: Option<u8>,
    direction: Direction,
    declined: &[(String, String, String)],
) -> Bytes {
    let mut sdp = BytesMut::with_capacity(320);
    write_origin_and_connection(&mut sdp, ip, session_id, version);
    sdp.extend_from_slice(b"m=audio ");
    write_number(&mut sdp, u64::from(port));
    sdp.extend_from_slice(b" RTP/AVP");
    for pt in codecs.iter().map(|(pt, _)| *pt).chain(te) {
        sdp.put_u8(b' ');
        write_number(&mut sdp, u64::from(pt));
    }
    sdp.extend_from_slice(b"\r\n");
    for (pt, codec) in codecs {
        write_rtpmap(&mut sdp, *pt, codec.name());
    }
    if let Some(te) = te {
        write_rtpmap(&mut sdp, te, "telephone-event");
        sdp.extend_from_slice(b"a=fmtp:");
        write_number(&mut sdp, u64::from(te));
        sdp.extend_from_slice(b" 0-15\r\n");
    }
    sdp.extend_from_slice(b"a=ptime:20\r\na=");
    sdp.extend_from_slice(direction.attribute().as_bytes());
    sdp.extend_from_slice(b"\r\n");
    for (media, proto, fmt) in declined {
        let line: [&[u8]; 7] = [
            b"m=",
            media.as_bytes(),
            b" 0 ",
            proto.as_bytes(),
            b" ",
            fmt.as_bytes(),
            b"\r\n",
        ];
        for part in line {
            sdp.extend_from_slice(part);
        }
    }
    sdp.freeze()
}

/// `v=`, `o=`, `s=`, `c=` and `t=` of our descriptions (RFC 4566 §5).
fn write_origin_and_connection(sdp: &mut BytesMut, ip: IpAddr, session_id: u64, version: u64) {
    let family: &[u8] = if ip.is_ipv4() { b"IP4 " } else { b"IP6 " };
    sdp.extend_from_slice(b"v=0\r\no=zentrale ");
    write_number(sdp, session_id);
    sdp.put_u8(b' ');
    write_number(sdp, version);
    sdp.extend_from_slice(b" IN ");
    sdp.extend_from_slice(family);
    write_ip(sdp, ip);
    sdp.extend_from_slice(b"\r\ns=zentrale\r\nc=IN ");
    sdp.extend_from_slice(family);
    write_ip(sdp, ip);
    sdp.extend_from_slice(b"\r\nt=0 0\r\n");
}

/// `a=rtpmap:<pt> <encoding>/8000`.
fn write_rtpmap(sdp: &mut BytesMut, pt: u8, encoding: &str) {
    sdp.extend_from_slice(b"a=rtpmap:");
    write_number(sdp, u64::from(pt));
    sdp.put_u8(b' ');
    sdp.extend_from_slice(encoding.as_bytes());
    sdp.extend_from_slice(b"/8000\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIPP_OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
        c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 0 101\r\n\
        a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\nm=video 3227 RTP/AVP 31\r\n";

    #[test]
    fn answers_in_the_offerers_order() {
        let offer = parse_offer(SIPP_OFFER.as_bytes()).expect("offer");
        assert_eq!(offer.codecs[0], (8, Codec::Pcma));
        assert_eq!(offer.telephone_event, Some(101));
        assert_eq!(offer.audio_port, 6000);
        let answer = describe("127.0.0.1".parse().expect("ip"), 20000, 7, 8, Some(&offer));
        let answer = std::str::from_utf8(&answer).expect("ASCII");
        assert!(
            answer.contains("m=audio 20000 RTP/AVP 8 101\r\n"),
            "{answer}"
        );
        assert!(answer.contains("m=video 0 RTP/AVP 31\r\n"));
        assert!(parse_offer(answer.as_bytes()).is_ok());
    }

    #[test]
    fn hold_is_mirrored_and_lpc_only_is_refused() {
        let hold = SIPP_OFFER.replace("m=video 3227 RTP/AVP 31\r\n", "a=sendonly\r\n");
        let offer = parse_offer(hold.as_bytes()).expect("offer");
        assert_eq!(offer.direction.answer(), Direction::RecvOnly);
        assert!(offer.direction.holds());
        assert!(!Direction::RecvOnly.holds() && !Direction::SendRecv.holds());
        let lpc = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 RTP/AVP 12\r\n";
        assert_eq!(parse_offer(lpc.as_bytes()), Err(SdpError::NoCommonCodec));
        assert!(matches!(parse_offer(b"hello"), Err(SdpError::Malformed(_))));
    }

    #[test]
    fn encoding_names_in_any_case_dynamic_types_and_the_media_address() {
        // Lower-case and mixed-case names map dynamic payload types; the media-level c= wins
        // over the session's; a second audio stream and an unknown rtpmap are not taken.
        let text = "v=0\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
            m=audio 4000 RTP/AVP 96 97 98 0\r\nc=IN IP4 192.0.2.7/127\r\n\
            a=rtpmap:96 pcma/8000\r\na=rtpmap:97 Telephone-Event/8000\r\n\
            a=rtpmap:98 opus/48000/2\r\nm=audio 4002 RTP/AVP 8\r\n";
        let offer = parse_offer(text.as_bytes()).expect("offer");
        assert_eq!(offer.codecs, vec![(96, Codec::Pcma), (0, Codec::Pcmu)]);
        assert_eq!(offer.telephone_event, Some(97));
        assert_eq!(offer.address, Some("192.0.2.7".parse().expect("ip")));
        assert_eq!(offer.audio_port, 4000);
        assert_eq!(
            offer.declined,
            vec![("audio".to_string(), "RTP/AVP".to_string(), "8".to_string())]
        );
        // Without a media-level c= the session's address serves.
        let session_only = text.replace("c=IN IP4 192.0.2.7/127\r\n", "");
        let offer = parse_offer(session_only.as_bytes()).expect("offer");
        assert_eq!(offer.address, Some("192.0.2.1".parse().expect("ip")));
    }
}
