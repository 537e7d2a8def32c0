//! The monitoring files in `deploy/` work with the real tools (Debian package `prometheus`):
//! `promtool` checks the scrape config and the alert and recording rules and runs their unit
//! tests; the Grafana dashboard parses and every metric name that the dashboard and the rules use is one a
//! running engine exports; and a real Prometheus server on loopback scrapes a running engine and
//! answers a query for one of its metrics. Missing tools fail the tests (never skip them).

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::engine::Engine;
use common::scratch::ScratchDir;

const INSTALL_HINT: &str =
    "install the Debian package prometheus (apt-get install -y prometheus) or run scripts/test.sh";

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn promtool(args: &[&str]) -> String {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(deploy())
        .output()
        .unwrap_or_else(|e| panic!("promtool not found ({e}): {INSTALL_HINT}"));
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
    assert!(out.contains("SUCCESS: 2 rule files found"), "{out}");
    assert!(
        out.contains("is valid prometheus config file syntax"),
        "{out}"
    );
}

#[test]
fn alert_and_recording_rules_are_valid_and_pass_their_unit_tests() {
    let out = promtool(&["check", "rules", "alerts.yml"]);
    assert!(out.contains("SUCCESS: 12 rules found"), "{out}");
    let out = promtool(&["check", "rules", "recording.yml"]);
    assert!(out.contains("SUCCESS: 9 rules found"), "{out}");
    let out = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// The names of the metric families a freshly started engine exports, with the `_bucket`,
/// `_sum` and `_count` series of its histograms.
fn exported_names(engine: &Engine) -> BTreeSet<String> {
    let (status, text) = common::http::request(engine.http_addr(), "GET", "/metrics", None);
    assert_eq!(status, 200, "{text}");
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut words = rest.split(' ');
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        names.insert(name.to_string());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

/// Identifier-like tokens (`[A-Za-z0-9_:]+`) that mention `zentrale_`.
fn zentrale_tokens(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.contains("zentrale_"))
        .map(str::to_string)
        .collect()
}

/// Every `expr` string anywhere in a Grafana dashboard (panels, annotations).
fn exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[test]
fn dashboard_and_rules_use_only_metrics_the_engine_exports() {
    let text = std::fs::read_to_string(deploy().join("grafana-dashboard.json"))
        .expect("read deploy/grafana-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&text).expect("the dashboard is valid JSON");
    assert_eq!(dashboard["schemaVersion"], 39);
    assert_eq!(dashboard["__inputs"][0]["name"], "DS_PROMETHEUS");
    let rows: Vec<&str> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    assert_eq!(rows, ["Wallboard", "Operations"]);
    let mut dashboard_exprs = Vec::new();
    exprs(&dashboard, &mut dashboard_exprs);
    assert!(dashboard_exprs.len() >= 10, "{dashboard_exprs:?}");
    for panel in dashboard["panels"].as_array().expect("panels") {
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["uid"], "${DS_PROMETHEUS}",
                "panel {}",
                panel["title"]
            );
        }
    }

    // Recorded series: defined in recording.yml.
    let recording =
        std::fs::read_to_string(deploy().join("recording.yml")).expect("read recording.yml");
    let recorded: BTreeSet<String> = recording
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record: "))
        .map(|name| name.trim().to_string())
        .collect();
    assert_eq!(recorded.len(), 9, "{recorded:?}");

    let engine = Engine::start(&[]);
    let exported = exported_names(&engine);
    let mut sources: Vec<(String, String)> = dashboard_exprs
        .into_iter()
        .map(|e| ("grafana-dashboard.json".to_string(), e))
        .collect();
    for file in ["alerts.yml", "recording.yml", "alerts.test.yml"] {
        let text = std::fs::read_to_string(deploy().join(file)).expect("read a deploy file");
        sources.push((file.to_string(), text));
    }
    let mut unknown = Vec::new();
    let mut used = BTreeSet::new();
    for (file, text) in &sources {
        for token in zentrale_tokens(text) {
            let known = if token.contains(':') {
                recorded.contains(&token)
            } else {
                exported.contains(&token)
            };
            if !known {
                unknown.push(format!("{file}: {token}"));
            }
            used.insert(token);
        }
    }
    assert!(
        unknown.is_empty(),
        "names the engine does not export (or recording.yml does not record):\n{}\n\nexported:\n{exported:#?}",
        unknown.join("\n")
    );
    // The wallboard's essentials are among them.
    for name in [
        "zentrale_queue_callers",
        "zentrale_queue_longest_wait_seconds",
        "zentrale_queue_agents",
        "zentrale_queue_wait_seconds_bucket",
        "zentrale_sip_responses_total",
        "zentrale_calendar_open",
        "zentrale_acd_dispatch_seconds_bucket",
    ] {
        assert!(used.contains(name), "{name} unused: {used:#?}");
    }
    engine.assert_no_panic();
}

/// A running `prometheus` server, killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// GET `path` from `addr`: (status, body), or None while nothing listens there.
fn try_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    common::http::try_request(addr, "GET", path, None).map(|r| (r.status, r.body))
}

#[test]
fn a_real_prometheus_scrapes_the_engine_and_answers_a_query() {
    let engine = Engine::start(&[]);
    let scratch = ScratchDir::new("prometheus");
    let config = scratch.join("prometheus.yml");
    let rules = |file: &str| deploy().join(file).display().to_string();
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n  - {}\n\
             scrape_configs:\n  - job_name: zentrale\n    metrics_path: /metrics\n    \
             static_configs:\n      - targets: [\"{}\"]\n",
            rules("alerts.yml"),
            rules("recording.yml"),
            engine.http_addr()
        ),
    )
    .expect("write the Prometheus config");
    let port = common::ports::free_tcp_port();
    let addr = SocketAddr::from((common::ports::LOOPBACK, port));
    let log = scratch.join("prometheus.log");
    let log_file = std::fs::File::create(&log).expect("create the Prometheus log");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            scratch.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("prometheus not found ({e}): {INSTALL_HINT}"));
    let prometheus = Prometheus { child, addr, log };

    // Scraped every second: the engine's counter appears within a few seconds of start-up.
    let query = "/api/v1/query?query=zentrale_calls_total";
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        if let Some((200, body)) = try_get(prometheus.addr, query)
            && body.contains("\"__name__\":\"zentrale_calls_total\"")
        {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus returned no zentrale_calls_total sample within 30 s; last answer: {:?}\nlog:\n{}",
            try_get(prometheus.addr, query),
            prometheus.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(body.contains("\"status\":\"success\""), "{body}");
    assert!(body.contains("\"job\":\"zentrale\""), "{body}");
    assert!(
        body.contains(&format!("\"instance\":\"{}\"", engine.http_addr())),
        "{body}"
    );
    assert!(body.contains(",\"0\"]"), "no call yet, so 0: {body}");
    // The scrape itself is healthy, and the deploy rules loaded into the real server.
    let (status, up) = try_get(prometheus.addr, "/api/v1/query?query=up").expect("query up");
    assert_eq!(status, 200, "{up}");
    assert!(up.contains(",\"1\"]"), "up is not 1: {up}");
    let (status, loaded) = try_get(prometheus.addr, "/api/v1/rules").expect("rules");
    assert_eq!(status, 200, "{loaded}");
    for group in [
        "\"name\":\"zentrale\"",
        "\"name\":\"zentrale-service-level\"",
    ] {
        assert!(loaded.contains(group), "{group} not loaded: {loaded}");
    }
    drop(prometheus);
    engine.assert_no_panic();
}
