//! The RTP port pool: one even port per call from `media.rtp_port_min..=rtp_port_max`, bound
//! for the whole call and returned when the call's [`RtpPort`] is dropped.
//!
//! Returned sockets stay bound and registered with the runtime ("warm") and are handed out
//! again once they have rested [`QUARANTINE`] (so packets still in flight to the last call are
//! gone, and whatever arrived is drained first). Binding a fresh pair costs a dozen syscalls
//! (socket, bind, non-blocking, epoll add and, at the end, epoll delete and close, twice), and
//! a queue-routed call needs two pairs.
//!
//! Every pair of the range may stay warm, unless the open-file limit is lower (the server sets
//! [`RtpPortPool::limit_warm`]). A fixed cap of 2,048 pairs was too small at high call rates:
//! at 10,000 calls/s, 20,000 pairs come back each second and must rest 200 ms, so ~4,000 are
//! resting at any time; with the cap, most calls bound fresh sockets (measured on 2 cores at
//! 6,000 calls/s: 0.72 `socket`+`bind`+`close` and 1.43 `epoll_ctl` per call, none with the
//! pairs kept; engine CPU per call at 7,000–8,000/s 89–92 → 73–80 µs, see `bench/README.md`).
//!
//! # A pair kept for every caller's agent
//!
//! A queue-routed call holds two pairs: the caller's, and later its agent leg's. The pool
//! admits a new caller only while every caller it holds, the new one included, could still
//! get the pair for its agent leg ([`Leg::Caller`]); the agent legs use that reserve
//! ([`Leg::Agent`]). Without it, callers that arrive faster than agents answer took every
//! pair (or every descriptor the open-file limit allows), no agent leg could be placed, and the
//! hotline connected nobody until callers gave up — while new callers took each pair that came
//! free (seen on 2 cores at 22,000 calls/s offered: 9,988 callers waiting for 60 s, none
//! connected). Now the caller that would eat into the reserve gets `503` at once, and the ones
//! waiting reach their agents. Ring-all may place more than one agent leg per caller: those
//! take what is free and fail (the ACD tries again shortly) when nothing is.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

/// How long a returned pair rests before another call gets it.
pub const QUARANTINE: Duration = Duration::from_millis(200);

/// A returned pair, still bound.
struct Warm {
    socket: Arc<UdpSocket>,
    rtcp: Arc<UdpSocket>,
    port: u16,
    released: Instant,
}

struct Free {
    /// Port numbers with nothing bound, in the order they came back.
    cold: VecDeque<u16>,
    /// Bound pairs, oldest first.
    warm: VecDeque<Warm>,
    /// Most pairs bound at once, handed out or kept warm (two file descriptors each): the
    /// range's, or fewer if the open-file limit says so. Returned pairs beyond it are closed.
    capacity: usize,
    /// Pairs handed out now (callers' and agent legs').
    held: usize,
    /// Of those, callers' pairs: each keeps one more of `capacity` for its agent leg.
    callers: usize,
}

/// The pool's pairs at one moment (for `/metrics` and `/healthz`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PairUsage {
    /// Pairs handed out, callers' and agent legs'.
    pub held: usize,
    /// Of those, callers': a new caller is refused once they would exceed
    /// [`PairUsage::callers_max`].
    pub callers: usize,
    /// The most pairs there can be (the range's, or what the open-file limit allows).
    pub max: usize,
}

impl PairUsage {
    /// The most callers (calls) the pairs allow: each keeps a second pair for its agent leg.
    pub fn callers_max(&self) -> usize {
        callers_max(self.max)
    }
}

fn callers_max(pairs: usize) -> usize {
    pairs / 2
}

/// What a pair is for, which decides whether it may be taken (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// A new call: taken only if a pair stays for its agent leg (and for every other caller's).
    Caller,
    /// An agent leg (or any other second pair of a call in progress): uses what is free.
    Agent,
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
    leg: Leg,
    pool: Arc<RtpPortPool>,
}

