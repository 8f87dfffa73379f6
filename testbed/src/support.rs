//! What the operator scenarios share: running `skewguard run` against the scenario's namespace,
//! reading the policy's status, Events, managedFields and `/metrics`, counting pod deletions from
//! a watch, keeping a PDB's floor under watch, and playing Argo Rollouts' status writer.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::fake_kubelet::is_ready;
use crate::harness::{
    Ctx, OperatorProcess, hapolicy_resource, rollout_resource, wait_for, watch_backoff,
};

pub const ZONE_A: &str = "ap-northeast-2a";
pub const ZONE_C: &str = "ap-northeast-2c";
pub const ZONE_KEY: &str = "topology.kubernetes.io/zone";
/// The field manager skewguard writes with.
pub const SKEWGUARD: &str = "skewguard";

pub fn zones(counts: &[(&str, usize)]) -> BTreeMap<String, usize> {
    counts.iter().map(|(z, n)| (z.to_string(), *n)).collect()
}

/// `a=b,c=d` from label pairs.
pub fn selector(labels: &[(&str, &str)]) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A HAPolicy document (JSON is YAML) for [`Ctx::apply`].
pub fn hapolicy(name: &str, spec: Value) -> String {
    json!({
        "apiVersion": "skewguard.dev/v1alpha1",
        "kind": "HAPolicy",
        "metadata": {"name": name},
        "spec": spec,
    })
    .to_string()
}

/// The petclinic policy: workloads labelled `app: petclinic`, zone maxSkew 1, with `rebalance`
/// merged over a 3-second stabilization.
pub fn petclinic_policy(name: &str, rebalance: Value, extra: Value) -> String {
    let mut r = json!({"stabilizationSeconds": 3});
    r.as_object_mut()
        .unwrap()
        .extend(rebalance.as_object().cloned().unwrap_or_default());
    let mut spec = json!({
        "selector": {"matchLabels": {"app": "petclinic"}},
        "spread": [{"topologyKey": ZONE_KEY, "maxSkew": 1}],
        "rebalance": r,
    });
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    hapolicy(name, spec)
}

/// A PodDisruptionBudget over pods labelled `labels`; `budget` is e.g. `{"minAvailable": 1}`.
pub fn pdb(name: &str, labels: &[(&str, &str)], budget: Value) -> String {
    let match_labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let mut spec = json!({"selector": {"matchLabels": match_labels}});
    spec.as_object_mut()
        .unwrap()
        .extend(budget.as_object().cloned().unwrap_or_default());
    json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
           "metadata": {"name": name}, "spec": spec})
    .to_string()
}

