//! One reconcile of one policy: gather -> prepare (pure) -> per workload {permit, assess (pure),
//! carry out its writes, conclude (pure), keep} -> finish (pure) -> write the status. This file
//! only gathers the policy phase's inputs, carries out its writes and keeps what it concludes;
//! every decision is made in [`crate::core::pipeline`].

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::controller::Action as Requeue;
use kube::{Resource, ResourceExt};
use tracing::{debug, info, warn};

use std::collections::BTreeSet;

use crate::api::{CapacityVia, HAPolicy, HAPolicyStatus};
use crate::core::errors::ErrorCategory;
use crate::core::expected::{ReadPool, pool_zones};
use crate::core::injection::AdmissionSupport;
use crate::core::pipeline::{
    self, ActionResult, Assessment, Conclusion, Lane, NodePools, PolicyPhase, Selected, Subject,
    Write, WriteError, WriteKind, WriteResult,
};
use crate::core::policy_status::with_workload;
use crate::core::topology::{Cluster, Move, ZONE_KEY};
use crate::core::workload::{Unreadable, WorkloadObject};

use super::actuate;
use super::context::{Context, WorkloadKey};
use super::events;

/// How many of a policy's workloads have their writes under way at once. The global eviction
/// rate still paces evictions; this only stops each write's round trip from adding up.
const WORKLOADS_IN_FLIGHT: usize = 16;

/// How long deletion-cost writes wait while evictions wait for their slots.
const COSTS_AFTER_MOVES: Duration = Duration::from_secs(2);

/// How often a policy is looked at again when nothing asks for it sooner.
pub const RESYNC: Duration = Duration::from_secs(300);

/// Why a reconcile failed; `category` is the fixed label used in metrics and logs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing the status of HAPolicy {policy}: {source}")]
    Status {
        policy: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    pub fn category(&self) -> ErrorCategory {
        match self {
            Error::Status { .. } => ErrorCategory::Status,
        }
    }

    /// The policy changed since the reconcile read it (409 on its resourceVersion): most often the
    /// cache had not caught up yet, so the policy is looked at again soon, not after a back-off.
    fn is_conflict(&self) -> bool {
        matches!(self, Error::Status { source: kube::Error::Api(s), .. } if s.code == 409)
    }
}

/// What the reconcile read from the caches for one policy; the policy phase borrows from it.
struct Gathered {
    /// The namespace's policies (the oldest that selects a workload governs it).
    policies: Vec<Arc<HAPolicy>>,
    workloads: Vec<Result<WorkloadObject, Box<Unreadable>>>,
    budgets: Vec<Arc<PodDisruptionBudget>>,
    cluster: Cluster,
    admission: Option<AdmissionSupport>,
    pods_current: bool,
    /// The NodePools as read and the zones that have nodes, where NodePools are served.
    nodepools: Option<(Vec<ReadPool>, BTreeSet<String>)>,
    capacity_via: CapacityVia,
}

pub async fn reconcile(policy: Arc<HAPolicy>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    if !ctx.is_leader() {
        return Ok(Requeue::await_change());
    }
    let started = std::time::Instant::now();
    // Losing the lease stops the reconcile where it is: no later write of it goes out (the fence
    // refuses them anyway), and the new leader starts from the status.
    let result = tokio::select! {
        biased;
        _ = ctx.fence.lost() => {
            warn!(policy = %policy.name_any(), "leader lease lost: reconcile cancelled");
            return Ok(Requeue::await_change());
        }
        result = reconcile_policy(&policy, &ctx) => result,
    };
    ctx.metrics.observe_reconcile(started.elapsed());
    if let Err(e) = &result {
        ctx.metrics.record_error(e.category());
    }
    result
}

