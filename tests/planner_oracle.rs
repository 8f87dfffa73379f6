//! An exhaustive oracle for the planner on every kind of small instance (up to 3 zones, 6
//! nodes, 8 pods, one or two constraints over zone, hostname or rack, maxSkew 1-3, hard and
//! soft, minDomains, full, tainted, cordoned and NotReady nodes, volume claims, nodes without a
//! zone label).
//!
//! The oracle is written from the semantics document alone and shares no code with the planner
//! (it does not even use the core's measuring): a breadth-first search over sequences of single
//! evictions, each replacement placed on a node the scheduler would accept in the state right
//! after the eviction (for ScheduleAnyway constraints, any node the spread score prefers), each
//! step obeying "never worse". It finds the closest state to balance reachable and the fewest
//! evictions reaching it; the planner must match both, and every step it plans must pass the
//! core's scheduler model on the cluster as it would really be (the evicted pod terminating
//! and still holding its requests, its replacement bound to the planned node).

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};

use common::*;
use proptest::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Health {
    Fine,
    Tainted,
    Cordoned,
    NotReady,
}

#[derive(Clone, Debug)]
struct NodeSpec {
    zone: Option<u8>,
    rack: Option<u8>,
    /// Pods the node can hold.
    capacity: i64,
    health: Health,
}

#[derive(Clone, Debug)]
struct PodSpec {
    node: usize,
    claim: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Zone,
    Host,
    Rack,
}

#[derive(Clone, Debug)]
struct ConSpec {
    key: Key,
    max_skew: i32,
    hard: bool,
    min_domains: Option<i32>,
    selector: bool,
}

#[derive(Clone, Debug)]
struct Inst {
    nodes: Vec<NodeSpec>,
    pods: Vec<PodSpec>,
    cons: Vec<ConSpec>,
}

// ---- The oracle: its own model of the scheduler and of skew ----

impl Inst {
    fn label(&self, node: usize, key: Key) -> Option<u32> {
        let n = &self.nodes[node];
        match key {
            Key::Zone => n.zone.map(u32::from),
            Key::Host => Some(node as u32),
            Key::Rack => n.rack.map(u32::from),
        }
    }

    /// Nodes counted for constraint `c`: they carry every key of the constraints of its class.
    fn counted_node(&self, c: usize, node: usize) -> bool {
        let hard = self.cons[c].hard;
        self.cons
            .iter()
            .filter(|o| o.hard == hard)
            .all(|o| self.label(node, o.key).is_some())
    }

    /// (domain, count) for constraint `c` with pods at `at` (`None`: not running).
    fn domains(&self, c: usize, at: &[Option<usize>]) -> Vec<(u32, i32)> {
        let mut out: Vec<(u32, i32)> = Vec::new();
        for n in 0..self.nodes.len() {
            if !self.counted_node(c, n) {
                continue;
            }
            let d = self.label(n, self.cons[c].key).unwrap();
            if !out.iter().any(|(x, _)| *x == d) {
                out.push((d, 0));
            }
        }
        if self.cons[c].selector {
            for node in at.iter().flatten() {
                if self.counted_node(c, *node) {
                    let d = self.label(*node, self.cons[c].key).unwrap();
                    out.iter_mut().find(|(x, _)| *x == d).unwrap().1 += 1;
                }
            }
        }
        out
    }

    fn floor_zero(&self, c: usize, domains: usize) -> bool {
        let con = &self.cons[c];
        con.hard && con.min_domains.is_some_and(|m| (domains as i32) < m)
    }

    fn global_min(&self, c: usize, domains: &[(u32, i32)]) -> i32 {
        if self.floor_zero(c, domains.len()) {
            0
        } else {
            domains.iter().map(|(_, n)| *n).min().unwrap_or(0)
        }
    }

    fn skew(&self, c: usize, at: &[Option<usize>]) -> i32 {
        let d = self.domains(c, at);
        match d.iter().map(|(_, n)| *n).max() {
            None => 0,
            Some(max) => max - self.global_min(c, &d),
        }
    }

