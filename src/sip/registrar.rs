//! The registrar for agents' phones (RFC 3261 §10.3): a REGISTER is authenticated with Digest
//! (see [`super::digest`]) against the agent whose `registration` user is the To user, then its
//! Contact becomes (or stops being) the agent's binding. One binding per agent, keyed by agent
//! id; the latest contact wins. A binding remembers the flow and source address the REGISTER
//! came from, so calls to the agent go back through the same NAT pinhole.
//!
//! Answers are stateless (§8.2.7 allows it for non-INVITE); nonces carry their own age, so the
//! only state is the bindings. Nonce counts are not tracked (no replay table): a replayed
//! REGISTER can only re-install the contact it already carried, until its nonce goes stale.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use tracing::{debug, info, warn};

use super::digest::{self, Algorithm, Credentials, DigestError, NonceCheck, NonceKey};
use super::headers::{parse_name_addr, parse_request_uri, split_commas};
use super::message::{HeaderName, Request};
use super::reply::reason_phrase;
use super::transport::Flow;
use super::validate::RequestInfo;
use crate::hash::HashMap;
use crate::rules::model::{Agent, PasswordSource, Reach};

/// Registrar settings (`sip.realm`, `sip.register_*`, `sip.nonce_lifetime_secs`).
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    /// Digest realm in our challenges; HA1 values in the rules must be made with it.
    pub realm: String,
    /// Shorter registrations get 423 Interval Too Brief.
    pub min_expires_secs: u32,
    /// Longer registrations are shortened to this.
    pub max_expires_secs: u32,
    /// A nonce older than this gets a new challenge with `stale=true`.
    pub nonce_lifetime: Duration,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            realm: "zentrale".into(),
            min_expires_secs: 60,
            max_expires_secs: 3600,
            nonce_lifetime: Duration::from_secs(300),
        }
    }
}

/// Registration lifetime when the REGISTER names none (RFC 3261 §10.2.1.1 suggests 3600 s).
pub const DEFAULT_EXPIRES_SECS: u32 = 3600;

/// Where an agent's phone is reachable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI as the phone wrote it (without angle brackets).
    pub contact: String,
    /// The transport flow the REGISTER came on.
    pub flow: Flow,
    /// The REGISTER's source address (send the agent's INVITE here: NAT-safe).
    pub source: SocketAddr,
    pub expires_at: Instant,
}

/// An agent's phone became reachable (`registered: true`) or stopped being reachable
/// (unregistered or expired).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationChange {
    pub agent: String,
    pub registered: bool,
}

/// The answer to one REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterReply {
    pub status: u16,
    pub reason: Cow<'static, str>,
    pub headers: Vec<(HeaderName, String)>,
}

impl RegisterReply {
    fn new(status: u16) -> Self {
        RegisterReply {
            status,
            reason: Cow::Borrowed(reason_phrase(status)),
            headers: Vec::new(),
        }
    }

    fn with_reason(status: u16, reason: &'static str) -> Self {
        RegisterReply {
            status,
            reason: Cow::Borrowed(reason),
            headers: Vec::new(),
        }
    }
}

/// How many registration changes a slow subscriber may fall behind before it misses some.
const CHANGES_CAPACITY: usize = 256;

/// The bindings of all agents; shared (via `Arc`) by the endpoint, the web API and the ACD.
pub struct Registrar {
    config: RegistrarConfig,
    nonces: NonceKey,
    /// Nonce ages are measured from here.
    epoch: Instant,
    bindings: Mutex<HashMap<String, Binding>>,
    changes: broadcast::Sender<RegistrationChange>,
}

/// What the Authorization headers of a REGISTER gave.
enum Auth {
    /// Digest credentials for our realm.
    Credentials(Credentials),
    /// None for our realm: challenge.
    Absent,
    /// A Digest value we cannot read.
    Malformed(DigestError),
}

impl Registrar {
    pub fn new(config: RegistrarConfig) -> Registrar {
        let (changes, _) = broadcast::channel(CHANGES_CAPACITY);
        Registrar {
            nonces: NonceKey::new(config.nonce_lifetime),
            config,
            epoch: Instant::now(),
            bindings: Mutex::new(HashMap::default()),
            changes,
        }
    }

    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// Registration changes from now on (new registration, unregistration, expiry).
    pub fn changes(&self) -> broadcast::Receiver<RegistrationChange> {
        self.changes.subscribe()
    }

