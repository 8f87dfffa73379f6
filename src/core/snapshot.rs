//! Turning watched Kubernetes objects into the core's plain data ([`crate::core::topology`]).
//!
//! Malformed fields never stop the conversion: an unparseable quantity counts as zero (and the
//! object's name is logged by the caller), an unknown operator matches nothing.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::core::topology::{
    Labels, Node, NodeSelectorOperator, NodeSelectorRequirement, NodeSelectorTerm, Placement, Pod,
    Resources, Taint, TaintEffect, Toleration, TolerationOperator, Unschedulable,
};

pub fn node_from(node: &core::Node) -> Node {
    let spec = node.spec.clone().unwrap_or_default();
    let status = node.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    let allocatable = status
        .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()))
        .map(resources_of)
        .unwrap_or_default();
    let disrupting = node.metadata.deletion_timestamp.is_some()
        || (spec.taints.iter().flatten()).any(|t| t.key == DISRUPTED_TAINT);
    Node {
        name: node.metadata.name.clone().unwrap_or_default(),
        labels: node.metadata.labels.clone().unwrap_or_default(),
        taints: spec
            .taints
            .unwrap_or_default()
            .iter()
            .filter_map(taint_from)
            .collect(),
        unschedulable: spec.unschedulable.unwrap_or(false),
        ready,
        allocatable,
        disrupting,
        provisional: false,
    }
}

/// The taint Karpenter puts on a node it is about to remove.
pub const DISRUPTED_TAINT: &str = "karpenter.sh/disrupted";

pub fn pod_from(pod: &LeanPod) -> Pod {
    let spec = &pod.spec;
    let phase = pod.status.phase.as_deref().unwrap_or("");
    let ready = pod
        .status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .is_some_and(|c| c.status == "True");
    Pod {
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        resource_version: pod.metadata.resource_version.clone().unwrap_or_default(),
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        node_name: spec.node_name.clone(),
        terminating: pod.metadata.deletion_timestamp.is_some(),
        finished: matches!(phase, "Succeeded" | "Failed"),
        ready,
        placement: placement_from(&spec.node_selector, &spec.affinity, &spec.tolerations),
        requests: spec.requests(),
        priority: spec.priority.unwrap_or(0),
        has_volume_claims: spec
            .volumes
            .iter()
            .flatten()
            .any(|v| v.persistent_volume_claim.is_some() || v.ephemeral.is_some()),
        opted_out: pod
            .metadata
            .annotations
            .as_ref()
            .is_some_and(crate::core::topology::opts_out),
        deletion_cost: crate::core::topology::deletion_cost::annotated_cost(
            pod.metadata.annotations.as_ref(),
        ),
        deletion_cost_ours: owns_deletion_cost(&pod.metadata),
        owner: crate::core::pod_owner::owner_of(
            pod.metadata.owner_references.as_deref().unwrap_or_default(),
            pod.metadata.labels.as_ref().unwrap_or(&Labels::new()),
        ),
        created: pod
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(0, |t| t.0.as_second()),
        spread_keys: spec
            .topology_spread_constraints
            .iter()
            .flatten()
            .map(|c| c.topology_key.clone())
            .collect(),
        hard_spread_keys: spec
            .topology_spread_constraints
            .iter()
            .flatten()
            .filter(|c| c.when_unsatisfiable == "DoNotSchedule")
            .map(|c| c.topology_key.clone())
            .collect(),
        unschedulable: unschedulable(pod),
        memo: Default::default(),
        preferred_anti_affinity: spec
            .affinity
            .as_ref()
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .is_some_and(|terms| !terms.is_empty()),
        placeholder: (pod.metadata.labels.as_ref())
            .is_some_and(|l| l.contains_key(crate::core::capacity::PLACEHOLDER_LABEL)),
    }
}

/// Why the scheduler left an unbound pod Pending, if it did (its PodScheduled condition, False).
fn unschedulable(pod: &LeanPod) -> Option<Unschedulable> {
    if pod.spec.node_name.is_some() {
        return None;
    }
    let scheduled = (pod.status.conditions.iter().flatten()).find(|c| c.type_ == "PodScheduled")?;
    (scheduled.status == "False").then(|| Unschedulable {
        by_spread: scheduled.reason.as_deref() == Some("Unschedulable")
            && scheduled
                .message
                .as_deref()
                .is_some_and(turned_down_by_spread),
        since: scheduled
            .last_transition_time
            .as_ref()
            .map_or(0, |t| t.0.as_second()),
    })
}

