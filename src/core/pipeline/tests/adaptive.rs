//! Hard spread that never strands a pod: zone health through the policy phase, the Adaptive
//! entry's published form, Degraded while a zone is Out, the hold while one is Recovering, and the
//! stranded pods deleted (or said so) while one is Out. `web` over zones a and c.

use super::*;
use crate::api::conditions::{condition_type, reason};
use crate::api::{InjectionMode, PodWhenUnsatisfiable, WhenUnsatisfiable, ZoneHealth, ZoneStatus};
use crate::core::injection::AdmissionSupport;
use crate::core::topology::{Node, Taint, TaintEffect, Unschedulable};
use crate::core::zone_health::zone_health;

/// An Adaptive zone entry (minDomains 2), a recovery window of a minute.
fn adaptive(extra: Value) -> HAPolicy {
    let mut spec = json!({
        "injectConstraints": true,
        "spread": [{"topologyKey": ZONE_KEY, "maxSkew": 1, "whenUnsatisfiable": "Adaptive",
                    "minDomains": 2}],
        "zoneHealth": {"recoveryWindowSeconds": 60},
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        spec[k] = v;
    }
    policy(spec)
}

fn cordoned(name: &str, zone: &str) -> Node {
    let mut n = node(name, zone);
    n.unschedulable = true;
    n.taints.push(Taint {
        key: "node.kubernetes.io/unschedulable".into(),
        value: String::new(),
        effect: TaintEffect::NoSchedule,
    });
    n
}

fn nodes(a_out: bool) -> Vec<Node> {
    let a = if a_out {
        cordoned("a-1", "a")
    } else {
        node("a-1", "a")
    };
    vec![a, node("c-1", "c")]
}

/// The zones after `history` (each a node layout, a minute apart), ending at [`now`].
fn zones_after(p: &HAPolicy, history: &[Vec<Node>]) -> Zones {
    let mut zones = Zones::default();
    let n = history.len() as i64;
    for (i, layout) in history.iter().enumerate() {
        let t = now() - jiff::SignedDuration::from_secs(60 * (n - 1 - i as i64));
        let layout = crate::core::topology::NodeSet::new(layout.clone());
        zones = zone_health(&p.spec, &NO_EXPECTED, &layout, &zones.zones, t);
    }
    zones
}

fn facts<'a>(zones: &'a Zones, mode: InjectionMode) -> Facts<'a> {
    Facts {
        injection: Some(mode),
        zones,
        ..GOVERNING
    }
}

fn assess_in(p: &HAPolicy, cluster: &Cluster, facts: &Facts, dry_run: bool) -> Assessment {
    assess(
        p,
        &web(web_selector()),
        cluster,
        &WorkloadMemory::default(),
        facts,
        &Settings { dry_run },
        now(),
    )
}

/// `web` assessed in admission mode, writes allowed.
fn admitting(p: &HAPolicy, cluster: &Cluster, zones: &Zones) -> Assessment {
    assess_in(p, cluster, &facts(zones, InjectionMode::Admission), false)
}

fn zone_constraint(a: &Assessment) -> (PodWhenUnsatisfiable, Option<i32>) {
    let entry = a.admission.as_ref().expect("published");
    let c = &entry.constraints[0];
    (c.when_unsatisfiable, c.min_domains)
}

#[test]
fn the_entry_is_published_hard_while_every_zone_is_healthy_and_relaxed_otherwise() {
    let p = adaptive(json!({}));
    let cluster = Cluster::new(nodes(false), vec![pod("web-1", "a-1"), pod("web-2", "c-1")]);
    let healthy = zones_after(&p, &[nodes(false)]);
    let a = admitting(&p, &cluster, &healthy);
    assert_eq!(
        zone_constraint(&a),
        (PodWhenUnsatisfiable::DoNotSchedule, Some(2)),
        "minDomains goes with the hard form"
    );
    let out = zones_after(&p, &[nodes(false), nodes(true)]);
    let a = admitting(&p, &cluster, &out);
    assert_eq!(
        zone_constraint(&a),
        (PodWhenUnsatisfiable::ScheduleAnyway, None)
    );
    assert_eq!(
        a.admission.as_ref().unwrap().since.0,
        now(),
        "a new form is a new entry: pods are judged against it from now"
    );
    // Recovering: still relaxed; Healthy after the window: hard again.
    let recovering = zones_after(&p, &[nodes(false), nodes(true), nodes(false)]);
    let a = admitting(&p, &cluster, &recovering);
    assert_eq!(zone_constraint(&a).0, PodWhenUnsatisfiable::ScheduleAnyway);
    let healthy = zones_after(&p, &[nodes(true), nodes(false), nodes(false)]);
    let a = admitting(&p, &cluster, &healthy);
    assert_eq!(zone_constraint(&a).0, PodWhenUnsatisfiable::DoNotSchedule);
    // Measured with the hard form whatever is published: minDomains 2 over the one zone that
    // takes pods makes the global minimum 0.
    let piled = Cluster::new(nodes(true), vec![pod("web-1", "c-1"), pod("web-2", "c-1")]);
    let a = admitting(&p, &piled, &out);
    assert_eq!(a.measurement.constraints[0].skew, 2);
}