/// Starts `skewguard run --namespace <ns>` with free metrics and health ports; `extra` adds
/// flags (leader election is off unless `extra` turns it on, and `/metrics` is plain HTTP, which
/// [`scrape`] reads, unless `extra` sets `--metrics-secure`).
pub fn start_operator(ctx: &Ctx, extra: &[&str]) -> OperatorProcess {
    let (metrics, health) = OperatorProcess::addrs();
    let mut args: Vec<String> = [
        "run",
        "--namespace",
        &ctx.ns,
        "--metrics-addr",
        &metrics,
        "--health-addr",
        &health,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !extra.iter().any(|a| a.starts_with("--leader-elect")) {
        args.push("--leader-elect=false".into());
    }
    if !extra.iter().any(|a| a.starts_with("--metrics-secure")) {
        args.push("--metrics-secure=false".into());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    OperatorProcess::start_with_addrs(&ctx.env, &args, metrics, health)
}

/// Sets a Deployment's replicas (a merge patch, as an HPA does).
pub async fn scale_deployment(ctx: &Ctx, name: &str, replicas: usize) {
    ctx.api::<Deployment>()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await
        .unwrap_or_else(|e| panic!("scale {name} to {replicas}: {e}"));
}

/// The HAPolicy's `status` (null when not written yet).
pub async fn policy_status(ctx: &Ctx, policy: &str) -> Value {
    let api = ctx.dynamic(&hapolicy_resource());
    match api.get(policy).await {
        Ok(p) => p.data.get("status").cloned().unwrap_or(Value::Null),
        Err(e) => panic!("get HAPolicy {policy}: {e}"),
    }
}

/// The policy's `status.workloads[]` entry of workload `name`.
pub async fn workload_status(ctx: &Ctx, policy: &str, name: &str) -> Option<Value> {
    let status = policy_status(ctx, policy).await;
    status["workloads"]
        .as_array()?
        .iter()
        .find(|w| w["name"] == name)
        .cloned()
}

/// Waits until the status entry of `name` satisfies `ok`, and returns it.
pub async fn wait_workload_status(
    ctx: &Ctx,
    policy: &str,
    name: &str,
    what: &str,
    timeout: Duration,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let last = Arc::new(Mutex::new(Value::Null));
    let result = tokio::time::timeout(
        timeout,
        wait_for(what, timeout + Duration::from_secs(5), || {
            let last = last.clone();
            let ok = &ok;
            async move {
                let w = workload_status(ctx, policy, name).await?;
                *last.lock().unwrap() = w.clone();
                ok(&w).then_some(w)
            }
        }),
    )
    .await;
    match result {
        Ok(v) => v,
        Err(_) => panic!(
            "timed out after {timeout:?} waiting for {what}; status of {name}: {}",
            last.lock().unwrap()
        ),
    }
}

/// The rebalance state and reason of a workload status entry.
pub fn rebalance_of(w: &Value) -> (String, String) {
    (
        w["rebalance"]["state"].as_str().unwrap_or("").to_string(),
        w["rebalance"]["reason"].as_str().unwrap_or("").to_string(),
    )
}

/// events.k8s.io Events of the namespace with `reason` about the object named `regarding`
/// (any object when `None`).
pub async fn events(ctx: &Ctx, reason: &str, regarding: Option<&str>) -> Vec<Event> {
    let api: Api<Event> = ctx.api();
    api.list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("list events: {e}"))
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter(|e| {
            regarding.is_none_or(|name| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
            })
        })
        .collect()
}

/// How many times the Events say it happened (a series counts its repetitions).
pub fn occurrences(events: &[Event]) -> i32 {
    events
        .iter()
        .map(|e| e.series.as_ref().map_or(1, |s| s.count.max(1)))
        .sum()
}

/// Whether manager `manager` owns the pod template's `topologySpreadConstraints` in `fields`.
pub fn owns_spread_constraints(fields: &[ManagedFieldsEntry], manager: &str) -> bool {
    fields.iter().any(|f| {
        f.manager.as_deref() == Some(manager)
            && f.fields_v1
                .as_ref()
                .is_some_and(|v| v.0.to_string().contains("f:topologySpreadConstraints"))
    })
}

/// Every field manager of `fields`.
pub fn managers(fields: &[ManagedFieldsEntry]) -> Vec<String> {
    fields.iter().filter_map(|f| f.manager.clone()).collect()
}

/// Whether a pod template carries spread constraints.
fn constrained(template: &PodTemplateSpec) -> bool {
    (template.spec.as_ref())
        .and_then(|s| s.topology_spread_constraints.as_ref())
        .is_some_and(|c| !c.is_empty())
}

/// Waits until Deployment `name` carries spread constraints in its template and has rolled out
/// completely (`replicas` Ready, updated and available, generation observed).
pub async fn wait_deployment_constrained(ctx: &Ctx, name: &str, replicas: i32) -> Deployment {
    let api = ctx.api::<Deployment>();
    wait_for(
        &format!("Deployment {name}: constraints injected and rolled out"),
        Duration::from_secs(90),
        || {
            let api = api.clone();
            async move {
                let d = api.get(name).await.ok()?;
                let has = constrained(&d.spec.as_ref()?.template);
                let ok = has && deployment_settled(&d, replicas);
                ok.then_some(d)
            }
        },
    )
    .await
}

pub fn deployment_settled(d: &Deployment, replicas: i32) -> bool {
    let Some(s) = d.status.as_ref() else {
        return false;
    };
    s.observed_generation == d.metadata.generation
        && s.replicas == Some(replicas)
        && s.updated_replicas == Some(replicas)
        && s.ready_replicas == Some(replicas)
        && s.available_replicas == Some(replicas)
}

