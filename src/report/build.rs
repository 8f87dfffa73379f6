//! Building the report from plain cluster data (pure: no client, no clock).
//!
//! Each workload is measured on one topology key by the constraint its template already has for
//! that key, or else by a `maxSkew: 1` constraint over its own pod selector, which is what a
//! policy would measure before injecting anything.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::DynamicObject;
use serde::Serialize;

use crate::api::conditions::reason;
use crate::api::{
    CapacityVia, HAPolicy, InjectionMode, InjectionStatus, RebalanceState, RebalanceStrategy,
    WorkloadKind, ZoneHealth, ZoneStatus,
};
use crate::core::constraints::measured_from_template;
use crate::core::decision::Memory;
use crate::core::expected::{Expected, ReadPool, from_nodepools, pool_zones};
use crate::core::injection::AdmissionSupport;
use crate::core::ownership::governing_policy;
use crate::core::pipeline::{
    self, NodePools, PolicyPhase, Selected, Settings, Subject, WorkloadMemory, Write,
};
use crate::core::policy_status::{MAX_REPORTED_DOMAINS, key_name};
use crate::core::rollout_slots::RolloutPermit;
use crate::core::snapshot::{LeanPod, node_from, pod_from};
use crate::core::topology::eligibility::admits_domain;
use crate::core::topology::{
    self, Cluster, ConstraintMeasure, HOSTNAME_KEY, SpreadConstraint, ZONE_KEY, pods_by_domain,
    worst_domain_loss,
};
use crate::core::workload::{WorkloadError, WorkloadObject};
use crate::core::zone_health::observe_key;

/// What the report reads from the cluster, as the API returns it.
#[derive(Clone, Debug, Default)]
pub struct ClusterState {
    pub nodes: Vec<Node>,
    pub pods: Vec<LeanPod>,
    /// Workloads of every kind the API server serves (each with its apiVersion and kind).
    pub workloads: Vec<DynamicObject>,
    /// The kinds the API server serves (a kind behind a CRD that is not installed is missing).
    pub kinds_served: Vec<WorkloadKind>,
    pub budgets: Vec<PodDisruptionBudget>,
    /// The HAPolicies in scope (empty when the CRD is not installed or they may not be read):
    /// each governed workload's row shows the mode its policy reports.
    pub policies: Vec<HAPolicy>,
    /// What the cluster offers for admission mode (`None`: could not be read).
    pub admission: Option<AdmissionSupport>,
    /// Karpenter's NodePools, as JSON (`None`: not served, or not readable).
    pub nodepools: Option<Vec<serde_json::Value>>,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub topology_key: String,
    /// The kinds behind a CRD the API server does not serve: none of them listed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kinds_not_served: Vec<WorkloadKind>,
    pub workloads: Vec<WorkloadRow>,
    /// What the nodes say of each zone of the topology key now (with NodePools, their zones
    /// too): Healthy, or Out and why. No history: a zone that takes pods again is Healthy here,
    /// where a policy would hold it Recovering for its recovery window.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<ZoneRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyReport>,
    /// Objects that could not be read (e.g. an invalid selector), skipped with the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One zone of the report's topology key, as its nodes say.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneRow {
    pub domain: String,
    pub health: ZoneHealth,
    pub reason: String,
    pub message: String,
}

/// Where one workload runs on the report's topology key.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRow {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    /// Desired replicas (`spec.replicas`).
    pub replicas: i32,
    pub ready: i32,
    /// The workload's running pods per domain, empty domains included (and, on the zone key,
    /// the zones NodePools may launch nodes in that have none the pods may use: 0).
    pub domains: BTreeMap<String, i32>,
    /// Expected zones (from NodePools) with no node the workload's pods may use.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_domains: Vec<String>,
    pub skew: i32,
    pub max_skew: i32,
    /// Whether skew is measured by the template's own constraint or the default one.
    pub measured_by: MeasuredBy,
    /// The topology keys of the template's `topologySpreadConstraints` (empty: none).
    pub spread_constraint_keys: Vec<String>,
    /// What losing the worst single domain costs; `None` without running pods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worst_domain_loss: Option<Loss>,
    /// How a policy in the cluster adds constraints to the workload's pods (Template or
    /// Admission, as the governing policy's status reports it); `None`: no policy adds any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub injection: Option<InjectionMode>,
}

