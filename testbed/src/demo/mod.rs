//! The demo: the petclinic field story (`../shared/mission/scenarios.md`) told live on a real
//! control plane, with the real `skewguard` binary. [`story`] runs it in one namespace of an
//! [`Env`](crate::harness::Env) and returns what happened ([`Outcome`]); the `skewguard-demo`
//! binary starts the control plane around it, and the end-to-end suite runs it inside its own.
//!
//! The story: every petclinic pod piled into ap-northeast-2c (2a full, played by cordoning it);
//! `skewguard report` shows the single points of failure; the petclinic HAPolicy is applied and
//! the constraints injected; 2a gets room again and skewguard spreads web and was with the fewest
//! evictions; the field teams' zone drill (cordon 2a, delete its pods) piles them into 2c again,
//! and when 2a comes back skewguard spreads them back, which nothing did in the field. The report
//! after, and what `/metrics` says. Each rebalancing is held to the fewest evictions that could
//! do it ([`moves::fewest_moves`]), counted before the zone comes back.

pub mod moves;
pub mod screen;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DeleteParams, ListParams};
use serde_json::{Value, json};

use crate::fake_kubelet::{FakeKubelet, HOSTNAME_LABEL, ZONE_LABEL, is_ready};
use crate::fixtures::{deployment, rollout, rollout_replicaset, statefulset};
use crate::harness::{Ctx, OperatorProcess, hapolicy_resource, rollout_resource};
use crate::support::{
    FakeArgo, PodChurn, Sample, ZONE_A, ZONE_C, metric, pdb, scrape, start_operator,
};
use moves::fewest_moves_for_all;
use screen::{Row, Screen};

/// The policy's name (as in `config/samples/petclinic-hapolicy.yaml`).
pub const POLICY: &str = "petclinic";
/// The sample's 30 s stabilization and 300 s cooldown, shortened so the story fits in two minutes.
const STABILIZATION_SECONDS: i64 = 5;
const COOLDOWN_SECONDS: i64 = 5;
/// How long the table keeps watching after a rebalance looks done, to show that nothing more moves.
const QUIET: Duration = Duration::from_secs(6);
const STEP_TIMEOUT: Duration = Duration::from_secs(120);
const WAS_HASH: &str = "7d9f8c6b5";

/// One of the three petclinic workloads.
#[derive(Debug, Clone)]
struct Workload {
    kind: &'static str,
    name: &'static str,
    tier: &'static str,
    replicas: usize,
}

impl Workload {
    fn labels(&self) -> [(&'static str, &'static str); 2] {
        [("app", "petclinic"), ("tier", self.tier)]
    }

    fn owns(&self, pod: &Pod) -> bool {
        let l = pod.labels();
        l.get("app").map(String::as_str) == Some("petclinic")
            && l.get("tier").map(String::as_str) == Some(self.tier)
    }

    /// kubectl's short name (`deploy/web`): keeps the live table within 80 columns.
    fn short_title(&self) -> String {
        let kind = match self.kind {
            "Deployment" => "deploy",
            "StatefulSet" => "sts",
            _ => "rollout",
        };
        format!("{kind}/{}", self.name)
    }
}

/// What the story ended with, per workload.
#[derive(Debug, Clone)]
pub struct WorkloadOutcome {
    pub kind: String,
    pub name: String,
    /// Ready pods per zone at the end.
    pub ready_by_zone: BTreeMap<String, usize>,
    /// The policy's status says every constraint is within its maxSkew.
    pub balanced: bool,
    /// Evictions skewguard made (the status' `rebalance.actions`).
    pub evictions: u32,
    /// The same, from the operator's counter `skewguard_rebalance_actions_total{action="evict",result="success"}`.
    pub evictions_metric: Option<f64>,
    /// Pods whose deletion a pod watch saw after the constraints were in, less the drill's own
    /// deletions: skewguard's evictions as the cluster saw them.
    pub pods_evicted_seen: usize,
    /// The fewest evictions the rebalancings could have taken, summed over them.
    pub lower_bound: u32,
}

