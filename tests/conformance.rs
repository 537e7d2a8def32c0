//! RFC 4475 torture messages, end to end: every `tests/fixtures/rfc4475/*.dat` (and
//! `variants/*.dat`) is sent byte for byte to one running engine, each from a fresh socket, and
//! the replies are checked against the expectation in `manifest.tsv` (vocabulary in
//! `/work/shared/conformance/README.md`, repeated in [`Expect`]). All mismatches are collected
//! and reported together in one table. Afterwards the engine must still answer OPTIONS with 200
//! and must not have panicked.
//!
//! One pass over UDP (the datagram is the message) and one over TCP (one connection per
//! message; framing errors may end in a closed connection instead of a 400).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::engine::Engine;
use common::sip::{SipClient, SipMessage, tcp_exchange};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rfc4475");

/// How long to wait for a first final response; also the silence window.
const WAIT_FOR_FINAL: Duration = Duration::from_secs(1);
/// After a final response, how long to keep listening for more replies.
const GRACE_AFTER_FINAL: Duration = Duration::from_millis(200);

/// The INVITE hidden behind the REGISTER in `dblreq`: over UDP nothing may answer it.
const DBLREQ_INVITE_CALL_ID: &str = "dblreq.0ha0isnda977644900765@192.0.2.15";

/// Manifest expectations (see the conformance README).
#[derive(Clone, Debug, PartialEq)]
enum Expect {
    /// `parse-ok`: any final answer except 400; never silence.
    ParseOk,
    /// `parse-ok-no-reply`, `must-drop`, `drop`: no reply at all.
    Silence,
    /// `must-respond-NNN[-or-MMM]`, `must-reject-400`: every final is one of these codes.
    Codes(Vec<u16>),
    /// `reject-400-or-tolerate`: 400, or processed liberally — some final answer, no crash.
    RejectOrTolerate,
    /// `reject-400-or-drop`: 400 or silence.
    Reject400OrDrop,
    /// `reject-4xx`: some 4xx, never 2xx.
    Reject4xx,
    /// `reject-or-drop`, `prefer-reject`: any non-2xx, or silence.
    NonSuccessOrSilence,
    /// `any-or-drop`: anything, as long as the engine stays alive.
    Anything,
}

impl Expect {
    fn parse(word: &str) -> Option<Expect> {
        Some(match word {
            "parse-ok" => Expect::ParseOk,
            "parse-ok-no-reply" | "must-drop" | "drop" => Expect::Silence,
            "must-reject-400" => Expect::Codes(vec![400]),
            "reject-400-or-tolerate" => Expect::RejectOrTolerate,
            "reject-400-or-drop" => Expect::Reject400OrDrop,
            "reject-4xx" => Expect::Reject4xx,
            "reject-or-drop" | "prefer-reject" => Expect::NonSuccessOrSilence,
            "any-or-drop" => Expect::Anything,
            other => {
                let codes = other.strip_prefix("must-respond-")?;
                let parsed: Option<Vec<u16>> =
                    codes.split("-or-").map(|c| c.parse().ok()).collect();
                Expect::Codes(parsed.filter(|c| !c.is_empty())?)
            }
        })
    }
}

struct Case {
    name: String,
    expected: String,
    path: PathBuf,
    bytes: Vec<u8>,
}

impl Case {
    /// The method of the request line (`None` for responses).
    fn method(&self) -> Option<String> {
        let first = self.bytes.split(|b| *b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(first);
        if line.starts_with("SIP/") {
            return None;
        }
        line.split(' ').next().map(str::to_string)
    }

    fn is_register(&self) -> bool {
        self.method().as_deref() == Some("REGISTER")
    }
}

fn load_manifest(dir: &Path) -> Vec<Case> {
    let manifest = dir.join("manifest.tsv");
    let text = std::fs::read_to_string(&manifest)
        .unwrap_or_else(|e| panic!("read {}: {e}", manifest.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("manifest header").split('\t').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("{} has no column {name}", manifest.display()))
    };
    let (name_col, expected_col) = (col("name"), col("expected"));
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let name = fields[name_col].to_string();
            let path = dir.join(format!("{name}.dat"));
            let bytes =
                std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            Case {
                expected: fields[expected_col].to_string(),
                name,
                path,
                bytes,
            }
        })
        .collect()
}

