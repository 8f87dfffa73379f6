//! A model of kube-scheduler deciding where one pod goes, in one state of the cluster: the
//! filters a node must pass (PodTopologySpread over the DoNotSchedule constraints,
//! NodeResourcesFit, TaintToleration, NodeAffinity, NodeUnschedulable, readiness, the volume's
//! zone) and, for ScheduleAnyway constraints, the nodes PodTopologySpread's score prefers.
//!
//! The planner only plans a replacement onto a node this model accepts in the state right after
//! the plan's earlier evictions: a target the scheduler rejects means the pod lands elsewhere
//! (or stays Pending) and the eviction was wasted.

use super::cluster::Cluster;
use super::eligibility::{matches_node_affinity, tolerates, tolerates_node};
use kube::core::SelectorExt;

use super::measure::{Layout, effective_selector, layouts, own_counted_pods};
use super::model::{
    HOSTNAME_KEY, Node, Placement, Resources, SpreadConstraint, Taint, TaintEffect, Workload,
    ZONE_KEY,
};

/// Why a node would not take the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The node is not Ready.
    NotReady,
    /// Cordoned, and the pod does not tolerate `node.kubernetes.io/unschedulable`.
    Unschedulable,
    /// A NoSchedule/NoExecute taint the pod does not tolerate.
    Taint,
    /// The pod's node selector or required node affinity excludes the node.
    NodeAffinity,
    /// Not enough allocatable cpu, memory or pods left.
    InsufficientResources,
    /// The pod's volumes live in another zone (or the node's zone is unknown).
    VolumeZone,
    /// The node lacks the key of a DoNotSchedule constraint.
    MissingTopologyKey(String),
    /// One more pod in the node's domain would exceed the constraint's maxSkew.
    TopologySpread(String),
    /// The node is not in the snapshot.
    UnknownNode,
    /// An autoscaler is taking the node away.
    Disrupting,
}

impl Rejection {
    /// Rejections that come from the node itself, not from where the workload's pods are.
    pub fn is_node_capacity(&self) -> bool {
        matches!(
            self,
            Rejection::NotReady
                | Rejection::Disrupting
                | Rejection::Unschedulable
                | Rejection::Taint
                | Rejection::NodeAffinity
                | Rejection::InsufficientResources
        )
    }
}

/// Why a node fails the state's filters, by constraint index: cheap to make for every node.
#[derive(Clone, Copy, Debug)]
enum Fault {
    UnknownNode,
    Room,
    MissingKey(usize),
    Spread(usize),
}

/// Where a pod's volumes hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VolumeZone<'a> {
    /// No PersistentVolumeClaim: any zone.
    Free,
    /// Its volumes are in this zone (the zone label of the node the pod runs on).
    In(&'a str),
    /// It has claims but its node carries no zone label: no node is known to be in the
    /// volume's zone, so the pod cannot move at all.
    Unknown,
}

impl<'a> VolumeZone<'a> {
    /// The zone a pod with volume claims running on `node` is held to.
    pub fn of(has_claims: bool, node: Option<&'a Node>) -> Self {
        if !has_claims {
            return VolumeZone::Free;
        }
        match node.and_then(|n| n.labels.get(ZONE_KEY)) {
            Some(z) => VolumeZone::In(z.as_str()),
            None => VolumeZone::Unknown,
        }
    }

    /// Whether the pod's volumes can be reached from `node` (by the node's zone label,
    /// whatever key a constraint spreads over).
    pub fn admits(self, node: &Node) -> bool {
        match self {
            VolumeZone::Free => true,
            VolumeZone::In(zone) => node.labels.get(ZONE_KEY).is_some_and(|z| z == zone),
            VolumeZone::Unknown => false,
        }
    }
}

/// The pod being placed. A replacement is made by the evicted pod's own controller (the same
/// ReplicaSet), so it has the evicted pod's placement and requests, and stays with its volumes.
#[derive(Clone, Copy, Debug)]
pub struct Incoming<'a> {
    pub placement: &'a Placement,
    pub requests: Resources,
    pub volume_zone: VolumeZone<'a>,
}