/// What kube-scheduler writes for nodes its PodTopologySpread filter turned down
/// (`ErrReasonConstraintsNotMatch`); nodes that lack the key are counted apart, with
/// " (missing required label)" after it.
pub const SPREAD_NOT_MATCHED: &str = "node(s) didn't match pod topology spread constraints";

/// Whether the scheduler's "0/N nodes are available: ..." message counts nodes turned down only by
/// a topology spread constraint (the filters run in order and a node is counted under the first
/// that turned it down, so those nodes passed taints, affinity and room).
///
/// The list ends at its first sentence's end: what follows is each PostFilter's say ("preemption:
/// ...", and where dynamic resource allocation is on, "no new claims to deallocate" first).
pub fn turned_down_by_spread(message: &str) -> bool {
    let reasons = message.split_once(": ").map_or(message, |(_, r)| r);
    let reasons = reasons.split(". ").next().unwrap_or_default();
    reasons.split(", ").any(|r| {
        let r = r.trim().trim_end_matches('.');
        r.split_once(' ').is_some_and(|(n, rest)| {
            n.parse::<u32>().is_ok_and(|n| n > 0) && rest == SPREAD_NOT_MATCHED
        })
    })
}

/// Whether skewguard's field manager owns the pod's `pod-deletion-cost` annotation.
fn owns_deletion_cost(meta: &ObjectMeta) -> bool {
    let field = format!(
        "f:{}",
        crate::core::topology::deletion_cost::DELETION_COST_ANNOTATION
    );
    meta.managed_fields.iter().flatten().any(|m| {
        m.manager.as_deref() == Some(crate::api::FIELD_MANAGER)
            && m.fields_v1
                .as_ref()
                .and_then(|f| f.0.get("f:metadata")?.get("f:annotations")?.get(&field))
                .is_some()
    })
}

/// Node selector, required node affinity and tolerations of a pod spec.
pub fn placement_of(spec: &core::PodSpec) -> Placement {
    placement_from(&spec.node_selector, &spec.affinity, &spec.tolerations)
}

fn placement_from(
    node_selector: &Option<BTreeMap<String, String>>,
    affinity: &Option<core::Affinity>,
    tolerations: &Option<Vec<core::Toleration>>,
) -> Placement {
    let required_affinity = affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|sel| sel.node_selector_terms.iter().map(term_from).collect());
    Placement {
        node_selector: node_selector.clone().unwrap_or_default(),
        required_affinity,
        tolerations: tolerations.iter().flatten().map(toleration_from).collect(),
    }
}

/// What the scheduler reserves for a pod: the larger of the containers' sum and the largest
/// init container, plus overhead.
pub fn requests_of(spec: &core::PodSpec) -> Resources {
    fn requests(c: &core::Container) -> Option<&BTreeMap<String, Quantity>> {
        c.resources.as_ref().and_then(|r| r.requests.as_ref())
    }
    requests_from(
        spec.containers.iter().map(requests),
        spec.init_containers.iter().flatten().map(requests),
        spec.overhead.as_ref(),
    )
}

fn requests_from<'a>(
    containers: impl Iterator<Item = Option<&'a BTreeMap<String, Quantity>>>,
    init_containers: impl Iterator<Item = Option<&'a BTreeMap<String, Quantity>>>,
    overhead: Option<&BTreeMap<String, Quantity>>,
) -> Resources {
    let requests = |r: Option<&BTreeMap<String, Quantity>>| r.map(resources_of).unwrap_or_default();
    let sum = containers
        .map(requests)
        .fold(Resources::default(), |a, b| a.plus(&b));
    let init = init_containers
        .map(requests)
        .fold(Resources::default(), |a, b| {
            Resources::new(
                a.cpu_millis.max(b.cpu_millis),
                a.memory_bytes.max(b.memory_bytes),
                0,
            )
        });
    let overhead = overhead.map(resources_of).unwrap_or_default();
    Resources::new(
        (sum.cpu_millis.max(init.cpu_millis)).saturating_add(overhead.cpu_millis),
        (sum.memory_bytes.max(init.memory_bytes)).saturating_add(overhead.memory_bytes),
        1,
    )
}