/// Waits until StatefulSet `name` carries spread constraints and has rolled out completely.
pub async fn wait_statefulset_constrained(ctx: &Ctx, name: &str, replicas: i32) {
    let api = ctx.api::<StatefulSet>();
    wait_for(
        &format!("StatefulSet {name}: constraints injected and rolled out"),
        Duration::from_secs(90),
        || {
            let api = api.clone();
            async move {
                let s = api.get(name).await.ok()?;
                let has = constrained(&s.spec.as_ref()?.template);
                let st = s.status.as_ref()?;
                let ok = has
                    && st.observed_generation == s.metadata.generation
                    && st.current_revision == st.update_revision
                    && st.ready_replicas == Some(replicas)
                    && st.replicas == replicas;
                ok.then_some(())
            }
        },
    )
    .await
}

/// Every pod deletion in the namespace from the moment it is started, from a watch (so a pod
/// that is evicted and replaced within one poll interval is still counted), by pod uid.
pub struct PodChurn {
    state: Arc<Mutex<ChurnState>>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct ChurnState {
    synced: bool,
    /// Pods already terminating when the watch started: their end is not counted.
    terminating_at_start: BTreeSet<String>,
    labels: HashMap<String, BTreeMap<String, String>>,
    /// uid -> name of pods whose deletion started (or that vanished) since the start.
    deleted: BTreeMap<String, String>,
}

impl PodChurn {
    /// Starts watching and returns once the initial list is in.
    pub async fn start(ctx: &Ctx) -> PodChurn {
        let state: Arc<Mutex<ChurnState>> = Arc::default();
        let api = ctx.api::<Pod>();
        let st = state.clone();
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default())
                .backoff(watch_backoff())
                .boxed();
            while let Some(ev) = stream.next().await {
                let Ok(ev) = ev else { continue };
                let mut s = st.lock().unwrap();
                match ev {
                    watcher::Event::InitApply(p) => {
                        let uid = p.uid().unwrap_or_default();
                        if !s.synced && p.metadata.deletion_timestamp.is_some() {
                            s.terminating_at_start.insert(uid.clone());
                        }
                        s.labels.insert(uid.clone(), p.labels().clone());
                        if s.synced && p.metadata.deletion_timestamp.is_some() {
                            s.note_deleted(&p);
                        }
                    }
                    watcher::Event::InitDone => s.synced = true,
                    watcher::Event::Init => {}
                    watcher::Event::Apply(p) => {
                        s.labels
                            .insert(p.uid().unwrap_or_default(), p.labels().clone());
                        if p.metadata.deletion_timestamp.is_some() {
                            s.note_deleted(&p);
                        }
                    }
                    watcher::Event::Delete(p) => {
                        s.labels
                            .insert(p.uid().unwrap_or_default(), p.labels().clone());
                        s.note_deleted(&p);
                    }
                }
            }
        });
        let churn = PodChurn { state, task };
        wait_for(
            "the pod churn watch to sync",
            Duration::from_secs(30),
            || {
                let synced = churn.state.lock().unwrap().synced;
                async move { synced.then_some(()) }
            },
        )
        .await;
        churn
    }

    /// Names of the pods matching `labels` whose deletion started since the start.
    pub fn deleted(&self, labels: &[(&str, &str)]) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.deleted
            .iter()
            .filter(|(uid, _)| {
                s.labels.get(*uid).is_some_and(|l| {
                    labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
                })
            })
            .map(|(_, name)| name.clone())
            .collect()
    }

    /// Every deletion since the start.
    pub fn deleted_total(&self) -> usize {
        self.state.lock().unwrap().deleted.len()
    }
}

impl ChurnState {
    fn note_deleted(&mut self, p: &Pod) {
        let uid = p.uid().unwrap_or_default();
        if !self.terminating_at_start.contains(&uid) {
            self.deleted.insert(uid, p.name_any());
        }
    }
}

impl Drop for PodChurn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Samples the Ready, not terminating pods matching a selector every 100 ms and remembers the
/// fewest seen (to prove a PodDisruptionBudget's floor was never crossed).
pub struct ReadyFloor {
    min: Arc<Mutex<Option<usize>>>,
    task: JoinHandle<()>,
}

