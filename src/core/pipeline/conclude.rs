//! The second half of a workload's reconcile: what the writes' results mean for its memory, its
//! status entry, its Events and the counters.

use std::time::Duration;

use jiff::Timestamp;

use crate::api::conditions::reason;
use crate::api::{RebalanceState, ScaleInOrder};
use crate::core::decision;
use crate::core::errors::ErrorCategory;
use crate::core::policy_status::{WorkloadOutcome, key_name};
use crate::core::rollout_slots::SlotChange;

use super::notices::{EventReason, Notice, transitions};
use super::{ActionResult, Assessment, WorkloadMemory, Write, WriteKind, WriteResult};

/// What one workload's reconcile ends with.
#[derive(Clone, Debug)]
pub struct Conclusion {
    pub memory: WorkloadMemory,
    pub outcome: WorkloadOutcome,
    pub notices: Vec<Notice>,
    /// When to look at the workload again even if nothing changes.
    pub requeue_after: Option<Duration>,
    pub actions: Vec<(WriteKind, ActionResult)>,
    pub errors: Vec<ErrorCategory>,
    /// Whether the workload holds a rollout slot now (the shell applies it to the budget).
    pub slot: SlotChange,
    /// Moves judged in this step (their replacements Ready, wherever they landed).
    pub moves_judged: u32,
}

/// A template write went through: the workload rolls out to the next generation, holding a
/// rollout slot until it is done (a second write in the same rollout keeps the first's slot).
fn started_rollout(memory: &mut decision::Memory, generation: i64, now: Timestamp) {
    if memory.rollout_generation.is_none() {
        memory.rollout_generation = Some(generation + 1);
        memory.rollout_started = Some(now);
    }
}

