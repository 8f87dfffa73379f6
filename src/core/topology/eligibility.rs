//! Which nodes count for a constraint, and which node would take a pod: the scheduler's filters
//! that matter for spreading (node selector and affinity, taints, readiness, room).

use std::cmp::Ordering;

use super::model::{
    InclusionPolicy, Node, NodeSelectorOperator, NodeSelectorRequirement, NodeSelectorTerm,
    Placement, Resources, SpreadConstraint, Taint, Toleration, TolerationOperator,
};

/// Whether one toleration tolerates one taint (the scheduler's `ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if toleration.effect.is_some_and(|e| e != taint.effect) {
        return false;
    }
    match (&toleration.key, toleration.operator) {
        (None, TolerationOperator::Exists) => true,
        (None, TolerationOperator::Equal) => false,
        (Some(key), op) if *key == taint.key => match op {
            TolerationOperator::Exists => true,
            TolerationOperator::Equal => toleration.value == taint.value,
        },
        _ => false,
    }
}

/// Every NoSchedule/NoExecute taint of the node is tolerated.
pub fn tolerates_node(tolerations: &[Toleration], node: &Node) -> bool {
    node.taints
        .iter()
        .filter(|t| t.effect.repels())
        .all(|t| tolerations.iter().any(|tol| tolerates(tol, t)))
}

/// The pod's node selector and required node affinity admit the node.
pub fn matches_node_affinity(placement: &Placement, node: &Node) -> bool {
    let selector_ok = placement
        .node_selector
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v));
    selector_ok
        && placement
            .required_affinity
            .as_ref()
            .is_none_or(|terms| terms.iter().any(|t| term_matches(t, node)))
}

/// Whether the pod's node selector and required node affinity let it run in `domain` of `key`,
/// judging only what they say of that key (a domain with no node has nothing else to judge).
pub fn admits_domain(placement: &Placement, key: &str, domain: &str) -> bool {
    let selector_ok = placement.node_selector.get(key).is_none_or(|v| v == domain);
    selector_ok
        && placement.required_affinity.as_ref().is_none_or(|terms| {
            terms.iter().any(|t| {
                (t.match_expressions.iter())
                    .filter(|r| r.key == key)
                    .all(|r| requirement_matches(r, Some(domain)))
            })
        })
}

/// An empty term matches no node, as in the API.
fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    if term.match_expressions.is_empty() && term.match_fields.is_empty() {
        return false;
    }
    term.match_expressions
        .iter()
        .all(|r| requirement_matches(r, node.labels.get(&r.key).map(String::as_str)))
        && term.match_fields.iter().all(|r| {
            let field = (r.key == "metadata.name").then_some(node.name.as_str());
            requirement_matches(r, field)
        })
}

fn requirement_matches(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let numeric = |v: &str| -> Option<Ordering> {
        let have: i64 = v.parse().ok()?;
        let want: i64 = req.values.first()?.parse().ok()?;
        Some(have.cmp(&want))
    };
    match (req.operator, value) {
        (NodeSelectorOperator::In, Some(v)) => req.values.iter().any(|x| x == v),
        (NodeSelectorOperator::In, None) => false,
        (NodeSelectorOperator::NotIn, Some(v)) => !req.values.iter().any(|x| x == v),
        (NodeSelectorOperator::NotIn, None) => true,
        (NodeSelectorOperator::Exists, v) => v.is_some(),
        (NodeSelectorOperator::DoesNotExist, v) => v.is_none(),
        (NodeSelectorOperator::Gt, Some(v)) => numeric(v) == Some(Ordering::Greater),
        (NodeSelectorOperator::Lt, Some(v)) => numeric(v) == Some(Ordering::Less),
        (NodeSelectorOperator::Gt | NodeSelectorOperator::Lt, None) => false,
    }
}

/// Whether a node's pods count for `constraint` when placing a pod shaped like `placement`,
/// given that the node carries every topology key of the pod's constraints: it must pass the
/// constraint's node affinity and taint policies.
pub fn counts_for_constraint(
    constraint: &SpreadConstraint,
    placement: &Placement,
    node: &Node,
) -> bool {
    (constraint.node_affinity_policy == InclusionPolicy::Ignore
        || matches_node_affinity(placement, node))
        && (constraint.node_taints_policy == InclusionPolicy::Ignore
            || tolerates_node(&placement.tolerations, node))
}

/// Whether the scheduler could place a pod on this node now: Ready, not cordoned, taints
/// tolerated, selector and affinity satisfied and, when `check_room`, enough free resources.
pub fn would_accept(
    node: &Node,
    placement: &Placement,
    requests: &Resources,
    free: &Resources,
    check_room: bool,
) -> bool {
    let need = Resources::new(
        requests.cpu_millis,
        requests.memory_bytes,
        requests.pods.max(1),
    );
    node.ready
        && !node.unschedulable
        && tolerates_node(&placement.tolerations, node)
        && matches_node_affinity(placement, node)
        && (!check_room || free.covers(&need))
}