/// Every case of the main set and the variants; panics if a `.dat` has no manifest row.
fn all_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for dir in [
        PathBuf::from(FIXTURES),
        Path::new(FIXTURES).join("variants"),
    ] {
        let listed = load_manifest(&dir);
        let names: BTreeSet<String> = listed.iter().map(|c| c.name.clone()).collect();
        let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
            .expect("read fixture dir")
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".dat"))
                    .map(str::to_string)
            })
            .collect();
        let unlisted: Vec<_> = on_disk.difference(&names).collect();
        assert!(
            unlisted.is_empty(),
            "fixtures without a manifest row in {}: {unlisted:?}",
            dir.display()
        );
        cases.extend(listed);
    }
    assert!(
        cases.len() >= 49,
        "only {} RFC 4475 cases found",
        cases.len()
    );
    cases
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Transport {
    Udp,
    Tcp,
}

/// What came back for one message.
struct Observed {
    replies: Vec<SipMessage>,
    /// TCP only: the engine closed the connection.
    closed: bool,
}

impl Observed {
    fn finals(&self) -> Vec<u16> {
        self.replies
            .iter()
            .filter_map(|m| m.status())
            .filter(|s| *s >= 200)
            .collect()
    }

    fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .replies
            .iter()
            .map(|m| match m.status() {
                Some(code) => code.to_string(),
                None => format!("request {}", m.method().unwrap_or("?")),
            })
            .collect();
        parts.dedup();
        if parts.is_empty() {
            parts.push("silence".into());
        }
        if self.closed {
            parts.push("closed".into());
        }
        parts.join(",")
    }
}

fn send_udp(engine: &Engine, case: &Case, grace: Duration) -> Observed {
    let client = SipClient::new(engine.sip_addr());
    client.send(&case.bytes);
    let started = Instant::now();
    let mut replies = Vec::new();
    let mut deadline = started + WAIT_FOR_FINAL;
    let mut seen_final = false;
    while let Some(msg) = client.recv(deadline.saturating_duration_since(Instant::now())) {
        if !seen_final && msg.is_final() {
            seen_final = true;
            deadline = Instant::now() + grace;
        }
        replies.push(msg);
    }
    Observed {
        replies,
        closed: false,
    }
}

fn send_tcp(engine: &Engine, case: &Case) -> Observed {
    let exchange = tcp_exchange(engine.sip_addr(), &case.bytes, WAIT_FOR_FINAL, |msgs| {
        msgs.iter().any(SipMessage::is_final)
    });
    Observed {
        replies: exchange.messages,
        closed: exchange.closed_by_peer,
    }
}