    /// The agent's binding, unless it has expired at `now`.
    pub fn lookup(&self, agent_id: &str, now: Instant) -> Option<Binding> {
        let bindings = self.bindings.lock().ok()?;
        bindings
            .get(agent_id)
            .filter(|b| b.expires_at > now)
            .cloned()
    }

    /// Every binding still valid at `now`, by agent id.
    pub fn bindings(&self, now: Instant) -> Vec<(String, Binding)> {
        let Ok(bindings) = self.bindings.lock() else {
            return Vec::new();
        };
        let mut list: Vec<(String, Binding)> = bindings
            .iter()
            .filter(|(_, b)| b.expires_at > now)
            .map(|(agent, b)| (agent.clone(), b.clone()))
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }

    /// Removes the bindings expired at `now`, announces each, and returns their agent ids.
    pub fn purge_expired(&self, now: Instant) -> Vec<String> {
        let mut expired: Vec<String> = match self.bindings.lock() {
            Ok(mut bindings) => {
                let ids: Vec<String> = bindings
                    .iter()
                    .filter(|(_, b)| b.expires_at <= now)
                    .map(|(agent, _)| agent.clone())
                    .collect();
                for id in &ids {
                    bindings.remove(id);
                }
                ids
            }
            Err(_) => return Vec::new(),
        };
        expired.sort();
        for agent in &expired {
            info!(agent = %agent, "registration expired");
            self.announce(agent, false);
        }
        expired
    }

    fn announce(&self, agent: &str, registered: bool) {
        // No subscriber is fine: nobody is waiting for agents yet.
        let _ = self.changes.send(RegistrationChange {
            agent: agent.to_string(),
            registered,
        });
    }