impl ReadyFloor {
    pub fn start(ctx: &Ctx, selector: &str) -> ReadyFloor {
        let min: Arc<Mutex<Option<usize>>> = Arc::default();
        let api = ctx.api::<Pod>();
        let lp = ListParams::default().labels(selector);
        let m = min.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Ok(list) = api.list(&lp).await {
                    let ready = list
                        .items
                        .iter()
                        .filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
                        .count();
                    let mut m = m.lock().unwrap();
                    *m = Some(m.map_or(ready, |v| v.min(ready)));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        ReadyFloor { min, task }
    }

    pub fn min(&self) -> Option<usize> {
        *self.min.lock().unwrap()
    }
}

impl Drop for ReadyFloor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Plays Argo Rollouts' part for one Rollout whose ReplicaSet the test created: mirrors the
/// ReplicaSet's counts into the Rollout's status (Argo style: `observedGeneration` a string equal
/// to `metadata.generation`), and copies the template's spread constraints into the ReplicaSet's
/// template so replacements are scheduled as the Rollout's pods would be. It does not roll the
/// ReplicaSet (there is no canary here). The status goes through the status subresource, which
/// the Rollout CRD has.
pub struct FakeArgo {
    task: JoinHandle<()>,
}

impl FakeArgo {
    pub fn start(ctx: &Ctx, rollout: &str, replicaset: &str) -> FakeArgo {
        Self::spawn(ctx, rollout, replicaset, None)
    }

    /// For a Rollout whose `workloadRef` names the Deployment `template_from`: the constraints
    /// are read from that Deployment's template, as Argo Rollouts reads it.
    pub fn start_referencing(
        ctx: &Ctx,
        rollout: &str,
        replicaset: &str,
        template_from: &str,
    ) -> FakeArgo {
        Self::spawn(ctx, rollout, replicaset, Some(template_from.to_string()))
    }

    fn spawn(
        ctx: &Ctx,
        rollout: &str,
        replicaset: &str,
        template_from: Option<String>,
    ) -> FakeArgo {
        let rollouts = ctx.dynamic(&rollout_resource());
        let sets = ctx.api::<ReplicaSet>();
        let deployments = ctx.api::<Deployment>();
        let (rollout, replicaset) = (rollout.to_string(), replicaset.to_string());
        let task = tokio::spawn(async move {
            loop {
                let from = template_from.as_deref().map(|d| (&deployments, d));
                if let Err(e) = sync_rollout(&rollouts, &sets, &rollout, &replicaset, from).await {
                    eprintln!("fake-argo: {e}");
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        FakeArgo { task }
    }
}

impl Drop for FakeArgo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn sync_rollout(
    rollouts: &Api<kube::api::DynamicObject>,
    sets: &Api<ReplicaSet>,
    rollout: &str,
    replicaset: &str,
    template_from: Option<(&Api<Deployment>, &str)>,
) -> Result<(), kube::Error> {
    let r = rollouts.get(rollout).await?;
    let rs = sets.get(replicaset).await?;
    let wanted = match template_from {
        Some((deployments, name)) => {
            let d = deployments.get(name).await?;
            (d.spec.and_then(|s| s.template.spec))
                .and_then(|s| s.topology_spread_constraints)
                .map_or(Value::Null, |c| {
                    serde_json::to_value(c).unwrap_or(Value::Null)
                })
        }
        None => r.data["spec"]["template"]["spec"]["topologySpreadConstraints"].clone(),
    };
    let have = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.topology_spread_constraints.as_ref())
        .map(|c| serde_json::to_value(c).unwrap())
        .unwrap_or(Value::Null);
    if wanted != have && !wanted.is_null() {
        sets.patch(
            replicaset,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"template": {"spec": {"topologySpreadConstraints": wanted}}}}),
            ),
        )
        .await?;
    }
    let st = rs.status.clone().unwrap_or_default();
    let counts = json!({
        "replicas": st.replicas,
        "updatedReplicas": st.replicas,
        "readyReplicas": st.ready_replicas.unwrap_or(0),
        "availableReplicas": st.available_replicas.unwrap_or(0),
    });
    let generation = r.metadata.generation.unwrap_or(0);
    let status = &r.data["status"];
    let same = [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
    ]
    .iter()
    .all(|k| status[*k] == counts[*k])
        && status["observedGeneration"] == json!(generation.to_string());
    if !same {
        let mut body = counts;
        body["observedGeneration"] = json!(generation.to_string());
        rollouts
            .patch_status(
                rollout,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": body})),
            )
            .await?;
    }
    Ok(())
}

