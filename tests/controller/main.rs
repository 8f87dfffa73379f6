//! Controller tests against a mocked API server: the requests a reconcile makes for the field
//! scenario, under each rule users count on.

mod beside;
mod fake_api;
mod fencing;
mod fixtures;

use std::sync::Arc;

use fake_api::{FakeApi, evictions_refused};
use fixtures::*;
use kube::api::DynamicObject;
use serde_json::{Value, json};
use skewguard::shell::controller::context::Limits;
use skewguard::shell::controller::reconcile::reconcile;

pub fn no_injection() -> Value {
    json!({"injectConstraints": false})
}

/// Reconciles a policy with `spec` over the field scenario (`web`'s two pods in zone c) once.
async fn reconcile_piled_web(
    rules: Vec<fake_api::Rule>,
    spec: Value,
    dry_run: bool,
) -> (FakeApi, kube::runtime::controller::Action) {
    let (client, api) = FakeApi::start(rules);
    let p = policy("petclinic", "2026-01-01T00:00:00Z", spec);
    let deployments = vec![web(plain_template(), json!([]))];
    let ctx = context(client, vec![p.clone()], deployments, piled_pods(), dry_run);
    let requeue = reconcile(Arc::new(p), ctx).await.unwrap();
    (api, requeue)
}

#[tokio::test]
async fn injection_applies_only_the_missing_constraints_as_skewguard() {
    let (client, api) = FakeApi::start(vec![]);
    let p = policy(
        "petclinic",
        "2026-01-01T00:00:00Z",
        json!({"hostAntiAffinity": "Preferred"}),
    );
    // The user already spreads over hostname: only the zone entry is injected.
    let template = json!({
        "containers": [{"name": "nginx", "image": "nginx"}],
        "topologySpreadConstraints": [{"topologyKey": "kubernetes.io/hostname", "maxSkew": 1,
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "petclinic", "tier": "web"}}}]
    });
    let mut p2 = p.clone();
    p2.spec
        .spread
        .push(skewguard::api::SpreadEntry::new("kubernetes.io/hostname"));
    let ctx = context(
        client,
        vec![p2.clone()],
        vec![web(template, json!([]))],
        piled_pods(),
        false,
    );
    reconcile(Arc::new(p2), ctx).await.unwrap();

    let applies: Vec<_> = api
        .writes()
        .into_iter()
        .filter(|r| r.is("PATCH", "/deployments/web"))
        .collect();
    assert_eq!(applies.len(), 1, "one server-side apply: {applies:#?}");
    let apply = &applies[0];
    assert!(
        apply.uri.contains("fieldManager=skewguard"),
        "{}",
        apply.uri
    );
    assert!(
        !apply.uri.contains("force=true"),
        "never forces other managers' fields"
    );
    assert_eq!(apply.content_type, "application/apply-patch+yaml");
    let spec = &apply.body["spec"]["template"]["spec"];
    let constraints = spec["topologySpreadConstraints"].as_array().unwrap();
    assert_eq!(
        constraints.len(),
        1,
        "the user's hostname constraint is left alone"
    );
    assert_eq!(constraints[0]["topologyKey"], "topology.kubernetes.io/zone");
    assert_eq!(
        constraints[0]["matchLabelKeys"],
        json!(["pod-template-hash"])
    );
    assert_eq!(
        constraints[0]["labelSelector"],
        json!({"matchLabels": {"app": "petclinic", "tier": "web"}})
    );
    assert_eq!(constraints[0]["nodeTaintsPolicy"], "Honor");
    let anti =
        &spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(anti["weight"], 100);
    assert_eq!(
        anti["podAffinityTerm"]["topologyKey"],
        "kubernetes.io/hostname"
    );
    // Only the fields skewguard owns: no containers, no replicas.
    assert!(spec.get("containers").is_none());
    assert!(apply.body["spec"].get("replicas").is_none());
    assert!(
        api.event_reasons()
            .await
            .contains(&"ConstraintsInjected".to_string())
    );
}

