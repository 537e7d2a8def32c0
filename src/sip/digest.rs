//! HTTP Digest authentication for SIP (RFC 2617, RFC 7616 as used by RFC 3261 §22.4): parsing
//! `Authorization: Digest …`, computing and checking responses (MD5 and SHA-256, `qop=auth` or
//! none), and nonces that need no server state — the time they were made and random bytes,
//! signed with a per-process key, so any nonce we issued can be checked and aged without a table.
//!
//! Everything here is pure; the registrar decides what each outcome means for the answer.

use std::time::Duration;

use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest as _, Sha256};

/// The hash of a digest exchange (`algorithm=`; absent means MD5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Lower-case hex of the hash of `input`.
    pub fn hex(self, input: &str) -> String {
        match self {
            Algorithm::Md5 => to_hex(&Md5::digest(input.as_bytes())),
            Algorithm::Sha256 => to_hex(&Sha256::digest(input.as_bytes())),
        }
    }

    /// Length of a response in hex digits.
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha256 => 64,
        }
    }
}

/// The credentials of one `Authorization: Digest …` value (RFC 2617 §3.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    /// Lower-case hex, of the length the algorithm gives.
    pub response: String,
    pub algorithm: Algorithm,
    /// `Some` exactly when `qop=auth` (then `cnonce` and `nc` are present too).
    pub qop: Option<QopAuth>,
    pub opaque: Option<String>,
}

/// The values that come with `qop=auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QopAuth {
    pub cnonce: String,
    /// The nonce count, 8 hex digits as sent.
    pub nc: String,
}

/// Why an Authorization value is not usable Digest credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Another scheme (`Basic`, RFC 4475 regaut01's `NoOneKnowsThisScheme`): not ours to judge.
    #[error("not a Digest authorization")]
    NotDigest,
    #[error("malformed Digest parameters")]
    Syntax,
    #[error("Digest parameter {0} given twice")]
    Duplicate(String),
    #[error("Digest parameter {0} missing")]
    Missing(&'static str),
    #[error("Digest algorithm {0:?} not supported")]
    Algorithm(String),
    #[error("Digest qop {0:?} not supported")]
    Qop(String),
    #[error("Digest response is not a hex digest")]
    Response,
}

/// Parses one `Authorization` (or `Proxy-Authorization`) value. Parameter names are
/// case-insensitive, values token or quoted-string, in any order.
pub fn parse_authorization(value: &str) -> Result<Credentials, DigestError> {
    let value = value.trim();
    let scheme_end = value.find([' ', '\t']).unwrap_or(value.len());
    if !value[..scheme_end].eq_ignore_ascii_case("digest") {
        return Err(DigestError::NotDigest);
    }
    let params = parse_params(&value[scheme_end..])?;
    let take = |name: &'static str| -> Option<String> {
        params
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|i| params[i].1.clone())
    };
    let required = |v: Option<String>, name: &'static str| v.ok_or(DigestError::Missing(name));
    let username = required(take("username"), "username")?;
    let realm = required(take("realm"), "realm")?;
    let nonce = required(take("nonce"), "nonce")?;
    let uri = required(take("uri"), "uri")?;
    let response = required(take("response"), "response")?;
    let algorithm = match take("algorithm") {
        None => Algorithm::Md5,
        Some(a) if a.eq_ignore_ascii_case("MD5") => Algorithm::Md5,
        Some(a) if a.eq_ignore_ascii_case("SHA-256") => Algorithm::Sha256,
        Some(a) => return Err(DigestError::Algorithm(a)),
    };
    let qop = match take("qop") {
        None => None,
        Some(q) if q.eq_ignore_ascii_case("auth") => Some(QopAuth {
            cnonce: required(take("cnonce"), "cnonce")?,
            nc: required(take("nc"), "nc")?,
        }),
        Some(q) => return Err(DigestError::Qop(q)),
    };
    if let Some(q) = &qop
        && (q.nc.len() != 8 || !q.nc.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(DigestError::Syntax);
    }
    if response.len() != algorithm.hex_len() || !response.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DigestError::Response);
    }
    Ok(Credentials {
        username,
        realm,
        nonce,
        uri,
        response: response.to_ascii_lowercase(),
        algorithm,
        qop,
        opaque: take("opaque"),
    })
}