/// The policy phase over `web` alone: prepare, assess, conclude (no write), finish.
fn whole_phase(
    p: &HAPolicy,
    cluster: &Cluster,
    support: &AdmissionSupport,
    at: Timestamp,
) -> super::super::policy::Finished {
    let w = web(web_selector());
    let phase = super::super::policy::prepare(super::super::policy::Gathered {
        policy: p,
        policies: vec![p],
        workloads: vec![Ok(&w)],
        budgets: Vec::new(),
        admission: Some(support),
        pods_current: true,
        nodepools: None,
        capacity_via: crate::api::CapacityVia::PlaceholderPods,
        nodes: cluster.node_set(),
        now: at,
    });
    let memory = WorkloadMemory::default();
    let settings = Settings::default();
    let permit = RolloutPermit::Granted;
    let a = phase.assess(&phase.workloads[0], cluster, &memory, permit, &settings, at);
    phase.finish(vec![conclude(a, vec![], at)], at)
}

#[test]
fn in_template_mode_an_adaptive_entry_is_not_written_and_the_policy_says_why() {
    let p = adaptive(json!({}));
    let cluster = Cluster::new(nodes(false), vec![pod("web-1", "a-1"), pod("web-2", "c-1")]);
    let zones = zones_after(&p, &[nodes(false)]);
    let a = assess_in(&p, &cluster, &facts(&zones, InjectionMode::Template), false);
    assert!(a.template.injected.is_empty(), "{:?}", a.template.injected);
    assert!(!a.writes.iter().any(|w| matches!(w, Write::Inject { .. })));
    assert_eq!(a.measurement.constraints.len(), 1, "still measured");

    // The policy phase: on a cluster without MutatingAdmissionPolicies (1.33), Auto is
    // Template, and Ready says Adaptive is unavailable.
    let finished = whole_phase(&p, &cluster, &AdmissionSupport::default(), now());
    let ready = (finished.status.conditions.iter())
        .find(|c| c.type_ == condition_type::READY)
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", reason::ADAPTIVE_UNAVAILABLE)
    );
    assert!(
        ready.message.contains("AdmissionNotServed") && ready.message.contains("zone"),
        "{}",
        ready.message
    );
    assert_eq!(
        finished.status.zones.len(),
        2,
        "the zones are reported all the same"
    );
}

