//! The soak (issue 28): hours of faults, churn and odd shapes, with nothing lost. `make soak`
//! runs it for `SKEWGUARD_SOAK_MINUTES` (30 by default); `soak_3_minutes` is the same in short,
//! in the ordinary suite.
//!
//! Three zones of three nodes; 28 workloads: 14 Deployments, 6 StatefulSets and 5 Rollouts under
//! two policies (maxDisruptions 1 and 2), six of them with a PodDisruptionBudget; `web`, whose
//! selector also matches the pods of `web-canary` (a Deployment no policy selects), three bare
//! pods, and `web-foreign`'s (a ReplicaSet no Deployment owns, whose pods carry web's labels and
//! its current pod-template-hash, so they count in web's measurement); `optout`, whose pods opt
//! out of eviction. Two operator replicas elect a leader, each
//! talking to the API server through its own port of a fault proxy (latency, 429, 5xx, resets,
//! cut watches, stalled Lease renewals).
//!
//! While the soak runs: an HPA-like scaler changes replicas, templates change (rolling updates),
//! a zone is drilled now and then (cordoned, its pods deleted, restored), the leader is
//! SIGKILLed (and restarted as a new replica), and kube-apiserver restarts. Then the faults stop:
//! the cluster must balance within [`BALANCE_BOUND`], and one quiet drill's recovery must take no
//! more evictions than its lower bound plus the moves the scheduler wasted. Finally the
//! invariants ([`skewguard_testbed::soak::invariants`]) are checked over the recorded history,
//! the replicas' resident memory must be flat after warm-up, and no log may say `panicked`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use skewguard_testbed::soak::fault_proxy::{FaultProxy, FaultRates};
use skewguard_testbed::soak::history::{Fault, History, Workload};
use skewguard_testbed::soak::invariants::{self, Governed, Recovery, Rules};
use skewguard_testbed::soak::recorder::Recorder;
use skewguard_testbed::soak::rng::Rng;

use super::fixtures::{deployment, rollout, rollout_replicaset, statefulset};
use super::support::*;
use crate::fake_kubelet::{is_ready, node_of};
use crate::harness::{Ctx, OperatorProcess, rollout_resource, wait_for};

const ZONE_B: &str = "ap-northeast-2b";
const ZONES: [&str; 3] = [ZONE_A, ZONE_B, ZONE_C];
const LEASE: &str = "skewguard-leader";
const LEASE_SECONDS: u64 = 9;
const COOLDOWN_SECONDS: u64 = 30;
/// After the faults stop (and after the quiet drill's zone is back), every workload is balanced
/// within this.
const BALANCE_BOUND: Duration = Duration::from_secs(300);
/// A replica's memory is judged from this long after its start.
const WARM_UP: Duration = Duration::from_secs(60);
/// At the end, resident memory may be at most this times the value after warm-up.
const MEMORY_GROWTH: f64 = 1.5;
/// The operator's own `REPLACEMENT_TIMEOUT`.
const REPLACEMENT_TIMEOUT: Duration = Duration::from_secs(300);
const SLOTS: [&str; 2] = ["a", "b"];
const ROLLOUT_HASH: &str = "soak1";

/// The ignored soak's length: `SKEWGUARD_SOAK_MINUTES`, 30 when unset.
pub fn minutes_from_env() -> u64 {
    std::env::var("SKEWGUARD_SOAK_MINUTES")
        .ok()
        .and_then(|m| m.trim().parse().ok())
        .filter(|m| *m > 0)
        .unwrap_or(30)
}

/// `make soak`: [`soak`] for [`minutes_from_env`] minutes.
pub async fn soak_from_env(ctx: Ctx) {
    soak(ctx, Duration::from_secs(60 * minutes_from_env())).await;
}

/// The suite's short soak.
pub async fn soak_3_minutes(ctx: Ctx) {
    soak(ctx, Duration::from_secs(180)).await;
}

/// One workload of the soak.
#[derive(Clone, Debug)]
struct Spec {
    kind: &'static str,
    name: String,
    /// `one` or `two` (the policy and its maxDisruptions); `None`: no policy selects it.
    policy: Option<&'static str>,
    replicas: u32,
    /// The labels of its selector (what its constraint measures).
    selector: Vec<(String, String)>,
    /// Labels only its own pods carry.
    own: Vec<(String, String)>,
    /// The HPA-like scaler may change it.
    scalable: bool,
    /// Its pods opted out of eviction: it cannot be rebalanced, so balance is not asked of it.
    opted_out: bool,
}

impl Spec {
    fn governed(kind: &'static str, name: String, policy: &'static str, replicas: u32) -> Spec {
        let selector = vec![
            ("app".to_string(), name.clone()),
            ("soak".into(), "governed".into()),
            ("policy".into(), policy.into()),
        ];
        Spec {
            kind,
            own: vec![("app".to_string(), name.clone())],
            name,
            policy: Some(policy),
            replicas,
            selector,
            scalable: true,
            opted_out: false,
        }
    }

    fn workload(&self) -> Workload {
        Workload::new(self.kind, &self.name)
    }