    /// Fewest pod moves to bring one constraint within maxSkew, by trying every final minimum.
    fn distance_of(&self, c: usize, at: &[Option<usize>]) -> i64 {
        let counts: Vec<i64> = self.domains(c, at).iter().map(|(_, n)| *n as i64).collect();
        let s = self.cons[c].max_skew as i64;
        if counts.is_empty() {
            return 0;
        }
        if self.floor_zero(c, counts.len()) {
            return counts.iter().map(|v| (v - s).max(0)).sum();
        }
        let (n, k) = (counts.iter().sum::<i64>(), counts.len() as i64);
        (0..=n)
            .filter(|l| k * l <= n && n <= k * (l + s))
            .map(|l| {
                let above: i64 = counts.iter().map(|v| (v - l - s).max(0)).sum();
                let below: i64 = counts.iter().map(|v| (l - v).max(0)).sum();
                above.max(below)
            })
            .min()
            .unwrap_or(0)
    }

    fn distance(&self, at: &[Option<usize>]) -> i64 {
        (0..self.cons.len()).map(|c| self.distance_of(c, at)).sum()
    }

    /// Pods holding room on `node`: those running there and the evicted ones still
    /// terminating there.
    fn used(&self, node: usize, at: &[Option<usize>]) -> i64 {
        let running = at.iter().filter(|n| **n == Some(node)).count();
        let terminating = self
            .pods
            .iter()
            .zip(at)
            .filter(|(p, now)| p.node == node && **now != Some(node))
            .count();
        (running + terminating) as i64
    }

    /// Nodes the scheduler may put the replacement of pod `p` on, with `p` evicted (its own
    /// node included).
    fn choices(&self, p: usize, at: &[Option<usize>]) -> Vec<usize> {
        let mut without = at.to_vec();
        without[p] = None;
        let src = self.pods[p].node;
        let feasible: Vec<usize> = (0..self.nodes.len())
            .filter(|&t| {
                let n = &self.nodes[t];
                if n.health != Health::Fine || self.used(t, &without) >= n.capacity {
                    return false;
                }
                if self.pods[p].claim
                    && (self.nodes[src].zone.is_none() || n.zone != self.nodes[src].zone)
                {
                    return false;
                }
                (0..self.cons.len())
                    .filter(|c| self.cons[*c].hard)
                    .all(|c| {
                        let Some(d) = self.label(t, self.cons[c].key) else {
                            return false;
                        };
                        if !self.counted_node(c, t) {
                            return false;
                        }
                        let domains = self.domains(c, &without);
                        let count = domains.iter().find(|(x, _)| *x == d).map_or(0, |x| x.1);
                        let own = i32::from(self.cons[c].selector);
                        count + own - self.global_min(c, &domains) <= self.cons[c].max_skew
                    })
            })
            .collect();
        let soft: Vec<usize> = (0..self.cons.len())
            .filter(|c| !self.cons[*c].hard)
            .collect();
        if soft.is_empty() {
            return feasible;
        }
        let scored: Vec<usize> = feasible
            .iter()
            .copied()
            .filter(|&t| {
                soft.iter()
                    .all(|&c| self.label(t, self.cons[c].key).is_some())
            })
            .collect();
        if scored.is_empty() {
            return feasible;
        }
        // scoring.go: per node, the sum of count * ln(size + 2) + (maxSkew - 1), rounded; then
        // NormalizeScore maps the lowest to 100. The scheduler may pick any node scoring 100.
        let score = |t: usize| -> i64 {
            let sum: f64 = soft
                .iter()
                .map(|&c| {
                    let key = self.cons[c].key;
                    let size = if key == Key::Host {
                        scored.len()
                    } else {
                        scored
                            .iter()
                            .map(|&x| self.label(x, key))
                            .collect::<BTreeSet<_>>()
                            .len()
                    };
                    let d = self.label(t, key).unwrap();
                    let count = self
                        .domains(c, &without)
                        .iter()
                        .find(|(x, _)| *x == d)
                        .map_or(0, |x| x.1);
                    f64::from(count) * ((size + 2) as f64).ln()
                        + f64::from(self.cons[c].max_skew - 1)
                })
                .sum();
            sum.round() as i64
        };
        let rounded: Vec<i64> = scored.iter().map(|&t| score(t)).collect();
        let min = rounded.iter().copied().min().unwrap_or(0);
        let max = rounded.iter().copied().max().unwrap_or(0).max(0);
        let normalized = |s: i64| {
            if max == 0 {
                100
            } else {
                100 * (max + min - s) / max
            }
        };
        scored
            .iter()
            .zip(&rounded)
            .filter(|(_, s)| normalized(**s) == 100)
            .map(|(t, _)| *t)
            .collect()
    }

    /// The domain of `node` for constraint `c`, if the node counts for it.
    fn domain_of(&self, c: usize, node: usize) -> Option<u32> {
        if self.counted_node(c, node) {
            self.label(node, self.cons[c].key)
        } else {
            None
        }
    }

