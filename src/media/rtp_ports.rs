//! The RTP port pool: one even port per call from `media.rtp_port_min..=rtp_port_max`, bound
//! for the whole call and returned when the call's [`RtpPort`] is dropped.
//!
//! Returned sockets stay bound and registered with the runtime ("warm") and are handed out
//! again once they have rested [`QUARANTINE`] (so packets still in flight to the last call are
//! gone, and whatever arrived is drained first); at most [`MAX_WARM`] pairs are kept, the rest
//! are closed. Binding a fresh pair costs a dozen syscalls (socket, bind, non-blocking, epoll
//! add and, at the end, epoll delete and close, twice), and a queue-routed call needs two
//! pairs.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

/// How long a returned pair rests before another call gets it.
pub const QUARANTINE: Duration = Duration::from_millis(200);
/// Most returned pairs kept bound (two file descriptors each).
pub const MAX_WARM: usize = 2048;

/// A returned pair, still bound.
struct Warm {
    socket: Arc<UdpSocket>,
    rtcp: Arc<UdpSocket>,
    port: u16,
    released: Instant,
}

#[derive(Default)]
struct Free {
    /// Port numbers with nothing bound, in the order they came back.
    cold: VecDeque<u16>,
    /// Bound pairs, oldest first.
    warm: VecDeque<Warm>,
}

pub struct RtpPortPool {
    ip: IpAddr,
    free: Mutex<Free>,
}

/// A bound RTP socket and its RTCP neighbour (port + 1, RFC 3550 §11); the pair goes back to
/// the pool on drop.
pub struct RtpPort {
    pub socket: Arc<UdpSocket>,
    /// RTCP from the caller arrives here; we accept it (so no ICMP errors go back) and ignore it.
    pub rtcp: Arc<UdpSocket>,
    pub port: u16,
    pool: Arc<RtpPortPool>,
}

impl Drop for RtpPort {
    fn drop(&mut self) {
        // Only a pair nobody else holds can be handed out again.
        let sole = Arc::strong_count(&self.socket) == 1 && Arc::strong_count(&self.rtcp) == 1;
        let sockets = sole.then(|| (self.socket.clone(), self.rtcp.clone()));
        self.pool.release(self.port, sockets, Instant::now());
    }
}

/// Reads and discards whatever waits on the socket.
fn drain(socket: &UdpSocket) {
    let mut sink = [0u8; 2048];
    while socket.try_recv_from(&mut sink).is_ok() {}
}

impl RtpPortPool {
    pub fn new(ip: IpAddr, min: u16, max: u16) -> Arc<Self> {
        let first = min + (min % 2);
        let cold = (first..=max).step_by(2).collect();
        Arc::new(RtpPortPool {
            ip,
            free: Mutex::new(Free {
                cold,
                warm: VecDeque::new(),
            }),
        })
    }

    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    pub fn available(&self) -> usize {
        self.free
            .lock()
            .map(|f| f.cold.len() + f.warm.len())
            .unwrap_or(0)
    }

    fn release(&self, port: u16, sockets: Option<(Arc<UdpSocket>, Arc<UdpSocket>)>, now: Instant) {
        let Ok(mut free) = self.free.lock() else {
            return;
        };
        match sockets {
            Some((socket, rtcp)) if free.warm.len() < MAX_WARM => free.warm.push_back(Warm {
                socket,
                rtcp,
                port,
                released: now,
            }),
            // Closed when `sockets` goes (after the lock).
            _ => free.cold.push_back(port),
        }
    }

    /// The oldest warm pair if it has rested [`QUARANTINE`] by `now` (or at all, `any`).
    fn take_warm(&self, now: Instant, any: bool) -> Option<Warm> {
        let mut free = self.free.lock().ok()?;
        let rested = free
            .warm
            .front()
            .is_some_and(|w| now.duration_since(w.released) >= QUARANTINE);
        if rested || any {
            free.warm.pop_front()
        } else {
            None
        }
    }

