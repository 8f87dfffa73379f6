//! The decision logic as a state machine: each test walks a workload through reconciles.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::core::topology::Measurement;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

fn a_move(pod: &str) -> Move {
    Move {
        pod: pod.to_string(),
        pod_uid: format!("{pod}-uid"),
        from_node: "c-1".into(),
        to_node: "a-1".into(),
        topology_key: "zone".into(),
        from_domain: "c".into(),
        to_domain: "a".into(),
        ..Default::default()
    }
}

fn plan(pods: &[&str]) -> Result<Plan, Obstacle> {
    Ok(Plan {
        moves: pods.iter().map(|p| a_move(p)).collect(),
        moves_needed: pods.len(),
        shortfall: None,
    })
}

fn measurement(a: i32, c: i32) -> Measurement {
    measurement_in(&[("a", a), ("c", c)])
}

fn measurement_in(zones: &[(&str, i32)]) -> Measurement {
    // Measured through the core, so the test uses the real counting.
    let cluster_domains: BTreeMap<String, i32> =
        zones.iter().map(|(z, n)| (z.to_string(), *n)).collect();
    let nodes = zones
        .iter()
        .map(|(z, _)| node_in(&format!("{z}-1"), z))
        .collect();
    let mut pods = Vec::new();
    for (domain, n) in &cluster_domains {
        for i in 0..*n {
            pods.push(crate::core::topology::Pod {
                name: format!("{domain}-{i}"),
                namespace: "ns".into(),
                labels: BTreeMap::from([("app".into(), "web".into())]),
                node_name: Some(format!("{domain}-1")),
                ..Default::default()
            });
        }
    }
    let selector: kube::core::Selector = [("app", "web")].into_iter().collect();
    let workload = crate::core::topology::Workload {
        namespace: "ns".into(),
        name: "web".into(),
        pod_selector: selector.clone(),
        owner: None,
        template: Default::default(),
        constraints: vec![crate::core::topology::SpreadConstraint::new(
            "zone", 1, selector,
        )],
    };
    crate::core::topology::measure(&crate::core::topology::Cluster::new(nodes, pods), &workload)
}

fn node_in(name: &str, zone: &str) -> crate::core::topology::Node {
    crate::core::topology::Node {
        name: name.into(),
        labels: BTreeMap::from([("zone".into(), zone.into())]),
        ready: true,
        allocatable: crate::core::topology::Resources::new(1000, 1 << 30, 10),
        ..Default::default()
    }
}

/// A workload of two replicas; by default settled, skewed (both in zone c), with a one-move plan.
struct World {
    spec: RebalanceSpec,
    paused: bool,
    conflict: bool,
    settled: bool,
    ready: i32,
    budget_exhausted: bool,
    measurement: Measurement,
    running: BTreeSet<String>,
    plan: Result<Plan, Obstacle>,
}

impl World {
    fn skewed() -> Self {
        Self {
            spec: RebalanceSpec::default(),
            paused: false,
            conflict: false,
            settled: true,
            ready: 2,
            budget_exhausted: false,
            measurement: measurement(0, 2),
            running: BTreeSet::from(["web-1-uid".to_string(), "web-2-uid".to_string()]),
            plan: plan(&["web-1"]),
        }
    }

    fn decide(&self, now: Timestamp, memory: &mut Memory) -> Decision {
        let running = self.running.iter().map(String::as_str).collect();
        let obs = Observation {
            now,
            rebalance: &self.spec,
            paused: self.paused,
            conflict: self.conflict,
            settled: self.settled,
            ready_replicas: self.ready,
            within_policy: self.measurement.within_policy(),
            budget_exhausted: self.budget_exhausted,
            measurement: &self.measurement,
            running_pods: &running,
            plan: &self.plan,
        };
        decide(&obs, memory)
    }
}

#[test]
fn balanced_is_idle_and_forgets_the_skew() {
    let mut w = World::skewed();
    w.measurement = measurement(1, 1);
    let mut memory = Memory {
        skewed_since: Some(t(0)),
        ..Default::default()
    };
    let d = w.decide(t(100), &mut memory);
    assert_eq!(
        (d.state, d.reason, d.disruption),
        (RebalanceState::Idle, "Balanced", Disruption::None)
    );
    assert_eq!(memory.skewed_since, None);
}

