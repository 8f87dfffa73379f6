//! Counting matching pods per topology domain and the skew that follows, exactly as
//! kube-scheduler's PodTopologySpread filter counts them.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::core::{Expression, Selector};

use super::cluster::{Cluster, Eligibility, KeyIndex};
use super::model::{Labels, SpreadConstraint, Workload};

/// How one constraint of a workload stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConstraintMeasure {
    pub topology_key: String,
    pub max_skew: i32,
    pub skew: i32,
    /// Matching pods per eligible domain, empty domains included.
    pub domains: DomainCounts,
    /// Fewer eligible domains than `minDomains`: the global minimum is taken as 0.
    pub below_min_domains: bool,
}

impl ConstraintMeasure {
    pub fn within_max_skew(&self) -> bool {
        self.skew <= self.max_skew
    }
}

/// Pods per eligible domain, sharing the domain names with the cluster's index (a hostname
/// constraint has as many domains as nodes; copying their names for every workload would cost
/// more than counting).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainCounts {
    names: Arc<[String]>,
    entries: Vec<(u32, i32)>,
}

impl DomainCounts {
    /// Domains and their counts, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i32)> + '_ {
        self.entries
            .iter()
            .map(|(d, n)| (self.names[*d as usize].as_str(), *n))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, domain: &str) -> Option<i32> {
        self.iter().find(|(d, _)| *d == domain).map(|(_, n)| n)
    }

    pub fn to_map(&self) -> BTreeMap<String, i32> {
        self.iter().map(|(d, n)| (d.to_string(), n)).collect()
    }
}

/// A workload's spread, constraint by constraint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Measurement {
    pub constraints: Vec<ConstraintMeasure>,
    /// The workload's own pods that are bound and running (indexes into the cluster's pods).
    pub own_pods: Vec<usize>,
}

impl Measurement {
    /// Every constraint within its maxSkew.
    pub fn within_policy(&self) -> bool {
        self.constraints
            .iter()
            .all(ConstraintMeasure::within_max_skew)
    }

    /// Pods in `domain` of the first constraint over `topology_key`.
    pub fn count(&self, topology_key: &str, domain: &str) -> Option<i32> {
        self.constraints
            .iter()
            .find(|c| c.topology_key == topology_key)
            .and_then(|c| c.domains.get(domain))
    }

    /// The largest skew over the constraints (0 without constraints).
    pub fn max_skew(&self) -> i32 {
        self.constraints.iter().map(|c| c.skew).max().unwrap_or(0)
    }
}

/// One constraint's domains over the cluster's nodes, and the matching pods in each.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub key: Arc<KeyIndex>,
    /// The nodes (and so the domains) that count for the constraint.
    pub nodes: Arc<Eligibility>,
    /// Matching pods per domain of the key.
    pub counts: Vec<i32>,
    /// `minDomains` is not met, so the global minimum is 0 whatever the counts.
    pub floor_zero: bool,
    /// The pods (cluster indexes, ascending) the constraint's effective selector matches,
    /// wherever they run: only moving one of them changes this constraint's counts.
    pub matched: Vec<usize>,
}

impl Layout {
    pub fn eligible_counts(&self) -> impl Iterator<Item = i32> + '_ {
        self.counts
            .iter()
            .zip(&self.nodes.eligible)
            .filter(|(_, e)| **e)
            .map(|(c, _)| *c)
    }

    /// Whether the constraint counts this pod (its effective selector matches it).
    pub fn counts_pod(&self, pod: usize) -> bool {
        self.matched.binary_search(&pod).is_ok()
    }

    pub fn skew(&self) -> i32 {
        let (min, max) = self
            .eligible_counts()
            .fold((i32::MAX, i32::MIN), |(lo, hi), c| (lo.min(c), hi.max(c)));
        match (max, self.floor_zero) {
            (i32::MIN, _) => 0,
            (max, true) => max,
            (max, false) => max - min,
        }
    }

    fn domain_counts(&self) -> DomainCounts {
        DomainCounts {
            names: self.key.domains.clone(),
            entries: (0..self.counts.len())
                .filter(|d| self.nodes.eligible[*d])
                .map(|d| (d as u32, self.counts[d]))
                .collect(),
        }
    }
}

/// `max - globalMin` over eligible domains; no domain means no skew.
pub fn skew_of(counts: &[i32], floor_zero: bool) -> i32 {
    let Some(max) = counts.iter().copied().max() else {
        return 0;
    };
    let min = if floor_zero {
        0
    } else {
        counts.iter().copied().min().unwrap_or(0)
    };
    max - min
}

/// Measures every constraint of the workload.
pub fn measure(cluster: &Cluster, workload: &Workload) -> Measurement {
    let own_pods = own_counted_pods(cluster, workload);
    let layouts = layouts(cluster, workload, &own_pods);
    measurement_of(workload, &layouts, own_pods)
}

