//! The first half of a workload's reconcile: measure, plan, decide, and list the writes.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::TopologySpreadConstraint;

use std::time::Duration;

use crate::api::CapacityVia;
use crate::api::conditions::reason;
use crate::api::{
    AdmittedWorkload, HAPolicy, InjectionMode, PodWhenUnsatisfiable, RebalanceSpec, RebalanceState,
    ScaleInOrder, ScaleInStatus, WhenUnsatisfiable, WorkloadKind,
};
use crate::core::capacity::{
    CapacityAsk, CapacityWrite, capacity_step, expect_and_plan, provisional_target,
};
use crate::core::constraints::{
    AdaptiveForms, TemplateApply, TemplatePlan, plan_template_selecting,
};
use crate::core::decision::{self, Decision, Observation, Writes};
use crate::core::errors::ErrorCategory;
use crate::core::expected::Expected;
use crate::core::injection::{AdmissionCheck, admitted_workload, check_admitted};
use crate::core::policy_status::key_name;
use crate::core::rollout_slots::RolloutPermit;
use crate::core::stranded::{Published, stranded_pods, until_seen};
use crate::core::topology::{
    Cluster, DomainLoss, Measurement, Move, Obstacle, Plan, PlanOptions, Pod, Workload, ZONE_KEY,
    cost_writes, evaluate, own_pods_by_domain, worst_domain_loss,
};
use crate::core::workload::WorkloadObject;
use crate::core::zone_health::{Zones, relaxed_keys};

use super::{ActionResult, WorkloadMemory, Write, WriteKind};

/// Settings from the command line that change what a workload's reconcile does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Write nothing to workloads or pods; say what would have been done.
    pub dry_run: bool,
}

/// How often a workload whose rollout is stuck is looked at again, to see it settled.
pub const STUCK_POLL: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a template write that did not change the generation (nothing to roll out) still
/// holds its rollout slot, in case the cache had not seen the new generation yet.
pub const NO_ROLLOUT_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// What the shell found out about the workload besides the snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts<'a> {
    /// This policy governs the workload (no older policy selects it too).
    pub governing: bool,
    /// A PodDisruptionBudget covering the workload's pods allows no disruption now.
    pub budget_exhausted: bool,
    /// Whether a write that starts a rollout may take a slot of the cluster-wide budget.
    pub rollout: RolloutPermit,
    /// How the policy's constraints reach the pods ([`crate::core::injection::choose_mode`]); `None`:
    /// not known yet, so nothing is added either way.
    pub injection: Option<InjectionMode>,
    /// The pod cache has been current since its last relist or watch gap: whether the workload
    /// settled after a move is judged by the pods' own Ready (what the cache saw a moment ago)
    /// rather than by the workload's status, which kube-controller-manager writes seconds later.
    /// After a gap both must agree (an outage can leave either source behind the other).
    pub pods_current: bool,
    /// The domains the policy's workloads must cover ([`crate::core::expected`]).
    pub expected: &'a Expected,
    /// How room is asked of the autoscaler on this cluster (a CapacityBuffer where the API
    /// server serves them, else placeholder pods).
    pub capacity_via: CapacityVia,
    /// The health of the policy's zones ([`crate::core::zone_health`]).
    pub zones: &'a Zones,
}

