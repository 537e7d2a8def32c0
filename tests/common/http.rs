//! A minimal HTTP/1.1 client for the engine's API and `/metrics` (one request per connection,
//! loopback only), and reading samples out of Prometheus text.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::engine::Engine;

/// One answer: status, `Content-Type` (empty if none) and body.
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// Sends one request; `None` while nothing answers at `addr` (e.g. a server still starting).
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Option<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let body = body.unwrap_or("");
    let content_type = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/json\r\n".to_string()
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{content_type}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    Some(Response {
        status,
        content_type,
        body: body.to_string(),
    })
}

/// Sends one request; returns (status, body). Panics if the engine does not answer.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let response = try_request(addr, method, path, body)
        .unwrap_or_else(|| panic!("no HTTP answer from {addr} to {method} {path}"));
    (response.status, response.body)
}

pub fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let (status, body) = request(addr, "GET", path, None);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
}

pub fn post_json(addr: SocketAddr, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    let (status, text) = request(addr, "POST", path, body);
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("POST {path}: not JSON ({e}): {text}"));
    (status, json)
}

/// The engine's `/metrics`, checked to be Prometheus text format 0.0.4.
pub fn metrics(engine: &Engine) -> String {
    let response = try_request(engine.http_addr(), "GET", "/metrics", None)
        .expect("the engine answers GET /metrics");
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.content_type, "text/plain; version=0.0.4");
    response.body
}

/// The value of the sample `series` (name plus labels exactly as rendered: label names
/// sorted), if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}
