//! Scale-in order (pod-deletion-cost) through the pipeline, and whose pods are moved, annotated
//! and reported (owned pods only).

use super::*;

fn keeping_scale_in() -> HAPolicy {
    policy(json!({"scaleIn": {"deletionCost": true}}))
}

/// `web` under `policy` over `cluster`, governed, nothing remembered, default settings.
fn assess_on(policy: &HAPolicy, cluster: &Cluster) -> Assessment {
    assess(
        policy,
        &web(web_selector()),
        cluster,
        &WorkloadMemory::default(),
        &GOVERNING,
        &Settings::default(),
        now(),
    )
}

fn cost_writes_of(a: &Assessment) -> Vec<(String, Option<i32>)> {
    a.writes
        .iter()
        .filter_map(|w| match w {
            Write::DeletionCost { pod, cost } => Some((pod.clone(), *cost)),
            _ => None,
        })
        .collect()
}

/// `web` with 4 replicas, two in a and two in c: balanced, nothing to move.
fn balanced_four() -> (WorkloadObject, Cluster) {
    let pods = vec![
        pod("web-1", "a-1"),
        pod("web-2", "a-1"),
        pod("web-3", "c-1"),
        pod("web-4", "c-1"),
    ];
    (
        web_of(4, web_selector()),
        Cluster::new(vec![node("a-1", "a"), node("c-1", "c")], pods),
    )
}

fn assess_four(policy: &HAPolicy, cluster: &Cluster) -> Assessment {
    assess(
        policy,
        &balanced_four().0,
        cluster,
        &WorkloadMemory::default(),
        &GOVERNING,
        &Settings::default(),
        now(),
    )
}

#[test]
fn a_balanced_deployment_gets_the_costs_that_keep_its_scale_in_balanced() {
    let (_, cluster) = balanced_four();
    let a = assess_four(&keeping_scale_in(), &cluster);
    // Two per zone: one of each zone goes first (-1000), the other is the last of its domain
    // (0, which an unannotated pod already counts as).
    let costs = cost_writes_of(&a);
    assert_eq!(costs.len(), 2, "{costs:?}");
    assert!(costs.iter().all(|(_, c)| *c == Some(-1000)), "{costs:?}");
    assert!(a.writes.iter().all(|w| w.lane() == Lane::DeletionCost));
    let status = a.scale_in.clone().unwrap();
    assert_eq!((status.order, status.pending), (ScaleInOrder::Updating, 2));
    // One write waits for its slot: still Updating, one pending.
    let c = conclude(
        a,
        vec![
            WriteResult::Done,
            WriteResult::Deferred(std::time::Duration::from_millis(50)),
        ],
        now(),
    );
    let status = c.outcome.scale_in.clone().unwrap();
    assert_eq!((status.order, status.pending), (ScaleInOrder::Updating, 1));
    assert!(
        c.actions
            .contains(&(WriteKind::DeletionCost, ActionResult::Success))
    );
    assert_eq!(c.outcome.status().scale_in, Some(status));
}

/// While pods move, each move changes the ranks: no cost is written until the moves are done
/// (the API server's time goes to the moves and their judging); the status says they are due.
#[test]
fn costs_wait_while_pods_move() {
    let a = assess_web(&keeping_scale_in(), GOVERNING, false);
    assert!(
        matches!(a.writes.as_slice(), [Write::Evict(_)]),
        "{:?}",
        a.writes
    );
    let status = a.scale_in.clone().unwrap();
    assert_eq!((status.order, status.pending), (ScaleInOrder::Updating, 1));
    // The next step, its move in flight (the replacement not Ready yet): still none.
    let c = conclude(a, vec![WriteResult::Done], now());
    let mut cluster: Vec<Pod> = piled().pods().iter().map(|p| (**p).clone()).collect();
    cluster.retain(|p| p.name != "web-1" && p.name != "web-2");
    cluster.push(pod("web-2", "c-1"));
    let a = assess(
        &keeping_scale_in(),
        &web(web_selector()),
        &Cluster::new(vec![node("a-1", "a"), node("c-1", "c")], cluster),
        &c.memory,
        &GOVERNING,
        &Settings::default(),
        now(),
    );
    assert_eq!(a.memory.decision.in_flight.len(), 1);
    assert!(cost_writes_of(&a).is_empty(), "{:?}", a.writes);
}

/// `web`'s two pods in zone c, and `web-canary`'s three there too: the canary's pods carry
/// `web`'s labels (an allowed overlap), but their ReplicaSet is the canary's.
fn piled_with_canary() -> Cluster {
    let canary = |name: &str| Pod {
        owner: Some(crate::core::topology::PodOwner {
            kind: crate::api::WorkloadKind::Deployment,
            name: "web-canary".into(),
        }),
        ..pod(name, "c-1")
    };
    Cluster::new(
        vec![node("a-1", "a"), node("c-1", "c")],
        vec![
            canary("canary-1"),
            canary("canary-2"),
            canary("canary-3"),
            pod("web-1", "c-1"),
            pod("web-2", "c-1"),
        ],
    )
}

