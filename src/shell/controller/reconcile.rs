//! One reconcile of one policy: gather -> prepare (pure) -> per workload {permit, assess (pure),
//! start its writes ([`super::writer`]: carry out, conclude (pure), keep)} -> finish (pure) ->
//! write the status. This file only gathers the policy phase's inputs, starts the writes, waits
//! for them briefly and keeps what is concluded; every decision is made in
//! [`crate::core::pipeline`].

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::controller::Action as Requeue;
use kube::{Resource, ResourceExt};
use tracing::{debug, info, warn};

use std::collections::BTreeSet;

use crate::api::WorkloadKind;
use crate::api::{CapacityVia, HAPolicy, HAPolicyStatus};
use crate::core::errors::ErrorCategory;
use crate::core::expected::{ReadPool, pool_zones};
use crate::core::injection::AdmissionSupport;
use crate::core::pipeline::{
    self, ActionResult, Assessment, Conclusion, NodePools, PolicyPhase, Selected, Subject, Write,
    WriteKind,
};
use crate::core::policy_status::with_entries_of;
use crate::core::topology::{Cluster, ZONE_KEY};
use crate::core::workload::{Unreadable, WorkloadObject};

use super::context::{Context, WorkloadKey};
use super::events;
use super::writer::{self, Writes, Writing};

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
async fn reconcile_policy(cached: &Arc<HAPolicy>, ctx: &Arc<Context>) -> Result<Requeue, Error> {
    // Decided on the status this process decided last, even while its write is on its way; the
    // writes build on what the API server has (`cached`, and this process's writes it has taken).
    let policy = &(ctx.statuses.latest(cached)).map_or_else(|| cached.clone(), Arc::new);
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
        nodes: gathered.cluster.node_set(),
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
    // Every workload is assessed first and its writes started beside the reconcile; then the
    // reconcile waits for them, up to `writes_waited_for` in all (see `writer`).
    let mut stepped = Vec::with_capacity(phase.workloads.len());
    for selected in &phase.workloads {
        stepped.push(step(ctx, cached, &phase, &gathered.cluster, selected, now).await);
    }
    let assessed_in = started.elapsed();
    let deadline = tokio::time::Instant::now() + ctx.writes_waited_for;
    let mut conclusions = Vec::with_capacity(stepped.len());
    let mut busy = Vec::new();
    for (selected, stepped) in phase.workloads.iter().zip(stepped) {
        let concluded = match stepped {
            Stepped::Concluded(conclusion) => Ok(conclusion),
            Stepped::Writing(writing) => writing.until(deadline).await,
            Stepped::Busy(provisional) => Err(provisional),
        };
        conclusions.push(concluded.unwrap_or_else(|provisional| {
            busy.push((selected.key.kind, selected.key.name.clone()));
            provisional
        }));
    }
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
    ctx.statuses.decide(policy, finished.status.clone());
    let written = write_status_beside(ctx, cached, finished.status, busy.clone());
    let deadline = tokio::time::Instant::now() + ctx.writes_waited_for;
    if let Ok(Ok(result)) = tokio::time::timeout_at(deadline, written).await {
        result?;
    }
    debug!(
        policy = %name,
        workloads = phase.workloads.len(),
        actions,
        busy = busy.len(),
        gathered = ?gathered_in,
        assessed = ?assessed_in,
        stepped = ?stepped_in,
        total = ?started.elapsed(),
        "reconciled"
    );
    let requeue = finished.requeue_after.map_or(RESYNC, |r| r.min(RESYNC));
    Ok(Requeue::requeue(requeue.max(Duration::from_millis(100))))
}

/// Where one workload's step stands when every workload has been assessed.
enum Stepped {
    Concluded(Conclusion),
    /// Its writes are under way.
    Writing(Writing),
    /// Its writes from an earlier reconcile are still under way: not assessed again.
    Busy(Conclusion),
}

/// One workload's step: its rollout permit, assess (pure), then its writes started beside the
/// reconcile (or, with nothing to write, conclude (pure) and keep).
async fn step(
    ctx: &Arc<Context>,
    policy: &Arc<HAPolicy>,
    phase: &PolicyPhase<'_>,
    cluster: &Cluster,
    selected: &Selected<'_>,
    now: Timestamp,
) -> Stepped {
    let key = &selected.key;
    if let Some(provisional) = ctx.busy.provisional(key) {
        return Stepped::Busy(provisional);
    }
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
    observe_judged(ctx, key, cluster, &assessment, assessed_at);
    match &selected.subject {
        Subject::Readable { workload, .. } if !assessment.writes.is_empty() => {
            Stepped::Writing(writer::start(
                ctx,
                Writes {
                    policy: policy.clone(),
                    key: key.clone(),
                    workload: (*workload).clone(),
                    workload_ref: workload_ref(workload),
                    assessment,
                    now,
                    assessed_at,
                },
            ))
        }
        subject => {
            let conclusion = pipeline::conclude(assessment, Vec::new(), now);
            let workload_ref = match subject {
                Subject::Readable { workload, .. } => Some(workload_ref(workload)),
                Subject::Unreadable { .. } => None,
            };
            keep(
                ctx,
                policy,
                key,
                workload_ref.as_ref(),
                &conclusion,
                assessed_at,
            );
            Stepped::Concluded(conclusion)
        }
    }
}