    fn labels(&self) -> Vec<(&str, &str)> {
        (self.selector.iter())
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn matches(labels: &BTreeMap<String, String>, wanted: &[(String, String)]) -> bool {
        wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// The 28 workloads.
fn layout() -> Vec<Spec> {
    let mut specs = Vec::new();
    // (kind, prefix, how many, every how many-th is under policy two, replicas cycle)
    let kinds = [
        ("Deployment", "d", 14, 3, 4),
        ("StatefulSet", "s", 6, 2, 3),
        ("Rollout", "r", 5, 2, 3),
    ];
    for (kind, prefix, n, every, cycle) in kinds {
        for i in 0..n {
            let policy = if i % every == every - 1 { "two" } else { "one" };
            let name = format!("{prefix}-{i:02}");
            specs.push(Spec::governed(kind, name, policy, 2 + i % cycle));
        }
    }
    // web's selector matches web-canary's pods and the stray bare pods too.
    let mut web = Spec::governed("Deployment", "web".into(), "one", 4);
    web.own = vec![
        ("app".into(), "web".into()),
        ("track".into(), "stable".into()),
    ];
    web.scalable = false;
    specs.push(web);
    let mut canary = Spec::governed("Deployment", "web-canary".into(), "one", 2);
    canary.policy = None;
    canary.own = vec![
        ("app".into(), "web".into()),
        ("track".into(), "canary".into()),
    ];
    canary.selector = canary.own.clone();
    canary.scalable = false;
    specs.push(canary);
    let mut optout = Spec::governed("Deployment", "optout".into(), "one", 3);
    optout.scalable = false;
    optout.opted_out = true;
    specs.push(optout);
    specs
}

/// A PodDisruptionBudget: its name, the labels of the pods it covers, its budget.
type Budget = (&'static str, Vec<(&'static str, &'static str)>, Value);

/// The PodDisruptionBudgets.
fn budgets() -> Vec<Budget> {
    vec![
        ("d-00", vec![("app", "d-00")], json!({"maxUnavailable": 1})),
        ("d-01", vec![("app", "d-01")], json!({"minAvailable": 1})),
        ("d-02", vec![("app", "d-02")], json!({"maxUnavailable": 1})),
        ("s-00", vec![("app", "s-00")], json!({"minAvailable": 1})),
        ("r-00", vec![("app", "r-00")], json!({"maxUnavailable": 1})),
        (
            "web",
            vec![("app", "web"), ("track", "stable")],
            json!({"minAvailable": 2}),
        ),
    ]
}

fn pod_template(labels: &[(String, String)], annotations: Value) -> Value {
    let labels: serde_json::Map<String, Value> =
        labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    json!({
        "metadata": {"labels": labels, "annotations": annotations},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "app", "image": "nginx:1.27",
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}],
        },
    })
}

/// A Deployment whose object carries `object_labels`, selecting `selector`, its pods carrying
/// `pod_labels` and `annotations`.
fn custom_deployment(
    name: &str,
    replicas: u32,
    object_labels: &[(String, String)],
    selector: &[(String, String)],
    pod_labels: &[(String, String)],
    annotations: Value,
) -> String {
    let map = |l: &[(String, String)]| -> serde_json::Map<String, Value> {
        l.iter().map(|(k, v)| (k.clone(), json!(v))).collect()
    };
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": map(object_labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": map(selector)},
            "template": pod_template(pod_labels, annotations),
        },
    })
    .to_string()
}

/// Creates every workload, the bare pods and the budgets; returns the Argo stand-ins.
async fn create(ctx: &Ctx, specs: &[Spec]) -> Vec<FakeArgo> {
    let mut argos = Vec::new();
    for s in specs {
        match (s.kind, s.name.as_str()) {
            ("Deployment", "web") => {
                let pods: Vec<(String, String)> = s
                    .selector
                    .iter()
                    .cloned()
                    .chain([("track".into(), "stable".into())])
                    .collect();
                ctx.apply(&custom_deployment(
                    "web",
                    s.replicas,
                    &s.selector,
                    &s.selector,
                    &pods,
                    json!({}),
                ))
                .await;
            }
            ("Deployment", "web-canary") => {
                // Its pods carry everything web's selector asks for; no policy selects the object.
                let web = &specs
                    .iter()
                    .find(|w| w.name == "web")
                    .expect("web")
                    .selector;
                let pods: Vec<(String, String)> = web
                    .iter()
                    .cloned()
                    .chain([("track".into(), "canary".into())])
                    .collect();
                let object = [("app".to_string(), "web-canary".to_string())];
                ctx.apply(&custom_deployment(
                    "web-canary",
                    s.replicas,
                    &object,
                    &s.selector,
                    &pods,
                    json!({}),
                ))
                .await;
            }
            ("Deployment", "optout") => {
                let shy = json!({"skewguard.dev/do-not-evict": "true"});
                ctx.apply(&custom_deployment(
                    "optout",
                    s.replicas,
                    &s.selector,
                    &s.selector,
                    &s.selector,
                    shy,
                ))
                .await;
            }
            ("Deployment", _) => {
                ctx.apply(&deployment(&s.name, s.replicas, &s.labels()))
                    .await;
            }
            ("StatefulSet", _) => {
                ctx.apply(&statefulset(&s.name, s.replicas, &s.labels()))
                    .await;
            }
            ("Rollout", _) => {
                let applied = ctx.apply(&rollout(&s.name, s.replicas, &s.labels())).await;
                let uid = applied[0].uid().expect("the Rollout has a uid");
                ctx.apply(&rollout_replicaset(
                    &s.name,
                    &uid,
                    ROLLOUT_HASH,
                    s.replicas,
                    &s.labels(),
                ))
                .await;
                argos.push(FakeArgo::start(
                    ctx,
                    &s.name,
                    &format!("{}-{ROLLOUT_HASH}", s.name),
                ));
            }
            _ => unreachable!("no other kind in the layout"),
        }
    }
    // Bare pods that web's selector matches, one pinned to each zone.
    let web = specs.iter().find(|w| w.name == "web").expect("web");
    for (i, zone) in ZONES.iter().enumerate() {
        let labels: Vec<(String, String)> = web
            .selector
            .iter()
            .cloned()
            .chain([("track".into(), "stray".into())])
            .collect();
        let mut pod = pod_template(&labels, json!({}));
        pod["apiVersion"] = json!("v1");
        pod["kind"] = json!("Pod");
        pod["metadata"]["name"] = json!(format!("stray-{i}"));
        pod["spec"]["nodeSelector"] = json!({ZONE_KEY: zone});
        ctx.apply(&pod.to_string()).await;
    }
    for (name, labels, budget) in budgets() {
        ctx.apply(&pdb(name, &labels, budget)).await;
    }
    argos
}

