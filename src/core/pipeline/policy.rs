//! One policy's reconcile around its workloads' pipelines, as pure functions: [`prepare`] turns
//! what the shell gathered for the policy into each selected workload with what is known of it
//! (an unreadable workload is a value too), [`PolicyPhase::assess`] runs one workload's `assess`,
//! and [`PolicyPhase::finish`] turns the workloads' conclusions into the policy's status, its
//! metrics snapshot and the workloads to keep remembering.
//!
//! The shell then reads as: gather -> `prepare` -> per workload {permit, `assess`, carry out,
//! `conclude`, apply} -> `finish` -> write the status. `skewguard report --policy` and the
//! reconcile bench run the same phase.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::Selector;

use crate::api::{
    CapacityVia, HAPolicy, HAPolicyStatus, InjectionMode, InjectionStatus, WhenUnsatisfiable,
    WorkloadKind,
};
use crate::core::budgets::budget_exhausted;
use crate::core::errors::ErrorCategory;
use crate::core::expected::{Expected, ReadPool, expected_domains};
use crate::core::injection::{AdmissionSupport, choose_mode};
use crate::core::ownership::{Selection, governing};
use crate::core::policy_status::{
    PolicyInjection, PolicyProblems, WorkloadOutcome, key_name, policy_status,
};
use crate::core::rollout_slots::RolloutPermit;
use crate::core::topology::{Cluster, NodeSet};
use crate::core::workload::{Identified, Unreadable, WorkloadObject};
use crate::core::zone_health::{Zones, zone_health};

use super::notices::zone_notices;
use super::workload_metrics::ZoneMetrics;
use super::{Assessment, Conclusion, Facts, Notice, Settings, WorkloadMemory, WorkloadMetrics};

/// Identifies a workload, as seen by one policy, across reconciles (a policy that loses a
/// conflict keeps its own memory, so the two never overwrite each other's).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadKey {
    pub namespace: String,
    pub policy: String,
    pub kind: WorkloadKind,
    pub name: String,
}

impl WorkloadKey {
    pub fn new(namespace: &str, policy: &str, kind: WorkloadKind, name: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            policy: policy.to_string(),
            kind,
            name: name.to_string(),
        }
    }
}

/// What the shell gathered for one policy, from its caches.
#[derive(Clone, Debug)]
pub struct Gathered<'a> {
    pub policy: &'a HAPolicy,
    /// The namespace's policies (this one included): the oldest that selects a workload governs it.
    pub policies: Vec<&'a HAPolicy>,
    /// The namespace's workloads of the policy's kinds, each read or with why it cannot be.
    pub workloads: Vec<Result<&'a WorkloadObject, &'a Unreadable>>,
    /// The namespace's PodDisruptionBudgets.
    pub budgets: Vec<&'a PodDisruptionBudget>,
    /// What the cluster offers for admission mode (`None`: not known yet).
    pub admission: Option<&'a AdmissionSupport>,
    /// The pod cache has been current since the last relist or watch gap (see [`Facts`]).
    pub pods_current: bool,
    /// The Karpenter NodePools as read, and the zones that have nodes (`None`: the NodePool
    /// API is not served).
    pub nodepools: Option<NodePools<'a>>,
    /// How room is asked of the autoscaler on this cluster.
    pub capacity_via: CapacityVia,
    /// The cluster's nodes: what the zones' health is judged by.
    pub nodes: &'a NodeSet,
    pub now: Timestamp,
}

/// The NodePools and what they are read against.
#[derive(Clone, Copy, Debug)]
pub struct NodePools<'a> {
    pub pools: &'a [ReadPool],
    pub zones_with_nodes: &'a BTreeSet<String>,
}

/// One workload the policy selects.
#[derive(Clone, Debug)]
pub struct Selected<'a> {
    pub key: WorkloadKey,
    pub subject: Subject<'a>,
}

/// What is known of a selected workload before it is assessed.
#[derive(Clone, Debug)]
pub enum Subject<'a> {
    Readable {
        workload: &'a WorkloadObject,
        /// This policy governs it (no older policy selects it too).
        governing: bool,
        /// A PodDisruptionBudget over its pods has no room now.
        budget_exhausted: bool,
    },
    /// Its spec cannot be read: reported on its own, nothing written.
    Unreadable { message: String },
}

