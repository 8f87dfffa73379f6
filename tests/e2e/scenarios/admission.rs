//! Admission mode (issue 15) on the real control plane: skewguard's MutatingAdmissionPolicy
//! (config/admission-mode/) adds each HAPolicy's constraints to pods as they are created.
//!
//! - `admission_mode_adopts_without_rollouts`: a policy over 5 Deployments (one with its own zone
//!   constraint) changes no Deployment (generation and template unchanged, no skewguard field
//!   manager); a zone outage and its recovery is rebalanced with evictions equal to the lower
//!   bound, and every pod created since (the replacements) carries the constraints, the user's
//!   own constraint left alone; deleting the policy stops the mutation for new pods. On an API
//!   server that does not serve MutatingAdmissionPolicies (run the suite with
//!   `SKEWGUARD_E2E_APISERVER_ARGS=--runtime-config=admissionregistration.k8s.io/v1/mutatingadmissionpolicies=false`,
//!   or on an older Kubernetes) the same scenario checks that template mode is chosen instead.
//! - `admission_mode_never_blocks_pods`: malformed parameters (an invalid label key, a null
//!   field) never block pod creation, the API server refuses invalid values outright; the API
//!   server's type-check warnings and pods that lack what the status promised (two workloads
//!   whose selectors overlap) make the policy's Admitted condition False, with their metrics.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

use super::fixtures::deployment;
use super::support::*;
use crate::fake_kubelet::node_of;
use crate::harness::{Ctx, hapolicy_resource, wait_for};

const ZONE_B: &str = "ap-northeast-2b";
const HOSTNAME_KEY: &str = "kubernetes.io/hostname";
const WAIT: Duration = Duration::from_secs(90);
const POLICY: &str = "skewguard-spread-constraints";
const TYPE_CHECK: &str = "skewguard-spread-constraints-typecheck";
const FILES: [&str; 3] = [
    "config/admission-mode/mutating_admission_policy.yaml",
    "config/admission-mode/mutating_admission_policy_binding.yaml",
    "config/admission-mode/type_check_policy.yaml",
];

fn repo_file(ctx: &Ctx, path: &str) -> String {
    std::fs::read_to_string(ctx.repo.join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn admission_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind),
        plural,
    )
}

/// Whether the API server serves MutatingAdmissionPolicies (Kubernetes 1.36+, unless turned off).
pub(super) async fn admission_served(ctx: &Ctx) -> bool {
    ctx.client
        .list_api_group_resources("admissionregistration.k8s.io/v1")
        .await
        .map(|l| {
            l.resources
                .iter()
                .any(|r| r.name == "mutatingadmissionpolicies")
        })
        .unwrap_or(false)
}

/// config/admission-mode, installed for one scenario and removed when it ends (also when it
/// panics): it acts on every namespace, and other scenarios expect template mode.
pub(super) struct AdmissionMode {
    client: kube::Client,
}

impl AdmissionMode {
    pub(super) async fn install(ctx: &Ctx) -> AdmissionMode {
        for file in FILES {
            ctx.apply(&repo_file(ctx, file)).await;
        }
        AdmissionMode {
            client: ctx.client.clone(),
        }
    }

    async fn remove(client: kube::Client) {
        for (kind, plural, name) in [
            (
                "MutatingAdmissionPolicyBinding",
                "mutatingadmissionpolicybindings",
                POLICY,
            ),
            (
                "MutatingAdmissionPolicy",
                "mutatingadmissionpolicies",
                POLICY,
            ),
            (
                "ValidatingAdmissionPolicy",
                "validatingadmissionpolicies",
                TYPE_CHECK,
            ),
        ] {
            let api: Api<DynamicObject> =
                Api::all_with(client.clone(), &admission_resource(kind, plural));
            let _ = api.delete(name, &DeleteParams::default()).await;
        }
    }
}

