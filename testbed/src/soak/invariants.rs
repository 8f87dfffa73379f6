//! The soak's invariants, checked over a recorded [`History`]: a pure function, so each rule is
//! tested on hand-made histories (below) that break it. Every rule counts the checks it made, so
//! a run that checked nothing cannot pass quietly.
//!
//! Times: the proxy stamps a write when it receives it (when the replica sent it); the test's
//! watches stamp what they see when they see it, a little later. Where a rule compares the two,
//! it allows [`Rules::lag`] for that, and says so.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::history::{History, PdbRecord, PodRecord, RequestRecord, Target, Workload};

/// What one governed workload may see.
#[derive(Debug, Clone, PartialEq)]
pub struct Governed {
    pub max_disruptions: usize,
    pub cooldown: Duration,
}

/// A quiet recovery: from `from` (a zone back) to `to` (balanced), the evictions of each
/// workload may not exceed its lower bound (the fewest moves that balance what ran at `from`)
/// plus the moves that were wasted (the replacement came back to the zone its pod left, or never
/// landed by `to`).
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    pub name: String,
    pub from: Timestamp,
    pub to: Timestamp,
    pub lower_bounds: BTreeMap<Workload, i64>,
}

/// What the checker needs besides the history.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The workloads the policies select: only their pods may be evicted or annotated.
    pub governed: BTreeMap<Workload, Governed>,
    pub lease_duration: Duration,
    /// After this the operator stops waiting for a replacement (its `REPLACEMENT_TIMEOUT`).
    pub replacement_timeout: Duration,
    /// How far the test's watches may trail the proxy's stamps.
    pub lag: Duration,
    pub recoveries: Vec<Recovery>,
}

/// One broken promise.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub invariant: &'static str,
    pub at: Timestamp,
    pub what: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {}: {}", self.invariant, self.at, self.what)
    }
}

/// The checks made per invariant and what broke.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub checks: BTreeMap<&'static str, u64>,
    pub violations: Vec<Violation>,
}

impl Report {
    pub fn total_checks(&self) -> u64 {
        self.checks.values().sum()
    }

    fn checked(&mut self, invariant: &'static str) {
        *self.checks.entry(invariant).or_default() += 1;
    }

    fn broke(&mut self, invariant: &'static str, at: Timestamp, what: String) {
        self.violations.push(Violation {
            invariant,
            at,
            what,
        });
    }
}

pub const OWNED_ONLY: &str = "owned pods only";
pub const OPT_OUT: &str = "opted-out pods never evicted";
pub const LEADER_ONLY: &str = "writes by the leader only";
pub const MAX_IN_FLIGHT: &str = "maxDisruptions in flight";
pub const PDB_FLOOR: &str = "PodDisruptionBudgets held";
pub const COOLDOWN: &str = "no eviction inside a cooldown";
pub const RECOVERY_BOUND: &str = "evictions per recovery within the bound";

/// Checks every invariant over `history`.
pub fn check(history: &History, rules: &Rules) -> Report {
    let world = World::new(history);
    let mut report = Report::default();
    owned_only(history, rules, &world, &mut report);
    leader_only(history, rules, &mut report);
    max_in_flight(history, rules, &world, &mut report);
    pdb_floor(history, rules, &world, &mut report);
    cooldown(history, rules, &world, &mut report);
    recoveries(history, rules, &world, &mut report);
    report
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

fn minus(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_sub(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MIN)
}

/// Creation timestamps are whole seconds: a pod created after `t` may carry `t` rounded down.
const CREATION_ROUNDING: Duration = Duration::from_secs(1);

/// Lookups over the recorded pods and ReplicaSets.
struct World<'h> {
    pods_by_name: BTreeMap<&'h str, Vec<&'h PodRecord>>,
    rs_owner: BTreeMap<&'h str, Option<&'h Workload>>,
}

impl<'h> World<'h> {
    fn new(history: &'h History) -> World<'h> {
        let mut pods_by_name: BTreeMap<&str, Vec<&PodRecord>> = BTreeMap::new();
        for p in &history.pods {
            pods_by_name.entry(p.name.as_str()).or_default().push(p);
        }
        let rs_owner = (history.owners.iter())
            .map(|o| (o.replicaset.as_str(), o.owner.as_ref()))
            .collect();
        World {
            pods_by_name,
            rs_owner,
        }
    }

    /// The pod named `name` (with `uid`, when known) as last seen by `t`; else as first seen,
    /// if that was within `lag` after `t` (the watch trailing the write).
    fn pod_at(
        &self,
        name: &str,
        uid: Option<&str>,
        t: Timestamp,
        lag: Duration,
    ) -> Option<&'h PodRecord> {
        let records = self.pods_by_name.get(name)?;
        let matching = || records.iter().filter(|p| uid.is_none_or(|u| p.uid == u));
        matching()
            .rfind(|p| p.at <= t)
            .or_else(|| matching().find(|p| p.at <= plus(t, lag)))
            .copied()
    }

