//! One workload's reconcile as a pure pipeline: [`assess`] → the shell carries out the writes →
//! [`conclude`].
//!
//! `assess` takes the policy, one workload, the cluster snapshot, what is remembered about the
//! workload and the settings, and returns everything to do and say: the measurement, the plan,
//! the decision, the [`Write`]s to make, and the notes for the status. The controller carries out
//! the writes in order (in each [`Lane`], stopping at the first one that does not go through) and hands their
//! [`WriteResult`]s to `conclude`, which returns the new memory, the workload's status entry, the
//! Events to publish and what to count. `skewguard report --policy` calls the same `assess`.
//!
//! A new rebalance strategy is a variant of `RebalanceStrategy` (`src/api/rebalance.rs`), its
//! branch in `decision::decide_settled`, and, if it writes something new, a [`Write`] variant made
//! in `assess`, judged in `conclude` and carried out in `controller::reconcile::carry_out`.

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
pub use conclude::{Conclusion, conclude};
pub use notices::{EventReason, Notice, transitions};
pub use policy::{Finished, Gathered, PolicyPhase, Selected, Subject, WorkloadKey, prepare};
pub use workload_metrics::{ConstraintMetrics, MAX_DOMAIN_SERIES, WorkloadMetrics};
pub use write::{ActionResult, Lane, Write, WriteError, WriteKind, WriteResult};

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