/// One spread constraint in some state.
#[derive(Clone, Copy, Debug)]
pub struct SpreadView<'a> {
    pub constraint: &'a SpreadConstraint,
    /// For each node (cluster order), its domain of the constraint's key, `None` without the
    /// label.
    pub key_domain: &'a [Option<u32>],
    /// For each node, its domain if the node counts for the constraint (its class's keys,
    /// the inclusion policies).
    pub node_domain: &'a [Option<u32>],
    /// For each domain, whether some counted node is in it.
    pub eligible: &'a [bool],
    /// Matching pods per domain in this state.
    pub counts: &'a [i32],
    /// The domain that holds one pod fewer than `counts` says: the evicted pod's, which no
    /// longer counts (so a plan's states need not copy every domain's count per question).
    pub evicted_from: Option<u32>,
    /// `minDomains` is not met: the global minimum is 0.
    pub floor_zero: bool,
    /// The incoming pod matches the constraint's selector (`selfMatchNum` upstream).
    pub self_match: bool,
}

impl SpreadView<'_> {
    /// Matching pods in `domain` (`None`: no such domain).
    pub fn count(&self, domain: u32) -> Option<i32> {
        let n = *self.counts.get(domain as usize)?;
        Some(n - i32::from(self.evicted_from == Some(domain)))
    }
}

/// Everything the scheduler looks at when placing one pod.
#[derive(Clone, Copy, Debug)]
pub struct SchedState<'a> {
    pub nodes: &'a [Node],
    /// What is free on each node in the snapshot (terminating pods still hold their requests).
    pub free: &'a [Resources],
    /// Room that earlier placements of a plan took since, by node: a few entries, so a plan's
    /// states need not copy `free`.
    pub claimed: &'a [(u32, Resources)],
    /// The pod's spread constraints, hard and soft, in its order.
    pub spread: &'a [SpreadView<'a>],
    /// Check room (NodeResourcesFit); `requireNodeFit: false` skips it.
    pub check_room: bool,
}

/// Whether `node` passes every filter for `pod` in `state`: the scheduler's answer to "may the
/// pod be bound here".
pub fn node_accepts(
    state: &SchedState<'_>,
    pod: &Incoming<'_>,
    node: usize,
) -> Result<(), Rejection> {
    Filter::new(state, pod).check(node)
}

/// A pod's filters with what does not depend on the node computed once (each DoNotSchedule
/// constraint's global minimum).
#[derive(Clone, Debug)]
pub struct Filter<'a> {
    state: SchedState<'a>,
    pod: Incoming<'a>,
    /// Per constraint of `state.spread`: the global minimum for a hard one, `None` for a soft one.
    global_min: Vec<Option<i32>>,
}

impl<'a> Filter<'a> {
    pub fn new(state: &SchedState<'a>, pod: &Incoming<'a>) -> Self {
        let global_min = state
            .spread
            .iter()
            .map(|s| s.constraint.is_hard().then(|| global_min(s)))
            .collect();
        Self::with_global_mins(state, pod, global_min)
    }

    /// A filter whose caller already knows each hard constraint's global minimum (`None` for a
    /// soft one): the planner keeps them in histograms rather than rescanning every domain.
    pub fn with_global_mins(
        state: &SchedState<'a>,
        pod: &Incoming<'a>,
        global_min: Vec<Option<i32>>,
    ) -> Self {
        Self {
            state: *state,
            pod: *pod,
            global_min,
        }
    }

    /// Every filter.
    pub fn check(&self, node: usize) -> Result<(), Rejection> {
        self.check_node(node)?;
        self.check_dynamic(node)
    }

    /// The filters that depend only on the node and the pod's shape: readiness, cordon, taints,
    /// node affinity, the volume's zone.
    pub fn check_node(&self, node: usize) -> Result<(), Rejection> {
        let n = self.state.nodes.get(node).ok_or(Rejection::UnknownNode)?;
        static_fit(n, &self.pod)
    }

    /// The filters that depend on the state: room and PodTopologySpread.
    pub fn check_dynamic(&self, node: usize) -> Result<(), Rejection> {
        let topology_key = |s: usize| self.state.spread[s].constraint.topology_key.clone();
        match self.dynamic_fault(node) {
            None => Ok(()),
            Some(Fault::UnknownNode) => Err(Rejection::UnknownNode),
            Some(Fault::Room) => Err(Rejection::InsufficientResources),
            Some(Fault::MissingKey(s)) => Err(Rejection::MissingTopologyKey(topology_key(s))),
            Some(Fault::Spread(s)) => Err(Rejection::TopologySpread(topology_key(s))),
        }
    }

