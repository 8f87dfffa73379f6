//! One reconcile of one policy: observe -> core -> act -> status. Every decision comes from the
//! pure modules; this file only gathers their inputs and carries out their answers.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::core::Selector;
use kube::runtime::controller::Action as Requeue;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::api::conditions::reason;
use crate::api::{HAPolicy, HAPolicyStatus, RebalanceState};
use crate::constraints::{apply_body, plan_template};
use crate::decision::{self, Action, Observation, Writes};
use crate::metrics::{
    Action as Acted, ActionResult, ConstraintMetrics, ErrorCategory, WorkloadMetrics,
};
use crate::ownership::{governing_policy, selects};
use crate::policy_status::{WorkloadOutcome, key_name, policy_status};
use crate::topology::{
    Cluster, PlanOptions, ZONE_KEY, evaluate, pods_by_domain, worst_domain_loss,
};
use crate::workload::WorkloadObject;

use super::actuate::{self, EvictionOutcome};
use super::context::{Context, WorkloadKey};
use super::events::{self, Notice, kind};

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

/// What the metrics say about one workload.
fn workload_metrics(o: &WorkloadOutcome) -> WorkloadMetrics {
    WorkloadMetrics {
        kind: format!("{:?}", o.kind),
        workload: o.name.clone(),
        replicas: i64::from(o.replicas),
        balanced: o.balanced(),
        constraints: o
            .measurement
            .constraints
            .iter()
            .map(|c| ConstraintMetrics {
                topology_key: c.topology_key.clone(),
                skew: i64::from(c.skew),
                max_skew: i64::from(c.max_skew),
                domains: c
                    .domains
                    .iter()
                    .map(|(d, n)| (d.to_string(), i64::from(n)))
                    .collect(),
            })
            .collect(),
        zone_loss: o.zone_loss.as_ref().map(|l| {
            let key = o
                .measurement
                .constraints
                .first()
                .map_or(ZONE_KEY.to_string(), |c| c.topology_key.clone());
            (key, l.fraction)
        }),
        blocked_reason: matches!(
            o.state,
            RebalanceState::Blocked | RebalanceState::BackingOff
        )
        .then(|| o.reason.clone()),
    }
}

/// What the reconcile saw, gathered once for all the policy's workloads.
struct Observed {
    workloads: Vec<WorkloadObject>,
    problems: Vec<String>,
    cluster: Cluster,
    governing: Vec<Option<String>>,
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

async fn reconcile_policy(policy: &Arc<HAPolicy>, ctx: &Arc<Context>) -> Result<Requeue, Error> {
    let (policy, ctx) = (policy.clone(), ctx.clone());
    // Whole seconds: what the API server stores, so an unchanged status compares equal.
    let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH);
    let namespace = policy.namespace().unwrap_or_default();
    let observed = observe(&policy, &ctx, &namespace);
    let mut outcomes = Vec::with_capacity(observed.workloads.len());
    let mut requeue = RESYNC;
    for (workload, governing) in observed.workloads.iter().zip(&observed.governing) {
        let conflict = governing.as_deref() != Some(policy.name_any().as_str());
        let (outcome, after) =
            handle_workload(&policy, &ctx, &observed.cluster, workload, conflict, now).await;
        requeue = requeue.min(after.unwrap_or(RESYNC));
        outcomes.push(outcome);
    }
    ctx.metrics.observe_policy(
        &namespace,
        &policy.name_any(),
        &outcomes.iter().map(workload_metrics).collect::<Vec<_>>(),
    );
    let keep: Vec<WorkloadKey> = observed
        .workloads
        .iter()
        .map(|w| key_of(&policy, w))
        .collect();
    ctx.forget_except(&namespace, &policy.name_any(), &keep);
    let status = policy_status(
        policy.status.as_ref(),
        policy.metadata.generation,
        &outcomes,
        &observed.problems,
        now,
    );
    write_status(&ctx, &policy, status).await?;
    Ok(Requeue::requeue(requeue))
}

pub fn error_policy(policy: Arc<HAPolicy>, error: &Error, _ctx: Arc<Context>) -> Requeue {
    warn!(policy = %policy.name_any(), category = error.category().as_str(), %error, "reconcile failed");
    Requeue::requeue(Duration::from_secs(15))
}

fn key_of(policy: &HAPolicy, w: &WorkloadObject) -> WorkloadKey {
    WorkloadKey {
        namespace: w.namespace().to_string(),
        policy: policy.name_any(),
        kind: w.kind,
        name: w.name().to_string(),
    }
}