impl Drop for AdmissionMode {
    fn drop(&mut self) {
        let client = self.client.clone();
        // Drop cannot await. On the scenario's own (multi-thread) runtime, block in place: the
        // client's connection tasks live there, and a worker blocked on another runtime could
        // hold the very task the removal waits for (its LIFO slot is not stolen).
        if let Ok(handle) = tokio::runtime::Handle::try_current()
            && handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        {
            tokio::task::block_in_place(|| handle.block_on(AdmissionMode::remove(client)));
            return;
        }
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(AdmissionMode::remove(client)))
        })
        .join();
    }
}

/// What the API server would make of a pod with these labels (and `spec`), created now: a
/// server-side dry run, so nothing is created.
pub(super) async fn admitted_pod(ctx: &Ctx, labels: &[(&str, &str)], spec: Value) -> Pod {
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    let mut spec_value = json!({"containers": [{"name": "app", "image": "nginx:1.27"}]});
    for (k, v) in spec.as_object().cloned().unwrap_or_default() {
        spec_value[k] = v;
    }
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"generateName": "probe-", "labels": labels},
        "spec": spec_value,
    }))
    .unwrap();
    ctx.api::<Pod>()
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &pod,
        )
        .await
        .unwrap_or_else(|e| panic!("dry-run pod with {labels:?}: {e}"))
}

fn constraint_keys(pod: &Pod) -> Vec<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_ref())
        .map(|cs| cs.iter().map(|c| c.topology_key.clone()).collect())
        .unwrap_or_default()
}

/// Waits until a pod with `labels` created now gets the topology keys `keys` added.
async fn wait_admitted(ctx: &Ctx, labels: &[(&str, &str)], keys: &[&str]) {
    let want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    wait_for(
        &format!("new pods with {labels:?} to be admitted with {keys:?}"),
        WAIT,
        || async {
            let pod = admitted_pod(ctx, labels, json!({})).await;
            (constraint_keys(&pod) == want).then_some(())
        },
    )
    .await;
}

/// Sleeps until pods created now are judged against the published entries (the latest `since`
/// plus the operator's grace).
async fn wait_past_grace(status: &Value) {
    let since = status["admission"]["workloads"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["since"].as_str()?.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_second())
        .max()
        .expect("published entries");
    let grace = skewguard::core::injection::PUBLISH_GRACE.as_secs() as i64;
    let wait = since + grace + 1 - jiff::Timestamp::now().as_second();
    if wait > 0 {
        tokio::time::sleep(Duration::from_secs(wait as u64)).await;
    }
}

/// What must not change on a Deployment: its generation, its pod template, its field managers.
fn fingerprint(d: &Deployment) -> (Option<i64>, Value, Vec<String>) {
    let mut managers = managers(d.metadata.managed_fields.as_deref().unwrap_or_default());
    managers.sort();
    managers.dedup();
    (
        d.metadata.generation,
        serde_json::to_value(&d.spec.as_ref().unwrap().template).unwrap(),
        managers,
    )
}

fn condition(status: &Value, type_: &str) -> Option<(String, String, String)> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().unwrap_or_default().to_string(),
                c["message"].as_str().unwrap_or_default().to_string(),
            )
        })
}