    /// [`check_dynamic`](Self::check_dynamic) without building the reason: the planner asks it
    /// of thousands of nodes per step.
    pub fn passes_dynamic(&self, node: usize) -> bool {
        self.dynamic_fault(node).is_none()
    }

    fn dynamic_fault(&self, node: usize) -> Option<Fault> {
        if self.state.check_room {
            let need = Resources::new(
                self.pod.requests.cpu_millis,
                self.pod.requests.memory_bytes,
                self.pod.requests.pods.max(1),
            );
            let Some(mut free) = self.state.free.get(node).copied() else {
                return Some(Fault::UnknownNode);
            };
            for (_, taken) in self
                .state
                .claimed
                .iter()
                .filter(|(n, _)| *n as usize == node)
            {
                free = free.minus(taken);
            }
            if !free.covers(&need) {
                return Some(Fault::Room);
            }
        }
        // A node must carry every hard key before any count is looked at.
        for (i, s) in self.state.spread.iter().enumerate() {
            if s.constraint.is_hard() && s.key_domain.get(node).copied().flatten().is_none() {
                return Some(Fault::MissingKey(i));
            }
        }
        for (i, (s, min)) in self.state.spread.iter().zip(&self.global_min).enumerate() {
            let Some(min) = min else { continue };
            let domain = s.key_domain.get(node).copied().flatten();
            // A domain no counted node is in has no entry upstream: 0 matching pods.
            let matching = domain
                .filter(|d| s.eligible.get(*d as usize).copied().unwrap_or(false))
                .and_then(|d| s.count(d))
                .unwrap_or(0);
            let skew = matching + i32::from(s.self_match) - min;
            if skew > s.constraint.max_skew {
                return Some(Fault::Spread(i));
            }
        }
        None
    }

    /// Of the nodes that pass every filter, the ones PodTopologySpread's score prefers for the
    /// pod's ScheduleAnyway constraints (all of them without such constraints).
    pub fn preferred(&self, feasible: &[usize]) -> Vec<usize> {
        preferred_nodes(&self.state, feasible)
    }

    /// PodTopologySpread's scores of `feasible` ([`spread_scores`]).
    pub fn scores(&self, feasible: &[usize]) -> Vec<SpreadScore> {
        spread_scores(&self.state, feasible)
    }

    /// Every node of the state that passes every filter, in node order.
    pub fn feasible(&self) -> Vec<usize> {
        (0..self.state.nodes.len())
            .filter(|&n| self.check(n).is_ok())
            .collect()
    }
}

/// The filters that depend only on the node and the pod's shape.
pub fn static_fit(node: &Node, pod: &Incoming<'_>) -> Result<(), Rejection> {
    if !node.ready {
        return Err(Rejection::NotReady);
    }
    if node.disrupting {
        return Err(Rejection::Disrupting);
    }
    if node.unschedulable {
        let cordon = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            value: String::new(),
            effect: TaintEffect::NoSchedule,
        };
        if !pod
            .placement
            .tolerations
            .iter()
            .any(|t| tolerates(t, &cordon))
        {
            return Err(Rejection::Unschedulable);
        }
    }
    if !tolerates_node(&pod.placement.tolerations, node) {
        return Err(Rejection::Taint);
    }
    if !matches_node_affinity(pod.placement, node) {
        return Err(Rejection::NodeAffinity);
    }
    if !pod.volume_zone.admits(node) {
        return Err(Rejection::VolumeZone);
    }
    Ok(())
}

/// The smallest count over eligible domains (0 without minDomains met; 0 without domains).
fn global_min(s: &SpreadView<'_>) -> i32 {
    if s.floor_zero {
        return 0;
    }
    (0..s.counts.len() as u32)
        .zip(s.eligible)
        .filter(|(_, e)| **e)
        .filter_map(|(d, _)| s.count(d))
        .min()
        .unwrap_or(0)
}

/// The matching pods PodTopologySpread's score counts for `node` under one soft constraint: its
/// domain's, or 0 in a domain no counted node is in (or for a node unknown to the view).
fn scored_count(s: &SpreadView<'_>, node: usize) -> i32 {
    s.key_domain
        .get(node)
        .copied()
        .flatten()
        .filter(|d| s.eligible.get(*d as usize).copied().unwrap_or(false))
        .and_then(|d| s.count(d))
        .unwrap_or(0)
}

