//! The operator's own metrics, registered as live series: how long reconciles take, what fails,
//! leadership, admission support, and how fast a rebalance steps.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::core::errors::ErrorCategory;

/// Upper bounds of the `skewguard_reconcile_duration_seconds` buckets.
const RECONCILE_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Upper bounds of the rebalance step latency buckets.
const STEP_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ErrorLabels {
    pub error: ErrorCategory,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

pub(super) struct Operational {
    pub reconcile_duration: Histogram,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub leader: Gauge,
    build_info: Family<VersionLabels, Gauge>,
    pub admission_available: Gauge,
    pub admission_warnings: Gauge,
    /// From the moment the pod cache saw a move's replacement Ready to the assessment that judged
    /// the move.
    pub ready_to_judged: Histogram,
    /// From a judged move to the workload's next eviction sent.
    pub judged_to_eviction: Histogram,
}

impl Operational {
    pub fn new() -> Self {
        let families = Operational {
            reconcile_duration: Histogram::new(RECONCILE_BUCKETS),
            reconcile_errors: Family::default(),
            leader: Gauge::default(),
            build_info: Family::default(),
            admission_available: Gauge::default(),
            admission_warnings: Gauge::default(),
            ready_to_judged: Histogram::new(STEP_BUCKETS),
            judged_to_eviction: Histogram::new(STEP_BUCKETS),
        };
        // Every error category starts at 0, so `rate()` sees the first error.
        for error in ErrorCategory::ALL {
            families
                .reconcile_errors
                .get_or_create(&ErrorLabels { error })
                .inc_by(0);
        }
        families
            .build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .set(1);
        families
    }

    /// Registers every family under `skewguard_` in `r`.
    pub fn register(&self, r: &mut Registry) {
        r.register_with_unit(
            "reconcile_duration",
            "Time one reconcile of a policy took",
            Unit::Seconds,
            self.reconcile_duration.clone(),
        );
        r.register(
            "reconcile_errors",
            "Errors by category",
            self.reconcile_errors.clone(),
        );
        r.register(
            "leader",
            "1 while this instance holds the leader lease, else 0",
            self.leader.clone(),
        );
        r.register(
            "build_info",
            "Always 1, labelled with the operator's version",
            self.build_info.clone(),
        );
        r.register(
            "admission_available",
            "1 when the API server serves MutatingAdmissionPolicies and skewguard's policy and binding are installed",
            self.admission_available.clone(),
        );
        r.register(
            "admission_type_check_warnings",
            "Warnings of the API server's type check of skewguard's admission expressions",
            self.admission_warnings.clone(),
        );
        r.register_with_unit(
            "rebalance_ready_to_judged",
            "Time from a moved pod's replacement turning Ready (as the pod watch saw it) to the assessment that judged the move",
            Unit::Seconds,
            self.ready_to_judged.clone(),
        );
        r.register_with_unit(
            "rebalance_judged_to_eviction",
            "Time from a judged move to the same workload's next eviction (the writes of its step included)",
            Unit::Seconds,
            self.judged_to_eviction.clone(),
        );
    }
}