    /// For each node of `choices` (where the scheduler may put the replacement of pod `p`):
    /// the pods' places after the move there, whether it is never worse, and the distance after.
    fn outcomes(
        &self,
        p: usize,
        at: &[Option<usize>],
        choices: &[usize],
    ) -> Vec<(Vec<Option<usize>>, bool, i64)> {
        choices
            .iter()
            .map(|&x| {
                let mut after = at.to_vec();
                after[p] = Some(x);
                let never_worse = self.never_worse(at, &after);
                let d = self.distance(&after);
                (after, never_worse, d)
            })
            .collect()
    }

    /// Per node of `choices`: whether the replacement there would fail by outcome whatever the
    /// move's topology key: back on the pod's node, a constraint made worse, or no closer to
    /// balance.
    fn fails(
        &self,
        p: usize,
        at: &[Option<usize>],
        choices: &[usize],
        outcomes: &[(Vec<Option<usize>>, bool, i64)],
    ) -> Vec<bool> {
        let before = self.distance(at);
        choices
            .iter()
            .zip(outcomes)
            .map(|(&x, (_, never_worse, d))| x == self.pods[p].node || !never_worse || *d >= before)
            .collect()
    }

    /// Whether moving pod `p` to `t` is a gamble: with ScheduleAnyway constraints, some node of
    /// `choices` would fail (`fails`), or is back in the domain the pod left of the move's
    /// topology key (the first constraint counting the pod whose domain the move changes).
    fn gamble(&self, p: usize, t: usize, choices: &[usize], fails: &[bool]) -> bool {
        if self.cons.iter().all(|c| c.hard) {
            return false;
        }
        let src = self.pods[p].node;
        let key = (0..self.cons.len())
            .find(|&c| self.cons[c].selector && self.domain_of(c, src) != self.domain_of(c, t));
        // Outcome judging names the domain the pod left by the key's value, counted or not.
        let back = |x: usize| {
            key.is_some_and(|c| {
                let k = self.cons[c].key;
                self.label(src, k).is_some() && self.label(x, k) == self.label(src, k)
            })
        };
        fails.iter().any(|f| *f) || choices.iter().any(|&x| back(x))
    }

    /// No constraint goes from within maxSkew to above it, none above gets worse.
    fn never_worse(&self, before: &[Option<usize>], after: &[Option<usize>]) -> bool {
        (0..self.cons.len()).all(|c| {
            let (b, a) = (self.skew(c, before), self.skew(c, after));
            a <= b.max(self.cons[c].max_skew)
        })
    }

    /// (closest distance reachable, fewest evictions reaching it, fewest gambles among those).
    fn oracle(&self) -> (i64, usize, usize) {
        let start: Vec<Option<usize>> = self.pods.iter().map(|p| Some(p.node)).collect();
        let mut best = (self.distance(&start), 0, 0);
        if best.0 == 0 {
            return best;
        }
        let hard_only = self.cons.iter().all(|c| c.hard);
        let mut seen: HashSet<Vec<Option<usize>>> = HashSet::from([start.clone()]);
        // The states of one level: the fewest gambles reaching each, and its distance.
        let mut level: HashMap<Vec<Option<usize>>, (usize, i64)> =
            HashMap::from([(start, (0, best.0))]);
        for g in 1.. {
            let mut next: HashMap<Vec<Option<usize>>, (usize, i64)> = HashMap::new();
            for (at, (gambles, _)) in &level {
                for p in 0..self.pods.len() {
                    if at[p] != Some(self.pods[p].node) {
                        continue; // each pod moves once: a plan names the pods it evicts
                    }
                    let choices = self.choices(p, at);
                    let outcomes = self.outcomes(p, at, &choices);
                    let fails = self.fails(p, at, &choices, &outcomes);
                    for (&t, (after, never_worse, d)) in choices.iter().zip(outcomes) {
                        if t == self.pods[p].node || !never_worse {
                            continue;
                        }
                        if seen.contains(&after) && !next.contains_key(&after) {
                            continue; // reached in fewer moves
                        }
                        if hard_only && d == 0 {
                            return (0, g, 0);
                        }
                        seen.insert(after.clone());
                        let cost = gambles + usize::from(self.gamble(p, t, &choices, &fails));
                        let entry = next.entry(after).or_insert((cost, d));
                        entry.0 = entry.0.min(cost);
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            for (gambles, d) in next.values() {
                if (*d, g, *gambles) < best {
                    best = (*d, g, *gambles);
                }
            }
            if best.0 == 0 {
                return best;
            }
            level = next;
        }
        best
    }
}

// ---- The same instance for the core ----

fn key_name(key: Key) -> &'static str {
    match key {
        Key::Zone => ZONE_KEY,
        Key::Host => HOSTNAME_KEY,
        Key::Rack => "rack",
    }
}

fn core_nodes(inst: &Inst) -> Vec<Node> {
    inst.nodes
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let name = format!("n{i}");
            let mut n = node(&name, "unused");
            n.labels.remove(ZONE_KEY);
            if let Some(z) = spec.zone {
                n.labels.insert(ZONE_KEY.into(), format!("z{z}"));
            }
            if let Some(r) = spec.rack {
                n.labels.insert("rack".into(), format!("r{r}"));
            }
            n.allocatable.pods = spec.capacity;
            match spec.health {
                Health::Fine => {}
                Health::Tainted => n.taints.push(Taint {
                    key: "dedicated".into(),
                    value: "x".into(),
                    effect: TaintEffect::NoSchedule,
                }),
                Health::Cordoned => n.unschedulable = true,
                Health::NotReady => n.ready = false,
            }
            n
        })
        .collect()
}

