//! The command line as users and CI run it: the real `skewguard` and `kubectl-skewguard` binaries
//! against small fake API servers on loopback (the list calls `report` makes, answered from
//! fixtures), with a kubeconfig of their own: `--kubeconfig`, `--context`, `--all-contexts` (one
//! table, a CLUSTER column, clusters read concurrently), `-o wide`, `--watch`, `--fail-on` exit
//! codes, offline `--policy` validation, shell completion scripts that their shells parse, the
//! plugin's help as krew expects it, and the krew manifest.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::Barrier;

const ZONE: &str = "topology.kubernetes.io/zone";
const NS: &str = "petclinic";

fn skewguard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_skewguard"))
}

fn plugin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kubectl-skewguard"))
}

/// One fake cluster: two nodes (zones a and c) and `web`, a Deployment of two pods on the nodes
/// named in `web_nodes`.
#[derive(Clone, Debug)]
struct Fixture {
    web_nodes: Vec<&'static str>,
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": format!("{kind}List"),
           "metadata": {"resourceVersion": "1"}, "items": items})
}

fn node(name: &str, zone: &str) -> Value {
    json!({"metadata": {"name": name, "labels": {ZONE: zone, "kubernetes.io/hostname": name}},
           "status": {"allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                      "conditions": [{"type": "Ready", "status": "True"}]}})
}

const LABELS: fn() -> Value = || json!({"app": "petclinic", "tier": "web"});

impl Fixture {
    fn answer(&self, path: &str) -> Option<Value> {
        let ns = format!("/namespaces/{NS}/");
        Some(match path {
            "/api/v1/nodes" => list(
                "Node",
                vec![node("node-a", "zone-a"), node("node-c", "zone-c")],
            ),
            p if p == format!("/api/v1{ns}pods") => list(
                "Pod",
                self.web_nodes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        let mut labels = LABELS();
                        labels["pod-template-hash"] = json!("h1");
                        json!({"metadata": {"name": format!("web-{i}"), "namespace": NS,
                                            "labels": labels, "ownerReferences": [
                                                {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                 "name": "web-h1", "uid": "rs", "controller": true}]},
                               "spec": {"nodeName": n, "containers": [{"name": "c", "image": "i"}]},
                               "status": {"phase": "Running",
                                          "conditions": [{"type": "Ready", "status": "True"}]}})
                    })
                    .collect(),
            ),
            p if p == format!("/apis/policy/v1{ns}poddisruptionbudgets") => {
                list("PodDisruptionBudget", vec![])
            }
            p if p == format!("/apis/apps/v1{ns}deployments") => list(
                "Deployment",
                vec![json!({
                    "metadata": {"name": "web", "namespace": NS, "generation": 1, "labels": LABELS()},
                    "spec": {"replicas": 2, "selector": {"matchLabels": LABELS()},
                             "template": {"metadata": {"labels": LABELS()},
                                          "spec": {"containers": [{"name": "c", "image": "i"}]}}},
                    "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
                               "readyReplicas": 2, "availableReplicas": 2}
                })],
            ),
            p if p == format!("/apis/apps/v1{ns}statefulsets") => list("StatefulSet", vec![]),
            _ => return None,
        })
    }
}

struct Fake {
    fixture: Arc<Mutex<Fixture>>,
    /// When set, a node list is answered only once every fake server sharing it has been asked:
    /// clusters read one after the other never get there.
    together: Option<Arc<Barrier>>,
}

