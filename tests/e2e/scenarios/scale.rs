//! Three zones at scale (ignored by default; `make e2e-scale`): 30 nodes, 300 Deployments x 10
//! replicas, one zone drained and restored. Every workload must end within maxSkew with exactly
//! the fewest evictions (`skewguard::core::topology::min_moves` of the counts at the restore), and the
//! run prints the time to balance, the evictions and the operator's peak resident memory.
//!
//! Replicas become Ready 2 s after they start, the policy stabilizes for 10 s and the operator runs
//! at `--max-evictions-per-second 10`: each workload must step as soon as its own replacement is
//! Ready, so the fleet balances within the stabilization plus the evictions' time at that rate
//! and a little slack (100 Deployments: 35 s; 300: 100 s).
//!
//! `SKEWGUARD_E2E_SCALE_DEPLOYMENTS` / `SKEWGUARD_E2E_SCALE_NODES_PER_ZONE` /
//! `SKEWGUARD_E2E_SCALE_STABILIZATION` change it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams};
use serde_json::json;

use super::support::{
    PodChurn, ZONE_KEY, hapolicy, histogram_quantile, policy_status, scrape, start_operator,
};
use crate::fake_kubelet::{Capacity, is_ready};
use crate::harness::{Ctx, OperatorProcess};

const ZONES: [&str; 3] = ["ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"];
const DRAINED: &str = "ap-northeast-2a";
const REPLICAS: usize = 10;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A Deployment with tiny requests and its own zone constraint (ScheduleAnyway, so a drained zone
/// does not leave pods Pending), as the field teams wrote by hand.
fn scale_deployment(name: &str) -> String {
    let labels = json!({"app": "scale", "workload": name});
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "topologySpreadConstraints": [{
                        "maxSkew": 1, "topologyKey": ZONE_KEY, "whenUnsatisfiable": "ScheduleAnyway",
                        "nodeTaintsPolicy": "Honor",
                        "labelSelector": {"matchLabels": labels},
                        "matchLabelKeys": ["pod-template-hash"],
                    }],
                    "containers": [{"name": "app", "image": "nginx:1.27",
                        "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}}}],
                },
            },
        },
    })
    .to_string()
}

/// Ready, not terminating pods per workload per zone (every zone present, 0 when empty).
async fn counts(ctx: &Ctx) -> (usize, BTreeMap<String, BTreeMap<String, usize>>) {
    let pods = ctx
        .api::<Pod>()
        .list(&ListParams::default().labels("app=scale"))
        .await
        .expect("list pods");
    let mut out: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut ready = 0;
    for p in pods.items.iter() {
        if p.metadata.deletion_timestamp.is_some() || !is_ready(p) {
            continue;
        }
        let Some(zone) = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(|n| ctx.kubelet.zone_of(n))
        else {
            continue;
        };
        ready += 1;
        let w = p.labels().get("workload").cloned().unwrap_or_default();
        let entry = out
            .entry(w)
            .or_insert_with(|| ZONES.iter().map(|z| (z.to_string(), 0)).collect());
        *entry.entry(zone).or_insert(0) += 1;
    }
    (ready, out)
}

fn skew(zones: &BTreeMap<String, usize>) -> usize {
    let max = zones.values().copied().max().unwrap_or(0);
    let min = zones.values().copied().min().unwrap_or(0);
    max - min
}