/// Everything `assess` found and decided about one workload.
#[derive(Clone, Debug)]
pub struct Assessment {
    pub kind: WorkloadKind,
    pub name: String,
    pub replicas: i32,
    /// `metadata.generation` as assessed: a template write starts the rollout of the next one.
    pub generation: i64,
    pub measurement: Measurement,
    pub plan: Result<Plan, Obstacle>,
    pub zone_loss: Option<DomainLoss>,
    pub zone_loss_key: String,
    pub decision: Decision,
    /// The writes to make, in order.
    pub writes: Vec<Write>,
    /// The memory after the decision (before the writes' results are known).
    pub memory: WorkloadMemory,
    /// Whether the workload was skewed before this reconcile (for the Events of a change).
    pub was_skewed: bool,
    /// What would have been done (dry-run, paused, not the owner), for the status message.
    pub notes: Vec<String>,
    /// Actions counted already (those not carried out).
    pub actions: Vec<(WriteKind, ActionResult)>,
    /// Failures found while assessing (an invalid workload, a conflict).
    pub errors: Vec<ErrorCategory>,
    /// The scale-in order before this step's deletion-cost writes (`None`: another policy
    /// governs the workload).
    pub scale_in: Option<ScaleInStatus>,
    /// How the workload's pods get the constraints (`None`: nothing is added, or another policy
    /// governs it).
    pub injection: Option<InjectionMode>,
    /// Admission mode: the workload's `status.admission` entry, when published.
    pub admission: Option<AdmittedWorkload>,
    /// Admission mode: how the pods created since the entry was published compare with it.
    pub admission_check: Option<AdmissionCheck>,
    /// What the policy adds to the template (what `report` shows).
    pub template: TemplateOutline,
    /// Per Adaptive key published in admission mode: running pods admitted relaxed.
    pub relaxed_pods: Vec<(String, i64)>,
}

/// What the policy adds to a workload's template.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TemplateOutline {
    /// The constraints skewguard owns in the template.
    pub injected: Vec<TopologySpreadConstraint>,
    /// skewguard owns a preferred hostname anti-affinity.
    pub anti_affinity: bool,
    /// Applying them would change the template.
    pub changes_template: bool,
}

impl Assessment {
    /// Whether a write of this step changes the template, starting a rollout.
    pub fn starts_rollout(&self) -> bool {
        self.writes.iter().any(Write::starts_rollout)
    }
}

/// The planner's limits from the policy's rebalance settings.
pub fn plan_options(rebalance: &RebalanceSpec) -> PlanOptions {
    PlanOptions {
        max_moves: usize::try_from(rebalance.max_disruptions.max(1)).unwrap_or(1),
        require_node_fit: rebalance.require_node_fit,
    }
}

/// The topology key a zone loss is computed on: the zone key when the workload spreads over it
/// (dashboards and alerts read that one), else its first constraint's key.
pub fn zone_loss_key(measurement: &Measurement) -> String {
    let keys = || {
        measurement
            .constraints
            .iter()
            .map(|c| c.topology_key.as_str())
    };
    if keys().any(|k| k == ZONE_KEY) {
        return ZONE_KEY.to_string();
    }
    keys().next().unwrap_or(ZONE_KEY).to_string()
}

