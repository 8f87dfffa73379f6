//! Every test vector of shared/design/semantics.md, taken from kube-scheduler's and the
//! descheduler's own test tables.

mod common;

use std::collections::BTreeMap;

use common::*;

fn domains(pairs: &[(&str, i32)]) -> BTreeMap<String, i32> {
    pairs.iter().map(|(d, n)| (d.to_string(), *n)).collect()
}

/// zone1 {node-a, node-b}, zone2 {node-x, node-y}.
fn four_nodes() -> Vec<Node> {
    vec![
        node("node-a", "zone1"),
        node("node-b", "zone1"),
        node("node-x", "zone2"),
        node("node-y", "zone2"),
    ]
}

fn measure_one(nodes: Vec<Node>, pods: Vec<Pod>, w: &Workload) -> Measurement {
    measure(&Cluster::new(nodes, pods), w)
}

// ---- Counting (scheduler filtering_test.go) ----

#[test]
fn counts_pods_per_zone() {
    let pods = pods_on(
        "default",
        "foo",
        &[("node-a", 2), ("node-b", 1), ("node-y", 2)],
    );
    let w = workload("default", "foo", vec![constraint(ZONE_KEY, 1, "foo")]);
    let m = measure_one(four_nodes(), pods, &w);
    assert_eq!(
        m.constraints[0].domains.to_map(),
        domains(&[("zone1", 3), ("zone2", 2)])
    );
    assert_eq!(m.constraints[0].skew, 1);
    assert!(m.within_policy());
}

#[test]
fn empty_zone_is_a_domain_and_the_minimum() {
    let mut nodes = four_nodes();
    nodes.push(node("node-p", "zone3"));
    let pods = pods_on(
        "default",
        "foo",
        &[("node-a", 2), ("node-b", 1), ("node-y", 2)],
    );
    let w = workload("default", "foo", vec![constraint(ZONE_KEY, 1, "foo")]);
    let m = measure_one(nodes, pods, &w);
    assert_eq!(
        m.constraints[0].domains.to_map(),
        domains(&[("zone1", 3), ("zone2", 2), ("zone3", 0)])
    );
    assert_eq!(m.constraints[0].skew, 3);
    assert!(!m.within_policy());
}

#[test]
fn only_pods_of_the_workloads_namespace_count() {
    let pods = vec![
        pod("a1", "default", "foo", "node-a"),
        pod("a2", "ns1", "foo", "node-a"),
        pod("b1", "default", "foo", "node-b"),
        pod("y1", "ns2", "foo", "node-y"),
        pod("y2", "default", "foo", "node-y"),
    ];
    let w = workload("default", "foo", vec![constraint(ZONE_KEY, 1, "foo")]);
    let m = measure_one(four_nodes(), pods, &w);
    assert_eq!(
        m.constraints[0].domains.to_map(),
        domains(&[("zone1", 2), ("zone2", 1)])
    );
}

#[test]
fn zone_and_hostname_are_counted_together() {
    let pods = pods_on(
        "default",
        "foo",
        &[("node-a", 2), ("node-b", 1), ("node-y", 4)],
    );
    let w = zone_and_host(1);
    let m = measure_one(four_nodes(), pods, &w);
    assert_eq!(
        m.constraints[0].domains.to_map(),
        domains(&[("zone1", 3), ("zone2", 4)])
    );
    assert_eq!(
        m.constraints[1].domains.to_map(),
        domains(&[("node-a", 2), ("node-b", 1), ("node-x", 0), ("node-y", 4)])
    );
    assert_eq!(m.constraints[1].skew, 4);
}

#[test]
fn node_affinity_policy_honor_drops_nodes_the_pod_cannot_use() {
    let mut nodes = vec![
        node("node-a", "z"),
        node("node-b", "z"),
        node("node-c", "z"),
    ];
    nodes[0].labels.insert("foo".into(), "".into());
    nodes[1].labels.insert("foo".into(), "".into());
    let pods = pods_on("default", "foo", &[("node-a", 1), ("node-b", 2)]);
    let mut w = workload("default", "foo", vec![constraint(HOSTNAME_KEY, 1, "foo")]);
    w.template.placement.node_selector = labels(&[("foo", "")]);
    let honor = measure_one(nodes.clone(), pods.clone(), &w);
    assert_eq!(
        honor.constraints[0].domains.to_map(),
        domains(&[("node-a", 1), ("node-b", 2)])
    );
    w.constraints[0].node_affinity_policy = InclusionPolicy::Ignore;
    let ignore = measure_one(nodes, pods, &w);
    assert_eq!(
        ignore.constraints[0].domains.to_map(),
        domains(&[("node-a", 1), ("node-b", 2), ("node-c", 0)])
    );
}

#[test]
fn required_node_affinity_is_honoured_like_a_node_selector() {
    let mut nodes = vec![node("node-a", "z"), node("node-b", "z")];
    nodes[0].labels.insert("disk".into(), "ssd".into());
    let pods = pods_on("default", "foo", &[("node-a", 1)]);
    let mut w = workload("default", "foo", vec![constraint(HOSTNAME_KEY, 1, "foo")]);
    w.template.placement.required_affinity = Some(vec![NodeSelectorTerm {
        match_expressions: vec![NodeSelectorRequirement {
            key: "disk".into(),
            operator: NodeSelectorOperator::In,
            values: vec!["ssd".into()],
        }],
        match_fields: vec![],
    }]);
    let m = measure_one(nodes, pods, &w);
    assert_eq!(m.constraints[0].domains.to_map(), domains(&[("node-a", 1)]));
}

