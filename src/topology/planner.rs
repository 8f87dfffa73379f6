//! The joint rebalancing planner: the fewest evictions that bring every spread constraint of a
//! workload within maxSkew, never making any of them worse, and only toward a node that would
//! take the pod.
//!
//! Each step picks the eviction that lowers the workload's total distance from balance
//! ([`min_moves`](super::balance::min_moves), summed over constraints) the most, while no
//! constraint's distance or skew grows. For one constraint every step lowers the distance by one,
//! so the plan meets the lower bound; for several (zone and hostname together) a pod is chosen so
//! that moving it helps the zone without piling pods onto one node.

use std::collections::{HashMap, HashSet};

use super::balance::Histogram;
use super::cluster::Cluster;
use super::eligibility::would_accept;
use super::measure::{Layout, Measurement, layouts, measurement_of, own_counted_pods};
use super::model::{HOSTNAME_KEY, Resources, Workload};

/// Limits on one planning step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanOptions {
    /// Pods of the workload disrupted in this step (`maxDisruptions`).
    pub max_moves: usize,
    /// Only move a pod toward a node with room for its requests (`requireNodeFit`). Readiness,
    /// cordons, taints and node affinity are always respected: evicting toward a dead zone only
    /// brings the pod back.
    pub require_node_fit: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            max_moves: 1,
            require_node_fit: true,
        }
    }
}

/// One eviction and where its replacement is expected to land.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub pod: String,
    pub pod_uid: String,
    pub from_node: String,
    pub to_node: String,
    /// The first constraint whose domain the move changes, and the domains it moves between.
    pub topology_key: String,
    pub from_domain: String,
    pub to_domain: String,
}

/// Why no (further) move is planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Obstacle {
    /// Every constraint is within maxSkew.
    AlreadyBalanced,
    /// A move would help, but no node in a below-target domain would take the pod.
    NoCapacity,
    /// Only pods with PersistentVolumeClaims could move, and their volumes keep them in their zone.
    VolumePinned,
    /// Fewer domains than `minDomains`: no move can satisfy the constraint.
    TooFewDomains,
    /// The excess is made of pods the workload does not own, or no move lowers the skew.
    NothingMovable,
    /// Only pods opted out of eviction (`karpenter.sh/do-not-disrupt`, ...) could move.
    OptedOut,
}

impl Obstacle {
    /// The reason as the status and events spell it.
    pub fn reason(self) -> &'static str {
        match self {
            Obstacle::AlreadyBalanced => "AlreadyBalanced",
            Obstacle::NoCapacity => "NoCapacity",
            Obstacle::VolumePinned => "VolumePinned",
            Obstacle::TooFewDomains => "TooFewDomains",
            Obstacle::NothingMovable => "NothingMovable",
            Obstacle::OptedOut => "PodsOptedOut",
        }
    }
}

/// What to do now for one workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The moves of this step, at most `max_moves`.
    pub moves: Vec<Move>,
    /// Moves the whole rebalance takes, this step included.
    pub moves_needed: usize,
    /// Why the whole plan stops short of balance, if it does.
    pub shortfall: Option<Obstacle>,
}

/// Plans the rebalance of one workload, or says why there is nothing to do.
pub fn plan_rebalance(
    cluster: &Cluster,
    workload: &Workload,
    options: &PlanOptions,
) -> Result<Plan, Obstacle> {
    let own = own_counted_pods(cluster, workload);
    let layouts = layouts(cluster, workload, &own);
    plan_from(cluster, workload, &own, layouts, options)
}

/// Measures a workload and plans its rebalance in one pass over the cluster.
pub fn evaluate(cluster: &Cluster, workload: &Workload, options: &PlanOptions) -> Evaluation {
    let own = own_counted_pods(cluster, workload);
    let layouts = layouts(cluster, workload, &own);
    let measurement = measurement_of(workload, &layouts, own.clone());
    let plan = plan_from(cluster, workload, &own, layouts, options);
    Evaluation { measurement, plan }
}

/// A workload's measured spread and what to do about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub measurement: Measurement,
    pub plan: Result<Plan, Obstacle>,
}

fn plan_from(
    cluster: &Cluster,
    workload: &Workload,
    own: &[usize],
    layouts: Vec<Layout>,
    options: &PlanOptions,
) -> Result<Plan, Obstacle> {
    if balanced(&layouts, workload) {
        return Err(Obstacle::AlreadyBalanced);
    }
    let mut search = Search::new(cluster, workload, own, layouts, options.require_node_fit);
    let mut all_moves = Vec::new();
    while !search.balanced() {
        match search.best_move(Relax::NONE) {
            Some(candidate) => all_moves.push(search.apply(candidate)),
            None => break,
        }
    }
    let shortfall = (!search.balanced()).then(|| search.diagnose());
    if all_moves.is_empty() {
        return Err(shortfall.unwrap_or(Obstacle::NothingMovable));
    }
    let moves_needed = all_moves.len();
    all_moves.truncate(options.max_moves.max(1));
    Ok(Plan {
        moves: all_moves,
        moves_needed,
        shortfall,
    })
}

