//! Room before the move (pure): when a planned move's target domain has no node with room (none
//! at all, as after an autoscaler emptied a recovered zone, or only full ones), the operator asks
//! the autoscaler for room first, and evicts only once a node of the domain is Ready with room.
//!
//! - **Planning toward room that is not there yet.** The planner plans on the cluster plus one
//!   *provisional* node per such domain ([`provisional_node`]): what an autoscaler would add,
//!   shaped so the workload's pods may run on it (the domain's label, the pods' node selector and
//!   the `In` terms of their required node affinity). A move whose target is provisional is not
//!   an eviction yet: it is a request for room.
//! - **Asking.** A `CapacityBuffer` (autoscaling.x-k8s.io/v1beta1, SIG Autoscaling's API, served
//!   by cluster-autoscaler and Karpenter) for `pods` pods of the moving pod's shape pinned to the
//!   domain, through a PodTemplate; where the API server does not serve it, as many placeholder
//!   pods (pause image, the moving pod's requests and tolerations, required node affinity to the
//!   domain) at the `skewguard-placeholder` PriorityClass (value -10, shipped in config/), which
//!   any real pod preempts. Never more pods than the moves planned into the domain. Every object
//!   is owned by the HAPolicy (deleting the policy deletes them) and labelled
//!   [`PLACEHOLDER_LABEL`]; names are derived from the workload and the domain, so a retried
//!   create finds its object and a new leader finds them from the memory.
//! - **Not fighting the autoscaler.** Karpenter removes empty nodes and nodes it is told are
//!   underused. The order of the steps keeps the new node from looking empty while the move is
//!   in flight: a CapacityBuffer stays until the moves it was made for are judged (the
//!   autoscaler keeps a buffer's room, and by then the replacement runs there); placeholder
//!   pods hold the node until the step that evicts, which deletes them and evicts at once, so
//!   the node is empty only while the replacement is created and bound (seconds: less than the
//!   15 s Karpenter waits to re-validate a consolidation before it acts). Nodes Karpenter is
//!   taking away (`karpenter.sh/disrupted`, a deletion timestamp) are neither sources nor
//!   targets of a move.
//! - **Giving up.** If no node of the domain is Ready with room within `timeoutSeconds`, the
//!   request is withdrawn and the workload is Blocked (ProvisioningTimedOut) as long again.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use crate::api::conditions::reason;
use crate::api::{
    CapacityRequest, CapacityVia, HAPolicy, RebalanceSpec, RebalanceState, RebalanceStrategy,
};
use crate::core::decision::{Decision, Disruption, Memory, POLL};
use crate::core::expected::Expected;
use crate::core::topology::eligibility::admits_domain;
use crate::core::topology::scheduler::{Incoming, VolumeZone, static_fit};
use crate::core::topology::{
    Cluster, Evaluation, HOSTNAME_KEY, Labels, Move, Node, Obstacle, Placement, Plan, PlanOptions,
    Resources, Workload, evaluate,
};

/// The label on every object skewguard makes to ask for room (its value names the request).
pub const PLACEHOLDER_LABEL: &str = "skewguard.dev/capacity-for";
/// The PriorityClass of placeholder pods (config/ ships it, value -10).
pub const PLACEHOLDER_PRIORITY_CLASS: &str = "skewguard-placeholder";
/// What placeholder pods run.
pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10";
/// Provisional nodes are named so, followed by `<key>=<domain>` (no node name has a `/` or `=`).
const PROVISIONAL_PREFIX: &str = "skewguard-provisional/";

/// The room an autoscaler would add in `domain` of `key` for `pods` pods of this shape: a node
/// the planner may target, marked provisional.
pub fn provisional_node(key: &str, domain: &str, placement: &Placement, pods: usize) -> Node {
    let name = format!("{PROVISIONAL_PREFIX}{key}={domain}");
    let mut labels: Labels = placement.node_selector.clone();
    // The first required term that admits the domain, its `In` requirements met.
    let term = (placement.required_affinity.iter().flatten()).find(|t| {
        t.match_expressions
            .iter()
            .filter(|r| r.key == key)
            .all(|r| r.values.iter().any(|v| v == domain))
    });
    for r in term.iter().flat_map(|t| &t.match_expressions) {
        if let (Some(v), true) = (r.values.first(), r.key != key) {
            labels.entry(r.key.clone()).or_insert_with(|| v.clone());
        }
    }
    labels.insert(key.to_string(), domain.to_string());
    labels.insert(HOSTNAME_KEY.to_string(), name.clone());
    // Room for `pods` pods, whatever each requests (a replacement is planned with the evicted
    // pod's requests, which may differ from the template's): what is asked for is the template's.
    let n = i64::try_from(pods.max(1)).unwrap_or(i64::MAX);
    Node {
        name,
        labels,
        ready: true,
        allocatable: Resources::new(i64::MAX / 4, i64::MAX / 4, n),
        provisional: true,
        ..Default::default()
    }
}

