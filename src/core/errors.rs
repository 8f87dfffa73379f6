//! The fixed vocabulary of failures: every error type of the operator maps to one
//! [`ErrorCategory`], and that category (never an error's text) is what metric labels, Event
//! reasons and status reasons carry. A failed write names its category through its
//! [`crate::core::pipeline::WriteKind`].

/// The fixed categories of errors (the `error` label of `skewguard_reconcile_errors_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCategory {
    /// The API server could not be read or did not answer.
    KubeApi,
    /// A policy's selector or fields cannot be used.
    InvalidPolicy,
    /// A workload's spec cannot be read (bad selector, malformed Rollout).
    InvalidWorkload,
    /// Two policies select the same workload.
    Conflict,
    /// An eviction failed (other than a PodDisruptionBudget's refusal, which is a block).
    Eviction,
    /// A server-side apply into a workload failed.
    Apply,
    /// A rollout restart of a workload failed.
    Restart,
    /// Writing a pod's deletion-cost annotation failed.
    DeletionCost,
    /// Asking the autoscaler for room, or giving it back, failed.
    Capacity,
    /// Deleting a Pending pod stranded by a DoNotSchedule spread failed.
    PendingDeletion,
    /// Writing the policy's status failed.
    Status,
}

impl ErrorCategory {
    pub const ALL: [ErrorCategory; 11] = [
        ErrorCategory::KubeApi,
        ErrorCategory::InvalidPolicy,
        ErrorCategory::InvalidWorkload,
        ErrorCategory::Conflict,
        ErrorCategory::Eviction,
        ErrorCategory::Apply,
        ErrorCategory::Restart,
        ErrorCategory::DeletionCost,
        ErrorCategory::Capacity,
        ErrorCategory::PendingDeletion,
        ErrorCategory::Status,
    ];

    /// The label value (snake_case, as Prometheus label values usually are).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCategory::KubeApi => "kube_api",
            ErrorCategory::InvalidPolicy => "invalid_policy",
            ErrorCategory::InvalidWorkload => "invalid_workload",
            ErrorCategory::Conflict => "conflict",
            ErrorCategory::Eviction => "eviction",
            ErrorCategory::Apply => "apply",
            ErrorCategory::Restart => "restart",
            ErrorCategory::DeletionCost => "deletion_cost",
            ErrorCategory::Capacity => "capacity",
            ErrorCategory::PendingDeletion => "pending_deletion",
            ErrorCategory::Status => "status",
        }
    }

    /// The reason a status entry or an Event gives for this failure (CamelCase, as Kubernetes
    /// reasons are).
    pub fn reason(self) -> &'static str {
        match self {
            ErrorCategory::KubeApi => "ApiError",
            ErrorCategory::InvalidPolicy => "InvalidPolicy",
            ErrorCategory::InvalidWorkload => "InvalidWorkload",
            ErrorCategory::Conflict => "Conflict",
            ErrorCategory::Eviction => "EvictionFailed",
            ErrorCategory::Apply => "ApplyFailed",
            ErrorCategory::Restart => "RestartFailed",
            ErrorCategory::DeletionCost => "DeletionCostFailed",
            ErrorCategory::Capacity => "CapacityRequestFailed",
            ErrorCategory::PendingDeletion => "PendingDeletionFailed",
            ErrorCategory::Status => "StatusFailed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_category_has_distinct_labels_and_reasons() {
        let labels: std::collections::BTreeSet<_> =
            ErrorCategory::ALL.iter().map(|c| c.as_str()).collect();
        let reasons: std::collections::BTreeSet<_> =
            ErrorCategory::ALL.iter().map(|c| c.reason()).collect();
        assert_eq!(labels.len(), ErrorCategory::ALL.len());
        assert_eq!(reasons.len(), ErrorCategory::ALL.len());
    }
}