fn observe(policy: &HAPolicy, ctx: &Context, namespace: &str) -> Observed {
    let mut problems = Vec::new();
    if let Err(e) = Selector::try_from(policy.spec.selector.clone()) {
        problems.push(format!("invalid selector: {e}"));
    }
    let mut workloads = Vec::new();
    for w in ctx.stores.workloads(namespace, &policy.spec.workload_kinds) {
        match w {
            Ok(w) if selects(policy, &w) => workloads.push(w),
            Ok(_) => {}
            Err(e) => {
                warn!(policy = %policy.name_any(), error = %e, "skipping a malformed workload");
                problems.push(e.to_string());
            }
        }
    }
    workloads.sort_by(|a, b| (a.kind, a.name()).cmp(&(b.kind, b.name())));
    let policies: Vec<Arc<HAPolicy>> = ctx
        .policies
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(namespace))
        .collect();
    let governing = workloads
        .iter()
        .map(|w| governing_policy(policies.iter().map(|p| p.as_ref()), w))
        .collect();
    let cluster = Cluster::new(ctx.stores.nodes(), ctx.stores.pods_in(namespace))
        .with_requested(&ctx.stores.requested_per_node());
    Observed {
        workloads,
        problems,
        cluster,
        governing,
    }
}

/// Measures, decides and acts for one workload; returns its outcome and when to look again.
async fn handle_workload(
    policy: &HAPolicy,
    ctx: &Context,
    cluster: &Cluster,
    workload: &WorkloadObject,
    conflict: bool,
    now: Timestamp,
) -> (WorkloadOutcome, Option<Duration>) {
    let spec = &policy.spec;
    let key = key_of(policy, workload);
    let template = plan_template(spec, workload);
    let core = match workload.to_core(template.measured.clone()) {
        Ok(core) => core,
        Err(e) => {
            warn!(policy = %policy.name_any(), error = %e, "cannot measure workload");
            return (blocked_outcome(workload, &e.to_string()), None);
        }
    };
    let options = PlanOptions {
        max_moves: spec.rebalance.max_disruptions.max(1) as usize,
        require_node_fit: spec.rebalance.require_node_fit,
    };
    let evaluation = evaluate(cluster, &core, &options);
    let loss_key = core
        .constraints
        .first()
        .map_or(ZONE_KEY, |c| c.topology_key.as_str());
    let zone_loss = worst_domain_loss(&pods_by_domain(cluster, &core, loss_key));
    let running: BTreeSet<String> = evaluation
        .measurement
        .own_pods
        .iter()
        .map(|&i| cluster.pods()[i].uid.clone())
        .collect();
    let ready = evaluation
        .measurement
        .own_pods
        .iter()
        .filter(|&&i| cluster.pods()[i].ready)
        .count() as i32;

    let mut record = ctx.record(&key);
    let was_skewed = record.memory.skewed_since.is_some();
    let mut decision = decision::decide(
        &Observation {
            now,
            rebalance: &spec.rebalance,
            paused: spec.paused,
            conflict,
            settled: workload.replicas.is_settled(),
            ready_replicas: ready.min(workload.replicas.ready),
            within_policy: evaluation.measurement.within_policy(),
            budget_exhausted: ctx
                .stores
                .budget_exhausted(workload.namespace(), &core.template.labels),
            measurement: &evaluation.measurement,
            running_pods: &running,
            plan: &evaluation.plan,
        },
        &mut record.memory,
    );
    let writes = Writes::for_workload(ctx.settings.dry_run, spec.paused, conflict);
    let why_not = writes.label();
    let mut notes = Vec::new();
    let mut notices = Vec::new();
    let count = |action: Acted, result: ActionResult| {
        ctx.metrics.record_action(
            workload.namespace(),
            &policy.name_any(),
            &format!("{:?}", workload.kind),
            workload.name(),
            action,
            result,
        );
    };

    if template.changes_template && writes != Writes::NotOwner {
        if writes.allowed() {
            match actuate::apply(&ctx.client, workload, &apply_body(workload, &template)).await {
                Ok(()) => {
                    count(Acted::Inject, ActionResult::Success);
                    info!(workload = %workload.name(), "spread constraints injected");
                    notes.push("constraints injected: the rolling update they start is the first rebalance".to_string());
                    notices.push(Notice::normal(
                        kind::CONSTRAINTS_INJECTED,
                        format!(
                            "{} spread constraint(s) written by field manager skewguard",
                            template.injected.len()
                        ),
                    ));
                }
                Err(e) => {
                    count(Acted::Inject, ActionResult::Error);
                    ctx.metrics.record_error(ErrorCategory::Apply);
                    warn!(workload = %workload.name(), error = %e, "injecting constraints failed");
                    notes.push(format!("injecting constraints failed: {e}"));
                }
            }
        } else {
            notes.push(format!(
                "{why_not}: would write {} spread constraint(s)",
                template.injected.len()
            ));
        }
    }

    match &decision.action {
        Action::Evict(moves) => {
            for m in moves {
                if !writes.allowed() {
                    count(Acted::Evict, ActionResult::DryRun);
                    notes.push(format!(
                        "{why_not}: would evict {} ({} {} -> {})",
                        m.pod,
                        key_name(&m.topology_key),
                        m.from_domain,
                        m.to_domain
                    ));
                    continue;
                }
                ctx.limiter.acquire().await;
                match actuate::evict(&ctx.client, workload.namespace(), &m.pod).await {
                    EvictionOutcome::Evicted => {
                        decision::record_eviction(
                            &mut record.memory,
                            m,
                            &evaluation.measurement,
                            now,
                        );
                        count(Acted::Evict, ActionResult::Success);
                        info!(workload = %workload.name(), pod = %m.pod, from = %m.from_domain, to = %m.to_domain, "evicted");
                        notices.push(Notice::normal(
                            kind::POD_EVICTED,
                            format!(
                                "evicted {} to move it from {} to {}",
                                m.pod, m.from_domain, m.to_domain
                            ),
                        ));
                    }
                    EvictionOutcome::BudgetExhausted => {
                        decision::record_pdb_block(&mut record.memory, now);
                        count(Acted::Evict, ActionResult::Blocked);
                        decision.state = RebalanceState::Blocked;
                        decision.reason = reason::POD_DISRUPTION_BUDGET;
                        decision.requeue_after = Some(decision::PDB_RETRY);
                        break;
                    }
                    EvictionOutcome::Gone => {}
                    EvictionOutcome::Failed(e) => {
                        count(Acted::Evict, ActionResult::Error);
                        ctx.metrics.record_error(ErrorCategory::Eviction);
                        warn!(workload = %workload.name(), pod = %m.pod, error = %e, "eviction failed");
                        notes.push(format!("evicting {} failed: {e}", m.pod));
                        break;
                    }
                }
            }
        }
        Action::Restart => {
            if writes.allowed() {
                match actuate::restart(&ctx.client, workload, now).await {
                    Ok(()) => {
                        count(Acted::Restart, ActionResult::Success);
                        decision::record_restart(&mut record.memory, now);
                        notices.push(Notice::normal(
                            kind::WORKLOAD_RESTARTED,
                            "restarted to spread its pods",
                        ));
                    }
                    Err(e) => {
                        count(Acted::Restart, ActionResult::Error);
                        ctx.metrics.record_error(ErrorCategory::KubeApi);
                        notes.push(format!("restart failed: {e}"));
                    }
                }
            } else {
                count(Acted::Restart, ActionResult::DryRun);
                notes.push(format!("{why_not}: would restart the workload"));
            }
        }
        Action::None => {}
    }

    let outcome = WorkloadOutcome {
        kind: workload.kind,
        name: workload.name().to_string(),
        replicas: workload.replicas.desired,
        measurement: evaluation.measurement,
        zone_loss,
        state: decision.state,
        reason: decision.reason.to_string(),
        last_action: record.memory.last_action,
        actions: record.memory.actions,
        skewed_since: record.memory.skewed_since,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    };
    notices.extend(events::transitions(
        was_skewed,
        record.memory.skewed_since.is_some(),
        &outcome.skew_summary().join(", "),
        record.reported.as_ref(),
        decision.state,
        decision.reason,
    ));
    record.reported = Some((decision.state, decision.reason.to_string()));
    ctx.store_record(key, record);
    let policy_ref = policy.object_ref(&());
    let workload_ref = workload_ref(workload);
    for notice in &notices {
        events::publish(&ctx.recorder, notice, &workload_ref, &policy_ref).await;
    }
    (outcome, decision.requeue_after)
}

fn blocked_outcome(workload: &WorkloadObject, message: &str) -> WorkloadOutcome {
    WorkloadOutcome {
        kind: workload.kind,
        name: workload.name().to_string(),
        replicas: workload.replicas.desired,
        measurement: crate::topology::Measurement {
            constraints: Vec::new(),
            own_pods: Vec::new(),
        },
        zone_loss: None,
        state: RebalanceState::Blocked,
        reason: "InvalidWorkload".to_string(),
        last_action: None,
        actions: 0,
        skewed_since: None,
        note: Some(message.to_string()),
    }
}

fn workload_ref(w: &WorkloadObject) -> ObjectReference {
    let api_version = match w.kind {
        crate::api::WorkloadKind::Rollout => "argoproj.io/v1alpha1",
        _ => "apps/v1",
    };
    ObjectReference {
        api_version: Some(api_version.to_string()),
        kind: Some(format!("{:?}", w.kind)),
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
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map(|_| ())
    .map_err(|source| Error::Status {
        policy: policy.name_any(),
        source,
    })
}