fn core_pods(inst: &Inst) -> Vec<Pod> {
    inst.pods
        .iter()
        .enumerate()
        .map(|(j, spec)| {
            let mut p = pod(
                &format!("p{j}"),
                "default",
                "foo",
                &format!("n{}", spec.node),
            );
            p.has_volume_claims = spec.claim;
            p
        })
        .collect()
}

fn core_workload(inst: &Inst) -> Workload {
    let constraints = inst
        .cons
        .iter()
        .map(|c| {
            let mut sc = constraint(key_name(c.key), c.max_skew, "foo");
            if c.hard {
                sc.when_unsatisfiable = WhenUnsatisfiable::DoNotSchedule;
            }
            sc.min_domains = c.min_domains;
            if !c.selector {
                sc.selector = None;
            }
            sc
        })
        .collect();
    workload("default", "foo", constraints)
}

/// The cluster after `moves`: each evicted pod terminating where it was (still holding its
/// requests), its replacement running on the planned node.
fn after_moves(nodes: &[Node], pods: &[Pod], moves: &[Move]) -> Cluster {
    let mut pods = pods.to_vec();
    for (i, m) in moves.iter().enumerate() {
        let old = pods
            .iter_mut()
            .find(|p| p.uid == m.pod_uid)
            .expect("planned pod exists");
        assert_eq!(old.node_name.as_deref(), Some(m.from_node.as_str()));
        old.terminating = true;
        let mut new = old.clone();
        new.terminating = false;
        new.name = format!("{}-r{i}", m.pod);
        new.uid = format!("{}-r{i}", m.pod_uid);
        new.node_name = Some(m.to_node.clone());
        pods.push(new);
    }
    Cluster::new(nodes.to_vec(), pods)
}

fn check(inst: &Inst) -> Result<(), TestCaseError> {
    let (want_distance, want_moves, want_gambles) = inst.oracle();
    let nodes = core_nodes(inst);
    let pods = core_pods(inst);
    let w = core_workload(inst);
    let cluster = Cluster::new(nodes.clone(), pods.clone());
    let initial = measure(&cluster, &w);
    let moves = match plan_all(&cluster, &w) {
        Ok(plan) => {
            prop_assert_eq!(plan.moves.len(), plan.moves_needed);
            plan.moves
        }
        Err(_) => Vec::new(),
    };
    let mut before = initial;
    // The same steps in the oracle's terms: where each pod runs.
    let mut at: Vec<Option<usize>> = inst.pods.iter().map(|p| Some(p.node)).collect();
    for (i, m) in moves.iter().enumerate() {
        let (j, t): (usize, usize) = (m.pod[1..].parse().unwrap(), m.to_node[1..].parse().unwrap());
        let choices = inst.choices(j, &at);
        let outcomes = inst.outcomes(j, &at, &choices);
        let fails = inst.fails(j, &at, &choices, &outcomes);
        prop_assert_eq!(
            m.gamble,
            inst.gamble(j, t, &choices, &fails),
            "step {} {:?}: the scheduler may pick {:?}",
            i,
            m,
            choices
        );
        at[j] = Some(t);
        let state = after_moves(&nodes, &pods, &moves[..i]);
        let p = state
            .pods()
            .iter()
            .position(|p| p.uid == m.pod_uid)
            .unwrap();
        let t = state.node_index(&m.to_node).unwrap();
        prop_assert_eq!(
            accepts(&state, &w, p, t, true),
            Ok(()),
            "step {} {:?} rejected",
            i,
            m
        );
        prop_assert!(
            candidate_nodes(&state, &w, p, true).contains(&t),
            "step {} {:?}: not a node the scheduler would pick",
            i,
            m
        );
        let after = measure(&after_moves(&nodes, &pods, &moves[..=i]), &w);
        for (b, a) in before.constraints.iter().zip(&after.constraints) {
            prop_assert!(
                a.skew <= b.skew.max(b.max_skew),
                "step {} raised {} from {} to {}",
                i,
                a.topology_key,
                b.skew,
                a.skew
            );
        }
        before = after;
    }
    let gambles = moves.iter().filter(|m| m.gamble).count();
    prop_assert_eq!(
        (distance(&before), moves.len(), gambles),
        (want_distance, want_moves, want_gambles),
        "planned {:?}",
        moves
    );
    Ok(())
}

