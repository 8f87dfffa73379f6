//! Safe across restarts and at fleet scale (issue 11), on the real control plane:
//!
//! - `restart_mid_episode_keeps_cooldown_and_in_flight`: the operator is SIGKILLed right after an
//!   eviction; its successor reads the decision memory from the policy's status: it judges the
//!   eviction in flight instead of forgetting it, and keeps the cooldown the dead one started.
//! - `twenty_deployments_adopted_two_at_a_time`: adopting 20 unconstrained Deployments rolls at
//!   most `--max-concurrent-rollouts` (2) of them at a time; the rest are Queued (RolloutBudget).
//! - `opted_out_pods_are_never_evicted`: pods carrying any of the three opt-out annotations count
//!   for skew but are never evicted (reason PodsOptedOut).
//! - `a_malformed_rollout_beside_a_healthy_deployment`: one unreadable workload gets its own
//!   Blocked/InvalidWorkload entry; the policy stays Ready and its other workload is rebalanced.
//! - `api_server_outage_mid_rebalance`: kube-apiserver goes away for 30 s in the middle of a
//!   rebalance; the operator stays up and healthy, and finishes with the fewest evictions.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::ListParams;
use serde_json::{Value, json};

use super::fixtures::deployment;
use super::support::*;
use crate::harness::{Ctx, OperatorProcess, wait_for};

const ZONE_B: &str = "ap-northeast-2b";
const WAIT: Duration = Duration::from_secs(90);
const WEB: [(&str, &str); 1] = [("app", "web")];

/// The policy over pods labelled `app: <app>` (zone maxSkew 1) with `rebalance` and `extra`
/// merged in.
fn policy(name: &str, app: &str, rebalance: Value, extra: Value) -> String {
    let mut spec = json!({
        "selector": {"matchLabels": {"app": app}},
        "spread": [{"topologyKey": ZONE_KEY, "maxSkew": 1}],
        "rebalance": rebalance,
    });
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    hapolicy(name, spec)
}

fn memory_of(w: &Value) -> &Value {
    &w["rebalance"]["memory"]
}

