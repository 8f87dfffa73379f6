//! Table tests of assess and conclude: one workload, a cluster snapshot, a memory, no cluster.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::*;
use crate::api::{HAPolicy, RebalanceState, ScaleInOrder};
use crate::core::errors::ErrorCategory;
use crate::core::expected::Expected;
use crate::core::rollout_slots::RolloutPermit;
use crate::core::topology::fixtures::{self, labels, node};
use crate::core::topology::{Cluster, Pod, ZONE_KEY};
use crate::core::workload::WorkloadObject;
use crate::core::zone_health::Zones;

const NS: &str = "petclinic";

fn now() -> Timestamp {
    "2026-06-01T00:00:00Z".parse().unwrap()
}

/// A pod of `web` (petclinic's web tier).
fn pod(name: &str, node: &str) -> Pod {
    Pod {
        labels: labels(&[("app", "petclinic"), ("tier", "web")]),
        ..fixtures::pod(name, NS, "web", node)
    }
}

/// `web`'s two pods both in zone c; zone a empty.
fn piled() -> Cluster {
    Cluster::new(
        vec![node("a-1", "a"), node("c-1", "c")],
        vec![pod("web-1", "c-1"), pod("web-2", "c-1")],
    )
}

fn policy(extra: Value) -> HAPolicy {
    let mut spec = json!({
        "selector": {"matchLabels": {"app": "petclinic"}},
        "spread": [{"topologyKey": ZONE_KEY, "maxSkew": 1}],
        "injectConstraints": false,
        "rebalance": {"stabilizationSeconds": 0, "cooldownSeconds": 0},
        // The scale-in tests below turn it on; the others are about rebalancing alone.
        "scaleIn": {"deletionCost": false}
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        spec[k] = v;
    }
    serde_json::from_value(json!({
        "apiVersion": "skewguard.dev/v1alpha1", "kind": "HAPolicy",
        "metadata": {"name": "p", "namespace": NS, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": spec
    }))
    .unwrap()
}

fn web(selector: Value) -> WorkloadObject {
    web_of(2, selector)
}

/// `web` with `replicas` replicas, all updated and Ready.
fn web_of(replicas: i32, selector: Value) -> WorkloadObject {
    let d: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": NS, "generation": 1,
                     "labels": {"app": "petclinic"}},
        "spec": {"replicas": replicas, "selector": selector,
                 "template": {"metadata": {"labels": {"app": "petclinic", "tier": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}}},
        "status": {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                   "readyReplicas": replicas, "availableReplicas": replicas}
    }))
    .unwrap();
    WorkloadObject::from_object(&d).unwrap()
}

fn web_selector() -> Value {
    json!({"matchLabels": {"app": "petclinic", "tier": "web"}})
}

/// No zone is tracked (every zone Healthy).
static NO_ZONES: Zones = Zones {
    zones: Vec::new(),
    transitions: Vec::new(),
    next_change: None,
};

/// No expected domains: only domains with nodes count.
static NO_EXPECTED: Expected = Expected {
    keys: Vec::new(),
    warnings: Vec::new(),
};

const GOVERNING: Facts = Facts {
    governing: true,
    budget_exhausted: false,
    rollout: RolloutPermit::Granted,
    injection: Some(crate::api::InjectionMode::Template),
    // The conservative default: settled only when the workload's status says so too.
    pods_current: false,
    expected: &NO_EXPECTED,
    capacity_via: crate::api::CapacityVia::PlaceholderPods,
    zones: &NO_ZONES,
};

fn assess_web(policy: &HAPolicy, facts: Facts, dry_run: bool) -> Assessment {
    assess(
        policy,
        &web(web_selector()),
        &piled(),
        &WorkloadMemory::default(),
        &facts,
        &Settings { dry_run },
        now(),
    )
}

/// While its eviction is under way, the workload counts in its policy's status as assessed
/// (Evicting, skew 2), with nothing counted, published or asked for twice.
#[test]
fn a_workload_whose_writes_are_under_way_counts_as_assessed_and_nothing_more() {
    let a = assess_web(&policy(json!({})), GOVERNING, false);
    assert!(a.decision.requeue_after.is_some(), "{:?}", a.decision);
    let c = super::provisional(a, now());
    assert_eq!(c.outcome.state, RebalanceState::Evicting);
    assert_eq!(c.outcome.skew_summary(), ["zone skew 2 > 1"]);
    assert!(
        c.memory.decision.in_flight.is_empty(),
        "no result of the eviction yet"
    );
    assert_eq!(c.requeue_after, None);
    assert!(c.actions.is_empty() && c.errors.is_empty() && c.notices.is_empty());
    assert_eq!(c.moves_judged, 0);
}

