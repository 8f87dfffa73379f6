//! Prometheus metrics: where each governed workload's pods are, its skew, what a zone loss would cost,
//! what the operator did about it, and how the operator itself is doing.
//!
//! [`Metrics`] registers its families into a [`Registry`] and is cheap to clone into every task. The
//! reconciler hands it plain data ([`WorkloadMetrics`]) once per policy; [`Metrics::observe_policy`]
//! sets those series and removes the ones the policy no longer produces, so workloads, domains, block
//! reasons and policies that are gone disappear from `/metrics`.
//!
//! Label values that come from a fixed vocabulary are Rust enums ([`Action`], [`ActionResult`],
//! [`ErrorCategory`]) so no free text (an error message, say) can become a label.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

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

/// A disruption the operator made or would have made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Evict,
    Restart,
    Inject,
}

/// How an [`Action`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActionResult {
    Success,
    Blocked,
    Error,
    /// Not carried out because of `paused: true` or `--dry-run`.
    DryRun,
}

/// The fixed categories of reconcile errors (the `error` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCategory {
    /// The API server could not be read or did not answer.
    KubeApi,
    InvalidPolicy,
    InvalidWorkload,
    /// Two policies select the same workload, or a write lost an optimistic-concurrency race.
    Conflict,
    Eviction,
    /// A server-side apply into a workload failed.
    Apply,
    /// Writing the policy's status failed.
    Status,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::Evict, Action::Restart, Action::Inject];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Evict => "evict",
            Action::Restart => "restart",
            Action::Inject => "inject",
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

