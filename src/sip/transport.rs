//! UDP and TCP transports (RFC 3261 §18). They frame bytes into messages and hand each one to
//! the endpoint on the task that received it; sending never blocks a caller's task.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::endpoint::Endpoint;
use super::message::{Framing, ParseError, parse};
use crate::hash::HashMap;
use crate::shutdown::Shutdown;

/// Where a message came from, and so where its answers go (symmetric response routing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    Udp { peer: SocketAddr },
    Tcp { conn: u64, peer: SocketAddr },
}

impl Flow {
    pub fn peer(&self) -> SocketAddr {
        match self {
            Flow::Udp { peer } | Flow::Tcp { peer, .. } => *peer,
        }
    }

    /// Reliable transports need no retransmissions (RFC 3261 §17).
    pub fn is_reliable(&self) -> bool {
        matches!(self, Flow::Tcp { .. })
    }

    pub fn transport_name(&self) -> &'static str {
        match self {
            Flow::Udp { .. } => "UDP",
            Flow::Tcp { .. } => "TCP",
        }
    }
}

/// The sending side of all transports.
pub struct Transports {
    udp: Option<Arc<UdpSocket>>,
    tcp: Mutex<HashMap<u64, mpsc::Sender<Bytes>>>,
    next_conn: AtomicU64,
    tcp_open: AtomicUsize,
    /// Datagrams or stream writes we had to drop because a queue was full.
    pub send_drops: AtomicU64,
    /// Messages by method / response class, sent (counted here) and received (counted by the
    /// endpoint).
    pub traffic: super::traffic::SipTraffic,
}

/// How many writes may wait for one TCP connection before we drop (bounded, never grows).
const TCP_WRITE_QUEUE: usize = 256;

impl Transports {
    pub fn new(udp: Option<Arc<UdpSocket>>) -> Self {
        Transports {
            udp,
            tcp: Mutex::new(HashMap::default()),
            next_conn: AtomicU64::new(1),
            tcp_open: AtomicUsize::new(0),
            send_drops: AtomicU64::new(0),
            traffic: super::traffic::SipTraffic::default(),
        }
    }

    /// Sends along a flow. Never waits: a full socket buffer or write queue drops the message
    /// (and counts it); SIP's retransmissions recover on UDP.
    pub fn send(&self, flow: &Flow, bytes: Bytes) {
        self.traffic.sent(&bytes);
        match flow {
            Flow::Udp { peer } => {
                let Some(socket) = &self.udp else { return };
                match socket.try_send_to(&bytes, *peer) {
                    Ok(_) => {}
                    // The kernel's send buffer is full: drop rather than queue without bound;
                    // the transaction layer retransmits what matters.
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        self.send_drops.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => debug!(%peer, error = %e, "UDP send failed"),
                }
            }
            Flow::Tcp { conn, peer } => {
                let sender = self.tcp.lock().ok().and_then(|map| map.get(conn).cloned());
                match sender {
                    Some(tx) => {
                        if tx.try_send(bytes).is_err() {
                            self.send_drops.fetch_add(1, Ordering::Relaxed);
                            debug!(%peer, "TCP write queue full or closed; message dropped");
                        }
                    }
                    None => debug!(%peer, "TCP connection gone; message dropped"),
                }
            }
        }
    }

    fn register_tcp(&self, tx: mpsc::Sender<Bytes>) -> u64 {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut map) = self.tcp.lock() {
            map.insert(id, tx);
        }
        id
    }

    fn unregister_tcp(&self, id: u64) {
        if let Ok(mut map) = self.tcp.lock() {
            map.remove(&id);
        }
    }
}