/// Whether `node` carries every ScheduleAnyway constraint's key and, for each, counts exactly
/// `floor[i]` matching pods (`floor` by position in `spread`; hard constraints are skipped),
/// where `floor[i]` is at most what any node counts. When a feasible node is at the floor,
/// [`preferred_nodes`] are exactly the feasible nodes at the floor, found without scoring all:
///
/// every scored node adds the same `Σ (maxSkew - 1)`, so a node at the floor has the least raw
/// score there is. Any other scored node counts at least one more pod for some constraint, which
/// raises its raw score by at least the smallest weight, `ln(size + 2) >= ln 3 > 1` (size >= 1:
/// the node at the floor is scored); two raw scores at least 1 apart never round to the same
/// integer, so the floor's rounded score is the unique lowest and NormalizeScore makes it the
/// unique best. That needs scores >= 0: a soft constraint with maxSkew < 1 (the API rejects it)
/// has no node at the floor, and the caller scores every node.
pub fn at_score_floor(spread: &[SpreadView<'_>], floor: &[i32], node: usize) -> bool {
    spread.iter().zip(floor).all(|(s, floor)| {
        s.constraint.is_hard()
            || (s.constraint.max_skew >= 1
                && s.key_domain.get(node).copied().flatten().is_some()
                && scored_count(s, node) == *floor)
    })
}

/// The best score a node gets from one plugin (`framework.MaxNodeScore`).
pub const MAX_NODE_SCORE: i64 = 100;

/// PodTopologySpread's scores of one node that passed the filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpreadScore {
    pub node: usize,
    /// What `Score` returns, rounded as upstream; `None` for a node lacking a ScheduleAnyway key
    /// (ignored: it gets 0 after normalization).
    pub rounded: Option<i64>,
    /// After `NormalizeScore`: [`MAX_NODE_SCORE`] for the lowest rounded score.
    pub normalized: i64,
}

/// PodTopologySpread's Score and NormalizeScore (scoring.go) for the pod's ScheduleAnyway
/// constraints over `feasible` (the nodes that passed Filter), in their order; empty without
/// such constraints (PreScore skips the plugin).
///
/// A node lacking a soft key is ignored. Every other node scores the sum over the soft
/// constraints of `count × ln(size + 2) + (maxSkew − 1)`, where size is the number of the key's
/// domains among the scored nodes (for the hostname key, the number of scored nodes) and count
/// the matching pods in the node's domain (for hostname, on the node); the sum is rounded with
/// `math.Round` (half away from zero, as `f64::round`), then the lowest maps to the best. The
/// rounding is why nodes that count different pods can tie: other plugins decide between them.
pub fn spread_scores(state: &SchedState<'_>, feasible: &[usize]) -> Vec<SpreadScore> {
    let soft: Vec<&SpreadView<'_>> = state
        .spread
        .iter()
        .filter(|s| !s.constraint.is_hard())
        .collect();
    if soft.is_empty() {
        return Vec::new();
    }
    let scored = |n: usize| {
        soft.iter()
            .all(|s| s.key_domain.get(n).copied().flatten().is_some())
    };
    let considered: Vec<usize> = feasible.iter().copied().filter(|&n| scored(n)).collect();
    let weights: Vec<f64> = soft
        .iter()
        .map(|s| {
            let size = if s.constraint.topology_key == HOSTNAME_KEY {
                considered.len()
            } else {
                let mut seen: Vec<bool> = Vec::new();
                let mut size = 0;
                for d in considered
                    .iter()
                    .filter_map(|&n| s.key_domain.get(n).copied().flatten())
                {
                    let d = d as usize;
                    if seen.len() <= d {
                        seen.resize(d + 1, false);
                    }
                    size += usize::from(!std::mem::replace(&mut seen[d], true));
                }
                size
            };
            ((size + 2) as f64).ln()
        })
        .collect();
    let rounded = |n: usize| -> i64 {
        // In upstream's order of operations, so that a sum near .5 rounds the same way.
        let mut score = 0.0f64;
        for (s, w) in soft.iter().zip(&weights) {
            score += f64::from(scored_count(s, n)) * w + (f64::from(s.constraint.max_skew) - 1.0);
        }
        score.round() as i64
    };
    let raw: Vec<Option<i64>> = feasible
        .iter()
        .map(|&n| scored(n).then(|| rounded(n)))
        .collect();
    // Upstream starts the maximum at 0, the minimum at MaxInt64.
    let (min, max) = raw
        .iter()
        .flatten()
        .fold((i64::MAX, 0i64), |(lo, hi), &s| (lo.min(s), hi.max(s)));
    feasible
        .iter()
        .zip(raw)
        .map(|(&node, rounded)| {
            let normalized = match rounded {
                None => 0,
                Some(_) if max == 0 => MAX_NODE_SCORE,
                Some(s) => normalize(s, min, max),
            };
            SpreadScore {
                node,
                rounded,
                normalized,
            }
        })
        .collect()
}