impl Drop for RtpPort {
    fn drop(&mut self) {
        // Only a pair nobody else holds can be handed out again.
        let sole = Arc::strong_count(&self.socket) == 1 && Arc::strong_count(&self.rtcp) == 1;
        let sockets = sole.then(|| (self.socket.clone(), self.rtcp.clone()));
        self.pool
            .release(self.port, self.leg, sockets, Instant::now());
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
        let cold: VecDeque<u16> = (first..=max).step_by(2).collect();
        Arc::new(RtpPortPool {
            ip,
            free: Mutex::new(Free {
                capacity: cold.len(),
                cold,
                warm: VecDeque::new(),
                held: 0,
                callers: 0,
            }),
        })
    }

    /// At most `pairs` pairs bound at once, handed out or kept warm (what the open-file limit
    /// allows, two descriptors each); never more than the range has.
    pub fn limit_pairs(&self, pairs: usize) {
        if let Ok(mut free) = self.free.lock() {
            let range = free.cold.len() + free.warm.len() + free.held;
            free.capacity = pairs.min(range);
        }
    }

    /// Pairs handed out now (and how many of them are callers'), and the most there can be.
    pub fn usage(&self) -> PairUsage {
        self.free
            .lock()
            .map(|f| PairUsage {
                held: f.held,
                callers: f.callers,
                max: f.capacity,
            })
            .unwrap_or_default()
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

    fn release(
        &self,
        port: u16,
        leg: Leg,
        sockets: Option<(Arc<UdpSocket>, Arc<UdpSocket>)>,
        now: Instant,
    ) {
        let Ok(mut free) = self.free.lock() else {
            return;
        };
        free.unclaim(leg);
        match sockets {
            Some((socket, rtcp)) if free.warm.len() < free.capacity => free.warm.push_back(Warm {
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
    fn reuse(self: &Arc<Self>, warm: Warm, leg: Leg) -> RtpPort {
        drain(&warm.socket);
        drain(&warm.rtcp);
        RtpPort {
            socket: warm.socket,
            rtcp: warm.rtcp,
            port: warm.port,
            leg,
            pool: self.clone(),
        }
    }

    /// A bound pair for `leg`: a rested warm one, else the next free port bound now, else a
    /// warm pair that has not rested (rather than refusing a call). Ports another program
    /// holds are skipped (and retried later), at most [`MAX_SKIPS`] per call. `Err` when none
    /// can be had: a caller would use an agent leg's reserve, every port is taken, or the
    /// system refuses sockets (see [`NoPort`]).
    pub fn allocate(self: &Arc<Self>, leg: Leg) -> Result<RtpPort, NoPort> {
        {
            let mut free = self.free.lock().map_err(|_| NoPort::Exhausted)?;
            free.claim(leg)?;
        }
        let port = self.bind_or_reuse(leg);
        if port.is_err()
            && let Ok(mut free) = self.free.lock()
        {
            free.unclaim(leg);
        }
        port
    }

    fn bind_or_reuse(self: &Arc<Self>, leg: Leg) -> Result<RtpPort, NoPort> {
        if let Some(warm) = self.take_warm(Instant::now(), false) {
            return Ok(self.reuse(warm, leg));
        }
        let mut refused = None;
        for _ in 0..MAX_SKIPS {
            let Some(port) = self.free.lock().ok().and_then(|mut f| f.cold.pop_front()) else {
                break;
            };
            let bind = |port: u16| {
                std::net::UdpSocket::bind(SocketAddr::new(self.ip, port))
                    .and_then(|s| s.set_nonblocking(true).map(|_| s))
                    .and_then(UdpSocket::from_std)
            };
            // Pool ports are even, so the RTCP port above is at most 65535.
            let bound = bind(port).and_then(|socket| Ok((socket, bind(port + 1)?)));
            match bound {
                Ok((socket, rtcp)) => {
                    return Ok(RtpPort {
                        socket: Arc::new(socket),
                        rtcp: Arc::new(rtcp),
                        port,
                        leg,
                        pool: self.clone(),
                    });
                }
                Err(e) => {
                    if let Ok(mut free) = self.free.lock() {
                        free.cold.push_back(port);
                    }
                    // Another program holds the port: try the next one. Anything else (out of
                    // file descriptors or memory) fails the same way for every port: stop,
                    // instead of a socket call per port in the range for every new call.
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::AddrInUse | std::io::ErrorKind::PermissionDenied
                    ) {
                        refused = Some(e);
                        break;
                    }
                }
            }
        }
        if let Some(warm) = self.take_warm(Instant::now(), true) {
            return Ok(self.reuse(warm, leg));
        }
        Err(match refused {
            Some(e) => NoPort::Refused(e),
            None => NoPort::Exhausted,
        })
    }
}

impl Free {
    /// Counts a pair for `leg` as handed out, if the rule in the module docs allows it.
    fn claim(&mut self, leg: Leg) -> Result<(), NoPort> {
        let fits = match leg {
            Leg::Caller => self.held < self.capacity && self.callers < callers_max(self.capacity),
            Leg::Agent => self.held < self.capacity,
        };
        if !fits {
            return Err(NoPort::Full {
                pairs: self.capacity,
                callers: self.callers,
            });
        }
        self.held += 1;
        if leg == Leg::Caller {
            self.callers += 1;
        }
        Ok(())
    }

    fn unclaim(&mut self, leg: Leg) {
        self.held = self.held.saturating_sub(1);
        if leg == Leg::Caller {
            self.callers = self.callers.saturating_sub(1);
        }
    }
}

/// Most ports another program holds that one allocation skips before it gives up (the
/// skipped ports are tried again by later calls).
pub const MAX_SKIPS: usize = 32;

/// Why no RTP port could be had; its `Display` says what the operator can do.
#[derive(Debug, thiserror::Error)]
pub enum NoPort {
    #[error(
        "no RTP port for a new call: {callers} calls hold the {pairs} pairs the RTP port range \
         and the open-file limit allow, with one kept for each call's agent leg (widen \
         media.rtp_port_min..rtp_port_max or raise the open-file limit)"
    )]
    Full { pairs: usize, callers: usize },
    #[error(
        "no free RTP port: every port of media.rtp_port_min..rtp_port_max is in use or held by \
         another program (widen the range)"
    )]
    Exhausted,
    #[error(
        "no RTP socket: {0} (out of file descriptors? each call needs 4; raise the open-file \
         limit, e.g. LimitNOFILE= in the systemd unit, or lower sip.max_calls)"
    )]
    Refused(std::io::Error),
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
        let first = pool.allocate(Leg::Agent).expect("a port");
        assert_eq!(first.port % 2, 0);
        assert_ne!(first.port, busy);
        let before = pool.available();
        drop(first);
        assert_eq!(pool.available(), before + 1);
    }

    /// The first of `len` consecutive loopback UDP ports (from 40000 on) that were all free,
    /// and the sockets now bound to them (drop them to free the range again).
    fn bind_free_range(len: u16) -> (u16, Vec<std::net::UdpSocket>) {
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        (0..50u16)
            .find_map(|i| {
                let base = 40_000 + i * 256;
                let held: Vec<_> = (base..base + len)
                    .map_while(|p| std::net::UdpSocket::bind((ip, p)).ok())
                    .collect();
                (held.len() == usize::from(len)).then_some((base, held))
            })
            .expect("no range of free loopback UDP ports between 40000 and 52800")
    }

    /// A range of `pairs` pairs on loopback whose ports are free right now.
    fn free_range(pairs: u16) -> (u16, u16) {
        let (min, _) = bind_free_range(2 * pairs);
        (min, min + 2 * pairs - 1)
    }

    fn full(result: Result<RtpPort, NoPort>) -> (usize, usize) {
        match result {
            Err(NoPort::Full { pairs, callers }) => (pairs, callers),
            other => panic!("expected Full, got {:?}", other.map(|p| p.port)),
        }
    }

    #[tokio::test]
    async fn every_caller_keeps_a_pair_for_its_agent_leg() {
        let (min, max) = free_range(4);
        let pool = RtpPortPool::new("127.0.0.1".parse().expect("ip"), min, max);
        let first = pool.allocate(Leg::Caller).expect("first caller");
        let second = pool.allocate(Leg::Caller).expect("second caller");
        // Four pairs, two callers: the other two are their agent legs'.
        assert_eq!(full(pool.allocate(Leg::Caller)), (4, 2));
        let first_agent = pool.allocate(Leg::Agent).expect("first caller's agent leg");
        let second_agent = pool
            .allocate(Leg::Agent)
            .expect("second caller's agent leg");
        assert_eq!(
            pool.usage(),
            PairUsage {
                held: 4,
                callers: 2,
                max: 4
            }
        );
        assert_eq!(full(pool.allocate(Leg::Agent)), (4, 2));
        // A call that ends gives both its pairs back: room for one new caller and its agent.
        drop(first_agent);
        drop(first);
        assert_eq!(
            pool.usage(),
            PairUsage {
                held: 2,
                callers: 1,
                max: 4
            }
        );
        let third = pool
            .allocate(Leg::Caller)
            .expect("a caller once a call ended");
        assert_eq!(full(pool.allocate(Leg::Caller)), (4, 2));
        drop((second, second_agent, third));
        assert_eq!(
            pool.usage(),
            PairUsage {
                held: 0,
                callers: 0,
                max: 4
            }
        );
    }

    #[tokio::test]
    async fn the_open_file_limit_lowers_how_many_pairs_are_handed_out() {
        let (min, max) = free_range(6);
        let pool = RtpPortPool::new("127.0.0.1".parse().expect("ip"), min, max);
        pool.limit_pairs(2);
        let caller = pool.allocate(Leg::Caller).expect("one caller");
        assert_eq!(full(pool.allocate(Leg::Caller)), (2, 1));
        let agent = pool.allocate(Leg::Agent).expect("its agent leg");
        assert_eq!(full(pool.allocate(Leg::Agent)), (2, 1));
        drop((caller, agent));
        // A limit above the range's size leaves the range's size.
        pool.limit_pairs(100);
        assert_eq!(pool.usage().max, 6);
    }

    #[tokio::test]
    async fn a_failed_allocation_gives_its_claim_back() {
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        let (min, _) = free_range(1);
        // The range's one pair is held by another program: every allocation fails.
        let _blocker = std::net::UdpSocket::bind((ip, min)).expect("bind");
        let pool = RtpPortPool::new(ip, min, min + 1);
        for _ in 0..3 {
            assert!(matches!(pool.allocate(Leg::Agent), Err(NoPort::Exhausted)));
        }
        assert_eq!(
            pool.usage(),
            PairUsage {
                held: 0,
                callers: 0,
                max: 1
            }
        );
    }

    #[tokio::test]
    async fn a_range_held_by_others_is_refused_after_a_bounded_number_of_tries() {
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        // Another program holds every port of a range larger than one call may try (the
        // first range here whose ports were all free to take).
        let len = 2 * MAX_SKIPS as u16 + 4;
        let (base, _blockers) = bind_free_range(len);
        let pool = RtpPortPool::new(ip, base, base + len - 1);
        let ports = pool.available();
        match pool.allocate(Leg::Agent) {
            Err(NoPort::Exhausted) => {}
            other => panic!("expected Exhausted, got {:?}", other.map(|p| p.port)),
        }
        // The skipped ports stay in the pool, to be tried again by later calls.
        assert_eq!(pool.available(), ports);
    }

    #[tokio::test]
    async fn returned_pairs_rest_before_reuse_and_come_back_drained() {
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        let probe = std::net::UdpSocket::bind((ip, 0)).expect("bind");
        let base = probe.local_addr().expect("addr").port() & !1;
        drop(probe);
        let pool = RtpPortPool::new(ip, base.saturating_sub(40), base.saturating_sub(21));
        let first = pool.allocate(Leg::Agent).expect("a port");
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
            let port = pool
                .allocate(Leg::Agent)
                .expect("a port or the resting pair");
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