/// `name=value` pairs separated by commas; values are tokens or quoted-strings (with `\`
/// escapes). Names are returned as written.
fn parse_params(text: &str) -> Result<Vec<(String, String)>, DigestError> {
    let bytes = text.as_bytes();
    let mut params: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < bytes.len() && matches!(bytes[*i], b' ' | b'\t' | b'\r' | b'\n') {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= bytes.len() {
            break;
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'-') {
            i += 1;
        }
        let name = &text[start..i];
        skip_ws(&mut i);
        if name.is_empty() || bytes.get(i) != Some(&b'=') {
            return Err(DigestError::Syntax);
        }
        i += 1;
        skip_ws(&mut i);
        let value = if bytes.get(i) == Some(&b'"') {
            i += 1;
            let mut value = Vec::new();
            loop {
                match bytes.get(i) {
                    None => return Err(DigestError::Syntax),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        value.push(*bytes.get(i + 1).ok_or(DigestError::Syntax)?);
                        i += 2;
                    }
                    Some(&b) => {
                        value.push(b);
                        i += 1;
                    }
                }
            }
            String::from_utf8(value).map_err(|_| DigestError::Syntax)?
        } else {
            let start = i;
            while i < bytes.len() && !matches!(bytes[i], b',' | b' ' | b'\t' | b'"') {
                i += 1;
            }
            if start == i {
                return Err(DigestError::Syntax);
            }
            text[start..i].to_string()
        };
        if params.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(DigestError::Duplicate(name.to_ascii_lowercase()));
        }
        params.push((name.to_string(), value));
        skip_ws(&mut i);
        match bytes.get(i) {
            None => break,
            Some(b',') => i += 1,
            Some(_) => return Err(DigestError::Syntax),
        }
    }
    if params.is_empty() {
        return Err(DigestError::Syntax);
    }
    Ok(params)
}

/// HA1 = H(username:realm:password).
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm.hex(&format!("{username}:{realm}:{password}"))
}

/// The response the client must send for `credentials` on a request with `method`, given HA1
/// (RFC 2617 §3.2.2.1; RFC 7616 §3.4.1).
pub fn expected_response(credentials: &Credentials, method: &str, ha1: &str) -> String {
    let algorithm = credentials.algorithm;
    let ha2 = algorithm.hex(&format!("{method}:{}", credentials.uri));
    match &credentials.qop {
        Some(q) => algorithm.hex(&format!(
            "{ha1}:{}:{}:{}:auth:{ha2}",
            credentials.nonce, q.nc, q.cnonce
        )),
        None => algorithm.hex(&format!("{ha1}:{}:{ha2}", credentials.nonce)),
    }
}

/// Whether the client's response is right, compared in constant time.
pub fn verify(credentials: &Credentials, method: &str, ha1: &str) -> bool {
    let expected = expected_response(credentials, method, ha1);
    constant_time_eq(expected.as_bytes(), credentials.response.as_bytes())
}

/// Equality whose time depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Lower-case hex (also used for the call records' key and hashed numbers).
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

pub(crate) fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What a nonce turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    Fresh,
    /// Ours, but older than the lifetime: re-challenge with `stale=true`.
    Stale,
    /// Not made by this process (forged, mangled or from before a restart).
    Invalid,
}

/// Bytes of the nonce: 8 for the age in milliseconds, 8 random.
const NONCE_DATA: usize = 16;
/// Bytes of the HMAC-SHA-256 kept in the nonce.
const NONCE_MAC: usize = 16;

/// Makes and checks nonces `hex(age_ms ‖ random ‖ HMAC(key, age_ms ‖ random))`. Ages are
/// milliseconds on the caller's clock (e.g. since the process started), so tests choose time.
pub struct NonceKey {
    key: [u8; 32],
    lifetime: Duration,
}

impl NonceKey {
    /// A new random key; nonces older than `lifetime` are stale.
    pub fn new(lifetime: Duration) -> NonceKey {
        NonceKey {
            key: rand::random(),
            lifetime,
        }
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    fn mac(&self, data: &[u8]) -> [u8; NONCE_MAC] {
        // HMAC accepts keys of any length: new_from_slice cannot fail here.
        let mut out = [0u8; NONCE_MAC];
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) {
            mac.update(data);
            out.copy_from_slice(&mac.finalize().into_bytes()[..NONCE_MAC]);
        }
        out
    }

    /// A nonce issued at `at` (time on the caller's clock).
    pub fn issue(&self, at: Duration) -> String {
        let mut data = [0u8; NONCE_DATA];
        data[..8].copy_from_slice(&(at.as_millis() as u64).to_be_bytes());
        data[8..].copy_from_slice(&rand::random::<[u8; 8]>());
        let mut nonce = to_hex(&data);
        nonce.push_str(&to_hex(&self.mac(&data)));
        nonce
    }