#[test]
fn a_node_lacking_the_key_contributes_nothing() {
    let mut nodes = four_nodes();
    let b = nodes[1].labels.remove(ZONE_KEY).unwrap();
    nodes[1].labels.insert("zon".into(), b);
    let pods = pods_on(
        "default",
        "foo",
        &[("node-a", 1), ("node-b", 2), ("node-x", 1), ("node-y", 1)],
    );
    let w = workload("default", "foo", vec![constraint(ZONE_KEY, 1, "foo")]);
    let m = measure_one(nodes, pods, &w);
    assert_eq!(
        m.constraints[0].domains.to_map(),
        domains(&[("zone1", 1), ("zone2", 2)])
    );
}

#[test]
fn a_terminating_pod_does_not_count() {
    let mut pods = pods_on("default", "foo", &[("node-a", 1), ("node-b", 1)]);
    pods[0].terminating = true;
    let w = workload("default", "foo", vec![constraint(HOSTNAME_KEY, 1, "foo")]);
    let m = measure_one(four_nodes(), pods, &w);
    assert_eq!(m.constraints[0].domains.to_map()["node-a"], 0);
    assert_eq!(m.constraints[0].domains.to_map()["node-b"], 1);
}

#[test]
fn pending_and_finished_pods_do_not_count() {
    let mut pods = pods_on("default", "foo", &[("node-a", 3)]);
    pods[0].node_name = None;
    pods[1].finished = true;
    let w = workload("default", "foo", vec![constraint(HOSTNAME_KEY, 1, "foo")]);
    let m = measure_one(four_nodes(), pods, &w);
    assert_eq!(m.constraints[0].domains.to_map()["node-a"], 1);
}

#[test]
fn no_node_carries_the_key_no_domains() {
    let pods = pods_on("default", "foo", &[("node-a", 3)]);
    let w = workload("default", "foo", vec![constraint("rack", 1, "foo")]);
    let m = measure_one(four_nodes(), pods, &w);
    assert!(m.constraints[0].domains.is_empty());
    assert_eq!(m.constraints[0].skew, 0);
}

#[test]
fn node_taints_policy_honor_drops_tainted_nodes() {
    let mut nodes = four_nodes();
    nodes[3].taints.push(Taint {
        key: "dedicated".into(),
        value: "batch".into(),
        effect: TaintEffect::NoSchedule,
    });
    let pods = pods_on("default", "foo", &[("node-a", 1), ("node-y", 1)]);
    let mut w = workload("default", "foo", vec![constraint(HOSTNAME_KEY, 1, "foo")]);
    w.constraints[0].node_taints_policy = InclusionPolicy::Honor;
    let honor = measure_one(nodes.clone(), pods.clone(), &w);
    assert!(!honor.constraints[0].domains.to_map().contains_key("node-y"));
    assert_eq!(honor.constraints[0].domains.len(), 3);
    // Ignore (the scheduler's default) keeps it.
    w.constraints[0].node_taints_policy = InclusionPolicy::Ignore;
    let ignore = measure_one(nodes.clone(), pods.clone(), &w);
    assert_eq!(ignore.constraints[0].domains.to_map()["node-y"], 1);
    // A tolerated taint does not drop the node.
    w.constraints[0].node_taints_policy = InclusionPolicy::Honor;
    w.template.placement.tolerations.push(Toleration {
        key: Some("dedicated".into()),
        operator: TolerationOperator::Equal,
        value: "batch".into(),
        effect: Some(TaintEffect::NoSchedule),
    });
    let tolerated = measure_one(nodes, pods, &w);
    assert_eq!(tolerated.constraints[0].domains.to_map()["node-y"], 1);
}

#[test]
fn min_domains_unmet_takes_the_global_minimum_as_zero() {
    // hostname: nodes 2/2/1, maxSkew 2, minDomains 4 -> 3 domains < 4.
    let nodes = vec![node("n1", "z"), node("n2", "z"), node("n3", "z")];
    let pods = pods_on("default", "foo", &[("n1", 2), ("n2", 2), ("n3", 1)]);
    let mut c = constraint(HOSTNAME_KEY, 2, "foo");
    c.when_unsatisfiable = WhenUnsatisfiable::DoNotSchedule;
    c.min_domains = Some(4);
    let w = workload("default", "foo", vec![c.clone()]);
    let m = measure_one(nodes.clone(), pods.clone(), &w);
    assert_eq!(m.constraints[0].skew, 2);
    assert!(m.constraints[0].below_min_domains);
    // Without minDomains the minimum is the smallest count.
    let plain = workload("default", "foo", vec![constraint(HOSTNAME_KEY, 2, "foo")]);
    assert_eq!(measure_one(nodes, pods, &plain).constraints[0].skew, 1);
}

#[test]
fn min_domains_over_zones() {
    // zones 2/1, maxSkew 2, minDomains 3.
    let nodes = vec![node("a", "z1"), node("b", "z2")];
    let pods = pods_on("default", "foo", &[("a", 2), ("b", 1)]);
    let mut c = constraint(ZONE_KEY, 2, "foo");
    c.when_unsatisfiable = WhenUnsatisfiable::DoNotSchedule;
    c.min_domains = Some(3);
    let m = measure_one(
        nodes.clone(),
        pods.clone(),
        &workload("default", "foo", vec![c.clone()]),
    );
    assert_eq!(m.constraints[0].skew, 2);
    // minDomains means nothing with ScheduleAnyway.
    c.when_unsatisfiable = WhenUnsatisfiable::ScheduleAnyway;
    let m = measure_one(nodes, pods, &workload("default", "foo", vec![c]));
    assert_eq!(m.constraints[0].skew, 1);
}

