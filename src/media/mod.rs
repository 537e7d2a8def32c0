//! Media: SDP offer/answer ([`sdp`]), the RTP port pool ([`rtp_ports`]), one task per call
//! ([`session`]) that plays prompts, hears keys and, once an agent answers, relays RTP between
//! caller and agent ([`relay`]).

pub mod dtmf;
pub mod g711;
pub mod pacer;
pub mod prompts;
pub mod relay;
pub mod rtp_ports;
pub mod sdp;
pub mod session;
