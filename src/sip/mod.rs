//! Our SIP layer. Nothing outside `sip` depends on how messages are stored; the call layer sees
//! [`message::Request`]/[`message::Response`] and the endpoint's handles.

pub mod transaction;
