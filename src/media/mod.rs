//! Media: SDP offer/answer ([`sdp`]) and the RTP port pool ([`rtp_ports`]). Prompts, DTMF and
//! the caller⇄agent relay come with the voice-menu and ACD work.

pub mod dtmf;
pub mod g711;
pub mod pacer;
pub mod prompts;
pub mod rtp_ports;
pub mod sdp;
pub mod session;
