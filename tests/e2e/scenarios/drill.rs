//! The field teams' zone drill three ways (issue 26), on the real control plane in admission mode
//! (Kubernetes 1.36+): cordon every node of one zone, delete its pods, hold the outage, uncordon.
//! The same workloads each way: `web` and `was` (2 replicas each, Deployments) over two zones,
//! then a 6-replica `svc` over three; the policy's zone entry is `whenUnsatisfiable:
//! DoNotSchedule` (with `minDomains` = the zones, as the field's user-service had),
//! `ScheduleAnyway`, or `Adaptive` (with the same `minDomains`, published with the hard form).
//!
//! - `zone_drill_do_not_schedule`: the replacements stay Pending for the whole outage; they land
//!   in the zone when it is back (no eviction needed).
//! - `zone_drill_schedule_anyway`: the service stays up; the skew stays until skewguard rebalances
//!   after the recovery (evictions equal to the lower bound).
//! - `zone_drill_adaptive`: no replica Pending longer than a few seconds after the zone is
//!   detected Out, every replica Ready again within the kubelet's readiness delay plus a few
//!   seconds; after the recovery window every new pod is admitted with DoNotSchedule and the
//!   spread is back within maxSkew with evictions equal to the lower bound; an HPA-style
//!   scale-out (6 -> 12) while every zone is Healthy lands within maxSkew at once, no eviction.
//!   Without MutatingAdmissionPolicies (1.33) the policy reports Adaptive unavailable instead.
//! - `adaptive_deletes_stranded_pods_and_follows_a_declared_zone`: pods made Pending by the hard
//!   form while the operator was down are deleted once it sees the zone Out, their replacements
//!   admitted relaxed; a zone declared Out by the node label stays Out while labelled.
//!
//! Each prints its figures (longest Pending, ready replicas at the worst moment, recovery to
//! balanced and its evictions).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::admission::{AdmissionMode, admission_served, admitted_pod};
use super::fixtures::deployment;
use super::support::*;
use crate::fake_kubelet::node_of;
use crate::harness::{Ctx, OperatorProcess, wait_for, watch_backoff};

const ZONE_B: &str = "ap-northeast-2b";
const WAIT: Duration = Duration::from_secs(120);
/// The fake kubelet's readiness delay during the drills (a readiness probe).
const READY_DELAY: Duration = Duration::from_secs(2);
/// How long each outage is held.
const OUTAGE: Duration = Duration::from_secs(20);
/// The policy's `zoneHealth.recoveryWindowSeconds`.
const RECOVERY_WINDOW: u64 = 10;
const POLICY: &str = "drill";
const ZONE_OUT_LABEL: &str = "skewguard.dev/zone-out";

/// The policy's zone entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    DoNotSchedule,
    ScheduleAnyway,
    Adaptive,
}

impl Way {
    fn value(self) -> &'static str {
        match self {
            Way::DoNotSchedule => "DoNotSchedule",
            Way::ScheduleAnyway => "ScheduleAnyway",
            Way::Adaptive => "Adaptive",
        }
    }

    /// What a pod admitted now carries while every zone is Healthy.
    fn hard(self) -> bool {
        self != Way::ScheduleAnyway
    }
}

/// One half of a drill: the zones and the workloads (name, replicas).
struct Phase {
    name: &'static str,
    zones: &'static [&'static str],
    workloads: &'static [(&'static str, u32)],
}

const TWO_ZONES: Phase = Phase {
    name: "web and was (2 each) over two zones",
    zones: &[ZONE_A, ZONE_C],
    workloads: &[("web", 2), ("was", 2)],
};

const THREE_ZONES: Phase = Phase {
    name: "svc (6) over three zones",
    zones: &[ZONE_A, ZONE_B, ZONE_C],
    workloads: &[("svc", 6)],
};

fn labels_of(name: &str) -> [(&str, &str); 2] {
    [("app", "drill"), ("svc", name)]
}

/// The drill policy: the zone entry `way`, minDomains = the zones (not with ScheduleAnyway).
fn drill_policy(way: Way, zones: usize) -> String {
    let mut entry =
        json!({"topologyKey": ZONE_KEY, "maxSkew": 1, "whenUnsatisfiable": way.value()});
    if way.hard() {
        entry["minDomains"] = json!(zones);
    }
    hapolicy(
        POLICY,
        json!({
            "selector": {"matchLabels": {"app": "drill"}},
            "spread": [entry],
            "rebalance": {"stabilizationSeconds": 3, "cooldownSeconds": 5},
            "zoneHealth": {"recoveryWindowSeconds": RECOVERY_WINDOW},
        }),
    )
}

