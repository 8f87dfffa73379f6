//! The per-workload families, encoded at scrape time from what each policy's reconcile last
//! reported ([`WorkloadMetrics`] per workload, made by the pure policy phase).
//!
//! Nothing here is a live series: a workload, domain, block reason or policy that is gone has no
//! series by construction. **A new per-workload gauge** is a field of [`WorkloadMetrics`] (filled
//! in its `From<&WorkloadOutcome>`) and one row of [`GAUGES`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, EncodeMetric, LabelSetEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::core::pipeline::{
    ActionResult, ConstraintMetrics, MAX_DOMAIN_SERIES, WorkloadMetrics, WriteKind, ZoneMetrics,
};

/// The labels a family adds to a workload's (`namespace`, `policy`, `kind`, `workload`); `None`
/// labels are not encoded.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Extra {
    topology_key: Option<String>,
    domain: Option<String>,
    reason: Option<String>,
    mode: Option<&'static str>,
    state: Option<&'static str>,
}

/// A sample's value: whole numbers encode as integers, ratios as floats.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Value {
    Int(i64),
    Ratio(f64),
}

/// One per-workload gauge family: its name (after `skewguard_`), help, whether its series carry
/// the `policy` label, and the samples one workload gives it.
struct Gauge {
    name: &'static str,
    help: &'static str,
    /// Facts about the workload itself (its replicas, where its pods are) leave the policy out:
    /// two policies listing one workload report the same series once.
    by_policy: bool,
    samples: fn(&WorkloadMetrics) -> Vec<(Extra, Value)>,
}

fn one(value: i64) -> Vec<(Extra, Value)> {
    vec![(Extra::default(), Value::Int(value))]
}

fn per_key(w: &WorkloadMetrics, value: fn(&ConstraintMetrics) -> i64) -> Vec<(Extra, Value)> {
    worst_per_key(&w.constraints)
        .into_iter()
        .map(|c| {
            let extra = Extra {
                topology_key: Some(c.topology_key.clone()),
                ..Extra::default()
            };
            (extra, Value::Int(value(c)))
        })
        .collect()
}

/// Every per-workload gauge, in the order they are encoded.
const GAUGES: &[Gauge] = &[
    Gauge {
        name: "workload_skew",
        help: "Current skew of a workload's pods over a topology key, as kube-scheduler counts it",
        by_policy: true,
        samples: |w| per_key(w, |c| c.skew),
    },
    Gauge {
        name: "workload_expected_skew",
        help: "Skew of a workload's pods over the expected domains of a topology key (those without a node the pods may use count 0); only for keys with expected domains",
        by_policy: true,
        samples: |w| {
            worst_per_key(&w.constraints)
                .into_iter()
                .filter_map(|c| {
                    let extra = Extra {
                        topology_key: Some(c.topology_key.clone()),
                        ..Extra::default()
                    };
                    c.expected_skew.map(|skew| (extra, Value::Int(skew)))
                })
                .collect()
        },
    },
    Gauge {
        name: "workload_missing_domain",
        help: "1 per expected domain of a topology key in which the workload's pods have no node to run on",
        by_policy: true,
        samples: |w| {
            worst_per_key(&w.constraints)
                .into_iter()
                .flat_map(|c| {
                    c.missing_domains.iter().map(|domain| {
                        let extra = Extra {
                            topology_key: Some(c.topology_key.clone()),
                            domain: Some(domain.clone()),
                            ..Extra::default()
                        };
                        (extra, Value::Int(1))
                    })
                })
                .collect()
        },
    },
    Gauge {
        name: "workload_max_skew",
        help: "The maxSkew the workload's constraint allows for the topology key",
        by_policy: true,
        samples: |w| per_key(w, |c| c.max_skew),
    },
    Gauge {
        name: "workload_balanced",
        help: "1 when every constraint of the workload is within its maxSkew, else 0",
        by_policy: true,
        samples: |w| one(i64::from(w.balanced)),
    },
    Gauge {
        name: "workload_domain_pods",
        help: "Pods of the workload per topology domain (only for keys with at most 16 domains)",
        by_policy: false,
        samples: |w| {
            worst_per_key(&w.constraints)
                .into_iter()
                .filter(|c| c.domains.len() <= MAX_DOMAIN_SERIES)
                .flat_map(|c| {
                    c.domains.iter().map(|(domain, pods)| {
                        let extra = Extra {
                            topology_key: Some(c.topology_key.clone()),
                            domain: Some(domain.clone()),
                            ..Extra::default()
                        };
                        (extra, Value::Int(*pods))
                    })
                })
                .collect()
        },
    },
    Gauge {
        name: "workload_replicas",
        help: "Replicas of the workload counted by the operator",
        by_policy: false,
        samples: |w| one(w.replicas),
    },
    Gauge {
        name: "rebalance_blocked",
        help: "1 per reason that currently blocks rebalancing the workload",
        by_policy: false,
        samples: |w| {
            let extra = |reason: &String| Extra {
                reason: Some(reason.clone()),
                ..Extra::default()
            };
            w.blocked_reason
                .iter()
                .map(|r| (extra(r), Value::Int(1)))
                .collect()
        },
    },
    Gauge {
        name: "workload_injection",
        help: "1 with the mode (Template or Admission) by which the workload's pods get the policy's constraints",
        by_policy: true,
        samples: |w| {
            let extra = |mode| Extra {
                mode: Some(mode),
                ..Extra::default()
            };
            w.injection
                .map(|m| (extra(m), Value::Int(1)))
                .into_iter()
                .collect()
        },
    },
    Gauge {
        name: "admission_pods_missing_constraints",
        help: "Admission mode: pods created since the constraints were published that lack them",
        by_policy: true,
        samples: |w| w.pods_missing_constraints.map_or_else(Vec::new, one),
    },
    Gauge {
        name: "workload_relaxed_pods",
        help: "Per Adaptive topology key published in admission mode: the workload's running pods admitted with ScheduleAnyway (while a zone was Out or Recovering)",
        by_policy: true,
        samples: |w| {
            (w.relaxed_pods.iter())
                .map(|(key, n)| {
                    let extra = Extra {
                        topology_key: Some(key.clone()),
                        ..Extra::default()
                    };
                    (extra, Value::Int(*n))
                })
                .collect()
        },
    },
    Gauge {
        name: "workload_domain_loss_ratio",
        help: "Share of the workload's replicas lost if its worst single domain of topology_key fails (1 = single point of failure)",
        by_policy: false,
        samples: domain_loss,
    },
    Gauge {
        name: DEPRECATED_ZONE_LOSS,
        help: "Deprecated, emitted for one release (CHANGELOG): the same series as skewguard_workload_domain_loss_ratio",
        by_policy: false,
        samples: domain_loss,
    },
];