/// The short name every object of one request starts with: stable for a workload and domain.
pub fn request_name(namespace: &str, policy: &str, workload: &str, domain: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in [namespace, policy, workload, domain].join("/").bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("skewguard-room-{:010x}", hash & 0xff_ffff_ffff)
}

/// The names of the objects a request is made of.
pub fn object_names(base: &str, via: CapacityVia, pods: usize) -> Vec<String> {
    match via {
        CapacityVia::CapacityBuffer => vec![base.to_string()],
        CapacityVia::PlaceholderPods => (0..pods).map(|i| format!("{base}-{i}")).collect(),
    }
}

/// What the autoscaler is asked to make room for: the moving pod's shape, pinned to the domain.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape<'a> {
    pub key: &'a str,
    pub domain: &'a str,
    pub placement: &'a Placement,
    pub requests: Resources,
}

/// The pod spec of a placeholder (or of a buffer's PodTemplate): the pause image with the
/// moving pod's requests, its tolerations and node selector, and its required node affinity
/// with the domain added to every term.
fn pod_spec(shape: &Shape<'_>, placeholder: bool) -> Value {
    let zone = json!({"key": shape.key, "operator": "In", "values": [shape.domain]});
    let terms: Vec<Value> = match &shape.placement.required_affinity {
        Some(terms) if !terms.is_empty() => terms
            .iter()
            .map(|t| {
                let mut expressions: Vec<Value> = (t.match_expressions.iter())
                    .filter(|r| r.key != shape.key)
                    .map(|r| {
                        let operator = format!("{:?}", r.operator);
                        json!({"key": r.key, "operator": operator, "values": r.values})
                    })
                    .collect();
                expressions.push(zone.clone());
                json!({"matchExpressions": expressions})
            })
            .collect(),
        _ => vec![json!({"matchExpressions": [zone]})],
    };
    let tolerations: Vec<Value> = (shape.placement.tolerations.iter())
        .map(|t| {
            let mut toleration = json!({"operator": format!("{:?}", t.operator)});
            if let Some(key) = &t.key {
                toleration["key"] = json!(key);
            }
            if !t.value.is_empty() {
                toleration["value"] = json!(t.value);
            }
            if let Some(effect) = t.effect {
                toleration["effect"] = json!(format!("{effect:?}"));
            }
            toleration
        })
        .collect();
    let mut spec = json!({
        "containers": [{
            "name": "room",
            "image": PAUSE_IMAGE,
            "resources": {"requests": {
                "cpu": format!("{}m", shape.requests.cpu_millis),
                "memory": shape.requests.memory_bytes.to_string(),
            }},
        }],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": terms}}},
        "tolerations": tolerations,
        "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": false,
    });
    if !shape.placement.node_selector.is_empty() {
        spec["nodeSelector"] = json!(shape.placement.node_selector);
    }
    if placeholder {
        spec["priorityClassName"] = json!(PLACEHOLDER_PRIORITY_CLASS);
        spec["preemptionPolicy"] = json!("Never");
    }
    spec
}

/// The metadata every object of a request carries: its name, the HAPolicy as owner (deleting
/// the policy deletes it), skewguard's label.
fn metadata(policy: &HAPolicy, name: &str, base: &str) -> Value {
    let owner = json!({
        "apiVersion": "skewguard.dev/v1alpha1",
        "kind": "HAPolicy",
        "name": policy.metadata.name,
        "uid": policy.metadata.uid,
        "blockOwnerDeletion": false,
    });
    json!({
        "name": name,
        "namespace": policy.metadata.namespace,
        "labels": BTreeMap::from([(PLACEHOLDER_LABEL, base), ("app.kubernetes.io/managed-by", "skewguard")]),
        "ownerReferences": [owner],
    })
}

