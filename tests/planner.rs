//! The joint planner's rules beyond the semantics vectors: which pod, toward which node, and why
//! not.

mod common;

use common::*;
use skewguard::topology::*;

fn zones_and_hosts(max_skew_host: i32) -> Vec<SpreadConstraint> {
    vec![
        constraint(ZONE_KEY, 1, "foo"),
        constraint(HOSTNAME_KEY, max_skew_host, "foo"),
    ]
}

#[test]
fn joint_plan_moves_from_the_crowded_host_to_an_empty_one() {
    // zone a: a1 holds 2, a2 holds 1; zone b: b1, b2 empty. Zone skew 3, host skew 2.
    let nodes = vec![
        node("a1", "a"),
        node("a2", "a"),
        node("b1", "b"),
        node("b2", "b"),
    ];
    let pods = pods_on("default", "foo", &[("a1", 2), ("a2", 1)]);
    let cluster = Cluster::new(nodes, pods);
    let w = workload("default", "foo", zones_and_hosts(1));
    let plan = plan_all(&cluster, &w).unwrap();
    // One move fixes the zone (2/1) and the hosts (1/1/1/0) together.
    assert_eq!(plan.moves_needed, 1);
    assert_eq!(plan.moves[0].from_node, "a1");
    assert!(plan.moves[0].to_node.starts_with('b'));
}

#[test]
fn joint_plan_never_stacks_a_host_to_fix_a_zone() {
    // zone a: 4 hosts with one pod each; zone b: one host with 0 pods, maxSkew 1 everywhere.
    // Moving two pods to b1 would fix the zone (2/2) but make b1 hold 2 -> host skew 2: not allowed.
    let nodes = vec![
        node("a1", "a"),
        node("a2", "a"),
        node("a3", "a"),
        node("a4", "a"),
        node("b1", "b"),
    ];
    let pods = pods_on(
        "default",
        "foo",
        &[("a1", 1), ("a2", 1), ("a3", 1), ("a4", 1)],
    );
    let cluster = Cluster::new(nodes, pods);
    let w = workload("default", "foo", zones_and_hosts(1));
    let before = measure(&cluster, &w);
    let plan = plan_all(&cluster, &w).unwrap();
    assert_eq!(plan.moves_needed, 1);
    assert!(plan.shortfall.is_some());
    // After the plan no constraint's skew is worse than before.
    let mut nodes_after = [("a1", 1), ("a2", 1), ("a3", 1), ("a4", 1), ("b1", 0)];
    for m in &plan.moves {
        nodes_after
            .iter_mut()
            .find(|(n, _)| *n == m.from_node)
            .unwrap()
            .1 -= 1;
        nodes_after
            .iter_mut()
            .find(|(n, _)| *n == m.to_node)
            .unwrap()
            .1 += 1;
    }
    let host_counts: Vec<i32> = nodes_after.iter().map(|(_, c)| *c).collect();
    assert!(skew_of(&host_counts, false) <= before.constraints[1].skew);
}

#[test]
fn prefers_unpinned_then_lower_priority_pods() {
    let nodes = vec![node("a1", "a"), node("b1", "b")];
    let mut pods = pods_on("default", "foo", &[("a1", 4)]);
    // pods[0]: pinned by node selector; pods[1]: high priority; pods[2], pods[3]: priority 5 and 1.
    pods[0].placement.node_selector = labels(&[(ZONE_KEY, "a")]);
    pods[0].priority = -10;
    pods[1].priority = 100;
    pods[2].priority = 5;
    pods[3].priority = 1;
    let expected = [pods[3].name.clone(), pods[2].name.clone()];
    let cluster = Cluster::new(nodes, pods);
    let w = workload("default", "foo", vec![constraint(ZONE_KEY, 1, "foo")]);
    let plan = plan_all(&cluster, &w).unwrap();
    let moved: Vec<String> = plan.moves.iter().map(|m| m.pod.clone()).collect();
    assert_eq!(moved, expected);
}