#[test]
fn skew_must_hold_for_the_stabilization_window() {
    let w = World::skewed();
    let mut memory = Memory::default();
    let d = w.decide(t(0), &mut memory);
    assert_eq!(
        (d.state, d.reason),
        (RebalanceState::Waiting, "Stabilizing")
    );
    assert_eq!(d.requeue_after, Some(Duration::from_secs(30)));
    let d = w.decide(t(20), &mut memory);
    assert_eq!(d.requeue_after, Some(Duration::from_secs(10)));
    assert_eq!(d.disruption, Disruption::None);
    let d = w.decide(t(30), &mut memory);
    assert_eq!(d.state, RebalanceState::Evicting);
    assert_eq!(d.disruption, Disruption::Evict(vec![a_move("web-1")]));
}

#[test]
fn blocks_and_their_reasons() {
    let mut memory = Memory {
        skewed_since: Some(t(0)),
        ..Default::default()
    };
    let now = t(60);
    type Setup = Box<dyn Fn(&mut World)>;
    let cases: Vec<(Setup, RebalanceState, &str)> = vec![
        (
            Box::new(|w| w.conflict = true),
            RebalanceState::Blocked,
            "Conflict",
        ),
        (
            Box::new(|w| w.paused = true),
            RebalanceState::Blocked,
            "Paused",
        ),
        (
            Box::new(|w| w.settled = false),
            RebalanceState::Blocked,
            "RolloutInProgress",
        ),
        (
            Box::new(|w| w.ready = 1),
            RebalanceState::Blocked,
            "TooFewReadyReplicas",
        ),
        (
            Box::new(|w| w.plan = Err(Obstacle::NoCapacity)),
            RebalanceState::Blocked,
            "NoCapacity",
        ),
        (
            Box::new(|w| w.plan = Err(Obstacle::VolumePinned)),
            RebalanceState::Blocked,
            "VolumePinned",
        ),
        (
            Box::new(|w| w.spec.strategy = RebalanceStrategy::None),
            RebalanceState::Idle,
            "RebalanceDisabled",
        ),
    ];
    for (setup, state, reason) in cases {
        let mut w = World::skewed();
        setup(&mut w);
        let d = w.decide(now, &mut memory);
        assert_eq!((d.state, d.reason), (state, reason));
        assert_eq!(d.disruption, Disruption::None, "{reason}: no action");
    }
}

#[test]
fn a_pdb_refusal_blocks_then_retries() {
    let w = World::skewed();
    let mut memory = Memory {
        skewed_since: Some(t(0)),
        ..Default::default()
    };
    assert!(matches!(
        w.decide(t(60), &mut memory).disruption,
        Disruption::Evict(_)
    ));
    record_pdb_block(&mut memory, t(60));
    let d = w.decide(t(61), &mut memory);
    assert_eq!(
        (d.state, d.reason),
        (RebalanceState::Blocked, "PodDisruptionBudget")
    );
    assert_eq!(d.requeue_after, Some(Duration::from_secs(9)));
    assert!(matches!(
        w.decide(t(71), &mut memory).disruption,
        Disruption::Evict(_)
    ));
}

#[test]
fn waits_for_the_replacement_then_takes_the_next_step_without_cooldown() {
    let mut w = World::skewed();
    // Four replicas in zone c: two moves to balance.
    w.measurement = measurement(0, 4);
    w.plan = plan(&["web-1", "web-2"]);
    let mut memory = evicted_at_60(&mut w);
    assert_eq!(memory.actions, 1);
    // The evicted pod is still terminating: wait.
    let d = w.decide(t(62), &mut memory);
    assert_eq!(
        (d.state, d.reason),
        (RebalanceState::Evicting, "AwaitingReplacement")
    );
    assert_eq!(d.disruption, Disruption::None);
    // It is gone and its replacement runs in zone a; still skewed elsewhere: next step at once.
    w.running.remove("web-1-uid");
    w.running.insert("web-3-uid".into());
    w.measurement = measurement(1, 3);
    w.plan = plan(&["web-2"]);
    let d = w.decide(t(70), &mut memory);
    assert_eq!(d.moves_succeeded, 1);
    assert_eq!(d.disruption, Disruption::Evict(vec![a_move("web-2")]));
}