impl WorkloadRow {
    /// Every running pod in one domain.
    pub fn is_single_point_of_failure(&self) -> bool {
        self.worst_domain_loss
            .as_ref()
            .is_some_and(|l| l.single_point_of_failure)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum MeasuredBy {
    /// The template's own constraint for the key.
    Template,
    /// No constraint in the template: `maxSkew: 1` over the workload's pod selector.
    Default,
}

/// The worst single-domain loss.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Loss {
    pub domain: String,
    pub pods_lost: i32,
    pub total: i32,
    /// `podsLost / total`, 1.0 for a single point of failure.
    pub fraction: f64,
    pub single_point_of_failure: bool,
}

/// What the operator would do under a policy, workload by workload.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyReport {
    pub name: String,
    pub namespace: String,
    pub strategy: RebalanceStrategy,
    pub paused: bool,
    pub inject_constraints: bool,
    /// The mode the policy would be in on this cluster, and why (`None`: not known, what the
    /// cluster offers could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub injection: Option<InjectionStatus>,
    /// The health of the policy's zones (carried on from its status when it was read from the
    /// cluster).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<ZoneStatus>,
    pub workloads: Vec<PolicyWorkload>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyWorkload {
    pub kind: WorkloadKind,
    pub name: String,
    /// How its pods would get the constraints (`None`: nothing is added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub injection: Option<InjectionMode>,
    /// The constraints skewguard would own in the template (Template mode) or add to each new
    /// pod (Admission mode).
    pub inject: Vec<InjectedConstraint>,
    /// Whether a preferred hostname anti-affinity would be owned too.
    pub host_anti_affinity: bool,
    /// Whether writing them changes the template (one rolling update: the first rebalance).
    pub changes_template: bool,
    /// Current skew per measured constraint.
    pub constraints: Vec<ConstraintSkew>,
    pub plan: PlanSummary,
    /// What the operator would decide now, the same decision step the controller takes.
    pub decision: DecisionSummary,
}

/// The decision step for one workload: its state and reason, and what it would write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionSummary {
    pub state: RebalanceState,
    pub reason: String,
    /// The writes the operator would make now (`evict web-1 (zone a -> c)`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InjectedConstraint {
    pub topology_key: String,
    pub max_skew: i32,
    pub when_unsatisfiable: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_domains: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConstraintSkew {
    pub topology_key: String,
    pub max_skew: i32,
    pub skew: i32,
    /// `Template` when the template has a constraint for the key, else `Policy`.
    pub source: ConstraintSource,
    /// Matching pods per eligible domain; omitted above [`MAX_REPORTED_DOMAINS`] domains (as in the status).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domains: Option<BTreeMap<String, i32>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ConstraintSource {
    Template,
    Policy,
}

/// The planner's answer now: moves, or why there are none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanSummary {
    /// The moves of the next step (at most `maxDisruptions`).
    pub moves: Vec<PlannedMove>,
    /// Moves the whole rebalance takes.
    pub moves_needed: usize,
    /// Why no move, or why the plan stops short of balance (`AlreadyBalanced`, `NoCapacity`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub obstacle: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedMove {
    pub pod: String,
    pub topology_key: String,
    pub from_domain: String,
    pub to_domain: String,
    pub from_node: String,
    pub to_node: String,
}

/// A policy read from a file, placed in the namespace it governs.
#[derive(Clone, Debug)]
pub struct PolicyInput {
    pub policy: HAPolicy,
    /// The time the decision is taken at.
    pub now: Timestamp,
}

impl PolicyInput {
    /// The policy governing `namespace` (its own, or the one the report resolved when the file
    /// names none), decided on now.
    pub fn new(policy: &HAPolicy, namespace: String) -> Self {
        let mut policy = policy.clone();
        policy.metadata.namespace = Some(namespace);
        Self {
            policy,
            now: Timestamp::now(),
        }
    }

    pub fn name(&self) -> &str {
        self.policy.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        self.policy
            .metadata
            .namespace
            .as_deref()
            .unwrap_or_default()
    }
}

