//! The domains a policy's workloads must cover, and how the operator may ask an autoscaler for
//! room in a domain before it moves a pod there.
//!
//! kube-scheduler only counts domains that have nodes. In a cluster whose autoscaler removes
//! empty nodes (Karpenter, the cluster autoscaler), a zone that comes back after an outage often
//! has none, and a workload piled 4/4/0 over three zones reads as a balanced 4/4. The expected
//! domains make such a zone a domain with 0 pods: the workload is unbalanced, and with
//! `rebalance.provisioning` the operator asks the autoscaler for a node there before it evicts.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The domains the selected workloads must cover for one topology key.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExpectedDomains {
    /// The node label whose values are the domains, e.g. topology.kubernetes.io/zone.
    #[schemars(length(min = 1, max = 317))]
    pub topology_key: String,

    /// The domains (label values) every selected workload must cover. A domain with no node, or
    /// no node the workload's pods may use, counts as a domain with 0 pods.
    #[schemars(
        length(min = 1, max = 64),
        inner(length(min = 1, max = 63)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub domains: Vec<String>,
}

/// Asking the autoscaler for room before a move (off by default: new nodes cost money).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProvisioningSpec {
    /// When a planned move's target domain has no node with room (none at all, or all full), ask
    /// the autoscaler for room first: a CapacityBuffer (autoscaling.x-k8s.io) where the API
    /// server serves it, else placeholder pods of the moving pod's shape at a negative priority.
    /// The move waits until a node of the domain is Ready with room.
    #[serde(default)]
    pub enabled: bool,

    /// How long to wait for that room; then the request is withdrawn and the workload is Blocked
    /// (reason ProvisioningTimedOut) for as long again before it asks anew.
    #[serde(default = "default_timeout_seconds")]
    #[schemars(range(min = 30, max = 86400))]
    pub timeout_seconds: i64,
}

impl Default for ProvisioningSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            timeout_seconds: default_timeout_seconds(),
        }
    }
}

fn default_timeout_seconds() -> i64 {
    600
}

/// Where a key's expected domains come from.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainSource {
    /// `spec.expectedDomains`.
    Policy,
    /// The zones Karpenter NodePools (karpenter.sh/v1) may launch nodes in.
    NodePools,
}

/// The expected domains in force for one key, as status reports them.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExpectedDomainsStatus {
    pub topology_key: String,
    pub domains: Vec<String>,
    pub source: DomainSource,
}

/// How room was asked of the autoscaler.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapacityVia {
    /// A CapacityBuffer (autoscaling.x-k8s.io/v1beta1) and the PodTemplate it points to.
    CapacityBuffer,
    /// Placeholder pods at skewguard's negative priority, which any real pod preempts.
    PlaceholderPods,
}

/// A request for room in one domain, kept in the workload's memory until the moves it was made
/// for are judged, it times out, or it is no longer wanted (paused, balanced, a new leader
/// reads it and carries on).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CapacityRequest {
    pub topology_key: String,
    pub domain: String,
    /// Pods of the moving pod's shape asked for: the moves planned into the domain, never more.
    pub pods: i32,
    pub via: CapacityVia,
    /// The objects made for it (a PodTemplate and a CapacityBuffer, or the placeholder pods).
    pub names: Vec<String>,
    pub requested_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    /// The room was there and the pods were evicted toward it; a CapacityBuffer is kept until
    /// those moves are judged, so the new node is never empty in between.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub used: bool,
}

/// The node label a person sets to declare a zone Out (a drill, a cloud provider's zonal shift):
/// any node of the zone labelled `skewguard.dev/zone-out=true` makes the whole zone Out, whatever
/// its nodes' state, until no node of it carries the label.
pub const ZONE_OUT_LABEL: &str = "skewguard.dev/zone-out";

/// How the health of a policy's zones is judged.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ZoneHealthSpec {
    /// How long a zone that can take pods again stays Recovering before it is Healthy (and
    /// Adaptive entries are published as DoNotSchedule again).
    #[serde(default = "default_recovery_window_seconds")]
    #[schemars(range(min = 0, max = 86400))]
    pub recovery_window_seconds: i64,
}

impl Default for ZoneHealthSpec {
    fn default() -> Self {
        Self {
            recovery_window_seconds: default_recovery_window_seconds(),
        }
    }
}

fn default_recovery_window_seconds() -> i64 {
    120
}

/// Healthy, Out or Recovering.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ZoneHealth {
    /// Its nodes take pods, and have for the recovery window.
    Healthy,
    /// Its nodes cannot take pods (most of them NotReady, unreachable or cordoned; none left
    /// while other zones have some), or a person declared it out.
    Out,
    /// It can take pods again, for less than the recovery window.
    Recovering,
}

impl ZoneHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            ZoneHealth::Healthy => "Healthy",
            ZoneHealth::Out => "Out",
            ZoneHealth::Recovering => "Recovering",
        }
    }
}

/// One zone (a domain of one of the policy's topology keys) and its health: also the memory a
/// new leader carries on from (a Recovering zone is Healthy `recoveryWindowSeconds` after
/// `since`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ZoneStatus {
    pub topology_key: String,
    pub domain: String,
    pub health: ZoneHealth,
    /// Why: NodesReady, Declared (a node carries skewguard.dev/zone-out=true), NodesNotReady,
    /// NodesCordoned or NoNodes.
    pub reason: String,
    /// Nodes that can take pods, of the zone's nodes (e.g. "0 of 2 nodes can take pods").
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Since when the zone has had this health.
    pub since: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
}