#[test]
fn a_constraint_without_selector_matches_nothing() {
    let pods = pods_on("default", "foo", &[("node-a", 3)]);
    let mut c = constraint(ZONE_KEY, 1, "foo");
    c.selector = None;
    let m = measure_one(four_nodes(), pods, &workload("default", "foo", vec![c]));
    assert_eq!(
        m.constraints[0].domains.to_map(),
        domains(&[("zone1", 0), ("zone2", 0)])
    );
}

#[test]
fn match_expressions_select_pods() {
    use kube::core::{Expression, Selector};
    let mut pods = pods_on("default", "foo", &[("node-a", 2), ("node-x", 1)]);
    pods[0].labels.insert("track".into(), "canary".into());
    let mut c = constraint(ZONE_KEY, 1, "foo");
    let mut s = selector(&[("app", "foo")]);
    s.extend(Expression::DoesNotExist("track".into()));
    c.selector = Some(Selector::from_iter(s));
    let m = measure_one(four_nodes(), pods, &workload("default", "foo", vec![c]));
    assert_eq!(
        m.constraints[0].domains.to_map(),
        domains(&[("zone1", 1), ("zone2", 1)])
    );
}

// ---- Minimal evictions (descheduler topologyspreadconstraint_test.go) ----

fn evictions(counts: &[usize], max_skew: i32) -> (usize, Vec<i32>) {
    let (nodes, pods) = one_node_per_domain(counts, "foo");
    let cluster = Cluster::new(nodes, pods);
    let w = workload(
        "default",
        "foo",
        vec![constraint(ZONE_KEY, max_skew, "foo")],
    );
    let before = measure(&cluster, &w).constraints[0].domains.to_map();
    match plan_all(&cluster, &w) {
        Ok(plan) => {
            assert_eq!(plan.shortfall, None, "{counts:?}");
            assert_eq!(plan.moves.len(), plan.moves_needed);
            (plan.moves_needed, counts_after(&before, &plan.moves))
        }
        Err(Obstacle::AlreadyBalanced) => (0, before.into_values().collect()),
        Err(other) => panic!("{counts:?}: unexpected {other:?}"),
    }
}

#[test]
fn fewest_evictions_single_constraint() {
    let cases: &[(&[usize], i32, usize, &[i32])] = &[
        (&[2, 1], 1, 0, &[2, 1]),
        (&[3, 1], 1, 1, &[2, 2]),
        (&[5, 2], 1, 1, &[4, 3]),
        (&[4, 0], 1, 2, &[2, 2]),
        (&[0, 1, 100], 1, 66, &[34, 33, 34]),
        (&[0, 1, 3, 5], 1, 3, &[2, 2, 3, 2]),
        (&[8, 7, 0], 1, 5, &[5, 5, 5]),
        (&[5, 5, 5], 1, 0, &[5, 5, 5]),
        (&[2, 6], 2, 1, &[3, 5]),
    ];
    for (counts, max_skew, want, after) in cases {
        let (got, got_after) = evictions(counts, *max_skew);
        assert_eq!(got, *want, "{counts:?} maxSkew {max_skew}");
        let mut sorted_after = got_after.clone();
        let mut want_after = after.to_vec();
        sorted_after.sort();
        want_after.sort();
        assert_eq!(sorted_after, want_after, "{counts:?} ended {got_after:?}");
    }
}

#[test]
fn no_move_when_the_small_domain_cannot_take_the_pod() {
    // [2,6], maxSkew 2: the only node of the small domain is tainted.
    let (mut nodes, pods) = one_node_per_domain(&[2, 6], "foo");
    nodes[0].taints.push(Taint {
        key: "dedicated".into(),
        value: "x".into(),
        effect: TaintEffect::NoSchedule,
    });
    let w = workload("default", "foo", vec![constraint(ZONE_KEY, 2, "foo")]);
    let cluster = Cluster::new(nodes, pods.clone());
    assert_eq!(plan_all(&cluster, &w), Err(Obstacle::NoCapacity));
    // ... or has no cpu left.
    let (mut nodes, _) = one_node_per_domain(&[2, 6], "foo");
    nodes[0].allocatable.cpu_millis = 250;
    let cluster = Cluster::new(nodes, pods);
    assert_eq!(plan_all(&cluster, &w), Err(Obstacle::NoCapacity));
}

#[test]
fn terminating_pods_are_already_gone() {
    let (nodes, mut pods) = one_node_per_domain(&[4, 2], "foo");
    pods[0].terminating = true;
    pods[1].terminating = true;
    let w = workload("default", "foo", vec![constraint(ZONE_KEY, 1, "foo")]);
    assert_eq!(
        plan_all(&Cluster::new(nodes, pods), &w),
        Err(Obstacle::AlreadyBalanced)
    );
}