#[test]
fn the_policy_phase_tracks_its_zones_across_reconciles_and_tells_the_changes() {
    let mut p = adaptive(json!({}));
    let installed = AdmissionSupport {
        served: true,
        policy_installed: true,
        binding_installed: true,
        warnings: vec![],
    };
    let run = |p: &HAPolicy, layout: Vec<Node>, at: Timestamp| {
        let cluster = Cluster::new(layout, vec![pod("web-1", "c-1"), pod("web-2", "c-1")]);
        whole_phase(p, &cluster, &installed, at)
    };
    let t = |s: i64| now() + jiff::SignedDuration::from_secs(s);
    let first = run(&p, nodes(false), t(0));
    assert!(first.notices.is_empty());
    p.status = Some(first.status);
    let out = run(&p, nodes(true), t(10));
    let reasons: Vec<&str> = out.notices.iter().map(|n| n.reason.as_str()).collect();
    assert_eq!(reasons, ["ZoneOut"]);
    assert!(out.notices[0].warning);
    assert!(
        out.notices[0].note.contains("zone a Out (NodesCordoned")
            && out.notices[0]
                .note
                .ends_with("new pods are admitted with ScheduleAnyway"),
        "{}",
        out.notices[0].note
    );
    let zone_a = |s: &crate::api::HAPolicyStatus| -> ZoneStatus {
        s.zones.iter().find(|z| z.domain == "a").unwrap().clone()
    };
    assert_eq!(zone_a(&out.status).health, ZoneHealth::Out);
    let a_out = out.zones.iter().find(|z| z.domain == "a").unwrap();
    assert_eq!(a_out.health, "Out");
    // What admission reads is relaxed from now on.
    let published = out.status.admission.as_ref().unwrap().workloads[0].clone();
    assert_eq!(
        published.constraints[0].when_unsatisfiable,
        PodWhenUnsatisfiable::ScheduleAnyway
    );
    p.status = Some(out.status);
    let back = run(&p, nodes(false), t(20));
    assert_eq!(back.notices[0].reason, EventReason::ZoneRecovering);
    assert_eq!(zone_a(&back.status).health, ZoneHealth::Recovering);
    assert_eq!(back.requeue_after, Some(std::time::Duration::from_secs(60)));
    p.status = Some(back.status);
    let healthy = run(&p, nodes(false), t(80));
    assert_eq!(healthy.notices[0].reason, EventReason::ZoneHealthy);
    assert!(
        healthy.notices[0]
            .note
            .ends_with("new pods are admitted with DoNotSchedule again"),
        "{}",
        healthy.notices[0].note
    );
    let published = &healthy.status.admission.as_ref().unwrap().workloads[0];
    assert_eq!(
        published.constraints[0].when_unsatisfiable,
        PodWhenUnsatisfiable::DoNotSchedule
    );
}

#[test]
fn within_max_skew_while_a_zone_is_out_is_degraded_not_balanced() {
    // The demo's case: a cordoned, every pod in c; with nodeTaintsPolicy Honor, a is no domain,
    // so the skew is 0 as the scheduler counts it.
    let p = policy(json!({}));
    let piled = Cluster::new(nodes(true), vec![pod("web-1", "c-1"), pod("web-2", "c-1")]);
    let out = zones_after(&p, &[nodes(false), nodes(true)]);
    let a = assess_in(&p, &piled, &facts(&out, InjectionMode::Template), false);
    assert!(a.measurement.within_policy());
    assert_eq!(
        (a.decision.state, a.decision.reason),
        (RebalanceState::Degraded, reason::ZONE_OUT)
    );
    assert!(
        a.notes.iter().any(|n| n.contains("Out: a (NodesCordoned)")),
        "{:?}",
        a.notes
    );
    let c = conclude(a, vec![], now());
    let s = crate::core::policy_status::policy_status(
        None,
        Some(1),
        &[c.outcome],
        &crate::core::policy_status::PolicyProblems::default(),
        &crate::core::policy_status::PolicyInjection {
            status: None,
            support: None,
        },
        &out.zones,
        now(),
    );
    let balanced = (s.conditions.iter())
        .find(|c| c.type_ == condition_type::BALANCED)
        .unwrap();
    assert_eq!(
        (balanced.status.as_str(), balanced.reason.as_str()),
        ("False", reason::ZONE_OUT)
    );
    assert_eq!(s.workloads[0].rebalance.state, RebalanceState::Degraded);
    assert!(s.workloads[0].balanced, "the skew itself is within maxSkew");
    // Healthy: Idle and Balanced as before.
    let healthy = zones_after(&p, &[nodes(false)]);
    let spread = Cluster::new(nodes(false), vec![pod("web-1", "a-1"), pod("web-2", "c-1")]);
    let a = assess_in(
        &p,
        &spread,
        &facts(&healthy, InjectionMode::Template),
        false,
    );
    assert_eq!(a.decision.state, RebalanceState::Idle);
}

