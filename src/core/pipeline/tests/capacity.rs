//! Zones that come and go: expected domains and room asked of the autoscaler before a move, one
//! workload over zones a and b while zone c (expected) has no node.

use super::*;
use crate::api::{CapacityVia, DomainSource, ExpectedDomainsStatus};
use crate::core::capacity::{PLACEHOLDER_LABEL, provisional_target};

/// `web` with 3 replicas: a-1 holds 2 pods, b-1 one; zone c has no node.
fn web3() -> WorkloadObject {
    let d: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": NS, "generation": 1,
                     "labels": {"app": "petclinic"}},
        "spec": {"replicas": 3, "selector": web_selector(),
                 "template": {"metadata": {"labels": {"app": "petclinic", "tier": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "i",
                                       "resources": {"requests": {"cpu": "100m"}}}]}}},
        "status": {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3,
                   "readyReplicas": 3, "availableReplicas": 3}
    }))
    .unwrap();
    WorkloadObject::from_object(&d).unwrap()
}

fn pods() -> Vec<Pod> {
    vec![
        pod("web-1", "a-1"),
        pod("web-2", "a-1"),
        pod("web-3", "b-1"),
    ]
}

fn without_c() -> Cluster {
    Cluster::new(vec![node("a-1", "a"), node("b-1", "b")], pods())
}

/// The autoscaler's node in zone c has come, with one of skewguard's placeholder pods on it.
fn with_c() -> Cluster {
    let mut placeholder = fixtures::pod("room-0", NS, "x", "c-1");
    placeholder.labels = labels(&[(PLACEHOLDER_LABEL, "room")]);
    placeholder.placeholder = true;
    placeholder.requests = crate::core::topology::Resources::new(64_000, 256 << 30, 1);
    let mut all = pods();
    all.push(placeholder);
    Cluster::new(
        vec![node("a-1", "a"), node("b-1", "b"), node("c-1", "c")],
        all,
    )
}

static ABC: std::sync::LazyLock<Expected> = std::sync::LazyLock::new(|| Expected {
    keys: vec![ExpectedDomainsStatus {
        topology_key: ZONE_KEY.into(),
        domains: vec!["a".into(), "b".into(), "c".into()],
        source: DomainSource::NodePools,
    }],
    warnings: vec![],
});

fn facts(via: CapacityVia) -> Facts<'static> {
    Facts {
        expected: &ABC,
        capacity_via: via,
        injection: None,
        ..GOVERNING
    }
}

fn provisioning(on: bool) -> HAPolicy {
    policy(
        json!({"rebalance": {"stabilizationSeconds": 0, "cooldownSeconds": 0,
                                 "provisioning": {"enabled": on, "timeoutSeconds": 600}}}),
    )
}

fn at(secs: i64) -> Timestamp {
    now()
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .unwrap()
}

fn step(
    p: &HAPolicy,
    cluster: &Cluster,
    memory: &WorkloadMemory,
    facts: &Facts<'_>,
    when: Timestamp,
) -> Assessment {
    assess(
        p,
        &web3(),
        cluster,
        memory,
        facts,
        &Settings::default(),
        when,
    )
}

#[test]
fn a_zone_without_nodes_is_a_domain_with_no_pods() {
    let a = step(
        &provisioning(false),
        &without_c(),
        &WorkloadMemory::default(),
        &facts(CapacityVia::PlaceholderPods),
        now(),
    );
    let zone = &a.measurement.constraints[0];
    assert_eq!(zone.skew, 1, "as the scheduler counts it: a 2, b 1");
    let expected = zone.expected.as_ref().unwrap();
    assert_eq!(
        (expected.skew, &expected.missing[..]),
        (2, &["c".to_string()][..])
    );
    assert!(!a.measurement.within_policy(), "2/1/0 is unbalanced");
    // Without provisioning: reported, nothing created, nothing evicted.
    assert_eq!(
        (a.decision.state, a.decision.reason),
        (RebalanceState::Blocked, "DomainMissing")
    );
    assert!(a.writes.is_empty(), "{:?}", a.writes);
    let c = conclude(a, vec![], now());
    let status = c.outcome.status();
    assert!(!status.balanced);
    let entry = &status.constraints[0];
    assert_eq!((entry.skew, entry.expected_skew), (1, Some(2)));
    assert_eq!(entry.missing_domains, ["c"]);
    assert_eq!(entry.domains.as_ref().unwrap()["c"], 0);
    let metrics = WorkloadMetrics::from(&c.outcome);
    assert_eq!(metrics.constraints[0].expected_skew, Some(2));
    assert!(
        metrics.constraints[0]
            .domains
            .contains(&("c".to_string(), 0))
    );
}

