//! The fake autoscaler (`testbed/src/fake_autoscaler.rs`) behaves as Karpenter does for what
//! skewguard relies on: a node for pods Pending because their zone has none, room for a
//! CapacityBuffer pinned to an empty zone (and none in a zone without capacity), and empty nodes
//! removed after `consolidateAfter` unless annotated do-not-disrupt.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

use super::fixtures::deployment;
use super::support::{ZONE_A, ZONE_C, zones};
use crate::fake_autoscaler::{
    AutoscalerConfig, DISRUPTED_TAINT, DO_NOT_DISRUPT, NODEPOOL_LABEL, capacitybuffer_resource,
    nodepool_resource,
};
use crate::fake_kubelet::ZONE_LABEL;
use crate::harness::{Ctx, TestdataCrd, wait_for};

const ZONE_B: &str = "ap-northeast-2b";
const DELAY: Duration = Duration::from_secs(2);
/// Karpenter validates a consolidation for 15 s; 1 s keeps the scenarios short.
const VALIDATION: Duration = Duration::from_secs(1);
const WAIT: Duration = Duration::from_secs(60);

/// A NodePool launching into `zones`, its nodes labelled `team: e2e`.
pub(super) fn nodepool(name: &str, zones: &[&str], consolidate_after: &str) -> String {
    json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "metadata": {"labels": {"team": "e2e"}},
                "spec": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
                    "requirements": [{"key": ZONE_LABEL, "operator": "In", "values": zones}],
                },
            },
            "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": consolidate_after},
        },
    })
    .to_string()
}

/// Every NodePool deleted (they are cluster-wide: an earlier scenario's would launch nodes too),
/// then `yaml` applied.
pub(super) async fn only_nodepool(ctx: &Ctx, yaml: &str) {
    delete_nodepools(ctx).await;
    ctx.apply(yaml).await;
}

pub(super) async fn delete_nodepools(ctx: &Ctx) {
    let pools: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &nodepool_resource());
    pools
        .delete_collection(&DeleteParams::default(), &Default::default())
        .await
        .expect("delete the NodePools");
}

/// A Deployment of `replicas` pods requesting `cpu` each, pinned to `zone` by a nodeSelector.
fn pinned_deployment(name: &str, replicas: u32, zone: &str, cpu: &str) -> String {
    let mut d: Value = serde_yaml::from_str(&deployment(name, replicas, &[("app", name)]))
        .expect("the fixture is YAML");
    let spec = &mut d["spec"]["template"]["spec"];
    spec["nodeSelector"] = json!({ZONE_LABEL: zone});
    spec["terminationGracePeriodSeconds"] = json!(0);
    spec["containers"][0]["resources"]["requests"]["cpu"] = json!(cpu);
    d.to_string()
}

/// A PodTemplate of a moving pod's shape pinned to `zone`, and a CapacityBuffer asking room for
/// `replicas` of it: what skewguard asks before evicting into an empty zone.
fn zone_buffer(name: &str, zone: &str, replicas: u32) -> String {
    let template = json!({
        "apiVersion": "v1", "kind": "PodTemplate",
        "metadata": {"name": name},
        "template": {
            "metadata": {"labels": {"app": "moving"}},
            "spec": {
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [
                        {"key": ZONE_LABEL, "operator": "In", "values": [zone]}]}]}}},
                "containers": [{"name": "app", "image": "nginx:1.27",
                                "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}],
            },
        },
    });
    let buffer = json!({
        "apiVersion": "autoscaling.x-k8s.io/v1beta1", "kind": "CapacityBuffer",
        "metadata": {"name": name},
        "spec": {"podTemplateRef": {"name": name}, "replicas": replicas},
    });
    format!("{template}\n---\n{buffer}")
}

/// The buffer's condition `type`: (status, reason), once it has one.
async fn buffer_condition(ctx: &Ctx, name: &str, type_: &str) -> Option<(String, String)> {
    let b = ctx
        .dynamic(&capacitybuffer_resource())
        .get(name)
        .await
        .ok()?;
    let c = b.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?
        .clone();
    Some((
        c["status"].as_str()?.to_string(),
        c["reason"].as_str()?.to_string(),
    ))
}