/// The objects to create for a request, in order (each a whole object with its apiVersion and
/// kind): a PodTemplate and the CapacityBuffer that points at it, or the placeholder pods.
pub fn request_objects(
    policy: &HAPolicy,
    base: &str,
    via: CapacityVia,
    pods: usize,
    shape: &Shape<'_>,
) -> Vec<Value> {
    match via {
        CapacityVia::CapacityBuffer => vec![
            json!({
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": metadata(policy, base, base),
                "template": {"metadata": {"labels": {PLACEHOLDER_LABEL: base}},
                             "spec": pod_spec(shape, false)},
            }),
            json!({
                "apiVersion": "autoscaling.x-k8s.io/v1beta1",
                "kind": "CapacityBuffer",
                "metadata": metadata(policy, base, base),
                "spec": {"podTemplateRef": {"name": base}, "replicas": pods},
            }),
        ],
        CapacityVia::PlaceholderPods => object_names(base, via, pods)
            .iter()
            .map(|name| {
                json!({
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": metadata(policy, name, base),
                    "spec": pod_spec(shape, true),
                })
            })
            .collect(),
    }
}

/// The key and domain of a provisional node, by its name (`None`: a real node).
pub fn provisional_target(node: &str) -> Option<(&str, &str)> {
    node.strip_prefix(PROVISIONAL_PREFIX)?.split_once('=')
}

/// Measures the workload over its expected domains too (the expected domains its pods may run
/// in, by their node selector and required affinity on the key) and plans accordingly: with
/// `rebalance.provisioning` on, toward provisional nodes where a domain has none that would take
/// a pod (missing, or only full nodes); without, a skew that only the missing domains make is
/// [`Obstacle::DomainMissing`].
pub fn expect_and_plan(
    evaluation: &mut Evaluation,
    cluster: &Cluster,
    workload: &Workload,
    expected: &Expected,
    rebalance: &RebalanceSpec,
    options: &PlanOptions,
) {
    let placement = &workload.template.placement;
    for c in &mut evaluation.measurement.constraints {
        if let Some(domains) = expected.of(&c.topology_key) {
            let key = c.topology_key.clone();
            c.expect(
                (domains.iter())
                    .filter(|d| admits_domain(placement, &key, d))
                    .map(String::as_str),
            );
        }
    }
    let measurement = &evaluation.measurement;
    if measurement.within_policy() {
        return;
    }
    let missing: Vec<(&str, &str)> = (measurement.constraints.iter())
        .flat_map(|c| {
            let missing = c.expected.iter().flat_map(|e| &e.missing);
            missing.map(|d| (c.topology_key.as_str(), d.as_str()))
        })
        .collect();
    let no_room = |plan: &Result<Plan, Obstacle>| match plan {
        Err(Obstacle::NoCapacity | Obstacle::AlreadyBalanced) => true,
        Ok(plan) => plan.moves.is_empty() && plan.shortfall == Some(Obstacle::NoCapacity),
        Err(_) => false,
    };
    if !rebalance.provisioning.enabled || rebalance.strategy != RebalanceStrategy::Evict {
        if !missing.is_empty() && matches!(evaluation.plan, Err(Obstacle::AlreadyBalanced)) {
            evaluation.plan = Err(Obstacle::DomainMissing);
        }
        return;
    }
    if missing.is_empty() && !no_room(&evaluation.plan) {
        return;
    }
    // Room in the missing domains, and (when nothing can move for want of room) in the domains
    // of the unbalanced constraints whose nodes have none for one more pod.
    let mut wanted: Vec<(String, String)> = missing
        .iter()
        .map(|(k, d)| (k.to_string(), d.to_string()))
        .collect();
    if no_room(&evaluation.plan) {
        for c in measurement
            .constraints
            .iter()
            .filter(|c| !c.within_max_skew())
        {
            let key = c.topology_key.as_str();
            if key == HOSTNAME_KEY {
                continue;
            }
            for (domain, _) in c.domains.iter() {
                if !room_in(cluster, workload, key, domain) {
                    wanted.push((key.to_string(), domain.to_string()));
                }
            }
        }
    }
    wanted.sort();
    wanted.dedup();
    if wanted.is_empty() {
        return;
    }
    let extra = (wanted.iter())
        .map(|(key, domain)| provisional_node(key, domain, placement, options.max_moves))
        .collect();
    let widened = cluster.with_nodes(extra);
    let plan = evaluate(&widened, workload, options).plan;
    if plan.as_ref().is_ok_and(|p| !p.moves.is_empty()) {
        evaluation.plan = plan;
    }
}

/// Whether some node of `domain` would take one more of the workload's pods (Ready, schedulable,
/// untainted for it, matching its affinity, with room).
fn room_in(cluster: &Cluster, workload: &Workload, key: &str, domain: &str) -> bool {
    let template = &workload.template;
    let incoming = Incoming {
        placement: &template.placement,
        requests: template.requests,
        volume_zone: VolumeZone::Free,
    };
    (cluster.nodes().iter().enumerate())
        .filter(|(_, n)| n.labels.get(key).is_some_and(|d| d == domain))
        .any(|(i, n)| {
            static_fit(n, &incoming).is_ok() && cluster.free(i).covers(&template.requests)
        })
}

