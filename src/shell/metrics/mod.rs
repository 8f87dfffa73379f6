//! Prometheus metrics: where each governed workload's pods are, its skew, what a zone loss would cost,
//! what the operator did about it, and how the operator itself is doing.
//!
//! Two halves: [`workload`] encodes the per-workload families at scrape time from the plain
//! snapshots each policy's reconcile hands over (so a workload, domain or policy that is gone
//! has no series by construction), and [`operator`] holds the operator's own live series. Label
//! values from a fixed vocabulary are Rust enums ([`WriteKind`], [`ActionResult`],
//! [`ErrorCategory`]), so no free text (an error message, say) can become a label.

mod operator;
mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use prometheus_client::registry::Registry;

pub use crate::core::errors::ErrorCategory;
pub use crate::core::pipeline::{
    ActionResult, ConstraintMetrics, MAX_DOMAIN_SERIES, WorkloadMetrics, WriteKind, ZoneMetrics,
};

use operator::{ErrorLabels, Operational};
use workload::SnapshotCollector;

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
label_value_from_as_str!(WriteKind, ActionResult, ErrorCategory);

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
        let mut snapshots = self.inner.snapshots.lock();
        let key = (namespace.to_string(), policy.to_string());
        let entry = snapshots.policies.entry(key.clone()).or_default();
        let listed: BTreeSet<(&str, &str)> = workloads
            .iter()
            .map(|w| (w.kind.as_str(), w.workload.as_str()))
            .collect();
        entry
            .actions
            .retain(|(kind, name, _, _), _| listed.contains(&(kind.as_str(), name.as_str())));
        entry.workloads = workloads.to_vec();
        if entry.is_empty() {
            snapshots.policies.remove(&key);
        }
    }

    /// Replaces what the policy reports of its zones' health.
    pub fn observe_zones(&self, namespace: &str, policy: &str, zones: &[ZoneMetrics]) {
        let mut snapshots = self.inner.snapshots.lock();
        let key = (namespace.to_string(), policy.to_string());
        let entry = snapshots.policies.entry(key.clone()).or_default();
        entry.zones = zones.to_vec();
        if entry.is_empty() {
            snapshots.policies.remove(&key);
        }
    }

    /// Removes everything the policy reported (the policy was deleted).
    pub fn forget_policy(&self, namespace: &str, policy: &str) {
        self.inner
            .snapshots
            .lock()
            .policies
            .remove(&(namespace.to_string(), policy.to_string()));
    }

    /// Keeps only the policies that still exist (the others were deleted).
    pub fn retain_policies(&self, live: &BTreeSet<(String, String)>) {
        let mut snapshots = self.inner.snapshots.lock();
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
        action: WriteKind,
        result: ActionResult,
    ) {
        *self
            .inner
            .snapshots
            .lock()
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

    /// A move was judged this long after the pod cache saw its replacement Ready.
    pub fn observe_ready_to_judged(&self, duration: Duration) {
        self.inner
            .operational
            .ready_to_judged
            .observe(duration.as_secs_f64());
    }

    /// A workload's next eviction went out this long after its previous move was judged.
    pub fn observe_judged_to_eviction(&self, duration: Duration) {
        self.inner
            .operational
            .judged_to_eviction
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
        let mut snapshots = self.inner.snapshots.lock();
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
    operational.register(r);
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
                ..Default::default()
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
    fn each_zone_has_a_series_per_state_and_relaxed_pods_are_counted() {
        let m = Metrics::new();
        let zone = |domain: &str, health| ZoneMetrics {
            topology_key: "topology.kubernetes.io/zone".into(),
            domain: domain.into(),
            health,
        };
        m.observe_zones("ns", "p", &[zone("a", "Out"), zone("c", "Healthy")]);
        let a = lines_with(
            &m,
            "skewguard_zone_health{namespace=\"ns\",policy=\"p\",topology_key=\"topology.kubernetes.io/zone\",domain=\"a\"",
        );
        assert_eq!(
            a,
            [
                r#"skewguard_zone_health{namespace="ns",policy="p",topology_key="topology.kubernetes.io/zone",domain="a",state="Healthy"} 0"#,
                r#"skewguard_zone_health{namespace="ns",policy="p",topology_key="topology.kubernetes.io/zone",domain="a",state="Out"} 1"#,
                r#"skewguard_zone_health{namespace="ns",policy="p",topology_key="topology.kubernetes.io/zone",domain="a",state="Recovering"} 0"#,
            ]
        );
        m.observe_policy(
            "ns",
            "p",
            &[WorkloadMetrics {
                relaxed_pods: vec![("topology.kubernetes.io/zone".into(), 3)],
                ..web(0, &[("c", 3)], None)
            }],
        );
        assert_eq!(
            lines_with(&m, "skewguard_workload_relaxed_pods{"),
            [
                r#"skewguard_workload_relaxed_pods{namespace="ns",policy="p",kind="Deployment",workload="web",topology_key="topology.kubernetes.io/zone"} 3"#
            ]
        );
        // A policy that no longer tracks zones (or is gone) has no zone series.
        m.observe_zones("ns", "p", &[]);
        assert!(lines_with(&m, "skewguard_zone_health{").is_empty());
        m.observe_zones("ns", "q", &[zone("a", "Recovering")]);
        m.retain_policies(&BTreeSet::from([("ns".to_string(), "p".to_string())]));
        assert!(lines_with(&m, "skewguard_zone_health{").is_empty());
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
            WriteKind::Evict,
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
        assert!(m.inner.snapshots.lock().policies.is_empty());
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
            m.record_action(
                "ns",
                "p",
                "Deployment",
                "web",
                WriteKind::DeletionCost,
                result,
            );
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
            ..Default::default()
        };
        let cs = [c(2, 2), c(2, 1), c(1, 1)];
        assert_eq!(workload::worst_per_key(&cs), vec![&cs[1]]);
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