/// A Pod with only the fields spread measurement needs. Deserializing straight into it skips
/// everything else (container images, env, probes, most of the status), so 10,000 cached pods
/// stay small; kube's `inherit` makes it usable with `Api` and reflectors like a Pod.
#[derive(kube::Resource, Deserialize, Serialize, Clone, Debug, Default)]
#[resource(inherit = "core::Pod")]
pub struct LeanPod {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: LeanPodSpec,
    #[serde(default)]
    pub status: LeanPodStatus,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct LeanPodSpec {
    pub node_name: Option<String>,
    pub node_selector: Option<BTreeMap<String, String>>,
    pub affinity: Option<core::Affinity>,
    pub tolerations: Option<Vec<core::Toleration>>,
    pub priority: Option<i32>,
    #[serde(default)]
    pub containers: Vec<LeanContainer>,
    pub init_containers: Option<Vec<LeanContainer>>,
    pub overhead: Option<BTreeMap<String, Quantity>>,
    pub volumes: Option<Vec<LeanVolume>>,
    /// Only the topology key of each constraint: what admission mode checks new pods for.
    pub topology_spread_constraints: Option<Vec<LeanConstraint>>,
    /// The pod's requests, once [`LeanPodSpec::settle_requests`] has folded the containers into
    /// them (a map per container costs more than the whole rest of the pod).
    #[serde(skip)]
    pub settled_requests: Option<Resources>,
}

impl LeanPodSpec {
    pub fn requests(&self) -> Resources {
        self.settled_requests.unwrap_or_else(|| {
            requests_from(
                self.containers.iter().map(|c| c.requests()),
                self.init_containers.iter().flatten().map(|c| c.requests()),
                self.overhead.as_ref(),
            )
        })
    }

    /// Computes the requests once and drops the containers they came from.
    pub fn settle_requests(&mut self) {
        self.settled_requests = Some(self.requests());
        self.containers = Vec::new();
        self.init_containers = None;
        self.overhead = None;
    }
}

/// Only a container's requests: limits and claims never reach the scheduler's fit check.
#[derive(Deserialize, Serialize, Clone, Debug, Default)]
pub struct LeanContainer {
    pub resources: Option<LeanResources>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default)]
pub struct LeanResources {
    pub requests: Option<BTreeMap<String, Quantity>>,
}

impl LeanContainer {
    fn requests(&self) -> Option<&BTreeMap<String, Quantity>> {
        self.resources.as_ref().and_then(|r| r.requests.as_ref())
    }
}

/// Only a constraint's topology key and whenUnsatisfiable: the pod's constraints are not
/// measured with (the workload's are), only checked for presence and for the hard form.
#[derive(Deserialize, Serialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct LeanConstraint {
    pub topology_key: String,
    #[serde(default)]
    pub when_unsatisfiable: String,
}

/// Only whether a volume is a claim matters: claims pin a pod to its zone.
#[derive(Deserialize, Serialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct LeanVolume {
    pub persistent_volume_claim: Option<core::PersistentVolumeClaimVolumeSource>,
    pub ephemeral: Option<serde_json::Value>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default)]
pub struct LeanPodStatus {
    pub phase: Option<String>,
    pub conditions: Option<Vec<core::PodCondition>>,
}

fn resources_of(list: &BTreeMap<String, Quantity>) -> Resources {
    Resources::new(
        list.get("cpu").map_or(0, |q| cpu_millis(&q.0).unwrap_or(0)),
        list.get("memory").map_or(0, |q| bytes(&q.0).unwrap_or(0)),
        list.get("pods").map_or(0, |q| bytes(&q.0).unwrap_or(0)),
    )
}

/// A CPU quantity in millicores ("250m", "2", "1.5"), rounded up as the scheduler does.
/// Saturates (see [`whole_units`]).
pub fn cpu_millis(q: &str) -> Option<i64> {
    let q = q.trim();
    if let Some(m) = q.strip_suffix('m') {
        return m.parse::<f64>().ok().map(whole_units);
    }
    quantity(q).map(|v| whole_units(v * 1000.0))
}

/// A quantity in base units ("128Mi", "1G", "1e3", "100"). Saturates (see [`whole_units`]).
pub fn bytes(q: &str) -> Option<i64> {
    quantity(q.trim()).map(whole_units)
}

/// Rounded up to whole units, within `0..=i64::MAX`: a quantity past i64 (`1e400Ki`, infinite
/// as an f64) is i64::MAX, a negative one (which the API server refuses anyway) or NaN is 0, so
/// no request ever reads as free room.
fn whole_units(v: f64) -> i64 {
    if v.is_nan() || v <= 0.0 {
        0
    } else {
        // `as` saturates at i64::MAX (infinity included).
        v.ceil() as i64
    }
}

fn quantity(q: &str) -> Option<f64> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (suffix, factor) in SUFFIXES {
        if let Some(number) = q.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|v| v * factor);
        }
    }
    q.parse::<f64>().ok()
}