pub async fn autoscaler_launches_a_node_for_pending_pods(ctx: Ctx) {
    ctx.kubelet.ensure_nodes(&[(ZONE_A, 1)]).await;
    ctx.install_testdata_crd(TestdataCrd::NodePool).await;
    // Pending pods are served without the CapacityBuffer API.
    ctx.remove_testdata_crd(TestdataCrd::CapacityBuffer).await;
    only_nodepool(&ctx, &nodepool("e2e-pending", &[ZONE_A, ZONE_C], "Never")).await;
    let autoscaler = ctx
        .start_autoscaler(AutoscalerConfig::default().provisioning_delay(DELAY))
        .await;

    // Three pods of 2 CPUs pinned to 2c, which has no node: 6 CPUs, more than one default node.
    let start = Instant::now();
    ctx.apply(&pinned_deployment("api", 3, ZONE_C, "2")).await;
    ctx.wait_ready_pods_by_zone("app=api", &zones(&[(ZONE_C, 3)]), WAIT)
        .await;

    let created = autoscaler.created();
    assert_eq!(
        created.len(),
        1,
        "one node for the three pods pending within the delay: {created:?}"
    );
    let launched = &created[0];
    assert_eq!(
        (launched.zone.as_str(), launched.pool.as_str()),
        (ZONE_C, "e2e-pending")
    );
    assert!(
        launched.at.duration_since(start) >= DELAY,
        "launched after the provisioning delay: {:?}",
        launched.at.duration_since(start)
    );
    let node = Api::<Node>::all(ctx.client.clone())
        .get(&launched.name)
        .await
        .expect("the launched node");
    let labels = node.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get(NODEPOOL_LABEL).map(String::as_str),
        Some("e2e-pending")
    );
    assert_eq!(labels.get("team").map(String::as_str), Some("e2e"));
    assert_eq!(labels.get(ZONE_LABEL).map(String::as_str), Some(ZONE_C));
    let cpu = node
        .status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .and_then(|a| a.get("cpu"));
    assert_eq!(
        cpu.map(|q| q.0.as_str()),
        Some("6"),
        "big enough for the three pods"
    );
    assert_eq!(autoscaler.nodes_removed(), 0, "consolidateAfter: Never");
    delete_nodepools(&ctx).await;
}

pub async fn autoscaler_serves_a_capacity_buffer(ctx: Ctx) {
    ctx.kubelet.ensure_nodes(&[(ZONE_A, 1)]).await;
    ctx.install_testdata_crd(TestdataCrd::NodePool).await;
    ctx.install_testdata_crd(TestdataCrd::CapacityBuffer).await;
    only_nodepool(
        &ctx,
        &nodepool("e2e-buffer", &[ZONE_A, ZONE_B, ZONE_C], "0s"),
    )
    .await;
    let autoscaler = ctx
        .start_autoscaler(
            AutoscalerConfig::default()
                .provisioning_delay(DELAY)
                .consolidation_validation(VALIDATION)
                .never_fill(ZONE_B),
        )
        .await;

    ctx.apply(&zone_buffer("room-in-c", ZONE_C, 2)).await;
    let first = wait_for("a Provisioning condition", WAIT, || {
        buffer_condition(&ctx, "room-in-c", "Provisioning")
    })
    .await;
    assert_eq!(
        first,
        ("False".into(), "NodesLaunching".into()),
        "no room in 2c at first"
    );
    wait_for("Provisioning True", WAIT, || async {
        let c = buffer_condition(&ctx, "room-in-c", "Provisioning").await?;
        (c.0 == "True").then_some(())
    })
    .await;
    let created = autoscaler.created();
    assert_eq!(created.len(), 1, "one node for both chunks: {created:?}");
    assert_eq!(created[0].zone, ZONE_C);
    let buffer = ctx
        .dynamic(&capacitybuffer_resource())
        .get("room-in-c")
        .await
        .expect("read the buffer");
    let status = &buffer.data["status"];
    assert_eq!(status["replicas"], json!(2), "{status}");
    assert_eq!(
        status["podTemplateRef"]["name"],
        json!("room-in-c"),
        "{status}"
    );
    assert_eq!(
        status["provisioningStrategy"],
        json!("buffer.x-k8s.io/active-capacity")
    );
    assert_eq!(
        buffer_condition(&ctx, "room-in-c", "ReadyForProvisioning").await,
        Some(("True".into(), "Resolved".into()))
    );
    assert!(ctx.pods("").await.is_empty(), "the buffer creates no pod");

    // A zone without capacity: no node, and the buffer says why.
    ctx.apply(&zone_buffer("room-in-b", ZONE_B, 1)).await;
    wait_for(
        "room-in-b: Provisioning False, InsufficientCapacity",
        WAIT,
        || async {
            let c = buffer_condition(&ctx, "room-in-b", "Provisioning").await?;
            (c == ("False".into(), "InsufficientCapacity".into())).then_some(())
        },
    )
    .await;
    tokio::time::sleep(DELAY + Duration::from_secs(1)).await;
    assert_eq!(
        autoscaler.nodes_created(),
        1,
        "nothing launched in never-filled {ZONE_B}"
    );

    // While reserved the node stays (consolidateAfter 0s); once the buffer is gone it goes.
    assert_eq!(autoscaler.nodes_removed(), 0);
    ctx.dynamic(&capacitybuffer_resource())
        .delete("room-in-c", &DeleteParams::default())
        .await
        .expect("delete the buffer");
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let name = created[0].name.clone();
    wait_for("the unreserved node removed", WAIT, || {
        let (nodes, name) = (nodes.clone(), name.clone());
        async move { matches!(nodes.get_opt(&name).await, Ok(None)).then_some(()) }
    })
    .await;
    assert_eq!(autoscaler.nodes_removed(), 1);
    delete_nodepools(&ctx).await;
}

