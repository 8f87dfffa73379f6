//! Zones that come and go with the autoscaler (issue 25), on the real control plane with the
//! fake autoscaler: three zones under one NodePool; zone 2c's nodes go during an outage and its
//! pods land in 2a and 2b; the zone comes back with no node at all.
//!
//! - `recovered_empty_zone_via_capacity_buffer` / `..._via_placeholder_pods`: skewguard reports
//!   2c missing, asks the autoscaler for room (a CapacityBuffer where served, else placeholder
//!   pods), and the service ends within maxSkew over all three zones, with evictions equal to the
//!   lower bound, no request left behind and only the nodes the moves needed.
//! - `a_zone_the_autoscaler_never_fills`: ProvisioningTimedOut, no eviction, nothing left behind.
//! - `provisioning_off_reports_and_creates_nothing`: reported, nothing created, nothing evicted.
//!
//! `SKEWGUARD_E2E_PROVISIONING_DELAY` (seconds, default 5) sets the autoscaler's delay.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, PodTemplate};
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::{Value, json};

use super::autoscaler::{delete_nodepools, nodepool, only_nodepool};
use super::fixtures::deployment;
use super::support::{
    PodChurn, ZONE_A, ZONE_C, ZONE_KEY, hapolicy, policy_status, start_operator, workload_status,
};
use crate::fake_autoscaler::{AutoscalerConfig, FakeAutoscaler, capacitybuffer_resource};
use crate::harness::{Ctx, TestdataCrd, wait_for};

const ZONE_B: &str = "ap-northeast-2b";
const WEB: [(&str, &str); 1] = [("app", "web")];
const CAPACITY_LABEL: &str = "skewguard.dev/capacity-for";

fn provisioning_delay() -> Duration {
    let secs = std::env::var("SKEWGUARD_E2E_PROVISIONING_DELAY")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    Duration::from_secs(secs)
}

/// The PriorityClass config/ ships for placeholder pods.
fn priority_class() -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/manager/priority_class.yaml"),
    )
    .expect("config/manager/priority_class.yaml")
}

/// How the run goes: which API asks for room, and whether the operator may ask at all.
#[derive(Clone, Copy, PartialEq)]
enum Ask {
    Buffer,
    Placeholders,
    Off,
}