async fn wait_all_ready(ctx: &Ctx, total: usize, what: &str, timeout: Duration) {
    let start = Instant::now();
    loop {
        let (ready, _) = counts(ctx).await;
        if ready == total {
            println!(
                "  scale: {what}: {total} pods Ready after {:.0}s",
                start.elapsed().as_secs_f64()
            );
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "{what}: {ready}/{total} pods Ready after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn peak_rss_kib(op: &OperatorProcess) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", op.pid()?)).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// How long after the restore the fleet may take to balance, beyond the stabilization window.
/// The recovery allowed: 1.2 x (the fewest evictions at the operator's rate + stabilization).
/// Each workload's steps wait for its own replacements; with judging by the pod cache they
/// overlap with other workloads' steps, and only the global rate is left to wait for.
fn allowed_recovery(stabilization: usize, lower_bound: i64) -> Duration {
    Duration::from_secs_f64(
        1.2 * (lower_bound as f64 / EVICTIONS_PER_SECOND + stabilization as f64),
    )
}

/// The operator's eviction rate in these scenarios.
const EVICTIONS_PER_SECOND: f64 = 10.0;

pub async fn three_zones_at_scale(ctx: Ctx) {
    fleet_at_scale(ctx, 300).await
}

pub async fn a_hundred_deployments_at_scale(ctx: Ctx) {
    fleet_at_scale(ctx, 100).await
}

async fn fleet_at_scale(ctx: Ctx, default_deployments: usize) {
    let deployments = env_usize("SKEWGUARD_E2E_SCALE_DEPLOYMENTS", default_deployments);
    let stabilization = env_usize("SKEWGUARD_E2E_SCALE_STABILIZATION", 10);
    let per_zone = env_usize("SKEWGUARD_E2E_SCALE_NODES_PER_ZONE", 10);
    let total = deployments * REPLICAS;
    println!(
        "\n  scale: {} nodes in 3 zones, {deployments} Deployments x {REPLICAS} replicas",
        per_zone * 3
    );
    // Room for every pod in two zones (the drill), whatever the node count.
    let cap = Capacity {
        cpu: "64".into(),
        memory: "256Gi".into(),
        pods: (total / (2 * per_zone) + 50) as u32,
    };
    let layout: Vec<(&str, usize)> = ZONES.iter().map(|z| (*z, per_zone)).collect();
    ctx.kubelet.ensure_nodes_with(&layout, &cap).await;
    ctx.kubelet.set_readiness_delay(Duration::from_secs(2));

    let t = Instant::now();
    let names: Vec<String> = (0..deployments).map(|i| format!("s-{i:03}")).collect();
    futures::stream::iter(names.iter())
        .for_each_concurrent(16, |name| {
            let ctx = ctx.clone();
            async move {
                ctx.apply(&scale_deployment(name)).await;
            }
        })
        .await;
    println!(
        "  scale: {deployments} Deployments created in {:.0}s",
        t.elapsed().as_secs_f64()
    );
    wait_all_ready(&ctx, total, "initial placement", Duration::from_secs(900)).await;

    // The drill: cordon 2a and delete its pods; they come back in 2b and 2c.
    ctx.kubelet.cordon_zone(DRAINED).await;
    let pods = ctx.api::<Pod>();
    for node in ctx
        .kubelet
        .zones()
        .into_iter()
        .filter(|(_, z)| z == DRAINED)
        .map(|(n, _)| n)
    {
        pods.delete_collection(
            &DeleteParams::default(),
            &ListParams::default()
                .labels("app=scale")
                .fields(&format!("spec.nodeName={node}")),
        )
        .await
        .expect("delete the drained zone's pods");
    }
    wait_all_ready(&ctx, total, "after the drain", Duration::from_secs(900)).await;
    let (_, drained) = counts(&ctx).await;
    let in_drained: usize = drained.values().map(|z| z[DRAINED]).sum();
    assert_eq!(in_drained, 0, "nothing left in {DRAINED}");

    // The operator, then the policy; it balances 2b/2c first if the drain left them uneven.
    let rate = EVICTIONS_PER_SECOND.to_string();
    let op = start_operator(&ctx, &["--max-evictions-per-second", &rate]);
    ctx.apply(&hapolicy(
        "scale",
        json!({
            "selector": {"matchLabels": {"app": "scale"}},
            "workloadKinds": ["Deployment"],
            "spread": [{"topologyKey": ZONE_KEY, "maxSkew": 1}],
            "rebalance": {"stabilizationSeconds": stabilization},
        }),
    ))
    .await;
    let t = Instant::now();
    loop {
        let s = policy_status(&ctx, "scale").await;
        if s["workloadCount"] == json!(deployments) && s["unbalancedCount"] == json!(0) {
            println!(
                "  scale: the policy reports {deployments} workloads balanced after {:.0}s",
                t.elapsed().as_secs_f64()
            );
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "the policy should report every workload balanced before the restore: {}",
            s["conditions"]
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    wait_all_ready(&ctx, total, "before the restore", Duration::from_secs(600)).await;

    // Restore: uncordon 2a. Count every deletion from here on.
    let (_, before) = counts(&ctx).await;
    let lower_bound: i64 = before
        .values()
        .map(|z| {
            let v: Vec<i32> = z.values().map(|&n| n as i32).collect();
            skewguard::core::topology::min_moves(&v, 1, false)
        })
        .sum();
    let churn = PodChurn::start(&ctx).await;
    ctx.kubelet.uncordon_zone(DRAINED).await;
    let t = Instant::now();
    let mut last_report = Instant::now();
    loop {
        let (ready, now) = counts(&ctx).await;
        let unbalanced = now.values().filter(|z| skew(z) > 1).count();
        if ready == total && unbalanced == 0 && now.len() == deployments {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(15) {
            println!(
                "  scale: {:.0}s: {unbalanced} workloads unbalanced, {} evictions so far",
                t.elapsed().as_secs_f64(),
                churn.deleted_total()
            );
            last_report = Instant::now();
        }
        assert!(
            t.elapsed() < Duration::from_secs(1200),
            "{unbalanced} workloads still unbalanced after 20 minutes"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let to_balance = t.elapsed();
    // Then quiet: nothing more is evicted.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let evictions = churn.deleted_total();
    let rss = peak_rss_kib(&op);
    let allowed = allowed_recovery(stabilization, lower_bound);
    println!(
        "  scale: balanced {:.1}s after the restore (allowed {:.1}s: 1.2 x (stabilization \
         {stabilization}s + the evictions at {EVICTIONS_PER_SECOND}/s)); evictions {evictions} \
         (lower bound {lower_bound}); operator peak RSS {} MiB",
        to_balance.as_secs_f64(),
        allowed.as_secs_f64(),
        rss.map_or("?".to_string(), |k| format!("{:.1}", k as f64 / 1024.0))
    );
    // The two halves of a step, from the operator's own histograms.
    let samples = scrape(&op).await;
    let quantiles = |name: &str| {
        let q = |q| histogram_quantile(&samples, name, q).map(|(bound, _)| bound);
        (
            q(0.1),
            q(0.5),
            q(0.9),
            histogram_quantile(&samples, name, 0.5).map(|(_, n)| n),
        )
    };
    let reconcile = quantiles("skewguard_reconcile_duration_seconds");
    println!(
        "  scale: reconcile duration: p10 <= {:?}s, p50 <= {:?}s, p90 <= {:?}s ({:?} reconciles)",
        reconcile.0, reconcile.1, reconcile.2, reconcile.3
    );
    let ready_to_judged = quantiles("skewguard_rebalance_ready_to_judged_seconds");
    let judged_to_eviction = quantiles("skewguard_rebalance_judged_to_eviction_seconds");
    println!(
        "  scale: replacement Ready -> move judged: p10 <= {:?}s, p50 <= {:?}s, p90 <= {:?}s \
         ({:?} moves); judged -> next eviction: p10 <= {:?}s, p50 <= {:?}s, p90 <= {:?}s \
         ({:?} steps)",
        ready_to_judged.0,
        ready_to_judged.1,
        ready_to_judged.2,
        ready_to_judged.3,
        judged_to_eviction.0,
        judged_to_eviction.1,
        judged_to_eviction.2,
        judged_to_eviction.3,
    );
    let p50 = ready_to_judged.1.expect("moves were judged");
    assert!(
        p50 <= 0.5,
        "half the moves should be judged within 0.5 s of their replacement turning Ready: {p50}s"
    );
    let (_, after) = counts(&ctx).await;
    for (w, z) in &after {
        assert!(skew(z) <= 1, "{w} ends skewed: {z:?}");
    }
    assert_eq!(
        evictions as i64, lower_bound,
        "evictions should equal the sum of the fewest moves"
    );
    assert!(
        to_balance <= allowed,
        "balanced {to_balance:?} after the restore, more than the {allowed:?} allowed: \
         workloads wait for each other"
    );
    let s = policy_status(&ctx, "scale").await;
    assert_eq!(s["unbalancedCount"], json!(0), "{}", s["conditions"]);
    drop(op);
}
