//! The alerts tested as the Prometheus ecosystem tests them: the PrometheusRule's `spec.groups` are
//! written to a plain rules file, `promtool check rules` checks it and `promtool test rules` runs
//! `tests/promtool/skewguard_alerts_test.yaml`, where every alert fires when it should (with its
//! labels and annotations) and stays silent when it should not.
//!
//! Without `promtool` on the PATH the promtool tests print a note and pass, unless
//! `SKEWGUARD_REQUIRE_PROMTOOL=1` (set by `.ci/run`, which installs it), where they fail.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

const RULES: &str = "config/prometheus/prometheusrule.yaml";
const UNIT_TESTS: &str = "tests/promtool/skewguard_alerts_test.yaml";
/// The name the unit tests' `rule_files` expect next to them.
const RULES_FILE: &str = "skewguard.rules.yaml";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The plain Prometheus rules file of the PrometheusRule: `{groups: spec.groups}`.
fn plain_rules() -> String {
    let rule = yaml(RULES);
    assert_eq!(rule["kind"], "PrometheusRule");
    let mut file = serde_yaml::Mapping::new();
    file.insert("groups".into(), rule["spec"]["groups"].clone());
    serde_yaml::to_string(&file).unwrap()
}

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("skewguard-promtool-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `promtool` on the PATH; `None` (with a note) when it is missing and not required.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("promtool"))
            .find(|p| p.is_file())
    });
    let required = std::env::var("SKEWGUARD_REQUIRE_PROMTOOL").is_ok_and(|v| v == "1");
    match found {
        Some(p) => Some(p),
        None if required => panic!(
            "SKEWGUARD_REQUIRE_PROMTOOL=1 but promtool is not on the PATH (apt-get install prometheus)"
        ),
        None => {
            println!(
                "note: promtool not found; skipping `promtool check rules` and `promtool test rules` \
                 (install it: apt-get install prometheus)"
            );
            None
        }
    }
}

fn run(promtool: &Path, args: &[&Path], sub: &[&str]) {
    let output = Command::new(promtool)
        .args(sub)
        .args(args)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool {} failed:\n{text}",
        sub.join(" ")
    );
    println!("promtool {}:\n{text}", sub.join(" "));
}

#[test]
fn promtool_checks_the_rules_and_runs_every_alerts_unit_tests() {
    let Some(promtool) = promtool() else { return };
    let dir = TempDir::new();
    let rules = dir.0.join(RULES_FILE);
    std::fs::write(&rules, plain_rules()).unwrap();
    let tests = dir.0.join("skewguard_alerts_test.yaml");
    std::fs::copy(root().join(UNIT_TESTS), &tests).unwrap();
    run(&promtool, &[&rules], &["check", "rules"]);
    run(&promtool, &[&tests], &["test", "rules"]);
}

/// Alert names of the rules file.
fn alerts() -> BTreeSet<String> {
    yaml(RULES)["spec"]["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().clone())
        .filter_map(|r| r["alert"].as_str().map(String::from))
        .collect()
}

#[test]
fn every_alert_has_a_firing_and_a_silent_unit_test() {
    let tests = yaml(UNIT_TESTS);
    assert_eq!(tests["rule_files"][0], RULES_FILE);
    let cases: Vec<&Value> = tests["tests"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_sequence().unwrap())
        .collect();
    for alert in alerts() {
        let of_alert: Vec<&&Value> = cases.iter().filter(|c| c["alertname"] == alert).collect();
        let expected = |c: &Value| c["exp_alerts"].as_sequence().cloned().unwrap_or_default();
        let fires: Vec<Value> = of_alert.iter().flat_map(|c| expected(c)).collect();
        assert!(!fires.is_empty(), "{alert}: no test where it fires");
        assert!(
            of_alert.iter().any(|c| expected(c).is_empty()),
            "{alert}: no test where it stays silent"
        );
        for a in fires {
            assert!(a["exp_labels"]["severity"].is_string(), "{alert}: {a:?}");
            for annotation in ["summary", "description", "runbook_url"] {
                assert!(
                    a["exp_annotations"][annotation].is_string(),
                    "{alert}: the test does not check its {annotation}"
                );
            }
        }
    }
}
