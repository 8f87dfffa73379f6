//! The joint rebalancing planner: the fewest evictions that bring every spread constraint of a
//! workload within maxSkew (or as close as the cluster allows), where no step takes a constraint
//! from within maxSkew to above it nor raises the skew of one already above, and every
//! replacement is planned onto a node the scheduler would pick in the state right after the
//! plan's earlier evictions ([`scheduler`](super::scheduler)).
//!
//! Method: a greedy pass (each step takes the eviction that lowers the total distance from
//! balance the most) gives an incumbent. The distance of each constraint
//! ([`min_moves`](super::balance::min_moves)) drops by at most one per eviction, so the largest
//! of them is a lower bound; when the greedy meets it (the common case: one constraint, or a
//! zone pile-up) it is optimal. Otherwise an A* search over sets of moves (the bound as its
//! consistent heuristic, the greedy's length as the cut-off) finds the shortest plan, or, when
//! balance cannot be reached, the closest reachable state in the fewest moves. The search is
//! bounded by a work budget; past it the best plan found so far is returned.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::ops::ControlFlow;

use super::balance::Histogram;
use super::cluster::Cluster;
use super::fast_hash::FastMap;
use super::measure::{
    Counted, Layout, Measurement, count, layouts, measurement_of, own_counted_pods,
};
use super::model::{HOSTNAME_KEY, Node, Placement, Resources, Workload};
use super::scheduler::{
    Filter, Incoming, SchedState, SpreadView, VolumeZone, at_score_floor, static_fit,
};

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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Move {
    pub pod: String,
    pub pod_uid: String,
    /// The pod's resourceVersion in the snapshot the move was planned on (empty: unknown).
    pub pod_resource_version: String,
    pub from_node: String,
    /// One node the scheduler would accept (and, for ScheduleAnyway constraints, prefer).
    pub to_node: String,
    /// The first constraint whose counts the move changes, and the domains it moves between.
    pub topology_key: String,
    pub from_domain: String,
    pub to_domain: String,
    /// For each ScheduleAnyway constraint's key: every domain the scheduler may put the
    /// replacement in (its score ties them; other score plugins decide). `to_domain` is one.
    pub allowed_domains: BTreeMap<String, Vec<String>>,
    /// The score's tie (ScheduleAnyway constraints) also holds a node where the replacement
    /// would not bring the workload closer to balance, or would come back into `from_domain`:
    /// the move may fail, and the outcome will tell. A plan takes one only when no plan as short
    /// takes fewer; a step takes one only when no certain move helps. Never with DoNotSchedule
    /// constraints alone (the filter decides).
    pub gamble: bool,
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
    /// The skew is over the expected domains, and one of them has no node the pods may use
    /// (without asking an autoscaler for one, nothing can move there).
    DomainMissing,
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
            Obstacle::DomainMissing => "DomainMissing",
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
///
/// A balanced workload costs its own pods, never the cluster's domains: the dense layouts the
/// planner needs are built only when some constraint is above its maxSkew.
pub fn evaluate(cluster: &Cluster, workload: &Workload, options: &PlanOptions) -> Evaluation {
    let own = own_counted_pods(cluster, workload);
    let counted = count(cluster, workload, &own);
    let measurement = measurement_of(workload, &counted, own.clone());
    let plan = if measurement.within_policy() {
        Err(Obstacle::AlreadyBalanced)
    } else {
        let layouts = counted.into_iter().map(Counted::layout).collect();
        plan_from(cluster, workload, &own, layouts, options)
    };
    Evaluation { measurement, plan }
}

/// A workload's measured spread and what to do about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub measurement: Measurement,
    pub plan: Result<Plan, Obstacle>,
}

/// Node checks (one candidate target of one pod in one state) the exact search may spend on one
/// workload before it settles for the best plan found.
const SEARCH_BUDGET: usize = 60_000;

fn plan_from(
    cluster: &Cluster,
    workload: &Workload,
    own: &[usize],
    layouts: Vec<Layout>,
    options: &PlanOptions,
) -> Result<Plan, Obstacle> {
    if layouts
        .iter()
        .zip(&workload.constraints)
        .all(|(l, c)| l.skew() <= c.max_skew)
    {
        return Err(Obstacle::AlreadyBalanced);
    }
    let opted_out = own.iter().any(|&p| cluster.pods()[p].opted_out);
    let kept_layouts = opted_out.then(|| layouts.clone());
    let problem = Problem::new(
        cluster,
        workload,
        own,
        layouts,
        options.require_node_fit,
        Movable::Willing,
    );
    let path = problem.solve(SEARCH_BUDGET);
    let end = problem.replay(&path);
    let mut shortfall = (!problem.balanced(&end)).then(|| problem.diagnose(&end));
    if let (Some(_), Some(layouts)) = (shortfall, kept_layouts) {
        // Would the pods that opted out of eviction get further? Then they are the reason.
        let all = Problem::new(
            cluster,
            workload,
            own,
            layouts,
            options.require_node_fit,
            Movable::All,
        );
        let all_end = all.replay(&all.solve(SEARCH_BUDGET));
        if all.distance(&all_end) < problem.distance(&end) {
            shortfall = Some(Obstacle::OptedOut);
        }
    }
    if path.is_empty() {
        return Err(shortfall.unwrap_or(Obstacle::NothingMovable));
    }
    let keep = options.max_moves.max(1).min(path.len());
    Ok(Plan {
        moves: problem.moves(&path, keep),
        moves_needed: path.len(),
        shortfall,
    })
}

/// Which of the workload's pods a plan may evict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Movable {
    /// All but those opted out of eviction (they still count for skew).
    Willing,
    /// Every pod: only to tell whether the opted-out ones are why the plan stops short.
    All,
}