/// The policy's reconcile once gathered: the workloads it selects and what holds for all of them.
#[derive(Clone, Debug)]
pub struct PolicyPhase<'a> {
    pub policy: &'a HAPolicy,
    /// How the policy's constraints reach the pods (`None`: not known yet).
    pub injection: Option<InjectionStatus>,
    pub admission: Option<&'a AdmissionSupport>,
    /// Why the policy itself cannot be used as it is (the Ready condition says so).
    pub problems: Vec<String>,
    /// Failures to count for the policy itself.
    pub errors: Vec<ErrorCategory>,
    /// Readable workloads by kind and name, then the unreadable ones.
    pub workloads: Vec<Selected<'a>>,
    pub pods_current: bool,
    /// The domains the workloads must cover.
    pub expected: Expected,
    pub capacity_via: CapacityVia,
    /// The health of the policy's zones, and how it changed.
    pub zones: Zones,
    /// Why the policy's Adaptive entries cannot be followed (template mode), if they cannot.
    pub adaptive_unavailable: Option<String>,
}

/// What the policy's reconcile ends with.
#[derive(Clone, Debug)]
pub struct Finished {
    pub status: HAPolicyStatus,
    /// What Prometheus is told, per workload.
    pub metrics: Vec<WorkloadMetrics>,
    /// The workloads to keep remembering (the others are no longer selected).
    pub keep: Vec<WorkloadKey>,
    /// When to look again even if nothing changes (`None`: no workload asked).
    pub requeue_after: Option<Duration>,
    /// The policy's own Events (its zones' health changed).
    pub notices: Vec<Notice>,
    /// What Prometheus is told about the policy's zones.
    pub zones: Vec<ZoneMetrics>,
}