pub async fn autoscaler_consolidates_empty_nodes(ctx: Ctx) {
    ctx.kubelet.ensure_nodes(&[(ZONE_A, 1)]).await;
    ctx.install_testdata_crd(TestdataCrd::NodePool).await;
    let after = Duration::from_secs(3);
    only_nodepool(&ctx, &nodepool("e2e-consolidate", &[ZONE_C], "3s")).await;
    let autoscaler = ctx
        .start_autoscaler(
            AutoscalerConfig::default()
                .provisioning_delay(Duration::from_secs(1))
                .consolidation_validation(VALIDATION),
        )
        .await;
    ctx.apply(&pinned_deployment("batch", 1, ZONE_C, "500m"))
        .await;
    ctx.wait_ready_pods_by_zone("app=batch", &zones(&[(ZONE_C, 1)]), WAIT)
        .await;
    let node = autoscaler.wait_node_in(ZONE_C, WAIT).await;

    // Annotated do-not-disrupt, the node outlives consolidateAfter once empty.
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let annotate = |value: Value| {
        let nodes = nodes.clone();
        let node = node.clone();
        async move {
            let patch = json!({"metadata": {"annotations": {DO_NOT_DISRUPT: value}}});
            nodes
                .patch(&node, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .expect("annotate the node");
        }
    };
    annotate(json!("true")).await;
    ctx.api::<Deployment>()
        .patch(
            "batch",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .expect("scale batch to 0");
    wait_for("the node empty", WAIT, || async {
        ctx.pods("app=batch").await.is_empty().then_some(())
    })
    .await;
    tokio::time::sleep(after + Duration::from_secs(2)).await;
    assert!(
        nodes.get_opt(&node).await.expect("read the node").is_some(),
        "a do-not-disrupt node is kept"
    );
    assert_eq!(autoscaler.nodes_removed(), 0);

    // Without the annotation it is tainted disrupted, then removed.
    let tainted = Arc::new(Mutex::new(false));
    let seen = tainted.clone();
    let watch = tokio::spawn(
        watcher(
            nodes.clone(),
            watcher::Config::default().fields(&format!("metadata.name={node}")),
        )
        .applied_objects()
        .for_each(move |n| {
            let disrupted = n.ok().and_then(|n| n.spec?.taints).is_some_and(|ts| {
                ts.iter()
                    .any(|t| t.key == DISRUPTED_TAINT && t.effect == "NoSchedule")
            });
            *seen.lock().unwrap() |= disrupted;
            async {}
        }),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let released = Instant::now();
    annotate(Value::Null).await;
    wait_for("the empty node removed", WAIT, || async {
        matches!(nodes.get_opt(&node).await, Ok(None)).then_some(())
    })
    .await;
    watch.abort();
    assert!(
        released.elapsed() < after + Duration::from_secs(10),
        "removed within consolidateAfter of being released: {:?}",
        released.elapsed()
    );
    assert!(
        *tainted.lock().unwrap(),
        "tainted {DISRUPTED_TAINT}:NoSchedule before removal"
    );
    assert_eq!(autoscaler.nodes_removed(), 1);
    assert_eq!(autoscaler.removed()[0].name, node);
    delete_nodepools(&ctx).await;
}