/// What the story ended with.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub workloads: Vec<WorkloadOutcome>,
    /// Workloads `skewguard report` called a single point of failure, before and after.
    pub spof_before: Vec<String>,
    pub spof_after: Vec<String>,
    /// The kind `was` ran as: Rollout when the Argo Rollouts CRD is installed, else Deployment.
    pub was_kind: String,
    pub seconds: f64,
}

impl Outcome {
    pub fn balanced(&self) -> bool {
        self.workloads.iter().all(|w| w.balanced)
    }

    pub fn evictions(&self) -> u32 {
        self.workloads.iter().map(|w| w.evictions).sum()
    }

    pub fn lower_bound(&self) -> u32 {
        self.workloads.iter().map(|w| w.lower_bound).sum()
    }

    /// One line: balanced or not, evictions against the bound, the single points of failure left.
    pub fn summary(&self) -> String {
        format!(
            "{} after {:.0}s: {} eviction(s), the fewest possible {}; single points of failure left: {}",
            if self.balanced() {
                "balanced"
            } else {
                "NOT balanced"
            },
            self.seconds,
            self.evictions(),
            self.lower_bound(),
            if self.spof_after.is_empty() {
                "none".to_string()
            } else {
                self.spof_after.join(", ")
            }
        )
    }
}

/// What keeps running after the story: the operator (and the Argo stand-in), for `--keep`.
/// Dropping it stops them.
pub struct Running {
    pub operator: OperatorProcess,
    _argo: Option<FakeArgo>,
}