/// The family `workload_domain_loss_ratio` replaced (CHANGELOG); emitted alike for one release so
/// dashboards and alerts on the old name keep working while they move.
const DEPRECATED_ZONE_LOSS: &str = "workload_zone_loss_fraction";

/// The worst single-domain loss on the key it is measured on (the zone key when the workload
/// spreads over zones, else its first constraint's key), as a ratio.
fn domain_loss(w: &WorkloadMetrics) -> Vec<(Extra, Value)> {
    w.zone_loss
        .iter()
        .map(|(key, ratio)| {
            let extra = Extra {
                topology_key: Some(key.clone()),
                ..Extra::default()
            };
            (extra, Value::Ratio(*ratio))
        })
        .collect()
}

/// One constraint per topology key: a workload may carry two on one key (DoNotSchedule and
/// ScheduleAnyway); the one furthest over its maxSkew speaks for the key, the first one on a tie.
pub(super) fn worst_per_key(constraints: &[ConstraintMetrics]) -> Vec<&ConstraintMetrics> {
    let over = |c: &ConstraintMetrics| c.expected_skew.unwrap_or(c.skew) - c.max_skew;
    let mut worst: Vec<&ConstraintMetrics> = Vec::new();
    for c in constraints {
        match worst.iter_mut().find(|w| w.topology_key == c.topology_key) {
            Some(w) if over(c) > over(w) => *w = c,
            Some(_) => {}
            None => worst.push(c),
        }
    }
    worst
}

/// The full label set of a per-workload series.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, PartialOrd, Ord)]
struct Labels {
    namespace: String,
    policy: Option<String>,
    kind: String,
    workload: String,
    extra: Extra,
    action: Option<WriteKind>,
    result: Option<ActionResult>,
}

impl EncodeLabelSet for Labels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        let labels = [
            ("namespace", Some(self.namespace.as_str())),
            ("policy", self.policy.as_deref()),
            ("kind", Some(self.kind.as_str())),
            ("workload", Some(self.workload.as_str())),
            ("topology_key", self.extra.topology_key.as_deref()),
            ("domain", self.extra.domain.as_deref()),
            ("reason", self.extra.reason.as_deref()),
            ("action", self.action.map(WriteKind::as_str)),
            ("result", self.result.map(ActionResult::as_str)),
            ("mode", self.extra.mode),
            ("state", self.extra.state),
        ];
        for (key, value) in labels {
            if let Some(value) = value {
                (key, value).encode(encoder.encode_label())?;
            }
        }
        Ok(())
    }
}

/// (namespace, policy)
pub(super) type PolicyKey = (String, String);
/// (kind, workload, action, result)
pub(super) type ActionKey = (String, String, WriteKind, ActionResult);

/// What one policy last reported, and what it did.
#[derive(Debug, Default)]
pub(super) struct PolicySnapshot {
    pub workloads: Vec<WorkloadMetrics>,
    pub actions: BTreeMap<ActionKey, u64>,
    /// The health of its zones.
    pub zones: Vec<ZoneMetrics>,
}

impl PolicySnapshot {
    pub fn is_empty(&self) -> bool {
        self.workloads.is_empty() && self.actions.is_empty() && self.zones.is_empty()
    }
}

/// The zone health states, each a series (1 for the zone's current one, 0 for the others).
const ZONE_STATES: [&str; 3] = ["Healthy", "Out", "Recovering"];