/// gather -> prepare -> per workload {permit, assess, carry out, conclude, keep} -> finish ->
/// write the status.
async fn reconcile_policy(policy: &HAPolicy, ctx: &Context) -> Result<Requeue, Error> {
    // Whole seconds: what the API server stores, so an unchanged status compares equal.
    let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH);
    let (namespace, name) = (policy.namespace().unwrap_or_default(), policy.name_any());
    let started = std::time::Instant::now();
    let gathered = gather(ctx, policy, &namespace);
    let gathered_in = started.elapsed();
    let phase = pipeline::prepare(pipeline::Gathered {
        policy,
        policies: gathered.policies.iter().map(AsRef::as_ref).collect(),
        workloads: (gathered.workloads.iter())
            .map(|w| w.as_ref().map_err(AsRef::as_ref))
            .collect(),
        budgets: gathered.budgets.iter().map(AsRef::as_ref).collect(),
        admission: gathered.admission.as_ref(),
        pods_current: gathered.pods_current,
        nodepools: gathered.nodepools.as_ref().map(|(pools, zones)| NodePools {
            pools,
            zones_with_nodes: zones,
        }),
        capacity_via: gathered.capacity_via,
        nodes: gathered.cluster.nodes(),
        now,
    });
    for error in &phase.errors {
        ctx.metrics.record_error(*error);
    }
    debug!(
        policy = %name,
        zones = ?(phase.zones.zones.iter())
            .map(|z| format!("{} {:?}", z.domain, z.health))
            .collect::<Vec<_>>(),
        "zones"
    );
    // The workloads step side by side: each step's writes wait on the API server, and one
    // workload's replacement turning Ready should be judged without waiting for a hundred
    // others' evictions to be sent one after another. `buffered` keeps their order.
    // (The steps are made first: a closure in the stream trips the Send check of the
    // controller's future, rust-lang/rust#102211.)
    let steps: Vec<_> = (phase.workloads.iter())
        .map(|selected| step(ctx, policy, &phase, &gathered.cluster, selected, now))
        .collect();
    let conclusions: Vec<Conclusion> = futures::stream::iter(steps)
        .buffered(WORKLOADS_IN_FLIGHT)
        .collect()
        .await;
    let stepped_in = started.elapsed();
    let actions: usize = conclusions.iter().map(|c| c.actions.len()).sum();
    let finished = phase.finish(conclusions, now);
    ctx.metrics
        .observe_policy(&namespace, &name, &finished.metrics);
    ctx.metrics
        .observe_zones(&namespace, &name, &finished.zones);
    if !finished.notices.is_empty() {
        let (recorder, notices) = (ctx.recorder.clone(), finished.notices.clone());
        let policy_ref = policy.object_ref(&());
        tokio::spawn(async move {
            for notice in &notices {
                events::publish_on_policy(&recorder, notice, &policy_ref).await;
            }
        });
    }
    ctx.forget_except(&namespace, &name, &finished.keep);
    write_status(ctx, policy, finished.status).await?;
    debug!(
        policy = %name,
        workloads = phase.workloads.len(),
        actions,
        gathered = ?gathered_in,
        stepped = ?stepped_in,
        total = ?started.elapsed(),
        "reconciled"
    );
    let requeue = finished.requeue_after.map_or(RESYNC, |r| r.min(RESYNC));
    Ok(Requeue::requeue(requeue.max(Duration::from_millis(100))))
}

/// One workload's step: its rollout permit, assess (pure), carry out its writes, conclude (pure),
/// keep.
async fn step(
    ctx: &Context,
    policy: &HAPolicy,
    phase: &PolicyPhase<'_>,
    cluster: &Cluster,
    selected: &Selected<'_>,
    now: Timestamp,
) -> Conclusion {
    let key = &selected.key;
    let memory = ctx
        .memory_of(key)
        .unwrap_or_else(|| phase.restored_memory(key));
    let permit = ctx.rollout_permit(key).await;
    let assessment = phase.assess(selected, cluster, &memory, permit, &ctx.settings, now);
    // A move is judged when it is assessed; the writes that follow are the next step's.
    let assessed_at = tokio::time::Instant::now();
    debug!(
        workload = %key.name,
        state = ?assessment.decision.state,
        reason = %assessment.decision.reason,
        requeue = ?assessment.decision.requeue_after,
        writes = ?assessment.writes.iter().map(Write::kind).collect::<Vec<_>>(),
        notes = ?assessment.notes,
        "assessed"
    );
    let results = match &selected.subject {
        Subject::Readable { workload, .. } => {
            let step = Step {
                ctx,
                policy,
                key,
                workload,
                now,
            };
            carry_out(&step, &assessment).await
        }
        Subject::Unreadable { .. } => Vec::new(),
    };
    let conclusion = pipeline::conclude(assessment, results, now);
    keep(ctx, policy, selected, cluster, &conclusion, assessed_at);
    conclusion
}

/// What an eviction's rate-limit slot is held for: the workload's n-th eviction of its step.
fn eviction_slot(evictions: &mut usize) -> String {
    *evictions += 1;
    format!("eviction {evictions}")
}

