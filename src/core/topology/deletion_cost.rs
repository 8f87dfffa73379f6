//! Scale-in that stays balanced: the `controller.kubernetes.io/pod-deletion-cost` of every pod of
//! a workload, so that the ReplicaSet controller, which deletes the lowest cost first, keeps the
//! spread for any number of pods it removes.
//!
//! # The order
//! The ReplicaSet controller deletes unscheduled, pending and not-ready pods before any other, so
//! those are left alone here, and the order covers the Ready, bound, not terminating pods of the
//! workload. It is a greedy removal: the next pod is always taken from the domain with the most
//! matching pods, lexicographically by constraint order — the fullest domain of the first
//! constraint, and among its pods the one whose domain of the second constraint is fullest, and
//! so on. With one constraint, every prefix of that order leaves the fewest pods per domain that
//! any choice of as many pods could (the skew is as small as it can be). With several, the first
//! constraint is kept as balanced as it can be and the next ones are balanced within that
//! (exact for hostname inside zone when the nodes of every zone are alike; for unrelated keys it
//! is the best order for the first constraint, the others only break its ties). Pods the
//! constraint does not count (other ReplicaSets under `matchLabelKeys`, nodes that are no domain)
//! change no skew of it and go first. Matching pods of other workloads count as a fixed floor of
//! their domain. Where the greedy may take either of two pods (their domains are equally full for
//! every constraint), it takes one that already carries the cost it would get, so costs stay where
//! they are; otherwise the newest goes first, then by name.
//!
//! # The costs
//! A pod's cost says how full its domains were when the greedy took it:
//! `-(level₁ · 1000 + min(level₂, 999))`, where `levelᵢ` is the number of matching pods its domain
//! of constraint `i` keeps after it is gone. The last pod of every domain costs 0, which is what a
//! pod without the annotation counts as, so balanced small workloads need few annotations. Pods
//! of one domain of the first constraint all differ in level₁, so the ReplicaSet controller's own
//! tie-breaks only ever choose between domains of equal fullness. The costs depend on the
//! fullness of the domains, not on a pod's position in the whole order: a pod that comes or goes
//! only moves the levels of pods in its own domains, and a scale-in that follows the order
//! changes no other pod's cost at all.

use std::collections::{BTreeMap, BTreeSet};

use super::cluster::Cluster;
use super::measure::{Measurement, measure};
use super::model::Workload;

/// The annotation the ReplicaSet controller ranks scale-in by.
pub const DELETION_COST_ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";

/// How many second-constraint levels one first-constraint level spans in a cost.
const SECOND_LEVEL_SPAN: i64 = 1000;

/// The level of a pod the first constraint does not count: above any real domain, so it goes
/// first (a million pods in one domain is far beyond any cluster).
const UNCOUNTED_LEVEL: i64 = 1_000_000;

/// The deletion costs of one workload's pods.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeletionCosts {
    /// The ranked pods (by name), in the order the ReplicaSet controller will delete them:
    /// ascending cost, and the greedy's order among equal costs.
    pub order: Vec<String>,
    /// The cost each ranked pod should carry.
    pub costs: BTreeMap<String, i32>,
    /// Pods that are not ready, terminating, finished or unscheduled: the ReplicaSet controller
    /// deletes them before any ranked pod whatever their cost, so their annotation is not touched.
    pub leave_alone: BTreeSet<String>,
}

impl DeletionCosts {
    /// The cost of a ranked pod.
    pub fn cost(&self, pod: &str) -> Option<i32> {
        self.costs.get(pod).copied()
    }
}

/// A change to one pod's annotation: `Some(cost)` sets it, `None` removes it.
pub type CostPatch = (String, Option<i32>);

/// The server-side apply body of skewguard's cost on one pod: its metadata only, with the
/// annotation (`Some`) or without it (`None`, which removes the annotation if skewguard owns it).
pub fn apply_body(pod: &str, cost: Option<i32>) -> serde_json::Value {
    let mut metadata = serde_json::json!({ "name": pod });
    if let Some(cost) = cost {
        metadata["annotations"] = serde_json::json!({ DELETION_COST_ANNOTATION: cost.to_string() });
    }
    serde_json::json!({ "apiVersion": "v1", "kind": "Pod", "metadata": metadata })
}