/// Checks one observation; `Err` explains the mismatch.
fn judge(case: &Case, transport: Transport, observed: &Observed) -> Result<(), String> {
    let finals = observed.finals();
    let any_final = !finals.is_empty();
    let silent = observed.replies.is_empty();

    // Never, whatever the manifest says: a REGISTER accepted without credentials.
    if case.is_register() && finals.iter().any(|c| (200..300).contains(c)) {
        return Err("REGISTER without credentials answered 2xx".into());
    }

    let mut expect = Expect::parse(&case.expected)
        .ok_or_else(|| format!("unknown expectation {:?} in the manifest", case.expected))?;

    // Deviations chosen for our role (a UAS/B2BUA endpoint with a digest registrar).
    match (case.name.as_str(), transport) {
        // Max-Forwards 0 only stops proxies (RFC 3261 sec. 16.3); we are the endpoint the
        // OPTIONS is addressed to, so we answer it like any other: 200.
        ("zeromf", _) => expect = Expect::Codes(vec![200]),
        // Over UDP the datagram is one message: answer the REGISTER (401 challenge) and ignore
        // the INVITE octets after its Content-Length (RFC 3261 sec. 18.3).
        ("dblreq", Transport::Udp) => return judge_dblreq_udp(observed),
        // Over TCP the trailing bytes are the next message: the REGISTER still gets its 401,
        // whatever happens to the INVITE.
        ("dblreq", Transport::Tcp) => {
            return if observed
                .replies
                .iter()
                .any(|m| m.status() == Some(401) && has_digest_challenge(m))
            {
                Ok(())
            } else {
                Err("no 401 Digest challenge for the REGISTER".into())
            };
        }
        // Framing errors on a stream: a 400, or the engine closes the connection.
        ("ncl" | "mcl01", Transport::Tcp) => {
            return if finals.iter().all(|c| *c == 400) && (any_final || observed.closed) {
                Ok(())
            } else {
                Err("expected 400 or a closed connection".into())
            };
        }
        // Content-Length 9999 on a stream: the engine may wait for the rest (silence), answer
        // 400 or close; it must not answer anything else.
        ("clerr", Transport::Tcp) => expect = Expect::Reject400OrDrop,
        // No Content-Length (inv2543) or no end of the header block (baddn) is a framing
        // problem on a stream (RFC 3261 sec. 18.3): waiting, 400 or closing are all fine.
        ("inv2543" | "baddn", Transport::Tcp) => expect = Expect::Anything,
        _ => {}
    }
    // Our registrar requires digest: a well-formed REGISTER gets a 401 challenge.
    if case.is_register() && expect == Expect::ParseOk {
        expect = Expect::Codes(vec![401]);
    }

    let result = match &expect {
        Expect::ParseOk => {
            if !any_final {
                Err("expected a final answer (not 400)".to_string())
            } else if finals.contains(&400) {
                Err("well-formed message answered 400".to_string())
            } else {
                Ok(())
            }
        }
        Expect::Silence => {
            if silent {
                Ok(())
            } else {
                Err("expected no reply".to_string())
            }
        }
        Expect::Codes(codes) => {
            if !any_final {
                Err(format!("expected {codes:?}, got no final answer"))
            } else if let Some(bad) = finals.iter().find(|c| !codes.contains(c)) {
                Err(format!("expected {codes:?}, got {bad}"))
            } else {
                Ok(())
            }
        }
        Expect::RejectOrTolerate => {
            if any_final {
                Ok(())
            } else {
                Err("expected 400 or a liberal answer, got no final answer".to_string())
            }
        }
        Expect::Reject400OrDrop => {
            if finals.iter().all(|c| *c == 400) {
                Ok(())
            } else {
                Err("expected 400 or silence".to_string())
            }
        }
        Expect::Reject4xx => {
            if !any_final {
                Err("expected a 4xx".to_string())
            } else if finals.iter().all(|c| (400..500).contains(c)) {
                Ok(())
            } else {
                Err("expected only 4xx".to_string())
            }
        }
        Expect::NonSuccessOrSilence => {
            if finals.iter().any(|c| (200..300).contains(c)) {
                Err("expected a rejection or silence, got 2xx".to_string())
            } else {
                Ok(())
            }
        }
        Expect::Anything => Ok(()),
    };
    result?;

    if case.is_register() && finals.contains(&401) {
        for reply in observed.replies.iter().filter(|m| m.status() == Some(401)) {
            if !has_digest_challenge(reply) {
                return Err("401 without a WWW-Authenticate: Digest challenge".into());
            }
        }
    }
    if case.name == "longreq" {
        check_longreq_vias(case, observed)?;
    }
    Ok(())
}

fn has_digest_challenge(reply: &SipMessage) -> bool {
    reply
        .headers("www-authenticate")
        .iter()
        .any(|v| v.trim_start().to_ascii_lowercase().starts_with("digest"))
}