#[test]
fn a_skewed_workload_past_stabilization_gets_one_eviction_toward_the_empty_zone() {
    let a = assess_web(&policy(json!({})), GOVERNING, false);
    assert_eq!(a.decision.state, RebalanceState::Evicting);
    match a.writes.as_slice() {
        [Write::Evict(m)] => assert_eq!((m.from_domain.as_str(), m.to_domain.as_str()), ("c", "a")),
        other => panic!("{other:?}"),
    }
    assert!(a.notes.is_empty() && a.actions.is_empty() && a.errors.is_empty());
    let c = conclude(a, vec![WriteResult::Done], now());
    assert_eq!(c.memory.decision.in_flight.len(), 1);
    assert_eq!(c.memory.decision.actions, 1);
    assert_eq!(c.actions, vec![(WriteKind::Evict, ActionResult::Success)]);
    assert_eq!(c.outcome.state, RebalanceState::Evicting);
    let reasons: Vec<&str> = c.notices.iter().map(|n| n.reason.as_str()).collect();
    assert_eq!(reasons, vec!["PodEvicted", "SkewDetected"]);
    // The eviction's Event is about the evicted pod (its related object), so the next
    // eviction is an Event of its own, not a repeat of this one's note.
    let evicted = &c.memory.decision.in_flight[0];
    assert_eq!(
        c.notices[0].pod,
        Some(notices::PodRef {
            name: evicted.pod.clone(),
            uid: evicted.pod_uid.clone()
        })
    );
    assert!(c.notices[0].note.contains(&evicted.pod));
    assert_eq!(c.notices[1].pod, None);
    assert_eq!(c.outcome.zone_loss_key, ZONE_KEY);
}

#[test]
fn a_move_is_judged_only_when_the_pod_cache_too_shows_the_replacement_ready() {
    // After an API server outage the Deployment's watch may lag the pod watch: its status still
    // says 2 Ready while the cache holds only the pod that stayed.
    let policy = policy(json!({}));
    let evicted = assess_web(&policy, GOVERNING, false);
    let memory = conclude(evicted, vec![WriteResult::Done], now()).memory;
    let gone = memory.decision.in_flight[0].pod.clone();
    let stayed = if gone == "web-1" { "web-2" } else { "web-1" };
    let nodes = || vec![node("a-1", "a"), node("c-1", "c")];
    let mut starting = pod("web-3", "a-1");
    starting.ready = false;
    let cases = [
        (
            "replacement not created yet",
            vec![pod(stayed, "c-1")],
            false,
        ),
        (
            "replacement not Ready",
            vec![pod(stayed, "c-1"), starting],
            false,
        ),
        (
            "replacement Ready",
            vec![pod(stayed, "c-1"), pod("web-3", "a-1")],
            true,
        ),
    ];
    for (label, pods, judged) in cases {
        let a = assess(
            &policy,
            &web(web_selector()),
            &Cluster::new(nodes(), pods),
            &memory,
            &GOVERNING,
            &Settings::default(),
            now(),
        );
        assert!(a.writes.is_empty(), "{label}: {:?}", a.writes);
        assert_eq!(a.memory.decision.in_flight.is_empty(), judged, "{label}");
        if !judged {
            assert_eq!(a.decision.reason, "AwaitingReplacement", "{label}");
        }
    }
}

#[test]
fn injection_comes_first_and_its_success_is_told() {
    let a = assess_web(
        &policy(json!({"injectConstraints": true})),
        GOVERNING,
        false,
    );
    assert!(matches!(
        a.writes.first(),
        Some(Write::Inject { constraints: 1, .. })
    ));
    let c = conclude(a, vec![WriteResult::Done, WriteResult::Done], now());
    assert_eq!(
        c.actions,
        vec![
            (WriteKind::Inject, ActionResult::Success),
            (WriteKind::Evict, ActionResult::Success)
        ]
    );
    assert!(
        c.outcome
            .note
            .as_deref()
            .is_some_and(|n| n.contains("constraints injected"))
    );
}

#[test]
fn writes_that_may_not_be_made_become_notes_and_dry_run_counts() {
    for (policy, dry_run, label) in [
        (policy(json!({"injectConstraints": true})), true, "dry-run"),
        (
            policy(json!({"injectConstraints": true, "paused": true})),
            false,
            "paused",
        ),
    ] {
        let a = assess_web(&policy, GOVERNING, dry_run);
        assert!(a.writes.is_empty(), "{label}: {:?}", a.writes);
        assert!(
            a.notes
                .iter()
                .any(|n| n.starts_with(&format!("{label}: would write 1"))),
            "{label}: {:?}",
            a.notes
        );
        let c = conclude(a, vec![], now());
        assert_eq!(c.memory.decision.actions, 0, "{label}");
    }
    let a = assess_web(&policy(json!({})), GOVERNING, true);
    assert_eq!(a.actions, vec![(WriteKind::Evict, ActionResult::DryRun)]);
    assert!(
        a.notes[0].starts_with("dry-run: would evict web-"),
        "{:?}",
        a.notes
    );
}