/// The annotation value as the ReplicaSet controller reads it: an int32, else nothing.
pub fn annotated_cost(annotations: Option<&BTreeMap<String, String>>) -> Option<i32> {
    annotations?
        .get(DELETION_COST_ANNOTATION)?
        .trim()
        .parse()
        .ok()
}

/// Pods the order ranks: bound, Ready, not terminating or finished. The ReplicaSet controller
/// deletes the others first whatever their cost, so their annotation is left alone.
fn ranked_for_scale_in(pod: &super::model::Pod) -> bool {
    pod.is_counted() && pod.ready
}

/// The deletion costs of `workload`'s pods in `cluster` (see the module documentation).
pub fn deletion_costs(cluster: &Cluster, workload: &Workload) -> DeletionCosts {
    let selected = cluster.own_pods(workload);
    let measurement = measure(cluster, workload);
    let pods = cluster.pods();
    let ranked = ranking(cluster, &measurement);
    DeletionCosts {
        order: ranked.iter().map(|(_, i)| pods[*i].name.clone()).collect(),
        costs: (ranked.iter())
            .map(|(c, i)| (pods[*i].name.clone(), *c))
            .collect(),
        leave_alone: (selected.iter().map(|&i| &pods[i]))
            .filter(|p| !ranked_for_scale_in(p))
            .map(|p| p.name.clone())
            .collect(),
    }
}

/// The ranked pods (cluster indexes) with their costs, in deletion order. The pods ranked are
/// the measured own pods that are Ready (`own_pods` are the selected pods the scheduler counts).
fn ranking(cluster: &Cluster, measurement: &Measurement) -> Vec<(i32, usize)> {
    let pods = cluster.pods();
    let own_counted = &measurement.own_pods;
    // Places in `own_counted` of the pods ranked (each is asked about once per constraint).
    let ranked_at: Vec<usize> = (own_counted.iter().enumerate())
        .filter(|&(_, &i)| ranked_for_scale_in(&pods[i]))
        .map(|(at, _)| at)
        .collect();
    let removable: Vec<usize> = ranked_at.iter().map(|&at| own_counted[at]).collect();
    if removable.is_empty() {
        return Vec::new();
    }

    // Per constraint: the domain of each removable pod (None: not counted), and the count per
    // domain once every own counted pod is gone (foreign pods stay), plus the removable ones.
    // Only the domains that hold pods, numbered by their place among them (a hostname key has as
    // many domains as nodes; the greedy asks these counts at every step of every group).
    let measured = &measurement.constraints;
    let mut counts: Vec<DomainTally> = Vec::with_capacity(measured.len());
    // Row by row: the domains of removable pod `slot` are `pod_domains[slot * width..][..width]`.
    let width = measured.len();
    let mut pod_domains: Vec<Option<u32>> = vec![None; removable.len() * width];
    for (column, measured) in measured.iter().enumerate() {
        let node_domain = &measured.domains.eligibility().node_domain;
        let occupied = measured.domains.occupied_indexes();
        // A counted own pod is in an occupied domain: the measurement counted it there.
        let own_domains: Vec<Option<u32>> = (own_counted.iter())
            .map(|&i| {
                if !measured.counts_pod(i) {
                    return None;
                }
                let d = cluster.node_of_pod(i).and_then(|n| node_domain[n])?;
                let at = occupied.binary_search_by_key(&d, |&(d, _)| d).ok()?;
                Some(at as u32)
            })
            .collect();
        let mut c: DomainTally = occupied.iter().map(|&(_, n)| i64::from(n)).collect();
        for d in own_domains.iter().flatten() {
            c[*d as usize] -= 1;
        }
        for (slot, &at) in ranked_at.iter().enumerate() {
            let d = own_domains[at];
            if let Some(d) = d {
                c[d as usize] += 1;
            }
            pod_domains[slot * width + column] = d;
        }
        counts.push(c);
    }

    // Pods alike for every constraint form one group; the greedy picks a group, then its pod
    // that goes first (newest, then by name). Groups hold slots of `removable`; `order[slot]` is
    // the pod's place in that order, found once rather than by comparing names at every step.
    let mut by_age: Vec<usize> = (0..removable.len()).collect();
    by_age.sort_by(|&a, &b| {
        let (a, b) = (&pods[removable[a]], &pods[removable[b]]);
        (a.created, &a.name).cmp(&(b.created, &b.name))
    });
    let mut order = vec![0usize; removable.len()];
    for (place, &slot) in by_age.iter().enumerate() {
        order[slot] = place;
    }
    let goes_first = |a: usize, b: usize| order[a].cmp(&order[b]);
    let mut groups: BTreeMap<&[Option<u32>], Vec<usize>> = BTreeMap::new();
    for slot in 0..removable.len() {
        let domains = &pod_domains[slot * width..(slot + 1) * width];
        groups.entry(domains).or_default().push(slot);
    }
    let mut groups: Vec<(&[Option<u32>], Vec<usize>)> = groups
        .into_iter()
        .map(|(domains, mut members)| {
            // Last element = next to go.
            members.sort_by_key(|&slot| order[slot]);
            (domains, members)
        })
        .collect();

    let mut ranked: Vec<(i64, usize)> = Vec::with_capacity(removable.len());
    // What a pod carries now (no annotation counts as 0, as the ReplicaSet controller reads it):
    // among pods the greedy may take alike, one that already carries the cost it would get is
    // taken, so a pod that comes or goes rewrites few others.
    let carried: Vec<i64> = (removable.iter())
        .map(|&i| i64::from(pods[i].deletion_cost.unwrap_or(0)))
        .collect();
    let carries = |slot: usize| carried[slot];
    while let Some(g) = next_group(&groups, &counts, goes_first, carries) {
        let (domains, members) = &mut groups[g];
        let cost = cost_when_taken(domains, &counts);
        let keep = members.iter().rposition(|&slot| carries(slot) == cost);
        let Some(slot) = (match keep {
            Some(at) => Some(members.remove(at)),
            None => members.pop(),
        }) else {
            break;
        };
        for (c, d) in domains.iter().enumerate() {
            if let Some(d) = d {
                counts[c][*d as usize] -= 1;
            }
        }
        if members.is_empty() {
            // Which group comes next never depends on where groups stand in the list.
            groups.swap_remove(g);
        }
        ranked.push((cost, removable[slot]));
    }
    // Stable: equal costs keep the greedy's order.
    ranked.sort_by_key(|(cost, _)| *cost);
    let to_i32 = |c: i64| i32::try_from(c).unwrap_or(i32::MIN);
    ranked.into_iter().map(|(c, i)| (to_i32(c), i)).collect()
}

