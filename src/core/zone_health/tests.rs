use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;

use super::*;
use crate::api::DomainSource;
use crate::api::ExpectedDomainsStatus;
use crate::core::topology::fixtures::node;
use crate::core::topology::{NodeSet, Taint, TaintEffect, ZONE_KEY};

/// [`zone_health`] over `nodes` as a node set.
fn health(
    spec: &HAPolicySpec,
    expected: &Expected,
    nodes: &[Node],
    previous: &[ZoneStatus],
    now: Timestamp,
) -> Zones {
    zone_health(spec, expected, &NodeSet::new(nodes.to_vec()), previous, now)
}

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn spec(extra: serde_json::Value) -> HAPolicySpec {
    let mut spec = json!({"selector": {}, "spread": [
        {"topologyKey": ZONE_KEY, "whenUnsatisfiable": "Adaptive", "minDomains": 2},
        {"topologyKey": HOSTNAME_KEY}]});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        spec[k] = v;
    }
    serde_json::from_value(spec).unwrap()
}

fn cordoned(mut n: Node) -> Node {
    n.unschedulable = true;
    n.taints.push(Taint {
        key: "node.kubernetes.io/unschedulable".into(),
        value: String::new(),
        effect: TaintEffect::NoSchedule,
    });
    n
}

fn not_ready(mut n: Node) -> Node {
    n.ready = false;
    n
}

fn unreachable(mut n: Node) -> Node {
    n.taints.push(Taint {
        key: "node.kubernetes.io/unreachable".into(),
        value: String::new(),
        effect: TaintEffect::NoExecute,
    });
    n
}

fn declared(mut n: Node) -> Node {
    n.labels.insert(ZONE_OUT_LABEL.into(), "true".into());
    n
}

/// Two nodes in each of zones a and b.
fn nodes(a: [fn(Node) -> Node; 2]) -> Vec<Node> {
    vec![
        a[0](node("a-0", "a")),
        a[1](node("a-1", "a")),
        node("b-0", "b"),
        node("b-1", "b"),
    ]
}

fn same(n: Node) -> Node {
    n
}

fn health_of(zones: &Zones, domain: &str) -> (ZoneHealth, String) {
    let z = zones.zones.iter().find(|z| z.domain == domain).unwrap();
    (z.health, z.reason.clone())
}

#[test]
fn what_the_nodes_of_a_zone_say() {
    let observe_a = |nodes: Vec<Node>| {
        let zone: Vec<&Node> = nodes.iter().filter(|n| n.labels[ZONE_KEY] == "a").collect();
        observe(&zone, true).unwrap()
    };
    let ok = observe_a(nodes([same, same]));
    assert!(ok.can_take_pods);
    assert_eq!(
        (ok.reason, ok.message.as_str()),
        (reason::NODES_READY, "2 of 2 node(s) can take pods")
    );
    // Half is not most: one node of two down leaves the zone able to take pods.
    assert!(observe_a(nodes([cordoned, same])).can_take_pods);
    assert!(observe_a(nodes([not_ready, same])).can_take_pods);
    let out = observe_a(nodes([cordoned, cordoned]));
    assert_eq!(
        (out.can_take_pods, out.reason),
        (false, reason::NODES_CORDONED)
    );
    assert_eq!(
        observe_a(nodes([not_ready, not_ready])).reason,
        reason::NODES_NOT_READY
    );
    assert_eq!(
        observe_a(nodes([unreachable, not_ready])).reason,
        reason::NODES_NOT_READY
    );
    // A tie goes to NotReady: the node is gone, not set aside.
    assert_eq!(
        observe_a(nodes([unreachable, cordoned])).reason,
        reason::NODES_NOT_READY
    );
    // Declared out, whatever the nodes say.
    let drill = observe_a(nodes([declared, same]));
    assert_eq!(
        (drill.can_take_pods, drill.reason),
        (false, reason::DECLARED)
    );
    // No node: Out only while another zone has some.
    assert_eq!(observe(&[], true).unwrap().reason, reason::NO_NODES);
    assert_eq!(observe(&[], false), None);
    // An autoscaler taking a node away is not an outage.
    let mut going = node("a-0", "a");
    going.disrupting = true;
    going.taints.push(Taint {
        key: "karpenter.sh/disrupted".into(),
        value: String::new(),
        effect: TaintEffect::NoSchedule,
    });
    assert!(observe(&[&going], true).unwrap().can_take_pods);
}