#[test]
fn moves_wait_while_an_adaptive_zone_recovers_then_go_with_the_hard_form() {
    let p = adaptive(json!({}));
    // The outage left both pods in c; a takes pods again.
    let piled = Cluster::new(nodes(false), vec![pod("web-1", "c-1"), pod("web-2", "c-1")]);
    let recovering = zones_after(&p, &[nodes(false), nodes(true), nodes(false)]);
    let a = admitting(&p, &piled, &recovering);
    assert_eq!(
        (a.decision.state, a.decision.reason),
        (RebalanceState::Waiting, reason::ZONE_RECOVERING)
    );
    assert!(!a.writes.iter().any(|w| matches!(w, Write::Evict(_))));
    assert_eq!(
        a.decision.requeue_after,
        Some(std::time::Duration::from_secs(60))
    );
    // Healthy: the hard form is published in this step; the move waits until the admission
    // policy has had the grace to see it, so the replacement gets it.
    let healthy = zones_after(&p, &[nodes(true), nodes(false), nodes(false)]);
    let a = admitting(&p, &piled, &healthy);
    assert_eq!(zone_constraint(&a).0, PodWhenUnsatisfiable::DoNotSchedule);
    assert_eq!(
        (a.decision.state, a.decision.requeue_after),
        (
            RebalanceState::Waiting,
            Some(crate::core::stranded::RELAXED_GRACE)
        )
    );
    let mut published = p.clone();
    published.status = Some(crate::api::HAPolicyStatus {
        admission: Some(crate::api::AdmissionParameters {
            workloads: vec![crate::api::AdmittedWorkload {
                since: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    now() - jiff::SignedDuration::from_secs(10),
                ),
                ..a.admission.clone().unwrap()
            }],
        }),
        ..Default::default()
    });
    let a = admitting(&published, &piled, &healthy);
    assert_eq!(a.decision.state, RebalanceState::Evicting);
    // A plain DoNotSchedule entry does not wait: only what Adaptive publishes changes.
    let hard = policy(
        json!({"spread": [{"topologyKey": ZONE_KEY, "whenUnsatisfiable": "DoNotSchedule"}]}),
    );
    let a = admitting(&hard, &piled, &recovering);
    assert_eq!(a.decision.state, RebalanceState::Evicting);
}

/// web-2 Pending: admitted with DoNotSchedule, left Pending by the scheduler for the spread.
fn stranded_web() -> Cluster {
    let pending = Pod {
        node_name: None,
        ready: false,
        created: now().as_second() - 8,
        spread_keys: vec![ZONE_KEY.into()],
        hard_spread_keys: vec![ZONE_KEY.into()],
        unschedulable: Some(Unschedulable {
            by_spread: true,
            since: now().as_second() - 7,
        }),
        ..pod("web-2", "none")
    };
    let mut relaxed = pod("web-1", "c-1");
    relaxed.spread_keys = vec![ZONE_KEY.into()];
    Cluster::new(nodes(true), vec![relaxed, pending])
}

/// The policy as the API server holds it once the relaxed entry was written `ago` seconds ago.
fn published_relaxed(ago: i64) -> HAPolicy {
    let mut p = adaptive(json!({}));
    let zones = zones_after(&p, &[nodes(false), nodes(true)]);
    let at = now() - jiff::SignedDuration::from_secs(ago);
    let a = assess(
        &p,
        &web(web_selector()),
        &stranded_web(),
        &WorkloadMemory::default(),
        &facts(&zones, InjectionMode::Admission),
        &Settings::default(),
        at,
    );
    let entry = a.admission.unwrap();
    assert_eq!(
        entry.constraints[0].when_unsatisfiable,
        PodWhenUnsatisfiable::ScheduleAnyway
    );
    p.status = Some(crate::api::HAPolicyStatus {
        admission: Some(crate::api::AdmissionParameters {
            workloads: vec![entry],
        }),
        ..Default::default()
    });
    p
}

/// `web` assessed over [`stranded_web`] in admission mode.
fn assess_stranded(p: &HAPolicy, zones: &Zones, dry_run: bool) -> Assessment {
    let facts = facts(zones, InjectionMode::Admission);
    assess_in(p, &stranded_web(), &facts, dry_run)
}

/// The stranded pods an assessment deletes.
fn deletions(a: &Assessment) -> Vec<&StrandedPod> {
    (a.writes.iter())
        .filter_map(|w| match w {
            Write::DeletePending(p) => Some(p),
            _ => None,
        })
        .collect()
}