/// One step of a plan: the next pod of a class goes to a node.
type Step = (u32, u32);

/// A search frontier entry: lowest (f, gambles) first, then the deepest, then the oldest.
type Open = (Reverse<(i64, usize)>, usize, Reverse<u64>, Vec<Step>);

/// The best plan found so far: its distance from balance at the end, its moves and gambles.
struct Incumbent {
    dist: i64,
    moves: usize,
    gambles: usize,
    path: Vec<Step>,
}

/// Which rules a diagnostic search may break, to tell why the real one found nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Relax {
    volumes: bool,
    target_node: bool,
}

impl Relax {
    const NONE: Relax = Relax {
        volumes: false,
        target_node: false,
    };
}

/// Pods of the workload that are interchangeable for planning: on one node, counted by the same
/// constraints, shaped alike. The most willing moves first.
#[derive(Debug)]
struct Class {
    source: usize,
    /// Cluster indexes, most willing first (unpinned, lowest priority, then name).
    pods: Vec<usize>,
    /// Per constraint: the constraint counts these pods.
    counted: Vec<bool>,
    shape: usize,
}

/// A pod shape: what the scheduler's node-only filters look at.
#[derive(Debug)]
struct Shape<'a> {
    placement: &'a Placement,
    requests: Resources,
    volume_zone: VolumeZone<'a>,
    /// The node-only filters (readiness, cordon, taints, affinity, volume zone), per node, as
    /// far as asked: 0 not yet, 1 passes, 2 fails. A plan usually looks at a few nodes only.
    fits: Vec<Cell<u8>>,
}

impl<'a> Shape<'a> {
    fn fits(&self, nodes: &[Node], node: usize) -> bool {
        let cell = &self.fits[node];
        if cell.get() == 0 {
            let fits = static_fit(&nodes[node], &self.incoming(Relax::NONE)).is_ok();
            cell.set(if fits { 1 } else { 2 });
        }
        cell.get() == 1
    }

    fn incoming(&self, relax: Relax) -> Incoming<'a> {
        Incoming {
            placement: self.placement,
            requests: self.requests,
            volume_zone: if relax.volumes {
                VolumeZone::Free
            } else {
                self.volume_zone
            },
        }
    }
}

/// Counts and room after some moves.
#[derive(Clone, Debug)]
struct State {
    counts: Vec<Vec<i32>>,
    /// Per constraint: its eligible domains' counts as a histogram, kept in step with `counts`
    /// so that pricing a state never rescans every domain (a hostname constraint has one per
    /// node).
    hists: Vec<Histogram>,
    /// Room the plan's replacements took, by node (the snapshot's room is the problem's).
    claimed: Vec<(u32, Resources)>,
    /// Pods of each class moved so far.
    moved: Vec<u32>,
}

/// A state right after an eviction, as [`Problem::scan`] weighs the replacement's targets.
struct Evicted {
    /// Per constraint: the domain that lost the evicted pod (its count is one less than the
    /// state's), if the constraint counted it there.
    from: Vec<Option<u32>>,
    /// Per constraint: the global minimum Filter compares with (hard constraints only).
    global_mins: Vec<Option<i32>>,
    /// Per constraint: the fewest pods any node's domain counts for the score.
    floor: Vec<i32>,
}

/// Which pass of [`Problem::scan`] visits a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    /// The feasible nodes at the score floor: the scheduler may pick any of them.
    Floor,
    /// No feasible node is at the floor: the feasible nodes that score best.
    Scored,
}

/// One legal move from a state, priced.
#[derive(Clone, Copy, Debug)]
struct Succ {
    class: usize,
    target: usize,
    /// Decrease of the total distance (positive is better).
    gain: i64,
    /// The largest constraint distance after the move (the search's heuristic).
    h_after: i64,
    /// The score's tie holds a node where the move would not succeed ([`Move::gamble`]).
    gamble: bool,
}

/// One move priced: whether it is legal and changes some count, and if so what it gains and
/// the largest constraint distance after it.
#[derive(Clone, Copy, Debug)]
struct Priced {
    legal: bool,
    changed: bool,
    gain: i64,
    h_after: i64,
}

impl Priced {
    /// The workload gets closer to balance and no constraint gets worse.
    fn succeeds(&self) -> bool {
        self.legal && self.changed && self.gain > 0
    }
}

/// What the nodes of the score's tie for one replacement would make of its move, as outcome
/// judging sees it ([`judge_move`](super::outcome::judge_move)): a move succeeds when the
/// workload gets closer to balance, no constraint gets worse, and the replacement is not back
/// in the domain it left of the move's topology key.
struct Tie {
    /// Some node of the tie would not bring the workload closer to balance (or make a
    /// constraint worse), the pod's own node included.
    any_fails: bool,
    /// Per constraint: some node of the tie is in the domain the pod leaves.
    back_in: Vec<bool>,
}

impl Tie {
    fn new(constraints: usize) -> Self {
        Self {
            any_fails: false,
            back_in: vec![false; constraints],
        }
    }

    /// Takes in a node of the tie, `priced` as [`Problem::price`] has it (`None`: the pod's
    /// own node); `back_in(c)`: the node is in the domain of constraint `c` the pod leaves.
    fn add(&mut self, priced: Option<Priced>, back_in: impl Fn(usize) -> bool) {
        let succeeds = priced.is_some_and(|p| p.succeeds());
        self.any_fails |= !succeeds;
        if succeeds {
            for (c, back) in self.back_in.iter_mut().enumerate() {
                *back |= back_in(c);
            }
        }
    }

    /// Whether a move judged by constraint `key` may fail wherever the tie puts it.
    fn gamble(&self, key: Option<usize>) -> bool {
        self.any_fails || key.is_some_and(|c| self.back_in[c])
    }
}