#[tokio::test]
async fn constraints_skewguard_already_owns_are_not_applied_again() {
    let (client, api) = FakeApi::start(vec![]);
    let p = policy("petclinic", "2026-01-01T00:00:00Z", json!({}));
    let injected = json!({
        "topologyKey": "topology.kubernetes.io/zone", "maxSkew": 1,
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"app": "petclinic", "tier": "web"}},
        "matchLabelKeys": ["pod-template-hash"],
        "nodeAffinityPolicy": "Honor", "nodeTaintsPolicy": "Honor"
    });
    let template = json!({"containers": [{"name": "nginx", "image": "nginx"}],
                          "topologySpreadConstraints": [injected]});
    let managed = json!([{"manager": "skewguard", "operation": "Apply", "apiVersion": "apps/v1",
    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {
        "f:topologySpreadConstraints": {
            "k:{\"topologyKey\":\"topology.kubernetes.io/zone\",\"whenUnsatisfiable\":\"ScheduleAnyway\"}": {}
        }}}}}}]);
    // Balanced pods: nothing to do at all.
    let pods = vec![pod("web-1", "a-1"), pod("web-2", "c-1")];
    let ctx = context(
        client,
        vec![p.clone()],
        vec![web(template, managed)],
        pods,
        false,
    );
    reconcile(Arc::new(p), ctx).await.unwrap();
    let writes: Vec<_> = api
        .writes()
        .into_iter()
        .filter(|r| !r.uri.contains("/status"))
        .collect();
    assert!(
        writes.is_empty(),
        "no writes to a balanced, already injected workload: {writes:#?}"
    );
    assert_eq!(api.last_status()["workloads"][0]["balanced"], true);
}

#[tokio::test]
async fn skew_past_stabilization_evicts_one_pod_toward_the_empty_zone() {
    let (api, _) = reconcile_piled_web(vec![], no_injection(), false).await;
    let evictions: Vec<_> = api
        .writes()
        .into_iter()
        .filter(|r| r.is("POST", "/eviction"))
        .collect();
    assert_eq!(evictions.len(), 1, "exactly one eviction: {evictions:#?}");
    assert!(
        evictions[0]
            .uri
            .contains("/namespaces/petclinic/pods/web-1/eviction")
    );
    assert_eq!(evictions[0].body["metadata"]["name"], "web-1");
    let status = api.last_status();
    let w = &status["workloads"][0];
    assert_eq!(w["rebalance"]["state"], "Evicting");
    assert_eq!(w["rebalance"]["actions"], 1);
    assert_eq!(w["constraints"][0]["skew"], 2);
    assert_eq!(
        w["constraints"][0]["domains"],
        json!({"ap-northeast-2a": 0, "ap-northeast-2c": 2})
    );
    assert_eq!(w["zoneLoss"]["fraction"], 1.0);
    let reasons = api.event_reasons().await;
    assert!(reasons.contains(&"SkewDetected".to_string()), "{reasons:?}");
    assert!(reasons.contains(&"PodEvicted".to_string()), "{reasons:?}");
    // Both PodEvicted Events (on the workload and on the policy) name the evicted pod as their
    // related object.
    let evicted_events: Vec<Value> = api
        .requests()
        .into_iter()
        .filter(|r| r.uri.contains("/events") && r.body["reason"] == "PodEvicted")
        .map(|r| r.body)
        .collect();
    assert_eq!(evicted_events.len(), 2, "{evicted_events:?}");
    for e in &evicted_events {
        assert_eq!(e["related"]["kind"], "Pod", "{e}");
        assert_eq!(e["related"]["name"], "web-1", "{e}");
    }
}

#[tokio::test]
async fn a_refused_eviction_blocks_on_the_disruption_budget() {
    let (api, requeue) =
        reconcile_piled_web(vec![evictions_refused()], no_injection(), false).await;
    assert_eq!(
        requeue,
        kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(10))
    );
    let status = api.last_status();
    let rebalance = &status["workloads"][0]["rebalance"];
    assert_eq!(rebalance["state"], "Blocked");
    assert_eq!(rebalance["reason"], "PodDisruptionBudget");
    assert_eq!(
        rebalance["actions"], 0,
        "a refused eviction is no disruption"
    );
    assert!(
        api.event_reasons()
            .await
            .contains(&"RebalanceBlocked".to_string())
    );
}

