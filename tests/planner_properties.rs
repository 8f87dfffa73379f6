//! Properties of the planner over random clusters, checked by re-measuring the cluster after the
//! planned moves are carried out.

mod common;

use common::*;
use proptest::prelude::*;

/// `zones` zones of `nodes_per_zone` nodes each, and `pods[i]` pods of `foo` on node i.
fn cluster_of(
    zones: usize,
    nodes_per_zone: usize,
    pods_per_node: &[usize],
) -> (Vec<Node>, Vec<Pod>) {
    let mut nodes = Vec::new();
    for z in 0..zones {
        for n in 0..nodes_per_zone {
            nodes.push(node(&format!("z{z}-n{n}"), &format!("z{z}")));
        }
    }
    let placement: Vec<(&str, usize)> = nodes
        .iter()
        .zip(pods_per_node)
        .map(|(n, c)| (n.name.as_str(), *c))
        .collect();
    let pods = pods_on("default", "foo", &placement);
    (nodes, pods)
}

/// The cluster after each planned eviction's replacement lands on its intended node.
fn carry_out(nodes: &[Node], pods: &[Pod], moves: &[Move]) -> Cluster {
    let mut pods = pods.to_vec();
    for m in moves {
        let p = pods
            .iter_mut()
            .find(|p| p.name == m.pod)
            .expect("planned pod exists");
        assert_eq!(p.node_name.as_deref(), Some(m.from_node.as_str()));
        p.node_name = Some(m.to_node.clone());
    }
    Cluster::new(nodes.to_vec(), pods)
}

/// [`cluster_of`] with node `tight_node` (if there is one) left room for about one pod.
fn cluster_with_tight_node(
    zones: usize,
    nodes_per_zone: usize,
    pods_per_node: &[usize],
    tight_node: usize,
) -> (Vec<Node>, Vec<Pod>) {
    let (mut nodes, pods) = cluster_of(zones, nodes_per_zone, pods_per_node);
    if let Some(n) = nodes.get_mut(tight_node) {
        n.allocatable.cpu_millis = 250;
    }
    (nodes, pods)
}

/// `foo` spread over zones (maxSkew 1) and hosts (maxSkew `host_skew`), both ScheduleAnyway.
fn zone_and_host(host_skew: i32) -> Workload {
    workload(
        "default",
        "foo",
        vec![
            constraint(ZONE_KEY, 1, "foo"),
            constraint(HOSTNAME_KEY, host_skew, "foo"),
        ],
    )
}