fn balanced(layouts: &[Layout], workload: &Workload) -> bool {
    layouts
        .iter()
        .zip(&workload.constraints)
        .all(|(l, c)| l.skew() <= c.max_skew)
}

/// Which rules a diagnostic search may break, to tell why the real one found nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Relax {
    volumes: bool,
    target_node: bool,
    opted_out: bool,
}

impl Relax {
    const NONE: Relax = Relax {
        volumes: false,
        target_node: false,
        opted_out: false,
    };
}

#[derive(Clone, Copy, Debug)]
struct Candidate {
    pod: usize,
    target: usize,
    gain: i64,
}

struct Search<'a> {
    cluster: &'a Cluster,
    workload: &'a Workload,
    layouts: Vec<Layout>,
    /// Pods of the workload that may move, most willing first.
    movable: Vec<usize>,
    /// Nodes that count for every constraint.
    targets: Vec<usize>,
    /// Requests of the replacements planned onto each node so far.
    reserved: HashMap<usize, Resources>,
    moved: HashSet<usize>,
    check_room: bool,
}

impl<'a> Search<'a> {
    fn new(
        cluster: &'a Cluster,
        workload: &'a Workload,
        own: &[usize],
        layouts: Vec<Layout>,
        check_room: bool,
    ) -> Self {
        let counted_everywhere =
            |node: usize| layouts.iter().all(|l| l.nodes.node_domain[node].is_some());
        let mut movable: Vec<usize> = own
            .iter()
            .copied()
            .filter(|&p| {
                cluster
                    .node_of(&cluster.pods()[p])
                    .is_some_and(counted_everywhere)
            })
            .collect();
        movable.sort_by(|&a, &b| {
            let (a, b) = (&cluster.pods()[a], &cluster.pods()[b]);
            (a.placement.is_pinned(), a.priority, &a.name).cmp(&(
                b.placement.is_pinned(),
                b.priority,
                &b.name,
            ))
        });
        let targets = (0..cluster.nodes().len())
            .filter(|&n| counted_everywhere(n))
            .collect();
        Self {
            cluster,
            workload,
            layouts,
            movable,
            targets,
            reserved: HashMap::new(),
            moved: HashSet::new(),
            check_room,
        }
    }

    fn balanced(&self) -> bool {
        balanced(&self.layouts, self.workload)
    }

    /// What is left on a node once the moves planned so far have landed.
    fn free(&self, node: usize) -> Resources {
        let reserved = self.reserved.get(&node).copied().unwrap_or_default();
        self.cluster.free(node).minus(&reserved)
    }

    /// The move that lowers the total distance from balance the most; ties go to the most
    /// willing pod, then the first node by name.
    fn best_move(&self, relax: Relax) -> Option<Candidate> {
        let mut prices: Vec<Pricing> = self
            .layouts
            .iter()
            .zip(&self.workload.constraints)
            .map(|(l, c)| Pricing::new(l, c.max_skew))
            .collect();
        // A move lowers each constraint's distance by at most one: once a move gains that much,
        // nothing later in preference order can beat it.
        let most = prices.iter().filter(|p| p.distance > 0).count() as i64;
        let mut best: Option<Candidate> = None;
        for &p in self.movable.iter().filter(|p| !self.moved.contains(p)) {
            if best.is_some_and(|b| b.gain >= most) {
                break;
            }
            let pod = &self.cluster.pods()[p];
            if pod.opted_out && !relax.opted_out {
                continue;
            }
            let Some(source) = self.cluster.node_of(pod) else {
                continue;
            };
            for &target in &self.targets {
                if target == source {
                    continue;
                }
                let Some((gain, crosses_zone)) = self.price(&mut prices, source, target) else {
                    continue;
                };
                if best.is_some_and(|b| gain <= b.gain) {
                    continue;
                }
                if pod.has_volume_claims && crosses_zone && !relax.volumes {
                    continue;
                }
                let node = &self.cluster.nodes()[target];
                if !relax.target_node
                    && !would_accept(
                        node,
                        &pod.placement,
                        &pod.requests,
                        &self.free(target),
                        self.check_room,
                    )
                {
                    continue;
                }
                best = Some(Candidate {
                    pod: p,
                    target,
                    gain,
                });
            }
        }
        best
    }