fn judge_dblreq_udp(observed: &Observed) -> Result<(), String> {
    if observed
        .replies
        .iter()
        .any(|m| m.call_id().as_deref() == Some(DBLREQ_INVITE_CALL_ID))
    {
        return Err("answered the INVITE octets trailing the REGISTER".into());
    }
    match observed.replies.as_slice() {
        [only] if only.status() == Some(401) && has_digest_challenge(only) => Ok(()),
        [only] if only.status() == Some(401) => {
            Err("401 without a WWW-Authenticate: Digest challenge".into())
        }
        _ => Err("expected exactly one reply: 401 to the REGISTER".into()),
    }
}

/// A Via value without the parameters a server adds to the top one (received, rport), with
/// whitespace normalised.
fn via_key(value: &str) -> String {
    value
        .split(';')
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| {
            let name = p
                .split('=')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            name != "received" && name != "rport"
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// `longreq` has 34 Via values; every response must echo all of them, in order.
fn check_longreq_vias(case: &Case, observed: &Observed) -> Result<(), String> {
    let request = SipMessage::new(case.bytes.clone(), Instant::now());
    let sent: Vec<String> = request.via_values().iter().map(|v| via_key(v)).collect();
    if sent.len() != 34 {
        return Err(format!(
            "test bug: found {} Via values in {}, expected 34",
            sent.len(),
            case.path.display()
        ));
    }
    for reply in &observed.replies {
        let echoed: Vec<String> = reply.via_values().iter().map(|v| via_key(v)).collect();
        if echoed != sent {
            let first_diff = sent
                .iter()
                .zip(&echoed)
                .position(|(a, b)| a != b)
                .unwrap_or(sent.len().min(echoed.len()));
            return Err(format!(
                "reply {} echoes {} of 34 Via values (first difference at #{}: sent {:?}, got {:?})",
                reply.status().unwrap_or(0),
                echoed.len(),
                first_diff + 1,
                sent.get(first_diff),
                echoed.get(first_diff)
            ));
        }
    }
    Ok(())
}

fn run_pass(transport: Transport) {
    let mut engine = Engine::start(&[]);
    let cases = all_cases();
    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut all_rows: Vec<[String; 4]> = Vec::new();
    let mut died_after = None;
    for case in &cases {
        let observed = match transport {
            Transport::Udp => {
                // dblreq: listen longer, to be sure nothing answers the trailing INVITE.
                let grace = if case.name == "dblreq" {
                    WAIT_FOR_FINAL
                } else {
                    GRACE_AFTER_FINAL
                };
                send_udp(&engine, case, grace)
            }
            Transport::Tcp => send_tcp(&engine, case),
        };
        let verdict = judge(case, transport, &observed);
        let row = [
            case.name.clone(),
            case.expected.clone(),
            observed.summary(),
            verdict.clone().err().unwrap_or_else(|| "ok".into()),
        ];
        if verdict.is_err() {
            rows.push(row.clone());
        }
        all_rows.push(row);
        if !engine.is_running() {
            died_after = Some(case.name.clone());
            break;
        }
    }

    // Every outcome, shown with `cargo test -- --nocapture` or when the test fails.
    println!(
        "{}",
        table(transport, "all results", &all_rows, cases.len())
    );
    let mut failures = Vec::new();
    if !rows.is_empty() {
        failures.push(table(transport, "not as expected", &rows, cases.len()));
    }
    if let Some(name) = died_after {
        failures.push(format!(
            "engine died right after `{name}`\n{}",
            engine.log_tail(40)
        ));
    } else {
        let client = SipClient::new(engine.sip_addr());
        match client.options("490", Duration::from_secs(2)) {
            Some(reply) if reply.status() == Some(200) => {}
            other => failures.push(format!(
                "after the torture messages OPTIONS got {:?} instead of 200",
                other.map(|m| m.start_line().to_string())
            )),
        }
    }
    if engine.log().contains("panicked") {
        failures.push("the engine log contains a panic".into());
    }
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n\n"),
        if engine.log().contains("panicked") {
            engine.log_tail(60)
        } else {
            String::new()
        }
    );
    engine.assert_no_panic();
}

fn table(transport: Transport, title: &str, rows: &[[String; 4]], total: usize) -> String {
    let headers = ["name", "expected", "got", "problem"];
    let mut widths = headers.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 4]| {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let mut out = format!(
        "RFC 4475 over {transport:?}, {title}: {} of {total} messages\n{}\n",
        rows.len(),
        line(headers)
    );
    out.push_str(&widths.map(|w| "-".repeat(w)).join("-|-"));
    for row in rows {
        out.push('\n');
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3]]));
    }
    out
}