/// What the capacity step decided: a request to make or one to withdraw (with the writes'
/// order: a withdrawal before the evictions of the same step).
#[derive(Clone, Debug, PartialEq)]
pub enum CapacityWrite {
    Request {
        request: CapacityRequest,
        objects: Vec<Value>,
    },
    Release(CapacityRequest),
}

/// What the capacity step needs besides the decision and the memory.
#[derive(Clone, Copy, Debug)]
pub struct CapacityAsk<'a> {
    pub policy: &'a HAPolicy,
    pub workload: &'a Workload,
    pub rebalance: &'a RebalanceSpec,
    /// How room is asked for on this cluster.
    pub via: CapacityVia,
    /// Whether this step may write (not paused, not --dry-run, the governing policy).
    pub may_request: bool,
    pub now: Timestamp,
}

/// Turns a decision to evict toward provisional nodes into a request for room, waits for it,
/// uses it or gives it up (see the module doc). Returns the writes, and notes for the status.
pub fn capacity_step(
    decision: &mut Decision,
    memory: &mut Memory,
    ask: &CapacityAsk<'_>,
) -> (Vec<CapacityWrite>, Vec<String>) {
    let now = ask.now;
    let timeout =
        Duration::from_secs(u64::try_from(ask.rebalance.provisioning.timeout_seconds).unwrap_or(0));
    let moves: &[Move] = match &decision.disruption {
        Disruption::Evict(moves) => moves,
        _ => &[],
    };
    let toward: Vec<(&str, &str)> = (moves.iter())
        .filter_map(|m| provisional_target(&m.to_node))
        .collect();
    let mut writes = Vec::new();
    let mut notes = Vec::new();
    if let Some(request) = memory.capacity.clone() {
        if request.used {
            // A buffer kept until the moves toward its room are judged.
            if memory.in_flight.is_empty() {
                memory.capacity = None;
                writes.push(CapacityWrite::Release(request));
            }
            return (writes, notes);
        }
        let waited = now
            .duration_since(request.requested_at.0)
            .try_into()
            .unwrap_or(Duration::ZERO);
        if !toward.is_empty() && waited >= timeout {
            memory.capacity = None;
            memory.capacity_blocked_until = Some(plus(now, timeout));
            *decision = blocked(reason::PROVISIONING_TIMED_OUT, timeout);
            notes.push(format!(
                "no node of {} came with room within {}s: the request was withdrawn",
                request.domain,
                timeout.as_secs()
            ));
            writes.push(CapacityWrite::Release(request));
        } else if !toward.is_empty() {
            wait_for_room(decision);
        } else if !moves.is_empty() {
            // The room is there (every move has a real node): the moves go now. Placeholders
            // make way first; a buffer stays until the moves are judged.
            match request.via {
                CapacityVia::PlaceholderPods => {
                    memory.capacity = None;
                    writes.push(CapacityWrite::Release(request));
                }
                CapacityVia::CapacityBuffer => {
                    if let Some(r) = memory.capacity.as_mut() {
                        r.used = true;
                    }
                }
            }
        } else {
            // Balanced, paused, blocked, or the room came another way: not wanted any more.
            memory.capacity = None;
            writes.push(CapacityWrite::Release(request));
        }
        return (writes, notes);
    }
    let Some(&(key, domain)) = toward.first() else {
        return (writes, notes);
    };
    if let Some(until) = memory.capacity_blocked_until {
        if until > now {
            let left = until
                .duration_since(now)
                .try_into()
                .unwrap_or(Duration::ZERO);
            *decision = blocked(reason::PROVISIONING_TIMED_OUT, left);
            return (writes, notes);
        }
        memory.capacity_blocked_until = None;
    }
    let pods = toward.iter().filter(|t| **t == (key, domain)).count();
    let workload = ask.workload;
    let base = request_name(
        &workload.namespace,
        ask.policy.metadata.name.as_deref().unwrap_or_default(),
        &workload.name,
        domain,
    );
    let request = CapacityRequest {
        topology_key: key.to_string(),
        domain: domain.to_string(),
        pods: i32::try_from(pods).unwrap_or(i32::MAX),
        via: ask.via,
        names: object_names(&base, ask.via, pods),
        requested_at: Time(now),
        used: false,
    };
    if ask.may_request {
        let shape = Shape {
            key,
            domain,
            placement: &workload.template.placement,
            requests: workload.template.requests,
        };
        let objects = request_objects(ask.policy, &base, ask.via, pods, &shape);
        memory.capacity = Some(request.clone());
        writes.push(CapacityWrite::Request {
            request: request.clone(),
            objects,
        });
    } else {
        notes.push(format!(
            "would ask the autoscaler for room for {pods} pod(s) in {domain}"
        ));
    }
    wait_for_room(decision);
    (writes, notes)
}