#[test]
fn two_failed_moves_back_off_doubling_up_to_an_hour() {
    let mut w = World::skewed();
    w.spec.cooldown_seconds = 1200;
    let mut memory = Memory {
        skewed_since: Some(t(0)),
        ..Default::default()
    };
    let mut now = 60;
    let mut backoffs = Vec::new();
    for round in 0..4 {
        for attempt in 0..2 {
            let d = w.decide(t(now), &mut memory);
            let Disruption::Evict(moves) = d.disruption else {
                panic!("round {round} attempt {attempt}: expected an eviction, got {d:?}");
            };
            record_eviction(&mut memory, &moves[0], &w.measurement, t(now));
            // The replacement comes back to zone c: zone a still holds 0.
            w.running.remove(&moves[0].pod_uid);
            now += 10;
            let d = w.decide(t(now), &mut memory);
            assert_eq!(d.moves_failed, 1);
            w.running.insert(moves[0].pod_uid.clone());
            if attempt == 1 {
                assert_eq!(
                    (d.state, d.reason),
                    (RebalanceState::BackingOff, "RebalanceIneffective")
                );
                backoffs.push(d.requeue_after.unwrap().as_secs());
            }
        }
        now += backoffs.last().copied().unwrap() as i64;
    }
    assert_eq!(backoffs, vec![1200, 2400, 3600, 3600]);
}

#[test]
fn cooldown_separates_rebalance_episodes() {
    let mut w = World::skewed();
    let mut memory = Memory {
        skewed_since: Some(t(0)),
        last_action: Some(t(0)),
        ..Default::default()
    };
    // Balanced in between ends the episode.
    w.measurement = measurement(1, 1);
    w.decide(t(10), &mut memory);
    w.measurement = measurement(0, 2);
    let d = w.decide(t(20), &mut memory);
    assert_eq!(d.reason, "Stabilizing");
    let d = w.decide(t(60), &mut memory);
    assert_eq!((d.state, d.reason), (RebalanceState::Waiting, "Cooldown"));
    assert_eq!(d.requeue_after, Some(Duration::from_secs(240)));
    assert!(matches!(
        w.decide(t(300), &mut memory).disruption,
        Disruption::Evict(_)
    ));
}

#[test]
fn rollout_restart_restarts_once_per_cooldown() {
    let mut w = World::skewed();
    w.spec.strategy = RebalanceStrategy::RolloutRestart;
    let mut memory = Memory {
        skewed_since: Some(t(0)),
        ..Default::default()
    };
    assert_eq!(w.decide(t(60), &mut memory).disruption, Disruption::Restart);
    record_restart(&mut memory, t(60));
    w.settled = false;
    assert_eq!(w.decide(t(61), &mut memory).reason, "RolloutInProgress");
    w.settled = true;
    let d = w.decide(t(120), &mut memory);
    assert_eq!(
        (d.reason, d.disruption.clone()),
        ("Cooldown", Disruption::None)
    );
    let d = w.decide(t(200), &mut memory);
    assert_eq!(
        (d.reason, d.disruption.clone()),
        ("Cooldown", Disruption::None)
    );
    assert_eq!(
        w.decide(t(360), &mut memory).disruption,
        Disruption::Restart
    );
}

#[test]
fn a_replacement_with_the_same_name_is_told_apart_by_uid() {
    // A StatefulSet recreates web-1 as web-1: only the UID says the evicted pod is gone.
    let mut memory = evicted_at_60(&mut World::skewed());
    let mut w = World::skewed();
    w.running = BTreeSet::from(["web-1-new-uid".to_string(), "web-2-uid".to_string()]);
    w.measurement = measurement(1, 1);
    let d = w.decide(t(70), &mut memory);
    assert_eq!(d.moves_succeeded, 1);
    assert_eq!(d.state, RebalanceState::Idle);
}

#[test]
fn who_may_write() {
    assert_eq!(Writes::for_workload(false, false, false), Writes::Allowed);
    assert_eq!(Writes::for_workload(true, false, false), Writes::DryRun);
    assert_eq!(Writes::for_workload(true, true, false), Writes::Paused);
    assert_eq!(Writes::for_workload(true, true, true), Writes::NotOwner);
    assert!(Writes::Allowed.allowed() && !Writes::DryRun.allowed());
    assert_eq!(Writes::Paused.label(), "paused");
}