/// Pods per occupied domain of one constraint, by the domain's place among the occupied ones.
type DomainTally = Vec<i64>;

fn tally(counts: &DomainTally, domain: u32) -> i64 {
    counts[domain as usize]
}

/// The cost of a pod in `domains` if the greedy takes it now: how full its domains of the first
/// two constraints stay once it is gone.
fn cost_when_taken(domains: &[Option<u32>], counts: &[DomainTally]) -> i64 {
    let mut levels = [0i64; 2];
    for (c, d) in domains.iter().enumerate().take(2) {
        levels[c] = match d {
            Some(d) => (tally(&counts[c], *d) - 1).max(0),
            None => UNCOUNTED_LEVEL,
        };
    }
    -(levels[0].min(UNCOUNTED_LEVEL) * SECOND_LEVEL_SPAN + levels[1].min(SECOND_LEVEL_SPAN - 1))
}

/// The group the greedy takes from next: the fullest domains, lexicographically by constraint
/// (a pod a constraint does not count ranks above every domain of it); among groups alike, one
/// with a pod that already carries the cost it would get (`carries`), then the group whose next
/// pod goes first. Choosing among alike groups never changes how balanced any prefix is.
fn next_group(
    groups: &[(&[Option<u32>], Vec<usize>)],
    counts: &[DomainTally],
    goes_first: impl Fn(usize, usize) -> std::cmp::Ordering,
    carries: impl Fn(usize) -> i64,
) -> Option<usize> {
    // How full a group's domains are, lexicographically by constraint (compared in place: the
    // greedy asks this of every group at every step).
    let fullness =
        |domains: &[Option<u32>], c: usize| domains[c].map_or(i64::MAX, |d| tally(&counts[c], d));
    let fuller = |a: &[Option<u32>], b: &[Option<u32>]| {
        (0..a.len().min(b.len()))
            .map(|c| fullness(a, c).cmp(&fullness(b, c)))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| a.len().cmp(&b.len()))
    };
    let mut best: Option<(usize, bool, usize)> = None;
    for (g, (domains, members)) in groups.iter().enumerate() {
        let Some(&next) = members.last() else {
            continue;
        };
        let cost = cost_when_taken(domains, counts);
        let keeps = members.iter().any(|&i| carries(i) == cost);
        let better = match &best {
            None => true,
            Some((bg, bkeeps, bp)) => match fuller(domains, groups[*bg].0) {
                std::cmp::Ordering::Greater => true,
                std::cmp::Ordering::Less => false,
                std::cmp::Ordering::Equal => {
                    (keeps, goes_first(next, *bp)) > (*bkeeps, std::cmp::Ordering::Equal)
                }
            },
        };
        if better {
            best = Some((g, keeps, next));
        }
    }
    best.map(|(g, _, _)| g)
}