/// Waits until the Rollout's template carries spread constraints and its status (kept by
/// [`FakeArgo`]) says settled with `replicas` ready.
pub async fn wait_rollout_constrained(ctx: &Ctx, name: &str, replicas: i64) {
    let api = ctx.dynamic(&rollout_resource());
    let start = std::time::Instant::now();
    let mut last = String::new();
    while start.elapsed() < Duration::from_secs(90) {
        if let Ok(r) = api.get(name).await {
            let has = r.data["spec"]["template"]["spec"]["topologySpreadConstraints"]
                .as_array()
                .is_some_and(|c| !c.is_empty());
            let s = &r.data["status"];
            let settled = s["observedGeneration"]
                == json!(r.metadata.generation.unwrap_or(0).to_string())
                && s["readyReplicas"] == json!(replicas)
                && s["availableReplicas"] == json!(replicas);
            if has && settled {
                return;
            }
            last = format!(
                "constraints: {has}, generation {:?}, status {s}",
                r.metadata.generation
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("Rollout {name}: constraints injected and status settled, still: {last}");
}

/// GETs `path` from `addr` (plain HTTP/1.1); the body of a 200 answer.
pub async fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            if n == 0 {
                break;
            }
            out.push_str(tail.get(..n)?);
            rest = tail.get(n + 2..)?;
        }
        return Some(out);
    }
    Some(body.to_string())
}

/// One sample of a scrape: family name, labels, value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses Prometheus/OpenMetrics text (no escapes in label values needed here).
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.trim_end_matches('}');
                let mut labels = BTreeMap::new();
                let mut rest = inner;
                while let Some((k, tail)) = rest.split_once("=\"") {
                    let Some((v, tail)) = tail.split_once('"') else {
                        break;
                    };
                    labels.insert(k.trim_start_matches(',').trim().to_string(), v.to_string());
                    rest = tail;
                }
                (name.to_string(), labels)
            }
            None => (series.to_string(), BTreeMap::new()),
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// The value of the one sample of `name` whose labels include every pair of `labels`.
pub fn metric(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    match found.as_slice() {
        [one] => Some(one.value),
        _ => None,
    }
}

/// A histogram's `q` quantile as the upper bound of the first bucket holding it (what
/// `histogram_quantile` would interpolate within), and its observation count; `None` before any
/// observation.
pub fn histogram_quantile(samples: &[Sample], name: &str, q: f64) -> Option<(f64, f64)> {
    let count = metric(samples, &format!("{name}_count"), &[])?;
    if count <= 0.0 {
        return None;
    }
    let mut buckets: Vec<(f64, f64)> = (samples.iter())
        .filter(|s| s.name == format!("{name}_bucket"))
        .filter_map(|s| {
            let le = s.labels.get("le")?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, s.value))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let bound = buckets
        .iter()
        .find(|(_, cumulative)| *cumulative >= q * count)
        .map(|(bound, _)| *bound)?;
    Some((bound, count))
}

/// Scrapes the operator's `/metrics`.
pub async fn scrape(op: &OperatorProcess) -> Vec<Sample> {
    let text = wait_for("a /metrics answer", Duration::from_secs(20), || async {
        http_get(&op.metrics_addr, "/metrics").await
    })
    .await;
    parse_metrics(&text)
}

/// The uids of every pod of the namespace matching `selector`.
pub async fn pod_uids(ctx: &Ctx, selector: &str) -> BTreeSet<String> {
    ctx.pods(selector)
        .await
        .iter()
        .filter_map(|p| p.uid())
        .collect()
}
