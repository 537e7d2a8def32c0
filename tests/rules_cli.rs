//! `zentrale rules check` and `zentrale rules explain`, run as the real binary: exit codes,
//! compiler-style messages with file:line:column for each class of error, and the JSON forms.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::scratch::ScratchDir;

/// The shipped prompt names (the WAV files in routing-rules/prompts/).
fn prompt_names() -> Vec<String> {
    std::fs::read_dir(shipped().join("prompts"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".wav").map(str::to_string)
        })
        .collect()
}

fn zentrale(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zentrale"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run zentrale")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("routing-rules")
}

/// A copy of the shipped rule files with placeholder prompt files (so these tests do not
/// depend on the generated audio), ready to be broken on purpose.
struct Rules {
    dir: ScratchDir,
}

impl Rules {
    fn new() -> Rules {
        let dir = ScratchDir::new("rules");
        for entry in std::fs::read_dir(shipped()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                std::fs::copy(&path, dir.join(path.file_name().unwrap().to_str().unwrap()))
                    .unwrap();
            }
        }
        std::fs::create_dir_all(dir.join("prompts")).unwrap();
        for name in prompt_names() {
            std::fs::write(dir.join("prompts").join(format!("{name}.wav")), b"").unwrap();
        }
        Rules { dir }
    }

    /// Replaces `old` (which must occur once) in `file` by `new`, and returns the
    /// `file:line:column` where `mark` (a part of `new`) now starts.
    fn edit(&self, file: &str, old: &str, new: &str, mark: &str) -> String {
        let path = self.dir.join(file);
        let content = std::fs::read_to_string(&path).unwrap();
        assert_eq!(content.matches(old).count(), 1, "`{old}` in {file}");
        let start = content.find(old).unwrap();
        let content = content.replacen(old, new, 1);
        std::fs::write(&path, &content).unwrap();
        let at = start + new.find(mark).expect("mark in new text");
        let line = content[..at].matches('\n').count() + 1;
        let column = content[..at].rsplit('\n').next().unwrap().chars().count() + 1;
        format!("{}:{line}:{column}", path.display())
    }

    fn append(&self, file: &str, extra: &str) {
        let path = self.dir.join(file);
        let mut content = std::fs::read_to_string(&path).unwrap();
        content.push_str(extra);
        std::fs::write(&path, content).unwrap();
    }

    fn check(&self) -> Output {
        zentrale(&["rules", "check", self.dir.path().to_str().unwrap()])
    }
}

