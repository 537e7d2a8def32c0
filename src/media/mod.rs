//! SDP and RTP.