/// Waits until the policy's status satisfies `ok`, and returns it.
async fn wait_policy(ctx: &Ctx, policy: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let start = Instant::now();
    while start.elapsed() < WAIT {
        last = policy_status(ctx, policy).await;
        if ok(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("timed out waiting for {what}; status of {policy}: {last}")
}

const SERVICES: [&str; 5] = ["svc-0", "svc-1", "svc-2", "svc-3", "svc-own"];
/// The Deployment whose template has its own zone constraint.
const OWN: &str = "svc-own";

fn labels_of(name: &str) -> [(&str, &str); 2] {
    [("app", "adm"), ("svc", name)]
}

/// A Deployment of `app: adm` pods; `svc-own` carries its own zone constraint.
fn service(name: &str, replicas: u32) -> String {
    let yaml = deployment(name, replicas, &labels_of(name));
    if name != OWN {
        return yaml;
    }
    yaml.replace(
        "      terminationGracePeriodSeconds: 5\n",
        &format!(
            "      terminationGracePeriodSeconds: 5\n      topologySpreadConstraints:\n      \
             - {{topologyKey: {ZONE_KEY}, maxSkew: 1, whenUnsatisfiable: ScheduleAnyway, \
             labelSelector: {{matchLabels: {{svc: {OWN}}}}}}}\n"
        ),
    )
}

fn adm_policy(name: &str) -> String {
    hapolicy(
        name,
        json!({
            "selector": {"matchLabels": {"app": "adm"}},
            "spread": [{"topologyKey": ZONE_KEY, "maxSkew": 1}],
            "rebalance": {"stabilizationSeconds": 3, "cooldownSeconds": 5},
        }),
    )
}

/// Ready pods per zone of every service, keyed by service.
async fn spread_of(ctx: &Ctx) -> BTreeMap<String, BTreeMap<String, usize>> {
    let mut out = BTreeMap::new();
    for s in SERVICES {
        out.insert(
            s.to_string(),
            ctx.ready_pods_by_zone(&selector(&labels_of(s))).await,
        );
    }
    out
}

/// Waits until the `replicas` live pods of service `s` are all bound in `zone`, deleting any bound
/// elsewhere. On a loaded machine kube-scheduler's node cache can lag a cordon and bind a pod
/// created right after it to a cordoned node, and while it lags the ReplicaSet's replacement of a
/// deleted one can land there too: so this deletes until none is left outside.
async fn delete_pods_outside(ctx: &Ctx, s: &str, replicas: u32, zone: &str) {
    let selector = selector(&labels_of(s));
    let api: Api<Pod> = ctx.api();
    wait_for(&format!("pods of {s} bound in {zone}"), WAIT, || async {
        let pods = ctx.pods(&selector).await;
        let live: Vec<&Pod> = (pods.iter())
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        let mut all_in_zone = live.len() == replicas as usize;
        for p in live {
            let Some(node) = node_of(p) else {
                all_in_zone = false;
                continue;
            };
            if ctx.kubelet.zone_of(node).as_deref() != Some(zone) {
                all_in_zone = false;
                eprintln!("  {} bound to cordoned {node}: deleted", p.name_any());
                let _ = api.delete(&p.name_any(), &DeleteParams::default()).await;
            }
        }
        all_in_zone.then_some(())
    })
    .await;
}

/// Two schedulable nodes in each of three zones.
async fn three_zones(ctx: &Ctx) {
    ctx.kubelet
        .ensure_nodes(&[(ZONE_A, 2), (ZONE_B, 2), (ZONE_C, 2)])
        .await;
    for zone in [ZONE_A, ZONE_B, ZONE_C] {
        ctx.kubelet.uncordon_zone(zone).await;
    }
}

pub async fn admission_mode_adopts_without_rollouts(ctx: Ctx) {
    const REPLICAS: u32 = 3;
    three_zones(&ctx).await;
    if !admission_served(&ctx).await {
        return template_mode_where_admission_is_not_served(ctx).await;
    }
    let _installed = AdmissionMode::install(&ctx).await;

    // The outage: 2a and 2b are cordoned, every pod lands in 2c.
    ctx.kubelet.cordon_zone(ZONE_A).await;
    ctx.kubelet.cordon_zone(ZONE_B).await;
    for s in SERVICES {
        ctx.apply(&service(s, REPLICAS)).await;
    }
    for s in SERVICES {
        delete_pods_outside(&ctx, s, REPLICAS, ZONE_C).await;
        ctx.wait_ready_pods_by_zone(
            &selector(&labels_of(s)),
            &zones(&[(ZONE_C, REPLICAS as usize)]),
            WAIT,
        )
        .await;
    }
    let deployments = ctx.api::<Deployment>();
    let mut before = BTreeMap::new();
    for s in SERVICES {
        // The controller-manager writes the status a moment after the pods are Ready.
        let d = wait_for(&format!("{s} settled"), WAIT, || async {
            let d = deployments.get(s).await.unwrap();
            deployment_settled(&d, REPLICAS as i32).then_some(d)
        })
        .await;
        before.insert(s, fingerprint(&d));
    }

    ctx.apply(&adm_policy("adm")).await;
    let op = start_operator(&ctx, &[]);
    let status = wait_policy(&ctx, "adm", "admission mode and its entries", |s| {
        s["injection"]["mode"] == "Admission"
            && s["admission"]["workloads"].as_array().map(Vec::len) == Some(4)
    })
    .await;
    assert_eq!(
        status["injection"]["reason"], "AdmissionPolicyInstalled",
        "{status}"
    );
    let entries = status["admission"]["workloads"].as_array().unwrap();
    let web = entries.iter().find(|e| e["name"] == "svc-0").unwrap();
    assert_eq!(
        web["podSelector"],
        json!({"matchLabels": {"app": "adm", "svc": "svc-0"}})
    );
    assert_eq!(
        web["constraints"],
        json!([{"topologyKey": ZONE_KEY, "maxSkew": 1, "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app": "adm", "svc": "svc-0"}},
                "matchLabelKeys": ["pod-template-hash"],
                "nodeAffinityPolicy": "Honor", "nodeTaintsPolicy": "Honor"}])
    );
    assert!(
        !entries.iter().any(|e| e["name"] == OWN),
        "the user's own zone constraint leaves nothing to add: {status}"
    );
    for w in status["workloads"].as_array().unwrap() {
        assert_eq!(w["injection"], "Admission", "{w}");
    }
    // The admission plugin sees the published status through its own watch.
    wait_admitted(&ctx, &labels_of("svc-0"), &[ZONE_KEY]).await;
    let own = admitted_pod(&ctx, &labels_of(OWN), json!({})).await;
    assert!(
        constraint_keys(&own).is_empty(),
        "nothing is added from a template's own constraint (pods of svc-own get it from their template)"
    );

    // Pods created from `since` plus a grace on are checked against the entries.
    wait_past_grace(&status).await;
    // The recovery: 2a and 2b take pods again.
    let lower_bound: i64 = SERVICES
        .iter()
        .map(|_| skewguard::core::topology::min_moves(&[0, 0, REPLICAS as i32], 1, false))
        .sum();
    let published = Instant::now();
    let churn = PodChurn::start(&ctx).await;
    let t0 = Instant::now();
    ctx.kubelet.uncordon_zone(ZONE_A).await;
    ctx.kubelet.uncordon_zone(ZONE_B).await;
    let balanced = zones(&[(ZONE_A, 1), (ZONE_B, 1), (ZONE_C, 1)]);
    loop {
        let spread = spread_of(&ctx).await;
        if spread.values().all(|z| z == &balanced) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(150),
            "not rebalanced after 150s: {spread:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let took = t0.elapsed();
    // Let a last eviction (if any) show.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let evictions = churn.deleted(&[("app", "adm")]).len() as i64;
    println!(
        "\n  admission: 5 Deployments x {REPLICAS} rebalanced in {:.1}s after the recovery, \
         {evictions} evictions (lower bound {lower_bound})",
        took.as_secs_f64()
    );
    assert_eq!(
        evictions, lower_bound,
        "evictions should equal the fewest moves"
    );

    // Nothing was written to any Deployment.
    for s in SERVICES {
        let d = deployments.get(s).await.unwrap();
        let now = fingerprint(&d);
        assert_eq!(now, before[s], "{s} changed");
        assert!(!now.2.contains(&SKEWGUARD.to_string()), "{s}: {:?}", now.2);
    }
    // Every pod created since the constraints were published carries them; svc-own's pods carry
    // only their own.
    let mut replacements = 0;
    for s in SERVICES {
        for p in ctx.pods(&selector(&labels_of(s))).await {
            if p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let cs = p
                .spec
                .as_ref()
                .unwrap()
                .topology_spread_constraints
                .clone()
                .unwrap_or_default();
            let replacement = created_after(&p, published);
            if s == OWN {
                assert_eq!(cs.len(), 1, "{}: {cs:?}", p.name_any());
                assert_eq!(cs[0].max_skew, 1);
                assert_eq!(
                    serde_json::to_value(&cs[0].label_selector).unwrap(),
                    json!({"matchLabels": {"svc": OWN}}),
                    "the user's own constraint is left alone"
                );
            } else if replacement {
                replacements += 1;
                assert_eq!(cs.len(), 1, "{}: {cs:?}", p.name_any());
                let c = &cs[0];
                assert_eq!(
                    (c.topology_key.as_str(), c.max_skew),
                    (ZONE_KEY, 1),
                    "{c:?}"
                );
                assert_eq!(
                    c.match_label_keys.as_deref(),
                    Some(&["pod-template-hash".to_string()][..])
                );
                let hash = &p.labels()["pod-template-hash"];
                // 1.34+ servers merge matchLabelKeys into the selector.
                let selector = serde_json::to_value(&c.label_selector).unwrap();
                assert_eq!(
                    selector,
                    json!({"matchLabels": {"app": "adm", "svc": s},
                           "matchExpressions": [{"key": "pod-template-hash", "operator": "In",
                                                 "values": [hash]}]}),
                    "{}",
                    p.name_any()
                );
            }
        }
    }
    // The replacements of the four services admission adds to (svc-own's are its template's).
    assert_eq!(
        replacements,
        evictions - skewguard::core::topology::min_moves(&[0, 0, REPLICAS as i32], 1, false),
        "every replacement was checked"
    );
    let status = wait_policy(&ctx, "adm", "Admitted True", |s| {
        condition(s, "Admitted").is_some_and(|c| c.0 == "True")
    })
    .await;
    assert_eq!(
        condition(&status, "Admitted").unwrap().1,
        "ConstraintsAdmitted"
    );
    let m = scrape(&op).await;
    assert_eq!(metric(&m, "skewguard_admission_available", &[]), Some(1.0));
    assert_eq!(
        metric(
            &m,
            "skewguard_workload_injection",
            &[("workload", "svc-0"), ("mode", "Admission")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "skewguard_admission_pods_missing_constraints",
            &[("workload", "svc-0")]
        ),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &m,
            "skewguard_rebalance_actions_total",
            &[("action", "inject")]
        ),
        None,
        "no template write was made"
    );

    // Deleting the policy stops the mutation for new pods.
    ctx.dynamic(&hapolicy_resource())
        .delete("adm", &DeleteParams::default())
        .await
        .expect("delete the policy");
    wait_admitted(&ctx, &labels_of("svc-0"), &[]).await;
    // The pods before the scale-up: listed after it, the new pod may already be among them.
    let old: Vec<String> = ctx
        .pods(&selector(&labels_of("svc-0")))
        .await
        .iter()
        .map(|p| p.name_any())
        .collect();
    deployments
        .patch(
            "svc-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": REPLICAS + 1}})),
        )
        .await
        .unwrap();
    let fresh = wait_for("svc-0's new pod", WAIT, || async {
        ctx.pods(&selector(&labels_of("svc-0")))
            .await
            .into_iter()
            .find(|p| !old.contains(&p.name_any()))
    })
    .await;
    assert!(
        constraint_keys(&fresh).is_empty(),
        "{} was admitted with constraints after the policy was deleted",
        fresh.name_any()
    );
}

