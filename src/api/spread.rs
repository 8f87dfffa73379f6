//! One spread constraint of a policy, with the same fields and meanings as a pod's
//! `topologySpreadConstraints` entry, so what users declare is what the scheduler enforces.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How pods must spread over the domains of one topology key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.minDomains) || self.whenUnsatisfiable != 'ScheduleAnyway'")
        .message("minDomains is only allowed with whenUnsatisfiable: DoNotSchedule or Adaptive"),
    validation = Rule::new("self.whenUnsatisfiable != 'Adaptive' || self.topologyKey != 'kubernetes.io/hostname'")
        .message("whenUnsatisfiable: Adaptive follows zone health; kubernetes.io/hostname has a domain per node"),
)]
pub struct SpreadEntry {
    /// The node label whose values are the domains, e.g. topology.kubernetes.io/zone.
    // 317 = a 253-character DNS prefix, '/', and a 63-character name: the longest label key.
    #[schemars(length(min = 1, max = 317))]
    pub topology_key: String,

    /// The largest allowed difference in matching pods between two eligible domains.
    #[serde(default = "default_max_skew")]
    #[schemars(range(min = 1))]
    pub max_skew: i32,

    /// What the scheduler does with a pod that would break the skew; availability first by default.
    /// Adaptive (admission mode only): pods are admitted with DoNotSchedule while every zone of
    /// the key is Healthy, with ScheduleAnyway while one is Out or Recovering (status.zones).
    #[serde(default)]
    pub when_unsatisfiable: WhenUnsatisfiable,

    /// The number of domains counted as eligible even when fewer have nodes (DoNotSchedule, and
    /// Adaptive while it is published as DoNotSchedule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_domains: Option<i32>,

    /// Whether the pod's nodeAffinity/nodeSelector limits which nodes count as domains.
    #[serde(default)]
    pub node_affinity_policy: NodeInclusionPolicy,

    /// Whether node taints the pod does not tolerate (dead or cordoned nodes) exclude a node's domain.
    #[serde(default)]
    pub node_taints_policy: NodeInclusionPolicy,
}

impl SpreadEntry {
    /// An entry for `topology_key` with every other field at its documented default.
    pub fn new(topology_key: impl Into<String>) -> Self {
        SpreadEntry {
            topology_key: topology_key.into(),
            max_skew: default_max_skew(),
            when_unsatisfiable: WhenUnsatisfiable::default(),
            min_domains: None,
            node_affinity_policy: NodeInclusionPolicy::default(),
            node_taints_policy: NodeInclusionPolicy::default(),
        }
    }
}

fn default_max_skew() -> i32 {
    1
}

/// What the scheduler is to do with a pod that would break the skew: place it anyway, leave it
/// Pending, or (Adaptive) the one or the other by the health of the key's zones.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
// The CEL rules compare this field; without maxLength the API server's cost estimate assumes
// megabyte strings and rejects the CRD. 14 = len("ScheduleAnyway").
#[schemars(extend("maxLength" = 14))]
pub enum WhenUnsatisfiable {
    #[default]
    ScheduleAnyway,
    DoNotSchedule,
    /// DoNotSchedule's guarantee with ScheduleAnyway's availability (admission mode only): new
    /// pods are admitted with DoNotSchedule (and minDomains) while every zone of the key is
    /// Healthy, and with ScheduleAnyway while one is Out or Recovering; a pod left Pending by the
    /// hard form while a zone is Out is deleted, so that its replacement gets the relaxed one.
    /// Skew is always measured with the hard form.
    Adaptive,
}

impl WhenUnsatisfiable {
    /// Whether the spread is held as DoNotSchedule (measured so; published so while the zones
    /// are Healthy).
    pub fn is_hard(self) -> bool {
        matches!(
            self,
            WhenUnsatisfiable::DoNotSchedule | WhenUnsatisfiable::Adaptive
        )
    }
}

/// What a pod's `topologySpreadConstraints` entry may say: the form an entry is published in.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[schemars(extend("maxLength" = 14))]
pub enum PodWhenUnsatisfiable {
    #[default]
    ScheduleAnyway,
    DoNotSchedule,
}

impl PodWhenUnsatisfiable {
    pub fn as_str(self) -> &'static str {
        match self {
            PodWhenUnsatisfiable::ScheduleAnyway => "ScheduleAnyway",
            PodWhenUnsatisfiable::DoNotSchedule => "DoNotSchedule",
        }
    }
}

/// Whether a node filter (affinity or taints) is honoured when counting domains, as in kube-scheduler.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
// Bounded like every string under a CEL rule, so the API server's cost estimate stays small.
#[schemars(extend("maxLength" = 6))]
pub enum NodeInclusionPolicy {
    #[default]
    Honor,
    Ignore,
}