fn in_flight_uids(w: &Value) -> Vec<String> {
    memory_of(w)["inFlight"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["podUid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The operator's successful evictions of `workload`, from its `/metrics` (0 when never counted);
/// `None` when /metrics does not answer.
async fn evictions(op: &OperatorProcess, workload: &str) -> Option<f64> {
    let text = http_get(&op.metrics_addr, "/metrics").await?;
    let samples = parse_metrics(&text);
    Some(
        metric(
            &samples,
            "skewguard_rebalance_actions_total",
            &[
                ("workload", workload),
                ("action", "evict"),
                ("result", "success"),
            ],
        )
        .unwrap_or(0.0),
    )
}

async fn wait_operator_ready(op: &OperatorProcess) {
    wait_for(
        "the operator's /readyz",
        Duration::from_secs(30),
        || async { http_get(&op.health_addr, "/readyz").await },
    )
    .await;
}

/// An eviction in flight survives a SIGKILL of the operator (the successor judges it, and evicts
/// nothing meanwhile), and so does the cooldown it started.
pub async fn restart_mid_episode_keeps_cooldown_and_in_flight(ctx: Ctx) {
    const COOLDOWN: i64 = 600;
    ctx.kubelet.ensure_nodes(&[(ZONE_A, 2), (ZONE_C, 2)]).await;
    ctx.kubelet.cordon_zone(ZONE_A).await;
    ctx.apply(&deployment("web", 2, &WEB)).await;
    ctx.wait_ready_pods_by_zone("app=web", &zones(&[(ZONE_C, 2)]), WAIT)
        .await;
    ctx.apply(&policy(
        "ha",
        "web",
        json!({"stabilizationSeconds": 1, "cooldownSeconds": COOLDOWN, "maxDisruptions": 1}),
        json!({}),
    ))
    .await;
    let mut first = start_operator(&ctx, &[]);
    wait_deployment_constrained(&ctx, "web", 2).await;

    // A slow readiness probe keeps the replacement in flight for a while.
    const READINESS: Duration = Duration::from_secs(15);
    ctx.kubelet.set_readiness_delay(READINESS);
    let churn = PodChurn::start(&ctx).await;
    ctx.kubelet.uncordon_zone(ZONE_A).await;
    let evicted = wait_for("the first eviction", Duration::from_secs(40), || {
        let d = churn.deleted(&WEB);
        async move { d.first().cloned() }
    })
    .await;
    let evicted_at = Instant::now();
    let before = wait_workload_status(
        &ctx,
        "ha",
        "web",
        "the eviction in flight in the status",
        Duration::from_secs(10),
        |w| in_flight_uids(w).len() == 1 && w["rebalance"]["lastActionTime"].is_string(),
    )
    .await;
    first.kill();
    let killed_after = evicted_at.elapsed();
    assert!(
        killed_after < READINESS,
        "killed {killed_after:?} after the eviction: the replacement may be Ready already"
    );
    let in_flight = memory_of(&before)["inFlight"][0].clone();
    assert_eq!(in_flight["pod"], json!(evicted), "{before}");
    assert_eq!(memory_of(&before)["episode"], json!(true), "{before}");
    assert_eq!(before["rebalance"]["actions"], json!(1), "{before}");
    let last_action = before["rebalance"]["lastActionTime"].clone();
    println!(
        "\n  restart: killed the operator {:.1}s after it evicted {evicted}; memory then: {}",
        killed_after.as_secs_f64(),
        memory_of(&before)
    );

    // The successor: until the replacement is Ready and the workload settled, the status keeps
    // the same eviction in flight; then it is judged, and nothing else is evicted.
    let second = start_operator(&ctx, &[]);
    wait_operator_ready(&second).await;
    let deployments = ctx.api::<Deployment>();
    let judged_at = loop {
        let w = workload_status(&ctx, "ha", "web")
            .await
            .expect("web's entry");
        let uids = in_flight_uids(&w);
        assert_eq!(
            w["rebalance"]["lastActionTime"], last_action,
            "the successor kept lastActionTime: {w}"
        );
        assert_eq!(w["rebalance"]["actions"], json!(1), "{w}");
        if uids.is_empty() {
            let d = deployments.get("web").await.unwrap();
            assert!(
                deployment_settled(&d, 2),
                "the eviction in flight was dropped before the replacement was Ready: {w}; \
                 web's status: {:?}",
                d.status
            );
            break evicted_at.elapsed();
        }
        assert_eq!(
            uids,
            vec![in_flight["podUid"].as_str().unwrap().to_string()],
            "{w}"
        );
        assert!(
            evicted_at.elapsed() < READINESS + Duration::from_secs(30),
            "the eviction in flight was never judged: {w}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    ctx.wait_ready_pods_by_zone("app=web", &zones(&[(ZONE_A, 1), (ZONE_C, 1)]), WAIT)
        .await;
    let w = wait_workload_status(
        &ctx,
        "ha",
        "web",
        "web balanced, the move judged by the successor",
        Duration::from_secs(20),
        |w| w["balanced"] == json!(true) && in_flight_uids(w).is_empty(),
    )
    .await;
    assert_eq!(w["rebalance"]["actions"], json!(1), "{w}");
    assert_eq!(w["rebalance"]["lastActionTime"], last_action, "{w}");
    assert_eq!(churn.deleted(&WEB), vec![evicted.clone()]);
    println!(
        "  restart: the successor judged the move {:.1}s after the eviction (readiness {}s), \
         without evicting again",
        judged_at.as_secs_f64(),
        READINESS.as_secs()
    );

    // Skewed again, well within the cooldown the dead operator started: the successor, which
    // never acted itself, waits it out.
    ctx.kubelet.set_readiness_delay(Duration::ZERO);
    ctx.kubelet.cordon_zone(ZONE_A).await;
    for p in ctx.pods("app=web").await {
        let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
        if node.and_then(|n| ctx.kubelet.zone_of(&n)).as_deref() == Some(ZONE_A) {
            ctx.api::<k8s_openapi::api::core::v1::Pod>()
                .delete(&p.name_any(), &Default::default())
                .await
                .unwrap();
        }
    }
    ctx.wait_ready_pods_by_zone("app=web", &zones(&[(ZONE_C, 2)]), WAIT)
        .await;
    let churn = PodChurn::start(&ctx).await;
    ctx.kubelet.uncordon_zone(ZONE_A).await;
    let w = wait_workload_status(
        &ctx,
        "ha",
        "web",
        "web skewed again and waiting out the cooldown",
        Duration::from_secs(20),
        |w| {
            w["balanced"] == json!(false)
                && rebalance_of(w) == ("Waiting".into(), "Cooldown".into())
        },
    )
    .await;
    println!("  restart: skewed again: {}", w["message"]);
    let quiet = Duration::from_secs(20);
    tokio::time::sleep(quiet).await;
    assert_eq!(
        churn.deleted(&WEB),
        Vec::<String>::new(),
        "evicted within the cooldown"
    );
    assert_eq!(
        ctx.ready_pods_by_zone("app=web").await,
        zones(&[(ZONE_C, 2)])
    );
    assert_eq!(
        evictions(&second, "web").await,
        Some(0.0),
        "the successor's evict counter"
    );
    let w = workload_status(&ctx, "ha", "web").await.unwrap();
    assert_eq!(
        rebalance_of(&w),
        ("Waiting".into(), "Cooldown".into()),
        "{w}"
    );
    assert_eq!(w["rebalance"]["actions"], json!(1), "{w}");
    assert_eq!(w["rebalance"]["lastActionTime"], last_action, "{w}");
    assert_eq!(
        occurrences(&events(&ctx, "PodEvicted", Some("web")).await),
        1
    );
    println!(
        "  restart: skewed again {:.0}s after the eviction: Waiting/Cooldown, no eviction for {}s",
        evicted_at.elapsed().as_secs_f64() - quiet.as_secs_f64(),
        quiet.as_secs()
    );
    drop(second);
}

/// Whether skewguard's constraints are in the Deployment's template.
fn constrained(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.topology_spread_constraints.as_ref())
        .is_some_and(|c| !c.is_empty())
}

/// 20 Deployments without constraints under one policy: at most two roll out at a time.
pub async fn twenty_deployments_adopted_two_at_a_time(ctx: Ctx) {
    const N: usize = 20;
    const BUDGET: usize = 2;
    ctx.kubelet
        .ensure_nodes(&[(ZONE_A, 2), (ZONE_B, 2), (ZONE_C, 2)])
        .await;
    for i in 0..N {
        let name = format!("svc-{i:02}");
        ctx.apply(&deployment(&name, 2, &[("app", "fleet"), ("svc", &name)]))
            .await;
    }
    let deployments = ctx.api::<Deployment>();
    wait_for(
        "20 Deployments rolled out",
        Duration::from_secs(120),
        || {
            let deployments = deployments.clone();
            async move {
                let list = deployments.list(&ListParams::default()).await.ok()?;
                (list.items.len() == N && list.items.iter().all(|d| deployment_settled(d, 2)))
                    .then_some(())
            }
        },
    )
    .await;
    ctx.kubelet.set_readiness_delay(Duration::from_secs(2));
    ctx.apply(&policy(
        "fleet",
        "fleet",
        // No eviction while adopting (it would dip a Deployment's ready count too): the test
        // sees only the rollouts skewguard's template writes start.
        json!({"stabilizationSeconds": 3600}),
        json!({}),
    ))
    .await;
    let op = start_operator(&ctx, &[]);
    let t0 = Instant::now();
    let (mut max_rolling, mut max_queued, mut max_gauge_queued, mut max_gauge_rolling) =
        (0usize, 0usize, 0f64, 0f64);
    let mut samples = 0;
    let mut timeline: Vec<String> = Vec::new();
    loop {
        let list = deployments
            .list(&ListParams::default())
            .await
            .expect("list Deployments");
        let rolling: Vec<String> = list
            .items
            .iter()
            .filter(|d| constrained(d) && !deployment_settled(d, 2))
            .map(|d| d.name_any())
            .collect();
        let done = list
            .items
            .iter()
            .filter(|d| constrained(d) && deployment_settled(d, 2))
            .count();
        let status = policy_status(&ctx, "fleet").await;
        let queued = status["workloads"]
            .as_array()
            .map(|ws| {
                ws.iter()
                    .filter(|w| rebalance_of(w) == ("Queued".into(), "RolloutBudget".into()))
                    .count()
            })
            .unwrap_or(0);
        if let Some(text) = http_get(&op.metrics_addr, "/metrics").await {
            let m = parse_metrics(&text);
            if let Some(q) = metric(&m, "skewguard_rollouts_queued", &[]) {
                max_gauge_queued = max_gauge_queued.max(q);
            }
            if let Some(r) = metric(&m, "skewguard_rollouts_in_progress", &[]) {
                max_gauge_rolling = max_gauge_rolling.max(r);
            }
        }
        samples += 1;
        max_rolling = max_rolling.max(rolling.len());
        max_queued = max_queued.max(queued);
        if samples % 10 == 1 {
            timeline.push(format!(
                "{:.1}s: {done} done, rolling {rolling:?}, {queued} queued",
                t0.elapsed().as_secs_f64()
            ));
        }
        assert!(
            rolling.len() <= BUDGET,
            "{} Deployments rolling out at once after {:.1}s: {rolling:?}",
            rolling.len(),
            t0.elapsed().as_secs_f64()
        );
        if done == N {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(240),
            "not all adopted after 240s ({done} of {N}); timeline:\n{}",
            timeline.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let took = t0.elapsed();
    println!(
        "\n  fleet: {N} Deployments adopted in {:.1}s; at most {max_rolling} rolling at once \
         (of {samples} samples), up to {max_queued} Queued/RolloutBudget in the status, gauges \
         max rollouts_in_progress {max_gauge_rolling}, rollouts_queued {max_gauge_queued}",
        took.as_secs_f64()
    );
    assert!(max_rolling >= 1, "no rollout was ever seen");
    assert!(
        max_queued > 0,
        "no workload was ever Queued (RolloutBudget)"
    );
    assert!(
        max_gauge_queued > 0.0,
        "skewguard_rollouts_queued never > 0"
    );
    assert!(
        max_gauge_rolling <= BUDGET as f64,
        "skewguard_rollouts_in_progress was {max_gauge_rolling}"
    );
    // Settled: nothing queued, every entry through, nothing evicted.
    let status = wait_for(
        "every entry past the queue",
        Duration::from_secs(30),
        || async {
            let s = policy_status(&ctx, "fleet").await;
            let ws = s["workloads"].as_array()?;
            (ws.len() == N && ws.iter().all(|w| rebalance_of(w).0 != "Queued")).then_some(s)
        },
    )
    .await;
    assert_eq!(status["workloadCount"], json!(N), "{status}");
    assert!(events(&ctx, "PodEvicted", None).await.is_empty());
    // The last slots are released by the reconcile that sees their rollout complete.
    wait_for(
        "every rollout slot released",
        Duration::from_secs(30),
        || async {
            let m = scrape(&op).await;
            (metric(&m, "skewguard_rollouts_queued", &[]) == Some(0.0)
                && metric(&m, "skewguard_rollouts_in_progress", &[]) == Some(0.0))
            .then_some(())
        },
    )
    .await;
}

/// A Deployment whose pods all carry `annotation: value`.
fn opted_out_deployment(name: &str, annotation: &str, value: &str) -> String {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": "optout", "tier": name}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "optout", "tier": name}},
            "template": {
                "metadata": {"labels": {"app": "optout", "tier": name},
                             "annotations": {annotation: value}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{"name": "app", "image": "nginx:1.27",
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}],
                },
            },
        },
    })
    .to_string()
}

/// Skewed workloads whose pods carry each of the three opt-out annotations: nothing is evicted,
/// the pods still count for skew, and the status says PodsOptedOut.
pub async fn opted_out_pods_are_never_evicted(ctx: Ctx) {
    let opt_outs = [
        ("karpenter", "karpenter.sh/do-not-disrupt", "true"),
        (
            "autoscaler",
            "cluster-autoscaler.kubernetes.io/safe-to-evict",
            "false",
        ),
        ("skewguard", "skewguard.dev/do-not-evict", "true"),
    ];
    ctx.kubelet.ensure_nodes(&[(ZONE_A, 2), (ZONE_C, 2)]).await;
    ctx.kubelet.cordon_zone(ZONE_A).await;
    for (name, annotation, value) in opt_outs {
        ctx.apply(&opted_out_deployment(name, annotation, value))
            .await;
    }
    for (name, annotation, value) in opt_outs {
        ctx.wait_ready_pods_by_zone(&format!("tier={name}"), &zones(&[(ZONE_C, 2)]), WAIT)
            .await;
        for p in ctx.pods(&format!("tier={name}")).await {
            assert_eq!(
                p.annotations().get(annotation).map(String::as_str),
                Some(value),
                "pod {} carries the opt-out",
                p.name_any()
            );
        }
    }
    ctx.kubelet.uncordon_zone(ZONE_A).await;
    let churn = PodChurn::start(&ctx).await;
    // No injection: the template stays as written, so the pods stay the annotated ones.
    ctx.apply(&policy(
        "optout",
        "optout",
        json!({"stabilizationSeconds": 1, "cooldownSeconds": 1}),
        json!({"injectConstraints": false}),
    ))
    .await;
    let op = start_operator(&ctx, &[]);
    let t = Instant::now();
    for (name, _, _) in opt_outs {
        let w = wait_workload_status(
            &ctx,
            "optout",
            name,
            &format!("{name}: skewed, PodsOptedOut"),
            Duration::from_secs(30),
            |w| rebalance_of(w).1 == "PodsOptedOut",
        )
        .await;
        assert_eq!(w["balanced"], json!(false), "{w}");
        assert_eq!(w["constraints"][0]["skew"], json!(2), "the pods count: {w}");
        assert_eq!(
            w["constraints"][0]["domains"],
            json!({ZONE_A: 0, ZONE_C: 2}),
            "{w}"
        );
        println!(
            "\n  opt-out {name}: {:?}, {}",
            rebalance_of(&w),
            w["message"]
        );
    }
    // Past stabilization and cooldown many times over: still nothing evicted.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(churn.deleted_total(), 0, "{:?}", churn.deleted(&[]));
    assert!(events(&ctx, "PodEvicted", None).await.is_empty());
    let m = scrape(&op).await;
    for (name, _, _) in opt_outs {
        let w = workload_status(&ctx, "optout", name).await.unwrap();
        assert_eq!(rebalance_of(&w).1, "PodsOptedOut", "{w}");
        assert_eq!(w["rebalance"]["actions"], json!(0), "{w}");
        assert_eq!(
            ctx.ready_pods_by_zone(&format!("tier={name}")).await,
            zones(&[(ZONE_C, 2)])
        );
        assert_eq!(
            metric(
                &m,
                "skewguard_rebalance_actions_total",
                &[
                    ("workload", name),
                    ("action", "evict"),
                    ("result", "success")
                ]
            ),
            None,
            "{name} never evicted"
        );
    }
    println!(
        "  opt-out: {:.1}s watched, no eviction",
        t.elapsed().as_secs_f64()
    );
}

/// A Rollout with an unreadable selector beside a healthy, skewed Deployment under one policy.
pub async fn a_malformed_rollout_beside_a_healthy_deployment(ctx: Ctx) {
    ctx.kubelet.ensure_nodes(&[(ZONE_A, 2), (ZONE_C, 2)]).await;
    ctx.kubelet.cordon_zone(ZONE_A).await;
    let labels = [("app", "mixed"), ("tier", "web")];
    ctx.apply(&deployment("web", 2, &labels)).await;
    ctx.wait_ready_pods_by_zone("tier=web", &zones(&[(ZONE_C, 2)]), WAIT)
        .await;
    // The CRD's schema accepts any string as an operator; the selector means nothing.
    let bad = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "bad", "labels": {"app": "mixed", "tier": "bad"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchExpressions": [{"key": "tier", "operator": "Sideways", "values": ["bad"]}]},
            "template": {
                "metadata": {"labels": {"app": "mixed", "tier": "bad"}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
            },
        },
    });
    ctx.apply(&bad.to_string()).await;
    ctx.apply(&policy(
        "mixed",
        "mixed",
        json!({"stabilizationSeconds": 1, "cooldownSeconds": 5}),
        json!({}),
    ))
    .await;
    let op = start_operator(&ctx, &[]);
    wait_deployment_constrained(&ctx, "web", 2).await;
    let churn = PodChurn::start(&ctx).await;
    ctx.kubelet.uncordon_zone(ZONE_A).await;
    let t = Instant::now();
    ctx.wait_ready_pods_by_zone("tier=web", &zones(&[(ZONE_A, 1), (ZONE_C, 1)]), WAIT)
        .await;
    let balanced_in = t.elapsed();
    let web = wait_workload_status(
        &ctx,
        "mixed",
        "web",
        "web balanced with one eviction",
        Duration::from_secs(20),
        |w| w["balanced"] == json!(true) && w["rebalance"]["actions"] == json!(1),
    )
    .await;
    assert_eq!(web["kind"], "Deployment", "{web}");
    assert_eq!(churn.deleted(&labels).len(), 1, "{:?}", churn.deleted(&[]));
    let bad = workload_status(&ctx, "mixed", "bad")
        .await
        .expect("the Rollout has its own entry");
    assert_eq!(bad["kind"], "Rollout", "{bad}");
    assert_eq!(
        rebalance_of(&bad),
        ("Blocked".into(), "InvalidWorkload".into()),
        "{bad}"
    );
    let message = bad["message"].as_str().unwrap_or("");
    assert!(
        message.contains("invalid pod selector") && message.contains("operator"),
        "{bad}"
    );
    let status = policy_status(&ctx, "mixed").await;
    let ready = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(ready["status"], "True", "{status}");
    let ready_message = ready["message"].as_str().unwrap_or("");
    assert!(
        ready_message.contains("bad") && ready_message.contains("cannot be read"),
        "{ready}"
    );
    assert_eq!(status["workloadCount"], json!(2), "{status}");
    let m = scrape(&op).await;
    assert_eq!(
        metric(
            &m,
            "skewguard_rebalance_actions_total",
            &[
                ("workload", "web"),
                ("action", "evict"),
                ("result", "success")
            ]
        ),
        Some(1.0)
    );
    println!(
        "\n  malformed: web balanced {:.1}s after 2a came back; bad: {message}; Ready: {ready_message}",
        balanced_in.as_secs_f64()
    );
}

/// kube-apiserver is killed for 30 s in the middle of a rebalance: the operator (leader election
/// on, as installed) keeps running and answering `/healthz`, re-establishes its watches and its
/// Lease when the server is back, and finishes the rebalance with exactly the evictions needed.
pub async fn api_server_outage_mid_rebalance(ctx: Ctx) {
    const APPS: usize = 4;
    const REPLICAS: usize = 4;
    const OUTAGE: Duration = Duration::from_secs(30);
    let Some(apiserver) = ctx.apiserver.clone() else {
        println!("\n  outage: skipped (an existing cluster's API server cannot be stopped)");
        return;
    };
    ctx.kubelet.ensure_nodes(&[(ZONE_A, 2), (ZONE_C, 2)]).await;
    ctx.kubelet.cordon_zone(ZONE_A).await;
    let names: Vec<String> = (0..APPS).map(|i| format!("svc-{i}")).collect();
    for name in &names {
        ctx.apply(&deployment(
            name,
            REPLICAS as u32,
            &[("app", "outage"), ("svc", name)],
        ))
        .await;
    }
    ctx.apply(&policy(
        "outage",
        "outage",
        json!({"stabilizationSeconds": 1, "cooldownSeconds": 1, "maxDisruptions": 1}),
        json!({}),
    ))
    .await;
    let lease_duration = "6";
    let mut op = start_operator(
        &ctx,
        &[
            "--leader-elect",
            "--lease-namespace",
            ctx.ns.as_str(),
            "--lease-duration-seconds",
            lease_duration,
        ],
    );
    for name in &names {
        wait_deployment_constrained(&ctx, name, REPLICAS as i32).await;
        ctx.wait_ready_pods_by_zone(&format!("svc={name}"), &zones(&[(ZONE_C, REPLICAS)]), WAIT)
            .await;
    }
    let pid = op.pid();
    // Every pod the rebalance may move, by uid: the ones gone at the end were evicted.
    let before = pod_uids(&ctx, "app=outage").await;
    assert_eq!(before.len(), APPS * REPLICAS);
    // Slow replacements keep the rebalance going for a while: one step per workload at a time.
    ctx.kubelet.set_readiness_delay(Duration::from_secs(3));
    let churn = PodChurn::start(&ctx).await;
    ctx.kubelet.uncordon_zone(ZONE_A).await;
    wait_for("the first eviction", Duration::from_secs(40), || {
        let n = churn.deleted_total();
        async move { (n > 0).then_some(()) }
    })
    .await;
    drop(churn);
    let outage_started = Instant::now();
    apiserver.stop();
    let mut health_probes = 0;
    while outage_started.elapsed() < OUTAGE {
        assert!(
            op.is_running(),
            "the operator exited during the outage:\n{}",
            op.log_text()
        );
        assert!(
            http_get(&op.health_addr, "/healthz").await.is_some(),
            "/healthz failed {:.1}s into the outage",
            outage_started.elapsed().as_secs_f64()
        );
        health_probes += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    apiserver.start();
    let back = Instant::now();
    wait_for("the API server back", Duration::from_secs(60), || async {
        ctx.api::<Deployment>()
            .list(&ListParams::default())
            .await
            .ok()
    })
    .await;
    let api_back = back.elapsed();
    wait_for(
        "the operator leading again",
        Duration::from_secs(60),
        || async {
            (metric(&scrape(&op).await, "skewguard_leader", &[]) == Some(1.0)).then_some(())
        },
    )
    .await;
    let leading_again = back.elapsed();
    let balanced = zones(&[(ZONE_A, REPLICAS / 2), (ZONE_C, REPLICAS / 2)]);
    let deadline = Instant::now() + Duration::from_secs(120);
    for name in &names {
        let selector = format!("svc={name}");
        while ctx.ready_pods_by_zone(&selector).await != balanced {
            assert!(
                Instant::now() < deadline,
                "{name} not balanced 120s after the API server came back: {:?}; status: {}",
                ctx.ready_pods_by_zone(&selector).await,
                policy_status(&ctx, "outage").await
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let status = wait_for(
        "every workload balanced in the status",
        Duration::from_secs(30),
        || async {
            let s = policy_status(&ctx, "outage").await;
            let ws = s["workloads"].as_array()?;
            (ws.len() == APPS && ws.iter().all(|w| w["balanced"] == json!(true))).then_some(s)
        },
    )
    .await;
    let finished_after = back.elapsed();
    let after = pod_uids(&ctx, "app=outage").await;
    let evicted = before.difference(&after).count();
    // Each workload has all 4 pods in one of two zones: 2 moves each, and no fewer will do.
    let lower_bound = APPS * (REPLICAS / 2);
    assert_eq!(
        evicted, lower_bound,
        "evictions (original pods gone) vs the lower bound; status: {status}"
    );
    assert_eq!(op.pid(), pid, "the operator was never restarted");
    assert!(op.is_running(), "{}", op.log_text());
    assert!(http_get(&op.health_addr, "/healthz").await.is_some());
    println!(
        "\n  outage: kube-apiserver down {}s in mid-rebalance ({health_probes} /healthz probes, all \
         healthy); API back {:.1}s after restart, leading again after {:.1}s; balanced {:.1}s \
         after the restart; evictions {evicted} (lower bound {lower_bound})",
        OUTAGE.as_secs(),
        api_back.as_secs_f64(),
        leading_again.as_secs_f64(),
        finished_after.as_secs_f64(),
    );
}