#[test]
fn never_toward_a_cordoned_or_not_ready_zone() {
    for broken in ["cordoned", "not-ready"] {
        let mut nodes = vec![node("a1", "a"), node("b1", "b")];
        match broken {
            "cordoned" => nodes[1].unschedulable = true,
            _ => nodes[1].ready = false,
        }
        let pods = pods_on("default", "foo", &[("a1", 2)]);
        let w = workload("default", "foo", vec![constraint(ZONE_KEY, 1, "foo")]);
        assert_eq!(
            plan_all(&Cluster::new(nodes, pods), &w),
            Err(Obstacle::NoCapacity),
            "{broken}"
        );
    }
}

#[test]
fn with_taints_honoured_a_dead_zone_is_no_domain_at_all() {
    let mut nodes = vec![node("a1", "a"), node("b1", "b")];
    nodes[1].taints.push(Taint {
        key: "node.kubernetes.io/unreachable".into(),
        value: String::new(),
        effect: TaintEffect::NoExecute,
    });
    let pods = pods_on("default", "foo", &[("a1", 2)]);
    let mut w = workload("default", "foo", vec![constraint(ZONE_KEY, 1, "foo")]);
    w.constraints[0].node_taints_policy = InclusionPolicy::Honor;
    let cluster = Cluster::new(nodes, pods);
    assert_eq!(measure(&cluster, &w).constraints[0].skew, 0);
    assert_eq!(plan_all(&cluster, &w), Err(Obstacle::AlreadyBalanced));
}

#[test]
fn room_is_counted_as_moves_are_planned() {
    // b1 has room for exactly one more pod of 100m; zone a holds 4 -> two moves are needed.
    let mut nodes = vec![node("a1", "a"), node("b1", "b")];
    nodes[1].allocatable.cpu_millis = 100;
    let pods = pods_on("default", "foo", &[("a1", 4)]);
    let w = workload("default", "foo", vec![constraint(ZONE_KEY, 1, "foo")]);
    let cluster = Cluster::new(nodes.clone(), pods.clone());
    let plan = plan_all(&cluster, &w).unwrap();
    assert_eq!(plan.moves_needed, 1);
    assert_eq!(plan.shortfall, Some(Obstacle::NoCapacity));
    // requireNodeFit: false ignores room (but never readiness).
    let relaxed = plan_rebalance(
        &cluster,
        &w,
        &PlanOptions {
            max_moves: 10,
            require_node_fit: false,
        },
    )
    .unwrap();
    assert_eq!(relaxed.moves_needed, 2);
    assert_eq!(relaxed.shortfall, None);
}

#[test]
fn pods_with_volumes_do_not_change_zone() {
    let nodes = vec![node("a1", "a"), node("a2", "a"), node("b1", "b")];
    let mut pods = pods_on("default", "foo", &[("a1", 2)]);
    for p in &mut pods {
        p.has_volume_claims = true;
    }
    let cluster = Cluster::new(nodes, pods);
    let zone = workload("default", "foo", vec![constraint(ZONE_KEY, 1, "foo")]);
    assert_eq!(plan_all(&cluster, &zone), Err(Obstacle::VolumePinned));
    // Within the zone, across hosts, they may move.
    let host = workload("default", "foo", vec![constraint(HOSTNAME_KEY, 1, "foo")]);
    let plan = plan_all(&cluster, &host).unwrap();
    assert_eq!(plan.moves[0].to_node, "a2");
}

#[test]
fn the_step_is_limited_to_max_disruptions() {
    let (nodes, pods) = one_node_per_domain(&[6, 0, 0], "foo");
    let cluster = Cluster::new(nodes, pods);
    let w = workload("default", "foo", vec![constraint(ZONE_KEY, 1, "foo")]);
    let plan = plan_rebalance(&cluster, &w, &PlanOptions::default()).unwrap();
    assert_eq!(plan.moves.len(), 1);
    assert_eq!(plan.moves_needed, 4);
    let plan = plan_rebalance(
        &cluster,
        &w,
        &PlanOptions {
            max_moves: 3,
            require_node_fit: true,
        },
    )
    .unwrap();
    assert_eq!(plan.moves.len(), 3);
    let pods: std::collections::BTreeSet<_> = plan.moves.iter().map(|m| &m.pod).collect();
    assert_eq!(pods.len(), 3, "each pod moves at most once");
}