fn wait_for_room(decision: &mut Decision) {
    decision.disruption = Disruption::None;
    decision.state = RebalanceState::Provisioning;
    decision.reason = reason::AWAITING_CAPACITY;
    decision.requeue_after = Some(POLL);
}

fn blocked(why: &'static str, retry: Duration) -> Decision {
    Decision {
        disruption: Disruption::None,
        state: RebalanceState::Blocked,
        reason: why,
        requeue_after: Some(retry.max(Duration::from_secs(1))),
        moves_succeeded: 0,
        moves_failed: 0,
    }
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::topology::fixtures::labels;
    use crate::core::topology::{NodeSelectorOperator, NodeSelectorRequirement, NodeSelectorTerm};

    fn pinned() -> Placement {
        Placement {
            node_selector: labels(&[("disk", "ssd")]),
            required_affinity: Some(vec![NodeSelectorTerm {
                match_expressions: vec![
                    NodeSelectorRequirement {
                        key: "topology.kubernetes.io/zone".into(),
                        operator: NodeSelectorOperator::In,
                        values: vec!["a".into(), "c".into()],
                    },
                    NodeSelectorRequirement {
                        key: "pool".into(),
                        operator: NodeSelectorOperator::In,
                        values: vec!["general".into()],
                    },
                ],
                match_fields: vec![],
            }]),
            tolerations: vec![],
        }
    }

    #[test]
    fn a_provisional_node_is_one_the_pods_may_use() {
        let placement = pinned();
        let node = provisional_node("topology.kubernetes.io/zone", "c", &placement, 2);
        assert!(node.provisional && node.ready);
        assert!(crate::core::topology::eligibility::matches_node_affinity(
            &placement, &node
        ));
        assert_eq!(node.labels["topology.kubernetes.io/zone"], "c");
        assert_eq!(node.allocatable.pods, 2, "room for the moves, no more");
    }

    #[test]
    fn request_names_are_stable_and_apart() {
        let a = request_name("ns", "p", "web", "c");
        assert_eq!(a, request_name("ns", "p", "web", "c"));
        assert_ne!(a, request_name("ns", "p", "web", "b"));
        assert!(a.len() <= 63 - 4, "room for the pod index: {a}");
        assert_eq!(
            object_names(&a, CapacityVia::PlaceholderPods, 2),
            [format!("{a}-0"), format!("{a}-1")]
        );
    }

    #[test]
    fn placeholders_have_the_moving_pods_shape_pinned_to_the_domain() {
        let policy: HAPolicy = serde_json::from_value(json!({
            "apiVersion": "skewguard.dev/v1alpha1", "kind": "HAPolicy",
            "metadata": {"name": "p", "namespace": "ns", "uid": "p-uid"},
            "spec": {"selector": {}, "spread": [{"topologyKey": "topology.kubernetes.io/zone"}]}
        }))
        .unwrap();
        let placement = pinned();
        let shape = Shape {
            key: "topology.kubernetes.io/zone",
            domain: "c",
            placement: &placement,
            requests: Resources::new(250, 64 << 20, 1),
        };
        let pods = request_objects(&policy, "base", CapacityVia::PlaceholderPods, 2, &shape);
        assert_eq!(pods.len(), 2, "never more than the moves");
        let spec = &pods[0]["spec"];
        assert_eq!(spec["priorityClassName"], PLACEHOLDER_PRIORITY_CLASS);
        assert_eq!(
            spec["containers"][0]["resources"]["requests"]["cpu"],
            "250m"
        );
        let term = &spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchExpressions"];
        assert_eq!(
            term,
            &json!([{"key": "pool", "operator": "In", "values": ["general"]},
                    {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["c"]}])
        );
        assert_eq!(pods[0]["metadata"]["ownerReferences"][0]["uid"], "p-uid");
        assert_eq!(pods[1]["metadata"]["name"], "base-1");
        let buffer = request_objects(&policy, "base", CapacityVia::CapacityBuffer, 2, &shape);
        assert_eq!(
            buffer[1]["spec"],
            json!({"podTemplateRef": {"name": "base"}, "replicas": 2})
        );
        assert_eq!(buffer[0]["template"]["spec"].get("priorityClassName"), None);
    }
}