#[test]
fn a_losing_policy_writes_nothing_and_counts_a_conflict() {
    let facts = Facts {
        governing: false,
        ..GOVERNING
    };
    let a = assess_web(&policy(json!({"injectConstraints": true})), facts, false);
    assert!(a.writes.is_empty() && a.notes.is_empty());
    assert_eq!(a.errors, vec![ErrorCategory::Conflict]);
    let c = conclude(a, vec![], now());
    assert_eq!(
        (c.outcome.state, c.outcome.reason.as_str()),
        (RebalanceState::Blocked, "Conflict")
    );
}

/// A write's result, then the state, reason, requeue (ms) and counts it leads to.
type Case = (
    WriteResult,
    RebalanceState,
    &'static str,
    Option<u64>,
    Vec<(WriteKind, ActionResult)>,
);

#[test]
fn results_rewrite_the_decision_pure_and_simple() {
    let cases: Vec<Case> = vec![
        (
            WriteResult::BudgetExhausted,
            RebalanceState::Blocked,
            "PodDisruptionBudget",
            Some(10_000),
            vec![(WriteKind::Evict, ActionResult::Blocked)],
        ),
        (
            WriteResult::Deferred(std::time::Duration::from_millis(300)),
            RebalanceState::Evicting,
            "AwaitingEvictionSlot",
            Some(300),
            vec![],
        ),
        (
            WriteResult::Gone,
            RebalanceState::Evicting,
            "Evicting",
            Some(5_000),
            vec![],
        ),
    ];
    for (result, state, reason, requeue_ms, actions) in cases {
        let label = format!("{result:?}");
        let c = conclude(
            assess_web(&policy(json!({})), GOVERNING, false),
            vec![result],
            now(),
        );
        assert_eq!(
            (c.outcome.state, c.outcome.reason.as_str()),
            (state, reason),
            "{label}"
        );
        assert_eq!(
            c.requeue_after.map(|d| d.as_millis() as u64),
            requeue_ms,
            "{label}"
        );
        assert_eq!(c.actions, actions, "{label}");
        assert!(
            c.memory.decision.in_flight.is_empty(),
            "{label}: nothing was evicted"
        );
        assert_eq!(
            c.memory.reported,
            Some((state, reason.to_string())),
            "{label}"
        );
    }
}

#[test]
fn a_failed_write_is_counted_by_category_and_told_in_the_status() {
    let a = assess_web(&policy(json!({})), GOVERNING, false);
    let failure = WriteError {
        kind: WriteKind::Evict,
        target: "web-1".into(),
        source: kube::Error::LinesCodecMaxLineLengthExceeded,
    };
    let c = conclude(a, vec![WriteResult::Failed(failure)], now());
    assert_eq!(c.errors, vec![ErrorCategory::Eviction]);
    assert_eq!(c.actions, vec![(WriteKind::Evict, ActionResult::Error)]);
    assert!(
        c.outcome
            .note
            .as_deref()
            .is_some_and(|n| n.starts_with("evicting pod web-1 failed")),
        "{:?}",
        c.outcome.note
    );
}

#[test]
fn an_unreadable_workload_is_blocked_with_its_reason_and_keeps_its_memory() {
    let mut memory = WorkloadMemory::default();
    memory.decision.actions = 3;
    let w = web(json!({"matchExpressions": [{"key": "tier", "operator": "Sideways"}]}));
    let a = assess(
        &policy(json!({})),
        &w,
        &piled(),
        &memory,
        &GOVERNING,
        &Settings::default(),
        now(),
    );
    assert_eq!(a.errors, vec![ErrorCategory::InvalidWorkload]);
    assert!(a.writes.is_empty());
    let c = conclude(a, vec![], now());
    assert_eq!(
        (c.outcome.state, c.outcome.reason.as_str()),
        (RebalanceState::Blocked, "InvalidWorkload")
    );
    assert_eq!(c.memory.decision.actions, 3);
    assert!(
        c.outcome
            .note
            .is_some_and(|n| n.contains("invalid pod selector"))
    );
}

#[test]
fn zone_loss_is_reported_on_the_zone_key_even_when_hostname_comes_first() {
    let p = policy(json!({"spread": [
        {"topologyKey": "kubernetes.io/hostname", "maxSkew": 1},
        {"topologyKey": ZONE_KEY, "maxSkew": 1}
    ]}));
    let a = assess_web(&p, GOVERNING, false);
    assert_eq!(a.zone_loss_key, ZONE_KEY);
    assert_eq!(a.zone_loss.as_ref().map(|l| l.domain.as_str()), Some("c"));
}

#[test]
fn plan_options_come_from_the_policy_in_one_place() {
    let p = policy(json!({"rebalance": {"maxDisruptions": 3, "requireNodeFit": false}}));
    let options = plan_options(&p.spec.rebalance);
    assert_eq!((options.max_moves, options.require_node_fit), (3, false));
    let p = policy(json!({"rebalance": {"maxDisruptions": 0}}));
    assert_eq!(plan_options(&p.spec.rebalance).max_moves, 1);
}

