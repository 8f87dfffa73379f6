//! Prometheus metrics: where each governed workload's pods are, its skew, what a zone loss would cost,
//! what the operator did about it, and how the operator itself is doing.
//!
//! The per-workload families are not kept as live series: each policy's reconcile hands over a
//! plain snapshot ([`WorkloadMetrics`] per workload) and a [`Collector`] encodes every family from
//! the snapshots at scrape time. A workload, domain, block reason or policy that is gone has no
//! series by construction: there is no series index to keep by hand. The rebalance-action counts
//! live in the same snapshot (they are monotonic for as long as the policy lists the workload),
//! and the operator's own counters (errors, reconcile durations) are ordinary metrics.
//!
//! Label values from a fixed vocabulary are Rust enums ([`Action`], [`ActionResult`],
//! [`ErrorCategory`]) so no free text (an error message, say) can become a label.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, EncodeLabelValue, EncodeMetric,
    LabelSetEncoder, LabelValueEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

pub use crate::core::errors::ErrorCategory;
use crate::core::policy_status::WorkloadOutcome;

/// `skewguard_workload_domain_pods` is emitted only for topology keys with at most this many domains,
/// so a hostname spread over a large cluster cannot explode the series count.
pub const MAX_DOMAIN_SERIES: usize = 16;

/// Upper bounds of the `skewguard_reconcile_duration_seconds` buckets.
const RECONCILE_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

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
}

/// One measured spread constraint of a workload.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConstraintMetrics {
    pub topology_key: String,
    pub skew: i64,
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
                .map(|c| ConstraintMetrics {
                    topology_key: c.topology_key.clone(),
                    skew: i64::from(c.skew),
                    max_skew: i64::from(c.max_skew),
                    // Only what is exported: a hostname key has a domain per node.
                    domains: if c.domains.len() <= MAX_DOMAIN_SERIES {
                        c.domains
                            .iter()
                            .map(|(d, n)| (d.to_string(), i64::from(n)))
                            .collect()
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
            zone_loss: o
                .zone_loss
                .as_ref()
                .map(|l| (o.zone_loss_key.clone(), l.fraction)),
            blocked_reason: o.blocks().then(|| o.reason.clone()),
            rolling: o.memory.rollout_generation.is_some(),
            queued: o.state == crate::api::RebalanceState::Queued,
            injection: o.injection.map(crate::api::InjectionMode::as_str),
            pods_missing_constraints: o
                .admission_check
                .as_ref()
                .map(|c| i64::try_from(c.missing.len()).unwrap_or(i64::MAX)),
        }
    }
}

/// A write the operator made or would have made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Evict,
    Restart,
    Inject,
    /// A pod's deletion-cost annotation (counted in its own family, not as a rebalance action).
    DeletionCost,
}

/// How an [`Action`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActionResult {
    Success,
    Blocked,
    Error,
    /// Not carried out because of `paused: true` or `--dry-run`.
    DryRun,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Evict,
        Action::Restart,
        Action::Inject,
        Action::DeletionCost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Evict => "evict",
            Action::Restart => "restart",
            Action::Inject => "inject",
            Action::DeletionCost => "deletion_cost",
        }
    }
}

impl ActionResult {
    pub const ALL: [ActionResult; 4] = [
        ActionResult::Success,
        ActionResult::Blocked,
        ActionResult::Error,
        ActionResult::DryRun,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionResult::Success => "success",
            ActionResult::Blocked => "blocked",
            ActionResult::Error => "error",
            ActionResult::DryRun => "dry_run",
        }
    }
}

/// Label values in snake_case (`dry_run`, `kube_api`), as Prometheus label values usually are; the
/// derive would write the variant names as they are spelled in Rust.
macro_rules! label_value_from_as_str {
    ($($t:ty),*) => {$(
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.as_str())
            }
        }
    )*};
}
label_value_from_as_str!(Action, ActionResult, ErrorCategory);

