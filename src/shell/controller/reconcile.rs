//! One reconcile of one policy: gather -> assess each workload (pure) -> carry out its writes ->
//! conclude (pure) -> status. This file only gathers the pipeline's inputs and carries out its
//! writes; every decision is made in [`crate::core::pipeline`].

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, Patch, PatchParams};
use kube::core::Selector;
use kube::runtime::controller::Action as Requeue;
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use crate::api::{HAPolicy, HAPolicyStatus};
use crate::core::budgets::budget_exhausted;
use crate::core::errors::ErrorCategory;
use crate::core::injection::choose_mode;
use crate::core::ownership::{governing_policy, selects};
use crate::core::pipeline::{self, Facts, Lane, Write, WriteResult};
use crate::core::policy_status::{PolicyInjection, policy_status, status_patch};
use crate::core::topology::Cluster;
use crate::core::workload::{Unreadable, WorkloadObject};
use crate::shell::metrics::WorkloadMetrics;

use super::actuate;
use super::context::{Context, WorkloadKey};
use super::events;

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
}

/// What the reconcile gathered, once for all the policy's workloads.
struct Gathered {
    workloads: Vec<WorkloadObject>,
    /// Selected workloads whose spec cannot be read: each reported on its own.
    unreadable: Vec<Unreadable>,
    problems: Vec<String>,
    cluster: Cluster,
    governing: Vec<bool>,
    /// The namespace's PodDisruptionBudgets.
    budgets: Vec<Arc<PodDisruptionBudget>>,
}

pub async fn reconcile(policy: Arc<HAPolicy>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    if !ctx.is_leader() {
        return Ok(Requeue::await_change());
    }
    let started = std::time::Instant::now();
    let result = reconcile_policy(&policy, &ctx).await;
    ctx.metrics.observe_reconcile(started.elapsed());
    if let Err(e) = &result {
        ctx.metrics.record_error(e.category());
    }
    result
}

async fn reconcile_policy(policy: &HAPolicy, ctx: &Context) -> Result<Requeue, Error> {
    // Whole seconds: what the API server stores, so an unchanged status compares equal.
    let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH);
    let namespace = policy.namespace().unwrap_or_default();
    let name = policy.name_any();
    let gathered = gather(policy, ctx, &namespace);
    let support = ctx.admission_support();
    let injection = choose_mode(
        policy.spec.injection,
        support.as_ref(),
        policy.status.as_ref().and_then(|s| s.injection.as_ref()),
    );
    let mut outcomes = Vec::with_capacity(gathered.workloads.len());
    let mut requeue = RESYNC;
    for (workload, governing) in gathered.workloads.iter().zip(&gathered.governing) {
        let key = key_of(policy, workload);
        let facts = Facts {
            governing: *governing,
            budget_exhausted: budget_exhausted(
                gathered.budgets.iter().map(AsRef::as_ref),
                workload.namespace(),
                workload.template_labels(),
            ),
            rollouts_elsewhere: ctx.rollouts_elsewhere(&key).await,
            injection: injection.as_ref().map(|i| i.mode),
        };
        let assessment = pipeline::assess(
            policy,
            workload,
            &gathered.cluster,
            &ctx.memory_of(&key),
            &facts,
            &ctx.settings,
            now,
        );
        // A write that starts a rollout takes its slot now, before any other reconcile counts.
        if assessment.starts_rollout() {
            ctx.hold_rollout(&key, true);
        }
        let results = carry_out(ctx, &key, workload, &assessment.writes).await;
        let conclusion = pipeline::conclude(assessment, results, now);
        ctx.hold_rollout(
            &key,
            conclusion.memory.decision.rollout_generation.is_some(),
        );
        for (action, result) in &conclusion.actions {
            ctx.metrics.record_action(
                &namespace,
                &name,
                workload.kind.name(),
                workload.name(),
                *action,
                *result,
            );
        }
        for error in &conclusion.errors {
            ctx.metrics.record_error(*error);
        }
        let workload_ref = workload_ref(workload);
        let policy_ref = policy.object_ref(&());
        for notice in &conclusion.notices {
            events::publish(&ctx.recorder, notice, &workload_ref, &policy_ref).await;
        }
        ctx.remember(key, conclusion.memory);
        requeue = requeue.min(conclusion.requeue_after.unwrap_or(RESYNC));
        outcomes.push(conclusion.outcome);
    }
    for u in &gathered.unreadable {
        let key = WorkloadKey {
            namespace: namespace.clone(),
            policy: name.clone(),
            kind: u.kind,
            name: u.metadata.name.clone().unwrap_or_default(),
        };
        let assessment =
            pipeline::unreadable(u.kind, &key.name, &ctx.memory_of(&key), u.error.to_string());
        let conclusion = pipeline::conclude(assessment, Vec::new(), now);
        for error in &conclusion.errors {
            ctx.metrics.record_error(*error);
        }
        ctx.remember(key, conclusion.memory);
        outcomes.push(conclusion.outcome);
    }
    ctx.metrics.observe_policy(
        &namespace,
        &name,
        &outcomes
            .iter()
            .map(WorkloadMetrics::from)
            .collect::<Vec<_>>(),
    );
    let keep: Vec<WorkloadKey> = outcomes
        .iter()
        .map(|o| WorkloadKey {
            namespace: namespace.clone(),
            policy: name.clone(),
            kind: o.kind,
            name: o.name.clone(),
        })
        .collect();
    ctx.forget_except(&namespace, &name, &keep);
    let status = policy_status(
        policy.status.as_ref(),
        policy.metadata.generation,
        &outcomes,
        &gathered.problems,
        &PolicyInjection {
            status: injection.as_ref(),
            support: support.as_ref(),
        },
        now,
    );
    write_status(ctx, policy, status).await?;
    Ok(Requeue::requeue(requeue.max(Duration::from_millis(100))))
}