/// Once web runs its constrained revision: a ReplicaSet of its own (no Deployment owns it) whose
/// three pods, one per zone, carry web's selector labels and web's current `pod-template-hash`. They
/// count in web's measurement (as the scheduler counts them) but are not web's: never to be moved
/// or annotated. Drills leave them alone.
async fn add_foreign(ctx: &Ctx, web: &Spec) {
    let deployments = ctx.api::<Deployment>();
    let hash = wait_for(
        "web constrained and rolled out",
        Duration::from_secs(300),
        || async {
            let d = deployments.get("web").await.ok()?;
            let constrained = (d.spec.as_ref()?.template.spec.as_ref())
                .and_then(|s| s.topology_spread_constraints.as_ref())
                .is_some_and(|c| !c.is_empty());
            if !constrained || !deployment_settled(&d, web.replicas as i32) {
                return None;
            }
            let pods = all_pods(ctx).await;
            let mut hashes = (pods.iter())
                .filter(|p| healthy(p) && Spec::matches(p.labels(), &web.own))
                .filter_map(|p| p.labels().get("pod-template-hash").cloned());
            let first = hashes.next()?;
            hashes.all(|h| h == first).then_some(first)
        },
    )
    .await;
    let labels: Vec<(String, String)> = (web.selector.iter().cloned())
        .chain([
            ("pod-template-hash".into(), hash),
            ("track".into(), "foreign".into()),
        ])
        .collect();
    let mut template = pod_template(&labels, json!({}));
    template["spec"]["topologySpreadConstraints"] = json!([{
        "topologyKey": ZONE_KEY, "maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"track": "foreign"}},
    }]);
    let rs = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-foreign", "labels": {"track": "foreign"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"track": "foreign"}}, "template": template},
    });
    ctx.apply(&rs.to_string()).await;
    wait_for(
        "web-foreign's pods Ready",
        Duration::from_secs(120),
        || async {
            let counts = per_zone(
                ctx,
                &all_pods(ctx).await,
                &[("track".into(), "foreign".into())],
            );
            (counts == [1, 1, 1]).then_some(())
        },
    )
    .await;
}

fn policies() -> Vec<String> {
    [("one", 1), ("two", 2)]
        .iter()
        .map(|(policy, max)| {
            hapolicy(
                &format!("soak-{policy}"),
                json!({
                    "selector": {"matchLabels": {"soak": "governed", "policy": policy}},
                    "spread": [{"topologyKey": ZONE_KEY, "maxSkew": 1,
                                "whenUnsatisfiable": "ScheduleAnyway"}],
                    "injection": "Template",
                    "rebalance": {"stabilizationSeconds": 5, "cooldownSeconds": COOLDOWN_SECONDS,
                                  "maxDisruptions": max},
                }),
            )
        })
        .collect()
}

/// Every pod of the namespace (an empty list while the API server is away).
async fn all_pods(ctx: &Ctx) -> Vec<Pod> {
    (ctx.api::<Pod>().list(&ListParams::default()).await)
        .map(|l| l.items)
        .unwrap_or_default()
}

fn zone_of(ctx: &Ctx, p: &Pod) -> Option<String> {
    node_of(p).and_then(|n| ctx.kubelet.zone_of(n))
}

fn healthy(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none() && is_ready(p)
}

/// The label that tells a workload's revisions apart (its constraint's `matchLabelKeys`).
fn revision_label(kind: &str) -> &'static str {
    match kind {
        "StatefulSet" => "controller-revision-hash",
        "Rollout" => "rollouts-pod-template-hash",
        _ => "pod-template-hash",
    }
}

fn owned(p: &Pod) -> bool {
    p.owner_references()
        .iter()
        .any(|o| o.controller == Some(true))
}

/// Healthy pods matching `wanted`, per zone (every zone present).
fn per_zone(ctx: &Ctx, pods: &[Pod], wanted: &[(String, String)]) -> Vec<i32> {
    let mut counts: BTreeMap<String, i32> = ZONES.iter().map(|z| (z.to_string(), 0)).collect();
    for p in pods
        .iter()
        .filter(|p| healthy(p) && Spec::matches(p.labels(), wanted))
    {
        if let Some(n) = zone_of(ctx, p).and_then(|z| counts.get_mut(&z)) {
            *n += 1;
        }
    }
    counts.into_values().collect()
}

/// What the workload's constraint counts, per zone, as the scheduler and skewguard count it: its
/// selector and its current revision (the revision most of its own healthy pods carry), so pods
/// of other workloads carrying the same labels count too.
fn measured(ctx: &Ctx, pods: &[Pod], s: &Spec) -> Vec<i32> {
    let key = revision_label(s.kind);
    let mut revisions: BTreeMap<&str, usize> = BTreeMap::new();
    for p in pods
        .iter()
        .filter(|p| healthy(p) && owned(p) && Spec::matches(p.labels(), &s.own))
    {
        if let Some(r) = p.labels().get(key) {
            *revisions.entry(r.as_str()).or_default() += 1;
        }
    }
    let mut wanted = s.selector.clone();
    if let Some((r, _)) = revisions.into_iter().max_by_key(|(_, n)| *n) {
        wanted.push((key.to_string(), r.to_string()));
    }
    per_zone(ctx, pods, &wanted)
}

