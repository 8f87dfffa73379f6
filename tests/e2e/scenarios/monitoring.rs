//! Monitoring as production runs it: `/metrics` over HTTPS, each scrape's token checked by the real
//! API server (TokenReview, SubjectAccessReview), and a real Prometheus scraping the operator with
//! the ServiceMonitor's settings and target labels, evaluating the PrometheusRule, and answering
//! every dashboard query with the series of petclinic's workloads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};

use super::fixtures::{deployment, statefulset};
use super::support::*;

const ZONE_B: &str = "ap-northeast-2b";
use crate::control_plane::{find_on_path, free_port, kill_group};
use crate::harness::{Ctx, OperatorProcess, wait_for};
use crate::https_client::{https_get, parse_response};

const WEB: [(&str, &str); 2] = [("app", "petclinic"), ("tier", "web")];
const WAS: [(&str, &str); 2] = [("app", "petclinic"), ("tier", "was")];
const REDIS: [(&str, &str); 2] = [("app", "petclinic"), ("tier", "redis")];
const WAIT: Duration = Duration::from_secs(90);
/// The role scrapers are bound to (config/rbac/metrics_reader_role.yaml).
const READER_ROLE: &str = "skewguard-metrics-reader";

fn repo_file(ctx: &Ctx, path: &str) -> String {
    std::fs::read_to_string(ctx.repo.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A ServiceAccount of this namespace.
async fn service_account(ctx: &Ctx, name: &str) {
    ctx.apply(
        &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})
            .to_string(),
    )
    .await;
}

/// Binds `account` (of this namespace) to skewguard-metrics-reader, cluster-wide as the install
/// does (config/prometheus/metrics_reader_binding.yaml). Returns the binding's name.
async fn bind_metrics_reader(ctx: &Ctx, account: &str) -> String {
    let name = format!("{}-{account}-metrics-reader", ctx.ns);
    ctx.apply(
        &json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": READER_ROLE},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ctx.ns}],
        })
        .to_string(),
    )
    .await;
    name
}

async fn delete_binding(ctx: &Ctx, name: &str) {
    let api: Api<ClusterRoleBinding> = Api::all(ctx.client.clone());
    let _ = api.delete(name, &DeleteParams::default()).await;
}

/// A token of `account` from the TokenRequest API (the API server's audience, 10 minutes).
async fn mint_token(ctx: &Ctx, account: &str) -> String {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(600),
            bound_object_ref: None,
        },
        ..TokenRequest::default()
    };
    ctx.api::<ServiceAccount>()
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("TokenRequest for {account}: {e}"))
        .status
        .map(|s| s.token)
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| panic!("TokenRequest for {account}: no token"))
}

/// Starts the operator with the production defaults for `/metrics` (HTTPS, self-signed, tokens
/// checked against the suite's API server with the operator's kubeconfig credentials).
fn start_secure_operator(ctx: &Ctx) -> OperatorProcess {
    start_operator(ctx, &["--metrics-secure"])
}

/// Binds `role` (a ClusterRole) to `account` of this namespace; returns the binding's name.
async fn bind(ctx: &Ctx, role: &str, account: &str) -> String {
    let name = format!("{}-{account}-{role}", ctx.ns);
    ctx.apply(
        &json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ctx.ns}],
        })
        .to_string(),
    )
    .await;
    name
}

/// The suite's kubeconfig with every user replaced by `token`: the operator runs as a
/// ServiceAccount, with exactly the RBAC it is given.
fn kubeconfig_with_token(ctx: &Ctx, token: &str) -> PathBuf {
    let text = std::fs::read_to_string(&ctx.kubeconfig).unwrap();
    let mut kc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    for user in kc["users"].as_sequence_mut().into_iter().flatten() {
        user["user"] = serde_yaml::from_str(&format!("{{token: {token}}}")).unwrap();
    }
    let path = ctx.work_dir.join(format!("{}-operator.kubeconfig", ctx.ns));
    std::fs::write(&path, serde_yaml::to_string(&kc).unwrap()).unwrap();
    path
}