/// Builds the report: one row per workload (sorted by namespace, kind, name), and the policy's
/// evaluation when one is given.
pub fn build_report(
    state: &ClusterState,
    topology_key: &str,
    policy: Option<&PolicyInput>,
) -> Report {
    let cluster = Cluster::new(
        state.nodes.iter().map(node_from).collect(),
        state.pods.iter().map(pod_from).collect(),
    );
    let with_nodes: BTreeSet<String> = (cluster.key_index(ZONE_KEY).domains.iter())
        .cloned()
        .collect();
    let pools: Option<Vec<ReadPool>> =
        (state.nodepools.as_ref()).map(|pools| pools.iter().map(pool_zones).collect());
    let expected = (pools.as_deref())
        .map(|pools| from_nodepools(pools, &with_nodes))
        .unwrap_or_default();
    let mut warnings = expected.warnings.clone();
    let mut workloads = workload_objects(state, &mut warnings);
    workloads
        .sort_by(|a, b| (a.namespace(), a.kind, a.name()).cmp(&(b.namespace(), b.kind, b.name())));
    let rows = workloads
        .iter()
        .filter_map(|w| {
            row(&cluster, w, topology_key, &expected)
                .map(|mut r| {
                    r.injection = reported_injection(&state.policies, w);
                    r
                })
                .map_err(|e| warnings.push(e.to_string()))
                .ok()
        })
        .collect();
    let nodepools = pools.as_deref().map(|pools| NodePools {
        pools,
        zones_with_nodes: &with_nodes,
    });
    let policy =
        policy.map(|p| evaluate_policy(&cluster, state, nodepools, &workloads, p, &mut warnings));
    let zones = if topology_key == HOSTNAME_KEY {
        Vec::new()
    } else {
        (observe_key(topology_key, expected.of(topology_key), cluster.node_set()).into_iter())
            .filter_map(|(domain, o)| {
                let o = o?;
                Some(ZoneRow {
                    domain,
                    health: if o.can_take_pods {
                        ZoneHealth::Healthy
                    } else {
                        ZoneHealth::Out
                    },
                    reason: o.reason.to_string(),
                    message: o.message,
                })
            })
            .collect()
    };
    Report {
        topology_key: topology_key.to_string(),
        kinds_not_served: (WorkloadKind::ALL.into_iter())
            .filter(|k| k.descriptor().crd.is_some() && !state.kinds_served.contains(k))
            .collect(),
        workloads: rows,
        zones,
        policy,
        warnings,
    }
}

/// The mode the workload's governing policy reports in its status entry.
fn reported_injection(policies: &[HAPolicy], w: &WorkloadObject) -> Option<InjectionMode> {
    let namespace = w.namespace();
    let governing = governing_policy(
        policies
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(namespace)),
        w,
    )?;
    policies
        .iter()
        .find(|p| {
            p.metadata.namespace.as_deref() == Some(namespace)
                && p.metadata.name.as_deref() == Some(governing.as_str())
        })?
        .status
        .as_ref()?
        .workloads
        .iter()
        .find(|e| e.kind == w.kind && e.name == w.name())?
        .injection
}

fn workload_objects(state: &ClusterState, warnings: &mut Vec<String>) -> Vec<WorkloadObject> {
    let read: Vec<_> = state
        .workloads
        .iter()
        .map(WorkloadObject::from_dynamic)
        .collect();
    // A Rollout's workloadRef names a Deployment of its namespace: its template is read there.
    let deployment = |namespace: &str, name: &str| {
        (read.iter().flatten())
            .find(|d| {
                d.kind == WorkloadKind::Deployment && d.namespace() == namespace && d.name() == name
            })
            .cloned()
    };
    let mut objects = (read.iter().cloned())
        .map(|w| {
            w.and_then(|w| {
                let namespace = w.namespace().to_string();
                w.with_referenced_template(|name| deployment(&namespace, name))
            })
        })
        .filter_map(|w| w.map_err(|e| warnings.push(e.to_string())).ok())
        .collect::<Vec<_>>();
    // A Rollout's template Deployment is reported through the Rollout only.
    let templates = crate::core::workload::referenced_templates(&objects);
    objects.retain(|w| !w.is_referenced_template(&templates));
    objects
}