#[test]
fn out_recovering_then_healthy_after_the_window() {
    let spec = spec(json!({"zoneHealth": {"recoveryWindowSeconds": 60}}));
    let none = Expected::default();
    let run = |nodes: &[Node], previous: &[ZoneStatus], t: i64| {
        health(&spec, &none, nodes, previous, at(t))
    };
    let first = run(&nodes([same, same]), &[], 0);
    assert_eq!(health_of(&first, "a").0, ZoneHealth::Healthy);
    assert!(
        first.transitions.is_empty(),
        "a first Healthy sighting is no news"
    );
    assert_eq!(first.zones.len(), 2, "hostname is not tracked");

    let out = run(&nodes([cordoned, cordoned]), &first.zones, 10);
    assert_eq!(
        health_of(&out, "a"),
        (ZoneHealth::Out, reason::NODES_CORDONED.into())
    );
    assert_eq!(out.transitions.len(), 1);
    assert_eq!(out.transitions[0].from, Some(ZoneHealth::Healthy));
    assert_eq!(health_of(&out, "b").0, ZoneHealth::Healthy);
    assert!(!out.all_healthy(ZONE_KEY));
    assert_eq!(out.out(ZONE_KEY).len(), 1);

    // Still out: since stays when it went out.
    let still = run(&nodes([not_ready, cordoned]), &out.zones, 20);
    let a = still.zones.iter().find(|z| z.domain == "a").unwrap();
    assert_eq!((a.health, a.since.0), (ZoneHealth::Out, at(10)));
    assert_eq!(
        a.reason,
        reason::NODES_NOT_READY,
        "the reason follows the nodes"
    );
    assert!(still.transitions.is_empty());

    let back = run(&nodes([same, same]), &still.zones, 30);
    assert_eq!(health_of(&back, "a").0, ZoneHealth::Recovering);
    assert_eq!(back.next_change, Some(Duration::from_secs(60)));
    let waiting = run(&nodes([same, same]), &back.zones, 89);
    assert_eq!(health_of(&waiting, "a").0, ZoneHealth::Recovering);
    assert_eq!(waiting.next_change, Some(Duration::from_secs(1)));
    assert!(!waiting.all_healthy(ZONE_KEY));
    let healthy = run(&nodes([same, same]), &waiting.zones, 90);
    assert_eq!(health_of(&healthy, "a").0, ZoneHealth::Healthy);
    assert_eq!(healthy.next_change, None);
    assert!(healthy.all_healthy(ZONE_KEY));
    assert_eq!(healthy.transitions[0].from, Some(ZoneHealth::Recovering));

    // A relapse while Recovering is Out again, and the window starts over.
    let relapse = run(&nodes([cordoned, cordoned]), &back.zones, 40);
    assert_eq!(health_of(&relapse, "a").0, ZoneHealth::Out);
    let again = run(&nodes([same, same]), &relapse.zones, 50);
    let a = again.zones.iter().find(|z| z.domain == "a").unwrap();
    assert_eq!((a.health, a.since.0), (ZoneHealth::Recovering, at(50)));
}

#[test]
fn a_window_of_zero_is_healthy_at_once_and_a_restart_carries_on() {
    let zero = spec(json!({"zoneHealth": {"recoveryWindowSeconds": 0}}));
    let none = Expected::default();
    let out = health(&zero, &none, &nodes([declared, same]), &[], at(0));
    assert_eq!(
        health_of(&out, "a"),
        (ZoneHealth::Out, reason::DECLARED.into())
    );
    assert_eq!(
        out.transitions[0].from, None,
        "a first sighting Out is news"
    );
    let back = health(&zero, &none, &nodes([same, same]), &out.zones, at(5));
    assert_eq!(health_of(&back, "a").0, ZoneHealth::Healthy);

    // What the status says is the memory: a new process reads it and turns Healthy on time.
    let default = spec(json!({}));
    assert_eq!(default.zone_health.recovery_window_seconds, 120);
    let recovering = health(&default, &none, &nodes([same, same]), &out.zones, at(10));
    let written: Vec<ZoneStatus> =
        serde_json::from_value(serde_json::to_value(&recovering.zones).unwrap()).unwrap();
    let later = health(&default, &none, &nodes([same, same]), &written, at(130));
    assert_eq!(health_of(&later, "a").0, ZoneHealth::Healthy);
}