/// Turns the results of the assessment's writes (in order; writes after the first that did not
/// go through in their lane have no result, or [`WriteResult::NotTried`]) into the new memory,
/// status entry and Events.
pub fn conclude(a: Assessment, results: Vec<WriteResult>, now: Timestamp) -> Conclusion {
    let mut memory = a.memory;
    let mut decision = a.decision;
    let mut notes = a.notes;
    let mut actions = a.actions;
    let mut errors = a.errors;
    let mut notices = Vec::new();
    let mut requeue = decision.requeue_after;
    let mut scale_in = a.scale_in;
    for (write, result) in a.writes.iter().zip(results) {
        match (write, result) {
            (Write::Inject { constraints, .. }, WriteResult::Done) => {
                started_rollout(&mut memory.decision, a.generation, now);
                actions.push((WriteKind::Inject, ActionResult::Success));
                notes.push(
                    "constraints injected: the rolling update they start is the first rebalance"
                        .to_string(),
                );
                notices.push(Notice::normal(
                    EventReason::ConstraintsInjected,
                    format!(
                        "{constraints} spread constraint(s) written by field manager skewguard"
                    ),
                ));
            }
            (Write::Evict(m), WriteResult::Done) => {
                decision::record_eviction(&mut memory.decision, m, &a.measurement, now);
                actions.push((WriteKind::Evict, ActionResult::Success));
                notices.push(
                    Notice::normal(
                        EventReason::PodEvicted,
                        format!(
                            "evicted {} to move it from {} to {}{}",
                            m.pod,
                            m.from_domain,
                            m.to_domain,
                            if m.gamble {
                                format!(
                                    " (a gamble: its replacement may come back to {})",
                                    m.from_domain
                                )
                            } else {
                                String::new()
                            }
                        ),
                    )
                    .about_pod(&m.pod, &m.pod_uid),
                );
            }
            (Write::Evict(_), WriteResult::BudgetExhausted) => {
                decision::record_pdb_block(&mut memory.decision, now);
                actions.push((WriteKind::Evict, ActionResult::Blocked));
                decision.state = RebalanceState::Blocked;
                decision.reason = reason::POD_DISRUPTION_BUDGET;
                // Nothing to poll for until the budget may have room again.
                requeue = Some(decision::PDB_RETRY);
            }
            (Write::Evict(_), WriteResult::Deferred(after)) => {
                decision.reason = reason::AWAITING_EVICTION_SLOT;
                requeue = Some(requeue.map_or(after, |r| r.min(after)));
            }
            (Write::Restart { .. }, WriteResult::Done) => {
                decision::record_restart(&mut memory.decision, now);
                started_rollout(&mut memory.decision, a.generation, now);
                actions.push((WriteKind::Restart, ActionResult::Success));
                notices.push(Notice::normal(
                    EventReason::WorkloadRestarted,
                    "restarted to spread its pods",
                ));
            }
            (Write::DeletionCost { .. }, result @ (WriteResult::Done | WriteResult::Gone)) => {
                // A pod already gone needs no cost (and was not written).
                if matches!(result, WriteResult::Done) {
                    actions.push((WriteKind::DeletionCost, ActionResult::Success));
                }
                if let Some(s) = scale_in.as_mut() {
                    s.pending = (s.pending - 1).max(0);
                    if s.pending == 0 && s.order == ScaleInOrder::Updating {
                        s.order = ScaleInOrder::Kept;
                    }
                }
            }
            (Write::RequestCapacity { request, .. }, WriteResult::Done) => {
                actions.push((WriteKind::RequestCapacity, ActionResult::Success));
                notices.push(Notice::normal(
                    EventReason::CapacityRequested,
                    format!(
                        "asked the autoscaler for room for {} pod(s) in {} ({:?}) before moving",
                        request.pods, request.domain, request.via
                    ),
                ));
            }
            (Write::ReleaseCapacity(request), WriteResult::Done | WriteResult::Gone) => {
                actions.push((WriteKind::ReleaseCapacity, ActionResult::Success));
                notices.push(Notice::normal(
                    EventReason::CapacityReleased,
                    format!("gave back the room asked for in {}", request.domain),
                ));
            }
            (Write::DeletePending(p), WriteResult::Done) => {
                actions.push((WriteKind::DeletePending, ActionResult::Success));
                notices.push(
                    Notice::normal(
                        EventReason::PendingPodDeleted,
                        format!(
                            "deleted {} (Pending {}s: its DoNotSchedule {} spread cannot be met \
                             while a zone is Out); its replacement is admitted with ScheduleAnyway",
                            p.pod,
                            p.pending_seconds,
                            key_name(&p.topology_key)
                        ),
                    )
                    .about_pod(&p.pod, &p.uid),
                );
            }
            (
                Write::DeletionCost { .. } | Write::DeletePending(_),
                WriteResult::Deferred(after),
            ) => {
                requeue = Some(requeue.map_or(after, |r| r.min(after)));
            }
            (write, WriteResult::Failed(e)) => {
                match write {
                    // Not made: asked again next time. Not withdrawn: withdrawn again next time.
                    Write::RequestCapacity { .. } => memory.decision.capacity = None,
                    Write::ReleaseCapacity(request) => {
                        memory.decision.capacity = Some(request.clone());
                    }
                    _ => {}
                }
                actions.push((write.kind(), ActionResult::Error));
                errors.push(e.category());
                notes.push(e.to_string());
            }
            // A pod already gone needs nothing; the other pairs are not produced by the shell.
            (
                _,
                WriteResult::Gone
                | WriteResult::Deferred(_)
                | WriteResult::BudgetExhausted
                | WriteResult::NotTried,
            ) => {}
        }
    }
    let outcome = WorkloadOutcome {
        kind: a.kind,
        name: a.name,
        replicas: a.replicas,
        measurement: a.measurement,
        zone_loss: a.zone_loss,
        zone_loss_key: a.zone_loss_key,
        state: decision.state,
        reason: decision.reason.to_string(),
        memory: memory.decision.clone(),
        note: (!notes.is_empty()).then(|| notes.join("; ")),
        scale_in,
        injection: a.injection,
        admission: a.admission,
        admission_check: a.admission_check,
        relaxed_pods: a.relaxed_pods,
    };
    notices.extend(transitions(
        a.was_skewed,
        memory.decision.skewed_since.is_some(),
        &outcome.skew_summary().join(", "),
        memory.reported.as_ref(),
        decision.state,
        decision.reason,
    ));
    memory.reported = Some((decision.state, decision.reason.to_string()));
    let slot = if memory.decision.rollout_generation.is_some() {
        SlotChange::Hold
    } else {
        SlotChange::Release
    };
    Conclusion {
        memory,
        outcome,
        notices,
        requeue_after: requeue,
        actions,
        errors,
        slot,
        moves_judged: decision.moves_succeeded + decision.moves_failed,
    }
}

/// What a workload whose writes are still under way contributes to its policy's reconciles: its
/// outcome as assessed, and nothing to count, publish or come back for (its writer concludes,
/// counts, publishes and asks for the policy again when the writes end).
pub fn provisional(a: Assessment, now: Timestamp) -> Conclusion {
    Conclusion {
        requeue_after: None,
        actions: Vec::new(),
        errors: Vec::new(),
        notices: Vec::new(),
        moves_judged: 0,
        ..conclude(a, Vec::new(), now)
    }
}

/// The status entry the workload would have if the eviction at `index` of its writes went through
/// and nothing after it were tried (`results`: those of the writes before it). The shell writes it
/// before sending the eviction, so a process that dies between the two leaves the move in flight
/// (and its back-off) for the next leader instead of forgetting it.
pub fn before_eviction(
    a: &Assessment,
    results: &[WriteResult],
    index: usize,
    now: Timestamp,
) -> crate::api::WorkloadStatus {
    let provisional = (a.writes.iter().enumerate())
        .map(|(i, _)| match results.get(i) {
            _ if i == index => WriteResult::Done,
            Some(WriteResult::Done) => WriteResult::Done,
            Some(WriteResult::Gone) => WriteResult::Gone,
            Some(WriteResult::BudgetExhausted) => WriteResult::BudgetExhausted,
            Some(WriteResult::Deferred(after)) => WriteResult::Deferred(*after),
            // A failure's note is for the final status; here it only must not count as done.
            Some(WriteResult::Failed(_) | WriteResult::NotTried) | None => WriteResult::NotTried,
        })
        .collect();
    conclude(a.clone(), provisional, now).outcome.status()
}