/// Counts how long the moves judged now waited since their replacement turned Ready (the pod that
/// turned Ready last).
fn observe_judged(
    ctx: &Context,
    key: &WorkloadKey,
    cluster: &Cluster,
    assessment: &Assessment,
    assessed_at: tokio::time::Instant,
) {
    let judged = assessment.decision.moves_succeeded + assessment.decision.moves_failed;
    if judged == 0 {
        return;
    }
    let ready_at = (assessment.measurement.own_pods.iter())
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
    info!(workload = %key.name, judged, ready_for = ?waited, "moves judged");
}

/// Keeps what a workload's step concluded (memory, rollout slot), counts it and publishes its
/// Events (on the workload when it could be read, and on the policy).
pub(super) fn keep(
    ctx: &Context,
    policy: &HAPolicy,
    key: &WorkloadKey,
    workload_ref: Option<&ObjectReference>,
    conclusion: &Conclusion,
    assessed_at: tokio::time::Instant,
) {
    let evicted = conclusion
        .actions
        .contains(&(WriteKind::Evict, ActionResult::Success));
    if let Some(judged) = ctx.keep(key, conclusion, evicted, assessed_at) {
        ctx.metrics.observe_judged_to_eviction(judged.elapsed());
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
    if let Some(workload_ref) = workload_ref
        && !conclusion.notices.is_empty()
    {
        // Published beside the reconcile, not in it: two API calls per Event held every later
        // workload of a large policy back (its next step judged only after them).
        let (workload_ref, policy_ref) = (workload_ref.clone(), policy.object_ref(&()));
        let (recorder, notices) = (ctx.recorder.clone(), conclusion.notices.clone());
        tokio::spawn(async move {
            for notice in &notices {
                events::publish(&recorder, notice, &workload_ref, &policy_ref).await;
            }
        });
    }
}

pub fn error_policy(policy: Arc<HAPolicy>, error: &Error, _ctx: Arc<Context>) -> Requeue {
    let retry = retry_after(&policy, error);
    Requeue::requeue(retry.requeue_after())
}

/// When a failed reconcile (or status write) looks at the policy again, said in the log.
fn retry_after(policy: &HAPolicy, error: &Error) -> Retry {
    if error.is_conflict() {
        info!(policy = %policy.name_any(), "the policy changed since it was read; looking again");
        return Retry::Soon;
    }
    warn!(policy = %policy.name_any(), category = error.category().as_str(), %error, "reconcile failed");
    Retry::BackedOff
}

/// How soon a failure is tried again.
enum Retry {
    /// The policy changed since it was read (most often the cache had not caught up yet).
    Soon,
    BackedOff,
}

impl Retry {
    fn requeue_after(&self) -> Duration {
        match self {
            Retry::Soon => Duration::from_secs(1),
            Retry::BackedOff => Duration::from_secs(15),
        }
    }
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

/// Writes the status beside the reconcile, which waits for it as for the workloads' writes. A
/// write that fails after the reconcile stopped waiting is counted and logged by itself, and asks
/// for the policy again when the reconcile's error policy would have.
fn write_status_beside(
    ctx: &Arc<Context>,
    policy: &Arc<HAPolicy>,
    status: HAPolicyStatus,
    busy: Vec<(WorkloadKind, String)>,
) -> tokio::sync::oneshot::Receiver<Result<(), Error>> {
    let (tx, written) = tokio::sync::oneshot::channel();
    let (ctx, policy) = (ctx.clone(), policy.clone());
    tokio::spawn(async move {
        let result = tokio::select! {
            biased;
            _ = ctx.fence.lost() => return,
            result = write_status(&ctx, &policy, status, busy) => result,
        };
        if let Err(Err(e)) = tx.send(result) {
            ctx.metrics.record_error(e.category());
            let after = retry_after(&policy, &e);
            tokio::time::sleep(after.requeue_after()).await;
            ctx.wakes.wake(&policy);
        }
    });
    written
}

/// Writes the status subresource, only when it changed, on the resourceVersion it was computed
/// from; the entries of `busy` workloads stay as their writes leave them.
async fn write_status(
    ctx: &Context,
    policy: &HAPolicy,
    status: HAPolicyStatus,
    busy: Vec<(WorkloadKind, String)>,
) -> Result<(), Error> {
    let write = ctx.statuses.write(&ctx.client, policy, move |base| {
        with_entries_of(status.clone(), base, &busy)
    });
    (write.await).map_err(|source| Error::Status {
        policy: policy.name_any(),
        source,
    })
}
