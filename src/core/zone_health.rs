//! The health of a policy's zones (pure): for each domain of each spread key (the expected
//! domains, and those that have nodes), whether its nodes can take pods, and how that has gone
//! over time: Healthy, Out, or Recovering until it has stayed able to take pods for the policy's
//! recovery window.
//!
//! What a zone's nodes say ([`observe`]):
//! - a node of the zone labelled `skewguard.dev/zone-out=true` ([`ZONE_OUT_LABEL`]): Out,
//!   `Declared` (a drill, a cloud provider's zonal shift), whatever the nodes' state;
//! - most of its nodes (more than half) NotReady, tainted `node.kubernetes.io/not-ready` or
//!   `unreachable`, or cordoned: Out, `NodesNotReady` or `NodesCordoned` (whichever most of those
//!   nodes are);
//! - no node at all while another zone of the key has some: Out, `NoNodes` (only an expected
//!   zone can have none: the others are known from their nodes alone);
//! - else it can take pods (`NodesReady`). Nodes an autoscaler is taking away are not counted
//!   against it: a consolidation is not an outage.
//!
//! How it goes ([`next`]): Healthy or Recovering -> Out as soon as the nodes cannot take pods;
//! Out -> Recovering once they can; Recovering -> Healthy once they have for the recovery
//! window (at once with a window of 0). A zone seen for the first time is Healthy or Out. What
//! was last written in `status.zones` is the memory, so a restarted operator or a new leader
//! carries a Recovering zone on to Healthy at the same moment.
//!
//! `kubernetes.io/hostname` is not tracked: a node is not a zone, and a node going away is not
//! a zone outage (the CRD refuses Adaptive on it).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::conditions::reason;
use crate::api::{HAPolicySpec, WhenUnsatisfiable, ZONE_OUT_LABEL, ZoneHealth, ZoneStatus};
use crate::core::expected::Expected;
use crate::core::topology::{HOSTNAME_KEY, Node, NodeSet};

/// The taints the node lifecycle controller puts on a node that is not Ready or not reachable.
pub const NOT_READY_TAINTS: [&str; 2] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];

/// What a zone's nodes say now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// Whether the zone can take pods.
    pub can_take_pods: bool,
    /// `NodesReady`, `Declared`, `NodesNotReady`, `NodesCordoned` or `NoNodes`.
    pub reason: &'static str,
    pub message: String,
}

/// Why one node cannot take pods, if it cannot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Down {
    NotReady,
    Cordoned,
}

fn down(node: &Node) -> Option<Down> {
    let tainted_not_ready = (node.taints.iter())
        .any(|t| t.effect.repels() && NOT_READY_TAINTS.contains(&t.key.as_str()));
    if !node.ready || tainted_not_ready {
        return Some(Down::NotReady);
    }
    let cordon_taint = (node.taints.iter())
        .any(|t| t.effect.repels() && t.key == "node.kubernetes.io/unschedulable");
    (node.unschedulable || cordon_taint).then_some(Down::Cordoned)
}

/// What the nodes of one zone say (`nodes`: the zone's nodes; `others_have_nodes`: another zone
/// of the key has some). `None`: nothing to tell (no node anywhere).
pub fn observe(nodes: &[&Node], others_have_nodes: bool) -> Option<Observation> {
    let total = nodes.len();
    if total == 0 {
        return others_have_nodes.then(|| Observation {
            can_take_pods: false,
            reason: reason::NO_NODES,
            message: "no node left while other zones have some".to_string(),
        });
    }
    let not_ready = nodes
        .iter()
        .filter(|n| down(n) == Some(Down::NotReady))
        .count();
    let cordoned = nodes
        .iter()
        .filter(|n| down(n) == Some(Down::Cordoned))
        .count();
    let up = total - not_ready - cordoned;
    let message = format!("{up} of {total} node(s) can take pods");
    if (nodes.iter()).any(|n| n.labels.get(ZONE_OUT_LABEL).is_some_and(|v| v == "true")) {
        return Some(Observation {
            can_take_pods: false,
            reason: reason::DECLARED,
            message: format!("declared out ({ZONE_OUT_LABEL}=true); {message}"),
        });
    }
    let (can_take_pods, why) = if (not_ready + cordoned) * 2 > total {
        let why = if not_ready >= cordoned {
            reason::NODES_NOT_READY
        } else {
            reason::NODES_CORDONED
        };
        (false, why)
    } else {
        (true, reason::NODES_READY)
    };
    Some(Observation {
        can_take_pods,
        reason: why,
        message,
    })
}