/// `rules check` on a broken copy: exit 1, and the message at the expected place.
fn assert_error(rules: &Rules, place: &str, message: &str) -> String {
    let output = rules.check();
    let out = text(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    let expected = format!("error: {message}");
    let found = out
        .split("\n\n")
        .any(|block| block.starts_with(&expected) && block.contains(&format!("--> {place}\n")));
    assert!(found, "expected `{expected}` at {place} in:\n{out}");
    assert!(out.contains("= hint: "), "{out}");
    out
}

#[test]
fn the_shipped_rules_check_clean() {
    let output = zentrale(&["rules", "check", "routing-rules"]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(
        out.contains("routing-rules: rules valid (0 errors, 0 warnings"),
        "{out}"
    );
    // The hotline's hours are a default the city still has to confirm.
    assert!(
        out.contains("note: calendar `hotline`: hours to be confirmed by the city"),
        "{out}"
    );
}

#[test]
fn check_defaults_to_the_routing_rules_folder_and_prints_json() {
    let output = zentrale(&["rules", "check", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["valid"], true);
    assert_eq!(json["errors"], 0);
    assert_eq!(json["version"]["hash"].as_str().unwrap().len(), 16);
    assert_eq!(json["diagnostics"][0]["severity"], "note");
    assert!(json["diagnostics"][0]["location"]["line"].as_u64().unwrap() > 0);
}

#[test]
fn unknown_queue() {
    let rules = Rules::new();
    let place = rules.edit(
        "routes.toml",
        "then = { queue = \"fundbuero\" }",
        "then = { queue = \"fundburo\" }",
        "\"fundburo\"",
    );
    let out = assert_error(&rules, &place, "unknown queue `fundburo`");
    assert!(out.contains("did you mean `fundbuero`?"), "{out}");
    assert!(out.contains("queues.toml as [queue.<id>]"), "{out}");
}

#[test]
fn missing_prompt() {
    let rules = Rules::new();
    std::fs::remove_file(rules.dir.join("prompts/closed_fundbuero.wav")).unwrap();
    let place = rules.edit(
        "menus.toml",
        "prompt = [\"closed_fundbuero\", \"offer_general\"]",
        "prompt = [\"closed_fundbuero\", \"offer_general\"]",
        // A list's diagnostic points at the list.
        "[",
    );
    assert_error(
        &rules,
        &place,
        &format!(
            "missing prompt `closed_fundbuero`: there is no file {}/closed_fundbuero.wav",
            rules.dir.join("prompts").display()
        ),
    );
}

#[test]
fn bad_time() {
    let rules = Rules::new();
    let place = rules.edit(
        "calendars.toml",
        "Di = \"08:30-18:00\"",
        "Di = \"08:30-25:00\"",
        "\"08:30-25:00\"",
    );
    assert_error(
        &rules,
        &place,
        "bad time range on Di: \"08:30-25:00\": 25:00 is not a time of day",
    );
}

#[test]
fn overlapping_ranges() {
    let rules = Rules::new();
    let place = rules.edit(
        "calendars.toml",
        "Mi = \"09:00-13:00\"",
        "Mi = [\"09:00-13:00\", \"12:30-15:00\"]",
        "[",
    );
    assert_error(
        &rules,
        &place,
        "calendar `fundbuero`: overlapping ranges: opening hours of Wednesday overlap: \
         09:00-13:00 and 12:30-15:00",
    );
}

#[test]
fn duplicate_ids() {
    let rules = Rules::new();
    let second = rules.edit(
        "routes.toml",
        "id = \"fuehrerschein\"",
        "id = \"buergerservice\"",
        "\"buergerservice\"",
    );
    let out = assert_error(&rules, &second, "duplicate route id `buergerservice`");
    assert!(out.contains("is already defined at"), "{out}");
    // The same queue id in two files.
    let rules = Rules::new();
    std::fs::write(
        rules.dir.join("zz-extra.toml"),
        "[queue.fundbuero]\nname = \"Noch ein Fundbüro\"\n",
    )
    .unwrap();
    let place = format!("{}:1:8", rules.dir.join("zz-extra.toml").display());
    assert_error(&rules, &place, "duplicate queue id `fundbuero`");
}

#[test]
fn toml_syntax_error() {
    let rules = Rules::new();
    let place = rules.edit(
        "queues.toml",
        "max_length = 15",
        "max_length = = 15",
        "= 15",
    );
    assert_error(&rules, &place, "TOML syntax error");
}

#[test]
fn all_errors_are_reported_not_just_the_first() {
    let rules = Rules::new();
    rules.edit(
        "routes.toml",
        "queue = \"fundbuero\" }",
        "queue = \"fundburo\" }",
        "f",
    );
    rules.edit(
        "calendars.toml",
        "Do = \"08:30-16:00\"",
        "Do = \"16:00-08:30\"",
        "\"",
    );
    rules.edit(
        "agents.toml",
        "password_env = \"ZENTRALE_AGENT5_PASSWORD\"",
        "password = \"geheim\"",
        "p",
    );
    rules.edit(
        "queues.toml",
        "strategy = \"round-robin\"",
        "strategy = \"round-robbin\"",
        "\"",
    );
    let output = rules.check();
    let out = text(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    for expected in [
        "error: unknown queue `fundburo`",
        "error: bad time range on Do: \"16:00-08:30\" closes before it opens",
        "error: plaintext passwords are not allowed",
        "error: unknown strategy `round-robbin`",
        "rules invalid (5 errors",
    ] {
        assert!(out.contains(expected), "`{expected}` missing in:\n{out}");
    }
}

#[test]
fn unknown_fields_and_sections_are_errors_with_hints() {
    let rules = Rules::new();
    let place = rules.edit(
        "queues.toml",
        "max_wait_secs = 1200",
        "max_wait = 1200",
        "max_wait",
    );
    let out = assert_error(
        &rules,
        &place,
        "in [queue.allgemein]: unknown field `max_wait`",
    );
    assert!(out.contains("README.md"), "{out}");
    let rules = Rules::new();
    rules.append("routes.toml", "\n[[routes]]\nid = \"x\"\n");
    let out = text(&rules.check());
    assert!(out.contains("error: unknown section `routes`"), "{out}");
    assert!(out.contains("did you mean `route`?"), "{out}");
}

#[test]
fn shadowed_route_is_a_warning_not_an_error() {
    let rules = Rules::new();
    rules.edit(
        "routes.toml",
        "[[route]]\nid = \"buergerservice-lange-wartezeit\"",
        "[[route]]\nid = \"alles-zum-fundbuero\"\nwhen = { topic = [\"fundbuero\", \"buergerservice\"] }\nthen = { queue = \"fundbuero\" }\n\n[[route]]\nid = \"buergerservice-lange-wartezeit\"",
        "[[route]]",
    );
    let output = rules.check();
    let out = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(
        out.contains("warning: route `buergerservice-lange-wartezeit` can never be taken: route `alles-zum-fundbuero` above it"),
        "{out}"
    );
    assert!(out.contains("rules valid (0 errors, 3 warnings"), "{out}");
    assert!(
        out.contains(" | id = \"buergerservice-lange-wartezeit\""),
        "{out}"
    );
}

#[test]
fn explain_the_issue_example() {
    let output = zentrale(&[
        "rules",
        "explain",
        "--to",
        "490",
        "--from",
        "+4936411234",
        "--keys",
        "4",
        "--at",
        "2026-12-24T10:00",
    ]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(
        out.contains(
            "Call to 490 from +4936411234 on Thu 24 Dec 2026 10:00 CET (09:00 UTC), keys 4"
        ),
        "{out}"
    );
    assert!(
        out.contains("Decision: announce closed_today + goodbye, then hang up"),
        "{out}"
    );
    assert!(
        out.contains("Route `schliesstag` (routing-rules/routes.toml:"),
        "{out}"
    );
    assert!(
        out.contains("closed for the closure day Heiligabend"),
        "{out}"
    );
}

#[test]
fn explain_json_and_dst_note() {
    let output = zentrale(&[
        "rules",
        "explain",
        "--to",
        "490",
        "--keys",
        "4",
        "--at",
        "2026-03-29T02:30",
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["at"], "2026-03-29T01:00:00Z");
    assert!(json["note"].as_str().unwrap().contains("does not exist"));
    assert_eq!(json["decision"]["outcome"]["action"], "hangup");
    assert_eq!(json["decision"]["trail"][0]["step"], "number");
    assert!(json["summary"].as_str().unwrap().contains("hang up"));
}

#[test]
fn explain_with_queue_state() {
    let output = zentrale(&[
        "rules",
        "explain",
        "--to",
        "03641490",
        "--keys",
        "4",
        "--at",
        "2026-11-24T10:00",
        "--queue",
        "fundbuero:agents=0",
    ]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(
        out.contains(
            "Decision: announce transfer_general, then put the caller in queue `allgemein`"
        ),
        "{out}"
    );
    assert!(
        out.contains("Queue `fundbuero` (Fundbüro): no agent is logged in"),
        "{out}"
    );
}

#[test]
fn explain_refuses_bad_arguments_and_bad_rules() {
    let bad_time = zentrale(&["rules", "explain", "--to", "490", "--at", "24.12.2026"]);
    assert_eq!(bad_time.status.code(), Some(2), "{}", text(&bad_time));
    assert!(text(&bad_time).contains("--at"));
    let bad_keys = zentrale(&["rules", "explain", "--to", "490", "--keys", "4x"]);
    assert_eq!(bad_keys.status.code(), Some(2), "{}", text(&bad_keys));
    let rules = Rules::new();
    rules.edit(
        "routes.toml",
        "queue = \"fundbuero\" }",
        "queue = \"fundburo\" }",
        "f",
    );
    let dir = rules.dir.path().to_str().unwrap().to_string();
    let invalid = zentrale(&["rules", "explain", "--to", "490", "--dir", &dir]);
    assert_eq!(invalid.status.code(), Some(1), "{}", text(&invalid));
    assert!(text(&invalid).contains("unknown queue `fundburo`"));
}
