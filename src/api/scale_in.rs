//! What the operator does about scale-in: which pods the ReplicaSet controller removes first.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Scale-in settings.
///
/// deletionCost (default true): keep the `controller.kubernetes.io/pod-deletion-cost` annotation
/// of the workload's Ready pods such that the ReplicaSet controller, which deletes the lowest
/// cost first, takes pods from the fullest zone (and, within it, the fullest node) first, so any
/// scale-in keeps the spread. Only metadata of pods is written (a patch of that one annotation).
/// Deployments and Rollouts only: StatefulSets scale in by ordinal (highest first), so the
/// operator writes nothing for them. false: the operator writes no cost (annotations it wrote
/// before are removed).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleInSpec {
    /// Keep pod-deletion-cost annotations so that scale-in keeps the spread (Deployments and
    /// Rollouts; StatefulSets scale in by ordinal).
    #[serde(default = "default_true")]
    pub deletion_cost: bool,
}

impl Default for ScaleInSpec {
    fn default() -> Self {
        ScaleInSpec {
            deletion_cost: default_true(),
        }
    }
}

fn default_true() -> bool {
    true
}
