//! Our SIP layer, split by RFC 3261 layer: [`message`] (framing, tokenising, serialising),
//! [`headers`] (typed views of the headers we act on), [`validate`] (what a UAS checks before
//! acting), [`reply`] (building responses), [`transaction`] (pure timer state machines),
//! [`transport`] (UDP/TCP, counting what it sends in [`traffic`]), [`endpoint`] (dispatch of each received message), and [`digest`]
//! with [`registrar`] (agents' phones REGISTER with Digest authentication).
//!
//! Why our own and not `rsipstack`: RFC 4475 demands answers `rsipstack` 0.7.14 cannot give
//! without a second parser in front of it (it drops extension methods and requests missing
//! mandatory headers silently, accepts a Content-Length beyond the datagram, and drops UDP
//! bodies without Content-Length), and the speed target needs each message run to completion on
//! the receiving thread without per-message tasks and copies. Nothing outside `sip` and `call`
//! depends on these types, except the registrar's bindings (for the ACD and the web API).

pub mod digest;
pub mod endpoint;
pub mod headers;
pub mod message;
pub mod registrar;
pub mod reply;
pub mod traffic;
pub mod transaction;
pub mod transport;
pub mod uas;
pub mod validate;