/// The fake kubelet's readiness delay for one scenario, back to none when it ends.
struct ReadinessDelay(crate::fake_kubelet::FakeKubelet);

impl ReadinessDelay {
    fn set(ctx: &Ctx, delay: Duration) -> ReadinessDelay {
        ctx.kubelet.set_readiness_delay(delay);
        ReadinessDelay(ctx.kubelet.clone())
    }
}

impl Drop for ReadinessDelay {
    fn drop(&mut self) {
        self.0.set_readiness_delay(Duration::ZERO);
    }
}

/// When each pod of the namespace was first seen, bound and gone, from a watch.
struct PendingTracker {
    pods: Arc<Mutex<HashMap<String, PodTimes>>>,
    task: JoinHandle<()>,
}

#[derive(Clone, Debug)]
struct PodTimes {
    name: String,
    seen: Instant,
    bound: Option<Instant>,
    gone: Option<Instant>,
}

impl PendingTracker {
    async fn start(ctx: &Ctx) -> PendingTracker {
        let pods: Arc<Mutex<HashMap<String, PodTimes>>> = Arc::default();
        let api = ctx.api::<Pod>();
        let (p, synced) = (pods.clone(), Arc::new(Mutex::new(false)));
        let s = synced.clone();
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default().labels("app=drill"))
                .backoff(watch_backoff())
                .boxed();
            while let Some(ev) = stream.next().await {
                let now = Instant::now();
                let mut pods = p.lock().unwrap();
                let mut note = |pod: &Pod, deleted: bool| {
                    let t = pods
                        .entry(pod.uid().unwrap_or_default())
                        .or_insert(PodTimes {
                            name: pod.name_any(),
                            seen: now,
                            bound: None,
                            gone: None,
                        });
                    if node_of(pod).is_some() && t.bound.is_none() {
                        t.bound = Some(now);
                    }
                    if (deleted || pod.metadata.deletion_timestamp.is_some()) && t.gone.is_none() {
                        t.gone = Some(now);
                    }
                };
                match ev {
                    Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                        note(&pod, false)
                    }
                    Ok(watcher::Event::Delete(pod)) => note(&pod, true),
                    Ok(watcher::Event::InitDone) => *s.lock().unwrap() = true,
                    _ => {}
                }
            }
        });
        wait_for("the pending tracker to sync", WAIT, || {
            let synced = *synced.lock().unwrap();
            async move { synced.then_some(()) }
        })
        .await;
        PendingTracker { pods, task }
    }

    /// The longest time any pod first seen after `since` waited unbound, counted from `from`
    /// (or from when it was seen, if later) until it was bound, gone, or `until`; and its name.
    fn longest(&self, since: Instant, from: Instant, until: Instant) -> (Duration, String) {
        let pods = self.pods.lock().unwrap();
        pods.values()
            .filter(|t| t.seen >= since)
            .map(|t| {
                let start = t.seen.max(from);
                let end = t.bound.or(t.gone).unwrap_or(until).min(until);
                (end.saturating_duration_since(start), t.name.clone())
            })
            .max()
            .unwrap_or_default()
    }
}

impl Drop for PendingTracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// When the policy's status last showed each zone turn to each health (the first sighting
/// counts as one), polled every 200 ms.
struct ZoneWatch {
    seen: Arc<Mutex<BTreeMap<(String, String), Instant>>>,
    task: JoinHandle<()>,
}