/// Tells the story in `ctx`'s namespace (which must exist) on `screen`; panics, saying what it
/// was waiting for, when a step does not happen in time.
pub async fn story(ctx: &Ctx, screen: &mut Screen) -> (Outcome, Running) {
    let started = Instant::now();
    let was_kind = if ctx.rollout_crd {
        "Rollout"
    } else {
        "Deployment"
    };
    let workloads = vec![
        Workload {
            kind: "Deployment",
            name: "web",
            tier: "web",
            replicas: 2,
        },
        Workload {
            kind: was_kind,
            name: "was",
            tier: "was",
            replicas: 2,
        },
        Workload {
            kind: "StatefulSet",
            name: "redis-master",
            tier: "redis",
            replicas: 1,
        },
    ];
    let mut live = Live::new(ctx, workloads.clone());

    // 1. Two zones; petclinic piled into one.
    screen.heading("1. Two zones, four nodes, and petclinic piled into one zone");
    let nodes = ctx.kubelet.ensure_nodes(&[(ZONE_A, 2), (ZONE_C, 2)]).await;
    screen.say(&format!(
        "Nodes {} (zones {ZONE_A} and {ZONE_C}): a fake kubelet runs their pods; the API server, \
         scheduler and controllers are real.",
        nodes.join(", ")
    ));
    ctx.kubelet.cordon_zone(ZONE_A).await;
    screen.say(&format!(
        "{ZONE_A} is full when petclinic is deployed (played by cordoning its nodes), so the \
         scheduler puts every pod where there is room: {ZONE_C}."
    ));
    let mut argo = None;
    for w in &workloads {
        let labels = w.labels();
        match (w.kind, w.name) {
            ("StatefulSet", _) => {
                ctx.apply(&statefulset(w.name, w.replicas as u32, &labels))
                    .await;
            }
            ("Rollout", _) => {
                let applied = ctx
                    .apply(&rollout(w.name, w.replicas as u32, &labels))
                    .await;
                let uid = applied[0].uid().expect("the Rollout has a uid");
                ctx.apply(&rollout_replicaset(
                    w.name,
                    &uid,
                    WAS_HASH,
                    w.replicas as u32,
                    &labels,
                ))
                .await;
                argo = Some(FakeArgo::start(
                    ctx,
                    w.name,
                    &format!("{}-{WAS_HASH}", w.name),
                ));
            }
            _ => {
                ctx.apply(&deployment(w.name, w.replicas as u32, &labels))
                    .await;
            }
        }
    }
    ctx.apply(&pdb(
        "web",
        &workloads[0].labels(),
        json!({"minAvailable": 1}),
    ))
    .await;
    let was_note = if ctx.rollout_crd {
        "was (an Argo Rollout: the demo plays the Argo controller's part), 2 replicas"
    } else {
        "was (a Deployment here: the Argo Rollouts CRD is not installed), 2 replicas"
    };
    screen.say(&format!(
        "Applied web (Deployment, 2 replicas, a PodDisruptionBudget minAvailable 1), {was_note}, \
         redis-master (StatefulSet, 1 replica)."
    ));
    let piled = live
        .watch(
            screen,
            "every petclinic pod Ready in 2c",
            STEP_TIMEOUT,
            false,
            |s| s.all_in(ZONE_C) && s.settled_pods(),
        )
        .await;
    screen.block(&piled.pod_list());

    // 2. The report before.
    screen.heading("2. `skewguard report -n <namespace>`: where the replicas run, before");
    screen.block(&report_text(ctx).await);
    let spof_before = spofs(ctx).await;

    // 3. The policy; constraints injected.
    screen.heading("3. The petclinic HAPolicy (config/samples/petclinic-hapolicy.yaml)");
    let (policy_yaml, shown) = petclinic_policy(ctx);
    screen.block(&shown);
    screen.say(&format!(
        "(stabilizationSeconds {STABILIZATION_SECONDS} and cooldownSeconds {COOLDOWN_SECONDS} \
         instead of 30 and 300, so the story takes a minute, not ten)"
    ));
    ctx.apply(&policy_yaml).await;
    let op = start_operator(ctx, &[]);
    screen.say(
        "`skewguard run` started. It injects the constraints into each template (server-side \
         apply, field manager skewguard), two rollouts at a time (--max-concurrent-rollouts): \
         the third waits Queued. 2a is still full, so the rollouts stay in 2c.",
    );
    let mut bounds: BTreeMap<&str, u32> = BTreeMap::new();
    let mut first_settled: BTreeSet<&str> = BTreeSet::new();
    let open_zones = [ZONE_C];
    let injected = live
        .watch(
            screen,
            "constraints injected, rolled out and measured",
            STEP_TIMEOUT,
            true,
            |s| {
                // The fewest moves each workload needs once its rollout is done, over the nodes
                // the scheduler may use now (2a's are cordoned).
                for w in &s.workloads {
                    if s.template_settled(w.name) && first_settled.insert(w.name) {
                        *bounds.entry(w.name).or_default() += s.fewest_moves(w, &open_zones);
                    }
                }
                s.all_in(ZONE_C)
                    && s.settled_pods()
                    && s.workloads.iter().all(|w| s.template_settled(w.name))
                    && s.all_balanced()
            },
        )
        .await;
    screen.say(&format!(
        "Injected into web's template:\n{}",
        indent(&injected.injected_constraints("web"))
    ));

    // 4. 2a has room again: skewguard does what the field teams did by hand.
    screen.heading(&format!(
        "4. {ZONE_A} has room again; the scheduler never moves running pods, skewguard does"
    ));
    let churn = PodChurn::start(ctx).await;
    let both = [ZONE_A, ZONE_C];
    for w in &workloads {
        *bounds.entry(w.name).or_default() += injected.fewest_moves(w, &both);
    }
    ctx.kubelet.uncordon_zone(ZONE_A).await;
    screen.say(&format!(
        "Uncordoned {ZONE_A}. In the field this took a template edit and `kubectl rollout restart` \
         per workload; skewguard evicts the fewest pods, one at a time, within the PDB."
    ));
    live.watch(
        screen,
        "web and was spread 1+1, everything balanced",
        STEP_TIMEOUT,
        true,
        |s| s.spread_done(),
    )
    .await;
    live.hold(screen, QUIET).await;

    // 5. The zone drill.
    screen.heading(&format!(
        "5. The zone drill, as the field teams ran it: cordon {ZONE_A}, delete its pods"
    ));
    ctx.kubelet.cordon_zone(ZONE_A).await;
    let deleted = delete_pods_in(ctx, ZONE_A).await;
    screen.say(&format!(
        "Cordoned {ZONE_A} and deleted {} (the drill's deletions, not evictions).",
        deleted.join(", ")
    ));
    let drilled = live
        .watch(
            screen,
            "the replacements Ready in 2c",
            STEP_TIMEOUT,
            true,
            |s| s.all_in(ZONE_C) && s.settled_pods(),
        )
        .await;
    screen.say(
        "ScheduleAnyway kept the service up: the replacements landed in 2c. In the field, nothing \
         ever spread them back once 2a returned.",
    );

    // 6. The zone comes back.
    screen.heading(&format!("6. {ZONE_A} comes back"));
    for w in &workloads {
        *bounds.entry(w.name).or_default() += drilled.fewest_moves(w, &both);
    }
    ctx.kubelet.uncordon_zone(ZONE_A).await;
    screen.say(&format!(
        "Uncordoned {ZONE_A}; skewguard waits {STABILIZATION_SECONDS}s for the skew to hold, then \
         evicts."
    ));
    live.watch(
        screen,
        "web and was spread 1+1 again, everything balanced",
        STEP_TIMEOUT,
        true,
        |s| s.spread_done(),
    )
    .await;
    let last = live.hold(screen, QUIET).await;
    screen.freeze();

    // 7. The report after, and the metrics.
    screen.heading("7. `skewguard report`, after");
    screen.block(&report_text(ctx).await);
    let spof_after = spofs(ctx).await;
    screen.heading("What skewguard's /metrics says (a few key series)");
    let samples = scrape(&op).await;
    screen.block(&key_series(&samples, &ctx.ns));

    let outcome = Outcome {
        workloads: workloads
            .iter()
            .map(|w| WorkloadOutcome {
                kind: w.kind.to_string(),
                name: w.name.to_string(),
                ready_by_zone: last.ready_by_zone(w),
                balanced: last.entry(w.name)["balanced"] == json!(true),
                evictions: last.actions(w.name),
                evictions_metric: metric(
                    &samples,
                    "skewguard_rebalance_actions_total",
                    &[
                        ("namespace", &ctx.ns),
                        ("workload", w.name),
                        ("action", "evict"),
                        ("result", "success"),
                    ],
                ),
                pods_evicted_seen: churn
                    .deleted(&w.labels())
                    .iter()
                    .filter(|n| !deleted.contains(n))
                    .count(),
                lower_bound: bounds.get(w.name).copied().unwrap_or(0),
            })
            .collect(),
        spof_before,
        spof_after,
        was_kind: was_kind.to_string(),
        seconds: started.elapsed().as_secs_f64(),
    };
    screen.heading("The outcome");
    for w in &outcome.workloads {
        screen.say(&format!(
            "  {}/{}: {} eviction(s), the fewest possible {}",
            w.kind, w.name, w.evictions, w.lower_bound
        ));
    }
    screen.say(&outcome.summary());
    (
        outcome,
        Running {
            operator: op,
            _argo: argo,
        },
    )
}