/// Measures, plans and decides for one workload, and lists the writes that carry the decision out.
pub fn assess(
    policy: &HAPolicy,
    workload: &WorkloadObject,
    cluster: &Cluster,
    memory: &WorkloadMemory,
    facts: &Facts,
    settings: &Settings,
    now: Timestamp,
) -> Assessment {
    let spec = &policy.spec;
    let pod_selector = match workload.pod_selector() {
        Ok(selector) => selector,
        Err(e) => return unreadable(workload.kind, workload.name(), memory, e.to_string()),
    };
    let adaptive = AdaptiveForms {
        admission: facts.injection == Some(InjectionMode::Admission),
        relaxed: relaxed_keys(spec, facts.zones),
    };
    let mut template = plan_template_selecting(spec, workload, Some(&pod_selector), &adaptive);
    // What is measured moves into the core workload; the rest of the plan is written or shown.
    let core = workload.to_core_selecting(std::mem::take(&mut template.measured), pod_selector);
    let options = plan_options(&spec.rebalance);
    let mut evaluation = evaluate(cluster, &core, &options);
    expect_and_plan(
        &mut evaluation,
        cluster,
        &core,
        facts.expected,
        &spec.rebalance,
        &options,
    );
    let measurement = evaluation.measurement;
    let zone_loss_key = zone_loss_key(&measurement);
    let zone_loss = worst_domain_loss(&own_pods_by_domain(
        cluster,
        &measurement.own_pods,
        &zone_loss_key,
    ));
    let own = || measurement.own_pods.iter().map(|&i| &cluster.pods()[i]);
    let running: BTreeSet<&str> = own().map(|p| p.uid.as_str()).collect();
    let ready_pods = i32::try_from(own().filter(|p| p.ready).count()).unwrap_or(i32::MAX);
    // The status counts what the pod cache shows only seconds later; while the cache is current,
    // its own Ready pods are the count, and the status says only that no rollout is under way.
    let (status_settled, ready_replicas) = if facts.pods_current {
        // The pods, not the status's counts, say none is missing or extra (a scale in progress).
        let counted = i32::try_from(measurement.own_pods.len()).unwrap_or(i32::MAX);
        (
            workload.replicas.rollout_settled() && counted == workload.replicas.desired,
            ready_pods,
        )
    } else {
        (
            workload.replicas.is_settled(),
            ready_pods.min(workload.replicas.ready),
        )
    };

    let mut next = memory.clone();
    release_finished_rollout(&mut next.decision, workload, now);
    let mut decision = decision::decide(
        &Observation {
            now,
            rebalance: &spec.rebalance,
            paused: spec.paused,
            conflict: !facts.governing,
            // The pod cache always has the last word on Ready pods, so an evicted pod whose
            // replacement is not Ready yet is never taken for a finished move.
            settled: status_settled && ready_pods >= workload.replicas.desired,
            ready_replicas,
            within_policy: measurement.within_policy(),
            budget_exhausted: facts.budget_exhausted,
            measurement: &measurement,
            running_pods: &running,
            plan: &evaluation.plan,
        },
        &mut next.decision,
    );

    let may = Writes::for_workload(settings.dry_run, spec.paused, !facts.governing);
    let adaptive_keys: Vec<&str> = (spec.spread.iter())
        .filter(|e| e.when_unsatisfiable == WhenUnsatisfiable::Adaptive && adaptive.admission)
        .map(|e| e.topology_key.as_str())
        .filter(|k| template.injected.iter().any(|c| c.topology_key == *k))
        .collect();
    // Paused or --dry-run publish nothing: say what would be done as if it were published.
    let published = if may.allowed() {
        Published::Entry(published_entry(policy, workload))
    } else {
        Published::Assumed
    };
    let hold = recovering_hold(&decision, &adaptive_keys, facts.zones, published, now);
    let (capacity_writes, mut notes) = if let Some(until) = hold {
        // The pods placed during the outage move once the zone is Healthy and the hard form
        // is published, so their replacements are placed by it (a request for room waits
        // as it is).
        decision = Decision {
            disruption: decision::Disruption::None,
            state: RebalanceState::Waiting,
            reason: reason::ZONE_RECOVERING,
            requeue_after: Some(until),
            ..decision
        };
        (Vec::new(), Vec::new())
    } else {
        capacity_step(
            &mut decision,
            &mut next.decision,
            &CapacityAsk {
                policy,
                workload: &core,
                rebalance: &spec.rebalance,
                via: facts.capacity_via,
                may_request: may.allowed(),
                now,
            },
        )
    };
    let out_zones: Vec<String> = (measurement.constraints.iter())
        .flat_map(|c| facts.zones.out(&c.topology_key))
        .map(|z| format!("{} ({})", z.domain, z.reason))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if decision.state == RebalanceState::Idle
        && decision.reason == reason::BALANCED
        && !out_zones.is_empty()
    {
        decision.state = RebalanceState::Degraded;
        decision.reason = reason::ZONE_OUT;
        notes.push(format!(
            "within maxSkew over the zones that take pods; Out: {}",
            out_zones.join(", ")
        ));
    }
    let mut writes = Vec::new();
    let mut actions = Vec::new();
    let outline = TemplateOutline {
        injected: template.injected.clone(),
        anti_affinity: template.anti_affinity.is_some(),
        changes_template: template.changes_template,
    };
    // Admission goes by labels, not owners: every pod the workload's selector selects is checked
    // (a pod two selectors select gets nothing, and the condition names both workloads).
    let selected: Vec<&Pod> = (cluster.select_pods(&core.namespace, &core.pod_selector))
        .into_iter()
        .map(|i| &*cluster.pods()[i])
        .filter(|p| p.is_counted())
        .collect();
    let (injection, admission, admission_check) = admit(
        policy,
        workload,
        &selected,
        &template,
        may,
        facts.injection,
        &mut notes,
        now,
    );
    if template.changes_template
        && may != Writes::NotOwner
        && facts.injection == Some(InjectionMode::Template)
    {
        if may.allowed() {
            writes.push(Write::Inject {
                constraints: template.injected.len(),
                body: TemplateApply::new(workload, template),
            });
        } else {
            notes.push(format!(
                "{}: would write {} spread constraint(s)",
                may.label(),
                template.injected.len()
            ));
        }
    }
    // A withdrawal goes even when paused or not the owner: the objects are skewguard's own.
    writes.extend(capacity_writes.into_iter().map(|w| match w {
        CapacityWrite::Request { request, objects } => Write::RequestCapacity { request, objects },
        CapacityWrite::Release(request) => Write::ReleaseCapacity(request),
    }));
    match &decision.disruption {
        decision::Disruption::Evict(moves) => {
            for m in moves {
                if m.gamble {
                    notes.push(gamble_note(m));
                }
                if may.allowed() {
                    writes.push(Write::Evict(m.clone()));
                } else {
                    actions.push((WriteKind::Evict, ActionResult::DryRun));
                    notes.push(format!(
                        "{}: would evict {} ({} {} -> {})",
                        may.label(),
                        m.pod,
                        key_name(&m.topology_key),
                        m.from_domain,
                        m.to_domain
                    ));
                }
            }
        }
        decision::Disruption::Restart => {
            if may.allowed() {
                let at = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
                writes.push(Write::Restart {
                    body: (workload.kind.descriptor().restart_patch)(&at),
                });
            } else {
                actions.push((WriteKind::Restart, ActionResult::DryRun));
                notes.push(format!("{}: would restart the workload", may.label()));
            }
        }
        decision::Disruption::None => {}
    }
    let starts_rollout = writes.iter().any(Write::starts_rollout);
    let holds_slot = next.decision.rollout_generation.is_some();
    if let (true, false, RolloutPermit::Denied { in_use, max }) =
        (starts_rollout, holds_slot, facts.rollout)
    {
        // The template write waits for a slot; so does everything else this step would do, since
        // the rollout it starts is the first rebalance (but a withdrawal of room, which frees).
        if writes
            .iter()
            .any(|w| matches!(w, Write::RequestCapacity { .. }))
        {
            next.decision.capacity = None;
        }
        writes.retain(|w| matches!(w, Write::ReleaseCapacity(_)));
        actions.clear();
        decision.disruption = decision::Disruption::None;
        decision.state = RebalanceState::Queued;
        decision.reason = reason::ROLLOUT_BUDGET;
        decision.requeue_after = Some(decision::POLL);
        notes.push(format!(
            "queued: {in_use} of {max} rollouts skewguard may start are in progress"
        ));
    }
    if let Some(since) = next.decision.rollout_stuck_since {
        // Its slot is given back; nothing that starts a rollout or moves a pod goes until the
        // workload settles (a fixed image, a rollback), which is looked at again soon.
        writes.retain(|w| !w.starts_rollout() && !matches!(w, Write::Evict(_)));
        actions.retain(|(kind, _)| {
            !matches!(
                kind,
                WriteKind::Evict | WriteKind::Inject | WriteKind::Restart
            )
        });
        decision.disruption = decision::Disruption::None;
        decision.state = RebalanceState::Blocked;
        decision.reason = reason::ROLLOUT_STUCK;
        decision.requeue_after = Some(STUCK_POLL);
        notes.push(format!(
            "the rollout skewguard started did not complete within {} minutes (stuck since {}): \
             its rollout slot was given back; nothing more is started for the workload until it \
             is settled",
            decision::ROLLOUT_TIMEOUT.as_secs() / 60,
            since.strftime("%Y-%m-%dT%H:%M:%SZ")
        ));
    }
    let scale_in = keep_scale_in_order(
        policy,
        workload.kind,
        cluster,
        &core,
        &measurement,
        may,
        !next.decision.in_flight.is_empty() || (may.allowed() && about_to_move(decision.state)),
        &mut writes,
        &mut notes,
    );
    let out_keys: BTreeSet<String> = (adaptive_keys.iter())
        .filter(|k| !facts.zones.out(k).is_empty() && may != Writes::NotOwner)
        .map(|k| k.to_string())
        .collect();
    let stranded = stranded_pods(cluster, &core, &out_keys, published, now);
    if let Some(wait) = stranded.wait {
        decision.requeue_after = Some(decision.requeue_after.map_or(wait, |r| r.min(wait)));
    }
    for pod in stranded.delete {
        if may.allowed() {
            writes.push(Write::DeletePending(pod));
        } else {
            actions.push((WriteKind::DeletePending, ActionResult::DryRun));
            notes.push(format!(
                "{}: would delete Pending pod {} ({} zone Out, the pod admitted with DoNotSchedule)",
                may.label(),
                pod.pod,
                key_name(&pod.topology_key)
            ));
        }
    }
    let relaxed_pods = (adaptive_keys.iter())
        .map(|k| {
            let relaxed = own()
                .filter(|p| p.spread_keys.iter().any(|s| s == k))
                .filter(|p| !p.hard_spread_keys.iter().any(|s| s == k))
                .count();
            (k.to_string(), i64::try_from(relaxed).unwrap_or(i64::MAX))
        })
        .collect();
    let errors = if facts.governing {
        Vec::new()
    } else {
        vec![ErrorCategory::Conflict]
    };
    Assessment {
        kind: workload.kind,
        name: workload.name().to_string(),
        replicas: workload.replicas.desired,
        generation: workload.replicas.generation,
        measurement,
        plan: evaluation.plan,
        zone_loss,
        zone_loss_key,
        decision,
        writes,
        was_skewed: memory.decision.skewed_since.is_some(),
        memory: next,
        notes,
        actions,
        errors,
        scale_in,
        injection,
        admission,
        admission_check,
        template: outline,
        relaxed_pods,
    }
}