/// Keeps what a workload's step concluded (memory, rollout slot), counts it and publishes its
/// Events.
fn keep(
    ctx: &Context,
    policy: &HAPolicy,
    selected: &Selected<'_>,
    cluster: &Cluster,
    conclusion: &Conclusion,
    assessed_at: tokio::time::Instant,
) {
    let key = &selected.key;
    let evicted = conclusion
        .actions
        .contains(&(WriteKind::Evict, ActionResult::Success));
    if let Some(judged) = ctx.keep(key, conclusion, evicted, assessed_at) {
        ctx.metrics.observe_judged_to_eviction(judged.elapsed());
    }
    if conclusion.moves_judged > 0 {
        // The replacement is the pod that turned Ready last.
        let own = &conclusion.outcome.measurement.own_pods;
        let ready_at = (own.iter())
            .filter_map(|&i| {
                ctx.stores
                    .pods
                    .ready_at(&key.namespace, &cluster.pods()[i].name)
            })
            .max();
        let waited = ready_at.map(|t| assessed_at.saturating_duration_since(t));
        if let Some(waited) = waited {
            ctx.metrics.observe_ready_to_judged(waited);
        }
        info!(workload = %key.name, judged = conclusion.moves_judged, ready_for = ?waited, "moves judged");
    }
    for (action, result) in &conclusion.actions {
        ctx.metrics.record_action(
            &key.namespace,
            &key.policy,
            key.kind.name(),
            &key.name,
            *action,
            *result,
        );
    }
    for error in &conclusion.errors {
        ctx.metrics.record_error(*error);
    }
    if let Subject::Readable { workload, .. } = &selected.subject
        && !conclusion.notices.is_empty()
    {
        // Published beside the reconcile, not in it: two API calls per Event held every later
        // workload of a large policy back (its next step judged only after them).
        let (workload_ref, policy_ref) = (workload_ref(workload), policy.object_ref(&()));
        let (recorder, notices) = (ctx.recorder.clone(), conclusion.notices.clone());
        tokio::spawn(async move {
            for notice in &notices {
                events::publish(&recorder, notice, &workload_ref, &policy_ref).await;
            }
        });
    }
}

pub fn error_policy(policy: Arc<HAPolicy>, error: &Error, _ctx: Arc<Context>) -> Requeue {
    if error.is_conflict() {
        info!(policy = %policy.name_any(), "the policy changed since it was read; looking again");
        return Requeue::requeue(Duration::from_secs(1));
    }
    warn!(policy = %policy.name_any(), category = error.category().as_str(), %error, "reconcile failed");
    Requeue::requeue(Duration::from_secs(15))
}

/// One workload's step: what its writes are carried out for.
struct Step<'a> {
    ctx: &'a Context,
    policy: &'a HAPolicy,
    key: &'a WorkloadKey,
    workload: &'a WorkloadObject,
    now: Timestamp,
}

/// Carries out the writes in order, in each lane stopping at the first that does not go through
/// (a refused or failed eviction, or one whose slot has not come yet). A write the fence refused
/// stops every lane: nothing after it can go out either.
async fn carry_out(step: &Step<'_>, assessment: &Assessment) -> Vec<WriteResult> {
    let Step {
        ctx, key, workload, ..
    } = *step;
    let writes = &assessment.writes;
    let mut results = Vec::with_capacity(writes.len());
    let mut stopped: Vec<Lane> = Vec::new();
    let mut evictions = 0;
    let mut fenced = false;
    for (index, write) in writes.iter().enumerate() {
        if fenced || stopped.contains(&write.lane()) {
            results.push(WriteResult::NotTried);
            continue;
        }
        let result = match write {
            Write::Inject { body, .. } => {
                let result = actuate::apply(&ctx.client, workload, body).await;
                if matches!(result, WriteResult::Done) {
                    info!(workload = %workload.name(), "spread constraints injected");
                }
                result
            }
            // The slot is the workload's n-th eviction of this step, whichever pod its plan
            // names when the slot comes: a plan that picks another pod keeps its place.
            Write::Evict(m) => match ctx.limiter.reserve(key, &eviction_slot(&mut evictions)) {
                Some(wait) => WriteResult::Deferred(wait),
                None => evict(step, assessment, &results, index, m).await,
            },
            Write::Restart { body } => actuate::restart(&ctx.client, workload, body).await,
            Write::RequestCapacity { objects, .. } => {
                actuate::request_capacity(&ctx.client, workload.namespace(), objects).await
            }
            Write::ReleaseCapacity(request) => {
                actuate::release_capacity(&ctx.client, workload.namespace(), request).await
            }
            Write::DeletePending(p) => match ctx.pending_deletions.reserve(key, &p.pod) {
                Some(wait) => WriteResult::Deferred(wait),
                None => {
                    let result =
                        actuate::delete_pending(&ctx.client, workload.namespace(), p).await;
                    if matches!(result, WriteResult::Done) {
                        info!(workload = %workload.name(), pod = %p.pod, pending_seconds = p.pending_seconds, "deleted a Pending pod stranded by its DoNotSchedule spread");
                    }
                    result
                }
            },
            // Moves come first: while evictions wait for their slots, the API server's time goes
            // to them, and a cost written now would likely change with the next move anyway.
            Write::DeletionCost { .. } if ctx.limiter.is_busy() => {
                WriteResult::Deferred(COSTS_AFTER_MOVES)
            }
            Write::DeletionCost { pod, cost } => match ctx.pod_writes.reserve(key, pod) {
                Some(wait) => WriteResult::Deferred(wait),
                None => {
                    actuate::set_deletion_cost(&ctx.client, workload.namespace(), pod, *cost).await
                }
            },
        };
        if let WriteResult::Failed(e) = &result {
            warn!(workload = %workload.name(), error = %e, "write failed");
            fenced |= crate::shell::fence::is_fenced(&e.source);
        }
        if !matches!(result, WriteResult::Done | WriteResult::Gone) {
            stopped.push(write.lane());
        }
        results.push(result);
    }
    results
}