    fn clock(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.epoch)
    }

    fn challenge(&self, now: Instant, stale: bool) -> RegisterReply {
        let mut reply = RegisterReply::new(401);
        reply.headers.push((
            HeaderName::Other("WWW-Authenticate".into()),
            digest::challenge(
                &self.config.realm,
                &self.nonces.issue(self.clock(now)),
                stale,
            ),
        ));
        reply
    }

    /// The first Digest credentials for our realm among the Authorization headers.
    fn credentials(&self, request: &Request) -> Auth {
        let mut malformed = None;
        for value in request.headers.all(&HeaderName::Authorization) {
            let Ok(text) = std::str::from_utf8(value) else {
                malformed = Some(DigestError::Syntax);
                continue;
            };
            match digest::parse_authorization(text) {
                Ok(c) if c.realm == self.config.realm => return Auth::Credentials(c),
                Ok(_) | Err(DigestError::NotDigest) => {}
                Err(e) => malformed = Some(e),
            }
        }
        match malformed {
            Some(e) => Auth::Malformed(e),
            None => Auth::Absent,
        }
    }

    /// Answers a REGISTER: challenge, authenticate against the agent of the To user, then
    /// add, refresh, remove or list the agent's binding. `agents` are the rules in force.
    pub fn handle_register(
        &self,
        request: &Request,
        info: &RequestInfo,
        flow: &Flow,
        agents: &BTreeMap<String, Agent>,
        now: Instant,
    ) -> RegisterReply {
        let peer = flow.peer();
        // §10.3 step 3: authenticate first, so nobody learns which users exist for free.
        let credentials = match self.credentials(request) {
            Auth::Credentials(c) => c,
            Auth::Absent => return self.challenge(now, false),
            Auth::Malformed(e) => {
                debug!(%peer, error = %e, "REGISTER with malformed Authorization");
                return RegisterReply::with_reason(400, "Malformed Authorization Header");
            }
        };
        // Step 5: the address of record must be one of our agents.
        let aor_user = match parse_request_uri(info.to.uri.as_bytes()) {
            Ok(uri) => uri.user.unwrap_or_default(),
            Err(_) => return RegisterReply::with_reason(400, "Malformed To URI"),
        };
        let Some((agent, source)) = agents.values().find_map(|a| match &a.reach {
            Reach::Registration { user, password } if *user == aor_user => Some((a, password)),
            _ => None,
        }) else {
            info!(%peer, user = %aor_user, "REGISTER for a user no agent registers as");
            return RegisterReply::new(404);
        };
        // Step 4: one may register only oneself.
        if credentials.username != aor_user {
            info!(%peer, agent = %agent.id, username = %credentials.username,
                "REGISTER refused: Authorization username is not the To user");
            return RegisterReply::with_reason(403, "Forbidden (username does not match To)");
        }
        let ha1 = match (source, credentials.algorithm) {
            (PasswordSource::Ha1(hash), Algorithm::Md5) => hash.to_ascii_lowercase(),
            (PasswordSource::Ha1(_), Algorithm::Sha256) => {
                info!(%peer, agent = %agent.id,
                    "REGISTER refused: SHA-256 digest, but the rules hold an MD5 password_ha1");
                return RegisterReply::new(403);
            }
            (PasswordSource::Env(var), algorithm) => match std::env::var(var) {
                Ok(password) => digest::ha1(
                    algorithm,
                    &credentials.username,
                    &self.config.realm,
                    &password,
                ),
                Err(_) => {
                    warn!(agent = %agent.id, variable = %var,
                        "REGISTER refused: the agent's password variable is not set; set {var} \
                         in the engine's environment");
                    return RegisterReply::with_reason(403, "Forbidden (no password configured)");
                }
            },
        };
        let nonce = self.nonces.check(&credentials.nonce, self.clock(now));
        if nonce == NonceCheck::Invalid {
            debug!(%peer, agent = %agent.id, "REGISTER with a nonce we did not issue");
            return self.challenge(now, false);
        }
        if !digest::verify(&credentials, request.method.as_str(), &ha1) {
            info!(%peer, agent = %agent.id, "REGISTER refused: wrong password");
            return RegisterReply::with_reason(403, "Forbidden (wrong credentials)");
        }
        if nonce == NonceCheck::Stale {
            debug!(%peer, agent = %agent.id, "REGISTER with a stale nonce");
            return self.challenge(now, true);
        }
        self.update_binding(request, flow, &agent.id, now)
    }

    /// §10.3 steps 6–8 for an authenticated REGISTER of `agent`.
    fn update_binding(
        &self,
        request: &Request,
        flow: &Flow,
        agent: &str,
        now: Instant,
    ) -> RegisterReply {
        let header_expires = match request.headers.get_str(&HeaderName::Expires) {
            None => None,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(secs) => Some(secs.min(u64::from(u32::MAX)) as u32),
                Err(_) => return RegisterReply::with_reason(400, "Malformed Expires"),
            },
        };
        let mut contacts = Vec::new();
        for value in request.headers.all(&HeaderName::Contact) {
            for part in split_commas(value) {
                contacts.push(part);
            }
        }
        let mut wildcard = false;
        // (contact URI, expires) in the order given.
        let mut wanted: Vec<(String, u32)> = Vec::new();
        for part in &contacts {
            if *part == b"*" {
                wildcard = true;
                continue;
            }
            let Some(addr) = parse_name_addr(part) else {
                return RegisterReply::with_reason(400, "Malformed Contact");
            };
            let expires = match contact_expires(part) {
                Ok(Some(secs)) => secs,
                Ok(None) => header_expires.unwrap_or(DEFAULT_EXPIRES_SECS),
                Err(()) => return RegisterReply::with_reason(400, "Malformed Contact expires"),
            };
            wanted.push((addr.uri, expires));
        }
        if wildcard {
            // §10.3 step 6: `*` only alone and with Expires: 0.
            if contacts.len() != 1 || header_expires != Some(0) {
                return RegisterReply::with_reason(
                    400,
                    "Contact * needs Expires: 0 and no other Contact",
                );
            }
            self.remove(agent, None);
            return self.ok(agent, now);
        }
        let min = self.config.min_expires_secs;
        if wanted.iter().any(|(_, e)| *e != 0 && *e < min) {
            let mut reply = RegisterReply::new(423);
            reply
                .headers
                .push((HeaderName::Other("Min-Expires".into()), min.to_string()));
            return reply;
        }
        for (contact, expires) in wanted {
            if expires == 0 {
                self.remove(agent, Some(&contact));
                continue;
            }
            let secs = expires.min(self.config.max_expires_secs);
            let binding = Binding {
                contact,
                flow: flow.clone(),
                source: flow.peer(),
                expires_at: now + Duration::from_secs(u64::from(secs)),
            };
            let fresh = match self.bindings.lock() {
                Ok(mut bindings) => bindings
                    .insert(agent.to_string(), binding.clone())
                    .is_none_or(|old| old.expires_at <= now),
                Err(_) => return RegisterReply::new(500),
            };
            if fresh {
                info!(agent = %agent, contact = %binding.contact, source = %binding.source,
                    transport = flow.transport_name(), expires = secs, "agent registered");
                self.announce(agent, true);
            } else {
                debug!(agent = %agent, contact = %binding.contact, source = %binding.source,
                    expires = secs, "registration refreshed");
            }
        }
        self.ok(agent, now)
    }

    /// Removes the agent's binding (only if its contact is `contact`, when given).
    fn remove(&self, agent: &str, contact: Option<&str>) {
        let removed = match self.bindings.lock() {
            Ok(mut bindings) => {
                let matches = bindings
                    .get(agent)
                    .is_some_and(|b| contact.is_none_or(|c| b.contact == c));
                if matches {
                    bindings.remove(agent)
                } else {
                    None
                }
            }
            Err(_) => None,
        };
        if let Some(binding) = removed {
            info!(agent = %agent, contact = %binding.contact, "agent unregistered");
            self.announce(agent, false);
        }
    }

    /// 200 listing the agent's current binding (§10.3 step 8).
    fn ok(&self, agent: &str, now: Instant) -> RegisterReply {
        let mut reply = RegisterReply::new(200);
        if let Some(binding) = self.lookup(agent, now) {
            let left = binding.expires_at.saturating_duration_since(now);
            // Round up: a binding with 0.4 s left is not yet expired.
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            reply.headers.push((
                HeaderName::Contact,
                format!("<{}>;expires={secs}", binding.contact),
            ));
        }
        reply
    }
}