#[tokio::test]
async fn a_budget_without_room_blocks_before_any_eviction_is_tried() {
    let (client, api) = FakeApi::start(vec![]);
    let p = policy("petclinic", "2026-01-01T00:00:00Z", no_injection());
    let deployments = vec![web(plain_template(), json!([]))];
    let ctx = context_with_budgets(
        client,
        vec![p.clone()],
        deployments,
        piled_pods(),
        vec![web_budget(0)],
        false,
    );
    reconcile(Arc::new(p.clone()), ctx).await.unwrap();
    assert_eq!(api.evictions(), 0);
    assert_eq!(
        api.last_status()["workloads"][0]["rebalance"]["reason"],
        "PodDisruptionBudget"
    );
    // With room, the eviction goes ahead.
    let (client, api) = FakeApi::start(vec![]);
    let deployments = vec![web(plain_template(), json!([]))];
    let ctx = context_with_budgets(
        client,
        vec![p.clone()],
        deployments,
        piled_pods(),
        vec![web_budget(1)],
        false,
    );
    reconcile(Arc::new(p), ctx).await.unwrap();
    assert_eq!(api.evictions(), 1);
}

async fn assert_no_writes(ctx_dry_run: bool, spec: Value) {
    let (api, _) = reconcile_piled_web(vec![], spec, ctx_dry_run).await;
    let writes: Vec<_> = api
        .writes()
        .into_iter()
        .filter(|r| !r.uri.contains("/hapolicies/"))
        .collect();
    assert!(
        writes.is_empty(),
        "no writes to workloads or pods: {writes:#?}"
    );
    let message = api.last_status()["workloads"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("would"),
        "the status says what would have been done: {message}"
    );
}

#[tokio::test]
async fn dry_run_writes_nothing_but_says_what_it_would_do() {
    assert_no_writes(true, json!({})).await;
}

#[tokio::test]
async fn a_paused_policy_writes_nothing_but_says_what_it_would_do() {
    assert_no_writes(false, json!({"paused": true})).await;
}

#[tokio::test]
async fn the_status_patch_tells_the_story() {
    let (api, _) = reconcile_piled_web(vec![], no_injection(), false).await;
    // The last: the one before the eviction records the move in flight.
    let patch = api
        .requests()
        .into_iter()
        .rev()
        .find(|r| {
            r.is(
                "PATCH",
                "/apis/skewguard.dev/v1alpha1/namespaces/petclinic/hapolicies/petclinic/status",
            )
        })
        .expect("a status patch");
    assert_eq!(patch.content_type, "application/merge-patch+json");
    let status = &patch.body["status"];
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["workloadCount"], 1);
    assert_eq!(status["unbalancedCount"], 1);
    assert_eq!(status["maxObservedSkew"], 2);
    let conditions: Vec<(&str, &str, &str)> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap(),
                c["status"].as_str().unwrap(),
                c["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        conditions,
        vec![
            ("Ready", "True", "Reconciled"),
            ("Balanced", "False", "SkewExceeded"),
            ("Rebalancing", "True", "Evicting")
        ]
    );
    assert!(
        status["conditions"][1]["message"]
            .as_str()
            .unwrap()
            .contains("web: zone skew 2 > 1")
    );
}