/// The sample policy in `ctx`'s namespace with the demo's short windows, and its text to show.
fn petclinic_policy(ctx: &Ctx) -> (String, String) {
    let path = ctx.repo.join("config/samples/petclinic-hapolicy.yaml");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut policy: Value =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    policy["metadata"]["namespace"] = json!(ctx.ns);
    policy["spec"]["rebalance"]["stabilizationSeconds"] = json!(STABILIZATION_SECONDS);
    policy["spec"]["rebalance"]["cooldownSeconds"] = json!(COOLDOWN_SECONDS);
    let shown: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    (policy.to_string(), shown.join("\n"))
}

/// Deletes every pod of the namespace on a node of `zone`, as `kubectl delete pod` would; the names.
async fn delete_pods_in(ctx: &Ctx, zone: &str) -> Vec<String> {
    let mut deleted = Vec::new();
    for pod in ctx
        .api::<Pod>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        if node.and_then(|n| ctx.kubelet.zone_of(&n)).as_deref() == Some(zone) {
            let name = pod.name_any();
            ctx.api::<Pod>()
                .delete(&name, &DeleteParams::default())
                .await
                .unwrap_or_else(|e| panic!("delete pod {name}: {e}"));
            deleted.push(name);
        }
    }
    deleted.sort();
    deleted
}

