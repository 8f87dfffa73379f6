//! The joint planner's rules beyond the semantics vectors: which pod, toward which node, and why
//! not.

mod common;

use common::*;

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

// ---- Plans the scheduler agrees with (issue 10) ----

fn hard(key: &str, max_skew: i32) -> SpreadConstraint {
    let mut c = constraint(key, max_skew, "foo");
    c.when_unsatisfiable = WhenUnsatisfiable::DoNotSchedule;
    c
}

/// Every move of the plan passes the scheduler model in the cluster as it would be right after
/// the earlier moves (evicted pods terminating, replacements bound).
fn assert_scheduler_agrees(nodes: &[Node], pods: &[Pod], w: &Workload, moves: &[Move]) {
    let mut pods = pods.to_vec();
    for (i, m) in moves.iter().enumerate() {
        let cluster = Cluster::new(nodes.to_vec(), pods.clone());
        let p = cluster
            .pods()
            .iter()
            .position(|p| p.uid == m.pod_uid)
            .unwrap();
        let t = cluster.node_index(&m.to_node).unwrap();
        assert_eq!(accepts(&cluster, w, p, t, true), Ok(()), "step {i}: {m:?}");
        assert!(
            candidate_nodes(&cluster, w, p, true).contains(&t),
            "step {i}: {m:?}"
        );
        let old = pods.iter_mut().find(|p| p.uid == m.pod_uid).unwrap();
        old.terminating = true;
        let mut new = old.clone();
        new.terminating = false;
        new.uid = format!("{}-new", m.pod_uid);
        new.node_name = Some(m.to_node.clone());
        pods.push(new);
    }
}

#[test]
fn a_hard_target_passes_the_filter_in_the_state_after_the_eviction() {
    // Zones a 4, b 1, c 0, DoNotSchedule maxSkew 1. Moving to b or c lowers the distance as
    // much, but right after the eviction the global minimum is 0 (zone c), so b (1 + 1 - 0 = 2)
    // refuses the pod: only c is a target.
    let (nodes, pods) = one_node_per_domain(&[4, 1, 0], "foo");
    let w = workload("default", "foo", vec![hard(ZONE_KEY, 1)]);
    let cluster = Cluster::new(nodes.clone(), pods.clone());
    let plan = plan_all(&cluster, &w).unwrap();
    assert_eq!(plan.moves[0].to_domain, "d2");
    assert_eq!(plan.moves_needed, 2);
    assert_scheduler_agrees(&nodes, &pods, &w, &plan.moves);
}

#[test]
fn with_zone_and_hostname_hard_the_target_passes_the_hostname_filter() {
    // zone a: a1 3; zone b: b1 1, b2 0. b1 would fix the zone but holds 1 while b2 holds 0:
    // 1 + 1 - 0 > 1, the hostname filter refuses b1.
    let nodes = vec![node("a1", "a"), node("b1", "b"), node("b2", "b")];
    let pods = pods_on("default", "foo", &[("a1", 3), ("b1", 1)]);
    let w = workload(
        "default",
        "foo",
        vec![hard(ZONE_KEY, 1), hard(HOSTNAME_KEY, 1)],
    );
    let cluster = Cluster::new(nodes.clone(), pods.clone());
    let plan = plan_all(&cluster, &w).unwrap();
    assert_eq!(plan.moves[0].to_node, "b2");
    assert_scheduler_agrees(&nodes, &pods, &w, &plan.moves);
}

#[test]
fn soft_constraints_say_which_domains_the_scheduler_may_pick() {
    // Zones a 3, b 0, c 0, ScheduleAnyway: b and c score alike; the move names both.
    let (nodes, pods) = one_node_per_domain(&[3, 0, 0], "foo");
    let w = workload("default", "foo", vec![constraint(ZONE_KEY, 1, "foo")]);
    let plan = plan_all(&Cluster::new(nodes.clone(), pods.clone()), &w).unwrap();
    let first = &plan.moves[0];
    assert_eq!(first.allowed_domains[ZONE_KEY], ["d0", "d1", "d2"][1..]);
    assert!(first.allowed_domains[ZONE_KEY].contains(&first.to_domain));
    assert_eq!(plan.moves_needed, 2);
    assert_scheduler_agrees(&nodes, &pods, &w, &plan.moves);
}

