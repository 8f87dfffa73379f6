//! What the API server lets skewguard's own ServiceAccount do (issue 27), acting as that account
//! (impersonation) against the guards of config/admission/: each breach a stolen token would try
//! is denied, and what the operator itself does still goes through.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use skewguard::core::pipeline::WriteResult;
use skewguard::core::topology::Move;
use skewguard::shell::controller::actuate;

use super::fixtures::deployment;
use super::scale_in::{
    denied_by_policy, impersonating, install_operator_identity, operator_user,
    remove_admission_policies,
};
use super::support::{SKEWGUARD, ZONE_KEY, hapolicy};
use crate::fake_kubelet::is_ready;
use crate::harness::{Ctx, wait_for};

const WAIT: Duration = Duration::from_secs(90);

/// Denied by the named guard (a ValidatingAdmissionPolicy answers 403 or 422 naming itself).
fn denied_by(result: &Result<impl std::fmt::Debug, kube::Error>, guard: &str) -> bool {
    matches!(result, Err(kube::Error::Api(s)) if s.message.contains(guard))
}

/// An eviction of `pod` as `client` sends it, with `uid` as its precondition (none: no
/// precondition at all).
async fn evict(
    client: &Client,
    ns: &str,
    pod: &str,
    uid: Option<&str>,
) -> Result<Value, kube::Error> {
    let preconditions = uid.map(|uid| json!({ "uid": uid }));
    (client.request::<Value>(actuate::eviction_request(ns, pod, preconditions))).await
}

/// A bare pod (no controller), created by the admin.
fn bare_pod(name: &str, ns: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "bare"}},
        "spec": {"terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "c", "image": "nginx:1.27"}]}
    }))
    .unwrap()
}

/// Deletes `name` at once and waits until it is gone.
async fn delete_now(pods: &Api<Pod>, name: &str) {
    let _ = pods
        .delete(name, &DeleteParams::default().grace_period(0))
        .await;
    wait_for("the pod gone", WAIT, || async {
        pods.get_opt(name)
            .await
            .ok()
            .flatten()
            .is_none()
            .then_some(())
    })
    .await;
}

/// Evictions: only in a namespace with an HAPolicy, never in kube-system, only with the pod's uid
/// as a precondition; and skewguard's own eviction of a pod replaced under its name evicts nothing.
pub async fn evictions_are_scoped_to_policies_and_uids(ctx: Ctx) {
    install_operator_identity(&ctx).await;
    let sa = impersonating(&ctx, &operator_user()).await;
    let admin_pods = ctx.api::<Pod>();
    admin_pods
        .create(&PostParams::default(), &bare_pod("target", &ctx.ns))
        .await
        .expect("create the target pod");
    let uid = admin_pods.get("target").await.unwrap().uid().unwrap();

    // No HAPolicy in the namespace: denied, whatever the eviction carries.
    wait_for("an eviction where no policy is denied", WAIT, || async {
        let r = evict(&sa, &ctx.ns, "target", Some(&uid)).await;
        denied_by(&r, "skewguard-evictions-scoped").then_some(())
    })
    .await;

    // With one: an eviction without the uid precondition is denied.
    ctx.apply(&hapolicy(
        "scoped",
        json!({"selector": {"matchLabels": {"app": "bare"}},
               "spread": [{"topologyKey": ZONE_KEY, "maxSkew": 1}]}),
    ))
    .await;
    wait_for(
        "an eviction without a uid to be denied for it",
        WAIT,
        || async {
            let r = evict(&sa, &ctx.ns, "target", None).await;
            (denied_by_policy(&r) && format!("{r:?}").contains("uid as a precondition"))
                .then_some(())
        },
    )
    .await;

    // The pod is replaced under its name: skewguard's eviction, planned on the old one, evicts
    // nothing (the API server refuses it on the uid), and the replacement runs on.
    delete_now(&admin_pods, "target").await;
    admin_pods
        .create(&PostParams::default(), &bare_pod("target", &ctx.ns))
        .await
        .expect("create the replacement");
    let replacement = admin_pods.get("target").await.unwrap().uid().unwrap();
    assert_ne!(replacement, uid);
    let planned = Move {
        pod: "target".into(),
        pod_uid: uid.clone(),
        ..Default::default()
    };
    let result = actuate::evict(&sa, &ctx.ns, &planned).await;
    assert!(matches!(result, WriteResult::Gone), "{result:?}");
    let still = admin_pods.get("target").await.unwrap();
    assert_eq!(still.uid().as_deref(), Some(replacement.as_str()));
    assert!(still.metadata.deletion_timestamp.is_none(), "not evicted");
    // Planned on the pod as it is, the eviction goes through.
    let current = Move {
        pod_uid: replacement,
        ..planned
    };
    let result = actuate::evict(&sa, &ctx.ns, &current).await;
    assert!(matches!(result, WriteResult::Done), "{result:?}");

    // Never in kube-system, even with a policy there.
    let system = Api::<Pod>::namespaced(ctx.client.clone(), "kube-system");
    let _ = system
        .create(
            &PostParams::default(),
            &bare_pod("skewguard-guard-probe", "kube-system"),
        )
        .await;
    let mut probe_policy: Value = serde_json::from_str(&hapolicy(
        "skewguard-guard-probe",
        json!({"selector": {"matchLabels": {"app": "bare"}},
               "spread": [{"topologyKey": ZONE_KEY, "maxSkew": 1}]}),
    ))
    .unwrap();
    probe_policy["metadata"]["namespace"] = json!("kube-system");
    ctx.apply(&probe_policy.to_string()).await;
    let probe_uid = system
        .get("skewguard-guard-probe")
        .await
        .unwrap()
        .uid()
        .unwrap();
    wait_for("an eviction in kube-system to be denied", WAIT, || async {
        let r = evict(
            &sa,
            "kube-system",
            "skewguard-guard-probe",
            Some(&probe_uid),
        )
        .await;
        (denied_by_policy(&r) && format!("{r:?}").contains("kube-system")).then_some(())
    })
    .await;
    assert!(
        system
            .get_opt("skewguard-guard-probe")
            .await
            .unwrap()
            .is_some()
    );
    let _ = system
        .delete(
            "skewguard-guard-probe",
            &DeleteParams::default().grace_period(0),
        )
        .await;
    let policies = Api::<skewguard::api::HAPolicy>::namespaced(ctx.client.clone(), "kube-system");
    let _ = policies
        .delete("skewguard-guard-probe", &DeleteParams::default())
        .await;
    remove_admission_policies(&ctx).await;
}