/// NormalizeScore of a rounded score `s`, the lowest being `min` and the highest `max` (> 0):
/// `MaxNodeScore * (max + min - s) / max` in i64 as upstream, in i128 where that overflows
/// (upstream would wrap; no cluster gets near).
fn normalize(s: i64, min: i64, max: i64) -> i64 {
    max.checked_add(min)
        .and_then(|x| x.checked_sub(s))
        .and_then(|x| x.checked_mul(MAX_NODE_SCORE))
        .map(|x| x / max)
        .unwrap_or_else(|| {
            let n = i128::from(MAX_NODE_SCORE)
                * (i128::from(max) + i128::from(min) - i128::from(s))
                / i128::from(max);
            n.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
        })
}

/// The nodes among `feasible` PodTopologySpread's score ranks best for the soft constraints
/// ([`spread_scores`]; all of them without such constraints). Other score plugins also weigh in,
/// so the scheduler may pick any of these: a set, not a node.
pub fn preferred_nodes(state: &SchedState<'_>, feasible: &[usize]) -> Vec<usize> {
    let scores = spread_scores(state, feasible);
    let Some(best) = scores.iter().map(|s| s.normalized).max() else {
        return feasible.to_vec();
    };
    scores
        .into_iter()
        .filter(|s| s.normalized == best)
        .map(|s| s.node)
        .collect()
}

/// The scheduler's view of placing the replacement of one of the workload's pods, in the state
/// right after that pod's eviction (it no longer counts, but still holds its requests).
#[derive(Debug)]
pub struct Placing {
    layouts: Vec<Layout>,
    self_match: Vec<bool>,
    /// The evicted pod (cluster index), or `None` for a new pod from the workload's template.
    pod: Option<usize>,
    check_room: bool,
}

impl Placing {
    /// `None` when `pod` is not one of the workload's running pods.
    pub fn new(
        cluster: &Cluster,
        workload: &Workload,
        pod: usize,
        check_room: bool,
    ) -> Option<Self> {
        let own = own_counted_pods(cluster, workload);
        if !own.contains(&pod) {
            return None;
        }
        let mut layouts = layouts(cluster, workload, &own);
        let source = cluster.node_of_pod(pod);
        let mut self_match = Vec::with_capacity(layouts.len());
        for layout in &mut layouts {
            let counted = layout.counts_pod(pod);
            self_match.push(counted);
            if counted && let Some(d) = source.and_then(|s| layout.nodes.node_domain[s]) {
                layout.counts[d as usize] -= 1;
            }
        }
        Some(Self {
            layouts,
            self_match,
            pod: Some(pod),
            check_room,
        })
    }

    /// A new pod from the workload's template, placed in the cluster as it is (a scale-up).
    pub fn for_template(cluster: &Cluster, workload: &Workload, check_room: bool) -> Self {
        let own = own_counted_pods(cluster, workload);
        let layouts = layouts(cluster, workload, &own);
        let labels = &workload.template.labels;
        let self_match = workload
            .constraints
            .iter()
            .map(|c| effective_selector(c, labels).is_some_and(|s| s.matches(labels)))
            .collect();
        Self {
            layouts,
            self_match,
            pod: None,
            check_room,
        }
    }

