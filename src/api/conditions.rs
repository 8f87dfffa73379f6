//! Condition types and reason strings, in one place so status, events and metrics say the same thing.

/// The `type` of each condition in `status.conditions`.
pub mod condition_type {
    /// The policy is valid and applied.
    pub const READY: &str = "Ready";
    /// Every governed workload is within its constraints' maxSkew.
    pub const BALANCED: &str = "Balanced";
    /// The operator is moving pods of at least one workload.
    pub const REBALANCING: &str = "Rebalancing";
    /// Admission mode only: the pods created since the constraints were published carry them,
    /// and the admission policy is installed and type-checks.
    pub const ADMITTED: &str = "Admitted";
}

/// Reasons used in conditions and in a workload's `rebalance.reason`.
pub mod reason {
    /// Condition Ready: the policy was reconciled.
    pub const RECONCILED: &str = "Reconciled";
    /// Condition Balanced false: some workload's skew exceeds its maxSkew.
    pub const SKEW_EXCEEDED: &str = "SkewExceeded";

    /// Blocked: a PodDisruptionBudget has no room (the Eviction API answered 429).
    pub const POD_DISRUPTION_BUDGET: &str = "PodDisruptionBudget";
    /// Blocked: no below-target domain has a node that would take the pod.
    pub const NO_CAPACITY: &str = "NoCapacity";
    /// Blocked: the workload is rolling out or has unavailable replicas.
    pub const ROLLOUT_IN_PROGRESS: &str = "RolloutInProgress";
    /// Blocked: a rollout skewguard started did not complete within 10 minutes; its slot of
    /// `--max-concurrent-rollouts` was given back, and nothing more is started for the workload
    /// until it settles.
    pub const ROLLOUT_STUCK: &str = "RolloutStuck";
    /// Blocked: the pods have PersistentVolumeClaims, whose zonal volumes cannot move.
    pub const VOLUME_PINNED: &str = "VolumePinned";
    /// Blocked: the policy has `paused: true`.
    pub const PAUSED: &str = "Paused";
    /// Blocked: an older policy also selects this workload and governs it.
    pub const CONFLICT: &str = "Conflict";
    /// Blocked: only pods opted out of eviction (`skewguard.dev/do-not-evict`,
    /// `karpenter.sh/do-not-disrupt`, `cluster-autoscaler.kubernetes.io/safe-to-evict: "false"`)
    /// could move.
    pub const PODS_OPTED_OUT: &str = "PodsOptedOut";

    /// BackingOff: replacements kept landing back in the same domain.
    pub const REBALANCE_INEFFECTIVE: &str = "RebalanceIneffective";
    /// Waiting: the skew has not yet held for stabilizationSeconds.
    pub const STABILIZING: &str = "Stabilizing";

    /// Every reason a workload's rebalancing can be Blocked for.
    /// Every constraint within maxSkew.
    pub const BALANCED: &str = "Balanced";
    /// A rebalance episode ended recently; the next waits for `cooldownSeconds`.
    pub const COOLDOWN: &str = "Cooldown";
    /// Queued: as many workloads as `--max-concurrent-rollouts` allows are rolling out because of
    /// skewguard; this one's template write waits for one of them to finish.
    pub const ROLLOUT_BUDGET: &str = "RolloutBudget";
    /// Evicting: the eviction waits for its slot under the global `--max-evictions-per-second`.
    pub const AWAITING_EVICTION_SLOT: &str = "AwaitingEvictionSlot";
    /// An evicted pod's replacement has not landed and become Ready yet.
    pub const AWAITING_REPLACEMENT: &str = "AwaitingReplacement";
    /// Fewer than 2 Ready replicas: evicting one would take the service down.
    pub const TOO_FEW_READY_REPLICAS: &str = "TooFewReadyReplicas";
    /// Blocked: the workload's spec cannot be read (the message says why).
    pub const INVALID_WORKLOAD: &str = "InvalidWorkload";
    /// `strategy: None`: measured and reported only.
    pub const REBALANCE_DISABLED: &str = "RebalanceDisabled";
    pub const EVICTING: &str = "Evicting";