pub fn error_policy(policy: Arc<HAPolicy>, error: &Error, _ctx: Arc<Context>) -> Requeue {
    warn!(policy = %policy.name_any(), category = error.category().as_str(), %error, "reconcile failed");
    Requeue::requeue(Duration::from_secs(15))
}

/// Carries out the writes in order, in each lane stopping at the first that does not go through
/// (a refused or failed eviction, or one whose slot has not come yet).
async fn carry_out(
    ctx: &Context,
    key: &WorkloadKey,
    workload: &WorkloadObject,
    writes: &[Write],
) -> Vec<WriteResult> {
    let mut results = Vec::with_capacity(writes.len());
    let mut stopped: Vec<Lane> = Vec::new();
    for write in writes {
        if stopped.contains(&write.lane()) {
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
            Write::Evict(m) => match ctx.limiter.reserve(key, &m.pod) {
                Some(wait) => WriteResult::Deferred(wait),
                None => {
                    let result = actuate::evict(&ctx.client, workload.namespace(), &m.pod).await;
                    if matches!(result, WriteResult::Done) {
                        info!(workload = %workload.name(), pod = %m.pod, from = %m.from_domain, to = %m.to_domain, "evicted");
                    }
                    result
                }
            },
            Write::Restart { body } => actuate::restart(&ctx.client, workload, body).await,
            Write::DeletionCost { pod, cost } => match ctx.pod_writes.reserve(key, pod) {
                Some(wait) => WriteResult::Deferred(wait),
                None => {
                    actuate::set_deletion_cost(&ctx.client, workload.namespace(), pod, *cost).await
                }
            },
        };
        if let WriteResult::Failed(e) = &result {
            warn!(workload = %workload.name(), error = %e, "write failed");
        }
        if !matches!(result, WriteResult::Done | WriteResult::Gone) {
            stopped.push(write.lane());
        }
        results.push(result);
    }
    results
}

fn key_of(policy: &HAPolicy, w: &WorkloadObject) -> WorkloadKey {
    WorkloadKey {
        namespace: w.namespace().to_string(),
        policy: policy.name_any(),
        kind: w.kind,
        name: w.name().to_string(),
    }
}

fn gather(policy: &HAPolicy, ctx: &Context, namespace: &str) -> Gathered {
    let mut problems = Vec::new();
    if let Err(e) = Selector::try_from(policy.spec.selector.clone()) {
        ctx.metrics.record_error(ErrorCategory::InvalidPolicy);
        problems.push(format!("invalid selector: {e}"));
    }
    let mut workloads = Vec::new();
    let mut unreadable = Vec::new();
    for w in ctx.stores.workloads(namespace, &policy.spec.workload_kinds) {
        match w {
            Ok(w) if selects(policy, &w) => workloads.push(w),
            Err(u) if selects(policy, u.as_ref()) => {
                warn!(policy = %policy.name_any(), error = %u.error, "a selected workload cannot be read");
                unreadable.push(*u);
            }
            _ => {}
        }
    }
    workloads.sort_by(|a, b| (a.kind, a.name()).cmp(&(b.kind, b.name())));
    let policies: Vec<Arc<HAPolicy>> = ctx
        .policies
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(namespace))
        .collect();
    let name = policy.name_any();
    let governing = workloads
        .iter()
        .map(|w| {
            governing_policy(policies.iter().map(|p| p.as_ref()), w).as_deref()
                == Some(name.as_str())
        })
        .collect();
    Gathered {
        workloads,
        unreadable,
        problems,
        cluster: ctx.stores.snapshot(namespace),
        governing,
        budgets: ctx.stores.budgets(namespace),
    }
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

/// Writes the status subresource, only when it changed.
async fn write_status(
    ctx: &Context,
    policy: &HAPolicy,
    status: HAPolicyStatus,
) -> Result<(), Error> {
    if policy.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<HAPolicy> =
        Api::namespaced(ctx.client.clone(), &policy.namespace().unwrap_or_default());
    api.patch_status(
        &policy.name_any(),
        &PatchParams::default(),
        &Patch::Merge(status_patch(&status)),
    )
    .await
    .map(|_| ())
    .map_err(|source| Error::Status {
        policy: policy.name_any(),
        source,
    })
}