    fn with<R>(
        &self,
        cluster: &Cluster,
        workload: &Workload,
        f: impl FnOnce(&Filter<'_>) -> R,
    ) -> R {
        let views: Vec<SpreadView<'_>> = self
            .layouts
            .iter()
            .zip(&workload.constraints)
            .zip(&self.self_match)
            .map(|((l, c), m)| view_of(l, c, *m))
            .collect();
        let state = SchedState {
            nodes: cluster.nodes(),
            free: cluster.free_room(),
            claimed: &[],
            spread: &views,
            check_room: self.check_room,
        };
        // The replacement comes from the evicted pod's own ReplicaSet: shaped like it.
        let incoming = match self.pod.map(|p| &cluster.pods()[p]) {
            Some(p) => Incoming {
                placement: &p.placement,
                requests: p.requests,
                volume_zone: VolumeZone::of(
                    p.has_volume_claims,
                    cluster.node_of(p).map(|n| &cluster.nodes()[n]),
                ),
            },
            None => Incoming {
                placement: &workload.template.placement,
                requests: workload.template.requests,
                volume_zone: VolumeZone::Free,
            },
        };
        f(&Filter::new(&state, &incoming))
    }

    /// Whether the scheduler would bind the replacement to `node`.
    pub fn accepts(
        &self,
        cluster: &Cluster,
        workload: &Workload,
        node: usize,
    ) -> Result<(), Rejection> {
        self.with(cluster, workload, |f| f.check(node))
    }

    /// The nodes the scheduler may pick for the replacement: feasible, and preferred by the
    /// ScheduleAnyway constraints' score.
    pub fn candidates(&self, cluster: &Cluster, workload: &Workload) -> Vec<usize> {
        self.with(cluster, workload, |f| f.preferred(&f.feasible()))
    }

    /// PodTopologySpread's scores of the feasible nodes for the replacement ([`spread_scores`]).
    pub fn scores(&self, cluster: &Cluster, workload: &Workload) -> Vec<SpreadScore> {
        self.with(cluster, workload, |f| f.scores(&f.feasible()))
    }
}

/// The scheduler's view of one constraint's layout.
pub(crate) fn view_of<'a>(
    layout: &'a Layout,
    constraint: &'a SpreadConstraint,
    self_match: bool,
) -> SpreadView<'a> {
    SpreadView {
        constraint,
        key_domain: &layout.key.node_domain,
        node_domain: &layout.nodes.node_domain,
        eligible: &layout.nodes.eligible,
        counts: &layout.counts,
        evicted_from: None,
        floor_zero: layout.floor_zero,
        self_match,
    }
}

/// Whether the scheduler would bind the replacement of the workload's pod `pod` (a cluster
/// index) to `node`, in the state right after the pod's eviction.
pub fn accepts(
    cluster: &Cluster,
    workload: &Workload,
    pod: usize,
    node: usize,
    check_room: bool,
) -> Result<(), Rejection> {
    match Placing::new(cluster, workload, pod, check_room) {
        Some(p) => p.accepts(cluster, workload, node),
        None => Err(Rejection::UnknownNode),
    }
}

/// The nodes the scheduler may choose for the replacement of `pod`: those passing every filter
/// and, with ScheduleAnyway constraints, scoring best for them.
pub fn candidate_nodes(
    cluster: &Cluster,
    workload: &Workload,
    pod: usize,
    check_room: bool,
) -> Vec<usize> {
    Placing::new(cluster, workload, pod, check_room)
        .map(|p| p.candidates(cluster, workload))
        .unwrap_or_default()
}

/// PodTopologySpread's scores (as upstream's Score and NormalizeScore) of the nodes that would
/// take the replacement of `pod`, in the state right after its eviction; empty without
/// ScheduleAnyway constraints or when `pod` is not one of the workload's running pods.
pub fn replacement_scores(
    cluster: &Cluster,
    workload: &Workload,
    pod: usize,
    check_room: bool,
) -> Vec<SpreadScore> {
    Placing::new(cluster, workload, pod, check_room)
        .map(|p| p.scores(cluster, workload))
        .unwrap_or_default()
}

/// PodTopologySpread's scores of the nodes that would take a new pod of the workload now.
pub fn template_scores(
    cluster: &Cluster,
    workload: &Workload,
    check_room: bool,
) -> Vec<SpreadScore> {
    Placing::for_template(cluster, workload, check_room).scores(cluster, workload)
}