struct Problem<'a> {
    cluster: &'a Cluster,
    workload: &'a Workload,
    layouts: Vec<Layout>,
    classes: Vec<Class>,
    shapes: Vec<Shape<'a>>,
    /// Rank of each class's pods in willingness order, to order classes by their next pod.
    rank: FastMap<usize, usize>,
    check_room: bool,
    /// The state before any move.
    start: State,
    /// Per constraint: every domain of its key counts (no node is left out by its policies).
    every_domain_counts: Vec<bool>,
    /// Some constraint is ScheduleAnyway: the score picks among the feasible nodes, and a move
    /// may be a gamble. Without one the filter decides and every feasible node is a target.
    scored: bool,
}

impl<'a> Problem<'a> {
    fn new(
        cluster: &'a Cluster,
        workload: &'a Workload,
        own: &[usize],
        layouts: Vec<Layout>,
        check_room: bool,
        which: Movable,
    ) -> Self {
        let pods = cluster.pods();
        let mut movable: Vec<usize> = own
            .iter()
            .copied()
            .filter(|&p| which == Movable::All || !pods[p].opted_out)
            // A pod on a node an autoscaler is taking away is moving already.
            .filter(|&p| {
                cluster
                    .node_of_pod(p)
                    .is_some_and(|n| !cluster.nodes()[n].disrupting)
            })
            .collect();
        movable.sort_by(|&a, &b| {
            let (a, b) = (&pods[a], &pods[b]);
            (a.placement.is_pinned(), a.priority, &a.name).cmp(&(
                b.placement.is_pinned(),
                b.priority,
                &b.name,
            ))
        });
        let rank = movable.iter().enumerate().map(|(r, p)| (*p, r)).collect();
        let mut shapes: Vec<Shape<'a>> = Vec::new();
        let mut classes: Vec<Class> = Vec::new();
        for &p in &movable {
            let pod = &pods[p];
            let Some(source) = cluster.node_of_pod(p) else {
                continue;
            };
            let volume_zone = VolumeZone::of(pod.has_volume_claims, Some(&cluster.nodes()[source]));
            let shape = match shapes.iter().position(|s| {
                *s.placement == pod.placement
                    && s.requests == pod.requests
                    && s.volume_zone == volume_zone
            }) {
                Some(s) => s,
                None => {
                    shapes.push(Shape {
                        placement: &pod.placement,
                        requests: pod.requests,
                        volume_zone,
                        fits: (0..cluster.nodes().len()).map(|_| Cell::new(0)).collect(),
                    });
                    shapes.len() - 1
                }
            };
            let counted: Vec<bool> = layouts.iter().map(|l| l.counts_pod(p)).collect();
            match classes
                .iter_mut()
                .find(|c| c.source == source && c.shape == shape && c.counted == counted)
            {
                Some(c) => c.pods.push(p),
                None => classes.push(Class {
                    source,
                    pods: vec![p],
                    counted,
                    shape,
                }),
            }
        }
        let layouts_counting_every_domain = layouts
            .iter()
            .map(|l| l.nodes.eligible.iter().all(|e| *e))
            .collect();
        let start = State {
            counts: layouts.iter().map(|l| l.counts.clone()).collect(),
            hists: layouts.iter().map(|l| l.hist.clone()).collect(),
            claimed: Vec::new(),
            moved: vec![0; classes.len()],
        };
        Self {
            cluster,
            workload,
            layouts,
            classes,
            shapes,
            rank,
            check_room,
            start,
            every_domain_counts: layouts_counting_every_domain,
            scored: workload.constraints.iter().any(|c| !c.is_hard()),
        }
    }

    fn initial(&self) -> State {
        self.start.clone()
    }

    fn replay(&self, path: &[Step]) -> State {
        let mut state = self.initial();
        for &(class, target) in path {
            self.apply(&mut state, class as usize, target as usize);
        }
        state
    }

    /// The domain of `node` for constraint `c`, if the node counts for it.
    fn domain(&self, c: usize, node: usize) -> Option<u32> {
        self.layouts[c].nodes.node_domain[node]
    }

    fn apply(&self, state: &mut State, class: usize, target: usize) {
        let k = &self.classes[class];
        for (c, counted) in k.counted.iter().enumerate() {
            if !*counted {
                continue;
            }
            for (node, step) in [(k.source, -1), (target, 1)] {
                // A node that counts is in an eligible domain: the histogram holds its count.
                if let Some(d) = self.domain(c, node) {
                    let count = &mut state.counts[c][d as usize];
                    state.hists[c].remove(*count);
                    *count += step;
                    state.hists[c].add(*count);
                }
            }
        }
        let shape = &self.shapes[k.shape];
        let need = Resources::new(shape.requests.cpu_millis, shape.requests.memory_bytes, 1);
        // The evicted pod holds its requests until it is gone: nothing is freed at the source.
        state.claimed.push((target as u32, need));
        state.moved[class] += 1;
    }

    /// The total distance from balance in `state`, over every constraint.
    fn distance(&self, state: &State) -> i64 {
        self.pricings(state).iter().map(|p| p.distance).sum()
    }

    /// Per constraint: skew and distance in `state`.
    fn standing(&self, state: &State) -> Vec<(i32, i64)> {
        self.pricings(state)
            .iter()
            .map(|p| (p.skew, p.distance))
            .collect()
    }

    fn pricings(&self, state: &State) -> Vec<Pricing> {
        self.layouts
            .iter()
            .zip(&self.workload.constraints)
            .zip(&state.hists)
            .map(|((l, c), hist)| Pricing::new(hist, l.floor_zero, c.max_skew))
            .collect()
    }

