//! A workload's writes, carried out beside its policy's reconcile. The reconcile waits for them up
//! to [`Limits::writes_waited_for`](super::context::Limits); writes still under way then go on on
//! their own: until they end the workload is busy (not assessed again, and its status entry is
//! left as the writes leave it), and their end asks for the policy again. On a busy API server a
//! reconcile of a hundred workloads so takes its assessments' time, not its slowest round trip's:
//! a replacement turning Ready is judged without waiting for other workloads' writes, and the
//! eviction slots that come meanwhile are not missed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::api::HAPolicy;
use crate::core::pipeline::{
    self, Assessment, Conclusion, Lane, WorkloadKey, Write, WriteError, WriteKind, WriteResult,
};
use crate::core::policy_status::with_workload;
use crate::core::topology::Move;
use crate::core::workload::WorkloadObject;

use super::actuate;
use super::context::Context;

/// The workloads whose writes go on after the reconcile that started them stopped waiting, each
/// with the conclusion its policy's reconciles use meanwhile (the assessment, no write's result).
#[derive(Default)]
pub struct Busy {
    workloads: Mutex<HashMap<WorkloadKey, Conclusion>>,
}

impl Busy {
    /// What a reconcile takes for a busy workload (`None`: not busy, assess it).
    pub fn provisional(&self, key: &WorkloadKey) -> Option<Conclusion> {
        self.lock().get(key).cloned()
    }

    /// How many workloads are busy now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WorkloadKey, Conclusion>> {
        self.workloads.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Marks a workload busy while its writer runs, however the writer ends (done, or cancelled when
/// the lease is lost).
struct BusyWhile {
    ctx: Arc<Context>,
    key: WorkloadKey,
}

impl Drop for BusyWhile {
    fn drop(&mut self) {
        self.ctx.busy.lock().remove(&self.key);
    }
}

/// How a writer that ended after its reconcile stopped waiting asks for its policy again.
pub struct Wakes {
    tx: mpsc::UnboundedSender<ObjectRef<HAPolicy>>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<ObjectRef<HAPolicy>>>>,
}

impl Default for Wakes {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl Wakes {
    /// Asks for `policy` to be reconciled again.
    pub fn wake(&self, policy: &HAPolicy) {
        let _ = self.tx.send(ObjectRef::from_obj(policy));
    }

    /// The policies asked for, for the controller's triggers (`None` once taken).
    pub fn take(&self) -> Option<mpsc::UnboundedReceiver<ObjectRef<HAPolicy>>> {
        self.rx.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// What one workload's writer carries out, and what it keeps of the outcome.
pub struct Writes {
    pub policy: Arc<HAPolicy>,
    pub key: WorkloadKey,
    pub workload: WorkloadObject,
    pub workload_ref: ObjectReference,
    pub assessment: Assessment,
    pub now: Timestamp,
    pub assessed_at: Instant,
}

/// A writer under way, as its reconcile sees it.
pub struct Writing {
    concluded: oneshot::Receiver<Conclusion>,
    provisional: Conclusion,
}

impl Writing {
    /// The writer's conclusion if it comes by `deadline`; otherwise the provisional one (the
    /// writer goes on, and asks for the policy again when it ends).
    pub async fn until(self, deadline: Instant) -> Result<Conclusion, Conclusion> {
        match tokio::time::timeout_at(deadline, self.concluded).await {
            Ok(Ok(conclusion)) => Ok(conclusion),
            Ok(Err(_)) | Err(_) => Err(self.provisional),
        }
    }
}

/// Starts the writer of one workload's step: carry out its writes, conclude, keep. The workload is
/// busy from now until the writer ends.
pub fn start(ctx: &Arc<Context>, writes: Writes) -> Writing {
    let provisional = pipeline::provisional(writes.assessment.clone(), writes.now);
    ctx.busy
        .lock()
        .insert(writes.key.clone(), provisional.clone());
    let busy = BusyWhile {
        ctx: ctx.clone(),
        key: writes.key.clone(),
    };
    let (tx, concluded) = oneshot::channel();
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let Writes {
            policy,
            key,
            workload,
            workload_ref,
            assessment,
            now,
            assessed_at,
        } = writes;
        let step = Step {
            ctx: &ctx,
            policy: &policy,
            key: &key,
            workload: &workload,
            now,
        };
        let results = tokio::select! {
            biased;
            // No later write goes out (the fence refuses them anyway); the new leader starts from
            // the status.
            _ = ctx.fence.lost() => return,
            results = carry_out(&step, &assessment) => results,
        };
        let conclusion = pipeline::conclude(assessment, results, now);
        super::reconcile::keep(
            &ctx,
            &policy,
            &key,
            Some(&workload_ref),
            &conclusion,
            assessed_at,
        );
        // Kept first: a reconcile that finds it no longer busy finds its new memory.
        drop(busy);
        if tx.send(conclusion).is_err() {
            ctx.wakes.wake(&policy);
        }
    });
    Writing {
        concluded,
        provisional,
    }
}

/// How long deletion-cost writes wait while evictions wait for their slots.
const COSTS_AFTER_MOVES: Duration = Duration::from_secs(2);

/// What an eviction's rate-limit slot is held for: the workload's n-th eviction of its step.
fn eviction_slot(evictions: &mut usize) -> String {
    *evictions += 1;
    format!("eviction {evictions}")
}

/// One workload's step: what its writes are carried out for.
struct Step<'a> {
    pub ctx: &'a Context,
    pub policy: &'a HAPolicy,
    pub key: &'a WorkloadKey,
    pub workload: &'a WorkloadObject,
    pub now: Timestamp,
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