#[test]
fn a_template_write_waits_in_the_queue_when_the_rollout_budget_is_spent() {
    let p = policy(json!({"injectConstraints": true}));
    let full = Facts {
        rollout: RolloutPermit::Denied { in_use: 2, max: 2 },
        ..GOVERNING
    };
    let a = assess_web(&p, full, false);
    assert!(a.writes.is_empty(), "{:?}", a.writes);
    assert_eq!(
        (a.decision.state, a.decision.reason),
        (RebalanceState::Queued, "RolloutBudget")
    );
    assert!(a.notes[0].starts_with("queued: 2 of 2"), "{:?}", a.notes);
    // With a slot free the write goes, and the workload holds the slot up to the next generation.
    let room = Facts {
        rollout: RolloutPermit::Granted,
        ..GOVERNING
    };
    let a = assess_web(&p, room, false);
    assert!(a.starts_rollout());
    let c = conclude(a, vec![WriteResult::Done, WriteResult::Done], now());
    assert_eq!(c.memory.decision.rollout_generation, Some(2));
    assert!(
        WorkloadMetrics::from(&c.outcome).rolling,
        "the gauge counts it"
    );
}

#[test]
fn a_workload_holding_a_slot_keeps_it_until_its_rollout_is_done() {
    let p = policy(json!({"injectConstraints": true}));
    let full = Facts {
        rollout: RolloutPermit::Denied { in_use: 2, max: 2 },
        ..GOVERNING
    };
    let mut memory = WorkloadMemory::default();
    memory.decision.rollout_generation = Some(2);
    memory.decision.rollout_started = Some(now());
    // Generation 1, settled: the write it made has not been seen yet; it still holds its slot and
    // may write again.
    let a = assess(
        &p,
        &web(web_selector()),
        &piled(),
        &memory,
        &full,
        &Settings::default(),
        now(),
    );
    assert!(a.starts_rollout(), "its own slot: not queued");
    assert_eq!(a.memory.decision.rollout_generation, Some(2));
    // Generation 2 observed and settled: the rollout is done, the slot is free.
    let mut rolled = web(web_selector());
    rolled.replicas.generation = 2;
    rolled.replicas.observed_generation = 2;
    let a = assess(
        &p,
        &rolled,
        &piled(),
        &memory,
        &GOVERNING,
        &Settings::default(),
        now(),
    );
    assert_eq!(a.memory.decision.rollout_generation, None);
    // A write that changed nothing (the generation never moved) frees it after the grace period.
    let later = now() + jiff::SignedDuration::from_secs(61);
    let a = assess(
        &policy(json!({})),
        &web(web_selector()),
        &piled(),
        &memory,
        &GOVERNING,
        &Settings::default(),
        later,
    );
    assert_eq!(a.memory.decision.rollout_generation, None);
}