    /// The workload a pod belongs to by its controller owner chain (ReplicaSet -> its owner).
    fn workload_of(&self, pod: &PodRecord) -> Option<Workload> {
        let owner = pod.owner.as_ref()?;
        if owner.kind == "ReplicaSet" {
            return self
                .rs_owner
                .get(owner.name.as_str())
                .copied()
                .flatten()
                .cloned();
        }
        Some(owner.clone())
    }
}

/// The pod an eviction or pod write names.
fn target_pod(r: &RequestRecord) -> Option<(&str, Option<&str>)> {
    match &r.target {
        Target::Eviction { pod, uid } => Some((pod.as_str(), uid.as_deref())),
        Target::Pod { pod } => Some((pod.as_str(), None)),
        _ => None,
    }
}

/// Every eviction or pod write any replica sent (faulted or not: sending it was the decision)
/// names a pod whose controller chain leads to a governed workload; no eviction names a pod that
/// opted out.
fn owned_only(history: &History, rules: &Rules, world: &World<'_>, report: &mut Report) {
    for r in &history.requests {
        let Some((name, uid)) = target_pod(r) else {
            continue;
        };
        report.checked(OWNED_ONLY);
        let Some(pod) = world.pod_at(name, uid, r.at, rules.lag) else {
            report.broke(
                OWNED_ONLY,
                r.at,
                format!("{} {} {}: a pod never seen", r.replica, r.method, r.path),
            );
            continue;
        };
        match world.workload_of(pod) {
            Some(w) if rules.governed.contains_key(&w) => {}
            owner => report.broke(
                OWNED_ONLY,
                r.at,
                format!(
                    "{} {} {}: pod owned by {owner:?}, not a governed workload",
                    r.replica, r.method, r.path
                ),
            ),
        }
        if matches!(r.target, Target::Eviction { .. }) {
            report.checked(OPT_OUT);
            if pod.opted_out {
                report.broke(
                    OPT_OUT,
                    r.at,
                    format!("{} evicted {name}, which opted out", r.replica),
                );
            }
        }
    }
}

/// Every write but a Lease's was sent by a replica that had renewed (or taken) the Lease less
/// than a lease duration before, with no other replica taking it in between. The operator's
/// fence is stricter (its renew deadline, two thirds of the duration, from when the renewal was
/// sent); this is what the Lease itself promises.
fn leader_only(history: &History, rules: &Rules, report: &mut Report) {
    // (received, replica) of every Lease write the API server accepted for its sender.
    let holds: Vec<(Timestamp, &str)> = (history.requests.iter())
        .filter(|r| r.applied())
        .filter_map(|r| match &r.target {
            Target::Lease {
                holder: Some(_), ..
            } => Some((r.at, r.replica.as_str())),
            _ => None,
        })
        .collect();
    for r in &history.requests {
        if matches!(r.target, Target::Lease { .. }) {
            continue;
        }
        report.checked(LEADER_ONLY);
        let Some(&(renewed, _)) = holds
            .iter()
            .rfind(|(at, who)| *at <= r.at && *who == r.replica)
        else {
            report.broke(
                LEADER_ONLY,
                r.at,
                format!(
                    "{} {} {}: never held the lease",
                    r.replica, r.method, r.path
                ),
            );
            continue;
        };
        if r.at >= plus(renewed, rules.lease_duration) {
            report.broke(
                LEADER_ONLY,
                r.at,
                format!(
                    "{} {} {}: lease last renewed at {renewed}, expired",
                    r.replica, r.method, r.path
                ),
            );
        }
        if let Some((taken, by)) = holds
            .iter()
            .find(|(at, who)| *at > renewed && *at <= r.at && *who != r.replica)
        {
            report.broke(
                LEADER_ONLY,
                r.at,
                format!(
                    "{} {} {}: {by} took the lease at {taken}",
                    r.replica, r.method, r.path
                ),
            );
        }
    }
}

/// The evictions the API server carried out, with the evicted pod and its workload.
fn evictions<'h>(
    history: &'h History,
    rules: &Rules,
    world: &World<'h>,
) -> Vec<(&'h RequestRecord, &'h PodRecord, Workload)> {
    history
        .evictions()
        .filter_map(|r| {
            let (name, uid) = target_pod(r)?;
            let pod = world.pod_at(name, uid, r.at, rules.lag)?;
            Some((r, pod, world.workload_of(pod)?))
        })
        .collect()
}

