//! The RTP port pool: one even port per call from `media.rtp_port_min..=rtp_port_max`, bound
//! for the whole call and returned when the call's [`RtpPort`] is dropped.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;

pub struct RtpPortPool {
    ip: IpAddr,
    free: Mutex<VecDeque<u16>>,
}

/// A bound RTP socket and its RTCP neighbour (port + 1, RFC 3550 §11); the ports go back to
/// the pool on drop.
pub struct RtpPort {
    pub socket: UdpSocket,
    /// RTCP from the caller arrives here; we accept it (so no ICMP errors go back) and ignore it.
    pub rtcp: UdpSocket,
    pub port: u16,
    pool: Arc<RtpPortPool>,
}

impl Drop for RtpPort {
    fn drop(&mut self) {
        if let Ok(mut free) = self.pool.free.lock() {
            free.push_back(self.port);
        }
    }
}

impl RtpPortPool {
    pub fn new(ip: IpAddr, min: u16, max: u16) -> Arc<Self> {
        let first = min + (min % 2);
        let free = (first..=max).step_by(2).collect();
        Arc::new(RtpPortPool {
            ip,
            free: Mutex::new(free),
        })
    }

    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    pub fn available(&self) -> usize {
        self.free.lock().map(|f| f.len()).unwrap_or(0)
    }

    /// Binds the next free port. Ports another program holds are skipped (and retried later);
    /// `None` when every port is taken.
    pub fn allocate(self: &Arc<Self>) -> Option<RtpPort> {
        let attempts = self.available();
        for _ in 0..attempts {
            let port = self.free.lock().ok()?.pop_front()?;
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
                        socket,
                        rtcp,
                        port,
                        pool: self.clone(),
                    });
                }
                Err(_) => {
                    if let Ok(mut free) = self.free.lock() {
                        free.push_back(port);
                    }
                }
            }
        }
        None
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
}