#[test]
fn room_is_asked_for_then_used_in_one_step_with_placeholders() {
    let p = provisioning(true);
    let f = facts(CapacityVia::PlaceholderPods);
    let a = step(&p, &without_c(), &WorkloadMemory::default(), &f, now());
    assert_eq!(
        (a.decision.state, a.decision.reason),
        (RebalanceState::Provisioning, "AwaitingCapacity")
    );
    let [Write::RequestCapacity { request, objects }] = a.writes.as_slice() else {
        panic!("one request and no eviction: {:?}", a.writes);
    };
    assert_eq!(
        (request.domain.as_str(), request.pods),
        ("c", 1),
        "never more than the moves"
    );
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0]["kind"], "Pod");
    let c = conclude(a, vec![WriteResult::Done], now());
    assert_eq!(
        c.actions,
        [(WriteKind::RequestCapacity, ActionResult::Success)]
    );
    assert!(
        c.notices
            .iter()
            .any(|n| n.reason == EventReason::CapacityRequested)
    );
    let memory = c.memory;
    assert!(memory.decision.capacity.is_some());
    // Still no node in c: wait, write nothing.
    let a = step(&p, &without_c(), &memory, &f, at(60));
    assert!(a.writes.is_empty(), "{:?}", a.writes);
    assert_eq!(a.decision.state, RebalanceState::Provisioning);
    // The node came: the placeholder makes way and the pod is evicted toward c, in that order.
    let a = step(&p, &with_c(), &memory, &f, at(90));
    match a.writes.as_slice() {
        [Write::ReleaseCapacity(r), Write::Evict(m)] => {
            assert_eq!(r.domain, "c");
            assert_eq!((m.to_domain.as_str(), m.to_node.as_str()), ("c", "c-1"));
        }
        other => panic!("release then evict: {other:?}"),
    }
    assert!(a.memory.decision.capacity.is_none());
    assert_eq!(a.decision.state, RebalanceState::Evicting);
}

#[test]
fn a_request_that_is_not_met_in_time_is_withdrawn_and_blocks() {
    let p = provisioning(true);
    let f = facts(CapacityVia::PlaceholderPods);
    let a = step(&p, &without_c(), &WorkloadMemory::default(), &f, now());
    let memory = conclude(a, vec![WriteResult::Done], now()).memory;
    let a = step(&p, &without_c(), &memory, &f, at(601));
    assert!(
        matches!(a.writes.as_slice(), [Write::ReleaseCapacity(_)]),
        "{:?}",
        a.writes
    );
    assert_eq!(
        (a.decision.state, a.decision.reason),
        (RebalanceState::Blocked, "ProvisioningTimedOut")
    );
    let memory = conclude(a, vec![WriteResult::Done], at(601)).memory;
    assert!(memory.decision.capacity.is_none());
    // Not asked again before as long again.
    let a = step(&p, &without_c(), &memory, &f, at(900));
    assert!(a.writes.is_empty());
    assert_eq!(a.decision.reason, "ProvisioningTimedOut");
    let a = step(&p, &without_c(), &memory, &f, at(1202));
    assert!(matches!(
        a.writes.as_slice(),
        [Write::RequestCapacity { .. }]
    ));
}

