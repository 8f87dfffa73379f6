//! A workload's writes, carried out beside its policy's reconcile. The reconcile waits for them up
//! to [`Limits::writes_waited_for`](super::context::Limits); writes still under way then go on on
//! their own: until they end the workload is busy (not assessed again, and its status entry is
//! left as the writes leave it), and their end asks for the policy again. On a busy API server a
//! reconcile of a hundred workloads so takes its assessments' time, not its slowest round trip's:
//! a replacement turning Ready is judged without waiting for other workloads' writes, and the
//! eviction slots that come meanwhile are not missed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::api::HAPolicy;
use crate::core::pipeline::{self, Assessment, Conclusion, WorkloadKey};
use crate::core::workload::WorkloadObject;

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
    let mut provisional = pipeline::conclude(writes.assessment.clone(), Vec::new(), writes.now);
    // Its writer counts, publishes and asks for the policy again; this one is only looked at.
    provisional.requeue_after = None;
    provisional.actions.clear();
    provisional.errors.clear();
    provisional.notices.clear();
    provisional.moves_judged = 0;
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
        let step = super::reconcile::Step {
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
            results = super::reconcile::carry_out(&step, &assessment) => results,
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
