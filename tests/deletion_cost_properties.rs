//! Properties of the scale-in order (`topology::deletion_cost`) over random small layouts, checked
//! against a brute force over every set of pods the ReplicaSet controller could remove.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use proptest::prelude::*;
use skewguard::core::topology::deletion_cost::{DeletionCosts, current_costs};

const RACK: &str = "example.com/rack";

/// `zones` zones of `nodes_per_zone` nodes; a rack label that crosses zones (node index mod 2).
fn nodes(zones: usize, nodes_per_zone: usize) -> Vec<Node> {
    let mut out = Vec::new();
    for z in 0..zones {
        for n in 0..nodes_per_zone {
            let mut node = node(&format!("z{z}-n{n}"), &format!("z{z}"));
            node.labels.insert(RACK.into(), format!("r{}", n % 2));
            out.push(node);
        }
    }
    out
}

/// `pods_per_node[i]` pods on node i, with creation times from `created` (ties on purpose).
/// Pods with the given creation times and the costs they already carry (left from an earlier
/// layout, or set by someone else): the order must not depend on them for its balance.
fn pods(
    nodes: &[Node],
    pods_per_node: &[usize],
    created: &[i64],
    prior: &[Option<i32>],
) -> Vec<Pod> {
    let mut out = Vec::new();
    for (node, &count) in nodes.iter().zip(pods_per_node) {
        for i in 0..count {
            let mut p = pod(
                &format!("web-{}-{i}", node.name),
                "default",
                "web",
                &node.name,
            );
            p.created = created[out.len() % created.len()];
            p.deletion_cost = prior[out.len() % prior.len()];
            out.push(p);
        }
    }
    out
}

/// The skew of `key` over every node's value of it, without the `removed` pods (every node
/// counts: all carry every key, no taints, no affinity).
fn skew(nodes: &[Node], pods: &[Pod], removed: &BTreeSet<&str>, key: &str) -> i32 {
    let mut counts: BTreeMap<&str, i32> =
        nodes.iter().map(|n| (n.labels[key].as_str(), 0)).collect();
    for p in pods.iter().filter(|p| !removed.contains(p.name.as_str())) {
        let node = nodes
            .iter()
            .find(|n| Some(&n.name) == p.node_name.as_ref())
            .unwrap();
        *counts.get_mut(node.labels[key].as_str()).unwrap() += 1;
    }
    let max = counts.values().max().copied().unwrap_or(0);
    let min = counts.values().min().copied().unwrap_or(0);
    max - min
}

/// For each k, the skews (one per key) of every set of k pods removed.
fn all_removals(nodes: &[Node], pods: &[Pod], keys: &[&str]) -> Vec<Vec<Vec<i32>>> {
    let n = pods.len();
    let mut by_k = vec![Vec::new(); n + 1];
    for mask in 0u32..(1 << n) {
        let removed: BTreeSet<&str> = (0..n)
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| pods[i].name.as_str())
            .collect();
        let skews = keys
            .iter()
            .map(|k| skew(nodes, pods, &removed, k))
            .collect();
        by_k[removed.len()].push(skews);
    }
    by_k
}

/// The pods the ReplicaSet controller removes first, breaking ties among equal costs both ways
/// (it has tie-breaks of its own).
fn prefixes(costs: &DeletionCosts) -> [Vec<String>; 2] {
    let forward = costs.order.clone();
    let mut reversed = costs.order.clone();
    reversed.reverse();
    reversed.sort_by_key(|p| costs.costs[p]);
    [forward, reversed]
}

type Layout = (usize, usize, Vec<usize>, Vec<i64>, Vec<Option<i32>>);

