//! What the operator reports on a policy: per-workload skew, zone-loss exposure and rebalance state.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::injection::{AdmissionParameters, InjectionMode, InjectionStatus};
use super::policy::WorkloadKind;
use super::zones::{CapacityRequest, ExpectedDomainsStatus, ZoneStatus};

/// The observed state of a policy; the printer columns read its counters and conditions.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HAPolicyStatus {
    /// The spec generation this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, Balanced and Rebalancing, keyed by type.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// How many workloads this policy governs.
    #[serde(default)]
    pub workload_count: i32,

    /// How many of them break at least one constraint.
    #[serde(default)]
    pub unbalanced_count: i32,

    /// The largest skew measured over all workloads and constraints.
    #[serde(default)]
    pub max_observed_skew: i32,

    /// One entry per governed workload (and per workload lost to an older policy, state Blocked/Conflict).
    #[serde(default)]
    pub workloads: Vec<WorkloadStatus>,

    /// How the constraints reach the pods (Template or Admission), and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injection: Option<InjectionStatus>,

    /// What skewguard's MutatingAdmissionPolicy reads (Admission mode only): per governed
    /// workload, how its pods are recognised and what is added to them at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<AdmissionParameters>,

    /// The domains the workloads must cover, per topology key, and where they come from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_domains: Vec<ExpectedDomainsStatus>,

    /// The health of each zone of the spread keys (kubernetes.io/hostname aside): the expected
    /// domains and those that have nodes. Kept across restarts: a Recovering zone turns Healthy
    /// once it has stayed so for `zoneHealth.recoveryWindowSeconds`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<ZoneStatus>,

    /// What the operator could not use as it is, without stopping (a malformed NodePool).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The measured spread and rebalance state of one workload.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    pub kind: WorkloadKind,
    pub name: String,
    pub replicas: i32,
    /// True when every constraint's skew is within its maxSkew.
    pub balanced: bool,
    #[serde(default)]
    pub constraints: Vec<ConstraintStatus>,
    /// What losing the worst single domain of the first constraint costs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_loss: Option<ZoneLoss>,
    #[serde(default)]
    pub rebalance: RebalanceStatus,
    /// How this workload's pods get the constraints: Template or Admission (absent when nothing
    /// is added: injectConstraints false, or another policy governs the workload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injection: Option<InjectionMode>,
    /// Whether a scale-in keeps the spread (`spec.scaleIn.deletionCost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_in: Option<ScaleInStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// How the workload's scale-in order stands.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleInStatus {
    /// Kept: every Ready pod carries the pod-deletion-cost that makes the ReplicaSet controller
    /// remove pods from the fullest domains first. Updating: `pending` pods still need theirs.
    /// ByOrdinal: a StatefulSet, which scales in from the highest ordinal; nothing is written.
    /// Off: `scaleIn.deletionCost` is false.
    pub order: ScaleInOrder,
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub pending: i32,
}

fn is_zero_i32(n: &i32) -> bool {
    *n == 0
}

/// Kept, Updating, ByOrdinal or Off (see [`ScaleInStatus`]).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleInOrder {
    Kept,
    Updating,
    ByOrdinal,
    Off,
}

/// The skew measured for one topology key, with the constraint really in force for it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConstraintStatus {
    pub topology_key: String,
    pub max_skew: i32,
    /// As kube-scheduler counts it: over the domains that have nodes the pods may use.
    pub skew: i32,
    /// Over the expected domains too (those without such a node count 0): present when the key
    /// has expected domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_skew: Option<i32>,
    /// Expected domains with no node the pods may use (each counted with 0 pods).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_domains: Vec<String>,
    /// Matching pods per domain (missing ones included); omitted when the key has more than 16
    /// domains, to bound status size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<BTreeMap<String, i32>>,
}

/// The cost of losing one domain: 1.0 means the workload has a single point of failure.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZoneLoss {
    pub domain: String,
    pub pods_lost: i32,
    pub fraction: f64,
}

/// Where a workload's rebalancing stands, and why.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceStatus {
    pub state: RebalanceState,
    /// Why the workload is in this state, e.g. Stabilizing, or what Blocked it (PodDisruptionBudget, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_action_time: Option<Time>,
    /// Disruptions made for this workload (kept across operator restarts).
    #[serde(default)]
    pub actions: i64,
    /// What the operator remembers about the workload's rebalancing, so that a restarted
    /// operator or a new leader carries on where the last one was: no action inside a cooldown it
    /// started, a back-off continued, evictions in flight still judged by pod UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<RebalanceMemory>,
}

/// The decision memory of one workload, as persisted in the policy's status.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceMemory {
    /// Since when the skew has exceeded maxSkew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skewed_since: Option<Time>,
    /// A rebalance episode is under way: its steps follow each other without cooldown.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub episode: bool,
    /// Evictions whose replacements are not judged yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_flight: Vec<InFlightEviction>,
    /// Failed moves since the last successful one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_moves: u32,
    /// The current back-off, doubling after repeated ineffective moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_until: Option<Time>,
    /// A PodDisruptionBudget refused an eviction; the next try waits until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_blocked_until: Option<Time>,
    /// The workload is rolling out because skewguard changed its template (constraint injection or
    /// a restart), up to this generation; it holds one of `--max-concurrent-rollouts` until done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_started: Option<Time>,
    /// That rollout did not complete in time: its slot was given back, and the workload is Blocked
    /// (reason RolloutStuck) until it settles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_stuck_since: Option<Time>,
    /// The room asked of the autoscaler for the next move, until that move is judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityRequest>,
    /// A request timed out: none is made again before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_blocked_until: Option<Time>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// An eviction whose replacement has not been judged yet.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct InFlightEviction {
    pub pod: String,
    /// Tells the evicted pod from its replacement (a StatefulSet's keeps the name).
    pub pod_uid: String,
    pub topology_key: String,
    /// The domain the replacement was expected in (the scheduler may choose another).
    pub to_domain: String,
    pub at: Time,
    /// The domain the pod left, and how many pods it held then.
    pub from_domain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_count_before: Option<i32>,
    /// Each constraint's skew before the eviction, and the workload's distance from balance
    /// then (the fewest moves to balance): the move is judged by how they changed.
    #[serde(default)]
    pub skews_before: Vec<ConstraintSkew>,
    #[serde(default)]
    pub distance_before: i64,
}

/// One constraint's skew, by its topology key.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConstraintSkew {
    pub topology_key: String,
    pub skew: i32,
}

/// Idle, Waiting (stabilizing), Queued (a template write waits for one of
/// `--max-concurrent-rollouts`), Provisioning (the autoscaler was asked for room in the target
/// domain; the move waits for it), Evicting, Restarting, BackingOff, Blocked (the reason says
/// why), or Degraded (within maxSkew, but a zone of its keys is Out: reason ZoneOut).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RebalanceState {
    #[default]
    Idle,
    Waiting,
    Queued,
    Provisioning,
    Evicting,
    Restarting,
    BackingOff,
    Blocked,
    Degraded,
}