/// The pods' annotations as they stand: pod name → cost, for pods that carry one.
pub fn current_costs(cluster: &Cluster, workload: &Workload) -> BTreeMap<String, i32> {
    let selected = cluster.own_pods(workload);
    costs_carried(cluster, &selected)
}

/// [`current_costs`] of the `selected` pods.
fn costs_carried(cluster: &Cluster, selected: &[usize]) -> BTreeMap<String, i32> {
    (selected.iter())
        .filter_map(|&i| {
            let pod = &cluster.pods()[i];
            pod.deletion_cost.map(|c| (pod.name.clone(), c))
        })
        .collect()
}

/// The writes that bring the annotations from `current` to `desired`: only ranked pods whose
/// cost differs (a missing annotation is 0 to the ReplicaSet controller, so a desired 0 on a pod
/// without one needs no write). Pods left alone are never patched; pods that are neither ranked
/// nor left alone (no longer the workload's) keep what they have.
pub fn cost_patches(current: &BTreeMap<String, i32>, desired: &DeletionCosts) -> Vec<CostPatch> {
    desired
        .costs
        .iter()
        .filter(|(pod, cost)| current.get(*pod).copied().unwrap_or(0) != **cost)
        .map(|(pod, cost)| (pod.clone(), Some(*cost)))
        .collect()
}

/// The writes that remove every annotation in `current` (the feature was turned off), except on
/// pods in `leave_alone`.
pub fn clear_patches(
    current: &BTreeMap<String, i32>,
    leave_alone: &BTreeSet<String>,
) -> Vec<CostPatch> {
    current
        .keys()
        .filter(|pod| !leave_alone.contains(*pod))
        .map(|pod| (pod.clone(), None))
        .collect()
}