/// Each workload's wanted replicas, as its object says now.
async fn desired(ctx: &Ctx) -> Option<BTreeMap<String, i64>> {
    let mut out = BTreeMap::new();
    for d in ctx
        .api::<Deployment>()
        .list(&ListParams::default())
        .await
        .ok()?
        .items
    {
        out.insert(
            d.name_any(),
            d.spec.and_then(|s| s.replicas).unwrap_or(1).into(),
        );
    }
    for s in ctx
        .api::<StatefulSet>()
        .list(&ListParams::default())
        .await
        .ok()?
        .items
    {
        out.insert(
            s.name_any(),
            s.spec.and_then(|s| s.replicas).unwrap_or(1).into(),
        );
    }
    for r in ctx
        .dynamic(&rollout_resource())
        .list(&ListParams::default())
        .await
        .ok()?
        .items
    {
        out.insert(
            r.name_any(),
            r.data["spec"]["replicas"].as_i64().unwrap_or(1),
        );
    }
    Some(out)
}

/// The workloads not balanced yet (all of their replicas healthy, none terminating, within
/// maxSkew 1 over the three zones as their selector counts), with why; `None` when the API
/// cannot be read.
async fn unbalanced(ctx: &Ctx, specs: &[Spec]) -> Option<Vec<String>> {
    let want = desired(ctx).await?;
    let pods = all_pods(ctx).await;
    let mut out = Vec::new();
    for s in specs.iter().filter(|s| s.policy.is_some() && !s.opted_out) {
        let own: Vec<&Pod> = (pods.iter())
            .filter(|p| Spec::matches(p.labels(), &s.own) && owned(p))
            .collect();
        let ready = own.iter().filter(|p| healthy(p)).count() as i64;
        let terminating = own.iter().any(|p| p.metadata.deletion_timestamp.is_some());
        let counts = measured(ctx, &pods, s);
        let skew = counts.iter().max().unwrap_or(&0) - counts.iter().min().unwrap_or(&0);
        let wanted = want.get(&s.name).copied().unwrap_or(-1);
        if ready != wanted || terminating || skew > 1 {
            out.push(format!(
                "{} {counts:?} ready {ready}/{wanted}{}",
                s.name,
                if terminating { " terminating" } else { "" }
            ));
        }
    }
    Some(out)
}