    /// Checks a nonce against the time `now` on the same clock as [`NonceKey::issue`].
    pub fn check(&self, nonce: &str, now: Duration) -> NonceCheck {
        let Some(bytes) = from_hex(nonce).filter(|b| b.len() == NONCE_DATA + NONCE_MAC) else {
            return NonceCheck::Invalid;
        };
        let (data, mac) = bytes.split_at(NONCE_DATA);
        if !constant_time_eq(&self.mac(data), mac) {
            return NonceCheck::Invalid;
        }
        let mut ms = [0u8; 8];
        ms.copy_from_slice(&data[..8]);
        let issued = Duration::from_millis(u64::from_be_bytes(ms));
        match now.checked_sub(issued) {
            // From the future: only a clock we do not have could have made it.
            None => NonceCheck::Invalid,
            Some(age) if age > self.lifetime => NonceCheck::Stale,
            Some(_) => NonceCheck::Fresh,
        }
    }
}

/// A `WWW-Authenticate` value challenging for `realm` with `nonce` (MD5, `qop="auth"`).
pub fn challenge(realm: &str, nonce: &str, stale: bool) -> String {
    let mut value = format!(
        "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"",
        quote_escape(realm)
    );
    if stale {
        value.push_str(", stale=true");
    }
    value
}