/// Whether the pod was created after `at` (an Instant of this process): by creation timestamp
/// against the wall clock, with a second's slack for the timestamp's resolution.
fn created_after(p: &Pod, at: Instant) -> bool {
    let created = p
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(0, |t| t.0.as_second());
    let at_wall = jiff::Timestamp::now().as_second() - at.elapsed().as_secs() as i64;
    created > at_wall
}

/// The same scenario on an API server without MutatingAdmissionPolicies: template mode.
async fn template_mode_where_admission_is_not_served(ctx: Ctx) {
    println!("\n  admission: MutatingAdmissionPolicies not served: checking the template fallback");
    for s in SERVICES {
        ctx.apply(&service(s, 2)).await;
    }
    ctx.apply(&adm_policy("adm")).await;
    let _op = start_operator(&ctx, &[]);
    let status = wait_policy(&ctx, "adm", "template mode", |s| {
        s["injection"]["mode"] == "Template"
    })
    .await;
    assert_eq!(
        status["injection"]["reason"], "AdmissionNotServed",
        "{status}"
    );
    assert!(status["admission"].is_null(), "{status}");
    let d = wait_deployment_constrained(&ctx, "svc-0", 2).await;
    assert!(
        owns_spread_constraints(d.metadata.managed_fields.as_deref().unwrap(), SKEWGUARD),
        "template injection writes with field manager skewguard"
    );
    let w = workload_status(&ctx, "adm", "svc-0").await.unwrap();
    assert_eq!(w["injection"], "Template", "{w}");
}