/// The one label set of every per-workload family; each family leaves out what it does not
/// carry (`None` labels are not encoded), so all of them are spelled in one place.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, PartialOrd, Ord)]
struct WorkloadLabels {
    namespace: String,
    policy: Option<String>,
    kind: String,
    workload: String,
    topology_key: Option<String>,
    domain: Option<String>,
    reason: Option<String>,
    action: Option<Action>,
    result: Option<ActionResult>,
    mode: Option<&'static str>,
}

impl EncodeLabelSet for WorkloadLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        let labels = [
            ("namespace", Some(self.namespace.as_str())),
            ("policy", self.policy.as_deref()),
            ("kind", Some(self.kind.as_str())),
            ("workload", Some(self.workload.as_str())),
            ("topology_key", self.topology_key.as_deref()),
            ("domain", self.domain.as_deref()),
            ("reason", self.reason.as_deref()),
            ("action", self.action.map(Action::as_str)),
            ("result", self.result.map(ActionResult::as_str)),
            ("mode", self.mode),
        ];
        for (key, value) in labels {
            if let Some(value) = value {
                (key, value).encode(encoder.encode_label())?;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: ErrorCategory,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceLabels {
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

/// (namespace, policy)
type PolicyKey = (String, String);
/// (kind, workload, action, result)
type ActionKey = (String, String, Action, ActionResult);

/// What one policy last reported, and what it did.
#[derive(Debug, Default)]
struct PolicySnapshot {
    workloads: Vec<WorkloadMetrics>,
    actions: BTreeMap<ActionKey, u64>,
}

/// Everything the collector encodes at scrape time.
#[derive(Debug, Default)]
struct Snapshots {
    policies: BTreeMap<PolicyKey, PolicySnapshot>,
    /// HAPolicies per namespace (every instance knows them, leader or not).
    policy_counts: BTreeMap<String, usize>,
}

/// Encodes the per-workload families from the snapshots.
#[derive(Debug, Clone, Default)]
struct SnapshotCollector(Arc<Mutex<Snapshots>>);

/// One family's samples, gathered before encoding so each family is written once, in order, and
/// series that two policies both report (a workload listed by a losing policy too) are written once.
struct Samples<V> {
    name: &'static str,
    help: &'static str,
    series: BTreeMap<WorkloadLabels, V>,
}

impl<V> Samples<V> {
    fn new(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            series: BTreeMap::new(),
        }
    }

    /// The first policy to report a series speaks for it.
    fn add(&mut self, labels: WorkloadLabels, value: V) {
        self.series.entry(labels).or_insert(value);
    }
}

fn encode_gauges<V: prometheus_client::encoding::EncodeGaugeValue + Copy + std::fmt::Debug>(
    encoder: &mut DescriptorEncoder,
    samples: &Samples<V>,
) -> Result<(), std::fmt::Error>
where
    ConstGauge<V>: EncodeMetric,
{
    let mut family =
        encoder.encode_descriptor(samples.name, samples.help, None, MetricType::Gauge)?;
    for (labels, value) in &samples.series {
        ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshots = lock(&self.0);
        let mut skew = Samples::new(
            "workload_skew",
            "Current skew of a workload's pods over a topology key, as kube-scheduler counts it",
        );
        let mut max_skew = Samples::new(
            "workload_max_skew",
            "The maxSkew the workload's constraint allows for the topology key",
        );
        let mut balanced = Samples::new(
            "workload_balanced",
            "1 when every constraint of the workload is within its maxSkew, else 0",
        );
        let mut domain_pods = Samples::new(
            "workload_domain_pods",
            "Pods of the workload per topology domain (only for keys with at most 16 domains)",
        );
        let mut zone_loss = Samples::<f64>::new(
            "workload_zone_loss_fraction",
            "Share of the workload's replicas lost if its worst single domain fails (1 = single point of failure)",
        );
        let mut replicas = Samples::new(
            "workload_replicas",
            "Replicas of the workload counted by the operator",
        );
        let mut blocked = Samples::new(
            "rebalance_blocked",
            "1 per reason that currently blocks rebalancing the workload",
        );
        let mut injection = Samples::new(
            "workload_injection",
            "1 with the mode (Template or Admission) by which the workload's pods get the policy's constraints",
        );
        let mut missing = Samples::new(
            "admission_pods_missing_constraints",
            "Admission mode: pods created since the constraints were published that lack them",
        );
        let mut actions: BTreeMap<WorkloadLabels, u64> = BTreeMap::new();
        let mut cost_writes: BTreeMap<WorkloadLabels, u64> = BTreeMap::new();
        for ((namespace, policy), snapshot) in &snapshots.policies {
            for w in &snapshot.workloads {
                let base = WorkloadLabels {
                    namespace: namespace.clone(),
                    kind: w.kind.clone(),
                    workload: w.workload.clone(),
                    ..Default::default()
                };
                let with_policy = WorkloadLabels {
                    policy: Some(policy.clone()),
                    ..base.clone()
                };
                replicas.add(base.clone(), w.replicas);
                balanced.add(with_policy.clone(), i64::from(w.balanced));
                for c in worst_per_key(&w.constraints) {
                    let keyed = WorkloadLabels {
                        topology_key: Some(c.topology_key.clone()),
                        ..with_policy.clone()
                    };
                    skew.add(keyed.clone(), c.skew);
                    max_skew.add(keyed, c.max_skew);
                    if c.domains.len() <= MAX_DOMAIN_SERIES {
                        for (domain, pods) in &c.domains {
                            let labels = WorkloadLabels {
                                topology_key: Some(c.topology_key.clone()),
                                domain: Some(domain.clone()),
                                ..base.clone()
                            };
                            domain_pods.add(labels, *pods);
                        }
                    }
                }
                if let Some((key, fraction)) = &w.zone_loss {
                    let labels = WorkloadLabels {
                        topology_key: Some(key.clone()),
                        ..base.clone()
                    };
                    zone_loss.add(labels, *fraction);
                }
                if let Some(mode) = w.injection {
                    let labels = WorkloadLabels {
                        mode: Some(mode),
                        ..with_policy.clone()
                    };
                    injection.add(labels, 1i64);
                }
                if let Some(n) = w.pods_missing_constraints {
                    missing.add(with_policy.clone(), n);
                }
                if let Some(reason) = &w.blocked_reason {
                    let labels = WorkloadLabels {
                        reason: Some(reason.clone()),
                        ..base.clone()
                    };
                    blocked.add(labels, 1i64);
                }
            }
            for ((kind, workload, action, result), n) in &snapshot.actions {
                let labels = WorkloadLabels {
                    namespace: namespace.clone(),
                    policy: Some(policy.clone()),
                    kind: kind.clone(),
                    workload: workload.clone(),
                    action: Some(*action),
                    result: Some(*result),
                    ..Default::default()
                };
                if *action == Action::DeletionCost {
                    let labels = WorkloadLabels {
                        action: None,
                        ..labels
                    };
                    cost_writes.insert(labels, *n);
                } else {
                    actions.insert(labels, *n);
                }
            }
        }
        for family in [
            &skew,
            &max_skew,
            &balanced,
            &domain_pods,
            &replicas,
            &blocked,
            &injection,
            &missing,
        ] {
            encode_gauges(&mut encoder, family)?;
        }
        encode_gauges(&mut encoder, &zone_loss)?;
        let mut family = encoder.encode_descriptor(
            "rebalance_actions",
            "Rebalance actions taken or attempted, by action and result",
            None,
            MetricType::Counter,
        )?;
        for (labels, n) in &actions {
            ConstCounter::new(*n).encode(family.encode_family(labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "deletion_cost_writes",
            "Writes of pods' pod-deletion-cost annotation that keep scale-in balanced, by result",
            None,
            MetricType::Counter,
        )?;
        for (labels, n) in &cost_writes {
            ConstCounter::new(*n).encode(family.encode_family(labels)?)?;
        }
        // Each workload once, whichever policies list it.
        let mut rolling = BTreeSet::new();
        let mut queued = BTreeSet::new();
        for ((namespace, _), snapshot) in &snapshots.policies {
            for w in &snapshot.workloads {
                let id = (namespace, &w.kind, &w.workload);
                if w.rolling {
                    rolling.insert(id);
                }
                if w.queued {
                    queued.insert(id);
                }
            }
        }
        for (name, help, n) in [
            (
                "rollouts_in_progress",
                "Workloads rolling out because skewguard wrote their template (at most --max-concurrent-rollouts)",
                rolling.len(),
            ),
            (
                "rollouts_queued",
                "Workloads whose template write waits for a rollout slot (state Queued)",
                queued.len(),
            ),
        ] {
            let family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX)).encode(family)?;
        }
        let mut family = encoder.encode_descriptor(
            "policies",
            "HAPolicies per namespace",
            None,
            MetricType::Gauge,
        )?;
        for (namespace, n) in &snapshots.policy_counts {
            let labels = NamespaceLabels {
                namespace: namespace.clone(),
            };
            ConstGauge::new(i64::try_from(*n).unwrap_or(i64::MAX))
                .encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// One constraint per topology key: a workload may carry two on one key (DoNotSchedule and
/// ScheduleAnyway); the one furthest over its maxSkew speaks for the key, the first one on a tie.
fn worst_per_key(constraints: &[ConstraintMetrics]) -> Vec<&ConstraintMetrics> {
    let mut worst: Vec<&ConstraintMetrics> = Vec::new();
    for c in constraints {
        match worst.iter_mut().find(|w| w.topology_key == c.topology_key) {
            Some(w) if c.skew - c.max_skew > w.skew - w.max_skew => *w = c,
            Some(_) => {}
            None => worst.push(c),
        }
    }
    worst
}

/// The operator's own metrics, registered as live series.
struct Operational {
    reconcile_duration: Histogram,
    reconcile_errors: Family<ErrorLabels, Counter>,
    leader: Gauge,
    build_info: Family<VersionLabels, Gauge>,
    admission_available: Gauge,
    admission_warnings: Gauge,
}

impl Operational {
    fn new() -> Self {
        let families = Operational {
            reconcile_duration: Histogram::new(RECONCILE_BUCKETS),
            reconcile_errors: Family::default(),
            leader: Gauge::default(),
            build_info: Family::default(),
            admission_available: Gauge::default(),
            admission_warnings: Gauge::default(),
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
}

struct Inner {
    operational: Operational,
    snapshots: SnapshotCollector,
    registry: Registry,
}

/// The operator's metrics. Clones share the same series.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<Snapshots>) -> MutexGuard<'_, Snapshots> {
    // Snapshots are replaced whole; a panicking holder cannot leave half of one behind, so a
    // poisoned lock is used as it is and metrics stay served.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Metrics {
    /// Metrics in a registry of their own, served by [`Metrics::encode`].
    pub fn new() -> Self {
        let operational = Operational::new();
        let snapshots = SnapshotCollector::default();
        let mut registry = Registry::default();
        register(&operational, &snapshots, &mut registry);
        Metrics {
            inner: Arc::new(Inner {
                operational,
                snapshots,
                registry,
            }),
        }
    }

    /// Also registers these metrics (the same series) into another registry, under `skewguard_`.
    pub fn register(&self, registry: &mut Registry) {
        register(&self.inner.operational, &self.inner.snapshots, registry);
    }

    /// Replaces what the policy reports with `workloads`. Rebalance counts of a workload stay as
    /// long as the policy lists it, and go with it.
    pub fn observe_policy(&self, namespace: &str, policy: &str, workloads: &[WorkloadMetrics]) {
        let mut snapshots = lock(&self.inner.snapshots.0);
        let entry = snapshots
            .policies
            .entry((namespace.to_string(), policy.to_string()))
            .or_default();
        let listed: BTreeSet<(&str, &str)> = workloads
            .iter()
            .map(|w| (w.kind.as_str(), w.workload.as_str()))
            .collect();
        entry
            .actions
            .retain(|(kind, name, _, _), _| listed.contains(&(kind.as_str(), name.as_str())));
        entry.workloads = workloads.to_vec();
        if entry.workloads.is_empty() && entry.actions.is_empty() {
            snapshots
                .policies
                .remove(&(namespace.to_string(), policy.to_string()));
        }
    }

    /// Removes everything the policy reported (the policy was deleted).
    pub fn forget_policy(&self, namespace: &str, policy: &str) {
        lock(&self.inner.snapshots.0)
            .policies
            .remove(&(namespace.to_string(), policy.to_string()));
    }

    /// Keeps only the policies that still exist (the others were deleted).
    pub fn retain_policies(&self, live: &BTreeSet<(String, String)>) {
        let mut snapshots = lock(&self.inner.snapshots.0);
        snapshots.policies.retain(|key, _| live.contains(key));
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for (namespace, _) in live {
            *counts.entry(namespace.clone()).or_default() += 1;
        }
        snapshots.policy_counts = counts;
    }

    /// Counts one rebalance action on a workload of a policy.
    pub fn record_action(
        &self,
        namespace: &str,
        policy: &str,
        kind: &str,
        workload: &str,
        action: Action,
        result: ActionResult,
    ) {
        *lock(&self.inner.snapshots.0)
            .policies
            .entry((namespace.to_string(), policy.to_string()))
            .or_default()
            .actions
            .entry((kind.to_string(), workload.to_string(), action, result))
            .or_default() += 1;
    }

    pub fn observe_reconcile(&self, duration: Duration) {
        self.inner
            .operational
            .reconcile_duration
            .observe(duration.as_secs_f64());
    }

    pub fn record_error(&self, error: ErrorCategory) {
        self.inner
            .operational
            .reconcile_errors
            .get_or_create(&ErrorLabels { error })
            .inc();
    }

    /// Sets the number of HAPolicies in a namespace; a namespace with none disappears.
    pub fn set_policies(&self, namespace: &str, count: usize) {
        let mut snapshots = lock(&self.inner.snapshots.0);
        if count == 0 {
            snapshots.policy_counts.remove(namespace);
        } else {
            snapshots.policy_counts.insert(namespace.to_string(), count);
        }
    }

    pub fn set_leader(&self, leader: bool) {
        self.inner.operational.leader.set(i64::from(leader));
    }

    /// What the cluster offers for admission mode, as last probed.
    pub fn set_admission(&self, support: &crate::core::injection::AdmissionSupport) {
        let operational = &self.inner.operational;
        operational
            .admission_available
            .set(i64::from(support.installed()));
        operational
            .admission_warnings
            .set(i64::try_from(support.warnings.len()).unwrap_or(i64::MAX));
    }

    /// The OpenMetrics text exposition of every series, ending with `# EOF`.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.inner.registry) {
            // Only the library's own encoders run, and writing into a String does not fail.
            text.clear();
            let _ = writeln!(text, "# encoding failed: {e}\n# EOF");
        }
        text
    }
}

fn register(operational: &Operational, snapshots: &SnapshotCollector, registry: &mut Registry) {
    let r = registry.sub_registry_with_prefix("skewguard");
    r.register_with_unit(
        "reconcile_duration",
        "Time one reconcile of a policy took",
        Unit::Seconds,
        operational.reconcile_duration.clone(),
    );
    r.register(
        "reconcile_errors",
        "Errors by category",
        operational.reconcile_errors.clone(),
    );
    r.register(
        "leader",
        "1 while this instance holds the leader lease, else 0",
        operational.leader.clone(),
    );
    r.register(
        "build_info",
        "Always 1, labelled with the operator's version",
        operational.build_info.clone(),
    );
    r.register(
        "admission_available",
        "1 when the API server serves MutatingAdmissionPolicies and skewguard's policy and binding are installed",
        operational.admission_available.clone(),
    );
    r.register(
        "admission_type_check_warnings",
        "Warnings of the API server's type check of skewguard's admission expressions",
        operational.admission_warnings.clone(),
    );
    r.register_collector(Box::new(snapshots.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(skew: i64, domains: &[(&str, i64)], blocked: Option<&str>) -> WorkloadMetrics {
        WorkloadMetrics {
            kind: "Deployment".into(),
            workload: "web".into(),
            replicas: domains.iter().map(|(_, n)| n).sum(),
            balanced: skew <= 1,
            constraints: vec![ConstraintMetrics {
                topology_key: "topology.kubernetes.io/zone".into(),
                skew,
                max_skew: 1,
                domains: domains.iter().map(|(d, n)| (d.to_string(), *n)).collect(),
            }],
            zone_loss: None,
            blocked_reason: blocked.map(str::to_string),
            ..Default::default()
        }
    }

    fn lines_with(m: &Metrics, needle: &str) -> Vec<String> {
        m.encode()
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_injection_mode_and_admission_health_are_series() {
        let m = Metrics::new();
        m.observe_policy(
            "ns",
            "p",
            &[WorkloadMetrics {
                injection: Some("Admission"),
                pods_missing_constraints: Some(2),
                ..web(0, &[("a", 1)], None)
            }],
        );
        assert_eq!(
            lines_with(&m, "skewguard_workload_injection{"),
            [
                r#"skewguard_workload_injection{namespace="ns",policy="p",kind="Deployment",workload="web",mode="Admission"} 1"#
            ]
        );
        assert_eq!(
            lines_with(&m, "skewguard_admission_pods_missing_constraints{"),
            [
                r#"skewguard_admission_pods_missing_constraints{namespace="ns",policy="p",kind="Deployment",workload="web"} 2"#
            ]
        );
        m.set_admission(&crate::core::injection::AdmissionSupport {
            served: true,
            policy_installed: true,
            binding_installed: true,
            warnings: vec!["w".into()],
        });
        assert_eq!(
            lines_with(&m, "skewguard_admission_available "),
            ["skewguard_admission_available 1"]
        );
        assert_eq!(
            lines_with(&m, "skewguard_admission_type_check_warnings "),
            ["skewguard_admission_type_check_warnings 1"]
        );
        // Template mode, nothing missing to tell: no missing-constraints series.
        m.observe_policy(
            "ns",
            "p",
            &[WorkloadMetrics {
                injection: Some("Template"),
                ..web(0, &[("a", 1)], None)
            }],
        );
        assert!(lines_with(&m, "skewguard_admission_pods_missing_constraints{").is_empty());
        assert_eq!(lines_with(&m, "mode=\"Template\"").len(), 1);
    }

    #[test]
    fn stale_domains_and_block_reasons_disappear() {
        let m = Metrics::new();
        m.observe_policy(
            "ns",
            "p",
            &[web(2, &[("a", 0), ("c", 2)], Some("NoCapacity"))],
        );
        assert_eq!(lines_with(&m, "domain=").len(), 2);
        assert_eq!(lines_with(&m, "reason=\"NoCapacity\"").len(), 1);

        m.observe_policy(
            "ns",
            "p",
            &[web(0, &[("a", 1), ("b", 1)], Some("PodDisruptionBudget"))],
        );
        let domains = lines_with(&m, "domain=");
        assert_eq!(domains.len(), 2, "{domains:?}");
        assert!(domains.iter().all(|l| !l.contains("domain=\"c\"")));
        assert!(lines_with(&m, "reason=\"NoCapacity\"").is_empty());
        assert_eq!(lines_with(&m, "reason=\"PodDisruptionBudget\"").len(), 1);
    }

    #[test]
    fn a_workload_two_policies_list_keeps_its_shared_series_until_both_let_go() {
        let m = Metrics::new();
        let w = web(0, &[("a", 1), ("c", 1)], None);
        m.observe_policy("ns", "older", std::slice::from_ref(&w));
        m.observe_policy(
            "ns",
            "younger",
            &[WorkloadMetrics {
                blocked_reason: Some("Conflict".into()),
                ..w.clone()
            }],
        );
        m.forget_policy("ns", "older");
        assert_eq!(lines_with(&m, "skewguard_workload_replicas{").len(), 1);
        assert_eq!(lines_with(&m, "skewguard_workload_domain_pods{").len(), 2);
        assert!(lines_with(&m, "policy=\"older\"").is_empty());
        m.forget_policy("ns", "younger");
        assert!(lines_with(&m, "workload=\"web\"").is_empty());
    }

    #[test]
    fn counters_stay_while_listed_and_go_with_the_workload() {
        let m = Metrics::new();
        let w = web(2, &[("a", 0), ("c", 2)], None);
        m.record_action(
            "ns",
            "p",
            "Deployment",
            "web",
            Action::Evict,
            ActionResult::Success,
        );
        m.observe_policy("ns", "p", std::slice::from_ref(&w));
        m.observe_policy("ns", "p", std::slice::from_ref(&w));
        assert_eq!(
            lines_with(&m, "skewguard_rebalance_actions_total{"),
            vec![
                "skewguard_rebalance_actions_total{namespace=\"ns\",policy=\"p\",kind=\"Deployment\",workload=\"web\",action=\"evict\",result=\"success\"} 1"
            ]
        );
        m.observe_policy("ns", "p", &[]);
        assert!(lines_with(&m, "skewguard_rebalance_actions_total{").is_empty());
        assert!(lock(&m.inner.snapshots.0).policies.is_empty());
    }

    #[test]
    fn deletion_cost_writes_have_their_own_family() {
        let m = Metrics::new();
        let w = web(2, &[("a", 0), ("c", 2)], None);
        for result in [
            ActionResult::Success,
            ActionResult::Success,
            ActionResult::Error,
        ] {
            m.record_action("ns", "p", "Deployment", "web", Action::DeletionCost, result);
        }
        m.observe_policy("ns", "p", std::slice::from_ref(&w));
        assert_eq!(
            lines_with(&m, "skewguard_deletion_cost_writes_total{"),
            vec![
                "skewguard_deletion_cost_writes_total{namespace=\"ns\",policy=\"p\",kind=\"Deployment\",workload=\"web\",result=\"success\"} 2",
                "skewguard_deletion_cost_writes_total{namespace=\"ns\",policy=\"p\",kind=\"Deployment\",workload=\"web\",result=\"error\"} 1",
            ]
        );
        assert!(lines_with(&m, "action=\"deletion_cost\"").is_empty());
    }

    #[test]
    fn the_constraint_furthest_over_speaks_for_a_key() {
        let c = |skew, max_skew| ConstraintMetrics {
            topology_key: "k".into(),
            skew,
            max_skew,
            domains: vec![],
        };
        let cs = [c(2, 2), c(2, 1), c(1, 1)];
        assert_eq!(worst_per_key(&cs), vec![&cs[1]]);
    }

    #[test]
    fn deleted_policies_leave_no_series() {
        let m = Metrics::new();
        let w = web(2, &[("a", 0), ("c", 2)], Some("NoCapacity"));
        m.observe_policy("ns", "gone", std::slice::from_ref(&w));
        m.observe_policy(
            "ns",
            "kept",
            &[WorkloadMetrics {
                workload: "api".into(),
                ..w
            }],
        );
        let live = BTreeSet::from([("ns".to_string(), "kept".to_string())]);
        m.retain_policies(&live);
        assert!(lines_with(&m, "workload=\"web\"").is_empty());
        assert!(!lines_with(&m, "workload=\"api\"").is_empty());
        assert_eq!(
            lines_with(&m, "skewguard_policies{"),
            vec!["skewguard_policies{namespace=\"ns\"} 1"]
        );
    }

    #[test]
    fn rollouts_in_progress_and_queued_count_each_workload_once() {
        let m = Metrics::new();
        let rolling = WorkloadMetrics {
            rolling: true,
            ..web(0, &[("a", 1)], None)
        };
        let queued = WorkloadMetrics {
            workload: "api".into(),
            queued: true,
            ..web(0, &[("a", 1)], None)
        };
        m.observe_policy("ns", "p", &[rolling.clone(), queued]);
        m.observe_policy("ns", "younger", &[rolling]);
        assert_eq!(
            lines_with(&m, "skewguard_rollouts_"),
            vec![
                "skewguard_rollouts_in_progress 1",
                "skewguard_rollouts_queued 1"
            ]
        );
    }

    #[test]
    fn namespaces_without_policies_disappear() {
        let m = Metrics::new();
        m.set_policies("a", 2);
        m.set_policies("b", 1);
        m.set_policies("a", 0);
        assert_eq!(
            lines_with(&m, "skewguard_policies{"),
            vec!["skewguard_policies{namespace=\"b\"} 1"]
        );
    }
}