#[test]
fn a_pod_stranded_by_the_hard_form_while_a_zone_is_out_is_deleted() {
    let p = published_relaxed(10);
    let out = zones_after(&p, &[nodes(false), nodes(true)]);
    let a = assess_stranded(&p, &out, false);
    let deletions = deletions(&a);
    assert_eq!(deletions.len(), 1);
    assert_eq!(
        (deletions[0].pod.as_str(), deletions[0].pending_seconds),
        ("web-2", 8)
    );
    assert_eq!(deletions[0].uid, "uid-petclinic-web-2");
    assert_eq!(a.writes.last().unwrap().lane(), Lane::Pending);
    assert_eq!(
        a.relaxed_pods,
        [(ZONE_KEY.to_string(), 1)],
        "web-1 was admitted relaxed"
    );
    let n = a.writes.len();
    let c = conclude(a, (0..n).map(|_| WriteResult::Done).collect(), now());
    assert!(
        c.actions
            .contains(&(WriteKind::DeletePending, ActionResult::Success))
    );
    let deleted = (c.notices.iter())
        .find(|n| n.reason == EventReason::PendingPodDeleted)
        .expect("an Event");
    assert_eq!(deleted.pod.as_ref().unwrap().name, "web-2");
    assert!(deleted.note.contains("Pending 8s"), "{}", deleted.note);
    assert_eq!(
        WorkloadMetrics::from(&c.outcome).relaxed_pods,
        [(ZONE_KEY.to_string(), 1)]
    );

    // A failed deletion is counted under its own category; one already gone is nothing.
    let a = assess_stranded(&p, &out, false);
    let results = (a.writes.iter())
        .map(|w| match w {
            Write::DeletePending(_) => WriteResult::Failed(WriteError {
                kind: WriteKind::DeletePending,
                target: "web-2".into(),
                source: kube::Error::Api(Box::new(
                    kube::core::Status::failure("denied", "Forbidden").with_code(403),
                )),
            }),
            _ => WriteResult::Done,
        })
        .collect();
    let c = conclude(a, results, now());
    assert!(c.errors.contains(&ErrorCategory::PendingDeletion));
    let a = assess_stranded(&p, &out, false);
    let n = a.writes.len();
    let c = conclude(a, (0..n).map(|_| WriteResult::Gone).collect(), now());
    assert!(
        !c.notices
            .iter()
            .any(|n| n.reason == EventReason::PendingPodDeleted)
    );
}

#[test]
fn a_stranded_pod_waits_for_the_relaxed_form_and_is_only_told_of_when_writes_are_off() {
    // Out this very reconcile: the relaxed entry is written now; the pod is deleted once the
    // admission plugin has had the grace to see it.
    let p = adaptive(json!({}));
    let out = zones_after(&p, &[nodes(false), nodes(true)]);
    let a = assess_stranded(&p, &out, false);
    assert!(deletions(&a).is_empty());
    assert!(
        a.decision
            .requeue_after
            .is_some_and(|r| r <= crate::core::stranded::RELAXED_GRACE)
    );
    // Dry-run and paused say what they would do.
    let p = published_relaxed(10);
    let a = assess_stranded(&p, &out, true);
    assert!(deletions(&a).is_empty());
    assert!(
        a.actions
            .contains(&(WriteKind::DeletePending, ActionResult::DryRun))
    );
    assert!(
        a.notes
            .iter()
            .any(|n| n.starts_with("dry-run: would delete Pending pod web-2")),
        "{:?}",
        a.notes
    );
    let mut paused = published_relaxed(10);
    paused.spec.paused = true;
    let a = assess_stranded(&paused, &out, false);
    assert!(deletions(&a).is_empty());
    assert!(
        a.notes
            .iter()
            .any(|n| n.starts_with("paused: would delete"))
    );
    // A plain DoNotSchedule entry: the replacement would be as stranded, nothing is deleted.
    let mut hard = published_relaxed(10);
    hard.spec.spread[0].when_unsatisfiable = WhenUnsatisfiable::DoNotSchedule;
    let a = assess_stranded(&hard, &out, false);
    assert!(deletions(&a).is_empty());
    // Recovering (no zone Out): the pod can be placed now, nothing is deleted.
    let recovering = zones_after(&p, &[nodes(false), nodes(true), nodes(false)]);
    let back = Cluster::new(
        nodes(false),
        stranded_web()
            .pods()
            .iter()
            .map(|p| (**p).clone())
            .collect(),
    );
    let a = admitting(&p, &back, &recovering);
    assert!(deletions(&a).is_empty());
}