/// Persists the move as in flight (the status entry it would leave), then evicts the pod with its
/// uid and resourceVersion as preconditions: a replacement of the same name, or a pod changed
/// since the snapshot, is not evicted. No status write, no eviction.
async fn evict(
    step: &Step<'_>,
    assessment: &Assessment,
    results: &[WriteResult],
    index: usize,
    m: &Move,
) -> WriteResult {
    let Step {
        ctx,
        policy,
        workload,
        now,
        ..
    } = *step;
    let entry = pipeline::before_eviction(assessment, results, index, now);
    let recorded = (ctx.statuses)
        .write_onto(&ctx.client, policy, move |base| {
            with_workload(base, entry.clone())
        })
        .await;
    if let Err(source) = recorded {
        return WriteResult::Failed(WriteError {
            kind: WriteKind::Evict,
            target: m.pod.clone(),
            source,
        });
    }
    let result = actuate::evict(&ctx.client, workload.namespace(), m).await;
    if matches!(result, WriteResult::Done) {
        info!(workload = %workload.name(), pod = %m.pod, from = %m.from_domain, to = %m.to_domain, "evicted");
    }
    result
}

/// Reads what one policy's reconcile needs from the caches: its namespace's policies,
/// workloads, budgets and snapshot.
fn gather(ctx: &Context, policy: &HAPolicy, namespace: &str) -> Gathered {
    let cluster = ctx.stores.snapshot(namespace);
    Gathered {
        policies: (ctx.policies.state().into_iter())
            .filter(|p| p.namespace().as_deref() == Some(namespace))
            .collect(),
        workloads: (ctx.stores).workloads(namespace, &policy.spec.workload_kinds),
        budgets: ctx.stores.budgets(namespace),
        nodepools: ctx.stores.nodepools.objects().map(|pools| {
            let pools = pools.iter().map(|p| {
                let pool = serde_json::to_value(p.as_ref()).unwrap_or_default();
                pool_zones(&pool)
            });
            (pools.collect(), zones_with_nodes(&cluster))
        }),
        cluster,
        admission: ctx.admission_support(),
        pods_current: ctx.stores.pods_current(),
        capacity_via: if ctx.stores.capacity_buffers.served() {
            CapacityVia::CapacityBuffer
        } else {
            CapacityVia::PlaceholderPods
        },
    }
}

/// The zones that have nodes.
fn zones_with_nodes(cluster: &Cluster) -> BTreeSet<String> {
    cluster
        .key_index(ZONE_KEY)
        .domains
        .iter()
        .cloned()
        .collect()
}

fn workload_ref(w: &WorkloadObject) -> ObjectReference {
    let kind = w.kind.descriptor();
    ObjectReference {
        api_version: Some(kind.api_version()),
        kind: Some(kind.name().to_string()),
        name: Some(w.name().to_string()),
        namespace: Some(w.namespace().to_string()),
        uid: w.metadata.uid.clone(),
        ..Default::default()
    }
}

/// Writes the status subresource, only when it changed, on the resourceVersion it was computed
/// from.
async fn write_status(
    ctx: &Context,
    policy: &HAPolicy,
    status: HAPolicyStatus,
) -> Result<(), Error> {
    (ctx.statuses.write(&ctx.client, policy, &status).await).map_err(|source| Error::Status {
        policy: policy.name_any(),
        source,
    })
}
