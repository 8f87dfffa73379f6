//! The writes a workload's reconcile makes, as data: what `assess` asks for ([`Write`]), what
//! became of each once the shell carried it out ([`WriteResult`]), and the fixed words they are
//! counted and labelled with ([`WriteKind`], [`ActionResult`]).

use serde_json::Value;

use crate::api::CapacityRequest;
use crate::core::constraints::TemplateApply;
use crate::core::errors::ErrorCategory;
use crate::core::topology::Move;

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
    /// Ask the autoscaler for room: create these objects (a PodTemplate and a CapacityBuffer,
    /// or placeholder pods), in order.
    RequestCapacity {
        request: CapacityRequest,
        objects: Vec<Value>,
    },
    /// Withdraw a request: delete the objects it made (gone already is fine).
    ReleaseCapacity(CapacityRequest),
    /// Delete a pod left Pending only by the hard form of an Adaptive entry while a zone of its
    /// key is Out (its uid a precondition: never its replacement), so that the replacement is
    /// admitted with the relaxed one. Independent of the writes above.
    DeletePending(StrandedPod),
}

/// A Pending pod stranded by a DoNotSchedule spread (see [`Write::DeletePending`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrandedPod {
    pub pod: String,
    pub uid: String,
    /// The key whose zone is Out.
    pub topology_key: String,
    /// How long it has been Pending, in seconds (0 when unknown).
    pub pending_seconds: i64,
}

impl Write {
    /// What kind of write this is (its metric label and error category).
    pub fn kind(&self) -> WriteKind {
        match self {
            Write::Inject { .. } => WriteKind::Inject,
            Write::Evict(_) => WriteKind::Evict,
            Write::Restart { .. } => WriteKind::Restart,
            Write::DeletionCost { .. } => WriteKind::DeletionCost,
            Write::RequestCapacity { .. } => WriteKind::RequestCapacity,
            Write::ReleaseCapacity(_) => WriteKind::ReleaseCapacity,
            Write::DeletePending(_) => WriteKind::DeletePending,
        }
    }

    /// Writes of one lane are carried out in order, up to the first that does not go through;
    /// the two lanes do not hold each other up.
    pub fn lane(&self) -> Lane {
        match self.kind() {
            WriteKind::Inject
            | WriteKind::Evict
            | WriteKind::Restart
            | WriteKind::RequestCapacity
            | WriteKind::ReleaseCapacity => Lane::Workload,
            WriteKind::DeletionCost => Lane::DeletionCost,
            WriteKind::DeletePending => Lane::Pending,
        }
    }

    /// Whether the write changes the pod template, starting a rollout (which takes a slot of the
    /// cluster-wide rollout budget).
    pub fn starts_rollout(&self) -> bool {
        matches!(self.kind(), WriteKind::Inject | WriteKind::Restart)
    }
}

/// See [`Write::lane`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Template writes and evictions: each step builds on the one before.
    Workload,
    /// Pod annotations that only rank pods for the next scale-in.
    DeletionCost,
    /// Pending pods that serve nothing, deleted so their replacements are admitted relaxed.
    Pending,
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

/// The kinds of write the operator makes or would have made: the `action` label of
/// `skewguard_rebalance_actions_total` (deletion costs are counted in their own family).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WriteKind {
    Evict,
    Restart,
    Inject,
    /// A pod's deletion-cost annotation.
    DeletionCost,
    /// Room asked of the autoscaler.
    RequestCapacity,
    /// Room given back.
    ReleaseCapacity,
    /// A Pending pod stranded by a DoNotSchedule spread while a zone is Out, deleted.
    DeletePending,
}

impl WriteKind {
    pub const ALL: [WriteKind; 7] = [
        WriteKind::Evict,
        WriteKind::Restart,
        WriteKind::Inject,
        WriteKind::DeletionCost,
        WriteKind::RequestCapacity,
        WriteKind::ReleaseCapacity,
        WriteKind::DeletePending,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteKind::Evict => "evict",
            WriteKind::Restart => "restart",
            WriteKind::Inject => "inject",
            WriteKind::DeletionCost => "deletion_cost",
            WriteKind::RequestCapacity => "request_capacity",
            WriteKind::ReleaseCapacity => "release_capacity",
            WriteKind::DeletePending => "delete_pending",
        }
    }

    /// What the write does to `target`, for messages ("evicting pod web-1").
    pub fn describe(self, target: &str) -> String {
        match self {
            WriteKind::Evict => format!("evicting pod {target}"),
            WriteKind::Restart => format!("restarting {target}"),
            WriteKind::Inject => format!("server-side apply into {target}"),
            WriteKind::DeletionCost => format!("writing the deletion cost of pod {target}"),
            WriteKind::RequestCapacity => format!("asking the autoscaler for room ({target})"),
            WriteKind::ReleaseCapacity => format!("giving back the room asked for ({target})"),
            WriteKind::DeletePending => format!("deleting Pending pod {target}"),
        }
    }

    /// The category a failed write of this kind is counted under.
    pub fn error_category(self) -> ErrorCategory {
        match self {
            WriteKind::Evict => ErrorCategory::Eviction,
            WriteKind::Restart => ErrorCategory::Restart,
            WriteKind::Inject => ErrorCategory::Apply,
            WriteKind::DeletionCost => ErrorCategory::DeletionCost,
            WriteKind::RequestCapacity | WriteKind::ReleaseCapacity => ErrorCategory::Capacity,
            WriteKind::DeletePending => ErrorCategory::PendingDeletion,
        }
    }
}

/// How a counted write ended: the `result` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActionResult {
    Success,
    Blocked,
    Error,
    /// Not carried out because of `paused: true` or `--dry-run`.
    DryRun,
}

impl ActionResult {
    pub const ALL: [ActionResult; 4] = [
        ActionResult::Success,
        ActionResult::Blocked,
        ActionResult::Error,
        ActionResult::DryRun,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionResult::Success => "success",
            ActionResult::Blocked => "blocked",
            ActionResult::Error => "error",
            ActionResult::DryRun => "dry_run",
        }
    }
}

/// A write to a workload or a pod that failed: which kind, to what, and the API server's answer.
#[derive(Debug, thiserror::Error)]
#[error("{} failed: {source}", kind.describe(target))]
pub struct WriteError {
    pub kind: WriteKind,
    /// The pod or workload written to (`Deployment web`, `web-1`).
    pub target: String,
    #[source]
    pub source: kube::Error,
}

impl WriteError {
    pub fn category(&self) -> ErrorCategory {
        self.kind.error_category()
    }
}