fn windows_cluster(extra_empty_windows_node: bool) -> (Cluster, Workload) {
    let mut nodes = Vec::new();
    for i in 0..3 {
        let mut n = node(&format!("linux-{i}"), "z");
        n.labels.insert("kubernetes.io/os".into(), "linux".into());
        nodes.push(n);
    }
    let windows = if extra_empty_windows_node { 4 } else { 3 };
    for i in 0..windows {
        let mut n = node(&format!("win-{i}"), "z");
        n.labels.insert("kubernetes.io/os".into(), "windows".into());
        nodes.push(n);
    }
    let mut pods = pods_on(
        "default",
        "foo",
        &[("win-0", 3), ("win-1", 3), ("win-2", 2)],
    );
    let os = labels(&[("kubernetes.io/os", "windows")]);
    for p in &mut pods {
        p.placement.node_selector = os.clone();
    }
    let mut w = workload("default", "foo", vec![constraint(HOSTNAME_KEY, 1, "foo")]);
    w.template.placement.node_selector = os;
    (Cluster::new(nodes, pods), w)
}

#[test]
fn nodes_the_pods_cannot_use_are_no_domains() {
    let (cluster, w) = windows_cluster(false);
    assert_eq!(measure(&cluster, &w).constraints[0].domains.len(), 3);
    assert_eq!(plan_all(&cluster, &w), Err(Obstacle::AlreadyBalanced));
}

#[test]
fn an_empty_usable_node_draws_two_evictions() {
    let (cluster, w) = windows_cluster(true);
    let plan = plan_all(&cluster, &w).unwrap();
    assert_eq!(plan.moves_needed, 2);
    assert!(plan.moves.iter().all(|m| m.to_node == "win-3"));
}

fn two_replicasets(hashes: [&str; 2]) -> (Cluster, Workload) {
    let nodes = vec![node("a", "z1"), node("b", "z2")];
    let mut pods = pods_on("default", "foo", &[("a", 2)]);
    for (p, h) in pods.iter_mut().zip(hashes) {
        p.labels.insert("pod-template-hash".into(), h.into());
    }
    let mut c = constraint(ZONE_KEY, 1, "foo");
    c.match_label_keys = vec!["pod-template-hash".into()];
    (
        Cluster::new(nodes, pods),
        workload("default", "foo", vec![c]),
    )
}

#[test]
fn match_label_keys_same_replicaset_is_one_group() {
    let (cluster, w) = two_replicasets(["abc", "abc"]);
    let plan = plan_all(&cluster, &w).unwrap();
    assert_eq!(plan.moves_needed, 1);
    assert_eq!(plan.moves[0].to_domain, "z2");
}

#[test]
fn match_label_keys_count_replicasets_apart() {
    let (cluster, w) = two_replicasets(["abc", "def"]);
    assert_eq!(measure(&cluster, &w).constraints[0].skew, 1);
    assert_eq!(plan_all(&cluster, &w), Err(Obstacle::AlreadyBalanced));
}

#[test]
fn node_taints_policy_ignore_counts_a_tainted_domain() {
    let (mut nodes, mut pods) = one_node_per_domain(&[2, 1, 0], "foo");
    let taint = Taint {
        key: "dedicated".into(),
        value: "x".into(),
        effect: TaintEffect::NoSchedule,
    };
    nodes[2].taints.push(taint);
    let tolerate = Toleration {
        key: Some("dedicated".into()),
        operator: TolerationOperator::Exists,
        value: String::new(),
        effect: None,
    };
    for p in &mut pods {
        p.placement.tolerations.push(tolerate.clone());
    }
    let mut w = workload("default", "foo", vec![constraint(ZONE_KEY, 1, "foo")]);
    w.constraints[0].node_taints_policy = InclusionPolicy::Ignore;
    let cluster = Cluster::new(nodes, pods);
    let before = measure(&cluster, &w).constraints[0].domains.to_map();
    let plan = plan_all(&cluster, &w).unwrap();
    assert_eq!(plan.moves_needed, 1);
    assert_eq!(counts_after(&before, &plan.moves), vec![1, 1, 1]);
}

// ---- The field scenario ----

#[test]
fn field_scenario_needs_one_eviction_each_and_redis_is_a_single_point_of_failure() {
    let nodes = vec![
        node("a-1", "ap-northeast-2a"),
        node("c-1", "ap-northeast-2c"),
    ];
    let mut pods = pods_on("petclinic", "web", &[("c-1", 2)]);
    pods.extend(pods_on("petclinic", "was", &[("c-1", 2)]));
    pods.extend(pods_on("petclinic", "redis-master", &[("c-1", 1)]));
    let cluster = Cluster::new(nodes, pods);
    for app in ["web", "was"] {
        let w = workload("petclinic", app, vec![constraint(ZONE_KEY, 1, app)]);
        let m = measure(&cluster, &w);
        assert_eq!(m.constraints[0].skew, 2, "{app}");
        let plan = plan_all(&cluster, &w).unwrap();
        assert_eq!(plan.moves_needed, 1, "{app}");
        assert_eq!(plan.moves[0].to_domain, "ap-northeast-2a");
    }
    let redis = workload(
        "petclinic",
        "redis-master",
        vec![constraint(ZONE_KEY, 1, "redis-master")],
    );
    let m = measure(&cluster, &redis);
    assert_eq!(m.constraints[0].skew, 1);
    assert!(m.within_policy());
    let loss = worst_domain_loss(&pods_by_domain(&cluster, &redis, ZONE_KEY)).unwrap();
    assert_eq!(loss.domain, "ap-northeast-2c");
    assert_eq!(loss.fraction, 1.0);
    assert!(loss.is_single_point_of_failure());
}

// ---- The scheduler's filter (kube-scheduler podtopologyspread/filtering_test.go) ----

/// The nodes (by name) the scheduler would bind a new pod of `w` to.
fn fits(cluster: &Cluster, w: &Workload) -> Vec<String> {
    (0..cluster.nodes().len())
        .filter(|&n| template_accepts(cluster, w, n, true).is_ok())
        .map(|n| cluster.nodes()[n].name.clone())
        .collect()
}

