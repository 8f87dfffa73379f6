//! Counting matching pods per topology domain and the skew that follows, exactly as
//! kube-scheduler's PodTopologySpread filter counts them.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::core::{Expression, Selector};

use super::balance::Histogram;
use super::cluster::{Cluster, Eligibility, KeyIndex};
use super::model::{Labels, Placement, SpreadConstraint, Workload};

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
    /// The pods (cluster indexes, ascending) the constraint's effective selector matches,
    /// wherever they run: what later steps ask of a pod without matching selectors again.
    pub matched: Vec<usize>,
    /// The constraint over its key's expected domains too, when the policy names some (`None`:
    /// only the domains that have nodes count, as the scheduler counts them).
    pub expected: Option<ExpectedView>,
}

/// A constraint measured over the expected domains as well: those with no node the pods may use
/// count 0 pods.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExpectedView {
    /// Expected domains that are not eligible domains (no node, or none the pods may use).
    pub missing: Vec<String>,
    /// `max - min` over the eligible and the missing domains.
    pub skew: i32,
}

impl ConstraintMeasure {
    /// Whether the constraint counts this pod (its effective selector matches it).
    pub fn counts_pod(&self, pod: usize) -> bool {
        self.matched.binary_search(&pod).is_ok()
    }

    /// Counts the expected domains too: `expected` less the eligible domains are missing, and
    /// with one missing the minimum is 0.
    pub fn expect<'a>(&mut self, expected: impl IntoIterator<Item = &'a str>) {
        let missing: Vec<String> = (expected.into_iter())
            .filter(|d| self.domains.get(d).is_none())
            .map(str::to_string)
            .collect();
        let skew = if missing.is_empty() {
            self.skew
        } else {
            self.domains.occupied().map(|(_, n)| n).max().unwrap_or(0)
        };
        self.expected = Some(ExpectedView { missing, skew });
    }

    /// The skew the operator holds the workload to: over the expected domains when there are
    /// some, else as the scheduler counts it.
    pub fn effective_skew(&self) -> i32 {
        self.expected.as_ref().map_or(self.skew, |e| e.skew)
    }

    /// Pods per domain, the missing expected domains (0) after the eligible ones.
    pub fn counts(&self) -> Vec<i32> {
        let missing = self.expected.as_ref().map_or(0, |e| e.missing.len());
        (self.domains.iter().map(|(_, n)| n))
            .chain(std::iter::repeat_n(0, missing))
            .collect()
    }

    pub fn within_max_skew(&self) -> bool {
        self.effective_skew() <= self.max_skew
    }
}

/// Pods per eligible domain, empty domains included, sharing the domain names and the eligible
/// domains with the cluster's index. Only the domains that hold pods are stored: a hostname
/// constraint has as many domains as nodes, and listing them all for every workload cost more than
/// counting (the whole-cluster pass went O(workloads x nodes)).
#[derive(Clone, Default)]
pub struct DomainCounts {
    names: Arc<[String]>,
    eligible: Arc<Eligibility>,
    /// Eligible domains holding matching pods, ascending by domain index.
    occupied: Vec<(u32, i32)>,
}

impl DomainCounts {
    /// Every eligible domain and its count, by name (empty domains too): O(domains).
    pub fn iter(&self) -> impl Iterator<Item = (&str, i32)> + '_ {
        let mut occupied = self.occupied.iter().peekable();
        self.eligible
            .eligible
            .iter()
            .enumerate()
            .filter(|(_, e)| **e)
            .map(move |(d, _)| {
                let d = d as u32;
                let n = occupied.next_if(|(o, _)| *o == d).map_or(0, |(_, n)| *n);
                (self.names[d as usize].as_str(), n)
            })
    }

    /// Eligible domains holding at least one pod, by name: O(pods).
    pub fn occupied(&self) -> impl Iterator<Item = (&str, i32)> + '_ {
        self.occupied
            .iter()
            .map(|(d, n)| (self.names[*d as usize].as_str(), *n))
    }

    /// The number of eligible domains.
    pub fn len(&self) -> usize {
        self.eligible.domain_count
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The count of an eligible domain; `None` for a domain that does not count.
    pub fn get(&self, domain: &str) -> Option<i32> {
        let d = self
            .names
            .binary_search_by(|n| n.as_str().cmp(domain))
            .ok()?;
        if !self.eligible.eligible.get(d).copied().unwrap_or(false) {
            return None;
        }
        let d = d as u32;
        Some(
            self.occupied
                .binary_search_by_key(&d, |(o, _)| *o)
                .map_or(0, |i| self.occupied[i].1),
        )
    }

    /// The nodes that count and their domains.
    pub(crate) fn eligibility(&self) -> &Eligibility {
        &self.eligible
    }

    /// The occupied domains by index into the key's domains, ascending.
    pub(crate) fn occupied_indexes(&self) -> &[(u32, i32)] {
        &self.occupied
    }

    pub fn to_map(&self) -> BTreeMap<String, i32> {
        self.iter().map(|(d, n)| (d.to_string(), n)).collect()
    }

    /// `max - globalMin` over the eligible domains (see [`skew_of`]), without visiting the empty
    /// ones: the minimum is 0 as soon as one eligible domain holds no pod.
    fn skew(&self, floor_zero: bool) -> i32 {
        if self.is_empty() {
            return 0;
        }
        let max = self.occupied.iter().map(|(_, n)| *n).max().unwrap_or(0);
        let min = if floor_zero || self.occupied.len() < self.len() {
            0
        } else {
            self.occupied.iter().map(|(_, n)| *n).min().unwrap_or(0)
        };
        max - min
    }
}