impl ZoneWatch {
    fn start(ctx: &Ctx) -> ZoneWatch {
        let seen: Arc<Mutex<BTreeMap<(String, String), Instant>>> = Arc::default();
        let (s, ctx) = (seen.clone(), ctx.clone());
        let task = tokio::spawn(async move {
            let mut current: BTreeMap<String, String> = BTreeMap::new();
            loop {
                let status = policy_status(&ctx, POLICY).await;
                let now = Instant::now();
                for z in status["zones"].as_array().into_iter().flatten() {
                    let domain = z["domain"].as_str().unwrap_or_default().to_string();
                    let health = z["health"].as_str().unwrap_or_default().to_string();
                    if current.get(&domain) != Some(&health) {
                        current.insert(domain.clone(), health.clone());
                        s.lock().unwrap().insert((domain, health), now);
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        ZoneWatch { seen, task }
    }

    /// When `domain` last turned `health`.
    fn when(&self, domain: &str, health: &str) -> Option<Instant> {
        self.seen
            .lock()
            .unwrap()
            .get(&(domain.to_string(), health.to_string()))
            .copied()
    }

    async fn wait(&self, domain: &str, health: &str) -> Instant {
        wait_for(
            &format!("zone {domain} {health} in the status"),
            WAIT,
            || {
                let at = self.when(domain, health);
                async move { at }
            },
        )
        .await
    }
}

impl Drop for ZoneWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Samples the Ready pods of each workload every 100 ms and keeps the fewest seen.
struct ReadySampler {
    min: Arc<Mutex<BTreeMap<String, usize>>>,
    task: JoinHandle<()>,
}

impl ReadySampler {
    fn start(ctx: &Ctx, workloads: &[(&'static str, u32)]) -> ReadySampler {
        let min: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
        let (m, ctx) = (min.clone(), ctx.clone());
        let names: Vec<&'static str> = workloads.iter().map(|(n, _)| *n).collect();
        let task = tokio::spawn(async move {
            loop {
                for name in &names {
                    let ready = ready_count(&ctx, name).await;
                    let mut m = m.lock().unwrap();
                    let e = m.entry(name.to_string()).or_insert(ready);
                    *e = (*e).min(ready);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        ReadySampler { min, task }
    }

    fn min(&self) -> BTreeMap<String, usize> {
        self.min.lock().unwrap().clone()
    }
}

impl Drop for ReadySampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn ready_count(ctx: &Ctx, name: &str) -> usize {
    ctx.ready_pods_by_zone(&selector(&labels_of(name)))
        .await
        .values()
        .sum()
}

/// Whether every workload has exactly its replicas Ready, within maxSkew 1 over `zones`, and no
/// other live pod.
async fn balanced(ctx: &Ctx, phase: &Phase) -> bool {
    for (name, replicas) in phase.workloads {
        let by_zone = ctx.ready_pods_by_zone(&selector(&labels_of(name))).await;
        let counts: Vec<usize> = (phase.zones.iter())
            .map(|z| by_zone.get(*z).copied().unwrap_or(0))
            .collect();
        let live = (ctx.pods(&selector(&labels_of(name))).await.iter())
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .count();
        let (max, min) = (counts.iter().max(), counts.iter().min());
        if counts.iter().sum::<usize>() != *replicas as usize
            || live != *replicas as usize
            || max.zip(min).is_none_or(|(max, min)| max - min > 1)
        {
            return false;
        }
    }
    true
}

/// The fewest evictions that balance what runs now (ready pods per zone).
async fn lower_bound(ctx: &Ctx, phase: &Phase) -> i64 {
    let mut total = 0;
    for (name, _) in phase.workloads {
        let by_zone = ctx.ready_pods_by_zone(&selector(&labels_of(name))).await;
        let counts: Vec<i32> = (phase.zones.iter())
            .map(|z| by_zone.get(*z).copied().unwrap_or(0) as i32)
            .collect();
        total += skewguard::core::topology::min_moves(&counts, 1, false);
    }
    total
}

/// The `whenUnsatisfiable` (and minDomains) of a pod's zone constraint.
fn zone_form(pod: &Pod) -> Option<(String, Option<i32>)> {
    let cs = pod.spec.as_ref()?.topology_spread_constraints.as_ref()?;
    let c = cs.iter().find(|c| c.topology_key == ZONE_KEY)?;
    Some((c.when_unsatisfiable.clone(), c.min_domains))
}

/// Whether the pod was created at or after `at` (an Instant of this process), by its creation
/// timestamp against the wall clock (whole seconds).
fn created_since(p: &Pod, at: Instant) -> bool {
    let created = (p.metadata.creation_timestamp.as_ref()).map_or(0, |t| t.0.as_second());
    // The second `at` fell in (creation stamps are whole seconds): `now - elapsed`, then
    // truncated; truncating each first put `at` a second late whenever a second boundary passed
    // between `at` and now, and no pod of the scale-out counted as new.
    let elapsed = jiff::SignedDuration::try_from(at.elapsed()).unwrap_or_default();
    let at_wall = (jiff::Timestamp::now().checked_sub(elapsed)).map_or(i64::MAX, |t| t.as_second());
    created >= at_wall
}

/// Waits until a pod of `name` created now gets a zone constraint of form `form`.
async fn wait_form(ctx: &Ctx, name: &str, form: &str) {
    wait_for(
        &format!("pods of {name} to be admitted with {form}"),
        WAIT,
        || async {
            let pod = admitted_pod(ctx, &labels_of(name), json!({})).await;
            (zone_form(&pod).map(|f| f.0).as_deref() == Some(form)).then_some(())
        },
    )
    .await;
}

/// Deletes the drill's pods bound to a node of `zone` (the drill's second step).
async fn delete_pods_in(ctx: &Ctx, zone: &str) -> usize {
    let api: Api<Pod> = ctx.api();
    let mut deleted = 0;
    for p in ctx.pods("app=drill").await {
        let in_zone = node_of(&p).and_then(|n| ctx.kubelet.zone_of(n)).as_deref() == Some(zone);
        if in_zone && p.metadata.deletion_timestamp.is_none() {
            api.delete(&p.name_any(), &DeleteParams::default())
                .await
                .unwrap_or_else(|e| panic!("delete {}: {e}", p.name_any()));
            deleted += 1;
        }
    }
    deleted
}

/// What one drill measured.
#[derive(Debug)]
struct Figures {
    way: Way,
    phase: &'static str,
    /// The longest any replica created during the outage stayed Pending (until the outage's
    /// end), and the pod.
    longest_pending: (Duration, String),
    /// The same, counted from when the policy's status showed the zone Out.
    longest_pending_after_detection: Duration,
    /// Ready replicas at the worst moment of the outage, per workload (of its replicas).
    worst_ready: BTreeMap<String, (usize, u32)>,
    /// From the pods' deletion until every replica was Ready again (`None`: not during the outage).
    ready_again: Option<Duration>,
    /// From the uncordon until balanced, and (Adaptive) from the zone Healthy until balanced.
    to_balanced: Duration,
    from_healthy: Option<Duration>,
    evictions: i64,
    lower_bound: i64,
    /// Ready replicas at the worst moment of the recovery, per workload.
    worst_ready_recovering: BTreeMap<String, usize>,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ready: Vec<String> = (self.worst_ready.iter())
            .map(|(n, (r, of))| format!("{n} {r}/{of}"))
            .collect();
        let recovering: Vec<String> = (self.worst_ready_recovering.iter())
            .map(|(n, r)| format!("{n} {r}"))
            .collect();
        write!(
            f,
            "  drill [{}] {}: longest Pending {:.1}s ({}; {:.1}s after the zone showed Out), \
             ready at the worst moment {}, all Ready again {}, balanced {:.1}s after the uncordon{} \
             with {} eviction(s) (lower bound {}), ready during the recovery at least {}",
            self.way.value(),
            self.phase,
            self.longest_pending.0.as_secs_f64(),
            if self.longest_pending.1.is_empty() {
                "none"
            } else {
                &self.longest_pending.1
            },
            self.longest_pending_after_detection.as_secs_f64(),
            ready.join(", "),
            self.ready_again
                .map_or("not during the outage".to_string(), |d| format!(
                    "{:.1}s after the deletion",
                    d.as_secs_f64()
                )),
            self.to_balanced.as_secs_f64(),
            self.from_healthy
                .map(|d| format!(" ({:.1}s after the zone turned Healthy)", d.as_secs_f64()))
                .unwrap_or_default(),
            self.evictions,
            self.lower_bound,
            recovering.join(", "),
        )
    }
}

/// Lays the zones out (two nodes each, all schedulable), applies the policy and the workloads (at
/// 0 replicas until admission adds the constraint), and waits until they run spread.
async fn set_up(ctx: &Ctx, way: Way, phase: &Phase) {
    let layout: Vec<(&str, usize)> = phase.zones.iter().map(|z| (*z, 2)).collect();
    ctx.kubelet.ensure_nodes(&layout).await;
    for z in phase.zones {
        ctx.kubelet.uncordon_zone(z).await;
    }
    ctx.apply(&drill_policy(way, phase.zones.len())).await;
    for (name, _) in phase.workloads {
        ctx.apply(&deployment(name, 0, &labels_of(name))).await;
    }
    let form = if way.hard() {
        "DoNotSchedule"
    } else {
        "ScheduleAnyway"
    };
    for (name, _) in phase.workloads {
        wait_form(ctx, name, form).await;
    }
    for (name, replicas) in phase.workloads {
        scale_deployment(ctx, name, *replicas as usize).await;
    }
    wait_for(&format!("{} spread", phase.name), WAIT, || async {
        balanced(ctx, phase).await.then_some(())
    })
    .await;
}

/// One drill on a set-up phase: outage of zone a, recovery, and the figures.
async fn drill(ctx: &Ctx, op: &OperatorProcess, way: Way, phase: &Phase) -> Figures {
    let _ = op;
    let _delay = ReadinessDelay::set(ctx, READY_DELAY);
    let zones = ZoneWatch::start(ctx);
    let pending = PendingTracker::start(ctx).await;
    let ready = ReadySampler::start(ctx, phase.workloads);
    let desired: u32 = phase.workloads.iter().map(|(_, n)| n).sum();

    // The outage: cordon every node of 2a, delete its pods.
    let t_out = Instant::now();
    ctx.kubelet.cordon_zone(ZONE_A).await;
    let t_deleted = Instant::now();
    let deleted = delete_pods_in(ctx, ZONE_A).await;
    assert!(deleted > 0, "the drill deleted no pod");
    let mut ready_again = None;
    while t_out.elapsed() < OUTAGE {
        if ready_again.is_none() {
            let mut all = 0;
            for (name, _) in phase.workloads {
                all += ready_count(ctx, name).await;
            }
            if all == desired as usize {
                ready_again = Some(t_deleted.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let detected = zones.wait(ZONE_A, "Out").await;
    let t_end = Instant::now();
    let longest_pending = pending.longest(t_out, t_out, t_end);
    let longest_pending_after_detection = pending.longest(t_out, detected, t_end).0;
    let worst_ready: BTreeMap<String, (usize, u32)> = (ready.min().into_iter())
        .map(|(n, r)| {
            let of = phase.workloads.iter().find(|(w, _)| *w == n).unwrap().1;
            (n, (r, of))
        })
        .collect();
    drop(ready);
    if way == Way::Adaptive {
        // New pods are admitted relaxed while the zone is Out.
        wait_form(ctx, phase.workloads[0].0, "ScheduleAnyway").await;
        let status = policy_status(ctx, POLICY).await;
        let zone_a = (status["zones"].as_array().unwrap().iter())
            .find(|z| z["domain"] == ZONE_A)
            .cloned();
        assert_eq!(
            zone_a.as_ref().map(|z| &z["health"]),
            Some(&json!("Out")),
            "{status}"
        );
    }

    // The recovery.
    let lower_bound = lower_bound(ctx, phase).await;
    let churn = PodChurn::start(ctx).await;
    let recovering = ReadySampler::start(ctx, phase.workloads);
    let t_rec = Instant::now();
    ctx.kubelet.uncordon_zone(ZONE_A).await;
    wait_for(
        &format!("{} balanced after the recovery", phase.name),
        WAIT,
        || async { balanced(ctx, phase).await.then_some(()) },
    )
    .await;
    let to_balanced = t_rec.elapsed();
    let healthy = if way == Way::Adaptive {
        zones.when(ZONE_A, "Healthy").filter(|t| *t >= t_rec)
    } else {
        None
    };
    // Let a last eviction (if any) show.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let evictions = churn.deleted(&[("app", "drill")]).len() as i64;
    let figures = Figures {
        way,
        phase: phase.name,
        longest_pending,
        longest_pending_after_detection,
        worst_ready,
        ready_again,
        to_balanced,
        from_healthy: healthy.map(|h| (t_rec + to_balanced).saturating_duration_since(h)),
        evictions,
        lower_bound,
        worst_ready_recovering: recovering.min(),
    };
    println!("\n{figures}");
    if way == Way::Adaptive {
        // Every pod admitted since the zone turned Healthy carries the hard form.
        let healthy = healthy.expect("zone a turned Healthy before the spread was back");
        for p in ctx.pods("app=drill").await {
            if p.metadata.deletion_timestamp.is_none() && created_since(&p, healthy) {
                let form = zone_form(&p).unwrap_or_default();
                assert_eq!(
                    form,
                    ("DoNotSchedule".to_string(), Some(phase.zones.len() as i32)),
                    "{} was admitted after the recovery",
                    p.name_any()
                );
            }
        }
    }
    figures
}

/// Deletes the phase's workloads and waits until their pods are gone.
async fn tear_down(ctx: &Ctx, phase: &Phase) {
    for (name, _) in phase.workloads {
        let _ = ctx
            .api::<Deployment>()
            .delete(name, &DeleteParams::default())
            .await;
    }
    wait_for("the drill's pods gone", WAIT, || async {
        ctx.pods("app=drill").await.is_empty().then_some(())
    })
    .await;
}

/// The drill `way`, both phases; returns the figures.
async fn zone_drill(ctx: Ctx, way: Way) -> Vec<Figures> {
    if !admission_served(&ctx).await {
        if way == Way::Adaptive {
            return adaptive_unavailable(ctx).await;
        }
        println!("\n  drill: MutatingAdmissionPolicies not served: the drill needs admission mode");
        return Vec::new();
    }
    let _installed = AdmissionMode::install(&ctx).await;
    let op = start_operator(&ctx, &[]);
    let mut figures = Vec::new();
    for phase in [&TWO_ZONES, &THREE_ZONES] {
        set_up(&ctx, way, phase).await;
        figures.push(drill(&ctx, &op, way, phase).await);
        if way == Way::Adaptive && phase.workloads[0].0 == "svc" {
            scale_out_lands_hard(&ctx, &op).await;
        }
        tear_down(&ctx, phase).await;
    }
    figures
}

/// While every zone is Healthy, an HPA-style scale-out 6 -> 12 lands within maxSkew at once.
async fn scale_out_lands_hard(ctx: &Ctx, op: &OperatorProcess) {
    let churn = PodChurn::start(ctx).await;
    let t = Instant::now();
    scale_deployment(ctx, "svc", 12).await;
    let spread = wait_for("12 svc pods Ready", WAIT, || async {
        let by_zone = ctx.ready_pods_by_zone(&selector(&labels_of("svc"))).await;
        (by_zone.values().sum::<usize>() == 12).then_some(by_zone)
    })
    .await;
    let took = t.elapsed();
    let counts: Vec<usize> = (THREE_ZONES.zones.iter())
        .map(|z| spread.get(*z).copied().unwrap_or(0))
        .collect();
    let skew = counts.iter().max().unwrap() - counts.iter().min().unwrap();
    // The new pods carry the hard form (pods admitted relaxed during the outage and not moved
    // since keep theirs).
    let new: Vec<Pod> = (ctx.pods(&selector(&labels_of("svc"))).await.into_iter())
        .filter(|p| created_since(p, t))
        .collect();
    assert_eq!(new.len(), 6);
    for p in &new {
        assert_eq!(
            zone_form(p).map(|f| f.0).as_deref(),
            Some("DoNotSchedule"),
            "{}",
            p.name_any()
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let evictions = churn.deleted(&[("app", "drill")]).len();
    println!(
        "\n  drill [Adaptive] scale-out 6 -> 12 while every zone is Healthy: {counts:?} \
         (skew {skew}) as soon as all 12 were Ready ({:.1}s), {evictions} eviction(s)",
        took.as_secs_f64()
    );
    assert!(skew <= 1, "the scale-out landed {counts:?}");
    assert_eq!(evictions, 0);
    let m = scrape(op).await;
    assert_eq!(
        metric(
            &m,
            "skewguard_zone_health",
            &[("domain", ZONE_A), ("state", "Healthy")]
        ),
        Some(1.0)
    );
    scale_deployment(ctx, "svc", 6).await;
}

pub async fn zone_drill_do_not_schedule(ctx: Ctx) {
    for f in zone_drill(ctx, Way::DoNotSchedule).await {
        // The replacements stayed Pending for the whole outage, and the service short of them.
        assert!(
            f.longest_pending.0 >= OUTAGE - Duration::from_secs(5),
            "{f}"
        );
        assert!(
            f.worst_ready.values().any(|(r, of)| r < &(*of as usize)),
            "{f}"
        );
        assert_eq!(f.ready_again, None, "{f}");
        assert_eq!(f.evictions, 0, "they land in the zone once it is back: {f}");
    }
}

pub async fn zone_drill_schedule_anyway(ctx: Ctx) {
    for f in zone_drill(ctx, Way::ScheduleAnyway).await {
        assert!(f.longest_pending.0 < Duration::from_secs(3), "{f}");
        assert!(f.ready_again.is_some(), "{f}");
        assert!(f.lower_bound > 0, "the outage left a skew: {f}");
        assert_eq!(f.evictions, f.lower_bound, "{f}");
    }
}

pub async fn zone_drill_adaptive(ctx: Ctx) {
    for f in zone_drill(ctx, Way::Adaptive).await {
        assert!(
            f.longest_pending_after_detection <= Duration::from_secs(8),
            "a replica Pending too long after the zone was seen Out: {f}"
        );
        let again = f
            .ready_again
            .expect("every replica Ready again during the outage");
        assert!(again <= READY_DELAY + Duration::from_secs(8), "{f}");
        assert!(f.lower_bound > 0, "the outage left a skew: {f}");
        assert_eq!(f.evictions, f.lower_bound, "{f}");
        assert!(
            f.to_balanced >= Duration::from_secs(RECOVERY_WINDOW),
            "moves wait for the recovery window: {f}"
        );
    }
}

/// Kubernetes without MutatingAdmissionPolicies: the Adaptive policy is in template mode and says
/// it cannot follow its Adaptive entry; nothing is written for it, and zones are reported.
async fn adaptive_unavailable(ctx: Ctx) -> Vec<Figures> {
    println!("\n  drill: MutatingAdmissionPolicies not served: Adaptive reported unavailable");
    ctx.kubelet.ensure_nodes(&[(ZONE_A, 2), (ZONE_C, 2)]).await;
    for z in [ZONE_A, ZONE_C] {
        ctx.kubelet.uncordon_zone(z).await;
    }
    ctx.apply(&drill_policy(Way::Adaptive, 2)).await;
    ctx.apply(&deployment("web", 2, &labels_of("web"))).await;
    let _op = start_operator(&ctx, &[]);
    let status = wait_for("Ready=False AdaptiveUnavailable", WAIT, || async {
        let s = policy_status(&ctx, POLICY).await;
        let ready = (s["conditions"].as_array().into_iter().flatten())
            .find(|c| c["type"] == "Ready")
            .cloned()?;
        (ready["reason"] == "AdaptiveUnavailable" && s["zones"].as_array().is_some()).then_some(s)
    })
    .await;
    assert_eq!(status["injection"]["mode"], "Template", "{status}");
    let ready = (status["conditions"].as_array().unwrap().iter())
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "False");
    let message = ready["message"].as_str().unwrap();
    assert!(message.contains("needs admission mode"), "{message}");
    assert!(message.contains("AdmissionNotServed"), "{message}");
    assert_eq!(status["zones"].as_array().unwrap().len(), 2, "{status}");
    // Nothing written for the Adaptive key: the template stays as it is.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let d: Deployment = ctx.get("web").await;
    let written = d
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .topology_spread_constraints;
    assert_eq!(written, None, "template written: {written:?}");
    Vec::new()
}

/// The nodes of `zone`.
async fn nodes_in(ctx: &Ctx, zone: &str) -> Vec<String> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    (nodes
        .list(&ListParams::default().labels(&format!("{ZONE_KEY}={zone}")))
        .await
        .unwrap()
        .items
        .iter())
    .map(|n| n.name_any())
    .collect()
}

async fn label_zone(ctx: &Ctx, zone: &str, out: bool) {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let value = if out { json!("true") } else { Value::Null };
    for name in nodes_in(ctx, zone).await {
        nodes
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {ZONE_OUT_LABEL: value}}})),
            )
            .await
            .unwrap_or_else(|e| panic!("label {name}: {e}"));
    }
}

pub async fn adaptive_deletes_stranded_pods_and_follows_a_declared_zone(ctx: Ctx) {
    if !admission_served(&ctx).await {
        println!("\n  stranded: MutatingAdmissionPolicies not served: nothing to check");
        return;
    }
    let _installed = AdmissionMode::install(&ctx).await;
    let mut op = start_operator(&ctx, &[]);
    set_up(&ctx, Way::Adaptive, &TWO_ZONES).await;
    let _delay = ReadinessDelay::set(&ctx, READY_DELAY);

    // The operator is down when the zone goes: the replacements are admitted with the hard form
    // and left Pending by the scheduler (minDomains 2, one zone takes pods).
    op.kill();
    ctx.kubelet.cordon_zone(ZONE_A).await;
    delete_pods_in(&ctx, ZONE_A).await;
    let stranded = wait_for("replacements Pending for their spread", WAIT, || async {
        let pods = ctx.pods("app=drill").await;
        let stranded: Vec<String> = (pods.iter())
            .filter(|p| node_of(p).is_none() && p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                (p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .into_iter()
                    .flatten())
                .any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("Unschedulable"))
            })
            .map(|p| p.name_any())
            .collect();
        (stranded.len() == 2).then_some(stranded)
    })
    .await;
    for p in &stranded {
        let pod: Pod = ctx.get(p).await;
        assert_eq!(zone_form(&pod).unwrap().0, "DoNotSchedule", "{p}");
    }
    // Back: it sees the zone Out, publishes the relaxed form, then deletes the stranded pods.
    let t = Instant::now();
    let op = start_operator(&ctx, &[]);
    wait_for("every replica Ready again", WAIT, || async {
        let ready = ready_count(&ctx, "web").await + ready_count(&ctx, "was").await;
        (ready == 4).then_some(())
    })
    .await;
    let took = t.elapsed();
    let pods = ctx.pods("app=drill").await;
    for p in &stranded {
        assert!(
            !pods
                .iter()
                .any(|q| &q.name_any() == p && q.metadata.deletion_timestamp.is_none()),
            "{p} is still there"
        );
    }
    for p in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        if node_of(p).is_some_and(|n| ctx.kubelet.zone_of(n).as_deref() == Some(ZONE_C))
            && created_since(p, t)
        {
            assert_eq!(zone_form(p).unwrap(), ("ScheduleAnyway".into(), None));
        }
    }
    let deleted = events(&ctx, "PendingPodDeleted", Some(POLICY)).await;
    println!(
        "\n  stranded: {} Pending pod(s) deleted, every replica Ready {:.1}s after the operator \
         came back",
        occurrences(&deleted),
        took.as_secs_f64()
    );
    assert_eq!(occurrences(&deleted), 2);
    let m = scrape(&op).await;
    let deletions: f64 = ["web", "was"]
        .iter()
        .filter_map(|w| {
            metric(
                &m,
                "skewguard_rebalance_actions_total",
                &[
                    ("workload", w),
                    ("action", "delete_pending"),
                    ("result", "success"),
                ],
            )
        })
        .sum();
    assert_eq!(deletions, 2.0);
    // web's pod in 2c was admitted hard before the outage; its replacement relaxed.
    wait_for("web's relaxed pod counted", WAIT, || async {
        let m = scrape(&op).await;
        let relaxed = metric(
            &m,
            "skewguard_workload_relaxed_pods",
            &[("workload", "web"), ("topology_key", ZONE_KEY)],
        );
        (relaxed == Some(1.0)).then_some(())
    })
    .await;
    assert!(
        !events(&ctx, "ZoneOut", None).await.is_empty(),
        "the zone's change is an Event"
    );

    // Declared out by a person: uncordoned but labelled, the zone stays Out.
    label_zone(&ctx, ZONE_A, true).await;
    ctx.kubelet.uncordon_zone(ZONE_A).await;
    tokio::time::sleep(Duration::from_secs(RECOVERY_WINDOW + 3)).await;
    let status = policy_status(&ctx, POLICY).await;
    let zone_a = (status["zones"].as_array().unwrap().iter())
        .find(|z| z["domain"] == ZONE_A)
        .cloned()
        .unwrap();
    assert_eq!(
        (&zone_a["health"], &zone_a["reason"]),
        (&json!("Out"), &json!("Declared"))
    );
    wait_form(&ctx, "web", "ScheduleAnyway").await;
    // The label gone: Recovering, then Healthy, hard again, and the spread back.
    let zones = ZoneWatch::start(&ctx);
    label_zone(&ctx, ZONE_A, false).await;
    let healthy = zones.wait(ZONE_A, "Healthy").await;
    let recovering = zones.when(ZONE_A, "Recovering").expect("Recovering first");
    assert!(healthy.duration_since(recovering) >= Duration::from_secs(RECOVERY_WINDOW - 1));
    wait_form(&ctx, "web", "DoNotSchedule").await;
    wait_for("the spread back", WAIT, || async {
        balanced(&ctx, &TWO_ZONES).await.then_some(())
    })
    .await;
}