/// Three zones, `web` (6 pods) spread 2/2/2; then the outage: 2c's nodes deleted and its pods
/// with them, their replacements in 2a and 2b (3/3). The NodePool allows all three zones.
async fn outage_leaves_2c_empty(ctx: &Ctx, ask: Ask) {
    ctx.kubelet
        .ensure_nodes(&[(ZONE_A, 1), (ZONE_B, 1), (ZONE_C, 1)])
        .await;
    ctx.install_testdata_crd(TestdataCrd::NodePool).await;
    match ask {
        Ask::Buffer => ctx.install_testdata_crd(TestdataCrd::CapacityBuffer).await,
        _ => ctx.remove_testdata_crd(TestdataCrd::CapacityBuffer).await,
    }
    only_nodepool(
        ctx,
        &nodepool("e2e-zones", &[ZONE_A, ZONE_B, ZONE_C], "10s"),
    )
    .await;
    ctx.apply(&priority_class()).await;
    let mut web: Value = serde_yaml::from_str(&deployment("web", 6, &WEB)).unwrap();
    web["spec"]["template"]["spec"]["topologySpreadConstraints"] = json!([{
        "maxSkew": 1, "topologyKey": ZONE_KEY, "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}}}]);
    ctx.apply(&web.to_string()).await;
    ctx.wait_ready_pods_by_zone(
        "app=web",
        &super::support::zones(&[(ZONE_A, 2), (ZONE_B, 2), (ZONE_C, 2)]),
        Duration::from_secs(90),
    )
    .await;
    // The outage: 2c's node goes (as Karpenter's would), its pods with it.
    ctx.kubelet.ensure_nodes(&[(ZONE_A, 1), (ZONE_B, 1)]).await;
    let pods: Api<Pod> = ctx.api();
    for p in ctx.pods("app=web").await {
        if p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| n.contains("2c"))
        {
            let _ = pods
                .delete(
                    p.metadata.name.as_deref().unwrap_or_default(),
                    &DeleteParams::default().grace_period(0),
                )
                .await;
        }
    }
    ctx.wait_ready_pods_by_zone(
        "app=web",
        &super::support::zones(&[(ZONE_A, 3), (ZONE_B, 3)]),
        Duration::from_secs(90),
    )
    .await;
}

fn policy(provisioning: bool, timeout_seconds: i64) -> String {
    hapolicy(
        "zones",
        json!({
            "selector": {"matchLabels": {"app": "web"}},
            "spread": [{"topologyKey": ZONE_KEY, "maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}],
            "rebalance": {"stabilizationSeconds": 1, "cooldownSeconds": 0,
                          "provisioning": {"enabled": provisioning, "timeoutSeconds": timeout_seconds}},
            "scaleIn": {"deletionCost": false},
        }),
    )
}

/// Pods, PodTemplates and CapacityBuffers skewguard made to ask for room, by name.
async fn room_objects(ctx: &Ctx) -> Vec<String> {
    let labelled = ListParams::default().labels(CAPACITY_LABEL);
    let mut found: Vec<String> = Vec::new();
    let pods: Api<Pod> = ctx.api();
    let templates: Api<PodTemplate> = ctx.api();
    for p in pods
        .list(&labelled)
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        found.push(format!("Pod {}", p.metadata.name.unwrap_or_default()));
    }
    for t in templates
        .list(&labelled)
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        found.push(format!(
            "PodTemplate {}",
            t.metadata.name.unwrap_or_default()
        ));
    }
    if let Ok(list) = ctx
        .dynamic(&capacitybuffer_resource())
        .list(&labelled)
        .await
    {
        for b in list.items {
            found.push(format!(
                "CapacityBuffer {}",
                b.metadata.name.unwrap_or_default()
            ));
        }
    }
    found
}

/// The web entry's zone constraint as status reports it.
async fn zone_entry(ctx: &Ctx) -> Option<Value> {
    let w = workload_status(ctx, "zones", "web").await?;
    w["constraints"]
        .as_array()?
        .iter()
        .find(|c| c["topologyKey"] == ZONE_KEY)
        .cloned()
}

async fn wait_reported_missing(ctx: &Ctx) -> Value {
    wait_for("2c reported missing", Duration::from_secs(60), || async {
        let c = zone_entry(ctx).await?;
        (c["missingDomains"] == json!([ZONE_C])).then_some(c)
    })
    .await
}

async fn recovered_empty_zone(ctx: Ctx, ask: Ask) {
    outage_leaves_2c_empty(&ctx, ask).await;
    let delay = provisioning_delay();
    let autoscaler: FakeAutoscaler = ctx
        .start_autoscaler(
            AutoscalerConfig::default()
                .provisioning_delay(delay)
                .consolidation_validation(Duration::from_secs(15)),
        )
        .await;
    let churn = PodChurn::start(&ctx).await;
    let returned = Instant::now();
    let op = start_operator(&ctx, &["--max-evictions-per-second", "10"]);
    ctx.apply(&policy(true, 600)).await;
    let reported = wait_reported_missing(&ctx).await;
    assert_eq!(
        reported["skew"],
        json!(0),
        "as the scheduler counts it: 3/3"
    );
    assert_eq!(
        reported["expectedSkew"],
        json!(3),
        "over 2a, 2b and 2c: 3/3/0"
    );
    assert_eq!(reported["domains"][ZONE_C], json!(0));

    // Balanced over all three zones.
    ctx.wait_ready_pods_by_zone(
        "app=web",
        &super::support::zones(&[(ZONE_A, 2), (ZONE_B, 2), (ZONE_C, 2)]),
        Duration::from_secs(120) + delay * 3,
    )
    .await;
    let balanced = returned.elapsed();
    wait_for(
        "the policy reports web balanced",
        Duration::from_secs(60),
        || async {
            let s = policy_status(&ctx, "zones").await;
            (s["unbalancedCount"] == json!(0) && s["workloadCount"] == json!(1)).then_some(())
        },
    )
    .await;
    wait_for(
        "no request left behind",
        Duration::from_secs(60),
        || async { room_objects(&ctx).await.is_empty().then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let evictions = churn.deleted(&WEB).len();
    let lower_bound = skewguard::core::topology::min_moves(&[3, 3, 0], 1, false);
    let nodes = autoscaler.created();
    println!(
        "\n  zones ({}): balanced {:.1}s after the zone returned (provisioning delay {}s); \
         evictions {evictions} (lower bound {lower_bound}); nodes created {}",
        match ask {
            Ask::Buffer => "CapacityBuffer",
            _ => "placeholder pods",
        },
        balanced.as_secs_f64(),
        delay.as_secs(),
        nodes.len()
    );
    assert_eq!(evictions as i64, lower_bound, "the fewest evictions");
    assert_eq!(nodes.len(), 1, "one node holds the two moves: {nodes:?}");
    assert_eq!(nodes[0].zone, ZONE_C);
    assert!(room_objects(&ctx).await.is_empty());
    drop(op);
    delete_nodepools(&ctx).await;
}

pub async fn recovered_empty_zone_via_capacity_buffer(ctx: Ctx) {
    recovered_empty_zone(ctx, Ask::Buffer).await
}

pub async fn recovered_empty_zone_via_placeholder_pods(ctx: Ctx) {
    recovered_empty_zone(ctx, Ask::Placeholders).await
}

pub async fn a_zone_the_autoscaler_never_fills(ctx: Ctx) {
    outage_leaves_2c_empty(&ctx, Ask::Placeholders).await;
    let autoscaler = ctx
        .start_autoscaler(
            AutoscalerConfig::default()
                .provisioning_delay(Duration::from_secs(2))
                .never_fill(ZONE_C),
        )
        .await;
    let churn = PodChurn::start(&ctx).await;
    let op = start_operator(&ctx, &[]);
    // The shortest timeout the API allows.
    ctx.apply(&policy(true, 30)).await;
    wait_reported_missing(&ctx).await;
    wait_for("a request for room", Duration::from_secs(60), || async {
        (!room_objects(&ctx).await.is_empty()).then_some(())
    })
    .await;
    let w = wait_for("ProvisioningTimedOut", Duration::from_secs(90), || async {
        let w = workload_status(&ctx, "zones", "web").await?;
        (w["rebalance"]["reason"] == "ProvisioningTimedOut").then_some(w)
    })
    .await;
    assert_eq!(w["rebalance"]["state"], "Blocked");
    wait_for("nothing left behind", Duration::from_secs(30), || async {
        room_objects(&ctx).await.is_empty().then_some(())
    })
    .await;
    assert!(
        churn.deleted(&WEB).is_empty(),
        "no eviction: {:?}",
        churn.deleted(&WEB)
    );
    assert_eq!(autoscaler.nodes_created(), 0);
    drop(op);
    delete_nodepools(&ctx).await;
}

pub async fn provisioning_off_reports_and_creates_nothing(ctx: Ctx) {
    outage_leaves_2c_empty(&ctx, Ask::Off).await;
    let autoscaler = ctx
        .start_autoscaler(AutoscalerConfig::default().provisioning_delay(Duration::from_secs(2)))
        .await;
    let churn = PodChurn::start(&ctx).await;
    let op = start_operator(&ctx, &[]);
    ctx.apply(&policy(false, 600)).await;
    wait_reported_missing(&ctx).await;
    let w = wait_for("DomainMissing", Duration::from_secs(30), || async {
        let w = workload_status(&ctx, "zones", "web").await?;
        (w["rebalance"]["reason"] == "DomainMissing").then_some(w)
    })
    .await;
    assert_eq!(w["balanced"], json!(false), "3/3/0 is unbalanced");
    let s = policy_status(&ctx, "zones").await;
    assert_eq!(s["expectedDomains"][0]["source"], "NodePools");
    assert_eq!(
        s["conditions"][1]["status"], "False",
        "Balanced: {}",
        s["conditions"]
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(room_objects(&ctx).await.is_empty(), "nothing created");
    assert!(churn.deleted(&WEB).is_empty(), "nothing evicted");
    assert_eq!(autoscaler.nodes_created(), 0);
    drop(op);
    delete_nodepools(&ctx).await;
}