/// Whether the scheduler would bind a new pod of the workload (its template) to `node` now.
pub fn template_accepts(
    cluster: &Cluster,
    workload: &Workload,
    node: usize,
    check_room: bool,
) -> Result<(), Rejection> {
    Placing::for_template(cluster, workload, check_room).accepts(cluster, workload, node)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kube::core::Selector;

    use super::*;
    use crate::core::topology::{Cluster, InclusionPolicy, Pod, WhenUnsatisfiable};

    fn node(name: &str, zone: Option<&str>) -> Node {
        let mut labels = BTreeMap::from([(HOSTNAME_KEY.to_string(), name.to_string())]);
        if let Some(z) = zone {
            labels.insert(ZONE_KEY.into(), z.into());
        }
        Node {
            name: name.into(),
            labels,
            ready: true,
            allocatable: Resources::new(1000, 1 << 30, 10),
            ..Default::default()
        }
    }

    fn pod(name: &str, node: &str) -> Pod {
        Pod {
            name: name.into(),
            uid: name.into(),
            namespace: "ns".into(),
            labels: BTreeMap::from([("app".into(), "web".into())]),
            node_name: Some(node.into()),
            requests: Resources::new(100, 0, 1),
            ..Default::default()
        }
    }

    fn workload(constraints: Vec<SpreadConstraint>) -> Workload {
        Workload {
            namespace: "ns".into(),
            name: "web".into(),
            pod_selector: [("app", "web")].into_iter().collect(),
            owner: None,
            template: Default::default(),
            constraints,
        }
    }

    fn selector() -> Selector {
        [("app", "web")].into_iter().collect()
    }

    #[test]
    fn volume_zone_follows_the_nodes_zone_label() {
        let (a, b, bare) = (
            node("a", Some("z1")),
            node("b", Some("z2")),
            node("c", None),
        );
        assert_eq!(VolumeZone::of(false, Some(&bare)), VolumeZone::Free);
        assert_eq!(VolumeZone::of(true, Some(&a)), VolumeZone::In("z1"));
        assert_eq!(VolumeZone::of(true, Some(&bare)), VolumeZone::Unknown);
        assert!(VolumeZone::In("z1").admits(&a) && !VolumeZone::In("z1").admits(&b));
        assert!(!VolumeZone::In("z1").admits(&bare));
        assert!(!VolumeZone::Unknown.admits(&a));
    }

    #[test]
    fn node_filters_in_order() {
        let placement = Placement::default();
        let pod = Incoming {
            placement: &placement,
            requests: Resources::new(100, 0, 1),
            volume_zone: VolumeZone::Free,
        };
        let mut n = node("a", Some("z1"));
        assert_eq!(static_fit(&n, &pod), Ok(()));
        n.unschedulable = true;
        assert_eq!(static_fit(&n, &pod), Err(Rejection::Unschedulable));
        n.ready = false;
        assert_eq!(static_fit(&n, &pod), Err(Rejection::NotReady));
    }

    #[test]
    fn the_evicted_pod_no_longer_counts_but_holds_its_room() {
        // a: 2 pods, b: 0, hard zone maxSkew 1. Right after evicting one pod of a the counts are
        // [1, 0]: a refuses its replacement (1 + 1 - 0 = 2 > 1), b accepts it.
        let nodes = vec![node("a", Some("z1")), node("b", Some("z2"))];
        let pods = vec![pod("p1", "a"), pod("p2", "a")];
        let mut c = SpreadConstraint::new(ZONE_KEY, 1, selector());
        c.when_unsatisfiable = WhenUnsatisfiable::DoNotSchedule;
        let w = workload(vec![c]);
        let cluster = Cluster::new(nodes.clone(), pods.clone());
        assert_eq!(
            accepts(&cluster, &w, 0, 0, true),
            Err(Rejection::TopologySpread(ZONE_KEY.into()))
        );
        assert_eq!(accepts(&cluster, &w, 0, 1, true), Ok(()));
        // A node full only because of the pod being evicted has no room for its replacement:
        // the terminating pod still holds its requests.
        let mut tight = nodes;
        tight[0].allocatable.cpu_millis = 200;
        let cluster = Cluster::new(tight, pods);
        let w = workload(vec![SpreadConstraint::new(ZONE_KEY, 1, selector())]);
        assert_eq!(
            accepts(&cluster, &w, 0, 0, true),
            Err(Rejection::InsufficientResources)
        );
    }

    #[test]
    fn a_layouts_histogram_holds_every_eligible_domain_empty_ones_too() {
        let nodes = vec![
            node("a", Some("z1")),
            node("b", Some("z2")),
            node("c", Some("z3")),
            node("d", None),
        ];
        let pods = vec![pod("p1", "a"), pod("p2", "a"), pod("p3", "b")];
        let w = workload(vec![
            SpreadConstraint::new(ZONE_KEY, 1, selector()),
            SpreadConstraint::new(HOSTNAME_KEY, 1, selector()),
        ]);
        let cluster = Cluster::new(nodes, pods);
        let own = own_counted_pods(&cluster, &w);
        let all = layouts(&cluster, &w, &own);
        let counts: Vec<Vec<i32>> = all.iter().map(|l| l.eligible_counts().collect()).collect();
        // d lacks the zone key: it counts for neither constraint (the pod has both keys).
        assert_eq!(counts, [vec![2, 1, 0], vec![2, 1, 0]]);
        for (l, counts) in all.iter().zip(&counts) {
            assert_eq!(
                l.hist,
                crate::core::topology::balance::Histogram::from_counts(counts)
            );
        }
    }

    #[test]
    fn soft_constraints_prefer_the_least_loaded_domains() {
        // Zones z1 2 pods, z2 0, z3 0: both empty zones score best; a node without the key is
        // ignored (scores worst).
        let nodes = vec![
            node("a", Some("z1")),
            node("b", Some("z2")),
            node("c", Some("z3")),
            node("d", None),
        ];
        let pods = vec![pod("p1", "a"), pod("p2", "a"), pod("p3", "a")];
        let mut c = SpreadConstraint::new(ZONE_KEY, 1, selector());
        c.node_taints_policy = InclusionPolicy::Ignore;
        let w = workload(vec![c]);
        let cluster = Cluster::new(nodes, pods);
        assert_eq!(candidate_nodes(&cluster, &w, 0, true), vec![1, 2]);
    }

    proptest::proptest! {
        // Cheap cases; a node at the floor tying with others is rare, so many of them.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// The planner's lazy scan visits the feasible nodes at the score floor when there are
        /// any: PodTopologySpread's score (rounded, with its maxSkew - 1 terms) must prefer
        /// exactly those, whatever the floor's slack, the counts and the maxSkews.
        #[test]
        fn nodes_at_the_score_floor_are_the_preferred_ones_when_there_are_any(
            zone_of in proptest::collection::vec(proptest::option::of(0u32..3), 1..12),
            zone_counts in proptest::collection::vec(0i32..8, 3),
            zone_eligible in proptest::collection::vec(proptest::bool::ANY, 3),
            host_counts in proptest::collection::vec(0i32..5, 12),
            feasible_mask in proptest::collection::vec(proptest::bool::ANY, 12),
            slack in proptest::collection::vec(0i32..2, 2),
            hard_zone in proptest::bool::ANY,
            max_skews in proptest::collection::vec(-1i32..5, 2),
        ) {
            let n = zone_of.len();
            let mut zone = SpreadConstraint::new(ZONE_KEY, max_skews[0], selector());
            if hard_zone {
                zone.when_unsatisfiable = WhenUnsatisfiable::DoNotSchedule;
            }
            let host = SpreadConstraint::new(HOSTNAME_KEY, max_skews[1], selector());
            let host_domain: Vec<Option<u32>> = (0..n as u32).map(Some).collect();
            let host_eligible = vec![true; n];
            let views = [
                SpreadView {
                    constraint: &zone,
                    key_domain: &zone_of,
                    node_domain: &zone_of,
                    eligible: &zone_eligible,
                    counts: &zone_counts,
                    evicted_from: None,
                    floor_zero: false,
                    self_match: true,
                },
                SpreadView {
                    constraint: &host,
                    key_domain: &host_domain,
                    node_domain: &host_domain,
                    eligible: &host_eligible,
                    counts: &host_counts[..n],
                    evicted_from: None,
                    floor_zero: false,
                    self_match: true,
                },
            ];
            let nodes: Vec<Node> = (0..n).map(|i| node(&format!("n{i}"), None)).collect();
            let free = vec![Resources::default(); n];
            let state = SchedState {
                nodes: &nodes,
                free: &free,
                claimed: &[],
                spread: &views,
                check_room: false,
            };
            let feasible: Vec<usize> = (0..n).filter(|&i| feasible_mask[i]).collect();
            // The fewest any keyed node counts, less some slack: a floor no node may be under.
            let floor: Vec<i32> = views
                .iter()
                .zip(&slack)
                .map(|(v, slack)| {
                    let fewest = (0..n)
                        .filter(|&i| v.key_domain[i].is_some())
                        .map(|i| scored_count(v, i))
                        .min()
                        .unwrap_or(0);
                    fewest - slack
                })
                .collect();
            let lowest: Vec<usize> = feasible
                .iter()
                .copied()
                .filter(|&i| at_score_floor(&views, &floor, i))
                .collect();
            if !lowest.is_empty() {
                proptest::prop_assert_eq!(preferred_nodes(&state, &feasible), lowest);
            }
        }
    }
}
