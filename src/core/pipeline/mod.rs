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

use serde_json::Value;

use crate::api::RebalanceState;
use crate::core::constraints::TemplateApply;
use crate::core::decision::Memory;
use crate::core::errors::WriteError;
use crate::core::topology::Move;

pub use assess::{Assessment, Facts, Settings, assess, plan_options, unreadable, zone_loss_key};
pub use conclude::{Conclusion, conclude};
pub use notices::{Notice, transitions};

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

/// One write to a workload or a pod.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// Server-side apply of the constraints (and anti-affinity) skewguard owns in the template.
    Inject {
        body: TemplateApply,
        constraints: usize,
    },
    /// Evict a pod through the Eviction API.
    Evict(Move),
    /// Restart the workload with its kind's restart patch.
    Restart { body: Value },
    /// Set (`Some`) or give up (`None`) a pod's `pod-deletion-cost`, so a scale-in keeps the
    /// spread. Independent of the writes above: one that does not go through stops only the
    /// deletion-cost writes after it.
    DeletionCost { pod: String, cost: Option<i32> },
}

impl Write {
    /// Writes of one lane are carried out in order, up to the first that does not go through;
    /// the two lanes do not hold each other up.
    pub fn lane(&self) -> Lane {
        match self {
            Write::Inject { .. } | Write::Evict(_) | Write::Restart { .. } => Lane::Workload,
            Write::DeletionCost { .. } => Lane::DeletionCost,
        }
    }
}

/// See [`Write::lane`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Template writes and evictions: each step builds on the one before.
    Workload,
    /// Pod annotations that only rank pods for the next scale-in.
    DeletionCost,
}

/// What became of one [`Write`].
#[derive(Debug)]
pub enum WriteResult {
    Done,
    /// The Eviction API answered 429: a PodDisruptionBudget has no room now.
    BudgetExhausted,
    /// The pod is already gone.
    Gone,
    /// Not carried out yet: its slot under the global rate comes after this long.
    Deferred(std::time::Duration),
    Failed(WriteError),
    /// Not tried: an earlier write of its lane did not go through.
    NotTried,
}

#[cfg(test)]
mod tests;