#[test]
fn a_rollout_stuck_past_the_timeout_gives_its_slot_back_and_blocks_its_workload() {
    use crate::core::rollout_slots::{RolloutSlots, SlotChange};
    let p = policy(json!({"injectConstraints": true}));
    let mut memory = WorkloadMemory::default();
    memory.decision.rollout_generation = Some(2);
    memory.decision.rollout_started = Some(now());
    // Generation 2 observed, but its new pods never turn Ready (a broken image).
    let mut broken = web(web_selector());
    broken.replicas.generation = 2;
    broken.replicas.observed_generation = 2;
    (broken.replicas.updated, broken.replicas.ready) = (1, 1);
    broken.replicas.available = 1;
    let at = |secs: i64| now() + jiff::SignedDuration::from_secs(secs);
    let assess_at = |memory: &WorkloadMemory, w: &WorkloadObject, secs: i64| {
        assess(
            &p,
            w,
            &piled(),
            memory,
            &GOVERNING,
            &Settings::default(),
            at(secs),
        )
    };
    // Within the timeout it holds its slot, as any rollout in progress.
    let timeout = i64::try_from(crate::core::decision::ROLLOUT_TIMEOUT.as_secs()).unwrap();
    let a = assess_at(&memory, &broken, timeout - 1);
    assert_eq!(a.memory.decision.rollout_generation, Some(2));
    assert_ne!(
        a.decision.reason,
        crate::api::conditions::reason::ROLLOUT_STUCK
    );
    // Past it: the slot is given back, the workload is Blocked, RolloutStuck, and says so.
    let a = assess_at(&memory, &broken, timeout);
    assert_eq!(a.memory.decision.rollout_generation, None);
    assert_eq!(a.memory.decision.rollout_stuck_since, Some(at(timeout)));
    assert_eq!(a.decision.state, RebalanceState::Blocked);
    assert_eq!(
        a.decision.reason,
        crate::api::conditions::reason::ROLLOUT_STUCK
    );
    assert!(!a.starts_rollout(), "{:?}", a.writes);
    assert!(!a.writes.iter().any(|w| matches!(w, Write::Evict(_))));
    assert!(
        a.notes
            .iter()
            .any(|n| n.contains("did not complete within 10 minutes")),
        "{:?}",
        a.notes
    );
    let c = conclude(a, vec![], at(timeout));
    assert_eq!(c.slot, SlotChange::Release);
    assert_eq!(
        c.outcome.status().rebalance.reason.as_deref(),
        Some("RolloutStuck")
    );
    // The budget: the stuck workload held the only slot; once settled, another gets it.
    let stuck_key = WorkloadKey::new(NS, "p", crate::api::WorkloadKind::Deployment, "web");
    let other = WorkloadKey::new(NS, "p", crate::api::WorkloadKind::Deployment, "api");
    let mut slots = RolloutSlots::new(1);
    slots.settle(&stuck_key, SlotChange::Hold);
    assert!(matches!(slots.permit(&other), RolloutPermit::Denied { .. }));
    slots.settle(&stuck_key, c.slot);
    assert_eq!(slots.permit(&other), RolloutPermit::Granted);
    // It stays Blocked (and starts nothing, holds nothing) until it settles, across restarts.
    let persisted = crate::core::decision::persisted::to_status(&c.memory.decision);
    let restarted = WorkloadMemory {
        decision: crate::core::decision::persisted::from_status(&crate::api::RebalanceStatus {
            memory: persisted,
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(restarted.decision.rollout_stuck_since, Some(at(timeout)));
    let a = assess_at(&restarted, &broken, timeout + 60);
    assert_eq!(
        a.decision.reason,
        crate::api::conditions::reason::ROLLOUT_STUCK
    );
    assert!(!a.starts_rollout());
    // Settled (the image fixed): no longer stuck.
    let mut fixed = broken.clone();
    (
        fixed.replicas.updated,
        fixed.replicas.ready,
        fixed.replicas.available,
    ) = (2, 2, 2);
    let a = assess_at(&restarted, &fixed, timeout + 120);
    assert_eq!(a.memory.decision.rollout_stuck_since, None);
    assert_ne!(
        a.decision.reason,
        crate::api::conditions::reason::ROLLOUT_STUCK
    );
}

const ADMITTING: Facts = Facts {
    injection: Some(crate::api::InjectionMode::Admission),
    ..GOVERNING
};

#[test]
fn in_admission_mode_no_template_is_written_the_entry_is_published_and_rebalancing_goes_on() {
    use crate::api::InjectionMode;
    let p = policy(json!({"injectConstraints": true}));
    // A spent rollout budget does not matter: nothing rolls out.
    let full = Facts {
        rollout: RolloutPermit::Denied { in_use: 2, max: 2 },
        ..ADMITTING
    };
    let a = assess_web(&p, full, false);
    assert!(
        !a.writes.iter().any(|w| matches!(w, Write::Inject { .. })),
        "{:?}",
        a.writes
    );
    assert!(!a.starts_rollout());
    assert_eq!(
        a.decision.state,
        RebalanceState::Evicting,
        "rebalanced as before"
    );
    assert_eq!(a.injection, Some(InjectionMode::Admission));
    let entry = a.admission.clone().expect("the entry is published");
    assert_eq!((entry.name.as_str(), entry.constraints.len()), ("web", 1));
    assert_eq!(entry.since.0, now());
    // The pods here are of unknown age: none is judged.
    assert_eq!(a.admission_check.as_ref().map(|c| c.checked.len()), Some(0));
    let c = conclude(a, vec![WriteResult::Done], now());
    assert_eq!(c.memory.decision.rollout_generation, None);
    let status = c.outcome.status();
    assert_eq!(status.injection, Some(InjectionMode::Admission));
    assert_eq!(
        WorkloadMetrics::from(&c.outcome).injection,
        Some("Admission")
    );

    // Template mode: the write that starts a rollout, as before.
    let a = assess_web(&p, GOVERNING, false);
    assert!(a.starts_rollout());
    assert_eq!(
        (a.injection, a.admission.is_none()),
        (Some(InjectionMode::Template), true)
    );
}

#[test]
fn admission_mode_publishes_nothing_for_dry_run_paused_or_a_losing_policy() {
    for (p, dry_run, label) in [
        (policy(json!({"injectConstraints": true})), true, "dry-run"),
        (
            policy(json!({"injectConstraints": true, "paused": true})),
            false,
            "paused",
        ),
    ] {
        let a = assess_web(&p, ADMITTING, dry_run);
        assert_eq!(a.admission, None, "{label}");
        assert!(
            a.notes
                .iter()
                .any(|n| n
                    == &format!("{label}: would publish 1 spread constraint(s) for admission")),
            "{label}: {:?}",
            a.notes
        );
    }
    let lost = Facts {
        governing: false,
        ..ADMITTING
    };
    let a = assess_web(&policy(json!({"injectConstraints": true})), lost, false);
    assert_eq!((a.injection, a.admission), (None, None));
    // injectConstraints false: nothing to add, in either mode.
    let a = assess_web(&policy(json!({})), ADMITTING, false);
    assert_eq!((a.injection, a.admission), (None, None));
}

#[test]
fn new_pods_without_the_constraints_make_the_admitted_condition_false() {
    use crate::api::conditions::condition_type;
    use crate::core::injection::{AdmissionSupport, choose_mode};
    use crate::core::policy_status::{PolicyInjection, PolicyProblems, policy_status};
    let support = AdmissionSupport {
        served: true,
        policy_installed: true,
        binding_installed: true,
        warnings: Vec::new(),
    };
    let p = policy(json!({"injectConstraints": true}));
    let injection = choose_mode(crate::api::Injection::Auto, Some(&support), None).unwrap();
    let created = |name: &str, node: &str, at: i64, keys: &[&str]| Pod {
        created: now().as_second() + at,
        spread_keys: keys.iter().map(|k| k.to_string()).collect(),
        ..pod(name, node)
    };
    let status_with = |pods: Vec<Pod>| {
        let cluster = Cluster::new(vec![node("a-1", "a"), node("c-1", "c")], pods);
        let a = assess_on_with(&p, &cluster, ADMITTING);
        let c = conclude(a, vec![], now());
        policy_status(
            None,
            Some(1),
            &[c.outcome],
            &PolicyProblems::default(),
            &PolicyInjection {
                status: Some(&injection),
                support: Some(&support),
            },
            &[],
            now(),
        )
    };
    let admitted = |s: &crate::api::HAPolicyStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == condition_type::ADMITTED)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    let s = status_with(vec![
        created("web-1", "c-1", -600, &[]),
        created("web-2", "a-1", 60, &[ZONE_KEY]),
    ]);
    assert_eq!(
        s.injection.as_ref().map(|i| i.mode),
        Some(crate::api::InjectionMode::Admission)
    );
    assert_eq!(s.admission.as_ref().map(|a| a.workloads.len()), Some(1));
    let (status, reason, _) = admitted(&s).unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "ConstraintsAdmitted")
    );

    let s = status_with(vec![
        created("web-1", "c-1", -600, &[]),
        created("web-2", "a-1", 60, &[]),
    ]);
    let (status, reason, message) = admitted(&s).unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ConstraintsMissing")
    );
    assert!(
        message.contains("web-2 (topology.kubernetes.io/zone)"),
        "{message}"
    );
    assert!(
        s.workloads[0]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("1 new pod(s) lack the admitted constraints")),
        "{:?}",
        s.workloads[0].message
    );

    // Template mode: no entries, no condition.
    let template = choose_mode(crate::api::Injection::Template, Some(&support), None).unwrap();
    let cluster = piled();
    let c = conclude(assess_on_with(&p, &cluster, GOVERNING), vec![], now());
    let s = policy_status(
        None,
        Some(1),
        &[c.outcome],
        &PolicyProblems::default(),
        &PolicyInjection {
            status: Some(&template),
            support: Some(&support),
        },
        &[],
        now(),
    );
    assert_eq!((s.admission.clone(), admitted(&s)), (None, None));
}