/// `https_get` until the operator listens (the first answer, whatever its status).
async fn first_answer(
    op: &OperatorProcess,
    token: Option<&str>,
) -> crate::https_client::HttpsResponse {
    wait_for("an HTTPS answer from /metrics", WAIT, || async {
        https_get(&op.metrics_addr, "/metrics", token).await.ok()
    })
    .await
}

/// On the real API server: no token → 401, a ServiceAccount without the role → 403, one bound to
/// skewguard-metrics-reader → 200; a forged token → 401; the probes stay plain HTTP.
/// The operator itself runs as a ServiceAccount with exactly the install's roles (skewguard-manager
/// and skewguard-metrics-auth), so the reviews it sends are the ones its RBAC allows.
pub async fn metrics_need_an_authorized_token(ctx: Ctx) {
    for file in [
        "config/rbac/metrics_reader_role.yaml",
        "config/rbac/metrics_auth_role.yaml",
        "config/rbac/cluster_role.yaml",
    ] {
        ctx.apply(&repo_file(&ctx, file)).await;
    }
    service_account(&ctx, "skewguard").await;
    service_account(&ctx, "scraper").await;
    service_account(&ctx, "stranger").await;
    let bindings = [
        bind(&ctx, "skewguard-manager", "skewguard").await,
        bind(&ctx, "skewguard-metrics-auth", "skewguard").await,
        bind_metrics_reader(&ctx, "scraper").await,
    ];
    let operator_token = mint_token(&ctx, "skewguard").await;
    let scraper = mint_token(&ctx, "scraper").await;
    let stranger = mint_token(&ctx, "stranger").await;

    let mut env = ctx.env.clone();
    env.kubeconfig = kubeconfig_with_token(&ctx, &operator_token);
    let as_account = Ctx {
        env,
        ns: ctx.ns.clone(),
    };
    let op = start_secure_operator(&as_account);
    let none = first_answer(&op, None).await;
    assert_eq!(none.status, 401, "no token: {}", none.body);
    assert_eq!(
        none.headers.get("www-authenticate").map(String::as_str),
        Some("Bearer")
    );

    let forged = https_get(&op.metrics_addr, "/metrics", Some("not-a-token"))
        .await
        .unwrap();
    assert_eq!(forged.status, 401, "forged token: {}", forged.body);

    let denied = https_get(&op.metrics_addr, "/metrics", Some(&stranger))
        .await
        .unwrap();
    assert_eq!(
        denied.status, 403,
        "ServiceAccount without the role: {}",
        denied.body
    );
    let who = format!("system:serviceaccount:{}:stranger", ctx.ns);
    assert!(denied.body.contains(&who), "{}", denied.body);
    assert!(
        !denied.body.contains(&stranger),
        "the token is never echoed"
    );

    let allowed = https_get(&op.metrics_addr, "/metrics", Some(&scraper))
        .await
        .unwrap();
    assert_eq!(
        allowed.status, 200,
        "bound to {READER_ROLE}: {}",
        allowed.body
    );
    let samples = parse_metrics(&allowed.body);
    assert!(
        metric(&samples, "skewguard_build_info", &[]).is_some(),
        "{}",
        allowed.body
    );
    // Cached: the same token again is still allowed (and cheap).
    let again = https_get(&op.metrics_addr, "/metrics", Some(&scraper))
        .await
        .unwrap();
    assert_eq!(again.status, 200);

    // Health probes stay plain HTTP, unauthenticated.
    assert_eq!(
        http_get(&op.health_addr, "/healthz").await.as_deref(),
        Some("ok")
    );
    // And plain HTTP on the metrics port gets nothing.
    assert_eq!(http_get(&op.metrics_addr, "/metrics").await, None);
    let log = op.log_text();
    assert!(log.contains("serving metrics over HTTPS"), "{log}");
    // Running as that account, it became ready (its RBAC is enough to run, not only to review).
    wait_for("the operator ready as its ServiceAccount", WAIT, || async {
        http_get(&op.health_addr, "/readyz").await
    })
    .await;
    drop(op);
    for binding in bindings {
        delete_binding(&ctx, &binding).await;
    }
}