/// Sets a policy's status by hand (as a broken or hostile writer could).
async fn write_status(ctx: &Ctx, policy: &str, status: Value) -> Result<(), kube::Error> {
    ctx.dynamic(&hapolicy_resource())
        .patch_status(
            policy,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .map(|_| ())
}

fn entry(app: &str, constraint: Value) -> Value {
    json!({"kind": "Deployment", "name": app, "since": "2026-01-01T00:00:00Z",
           "podSelector": {"matchLabels": {"app": app}}, "constraints": [constraint]})
}

fn zone_constraint(app: &str) -> Value {
    json!({"topologyKey": ZONE_KEY, "maxSkew": 1, "whenUnsatisfiable": "ScheduleAnyway",
           "labelSelector": {"matchLabels": {"app": app}},
           "nodeAffinityPolicy": "Honor", "nodeTaintsPolicy": "Honor"})
}

pub async fn admission_mode_never_blocks_pods(ctx: Ctx) {
    three_zones(&ctx).await;
    if !admission_served(&ctx).await {
        println!("\n  admission: MutatingAdmissionPolicies not served: nothing to check");
        return;
    }
    let _installed = AdmissionMode::install(&ctx).await;

    // Parameters written by hand, with no operator to correct them.
    ctx.apply(&hapolicy(
        "manual",
        json!({"selector": {"matchLabels": {"app": "nothing"}},
               "spread": [{"topologyKey": ZONE_KEY}], "injection": "Admission"}),
    ))
    .await;
    let mut bad_key = zone_constraint("bad-key");
    bad_key["labelSelector"] = json!({"matchLabels": {"not a key!": "x"}});
    let bad_null = zone_constraint("bad-null");
    let mut bad_anti = entry("bad-anti", zone_constraint("bad-anti"));
    bad_anti["antiAffinity"] = json!({"weight": 100, "podAffinityTerm": {
        "topologyKey": "no such key!", "labelSelector": {"matchLabels": {"app": "bad-anti"}}}});
    // hostAntiAffinity: Preferred, published as a term: added to a pod with no preferred
    // anti-affinity of its own, never beside one the pod has.
    let host_term = |app: &str| {
        json!({"weight": 100, "podAffinityTerm": {
            "topologyKey": HOSTNAME_KEY, "labelSelector": {"matchLabels": {"app": app}}}})
    };
    let own_term = json!({"weight": 50, "podAffinityTerm": {
        "topologyKey": ZONE_KEY, "labelSelector": {"matchLabels": {"app": "own-anti"}}}});
    let mut good_anti = entry("good-anti", zone_constraint("good-anti"));
    good_anti["antiAffinity"] = host_term("good-anti");
    let mut own_anti = entry("own-anti", zone_constraint("own-anti"));
    own_anti["antiAffinity"] = host_term("own-anti");
    write_status(
        &ctx,
        "manual",
        json!({"admission": {"workloads": [
            entry("good", zone_constraint("good")),
            entry("bad-key", bad_key),
            entry("bad-null", bad_null),
            bad_anti,
            good_anti,
            own_anti,
        ]}}),
    )
    .await
    .expect("a status the schema accepts");
    // A null field (a merge patch cannot write one: it would delete the field).
    let null = json!([{"op": "add", "value": null,
        "path": "/status/admission/workloads/2/constraints/0/minDomains"}]);
    let request = http::Request::patch(format!(
        "/apis/skewguard.dev/v1alpha1/namespaces/{}/hapolicies/manual/status",
        ctx.ns
    ))
    .header("Content-Type", "application/json-patch+json")
    .body(serde_json::to_vec(&null).unwrap())
    .unwrap();
    let written = ctx
        .client
        .request_text(request)
        .await
        .expect("a null minDomains is accepted (the field is nullable)");
    assert!(written.contains("\"minDomains\":null"), "{written}");
    // The schema refuses what it can: a maxSkew below 1, a duplicate (key, whenUnsatisfiable).
    let mut zero = zone_constraint("good");
    zero["maxSkew"] = json!(0);
    let refused = write_status(
        &ctx,
        "manual",
        json!({"admission": {"workloads": [entry("good", zero)]}}),
    )
    .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.code == 422),
        "{refused:?}"
    );
    wait_admitted(&ctx, &[("app", "good")], &[ZONE_KEY]).await;
    for app in ["bad-key", "bad-null", "bad-anti"] {
        ctx.apply(&deployment(app, 1, &[("app", app)])).await;
    }
    ctx.apply(&deployment("good", 1, &[("app", "good")])).await;
    ctx.apply(&deployment("good-anti", 1, &[("app", "good-anti")]))
        .await;
    let mut own: Value = serde_yaml::from_str(&deployment("own-anti", 1, &[("app", "own-anti")]))
        .expect("the fixture is YAML");
    own["spec"]["template"]["spec"]["affinity"] = json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [own_term.clone()]}});
    ctx.apply(&own.to_string()).await;
    let preferred_anti = |pod: &Pod| {
        let affinity = serde_json::to_value(&pod.spec.as_ref().unwrap().affinity).unwrap();
        affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"].clone()
    };
    for app in [
        "good",
        "bad-key",
        "bad-null",
        "bad-anti",
        "good-anti",
        "own-anti",
    ] {
        let d = wait_for(&format!("{app} Ready"), WAIT, || async {
            let d: Deployment = ctx.api::<Deployment>().get(app).await.ok()?;
            deployment_settled(&d, 1).then_some(d)
        })
        .await;
        drop(d);
        let pods = ctx.pods(&format!("app={app}")).await;
        let keys = constraint_keys(&pods[0]);
        let affinity = pods[0].spec.as_ref().unwrap().affinity.clone();
        match app {
            "good" => assert_eq!(keys, [ZONE_KEY]),
            // The valid zone constraint of bad-anti is added, its invalid anti-affinity is not.
            "bad-anti" => {
                assert_eq!(keys, [ZONE_KEY]);
                assert!(affinity.is_none(), "{affinity:?}");
            }
            "good-anti" => {
                assert_eq!(keys, [ZONE_KEY]);
                assert_eq!(preferred_anti(&pods[0]), json!([host_term("good-anti")]));
            }
            // The pod's own preferred anti-affinity wins; the zone constraint is still added.
            "own-anti" => {
                assert_eq!(keys, [ZONE_KEY]);
                assert_eq!(preferred_anti(&pods[0]), json!([own_term]));
            }
            _ => assert!(keys.is_empty(), "{app}: {keys:?}"),
        }
    }
    println!("\n  admission: malformed parameters skipped, every pod created");

    // The operator: two workloads whose selectors overlap; pods of the narrower one match both
    // entries, so admission adds nothing to them (it cannot tell whose they are), and the
    // policy says that its promise is not kept.
    ctx.apply(&deployment("dup", 1, &[("group", "dup"), ("tier", "dup")]))
        .await;
    let canary = deployment(
        "dup-canary",
        1,
        &[("group", "dup"), ("tier", "dup"), ("track", "canary")],
    );
    ctx.apply(&canary).await;
    ctx.apply(&hapolicy(
        "dup",
        json!({"selector": {"matchLabels": {"group": "dup"}},
               "spread": [{"topologyKey": ZONE_KEY}, {"topologyKey": HOSTNAME_KEY}],
               "rebalance": {"strategy": "None"}}),
    ))
    .await;
    // First a type-check warning: the API server checks a broken copy of the expressions.
    let broken = repo_file(&ctx, FILES[2]).replace(
        "params.status.admission.workloads.filter",
        "params.status.admision.workloads.filter",
    );
    ctx.apply(&broken).await;
    let vaps: Api<DynamicObject> = Api::all_with(
        ctx.client.clone(),
        &admission_resource("ValidatingAdmissionPolicy", "validatingadmissionpolicies"),
    );
    wait_for("the type checker's warning", WAIT, || async {
        let v = vaps.get(TYPE_CHECK).await.ok()?;
        v.data["status"]["typeChecking"]["expressionWarnings"]
            .as_array()
            .is_some_and(|w| !w.is_empty())
            .then_some(())
    })
    .await;
    let op = start_operator(&ctx, &[]);
    let status = wait_policy(&ctx, "dup", "Admitted False (type check)", |s| {
        condition(s, "Admitted").is_some_and(|c| c.1 == "TypeCheckWarnings")
    })
    .await;
    let (state, _, message) = condition(&status, "Admitted").unwrap();
    assert_eq!(state, "False");
    assert!(message.contains("admision"), "{message}");
    let m = scrape(&op).await;
    assert!(
        metric(&m, "skewguard_admission_type_check_warnings", &[]).unwrap_or(0.0) >= 1.0,
        "the warnings are a metric"
    );

    // Fixed: the operator sees it at its next look (every 30 s). Pods created from now on are
    // checked against the entries.
    ctx.apply(&repo_file(&ctx, FILES[2])).await;
    let status = wait_policy(&ctx, "dup", "the warning gone", |s| {
        condition(s, "Admitted").is_some_and(|c| c.1 != "TypeCheckWarnings")
    })
    .await;
    wait_past_grace(&status).await;
    for name in ["dup", "dup-canary"] {
        ctx.api::<Deployment>()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 2}})),
            )
            .await
            .unwrap();
    }
    let status = wait_policy(&ctx, "dup", "Admitted False (pods lack constraints)", |s| {
        condition(s, "Admitted").is_some_and(|c| c.1 == "ConstraintsMissing")
    })
    .await;
    let (_, _, message) = condition(&status, "Admitted").unwrap();
    assert!(
        message.starts_with("1 of 2 pod(s)")
            && message.contains("dup-canary-")
            && message.contains("selected by dup and dup-canary: overlapping pod selectors"),
        "{message}"
    );
    let m = scrape(&op).await;
    assert_eq!(
        metric(
            &m,
            "skewguard_admission_pods_missing_constraints",
            &[("workload", "dup-canary")]
        ),
        Some(1.0)
    );
    // dup's selector selects the canary's pods too: it counts that pod as well.
    assert_eq!(
        metric(
            &m,
            "skewguard_admission_pods_missing_constraints",
            &[("workload", "dup")]
        ),
        Some(1.0)
    );
}