fn assess_on_with(policy: &HAPolicy, cluster: &Cluster, facts: Facts) -> Assessment {
    assess(
        policy,
        &web(web_selector()),
        cluster,
        &WorkloadMemory::default(),
        &facts,
        &Settings::default(),
        now(),
    )
}

#[test]
fn while_the_mode_is_not_known_nothing_is_added_either_way() {
    let p = policy(json!({"injectConstraints": true}));
    let undecided = Facts {
        injection: None,
        ..GOVERNING
    };
    let a = assess_web(&p, undecided, false);
    assert!(
        !a.writes.iter().any(|w| matches!(w, Write::Inject { .. })),
        "{:?}",
        a.writes
    );
    assert_eq!((a.injection, a.admission), (None, None));
    assert!(
        a.notes
            .iter()
            .any(|n| n.contains("whether admission mode is available is not known")),
        "{:?}",
        a.notes
    );
    assert_eq!(
        a.decision.state,
        RebalanceState::Evicting,
        "rebalancing goes on"
    );
}

#[test]
fn while_the_pod_cache_is_current_a_move_is_judged_before_the_status_catches_up() {
    // The replacement is Ready in the pod cache; kube-controller-manager has not written the
    // Deployment's status since the eviction (1 of 2 Ready).
    let policy = policy(json!({}));
    let evicted = assess_web(&policy, GOVERNING, false);
    let memory = conclude(evicted, vec![WriteResult::Done], now()).memory;
    let gone = memory.decision.in_flight[0].pod.clone();
    let stayed = if gone == "web-1" { "web-2" } else { "web-1" };
    let cluster = Cluster::new(
        vec![node("a-1", "a"), node("c-1", "c")],
        vec![pod(stayed, "c-1"), pod("web-3", "a-1")],
    );
    // Every count lags (the ReplicaSet had 1 pod when it last wrote), but the rollout is done by
    // the kind's own sign (a Deployment's Progressing condition).
    let mut lagging = web(web_selector());
    lagging.replicas.ready = 1;
    lagging.replicas.available = 1;
    lagging.replicas.current = 1;
    lagging.replicas.updated = 1;
    lagging.replicas.rolled_out = Some(true);
    let judged = |workload: &WorkloadObject, pods_current| {
        let facts = Facts {
            pods_current,
            ..GOVERNING
        };
        let a = assess(
            &policy,
            workload,
            &cluster,
            &memory,
            &facts,
            &Settings::default(),
            now(),
        );
        (
            a.memory.decision.in_flight.is_empty(),
            a.decision.moves_succeeded,
        )
    };
    assert_eq!(
        judged(&lagging, true),
        (true, 1),
        "judged by the pods' own Ready"
    );
    assert_eq!(
        judged(&lagging, false),
        (false, 0),
        "after a watch gap the status must agree too"
    );
    // A rollout under way (the status has not observed the new generation) is never taken for
    // settled, whatever the pods say.
    let mut rolling = lagging.clone();
    rolling.replicas.generation = 2;
    assert_eq!(judged(&rolling, true), (false, 0));
    let mut updating = lagging.clone();
    updating.replicas.rolled_out = Some(false);
    assert_eq!(judged(&updating, true), (false, 0), "a rollout under way");
    // Without the kind's sign, the lagging counts are all there is to go by.
    let mut unsure = lagging.clone();
    unsure.replicas.rolled_out = None;
    assert_eq!(judged(&unsure, true), (false, 0));
}