#[test]
fn only_the_workloads_own_pods_are_moved_annotated_or_reported_though_all_are_counted() {
    let cluster = piled_with_canary();
    let a = assess_on(&keeping_scale_in(), &cluster);
    // Measured as the scheduler does: the constraint's selector matches all five pods.
    let zone = &a.measurement.constraints[0];
    assert_eq!(zone.skew, 5, "{zone:?}");
    // Reported as web's: its own two pods only.
    let own: Vec<&str> = (a.measurement.own_pods.iter())
        .map(|&i| cluster.pods()[i].name.as_str())
        .collect();
    assert_eq!(own, ["web-1", "web-2"]);
    // Moved: only web's.
    let evicted: Vec<&str> = (a.writes.iter())
        .filter_map(|w| match w {
            Write::Evict(m) => Some(m.pod.as_str()),
            _ => None,
        })
        .collect();
    assert!(!evicted.is_empty(), "{:?}", a.writes);
    assert!(evicted.iter().all(|p| p.starts_with("web-")), "{evicted:?}");
    // Annotated: only web's (costs wait while pods move, so with rebalancing off).
    let no_moves =
        policy(json!({"scaleIn": {"deletionCost": true}, "rebalance": {"strategy": "None"}}));
    let costs = cost_writes_of(&assess_on(&no_moves, &cluster));
    assert!(!costs.is_empty());
    assert!(
        costs.iter().all(|(p, _)| p.starts_with("web-")),
        "{costs:?}"
    );
}

#[test]
fn a_workload_owning_none_of_the_pods_its_selector_matches_moves_nothing() {
    // Only the canary's pods in the cluster: web's selector matches them, web owns none.
    let pods: Vec<Pod> = (piled_with_canary().pods().iter())
        .filter(|p| p.name.starts_with("canary"))
        .map(|p| (**p).clone())
        .collect();
    let cluster = Cluster::new(vec![node("a-1", "a"), node("c-1", "c")], pods);
    let a = assess_on(&keeping_scale_in(), &cluster);
    assert!(a.measurement.own_pods.is_empty());
    assert!(
        !a.writes
            .iter()
            .any(|w| matches!(w, Write::Evict(_) | Write::DeletionCost { .. })),
        "{:?}",
        a.writes
    );
}

#[test]
fn an_empty_selector_is_refused_with_a_clear_status() {
    let a = assess(
        &keeping_scale_in(),
        &web(json!({})),
        &piled(),
        &WorkloadMemory::default(),
        &GOVERNING,
        &Settings::default(),
        now(),
    );
    assert_eq!(a.decision.state, RebalanceState::Blocked);
    assert_eq!(
        a.decision.reason,
        crate::api::conditions::reason::INVALID_WORKLOAD
    );
    assert!(a.writes.is_empty());
    assert!(
        a.notes.iter().any(|n| n.contains("empty pod selector")),
        "{:?}",
        a.notes
    );
}

#[test]
fn costs_already_in_place_need_no_write() {
    let (_, mut cluster) = balanced_four();
    let a = assess_four(&keeping_scale_in(), &cluster);
    let costs = cost_writes_of(&a);
    assert!(!costs.is_empty());
    let mut pods: Vec<_> = cluster.pods().iter().map(|p| (**p).clone()).collect();
    for (pod, cost) in &costs {
        for p in pods.iter_mut().filter(|p| p.name == *pod) {
            p.deletion_cost = *cost;
            p.deletion_cost_ours = true;
        }
    }
    cluster = Cluster::new(vec![node("a-1", "a"), node("c-1", "c")], pods);
    let a = assess_four(&keeping_scale_in(), &cluster);
    assert!(cost_writes_of(&a).is_empty());
    assert_eq!(a.scale_in.unwrap().order, ScaleInOrder::Kept);
}

#[test]
fn turned_off_only_the_costs_skewguard_wrote_are_removed() {
    let mut ours = pod("web-1", "c-1");
    ours.deletion_cost = Some(-1000);
    ours.deletion_cost_ours = true;
    // Balanced (one pod per zone): nothing is evicted.
    let mut theirs = pod("web-2", "a-1");
    theirs.deletion_cost = Some(5);
    let cluster = Cluster::new(vec![node("a-1", "a"), node("c-1", "c")], vec![ours, theirs]);
    let a = assess_on(&policy(json!({})), &cluster);
    assert_eq!(cost_writes_of(&a), vec![("web-1".to_string(), None)]);
    assert_eq!(a.scale_in.unwrap().order, ScaleInOrder::Off);
}

