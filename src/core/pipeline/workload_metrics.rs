//! What Prometheus is told about one workload: a plain snapshot of its outcome, made by the
//! policy phase and encoded by the shell's collector at scrape time.

use crate::api::{InjectionMode, RebalanceState, ZoneStatus};
use crate::core::policy_status::WorkloadOutcome;

/// `skewguard_workload_domain_pods` is emitted only for topology keys with at most this many domains,
/// so a hostname spread over a large cluster cannot explode the series count.
pub const MAX_DOMAIN_SERIES: usize = 16;

/// What one workload of a policy looks like right now, as the reconciler measured it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkloadMetrics {
    /// `Deployment`, `StatefulSet` or `Rollout`.
    pub kind: String,
    pub workload: String,
    pub replicas: i64,
    pub balanced: bool,
    pub constraints: Vec<ConstraintMetrics>,
    /// The topology key of the zone-loss analysis and the share of replicas lost with its worst domain.
    pub zone_loss: Option<(String, f64)>,
    /// Why rebalancing is blocked right now (`PodDisruptionBudget`, `NoCapacity`, ...), if it is.
    pub blocked_reason: Option<String>,
    /// Rolling out because skewguard wrote its template (holds a rollout slot).
    pub rolling: bool,
    /// Waiting for a rollout slot (state Queued).
    pub queued: bool,
    /// How its pods get the constraints: `Template` or `Admission` (`None`: nothing is added).
    pub injection: Option<&'static str>,
    /// Admission mode: pods created since the constraints were published that lack them.
    pub pods_missing_constraints: Option<i64>,
    /// Per Adaptive key published in admission mode: the workload's running pods admitted with
    /// the relaxed form (ScheduleAnyway).
    pub relaxed_pods: Vec<(String, i64)>,
}

/// One zone of a policy's keys and its health, as Prometheus is told.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZoneMetrics {
    pub topology_key: String,
    pub domain: String,
    /// `Healthy`, `Out` or `Recovering`.
    pub health: &'static str,
}

impl From<&ZoneStatus> for ZoneMetrics {
    fn from(z: &ZoneStatus) -> Self {
        ZoneMetrics {
            topology_key: z.topology_key.clone(),
            domain: z.domain.clone(),
            health: z.health.as_str(),
        }
    }
}

/// One measured spread constraint of a workload.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConstraintMetrics {
    pub topology_key: String,
    /// As kube-scheduler counts it.
    pub skew: i64,
    /// Over the expected domains too, when the key has some.
    pub expected_skew: Option<i64>,
    /// Expected domains with no node the pods may use.
    pub missing_domains: Vec<String>,
    pub max_skew: i64,
    /// Pods per domain; exported only when there are at most [`MAX_DOMAIN_SERIES`] domains.
    pub domains: Vec<(String, i64)>,
}

impl From<&WorkloadOutcome> for WorkloadMetrics {
    fn from(o: &WorkloadOutcome) -> Self {
        WorkloadMetrics {
            kind: o.kind.to_string(),
            workload: o.name.clone(),
            replicas: i64::from(o.replicas),
            balanced: o.balanced(),
            constraints: o
                .measurement
                .constraints
                .iter()
                .map(|c| {
                    let missing = c.expected.as_ref().map_or(&[][..], |e| &e.missing[..]);
                    ConstraintMetrics {
                        topology_key: c.topology_key.clone(),
                        skew: i64::from(c.skew),
                        expected_skew: c.expected.as_ref().map(|e| i64::from(e.skew)),
                        missing_domains: missing.to_vec(),
                        max_skew: i64::from(c.max_skew),
                        // Only what is exported: a hostname key has a domain per node. A missing
                        // expected domain holds 0 pods.
                        domains: if c.domains.len() + missing.len() <= MAX_DOMAIN_SERIES {
                            (c.domains.iter())
                                .map(|(d, n)| (d.to_string(), i64::from(n)))
                                .chain(missing.iter().map(|d| (d.clone(), 0)))
                                .collect()
                        } else {
                            Vec::new()
                        },
                    }
                })
                .collect(),
            zone_loss: o
                .zone_loss
                .as_ref()
                .map(|l| (o.zone_loss_key.clone(), l.fraction)),
            blocked_reason: o.blocks().then(|| o.reason.clone()),
            rolling: o.memory.rollout_generation.is_some(),
            queued: o.state == RebalanceState::Queued,
            injection: o.injection.map(InjectionMode::as_str),
            pods_missing_constraints: o
                .admission_check
                .as_ref()
                .map(|c| i64::try_from(c.missing.len()).unwrap_or(i64::MAX)),
            relaxed_pods: o.relaxed_pods.clone(),
        }
    }
}