pub(crate) fn measurement_of(
    workload: &Workload,
    layouts: &[Layout],
    own_pods: Vec<usize>,
) -> Measurement {
    let constraints = layouts
        .iter()
        .zip(&workload.constraints)
        .map(|(layout, c)| ConstraintMeasure {
            topology_key: c.topology_key.clone(),
            max_skew: c.max_skew,
            skew: layout.skew(),
            domains: layout.domain_counts(),
            below_min_domains: layout.floor_zero,
        })
        .collect();
    Measurement {
        constraints,
        own_pods,
    }
}

/// The workload's own pods that the scheduler counts (bound, not terminating, not finished).
pub(crate) fn own_counted_pods(cluster: &Cluster, workload: &Workload) -> Vec<usize> {
    cluster
        .select_pods(&workload.namespace, &workload.pod_selector)
        .into_iter()
        .filter(|&i| cluster.pods()[i].is_counted())
        .collect()
}

/// The layout of every constraint, in the workload's order.
///
/// Each class is counted apart, as upstream: a node counts for the DoNotSchedule constraints only
/// if it carries every DoNotSchedule key (Filter), for the ScheduleAnyway ones only if it carries
/// every ScheduleAnyway key (Score, `requireAllTopologies`). A soft key never drops a node from a
/// hard count.
pub(crate) fn layouts(cluster: &Cluster, workload: &Workload, own_pods: &[usize]) -> Vec<Layout> {
    let keys_of = |hard: bool| -> Vec<&str> {
        workload
            .constraints
            .iter()
            .filter(|c| c.is_hard() == hard)
            .map(|c| c.topology_key.as_str())
            .collect()
    };
    let (hard_keys, soft_keys) = (keys_of(true), keys_of(false));
    let reference = reference_labels(cluster, workload, own_pods);
    workload
        .constraints
        .iter()
        .map(|c| {
            let keys = if c.is_hard() { &hard_keys } else { &soft_keys };
            layout(cluster, workload, c, keys, &reference)
        })
        .collect()
}

fn layout(
    cluster: &Cluster,
    workload: &Workload,
    constraint: &SpreadConstraint,
    all_keys: &[&str],
    reference: &Labels,
) -> Layout {
    let key = cluster.key_index(&constraint.topology_key);
    let nodes = cluster.eligibility(all_keys, constraint, &workload.template.placement);
    let mut counts = vec![0; key.domains.len()];
    let mut matched = Vec::new();
    if let Some(selector) = effective_selector(constraint, reference) {
        matched = cluster.select_pods(&workload.namespace, &selector);
        for &i in &matched {
            let pod = &cluster.pods()[i];
            if !pod.is_counted() {
                continue;
            }
            if let Some(d) = cluster.node_of(pod).and_then(|n| nodes.node_domain[n]) {
                counts[d as usize] += 1;
            }
        }
    }
    let floor_zero = constraint
        .effective_min_domains()
        .is_some_and(|m| nodes.domain_count < m);
    Layout {
        key,
        nodes,
        counts,
        floor_zero,
        matched,
    }
}

/// The constraint's selector with `matchLabelKeys` merged in from the reference pod's labels
/// (keys the pod lacks are ignored, as in the scheduler). `None`: no selector, nothing matches.
pub fn effective_selector(constraint: &SpreadConstraint, reference: &Labels) -> Option<Selector> {
    let mut selector = constraint.selector.clone()?;
    selector.extend(constraint.match_label_keys.iter().filter_map(|k| {
        reference
            .get(k)
            .map(|v| Expression::Equal(k.clone(), v.clone()))
    }));
    Some(selector)
}

/// The labels of the pod the scheduler would be placing: those of the workload's most common
/// `matchLabelKeys` values among its running pods (the current ReplicaSet in steady state),
/// else the template's.
pub(crate) fn reference_labels(
    cluster: &Cluster,
    workload: &Workload,
    own_pods: &[usize],
) -> Labels {
    let keys: Vec<&String> = workload
        .constraints
        .iter()
        .flat_map(|c| &c.match_label_keys)
        .collect();
    if keys.is_empty() || own_pods.is_empty() {
        return workload.template.labels.clone();
    }
    let mut groups: BTreeMap<Vec<Option<&String>>, (usize, usize)> = BTreeMap::new();
    for &i in own_pods {
        let labels = &cluster.pods()[i].labels;
        let values: Vec<Option<&String>> = keys.iter().map(|k| labels.get(*k)).collect();
        groups.entry(values).or_insert((0, i)).0 += 1;
    }
    groups
        .into_iter()
        .max_by_key(|(_, (n, _))| *n)
        .map(|(_, (_, exemplar))| cluster.pods()[exemplar].labels.clone())
        .unwrap_or_else(|| workload.template.labels.clone())
}