/// A zone's next health, from its last one (`None`: first seen) and what its nodes say now.
pub fn next(
    previous: Option<&ZoneStatus>,
    observed: &Observation,
    key: &str,
    domain: &str,
    window: Duration,
    now: Timestamp,
) -> ZoneStatus {
    let recovered = |since: Timestamp| {
        now.duration_since(since)
            .try_into()
            .is_ok_and(|held: Duration| held >= window)
    };
    let (health, since) = match (
        previous.map(|p| (p.health, p.since.0)),
        observed.can_take_pods,
    ) {
        (None, true) => (ZoneHealth::Healthy, now),
        (None, false) => (ZoneHealth::Out, now),
        (Some((ZoneHealth::Out, since)), false) => (ZoneHealth::Out, since),
        (Some(_), false) => (ZoneHealth::Out, now),
        (Some((ZoneHealth::Healthy, since)), true) => (ZoneHealth::Healthy, since),
        (Some((ZoneHealth::Out, _)), true) if window.is_zero() => (ZoneHealth::Healthy, now),
        (Some((ZoneHealth::Out, _)), true) => (ZoneHealth::Recovering, now),
        (Some((ZoneHealth::Recovering, since)), true) if recovered(since) => {
            (ZoneHealth::Healthy, now)
        }
        (Some((ZoneHealth::Recovering, since)), true) => (ZoneHealth::Recovering, since),
    };
    ZoneStatus {
        topology_key: key.to_string(),
        domain: domain.to_string(),
        health,
        reason: observed.reason.to_string(),
        message: observed.message.clone(),
        since: Time(since),
    }
}

/// The topology keys whose zones are tracked: the policy's spread keys but the hostname's.
pub fn tracked_keys(spec: &HAPolicySpec) -> Vec<String> {
    let keys: BTreeSet<&str> = (spec.spread.iter())
        .map(|s| s.topology_key.as_str())
        .filter(|k| *k != HOSTNAME_KEY)
        .collect();
    keys.into_iter().map(str::to_string).collect()
}

/// A zone whose health changed in this reconcile (for its Event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub zone: ZoneStatus,
    /// `None`: seen for the first time.
    pub from: Option<ZoneHealth>,
}

/// Every tracked zone of a policy and how they changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Zones {
    /// By key, then domain.
    pub zones: Vec<ZoneStatus>,
    pub transitions: Vec<Transition>,
    /// When a Recovering zone turns Healthy, if one is Recovering.
    pub next_change: Option<Duration>,
}

impl Zones {
    /// The zones of one key.
    pub fn of_key<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a ZoneStatus> + 'a {
        self.zones.iter().filter(move |z| z.topology_key == key)
    }

    /// The zones of `key` that are Out.
    pub fn out(&self, key: &str) -> Vec<&ZoneStatus> {
        self.in_health(key, ZoneHealth::Out)
    }

    fn in_health(&self, key: &str, health: ZoneHealth) -> Vec<&ZoneStatus> {
        (self.zones.iter())
            .filter(|z| z.topology_key == key && z.health == health)
            .collect()
    }

    /// Whether every zone of `key` is Healthy (so an Adaptive entry on it is published as
    /// DoNotSchedule).
    pub fn all_healthy(&self, key: &str) -> bool {
        self.of_key(key).all(|z| z.health == ZoneHealth::Healthy)
    }

    /// The zones of `key` that are Recovering.
    pub fn recovering(&self, key: &str) -> Vec<&ZoneStatus> {
        self.in_health(key, ZoneHealth::Recovering)
    }
}

