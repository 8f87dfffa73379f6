//! Builders of plain cluster data, the one place the core's unit tests, the integration tests
//! and the benchmarks take them from: Ready nodes with zone and hostname labels, running pods of
//! an app, workloads spreading over keys.

use kube::core::Selector;

use super::*;

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn selector(pairs: &[(&str, &str)]) -> Selector {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A Ready node with zone and hostname labels and room for plenty of pods.
pub fn node(name: &str, zone: &str) -> Node {
    Node {
        name: name.to_string(),
        labels: labels(&[(ZONE_KEY, zone), (HOSTNAME_KEY, name)]),
        taints: vec![],
        unschedulable: false,
        ready: true,
        allocatable: Resources::new(64_000, 256 << 30, 110),
        ..Default::default()
    }
}

/// A running, ready pod of `app` bound to `node_name`, owned by the Deployment `app`.
pub fn pod(name: &str, namespace: &str, app: &str, node_name: &str) -> Pod {
    Pod {
        name: name.to_string(),
        uid: format!("uid-{namespace}-{name}"),
        namespace: namespace.to_string(),
        labels: labels(&[("app", app)]),
        node_name: Some(node_name.to_string()),
        terminating: false,
        finished: false,
        ready: true,
        placement: Placement::default(),
        requests: Resources::new(100, 128 << 20, 1),
        priority: 0,
        has_volume_claims: false,
        // As the Deployment controller makes them: the Deployment is named after its app.
        owner: Some(super::PodOwner {
            kind: crate::api::WorkloadKind::Deployment,
            name: app.to_string(),
        }),
        ..Default::default()
    }
}

/// `count` pods of `app` on each node, named `app-<node>-<i>`.
pub fn pods_on(namespace: &str, app: &str, per_node: &[(&str, usize)]) -> Vec<Pod> {
    per_node
        .iter()
        .flat_map(|(n, count)| {
            (0..*count).map(move |i| pod(&format!("{app}-{n}-{i}"), namespace, app, n))
        })
        .collect()
}

pub fn constraint(key: &str, max_skew: i32, app: &str) -> SpreadConstraint {
    SpreadConstraint::new(key, max_skew, selector(&[("app", app)]))
}

pub fn workload(namespace: &str, app: &str, constraints: Vec<SpreadConstraint>) -> Workload {
    Workload {
        namespace: namespace.to_string(),
        name: app.to_string(),
        pod_selector: selector(&[("app", app)]),
        owner: None,
        template: PodTemplate {
            labels: labels(&[("app", app)]),
            placement: Placement::default(),
            requests: Resources::new(100, 128 << 20, 1),
        },
        constraints,
    }
}

/// One node per domain `d0, d1, ...` (zone = node name) and `counts[i]` pods of `app` on node i.
pub fn one_node_per_domain(counts: &[usize], app: &str) -> (Vec<Node>, Vec<Pod>) {
    let nodes: Vec<Node> = (0..counts.len())
        .map(|i| node(&format!("d{i}"), &format!("d{i}")))
        .collect();
    let pods = pods_per_node(&nodes, counts, app);
    (nodes, pods)
}

/// `counts[i]` pods of `app` on `nodes[i]`.
fn pods_per_node<'a>(
    nodes: &[Node],
    counts: impl IntoIterator<Item = &'a usize>,
    app: &str,
) -> Vec<Pod> {
    let placement: Vec<(&str, usize)> = nodes
        .iter()
        .zip(counts)
        .map(|(n, c)| (n.name.as_str(), *c))
        .collect();
    pods_on("default", app, &placement)
}

/// Zones of hosts: for each `(zone, counts)`, nodes `<zone>-n0, <zone>-n1, ...` holding
/// `counts[i]` pods of `app` each.
pub fn zones_of_hosts(app: &str, zones: &[(&str, &[usize])]) -> (Vec<Node>, Vec<Pod>) {
    let nodes: Vec<Node> = zones
        .iter()
        .flat_map(|(z, counts)| (0..counts.len()).map(move |i| node(&format!("{z}-n{i}"), z)))
        .collect();
    let counts = zones.iter().flat_map(|(_, counts)| counts.iter());
    let pods = pods_per_node(&nodes, counts, app);
    (nodes, pods)
}

/// Domain counts after a plan's moves are carried out.
pub fn counts_after(before: &std::collections::BTreeMap<String, i32>, moves: &[Move]) -> Vec<i32> {
    let mut after = before.clone();
    for m in moves {
        *after
            .get_mut(&m.from_domain)
            .expect("move from a known domain") -= 1;
        *after.get_mut(&m.to_domain).expect("move to a known domain") += 1;
    }
    after.into_values().collect()
}

pub fn plan_all(cluster: &Cluster, workload: &Workload) -> Result<Plan, Obstacle> {
    plan_rebalance(
        cluster,
        workload,
        &PlanOptions {
            max_moves: usize::MAX,
            require_node_fit: true,
        },
    )
}