fn row(
    cluster: &Cluster,
    w: &WorkloadObject,
    key: &str,
    expected: &Expected,
) -> Result<WorkloadRow, WorkloadError> {
    let template_constraints = w
        .template
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.clone())
        .unwrap_or_default();
    let (constraint, measured_by) =
        match template_constraints.iter().find(|c| c.topology_key == key) {
            Some(c) => (measured_from_template(c), MeasuredBy::Template),
            None => (
                SpreadConstraint::new(key, 1, w.pod_selector()?),
                MeasuredBy::Default,
            ),
        };
    let core = w.to_core(vec![constraint])?;
    let mut measurement = topology::measure(cluster, &core);
    if let (Some(m), Some(zones)) = (measurement.constraints.first_mut(), expected.of(key)) {
        let placement = &core.template.placement;
        m.expect(
            (zones.iter())
                .filter(|d| admits_domain(placement, key, d))
                .map(String::as_str),
        );
    }
    let measured = measurement.constraints.first();
    let missing_domains: Vec<String> = (measured.and_then(|m| m.expected.as_ref()))
        .map(|e| e.missing.clone())
        .unwrap_or_default();
    // Every eligible domain (empty ones too), then the workload's own pods wherever they run.
    let mut domains: BTreeMap<String, i32> = measured
        .map(|m| m.domains.iter().map(|(d, _)| (d.to_string(), 0)).collect())
        .unwrap_or_default();
    let own = pods_by_domain(cluster, &core, key);
    let loss = worst_domain_loss(&own).map(|l| Loss {
        single_point_of_failure: l.is_single_point_of_failure(),
        domain: l.domain,
        pods_lost: l.pods_lost,
        total: l.total,
        fraction: l.fraction,
    });
    domains.extend(own);
    domains.extend(missing_domains.iter().map(|d| (d.clone(), 0)));
    let mut spread_constraint_keys: Vec<String> = template_constraints
        .iter()
        .map(|c| c.topology_key.clone())
        .collect();
    spread_constraint_keys.sort();
    spread_constraint_keys.dedup();
    Ok(WorkloadRow {
        kind: w.kind,
        namespace: w.namespace().to_string(),
        name: w.name().to_string(),
        replicas: w.replicas.desired,
        ready: w.replicas.ready,
        domains,
        missing_domains,
        skew: measured.map_or(0, |m| m.effective_skew()),
        max_skew: measured.map_or(1, |m| m.max_skew),
        measured_by,
        spread_constraint_keys,
        worst_domain_loss: loss,
        injection: None,
    })
}

fn evaluate_policy(
    cluster: &Cluster,
    state: &ClusterState,
    nodepools: Option<NodePools<'_>>,
    workloads: &[WorkloadObject],
    policy: &PolicyInput,
    warnings: &mut Vec<String>,
) -> PolicyReport {
    let spec = &policy.policy.spec;
    // The controller's own policy phase, over the given policy alone (it governs what it
    // selects) and a pod cache taken as current.
    let phase = pipeline::prepare(pipeline::Gathered {
        policy: &policy.policy,
        policies: vec![&policy.policy],
        workloads: workloads.iter().map(Ok).collect(),
        budgets: state.budgets.iter().collect(),
        admission: state.admission.as_ref(),
        pods_current: true,
        nodepools,
        capacity_via: CapacityVia::PlaceholderPods,
        nodes: cluster.node_set(),
        now: policy.now,
    });
    warnings.extend(
        (phase.problems.iter())
            .map(|problem| format!("policy {}: {problem}, selects nothing", policy.name())),
    );
    let evaluated = (phase.workloads.iter())
        .filter_map(|selected| {
            policy_workload(cluster, &phase, selected, policy)
                .map_err(|message| warnings.push(message))
                .ok()
        })
        .collect();
    PolicyReport {
        name: policy.name().to_string(),
        namespace: policy.namespace().to_string(),
        strategy: spec.rebalance.strategy,
        paused: spec.paused,
        inject_constraints: spec.inject_constraints,
        injection: phase.injection.clone(),
        zones: phase.zones.zones.clone(),
        workloads: evaluated,
    }
}

/// The memory the report decides with: it has no history, so it takes the skew to have held for
/// the stabilization window and no action to have been taken yet (what the controller would do
/// if the skew persists).
fn assumed_memory(policy: &PolicyInput) -> WorkloadMemory {
    let held = jiff::SignedDuration::from_secs(policy.policy.spec.rebalance.stabilization_seconds);
    WorkloadMemory {
        decision: Memory {
            skewed_since: policy.now.checked_sub(held).ok(),
            ..Memory::default()
        },
        reported: None,
    }
}

