//! What one reconcile costs the operator, measured on the path the controller takes: the
//! namespace's snapshot from the pod index and the shared node set, then the pure pipeline's
//! policy phase (`prepare`: selection, governing policy, budgets, zone health) and `assess` for
//! each workload.
//!
//! Sizes follow Kubernetes' documented limits: 150,000 pods over 5,000 nodes (500 namespaces x 30
//! Deployments x 10 pods, 3 zones), with the 1,000- and 10,000-pod points for the growth curve.
//! Targets: one workload's reconcile (snapshot + assess) under 1 ms; the whole cluster under 300 ms.
//! `gather` is what a reconcile reads from the caches besides the snapshot: its namespace's
//! workloads (converted) and, for each, whether a PodDisruptionBudget blocks it; with every
//! Deployment covered by a budget, it should not grow with the cluster.
//! `cargo test --benches` runs each once on the small sizes only; `BENCH_NO_COST=1` turns the
//! deletion-cost part of `assess` off, to see what it adds.
//!
//! Against an older commit, compare the same work on the same fleet: since the end of round 2
//! (f09afca) each pod has a ReplicaSet owner and its `pod-template-hash` label (owned pods), and
//! what the controller then worked out outside `assess` (selection, governing policy, budgets) is
//! measured in `prepare`. `benches/baseline-f09afca.patch` gives f09afca's bench both (`git
//! worktree add /tmp/base f09afca && git -C /tmp/base apply $PWD/benches/baseline-f09afca.patch`).

use std::hint::black_box;

// The operator's allocator (see `src/main.rs`): the reconcile is measured as it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::PodCondition;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::DynamicObject;
use kube::runtime::watcher::Event;
use serde_json::json;
use skewguard::api::{HAPolicy, WorkloadKind};
use skewguard::core::budgets::budget_exhausted;
use skewguard::core::injection::AdmissionSupport;
use skewguard::core::pipeline::{Gathered, Lane, PolicyPhase, Settings, WorkloadMemory, prepare};
use skewguard::core::rollout_slots::RolloutPermit;
use skewguard::core::snapshot::{LeanPod, LeanPodSpec, LeanPodStatus};
use skewguard::core::topology::{Cluster, HOSTNAME_KEY, Node, NodeSet, Resources, ZONE_KEY};
use skewguard::core::workload::WorkloadObject;
use skewguard::shell::controller::pod_index::PodIndex;
use skewguard::shell::controller::stores::Stores;

const ZONES: usize = 3;
const DEPLOYMENTS_PER_NAMESPACE: usize = 30;
const PODS_PER_DEPLOYMENT: usize = 10;

struct Fleet {
    nodes: Arc<NodeSet>,
    pods: PodIndex,
    /// Each namespace with its policy, its Deployments (read) and their budgets.
    namespaces: Vec<(
        String,
        HAPolicy,
        Vec<WorkloadObject>,
        Vec<PodDisruptionBudget>,
    )>,
    /// The same Deployments as the workload watch caches them, each with a budget.
    stores: Stores,
}

fn node(i: usize) -> Node {
    let name = format!("node-{i:05}");
    Node {
        labels: [
            (ZONE_KEY.to_string(), format!("zone-{}", i % ZONES)),
            (HOSTNAME_KEY.to_string(), name.clone()),
        ]
        .into(),
        name,
        ready: true,
        allocatable: Resources::new(64_000, 256 << 30, 110),
        ..Default::default()
    }
}

fn lean_pod(name: String, namespace: &str, app: &str, node: String) -> LeanPod {
    LeanPod {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_string()),
            uid: Some(format!("{namespace}-{name}")),
            labels: Some(
                [
                    ("app".to_string(), app.to_string()),
                    ("pod-template-hash".to_string(), "h1".to_string()),
                ]
                .into(),
            ),
            owner_references: Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: format!("{app}-h1"),
                    controller: Some(true),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        },
        spec: LeanPodSpec {
            node_name: Some(node),
            settled_requests: Some(Resources::new(100, 128 << 20, 1)),
            ..Default::default()
        },
        status: LeanPodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
        },
    }
}