#[test]
fn an_expected_zone_without_nodes_is_out_and_an_unexpected_one_is_forgotten() {
    let spec = spec(json!({}));
    let expected = Expected {
        keys: vec![ExpectedDomainsStatus {
            topology_key: ZONE_KEY.into(),
            domains: vec!["a".into(), "b".into(), "c".into()],
            source: DomainSource::Policy,
        }],
        warnings: vec![],
    };
    let zones = health(&spec, &expected, &nodes([same, same]), &[], at(0));
    assert_eq!(
        health_of(&zones, "c"),
        (ZoneHealth::Out, reason::NO_NODES.into())
    );
    // Zone a loses every node: without expected domains it is no zone any more.
    let b_only = vec![node("b-0", "b")];
    let forgotten = health(&spec, &Expected::default(), &b_only, &zones.zones, at(1));
    assert!(forgotten.zones.iter().all(|z| z.domain == "b"));
    let kept = health(&spec, &expected, &b_only, &zones.zones, at(1));
    assert_eq!(
        health_of(&kept, "a"),
        (ZoneHealth::Out, reason::NO_NODES.into())
    );
    // No node anywhere: nothing to tell, what was known stays.
    let nothing = health(&spec, &expected, &[], &kept.zones, at(2));
    assert_eq!(nothing.zones, kept.zones);
}

#[test]
fn adaptive_keys_are_relaxed_while_a_zone_is_not_healthy() {
    let spec = spec(json!({"zoneHealth": {"recoveryWindowSeconds": 60}}));
    let none = Expected::default();
    let healthy = health(&spec, &none, &nodes([same, same]), &[], at(0));
    assert!(relaxed_keys(&spec, &healthy).is_empty());
    let out = health(
        &spec,
        &none,
        &nodes([cordoned, cordoned]),
        &healthy.zones,
        at(1),
    );
    assert_eq!(
        relaxed_keys(&spec, &out),
        BTreeSet::from([ZONE_KEY.to_string()])
    );
    let recovering = health(&spec, &none, &nodes([same, same]), &out.zones, at(2));
    assert_eq!(relaxed_keys(&spec, &recovering).len(), 1);
    let back = health(
        &spec,
        &none,
        &nodes([same, same]),
        &recovering.zones,
        at(62),
    );
    assert!(relaxed_keys(&spec, &back).is_empty());
    // Only Adaptive entries relax.
    let hard = super::tests::spec(json!({"spread": [
        {"topologyKey": ZONE_KEY, "whenUnsatisfiable": "DoNotSchedule"}]}));
    assert!(relaxed_keys(&hard, &out).is_empty());
}

/// Every policy's reconcile reads the zones' observations of the same nodes: they are made once
/// per node set, and an expected zone without nodes is added per policy.
#[test]
fn a_node_set_observes_its_zones_once() {
    let set = NodeSet::new(nodes([same, same]));
    let made = std::cell::Cell::new(0);
    for _ in 0..3 {
        let count = set.derived("made", |n| {
            made.set(made.get() + 1);
            n.len()
        });
        assert_eq!(*count, 4);
    }
    assert_eq!(made.get(), 1);
    let expected = ["c".to_string()];
    let with_c = observe_key(ZONE_KEY, Some(&expected), &set);
    let domains: Vec<&str> = with_c.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(domains, ["a", "b", "c"]);
    assert_eq!(
        with_c[2].1.as_ref().map(|o| o.reason),
        Some(reason::NO_NODES)
    );
    let without = observe_key(ZONE_KEY, None, &set);
    assert_eq!(without, with_c[..2]);
}