/// While a zone of one of the workload's Adaptive keys is Recovering, a move waits until it is
/// Healthy and the hard form has been published for the admission policy to see (returned: how
/// long that is): its replacement is then admitted with DoNotSchedule and placed by it. Moves
/// toward room not there yet (a request for room) go on.
fn recovering_hold(
    decision: &Decision,
    adaptive_keys: &[&str],
    zones: &Zones,
    published: Published<'_>,
    now: Timestamp,
) -> Option<Duration> {
    let decision::Disruption::Evict(moves) = &decision.disruption else {
        return None;
    };
    if moves
        .iter()
        .any(|m| provisional_target(&m.to_node).is_some())
    {
        return None;
    }
    let waits = adaptive_keys.iter().map(|k| {
        if !zones.recovering(k).is_empty() {
            zones.next_change.unwrap_or(decision::POLL)
        } else if zones.all_healthy(k) {
            until_seen(published, k, PodWhenUnsatisfiable::DoNotSchedule, now)
        } else {
            // Out: moves within the zones that take pods go on, as for any entry.
            Duration::ZERO
        }
    });
    waits.max().filter(|w| !w.is_zero())
}

/// The workload's entry as the admission policy reads it now: what the policy's status says.
fn published_entry<'a>(
    policy: &'a HAPolicy,
    workload: &WorkloadObject,
) -> Option<&'a AdmittedWorkload> {
    (policy.status.as_ref()?.admission.as_ref()?.workloads.iter())
        .find(|e| e.kind == workload.kind && e.name == workload.name())
}