impl ErrorCategory {
    pub const ALL: [ErrorCategory; 7] = [
        ErrorCategory::KubeApi,
        ErrorCategory::InvalidPolicy,
        ErrorCategory::InvalidWorkload,
        ErrorCategory::Conflict,
        ErrorCategory::Eviction,
        ErrorCategory::Apply,
        ErrorCategory::Status,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCategory::KubeApi => "kube_api",
            ErrorCategory::InvalidPolicy => "invalid_policy",
            ErrorCategory::InvalidWorkload => "invalid_workload",
            ErrorCategory::Conflict => "conflict",
            ErrorCategory::Eviction => "eviction",
            ErrorCategory::Apply => "apply",
            ErrorCategory::Status => "status",
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConstraintLabels {
    namespace: String,
    policy: String,
    kind: String,
    workload: String,
    topology_key: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyWorkloadLabels {
    namespace: String,
    policy: String,
    kind: String,
    workload: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DomainLabels {
    namespace: String,
    kind: String,
    workload: String,
    topology_key: String,
    domain: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkloadKeyLabels {
    namespace: String,
    kind: String,
    workload: String,
    topology_key: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkloadLabels {
    namespace: String,
    kind: String,
    workload: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    namespace: String,
    policy: String,
    kind: String,
    workload: String,
    action: Action,
    result: ActionResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BlockedLabels {
    namespace: String,
    kind: String,
    workload: String,
    reason: String,
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

/// One series a policy's workload put on `/metrics` (a constraint stands for both skew and max_skew).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum Series {
    Constraint(ConstraintLabels),
    Balanced(PolicyWorkloadLabels),
    DomainPods(DomainLabels),
    ZoneLoss(WorkloadKeyLabels),
    Replicas(WorkloadLabels),
    Blocked(BlockedLabels),
    Actions(ActionLabels),
}

/// (kind, workload name)
type WorkloadKey = (String, String);
/// (namespace, policy)
type PolicyKey = (String, String);

/// Which series each policy emitted, per workload, and how many policies emit each series: two
/// policies may list the same workload (the younger one as Blocked/Conflict), and a series without a
/// `policy` label stays until neither does.
#[derive(Default)]
struct Index {
    policies: HashMap<PolicyKey, HashMap<WorkloadKey, HashSet<Series>>>,
    owners: HashMap<Series, usize>,
}

struct Families {
    skew: Family<ConstraintLabels, Gauge>,
    max_skew: Family<ConstraintLabels, Gauge>,
    balanced: Family<PolicyWorkloadLabels, Gauge>,
    domain_pods: Family<DomainLabels, Gauge>,
    zone_loss_fraction: Family<WorkloadKeyLabels, Gauge<f64, AtomicU64>>,
    replicas: Family<WorkloadLabels, Gauge>,
    rebalance_actions: Family<ActionLabels, Counter>,
    rebalance_blocked: Family<BlockedLabels, Gauge>,
    reconcile_duration: Histogram,
    reconcile_errors: Family<ErrorLabels, Counter>,
    policies: Family<NamespaceLabels, Gauge>,
    leader: Gauge,
    build_info: Family<VersionLabels, Gauge>,
}

struct Inner {
    families: Families,
    registry: Registry,
    index: Mutex<Index>,
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

impl Families {
    fn new() -> Self {
        let families = Families {
            skew: Family::default(),
            max_skew: Family::default(),
            balanced: Family::default(),
            domain_pods: Family::default(),
            zone_loss_fraction: Family::default(),
            replicas: Family::default(),
            rebalance_actions: Family::default(),
            rebalance_blocked: Family::default(),
            reconcile_duration: Histogram::new(RECONCILE_BUCKETS),
            reconcile_errors: Family::default(),
            policies: Family::default(),
            leader: Gauge::default(),
            build_info: Family::default(),
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

    fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("skewguard");
        r.register(
            "workload_skew",
            "Current skew of a workload's pods over a topology key, as kube-scheduler counts it",
            self.skew.clone(),
        );
        r.register(
            "workload_max_skew",
            "The maxSkew the workload's constraint allows for the topology key",
            self.max_skew.clone(),
        );
        r.register(
            "workload_balanced",
            "1 when every constraint of the workload is within its maxSkew, else 0",
            self.balanced.clone(),
        );
        r.register(
            "workload_domain_pods",
            "Pods of the workload per topology domain (only for keys with at most 16 domains)",
            self.domain_pods.clone(),
        );
        r.register(
            "workload_zone_loss_fraction",
            "Share of the workload's replicas lost if its worst single domain fails (1 = single point of failure)",
            self.zone_loss_fraction.clone(),
        );
        r.register(
            "workload_replicas",
            "Replicas of the workload counted by the operator",
            self.replicas.clone(),
        );
        r.register(
            "rebalance_actions",
            "Rebalance actions taken or attempted, by action and result",
            self.rebalance_actions.clone(),
        );
        r.register(
            "rebalance_blocked",
            "1 per reason that currently blocks rebalancing the workload",
            self.rebalance_blocked.clone(),
        );
        r.register_with_unit(
            "reconcile_duration",
            "Time one reconcile of a policy took",
            Unit::Seconds,
            self.reconcile_duration.clone(),
        );
        r.register(
            "reconcile_errors",
            "Reconcile errors by category",
            self.reconcile_errors.clone(),
        );
        r.register(
            "policies",
            "HAPolicies per namespace",
            self.policies.clone(),
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
    }

    /// Sets the series one workload produces and returns them.
    fn set_workload(&self, namespace: &str, policy: &str, w: &WorkloadMetrics) -> Vec<Series> {
        let ns = || namespace.to_string();
        let with_key = |topology_key: &str| WorkloadKeyLabels {
            namespace: ns(),
            kind: w.kind.clone(),
            workload: w.workload.clone(),
            topology_key: topology_key.to_string(),
        };
        let mut series = Vec::new();

        let replicas = WorkloadLabels {
            namespace: ns(),
            kind: w.kind.clone(),
            workload: w.workload.clone(),
        };
        self.replicas.get_or_create(&replicas).set(w.replicas);
        series.push(Series::Replicas(replicas));

        let balanced = PolicyWorkloadLabels {
            namespace: ns(),
            policy: policy.to_string(),
            kind: w.kind.clone(),
            workload: w.workload.clone(),
        };
        self.balanced
            .get_or_create(&balanced)
            .set(i64::from(w.balanced));
        series.push(Series::Balanced(balanced));

        for c in worst_per_key(&w.constraints) {
            let labels = ConstraintLabels {
                namespace: ns(),
                policy: policy.to_string(),
                kind: w.kind.clone(),
                workload: w.workload.clone(),
                topology_key: c.topology_key.clone(),
            };
            self.skew.get_or_create(&labels).set(c.skew);
            self.max_skew.get_or_create(&labels).set(c.max_skew);
            series.push(Series::Constraint(labels));

            if c.domains.len() <= MAX_DOMAIN_SERIES {
                for (domain, pods) in &c.domains {
                    let labels = DomainLabels {
                        namespace: ns(),
                        kind: w.kind.clone(),
                        workload: w.workload.clone(),
                        topology_key: c.topology_key.clone(),
                        domain: domain.clone(),
                    };
                    self.domain_pods.get_or_create(&labels).set(*pods);
                    series.push(Series::DomainPods(labels));
                }
            }
        }

        if let Some((topology_key, fraction)) = &w.zone_loss {
            let labels = with_key(topology_key);
            self.zone_loss_fraction
                .get_or_create(&labels)
                .set(*fraction);
            series.push(Series::ZoneLoss(labels));
        }

        if let Some(reason) = &w.blocked_reason {
            let labels = BlockedLabels {
                namespace: ns(),
                kind: w.kind.clone(),
                workload: w.workload.clone(),
                reason: reason.clone(),
            };
            self.rebalance_blocked.get_or_create(&labels).set(1);
            series.push(Series::Blocked(labels));
        }
        series
    }

    /// Removes the series; whether it was there does not matter.
    fn remove(&self, series: &Series) {
        let _present = match series {
            Series::Constraint(l) => self.skew.remove(l) | self.max_skew.remove(l),
            Series::Balanced(l) => self.balanced.remove(l),
            Series::DomainPods(l) => self.domain_pods.remove(l),
            Series::ZoneLoss(l) => self.zone_loss_fraction.remove(l),
            Series::Replicas(l) => self.replicas.remove(l),
            Series::Blocked(l) => self.rebalance_blocked.remove(l),
            Series::Actions(l) => self.rebalance_actions.remove(l),
        };
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

impl Index {
    /// Replaces what `policy` emits with `next`, removing series nobody emits any more.
    fn replace(
        &mut self,
        families: &Families,
        policy: PolicyKey,
        next: HashMap<WorkloadKey, HashSet<Series>>,
    ) {
        let previous = self.policies.remove(&policy).unwrap_or_default();
        let old: HashSet<&Series> = previous.values().flatten().collect();
        let new: HashSet<&Series> = next.values().flatten().collect();
        for s in new.difference(&old) {
            *self.owners.entry((*s).clone()).or_default() += 1;
        }
        for s in old.difference(&new) {
            self.release(families, s);
        }
        if !next.is_empty() {
            self.policies.insert(policy, next);
        }
    }

    fn release(&mut self, families: &Families, series: &Series) {
        match self.owners.get_mut(series) {
            Some(n) if *n > 1 => *n -= 1,
            _ => {
                self.owners.remove(series);
                families.remove(series);
            }
        }
    }
}

impl Metrics {
    /// Metrics in a registry of their own, served by [`Metrics::encode`].
    pub fn new() -> Self {
        let families = Families::new();
        let mut registry = Registry::default();
        families.register(&mut registry);
        Metrics {
            inner: Arc::new(Inner {
                families,
                registry,
                index: Mutex::new(Index::default()),
            }),
        }
    }

    /// Also registers these metrics (the same series) into another registry, under `skewguard_`.
    pub fn register(&self, registry: &mut Registry) {
        self.inner.families.register(registry);
    }

    /// Sets every series of the policy's workloads and removes those of workloads, topology keys,
    /// domains and block reasons the policy no longer reports. Rebalance counters of a workload stay
    /// as long as the policy lists it.
    pub fn observe_policy(&self, namespace: &str, policy: &str, workloads: &[WorkloadMetrics]) {
        let f = &self.inner.families;
        let mut index = self.index();
        let key = (namespace.to_string(), policy.to_string());
        let previous = index.policies.get(&key);
        let mut next: HashMap<WorkloadKey, HashSet<Series>> = HashMap::new();
        for w in workloads {
            let wkey = (w.kind.clone(), w.workload.clone());
            let counters: Vec<Series> = previous
                .and_then(|p| p.get(&wkey))
                .into_iter()
                .flatten()
                .filter(|s| matches!(s, Series::Actions(_)))
                .cloned()
                .collect();
            let entry = next.entry(wkey).or_default();
            entry.extend(f.set_workload(namespace, policy, w));
            entry.extend(counters);
        }
        index.replace(f, key, next);
    }

    /// Removes every series of the policy's workloads (the policy was deleted).
    pub fn forget_policy(&self, namespace: &str, policy: &str) {
        let mut index = self.index();
        let key = (namespace.to_string(), policy.to_string());
        index.replace(&self.inner.families, key, HashMap::new());
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
        let labels = ActionLabels {
            namespace: namespace.to_string(),
            policy: policy.to_string(),
            kind: kind.to_string(),
            workload: workload.to_string(),
            action,
            result,
        };
        let mut index = self.index();
        self.inner
            .families
            .rebalance_actions
            .get_or_create(&labels)
            .inc();
        let series = Series::Actions(labels);
        let emitted = index
            .policies
            .entry((namespace.to_string(), policy.to_string()))
            .or_default()
            .entry((kind.to_string(), workload.to_string()))
            .or_default();
        if emitted.insert(series.clone()) {
            *index.owners.entry(series).or_default() += 1;
        }
    }

    pub fn observe_reconcile(&self, duration: Duration) {
        self.inner
            .families
            .reconcile_duration
            .observe(duration.as_secs_f64());
    }

    pub fn record_error(&self, error: ErrorCategory) {
        self.inner
            .families
            .reconcile_errors
            .get_or_create(&ErrorLabels { error })
            .inc();
    }

    /// Sets the number of HAPolicies in a namespace; a namespace with none disappears.
    pub fn set_policies(&self, namespace: &str, count: usize) {
        let labels = NamespaceLabels {
            namespace: namespace.to_string(),
        };
        let policies = &self.inner.families.policies;
        if count == 0 {
            policies.remove(&labels);
        } else {
            policies
                .get_or_create(&labels)
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    pub fn set_leader(&self, leader: bool) {
        self.inner.families.leader.set(i64::from(leader));
    }

    /// The OpenMetrics text exposition of every series, ending with `# EOF`.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Held so a scrape never sees half of an observe_policy.
        let _index = self.index();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.inner.registry) {
            // Only the library's own encoders run, and writing into a String does not fail.
            text.clear();
            let _ = writeln!(text, "# encoding failed: {e}\n# EOF");
        }
        text
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        // The index holds no invariant a panicking holder could break halfway that matters more
        // than keeping metrics served, so a poisoned lock is used as it is.
        self.inner
            .index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
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
        assert!(m.index().owners.is_empty() && m.index().policies.is_empty());
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