#[derive(
    Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, prometheus_client::encoding::EncodeLabelSet,
)]
struct ZoneLabels {
    namespace: String,
    policy: String,
    topology_key: String,
    domain: String,
    state: &'static str,
}

/// `skewguard_zone_health`: per policy, zone and state, 1 for the zone's state.
fn encode_zones(
    encoder: &mut DescriptorEncoder,
    snapshots: &Snapshots,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        "zone_health",
        "1 for the state (Healthy, Out, Recovering) each zone of a policy's topology keys is in, 0 for the others",
        None,
        MetricType::Gauge,
    )?;
    for ((namespace, policy), snapshot) in &snapshots.policies {
        for z in &snapshot.zones {
            for state in ZONE_STATES {
                let labels = ZoneLabels {
                    namespace: namespace.clone(),
                    policy: policy.clone(),
                    topology_key: z.topology_key.clone(),
                    domain: z.domain.clone(),
                    state,
                };
                ConstGauge::new(i64::from(z.health == state))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
    }
    Ok(())
}

/// Everything the collector encodes at scrape time.
#[derive(Debug, Default)]
pub(super) struct Snapshots {
    pub policies: BTreeMap<PolicyKey, PolicySnapshot>,
    /// HAPolicies per namespace (every instance knows them, leader or not).
    pub policy_counts: BTreeMap<String, usize>,
}

/// Encodes the per-workload families from the snapshots.
#[derive(Debug, Clone, Default)]
pub(super) struct SnapshotCollector(pub Arc<Mutex<Snapshots>>);

impl SnapshotCollector {
    pub fn lock(&self) -> MutexGuard<'_, Snapshots> {
        // Snapshots are replaced whole; a panicking holder cannot leave half of one behind, so a
        // poisoned lock is used as it is and metrics stay served.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn encode_gauge(
    encoder: &mut DescriptorEncoder,
    gauge: &Gauge,
    snapshots: &Snapshots,
) -> Result<(), std::fmt::Error> {
    // Gathered first, so series that two policies both report (a workload a losing policy lists
    // too) are written once: the first policy to report one speaks for it.
    let mut series: BTreeMap<Labels, Value> = BTreeMap::new();
    for ((namespace, policy), snapshot) in &snapshots.policies {
        for w in &snapshot.workloads {
            for (extra, value) in (gauge.samples)(w) {
                let labels = Labels {
                    namespace: namespace.clone(),
                    policy: gauge.by_policy.then(|| policy.clone()),
                    kind: w.kind.clone(),
                    workload: w.workload.clone(),
                    extra,
                    ..Labels::default()
                };
                series.entry(labels).or_insert(value);
            }
        }
    }
    let mut family = encoder.encode_descriptor(gauge.name, gauge.help, None, MetricType::Gauge)?;
    for (labels, value) in &series {
        let encoder = family.encode_family(labels)?;
        match *value {
            Value::Int(n) => ConstGauge::new(n).encode(encoder)?,
            Value::Ratio(x) => ConstGauge::new(x).encode(encoder)?,
        }
    }
    Ok(())
}

/// The action counters: rebalance actions, and deletion-cost writes in a family of their own.
fn encode_actions(
    encoder: &mut DescriptorEncoder,
    snapshots: &Snapshots,
) -> Result<(), std::fmt::Error> {
    let (mut actions, mut cost_writes) = (BTreeMap::new(), BTreeMap::new());
    for ((namespace, policy), snapshot) in &snapshots.policies {
        for ((kind, workload, action, result), n) in &snapshot.actions {
            let cost = *action == WriteKind::DeletionCost;
            let labels = Labels {
                namespace: namespace.clone(),
                policy: Some(policy.clone()),
                kind: kind.clone(),
                workload: workload.clone(),
                action: (!cost).then_some(*action),
                result: Some(*result),
                ..Labels::default()
            };
            if cost { &mut cost_writes } else { &mut actions }.insert(labels, *n);
        }
    }
    for (name, help, series) in [
        (
            "rebalance_actions",
            "Rebalance actions taken or attempted, by action and result",
            &actions,
        ),
        (
            "deletion_cost_writes",
            "Writes of pods' pod-deletion-cost annotation that keep scale-in balanced, by result",
            &cost_writes,
        ),
    ] {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (labels, n) in series {
            ConstCounter::new(*n).encode(family.encode_family(labels)?)?;
        }
    }
    Ok(())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct NamespaceLabels {
    namespace: String,
}

/// The cluster-wide counts: rollouts in progress and queued (each workload once, whichever
/// policies list it), and policies per namespace.
fn encode_totals(
    encoder: &mut DescriptorEncoder,
    snapshots: &Snapshots,
) -> Result<(), std::fmt::Error> {
    let (mut rolling, mut queued) = (BTreeSet::new(), BTreeSet::new());
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

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshots = self.lock();
        for gauge in GAUGES {
            encode_gauge(&mut encoder, gauge, &snapshots)?;
        }
        encode_actions(&mut encoder, &snapshots)?;
        encode_zones(&mut encoder, &snapshots)?;
        encode_totals(&mut encoder, &snapshots)
    }
}
