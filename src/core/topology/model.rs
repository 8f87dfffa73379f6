//! Plain data the core reasons about: nodes, pods, spread constraints and workloads.
//!
//! These are deliberately not the Kubernetes API types: the controller converts what it watches into
//! them, and the tests build them by hand. Nothing here talks to a cluster.

use std::collections::BTreeMap;

use kube::core::{Selector, SelectorExt};

/// Labels of a node or a pod.
pub type Labels = BTreeMap<String, String>;

/// The label every node carries with its own name; spreading on it spreads across nodes.
pub const HOSTNAME_KEY: &str = "kubernetes.io/hostname";

/// The well-known zone label.
pub const ZONE_KEY: &str = "topology.kubernetes.io/zone";

/// Schedulable resources, in the units the scheduler compares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    pub pods: i64,
}

impl Resources {
    pub const fn new(cpu_millis: i64, memory_bytes: i64, pods: i64) -> Self {
        Self {
            cpu_millis,
            memory_bytes,
            pods,
        }
    }

    /// Whether `self` (what is free) leaves room for `need`.
    pub fn covers(&self, need: &Resources) -> bool {
        self.cpu_millis >= need.cpu_millis
            && self.memory_bytes >= need.memory_bytes
            && self.pods >= need.pods
    }

    /// Saturates at the bounds of i64: a pod requesting an absurd quantity (`1e400Ki` reads as
    /// i64::MAX) fills its node, it never wraps into free room (nor panics a debug build).
    pub fn plus(&self, other: &Resources) -> Resources {
        Resources::new(
            self.cpu_millis.saturating_add(other.cpu_millis),
            self.memory_bytes.saturating_add(other.memory_bytes),
            self.pods.saturating_add(other.pods),
        )
    }