fn skews(cluster: &Cluster, w: &Workload) -> Vec<i32> {
    measure(cluster, w)
        .constraints
        .iter()
        .map(|c| c.skew)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// One constraint: the plan is exactly the lower bound and ends within maxSkew.
    #[test]
    fn single_constraint_plan_meets_the_lower_bound(
        counts in prop::collection::vec(0usize..12, 2..6),
        max_skew in 1i32..4,
    ) {
        let (nodes, pods) = one_node_per_domain(&counts, "foo");
        let w = workload("default", "foo", vec![constraint(ZONE_KEY, max_skew, "foo")]);
        let cluster = Cluster::new(nodes.clone(), pods.clone());
        let as_i32: Vec<i32> = counts.iter().map(|c| *c as i32).collect();
        let bound = min_moves(&as_i32, max_skew, false) as usize;
        match plan_all(&cluster, &w) {
            Err(Obstacle::AlreadyBalanced) => prop_assert_eq!(bound, 0),
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
            Ok(plan) => {
                prop_assert_eq!(plan.moves_needed, bound);
                prop_assert_eq!(plan.shortfall, None);
                let after = carry_out(&nodes, &pods, &plan.moves);
                prop_assert!(measure(&after, &w).within_policy());
            }
        }
    }

    /// Zone and hostname together, any room: no step of the plan takes a constraint from within
    /// maxSkew to above it or raises one already above, and no pod moves twice.
    #[test]
    fn joint_plan_never_makes_a_constraint_worse(
        zones in 2usize..4,
        nodes_per_zone in 1usize..4,
        pods_per_node in prop::collection::vec(0usize..5, 12),
        host_skew in 1i32..3,
        tight_node in 0usize..12,
    ) {
        let (nodes, pods) = cluster_with_tight_node(zones, nodes_per_zone, &pods_per_node, tight_node);
        let w = zone_and_host(host_skew);
        let limits = [1, host_skew];
        if let Ok(plan) = plan_all(&Cluster::new(nodes.clone(), pods.clone()), &w) {
            let mut before = skews(&Cluster::new(nodes.clone(), pods.clone()), &w);
            for step in 1..=plan.moves.len() {
                let after = skews(&carry_out(&nodes, &pods, &plan.moves[..step]), &w);
                for ((b, a), limit) in before.iter().zip(&after).zip(limits) {
                    prop_assert!(
                        a <= &(*b).max(limit),
                        "skews {:?} -> {:?} at move {}", before, after, step
                    );
                }
                before = after;
            }
            let distinct: std::collections::BTreeSet<_> = plan.moves.iter().map(|m| &m.pod).collect();
            prop_assert_eq!(distinct.len(), plan.moves.len());
        }
    }

    /// Zone and hostname together with as many nodes in every zone and room everywhere (so a
    /// balanced placement exists): the plan reaches it.
    #[test]
    fn joint_plan_balances_when_room_allows(
        zones in 2usize..4,
        nodes_per_zone in 1usize..4,
        pods_per_node in prop::collection::vec(0usize..5, 12),
    ) {
        let (nodes, pods) = cluster_of(zones, nodes_per_zone, &pods_per_node);
        let w = zone_and_host(1);
        match plan_all(&Cluster::new(nodes.clone(), pods.clone()), &w) {
            Err(Obstacle::AlreadyBalanced) => {}
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
            Ok(plan) => {
                prop_assert_eq!(plan.shortfall, None);
                let after = carry_out(&nodes, &pods, &plan.moves);
                prop_assert!(measure(&after, &w).within_policy(), "after: {:?}", skews(&after, &w));
            }
        }
    }

    /// ScheduleAnyway zone and hostname over uneven zones: the zones a move says the scheduler
    /// may pick are exactly those of the scheduler model's candidate nodes for its pod (the
    /// planner stops scanning once no other zone can turn up; this checks it stops no sooner).
    #[test]
    fn soft_moves_name_every_zone_the_scheduler_may_pick(
        zones in 2usize..4,
        nodes_per_zone in 1usize..4,
        pods_per_node in prop::collection::vec(0usize..5, 12),
        tight_node in 0usize..12,
    ) {
        let (nodes, pods) = cluster_with_tight_node(zones, nodes_per_zone, &pods_per_node, tight_node);
        let w = zone_and_host(1);
        let cluster = Cluster::new(nodes.clone(), pods.clone());
        if let Ok(plan) = plan_all(&cluster, &w) {
            let first = &plan.moves[0];
            let pod = cluster.pods().iter().position(|p| p.name == first.pod).unwrap();
            let zones: std::collections::BTreeSet<&str> = candidate_nodes(&cluster, &w, pod, true)
                .into_iter()
                .map(|n| cluster.nodes()[n].labels[ZONE_KEY].as_str())
                .collect();
            let named: Vec<&str> = first.allowed_domains[ZONE_KEY].iter().map(String::as_str).collect();
            prop_assert_eq!(named, zones.into_iter().collect::<Vec<_>>());
        }
    }

    /// A move is certain exactly when outcome judging would call it a success wherever in the
    /// score's tie the scheduler puts the replacement; else it is a gamble. Every move of the
    /// plan, each in the state the plan's earlier moves leave.
    #[test]
    fn a_move_is_a_gamble_exactly_when_the_tie_holds_a_failure(
        zones in 2usize..4,
        nodes_per_zone in 1usize..6,
        pods_per_node in prop::collection::vec(0usize..5, 15),
        zone_skew in 1i32..3,
        host_skew in 1i32..4,
        hard_zone in prop::bool::weighted(0.25),
    ) {
        let (nodes, pods) = cluster_of(zones, nodes_per_zone, &pods_per_node);
        let mut zone = constraint(ZONE_KEY, zone_skew, "foo");
        if hard_zone {
            zone.when_unsatisfiable = WhenUnsatisfiable::DoNotSchedule;
        }
        let w = workload("default", "foo", vec![zone, constraint(HOSTNAME_KEY, host_skew, "foo")]);
        let Ok(plan) = plan_all(&Cluster::new(nodes.clone(), pods.clone()), &w) else {
            return Ok(());
        };
        for (i, m) in plan.moves.iter().enumerate() {
            let now = carry_out(&nodes, &pods, &plan.moves[..i]);
            let baseline = Baseline::of(&measure(&now, &w), m);
            let p = now.pods().iter().position(|p| p.name == m.pod).unwrap();
            let tie = candidate_nodes(&now, &w, p, true);
            let failing: Vec<&str> = tie
                .iter()
                .map(|&x| &now.nodes()[x])
                .filter(|x| {
                    let mut placed: Vec<Pod> = now.pods().iter().map(|p| (**p).clone()).collect();
                    placed[p].node_name = Some(x.name.clone());
                    let after = measure(&Cluster::new(nodes.clone(), placed), &w);
                    let landed = Replacement {
                        ready: true,
                        domain: x.labels.get(&m.topology_key).map(String::as_str),
                    };
                    judge_move(&baseline, &after, &landed) != MoveOutcome::Succeeded
                })
                .map(|x| x.name.as_str())
                .collect();
            prop_assert_eq!(m.gamble, !failing.is_empty(), "move {} {:?}: {:?} would fail", i, m, failing);
        }
    }
}