fn deployment(namespace: &str, app: &str) -> k8s_openapi::api::apps::v1::Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": app, "namespace": namespace, "generation": 1,
                     "labels": {"team": namespace}},
        "spec": {"replicas": PODS_PER_DEPLOYMENT, "selector": {"matchLabels": {"app": app}},
                 "template": {"metadata": {"labels": {"app": app}},
                              "spec": {"containers": [{"name": "c", "image": "i",
                                       "resources": {"requests": {"cpu": "100m"}}}]}}},
        "status": {"observedGeneration": 1, "replicas": PODS_PER_DEPLOYMENT,
                   "updatedReplicas": PODS_PER_DEPLOYMENT, "readyReplicas": PODS_PER_DEPLOYMENT,
                   "availableReplicas": PODS_PER_DEPLOYMENT}
    }))
    .expect("a valid Deployment")
}

/// A budget over one Deployment's pods that allows a disruption.
fn budget(namespace: &str, app: &str) -> PodDisruptionBudget {
    serde_json::from_value(json!({
        "metadata": {"name": app, "namespace": namespace, "generation": 1},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": app}}},
        "status": {"observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 10,
                   "desiredHealthy": 9, "expectedPods": 10}
    }))
    .expect("a valid PodDisruptionBudget")
}

fn policy(namespace: &str) -> HAPolicy {
    serde_json::from_value(json!({
        "apiVersion": "skewguard.dev/v1alpha1", "kind": "HAPolicy",
        "metadata": {"name": "spread", "namespace": namespace},
        "spec": {"selector": {"matchLabels": {"team": namespace}},
                 "spread": [{"topologyKey": ZONE_KEY, "maxSkew": 1},
                            {"topologyKey": HOSTNAME_KEY, "maxSkew": 1}],
                 "rebalance": {"stabilizationSeconds": 0},
                 "scaleIn": {"deletionCost": std::env::var_os("BENCH_NO_COST").is_none()}}
    }))
    .expect("a valid HAPolicy")
}

/// `pods` pods: namespaces of 30 Deployments x 10 pods over one node per 30 pods; one Deployment
/// in ten has every pod piled into one zone, the others are spread round-robin.
fn fleet(pods: usize) -> Fleet {
    // A whole number of nodes per zone, so the round-robin spread does not wrap unevenly.
    let node_count = (pods / 30).max(ZONES * 10).div_ceil(ZONES) * ZONES;
    let nodes: Vec<Node> = (0..node_count).map(node).collect();
    let index = PodIndex::default();
    let mut namespaces = Vec::new();
    let (mut cached, mut budgets) = (Vec::new(), Vec::new());
    let per_namespace = DEPLOYMENTS_PER_NAMESPACE * PODS_PER_DEPLOYMENT;
    for n in 0..pods / per_namespace {
        let namespace = format!("team-{n:03}");
        let (mut workloads, mut namespace_budgets) = (Vec::new(), Vec::new());
        for d in 0..DEPLOYMENTS_PER_NAMESPACE {
            let app = format!("app-{d:02}");
            let w = n * DEPLOYMENTS_PER_NAMESPACE + d;
            for p in 0..PODS_PER_DEPLOYMENT {
                let at = if w.is_multiple_of(10) {
                    (w + p * ZONES) % node_count / ZONES * ZONES
                } else {
                    (w * 7 + p) % node_count
                };
                let pod = lean_pod(
                    format!("{app}-{p}"),
                    &namespace,
                    &app,
                    nodes[at].name.clone(),
                );
                index.handle(Event::Apply(pod));
            }
            let d = deployment(&namespace, &app);
            workloads.push(WorkloadObject::from_object(&d).expect("a readable Deployment"));
            let as_watched = serde_json::to_value(&d).expect("a Deployment as JSON");
            cached.push(serde_json::from_value::<DynamicObject>(as_watched).expect("dynamic"));
            budgets.push(budget(&namespace, &app));
            namespace_budgets.push(budget(&namespace, &app));
        }
        namespaces.push((
            namespace.clone(),
            policy(&namespace),
            workloads,
            namespace_budgets,
        ));
    }
    Fleet {
        nodes: Arc::new(NodeSet::new(nodes)),
        pods: index,
        namespaces,
        stores: Stores::fixed(Vec::new(), Vec::new(), cached, budgets),
    }
}

/// The controller's snapshot of one namespace.
fn snapshot(fleet: &Fleet, namespace: &str) -> Cluster {
    let free = fleet.pods.free_on(&fleet.nodes);
    Cluster::with_free_room(fleet.nodes.clone(), fleet.pods.pods_in(namespace), free)
}