fn layout() -> impl Strategy<Value = Layout> {
    (2usize..=3, 1usize..=3).prop_flat_map(|(zones, per_zone)| {
        (
            Just(zones),
            Just(per_zone),
            prop::collection::vec(0usize..=3, zones * per_zone)
                .prop_filter("brute force stays small", |v| v.iter().sum::<usize>() <= 10),
            prop::collection::vec(0i64..4, 1..6),
            prop::collection::vec(
                prop::sample::select(vec![
                    None,
                    Some(0),
                    Some(-1000),
                    Some(-2000),
                    Some(-1001),
                    Some(7),
                ]),
                1..6,
            ),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// One constraint (zone, or hostname): every prefix of the order has the smallest skew any
    /// set of as many pods could leave.
    #[test]
    fn every_prefix_is_as_balanced_as_possible((zones, per_zone, counts, created, prior) in layout(),
                                               hostname in any::<bool>()) {
        let nodes = nodes(zones, per_zone);
        let pods = pods(&nodes, &counts, &created, &prior);
        let key = if hostname { HOSTNAME_KEY } else { ZONE_KEY };
        let w = workload("default", "web", vec![constraint(key, 1, "web")]);
        let cluster = Cluster::new(nodes.clone(), pods.clone());
        let costs = deletion_costs(&cluster, &w);
        prop_assert_eq!(costs.order.len(), pods.len());
        let best = all_removals(&nodes, &pods, &[key]);
        for order in prefixes(&costs) {
            for k in 0..=pods.len() {
                let removed: BTreeSet<&str> = order[..k].iter().map(String::as_str).collect();
                let have = skew(&nodes, &pods, &removed, key);
                let least = best[k].iter().map(|s| s[0]).min().unwrap();
                prop_assert_eq!(have, least, "k={} order {:?}", k, order);
            }
        }
    }

    /// Zone then hostname: the zone is as balanced as it can be at every prefix, and whenever
    /// some set of k pods keeps both within maxSkew, so does the prefix of k.
    #[test]
    fn hostname_inside_zone_stays_within_max_skew((zones, per_zone, counts, created, prior) in layout()) {
        let nodes = nodes(zones, per_zone);
        let pods = pods(&nodes, &counts, &created, &prior);
        let w = workload("default", "web", vec![
            constraint(ZONE_KEY, 1, "web"),
            constraint(HOSTNAME_KEY, 1, "web"),
        ]);
        let costs = deletion_costs(&Cluster::new(nodes.clone(), pods.clone()), &w);
        let best = all_removals(&nodes, &pods, &[ZONE_KEY, HOSTNAME_KEY]);
        for order in prefixes(&costs) {
            for k in 0..=pods.len() {
                let removed: BTreeSet<&str> = order[..k].iter().map(String::as_str).collect();
                let zone = skew(&nodes, &pods, &removed, ZONE_KEY);
                let host = skew(&nodes, &pods, &removed, HOSTNAME_KEY);
                prop_assert_eq!(zone, best[k].iter().map(|s| s[0]).min().unwrap(), "k={}", k);
                let possible = best[k].iter().any(|s| s[0] <= 1 && s[1] <= 1);
                prop_assert!(!possible || (zone <= 1 && host <= 1),
                    "k={} zone {} host {} order {:?}", k, zone, host, order);
            }
        }
    }

    /// The pipeline's writes (from its own measurement, without naming every pod) are the
    /// patches from the current annotations to the desired costs, pod by pod.
    #[test]
    fn cost_writes_are_the_patches_to_the_desired_costs((zones, per_zone, counts, created, prior) in layout()) {
        let nodes = nodes(zones, per_zone);
        let pods = pods(&nodes, &counts, &created, &prior);
        let w = workload("default", "web", vec![
            constraint(ZONE_KEY, 1, "web"),
            constraint(HOSTNAME_KEY, 1, "web"),
        ]);
        let cluster = Cluster::new(nodes, pods);
        let desired = deletion_costs(&cluster, &w);
        let written = cost_writes(&cluster, &w, &measure(&cluster, &w), true);
        prop_assert_eq!(written, cost_patches(&current_costs(&cluster, &w), &desired));
    }

    /// An unrelated second key (a rack across zones): the first constraint is still as balanced
    /// as it can be at every prefix.
    #[test]
    fn the_first_constraint_leads_with_unrelated_keys((zones, per_zone, counts, created, prior) in layout()) {
        let nodes = nodes(zones, per_zone);
        let pods = pods(&nodes, &counts, &created, &prior);
        let w = workload("default", "web", vec![
            constraint(ZONE_KEY, 1, "web"),
            constraint(RACK, 1, "web"),
        ]);
        let costs = deletion_costs(&Cluster::new(nodes.clone(), pods.clone()), &w);
        let best = all_removals(&nodes, &pods, &[ZONE_KEY]);
        for order in prefixes(&costs) {
            for k in 0..=pods.len() {
                let removed: BTreeSet<&str> = order[..k].iter().map(String::as_str).collect();
                let zone = skew(&nodes, &pods, &removed, ZONE_KEY);
                prop_assert_eq!(zone, best[k].iter().map(|s| s[0]).min().unwrap(), "k={}", k);
            }
        }
    }

    /// Few writes: a scale-in that follows the order changes no other pod's cost, and a pod that
    /// comes or goes changes only costs of pods in its own zone (zone then hostname).
    #[test]
    fn churn_stays_in_the_pods_zone((zones, per_zone, counts, created, prior) in layout(),
                                    pick in any::<prop::sample::Index>(),
                                    add in any::<bool>()) {
        let nodes = nodes(zones, per_zone);
        let pods = pods(&nodes, &counts, &created, &prior);
        prop_assume!(!pods.is_empty());
        let w = workload("default", "web", vec![
            constraint(ZONE_KEY, 1, "web"),
            constraint(HOSTNAME_KEY, 1, "web"),
        ]);
        let annotate = |pods: &[Pod], costs: &DeletionCosts| -> Vec<Pod> {
            pods.iter().cloned().map(|mut p| {
                p.deletion_cost = costs.cost(&p.name).filter(|c| *c != 0);
                p
            }).collect()
        };
        let before = deletion_costs(&Cluster::new(nodes.clone(), pods.clone()), &w);
        let annotated = annotate(&pods, &before);

        // Scale-in by one, as the ReplicaSet controller would.
        let first = before.order[0].clone();
        let rest: Vec<Pod> = annotated.iter().filter(|p| p.name != first).cloned().collect();
        let cluster = Cluster::new(nodes.clone(), rest);
        let after = deletion_costs(&cluster, &w);
        prop_assert!(cost_patches(&current_costs(&cluster, &w), &after).is_empty());

        // One pod comes (newest, on a random node) or a random pod goes.
        let (changed_pods, zone) = if add {
            let node = &nodes[pick.index(nodes.len())];
            let mut p = pod("web-new", "default", "web", &node.name);
            p.created = 100;
            let mut next = annotated.clone();
            next.push(p);
            (next, node.labels[ZONE_KEY].clone())
        } else {
            let gone = &annotated[pick.index(annotated.len())];
            let zone = gone.node_name.as_ref().unwrap()[..2].to_string();
            (annotated.iter().filter(|p| p.name != gone.name).cloned().collect(), zone)
        };
        let cluster = Cluster::new(nodes.clone(), changed_pods);
        let patches = cost_patches(&current_costs(&cluster, &w), &deletion_costs(&cluster, &w));
        for (p, _) in &patches {
            prop_assert!(p.starts_with(&format!("web-{zone}-")) || p == "web-new",
                "{} changed, churn in {}: {:?}", p, zone, patches);
        }
    }
}