/// Waits until every workload is balanced; how long it took, or (after `bound`) what was not.
async fn wait_balanced(
    ctx: &Ctx,
    specs: &[Spec],
    what: &str,
    bound: Duration,
) -> Result<Duration, String> {
    let t = Instant::now();
    let mut last = Vec::new();
    while t.elapsed() < bound {
        if let Some(u) = unbalanced(ctx, specs).await {
            if u.is_empty() {
                return Ok(t.elapsed());
            }
            last = u;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let entries = |status: Value| -> Vec<String> {
        (status["workloads"].as_array().into_iter().flatten())
            .filter(|w| w["balanced"] != json!(true))
            .map(|w| {
                format!(
                    "{} {:?} {}",
                    w["name"],
                    rebalance_of(w),
                    w["constraints"][0]["domains"]
                )
            })
            .collect()
    };
    let one = entries(policy_status(ctx, "soak-one").await);
    let two = entries(policy_status(ctx, "soak-two").await);
    Err(format!(
        "{what}: not balanced within {bound:?}: {last:?}; unbalanced in the status: {one:?} {two:?}"
    ))
}

/// A merge patch of the workload object.
async fn patch_workload(ctx: &Ctx, s: &Spec, patch: &Patch<Value>) -> Result<(), kube::Error> {
    let pp = PatchParams::default();
    match s.kind {
        "Deployment" => ctx
            .api::<Deployment>()
            .patch(&s.name, &pp, patch)
            .await
            .map(|_| ()),
        "StatefulSet" => ctx
            .api::<StatefulSet>()
            .patch(&s.name, &pp, patch)
            .await
            .map(|_| ()),
        _ => (ctx
            .dynamic(&rollout_resource())
            .patch(&s.name, &pp, patch)
            .await)
            .map(|_| ()),
    }
}

/// One operator replica slot: its process now, and every process it ran.
struct Slot {
    name: &'static str,
    incarnation: u32,
    op: Option<OperatorProcess>,
    started: Instant,
    /// Resident memory (KiB) samples of the running process: (since its start, value).
    samples: Vec<(Duration, u64)>,
    restart_at: Option<Instant>,
}

/// A finished (or final) process's memory.
#[derive(Debug, Clone)]
struct Memory {
    who: String,
    lived: Duration,
    warm: Option<u64>,
    end: Option<u64>,
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Everything the chaos does, counted.
#[derive(Default, Debug)]
struct Churn {
    scales: u32,
    updates: u32,
    drills: u32,
    kills: u32,
    apiserver_restarts: u32,
    /// kube-scheduler or kube-controller-manager exited and was started again (a kubelet's part).
    controller_restarts: u32,
    test_write_errors: u32,
    /// Replicas that exited by themselves within [`START_UP`] of starting (no API server to
    /// reach at start: the operator exits, and is restarted as a kubelet would).
    start_up_exits: u32,
}

/// An exit this soon after a replica's start is a start-up failure; any later one fails the soak.
const START_UP: Duration = Duration::from_secs(30);

struct Soak<'a> {
    ctx: &'a Ctx,
    specs: &'a [Spec],
    proxy: FaultProxy,
    slots: Vec<Slot>,
    logs: Vec<PathBuf>,
    /// Replicas that exited by themselves after start-up: (identity, log).
    crashes: Vec<(String, PathBuf)>,
    memories: Vec<Memory>,
    rng: Rng,
    churn: Churn,
}

impl Soak<'_> {
    fn start_slot(&mut self, i: usize) {
        let kubeconfig = self
            .proxy
            .kubeconfig(self.slots[i].name, &self.ctx.work_dir)
            .expect("write the proxy kubeconfig");
        let slot = &mut self.slots[i];
        slot.incarnation += 1;
        let identity = format!("soak-{}-{}", slot.name, slot.incarnation);
        let mut env = self.ctx.env.clone();
        env.kubeconfig = kubeconfig;
        let ctx = Ctx {
            env,
            ns: self.ctx.ns.clone(),
        };
        let lease_seconds = LEASE_SECONDS.to_string();
        let mut op = start_operator(
            &ctx,
            &[
                "--leader-elect",
                "--lease-namespace",
                &self.ctx.ns,
                "--lease-name",
                LEASE,
                "--identity",
                &identity,
                "--lease-duration-seconds",
                &lease_seconds,
                "--max-concurrent-rollouts",
                "6",
            ],
        );
        op.quiet = true;
        self.logs.push(op.log.clone());
        slot.op = Some(op);
        slot.started = Instant::now();
        slot.samples.clear();
        slot.restart_at = None;
    }

    /// Kills slot `i`'s process (SIGKILL) and keeps its memory figures.
    fn kill_slot(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if let Some(mut op) = slot.op.take() {
            op.kill();
            self.memories.push(memory_of(slot));
        }
    }

    /// Restarts (as a kubelet would, a few seconds later) a replica that exited by itself.
    fn reap(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            let Some(op) = slot.op.as_mut() else { continue };
            if op.is_running() {
                continue;
            }
            if slot.started.elapsed() < START_UP {
                self.churn.start_up_exits += 1;
            } else {
                let who = format!("soak-{}-{}", slot.name, slot.incarnation);
                self.crashes.push((who, op.log.clone()));
            }
            self.kill_slot(i);
            self.slots[i].restart_at = Some(now + Duration::from_secs(3));
        }
    }

    fn sample_memory(&mut self) {
        for slot in &mut self.slots {
            if let Some(pid) = slot.op.as_ref().and_then(|o| o.pid())
                && let Some(kib) = rss_kib(pid)
            {
                slot.samples.push((slot.started.elapsed(), kib));
            }
        }
    }

    async fn leader_slot(&self) -> Option<usize> {
        let lease = self.ctx.api::<Lease>().get_opt(LEASE).await.ok()??;
        let holder = lease.spec?.holder_identity?;
        self.slots
            .iter()
            .position(|s| holder.starts_with(&format!("soak-{}-", s.name)) && s.op.is_some())
    }

    fn draw(&mut self, lo: Duration, hi: Duration) -> Duration {
        Duration::from_millis(
            self.rng
                .between(lo.as_millis() as u64, hi.as_millis() as u64),
        )
    }

    async fn scale(&mut self) {
        let scalable: Vec<&Spec> = self.specs.iter().filter(|s| s.scalable).collect();
        let Some(s) = self.rng.pick(&scalable).copied() else {
            return;
        };
        let n = self.rng.between(2, 6);
        let patch = Patch::Merge(json!({"spec": {"replicas": n}}));
        let mut result = patch_workload(self.ctx, s, &patch).await;
        if s.kind == "Rollout" {
            // No Argo controller: its ReplicaSet too.
            let rs = format!("{}-{ROLLOUT_HASH}", s.name);
            let pp = PatchParams::default();
            let api = self.ctx.api::<ReplicaSet>();
            result = result.and(api.patch(&rs, &pp, &patch).await.map(|_| ()));
        }
        match result {
            Ok(()) => self.churn.scales += 1,
            Err(_) => self.churn.test_write_errors += 1,
        }
    }

    /// A template change (a rolling update) of a Deployment or StatefulSet.
    async fn roll(&mut self) {
        let rollable: Vec<&Spec> = (self.specs.iter())
            .filter(|s| s.scalable && s.kind != "Rollout")
            .collect();
        let Some(s) = self.rng.pick(&rollable).copied() else {
            return;
        };
        let rev = self.rng.next_u64() % 1_000_000;
        let patch = Patch::Merge(json!({"spec": {"template": {"metadata": {"annotations": {
            "soak.skewguard.dev/revision": rev.to_string()}}}}}));
        let result = patch_workload(self.ctx, s, &patch).await;
        match result {
            Ok(()) => self.churn.updates += 1,
            Err(_) => self.churn.test_write_errors += 1,
        }
    }

    /// The drill's first half: cordon `zone` and delete the pods on it (bare pods and
    /// web-foreign's stay).
    async fn drill_out(&mut self, zone: &str) {
        self.ctx.kubelet.cordon_zone(zone).await;
        let api = self.ctx.api::<Pod>();
        for p in all_pods(self.ctx).await {
            let foreign = p.labels().get("track").is_some_and(|t| t == "foreign");
            let here = zone_of(self.ctx, &p).as_deref() == Some(zone);
            if !owned(&p) || foreign || !here || p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            if api
                .delete(&p.name_any(), &DeleteParams::default())
                .await
                .is_err()
            {
                self.churn.test_write_errors += 1;
            }
        }
        self.churn.drills += 1;
    }

    async fn restart_apiserver(&mut self) {
        let Some(apiserver) = self.ctx.apiserver.clone() else {
            return;
        };
        apiserver.stop();
        tokio::time::sleep(self.draw(Duration::from_secs(3), Duration::from_secs(10))).await;
        apiserver.start();
        wait_for("the API server back", Duration::from_secs(90), || async {
            self.ctx
                .api::<Deployment>()
                .list(&ListParams::default())
                .await
                .ok()
        })
        .await;
        self.churn.apiserver_restarts += 1;
    }

    /// The faults and the churn, for `duration`.
    async fn chaos(&mut self, duration: Duration) {
        let start = Instant::now();
        let end = start + duration;
        let kill_every = (duration / 10).clamp(Duration::from_secs(45), Duration::from_secs(180));
        let restart_every = (duration / 4).clamp(Duration::from_secs(80), Duration::from_secs(600));
        let mut next_scale = start + self.draw(Duration::from_secs(3), Duration::from_secs(8));
        let mut next_roll = start + self.draw(Duration::from_secs(15), Duration::from_secs(40));
        let mut next_drill = start + self.draw(Duration::from_secs(20), Duration::from_secs(50));
        let mut next_kill = start + self.draw(kill_every, kill_every * 2);
        let mut next_restart = start + self.draw(restart_every, restart_every * 3 / 2);
        let mut next_sample = start;
        let mut drill: Option<(String, Instant)> = None;
        self.proxy.set_faults(true);
        while Instant::now() < end {
            let now = Instant::now();
            if now >= next_sample {
                self.sample_memory();
                next_sample = now + Duration::from_secs(5);
            }
            if now >= next_scale {
                self.scale().await;
                next_scale = now + self.draw(Duration::from_secs(3), Duration::from_secs(8));
            }
            if now >= next_roll {
                self.roll().await;
                next_roll = now + self.draw(Duration::from_secs(15), Duration::from_secs(40));
            }
            match drill.clone() {
                Some((zone, until)) if now >= until => {
                    self.ctx.kubelet.uncordon_zone(&zone).await;
                    drill = None;
                    next_drill = now + self.draw(Duration::from_secs(30), Duration::from_secs(90));
                }
                None if now >= next_drill => {
                    let zone = self.rng.pick(&ZONES).copied().unwrap_or(ZONE_A).to_string();
                    self.drill_out(&zone).await;
                    drill = Some((
                        zone,
                        now + self.draw(Duration::from_secs(20), Duration::from_secs(40)),
                    ));
                }
                _ => {}
            }
            if now >= next_kill {
                if let Some(i) = self.leader_slot().await {
                    self.kill_slot(i);
                    self.churn.kills += 1;
                    self.slots[i].restart_at =
                        Some(now + self.draw(Duration::from_secs(3), Duration::from_secs(10)));
                }
                next_kill = now + self.draw(kill_every, kill_every * 2);
            }
            self.reap(now);
            for i in 0..self.slots.len() {
                if self.slots[i].restart_at.is_some_and(|at| now >= at) {
                    self.start_slot(i);
                }
            }
            if now >= next_restart && drill.is_none() {
                self.restart_apiserver().await;
                next_restart = Instant::now() + self.draw(restart_every, restart_every * 3 / 2);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.proxy.set_faults(false);
        if let Some((zone, _)) = drill {
            self.ctx.kubelet.uncordon_zone(&zone).await;
        }
        self.reap(Instant::now());
        for i in 0..self.slots.len() {
            if self.slots[i].op.is_none() {
                self.start_slot(i);
            }
        }
    }
}

fn memory_of(slot: &Slot) -> Memory {
    Memory {
        who: format!("soak-{}-{}", slot.name, slot.incarnation),
        lived: slot.started.elapsed(),
        warm: slot
            .samples
            .iter()
            .find(|(t, _)| *t >= WARM_UP)
            .map(|(_, k)| *k),
        end: slot.samples.last().map(|(_, k)| *k),
    }
}

fn fault_name(f: Fault) -> &'static str {
    match f {
        Fault::Latency => "latency",
        Fault::TooManyRequests => "429",
        Fault::ServerError => "5xx",
        Fault::ResetBefore => "reset before forwarding",
        Fault::ResetAfter => "reset after the answer",
        Fault::CutWatch => "cut watches",
        Fault::StalledLease => "stalled lease renewals",
    }
}

/// A quiet drill after the faults: the zone's pods go, the zone comes back, and the recovery is
/// measured (time to balanced, and the window the eviction bound is checked over).
async fn quiet_drill(soak: &mut Soak<'_>) -> Result<(Recovery, Duration), String> {
    let ctx = soak.ctx;
    let zone = soak.rng.pick(&ZONES).copied().unwrap_or(ZONE_A);
    soak.drill_out(zone).await;
    // Every replica back, in the other two zones.
    wait_for(
        "every replica Ready during the quiet drill",
        Duration::from_secs(180),
        || async {
            let want = desired(ctx).await?;
            let pods = all_pods(ctx).await;
            let done = soak.specs.iter().filter(|s| s.policy.is_some()).all(|s| {
                let ready = (pods.iter())
                    .filter(|p| healthy(p) && owned(p) && Spec::matches(p.labels(), &s.own))
                    .count() as i64;
                want.get(&s.name) == Some(&ready)
            }) && pods.iter().all(|p| p.metadata.deletion_timestamp.is_none());
            done.then_some(())
        },
    )
    .await;
    let pods = all_pods(ctx).await;
    let lower_bounds: BTreeMap<Workload, i64> = (soak.specs.iter())
        .filter(|s| s.policy.is_some() && !s.opted_out)
        .map(|s| {
            let counts = per_zone(ctx, &pods, &s.selector);
            (
                s.workload(),
                skewguard::core::topology::min_moves(&counts, 1, false),
            )
        })
        .collect();
    ctx.kubelet.uncordon_zone(zone).await;
    let from = jiff::Timestamp::now();
    let took = wait_balanced(ctx, soak.specs, "the quiet drill's recovery", BALANCE_BOUND).await?;
    let recovery = Recovery {
        name: format!("quiet drill of {zone}"),
        from,
        to: jiff::Timestamp::now(),
        lower_bounds,
    };
    Ok((recovery, took))
}

/// The soak for `duration` of faults and churn.
pub async fn soak(ctx: Ctx, duration: Duration) {
    let seed = std::env::var("SKEWGUARD_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| jiff::Timestamp::now().as_millisecond() as u64);
    println!(
        "\n  soak: {} min, seed {seed} (SKEWGUARD_SOAK_SEED replays its choices)",
        duration.as_secs() / 60
    );
    ctx.kubelet
        .ensure_nodes(&[(ZONE_A, 3), (ZONE_B, 3), (ZONE_C, 3)])
        .await;
    let specs = layout();
    let _argos = create(&ctx, &specs).await;
    wait_for("every workload Ready", Duration::from_secs(180), || async {
        let pods = all_pods(&ctx).await;
        let ok = specs.iter().all(|s| {
            let ready = pods
                .iter()
                .filter(|p| healthy(p) && Spec::matches(p.labels(), &s.own))
                .count();
            ready >= s.replicas as usize
        });
        ok.then_some(())
    })
    .await;

    let upstream = FaultProxy::upstream(&ctx.kubeconfig)
        .await
        .expect("the proxy's client");
    let rates = FaultRates {
        request: 0.05,
        watch_cut: 0.3,
        watch_cut_within: Duration::from_secs(60),
        lease_stall: 0.01,
        lease_duration: Duration::from_secs(LEASE_SECONDS),
        max_latency: Duration::from_millis(1500),
    };
    let proxy = FaultProxy::start(upstream, &SLOTS, seed, rates)
        .await
        .expect("start the fault proxy");
    let recorder = Recorder::start(ctx.client.clone(), &ctx.ns, LEASE, ctx.kubelet.clone()).await;
    for p in policies() {
        ctx.apply(&p).await;
    }
    let mut soak = Soak {
        ctx: &ctx,
        specs: &specs,
        proxy,
        slots: SLOTS
            .iter()
            .map(|name| Slot {
                name,
                incarnation: 0,
                op: None,
                started: Instant::now(),
                samples: Vec::new(),
                restart_at: None,
            })
            .collect(),
        logs: Vec::new(),
        crashes: Vec::new(),
        memories: Vec::new(),
        rng: Rng::new(seed ^ 0x5eed),
        churn: Churn::default(),
    };
    soak.start_slot(0);
    wait_for("a first leader", Duration::from_secs(60), || async {
        soak.leader_slot().await
    })
    .await;
    soak.start_slot(1);
    let governed = specs.iter().filter(|s| s.policy.is_some()).count();
    wait_for(
        "both policies reporting every workload",
        Duration::from_secs(120),
        || async {
            let one = policy_status(&ctx, "soak-one").await;
            let two = policy_status(&ctx, "soak-two").await;
            let n = one["workloadCount"].as_u64().unwrap_or(0)
                + two["workloadCount"].as_u64().unwrap_or(0);
            (n as usize == governed).then_some(())
        },
    )
    .await;
    add_foreign(&ctx, specs.iter().find(|s| s.name == "web").expect("web")).await;
    println!(
        "  soak: {} workloads ({governed} governed, and web-foreign's pods carrying web's labels and \
         hash), 3 zones x 3 nodes; chaos for {:?}",
        specs.len(),
        duration
    );

    // kube-scheduler and kube-controller-manager are started again when they exit, as a kubelet
    // would (kube-scheduler exits when an API server restart leaves its cache inconsistent).
    let controller_restarts = Arc::new(AtomicU32::new(0));
    let supervisor = ctx.apiserver.clone().map(|apiserver| {
        let counted = controller_restarts.clone();
        tokio::spawn(async move {
            loop {
                for name in apiserver.restart_exited_controllers() {
                    eprintln!("  soak: {name} exited; started again");
                    counted.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        })
    });
    let chaos_started = Instant::now();
    soak.chaos(duration).await;
    let faults_stopped = Instant::now();
    let mut failures: Vec<String> = Vec::new();
    let settle = wait_balanced(&ctx, &specs, "after the faults stopped", BALANCE_BOUND).await;
    let quiet = match &settle {
        Ok(_) => quiet_drill(&mut soak).await,
        Err(_) => Err("no quiet drill: the cluster never balanced after the faults".to_string()),
    };
    for e in [settle.as_ref().err(), quiet.as_ref().err()]
        .into_iter()
        .flatten()
    {
        failures.push(e.clone());
    }
    let settle = settle.unwrap_or(BALANCE_BOUND);
    let (recovery, recovered_in) = quiet.unwrap_or_else(|_| {
        let now = jiff::Timestamp::now();
        let none = Recovery {
            name: "none".into(),
            from: now,
            to: now,
            lower_bounds: BTreeMap::new(),
        };
        (none, BALANCE_BOUND)
    });
    soak.reap(Instant::now());
    soak.sample_memory();
    for i in 0..soak.slots.len() {
        soak.kill_slot(i);
    }

    let mut history: History = recorder.history();
    drop(recorder);
    history.requests = soak.proxy.records();
    let rules = Rules {
        governed: (specs.iter())
            .filter_map(|s| {
                let max = match s.policy? {
                    "two" => 2,
                    _ => 1,
                };
                Some((
                    s.workload(),
                    Governed {
                        max_disruptions: max,
                        cooldown: Duration::from_secs(COOLDOWN_SECONDS),
                    },
                ))
            })
            .collect(),
        lease_duration: Duration::from_secs(LEASE_SECONDS),
        replacement_timeout: REPLACEMENT_TIMEOUT,
        lag: Duration::from_secs(2),
        recoveries: vec![recovery.clone()],
    };
    let report = invariants::check(&history, &rules);
    let dump = ctx.work_dir.join(format!("soak-history-{seed}.txt"));
    let _ = std::fs::write(&dump, history.timeline().join("\n"));
    println!(
        "  history: {} (kept with SKEWGUARD_E2E_KEEP=1)",
        dump.display()
    );

    // Figures.
    let injected = soak.proxy.injected();
    let faults: Vec<String> = (Fault::ALL.iter())
        .map(|f| {
            format!(
                "{} {}",
                fault_name(*f),
                injected.get(f).copied().unwrap_or(0)
            )
        })
        .collect();
    println!(
        "  faults injected: {} (of {} requests through the proxy)",
        faults.join(", "),
        soak.proxy.requests()
    );
    if let Some(supervisor) = supervisor {
        supervisor.abort();
    }
    soak.churn.controller_restarts = controller_restarts.load(Ordering::Relaxed);
    println!("  churn: {:?}", soak.churn);
    let evictions: Vec<_> = history.evictions().collect();
    let by_replica: BTreeMap<&str, usize> = evictions.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.replica.as_str()).or_default() += 1;
        m
    });
    let refused = (history.requests.iter())
        .filter(|r| {
            matches!(
                r.target,
                skewguard_testbed::soak::history::Target::Eviction { .. }
            )
        })
        .count()
        - evictions.len();
    println!(
        "  evictions: {} carried out (by replica {by_replica:?}), {refused} more sent and refused, faulted or lost; \
         writes through the proxy: {}; leader changes: {}",
        evictions.len(),
        history.requests.len(),
        history.leader_changes()
    );
    println!(
        "  invariant checks: {} ({}), violations: {}",
        report.total_checks(),
        (report.checks.iter())
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        report.violations.len()
    );
    let recovery_evictions = evictions
        .iter()
        .filter(|r| r.at >= recovery.from && r.at <= recovery.to)
        .count();
    let worst = settle.max(recovered_in);
    println!(
        "  balance: {:.0}s after the faults stopped (chaos ran {:.0}s); {} recovered in {:.0}s with {recovery_evictions} \
         evictions (lower bound {}); worst time to balance {:.0}s (bound {}s)",
        settle.as_secs_f64(),
        (faults_stopped - chaos_started).as_secs_f64(),
        recovery.name,
        recovered_in.as_secs_f64(),
        recovery.lower_bounds.values().sum::<i64>(),
        worst.as_secs_f64(),
        BALANCE_BOUND.as_secs()
    );
    let judged: Vec<&Memory> = (soak.memories.iter())
        .filter(|m| m.lived >= WARM_UP * 2 && m.warm.is_some())
        .collect();
    let longest = soak.memories.iter().max_by_key(|m| m.lived).cloned();
    if let Some(m) = &longest {
        println!(
            "  memory: longest-lived replica {} ({:.0}s): VmRSS {} MiB after warm-up, {} MiB at the end; \
             {} of {} processes lived long enough to judge",
            m.who,
            m.lived.as_secs_f64(),
            m.warm
                .map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
            m.end
                .map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
            judged.len(),
            soak.memories.len()
        );
    }
    let panics: Vec<String> = (soak.logs.iter())
        .filter(|l| std::fs::read_to_string(l).is_ok_and(|t| t.contains("panicked")))
        .map(|l| l.display().to_string())
        .collect();
    println!(
        "  panics in {} operator logs: {}",
        soak.logs.len(),
        panics.len()
    );

    if !report.violations.is_empty() {
        failures.push(format!(
            "{} invariant violation(s):\n{}",
            report.violations.len(),
            (report.violations.iter().take(30))
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    if report.total_checks() == 0 {
        failures.push("no invariant was checked".into());
    }
    if evictions.is_empty() {
        failures.push("the soak evicted nothing: it tested little".into());
    }
    for m in judged {
        let (warm, end) = (m.warm.unwrap_or(0), m.end.unwrap_or(0));
        if end as f64 > warm as f64 * MEMORY_GROWTH {
            failures.push(format!(
                "{}'s resident memory grew from {warm} KiB after warm-up to {end} KiB",
                m.who
            ));
        }
    }
    if !panics.is_empty() {
        failures.push(format!("panicked: see {panics:?}"));
    }
    if !soak.crashes.is_empty() {
        failures.push(format!(
            "replicas exited after start-up: {:?}",
            soak.crashes
        ));
    }
    assert!(
        failures.is_empty(),
        "soak (seed {seed}) failed:\n{}",
        failures.join("\n")
    );
}