fn taint_from(t: &core::Taint) -> Option<Taint> {
    Some(Taint {
        key: t.key.clone(),
        value: t.value.clone().unwrap_or_default(),
        effect: effect_from(&t.effect)?,
    })
}

fn effect_from(effect: &str) -> Option<TaintEffect> {
    match effect {
        "NoSchedule" => Some(TaintEffect::NoSchedule),
        "PreferNoSchedule" => Some(TaintEffect::PreferNoSchedule),
        "NoExecute" => Some(TaintEffect::NoExecute),
        _ => None,
    }
}

fn toleration_from(t: &core::Toleration) -> Toleration {
    Toleration {
        key: t.key.clone().filter(|k| !k.is_empty()),
        operator: match t.operator.as_deref() {
            Some("Exists") => TolerationOperator::Exists,
            _ => TolerationOperator::Equal,
        },
        value: t.value.clone().unwrap_or_default(),
        effect: t.effect.as_deref().and_then(effect_from),
    }
}

fn term_from(term: &core::NodeSelectorTerm) -> NodeSelectorTerm {
    let requirements = |reqs: &Option<Vec<core::NodeSelectorRequirement>>| {
        reqs.iter()
            .flatten()
            .map(|r| NodeSelectorRequirement {
                key: r.key.clone(),
                operator: match r.operator.as_str() {
                    "In" => NodeSelectorOperator::In,
                    "NotIn" => NodeSelectorOperator::NotIn,
                    "Exists" => NodeSelectorOperator::Exists,
                    "DoesNotExist" => NodeSelectorOperator::DoesNotExist,
                    "Gt" => NodeSelectorOperator::Gt,
                    "Lt" => NodeSelectorOperator::Lt,
                    // Unknown operators match nothing: `In` an empty set.
                    _ => NodeSelectorOperator::In,
                },
                values: if matches!(
                    r.operator.as_str(),
                    "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt"
                ) {
                    r.values.clone().unwrap_or_default()
                } else {
                    Vec::new()
                },
            })
            .collect()
    };
    NodeSelectorTerm {
        match_expressions: requirements(&term.match_expressions),
        match_fields: requirements(&term.match_fields),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(cpu_millis("250m"), Some(250));
        assert_eq!(cpu_millis("2"), Some(2000));
        assert_eq!(cpu_millis("1.5"), Some(1500));
        assert_eq!(bytes("128Mi"), Some(128 << 20));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("1e3"), Some(1000));
        assert_eq!(bytes("110"), Some(110));
        assert_eq!(bytes("lots"), None);
    }

    #[test]
    fn absurd_quantities_saturate_never_wrap() {
        assert_eq!(bytes("1e400Ki"), Some(i64::MAX));
        assert_eq!(bytes("1e400"), Some(i64::MAX));
        assert_eq!(cpu_millis("1e400"), Some(i64::MAX));
        assert_eq!(cpu_millis("1e400m"), Some(i64::MAX));
        assert_eq!(bytes("9e18Ei"), Some(i64::MAX));
        assert_eq!(
            bytes("-1e400Ki"),
            Some(0),
            "negative reads as nothing, never as room"
        );
        assert_eq!(cpu_millis("NaN"), Some(0));
        // Containers, init containers and overhead each at the limit: the pod asks i64::MAX.
        let pod: LeanPod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "huge", "namespace": "shop"},
            "spec": {"nodeName": "n1",
                     "containers": [
                         {"name": "a", "resources": {"requests": {"cpu": "1e400", "memory": "1e400Ki"}}},
                         {"name": "b", "resources": {"requests": {"cpu": "1e400", "memory": "1e400Ki"}}}],
                     "initContainers": [{"name": "i", "resources": {"requests": {"memory": "1e400Ki"}}}],
                     "overhead": {"cpu": "1e400", "memory": "8Ei"}},
            "status": {"phase": "Running"}
        }))
        .unwrap();
        let p = pod_from(&pod);
        assert_eq!(p.requests, Resources::new(i64::MAX, i64::MAX, 1));
        // And on a node: it fills the node, the rest of the node's sums saturate too.
        let node = Node {
            name: "n1".into(),
            allocatable: Resources::new(4000, 8 << 30, 110),
            ready: true,
            ..Default::default()
        };
        let cluster = crate::core::topology::Cluster::new(vec![node], vec![p.clone(), p]);
        assert!(!cluster.free(0).covers(&Resources::new(1, 1, 1)));
        assert!(cluster.free(0).cpu_millis < 0);
    }

    #[test]
    fn pod_conversion_reads_binding_deletion_requests_and_claims() {
        let pod: LeanPod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"},
                         "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {
                "nodeName": "n1",
                "priority": 7,
                "nodeSelector": {"disk": "ssd"},
                "tolerations": [{"operator": "Exists"}],
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "150m"}}}
                ],
                "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "1"}}}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "d"}}]
            },
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        let p = pod_from(&pod);
        assert_eq!(p.node_name.as_deref(), Some("n1"));
        assert!(p.terminating && p.ready && !p.finished && p.has_volume_claims);
        assert_eq!(p.requests, Resources::new(1000, 64 << 20, 1));
        assert_eq!(p.priority, 7);
        assert!(p.placement.is_pinned());
        assert_eq!(
            p.placement.tolerations[0].operator,
            TolerationOperator::Exists
        );
    }

    #[test]
    fn a_pending_pod_says_whether_only_its_spread_turned_nodes_down() {
        let scheduler = |message: &str| -> LeanPod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web-2", "namespace": "shop"},
                "spec": {"topologySpreadConstraints": [
                    {"topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule"},
                    {"topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway"}]},
                "status": {"phase": "Pending", "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                     "lastTransitionTime": "2026-01-01T00:00:10Z", "message": message}]}
            }))
            .unwrap()
        };
        let spread = "0/4 nodes are available: 2 node(s) didn't match pod topology spread constraints, \
                      2 node(s) had untolerated taint {node.kubernetes.io/unschedulable: }. \
                      preemption: 0/4 nodes are available: 2 No preemption victims found for incoming pod, \
                      2 Preemption is not helpful for scheduling.";
        let p = pod_from(&scheduler(spread));
        assert_eq!(p.hard_spread_keys, ["topology.kubernetes.io/zone"]);
        assert_eq!(p.spread_keys.len(), 2);
        let u = p.unschedulable.unwrap();
        assert!(u.by_spread);
        assert_eq!(u.since, 1_767_225_610);
        // v1.36 (dynamic resource allocation on): its PostFilter speaks before preemption.
        assert!(turned_down_by_spread(
            "0/6 nodes are available: 2 node(s) were unschedulable, 4 node(s) didn't match pod \
             topology spread constraints. no new claims to deallocate, preemption: 0/6 nodes are \
             available: 2 Preemption is not helpful for scheduling, 4 No preemption victims found \
             for incoming pod."
        ));
        assert!(!turned_down_by_spread(
            "0/6 nodes are available: 6 Insufficient cpu. no new claims to deallocate, preemption: \
             0/6 nodes are available: 6 No preemption victims found for incoming pod."
        ));
        // Only the spread, at the end of the list.
        assert!(turned_down_by_spread(
            "0/2 nodes are available: 2 node(s) didn't match pod topology spread constraints."
        ));
        // Pending for another reason: no room, a taint, nodes lacking the key.
        for other in [
            "0/4 nodes are available: 4 Insufficient cpu. preemption: 0/4 nodes are available: 4 No preemption victims found for incoming pod.",
            "0/2 nodes are available: 2 node(s) had untolerated taint {node.kubernetes.io/unschedulable: }.",
            "0/2 nodes are available: 2 node(s) didn't match pod topology spread constraints (missing required label).",
            "0/3 nodes are available: 3 node(s) had volume node affinity conflict.",
        ] {
            assert!(
                !pod_from(&scheduler(other)).unschedulable.unwrap().by_spread,
                "{other}"
            );
        }
        // Another reason than Unschedulable (a scheduling gate), or a bound pod: not stranded.
        let mut gated = scheduler(spread);
        gated.status.conditions.as_mut().unwrap()[0].reason = Some("SchedulingGated".into());
        assert!(!pod_from(&gated).unschedulable.unwrap().by_spread);
        let mut bound = scheduler(spread);
        bound.spec.node_name = Some("n1".into());
        assert_eq!(pod_from(&bound).unschedulable, None);
    }

    #[test]
    fn node_conversion_reads_readiness_cordon_and_taints() {
        let node: core::Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "a"}},
            "spec": {"unschedulable": true, "taints": [
                {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
                {"key": "weird", "effect": "Sometimes"}
            ]},
            "status": {
                "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "False"}]
            }
        }))
        .unwrap();
        let n = node_from(&node);
        assert!(n.unschedulable && !n.ready);
        assert_eq!(n.taints.len(), 1, "an unknown effect is dropped");
        assert_eq!(n.allocatable, Resources::new(4000, 8 << 30, 110));
    }
}
