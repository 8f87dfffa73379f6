//! The core must never be what slows the operator down: measuring and planning a whole cluster
//! of 10,000 pods should take a fraction of one API round-trip, and grow linearly.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use common::*;
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};

const NODES: usize = 300;
const ZONES: usize = 3;
const PODS_PER_WORKLOAD: usize = 10;
const NAMESPACES: usize = 50;

/// 300 nodes in 3 zones; `workloads` Deployments of 10 pods with zone and hostname constraints;
/// one in ten has every pod piled into one zone, the others are spread round-robin.
fn fleet(workloads: usize) -> (Vec<Node>, Vec<Pod>, Vec<Workload>) {
    let nodes: Vec<Node> = (0..NODES)
        .map(|i| node(&format!("node-{i:03}"), &format!("zone-{}", i % ZONES)))
        .collect();
    let mut pods = Vec::with_capacity(workloads * PODS_PER_WORKLOAD);
    let mut specs = Vec::with_capacity(workloads);
    for w in 0..workloads {
        let ns = format!("team-{}", w % NAMESPACES);
        let app = format!("app-{w}");
        let piled = w % 10 == 0;
        for p in 0..PODS_PER_WORKLOAD {
            // Piled: every pod in zone 0; else round-robin over the nodes, offset per workload.
            let n = if piled {
                (w + p * ZONES) % NODES / ZONES * ZONES
            } else {
                (w * 7 + p) % NODES
            };
            pods.push(pod(&format!("{app}-{p}"), &ns, &app, &nodes[n].name));
        }
        specs.push(workload(
            &ns,
            &app,
            vec![
                constraint(ZONE_KEY, 1, &app),
                constraint(HOSTNAME_KEY, 1, &app),
            ],
        ));
    }
    (nodes, pods, specs)
}

/// Everything the controller asks of the core for one full pass over the cluster: index the
/// snapshot it is handed, then measure and plan every workload.
fn evaluate_cluster(nodes: Vec<Node>, pods: Vec<Pod>, workloads: &[Workload]) -> usize {
    let cluster = Cluster::new(nodes, pods);
    let options = PlanOptions::default();
    workloads
        .iter()
        .map(|w| {
            let e = evaluate(&cluster, w, &options);
            e.plan.map(|p| p.moves.len()).unwrap_or(0)
        })
        .sum()
}

/// The two halves apart: building the snapshot, and evaluating every workload on it.
fn bench_parts(c: &mut Criterion) {
    let mut group = c.benchmark_group("parts");
    group.sample_size(20);
    for workloads in [100, 1_000] {
        let pods_count = workloads * PODS_PER_WORKLOAD;
        let (nodes, pods, specs) = fleet(workloads);
        group.bench_function(BenchmarkId::new("snapshot", pods_count), |b| {
            b.iter_batched(
                || (nodes.clone(), pods.clone()),
                |(nodes, pods)| black_box(Cluster::new(nodes, pods)),
                BatchSize::LargeInput,
            )
        });
        let cluster = Cluster::new(nodes.clone(), pods.clone());
        let options = PlanOptions::default();
        group.bench_function(BenchmarkId::new("evaluate", pods_count), |b| {
            b.iter(|| {
                specs
                    .iter()
                    .map(|w| {
                        evaluate(&cluster, w, &options)
                            .measurement
                            .constraints
                            .len()
                    })
                    .sum::<usize>()
            })
        });
    }
    group.finish();
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("evaluate_cluster");
    group.sample_size(20);
    for workloads in [100, 1_000] {
        let (nodes, pods, specs) = fleet(workloads);
        let moves = evaluate_cluster(nodes.clone(), pods.clone(), &specs);
        assert_eq!(
            moves,
            workloads / 10,
            "every piled workload gets one move this step"
        );
        group.bench_with_input(
            BenchmarkId::new("pods", workloads * PODS_PER_WORKLOAD),
            &(nodes, pods, specs),
            // The snapshot's data is the shell's to build (from its caches): handed over, not timed.
            |b, (nodes, pods, specs)| {
                b.iter_batched(
                    || (nodes.clone(), pods.clone()),
                    |(nodes, pods)| black_box(evaluate_cluster(nodes, pods, specs)),
                    BatchSize::LargeInput,
                )
            },
        );
    }
    group.finish();
}

/// One workload of 100 replicas piled two per node on half of zone 0's nodes, over 3 zones of
/// 100 nodes: 66 evictions to balance the zones, 50 of which also balance the hosts. Planning it
/// whole (the exact plan) must stay under 5 ms.
fn bench_one_workload(c: &mut Criterion) {
    let nodes: Vec<Node> = (0..300)
        .map(|i| {
            node(
                &format!("z{}-n{:03}", i / 100, i % 100),
                &format!("zone-{}", i / 100),
            )
        })
        .collect();
    let placement: Vec<(&str, usize)> = nodes[..50].iter().map(|n| (n.name.as_str(), 2)).collect();
    let pods = pods_on("default", "web", &placement);
    let w = workload(
        "default",
        "web",
        vec![
            constraint(ZONE_KEY, 1, "web"),
            constraint(HOSTNAME_KEY, 1, "web"),
        ],
    );
    let cluster = Cluster::new(nodes, pods);
    let options = PlanOptions {
        max_moves: usize::MAX,
        require_node_fit: true,
    };
    let plan = plan_rebalance(&cluster, &w, &options).expect("a plan");
    assert_eq!(plan.moves_needed, 66);
    assert_eq!(plan.shortfall, None);
    let mut group = c.benchmark_group("one_workload");
    group.sample_size(20);
    group.bench_function("plan_100_replicas_3x100_nodes", |b| {
        b.iter(|| black_box(plan_rebalance(&cluster, &w, &PlanOptions::default())))
    });
    group.finish();
}

criterion_group!(benches, bench, bench_parts, bench_one_workload);
criterion_main!(benches);