/// A `prometheus` process on loopback with its config and data in a temporary directory; killed
/// on drop, its log printed when the scenario fails.
struct Prometheus {
    child: Option<Child>,
    addr: String,
    log: PathBuf,
}

impl Prometheus {
    fn start(bin: &Path, dir: &Path, config: &Path) -> Prometheus {
        let addr = format!("127.0.0.1:{}", free_port());
        let log = dir.join("prometheus.log");
        let out = std::fs::File::create(&log).expect("create prometheus.log");
        let err = out.try_clone().unwrap();
        let mut cmd = Command::new(bin);
        // Every default that points outside the temporary directory or off loopback is overridden:
        // config (/etc/prometheus), listen address (0.0.0.0:9090), TSDB path (/var/lib/prometheus).
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg("--storage.tsdb.retention.time=1h")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("start prometheus");
        Prometheus {
            child: Some(child),
            addr,
            log,
        }
    }

    /// GET `path` of its HTTP API: the JSON body, or what went wrong.
    async fn get(&self, path: &str) -> Result<Value, String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(&self.addr)
            .await
            .map_err(|e| e.to_string())?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        let (status, _, body) = parse_response(&String::from_utf8_lossy(&buf))?;
        if status != 200 {
            return Err(format!("{path}: HTTP {status}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("{path}: {e}: {body}"))
    }

    /// An instant query's result vector.
    async fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let v = self
            .get(&format!("/api/v1/query?query={}", urlencode(promql)))
            .await?;
        v["data"]["result"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("{promql}: no result vector in {v}"))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child, "TERM");
        }
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!(
                "----- last lines of {} -----\n{}",
                self.log.display(),
                lines[lines.len().saturating_sub(30)..].join("\n")
            );
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The PrometheusRule's groups as a plain rules file.
fn plain_rules(ctx: &Ctx) -> String {
    let rule: serde_yaml::Value =
        serde_yaml::from_str(&repo_file(ctx, "config/prometheus/prometheusrule.yaml")).unwrap();
    let mut file = serde_yaml::Mapping::new();
    file.insert("groups".into(), rule["spec"]["groups"].clone());
    serde_yaml::to_string(&file).unwrap()
}

/// The alert expressions of the PrometheusRule, by alert name.
fn alert_exprs(ctx: &Ctx) -> BTreeMap<String, String> {
    let rule: serde_yaml::Value =
        serde_yaml::from_str(&repo_file(ctx, "config/prometheus/prometheusrule.yaml")).unwrap();
    rule["spec"]["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().clone())
        .filter_map(|r| {
            Some((
                r["alert"].as_str()?.to_string(),
                r["expr"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// The Prometheus Operator's scrape config for the ServiceMonitor's endpoint, with the target labels
/// it attaches (namespace, service, pod, job, endpoint, container) as static labels, its
/// honorLabels, scheme and path, and the token of its `authorization` Secret from `token_file`;
/// `cluster` as a target label where a multi-cluster setup adds one; 1 s intervals.
fn scrape_config(
    ctx: &Ctx,
    target: &str,
    token_file: &Path,
    rules: &Path,
    cluster: Option<&str>,
) -> String {
    let sm: serde_yaml::Value =
        serde_yaml::from_str(&repo_file(ctx, "config/prometheus/servicemonitor.yaml")).unwrap();
    let ep = &sm["spec"]["endpoints"][0];
    let honor = ep["honorLabels"].as_bool().unwrap_or(false);
    let scheme = ep["scheme"].as_str().unwrap_or("http");
    let path = ep["path"].as_str().unwrap_or("/metrics");
    let insecure = ep["tlsConfig"]["insecureSkipVerify"]
        .as_bool()
        .unwrap_or(false);
    assert_eq!(
        ep["authorization"]["type"], "Bearer",
        "the ServiceMonitor sends a token"
    );
    assert!(
        ep["bearerTokenFile"].is_null(),
        "bearerTokenFile is deprecated"
    );
    let mut labels = json!({
        "namespace": "skewguard-system",
        "service": "skewguard-metrics",
        "pod": "skewguard-7c9d5-x2x4k",
        "job": "skewguard-metrics",
        "endpoint": "metrics",
        "container": "manager",
    });
    if let Some(cluster) = cluster {
        labels["cluster"] = json!(cluster);
    }
    json!({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [rules.display().to_string()],
        "scrape_configs": [{
            "job_name": "serviceMonitor/skewguard-system/skewguard/0",
            "honor_labels": honor,
            "scheme": scheme,
            "metrics_path": path,
            "authorization": {"type": "Bearer", "credentials_file": token_file.display().to_string()},
            "tls_config": {"insecure_skip_verify": insecure},
            "static_configs": [{"targets": [target], "labels": labels}],
        }],
    })
    .to_string()
}

/// The Secret the ServiceMonitor's `authorization` names, as config/prometheus/metrics_scraper.yaml
/// creates it: applied here, its token filled by kube-controller-manager's token controller.
async fn scraper_token(ctx: &Ctx) -> String {
    let sm: serde_yaml::Value =
        serde_yaml::from_str(&repo_file(ctx, "config/prometheus/servicemonitor.yaml")).unwrap();
    let credentials = &sm["spec"]["endpoints"][0]["authorization"]["credentials"];
    let (secret, key) = (
        credentials["name"]
            .as_str()
            .expect("a Secret name")
            .to_string(),
        credentials["key"].as_str().expect("a key").to_string(),
    );
    let applied = ctx
        .apply(&repo_file(ctx, "config/prometheus/metrics_scraper.yaml"))
        .await;
    assert!(
        applied
            .iter()
            .any(|o| o.metadata.name.as_deref() == Some(secret.as_str())),
        "metrics_scraper.yaml creates the Secret {secret}"
    );
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = ctx.api();
    wait_for("the scraper's token", WAIT, || async {
        let s = secrets.get(&secret).await.ok()?;
        let token = s.data?.get(&key)?.0.clone();
        String::from_utf8(token).ok().filter(|t| !t.is_empty())
    })
    .await
}

/// A dashboard query with Grafana's variables substituted as the dashboard opens: the cluster
/// chosen (All, `.*`, where the series have no `cluster` label), namespace `petclinic`, kind and
/// workload All (their allValue), the zone key, intervals a few scrapes long.
fn substitute(expr: &str, cluster: &str) -> String {
    expr.replace("$__rate_interval", "10s")
        .replace("$__interval", "2s")
        .replace("$__range", "1m")
        .replace("$cluster", cluster)
        .replace("$namespace", "petclinic")
        .replace("$kind", ".*")
        .replace("$workload", ".*")
        .replace("$topology_key", ZONE_KEY)
}

/// (panel title, refId, expr) of every dashboard query.
fn dashboard_queries(ctx: &Ctx) -> Vec<(String, String, String)> {
    let d: Value =
        serde_json::from_str(&repo_file(ctx, "config/grafana/skewguard-dashboard.json")).unwrap();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                p["title"].as_str().unwrap_or_default().to_string(),
                t["refId"].as_str().unwrap_or_default().to_string(),
                t["expr"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    out
}

fn label<'a>(series: &'a Value, name: &str) -> Option<&'a str> {
    series["metric"][name].as_str()
}

fn value(series: &Value) -> f64 {
    series["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn workloads(result: &[Value]) -> BTreeSet<String> {
    result
        .iter()
        .filter_map(|s| label(s, "workload").map(String::from))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// What each dashboard query must show for petclinic with web and was skewed 2-0 (2a cordoned but
/// counted) and redis-master alone: `Ok` or why not. Every series that has a `namespace` label must
/// be petclinic's (honorLabels kept the workload's over the target's skewguard-system).
fn check_panel(title: &str, ref_id: &str, result: &[Value]) -> Result<(), String> {
    if result.is_empty() {
        return Err("no series".into());
    }
    if let Some(s) = result
        .iter()
        .find(|s| label(s, "namespace").is_some_and(|n| n != "petclinic"))
    {
        return Err(format!("a series outside petclinic: {s}"));
    }
    let all = set(&["web", "was", "redis-master"]);
    let skewed = set(&["web", "was"]);
    let want_workloads = |want: &BTreeSet<String>| {
        let got = workloads(result);
        if &got != want {
            return Err(format!("workloads {got:?}, wanted {want:?}"));
        }
        if result
            .iter()
            .any(|s| label(s, "namespace") != Some("petclinic"))
        {
            return Err("a workload series without namespace=\"petclinic\"".into());
        }
        Ok(())
    };
    let single = |want: f64| {
        let got: Vec<f64> = result.iter().map(value).collect();
        if got == [want] {
            Ok(())
        } else {
            Err(format!("values {got:?}, wanted [{want}]"))
        }
    };
    match (title, ref_id) {
        ("Unbalanced workloads", _)
            if result.len() == 1 && label(&result[0], "workload").is_none() =>
        {
            single(2.0)
        }
        ("Unbalanced workloads", _) => want_workloads(&skewed),
        ("Single points of failure", _)
            if result.len() == 1 && label(&result[0], "workload").is_none() =>
        {
            single(3.0)
        }
        ("Single points of failure", _) => want_workloads(&all),
        ("HAPolicies", _) | ("Leader", _) => single(1.0),
        (t, _) if t.starts_with("Pods per") => {
            want_workloads(&all)?;
            let web_2c = result.iter().find(|s| {
                label(s, "workload") == Some("web") && label(s, "domain") == Some(ZONE_C)
            });
            match web_2c.map(value) {
                Some(2.0) => Ok(()),
                other => Err(format!("web in {ZONE_C}: {other:?}")),
            }
        }
        ("Skew vs maxSkew", "A") => {
            want_workloads(&all)?;
            let skew: BTreeMap<String, f64> = result
                .iter()
                .filter(|s| label(s, "topology_key") == Some(ZONE_KEY))
                .map(|s| {
                    (
                        label(s, "workload").unwrap_or_default().to_string(),
                        value(s),
                    )
                })
                .collect();
            let want: BTreeMap<String, f64> = [("redis-master", 1.0), ("was", 2.0), ("web", 2.0)]
                .into_iter()
                .map(|(w, v)| (w.to_string(), v))
                .collect();
            if skew == want {
                Ok(())
            } else {
                Err(format!("zone skew {skew:?}, wanted {want:?}"))
            }
        }
        ("Skew vs maxSkew", _) => want_workloads(&all),
        ("Current rebalance blocks by reason", _) => {
            let blocked: BTreeSet<String> = result
                .iter()
                .filter(|s| label(s, "reason") == Some("NoCapacity"))
                .filter_map(|s| label(s, "workload").map(String::from))
                .collect();
            if blocked.is_superset(&skewed) {
                Ok(())
            } else {
                Err(format!("NoCapacity blocks {blocked:?}, wanted web and was"))
            }
        }
        ("Rebalance actions by result", _) => {
            if result.iter().any(|s| {
                label(s, "action") == Some("inject") && label(s, "result") == Some("success")
            }) {
                Ok(())
            } else {
                Err("no inject/success series".into())
            }
        }
        ("Leader over time", _) => {
            let pods: Vec<(Option<&str>, f64)> =
                result.iter().map(|s| (label(s, "pod"), value(s))).collect();
            if pods == [(Some("skewguard-7c9d5-x2x4k"), 1.0)] {
                Ok(())
            } else {
                Err(format!("leader per pod {pods:?}"))
            }
        }
        // petclinic's policy writes templates (the admission policy is not installed here).
        ("How the constraints reach the pods", _) => {
            want_workloads(&all)?;
            match result.iter().find(|s| label(s, "mode") != Some("Template")) {
                None => Ok(()),
                Some(s) => Err(format!("a workload not in Template mode: {s}")),
            }
        }
        ("Expected domains without a node", _) => {
            want_workloads(&all)?;
            match result.iter().find(|s| label(s, "domain") != Some(ZONE_B)) {
                None => Ok(()),
                Some(s) => Err(format!("a missing domain other than {ZONE_B}: {s}")),
            }
        }
        ("Pods missing their constraints (admission)", _)
        | ("Admission policy", _)
        | ("Admission type check warnings", _)
        // No Adaptive entry here: no pod admitted relaxed, none deleted.
        | ("Pods admitted relaxed (Adaptive)", _) => single(0.0),
        // 2a cordoned: Out (2); 2b expected with no node while the others have some: Out (2,
        // NoNodes); 2c Healthy (0).
        ("Zone health", _) => {
            let health: BTreeMap<String, f64> = (result.iter())
                .map(|s| (label(s, "domain").unwrap_or_default().to_string(), value(s)))
                .collect();
            let want = BTreeMap::from([
                (ZONE_A.to_string(), 2.0),
                (ZONE_B.to_string(), 2.0),
                (ZONE_C.to_string(), 0.0),
            ]);
            if health == want {
                Ok(())
            } else {
                Err(format!("zone health {health:?}, wanted {want:?}"))
            }
        }
        // Reconcile errors (every category, 0) and latency: the series exist.
        _ => Ok(()),
    }
}

/// petclinic as the field found it, watched by a real Prometheus through the install's
/// ServiceMonitor settings: every dashboard query and the skew and single-point-of-failure alerts
/// select petclinic's workloads with `namespace="petclinic"`.
pub async fn prometheus_sees_petclinic(ctx: Ctx) {
    let Some(prometheus_bin) = std::env::var_os("SKEWGUARD_E2E_PROMETHEUS")
        .map(PathBuf::from)
        .or_else(|| find_on_path("prometheus"))
    else {
        println!("\n  prometheus not found (apt-get install prometheus); nothing to check");
        return;
    };
    // petclinic in its own namespace, as in the field.
    let pc = Ctx {
        env: ctx.env.clone(),
        ns: "petclinic".to_string(),
    };
    pc.create_namespace().await;
    let _cleanup = NamespaceCleanup(pc.clone());
    pc.kubelet.ensure_nodes(&[(ZONE_A, 2), (ZONE_C, 2)]).await;
    pc.kubelet.cordon_zone(ZONE_A).await;
    pc.apply(&deployment("web", 2, &WEB)).await;
    pc.apply(&deployment("was", 2, &WAS)).await;
    pc.apply(&statefulset("redis-master", 1, &REDIS)).await;
    for (sel, n) in [("tier=web", 2), ("tier=was", 2), ("tier=redis", 1)] {
        pc.wait_ready_pods_by_zone(sel, &zones(&[(ZONE_C, n)]), WAIT)
            .await;
    }
    // 2a counts as a domain (taints ignored) but takes no pod: skewed and blocked, nothing moves.
    // 2b is expected but has no node: every workload misses it.
    let spread = json!({
        "spread": [{"topologyKey": ZONE_KEY, "maxSkew": 1, "nodeTaintsPolicy": "Ignore"}],
        "expectedDomains": [{"topologyKey": ZONE_KEY, "domains": [ZONE_A, ZONE_B, ZONE_C]}],
    });
    pc.apply(&petclinic_policy("petclinic", json!({}), spread))
        .await;

    // The scraper's account and token Secret as config/prometheus installs them, bound to the
    // reader role as its binding does.
    ctx.apply(&repo_file(&ctx, "config/rbac/metrics_reader_role.yaml"))
        .await;
    let token = scraper_token(&ctx).await;
    let binding = bind_metrics_reader(&ctx, "skewguard-metrics-scraper").await;

    let op = start_secure_operator(&pc);
    for name in ["web", "was"] {
        wait_workload_status(
            &pc,
            "petclinic",
            name,
            &format!("{name} blocked: 2a takes no pod"),
            WAIT,
            |w| rebalance_of(w) == ("Blocked".into(), "NoCapacity".into()),
        )
        .await;
    }
    // One cluster whose series carry no `cluster` label, then one whose target labels add it, as
    // a multi-cluster Prometheus (Thanos, Mimir) sees it.
    for cluster in [None, Some("prod-eu")] {
        prometheus_answers(&ctx, &prometheus_bin, &op, &token, cluster).await;
    }
    drop(op);
    delete_binding(&ctx, &binding).await;
    pc.kubelet.uncordon_zone(ZONE_A).await;
}

/// A real Prometheus scraping the operator with the ServiceMonitor's settings (and `cluster` as a
/// target label when given): every dashboard query as the dashboard opens on petclinic (the cluster
/// variable All, or that cluster), the template variables, and the skew and single-point-of-failure
/// alerts show petclinic's workloads, labelled with the cluster when there is one.
async fn prometheus_answers(
    ctx: &Ctx,
    prometheus_bin: &Path,
    op: &OperatorProcess,
    token: &str,
    cluster: Option<&str>,
) {
    let dir = crate::control_plane::TempDir::new("skewguard-e2e-prometheus");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    let rules = dir.path().join("skewguard.rules.yaml");
    std::fs::write(&rules, plain_rules(ctx)).unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        scrape_config(ctx, &op.metrics_addr, &token_file, &rules, cluster),
    )
    .unwrap();
    let prom = Prometheus::start(prometheus_bin, dir.path(), &config);
    let p = &prom;
    let what = cluster.map_or("no cluster label".to_string(), |c| format!("cluster {c}"));

    // Scraped over HTTPS with the token: the target is up.
    let mut last = String::new();
    let up = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(v) = p.get("/api/v1/targets").await {
                let t = &v["data"]["activeTargets"][0];
                if t["health"] == "up" {
                    return t.clone();
                }
                last = t.to_string();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: the skewguard target never came up: {last}"));
    assert_eq!(
        up["scrapeUrl"],
        format!("https://{}/metrics", op.metrics_addr),
        "{up}"
    );
    // The rules loaded.
    let rules_loaded = p.get("/api/v1/rules").await.unwrap();
    let loaded: BTreeSet<String> = rules_loaded["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .filter(|r| r["health"] != "err")
        .filter_map(|r| r["name"].as_str().map(String::from))
        .collect();
    let exprs = alert_exprs(ctx);
    assert_eq!(loaded, exprs.keys().cloned().collect(), "{rules_loaded}");

    // Every dashboard query, as the dashboard opens on petclinic (rates need a few scrapes); with
    // a cluster label, every workload series carries it.
    let chosen = cluster.unwrap_or(".*");
    let queries = dashboard_queries(ctx);
    assert!(queries.len() >= 14, "{queries:?}");
    let mut failures: Vec<String> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        failures.clear();
        for (title, ref_id, expr) in &queries {
            let promql = substitute(expr, chosen);
            let outcome = match p.query(&promql).await {
                Ok(result) => check_panel(title, ref_id, &result).and_then(|()| {
                    match result
                        .iter()
                        .find(|s| label(s, "workload").is_some() && label(s, "cluster") != cluster)
                    {
                        Some(s) => Err(format!("cluster label wanted {cluster:?}: {s}")),
                        None => Ok(()),
                    }
                }),
                Err(e) => Err(e),
            };
            if let Err(why) = outcome {
                failures.push(format!("{title} ({ref_id}): {why}\n    {promql}"));
            }
        }
        if failures.is_empty() || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        failures.is_empty(),
        "{what}: dashboard queries:\n  {}",
        failures.join("\n  ")
    );
    // Another cluster chosen: no workload of this one shows.
    if cluster.is_some() {
        for (title, _, expr) in &queries {
            let result = p.query(&substitute(expr, "prod-us")).await.unwrap();
            assert!(
                workloads(&result).is_empty(),
                "{title} with cluster prod-us: {result:?}"
            );
        }
    }

    // The template variables list the cluster (none without the label), petclinic (not
    // skewguard-system), its kinds and workloads, and the topology keys.
    let clusters: Vec<&str> = cluster.into_iter().collect();
    for (var, selector, want) in [
        (
            "cluster",
            "skewguard_build_info".to_string(),
            set(&clusters),
        ),
        (
            "namespace",
            format!(r#"skewguard_workload_replicas{{cluster=~"{chosen}"}}"#),
            set(&["petclinic"]),
        ),
        (
            "kind",
            format!(
                r#"skewguard_workload_replicas{{cluster=~"{chosen}", namespace=~"petclinic"}}"#
            ),
            set(&["Deployment", "StatefulSet"]),
        ),
        (
            "workload",
            format!(
                r#"skewguard_workload_replicas{{cluster=~"{chosen}", namespace=~"petclinic", kind=~".*"}}"#
            ),
            set(&["web", "was", "redis-master"]),
        ),
        (
            "topology_key",
            format!(r#"skewguard_workload_skew{{cluster=~"{chosen}"}}"#),
            set(&[ZONE_KEY]),
        ),
    ] {
        let v = p
            .get(&format!(
                "/api/v1/label/{var}/values?match[]={}",
                urlencode(&selector)
            ))
            .await
            .unwrap();
        let got: BTreeSet<String> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect();
        assert_eq!(got, want, "{what}: variable {var}");
    }

    // The alerts' expressions select petclinic's skewed and single-zone workloads.
    for (alert, want) in [
        ("SkewguardWorkloadSkewExceeded", set(&["web", "was"])),
        ("SkewguardSinglePointOfFailure", set(&["web", "was"])),
    ] {
        let result = p.query(&exprs[alert]).await.unwrap();
        assert_eq!(workloads(&result), want, "{what}: {alert}: {result:?}");
        for s in &result {
            assert_eq!(label(s, "namespace"), Some("petclinic"), "{alert}: {s}");
            assert_eq!(label(s, "topology_key"), Some(ZONE_KEY), "{alert}: {s}");
            assert_eq!(label(s, "cluster"), cluster, "{alert}: {s}");
        }
    }
    // And Prometheus has them pending (their `for` is minutes), with absolute runbook links.
    let alerts = wait_for("skew alerts pending", Duration::from_secs(30), || async {
        let v = p.get("/api/v1/alerts").await.ok()?;
        let pending: Vec<Value> = v["data"]["alerts"]
            .as_array()?
            .iter()
            .filter(|a| a["labels"]["alertname"] == "SkewguardWorkloadSkewExceeded")
            .cloned()
            .collect();
        (pending.len() == 2).then_some(pending)
    })
    .await;
    for a in alerts {
        assert_eq!(a["labels"]["namespace"], "petclinic", "{a}");
        let url = a["annotations"]["runbook_url"].as_str().unwrap_or_default();
        assert!(
            url.starts_with("https://") && url.ends_with("#skewguardworkloadskewexceeded"),
            "{a}"
        );
    }
    println!(
        "\n  prometheus ({what}): {} dashboard queries and 2 alert expressions answered for petclinic",
        queries.len()
    );
}

/// Deletes the extra namespace when the scenario ends, also when it fails.
struct NamespaceCleanup(Ctx);

impl Drop for NamespaceCleanup {
    fn drop(&mut self) {
        let ctx = self.0.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { ctx.delete_namespace().await });
        }
    }
}