/// Evicts the planned move from `before`, then lets the replacement land so that the spread is
/// `after`, and judges it.
fn judge_after(before: Measurement, after: Measurement, planned: Move) -> (Decision, Memory) {
    let mut w = World::skewed();
    w.measurement = before;
    w.plan = Ok(Plan {
        moves: vec![planned],
        moves_needed: 1,
        shortfall: None,
    });
    let mut memory = Memory {
        skewed_since: Some(t(0)),
        failed_moves: 1,
        ..Default::default()
    };
    let Disruption::Evict(moves) = w.decide(t(60), &mut memory).disruption else {
        panic!("expected an eviction");
    };
    record_eviction(&mut memory, &moves[0], &w.measurement, t(60));
    w.running.remove(&moves[0].pod_uid);
    w.running.insert("web-3-uid".into());
    w.measurement = after;
    let d = w.decide(t(70), &mut memory);
    (d, memory)
}

#[test]
fn a_replacement_in_an_unpredicted_domain_that_lowers_the_distance_is_a_success() {
    // Three zones, three replicas all in c; planned toward a, the scheduler chose b (both had
    // the lowest count): closer to balance, so a success and no back-off, even after an
    // earlier failure.
    let (d, memory) = judge_after(
        measurement_in(&[("a", 0), ("b", 0), ("c", 3)]),
        measurement_in(&[("a", 0), ("b", 1), ("c", 2)]),
        a_move("web-1"),
    );
    assert_eq!((d.moves_succeeded, d.moves_failed), (1, 0));
    assert_eq!(memory.failed_moves, 0);
    assert_eq!(memory.backoff_until, None);
    assert_ne!(d.state, RebalanceState::BackingOff);
}

#[test]
fn a_replacement_back_in_its_domain_fails_and_backs_off() {
    let (d, memory) = judge_after(
        measurement_in(&[("a", 0), ("b", 0), ("c", 3)]),
        measurement_in(&[("a", 0), ("b", 0), ("c", 3)]),
        a_move("web-1"),
    );
    assert_eq!((d.moves_succeeded, d.moves_failed), (0, 1));
    assert!(memory.backoff_until.is_some(), "second failure backs off");
    assert_eq!(d.state, RebalanceState::BackingOff);
}

#[test]
fn a_move_that_makes_a_constraint_worse_fails() {
    // a 1, b 1, c 2 (within maxSkew 1); the replacement of a pod from a lands in c: skew 2.
    let mut planned = a_move("web-1");
    planned.from_domain = "a".into();
    planned.to_domain = "b".into();
    let (d, _) = judge_after(
        measurement_in(&[("a", 1), ("b", 0), ("c", 3)]),
        measurement_in(&[("a", 0), ("b", 0), ("c", 4)]),
        planned,
    );
    assert_eq!((d.moves_succeeded, d.moves_failed), (0, 1));
}

/// A move recorded in flight whose eviction never went through (the API server went away between
/// the record and the eviction): its pod still runs, unterminated, well after the record. The
/// record is dropped, neither a success nor a failure, and the rebalance goes on.
#[test]
fn a_move_recorded_but_never_evicted_is_dropped() {
    let mut w = World::skewed();
    let mut memory = evicted_at_60(&mut w);
    // Within the grace the pod may just not show as terminating yet: wait.
    let d = w.decide(t(80), &mut memory);
    assert_eq!(d.reason, "AwaitingReplacement");
    let d = w.decide(t(95), &mut memory);
    assert!(memory.in_flight.is_empty(), "{memory:?}");
    assert_eq!(
        (d.moves_succeeded, d.moves_failed, memory.failed_moves),
        (0, 0, 0)
    );
    assert_eq!(d.disruption, Disruption::Evict(vec![a_move("web-1")]));
}

/// Skewed since t(0), one disruption at a time: the first move of `w`'s plan, evicted at t(60).
fn evicted_at_60(w: &mut World) -> Memory {
    w.spec.max_disruptions = 1;
    let mut memory = Memory {
        skewed_since: Some(t(0)),
        ..Default::default()
    };
    let Disruption::Evict(moves) = w.decide(t(60), &mut memory).disruption else {
        panic!("expected an eviction");
    };
    record_eviction(&mut memory, &moves[0], &w.measurement, t(60));
    memory
}
