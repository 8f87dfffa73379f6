//! The install as a platform team runs it, with kubectl against the real API server: the CRD from
//! config/crd, the operator from config/default (its pods admitted with the
//! system-cluster-critical priority outside kube-system), and `kubectl delete -k config/default`
//! (`make undeploy`) removing the operator while the CRD and every HAPolicy stay.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use serde_json::json;

use crate::harness::{Ctx, hapolicy_resource, wait_for};

const OPERATOR_NS: &str = "skewguard-system";

fn kubectl_ok(ctx: &Ctx, args: &[&str]) {
    let out = ctx.kubectl(args);
    assert!(
        out.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub async fn undeploy_keeps_the_crd_and_the_policies(ctx: Ctx) {
    let repo = ctx.repo.clone();
    let dir = |d: &str| repo.join(d).display().to_string();
    kubectl_ok(&ctx, &["apply", "-k", &dir("config/crd")]);
    let policies = ctx.dynamic(&hapolicy_resource());
    let policy: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "skewguard.dev/v1alpha1", "kind": "HAPolicy",
        "metadata": {"name": "kept"},
        "spec": {"selector": {"matchLabels": {"app": "petclinic"}},
                 "spread": [{"topologyKey": "topology.kubernetes.io/zone"}]},
    }))
    .unwrap();
    policies
        .create(&PostParams::default(), &policy)
        .await
        .expect("create an HAPolicy");

    kubectl_ok(&ctx, &["apply", "-k", &dir("config/default")]);
    // The manager's pods are admitted with the priority class's value (the Priority admission
    // plugin resolves it; an unknown or forbidden class would refuse the pod).
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), OPERATOR_NS);
    let priority = wait_for("the manager's pods", Duration::from_secs(60), || async {
        let list = pods
            .list(&ListParams::default().labels("app.kubernetes.io/name=skewguard"))
            .await
            .ok()?;
        let pod = list.items.first()?.spec.clone()?;
        Some((pod.priority_class_name, pod.priority))
    })
    .await;
    assert_eq!(
        priority,
        (
            Some("system-cluster-critical".to_string()),
            Some(2_000_000_000)
        )
    );

    // Removing the operator (make undeploy) leaves the CRD and the policies.
    kubectl_ok(
        &ctx,
        &[
            "delete",
            "-k",
            &dir("config/default"),
            "--ignore-not-found",
            "--wait=false",
        ],
    );
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    wait_for(
        "skewguard-system deleted",
        Duration::from_secs(120),
        || async {
            match namespaces.get_opt(OPERATOR_NS).await {
                Ok(None) => Some(()),
                _ => None,
            }
        },
    )
    .await;
    let crds: Api<CustomResourceDefinition> = Api::all(ctx.client.clone());
    let crd = crds
        .get("hapolicies.skewguard.dev")
        .await
        .expect("the CRD outlives the operator");
    assert!(crd.metadata.deletion_timestamp.is_none());
    let kept = policies
        .get("kept")
        .await
        .expect("the HAPolicy outlives the operator");
    assert_eq!(kept.metadata.name.as_deref(), Some("kept"));
    println!(
        "\n  config/default removed; the CRD and HAPolicy {}/kept stay",
        ctx.ns
    );
}
