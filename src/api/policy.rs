//! The `HAPolicy` resource: which workloads of a namespace to keep spread, and how.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::injection::Injection;
use super::rebalance::RebalanceSpec;
use super::scale_in::ScaleInSpec;
use super::spread::SpreadEntry;
use super::status::HAPolicyStatus;
use super::zones::{ExpectedDomains, ZoneHealthSpec};

/// Declares, once per namespace, how the selected workloads must be spread across topology domains.
///
/// A policy only ever governs workloads in its own namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "skewguard.dev",
    version = "v1alpha1",
    kind = "HAPolicy",
    plural = "hapolicies",
    shortname = "hap",
    namespaced,
    status = "HAPolicyStatus",
    derive = "PartialEq",
    doc = "HAPolicy keeps the selected workloads of its namespace spread across zones and nodes.",
    // Printer columns as JSON: the `printcolumn(type_ = ...)` form repeats attribute values,
    // which clippy's duplicated_attributes lint rejects.
    printcolumn = r#"{"name":"Workloads","type":"integer","jsonPath":".status.workloadCount"}"#,
    printcolumn = r#"{"name":"Unbalanced","type":"integer","jsonPath":".status.unbalancedCount"}"#,
    printcolumn = r#"{"name":"MaxSkew","type":"integer","jsonPath":".status.maxObservedSkew"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Balanced","type":"string","jsonPath":".status.conditions[?(@.type==\"Balanced\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!has(self.injection) || self.injection != 'Template' || !self.spread.exists(s, s.whenUnsatisfiable == 'Adaptive')"
).message("whenUnsatisfiable: Adaptive needs admission mode (injection Admission or Auto): switching a template's constraint would roll the workload out"))]
pub struct HAPolicySpec {
    /// Selects the WORKLOAD objects (by their metadata.labels, not their pods') this policy governs.
    pub selector: LabelSelector,

    /// The workload kinds considered. Rollout (argoproj.io/v1alpha1) is used only where that CRD is installed.
    #[serde(default = "WorkloadKind::all")]
    #[schemars(length(max = 3), extend("x-kubernetes-list-type" = "set"))]
    pub workload_kinds: Vec<WorkloadKind>,

    /// The spread to keep: one entry per (topologyKey, whenUnsatisfiable), like topologySpreadConstraints.
    #[schemars(length(min = 1, max = 8))]
    #[x_kube(
        validation = Rule::new(
            "self.all(a, self.exists_one(b, b.topologyKey == a.topologyKey && b.whenUnsatisfiable == a.whenUnsatisfiable))"
        ).message("spread entries must have unique (topologyKey, whenUnsatisfiable) pairs"),
        validation = Rule::new(
            "self.all(a, a.whenUnsatisfiable != 'Adaptive' || self.exists_one(b, b.topologyKey == a.topologyKey))"
        ).message("an Adaptive entry must be the only entry for its topologyKey (it is published as DoNotSchedule or ScheduleAnyway)"),
    )]
    pub spread: Vec<SpreadEntry>,

    /// The domains the workloads must cover, per topology key: a domain with no node (a zone the
    /// autoscaler emptied) counts as a domain with 0 pods. Without an entry for the zone key,
    /// the zones Karpenter NodePools may launch nodes in are expected (where NodePools are served
    /// and say); else only domains that have nodes count, as kube-scheduler counts them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(b, b.topologyKey == a.topologyKey))")
        .message("expectedDomains must have one entry per topologyKey"))]
    pub expected_domains: Vec<ExpectedDomains>,

    /// Whether to add a preferred pod anti-affinity on kubernetes.io/hostname, as teams wrote by hand.
    #[serde(default)]
    pub host_anti_affinity: HostAntiAffinity,

    /// Add the policy's spread to pods that have no constraint for a topology key.
    #[serde(default = "default_true")]
    pub inject_constraints: bool,

    /// How the constraints reach the pods: Template (written into the pod templates, one rollout
    /// per workload), Admission (added to each pod as it is created by skewguard's
    /// MutatingAdmissionPolicy, Kubernetes 1.36+: nothing rolls out, nothing drifts), or Auto
    /// (default: Admission where that policy is served and installed, else Template).
    /// status.injection says which mode is in force and why.
    #[serde(default)]
    pub injection: Injection,

    /// How skewed pods are moved back into balance.
    #[serde(default)]
    #[schemars(extend("default" = {}))]
    pub rebalance: RebalanceSpec,

    /// Scale-in that stays balanced: with deletionCost (default true) the operator keeps each
    /// Ready pod's controller.kubernetes.io/pod-deletion-cost annotation so the ReplicaSet
    /// controller removes pods from the fullest zone (then node) first. Deployments and Rollouts
    /// only; StatefulSets scale in by ordinal, so nothing is written for them.
    #[serde(default)]
    #[schemars(extend("default" = {}))]
    pub scale_in: ScaleInSpec,

    /// How the health of the spread keys' zones is judged (status.zones), which Adaptive entries
    /// follow.
    #[serde(default)]
    #[schemars(extend("default" = {}))]
    pub zone_health: ZoneHealthSpec,

    /// Measure, report and export metrics, but write nothing to workloads or pods.
    #[serde(default)]
    pub paused: bool,
}

fn default_true() -> bool {
    true
}

/// A kind of workload whose pod template the operator can read, amend and restart.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    Rollout,
}

impl WorkloadKind {
    /// Every supported kind, in declaration order. A test holds it to the enum itself (its
    /// schema lists every variant), and each kind's descriptor is an exhaustive match
    /// (`WorkloadKind::descriptor`), so a new kind cannot be half added.
    pub const ALL: [WorkloadKind; 3] = [
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::Rollout,
    ];

    /// Every supported kind: the default of `workloadKinds`.
    pub fn all() -> Vec<WorkloadKind> {
        Self::ALL.to_vec()
    }
}

/// Whether the operator adds a preferred hostname anti-affinity (weight 100) to the pod templates.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HostAntiAffinity {
    #[default]
    None,
    Preferred,
}
