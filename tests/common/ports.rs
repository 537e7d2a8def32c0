//! Free loopback ports for engines and SIPp, and RTP port ranges that parallel engines don't
//! share.
//!
//! Ports come from the kernel (bind to port 0), so they lie in the ephemeral range (Linux default
//! 32768–60999). RTP ranges are handed out below it, in 20000–31999, so a port the kernel gives
//! us can never sit inside some engine's RTP range. A port handed out once is never handed out
//! again by this process: two tests probing at the same moment can't get the same port.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

pub const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// First port of the area RTP ranges are taken from, and the width of one range.
const RTP_AREA_START: u16 = 20_000;
const RTP_AREA_END: u16 = 32_000;
pub const RTP_RANGE_WIDTH: u16 = 200;

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

fn claim(port: u16) -> bool {
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    guard.get_or_insert_with(HashSet::new).insert(port)
}

/// A port on 127.0.0.1 that is free for both UDP and TCP right now (SIP serves both on one port).
pub fn free_udp_tcp_port() -> u16 {
    for _ in 0..200 {
        let udp = UdpSocket::bind((LOOPBACK, 0)).expect("bind a UDP socket on 127.0.0.1");
        let port = udp.local_addr().expect("local address").port();
        if TcpListener::bind((LOOPBACK, port)).is_ok() && claim(port) {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1 after 200 tries");
}

/// A TCP port on 127.0.0.1 that is free right now (HTTP).
pub fn free_tcp_port() -> u16 {
    for _ in 0..200 {
        let listener = TcpListener::bind((LOOPBACK, 0)).expect("bind a TCP socket on 127.0.0.1");
        let port = listener.local_addr().expect("local address").port();
        if claim(port) {
            return port;
        }
    }
    panic!("no free TCP port on 127.0.0.1 after 200 tries");
}

/// An RTP port range `(min, max)` (even `min`, [`RTP_RANGE_WIDTH`] ports) that no other engine
/// of this test process uses. Ranges start at a random slot so that test binaries run one after
/// another don't reuse the same ports while the kernel still holds them.
pub fn rtp_range() -> (u16, u16) {
    const UNSET: u32 = u32::MAX;
    static NEXT_SLOT: AtomicU32 = AtomicU32::new(UNSET);
    let slots = u32::from((RTP_AREA_END - RTP_AREA_START) / RTP_RANGE_WIDTH);
    let start = rand::random_range(0..slots);
    let _ = NEXT_SLOT.compare_exchange(UNSET, start, Ordering::SeqCst, Ordering::SeqCst);
    let slot = NEXT_SLOT.fetch_add(1, Ordering::SeqCst) % slots;
    let min = RTP_AREA_START + u16::try_from(slot).expect("slot fits u16") * RTP_RANGE_WIDTH;
    (min, min + RTP_RANGE_WIDTH - 1)
}

/// The first of `len` consecutive UDP ports on 127.0.0.1 (even first port) that are free right
/// now and never handed out before by this process, e.g. for SIPp's `-mp` (it binds the media
/// port and the ones after it for RTCP and video).
pub fn free_udp_block(len: u16) -> u16 {
    for _ in 0..200 {
        let probe = UdpSocket::bind((LOOPBACK, 0)).expect("bind a UDP socket on 127.0.0.1");
        let first = probe.local_addr().expect("local address").port() & !1;
        drop(probe);
        if first.checked_add(len).is_none() {
            continue;
        }
        let all_free = (first..first + len).all(|p| UdpSocket::bind((LOOPBACK, p)).is_ok());
        if all_free && (first..first + len).all(claim) {
            return first;
        }
    }
    panic!("no {len} consecutive free UDP ports on 127.0.0.1 after 200 tries");
}