/// Admission mode: the workload's `status.admission` entry (published only when writes are
/// allowed: not paused, not --dry-run, and this policy governs it) and the check of the pods
/// created since. Template mode: only the mode.
#[allow(clippy::too_many_arguments)]
fn admit(
    policy: &HAPolicy,
    workload: &WorkloadObject,
    selected: &[&Pod],
    template: &TemplatePlan,
    may: Writes,
    mode: Option<InjectionMode>,
    notes: &mut Vec<String>,
    now: Timestamp,
) -> (
    Option<InjectionMode>,
    Option<AdmittedWorkload>,
    Option<AdmissionCheck>,
) {
    if may == Writes::NotOwner || !policy.spec.inject_constraints {
        return (None, None, None);
    }
    match mode {
        Some(InjectionMode::Admission) => {}
        Some(InjectionMode::Template) => return (Some(InjectionMode::Template), None, None),
        None => {
            if template.changes_template {
                notes.push(
                    "nothing added yet: whether admission mode is available is not known".into(),
                );
            }
            return (None, None, None);
        }
    }
    let entry = admitted_workload(workload, template, published_entry(policy, workload), now);
    match entry {
        Some(entry) if may.allowed() => {
            let check = check_admitted(&entry, selected.iter().copied());
            (Some(InjectionMode::Admission), Some(entry), Some(check))
        }
        Some(entry) => {
            notes.push(format!(
                "{}: would publish {} spread constraint(s) for admission",
                may.label(),
                entry.constraints.len()
            ));
            (Some(InjectionMode::Admission), None, None)
        }
        None => (Some(InjectionMode::Admission), None, None),
    }
}

