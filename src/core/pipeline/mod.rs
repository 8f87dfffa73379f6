//! One policy's reconcile as pure functions. [`policy::prepare`] selects the policy's workloads
//! and works out what is known of each; per workload, [`assess`] → the shell carries out the
//! writes → [`conclude`]; [`policy::PolicyPhase::finish`] makes the policy's status, metrics
//! snapshot and what to keep.
//!
//! `assess` takes the policy, one workload, the cluster snapshot, what is remembered about the
//! workload and the [`Facts`], and returns everything to do and say: the measurement, the plan,
//! the decision, the [`Write`]s to make, and the notes for the status. The controller carries out
//! the writes in order (in each [`Lane`], stopping at the first one that does not go through) and
//! hands their [`WriteResult`]s to `conclude`, which returns the new memory, the workload's status
//! entry, the Events to publish, what to count and whether it holds a rollout slot.
//! `skewguard report --policy` and the reconcile bench run the same phase.
//!
//! Where things go (counted, not estimated):
//! - **A new write kind**: 6 files. `write.rs`: the [`Write`] variant and its [`WriteKind`]
//!   (label, description, error category, lane: every match there is exhaustive, so the compiler
//!   lists them; add it to `WriteKind::ALL`); `assess.rs` makes it; `conclude.rs` judges its
//!   result; `shell/controller/actuate.rs` carries it out and `shell/controller/writer.rs`'s
//!   `carry_out` calls that (an exhaustive match); `report/build.rs` says what it would do (an
//!   exhaustive match). A new way of failing also takes an [`crate::core::errors::ErrorCategory`]
//!   (and its row in `docs/runbook.md`, which a test requires); a write to a new resource, its RBAC
//!   rule in `config/rbac/cluster_role.yaml`.
//! - **A new rebalance strategy**: 2 places in 2 files, the variant of `RebalanceStrategy`
//!   (`src/api/rebalance.rs`) and its branch in `decision::decide_settled` (an exhaustive match);
//!   plus a new write kind (above) if it writes something the others do not.
//! - **A new workload kind**: see [`crate::core::workload::kind`].

pub mod assess;
pub mod conclude;
pub mod notices;
pub mod policy;
pub mod workload_metrics;
pub mod write;

use crate::api::RebalanceState;
use crate::core::decision::Memory;

pub use assess::{
    Assessment, Facts, Settings, TemplateOutline, assess, plan_options, unreadable, zone_loss_key,
};
pub use conclude::{Conclusion, before_eviction, conclude, provisional};
pub use notices::{EventReason, Notice, transitions};
pub use policy::{
    Finished, Gathered, NodePools, PolicyPhase, Selected, Subject, WorkloadKey, prepare,
};
pub use workload_metrics::{ConstraintMetrics, MAX_DOMAIN_SERIES, WorkloadMetrics, ZoneMetrics};
pub use write::{ActionResult, Lane, StrandedPod, Write, WriteError, WriteKind, WriteResult};

/// What is remembered about a workload between reconciles: the decision memory, and what was
/// last told, so Events mark changes instead of repeating on every reconcile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadMemory {
    pub decision: Memory,
    pub reported: Option<(RebalanceState, String)>,
}

impl WorkloadMemory {
    /// The memory a workload's status entry holds: what the last leader wrote, read by a new
    /// process (or a new leader) before its first write.
    pub fn restored(status: &crate::api::WorkloadStatus) -> Self {
        Self {
            decision: crate::core::decision::persisted::from_status(&status.rebalance),
            reported: status
                .rebalance
                .reason
                .clone()
                .map(|reason| (status.rebalance.state, reason)),
        }
    }
}

#[cfg(test)]
mod tests;