fn hard(key: &str, max_skew: i32) -> SpreadConstraint {
    let mut c = constraint(key, max_skew, "foo");
    c.when_unsatisfiable = WhenUnsatisfiable::DoNotSchedule;
    c
}

/// node-a 2, node-b 1, node-x 0, node-y 3.
fn spread_2_1_0_3() -> Vec<Pod> {
    pods_on(
        "default",
        "foo",
        &[("node-a", 2), ("node-b", 1), ("node-y", 3)],
    )
}

#[test]
fn filter_pods_spread_across_nodes_as_2_1_0_3_only_node_x_fits() {
    // TestSingleConstraint "pods spread across nodes as 2/1/0/3, only node-x fits".
    let cluster = Cluster::new(four_nodes(), spread_2_1_0_3());
    let w = workload("default", "foo", vec![hard(HOSTNAME_KEY, 1)]);
    assert_eq!(fits(&cluster, &w), ["node-x"]);
    // "..., maxSkew is 2, node-b and node-x fit".
    let w = workload("default", "foo", vec![hard(HOSTNAME_KEY, 2)]);
    assert_eq!(fits(&cluster, &w), ["node-b", "node-x"]);
}

#[test]
fn filter_a_pod_that_does_not_match_itself_adds_nothing() {
    // TestSingleConstraint "pods spread across nodes as 2/1/0/3, but pod doesn't match itself".
    let cluster = Cluster::new(four_nodes(), spread_2_1_0_3());
    let mut w = workload("default", "foo", vec![hard(HOSTNAME_KEY, 1)]);
    w.template.labels = labels(&[("bar", "")]);
    assert_eq!(fits(&cluster, &w), ["node-b", "node-x"]);
}

#[test]
fn filter_a_node_without_the_key_never_fits() {
    // TestSingleConstraint "pods spread across zones as 1/2 due to absence of label 'zone' on
    // node-b".
    let mut nodes = four_nodes();
    let b = nodes[1].labels.remove(ZONE_KEY).unwrap();
    nodes[1].labels.insert("zon".into(), b);
    let pods = pods_on(
        "default",
        "foo",
        &[("node-a", 1), ("node-b", 1), ("node-x", 1), ("node-y", 1)],
    );
    let cluster = Cluster::new(nodes, pods);
    let w = workload("default", "foo", vec![hard(ZONE_KEY, 1)]);
    assert_eq!(fits(&cluster, &w), ["node-a"]);
    let b = cluster.node_index("node-b").unwrap();
    assert_eq!(
        template_accepts(&cluster, &w, b, true),
        Err(Rejection::MissingTopologyKey(ZONE_KEY.into()))
    );
}

#[test]
fn filter_terminating_pods_are_excluded() {
    // TestSingleConstraint "terminating Pods should be excluded".
    let nodes = vec![node("node-a", "z"), node("node-b", "z")];
    let mut pods = pods_on("default", "foo", &[("node-a", 1), ("node-b", 1)]);
    pods[0].terminating = true;
    let cluster = Cluster::new(nodes, pods);
    let w = workload("default", "foo", vec![hard(HOSTNAME_KEY, 1)]);
    assert_eq!(fits(&cluster, &w), ["node-a"]);
}

#[test]
fn filter_two_constraints_intersect() {
    // TestMultipleConstraints "two Constraints on zone and node, spreads = [3/3, 2/1/0/3]".
    let cluster = Cluster::new(four_nodes(), spread_2_1_0_3());
    let w = workload(
        "default",
        "foo",
        vec![hard(ZONE_KEY, 1), hard(HOSTNAME_KEY, 1)],
    );
    assert_eq!(fits(&cluster, &w), ["node-x"]);
}

#[test]
fn filter_two_constraints_a_node_without_the_hostname_key() {
    // TestMultipleConstraints "two Constraints on zone and node, absence of label 'node' on
    // node-x, spreads = [1/1, 1/0/0/1]".
    let mut nodes = four_nodes();
    nodes[2].labels.remove(HOSTNAME_KEY);
    let pods = pods_on("default", "foo", &[("node-a", 1), ("node-y", 1)]);
    let cluster = Cluster::new(nodes, pods);
    let w = workload(
        "default",
        "foo",
        vec![hard(ZONE_KEY, 1), hard(HOSTNAME_KEY, 1)],
    );
    assert_eq!(fits(&cluster, &w), ["node-b"]);
}

#[test]
fn filter_min_domains_unmet_takes_the_minimum_as_zero() {
    // zones 2/1, maxSkew 2, minDomains 3 (semantics vectors): with the global minimum 0, zone1
    // (2 + 1 - 0 = 3) refuses, zone2 (1 + 1 - 0 = 2) accepts.
    let nodes = vec![node("a", "z1"), node("b", "z2")];
    let pods = pods_on("default", "foo", &[("a", 2), ("b", 1)]);
    let mut c = hard(ZONE_KEY, 2);
    c.min_domains = Some(3);
    let cluster = Cluster::new(nodes, pods);
    assert_eq!(fits(&cluster, &workload("default", "foo", vec![c])), ["b"]);
    // Without minDomains the minimum is 1: both fit.
    let w = workload("default", "foo", vec![hard(ZONE_KEY, 2)]);
    assert_eq!(fits(&cluster, &w), ["a", "b"]);
}