/// Template writes: no required anti-affinity, no namespace fields, no user term removed, no
/// spread entry the policy does not ask for; and the status may publish only what the spec asks.
pub async fn workload_and_status_writes_follow_the_policy(ctx: Ctx) {
    ctx.kubelet
        .ensure_nodes(&[("ap-northeast-2a", 1), ("ap-northeast-2c", 1)])
        .await;
    install_operator_identity(&ctx).await;
    ctx.apply(&hapolicy(
        "owner",
        json!({"selector": {"matchLabels": {"app": "owned"}},
               "spread": [{"topologyKey": ZONE_KEY, "maxSkew": 1}],
               "injectConstraints": false}),
    ))
    .await;
    ctx.apply(&deployment("owned", 1, &[("app", "owned")]))
        .await;
    // Another with the user's own preferred anti-affinity, on the zone key.
    let mut users: Value =
        serde_yaml::from_str(&deployment("users", 1, &[("app", "users")])).unwrap();
    users["spec"]["template"]["spec"]["affinity"] = json!({"podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10, "podAffinityTerm": {
            "topologyKey": ZONE_KEY, "labelSelector": {"matchLabels": {"app": "users"}}}}]}});
    ctx.apply(&users.to_string()).await;
    wait_for("a Ready pod of owned", WAIT, || async {
        ctx.pods("app=owned")
            .await
            .iter()
            .any(is_ready)
            .then_some(())
    })
    .await;
    let sa = impersonating(&ctx, &operator_user()).await;
    let deployments: Api<Deployment> = Api::namespaced(sa.clone(), &ctx.ns);
    let apply = |spec: Value| {
        let deployments = deployments.clone();
        async move {
            let body = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "owned"}, "spec": {"template": {"spec": spec}}});
            deployments
                .patch(
                    "owned",
                    &PatchParams::apply(SKEWGUARD).force(),
                    &Patch::Apply(&body),
                )
                .await
        }
    };
    let selector = json!({"matchLabels": {"app": "owned"}});
    let term = |extra: Value| {
        let mut t = json!({"topologyKey": "kubernetes.io/hostname", "labelSelector": selector});
        t.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        t
    };
    // The guards take a moment to be in force, the spread guard also to see the policy: poll
    // with entries it must deny, each another than the last (one let through before is undone
    // by the next).
    let mut attempt = 0;
    wait_for("the spread guard in force", WAIT, || {
        attempt += 1;
        let probe = json!({"topologySpreadConstraints": [{"topologyKey": ZONE_KEY,
            "maxSkew": 1 + attempt, "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": selector}]});
        async move { denied_by(&apply(probe).await, "skewguard-spread-from-policy").then_some(()) }
    })
    .await;
    let mut attempt = 0;
    wait_for("the workload guard in force", WAIT, || {
        attempt += 1;
        let deployments = deployments.clone();
        async move {
            let r = deployments
                .patch(
                    "owned",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"labels": {"probe": attempt.to_string()}}})),
                )
                .await;
            denied_by_policy(&r).then_some(())
        }
    })
    .await;
    // What skewguard writes goes through.
    let allowed = json!({
        "topologySpreadConstraints": [{"topologyKey": ZONE_KEY, "maxSkew": 1,
            "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": selector}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": term(json!({}))}]}}
    });
    apply(allowed.clone())
        .await
        .expect("skewguard's own spread and anti-affinity let through");

    // A required anti-affinity term (symmetric: it would close a zone to every new pod).
    let mut required = allowed.clone();
    required["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] =
        json!([{"topologyKey": ZONE_KEY, "labelSelector": {}, "namespaceSelector": {}}]);
    let r = apply(required).await;
    assert!(denied_by_policy(&r), "a required term: {r:?}");
    assert!(format!("{r:?}").contains("required"), "{r:?}");
    // A preferred term over every namespace.
    let r = apply(json!({"affinity": {"podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": term(json!({"namespaceSelector": {}}))}]}}}))
    .await;
    assert!(denied_by_policy(&r), "a namespaceSelector: {r:?}");
    // A preferred term on the zone key.
    let r = apply(json!({"affinity": {"podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"topologyKey": ZONE_KEY, "labelSelector": {}}}]}}}))
    .await;
    assert!(denied_by_policy(&r), "a term on the zone key: {r:?}");
    // The user's own term replaced by skewguard's (the list is atomic: it is replaced whole).
    let r = deployments
        .patch(
            "users",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"template": {"spec": {"affinity": {"podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 100, "podAffinityTerm": term(json!({}))}]}}}}}}),
            ),
        )
        .await;
    assert!(denied_by_policy(&r), "the user's term removed: {r:?}");
    // Spread entries the policy does not ask for: another key, a hard one, another maxSkew.
    for (key, when, skew) in [
        ("example.com/rack", "ScheduleAnyway", 1),
        (ZONE_KEY, "DoNotSchedule", 1),
        (ZONE_KEY, "ScheduleAnyway", 3),
    ] {
        let r = apply(json!({"topologySpreadConstraints": [{"topologyKey": key,
            "maxSkew": skew, "whenUnsatisfiable": when, "labelSelector": selector}]}))
        .await;
        assert!(
            denied_by(&r, "skewguard-spread-from-policy"),
            "{key} {when} {skew}: {r:?}"
        );
    }
    let d: Deployment = ctx.get("owned").await;
    let spec = d.spec.unwrap().template.spec.unwrap();
    assert!(
        spec.topology_spread_constraints
            .unwrap()
            .iter()
            .all(|c| c.topology_key == ZONE_KEY && c.when_unsatisfiable == "ScheduleAnyway")
    );
    let anti = spec.affinity.unwrap().pod_anti_affinity.unwrap();
    assert!(
        anti.required_during_scheduling_ignored_during_execution
            .is_none()
    );

    // The status: what the admission policy would add to every new pod of the namespace.
    let policies: Api<skewguard::api::HAPolicy> = Api::namespaced(sa, &ctx.ns);
    let publish = |key: &str, when: &str| {
        json!({"status": {"admission": {"workloads": [{
            "kind": "Deployment", "name": "owned", "podSelector": selector,
            "constraints": [{"topologyKey": key, "maxSkew": 1, "whenUnsatisfiable": when,
                             "labelSelector": selector, "nodeAffinityPolicy": "Honor",
                             "nodeTaintsPolicy": "Honor"}],
            "since": "2026-01-01T00:00:00Z"}]}}})
    };
    // Polled, each attempt another key (one let through before the guard was in force is
    // replaced by the next).
    let mut attempt = 0;
    let r = wait_for(
        "a constraint on a key no node has to be denied",
        WAIT,
        || {
            attempt += 1;
            let (policies, body) = (
                policies.clone(),
                publish(
                    &format!("example.com/no-such-key-{attempt}"),
                    "DoNotSchedule",
                ),
            );
            async move {
                let r = policies
                    .patch_status("owner", &PatchParams::default(), &Patch::Merge(body))
                    .await;
                denied_by_policy(&r).then_some(r)
            }
        },
    )
    .await;
    assert!(
        denied_by(&r, "skewguard-published-admission-from-spec"),
        "{r:?}"
    );
    let r = policies
        .patch_status(
            "owner",
            &PatchParams::default(),
            &Patch::Merge(publish(ZONE_KEY, "DoNotSchedule")),
        )
        .await;
    assert!(
        denied_by_policy(&r),
        "DoNotSchedule for a ScheduleAnyway entry: {r:?}"
    );
    policies
        .patch_status(
            "owner",
            &PatchParams::default(),
            &Patch::Merge(publish(ZONE_KEY, "ScheduleAnyway")),
        )
        .await
        .expect("skewguard may publish what the spec asks for");
    remove_admission_policies(&ctx).await;
}