/// What the nodes say of each zone of `key` (its expected domains and those that have nodes), by
/// domain. What the nodes say of the zones that have some is made once per node set: every
/// policy's reconcile reads it.
pub fn observe_key(
    key: &str,
    expected: Option<&[String]>,
    nodes: &NodeSet,
) -> Vec<(String, Option<Observation>)> {
    let observed = nodes.derived(key, |nodes| ZonesObserved::of(key, nodes));
    let mut by_domain: BTreeMap<&str, Option<Observation>> = BTreeMap::new();
    for d in expected.unwrap_or_default() {
        by_domain.insert(d.as_str(), observe(&[], !observed.0.is_empty()));
    }
    for (domain, observation) in &observed.0 {
        by_domain.insert(domain.as_str(), observation.clone());
    }
    (by_domain.into_iter())
        .map(|(domain, observation)| (domain.to_string(), observation))
        .collect()
}

/// What the nodes say of each zone of a key that has nodes.
struct ZonesObserved(Vec<(String, Option<Observation>)>);

impl ZonesObserved {
    fn of(key: &str, nodes: &[Node]) -> Self {
        let mut by_domain: BTreeMap<&str, Vec<&Node>> = BTreeMap::new();
        for n in nodes.iter().filter(|n| !n.provisional) {
            if let Some(d) = n.labels.get(key) {
                by_domain.entry(d.as_str()).or_default().push(n);
            }
        }
        let others = by_domain.len() > 1;
        Self(
            (by_domain.iter())
                .map(|(domain, zone_nodes)| (domain.to_string(), observe(zone_nodes, others)))
                .collect(),
        )
    }
}

/// The health of a policy's zones now, from the nodes, the expected domains and what
/// `status.zones` said (`previous`).
pub fn zone_health(
    spec: &HAPolicySpec,
    expected: &Expected,
    nodes: &NodeSet,
    previous: &[ZoneStatus],
    now: Timestamp,
) -> Zones {
    let window =
        Duration::from_secs(u64::try_from(spec.zone_health.recovery_window_seconds).unwrap_or(0));
    let mut out = Zones::default();
    for key in tracked_keys(spec) {
        for (domain, observed) in observe_key(&key, expected.of(&key), nodes) {
            let domain = domain.as_str();
            let before = (previous.iter()).find(|z| z.topology_key == key && z.domain == domain);
            let Some(observed) = observed else {
                // Nothing to tell: what was known stays.
                out.zones.extend(before.cloned());
                continue;
            };
            let zone = next(before, &observed, &key, domain, window, now);
            if before.map(|b| b.health) != Some(zone.health)
                && (before.is_some() || zone.health != ZoneHealth::Healthy)
            {
                out.transitions.push(Transition {
                    zone: zone.clone(),
                    from: before.map(|b| b.health),
                });
            }
            if zone.health == ZoneHealth::Recovering {
                let held: Duration = now
                    .duration_since(zone.since.0)
                    .try_into()
                    .unwrap_or_default();
                let left = window.saturating_sub(held).max(Duration::from_secs(1));
                out.next_change = Some(out.next_change.map_or(left, |n| n.min(left)));
            }
            out.zones.push(zone);
        }
    }
    out
}

/// The keys of the policy's Adaptive entries that are published relaxed (ScheduleAnyway) now:
/// those with a zone that is not Healthy.
pub fn relaxed_keys(spec: &HAPolicySpec, zones: &Zones) -> BTreeSet<String> {
    (spec.spread.iter())
        .filter(|s| s.when_unsatisfiable == WhenUnsatisfiable::Adaptive)
        .filter(|s| !zones.all_healthy(&s.topology_key))
        .map(|s| s.topology_key.clone())
        .collect()
}

#[cfg(test)]
mod tests;
