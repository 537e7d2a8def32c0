//! The dialog state of one leg (RFC 3261 §12): tags, CSeq counters, remote target, route set,
//! and building requests inside the dialog.

use bytes::{BufMut, Bytes, BytesMut};

use crate::sip::endpoint::EndpointConfig;
use crate::sip::headers::{parse_name_addr, split_commas};
use crate::sip::message::{HeaderName, Headers, Method, Request, write_number, write_request};
use crate::sip::reply::{contact_value, via_value};
use crate::sip::transport::Flow;
use crate::sip::validate::RequestInfo;

/// Every Record-Route URI of a message, in the order they appear.
fn record_routes(headers: &Headers) -> Vec<Bytes> {
    headers
        .all(&HeaderName::RecordRoute)
        .flat_map(|v| {
            split_commas(v)
                .map(Bytes::copy_from_slice)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The URI of a message's Contact (where in-dialog requests go, §12.1).
fn contact_uri(headers: &Headers) -> Option<Bytes> {
    headers
        .get(&HeaderName::Contact)
        .and_then(|c| parse_name_addr(c))
        .map(|n| Bytes::from(n.uri))
}

pub struct Dialog {
    pub local_tag: String,
    call_id: Bytes,
    /// Our side's address as the peer wrote it in To (plus our tag when sending).
    local_party: Bytes,
    /// The peer's From value, tag included.
    remote_party: Bytes,
    remote_target: Bytes,
    route_set: Vec<Bytes>,
    local_cseq: u32,
    remote_cseq: u32,
    /// The dialled user, for our Contact.
    local_user: String,
}

impl Dialog {
    /// The dialog a UAS creates by answering `invite` (§12.1.1).
    /// `local_user`: the Request-URI's user part (our Contact repeats it).
    pub fn for_uas(
        invite: &Request,
        info: &RequestInfo,
        local_tag: String,
        local_user: String,
    ) -> Dialog {
        let headers = &invite.headers;
        let remote_target =
            contact_uri(headers).unwrap_or_else(|| Bytes::from(info.from.uri.clone()));
        // The UAS route set is the Record-Route list in order (§12.1.1).
        let route_set = record_routes(headers);
        Dialog {
            local_tag,
            call_id: info.call_id.clone(),
            local_party: headers.get(&HeaderName::To).cloned().unwrap_or_default(),
            remote_party: headers.get(&HeaderName::From).cloned().unwrap_or_default(),
            remote_target,
            route_set,
            local_cseq: 0,
            remote_cseq: info.cseq,
            local_user,
        }
    }

    /// The dialog a UAC creates from the 2xx to its INVITE (§12.1.2): `local_party` is our
    /// From without its tag, `invite_cseq` the INVITE's CSeq number.
    pub fn for_uac(
        call_id: Bytes,
        local_party: Bytes,
        local_tag: String,
        local_user: String,
        invite_cseq: u32,
        response: &crate::sip::message::Response,
        fallback_target: Bytes,
    ) -> Dialog {
        let headers = &response.headers;
        let remote_target = contact_uri(headers).unwrap_or(fallback_target);
        // The UAC route set is the Record-Route list in reverse (§12.1.2).
        let mut route_set = record_routes(headers);
        route_set.reverse();
        Dialog {
            local_tag,
            call_id,
            local_party,
            remote_party: headers.get(&HeaderName::To).cloned().unwrap_or_default(),
            remote_target,
            route_set,
            local_cseq: invite_cseq,
            remote_cseq: 0,
            local_user,
        }
    }

    /// The ACK for a 2xx (§13.2.2.4): the INVITE's CSeq number, a new branch.
    pub fn make_ack(&mut self, config: &EndpointConfig, flow: &Flow) -> Bytes {
        self.local_cseq -= 1;
        self.make_request(Method::Ack, config, flow)
    }

    /// In-dialog requests must carry increasing CSeq numbers (§12.2.2).
    pub fn accept_remote_cseq(&mut self, cseq: u32) -> bool {
        if cseq <= self.remote_cseq {
            return false;
        }
        self.remote_cseq = cseq;
        true
    }

    /// Our Contact: where the peer sends in-dialog requests.
    pub fn local_contact(&self, config: &EndpointConfig, flow: &Flow) -> Bytes {
        let tcp = matches!(flow, Flow::Tcp { .. });
        contact_value(&self.local_user, config.advertised, tcp)
    }

    /// A new request inside the dialog (§12.2.1.1). It travels over the flow the dialog came
    /// in on, which works through NAT and through a record-routing proxy alike.
    pub fn make_request(&mut self, method: Method, config: &EndpointConfig, flow: &Flow) -> Bytes {
        self.local_cseq += 1;
        let mut headers = Headers(Vec::with_capacity(10));
        headers.push(
            HeaderName::Via,
            via_value(flow.transport_name(), config.advertised),
        );
        headers.push(HeaderName::MaxForwards, Bytes::from_static(b"70"));
        let mut from = BytesMut::from(&self.local_party[..]);
        from.extend_from_slice(b";tag=");
        from.extend_from_slice(self.local_tag.as_bytes());
        headers.push(HeaderName::From, from.freeze());
        headers.push(HeaderName::To, self.remote_party.clone());
        headers.push(HeaderName::CallId, self.call_id.clone());
        let mut cseq = BytesMut::with_capacity(16);
        write_number(&mut cseq, u64::from(self.local_cseq));
        cseq.put_u8(b' ');
        cseq.extend_from_slice(method.as_str().as_bytes());
        headers.push(HeaderName::CSeq, cseq.freeze());
        for route in &self.route_set {
            headers.push(HeaderName::Route, route.clone());
        }
        headers.push(
            HeaderName::Other("User-Agent".into()),
            config.user_agent.clone(),
        );
        write_request(&Request {
            method,
            uri: self.remote_target.clone(),
            headers,
            body: Bytes::new(),
        })
    }
}