/// One workload's row under the policy: the decision as the controller would take it (the
/// report itself writes nothing, and shows the step itself, not a wait for a rollout slot).
/// A workload the policy cannot measure is a warning, as in the controller's status.
fn policy_workload(
    cluster: &Cluster,
    phase: &PolicyPhase<'_>,
    selected: &Selected<'_>,
    policy: &PolicyInput,
) -> Result<PolicyWorkload, String> {
    let Subject::Readable { workload: w, .. } = &selected.subject else {
        return Err(format!(
            "{} {}: cannot be read",
            selected.key.kind, selected.key.name
        ));
    };
    let assessment = phase.assess(
        selected,
        cluster,
        &assumed_memory(policy),
        RolloutPermit::Granted,
        &Settings::default(),
        policy.now,
    );
    if assessment.decision.reason == reason::INVALID_WORKLOAD {
        return Err(assessment.notes.join("; "));
    }
    let in_template = (w.template.spec.as_ref())
        .and_then(|s| s.topology_spread_constraints.as_ref())
        .map_or(0, Vec::len);
    let constraints = (assessment.measurement.constraints.iter())
        .enumerate()
        .map(|(i, m)| constraint_skew(m, i < in_template))
        .collect();
    let plan = match &assessment.plan {
        Ok(plan) => PlanSummary {
            moves: plan
                .moves
                .iter()
                .map(|m| PlannedMove {
                    pod: m.pod.clone(),
                    topology_key: m.topology_key.clone(),
                    from_domain: m.from_domain.clone(),
                    to_domain: m.to_domain.clone(),
                    from_node: m.from_node.clone(),
                    to_node: m.to_node.clone(),
                })
                .collect(),
            moves_needed: plan.moves_needed,
            obstacle: plan.shortfall.map(|o| o.reason().to_string()),
        },
        Err(obstacle) => PlanSummary {
            moves: Vec::new(),
            moves_needed: 0,
            obstacle: Some(obstacle.reason().to_string()),
        },
    };
    let cost_writes = (assessment.writes.iter())
        .filter(|w| matches!(w, Write::DeletionCost { .. }))
        .count();
    let would = (assessment.writes.iter())
        .filter_map(|write| match write {
            Write::Inject { constraints, .. } => {
                Some(format!("inject {constraints} spread constraint(s)"))
            }
            Write::Evict(m) => Some(format!(
                "evict {} ({} {} -> {})",
                m.pod,
                key_name(&m.topology_key),
                m.from_domain,
                m.to_domain
            )),
            Write::Restart { .. } => Some("restart the workload".to_string()),
            Write::DeletionCost { .. } => None,
            Write::RequestCapacity { request, .. } => Some(format!(
                "ask the autoscaler for room for {} pod(s) in {} first",
                request.pods, request.domain
            )),
            Write::ReleaseCapacity(request) => Some(format!(
                "give back the room asked for in {}",
                request.domain
            )),
            Write::DeletePending(p) => Some(format!(
                "delete Pending pod {} ({} zone Out: its replacement is admitted with ScheduleAnyway)",
                p.pod,
                key_name(&p.topology_key)
            )),
        })
        .chain((cost_writes > 0).then(|| {
            format!("write the deletion cost of {cost_writes} pod(s) to keep scale-in balanced")
        }))
        .chain(assessment.notes.iter().cloned())
        .collect();
    let template = &assessment.template;
    Ok(PolicyWorkload {
        kind: w.kind,
        name: w.name().to_string(),
        injection: assessment.injection,
        inject: (template.injected.iter())
            .map(|c| InjectedConstraint {
                topology_key: c.topology_key.clone(),
                max_skew: c.max_skew,
                when_unsatisfiable: c.when_unsatisfiable.clone(),
                min_domains: c.min_domains,
            })
            .collect(),
        host_anti_affinity: template.anti_affinity,
        changes_template: template.changes_template
            && phase.injection.as_ref().map(|i| i.mode) == Some(InjectionMode::Template),
        constraints,
        plan,
        decision: DecisionSummary {
            state: assessment.decision.state,
            reason: assessment.decision.reason.to_string(),
            would,
        },
    })
}

fn constraint_skew(m: &ConstraintMeasure, from_template: bool) -> ConstraintSkew {
    ConstraintSkew {
        topology_key: m.topology_key.clone(),
        max_skew: m.max_skew,
        skew: m.skew,
        source: if from_template {
            ConstraintSource::Template
        } else {
            ConstraintSource::Policy
        },
        domains: (m.domains.len() <= MAX_REPORTED_DOMAINS).then(|| m.domains.to_map()),
    }
}