/// A cluster that serves no MutatingAdmissionPolicy: the policies write their templates.
static TEMPLATE_MODE: AdmissionSupport = AdmissionSupport {
    served: false,
    policy_installed: false,
    binding_installed: false,
    warnings: Vec::new(),
};

/// The controller's policy phase over one namespace's (already read) workloads and budgets.
fn phase<'a>(
    policy: &'a HAPolicy,
    workloads: &'a [WorkloadObject],
    budgets: &'a [PodDisruptionBudget],
    cluster: &'a Cluster,
    now: Timestamp,
) -> PolicyPhase<'a> {
    prepare(Gathered {
        policy,
        policies: vec![policy],
        workloads: workloads.iter().map(Ok).collect(),
        budgets: budgets.iter().collect(),
        admission: Some(&TEMPLATE_MODE),
        pods_current: true,
        nodepools: None,
        capacity_via: skewguard::api::CapacityVia::PlaceholderPods,
        nodes: cluster.node_set(),
        now,
    })
}

/// Snapshot, policy phase and assess for every workload of every namespace: the writes the
/// pass would make.
fn reconcile_all(fleet: &Fleet, now: Timestamp) -> usize {
    let memory = WorkloadMemory::default();
    let settings = Settings::default();
    fleet
        .namespaces
        .iter()
        .map(|(namespace, policy, workloads, budgets)| {
            let cluster = snapshot(fleet, namespace);
            let phase = phase(policy, workloads, budgets, &cluster, now);
            phase
                .workloads
                .iter()
                .map(|w| {
                    let granted = RolloutPermit::Granted;
                    // Deletion costs are computed too (part of the cost), not counted here.
                    (phase
                        .assess(w, &cluster, &memory, granted, &settings, now)
                        .writes)
                        .iter()
                        .filter(|w| w.lane() == Lane::Workload)
                        .count()
                })
                .sum::<usize>()
        })
        .sum()
}

/// One namespace's workloads from the workload cache, and whether a budget blocks each: (read,
/// blocked).
fn gather(fleet: &Fleet, namespace: &str) -> (usize, usize) {
    let workloads = fleet
        .stores
        .workloads(namespace, &[WorkloadKind::Deployment]);
    let budgets = fleet.stores.budgets(namespace);
    let blocked = (workloads.iter().flatten())
        .filter(|w| {
            let budgets = budgets.iter().map(AsRef::as_ref);
            budget_exhausted(budgets, namespace, w.template_labels())
        })
        .count();
    (workloads.iter().flatten().count(), blocked)
}

fn sizes() -> Vec<usize> {
    // Under `cargo test --benches` (no --bench flag) only the small points run, once.
    if std::env::args().any(|a| a == "--bench") {
        vec![1_000, 10_000, 150_000]
    } else {
        vec![1_200]
    }
}

fn bench(c: &mut Criterion) {
    let now: Timestamp = "2026-06-01T00:00:00Z".parse().expect("a timestamp");
    let mut group = c.benchmark_group("reconcile");
    group.sample_size(10);
    for pods in sizes() {
        let fleet = fleet(pods);
        let writes = reconcile_all(&fleet, now);
        // Each piled Deployment gets its constraints injected and one eviction; the others only
        // their constraints.
        let workloads = fleet.namespaces.len() * DEPLOYMENTS_PER_NAMESPACE;
        assert_eq!(writes, workloads + workloads.div_ceil(10), "{pods} pods");
        group.bench_function(BenchmarkId::new("whole_cluster", pods), |b| {
            b.iter(|| black_box(reconcile_all(&fleet, now)))
        });
        let (namespace, policy, workloads, budgets) = &fleet.namespaces[fleet.namespaces.len() / 2];
        assert_eq!(gather(&fleet, namespace), (DEPLOYMENTS_PER_NAMESPACE, 0));
        group.bench_function(BenchmarkId::new("gather", pods), |b| {
            b.iter(|| black_box(gather(&fleet, namespace)))
        });
        let memory = WorkloadMemory::default();
        let settings = Settings::default();
        let nodes = snapshot(&fleet, namespace);
        let phase = phase(policy, workloads, budgets, &nodes, now);
        let first = &phase.workloads[0];
        group.bench_function(BenchmarkId::new("one_workload", pods), |b| {
            b.iter(|| {
                let cluster = snapshot(&fleet, namespace);
                let granted = RolloutPermit::Granted;
                black_box(phase.assess(first, &cluster, &memory, granted, &settings, now))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