/// One step of the merged timeline [`max_in_flight`] walks.
enum Step<'h> {
    Pod(&'h PodRecord),
    /// A pod's Ready condition turned True (by the kubelet's stamp).
    Ready(&'h PodRecord),
    Replicas(&'h Workload, i64),
    /// An eviction carried out: in flight from now.
    Evicted(&'h PodRecord, Workload),
    /// The same eviction judged `lag` later: how many of its workload's were in flight before it.
    Judge(&'h PodRecord, Workload, Timestamp),
}

/// An eviction is in flight until a pod of its workload created after it is Ready, or its pod
/// is gone and the workload has its wanted replicas healthy, or the operator's replacement
/// timeout passes. A pod counts as Ready from its Ready condition's own stamp (not from when the
/// test's watch saw it), and each eviction is judged after every watch event up to `lag` later,
/// so a replacement the operator saw Ready before the test did is not held against it.
fn max_in_flight(history: &History, rules: &Rules, world: &World<'_>, report: &mut Report) {
    let mut steps: Vec<(Timestamp, u8, Step<'_>)> = Vec::new();
    for p in &history.pods {
        steps.push((p.at, 0, Step::Pod(p)));
        if let Some(since) = p.ready_since.filter(|_| p.healthy()) {
            steps.push((since.min(p.at), 2, Step::Ready(p)));
        }
    }
    for w in &history.workloads {
        steps.push((w.at, 0, Step::Replicas(&w.workload, w.replicas)));
    }
    for (r, pod, w) in evictions(history, rules, world) {
        steps.push((r.at, 1, Step::Evicted(pod, w.clone())));
        steps.push((plus(r.at, rules.lag), 3, Step::Judge(pod, w, r.at)));
    }
    steps.sort_by_key(|(at, order, _)| (*at, *order));

    let mut live: BTreeMap<&str, &PodRecord> = BTreeMap::new();
    let mut seen_ready: BTreeSet<String> = BTreeSet::new();
    let mut desired: BTreeMap<&Workload, i64> = BTreeMap::new();
    // A pod Ready at last ends the oldest eviction of its workload made before it was created.
    let replaced = |in_flight: &mut BTreeMap<Workload, VecDeque<(Timestamp, String)>>,
                    seen_ready: &mut BTreeSet<String>,
                    p: &PodRecord| {
        if seen_ready.insert(p.uid.clone())
            && let Some(w) = world.workload_of(p)
            && let Some(q) = in_flight.get_mut(&w)
            && let Some(i) = q
                .iter()
                .position(|(t, _)| p.created >= minus(*t, CREATION_ROUNDING))
        {
            q.remove(i);
        }
    };
    // Per workload: (evicted at, evicted pod uid), oldest first.
    let mut in_flight: BTreeMap<Workload, VecDeque<(Timestamp, String)>> = BTreeMap::new();
    let healthy = |live: &BTreeMap<&str, &PodRecord>, w: &Workload| {
        live.values()
            .filter(|p| p.healthy() && world.workload_of(p).as_ref() == Some(w))
            .count() as i64
    };
    for (at, _, step) in steps {
        let touched: Option<Workload> = match step {
            Step::Pod(p) => {
                let w = world.workload_of(p);
                if p.gone {
                    live.remove(p.uid.as_str());
                } else {
                    live.insert(p.uid.as_str(), p);
                }
                if p.healthy() {
                    replaced(&mut in_flight, &mut seen_ready, p);
                }
                w
            }
            Step::Ready(p) => {
                replaced(&mut in_flight, &mut seen_ready, p);
                None
            }
            Step::Replicas(w, n) => {
                desired.insert(w, n);
                Some(w.clone())
            }
            Step::Evicted(pod, w) => {
                (in_flight.entry(w).or_default()).push_back((at, pod.uid.clone()));
                None
            }
            Step::Judge(pod, w, evicted_at) => {
                let q = in_flight.entry(w.clone()).or_default();
                q.retain(|(t, _)| evicted_at < plus(*t, rules.replacement_timeout));
                let before: Vec<&(Timestamp, String)> = q
                    .iter()
                    .filter(|(t, uid)| *t < evicted_at && *uid != pod.uid)
                    .collect();
                if let Some(g) = rules.governed.get(&w) {
                    report.checked(MAX_IN_FLIGHT);
                    if before.len() >= g.max_disruptions {
                        report.broke(
                            MAX_IN_FLIGHT,
                            evicted_at,
                            format!(
                                "{w}: evicted {} with {} eviction(s) still in flight ({:?}), maxDisruptions {}",
                                pod.name,
                                before.len(),
                                before.iter().map(|(t, uid)| format!("{uid} at {t}")).collect::<Vec<_>>(),
                                g.max_disruptions
                            ),
                        );
                    }
                }
                None
            }
        };
        // A workload back at its wanted replicas: the evictions whose pods are gone are done.
        if let Some(w) = touched
            && let Some(q) = in_flight.get_mut(&w)
            && !q.is_empty()
            && let Some(&want) = desired.get(&w)
            && healthy(&live, &w) >= want
        {
            q.retain(|(_, uid)| live.contains_key(uid.as_str()));
        }
    }
}

/// Every eviction the API server carried out of a healthy pod found its budget with room: the
/// status just before the one that counts the pod in `disruptedPods` allowed a disruption. When
/// no such status was seen (a watch gap), the last status seen before the eviction, or one seen
/// within `lag` after it, must allow one.
fn pdb_floor(history: &History, rules: &Rules, world: &World<'_>, report: &mut Report) {
    let mut by_name: BTreeMap<&str, Vec<&PdbRecord>> = BTreeMap::new();
    for p in &history.pdbs {
        by_name.entry(p.name.as_str()).or_default().push(p);
    }
    for (r, pod, _) in evictions(history, rules, world) {
        if !pod.healthy() {
            continue;
        }
        for (name, records) in &by_name {
            if !records.iter().any(|p| p.selects(&pod.labels)) {
                continue;
            }
            report.checked(PDB_FLOOR);
            let counted = (1..records.len()).find(|&i| {
                records[i].at >= minus(r.at, rules.lag)
                    && records[i].disrupted_pods.contains(&pod.name)
                    && !records[i - 1].disrupted_pods.contains(&pod.name)
            });
            let room = match counted {
                Some(i) => records[i - 1].disruptions_allowed > 0,
                None => {
                    let before = records.iter().rfind(|p| p.at <= r.at);
                    before.is_some_and(|p| p.disruptions_allowed > 0)
                        || records.iter().any(|p| {
                            p.at > r.at
                                && p.at <= plus(r.at, rules.lag)
                                && p.disruptions_allowed > 0
                        })
                }
            };
            if !room {
                report.broke(
                    PDB_FLOOR,
                    r.at,
                    format!(
                        "{} evicted {} while PodDisruptionBudget {name} allowed no disruption",
                        r.replica, pod.name
                    ),
                );
            }
        }
    }
}

/// Once a policy's status shows a workload's episode over (its last action at `L`), no eviction
/// of it comes before `L + cooldown`, whichever replica (or restart) sends it. The status seen
/// last before the eviction is the one that counts; seen, it was written before.
fn cooldown(history: &History, rules: &Rules, world: &World<'_>, report: &mut Report) {
    for (r, pod, w) in evictions(history, rules, world) {
        let Some(g) = rules.governed.get(&w) else {
            continue;
        };
        report.checked(COOLDOWN);
        let last = (history.statuses.iter()).rfind(|s| s.workload == w && s.at < r.at);
        if let Some(s) = last
            && !s.episode
            && let Some(l) = s.last_action
            && r.at < plus(l, g.cooldown)
        {
            report.broke(
                COOLDOWN,
                r.at,
                format!(
                    "{} evicted {} of {w}: its last action was at {l} and the episode had ended; cooldown {:?}",
                    r.replica, pod.name, g.cooldown
                ),
            );
        }
    }
}

/// Per recovery and workload: evictions ≤ lower bound + wasted moves.
fn recoveries(history: &History, rules: &Rules, world: &World<'_>, report: &mut Report) {
    let all = evictions(history, rules, world);
    for rec in &rules.recoveries {
        for (w, bound) in &rec.lower_bounds {
            report.checked(RECOVERY_BOUND);
            let mine: Vec<_> = (all.iter())
                .filter(|(r, _, ew)| ew == w && r.at >= rec.from && r.at <= rec.to)
                .collect();
            let mut taken: BTreeSet<&str> = BTreeSet::new();
            let mut wasted = 0;
            for (r, pod, _) in &mine {
                // The first pod of the workload created after the eviction, not matched yet,
                // where it landed by the recovery's end.
                let replacement = (history.pods.iter())
                    .filter(|p| p.at <= rec.to && p.zone.is_some())
                    .filter(|p| p.created >= minus(r.at, CREATION_ROUNDING) && p.uid != pod.uid)
                    .filter(|p| !taken.contains(p.uid.as_str()))
                    .find(|p| world.workload_of(p).as_ref() == Some(w));
                match replacement {
                    Some(p) => {
                        taken.insert(p.uid.as_str());
                        if p.zone == pod.zone {
                            wasted += 1;
                        }
                    }
                    None => wasted += 1,
                }
            }
            let n = mine.len() as i64;
            if n > bound + wasted {
                report.broke(
                    RECOVERY_BOUND,
                    rec.from,
                    format!(
                        "{}: {w} evicted {n} pods, lower bound {bound} + {wasted} wasted",
                        rec.name
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
