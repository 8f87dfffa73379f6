//! The field scenario as cluster state: two zones, `web` (2 replicas) all in zone c.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::Resource;
use kube::api::DynamicObject;
use serde_json::{Value, json};
use skewguard::api::HAPolicy;
use skewguard::core::snapshot::LeanPod as Pod;
use skewguard::shell::controller::context::{Context, Limits, Settings};
use skewguard::shell::controller::stores::{Stores, store_of};
use skewguard::shell::fence::Fence;
use skewguard::shell::metrics::Metrics;

pub const NS: &str = "petclinic";

pub fn node(name: &str, zone: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {
            "topology.kubernetes.io/zone": zone, "kubernetes.io/hostname": name}},
        "status": {"allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .unwrap()
}

pub fn pod(name: &str, node: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS,
                     "labels": {"app": "petclinic", "tier": "web", "pod-template-hash": "abc"},
                     "ownerReferences": web_replicaset()},
        "spec": {"nodeName": node, "containers": [{"name": "nginx", "image": "nginx",
                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .unwrap()
}

/// [`pod`] with the uid and resourceVersion the API server gives it.
pub fn pod_with_version(name: &str, node: &str, uid: &str, version: &str) -> Pod {
    let mut p = pod(name, node);
    p.metadata.uid = Some(uid.to_string());
    p.metadata.resource_version = Some(version.to_string());
    p
}

/// The owner references of `web`'s pods: its ReplicaSet `web-abc`.
pub fn web_replicaset() -> Value {
    json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "web-abc-uid",
            "controller": true}])
}

/// `web`: 2 replicas, settled; `template_spec` is its pod template spec.
pub fn web(template_spec: Value, managed_fields: Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": NS, "generation": 2, "uid": "web-uid",
                     "labels": {"app": "petclinic", "tier": "web"},
                     "managedFields": managed_fields},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "petclinic", "tier": "web"}},
                 "template": {"metadata": {"labels": {"app": "petclinic", "tier": "web"}},
                              "spec": template_spec}},
        "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
                   "readyReplicas": 2, "availableReplicas": 2}
    }))
    .unwrap()
}

/// A typed object in the dynamic form the controller watches it in.
fn dynamic<K: Resource<DynamicType = ()> + serde::Serialize>(object: &K) -> DynamicObject {
    let mut value = serde_json::to_value(object).unwrap();
    value["apiVersion"] = json!(K::api_version(&()));
    value["kind"] = json!(K::kind(&()));
    serde_json::from_value(value).unwrap()
}

pub fn plain_template() -> Value {
    json!({"containers": [{"name": "nginx", "image": "nginx"}]})
}

pub fn policy(name: &str, created: &str, spec_extra: Value) -> HAPolicy {
    let mut spec = json!({
        "selector": {"matchLabels": {"app": "petclinic"}},
        "spread": [{"topologyKey": "topology.kubernetes.io/zone", "maxSkew": 1}],
        "rebalance": {"stabilizationSeconds": 0, "cooldownSeconds": 0}
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), spec_extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({
        "apiVersion": "skewguard.dev/v1alpha1", "kind": "HAPolicy",
        "metadata": {"name": name, "namespace": NS, "uid": format!("{name}-uid"),
                     "generation": 1, "creationTimestamp": created},
        "spec": spec
    }))
    .unwrap()
}

/// A reconcile context over the given objects, talking to `client`.
pub fn context(
    client: Client,
    policies: Vec<HAPolicy>,
    deployments: Vec<Deployment>,
    pods: Vec<Pod>,
    dry_run: bool,
) -> Arc<Context> {
    context_with_budgets(client, policies, deployments, pods, vec![], dry_run)
}

/// The field scenario's context for one policy: `web` (no constraints) with its two pods in zone c.
pub fn piled_web_context(client: Client, policy: &HAPolicy) -> Arc<Context> {
    context(
        client,
        vec![policy.clone()],
        vec![web(plain_template(), serde_json::json!([]))],
        piled_pods(),
        false,
    )
}

/// A PodDisruptionBudget over `web` that allows `allowed` disruptions.
pub fn web_budget(allowed: i32) -> PodDisruptionBudget {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": NS, "generation": 1},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"tier": "web"}}},
        "status": {"observedGeneration": 1, "disruptionsAllowed": allowed, "currentHealthy": 2,
                   "desiredHealthy": 2, "expectedPods": 2}
    }))
    .unwrap()
}