#[tokio::test]
async fn the_older_policy_governs_and_the_newer_reports_a_conflict() {
    let (client, api) = FakeApi::start(vec![]);
    let older = policy("first", "2026-01-01T00:00:00Z", no_injection());
    let newer = policy("second", "2026-03-01T00:00:00Z", no_injection());
    let ctx = context(
        client,
        vec![older.clone(), newer.clone()],
        vec![web(plain_template(), json!([]))],
        piled_pods(),
        false,
    );
    reconcile(Arc::new(newer), ctx.clone()).await.unwrap();
    let writes: Vec<_> = api
        .writes()
        .into_iter()
        .filter(|r| !r.uri.contains("/hapolicies/"))
        .collect();
    assert!(
        writes.is_empty(),
        "the newer policy touches nothing: {writes:#?}"
    );
    let rebalance = &api.last_status()["workloads"][0]["rebalance"];
    assert_eq!(
        (rebalance["state"].as_str(), rebalance["reason"].as_str()),
        (Some("Blocked"), Some("Conflict"))
    );
    assert!(
        api.event_reasons()
            .await
            .contains(&"PolicyConflict".to_string())
    );
    // The older one acts.
    reconcile(Arc::new(older), ctx).await.unwrap();
    assert_eq!(api.evictions(), 1);
}

#[tokio::test]
async fn a_follower_writes_nothing() {
    let (client, api) = FakeApi::start(vec![]);
    let p = policy("petclinic", "2026-01-01T00:00:00Z", json!({}));
    let ctx = piled_web_context(client, &p);
    ctx.fence.set(skewguard::core::lease::Holding::Not);
    reconcile(Arc::new(p), ctx).await.unwrap();
    assert!(api.requests().is_empty(), "{:#?}", api.requests());
}

#[tokio::test]
async fn another_policy_in_the_namespace_does_not_wipe_what_this_one_remembers() {
    let (client, api) = FakeApi::start(vec![]);
    let web_policy = policy("web", "2026-01-01T00:00:00Z", no_injection());
    let mut other = policy("other", "2026-01-01T00:00:00Z", no_injection());
    other.spec.selector = serde_json::from_value(json!({"matchLabels": {"tier": "api"}})).unwrap();
    let ctx = context(
        client,
        vec![web_policy.clone(), other.clone()],
        vec![web(plain_template(), json!([]))],
        piled_pods(),
        false,
    );
    reconcile(Arc::new(web_policy.clone()), ctx.clone())
        .await
        .unwrap();
    reconcile(Arc::new(other), ctx.clone()).await.unwrap();
    // web-1 is still terminating in the cache: the first eviction's replacement is awaited.
    reconcile(Arc::new(web_policy), ctx).await.unwrap();
    assert_eq!(api.evictions(), 1);
    assert_eq!(
        api.last_status()["workloads"][0]["rebalance"]["reason"],
        "AwaitingReplacement"
    );
}

#[tokio::test]
async fn a_malformed_workload_marks_only_its_own_entry() {
    let (client, api) = FakeApi::start(vec![]);
    let p = policy("petclinic", "2026-01-01T00:00:00Z", no_injection());
    let workloads = vec![
        dynamic_deployment(&web(plain_template(), json!([]))),
        malformed_rollout(),
    ];
    let ctx = context_with_objects(
        client,
        vec![p.clone()],
        workloads,
        piled_pods(),
        vec![],
        false,
    );
    reconcile(Arc::new(p), ctx).await.unwrap();
    assert_eq!(api.evictions(), 1, "the healthy Deployment is rebalanced");
    let status = api.last_status();
    let entries = status["workloads"].as_array().unwrap();
    let was = entries
        .iter()
        .find(|w| w["name"] == "was")
        .expect("an entry for was");
    assert_eq!(was["kind"], "Rollout");
    assert_eq!(was["rebalance"]["state"], "Blocked");
    assert_eq!(was["rebalance"]["reason"], "InvalidWorkload");
    assert!(
        was["message"].as_str().unwrap().contains("unreadable spec"),
        "{was}"
    );
    let web = entries.iter().find(|w| w["name"] == "web").unwrap();
    assert_eq!(web["rebalance"]["reason"], "Evicting");
    let ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True", "{ready}");
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains("1 cannot be read"),
        "{ready}"
    );
}