/// A Rollout of the policy's selection whose spec cannot be read.
fn unreadable_rollout() -> crate::core::workload::Unreadable {
    crate::core::workload::Unreadable {
        kind: crate::api::WorkloadKind::Rollout,
        metadata: serde_json::from_value(json!({
            "name": "was", "namespace": NS, "labels": {"app": "petclinic"}
        }))
        .unwrap(),
        error: crate::core::workload::WorkloadError::Malformed {
            kind: crate::api::WorkloadKind::Rollout,
            name: "was".into(),
            reason: "selector: not a selector".into(),
        },
    }
}

fn named(name: &str, created: &str, extra: Value) -> HAPolicy {
    let mut p = policy(extra);
    p.metadata.name = Some(name.into());
    p.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        created.parse().unwrap(),
    ));
    p
}

#[test]
fn the_policy_phase_selects_its_workloads_and_tells_who_governs_each() {
    use super::policy::{Gathered, Subject, prepare};
    let p = policy(json!({}));
    let older = named("older", "2025-01-01T00:00:00Z", json!({}));
    let web = web(web_selector());
    let mut other = web.clone();
    other.metadata.name = Some("api".into());
    other.metadata.labels = Some([("app".to_string(), "other".to_string())].into());
    let was = unreadable_rollout();
    let support = crate::core::injection::AdmissionSupport::default();
    let no_nodes = crate::core::topology::NodeSet::new(Vec::new());
    let phase = |policies: Vec<&HAPolicy>| {
        let phase = prepare(Gathered {
            policy: &p,
            policies,
            workloads: vec![Err(&was), Ok(&other), Ok(&web)],
            budgets: Vec::new(),
            admission: Some(&support),
            pods_current: true,
            nodepools: None,
            capacity_via: crate::api::CapacityVia::PlaceholderPods,
            nodes: &no_nodes,
            now: now(),
        });
        assert!(phase.problems.is_empty());
        let mode = phase.injection.as_ref().map(|i| i.mode);
        assert_eq!(mode, Some(crate::api::InjectionMode::Template));
        phase
            .workloads
            .iter()
            .map(|s| {
                let governing = match &s.subject {
                    Subject::Readable { governing, .. } => Some(*governing),
                    Subject::Unreadable { message } => {
                        assert!(message.contains("not a selector"), "{message}");
                        None
                    }
                };
                (format!("{} {}", s.key.kind, s.key.name), governing)
            })
            .collect::<Vec<_>>()
    };
    // `api` is not selected; readable workloads first, the unreadable one after, as a value.
    assert_eq!(
        phase(vec![&p]),
        [
            ("Deployment web".to_string(), Some(true)),
            ("Rollout was".to_string(), None)
        ]
    );
    assert_eq!(
        phase(vec![&p, &older])[0],
        ("Deployment web".to_string(), Some(false)),
        "an older policy selecting it governs it"
    );
}