// ---- The scheduler's score (kube-scheduler podtopologyspread/scoring_test.go
// TestPodTopologySpreadScore, TestPreScoreStateEmptyNodes) ----
//
// Upstream hands Score the nodes that passed Filter ("failedNodes" did not); here a failed node
// is one without room, which still holds its pods for the counts. The scores are after
// NormalizeScore (100 best), in node order.

/// node-a 4, node-b 2, node-x 1, node-y 3.
fn spread_4_2_1_3() -> Vec<Pod> {
    pods_on(
        "default",
        "foo",
        &[("node-a", 4), ("node-b", 2), ("node-x", 1), ("node-y", 3)],
    )
}

/// The scores (by node name) of the nodes that would take a new pod of `w` are `want`.
fn assert_scores(nodes: Vec<Node>, pods: Vec<Pod>, w: &Workload, want: &[(&str, i64)]) {
    assert_eq!(scores(&Cluster::new(nodes, pods), w), named(want));
}

/// node-a 4, node-b 2, node-x 1, node-y 3 (zone1 {a, b}, zone2 {x, y}), node-y no candidate.
fn spread_4_2_1_3_node_y_failed() -> (Vec<Node>, Vec<Pod>) {
    let mut nodes = four_nodes();
    fail(&mut nodes, "node-y", 3);
    (nodes, spread_4_2_1_3())
}

/// PodTopologySpread's scores of the nodes that would take a new pod of `w`, by name.
fn scores(cluster: &Cluster, w: &Workload) -> Vec<(String, i64)> {
    template_scores(cluster, w, true)
        .iter()
        .map(|s| (cluster.nodes()[s.node].name.clone(), s.normalized))
        .collect()
}

fn named(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(n, s)| (n.to_string(), *s)).collect()
}

/// `names` as nodes of one zone (only their hostnames matter).
fn hosts(names: &[&str]) -> Vec<Node> {
    names.iter().map(|n| node(n, "zone1")).collect()
}

/// Leaves `node` no room for another pod: upstream's "failedNodes".
fn fail(nodes: &mut [Node], name: &str, pods: i64) {
    let n = nodes.iter_mut().find(|n| n.name == name).unwrap();
    n.allocatable.pods = pods;
}

fn soft(key: &str, max_skew: i32) -> Workload {
    workload("default", "foo", vec![constraint(key, max_skew, "foo")])
}

/// Soft zone maxSkew 1 and soft hostname maxSkew `host_skew`.
fn zone_and_host(host_skew: i32) -> Workload {
    let constraints = vec![
        constraint(ZONE_KEY, 1, "foo"),
        constraint(HOSTNAME_KEY, host_skew, "foo"),
    ];
    workload("default", "foo", constraints)
}

#[test]
fn score_the_issues_example_ties_after_rounding() {
    // Zones z0 {n0: 2}, z1 {n0: 3, n1: 1}; soft zone maxSkew 1, soft hostname maxSkew 2; the
    // replacement of a pod of z1-n0. z0-n0 = 2 ln4 + 2 ln5 + 1 = 6.99 and z1-n1 = 3 ln4 + ln5 + 1
    // = 6.77 both round to 7, z1-n0 = 8.38 to 8: z0-n0 and z1-n1 tie, other plugins decide.
    let (nodes, pods) = zones_of_hosts("foo", &[("z0", &[2]), ("z1", &[3, 1])]);
    let w = zone_and_host(2);
    let cluster = Cluster::new(nodes, pods);
    let evicted = (cluster.pods().iter())
        .position(|p| p.node_name.as_deref() == Some("z1-n0"))
        .unwrap();
    let got: Vec<(Option<i64>, i64)> = replacement_scores(&cluster, &w, evicted, true)
        .iter()
        .map(|s| (s.rounded, s.normalized))
        .collect();
    assert_eq!(got, [(Some(7), 100), (Some(8), 87), (Some(7), 100)]);
    assert_eq!(candidate_nodes(&cluster, &w, evicted, true), [0, 2]);
}

#[test]
fn score_no_pods_or_the_same_count_everywhere_ties_every_node() {
    // "one constraint on node, no existing pods", "..., all nodes have the same number of
    // matching pods".
    let w = soft(HOSTNAME_KEY, 1);
    let both = [("node-a", 100), ("node-b", 100)];
    assert_scores(hosts(&["node-a", "node-b"]), vec![], &w, &both);
    let pods = pods_on("default", "foo", &[("node-a", 1), ("node-b", 1)]);
    assert_scores(hosts(&["node-a", "node-b"]), pods, &w, &both);
}

#[test]
fn score_is_rounded_per_node_before_normalizing() {
    // "one constraint on node, all 4 nodes are candidates": 2/1/0/3 over 4 nodes (upstream's
    // node-c and node-d are node-x and node-y here), weight ln 6: 3.58 -> 4, 1.79 -> 2, 0,
    // 5.38 -> 5; normalized 100 (5 + 0 - s) / 5.
    let (nodes, pods) = (four_nodes(), spread_2_1_0_3());
    assert_scores(
        nodes.clone(),
        pods.clone(),
        &soft(HOSTNAME_KEY, 1),
        &[
            ("node-a", 20),
            ("node-b", 60),
            ("node-x", 100),
            ("node-y", 0),
        ],
    );
    let cluster = Cluster::new(nodes, pods);
    let rounded: Vec<Option<i64>> = template_scores(&cluster, &soft(HOSTNAME_KEY, 1), true)
        .iter()
        .map(|s| s.rounded)
        .collect();
    assert_eq!(rounded, [Some(4), Some(2), Some(0), Some(5)]);
}