    /// Saturates as [`Resources::plus`] does.
    pub fn minus(&self, other: &Resources) -> Resources {
        Resources::new(
            self.cpu_millis.saturating_sub(other.cpu_millis),
            self.memory_bytes.saturating_sub(other.memory_bytes),
            self.pods.saturating_sub(other.pods),
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    /// Taints the scheduler's filters (and so spread counting with `nodeTaintsPolicy: Honor`) obey.
    pub fn repels(self) -> bool {
        matches!(self, TaintEffect::NoSchedule | TaintEffect::NoExecute)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: TaintEffect,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TolerationOperator {
    #[default]
    Equal,
    Exists,
}

/// A pod's toleration; `key: None` with `Exists` tolerates every taint, `effect: None` every effect.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Toleration {
    pub key: Option<String>,
    pub operator: TolerationOperator,
    pub value: String,
    pub effect: Option<TaintEffect>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeSelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeSelectorRequirement {
    pub key: String,
    pub operator: NodeSelectorOperator,
    pub values: Vec<String>,
}

/// One term of required node affinity: every expression must hold (`matchFields` only knows
/// `metadata.name`). Terms are ORed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NodeSelectorTerm {
    pub match_expressions: Vec<NodeSelectorRequirement>,
    pub match_fields: Vec<NodeSelectorRequirement>,
}

/// Where a pod may run: its node selector, required node affinity and tolerations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Placement {
    pub node_selector: Labels,
    /// `requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms`; `None` = no affinity.
    pub required_affinity: Option<Vec<NodeSelectorTerm>>,
    pub tolerations: Vec<Toleration>,
}

impl Placement {
    /// Pods pinned by selector or affinity are the last ones worth moving.
    pub fn is_pinned(&self) -> bool {
        !self.node_selector.is_empty() || self.required_affinity.is_some()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub labels: Labels,
    pub taints: Vec<Taint>,
    /// Cordoned (`spec.unschedulable`).
    pub unschedulable: bool,
    /// The `Ready` condition is True.
    pub ready: bool,
    pub allocatable: Resources,
    /// An autoscaler is taking the node away (Karpenter's `karpenter.sh/disrupted` taint, or a
    /// deletion timestamp): neither a source nor a target of a move.
    pub disrupting: bool,
    /// Not a node yet: the room an autoscaler would add in its domain (see
    /// `core::capacity`). A move toward it first asks for that room.
    pub provisional: bool,
}

/// The workload a pod's controller owner chain leads to: a StatefulSet that owns it, or the
/// Deployment or Rollout that owns its ReplicaSet (see `core::pod_owner`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PodOwner {
    pub kind: crate::api::WorkloadKind,
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pod {
    pub name: String,
    /// Tells a pod from its replacement when both carry one name (StatefulSets).
    pub uid: String,
    /// `metadata.resourceVersion` as the snapshot saw it (empty when unknown): an eviction's
    /// precondition, so a pod changed since the decision is not evicted on it.
    pub resource_version: String,
    pub namespace: String,
    pub labels: Labels,
    /// `spec.nodeName`: set once the pod is bound.
    pub node_name: Option<String>,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
    /// Phase Succeeded or Failed.
    pub finished: bool,
    pub ready: bool,
    pub placement: Placement,
    /// Sum of the containers' requests (`pods` is 1 for a pod).
    pub requests: Resources,
    pub priority: i32,
    /// Mounts a PersistentVolumeClaim: its volume is zonal, so the pod cannot change zone.
    pub has_volume_claims: bool,
    /// Its owner opted it out of eviction (see [`OPT_OUT_ANNOTATIONS`]): it counts for skew, but
    /// is never moved.
    pub opted_out: bool,
    /// The `controller.kubernetes.io/pod-deletion-cost` annotation, when set to an integer: what
    /// the ReplicaSet controller ranks scale-in by (unset or invalid counts as 0 there).
    pub deletion_cost: Option<i32>,
    /// skewguard's field manager owns that annotation (it wrote it): only such an annotation is
    /// removed when `scaleIn.deletionCost` is turned off, never one set by someone else.
    pub deletion_cost_ours: bool,
    /// `metadata.creationTimestamp` in Unix seconds (0 when unknown): a stable tie-break, so the
    /// scale-in order of equal pods does not shuffle between reconciles.
    pub created: i64,
    /// The topology keys of the pod's own `topologySpreadConstraints`, as it was created (with
    /// what admission added): whether new pods carry what admission mode promised.
    pub spread_keys: Vec<String>,
    /// The topology keys of the pod's own DoNotSchedule constraints.
    pub hard_spread_keys: Vec<String>,
    /// The pod has a preferred pod anti-affinity term.
    pub preferred_anti_affinity: bool,
    /// Unbound, and the scheduler said why (its PodScheduled condition is False).
    pub unschedulable: Option<Unschedulable>,
    /// One of skewguard's placeholder pods (`core::capacity`): it holds room for a move and is
    /// deleted before that move, so its requests count as free room.
    pub placeholder: bool,
    /// The workload its controller owner chain leads to (`None`: none that skewguard governs).
    pub owner: Option<PodOwner>,
    /// What snapshots derive from the pod's labels and node, made once (a clone starts empty).
    pub memo: super::pod_memo::PodMemo,
}

/// Why the scheduler left a pod Pending: its `PodScheduled` condition, False.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unschedulable {
    /// Reason `Unschedulable`, and some nodes were turned down only by a topology spread
    /// constraint (the scheduler's message counts "N node(s) didn't match pod topology spread
    /// constraints": those nodes passed every filter before it, taints, affinity and room
    /// included).
    pub by_spread: bool,
    /// When the scheduler first said so (Unix seconds; 0 when unknown).
    pub since: i64,
}

/// The pod annotations that opt a pod out of eviction, with the value that does: Karpenter's and
/// the cluster autoscaler's (which autoscaling users already set), and skewguard's own.
pub const OPT_OUT_ANNOTATIONS: [(&str, &str); 3] = [
    ("karpenter.sh/do-not-disrupt", "true"),
    ("cluster-autoscaler.kubernetes.io/safe-to-evict", "false"),
    ("skewguard.dev/do-not-evict", "true"),
];

/// Whether a pod with these annotations opted out of eviction.
pub fn opts_out(annotations: &Labels) -> bool {
    OPT_OUT_ANNOTATIONS
        .iter()
        .any(|(key, value)| annotations.get(*key).is_some_and(|v| v == value))
}

impl Pod {
    /// Pods the scheduler counts: bound, not being deleted, not finished.
    pub fn is_counted(&self) -> bool {
        self.node_name.is_some() && !self.terminating && !self.finished
    }

    /// Pods whose requests the scheduler charges to their node: bound and not finished. A
    /// terminating pod still holds its requests until it is gone, so an eviction frees nothing
    /// until then.
    pub fn holds_resources(&self) -> bool {
        self.node_name.is_some() && !self.finished && !self.placeholder
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhenUnsatisfiable {
    #[default]
    ScheduleAnyway,
    DoNotSchedule,
}

/// `nodeAffinityPolicy` / `nodeTaintsPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InclusionPolicy {
    Honor,
    Ignore,
}

/// One topology spread constraint, as it stands in a pod template (or as a policy would inject it).
#[derive(Clone, Debug, PartialEq)]
pub struct SpreadConstraint {
    pub topology_key: String,
    pub max_skew: i32,
    pub when_unsatisfiable: WhenUnsatisfiable,
    pub min_domains: Option<i32>,
    /// `None` (no `labelSelector`) matches no pod at all, as in the scheduler.
    pub selector: Option<Selector>,
    pub match_label_keys: Vec<String>,
    pub node_affinity_policy: InclusionPolicy,
    pub node_taints_policy: InclusionPolicy,
}

impl SpreadConstraint {
    /// A constraint with the scheduler's defaults (`nodeAffinityPolicy: Honor`,
    /// `nodeTaintsPolicy: Ignore`, ScheduleAnyway).
    pub fn new(topology_key: &str, max_skew: i32, selector: Selector) -> Self {
        Self {
            topology_key: topology_key.to_string(),
            max_skew,
            when_unsatisfiable: WhenUnsatisfiable::ScheduleAnyway,
            min_domains: None,
            selector: Some(selector),
            match_label_keys: Vec::new(),
            node_affinity_policy: InclusionPolicy::Honor,
            node_taints_policy: InclusionPolicy::Ignore,
        }
    }

    /// DoNotSchedule: the scheduler filters nodes by it (ScheduleAnyway only scores them).
    pub fn is_hard(&self) -> bool {
        self.when_unsatisfiable == WhenUnsatisfiable::DoNotSchedule
    }

    /// `minDomains` only counts with DoNotSchedule.
    pub fn effective_min_domains(&self) -> Option<usize> {
        match self.when_unsatisfiable {
            WhenUnsatisfiable::DoNotSchedule => self.min_domains.map(|m| m.max(0) as usize),
            WhenUnsatisfiable::ScheduleAnyway => None,
        }
    }
}

/// The pod a workload would create next: what the scheduler would be placing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodTemplate {
    pub labels: Labels,
    pub placement: Placement,
    pub requests: Resources,
}

/// A workload as the core sees it: which pods are its own, what its next pod looks like, and the
/// spread constraints it is measured by.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub namespace: String,
    pub name: String,
    /// The workload's own pod selector (`spec.selector`): the pods it may move, of those it owns.
    pub pod_selector: Selector,
    /// Who its pods' owner chain must lead to for them to be its own: a selector may overlap
    /// another workload's pods (the controllers go by owner references), and those are never
    /// moved, annotated or reported as this one's. `None` (hand-built workloads in tests): every
    /// pod the selector matches is its own.
    pub owner: Option<PodOwner>,
    pub template: PodTemplate,
    pub constraints: Vec<SpreadConstraint>,
}

impl Workload {
    /// Whether `pod` is this workload's own: its selector matches it and (when the workload
    /// knows who it is) its owner chain leads here. Measuring counts what a constraint's selector
    /// matches, owned or not, as the scheduler does; only own pods are acted on.
    pub fn owns(&self, pod: &Pod) -> bool {
        pod.namespace == self.namespace
            && self.pod_selector.matches(&pod.labels)
            && (self.owner.as_ref()).is_none_or(|o| pod.owner.as_ref() == Some(o))
    }
}