fn quote_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2617 §3.5 (the response there is for qop=auth, method GET).
    const RFC2617: &str = r#"Digest username="Mufasa",
                 realm="testrealm@host.com",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 uri="/dir/index.html",
                 qop=auth,
                 nc=00000001,
                 cnonce="0a4f113b",
                 response="6629fae49393a05397450978507c4ef1",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41""#;

    #[test]
    fn rfc2617_example_verifies() {
        let c = parse_authorization(RFC2617).expect("parses");
        assert_eq!(c.username, "Mufasa");
        assert_eq!(c.realm, "testrealm@host.com");
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert_eq!(
            c.qop,
            Some(QopAuth {
                cnonce: "0a4f113b".into(),
                nc: "00000001".into()
            })
        );
        assert_eq!(
            c.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        let ha1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        assert!(verify(&c, "GET", &ha1));
        assert!(!verify(&c, "POST", &ha1));
        let wrong = super::ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "circle of life",
        );
        assert!(!verify(&c, "GET", &wrong));
    }

    /// RFC 7616 §3.9.1, MD5 and SHA-256.
    #[test]
    fn rfc7616_examples_verify() {
        for (algorithm, response) in [
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
            (
                "SHA-256",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let header = format!(
                "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", \
                 uri=\"/dir/index.html\", algorithm={algorithm}, \
                 nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, \
                 cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, \
                 response=\"{response}\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
            );
            let c = parse_authorization(&header).expect(algorithm);
            let ha1 = ha1(
                c.algorithm,
                "Mufasa",
                "http-auth@example.org",
                "Circle of Life",
            );
            assert!(verify(&c, "GET", &ha1), "{algorithm}");
        }
    }

    #[test]
    fn no_qop_any_order_and_case() {
        let ha1 = ha1(Algorithm::Md5, "agent1", "zentrale", "secret");
        let mut c = Credentials {
            username: "agent1".into(),
            realm: "zentrale".into(),
            nonce: "abc".into(),
            uri: "sip:127.0.0.1".into(),
            response: String::new(),
            algorithm: Algorithm::Md5,
            qop: None,
            opaque: None,
        };
        let response = expected_response(&c, "REGISTER", &ha1);
        // RFC 2069 form: H(HA1:nonce:HA2).
        let ha2 = Algorithm::Md5.hex("REGISTER:sip:127.0.0.1");
        assert_eq!(response, Algorithm::Md5.hex(&format!("{ha1}:abc:{ha2}")));
        c.response = response.clone();
        let header = format!(
            "digest RESPONSE={}, URI=\"sip:127.0.0.1\",Nonce=abc ,  Realm=\"zentrale\",UserName=\"agent1\"",
            response.to_uppercase()
        );
        let parsed = parse_authorization(&header).expect("parses");
        assert_eq!(parsed, c);
        assert!(verify(&parsed, "REGISTER", &ha1));
    }

    #[test]
    fn quoted_values_unescape() {
        let c = parse_authorization(
            "Digest username=\"a\\\"b\", realm=\"r,e\", nonce=\"n\", uri=\"u\", \
             response=\"00000000000000000000000000000000\"",
        )
        .expect("parses");
        assert_eq!(c.username, "a\"b");
        assert_eq!(c.realm, "r,e");
    }

    #[test]
    fn malformed_headers_are_errors() {
        let ok_tail =
            "realm=\"r\", nonce=\"n\", uri=\"u\", response=\"00000000000000000000000000000000\"";
        let cases: Vec<(String, DigestError)> = vec![
            ("".into(), DigestError::NotDigest),
            ("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==".into(), DigestError::NotDigest),
            ("NoOneKnowsThisScheme opaque-data=here".into(), DigestError::NotDigest),
            ("Digest".into(), DigestError::Syntax),
            ("Digest   ".into(), DigestError::Syntax),
            ("Digest username".into(), DigestError::Syntax),
            ("Digest username=".into(), DigestError::Syntax),
            ("Digest username=\"unterminated".into(), DigestError::Syntax),
            ("Digest username=\"a\\".into(), DigestError::Syntax),
            ("Digest =x".into(), DigestError::Syntax),
            ("Digest username=\"a\" realm=\"r\"".into(), DigestError::Syntax),
            ("Digest username=\"a\",,".into(), DigestError::Syntax),
            (format!("Digest {ok_tail}"), DigestError::Missing("username")),
            (
                format!("Digest username=a, username=b, {ok_tail}"),
                DigestError::Duplicate("username".into()),
            ),
            (
                format!("Digest username=a, USERNAME=b, {ok_tail}"),
                DigestError::Duplicate("username".into()),
            ),
            (
                "Digest username=a, realm=r, nonce=n, uri=u".into(),
                DigestError::Missing("response"),
            ),
            (
                format!("Digest username=a, {ok_tail}, algorithm=SHA-512-256"),
                DigestError::Algorithm("SHA-512-256".into()),
            ),
            (
                format!("Digest username=a, {ok_tail}, qop=auth-int, nc=00000001, cnonce=c"),
                DigestError::Qop("auth-int".into()),
            ),
            (
                format!("Digest username=a, {ok_tail}, qop=auth, nc=00000001"),
                DigestError::Missing("cnonce"),
            ),
            (
                format!("Digest username=a, {ok_tail}, qop=auth, cnonce=c, nc=1"),
                DigestError::Syntax,
            ),
            (
                "Digest username=a, realm=r, nonce=n, uri=u, response=xyz".into(),
                DigestError::Response,
            ),
            (
                "Digest username=a, realm=r, nonce=n, uri=u, response=\"zz000000000000000000000000000000\""
                    .into(),
                DigestError::Response,
            ),
            (
                format!("Digest username=a, {ok_tail}, algorithm=SHA-256"),
                DigestError::Response,
            ),
            ("Digest username=\"\u{e4}\u{df}\", realm=\u{ff}".into(), DigestError::Missing("nonce")),
        ];
        for (header, expected) in cases {
            assert_eq!(parse_authorization(&header), Err(expected), "{header:?}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let samples = [
            "Digest \"",
            "Digest a=\"\\",
            "Digest a=b,\u{0}=c",
            "Digest \u{1F600}=\u{1F600}",
            "Digest ,",
            "DIGEST a=\"b\"\"c\"",
            "Digest a = \"b\" , c = d",
        ];
        for s in samples {
            let _ = parse_authorization(s);
        }
        for len in 0..64 {
            let text: String = (0..len).map(|_| rand::random::<u8>() as char).collect();
            let _ = parse_authorization(&format!("Digest {text}"));
        }
    }

    #[test]
    fn nonces_age_and_resist_forgery() {
        let key = NonceKey::new(Duration::from_secs(300));
        let t0 = Duration::from_secs(1000);
        let nonce = key.issue(t0);
        assert_eq!(key.check(&nonce, t0), NonceCheck::Fresh);
        assert_eq!(
            key.check(&nonce, t0 + Duration::from_secs(300)),
            NonceCheck::Fresh
        );
        assert_eq!(
            key.check(&nonce, t0 + Duration::from_secs(301)),
            NonceCheck::Stale
        );
        assert_eq!(
            key.check(&nonce, t0 - Duration::from_secs(1)),
            NonceCheck::Invalid
        );
        assert_ne!(key.issue(t0), nonce, "random part");
        // Another process (key) did not make it.
        let other = NonceKey::new(Duration::from_secs(300));
        assert_eq!(other.check(&nonce, t0), NonceCheck::Invalid);
        // Any changed digit breaks the signature.
        let mut forged = nonce.clone().into_bytes();
        forged[15] = if forged[15] == b'0' { b'1' } else { b'0' };
        let forged = String::from_utf8(forged).expect("ascii");
        assert_eq!(key.check(&forged, t0), NonceCheck::Invalid);
        for bad in ["", "xyz", &nonce[..nonce.len() - 2], "é"] {
            assert_eq!(key.check(bad, t0), NonceCheck::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn challenge_parses_as_digest_params() {
        let value = challenge("zen\"trale", "n1", true);
        assert!(value.starts_with("Digest realm=\"zen\\\"trale\""));
        assert!(value.ends_with(", stale=true"));
        let params = parse_params(&value["Digest".len()..]).expect("valid params");
        assert!(params.contains(&("realm".into(), "zen\"trale".into())));
        assert!(params.contains(&("qop".into(), "auth".into())));
    }

    #[test]
    fn constant_time_eq_basics() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