#[test]
fn score_adds_max_skew_minus_one_to_every_node() {
    // "..., maxSkew=2": the same 2/1/0/3 plus 1 each: 5, 3, 1, 6 -> 33, 66, 100, 16.
    let (nodes, pods) = (four_nodes(), spread_2_1_0_3());
    assert_scores(
        nodes.clone(),
        pods,
        &soft(HOSTNAME_KEY, 2),
        &[
            ("node-a", 33),
            ("node-b", 66),
            ("node-x", 100),
            ("node-y", 16),
        ],
    );
    // "..., maxSkew=3": 4/3/2/1 -> 44, 66, 77, 100.
    let pods = pods_on(
        "default",
        "foo",
        &[("node-a", 4), ("node-b", 3), ("node-x", 2), ("node-y", 1)],
    );
    assert_scores(
        nodes,
        pods,
        &soft(HOSTNAME_KEY, 3),
        &[
            ("node-a", 44),
            ("node-b", 66),
            ("node-x", 77),
            ("node-y", 100),
        ],
    );
}

#[test]
fn score_hostname_size_is_the_nodes_that_passed_the_filters() {
    // "one constraint on node, 3 out of 4 nodes are candidates": 4/2/1/~3~, weight ln(3 + 2).
    let (nodes, pods) = spread_4_2_1_3_node_y_failed();
    assert_scores(
        nodes,
        pods,
        &soft(HOSTNAME_KEY, 1),
        &[("node-a", 33), ("node-b", 83), ("node-x", 100)],
    );
}

#[test]
fn score_ignores_a_node_lacking_a_soft_key() {
    // "..., one node doesn't match topology key": 4/?2?/1/~3~. node-b is ignored (0) and not
    // counted in the size: weight ln(2 + 2); 5.55 -> 6, 1.39 -> 1.
    let mut nodes = four_nodes();
    nodes[1].labels.remove(HOSTNAME_KEY);
    nodes[1].labels.insert("n".into(), "node-b".into());
    fail(&mut nodes, "node-y", 3);
    let pods = spread_4_2_1_3();
    assert_scores(
        nodes.clone(),
        pods.clone(),
        &soft(HOSTNAME_KEY, 1),
        &[("node-a", 16), ("node-b", 0), ("node-x", 100)],
    );
    let cluster = Cluster::new(nodes, pods);
    assert_eq!(
        template_scores(&cluster, &soft(HOSTNAME_KEY, 1), true)[1].rounded,
        None
    );
}

#[test]
fn score_key_size_counts_only_the_scored_nodes_domains() {
    // TestPreScoreStateEmptyNodes "node-x doesn't have label zone": node-x is ignored, the
    // zone weight is ln(1 + 2) (zone1 only), the hostname one ln(2 + 2). With a:1, x:3:
    // a = ln3 + ln4 = 2.48 -> 2, b = ln3 = 1.10 -> 1.
    let mut nodes = vec![
        node("node-a", "zone1"),
        node("node-b", "zone1"),
        node("node-x", "zone2"),
    ];
    nodes[2].labels.remove(ZONE_KEY);
    let pods = pods_on("default", "foo", &[("node-a", 1), ("node-x", 3)]);
    let w = zone_and_host(1);
    assert_scores(
        nodes,
        pods,
        &w,
        &[("node-a", 50), ("node-b", 100), ("node-x", 0)],
    );
}

#[test]
fn score_counts_the_pods_of_failed_nodes_in_their_domain() {
    // "one constraint on zone, 3 out of 4 nodes are candidates": zone1 6, zone2 4 (node-y's 3
    // count though it is no candidate): 8.32 -> 8, 5.55 -> 6.
    let (nodes, pods) = spread_4_2_1_3_node_y_failed();
    assert_scores(
        nodes,
        pods,
        &soft(ZONE_KEY, 1),
        &[("node-a", 75), ("node-b", 75), ("node-x", 100)],
    );
}

#[test]
fn score_sums_the_soft_constraints() {
    // "two Constraints on zone and node, 2 out of 4 nodes are candidates": 2/~1~/2/~4~; a =
    // 3 ln4 + 2 ln4 -> 7, x = 6 ln4 + 2 ln4 -> 11.
    let mut nodes = four_nodes();
    fail(&mut nodes, "node-b", 1);
    fail(&mut nodes, "node-y", 4);
    let pods = pods_on(
        "default",
        "foo",
        &[("node-a", 2), ("node-b", 1), ("node-x", 2), ("node-y", 4)],
    );
    let w = zone_and_host(1);
    assert_scores(nodes, pods, &w, &[("node-a", 100), ("node-x", 63)]);
}

#[test]
fn score_excludes_terminating_pods_and_other_namespaces() {
    // "terminating Pods should be excluded".
    let mut pods = pods_on("default", "foo", &[("node-a", 1), ("node-b", 1)]);
    pods[0].terminating = true;
    let w = soft(HOSTNAME_KEY, 1);
    let nodes = hosts(&["node-a", "node-b"]);
    assert_scores(nodes.clone(), pods, &w, &[("node-a", 100), ("node-b", 0)]);
    // "existing pods in a different namespace do not count".
    let mut pods = pods_on("default", "foo", &[("node-a", 2), ("node-b", 2)]);
    pods[0].namespace = "ns1".into();
    assert_scores(nodes, pods, &w, &[("node-a", 100), ("node-b", 33)]);
}