/// A pod the step evicts gets no deletion-cost write: it is going, and a write after its
/// deletion would race it. Piled in c, `web-1` (the willing one, skewguard's -1000) is evicted;
/// its cost is neither written nor removed.
#[test]
fn a_pod_being_evicted_gets_no_cost_write() {
    let mut ours = pod("web-1", "c-1");
    ours.deletion_cost = Some(-1000);
    ours.deletion_cost_ours = true;
    let cluster = Cluster::new(
        vec![node("a-1", "a"), node("c-1", "c")],
        vec![ours, pod("web-2", "c-1")],
    );
    for policy in [policy(json!({})), keeping_scale_in()] {
        let a = assess_on(&policy, &cluster);
        let evicted = match a.writes.first() {
            Some(Write::Evict(m)) => m.pod.clone(),
            other => panic!("{other:?}"),
        };
        assert!(
            cost_writes_of(&a).iter().all(|(pod, _)| *pod != evicted),
            "{:?}",
            a.writes
        );
    }
}

#[test]
fn dry_run_and_paused_say_what_they_would_write_and_a_conflict_says_nothing() {
    let a = assess_web(&keeping_scale_in(), GOVERNING, true);
    assert!(cost_writes_of(&a).is_empty());
    assert!(
        a.notes
            .iter()
            .any(|n| n == "dry-run: would write the deletion cost of 1 pod(s)"),
        "{:?}",
        a.notes
    );
    assert_eq!(a.scale_in.unwrap().order, ScaleInOrder::Updating);
    let paused = policy(json!({"scaleIn": {"deletionCost": true}, "paused": true}));
    let a = assess_web(&paused, GOVERNING, false);
    assert!(cost_writes_of(&a).is_empty());
    assert!(a.notes.iter().any(|n| n.starts_with("paused: would write")));
    let lost = Facts {
        governing: false,
        ..GOVERNING
    };
    let a = assess_web(&keeping_scale_in(), lost, false);
    assert!(cost_writes_of(&a).is_empty() && a.scale_in.is_none());
}

#[test]
fn a_statefulset_scales_in_by_ordinal_and_gets_no_cost() {
    let s: k8s_openapi::api::apps::v1::StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": NS, "generation": 1},
        "spec": {"replicas": 2, "serviceName": "web", "selector": web_selector(),
                 "template": {"metadata": {"labels": {"app": "petclinic", "tier": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}}},
        "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
                   "readyReplicas": 2, "availableReplicas": 2, "currentReplicas": 2}
    }))
    .unwrap();
    let a = assess(
        &keeping_scale_in(),
        &WorkloadObject::from_object(&s).unwrap(),
        &piled(),
        &WorkloadMemory::default(),
        &GOVERNING,
        &Settings::default(),
        now(),
    );
    assert!(cost_writes_of(&a).is_empty());
    assert_eq!(a.scale_in.unwrap().order, ScaleInOrder::ByOrdinal);
}

#[test]
fn a_failed_cost_write_is_counted_and_the_order_stays_updating() {
    let a = assess_web(&keeping_scale_in(), GOVERNING, false);
    let n = a.writes.len();
    let mut results: Vec<WriteResult> = (1..n).map(|_| WriteResult::Done).collect();
    results.push(WriteResult::Failed(WriteError {
        kind: WriteKind::DeletionCost,
        target: "web-1".into(),
        source: kube::Error::Api(Box::new(
            kube::core::Status::failure("denied", "Forbidden").with_code(403),
        )),
    }));
    let c = conclude(a, results, now());
    assert!(c.errors.contains(&ErrorCategory::DeletionCost));
    assert_eq!(c.outcome.scale_in.unwrap().order, ScaleInOrder::Updating);
}

/// Piled in c and waiting out its stabilization, the workload's pods are about to move: their
/// costs wait (each move would change them) and the order says how many are pending. Nothing will
/// move it (strategy None): the costs are what keeps its scale-in spread, and are written.
#[test]
fn costs_wait_while_pods_are_about_to_move() {
    let cluster = Cluster::new(
        vec![node("a-1", "a"), node("c-1", "c")],
        vec![
            pod("web-1", "c-1"),
            pod("web-2", "c-1"),
            pod("web-3", "c-1"),
        ],
    );
    let stabilizing = policy(json!({"scaleIn": {"deletionCost": true},
        "rebalance": {"stabilizationSeconds": 300}}));
    let a = assess_on(&stabilizing, &cluster);
    assert_eq!(
        a.decision.state,
        RebalanceState::Waiting,
        "{:?}",
        a.decision
    );
    assert!(cost_writes_of(&a).is_empty(), "{:?}", a.writes);
    let order = a.scale_in.unwrap();
    let never_moved = policy(json!({"scaleIn": {"deletionCost": true},
        "rebalance": {"strategy": "None"}}));
    let written = cost_writes_of(&assess_on(&never_moved, &cluster)).len();
    assert!(written > 0);
    assert_eq!(
        (order.order, order.pending),
        (ScaleInOrder::Updating, written as i32)
    );
}