/// The `expires` parameter of one Contact value: `Ok(None)` without one, `Err` if unreadable.
fn contact_expires(value: &[u8]) -> Result<Option<u32>, ()> {
    let text = std::str::from_utf8(value).map_err(|_| ())?;
    // Header parameters follow the `>` of a name-addr, or the first `;` of an addr-spec.
    let params = match text.rfind('>') {
        Some(close) => &text[close + 1..],
        None => text.find(';').map_or("", |i| &text[i..]),
    };
    for param in params.split(';') {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("expires") {
            let secs = value
                .trim()
                .trim_matches('"')
                .parse::<u64>()
                .map_err(|_| ())?;
            return Ok(Some(secs.min(u64::from(u32::MAX)) as u32));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::sip::message::{Framing, Message, parse};
    use crate::sip::validate::check_request;

    const HA1_AGENT2: &str = "agent2:zentrale:pw2";
    const ENV_AGENT1: &str = "ZENTRALE_TEST_REGISTRAR_AGENT1_PASSWORD";
    const ENV_MISSING: &str = "ZENTRALE_TEST_REGISTRAR_NOT_SET";

    fn agents() -> BTreeMap<String, Agent> {
        // SAFETY: this test module is the only user of these variables.
        unsafe {
            std::env::set_var(ENV_AGENT1, "secret");
            std::env::remove_var(ENV_MISSING);
        }
        let agent = |id: &str, reach: Reach| Agent {
            id: id.into(),
            name: id.into(),
            skills: BTreeMap::new(),
            reach,
            wrap_up_secs: None,
        };
        [
            agent(
                "agent1",
                Reach::Registration {
                    user: "agent1".into(),
                    password: PasswordSource::Env(ENV_AGENT1.into()),
                },
            ),
            agent(
                "a2",
                Reach::Registration {
                    user: "agent2".into(),
                    password: PasswordSource::Ha1(Algorithm::Md5.hex(HA1_AGENT2)),
                },
            ),
            agent(
                "agent3",
                Reach::Registration {
                    user: "agent3".into(),
                    password: PasswordSource::Env(ENV_MISSING.into()),
                },
            ),
            agent("agent7", Reach::Uri("sip:7@pbx.invalid".into())),
        ]
        .into_iter()
        .map(|a| (a.id.clone(), a))
        .collect()
    }

    fn flow() -> Flow {
        Flow::Udp {
            peer: "192.0.2.7:40000".parse().expect("addr"),
        }
    }

    /// A REGISTER for `user` with extra header lines.
    fn register(user: &str, extra: &str) -> (Request, RequestInfo) {
        let text = format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKr1\r\n\
             From: <sip:{user}@127.0.0.1>;tag=1\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: reg1\r\n\
             CSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match parse(Bytes::from(text), Framing::Datagram) {
            Ok((Message::Request(request), _)) => {
                let info = check_request(&request).expect("valid request");
                (request, info)
            }
            other => panic!("not a request: {other:?}"),
        }
    }

    fn nonce_of(reply: &RegisterReply) -> String {
        let (_, value) = reply
            .headers
            .iter()
            .find(|(n, _)| n.as_str().eq_ignore_ascii_case("WWW-Authenticate"))
            .expect("challenge");
        let start = value.find("nonce=\"").expect("nonce") + 7;
        let end = value[start..].find('"').expect("end") + start;
        value[start..end].to_string()
    }

    fn authorization(user: &str, password: &str, nonce: &str) -> String {
        let cnonce = "c0ffee";
        let credentials = Credentials {
            username: user.into(),
            realm: "zentrale".into(),
            nonce: nonce.into(),
            uri: "sip:127.0.0.1".into(),
            response: String::new(),
            algorithm: Algorithm::Md5,
            qop: Some(digest::QopAuth {
                cnonce: cnonce.into(),
                nc: "00000001".into(),
            }),
            opaque: None,
        };
        let ha1 = digest::ha1(Algorithm::Md5, user, "zentrale", password);
        let response = digest::expected_response(&credentials, "REGISTER", &ha1);
        format!(
            "Authorization: Digest username=\"{user}\", realm=\"zentrale\", nonce=\"{nonce}\", \
             uri=\"sip:127.0.0.1\", response=\"{response}\", algorithm=MD5, qop=auth, \
             nc=00000001, cnonce=\"{cnonce}\"\r\n"
        )
    }

    struct Fixture {
        registrar: Registrar,
        agents: BTreeMap<String, Agent>,
        now: Instant,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                registrar: Registrar::new(RegistrarConfig::default()),
                agents: agents(),
                now: Instant::now(),
            }
        }

        fn send(&self, user: &str, extra: &str) -> RegisterReply {
            let (request, info) = register(user, extra);
            self.registrar
                .handle_register(&request, &info, &flow(), &self.agents, self.now)
        }

        /// Challenge, then answer it as `auth_user` with `password` and `extra` headers.
        fn authed(
            &self,
            user: &str,
            auth_user: &str,
            password: &str,
            extra: &str,
        ) -> RegisterReply {
            let challenge = self.send(user, extra);
            assert_eq!(challenge.status, 401);
            let auth = authorization(auth_user, password, &nonce_of(&challenge));
            self.send(user, &format!("{auth}{extra}"))
        }
    }

    fn contact_header(reply: &RegisterReply) -> Option<&str> {
        reply
            .headers
            .iter()
            .find(|(n, _)| *n == HeaderName::Contact)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn register_with_the_right_password_binds_the_contact() {
        let f = Fixture::new();
        let mut changes = f.registrar.changes();
        let contact = "Contact: <sip:agent1@10.0.0.1:5060;transport=udp>\r\n";
        let reply = f.authed("agent1", "agent1", "secret", contact);
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(
            contact_header(&reply),
            Some("<sip:agent1@10.0.0.1:5060;transport=udp>;expires=3600")
        );
        let binding = f.registrar.lookup("agent1", f.now).expect("bound");
        assert_eq!(binding.contact, "sip:agent1@10.0.0.1:5060;transport=udp");
        assert_eq!(binding.source, flow().peer());
        assert_eq!(binding.flow, flow());
        assert_eq!(binding.expires_at, f.now + Duration::from_secs(3600));
        assert_eq!(
            changes.try_recv().ok(),
            Some(RegistrationChange {
                agent: "agent1".into(),
                registered: true
            })
        );
        // A refresh is no new registration.
        let reply = f.authed("agent1", "agent1", "secret", contact);
        assert_eq!(reply.status, 200);
        assert!(changes.try_recv().is_err());
        // Expired: gone from lookup, announced by the purge.
        let later = f.now + Duration::from_secs(3601);
        assert_eq!(f.registrar.lookup("agent1", later), None);
        assert_eq!(f.registrar.purge_expired(f.now), Vec::<String>::new());
        assert_eq!(f.registrar.purge_expired(later), vec!["agent1".to_string()]);
        assert_eq!(
            changes.try_recv().ok(),
            Some(RegistrationChange {
                agent: "agent1".into(),
                registered: false
            })
        );
    }

    #[test]
    fn bindings_are_keyed_by_agent_id_and_ha1_works() {
        let f = Fixture::new();
        let reply = f.authed("agent2", "agent2", "pw2", "Contact: <sip:x@10.0.0.2>\r\n");
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(f.registrar.lookup("a2", f.now).is_some());
        assert!(f.registrar.lookup("agent2", f.now).is_none());
        assert_eq!(f.registrar.bindings(f.now).len(), 1);
    }

    #[test]
    fn refusals() {
        let f = Fixture::new();
        let c = "Contact: <sip:agent1@10.0.0.1>\r\n";
        assert_eq!(f.authed("agent1", "agent1", "wrong", c).status, 403);
        assert_eq!(f.authed("nobody", "nobody", "x", c).status, 404);
        // A Uri agent does not register.
        assert_eq!(f.authed("agent7", "agent7", "x", c).status, 404);
        assert_eq!(f.authed("agent1", "agent2", "pw2", c).status, 403);
        // Missing password variable: 403, not an endless challenge.
        assert_eq!(f.authed("agent3", "agent3", "x", c).status, 403);
        assert!(f.registrar.bindings(f.now).is_empty());
    }

    #[test]
    fn without_or_with_foreign_credentials_we_challenge() {
        let f = Fixture::new();
        let reply = f.send("agent1", "");
        assert_eq!(reply.status, 401);
        let (_, value) = &reply.headers[0];
        assert!(
            value.starts_with("Digest realm=\"zentrale\", nonce=\""),
            "{value}"
        );
        assert!(!value.contains("stale"));
        let basic = f.send("agent1", "Authorization: Basic YWdlbnQxOnNlY3JldA==\r\n");
        assert_eq!(basic.status, 401);
        let other_realm = authorization("agent1", "secret", "n").replace("\"zentrale\"", "\"x\"");
        assert_eq!(f.send("agent1", &other_realm).status, 401);
        // A nonce we did not issue gets a fresh challenge.
        let forged = authorization("agent1", "secret", "00112233");
        assert_eq!(f.send("agent1", &forged).status, 401);
        // Garbage Digest: 400.
        let garbage = f.send(
            "agent1",
            "Authorization: Digest username=\"unterminated\r\n",
        );
        assert_eq!(garbage.status, 400);
    }

    #[test]
    fn stale_nonce_with_the_right_password_gets_stale_challenge() {
        let mut f = Fixture::new();
        let nonce = nonce_of(&f.send("agent1", ""));
        f.now += Duration::from_secs(301);
        let c = "Contact: <sip:agent1@10.0.0.1>\r\n";
        let reply = f.send(
            "agent1",
            &format!("{}{c}", authorization("agent1", "secret", &nonce)),
        );
        assert_eq!(reply.status, 401);
        assert!(reply.headers[0].1.ends_with("stale=true"), "{reply:?}");
        let reply = f.send(
            "agent1",
            &format!("{}{c}", authorization("agent1", "bad", &nonce)),
        );
        assert_eq!(reply.status, 403);
    }

    #[test]
    fn expires_rules() {
        let f = Fixture::new();
        let c = "Contact: <sip:agent1@10.0.0.1>";
        let brief = f.authed("agent1", "agent1", "secret", &format!("{c};expires=30\r\n"));
        assert_eq!(brief.status, 423);
        assert!(
            brief
                .headers
                .contains(&(HeaderName::Other("Min-Expires".into()), "60".into()))
        );
        let brief = f.authed(
            "agent1",
            "agent1",
            "secret",
            &format!("{c}\r\nExpires: 59\r\n"),
        );
        assert_eq!(brief.status, 423);
        // The Contact parameter wins over the header; long ones are clamped.
        let reply = f.authed(
            "agent1",
            "agent1",
            "secret",
            &format!("{c};expires=90000\r\nExpires: 30\r\n"),
        );
        assert_eq!(reply.status, 200);
        assert_eq!(
            contact_header(&reply),
            Some("<sip:agent1@10.0.0.1>;expires=3600")
        );
        // Removing another contact leaves ours.
        let other = f.authed(
            "agent1",
            "agent1",
            "secret",
            "Contact: <sip:agent1@10.9.9.9>;expires=0\r\n",
        );
        assert_eq!(other.status, 200);
        assert!(f.registrar.lookup("agent1", f.now).is_some());
        // A query (no Contact) lists it.
        let query = f.authed("agent1", "agent1", "secret", "");
        assert_eq!(
            contact_header(&query),
            Some("<sip:agent1@10.0.0.1>;expires=3600")
        );
        // Expires: 0 removes it.
        let mut changes = f.registrar.changes();
        let gone = f.authed(
            "agent1",
            "agent1",
            "secret",
            &format!("{c}\r\nExpires: 0\r\n"),
        );
        assert_eq!(gone.status, 200);
        assert_eq!(contact_header(&gone), None);
        assert!(f.registrar.lookup("agent1", f.now).is_none());
        assert_eq!(changes.try_recv().map(|c| c.registered).ok(), Some(false));
    }

    #[test]
    fn wildcard_removes_all_and_needs_expires_zero() {
        let f = Fixture::new();
        let c = "Contact: \"Agent One\" <sip:agent1@10.0.0.1>;expires=120\r\n";
        assert_eq!(f.authed("agent1", "agent1", "secret", c).status, 200);
        let bad = f.authed("agent1", "agent1", "secret", "Contact: *\r\n");
        assert_eq!(bad.status, 400);
        let bad = f.authed(
            "agent1",
            "agent1",
            "secret",
            "Contact: *, <sip:a@b>\r\nExpires: 0\r\n",
        );
        assert_eq!(bad.status, 400);
        assert!(f.registrar.lookup("agent1", f.now).is_some());
        let ok = f.authed("agent1", "agent1", "secret", "Contact: *\r\nExpires: 0\r\n");
        assert_eq!(ok.status, 200);
        assert!(f.registrar.lookup("agent1", f.now).is_none());
    }

    #[test]
    fn the_latest_contact_wins() {
        let f = Fixture::new();
        let reply = f.authed(
            "agent1",
            "agent1",
            "secret",
            "Contact: <sip:a@10.0.0.1>, <sip:b@10.0.0.2>;expires=100\r\n",
        );
        assert_eq!(reply.status, 200);
        assert_eq!(contact_header(&reply), Some("<sip:b@10.0.0.2>;expires=100"));
    }

    #[test]
    fn malformed_expires_and_contacts_are_400() {
        let f = Fixture::new();
        for extra in [
            "Contact: <sip:agent1@10.0.0.1>\r\nExpires: soon\r\n",
            "Contact: <sip:agent1@10.0.0.1>;expires=-1\r\n",
            "Contact: nonsense\r\n",
        ] {
            assert_eq!(
                f.authed("agent1", "agent1", "secret", extra).status,
                400,
                "{extra}"
            );
        }
    }

    #[test]
    fn contact_expires_param() {
        assert_eq!(contact_expires(b"<sip:a@b>;expires=5"), Ok(Some(5)));
        assert_eq!(contact_expires(b"<sip:a@b;expires=5>"), Ok(None));
        assert_eq!(contact_expires(b"sip:a@b;q=1;EXPIRES = 7"), Ok(Some(7)));
        assert_eq!(contact_expires(b"sip:a@b"), Ok(None));
        assert_eq!(contact_expires(b"<sip:a@b>;expires=x"), Err(()));
        assert_eq!(
            contact_expires(b"<sip:a@b>;expires=99999999999"),
            Ok(Some(u32::MAX))
        );
    }
}