    /// A warm pair handed out again, emptied of what arrived meanwhile.
    fn reuse(self: &Arc<Self>, warm: Warm) -> RtpPort {
        drain(&warm.socket);
        drain(&warm.rtcp);
        RtpPort {
            socket: warm.socket,
            rtcp: warm.rtcp,
            port: warm.port,
            pool: self.clone(),
        }
    }

    /// A bound pair: a rested warm one, else the next free port bound now, else a warm pair
    /// that has not rested (rather than refusing a call). Ports another program holds are
    /// skipped (and retried later); `None` when every port is taken.
    pub fn allocate(self: &Arc<Self>) -> Option<RtpPort> {
        if let Some(warm) = self.take_warm(Instant::now(), false) {
            return Some(self.reuse(warm));
        }
        let attempts = self.free.lock().map(|f| f.cold.len()).unwrap_or(0);
        for _ in 0..attempts {
            let port = self.free.lock().ok()?.cold.pop_front()?;
            let bind = |port: u16| {
                std::net::UdpSocket::bind(SocketAddr::new(self.ip, port))
                    .and_then(|s| s.set_nonblocking(true).map(|_| s))
                    .and_then(UdpSocket::from_std)
            };
            let bound = port
                .checked_add(1)
                .ok_or_else(|| std::io::Error::other("no RTCP port above 65535"))
                .and_then(|rtcp_port| Ok((bind(port)?, bind(rtcp_port)?)));
            match bound {
                Ok((socket, rtcp)) => {
                    return Some(RtpPort {
                        socket: Arc::new(socket),
                        rtcp: Arc::new(rtcp),
                        port,
                        pool: self.clone(),
                    });
                }
                Err(_) => {
                    if let Ok(mut free) = self.free.lock() {
                        free.cold.push_back(port);
                    }
                }
            }
        }
        self.take_warm(Instant::now(), true)
            .map(|warm| self.reuse(warm))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ports_are_even_reused_and_skipped_when_busy() {
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        // Occupy one port so the pool has to skip it.
        let blocker = std::net::UdpSocket::bind((ip, 0)).expect("bind");
        let busy = blocker.local_addr().expect("addr").port();
        let base = busy - busy % 2;
        let pool = RtpPortPool::new(ip, base, base + 3);
        let first = pool.allocate().expect("a port");
        assert_eq!(first.port % 2, 0);
        assert_ne!(first.port, busy);
        let before = pool.available();
        drop(first);
        assert_eq!(pool.available(), before + 1);
    }

    #[tokio::test]
    async fn returned_pairs_rest_before_reuse_and_come_back_drained() {
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        let probe = std::net::UdpSocket::bind((ip, 0)).expect("bind");
        let base = probe.local_addr().expect("addr").port() & !1;
        drop(probe);
        let pool = RtpPortPool::new(ip, base.saturating_sub(40), base.saturating_sub(21));
        let first = pool.allocate().expect("a port");
        let first_port = first.port;
        let local = first.socket.local_addr().expect("addr");
        drop(first);
        let sender = std::net::UdpSocket::bind((ip, 0)).expect("bind");
        sender.send_to(b"stale", local).expect("send");
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The returned pair rests: other ports come first; once none is left to bind, the
        // resting pair is handed out rather than refusing a call, without what was sent to it.
        let mut held = Vec::new();
        let again = loop {
            let port = pool.allocate().expect("a port or the resting pair");
            if port.port == first_port {
                break port;
            }
            held.push(port);
        };
        assert!(
            !held.is_empty(),
            "a resting pair was handed out while ports were free"
        );
        let mut buf = [0u8; 16];
        assert!(again.socket.try_recv_from(&mut buf).is_err(), "drained");
        // Returned pairs queue up oldest first; once rested, they go before cold ports.
        let returned = held.pop().expect("a held port");
        let returned_port = returned.port;
        drop(returned);
        drop(held);
        let later = Instant::now() + QUARANTINE;
        let warm = pool.take_warm(later, false).expect("rested pair");
        assert_eq!(warm.port, returned_port, "oldest returned pair first");
    }
}