    /// status.injection: spec.injection names the mode.
    pub const REQUESTED: &str = "Requested";
    /// status.injection (Auto): skewguard's MutatingAdmissionPolicy and binding are installed.
    pub const ADMISSION_POLICY_INSTALLED: &str = "AdmissionPolicyInstalled";
    /// status.injection (Auto) and condition Admitted: the API server does not serve
    /// admissionregistration.k8s.io/v1 mutatingadmissionpolicies.
    pub const ADMISSION_NOT_SERVED: &str = "AdmissionNotServed";
    /// status.injection (Auto) and condition Admitted: the shipped policy or binding is missing.
    pub const ADMISSION_POLICY_NOT_INSTALLED: &str = "AdmissionPolicyNotInstalled";
    /// status.injection (Auto): admission support could not be read; the previous mode stays.
    pub const ADMISSION_SUPPORT_UNKNOWN: &str = "AdmissionSupportUnknown";
    /// Condition Admitted false: the API server's type checker warns about the admission
    /// expressions (the HAPolicy or Pod schema no longer fits them).
    pub const TYPE_CHECK_WARNINGS: &str = "TypeCheckWarnings";
    /// Condition Admitted false: pods created since the constraints were published lack them.
    pub const CONSTRAINTS_MISSING: &str = "ConstraintsMissing";
    /// Condition Admitted unknown: no pod was created since the constraints were published.
    pub const NO_NEW_PODS: &str = "NoNewPods";
    /// Condition Admitted true.
    pub const CONSTRAINTS_ADMITTED: &str = "ConstraintsAdmitted";
    pub const RESTARTING: &str = "Restarting";
    /// Provisioning: the autoscaler was asked for room in the target domain; the move waits.
    pub const AWAITING_CAPACITY: &str = "AwaitingCapacity";
    /// Blocked: the room asked of the autoscaler did not come within `timeoutSeconds`.
    pub const PROVISIONING_TIMED_OUT: &str = "ProvisioningTimedOut";
    /// Blocked: an expected domain has no node the pods may use, and the policy does not ask the
    /// autoscaler for one (`rebalance.provisioning.enabled` is false).
    pub const DOMAIN_MISSING: &str = "DomainMissing";
    /// Degraded (a workload) and condition Balanced false: every constraint is within maxSkew,
    /// but a zone of its topology keys is Out, so the spread leaves that zone out.
    pub const ZONE_OUT: &str = "ZoneOut";
    /// Waiting: a zone of an Adaptive key is Recovering; the pods placed during the outage are
    /// moved once it is Healthy (and new pods are admitted with DoNotSchedule again).
    pub const ZONE_RECOVERING: &str = "ZoneRecovering";
    /// Condition Ready false: a spread entry is Adaptive, but the policy is in template mode
    /// (admission is not served or not installed): nothing is added for its key.
    pub const ADAPTIVE_UNAVAILABLE: &str = "AdaptiveUnavailable";

    /// A zone's health: its nodes take pods.
    pub const NODES_READY: &str = "NodesReady";
    /// Out: a node of the zone carries `skewguard.dev/zone-out=true`.
    pub const DECLARED: &str = "Declared";
    /// Out: most of its nodes are NotReady or tainted not-ready/unreachable.
    pub const NODES_NOT_READY: &str = "NodesNotReady";
    /// Out: most of its nodes are cordoned.
    pub const NODES_CORDONED: &str = "NodesCordoned";
    /// Out: it has no node left while other zones have some.
    pub const NO_NODES: &str = "NoNodes";

    pub const BLOCKED: [&str; 10] = [
        POD_DISRUPTION_BUDGET,
        NO_CAPACITY,
        ROLLOUT_IN_PROGRESS,
        ROLLOUT_STUCK,
        VOLUME_PINNED,
        PAUSED,
        CONFLICT,
        PODS_OPTED_OUT,
        PROVISIONING_TIMED_OUT,
        DOMAIN_MISSING,
    ];
}
