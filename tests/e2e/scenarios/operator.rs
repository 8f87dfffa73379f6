//! skewguard itself against the cluster: the field scenario of the mission, PodDisruptionBudgets,
//! dead zones, restarts, the user's own constraints, paused and dry-run, leader election.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use serde_json::{Value, json};

use super::fixtures::{deployment, rollout, rollout_replicaset, statefulset};
use super::support::*;
use crate::harness::{Ctx, wait_for};

const WEB: [(&str, &str); 2] = [("app", "petclinic"), ("tier", "web")];
const WAS: [(&str, &str); 2] = [("app", "petclinic"), ("tier", "was")];
const REDIS: [(&str, &str); 2] = [("app", "petclinic"), ("tier", "redis")];
const WAS_HASH: &str = "7d9f8c6b5";
const WAIT: Duration = Duration::from_secs(90);

/// Two zones with two nodes each, 2a cordoned, `web` (2 replicas) running in 2c, and a PDB for it
/// when `budget` is given. Returns once both pods are Ready in 2c.
async fn web_in_2c(ctx: &Ctx, replicas: usize, budget: Option<Value>) {
    ctx.kubelet.ensure_nodes(&[(ZONE_A, 2), (ZONE_C, 2)]).await;
    ctx.kubelet.cordon_zone(ZONE_A).await;
    ctx.apply(&deployment("web", replicas as u32, &WEB)).await;
    if let Some(budget) = budget {
        ctx.apply(&pdb("web", &WEB, budget)).await;
    }
    ctx.wait_ready_pods_by_zone("tier=web", &zones(&[(ZONE_C, replicas)]), WAIT)
        .await;
}