/// Binds the UDP socket with a larger receive buffer (bursts of INVITEs must not be dropped by
/// the kernel before we see them).
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Receives datagrams until shutdown; each one runs to completion on this task.
pub async fn run_udp(socket: Arc<UdpSocket>, endpoint: Arc<Endpoint>, mut shutdown: Shutdown) {
    let max = endpoint.limits().max_message_bytes;
    let mut buf = BytesMut::with_capacity(max + 1);
    // One shutdown wait for the whole loop: a new one per datagram registered and dropped a
    // watch waiter each time (~1 % of the engine's instructions per call).
    let stopped = shutdown.stopped();
    tokio::pin!(stopped);
    loop {
        buf.clear();
        buf.reserve(max + 1);
        let mut window = (&mut buf).limit(max + 1);
        let received = tokio::select! {
            r = socket.recv_buf_from(&mut window) => r,
            () = &mut stopped => return,
        };
        let (n, peer) = match received {
            Ok(r) => r,
            Err(e) => {
                // ICMP port unreachable from an earlier send shows up here on Linux; not fatal.
                debug!(error = %e, "UDP receive error");
                continue;
            }
        };
        let flow = Flow::Udp { peer };
        if n == 0 {
            continue;
        }
        // Copy out exactly the datagram: slices of it (Call-ID, headers) live as long as the
        // call, and must not pin a whole max-size receive buffer each.
        let datagram = Bytes::copy_from_slice(&buf[..n]);
        if n > max {
            endpoint.on_oversized(datagram, flow);
            continue;
        }
        if datagram.iter().all(|&b| b == b'\r' || b == b'\n') {
            continue; // RFC 5626 keep-alive
        }
        let parsed = parse(datagram, Framing::Datagram).map(|(m, _)| m);
        endpoint.on_message(parsed, flow);
    }
}

/// Accepts TCP connections until shutdown.
pub async fn run_tcp(listener: TcpListener, endpoint: Arc<Endpoint>, mut shutdown: Shutdown) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.stopped() => return,
        };
        let (stream, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let transports = endpoint.transports();
        let limit = endpoint.limits().max_tcp_connections;
        if transports.tcp_open.load(Ordering::Relaxed) >= limit {
            warn!(%peer, limit, "TCP connection limit reached; closing new connection (raise sip.max_tcp_connections)");
            drop(stream);
            continue;
        }
        transports.tcp_open.fetch_add(1, Ordering::Relaxed);
        let endpoint = endpoint.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, endpoint.clone(), shutdown).await;
            endpoint
                .transports()
                .tcp_open
                .fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    endpoint: Arc<Endpoint>,
    mut shutdown: Shutdown,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(TCP_WRITE_QUEUE);
    let transports = endpoint.transports();
    let conn = transports.register_tcp(tx);
    let flow = Flow::Tcp { conn, peer };
    debug!(%peer, conn, "TCP connection open");
    let writer_task = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });

    let limits = endpoint.limits();
    let idle = Duration::from_secs(limits.tcp_idle_secs);
    let max = limits.max_message_bytes;
    let mut buf = BytesMut::with_capacity(4096);
    // One shutdown wait for the connection, as in `run_udp`.
    let stopped = shutdown.stopped();
    tokio::pin!(stopped);
    'read: loop {
        let read = tokio::select! {
            r = tokio::time::timeout(idle, reader.read_buf(&mut buf)) => r,
            () = &mut stopped => break,
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
            Err(_) => {
                debug!(%peer, "TCP connection idle; closing");
                break;
            }
        }
        loop {
            // CRLF keep-alives between messages (RFC 5626 §3.5.1) are consumed, so they never
            // count against the message size limit.
            let pings = buf
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            let _ = buf.split_to(pings);
            if buf.is_empty() {
                continue 'read;
            }
            // Parse from a frozen view; only an unparsed remainder is copied back.
            let data = buf.split().freeze();
            match parse(data.clone(), Framing::Stream) {
                Err(ParseError::Incomplete) => {
                    buf.extend_from_slice(&data);
                    if buf.len() > max {
                        info!(%peer, max, "TCP message larger than sip.max_message_bytes; closing connection");
                        break 'read;
                    }
                    continue 'read;
                }
                Ok((_, used)) if used > max => {
                    info!(%peer, max, "TCP message larger than sip.max_message_bytes; closing connection");
                    break 'read;
                }
                Ok((message, used)) => {
                    buf.extend_from_slice(&data[used..]);
                    endpoint.on_message(Ok(message), flow.clone());
                }
                Err(error) => {
                    // Framing is lost (bad Content-Length, garbage): answer if we can, then close
                    // the connection (RFC 4475 §3.1.2.2/3.3.9).
                    endpoint.on_message(Err(error), flow.clone());
                    break 'read;
                }
            }
        }
    }
    // Give a final answer a moment to be written before the queue closes.
    tokio::time::sleep(Duration::from_millis(20)).await;
    transports.unregister_tcp(conn);
    let _ = writer_task.await;
    debug!(%peer, conn, "TCP connection closed");
}