/// `skewguard report -n <ns> [extra]`'s standard output (it panics when the report fails).
async fn run_report(ctx: &Ctx, extra: &[&str]) -> String {
    let mut cmd = std::process::Command::new(&ctx.operator_bin);
    cmd.args(["report", "-n", &ctx.ns])
        .args(extra)
        .env("KUBECONFIG", &ctx.kubeconfig)
        .env("NO_COLOR", "1");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run skewguard report");
    assert!(
        out.status.success(),
        "skewguard report: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

async fn report_text(ctx: &Ctx) -> String {
    run_report(ctx, &[]).await.trim_end().to_string()
}

/// The workloads `skewguard report -o json` calls a single point of failure.
async fn spofs(ctx: &Ctx) -> Vec<String> {
    let report: Value = serde_json::from_str(&run_report(ctx, &["-o", "json"]).await)
        .expect("skewguard report -o json prints JSON");
    let mut names: Vec<String> = report["workloads"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["worstDomainLoss"]["singlePointOfFailure"] == json!(true))
        .filter_map(|w| w["name"].as_str().map(String::from))
        .collect();
    names.sort();
    names
}

/// The series a person would look at first: pods per zone, skew, balanced, domain-loss ratio
/// and evictions, of this namespace's workloads, with the labels that tell them apart.
fn key_series(samples: &[Sample], ns: &str) -> String {
    let wanted = [
        ("skewguard_workload_domain_pods", Some(ZONE_LABEL)),
        ("skewguard_workload_skew", Some(ZONE_LABEL)),
        ("skewguard_workload_balanced", None),
        ("skewguard_workload_domain_loss_ratio", None),
        ("skewguard_rebalance_actions_total", None),
    ];
    let mut lines = Vec::new();
    for (name, key) in wanted {
        for s in samples.iter().filter(|s| s.name == name) {
            if s.labels.get("namespace").map(String::as_str) != Some(ns) {
                continue;
            }
            if key.is_some_and(|k| s.labels.get("topology_key").map(String::as_str) != Some(k)) {
                continue;
            }
            let labels: Vec<String> = ["workload", "domain", "action", "result"]
                .iter()
                .filter_map(|k| s.labels.get(*k).map(|v| format!("{k}=\"{v}\"")))
                .collect();
            lines.push(format!("{name}{{{}}} {}", labels.join(","), s.value));
        }
    }
    if lines.is_empty() {
        "(no series for this namespace)".to_string()
    } else {
        lines.join("\n")
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the story looks at, every half second: the namespace's pods, the policy's status, the
/// workloads' objects, and skewguard's Events.
struct Live<'a> {
    ctx: &'a Ctx,
    workloads: Vec<Workload>,
    /// Events already told, with their repetition count.
    told: BTreeMap<String, i32>,
}

/// One look at the cluster.
struct Snapshot {
    workloads: Vec<Workload>,
    kubelet: FakeKubelet,
    pods: Vec<Pod>,
    status: Value,
    /// Per workload name: its object as JSON (Null when not found).
    objects: BTreeMap<&'static str, Value>,
}

impl<'a> Live<'a> {
    fn new(ctx: &'a Ctx, workloads: Vec<Workload>) -> Live<'a> {
        Live {
            ctx,
            workloads,
            told: BTreeMap::new(),
        }
    }

    async fn snapshot(&self) -> Snapshot {
        let pods = self
            .ctx
            .api::<Pod>()
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let status = self
            .ctx
            .dynamic(&hapolicy_resource())
            .get_opt(POLICY)
            .await
            .ok()
            .flatten()
            .and_then(|p| p.data.get("status").cloned())
            .unwrap_or(Value::Null);
        let mut objects = BTreeMap::new();
        for w in &self.workloads {
            objects.insert(w.name, self.object(w).await);
        }
        Snapshot {
            workloads: self.workloads.clone(),
            kubelet: self.ctx.kubelet.clone(),
            pods,
            status,
            objects,
        }
    }

    async fn object(&self, w: &Workload) -> Value {
        let resource = match w.kind {
            "Deployment" => ApiResource::erase::<Deployment>(&()),
            "StatefulSet" => ApiResource::erase::<StatefulSet>(&()),
            _ => rollout_resource(),
        };
        self.ctx
            .dynamic(&resource)
            .get_opt(w.name)
            .await
            .ok()
            .flatten()
            .map(|o| serde_json::to_value(o).unwrap())
            .unwrap_or(Value::Null)
    }

    /// skewguard's Events about the workloads that were not told yet, one line each.
    async fn new_events(&mut self) -> Vec<String> {
        let api: Api<Event> = self.ctx.api();
        let Ok(list) = api.list(&ListParams::default()).await else {
            return Vec::new();
        };
        let mut events: Vec<Event> = list
            .items
            .into_iter()
            .filter(|e| e.reporting_controller.as_deref() == Some("skewguard"))
            .filter(|e| e.regarding.as_ref().and_then(|r| r.kind.as_deref()) != Some("HAPolicy"))
            .collect();
        events.sort_by_key(|e| e.metadata.creation_timestamp.clone().map(|t| t.0));
        let mut lines = Vec::new();
        for e in events {
            let count = e.series.as_ref().map_or(1, |s| s.count.max(1));
            let key = e.uid().unwrap_or_default();
            if self.told.get(&key).is_some_and(|&c| c >= count) {
                continue;
            }
            self.told.insert(key, count);
            let regarding = e
                .regarding
                .as_ref()
                .map(|r| {
                    format!(
                        "{}/{}",
                        r.kind.clone().unwrap_or_default(),
                        r.name.clone().unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            // A repetition keeps the note of the first Event of its series (kube-runtime's
            // Recorder keys a series without the note), so only its count is news.
            let told = if count > 1 {
                format!(" (×{count})")
            } else {
                format!(": {}", e.note.clone().unwrap_or_default())
            };
            lines.push(format!(
                "  event {} on {regarding}{told}",
                e.reason.unwrap_or_default(),
            ));
        }
        lines
    }

    /// Looks every half second (telling new Events, and drawing the table when `table`) until
    /// `done` holds; panics after `timeout`, saying what it waited for and what it saw last.
    async fn watch(
        &mut self,
        screen: &mut Screen,
        what: &str,
        timeout: Duration,
        table: bool,
        mut done: impl FnMut(&Snapshot) -> bool,
    ) -> Snapshot {
        let start = Instant::now();
        loop {
            let snap = self.look(screen, what, table).await;
            if done(&snap) {
                return snap;
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; last seen:\n{}",
                    screen::table(&snap.rows()).join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Keeps the table live for `how_long` (to show that nothing more moves); the last look.
    async fn hold(&mut self, screen: &mut Screen, how_long: Duration) -> Snapshot {
        let until = Instant::now() + how_long;
        let mut snap = self
            .look(screen, "watching: nothing more moves", true)
            .await;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(500)).await;
            snap = self
                .look(screen, "watching: nothing more moves", true)
                .await;
        }
        snap
    }

    async fn look(&mut self, screen: &mut Screen, what: &str, table: bool) -> Snapshot {
        let snap = self.snapshot().await;
        for line in self.new_events().await {
            screen.say(&line);
        }
        if table {
            let title = format!("  {:.0}s · {what}", screen.elapsed());
            screen.show(title, snap.rows());
        }
        snap
    }
}

impl Snapshot {
    fn zone_of(&self, pod: &Pod) -> Option<String> {
        let node = pod.spec.as_ref()?.node_name.as_ref()?;
        self.kubelet.zone_of(node)
    }

    fn zones(&self) -> Vec<String> {
        let zones: BTreeSet<String> = self.kubelet.zones().into_values().collect();
        zones.into_iter().collect()
    }

    fn live_ready<'p>(&'p self, w: &'p Workload) -> impl Iterator<Item = &'p Pod> {
        self.pods
            .iter()
            .filter(move |p| w.owns(p) && p.metadata.deletion_timestamp.is_none() && is_ready(p))
    }

    fn ready_by_zone(&self, w: &Workload) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for p in self.live_ready(w) {
            *counts
                .entry(self.zone_of(p).unwrap_or_default())
                .or_insert(0) += 1;
        }
        counts
    }

    /// The fewest evictions that fix `w`'s spread over the nodes of `zones` (all of them
    /// schedulable), for every spread key of the policy.
    fn fewest_moves(&self, w: &Workload, zones: &[&str]) -> u32 {
        let nodes: BTreeMap<String, String> = self
            .kubelet
            .zones()
            .into_iter()
            .filter(|(_, z)| zones.contains(&z.as_str()))
            .collect();
        let mut by_zone: BTreeMap<&str, u32> = zones.iter().map(|z| (*z, 0)).collect();
        let mut by_node: BTreeMap<&str, u32> = nodes.keys().map(|n| (n.as_str(), 0)).collect();
        for p in self.live_ready(w) {
            let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
                continue;
            };
            if let Some(zone) = nodes.get(node) {
                *by_zone.get_mut(zone.as_str()).unwrap() += 1;
                *by_node.get_mut(node).unwrap() += 1;
            }
        }
        // The petclinic policy's spread: zone maxSkew 1, hostname maxSkew 1.
        fewest_moves_for_all(&[
            (by_zone.into_values().collect(), self.max_skew(ZONE_LABEL)),
            (
                by_node.into_values().collect(),
                self.max_skew(HOSTNAME_LABEL),
            ),
        ])
    }

    /// The maxSkew the status reports for `key` (1, the policy's, until there is a status).
    fn max_skew(&self, key: &str) -> u32 {
        self.status["workloads"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|w| w["constraints"].as_array().into_iter().flatten())
            .find(|c| c["topologyKey"] == key)
            .and_then(|c| c["maxSkew"].as_u64())
            .unwrap_or(1) as u32
    }

    /// Every pod Ready, none starting or leaving, each workload at its replicas.
    fn settled_pods(&self) -> bool {
        self.workloads.iter().all(|w| {
            let mine: Vec<&Pod> = self.pods.iter().filter(|p| w.owns(p)).collect();
            mine.len() == w.replicas
                && mine
                    .iter()
                    .all(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
        })
    }

    fn all_in(&self, zone: &str) -> bool {
        self.workloads
            .iter()
            .all(|w| self.ready_by_zone(w) == BTreeMap::from([(zone.to_string(), w.replicas)]))
    }

    /// web and was one pod per zone, redis-master wherever it is, every pod settled, the status
    /// balanced and nothing in flight.
    fn spread_done(&self) -> bool {
        let one_each = BTreeMap::from([(ZONE_A.to_string(), 1), (ZONE_C.to_string(), 1)]);
        self.settled_pods()
            && self
                .workloads
                .iter()
                .filter(|w| w.replicas == 2)
                .all(|w| self.ready_by_zone(w) == one_each)
            && self.all_balanced()
            && self.workloads.iter().all(|w| {
                let e = self.entry(w.name);
                e["rebalance"]["state"] == "Idle"
                    && e["rebalance"]["memory"]["inFlight"]
                        .as_array()
                        .is_none_or(|a| a.is_empty())
            })
    }

    /// The policy's status entry of workload `name` (Null when none yet).
    fn entry(&self, name: &str) -> Value {
        self.status["workloads"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|w| w["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn actions(&self, name: &str) -> u32 {
        self.entry(name)["rebalance"]["actions"]
            .as_u64()
            .unwrap_or(0) as u32
    }

    fn all_balanced(&self) -> bool {
        self.workloads
            .iter()
            .all(|w| self.entry(w.name)["balanced"] == json!(true))
    }

    fn constraints_of(&self, name: &str) -> &Value {
        &self.objects[name]["spec"]["template"]["spec"]["topologySpreadConstraints"]
    }

    /// The template carries constraints and its controller has rolled it out to every replica.
    fn template_settled(&self, name: &str) -> bool {
        let Some(w) = self.workloads.iter().find(|w| w.name == name) else {
            return false;
        };
        let o = &self.objects[name];
        let s = &o["status"];
        let generation = o["metadata"]["generation"].as_i64().unwrap_or(-1);
        let replicas = json!(w.replicas);
        let rolled_out = match w.kind {
            "Deployment" => {
                s["observedGeneration"] == json!(generation)
                    && s["updatedReplicas"] == replicas
                    && s["readyReplicas"] == replicas
                    && s["replicas"] == replicas
            }
            "StatefulSet" => {
                s["observedGeneration"] == json!(generation)
                    && s["currentRevision"] == s["updateRevision"]
                    && s["readyReplicas"] == replicas
            }
            // Argo writes observedGeneration as a string.
            _ => {
                s["observedGeneration"] == json!(generation.to_string())
                    && s["readyReplicas"] == replicas
            }
        };
        rolled_out
            && self
                .constraints_of(name)
                .as_array()
                .is_some_and(|c| !c.is_empty())
    }

    /// The spread constraints in `name`'s template, as YAML.
    fn injected_constraints(&self, name: &str) -> String {
        serde_yaml::to_string(self.constraints_of(name))
            .unwrap_or_default()
            .trim_end()
            .to_string()
    }

    /// `kubectl get pods -o wide`, shortened: name, node, zone.
    fn pod_list(&self) -> String {
        let mut lines = vec![format!("{:<28} {:<24} ZONE", "POD", "NODE")];
        let mut pods: Vec<&Pod> = self.pods.iter().collect();
        pods.sort_by_key(|p| p.name_any());
        for p in pods {
            let node = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            lines.push(format!(
                "{:<28} {:<24} {}",
                p.name_any(),
                node,
                self.zone_of(p).unwrap_or_default()
            ));
        }
        lines.join("\n")
    }

    fn rows(&self) -> Vec<Row> {
        let zones = self.zones();
        self.workloads
            .iter()
            .map(|w| {
                let ready = self.ready_by_zone(w);
                let cells = zones
                    .iter()
                    .map(|z| {
                        let (mut starting, mut leaving) = (0, 0);
                        for p in self.pods.iter().filter(|p| w.owns(p)) {
                            if self.zone_of(p).as_deref() != Some(z.as_str()) {
                                continue;
                            }
                            if p.metadata.deletion_timestamp.is_some() {
                                leaving += 1;
                            } else if !is_ready(p) {
                                starting += 1;
                            }
                        }
                        let mut cell = ready.get(z).copied().unwrap_or(0).to_string();
                        if starting > 0 {
                            cell.push_str(&format!(" +{starting}"));
                        }
                        if leaving > 0 {
                            cell.push_str(&format!(" -{leaving}"));
                        }
                        (short_zone(z), cell)
                    })
                    .collect();
                let e = self.entry(w.name);
                let zone = e["constraints"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c["topologyKey"] == ZONE_LABEL);
                let skew = match zone {
                    Some(c) => {
                        let (skew, max) = (&c["skew"], &c["maxSkew"]);
                        if skew.as_i64() > max.as_i64() {
                            format!("{skew} > {max}")
                        } else {
                            skew.to_string()
                        }
                    }
                    None => "-".to_string(),
                };
                let (state, reason) = if e.is_null() {
                    ("-".to_string(), String::new())
                } else {
                    (
                        e["rebalance"]["state"].as_str().unwrap_or("").to_string(),
                        e["rebalance"]["reason"].as_str().unwrap_or("").to_string(),
                    )
                };
                Row {
                    workload: w.short_title(),
                    zones: cells,
                    skew,
                    state,
                    reason,
                    evictions: self.actions(w.name).to_string(),
                }
            })
            .collect()
    }
}

/// `2a` for `ap-northeast-2a`: the table's column names.
fn short_zone(zone: &str) -> String {
    zone.rsplit('-').next().unwrap_or(zone).to_string()
}

/// Whether `path` looks like a repository with the sample policy and CRDs the demo needs.
pub fn repo_ok(path: &Path) -> bool {
    path.join("config/samples/petclinic-hapolicy.yaml")
        .is_file()
        && path.join("crds").is_dir()
}
