//! An Argo Rollout whose template lives in a referenced Deployment (`workloadRef`), beside a
//! canary whose pods carry the Rollout's labels: the template is read from the Deployment, the
//! constraints are written there (never into the Rollout, which Argo would mark Degraded), the
//! Rollout's pods are rebalanced, and the canary's pods, which its selector also matches, are
//! never evicted.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use serde_json::json;

use super::fixtures::{deployment, flow_map, rollout_replicaset};
use super::support::*;
use crate::harness::{Ctx, hapolicy_resource, rollout_resource, wait_for};

const WAS: [(&str, &str); 2] = [("app", "petclinic"), ("tier", "was")];
const HASH: &str = "6c8d7f9b4";
const WAIT: Duration = Duration::from_secs(90);

/// The Deployment holding the Rollout's template: scaled to 0 (Argo's `scaleDown`), its own
/// object labelled apart from the policy's selection (at the operator's start its Rollout watch
/// may begin after the first reconcile, which would take a selected template Deployment for a
/// workload of its own once), its pods as the Rollout's.
fn template_deployment() -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: was-template\n  labels: {{role: template}}\n\
         spec:\n  replicas: 0\n  selector:\n    matchLabels: {l}\n  template:\n    metadata:\n      labels: {l}\n    \
         spec:\n      terminationGracePeriodSeconds: 5\n      containers:\n      - name: app\n        image: nginx:1.27\n        \
         resources: {{requests: {{cpu: 100m, memory: 128Mi}}}}\n",
        l = flow_map(&WAS)
    )
}

/// A Rollout with no template of its own, and no selector: both from `was-template`.
fn referencing_rollout() -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: was\n  labels: {l}\nspec:\n  \
         replicas: 2\n  workloadRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: was-template\n  \
         strategy:\n    canary:\n      steps:\n      - setWeight: 50\n",
        l = flow_map(&WAS)
    )
}

pub async fn workload_ref_rollout_is_read_and_written_through_its_deployment(ctx: Ctx) {
    ctx.kubelet.ensure_nodes(&[(ZONE_A, 2), (ZONE_C, 2)]).await;
    ctx.kubelet.cordon_zone(ZONE_A).await;
    ctx.apply(&template_deployment()).await;
    let applied = ctx.apply(&referencing_rollout()).await;
    let uid = applied[0].uid().expect("the Rollout has a uid");
    ctx.apply(&rollout_replicaset("was", &uid, HASH, 2, &WAS))
        .await;
    let _argo = FakeArgo::start_referencing(&ctx, "was", &format!("was-{HASH}"), "was-template");
    // A canary Deployment whose pods carry the Rollout's labels too (and a label of its own);
    // the policy does not select the canary itself.
    let canary: Vec<(&str, &str)> = WAS.iter().copied().chain([("track", "canary")]).collect();
    let canary_yaml = deployment("was-canary", 2, &canary).replacen(
        &format!("  labels: {}\n", flow_map(&canary)),
        "  labels: {role: canary}\n",
        1,
    );
    assert!(canary_yaml.contains("role: canary"), "{canary_yaml}");
    ctx.apply(&canary_yaml).await;
    let was = selector(&WAS);
    ctx.wait_ready_pods_by_zone(&was, &zones(&[(ZONE_C, 4)]), WAIT)
        .await;
    ctx.apply(&petclinic_policy("petclinic", json!({}), json!({})))
        .await;

    let churn = PodChurn::start(&ctx).await;
    let _op = start_operator(&ctx, &[]);
    // The constraints land in the referenced Deployment's template.
    let deployments = ctx.api::<Deployment>();
    let template = wait_for(
        "was-template's template to carry skewguard's constraints",
        WAIT,
        || {
            let deployments = deployments.clone();
            async move {
                let d = deployments.get("was-template").await.ok()?;
                let tsc = d.spec?.template.spec?.topology_spread_constraints?;
                (!tsc.is_empty()).then_some(tsc)
            }
        },
    )
    .await;
    assert_eq!(template[0].topology_key, ZONE_KEY);
    assert_eq!(
        template[0].match_label_keys.as_deref(),
        Some(&["rollouts-pod-template-hash".to_string()][..]),
        "measured as the Rollout's pods are labelled"
    );
    // The Rollout's own template stays empty, as Argo demands of a workloadRef Rollout.
    let rollout = ctx.dynamic(&rollout_resource()).get("was").await.unwrap();
    assert!(
        rollout.data["spec"]["template"].is_null(),
        "{}",
        rollout.data["spec"]
    );
    wait_workload_status(
        &ctx,
        "petclinic",
        "was",
        "was measured through its Deployment's template",
        WAIT,
        |w| w["kind"] == json!("Rollout") && w["replicas"] == json!(2),
    )
    .await;
    let status = ctx
        .dynamic(&hapolicy_resource())
        .get("petclinic")
        .await
        .unwrap();
    let names: Vec<&str> = (status.data["status"]["workloads"]
        .as_array()
        .unwrap()
        .iter())
    .filter_map(|w| w["name"].as_str())
    .collect();
    assert_eq!(
        names,
        ["was"],
        "the template Deployment is not governed on its own"
    );

    // 2a comes back: the Rollout's pods are spread, 1 + 1 (the canary's stay where they are).
    ctx.kubelet.uncordon_zone(ZONE_A).await;
    let own = format!("{was},rollouts-pod-template-hash");
    ctx.wait_ready_pods_by_zone(&own, &zones(&[(ZONE_A, 1), (ZONE_C, 1)]), WAIT)
        .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        churn.deleted(&canary).len(),
        0,
        "the canary's pods are never evicted for was: {:?}",
        churn.deleted(&canary)
    );
    assert!(
        events(&ctx, "PodEvicted", Some("was-canary"))
            .await
            .is_empty()
    );
    assert_eq!(
        occurrences(&events(&ctx, "PodEvicted", Some("was")).await),
        1,
        "exactly one move for was"
    );
}