/// The deletion-cost writes that keep the workload's scale-in balanced (or, turned off, give up
/// the annotations skewguard wrote), and how its scale-in order stands before them.
#[allow(clippy::too_many_arguments)] // the workload as measured, what may be written, and out
fn keep_scale_in_order(
    policy: &HAPolicy,
    kind: WorkloadKind,
    cluster: &Cluster,
    core: &Workload,
    measurement: &Measurement,
    may: Writes,
    moving: bool,
    writes: &mut Vec<Write>,
    notes: &mut Vec<String>,
) -> Option<ScaleInStatus> {
    if may == Writes::NotOwner {
        return None;
    }
    let status = |order, pending: usize| ScaleInStatus {
        order,
        pending: i32::try_from(pending).unwrap_or(i32::MAX),
    };
    if !kind.descriptor().scales_through_replicasets {
        return Some(status(ScaleInOrder::ByOrdinal, 0));
    }
    let keep = policy.spec.scale_in.deletion_cost;
    // A pod this step evicts needs no rank (the write would race its deletion).
    let evicting: BTreeSet<String> = (writes.iter())
        .filter_map(|w| match w {
            Write::Evict(m) => Some(m.pod.clone()),
            _ => None,
        })
        .collect();
    let patches: Vec<_> = cost_writes(cluster, core, measurement, keep)
        .into_iter()
        .filter(|(pod, _)| !evicting.contains(pod))
        .collect();
    let pending = patches.len();
    if moving || !evicting.is_empty() {
        // While pods move, each move changes the ranks: they are written once the moves are
        // done, and the API server's time goes to the moves (and their judging) meanwhile.
        // Until then the costs in place still rank the pods, if less well.
    } else if pending > 0 && !may.allowed() {
        notes.push(format!(
            "{}: would {} the deletion cost of {pending} pod(s)",
            may.label(),
            if keep { "write" } else { "remove" }
        ));
    } else {
        writes.extend(
            patches
                .into_iter()
                .map(|(pod, cost)| Write::DeletionCost { pod, cost }),
        );
    }
    Some(match (keep, pending) {
        (false, _) => status(ScaleInOrder::Off, 0),
        (true, 0) => status(ScaleInOrder::Kept, 0),
        (true, n) => status(ScaleInOrder::Updating, n),
    })
}

/// Whether the workload's pods are about to move (a rebalance waiting out its stabilization or a
/// recovery window, queued, provisioning room, evicting or restarting): the ranks a deletion cost
/// would write now change with every move. After a zone comes back, writing them anyway cost the
/// API server a patch per pod of every workload (1000 in the fleet scenario) while it should serve
/// the moves. Blocked, backing off, Degraded or idle: nothing moves, the costs are kept.
fn about_to_move(state: RebalanceState) -> bool {
    matches!(
        state,
        RebalanceState::Waiting
            | RebalanceState::Queued
            | RebalanceState::Provisioning
            | RebalanceState::Evicting
            | RebalanceState::Restarting
    )
}

