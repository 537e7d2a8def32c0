//! Agents' phones registering end to end: SIPp answers the Digest challenge for agent1 and the
//! binding shows up in `/api/registrations`; the raw client checks the refusals (403, 404, 423,
//! 400/401 for garbage), unregistering with `Expires: 0` and the expiry of a short binding.
//! Digest responses are computed here with the `md-5` crate, independently of the engine.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use serde_json::Value;

use common::engine::Engine;
use common::sip::{SipClient, SipMessage, branch, token};
use common::sipp::Sipp;

const REPLY: Duration = Duration::from_secs(2);

/// The shipped agents' password variables as the tests set them.
const AGENT1_PASSWORD: (&str, &str) = ("ZENTRALE_AGENT1_PASSWORD", "secret");

/// `GET /api/registrations` as JSON.
fn registrations(engine: &Engine) -> Vec<Value> {
    match common::http::get_json(engine.http_addr(), "/api/registrations") {
        Value::Array(list) => list,
        other => panic!("not a JSON list: {other}"),
    }
}

fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A quoted parameter of a `WWW-Authenticate` value.
fn challenge_param(value: &str, name: &str) -> Option<String> {
    let start = value.find(&format!("{name}=\""))? + name.len() + 2;
    let end = value[start..].find('"')? + start;
    Some(value[start..end].to_string())
}

/// One registering phone: the raw client plus the dialog-ish state of its REGISTERs.
struct Phone {
    client: SipClient,
    call_id: String,
    tag: String,
    cseq: u32,
}

impl Phone {
    fn new(engine: &Engine) -> Phone {
        Phone {
            client: SipClient::new(engine.sip_addr()),
            call_id: format!("reg-{}", token()),
            tag: token(),
            cseq: 0,
        }
    }

    fn contact(&self, user: &str) -> String {
        format!("<sip:{user}@{}>", self.client.local)
    }

    /// Sends a REGISTER for `user` with `extra` header lines (each ending in CRLF) and returns
    /// the final answer.
    fn register(&mut self, user: &str, extra: &str) -> SipMessage {
        self.cseq += 1;
        let (local, remote) = (self.client.local, self.client.remote);
        let request = format!(
            "REGISTER sip:{remote} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};rport;branch={branch}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{remote}>;tag={tag}\r\n\
             To: <sip:{user}@{remote}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             {extra}\
             Content-Length: 0\r\n\r\n",
            branch = branch(),
            tag = self.tag,
            call_id = self.call_id,
            cseq = self.cseq,
        );
        self.client.send(request);
        let cseq = self.cseq;
        let (found, others) = self.client.recv_until(REPLY, |m| {
            m.is_final() && m.cseq().is_some_and(|(n, _)| n == cseq)
        });
        found.unwrap_or_else(|| panic!("no answer to REGISTER {cseq}; got {others:#?}"))
    }

    /// REGISTER, take the 401 challenge, REGISTER again with Digest credentials of
    /// `auth_user`/`password` (qop=auth); returns the second answer.
    fn register_authed(
        &mut self,
        user: &str,
        auth_user: &str,
        password: &str,
        extra: &str,
    ) -> SipMessage {
        let challenge = self.register(user, extra);
        assert_eq!(challenge.status(), Some(401), "{challenge:?}");
        let value = challenge
            .header("WWW-Authenticate")
            .expect("401 carries WWW-Authenticate");
        assert!(value.starts_with("Digest "), "{value}");
        let realm = challenge_param(&value, "realm").expect("realm");
        let nonce = challenge_param(&value, "nonce").expect("nonce");
        let uri = format!("sip:{}", self.client.remote);
        let (nc, cnonce) = ("00000001", token());
        let ha1 = md5_hex(&format!("{auth_user}:{realm}:{password}"));
        let ha2 = md5_hex(&format!("REGISTER:{uri}"));
        let response = md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
        let auth = format!(
            "Authorization: Digest username=\"{auth_user}\", realm=\"{realm}\", \
             nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, \
             qop=auth, nc={nc}, cnonce=\"{cnonce}\"\r\n"
        );
        self.register(user, &format!("{auth}{extra}"))
    }
}

#[test]
fn sipp_registers_agent1_with_digest() {
    let engine = Engine::start(&[AGENT1_PASSWORD]);
    let result = Sipp::new("uac_register.xml", engine.sip_addr())
        .service("agent1")
        .arg("-au")
        .arg("agent1")
        .arg("-ap")
        .arg("secret")
        .timeout(Duration::from_secs(20))
        .run();
    result.assert_all_successful(1);

    let list = registrations(&engine);
    assert_eq!(list.len(), 1, "{list:?}");
    let entry = &list[0];
    assert_eq!(entry["agent"], "agent1", "{entry}");
    let source: SocketAddr = entry["source"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("source address in {entry}"));
    // SIPp's Contact, from the port it sends from.
    assert_eq!(
        entry["contact"],
        format!("sip:agent1@127.0.0.1:{};transport=UDP", source.port()),
        "{entry}"
    );
    let left = entry["expires_in_secs"].as_u64().expect("expires_in_secs");
    assert!((100..=120).contains(&left), "{entry}");
    engine.assert_no_panic();
}