fn node_spec(zones: u8) -> impl Strategy<Value = NodeSpec> {
    (
        0..zones,
        prop::bool::weighted(0.08),
        prop::option::weighted(0.4, 0u8..2),
        prop_oneof![6 => Just(110i64), 1 => 1i64..4],
        prop_oneof![
            12 => Just(Health::Fine),
            1 => Just(Health::Tainted),
            1 => Just(Health::Cordoned),
            1 => Just(Health::NotReady),
        ],
    )
        .prop_map(|(zone, no_zone, rack, capacity, health)| NodeSpec {
            zone: (!no_zone).then_some(zone),
            rack,
            capacity,
            health,
        })
}

fn con_spec() -> impl Strategy<Value = ConSpec> {
    (
        prop_oneof![5 => Just(Key::Zone), 5 => Just(Key::Host), 1 => Just(Key::Rack)],
        1i32..=3,
        prop::bool::ANY,
        prop::option::weighted(0.15, 1i32..5),
        prop::bool::weighted(0.95),
    )
        .prop_map(|(key, max_skew, hard, min_domains, selector)| ConSpec {
            key,
            max_skew,
            hard,
            min_domains,
            selector,
        })
}

fn instance() -> impl Strategy<Value = Inst> {
    (1u8..=3, 1usize..=6).prop_flat_map(|(zones, n)| {
        (
            prop::collection::vec(node_spec(zones), n),
            prop::collection::vec((0..n, prop::bool::weighted(0.2)), 0..=8),
            prop::collection::vec(con_spec(), 1..=2),
        )
            .prop_map(|(nodes, pods, cons)| Inst {
                nodes,
                pods: pods
                    .into_iter()
                    .map(|(node, claim)| PodSpec { node, claim })
                    .collect(),
                cons,
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2500))]

    #[test]
    fn the_planner_finds_the_fewest_evictions_the_oracle_finds(inst in instance()) {
        check(&inst)?;
    }
}

/// Skewed piles, which random instances rarely produce: every pod on one node.
#[test]
fn piles_match_the_oracle() {
    for zones in 1..=3u8 {
        for nodes in 1..=6usize {
            for pods in 0..=8usize {
                for key in [Key::Zone, Key::Host] {
                    for hard in [false, true] {
                        let inst = Inst {
                            nodes: (0..nodes)
                                .map(|i| NodeSpec {
                                    zone: Some(i as u8 % zones),
                                    rack: None,
                                    capacity: 110,
                                    health: Health::Fine,
                                })
                                .collect(),
                            pods: (0..pods)
                                .map(|_| PodSpec {
                                    node: 0,
                                    claim: false,
                                })
                                .collect(),
                            cons: vec![
                                ConSpec {
                                    key,
                                    max_skew: 1,
                                    hard,
                                    min_domains: None,
                                    selector: true,
                                },
                                ConSpec {
                                    key: if key == Key::Zone {
                                        Key::Host
                                    } else {
                                        Key::Zone
                                    },
                                    max_skew: 1,
                                    hard: !hard,
                                    min_domains: None,
                                    selector: true,
                                },
                            ],
                        };
                        if let Err(e) = check(&inst) {
                            panic!("{inst:?}: {e}");
                        }
                    }
                }
            }
        }
    }
}