/// Waits until both maps of Ready pods per zone are what is wanted; returns how long it took.
async fn wait_spread(ctx: &Ctx, wanted: &[(&str, &[(&str, usize)])], timeout: Duration) {
    let start = Instant::now();
    loop {
        let mut all = true;
        let mut seen = Vec::new();
        for (sel, want) in wanted {
            let got = ctx.ready_pods_by_zone(sel).await;
            all &= got == zones(want);
            seen.push(format!("{sel}: {got:?}"));
        }
        if all {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "pods not spread after {timeout:?}: {}",
            seen.join("; ")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn label(labels: &[(&str, &str)]) -> String {
    selector(labels)
}

/// The mission's field scenario (issue 3's done-when, issue 4's metrics).
pub async fn field_scenario(ctx: Ctx) {
    ctx.kubelet.ensure_nodes(&[(ZONE_A, 2), (ZONE_C, 2)]).await;
    ctx.kubelet.cordon_zone(ZONE_A).await;
    ctx.apply(&deployment("web", 2, &WEB)).await;
    ctx.apply(&pdb("web", &WEB, json!({"minAvailable": 1})))
        .await;
    let applied = ctx.apply(&rollout("was", 2, &WAS)).await;
    let uid = applied[0].uid().expect("the Rollout has a uid");
    ctx.apply(&rollout_replicaset("was", &uid, WAS_HASH, 2, &WAS))
        .await;
    let _argo = FakeArgo::start(&ctx, "was", &format!("was-{WAS_HASH}"));
    ctx.apply(&statefulset("redis-master", 1, &REDIS)).await;
    ctx.apply(&petclinic_policy("petclinic", json!({}), json!({})))
        .await;
    wait_spread(
        &ctx,
        &[
            (&label(&WEB), &[(ZONE_C, 2)]),
            (&label(&WAS), &[(ZONE_C, 2)]),
            (&label(&REDIS), &[(ZONE_C, 1)]),
        ],
        WAIT,
    )
    .await;
    let floor = ReadyFloor::start(&ctx, &label(&WEB));

    let op = start_operator(&ctx, &[]);
    // The injection rolls web and redis-master out (inside 2c: 2a is still cordoned).
    let web = wait_deployment_constrained(&ctx, "web", 2).await;
    wait_statefulset_constrained(&ctx, "redis-master", 1).await;
    wait_rollout_constrained(&ctx, "was", 2).await;
    for name in ["web", "was", "redis-master"] {
        wait_workload_status(
            &ctx,
            "petclinic",
            name,
            &format!("{name} measured and balanced while 2a is cordoned"),
            WAIT,
            |w| w["balanced"] == json!(true),
        )
        .await;
    }
    wait_spread(
        &ctx,
        &[
            (&label(&WEB), &[(ZONE_C, 2)]),
            (&label(&WAS), &[(ZONE_C, 2)]),
            (&label(&REDIS), &[(ZONE_C, 1)]),
        ],
        WAIT,
    )
    .await;
    // The constraints in web's template belong to skewguard, not to the test that applied web.
    let fields = web.metadata.managed_fields.clone().unwrap_or_default();
    assert!(
        owns_spread_constraints(&fields, SKEWGUARD),
        "web's topologySpreadConstraints should be owned by field manager skewguard: {:?}",
        managers(&fields)
    );
    assert!(
        !owns_spread_constraints(&fields, crate::harness::TEST_MANAGER),
        "the test never wrote web's constraints"
    );
    let tsc = web.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let tsc = tsc.topology_spread_constraints.as_ref().unwrap();
    assert_eq!(tsc.len(), 1, "{tsc:?}");
    assert_eq!(tsc[0].topology_key, ZONE_KEY);
    assert_eq!(tsc[0].max_skew, 1);
    assert_eq!(
        tsc[0].match_label_keys.as_deref(),
        Some(&["pod-template-hash".to_string()][..])
    );
    assert!(
        !events(&ctx, "ConstraintsInjected", Some("web"))
            .await
            .is_empty(),
        "a ConstraintsInjected Event on web"
    );

    // The zone comes back: each workload gets exactly one eviction, and nothing more.
    let churn = PodChurn::start(&ctx).await;
    ctx.kubelet.uncordon_zone(ZONE_A).await;
    let t0 = Instant::now();
    wait_spread(
        &ctx,
        &[
            (&label(&WEB), &[(ZONE_A, 1), (ZONE_C, 1)]),
            (&label(&WAS), &[(ZONE_A, 1), (ZONE_C, 1)]),
        ],
        Duration::from_secs(3 + 20),
    )
    .await;
    let balanced_in = t0.elapsed();
    println!(
        "\n  field: web and was 1+1 {:.1}s after 2a's taint was gone (stabilization 3s)",
        balanced_in.as_secs_f64()
    );
    // Quiet afterwards: no further evictions after another stabilization window and more.
    tokio::time::sleep(Duration::from_secs(8)).await;
    wait_spread(
        &ctx,
        &[
            (&label(&WEB), &[(ZONE_A, 1), (ZONE_C, 1)]),
            (&label(&WAS), &[(ZONE_A, 1), (ZONE_C, 1)]),
            (&label(&REDIS), &[(ZONE_C, 1)]),
        ],
        Duration::ZERO,
    )
    .await;
    assert_eq!(
        churn.deleted(&WEB).len(),
        1,
        "web: {:?}",
        churn.deleted(&WEB)
    );
    assert_eq!(
        churn.deleted(&WAS).len(),
        1,
        "was: {:?}",
        churn.deleted(&WAS)
    );
    assert_eq!(
        churn.deleted(&REDIS).len(),
        0,
        "redis-master is never moved: {:?}",
        churn.deleted(&REDIS)
    );
    assert_eq!(
        occurrences(&events(&ctx, "PodEvicted", Some("web")).await),
        1
    );
    assert_eq!(
        occurrences(&events(&ctx, "PodEvicted", Some("was")).await),
        1
    );
    assert!(
        floor.min().is_some_and(|m| m >= 1),
        "web's PDB (minAvailable 1) held: fewest Ready web pods seen {:?}",
        floor.min()
    );
    let pdb = ctx.get::<PodDisruptionBudget>("web").await;
    assert!(pdb.status.as_ref().unwrap().current_healthy >= 1);

    // Status tells the story.
    for name in ["web", "was"] {
        let w = wait_workload_status(
            &ctx,
            "petclinic",
            name,
            &format!("{name} balanced with one action"),
            Duration::from_secs(15),
            |w| w["balanced"] == json!(true) && w["rebalance"]["actions"] == json!(1),
        )
        .await;
        assert_eq!(
            w["constraints"][0]["domains"],
            json!({ZONE_A: 1, ZONE_C: 1}),
            "{w}"
        );
        assert_eq!(w["constraints"][0]["skew"], json!(0));
        assert!(w["rebalance"]["lastActionTime"].is_string(), "{w}");
        assert_eq!(w["zoneLoss"]["fraction"].as_f64(), Some(0.5), "{w}");
    }
    let redis = workload_status(&ctx, "petclinic", "redis-master")
        .await
        .expect("redis-master in the status");
    assert_eq!(redis["kind"], "StatefulSet");
    assert_eq!(redis["zoneLoss"]["domain"], ZONE_C, "{redis}");
    assert_eq!(redis["zoneLoss"]["podsLost"], json!(1), "{redis}");
    assert_eq!(redis["zoneLoss"]["fraction"].as_f64(), Some(1.0), "{redis}");
    let status = policy_status(&ctx, "petclinic").await;
    assert_eq!(status["workloadCount"], json!(3), "{status}");
    assert_eq!(status["unbalancedCount"], json!(0), "{status}");
    let cond = |t: &str| {
        status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .map(|c| c["status"].clone())
    };
    assert_eq!(cond("Ready"), Some(json!("True")), "{status}");
    assert_eq!(cond("Balanced"), Some(json!("True")), "{status}");
    assert_eq!(cond("Rebalancing"), Some(json!("False")), "{status}");
    for name in ["web", "was"] {
        assert!(
            !events(&ctx, "SkewDetected", Some(name)).await.is_empty(),
            "a SkewDetected Event on {name}"
        );
        assert!(
            !events(&ctx, "Balanced", Some(name)).await.is_empty(),
            "a Balanced Event on {name}"
        );
    }
    assert!(
        !events(&ctx, "PodEvicted", Some("petclinic"))
            .await
            .is_empty(),
        "PodEvicted Events on the policy too"
    );

    if ctx.kubectl.is_some() {
        let out = ctx.kubectl(&["get", "hap", "-n", &ctx.ns]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "kubectl get hap: {text}");
        let rows: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows[0],
            [
                "NAME",
                "WORKLOADS",
                "UNBALANCED",
                "MAXSKEW",
                "READY",
                "BALANCED",
                "AGE"
            ],
            "{text}"
        );
        assert_eq!(
            rows[1][..6],
            ["petclinic", "3", "0", "1", "True", "True"],
            "{text}"
        );
        println!("  kubectl get hap -n {}:\n{text}", ctx.ns);
    }

    // The metrics (issue 4): per-zone pods and skew of all three, redis a single point of failure.
    let m = scrape(&op).await;
    let domain = |w: &str, kind: &str, zone: &str| {
        metric(
            &m,
            "skewguard_workload_domain_pods",
            &[
                ("workload", w),
                ("kind", kind),
                ("topology_key", ZONE_KEY),
                ("domain", zone),
            ],
        )
    };
    let skew = |w: &str| {
        metric(
            &m,
            "skewguard_workload_skew",
            &[("workload", w), ("topology_key", ZONE_KEY)],
        )
    };
    for (w, kind) in [("web", "Deployment"), ("was", "Rollout")] {
        assert_eq!(domain(w, kind, ZONE_A), Some(1.0), "{w} in 2a");
        assert_eq!(domain(w, kind, ZONE_C), Some(1.0), "{w} in 2c");
        assert_eq!(skew(w), Some(0.0), "{w} skew");
        assert_eq!(
            metric(
                &m,
                "skewguard_rebalance_actions_total",
                &[("workload", w), ("action", "evict"), ("result", "success")]
            ),
            Some(1.0),
            "{w} evictions counted once"
        );
    }
    assert_eq!(domain("redis-master", "StatefulSet", ZONE_C), Some(1.0));
    assert_eq!(domain("redis-master", "StatefulSet", ZONE_A), Some(0.0));
    assert_eq!(skew("redis-master"), Some(1.0));
    assert_eq!(
        metric(
            &m,
            "skewguard_workload_domain_loss_ratio",
            &[("workload", "redis-master")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "skewguard_rebalance_actions_total",
            &[
                ("workload", "redis-master"),
                ("action", "evict"),
                ("result", "success")
            ]
        ),
        None,
        "redis-master was never evicted"
    );
    drop(op);
}

/// A PDB with no room blocks the eviction; once it allows one, the rebalance completes.
pub async fn pdb_blocks_then_allows(ctx: Ctx) {
    web_in_2c(&ctx, 2, Some(json!({"maxUnavailable": 0}))).await;
    ctx.apply(&petclinic_policy("petclinic", json!({}), json!({})))
        .await;
    let _op = start_operator(&ctx, &[]);
    wait_deployment_constrained(&ctx, "web", 2).await;
    let churn = PodChurn::start(&ctx).await;
    ctx.kubelet.uncordon_zone(ZONE_A).await;
    let w = wait_workload_status(
        &ctx,
        "petclinic",
        "web",
        "web Blocked by the PodDisruptionBudget",
        Duration::from_secs(30),
        |w| rebalance_of(w) == ("Blocked".into(), "PodDisruptionBudget".into()),
    )
    .await;
    assert!(
        w["message"]
            .as_str()
            .unwrap_or("")
            .contains("PodDisruptionBudget"),
        "{w}"
    );
    wait_for(
        "a RebalanceBlocked Event on web",
        Duration::from_secs(10),
        || {
            let ctx = ctx.clone();
            async move {
                let evs = events(&ctx, "RebalanceBlocked", Some("web")).await;
                evs.iter()
                    .any(|e| {
                        e.note
                            .as_deref()
                            .unwrap_or("")
                            .contains("PodDisruptionBudget")
                    })
                    .then_some(())
            }
        },
    )
    .await;
    // It keeps retrying (every 10 s) and keeps being refused: nothing is evicted meanwhile.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(churn.deleted(&WEB), Vec::<String>::new());
    let w = workload_status(&ctx, "petclinic", "web").await.unwrap();
    assert_eq!(rebalance_of(&w).1, "PodDisruptionBudget", "{w}");
    assert_eq!(w["rebalance"]["actions"], json!(0));

    // The budget allows one: the rebalance completes with one eviction.
    ctx.apply(&pdb("web", &WEB, json!({"maxUnavailable": 1})))
        .await;
    let t = Instant::now();
    ctx.wait_ready_pods_by_zone(
        "tier=web",
        &zones(&[(ZONE_A, 1), (ZONE_C, 1)]),
        Duration::from_secs(30),
    )
    .await;
    println!(
        "\n  pdb: rebalanced {:.1}s after the budget allowed it",
        t.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(churn.deleted(&WEB).len(), 1, "{:?}", churn.deleted(&WEB));
    wait_workload_status(
        &ctx,
        "petclinic",
        "web",
        "web balanced after the budget allowed it",
        Duration::from_secs(15),
        |w| w["balanced"] == json!(true) && w["rebalance"]["actions"] == json!(1),
    )
    .await;
}

/// Nothing is evicted toward a zone whose nodes are NotReady or cordoned, even when the policy
/// counts that zone as a domain (nodeTaintsPolicy: Ignore) and so sees the skew.
pub async fn dead_zone_gets_nothing(ctx: Ctx) {
    web_in_2c(&ctx, 4, None).await;
    ctx.kubelet.uncordon_zone(ZONE_A).await;
    ctx.kubelet.set_zone_ready(ZONE_A, false).await;
    let spread =
        json!({"spread": [{"topologyKey": ZONE_KEY, "maxSkew": 1, "nodeTaintsPolicy": "Ignore"}]});
    ctx.apply(&petclinic_policy("petclinic", json!({}), spread))
        .await;
    let _op = start_operator(&ctx, &[]);
    wait_deployment_constrained(&ctx, "web", 4).await;
    let churn = PodChurn::start(&ctx).await;

    // NotReady: 2a is a domain (taints ignored), skew 4, but no node there would take a pod.
    let w = wait_workload_status(
        &ctx,
        "petclinic",
        "web",
        "web blocked for lack of a node that would take a pod (2a NotReady)",
        Duration::from_secs(30),
        |w| {
            w["constraints"][0]["skew"] == json!(4)
                && rebalance_of(w) == ("Blocked".into(), "NoCapacity".into())
        },
    )
    .await;
    assert_eq!(
        w["constraints"][0]["domains"],
        json!({ZONE_A: 0, ZONE_C: 4}),
        "{w}"
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(churn.deleted(&WEB), Vec::<String>::new(), "2a is NotReady");
    assert_eq!(
        ctx.ready_pods_by_zone("tier=web").await,
        zones(&[(ZONE_C, 4)])
    );
    assert!(
        !events(&ctx, "RebalanceBlocked", Some("web"))
            .await
            .is_empty()
    );

    // Cordoned instead of NotReady: the same.
    ctx.kubelet.cordon_zone(ZONE_A).await;
    ctx.kubelet.set_zone_ready(ZONE_A, true).await;
    wait_workload_status(
        &ctx,
        "petclinic",
        "web",
        "web still blocked with 2a cordoned",
        Duration::from_secs(30),
        |w| rebalance_of(w) == ("Blocked".into(), "NoCapacity".into()),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(churn.deleted(&WEB), Vec::<String>::new(), "2a is cordoned");
    assert_eq!(
        ctx.ready_pods_by_zone("tier=web").await,
        zones(&[(ZONE_C, 4)])
    );
    let w = workload_status(&ctx, "petclinic", "web").await.unwrap();
    assert_eq!(w["rebalance"]["actions"], json!(0), "{w}");
}

fn restarted_at(d: &Deployment) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get("kubectl.kubernetes.io/restartedAt")
        .cloned()
}

/// `strategy: RolloutRestart` restarts once per cooldown, and the restart spreads the pods.
pub async fn restart_once_per_cooldown(ctx: Ctx) {
    const COOLDOWN: u64 = 30;
    web_in_2c(&ctx, 2, None).await;
    let spread = json!({"spread": [{"topologyKey": ZONE_KEY, "maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}]});
    ctx.apply(&petclinic_policy(
        "petclinic",
        json!({"strategy": "RolloutRestart", "cooldownSeconds": COOLDOWN}),
        spread,
    ))
    .await;
    let _op = start_operator(&ctx, &[]);
    let d = wait_deployment_constrained(&ctx, "web", 2).await;
    assert_eq!(restarted_at(&d), None, "no restart while balanced");
    let churn = PodChurn::start(&ctx).await;
    ctx.kubelet.uncordon_zone(ZONE_A).await;
    let deployments = ctx.api::<Deployment>();
    let first = wait_for("web restarted", Duration::from_secs(30), || {
        let deployments = deployments.clone();
        async move { restarted_at(&deployments.get("web").await.ok()?) }
    })
    .await;
    let restart_seen = Instant::now();
    ctx.wait_ready_pods_by_zone("tier=web", &zones(&[(ZONE_A, 1), (ZONE_C, 1)]), WAIT)
        .await;
    wait_deployment_constrained(&ctx, "web", 2).await;
    assert!(
        !events(&ctx, "WorkloadRestarted", Some("web"))
            .await
            .is_empty()
    );
    assert_eq!(
        churn.deleted(&WEB).len(),
        2,
        "the restart replaced both pods, nothing was evicted beside it"
    );
    assert_eq!(
        occurrences(&events(&ctx, "PodEvicted", Some("web")).await),
        0
    );

    // Skewed again within the cooldown: the operator waits it out instead of restarting again.
    ctx.kubelet.cordon_zone(ZONE_A).await;
    let in_a: Vec<String> = ctx
        .pods("tier=web")
        .await
        .iter()
        .filter(|p| {
            let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
            node.and_then(|n| ctx.kubelet.zone_of(&n)).as_deref() == Some(ZONE_A)
        })
        .map(|p| p.name_any())
        .collect();
    for name in &in_a {
        ctx.api::<k8s_openapi::api::core::v1::Pod>()
            .delete(name, &Default::default())
            .await
            .unwrap();
    }
    ctx.wait_ready_pods_by_zone("tier=web", &zones(&[(ZONE_C, 2)]), WAIT)
        .await;
    ctx.kubelet.uncordon_zone(ZONE_A).await;
    let w = wait_workload_status(
        &ctx,
        "petclinic",
        "web",
        "web waiting out the cooldown",
        Duration::from_secs(20),
        |w| rebalance_of(w) == ("Waiting".into(), "Cooldown".into()),
    )
    .await;
    assert!(
        restart_seen.elapsed() < Duration::from_secs(COOLDOWN),
        "the test took too long to reach the cooldown check: {w}"
    );
    let remaining = Duration::from_secs(COOLDOWN).saturating_sub(restart_seen.elapsed());
    // Until the cooldown is over (less a margin for the second's rounding), no second restart.
    let quiet = remaining.saturating_sub(Duration::from_secs(2));
    tokio::time::sleep(quiet).await;
    let d = ctx.get::<Deployment>("web").await;
    assert_eq!(
        restarted_at(&d).as_deref(),
        Some(first.as_str()),
        "restarted again within the cooldown"
    );
    // After the cooldown: restarted once more, and spread again.
    let second = wait_for("web restarted again", Duration::from_secs(30), || {
        let deployments = deployments.clone();
        let first = first.clone();
        async move { restarted_at(&deployments.get("web").await.ok()?).filter(|r| *r != first) }
    })
    .await;
    let gap = seconds(&second) - seconds(&first);
    assert!(
        gap >= COOLDOWN as i64,
        "second restart {second} at least {COOLDOWN}s after the first {first}"
    );
    ctx.wait_ready_pods_by_zone("tier=web", &zones(&[(ZONE_A, 1), (ZONE_C, 1)]), WAIT)
        .await;
    assert_eq!(
        occurrences(&events(&ctx, "PodEvicted", Some("web")).await),
        0
    );
}

/// Seconds since the epoch of an RFC 3339 `restartedAt`.
fn seconds(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("restartedAt {s:?}: {e}"))
        .as_second()
}

/// A Deployment with its own zone constraint (maxSkew 2) is measured with it and never patched.
pub async fn user_constraints_win(ctx: Ctx) {
    ctx.kubelet.ensure_nodes(&[(ZONE_A, 2), (ZONE_C, 2)]).await;
    ctx.kubelet.cordon_zone(ZONE_A).await;
    let own = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "petclinic", "tier": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "petclinic", "tier": "web"}},
            "template": {
                "metadata": {"labels": {"app": "petclinic", "tier": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "topologySpreadConstraints": [{
                        "maxSkew": 2, "topologyKey": ZONE_KEY, "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": {"app": "petclinic", "tier": "web"}},
                    }],
                    "containers": [{"name": "app", "image": "nginx:1.27",
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}],
                },
            },
        },
    });
    ctx.apply(&own.to_string()).await;
    ctx.wait_ready_pods_by_zone("tier=web", &zones(&[(ZONE_C, 2)]), WAIT)
        .await;
    ctx.kubelet.uncordon_zone(ZONE_A).await;
    let before = ctx.get::<Deployment>("web").await;
    let uids = pod_uids(&ctx, "tier=web").await;
    ctx.apply(&petclinic_policy(
        "petclinic",
        json!({}),
        json!({"hostAntiAffinity": "None"}),
    ))
    .await;
    let _op = start_operator(&ctx, &[]);
    let w = wait_workload_status(
        &ctx,
        "petclinic",
        "web",
        "web measured with its own constraint",
        Duration::from_secs(30),
        |w| w["constraints"][0]["maxSkew"] == json!(2),
    )
    .await;
    assert_eq!(w["constraints"].as_array().unwrap().len(), 1, "{w}");
    assert_eq!(w["constraints"][0]["skew"], json!(2), "{w}");
    assert_eq!(
        w["constraints"][0]["domains"],
        json!({ZONE_A: 0, ZONE_C: 2}),
        "{w}"
    );
    assert_eq!(
        w["balanced"],
        json!(true),
        "skew 2 is within the user's maxSkew 2: {w}"
    );
    // Past stabilization and then some: nothing written, nothing moved.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = ctx.get::<Deployment>("web").await;
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert_eq!(
        after.spec.as_ref().unwrap().template,
        before.spec.as_ref().unwrap().template
    );
    let fields = after.metadata.managed_fields.clone().unwrap_or_default();
    assert!(
        !managers(&fields).iter().any(|m| m == SKEWGUARD),
        "no skewguard managedFields entry: {:?}",
        managers(&fields)
    );
    assert_eq!(pod_uids(&ctx, "tier=web").await, uids, "no pod replaced");
    assert!(
        events(&ctx, "ConstraintsInjected", Some("web"))
            .await
            .is_empty()
    );
    let w = workload_status(&ctx, "petclinic", "web").await.unwrap();
    assert_eq!(w["rebalance"]["actions"], json!(0), "{w}");
}

/// Skewed web in 2c, then `spec` (paused) or `flags` (dry-run): nothing is written to web or its
/// pods, and the status says what would have been done.
async fn writes_nothing(ctx: Ctx, extra_spec: Value, flags: &[&str], wanted: &[&str]) {
    web_in_2c(&ctx, 2, None).await;
    ctx.kubelet.uncordon_zone(ZONE_A).await;
    let before = ctx.get::<Deployment>("web").await;
    let uids = pod_uids(&ctx, "tier=web").await;
    let churn = PodChurn::start(&ctx).await;
    ctx.apply(&petclinic_policy("petclinic", json!({}), extra_spec))
        .await;
    let op = start_operator(&ctx, flags);
    let w = wait_workload_status(
        &ctx,
        "petclinic",
        "web",
        &format!("a message saying {wanted:?}"),
        Duration::from_secs(30),
        |w| {
            let m = w["message"].as_str().unwrap_or("");
            wanted.iter().all(|s| m.contains(s))
        },
    )
    .await;
    println!("\n  status of web: {}", w["message"]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = ctx.get::<Deployment>("web").await;
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert_eq!(
        after.spec.as_ref().unwrap().template,
        before.spec.as_ref().unwrap().template
    );
    let fields = after.metadata.managed_fields.clone().unwrap_or_default();
    assert!(
        !managers(&fields).iter().any(|m| m == SKEWGUARD),
        "{:?}",
        managers(&fields)
    );
    assert_eq!(churn.deleted_total(), 0, "{:?}", churn.deleted(&[]));
    assert_eq!(pod_uids(&ctx, "tier=web").await, uids);
    assert_eq!(
        ctx.ready_pods_by_zone("tier=web").await,
        zones(&[(ZONE_C, 2)])
    );
    let w = workload_status(&ctx, "petclinic", "web").await.unwrap();
    assert_eq!(w["balanced"], json!(false), "{w}");
    assert_eq!(w["rebalance"]["actions"], json!(0), "{w}");
    for reason in ["PodEvicted", "ConstraintsInjected", "WorkloadRestarted"] {
        assert!(events(&ctx, reason, None).await.is_empty(), "{reason}");
    }
    let m = scrape(&op).await;
    assert_eq!(
        metric(
            &m,
            "skewguard_rebalance_actions_total",
            &[("workload", "web"), ("result", "success")]
        ),
        None
    );
}

pub async fn paused_writes_nothing(ctx: Ctx) {
    writes_nothing(
        ctx.clone(),
        json!({"paused": true}),
        &[],
        &["paused: would write 1 spread constraint(s)"],
    )
    .await;
    let w = workload_status(&ctx, "petclinic", "web").await.unwrap();
    assert_eq!(rebalance_of(&w), ("Blocked".into(), "Paused".into()), "{w}");
}

pub async fn dry_run_writes_nothing(ctx: Ctx) {
    writes_nothing(
        ctx.clone(),
        json!({}),
        &["--dry-run"],
        &[
            "dry-run: would write 1 spread constraint(s)",
            "dry-run: would evict web-",
        ],
    )
    .await;
}

async fn lease_holder(ctx: &Ctx) -> Option<String> {
    let lease = ctx
        .api::<Lease>()
        .get_opt("skewguard-leader")
        .await
        .ok()??;
    lease.spec?.holder_identity.filter(|h| !h.is_empty())
}

async fn leader_gauge(op: &crate::harness::OperatorProcess) -> Option<f64> {
    let text = http_get(&op.metrics_addr, "/metrics").await?;
    metric(&parse_metrics(&text), "skewguard_leader", &[])
}

/// Two replicas with leader election: one holds the Lease and acts; stopped, it hands over.
pub async fn leader_election_hands_over(ctx: Ctx) {
    const LEASE: u64 = 8;
    web_in_2c(&ctx, 2, None).await;
    let lease = LEASE.to_string();
    let flags = |id: &'static str| {
        [
            "--leader-elect",
            "--lease-namespace",
            ctx.ns.as_str(),
            "--identity",
            id,
            "--lease-duration-seconds",
            lease.as_str(),
        ]
        .map(str::to_string)
    };
    let a_flags = flags("skewguard-a");
    let b_flags = flags("skewguard-b");
    let a_args: Vec<&str> = a_flags.iter().map(String::as_str).collect();
    let b_args: Vec<&str> = b_flags.iter().map(String::as_str).collect();
    let mut a = start_operator(&ctx, &a_args);
    let c = &ctx;
    let leader = wait_for("a Lease holder", Duration::from_secs(30), || async move {
        lease_holder(c).await
    })
    .await;
    assert_eq!(
        leader, "skewguard-a",
        "the first replica up takes the Lease"
    );
    let mut b = start_operator(&ctx, &b_args);
    // The gauges agree (refreshed every 5 s).
    wait_for(
        "skewguard_leader 1 on a and 0 on b",
        Duration::from_secs(20),
        || {
            let (a, b) = (&a, &b);
            async move {
                let (ga, gb) = (leader_gauge(a).await, leader_gauge(b).await);
                (ga == Some(1.0) && gb == Some(0.0)).then_some(())
            }
        },
    )
    .await;

    // Only the leader acts: it injects; every Event comes from it.
    ctx.apply(&petclinic_policy("petclinic", json!({}), json!({})))
        .await;
    wait_deployment_constrained(&ctx, "web", 2).await;
    wait_workload_status(
        &ctx,
        "petclinic",
        "web",
        "web reported by the leader",
        Duration::from_secs(20),
        |w| w["balanced"] == json!(true),
    )
    .await;
    let injected = events(&ctx, "ConstraintsInjected", Some("web")).await;
    assert_eq!(injected.len(), 1, "injected once, by one replica");
    assert_eq!(
        injected[0].reporting_instance.as_deref(),
        Some("skewguard-a")
    );
    assert_eq!(lease_holder(&ctx).await.as_deref(), Some("skewguard-a"));

    // The leader stops (SIGTERM releases the Lease); b takes over within the lease duration.
    let t = Instant::now();
    a.stop();
    let new = wait_for(
        "b to take the Lease",
        Duration::from_secs(LEASE + 5),
        || async move { lease_holder(c).await.filter(|h| h == "skewguard-b") },
    )
    .await;
    let took = t.elapsed();
    println!(
        "\n  leader: {new} took over {:.1}s after the leader was stopped (lease {LEASE}s)",
        took.as_secs_f64()
    );
    assert!(took <= Duration::from_secs(LEASE), "took {took:?}");
    assert!(b.is_running());

    // b acts: the zone comes back and b completes the rebalance.
    let churn = PodChurn::start(&ctx).await;
    ctx.kubelet.uncordon_zone(ZONE_A).await;
    ctx.wait_ready_pods_by_zone(
        "tier=web",
        &zones(&[(ZONE_A, 1), (ZONE_C, 1)]),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(churn.deleted(&WEB).len(), 1);
    let evicted = events(&ctx, "PodEvicted", Some("web")).await;
    assert_eq!(occurrences(&evicted), 1);
    assert_eq!(
        evicted[0].reporting_instance.as_deref(),
        Some("skewguard-b")
    );
    wait_for("skewguard_leader 1 on b", Duration::from_secs(10), || {
        let b = &b;
        async move { (leader_gauge(b).await == Some(1.0)).then_some(()) }
    })
    .await;
    b.stop();
}
