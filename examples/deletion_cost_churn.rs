//! How many pod-deletion-cost writes a pod coming or going costs.
//!
//! `cargo run --release --example deletion_cost_churn [NODES_PER_ZONE...] [--pods-per-node P]
//! [--events E]`: for each layout of 3 zones × N nodes (default N = 2, 5, 10, 20) with P pods per
//! node (default 3) of one workload spread on zone then hostname, applies E random events
//! (default 2000): a new pod on a random node, a random pod gone (eviction, node failure), or a
//! scale-in by one that follows the order (the ReplicaSet controller). After each event the costs
//! are recomputed and the writes `cost_patches` lists are applied. Prints the average writes per
//! event kind, and how long one computation takes.

use std::time::Instant;

use kube::core::Selector;
use skewguard::core::topology::deletion_cost::current_costs;
use skewguard::core::topology::{
    Cluster, HOSTNAME_KEY, Node, Pod, PodTemplate, SpreadConstraint, Workload, ZONE_KEY,
    cost_patches, deletion_costs,
};

/// xorshift64*: reproducible, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn nodes(per_zone: usize) -> Vec<Node> {
    let mut out = Vec::new();
    for z in ["a", "b", "c"] {
        for i in 0..per_zone {
            let name = format!("{z}-{i}");
            out.push(Node {
                labels: [(ZONE_KEY, z), (HOSTNAME_KEY, name.as_str())]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                name,
                ready: true,
                ..Default::default()
            });
        }
    }
    out
}

fn pod(serial: i64, node: &str) -> Pod {
    Pod {
        name: format!("web-{serial}"),
        uid: format!("uid-{serial}"),
        namespace: "ns".into(),
        labels: [("app".to_string(), "web".to_string())].into(),
        node_name: Some(node.to_string()),
        ready: true,
        created: serial,
        ..Default::default()
    }
}

fn workload() -> Workload {
    let selector: Selector = [("app", "web")].into_iter().collect();
    Workload {
        namespace: "ns".into(),
        name: "web".into(),
        pod_selector: selector.clone(),
        owner: None,
        template: PodTemplate::default(),
        constraints: vec![
            SpreadConstraint::new(ZONE_KEY, 1, selector.clone()),
            SpreadConstraint::new(HOSTNAME_KEY, 1, selector),
        ],
    }
}

#[derive(Default)]
struct Tally {
    events: u64,
    writes: u64,
    max: u64,
}

impl Tally {
    fn add(&mut self, writes: usize) {
        self.events += 1;
        self.writes += writes as u64;
        self.max = self.max.max(writes as u64);
    }

    fn mean(&self) -> f64 {
        self.writes as f64 / self.events.max(1) as f64
    }
}

/// Recomputes the costs, applies the writes to `pods` and returns how many there were.
fn settle(nodes: &[Node], pods: &mut [Pod], w: &Workload, compute_ns: &mut Vec<u128>) -> usize {
    let cluster = Cluster::new(nodes.to_vec(), pods.to_vec());
    let t = Instant::now();
    let desired = deletion_costs(&cluster, w);
    compute_ns.push(t.elapsed().as_nanos());
    let patches = cost_patches(&current_costs(&cluster, w), &desired);
    for (name, cost) in &patches {
        if let Some(p) = pods.iter_mut().find(|p| &p.name == name) {
            p.deletion_cost = *cost;
        }
    }
    patches.len()
}

fn run(per_zone: usize, pods_per_node: usize, events: usize, rng: &mut Rng) {
    let nodes = nodes(per_zone);
    let w = workload();
    let mut serial = 0i64;
    let mut pods: Vec<Pod> = Vec::new();
    for _ in 0..pods_per_node {
        for n in &nodes {
            serial += 1;
            pods.push(pod(serial, &n.name));
        }
    }
    let target = pods.len();
    let mut compute_ns = Vec::new();
    let initial = settle(&nodes, &mut pods, &w, &mut compute_ns);
    let (mut added, mut removed, mut scaled_in) =
        (Tally::default(), Tally::default(), Tally::default());
    for _ in 0..events {
        // Keep the size near the start: grow when small, shrink when large.
        let roll = rng.below(3);
        if pods.len() < target.saturating_sub(per_zone) || (roll == 0 && pods.len() <= target) {
            serial += 1;
            let node = &nodes[rng.below(nodes.len())];
            pods.push(pod(serial, &node.name));
            added.add(settle(&nodes, &mut pods, &w, &mut compute_ns));
        } else if roll == 1 && pods.len() > 1 {
            let i = rng.below(pods.len());
            pods.remove(i);
            removed.add(settle(&nodes, &mut pods, &w, &mut compute_ns));
        } else if pods.len() > 1 {
            let cluster = Cluster::new(nodes.clone(), pods.clone());
            let first = deletion_costs(&cluster, &w).order[0].clone();
            pods.retain(|p| p.name != first);
            scaled_in.add(settle(&nodes, &mut pods, &w, &mut compute_ns));
        }
    }
    compute_ns.sort_unstable();
    let median_us = compute_ns[compute_ns.len() / 2] as f64 / 1000.0;
    println!(
        "3 zones x {per_zone:>2} nodes, {target:>3} pods | initial writes {initial:>3} | \
         writes per pod added {:.2} (max {}), per pod gone {:.2} (max {}), \
         per scale-in by one {:.2} (max {}) | median compute {median_us:.0} µs",
        added.mean(),
        added.max,
        removed.mean(),
        removed.max,
        scaled_in.mean(),
        scaled_in.max,
    );
}

fn main() {
    let mut per_zone = Vec::new();
    let mut pods_per_node = 3;
    let mut events = 2000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--pods-per-node" => {
                pods_per_node = args.next().and_then(|v| v.parse().ok()).unwrap_or(3)
            }
            "--events" => events = args.next().and_then(|v| v.parse().ok()).unwrap_or(2000),
            n => match n.parse() {
                Ok(n) => per_zone.push(n),
                Err(_) => {
                    eprintln!(
                        "usage: deletion_cost_churn [NODES_PER_ZONE...] [--pods-per-node P] [--events E]"
                    );
                    std::process::exit(2);
                }
            },
        }
    }
    if per_zone.is_empty() {
        per_zone = vec![2, 5, 10, 20];
    }
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for n in per_zone {
        run(n, pods_per_node, events, &mut rng);
    }
}
