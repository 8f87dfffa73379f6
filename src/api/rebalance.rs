//! How the operator moves pods back into balance, and how carefully.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::zones::ProvisioningSpec;

/// The rebalancing settings. Defaults are safe: one pod at a time, after the skew held 30s,
/// at most one action per workload every 5 minutes, and only into a domain with room.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceSpec {
    /// How pods are moved: evict the fewest pods, restart the workload, or only report.
    #[serde(default)]
    pub strategy: RebalanceStrategy,

    /// How long the skew must have held before any action.
    #[serde(default = "default_stabilization_seconds")]
    #[schemars(range(min = 0))]
    pub stabilization_seconds: i64,

    /// The least time between two actions on one workload.
    #[serde(default = "default_cooldown_seconds")]
    #[schemars(range(min = 0))]
    pub cooldown_seconds: i64,

    /// How many pods of one workload may be disrupted at once.
    #[serde(default = "default_max_disruptions")]
    #[schemars(range(min = 1))]
    pub max_disruptions: i32,

    /// Only move a pod if a below-target domain has a node that would take it.
    #[serde(default = "default_true")]
    pub require_node_fit: bool,

    /// Ask the autoscaler for room in a domain that has none before moving a pod there.
    #[serde(default)]
    #[schemars(extend("default" = {}))]
    pub provisioning: ProvisioningSpec,
}

impl Default for RebalanceSpec {
    fn default() -> Self {
        RebalanceSpec {
            strategy: RebalanceStrategy::default(),
            stabilization_seconds: default_stabilization_seconds(),
            cooldown_seconds: default_cooldown_seconds(),
            max_disruptions: default_max_disruptions(),
            require_node_fit: default_true(),
            provisioning: ProvisioningSpec::default(),
        }
    }
}

fn default_stabilization_seconds() -> i64 {
    30
}

fn default_cooldown_seconds() -> i64 {
    300
}

fn default_max_disruptions() -> i32 {
    1
}

fn default_true() -> bool {
    true
}

/// How skewed pods are moved.
///
/// Evict: evict the fewest pods through the Eviction API (honours PodDisruptionBudgets).
/// RolloutRestart: restart the workload (template annotation kubectl.kubernetes.io/restartedAt,
/// or a Rollout's spec.restartAt). None: measure and report only.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RebalanceStrategy {
    #[default]
    Evict,
    RolloutRestart,
    None,
}