/// Selects the policy's workloads and works out what holds for each before it is assessed.
pub fn prepare(gathered: Gathered<'_>) -> PolicyPhase<'_> {
    let Gathered {
        policy,
        policies,
        workloads,
        budgets,
        admission,
        pods_current,
        nodepools,
        capacity_via,
        nodes,
        now,
    } = gathered;
    let (namespace, name) = (
        policy.metadata.namespace.as_deref().unwrap_or_default(),
        policy.metadata.name.as_deref().unwrap_or_default(),
    );
    let (mut problems, mut errors) = (Vec::new(), Vec::new());
    if let Err(e) = Selector::try_from(policy.spec.selector.clone()) {
        errors.push(ErrorCategory::InvalidPolicy);
        problems.push(format!("invalid selector: {e}"));
    }
    let injection = choose_mode(
        policy.spec.injection,
        admission,
        policy.status.as_ref().and_then(|s| s.injection.as_ref()),
    );
    let key = |w: &dyn Identified| {
        let meta = w.meta();
        WorkloadKey::new(
            namespace,
            name,
            w.kind(),
            meta.name.as_deref().unwrap_or_default(),
        )
    };
    let (mut readable, mut unreadable) = (Vec::new(), Vec::new());
    let selection = Selection::of(policy);
    for w in workloads {
        match w {
            Ok(w) if selection.selects(w) => readable.push(w),
            Err(u) if selection.selects(u) => unreadable.push(Selected {
                key: key(u),
                subject: Subject::Unreadable {
                    message: u.error.to_string(),
                },
            }),
            _ => {}
        }
    }
    readable.sort_by(|a, b| (a.kind, a.name()).cmp(&(b.kind, b.name())));
    let selections: Vec<Selection> = policies.iter().map(|p| Selection::of(p)).collect();
    let selected = readable.into_iter().map(|w| Selected {
        key: key(w),
        subject: Subject::Readable {
            workload: w,
            governing: governing(&selections, w)
                .is_some_and(|p| p.metadata.name.as_deref().unwrap_or_default() == name),
            budget_exhausted: budget_exhausted(
                budgets.iter().copied(),
                w.namespace(),
                w.template_labels(),
            ),
        },
    });
    let expected = expected_domains(
        &policy.spec,
        nodepools.map(|n| (n.pools, n.zones_with_nodes)),
    );
    let previous_zones = policy.status.as_ref().map_or(&[][..], |s| &s.zones[..]);
    let zones = zone_health(&policy.spec, &expected, nodes, previous_zones, now);
    let adaptive: Vec<&str> = (policy.spec.spread.iter())
        .filter(|s| s.when_unsatisfiable == WhenUnsatisfiable::Adaptive)
        .map(|s| key_name(&s.topology_key))
        .collect();
    let adaptive_unavailable = match injection.as_ref() {
        Some(i) if !adaptive.is_empty() && i.mode == InjectionMode::Template => Some(format!(
            "whenUnsatisfiable: Adaptive ({}) needs admission mode, and the policy is in template \
             mode ({}: {}): nothing is added for {} (switching a template's constraint would roll \
             the workload out); it is measured as DoNotSchedule",
            adaptive.join(", "),
            i.reason,
            i.message,
            if adaptive.len() == 1 {
                "that key"
            } else {
                "those keys"
            },
        )),
        _ => None,
    };
    PolicyPhase {
        policy,
        injection,
        admission,
        problems,
        errors,
        workloads: selected.chain(unreadable).collect(),
        pods_current,
        expected,
        capacity_via,
        zones,
        adaptive_unavailable,
    }
}

impl PolicyPhase<'_> {
    /// What the policy's status remembers of a workload: what the last leader wrote, read by a
    /// new process (or a new leader) before its first write.
    pub fn restored_memory(&self, key: &WorkloadKey) -> WorkloadMemory {
        (self.policy.status.iter())
            .flat_map(|s| &s.workloads)
            .find(|w| w.kind == key.kind && w.name == key.name)
            .map(WorkloadMemory::restored)
            .unwrap_or_default()
    }

    /// Assesses one selected workload (an unreadable one is blocked with its reason).
    pub fn assess(
        &self,
        selected: &Selected<'_>,
        cluster: &Cluster,
        memory: &WorkloadMemory,
        rollout: RolloutPermit,
        settings: &Settings,
        now: Timestamp,
    ) -> Assessment {
        match &selected.subject {
            Subject::Readable {
                workload,
                governing,
                budget_exhausted,
            } => super::assess(
                self.policy,
                workload,
                cluster,
                memory,
                &Facts {
                    governing: *governing,
                    budget_exhausted: *budget_exhausted,
                    rollout,
                    injection: self.injection.as_ref().map(|i| i.mode),
                    pods_current: self.pods_current,
                    expected: &self.expected,
                    capacity_via: self.capacity_via,
                    zones: &self.zones,
                },
                settings,
                now,
            ),
            Subject::Unreadable { message } => super::unreadable(
                selected.key.kind,
                &selected.key.name,
                memory,
                message.clone(),
            ),
        }
    }

    /// The policy's status, metrics snapshot and what to keep, from its workloads' conclusions
    /// (in the order of [`PolicyPhase::workloads`]).
    pub fn finish(&self, conclusions: Vec<Conclusion>, now: Timestamp) -> Finished {
        let requeue_after = (conclusions.iter().filter_map(|c| c.requeue_after))
            .chain(self.zones.next_change)
            .min();
        let outcomes: Vec<WorkloadOutcome> = conclusions.into_iter().map(|c| c.outcome).collect();
        let mut status = policy_status(
            self.policy.status.as_ref(),
            self.policy.metadata.generation,
            &outcomes,
            &PolicyProblems {
                invalid: &self.problems,
                adaptive_unavailable: self.adaptive_unavailable.as_deref(),
            },
            &PolicyInjection {
                status: self.injection.as_ref(),
                support: self.admission,
            },
            &self.zones.zones,
            now,
        );
        status.expected_domains = self.expected.keys.clone();
        status.warnings = self.expected.warnings.clone();
        status.zones = self.zones.zones.clone();
        Finished {
            status,
            metrics: outcomes.iter().map(WorkloadMetrics::from).collect(),
            keep: self.workloads.iter().map(|w| w.key.clone()).collect(),
            requeue_after,
            notices: zone_notices(&self.policy.spec, &self.zones),
            zones: self.zones.zones.iter().map(ZoneMetrics::from).collect(),
        }
    }
}