impl PartialEq for DomainCounts {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for DomainCounts {}

impl std::fmt::Debug for DomainCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
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
        (self.constraints.iter())
            .map(ConstraintMeasure::effective_skew)
            .max()
            .unwrap_or(0)
    }
}

/// One constraint of a workload as counted: its domains, the pods it matches and how many of
/// them each eligible domain holds (only the domains that hold some).
#[derive(Clone, Debug)]
pub(crate) struct Counted {
    pub key: Arc<KeyIndex>,
    /// The nodes (and so the domains) that count for the constraint.
    pub nodes: Arc<Eligibility>,
    pub counts: DomainCounts,
    /// `minDomains` is not met, so the global minimum is 0 whatever the counts.
    pub floor_zero: bool,
    /// The pods (cluster indexes, ascending) the constraint's effective selector matches,
    /// wherever they run: only moving one of them changes this constraint's counts.
    pub matched: Vec<usize>,
}

impl Counted {
    pub fn skew(&self) -> i32 {
        self.counts.skew(self.floor_zero)
    }

    /// The dense layout the planner and the scheduler model work on: O(domains), so built only
    /// for a workload that needs a plan.
    pub fn layout(self) -> Layout {
        let mut counts = vec![0; self.key.domains.len()];
        let mut hist = Histogram::default();
        for &(d, n) in &self.counts.occupied {
            counts[d as usize] = n;
            hist.add(n);
        }
        // The eligible domains holding no pod, without visiting them.
        hist.add_many(0, self.counts.len() - self.counts.occupied.len());
        Layout {
            key: self.key,
            nodes: self.nodes,
            counts,
            hist,
            floor_zero: self.floor_zero,
            matched: self.matched,
        }
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
    /// The eligible domains' counts as a histogram.
    pub hist: Histogram,
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
    let counted = count(cluster, workload, &own_pods);
    measurement_of(workload, &counted, own_pods)
}

pub(crate) fn measurement_of(
    workload: &Workload,
    counted: &[Counted],
    own_pods: Vec<usize>,
) -> Measurement {
    let constraints = counted
        .iter()
        .zip(&workload.constraints)
        .map(|(counted, c)| ConstraintMeasure {
            topology_key: c.topology_key.clone(),
            max_skew: c.max_skew,
            skew: counted.skew(),
            domains: counted.counts.clone(),
            below_min_domains: counted.floor_zero,
            matched: counted.matched.clone(),
            expected: None,
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
        .own_pods(workload)
        .into_iter()
        .filter(|&i| cluster.pods()[i].is_counted())
        .collect()
}

/// Every constraint counted, in the workload's order.
///
/// Each class is counted apart, as upstream: a node counts for the DoNotSchedule constraints only
/// if it carries every DoNotSchedule key (Filter), for the ScheduleAnyway ones only if it carries
/// every ScheduleAnyway key (Score, `requireAllTopologies`). A soft key never drops a node from a
/// hard count.
pub(crate) fn count(cluster: &Cluster, workload: &Workload, own_pods: &[usize]) -> Vec<Counted> {
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
    // A workload's constraints mostly share one effective selector: its pods are matched once.
    let mut matches: Vec<(Selector, Vec<usize>)> = Vec::new();
    workload
        .constraints
        .iter()
        .map(|c| {
            let keys = if c.is_hard() { &hard_keys } else { &soft_keys };
            let matched = match effective_selector(c, reference) {
                Some(selector) => match matches.iter().find(|(s, _)| *s == selector) {
                    Some((_, found)) => found.clone(),
                    None => {
                        let found = cluster.select_pods(&workload.namespace, &selector);
                        matches.push((selector, found.clone()));
                        found
                    }
                },
                None => Vec::new(),
            };
            count_one(cluster, c, keys, &workload.template.placement, matched)
        })
        .collect()
}

/// The dense layout of every constraint, in the workload's order (see [`Counted::layout`]).
pub(crate) fn layouts(cluster: &Cluster, workload: &Workload, own_pods: &[usize]) -> Vec<Layout> {
    count(cluster, workload, own_pods)
        .into_iter()
        .map(Counted::layout)
        .collect()
}

/// One constraint counted over the pods its effective selector `matched` (none without one).
fn count_one(
    cluster: &Cluster,
    constraint: &SpreadConstraint,
    all_keys: &[&str],
    placement: &Placement,
    matched: Vec<usize>,
) -> Counted {
    let key = cluster.key_index(&constraint.topology_key);
    let nodes = cluster.eligibility(all_keys, constraint, placement);
    let mut domains: Vec<u32> = matched
        .iter()
        .filter(|&&i| cluster.pods()[i].is_counted())
        .filter_map(|&i| cluster.node_of_pod(i).and_then(|n| nodes.node_domain[n]))
        .collect();
    domains.sort_unstable();
    let mut occupied: Vec<(u32, i32)> = Vec::new();
    for d in domains {
        match occupied.last_mut() {
            Some((last, n)) if *last == d => *n += 1,
            _ => occupied.push((d, 1)),
        }
    }
    let floor_zero = constraint
        .effective_min_domains()
        .is_some_and(|m| nodes.domain_count < m);
    Counted {
        counts: DomainCounts {
            names: key.domains.clone(),
            eligible: nodes.clone(),
            occupied,
        },
        key,
        nodes,
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
pub(crate) fn reference_labels<'a>(
    cluster: &'a Cluster,
    workload: &'a Workload,
    own_pods: &[usize],
) -> &'a Labels {
    let keys: Vec<&String> = workload
        .constraints
        .iter()
        .flat_map(|c| &c.match_label_keys)
        .collect();
    if keys.is_empty() || own_pods.is_empty() {
        return &workload.template.labels;
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
        .map(|(_, (_, exemplar))| &cluster.pods()[exemplar].labels)
        .unwrap_or(&workload.template.labels)
}