#[test]
fn too_few_domains_cannot_be_fixed_by_moving() {
    let nodes = vec![node("a", "z1"), node("b", "z2")];
    let pods = pods_on("default", "foo", &[("a", 3), ("b", 3)]);
    let mut c = constraint(ZONE_KEY, 1, "foo");
    c.when_unsatisfiable = WhenUnsatisfiable::DoNotSchedule;
    c.min_domains = Some(3);
    let w = workload("default", "foo", vec![c]);
    assert_eq!(
        plan_all(&Cluster::new(nodes, pods), &w),
        Err(Obstacle::TooFewDomains)
    );
}

#[test]
fn skew_made_of_other_pods_is_nothing_to_move() {
    // The constraint's selector also matches pods of another app, which the workload cannot move.
    let nodes = vec![node("a", "z1"), node("b", "z2")];
    let mut pods = pods_on("default", "other", &[("a", 3)]);
    for p in &mut pods {
        p.labels.insert("tier".into(), "web".into());
    }
    let mut mine = pods_on("default", "foo", &[("b", 1)]);
    for p in &mut mine {
        p.labels.insert("tier".into(), "web".into());
    }
    pods.extend(mine);
    let mut w = workload("default", "foo", vec![constraint(ZONE_KEY, 1, "foo")]);
    w.constraints[0].selector = Some(selector(&[("tier", "web")]));
    let cluster = Cluster::new(nodes, pods);
    assert_eq!(measure(&cluster, &w).constraints[0].skew, 2);
    assert_eq!(plan_all(&cluster, &w), Err(Obstacle::NothingMovable));
}

#[test]
fn pods_opted_out_of_eviction_count_but_never_move() {
    // Zone a holds 3 (a1, a2, a3 on node a1), zone b none: one move is needed.
    let nodes = vec![node("a1", "a"), node("b1", "b")];
    let mut pods = pods_on("default", "foo", &[("a1", 3)]);
    for p in pods.iter_mut().take(2) {
        p.opted_out = true;
    }
    let w = workload("default", "foo", vec![constraint(ZONE_KEY, 1, "foo")]);
    let cluster = Cluster::new(nodes.clone(), pods.clone());
    assert_eq!(measure(&cluster, &w).constraints[0].skew, 3, "they count");
    let plan = plan_all(&cluster, &w).unwrap();
    assert_eq!(plan.moves.len(), 1);
    assert_eq!(
        plan.moves[0].pod, pods[2].name,
        "the one pod not opted out moves"
    );
    // All opted out: nothing moves, and the reason says why.
    for p in pods.iter_mut() {
        p.opted_out = true;
    }
    let cluster = Cluster::new(nodes, pods);
    assert_eq!(plan_all(&cluster, &w), Err(Obstacle::OptedOut));
    assert_eq!(Obstacle::OptedOut.reason(), "PodsOptedOut");
}

#[test]
fn the_opt_out_annotations_are_the_ecosystems_and_skewguards_own() {
    let annotations = |k: &str, v: &str| labels(&[(k, v)]);
    assert!(opts_out(&annotations(
        "karpenter.sh/do-not-disrupt",
        "true"
    )));
    assert!(opts_out(&annotations(
        "cluster-autoscaler.kubernetes.io/safe-to-evict",
        "false"
    )));
    assert!(opts_out(&annotations("skewguard.dev/do-not-evict", "true")));
    assert!(!opts_out(&annotations(
        "cluster-autoscaler.kubernetes.io/safe-to-evict",
        "true"
    )));
    assert!(!opts_out(&annotations(
        "karpenter.sh/do-not-disrupt",
        "false"
    )));
}