#[test]
fn refusals_and_unregistering_with_the_raw_client() {
    let engine = Engine::start(&[AGENT1_PASSWORD]);
    let mut phone = Phone::new(&engine);
    let contact = format!("Contact: {}\r\n", phone.contact("agent1"));

    // Without credentials: a challenge for our realm.
    let challenge = phone.register("agent1", &contact);
    assert_eq!(challenge.status(), Some(401));
    let value = challenge.header("WWW-Authenticate").expect("challenge");
    assert_eq!(
        challenge_param(&value, "realm").as_deref(),
        Some("zentrale")
    );

    let wrong = phone.register_authed("agent1", "agent1", "wrong", &contact);
    assert_eq!(wrong.status(), Some(403), "{wrong:?}");
    let unknown = phone.register_authed("nobody", "nobody", "secret", &contact);
    assert_eq!(unknown.status(), Some(404), "{unknown:?}");
    let other_user = phone.register_authed("agent1", "agent2", "secret", &contact);
    assert_eq!(other_user.status(), Some(403), "{other_user:?}");
    // agent2's variable is not set: refused, and the log says which variable to set.
    let unset = phone.register_authed(
        "agent2",
        "agent2",
        "x",
        &format!("Contact: {}\r\n", phone.contact("agent2")),
    );
    assert_eq!(unset.status(), Some(403), "{unset:?}");
    assert!(engine.log().contains("ZENTRALE_AGENT2_PASSWORD"));

    let brief = phone.register_authed(
        "agent1",
        "agent1",
        "secret",
        &format!("{contact}Expires: 10\r\n"),
    );
    assert_eq!(brief.status(), Some(423), "{brief:?}");
    assert_eq!(brief.header("Min-Expires").as_deref(), Some("60"));
    assert!(registrations(&engine).is_empty());

    let ok = phone.register_authed(
        "agent1",
        "agent1",
        "secret",
        &format!("{contact}Expires: 600\r\n"),
    );
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    let listed = ok.header("Contact").expect("200 lists the binding");
    assert_eq!(listed, format!("{};expires=600", phone.contact("agent1")));
    let list = registrations(&engine);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["agent"], "agent1");
    assert_eq!(list[0]["source"], phone.client.local.to_string());

    let gone = phone.register_authed(
        "agent1",
        "agent1",
        "secret",
        &format!("{contact}Expires: 0\r\n"),
    );
    assert_eq!(gone.status(), Some(200), "{gone:?}");
    assert_eq!(gone.header("Contact"), None);
    assert!(registrations(&engine).is_empty());
    engine.assert_no_panic();
}

#[test]
fn garbage_authorization_is_answered_and_the_engine_stays_up() {
    let engine = Engine::start(&[AGENT1_PASSWORD]);
    let mut phone = Phone::new(&engine);
    for garbage in [
        "Authorization: Digest username=\"agent1\r\n",
        "Authorization: Digest ,,,=\r\n",
        "Authorization: Digest username=agent1, realm=zentrale, nonce=x, uri=y, response=zz\r\n",
        "Authorization: Digest username=agent1, realm=\"zentrale\", nonce=\"\", uri=\"\", \
         response=\"00000000000000000000000000000000\"\r\n",
        "Authorization: Basic \u{1}\u{2}\u{3}\r\n",
        "Authorization: \r\n",
    ] {
        let answer = phone.register("agent1", garbage);
        assert!(
            matches!(answer.status(), Some(400 | 401)),
            "{garbage:?} got {answer:?}"
        );
    }
    assert!(
        phone
            .client
            .options("ping", REPLY)
            .is_some_and(|r| r.status() == Some(200)),
        "engine still answers OPTIONS"
    );
    engine.assert_no_panic();
}

#[test]
fn a_short_binding_expires() {
    let engine = Engine::start(&[
        AGENT1_PASSWORD,
        ("ZENTRALE_SIP__REGISTER_MIN_EXPIRES_SECS", "1"),
    ]);
    let mut phone = Phone::new(&engine);
    let extra = format!("Contact: {};expires=1\r\n", phone.contact("agent1"));
    let ok = phone.register_authed("agent1", "agent1", "secret", &extra);
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !engine.log().contains("registration expired") {
        assert!(
            Instant::now() < deadline,
            "no expiry logged\n{}",
            engine.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(registrations(&engine).is_empty());
    engine.assert_no_panic();
}