/// The deletion-cost writes one workload needs now: the costs that keep its scale-in balanced
/// (`keep`), or, turned off, the removal of the annotations skewguard wrote (someone else's are
/// never touched). Terminating and not-ready pods are left alone either way. `measurement` is
/// the workload's in `cluster`.
pub fn cost_writes(
    cluster: &Cluster,
    workload: &Workload,
    measurement: &Measurement,
    keep: bool,
) -> Vec<CostPatch> {
    if keep {
        // What `cost_patches` makes of the desired costs, without naming every pod first.
        let all = cluster.pods();
        let mut patches: Vec<CostPatch> = ranking(cluster, measurement)
            .into_iter()
            .filter(|&(cost, i)| all[i].deletion_cost.unwrap_or(0) != cost)
            .map(|(cost, i)| (all[i].name.clone(), Some(cost)))
            .collect();
        patches.sort();
        return patches;
    }
    let pods = cluster.own_pods(workload);
    let ours: BTreeMap<String, i32> = pods
        .iter()
        .filter_map(|&i| {
            let pod = &cluster.pods()[i];
            let cost = pod.deletion_cost.filter(|_| pod.deletion_cost_ours)?;
            Some((pod.name.clone(), cost))
        })
        .collect();
    let leave_alone: BTreeSet<String> = pods
        .iter()
        .map(|&i| &cluster.pods()[i])
        .filter(|p| !ranked_for_scale_in(p))
        .map(|p| p.name.clone())
        .collect();
    clear_patches(&ours, &leave_alone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::topology::fixtures::node;
    use crate::core::topology::model::{HOSTNAME_KEY, Node, Pod, SpreadConstraint, ZONE_KEY};
    use kube::core::Selector;

    fn pod(name: &str, node: &str, created: i64) -> Pod {
        Pod {
            created,
            ..crate::core::topology::fixtures::pod(name, "ns", "web", node)
        }
    }

    fn workload(keys: &[&str]) -> Workload {
        let selector: Selector = [("app", "web")].into_iter().collect();
        Workload {
            namespace: "ns".into(),
            name: "web".into(),
            pod_selector: selector.clone(),
            owner: None,
            template: Default::default(),
            constraints: keys
                .iter()
                .map(|k| SpreadConstraint::new(k, 1, selector.clone()))
                .collect(),
        }
    }

    /// Zones a, b, c with nodes `<zone>1`, `<zone>2`.
    fn nodes() -> Vec<Node> {
        ["a", "b", "c"]
            .iter()
            .flat_map(|z| [node(&format!("{z}1"), z), node(&format!("{z}2"), z)])
            .collect()
    }

    fn zone_counts(cluster: &Cluster, removed: &[String]) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for p in cluster.pods() {
            if removed.contains(&p.name) {
                continue;
            }
            let n = p.node_name.as_deref().unwrap_or_default();
            *out.entry(n[..1].to_string()).or_default() += 1;
        }
        out
    }

    #[test]
    fn the_newest_pods_sharing_one_node_go_first_and_leave_one_per_zone() {
        // 2/2/2, the newest two on one node of zone a... and the spread is kept at every step.
        let pods = vec![
            pod("a-old", "a1", 1),
            pod("b-old", "b1", 2),
            pod("c-old", "c1", 3),
            pod("b-new", "b2", 10),
            pod("c-new", "c2", 11),
            pod("a-new", "a1", 12),
        ];
        let cluster = Cluster::new(nodes(), pods);
        let costs = deletion_costs(&cluster, &workload(&[ZONE_KEY, HOSTNAME_KEY]));
        let first3: Vec<String> = costs.order[..3].to_vec();
        assert_eq!(
            zone_counts(&cluster, &first3),
            BTreeMap::from([("a".into(), 1), ("b".into(), 1), ("c".into(), 1)])
        );
        // Zone a's pods share a1: the one that goes is the newest.
        assert!(first3.contains(&"a-new".to_string()), "{first3:?}");
        // The last pod of every zone costs 0: no annotation needed.
        assert_eq!(costs.cost("a-old"), Some(0));
        assert_eq!(costs.cost("a-new"), Some(-1000 - 1));
        assert_eq!(costs.cost("b-new"), Some(-1000));
    }

    #[test]
    fn the_apply_body_carries_only_the_annotation_or_nothing() {
        assert_eq!(
            apply_body("web-1", Some(-1000)),
            serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1",
                "annotations": {DELETION_COST_ANNOTATION: "-1000"}}})
        );
        // Giving the cost up applies metadata without it: the server removes the annotation only
        // where skewguard's field manager owns it.
        assert_eq!(
            apply_body("web-1", None),
            serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1"}})
        );
    }

    #[test]
    fn the_fullest_zone_loses_first() {
        let pods = vec![
            pod("a1", "a1", 1),
            pod("a2", "a1", 2),
            pod("a3", "a2", 3),
            pod("a4", "a2", 4),
            pod("b1", "b1", 5),
            pod("c1", "c1", 6),
        ];
        let cluster = Cluster::new(nodes(), pods);
        let costs = deletion_costs(&cluster, &workload(&[ZONE_KEY]));
        assert_eq!(&costs.order[..3], ["a4", "a3", "a2"]);
        assert_eq!(costs.cost("a4"), Some(-3000));
        assert_eq!(costs.cost("a1"), Some(0));
        assert_eq!(costs.cost("b1"), Some(0));
    }

    #[test]
    fn not_ready_and_terminating_pods_are_left_alone() {
        let mut pods = vec![pod("a1", "a1", 1), pod("b1", "b1", 2), pod("c1", "c1", 3)];
        pods.push(Pod {
            ready: false,
            ..pod("slow", "a2", 4)
        });
        pods.push(Pod {
            terminating: true,
            ..pod("going", "b2", 5)
        });
        pods.push(Pod {
            node_name: None,
            ready: false,
            ..pod("pending", "", 6)
        });
        let cluster = Cluster::new(nodes(), pods);
        let costs = deletion_costs(&cluster, &workload(&[ZONE_KEY]));
        assert_eq!(
            costs.leave_alone,
            BTreeSet::from(["slow".into(), "going".into(), "pending".into()])
        );
        assert_eq!(costs.costs.len(), 3);
        assert!(costs.costs.values().all(|c| *c == 0), "{costs:?}");
    }

    #[test]
    fn pods_a_constraint_does_not_count_go_first() {
        // A node without a zone label: its pod counts for no zone.
        let mut nodes = nodes();
        nodes.push(Node {
            name: "bare".into(),
            ready: true,
            ..Default::default()
        });
        let pods = vec![
            pod("a1", "a1", 1),
            pod("a2", "a2", 2),
            pod("b1", "b1", 3),
            pod("stray", "bare", 0),
        ];
        let cluster = Cluster::new(nodes, pods);
        let costs = deletion_costs(&cluster, &workload(&[ZONE_KEY]));
        assert_eq!(costs.order[0], "stray");
        assert_eq!(costs.order[1], "a2");
    }

    #[test]
    fn other_workloads_pods_are_a_floor_of_their_domain() {
        // A constraint selecting app=web also counts the pods of another workload (`tier`).
        let selector: Selector = [("app", "web")].into_iter().collect();
        let mut w = workload(&[]);
        w.pod_selector = [("app", "web"), ("tier", "front")].into_iter().collect();
        w.constraints = vec![SpreadConstraint::new(ZONE_KEY, 1, selector)];
        let own = |name: &str, node: &str| {
            let mut p = pod(name, node, 1);
            p.labels.insert("tier".into(), "front".into());
            p
        };
        let pods = vec![
            own("a1", "a1"),
            own("b1", "b1"),
            own("b2", "b2"),
            pod("other-a1", "a1", 0),
            pod("other-a2", "a2", 0),
        ];
        let cluster = Cluster::new(nodes(), pods);
        let costs = deletion_costs(&cluster, &w);
        // Zone a holds 3 matching pods, b 2: a's own pod goes first although b has more own pods.
        assert_eq!(costs.order[0], "a1");
        assert!(!costs.costs.contains_key("other-a1"));
    }

    #[test]
    fn patches_list_only_changed_costs() {
        let desired = DeletionCosts {
            order: vec!["x".into(), "y".into(), "z".into()],
            costs: BTreeMap::from([("x".into(), -1000), ("y".into(), 0), ("z".into(), 0)]),
            leave_alone: BTreeSet::from(["w".into()]),
        };
        let current = BTreeMap::from([
            ("x".to_string(), -1000),
            ("z".to_string(), 5),
            ("w".to_string(), 7),
        ]);
        assert_eq!(
            cost_patches(&current, &desired),
            vec![("z".to_string(), Some(0))]
        );
        assert_eq!(cost_patches(&BTreeMap::new(), &desired).len(), 1);
        assert_eq!(
            clear_patches(&current, &desired.leave_alone),
            vec![("x".to_string(), None), ("z".to_string(), None)]
        );
    }

    #[test]
    fn annotation_parsing_follows_the_replicaset_controller() {
        let ann = |v: &str| BTreeMap::from([(DELETION_COST_ANNOTATION.to_string(), v.to_string())]);
        assert_eq!(annotated_cost(Some(&ann("-1000"))), Some(-1000));
        assert_eq!(annotated_cost(Some(&ann("abc"))), None);
        assert_eq!(annotated_cost(Some(&ann("99999999999"))), None);
        assert_eq!(annotated_cost(None), None);
    }

    #[test]
    fn no_pods_no_costs() {
        let cluster = Cluster::new(nodes(), vec![]);
        assert_eq!(
            deletion_costs(&cluster, &workload(&[ZONE_KEY])),
            DeletionCosts::default()
        );
    }
}