async fn serve(State(fake): State<Arc<Fake>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    if path == "/api/v1/nodes"
        && let Some(barrier) = &fake.together
        && tokio::time::timeout(Duration::from_secs(20), barrier.wait())
            .await
            .is_err()
    {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the other cluster was never read",
        )
            .into_response();
    }
    let answer = fake.fixture.lock().unwrap().answer(&path);
    let (status, body) = match answer {
        Some(body) => (StatusCode::OK, body),
        None => (
            StatusCode::NOT_FOUND,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "message": format!("{path} not found"), "reason": "NotFound", "code": 404}),
        ),
    };
    (
        status,
        [(CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Starts a fake API server; its URL.
async fn start(fake: Fake) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .fallback(serve)
        .with_state(Arc::new(fake));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// A kubeconfig with one context per (name, server), the first current, in a fresh directory.
fn kubeconfig(contexts: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "skewguard-cli-{}-{}",
        std::process::id(),
        contexts
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join("-")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config = json!({
        "apiVersion": "v1", "kind": "Config",
        "current-context": contexts[0].0,
        "clusters": contexts.iter().map(|(n, s)| json!({"name": n, "cluster": {"server": s}})).collect::<Vec<_>>(),
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": contexts.iter().map(|(n, _)| json!(
            {"name": n, "context": {"cluster": n, "user": "u", "namespace": NS}})).collect::<Vec<_>>(),
    });
    let path = dir.join("config");
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    path
}

/// Runs a command to its end off the async runtime (the fake servers keep answering).
async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || {
        command
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .output()
            .expect("the binary runs")
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn report(config: &Path, args: &[&str]) -> Command {
    let mut c = skewguard();
    c.arg("report").arg("--kubeconfig").arg(config).args(args);
    c
}

/// prod-eu has both `web` pods in zone c (a single point of failure, skew 2 > 1); prod-us has one
/// in each zone.
async fn two_clusters(together: bool) -> PathBuf {
    let barrier = together.then(|| Arc::new(Barrier::new(2)));
    let eu = start(Fake {
        fixture: Arc::new(Mutex::new(Fixture {
            web_nodes: vec!["node-c", "node-c"],
        })),
        together: barrier.clone(),
    })
    .await;
    let us = start(Fake {
        fixture: Arc::new(Mutex::new(Fixture {
            web_nodes: vec!["node-a", "node-c"],
        })),
        together: barrier,
    })
    .await;
    kubeconfig(&[("prod-eu", &eu), ("prod-us", &us)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_contexts_read_concurrently_into_one_table_with_a_cluster_column() {
    // Each fake server answers its node list only when the other one has been asked too.
    let config = two_clusters(true).await;
    let out = run(report(&config, &["--all-contexts"])).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{}", stdout, text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("CLUSTER  NAMESPACE  KIND"), "{stdout}");
    assert!(
        lines[1].starts_with("prod-eu  petclinic  Deployment  web"),
        "{stdout}"
    );
    assert!(lines[1].contains("zone-a=0 zone-c=2  2 > 1"), "{stdout}");
    assert!(
        lines[2].starts_with("prod-us  petclinic  Deployment  web"),
        "{stdout}"
    );
    assert!(lines[2].contains("zone-a=1 zone-c=1  0"), "{stdout}");
    assert!(
        stdout.contains("  prod-eu: petclinic/web (Deployment): all 2 running replicas in zone-c"),
        "{stdout}"
    );
    let json: Value = serde_json::from_slice(
        &run(report(&config, &["--all-contexts", "-o", "json"]))
            .await
            .stdout,
    )
    .unwrap();
    let clusters: Vec<&str> = json["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cluster"].as_str().unwrap())
        .collect();
    assert_eq!(clusters, ["prod-eu", "prod-us"]);
    assert_eq!(json["clusters"][0]["workloads"][0]["skew"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_on_exits_3_when_it_finds_what_it_names_and_0_otherwise() {
    let config = two_clusters(false).await;
    let status = |out: &Output| out.status.code();
    // The current context (prod-eu): a single point of failure, over its maxSkew.
    let spof = run(report(&config, &["--fail-on", "spof"])).await;
    assert_eq!(status(&spof), Some(3), "{}", text(&spof.stderr));
    assert!(
        text(&spof.stdout).starts_with("NAMESPACE  KIND"),
        "the report is printed too"
    );
    assert_eq!(
        text(&spof.stderr),
        "--fail-on: 1 single point(s) of failure: Deployment petclinic/web\n"
    );
    let both = run(report(&config, &["--fail-on", "spof,unbalanced"])).await;
    assert_eq!(status(&both), Some(3));
    assert_eq!(
        text(&both.stderr).lines().count(),
        2,
        "{}",
        text(&both.stderr)
    );
    // prod-us is balanced: nothing found.
    let fine = run(report(
        &config,
        &[
            "--context",
            "prod-us",
            "--fail-on",
            "spof",
            "--fail-on",
            "unbalanced",
        ],
    ))
    .await;
    assert_eq!(status(&fine), Some(0), "{}", text(&fine.stderr));
    // Without --fail-on a finding is not a failure.
    assert_eq!(status(&run(report(&config, &[])).await), Some(0));
    // Across clusters, each finding names its cluster.
    let all = run(report(
        &config,
        &["--all-contexts", "--fail-on", "unbalanced"],
    ))
    .await;
    assert_eq!(status(&all), Some(3));
    assert!(text(&all.stderr).contains("prod-eu: Deployment petclinic/web"));
    // An unknown context is an error (1), a bad flag value a usage error (2).
    let unknown = run(report(&config, &["--context", "staging"])).await;
    assert_eq!(status(&unknown), Some(1));
    assert_eq!(
        text(&unknown.stderr),
        "error: no context staging in the kubeconfig (its contexts: prod-eu, prod-us)\n"
    );
    assert_eq!(
        status(&run(report(&config, &["--fail-on", "drift"])).await),
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wide_output_adds_max_skew_measurement_and_injection() {
    let config = two_clusters(false).await;
    let out = run(report(&config, &["-o", "wide"])).await;
    let stdout = text(&out.stdout);
    let header = stdout.lines().next().unwrap();
    assert_eq!(
        header
            .split("  ")
            .filter(|c| !c.is_empty())
            .map(str::trim)
            .collect::<Vec<_>>(),
        [
            "NAMESPACE",
            "KIND",
            "NAME",
            "REPLICAS",
            "PODS PER ZONE",
            "SKEW",
            "MAXSKEW",
            "MEASURED BY",
            "SPREAD CONSTRAINTS",
            "WORST DOMAIN LOSS",
            "INJECTION"
        ]
    );
    let row = stdout.lines().nth(1).unwrap();
    assert!(row.contains("2 > 1  1        Default"), "{stdout}");
    assert!(row.trim_end().ends_with('-'), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_the_report_again_when_the_cluster_changes() {
    let fixture = Arc::new(Mutex::new(Fixture {
        web_nodes: vec!["node-c", "node-c"],
    }));
    let server = start(Fake {
        fixture: fixture.clone(),
        together: None,
    })
    .await;
    let config = kubeconfig(&[("watched", &server)]);
    let mut child = report(&config, &["--watch", "--interval", "1"])
        .env_remove("KUBECONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line.contains("zone-a=1 zone-c=1");
            seen.push(line);
            if done || Instant::now() > deadline {
                break;
            }
        }
        seen
    });
    // Unchanged readings print nothing more; then one pod moves to zone a.
    tokio::time::sleep(Duration::from_secs(3)).await;
    fixture.lock().unwrap().web_nodes = vec!["node-a", "node-c"];
    let lines = tokio::time::timeout(Duration::from_secs(40), lines)
        .await
        .expect("the watch printed the change")
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let all = lines.join("\n");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("NAMESPACE")).count(),
        2,
        "one report per change, not per reading:\n{all}"
    );
    assert!(lines.iter().any(|l| l == "---"), "{all}");
    assert!(
        lines.last().unwrap().contains("zone-a=1 zone-c=1  0"),
        "{all}"
    );
}

fn policy_file(name: &str, spread: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("skewguard-cli-{}-{name}.yaml", std::process::id()));
    std::fs::write(
        &path,
        format!(
            "apiVersion: skewguard.dev/v1alpha1\nkind: HAPolicy\nmetadata:\n  name: petclinic\n  namespace: petclinic\nspec:\n  selector:\n    matchLabels: {{app: petclinic}}\n  spread:\n{spread}"
        ),
    )
    .unwrap();
    path
}

/// `report --policy FILE` with a kubeconfig that does not exist.
fn offline(mut binary: Command, policy: &Path) -> Command {
    binary
        .args([
            "report",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
            "--policy",
        ])
        .arg(policy);
    binary
}

/// A policy the API server would refuse is refused before any cluster is read (here there is
/// none: the kubeconfig does not exist), with the schema's own message.
#[tokio::test]
async fn an_offline_policy_with_max_skew_0_is_refused_with_the_schemas_message() {
    let zero = policy_file(
        "zero",
        "    - topologyKey: topology.kubernetes.io/zone\n      maxSkew: 0\n",
    );
    let out = run(offline(skewguard(), &zero)).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: {} would be refused by the API server (the CRD's schema and rules):\n  spec.spread[0].maxSkew: Invalid value: 0: spec.spread[0].maxSkew in body should be greater than or equal to 1\n",
            zero.display()
        )
    );
    // A CEL rule: minDomains without DoNotSchedule (whenUnsatisfiable defaults to ScheduleAnyway).
    let cel = policy_file(
        "cel",
        "    - topologyKey: topology.kubernetes.io/zone\n      minDomains: 3\n",
    );
    let out = run(offline(plugin(), &cel)).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("minDomains is only allowed with whenUnsatisfiable: DoNotSchedule"),
        "{}",
        text(&out.stderr)
    );
    // A valid policy gets past the check: the next error is the missing kubeconfig, named plainly.
    let fine = policy_file(
        "fine",
        "    - topologyKey: topology.kubernetes.io/zone\n      maxSkew: 1\n",
    );
    let out = run(offline(skewguard(), &fine)).await;
    assert_eq!(
        text(&out.stderr),
        "error: cannot read kubeconfig /nonexistent/kubeconfig: No such file or directory (os error 2)\n"
    );
    for p in [zero, cel, fine] {
        let _ = std::fs::remove_file(p);
    }
}

/// A shell on the PATH, if any.
fn shell(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Each completion script parses in its shell (bash -n, zsh -n, fish --no-execute) and completes
/// the subcommands and report's flags. zsh and fish are checked where installed (.ci/run
/// installs them; `SKEWGUARD_REQUIRE_SHELLS=1` makes their absence a failure).
#[test]
fn completion_scripts_parse_in_their_shells() {
    let require = std::env::var_os("SKEWGUARD_REQUIRE_SHELLS").is_some();
    for (binary, name) in [
        (env!("CARGO_BIN_EXE_skewguard"), "skewguard"),
        (env!("CARGO_BIN_EXE_kubectl-skewguard"), "kubectl-skewguard"),
    ] {
        for (sh, check) in [
            ("bash", &["-n"][..]),
            ("zsh", &["-n"][..]),
            ("fish", &["--no-execute"][..]),
        ] {
            let out = Command::new(binary)
                .args(["completion", sh])
                .output()
                .unwrap();
            assert!(out.status.success(), "{name} completion {sh}");
            let script = text(&out.stdout);
            for word in [
                "report",
                "all-contexts",
                "fail-on",
                "kubeconfig",
                "unbalanced",
            ] {
                assert!(script.contains(word), "{name} completion {sh} lacks {word}");
            }
            let Some(shell) = shell(sh) else {
                assert!(!require, "{sh} is not installed");
                println!("note: {sh} not installed; its script was not parsed");
                continue;
            };
            let file = std::env::temp_dir().join(format!(
                "skewguard-completion-{}-{name}.{sh}",
                std::process::id()
            ));
            std::fs::write(&file, &script).unwrap();
            let parsed = Command::new(&shell)
                .args(check)
                .arg(&file)
                .output()
                .unwrap();
            let _ = std::fs::remove_file(&file);
            assert!(
                parsed.status.success() && parsed.stderr.is_empty(),
                "{sh} does not parse {name}'s script: {}",
                text(&parsed.stderr)
            );
        }
    }
    // A shell it does not know is a usage error.
    let out = skewguard()
        .args(["completion", "powershell"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// krew's plugin conventions: the help names the command as typed (`kubectl skewguard`), on the
/// plugin and its subcommands, with -h and --help; the binary krew installs is the one built.
#[test]
fn the_plugin_help_reads_as_kubectl_skewguard() {
    for args in [&["--help"][..], &["-h"][..], &["report", "--help"][..]] {
        let out = plugin().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let help = text(&out.stdout);
        assert!(
            help.contains("Usage: kubectl skewguard"),
            "{args:?}: {help}"
        );
        assert!(!help.contains("kubectl-skewguard "), "{args:?}: {help}");
    }
    let top = text(&plugin().arg("--help").output().unwrap().stdout);
    assert!(
        top.contains("kubectl skewguard report -n petclinic"),
        "{top}"
    );
    let out = plugin().arg("run").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "the operator is not offered by the plugin"
    );
}

/// plugins/skewguard.yaml is a krew Plugin whose name, binary and platforms match what is built;
/// plugins/release.sh fills each platform's sha256 from the release archives (no release is
/// published yet, so the committed file holds one placeholder per platform and nothing else).
#[test]
fn the_krew_manifest_installs_the_plugin_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let template = std::fs::read_to_string(root.join("plugins/skewguard.yaml")).unwrap();
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    // Archives as `make krew-archives` names them, with made-up contents.
    let dist = std::env::temp_dir().join(format!("skewguard-krew-{}", std::process::id()));
    std::fs::create_dir_all(&dist).unwrap();
    let mut want = std::collections::BTreeMap::new();
    for platform in ["linux_amd64", "linux_arm64"] {
        let bytes = format!("archive for {platform}");
        let file = format!("kubectl-skewguard_{version}_{platform}.tar.gz");
        std::fs::write(dist.join(&file), &bytes).unwrap();
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes.as_bytes());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        want.insert(file, hex);
    }
    let out = Command::new("bash")
        .arg(root.join("plugins/release.sh"))
        .arg(&dist)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dist);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let manifest: Value = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(
        manifest["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(manifest["kind"], "Plugin");
    assert_eq!(manifest["metadata"]["name"], "skewguard");
    let spec = &manifest["spec"];
    assert_eq!(
        spec["version"], version,
        "the manifest's version is the crate's"
    );
    let short = spec["shortDescription"].as_str().unwrap();
    assert!(
        !short.is_empty() && short.len() <= 50,
        "krew: a short description, {short:?}"
    );
    assert!(spec["homepage"].as_str().unwrap().starts_with("https://"));
    let mut seen = std::collections::BTreeMap::new();
    for p in spec["platforms"].as_array().unwrap() {
        let labels = &p["selector"]["matchLabels"];
        let platform = format!(
            "{}_{}",
            labels["os"].as_str().unwrap(),
            labels["arch"].as_str().unwrap()
        );
        assert_eq!(p["bin"], "kubectl-skewguard");
        let uri = p["uri"].as_str().unwrap();
        let file = format!("kubectl-skewguard_{version}_{platform}.tar.gz");
        assert!(
            uri.starts_with("https://") && uri.ends_with(&format!("/{version}/{file}")),
            "{uri}"
        );
        seen.insert(file, p["sha256"].as_str().unwrap().to_string());
        let files: Vec<&str> = p["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["from"].as_str().unwrap())
            .collect();
        assert_eq!(files, ["kubectl-skewguard", "LICENSE"]);
    }
    assert_eq!(seen, want, "each platform's sha256 is its archive's");
    // Without an archive the script fails rather than leave a placeholder in.
    let empty = std::env::temp_dir().join(format!("skewguard-krew-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new("bash")
        .arg(root.join("plugins/release.sh"))
        .arg(&empty)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&empty);
    assert!(!out.status.success());
    assert!(template.matches("sha256: ").count() == want.len());
}
