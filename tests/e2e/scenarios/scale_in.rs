//! Scale-in that stays balanced (issue 12), on the real ReplicaSet controller, and the admission
//! policies that narrow skewguard's `patch` rights to the fields it owns.
//!
//! The layout every scale-in scenario starts from: three zones of two nodes, the Deployment spread
//! evenly over the zones, and in zone 2a all of its pods on one node (the newest pods of 2b and 2c
//! each on a node of their own). Left to itself, the ReplicaSet controller deletes the pods that
//! share a node first ("doubled up"), so it empties 2a. With the deletion costs of
//! `topology::deletion_cost` on the pods, it takes one pod per zone per round and ends 1/1/1.
//!
//! - `scale_in_6_to_3`, `scale_in_9_to_3`: `skewguard run` keeps the costs (the default); the
//!   scale-in ends 1/1/1 at once, nothing is evicted and no pod is created.
//! - `scale_in_*_turned_off`: the same with `scaleIn.deletionCost: false`: they prove the costs
//!   matter.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::Selector;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use skewguard::core::snapshot::{LeanPod, node_from, pod_from};
use skewguard::core::topology::deletion_cost::{DELETION_COST_ANNOTATION, current_costs};
use skewguard::core::topology::{
    Cluster, HOSTNAME_KEY, PodTemplate, SpreadConstraint, WhenUnsatisfiable, Workload,
    cost_patches, deletion_costs,
};

use super::fixtures::deployment;
use super::support::{
    SKEWGUARD, ZONE_KEY, hapolicy, metric, scale_deployment as scale, scrape, start_operator,
    workload_status,
};
use crate::fake_kubelet::{count_by_zone, is_ready, node_name};
use crate::harness::{Ctx, wait_for};

const ZONES: [&str; 3] = ["ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"];
const WAIT: Duration = Duration::from_secs(90);
/// The operator's ServiceAccount, as config/rbac names it.
const OPERATOR_NS: &str = "skewguard-system";
const OPERATOR_SA: &str = "skewguard";

pub(super) fn operator_user() -> String {
    format!("system:serviceaccount:{OPERATOR_NS}:{OPERATOR_SA}")
}

/// A Deployment whose pods spread over zones (DoNotSchedule, maxSkew 1).
fn spread_deployment(name: &str, replicas: usize) -> String {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "topologySpreadConstraints": [{
                        "topologyKey": ZONE_KEY, "maxSkew": 1,
                        "whenUnsatisfiable": "DoNotSchedule",
                        "labelSelector": {"matchLabels": {"app": name}}
                    }],
                    "containers": [{"name": "app", "image": "nginx:1.27",
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]
                }
            }
        }
    })
    .to_string()
}

async fn cordon(ctx: &Ctx, node: &str, cordoned: bool) {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    nodes
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": cordoned}})),
        )
        .await
        .unwrap_or_else(|e| panic!("cordon {node}: {e}"));
}

