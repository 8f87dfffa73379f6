//! The control plane plus the fake kubelet behave like a cluster: the real scheduler binds, the
//! real controllers replace, the fake kubelet runs. The setup the controller scenarios build on.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;
use kube::api::DeleteParams;

use super::fixtures::{deployment, rollout, rollout_replicaset};
use crate::harness::{Ctx, rollout_resource, wait_for};

const ZONE_A: &str = "ap-northeast-2a";
const ZONE_C: &str = "ap-northeast-2c";
const WAIT: Duration = Duration::from_secs(60);

fn zones(counts: &[(&str, usize)]) -> BTreeMap<String, usize> {
    counts.iter().map(|(z, n)| (z.to_string(), *n)).collect()
}

fn controller_of(meta: &ObjectMeta) -> Option<OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .cloned()
}

pub async fn fake_kubelet_runs_pods(ctx: Ctx) {
    ctx.kubelet.ensure_nodes(&[(ZONE_A, 2), (ZONE_C, 2)]).await;
    let labels = [("app", "petclinic"), ("tier", "web")];
    ctx.apply(&deployment("web", 4, &labels)).await;

    let deployments = ctx.api::<Deployment>();
    wait_for("deployment web: 4 available", WAIT, || {
        let deployments = deployments.clone();
        async move {
            let d = deployments.get("web").await.ok()?;
            (d.status?.available_replicas? == 4).then_some(())
        }
    })
    .await;
    let pods = ctx.pods("tier=web").await;
    assert_eq!(pods.len(), 4);
    for pod in &pods {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let zone = node.as_deref().and_then(|n| ctx.kubelet.zone_of(n));
        assert!(
            zone.is_some(),
            "pod {} bound to one of our nodes: {node:?}",
            pod.name_any()
        );
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(
            status.pod_ip.is_some() && status.host_ip.is_some(),
            "pod and host IPs"
        );
    }
    let before = ctx.ready_pods_by_zone("tier=web").await;
    assert_eq!(
        before.values().sum::<usize>(),
        4,
        "4 ready pods: {before:?}"
    );

    // The AZ drill: cordon 2a, delete its pods; the replacements land in 2c.
    ctx.kubelet.cordon_zone(ZONE_A).await;
    let in_a: Vec<Pod> = pods
        .into_iter()
        .filter(|p| {
            let node = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .unwrap_or("");
            ctx.kubelet.zone_of(node).as_deref() == Some(ZONE_A)
        })
        .collect();
    let api = ctx.api::<Pod>();
    for pod in &in_a {
        api.delete(&pod.name_any(), &DeleteParams::default())
            .await
            .expect("delete a 2a pod");
    }
    ctx.wait_ready_pods_by_zone("tier=web", &zones(&[(ZONE_C, 4)]), WAIT)
        .await;
    // Every pod of 2a is gone (the fake kubelet finished the graceful deletion).
    let left = ctx.pods("tier=web").await;
    assert_eq!(
        left.len(),
        4,
        "only the 4 pods in 2c remain: {:?}",
        left.iter().map(|p| p.name_any()).collect::<Vec<_>>()
    );

    // Uncordon: nothing moves back on its own (the field report's complaint).
    ctx.kubelet.uncordon_zone(ZONE_A).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        ctx.ready_pods_by_zone("tier=web").await,
        zones(&[(ZONE_C, 4)])
    );

    // NotReady zone: the node-lifecycle controller taints it, new pods avoid it.
    ctx.kubelet.set_zone_ready(ZONE_C, false).await;
    deployments
        .patch(
            "web",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"replicas": 6}})),
        )
        .await
        .expect("scale web to 6");
    ctx.wait_ready_pods_by_zone("tier=web", &zones(&[(ZONE_A, 2)]), WAIT)
        .await;
    ctx.kubelet.set_zone_ready(ZONE_C, true).await;
    ctx.wait_ready_pods_by_zone("tier=web", &zones(&[(ZONE_A, 2), (ZONE_C, 4)]), WAIT)
        .await;
}

pub async fn rollout_owned_replicaset_pods_are_scheduled(ctx: Ctx) {
    ctx.kubelet.ensure_nodes(&[(ZONE_A, 2), (ZONE_C, 2)]).await;
    let labels = [("app", "petclinic"), ("tier", "was")];
    let applied = ctx.apply(&rollout("was", 2, &labels)).await;
    let uid = applied[0].uid().expect("the Rollout has a uid");
    let rollouts = ctx.dynamic(&rollout_resource());
    let was = rollouts.get("was").await.expect("read the Rollout back");
    assert_eq!(was.data["spec"]["replicas"], 2);

    // A readiness probe: the pods run at once but are Ready only 5 s later.
    ctx.kubelet.set_readiness_delay(Duration::from_secs(5));
    ctx.apply(&rollout_replicaset("was", &uid, "7d9f8c6b5", 2, &labels))
        .await;
    let selector = "tier=was,rollouts-pod-template-hash=7d9f8c6b5";
    let running = wait_for("2 running Rollout pods", WAIT, || {
        let ctx = ctx.clone();
        async move {
            let pods = ctx.pods(selector).await;
            let running = pods
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"));
            (running.count() == 2).then_some(pods)
        }
    })
    .await;
    let ready_at_start = ctx
        .ready_pods_by_zone(selector)
        .await
        .values()
        .sum::<usize>();
    assert!(
        ready_at_start < 2,
        "with a readiness delay, pods run before they are Ready: {:?}",
        running.iter().map(|p| &p.status).collect::<Vec<_>>()
    );
    wait_for("2 ready Rollout pods", WAIT, || {
        let ctx = ctx.clone();
        async move {
            let by_zone = ctx.ready_pods_by_zone(selector).await;
            (by_zone.values().sum::<usize>() == 2 && !by_zone.contains_key("")).then_some(())
        }
    })
    .await;

    // The ownership chain is Rollout -> ReplicaSet -> Pod, as Argo Rollouts lays it out.
    let rs = ctx.get::<ReplicaSet>("was-7d9f8c6b5").await;
    let owner = controller_of(&rs.metadata).expect("the ReplicaSet has a controller");
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("Rollout", "was", uid.as_str())
    );
    for pod in ctx.pods(selector).await {
        let owner = controller_of(&pod.metadata).expect("the pod has a controller");
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("ReplicaSet", "was-7d9f8c6b5")
        );
    }
}

/// The harness runs the operator binary with the suite's kubeconfig and captures its output.
pub async fn operator_binary_runs(ctx: Ctx) {
    let mut op = ctx.operator(&["crd"]);
    let status = op.wait_exit(Duration::from_secs(30)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "skewguard crd: {status:?}\n{}",
        op.log_text()
    );
    assert!(
        op.log_text().contains("kind: CustomResourceDefinition"),
        "{}",
        op.log_text()
    );
}