pub fn context_with_budgets(
    client: Client,
    policies: Vec<HAPolicy>,
    deployments: Vec<Deployment>,
    pods: Vec<Pod>,
    budgets: Vec<PodDisruptionBudget>,
    dry_run: bool,
) -> Arc<Context> {
    let workloads = deployments.iter().map(dynamic).collect();
    context_with_objects(client, policies, workloads, pods, budgets, dry_run)
}

/// The limits of the tests: rates that never hold a write back, two rollouts at once, and every
/// write waited for (as a reconcile on a quiet API server does), so a reconcile's requests are
/// all made when it returns.
pub fn limits(dry_run: bool) -> Limits {
    Limits {
        settings: Settings { dry_run },
        max_concurrent_rollouts: 2,
        evictions_per_second: 1000.0,
        deletion_cost_writes_per_second: 1000.0,
        pending_deletions_per_second: 1000.0,
        writes_waited_for: std::time::Duration::from_secs(60),
    }
}

/// A reconcile context over workloads in their dynamic form (which may be malformed).
pub fn context_with_objects(
    client: Client,
    policies: Vec<HAPolicy>,
    workloads: Vec<DynamicObject>,
    pods: Vec<Pod>,
    budgets: Vec<PodDisruptionBudget>,
    dry_run: bool,
) -> Arc<Context> {
    context_with_limits(client, policies, workloads, pods, budgets, limits(dry_run))
}

/// [`context_with_objects`] under the given limits.
pub fn context_with_limits(
    client: Client,
    policies: Vec<HAPolicy>,
    workloads: Vec<DynamicObject>,
    pods: Vec<Pod>,
    budgets: Vec<PodDisruptionBudget>,
    limits: Limits,
) -> Arc<Context> {
    let nodes = vec![
        node("a-1", "ap-northeast-2a"),
        node("c-1", "ap-northeast-2c"),
    ];
    context_on(client, nodes, policies, workloads, pods, budgets, limits)
}

/// [`context_with_limits`] over the given nodes.
pub fn context_on(
    client: Client,
    nodes: Vec<Node>,
    policies: Vec<HAPolicy>,
    workloads: Vec<DynamicObject>,
    pods: Vec<Pod>,
    budgets: Vec<PodDisruptionBudget>,
    limits: Limits,
) -> Arc<Context> {
    let objects = (policies, workloads, pods, budgets);
    context_fenced(client, nodes, objects, limits, Fence::alone())
}

/// The field scenario (`web` with `pods`, two zones) for `policy`, writing behind `fence`.
pub fn piled_web_fenced(
    client: Client,
    policy: &HAPolicy,
    pods: Vec<Pod>,
    fence: Fence,
) -> Arc<Context> {
    let nodes = vec![
        node("a-1", "ap-northeast-2a"),
        node("c-1", "ap-northeast-2c"),
    ];
    let workloads = vec![dynamic(&web(plain_template(), json!([])))];
    let objects = (vec![policy.clone()], workloads, pods, vec![]);
    context_fenced(client, nodes, objects, limits(false), fence)
}

type Objects = (
    Vec<HAPolicy>,
    Vec<DynamicObject>,
    Vec<Pod>,
    Vec<PodDisruptionBudget>,
);

fn context_fenced(
    client: Client,
    nodes: Vec<Node>,
    (policies, workloads, pods, budgets): Objects,
    limits: Limits,
    fence: Fence,
) -> Arc<Context> {
    let stores = Stores::fixed(nodes, pods, workloads, budgets);
    let ctx = Context::new(
        client,
        stores,
        store_of(policies),
        fence,
        Metrics::new(),
        "skewguard-test",
        limits,
    );
    // A cluster that does not serve MutatingAdmissionPolicies: template mode.
    ctx.admission
        .send_replace(Some(skewguard::core::injection::AdmissionSupport::default()));
    Arc::new(ctx)
}

/// A Rollout of the policy's selection whose spec cannot be read.
pub fn malformed_rollout() -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "was", "namespace": NS, "labels": {"app": "petclinic"}},
        "spec": {"selector": "not a selector"}
    }))
    .unwrap()
}

/// `dynamic` for tests that mix typed and raw workloads.
pub fn dynamic_deployment(d: &Deployment) -> DynamicObject {
    dynamic(d)
}

/// Both `web` pods in zone c.
pub fn piled_pods() -> Vec<Pod> {
    vec![pod("web-1", "c-1"), pod("web-2", "c-1")]
}