    fn balanced(&self, state: &State) -> bool {
        self.standing(state)
            .iter()
            .zip(&self.workload.constraints)
            .all(|((skew, _), c)| *skew <= c.max_skew)
    }

    /// `state` right after the next pod of `class` is evicted (it no longer counts), as the
    /// scheduler sees it when placing the replacement.
    fn evicted(&self, state: &State, class: usize) -> Evicted {
        let k = &self.classes[class];
        let constraints = k.counted.len();
        let mut from = Vec::with_capacity(constraints);
        let mut global_mins = Vec::with_capacity(constraints);
        let mut floor = Vec::with_capacity(constraints);
        for (c, counted) in k.counted.iter().enumerate() {
            let d = self.domain(c, k.source).filter(|_| *counted);
            // One domain loses a pod: the lowest count is the old one, or that domain's.
            let lowest = match d {
                Some(d) => {
                    let left = state.counts[c][d as usize] - 1;
                    Some(state.hists[c].lowest().map_or(left, |l| l.min(left)))
                }
                None => state.hists[c].lowest(),
            }
            .unwrap_or(0);
            from.push(d);
            let min = if self.layouts[c].floor_zero {
                0
            } else {
                lowest
            };
            global_mins.push(self.workload.constraints[c].is_hard().then_some(min));
            // A node in a domain that does not count scores as if it held no pod.
            floor.push(if self.every_domain_counts[c] {
                lowest
            } else {
                0
            });
        }
        Evicted {
            from,
            global_mins,
            floor,
        }
    }