#[test]
fn score_min_domains_has_no_effect_when_schedule_anyway() {
    // "minDomains has no effect when ScheduleAnyway": key "node" (not the hostname key, but one
    // domain per node), maxSkew 2, minDomains 10, 2/2/1: 4.22 -> 4, 2.61 -> 3.
    let mut nodes = hosts(&["node-a", "node-b", "node-c"]);
    for n in &mut nodes {
        let name = n.name.clone();
        n.labels.insert("node".into(), name);
    }
    let pods = pods_on(
        "default",
        "foo",
        &[("node-a", 2), ("node-b", 2), ("node-c", 1)],
    );
    let mut c = constraint("node", 2, "foo");
    c.min_domains = Some(10);
    assert_scores(
        nodes,
        pods,
        &workload("default", "foo", vec![c]),
        &[("node-a", 75), ("node-b", 75), ("node-c", 100)],
    );
}

// ---- Each class counted by its own keys (filtering.go PreFilter, scoring.go
// requireAllTopologies) ----

#[test]
fn a_soft_key_never_drops_a_node_from_a_hard_count() {
    // node-a has no rack: the ScheduleAnyway rack constraint ignores it, the DoNotSchedule zone
    // constraint counts it.
    let mut nodes = vec![node("node-a", "zone1"), node("node-b", "zone2")];
    nodes[1].labels.insert("rack".into(), "r1".into());
    let pods = pods_on("default", "foo", &[("node-a", 2)]);
    let w = workload(
        "default",
        "foo",
        vec![hard(ZONE_KEY, 1), constraint("rack", 1, "foo")],
    );
    let m = measure_one(nodes, pods, &w);
    assert_eq!(
        m.constraints[0].domains.to_map(),
        domains(&[("zone1", 2), ("zone2", 0)])
    );
    assert_eq!(m.constraints[0].skew, 2);
    assert_eq!(m.constraints[1].domains.to_map(), domains(&[("r1", 0)]));
}

#[test]
fn a_hard_key_never_drops_a_node_from_a_soft_count() {
    let mut nodes = vec![node("node-a", "zone1"), node("node-b", "zone2")];
    nodes[1].labels.insert("rack".into(), "r1".into());
    let pods = pods_on("default", "foo", &[("node-a", 2)]);
    let w = workload(
        "default",
        "foo",
        vec![constraint(ZONE_KEY, 1, "foo"), hard("rack", 1)],
    );
    let m = measure_one(nodes, pods, &w);
    assert_eq!(
        m.constraints[0].domains.to_map(),
        domains(&[("zone1", 2), ("zone2", 0)])
    );
}

// ---- Planning vectors (descheduler topologyspreadconstraint_test.go) ----

#[test]
fn moves_the_pod_that_tolerates_the_tainted_node() {
    // "2 domains, sizes [2,0], maxSkew=1, move 1 pod since pod tolerates the node with taint":
    // pod-0 tolerates n2's taint, pod-1 is pinned to zoneA; only pod-0 can go.
    let mut nodes = vec![node("n1", "zoneA"), node("n2", "zoneB")];
    nodes[1].taints.push(Taint {
        key: "taint-test".into(),
        value: "test".into(),
        effect: TaintEffect::NoSchedule,
    });
    let mut pods = pods_on("default", "foo", &[("n1", 2)]);
    pods[0].placement.tolerations.push(Toleration {
        key: Some("taint-test".into()),
        operator: TolerationOperator::Equal,
        value: "test".into(),
        effect: Some(TaintEffect::NoSchedule),
    });
    pods[1].placement.node_selector = labels(&[(ZONE_KEY, "zoneA")]);
    let expected = pods[0].name.clone();
    let w = workload("default", "foo", vec![constraint(ZONE_KEY, 1, "foo")]);
    let cluster = Cluster::new(nodes.clone(), pods.clone());
    let plan = plan_all(&cluster, &w).unwrap();
    assert_eq!(plan.moves.len(), 1);
    assert_eq!(plan.moves[0].pod, expected);
    // "..., move 0 pods since pod does not tolerate the tainted node".
    pods[0].placement.tolerations.clear();
    let cluster = Cluster::new(nodes, pods);
    assert_eq!(plan_all(&cluster, &w), Err(Obstacle::NoCapacity));
}

#[test]
fn soft_zone_and_hard_hostname_need_one_eviction() {
    // "Multiple constraints (6 nodes/2 zones, 4 pods)" (descheduler #564): zone ScheduleAnyway,
    // hostname DoNotSchedule, pods on n1 n2 n3 (zoneA) and n4 (zoneB): one eviction, toward
    // an empty node of zoneB.
    let nodes: Vec<Node> = (1..=6)
        .map(|i| node(&format!("n{i}"), if i <= 3 { "zoneA" } else { "zoneB" }))
        .collect();
    let pods = pods_on(
        "default",
        "foo",
        &[("n1", 1), ("n2", 1), ("n3", 1), ("n4", 1)],
    );
    let w = workload(
        "default",
        "foo",
        vec![constraint(ZONE_KEY, 1, "foo"), hard(HOSTNAME_KEY, 1)],
    );
    let cluster = Cluster::new(nodes, pods);
    let plan = plan_all(&cluster, &w).unwrap();
    assert_eq!(plan.moves_needed, 1);
    let m = &plan.moves[0];
    assert!(["n5", "n6"].contains(&m.to_node.as_str()), "{m:?}");
    assert_eq!(m.allowed_domains[ZONE_KEY], ["zoneB"]);
}