/// A policy whose status says what the last operator process remembered about `web`.
fn policy_remembering(rebalance: Value) -> skewguard::api::HAPolicy {
    let mut p = policy(
        "petclinic",
        "2026-01-01T00:00:00Z",
        json!({"injectConstraints": false, "rebalance": {"stabilizationSeconds": 0, "cooldownSeconds": 3600}}),
    );
    p.status = Some(
        serde_json::from_value(json!({"workloads": [{
            "kind": "Deployment", "name": "web", "replicas": 2, "balanced": false,
            "rebalance": rebalance
        }]}))
        .unwrap(),
    );
    p
}

fn seconds_ago(s: i64) -> String {
    let t = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(s);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[tokio::test]
async fn a_new_process_keeps_the_cooldown_and_back_off_the_last_one_wrote() {
    for (rebalance, reason) in [
        (
            // The last process acted a minute ago and the episode ended: cooldown holds.
            json!({"state": "Waiting", "reason": "Cooldown", "lastActionTime": seconds_ago(60),
                   "actions": 1, "memory": {"skewedSince": seconds_ago(120)}}),
            "Cooldown",
        ),
        (
            // It was backing off for ten more minutes.
            json!({"state": "BackingOff", "reason": "RebalanceIneffective", "actions": 2,
                   "memory": {"skewedSince": seconds_ago(900), "backoffSeconds": 1200,
                              "backoffUntil": seconds_ago(-600)}}),
            "RebalanceIneffective",
        ),
    ] {
        let (client, api) = FakeApi::start(vec![]);
        let p = policy_remembering(rebalance);
        let deployments = vec![web(plain_template(), json!([]))];
        let ctx = context(client, vec![p.clone()], deployments, piled_pods(), false);
        reconcile(Arc::new(p), ctx).await.unwrap();
        assert_eq!(
            api.evictions(),
            0,
            "{reason}: nothing inside what the last process started"
        );
        let status = api.last_status();
        let rebalance = &status["workloads"][0]["rebalance"];
        assert_eq!(rebalance["reason"], reason, "{rebalance}");
        assert!(
            rebalance["memory"]["skewedSince"].is_string(),
            "{rebalance}"
        );
    }
}

#[tokio::test]
async fn the_memory_is_written_into_the_status() {
    let (api, _) = reconcile_piled_web(vec![], no_injection(), false).await;
    assert_eq!(api.evictions(), 1);
    let memory = &api.last_status()["workloads"][0]["rebalance"]["memory"];
    assert_eq!(memory["episode"], true, "{memory}");
    let in_flight = memory["inFlight"].as_array().unwrap();
    assert_eq!(in_flight.len(), 1, "{memory}");
    assert!(in_flight[0]["pod"].as_str().unwrap().starts_with("web-"));
    assert_eq!(in_flight[0]["toDomain"], "ap-northeast-2a");
}

/// A step that evicts writes no deletion cost, even when the eviction is refused: the move
/// would change the ranks. The status says the order is still to be written.
#[tokio::test]
async fn deletion_costs_wait_for_a_step_that_evicts_even_a_refused_one() {
    let (api, _) = reconcile_piled_web(vec![evictions_refused()], no_injection(), false).await;
    let patches: Vec<_> = api
        .writes()
        .into_iter()
        .filter(|r| r.is("PATCH", "/pods/"))
        .collect();
    assert!(patches.is_empty(), "{patches:?}");
    let status = api.last_status();
    assert_eq!(
        status["workloads"][0]["rebalance"]["reason"],
        "PodDisruptionBudget"
    );
    assert_eq!(
        status["workloads"][0]["scaleIn"],
        json!({"order": "Updating", "pending": 1})
    );
}

/// Dry-run writes no cost; the status says the order is still to be written.
#[tokio::test]
async fn dry_run_writes_no_deletion_cost() {
    let (api, _) = reconcile_piled_web(vec![], no_injection(), true).await;
    assert!(!api.writes().iter().any(|r| r.is("PATCH", "/pods/")));
    let status = api.last_status();
    assert_eq!(
        status["workloads"][0]["scaleIn"],
        json!({"order": "Updating", "pending": 1})
    );
    let message = status["workloads"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("dry-run: would write the deletion cost of 1 pod(s)"),
        "{message}"
    );
}

/// Reconciles the field scenario once with the cluster offering admission mode (policy and
/// binding installed) or not.
async fn reconcile_offering_admission(installed: bool) -> FakeApi {
    let (client, api) = FakeApi::start(vec![]);
    let p = policy("petclinic", "2026-01-01T00:00:00Z", json!({}));
    let ctx = piled_web_context(client, &p);
    ctx.admission
        .send_replace(Some(skewguard::core::injection::AdmissionSupport {
            served: true,
            policy_installed: installed,
            binding_installed: installed,
            warnings: vec![],
        }));
    reconcile(Arc::new(p), ctx).await.unwrap();
    api
}

#[tokio::test]
async fn in_admission_mode_nothing_is_written_to_the_workload_and_the_status_publishes_it() {
    let api = reconcile_offering_admission(true).await;
    assert!(
        !api.writes().iter().any(|r| r.uri.contains("/deployments/")),
        "no write to the Deployment: {:#?}",
        api.writes()
    );
    assert!(api.evictions() > 0, "rebalancing goes on as before");
    let status = api.last_status();
    assert_eq!(status["injection"]["mode"], "Admission");
    assert_eq!(status["injection"]["reason"], "AdmissionPolicyInstalled");
    let entry = &status["admission"]["workloads"][0];
    assert_eq!(entry["name"], "web");
    assert_eq!(
        entry["podSelector"],
        json!({"matchLabels": {"app": "petclinic", "tier": "web"}})
    );
    assert_eq!(
        entry["constraints"][0]["topologyKey"],
        "topology.kubernetes.io/zone"
    );
    assert_eq!(status["workloads"][0]["injection"], "Admission");
    assert!(
        !api.event_reasons()
            .await
            .contains(&"ConstraintsInjected".to_string())
    );
}

#[tokio::test]
async fn without_the_admission_policy_the_template_is_written_and_nothing_is_published() {
    let api = reconcile_offering_admission(false).await;
    assert!(
        api.writes()
            .iter()
            .any(|r| r.is("PATCH", "/deployments/web") && r.uri.contains("fieldManager=skewguard")),
        "{:#?}",
        api.writes()
    );
    let status = api.last_status();
    assert_eq!(status["injection"]["mode"], "Template");
    assert_eq!(status["injection"]["reason"], "AdmissionPolicyNotInstalled");
    // Named as null, so the merge patch removes what an earlier status published.
    assert_eq!(status.get("admission"), Some(&Value::Null));
}

#[tokio::test]
async fn the_rollout_budget_lets_one_template_write_through_and_queues_the_next() {
    let (client, api) = FakeApi::start(vec![]);
    let p = policy("petclinic", "2026-01-01T00:00:00Z", json!({}));
    let mut api_deployment = web(plain_template(), json!([]));
    api_deployment.metadata.name = Some("api".into());
    let workloads = [web(plain_template(), json!([])), api_deployment]
        .iter()
        .map(dynamic_deployment)
        .collect();
    let ctx = context_with_limits(
        client,
        vec![p.clone()],
        workloads,
        piled_pods(),
        vec![],
        Limits {
            max_concurrent_rollouts: 1,
            ..limits(false)
        },
    );
    reconcile(Arc::new(p.clone()), ctx.clone()).await.unwrap();
    let applies = |api: &FakeApi| {
        api.requests()
            .iter()
            .filter(|r| r.is("PATCH", "/deployments/"))
            .map(|r| {
                let path = r.uri.split('?').next().unwrap_or_default();
                path.rsplit('/').next().unwrap_or_default().to_string()
            })
            .collect::<Vec<_>>()
    };
    // `api` comes first by name: it takes the one slot; `web` waits for it.
    assert_eq!(applies(&api), ["api"]);
    let states: Vec<(String, String)> = api.last_status()["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap().to_string(),
                w["rebalance"]["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(states[1], ("web".to_string(), "RolloutBudget".to_string()));
    // The slot stays held across reconciles until api's rollout is done.
    reconcile(Arc::new(p), ctx).await.unwrap();
    assert_eq!(applies(&api), ["api", "api"], "web still waits");
}

/// Zone 2a cordoned, `web` (Adaptive over zones, minDomains 2) with web-1 running in 2c and web-2
/// Pending: admitted with DoNotSchedule, left Pending by the scheduler for the spread. The
/// policy's status already publishes the relaxed form (since `published_ago` seconds).
async fn reconcile_stranded(published_ago: i64, dry_run: bool) -> FakeApi {
    let (client, api) = FakeApi::start(vec![]);
    let since = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(published_ago);
    let mut p = policy(
        "petclinic",
        "2026-01-01T00:00:00Z",
        json!({"spread": [{"topologyKey": "topology.kubernetes.io/zone", "maxSkew": 1,
                           "whenUnsatisfiable": "Adaptive", "minDomains": 2}],
               "injection": "Admission"}),
    );
    p.status = Some(
        serde_json::from_value(json!({"admission": {"workloads": [{
            "kind": "Deployment", "name": "web", "since": since.to_string(),
            "podSelector": {"matchLabels": {"app": "petclinic", "tier": "web"}},
            "constraints": [{"topologyKey": "topology.kubernetes.io/zone", "maxSkew": 1,
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app": "petclinic", "tier": "web"}},
                "matchLabelKeys": ["pod-template-hash"],
                "nodeAffinityPolicy": "Honor", "nodeTaintsPolicy": "Honor"}]}]}}))
        .unwrap(),
    );
    let mut cordoned = node("a-1", "ap-northeast-2a");
    cordoned.spec = Some(
        serde_json::from_value(json!({"unschedulable": true, "taints": [
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}))
        .unwrap(),
    );
    let stranded: skewguard::core::snapshot::LeanPod = serde_json::from_value(json!({
        "metadata": {"name": "web-2", "namespace": NS, "uid": "web-2-uid",
                     "labels": {"app": "petclinic", "tier": "web", "pod-template-hash": "abc"},
                     "ownerReferences": web_replicaset()},
        "spec": {"containers": [{"name": "nginx", "image": "nginx"}],
                 "topologySpreadConstraints": [{"topologyKey": "topology.kubernetes.io/zone",
                     "maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule", "minDomains": 2}]},
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable",
            "message": "0/2 nodes are available: 1 node(s) didn't match pod topology spread constraints, 1 node(s) had untolerated taint {node.kubernetes.io/unschedulable: }."}]}
    }))
    .unwrap();
    let ctx = context_on(
        client,
        vec![cordoned, node("c-1", "ap-northeast-2c")],
        vec![p.clone()],
        vec![dynamic_deployment(&web(plain_template(), json!([])))],
        vec![pod("web-1", "c-1"), stranded],
        vec![],
        limits(dry_run),
    );
    ctx.admission
        .send_replace(Some(skewguard::core::injection::AdmissionSupport {
            served: true,
            policy_installed: true,
            binding_installed: true,
            warnings: vec![],
        }));
    reconcile(Arc::new(p), ctx).await.unwrap();
    api
}

#[tokio::test]
async fn a_pod_stranded_while_a_zone_is_out_is_deleted_by_uid_and_counted() {
    let api = reconcile_stranded(10, false).await;
    let deletes: Vec<_> = (api.writes().into_iter())
        .filter(|r| r.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 1, "{:#?}", api.writes());
    assert!(
        deletes[0].uri.contains("/namespaces/petclinic/pods/web-2"),
        "{}",
        deletes[0].uri
    );
    assert_eq!(
        deletes[0].body["preconditions"]["uid"], "web-2-uid",
        "never a replacement of the same name"
    );
    assert_eq!(api.evictions(), 0);
    let status = api.last_status();
    let zone_a = (status["zones"].as_array().unwrap().iter())
        .find(|z| z["domain"] == "ap-northeast-2a")
        .unwrap();
    assert_eq!(
        (&zone_a["health"], &zone_a["reason"]),
        (&json!("Out"), &json!("NodesCordoned"))
    );
    assert_eq!(
        status["admission"]["workloads"][0]["constraints"][0]["whenUnsatisfiable"],
        "ScheduleAnyway"
    );
    assert!(
        status["admission"]["workloads"][0]["constraints"][0]
            .get("minDomains")
            .is_none(),
        "minDomains goes with the hard form only"
    );
    let reasons = api.event_reasons().await;
    assert!(
        reasons.contains(&"PendingPodDeleted".to_string()),
        "{reasons:?}"
    );
    assert!(reasons.contains(&"ZoneOut".to_string()), "{reasons:?}");
}

#[tokio::test]
async fn a_stranded_pod_is_not_deleted_before_the_relaxed_form_is_seen_nor_in_dry_run() {
    let api = reconcile_stranded(0, false).await;
    assert!(
        !api.writes().iter().any(|r| r.method == "DELETE"),
        "{:#?}",
        api.writes()
    );
    let api = reconcile_stranded(10, true).await;
    assert!(!api.writes().iter().any(|r| r.method == "DELETE"));
    let status = api.last_status();
    let message = status["workloads"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("dry-run: would delete Pending pod web-2"),
        "{message}"
    );
}

/// A Rollout whose template lives in a Deployment (`workloadRef`): the constraints are applied to
/// that Deployment, never to the Rollout (Argo refuses a template there), and the Rollout's own
/// pods, read through the Deployment's template, are what it is measured and moved by.
#[tokio::test]
async fn a_workload_ref_rollout_gets_its_constraints_in_the_referenced_deployment() {
    let (client, api) = FakeApi::start(vec![]);
    let p = policy("petclinic", "2026-01-01T00:00:00Z", json!({}));
    let template: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web-template", "namespace": NS, "generation": 1,
                     "labels": {"role": "template"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "petclinic", "tier": "web"}},
                 "template": {"metadata": {"labels": {"app": "petclinic", "tier": "web"}},
                              "spec": plain_template()}}
    }))
    .unwrap();
    let rollout: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "namespace": NS, "generation": 1,
                     "labels": {"app": "petclinic"}},
        "spec": {"replicas": 2,
                 "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                 "name": "web-template"}},
        "status": {"observedGeneration": "1", "replicas": 2, "updatedReplicas": 2,
                   "readyReplicas": 2, "availableReplicas": 2}
    }))
    .unwrap();
    // The Rollout's pods: its ReplicaSet `web-abc`, stamped with Argo's hash label.
    let pods: Vec<_> = piled_pods()
        .into_iter()
        .map(|mut p| {
            let labels = p.metadata.labels.get_or_insert_default();
            labels.remove("pod-template-hash");
            labels.insert("rollouts-pod-template-hash".into(), "abc".into());
            p
        })
        .collect();
    let ctx = context_with_objects(
        client,
        vec![p.clone()],
        vec![template, rollout],
        pods,
        vec![],
        false,
    );
    reconcile(Arc::new(p), ctx).await.unwrap();

    let writes = api.writes();
    let applies: Vec<_> = (writes.iter())
        .filter(|r| r.is("PATCH", "/deployments/web-template"))
        .collect();
    assert_eq!(applies.len(), 1, "{writes:#?}");
    assert!(applies[0].uri.contains("fieldManager=skewguard"));
    assert_eq!(applies[0].body["kind"], "Deployment");
    assert_eq!(applies[0].body["metadata"]["name"], "web-template");
    let constraints = &applies[0].body["spec"]["template"]["spec"]["topologySpreadConstraints"];
    assert_eq!(constraints[0]["topologyKey"], "topology.kubernetes.io/zone");
    assert_eq!(
        constraints[0]["matchLabelKeys"],
        json!(["rollouts-pod-template-hash"])
    );
    assert!(
        !writes
            .iter()
            .any(|r| r.uri.contains("/rollouts/web") && !r.uri.contains("/status")),
        "nothing written to the Rollout: {writes:#?}"
    );
    let status = api.last_status();
    assert_eq!(status["workloads"][0]["kind"], "Rollout");
    assert_eq!(status["workloads"][0]["name"], "web");
    assert_eq!(status["workloads"][0]["replicas"], 2);
}