/// Not terminating pods of `app`.
async fn live_pods(ctx: &Ctx, app: &str) -> Vec<Pod> {
    ctx.pods(&format!("app={app}"))
        .await
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn per_node(pods: &[Pod]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for p in pods {
        let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
        *out.entry(node.unwrap_or_default()).or_default() += 1;
    }
    out
}

/// Waits until exactly `want` pods of `app` per node are Ready (and none other is alive).
async fn wait_per_node(ctx: &Ctx, app: &str, want: &BTreeMap<String, usize>) {
    let start = Instant::now();
    loop {
        let pods = live_pods(ctx, app).await;
        let have = per_node(&pods);
        if &have == want && pods.iter().all(is_ready) {
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "pods of {app} per node: wanted {want:?}, still {have:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `per_zone` pods of `app` in each zone, those of 2a all on `2a-node-0`; in 2b and 2c one old
/// pod on node 0 and the newer ones on node 1. Every node uncordoned at the end.
async fn skewed_layout(ctx: &Ctx, app: &str, per_zone: usize) {
    ctx.kubelet
        .ensure_nodes(&[(ZONES[0], 2), (ZONES[1], 2), (ZONES[2], 2)])
        .await;
    let n = |z: usize, i: usize| node_name(ZONES[z], i);
    // One pod per zone, on node 0.
    for z in 0..3 {
        cordon(ctx, &n(z, 1), true).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    ctx.apply(&spread_deployment(app, 3)).await;
    let first: BTreeMap<String, usize> = (0..3).map(|z| (n(z, 0), 1)).collect();
    wait_per_node(ctx, app, &first).await;
    // The newer pods: 2a has only node 0, 2b and 2c only node 1.
    for z in 1..3 {
        cordon(ctx, &n(z, 0), true).await;
        cordon(ctx, &n(z, 1), false).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    scale(ctx, app, 3 * per_zone).await;
    let mut layout = BTreeMap::from([(n(0, 0), per_zone)]);
    for z in 1..3 {
        layout.insert(n(z, 0), 1);
        layout.insert(n(z, 1), per_zone - 1);
    }
    wait_per_node(ctx, app, &layout).await;
    for z in 0..3 {
        for i in 0..2 {
            cordon(ctx, &n(z, i), false).await;
        }
    }
}

/// The core's view of the scenario's namespace and of `app` as the policy spreads it (zone,
/// maxSkew 1).
async fn core_view(ctx: &Ctx, app: &str) -> (Cluster, Workload) {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let nodes: Vec<_> = nodes
        .list(&ListParams::default())
        .await
        .expect("list nodes")
        .items
        .iter()
        .map(node_from)
        .collect();
    let pods: Vec<_> = ctx
        .api::<Pod>()
        .list(&ListParams::default())
        .await
        .expect("list pods")
        .items
        .into_iter()
        .map(|p| {
            let lean: LeanPod = serde_json::from_value(serde_json::to_value(p).unwrap()).unwrap();
            pod_from(&lean)
        })
        .collect();
    let selector: Selector = [("app".to_string(), app.to_string())].into_iter().collect();
    let mut zone = SpreadConstraint::new(ZONE_KEY, 1, selector.clone());
    zone.when_unsatisfiable = WhenUnsatisfiable::DoNotSchedule;
    let workload = Workload {
        namespace: ctx.ns.clone(),
        name: app.to_string(),
        pod_selector: selector.clone(),
        owner: None,
        template: PodTemplate {
            labels: [("app".to_string(), app.to_string())].into(),
            ..Default::default()
        },
        constraints: vec![zone],
    };
    (Cluster::new(nodes, pods), workload)
}

/// Scales `app` down to 3 and returns the zones of the 3 pods left, checked as soon as only 3
/// are alive (before any replacement could be scheduled) and again a few seconds later; asserts
/// that no pod was created on the way.
async fn scale_in_to_three(ctx: &Ctx, app: &str) -> BTreeMap<String, usize> {
    let before: BTreeSet<String> = live_pods(ctx, app)
        .await
        .iter()
        .filter_map(|p| p.uid())
        .collect();
    scale(ctx, app, 3).await;
    let pods = wait_for("the scale-in to 3 pods", WAIT, || async {
        let pods = live_pods(ctx, app).await;
        (pods.len() == 3).then_some(pods)
    })
    .await;
    let at_once = count_by_zone(&ctx.kubelet, &pods);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = live_pods(ctx, app).await;
    let uids: BTreeSet<String> = later.iter().filter_map(|p| p.uid()).collect();
    assert!(
        uids.is_subset(&before),
        "pods were created after the scale-in: {:?}",
        uids.difference(&before).collect::<Vec<_>>()
    );
    assert_eq!(
        count_by_zone(&ctx.kubelet, &later),
        at_once,
        "the spread changed after the scale-in"
    );
    at_once
}

fn one_per_zone() -> BTreeMap<String, usize> {
    ZONES.iter().map(|z| (z.to_string(), 1)).collect()
}

/// The skew of zone counts over the three zones (a zone without pods counts 0).
fn zone_skew(counts: &BTreeMap<String, usize>) -> usize {
    let all: Vec<usize> = ZONES
        .iter()
        .map(|z| counts.get(*z).copied().unwrap_or(0))
        .collect();
    all.iter().max().unwrap() - all.iter().min().unwrap()
}

/// The operator governs `app` with `scaleIn.deletionCost: keep` (zone only, as the Deployment
/// already spreads, so there is no injection and no rollout; a long stabilization, so no
/// rebalance either: what the scale-in leaves is the ReplicaSet controller's doing alone).
/// Once the operator has written what the core computes (or, turned off, says so), scaling in
/// to 3 leaves what is returned.
async fn operator_scale_in(ctx: Ctx, per_zone: usize, keep: bool) -> BTreeMap<String, usize> {
    let app = "web";
    skewed_layout(&ctx, app, per_zone).await;
    let op = start_operator(&ctx, &[]);
    ctx.apply(&hapolicy(
        "web",
        json!({
            "selector": {"matchLabels": {"app": app}},
            "spread": [{"topologyKey": ZONE_KEY, "maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}],
            "rebalance": {"stabilizationSeconds": 600},
            "scaleIn": {"deletionCost": keep},
        }),
    ))
    .await;
    let want = if keep { "Kept" } else { "Off" };
    wait_for(
        "the operator to report the scale-in order",
        WAIT,
        || async {
            let w = workload_status(&ctx, "web", app).await?;
            (w["scaleIn"]["order"] == want).then_some(())
        },
    )
    .await;
    let (cluster, workload) = core_view(&ctx, app).await;
    let annotated = cluster
        .pods()
        .iter()
        .filter(|p| p.deletion_cost.is_some())
        .count();
    if keep {
        let desired = deletion_costs(&cluster, &workload);
        assert!(
            cost_patches(&current_costs(&cluster, &workload), &desired).is_empty(),
            "the pods carry what the core computes"
        );
        assert!(annotated > 0, "the pods that go first carry a cost");
        assert!(
            cluster
                .pods()
                .iter()
                .all(|p| p.deletion_cost.is_none() || p.deletion_cost_ours)
        );
        let written = metric(
            &scrape(&op).await,
            "skewguard_deletion_cost_writes_total",
            &[("workload", app), ("result", "success")],
        )
        .unwrap_or(0.0);
        assert!(
            written as usize >= annotated,
            "{written} writes counted for {annotated} annotated pods"
        );
        println!(
            "deletion-cost writes for {} pods: {written}",
            cluster.pods().len()
        );
    } else {
        assert_eq!(annotated, 0, "turned off, the operator writes no cost");
    }
    let left = scale_in_to_three(&ctx, app).await;
    let evictions = metric(
        &scrape(&op).await,
        "skewguard_rebalance_actions_total",
        &[("workload", app), ("action", "evict")],
    )
    .unwrap_or(0.0);
    assert_eq!(evictions, 0.0, "nothing was evicted");
    left
}

/// 2/2/2 → 3 with the operator keeping the costs: 1/1/1 at once, no pod created.
pub async fn scale_in_6_to_3(ctx: Ctx) {
    assert_eq!(operator_scale_in(ctx, 2, true).await, one_per_zone());
}

/// 3/3/3 → 3 likewise.
pub async fn scale_in_9_to_3(ctx: Ctx) {
    assert_eq!(operator_scale_in(ctx, 3, true).await, one_per_zone());
}

/// 2/2/2 → 3 with `scaleIn.deletionCost: false`: the ReplicaSet controller's own ranking
/// (co-location, then age) removes both pods of 2a's crowded node and more: the skew the
/// feature prevents.
pub async fn scale_in_6_to_3_turned_off(ctx: Ctx) {
    let left = operator_scale_in(ctx, 2, false).await;
    assert!(zone_skew(&left) >= 2, "left {left:?}");
}

/// 3/3/3 → 3 with the feature turned off.
pub async fn scale_in_9_to_3_turned_off(ctx: Ctx) {
    let left = operator_scale_in(ctx, 3, false).await;
    assert!(zone_skew(&left) >= 2, "left {left:?}");
}

// ---- the admission policies ----

/// A client of the suite's admin that impersonates `user`.
pub(super) async fn impersonating(ctx: &Ctx, user: &str) -> Client {
    let kc = Kubeconfig::read_from(&ctx.kubeconfig).expect("read kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig to client config");
    config.auth_info.impersonate = Some(user.to_string());
    Client::try_from(config).expect("build impersonating client")
}

/// The admission guards of config/admission/, as files.
const ADMISSION_GUARDS: [&str; 6] = [
    "config/admission/pod_deletion_cost_only.yaml",
    "config/admission/workload_owned_fields_only.yaml",
    "config/admission/room_requests_only.yaml",
    "config/admission/evictions_scoped.yaml",
    "config/admission/spread_from_policy.yaml",
    "config/admission/published_admission_from_spec.yaml",
];

fn repo_file(ctx: &Ctx, path: &str) -> String {
    std::fs::read_to_string(ctx.repo.join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// The operator's ServiceAccount with the operator's ClusterRole, and the admission policies,
/// all from config/.
pub(super) async fn install_operator_identity(ctx: &Ctx) {
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": OPERATOR_NS}})).unwrap();
    let _ = namespaces.create(&PostParams::default(), &ns).await;
    let sas: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), OPERATOR_NS);
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": OPERATOR_SA}})).unwrap();
    let _ = sas.create(&PostParams::default(), &sa).await;
    for file in [
        "config/rbac/cluster_role.yaml",
        "config/rbac/cluster_role_binding.yaml",
        "config/manager/priority_class.yaml",
    ]
    .into_iter()
    .chain(ADMISSION_GUARDS)
    {
        ctx.apply(&repo_file(ctx, file)).await;
    }
}

pub(super) async fn remove_admission_policies(ctx: &Ctx) {
    for file in ADMISSION_GUARDS {
        let text = repo_file(ctx, file);
        let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
            .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
            .collect();
        for v in docs {
            let name = v["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let ar = match v["kind"].as_str() {
                Some("ValidatingAdmissionPolicy") => kube::core::ApiResource::erase::<
                    k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy,
                >(&()),
                _ => kube::core::ApiResource::erase::<
                    k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
                >(&()),
            };
            let api: Api<kube::api::DynamicObject> = Api::all_with(ctx.client.clone(), &ar);
            let _ = api.delete(&name, &DeleteParams::default()).await;
        }
    }
}

pub(super) fn denied_by_policy(result: &Result<impl std::fmt::Debug, kube::Error>) -> bool {
    matches!(result, Err(e) if e.to_string().contains("skewguard may"))
}

/// skewguard's ServiceAccount may patch pods and workloads (RBAC), and the admission policies
/// narrow that to the fields it owns: a pod's label → denied, its deletion cost → allowed; a
/// Deployment's replicas or image → denied; an injected spread constraint (server-side apply,
/// field manager `skewguard`) and restartedAt → allowed. Others' requests are not looked at.
pub async fn admission_policy_limits_skewguard(ctx: Ctx) {
    ctx.kubelet
        .ensure_nodes(&[(ZONES[0], 1), (ZONES[1], 1), (ZONES[2], 1)])
        .await;
    install_operator_identity(&ctx).await;
    let labels = [("app", "guarded")];
    // The policy whose spec the spread guard reads: skewguard writes only what it asks for.
    ctx.apply(&hapolicy(
        "guarded",
        json!({"selector": {"matchLabels": {"app": "guarded"}},
               "spread": [{"topologyKey": ZONE_KEY, "maxSkew": 1}],
               "hostAntiAffinity": "Preferred", "injectConstraints": false}),
    ))
    .await;
    ctx.apply(&deployment("guarded", 1, &labels)).await;
    let pod = wait_for("a Ready pod of guarded", WAIT, || async {
        live_pods(&ctx, "guarded")
            .await
            .into_iter()
            .find(is_ready)
            .map(|p| p.name_any())
    })
    .await;
    let sa = impersonating(&ctx, &operator_user()).await;
    let pods: Api<Pod> = Api::namespaced(sa.clone(), &ctx.ns);
    let deployments: Api<Deployment> = Api::namespaced(sa.clone(), &ctx.ns);
    let merge = |v: Value| Patch::Merge(v);
    let pp = PatchParams::default();

    // The policies take a moment to be in force: poll until a label change is denied.
    let mut attempt = 0;
    wait_for("the pod policy to deny a label change", WAIT, || {
        attempt += 1;
        let (pods, pod, pp) = (pods.clone(), pod.clone(), pp.clone());
        async move {
            let r = pods
                .patch(
                    &pod,
                    &pp,
                    &merge(json!({"metadata": {"labels": {"probe": attempt.to_string()}}})),
                )
                .await;
            denied_by_policy(&r).then_some(())
        }
    })
    .await;
    // RBAC alone would have let it through: the admin (not matched) still may.
    let admin_pods = ctx.api::<Pod>();
    admin_pods
        .patch(
            &pod,
            &pp,
            &merge(json!({"metadata": {"labels": {"probe": "admin"}}})),
        )
        .await
        .expect("the policies only look at skewguard's requests");

    // The deletion cost: merge patch and server-side apply, set and removed.
    pods.patch(
        &pod,
        &pp,
        &merge(json!({"metadata": {"annotations": {DELETION_COST_ANNOTATION: "-1000"}}})),
    )
    .await
    .expect("skewguard may set the deletion cost");
    let apply = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod,
                       "annotations": {DELETION_COST_ANNOTATION: "-2000"}}});
    pods.patch(
        &pod,
        &PatchParams::apply(SKEWGUARD).force(),
        &Patch::Apply(&apply),
    )
    .await
    .expect("skewguard may apply the deletion cost");
    let r = pods
        .patch(
            &pod,
            &pp,
            &merge(json!({"metadata": {"annotations": {"other": "x"}}})),
        )
        .await;
    assert!(denied_by_policy(&r), "another annotation: {r:?}");
    let r = pods
        .patch(
            &pod,
            &pp,
            &merge(json!({"spec": {"activeDeadlineSeconds": 600}})),
        )
        .await;
    assert!(denied_by_policy(&r), "a pod spec change: {r:?}");

    // Workloads: replicas and image denied (poll: the second policy may lag the first). Each
    // attempt asks for another count than the last: a patch that changes nothing is no change
    // for the policy to deny, and one let through before the policy was in force is undone.
    let mut attempt = 0;
    wait_for(
        "the workload policy to deny a replicas change",
        WAIT,
        || {
            attempt += 1;
            let (deployments, pp) = (deployments.clone(), pp.clone());
            async move {
                let replicas = 2 + attempt % 2;
                let r = deployments
                    .patch(
                        "guarded",
                        &pp,
                        &merge(json!({"spec": {"replicas": replicas}})),
                    )
                    .await;
                denied_by_policy(&r).then_some(())
            }
        },
    )
    .await;
    if attempt > 1 {
        ctx.api::<Deployment>()
            .patch("guarded", &pp, &merge(json!({"spec": {"replicas": 1}})))
            .await
            .expect("the admin scales guarded back");
    }
    let image = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "nginx:1.28"}]}}}});
    let r = deployments
        .patch(
            "guarded",
            &PatchParams::apply(SKEWGUARD).force(),
            &Patch::Apply(&json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "guarded"},
            "spec": image["spec"].clone()})),
        )
        .await;
    assert!(denied_by_policy(&r), "an image change: {r:?}");
    let r = deployments
        .patch(
            "guarded",
            &pp,
            &merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await;
    assert!(denied_by_policy(&r), "a workload label: {r:?}");

    // What skewguard owns: an injected constraint and anti-affinity, then a restart.
    let inject = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "guarded"},
        "spec": {"template": {"spec": {
            "topologySpreadConstraints": [{
                "topologyKey": ZONE_KEY, "maxSkew": 1, "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app": "guarded"}},
                "matchLabelKeys": ["pod-template-hash"]}],
            "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 100, "podAffinityTerm": {"topologyKey": HOSTNAME_KEY,
                "labelSelector": {"matchLabels": {"app": "guarded"}}}}]}}
        }}}
    });
    deployments
        .patch(
            "guarded",
            &PatchParams::apply(SKEWGUARD).force(),
            &Patch::Apply(&inject),
        )
        .await
        .expect("skewguard may inject spread constraints and anti-affinity");
    let mut restart = inject.clone();
    restart["spec"]["template"]["metadata"] =
        json!({"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-13T03:40:00Z"}});
    deployments
        .patch(
            "guarded",
            &PatchParams::apply(SKEWGUARD).force(),
            &Patch::Apply(&restart),
        )
        .await
        .expect("skewguard may restart the workload");
    let d: Deployment = ctx.get("guarded").await;
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    let t = spec.template;
    assert_eq!(
        t.spec.unwrap().containers[0].image.as_deref(),
        Some("nginx:1.27")
    );
    assert!(
        t.metadata
            .unwrap()
            .annotations
            .unwrap_or_default()
            .contains_key("kubectl.kubernetes.io/restartedAt")
    );

    // Room asked of the autoscaler: skewguard may create and delete only its placeholder pods.
    let stray: Value = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "stray", "namespace": ctx.ns},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}});
    let stray: Pod = serde_json::from_value(stray).unwrap();
    wait_for(
        "the room policy to deny a pod of another shape",
        WAIT,
        || {
            let (pods, stray) = (pods.clone(), stray.clone());
            async move {
                let r = pods.create(&PostParams::default(), &stray).await;
                if r.is_ok() {
                    let _ = pods.delete("stray", &Default::default()).await;
                }
                denied_by_policy(&r).then_some(())
            }
        },
    )
    .await;
    let owner: skewguard::api::HAPolicy = serde_json::from_value(json!({
        "apiVersion": "skewguard.dev/v1alpha1", "kind": "HAPolicy",
        "metadata": {"name": "guard", "namespace": ctx.ns, "uid": "00000000-0000-0000-0000-000000000001"},
        "spec": {"selector": {}, "spread": [{"topologyKey": ZONE_KEY}]}
    }))
    .unwrap();
    let shape_placement = skewguard::core::topology::Placement::default();
    let shape = skewguard::core::capacity::Shape {
        key: ZONE_KEY,
        domain: ZONES[0],
        placement: &shape_placement,
        requests: skewguard::core::topology::Resources::new(100, 128 << 20, 1),
    };
    let placeholder = skewguard::core::capacity::request_objects(
        &owner,
        "room-probe",
        skewguard::api::CapacityVia::PlaceholderPods,
        1,
        &shape,
    )
    .remove(0);
    let placeholder: Pod = serde_json::from_value(placeholder).unwrap();
    pods.create(&PostParams::default(), &placeholder)
        .await
        .expect("skewguard may create a placeholder pod");
    pods.delete("room-probe-0", &Default::default())
        .await
        .expect("skewguard may delete its placeholder pod");
    // A workload's pod (the restart replaced the first one), once the old one is gone: a delete
    // of a pod the rollout is already deleting raced the check (it went through in one run).
    let live = wait_for("the restarted pod of guarded alone", WAIT, || async {
        match ctx.pods("app=guarded").await.as_slice() {
            [p] if p.metadata.deletion_timestamp.is_none() && is_ready(p) => Some(p.name_any()),
            _ => None,
        }
    })
    .await;
    let r = pods.delete(&live, &Default::default()).await;
    assert!(denied_by_policy(&r), "deleting a workload's pod: {r:?}");

    // Nothing stays stranded: skewguard may delete a Pending pod its controller makes anew, that
    // the scheduler left unschedulable with a DoNotSchedule spread; not a bare Pending pod. The
    // stuck pods: pinned to one zone, counted over all of them (nodeAffinityPolicy Ignore).
    let mut stuck: Value =
        serde_yaml::from_str(&deployment("stuck", 2, &[("app", "stuck")])).unwrap();
    let spec = &mut stuck["spec"]["template"]["spec"];
    spec["nodeSelector"] = json!({ZONE_KEY: ZONES[0]});
    spec["topologySpreadConstraints"] = json!([{"topologyKey": ZONE_KEY, "maxSkew": 1,
        "whenUnsatisfiable": "DoNotSchedule", "nodeAffinityPolicy": "Ignore",
        "labelSelector": {"matchLabels": {"app": "stuck"}}}]);
    ctx.apply(&stuck.to_string()).await;
    let stranded = wait_for("a stuck pod left Pending for its spread", WAIT, || async {
        ctx.pods("app=stuck")
            .await
            .into_iter()
            .find(|p| {
                p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none()
                    && (p.status.as_ref().and_then(|s| s.conditions.as_ref()))
                        .into_iter()
                        .flatten()
                        .any(|c| {
                            c.type_ == "PodScheduled"
                                && c.reason.as_deref() == Some("Unschedulable")
                        })
            })
            .map(|p| p.name_any())
    })
    .await;
    let bare: Pod = serde_json::from_value(json!({
        "metadata": {"name": "bare-pending", "namespace": ctx.ns},
        "spec": {"nodeSelector": {"no-such-node": "x"},
                 "containers": [{"name": "c", "image": "nginx:1.27"}],
                 "topologySpreadConstraints": [{"topologyKey": ZONE_KEY, "maxSkew": 1,
                     "whenUnsatisfiable": "DoNotSchedule",
                     "labelSelector": {"matchLabels": {"app": "bare"}}}]}
    }))
    .unwrap();
    admin_pods
        .create(&PostParams::default(), &bare)
        .await
        .expect("create a bare Pending pod");
    let r = pods.delete("bare-pending", &Default::default()).await;
    assert!(
        denied_by_policy(&r),
        "deleting a pod of no controller: {r:?}"
    );
    pods.delete(&stranded, &Default::default())
        .await
        .expect("skewguard may delete a stranded Pending pod");
    let _ = admin_pods.delete("bare-pending", &Default::default()).await;
    remove_admission_policies(&ctx).await;
}