#[test]
fn the_exact_planner_finds_a_plan_the_greedy_misses() {
    // Found by the oracle. Hosts n1 (zone z, room for 1) holds 1, n2 (zone z, full) holds 4;
    // n0 has room but no zone label, so it is no domain of the ScheduleAnyway constraints
    // (zone, hostname). The first move out of n2 toward n0 lowers no distance ([1,3] is as far
    // from balance as [1,4]), so a greedy stops; the second reaches [1,2].
    let mut nodes = vec![node("n0", "z"), node("n1", "z"), node("n2", "z")];
    nodes[0].labels.remove(ZONE_KEY);
    nodes[1].allocatable.pods = 1;
    nodes[2].allocatable.pods = 1;
    let pods = pods_on("default", "foo", &[("n1", 1), ("n2", 4)]);
    let mut zone = constraint(ZONE_KEY, 1, "foo");
    zone.selector = None;
    let w = workload(
        "default",
        "foo",
        vec![zone, constraint(HOSTNAME_KEY, 1, "foo")],
    );
    let cluster = Cluster::new(nodes.clone(), pods.clone());
    let plan = plan_all(&cluster, &w).unwrap();
    assert_eq!(plan.moves_needed, 2);
    assert_eq!(plan.shortfall, None);
    assert_scheduler_agrees(&nodes, &pods, &w, &plan.moves);
}

#[test]
fn a_constraint_without_selector_blocks_nothing() {
    // It matches no pod upstream: its counts are all 0 and no move changes them.
    let nodes = vec![node("a1", "a"), node("b1", "b")];
    let pods = pods_on("default", "foo", &[("a1", 2)]);
    let mut zone = hard(ZONE_KEY, 1);
    zone.selector = None;
    let w = workload(
        "default",
        "foo",
        vec![zone, constraint(HOSTNAME_KEY, 1, "foo")],
    );
    let plan = plan_all(&Cluster::new(nodes, pods), &w).unwrap();
    assert_eq!(plan.moves_needed, 1);
    assert_eq!(plan.moves[0].to_node, "b1");
    assert_eq!(plan.moves[0].topology_key, HOSTNAME_KEY);
}

#[test]
fn match_label_keys_only_pods_the_constraint_counts_are_moved() {
    // Zone a holds two pods of ReplicaSet abc and one of an older def; zone b none. The
    // constraint counts abc only ([2,0]): moving the def pod (the most willing by name and
    // priority) would change nothing.
    let nodes = vec![node("a", "z1"), node("b", "z2")];
    let mut pods = pods_on("default", "foo", &[("a", 3)]);
    for (p, h) in pods.iter_mut().zip(["def", "abc", "abc"]) {
        p.labels.insert("pod-template-hash".into(), h.into());
    }
    pods[0].priority = -100;
    let mut c = constraint(ZONE_KEY, 1, "foo");
    c.match_label_keys = vec!["pod-template-hash".into()];
    let w = workload("default", "foo", vec![c]);
    let cluster = Cluster::new(nodes, pods.clone());
    let plan = plan_all(&cluster, &w).unwrap();
    assert_eq!(plan.moves_needed, 1);
    assert_ne!(plan.moves[0].pod, pods[0].name);
}

#[test]
fn volumes_hold_a_pod_to_its_nodes_zone_whatever_the_key() {
    // Hostname only: the other-zone node sorts first, yet the pod with a claim goes to the node
    // of its own zone.
    let nodes = vec![
        node("a-other", "z2"),
        node("b-home", "z1"),
        node("c-home", "z1"),
    ];
    let mut pods = pods_on("default", "foo", &[("c-home", 2)]);
    for p in &mut pods {
        p.has_volume_claims = true;
    }
    let host = workload("default", "foo", vec![constraint(HOSTNAME_KEY, 1, "foo")]);
    let plan = plan_all(&Cluster::new(nodes, pods.clone()), &host).unwrap();
    assert_eq!(plan.moves[0].to_node, "b-home");
    // Across racks of one zone a claim may move.
    let mut nodes = vec![node("r1", "z1"), node("r2", "z1")];
    nodes[0].labels.insert("rack".into(), "1".into());
    nodes[1].labels.insert("rack".into(), "2".into());
    let mut pods = pods_on("default", "foo", &[("r1", 2)]);
    for p in &mut pods {
        p.has_volume_claims = true;
    }
    let rack = workload("default", "foo", vec![constraint("rack", 1, "foo")]);
    let cluster = Cluster::new(nodes.clone(), pods.clone());
    assert_eq!(plan_all(&cluster, &rack).unwrap().moves[0].to_node, "r2");
    // On a node without a zone label the volume's zone is unknown: the pod stays.
    for n in &mut nodes {
        n.labels.remove(ZONE_KEY);
    }
    let cluster = Cluster::new(nodes, pods);
    assert_eq!(plan_all(&cluster, &rack), Err(Obstacle::VolumePinned));
}

#[test]
fn terminating_pods_still_hold_their_room() {
    // b1 has room for one pod of 100m, taken by a terminating pod of another app.
    let mut nodes = vec![node("a1", "a"), node("b1", "b")];
    nodes[1].allocatable.cpu_millis = 100;
    let mut pods = pods_on("default", "foo", &[("a1", 2)]);
    let mut leaving = pod("other-0", "default", "other", "b1");
    leaving.terminating = true;
    assert!(leaving.holds_resources() && !leaving.is_counted());
    pods.push(leaving);
    let w = workload("default", "foo", vec![constraint(ZONE_KEY, 1, "foo")]);
    assert_eq!(
        plan_all(&Cluster::new(nodes, pods), &w),
        Err(Obstacle::NoCapacity)
    );
}