/// Frees the workload's rollout slot once the rollout skewguard started is complete (the
/// workload observed the new generation and is settled), or when the write turned out to change
/// nothing (the generation never moved), or when it has not completed within
/// [`decision::ROLLOUT_TIMEOUT`] (then it is stuck until the workload settles).
fn release_finished_rollout(
    memory: &mut decision::Memory,
    workload: &WorkloadObject,
    now: Timestamp,
) {
    if memory.rollout_stuck_since.is_some() && workload.replicas.is_settled() {
        memory.rollout_stuck_since = None;
    }
    let Some(generation) = memory.rollout_generation else {
        return;
    };
    let timed_out = memory.rollout_started.is_some_and(|t| {
        now.duration_since(t)
            >= jiff::SignedDuration::try_from(decision::ROLLOUT_TIMEOUT).unwrap_or_default()
    });
    let replicas = &workload.replicas;
    let complete = replicas.observed_generation >= generation && replicas.is_settled();
    let changed_nothing = replicas.generation < generation
        && replicas.is_settled()
        && memory.rollout_started.is_none_or(|t| {
            now.duration_since(t)
                >= jiff::SignedDuration::try_from(NO_ROLLOUT_GRACE).unwrap_or_default()
        });
    if complete || changed_nothing || timed_out {
        memory.rollout_generation = None;
        memory.rollout_started = None;
    }
    if timed_out && !complete && !changed_nothing {
        memory.rollout_stuck_since = Some(now);
    }
}

/// A workload that cannot be read or measured: blocked with the reason, nothing written, its
/// memory kept. Only its own status entry says so; the policy's other workloads go on.
pub fn unreadable(
    kind: WorkloadKind,
    name: &str,
    memory: &WorkloadMemory,
    message: String,
) -> Assessment {
    Assessment {
        kind,
        name: name.to_string(),
        replicas: 0,
        generation: 0,
        measurement: Measurement {
            constraints: Vec::new(),
            own_pods: Vec::new(),
        },
        plan: Err(Obstacle::NothingMovable),
        zone_loss: None,
        zone_loss_key: ZONE_KEY.to_string(),
        decision: Decision {
            disruption: decision::Disruption::None,
            state: RebalanceState::Blocked,
            reason: reason::INVALID_WORKLOAD,
            requeue_after: None,
            moves_succeeded: 0,
            moves_failed: 0,
        },
        writes: Vec::new(),
        was_skewed: memory.decision.skewed_since.is_some(),
        memory: memory.clone(),
        notes: vec![message],
        actions: Vec::new(),
        errors: vec![ErrorCategory::InvalidWorkload],
        scale_in: None,
        injection: None,
        admission: None,
        admission_check: None,
        template: TemplateOutline::default(),
        relaxed_pods: Vec::new(),
    }
}

/// Why a planned move may not help: the scheduler's score ties its target with a domain where the
/// replacement would not bring the workload closer to balance (other score plugins decide). The
/// planner takes one only when no certain move is left, and outcome judging tells what happened.
fn gamble_note(m: &Move) -> String {
    let tie = m.allowed_domains.get(&m.topology_key);
    let others: Vec<&str> = (tie.into_iter().flatten())
        .filter(|d| **d != m.to_domain)
        .map(String::as_str)
        .collect();
    let with = if others.is_empty() {
        String::new()
    } else {
        format!(" with {}", others.join(", "))
    };
    format!(
        "evicting {} is a gamble: the scheduler's score ties {} {}{with} for its replacement, \
         and only {} brings the workload closer to balance (no certain move is left); where it \
         lands is judged",
        m.pod,
        key_name(&m.topology_key),
        m.to_domain,
        m.to_domain
    )
}