    /// The gain of moving a pod from `source` to `target` (positive is better), and whether it
    /// leaves a domain of a key other than hostname; `None` when any constraint gets worse or
    /// nothing improves.
    fn price(&self, prices: &mut [Pricing], source: usize, target: usize) -> Option<(i64, bool)> {
        let mut gain = 0;
        let mut crosses_zone = false;
        for ((layout, pricing), constraint) in self
            .layouts
            .iter()
            .zip(prices.iter_mut())
            .zip(&self.workload.constraints)
        {
            let (from, to) = (
                layout.nodes.node_domain[source]?,
                layout.nodes.node_domain[target]?,
            );
            if from == to {
                continue;
            }
            crosses_zone |= constraint.topology_key != HOSTNAME_KEY;
            let (delta, new_skew) =
                pricing.delta(layout.counts[from as usize], layout.counts[to as usize]);
            if delta > 0 || new_skew > pricing.skew {
                return None;
            }
            gain -= delta;
        }
        (gain > 0).then_some((gain, crosses_zone))
    }

    fn apply(&mut self, c: Candidate) -> Move {
        let pod = &self.cluster.pods()[c.pod];
        let source = self.cluster.node_of(pod).unwrap_or(c.target);
        let mut changed = None;
        for (layout, constraint) in self.layouts.iter_mut().zip(&self.workload.constraints) {
            if let (Some(from), Some(to)) = (
                layout.nodes.node_domain[source],
                layout.nodes.node_domain[c.target],
            ) && from != to
            {
                layout.counts[from as usize] -= 1;
                layout.counts[to as usize] += 1;
                changed.get_or_insert_with(|| {
                    (
                        constraint.topology_key.clone(),
                        layout.key.domains[from as usize].clone(),
                        layout.key.domains[to as usize].clone(),
                    )
                });
            }
        }
        let need = Resources::new(pod.requests.cpu_millis, pod.requests.memory_bytes, 1);
        let reserved = self.reserved.entry(c.target).or_default();
        *reserved = reserved.plus(&need);
        self.moved.insert(c.pod);
        let (topology_key, from_domain, to_domain) = changed.unwrap_or_default();
        Move {
            pod: pod.name.clone(),
            pod_uid: pod.uid.clone(),
            from_node: self.cluster.nodes()[source].name.clone(),
            to_node: self.cluster.nodes()[c.target].name.clone(),
            topology_key,
            from_domain,
            to_domain,
        }
    }

    /// Why the search stops short: the first rule whose relaxation would let a move through.
    fn diagnose(&self) -> Obstacle {
        let relaxed = |volumes, target_node| {
            self.best_move(Relax {
                volumes,
                target_node,
                opted_out: false,
            })
            .is_some()
        };
        let opted_out = || {
            self.best_move(Relax {
                opted_out: true,
                ..Relax::NONE
            })
            .is_some()
        };
        if opted_out() {
            Obstacle::OptedOut
        } else if relaxed(true, false) {
            Obstacle::VolumePinned
        } else if relaxed(false, true) {
            Obstacle::NoCapacity
        } else if relaxed(true, true) {
            Obstacle::VolumePinned
        } else if self
            .layouts
            .iter()
            .zip(&self.workload.constraints)
            .any(|(l, c)| l.floor_zero && l.skew() > c.max_skew)
        {
            Obstacle::TooFewDomains
        } else {
            Obstacle::NothingMovable
        }
    }
}

/// Prices moves for one constraint in its current state; a move's effect depends only on the
/// counts of its two domains, so each pair is priced once.
struct Pricing {
    hist: Histogram,
    max_skew: i32,
    floor_zero: bool,
    distance: i64,
    skew: i32,
    memo: HashMap<(i32, i32), (i64, i32)>,
}

impl Pricing {
    fn new(layout: &Layout, max_skew: i32) -> Self {
        let hist = Histogram::from_counts(&layout.eligible_counts().collect::<Vec<_>>());
        let distance = hist.min_moves(max_skew, layout.floor_zero);
        let skew = hist.skew(layout.floor_zero);
        Self {
            hist,
            max_skew,
            floor_zero: layout.floor_zero,
            distance,
            skew,
            memo: HashMap::new(),
        }
    }

    /// Change of distance and the new skew when a pod leaves a domain of `from` pods for one of
    /// `to` pods.
    fn delta(&mut self, from: i32, to: i32) -> (i64, i32) {
        if from <= 0 {
            return (i64::MAX / 4, i32::MAX);
        }
        let (hist, max_skew, floor_zero, distance) =
            (&self.hist, self.max_skew, self.floor_zero, self.distance);
        *self.memo.entry((from, to)).or_insert_with(|| {
            let after = hist.after_move(from, to);
            (
                after.min_moves(max_skew, floor_zero) - distance,
                after.skew(floor_zero),
            )
        })
    }
}