#[test]
fn a_buffer_stays_until_the_move_is_judged() {
    let p = provisioning(true);
    let f = facts(CapacityVia::CapacityBuffer);
    let a = step(&p, &without_c(), &WorkloadMemory::default(), &f, now());
    let [Write::RequestCapacity { objects, .. }] = a.writes.as_slice() else {
        panic!("{:?}", a.writes);
    };
    let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(kinds, ["PodTemplate", "CapacityBuffer"]);
    let memory = conclude(a, vec![WriteResult::Done], now()).memory;
    // The buffer's room is there (no placeholder pods): evict, keep the buffer.
    let room = Cluster::new(
        vec![node("a-1", "a"), node("b-1", "b"), node("c-1", "c")],
        pods(),
    );
    let a = step(&p, &room, &memory, &f, at(30));
    assert!(
        matches!(a.writes.as_slice(), [Write::Evict(_)]),
        "{:?}",
        a.writes
    );
    assert!(a.memory.decision.capacity.as_ref().is_some_and(|r| r.used));
    let memory = conclude(a, vec![WriteResult::Done], at(30)).memory;
    let evicted = memory.decision.in_flight[0].pod.clone();
    // The replacement runs in c: the move is judged, then the buffer goes.
    let mut landed: Vec<Pod> = pods().into_iter().filter(|p| p.name != evicted).collect();
    landed.push(pod("web-4", "c-1"));
    let after = Cluster::new(
        vec![node("a-1", "a"), node("b-1", "b"), node("c-1", "c")],
        landed,
    );
    let a = step(&p, &after, &memory, &f, at(45));
    assert_eq!(a.decision.moves_succeeded, 1);
    assert!(
        matches!(a.writes.as_slice(), [Write::ReleaseCapacity(_)]),
        "{:?}",
        a.writes
    );
    assert!(a.memory.decision.capacity.is_none());
}

#[test]
fn dry_run_asks_for_nothing_and_paused_gives_back_what_was_asked() {
    let p = provisioning(true);
    let f = facts(CapacityVia::PlaceholderPods);
    let a = assess(
        &p,
        &web3(),
        &without_c(),
        &WorkloadMemory::default(),
        &f,
        &Settings { dry_run: true },
        now(),
    );
    assert!(a.writes.is_empty());
    assert!(a.memory.decision.capacity.is_none());
    assert!(
        a.notes
            .iter()
            .any(|n| n.contains("would ask the autoscaler for room for 1 pod(s) in c")),
        "{:?}",
        a.notes
    );
    let asked = step(&p, &without_c(), &WorkloadMemory::default(), &f, now());
    let memory = conclude(asked, vec![WriteResult::Done], now()).memory;
    let mut paused = p.clone();
    paused.spec.paused = true;
    let a = step(&paused, &without_c(), &memory, &f, at(10));
    assert!(
        matches!(a.writes.as_slice(), [Write::ReleaseCapacity(_)]),
        "{:?}",
        a.writes
    );
    assert_eq!(a.decision.reason, "Paused");
}

#[test]
fn a_failed_request_is_made_again_and_a_failed_withdrawal_is_kept() {
    let p = provisioning(true);
    let f = facts(CapacityVia::PlaceholderPods);
    let failure = |kind| WriteError {
        kind,
        target: "x".into(),
        source: kube::Error::LinesCodecMaxLineLengthExceeded,
    };
    let a = step(&p, &without_c(), &WorkloadMemory::default(), &f, now());
    let c = conclude(
        a,
        vec![WriteResult::Failed(failure(WriteKind::RequestCapacity))],
        now(),
    );
    assert!(c.memory.decision.capacity.is_none());
    assert_eq!(c.errors, [ErrorCategory::Capacity]);
    let asked = step(&p, &without_c(), &WorkloadMemory::default(), &f, now());
    let memory = conclude(asked, vec![WriteResult::Done], now()).memory;
    let a = step(&p, &with_c(), &memory, &f, at(30));
    // Release fails: the eviction after it is not tried, and the request is remembered.
    let c = conclude(
        a,
        vec![
            WriteResult::Failed(failure(WriteKind::ReleaseCapacity)),
            WriteResult::NotTried,
        ],
        at(30),
    );
    assert!(c.memory.decision.capacity.is_some());
    assert!(c.memory.decision.in_flight.is_empty());
}

#[test]
fn provisional_nodes_are_named_by_their_key_and_domain() {
    let a = step(
        &provisioning(true),
        &without_c(),
        &WorkloadMemory::default(),
        &facts(CapacityVia::PlaceholderPods),
        now(),
    );
    let Ok(plan) = &a.plan else {
        panic!("{:?}", a.plan)
    };
    assert_eq!(
        provisional_target(&plan.moves[0].to_node),
        Some((ZONE_KEY, "c"))
    );
    assert_eq!(provisional_target("c-1"), None);
}