    /// The scheduler's view of each constraint in `state` right after the next pod of `class`
    /// is evicted (`from`: the domain it left, per constraint, as [`Evicted`] has it).
    fn views<'s>(
        &'s self,
        state: &'s State,
        class: usize,
        from: &[Option<u32>],
    ) -> Vec<SpreadView<'s>> {
        (self.layouts.iter())
            .zip(&self.workload.constraints)
            .zip(state.counts.iter().zip(from))
            .zip(&self.classes[class].counted)
            .map(|(((l, c), (counts, from)), m)| SpreadView {
                constraint: c,
                key_domain: &l.key.node_domain,
                node_domain: &l.nodes.node_domain,
                eligible: &l.nodes.eligible,
                counts,
                evicted_from: *from,
                floor_zero: l.floor_zero,
                self_match: *m,
            })
            .collect()
    }

    /// Visits, in node order, the nodes the scheduler may pick for the next pod of `class` in
    /// `state`, until `visit` breaks. The pod's own node is among them (the scheduler weighs it
    /// like any other) though it is no target. `work` counts the node checks.
    ///
    /// `skip` drops nodes the caller does not care about from the lazy pass (never from the
    /// scoring the fallback needs): they are not visited, and their filters are only checked
    /// while no feasible node at the floor is known.
    ///
    /// Most steps need one good target, not the whole set, so the scan is lazy: without
    /// ScheduleAnyway constraints every feasible node is picked; with them, a node counting for
    /// each the fewest pods any node can count scores best, and only when no feasible node does
    /// is the whole feasible set scored.
    fn scan(
        &self,
        state: &State,
        class: usize,
        relax: Relax,
        work: &mut usize,
        skip: &dyn Fn(usize) -> bool,
        visit: &mut dyn FnMut(usize, Pass) -> ControlFlow<()>,
    ) {
        let k = &self.classes[class];
        let shape = &self.shapes[k.shape];
        let Evicted {
            from,
            global_mins,
            floor,
        } = self.evicted(state, class);
        let views = self.views(state, class, &from);
        let nodes = self.cluster.nodes();
        let sched = SchedState {
            nodes,
            free: self.cluster.free_room(),
            claimed: &state.claimed,
            spread: &views,
            check_room: self.check_room && !relax.target_node,
        };
        let incoming = shape.incoming(relax);
        let filter = Filter::with_global_mins(&sched, &incoming, global_mins);
        let feasible = |t: usize| {
            let node_ok = if relax == Relax::NONE {
                shape.fits(nodes, t)
            } else {
                incoming.volume_zone.admits(&nodes[t])
                    && (relax.target_node || static_fit(&nodes[t], &incoming).is_ok())
            };
            node_ok && filter.passes_dynamic(t)
        };
        let scored = views.iter().any(|v| !v.constraint.is_hard());
        let mut any_lowest = false;
        for t in 0..nodes.len() {
            *work += 1;
            if scored && !at_score_floor(&views, &floor, t) {
                continue;
            }
            if skip(t) {
                // Not visited, but the pass is the scheduler's choice as soon as one feasible
                // node is at the floor.
                any_lowest = any_lowest || (scored && feasible(t));
                continue;
            }
            if feasible(t) {
                any_lowest = true;
                if visit(t, Pass::Floor).is_break() {
                    return;
                }
            }
        }
        if !scored || any_lowest {
            return;
        }
        let all: Vec<usize> = (0..nodes.len()).filter(|&t| feasible(t)).collect();
        *work += nodes.len();
        for t in filter.preferred(&all) {
            if visit(t, Pass::Scored).is_break() {
                return;
            }
        }
    }

    /// For each ScheduleAnyway constraint but the hostname one (its domains are the nodes:
    /// `to_node` names one, and listing thousands for each move cost more than the plan), the
    /// domains of the nodes [`scan`](Self::scan) visits, by name (a node without the key: "").
    fn allowed_domains(&self, state: &State, class: usize) -> BTreeMap<String, Vec<String>> {
        let listed: Vec<usize> = (self.workload.constraints.iter().enumerate())
            .filter(|(_, c)| !c.is_hard() && c.topology_key != HOSTNAME_KEY)
            .map(|(c, _)| c)
            .collect();
        if listed.is_empty() {
            return BTreeMap::new();
        }
        // Per listed constraint: the domains seen, and whether a node without the key was.
        let seen: Vec<(Vec<Cell<bool>>, Cell<bool>)> = (listed.iter())
            .map(|&c| {
                let domains = self.layouts[c].key.domains.len();
                (vec![Cell::new(false); domains], Cell::new(false))
            })
            .collect();
        let key_domain = |c: usize, t: usize| self.layouts[c].key.node_domain[t];
        // Once every domain is seen the answer is known, unless a node without a key could
        // still add "".
        let unseen = Cell::new(
            (listed.iter())
                .map(|&c| self.layouts[c].key.domains.len())
                .sum::<usize>(),
        );
        let may_stop = listed.iter().all(|&c| self.layouts[c].key.on_every_node);
        // The floor pass only visits nodes whose domains score at the floor: once those are all
        // seen, no other domain can follow (the scored pass runs only when the floor pass
        // visits nothing). A full domain would otherwise keep the pass going over every node.
        let evicted = self.evicted(state, class);
        let at_floor = |c: usize, d: usize| {
            let eligible = self.layouts[c].nodes.eligible.get(d).copied();
            let scored = if eligible.unwrap_or(false) {
                state.counts[c][d] - i32::from(evicted.from[c] == Some(d as u32))
            } else {
                0
            };
            scored == evicted.floor[c]
        };
        let unseen_at_floor = Cell::new(
            (listed.iter())
                .map(|&c| {
                    (0..self.layouts[c].key.domains.len())
                        .filter(|&d| at_floor(c, d))
                        .count()
                })
                .sum::<usize>(),
        );
        // A node whose domains are all seen adds nothing.
        let known = |t: usize| {
            (listed.iter().zip(&seen)).all(|(&c, (domains, _))| {
                key_domain(c, t).is_some_and(|d| domains[d as usize].get())
            })
        };
        self.scan(state, class, Relax::NONE, &mut 0, &known, &mut |t, pass| {
            for (&c, (domains, keyless)) in listed.iter().zip(&seen) {
                match key_domain(c, t) {
                    Some(d) => {
                        if !domains[d as usize].replace(true) {
                            unseen.set(unseen.get() - 1);
                            if at_floor(c, d as usize) {
                                unseen_at_floor.set(unseen_at_floor.get() - 1);
                            }
                        }
                    }
                    None => keyless.set(true),
                }
            }
            let floor_done = pass == Pass::Floor && unseen_at_floor.get() == 0;
            if may_stop && (unseen.get() == 0 || floor_done) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        (listed.iter().zip(&seen))
            .map(|(&c, (domains, keyless))| {
                let names = &self.layouts[c].key.domains;
                // Domain indexes follow the names' order; "" sorts first.
                let mut allowed: Vec<String> =
                    keyless.get().then(String::new).into_iter().collect();
                allowed.extend(
                    (domains.iter().enumerate())
                        .filter(|(_, seen)| seen.get())
                        .map(|(d, _)| names[d].clone()),
                );
                allowed.dedup();
                (self.workload.constraints[c].topology_key.clone(), allowed)
            })
            .collect()
    }

    /// Every legal, useful move of the next pod of `class`, priced against `pricings` (the
    /// state's). A move is legal when no constraint goes from within maxSkew to above it and
    /// none already above gets a larger skew; useful when it changes some count. The scan stops
    /// at a move gaining `enough`.
    ///
    /// With `judge`, each move says whether it is a gamble: with ScheduleAnyway constraints the
    /// scheduler may put the replacement on any node of the score's tie, not only the planned
    /// one ([`Tie`]). Telling needs the whole tie, so the scan then stops early only once the
    /// tie is known to hold a node where moves fail. Without `judge`, no move is called a gamble
    /// (see [`is_gamble`](Self::is_gamble)).
    #[allow(clippy::too_many_arguments)] // one scan's state, inputs and budget; all needed
    fn moves_of(
        &self,
        state: &State,
        pricings: &mut [Pricing],
        class: usize,
        relax: Relax,
        work: &mut usize,
        out: &mut Vec<Succ>,
        enough: i64,
        judge: bool,
    ) {
        let k = &self.classes[class];
        if state.moved[class] as usize >= k.pods.len() {
            return;
        }
        let judge = judge && self.scored;
        let first = out.len();
        let total: i64 = pricings.iter().map(|p| p.distance).sum();
        let mut tie = Tie::new(k.counted.len());
        self.scan(state, class, relax, work, &|_| false, &mut |target, _| {
            let priced = self.price(state, pricings, class, target, total);
            if judge {
                tie.add(priced, |c| self.back_in(class, c, target));
            }
            if let Some(Priced {
                gain,
                h_after,
                legal: true,
                changed: true,
            }) = priced
            {
                out.push(Succ {
                    class,
                    target,
                    gain,
                    h_after,
                    gamble: false,
                });
                if gain >= enough && (tie.any_fails || !judge) {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        });
        if judge {
            for s in &mut out[first..] {
                s.gamble = tie.gamble(self.move_key(class, s.target));
            }
        }
    }

    /// The next pod of `class` moved to `target`, priced against `pricings` (whose distances
    /// sum to `total`); `None` for the pod's own node.
    fn price(
        &self,
        state: &State,
        pricings: &mut [Pricing],
        class: usize,
        target: usize,
        total: i64,
    ) -> Option<Priced> {
        let k = &self.classes[class];
        if target == k.source {
            return None;
        }
        let mut changed = false;
        let (mut dist_after, mut h_after) = (0i64, 0i64);
        for (c, pricing) in pricings.iter_mut().enumerate() {
            let (from, to) = if k.counted[c] {
                (self.domain(c, k.source), self.domain(c, target))
            } else {
                (None, None)
            };
            let (distance, skew) = if from == to {
                (pricing.distance, pricing.skew)
            } else {
                changed = true;
                let counts = &state.counts[c];
                pricing.after(
                    from.map(|d| counts[d as usize]),
                    to.map(|d| counts[d as usize]),
                )
            };
            if skew > pricing.max_skew.max(pricing.skew) {
                return Some(Priced {
                    legal: false,
                    changed,
                    gain: 0,
                    h_after: 0,
                });
            }
            dist_after += distance;
            h_after = h_after.max(distance);
        }
        Some(Priced {
            legal: true,
            changed,
            gain: total - dist_after,
            h_after,
        })
    }

    /// Whether the replacement of the next pod of `class`, planned onto `target` in `state`,
    /// may land on a node of the score's tie where the move would fail ([`Tie`]); `pricings`
    /// are the state's. Cheaper than judging every move: the lazy pass checks the filters only
    /// on nodes where the move could fail.
    ///
    /// Most nodes of a floor pass need no pricing either: when only soft constraints count the
    /// pod, a node at the floor counted in none of the pod's domains holds the floor's pods in
    /// each of its own, so a move there prices as one to the target does, the target being such
    /// a node too. Often the counts alone tell that the tie holds no other node
    /// ([`tie_all_apart`](Self::tie_all_apart)), and no node is visited at all.
    fn is_gamble(
        &self,
        state: &State,
        pricings: &mut [Pricing],
        class: usize,
        target: usize,
    ) -> bool {
        if !self.scored {
            return false;
        }
        let k = &self.classes[class];
        let key = self.move_key(class, target);
        let total: i64 = pricings.iter().map(|p| p.distance).sum();
        let pricings = RefCell::new(pricings);
        let fails = |t: usize| {
            let priced = self.price(state, &mut pricings.borrow_mut(), class, t, total);
            !priced.is_some_and(|p| p.succeeds()) || key.is_some_and(|c| self.back_in(class, c, t))
        };
        // Counted in domains apart from every one of the pod's.
        let apart = |t: usize| {
            (0..k.counted.len()).all(|c| {
                let (from, to) = (self.domain(c, k.source), self.domain(c, t));
                !k.counted[c] || (to.is_some() && to != from && !self.back_in(class, c, t))
            })
        };
        let soft_only = (k.counted.iter().zip(&self.workload.constraints))
            .all(|(counted, c)| !counted || !c.is_hard());
        let like_target = soft_only && apart(target) && !fails(target);
        if like_target && self.tie_all_apart(state, class, target) {
            return false;
        }
        let mut gamble = false;
        let skip = |t: usize| (like_target && apart(t)) || !fails(t);
        self.scan(state, class, Relax::NONE, &mut 0, &skip, &mut |t, _| {
            gamble = fails(t);
            if gamble {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        gamble
    }

    /// Whether the score's tie for the next pod of `class`, which holds `target`, is made of
    /// nodes counted in none of the pod's domains, told from the counts alone: the tie is the
    /// feasible nodes at the floor when `target` is at the floor; a node in one of the pod's
    /// domains is at the floor only when that domain is, and is the pod's own node when every
    /// domain is a single node; and when every node with the key counts, none is left out.
    fn tie_all_apart(&self, state: &State, class: usize, target: usize) -> bool {
        let k = &self.classes[class];
        let evicted = self.evicted(state, class);
        let views = self.views(state, class, &evicted.from);
        let at_floor = |t: usize| at_score_floor(&views, &evicted.floor, t);
        at_floor(target)
            && (0..k.counted.len()).all(|c| {
                let domain_at_floor = |d: u32| state.counts[c][d as usize] - 1 == evicted.floor[c];
                let layout = &self.layouts[c];
                let keyed = layout.key.node_domain.get(k.source).copied().flatten();
                !k.counted[c]
                    || (layout.nodes.every_keyed_node
                        && match self.domain(c, k.source) {
                            // Only a pod on a node without the key leaves no domain.
                            None => keyed.is_none(),
                            Some(d) => {
                                !domain_at_floor(d)
                                    || (layout.key.one_node_per_domain && !at_floor(k.source))
                            }
                        })
            })
    }

    /// Every legal, useful move of the next pod of `class`, under every rule, each judged
    /// certain or a gamble ([`moves_of`](Self::moves_of)).
    fn all_moves_of(
        &self,
        state: &State,
        pricings: &mut [Pricing],
        class: usize,
        work: &mut usize,
        out: &mut Vec<Succ>,
    ) {
        self.moves_of(
            state,
            pricings,
            class,
            Relax::NONE,
            work,
            out,
            i64::MAX,
            true,
        );
    }

    /// Whether `node` is in the domain of constraint `c` the next pod of `class` leaves, by
    /// the key's value as outcome judging names it (`from_domain`), counted there or not.
    fn back_in(&self, class: usize, c: usize, node: usize) -> bool {
        let k = &self.classes[class];
        let key = &self.layouts[c].key.node_domain;
        let from = key.get(k.source).copied().flatten();
        k.counted[c] && from.is_some() && key.get(node).copied().flatten() == from
    }

    /// The constraint a move of the next pod of `class` to `target` is judged by: the first
    /// whose domain it changes (the [`Move`]'s `topology_key`).
    fn move_key(&self, class: usize, target: usize) -> Option<usize> {
        let k = &self.classes[class];
        (0..k.counted.len())
            .find(|&c| k.counted[c] && self.domain(c, k.source) != self.domain(c, target))
    }

    /// Classes with pods left, ordered by their next pod's willingness.
    fn class_order(&self, state: &State) -> Vec<usize> {
        let mut order: Vec<(usize, usize)> = (0..self.classes.len())
            .filter_map(|k| {
                let p = *self.classes[k].pods.get(state.moved[k] as usize)?;
                Some((self.rank.get(&p).copied().unwrap_or(usize::MAX), k))
            })
            .collect();
        order.sort_unstable();
        order.into_iter().map(|(_, k)| k).collect()
    }

    /// The certain move that lowers the total distance the most, else the gamble that does
    /// (ties: the most willing pod, then the first node), if any lowers it.
    fn best_move(&self, state: &State, relax: Relax, work: &mut usize) -> Option<Succ> {
        // Most moves are certain: the move that gains the most is found without judging every
        // tie, then judged alone; only a gamble sends for a certain move that gains less.
        let pricings = &mut self.pricings(state);
        let best = self.best_move_judged(state, pricings, relax, work, false)?;
        if relax != Relax::NONE || !self.is_gamble(state, pricings, best.class, best.target) {
            return Some(best);
        }
        self.best_move_judged(state, pricings, relax, work, true)
    }

    /// [`best_move`](Self::best_move), every move judged (`judge`) or none called a gamble.
    fn best_move_judged(
        &self,
        state: &State,
        pricings: &mut [Pricing],
        relax: Relax,
        work: &mut usize,
        judge: bool,
    ) -> Option<Succ> {
        // A move lowers each constraint's distance by at most one.
        let most = pricings.iter().filter(|p| p.distance > 0).count() as i64;
        let mut best: Option<Succ> = None;
        let mut out = Vec::new();
        for class in self.class_order(state) {
            // Skip a class that cannot beat the best move so far even toward its ideal target
            // (without it the greedy is quadratic: every class it touched is priced again). A
            // gamble is beaten by any certain move that gains.
            let bound = self.gain_bound(state, pricings, class);
            let to_beat = best.map_or(0, |b| if b.gamble { 0 } else { b.gain });
            if bound <= to_beat {
                continue;
            }
            out.clear();
            // No move gains more than its bound: the first that reaches it will do.
            self.moves_of(state, pricings, class, relax, work, &mut out, bound, judge);
            for s in &out {
                if s.gain > 0 && best.is_none_or(|b| (!s.gamble, s.gain) > (!b.gamble, b.gain)) {
                    best = Some(*s);
                }
            }
            if best.is_some_and(|b| !b.gamble && b.gain >= most) {
                break;
            }
        }
        best
    }

    /// The most a move of the next pod of `class` can lower the total distance: per constraint,
    /// the gain of moving it to the least-loaded domain (or out of every domain). A pod added to
    /// a smaller domain is never worse for a constraint's distance, so this bounds every target.
    fn gain_bound(&self, state: &State, pricings: &mut [Pricing], class: usize) -> i64 {
        let k = &self.classes[class];
        let mut bound = 0;
        for (c, pricing) in pricings.iter_mut().enumerate() {
            if !k.counted[c] || pricing.distance == 0 {
                continue;
            }
            let from = self
                .domain(c, k.source)
                .map(|d| state.counts[c][d as usize]);
            let lowest = pricing.min_count;
            let best = [lowest, None]
                .into_iter()
                .map(|to| pricing.after(from, to).0)
                .min()
                .unwrap_or(pricing.distance);
            bound += (pricing.distance - best).max(0);
        }
        bound
    }

    /// The greedy plan and how many of its moves are gambles.
    fn greedy(&self, work: &mut usize) -> (Vec<Step>, usize) {
        let mut state = self.initial();
        let mut path = Vec::new();
        let mut gambles = 0;
        while !self.balanced(&state) {
            let Some(s) = self.best_move(&state, Relax::NONE, work) else {
                break;
            };
            self.apply(&mut state, s.class, s.target);
            path.push((s.class as u32, s.target as u32));
            gambles += usize::from(s.gamble);
        }
        (path, gambles)
    }

    /// The shortest plan to balance, or to the closest state reachable; of those, one with the
    /// fewest gambles.
    fn solve(&self, budget: usize) -> Vec<Step> {
        let mut work = 0;
        let (greedy, gambles) = self.greedy(&mut work);
        let start = self.initial();
        let lower_bound = self
            .standing(&start)
            .iter()
            .map(|(_, d)| *d)
            .max()
            .unwrap_or(0);
        let greedy_end = self.replay(&greedy);
        let greedy_dist: i64 = self.standing(&greedy_end).iter().map(|(_, d)| *d).sum();
        if greedy_dist == 0 && greedy.len() as i64 <= lower_bound && gambles == 0 {
            return greedy;
        }
        let incumbent = Incumbent {
            dist: greedy_dist,
            moves: greedy.len(),
            gambles,
            path: greedy,
        };
        self.search(incumbent, budget.saturating_sub(work))
    }

    /// A* over sets of moves: states are the multisets of (class, target) moved so far, so
    /// two orders of the same moves are one state; the path kept is the first legal order
    /// found. A path costs its moves, then its gambles (lexicographically; the heuristic bounds
    /// the moves and takes no gamble, so it stays consistent). Returns the best of the
    /// incumbent and what the search reached.
    fn search(&self, incumbent: Incumbent, budget: usize) -> Vec<Step> {
        let reaches_balance = incumbent.dist == 0;
        let cutoff = (incumbent.moves as i64, incumbent.gambles);
        let mut best = incumbent;
        let mut seen: FastMap<Vec<Step>, (usize, usize)> = FastMap::default();
        let mut heap: BinaryHeap<Open> = BinaryHeap::new();
        let start = self.initial();
        let h0 = self
            .standing(&start)
            .iter()
            .map(|(_, d)| *d)
            .max()
            .unwrap_or(0);
        heap.push((Reverse((h0, 0)), 0, Reverse(0), Vec::new()));
        seen.insert(Vec::new(), (0, 0));
        let mut seq = 0u64;
        let mut work = 0usize;
        let mut out = Vec::new();
        while let Some((Reverse((_, gambles)), g, _, path)) = heap.pop() {
            if work > budget {
                break;
            }
            let state = self.replay(&path);
            let mut pricings = self.pricings(&state);
            let dist: i64 = pricings.iter().map(|p| p.distance).sum();
            if (dist, g, gambles) < (best.dist, best.moves, best.gambles) {
                best = Incumbent {
                    dist,
                    moves: g,
                    gambles,
                    path: path.clone(),
                };
            }
            if dist == 0 {
                // Popped in order of (g + h, gambles) with a consistent h: no shorter plan
                // exists, nor one as short with fewer gambles.
                break;
            }
            for class in self.class_order(&state) {
                out.clear();
                self.all_moves_of(&state, &mut pricings, class, &mut work, &mut out);
                for s in &out {
                    let f = ((g + 1) as i64 + s.h_after, gambles + usize::from(s.gamble));
                    if reaches_balance && f >= cutoff {
                        continue;
                    }
                    let mut next = path.clone();
                    next.push((s.class as u32, s.target as u32));
                    let mut key = next.clone();
                    key.sort_unstable();
                    let cost = (g + 1, f.1);
                    if seen.get(&key).is_some_and(|&old| old <= cost) {
                        continue;
                    }
                    seen.insert(key, cost);
                    seq += 1;
                    // On equal f, deeper first: it reaches a goal sooner.
                    heap.push((Reverse(f), g + 1, Reverse(seq), next));
                }
            }
        }
        best.path
    }

    /// The plan's first `keep` moves, spelled out.
    fn moves(&self, path: &[Step], keep: usize) -> Vec<Move> {
        let mut state = self.initial();
        let mut moves = Vec::with_capacity(keep);
        let nodes = self.cluster.nodes();
        for &(class, target) in path.iter().take(keep) {
            let (class, target) = (class as usize, target as usize);
            let k = &self.classes[class];
            let pod = &self.cluster.pods()[k.pods[state.moved[class] as usize]];
            let allowed_domains = self.allowed_domains(&state, class);
            let gamble = self.is_gamble(&state, &mut self.pricings(&state), class, target);
            let mut changed = None;
            for (c, (layout, constraint)) in self
                .layouts
                .iter()
                .zip(&self.workload.constraints)
                .enumerate()
            {
                let name = |node: usize| {
                    layout.key.node_domain[node]
                        .map(|d| layout.key.domains[d as usize].clone())
                        .unwrap_or_default()
                };
                if changed.is_none()
                    && k.counted[c]
                    && self.domain(c, k.source) != self.domain(c, target)
                {
                    changed = Some((
                        constraint.topology_key.clone(),
                        name(k.source),
                        name(target),
                    ));
                }
            }
            let (topology_key, from_domain, to_domain) = changed.unwrap_or_default();
            moves.push(Move {
                pod: pod.name.clone(),
                pod_uid: pod.uid.clone(),
                pod_resource_version: pod.resource_version.clone(),
                from_node: nodes[k.source].name.clone(),
                to_node: nodes[target].name.clone(),
                topology_key,
                from_domain,
                to_domain,
                allowed_domains,
                gamble,
            });
            self.apply(&mut state, class, target);
        }
        moves
    }

    /// Why the plan stops short: the first rule whose relaxation would let a useful move through.
    fn diagnose(&self, state: &State) -> Obstacle {
        let relaxed = |volumes, target_node| {
            let mut work = 0;
            self.best_move(
                state,
                Relax {
                    volumes,
                    target_node,
                },
                &mut work,
            )
            .is_some()
        };
        if relaxed(true, false) {
            Obstacle::VolumePinned
        } else if relaxed(false, true) {
            Obstacle::NoCapacity
        } else if relaxed(true, true) {
            Obstacle::VolumePinned
        } else if self
            .layouts
            .iter()
            .zip(&self.workload.constraints)
            .zip(&state.hists)
            .any(|((l, c), hist)| {
                l.floor_zero && Pricing::new(hist, l.floor_zero, c.max_skew).skew > c.max_skew
            })
        {
            Obstacle::TooFewDomains
        } else {
            Obstacle::NothingMovable
        }
    }
}

/// Prices moves for one constraint in one state: a move's effect depends only on the counts of
/// the two domains it touches, so each pair is priced once.
struct Pricing {
    hist: Histogram,
    max_skew: i32,
    floor_zero: bool,
    distance: i64,
    skew: i32,
    /// The smallest count over eligible domains.
    min_count: Option<i32>,
    memo: FastMap<(Option<i32>, Option<i32>), (i64, i32)>,
}

impl Pricing {
    fn new(hist: &Histogram, floor_zero: bool, max_skew: i32) -> Self {
        Self {
            hist: hist.clone(),
            max_skew,
            floor_zero,
            distance: hist.min_moves(max_skew, floor_zero),
            skew: hist.skew(floor_zero),
            min_count: hist.lowest(),
            memo: HashMap::default(),
        }
    }

    /// Distance and skew after a pod leaves a domain holding `from` pods (`None`: it was not
    /// counted) for one holding `to` (`None`: it will not be counted).
    fn after(&mut self, from: Option<i32>, to: Option<i32>) -> (i64, i32) {
        let (hist, max_skew, floor_zero) = (&self.hist, self.max_skew, self.floor_zero);
        *self.memo.entry((from, to)).or_insert_with(|| {
            let after = hist.after(from, to);
            (
                after.min_moves(max_skew, floor_zero),
                after.skew(floor_zero),
            )
        })
    }
}