#[test]
fn the_policy_phase_ends_with_the_status_the_metrics_and_what_to_keep() {
    use super::policy::{Gathered, prepare};
    let invalid = policy(json!({"selector": {"matchExpressions": [
        {"key": "app", "operator": "Sometimes"}]}}));
    let web = web(web_selector());
    let was = unreadable_rollout();
    let no_nodes = crate::core::topology::NodeSet::new(Vec::new());
    let phase = prepare(Gathered {
        policy: &invalid,
        policies: vec![&invalid],
        workloads: vec![Ok(&web), Err(&was)],
        budgets: Vec::new(),
        admission: None,
        pods_current: false,
        nodepools: None,
        capacity_via: crate::api::CapacityVia::PlaceholderPods,
        nodes: &no_nodes,
        now: now(),
    });
    assert_eq!(phase.errors, [ErrorCategory::InvalidPolicy]);
    assert!(
        phase.problems[0].starts_with("invalid selector"),
        "{:?}",
        phase.problems
    );
    // An invalid selector selects nothing.
    assert!(phase.workloads.is_empty());

    // What the last leader wrote: web had one action, skewed since a minute ago.
    let mut p = policy(json!({}));
    p.status = Some(
        serde_json::from_value(json!({"workloads": [
            {"kind": "Deployment", "name": "web", "replicas": 2, "balanced": false,
             "rebalance": {"state": "Waiting", "reason": "Stabilizing", "actions": 1,
                           "memory": {"skewedSince": "2026-05-31T23:59:00Z"}}}]}))
        .unwrap(),
    );
    let phase = prepare(Gathered {
        policy: &p,
        policies: vec![&p],
        workloads: vec![Ok(&web), Err(&was)],
        budgets: Vec::new(),
        admission: None,
        pods_current: false,
        nodepools: None,
        capacity_via: crate::api::CapacityVia::PlaceholderPods,
        nodes: &no_nodes,
        now: now(),
    });
    let restored = phase.restored_memory(&phase.workloads[0].key);
    assert_eq!(restored.decision.actions, 1, "read from the status entry");
    assert!(restored.decision.skewed_since.is_some());
    assert_eq!(
        phase.restored_memory(&phase.workloads[1].key),
        WorkloadMemory::default()
    );
    let conclusions: Vec<_> = phase
        .workloads
        .iter()
        .map(|w| {
            let memory = phase.restored_memory(&w.key);
            let a = phase.assess(
                w,
                &piled(),
                &memory,
                RolloutPermit::Granted,
                &Settings { dry_run: true },
                now(),
            );
            conclude(a, Vec::new(), now())
        })
        .collect();
    let soonest = conclusions.iter().filter_map(|c| c.requeue_after).min();
    let keys: Vec<_> = phase.workloads.iter().map(|w| w.key.clone()).collect();
    let finished = phase.finish(conclusions, now());
    assert_eq!(finished.keep, keys);
    assert_eq!(finished.requeue_after, soonest);
    let names: Vec<_> = finished
        .metrics
        .iter()
        .map(|m| m.workload.as_str())
        .collect();
    assert_eq!(names, ["web", "was"]);
    let entries: Vec<_> = (finished.status.workloads.iter())
        .map(|w| (w.name.as_str(), w.rebalance.reason.as_deref()))
        .collect();
    assert_eq!(
        entries,
        [("web", Some("Evicting")), ("was", Some("InvalidWorkload"))]
    );
}

mod adaptive;
mod capacity;
mod scale_in;

/// The example of a tie (scoring.go): zones z0 {n0: 2}, z1 {n0: 3, n1: 1}, soft zone
/// maxSkew 1 and soft hostname maxSkew 2. The only move (a pod of z1-n0) is a gamble: the
/// scheduler's score ties z0-n0 with z1-n1, where the zones would stay 2/4. The eviction goes, and
/// the status note and the Event say it may not help.
#[test]
fn a_gamble_is_evicted_and_said_so() {
    let nodes = vec![
        node("z0-n0", "z0"),
        node("z1-n0", "z1"),
        node("z1-n1", "z1"),
    ];
    let placed = [("z0-n0", 2), ("z1-n0", 3), ("z1-n1", 1)];
    let pods = (placed.iter())
        .flat_map(|(n, k)| (0..*k).map(move |i| pod(&format!("web-{n}-{i}"), n)))
        .collect();
    let policy = policy(json!({"spread": [
        {"topologyKey": ZONE_KEY, "maxSkew": 1, "whenUnsatisfiable": "ScheduleAnyway"},
        {"topologyKey": "kubernetes.io/hostname", "maxSkew": 2, "whenUnsatisfiable": "ScheduleAnyway"},
    ]}));
    let a = assess(
        &policy,
        &web_of(6, web_selector()),
        &Cluster::new(nodes, pods),
        &WorkloadMemory::default(),
        &GOVERNING,
        &Settings { dry_run: false },
        now(),
    );
    let m = match a.writes.as_slice() {
        [Write::Evict(m)] => m.clone(),
        other => panic!("{other:?}"),
    };
    assert!(m.gamble && m.from_node == "z1-n0", "{m:?}");
    assert_eq!(
        a.notes,
        [format!(
            "evicting {} is a gamble: the scheduler's score ties zone z0 with z1 for its \
             replacement, and only z0 brings the workload closer to balance (no certain move \
             is left); where it lands is judged",
            m.pod
        )]
    );
    let c = conclude(a, vec![WriteResult::Done], now());
    let evicted = (c.notices.iter())
        .find(|n| n.reason.as_str() == "PodEvicted")
        .unwrap();
    assert!(
        evicted
            .note
            .ends_with("(a gamble: its replacement may come back to z1)"),
        "{}",
        evicted.note
    );
    assert!(c.outcome.note.unwrap().contains("is a gamble"));
}