#[test]
fn rfc4475_torture_messages_over_udp() {
    run_pass(Transport::Udp);
}

#[test]
fn rfc4475_torture_messages_over_tcp() {
    run_pass(Transport::Tcp);
}

#[test]
fn manifest_vocabulary_is_understood() {
    // Catches a manifest edit that introduces a word this test doesn't know, without an engine.
    for case in all_cases() {
        assert!(
            Expect::parse(&case.expected).is_some(),
            "{}: unknown expectation {:?}",
            case.name,
            case.expected
        );
    }
    assert_eq!(
        Expect::parse("must-respond-501-or-400"),
        Some(Expect::Codes(vec![501, 400]))
    );
}

/// A reply as the engine might send it, for checking the judge itself.
fn fake_reply(code: u16, call_id: &str, extra: &str) -> SipMessage {
    let text = format!(
        "SIP/2.0 {code} Whatever\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 X\r\n{extra}Content-Length: 0\r\n\r\n"
    );
    SipMessage::new(text.into_bytes(), Instant::now())
}

fn case_named(name: &str) -> Case {
    all_cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no fixture {name}"))
}

fn observed(replies: Vec<SipMessage>) -> Observed {
    Observed {
        replies,
        closed: false,
    }
}

#[test]
fn judge_rejects_wrong_answers() {
    // A negative control: the pass/fail logic must catch what it is there to catch.
    let challenge = "WWW-Authenticate: Digest realm=\"x\", nonce=\"y\"\r\n";
    let wrong = [
        ("lwsdisp", observed(vec![fake_reply(400, "c", "")])),
        ("lwsdisp", observed(vec![])),
        ("unreason", observed(vec![fake_reply(200, "c", "")])),
        ("badinv01", observed(vec![fake_reply(404, "c", "")])),
        ("intmeth", observed(vec![fake_reply(405, "c", "")])),
        ("insuf", observed(vec![fake_reply(404, "c", "")])),
        ("unksm2", observed(vec![fake_reply(200, "c", "")])),
        ("cparam01", observed(vec![fake_reply(401, "c", "")])),
        ("cparam01", observed(vec![fake_reply(200, "c", "")])),
        ("zeromf", observed(vec![fake_reply(483, "c", "")])),
        (
            "dblreq",
            observed(vec![
                fake_reply(401, "r", challenge),
                fake_reply(404, DBLREQ_INVITE_CALL_ID, ""),
            ]),
        ),
        ("dblreq", observed(vec![fake_reply(401, "r", "")])),
        ("longreq", observed(vec![fake_reply(404, "c", "")])),
    ];
    for (name, seen) in &wrong {
        let case = case_named(name);
        assert!(
            judge(&case, Transport::Udp, seen).is_err(),
            "{name}: judge accepted {}",
            seen.summary()
        );
    }
    let right = [
        ("lwsdisp", observed(vec![fake_reply(200, "c", "")])),
        ("unreason", observed(vec![])),
        ("insuf", observed(vec![])),
        ("cparam01", observed(vec![fake_reply(401, "c", challenge)])),
        ("dblreq", observed(vec![fake_reply(401, "r", challenge)])),
        ("mismatch02", observed(vec![fake_reply(400, "c", "")])),
    ];
    for (name, seen) in &right {
        let case = case_named(name);
        assert_eq!(judge(&case, Transport::Udp, seen), Ok(()), "{name}");
    }
}