#[test]
fn finished_pods_hold_nothing() {
    let mut p = pod("done", "default", "foo", "n1");
    p.finished = true;
    assert!(!p.holds_resources());
    p.finished = false;
    p.node_name = None;
    assert!(!p.holds_resources());
}

// ---- Certain moves and gambles (the score's ties, scoring.go) ----

/// The plan's one move, from z1-n0 to z0-n0.
fn only_move_from_z1_n0_to_z0_n0(plan: &Plan) -> &Move {
    assert_eq!(plan.moves_needed, 1, "{plan:?}");
    let m = &plan.moves[0];
    assert_eq!(
        (m.from_node.as_str(), m.to_node.as_str()),
        ("z1-n0", "z0-n0")
    );
    m
}

/// The nodes (by name) the scheduler may put the replacement of `pod` on.
fn tie_of(cluster: &Cluster, w: &Workload, pod: &str) -> Vec<String> {
    let p = cluster.pods().iter().position(|p| p.name == pod).unwrap();
    candidate_nodes(cluster, w, p, true)
        .into_iter()
        .map(|n| cluster.nodes()[n].name.clone())
        .collect()
}

#[test]
fn a_certain_move_is_chosen_over_a_gamble() {
    // Zones z0 {n0: 1}, z1 {n0: 2, n1: 1}; soft zone maxSkew 1, soft hostname maxSkew 2. One
    // move from z1 to z0 balances the zones. Evicting the pod of z1-n1: z0-n0 = ln4 + ln5 + 1 =
    // 3.99 and z1-n1 itself = 2 ln4 + 1 = 3.77 both round to 4, so its replacement may come
    // back: a gamble. Evicting a pod of z1-n0: z0-n0 (4) alone scores best: certain. The pod of
    // z1-n1 is the more willing (lower priority), yet the certain move is planned.
    let (nodes, mut pods) = zones_of_hosts("foo", &[("z0", &[1]), ("z1", &[2, 1])]);
    for p in pods
        .iter_mut()
        .filter(|p| p.node_name.as_deref() == Some("z1-n0"))
    {
        p.priority = 100;
    }
    let w = workload("default", "foo", zones_and_hosts(2));
    let cluster = Cluster::new(nodes.clone(), pods.clone());
    assert_eq!(tie_of(&cluster, &w, "foo-z1-n1-0"), ["z0-n0", "z1-n1"]);
    assert_eq!(tie_of(&cluster, &w, "foo-z1-n0-0"), ["z0-n0"]);
    let plan = plan_all(&cluster, &w).unwrap();
    let m = only_move_from_z1_n0_to_z0_n0(&plan);
    assert!(!m.gamble, "{m:?}");
    assert_scheduler_agrees(&nodes, &pods, &w, &plan.moves);
}

#[test]
fn a_gamble_is_taken_when_no_certain_move_exists() {
    // The example: zones z0 {n0: 2}, z1 {n0: 3, n1: 1}, soft zone maxSkew 1, soft
    // hostname maxSkew 2. Evicting a pod of z1-n0, z0-n0 and z1-n1 tie at 7: in z1-n1 the zones
    // stay 2/4. Evicting the pod of z1-n1, it alone scores best (5): it would come back. The
    // only move is the gamble, planned and said so.
    let (nodes, pods) = zones_of_hosts("foo", &[("z0", &[2]), ("z1", &[3, 1])]);
    let w = workload("default", "foo", zones_and_hosts(2));
    let cluster = Cluster::new(nodes.clone(), pods.clone());
    assert_eq!(tie_of(&cluster, &w, "foo-z1-n0-0"), ["z0-n0", "z1-n1"]);
    assert_eq!(tie_of(&cluster, &w, "foo-z1-n1-0"), ["z1-n1"]);
    let plan = plan_all(&cluster, &w).unwrap();
    let m = only_move_from_z1_n0_to_z0_n0(&plan);
    assert!(m.gamble, "{m:?}");
    assert_eq!(m.allowed_domains[ZONE_KEY], ["z0", "z1"]);
    assert_scheduler_agrees(&nodes, &pods, &w, &plan.moves);
}

#[test]
fn hard_constraints_make_no_gamble() {
    // DoNotSchedule: the filter decides, every feasible node is a target, nothing is a gamble.
    let (nodes, pods) = one_node_per_domain(&[3, 0, 0], "foo");
    let w = workload("default", "foo", vec![hard(ZONE_KEY, 1)]);
    let plan = plan_all(&Cluster::new(nodes, pods), &w).unwrap();
    assert_eq!(plan.moves_needed, 2);
    assert!(plan.moves.iter().all(|m| !m.gamble), "{:?}", plan.moves);
}
