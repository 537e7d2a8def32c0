//! The Prometheus files in `deploy/` are valid and their alert rules behave as their unit tests
//! say — checked with the real `promtool` (Debian package `prometheus`).

use std::path::Path;
use std::process::Command;

fn promtool(args: &[&str]) -> String {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let output = Command::new("promtool")
        .args(args)
        .current_dir(&deploy)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "promtool not found ({e}): install the Debian package prometheus \
                 (apt-get install -y prometheus) or run scripts/test.sh"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn scrape_config_is_valid() {
    let out = promtool(&["check", "config", "prometheus.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn alert_rules_are_valid_and_pass_their_unit_tests() {
    let out = promtool(&["check", "rules", "alerts.yml"]);
    assert!(out.contains("SUCCESS: 5 rules found"), "{out}");
    let out = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}
